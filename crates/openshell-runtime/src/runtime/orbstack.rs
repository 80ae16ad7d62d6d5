//! OrbStack: Docker Engine in OrbStack's lightweight VM on macOS.
//!
//! Identified by `info.OperatingSystem = "OrbStack"`, the `orbstack` hostname or kernel suffix,
//! or the `~/.orbstack/` socket. OrbStack starts dockerd with its own `--host-gateway-ip` (seen as
//! 0.250.250.254 today, 198.19.248.254 in older releases) and NATs it to the Mac's loopback, so
//! `host-gateway` with a loopback bind works whatever the address.
//!
//! Every OrbStack marker also bounds the engine version: OrbStack starts dockerd with
//! `--host-gateway-ip`, a flag dockerd has only since 20.10 (moby#40007) and refuses to start
//! with before, and OrbStack's first releases (2023) came two years after Engine 20.10. So an
//! OrbStack engine that does not report its version is still routed, and the plan says why.
//! Sources: docs/runtimes.md.

use std::net::IpAddr;

use crate::consts::ORBSTACK_HOST_IP;
use crate::error::RouteError;
use crate::evidence::Evidence;
use crate::facts::{EngineVersion, Facts};
use crate::route::{EngineKind, RoutePlan};
use crate::signals::{endpoint_path_contains, engine_kind, os_name_is};
use crate::sockets::{SocketApi, SocketLocation, SocketRoot};

use super::{
    docker_vm_host_gateway, literal_alternatives, matched, ContainerRuntime, Detection,
    HostNetwork, ImpliedVersion, RuntimeId, DOCKER_HOST_GATEWAY_SINCE,
};

/// OrbStack (`orbstack`): Docker Engine in OrbStack's VM. Routes through `host-gateway`, which
/// OrbStack forwards to the Mac's loopback, where the gateway binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrbStack {
    /// The engine version: `host-gateway` is refused below Docker Engine 20.10 and when unknown.
    pub version: Option<EngineVersion>,
}

const ALIASES: [IpAddr; 1] = [ORBSTACK_HOST_IP];

/// Where OrbStack listens: `~/.orbstack/run/docker.sock`
/// (<https://github.com/testcontainers/testcontainers-go/issues/2819>, captured in
/// tests/fixtures/orbstack/).
pub(crate) const SOCKETS: &[SocketLocation] = &[SocketLocation {
    root: SocketRoot::Home,
    path: ".orbstack/run/docker.sock",
    default_instance: None,
    api: SocketApi::Docker,
    rank: 140,
    label: "OrbStack",
    only_on: None,
}];

/// What OrbStack's identity says about its engine version.
const IMPLIED: ImpliedVersion = ImpliedVersion {
    at_least: DOCKER_HOST_GATEWAY_SINCE,
    because:
        "OrbStack starts dockerd with --host-gateway-ip, which dockerd accepts only from 20.10",
};

impl OrbStack {
    /// Matches a Docker engine that names OrbStack (OS name, hostname, kernel) or a socket
    /// under `~/.orbstack/`.
    pub fn detect(facts: &Facts) -> Detection {
        if engine_kind(facts).0 != EngineKind::Docker {
            return Detection::NotMine("the engine is not Docker Engine".into());
        }
        let info = &facts.info;
        let mut ev = Vec::new();
        if let Some(os) = info
            .operating_system
            .as_deref()
            .filter(|os| os_name_is(os, "OrbStack"))
        {
            ev.push(Evidence::new(
                "info.OperatingSystem",
                os,
                "OrbStack names its OS this way",
            ));
        }
        if let Some(name) = info.name.as_deref().filter(|n| *n == "orbstack") {
            ev.push(Evidence::new("info.Name", name, "OrbStack's VM hostname"));
        }
        if let Some(k) = info
            .kernel_version
            .as_deref()
            .filter(|k| k.contains("orbstack"))
        {
            ev.push(Evidence::new("info.KernelVersion", k, "OrbStack's kernel"));
        }
        ev.extend(endpoint_path_contains(
            facts,
            "/.orbstack/",
            "OrbStack's socket",
        ));
        if ev.is_empty() {
            return Detection::NotMine("no OrbStack OS name, hostname, kernel or socket".into());
        }
        matched(
            OrbStack {
                version: facts.engine_version(),
            },
            ev,
        )
    }
}

impl ContainerRuntime for OrbStack {
    fn id(&self) -> &str {
        RuntimeId::OrbStack.as_str()
    }

    fn engine(&self) -> EngineKind {
        EngineKind::Docker
    }

    fn plan(&self) -> Result<RoutePlan, RouteError> {
        docker_vm_host_gateway(
            RuntimeId::OrbStack,
            self.version,
            Some(&IMPLIED),
            "OrbStack resolves host-gateway to 0.250.250.254, which it forwards to the Mac's loopback",
        )
    }

    fn loopback_aliases(&self) -> &[IpAddr] {
        &ALIASES
    }

    fn alternatives(&self) -> Vec<RoutePlan> {
        literal_alternatives(
            &ALIASES,
            "the address OrbStack is observed to forward to the Mac's loopback",
        )
    }

    /// OrbStack documents host networking as two-way: servers on the Mac's localhost are
    /// reachable from `--net=host` containers on localhost (docs.orbstack.dev/docker/network).
    fn host_network(&self) -> HostNetwork {
        let mut h = HostNetwork::shared(
            "OrbStack bridges a host-network container's localhost to the Mac's: 127.0.0.1 reaches the gateway on the Mac's loopback",
        );
        h.namespace = "OrbStack's host network".into();
        // Its localhost bridging is documented, not per address: only 127.0.0.1 is claimed.
        h.shares_loopback = false;
        h
    }
}
