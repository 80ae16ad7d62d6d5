//! The Docker driver's errors: one variant per kind of failure, each naming the engine call
//! and endpoint, with the source kept.

use openshell_sandbox::EngineFailure;

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
    /// A failure both drivers share (timeouts, raw calls, network conflicts, bad specs...).
    #[error(transparent)]
    Engine(#[from] EngineFailure),
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
