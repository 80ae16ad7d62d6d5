//! Trying discovery candidates: shared by both drivers, whose candidate lists differ.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use openshell_runtime::facts::Endpoint;

use crate::raw;
use crate::{Candidate, CandidateOutcome, Discovery};
use tracing::Instrument;

/// The environment discovery reads, gathered once at the edge so tests can fake it.
#[derive(Debug, Clone, Default)]
pub struct DiscoveryEnv {
    /// Environment variables.
    pub vars: BTreeMap<String, String>,
    /// The user's home directory.
    pub home: Option<PathBuf>,
}

impl DiscoveryEnv {
    /// A variable, treating empty as unset.
    pub fn var(&self, k: &str) -> Option<&str> {
        self.vars
            .get(k)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

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
    match raw::get(ep, "/_ping", timeout).instrument(span).await {
        Ok(r) if r.status == 200 => {
            *chosen = Some(ep.clone());
            CandidateOutcome::Ok
        }
        Ok(r) => CandidateOutcome::Refused(format!("/_ping answered HTTP {}", r.status)),
        Err(e) => CandidateOutcome::Refused(e.to_string()),
    }
}
