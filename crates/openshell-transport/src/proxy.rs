//! A private proxy for a client library that opens its own engine connections and cannot be
//! given ours (podman-api): the client talks to a Unix socket in a directory only this user can
//! enter, and each request it sends there is relayed with [`transport::send`], over the
//! connections the target keeps: podman-api opens a connection per request (its pool keeps
//! none idle), but the engine sees one kept connection, one TLS handshake, one ssh session, as
//! the Docker driver's calls do. Every reply is read within its budget like every other engine
//! reply. The proxy serves this process alone: a connection from any other process is closed
//! unread, so the proxy never lends the engine socket's permissions to anyone else.
//!
//! When the transport fails a request (a reply over the budget, an engine that cannot be
//! reached), the client only sees its connection end; the proxy records why, and the driver
//! reports that instead ([`Proxy::incident_since`]). The limit: such a record is matched to a
//! call by time, so with concurrent calls on one driver a call that failed at a transport level
//! in the same moment may report another call's incident.
//!
//! A proxy's directory is removed when the proxy is dropped. One left by a process that was
//! killed (or that leaked its driver) is removed by the next proxy this user starts.

use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;
use hyper::body::{Bytes, Incoming};
use hyper::header::CONNECTION;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{UnixListener, UnixStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::transport::{self, Target, TransportError};

/// Pause after a failed `accept` (such as running out of file descriptors), so the proxy does
/// not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// Proxy directories are named `<temp dir>/openshell-proxy-<random>`.
const DIR_PREFIX: &str = "openshell-proxy-";
/// The socket's name in its directory.
const SOCKET_NAME: &str = "engine.sock";
/// A proxy directory without a socket this old is a leftover, not one being set up.
const SETUP_GRACE: Duration = Duration::from_secs(60);

/// A running proxy; dropping it stops it, ends its connections and removes its socket.
#[derive(Debug)]
pub struct Proxy {
    socket: PathBuf,
    _dir: tempfile::TempDir,
    task: JoinHandle<()>,
    incidents: Arc<Incidents>,
}

/// A point in the proxy's history of incidents, taken before a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark(u64);

/// The transport failures the proxy saw, newest last.
#[derive(Debug, Default)]
struct Incidents {
    count: AtomicU64,
    last: Mutex<Option<Arc<TransportError>>>,
}

impl Incidents {
    fn record(&self, e: TransportError) {
        self.record_shared(Arc::new(e));
    }

    fn record_shared(&self, e: Arc<TransportError>) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
        self.count.fetch_add(1, Ordering::SeqCst);
    }
}

impl Proxy {
    /// Starts relaying to `target`; each connection lives at most `lifetime` (the driver's
    /// call timeout: no call waits longer for it), unless its reply switched protocols (an
    /// attach), which lasts as long as its session.
    pub fn start(target: impl Into<Target>, lifetime: Duration) -> io::Result<Proxy> {
        let endpoint = target.into();
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()?;
        let owner = std::fs::metadata(dir.path())?.uid();
        sweep(dir.path(), owner);
        let socket = dir.path().join(SOCKET_NAME);
        let listener = UnixListener::bind(&socket)?;
        let incidents = Arc::new(Incidents::default());
        let served = Served {
            endpoint,
            owner,
            incidents: Arc::clone(&incidents),
            lifetime,
        };
        let task = tokio::spawn(serve(listener, served));
        Ok(Proxy {
            socket,
            _dir: dir,
            task,
            incidents,
        })
    }

    /// The socket the client connects to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Now, for [`Proxy::incident_since`].
    pub fn mark(&self) -> Mark {
        Mark(self.incidents.count.load(Ordering::SeqCst))
    }

    /// The latest transport failure since `mark` (a reply over the budget, an engine that could
    /// not be reached), if any.
    pub fn incident_since(&self, mark: Mark) -> Option<Arc<TransportError>> {
        if self.incidents.count.load(Ordering::SeqCst) == mark.0 {
            return None;
        }
        self.incidents
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What each relayed connection needs.
#[derive(Debug, Clone)]
struct Served {
    endpoint: Target,
    /// This user (the owner of the proxy's directory).
    owner: u32,
    incidents: Arc<Incidents>,
    /// The longest a connection lives unless it is upgraded.
    lifetime: Duration,
}

async fn serve(listener: UnixListener, served: Served) {
    // Owning the connections here ends them all when the proxy stops.
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    conns.spawn(forward(client, served.clone()));
                }
                Err(e) => {
                    tracing::debug!(error = %e, "proxy accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// Removes the proxy directories of user `me` that no process serves any more: past the setup
/// grace, the socket refuses connections (its process is gone) or does not exist. `ours` is
/// the new proxy's own directory.
fn sweep(ours: &Path, me: u32) {
    let Some(parent) = ours.parent() else { return };
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let ours_or_foreign = dir == ours
            || !entry.file_name().to_string_lossy().starts_with(DIR_PREFIX)
            || std::fs::symlink_metadata(&dir).map_or(true, |m| !m.is_dir() || m.uid() != me);
        if ours_or_foreign {
            continue;
        }
        let socket = dir.join(SOCKET_NAME);
        // A proxy being set up refuses connections between its bind and its listen, and has no
        // socket before its bind: only a directory past the setup grace is judged, so a
        // concurrent run's proxy is never taken for a leftover.
        let old_enough = std::fs::metadata(&dir)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > SETUP_GRACE));
        let stale = old_enough
            && match std::os::unix::net::UnixStream::connect(&socket) {
                Ok(_) => false,
                Err(e) => matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound
                ),
            };
        if stale {
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                tracing::debug!(error = %e, dir = %dir.display(), "stale proxy directory not removed");
            }
        }
    }
}

/// Whether `client` is this process, the only one the proxy serves (this user, where the
/// platform does not report the peer's process).
fn from_this_process(client: &UnixStream, owner: u32) -> bool {
    match client.peer_cred() {
        Ok(cred) => match cred.pid() {
            Some(pid) => u32::try_from(pid).is_ok_and(|pid| pid == std::process::id()),
            None => cred.uid() == owner,
        },
        Err(_) => false,
    }
}

/// The body of a relayed reply: the engine's, noting a budget failure as it streams.
type ReplyBody = UnsyncBoxBody<Bytes, hyper::Error>;

/// Serves one client connection: each request it sends is relayed with [`transport::send`],
/// so it goes over a connection the target keeps (one TLS handshake, one ssh session for all),
/// and its reply comes back within the budget. The connection lives at most `lifetime` unless
/// a reply switched protocols (an attach), whose two ends are then joined for as long as the
/// session lasts.
async fn forward(client: UnixStream, served: Served) {
    if !from_this_process(&client, served.owner) {
        // Another process of this user's sweep checking whether the proxy is alive, or a
        // stranger: neither gets the engine.
        tracing::debug!("proxy connection from another process closed");
        return;
    }
    let upgraded = Arc::new(AtomicBool::new(false));
    let service = {
        let served = served.clone();
        let upgraded = Arc::clone(&upgraded);
        service_fn(move |req| relay(req, served.clone(), Arc::clone(&upgraded)))
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(client), service)
        .with_upgrades();
    tokio::pin!(conn);
    let deadline = tokio::time::sleep(served.lifetime);
    tokio::pin!(deadline);
    tokio::select! {
        _ = &mut conn => {}
        () = &mut deadline => {
            // An attach's session outlives the deadline; anything else is given up.
            if upgraded.load(Ordering::SeqCst) {
                let _ = conn.await;
            }
        }
    }
}

/// Relays one request. A transport failure is recorded for the driver and ends the client's
/// connection without an answer, as a failed engine connection would.
async fn relay(
    mut req: Request<Incoming>,
    served: Served,
    upgraded: Arc<AtomicBool>,
) -> Result<Response<ReplyBody>, TransportError> {
    let client_side = hyper::upgrade::on(&mut req);
    // The client's connection ends with its request; the engine's is kept for the next one.
    let closing = req
        .headers()
        .get(CONNECTION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")));
    if closing {
        req.headers_mut().remove(CONNECTION);
    }
    let mut response = match transport::send(&served.endpoint, req).await {
        Ok(r) => r,
        Err(e) => {
            let kept = Arc::new(e);
            served.incidents.record_shared(Arc::clone(&kept));
            return Err(TransportError::Relayed(kept));
        }
    };
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        upgraded.store(true, Ordering::SeqCst);
        let engine_side = hyper::upgrade::on(&mut response);
        tokio::spawn(async move {
            if let (Ok(client), Ok(engine)) = (client_side.await, engine_side.await) {
                let (mut client, mut engine) = (TokioIo::new(client), TokioIo::new(engine));
                let _ = tokio::io::copy_bidirectional(&mut client, &mut engine).await;
            }
        });
    }
    let incidents = Arc::clone(&served.incidents);
    Ok(response.map(move |body| {
        body.map_err(move |e| {
            if let Some(t) = transport::too_large(&e) {
                incidents.record(t.into());
            }
            e
        })
        .boxed_unsync()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use openshell_runtime::facts::Endpoint;
    use tokio::io::AsyncReadExt;

    fn endpoint() -> Endpoint {
        Endpoint::Unix {
            path: "/nonexistent/openshell-engine.sock".into(),
        }
    }

    #[tokio::test]
    async fn is_private_is_removed_when_dropped_and_sweeps_leftovers() {
        // A leftover of a killed process: the socket file is there, nobody listens.
        let left = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir()
            .unwrap_or_else(|e| panic!("{e}"))
            .keep();
        drop(
            std::os::unix::net::UnixListener::bind(left.join(SOCKET_NAME))
                .unwrap_or_else(|e| panic!("{e}")),
        );
        // Past the setup grace, as a killed process's directory is by the time anyone looks.
        let past = std::time::SystemTime::now() - SETUP_GRACE - Duration::from_secs(60);
        std::fs::File::open(&left)
            .and_then(|d| d.set_modified(past))
            .unwrap_or_else(|e| panic!("{e}"));
        let live =
            Proxy::start(endpoint(), Duration::from_secs(5)).unwrap_or_else(|e| panic!("{e}"));
        let live_dir = live
            .socket()
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let mode = std::fs::metadata(&live_dir)
            .unwrap_or_else(|e| panic!("{e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "{mode:o}");
        assert!(!left.exists(), "leftover {} not swept", left.display());

        // A second proxy leaves the live one alone.
        let other =
            Proxy::start(endpoint(), Duration::from_secs(5)).unwrap_or_else(|e| panic!("{e}"));
        assert!(live.socket().exists());
        drop(other);
        drop(live);
        assert!(!live_dir.exists(), "{} left behind", live_dir.display());
    }

    #[tokio::test]
    async fn an_unreachable_engine_is_recorded_for_the_call() {
        let proxy =
            Proxy::start(endpoint(), Duration::from_secs(5)).unwrap_or_else(|e| panic!("{e}"));
        let mark = proxy.mark();
        assert!(proxy.incident_since(mark).is_none());
        let mut client = UnixStream::connect(proxy.socket())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        use tokio::io::AsyncWriteExt;
        client
            .write_all(b"GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // The proxy records the failure, then closes the client.
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
        let incident = proxy
            .incident_since(mark)
            .unwrap_or_else(|| panic!("no incident"));
        assert!(
            matches!(*incident, TransportError::Connect(_)),
            "{incident}"
        );
    }

    /// The requests of podman-api's connections (one per request) reach the engine over one
    /// kept connection, and an attach's two ends are joined.
    #[tokio::test]
    async fn requests_share_the_targets_kept_connection_and_upgrades_are_joined() {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
        // On loopback TCP: a Unix socket costs less to connect than to wait for.
        let engine = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let port = engine.local_addr().map(|a| a.port()).ok();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        // A test engine: answers `/_ping`, and switches protocols on `/attach`, then echoes.
        let task = tokio::spawn(async move {
            for _ in 0..8 {
                let Ok((stream, _)) = engine.accept().await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut stream = tokio::io::BufReader::new(stream);
                    for _ in 0..8 {
                        let mut line = String::new();
                        if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        loop {
                            let mut h = String::new();
                            if stream.read_line(&mut h).await.unwrap_or(0) == 0 || h == "\r\n" {
                                break;
                            }
                        }
                        if line.starts_with("POST /attach") {
                            let _ = stream
                                .get_mut()
                                .write_all(b"HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
                                .await;
                            // Echoed as the engines frame a container's stdout.
                            let mut echo = String::new();
                            let _ = stream.read_line(&mut echo).await;
                            let mut frame = vec![1u8, 0, 0, 0];
                            frame.extend_from_slice(&(echo.len() as u32).to_be_bytes());
                            frame.extend_from_slice(echo.as_bytes());
                            let _ = stream.get_mut().write_all(&frame).await;
                            return;
                        }
                        let _ = stream
                            .get_mut()
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK")
                            .await;
                    }
                });
            }
        });
        let target = Endpoint::Tcp {
            host: "127.0.0.1".into(),
            port,
            tls: false,
        };
        let proxy = Proxy::start(target, Duration::from_secs(5)).unwrap_or_else(|e| panic!("{e}"));
        for _ in 0..4 {
            let mut client = UnixStream::connect(proxy.socket())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            client
                .write_all(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let mut reply = String::new();
            let _ = tokio::time::timeout(Duration::from_secs(5), client.read_to_string(&mut reply))
                .await;
            assert!(
                reply.starts_with("HTTP/1.1 200") && reply.ends_with("OK"),
                "{reply}"
            );
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "one engine connection for all"
        );

        let mut client = UnixStream::connect(proxy.socket())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        client
            .write_all(b"POST /attach HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut client = tokio::io::BufReader::new(client);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(Duration::from_secs(5), client.read_line(&mut line))
                .await
                .unwrap_or_else(|_| panic!("no upgrade: {head}"))
                .unwrap_or(0);
            if n == 0 || line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        client
            .get_mut()
            .write_all(b"hello through the attach\n")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut echoed = vec![0u8; 8 + 25];
        let read =
            tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut echoed)).await;
        assert!(matches!(read, Ok(Ok(_))), "{read:?}");
        assert_eq!(&echoed[8..], b"hello through the attach\n");
        task.abort();
    }
}
