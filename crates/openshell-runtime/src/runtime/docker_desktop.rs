//! Docker Desktop (macOS, Windows, Linux): Docker Engine in a VM Docker ships.
//!
//! Identified by `info.OperatingSystem = "Docker Desktop"`, `com.docker.desktop.*` labels, the
//! `docker-desktop` hostname or its `linuxkit` kernel. Docker Desktop points the engine's
//! host-gateway at its host address (observed: 192.168.65.254, 192.168.65.2 in vpnkit days),
//! which its network stack forwards to the host's loopback, so `host-gateway` with a loopback
//! bind is the narrowest working route, whatever the address. Sources: docs/runtimes.md.

use std::net::IpAddr;

use crate::consts::{DOCKER_DESKTOP_HOST_IP, DOCKER_DESKTOP_LEGACY_HOST_IP};
use crate::error::RouteError;
use crate::evidence::Evidence;
use crate::facts::{EngineVersion, Facts};
use crate::route::{EngineKind, RoutePlan};
use crate::signals::{endpoint_path_contains, engine_kind};
use crate::sockets::{SocketApi, SocketLocation, SocketRoot};

use super::{
    docker_vm_host_gateway, literal_alternatives, matched, ContainerRuntime, Detection, RuntimeId,
};

/// Docker Desktop (`docker-desktop`): Docker Engine in Desktop's VM. Routes through `host-gateway`,
/// which Desktop points at its host proxy, with the gateway on the host's loopback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerDesktop {
    /// Engine version, for host-gateway support.
    pub version: Option<EngineVersion>,
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
            .filter(|os| *os == "Docker Desktop")
        {
            ev.push(Evidence::new(
                "info.OperatingSystem",
                os,
                "Docker Desktop names its VM OS this way",
            ));
        }
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
        if ev.is_empty() {
            return Detection::NotMine(
                "no Docker Desktop OS name, label, hostname, platform or kernel".into(),
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
}
