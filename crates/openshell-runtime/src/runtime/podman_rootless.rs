//! Rootless Podman on the gateway's own Linux host.
//!
//! Identified by a Podman signal, a Linux gateway host and `rootless = true`. Containers live in
//! a user namespace whose network reaches the host only through the rootless network helper, so
//! the helper decides the route (sources in docs/runtimes.md):
//! - slirp4netns with `allow_host_loopback=true` (operator setting `rootless_host_loopback`):
//!   10.0.2.2 lands on the host's loopback, so the gateway stays on loopback.
//! - slirp4netns by default: 10.0.2.2 is blocked; the host's primary address is reachable, so
//!   the route binds it (LAN-facing, and the decision says so).
//! - pasta from Podman 5.3: Podman maps 169.254.1.2 (`--map-guest-addr`) to the host's primary
//!   address and resolves `host-gateway` to it; the gateway binds the primary address.
//! - pasta before 5.3: the container shares the host's addresses and Podman passes
//!   `--no-map-gw`, so no address reaches the host: fail closed.

use std::net::{IpAddr, Ipv4Addr};

use crate::consts::{PASTA_MAPPED_HOST_IP, SLIRP4NETNS_HOST_IP};
use crate::error::RouteError;
use crate::evidence::Evidence;
use crate::facts::{EngineVersion, Facts, HostOs, RootlessHelper};
use crate::route::{EngineKind, Exposure, HostTarget, RoutePlan};
use crate::signals::{engine_kind, host_os_evidence};
use crate::sockets::{SocketApi, SocketLocation, SocketRoot};

use super::podman::rootless_evidence;
use super::{lan_plan, matched, ContainerRuntime, Detection, HostNetwork, RuntimeId};

/// Podman made pasta the default rootless helper in 5.0.
const PASTA_DEFAULT_SINCE: EngineVersion = EngineVersion::new(5, 0, 0);
/// Podman maps 169.254.1.2 to the host through pasta's `--map-guest-addr` from 5.3.
const PASTA_MAP_GUEST_ADDR_SINCE: EngineVersion = EngineVersion::new(5, 3, 0);

/// Rootless Podman on the gateway's own Linux host (`podman-rootless`). The route depends on the
/// rootless network helper: the host's primary address, slirp4netns's loopback address, or pasta's
/// `host-gateway` from Podman 5.3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodmanRootless {
    /// The rootless network helper, when known.
    pub helper: Option<RootlessHelper>,
    /// The Podman version: decides pasta's route (5.3) and the helper when none is reported (5.0).
    pub version: Option<EngineVersion>,
    /// The host's primary IPv4, the only address the LAN routes can use; refused without it.
    pub host_ipv4: Option<Ipv4Addr>,
    /// slirp4netns maps 10.0.2.2 to the host's loopback (operator setting).
    pub host_loopback: bool,
}

const ALIASES: [IpAddr; 1] = [SLIRP4NETNS_HOST_IP];

/// Where rootless Podman's service listens: `unix://$XDG_RUNTIME_DIR/podman/podman.sock`
/// (podman-system-service(1),
/// <https://docs.podman.io/en/latest/markdown/podman-system-service.1.html>). Before rootful
/// Podman, as in Podman's own order: a user's own engine is the one they mean.
pub(crate) const SOCKETS: &[SocketLocation] = &[SocketLocation {
    root: SocketRoot::XdgRuntimeDir,
    path: "podman/podman.sock",
    default_instance: None,
    api: SocketApi::Podman,
    rank: 200,
    label: "Podman (rootless)",
    only_on: None,
}];

impl PodmanRootless {
    /// Matches Podman on a Linux host when it runs rootless (libpod's answer, `Rootless`,
    /// the `rootless` security option, a non-zero id mapping, or a socket under `/run/user/`).
    pub fn detect(facts: &Facts) -> Detection {
        let (kind, mut ev) = engine_kind(facts);
        if kind != EngineKind::Podman {
            return Detection::NotMine("no Podman signal".into());
        }
        match host_os_evidence(facts) {
            Some((HostOs::Linux, e)) => ev.push(e),
            Some((os, _)) => return Detection::NotMine(format!("Podman on {os} runs in a machine VM")),
            None => return Detection::Failed("Podman engine, but host_os is unknown: cannot tell a Linux host from a Podman machine".into()),
        }
        match rootless_evidence(facts) {
            Some((true, e)) => ev.push(e),
            Some((false, _)) => return Detection::NotMine("Podman runs rootful".into()),
            None => return Detection::NotMine("nothing says Podman runs rootless".into()),
        }
        let version = facts.engine_version();
        let helper = match facts
            .libpod
            .as_ref()
            .and_then(|l| l.rootless_network_cmd.clone())
        {
            Some(h) => {
                ev.push(Evidence::new(
                    "libpod_info.host.rootlessNetworkCmd",
                    h.as_str(),
                    "the rootless network helper",
                ));
                Some(h)
            }
            None => {
                let default = version.map(|v| {
                    if v >= PASTA_DEFAULT_SINCE {
                        RootlessHelper::Pasta
                    } else {
                        RootlessHelper::Slirp4netns
                    }
                });
                if let (Some(h), Some(v)) = (&default, version) {
                    ev.push(Evidence::new(
                        "libpod_info.version.Version",
                        &v.to_string(),
                        format!(
                            "no rootlessNetworkCmd reported; {} is Podman {v}'s default helper",
                            h.as_str()
                        ),
                    ));
                }
                default
            }
        };
        matched(
            PodmanRootless {
                helper,
                version,
                host_ipv4: facts.host_ipv4,
                host_loopback: facts.overrides.rootless_host_loopback == Some(true),
            },
            ev,
        )
    }
}

impl ContainerRuntime for PodmanRootless {
    fn id(&self) -> &str {
        RuntimeId::PodmanRootless.as_str()
    }

    fn engine(&self) -> EngineKind {
        EngineKind::Podman
    }

    fn plan(&self) -> Result<RoutePlan, RouteError> {
        let id = RuntimeId::PodmanRootless;
        match (&self.helper, self.version) {
            (Some(RootlessHelper::Slirp4netns), _) if self.host_loopback => Ok(RoutePlan::to_loopback(
                HostTarget::Ip(SLIRP4NETNS_HOST_IP),
                "slirp4netns runs with allow_host_loopback=true: 10.0.2.2 reaches the host's loopback",
            )),
            (Some(RootlessHelper::Slirp4netns), _) => lan_plan(
                id,
                None,
                self.host_ipv4,
                "slirp4netns blocks the host's loopback by default; the host's primary address is reachable",
                "give host_ipv4, or set network_cmd_options = [\"allow_host_loopback=true\"] in containers.conf [engine] and rootless_host_loopback = true",
            ),
            (Some(RootlessHelper::Pasta), Some(v)) if v >= PASTA_MAP_GUEST_ADDR_SINCE => {
                let mut plan = lan_plan(
                    id,
                    None,
                    self.host_ipv4,
                    "Podman 5.3+ maps 169.254.1.2 through pasta to the host's primary address and resolves host-gateway to it",
                    "give host_ipv4 (the address pasta delivers host-gateway traffic to)",
                )?;
                plan.target = HostTarget::HostGateway;
                debug_assert_eq!(plan.exposure, Exposure::Lan);
                Ok(plan)
            }
            (Some(RootlessHelper::Pasta), v) => Err(RouteError::NoSafeRoute {
                runtime: id.to_string(),
                reason: format!(
                    "pasta on Podman {} shares the host's addresses and maps none to the host (Podman passes --no-map-gw; --map-guest-addr came in 5.3)",
                    v.map_or_else(|| "(unknown version)".to_string(), |v| v.to_string())
                ),
                fix: "upgrade Podman to 5.3 or later, or use slirp4netns (default_rootless_network_cmd = \"slirp4netns\" in containers.conf [network])".into(),
            }),
            (Some(RootlessHelper::Other(h)), _) => Err(RouteError::NoSafeRoute {
                runtime: id.to_string(),
                reason: format!("rootless network helper {h} is not one whose host reachability is known"),
                fix: "use pasta (Podman 5.3+) or slirp4netns, or set host_gateway_ip and bind".into(),
            }),
            (None, _) => Err(RouteError::MissingFact {
                runtime: id.to_string(),
                fact: "libpod_info.host.rootlessNetworkCmd",
                why: "the rootless network helper (pasta or slirp4netns) decides what reaches the host, and neither it nor the Podman version (which implies the default helper) was reported".into(),
                fix: "gather libpod's whole /info (podman info --format json) as libpod_info".into(),
            }),
        }
    }

    /// Podman 5.3+ starts pasta with `--map-guest-addr 169.254.1.2`: pasta delivers that
    /// address to the host's primary address, inside the machine.
    fn mapped_host_addresses(&self) -> Vec<IpAddr> {
        match (&self.helper, self.version) {
            (Some(RootlessHelper::Pasta), Some(v)) if v >= PASTA_MAP_GUEST_ADDR_SINCE => {
                vec![PASTA_MAPPED_HOST_IP]
            }
            _ => Vec::new(),
        }
    }

    fn alternatives(&self) -> Vec<RoutePlan> {
        // slirp4netns started with allow_host_loopback maps 10.0.2.2 to the host's loopback;
        // the setting is not reported, so a probe is how to find out.
        match (&self.helper, self.host_loopback) {
            (Some(RootlessHelper::Slirp4netns), false) => vec![RoutePlan::to_loopback(
                HostTarget::Ip(SLIRP4NETNS_HOST_IP),
                "works if slirp4netns runs with allow_host_loopback=true",
            )],
            _ => Vec::new(),
        }
    }

    fn loopback_aliases(&self) -> &[IpAddr] {
        if self.host_loopback && self.helper == Some(RootlessHelper::Slirp4netns) {
            &ALIASES
        } else {
            &[]
        }
    }

    /// Rootless Podman creates no network namespace for `--network host`: the container keeps
    /// the namespace of the user who runs Podman, which is the host's (only the user namespace
    /// is new, and it does not change networking). The rootless helper is not involved.
    fn host_network(&self) -> HostNetwork {
        HostNetwork::shared(
            "rootless Podman's host network is the user's, which is this host's namespace (no helper is involved): the sandbox's 127.0.0.1 is the gateway's",
        )
    }
}
