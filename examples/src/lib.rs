//! The two small things every backend example needs besides the library itself: finding the
//! backend's own socket on this machine, and serving its recorded capture when it is absent.
//! The flow (connect, decide, create a sandbox, wait for its callback, delete) is written out
//! in each example, as a gateway would write it.

use std::error::Error;
use std::path::Path;

use openshell_engine::discover::sockets_of;
use openshell_engine::DiscoveryEnv;
use openshell_runtime::{Decision, HostOs, RuntimeId};
use openshell_sandbox::HostFacts;
use openshell_tests::replay::ReplayEngine;

/// The first of `runtime`'s well-known sockets (its `SOCKETS` data) that exists here.
pub fn local_socket(runtime: RuntimeId, env: &DiscoveryEnv) -> Option<String> {
    sockets_of(runtime, env)
        .into_iter()
        .map(|(endpoint, _)| endpoint.to_string())
        .find(|e| {
            e.strip_prefix("unix://")
                .is_some_and(|p| Path::new(p).exists())
        })
}

/// A recorded capture (under `tests/fixtures/`) served over a Unix socket by the replay
/// engine, which answers the facts calls as the recorded engine did and runs no containers.
#[derive(Debug)]
pub struct Replay {
    engine: ReplayEngine,
    host: HostFacts,
}

impl Replay {
    /// Starts serving `capture`.
    pub async fn start(capture: &str) -> Result<Replay, Box<dyn Error>> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures")
            .join(capture);
        let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
        let recorded = openshell_runtime::Facts::from_value(&doc)?;
        Ok(Replay {
            engine: ReplayEngine::start(&doc).await?,
            host: HostFacts {
                os: recorded.host_os.unwrap_or(HostOs::Linux),
                ipv4: recorded.host_ipv4,
            },
        })
    }

    /// The replay engine's endpoint.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.engine.socket().display())
    }

    /// The recorded machine's host facts (its OS and primary address, not this machine's).
    pub fn host(&self) -> HostFacts {
        self.host.clone()
    }
}

/// Prints the decision: the runtime, the evidence for it, and the route or the refusal.
pub fn explain(decision: &Decision) {
    match &decision.detection.winner {
        Some(w) => {
            println!("runtime: {}", decision.runtime_id().unwrap_or("-"));
            for e in &w.evidence {
                println!("  because {} = {}: {}", e.fact, e.value, e.meaning);
            }
        }
        None => println!("runtime: not recognised"),
    }
    match &decision.route {
        Ok(route) => {
            println!("host.openshell.internal -> {}", route.openshell_host);
            let bind = route
                .bind
                .map_or("(its own choice)".into(), |b| b.to_string());
            println!(
                "gateway binds {bind}; sandboxes call {}",
                route.sandbox_endpoint()
            );
            for f in &decision.fallbacks {
                println!(
                    "fallback if a probe fails: {} (gateway on {})",
                    f.openshell_host,
                    f.bind
                        .map_or("its own address".to_string(), |b| b.to_string())
                );
            }
        }
        Err(e) => println!("no route (the policy refuses to guess): {e}"),
    }
}

/// The image sandboxes run: `OPENSHELL_EXAMPLE_IMAGE`, else the probe's busybox (pulled when
/// missing). It needs busybox's `sh`, `timeout` and `wget`.
pub fn sandbox_image() -> String {
    std::env::var("OPENSHELL_EXAMPLE_IMAGE")
        .unwrap_or_else(|_| "docker.io/library/busybox:1.36".to_string())
}
