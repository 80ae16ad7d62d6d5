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

/// The bridge matrix shows each capture's host-mode decision beside it (issue 23): no capture
/// is refused in host mode with `auto`, Docker Desktop routes through host-gateway where its
/// bridge route does, and engines without a direct host-mode route relay on 127.0.0.1.
#[test]
fn matrix_shows_the_host_mode_column() {
    let out = run(&["matrix", "-o", "json"]);
    let rows = json(&out);
    let rows = rows.as_array().cloned().unwrap_or_default();
    let cell = |name: &str| {
        rows.iter()
            .find(|r| r["capture"].as_str().is_some_and(|c| c.contains(name)))
            .map(|r| r["host_mode"].clone())
            .unwrap_or_else(|| panic!("no capture {name}"))
    };
    assert!(rows.iter().all(|r| r["host_mode"]
        .as_str()
        .is_some_and(|c| c.starts_with("host-network ") || c == "relay 127.0.0.1")));
    assert_eq!(
        cell("dd-4.24.0-24.0.6-macos-arm64"),
        "host-network host-gateway"
    );
    assert_eq!(
        cell("debian12-docker.io-20.10.24-this-machine"),
        "host-network 127.0.0.1"
    );
    assert_eq!(
        cell("debian12-docker.io-20.10.24-rootless-this-machine"),
        "relay 127.0.0.1"
    );
    let text = run(&["matrix"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.lines()
            .nth(1)
            .is_some_and(|l| l.ends_with("host mode")),
        "{text}"
    );
    // A host-mode matrix has no second column.
    let host = json(&run(&["matrix", "--network-mode", "host", "-o", "json"]));
    assert!(host
        .as_array()
        .is_some_and(|rows| rows.iter().all(|r| r["host_mode"].is_null())));
}
