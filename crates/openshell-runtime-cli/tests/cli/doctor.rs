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

/// An engine of an architecture this build has no relay for: `doctor --route-kind relay` does
/// not offer the relay (it starts nothing), names the architecture and the fix, and exits 5.
#[test]
fn the_relay_is_not_offered_for_an_architecture_without_a_binary() {
    let doc = serde_json::json!({
        "host_os": "linux",
        "endpoint": "unix:///var/run/docker.sock",
        "ping": {"Api-Version": "1.41"},
        "version": {"Version": "20.10.24", "ApiVersion": "1.41"},
        "info": {
            "Name": "box", "ServerVersion": "20.10.24", "OperatingSystem": "Debian GNU/Linux 12",
            "Architecture": "s390x"
        },
        "network": {"Name": "openshell", "Driver": "bridge", "IPAM": {"Config": [{"Subnet": "172.30.0.0/16", "Gateway": "172.30.0.1"}]}}
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let engine = rt
        .block_on(openshell_tests::replay::ReplayEngine::start(&doc))
        .unwrap_or_else(|e| panic!("{e}"));
    let out = bin()
        .env_remove("OPENSHELL_RELAY_BINARY")
        .env_remove("OPENSHELL_RELAY_IMAGE")
        .args([
            "doctor",
            "--no-config",
            "-o",
            "json",
            "--driver",
            "docker",
            "--route-kind",
            "relay",
            "--endpoint",
            &format!("unix://{}", engine.socket().display()),
        ])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    drop(engine);
    let v = json(&out);
    assert_eq!(out.status.code(), Some(5), "{v}");
    assert_eq!(v["route_kind"], "relay", "{v}");
    assert_eq!(v["probes"], serde_json::json!([]), "{v}");
    let advice = v["advice"][0].as_str().unwrap_or_default();
    assert!(
        advice.starts_with("the relay route was not offered")
            && advice.contains("s390x")
            && advice.contains("OPENSHELL_RELAY_IMAGE"),
        "{v}"
    );
}
