//! Override resolution: the operator's overrides applied to a runtime's plan, checked so that
//! the two sides of the route still meet.
//!
//! This is the one place a [`Route`] is built from a [`RoutePlan`]; every runtime's
//! `gateway_route()` and every fallback of a decision go through [`resolve`].

use std::net::IpAddr;

use crate::addr::{self, AddressRole};
use crate::consts::{LOOPBACK_V4, OPENSHELL_HOST};
use crate::error::RouteError;
use crate::facts::Overrides;
use crate::route::{
    EngineKind, Exposure, HostTarget, Route, RouteContext, RoutePlan, TargetSource,
};

/// What a runtime contributes to [`resolve`].
#[derive(Debug)]
pub(crate) struct RuntimeRouting<'a> {
    /// The runtime's id, named in the route and its errors.
    pub(crate) runtime: &'a str,
    /// The engine family, which decides the route's native alias.
    pub(crate) engine: EngineKind,
    /// The runtime's own plan, or why it has none.
    pub(crate) plan: Result<RoutePlan, RouteError>,
    /// Container-side addresses that land on the host's loopback in this runtime.
    pub(crate) loopback_aliases: &'a [IpAddr],
    /// Other container-side addresses the runtime's evidence vouches for (its alternatives'
    /// literal targets, addresses its network helper maps to the host): an override to one is
    /// not the operator's word alone ([`TargetSource`]).
    pub(crate) vouched: &'a [IpAddr],
    /// For a host-network route, whose namespace the sandbox joins and whether its loopback is
    /// the gateway host's (`None` for a bridge route): otherwise a loopback override that is not
    /// one of `loopback_aliases` stays in that namespace.
    pub(crate) host_namespace: Option<(&'a str, bool)>,
    /// Whether a `host-gateway` target reaches the gateway: always on a bridge (the runtime
    /// planned it for its bridge); with host networking only where the runtime says the engine
    /// resolves it to an address that reaches the gateway host from that namespace.
    pub(crate) host_gateway_resolves: bool,
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
/// Every address is checked for its role in canonical form ([`addr`](crate::addr)): whatever
/// the source, the route never sends sandboxes to a wildcard or multicast address, nor a bridge
/// sandbox to loopback (a host-network one only where the runtime says loopback is the host's),
/// and never binds a wildcard unless the operator's own `bind` is one.
pub(crate) fn resolve(
    rt: RuntimeRouting<'_>,
    ctx: &RouteContext,
    overrides: &Overrides,
) -> Result<Route, RouteError> {
    let bad_address = |source| RouteError::Address {
        runtime: rt.runtime.to_string(),
        source,
    };
    // A host-network sandbox may call loopback (its namespace may be the gateway host's); a
    // bridge sandbox's loopback is its own.
    let target_role = match rt.host_namespace {
        Some(_) => AddressRole::HostNetworkTarget,
        None => AddressRole::ContainerTarget,
    };
    let overrides = &overrides.checked_as(target_role).map_err(bad_address)?;
    let mut notes = Vec::new();
    if let (Some((namespace, false)), Some(ip)) = (rt.host_namespace, overrides.host_gateway_ip) {
        if ip.is_loopback() && !rt.loopback_aliases.contains(&ip) {
            let fix = match &rt.plan {
                Ok(p) => format!(
                    "set host_gateway_ip to {} (or leave it unset), which {namespace} forwards to the gateway host, or run sandboxes on a bridge network",
                    p.target
                ),
                Err(e) => fix_of(e),
            };
            return Err(RouteError::LoopbackElsewhere {
                runtime: rt.runtime.to_string(),
                target: HostTarget::Ip(ip),
                namespace: namespace.to_string(),
                fix,
            });
        }
    }
    // The operator's address is vouched for by the engine's evidence when the runtime plans
    // it or documents it as one it forwards (a VM runtime's host address, pasta's mapped one).
    let source = match overrides.host_gateway_ip {
        Some(ip)
            if !rt.loopback_aliases.contains(&ip)
                && !rt.vouched.contains(&ip)
                && rt
                    .plan
                    .as_ref()
                    .map_or(true, |p| p.target != HostTarget::Ip(ip)) =>
        {
            TargetSource::Operator
        }
        _ => TargetSource::Runtime,
    };
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
    let target = target.checked_as(target_role).map_err(bad_address)?;
    let bind = bind
        .map(|b| addr::check_bind(b, overrides.bind))
        .transpose()
        .map_err(bad_address)?;
    if rt.host_namespace.is_some() && target == HostTarget::HostGateway && !rt.host_gateway_resolves
    {
        // By default host-gateway names the gateway of a bridge, which a host-network container
        // is not on; only a runtime whose engine points it elsewhere (Docker Desktop's
        // host-gateway-ip) plans it for host networking.
        return Err(RouteError::NoSafeRoute {
            runtime: rt.runtime.to_string(),
            reason: "host-gateway names a bridge's gateway, and a host-network sandbox sits on no bridge".into(),
            fix: "plan a literal address for host networking, or set host_gateway_ip".into(),
        });
    }
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
        route_kind: ctx.network_mode.route_kind(),
        openshell_host: target,
        target_source: source,
        bind,
        exposure,
        port: ctx.port,
        tls: ctx.tls,
        why,
        notes,
    })
}

/// The fix an error names, for quoting in another error.
fn fix_of(e: &RouteError) -> String {
    match e {
        RouteError::NoSafeRoute { fix, .. }
        | RouteError::MissingFact { fix, .. }
        | RouteError::Undetected { fix, .. }
        | RouteError::LoopbackElsewhere { fix, .. } => fix.clone(),
        other => other.to_string(),
    }
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
