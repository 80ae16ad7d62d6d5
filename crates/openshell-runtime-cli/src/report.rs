//! Turns a decision into what people and programs read: `-o text` and `-o json`.

use std::fmt::Write as _;

use openshell_runtime::facts::FactWarning;
use openshell_runtime::registry::Consulted;
use openshell_runtime::{Decision, Evidence, Exposure, NetworkMode, RouteKind};
use serde::Serialize;

use openshell_engine::Candidate;

use crate::config::Settings;

/// The JSON document `detect -o json` prints.
#[derive(Debug, Serialize)]
pub(crate) struct Report<'a> {
    /// Recognised runtime id (also on failure, when one was recognised).
    pub(crate) runtime: Option<&'a str>,
    /// The detector that matched.
    pub(crate) detector: Option<&'a str>,
    /// The network namespace sandboxes run in, which the decision was made for.
    pub(crate) network_mode: NetworkMode,
    /// `bridge` or `host-network`: what the route (or the refusal) is for.
    pub(crate) route_kind: RouteKind,
    /// What `host.openshell.internal` maps to.
    pub(crate) openshell_host: Option<String>,
    /// Where the gateway binds.
    pub(crate) bind: Option<String>,
    /// How widely the bind exposes the gateway.
    pub(crate) exposure: Option<Exposure>,
    /// URL given to sandboxes.
    pub(crate) sandbox_endpoint: Option<String>,
    /// Docker-API `name:value` entries.
    pub(crate) extra_hosts: Vec<String>,
    /// Why this route.
    pub(crate) why: Option<&'a str>,
    /// Notes for people.
    pub(crate) notes: &'a [String],
    /// What the winning detector matched on.
    pub(crate) evidence: &'a [Evidence],
    /// Every detector consulted.
    pub(crate) consulted: &'a [Consulted],
    /// Facts that were present but unusable.
    pub(crate) fact_warnings: &'a [FactWarning],
    /// Operator settings in force, with their sources.
    pub(crate) settings: &'a Settings,
    /// Why there is no route (fail closed).
    pub(crate) error: Option<String>,
    /// Live mode: where discovery looked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) endpoint_candidates: Option<&'a [Candidate]>,
    /// Live mode: which driver spoke to the engine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) driver: Option<&'a str>,
}

impl<'a> Report<'a> {
    /// Builds the report.
    pub(crate) fn new(
        decision: &'a Decision,
        warnings: &'a [FactWarning],
        settings: &'a Settings,
        network_mode: NetworkMode,
    ) -> Self {
        let winner = decision.detection.winner.as_ref();
        let route = decision.route.as_ref().ok();
        Report {
            runtime: decision.runtime_id().or(route.map(|r| r.runtime.as_str())),
            detector: winner.map(|w| w.detector.as_str()),
            network_mode,
            route_kind: route.map_or(network_mode.route_kind(), |r| r.route_kind),
            openshell_host: route.map(|r| r.openshell_host.to_string()),
            bind: route.and_then(|r| r.bind).map(|b| b.to_string()),
            exposure: route.map(|r| r.exposure),
            sandbox_endpoint: route.map(|r| r.sandbox_endpoint()),
            extra_hosts: route
                .map(|r| r.extra_hosts().iter().map(ToString::to_string).collect())
                .unwrap_or_default(),
            why: route.map(|r| r.why.as_str()),
            notes: route.map_or(&[], |r| r.notes.as_slice()),
            evidence: winner.map_or(&[], |w| w.evidence.as_slice()),
            consulted: &decision.detection.consulted,
            fact_warnings: warnings,
            settings,
            error: decision
                .route
                .as_ref()
                .err()
                .map(|e| with_source(e.to_string(), settings)),
            endpoint_candidates: None,
            driver: None,
        }
    }

    /// The text a person reads.
    pub(crate) fn text(&self) -> String {
        let mut s = String::new();
        if let Some(driver) = self.driver {
            let _ = writeln!(s, "driver:     {driver}");
        }
        if let Some(cands) = self.endpoint_candidates {
            let _ = writeln!(s, "engine endpoints tried:");
            let _ = write!(s, "{}", openshell_engine::candidates_text(cands));
        }
        let _ = writeln!(
            s,
            "runtime:    {}",
            self.runtime.unwrap_or("(not recognised)")
        );
        if !self.evidence.is_empty() {
            let _ = writeln!(s, "because:");
            for e in self.evidence {
                let _ = writeln!(s, "  - {} = {}: {}", e.fact, e.value, e.meaning);
            }
        }
        let skipped: Vec<_> = self
            .consulted
            .iter()
            .filter(|c| Some(c.detector.as_str()) != self.detector)
            .collect();
        if !skipped.is_empty() {
            let _ = writeln!(s, "ruled out:");
            for c in skipped {
                let _ = writeln!(s, "  - {}: {}", c.detector, c.outcome);
            }
        }
        let _ = writeln!(s, "network:    {}", mode_text(self.network_mode));
        match (&self.openshell_host, &self.error) {
            (Some(host), _) => {
                let _ = writeln!(s, "route:");
                let _ = writeln!(s, "  host.openshell.internal -> {host} (inside sandboxes)");
                match (&self.bind, self.exposure) {
                    (Some(b), Some(e)) => {
                        let _ = writeln!(s, "  gateway binds {b} ({})", exposure_text(e));
                    }
                    _ => {
                        let _ = writeln!(s, "  gateway keeps its own bind address");
                    }
                }
                if let Some(ep) = &self.sandbox_endpoint {
                    let _ = writeln!(s, "  sandboxes call {ep}");
                }
                let _ = writeln!(s, "  extra hosts: {}", self.extra_hosts.join(", "));
                if let Some(why) = self.why {
                    let _ = writeln!(s, "why:        {why}");
                }
            }
            (None, Some(err)) => {
                let _ = writeln!(s, "route:      none (refusing to guess)");
                let _ = writeln!(s, "error:      {err}");
            }
            (None, None) => {}
        }
        for n in self.notes {
            let _ = writeln!(s, "note:       {n}");
        }
        for w in self.fact_warnings {
            let _ = writeln!(s, "ignored:    {}: {}", w.field, w.problem);
        }
        s
    }
}

/// A refusal made while the operator set the container-side address says where that came
/// from, so an `OPENSHELL_GRPC_ENDPOINT` or a `grpc_endpoint` is named, not only its address.
fn with_source(error: String, settings: &Settings) -> String {
    let Some(h) = &settings.host_gateway_ip else {
        return error;
    };
    let mut s = format!("{error} (the address {} is from {})", h.value, h.source);
    if settings
        .grpc_endpoint
        .as_ref()
        .is_some_and(|e| e.source == h.source)
    {
        let _ = write!(
            s,
            "; in {} give that address as the host, or {} to let the policy decide",
            h.source,
            openshell_runtime::consts::OPENSHELL_HOST
        );
    }
    s
}

fn mode_text(m: NetworkMode) -> &'static str {
    match m {
        NetworkMode::Bridge => "bridge (sandboxes on the sandbox network)",
        NetworkMode::Host => {
            "host (sandboxes in the engine's host network namespace; addresses are seen from there)"
        }
    }
}

fn exposure_text(e: Exposure) -> &'static str {
    match e {
        Exposure::Loopback => "loopback: nothing outside this machine can connect",
        Exposure::Bridge => "a bridge address only this host and its containers have",
        Exposure::Lan => "the host's LAN-facing address",
        Exposure::Wildcard => "every interface",
        Exposure::Operator => "an address the operator chose",
        Exposure::Unconstrained => "no constraint",
    }
}
