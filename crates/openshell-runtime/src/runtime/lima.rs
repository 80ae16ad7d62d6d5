//! A Lima instance running Docker (e.g. `limactl start template://docker`).
//!
//! Identified by the VM hostname `lima-<instance>` or a `~/.lima/` socket (Colima and Rancher
//! Desktop, also Lima-based, are matched earlier). Lima leaves dockerd's host-gateway at docker0
//! inside the VM, which does not reach the host; Lima's user-mode network gives the host
//! 192.168.5.2 (`host.lima.internal`), landing on the host's loopback. So the route is that
//! literal address with a loopback bind. Source: <https://lima-vm.io/docs/config/network/user/>.

use std::net::IpAddr;

use crate::consts::LIMA_HOST_IP;
use crate::error::RouteError;
use crate::evidence::Evidence;
use crate::facts::Facts;
use crate::route::{EngineKind, HostTarget, RoutePlan};
use crate::signals::{endpoint_path_contains, engine_kind};
use crate::sockets::{SocketApi, SocketLocation, SocketRoot};

use super::{matched, ContainerRuntime, Detection, HostNetwork, RuntimeId};

/// A Lima instance running Docker (`lima`). Routes to Lima's host address 192.168.5.2, which Lima
/// forwards to the host's loopback, where the gateway binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lima {
    /// Instance name, from the hostname.
    pub instance: Option<String>,
}

const ALIASES: [IpAddr; 1] = [LIMA_HOST_IP];

/// Where Lima's docker template forwards dockerd: `~/.lima/<instance>/sock/docker.sock`
/// (<https://github.com/lima-vm/lima/blob/master/templates/docker.yaml>, `portForwards`;
/// captures for the instances `docker` and `default` in tests/fixtures/lima/).
pub(crate) const SOCKETS: &[SocketLocation] = &[SocketLocation {
    root: SocketRoot::Home,
    path: ".lima/*/sock/docker.sock",
    default_instance: None,
    api: SocketApi::Docker,
    rank: 160,
    label: "Lima",
    only_on: None,
}];

impl Lima {
    /// Matches a Docker engine with a `lima-` hostname or a socket under `~/.lima/`.
    pub fn detect(facts: &Facts) -> Detection {
        if engine_kind(facts).0 != EngineKind::Docker {
            return Detection::NotMine("the engine is not Docker Engine".into());
        }
        let mut ev = Vec::new();
        let instance = facts
            .info
            .name
            .as_deref()
            .and_then(|n| n.strip_prefix("lima-"));
        if let (Some(name), Some(_)) = (facts.info.name.as_deref(), instance) {
            ev.push(Evidence::new(
                "info.Name",
                name,
                "Lima names its VMs lima-<instance>",
            ));
        }
        ev.extend(endpoint_path_contains(
            facts,
            "/.lima/",
            "a Lima instance's forwarded socket",
        ));
        if ev.is_empty() {
            return Detection::NotMine("no lima-<instance> hostname or ~/.lima socket".into());
        }
        matched(
            Lima {
                instance: instance.map(str::to_string),
            },
            ev,
        )
    }
}

impl ContainerRuntime for Lima {
    fn id(&self) -> &str {
        RuntimeId::Lima.as_str()
    }

    fn engine(&self) -> EngineKind {
        EngineKind::Docker
    }

    fn plan(&self) -> Result<RoutePlan, RouteError> {
        Ok(RoutePlan::to_loopback(
            HostTarget::Ip(LIMA_HOST_IP),
            "Lima keeps host-gateway inside the VM; host.lima.internal (192.168.5.2) reaches the host's loopback",
        ))
    }

    fn loopback_aliases(&self) -> &[IpAddr] {
        &ALIASES
    }

    fn host_network(&self) -> HostNetwork {
        HostNetwork::vm(
            LIMA_HOST_IP,
            "host networking joins the Lima VM's namespace, whose 127.0.0.1 is the VM's; Lima's 192.168.5.2 (host.lima.internal) reaches the host's loopback from it",
        )
    }
}
