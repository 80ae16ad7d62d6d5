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
    /// Its API socket.
    pub socket: String,
    /// The CLI command (with any prefix to run it as the engine's user) that imports images.
    pub cli: Vec<String>,
    /// Whether it is Podman.
    pub podman: bool,
    /// The runtime id the policy must report.
    pub runtime: &'static str,
    /// The operator setting this engine was configured with: slirp4netns maps 10.0.2.2 to the
    /// host's loopback (`allow_host_loopback=true` in the user's containers.conf).
    pub rootless_host_loopback: bool,
    /// The network namespace that is this engine's host (`scripts/engines-2026.sh`): a gateway
    /// for it must run there (`ip netns exec`). `None`: this machine's own namespace.
    pub netns: Option<&'static str>,
}

/// Debian's dockerd.
pub fn dockerd() -> Engine {
    Engine {
        name: "dockerd",
        socket: "/var/run/docker.sock".into(),
        cli: vec!["docker".into()],
        podman: false,
        runtime: "native-docker",
        rootless_host_loopback: false,
        netns: None,
    }
}

/// Rootful Podman's service (Docker-compatible API and libpod on one socket).
pub fn podman() -> Engine {
    Engine {
        name: "podman",
        socket: "/run/podman/podman.sock".into(),
        cli: vec!["podman".into()],
        podman: true,
        runtime: "podman",
        rootless_host_loopback: false,
        netns: None,
    }
}

/// The unprivileged user `scripts/rootless.sh` creates.
pub const ROOTLESS_USER: &str = "openshell-rootless";

/// [`ROOTLESS_USER`]'s runtime directory (`/run/user/<uid>`), where its engines' sockets live.
fn rootless_runtime_dir() -> String {
    let uid = Command::new("id")
        .args(["-u", ROOTLESS_USER])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "missing-user".into());
    format!("/run/user/{uid}")
}

/// Rootless Podman, served by [`ROOTLESS_USER`] (set up by `scripts/rootless.sh`).
pub fn podman_rootless() -> Engine {
    let runtime_dir = rootless_runtime_dir();
    Engine {
        name: "rootless podman",
        socket: format!("{runtime_dir}/podman/podman.sock"),
        cli: ["runuser", "-u", ROOTLESS_USER, "--", "env"]
            .into_iter()
            .map(String::from)
            .chain([
                format!("HOME=/home/{ROOTLESS_USER}"),
                format!("XDG_RUNTIME_DIR={runtime_dir}"),
                "podman".into(),
            ])
            .collect(),
        podman: true,
        runtime: "podman-rootless",
        rootless_host_loopback: true,
        netns: None,
    }
}

/// Rootless dockerd (RootlessKit) of [`ROOTLESS_USER`], started by `scripts/rootless.sh` with
/// host loopback enabled. Root's `docker` CLI talks to its socket directly.
pub fn dockerd_rootless() -> Engine {
    let socket = format!("{}/docker.sock", rootless_runtime_dir());
    Engine {
        name: "rootless dockerd",
        cli: vec!["docker".into(), "--host".into(), format!("unix://{socket}")],
        socket,
        podman: false,
        runtime: "rootless-docker",
        rootless_host_loopback: true,
        netns: None,
    }
}

/// Where `scripts/engines-2026.sh` keeps its engines' sockets and writes its `env` file.
pub const ENGINES_2026_RUN: &str = "/run/openshell-2026";

/// One of Debian 13's engines that `scripts/engines-2026.sh up` runs, each in its network
/// namespace `openshell-<e>` (issue 21). Root manages them with this host's `podman --url` and
/// `docker -H` clients through their sockets (Podman 4.3's remote client speaks to Podman 5.4).
fn engine_2026(
    name: &'static str,
    e: &'static str,
    socket: &str,
    podman: bool,
    runtime: &'static str,
    netns: &'static str,
) -> Engine {
    let socket = format!("{ENGINES_2026_RUN}/{e}/{socket}");
    let cli = if podman {
        vec!["podman".into(), "--url".into(), format!("unix://{socket}")]
    } else {
        vec!["docker".into(), "-H".into(), format!("unix://{socket}")]
    };
    Engine {
        name,
        socket,
        cli,
        podman,
        runtime,
        rootless_host_loopback: false,
        netns: Some(netns),
    }
}

/// The second rootless Docker 26 that `scripts/engines-2026.sh` runs for the same user in the
/// same namespace (`openshell-docker26-rootless`), with RootlessKit's host loopback enabled
/// (`DOCKERD_ROOTLESS_ROOTLESSKIT_DISABLE_HOST_LOOPBACK=false`): slirp4netns forwards 10.0.2.2 to
/// the namespace's 127.0.0.1. Its operator declares that with `rootless_host_loopback`.
pub fn docker26_rootless_with_host_loopback() -> Engine {
    Engine {
        rootless_host_loopback: true,
        ..engine_2026(
            "rootless docker 26 with host loopback",
            "docker26-rootless",
            "runtime/hostloopback/docker.sock",
            false,
            "rootless-docker",
            "openshell-docker26-rootless",
        )
    }
}

/// The settings `scripts/engines-2026.sh` wrote (`…_HOST_ADDR`, `…_NETNS`, …), empty when it
/// did not run.
pub fn engines_2026_settings() -> std::collections::BTreeMap<String, String> {
    std::fs::read_to_string(format!("{ENGINES_2026_RUN}/env"))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Engine {
    /// The "LAN" address of a namespaced engine's host (its `uplink0` in its own network
    /// namespace, never an interface of this machine); `None` for the others.
    pub fn host_addr(&self) -> Option<String> {
        let ns = self.netns?;
        let key = format!(
            "OPENSHELL_2026_{}_HOST_ADDR",
            ns.trim_start_matches("openshell-")
                .replace('-', "_")
                .to_uppercase()
        );
        engines_2026_settings().remove(&key)
    }

    /// The endpoint.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint::Unix {
            path: self.socket.clone(),
        }
    }

    /// The engine's CLI, as its user, run from `/`.
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.cli[0]);
        // The engine's user (rootless Podman) may not be allowed into the test's working
        // directory (a checkout under a 0700 temporary directory): run from `/`.
        c.args(&self.cli[1..]).current_dir("/");
        c
    }

    /// Whether the engine is there; panics when it is missing and the run requires it.
    pub fn available(&self) -> bool {
        let up = Path::new(&self.socket).exists()
            && Command::new("curl")
                .args([
                    "-fsS",
                    "--max-time",
                    "3",
                    "--unix-socket",
                    &self.socket,
                    "http://d/_ping",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
        if up {
            return true;
        }
        let what = if self.netns.is_some() {
            format!(
                "{} is not answering on {}: run `bash scripts/engines-2026.sh up` as root (Debian 13's engines, each in its own network namespace)",
                self.name, self.socket
            )
        } else {
            format!(
                "{} is not answering on {}: run `scripts/engines.sh` and `scripts/rootless.sh` as root (they install and start docker.io, podman and their rootless modes)",
                self.name, self.socket
            )
        };
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
    // The engine's user (rootless Podman) must be able to read the tarball.
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755));
    let imported = run(engine.command().arg("import").arg(&tar).arg(&tag));
    let _ = std::fs::remove_dir_all(&dir);
    imported.map(|_| tag)
}

/// One field of a container's inspect, formatted by the engine's CLI (`--format`).
pub fn inspect(engine: &Engine, id: &str, format: &str) -> Result<String, String> {
    run(engine
        .command()
        .args(["inspect", "--type", "container", "--format", format, id]))
}

/// Removes an image (best effort, for cleanup).
pub fn remove_image(engine: &Engine, tag: &str) {
    let _ = run(engine.command().args(["rmi", "-f", tag]));
}

/// The containers (any state) attached to `network`, by name: what a test left on its own
/// network, unaffected by concurrent tests on other networks.
pub fn containers_on_network(engine: &Engine, network: &str) -> Result<Vec<String>, String> {
    let out = run(engine.command().args([
        "ps",
        "-a",
        "--filter",
        &format!("network={network}"),
        "--format",
        "{{.Names}}",
    ]))?;
    Ok(out.lines().map(str::to_string).collect())
}

/// The containers (any state) carrying `label=value`, by id: what a relay test checks is gone.
pub fn containers_labelled(
    engine: &Engine,
    label: &str,
    value: &str,
) -> Result<Vec<String>, String> {
    let out = run(engine.command().args([
        "ps",
        "-a",
        "--no-trunc",
        "--filter",
        &format!("label={label}={value}"),
        "--format",
        "{{.ID}}",
    ]))?;
    Ok(out.lines().map(str::to_string).collect())
}

/// Removes a container with the engine's CLI, as something outside the gateway would.
pub fn remove_container(engine: &Engine, id: &str) -> Result<(), String> {
    run(engine.command().args(["rm", "-f", id])).map(|_| ())
}

/// Removes a network with the engine's CLI (best effort, for cleanup).
pub fn remove_network(engine: &Engine, network: &str) {
    let _ = run(engine.command().args(["network", "rm", network]));
}

/// The owner label (`io.openshell.owner`) a run with process id `pid` on this host puts on what
/// it makes: `<boot id>/<pid namespace>/<pid>`.
pub fn owner_label(pid: u32) -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let pid_ns: String = std::fs::read_link("/proc/self/ns/pid")
        .map(|l| {
            l.to_string_lossy()
                .chars()
                .filter(char::is_ascii_digit)
                .collect()
        })
        .unwrap_or_default();
    format!("{}/{pid_ns}/{pid}", boot.trim())
}

/// Removes a network (by name, best effort) when dropped: a test that makes one holds this from
/// then on, so that a failed assertion does not leave it behind.
#[derive(Debug)]
pub struct NetworkRemovedOnDrop {
    engine: Engine,
    name: String,
}

impl NetworkRemovedOnDrop {
    /// Guards the network `name` on `engine`.
    pub fn new(engine: &Engine, name: &str) -> NetworkRemovedOnDrop {
        NetworkRemovedOnDrop {
            engine: engine.clone(),
            name: name.to_string(),
        }
    }
}

impl Drop for NetworkRemovedOnDrop {
    fn drop(&mut self) {
        remove_networks_named(&self.engine, &self.name);
    }
}

/// The ids of the networks called exactly `name` (old Docker engines allow several).
pub fn networks_named(engine: &Engine, name: &str) -> Result<Vec<String>, String> {
    let out = run(engine.command().args([
        "network",
        "ls",
        "--filter",
        &format!("name={name}"),
        "--format",
        "{{.ID}} {{.Name}}",
    ]))?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, n)| *n == name)
        .map(|(id, _)| id.to_string())
        .collect())
}

/// The names of the networks whose name starts with `prefix`.
pub fn networks_prefixed(engine: &Engine, prefix: &str) -> Result<Vec<String>, String> {
    let out = run(engine.command().args([
        "network",
        "ls",
        "--filter",
        &format!("name={prefix}"),
        "--format",
        "{{.Name}}",
    ]))?;
    Ok(out
        .lines()
        .filter(|n| n.starts_with(prefix))
        .map(str::to_string)
        .collect())
}

/// Removes every network called `name`, by id (best effort, for cleanup).
pub fn remove_networks_named(engine: &Engine, name: &str) {
    for id in networks_named(engine, name).unwrap_or_default() {
        let _ = run(engine.command().args(["network", "rm", &id]));
    }
}

/// Whether the engine still has a container or network with this name.
pub fn exists(engine: &Engine, kind: &str, name: &str) -> bool {
    run(engine.command().args([kind, "inspect", name])).is_ok()
}

/// Default bound for waiting on a callback.
pub const CALLBACK_WAIT: Duration = Duration::from_secs(40);

/// Where `scripts/remote.sh up` writes the namespaced "remote" engine's settings (issue 14).
pub const REMOTE_ENV_FILE: &str = "/run/openshell-remote/env";

/// The settings `scripts/remote.sh up` wrote for the namespaced "remote" engine, or `None` (a
/// skip, or a failure under `OPENSHELL_LIVE=require`) when it is not up.
pub fn remote_settings() -> Option<std::collections::BTreeMap<String, String>> {
    let Ok(text) = std::fs::read_to_string(REMOTE_ENV_FILE) else {
        let what = format!("{REMOTE_ENV_FILE} is missing: run `scripts/remote.sh up` as root (a dockerd behind tcp:// with TLS and ssh:// in a network namespace)");
        if std::env::var(LIVE_ENV).is_ok_and(|v| v == "require") {
            panic!("{what}; {LIVE_ENV}=require demands the remote engine");
        }
        eprintln!("SKIPPED (no remote engine): {what}");
        return None;
    };
    Some(
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// One remote setting; panics naming it when `scripts/remote.sh` wrote none.
pub fn remote_setting(settings: &std::collections::BTreeMap<String, String>, k: &str) -> String {
    settings
        .get(k)
        .cloned()
        .unwrap_or_else(|| panic!("{k} missing from {REMOTE_ENV_FILE}"))
}

/// The namespaced dockerd of `scripts/remote.sh`, managed with the docker CLI over its tcp://
/// TLS endpoint (images imported from this host's files, containers listed and removed): the
/// way an operator would reach another machine's engine. `socket` is its Unix socket, seen
/// from this host only to tell whether it is up.
pub fn remote_dockerd(settings: &std::collections::BTreeMap<String, String>) -> Engine {
    let certs = remote_setting(settings, "OPENSHELL_REMOTE_DOCKER_CERT_PATH");
    let cli = vec![
        "docker".to_string(),
        "--host".into(),
        remote_setting(settings, "OPENSHELL_REMOTE_DOCKER_TCP"),
        "--tlsverify".into(),
        "--tlscacert".into(),
        format!("{certs}/ca.pem"),
        "--tlscert".into(),
        format!("{certs}/cert.pem"),
        "--tlskey".into(),
        format!("{certs}/key.pem"),
    ];
    Engine {
        name: "remote dockerd",
        socket: remote_setting(settings, "OPENSHELL_REMOTE_DOCKER_SOCKET"),
        cli,
        podman: false,
        runtime: "remote-docker",
        rootless_host_loopback: false,
        netns: None,
    }
}

/// The images of `repository` in the engine, by id.
pub fn images_of(engine: &Engine, repository: &str) -> Result<Vec<String>, String> {
    let out = run(engine
        .command()
        .args(["images", "--no-trunc", "-q", repository]))?;
    let mut ids: Vec<String> = out.lines().map(str::to_string).collect();
    ids.dedup();
    Ok(ids)
}

/// Removes every image of `repository` (best effort, for cleanup): the relay images a test
/// imported into an engine it does not share with anyone.
pub fn remove_images_of(engine: &Engine, repository: &str) {
    for id in images_of(engine, repository).unwrap_or_default() {
        let _ = run(engine.command().args(["rmi", "-f", &id]));
    }
}

/// The namespaced Podman service of `scripts/remote.sh`, managed with the podman CLI through
/// its socket (`podman --url`): the tests reach it over ssh, and this only imports images,
/// lists and removes what they made.
pub fn remote_podman(settings: &std::collections::BTreeMap<String, String>) -> Engine {
    let socket = remote_setting(settings, "OPENSHELL_REMOTE_PODMAN_SOCKET");
    Engine {
        name: "remote podman",
        cli: vec!["podman".into(), "--url".into(), format!("unix://{socket}")],
        socket,
        podman: true,
        runtime: "remote-docker",
        rootless_host_loopback: false,
        netns: None,
    }
}

/// An engine of the live tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineId {
    /// [`dockerd`].
    Dockerd,
    /// [`podman`].
    Podman,
    /// [`podman_rootless`].
    PodmanRootless,
    /// [`dockerd_rootless`].
    DockerdRootless,
    /// [`remote_dockerd`], in `scripts/remote.sh`'s network namespace.
    RemoteDockerd,
    /// [`remote_podman`], in `scripts/remote.sh`'s network namespace.
    RemotePodman,
    /// Podman 5.4.2 rootful (netavark, aardvark-dns) in network namespace `openshell-podman5`.
    Podman5,
    /// Podman 5.4.2 rootless (pasta, netavark) of a user without a systemd user session, in
    /// `openshell-podman5-rootless`.
    Podman5Rootless,
    /// Podman 5.4.2 rootless (pasta) of a user with `systemd --user` and a session bus, in
    /// `openshell-podman5-session`.
    Podman5Session,
    /// Docker 26.1.5 rootful in `openshell-docker26`.
    Docker26,
    /// Docker 26.1.5 rootless (RootlessKit 2.0.2, slirp4netns) in `openshell-docker26-rootless`.
    Docker26Rootless,
}

impl EngineId {
    /// Whether it runs "elsewhere" (`scripts/remote.sh`): reached with [`Self::remote_engine`].
    pub fn remote(self) -> bool {
        matches!(self, EngineId::RemoteDockerd | EngineId::RemotePodman)
    }

    /// The network namespace it runs in (`scripts/engines-2026.sh`), which is its host: the
    /// gateway must run there. `None` for this machine's engines and the remote ones.
    pub fn netns(self) -> Option<&'static str> {
        match self {
            EngineId::Podman5 => Some("openshell-podman5"),
            EngineId::Podman5Rootless => Some("openshell-podman5-rootless"),
            EngineId::Podman5Session => Some("openshell-podman5-session"),
            EngineId::Docker26 => Some("openshell-docker26"),
            EngineId::Docker26Rootless => Some("openshell-docker26-rootless"),
            _ => None,
        }
    }

    /// Whether it runs in a network namespace of its own ([`Self::netns`]).
    pub fn namespaced(self) -> bool {
        self.netns().is_some()
    }

    /// Whether it is one of this machine's engines, reached and routed from this machine's own
    /// network namespace: neither remote nor namespaced. The in-process scenarios (`it`) run
    /// only these: their gateway listens in the test process's namespace, which is not a
    /// namespaced engine's host (the CLI tests run `doctor` inside that namespace instead).
    pub fn on_this_host(self) -> bool {
        !self.remote() && !self.namespaced()
    }

    /// Whether it runs as an unprivileged user.
    pub fn rootless(self) -> bool {
        matches!(
            self,
            EngineId::PodmanRootless
                | EngineId::DockerdRootless
                | EngineId::Podman5Rootless
                | EngineId::Podman5Session
                | EngineId::Docker26Rootless
        )
    }

    /// Whether it is Podman.
    pub fn podman(self) -> bool {
        matches!(
            self,
            EngineId::Podman
                | EngineId::PodmanRootless
                | EngineId::RemotePodman
                | EngineId::Podman5
                | EngineId::Podman5Rootless
                | EngineId::Podman5Session
        )
    }

    /// The engine (a namespaced one too); panics for a remote one, which needs
    /// [`remote_settings`].
    pub fn local(self) -> Engine {
        match self {
            EngineId::Dockerd => dockerd(),
            EngineId::Podman => podman(),
            EngineId::PodmanRootless => podman_rootless(),
            EngineId::DockerdRootless => dockerd_rootless(),
            EngineId::Podman5 => engine_2026(
                "podman 5",
                "podman5",
                "podman.sock",
                true,
                "podman",
                "openshell-podman5",
            ),
            EngineId::Podman5Rootless => engine_2026(
                "rootless podman 5",
                "podman5-rootless",
                "runtime/podman/podman.sock",
                true,
                "podman-rootless",
                "openshell-podman5-rootless",
            ),
            EngineId::Podman5Session => engine_2026(
                "rootless podman 5 with session",
                "podman5-session",
                "runtime/podman/podman.sock",
                true,
                "podman-rootless",
                "openshell-podman5-session",
            ),
            EngineId::Docker26 => engine_2026(
                "docker 26",
                "docker26",
                "docker.sock",
                false,
                "native-docker",
                "openshell-docker26",
            ),
            EngineId::Docker26Rootless => engine_2026(
                "rootless docker 26",
                "docker26-rootless",
                "runtime/docker.sock",
                false,
                "rootless-docker",
                "openshell-docker26-rootless",
            ),
            EngineId::RemoteDockerd | EngineId::RemotePodman => {
                panic!("{self:?} is remote: use remote_engine")
            }
        }
    }

    /// The engine, a remote one from `scripts/remote.sh`'s `settings`.
    pub fn remote_engine(self, settings: &std::collections::BTreeMap<String, String>) -> Engine {
        match self {
            EngineId::RemoteDockerd => remote_dockerd(settings),
            EngineId::RemotePodman => remote_podman(settings),
            local => local.local(),
        }
    }
}

/// A driver the live tests connect through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverName {
    /// The Docker API (Docker's, or Podman's compatible one).
    Docker,
    /// Podman's libpod API.
    Podman,
}

impl DriverName {
    /// `docker` or `podman`, as `--driver` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            DriverName::Docker => "docker",
            DriverName::Podman => "podman",
        }
    }
}

/// One engine through one driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair {
    /// Its name, e.g. `podman_libpod` (the test module of `tests/it/live.rs`).
    pub name: &'static str,
    /// The engine.
    pub engine: EngineId,
    /// The driver.
    pub driver: DriverName,
}

impl Pair {
    /// `docker` or `podman`, as `--driver` takes it.
    pub fn driver(&self) -> &'static str {
        self.driver.as_str()
    }

    /// Whether the driver is the engine's own API (not Podman's Docker-compatible one).
    pub fn native(&self) -> bool {
        self.engine.podman() == (self.driver == DriverName::Podman)
    }

    /// The local engine ([`EngineId::local`]).
    pub fn local(&self) -> Engine {
        self.engine.local()
    }
}

/// The one list of live engine/driver pairs, for a macro that writes tests per pair
/// (`tests/it/live.rs`) and as data ([`PAIRS`]). `live_pairs!(my_macro)` calls
/// `my_macro! { name => engine, connect; ... }` with each local pair (`engine` an expression
/// making its [`Engine`], `connect` `docker` or `podman`); the remote pairs need
/// `scripts/remote.sh`'s settings, and the namespaced pairs (Debian 13's engines of
/// `scripts/engines-2026.sh`, each in the network namespace [`EngineId::netns`]) need their
/// gateway inside that namespace, so both are in [`PAIRS`] only: the CLI tests run `doctor`
/// there (`ip netns exec`).
#[macro_export]
macro_rules! live_pairs {
    ($callback:ident) => {
        $crate::live_pairs!(@list (callback $callback));
    };
    (@list $how:tt) => {
        $crate::live_pairs! { @emit $how;
            local {
                dockerd: Dockerd, docker;
                podman_docker_api: Podman, docker;
                podman_libpod: Podman, podman;
                podman_rootless_docker_api: PodmanRootless, docker;
                podman_rootless_libpod: PodmanRootless, podman;
                dockerd_rootless: DockerdRootless, docker;
            }
            remote {
                remote_dockerd: RemoteDockerd, docker;
                remote_podman_docker_api: RemotePodman, docker;
                remote_podman_libpod: RemotePodman, podman;
            }
            namespaced {
                podman5_docker_api: Podman5, docker;
                podman5_libpod: Podman5, podman;
                podman5_rootless_docker_api: Podman5Rootless, docker;
                podman5_rootless_libpod: Podman5Rootless, podman;
                podman5_session_docker_api: Podman5Session, docker;
                podman5_session_libpod: Podman5Session, podman;
                docker26: Docker26, docker;
                docker26_rootless: Docker26Rootless, docker;
            }
        }
    };
    (@emit (callback $callback:ident);
        local { $($name:ident: $engine:ident, $connect:ident;)* }
        remote { $($_rname:ident: $_rengine:ident, $_rconnect:ident;)* }
        namespaced { $($_nname:ident: $_nengine:ident, $_nconnect:ident;)* }
    ) => {
        $callback! { $($name => $crate::live::EngineId::$engine.local(), $connect;)* }
    };
    (@emit (data);
        local { $($name:ident: $engine:ident, $connect:ident;)* }
        remote { $($rname:ident: $rengine:ident, $rconnect:ident;)* }
        namespaced { $($nname:ident: $nengine:ident, $nconnect:ident;)* }
    ) => {
        &[
            $($crate::live::Pair {
                name: stringify!($name),
                engine: $crate::live::EngineId::$engine,
                driver: $crate::live_pairs!(@driver $connect),
            },)*
            $($crate::live::Pair {
                name: stringify!($rname),
                engine: $crate::live::EngineId::$rengine,
                driver: $crate::live_pairs!(@driver $rconnect),
            },)*
            $($crate::live::Pair {
                name: stringify!($nname),
                engine: $crate::live::EngineId::$nengine,
                driver: $crate::live_pairs!(@driver $nconnect),
            },)*
        ]
    };
    (@driver docker) => { $crate::live::DriverName::Docker };
    (@driver podman) => { $crate::live::DriverName::Podman };
}

/// Every live engine/driver pair (the list of [`live_pairs!`]); tests that need some of them
/// filter it, e.g. `pairs().filter(|p| p.engine.rootless())`, or
/// `p.engine.on_this_host()` for this machine's own engines.
pub const PAIRS: &[Pair] = live_pairs!(@list (data));

/// [`PAIRS`], to filter.
pub fn pairs() -> impl Iterator<Item = Pair> {
    PAIRS.iter().copied()
}

/// Where `scripts/vm.sh up` writes the VMs' settings (issue 24).
pub const VM_ENV_FILE: &str = "/run/openshell-vm/env";

/// A VM of `scripts/vm.sh`: its engine's socket, forwarded to this host as its runtime forwards
/// it, and the network namespace whose loopback is the VM's "host loopback" (where a gateway
/// must run for the VM's NAT to reach it).
#[derive(Debug, Clone)]
pub struct Vm {
    /// `podman-machine` or `colima`, as `scripts/vm.sh` names it.
    pub name: &'static str,
    /// The forwarded engine socket.
    pub socket: String,
    /// `/proc/<pid>/ns/net` of the VM's network namespace.
    pub netns: String,
    /// Every setting `scripts/vm.sh` wrote.
    pub settings: std::collections::BTreeMap<String, String>,
}

impl Vm {
    /// The engine behind the forwarded socket, managed with the docker CLI (Podman serves the
    /// Docker API on the same socket): only for cleanup.
    pub fn engine(&self) -> Engine {
        Engine {
            name: self.name,
            cli: vec![
                "docker".into(),
                "--host".into(),
                format!("unix://{}", self.socket),
            ],
            socket: self.socket.clone(),
            podman: self.name == "podman-machine",
            runtime: self.name,
            rootless_host_loopback: false,
            // The socket is forwarded to this host; the VM's gateway side runs in
            // `self.netns`, which the VM tests enter themselves.
            netns: None,
        }
    }
}

/// The VM `name` of `scripts/vm.sh` (`podman-machine` or `colima`), or `None` (a skip, or a
/// failure under `OPENSHELL_LIVE=require`) when it is not up.
pub fn vm(name: &'static str) -> Option<Vm> {
    let required = std::env::var(LIVE_ENV).is_ok_and(|v| v == "require");
    let missing = |what: String| {
        if required {
            panic!("{what}; {LIVE_ENV}=require demands the VMs");
        }
        eprintln!("SKIPPED (no VM): {what}");
        None
    };
    let Ok(text) = std::fs::read_to_string(VM_ENV_FILE) else {
        return missing(format!(
            "{VM_ENV_FILE} is missing: run `scripts/vm.sh up` as root (two qemu VMs, networked as Podman machine and as Colima)"
        ));
    };
    let settings: std::collections::BTreeMap<String, String> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let var = format!("OPENSHELL_VM_{}", name.replace('-', "_").to_uppercase());
    let (Some(socket), Some(netns)) = (
        settings.get(&format!("{var}_SOCKET")).cloned(),
        settings.get(&format!("{var}_NETNS")).cloned(),
    ) else {
        return missing(format!(
            "{name} is not in {VM_ENV_FILE}: run `scripts/vm.sh up {name}`"
        ));
    };
    let vm = Vm {
        name,
        socket,
        netns,
        settings,
    };
    let answers = Command::new("curl")
        .args([
            "-fsS",
            "--max-time",
            "10",
            "--unix-socket",
            &vm.socket,
            "http://d/_ping",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !answers {
        return missing(format!(
            "{name}'s engine does not answer on {}: run `scripts/vm.sh up {name}`",
            vm.socket
        ));
    }
    Some(vm)
}
