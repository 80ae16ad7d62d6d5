//! The route: both sides of the callback path in one value, and the extra-hosts entries it
//! renders.
//!
//! A runtime proposes a [`RoutePlan`] from its facts; override resolution (`resolve.rs`) applies
//! the operator's overrides on top of it and checks that the two sides still meet, so that an
//! override can never produce a route that sends sandboxes to an address the gateway does not
//! listen on. This module holds only the data types, so every other module can use them.

use std::fmt;
use std::net::IpAddr;

use serde::{Serialize, Serializer};

use crate::addr::{self, AddressError, AddressRole};
use crate::consts::{
    DOCKER_HOST_ALIAS, HOST_GATEWAY, LOOPBACK_V4, OPENSHELL_HOST, PODMAN_HOST_ALIAS,
};

/// What `host.openshell.internal` maps to inside a sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HostTarget {
    /// The engine's special `host-gateway` value, resolved by the engine at create time.
    HostGateway,
    /// A literal address, written into the sandbox's `/etc/hosts` as is.
    Ip(IpAddr),
    /// The relay container, whose address is known only once it runs: a placeholder that
    /// `openshell_sandbox::Relay::route` replaces with the relay's address. Extra hosts refuse
    /// it until then, so no sandbox is created with it.
    Relay,
}

impl fmt::Display for HostTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostTarget::HostGateway => f.write_str(HOST_GATEWAY),
            HostTarget::Ip(ip) => write!(f, "{ip}"),
            HostTarget::Relay => f.write_str(RELAY_TARGET),
        }
    }
}

impl Serialize for HostTarget {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl HostTarget {
    /// The target in canonical form, refused when its address cannot be the container side.
    pub fn checked(self) -> Result<HostTarget, AddressError> {
        self.checked_as(AddressRole::ContainerTarget)
    }

    /// [`checked`](Self::checked) for `role` ([`AddressRole::HostNetworkTarget`] lets
    /// loopback through).
    pub fn checked_as(self, role: AddressRole) -> Result<HostTarget, AddressError> {
        match self {
            HostTarget::HostGateway | HostTarget::Relay => Ok(self),
            HostTarget::Ip(ip) => addr::check(ip, role).map(HostTarget::Ip),
        }
    }
}

/// Which engine family a runtime runs, which decides the native host alias.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// Docker Engine (moby), whatever VM it runs in.
    Docker,
    /// Podman (rootful, rootless or in a machine).
    Podman,
}

impl EngineKind {
    /// The alias the engine itself uses for the host.
    pub fn native_alias(self) -> &'static str {
        match self {
            EngineKind::Docker => DOCKER_HOST_ALIAS,
            EngineKind::Podman => PODMAN_HOST_ALIAS,
        }
    }
}

/// Where a route's container-side address came from: the engine's evidence or the operator's
/// word. It decides whether anything may be sent there before this host is seen to have the
/// address ([`Route::probe_gate`]): a VM runtime's host address (Docker Desktop's
/// 192.168.65.254, gvproxy's 192.168.127.254, Lima's 192.168.5.2) is not this host's and is
/// still reached, because the runtime forwards it; an operator's address that no evidence
/// vouches for is reached only if this host or an engine bridge has it, else packets leave by
/// the default route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetSource {
    /// The runtime's own plan, or an address the runtime documents for this engine (its
    /// loopback aliases), whichever side set it: the engine's evidence vouches for it.
    Runtime,
    /// The operator's `host_gateway_ip`, which is the sandbox network's gateway as the engine
    /// reported it: an engine bridge's address (netavark brings it up with the network's first
    /// container, so this host may not have it yet).
    EngineBridge,
    /// The operator's `host_gateway_ip`, which nothing the engine reported vouches for.
    Operator,
    /// The relay, whose address the engine gives it when it starts.
    Relay,
}

/// What must hold before anything (a probe) is sent toward a route's container-side address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeGate {
    /// The address comes from the engine's evidence, or is the relay: a probe may go there.
    Open,
    /// The operator's address, which no fact vouches for: a probe may go there only if this
    /// host has the address now, or the engine reports it as the gateway of one of its bridge
    /// networks (the caller looks: that is I/O). Otherwise the probe's packets, with the
    /// callback URL and its token, would leave by the default route toward another machine.
    LocalOrEngineBridge(IpAddr),
}

/// How widely the gateway's bind address exposes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Exposure {
    /// The host's loopback: nothing outside this machine can connect.
    Loopback,
    /// A bridge address that only this host and its containers have.
    Bridge,
    /// The host's primary, LAN-facing address: other machines can connect unless a firewall
    /// stops them.
    Lan,
    /// Every interface (`0.0.0.0` or `::`).
    Wildcard,
    /// An address the operator chose; we cannot say more about it.
    Operator,
    /// The gateway keeps its own bind; the runtime imposes none.
    Unconstrained,
}

/// What a runtime proposes before overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePlan {
    /// What `host.openshell.internal` maps to.
    pub target: HostTarget,
    /// Where the gateway must listen; `None` when the runtime imposes nothing.
    pub bind: Option<IpAddr>,
    /// How widely `bind` exposes the gateway.
    pub exposure: Exposure,
    /// Why this runtime routes this way, in one sentence for people.
    pub why: String,
}

impl RoutePlan {
    /// A plan whose bind is the host loopback: the runtime forwards `target` to it.
    pub fn to_loopback(target: HostTarget, why: impl Into<String>) -> RoutePlan {
        RoutePlan {
            target,
            bind: Some(LOOPBACK_V4),
            exposure: Exposure::Loopback,
            why: why.into(),
        }
    }
}

/// Which network namespace sandboxes (or their supervisors) run in, which decides what an
/// address means to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkMode {
    /// A bridge network of the engine (`--network <bridge>`): the sandbox has its own namespace
    /// and reaches the host through the bridge or the runtime's host address.
    #[default]
    Bridge,
    /// The engine's host network namespace (`--network host`, libpod `netns: host`). Whether
    /// that namespace is the gateway's depends on the runtime: on a VM runtime it is the VM's,
    /// under RootlessKit it is RootlessKit's.
    Host,
}

impl NetworkMode {
    /// Both modes, bridge first.
    pub const ALL: [NetworkMode; 2] = [NetworkMode::Bridge, NetworkMode::Host];

    /// The spelling in flags, configuration and JSON: `bridge` or `host`.
    pub const fn as_str(self) -> &'static str {
        match self {
            NetworkMode::Bridge => "bridge",
            NetworkMode::Host => "host",
        }
    }

    /// The mode with this spelling (`bridge` or `host`, any case).
    pub fn parse(s: &str) -> Option<NetworkMode> {
        NetworkMode::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// The kind of route decided for this mode.
    pub const fn route_kind(self) -> RouteKind {
        match self {
            NetworkMode::Bridge => RouteKind::Bridge,
            NetworkMode::Host => RouteKind::HostNetwork,
        }
    }
}

impl fmt::Display for NetworkMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a relay carries sandbox connections to the gateway (docs/relay.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RelayCarrier {
    /// One yamux session over the engine's attach stream (the relay's stdin and stdout): works
    /// wherever the engine's API reaches, a VM's or a remote machine's included.
    #[default]
    Attach,
    /// A Unix socket of the gateway, bind-mounted into the relay: bytes skip the engine's copy
    /// loop. Only where the engine runs on this host's kernel and filesystem.
    Socket,
}

impl fmt::Display for RelayCarrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RelayCarrier::Attach => "attach",
            RelayCarrier::Socket => "socket",
        })
    }
}

/// What a route was decided for, in its JSON form (`bridge` or `host-network`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RouteKind {
    /// A sandbox on a bridge network: the address is seen from the sandbox's own namespace.
    Bridge,
    /// A sandbox in the engine's host network namespace: the address is seen from that
    /// namespace.
    HostNetwork,
    /// A sandbox calling the relay container, which carries each connection over the engine's
    /// API to the gateway on `127.0.0.1` (docs/relay.md). In bridge mode the relay sits on the
    /// sandbox network; in host mode it sits in the engine's host network namespace, listening
    /// on that namespace's `127.0.0.1`, which the sandbox calls.
    Relay,
}

/// Which kinds of route the operator lets the policy choose (`--route-kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteKindChoice {
    /// The order of preference: a direct route on loopback or a bridge of this host, then the
    /// relay, then a LAN-facing bind only with `allow_lan`.
    #[default]
    Auto,
    /// Direct routes only: refuse where no direct route exists instead of relaying.
    Direct,
    /// Always the relay.
    Relay,
}

impl RouteKindChoice {
    /// All choices, in the order of their spelling in help texts.
    pub const ALL: [RouteKindChoice; 3] = [
        RouteKindChoice::Auto,
        RouteKindChoice::Direct,
        RouteKindChoice::Relay,
    ];

    /// The spelling in flags, configuration and JSON: `auto`, `direct` or `relay`.
    pub const fn as_str(self) -> &'static str {
        match self {
            RouteKindChoice::Auto => "auto",
            RouteKindChoice::Direct => "direct",
            RouteKindChoice::Relay => "relay",
        }
    }

    /// The choice with this spelling (any case).
    pub fn parse(s: &str) -> Option<RouteKindChoice> {
        RouteKindChoice::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

impl fmt::Display for RouteKindChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How [`HostTarget::Relay`] is spelled in JSON and text.
pub const RELAY_TARGET: &str = "relay";

/// How the gateway serves sandboxes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteContext {
    /// The port the gateway listens on, which sandboxes call.
    pub port: u16,
    /// Whether the gateway serves TLS.
    pub tls: bool,
    /// The network namespace sandboxes run in.
    pub network_mode: NetworkMode,
}

impl Default for RouteContext {
    fn default() -> Self {
        RouteContext {
            port: DEFAULT_GATEWAY_PORT,
            tls: false,
            network_mode: NetworkMode::Bridge,
        }
    }
}

/// OpenShell's default gateway port.
pub const DEFAULT_GATEWAY_PORT: u16 = 17670;

/// The decided route: container side, host side, and the URL sandboxes are given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    /// Id of the runtime that produced it (`unknown` for an operator's route to an unrecognised
    /// engine).
    pub runtime: String,
    /// Engine family (decides the native alias).
    pub engine: EngineKind,
    /// What the route was decided for: a bridge sandbox or one in the engine's host network
    /// namespace. The sandbox calls `host.openshell.internal` either way.
    pub route_kind: RouteKind,
    /// What `host.openshell.internal` maps to in the container.
    pub openshell_host: HostTarget,
    /// Where `openshell_host` came from: the engine's evidence or the operator's word.
    pub target_source: TargetSource,
    /// Where the gateway must listen; `None` when the runtime imposes nothing.
    pub bind: Option<IpAddr>,
    /// How widely `bind` exposes the gateway.
    pub exposure: Exposure,
    /// The port the gateway listens on, which sandboxes call.
    pub port: u16,
    /// Whether sandboxes speak TLS to the gateway.
    pub tls: bool,
    /// Why the route is what it is, in one sentence for people.
    pub why: String,
    /// What a person should know: overrides applied, exposure warnings.
    pub notes: Vec<String>,
}

impl Route {
    /// The network mode the route was decided for, which the sandbox must be created in.
    pub fn network_mode(&self) -> NetworkMode {
        match (self.route_kind, self.openshell_host) {
            (RouteKind::Bridge, _) => NetworkMode::Bridge,
            (RouteKind::HostNetwork, _) => NetworkMode::Host,
            // A host-network relay listens on the engine namespace's loopback, which only a
            // sandbox in that namespace reaches; a bridge relay is never on loopback (a bridge
            // sandbox's loopback is its own, so `addr::check` refuses it as a target).
            (RouteKind::Relay, HostTarget::Ip(ip)) if ip.is_loopback() => NetworkMode::Host,
            (RouteKind::Relay, _) => NetworkMode::Bridge,
        }
    }

    /// The relay route for `runtime` in `ctx`'s network mode; the gateway binds `127.0.0.1`
    /// only. On a bridge, sandboxes call the relay's address on the sandbox network
    /// ([`HostTarget::Relay`], replaced by `openshell_sandbox::Relay::route`); with host
    /// networking the relay listens on `127.0.0.1:<port>` inside the engine's host network
    /// namespace, so sandboxes there call `127.0.0.1`.
    pub fn relay(
        runtime: &str,
        engine: EngineKind,
        ctx: &RouteContext,
        why: String,
        notes: Vec<String>,
    ) -> Route {
        let openshell_host = match ctx.network_mode {
            NetworkMode::Bridge => HostTarget::Relay,
            NetworkMode::Host => HostTarget::Ip(LOOPBACK_V4),
        };
        Route {
            runtime: runtime.to_string(),
            engine,
            route_kind: RouteKind::Relay,
            openshell_host,
            target_source: TargetSource::Relay,
            bind: Some(LOOPBACK_V4),
            exposure: Exposure::Loopback,
            port: ctx.port,
            tls: ctx.tls,
            why,
            notes,
        }
    }

    /// What must hold before a probe is sent toward [`openshell_host`](Self::openshell_host):
    /// nothing for an address the engine's evidence vouches for (a runtime's own, the sandbox
    /// network's gateway, the relay); for the operator's address that nothing vouches for,
    /// that this host or one of the engine's bridges has it.
    pub fn probe_gate(&self) -> ProbeGate {
        match (self.target_source, self.openshell_host) {
            (TargetSource::Operator, HostTarget::Ip(ip)) => ProbeGate::LocalOrEngineBridge(ip),
            _ => ProbeGate::Open,
        }
    }

    /// The URL handed to the sandbox supervisor.
    pub fn sandbox_endpoint(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{OPENSHELL_HOST}:{}", self.port)
    }

    /// Extra-hosts entries: `host.openshell.internal` and the engine's native alias, both
    /// mapped to the route's target. Both engines write the entries into the container's
    /// `/etc/hosts` with host networking too (checked live on Docker 20.10 and Podman 4.3
    /// through both APIs; dockerd resolves `host-gateway` to its `host-gateway-ip` whatever the
    /// network mode), and the native alias replaces the one Podman would otherwise add.
    pub fn extra_hosts(&self) -> Vec<ExtraHost> {
        [OPENSHELL_HOST, self.engine.native_alias()]
            .into_iter()
            .map(|name| ExtraHost {
                name: name.to_string(),
                value: self.openshell_host,
            })
            .collect()
    }
}

/// One `--add-host` entry, validated: a hostname and an address or `host-gateway`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExtraHost {
    name: String,
    value: HostTarget,
}

impl ExtraHost {
    /// An entry, after checking that `name` is a hostname (RFC 1123 labels).
    pub fn new(name: &str, value: HostTarget) -> Result<ExtraHost, ExtraHostError> {
        validate_hostname(name)?;
        if value == HostTarget::Relay {
            return Err(ExtraHostError::RelayNotStarted {
                name: name.to_ascii_lowercase(),
            });
        }
        Ok(ExtraHost {
            name: name.to_ascii_lowercase(),
            value,
        })
    }

    /// Parses Docker's `name:value` form (the value may be an IPv6 address).
    pub fn parse(entry: &str) -> Result<ExtraHost, ExtraHostError> {
        let (name, value) = entry
            .split_once(':')
            .ok_or_else(|| ExtraHostError::Malformed {
                entry: crate::evidence::display_value(entry),
            })?;
        let value = if value == HOST_GATEWAY {
            HostTarget::HostGateway
        } else if value == RELAY_TARGET {
            HostTarget::Relay
        } else {
            let ip = value
                .parse::<IpAddr>()
                .map_err(|_| ExtraHostError::BadValue {
                    value: crate::evidence::display_value(value),
                })?;
            HostTarget::Ip(ip)
        };
        ExtraHost::new(name, value)
    }

    /// The hostname, lowercased.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address or `host-gateway`.
    pub fn value(&self) -> HostTarget {
        self.value
    }
}

impl fmt::Display for ExtraHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.value)
    }
}

impl Serialize for ExtraHost {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

fn validate_hostname(name: &str) -> Result<(), ExtraHostError> {
    let bad = || ExtraHostError::BadName {
        name: crate::evidence::display_value(name),
    };
    if name.is_empty() || name.len() > 253 {
        return Err(bad());
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !ok {
            return Err(bad());
        }
    }
    Ok(())
}

/// Why an extra-hosts entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExtraHostError {
    /// Not `name:value`.
    #[error("extra host {entry:?} is not of the form name:value")]
    Malformed {
        /// The entry (sanitised).
        entry: String,
    },
    /// The name is not a hostname.
    #[error(
        "extra host name {name:?} is not a valid hostname (letters, digits, '-' and '.' only)"
    )]
    BadName {
        /// The name (sanitised).
        name: String,
    },
    /// The value is neither an address nor `host-gateway`.
    #[error("extra host value {value:?} is neither an IP address nor host-gateway")]
    BadValue {
        /// The value (sanitised).
        value: String,
    },
    /// The route is a relay route whose relay was not started: its address is unknown.
    #[error(
        "extra host {name:?} maps to the relay, which is not running: start the relay (openshell_sandbox::Relay::start) and create sandboxes with Relay::route(&route), which puts the relay's address in its place"
    )]
    RelayNotStarted {
        /// The hostname.
        name: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_host_validation_rejects_hostile_entries() {
        for bad in [
            "host.openshell.internal 10.0.0.1:1.2.3.4",
            "a#b:1.2.3.4",
            "evil\nname:1.2.3.4",
            "name:1.2.3.4\n5.6.7.8 other",
            "name:not-an-ip",
            "-lead:1.2.3.4",
            ":1.2.3.4",
            "name",
            "name:host-gateway ",
            "host.openshell.internal:relay",
        ] {
            assert!(ExtraHost::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        for good in [
            "host.openshell.internal:host-gateway",
            "host.docker.internal:192.168.65.254",
            "host.openshell.internal:fd00::1",
        ] {
            let e = ExtraHost::parse(good).unwrap_or_else(|e| panic!("{good}: {e}"));
            assert_eq!(e.to_string(), good);
        }
    }
}
