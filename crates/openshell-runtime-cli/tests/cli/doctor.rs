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

/// issue 22 item 8: an operator's `host_gateway_ip` that is no address of this host and that
/// nothing the engine reported vouches for is refused before anything is created: `doctor`
/// exits 2 naming the address and the fix, and the engine (a replay, which could not run a
/// container anyway) sees no container or image request at all, in bridge and host mode, IPv4
/// and IPv6, with a loopback bind too. The old `doctor` swept, imported the probe's image and
/// created its probe, whose callback went toward that address by the default route. The
/// addresses are documentation ranges, and nothing here sends a packet to them.
#[test]
fn a_foreign_host_gateway_ip_is_refused_before_any_container() {
    let doc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture(
            "native-docker/debian12-docker.io-20.10.24-this-machine.json",
        ))
        .unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for ip in ["192.0.2.10", "2001:db8::10"] {
        for mode in ["bridge", "host"] {
            for bind in [None, Some("127.0.0.1")] {
                let engine = rt
                    .block_on(openshell_tests::replay::ReplayEngine::start(&doc))
                    .unwrap_or_else(|e| panic!("{e}"));
                let endpoint = format!("unix://{}", engine.socket().display());
                let mut args = vec![
                    "doctor",
                    "--no-config",
                    "--driver",
                    "docker",
                    "--timeout",
                    "5",
                    "--probe-timeout",
                    "2",
                    "--endpoint",
                    &endpoint,
                    "--network-mode",
                    mode,
                    "--host-gateway-ip",
                    ip,
                ];
                if let Some(b) = bind {
                    args.extend(["--bind", b]);
                }
                let out = isolated(home.path())
                    .args(&args)
                    .output()
                    .unwrap_or_else(|e| panic!("{e}"));
                let requests = engine.requests();
                drop(engine);
                let stderr = String::from_utf8_lossy(&out.stderr);
                let case = format!("{ip} {mode} bind {bind:?}");
                assert_eq!(out.status.code(), Some(2), "{case}: {stderr}");
                assert!(
                    stderr.contains(&format!(
                        "host_gateway_ip {ip} is not an address of this host"
                    )) && stderr.contains("unset it"),
                    "{case}: {stderr}"
                );
                let touched: Vec<_> = requests
                    .iter()
                    .filter(|(_, p)| p.starts_with("/containers") || p.starts_with("/images"))
                    .collect();
                assert!(touched.is_empty(), "{case}: {touched:?}");
            }
        }
    }
}
