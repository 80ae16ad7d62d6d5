//! Facts in, decision out: detection followed by routing, with everything needed to explain it.
//!
//! One order of preference holds for every runtime, applied here rather than in each runtime:
//! a direct route that keeps the gateway on loopback or on a bridge of this host, then the
//! relay, then a LAN-facing bind only when the operator allows LAN exposure (`allow_lan`).
//! The operator can narrow the choice with `route_kind` (`direct` or `relay`).
//!
//! The same order holds with host networking: the relay then sits in the engine's host network
//! namespace and listens on its `127.0.0.1`, so it serves wherever that namespace is not the
//! gateway's own (a VM's, RootlessKit's, a remote machine's, an unrecognised engine's). Where
//! it is the gateway's own, 127.0.0.1 is the direct route, and a relay there would try to
//! listen on the gateway's own port: refused.

use crate::error::RouteError;
use crate::facts::{Facts, Overrides};
use crate::registry::{DetectionReport, Registry};
use crate::report::Outcome;
use crate::resolve::{resolve, RuntimeRouting};
use crate::route::{
    EngineKind, Exposure, HostTarget, NetworkMode, Route, RouteContext, RouteKind, RouteKindChoice,
    TargetSource,
};
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
    /// route when overrides changed it, then the runtime's alternatives (LAN-facing ones only
    /// with `allow_lan`), then the relay where it may serve. Never tried by the policy itself;
    /// a driver's probe decides.
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
    let direct = match &detection.winner {
        Some(w) => w.runtime.gateway_route(ctx, &facts.overrides),
        None => undetected(&detection, facts, ctx),
    };
    let (runtime, engine) = match &detection.winner {
        Some(w) => (w.runtime.id(), w.runtime.engine()),
        None => ("unknown", engine_kind(facts).0),
    };
    // Whether 127.0.0.1 in the engine's host network namespace already reaches the gateway (the
    // namespace is the gateway's own, or, like OrbStack's, bridged to the gateway host's
    // loopback): a relay there would listen on the gateway's own port. Unknown (an unrecognised
    // engine) counts as not; the relay's listen then fails rather than takes the port.
    let shared_host = ctx.network_mode == NetworkMode::Host
        && detection.winner.as_ref().is_some_and(|w| {
            let h = w.runtime.host_network();
            h.shares_loopback
                || h.plan
                    .is_ok_and(|p| matches!(p.target, HostTarget::Ip(ip) if ip.is_loopback()))
        });
    let route = prefer(direct, runtime, engine, facts, ctx, shared_host).map(|r| vouch(r, facts));
    let mut fallbacks = match &detection.winner {
        Some(w) => fallbacks(&w.runtime, facts, ctx, route.as_ref().ok()),
        None => Vec::new(),
    };
    let relay_primary = route
        .as_ref()
        .is_ok_and(|r| r.route_kind == RouteKind::Relay);
    // The relay is the last fallback a probe tries, after every direct route failed.
    if !relay_primary
        && relay_blocker(facts, shared_host).is_none()
        && facts.overrides.route_kind == RouteKindChoice::Auto
    {
        fallbacks.push(Route::relay(
            runtime,
            engine,
            ctx,
            "the last fallback: the relay carries callbacks over the engine's API to the gateway on loopback".into(),
            Vec::new(),
        ));
    }
    Decision {
        detection,
        route,
        fallbacks,
    }
}

/// The operator's address on a bridge route, when it is the sandbox network's gateway as the
/// engine reported it, is an engine bridge's address ([`TargetSource::EngineBridge`]), which
/// sandboxes on that network reach even before this host has it (netavark brings the bridge's
/// address up with the network's first container).
fn vouch(mut route: Route, facts: &Facts) -> Route {
    let gateways = facts.network.as_ref().map(|n| {
        [
            n.ipv4_gateway.map(std::net::IpAddr::V4),
            n.ipv6_gateway.map(std::net::IpAddr::V6),
        ]
    });
    if let (TargetSource::Operator, RouteKind::Bridge, HostTarget::Ip(ip), Some(gateways)) = (
        route.target_source,
        route.route_kind,
        route.openshell_host,
        gateways,
    ) {
        if gateways.contains(&Some(ip)) {
            route.target_source = TargetSource::EngineBridge;
        }
    }
    route
}

/// Why the relay cannot serve these facts, with the fix; `None` when it can. `shared_host`:
/// sandboxes run with host networking in a namespace that is the gateway's own.
fn relay_blocker(facts: &Facts, shared_host: bool) -> Option<(&'static str, &'static str)> {
    if shared_host {
        // A relay there would listen on the gateway's own port on the gateway's own loopback.
        return Some((
            "127.0.0.1 in the engine's host network namespace already reaches the gateway (the namespace is the gateway's own, or bridged to its loopback), so a relay there would listen on the gateway's own port",
            "use route_kind auto or direct (127.0.0.1 is the direct route), or run sandboxes on a bridge network",
        ));
    }
    let o = &facts.overrides;
    if o.host_gateway_ip.is_some() || o.bind.is_some() {
        // The operator's addresses are their word on the direct route; the relay has its own.
        return Some((
            "host_gateway_ip and bind set a direct route, and the relay sets both sides itself",
            "unset host_gateway_ip and bind, or use route_kind direct",
        ));
    }
    None
}

/// The order of preference applied to the direct route (the runtime's, with overrides):
/// kept when it stays on loopback, a bridge or the operator's addresses; a LAN-facing bind only
/// with `allow_lan`; the relay where there is no direct route (or the operator forces it). An
/// override that conflicts stays an error: the relay cannot make the operator's word true.
fn prefer(
    direct: Result<Route, RouteError>,
    runtime: &str,
    engine: EngineKind,
    facts: &Facts,
    ctx: &RouteContext,
    shared_host: bool,
) -> Result<Route, RouteError> {
    let o = &facts.overrides;
    let blocker = relay_blocker(facts, shared_host);
    let lan_fix = |bind| {
        let relay = if blocker.is_none() && o.route_kind != RouteKindChoice::Direct {
            ", or leave route_kind at auto so the relay keeps the gateway on loopback"
        } else {
            ""
        };
        format!("set allow_lan (--allow-lan, OPENSHELL_ALLOW_LAN=1) to let the gateway bind {bind}{relay}")
    };
    match o.route_kind {
        RouteKindChoice::Relay => {
            if let Some((reason, fix)) = blocker {
                return Err(RouteError::RelayUnavailable {
                    runtime: runtime.to_string(),
                    reason: reason.into(),
                    fix: fix.into(),
                });
            }
            let note = match &direct {
                Ok(r) => format!("the direct route would be: {} (bind {})", r.openshell_host, r.bind.map_or_else(|| "unconstrained".to_string(), |b| b.to_string())),
                Err(e) => format!("the direct route was refused: {e}"),
            };
            Ok(Route::relay(
                runtime,
                engine,
                ctx,
                "the operator chose route_kind relay".into(),
                vec![note],
            ))
        }
        RouteKindChoice::Direct => match direct {
            Ok(r) if r.exposure == Exposure::Lan && !o.allow_lan => {
                let bind = r.bind.unwrap_or(crate::consts::LOOPBACK_V4);
                Err(RouteError::LanNotAllowed {
                    runtime: runtime.to_string(),
                    bind,
                    fix: lan_fix(bind),
                })
            }
            other => other,
        },
        RouteKindChoice::Auto => match direct {
            Ok(r) if r.exposure == Exposure::Lan && !o.allow_lan => {
                let bind = r.bind.unwrap_or(crate::consts::LOOPBACK_V4);
                if blocker.is_some() {
                    return Err(RouteError::LanNotAllowed {
                        runtime: runtime.to_string(),
                        bind,
                        fix: lan_fix(bind),
                    });
                }
                Ok(Route::relay(
                    runtime,
                    engine,
                    ctx,
                    format!("the only direct route binds {bind}, the host's LAN-facing address, which needs allow_lan; the relay keeps the gateway on loopback"),
                    vec![
                        format!("direct route not taken: {}", r.why),
                        format!("set allow_lan (--allow-lan, OPENSHELL_ALLOW_LAN=1) to bind {bind} and route to {} instead", r.openshell_host),
                    ],
                ))
            }
            Err(
                e @ (RouteError::NoSafeRoute { .. }
                | RouteError::MissingFact { .. }
                | RouteError::Undetected { .. }),
            ) if blocker.is_none() => Ok(Route::relay(
                runtime,
                engine,
                ctx,
                match ctx.network_mode {
                    NetworkMode::Bridge => "no direct route keeps the gateway on loopback or a bridge of this host; the relay needs only the engine's API".into(),
                    NetworkMode::Host => "no direct route reaches the gateway from the engine's host network namespace; the relay listens on that namespace's 127.0.0.1 and needs only the engine's API".into(),
                },
                vec![format!("direct route refused: {e}")],
            )),
            other => other,
        },
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
            vouched: &[],
            host_namespace: namespace,
            host_gateway_resolves: host.as_ref().is_none_or(|h| h.resolves_host_gateway),
        };
        candidates.extend(resolve(routing, ctx, &none).ok());
    }
    let same = |a: &Route, b: &Route| a.openshell_host == b.openshell_host && a.bind == b.bind;
    let mut unique: Vec<Route> = Vec::new();
    let allowed = |r: &Route| {
        facts.overrides.route_kind != RouteKindChoice::Relay
            && (r.exposure != Exposure::Lan || facts.overrides.allow_lan)
    };
    for r in candidates.into_iter().filter(allowed) {
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
            vouched: &[],
            // An unrecognised engine's host namespace is unknown: the operator's address is
            // checked as for a bridge, so a loopback that may not be this host's is refused.
            host_namespace: None,
            host_gateway_resolves: false,
        },
        ctx,
        &facts.overrides,
    )
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use serde_json::{json, Value};

    use super::*;
    use crate::route::ProbeGate;

    const NATIVE: &str = include_str!(
        "../../../tests/fixtures/native-docker/debian12-docker.io-20.10.24-this-machine.json"
    );
    const ROOTLESS_PODMAN: &str = include_str!(
        "../../../tests/fixtures/podman-rootless/podman-rootless-5.6.2-ubuntu24.04-pasta-full-info-malcolm-docs.json"
    );
    const DOCKER_DESKTOP: &str = include_str!(
        "../../../tests/fixtures/docker-desktop/dd-4.24.0-24.0.6-macos-arm64-testcontainers-java-7621.json"
    );
    const PODMAN_MACHINE: &str = include_str!(
        "../../../tests/fixtures/podman-machine/podman-machine-5.4.0-macos-arm64-rootful-podman-26020.json"
    );
    const COLIMA: &str = include_str!(
        "../../../tests/fixtures/colima/colima-0.10.3-29.5.2-ubuntu24.04-macos-arm64-profile-avatar0327-yunxuetang.json"
    );

    /// The sandbox network every case reports, whose gateway is an engine bridge's address.
    fn network() -> Value {
        json!({"Name": "openshell", "Driver": "bridge", "IPAM": {"Config": [
            {"Subnet": "10.89.0.0/24", "Gateway": "10.89.0.1"},
            {"Subnet": "fd00:89::/64", "Gateway": "fd00:89::1"}
        ]}})
    }

    /// Decides `capture` (or an engine nobody recognises) in `mode` with `overrides`, and
    /// returns `target source gate`, or `refused: <error>`.
    fn check(capture: Option<&str>, mode: NetworkMode, overrides: Value, expect: &str) {
        let mut doc: Value = match capture {
            Some(c) => serde_json::from_str(c).unwrap_or_else(|e| panic!("{e}")),
            None => {
                json!({"host_os": "linux", "info": {"Name": "mystery", "OperatingSystem": "Mystery OS"}})
            }
        };
        doc["network"] = network();
        // `route_kind` is no facts-file setting: it is laid over the parsed facts.
        let mut overrides = overrides;
        let kind = overrides
            .as_object_mut()
            .and_then(|o| o.remove("route_kind"))
            .and_then(|k| RouteKindChoice::parse(k.as_str()?));
        doc["overrides"] = overrides;
        let mut facts = Facts::from_value(&doc).unwrap_or_else(|e| panic!("{e}"));
        facts.overrides.route_kind = kind.unwrap_or_default();
        let ctx = RouteContext {
            network_mode: mode,
            ..RouteContext::default()
        };
        let d = decide(&Registry::builtin(), &facts, &ctx);
        let got = match &d.route {
            Ok(r) => {
                let gate = match r.probe_gate() {
                    ProbeGate::Open => "open".to_string(),
                    ProbeGate::LocalOrEngineBridge(ip) => format!("local-or-engine-bridge {ip}"),
                };
                let source = serde_json::to_value(r.target_source).unwrap_or_default();
                format!(
                    "{} {} {gate}",
                    r.openshell_host,
                    source.as_str().unwrap_or_default()
                )
            }
            Err(e) => format!("refused: {e}"),
        };
        assert_eq!(
            got,
            expect,
            "{capture:?} {mode} {doc}",
            doc = doc["overrides"]
        );
        // Every fallback is the runtime's own or the relay: none is the operator's word.
        for f in &d.fallbacks {
            assert_eq!(f.probe_gate(), ProbeGate::Open, "{f:?}");
        }
    }

    /// The operator's address that nothing the engine reported vouches for is gated on this
    /// host having it, in both network modes, IPv4 and IPv6, with a loopback bind too (issue 22
    /// item 8: doctor probed such addresses, and the probe's packets left by the default route).
    #[test]
    fn an_operators_address_without_evidence_is_probed_only_if_this_host_has_it() {
        use NetworkMode::{Bridge, Host};
        for mode in [Bridge, Host] {
            check(
                Some(NATIVE),
                mode,
                json!({"host_gateway_ip": "192.0.2.10"}),
                "192.0.2.10 operator local-or-engine-bridge 192.0.2.10",
            );
            check(
                Some(NATIVE),
                mode,
                json!({"host_gateway_ip": "2001:db8::10"}),
                "2001:db8::10 operator local-or-engine-bridge 2001:db8::10",
            );
            check(
                Some(NATIVE),
                mode,
                json!({"host_gateway_ip": "192.0.2.10", "bind": "127.0.0.1"}),
                "192.0.2.10 operator local-or-engine-bridge 192.0.2.10",
            );
            // An engine nobody recognised: the operator's word is the whole route.
            check(
                None,
                mode,
                json!({"host_gateway_ip": "192.0.2.10"}),
                "192.0.2.10 operator local-or-engine-bridge 192.0.2.10",
            );
        }
    }

    /// What the engine's evidence vouches for is probed wherever it is: the runtime's own plan,
    /// a VM runtime's documented host address even when the operator names it (Docker
    /// Desktop, Podman machine, Colima: not this host's, and reached), the sandbox network's
    /// gateway on a bridge, and the relay.
    #[test]
    fn what_the_engines_evidence_vouches_for_is_probed() {
        use NetworkMode::{Bridge, Host};
        check(Some(NATIVE), Bridge, json!({}), "10.89.0.1 runtime open");
        check(Some(NATIVE), Host, json!({}), "127.0.0.1 runtime open");
        // The plan's own address, named by the operator.
        check(
            Some(NATIVE),
            Bridge,
            json!({"host_gateway_ip": "10.89.0.1"}),
            "10.89.0.1 runtime open",
        );
        for (capture, ip) in [
            (DOCKER_DESKTOP, "192.168.65.254"),
            (PODMAN_MACHINE, "192.168.127.254"),
            (COLIMA, "192.168.5.2"),
        ] {
            for mode in [Bridge, Host] {
                check(
                    Some(capture),
                    mode,
                    json!({"host_gateway_ip": ip}),
                    &format!("{ip} runtime open"),
                );
            }
        }
        // Rootless Podman plans no bridge address; the sandbox network's gateway, named by the
        // operator, is an engine bridge's (IPv4 and IPv6) on a bridge, and no one's with host
        // networking, where no bridge is between.
        for ip in ["10.89.0.1", "fd00:89::1"] {
            check(
                Some(ROOTLESS_PODMAN),
                Bridge,
                json!({"host_gateway_ip": ip, "bind": "0.0.0.0"}),
                &format!("{ip} engine-bridge open"),
            );
        }
        // pasta (Podman 5.3+) delivers 169.254.1.2 to the host inside the machine.
        check(
            Some(ROOTLESS_PODMAN),
            Bridge,
            json!({"host_gateway_ip": "169.254.1.2", "bind": "127.0.0.1"}),
            "169.254.1.2 runtime open",
        );
        check(
            Some(ROOTLESS_PODMAN),
            Host,
            json!({"host_gateway_ip": "10.89.0.1", "bind": "0.0.0.0"}),
            "10.89.0.1 operator local-or-engine-bridge 10.89.0.1",
        );
        check(
            Some(NATIVE),
            Bridge,
            json!({"route_kind": "relay"}),
            "relay relay open",
        );
        let relay: IpAddr = crate::consts::LOOPBACK_V4;
        check(
            Some(DOCKER_DESKTOP),
            Host,
            json!({"route_kind": "relay"}),
            &format!("{relay} relay open"),
        );
    }
}
