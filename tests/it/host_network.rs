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
        // dockerd resolves host-gateway to Desktop's host proxy for host networking too; the
        // captures whose bridge route is refused (no version, nothing bounding it) stay so.
        "docker-desktop" if bridge_refused => "refused",
        "docker-desktop" => "host-gateway 127.0.0.1",
        "rootless-docker" | "remote-docker" => "refused",
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
                    // Only Desktop's engine is known to point host-gateway at the host.
                    assert!(
                        matches!(e.value(), HostTarget::Ip(_))
                            || (runtime == "docker-desktop"
                                && e.value() == HostTarget::HostGateway),
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

/// Docker Desktop with host networking decides as for a bridge: dockerd resolves host-gateway
/// to its host proxy whatever the network mode (issue 23); Desktop's opt-in host networking is
/// not needed. Refused only where the engine's version is unknown (then `auto` relays), and an
/// operator who turned that feature on may still declare 127.0.0.1.
#[test]
fn docker_desktop_host_networking_routes_through_host_gateway() {
    let dd = || {
        json!({"host_os": "macos", "endpoint": "unix:///Users/u/.docker/run/docker.sock",
        "info": {"OperatingSystem": "Docker Desktop", "ServerVersion": "27.3.1", "Name": "docker-desktop"}})
    };
    check(dd(), "docker-desktop host-gateway 127.0.0.1");
    let facts = Facts::from_value(&dd()).unwrap_or_else(|e| panic!("{e}"));
    let d = decide(&Registry::builtin(), &facts, &host_ctx());
    let route = d.route.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(route.route_kind, RouteKind::HostNetwork);
    assert_eq!(route.network_mode(), NetworkMode::Host);
    let hosts: Vec<String> = route.extra_hosts().iter().map(|e| e.to_string()).collect();
    assert_eq!(
        hosts,
        [
            "host.openshell.internal:host-gateway",
            "host.docker.internal:host-gateway"
        ]
    );
    // Should host-gateway not land, the literal addresses Desktop has used come next.
    let fallbacks: Vec<String> = d
        .fallbacks
        .iter()
        .map(|r| r.openshell_host.to_string())
        .collect();
    assert_eq!(fallbacks, ["192.168.65.254", "192.168.65.2"]);
    let mut on = dd();
    on["overrides"] = json!({"host_gateway_ip": "127.0.0.1"});
    check(on, "docker-desktop 127.0.0.1 127.0.0.1");
    let mut legacy = dd();
    legacy["overrides"] = json!({"host_gateway_ip": "192.168.65.2"});
    check(legacy, "docker-desktop 192.168.65.2 127.0.0.1");
    // An engine too old for host-gateway is refused, as for a bridge.
    let mut old = dd();
    old["info"]["ServerVersion"] = json!("19.03.13");
    check(old, "docker-desktop refused: docker-desktop: no safe route: Docker Engine 19.3.13 predates host-gateway…");
}

/// Where no direct host-mode route exists, `auto` chooses the relay in the engine's host
/// network namespace: the sandbox calls that namespace's 127.0.0.1, the gateway binds
/// 127.0.0.1. Where that namespace is the gateway's own, the direct route wins and a forced
/// relay is refused (it would listen on the gateway's own port). Over every capture.
#[test]
fn host_mode_relays_wherever_no_direct_route_exists() {
    use openshell_runtime::RouteKindChoice;
    let shared = ["native-docker", "podman", "podman-rootless", "orbstack"];
    let loopback: IpAddr = [127, 0, 0, 1].into();
    let mut failures = Vec::new();
    for f in fixtures() {
        let facts = Facts::from_value(&f.doc).unwrap_or_else(|e| panic!("{}: {e}", f.name));
        let with = |kind| {
            let mut facts = facts.clone();
            facts.overrides.route_kind = kind;
            openshell_runtime::decide(&Registry::builtin(), &facts, &host_ctx())
        };
        let direct = with(RouteKindChoice::Direct);
        let auto = with(RouteKindChoice::Auto);
        let forced = with(RouteKindChoice::Relay);
        let runtime = auto.runtime_id().unwrap_or("unknown").to_string();
        let host_relay = |r: &openshell_runtime::Route| {
            r.route_kind == RouteKind::Relay
                && r.openshell_host == HostTarget::Ip(loopback)
                && r.bind == Some(loopback)
                && r.network_mode() == NetworkMode::Host
                && r.extra_hosts()
                    .iter()
                    .all(|e| e.value() == HostTarget::Ip(loopback))
        };
        let auto_ok = match (&direct.route, &auto.route) {
            (Ok(d), Ok(a)) if d.exposure != openshell_runtime::Exposure::Lan => d == a,
            (_, Ok(a)) => host_relay(a),
            (_, Err(_)) => false,
        };
        let forced_ok = if shared.contains(&runtime.as_str()) {
            matches!(forced.route, Err(RouteError::RelayUnavailable { .. }))
                && auto
                    .fallbacks
                    .iter()
                    .all(|r| r.route_kind != RouteKind::Relay)
        } else {
            forced.route.as_ref().is_ok_and(host_relay)
        };
        if !auto_ok || !forced_ok {
            failures.push(format!(
                "{} ({runtime}): direct {:?}, auto {:?}, forced {:?}",
                f.name,
                direct.route.as_ref().map(|r| r.openshell_host),
                auto.route
                    .as_ref()
                    .map(|r| (r.route_kind, r.openshell_host)),
                forced
                    .route
                    .as_ref()
                    .map(|r| (r.route_kind, r.openshell_host))
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// An engine nobody recognises has no known host namespace: `auto` relays in host mode too.
#[test]
fn an_unrecognised_engine_relays_in_host_mode() {
    let facts = Facts::from_value(&json!({"host_os": "freebsd", "info": {"ServerVersion": "1.0"}}))
        .unwrap_or_else(|e| panic!("{e}"));
    let d = openshell_runtime::decide(&Registry::builtin(), &facts, &host_ctx());
    assert_eq!(d.runtime_id(), None);
    let r = d.route.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.route_kind, RouteKind::Relay);
    assert_eq!(r.openshell_host.to_string(), "127.0.0.1");
    assert_eq!(r.network_mode(), NetworkMode::Host);
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
