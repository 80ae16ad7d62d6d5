//! Failures both drivers share, whatever client library they speak through; each driver's
//! error wraps this next to its client's own error type.

use std::time::Duration;

use crate::raw::RawError;
use crate::SpecError;

/// What went wrong talking to an engine, outside the client library's own errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineFailure {
    /// A raw request (ping headers, complete libpod info) failed.
    #[error("{call} on {endpoint} failed: {source}")]
    Raw {
        /// Which call.
        call: &'static str,
        /// Endpoint.
        endpoint: String,
        /// The failure.
        #[source]
        source: RawError,
    },
    /// A call did not answer in time.
    #[error("{call} on {endpoint} did not answer within {after:?}")]
    Timeout {
        /// Which call.
        call: &'static str,
        /// Endpoint.
        endpoint: String,
        /// The limit.
        after: Duration,
    },
    /// The endpoint kind is not supported for engine calls.
    #[error("endpoint {endpoint} is not supported for engine calls by this driver (unix:// and tcp:// are)")]
    Unsupported {
        /// Endpoint.
        endpoint: String,
    },
    /// A network of the sandbox network's name exists with another driver.
    #[error("network {name} exists with driver {driver}, not bridge; remove it or choose another sandbox network name")]
    NetworkConflict {
        /// Name.
        name: String,
        /// Its driver.
        driver: String,
    },
    /// The sandbox spec is invalid.
    #[error(transparent)]
    InvalidSpec(#[from] SpecError),
    /// The route cannot be applied (an extra host failed validation).
    #[error("route cannot be applied: {0}")]
    Route(#[from] openshell_runtime::ExtraHostError),
    /// The engine's answers did not make a facts document.
    #[error("engine facts from {endpoint} are unusable: {source}")]
    Facts {
        /// Endpoint.
        endpoint: String,
        /// The parser's error.
        #[source]
        source: openshell_runtime::FactsError,
    },
}
