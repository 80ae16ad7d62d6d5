//! What every backend example does: find that backend live on this machine, or else replay its
//! recorded capture through the replay engine, and show the library's API on it: a driver
//! gathers facts, `decide` names the runtime with its evidence and returns the route.

use std::path::{Path, PathBuf};
use std::time::Duration;

use openshell_driver_docker::DockerDriver;
use openshell_driver_podman::PodmanDriver;
use openshell_runtime::facts::Endpoint;
use openshell_runtime::{decide, Facts, HostOs, Registry, RouteContext};
use openshell_sandbox::DriverOptions;
use openshell_sandbox::{HostFacts, SandboxDriver};
use openshell_tests::replay::ReplayEngine;

/// Which client library talks to the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// The Docker API (bollard).
    Docker,
    /// libpod (podman-api).
    Libpod,
}

/// One backend an example shows.
#[derive(Debug, Clone)]
pub struct Backend {
    /// The runtime id the policy gives it.
    pub runtime: &'static str,
    /// Sockets where it lives on a user's machine (`~` is the home directory).
    pub sockets: &'static [&'static str],
    /// Its recorded capture, under `tests/fixtures/`.
    pub capture: &'static str,
    /// The client API used.
    pub api: Api,
}

fn expand(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(path),
    }
}

async fn gather(
    api: Api,
    endpoint: Endpoint,
    host: Option<HostFacts>,
) -> Result<Facts, Box<dyn std::error::Error>> {
    let network = format!("openshell-example-{}", std::process::id());
    let timeout = Duration::from_secs(10);
    let facts = match api {
        Api::Docker => {
            let driver = DockerDriver::connect(
                endpoint,
                DriverOptions {
                    network,
                    timeout,
                    host,
                },
            )
            .await?;
            let facts = driver.gather_facts().await?.facts;
            driver.remove_network().await?;
            facts
        }
        Api::Libpod => {
            let driver = PodmanDriver::connect(
                endpoint,
                DriverOptions {
                    network,
                    timeout,
                    host,
                },
            )?;
            let facts = driver.gather_facts().await?.facts;
            driver.remove_network().await?;
            facts
        }
    };
    Ok(facts)
}

fn show(backend: &Backend, facts: &Facts) -> Result<(), Box<dyn std::error::Error>> {
    let decision = decide(&Registry::builtin(), facts, &RouteContext::default());
    let winner = decision
        .detection
        .winner
        .as_ref()
        .ok_or("no runtime recognised")?;
    println!(
        "runtime: {} (expected {})",
        decision.runtime_id().unwrap_or("-"),
        backend.runtime
    );
    for e in &winner.evidence {
        println!("  because {} = {}: {}", e.fact, e.value, e.meaning);
    }
    match &decision.route {
        Ok(route) => {
            println!("host.openshell.internal -> {}", route.openshell_host);
            println!(
                "gateway binds {}",
                route
                    .bind
                    .map_or("(its own choice)".into(), |b| b.to_string())
            );
            println!("sandboxes call {}", route.sandbox_endpoint());
            for h in route.extra_hosts() {
                println!("extra host {h}");
            }
            for f in &decision.fallbacks {
                println!(
                    "fallback if a probe fails: {} (gateway on {:?})",
                    f.openshell_host, f.bind
                );
            }
        }
        Err(e) => println!("no route (the policy refuses to guess): {e}"),
    }
    if decision.runtime_id() != Some(backend.runtime) {
        return Err(format!(
            "expected runtime {}, got {:?}",
            backend.runtime,
            decision.runtime_id()
        )
        .into());
    }
    Ok(())
}

/// Runs the example for `backend`: live when it is on this machine, else from its capture.
pub async fn run(backend: Backend) -> Result<(), Box<dyn std::error::Error>> {
    for socket in backend.sockets.iter().map(|s| expand(s)) {
        if !socket.exists() {
            continue;
        }
        let endpoint = Endpoint::Unix {
            path: socket.display().to_string(),
        };
        match gather(backend.api, endpoint, None).await {
            Ok(facts)
                if decide(&Registry::builtin(), &facts, &RouteContext::default()).runtime_id()
                    == Some(backend.runtime) =>
            {
                println!("live: {} at {}", backend.runtime, socket.display());
                return show(&backend, &facts);
            }
            Ok(_) => println!(
                "{} answers, but it is another runtime; using the capture",
                socket.display()
            ),
            Err(e) => println!(
                "{} did not answer ({e}); using the capture",
                socket.display()
            ),
        }
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(backend.capture);
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    let recorded = Facts::from_value(&doc)?;
    let host = HostFacts {
        os: recorded.host_os.clone().unwrap_or(HostOs::Linux),
        ipv4: recorded.host_ipv4,
    };
    let engine = ReplayEngine::start(&doc).await?;
    println!(
        "replayed: {} from capture tests/fixtures/{} (not on this machine)",
        backend.runtime, backend.capture
    );
    let facts = gather(
        backend.api,
        Endpoint::Unix {
            path: engine.socket().display().to_string(),
        },
        Some(host),
    )
    .await?;
    show(&backend, &facts)
}
