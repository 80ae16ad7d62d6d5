//! Rancher Desktop with the moby (dockerd) engine.
//!
//! Identified by the VM hostname `lima-rancher-desktop` (macOS, Linux), an OperatingSystem naming
//! Rancher Desktop (the Windows WSL distribution), or the `~/.rd/` socket. On macOS and Linux the
//! engine runs in a Lima VM whose dockerd keeps the default host-gateway (docker0 inside the VM,
//! which does not reach the host); the host is Lima's 192.168.5.2 (`host.lima.internal`), which
//! lands on the host's loopback, so that literal address is the route.
//!
//! On Windows the engine runs in the `rancher-desktop` WSL distribution, inside a network
//! namespace whose only way out is Rancher Desktop's networking tunnel: `host-switch.exe` on the
//! Windows side, a gvisor-tap-vsock switch that serves the host as 192.168.127.254
//! (`host.docker.internal`) and NATs that address to the Windows 127.0.0.1 (its `config_windows.go`,
//! since the switch's first version in 2023). The tunnel is the only network mode from 1.15 on;
//! releases before it used the WSL adapter by default, which does not reach the Windows loopback.
//! Nothing in `/info` tells the release, so the route is 192.168.127.254 with a loopback bind and
//! the plan says what to do when a probe proves it wrong. Rancher Desktop also answers on the
//! generic `npipe:////./pipe/docker_engine` pipe, where only its OS name tells it from Docker
//! Desktop. Sources: docs/runtimes.md.

use std::net::IpAddr;

use crate::consts::{GVPROXY_HOST_IP, LIMA_HOST_IP};
use crate::error::RouteError;
use crate::evidence::Evidence;
use crate::facts::{Facts, HostOs};
use crate::route::{EngineKind, HostTarget, RoutePlan};
use crate::signals::{endpoint_path_contains, engine_kind};
use crate::sockets::{SocketApi, SocketLocation, SocketRoot};

use super::{matched, ContainerRuntime, Detection, HostNetwork, RuntimeId};

/// Rancher Desktop with the moby engine (`rancher-desktop`). Routes to Lima's host address
/// 192.168.5.2 with a loopback bind; refused on Windows (WSL), where no address is known to work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RancherDesktop {
    /// Whether the engine runs in WSL (Windows) rather than Lima.
    pub wsl: bool,
}

const ALIASES: [IpAddr; 1] = [LIMA_HOST_IP];
/// The networking tunnel's host address on Windows (the same gvisor-tap-vsock default as a Podman
/// machine's gvproxy), NATed to the Windows loopback.
const WSL_ALIASES: [IpAddr; 1] = [GVPROXY_HOST_IP];

/// Where Rancher Desktop listens without administrative access: `~/.rd/docker.sock`
/// (<https://github.com/testcontainers/testcontainers-dotnet/issues/1163>, captured in
/// tests/fixtures/rancher-desktop/).
pub(crate) const SOCKETS: &[SocketLocation] = &[SocketLocation {
    root: SocketRoot::Home,
    path: ".rd/docker.sock",
    default_instance: None,
    api: SocketApi::Docker,
    rank: 150,
    label: "Rancher Desktop",
    only_on: None,
}];

impl RancherDesktop {
    /// Matches a Docker engine with Rancher Desktop's VM hostname or OS name, or a socket under
    /// `~/.rd/`.
    pub fn detect(facts: &Facts) -> Detection {
        if engine_kind(facts).0 != EngineKind::Docker {
            return Detection::NotMine("the engine is not Docker Engine".into());
        }
        let info = &facts.info;
        let mut ev = Vec::new();
        if let Some(name) = info
            .name
            .as_deref()
            .filter(|n| *n == "lima-rancher-desktop")
        {
            ev.push(Evidence::new(
                "info.Name",
                name,
                "Rancher Desktop's Lima VM hostname",
            ));
        }
        let wsl_os = info
            .operating_system
            .as_deref()
            .filter(|os| os.contains("Rancher Desktop"));
        if let Some(os) = wsl_os {
            ev.push(Evidence::new(
                "info.OperatingSystem",
                os,
                "Rancher Desktop's own distribution",
            ));
        }
        ev.extend(endpoint_path_contains(
            facts,
            "/.rd/",
            "Rancher Desktop's socket",
        ));
        if ev.is_empty() {
            return Detection::NotMine(
                "no Rancher Desktop hostname, OS name or ~/.rd socket".into(),
            );
        }
        let wsl =
            facts.host_os == Some(HostOs::Windows) || wsl_os.is_some_and(|os| os.contains("WSL"));
        matched(RancherDesktop { wsl }, ev)
    }
}

impl ContainerRuntime for RancherDesktop {
    fn id(&self) -> &str {
        RuntimeId::RancherDesktop.as_str()
    }

    fn engine(&self) -> EngineKind {
        EngineKind::Docker
    }

    fn plan(&self) -> Result<RoutePlan, RouteError> {
        if self.wsl {
            return Ok(RoutePlan::to_loopback(
                HostTarget::Ip(GVPROXY_HOST_IP),
                "Rancher Desktop's networking tunnel (host-switch) NATs 192.168.127.254 to the Windows host's loopback; \
                 it is the only network mode from Rancher Desktop 1.15 on. If a probe fails, the release predates the \
                 tunnel: upgrade Rancher Desktop, or set host_gateway_ip to the Windows host's address on the WSL network \
                 and bind the gateway there",
            ));
        }
        Ok(RoutePlan::to_loopback(
            HostTarget::Ip(LIMA_HOST_IP),
            "Rancher Desktop's dockerd keeps host-gateway inside the VM; Lima's 192.168.5.2 reaches the host's loopback",
        ))
    }

    fn loopback_aliases(&self) -> &[IpAddr] {
        if self.wsl {
            &WSL_ALIASES
        } else {
            &ALIASES
        }
    }

    /// A host-network container joins the namespace dockerd runs in: the Lima VM's on macOS and
    /// Linux, Rancher Desktop's own namespace inside the WSL distribution on Windows. From there
    /// the same host addresses as the bridge route's reach the host's loopback.
    fn host_network(&self) -> HostNetwork {
        if self.wsl {
            let mut h = HostNetwork::vm(
                GVPROXY_HOST_IP,
                "host networking joins Rancher Desktop's network namespace in WSL, whose only way out is its networking tunnel: 192.168.127.254 reaches the Windows host's loopback (Rancher Desktop 1.15 and later)",
            );
            h.namespace = "Rancher Desktop's WSL network namespace".into();
            return h;
        }
        HostNetwork::vm(
            LIMA_HOST_IP,
            "host networking joins Rancher Desktop's Lima VM namespace, whose 127.0.0.1 is the VM's; Lima's 192.168.5.2 reaches the host's loopback from it",
        )
    }
}
