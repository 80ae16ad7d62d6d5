//! Discovery's shared half: the environment it reads, trying candidates in order, and what
//! it reports. Each driver lists its own candidates (the docker CLI's order, Podman's order).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use openshell_runtime::facts::Endpoint;

use serde::Serialize;
use tracing::Instrument;

use crate::support::raw;

/// One place discovery looked for an engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    /// The endpoint, as shown to people.
    pub endpoint: String,
    /// Why it was a candidate (`--endpoint`, `DOCKER_HOST`, `context foo`, `well-known: Colima`).
    pub source: String,
    /// What trying it gave.
    pub outcome: CandidateOutcome,
}

/// What trying a candidate gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "detail", rename_all = "kebab-case")]
pub enum CandidateOutcome {
    /// Nothing there (no socket file).
    Absent,
    /// Something there that did not answer as an engine, and why.
    Refused(String),
    /// A remote endpoint, not contacted by discovery.
    Remote,
    /// An engine answered `/_ping`.
    Ok,
    /// Not tried: an earlier candidate answered.
    Skipped,
}

/// Where discovery looked and what it chose.
#[derive(Debug, Clone, Serialize)]
pub struct Discovery {
    /// Every candidate, in the order tried.
    pub candidates: Vec<Candidate>,
    /// The first that answered (or the explicit remote one); `None` when nothing answered.
    pub chosen: Option<Endpoint>,
}

/// The environment discovery reads, gathered once at the edge so tests can fake it.
#[derive(Debug, Clone, Default)]
pub struct DiscoveryEnv {
    /// Environment variables.
    pub vars: BTreeMap<String, String>,
    /// The user's home directory.
    pub home: Option<PathBuf>,
}

impl DiscoveryEnv {
    /// The process's own environment.
    pub fn from_process() -> DiscoveryEnv {
        let vars: BTreeMap<String, String> = std::env::vars().collect();
        let home = vars.get("HOME").map(PathBuf::from);
        DiscoveryEnv { vars, home }
    }

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
