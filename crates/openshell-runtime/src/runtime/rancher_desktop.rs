//! Rancher Desktop with the moby (dockerd) engine.
//!
//! Identified by the VM hostname `lima-rancher-desktop` (macOS, Linux), an OperatingSystem naming
//! Rancher Desktop (the Windows WSL distribution), or the `~/.rd/` socket. On macOS and Linux the
//! engine runs in a Lima VM whose dockerd keeps the default host-gateway (docker0 inside the VM,
//! which does not reach the host); the host is Lima's 192.168.5.2 (`host.lima.internal`), which
//! lands on the host's loopback, so that literal address is the route. On Windows the engine runs
//! in a WSL distribution where no address is documented to reach the Windows loopback, so the
//! route fails closed. Sources: docs/runtimes.md.

use std::net::IpAddr;

use crate::consts::LIMA_HOST_IP;
use crate::error::RouteError;
use crate::evidence::Evidence;
use crate::facts::{Facts, HostOs};
use crate::route::{EngineKind, HostTarget, RoutePlan};
use crate::signals::{endpoint_path_contains, engine_kind};
use crate::sockets::{SocketApi, SocketLocation, SocketRoot};

use super::{matched, ContainerRuntime, Detection, RuntimeId};

/// Rancher Desktop with the moby engine (`rancher-desktop`). Routes to Lima's host address
/// 192.168.5.2 with a loopback bind; refused on Windows (WSL), where no address is known to work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RancherDesktop {
    /// Whether the engine runs in WSL (Windows) rather than Lima.
    pub wsl: bool,
}

const ALIASES: [IpAddr; 1] = [LIMA_HOST_IP];

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
            return Err(RouteError::NoSafeRoute {
                runtime: self.id().into(),
                reason: "on Windows the engine runs in a WSL distribution, and no address is known to reach the Windows host's loopback from its containers".into(),
                fix: "set host_gateway_ip to the Windows host's address on the WSL network and bind the gateway there (--host-gateway-ip IP --bind IP)".into(),
            });
        }
        Ok(RoutePlan::to_loopback(
            HostTarget::Ip(LIMA_HOST_IP),
            "Rancher Desktop's dockerd keeps host-gateway inside the VM; Lima's 192.168.5.2 reaches the host's loopback",
        ))
    }

    fn loopback_aliases(&self) -> &[IpAddr] {
        if self.wsl {
            &[]
        } else {
            &ALIASES
        }
    }
}
