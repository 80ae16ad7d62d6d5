//! Docker Desktop (macOS, Windows, Linux): Docker Engine in a VM Docker ships.
//!
//! Identified by `info.OperatingSystem = "Docker Desktop"` (also with dockerd's ` (containerized)`
//! suffix), `com.docker.desktop.*` labels, the `docker-desktop` hostname or its `linuxkit`
//! kernel. Docker Desktop points the engine's
//! host-gateway at its host address (observed: 192.168.65.254, 192.168.65.2 in vpnkit days),
//! which its network stack forwards to the host's loopback, so `host-gateway` with a loopback
//! bind is the narrowest working route, whatever the address.
//!
//! Docker Desktop 4.52 and later answer API clients older than the engine's minimum with a
//! reduced `/info`: empty fields, no `ServerVersion`, and only the `com.docker.desktop.address`
//! label. The label still identifies Desktop, and it bounds the engine version: Desktop shipped
//! Engine 20.10 from 3.0.0 (December 2020), and the label appeared years later (Desktop 4.33's
//! `/info` still lacks it). So does a `Docker Desktop <version>` platform name from 3.0 on, and
//! the `docker-cli.sock` proxy socket Desktop 4.x serves inside WSL distributions. The older
//! markers (OS name, hostname, LinuxKit kernel) are as old as Desktop itself and bound nothing.
//! Sources: docs/runtimes.md.

use std::net::IpAddr;

use crate::consts::{DOCKER_DESKTOP_HOST_IP, DOCKER_DESKTOP_LEGACY_HOST_IP, LOOPBACK_V4};
use crate::error::RouteError;
use crate::evidence::Evidence;
use crate::facts::{EngineVersion, Facts};
use crate::route::{EngineKind, RoutePlan};
use crate::signals::{endpoint_path_contains, engine_kind, os_name_is};
use crate::sockets::{SocketApi, SocketLocation, SocketRoot};

use super::{
    docker_vm_host_gateway, literal_alternatives, matched, ContainerRuntime, Detection,
    HostNetwork, ImpliedVersion, RuntimeId,
};

/// Docker Desktop (`docker-desktop`): Docker Engine in Desktop's VM. Routes through `host-gateway`,
/// which Desktop points at its host proxy, with the gateway on the host's loopback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerDesktop {
    /// Engine version, for host-gateway support.
    pub version: Option<EngineVersion>,
    /// The lower bound a recent Desktop marker puts on the engine version.
    pub implied: Option<ImpliedVersion>,
}

/// Desktop 3.0.0 (2020-12-10) upgraded to Docker Engine 20.10.0, and every later release ships a
/// newer engine ([3.x release notes](https://docs.docker.com/desktop/previous-versions/3.x-mac/)).
const DESKTOP_WITH_ENGINE_20_10: EngineVersion = EngineVersion::new(3, 0, 0);

/// The socket path Desktop's CLI proxy serves inside a WSL distribution (the endpoint of the
/// reduced-`/info` label), e.g. `unix:///var/run/docker-cli.sock`.
const DESKTOP_CLI_SOCKET: &str = "/docker-cli.sock";

fn implied_by(because: &'static str) -> Option<ImpliedVersion> {
    Some(ImpliedVersion {
        at_least: crate::runtime::DOCKER_HOST_GATEWAY_SINCE,
        because,
    })
}

const ALIASES: [IpAddr; 2] = [DOCKER_DESKTOP_HOST_IP, DOCKER_DESKTOP_LEGACY_HOST_IP];

/// Where Docker Desktop listens without the `/var/run/docker.sock` symlink: on macOS
/// `~/.docker/run/docker.sock` (<https://docs.docker.com/desktop/setup/install/mac-permission-requirements/>),
/// on Linux the per-user `~/.docker/desktop/docker.sock` of the `desktop-linux` context
/// (<https://github.com/docker/docs/issues/23308>, and the Linux capture in
/// tests/fixtures/docker-desktop/).
pub(crate) const SOCKETS: &[SocketLocation] = &[
    SocketLocation {
        root: SocketRoot::Home,
        path: ".docker/run/docker.sock",
        default_instance: None,
        api: SocketApi::Docker,
        rank: 120,
        label: "Docker Desktop",
        only_on: None,
    },
    SocketLocation {
        root: SocketRoot::Home,
        path: ".docker/desktop/docker.sock",
        default_instance: None,
        api: SocketApi::Docker,
        rank: 121,
        label: "Docker Desktop (Linux)",
        only_on: None,
    },
];

impl DockerDesktop {
    /// Matches a Docker engine that names Docker Desktop (OS name, labels, hostname, linuxkit
    /// kernel or platform); a socket under `~/.docker/` adds evidence but is not enough alone.
    pub fn detect(facts: &Facts) -> Detection {
        if engine_kind(facts).0 != EngineKind::Docker {
            return Detection::NotMine("the engine is not Docker Engine".into());
        }
        let info = &facts.info;
        let mut ev = Vec::new();
        if let Some(os) = info
            .operating_system
            .as_deref()
            .filter(|os| os_name_is(os, "Docker Desktop"))
        {
            ev.push(Evidence::new(
                "info.OperatingSystem",
                os,
                "Docker Desktop names its VM OS this way",
            ));
        }
        let mut implied = None;
        if let Some((k, v)) = info
            .labels
            .iter()
            .find(|(k, _)| k.starts_with("com.docker.desktop."))
        {
            ev.push(Evidence::new(
                format!("info.Labels[{k}]"),
                v,
                "label set only by Docker Desktop",
            ));
            implied = implied_by(
                "Docker Desktop's com.docker.desktop.* labels appeared long after Desktop 3.0 shipped Engine 20.10",
            );
        }
        if let Some(name) = info.name.as_deref().filter(|n| *n == "docker-desktop") {
            ev.push(Evidence::new(
                "info.Name",
                name,
                "Docker Desktop's VM hostname",
            ));
        }
        if let Some(k) = info
            .kernel_version
            .as_deref()
            .filter(|k| k.contains("linuxkit"))
        {
            ev.push(Evidence::new(
                "info.KernelVersion",
                k,
                "Docker Desktop's LinuxKit kernel",
            ));
        }
        if let Some(v) = facts.version.as_ref() {
            if let Some(p) = v
                .platform_name
                .as_deref()
                .filter(|p| p.starts_with("Docker Desktop"))
            {
                ev.push(Evidence::new(
                    "version.Platform.Name",
                    p,
                    "Docker Desktop names its platform",
                ));
                let desktop = p
                    .strip_prefix("Docker Desktop")
                    .and_then(|rest| EngineVersion::parse(rest.trim()));
                if desktop.is_some_and(|d| d >= DESKTOP_WITH_ENGINE_20_10) {
                    implied = implied.or(implied_by(
                        "Docker Desktop 3.0 and later ship Engine 20.10 or newer",
                    ));
                }
            }
            let kernel = v
                .kernel_version
                .as_deref()
                .filter(|k| k.contains("linuxkit"));
            if let (Some(k), None) = (kernel, info.kernel_version.as_deref()) {
                ev.push(Evidence::new(
                    "version.KernelVersion",
                    k,
                    "Docker Desktop's LinuxKit kernel",
                ));
            }
        }
        if let Some(e) = endpoint_path_contains(
            facts,
            DESKTOP_CLI_SOCKET,
            "the socket Docker Desktop's CLI proxy serves inside WSL distributions",
        ) {
            ev.push(e);
            implied = implied.or(implied_by(
                "Docker Desktop's docker-cli.sock proxy belongs to Desktop 4.x, which ships Engine 20.10 or newer",
            ));
        }
        if ev.is_empty() {
            return Detection::NotMine(
                "no Docker Desktop OS name, label, hostname, platform, kernel or CLI socket".into(),
            );
        }
        ev.extend(endpoint_path_contains(
            facts,
            "/.docker/",
            "Docker Desktop's per-user socket",
        ));
        matched(
            DockerDesktop {
                version: facts.engine_version(),
                implied,
            },
            ev,
        )
    }
}

impl ContainerRuntime for DockerDesktop {
    fn id(&self) -> &str {
        RuntimeId::DockerDesktop.as_str()
    }

    fn engine(&self) -> EngineKind {
        EngineKind::Docker
    }

    fn plan(&self) -> Result<RoutePlan, RouteError> {
        docker_vm_host_gateway(
            RuntimeId::DockerDesktop,
            self.version,
            self.implied.as_ref(),
            "Docker Desktop resolves host-gateway to 192.168.65.254, which it forwards to the host's loopback",
        )
    }

    fn loopback_aliases(&self) -> &[IpAddr] {
        &ALIASES
    }

    fn alternatives(&self) -> Vec<RoutePlan> {
        literal_alternatives(
            &ALIASES,
            "the address Docker Desktop is observed to forward to the host's loopback",
        )
    }

    /// A `--net=host` container sits in the VM's namespace, whose 127.0.0.1 is the VM's. dockerd
    /// resolves `host-gateway` in extra hosts to its `host-gateway-ip` whatever the network mode
    /// (moby#40007: Desktop sets that flag to its host proxy, 192.168.65.254 today,
    /// 192.168.65.2 in vpnkit days), and the VM routes that address to the host proxy from its
    /// own namespace as it does from a bridge, so the bridge route holds: `host-gateway`, the
    /// gateway on loopback, refused where the engine is too old or its version unknown.
    /// Desktop's opt-in host networking (4.34+) is not needed for it; an operator who turned
    /// it on may still say `host_gateway_ip = 127.0.0.1`, which is accepted.
    fn host_network(&self) -> HostNetwork {
        let mut aliases = ALIASES.to_vec();
        aliases.push(LOOPBACK_V4);
        HostNetwork {
            namespace: "Docker Desktop's VM".into(),
            plan: self.plan().map(|mut p| {
                p.why = format!(
                    "{}; dockerd resolves host-gateway to that address for a host-network container too, and the VM's own namespace reaches it",
                    p.why
                );
                p
            }),
            loopback_aliases: aliases,
            shares_loopback: false,
            alternatives: self.alternatives(),
            resolves_host_gateway: true,
        }
    }
}
