//! Rootless Docker Engine (dockerd inside RootlessKit).
//!
//! Identified by `name=rootless` in `info.SecurityOptions`, a `rootlesskit` component in
//! `/version`, or a socket under `/run/user/<uid>/`. The bridge lives inside RootlessKit's
//! network namespace, so its gateway is not an address of the host. `dockerd-rootless.sh` starts
//! RootlessKit with `--disable-host-loopback`, so the network driver's host address does not
//! reach the host's loopback either. What remains is the host's primary address, which the
//! network driver reaches from the inside: a LAN-facing bind, and the decision says so.
//!
//! Where the operator re-enabled host loopback (told to us as `rootless_host_loopback`), the
//! driver's host-loopback address with a loopback bind is used instead. That address depends on
//! RootlessKit's network driver (rootlesskit docs/network.md): 10.0.2.2 for slirp4netns,
//! 192.168.65.2 for VPNKit, 10.0.2.1 for gvisor-tap-vsock. For pasta it is 10.0.2.2 too:
//! RootlessKit gives pasta `--gateway=10.0.2.2` and adds `--no-map-gw` only with
//! `--disable-host-loopback`, and pasta maps its gateway address to the host's loopback
//! (rootlesskit `pkg/network/pasta/pasta.go`). dockerd 23.0 and later report the driver
//! (`NetworkDriver` of its `rootlesskit` component, moby#42330); without it, slirp4netns, the
//! launcher's default when installed, is assumed and the decision says so. For lxc-user-nic no
//! host-loopback address is documented, so only the LAN route is offered.
//!
//! Docker 29.5 (RootlessKit 3.0) changed neither answer. `dockerd-rootless.sh` now starts
//! RootlessKit with `--detach-netns` (dockerd in the host's namespace, the bridges in a detached
//! one that still leaves through the same network driver), keeps `--disable-host-loopback` by
//! default, and no longer ships VPNKit: without slirp4netns, pasta or VPNKit installed it falls
//! back to gvisor-tap-vsock, which RootlessKit 3.0 embeds. Sources: docs/runtimes.md.

use std::net::{IpAddr, Ipv4Addr};

use crate::consts::{GVISOR_TAP_VSOCK_HOST_IP, SLIRP4NETNS_HOST_IP, VPNKIT_HOST_IP};
use crate::error::RouteError;
use crate::evidence::Evidence;
use crate::facts::{Facts, HostOs, RootlessKitNet};
use crate::route::{EngineKind, HostTarget, RoutePlan};
use crate::signals::{endpoint_in_user_runtime_dir, engine_kind};
use crate::sockets::{SocketApi, SocketLocation, SocketRoot};

use super::{lan_plan, matched, ContainerRuntime, Detection, HostNetwork, RuntimeId};

/// Rootless Docker Engine under RootlessKit (`rootless-docker`). Routes to the host's primary
/// address, or with host loopback enabled to the network driver's loopback address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootlessDocker {
    /// The host's primary IPv4, the only address the LAN route can use; refused without it.
    pub host_ipv4: Option<Ipv4Addr>,
    /// Whether RootlessKit runs without `--disable-host-loopback` (operator setting).
    pub host_loopback: bool,
    /// RootlessKit's network driver, when dockerd reports it.
    pub net: Option<RootlessKitNet>,
}

/// How the gateway is told to re-enable host loopback, for error messages.
const LOOPBACK_FIX: &str = "start RootlessKit without --disable-host-loopback \
    (DOCKERD_ROOTLESS_ROOTLESSKIT_DISABLE_HOST_LOOPBACK=false on Docker 26 and later, \
    DOCKERD_ROOTLESS_ROOTLESSKIT_FLAGS=--disable-host-loopback=false before) \
    and set rootless_host_loopback = true";

/// Where rootless Docker listens: "The socket path is set to `$XDG_RUNTIME_DIR/docker.sock` by
/// default" (<https://docs.docker.com/engine/security/rootless/>); the local capture in
/// tests/fixtures/rootless-docker/ was taken through it.
pub(crate) const SOCKETS: &[SocketLocation] = &[SocketLocation {
    root: SocketRoot::XdgRuntimeDir,
    path: "docker.sock",
    default_instance: None,
    api: SocketApi::Docker,
    rank: 110,
    label: "rootless Docker",
    only_on: None,
}];

impl RootlessDocker {
    /// Matches a Docker engine that reports the `rootless` security option or a RootlessKit
    /// component, or listens under `/run/user/`, unless the host is known not to be Linux.
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
        let version = facts.version.as_ref();
        let net = version.and_then(|v| v.rootlesskit_net.clone());
        if let Some(c) = version.and_then(|v| v.component("rootlesskit")) {
            let driver = net.as_ref().map_or("not reported", RootlessKitNet::as_str);
            ev.push(Evidence::new(
                "version.Components[].Name",
                &format!("{} (NetworkDriver: {driver})", c.name),
                "dockerd reports the RootlessKit it runs under",
            ));
        }
        if let Some(e) = endpoint_in_user_runtime_dir(facts) {
            ev.push(e);
        }
        if ev.is_empty() {
            return Detection::NotMine(
                "no rootless security option, rootlesskit component or per-user socket".into(),
            );
        }
        if matches!(&facts.host_os, Some(os) if *os != HostOs::Linux) {
            return Detection::NotMine("rootless Docker runs on Linux hosts".into());
        }
        matched(
            RootlessDocker {
                host_ipv4: facts.host_ipv4,
                host_loopback: facts.overrides.rootless_host_loopback == Some(true),
                net,
            },
            ev,
        )
    }

    /// The address the network driver forwards to the host's loopback when RootlessKit runs
    /// without `--disable-host-loopback` (rootlesskit docs/network.md); empty where none is
    /// documented. An unreported driver is taken to be slirp4netns.
    fn driver_loopback(&self) -> &'static [IpAddr] {
        match &self.net {
            // RootlessKit configures pasta with slirp4netns' addresses (gateway 10.0.2.2).
            None | Some(RootlessKitNet::Slirp4netns) | Some(RootlessKitNet::Pasta) => {
                &[SLIRP4NETNS_HOST_IP]
            }
            Some(RootlessKitNet::Vpnkit) => &[VPNKIT_HOST_IP],
            Some(RootlessKitNet::GvisorTapVsock) => &[GVISOR_TAP_VSOCK_HOST_IP],
            Some(_) => &[],
        }
    }

    /// The network driver, for explanations.
    fn driver(&self) -> String {
        match &self.net {
            Some(n) => format!("RootlessKit's {} network driver", n.as_str()),
            None => "no RootlessKit network driver reported; assuming slirp4netns, \
                     dockerd-rootless.sh's default when installed"
                .into(),
        }
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
        let id = RuntimeId::RootlessDocker;
        if !self.host_loopback {
            return lan_plan(
                id,
                None,
                self.host_ipv4,
                "the bridge is inside RootlessKit's namespace and host loopback is disabled; the host's primary address is reachable",
                &format!("give host_ipv4, or {LOOPBACK_FIX}"),
            );
        }
        match self.driver_loopback().first() {
            Some(ip) => Ok(RoutePlan::to_loopback(
                HostTarget::Ip(*ip),
                format!(
                    "RootlessKit runs with host loopback enabled: {ip} reaches the host's loopback ({})",
                    self.driver()
                ),
            )),
            None => lan_plan(
                id,
                None,
                self.host_ipv4,
                &format!(
                    "{} has no documented host-loopback address; the host's primary address is reachable",
                    self.driver()
                ),
                "give host_ipv4 (the host's primary address, which the network driver reaches)",
            ),
        }
    }

    fn alternatives(&self) -> Vec<RoutePlan> {
        if self.host_loopback {
            return Vec::new();
        }
        self.driver_loopback()
            .iter()
            .map(|ip| {
                RoutePlan::to_loopback(
                    HostTarget::Ip(*ip),
                    format!(
                        "works if RootlessKit runs with host loopback enabled ({})",
                        self.driver()
                    ),
                )
            })
            .collect()
    }

    fn loopback_aliases(&self) -> &[IpAddr] {
        if self.host_loopback {
            self.driver_loopback()
        } else {
            &[]
        }
    }

    /// A host-network container joins RootlessKit's network namespace (also with
    /// `--detach-netns`, which moves only dockerd out of it), whose 127.0.0.1 is not the host's.
    /// Only the network driver's host-loopback address reaches the host's loopback, and only
    /// when RootlessKit runs without `--disable-host-loopback`.
    fn host_network(&self) -> HostNetwork {
        const NS: &str = "RootlessKit's network namespace";
        let loopback = self.driver_loopback();
        if let (true, Some(ip)) = (self.host_loopback, loopback.first()) {
            return HostNetwork {
                namespace: NS.into(),
                plan: Ok(RoutePlan::to_loopback(
                    HostTarget::Ip(*ip),
                    format!(
                        "host networking joins RootlessKit's namespace, whose 127.0.0.1 is its own; with host loopback enabled {ip} reaches the host's loopback ({})",
                        self.driver()
                    ),
                )),
                loopback_aliases: vec![*ip],
                shares_loopback: false,
                alternatives: Vec::new(),
                resolves_host_gateway: false,
            };
        }
        let reason = if self.host_loopback {
            format!(
                "host networking joins RootlessKit's namespace, whose 127.0.0.1 is its own, and {} has no documented host-loopback address",
                self.driver()
            )
        } else {
            "host networking joins RootlessKit's namespace, whose 127.0.0.1 is its own, and host loopback is disabled (dockerd-rootless.sh's default), so nothing there reaches the host's loopback".into()
        };
        HostNetwork {
            namespace: NS.into(),
            plan: Err(RouteError::NoSafeRoute {
                runtime: self.id().into(),
                reason,
                fix: format!("{LOOPBACK_FIX}, or set host_gateway_ip to the host's primary address (the gateway then binds it, reachable from the LAN), or run sandboxes on a bridge network"),
            }),
            loopback_aliases: Vec::new(),
            shares_loopback: false,
            alternatives: self.alternatives(),
            resolves_host_gateway: false,
        }
    }
}
