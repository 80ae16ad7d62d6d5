//! The [`ContainerRuntime`] trait, one implementation per runtime, and the [`Runtime`] enum that
//! dispatches to them.
//!
//! Each runtime lives in its own file with its detector: which facts identify it, why it routes as
//! it does, and where that behaviour is documented. A runtime owns the facts its route needs
//! (bridge gateway, rootless helper, engine version), so routing takes no loose flags.

mod external;

use std::fmt;
use std::net::IpAddr;

use enum_dispatch::enum_dispatch;
use serde::Serialize;

pub use external::External;

use crate::consts::LOOPBACK_V4;
use crate::error::RouteError;
use crate::evidence::Evidence;
use crate::facts::{EngineVersion, Facts, NetworkFacts, Overrides};
use crate::resolve::{resolve, RuntimeRouting};
use crate::route::{
    EngineKind, Exposure, HostTarget, NetworkMode, RelayCarrier, Route, RouteContext, RoutePlan,
};
use crate::sockets::SocketLocation;

/// The table of built-in runtimes: one line per runtime, `module::Type = "id"`.
///
/// Everything else that lists the runtimes is generated from it: the `mod` declaration and
/// re-export, the [`Runtime`] variant, the [`RuntimeId`] variant with its serde name, the order
/// of [`RuntimeId::ALL`], [`RuntimeId::as_str`] and [`RuntimeId::parse`], and the detector of
/// each id, and [`RuntimeId::sockets`] (the `SOCKETS` each runtime file declares next to its
/// detector). The line order is the detector order of `Registry::builtin` (in `registry`):
/// specific runtimes before generic ones (a remote endpoint before anything local, Podman
/// machine before rootless Podman, the Docker VMs before native Docker), so the generic
/// fallbacks only see engines nothing more specific claimed. The file of a runtime is named
/// after its id with `_` for `-`; `tests/it/fixtures.rs` checks that every file in this
/// directory has its line.
macro_rules! runtimes {
    ($($module:ident :: $ty:ident = $id:literal,)+) => {
        $(
            mod $module;
            pub use $module::$ty;
        )+

        /// Every runtime this crate knows, plus those an embedder brings ([`External`]).
        #[enum_dispatch(ContainerRuntime)]
        #[derive(Debug, Clone)]
        pub enum Runtime {
            $(
                #[doc = concat!("The `", $id, "` runtime: see [`", stringify!($ty), "`].")]
                $ty,
            )+
            /// A runtime defined outside this crate.
            External,
        }

        /// Ids of the built-in runtimes, one per line of the runtime table, serialized as the id
        /// string.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        pub enum RuntimeId {
            $(
                #[doc = concat!("`", $id, "`")]
                #[serde(rename = $id)]
                $ty,
            )+
        }

        impl RuntimeId {
            /// Every built-in id, in detector order (the order of the runtime table).
            pub const ALL: [RuntimeId; [$($id),+].len()] = [$(RuntimeId::$ty),+];

            /// The id string, as in CLI output, docs, fixtures folders and [`ContainerRuntime::id`].
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(RuntimeId::$ty => $id,)+
                }
            }

            /// The detector function of this runtime (its registry line).
            pub(crate) fn detector(self) -> fn(&Facts) -> Detection {
                match self {
                    $(RuntimeId::$ty => $ty::detect,)+
                }
            }

            /// Where this runtime's engine listens, as data (its file's `SOCKETS`); empty for a
            /// runtime reached only through an endpoint the operator names.
            pub fn sockets(self) -> &'static [SocketLocation] {
                match self {
                    $(RuntimeId::$ty => $module::SOCKETS,)+
                }
            }
        }
    };
}

runtimes! {
    remote_docker::RemoteDocker = "remote-docker",
    podman_machine::PodmanMachine = "podman-machine",
    podman_rootless::PodmanRootless = "podman-rootless",
    podman::Podman = "podman",
    docker_desktop::DockerDesktop = "docker-desktop",
    orbstack::OrbStack = "orbstack",
    rancher_desktop::RancherDesktop = "rancher-desktop",
    colima::Colima = "colima",
    lima::Lima = "lima",
    rootless_docker::RootlessDocker = "rootless-docker",
    native_docker::NativeDocker = "native-docker",
}

/// What one detector concluded.
#[derive(Debug, Clone)]
pub enum Detection {
    /// The engine is this runtime.
    Match {
        /// The runtime, owning the facts its route needs.
        runtime: Runtime,
        /// The facts that matched.
        evidence: Vec<Evidence>,
    },
    /// Not this runtime, and why.
    NotMine(String),
    /// Signals of this runtime were seen, but not enough to decide; the search stops.
    Failed(String),
}

/// A container runtime: what its containers must be told so that they reach the gateway.
///
/// Implementors provide their id, engine family and [`plan`](ContainerRuntime::plan), and may
/// name loopback aliases and alternatives. The route with the operator's overrides applied comes
/// from [`GatewayRoute`], which every runtime gets and none can replace.
#[enum_dispatch]
pub trait ContainerRuntime {
    /// Stable id used in CLI output and docs, e.g. `podman-machine`.
    fn id(&self) -> &str;

    /// Engine family, which decides the native host alias.
    fn engine(&self) -> EngineKind;

    /// The route this runtime takes when the operator sets nothing, or why it has none.
    fn plan(&self) -> Result<RoutePlan, RouteError>;

    /// Container-side addresses this runtime forwards to the host's loopback. An override to one
    /// of them keeps the gateway on loopback.
    fn loopback_aliases(&self) -> &[IpAddr] {
        &[]
    }

    /// Other routes this runtime allows, in the order to try when [`plan`](Self::plan)'s route
    /// fails a reachability probe. Only routes with a documented reason to work belong here.
    fn alternatives(&self) -> Vec<RoutePlan> {
        Vec::new()
    }

    /// Container-side addresses (bridge networking) that this runtime's own network path
    /// delivers to the gateway host, not to its loopback, and that no plan names literally
    /// (pasta's 169.254.1.2, which Podman 5.3+ resolves `host-gateway` to). Traffic to them
    /// never leaves the machine, so the operator naming one is on the runtime's evidence
    /// ([`TargetSource::Runtime`](crate::route::TargetSource::Runtime)).
    fn mapped_host_addresses(&self) -> Vec<IpAddr> {
        Vec::new()
    }

    /// The answer for sandboxes in the engine's host network namespace
    /// ([`NetworkMode::Host`]): which address, seen from that namespace, reaches the gateway,
    /// where the gateway binds, and which addresses land on the gateway host's loopback. The
    /// default refuses, so a runtime that has not said where its host namespace is fails closed.
    fn host_network(&self) -> HostNetwork {
        HostNetwork::unknown(self.id())
    }
}

/// A runtime's answer for host networking: the plan (or refusal), whose namespace it is, and
/// which addresses reach the gateway host's loopback from it.
#[derive(Debug, Clone)]
pub struct HostNetwork {
    /// Whose network namespace a host-network container joins, for people: "this host", "the
    /// VM", "RootlessKit's namespace".
    pub namespace: String,
    /// The route's plan, or why there is none. Its target is a literal address, or
    /// `host-gateway` only where `resolves_host_gateway` says the engine resolves it there.
    pub plan: Result<RoutePlan, RouteError>,
    /// Addresses that, from that namespace, land on the gateway host's loopback. An override to
    /// one of them keeps the gateway on loopback; a loopback override not listed here is refused
    /// ([`RouteError::LoopbackElsewhere`]) unless `shares_loopback`.
    pub loopback_aliases: Vec<IpAddr>,
    /// The namespace's loopback is the gateway host's own (it is the gateway host's namespace),
    /// so every loopback address is fit, the gateway binding the one sandboxes call.
    pub shares_loopback: bool,
    /// Other routes to try when the plan's route fails a probe.
    pub alternatives: Vec<RoutePlan>,
    /// The engine resolves `host-gateway` for a host-network container to an address that,
    /// from this namespace, reaches the gateway host's loopback (dockerd's `host-gateway-ip`,
    /// which a VM runtime points at its host proxy). Without it a `host-gateway` plan is
    /// refused in host mode, since the default `host-gateway-ip` is a bridge's gateway.
    pub resolves_host_gateway: bool,
}

impl HostNetwork {
    /// The refusal of a runtime that does not say where its host network namespace is.
    pub fn unknown(runtime: &str) -> HostNetwork {
        HostNetwork {
            namespace: "the engine's host network namespace".into(),
            plan: Err(RouteError::NoSafeRoute {
                runtime: runtime.to_string(),
                reason: "this runtime does not say which address reaches the gateway from the engine's host network namespace".into(),
                fix: "run sandboxes on a bridge network (network mode bridge), or set host_gateway_ip (and bind) to an address that namespace reaches".into(),
            }),
            loopback_aliases: Vec::new(),
            shares_loopback: false,
            alternatives: Vec::new(),
            resolves_host_gateway: false,
        }
    }

    /// The engine's host namespace is the gateway host's own: 127.0.0.1 on both sides.
    pub(crate) fn shared(why: &str) -> HostNetwork {
        HostNetwork {
            namespace: "this host".into(),
            plan: Ok(RoutePlan::to_loopback(HostTarget::Ip(LOOPBACK_V4), why)),
            loopback_aliases: vec![LOOPBACK_V4],
            shares_loopback: true,
            alternatives: Vec::new(),
            resolves_host_gateway: false,
        }
    }

    /// The engine's host namespace is a VM's, which reaches the gateway host's loopback
    /// through `host` (its documented host address).
    pub(crate) fn vm(host: IpAddr, why: &str) -> HostNetwork {
        HostNetwork {
            namespace: "the VM".into(),
            plan: Ok(RoutePlan::to_loopback(HostTarget::Ip(host), why)),
            loopback_aliases: vec![host],
            shares_loopback: false,
            alternatives: Vec::new(),
            resolves_host_gateway: false,
        }
    }

    /// A refusal from a namespace that is not the gateway host's.
    pub(crate) fn refused(namespace: &str, err: RouteError) -> HostNetwork {
        HostNetwork {
            namespace: namespace.into(),
            plan: Err(err),
            loopback_aliases: Vec::new(),
            shares_loopback: false,
            alternatives: Vec::new(),
            resolves_host_gateway: false,
        }
    }
}

/// The route of a runtime, with the operator's overrides applied and checked.
///
/// Provided for every [`ContainerRuntime`] by one blanket impl, so that no runtime can replace
/// it: whatever a runtime plans, its route goes through the one override resolution that keeps
/// the container side (what `host.openshell.internal` maps to) and the bind side (where the
/// gateway listens) meeting. A runtime that tries to provide its own does not compile:
///
/// ```compile_fail,E0119
/// use openshell_runtime::{
///     ContainerRuntime, EngineKind, GatewayRoute, Overrides, Route, RouteContext, RouteError,
///     RoutePlan,
/// };
///
/// struct Sneaky;
///
/// impl ContainerRuntime for Sneaky {
///     fn id(&self) -> &str { "sneaky" }
///     fn engine(&self) -> EngineKind { EngineKind::Docker }
///     fn plan(&self) -> Result<RoutePlan, RouteError> { unimplemented!() }
/// }
///
/// impl GatewayRoute for Sneaky {
///     fn gateway_route(&self, _: &RouteContext, _: &Overrides) -> Result<Route, RouteError> {
///         unimplemented!()
///     }
/// }
/// ```
pub trait GatewayRoute {
    /// The runtime's [`plan`](ContainerRuntime::plan) with `overrides` laid over it, or the
    /// error that refuses it: the plan's own error when nothing is overridden, or a
    /// [`RouteError::BindConflict`] when a bind override would not receive what sandboxes send.
    fn gateway_route(&self, ctx: &RouteContext, overrides: &Overrides)
        -> Result<Route, RouteError>;
}

impl<T: ContainerRuntime + ?Sized> GatewayRoute for T {
    fn gateway_route(
        &self,
        ctx: &RouteContext,
        overrides: &Overrides,
    ) -> Result<Route, RouteError> {
        // The literal addresses of the runtime's other plans are on its evidence too.
        let literal = |plans: &[RoutePlan]| -> Vec<IpAddr> {
            plans
                .iter()
                .filter_map(|p| match p.target {
                    HostTarget::Ip(ip) => Some(ip),
                    _ => None,
                })
                .collect()
        };
        match ctx.network_mode {
            NetworkMode::Bridge => {
                let mut vouched = literal(&self.alternatives());
                vouched.extend(self.mapped_host_addresses());
                resolve(
                    RuntimeRouting {
                        runtime: self.id(),
                        engine: self.engine(),
                        plan: self.plan(),
                        loopback_aliases: self.loopback_aliases(),
                        vouched: &vouched,
                        host_namespace: None,
                        host_gateway_resolves: true,
                    },
                    ctx,
                    overrides,
                )
            }
            NetworkMode::Host => {
                let host = self.host_network();
                resolve(
                    RuntimeRouting {
                        runtime: self.id(),
                        engine: self.engine(),
                        plan: host.plan,
                        loopback_aliases: &host.loopback_aliases,
                        vouched: &literal(&host.alternatives),
                        host_namespace: Some((&host.namespace, host.shares_loopback)),
                        host_gateway_resolves: host.resolves_host_gateway,
                    },
                    ctx,
                    overrides,
                )
            }
        }
    }
}

/// How a relay for an engine of `runtime` (a [`Route::runtime`]) reached at `endpoint` carries
/// its connections: through a bind-mounted Unix socket of the gateway only where the engine runs
/// on this host's kernel and filesystem, which the evidence shows only for the native Linux
/// runtimes (Docker Engine and Podman, rootful or rootless) reached over a local `unix://`
/// socket. Everywhere else, the engine's attach stream: a VM's socket is a local Unix socket
/// forwarded from the VM (Docker Desktop, Colima, Lima, Rancher Desktop, OrbStack, Podman
/// machine), and a `tcp://` or `ssh://` engine is another machine's. An engine in another mount
/// namespace or chroot looks native and is caught live: its relay cannot see the socket and
/// the gateway falls back to attach (docs/relay.md).
pub fn relay_carrier(runtime: &str, endpoint: &crate::facts::Endpoint) -> RelayCarrier {
    let native = matches!(
        RuntimeId::parse(runtime),
        Some(
            RuntimeId::NativeDocker
                | RuntimeId::RootlessDocker
                | RuntimeId::Podman
                | RuntimeId::PodmanRootless
        )
    );
    match endpoint {
        crate::facts::Endpoint::Unix { .. } if native => RelayCarrier::Socket,
        _ => RelayCarrier::Attach,
    }
}

impl RuntimeId {
    /// The built-in id with this spelling.
    pub fn parse(s: &str) -> Option<RuntimeId> {
        RuntimeId::ALL.into_iter().find(|id| id.as_str() == s)
    }
}

/// Every built-in runtime's socket locations, in discovery order: sorted by
/// [`SocketLocation::rank`], so the engines a user most likely means come first (Docker Engine,
/// rootless Docker, the Docker VMs, then rootless Podman, rootful Podman and Podman machines).
/// Both drivers walk this one list, keeping the locations whose API they speak.
pub fn well_known_sockets() -> Vec<(RuntimeId, &'static SocketLocation)> {
    let mut all: Vec<(RuntimeId, &'static SocketLocation)> = RuntimeId::ALL
        .into_iter()
        .flat_map(|id| id.sockets().iter().map(move |s| (id, s)))
        .collect();
    all.sort_by_key(|(_, s)| s.rank);
    all
}

impl fmt::Display for RuntimeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Docker Engine resolves `host-gateway` since 20.10; older engines do not know the value, so it
/// is never sent to them (or to an engine whose version is unknown).
pub(crate) const DOCKER_HOST_GATEWAY_SINCE: EngineVersion = EngineVersion::new(20, 10, 0);

/// The literal-address alternatives of a Docker VM runtime whose host-gateway lands on loopback:
/// the addresses it is known to forward, should `host-gateway` not be resolved as expected.
pub(crate) fn literal_alternatives(aliases: &[IpAddr], why: &str) -> Vec<RoutePlan> {
    aliases
        .iter()
        .map(|ip| RoutePlan::to_loopback(HostTarget::Ip(*ip), why))
        .collect()
}

/// A lower bound on the engine version that a runtime's identity implies, for engines that do not
/// report their version (Docker Desktop answers old API clients with a reduced `/info`): no
/// release that carries the marker shipped an older engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImpliedVersion {
    /// The engine is at least this version.
    pub at_least: EngineVersion,
    /// Why the marker bounds the version, in one clause for people (and its source).
    pub because: &'static str,
}

/// A `host-gateway` route for a Docker VM runtime whose host-gateway lands on the host's loopback,
/// refused on engines too old to resolve `host-gateway`. Without a reported version the route
/// stands only when the runtime's identity bounds the version, and the plan says so.
pub(crate) fn docker_vm_host_gateway(
    id: RuntimeId,
    version: Option<EngineVersion>,
    implied: Option<&ImpliedVersion>,
    why: &str,
) -> Result<RoutePlan, RouteError> {
    let reason = match (version, implied) {
        (Some(v), _) if v >= DOCKER_HOST_GATEWAY_SINCE => None,
        (Some(v), _) => Some(format!(
            "Docker Engine {v} predates host-gateway (added in {DOCKER_HOST_GATEWAY_SINCE})"
        )),
        (None, Some(i)) if i.at_least >= DOCKER_HOST_GATEWAY_SINCE => {
            return Ok(RoutePlan::to_loopback(
                HostTarget::HostGateway,
                format!(
                    "{why}; the engine version is not reported, but {}, so the engine is {} or later",
                    i.because, i.at_least
                ),
            ))
        }
        (None, _) => Some(format!(
            "the engine version is not reported, and host-gateway needs Docker Engine {DOCKER_HOST_GATEWAY_SINCE} or later"
        )),
    };
    if let Some(reason) = reason {
        return Err(RouteError::NoSafeRoute {
            runtime: id.to_string(),
            reason,
            fix: "gather the engine's /info or /version (ServerVersion), upgrade the runtime, or set host_gateway_ip to the VM's host address".into(),
        });
    }
    Ok(RoutePlan::to_loopback(HostTarget::HostGateway, why))
}

/// The route of engines whose containers sit on a bridge of the gateway's own host: the
/// bridge's gateway address, on both sides.
pub(crate) fn bridge_plan(
    id: RuntimeId,
    network: Option<&NetworkFacts>,
    why: &str,
) -> Result<RoutePlan, RouteError> {
    let fix = "gather the sandbox network (`network` in the facts: the body of `docker network inspect <name>`), or set host_gateway_ip";
    let Some(net) = network else {
        return Err(RouteError::MissingFact {
            runtime: id.to_string(),
            fact: "network",
            why: "the route is the sandbox bridge's gateway address".into(),
            fix: fix.into(),
        });
    };
    if let Some(driver) = net.driver.as_deref().filter(|d| *d != "bridge") {
        return Err(RouteError::NoSafeRoute {
            runtime: id.to_string(),
            reason: format!(
                "the sandbox network uses driver {}, not bridge",
                crate::evidence::display_value(driver)
            ),
            fix: "attach sandboxes to a bridge network".into(),
        });
    }
    let gw: IpAddr = match (net.ipv4_gateway, net.ipv6_gateway) {
        (Some(v4), _) => v4.into(),
        (None, Some(v6)) => v6.into(),
        (None, None) => {
            return Err(RouteError::MissingFact {
                runtime: id.to_string(),
                fact: "network.IPAM.Config[].Gateway",
                why: "the sandbox network reports no IPAM gateway".into(),
                fix: fix.into(),
            })
        }
    };
    Ok(RoutePlan {
        target: HostTarget::Ip(gw),
        bind: Some(gw),
        exposure: Exposure::Bridge,
        why: why.into(),
    })
}

/// The route of rootless modes that reach the host only through its primary address.
pub(crate) fn lan_plan(
    id: RuntimeId,
    target: Option<IpAddr>,
    host_ipv4: Option<std::net::Ipv4Addr>,
    why: &str,
    fix: &str,
) -> Result<RoutePlan, RouteError> {
    let Some(host) = host_ipv4 else {
        return Err(RouteError::MissingFact {
            runtime: id.to_string(),
            fact: "host_ipv4",
            why: "this runtime reaches the host only through the host's primary address".into(),
            fix: fix.into(),
        });
    };
    Ok(RoutePlan {
        target: HostTarget::Ip(target.unwrap_or(IpAddr::V4(host))),
        bind: Some(IpAddr::V4(host)),
        exposure: Exposure::Lan,
        why: why.into(),
    })
}

/// Collects evidence: a runtime matches when at least one strong signal holds.
pub(crate) fn matched(runtime: impl Into<Runtime>, evidence: Vec<Evidence>) -> Detection {
    Detection::Match {
        runtime: runtime.into(),
        evidence,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::sockets::{OsFamily, SocketApi, SocketRoot};

    /// The relay's socket carrier only for the native Linux runtimes on a local Unix socket; a
    /// VM's forwarded socket, a remote engine and an unknown runtime keep the attach stream.
    #[test]
    fn the_relay_socket_carrier_needs_a_native_runtime_on_a_unix_socket() {
        let unix = crate::facts::Endpoint::parse("unix:///var/run/docker.sock")
            .unwrap_or_else(|e| panic!("{e}"));
        let tcp =
            crate::facts::Endpoint::parse("tcp://10.0.0.1:2376").unwrap_or_else(|e| panic!("{e}"));
        let ssh = crate::facts::Endpoint::parse("ssh://u@h/run/podman/podman.sock")
            .unwrap_or_else(|e| panic!("{e}"));
        for id in RuntimeId::ALL {
            let native = matches!(
                id.as_str(),
                "native-docker" | "rootless-docker" | "podman" | "podman-rootless"
            );
            let want = if native {
                RelayCarrier::Socket
            } else {
                RelayCarrier::Attach
            };
            assert_eq!(relay_carrier(id.as_str(), &unix), want, "{id:?}");
            assert_eq!(relay_carrier(id.as_str(), &tcp), RelayCarrier::Attach);
            assert_eq!(relay_carrier(id.as_str(), &ssh), RelayCarrier::Attach);
        }
        assert_eq!(relay_carrier("unknown", &unix), RelayCarrier::Attach);
    }

    #[test]
    fn socket_locations_are_well_formed() {
        let all = well_known_sockets();
        let mut ranks = BTreeSet::new();
        for (id, s) in &all {
            let stars = s.path.matches('*').count();
            assert!(stars <= 1, "{id} {}: more than one '*'", s.path);
            assert!(
                ranks.insert(s.rank),
                "{id} {}: rank {} is taken",
                s.path,
                s.rank
            );
            if let Some(default) = s.default_instance {
                let pattern = s.instances();
                assert!(
                    pattern.is_some_and(|p| p.instance(&p.entry(default)) == Some(default)),
                    "{id} {}: default instance {default:?} needs a '*' segment it can fill",
                    s.path
                );
            }
            match s.root {
                SocketRoot::Absolute => assert!(s.path.starts_with('/'), "{id} {}", s.path),
                SocketRoot::NamedPipe => {
                    assert!(s.path.starts_with("//./pipe/"), "{id} {}", s.path);
                    assert_eq!(s.only_on, Some(OsFamily::Windows), "{id} {}", s.path);
                }
                SocketRoot::Home | SocketRoot::XdgRuntimeDir | SocketRoot::TmpDir => {
                    assert!(!s.path.starts_with('/'), "{id} {}: not relative", s.path);
                }
            }
            assert!(
                stars == 0 || !matches!(s.root, SocketRoot::Absolute | SocketRoot::NamedPipe),
                "{id} {}: a '*' segment only under a per-user root",
                s.path
            );
            assert!(!s.label.is_empty(), "{id} {}: no label", s.path);
        }
    }

    #[test]
    fn each_engine_family_serves_its_own_api() {
        for id in RuntimeId::ALL {
            let podman = id.as_str().starts_with("podman");
            let want = if podman {
                SocketApi::Podman
            } else {
                SocketApi::Docker
            };
            for s in id.sockets() {
                assert_eq!(s.api, want, "{id} {}", s.path);
            }
            assert_eq!(
                id.sockets().is_empty(),
                id == RuntimeId::RemoteDocker,
                "{id}: every local runtime has a socket, a remote one none"
            );
        }
    }

    /// The discovery order, written out: the Docker driver's historical order, except that
    /// rootless Podman now comes before rootful Podman (as in Podman's own order).
    #[test]
    fn well_known_sockets_keep_the_discovery_order() {
        let got: Vec<String> = well_known_sockets()
            .into_iter()
            .map(|(id, s)| format!("{} {id} {} {}", s.rank, s.label, s.path))
            .collect();
        assert_eq!(
            got,
            [
                "100 native-docker Docker Engine /var/run/docker.sock",
                "110 rootless-docker rootless Docker docker.sock",
                "120 docker-desktop Docker Desktop .docker/run/docker.sock",
                "121 docker-desktop Docker Desktop (Linux) .docker/desktop/docker.sock",
                "130 colima Colima .colima/*/docker.sock",
                "131 colima Colima (XDG config) .config/colima/*/docker.sock",
                "140 orbstack OrbStack .orbstack/run/docker.sock",
                "150 rancher-desktop Rancher Desktop .rd/docker.sock",
                "160 lima Lima .lima/*/sock/docker.sock",
                "200 podman-rootless Podman (rootless) podman/podman.sock",
                "210 podman Podman (rootful) /run/podman/podman.sock",
                "220 podman-machine Podman machine .local/share/containers/podman/machine/*/podman.sock",
                "221 podman-machine Podman machine (macOS) podman/*-api.sock",
                "222 podman-machine Podman machine (Windows) //./pipe/podman-machine-default",
                "223 podman-machine Podman machine (Podman 5, Linux) podman/*-api.sock",
            ]
        );
        let colima = RuntimeId::Colima.sockets();
        assert_eq!(colima[0].default_instance, Some("default"));
    }
}
