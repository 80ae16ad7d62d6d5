//! Rootful Docker Engine on the gateway's own Linux host.
//!
//! The fallback for Docker engines: no VM, rootless or remote signal, a Linux gateway host and a
//! local endpoint. Sandboxes sit on a bridge of this very host, so the bridge's gateway address
//! is both where they are sent and where the gateway binds; that keeps the gateway off every
//! other interface. (Docker's `host-gateway` would be docker0's address, not the sandbox
//! bridge's.) Source: <https://docs.docker.com/engine/network/drivers/bridge/>.

use crate::error::RouteError;
use crate::facts::{EngineVersion, Facts, HostOs, NetworkFacts};
use crate::route::{EngineKind, RoutePlan};
use crate::signals::{engine_kind, host_os_evidence};
use crate::sockets::{SocketApi, SocketLocation, SocketRoot};

use super::{bridge_plan, matched, ContainerRuntime, Detection, HostNetwork, RuntimeId};

/// Rootful Docker Engine on the gateway's own Linux host (`native-docker`). Routes to the sandbox
/// bridge's gateway address, which is also the bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeDocker {
    /// The sandbox network, whose IPAM gateway is the route; the route is refused without it.
    pub network: Option<NetworkFacts>,
    /// The engine version, as detected; the bridge route does not depend on it.
    pub version: Option<EngineVersion>,
}

/// Where rootful Docker Engine listens: dockerd's default `-H unix:///var/run/docker.sock`
/// (<https://docs.docker.com/reference/cli/dockerd/>). First of every runtime's locations, as in
/// the docker CLI, which tries nothing else.
pub(crate) const SOCKETS: &[SocketLocation] = &[SocketLocation {
    root: SocketRoot::Absolute,
    path: "/var/run/docker.sock",
    default_instance: None,
    api: SocketApi::Docker,
    rank: 100,
    label: "Docker Engine",
    only_on: None,
}];

impl NativeDocker {
    /// The fallback for Docker engines: matches any Docker engine on a Linux host reached
    /// through a local socket, once every more specific detector has declined.
    pub fn detect(facts: &Facts) -> Detection {
        let (kind, mut ev) = engine_kind(facts);
        if kind != EngineKind::Docker {
            return Detection::NotMine("the engine is not Docker Engine".into());
        }
        match host_os_evidence(facts) {
            Some((HostOs::Linux, e)) => ev.push(e),
            Some((os, _)) => {
                return Detection::NotMine(format!(
                    "a Docker engine on {os} runs in a VM that no detector recognised"
                ))
            }
            None => return Detection::NotMine("host_os is unknown".into()),
        }
        if facts
            .endpoint
            .as_ref()
            .is_some_and(|e| e.network_host().is_some())
        {
            return Detection::NotMine(
                "the endpoint is a network address, not a local socket".into(),
            );
        }
        matched(
            NativeDocker {
                network: facts.network.clone(),
                version: facts.engine_version(),
            },
            ev,
        )
    }
}

impl ContainerRuntime for NativeDocker {
    fn id(&self) -> &str {
        RuntimeId::NativeDocker.as_str()
    }

    fn engine(&self) -> EngineKind {
        EngineKind::Docker
    }

    fn plan(&self) -> Result<RoutePlan, RouteError> {
        bridge_plan(
            RuntimeId::NativeDocker,
            self.network.as_ref(),
            "sandboxes sit on a bridge of this host: its gateway address reaches the host and nothing else",
        )
    }

    fn host_network(&self) -> HostNetwork {
        HostNetwork::shared(
            "host networking joins this host's network namespace: the sandbox's 127.0.0.1 is the gateway's",
        )
    }
}
