//! Rootless Docker Engine (dockerd inside RootlessKit).
//!
//! Identified by `name=rootless` in `info.SecurityOptions` or a socket under `/run/user/<uid>/`.
//! The bridge lives inside RootlessKit's network namespace, so its gateway is not an address of
//! the host; `dockerd-rootless.sh` starts RootlessKit with `--disable-host-loopback`, so 10.0.2.2
//! does not reach the host's loopback either. What remains is the host's primary address, which
//! the network driver (slirp4netns, vpnkit, pasta) reaches from the inside: a LAN-facing bind,
//! and the decision says so. Where the operator re-enabled host loopback
//! (`DOCKERD_ROOTLESS_ROOTLESSKIT_DISABLE_HOST_LOOPBACK=false`, told to us as
//! `rootless_host_loopback`), 10.0.2.2 with a loopback bind is used instead.
//! Source: <https://docs.docker.com/engine/security/rootless/>.

use std::net::{IpAddr, Ipv4Addr};

use crate::consts::SLIRP4NETNS_HOST_IP;
use crate::error::RouteError;
use crate::evidence::Evidence;
use crate::facts::{Facts, HostOs};
use crate::registry::Detection;
use crate::route::{EngineKind, HostTarget, RoutePlan};
use crate::signals::{endpoint_in_user_runtime_dir, engine_kind};

use super::{lan_plan, matched, ContainerRuntime, RuntimeId};

/// Rootless Docker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootlessDocker {
    /// The host's primary IPv4.
    pub host_ipv4: Option<Ipv4Addr>,
    /// Whether RootlessKit maps 10.0.2.2 to the host's loopback (operator setting).
    pub host_loopback: bool,
}

const ALIASES: [IpAddr; 1] = [SLIRP4NETNS_HOST_IP];

impl RootlessDocker {
    /// Detector.
    pub fn detect(facts: &Facts) -> Detection {
        if engine_kind(facts).0 != EngineKind::Docker {
            return Detection::NotMine("the engine is not Docker Engine".into());
        }
        let mut ev = Vec::new();
        if let Some(o) = facts
            .info
            .security_options
            .iter()
            .find(|o| o.name == "rootless")
        {
            ev.push(Evidence::new(
                "info.SecurityOptions",
                &o.raw,
                "dockerd runs rootless",
            ));
        }
        if let Some(e) = endpoint_in_user_runtime_dir(facts) {
            ev.push(e);
        }
        if ev.is_empty() {
            return Detection::NotMine("no rootless security option or per-user socket".into());
        }
        if matches!(&facts.host_os, Some(os) if *os != HostOs::Linux) {
            return Detection::NotMine("rootless Docker runs on Linux hosts".into());
        }
        matched(
            RootlessDocker {
                host_ipv4: facts.host_ipv4,
                host_loopback: facts.overrides.rootless_host_loopback == Some(true),
            },
            ev,
        )
    }
}

impl ContainerRuntime for RootlessDocker {
    fn id(&self) -> &str {
        RuntimeId::RootlessDocker.as_str()
    }

    fn engine(&self) -> EngineKind {
        EngineKind::Docker
    }

    fn plan(&self) -> Result<RoutePlan, RouteError> {
        if self.host_loopback {
            return Ok(RoutePlan::to_loopback(
                HostTarget::Ip(SLIRP4NETNS_HOST_IP),
                "RootlessKit was started with host loopback enabled: 10.0.2.2 reaches the host's loopback",
            ));
        }
        lan_plan(
            RuntimeId::RootlessDocker,
            None,
            self.host_ipv4,
            "the bridge is inside RootlessKit's namespace and host loopback is disabled; the host's primary address is reachable",
            "give host_ipv4, or start RootlessKit with DOCKERD_ROOTLESS_ROOTLESSKIT_DISABLE_HOST_LOOPBACK=false and set rootless_host_loopback = true",
        )
    }

    fn alternatives(&self) -> Vec<RoutePlan> {
        if self.host_loopback {
            return Vec::new();
        }
        vec![RoutePlan::to_loopback(
            HostTarget::Ip(SLIRP4NETNS_HOST_IP),
            "works if RootlessKit runs with host loopback enabled",
        )]
    }

    fn loopback_aliases(&self) -> &[IpAddr] {
        if self.host_loopback {
            &ALIASES
        } else {
            &[]
        }
    }
}
