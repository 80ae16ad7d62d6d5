//! Colima: Docker Engine in a Lima VM managed by Colima.
//!
//! Identified by the VM hostname `colima` (or `colima-<profile>`) and its socket: `~/.colima/`,
//! or `$XDG_CONFIG_HOME/colima/` (normally `~/.config/colima/<profile>/docker.sock`), where
//! Colima keeps its files since 0.5.6 when `~/.colima` does not exist.
//! Colima sets dockerd's `host-gateway-ip` to 192.168.5.2, Lima's user-mode host address, which
//! lands on the Mac's loopback; so `host-gateway` with a loopback bind works.
//!
//! Every Colima marker bounds the engine version: Colima's first release (0.1.0, September 2021)
//! installed Ubuntu 21.04's `docker.io` (20.10), later ones Alpine 3.14+ and Ubuntu 24.04
//! packages, and since 0.5.3 Colima writes `host-gateway-ip` into dockerd's configuration, which
//! a dockerd older than 20.10 refuses. So an unreported version still gets `host-gateway`.
//! Source: Colima's docker provisioning (`host-gateway-ip`) and Lima's network docs, see
//! docs/runtimes.md.

use std::net::IpAddr;

use crate::consts::LIMA_HOST_IP;
use crate::error::RouteError;
use crate::evidence::Evidence;
use crate::facts::{EngineVersion, Facts};
use crate::route::{EngineKind, RoutePlan};
use crate::signals::{endpoint_path_contains, engine_kind};
use crate::sockets::{SocketApi, SocketLocation, SocketRoot};

use super::{
    docker_vm_host_gateway, literal_alternatives, matched, ContainerRuntime, Detection,
    HostNetwork, ImpliedVersion, RuntimeId, DOCKER_HOST_GATEWAY_SINCE,
};

/// Colima (`colima`): Docker Engine in Colima's Lima VM. Routes through `host-gateway`, which
/// Colima points at Lima's host address, with the gateway on the host's loopback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Colima {
    /// The engine version: `host-gateway` is refused below Docker Engine 20.10 and when unknown.
    pub version: Option<EngineVersion>,
}

const ALIASES: [IpAddr; 1] = [LIMA_HOST_IP];

/// Where Colima listens: one socket per profile, `~/.colima/<profile>/docker.sock`, the profile
/// `default` unless `colima start --profile` names another
/// (<https://github.com/abiosoft/colima/blob/main/docs/FAQ.md>; captures with a named profile
/// in tests/fixtures/colima/).
///
/// Since 0.5.6 Colima keeps its files in `$XDG_CONFIG_HOME/colima/` (normally `~/.config/colima/`)
/// when `~/.colima` does not exist (colima `config/files.go`,
/// <https://github.com/abiosoft/colima/pull/736>); a non-default `$XDG_CONFIG_HOME` is not
/// searched.
pub(crate) const SOCKETS: &[SocketLocation] = &[
    SocketLocation {
        root: SocketRoot::Home,
        path: ".colima/*/docker.sock",
        default_instance: Some("default"),
        api: SocketApi::Docker,
        rank: 130,
        label: "Colima",
        only_on: None,
    },
    SocketLocation {
        root: SocketRoot::Home,
        path: ".config/colima/*/docker.sock",
        default_instance: Some("default"),
        api: SocketApi::Docker,
        rank: 131,
        label: "Colima (XDG config)",
        only_on: None,
    },
];

/// What Colima's identity says about its engine version.
const IMPLIED: ImpliedVersion = ImpliedVersion {
    at_least: DOCKER_HOST_GATEWAY_SINCE,
    because: "every Colima release provisions Docker Engine 20.10 or newer",
};

impl Colima {
    /// Matches a Docker engine with Colima's VM hostname or a socket under `~/.colima/`.
    pub fn detect(facts: &Facts) -> Detection {
        if engine_kind(facts).0 != EngineKind::Docker {
            return Detection::NotMine("the engine is not Docker Engine".into());
        }
        let mut ev = Vec::new();
        if let Some(name) = facts
            .info
            .name
            .as_deref()
            .filter(|n| *n == "colima" || n.starts_with("colima-"))
        {
            ev.push(Evidence::new(
                "info.Name",
                name,
                "Colima names its VM colima[-<profile>]",
            ));
        }
        ev.extend(endpoint_path_contains(
            facts,
            "/.colima/",
            "Colima's socket",
        ));
        ev.extend(endpoint_path_contains(
            facts,
            "/.config/colima/",
            "Colima's socket in its XDG configuration directory",
        ));
        if ev.is_empty() {
            return Detection::NotMine(
                "no colima hostname, ~/.colima or ~/.config/colima socket".into(),
            );
        }
        matched(
            Colima {
                version: facts.engine_version(),
            },
            ev,
        )
    }
}

impl ContainerRuntime for Colima {
    fn id(&self) -> &str {
        RuntimeId::Colima.as_str()
    }

    fn engine(&self) -> EngineKind {
        EngineKind::Docker
    }

    fn plan(&self) -> Result<RoutePlan, RouteError> {
        docker_vm_host_gateway(
            RuntimeId::Colima,
            self.version,
            Some(&IMPLIED),
            "Colima sets host-gateway to 192.168.5.2, which Lima forwards to the host's loopback",
        )
    }

    fn loopback_aliases(&self) -> &[IpAddr] {
        &ALIASES
    }

    fn alternatives(&self) -> Vec<RoutePlan> {
        literal_alternatives(
            &ALIASES,
            "Lima's host address, which Colima forwards to the host's loopback",
        )
    }

    fn host_network(&self) -> HostNetwork {
        HostNetwork::vm(
            LIMA_HOST_IP,
            "host networking joins Colima's VM namespace, whose 127.0.0.1 is the VM's; Lima's 192.168.5.2 (host.lima.internal) reaches the host's loopback from it",
        )
    }
}
