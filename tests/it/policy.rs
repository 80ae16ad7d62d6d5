//! Targeted policy scenarios, each one facts document through one `check` helper.

use openshell_runtime::registry::{Detection, Detector};
use openshell_runtime::{
    ContainerRuntime, EngineKind, Evidence, External, Facts, HostTarget, Registry, RouteContext,
    RouteError, RoutePlan,
};
use openshell_tests::decide_direct as decide;
use serde_json::json;

/// Decides `facts` and compares `runtime openshell_host bind` (or `runtime refused: <text>`).
fn check_with(registry: &Registry, facts: serde_json::Value, expect: &str) {
    let facts = Facts::from_value(&facts).unwrap_or_else(|e| panic!("facts refused: {e}"));
    let d = decide(registry, &facts, &RouteContext::default());
    let runtime = d.runtime_id().unwrap_or("-");
    let got = match &d.route {
        Ok(r) => format!(
            "{runtime} {} {}",
            r.openshell_host,
            r.bind.map_or("-".to_string(), |b| b.to_string())
        ),
        Err(e) => format!("{runtime} refused: {e}"),
    };
    if let Some(prefix) = expect.strip_suffix('…') {
        assert!(
            got.starts_with(prefix),
            "expected {expect:?}\n     got {got:?}"
        );
    } else {
        assert_eq!(got, expect);
    }
}

fn check(facts: serde_json::Value, expect: &str) {
    check_with(&Registry::builtin(), facts, expect);
}

fn libkrun_mac(version: &str) -> serde_json::Value {
    // The shape of the original report: Podman 5.x in a libkrun VM on macOS, reached through
    // the Docker API. Name and OS as Podman machine reports them.
    json!({
        "host_os": "macos",
        "endpoint": "unix:///var/folders/x/T/podman/podman-machine-default-api.sock",
        "ping": {"Api-Version": "1.41", "Libpod-Api-Version": version, "Server": format!("Libpod/{version} (linux)")},
        "info": {"Name": "localhost.localdomain", "OperatingSystem": "fedora", "OSType": "linux", "ServerVersion": version},
        "network": {"Name": "openshell", "Driver": "bridge", "IPAM": {"Config": [{"Subnet": "10.89.0.0/24", "Gateway": "10.89.0.1"}]}}
    })
}

#[test]
fn original_bug_podman_machine_behind_docker_api_is_not_native_docker() {
    check(
        libkrun_mac("5.8.2"),
        "podman-machine host-gateway 127.0.0.1",
    );
    // Before 5.6 Podman cannot resolve host-gateway in a machine: the literal gvproxy address.
    check(
        libkrun_mac("5.5.1"),
        "podman-machine 192.168.127.254 127.0.0.1",
    );
}

#[test]
fn podman_is_recognised_by_any_single_signal() {
    let base = || {
        json!({"host_os": "linux", "endpoint": "unix:///run/podman/podman.sock",
        "info": {"ServerVersion": "4.3.1"},
        "network": {"Driver": "bridge", "IPAM": {"Config": [{"Gateway": "10.89.0.1"}]}}})
    };
    let mut by_header = base();
    by_header["ping"] = json!({"Libpod-Api-Version": "4.3.1"});
    let mut by_server = base();
    by_server["ping"] = json!({"Server": "Libpod/4.3.1 (linux)"});
    let mut by_component = base();
    by_component["version"] =
        json!({"Components": [{"Name": "Podman Engine", "Version": "4.3.1"}]});
    let mut by_info_field = base();
    by_info_field["info"]["BuildahVersion"] = json!("1.28.2");
    for facts in [by_header, by_server, by_component, by_info_field] {
        check(facts, "podman 10.89.0.1 10.89.0.1");
    }
    // Without any Podman signal the same socket facts are Docker's.
    check(base(), "native-docker 10.89.0.1 10.89.0.1");
}

#[test]
fn podman_4_3_never_gets_host_gateway() {
    for (rootless, expect) in [
        (false, "podman 10.89.0.1 10.89.0.1"),
        (true, "podman-rootless 192.0.2.2 192.0.2.2"),
    ] {
        check(
            json!({"host_os": "linux", "host_ipv4": "192.0.2.2",
                "ping": {"Libpod-Api-Version": "4.3.1"},
                "info": {"ServerVersion": "4.3.1", "Rootless": rootless},
                "network": {"Driver": "bridge", "IPAM": {"Config": [{"Gateway": "10.89.0.1"}]}}}),
            expect,
        );
    }
}

fn rootless(version: &str, helper: Option<&str>) -> serde_json::Value {
    let mut host = json!({"security": {"rootless": true}});
    if let Some(h) = helper {
        host["rootlessNetworkCmd"] = json!(h);
    }
    json!({"host_os": "linux", "host_ipv4": "192.0.2.2",
        "ping": {"Libpod-Api-Version": version},
        "info": {"ServerVersion": version},
        "libpod_info": {"host": host, "version": {"Version": version}}})
}

#[test]
fn rootless_podman_routes_by_its_network_helper() {
    check(
        rootless("4.3.1", None),
        "podman-rootless 192.0.2.2 192.0.2.2",
    );
    check(
        rootless("5.4.0", Some("slirp4netns")),
        "podman-rootless 192.0.2.2 192.0.2.2",
    );
    check(
        rootless("5.3.1", Some("pasta")),
        "podman-rootless host-gateway 192.0.2.2",
    );
    check(
        rootless("5.2.3", Some("pasta")),
        "podman-rootless refused: podman-rootless: no safe route: pasta on Podman 5.2.3…",
    );
    // 5.0 defaults to pasta, and 5.0 predates --map-guest-addr.
    check(
        rootless("5.0.2", None),
        "podman-rootless refused: podman-rootless: no safe route: pasta…",
    );
    let mut loopback = rootless("4.3.1", None);
    loopback["overrides"] = json!({"rootless_host_loopback": true});
    check(loopback, "podman-rootless 10.0.2.2 127.0.0.1");
    let mut no_ip = rootless("4.3.1", None);
    no_ip.as_object_mut().map(|o| o.remove("host_ipv4"));
    check(
        no_ip,
        "podman-rootless refused: podman-rootless: cannot route without `host_ipv4`…",
    );
}

fn native(network: serde_json::Value) -> serde_json::Value {
    json!({"host_os": "linux", "endpoint": "unix:///var/run/docker.sock",
        "ping": {"Server": "Docker/27.3.1 (linux)"},
        "info": {"Name": "builder", "OperatingSystem": "Ubuntu 24.04 LTS", "ServerVersion": "27.3.1"},
        "network": network})
}

#[test]
fn native_docker_uses_the_sandbox_bridge_and_handles_odd_ipam() {
    check(
        native(
            json!({"Driver": "bridge", "IPAM": {"Config": [{"Subnet": "172.18.0.0/16", "Gateway": "172.18.0.1"}]}}),
        ),
        "native-docker 172.18.0.1 172.18.0.1",
    );
    check(
        native(
            json!({"Driver": "bridge", "IPAM": {"Config": [{"Subnet": "fd00::/64", "Gateway": "fd00::1"}]}}),
        ),
        "native-docker fd00::1 fd00::1",
    );
    check(
        native(
            json!({"Driver": "bridge", "IPAM": {"Config": [{"Subnet": "fd00::/64", "Gateway": "fd00::1"}, {"Gateway": "172.18.0.1/16"}]}}),
        ),
        "native-docker 172.18.0.1 172.18.0.1",
    );
    check(native(json!({"Driver": "bridge", "IPAM": {"Config": []}})), "native-docker refused: native-docker: cannot route without `network.IPAM.Config[].Gateway`…");
    check(native(json!({"Driver": "bridge", "IPAM": {"Config": [{"Gateway": "not-an-ip"}]}})), "native-docker refused: native-docker: cannot route without `network.IPAM.Config[].Gateway`…");
    check(native(json!({"Driver": "macvlan", "IPAM": {"Config": [{"Gateway": "172.18.0.1"}]}})), "native-docker refused: native-docker: no safe route: the sandbox network uses driver macvlan…");
    check(
        native(serde_json::Value::Null),
        "native-docker refused: native-docker: cannot route without `network`…",
    );
}

#[test]
fn unknown_host_os_or_vm_fails_closed() {
    let mut mac = native(serde_json::Value::Null);
    mac["host_os"] = json!("macos");
    check(mac, "- refused: no detector recognised this engine…");
    let mut plan9 = native(serde_json::Value::Null);
    plan9["host_os"] = json!("plan9");
    check(plan9, "- refused: no detector recognised this engine…");
    check(json!({"ping": {"Libpod-Api-Version": "5.0.0"}, "info": {}}), "- refused: no detector recognised this engine (remote-docker: not mine (the endpoint is local); podman-machine: not mine (no macOS/Windows host or machine socket); podman-rootless: failed…");
}

#[test]
fn overrides_keep_the_bind_narrow_and_the_two_sides_meeting() {
    // The known workaround for the original bug set host_gateway_ip = 192.168.127.254 and
    // bound 0.0.0.0; the container-side override alone must keep the gateway on loopback.
    let mut workaround = libkrun_mac("5.5.1");
    workaround["overrides"] = json!({"host_gateway_ip": "192.168.127.254"});
    check(workaround, "podman-machine 192.168.127.254 127.0.0.1");

    // On native Docker, binding loopback while sandboxes are sent to the bridge cannot work.
    let mut conflict =
        native(json!({"Driver": "bridge", "IPAM": {"Config": [{"Gateway": "172.18.0.1"}]}}));
    conflict["overrides"] = json!({"bind": "127.0.0.1"});
    check(conflict, "native-docker refused: native-docker: bind 127.0.0.1 does not receive traffic sandboxes send to 172.18.0.1; bind 172.18.0.1 instead…");

    // A wildcard bind does receive it, and is reported as such.
    let mut wildcard =
        native(json!({"Driver": "bridge", "IPAM": {"Config": [{"Gateway": "172.18.0.1"}]}}));
    wildcard["overrides"] = json!({"bind": "0.0.0.0"});
    let facts = Facts::from_value(&wildcard).unwrap_or_else(|e| panic!("{e}"));
    let route = decide(&Registry::builtin(), &facts, &RouteContext::default())
        .route
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        route.bind.map(|b| b.to_string()).as_deref(),
        Some("0.0.0.0")
    );
    assert!(
        route.notes.iter().any(|n| n.contains("every interface")),
        "{:?}",
        route.notes
    );

    // A remote engine routes only through the operator's address, bound exactly.
    let remote = || json!({"endpoint": "tcp://10.20.0.5:2376", "ping": {"Server": "Docker/24.0.7 (linux)"}, "info": {"Name": "build-box"}});
    check(remote(), "remote-docker refused: remote-docker: no safe route: the engine at tcp://10.20.0.5:2376 is on another machine…");
    let mut with_ip = remote();
    with_ip["overrides"] = json!({"host_gateway_ip": "10.20.0.1"});
    check(with_ip, "remote-docker 10.20.0.1 10.20.0.1");
}

#[test]
fn invalid_overrides_are_refused_with_the_field_named() {
    for (overrides, field) in [
        (
            json!({"host_gateway_ip": "host-gateway"}),
            "overrides.host_gateway_ip",
        ),
        (json!({"bind": 17670}), "overrides.bind"),
        (json!({"bind": "127.0.0.1\n0.0.0.0"}), "overrides.bind"),
        (
            json!({"rootless_host_loopback": "yes"}),
            "overrides.rootless_host_loopback",
        ),
        (json!({"bind_adress": "127.0.0.1"}), "overrides.bind_adress"),
    ] {
        let err = Facts::from_value(&json!({"info": {}, "overrides": overrides}))
            .err()
            .unwrap_or_else(|| panic!("{overrides} accepted"));
        assert!(err.to_string().contains(field), "{err} should name {field}");
    }
}

#[test]
fn hostile_labels_are_shown_escaped_and_do_not_match() {
    let facts = json!({"host_os": "macos",
        "info": {"OperatingSystem": "Docker Desktop\n\u{1b}[31mevil", "Name": "docker-desktop",
                 "Labels": ["com.docker.desktop.address=npipe://\\\\.\\pipe\\x\nrm -rf /", 42, "x".repeat(10_000)]}});
    let facts = Facts::from_value(&facts).unwrap_or_else(|e| panic!("{e}"));
    let d = decide(&Registry::builtin(), &facts, &RouteContext::default());
    let w = d.detection.winner.unwrap_or_else(|| panic!("not detected"));
    assert_eq!(w.runtime.id(), "docker-desktop");
    for e in &w.evidence {
        assert!(
            !e.value.contains('\n') && !e.value.contains('\u{1b}'),
            "unescaped: {e:?}"
        );
    }
    // The OperatingSystem with a newline is not "Docker Desktop"; the label and hostname are.
    assert!(w.evidence.iter().all(|e| e.fact != "info.OperatingSystem"));
    assert!(facts.warnings.iter().any(|w| w.field == "info.Labels[1]"));
    assert!(facts.warnings.iter().any(|w| w.field == "info.Labels[2]"));
}

/// A runtime from outside the crate: an in-house VM whose host is always 10.123.0.1.
#[derive(Debug)]
struct InHouse;

impl ContainerRuntime for InHouse {
    fn id(&self) -> &str {
        "in-house-vm"
    }
    fn engine(&self) -> EngineKind {
        EngineKind::Docker
    }
    fn plan(&self) -> Result<RoutePlan, RouteError> {
        Ok(RoutePlan::to_loopback(
            HostTarget::Ip("10.123.0.1".parse().unwrap_or_else(|_| unreachable!())),
            "the in-house VM forwards 10.123.0.1 to the host's loopback",
        ))
    }
}

struct InHouseDetector;

impl Detector for InHouseDetector {
    fn name(&self) -> &str {
        "in-house-vm"
    }
    fn detect(&self, facts: &Facts) -> Detection {
        match facts.info.name.as_deref() {
            Some(n @ "inhouse") => Detection::Match {
                runtime: External::new(InHouse).into(),
                evidence: vec![Evidence::new("info.Name", n, "our VM's hostname")],
            },
            _ => Detection::NotMine("hostname is not inhouse".into()),
        }
    }
}

#[test]
fn an_embedder_can_register_a_runtime_at_run_time() {
    let mut registry = Registry::builtin();
    registry.register_before("native-docker", InHouseDetector);
    let facts = json!({"host_os": "linux", "info": {"Name": "inhouse"}});
    check_with(&registry, facts.clone(), "in-house-vm 10.123.0.1 127.0.0.1");
    // Without it, the same engine is taken for native Docker, which then lacks its network.
    check(
        facts,
        "native-docker refused: native-docker: cannot route without `network`…",
    );
}

fn fallbacks(facts: serde_json::Value) -> Vec<String> {
    let facts = Facts::from_value(&facts).unwrap_or_else(|e| panic!("{e}"));
    decide(&Registry::builtin(), &facts, &RouteContext::default())
        .fallbacks
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r.openshell_host,
                r.bind.map_or("-".into(), |b| b.to_string())
            )
        })
        .collect()
}

#[test]
fn fallbacks_follow_the_documented_order() {
    // Podman machine 5.6+: host-gateway first, the literal gvproxy address after it.
    assert_eq!(
        fallbacks(libkrun_mac("5.8.2")),
        ["192.168.127.254 127.0.0.1"]
    );
    assert!(fallbacks(libkrun_mac("5.5.1")).is_empty());
    // Rootless Podman on slirp4netns: the LAN route first, 10.0.2.2 if loopback turns out open.
    assert_eq!(fallbacks(rootless("4.3.1", None)), ["10.0.2.2 127.0.0.1"]);
    // An operator override that replaced the route: the runtime's own route comes next.
    let mut broken =
        native(json!({"Driver": "bridge", "IPAM": {"Config": [{"Gateway": "172.18.0.1"}]}}));
    broken["overrides"] = json!({"host_gateway_ip": "172.18.0.1", "bind": "127.0.0.1"});
    check(broken.clone(), "native-docker 172.18.0.1 127.0.0.1");
    assert_eq!(fallbacks(broken), ["172.18.0.1 172.18.0.1"]);
    // Docker Desktop: the addresses it is known to forward, should host-gateway misbehave.
    let dd = json!({"host_os": "macos", "info": {"OperatingSystem": "Docker Desktop", "ServerVersion": "27.3.1"}});
    assert_eq!(
        fallbacks(dd),
        ["192.168.65.254 127.0.0.1", "192.168.65.2 127.0.0.1"]
    );
}

/// Rootless dockerd: the host's primary address by default; with host loopback enabled, the
/// address RootlessKit's network driver forwards to the host's loopback (rootlesskit
/// docs/network.md), or the primary address where the driver documents none.
#[test]
fn rootless_docker_follows_rootlesskit_network_driver() {
    let rootless = |driver: Option<&str>, loopback: bool| {
        let mut f = json!({
            "host_os": "linux",
            "endpoint": "unix:///run/user/1000/docker.sock",
            "host_ipv4": "192.0.2.2",
            "info": {"ServerVersion": "29.1.2", "SecurityOptions": ["name=seccomp,profile=builtin", "name=rootless", "name=cgroupns"]},
            "version": {"Version": "29.1.2", "Components": [{"Name": "Engine", "Version": "29.1.2"}]}
        });
        if let Some(d) = driver {
            if let Some(c) = f["version"]["Components"].as_array_mut() {
                c.push(json!({"Name": "rootlesskit", "Version": "2.3.4", "Details": {"ApiVersion": "1.1.1", "NetworkDriver": d, "PortDriver": "builtin", "StateDir": "/run/user/1000/dockerd-rootless"}}));
            }
        }
        if loopback {
            f["overrides"] = json!({"rootless_host_loopback": true});
        }
        f
    };
    for driver in [None, Some("slirp4netns"), Some("vpnkit"), Some("pasta")] {
        check(
            rootless(driver, false),
            "rootless-docker 192.0.2.2 192.0.2.2",
        );
    }
    check(rootless(None, true), "rootless-docker 10.0.2.2 127.0.0.1");
    check(
        rootless(Some("slirp4netns"), true),
        "rootless-docker 10.0.2.2 127.0.0.1",
    );
    check(
        rootless(Some("vpnkit"), true),
        "rootless-docker 192.168.65.2 127.0.0.1",
    );
    check(
        rootless(Some("gvisor-tap-vsock"), true),
        "rootless-docker 10.0.2.1 127.0.0.1",
    );
    // RootlessKit starts pasta with `--gateway=10.0.2.2` and adds `--no-map-gw` only with
    // `--disable-host-loopback` (pkg/network/pasta/pasta.go, v2.0 to v3.0); pasta maps its
    // gateway address to the host's loopback unless told not to.
    check(
        rootless(Some("pasta"), true),
        "rootless-docker 10.0.2.2 127.0.0.1",
    );
    // No documented host-loopback address: the primary address, never a guess.
    for driver in ["lxc-user-nic", "something-new"] {
        check(
            rootless(Some(driver), true),
            "rootless-docker 192.0.2.2 192.0.2.2",
        );
    }
    let mut no_ip = rootless(Some("lxc-user-nic"), true);
    no_ip.as_object_mut().map(|o| o.remove("host_ipv4"));
    check(
        no_ip,
        "rootless-docker refused: rootless-docker: cannot route without `host_ipv4`…",
    );
    // The refusal without host loopback names both ways to enable it.
    let mut plain = rootless(None, false);
    plain.as_object_mut().map(|o| o.remove("host_ipv4"));
    let facts = Facts::from_value(&plain).unwrap_or_else(|e| panic!("{e}"));
    let err = decide(&Registry::builtin(), &facts, &RouteContext::default())
        .route
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("DOCKERD_ROOTLESS_ROOTLESSKIT_DISABLE_HOST_LOOPBACK=false")
            && err.contains("DOCKERD_ROOTLESS_ROOTLESSKIT_FLAGS=--disable-host-loopback=false"),
        "{err}"
    );
    // The driver is evidence, and the fallback follows it.
    let facts =
        Facts::from_value(&rootless(Some("vpnkit"), false)).unwrap_or_else(|e| panic!("{e}"));
    let d = decide(&Registry::builtin(), &facts, &RouteContext::default());
    let evidence = d
        .detection
        .winner
        .as_ref()
        .map(|w| {
            w.evidence
                .iter()
                .map(|e| e.value.clone())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    assert!(
        evidence.iter().any(|v| v.contains("NetworkDriver: vpnkit")),
        "{evidence:?}"
    );
    assert_eq!(
        fallbacks(rootless(Some("vpnkit"), false)),
        ["192.168.65.2 127.0.0.1"]
    );
    assert_eq!(
        fallbacks(rootless(Some("pasta"), false)),
        ["10.0.2.2 127.0.0.1"]
    );
    assert!(fallbacks(rootless(Some("lxc-user-nic"), false)).is_empty());
}

/// libpod fills `host.idMappings` only when it runs rootless: container root mapped to an
/// unprivileged host id says rootless when `security.rootless` is missing (a cut paste), and
/// `null` mappings (rootful) say nothing.
#[test]
fn podman_id_mappings_tell_rootless_from_rootful() {
    let podman = |id_mappings: serde_json::Value| {
        json!({"host_os": "linux", "host_ipv4": "192.0.2.2",
            "ping": {"Libpod-Api-Version": "4.3.1"},
            "info": {"ServerVersion": "4.3.1"},
            "network": {"Driver": "bridge", "IPAM": {"Config": [{"Gateway": "10.89.0.1"}]}},
            "libpod_info": {"host": {"idMappings": id_mappings}, "version": {"Version": "4.3.1"}}})
    };
    check(
        podman(
            json!({"uidmap": [{"container_id": 0, "host_id": 1000, "size": 1}, {"container_id": 1, "host_id": 100000, "size": 65536}]}),
        ),
        "podman-rootless 192.0.2.2 192.0.2.2",
    );
    // Only gidmap survived (a paste cut inside uidmap).
    check(
        podman(
            json!({"gidmap": [{"container_id": 1, "host_id": 100000, "size": 65536}, {"container_id": 0, "host_id": 1000, "size": 1}]}),
        ),
        "podman-rootless 192.0.2.2 192.0.2.2",
    );
    // Rootful Podman reports null mappings. Absence is not taken as evidence: with nothing
    // else saying rootful or rootless, the engine is refused (its routes differ).
    check(
        podman(json!({"uidmap": null, "gidmap": null})),
        "- refused: no detector recognised this engine…",
    );
    let mut rootful = podman(json!({"uidmap": null, "gidmap": null}));
    rootful["endpoint"] = json!("unix:///run/podman/podman.sock");
    check(rootful, "podman 10.89.0.1 10.89.0.1");
    // Malformed entries are skipped with a warning, never a panic or a guess.
    let facts = Facts::from_value(&podman(
        json!({"uidmap": [{"container_id": "0", "host_id": -1}]}),
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        facts.libpod.as_ref().and_then(|l| l.container_root_host_id),
        None
    );
    assert!(
        facts
            .warnings
            .iter()
            .any(|w| w.field.contains("idMappings")),
        "{:?}",
        facts.warnings
    );
}

/// Issue 10: engine facts that cannot serve their role are dropped with a warning, so the
/// runtime refuses for want of the fact; a valid address in IPv4-mapped form is canonicalised.
#[test]
fn impossible_engine_addresses_are_dropped_never_routed() {
    let bridge =
        |gw: &str| native(json!({"Driver": "bridge", "IPAM": {"Config": [{"Gateway": gw}]}}));
    let missing = "native-docker refused: native-docker: cannot route without `network.IPAM.Config[].Gateway`…";
    for gw in [
        "0.0.0.0",
        "::",
        "::ffff:0.0.0.0",
        "::ffff:0:0",
        "::0.0.0.0",
        "0:0:0:0:0:0:0:0",
        "127.0.0.1",
        "::1",
        "0:0:0:0:0:0:0:1",
        "::ffff:127.0.0.1",
        "224.0.0.1",
        "ff02::1",
        "255.255.255.255",
        "240.0.0.1",
        "169.254.169.254",
        "fe80::1",
        "10.0.0.1/garbage",
        "::10.0.0.1",
    ] {
        check(bridge(gw), missing);
        let facts = Facts::from_value(&bridge(gw)).unwrap_or_else(|e| panic!("{gw}: {e}"));
        assert!(
            facts
                .warnings
                .iter()
                .any(|w| w.field == "network.IPAM.Config[0].Gateway"),
            "{gw}: {:?}",
            facts.warnings
        );
    }
    check(
        bridge("::ffff:172.18.0.1"),
        "native-docker 172.18.0.1 172.18.0.1",
    );
    check(
        bridge("172.18.0.1/16"),
        "native-docker 172.18.0.1 172.18.0.1",
    );
    // An impossible IPv4 gateway does not hide a valid IPv6 one.
    check(
        native(
            json!({"Driver": "bridge", "IPAM": {"Config": [{"Gateway": "0.0.0.0"}, {"Gateway": "fd00::1"}]}}),
        ),
        "native-docker fd00::1 fd00::1",
    );

    for host in [
        "0.0.0.0",
        "::ffff:0.0.0.0",
        "127.0.0.1",
        "224.0.0.1",
        "255.255.255.255",
        "240.0.0.1",
        "169.254.169.254",
        "0.1.2.3",
    ] {
        let mut f = rootless("4.3.1", None);
        f["host_ipv4"] = json!(host);
        check(
            f,
            "podman-rootless refused: podman-rootless: cannot route without `host_ipv4`…",
        );
    }
    let mut mapped = rootless("4.3.1", None);
    mapped["host_ipv4"] = json!("::ffff:192.0.2.2");
    check(mapped, "podman-rootless 192.0.2.2 192.0.2.2");
    // Text after '/' that is no prefix length is a malformed document, as any unparseable
    // host_ipv4 is, not a suffix to drop.
    let mut garbage = rootless("4.3.1", None);
    garbage["host_ipv4"] = json!("192.0.2.2/x");
    let err = Facts::from_value(&garbage).err().map(|e| e.to_string());
    assert!(
        err.as_deref()
            .is_some_and(|e| e.contains("host_ipv4") && e.contains("192.0.2.2/x")),
        "{err:?}"
    );
}

/// Issue 10: an operator override that cannot serve its role is invalid input naming the field
/// and the value; only `bind` may be a wildcard, and only the operator's own.
#[test]
fn impossible_override_addresses_are_invalid_input() {
    for (key, value) in [
        ("host_gateway_ip", "0.0.0.0"),
        ("host_gateway_ip", "::"),
        ("host_gateway_ip", "::ffff:0.0.0.0"),
        ("host_gateway_ip", "::ffff:0:0"),
        ("host_gateway_ip", "::0.0.0.0"),
        ("host_gateway_ip", "224.0.0.1"),
        ("host_gateway_ip", "ff02::1"),
        ("host_gateway_ip", "255.255.255.255"),
        ("host_gateway_ip", "240.0.0.1"),
        ("host_gateway_ip", "169.254.169.254"),
        ("host_gateway_ip", "10.0.0.1/garbage"),
        ("bind", "224.0.0.1"),
        ("bind", "::ffff:224.0.0.1"),
        ("bind", "255.255.255.255"),
        ("bind", "240.0.0.1"),
        ("bind", "169.254.169.254"),
        ("bind", "fe80::1"),
        ("bind", "10.0.0.1/garbage"),
    ] {
        let err = Facts::from_value(&json!({"info": {}, "overrides": {key: value}}))
            .err()
            .unwrap_or_else(|| panic!("{key} = {value} accepted"))
            .to_string();
        let field = format!("overrides.{key}");
        assert!(
            err.contains(&field) && err.contains(value),
            "{err:?} should name {field} and {value}"
        );
    }
    // Loopback is a fine target for a host-network sandbox on a native engine, so it passes the
    // parser; a bridge sandbox's loopback is its own, so the bridge decision refuses it.
    for lo in ["127.0.0.1", "0:0:0:0:0:0:0:1"] {
        let mut f =
            native(json!({"Driver": "bridge", "IPAM": {"Config": [{"Gateway": "172.18.0.1"}]}}));
        f["overrides"] = json!({"host_gateway_ip": lo});
        check(f, "native-docker refused: native-docker: …");
    }
}

/// Issue 10: `::ffff:0.0.0.0` binds every IPv4 interface, so as an operator bind it is the
/// wildcard it means (reported as such), and a documented link-local host address stays usable
/// as the container side.
#[test]
fn mapped_overrides_are_canonicalised() {
    let gw =
        || native(json!({"Driver": "bridge", "IPAM": {"Config": [{"Gateway": "172.18.0.1"}]}}));
    for wildcard in ["::ffff:0.0.0.0", "::ffff:0:0"] {
        let mut f = gw();
        f["overrides"] = json!({"bind": wildcard});
        check(f.clone(), "native-docker 172.18.0.1 0.0.0.0");
        let facts = Facts::from_value(&f).unwrap_or_else(|e| panic!("{e}"));
        let route = decide(&Registry::builtin(), &facts, &RouteContext::default())
            .route
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(route.exposure, openshell_runtime::Exposure::Wildcard);
    }
    let mut mapped = gw();
    mapped["overrides"] = json!({"host_gateway_ip": "::ffff:172.18.0.1"});
    check(mapped, "native-docker 172.18.0.1 172.18.0.1");
    // Podman 5.3+ with pasta maps 169.254.1.2 to the host's primary address: the operator may
    // name it with the bind that receives it, but it is never a bind itself.
    let mut pasta = rootless("5.3.1", Some("pasta"));
    pasta["overrides"] = json!({"host_gateway_ip": "169.254.1.2", "bind": "192.0.2.2"});
    check(pasta.clone(), "podman-rootless 169.254.1.2 192.0.2.2");
    pasta["overrides"] = json!({"host_gateway_ip": "169.254.1.2"});
    check(
        pasta,
        "podman-rootless refused: podman-rootless: 169.254.1.2 is a link-local address…",
    );
}

/// Issue 10: overrides built in code (not parsed) and runtimes from outside the crate go
/// through the same checks when the route is resolved.
#[test]
fn resolve_refuses_impossible_addresses_from_any_source() {
    let native_gw =
        native(json!({"Driver": "bridge", "IPAM": {"Config": [{"Gateway": "172.18.0.1"}]}}));
    let decide_with = |host: Option<&str>, bind: Option<&str>| {
        let mut facts = Facts::from_value(&native_gw).unwrap_or_else(|e| panic!("{e}"));
        facts.overrides.host_gateway_ip =
            host.map(|h| h.parse().unwrap_or_else(|e| panic!("{h}: {e}")));
        facts.overrides.bind = bind.map(|b| b.parse().unwrap_or_else(|e| panic!("{b}: {e}")));
        decide(&Registry::builtin(), &facts, &RouteContext::default()).route
    };
    for host in [
        "::ffff:0.0.0.0",
        "0.0.0.0",
        "::",
        "224.0.0.1",
        "255.255.255.255",
    ] {
        let r = decide_with(Some(host), None);
        assert!(r.is_err(), "host_gateway_ip {host}: {r:?}");
    }
    let r = decide_with(None, Some("::ffff:0.0.0.0")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.bind.map(|b| b.to_string()).as_deref(), Some("0.0.0.0"));
    assert_eq!(r.exposure, openshell_runtime::Exposure::Wildcard);
    assert!(decide_with(None, Some("224.0.0.1")).is_err());

    let mut registry = Registry::builtin();
    registry.register_first(FixedDetector);
    for (target, expect) in [
        ("10.123.0.1", "fixed 10.123.0.1 10.123.0.1"),
        (
            "224.0.0.1",
            "fixed refused: fixed: 224.0.0.1 is a multicast address…",
        ),
        ("::ffff:0.0.0.0", "fixed refused: fixed: ::ffff:0.0.0.0…"),
        (
            "127.0.0.1",
            "fixed refused: fixed: 127.0.0.1 is a loopback address…",
        ),
    ] {
        check_with(
            &registry,
            json!({"host_os": "linux", "info": {"Name": "fixed"}, "network": {"Name": target}}),
            expect,
        );
    }
}

/// A runtime from outside the crate whose bridge address is whatever `network.Name` says, so a
/// test can make it propose anything.
#[derive(Debug)]
struct Fixed(std::net::IpAddr);

impl ContainerRuntime for Fixed {
    fn id(&self) -> &str {
        "fixed"
    }
    fn engine(&self) -> EngineKind {
        EngineKind::Docker
    }
    fn plan(&self) -> Result<RoutePlan, RouteError> {
        Ok(RoutePlan {
            target: HostTarget::Ip(self.0),
            bind: Some(self.0),
            exposure: openshell_runtime::Exposure::Bridge,
            why: "test".into(),
        })
    }
}

struct FixedDetector;

impl Detector for FixedDetector {
    fn name(&self) -> &str {
        "fixed"
    }
    fn detect(&self, facts: &Facts) -> Detection {
        match (
            facts.info.name.as_deref(),
            facts
                .network
                .as_ref()
                .and_then(|n| n.name.as_deref())
                .and_then(|n| n.parse().ok()),
        ) {
            (Some("fixed"), Some(ip)) => Detection::Match {
                runtime: External::new(Fixed(ip)).into(),
                evidence: vec![Evidence::new("info.Name", "fixed", "test runtime")],
            },
            _ => Detection::NotMine("not the test runtime".into()),
        }
    }
}
