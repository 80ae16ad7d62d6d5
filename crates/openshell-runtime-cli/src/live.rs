//! Live mode: find the engine, pick the driver, gather the facts (and dump them on request).

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use openshell_driver_docker::{DockerDriver, DockerOptions};
use openshell_driver_podman::{PodmanDriver, PodmanOptions};
use openshell_runtime::Facts;
use openshell_sandbox::{Candidate, Discovery, DiscoveryEnv, SandboxDriver};

use crate::report::candidates_text;
use crate::{to_json, usage, Driver, EngineArgs, Fail};

/// A connected driver of either kind.
pub enum AnyDriver {
    /// The Docker API.
    Docker(DockerDriver),
    /// libpod.
    Podman(PodmanDriver),
}

/// What discovery found and connected to.
pub struct Connected {
    /// The driver.
    pub driver: AnyDriver,
    /// Every endpoint candidate, in the order tried.
    pub candidates: Vec<Candidate>,
}

fn engine_failed(e: impl std::fmt::Display) -> Fail {
    Fail {
        code: 1,
        message: e.to_string(),
    }
}

/// Runs `f` on a two-thread runtime (this machine's size).
pub fn block_on<F: Future>(f: F) -> Result<F::Output, Fail> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Fail {
            code: 1,
            message: format!("cannot start the async runtime: {e}"),
        })?;
    Ok(runtime.block_on(f))
}

async fn gather_with<D: SandboxDriver>(driver: &D, dump: Option<&PathBuf>) -> Result<Facts, Fail> {
    let gathered = driver.gather_facts().await.map_err(engine_failed)?;
    if let Some(path) = dump {
        let text = to_json(&gathered.document)?;
        std::fs::write(path, text + "\n").map_err(|e| Fail {
            code: 1,
            message: format!("cannot write {}: {e}", path.display()),
        })?;
    }
    Ok(gathered.facts)
}

impl AnyDriver {
    /// `docker` or `podman`.
    pub fn name(&self) -> &'static str {
        match self {
            AnyDriver::Docker(d) => d.name(),
            AnyDriver::Podman(d) => d.name(),
        }
    }

    /// Gathers the facts, writing the facts document to `dump` when asked.
    pub async fn gather(&self, dump: Option<&PathBuf>) -> Result<Facts, Fail> {
        match self {
            AnyDriver::Docker(d) => gather_with(d, dump).await,
            AnyDriver::Podman(d) => gather_with(d, dump).await,
        }
    }
}

async fn discover(
    driver: Driver,
    args: &EngineArgs,
    env: &DiscoveryEnv,
    timeout: Duration,
) -> Result<Discovery, Fail> {
    let endpoint = args.endpoint.as_deref();
    match driver {
        Driver::Docker => openshell_driver_docker::discover(endpoint, env, timeout)
            .await
            .map_err(|e| usage(e.to_string())),
        Driver::Podman => openshell_driver_podman::discover(endpoint, env, timeout)
            .await
            .map_err(|e| usage(e.to_string())),
    }
}

/// Finds and connects to the engine. With no `--driver`, Docker's discovery order runs first
/// (it also knows Podman's sockets), then Podman's (for `CONTAINER_HOST` and Podman
/// connections); the first engine that answers decides the driver. Exit 3 when none answers.
pub async fn connect(args: &EngineArgs) -> Result<Connected, Fail> {
    let timeout = Duration::from_secs(args.timeout.max(1));
    let env = crate::process_env()?;
    let order: Vec<Driver> = match args.driver {
        Some(d) => vec![d],
        None => vec![Driver::Docker, Driver::Podman],
    };
    let mut candidates = Vec::new();
    for driver in order {
        let found = discover(driver, args, &env, timeout).await?;
        candidates.extend(found.candidates);
        let Some(chosen) = found.chosen else { continue };
        let driver = match driver {
            Driver::Docker => {
                let opts = DockerOptions {
                    network: args.network.clone(),
                    timeout,
                    host: None,
                };
                AnyDriver::Docker(
                    DockerDriver::connect(chosen, opts)
                        .await
                        .map_err(engine_failed)?,
                )
            }
            Driver::Podman => {
                let opts = PodmanOptions {
                    network: args.network.clone(),
                    timeout,
                    host: None,
                };
                AnyDriver::Podman(PodmanDriver::connect(chosen, opts).map_err(engine_failed)?)
            }
        };
        return Ok(Connected { driver, candidates });
    }
    Err(Fail {
        code: 3,
        message: format!(
            "no container engine answered; looked at:\n{}",
            candidates_text(&candidates)
        ),
    })
}
