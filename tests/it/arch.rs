//! The relay for engines of another architecture (issue 20): the aarch64 relay this build embeds
//! (built with Debian's rustc and `libstd-rust-dev:arm64` where rustup cannot add the target) is
//! a static aarch64 executable, and it runs under emulation (`qemu-aarch64-static`): the probe
//! gives every verdict, and the relay answers its session. Nothing here needs an aarch64 engine;
//! the x86_64 relay, built from the same source, runs every live relay scenario.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use openshell_sandbox::{embedded_arches, embedded_relay, relay_ready, RelayOptions};

const REQUIRE: &str = "OPENSHELL_LIVE";

/// What the aarch64 tests need, or why they skip (a failure when the run requires them).
fn prerequisites() -> Option<&'static [u8]> {
    let missing = match (embedded_relay("aarch64"), which("qemu-aarch64-static")) {
        (Some(bytes), true) => return Some(bytes),
        (None, _) => format!(
            "this build embeds no aarch64 relay (it has {:?}): install rustc, libstd-rust-dev:arm64, gcc-aarch64-linux-gnu and libc6-dev-arm64-cross (scripts/toolchains.sh), then rebuild after `touch crates/openshell-relay/src/main.rs`",
            embedded_arches()
        ),
        (Some(_), false) => "qemu-aarch64-static is missing (apt-get install qemu-user-static)".into(),
    };
    if std::env::var(REQUIRE).is_ok_and(|v| v == "require") {
        panic!("{missing}; {REQUIRE}=require demands the aarch64 relay");
    }
    eprintln!("SKIPPED (no aarch64 relay): {missing}");
    None
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join(program).is_file()))
}

/// The binary written to a private file the emulator can run.
fn write_binary(dir: &Path, bytes: &[u8]) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("openshell-relay-aarch64");
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("{e}"));
    path
}

/// Runs the probe under emulation with `endpoint`; returns its exit code and output.
fn probe(binary: &Path, endpoint: &str) -> (Option<i32>, String) {
    let out = Command::new("timeout")
        .args(["60", "qemu-aarch64-static"])
        .arg(binary)
        .args(["probe", "0"])
        .env("OPENSHELL_ENDPOINT", endpoint)
        .env("OPENSHELL_SANDBOX_ID", "probe-aarch64")
        .env("OPENSHELL_TOKEN", "0123456789abcdef")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn the_aarch64_relay_is_embedded_static_and_ready() {
    if prerequisites().is_none() {
        return;
    }
    // Checked as the relay start checks it: an aarch64 ELF with no program interpreter.
    for reported in ["aarch64", "arm64"] {
        relay_ready(&RelayOptions::default(), reported).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn the_aarch64_probe_gives_every_verdict_under_emulation() {
    let Some(bytes) = prerequisites() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let binary = write_binary(dir.path(), bytes);

    // A gateway on loopback that answers the callback.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let port = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("{e}"))
        .port();
    let gateway = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap_or_else(|e| panic!("{e}"));
        let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
        let mut buf = [0u8; 512];
        let n = conn.read(&mut buf).unwrap_or(0);
        let _ = conn.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    });
    let (code, out) = probe(&binary, &format!("http://127.0.0.1:{port}"));
    assert_eq!(code, Some(0), "{out}");
    let request = gateway.join().unwrap_or_default();
    assert!(
        request.starts_with("GET /callback/probe-aarch64/0123456789abcdef HTTP/1.0\r\n"),
        "{request:?}"
    );

    // Nothing listens on a port just released: refused.
    let closed = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("{e}"))
        .port();
    let (code, out) = probe(&binary, &format!("http://127.0.0.1:{closed}"));
    assert_eq!(code, Some(4), "{out}");
    assert!(out.contains("openshell-probe-verdict=4"), "{out}");

    // A name no hosts file gives: unresolved, and nothing is sent anywhere.
    let (code, out) = probe(&binary, "http://openshell-no-such-name.invalid:1");
    assert_eq!(code, Some(3), "{out}");
}

/// The relay's session machinery (threads, frames, stdin and stdout) on aarch64: in a network
/// namespace of its own (only its loopback, so its listener faces nothing), it answers a ping
/// and ends when its stdin does.
#[test]
fn the_aarch64_relay_answers_its_session_under_emulation() {
    let Some(bytes) = prerequisites() else {
        return;
    };
    if !which("unshare") || !is_root() {
        eprintln!("SKIPPED: a network namespace of its own needs root and unshare");
        return;
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let binary = write_binary(dir.path(), bytes);
    let mut child = Command::new("unshare")
        .args(["--net", "timeout", "60", "qemu-aarch64-static"])
        .arg(&binary)
        .arg("17670")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut stdin = child.stdin.take().unwrap_or_else(|| unreachable!());
    let mut stdout = child.stdout.take().unwrap_or_else(|| unreachable!());
    // yamux ping (type 2) with SYN (1), opaque value 0x2a.
    stdin
        .write_all(&[0, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x2a])
        .unwrap_or_else(|e| panic!("{e}"));
    stdin.flush().unwrap_or_else(|e| panic!("{e}"));
    let mut pong = [0u8; 12];
    stdout
        .read_exact(&mut pong)
        .unwrap_or_else(|e| panic!("no answer to the ping: {e}"));
    assert_eq!(pong, [0, 2, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0x2a]);
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap_or_else(|e| panic!("{e}")) {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the relay did not end with its stdin");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}
