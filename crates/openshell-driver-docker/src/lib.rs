//! The Docker-API sandbox driver, on bollard: finds the engine, gathers the facts
//! `openshell-runtime` decides on, and runs sandboxes along the decided route.
//!
//! It speaks to whatever serves the Docker API: Docker Engine, Docker Desktop, Colima,
//! OrbStack, and Podman's compatible service. It makes no routing decision: facts go to the
//! policy, the route comes back and is applied as-is (extra hosts, sandbox endpoint).
#![deny(missing_docs)]

mod discovery;
mod error;
mod facts;
mod lifecycle;

use std::time::Duration;

use bollard::Docker;
use openshell_runtime::consts::DEFAULT_SANDBOX_NETWORK;
use openshell_runtime::facts::Endpoint;
use openshell_sandbox::raw;
use openshell_sandbox::EngineFailure;
use openshell_sandbox::HostFacts;
use openshell_sandbox::{timed_call, CallError};
use tracing::Instrument;

pub use discovery::{candidates, discover, DiscoveryError};
pub use error::DockerDriverError;
pub use openshell_sandbox::raw::{RawError, RawResponse};
pub use openshell_sandbox::DiscoveryEnv;

/// `1.41` as bollard's version type.
fn parse_api_version(raw: &str) -> Option<bollard::ClientVersion> {
    let (major, minor) = raw.trim().split_once('.')?;
    Some(bollard::ClientVersion {
        major_version: major.parse().ok()?,
        minor_version: minor.parse().ok()?,
    })
}

/// How the driver talks to the engine.
#[derive(Debug, Clone)]
pub struct DockerOptions {
    /// The sandbox network's name.
    pub network: String,
    /// Per-call timeout.
    pub timeout: Duration,
    /// The gateway host's facts; `None` reads this machine's. Replays of another machine's
    /// captures set them, so the host is an input like every other fact.
    pub host: Option<HostFacts>,
}

impl Default for DockerOptions {
    fn default() -> Self {
        DockerOptions {
            network: DEFAULT_SANDBOX_NETWORK.to_string(),
            timeout: Duration::from_secs(20),
            host: None,
        }
    }
}

/// A connection to one Docker-API engine.
#[derive(Debug, Clone)]
pub struct DockerDriver {
    docker: Option<Docker>,
    endpoint: Endpoint,
    opts: DockerOptions,
}

impl DockerDriver {
    /// Connects to `endpoint` and negotiates the API version (Debian's dockerd 20.10 speaks
    /// at most 1.41; Engine 29 refuses anything below 1.44). An `ssh://` endpoint is kept
    /// without a connection: it is remote, and its facts are its endpoint alone.
    pub async fn connect(
        endpoint: Endpoint,
        opts: DockerOptions,
    ) -> Result<DockerDriver, DockerDriverError> {
        let secs = opts.timeout.as_secs().max(1);
        let shown = endpoint.to_string();
        let connect_err = |source| DockerDriverError::Connect {
            endpoint: shown.clone(),
            source,
        };
        if matches!(endpoint, Endpoint::Ssh { .. }) {
            return Ok(DockerDriver {
                docker: None,
                endpoint,
                opts,
            });
        }
        if matches!(endpoint, Endpoint::Npipe { .. }) {
            return Err(DockerDriverError::from(EngineFailure::Unsupported {
                endpoint: shown,
            }));
        }
        // The engine's API version comes from `/_ping`'s Api-Version header: one cheap round
        // trip instead of `/version`, which dockerd 20.10 takes ~7 ms to answer. Without the
        // header, bollard negotiates through `/version`.
        let span =
            tracing::info_span!("engine_call", call = "_ping (api version)", endpoint = %shown);
        let pinged = raw::get(&endpoint, "/_ping", opts.timeout)
            .instrument(span)
            .await
            .ok();
        let server = pinged
            .as_ref()
            .and_then(|r| r.headers.get("api-version"))
            .and_then(|v| parse_api_version(v));
        let version = match server {
            Some(v) if v < *bollard::API_DEFAULT_VERSION => v,
            _ => *bollard::API_DEFAULT_VERSION,
        };
        let docker = match &endpoint {
            Endpoint::Unix { path } => {
                Docker::connect_with_unix(path, secs, &version).map_err(connect_err)?
            }
            Endpoint::Tcp { host, port } => {
                let addr = format!("tcp://{host}:{}", port.unwrap_or(2375));
                Docker::connect_with_http(&addr, secs, &version).map_err(connect_err)?
            }
            Endpoint::Ssh { .. } | Endpoint::Npipe { .. } => {
                return Err(DockerDriverError::from(EngineFailure::Unsupported {
                    endpoint: shown,
                }))
            }
        };
        let docker = if server.is_some() {
            docker
        } else {
            let span =
                tracing::info_span!("engine_call", call = "version (negotiate)", endpoint = %shown);
            tokio::time::timeout(opts.timeout, docker.negotiate_version())
                .instrument(span)
                .await
                .map_err(|_| {
                    DockerDriverError::from(EngineFailure::Timeout {
                        call: "version",
                        endpoint: shown.clone(),
                        after: opts.timeout,
                    })
                })?
                .map_err(connect_err)?
        };
        tracing::debug!(api = %docker.client_version(), "API version");
        Ok(DockerDriver {
            docker: Some(docker),
            endpoint,
            opts,
        })
    }

    fn client(&self) -> Result<&Docker, DockerDriverError> {
        self.docker.as_ref().ok_or_else(|| {
            DockerDriverError::from(EngineFailure::Unsupported {
                endpoint: self.endpoint.to_string(),
            })
        })
    }

    /// Runs one engine call with a timeout, inside a tracing span, mapping its error.
    async fn call<T, F>(&self, call: &'static str, fut: F) -> Result<T, DockerDriverError>
    where
        F: std::future::Future<Output = Result<T, bollard::errors::Error>>,
    {
        match timed_call(call, &self.endpoint, self.opts.timeout, fut).await {
            Ok(v) => Ok(v),
            Err(CallError::Failure(f)) => Err(f.into()),
            Err(CallError::Client(source)) => Err(DockerDriverError::Call {
                call,
                endpoint: self.endpoint.to_string(),
                source,
            }),
        }
    }
}
