//! The Docker driver's errors: one variant per kind of failure, each naming the engine call
//! and endpoint, with the source kept.

use std::time::Duration;

/// What went wrong talking to a Docker-API engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DockerDriverError {
    /// No connection could be set up.
    #[error("cannot connect to {endpoint}: {source}; is the engine running, and may this user use its socket?")]
    Connect {
        /// Endpoint.
        endpoint: String,
        /// bollard's error.
        #[source]
        source: bollard::errors::Error,
    },
    /// An engine call failed.
    #[error("{call} on {endpoint} failed: {source}")]
    Call {
        /// Which call.
        call: &'static str,
        /// Endpoint.
        endpoint: String,
        /// bollard's error.
        #[source]
        source: bollard::errors::Error,
    },
    /// A raw call (ping headers, libpod info) failed.
    #[error("{call} on {endpoint} failed: {source}")]
    Raw {
        /// Which call.
        call: &'static str,
        /// Endpoint.
        endpoint: String,
        /// The failure.
        #[source]
        source: openshell_sandbox::raw::RawError,
    },
    /// An engine call did not answer in time.
    #[error("{call} on {endpoint} did not answer within {after:?}")]
    Timeout {
        /// Which call.
        call: &'static str,
        /// Endpoint.
        endpoint: String,
        /// The limit.
        after: Duration,
    },
    /// The endpoint kind is not supported by this driver here.
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
    #[error("invalid sandbox {field}: {problem}")]
    InvalidSpec {
        /// Which field.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// The route cannot be applied (e.g. an extra host failed validation).
    #[error("route cannot be applied: {0}")]
    Route(String),
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

impl DockerDriverError {
    /// Whether the engine answered 404 (a missing object).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            DockerDriverError::Call {
                source: bollard::errors::Error::DockerResponseServerError {
                    status_code: 404,
                    ..
                },
                ..
            }
        )
    }
}
