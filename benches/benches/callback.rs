//! Sandbox create until callback received, through each driver, side by side with `docker run`
//! / `podman run` of the same image doing the same callback; then 1, 8 and 32 sandboxes created
//! concurrently until all called back and were deleted. Each engine runs on the sandbox bridge
//! and again with host networking (`network_mode: host` / `netns: host`), where the route is
//! the host-network one.
//!
//! `cargo bench -p openshell-benches --bench callback` runs it in full (needs dockerd and
//! Podman, see scripts/engines.sh) and prints a Markdown table for docs/performance.md. Under
//! `cargo test` it runs one small round, so CI keeps it working; its numbers are never gated.

use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use openshell_engine::{connect_to, DriverKind};
use openshell_runtime::{NetworkMode, RouteKindChoice};
use openshell_sandbox::DriverOptions;
use openshell_sandbox::{
    sandbox_command, CallbackListener, ListenerOptions, SandboxDriver, SandboxSpec,
};
use openshell_tests::live::{self, Engine};

mod common;

use common::{create_to_callback, median, ms, route_of, runtime, WAIT};

fn spec(image: &str) -> SandboxSpec {
    common::spec("bench", image, sandbox_command(60))
}

/// One sandbox through the driver: create, start, callback received, delete.
async fn through_driver(
    driver: &SandboxDriver,
    listener: &mut CallbackListener,
    image: &str,
) -> Duration {
    let route = listener.route().clone();
    create_to_callback(driver, listener, &route, &spec(image)).await
}

/// The same sandbox through the engine's CLI (`docker run` / `podman run`).
async fn through_cli(
    engine: &Engine,
    network: &str,
    listener: &mut CallbackListener,
    image: &str,
) -> Duration {
    let route = listener.route().clone();
    let s = spec(image);
    listener.expect(&s.id, &s.token);
    let network = match route.network_mode() {
        NetworkMode::Bridge => network,
        NetworkMode::Host => "host",
    };
    let mut cmd = Command::new(&engine.cli[0]);
    cmd.args(&engine.cli[1..])
        .args(["run", "--rm", "--network", network]);
    for h in route.extra_hosts() {
        cmd.args(["--add-host", &h.to_string()]);
    }
    for (k, v) in s.env(&route) {
        cmd.args(["-e", &format!("{k}={v}")]);
    }
    cmd.arg(image).args(&s.command);
    let t0 = Instant::now();
    let child = tokio::task::spawn_blocking(move || cmd.output());
    listener
        .wait_for(&s.id, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let took = t0.elapsed();
    let _ = child.await;
    took
}

/// `n` sandboxes at once: all created and started concurrently, all called back, all deleted.
async fn scale(
    driver: &SandboxDriver,
    listener: &mut CallbackListener,
    image: &str,
    n: usize,
) -> Duration {
    let route = listener.route().clone();
    let specs: Vec<SandboxSpec> = (0..n).map(|_| spec(image)).collect();
    for s in &specs {
        listener.expect(&s.id, &s.token);
    }
    let t0 = Instant::now();
    let handles = join_all(specs.iter().map(|s| async {
        let h = driver
            .create(s, &route)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        driver.start(&h).await.unwrap_or_else(|e| panic!("{e}"));
        h
    }))
    .await;
    for s in &specs {
        listener
            .wait_for(&s.id, WAIT)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    join_all(handles.iter().map(|h| driver.delete(h))).await;
    let took = t0.elapsed();
    let left = driver.list().await.unwrap_or_default();
    assert!(
        specs.iter().all(|s| left.iter().all(|l| l.id != s.id)),
        "sandboxes left behind"
    );
    took
}

async fn bench_engine(
    engine: &Engine,
    driver: SandboxDriver,
    label: &str,
    rounds: usize,
    scales: &[usize],
) {
    bench_mode(engine, &driver, label, NetworkMode::Bridge, rounds, scales).await;
    // Host networking: the same rounds, no scale runs (the namespace is shared, not created).
    bench_mode(engine, &driver, label, NetworkMode::Host, rounds, &[]).await;
    let _ = driver.remove_network().await;
}

async fn bench_mode(
    engine: &Engine,
    driver: &SandboxDriver,
    label: &str,
    mode: NetworkMode,
    rounds: usize,
    scales: &[usize],
) {
    let image = live::import_busybox(engine).unwrap_or_else(|e| panic!("{e}"));
    let route = route_of(driver, mode, RouteKindChoice::Auto).await;
    let mut listener = CallbackListener::bind(&route, ListenerOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut via_driver = Vec::new();
    let mut via_cli = Vec::new();
    for _ in 0..rounds {
        via_driver.push(through_driver(driver, &mut listener, &image).await);
        via_cli.push(through_cli(engine, driver.network(), &mut listener, &image).await);
    }
    let (d, c) = (median(via_driver), median(via_cli));
    let ratio = d.as_secs_f64() / c.as_secs_f64().max(1e-9);
    println!(
        "| {} via {label}, {mode} network | {} | {} (`{} run`) | {ratio:.2}x |",
        engine.name,
        ms(d),
        ms(c),
        engine.cli.last().map_or("", String::as_str)
    );
    for &n in scales {
        let took = scale(driver, &mut listener, &image, n).await;
        println!(
            "| {} via {label}: {n} concurrent | {} total | {} per sandbox | |",
            engine.name,
            ms(took),
            ms(took / n as u32)
        );
    }
    drop(listener);
    live::remove_image(engine, &image);
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (rounds, scales): (usize, &[usize]) = if full { (9, &[1, 8, 32]) } else { (1, &[2]) };
    runtime().block_on(async {
        println!("| scenario | through the driver | through the CLI | ratio |");
        println!("|---|---|---|---|");
        let timeout = Duration::from_secs(30);
        // A network of its own for each engine and driver.
        let opts = || DriverOptions {
            network: live::unique("openshell-bench"),
            timeout,
            host: None,
        };
        let dockerd = live::dockerd();
        if dockerd.available() {
            let d = connect_to(DriverKind::Docker, dockerd.endpoint(), opts())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            bench_engine(&dockerd, d, "Docker driver", rounds, scales).await;
        }
        let podman = live::podman();
        if podman.available() {
            let d = connect_to(DriverKind::Docker, podman.endpoint(), opts())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            bench_engine(&podman, d, "Docker driver", rounds, scales).await;
            let p = connect_to(DriverKind::Podman, podman.endpoint(), opts())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            bench_engine(&podman, p, "Podman driver", rounds, scales).await;
        }
    });
}
