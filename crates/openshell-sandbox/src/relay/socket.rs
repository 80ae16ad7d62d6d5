//! The gateway's end of the relay's socket carrier (docs/relay.md): a Unix socket in a
//! directory of its own, which the relay container gets as a read-only bind mount, and a task
//! that connects every connection on it to the gateway's port on `127.0.0.1`, exactly as a
//! yamux stream is. Bytes then go sandbox → relay → this socket → the gateway without passing
//! through the engine's attach copy loop.
//!
//! The directory is `/run/openshell-relay/<pid namespace>-<pid>-<random>` for root,
//! `$XDG_RUNTIME_DIR/openshell-relay/...` for anyone else (both on tmpfs, gone at reboot). The
//! parent and ours are `0711` (a rootless engine's containers run as another unprivileged uid
//! and must traverse them, but nobody lists them) and the socket is `0666`: whoever can connect
//! to it reaches `127.0.0.1:<port>`, which every local user can reach anyway. A gateway removes
//! its directory when its relay shuts down or is dropped, and a new one removes those whose
//! process is gone (a SIGKILLed gateway).

use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio::task::JoinHandle;

use super::{Carried, GATEWAY_CONNECT};
use crate::reap;

/// Where the directory appears inside the relay container.
pub(super) const MOUNT: &str = "/openshell-gateway";
/// The socket's name in the directory.
const SOCKET: &str = "gateway.sock";
/// Each direction's copy buffer.
const BUFFER: usize = 256 * 1024;

/// The socket's path inside the relay container.
pub(super) fn socket_in_container() -> String {
    format!("{MOUNT}/{SOCKET}")
}

/// Why the gateway's socket could not be set up (the relay then carries over attach).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum SocketError {
    /// Neither root nor `XDG_RUNTIME_DIR` set: no private runtime directory to put it in.
    #[error("no runtime directory for the relay's socket: run as root or set XDG_RUNTIME_DIR")]
    NoRuntimeDir,
    /// A directory or the socket could not be made, or is not ours alone.
    #[error("cannot set up the relay's socket at {}: {source}", .path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SocketError + '_ {
    move |source| SocketError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The parent of every gateway's socket directory for a process of user `uid`.
fn base_dir(uid: u32) -> Result<PathBuf, SocketError> {
    if uid == 0 {
        return Ok(PathBuf::from("/run/openshell-relay"));
    }
    std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|d| !d.is_empty())
        .map(|d| PathBuf::from(d).join("openshell-relay"))
        .ok_or(SocketError::NoRuntimeDir)
}

/// Makes `dir` (mode `0711`) if missing, and checks it is ours and writable by nobody else.
fn own_dir(dir: &Path, uid: u32) -> Result<(), SocketError> {
    match std::fs::DirBuilder::new().mode(0o711).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(dir)(e)),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(io(dir))?;
    if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o022 != 0 {
        return Err(io(dir)(std::io::Error::other(
            "not a directory of ours alone (owner or permissions)",
        )));
    }
    // The umask may have narrowed it; a rootless engine's containers must traverse it.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711)).map_err(io(dir))
}

/// This process's pid namespace, as the directory names carry it.
fn pid_ns() -> String {
    std::fs::read_link("/proc/self/ns/pid")
        .ok()
        .map(|l| {
            l.to_string_lossy()
                .chars()
                .filter(char::is_ascii_digit)
                .collect::<String>()
        })
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "0".into())
}

/// Whether the directory `name` (`<pid namespace>-<pid>-<random>`) belongs to a process of our
/// pid namespace that is gone. Anything else (another namespace, a live pid, another name) is
/// left alone.
fn stale(name: &str, ns: &str, alive: &dyn Fn(u32) -> bool) -> bool {
    let mut parts = name.split('-');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(n), Some(pid), Some(_), None) if n == ns => {
            pid.parse::<u32>().is_ok_and(|pid| !alive(pid))
        }
        _ => false,
    }
}

/// Removes the socket directories in `base` of gateways that are gone; returns how many.
fn sweep(base: &Path, ns: &str, alive: &dyn Fn(u32) -> bool) -> usize {
    let Ok(entries) = std::fs::read_dir(base) else {
        return 0;
    };
    let mut swept = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if stale(&name.to_string_lossy(), ns, alive)
            && std::fs::remove_dir_all(entry.path()).is_ok()
        {
            swept += 1;
        }
    }
    swept
}

/// Removes the socket directories of gateways of this user that are gone (a SIGKILLed gateway's);
/// returns how many. Nothing is made when there is no such directory yet.
pub(super) fn sweep_stale() -> usize {
    let Ok(base) = current_uid().and_then(base_dir) else {
        return 0;
    };
    let swept = sweep(&base, &pid_ns(), &reap::pid_alive);
    if swept > 0 {
        tracing::info!(swept, dir = %base.display(), "removed relay socket directories of gone gateways");
    }
    swept
}

/// The gateway's socket and the task serving it; dropping it stops the task and removes the
/// directory.
#[derive(Debug)]
pub(super) struct GatewaySocket {
    dir: PathBuf,
    task: JoinHandle<()>,
}

impl GatewaySocket {
    /// Sweeps directories of gone gateways, makes ours with the socket in it, and serves it:
    /// each connection goes to `127.0.0.1:<port>`.
    pub(super) fn open(port: u16) -> Result<GatewaySocket, SocketError> {
        let uid = current_uid()?;
        let base = base_dir(uid)?;
        own_dir(&base, uid)?;
        let ns = pid_ns();
        sweep_stale();
        let random =
            crate::token::random_hex(8).map_err(|e| io(&base)(std::io::Error::other(e)))?;
        let dir = base.join(format!("{ns}-{}-{random}", std::process::id()));
        own_dir(&dir, uid)?;
        let path = dir.join(SOCKET);
        let bound = UnixListener::bind(&path).map_err(io(&path)).and_then(|l| {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))
                .map_err(io(&path))?;
            Ok(l)
        });
        let listener = match bound {
            Ok(l) => l,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let task = tokio::spawn(serve(listener, port));
        Ok(GatewaySocket { dir, task })
    }

    /// The directory the relay gets mounted at [`MOUNT`].
    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for GatewaySocket {
    fn drop(&mut self) {
        self.task.abort();
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::debug!(error = %e, dir = %self.dir.display(), "relay socket directory not removed");
        }
    }
}

/// This process's effective uid, read from `/proc/self` (whose owner it is) without FFI.
fn current_uid() -> Result<u32, SocketError> {
    let proc = Path::new("/proc/self");
    std::fs::metadata(proc).map(|m| m.uid()).map_err(io(proc))
}

/// Accepts connections for as long as the relay lives, carrying each to the gateway.
async fn serve(listener: UnixListener, port: u16) {
    let gateway = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut carried = Carried::new("relay connections");
    loop {
        let unix = match listener.accept().await {
            Ok((unix, _)) => unix,
            Err(e) => {
                tracing::warn!(error = %e, "relay socket: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        carried.spawn(carry(unix, gateway));
    }
}

/// Copies one connection to and from a new connection to the gateway.
async fn carry(mut unix: UnixStream, gateway: SocketAddr) {
    let tcp = match tokio::time::timeout(GATEWAY_CONNECT, TcpStream::connect(gateway)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, %gateway, "relay socket: gateway refused");
            return;
        }
        Err(_) => {
            tracing::warn!(%gateway, "relay socket: gateway did not answer");
            return;
        }
    };
    let _ = tcp.set_nodelay(true);
    let mut tcp = tcp;
    let _ = tokio::io::copy_bidirectional_with_sizes(&mut unix, &mut tcp, BUFFER, BUFFER).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Only a gone process of our own pid namespace leaves a directory to sweep.
    #[test]
    fn only_gone_owners_directories_are_stale() {
        let alive = |pid: u32| pid == 7;
        assert!(stale("4026531836-8-00ff", "4026531836", &alive));
        assert!(!stale("4026531836-7-00ff", "4026531836", &alive));
        assert!(!stale("4026531837-8-00ff", "4026531836", &alive));
        assert!(!stale("4026531836-x-00ff", "4026531836", &alive));
        assert!(!stale("4026531836-8", "4026531836", &alive));
        assert!(!stale("something-else-entirely-here", "4026531836", &alive));
    }

    /// A connection on the socket reaches the gateway's port on loopback, both ways; the
    /// directory is `0711`, the socket `0666`, a gone owner's directory is swept, and dropping
    /// the socket removes its directory. Loopback and a temporary directory only.
    #[tokio::test]
    async fn the_socket_carries_to_the_gateway_and_goes_with_its_owner() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        // As root, `open` uses /run/openshell-relay; otherwise XDG_RUNTIME_DIR, which a test
        // cannot set for the process safely, so the directory logic is checked directly too.
        let base = tmp.path().join("openshell-relay");
        let uid = current_uid().unwrap_or_else(|e| panic!("{e}"));
        own_dir(&base, uid).unwrap_or_else(|e| panic!("{e}"));
        let ns = pid_ns();
        let gone = base.join(format!("{ns}-4194305-00ff"));
        std::fs::create_dir(&gone).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sweep(&base, &ns, &reap::pid_alive), 1);
        assert!(!gone.exists());

        let gateway = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let port = gateway
            .local_addr()
            .unwrap_or_else(|e| panic!("{e}"))
            .port();
        let Ok(socket) = GatewaySocket::open(port) else {
            // Not root and no XDG_RUNTIME_DIR: nothing more to check here.
            assert!(base_dir(uid).is_err());
            return;
        };
        let dir = socket.dir().to_path_buf();
        let mode = |p: &Path| std::fs::metadata(p).map(|m| m.mode() & 0o777).unwrap_or(0);
        assert_eq!(mode(&dir), 0o711);
        assert_eq!(mode(dir.parent().unwrap_or(&dir)), 0o711);
        assert_eq!(mode(&dir.join(SOCKET)), 0o666);
        let echo = tokio::spawn(async move {
            let (mut s, _) = gateway.accept().await.unwrap_or_else(|e| panic!("{e}"));
            let mut got = Vec::new();
            s.read_to_end(&mut got)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            s.write_all(&got).await.unwrap_or_else(|e| panic!("{e}"));
        });
        let mut c = UnixStream::connect(dir.join(SOCKET))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        c.write_all(&data).await.unwrap_or_else(|e| panic!("{e}"));
        c.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
        let mut back = Vec::new();
        tokio::time::timeout(std::time::Duration::from_secs(10), c.read_to_end(&mut back))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(back == data, "{} bytes came back", back.len());
        echo.await.unwrap_or_else(|e| panic!("{e}"));
        drop(socket);
        assert!(!dir.exists(), "the socket directory stayed");
    }
}
