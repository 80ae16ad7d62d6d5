//! A gateway's whole job with this library, for any backend: connect to the engine, decide the
//! route, listen where it says, run a sandbox along it, wait for its callback, clean up.
//!
//! Run: `cargo run -p openshell-examples --example sandbox -- <backend> [auto|direct|relay]`,
//! with a backend from [`BACKENDS`] (`native-docker`, `podman`, `docker-desktop`, `colima`,
//! `orbstack`, `podman-machine`; default `native-docker`) and the kind of route to choose
//! (default `auto`). The gateway side is one handle, [`Gateway`]: it binds the callback listener
//! where the route says and, when the decision is the relay route, starts the relay on the
//! sandbox network and creates each sandbox along the route the relay carries (the relay binary
//! from `OPENSHELL_RELAY_BINARY`, see docs/relay.md); the example never branches on the route. When that backend is on this machine (one of its
//! runtime's well-known sockets answers) the sandbox really runs and calls back; otherwise its
//! recorded capture is replayed through the same driver and the example stops after the
//! decision (a replay answers the facts calls and runs no containers).
//! `OPENSHELL_EXAMPLE_IMAGE` names the sandbox image (busybox's `sh`, `timeout`, `wget`).

use std::error::Error;
use std::time::Duration;

use openshell_engine::{connect, ConnectOptions, DriverKind};
use openshell_examples::{explain, local_socket, sandbox_image, Replay};
use openshell_runtime::{decide, Registry, RouteContext, RouteKindChoice, RuntimeId};
use openshell_sandbox::{
    new_token, sandbox_command, Gateway, GatewayOptions, RelayOptions, SandboxSpec,
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
    let kind = match std::env::args().nth(2).as_deref() {
        None | Some("auto") => RouteKindChoice::Auto,
        Some("direct") => RouteKindChoice::Direct,
        Some("relay") => RouteKindChoice::Relay,
        Some(other) => return Err(format!("route kind {other:?}: auto, direct or relay").into()),
    };

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
    let driver = engine.driver;

    // 2. Decide: facts in, runtime with evidence and route out.
    let mut facts = engine.gathered.facts.clone();
    facts.overrides.route_kind = kind;
    let decision = decide(&Registry::builtin(), &facts, &RouteContext::default());
    explain(&decision);
    if decision.runtime_id() != Some(runtime.as_str()) {
        driver.remove_network().await?;
        return Err(format!("expected {runtime}, got {:?}", decision.runtime_id()).into());
    }
    let route = decision.route?;
    if replay.is_some() {
        return Ok(());
    }

    // 3. The gateway side of the route: the callback listener bound exactly where the route
    //    says, and the relay when the route is one. Then a sandbox along it, and its callback.
    let spec = SandboxSpec {
        id: format!("example-{}", std::process::id()),
        image: sandbox_image(),
        command: sandbox_command(20),
        token: new_token()?,
        labels: Default::default(),
    };
    let relay = RelayOptions::from_env(0)?;
    let opts = GatewayOptions {
        relay,
        ..GatewayOptions::default()
    };
    let run = async {
        driver.ensure_image(&spec.image).await?;
        let mut gateway = Gateway::start(&driver, &route, opts).await?;
        if let Some(relay) = gateway.relay() {
            println!("relay: {} on the sandbox network", relay.address()?);
        }
        let bind = gateway.route().bind;
        let called = async {
            let sandbox = gateway.create(&spec).await?;
            let arrived = match driver.start(&sandbox).await {
                Ok(()) => gateway
                    .wait_for(&spec.id, Duration::from_secs(30))
                    .await
                    .map_err(Box::<dyn Error>::from),
                Err(e) => Err(e.into()),
            };
            driver.delete(&sandbox).await?;
            arrived
        }
        .await;
        // Whatever happened, the relay goes too.
        gateway.shutdown().await?;
        Ok::<_, Box<dyn Error>>((called?, bind))
    };
    // 4. Whatever happened, remove our network too.
    let result = run.await;
    driver.remove_network().await?;
    let (arrival, bind) = result?;
    println!(
        "sandbox {} called back from {} (gateway on {})",
        arrival.sandbox_id,
        arrival.peer,
        bind.map_or("-".into(), |b| b.to_string())
    );
    Ok(())
}
