//! Live-engine support: find the engines, build the sandbox image locally, clean up.
//!
//! `OPENSHELL_LIVE=require` (set by `scripts/test`, which CI runs) turns a missing engine into a
//! failure; without it a missing engine skips the test with a message saying what to install.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use openshell_runtime::facts::Endpoint;

/// Environment variable that makes live tests mandatory.
pub const LIVE_ENV: &str = "OPENSHELL_LIVE";

/// An engine the live tests run against.
#[derive(Debug, Clone)]
pub struct Engine {
    /// Short name for messages.
    pub name: &'static str,
    /// Its Docker-API socket.
    pub socket: &'static str,
    /// The CLI that imports images into it.
    pub cli: &'static str,
    /// The runtime id the policy must report.
    pub runtime: &'static str,
}

/// Debian's dockerd.
pub const DOCKERD: Engine = Engine {
    name: "dockerd",
    socket: "/var/run/docker.sock",
    cli: "docker",
    runtime: "native-docker",
};
/// Rootful Podman's service (Docker-compatible API and libpod on one socket).
pub const PODMAN: Engine = Engine {
    name: "podman",
    socket: "/run/podman/podman.sock",
    cli: "podman",
    runtime: "podman",
};

impl Engine {
    /// The endpoint.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint::Unix {
            path: self.socket.to_string(),
        }
    }

    /// Whether the engine is there; panics when it is missing and the run requires it.
    pub fn available(&self) -> bool {
        let up = Path::new(self.socket).exists()
            && Command::new("curl")
                .args([
                    "-fsS",
                    "--max-time",
                    "3",
                    "--unix-socket",
                    self.socket,
                    "http://d/_ping",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
        if up {
            return true;
        }
        let what = format!(
            "{} is not answering on {}: run `scripts/engines.sh` as root (installs and starts docker.io and podman)",
            self.name, self.socket
        );
        if std::env::var(LIVE_ENV).is_ok_and(|v| v == "require") {
            panic!("{what}; {LIVE_ENV}=require demands live engines");
        }
        eprintln!("SKIPPED (no engine): {what}");
        false
    }
}

/// A name unique to this test process and call.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A random token from the OS's hash seed (enough for tests).
pub fn token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let s = std::collections::hash_map::RandomState::new();
    let (mut a, mut b) = (s.build_hasher(), s.build_hasher());
    a.write_u32(std::process::id());
    b.write_u64(a.finish());
    format!("{:016x}{:016x}", a.finish(), b.finish())
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Imports a one-binary image (Debian's static busybox) into the engine with its CLI; no
/// registry involved. Returns the tag.
pub fn import_busybox(engine: &Engine) -> Result<String, String> {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .ok_or("busybox not found: install busybox-static")?;
    let dir = std::env::temp_dir().join(unique("openshell-rootfs"));
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(rootfs.join("etc")).map_err(|e| e.to_string())?;
    std::fs::copy(busybox, rootfs.join("bin/busybox")).map_err(|e| e.to_string())?;
    for applet in ["sh", "wget", "sleep", "cat", "echo", "timeout"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet))
            .map_err(|e| e.to_string())?;
    }
    std::fs::write(rootfs.join("etc/nsswitch.conf"), "hosts: files dns\n")
        .map_err(|e| e.to_string())?;
    let tar = dir.join("rootfs.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg("."))?;
    let tag = format!("localhost/{}:test", unique("openshell-busybox"));
    let imported = run(Command::new(engine.cli).arg("import").arg(&tar).arg(&tag));
    let _ = std::fs::remove_dir_all(&dir);
    imported.map(|_| tag)
}

/// Removes an image (best effort, for cleanup).
pub fn remove_image(engine: &Engine, tag: &str) {
    let _ = run(Command::new(engine.cli).args(["rmi", "-f", tag]));
}

/// Whether the engine still has a container or network with this name.
pub fn exists(engine: &Engine, kind: &str, name: &str) -> bool {
    run(Command::new(engine.cli).args([kind, "inspect", name])).is_ok()
}

/// Default bound for waiting on a callback.
pub const CALLBACK_WAIT: Duration = Duration::from_secs(40);
