//! Trying discovery candidates: shared by both drivers, whose candidate lists differ.

use std::path::Path;
use std::time::Duration;

use openshell_runtime::facts::Endpoint;

use crate::raw;
use crate::{Candidate, CandidateOutcome, Discovery};

/// Tries the candidates in order; the first engine that answers `/_ping` is chosen. A remote
/// endpoint named by the user is chosen without being probed here.
pub async fn probe_candidates(candidates: Vec<(Endpoint, String)>, timeout: Duration) -> Discovery {
    let mut out = Vec::new();
    let mut chosen = None;
    for (ep, source) in candidates {
        let endpoint = ep.to_string();
        let outcome = if chosen.is_some() {
            CandidateOutcome::Skipped
        } else if matches!(ep, Endpoint::Ssh { .. }) || ep.is_remote() {
            chosen = Some(ep);
            CandidateOutcome::Remote
        } else if let Endpoint::Unix { path } = &ep {
            if !Path::new(path).exists() {
                CandidateOutcome::Absent
            } else {
                probe(&ep, timeout, &mut chosen).await
            }
        } else {
            probe(&ep, timeout, &mut chosen).await
        };
        out.push(Candidate {
            endpoint,
            source,
            outcome,
        });
    }
    Discovery {
        candidates: out,
        chosen,
    }
}

async fn probe(
    ep: &Endpoint,
    timeout: Duration,
    chosen: &mut Option<Endpoint>,
) -> CandidateOutcome {
    let span = tracing::info_span!("engine_call", call = "_ping", endpoint = %ep);
    let _g = span.enter();
    match raw::get(ep, "/_ping", timeout).await {
        Ok(r) if r.status == 200 => {
            *chosen = Some(ep.clone());
            CandidateOutcome::Ok
        }
        Ok(r) => CandidateOutcome::Refused(format!("/_ping answered HTTP {}", r.status)),
        Err(e) => CandidateOutcome::Refused(e.to_string()),
    }
}
