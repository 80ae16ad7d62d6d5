//! The Podman driver's errors: one variant per kind of failure, naming the call and endpoint.

use openshell_sandbox::EngineFailure;

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
    /// A failure both drivers share (timeouts, raw calls, network conflicts, bad specs...).
    #[error(transparent)]
    Engine(#[from] EngineFailure),
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
