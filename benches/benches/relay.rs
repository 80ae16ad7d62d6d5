//! The relay route next to the direct bridge route, on the same engine and sandbox network,
//! measured back to back (issue 13's goals: at most 1 ms added at p50 per small request, at
//! least 200 MB/s bulk, all 32 callbacks arriving).
//!
//! The client runs inside a sandbox's network namespace: a thread of this process enters the
//! namespace of a running container on the sandbox network (`setns`, as root) and opens its
//! connections from there, exactly where a sandbox's connections start, so the numbers carry
//! no container start-up or shell. Direct: the client connects to the bridge gateway, where the
//! gateway listens. Relay: it connects to the relay container, which carries each connection
//! to the gateway on 127.0.0.1, measured with both carriers: over the engine's attach stream
//! (yamux), and through the gateway's bind-mounted Unix socket (issue 25).
//!
//! Measured: time to first byte of a new connection (connect, one 64-byte request, its answer),
//! p50/p99 of small request/response round trips on one connection, bulk throughput of one
//! upload (sandbox to gateway) and one download, and `n` sandboxes (busybox `wget`) calling
//! back concurrently, started eight at a time. Beside them, the engine's own attach streams
//! through its CLI (`run` piping the same number of bytes out of and into a container), which
//! bound what any relay over attach can carry.
//!
//! `cargo bench -p openshell-benches --bench relay` runs it in full (1000 round trips, 100 MB,
//! 32 sandboxes; needs root, dockerd and Podman; the relay is the embedded one unless
//! `OPENSHELL_RELAY_BINARY` names another) and prints a Markdown table for docs/performance.md. Under
//! `cargo test` it runs one small round, so CI keeps it working; its numbers are never gated.

use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use futures_util::{FutureExt, StreamExt};
use openshell_engine::{connect_to, DriverKind};
use openshell_runtime::consts::LOOPBACK_V4;
use openshell_runtime::{
    decide, Exposure, HostTarget, Registry, RelayCarrier, Route, RouteContext,
};
use openshell_sandbox::{
    sandbox_command, CallbackListener, DriverOptions, ListenerOptions, Relay, RelayOptions,
    SandboxDriver, SandboxHandle, SandboxSpec,
};
use openshell_tests::live::{self, Engine};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One small request or answer.
const SMALL: usize = 64;
/// Longest any socket operation of the client may block.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a callback may take to arrive.
const WAIT: Duration = Duration::from_secs(90);

/// How much traffic one measurement sends.
#[derive(Debug, Clone, Copy)]
struct Load {
    /// New connections timed to their first byte.
    ttfb: usize,
    /// Round trips on one connection.
    round_trips: usize,
    /// Bytes uploaded in one stream.
    bulk: usize,
    /// Sandboxes calling back at once.
    concurrent: usize,
}

/// What one route measured.
#[derive(Debug)]
struct Measured {
    ttfb_p50: Duration,
    rtt_p50: Duration,
    rtt_p99: Duration,
    upload_mb_s: f64,
    download_mb_s: f64,
    callbacks: Duration,
}

mod common;

use common::{percentile, runtime};

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

/// The gateway's side: `e` then 64-byte requests echoed; `b` then an upload counted until the
/// client closes its side, answered with the count; `d` and a length, then that many bytes.
async fn serve(listener: tokio::net::TcpListener) {
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            let _ = s.set_nodelay(true);
            let mut mode = [0u8; 1];
            if s.read_exact(&mut mode).await.is_err() {
                return;
            }
            match mode[0] {
                b'e' => {
                    let mut buf = [0u8; SMALL];
                    while s.read_exact(&mut buf).await.is_ok() {
                        if s.write_all(&buf).await.is_err() {
                            return;
                        }
                    }
                }
                b'd' => {
                    let mut len = [0u8; 8];
                    if s.read_exact(&mut len).await.is_err() {
                        return;
                    }
                    let chunk = vec![0xc3u8; 256 * 1024];
                    let mut left = u64::from_be_bytes(len);
                    while left > 0 {
                        let n = chunk
                            .len()
                            .min(usize::try_from(left).unwrap_or(chunk.len()));
                        if s.write_all(&chunk[..n]).await.is_err() {
                            return;
                        }
                        left -= n as u64;
                    }
                    let _ = s.shutdown().await;
                }
                b'b' => {
                    let mut buf = vec![0u8; 256 * 1024];
                    let mut total = 0u64;
                    loop {
                        match s.read(&mut buf).await {
                            Ok(0) => break,
                            Ok(n) => total += n as u64,
                            Err(_) => return,
                        }
                    }
                    let _ = s.write_all(&total.to_be_bytes()).await;
                }
                _ => {}
            }
        });
    }
}

/// The client, on a thread inside the network namespace of process `pid`.
fn client(pid: u32, target: SocketAddr, load: Load) -> Result<ClientResult, String> {
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).map_err(|e| e.to_string())?;
    nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("setns into {pid}'s network namespace (needs root): {e}"))?;
    let connect = || -> Result<TcpStream, String> {
        let s = TcpStream::connect_timeout(&target, IO_TIMEOUT)
            .map_err(|e| format!("connect {target}: {e}"))?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(IO_TIMEOUT))
            .map_err(|e| e.to_string())?;
        s.set_write_timeout(Some(IO_TIMEOUT))
            .map_err(|e| e.to_string())?;
        Ok(s)
    };
    let io = |e: std::io::Error| e.to_string();
    let mut request = [0x5au8; SMALL + 1];
    request[0] = b'e';
    let mut answer = [0u8; SMALL];
    let mut ttfb = Vec::with_capacity(load.ttfb);
    for _ in 0..load.ttfb {
        let t = Instant::now();
        let mut s = connect()?;
        s.write_all(&request).map_err(io)?;
        s.read_exact(&mut answer).map_err(io)?;
        ttfb.push(t.elapsed());
    }
    let mut s = connect()?;
    s.write_all(b"e").map_err(io)?;
    let mut rtt = Vec::with_capacity(load.round_trips);
    for _ in 0..load.round_trips {
        let t = Instant::now();
        s.write_all(&request[1..]).map_err(io)?;
        s.read_exact(&mut answer).map_err(io)?;
        rtt.push(t.elapsed());
    }
    drop(s);
    let mut s = connect()?;
    let chunk = vec![0xa5u8; 256 * 1024];
    let t = Instant::now();
    s.write_all(b"b").map_err(io)?;
    let mut sent = 0;
    while sent < load.bulk {
        let n = chunk.len().min(load.bulk - sent);
        s.write_all(&chunk[..n]).map_err(io)?;
        sent += n;
    }
    s.shutdown(Shutdown::Write).map_err(io)?;
    let mut count = [0u8; 8];
    s.read_exact(&mut count).map_err(io)?;
    let took = t.elapsed();
    let got = u64::from_be_bytes(count);
    if got != load.bulk as u64 {
        return Err(format!(
            "bulk: the gateway counted {got} of {} bytes",
            load.bulk
        ));
    }
    let upload = load.bulk as f64 / 1e6 / took.as_secs_f64();
    drop(s);
    let mut s = connect()?;
    let t = Instant::now();
    s.write_all(b"d").map_err(io)?;
    s.write_all(&(load.bulk as u64).to_be_bytes()).map_err(io)?;
    let mut got = 0usize;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match s.read(&mut buf).map_err(io)? {
            0 => break,
            n => got += n,
        }
    }
    let took = t.elapsed();
    if got != load.bulk {
        return Err(format!("download: {got} of {} bytes arrived", load.bulk));
    }
    Ok(ClientResult {
        ttfb,
        rtt,
        upload,
        download: load.bulk as f64 / 1e6 / took.as_secs_f64(),
    })
}

/// What the client measured.
#[derive(Debug)]
struct ClientResult {
    ttfb: Vec<Duration>,
    rtt: Vec<Duration>,
    /// MB/s from the sandbox to the gateway.
    upload: f64,
    /// MB/s from the gateway to the sandbox.
    download: f64,
}

fn spec(image: &str, command: Vec<String>) -> SandboxSpec {
    common::spec("bench-relay", image, command)
}

/// `n` sandboxes calling back along `route`, started eight at a time; the time until all
/// arrived. All are deleted.
async fn callbacks(
    driver: &SandboxDriver,
    listener: &mut CallbackListener,
    route: &Route,
    image: &str,
    n: usize,
) -> Duration {
    let specs: Vec<SandboxSpec> = (0..n).map(|_| spec(image, sandbox_command(120))).collect();
    for s in &specs {
        listener.expect(&s.id, &s.token);
    }
    let t0 = Instant::now();
    let handles: Vec<SandboxHandle> = futures_util::stream::iter(&specs)
        .map(|s| async move {
            let h = driver
                .create(s, route)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            driver.start(&h).await.unwrap_or_else(|e| panic!("{e}"));
            h
        })
        .buffered(8)
        .collect()
        .await;
    let mut arrived = 0;
    for s in &specs {
        if listener.wait_for(&s.id, WAIT).await.is_ok() {
            arrived += 1;
        }
    }
    let took = t0.elapsed();
    futures_util::future::join_all(handles.iter().map(|h| driver.delete(h))).await;
    assert_eq!(arrived, n, "callbacks arrived");
    took
}

/// One route to measure: where the client connects, the gateway's traffic listener, and the
/// callback listener with the route sandboxes are created with.
#[derive(Debug)]
struct Lane {
    target: IpAddr,
    gateway: tokio::net::TcpListener,
    callback: CallbackListener,
    route: Route,
}

/// Measures along one lane: traffic from inside the sleeper `pid`'s namespace, then
/// `load.concurrent` sandboxes calling back.
async fn measure(
    driver: &SandboxDriver,
    pid: u32,
    lane: Lane,
    image: &str,
    load: Load,
) -> Measured {
    let Lane {
        target,
        gateway,
        mut callback,
        route,
    } = lane;
    let route = &route;
    let port = gateway.local_addr().map(|a| a.port()).unwrap_or_default();
    let server = tokio::spawn(serve(gateway));
    let target = SocketAddr::new(target, port);
    let run = std::thread::spawn(move || client(pid, target, load));
    let got = tokio::task::spawn_blocking(move || run.join())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|_| panic!("the client thread panicked"))
        .unwrap_or_else(|e| panic!("{e}"));
    server.abort();
    let callbacks = callbacks(driver, &mut callback, route, image, load.concurrent).await;
    Measured {
        ttfb_p50: percentile(got.ttfb, 0.5),
        rtt_p50: percentile(got.rtt.clone(), 0.5),
        rtt_p99: percentile(got.rtt, 0.99),
        upload_mb_s: got.upload,
        download_mb_s: got.download,
        callbacks,
    }
}

fn pid_of(engine: &Engine, container: &str) -> u32 {
    let out = std::process::Command::new(&engine.cli[0])
        .args(&engine.cli[1..])
        .args(["inspect", "-f", "{{.State.Pid}}", container])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("pid of {container}: {e}"))
}

fn row(engine: &Engine, label: &str, route: &str, m: &Measured, n: usize) {
    println!(
        "| {} via {label} | {route} | {} | {} | {} | {:.0} MB/s | {:.0} MB/s | {n} in {:.1} s |",
        engine.name,
        us(m.ttfb_p50),
        us(m.rtt_p50),
        us(m.rtt_p99),
        m.upload_mb_s,
        m.download_mb_s,
        m.callbacks.as_secs_f64()
    );
}

async fn bench_engine(engine: &Engine, driver: SandboxDriver, label: &str, load: Load) {
    let image = live::import_busybox(engine).unwrap_or_else(|e| panic!("{e}"));
    driver
        .ensure_network()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // One sleeper on the sandbox network: its namespace is where the client's connections start.
    let facts = driver
        .gather_facts()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .facts;
    let mut facts = facts;
    facts.overrides.route_kind = openshell_runtime::RouteKindChoice::Direct;
    let direct = decide(&Registry::builtin(), &facts, &RouteContext::default())
        .route
        .unwrap_or_else(|e| panic!("{e}"));
    let sleeper = spec(&image, vec!["/bin/sleep".into(), "600".into()]);
    let handle = driver
        .create(&sleeper, &direct)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let body = {
        let driver = driver.clone();
        let engine = engine.clone();
        let image = image.clone();
        let handle = handle.clone();
        std::panic::AssertUnwindSafe(async move {
            driver
                .start(&handle)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let pid = pid_of(&engine, &handle.container_id);
            let (HostTarget::Ip(bridge), Some(bind)) = (direct.openshell_host, direct.bind) else {
                panic!("the direct route is not a bridge address: {direct:?}");
            };
            // Direct: the gateway on the bridge address.
            let gateway = tokio::net::TcpListener::bind((bind, 0))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let callback = CallbackListener::bind(&direct, ListenerOptions::default())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let lane = Lane {
                target: bridge,
                gateway,
                route: callback.route().clone(),
                callback,
            };
            let d = measure(&driver, pid, lane, &image, load).await;
            let mut relayed = Vec::new();
            for carrier in [RelayCarrier::Attach, RelayCarrier::Socket] {
                let r = relay_lane(&driver, &direct, carrier, pid, &image, load).await;
                relayed.push((carrier, r));
            }
            (d, relayed)
        })
        .catch_unwind()
    };
    let outcome = body.await;
    // The engine's own attach streams, with the same image, before it goes.
    let ceiling = outcome
        .is_ok()
        .then(|| std::panic::catch_unwind(|| attach_ceiling(engine, &image, load.bulk)));
    // Cleanup also when the body panicked.
    let _ = driver.delete(&handle).await;
    let _ = driver.remove_network().await;
    live::remove_image(engine, &image);
    let (d, relayed) = outcome.unwrap_or_else(|e| std::panic::resume_unwind(e));
    let ceiling = match ceiling {
        Some(Ok(c)) => c,
        Some(Err(e)) => std::panic::resume_unwind(e),
        None => unreachable!("the body succeeded"),
    };
    row(engine, label, "direct (bridge)", &d, load.concurrent);
    for (carrier, r) in &relayed {
        row(
            engine,
            label,
            &format!("relay, {carrier}"),
            r,
            load.concurrent,
        );
        println!(
            "| {} via {label} | relay, {carrier} − direct | {:+.0} µs | {:+.0} µs | {:+.0} µs | | | |",
            engine.name,
            (r.ttfb_p50.as_secs_f64() - d.ttfb_p50.as_secs_f64()) * 1e6,
            (r.rtt_p50.as_secs_f64() - d.rtt_p50.as_secs_f64()) * 1e6,
            (r.rtt_p99.as_secs_f64() - d.rtt_p99.as_secs_f64()) * 1e6,
        );
    }
    println!(
        "| {} CLI | attach streams (`{} run -i`, no relay) | | | | {:.0} MB/s | {:.0} MB/s | |",
        engine.name,
        engine.cli.last().map_or("", String::as_str),
        ceiling.0,
        ceiling.1
    );
}

/// The relay lane with `carrier`: the gateway on loopback; one relay carries the traffic
/// connections (on the traffic port) and another the callbacks (on the callback port), both
/// with `carrier` (asserted: the bench fails rather than measure a fallback).
async fn relay_lane(
    driver: &SandboxDriver,
    direct: &Route,
    carrier: RelayCarrier,
    pid: u32,
    image: &str,
    load: Load,
) -> Measured {
    let gateway = tokio::net::TcpListener::bind((LOOPBACK_V4, 0))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let port = gateway.local_addr().map(|a| a.port()).unwrap_or_default();
    let ops = driver.clone();
    let relay_opts = |port| RelayOptions {
        carrier,
        ..RelayOptions::from_env(port).unwrap_or_else(|e| panic!("{e}"))
    };
    let traffic = Relay::start(ops.clone(), relay_opts(port))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let loopback = Route {
        openshell_host: HostTarget::Ip(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)),
        bind: Some(LOOPBACK_V4),
        exposure: Exposure::Loopback,
        port: 0,
        ..direct.clone()
    };
    let callback = CallbackListener::bind(&loopback, ListenerOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let callbacks = Relay::start(ops, relay_opts(callback.route().port))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let relayed = callbacks
        .route(callback.route())
        .unwrap_or_else(|e| panic!("{e}"));
    let at = traffic.address().unwrap_or_else(|e| panic!("{e}"));
    let lane = Lane {
        target: at,
        gateway,
        callback,
        route: relayed,
    };
    let measured = std::panic::AssertUnwindSafe(async {
        for relay in [&traffic, &callbacks] {
            assert_eq!(relay.carrier(), carrier, "{:?}", relay.fallback());
        }
        measure(driver, pid, lane, image, load).await
    })
    .catch_unwind()
    .await;
    let _ = traffic.shutdown().await;
    let _ = callbacks.shutdown().await;
    measured.unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// The engine's own attach streams, without us: MB/s of `bytes` out of a container's stdout
/// (`run … head -c`) and into its stdin (`run -i … cat`), through the engine's CLI, container
/// start included. The relay's upload rides the first, its download the second.
fn attach_ceiling(engine: &Engine, image: &str, bytes: usize) -> (f64, f64) {
    use std::process::{Command, Stdio};
    let cli = || {
        let mut c = Command::new(&engine.cli[0]);
        c.args(&engine.cli[1..]);
        c
    };
    let n = bytes.to_string();
    let t = Instant::now();
    let out = cli()
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            image,
            "/bin/busybox",
            "head",
            "-c",
            &n,
            "/dev/zero",
        ])
        .stderr(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = bytes as f64 / 1e6 / t.elapsed().as_secs_f64();
    assert_eq!(out.stdout.len(), bytes, "container stdout");
    let mut child = cli()
        .args([
            "run",
            "-i",
            "--rm",
            "--network",
            "none",
            image,
            "/bin/sh",
            "-c",
            "cat > /dev/null",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let t = Instant::now();
    if let Some(mut input) = child.stdin.take() {
        let chunk = vec![0u8; 256 * 1024];
        let mut sent = 0;
        while sent < bytes {
            let k = chunk.len().min(bytes - sent);
            input
                .write_all(&chunk[..k])
                .unwrap_or_else(|e| panic!("{e}"));
            sent += k;
        }
    }
    let status = child.wait().unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "container stdin: {status}");
    (stdout, bytes as f64 / 1e6 / t.elapsed().as_secs_f64())
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let load = if full {
        Load {
            ttfb: 200,
            round_trips: 1000,
            bulk: 100 * 1000 * 1000,
            concurrent: 32,
        }
    } else {
        Load {
            ttfb: 5,
            round_trips: 50,
            bulk: 1000 * 1000,
            concurrent: 2,
        }
    };
    runtime().block_on(async {
        println!(
            "| engine | route | TTFB p50 | round trip p50 | p99 | upload | download | callbacks |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        let opts = || DriverOptions {
            network: live::unique("openshell-bench-relay"),
            timeout: Duration::from_secs(60),
            host: None,
        };
        let dockerd = live::dockerd();
        if dockerd.available() {
            let d = connect_to(DriverKind::Docker, dockerd.endpoint(), opts())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            bench_engine(&dockerd, d, "Docker driver", load).await;
        }
        let podman = live::podman();
        if podman.available() {
            let p = connect_to(DriverKind::Podman, podman.endpoint(), opts())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            bench_engine(&podman, p, "Podman driver", load).await;
        }
    });
}
