//! Live: Debian 13's engines (issue 21), each in a network namespace of its own
//! (`scripts/engines-2026.sh`): Podman 5.4.2 rootful (netavark, aardvark-dns) and rootless
//! (pasta, with and without a systemd user session), Docker 26.1.5 rootful and rootless
//! (RootlessKit, slirp4netns). `doctor` runs inside the engine's namespace, as a gateway must:
//! that namespace is the engine's host, and its "LAN" address is on a link of that namespace
//! only (nothing reaches this machine's interfaces).

use std::process::Output;

use openshell_tests::live::{self, Engine, EngineId, Pair};
use serde_json::Value;

use crate::common::*;

/// The namespaced pairs of the one list of live pairs, whose engine is up (or a failure under
/// `OPENSHELL_LIVE=require`).
fn namespaced(keep: impl Fn(&Pair) -> bool) -> Vec<(Pair, Engine)> {
    live::pairs()
        .filter(|p| p.engine.namespaced() && keep(p))
        .map(|p| (p, p.local()))
        .filter(|(_, e)| e.available())
        .collect()
}

/// `doctor` for `pair` in its namespace on a fresh network of the test's `tag`, which is removed
/// after; fails when the run left its network or a relay behind.
fn doctor_on(pair: &Pair, engine: &Engine, tag: &str, extra: &[&str]) -> (Output, Value) {
    let network = format!("openshell-2026-{tag}-{}-{}", std::process::id(), pair.name);
    doctor_cleanly(engine, pair.driver(), &network, extra, pair.name)
}

/// `doctor` through `driver` on `network`, which is removed after; fails (naming `who`) when
/// the run left its network or a relay behind.
fn doctor_cleanly(
    engine: &Engine,
    driver: &str,
    network: &str,
    extra: &[&str],
    who: &str,
) -> (Output, Value) {
    let out = doctor(engine, driver, network, extra);
    let relays = live::containers_labelled(
        engine,
        openshell_runtime::consts::LABEL_RELAY_NETWORK,
        network,
    );
    live::remove_network(engine, network);
    let v = json(&out);
    assert!(
        relays.unwrap_or_else(|e| panic!("{e}")).is_empty(),
        "{who}: doctor left its relay behind"
    );
    assert!(
        !live::exists(engine, "network", network),
        "{who}: network {network} left behind"
    );
    (out, v)
}

fn host_addr(pair: &Pair, engine: &Engine) -> String {
    engine.host_addr().unwrap_or_else(|| {
        panic!(
            "{}: no host address in scripts/engines-2026.sh's env",
            pair.name
        )
    })
}

/// The regression test of the DNS defect: on rootless Podman 5 without a systemd user session,
/// every container on a DNS-enabled network failed to start ("aardvark-dns failed to start:
/// Failed to connect to user scope bus"), so `doctor` proved nothing through either driver.
/// The network we create has no DNS, through libpod and through the Docker-compatible API (where
/// the Docker driver creates it with libpod's call): the relay and the probe start on it and the
/// relay route is proven. A network the operator made with DNS is used as is, and fails there.
#[test]
fn rootless_podman5_without_session_runs_containers_on_our_network() {
    for (pair, engine) in namespaced(|p| p.engine == EngineId::Podman5Rootless) {
        let network = format!("openshell-2026-dns-{}-{}", std::process::id(), pair.name);
        let out = doctor(
            &engine,
            pair.driver(),
            &network,
            &["--route-kind", "relay", "--port", "17691"],
        );
        let dns = std::process::Command::new(&engine.cli[0])
            .args(&engine.cli[1..])
            .args([
                "network",
                "inspect",
                "--format",
                "{{.DNSEnabled}}",
                &network,
            ])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|e| e.to_string());
        live::remove_network(&engine, &network);
        let v = json(&out);
        assert_eq!(out.status.code(), Some(0), "{}: {v}", pair.name);
        assert_eq!(v["probes"][0]["openshell_host"], "relay", "{v}");
        assert_eq!(v["probes"][0]["outcome"], "ok", "{v}");
        assert_eq!(dns, "false", "{}", pair.name);
    }
}

/// A sandbox network the operator made with DNS on rootless Podman 5 without a user session is
/// used as is: nothing starts on it, and `doctor` says why (the engine's aardvark-dns error).
#[test]
fn rootless_podman5_without_session_and_an_operators_dns_network() {
    for (pair, engine) in namespaced(|p| p.engine == EngineId::Podman5Rootless && p.native()) {
        let network = format!("openshell-2026-opdns-{}", std::process::id());
        let made = std::process::Command::new(&engine.cli[0])
            .args(&engine.cli[1..])
            .args(["network", "create", &network])
            .output();
        assert!(
            made.is_ok_and(|o| o.status.success()),
            "cannot create {network}"
        );
        let out = doctor(
            &engine,
            pair.driver(),
            &network,
            &["--route-kind", "relay", "--port", "17692"],
        );
        live::remove_network(&engine, &network);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_ne!(out.status.code(), Some(0), "{text}");
        assert!(text.contains("aardvark-dns"), "{text}");
    }
}

/// `doctor` with the default route kind on each engine through each driver it speaks: the
/// rootful engines route to the sandbox bridge's gateway directly; the rootless ones (pasta's
/// `host-gateway` needs a LAN-facing bind; RootlessKit without host loopback reaches only the
/// host's LAN address) relay, with the gateway on 127.0.0.1. Every route is proven.
#[test]
fn doctor_decides_and_proves_the_default_route() {
    for (pair, engine) in namespaced(|_| true) {
        let (out, v) = doctor_on(&pair, &engine, "auto", &["--port", "17693"]);
        assert_eq!(out.status.code(), Some(0), "{}: {v}", pair.name);
        assert_eq!(v["runtime"], engine.runtime, "{}: {v}", pair.name);
        assert_eq!(v["probes"][0]["outcome"], "ok", "{}: {v}", pair.name);
        assert_eq!(v["proven"]["openshell_host"], v["openshell_host"], "{v}");
        if pair.engine.rootless() {
            assert_eq!(v["route_kind"], "relay", "{}: {v}", pair.name);
            assert_eq!(v["bind"], "127.0.0.1", "{}: {v}", pair.name);
        } else {
            assert_eq!(v["route_kind"], "bridge", "{}: {v}", pair.name);
            // The sandbox bridge's gateway, inside the engine's namespace.
            let gw = v["openshell_host"].as_str().unwrap_or_default();
            assert!(gw.starts_with("10."), "{}: {v}", pair.name);
            assert_eq!(v["bind"], gw, "{}: {v}", pair.name);
        }
    }
}

/// `doctor --route-kind relay` on each engine through each driver: the relay (imported over the
/// engine's API, attached, carrying the probe to the gateway on 127.0.0.1) is proven.
#[test]
fn doctor_proves_the_relay() {
    for (pair, engine) in namespaced(|_| true) {
        let (out, v) = doctor_on(
            &pair,
            &engine,
            "relay",
            &["--route-kind", "relay", "--port", "17694"],
        );
        assert_eq!(out.status.code(), Some(0), "{}: {v}", pair.name);
        assert_eq!(v["route_kind"], "relay", "{}: {v}", pair.name);
        assert_eq!(v["probes"][0]["openshell_host"], "relay", "{v}");
        assert_eq!(v["probes"][0]["outcome"], "ok", "{}: {v}", pair.name);
        assert_eq!(v["proven"]["bind"], "127.0.0.1", "{v}");
        // Issue 25: the policy's evidence says socket (a native runtime on a unix:// socket),
        // but the engine's root is its own: the relay cannot see the gateway's socket and the
        // probe is carried over the attach stream, with the reason in the notes.
        let notes = v["probes"][0]["notes"].to_string();
        assert!(
            notes.contains("over the engine's attach stream")
                && notes.contains("could not use the gateway's socket"),
            "{}: {v}",
            pair.name
        );
    }
}

/// `doctor --network-mode host`: on the rootful engines and on rootless Podman 5 with pasta (a
/// host-network container shares the user's namespace, which is the host's: pasta is not
/// involved) the probe reaches the gateway on 127.0.0.1. Rootless Docker's host network is
/// RootlessKit's namespace, whose loopback is not the host's: without declared host loopback no
/// direct route is decided, and the host-network relay (issue 23), listening on that namespace's
/// 127.0.0.1, is decided and proven.
#[test]
fn doctor_proves_host_networking() {
    for (pair, engine) in namespaced(|_| true) {
        let (out, v) = doctor_on(
            &pair,
            &engine,
            "host",
            &["--network-mode", "host", "--port", "17695"],
        );
        if pair.engine == EngineId::Docker26Rootless {
            assert_eq!(out.status.code(), Some(0), "{}: {v}", pair.name);
            assert_eq!(v["route_kind"], "relay", "{}: {v}", pair.name);
            assert_eq!(v["openshell_host"], "127.0.0.1", "{v}");
            assert_eq!(v["bind"], "127.0.0.1", "{v}");
            let notes = v["probes"][0]["notes"].to_string();
            assert!(
                notes.contains("in the engine's host network namespace"),
                "{}: {v}",
                pair.name
            );
        } else {
            assert_eq!(out.status.code(), Some(0), "{}: {v}", pair.name);
            assert_eq!(v["route_kind"], "host-network", "{v}");
            assert_eq!(v["openshell_host"], "127.0.0.1", "{v}");
            assert_eq!(v["bind"], "127.0.0.1", "{v}");
            assert_eq!(v["probes"][0]["outcome"], "ok", "{}: {v}", pair.name);
        }
    }
}

/// `doctor --allow-lan` on the rootless engines: the direct route with a LAN-facing bind on the
/// host's address (the namespace's uplink address). Podman 5.4 with pasta sends `host-gateway`
/// (169.254.1.2, which pasta maps to the host's address); rootless Docker sends the address
/// itself (slirp4netns forwards it). Both are proven.
#[test]
fn doctor_proves_the_lan_route_when_allowed() {
    for (pair, engine) in namespaced(|p| p.engine.rootless()) {
        let addr = host_addr(&pair, &engine);
        let (out, v) = doctor_on(&pair, &engine, "lan", &["--allow-lan", "--port", "17696"]);
        assert_eq!(out.status.code(), Some(0), "{}: {v}", pair.name);
        assert_eq!(v["route_kind"], "bridge", "{}: {v}", pair.name);
        assert_eq!(v["bind"], addr.as_str(), "{}: {v}", pair.name);
        let target = if pair.engine.podman() {
            "host-gateway"
        } else {
            addr.as_str()
        };
        assert_eq!(v["openshell_host"], target, "{}: {v}", pair.name);
        assert_eq!(v["probes"][0]["outcome"], "ok", "{}: {v}", pair.name);
    }
}

/// pasta refuses the host's 127.0.0.1: 169.254.1.2 is mapped to the host's address, so a
/// gateway on loopback gets nothing and the probe is refused (the operator's overrides, forced
/// direct).
#[test]
fn pasta_does_not_reach_the_hosts_loopback() {
    for (pair, engine) in namespaced(|p| {
        matches!(
            p.engine,
            EngineId::Podman5Rootless | EngineId::Podman5Session
        ) && p.native()
    }) {
        let (out, v) = doctor_on(
            &pair,
            &engine,
            "pasta-lo",
            &[
                "--route-kind",
                "direct",
                "--host-gateway-ip",
                "169.254.1.2",
                "--bind",
                "127.0.0.1",
                "--port",
                "17697",
            ],
        );
        assert_ne!(out.status.code(), Some(0), "{}: {v}", pair.name);
        assert_eq!(v["probes"][0]["bind"], "127.0.0.1", "{v}");
        assert_eq!(v["probes"][0]["outcome"], "refused", "{}: {v}", pair.name);
    }
}

/// issue 21: Docker 26 rootless *with* host loopback (RootlessKit's
/// `--disable-host-loopback=false`, the second rootless dockerd of `scripts/engines-2026.sh`).
/// The engine does not report it, so without the operator's word the relay is decided and
/// proven, as on the default instance; declared (`--rootless-host-loopback`), the direct route
/// 10.0.2.2 with the gateway on 127.0.0.1 is decided and proven, on a bridge and with host
/// networking (RootlessKit's namespace reaches the host's loopback through slirp4netns too).
/// On the default instance (host loopback disabled) the same declaration is wrong: 10.0.2.2
/// times out and the relay fallback is proven. Every address stays inside the engine's
/// namespace and RootlessKit's below it.
#[test]
fn rootless_docker26_with_host_loopback_proves_the_declared_route() {
    let with = live::docker26_rootless_with_host_loopback();
    let without = EngineId::Docker26Rootless.local();
    if !with.available() || !without.available() {
        return;
    }
    let run = |engine: &Engine, tag: &str, extra: &[&str]| {
        let network = format!("openshell-2026-hl-{tag}-{}", std::process::id());
        doctor_cleanly(engine, "docker", &network, extra, tag)
    };
    let (out, v) = run(&with, "auto", &["--port", "17698"]);
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(v["runtime"], "rootless-docker", "{v}");
    assert_eq!(v["route_kind"], "relay", "{v}");
    assert_eq!(v["probes"][0]["outcome"], "ok", "{v}");
    for (mode, kind) in [("bridge", "bridge"), ("host", "host-network")] {
        let (out, v) = run(
            &with,
            &format!("declared-{mode}"),
            &[
                "--rootless-host-loopback",
                "--network-mode",
                mode,
                "--port",
                "17698",
            ],
        );
        assert_eq!(out.status.code(), Some(0), "{mode}: {v}");
        assert_eq!(v["route_kind"], kind, "{mode}: {v}");
        assert_eq!(v["openshell_host"], "10.0.2.2", "{mode}: {v}");
        assert_eq!(v["bind"], "127.0.0.1", "{mode}: {v}");
        assert_eq!(v["probes"][0]["outcome"], "ok", "{mode}: {v}");
        assert_eq!(v["proven"]["openshell_host"], "10.0.2.2", "{mode}: {v}");
    }
    for (mode, relay_host) in [("bridge", "relay"), ("host", "127.0.0.1")] {
        let (out, v) = run(
            &without,
            &format!("wrong-{mode}"),
            &[
                "--rootless-host-loopback",
                "--network-mode",
                mode,
                "--port",
                "17699",
            ],
        );
        assert_eq!(out.status.code(), Some(0), "{mode}: {v}");
        assert_eq!(v["probes"][0]["openshell_host"], "10.0.2.2", "{mode}: {v}");
        assert_eq!(v["probes"][0]["outcome"], "timeout", "{mode}: {v}");
        assert_eq!(v["proven"]["openshell_host"], relay_host, "{mode}: {v}");
    }
}
