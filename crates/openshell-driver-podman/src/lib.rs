//! The libpod sandbox driver, on podman-api: finds Podman in its own order, gathers the same
//! facts the Docker driver gathers (through libpod), and runs sandboxes along the route.
//!
//! It makes no routing decision. The same engine reached through Podman's Docker-compatible API
//! (the Docker driver) and through libpod (this driver) yields the same facts that matter, so
//! the one policy in `openshell-runtime` gives the same route.
#![deny(missing_docs)]

mod discovery;
mod error;
mod facts;
mod lifecycle;

use std::time::Duration;

use openshell_runtime::consts::DEFAULT_SANDBOX_NETWORK;
use openshell_runtime::facts::Endpoint;
use openshell_sandbox::EngineFailure;
use openshell_sandbox::HostFacts;
use openshell_sandbox::{timed_call, CallError};
use podman_api::Podman;

pub use discovery::{candidates, discover, PodmanEnv};
pub use error::PodmanDriverError;
pub use facts::info_from_libpod;

/// How the driver talks to Podman.
#[derive(Debug, Clone)]
pub struct PodmanOptions {
    /// The sandbox network's name.
    pub network: String,
    /// Per-call timeout.
    pub timeout: Duration,
    /// The gateway host's facts; `None` reads this machine's.
    pub host: Option<HostFacts>,
}

impl Default for PodmanOptions {
    fn default() -> Self {
        PodmanOptions {
            network: DEFAULT_SANDBOX_NETWORK.to_string(),
            timeout: Duration::from_secs(20),
            host: None,
        }
    }
}

/// A connection to one Podman service.
#[derive(Debug, Clone)]
pub struct PodmanDriver {
    podman: Option<Podman>,
    endpoint: Endpoint,
    opts: PodmanOptions,
}

impl PodmanDriver {
    /// Connects to `endpoint` (`unix://` or `tcp://`). An `ssh://` endpoint is kept without a
    /// connection: its facts are its endpoint alone.
    pub fn connect(
        endpoint: Endpoint,
        opts: PodmanOptions,
    ) -> Result<PodmanDriver, PodmanDriverError> {
        let podman = match &endpoint {
            Endpoint::Unix { path } => Some(Podman::unix(path)),
            Endpoint::Tcp { host, port } => Some(
                Podman::new(format!("tcp://{host}:{}", port.unwrap_or(8080))).map_err(
                    |source| PodmanDriverError::Connect {
                        endpoint: endpoint.to_string(),
                        source,
                    },
                )?,
            ),
            Endpoint::Ssh { .. } => None,
            Endpoint::Npipe { .. } => {
                return Err(PodmanDriverError::from(EngineFailure::Unsupported {
                    endpoint: endpoint.to_string(),
                }))
            }
        };
        Ok(PodmanDriver {
            podman,
            endpoint,
            opts,
        })
    }

    fn client(&self) -> Result<&Podman, PodmanDriverError> {
        self.podman.as_ref().ok_or_else(|| {
            PodmanDriverError::from(EngineFailure::Unsupported {
                endpoint: self.endpoint.to_string(),
            })
        })
    }

    /// Runs one engine call with a timeout, inside a tracing span, mapping its error.
    async fn call<T, F>(&self, call: &'static str, fut: F) -> Result<T, PodmanDriverError>
    where
        F: std::future::Future<Output = Result<T, podman_api::Error>>,
    {
        match timed_call(call, &self.endpoint, self.opts.timeout, fut).await {
            Ok(v) => Ok(v),
            Err(CallError::Failure(f)) => Err(f.into()),
            Err(CallError::Client(source)) => Err(PodmanDriverError::Call {
                call,
                endpoint: self.endpoint.to_string(),
                source,
            }),
        }
    }
}
