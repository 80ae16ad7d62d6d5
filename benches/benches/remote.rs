//! Latency over the wire (issue 14): detect and sandbox create→callback against the namespaced
//! engines of `scripts/remote.sh` over `tcp://` with TLS and `ssh://`, next to the local
//! sockets. "Detect" is what `detect` does past discovery: connect the driver, gather the
//! engine's facts, decide, each time with connections (and an ssh session) of its own, as a
//! new process has. "Create→callback" is one sandbox created, started and called back
//! through the relay (the remote engines' route) to a listener on 127.0.0.1, measured until the
//! callback arrives; on the local dockerd also along the decided direct bridge route. The
//! relay's start (image check or import, container create, attach) is reported on its own.
//!
//! `cargo bench -p openshell-benches --bench remote` prints a Markdown table for
//! docs/performance.md (needs `scripts/remote.sh up`, dockerd and Podman; the relay is the
//! embedded one unless `OPENSHELL_RELAY_BINARY` names another). Under `cargo test` it runs one round, so CI keeps it working;
//! without the remote engine it skips (or fails under `OPENSHELL_LIVE=require`). Everything
//! made on the engines is removed; relay images only on the remote ones (the local engines'
//! are shared with other runs). `OPENSHELL_BENCH_ONLY=<text>` runs only the rows whose label
//! contains it; `OPENSHELL_BENCH_PHASES=1` prints each create→callback's phases (create, start,
//! callback) to stderr.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use openshell_engine::{connect_to, DriverKind};
use openshell_runtime::facts::Endpoint;
use openshell_runtime::{NetworkMode, Route, RouteKindChoice};
use openshell_sandbox::{
    sandbox_command, CallbackListener, DriverOptions, ListenerOptions, Relay, RelayOptions,
    SandboxDriver,
};
use openshell_tests::live::{self, remote_setting, Engine};
use openshell_transport::ssh::{user_of, SshSettings};
use openshell_transport::tls::{TlsFiles, TlsMaterial};
use openshell_transport::Target;

mod common;

use common::{median, ms, route_of, runtime};

/// The route a gateway would use: decided from live facts, the relay when `relay` (forced on a
/// local engine, decided on a remote one).
async fn route(driver: &SandboxDriver, relay: bool) -> Route {
    let kind = if relay {
        RouteKindChoice::Relay
    } else {
        RouteKindChoice::Auto
    };
    route_of(driver, NetworkMode::Bridge, kind).await
}

/// One sandbox: create, start, callback received (timed), delete.
async fn create_to_callback(
    driver: &SandboxDriver,
    listener: &mut CallbackListener,
    route: &Route,
    image: &str,
) -> Duration {
    let s = common::spec("bench-remote", image, sandbox_command(60));
    common::create_to_callback(driver, listener, route, &s).await
}

/// One engine behind one transport: detect `rounds` times, then `rounds` sandboxes through the
/// relay (and along the direct route when `direct`); prints one table row each.
async fn bench<F, Fut>(engine: &Engine, label: &str, connect: F, rounds: usize, direct: bool)
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = SandboxDriver>,
{
    // `OPENSHELL_BENCH_ONLY=<text>`: only the rows whose label contains it.
    if std::env::var("OPENSHELL_BENCH_ONLY").is_ok_and(|only| !label.contains(&only)) {
        return;
    }
    eprintln!("{label}");
    let network = live::unique("openshell-bench-remote");
    // The network first, so that detection measures a gateway's later starts.
    let driver = connect(network.clone()).await;
    driver
        .ensure_network()
        .await
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    let mut detect = Vec::new();
    for _ in 0..rounds {
        let t0 = Instant::now();
        let d = connect(network.clone()).await;
        let _ = route(&d, false).await;
        detect.push(t0.elapsed());
    }
    let image = live::import_busybox(engine).unwrap_or_else(|e| panic!("{label}: {e}"));
    let relay_route = route(&driver, true).await;
    let mut listener = CallbackListener::bind(&relay_route, ListenerOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    let ops = driver.clone();
    let opts = RelayOptions::from_env(listener.route().port).unwrap_or_else(|e| panic!("{e}"));
    let t0 = Instant::now();
    let relay = Relay::start(ops, opts)
        .await
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    let relay_start = t0.elapsed();
    let carried = relay
        .route(listener.route())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut via_relay = Vec::new();
    for _ in 0..rounds {
        via_relay.push(create_to_callback(&driver, &mut listener, &carried, &image).await);
    }
    relay
        .shutdown()
        .await
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    drop(listener);
    let direct_cell = if direct {
        let route = route(&driver, false).await;
        let mut listener = CallbackListener::bind(&route, ListenerOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        let route = listener.route().clone();
        let mut times = Vec::new();
        for _ in 0..rounds {
            times.push(create_to_callback(&driver, &mut listener, &route, &image).await);
        }
        ms(median(times))
    } else {
        "-".into()
    };
    let _ = driver.remove_network().await;
    live::remove_image(engine, &image);
    println!(
        "| {label} | {} | {} | {} | {direct_cell} |",
        ms(median(detect)),
        ms(relay_start),
        ms(median(via_relay)),
    );
}

/// One engine call (`/_ping`, answered at once) on `target`'s kept connection (after its
/// session and connection are up: every call of a run past its first), and on a new target
/// each time (a connect and handshake, for ssh a session, per call: what every call cost before
/// connections were kept). Prints one row of the second table.
async fn calls(label: &str, target: &Target, rounds: usize) {
    let timeout = Duration::from_secs(30);
    let ping = |t: Target| async move {
        let t0 = Instant::now();
        let r = openshell_transport::raw::get(&t, "/_ping", timeout)
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(r.status, 200, "{label}");
        t0.elapsed()
    };
    ping(target.clone()).await;
    let mut kept = Vec::new();
    for _ in 0..rounds * 5 {
        kept.push(ping(target.clone()).await);
    }
    let mut fresh = Vec::new();
    for _ in 0..rounds {
        // A target changed in any way (here: not at all) shares nothing with the old one.
        fresh.push(ping(target.clone().map_endpoint(|e| e)).await);
    }
    let kept = median(kept);
    let fresh = median(fresh);
    println!(
        "| {label} | {:.2} ms | {:.1} ms | {:.0}x |",
        kept.as_secs_f64() * 1000.0,
        fresh.as_secs_f64() * 1000.0,
        fresh.as_secs_f64() / kept.as_secs_f64().max(1e-9)
    );
}

fn docker_on(
    target: Target,
) -> impl Fn(String) -> std::pin::Pin<Box<dyn Future<Output = SandboxDriver>>> {
    move |network| {
        // A target of its own: each connect pays its connections (and ssh session), as a new
        // gateway process does.
        let target = target.clone().map_endpoint(|e| e);
        Box::pin(async move {
            connect_to(DriverKind::Docker, target, options(network))
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        })
    }
}

fn podman_on(
    target: Target,
) -> impl Fn(String) -> std::pin::Pin<Box<dyn Future<Output = SandboxDriver>>> {
    move |network| {
        // A target of its own: each connect pays its connections (and ssh session), as a new
        // gateway process does.
        let target = target.clone().map_endpoint(|e| e);
        Box::pin(async move {
            connect_to(DriverKind::Podman, target, options(network))
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        })
    }
}

fn options(network: String) -> DriverOptions {
    DriverOptions {
        network,
        timeout: Duration::from_secs(30),
        host: None,
    }
}

fn ssh_target(settings: &BTreeMap<String, String>, raw: &str) -> Target {
    let endpoint = Endpoint::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
    Target::new(endpoint).with_ssh(SshSettings {
        user: user_of(raw),
        config: Some(PathBuf::from(remote_setting(
            settings,
            "OPENSHELL_REMOTE_SSH_CONFIG",
        ))),
        ..SshSettings::default()
    })
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let rounds = if full { 7 } else { 1 };
    let Some(settings) = live::remote_settings() else {
        return;
    };
    runtime().block_on(async {
        println!("| engine, transport | detect | relay start | create→callback, relay | create→callback, direct |");
        println!("|---|---|---|---|---|");
        let mut call_rows = Vec::new();
        let dockerd = live::dockerd();
        if dockerd.available() {
            call_rows.push(("local dockerd, unix socket", Target::new(dockerd.endpoint())));
            bench(&dockerd, "local dockerd, unix socket", docker_on(Target::new(dockerd.endpoint())), rounds, true).await;
        }
        let remote = live::remote_dockerd(&settings);
        if remote.available() {
            let certs = PathBuf::from(remote_setting(&settings, "OPENSHELL_REMOTE_DOCKER_CERT_PATH"));
            let tls = TlsMaterial::load(&certs, "DOCKER_CERT_PATH").unwrap_or_else(|e| panic!("{e}"));
            let tcp = remote_setting(&settings, "OPENSHELL_REMOTE_DOCKER_TCP");
            let tcp = Target::new(Endpoint::parse(&tcp).unwrap_or_else(|e| panic!("{e}"))).with_tls(tls);
            let ssh = remote_setting(&settings, "OPENSHELL_REMOTE_DOCKER_SSH");
            let forwarded = format!("{ssh}{}", remote_setting(&settings, "OPENSHELL_REMOTE_DOCKER_SOCKET"));
            bench(&remote, "remote dockerd, tcp:// TLS", docker_on(tcp.clone()), rounds, false).await;
            bench(&remote, "remote dockerd, ssh:// dial-stdio", docker_on(ssh_target(&settings, &ssh)), rounds, false).await;
            bench(&remote, "remote dockerd, ssh:// forwarded socket", docker_on(ssh_target(&settings, &forwarded)), rounds, false).await;
            call_rows.push(("remote dockerd, tcp:// TLS", tcp));
            call_rows.push(("remote dockerd, ssh:// dial-stdio", ssh_target(&settings, &ssh)));
            call_rows.push(("remote dockerd, ssh:// forwarded socket", ssh_target(&settings, &forwarded)));
            live::remove_images_of(&remote, "localhost/openshell-relay");
        }
        let podman = live::podman();
        if podman.available() {
            bench(&podman, "local Podman, unix socket, Podman driver", podman_on(Target::new(podman.endpoint())), rounds, false).await;
        }
        let remote = live::remote_podman(&settings);
        if remote.available() {
            let raw = remote_setting(&settings, "OPENSHELL_REMOTE_PODMAN_SSH");
            bench(&remote, "remote Podman, ssh:// forwarded socket, Podman driver", podman_on(ssh_target(&settings, &raw)), rounds, false).await;
            // TLS named file by file, as a Podman 5.7 connection names it (stunnel terminates
            // it in front of Podman 4.3 here).
            let certs = PathBuf::from(remote_setting(&settings, "OPENSHELL_REMOTE_DOCKER_CERT_PATH"));
            let files = TlsFiles {
                ca: Some(certs.join("ca.pem")),
                cert: Some(certs.join("cert.pem")),
                key: Some(certs.join("key.pem")),
            };
            let tls = TlsMaterial::from_files(&files, "the bench's connection").unwrap_or_else(|e| panic!("{e}"));
            let tcp = remote_setting(&settings, "OPENSHELL_REMOTE_PODMAN_TLS");
            let tcp = Target::new(Endpoint::parse(&tcp).unwrap_or_else(|e| panic!("{e}"))).with_tls(tls);
            bench(&remote, "remote Podman, tcp:// TLS, Podman driver", podman_on(tcp), rounds, false).await;
            live::remove_images_of(&remote, "localhost/openshell-relay");
        }
        println!();
        println!("| engine, transport | one call, kept connection | one call, new connection | ratio |");
        println!("|---|---|---|---|");
        for (label, target) in &call_rows {
            calls(label, target, rounds).await;
        }
    });
}
