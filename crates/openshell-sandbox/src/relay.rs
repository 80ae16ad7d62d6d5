//! The relay route's gateway side: a relay container on the sandbox network, whose stdin and
//! stdout the gateway holds through the engine's attach API, carrying every sandbox connection
//! to the gateway on `127.0.0.1` as one stream of a yamux session (see docs/relay.md).
//!
//! [`Relay::start`] reaps relays a killed gateway left on this network, puts the relay image
//! into the engine (imported from the `openshell-relay` binary for the engine's architecture,
//! or a prebuilt image), starts one relay, attaches and runs the session. When the session
//! ends without [`Relay::shutdown`] (the relay died or was removed), it starts a new relay, a
//! bounded number of times. The gateway connects each stream to its own port on loopback and
//! nowhere else: neither the relay nor a sandbox can name a destination.
//!
//! Where the engine runs on this host's kernel and filesystem (the policy's
//! [`relay_carrier`](openshell_runtime::relay_carrier) says [`RelayCarrier::Socket`]), the
//! relay gets a Unix socket of the gateway through a bind mount and carries connections there
//! instead ([`socket`]): bytes skip the engine's attach copy loop. A relay that cannot see the
//! socket says so at once, and the gateway starts one that carries over attach instead.
//!
//! A relay that is replaced asks the engine for its predecessor's address, so that sandboxes
//! created before (whose `/etc/hosts` names that address) still reach the gateway.
//!
//! For host-network sandboxes ([`Relay::start_in`] with [`NetworkMode::Host`]) the relay runs
//! in the engine's host network namespace instead and listens on that namespace's
//! `127.0.0.1:<port>` only; it is handed out once its log says it listens, and a relay that
//! cannot listen there (the namespace is the gateway's own, whose port the gateway holds) is
//! refused with its reason ([`RelayError::Listen`]).

use std::future::poll_fn;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use openshell_runtime::consts::{
    LABEL_MANAGED, LABEL_RELAY, LABEL_RELAY_CREATED, LABEL_RELAY_NETWORK, LABEL_RELAY_OWNER,
    LOOPBACK_V4,
};
use openshell_runtime::{Exposure, HostTarget, NetworkMode, RelayCarrier, Route};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_util::compat::{FuturesAsyncReadCompatExt, TokioAsyncReadCompatExt};

use openshell_driver::{BindMount, ContainerConfig, ContainerSummary};

use crate::driver::{remove_retrying, SandboxDriver};
use crate::elf::{self, ElfError};
use crate::error::EngineError;
use crate::network::is_ours;
use crate::reap::{self, Owner};

mod socket;

use socket::GatewaySocket;

include!(concat!(env!("OUT_DIR"), "/embedded_relays.rs"));

/// The relay binary this build embeds for `arch` (`x86_64`, `aarch64`), if it does: the build
/// script compiles `crates/openshell-relay` statically for every architecture the toolchain
/// can target (see docs/relay.md). [`Relay::start`] and the probe use it unless
/// [`RelayOptions`] names a binary or an image.
pub fn embedded_relay(arch: &str) -> Option<&'static [u8]> {
    EMBEDDED
        .iter()
        .find(|(a, _)| *a == arch)
        .map(|(_, bytes)| *bytes)
}

/// The architectures this build embeds a relay for.
pub fn embedded_arches() -> Vec<&'static str> {
    EMBEDDED.iter().map(|(a, _)| *a).collect()
}

/// Whether a relay can be started for an engine that reports `engine_arch` (its `/info`
/// Architecture) with `opts`, without asking the engine anything: a relay image is named, or a
/// binary for that architecture is named, embedded or beside the executable. The error names
/// the architecture and what fixes it; a gateway (and `doctor`) should not offer the relay
/// route when this fails.
pub fn relay_ready(opts: &RelayOptions, engine_arch: &str) -> Result<(), RelayError> {
    if opts.image.is_some() {
        return Ok(());
    }
    let arch = normalise_arch(engine_arch).ok_or_else(|| RelayError::UnknownArch {
        arch: openshell_runtime::display_value(engine_arch),
    })?;
    relay_binary(opts, arch).map(|_| ())
}

/// Names an explicit relay binary.
pub const ENV_RELAY_BINARY: &str = "OPENSHELL_RELAY_BINARY";
/// Names a prebuilt relay image, used instead of importing a binary.
pub const ENV_RELAY_IMAGE: &str = "OPENSHELL_RELAY_IMAGE";
/// The relay binary's path inside its image.
const RELAY_PATH: &str = "/openshell-relay";
/// The repository relay images are imported as; the tag is the binary's hash.
const RELAY_REPO: &str = "localhost/openshell-relay";
/// Largest binary imported; the relay is a few MiB.
const MAX_BINARY: u64 = 64 * 1024 * 1024;
/// Restarts after the session ended, before the relay is given up as gone.
const MAX_RESTARTS: u32 = 5;
/// Pause before a restart.
const RESTART_PAUSE: Duration = Duration::from_millis(200);
/// How long a started relay may take to get its address on the network.
const ADDRESS_WAIT: Duration = Duration::from_secs(5);
/// The most engine calls one replacement makes besides its address lookups: removing the old
/// relay (up to 4 tries), then launching the next (create, start, attach, a last inspect, and a
/// removal when it fails), with one to spare.
const REPLACE_CALLS: u32 = 10;
/// The pauses of one replacement, at most (between removal tries, before the launch), rounded up.
const REPLACE_PAUSES: Duration = Duration::from_secs(2);
/// The line a relay logs once it listens (crates/openshell-relay).
const LISTENING: &str = "openshell-relay: listening on ";
/// The start of the line a relay logs when it cannot listen (crates/openshell-relay).
const CANNOT_LISTEN: &str = "openshell-relay: cannot listen on ";
/// The start of the line a relay logs when it cannot see the gateway's socket.
const NO_SOCKET: &str = "openshell-relay: no gateway socket at ";
/// The most of a relay's log read while waiting for that line.
const MAX_RELAY_LOG: usize = 16 * 1024;
/// The relay label's network value for relays in an engine's host network namespace (a name
/// both engines reserve, so no sandbox network has it).
const HOST_RELAYS: &str = "host";
/// How long a relay another host's gateway created may stay unstarted before it is reaped.
const START_GRACE: Duration = Duration::from_secs(120);
/// How long connecting a stream to the gateway may take.
const GATEWAY_CONNECT: Duration = Duration::from_secs(5);
/// Most streams the gateway carries at once; a stream beyond them is reset at once (that one
/// connection is refused). The relay itself opens at most 256 at a time, so only a relay that
/// is not ours, or streams the relay closed that we still hold, come near it.
const CARRIED_STREAMS: usize = 512;
/// yamux's own stream limit for the session, which ends the whole session when a peer crosses
/// it (yamux 0.14): kept well above [`CARRIED_STREAMS`], so that the streams we reset and the
/// ones still closing never reach it. (Its receive window, 1 GiB, allows up to 4096.)
const SESSION_STREAMS: usize = 2 * CARRIED_STREAMS;
/// A session that lived this long refills the restart budget: the budget is against a relay
/// that cannot stay up, not a lifetime cap on a gateway whose relay is flooded now and then.
const REFILL_AFTER: Duration = Duration::from_secs(60);

/// Where the relay comes from and which port it carries.
#[derive(Debug, Clone, Default)]
pub struct RelayOptions {
    /// The gateway's port: the relay listens on it, and streams go to `127.0.0.1:<port>`.
    pub port: u16,
    /// An explicit relay binary (`OPENSHELL_RELAY_BINARY`); else the one this build embeds for
    /// the engine's architecture ([`embedded_relay`]); else one beside the current executable
    /// (`openshell-relay-<arch>`, then `openshell-relay`).
    pub binary: Option<PathBuf>,
    /// A prebuilt relay image (`OPENSHELL_RELAY_IMAGE`), used as is (pulled when missing).
    pub image: Option<String>,
    /// How the relay carries connections: the attach stream (the default), or the gateway's
    /// Unix socket where the engine shares this host's kernel and filesystem.
    /// [`Gateway::start`](crate::Gateway::start) sets it from the policy's
    /// [`relay_carrier`](openshell_runtime::relay_carrier); a relay that cannot see the socket
    /// falls back to attach.
    pub carrier: RelayCarrier,
}

impl RelayOptions {
    /// Options for `port`, with the binary and image from the process environment.
    pub fn from_env(port: u16) -> Result<RelayOptions, RelayError> {
        let image = match std::env::var_os(ENV_RELAY_IMAGE) {
            None => None,
            Some(v) => Some(v.into_string().map_err(|_| RelayError::Env {
                name: ENV_RELAY_IMAGE,
            })?),
        };
        Ok(RelayOptions {
            port,
            binary: std::env::var_os(ENV_RELAY_BINARY).map(PathBuf::from),
            image: image.filter(|s| !s.is_empty()),
            carrier: RelayCarrier::Attach,
        })
    }
}

/// Why a relay could not be set up or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// No binary for the engine's architecture was found.
    #[error("no relay binary for the engine's architecture {arch}: this build embeds one for {} only, and looked at {}; rebuild with the {arch} target installed (rustup target add {arch}-unknown-linux-gnu, and a C cross linker: apt install gcc-{arch}-linux-gnu) so the build embeds it, or build one (RUSTFLAGS=\"-C target-feature=+crt-static\" cargo build --release -p openshell-relay --target {arch}-unknown-linux-gnu) and set {ENV_RELAY_BINARY} to it, or set {ENV_RELAY_IMAGE} to a prebuilt relay image", embedded_list(), display_paths(.looked))]
    NoBinary {
        /// The engine's architecture, normalised (`x86_64`, `aarch64`).
        arch: String,
        /// Every path looked at.
        looked: Vec<PathBuf>,
    },
    /// The named binary is not a Linux executable for the engine's architecture.
    #[error("relay binary {} is {found}, but the engine runs {arch}; set {ENV_RELAY_BINARY} to a binary for {arch}", .path.display())]
    WrongBinary {
        /// The binary.
        path: PathBuf,
        /// What it is.
        found: String,
        /// The engine's architecture.
        arch: String,
    },
    /// The relay binary is dynamically linked: the relay image holds nothing but the binary,
    /// so its loader and libraries are not there and it would exit at once.
    #[error("relay binary {} is dynamically linked, and the relay image holds only the binary, so it cannot start there; build it statically (RUSTFLAGS=\"-C target-feature=+crt-static\" cargo build --release -p openshell-relay --target {arch}-unknown-linux-gnu) and set {ENV_RELAY_BINARY} to it", .path.display())]
    NotStatic {
        /// The binary.
        path: PathBuf,
        /// The engine's architecture.
        arch: String,
    },
    /// The binary's ELF header points past the end of the file (a truncated copy) or at tables
    /// that cannot be: imported, it would not start.
    #[error("relay binary {} is a truncated or malformed ELF file ({reason}), which would not start; build or copy it again whole, and set {ENV_RELAY_BINARY} to it", .path.display())]
    Malformed {
        /// The binary.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The engine reports an architecture we build no relay for.
    #[error("the engine reports architecture {arch:?}, for which there is no relay binary; set {ENV_RELAY_IMAGE} to a relay image for it")]
    UnknownArch {
        /// What the engine reported.
        arch: String,
    },
    /// The binary could not be read.
    #[error("cannot read relay binary {}: {source}", .path.display())]
    Read {
        /// The binary.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// An environment variable we read is not UTF-8.
    #[error("environment variable {name} is not valid UTF-8; fix or unset it")]
    Env {
        /// Its name.
        name: &'static str,
    },
    /// An engine call failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The relay has no address on the network.
    #[error("relay container {container} has no address on network {network} (its state: {state}); see its logs")]
    NoAddress {
        /// The container.
        container: String,
        /// The network.
        network: String,
        /// Its state, in the engine's words.
        state: String,
    },
    /// A host-network relay could not listen on the engine namespace's loopback: most likely
    /// that namespace is the gateway's own, where the gateway holds the port.
    #[error("relay container {container} could not listen on {address} in the engine's host network namespace ({log}); if that namespace is the gateway's own, 127.0.0.1 reaches the gateway directly: use route_kind auto or direct")]
    Listen {
        /// The container.
        container: String,
        /// Where it was to listen.
        address: SocketAddr,
        /// What its log says (sanitised, capped), or its state.
        log: String,
    },
    /// A relay told to carry through the gateway's socket cannot see it at its mount point (the
    /// engine runs in another mount namespace, chroot or machine): the gateway falls back to
    /// the attach stream.
    #[error("relay container {container} cannot see the gateway's socket ({log}); the engine does not share this host's filesystem, so the relay carries over the engine's attach stream")]
    NoSocket {
        /// The container.
        container: String,
        /// What its log says (sanitised, capped), or its state.
        log: String,
    },
    /// The route handed to [`Relay::route`] is for another network mode than the relay's.
    #[error("the relay runs for {relay} networking, but the route is for {route} networking; start a relay for the route's mode (Relay::start_in)")]
    WrongMode {
        /// The relay's mode.
        relay: NetworkMode,
        /// The route's mode.
        route: NetworkMode,
    },
    /// The relay is gone and could not be restarted.
    #[error("the relay on network {network} is gone and could not be restarted; sandboxes cannot reach the gateway through it. Start a new relay")]
    Gone {
        /// The network.
        network: String,
    },
    /// No random name could be drawn for the relay container.
    #[error("cannot name the relay container: {0}")]
    Name(#[from] crate::token::TokenError),
}

fn embedded_list() -> String {
    match embedded_arches().as_slice() {
        [] => "no architecture".into(),
        arches => arches.join(", "),
    }
}

fn display_paths(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "nothing".into();
    }
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The engine's `/info` Architecture in one vocabulary: Docker says `x86_64`/`aarch64`,
/// libpod `amd64`/`arm64`.
pub fn normalise_arch(engine: &str) -> Option<&'static str> {
    match engine.trim().to_ascii_lowercase().as_str() {
        "x86_64" | "amd64" => Some("x86_64"),
        "aarch64" | "arm64" => Some("aarch64"),
        _ => None,
    }
}

/// The relay binary for `arch`: the explicit one, else the embedded one, else one beside the
/// current executable; with where it came from.
fn relay_binary(
    opts: &RelayOptions,
    arch: &str,
) -> Result<(PathBuf, std::borrow::Cow<'static, [u8]>), RelayError> {
    if opts.binary.is_none() {
        if let Some(bytes) = embedded_relay(arch) {
            let path = PathBuf::from(format!("(the relay embedded for {arch})"));
            // What the build script made is checked like any file: a wrong one is a build bug.
            check_binary(&path, bytes, arch)?;
            return Ok((path, std::borrow::Cow::Borrowed(bytes)));
        }
    }
    let (path, bytes) = relay_binary_file(opts, arch)?;
    Ok((path, std::borrow::Cow::Owned(bytes)))
}

/// Reads the relay binary for `arch` from a file: the explicit one, else one beside the
/// current executable.
fn relay_binary_file(opts: &RelayOptions, arch: &str) -> Result<(PathBuf, Vec<u8>), RelayError> {
    let candidates: Vec<PathBuf> = match &opts.binary {
        Some(p) => vec![p.clone()],
        None => std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf))
            .map(|dir| {
                vec![
                    dir.join(format!("openshell-relay-{arch}")),
                    dir.join("openshell-relay"),
                ]
            })
            .unwrap_or_default(),
    };
    let explicit = opts.binary.is_some();
    for path in &candidates {
        let bytes = match read_capped(path) {
            Ok(b) => b,
            Err(source) if !explicit && source.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(RelayError::Read {
                    path: path.clone(),
                    source,
                })
            }
        };
        match check_binary(path, &bytes, arch) {
            Ok(()) => return Ok((path.clone(), bytes)),
            // A host binary of another architecture beside us is not for this engine.
            Err(RelayError::WrongBinary { .. }) if !explicit => continue,
            Err(e) => return Err(e),
        }
    }
    Err(RelayError::NoBinary {
        arch: arch.to_string(),
        looked: candidates,
    })
}

/// A relay binary must be a whole, static ELF executable for the engine's architecture.
fn check_binary(path: &Path, bytes: &[u8], arch: &str) -> Result<(), RelayError> {
    let found = match elf::inspect(bytes) {
        Ok(facts) => facts,
        Err(ElfError::NotElf) => {
            return Err(RelayError::WrongBinary {
                path: path.to_path_buf(),
                found: "not an ELF executable".to_string(),
                arch: arch.to_string(),
            })
        }
        Err(ElfError::Malformed(reason)) => {
            return Err(RelayError::Malformed {
                path: path.to_path_buf(),
                reason,
            })
        }
    };
    if found.arch != arch {
        return Err(RelayError::WrongBinary {
            path: path.to_path_buf(),
            found: found.arch.to_string(),
            arch: arch.to_string(),
        });
    }
    if found.interpreter {
        return Err(RelayError::NotStatic {
            path: path.to_path_buf(),
            arch: arch.to_string(),
        });
    }
    Ok(())
}

fn read_capped(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_BINARY + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_BINARY {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_BINARY} bytes"
        )));
    }
    Ok(bytes)
}

/// The image tarball: the binary at `/openshell-relay`, nothing else.
fn relay_tarball(binary: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(binary.len() as u64);
    header.set_mode(0o755);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, RELAY_PATH.trim_start_matches('/'), binary)?;
    tar.into_inner()
}

/// The image reference for a binary: its repository, tagged by the binary's hash.
fn image_reference(arch: &str, binary: &[u8]) -> String {
    let digest = Sha256::digest(binary);
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("{RELAY_REPO}:{arch}-{hex}")
}

/// Why the relay labelled `labels`, in engine state `status`, is left behind, or `None` when
/// it may still serve: its gateway is known to be gone (see [`reap::owner_gone`]), or it is no
/// longer running (a supervisor replaces a relay that died, so an exited one serves no one). A
/// relay being created or started by a live gateway, here or on another host, is never touched.
///
/// A relay that another host's gateway created and never started for [`START_GRACE`] (or
/// whose creation time is not labelled) is left behind too: a gateway starts its relay within
/// seconds of creating it, and one that died in between (here, its owner is seen gone) left a
/// relay no one would ever remove.
fn relay_stale(
    labels: &std::collections::BTreeMap<String, String>,
    status: Option<&str>,
    here: &Owner,
    alive: &dyn Fn(u32) -> bool,
    now: u64,
) -> Option<String> {
    let owner = labels.get(LABEL_RELAY_OWNER).map(String::as_str);
    if reap::owner_gone(owner, here, alive) {
        return Some(format!(
            "its gateway ({}) is gone",
            owner.unwrap_or_default()
        ));
    }
    match status {
        Some(s @ ("exited" | "dead" | "stopped")) => Some(format!("it is {s}")),
        Some(s @ ("created" | "configured")) if reap::owner_elsewhere(owner, here) => {
            let created = labels
                .get(LABEL_RELAY_CREATED)
                .and_then(|c| c.parse::<u64>().ok());
            match created {
                Some(at) if now.saturating_sub(at) < START_GRACE.as_secs() => None,
                Some(at) => Some(format!(
                    "it is {s} and never started, {} s after a gateway elsewhere created it",
                    now.saturating_sub(at)
                )),
                None => Some(format!(
                    "it is {s} and never started, and says nothing of when it was created"
                )),
            }
        }
        _ => None,
    }
}

/// Removes the relays on `driver`' network that a gateway left behind: those whose owner is gone,
/// and those no longer running, and this host's relay socket directories of gateways that are
/// gone. Returns how many relays were removed.
pub async fn reap_relays(driver: &SandboxDriver) -> Result<usize, EngineError> {
    reap_relays_on(driver, &driver.options().network).await
}

/// [`reap_relays`] for the relays labelled with `network` (a sandbox network, or
/// [`HOST_RELAYS`]).
async fn reap_relays_on(driver: &SandboxDriver, network: &str) -> Result<usize, EngineError> {
    // The socket directories of gateways that are gone go too (they are this host's, not the
    // engine's, so they are not counted).
    socket::sweep_stale();
    let here = Owner::here();
    let relays = driver
        .call(
            "container list",
            driver.ops().list_containers(LABEL_RELAY, "true"),
        )
        .await?;
    let mut reaped = 0;
    for relay in relays {
        if relay.labels.get(LABEL_RELAY_NETWORK).map(String::as_str) != Some(network) {
            continue;
        }
        if let Verdict::Stale(why) = judge(driver, &relay, &here).await {
            tracing::info!(container = %relay.id, %why, "reaping a relay left behind");
            remove(driver, &relay.id).await?;
            reaped += 1;
        }
    }
    Ok(reaped)
}

/// Removes this process's own relays, on every network: for a run stopped by a signal, whose
/// relays' sessions end with it. Returns how many were removed.
pub async fn remove_own_relays(driver: &SandboxDriver) -> Result<usize, EngineError> {
    let me = Owner::here().to_string();
    let relays = driver
        .call(
            "container list",
            driver.ops().list_containers(LABEL_RELAY, "true"),
        )
        .await?;
    let mut removed = 0;
    for relay in relays
        .iter()
        .filter(|r| r.labels.get(LABEL_RELAY_OWNER) == Some(&me))
    {
        remove(driver, &relay.id).await?;
        removed += 1;
    }
    Ok(removed)
}

/// Removes the relays on `driver`' network that go with it: this process's own, and those left
/// behind (owner gone, or no longer running). Another live gateway's relay stays: the engine
/// then refuses to remove the network, which stays for that gateway.
pub(crate) async fn remove_relays(driver: &SandboxDriver) -> Result<(), EngineError> {
    let network = &driver.options().network;
    let here = Owner::here();
    let me = here.to_string();
    let relays = driver
        .call(
            "container list",
            driver.ops().list_containers(LABEL_RELAY, "true"),
        )
        .await?;
    for relay in relays
        .iter()
        .filter(|r| r.labels.get(LABEL_RELAY_NETWORK) == Some(network))
    {
        if relay.labels.get(LABEL_RELAY_OWNER) != Some(&me) {
            match judge(driver, relay, &here).await {
                Verdict::Gone => continue,
                Verdict::Stays => {
                    tracing::info!(container = %relay.id, "another gateway's relay stays on the network");
                    continue;
                }
                Verdict::Stale(_) => {}
            }
        }
        remove(driver, &relay.id).await?;
    }
    Ok(())
}

/// What a sweep does with a listed relay of another run.
enum Verdict {
    /// It was removed meanwhile.
    Gone,
    /// Its gateway may still use it.
    Stays,
    /// Left behind, for this reason.
    Stale(String),
}

/// Whether the listed `relay` was left behind ([`relay_stale`], on its labels and its state as
/// the engine reports it now; a state that cannot be read is judged on the labels alone).
async fn judge(driver: &SandboxDriver, relay: &ContainerSummary, here: &Owner) -> Verdict {
    let status = match driver
        .call(
            "container inspect",
            driver.ops().inspect_container(&relay.id),
        )
        .await
    {
        Ok(s) => Some(s.status),
        Err(e) if e.is_not_found() => return Verdict::Gone,
        Err(e) => {
            tracing::debug!(error = %e, container = %relay.id, "relay state unknown");
            None
        }
    };
    match relay_stale(
        &relay.labels,
        status.as_deref(),
        here,
        &reap::pid_alive,
        reap::now_secs(),
    ) {
        Some(why) => Verdict::Stale(why),
        None => Verdict::Stays,
    }
}

async fn remove(driver: &SandboxDriver, id: &str) -> Result<(), EngineError> {
    // Killed first, so that no engine waits a stop timeout. A relay whose session just ended
    // is exiting while it is removed: Podman answers 500 (state improper) and Docker 409
    // (removal in progress) for a moment.
    driver.remove_now("relay", id).await
}

/// Makes sure the relay image (which is also the probe's image) is in the engine; returns its
/// reference.
pub(crate) async fn ensure_relay_image(
    driver: &SandboxDriver,
    opts: &RelayOptions,
) -> Result<String, RelayError> {
    if let Some(image) = &opts.image {
        if !driver
            .call("image inspect", driver.ops().image_exists(image))
            .await?
        {
            driver
                .call("image pull", driver.ops().pull_image(image))
                .await?;
        }
        return Ok(image.clone());
    }
    let docs = driver
        .call("engine facts", driver.ops().engine_documents())
        .await?;
    let reported = docs.info["Architecture"].as_str().unwrap_or_default();
    let arch = normalise_arch(reported).ok_or_else(|| RelayError::UnknownArch {
        arch: openshell_runtime::display_value(reported),
    })?;
    let (path, binary) = relay_binary(opts, arch)?;
    let reference = image_reference(arch, &binary);
    if !driver
        .call("image inspect", driver.ops().image_exists(&reference))
        .await?
    {
        let tarball = relay_tarball(&binary).map_err(|source| RelayError::Read {
            path: path.clone(),
            source,
        })?;
        driver
            .call(
                "image import",
                driver.ops().import_image(&reference, tarball),
            )
            .await?;
    }
    // Every other build's image stays behind otherwise; failing to tidy up is no reason to
    // refuse the relay.
    match prune_relay_images(driver, RELAY_REPO, &reference, IMAGE_GRACE).await {
        Ok(removed) if !removed.is_empty() => {
            tracing::info!(
                ?removed,
                "removed relay images of other builds that no container uses"
            );
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "relay images of other builds not looked at"),
    }
    Ok(reference)
}

/// A relay image of another build imported less than this long ago is kept: a gateway of that
/// build may be between importing it and creating its relay, which the engine cannot see.
const IMAGE_GRACE: Duration = Duration::from_secs(3600);

/// Whether `reference` is a relay image of `repository` as [`image_reference`] names them:
/// `<repository>:<arch>-<24 hex digits>`. Nothing else is ever removed.
fn is_relay_image(repository: &str, reference: &str) -> bool {
    let Some(tag) = reference
        .strip_prefix(repository)
        .and_then(|t| t.strip_prefix(':'))
    else {
        return false;
    };
    let Some((arch, hash)) = tag.split_once('-') else {
        return false;
    };
    normalise_arch(arch) == Some(arch)
        && hash.len() == 24
        && hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Removes the relay images of `repository` (the relay's is `localhost/openshell-relay`; a
/// test names its own) other than `keep`: only references of the form the relay gives its
/// images (`<repository>:<arch>-<24 hex digits>`), imported more than `older_than` ago, that no
/// container uses; returns the references removed. The relay calls it each time it puts its
/// image into an engine, with an hour's grace (a gateway of another build may be between
/// importing its image and creating its relay). Whether a container uses an image is the
/// engine's answer: the removal is never forced, so the engine refuses it while any container
/// (running or not, ours or not) was made from the image, and only untags an image that has
/// other references.
pub async fn prune_relay_images(
    driver: &SandboxDriver,
    repository: &str,
    keep: &str,
    older_than: Duration,
) -> Result<Vec<String>, EngineError> {
    let images = driver
        .call("image list", driver.ops().list_images(repository))
        .await?;
    let now = i64::try_from(reap::now_secs()).unwrap_or(i64::MAX);
    let age = i64::try_from(older_than.as_secs()).unwrap_or(i64::MAX);
    let mut removed = Vec::new();
    for image in images
        .iter()
        .filter(|i| i.created > 0 && now.saturating_sub(i.created) >= age)
    {
        for tag in image
            .tags
            .iter()
            .filter(|t| t.as_str() != keep && is_relay_image(repository, t))
        {
            match driver
                .call("image remove", driver.ops().remove_image(tag))
                .await
            {
                Ok(()) => removed.push(tag.clone()),
                // In use (a container was made from it), or gone already: nothing to do.
                Err(e) if e.kind() == Some(openshell_driver::ErrorKind::Conflict) => {
                    tracing::debug!(image = %tag, "relay image in use, kept");
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => tracing::warn!(image = %tag, error = %e, "relay image not removed"),
            }
        }
    }
    Ok(removed)
}

/// What the session task and the handle share.
#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    network: String,
    /// Where the relay runs: on the sandbox network, or in the engine's host namespace.
    mode: NetworkMode,
}

/// The relay's lifecycle, changed under one lock so that a shutdown and a restart cannot
/// cross: a relay launched while the handle shuts down is removed by the task that launched it.
#[derive(Debug, Default)]
struct State {
    /// The running relay's container id and address; `None` while it is replaced, and once it
    /// is gone for good.
    current: Option<(String, IpAddr)>,
    /// The handle is shutting down: no relay is launched from now on.
    stopping: bool,
    /// The session task is replacing a relay whose session ended (removing it, pausing,
    /// launching the next): a shutdown waits for it rather than abort it half-way.
    replacing: bool,
    /// How the running relay carries connections.
    carrier: RelayCarrier,
}

impl Shared {
    /// Runs `f` on the state. A panic elsewhere while it was held leaves nothing half-done
    /// (each change is one assignment), so a poisoned lock is used as it is.
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// A running relay and the session that carries its connections to the gateway.
pub struct Relay {
    driver: SandboxDriver,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
    /// The gateway's socket while a relay may carry through it; its directory goes with it.
    socket: Option<GatewaySocket>,
    /// Why the relay carries over attach although it was asked to use the socket.
    fallback: Option<String>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("driver", &self.driver.name())
            .field("shared", &self.shared)
            .finish()
    }
}

impl Relay {
    /// Starts a relay on `driver`' sandbox network for the gateway listening on
    /// `127.0.0.1:<opts.port>`, after reaping relays a killed gateway left there.
    pub async fn start(driver: SandboxDriver, opts: RelayOptions) -> Result<Relay, RelayError> {
        Relay::start_in(driver, opts, NetworkMode::Bridge).await
    }

    /// Starts a relay for sandboxes in network mode `mode` (a route's
    /// [`network_mode`](Route::network_mode)): on the sandbox network for
    /// [`NetworkMode::Bridge`], as [`start`](Self::start); in the engine's host network
    /// namespace, listening on its `127.0.0.1:<opts.port>` only, for [`NetworkMode::Host`].
    /// Relays a killed gateway left in the same place are reaped first.
    pub async fn start_in(
        driver: SandboxDriver,
        opts: RelayOptions,
        mode: NetworkMode,
    ) -> Result<Relay, RelayError> {
        let reaped = reap_relays_on(&driver, &relay_network(&driver, mode)).await?;
        if reaped > 0 {
            tracing::info!(reaped, "relays left behind were removed");
        }
        let image = ensure_relay_image(&driver, &opts).await?;
        let mut fallback = None;
        let socket = match opts.carrier {
            RelayCarrier::Attach => None,
            RelayCarrier::Socket => match GatewaySocket::open(opts.port) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(error = %e, "the relay carries over the engine's attach stream");
                    fallback = Some(e.to_string());
                    None
                }
            },
        };
        let launched = launch(
            &driver,
            &image,
            opts.port,
            mode,
            socket.as_ref().map(GatewaySocket::dir),
            None,
        )
        .await;
        let (socket, (id, address, attached)) = match (socket, launched) {
            (socket, Ok(launched)) => (socket, launched),
            // The relay cannot use the socket (it cannot see it, or the engine refused the
            // mount): the attach stream carries instead.
            (Some(_), Err(e)) => {
                tracing::warn!(error = %e, "relay cannot use the gateway's socket; falling back to the engine's attach stream");
                fallback = Some(e.to_string());
                let launched = launch(&driver, &image, opts.port, mode, None, None).await?;
                (None, launched)
            }
            (None, Err(e)) => return Err(e),
        };
        let carrier = match socket {
            Some(_) => RelayCarrier::Socket,
            None => RelayCarrier::Attach,
        };
        tracing::info!(%carrier, container = %id, "relay started");
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                current: Some((id, address)),
                carrier,
                ..State::default()
            }),
            network: relay_network(&driver, mode),
            mode,
        });
        let task = tokio::spawn(supervise(
            driver.clone(),
            Arc::clone(&shared),
            image,
            opts.port,
            socket.as_ref().map(|s| s.dir().to_path_buf()),
            attached,
        ));
        Ok(Relay {
            driver,
            shared,
            task,
            socket,
            fallback,
        })
    }

    /// The directory holding the gateway's socket, which the relay gets mounted, while the
    /// relay carries through it; removed by [`shutdown`](Self::shutdown) or a drop.
    pub fn socket_dir(&self) -> Option<&Path> {
        self.socket.as_ref().map(GatewaySocket::dir)
    }

    /// Why the relay carries over the engine's attach stream although it was asked to use the
    /// gateway's socket (the relay could not see it, the engine refused the mount, or the
    /// socket could not be made); `None` when it was not asked, or uses it.
    pub fn fallback(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    /// How the running relay carries connections: through the gateway's socket, or over the
    /// engine's attach stream (also after a relay could not see the socket).
    pub fn carrier(&self) -> RelayCarrier {
        self.shared.with(|s| s.carrier)
    }

    /// The relay's address on the sandbox network, or [`RelayError::Gone`] at once when it is
    /// gone and could not be restarted.
    pub fn address(&self) -> Result<IpAddr, RelayError> {
        self.current().map(|(_, ip)| ip)
    }

    /// The relay container's id.
    pub fn container_id(&self) -> Result<String, RelayError> {
        self.current().map(|(id, _)| id)
    }

    fn current(&self) -> Result<(String, IpAddr), RelayError> {
        self.shared
            .with(|s| s.current.clone())
            .ok_or_else(|| RelayError::Gone {
                network: self.shared.network.clone(),
            })
    }

    /// `route` carried by this relay: sandboxes map `host.openshell.internal` to the relay
    /// (its address on the sandbox network, or `127.0.0.1` for a relay in the engine's host
    /// namespace), and the gateway listens on `127.0.0.1` only. Fails at once when the relay is
    /// gone, or when `route` is for another network mode than the relay's.
    pub fn route(&self, route: &Route) -> Result<Route, RelayError> {
        if route.network_mode() != self.shared.mode {
            return Err(RelayError::WrongMode {
                relay: self.shared.mode,
                route: route.network_mode(),
            });
        }
        let ip = self.address()?;
        let mut carried = route.clone();
        carried.openshell_host = HostTarget::Ip(ip);
        carried.bind = Some(LOOPBACK_V4);
        carried.exposure = Exposure::Loopback;
        Ok(carried)
    }

    /// Ends the session and removes the relay container. When the relay is being replaced at
    /// that moment, waits (bounded) for the replacement, which the session task then removes:
    /// aborting it mid-launch would leave a relay the engine was still creating.
    pub async fn shutdown(mut self) -> Result<(), EngineError> {
        let (current, replacing) = self.shared.with(|s| {
            s.stopping = true;
            (s.current.take(), s.replacing)
        });
        // Removed while the session still holds its stdin, so the relay is not exiting on its
        // own at the same moment (which engines answer with a transient error); then the
        // session ends.
        let removed = match current {
            Some((id, _)) => remove(&self.driver, &id).await,
            None => Ok(()),
        };
        if replacing {
            // Every engine call of a replacement is bounded by the driver's timeout.
            let bound = self.driver.options().timeout.saturating_mul(REPLACE_CALLS)
                + ADDRESS_WAIT
                + REPLACE_PAUSES;
            if tokio::time::timeout(bound, &mut self.task).await.is_err() {
                tracing::warn!(network = %self.shared.network, "relay replacement did not finish; abandoning it to the next start's reaping");
            }
        }
        self.task.abort();
        // The socket's directory goes with it.
        drop(self.socket.take());
        removed
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // Ending the session closes the relay's stdin, so the relay exits; its container is
        // reaped by the next start.
        self.task.abort();
    }
}

/// The network a relay for `mode` is labelled with: the sandbox network, or [`HOST_RELAYS`].
fn relay_network(driver: &SandboxDriver, mode: NetworkMode) -> String {
    match mode {
        NetworkMode::Bridge => driver.options().network.clone(),
        NetworkMode::Host => HOST_RELAYS.to_string(),
    }
}

/// The relay's command: the gateway's socket when it carries through it, its port, and for the
/// engine's host namespace its loopback, so that it faces nothing but that namespace.
fn relay_command(port: u16, mode: NetworkMode, socket: bool) -> Vec<String> {
    let mut command = vec![RELAY_PATH.to_string()];
    if socket {
        command.extend(["socket".to_string(), socket::socket_in_container()]);
    }
    command.push(port.to_string());
    if mode == NetworkMode::Host {
        command.push(LOOPBACK_V4.to_string());
    }
    command
}

/// Creates, starts and attaches to one relay; returns its id, address (on the sandbox network,
/// or `127.0.0.1` in the engine's host namespace) and stdin/stdout. With `socket_dir`, the
/// relay gets that directory mounted read-only and carries through the gateway's socket in it;
/// it is handed out only once its log says it listens (so that one that cannot see the socket
/// fails here, [`RelayError::NoSocket`]). With `address`, it asks the engine for that address
/// on the sandbox network.
async fn launch(
    driver: &SandboxDriver,
    image: &str,
    port: u16,
    mode: NetworkMode,
    socket_dir: Option<&Path>,
    address: Option<IpAddr>,
) -> Result<(String, IpAddr, openshell_driver::Attached), RelayError> {
    let network = relay_network(driver, mode);
    // A random part, as probes have: two gateways that are each pid 1 in their own container
    // would otherwise ask for the same names.
    let name = format!("openshell-relay-{network}-{}", crate::token::random_hex(8)?);
    let config = ContainerConfig {
        name,
        image: image.to_string(),
        command: relay_command(port, mode, socket_dir.is_some()),
        env: Vec::new(),
        labels: [
            (LABEL_MANAGED, "true".to_string()),
            (LABEL_RELAY, "true".to_string()),
            (LABEL_RELAY_NETWORK, network.clone()),
            (LABEL_RELAY_OWNER, Owner::here().to_string()),
            (LABEL_RELAY_CREATED, reap::now_secs().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
        extra_hosts: Vec::new(),
        network: driver.options().network.clone(),
        stdin: true,
        // The relay sits where its sandboxes are: on their bridge, or in the engine's host
        // network namespace (listening on its loopback only).
        network_mode: mode,
        auto_remove: false,
        // The relay is std only, without a SIGTERM handler: as its container's first process it
        // would make every stop or forced removal wait the engine's stop timeout.
        kill_on_stop: true,
        binds: socket_dir
            .map(|dir| BindMount {
                source: dir.to_path_buf(),
                target: socket::MOUNT.to_string(),
                read_only: true,
            })
            .into_iter()
            .collect(),
        address: address.filter(|_| mode == NetworkMode::Bridge),
    };
    let id = driver.create_cleanly(config).await?;
    let started = async {
        driver
            .call("container start", driver.ops().start_container(&id))
            .await?;
        let attach = driver
            .call("container attach", driver.ops().attach(&id))
            .await;
        let attached = if mode == NetworkMode::Host || socket_dir.is_some() {
            // A relay that could not listen, or cannot see the gateway's socket, may be gone
            // before the attach (Podman then refuses it, "container state improper"): its log
            // says why.
            let listen = match mode {
                NetworkMode::Host => Ipv4Addr::LOCALHOST,
                NetworkMode::Bridge => Ipv4Addr::UNSPECIFIED,
            };
            let listened = listening(driver, &id, SocketAddr::from((listen, port))).await;
            match (attach, listened) {
                (Ok(attached), Ok(())) if mode == NetworkMode::Host => {
                    return Ok((IpAddr::from(Ipv4Addr::LOCALHOST), attached))
                }
                (Ok(attached), Ok(())) => attached,
                (_, Err(e @ (RelayError::Listen { .. } | RelayError::NoSocket { .. })))
                | (Ok(_), Err(e)) => return Err(e),
                (Err(e), _) => return Err(e.into()),
            }
        } else {
            attach?
        };
        let deadline = tokio::time::Instant::now() + ADDRESS_WAIT;
        loop {
            let found = driver
                .call(
                    "container inspect",
                    driver.ops().container_address(&id, &network),
                )
                .await?;
            if let Some(ip) = found {
                return Ok((ip, attached));
            }
            if tokio::time::Instant::now() >= deadline {
                let state = driver
                    .call("container inspect", driver.ops().inspect_container(&id))
                    .await
                    .map(|s| s.status)
                    .unwrap_or_default();
                return Err(RelayError::NoAddress {
                    container: id.clone(),
                    network: network.clone(),
                    state,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    match started.await {
        Ok((ip, attached)) => Ok((id, ip, attached)),
        Err(e) => {
            let _ = remove(driver, &id).await;
            Err(e)
        }
    }
}

/// Waits (up to [`ADDRESS_WAIT`]) until the host-network relay `id` logs that it listens on
/// `address`; a relay that stops first could not listen, and its log says why.
async fn listening(
    driver: &SandboxDriver,
    id: &str,
    address: SocketAddr,
) -> Result<(), RelayError> {
    let deadline = tokio::time::Instant::now() + ADDRESS_WAIT;
    loop {
        let log = relay_log(driver, id).await?;
        if log.contains(LISTENING) {
            return Ok(());
        }
        // Its own word first; the state only tells a relay that died without one. (bollard
        // cannot parse Podman's `stopped`, so an unreadable state is waited out.)
        if let Some(line) = log.lines().find(|l| l.contains(NO_SOCKET)) {
            return Err(RelayError::NoSocket {
                container: id.to_string(),
                log: openshell_runtime::display_value(line.trim()),
            });
        }
        let refused = log.contains(CANNOT_LISTEN);
        let state = match driver
            .call("container inspect", driver.ops().inspect_container(id))
            .await
        {
            Ok(s) => s.status,
            Err(e) => {
                tracing::debug!(error = %e, container = %id, "relay state unknown");
                "unknown".to_string()
            }
        };
        let stopped = matches!(state.as_str(), "exited" | "dead" | "stopped");
        if refused || stopped || tokio::time::Instant::now() >= deadline {
            // Read again: the relay may have written its reason as it stopped.
            let log = relay_log(driver, id).await.unwrap_or_default();
            let last = log.lines().rev().find(|l| !l.trim().is_empty());
            let log = match last {
                Some(line) => openshell_runtime::display_value(line.trim()),
                None => format!("no log; its state: {state}"),
            };
            return Err(RelayError::Listen {
                container: id.to_string(),
                address,
                log,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The start of a relay's log, capped at [`MAX_RELAY_LOG`]: its diagnostics (stderr) come
/// first, since the session's frames on stdout, which engines log too, start only with the
/// first connection.
async fn relay_log(driver: &SandboxDriver, id: &str) -> Result<String, EngineError> {
    let collect = async {
        let mut out: Vec<u8> = Vec::new();
        let mut stream = driver.ops().logs(id);
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk?);
            if out.len() >= MAX_RELAY_LOG {
                out.truncate(MAX_RELAY_LOG);
                break;
            }
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    };
    driver.call("container logs", collect).await
}

/// Runs the session (or, for a relay that carries through the gateway's socket, holds its
/// stdin and waits for its end); when it ends on its own, replaces the relay, a bounded number
/// of times, asking for the old relay's address. A shutdown ends it: before a launch, none is
/// made; after one, the new relay is removed.
async fn supervise(
    driver: SandboxDriver,
    shared: Arc<Shared>,
    image: String,
    port: u16,
    socket_dir: Option<PathBuf>,
    mut attached: openshell_driver::Attached,
) {
    let mut restarts = 0;
    loop {
        let began = tokio::time::Instant::now();
        match shared.with(|s| s.carrier) {
            RelayCarrier::Attach => serve(attached, port).await,
            RelayCarrier::Socket => hold(attached).await,
        }
        if began.elapsed() >= REFILL_AFTER {
            restarts = 0;
        }
        let old = shared.with(|s| {
            s.replacing = !s.stopping;
            s.replacing.then(|| s.current.take())
        });
        let Some(old) = old else {
            return;
        };
        // Sandboxes created until now name this address in their /etc/hosts.
        let keep = old.as_ref().map(|(_, ip)| *ip);
        if let Some((id, _)) = old {
            tracing::warn!(container = %id, "relay session ended; starting a new relay");
            let _ = remove(&driver, &id).await;
        }
        loop {
            if restarts >= MAX_RESTARTS {
                tracing::error!(network = %shared.network, "relay could not be restarted; giving up");
                shared.with(|s| s.replacing = false);
                return;
            }
            restarts += 1;
            tokio::time::sleep(RESTART_PAUSE).await;
            if shared.with(|s| s.stopping) {
                return;
            }
            let dir = match shared.with(|s| s.carrier) {
                RelayCarrier::Socket => socket_dir.as_deref(),
                RelayCarrier::Attach => None,
            };
            let launched = replace(&driver, &image, port, shared.mode, dir, keep).await;
            if dir.is_some() && matches!(launched, Err(RelayError::NoSocket { .. })) {
                // The socket stopped being visible (the engine moved?): attach from now on.
                shared.with(|s| s.carrier = RelayCarrier::Attach);
            }
            let stopping = shared.with(|s| {
                if let (false, Ok((id, ip, _))) = (s.stopping, &launched) {
                    s.current = Some((id.clone(), *ip));
                    s.replacing = false;
                }
                s.stopping
            });
            match launched {
                Ok((id, _, _)) if stopping => {
                    let _ = remove(&driver, &id).await;
                    return;
                }
                Ok((_, _, next)) => {
                    attached = next;
                    break;
                }
                Err(_) if stopping => return,
                Err(e) => tracing::warn!(error = %e, "relay restart failed"),
            }
        }
    }
}

/// Launches a replacement relay at `keep`, the address of the one it replaces, so that sandboxes
/// created before still reach it; where the engine will not grant that address (dockerd on a
/// network created without a subnet, or the address taken meanwhile), at any address, with a
/// warning: sandboxes created before then no longer reach the gateway.
async fn replace(
    driver: &SandboxDriver,
    image: &str,
    port: u16,
    mode: NetworkMode,
    socket_dir: Option<&Path>,
    keep: Option<IpAddr>,
) -> Result<(String, IpAddr, openshell_driver::Attached), RelayError> {
    let keep = keep.filter(|_| mode == NetworkMode::Bridge);
    match launch(driver, image, port, mode, socket_dir, keep).await {
        Err(RelayError::Engine(e)) if keep.is_some() => {
            tracing::warn!(error = %e, address = ?keep, "the replacement relay cannot keep the old relay's address; sandboxes created before it no longer reach the gateway");
            launch(driver, image, port, mode, socket_dir, None).await
        }
        other => other,
    }
}

/// Holds a socket-carrying relay's stdin until its stdout ends (the relay exited or was
/// removed); nothing of the traffic passes here.
async fn hold(attached: openshell_driver::Attached) {
    let mut attached = attached;
    let _ = tokio::io::copy(&mut attached, &mut tokio::io::sink()).await;
}

/// The connections a relay carries at once: at most [`CARRIED_STREAMS`]; one more is refused
/// (its carrier dropped, which resets the stream or closes the connection), with a warning at
/// powers of two, and leaves the others as they are.
struct Carried {
    slots: Arc<tokio::sync::Semaphore>,
    refused: u64,
    what: &'static str,
}

impl Carried {
    fn new(what: &'static str) -> Carried {
        Carried {
            slots: Arc::new(tokio::sync::Semaphore::new(CARRIED_STREAMS)),
            refused: 0,
            what,
        }
    }

    /// Runs `carry` when a slot is free, else refuses its connection.
    fn spawn(&mut self, carry: impl std::future::Future<Output = ()> + Send + 'static) {
        match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(permit) => {
                tokio::spawn(async move {
                    carry.await;
                    drop(permit);
                });
            }
            Err(_) => {
                self.refused += 1;
                if self.refused.is_power_of_two() {
                    tracing::warn!(
                        refused = self.refused,
                        limit = CARRIED_STREAMS,
                        "{} over the limit refused",
                        self.what
                    );
                }
            }
        }
    }
}

/// Accepts the relay's streams until the session ends, connecting each to the gateway.
/// At most [`CARRIED_STREAMS`] are carried at once; one more is reset at once, which refuses
/// that connection and leaves the session (and every other connection) as it is.
async fn serve(attached: openshell_driver::Attached, port: u16) {
    let mut config = yamux::Config::default();
    config.set_max_num_streams(SESSION_STREAMS);
    let mut conn = yamux::Connection::new(attached.compat(), config, yamux::Mode::Server);
    let gateway = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut carried = Carried::new("relay streams");
    loop {
        match poll_fn(|cx| conn.poll_next_inbound(cx)).await {
            Some(Ok(stream)) => carried.spawn(carry(stream, gateway)),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "relay session failed");
                return;
            }
            None => return,
        }
    }
}

/// Copies one stream to and from a new connection to the gateway.
async fn carry(stream: yamux::Stream, gateway: SocketAddr) {
    let tcp = match tokio::time::timeout(GATEWAY_CONNECT, TcpStream::connect(gateway)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, %gateway, "relay stream: gateway refused");
            return;
        }
        Err(_) => {
            tracing::warn!(%gateway, "relay stream: gateway did not answer");
            return;
        }
    };
    let _ = tcp.set_nodelay(true);
    let mut tcp = tcp;
    let mut stream = stream.compat();
    let _ = tokio::io::copy_bidirectional(&mut tcp, &mut stream).await;
}

impl SandboxDriver {
    /// Removes the sandbox network if it is ours (labelled) and exists.
    pub async fn remove_network(&self) -> Result<(), EngineError> {
        let name = self.options().network.as_str();
        let net = match self
            .call("network inspect", self.ops().inspect_network(name))
            .await
        {
            Err(e) if e.is_not_found() => return Ok(()),
            other => other?,
        };
        if !is_ours(&net.labels) {
            return Ok(());
        }
        // Our relays, and those left behind, go with the network; another live gateway's relay
        // stays, and so does the network (the engine refuses while the relay is on it). A
        // sandbox or relay removed just now may still hold its endpoint for a moment.
        remove_relays(self).await?;
        remove_retrying("network", || {
            self.call("network remove", self.ops().remove_network(name))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::DriverOptions;
    use crate::elf::tests::{dynamic64, elf64};
    use crate::fake::FakeOps;
    use futures_util::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::sync::{mpsc, oneshot};

    /// Relay options that take the relay from the file at `binary`.
    fn binary_options(binary: std::path::PathBuf) -> RelayOptions {
        RelayOptions {
            port: 1,
            binary: Some(binary),
            image: None,
            carrier: RelayCarrier::Attach,
        }
    }

    fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
        r.unwrap_or_else(|e| panic!("{e}"))
    }

    type Opener = mpsc::Sender<oneshot::Sender<Result<yamux::Stream, yamux::ConnectionError>>>;

    /// The relay's end of a session over `io`: a task driving it, and a way to open streams.
    fn relay_end<T>(io: T) -> (Opener, JoinHandle<Result<(), yamux::ConnectionError>>)
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let mut config = yamux::Config::default();
        config.set_max_num_streams(4096);
        let mut conn = yamux::Connection::new(io.compat(), config, yamux::Mode::Client);
        let (tx, mut rx) =
            mpsc::channel::<oneshot::Sender<Result<yamux::Stream, yamux::ConnectionError>>>(1);
        let mut waiting = None;
        let task = tokio::spawn(poll_fn(move |cx| {
            loop {
                if waiting.is_none() {
                    if let std::task::Poll::Ready(Some(w)) = rx.poll_recv(cx) {
                        waiting = Some(w);
                    }
                }
                let Some(w) = waiting.take() else { break };
                match conn.poll_new_outbound(cx) {
                    std::task::Poll::Ready(r) => {
                        let _ = w.send(r);
                    }
                    std::task::Poll::Pending => {
                        waiting = Some(w);
                        break;
                    }
                }
            }
            loop {
                match conn.poll_next_inbound(cx) {
                    std::task::Poll::Ready(Some(Ok(s))) => drop(s),
                    std::task::Poll::Ready(Some(Err(e))) => return std::task::Poll::Ready(Err(e)),
                    std::task::Poll::Ready(None) => return std::task::Poll::Ready(Ok(())),
                    std::task::Poll::Pending => return std::task::Poll::Pending,
                }
            }
        }));
        (tx, task)
    }

    /// Opens a stream, says one byte and reads the gateway's one-byte greeting: `Some` when the
    /// stream was carried, `None` when it was refused.
    async fn open(opener: &Opener) -> Option<yamux::Stream> {
        let (tx, rx) = oneshot::channel();
        opener.send(tx).await.ok()?;
        let mut s = rx.await.ok()?.ok()?;
        s.write_all(b"c").await.ok()?;
        s.flush().await.ok()?;
        let mut byte = [0u8; 1];
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut byte)).await {
            Ok(Ok(1)) => Some(s),
            _ => None,
        }
    }

    /// More streams than the gateway carries (a sandbox opening 700 connections to the relay)
    /// refuse the excess, one by one; the session and every carried connection go on, and new
    /// connections are carried again once some end. yamux 0.14 ended the whole session at the
    /// 513th. Loopback and an in-memory session only; 700 streams, every wait bounded.
    #[tokio::test]
    async fn a_flood_of_streams_refuses_the_excess_and_keeps_the_session() {
        const FLOOD: usize = 700;
        let listener = ok(tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await);
        let port = ok(listener.local_addr()).port();
        // The gateway greets each connection and closes it when the other side does.
        let gateway = tokio::spawn(async move {
            for _ in 0..2 * FLOOD {
                let Ok((mut tcp, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let _ = tcp.write_all(b"g").await;
                    let mut sink = [0u8; 64];
                    while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {}
                });
            }
        });
        let (ours, theirs) = tokio::io::duplex(1 << 20);
        let (read, write) = tokio::io::split(ours);
        let attached = openshell_driver::Attached::new(
            Box::pin(tokio_util::io::ReaderStream::new(read)),
            Box::pin(write),
        );
        let session = tokio::spawn(serve(attached, port));
        let (opener, relay) = relay_end(theirs);
        let mut carried = Vec::new();
        let mut refused = 0;
        for _ in 0..FLOOD {
            match open(&opener).await {
                Some(s) => carried.push(s),
                None => refused += 1,
            }
        }
        assert!(!session.is_finished(), "the session ended under the flood");
        assert!(
            !relay.is_finished(),
            "the relay's session ended under the flood"
        );
        assert_eq!(carried.len(), CARRIED_STREAMS);
        assert_eq!(refused, FLOOD - CARRIED_STREAMS);
        // Connections that end make room for new ones.
        for mut s in carried.drain(..10) {
            let _ = s.close().await;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let again = loop {
            if let Some(s) = open(&opener).await {
                break s;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no room after streams ended"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        drop((again, carried, opener));
        session.abort();
        relay.abort();
        gateway.abort();
    }

    /// Removing the network removes this gateway's relays and those left behind, never a
    /// live gateway's: the engine then refuses to remove the network, which stays for it.
    #[tokio::test]
    async fn removing_the_network_leaves_another_live_gateways_relay() {
        let ops = FakeOps::new();
        ops.with(|s| s.network_in_use = Some(openshell_driver::ErrorKind::Rejected));
        let here = Owner::here().to_string();
        let dead = here.replace(&format!("/{}", std::process::id()), "/4194305");
        let network = DriverOptions::default().network;
        for (name, owner) in [
            ("mine", here.as_str()),
            ("dead", dead.as_str()),
            ("live-elsewhere", "other-boot/1/2"),
        ] {
            ops.add(
                name,
                &[
                    (LABEL_RELAY, "true"),
                    (LABEL_RELAY_NETWORK, network.as_str()),
                    (LABEL_RELAY_OWNER, owner),
                ],
                "running",
            );
        }
        let driver = SandboxDriver::new(ops.clone(), DriverOptions::default());
        assert!(driver.remove_network().await.is_err(), "the network went");
        assert_eq!(ops.names(), vec!["live-elsewhere".to_string()]);
    }

    /// Relay names carry a random part, as probe names do: two gateways that are each pid 1
    /// in their own container asked for the same names and removed each other's relays.
    #[tokio::test]
    async fn relay_names_have_a_random_part() {
        let ops = FakeOps::new();
        let driver = SandboxDriver::new(ops.clone(), DriverOptions::default());
        let image = "localhost/relay:test";
        let mut names = Vec::new();
        for _ in 0..2 {
            let (id, _, _) = ok(launch(&driver, image, 1, NetworkMode::Bridge, None, None).await);
            names.extend(ops.names());
            ok(remove(&driver, &id).await);
        }
        assert_ne!(names[0], names[1]);
        for name in &names {
            let tail = name.rsplit('-').next().unwrap_or_default();
            assert!(
                tail.len() == 16 && tail.chars().all(|c| c.is_ascii_hexdigit()),
                "{name}"
            );
        }
    }

    /// A relay whose sessions each live a while is replaced as often as it goes: the restart
    /// budget is against a relay that cannot stay up, not a lifetime cap (six floods used to
    /// leave `Relay::route` failing with `Gone` for good).
    #[tokio::test(start_paused = true)]
    async fn sessions_that_lived_a_while_refill_the_restart_budget() {
        let ops = FakeOps::new();
        ops.with(|s| s.session_life = Some(REFILL_AFTER + Duration::from_secs(1)));
        let driver = SandboxDriver::new(ops.clone(), DriverOptions::default());
        let opts = RelayOptions {
            port: 1,
            binary: None,
            image: Some("localhost/relay:test".into()),
            carrier: RelayCarrier::Attach,
        };
        let relay = ok(Relay::start(driver, opts).await);
        let replaced = 2 * MAX_RESTARTS + 1;
        let deadline = tokio::time::Instant::now() + REFILL_AFTER * (replaced + 2);
        while ops.with(|s| s.attaches) <= replaced {
            assert!(
                tokio::time::Instant::now() < deadline,
                "replaced only {} times",
                ops.with(|s| s.attaches) - 1
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        assert!(relay.address().is_ok());
        ok(relay.shutdown().await);
        assert_eq!(ops.names(), Vec::<String>::new(), "relays left");
    }

    fn test_opts(carrier: RelayCarrier) -> RelayOptions {
        RelayOptions {
            port: 1,
            binary: None,
            image: Some("localhost/relay:test".into()),
            carrier,
        }
    }

    /// The command and mounts of every relay the fake engine holds.
    fn relay_configs(ops: &FakeOps) -> Vec<ContainerConfig> {
        ops.with(|s| {
            s.containers
                .iter()
                .filter_map(|c| c.config.clone())
                .collect()
        })
    }

    /// A relay told to carry through the gateway's socket gets the socket's directory mounted
    /// read-only and the socket's path on its command line; one that cannot see the socket
    /// (its log says so) is removed at once and replaced by one that carries over attach, and
    /// the socket's directory goes.
    #[tokio::test]
    async fn a_relay_that_cannot_see_the_socket_falls_back_to_attach() {
        for visible in [true, false] {
            let ops = FakeOps::new();
            ops.with(|s| s.socket_visible = visible);
            let driver = SandboxDriver::new(ops.clone(), DriverOptions::default());
            let relay = ok(Relay::start(driver, test_opts(RelayCarrier::Socket)).await);
            let configs = relay_configs(&ops);
            assert_eq!(configs.len(), 1, "{configs:?}");
            let dir = relay.socket.as_ref().map(|s| s.dir().to_path_buf());
            if visible {
                assert_eq!(relay.carrier(), RelayCarrier::Socket);
                let c = &configs[0];
                assert_eq!(
                    c.command,
                    [
                        "/openshell-relay",
                        "socket",
                        "/openshell-gateway/gateway.sock",
                        "1"
                    ]
                );
                assert_eq!(c.binds.len(), 1);
                assert!(c.binds[0].read_only);
                assert_eq!(Some(&c.binds[0].source), dir.as_ref());
                assert!(dir
                    .as_ref()
                    .is_some_and(|d| d.join("gateway.sock").exists()));
            } else {
                assert_eq!(relay.carrier(), RelayCarrier::Attach);
                assert_eq!(configs[0].command, ["/openshell-relay", "1"]);
                assert!(configs[0].binds.is_empty());
                assert_eq!(dir, None);
                assert_eq!(ops.with(|s| s.removed.len()), 1, "the blind relay stayed");
            }
            ok(relay.shutdown().await);
            assert!(
                dir.is_none_or(|d| !d.exists()),
                "the socket directory stayed"
            );
            assert_eq!(ops.names(), Vec::<String>::new(), "relays left");
        }
    }

    /// A replaced relay asks for its predecessor's address, which sandboxes created before name
    /// in their /etc/hosts; where the engine refuses a fixed address, the replacement comes up
    /// at another one rather than not at all.
    #[tokio::test(start_paused = true)]
    async fn a_replaced_relay_asks_for_the_old_address() {
        for refused in [false, true] {
            let ops = FakeOps::new();
            ops.with(|s| {
                s.session_life = Some(Duration::from_secs(1));
                s.refuse_address = refused.then_some(openshell_driver::ErrorKind::Rejected);
            });
            let driver = SandboxDriver::new(ops.clone(), DriverOptions::default());
            let relay = ok(Relay::start(driver, test_opts(RelayCarrier::Attach)).await);
            let first = ok(relay.address());
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while ops.with(|s| s.attaches) < 3 {
                assert!(tokio::time::Instant::now() < deadline, "not replaced");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let asked: Vec<Option<IpAddr>> = ops.with(|s| {
                s.containers
                    .iter()
                    .filter_map(|c| c.config.as_ref().map(|c| c.address))
                    .collect()
            });
            if refused {
                assert_ne!(ok(relay.address()), first);
            } else {
                assert_eq!(ok(relay.address()), first);
                assert_eq!(asked, vec![Some(first)]);
            }
            ok(relay.shutdown().await);
        }
    }

    #[test]
    fn both_engines_architecture_words_map_to_one() {
        assert_eq!(normalise_arch("x86_64"), Some("x86_64"));
        assert_eq!(normalise_arch("amd64"), Some("x86_64"));
        assert_eq!(normalise_arch("arm64"), Some("aarch64"));
        assert_eq!(normalise_arch("aarch64"), Some("aarch64"));
        assert_eq!(normalise_arch("riscv64"), None);
    }

    /// A dynamically linked relay cannot start in its image (only the binary is there): it is
    /// refused with the static build's command, not started to exit at once.
    #[test]
    fn a_dynamically_linked_relay_is_refused() {
        // This test's own executable is an ordinary (dynamic) build, when it is small enough to
        // be read as a relay (a debug build with full debug information is not; the made-up
        // dynamic ELF below stands for it then).
        let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
        if std::fs::metadata(&exe).is_ok_and(|m| m.len() <= MAX_BINARY) {
            let bytes = read_capped(&exe).unwrap_or_else(|e| panic!("{e}"));
            assert!(matches!(
                check_binary(&exe, &bytes, std::env::consts::ARCH),
                Err(RelayError::NotStatic { .. })
            ));
        }

        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("openshell-relay");
        for (bin, ok) in [(elf64(1, 0), true), (dynamic64(), false)] {
            std::fs::write(&path, bin).unwrap_or_else(|e| panic!("{e}"));
            let opts = binary_options(path.clone());
            match relay_binary(&opts, "x86_64") {
                Ok(_) => assert!(ok, "a dynamic relay was accepted"),
                Err(e) => {
                    assert!(!ok, "{e}");
                    assert!(
                        matches!(e, RelayError::NotStatic { .. })
                            && e.to_string().contains("+crt-static"),
                        "{e}"
                    );
                }
            }
        }
    }

    /// A truncated copy of a relay binary (an interrupted download or copy) is refused with
    /// what is cut short, before an image is made of it; it used to pass on its header alone.
    #[test]
    fn a_truncated_relay_binary_is_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("openshell-relay");
        let whole = elf64(1, 4096);
        for cut in [100, 2048, whole.len() - 1] {
            std::fs::write(&path, &whole[..cut]).unwrap_or_else(|e| panic!("{e}"));
            let opts = binary_options(path.clone());
            match relay_binary(&opts, "x86_64") {
                Ok(_) => panic!("a relay binary cut at {cut} bytes was accepted"),
                Err(e) => assert!(
                    matches!(e, RelayError::Malformed { .. })
                        && e.to_string().contains("truncated")
                        && e.to_string().contains(ENV_RELAY_BINARY),
                    "{e}"
                ),
            }
        }
        // The relays this build embeds are whole.
        for arch in embedded_arches() {
            let bin = embedded_relay(arch).unwrap_or_else(|| panic!("{arch} listed, not embedded"));
            if let Err(e) = check_binary(Path::new(arch), bin, arch) {
                panic!("the embedded {arch} relay: {e}");
            }
        }
        std::fs::write(&path, &whole).unwrap_or_else(|e| panic!("{e}"));
        let opts = binary_options(path.clone());
        assert!(relay_binary(&opts, "x86_64").is_ok());
    }

    /// issue 22 item 11: every distinct relay binary left an image behind. Ours that no
    /// container uses and that are older than the grace are removed; the current one, one a
    /// container was made from, a young one and anything not named like ours stay.
    #[tokio::test]
    async fn relay_images_of_other_builds_are_pruned_unless_in_use_or_young() {
        let ops = FakeOps::new();
        let driver = SandboxDriver::new(ops.clone(), DriverOptions::default());
        let now = i64::try_from(reap::now_secs()).unwrap_or(i64::MAX);
        let old = now - 2 * 3600;
        let current = image_reference("x86_64", b"this build");
        let unused = image_reference("x86_64", b"an older build");
        let other_arch = image_reference("aarch64", b"an older build");
        let in_use = image_reference("x86_64", b"a build a container runs");
        let young = image_reference("x86_64", b"a build imported a minute ago");
        let foreign = [
            format!("{RELAY_REPO}:latest"),
            format!("{RELAY_REPO}:x86_64-not-hex-at-all-here-x"),
            format!("{RELAY_REPO}-other:{}", &unused[RELAY_REPO.len() + 1..]),
        ];
        ops.with(|s| {
            s.images = [&current, &unused, &other_arch, &in_use]
                .into_iter()
                .map(|r| (r.clone(), old))
                .chain(foreign.iter().map(|r| (r.clone(), old)))
                .chain([(young.clone(), now - 60)])
                .collect();
            s.images_in_use = vec![in_use.clone()];
        });
        let removed = ok(prune_relay_images(&driver, RELAY_REPO, &current, IMAGE_GRACE).await);
        assert_eq!(removed, vec![unused.clone(), other_arch.clone()]);
        let left: Vec<String> = ops.with(|s| s.images.iter().map(|(r, _)| r.clone()).collect());
        for kept in [&current, &in_use, &young]
            .into_iter()
            .chain(foreign.iter())
        {
            assert!(left.contains(kept), "{kept} was removed: {left:?}");
        }
        assert!(
            !left.contains(&unused) && !left.contains(&other_arch),
            "{left:?}"
        );
    }

    #[test]
    fn the_tarball_holds_the_binary_alone_executable() {
        let tarball = relay_tarball(b"\x7fELFbinary").unwrap_or_else(|e| panic!("{e}"));
        let mut archive = tar::Archive::new(tarball.as_slice());
        let entries: Vec<(String, u32, u64)> = archive
            .entries()
            .unwrap_or_else(|e| panic!("{e}"))
            .map(|e| {
                let e = e.unwrap_or_else(|e| panic!("{e}"));
                let path = e
                    .path()
                    .unwrap_or_else(|e| panic!("{e}"))
                    .display()
                    .to_string();
                (path, e.header().mode().unwrap_or(0), e.size())
            })
            .collect();
        assert_eq!(entries, vec![("openshell-relay".to_string(), 0o755, 10)]);
    }

    #[test]
    fn a_missing_explicit_binary_is_named_with_the_fix() {
        let opts = binary_options(std::path::PathBuf::from("/nonexistent/openshell-relay"));
        let Err(err) = relay_binary(&opts, "x86_64") else {
            panic!("a missing binary was found")
        };
        assert!(
            err.to_string().contains("/nonexistent/openshell-relay"),
            "{err}"
        );
    }

    #[test]
    fn no_binary_names_the_architecture_and_both_ways_to_supply_one() {
        let err = RelayError::NoBinary {
            arch: "aarch64".into(),
            looked: vec!["/usr/bin/openshell-relay-aarch64".into()],
        };
        let msg = err.to_string();
        for needle in [
            "aarch64",
            ENV_RELAY_BINARY,
            ENV_RELAY_IMAGE,
            "/usr/bin/openshell-relay-aarch64",
        ] {
            assert!(msg.contains(needle), "{msg}");
        }
    }

    /// A relay another host's gateway created and never started was never reaped: its owner
    /// cannot be seen, and "created" looked like a launch in progress for ever.
    #[test]
    fn another_hosts_relay_that_never_started_is_reaped_after_a_grace() {
        let here = Owner::here();
        let alive = |_: u32| true;
        let labels = |created: Option<&str>| {
            let mut l = std::collections::BTreeMap::from([(
                LABEL_RELAY_OWNER.to_string(),
                "other-boot/1/2".to_string(),
            )]);
            if let Some(c) = created {
                l.insert(LABEL_RELAY_CREATED.to_string(), c.to_string());
            }
            l
        };
        let now = 10_000;
        for status in ["created", "configured"] {
            // Being started right now, as far as anyone can tell.
            assert_eq!(
                relay_stale(&labels(Some("9990")), Some(status), &here, &alive, now),
                None
            );
            // Long after its creation, or with no creation time.
            assert!(
                relay_stale(&labels(Some("1000")), Some(status), &here, &alive, now)
                    .is_some_and(|w| w.contains("never started"))
            );
            assert!(relay_stale(&labels(None), Some(status), &here, &alive, now).is_some());
        }
        // Running, it serves its gateway.
        assert_eq!(
            relay_stale(&labels(Some("1000")), Some("running"), &here, &alive, now),
            None
        );
        // Our own, while we create it, is never touched.
        let mine =
            std::collections::BTreeMap::from([(LABEL_RELAY_OWNER.to_string(), here.to_string())]);
        assert_eq!(
            relay_stale(&mine, Some("created"), &here, &alive, now),
            None
        );
    }

    #[test]
    fn a_relay_is_stale_when_its_gateway_is_gone_or_it_no_longer_runs() {
        let here = Owner::here();
        let labels = |owner: &str| {
            std::collections::BTreeMap::from([(LABEL_RELAY_OWNER.to_string(), owner.to_string())])
        };
        let alive = |pid: u32| pid == std::process::id();
        let mine = labels(&here.to_string());
        // A live gateway's relay stays while it is created, starting or running.
        for status in [None, Some("created"), Some("configured"), Some("running")] {
            assert_eq!(
                relay_stale(&mine, status, &here, &alive, 1000),
                None,
                "{status:?}"
            );
        }
        // One that exited serves no one, whoever owns it.
        for status in ["exited", "dead", "stopped"] {
            assert!(relay_stale(&mine, Some(status), &here, &alive, 1000).is_some());
        }
        // A dead gateway's relay goes even while it runs.
        let dead = here
            .to_string()
            .replace(&format!("/{}", std::process::id()), "/4194305");
        assert!(
            relay_stale(&labels(&dead), Some("running"), &here, &alive, 1000)
                .is_some_and(|w| w.contains("gone"))
        );
        // Another host's gateway, or an unreadable owner: only the state decides.
        assert_eq!(
            relay_stale(
                &labels("other-boot/1/2"),
                Some("running"),
                &here,
                &alive,
                1000
            ),
            None
        );
        assert_eq!(
            relay_stale(&labels("garbage"), Some("running"), &here, &alive, 1000),
            None
        );
        assert_eq!(
            relay_stale(&Default::default(), Some("running"), &here, &alive, 1000),
            None
        );
    }
}
