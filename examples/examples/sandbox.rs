//! A gateway's whole job with this library, for any backend: connect to the engine, decide the
//! route, listen where it says, run a sandbox along it, wait for its callback, clean up.
//!
//! Run: `cargo run -p openshell-examples --example sandbox -- <backend>`, with a backend from
//! [`BACKENDS`] (`native-docker`, `podman`, `docker-desktop`, `colima`, `orbstack`,
//! `podman-machine`; default `native-docker`). When that backend is on this machine (one of its
//! runtime's well-known sockets answers) the sandbox really runs and calls back; otherwise its
//! recorded capture is replayed through the same driver and the example stops after the
//! decision (a replay answers the facts calls and runs no containers).
//! `OPENSHELL_EXAMPLE_IMAGE` names the sandbox image (busybox's `sh`, `timeout`, `wget`).

use std::error::Error;
use std::time::Duration;

use openshell_engine::{connect, ConnectOptions, DriverKind};
use openshell_examples::{explain, local_socket, sandbox_image, Replay};
use openshell_runtime::{decide, Registry, RouteContext, RuntimeId};
use openshell_sandbox::{
    new_token, sandbox_command, CallbackListener, ListenerOptions, SandboxDriver, SandboxSpec,
};

/// Each backend: its runtime, the API the example speaks to it, and its recorded capture
/// (under `tests/fixtures/`) for machines that do not have it.
const BACKENDS: &[(RuntimeId, DriverKind, &str)] = &[
    // The sandbox bridge's gateway address on both sides.
    (RuntimeId::NativeDocker, DriverKind::Docker, "native-docker/debian12-docker.io-20.10.24-this-machine.json"),
    // Rootful Podman through libpod: the bridge gateway as a literal (never host-gateway on 4.3).
    (RuntimeId::Podman, DriverKind::Podman, "podman/debian12-podman-4.3.1-rootful-this-machine.json"),
    // host-gateway with the gateway on loopback, literal fallbacks.
    (RuntimeId::DockerDesktop, DriverKind::Docker, "docker-desktop/dd-4.10.1-20.10.17-macos-x86_64-cygnu7-belajar-docker.json"),
    // host-gateway is 192.168.5.2, which reaches the Mac's loopback.
    (RuntimeId::Colima, DriverKind::Docker, "colima/colima-29.5.2-ubuntu24.04-macos-arm64-host-lima-internal-proxy-anysoft-qinglong.json"),
    (RuntimeId::OrbStack, DriverKind::Docker, "orbstack/orbstack-28.5.2-macos-x86_64-sanghwa-na-codyssey.json"),
    // The original bug: Podman behind the Docker API on a Mac, routed through gvproxy.
    (RuntimeId::PodmanMachine, DriverKind::Docker, "podman-machine/podman-machine-4.6.1-macos-qemu-ping-headers-podman-19767.json"),
];

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let wanted = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "native-docker".into());
    let &(runtime, driver_kind, capture) = BACKENDS
        .iter()
        .find(|(id, _, _)| id.as_str() == wanted)
        .ok_or_else(|| format!("unknown backend {wanted:?}; see BACKENDS in this example"))?;

    // 1. Connect: this machine's engine if it is here, else the backend's recorded capture.
    let mut opts = ConnectOptions::from_process()?;
    opts.driver_options.network = "openshell-example".into();
    opts.driver = Some(driver_kind);
    let replay = match local_socket(runtime, &opts.env) {
        Some(socket) => {
            println!("live: {socket}");
            opts.endpoint = Some(socket);
            None
        }
        None => {
            let replay = Replay::start(capture).await?;
            println!("replayed: tests/fixtures/{capture} (no {runtime} here)");
            opts.endpoint = Some(replay.endpoint());
            opts.driver_options.host = Some(replay.host());
            Some(replay)
        }
    };
    let engine = connect(&opts).await?;
    let driver = engine.driver.ok_or("no driver connects to this endpoint")?;

    // 2. Decide: facts in, runtime with evidence and route out.
    let decision = decide(
        &Registry::builtin(),
        &engine.gathered.facts,
        &RouteContext::default(),
    );
    explain(&decision);
    if decision.runtime_id() != Some(runtime.as_str()) {
        driver.remove_network().await?;
        return Err(format!("expected {runtime}, got {:?}", decision.runtime_id()).into());
    }
    let route = decision.route?;
    if replay.is_some() {
        return Ok(());
    }

    // 3. Listen exactly where the route says, run a sandbox along it, wait for its callback.
    let mut listener = CallbackListener::bind(&route, ListenerOptions::default()).await?;
    let spec = SandboxSpec {
        id: format!("example-{}", std::process::id()),
        image: sandbox_image(),
        command: sandbox_command(20),
        token: new_token()?,
        labels: Default::default(),
    };
    listener.expect(&spec.id, &spec.token);
    let run = async {
        driver.ensure_image(&spec.image).await?;
        let sandbox = driver.create(&spec, listener.route()).await?;
        let arrived = match driver.start(&sandbox).await {
            Ok(()) => listener
                .wait_for(&spec.id, Duration::from_secs(30))
                .await
                .map_err(Box::<dyn Error>::from),
            Err(e) => Err(e.into()),
        };
        driver.delete(&sandbox).await?;
        arrived
    };
    // 4. Whatever happened, remove our network too.
    let arrived = run.await;
    driver.remove_network().await?;
    let arrival = arrived?;
    println!(
        "sandbox {} called back from {}",
        arrival.sandbox_id, arrival.peer
    );
    Ok(())
}
