//! Live mode: find the engine, pick the driver, gather the facts (and dump them on request).

use std::path::PathBuf;
use std::time::Duration;

use openshell_driver_docker::{DockerDriver, DockerOptions};
use openshell_driver_podman::{PodmanDriver, PodmanOptions};
use openshell_runtime::Facts;
use openshell_sandbox::{Candidate, Discovery, DiscoveryEnv, SandboxDriver};

use crate::report::candidates_text;
use crate::{to_json, usage, Driver, Fail};

/// What live mode found.
pub struct Live {
    /// The facts.
    pub facts: Facts,
    /// Every endpoint candidate, in the order tried.
    pub candidates: Vec<Candidate>,
    /// Which driver spoke to the engine.
    pub driver: &'static str,
}

/// How live mode runs.
pub struct LiveArgs<'a> {
    /// `--driver`; `None` picks by discovery.
    pub driver: Option<Driver>,
    /// `--endpoint`.
    pub endpoint: Option<&'a str>,
    /// `--dump-facts`.
    pub dump: Option<&'a PathBuf>,
    /// `--network`.
    pub network: &'a str,
    /// Per-call timeout.
    pub timeout: Duration,
}

fn engine_failed(e: impl std::fmt::Display) -> Fail {
    Fail {
        code: 1,
        message: e.to_string(),
    }
}

async fn gather<D: SandboxDriver>(driver: D, dump: Option<&PathBuf>) -> Result<Facts, Fail> {
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

async fn discover(
    driver: Driver,
    args: &LiveArgs<'_>,
    env: &DiscoveryEnv,
) -> Result<Discovery, Fail> {
    match driver {
        Driver::Docker => openshell_driver_docker::discover(args.endpoint, env, args.timeout)
            .await
            .map_err(|e| usage(e.to_string())),
        Driver::Podman => openshell_driver_podman::discover(args.endpoint, env, args.timeout)
            .await
            .map_err(|e| usage(e.to_string())),
    }
}

/// Runs live mode. With no `--driver`, Docker's discovery order runs first (it also knows
/// Podman's sockets), then Podman's (for `CONTAINER_HOST` and Podman connections); the first
/// engine that answers decides the driver. Exit 3 when none answers.
pub fn run(args: LiveArgs<'_>) -> Result<Live, Fail> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Fail {
            code: 1,
            message: format!("cannot start the async runtime: {e}"),
        })?;
    runtime.block_on(async {
        let env = DiscoveryEnv::from_process();
        let order: Vec<Driver> = match args.driver {
            Some(d) => vec![d],
            None => vec![Driver::Docker, Driver::Podman],
        };
        let mut candidates = Vec::new();
        for driver in order {
            let found = discover(driver, &args, &env).await?;
            candidates.extend(found.candidates);
            let Some(chosen) = found.chosen else { continue };
            let facts = match driver {
                Driver::Docker => {
                    let opts = DockerOptions {
                        network: args.network.to_string(),
                        timeout: args.timeout,
                        host: None,
                    };
                    gather(
                        DockerDriver::connect(chosen, opts)
                            .await
                            .map_err(engine_failed)?,
                        args.dump,
                    )
                    .await?
                }
                Driver::Podman => {
                    let opts = PodmanOptions {
                        network: args.network.to_string(),
                        timeout: args.timeout,
                        host: None,
                    };
                    gather(
                        PodmanDriver::connect(chosen, opts).map_err(engine_failed)?,
                        args.dump,
                    )
                    .await?
                }
            };
            let name = match driver {
                Driver::Docker => "docker",
                Driver::Podman => "podman",
            };
            return Ok(Live {
                facts,
                candidates,
                driver: name,
            });
        }
        Err(Fail {
            code: 3,
            message: format!(
                "no container engine answered; looked at:\n{}",
                candidates_text(&candidates)
            ),
        })
    })
}
