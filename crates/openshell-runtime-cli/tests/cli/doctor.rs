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

/// A SIGINT while the first sweep of stale probes waits on the engine ends the run at once
/// (exit 130); it used to wait for the sweep, up to the call timeout. The engine is a replay on
/// a temporary Unix socket whose container list never answers in time.
#[test]
fn a_signal_during_the_first_sweep_ends_the_run_at_once() {
    let mut doc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture(
            "native-docker/debian12-docker.io-20.10.24-this-machine.json",
        ))
        .unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    doc["replay_hang"] = serde_json::json!("/containers/json");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let engine = rt
        .block_on(openshell_tests::replay::ReplayEngine::start(&doc))
        .unwrap_or_else(|e| panic!("{e}"));
    let home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut child = isolated(home.path())
        .args([
            "doctor",
            "--no-config",
            "--driver",
            "docker",
            "--timeout",
            "25",
            "--endpoint",
            &format!("unix://{}", engine.socket().display()),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    std::thread::sleep(std::time::Duration::from_secs(3));
    let _ = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap_or_else(|e| panic!("{e}")) {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    drop(engine);
    let status = status.unwrap_or_else(|| panic!("doctor went on for 5 s after SIGINT"));
    assert_eq!(status.code(), Some(130));
}
