//! `doctor`: prove the route on the live engine, and say what to do when nothing works.
//!
//! The decided route is probed first, then the decision's fallbacks in their documented order,
//! until one is proven. Exit 0 when a route is proven, 5 when none is, 3 when no engine answers,
//! 130 or 143 when stopped by SIGINT or SIGTERM (after removing its probe).
//!
//! Probe containers of earlier runs that were interrupted or crashed are swept first, and the
//! report lists them. Before that, an operator's `host_gateway_ip` that is no address of this
//! host and that nothing the engine reported vouches for ends the run with exit 2: no probe
//! is sent toward another machine.

use std::io::IsTerminal;
use std::time::Duration;

use openshell_runtime::{decide, HostTarget, Registry, Route};
use openshell_sandbox::{
    check_target, probe_route, relay_ready, remove_own_relays, EngineError, ListenerOptions,
    ProbeOptions, ProbeOutcome, ProbeResult, RelayOptions, SandboxDriver, Sweep, SweptProbe,
};
use serde::Serialize;

use crate::interrupt::{Interrupt, Interrupts};
use crate::live;
use crate::report::Report;
use crate::{settle, to_json, EngineArgs, Fail, Output, RouteArgs};

/// `doctor`'s arguments.
pub(crate) struct DoctorArgs {
    pub(crate) engine: EngineArgs,
    pub(crate) route: RouteArgs,
    pub(crate) probe_image: Option<String>,
    pub(crate) probe_timeout: Duration,
    pub(crate) allow_wildcard: bool,
    pub(crate) output: Output,
}

/// What `doctor -o json` prints.
#[derive(Serialize)]
struct DoctorReport<'a> {
    #[serde(flatten)]
    decision: Report<'a>,
    /// Probe containers of earlier runs (interrupted, crashed) removed before probing.
    swept: Vec<SweptProbe>,
    probes: Vec<ProbeResult>,
    proven: Option<&'a ProbeResult>,
    advice: Vec<String>,
}

/// Progress on a terminal, nothing otherwise.
struct Progress(bool);

impl Progress {
    fn step(&self, i: usize, n: usize, route: &Route) {
        if self.0 {
            let bind = route
                .bind
                .map_or("its own address".to_string(), |b| b.to_string());
            eprint!(
                "[{i}/{n}] probing host.openshell.internal -> {} (gateway on {bind}) … ",
                route.openshell_host
            );
        }
    }

    fn done(&self, r: &ProbeResult) {
        if self.0 {
            let what = match &r.outcome {
                ProbeOutcome::Ok { latency_ms } => format!("ok in {latency_ms} ms"),
                other => serde_json::to_value(other)
                    .ok()
                    .and_then(|v| v["outcome"].as_str().map(String::from))
                    .unwrap_or_default(),
            };
            eprintln!("{what}");
        }
    }
}

async fn probe_all(
    driver: &SandboxDriver,
    routes: &[&Route],
    opts: &ProbeOptions,
    progress: &Progress,
) -> Vec<ProbeResult> {
    let mut out = Vec::new();
    for (i, route) in routes.iter().enumerate() {
        progress.step(i + 1, routes.len(), route);
        let r = probe_route(driver, route, opts).await;
        progress.done(&r);
        let ok = r.outcome.is_ok();
        out.push(r);
        if ok {
            break;
        }
    }
    out
}

fn advice(probes: &[ProbeResult], route_error: Option<String>, port: u16) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(e) = route_error {
        out.push(format!("no route was decided: {e}"));
    }
    for p in probes {
        if p.not_on_host && !p.outcome.is_ok() {
            out.push(format!(
                "{} is not an address of this host, so no gateway can listen there for sandboxes to reach: set host_gateway_ip to an address of this host that sandboxes reach (see `ip -brief address`), or unset it to let the runtime decide",
                p.bind.as_deref().unwrap_or("the route's address")
            ));
            continue;
        }
        let line = match &p.outcome {
            ProbeOutcome::Ok { .. } => continue,
            ProbeOutcome::Timeout => format!(
                "{} timed out: if it is a bridge address of this host, a firewall may drop sandbox traffic to it; allow TCP port {port} from the sandbox bridge in the INPUT chain",
                p.openshell_host
            ),
            ProbeOutcome::Refused => format!(
                "{} refused: the gateway must listen on {} (bind_address in gateway.toml, or --bind)",
                p.openshell_host,
                p.bind.as_deref().unwrap_or("the route's address")
            ),
            ProbeOutcome::NameUnresolved => format!(
                "{} did not become an address inside the sandbox: set host_gateway_ip to a literal address ([openshell.drivers.*] host_gateway_ip, or --host-gateway-ip)",
                p.openshell_host
            ),
            ProbeOutcome::ProbeUnavailable { reason } => format!("the probe could not run ({reason}): check the engine, or pass --probe-image with a local busybox image"),
            ProbeOutcome::ForeignAddress { reason } => reason.clone(),
        };
        out.push(line);
    }
    out
}

/// What an interrupted run removed: its probes, and its relays.
type Removed = (
    Result<Vec<SweptProbe>, EngineError>,
    Result<usize, EngineError>,
);

/// The failure for a run stopped by `signal`, after what it `removed`.
fn interrupted(signal: Interrupt, removed: Option<Removed>) -> Fail {
    let cleanup = match removed {
        None => String::new(),
        Some((probes, relays)) => {
            let probes = match probes {
                Ok(r) => format!("; removed {} probe container(s) of this run", r.len()),
                Err(e) => format!(
                    "; its probe containers were not removed ({e}): the next run removes them"
                ),
            };
            let relays = match relays {
                Ok(0) => String::new(),
                Ok(n) => format!(" and {n} relay container(s)"),
                Err(e) => format!(
                    "; its relay containers were not removed ({e}): the next relay start reaps them"
                ),
            };
            probes + &relays
        }
    };
    Fail {
        code: signal.code,
        message: format!("interrupted by {}{cleanup}", signal.name),
    }
}

/// Runs `doctor`.
pub(crate) fn run(args: DoctorArgs) -> Result<u8, Fail> {
    live::block_on(async {
        let mut stop = Interrupts::catch()?;
        let engine = tokio::select! {
            engine = live::connect(&args.engine, None) => engine?,
            signal = stop.next() => return Err(interrupted(signal, None)),
        };
        let driver = &engine.driver;
        let mut facts = engine.gathered.facts.clone();
        let (settings, ctx) = settle(
            &mut facts,
            &args.route,
            Some((engine.driver_name(), args.engine.driver.is_some())),
        )?;
        let decision = decide(&Registry::builtin(), &facts, &ctx);
        let opts = ProbeOptions {
            image: args.probe_image.clone(),
            timeout: args.probe_timeout,
            listener: ListenerOptions {
                allow_wildcard: args.allow_wildcard,
                ..ListenerOptions::default()
            },
            relay: RelayOptions::from_env(0).map_err(|e| Fail {
                code: 2,
                message: e.to_string(),
            })?,
        };
        // A relay this build cannot start for the engine's architecture is not offered: the
        // route after it is probed instead, and the report says why.
        let arch = facts.info.architecture.clone().unwrap_or_default();
        let relay_missing = relay_ready(&opts.relay, &arch).err();
        let routes: Vec<&Route> = decision
            .route
            .iter()
            .chain(decision.fallbacks.iter())
            .filter(|r| r.openshell_host != HostTarget::Relay || relay_missing.is_none())
            .collect();
        let relay_withheld = relay_missing.filter(|_| {
            decision
                .route
                .iter()
                .chain(decision.fallbacks.iter())
                .any(|r| r.openshell_host == HostTarget::Relay)
        });
        // The operator's address that is no one's here is refused before anything is swept,
        // imported or created: a probe there would call another machine (issue 22).
        for route in &routes {
            let checked = tokio::select! {
                checked = check_target(driver, route) => checked,
                signal = stop.next() => return Err(interrupted(signal, None)),
            };
            if let Err(e) = checked {
                return Err(Fail {
                    code: 2,
                    message: e.to_string(),
                });
            }
        }
        let progress =
            Progress(std::io::stderr().is_terminal() && matches!(args.output, Output::Text));
        // Probes left by interrupted or crashed runs go first, and the report says so. A
        // signal ends the sweep: nothing of this run exists yet, and the next run sweeps again.
        let swept = tokio::select! {
            swept = driver.sweep_probes(Sweep::Stale) => swept.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "stale probe containers not swept");
                Vec::new()
            }),
            signal = stop.next() => return Err(interrupted(signal, None)),
        };
        let probes = tokio::select! {
            probes = probe_all(driver, &routes, &opts, &progress) => probes,
            signal = stop.next() => {
                if progress.0 {
                    eprintln!();
                }
                let probes = driver.sweep_probes(Sweep::Mine).await;
                let relays = remove_own_relays(driver).await;
                return Err(interrupted(signal, Some((probes, relays))));
            }
        };
        let mut report = Report::new(&decision, &facts.warnings, &settings, ctx.network_mode);
        report.endpoint_candidates = Some(&engine.candidates);
        report.driver = Some(engine.driver_name());
        let proven = probes.iter().find(|p| p.outcome.is_ok());
        let mut advice = advice(
            &probes,
            decision.route.as_ref().err().map(ToString::to_string),
            ctx.port,
        );
        if let Some(e) = relay_withheld {
            advice.insert(0, format!("the relay route was not offered: {e}"));
        }
        let doc = DoctorReport {
            decision: report,
            swept,
            probes: probes.clone(),
            proven,
            advice,
        };
        match args.output {
            Output::Json => crate::emit(&format!("{}\n", to_json(&doc)?))?,
            Output::Text => crate::emit(&text(&doc))?,
        }
        Ok(if proven.is_some() { 0 } else { 5 })
    })?
}

fn text(doc: &DoctorReport<'_>) -> String {
    use std::fmt::Write as _;
    let mut s = doc.decision.text();
    if !doc.swept.is_empty() {
        let _ = writeln!(
            s,
            "swept:      {} probe container(s) left by earlier runs",
            doc.swept.len()
        );
        for p in &doc.swept {
            let id: String = p.container_id.chars().take(12).collect();
            let _ = writeln!(s, "  - {id} ({}): {}", p.sandbox_id, p.reason);
        }
    }
    let _ = writeln!(s, "probes:");
    if doc.probes.is_empty() {
        let _ = writeln!(s, "  (no route to probe)");
    }
    for p in &doc.probes {
        let outcome = match &p.outcome {
            ProbeOutcome::Ok { latency_ms } => format!("ok ({latency_ms} ms)"),
            ProbeOutcome::ProbeUnavailable { reason } => format!("probe-unavailable: {reason}"),
            other => serde_json::to_value(other)
                .ok()
                .and_then(|v| v["outcome"].as_str().map(String::from))
                .unwrap_or_default(),
        };
        let bind = p.bind.as_deref().unwrap_or("-");
        let _ = writeln!(
            s,
            "  - host.openshell.internal -> {} / gateway on {bind}: {outcome}",
            p.openshell_host
        );
        let _ = writeln!(s, "    {}", p.hint);
        for note in &p.notes {
            let _ = writeln!(s, "    note: {note}");
        }
    }
    match doc.proven {
        Some(p) => {
            let _ = writeln!(
                s,
                "verdict:    proven: sandboxes reach the gateway via {} (gateway on {})",
                p.openshell_host,
                p.bind.as_deref().unwrap_or("-")
            );
        }
        None => {
            let _ = writeln!(
                s,
                "verdict:    no route proven; sandboxes would hang in Provisioning"
            );
            for a in &doc.advice {
                let _ = writeln!(s, "  do: {a}");
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(outcome: ProbeOutcome, not_on_host: bool) -> ProbeResult {
        ProbeResult {
            openshell_host: "10.99.0.1".into(),
            bind: Some("10.99.0.1".into()),
            hint: outcome.hint(),
            outcome,
            notes: Vec::new(),
            not_on_host,
        }
    }

    /// An address that is not this host's is named as such, not as a gateway that should
    /// listen there (it cannot).
    #[test]
    fn an_address_not_on_this_host_is_advised_as_such() {
        let absent = advice(&[probe(ProbeOutcome::Timeout, true)], None, 17670);
        assert_eq!(absent.len(), 1, "{absent:?}");
        assert!(
            absent[0].starts_with("10.99.0.1 is not an address of this host")
                && absent[0].contains("host_gateway_ip"),
            "{absent:?}"
        );
        let refused = advice(&[probe(ProbeOutcome::Refused, false)], None, 17670);
        assert!(
            refused[0].contains("the gateway must listen on 10.99.0.1"),
            "{refused:?}"
        );
    }
}
