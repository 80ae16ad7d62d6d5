//! `matrix`: every bundled capture at a glance.

use crate::common::*;

#[test]
fn matrix_decides_every_bundled_capture_as_recorded() {
    let out = run(&["matrix", "-o", "json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let rows = json(&out);
    let rows = rows.as_array().unwrap_or_else(|| panic!("not an array"));
    assert!(rows.len() >= 22);
    assert!(rows.iter().all(|r| r["as_expected"] == true));
}
