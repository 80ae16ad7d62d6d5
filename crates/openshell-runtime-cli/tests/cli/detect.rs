//! `detect` from facts files and endpoints that need no engine: exit codes, JSON fields, refusals.

use crate::common::*;

#[test]
fn facts_mode_exit_codes_and_fields() {
    let ok = run(&[
        "detect",
        "--no-config",
        "-o",
        "json",
        "--facts",
        &fixture("native-docker/debian12-docker.io-20.10.24-this-machine.json"),
    ]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let v = json(&ok);
    assert_eq!(v["runtime"], "native-docker");
    assert_eq!(v["openshell_host"], "172.18.0.1");
    assert_eq!(v["bind"], "172.18.0.1");
    assert_eq!(
        v["sandbox_endpoint"],
        "http://host.openshell.internal:17670"
    );
    assert_eq!(v["extra_hosts"][0], "host.openshell.internal:172.18.0.1");
    assert!(v["evidence"].as_array().is_some_and(|e| !e.is_empty()));

    // A remote engine has no direct route: auto decides the relay, direct refuses as before.
    let relayed = run(&[
        "detect",
        "--no-config",
        "-o",
        "json",
        "--facts",
        &fixture("remote-docker/remote-docker-20.10.5-ssh-compose-cli-1456.json"),
    ]);
    assert_eq!(relayed.status.code(), Some(0));
    let v = json(&relayed);
    assert_eq!(v["route_kind"], "relay", "{v}");
    assert_eq!(v["openshell_host"], "relay", "{v}");
    assert_eq!(v["bind"], "127.0.0.1", "{v}");

    let refused = run(&[
        "detect",
        "--no-config",
        "--route-kind",
        "direct",
        "-o",
        "json",
        "--facts",
        &fixture("remote-docker/remote-docker-20.10.5-ssh-compose-cli-1456.json"),
    ]);
    assert_eq!(refused.status.code(), Some(4));
    let v = json(&refused);
    assert_eq!(v["runtime"], "remote-docker");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("host_gateway_ip")),
        "{v}"
    );

    let fixed = run(&[
        "detect",
        "--no-config",
        "-o",
        "json",
        "--host-gateway-ip",
        "10.20.0.1",
        "--port",
        "9000",
        "--tls",
        "--facts",
        &fixture("remote-docker/remote-docker-20.10.5-ssh-compose-cli-1456.json"),
    ]);
    assert_eq!(fixed.status.code(), Some(0));
    let v = json(&fixed);
    assert_eq!(v["bind"], "10.20.0.1");
    assert_eq!(
        v["sandbox_endpoint"],
        "https://host.openshell.internal:9000"
    );
}

#[test]
fn bad_input_exits_2_and_names_the_field() {
    let cases = [
        ("not-json", "{", "not valid JSON"),
        ("no-info", r#"{"host_os":"linux"}"#, "`info` is missing"),
        (
            "bad-override",
            r#"{"info":{},"overrides":{"bind":"0.0.0.0.0"}}"#,
            "overrides.bind",
        ),
        (
            "bad-endpoint",
            r#"{"info":{},"endpoint":"ftp://x"}"#,
            "endpoint",
        ),
    ];
    for (name, text, needle) in cases {
        let out = run(&["detect", "--no-config", "--facts", &write_tmp(name, text)]);
        assert_eq!(out.status.code(), Some(2), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{name}: {err}");
    }
    let bad_flag = run(&[
        "detect",
        "--no-config",
        "--bind",
        "nope",
        "--facts",
        &fixture("native-docker/debian12-docker.io-20.10.24-this-machine.json"),
    ]);
    assert_eq!(bad_flag.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_flag.stderr).contains("--bind"));
}

/// Credentials in an endpoint (`DOCKER_HOST`, `--endpoint`, a facts file's `endpoint`) never
/// reach the terminal.
#[test]
fn endpoint_credentials_are_not_echoed() {
    let secret = "s3cret-pw";
    let url = format!("tcp://user:{secret}@127.0.0.1:1");
    let facts = write_tmp(
        "secret-endpoint",
        &format!(r#"{{"info":{{}},"endpoint":"{url}"}}"#),
    );
    let outs = [
        bin()
            .args(["detect", "--no-config"])
            .env("DOCKER_HOST", &url)
            .output(),
        bin()
            .args(["detect", "--no-config", "--endpoint", &url])
            .output(),
        bin()
            .args(["detect", "--no-config", "--facts", &facts])
            .output(),
    ];
    for out in outs {
        let out = out.unwrap_or_else(|e| panic!("{e}"));
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(2), "{all}");
        assert!(!all.contains(secret), "{all}");
        assert!(all.contains("xxxxx@127.0.0.1:1"), "{all}");
    }
}

/// `--dump-facts` writes what the engine reported, minus credentials: an engine (here a replay
/// of Podman's compatible API, which does not mask them) with a proxy password in `/info`.
#[test]
fn dump_facts_carries_no_credentials() {
    let doc = serde_json::json!({
        "host_os": "linux",
        "ping": {"Api-Version": "1.41", "Libpod-Api-Version": "4.3.1", "Server": "Libpod/4.3.1 (linux)"},
        "info": {
            "Name": "box", "ServerVersion": "4.3.1", "OperatingSystem": "debian",
            "HttpProxy": "http://user:s3cret-pw@proxy.corp:3128",
            "HttpsProxy": "user:s3cret-pw@proxy.corp:3128"
        },
        "network": {"Name": "openshell", "Driver": "bridge", "IPAM": {"Config": [{"Subnet": "10.89.0.0/24", "Gateway": "10.89.0.1"}]}}
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let engine = rt
        .block_on(openshell_tests::replay::ReplayEngine::start(&doc))
        .unwrap_or_else(|e| panic!("{e}"));
    let dump = write_tmp("dump-no-credentials.json", "");
    let out = run(&[
        "detect",
        "--no-config",
        "-o",
        "json",
        "--driver",
        "docker",
        "--endpoint",
        &format!("unix://{}", engine.socket().display()),
        "--dump-facts",
        &dump,
    ]);
    drop(engine);
    let written = std::fs::read_to_string(&*dump).unwrap_or_default();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        written.contains("xxxxx@proxy.corp:3128"),
        "{written}\n{all}"
    );
    assert!(!written.contains("s3cret"), "{written}");
    assert!(!all.contains("s3cret"), "{all}");
}

/// Issue 10: an address that cannot serve its role is invalid input (exit 2, naming the value
/// and where it came from) or a refusal (exit 4), never a route; IPv4-mapped forms are checked
/// as the IPv4 address they are.
#[test]
fn impossible_addresses_exit_2_or_4_never_a_route() {
    let facts = fixture("native-docker/debian12-docker.io-20.10.24-this-machine.json");
    let detect = |extra: &[&str]| {
        let mut args = vec!["detect", "--no-config", "-o", "json", "--facts", &facts];
        args.extend_from_slice(extra);
        run(&args)
    };
    for value in [
        "::ffff:0.0.0.0",
        "::ffff:0:0",
        "0.0.0.0",
        "::",
        "::0.0.0.0",
        "224.0.0.1",
        "ff02::1",
        "255.255.255.255",
        "240.0.0.1",
        "169.254.169.254",
        "10.0.0.1/garbage",
    ] {
        let out = detect(&["--host-gateway-ip", value]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "--host-gateway-ip {value}: {err}"
        );
        assert!(
            err.contains("--host-gateway-ip") && err.contains(value),
            "--host-gateway-ip {value}: {err}"
        );
    }
    // Loopback is valid input (host-network sandboxes on native engines call it), but a
    // bridge sandbox's loopback is its own: the bridge decision refuses it (exit 4), and the
    // host-network one takes it.
    for value in ["0:0:0:0:0:0:0:1", "127.0.0.1"] {
        let out = detect(&["--host-gateway-ip", value]);
        assert_eq!(out.status.code(), Some(4), "--host-gateway-ip {value}");
        let v = json(&out);
        assert!(
            v["error"].as_str().is_some_and(|e| e.contains("loopback")),
            "{v}"
        );
        let host = detect(&["--host-gateway-ip", value, "--network-mode", "host"]);
        assert_eq!(host.status.code(), Some(0), "{}", json(&host));
    }
    for value in [
        "224.0.0.1",
        "255.255.255.255",
        "169.254.169.254",
        "10.0.0.1/garbage",
    ] {
        let out = detect(&["--bind", value]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--bind {value}: {err}");
        assert!(
            err.contains("--bind") && err.contains(value),
            "--bind {value}: {err}"
        );
    }
    // The operator's own wildcard bind stays allowed, and is reported as the wildcard it is.
    let wildcard = detect(&["--bind", "::ffff:0.0.0.0"]);
    assert_eq!(
        wildcard.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&wildcard.stderr)
    );
    let v = json(&wildcard);
    assert_eq!(v["bind"], "0.0.0.0");
    assert_eq!(v["exposure"], "wildcard");

    let port0 = detect(&["--port", "0"]);
    assert_eq!(port0.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&port0.stderr).contains("--port"));

    // The environment and gateway.toml go through the same checks.
    for (var, value, named) in [
        (
            "OPENSHELL_HOST_GATEWAY_IP",
            "::ffff:0.0.0.0",
            "::ffff:0.0.0.0",
        ),
        ("OPENSHELL_BIND_ADDRESS", "224.0.0.1:17670", "224.0.0.1"),
        ("OPENSHELL_BIND_ADDRESS", "172.18.0.1:0", "172.18.0.1:0"),
    ] {
        let out = bin()
            .args(["detect", "-o", "json", "--facts", &facts])
            .env(var, value)
            .env("XDG_CONFIG_HOME", "/nonexistent")
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}={value}: {err}");
        assert!(
            err.contains(var) && err.contains(named),
            "{var}={value}: {err}"
        );
    }
    let cfg = write_tmp(
        "wildcard-gateway.toml",
        "[openshell.drivers.docker]\nhost_gateway_ip = \"::\"\n",
    );
    let out = run(&["detect", "--config", &cfg, "--facts", &facts]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("host_gateway_ip") && err.contains("::"),
        "{err}"
    );

    // An engine reporting an impossible gateway gets a refusal for want of it, not a route.
    let text = std::fs::read_to_string(&facts).unwrap_or_else(|e| panic!("{e}"));
    for gw in ["::", "::ffff:0.0.0.0", "224.0.0.1"] {
        let doc = text.replace(
            "\"Gateway\": \"172.18.0.1\"",
            &format!("\"Gateway\": \"{gw}\""),
        );
        assert_ne!(doc, text, "the fixture's gateway moved");
        let path = write_tmp("impossible-gateway.json", &doc);
        let out = run(&[
            "detect",
            "--no-config",
            "--route-kind",
            "direct",
            "-o",
            "json",
            "--facts",
            &path,
        ]);
        assert_eq!(out.status.code(), Some(4), "gateway {gw}");
        assert!(json(&out)["bind"].is_null(), "gateway {gw}");
    }
}

/// `detect --network-mode host` answers for every bundled capture: a host-network route with
/// literal extra hosts, or a refusal that names its fix (exit 4), never a crash or a bridge
/// route.
#[test]
fn detect_host_mode_answers_for_every_bundled_capture() {
    let all = all_fixtures();
    assert!(all.len() > 30, "only {} fixtures", all.len());
    for f in &all {
        let path = f.display().to_string();
        let out = run(&[
            "detect",
            "--no-config",
            "--network-mode",
            "host",
            "-o",
            "json",
            "--facts",
            &path,
        ]);
        let v = json(&out);
        assert_eq!(v["network_mode"], "host", "{path}: {v}");
        // Every bundled capture's engine API works, so host mode refuses none of them (issue
        // 23): a direct route where the engine's host namespace reaches the gateway (Docker
        // Desktop through host-gateway), else the relay in that namespace on its 127.0.0.1.
        assert_eq!(
            out.status.code(),
            Some(0),
            "{path}: {v} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let host = v["openshell_host"].as_str().unwrap_or_default();
        match v["route_kind"].as_str() {
            Some("host-network") => assert!(
                host.parse::<std::net::IpAddr>().is_ok()
                    || (host == "host-gateway" && v["runtime"] == "docker-desktop"),
                "{path}: {v}"
            ),
            Some("relay") => {
                assert_eq!(host, "127.0.0.1", "{path}: {v}");
                assert_eq!(v["bind"], "127.0.0.1", "{path}: {v}");
            }
            other => panic!("{path}: route_kind {other:?}: {v}"),
        }
        let hosts = v["extra_hosts"].as_array().cloned().unwrap_or_default();
        assert!(
            hosts
                .iter()
                .any(|h| h == &serde_json::Value::String(format!("host.openshell.internal:{host}"))),
            "{path}: {v}"
        );
    }
    // The default stays bridge, and the environment chooses host too.
    let native = fixture("native-docker/debian12-docker.io-20.10.24-this-machine.json");
    let bridge = json(&run(&[
        "detect",
        "--no-config",
        "-o",
        "json",
        "--facts",
        &native,
    ]));
    assert_eq!(bridge["route_kind"], "bridge");
    let by_env = bin()
        .env("OPENSHELL_NETWORK_MODE", "host")
        .env("HOME", "/nonexistent")
        .env_remove("XDG_CONFIG_HOME")
        .args(["detect", "-o", "json", "--facts", &native])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let v = json(&by_env);
    assert_eq!(v["route_kind"], "host-network", "{v}");
    assert_eq!(v["openshell_host"], "127.0.0.1", "{v}");
    assert_eq!(
        v["settings"]["network_mode"]["source"],
        "OPENSHELL_NETWORK_MODE"
    );
    // matrix shows the host-mode column of every capture.
    let m = json(&run(&["matrix", "--network-mode", "host", "-o", "json"]));
    let rows = m.as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), all.len());
    assert!(rows
        .iter()
        .all(|r| r["route_kind"] == "host-network" || r["route_kind"] == "relay"));
    assert!(rows.iter().all(|r| r["error"].is_null()), "{m}");
}

#[test]
fn a_named_endpoint_that_does_not_answer_is_not_replaced() {
    // Before: DOCKER_HOST at a closed port fell through to the rootful Podman socket, decided
    // for it (exit 0) and created a network there.
    // Removed when dropped, also when an assertion fails.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let home = dir.path();
    let tcp = format!("tcp://127.0.0.1:{}", closed_port());
    for value in [tcp.as_str(), "npipe:////./pipe/docker_engine"] {
        let out = isolated(home)
            .args(["detect", "--no-config", "--timeout", "2"])
            .env("DOCKER_HOST", value)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{value}: {err}");
        assert!(out.stdout.is_empty(), "{value}: decided anyway");
        assert!(
            err.contains(value) && err.contains("named by DOCKER_HOST"),
            "{value}: {err}"
        );
    }
}

/// An engine endpoint that requires TLS without usable TLS material (none, a missing CA, a
/// broken file, Podman's https:// for which no material is named) is refused (exit 2, naming
/// what asked for TLS and the file), and not one byte goes to it: it used to get plain HTTP.
/// The "engine" is a loopback listener that only records whether anything connected. With
/// material, TLS is spoken (the transport's tests and the remote live tests).
#[test]
fn tls_endpoints_without_usable_material_are_refused_without_a_byte_sent() {
    use std::net::TcpListener;
    // Removed when dropped, also when an assertion fails.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let home = dir.path();
    let docker = home.join(".docker");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    listener
        .set_nonblocking(true)
        .unwrap_or_else(|e| panic!("{e}"));
    let port = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("{e}"))
        .port();
    let tcp = format!("tcp://127.0.0.1:{port}");
    let https = format!("https://127.0.0.1:{port}");
    // A context in the store whose host is plain tcp://, with TLS material or SkipTLSVerify.
    let context = |name: &str, skip_verify: bool, material: bool| {
        use sha2::Digest;
        let hex: String = sha2::Sha256::digest(name.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let meta = docker.join("contexts/meta").join(&hex);
        std::fs::create_dir_all(&meta).unwrap_or_else(|e| panic!("{e}"));
        let doc = serde_json::json!({"Name": name, "Endpoints": {"docker": {"Host": tcp, "SkipTLSVerify": skip_verify}}});
        std::fs::write(meta.join("meta.json"), doc.to_string()).unwrap_or_else(|e| panic!("{e}"));
        if material {
            let store = docker.join("contexts/tls").join(&hex).join("docker");
            std::fs::create_dir_all(&store).unwrap_or_else(|e| panic!("{e}"));
            for f in ["ca.pem", "cert.pem", "key.pem"] {
                std::fs::write(store.join(f), "-").unwrap_or_else(|e| panic!("{e}"));
            }
        }
    };
    context("remote-tls", false, true);
    context("remote-skip", true, false);
    let cert_path = home.display().to_string();
    let home_ca = format!("{}/.docker/ca.pem", home.display());
    let own_ca = format!("{}/ca.pem", home.display());
    // (environment, flags, what the refusal names as asking for TLS, the file it names)
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str], &'a str, &'a str);
    let cases: [Case<'_>; 7] = [
        (&[("DOCKER_HOST", &https)], &[], "DOCKER_HOST", &home_ca),
        (
            &[],
            &["--endpoint", &https, "--driver", "podman"],
            "--endpoint",
            "no TLS material",
        ),
        (
            &[("DOCKER_HOST", &tcp), ("DOCKER_TLS_VERIFY", "1")],
            &[],
            "DOCKER_TLS_VERIFY",
            &home_ca,
        ),
        (
            &[("DOCKER_HOST", &tcp), ("DOCKER_CERT_PATH", &cert_path)],
            &[],
            "DOCKER_CERT_PATH",
            &own_ca,
        ),
        (
            &[("DOCKER_TLS", "1")],
            &["--endpoint", &tcp, "--driver", "docker"],
            "DOCKER_TLS",
            &home_ca,
        ),
        (
            &[("DOCKER_CONTEXT", "remote-tls")],
            &[],
            "TLS material",
            "ca.pem holds no certificate",
        ),
        (
            &[("DOCKER_CONTEXT", "remote-skip")],
            &[],
            "SkipTLSVerify",
            "/docker/ca.pem",
        ),
    ];
    for (vars, flags, why, file) in cases {
        let out = isolated(home)
            .args(["detect", "--no-config", "--timeout", "2"])
            .args(flags)
            .envs(vars.iter().copied())
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{vars:?} {flags:?}: {err}");
        assert!(
            err.contains("requires TLS")
                && err.contains(why)
                && err.contains(&https)
                && err.contains(file),
            "{vars:?} {flags:?}: {err}"
        );
        assert!(
            listener.accept().is_err(),
            "{vars:?} {flags:?}: the TLS endpoint was sent plain HTTP"
        );
    }
}

/// A reader that goes away (`detect | head -1`) ends the output quietly: no panic, no error.
#[test]
fn a_closed_stdout_is_not_a_panic() {
    let facts = fixture("native-docker/debian12-docker.io-20.10.24-this-machine.json");
    for args in [
        vec!["matrix"],
        vec!["matrix", "-o", "json"],
        vec!["detect", "--no-config", "-o", "json", "--facts", &facts],
    ] {
        let mut child = bin()
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run the binary: {e}"));
        // Close the read end before the binary writes.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    }
}
