//! Live: Debian 13's engines (issue 21), each in a network namespace of its own
//! (`scripts/engines-2026.sh`): Podman 5.4.2 rootful (netavark, aardvark-dns) and rootless
//! (pasta, with and without a systemd user session), Docker 26.1.5 rootful and rootless
//! (RootlessKit, slirp4netns). `doctor` runs inside the engine's namespace, as a gateway must:
//! that namespace is the engine's host, and its "LAN" address is on a link of that namespace
//! only (nothing reaches this machine's interfaces).

use openshell_tests::live::{self, Engine, EngineId, Pair};

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
