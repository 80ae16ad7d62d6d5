//! Replies no engine sends: every client call (bollard, podman-api, raw requests) must stop
//! reading at the transport's size budget and say so, instead of holding the whole reply in
//! memory (a 2 GB `/info` once took 2.1 GB).

use std::time::{Duration, Instant};

use openshell_engine::{connect_to, DriverKind};
use openshell_runtime::facts::Endpoint;
use openshell_runtime::HostOs;
use openshell_sandbox::{DriverOptions, EngineError, HostFacts};
use openshell_tests::flood::{Flood, FloodEngine};
use openshell_transport::MAX_REPLY;

/// Longest a refused call may take: reading the budget over a Unix socket takes milliseconds.
const BOUND: Duration = Duration::from_secs(15);

async fn refused<T>(what: &str, call: impl std::future::Future<Output = Result<T, EngineError>>) {
    let started = Instant::now();
    match tokio::time::timeout(BOUND, call).await {
        Err(_) => panic!("{what}: no answer within {BOUND:?}"),
        Ok(Ok(_)) => panic!("{what}: succeeded"),
        Ok(Err(e)) => {
            let shown = e.to_string();
            assert!(
                shown.contains(&format!("over {MAX_REPLY} bytes")),
                "{what}: {shown}"
            );
        }
    }
    assert!(started.elapsed() < BOUND, "{what}: {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_replies_fail_with_the_size_error_through_both_clients() {
    for flood in [Flood::Endless, Flood::Declared(64 * 1024 * 1024)] {
        let engine = FloodEngine::start(flood)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let endpoint = Endpoint::Unix {
            path: engine.socket().display().to_string(),
        };
        let opts = DriverOptions {
            host: Some(HostFacts {
                os: HostOs::Linux,
                ipv4: None,
            }),
            timeout: BOUND,
            ..DriverOptions::default()
        };
        let docker = connect_to(DriverKind::Docker, endpoint.clone(), opts.clone())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // `/info` through bollard (and the network inspect beside it), `/containers/json`.
        refused("docker: facts", docker.gather_facts()).await;
        refused("docker: list", docker.list()).await;
        let podman = connect_to(DriverKind::Podman, endpoint, opts)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // libpod's `/info` through a raw request, `/libpod/containers/json` through podman-api.
        refused("podman: facts", podman.gather_facts()).await;
        refused("podman: list", podman.list()).await;
        refused("podman: network", podman.ensure_network()).await;
        // The clients stopped reading near the budget (the rest is what the socket buffers).
        assert!(
            engine.most_written() < 2 * MAX_REPLY,
            "{flood:?}: {} bytes written on one connection",
            engine.most_written()
        );
    }
}
