//! The Podman driver's errors: one variant per kind of failure, naming the call and endpoint.

use std::time::Duration;

/// What went wrong talking to Podman.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PodmanDriverError {
    /// No client could be set up.
    #[error("cannot connect to {endpoint}: {source}")]
    Connect {
        /// Endpoint.
        endpoint: String,
        /// podman-api's error.
        #[source]
        source: podman_api::Error,
    },
    /// A libpod call failed.
    #[error("{call} on {endpoint} failed: {source}")]
    Call {
        /// Which call.
        call: &'static str,
        /// Endpoint.
        endpoint: String,
        /// podman-api's error.
        #[source]
        source: podman_api::Error,
    },
    /// A raw call (ping headers, complete libpod info) failed.
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
    /// The endpoint kind is not supported by this driver here.
    #[error("endpoint {endpoint} is not supported for engine calls by this driver (unix:// and tcp:// are)")]
    Unsupported {
        /// Endpoint.
        endpoint: String,
    },
    /// The engine answered something that is not Podman's libpod API.
    #[error("{endpoint} does not serve libpod's API ({call} answered HTTP {status}); for a Docker engine use --driver docker")]
    NotLibpod {
        /// Endpoint.
        endpoint: String,
        /// Which call.
        call: &'static str,
        /// Status.
        status: u16,
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
    #[error("invalid sandbox: {0}")]
    InvalidSpec(String),
    /// The engine's answers did not make a facts document.
    #[error("engine facts from {endpoint} are unusable: {source}")]
    Facts {
        /// Endpoint.
        endpoint: String,
        /// The parser's error.
        #[source]
        source: openshell_runtime::FactsError,
    },
    /// Discovery configuration is unreadable.
    #[error("{0}")]
    Discovery(String),
}

impl PodmanDriverError {
    /// Whether libpod answered with this HTTP status.
    pub fn has_status(&self, status: u16) -> bool {
        matches!(self, PodmanDriverError::Call { source: podman_api::Error::Fault { code, .. }, .. } if code.as_u16() == status)
    }
}
