//! What can go wrong running sandboxes on an engine, in one error type for every driver.
//!
//! Each driver decides an [`ErrorKind`] once, from the engine's HTTP status (see
//! `openshell-driver`). Everything here that decides on errors (removal retries, "missing is
//! fine", "someone else created it") looks at that kind, never at message text.

use std::time::Duration;

use openshell_driver::{BoxError, DriverError, ErrorKind};

use crate::spec::SpecError;

/// What went wrong talking to an engine, through either driver.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The driver could not be connected (nothing else was tried).
    #[error(transparent)]
    Driver(#[from] DriverError),
    /// An engine call failed; `kind` says how.
    #[error("{call} on {endpoint} failed ({kind}): {source}")]
    Call {
        /// The call, e.g. `container create`.
        call: &'static str,
        /// The endpoint, as shown to people.
        endpoint: String,
        /// The kind, decided by the driver from the status code.
        kind: ErrorKind,
        /// The client library's error.
        #[source]
        source: BoxError,
    },
    /// A call did not answer in time.
    #[error("{call} on {endpoint} did not answer within {after:?}")]
    Timeout {
        /// The call.
        call: &'static str,
        /// The endpoint, as shown to people.
        endpoint: String,
        /// The limit that passed.
        after: Duration,
    },
    /// A network of the sandbox network's name exists with another driver.
    #[error("network {name} exists with driver {driver}, not bridge; remove it or choose another sandbox network name")]
    NetworkConflict {
        /// The network's name.
        name: String,
        /// Its driver.
        driver: String,
    },
    /// Several networks share the sandbox network's name (old Docker engines allow it), and not
    /// all could be healed: a container cannot join the name while it is ambiguous.
    #[error("network {name} exists {} times ({}); containers cannot join it by name: remove the ones not in use by id (`docker network rm <id>`)", .ids.len(), .ids.join(", "))]
    DuplicateNetworks {
        /// The network's name.
        name: String,
        /// The ids sharing it (first 12 characters).
        ids: Vec<String>,
    },
    /// The sandbox spec is invalid; nothing was created.
    #[error(transparent)]
    InvalidSpec(#[from] SpecError),
    /// The route cannot be applied (an extra host failed validation); nothing was created.
    #[error("route cannot be applied: {0}")]
    Route(#[from] openshell_runtime::ExtraHostError),
    /// The engine's answers did not make a facts document.
    #[error("engine facts from {endpoint} are unusable: {source}")]
    Facts {
        /// The endpoint, as shown to people.
        endpoint: String,
        /// The parser's error.
        #[source]
        source: openshell_runtime::FactsError,
    },
}

impl EngineError {
    /// The failure's kind, for callers that decide what to do next.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            EngineError::Call { kind, .. } => Some(*kind),
            EngineError::Timeout { .. }
            | EngineError::Driver(DriverError::Connect { .. } | DriverError::Timeout { .. }) => {
                Some(ErrorKind::Unreachable)
            }
            EngineError::Driver(DriverError::WrongApi { .. }) | EngineError::Facts { .. } => {
                Some(ErrorKind::BadAnswer)
            }
            _ => None,
        }
    }

    /// Whether the engine said the object does not exist.
    pub fn is_not_found(&self) -> bool {
        self.kind() == Some(ErrorKind::NotFound)
    }
}
