//! Live: the "remote" engines of `scripts/remote.sh` (issue 14), over tcp:// with TLS and ssh://.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// `detect` reaches the namespaced dockerd over tcp:// with TLS (client certificate, the
/// engine's certificate verified against the CA) and over ssh:// (`docker system dial-stdio`,
/// and a forwarded Unix socket), says it is remote and decides the relay; a wrong CA and an
/// unknown host key are refused, with the reason, and nothing else is tried in their place.
#[test]
fn live_detect_reaches_a_remote_engine_over_tls_and_ssh() {
    let Some(remote) = openshell_tests::live::remote_settings() else {
        return;
    };
    let get = |k: &str| {
        remote
            .get(k)
            .cloned()
            .unwrap_or_else(|| panic!("{k} missing from the remote engine's settings"))
    };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let home = dir.path();
    // Its own network (detect creates the sandbox network), removed at the end.
    let network = format!("openshell-detect-remote-{}", std::process::id());
    let detect_with = |endpoint: &str, vars: &[(&str, &str)], flags: &[&str]| {
        isolated(home)
            .args(["detect", "--no-config", "-o", "json", "--timeout", "20"])
            .args(["--endpoint", endpoint, "--network", &network])
            .args(flags)
            .envs(vars.iter().copied())
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let detect = |endpoint: &str, vars: &[(&str, &str)]| detect_with(endpoint, vars, &[]);
    let certs = get("OPENSHELL_REMOTE_DOCKER_CERT_PATH");
    let ssh_config = get("OPENSHELL_REMOTE_SSH_CONFIG");
    let forwarded = format!(
        "{}{}",
        get("OPENSHELL_REMOTE_DOCKER_SSH"),
        get("OPENSHELL_REMOTE_DOCKER_SOCKET")
    );
    let tls_vars = [
        ("DOCKER_CERT_PATH", certs.as_str()),
        ("DOCKER_TLS_VERIFY", "1"),
    ];
    let ssh_vars = [("OPENSHELL_SSH_CONFIG", ssh_config.as_str())];
    let cases: [(String, &[(&str, &str)]); 3] = [
        (get("OPENSHELL_REMOTE_DOCKER_TCP"), &tls_vars),
        (get("OPENSHELL_REMOTE_DOCKER_SSH"), &ssh_vars),
        (forwarded, &ssh_vars),
    ];
    let mut detected: Vec<_> = cases
        .iter()
        .map(|(endpoint, vars)| ((endpoint.clone(), "docker"), detect(endpoint, vars)))
        .collect();
    // The TLS files as flags (Podman's global flags' names): the namespaced dockerd through
    // the Docker driver, with a stale DOCKER_CERT_PATH the flags replace unread, and the
    // namespaced Podman through the Podman driver, with nothing in the environment.
    let file = |f: &str| format!("{certs}/{f}");
    let (ca, cert, key) = (file("ca.pem"), file("cert.pem"), file("key.pem"));
    let tls_flags = ["--tls-ca", &ca, "--tls-cert", &cert, "--tls-key", &key];
    let podman_tls = get("OPENSHELL_REMOTE_PODMAN_TLS");
    let stale = [
        ("DOCKER_TLS_VERIFY", "1"),
        ("DOCKER_CERT_PATH", "/nonexistent/openshell-certs"),
    ];
    // Each remote engine through its own API.
    for pair in openshell_tests::live::pairs().filter(|p| p.engine.remote() && p.native()) {
        let (endpoint, driver, vars) = if pair.engine.podman() {
            (podman_tls.clone(), pair.driver(), &[][..])
        } else {
            (
                get("OPENSHELL_REMOTE_DOCKER_TCP"),
                pair.driver(),
                &stale[..],
            )
        };
        let mut flags = tls_flags.to_vec();
        flags.extend(["--driver", driver]);
        let out = detect_with(&endpoint, vars, &flags);
        detected.push(((endpoint, driver), out));
    }
    openshell_tests::live::remove_networks_named(
        &openshell_tests::live::remote_dockerd(&remote),
        &network,
    );
    openshell_tests::live::remove_networks_named(
        &openshell_tests::live::remote_podman(&remote),
        &network,
    );
    for ((endpoint, driver), out) in detected {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{endpoint}: {err}");
        let v = json(&out);
        assert_eq!(v["runtime"], "remote-docker", "{endpoint}: {v}");
        assert_eq!(v["route_kind"], "relay", "{endpoint}: {v}");
        assert_eq!(v["bind"], "127.0.0.1", "{endpoint}: {v}");
        assert_eq!(v["driver"], driver, "{endpoint}: {v}");
    }
    // The flags without an endpoint of theirs: refused before anything is contacted.
    let out = isolated(home)
        .args(["detect", "--no-config", "--tls-ca", &ca])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no endpoint is named"), "{err}");

    // Another CA: the engine's certificate is not trusted, and the refusal says so.
    let other = home.join("other-ca");
    std::fs::create_dir_all(&other).unwrap_or_else(|e| panic!("{e}"));
    let testdata =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../openshell-transport/testdata/tls");
    std::fs::copy(testdata.join("other-ca.pem"), other.join("ca.pem"))
        .unwrap_or_else(|e| panic!("{e}"));
    let other = other.display().to_string();
    let untrusted = detect(
        &get("OPENSHELL_REMOTE_DOCKER_TCP"),
        &[("DOCKER_CERT_PATH", &other), ("DOCKER_TLS_VERIFY", "1")],
    );
    let err = String::from_utf8_lossy(&untrusted.stderr);
    assert_eq!(untrusted.status.code(), Some(3), "{err}");
    assert!(
        err.contains("TLS handshake") && err.contains(&other),
        "{err}"
    );

    // No known_hosts entry for the engine's host (ssh's own configuration, not the test's).
    let empty = home.join("ssh_config");
    std::fs::write(
        &empty,
        format!(
            "UserKnownHostsFile {}/known_hosts\nGlobalKnownHostsFile /dev/null\n",
            home.display()
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let empty = empty.display().to_string();
    let unknown = detect(
        &get("OPENSHELL_REMOTE_DOCKER_SSH"),
        &[("OPENSHELL_SSH_CONFIG", &empty)],
    );
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert_eq!(unknown.status.code(), Some(3), "{err}");
    assert!(err.contains("Host key verification failed"), "{err}");
}

/// `doctor`'s report `v` (for `what`) proves the relay with one probe, the gateway on
/// 127.0.0.1, the relay on the remote engine: on `network`, at an address of its pool.
fn assert_relay_proven_on(
    engine: &openshell_tests::live::Engine,
    network: &str,
    v: &serde_json::Value,
    what: &str,
) {
    let probes = v["probes"].as_array().cloned().unwrap_or_default();
    assert_eq!(probes.len(), 1, "{what}: {v}");
    assert_eq!(probes[0]["outcome"], "ok", "{what}: {v}");
    assert_eq!(probes[0]["openshell_host"], "relay", "{what}: {v}");
    assert_eq!(probes[0]["bind"], "127.0.0.1", "{what}: {v}");
    let gateway = remote_gateway(engine, network);
    let prefix = gateway.rsplit_once('.').map_or("", |(p, _)| p).to_string();
    // Another note comes first when the gateway's port is busy (a running gateway).
    let notes = probes[0]["notes"].as_array().cloned().unwrap_or_default();
    let note = notes
        .iter()
        .filter_map(|n| n.as_str())
        .find(|n| n.starts_with("carried by relay container"))
        .unwrap_or_default();
    assert!(
        note.contains(&format!(" at {prefix}."))
            && note.ends_with(&format!("on network {network}")),
        "{what}: {v}"
    );
}

/// `doctor`'s report `v` (for `what`) decides and proves the host-network relay (issue 23): the
/// relay in the remote engine's host network namespace on its 127.0.0.1, the gateway on
/// 127.0.0.1 here.
fn assert_host_relay_proven(v: &serde_json::Value, what: &str) {
    assert_eq!(v["route_kind"], "relay", "{what}: {v}");
    assert_eq!(v["openshell_host"], "127.0.0.1", "{what}: {v}");
    let probes = v["probes"].as_array().cloned().unwrap_or_default();
    assert_eq!(probes.len(), 1, "{what}: {v}");
    assert_eq!(probes[0]["outcome"], "ok", "{what}: {v}");
    assert_eq!(probes[0]["bind"], "127.0.0.1", "{what}: {v}");
    let notes = probes[0]["notes"].as_array().cloned().unwrap_or_default();
    assert!(
        notes
            .iter()
            .filter_map(|n| n.as_str())
            .any(|n| n.starts_with("carried by relay container")
                && n.ends_with("at 127.0.0.1 in the engine's host network namespace")),
        "{what}: {v}"
    );
}

/// The end of a remote doctor test: removes its network and the relay images (the built-in
/// probe's too) from
/// `engine`, resumes the test's panic if it failed, else checks that no relay, probe or relay
/// image was left there.
fn finish_remote(
    engine: &openshell_tests::live::Engine,
    network: &str,
    outcome: std::thread::Result<()>,
) {
    use openshell_runtime::consts::{LABEL_PROBE, LABEL_RELAY_NETWORK};
    use openshell_tests::live::{
        containers_labelled, images_of, remove_images_of, remove_networks_named,
    };
    let relays = containers_labelled(engine, LABEL_RELAY_NETWORK, network);
    let host_relays = containers_labelled(engine, LABEL_RELAY_NETWORK, "host");
    let probes = containers_labelled(engine, LABEL_PROBE, "true");
    remove_networks_named(engine, network);
    remove_images_of(engine, "localhost/openshell-relay");
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    let name = &engine.name;
    assert_eq!(relays, Ok(Vec::new()), "relays left on the {name}");
    assert_eq!(
        host_relays,
        Ok(Vec::new()),
        "host relays left on the {name}"
    );
    assert_eq!(probes, Ok(Vec::new()), "probes left on the {name}");
    assert_eq!(
        images_of(engine, "localhost/openshell-relay"),
        Ok(Vec::new()),
        "relay images left on the {name}"
    );
}

/// The network's gateway on the remote engine (its bridge address, inside the namespace).
fn remote_gateway(engine: &openshell_tests::live::Engine, network: &str) -> String {
    let out = Command::new(&engine.cli[0])
        .args(&engine.cli[1..])
        .args(["network", "inspect", "-f"])
        .arg(if engine.podman {
            "{{range .Subnets}}{{.Gateway}}{{end}}"
        } else {
            "{{range .IPAM.Config}}{{.Gateway}}{{end}}"
        })
        .arg(network)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let gateway = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success() && gateway.parse::<std::net::Ipv4Addr>().is_ok(),
        "{network}: {gateway:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    gateway
}

/// `doctor` against the namespaced remote engine (issue 14): over tcp:// with TLS, ssh://
/// (dial-stdio) and ssh:// with a forwarded socket it decides the relay and proves it, the
/// relay running on the remote engine's network and its attach stream carrying the probe's
/// callback over that connection to a listener on 127.0.0.1 here. The direct routes do not
/// arrive: the network's gateway and the default bridge's (where host-gateway points on a
/// remote dockerd) are the remote machine's own addresses, and the probe there is refused. An
/// explicit `host_gateway_ip` this host holds on the remote's side (the veth of the test's
/// namespace) keeps working. Everything the runs made on the remote engine is removed.
#[test]
fn live_doctor_proves_the_relay_on_a_remote_engine() {
    use openshell_tests::live::{remote_dockerd, remote_setting, remote_settings};
    let Some(settings) = remote_settings() else {
        return;
    };
    let engine = remote_dockerd(&settings);
    if !engine.available() {
        return;
    }
    let get = |k: &str| remote_setting(&settings, k);
    let network = format!("openshell-doctor-remote-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let home = dir.path();
    let doctor = |endpoint: &str, vars: &[(&str, &str)], extra: &[&str]| {
        let out = isolated(home)
            .args(["doctor", "--no-config", "-o", "json", "--timeout", "30"])
            .args(["--endpoint", endpoint, "--network", &network])
            .args(["--probe-timeout", "20"])
            .args(extra)
            .envs(vars.iter().copied())
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let v = json(&out);
        (out.status.code(), v)
    };
    let certs = get("OPENSHELL_REMOTE_DOCKER_CERT_PATH");
    let ssh_config = get("OPENSHELL_REMOTE_SSH_CONFIG");
    let tcp = get("OPENSHELL_REMOTE_DOCKER_TCP");
    let ssh = get("OPENSHELL_REMOTE_DOCKER_SSH");
    let forwarded = format!("{ssh}{}", get("OPENSHELL_REMOTE_DOCKER_SOCKET"));
    let tls_vars = [
        ("DOCKER_CERT_PATH", certs.as_str()),
        ("DOCKER_TLS_VERIFY", "1"),
    ];
    let ssh_vars = [("OPENSHELL_SSH_CONFIG", ssh_config.as_str())];
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let cases: [(&str, &[(&str, &str)]); 3] = [
            (&tcp, &tls_vars),
            (&ssh, &ssh_vars),
            (&forwarded, &ssh_vars),
        ];
        for (endpoint, vars) in cases {
            let (code, v) = doctor(endpoint, vars, &[]);
            assert_eq!(code, Some(0), "{endpoint}: {v}");
            assert_eq!(v["runtime"], "remote-docker", "{endpoint}: {v}");
            assert_eq!(v["route_kind"], "relay", "{endpoint}: {v}");
            assert_relay_proven_on(&engine, &network, &v, endpoint);
            // Host networking: no direct route reaches this machine from the remote one's
            // namespace; the relay there, on its 127.0.0.1, does (auto, and forced).
            for kind in ["auto", "relay"] {
                let host = ["--network-mode", "host", "--route-kind", kind];
                let (code, v) = doctor(endpoint, vars, &host);
                let what = format!("{endpoint} host {kind}");
                assert_eq!(code, Some(0), "{what}: {v}");
                assert_host_relay_proven(&v, &what);
            }
        }

        // The direct routes arrive at the remote machine, not here: refused, whichever
        // transport carried the engine calls (the network's gateway over each; the default
        // bridge, where host-gateway points on a remote dockerd, over TLS).
        let gateway = remote_gateway(&engine, &network);
        let bridge = remote_gateway(&engine, "bridge");
        for (endpoint, vars, addr, bind) in [
            (&tcp, &tls_vars[..], &gateway, None),
            (&ssh, &ssh_vars[..], &gateway, None),
            (&forwarded, &ssh_vars[..], &gateway, None),
            (&tcp, &tls_vars[..], &bridge, Some("127.0.0.1")),
        ] {
            let mut extra = vec!["--route-kind", "direct", "--host-gateway-ip", addr];
            extra.extend(bind.iter().flat_map(|b| ["--bind", *b]));
            let (code, v) = doctor(endpoint, vars, &extra);
            assert_eq!(code, Some(5), "{endpoint} {addr}: {v}");
            assert_eq!(v["route_kind"], "bridge", "{addr}: {v}");
            assert_eq!(v["probes"][0]["openshell_host"], addr.as_str(), "{v}");
            assert_eq!(v["probes"][0]["outcome"], "refused", "{addr}: {v}");
            assert!(v["proven"].is_null(), "{addr}: {v}");
        }
        // Without host_gateway_ip, direct only: nothing is decided, and the reason says why.
        let (code, v) = doctor(&tcp, &tls_vars, &["--route-kind", "direct"]);
        assert_ne!(code, Some(0), "{v}");
        let err = v["error"].as_str().unwrap_or_default();
        assert!(err.contains("on another machine"), "{v}");
        assert!(v["probes"].as_array().is_some_and(Vec::is_empty), "{v}");

        // An address of this host that the remote containers reach keeps working.
        let host = get("OPENSHELL_REMOTE_HOST_ADDR");
        let (code, v) = doctor(&tcp, &tls_vars, &["--host-gateway-ip", &host]);
        assert_eq!(code, Some(0), "{v}");
        assert_eq!(v["proven"]["openshell_host"], host.as_str(), "{v}");
        assert_eq!(v["proven"]["bind"], host.as_str(), "{v}");
    }));
    finish_remote(&engine, &network, outcome);
}

/// `doctor` against the namespaced Podman service (issue 14) over ssh:// (its socket forwarded)
/// and over tcp:// with TLS (client certificates required), each through the Podman driver and
/// the Docker driver: detects a remote engine, decides the relay and proves it (the relay on the
/// remote Podman network, the callback at 127.0.0.1 here). A Podman connection whose CA did not
/// sign the engine, or that has no client certificate, is refused in the handshake (exit 3); the
/// remote network's gateway as a direct route is refused. Everything made there is removed.
#[test]
fn live_doctor_proves_the_relay_on_a_remote_podman() {
    use openshell_tests::live::{remote_podman, remote_setting, remote_settings, EngineId};
    let Some(settings) = remote_settings() else {
        return;
    };
    let engine = remote_podman(&settings);
    if !engine.available() {
        return;
    }
    let ssh = remote_setting(&settings, "OPENSHELL_REMOTE_PODMAN_SSH");
    let ssh_config = remote_setting(&settings, "OPENSHELL_REMOTE_SSH_CONFIG");
    let tcp = remote_setting(&settings, "OPENSHELL_REMOTE_PODMAN_TLS");
    let certs = PathBuf::from(remote_setting(
        &settings,
        "OPENSHELL_REMOTE_DOCKER_CERT_PATH",
    ));
    let network = format!("openshell-doctor-remote-podman-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // Podman's TLS connections (5.7+) as `podman system connection add --tls-ca --tls-cert
    // --tls-key` writes them; one signed by another CA, one without a client certificate.
    let connections = dir.path().join("podman-connections.json");
    let other_ca = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../openshell-transport/testdata/tls/other-ca.pem");
    std::fs::write(
        &connections,
        serde_json::json!({"Connection": {"Default": "", "Connections": {
            "remote-tls": {"URI": tcp, "TLSCA": certs.join("ca.pem"),
                "TLSCert": certs.join("cert.pem"), "TLSKey": certs.join("key.pem")},
            "other-ca": {"URI": tcp, "TLSCA": other_ca,
                "TLSCert": certs.join("cert.pem"), "TLSKey": certs.join("key.pem")},
            "no-client-cert": {"URI": tcp, "TLSCA": certs.join("ca.pem")}
        }}})
        .to_string(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let connections = connections.display().to_string();
    let certs = certs.display().to_string();
    // Each transport with each driver that can use it: ssh:// with both; TLS through a
    // connection (the Podman driver) and through DOCKER_CERT_PATH (the Docker driver, on
    // Podman's Docker-compatible API).
    let reach = |driver: &str, transport: &str| -> (Vec<String>, Vec<(&str, String)>) {
        match (driver, transport) {
            (_, "ssh") => (
                vec!["--endpoint".into(), ssh.clone()],
                vec![("OPENSHELL_SSH_CONFIG", ssh_config.clone())],
            ),
            ("podman", connection) => (
                Vec::new(),
                vec![
                    ("PODMAN_CONNECTIONS_CONF", connections.clone()),
                    ("CONTAINER_CONNECTION", connection.to_string()),
                ],
            ),
            _ => (
                vec!["--endpoint".into(), tcp.clone()],
                vec![
                    ("DOCKER_CERT_PATH", certs.clone()),
                    ("DOCKER_TLS_VERIFY", "1".into()),
                ],
            ),
        }
    };
    let doctor = |driver: &str, transport: &str, extra: &[&str]| {
        let (args, vars) = reach(driver, transport);
        let out = isolated(dir.path())
            .args(["doctor", "--no-config", "-o", "json", "--timeout", "30"])
            .args(["--driver", driver])
            .args(&args)
            .args(["--network", &network])
            .args(["--probe-timeout", "20"])
            .args(extra)
            .envs(vars)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        // A run refused before any decision prints its error alone.
        let v = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        (out.status.code(), v, err)
    };
    // The remote Podman through each driver, over ssh:// and over TLS.
    let transports = || {
        openshell_tests::live::pairs()
            .filter(|p| p.engine == EngineId::RemotePodman)
            .flat_map(|p| {
                let tls = if p.native() { "remote-tls" } else { "tls" };
                [(p.driver(), "ssh"), (p.driver(), tls)]
            })
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for (driver, transport) in transports() {
            let (code, v, err) = doctor(driver, transport, &[]);
            let driver = format!("{driver} over {transport}");
            assert_eq!(code, Some(0), "{driver}: {v} {err}");
            assert_eq!(v["runtime"], "remote-docker", "{driver}: {v}");
            assert!(
                driver.starts_with(v["driver"].as_str().unwrap_or("?")),
                "{v}"
            );
            assert_eq!(v["route_kind"], "relay", "{driver}: {v}");
            // Podman's own alias is routed too: the engine on the other side is Podman.
            assert!(
                v["extra_hosts"]
                    .as_array()
                    .is_some_and(|h| h.iter().any(|h| h == "host.containers.internal:relay")),
                "{driver}: {v}"
            );
            assert_relay_proven_on(&engine, &network, &v, &driver);
            for kind in ["auto", "relay"] {
                let (code, v, err) = doctor(
                    driver.split(' ').next().unwrap_or_default(),
                    transport,
                    &["--network-mode", "host", "--route-kind", kind],
                );
                let what = format!("{driver} host {kind}");
                assert_eq!(code, Some(0), "{what}: {v} {err}");
                assert_host_relay_proven(&v, &what);
            }
        }
        // An engine another CA signed, and an engine that wants a client certificate the
        // connection does not have: refused in the handshake, with the reason, exit 3.
        for (connection, want) in [
            ("other-ca", "other-ca.pem"),
            ("no-client-cert", "CertificateRequired"),
        ] {
            let (code, v, err) = doctor("podman", connection, &[]);
            assert_eq!(code, Some(3), "{connection}: {v} {err}");
            assert!(
                err.contains(want) && err.contains(&tcp.replace("tcp://", "https://")),
                "{connection}: {err}"
            );
        }
        // The network's gateway, the remote machine's own address, as a direct route: refused,
        // over each transport and driver.
        let gateway = remote_gateway(&engine, &network);
        for (driver, transport) in transports() {
            let (code, v, err) = doctor(
                driver,
                transport,
                &["--route-kind", "direct", "--host-gateway-ip", &gateway],
            );
            assert_eq!(code, Some(5), "{driver} over {transport}: {v} {err}");
            assert_eq!(
                v["probes"][0]["outcome"], "refused",
                "{driver} over {transport}: {v}"
            );
        }
    }));
    finish_remote(&engine, &network, outcome);
}

/// The command lines that contain `marker`, once they ended or 5 s passed.
fn processes_left(marker: &str) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let left: Vec<String> = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|p| std::fs::read(p.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.contains(marker))
            .collect();
        if left.is_empty() || std::time::Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Over ssh:// a run is one ssh session (issue 25): one master ssh, whose forward carries
/// every connection to a remote socket, or which `docker system dial-stdio` clients ride, and
/// the run's calls share its connections (before, every engine call was an ssh of its own: 5
/// per `detect`). Nothing of the session runs after the run, whether it finished, was
/// interrupted (SIGINT) or killed (SIGKILL): the master ends with its watchdog, the clients
/// with the master.
#[test]
fn ssh_runs_are_one_session_and_leave_nothing_running() {
    let Some(remote) = openshell_tests::live::remote_settings() else {
        return;
    };
    let get = |k: &str| openshell_tests::live::remote_setting(&remote, k);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let home = dir.path();
    // The ssh on the PATH notes each invocation, then is the system's.
    let bin_dir = home.join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap_or_else(|e| panic!("{e}"));
    let log = home.join("ssh.log");
    let wrapper = bin_dir.join("ssh");
    // Staged and installed by a child, so no test thread's fork inherits a descriptor open
    // for writing on it (exec'ing it would fail with ETXTBSY).
    let staged = bin_dir.join("ssh.staged");
    std::fs::write(
        &staged,
        format!(
            "#!/bin/sh\necho \"$*\" >> {}\nexec /usr/bin/ssh \"$@\"\n",
            log.display()
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let installed = Command::new("install")
        .args(["-m", "0755"])
        .arg(&staged)
        .arg(&wrapper)
        .status()
        .unwrap_or_else(|e| panic!("install: {e}"));
    assert!(installed.success(), "install: {installed}");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let config = get("OPENSHELL_REMOTE_SSH_CONFIG");
    let network = format!("openshell-detect-ssh-session-{}", std::process::id());
    let ns = std::fs::read_link("/proc/self/ns/pid")
        .map(|l| {
            l.to_string_lossy()
                .replace(|c: char| !c.is_ascii_digit(), "")
        })
        .unwrap_or_default();
    let dial = get("OPENSHELL_REMOTE_DOCKER_SSH");
    let forwarded = format!("{dial}{}", get("OPENSHELL_REMOTE_DOCKER_SOCKET"));
    let run = |endpoint: &str| {
        let mut c = isolated(home);
        c.args(["detect", "--no-config", "-o", "json", "--timeout", "20"])
            .args([
                "--driver",
                "docker",
                "--endpoint",
                endpoint,
                "--network",
                &network,
            ])
            .env("OPENSHELL_SSH_CONFIG", &config)
            .env("PATH", &path);
        c
    };
    let mut failures = Vec::new();
    for (endpoint, dial_stdio) in [(dial.as_str(), true), (forwarded.as_str(), false)] {
        let _ = std::fs::remove_file(&log);
        let child = run(endpoint)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run the binary: {e}"));
        let pid = child.id();
        let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{endpoint}: {err}");
        let calls = std::fs::read_to_string(&log).unwrap_or_default();
        let masters = calls
            .lines()
            .filter(|l| l.contains("ControlMaster=yes"))
            .count();
        // The one command a forwarding session runs so that sshd turns Nagle's algorithm off.
        let nudges = calls.lines().filter(|l| l.ends_with(" true")).count();
        let others = calls.lines().count() - masters - nudges;
        assert_eq!(masters, 1, "{endpoint}: one master per run\n{calls}");
        assert_eq!(
            nudges,
            usize::from(!dial_stdio),
            "{endpoint}: the forwarding session's nudge\n{calls}"
        );
        if dial_stdio {
            // One client carries the run's calls one after another; a second only where a
            // call waited past the moment a new one costs.
            assert!(
                (1..=2).contains(&others),
                "{endpoint}: dial-stdio clients\n{calls}"
            );
        } else {
            assert_eq!(
                others, 0,
                "{endpoint}: the forward carries every call\n{calls}"
            );
        }
        // Finished, interrupted and killed runs: nothing of their session runs afterwards.
        let left = processes_left(&format!("openshell-ssh-{ns}-{pid}-"));
        if !left.is_empty() {
            failures.push(format!("{endpoint}, finished: {left:?}"));
        }
        for (signal, delay_ms) in [("INT", 150u64), ("KILL", 150), ("INT", 400), ("KILL", 400)] {
            let child = run(endpoint)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run the binary: {e}"));
            let pid = child.id();
            std::thread::sleep(std::time::Duration::from_millis(delay_ms));
            let _ = Command::new("kill")
                .args([&format!("-{signal}"), &pid.to_string()])
                .status();
            let _ = child.wait_with_output();
            let left = processes_left(&format!("openshell-ssh-{ns}-{pid}-"));
            if !left.is_empty() {
                failures.push(format!(
                    "{endpoint}, SIG{signal} after {delay_ms} ms: {left:?}"
                ));
            }
        }
    }
    openshell_tests::live::remove_networks_named(
        &openshell_tests::live::remote_dockerd(&remote),
        &network,
    );
    assert!(failures.is_empty(), "ssh left running: {failures:#?}");
}
