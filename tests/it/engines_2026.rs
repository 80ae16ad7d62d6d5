//! Debian 13's engines (`scripts/engines-2026.sh`: Podman 5.4 with netavark and pasta, Docker
//! 26), each in a network namespace of its own. What is proven here needs no gateway in that
//! namespace: only the engine's API socket, which the script puts on this host.
//!
//! The sandbox network's DNS (issue 21): rootless Podman 5 without a systemd user session (an
//! ssh login, a CI job) cannot start aardvark-dns, so on a network with DNS every container
//! start failed ("aardvark-dns failed to start: Failed to connect to user scope bus"). The
//! networks we create have DNS off, through both drivers: libpod's create says so, and Podman's
//! Docker-compatible create (which always turns DNS on) is not used on Podman. A network of ours
//! made with DNS by an older version is replaced; one the operator made with DNS is used as it
//! is (and on this engine, sandboxes cannot start on it: the engine's error says why).

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::process::Command;
use std::time::Duration;

use futures_util::FutureExt;
use openshell_engine::{connect_to, DriverKind};
use openshell_runtime::consts::LABEL_MANAGED;
use openshell_runtime::facts::Endpoint;
use openshell_runtime::{EngineKind, Exposure, HostTarget, Route, RouteKind};
use openshell_sandbox::{DriverOptions, SandboxDriver, SandboxSpec, SandboxState};
use openshell_tests::live;

/// One setting `scripts/engines-2026.sh` wrote; panics naming it when missing.
fn setting(settings: &BTreeMap<String, String>, k: &str) -> String {
    settings
        .get(k)
        .cloned()
        .unwrap_or_else(|| panic!("{k} missing from {ENV_FILE}"))
}

/// The settings of `scripts/engines-2026.sh`, or `None` (a skip, or a failure under
/// `OPENSHELL_LIVE=require`) when its engines are not up.
fn settings() -> Option<BTreeMap<String, String>> {
    if let Ok(text) = std::fs::read_to_string(ENV_FILE) {
        return Some(
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
    }
    let what = format!("{ENV_FILE} is missing: run `bash scripts/engines-2026.sh up` as root (Debian 13's engines, each in its own network namespace)");
    if std::env::var(live::LIVE_ENV).is_ok_and(|v| v == "require") {
        panic!("{what}; {}=require demands live engines", live::LIVE_ENV);
    }
    eprintln!("SKIPPED (no engine): {what}");
    None
}

/// Where `scripts/engines-2026.sh up` writes its engines' settings.
const ENV_FILE: &str = "/run/openshell-2026/env";

/// The engine of the defect: rootless Podman 5.4.2 (netavark 1.14, pasta), no user session.
const NO_SESSION: &str = "OPENSHELL_2026_PODMAN5_ROOTLESS";

/// How long a sandbox may take to leave `created` after its start.
const START_WAIT: Duration = Duration::from_secs(20);

fn socket(settings: &BTreeMap<String, String>, engine: &str) -> Endpoint {
    Endpoint::Unix {
        path: setting(settings, &format!("{engine}_SOCKET")),
    }
}

async fn connect(endpoint: &Endpoint, kind: DriverKind, network: &str) -> SandboxDriver {
    let opts = DriverOptions {
        network: network.to_string(),
        ..DriverOptions::default()
    };
    connect_to(kind, endpoint.clone(), opts)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A bridge route to the engine's host address. The sandbox only has to start: its command
/// sends nothing.
fn quiet_route(settings: &BTreeMap<String, String>, engine: &str) -> Route {
    let host = setting(settings, &format!("{engine}_HOST_ADDR"));
    Route {
        runtime: "podman-rootless".into(),
        engine: EngineKind::Podman,
        route_kind: RouteKind::Bridge,
        openshell_host: HostTarget::Ip(host.parse().unwrap_or_else(|e| panic!("{host}: {e}"))),
        target_source: openshell_runtime::TargetSource::Runtime,
        bind: None,
        exposure: Exposure::Lan,
        port: 9,
        tls: false,
        why: "test: the sandbox only has to start".into(),
        notes: Vec::new(),
    }
}

/// The network's `dns_enabled` as libpod reports it.
async fn libpod_dns_enabled(endpoint: &Endpoint, network: &str) -> Option<bool> {
    let libpod = connect(endpoint, DriverKind::Podman, network).await;
    let net = libpod
        .call("network inspect", libpod.ops().inspect_network(network))
        .await
        .unwrap_or_else(|e| panic!("network inspect {network}: {e}"));
    net.body.get("dns_enabled").and_then(|v| v.as_bool())
}

/// Creates `network` through libpod with DNS on, as an older version of ours (`ours`: with our
/// label) or an operator would have, with `curl` on the engine's socket.
fn create_dns_network(endpoint: &Endpoint, network: &str, ours: bool) {
    let Endpoint::Unix { path } = endpoint else {
        panic!("{endpoint} is not a Unix socket")
    };
    let labels: BTreeMap<&str, &str> = if ours {
        BTreeMap::from([(LABEL_MANAGED, "true")])
    } else {
        BTreeMap::new()
    };
    let body = serde_json::json!({
        "name": network, "driver": "bridge", "dns_enabled": true, "labels": labels,
    });
    let out = Command::new("curl")
        .args(["-fsS", "--max-time", "20", "--unix-socket", path])
        .args(["-X", "POST", "-H", "Content-Type: application/json", "-d"])
        .arg(body.to_string())
        .arg("http://d/v4.0.0/libpod/networks/create")
        .output()
        .unwrap_or_else(|e| panic!("curl: {e}"));
    assert!(
        out.status.success(),
        "creating {network} with DNS: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Removes `network` with `curl` (best effort: cleanup of a network that is not ours).
fn remove_network_anyway(endpoint: &Endpoint, network: &str) {
    if let Endpoint::Unix { path } = endpoint {
        let _ = Command::new("curl")
            .args(["-fsS", "--max-time", "20", "--unix-socket", path, "-X"])
            .arg("DELETE")
            .arg(format!(
                "http://d/v4.0.0/libpod/networks/{network}?force=true"
            ))
            .output();
    }
}

/// Which sandbox network a test starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Before {
    /// None: the gateway creates it.
    Nothing,
    /// Ours, made with DNS by a version before issue 21.
    OursWithDns,
    /// The operator's, made with DNS.
    OperatorsWithDns,
}

/// Through `kind`, on rootless Podman 5 without a user session: the gateway's own network has
/// DNS off, and a sandbox on it starts. Everything made is removed, also on failure.
async fn sandbox_starts_without_a_user_session(kind: DriverKind) {
    sandbox_on_network(kind, Before::Nothing).await;
}

/// A sandbox on the sandbox network, starting from `before`, through `kind`, on rootless
/// Podman 5 without a user session.
async fn sandbox_on_network(kind: DriverKind, before: Before) {
    let Some(settings) = settings() else {
        return;
    };
    let endpoint = socket(&settings, NO_SESSION);
    let network = live::unique("openshell-dns");
    if before != Before::Nothing {
        create_dns_network(&endpoint, &network, before == Before::OursWithDns);
    }
    let driver = connect(&endpoint, kind, &network).await;
    let spec = SandboxSpec {
        id: live::unique("dns"),
        image: setting(&settings, "OPENSHELL_2026_IMAGE"),
        command: vec!["sleep".into(), "30".into()],
        token: live::token(),
        labels: BTreeMap::new(),
    };
    let route = quiet_route(&settings, NO_SESSION);
    let outcome = AssertUnwindSafe(async {
        driver
            .ensure_network()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            libpod_dns_enabled(&endpoint, &network).await,
            Some(before == Before::OperatorsWithDns),
            "the sandbox network {network}'s DNS via the {} driver, starting from {before:?}",
            driver.name()
        );
        let h = driver
            .create(&spec, &route)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let started = driver.start(&h).await;
        if before == Before::OperatorsWithDns {
            // Left as the operator made it: the engine's own error says what failed.
            let Err(e) = started else {
                panic!("a sandbox started on a network with DNS, without a user session");
            };
            assert!(
                e.to_string().contains("aardvark-dns failed to start"),
                "unexpected error: {e}"
            );
            return;
        }
        started.unwrap_or_else(|e| panic!("sandbox start via the {} driver: {e}", driver.name()));
        let deadline = tokio::time::Instant::now() + START_WAIT;
        let state = loop {
            let state = driver.inspect(&h).await.unwrap_or_else(|e| panic!("{e}"));
            if state != SandboxState::Created || tokio::time::Instant::now() > deadline {
                break state;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(state, SandboxState::Running, "the sandbox did not run");
    })
    .catch_unwind()
    .await;
    if let Ok(all) = driver.list().await {
        for h in all.iter().filter(|h| h.id == spec.id) {
            let _ = driver.delete(h).await;
        }
    }
    let removed = driver.remove_network().await;
    if before == Before::OperatorsWithDns {
        remove_network_anyway(&endpoint, &network);
    }
    let left = driver
        .call("network inspect", driver.ops().inspect_network(&network))
        .await;
    assert!(
        left.is_err_and(|e| e.is_not_found()),
        "network {network} left behind (removing it gave {removed:?})"
    );
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test]
async fn rootless_podman_5_without_a_session_starts_sandboxes_via_libpod() {
    sandbox_starts_without_a_user_session(DriverKind::Podman).await;
}

#[tokio::test]
async fn rootless_podman_5_without_a_session_starts_sandboxes_via_docker_api() {
    sandbox_starts_without_a_user_session(DriverKind::Docker).await;
}

#[tokio::test]
async fn our_network_made_with_dns_by_an_older_version_is_replaced_via_libpod() {
    sandbox_on_network(DriverKind::Podman, Before::OursWithDns).await;
}

#[tokio::test]
async fn an_operators_network_with_dns_is_left_as_it_is_via_libpod() {
    sandbox_on_network(DriverKind::Podman, Before::OperatorsWithDns).await;
}

/// Four runs at once find our network made with DNS: they agree on one replacement without
/// DNS (each removes the old one by id, so none removes another's new network).
#[tokio::test]
async fn concurrent_runs_agree_on_one_replacement_of_our_dns_network() {
    let Some(settings) = settings() else {
        return;
    };
    let endpoint = socket(&settings, NO_SESSION);
    let network = live::unique("openshell-dns");
    create_dns_network(&endpoint, &network, true);
    let mut drivers = Vec::new();
    for _ in 0..4 {
        drivers.push(connect(&endpoint, DriverKind::Podman, &network).await);
    }
    let outcome = AssertUnwindSafe(async {
        let runs = drivers.iter().map(|d| d.ensure_network());
        for (i, r) in futures_util::future::join_all(runs)
            .await
            .into_iter()
            .enumerate()
        {
            r.unwrap_or_else(|e| panic!("run {i}: {e}"));
        }
        let libpod = &drivers[0];
        let nets = libpod
            .call("network list", libpod.ops().list_networks(&network))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let named: Vec<_> = nets.iter().filter(|n| n.name == network).collect();
        assert_eq!(named.len(), 1, "networks called {network}: {named:?}");
        assert_eq!(libpod_dns_enabled(&endpoint, &network).await, Some(false));
    })
    .catch_unwind()
    .await;
    let removed = drivers[0].remove_network().await;
    remove_network_anyway(&endpoint, &network);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    removed.unwrap_or_else(|e| panic!("removing {network}: {e}"));
}
