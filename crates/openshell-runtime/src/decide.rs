//! Facts in, decision out: detection followed by routing, with everything needed to explain it.

use crate::error::RouteError;
use crate::facts::{Facts, Overrides};
use crate::registry::{DetectionReport, Registry};
use crate::report::Outcome;
use crate::resolve::{resolve, RuntimeRouting};
use crate::route::{NetworkMode, Route, RouteContext};
use crate::runtime::{ContainerRuntime, GatewayRoute, Runtime};
use crate::signals::engine_kind;

/// The whole answer for one engine.
#[derive(Debug, Clone)]
pub struct Decision {
    /// Which runtime, with evidence and every detector consulted.
    pub detection: DetectionReport,
    /// The route, or why there is none (fail closed).
    pub route: Result<Route, RouteError>,
    /// Routes to try, in order, when `route` fails a reachability probe: the runtime's own
    /// route when overrides changed it, then the runtime's alternatives. Never tried by the
    /// policy itself; a driver's probe decides.
    pub fallbacks: Vec<Route>,
}

impl Decision {
    /// Id of the recognised runtime, if any.
    pub fn runtime_id(&self) -> Option<&str> {
        self.detection.winner.as_ref().map(|w| w.runtime.id())
    }
}

/// Detects the runtime behind `facts` and decides its route, with `facts.overrides` applied.
pub fn decide(registry: &Registry, facts: &Facts, ctx: &RouteContext) -> Decision {
    let detection = registry.detect(facts);
    let route = match &detection.winner {
        Some(w) => w.runtime.gateway_route(ctx, &facts.overrides),
        None => undetected(&detection, facts, ctx),
    };
    let fallbacks = match &detection.winner {
        Some(w) => fallbacks(&w.runtime, facts, ctx, route.as_ref().ok()),
        None => Vec::new(),
    };
    Decision {
        detection,
        route,
        fallbacks,
    }
}

/// The documented fallback order: the runtime's own route (when the operator's overrides
/// replaced it), then the runtime's alternatives, each without overrides; duplicates dropped.
fn fallbacks(
    runtime: &Runtime,
    facts: &Facts,
    ctx: &RouteContext,
    primary: Option<&Route>,
) -> Vec<Route> {
    let none = Overrides::default();
    let mut candidates: Vec<Route> = Vec::new();
    if facts.overrides.host_gateway_ip.is_some() || facts.overrides.bind.is_some() {
        candidates.extend(runtime.gateway_route(ctx, &none).ok());
    }
    let host = match ctx.network_mode {
        NetworkMode::Bridge => None,
        NetworkMode::Host => Some(runtime.host_network()),
    };
    let (alternatives, aliases, namespace) = match &host {
        None => (runtime.alternatives(), runtime.loopback_aliases(), None),
        Some(h) => (
            h.alternatives.clone(),
            h.loopback_aliases.as_slice(),
            Some((h.namespace.as_str(), h.shares_loopback)),
        ),
    };
    for plan in alternatives {
        let routing = RuntimeRouting {
            runtime: runtime.id(),
            engine: runtime.engine(),
            plan: Ok(plan),
            loopback_aliases: aliases,
            host_namespace: namespace,
        };
        candidates.extend(resolve(routing, ctx, &none).ok());
    }
    let same = |a: &Route, b: &Route| a.openshell_host == b.openshell_host && a.bind == b.bind;
    let mut unique: Vec<Route> = Vec::new();
    for r in candidates {
        if primary.is_none_or(|p| !same(p, &r)) && !unique.iter().any(|u| same(u, &r)) {
            unique.push(r);
        }
    }
    unique
}

/// An engine nobody recognised gets no route, unless the operator named the container-side
/// address: then the operator's word is the route, and nothing is guessed.
fn undetected(
    detection: &DetectionReport,
    facts: &Facts,
    ctx: &RouteContext,
) -> Result<Route, RouteError> {
    let failed = detection
        .consulted
        .iter()
        .any(|c| matches!(c.outcome, Outcome::Failed(_)));
    let fix = if failed {
        "supply the fact the failed detector names, or set host_gateway_ip"
    } else if facts.host_os.is_none() {
        "give host_os (linux, macos or windows), or set host_gateway_ip"
    } else {
        "set host_gateway_ip (and bind) for this engine, or register a detector for it; please report its facts (`openshell-runtime detect --dump-facts FILE`)"
    };
    let err = RouteError::Undetected {
        consulted: detection.consulted.clone(),
        fix: fix.into(),
    };
    if facts.overrides.host_gateway_ip.is_none() {
        return Err(err);
    }
    resolve(
        RuntimeRouting {
            runtime: "unknown",
            engine: engine_kind(facts).0,
            plan: Err(err),
            loopback_aliases: &[],
            // An unrecognised engine's host namespace is unknown: the operator's address is
            // checked as for a bridge, so a loopback that may not be this host's is refused.
            host_namespace: None,
        },
        ctx,
        &facts.overrides,
    )
}
