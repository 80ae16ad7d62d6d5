//! Host-network routes: every bundled capture decided for sandboxes in the engine's host
//! network namespace, and the overrides checked against that namespace.

use std::net::IpAddr;

use openshell_runtime::{
    Facts, HostTarget, NetworkMode, Registry, RouteContext, RouteError, RouteKind,
};
use openshell_tests::decide_direct as decide;
use openshell_tests::fixtures;
use serde_json::json;

fn host_ctx() -> RouteContext {
    RouteContext {
        network_mode: NetworkMode::Host,
        ..RouteContext::default()
    }
}

/// `runtime target bind`, or `runtime refused: <error>`, for `facts` in host mode.
fn host_outcome(facts: &Facts) -> String {
    let d = decide(&Registry::builtin(), facts, &host_ctx());
    let runtime = d.runtime_id().unwrap_or("-").to_string();
    match &d.route {
        Ok(r) => format!(
            "{runtime} {} {}",
            r.openshell_host,
            r.bind.map_or("-".to_string(), |b| b.to_string())
        ),
        Err(e) => format!("{runtime} refused: {e}"),
    }
}

fn check(facts: serde_json::Value, expect: &str) {
    let facts = Facts::from_value(&facts).unwrap_or_else(|e| panic!("facts refused: {e}"));
    let got = host_outcome(&facts);
    match expect.strip_suffix('…') {
        Some(prefix) => assert!(
            got.starts_with(prefix),
            "expected {expect:?}\n     got {got:?}"
        ),
        None => assert_eq!(got, expect),
    }
}

/// What each runtime answers for host networking, given what it answered for a bridge (a
/// capture whose bridge route is refused for want of facts may still have a host route).
fn expected(runtime: &str, bridge_refused: bool, facts: &Facts) -> &'static str {
    match runtime {
        "native-docker" | "podman" | "podman-rootless" | "orbstack" => "127.0.0.1 127.0.0.1",
        "lima" | "colima" => "192.168.5.2 127.0.0.1",
        "rancher-desktop" if facts.host_os == Some(openshell_runtime::HostOs::Windows) => {
            "192.168.127.254 127.0.0.1"
        }
        "rancher-desktop" => "192.168.5.2 127.0.0.1",
        "podman-machine" if bridge_refused => "refused",
        "podman-machine" => "192.168.127.254 127.0.0.1",
        "docker-desktop" | "rootless-docker" | "remote-docker" => "refused",
        other => panic!("no host-network expectation for {other}"),
    }
}

#[test]
fn every_capture_has_a_host_network_answer() {
    let mut failures = Vec::new();
    let all = fixtures();
    assert!(!all.is_empty(), "no fixtures found");
    for f in &all {
        let facts = Facts::from_value(&f.doc).unwrap_or_else(|e| panic!("{}: {e}", f.name));
        let bridge = decide(&Registry::builtin(), &facts, &RouteContext::default());
        let Some(runtime) = bridge.runtime_id() else {
            continue;
        };
        let want = expected(runtime, bridge.route.is_err(), &facts);
        let d = decide(&Registry::builtin(), &facts, &host_ctx());
        let got = match &d.route {
            Ok(r) => {
                assert_eq!(r.route_kind, RouteKind::HostNetwork, "{}", f.name);
                for e in r.extra_hosts() {
                    assert!(
                        matches!(e.value(), HostTarget::Ip(_)),
                        "{}: host networking needs literal extra hosts, got {e}",
                        f.name
                    );
                }
                format!(
                    "{} {}",
                    r.openshell_host,
                    r.bind.map_or("-".into(), |b| b.to_string())
                )
            }
            Err(e) => {
                assert!(
                    e.to_string().contains("to fix:"),
                    "{}: refusal names no fix: {e}",
                    f.name
                );
                "refused".into()
            }
        };
        if got != want {
            failures.push(format!(
                "{} ({runtime}): expected {want}, got {got}",
                f.name
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn rootless_docker(overrides: serde_json::Value) -> serde_json::Value {
    json!({
        "host_os": "linux", "host_ipv4": "192.0.2.10",
        "endpoint": "unix:///run/user/1001/docker.sock",
        "info": {"ServerVersion": "20.10.24", "SecurityOptions": ["name=seccomp,profile=default", "name=rootless"]},
        "network": {"Driver": "bridge", "IPAM": {"Config": [{"Gateway": "172.18.0.1"}]}},
        "overrides": overrides
    })
}

fn colima() -> serde_json::Value {
    json!({
        "host_os": "macos", "endpoint": "unix:///Users/u/.colima/default/docker.sock",
        "info": {"Name": "colima", "ServerVersion": "27.4.0", "OperatingSystem": "Ubuntu 24.04 LTS"}
    })
}

#[test]
fn rootless_docker_needs_host_loopback_for_host_networking() {
    check(rootless_docker(json!({})), "rootless-docker refused: rootless-docker: no safe route: host networking joins RootlessKit's namespace…");
    check(
        rootless_docker(json!({"rootless_host_loopback": true})),
        "rootless-docker 10.0.2.2 127.0.0.1",
    );
    // The naive 127.0.0.1 is RootlessKit's own loopback: refused with the address that works.
    let err = "rootless-docker refused: rootless-docker: with host networking, 127.0.0.1 is the loopback of RootlessKit's network namespace, not of the gateway's host";
    check(
        rootless_docker(json!({"rootless_host_loopback": true, "host_gateway_ip": "127.0.0.1"})),
        &format!("{err}, so nothing the gateway binds receives it; to fix: set host_gateway_ip to 10.0.2.2 (or leave it unset), which RootlessKit's network namespace forwards to the gateway host, or run sandboxes on a bridge network"),
    );
    check(
        rootless_docker(json!({"host_gateway_ip": "127.0.0.1"})),
        &format!("{err}…"),
    );
    // The host's primary address is the operator's to choose, as for a bridge.
    check(
        rootless_docker(json!({"host_gateway_ip": "192.0.2.10"})),
        "rootless-docker 192.0.2.10 192.0.2.10",
    );
}

#[test]
fn rootless_docker_host_fallbacks_offer_the_loopback_driver_address() {
    let facts = Facts::from_value(&rootless_docker(json!({}))).unwrap_or_else(|e| panic!("{e}"));
    let d = decide(&Registry::builtin(), &facts, &host_ctx());
    assert!(d.route.is_err());
    let fallbacks: Vec<String> = d
        .fallbacks
        .iter()
        .map(|r| format!("{} {:?} {:?}", r.openshell_host, r.bind, r.route_kind))
        .collect();
    assert_eq!(
        fallbacks,
        ["10.0.2.2 Some(127.0.0.1) HostNetwork"],
        "host-mode fallbacks"
    );
}

#[test]
fn a_vm_runtime_refuses_its_own_loopback_and_names_its_host_address() {
    check(colima(), "colima 192.168.5.2 127.0.0.1");
    let mut c = colima();
    c["overrides"] = json!({"host_gateway_ip": "127.0.0.1"});
    let facts = Facts::from_value(&c).unwrap_or_else(|e| panic!("{e}"));
    let d = decide(&Registry::builtin(), &facts, &host_ctx());
    match d.route {
        Err(RouteError::LoopbackElsewhere {
            ref namespace,
            ref fix,
            ..
        }) => {
            assert_eq!(namespace, "the VM");
            assert!(fix.contains("192.168.5.2"), "{fix}");
        }
        ref other => panic!("expected LoopbackElsewhere, got {other:?}"),
    }
    // For a bridge sandbox loopback is its own, whatever the runtime: the address check
    // refuses it.
    let bridge = decide(&Registry::builtin(), &facts, &RouteContext::default());
    assert!(
        matches!(bridge.route, Err(RouteError::Address { .. })),
        "{:?}",
        bridge.route
    );
    // Lima's host address as an override keeps the gateway on loopback.
    c["overrides"] = json!({"host_gateway_ip": "192.168.5.2"});
    check(c, "colima 192.168.5.2 127.0.0.1");
}

#[test]
fn docker_desktop_host_networking_is_the_operators_declaration() {
    let dd = || {
        json!({"host_os": "macos", "endpoint": "unix:///Users/u/.docker/run/docker.sock",
        "info": {"OperatingSystem": "Docker Desktop", "ServerVersion": "27.3.1", "Name": "docker-desktop"}})
    };
    check(dd(), "docker-desktop refused: docker-desktop: no safe route: a host-network container sits in Desktop's VM unless Desktop's opt-in host networking…");
    let mut on = dd();
    on["overrides"] = json!({"host_gateway_ip": "127.0.0.1"});
    check(on, "docker-desktop 127.0.0.1 127.0.0.1");
}

#[test]
fn the_loopback_check_only_applies_to_host_networking() {
    let ctx = RouteContext::default();
    assert_eq!(ctx.network_mode, NetworkMode::Bridge);
    assert_eq!(NetworkMode::parse("HOST"), Some(NetworkMode::Host));
    assert_eq!(NetworkMode::parse("container:x"), None);
    let kind = serde_json::to_value(RouteKind::HostNetwork).unwrap_or_default();
    assert_eq!(kind, json!("host-network"));
    let native = json!({"host_os": "linux", "endpoint": "unix:///var/run/docker.sock",
        "info": {"ServerVersion": "20.10.24"},
        "network": {"Driver": "bridge", "IPAM": {"Config": [{"Gateway": "172.18.0.1"}]}}});
    check(native.clone(), "native-docker 127.0.0.1 127.0.0.1");
    let facts = Facts::from_value(&native).unwrap_or_else(|e| panic!("{e}"));
    let route = decide(&Registry::builtin(), &facts, &host_ctx())
        .route
        .unwrap_or_else(|e| panic!("{e}"));
    let loopback: IpAddr = [127, 0, 0, 1].into();
    let hosts: Vec<String> = route.extra_hosts().iter().map(|e| e.to_string()).collect();
    assert_eq!(
        hosts,
        [
            "host.openshell.internal:127.0.0.1",
            "host.docker.internal:127.0.0.1"
        ]
    );
    assert_eq!(route.bind, Some(loopback));
    assert_eq!(
        route.sandbox_endpoint(),
        "http://host.openshell.internal:17670"
    );
}
