//! Colima: recognised by its VM hostname or socket; host-gateway is 192.168.5.2, which reaches the Mac's loopback.
//!
//! Run: `cargo run -p openshell-examples --example colima`. With Colima on this machine it
//! runs a sandbox through the Docker API (bollard) that calls back to a listener bound where the route says; without it, it
//! replays the recorded capture and stops after the decision (a replay runs no containers).
//! `OPENSHELL_EXAMPLE_IMAGE` names the sandbox image (busybox's `sh`, `timeout`, `wget`).

use std::error::Error;
use std::time::Duration;

use openshell_engine::{connect, ConnectOptions, DriverKind};
use openshell_examples::{explain, local_socket, sandbox_image, Replay};
use openshell_runtime::{decide, Registry, RouteContext, RuntimeId};
use openshell_sandbox::{
    new_token, sandbox_command, CallbackListener, ListenerOptions, SandboxDriver, SandboxSpec,
};

const RUNTIME: RuntimeId = RuntimeId::Colima;
const CAPTURE: &str =
    "colima/colima-29.5.2-ubuntu24.04-macos-arm64-host-lima-internal-proxy-anysoft-qinglong.json";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    // 1. Connect: this machine's Colima if it is here, else its recorded capture.
    let mut opts = ConnectOptions::from_process()?;
    opts.driver_options.network = "openshell-example".into();
    opts.driver = Some(DriverKind::Docker);
    let replay = match local_socket(RUNTIME, &opts.env) {
        Some(socket) => {
            println!("live: {socket}");
            opts.endpoint = Some(socket);
            None
        }
        None => {
            let replay = Replay::start(CAPTURE).await?;
            println!("replayed: tests/fixtures/{CAPTURE} (no Colima here)");
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
    if decision.runtime_id() != Some(RUNTIME.as_str()) {
        driver.remove_network().await?;
        return Err(format!("expected {RUNTIME}, got {:?}", decision.runtime_id()).into());
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
