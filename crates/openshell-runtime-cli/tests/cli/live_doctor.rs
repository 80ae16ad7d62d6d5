//! Live: `doctor` proves routes on this machine's engines.

use std::process::Command;

use crate::common::*;

/// `doctor` proves the route on dockerd, rootful Podman through both drivers and the rootless
/// engines (with `--rootless-host-loopback`), finds the
/// working fallback behind a deliberately broken override, and exits 5 with firewall advice
/// when a firewall drops every route.
#[test]
fn live_doctor_proves_routes_and_classifies_failures() {
    use openshell_tests::live::{self, dockerd};
    // The rootless engines run with host loopback enabled, which they do not report: the
    // operator says so with --rootless-host-loopback (without it the route is the host's
    // LAN-facing address, which tests must not send traffic to).
    for pair in live::pairs().filter(|p| p.engine.on_this_host()) {
        let (engine, driver) = (pair.local(), pair.driver());
        if !engine.available() {
            continue;
        }
        let extra: &[&str] = if engine.rootless_host_loopback {
            &["--rootless-host-loopback"]
        } else {
            &[]
        };
        let network = format!(
            "openshell-doctor-{}-{}-{driver}",
            std::process::id(),
            engine.name.replace(' ', "-")
        );
        let out = doctor(&engine, driver, &network, extra);
        let v = json(&out);
        openshell_tests::live::remove_network(&engine, &network);
        assert!(
            !openshell_tests::live::exists(&engine, "network", &network),
            "network {network} left behind"
        );
        assert_eq!(out.status.code(), Some(0), "{v}");
        assert_eq!(v["runtime"], engine.runtime, "{v}");
        assert_eq!(v["probes"][0]["outcome"], "ok", "{v}");
        assert_eq!(v["proven"]["openshell_host"], v["openshell_host"]);
    }

    let engine = dockerd();
    if !engine.available() {
        return;
    }
    // A broken override (the bridge, with the gateway on loopback): refused, then the runtime's
    // own route is probed and proven.
    let network = format!("openshell-doctor-{}-broken", std::process::id());
    let _network = openshell_tests::live::NetworkRemovedOnDrop::new(&engine, &network);
    let gw = dockerd_bridge_gateway(&network);
    let out = doctor(
        &engine,
        "docker",
        &network,
        &["--host-gateway-ip", &gw, "--bind", "127.0.0.1"],
    );
    let v = json(&out);
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(v["probes"][0]["outcome"], "refused", "{v}");
    assert_eq!(v["probes"][1]["outcome"], "ok", "{v}");
    assert_eq!(v["proven"]["bind"], gw.as_str());

    // An override on the sandbox bridge's subnet that no one holds is neither an address of
    // this host nor an engine bridge's gateway: refused before anything is created (issue 22
    // item 8), exit 2, naming the address and the fix. Before, the probe bound it with
    // IP_FREEBIND, started its container and called it. dockerd's own event log shows that the
    // run created no container at all (the address would only ever have been an unanswered
    // one on this test's bridge).
    let absent = gw
        .rsplit_once('.')
        .map(|(net, _)| format!("{net}.201"))
        .unwrap_or_default();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default()
    };
    let since = now();
    let endpoint = format!("unix://{}", engine.socket);
    let child = bin_in(engine.netns)
        .args([
            "doctor",
            "--no-config",
            "--driver",
            "docker",
            "--endpoint",
            &endpoint,
            "--network",
            &network,
            "--host-gateway-ip",
            &absent,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let pid = child.id();
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "host_gateway_ip {absent} is not an address of this host"
        )) && err.contains("unset it"),
        "{err}"
    );
    // The log up to a second from now: `docker events` returns once it is past.
    let until = now() + 1;
    let events = Command::new("docker")
        .args([
            "events",
            "--since",
            &since.to_string(),
            "--until",
            &until.to_string(),
            "--filter",
            "type=container",
            "--filter",
            "event=create",
            "--filter",
            "label=io.openshell.managed",
            "--format",
            "{{json .Actor.Attributes}}",
        ])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(events.status.success(), "{events:?}");
    let ours: Vec<String> = String::from_utf8_lossy(&events.stdout)
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|a| a["io.openshell.owner"].as_str().map(str::to_string))
                .is_some_and(|o| o.ends_with(&format!("/{pid}")))
        })
        .map(str::to_string)
        .collect();
    assert!(
        ours.is_empty(),
        "the refused run created containers: {ours:?}"
    );

    // A firewall on the sandbox bridge drops the gateway's port: no route proven, exit 5.
    let id = Command::new("docker")
        .args(["network", "inspect", "-f", "{{.Id}}", &network])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let iface = format!("br-{}", id.get(..12).unwrap_or_default());
    let rule = |op: &str| {
        Command::new("iptables")
            .args([
                op, "INPUT", "-i", &iface, "-p", "tcp", "--dport", "17681", "-j", "DROP",
            ])
            .status()
    };
    assert!(rule("-I").is_ok_and(|s| s.success()));
    // Direct routes only: none proven, exit 5, with firewall advice.
    let direct = doctor(
        &engine,
        "docker",
        &network,
        &["--port", "17681", "--route-kind", "direct"],
    );
    // Every kind: the direct routes time out, and the relay, last, is proven with the gateway
    // on loopback (the firewall drops bridge-to-host traffic; the relay's path is the engine's
    // API socket).
    let auto = doctor(&engine, "docker", &network, &["--port", "17681"]);
    let _ = rule("-D");
    openshell_tests::live::remove_network(&engine, &network);
    let v = json(&direct);
    assert_eq!(direct.status.code(), Some(5), "{v}");
    assert_eq!(v["probes"][0]["outcome"], "timeout", "{v}");
    assert!(
        v["probes"]
            .as_array()
            .is_some_and(|p| p.iter().all(|p| p["openshell_host"] != "relay")),
        "{v}"
    );
    assert!(
        v["advice"][0].as_str().is_some_and(|a| a.contains("INPUT")),
        "{v}"
    );
    let v = json(&auto);
    assert_eq!(auto.status.code(), Some(0), "{v}");
    let probes = v["probes"].as_array().cloned().unwrap_or_default();
    let (last, direct) = probes
        .split_last()
        .unwrap_or_else(|| panic!("no probes: {v}"));
    assert!(!direct.is_empty(), "{v}");
    assert!(direct.iter().all(|p| p["outcome"] == "timeout"), "{v}");
    assert_eq!(last["openshell_host"], "relay", "{v}");
    assert_eq!(last["outcome"], "ok", "{v}");
    assert_eq!(v["proven"]["openshell_host"], "relay", "{v}");
    assert_eq!(v["proven"]["bind"], "127.0.0.1", "{v}");
    assert!(
        openshell_tests::live::containers_labelled(
            &engine,
            openshell_runtime::consts::LABEL_RELAY_NETWORK,
            &network
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .is_empty(),
        "doctor left its relay behind"
    );
}

/// Rootless engines whose host loopback is not declared: the policy decides the relay (no
/// LAN-facing bind), `doctor` proves it with the gateway on 127.0.0.1, and leaves no relay.
#[test]
fn live_rootless_engines_without_declared_loopback_relay_by_default() {
    use openshell_tests::live;
    for pair in live::pairs().filter(|p| p.engine.on_this_host() && p.engine.rootless()) {
        let (engine, driver) = (pair.local(), pair.driver());
        if !engine.available() {
            continue;
        }
        let network = format!(
            "openshell-relay-default-{}-{}-{driver}",
            std::process::id(),
            engine.name.replace(' ', "-")
        );
        let endpoint = format!("unix://{}", engine.socket);
        let detect = run(&[
            "detect",
            "--no-config",
            "-o",
            "json",
            "--driver",
            driver,
            "--endpoint",
            &endpoint,
            "--network",
            &network,
        ]);
        let out = doctor(&engine, driver, &network, &[]);
        let relays = openshell_tests::live::containers_labelled(
            &engine,
            openshell_runtime::consts::LABEL_RELAY_NETWORK,
            &network,
        );
        openshell_tests::live::remove_network(&engine, &network);
        let d = json(&detect);
        assert_eq!(detect.status.code(), Some(0), "{d}");
        assert_eq!(d["runtime"], engine.runtime, "{d}");
        assert_eq!(d["route_kind"], "relay", "{d}");
        assert_eq!(d["openshell_host"], "relay", "{d}");
        assert_eq!(d["bind"], "127.0.0.1", "{d}");
        let v = json(&out);
        assert_eq!(out.status.code(), Some(0), "{v}");
        assert_eq!(v["probes"][0]["openshell_host"], "relay", "{v}");
        assert_eq!(v["probes"][0]["outcome"], "ok", "{v}");
        assert_eq!(v["proven"]["bind"], "127.0.0.1", "{v}");
        assert!(
            relays.unwrap_or_else(|e| panic!("{e}")).is_empty(),
            "doctor left its relay behind on {}",
            engine.name
        );
    }
}

/// `doctor --network-mode host` proves the host-network route on every engine here: a probe
/// container in the engine's host namespace calls back to the gateway's loopback.
#[test]
fn live_doctor_proves_host_network_routes() {
    use openshell_tests::live;
    for pair in live::pairs().filter(|p| p.engine.on_this_host()) {
        let (engine, driver) = (pair.local(), pair.driver());
        if !engine.available() {
            continue;
        }
        // Its own port: the bridge doctor test may probe on the default one concurrently.
        let mut extra = vec!["--network-mode", "host", "--port", "17683"];
        if engine.rootless_host_loopback {
            extra.push("--rootless-host-loopback");
        }
        let network = format!(
            "openshell-doctor-host-{}-{}-{driver}",
            std::process::id(),
            engine.name.replace(' ', "-")
        );
        let out = doctor(&engine, driver, &network, &extra);
        let v = json(&out);
        openshell_tests::live::remove_network(&engine, &network);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{} via {driver}: {v}",
            engine.name
        );
        assert_eq!(v["route_kind"], "host-network", "{v}");
        assert_eq!(v["probes"][0]["outcome"], "ok", "{v}");
        assert_eq!(v["bind"], "127.0.0.1", "{v}");
    }
}

/// The host-network relay (issue 23), live on every local engine: on rootless dockerd without
/// declared host loopback (refused before) `auto` decides the relay in RootlessKit's namespace
/// and a probe proves it, with the gateway on 127.0.0.1; a forced relay is proven there too.
/// Where the engine's host namespace is the gateway's own (rootful dockerd and Podman, rootless
/// Podman) a forced relay is refused before anything starts: it would listen on the gateway's
/// own port. No relay is left anywhere.
#[test]
fn live_doctor_proves_the_host_network_relay() {
    use openshell_runtime::consts::LABEL_RELAY_NETWORK;
    use openshell_tests::live;
    for pair in live::pairs().filter(|p| !p.engine.remote()) {
        let (engine, driver) = (pair.local(), pair.driver());
        if !engine.available() {
            continue;
        }
        // The engine's host namespace is the gateway's on every local engine but rootless
        // dockerd (RootlessKit's namespace).
        let gateways_namespace = !pair.engine.rootless() || pair.engine.podman();
        let network = format!(
            "openshell-doctor-hostrelay-{}-{}-{driver}",
            std::process::id(),
            engine.name.replace(' ', "-")
        );
        let base = ["--network-mode", "host", "--port", "17685"];
        let cases: Vec<Vec<&str>> = if gateways_namespace {
            vec![[&base[..], &["--route-kind", "relay"]].concat()]
        } else {
            vec![
                base.to_vec(),
                [&base[..], &["--route-kind", "relay"]].concat(),
                [
                    &base[..],
                    &["--route-kind", "relay", "--rootless-host-loopback"],
                ]
                .concat(),
            ]
        };
        for extra in cases {
            let out = doctor(&engine, driver, &network, &extra);
            let v = json(&out);
            let what = format!("{} via {driver} {extra:?}", engine.name);
            if gateways_namespace {
                // Refused by the policy: nothing to probe, so no route is proven (exit 5).
                assert_eq!(out.status.code(), Some(5), "{what}: {v}");
                let err = v["error"].as_str().unwrap_or_default();
                assert!(err.contains("already reaches the gateway"), "{what}: {v}");
                assert!(
                    v["probes"].as_array().is_none_or(Vec::is_empty),
                    "{what}: {v}"
                );
            } else {
                assert_eq!(out.status.code(), Some(0), "{what}: {v}");
                assert_eq!(v["route_kind"], "relay", "{what}: {v}");
                assert_eq!(v["openshell_host"], "127.0.0.1", "{what}: {v}");
                assert_eq!(v["bind"], "127.0.0.1", "{what}: {v}");
                assert_eq!(v["probes"][0]["outcome"], "ok", "{what}: {v}");
                let notes = v["probes"][0]["notes"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                assert!(
                    notes
                        .iter()
                        .filter_map(|n| n.as_str())
                        .any(|n| n.starts_with("carried by relay container")
                            && n.ends_with("at 127.0.0.1 in the engine's host network namespace")),
                    "{what}: {v}"
                );
            }
            assert_eq!(
                live::containers_labelled(&engine, LABEL_RELAY_NETWORK, "host"),
                Ok(Vec::new()),
                "{what}: relays left"
            );
        }
        live::remove_network(&engine, &network);
    }
}

/// `doctor` takes OpenShell's endpoint from `OPENSHELL_GRPC_ENDPOINT` like any override: on
/// dockerd with host networking its loopback address is proven end to end, and on rootless
/// dockerd without declared host loopback the same address is refused, naming the variable,
/// and only a fallback is proven.
#[test]
fn live_doctor_checks_the_openshell_endpoint() {
    use openshell_tests::live;
    // The dockerds: rootful, where the endpoint works, and rootless, where it does not.
    for pair in live::pairs().filter(|p| p.engine.on_this_host() && !p.engine.podman()) {
        let (engine, works) = (pair.local(), !pair.engine.rootless());
        // Rootless dockerd runs without --rootless-host-loopback here: undeclared, RootlessKit's
        // loopback is not the host's.
        if !engine.available() {
            continue;
        }
        let image =
            openshell_tests::live::import_busybox(&engine).unwrap_or_else(|e| panic!("{e}"));
        let endpoint = format!("unix://{}", engine.socket);
        let network = format!(
            "openshell-doctor-grpc-{}-{}",
            std::process::id(),
            engine.name.replace(' ', "-")
        );
        let out = bin()
            .env("HOME", "/nonexistent")
            .env_remove("XDG_CONFIG_HOME")
            .env("OPENSHELL_GRPC_ENDPOINT", "http://127.0.0.1:17684")
            .args([
                "doctor",
                "-o",
                "json",
                "--driver",
                "docker",
                "--endpoint",
                &endpoint,
                "--network",
                &network,
                "--network-mode",
                "host",
                "--probe-image",
                &image,
                "--probe-timeout",
                "12",
            ])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        openshell_tests::live::remove_image(&engine, &image);
        openshell_tests::live::remove_network(&engine, &network);
        let v = json(&out);
        if works {
            assert_eq!(out.status.code(), Some(0), "{}: {v}", engine.name);
            assert_eq!(v["probes"][0]["outcome"], "ok", "{v}");
            assert_eq!(
                v["sandbox_endpoint"],
                "http://host.openshell.internal:17684"
            );
            assert_eq!(
                v["settings"]["host_gateway_ip"]["source"],
                "OPENSHELL_GRPC_ENDPOINT"
            );
        } else {
            // The decision refuses; doctor then tries the fallbacks, and one that arrives (here
            // 10.0.2.2, RootlessKit's host loopback) is the address that would work.
            match out.status.code() {
                Some(0) => assert_ne!(v["proven"]["openshell_host"], "127.0.0.1", "{v}"),
                other => assert_eq!(other, Some(4), "{}: {v}", engine.name),
            }
            let err = v["error"].as_str().unwrap_or_default();
            assert!(
                err.contains("OPENSHELL_GRPC_ENDPOINT") && err.contains("127.0.0.1"),
                "{}: {v}",
                engine.name
            );
        }
    }
}

/// Eight `doctor` runs at once on a fresh network name all succeed and leave one network (on
/// dockerd 20.10 they made several networks of the name, and every later run failed as
/// ambiguous; on Podman the runs that lost the race failed with a conflict). They also share
/// the gateway's port: all but one probe on a free port.
#[test]
fn concurrent_doctors_leave_one_network() {
    use openshell_tests::live::{
        self as live, import_busybox, networks_named, remove_image, remove_networks_named,
    };
    for pair in live::pairs().filter(|p| p.engine.on_this_host() && !p.engine.rootless()) {
        let (engine, driver) = (pair.local(), pair.driver());
        if !engine.available() {
            continue;
        }
        let network = format!(
            "openshell-cli-{}-concurrent-{}-{driver}",
            std::process::id(),
            engine.name
        );
        let endpoint = format!("unix://{}", engine.socket);
        let image = import_busybox(&engine).unwrap_or_else(|e| panic!("{e}"));
        let outs = run_concurrently(
            8,
            &[
                "doctor",
                "--no-config",
                "-o",
                "json",
                "--driver",
                driver,
                "--endpoint",
                &endpoint,
                "--network",
                &network,
                "--probe-image",
                &image,
                // Eight runs at once are slow on a loaded two-core machine (Podman's /info
                // alone takes seconds); this test is about the network and the port.
                "--timeout",
                "60",
                "--probe-timeout",
                "40",
            ],
        );
        let left = networks_named(&engine, &network);
        remove_networks_named(&engine, &network);
        remove_image(&engine, &image);
        for out in &outs {
            assert_eq!(
                out.status.code(),
                Some(0),
                "{} via {driver}: {}{}",
                engine.name,
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            );
        }
        assert_eq!(left.map(|l| l.len()), Ok(1), "{} via {driver}", engine.name);
    }
}

/// `doctor` beside a running gateway: with the gateway's port held on the route's bind address
/// it still proves the route, on a free port, and says the port is busy (it used to exit 5 and
/// blame the probe image). With `--tls` the route is proven too: the probe speaks plain HTTP
/// and says TLS was not probed (it used to speak https to a plain listener and blame a
/// firewall).
#[test]
fn live_doctor_beside_a_running_gateway_and_with_tls() {
    let engine = openshell_tests::live::dockerd();
    if !engine.available() {
        return;
    }
    let network = format!("openshell-doctor-{}-busy", std::process::id());
    let _network = openshell_tests::live::NetworkRemovedOnDrop::new(&engine, &network);
    // dockerd creates the bridge with the network, so the gateway can bind it before any probe.
    let gw = dockerd_bridge_gateway(&network);
    let gateway = std::net::TcpListener::bind((gw.as_str(), 0));
    let port = gateway
        .as_ref()
        .ok()
        .and_then(|l| l.local_addr().ok())
        .map(|a| a.port().to_string());
    let busy = port.map(|p| doctor(&engine, "docker", &network, &["--port", &p]));
    drop(gateway);
    let tls = doctor(&engine, "docker", &network, &["--tls"]);
    openshell_tests::live::remove_network(&engine, &network);
    let busy = busy.unwrap_or_else(|| panic!("cannot hold a port on {gw:?}"));

    let v = json(&busy);
    assert_eq!(busy.status.code(), Some(0), "{v}");
    assert_eq!(v["probes"][0]["outcome"], "ok", "{v}");
    assert!(
        v["probes"][0]["notes"].as_array().is_some_and(|n| n
            .iter()
            .any(|n| n.as_str().is_some_and(|n| n.contains("in use")))),
        "{v}"
    );

    let v = json(&tls);
    assert_eq!(tls.status.code(), Some(0), "{v}");
    assert_eq!(v["probes"][0]["outcome"], "ok", "{v}");
    assert!(
        v["probes"][0]["notes"].as_array().is_some_and(|n| n
            .iter()
            .any(|n| n.as_str().is_some_and(|n| n.contains("TLS is not probed")))),
        "{v}"
    );
}

/// Out of the box (issue 20): `doctor` with no relay binary, no relay image and no probe image
/// named anywhere proves a route on every local engine and driver, with the route it decides
/// and with the relay: the relay and the probe are the binary this build embeds, imported
/// through the engine's API; nothing is pulled from a registry.
#[test]
fn live_doctor_needs_nothing_built_or_pulled_by_hand() {
    use openshell_tests::live;
    for pair in live::pairs().filter(|p| p.engine.on_this_host()) {
        let (engine, driver) = (pair.local(), pair.driver());
        if !engine.available() {
            continue;
        }
        for kind in ["auto", "relay"] {
            let network = format!(
                "openshell-oob-{}-{}-{driver}-{kind}",
                std::process::id(),
                engine.name.replace(' ', "-")
            );
            let endpoint = format!("unix://{}", engine.socket);
            let mut args = vec![
                "doctor",
                "--no-config",
                "-o",
                "json",
                "--driver",
                driver,
                "--endpoint",
                &endpoint,
                "--network",
                &network,
                "--route-kind",
                kind,
                "--probe-timeout",
                "15",
            ];
            // The rootless engines here run with host loopback on, which they do not report.
            if engine.rootless_host_loopback {
                args.push("--rootless-host-loopback");
            }
            let out = bin()
                .env_remove("OPENSHELL_RELAY_BINARY")
                .env_remove("OPENSHELL_RELAY_IMAGE")
                .args(&args)
                .output()
                .unwrap_or_else(|e| panic!("{e}"));
            let v = json(&out);
            live::remove_network(&engine, &network);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{} {driver} {kind}: {v}",
                engine.name
            );
            assert_eq!(
                v["probes"][0]["outcome"], "ok",
                "{} {driver} {kind}: {v}",
                engine.name
            );
            if kind == "relay" {
                assert_eq!(v["proven"]["openshell_host"], "relay", "{v}");
                // Issue 25: this host's engines share its kernel and filesystem, so the relay
                // carries through the gateway's socket; rootless dockerd (RootlessKit's copy-up
                // /run hides this root run's /run/openshell-relay) falls back to attach, saying why.
                let notes = v["probes"][0]["notes"].to_string();
                let socket = notes.contains("over the gateway's bind-mounted socket");
                let fell_back = notes.contains("could not use the gateway's socket")
                    && notes.contains("no gateway socket at");
                assert!(
                    socket || (engine.runtime == "rootless-docker" && fell_back),
                    "{} {driver}: {v}",
                    engine.name
                );
            }
        }
    }
}
