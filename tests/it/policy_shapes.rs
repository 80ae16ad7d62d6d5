//! Policy scenarios for the shapes engines report in 2025–26 (issue 11): identity that bounds the
//! engine version, Docker Desktop's reduced `/info`, Rancher Desktop's tunnel on Windows, Docker
//! inside WSL2, Podman machine providers on Windows, newer socket locations, and rootful Podman
//! known only from its storage root.

use openshell_runtime::{Facts, Registry, RouteContext};
use openshell_tests::decide_direct as decide;
use serde_json::json;

/// Decides `facts` and compares `runtime openshell_host bind` (or `runtime refused: <text>`).
fn check(facts: serde_json::Value, expect: &str) {
    let facts = Facts::from_value(&facts).unwrap_or_else(|e| panic!("facts refused: {e}"));
    let d = decide(&Registry::builtin(), &facts, &RouteContext::default());
    let runtime = d.runtime_id().unwrap_or("-");
    let got = match &d.route {
        Ok(r) => format!(
            "{runtime} {} {}",
            r.openshell_host,
            r.bind.map_or("-".to_string(), |b| b.to_string())
        ),
        Err(e) => format!("{runtime} refused: {e}"),
    };
    match expect.strip_suffix('…') {
        Some(prefix) => assert!(
            got.starts_with(prefix),
            "expected {expect:?}\n     got {got:?}"
        ),
        None => assert_eq!(got, expect),
    }
}

#[test]
fn identity_that_bounds_the_version_routes_without_a_reported_version() {
    // Docker Desktop's reduced /info: only the label, every other field empty.
    let reduced = json!({
        "host_os": "windows",
        "endpoint": "npipe:////./pipe/docker_engine",
        "info": {"ServerVersion": "", "OperatingSystem": "",
                 "Labels": ["com.docker.desktop.address=npipe://\\\\.\\pipe\\docker_cli"]}
    });
    check(reduced, "docker-desktop host-gateway 127.0.0.1");
    // A reported version still wins over what the identity implies.
    check(
        json!({"host_os": "macos", "info": {"ServerVersion": "19.03.12",
               "Labels": ["com.docker.desktop.address=unix:///x/docker-cli.sock"]}}),
        "docker-desktop refused: …",
    );
    // Markers as old as Desktop itself bound nothing (2019 captures carry them).
    check(
        json!({"host_os": "windows", "info": {"OperatingSystem": "Docker Desktop", "KernelVersion": "4.9.184-linuxkit"}}),
        "docker-desktop refused: …",
    );
    // A Desktop 3.0+ platform name bounds it; a 2.x one does not.
    check(
        json!({"host_os": "macos", "version": {"Platform": {"Name": "Docker Desktop 4.10.1 (82475)"}}, "info": {}}),
        "docker-desktop host-gateway 127.0.0.1",
    );
    check(
        json!({"host_os": "macos", "version": {"Platform": {"Name": "Docker Desktop 2.5.0"}}, "info": {}}),
        "docker-desktop refused: …",
    );
    // OrbStack and Colima: every marker bounds the version.
    check(
        json!({"host_os": "macos", "info": {"OperatingSystem": "OrbStack"}}),
        "orbstack host-gateway 127.0.0.1",
    );
    check(
        json!({"host_os": "macos", "endpoint": "unix:///Users/me/.colima/default/docker.sock", "info": {}}),
        "colima host-gateway 127.0.0.1",
    );
    check(
        json!({"host_os": "macos", "info": {"Name": "colima", "ServerVersion": "19.03.1"}}),
        "colima refused: …",
    );
}

#[test]
fn an_empty_server_version_does_not_hide_the_version_endpoint() {
    check(
        json!({"host_os": "macos", "info": {"Name": "docker-desktop", "ServerVersion": ""},
               "version": {"Version": "19.03.5"}}),
        "docker-desktop refused: docker-desktop: no safe route: Docker Engine 19.3.5 predates…",
    );
}

#[test]
fn docker_desktop_cli_socket_inside_wsl_is_desktop() {
    check(
        json!({"host_os": "linux", "endpoint": "unix:///var/run/docker-cli.sock", "info": {}}),
        "docker-desktop host-gateway 127.0.0.1",
    );
}

#[test]
fn rancher_desktop_on_windows_goes_through_the_tunnel_and_only_its_os_name_tells_it() {
    let rd = |os: &str| {
        json!({"host_os": "windows", "endpoint": "npipe:////./pipe/docker_engine",
               "info": {"OperatingSystem": os, "ServerVersion": "28.3.3",
                        "KernelVersion": "6.6.87.2-microsoft-standard-WSL2"}})
    };
    check(
        rd("Rancher Desktop WSL Distribution"),
        "rancher-desktop 192.168.127.254 127.0.0.1",
    );
    check(
        rd("Docker Desktop"),
        "docker-desktop host-gateway 127.0.0.1",
    );
    // Neither name: a Docker engine on Windows that no detector claims.
    check(rd("Ubuntu 24.04.3 LTS"), "- refused: …");
}

#[test]
fn a_wsl2_kernel_alone_is_not_docker_desktop() {
    // docker-ce 29 inside a WSL2 Ubuntu, containerd image store: native Docker on Linux.
    check(
        json!({
            "host_os": "linux",
            "endpoint": "unix:///var/run/docker.sock",
            "info": {"ServerVersion": "29.1.3", "OperatingSystem": "Ubuntu 24.04.3 LTS",
                     "KernelVersion": "6.6.87.2-microsoft-standard-WSL2", "Name": "DESKTOP-AB12CD",
                     "DriverStatus": [["driver-type", "io.containerd.snapshotter.v1"]]},
            "network": {"Name": "openshell", "Driver": "bridge",
                        "IPAM": {"Config": [{"Subnet": "172.18.0.0/16", "Gateway": "172.18.0.1"}]}}
        }),
        "native-docker 172.18.0.1 172.18.0.1",
    );
}

#[test]
fn podman_machine_provider_on_windows_without_a_kernel() {
    let machine = |endpoint: Option<&str>, variant: Option<&str>| {
        let mut doc = json!({"host_os": "windows", "info": {},
                             "libpod_info": {"host": {"arch": "amd64"}}});
        if let Some(e) = endpoint {
            doc["endpoint"] = json!(e);
        }
        if let Some(v) = variant {
            doc["libpod_info"]["host"]["distribution"] =
                json!({"distribution": "fedora", "variant": v});
        }
        doc
    };
    check(
        machine(Some("unix://C:\\Users\\me\\.local\\share\\containers\\podman\\machine\\hyperv\\podman.sock"), None),
        "podman-machine 192.168.127.254 127.0.0.1",
    );
    check(
        machine(None, Some("coreos")),
        "podman-machine 192.168.127.254 127.0.0.1",
    );
    check(
        machine(None, Some("container")),
        "podman-machine refused: podman-machine: no safe route: a WSL machine…",
    );
    check(
        machine(None, None),
        "podman-machine refused: podman-machine: no safe route: neither the machine's kernel…",
    );
}

#[test]
fn colima_xdg_socket_is_colima() {
    check(
        json!({"host_os": "macos", "endpoint": "unix:///Users/me/.config/colima/default/docker.sock", "info": {}}),
        "colima host-gateway 127.0.0.1",
    );
}

#[test]
fn podman_storage_root_tells_rootful_from_rootless_when_nothing_else_does() {
    let podman = |root: &str| {
        json!({"host_os": "linux", "endpoint": "tcp://localhost:2375",
               "ping": {"Libpod-Api-Version": "5.4.2"},
               "info": {"ServerVersion": "5.4.2", "DockerRootDir": root},
               "network": {"name": "podman", "driver": "bridge", "subnets": [{"subnet": "10.88.0.0/16", "gateway": "10.88.0.1"}]}})
    };
    check(
        podman("/var/lib/containers/storage"),
        "podman 10.88.0.1 10.88.0.1",
    );
    check(
        podman("/home/me/.local/share/containers/storage"),
        "podman-rootless refused: …",
    );
    // Any other storage root says nothing: keep failing with the fix.
    check(podman("/srv/containers"), "- refused: …");
}

/// Issue 14: a loopback `tcp://` endpoint is not always a local engine. Testcontainers Cloud
/// answers through Testcontainers Desktop on `tcp://127.0.0.1:<port>` and marks its version
/// `+testcontainerscloud`: remote (the relay with `auto`, refused with `direct`). The same
/// proxy in front of a local engine says only `(via Testcontainers Desktop …)`: not remote.
#[test]
fn an_engine_behind_a_local_proxy_that_marks_itself_remote_is_remote() {
    let cloud = json!({
        "host_os": "macos",
        "endpoint": "tcp://127.0.0.1:62250",
        "info": {"ServerVersion": "78+testcontainerscloud (via Testcontainers Desktop 1.4.18)"}
    });
    check(cloud.clone(), "remote-docker refused: …");
    let facts = Facts::from_value(&cloud).unwrap_or_else(|e| panic!("{e}"));
    let d = openshell_runtime::decide(&Registry::builtin(), &facts, &RouteContext::default());
    let route = d.route.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(route.route_kind, openshell_runtime::RouteKind::Relay);
    assert_eq!(route.bind, Some(std::net::Ipv4Addr::LOCALHOST.into()));
    let evidence = &d.detection.winner.as_ref().map(|w| w.evidence.clone());
    assert!(
        evidence
            .iter()
            .flatten()
            .any(|e| e.fact == "info.ServerVersion" && e.meaning.contains("Testcontainers Cloud")),
        "{evidence:?}"
    );
    // The marker in /version alone is enough; a local engine behind the proxy is not remote.
    check(
        json!({"host_os": "macos", "endpoint": "tcp://127.0.0.1:62250", "info": {},
               "version": {"Version": "70+testcontainerscloud"}}),
        "remote-docker refused: …",
    );
    let local = json!({"host_os": "linux", "endpoint": "tcp://127.0.0.1:62250",
                       "info": {"ServerVersion": "23.0.6 (via Testcontainers Desktop 1.5.0)"}});
    let facts = Facts::from_value(&local).unwrap_or_else(|e| panic!("{e}"));
    let d = decide(&Registry::builtin(), &facts, &RouteContext::default());
    assert_ne!(d.runtime_id(), Some("remote-docker"), "{d:?}");
}
