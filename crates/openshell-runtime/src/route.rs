//! The route: both sides of the callback path in one value, and the extra-hosts entries it
//! renders.
//!
//! A runtime proposes a [`RoutePlan`] from its facts; [`resolve`] applies the operator's
//! overrides on top of it and checks that the two sides still meet, so that an override can
//! never produce a route that sends sandboxes to an address the gateway does not listen on.

use std::fmt;
use std::net::IpAddr;

use serde::{Serialize, Serializer};

use crate::addr::{self, AddressError, AddressRole};
use crate::consts::{
    DOCKER_HOST_ALIAS, HOST_GATEWAY, LOOPBACK_V4, OPENSHELL_HOST, PODMAN_HOST_ALIAS,
};
use crate::error::{ExtraHostError, RouteError};
use crate::facts::Overrides;

/// What `host.openshell.internal` maps to inside a sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HostTarget {
    /// The engine's special `host-gateway` value, resolved by the engine at create time.
    HostGateway,
    /// A literal address.
    Ip(IpAddr),
}

impl fmt::Display for HostTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostTarget::HostGateway => f.write_str(HOST_GATEWAY),
            HostTarget::Ip(ip) => write!(f, "{ip}"),
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
        match self {
            HostTarget::HostGateway => Ok(self),
            HostTarget::Ip(ip) => addr::check(ip, AddressRole::ContainerTarget).map(HostTarget::Ip),
        }
    }
}

/// Which engine family a runtime runs, which decides the native host alias.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// Docker Engine (moby), whatever VM it runs in.
    Docker,
    /// Podman.
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

/// How the gateway serves sandboxes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteContext {
    /// The gateway's port.
    pub port: u16,
    /// Whether the gateway serves TLS.
    pub tls: bool,
}

impl Default for RouteContext {
    fn default() -> Self {
        RouteContext {
            port: DEFAULT_GATEWAY_PORT,
            tls: false,
        }
    }
}

/// OpenShell's default gateway port.
pub const DEFAULT_GATEWAY_PORT: u16 = 17670;

/// The decided route: container side, host side, and the URL sandboxes are given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    /// Id of the runtime that produced it.
    pub runtime: String,
    /// Engine family (decides the native alias).
    pub engine: EngineKind,
    /// What `host.openshell.internal` maps to in the container.
    pub openshell_host: HostTarget,
    /// Where the gateway must listen; `None` when the runtime imposes nothing.
    pub bind: Option<IpAddr>,
    /// How widely `bind` exposes the gateway.
    pub exposure: Exposure,
    /// Gateway port.
    pub port: u16,
    /// Whether sandboxes speak TLS to the gateway.
    pub tls: bool,
    /// Why, for people.
    pub why: String,
    /// What a person should know: overrides applied, exposure warnings.
    pub notes: Vec<String>,
}

impl Route {
    /// The URL handed to the sandbox supervisor.
    pub fn sandbox_endpoint(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{OPENSHELL_HOST}:{}", self.port)
    }

    /// Extra-hosts entries: `host.openshell.internal` and the engine's native alias, both
    /// mapped to the route's target.
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

    /// The hostname.
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

/// What a runtime contributes to [`resolve`].
#[derive(Debug)]
pub struct RuntimeRouting<'a> {
    /// Runtime id.
    pub runtime: &'a str,
    /// Engine family.
    pub engine: EngineKind,
    /// The runtime's own plan, or why it has none.
    pub plan: Result<RoutePlan, RouteError>,
    /// Container-side addresses that land on the host's loopback in this runtime.
    pub loopback_aliases: &'a [IpAddr],
}

/// Applies overrides to a runtime's plan and checks that the two sides of the route meet.
///
/// - No overrides: the plan, or its error (fail closed).
/// - `host_gateway_ip` alone: sandboxes go there; the bind is derived as narrowly as the runtime
///   allows (loopback when the runtime forwards that address to loopback, the plan's bind when
///   it is the plan's own target, else the address itself, never a wildcard).
/// - `bind` alone: accepted only where it receives what the plan sends (the plan's bind, or a
///   wildcard); anything else is a conflict, reported with the address that would work.
/// - both: the operator's word on both sides.
///
/// Every address is checked for its role in canonical form ([`addr`]): whatever the source,
/// the route never sends sandboxes to a wildcard, loopback or multicast address, and never
/// binds a wildcard unless the operator's own `bind` is one.
pub fn resolve(
    rt: RuntimeRouting<'_>,
    ctx: &RouteContext,
    overrides: &Overrides,
) -> Result<Route, RouteError> {
    let bad_address = |source| RouteError::Address {
        runtime: rt.runtime.to_string(),
        source,
    };
    let overrides = &overrides.checked().map_err(bad_address)?;
    let mut notes = Vec::new();
    let (target, bind, exposure, why) = match (overrides.host_gateway_ip, overrides.bind) {
        (None, None) => {
            let plan = rt.plan?;
            (plan.target, plan.bind, plan.exposure, plan.why)
        }
        (Some(ip), bind_override) => {
            notes.push(format!(
                "host_gateway_ip override: {OPENSHELL_HOST} maps to {ip}"
            ));
            let plan = rt.plan.ok();
            let (bind, exposure) = match bind_override {
                Some(b) => (b, exposure_of_override(b)),
                None if rt.loopback_aliases.contains(&ip) => {
                    notes.push(format!(
                        "{} forwards {ip} to the host's loopback, so the gateway binds {LOOPBACK_V4} only",
                        rt.runtime
                    ));
                    (LOOPBACK_V4, Exposure::Loopback)
                }
                None => match &plan {
                    Some(p) if p.target == HostTarget::Ip(ip) && p.bind.is_some() => {
                        (p.bind.unwrap_or(ip), p.exposure)
                    }
                    _ => {
                        notes.push(format!(
                            "{ip} must be an address of this host: the gateway binds it and nothing wider"
                        ));
                        (ip, Exposure::Operator)
                    }
                },
            };
            let why = plan.map_or_else(
                || "the operator set the container-side address".to_string(),
                |p| {
                    format!(
                        "operator override (the runtime alone would route: {})",
                        p.why
                    )
                },
            );
            (HostTarget::Ip(ip), Some(bind), exposure, why)
        }
        (None, Some(b)) => {
            let plan = rt.plan?;
            let receives = b.is_unspecified() || plan.bind.is_none() || plan.bind == Some(b);
            if !receives {
                return Err(RouteError::BindConflict {
                    runtime: rt.runtime.to_string(),
                    bind: b,
                    target: plan.target,
                    needed: plan.bind,
                });
            }
            notes.push(format!("bind override: the gateway binds {b}"));
            (plan.target, Some(b), exposure_of_override(b), plan.why)
        }
    };
    // Whichever source put them there, both sides must serve their roles, in canonical form;
    // a wildcard bind only as the operator's own.
    let target = target.checked().map_err(bad_address)?;
    let bind = bind
        .map(|b| addr::check_bind(b, overrides.bind))
        .transpose()
        .map_err(bad_address)?;
    if exposure == Exposure::Wildcard {
        notes.push(
            "the gateway listens on every interface: any machine that can reach this host can connect"
                .into(),
        );
    }
    if exposure == Exposure::Lan {
        notes.push(
            "the only route binds the host's LAN-facing address: other machines on the network can reach the gateway unless a firewall stops them"
                .into(),
        );
    }
    Ok(Route {
        runtime: rt.runtime.to_string(),
        engine: rt.engine,
        openshell_host: target,
        bind,
        exposure,
        port: ctx.port,
        tls: ctx.tls,
        why,
        notes,
    })
}

fn exposure_of_override(bind: IpAddr) -> Exposure {
    if bind.is_loopback() {
        Exposure::Loopback
    } else if bind.is_unspecified() {
        Exposure::Wildcard
    } else {
        Exposure::Operator
    }
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
