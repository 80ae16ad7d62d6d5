//! Helpers every area shares: the binary, its output, fixtures, temporary files, an isolated environment.

use std::path::Path;
use std::process::{Command, Output};

pub fn bin() -> Command {
    bin_in(None)
}

/// The binary, run in network namespace `netns` when one is given (`ip netns exec`): where a
/// namespaced engine's gateway must run (`scripts/engines-2026.sh`).
pub fn bin_in(netns: Option<&str>) -> Command {
    let exe = env!("CARGO_BIN_EXE_openshell-runtime");
    let mut c = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, exe]);
            c
        }
        None => Command::new(exe),
    };
    c.env_remove("OPENSHELL_HOST_GATEWAY_IP")
        .env_remove("OPENSHELL_BIND_ADDRESS")
        .env_remove("OPENSHELL_NETWORK_MODE")
        .env_remove("OPENSHELL_GRPC_ENDPOINT")
        .env_remove("OPENSHELL_PODMAN_HOST_GATEWAY_IP");
    c
}

pub fn run(args: &[&str]) -> Output {
    bin()
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the binary: {e}"))
}

pub fn fixture(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(rel)
        .display()
        .to_string()
}

pub fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// A file of a test's in the temporary directory, removed when dropped (also when the test
/// fails), so that test runs leave nothing there.
pub struct TmpFile(pub String);

impl std::ops::Deref for TmpFile {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Drop for TmpFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub fn write_tmp(name: &str, text: &str) -> TmpFile {
    let p = std::env::temp_dir().join(format!("openshell-cli-{}-{name}", std::process::id()));
    std::fs::write(&p, text).unwrap_or_else(|e| panic!("{e}"));
    TmpFile(p.display().to_string())
}

/// The binary with discovery's environment emptied: no named endpoint, no context, and a home
/// and runtime directory of its own, so only what a test sets is named.
pub fn isolated(home: &Path) -> Command {
    let mut c = bin();
    for k in [
        "DOCKER_HOST",
        "DOCKER_CONTEXT",
        "DOCKER_CONFIG",
        "DOCKER_TLS_VERIFY",
        "DOCKER_CERT_PATH",
        "CONTAINER_HOST",
        "CONTAINER_CONNECTION",
        "CONTAINERS_CONF",
        "PODMAN_CONNECTIONS_CONF",
        "XDG_CONFIG_HOME",
    ] {
        c.env_remove(k);
    }
    c.env("HOME", home).env("XDG_RUNTIME_DIR", home);
    c
}

/// A loopback port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    l.local_addr().unwrap_or_else(|e| panic!("{e}")).port()
}

/// Every file under `tests/fixtures/`, sorted.
pub fn all_fixtures() -> Vec<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    let mut out = Vec::new();
    for dir in std::fs::read_dir(&root).unwrap_or_else(|e| panic!("{e}")) {
        let dir = dir.unwrap_or_else(|e| panic!("{e}")).path();
        if !dir.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{e}")) {
            let f = f.unwrap_or_else(|e| panic!("{e}")).path();
            if f.extension().is_some_and(|e| e == "json") {
                out.push(f);
            }
        }
    }
    out.sort();
    out
}

/// Runs `doctor` against a live engine, in the engine's network namespace when it has one, with
/// the built-in probe (no probe image, no relay binary named: as a user runs it).
pub fn doctor(
    engine: &openshell_tests::live::Engine,
    driver: &str,
    network: &str,
    extra: &[&str],
) -> Output {
    let endpoint = format!("unix://{}", engine.socket);
    let mut args = vec![
        "doctor",
        "--no-config",
        "-o",
        "json",
        "--driver",
        driver,
        "--endpoint",
        &endpoint,
        "--network",
        network,
        "--probe-timeout",
        "15",
    ];
    args.extend_from_slice(extra);
    bin_in(engine.netns)
        .args(&args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the binary: {e}"))
}

/// What `detect` decides on dockerd for `network`, which it creates: the bridge's gateway
/// address (native Docker routes sandboxes there).
pub fn dockerd_bridge_gateway(network: &str) -> String {
    let decided = json(&run(&[
        "detect",
        "--no-config",
        "-o",
        "json",
        "--driver",
        "docker",
        "--network",
        network,
    ]));
    decided["openshell_host"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Runs `n` copies of the binary at once with `args` and waits for all of them.
pub fn run_concurrently(n: usize, args: &[&str]) -> Vec<Output> {
    let children: Vec<_> = (0..n)
        .map(|_| {
            bin()
                .args(args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run the binary: {e}"))
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap_or_else(|e| panic!("{e}")))
        .collect()
}
