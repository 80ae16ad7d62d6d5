//! `doctor` without an engine.

use crate::common::*;

#[test]
fn doctor_without_an_engine_exits_3() {
    let out = run(&[
        "doctor",
        "--no-config",
        "--driver",
        "docker",
        "--endpoint",
        "unix:///nonexistent/openshell.sock",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("absent"));
}
