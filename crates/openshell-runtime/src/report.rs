//! What each consulted detector said: the part of a detection that errors and reports carry.
//!
//! These types hold no runtime value, so the error type can name every detector's outcome
//! without depending on the runtimes or the registry that produced them.

use std::fmt;

use serde::Serialize;

/// What one consulted detector said, for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Consulted {
    /// The detector's name (a built-in's is its runtime id).
    pub detector: String,
    /// What it concluded; serialized as `{"outcome": ..., "reason": ...}`.
    pub outcome: Outcome,
}

/// A detector's outcome, without the runtime value (so errors can carry it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "reason", rename_all = "kebab-case")]
pub enum Outcome {
    /// The engine is this detector's runtime: the search stopped here with a winner.
    Matched,
    /// Not this detector's runtime, with the reason; the search went on.
    NotMine(String),
    /// It saw its runtime's signals but lacked a fact to decide, with the reason; the search
    /// stopped without a winner.
    Failed(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Matched => f.write_str("matched"),
            Outcome::NotMine(r) => write!(f, "not mine ({r})"),
            Outcome::Failed(r) => write!(f, "failed ({r})"),
        }
    }
}
