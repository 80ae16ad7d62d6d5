//! What each consulted detector said: the part of a detection that errors and reports carry.
//!
//! These types hold no runtime value, so the error type can name every detector's outcome
//! without depending on the runtimes or the registry that produced them.

use std::fmt;

use serde::Serialize;

/// What one consulted detector said, for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Consulted {
    /// Detector name.
    pub detector: String,
    /// Its outcome.
    pub outcome: Outcome,
}

/// A detector's outcome, without the runtime value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "reason", rename_all = "kebab-case")]
pub enum Outcome {
    /// It matched.
    Matched,
    /// Not its runtime.
    NotMine(String),
    /// It saw its signals but could not decide.
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
