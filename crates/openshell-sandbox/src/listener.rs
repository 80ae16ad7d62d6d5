//! The gateway's side of a callback: listen exactly where the route says, and report which
//! sandbox arrived with a valid token.
//!
//! Sandboxes call `GET /callback/<sandbox-id>/<token>` on `host.openshell.internal:<port>`. The
//! listener reads one bounded request line per connection, answers `200` for a known
//! sandbox/token pair and `403` otherwise; only the former counts as an arrival.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openshell_runtime::Route;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How the listener may bind.
#[derive(Debug, Clone, Copy)]
pub struct ListenerOptions {
    /// Accept a wildcard bind (`0.0.0.0`, `::`) when the route asks for one.
    pub allow_wildcard: bool,
    /// Bind an address that does not exist yet (Linux `IP_FREEBIND`). Netavark creates a
    /// network's bridge only when its first container starts, so the route's bridge address may
    /// not be on the host when the gateway starts; with this the listener binds it anyway and
    /// starts receiving as soon as the bridge comes up.
    pub allow_freebind: bool,
    /// How long a connection may take to send its request line.
    pub read_timeout: Duration,
}

impl Default for ListenerOptions {
    fn default() -> Self {
        ListenerOptions {
            allow_wildcard: false,
            allow_freebind: true,
            read_timeout: Duration::from_secs(5),
        }
    }
}

/// Most arrivals kept for sandboxes nobody is waiting for yet.
const MAX_EARLY: usize = 4096;

/// Longest request line read.
const MAX_REQUEST: usize = 1024;

/// A sandbox that called back with its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    /// Which sandbox.
    pub sandbox_id: String,
    /// From where.
    pub peer: SocketAddr,
}

/// Why the listener could not serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListenerError {
    /// The route names no bind address.
    #[error("route for {runtime} names no bind address; give the listener one explicitly")]
    NoBind {
        /// Runtime id.
        runtime: String,
    },
    /// A wildcard bind was refused.
    #[error("refusing to bind {addr}: it exposes the gateway on every interface; allow it explicitly (allow_wildcard) if that is intended")]
    Wildcard {
        /// The address.
        addr: IpAddr,
    },
    /// The bind failed.
    #[error("cannot listen on {addr}: {source}{}", hint(source))]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// No sandbox arrived in time.
    #[error("sandbox {sandbox_id} did not call back to {addr} within {waited:?}: the route does not reach this listener (wrong address, firewall, or the sandbox failed before calling)")]
    Timeout {
        /// Which sandbox.
        sandbox_id: String,
        /// Where the listener listens.
        addr: SocketAddr,
        /// How long it waited.
        waited: Duration,
    },
}

fn hint(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::AddrNotAvailable => " (the address is not on this host: is the bridge up, or is the route for another machine?)",
        io::ErrorKind::AddrInUse => " (another process listens there)",
        io::ErrorKind::PermissionDenied => " (a privileged port, or a sandboxed process)",
        _ => "",
    }
}

type Tokens = Arc<Mutex<HashMap<String, String>>>;

/// Listens where a route says and collects arrivals.
#[derive(Debug)]
pub struct CallbackListener {
    addr: SocketAddr,
    route: Route,
    tokens: Tokens,
    arrivals: mpsc::Receiver<Arrival>,
    /// Arrivals received while waiting for another sandbox, kept for their own `wait_for`.
    early: Vec<Arrival>,
    task: JoinHandle<()>,
    freebind: bool,
}

impl Drop for CallbackListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn bind_socket(addr: SocketAddr, freebind: bool) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if freebind {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        match addr {
            SocketAddr::V4(_) => socket.set_freebind_v4(true)?,
            SocketAddr::V6(_) => socket.set_freebind_v6(true)?,
        }
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(128)?;
    TcpListener::from_std(socket.into())
}

impl CallbackListener {
    /// Binds the route's address and port (port 0 picks a free one; [`route`](Self::route) then
    /// carries the real port).
    pub async fn bind(
        route: &Route,
        opts: ListenerOptions,
    ) -> Result<CallbackListener, ListenerError> {
        let ip = route.bind.ok_or_else(|| ListenerError::NoBind {
            runtime: route.runtime.clone(),
        })?;
        // Linux binds `::ffff:0.0.0.0` as every IPv4 interface: check (and bind) the canonical
        // form, whoever built the route.
        let ip = openshell_runtime::addr::canonical(ip);
        if ip.is_unspecified() && !opts.allow_wildcard {
            return Err(ListenerError::Wildcard { addr: ip });
        }
        let want = SocketAddr::new(ip, route.port);
        let (listener, freebind) = match bind_socket(want, false) {
            Ok(l) => (l, false),
            Err(e)
                if e.kind() == io::ErrorKind::AddrNotAvailable
                    && opts.allow_freebind
                    && cfg!(target_os = "linux") =>
            {
                tracing::info!(%want, "address not on this host yet; binding with IP_FREEBIND");
                (
                    bind_socket(want, true)
                        .map_err(|source| ListenerError::Bind { addr: want, source })?,
                    true,
                )
            }
            Err(source) => return Err(ListenerError::Bind { addr: want, source }),
        };
        let addr = listener
            .local_addr()
            .map_err(|source| ListenerError::Bind { addr: want, source })?;
        let mut route = route.clone();
        route.port = addr.port();
        let tokens: Tokens = Arc::default();
        let (tx, arrivals) = mpsc::channel(64);
        let task = tokio::spawn(serve(listener, Arc::clone(&tokens), tx, opts.read_timeout));
        tracing::debug!(%addr, freebind, "callback listener up");
        Ok(CallbackListener {
            addr,
            route,
            tokens,
            arrivals,
            early: Vec::new(),
            task,
            freebind,
        })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The route, with the port actually bound.
    pub fn route(&self) -> &Route {
        &self.route
    }

    /// Whether the address was bound before it existed on the host (`IP_FREEBIND`).
    pub fn used_freebind(&self) -> bool {
        self.freebind
    }

    /// Registers a sandbox's one-time token.
    pub fn expect(&self, sandbox_id: &str, token: &str) {
        if let Ok(mut t) = self.tokens.lock() {
            t.insert(sandbox_id.to_string(), token.to_string());
        }
    }

    /// Waits for `sandbox_id` to call back, at most `timeout`. Arrivals of other sandboxes that
    /// come first are kept for their own `wait_for`, so many sandboxes can be awaited in any
    /// order.
    pub async fn wait_for(
        &mut self,
        sandbox_id: &str,
        timeout: Duration,
    ) -> Result<Arrival, ListenerError> {
        if let Some(i) = self.early.iter().position(|a| a.sandbox_id == sandbox_id) {
            return Ok(self.early.swap_remove(i));
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.arrivals.recv()).await {
                Ok(Some(a)) if a.sandbox_id == sandbox_id => return Ok(a),
                Ok(Some(other)) => {
                    if self.early.len() < MAX_EARLY {
                        self.early.push(other);
                    }
                }
                Ok(None) | Err(_) => {
                    return Err(ListenerError::Timeout {
                        sandbox_id: sandbox_id.to_string(),
                        addr: self.addr,
                        waited: timeout,
                    })
                }
            }
        }
    }

    /// Takes the next arrival of any sandbox, at most `timeout`.
    pub async fn next_arrival(&mut self, timeout: Duration) -> Option<Arrival> {
        tokio::time::timeout(timeout, self.arrivals.recv())
            .await
            .ok()
            .flatten()
    }
}

async fn serve(
    listener: TcpListener,
    tokens: Tokens,
    tx: mpsc::Sender<Arrival>,
    read_timeout: Duration,
) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let tokens = Arc::clone(&tokens);
        let tx = tx.clone();
        tokio::spawn(async move {
            if let Some(id) = handle(stream, peer, &tokens, read_timeout).await {
                let _ = tx
                    .send(Arrival {
                        sandbox_id: id,
                        peer,
                    })
                    .await;
            }
        });
    }
}

/// Reads one request line; answers; returns the sandbox id when its token matched.
async fn handle(
    mut stream: TcpStream,
    peer: SocketAddr,
    tokens: &Tokens,
    read_timeout: Duration,
) -> Option<String> {
    let mut buf = Vec::with_capacity(256);
    let read = tokio::time::timeout(read_timeout, async {
        let mut chunk = [0u8; 256];
        while !buf.windows(2).any(|w| w == b"\r\n") && buf.len() < MAX_REQUEST {
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Some(())
    })
    .await;
    let line = String::from_utf8_lossy(&buf);
    let first = line.lines().next().unwrap_or_default();
    let ok = match (read, parse_callback(first)) {
        (Ok(Some(())), Some((id, token))) => tokens
            .lock()
            .ok()
            .and_then(|t| t.get(id).map(|want| want == token))
            .unwrap_or(false)
            .then(|| id.to_string()),
        _ => None,
    };
    let answer: &[u8] = if ok.is_some() {
        b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n"
    } else {
        b"HTTP/1.0 403 Forbidden\r\nContent-Length: 0\r\n\r\n"
    };
    let _ = stream.write_all(answer).await;
    let _ = stream.shutdown().await;
    tracing::debug!(%peer, accepted = ok.is_some(), "callback request");
    ok
}

fn parse_callback(line: &str) -> Option<(&str, &str)> {
    let mut parts = line.split(' ');
    let (method, path) = (parts.next()?, parts.next()?);
    if method != "GET" {
        return None;
    }
    let rest = path.strip_prefix("/callback/")?;
    let (id, token) = rest.split_once('/')?;
    let valid = |s: &str| {
        !s.is_empty()
            && s.len() <= 128
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    (valid(id) && valid(token)).then_some((id, token))
}

#[cfg(test)]
mod tests {
    use super::*;
    use openshell_runtime::{EngineKind, Exposure, HostTarget};

    fn route(bind: &str) -> Route {
        Route {
            runtime: "test".into(),
            engine: EngineKind::Docker,
            openshell_host: HostTarget::Ip("127.0.0.1".parse().unwrap_or_else(|_| unreachable!())),
            bind: Some(bind.parse().unwrap_or_else(|_| unreachable!())),
            exposure: Exposure::Loopback,
            port: 0,
            tls: false,
            why: String::new(),
            notes: Vec::new(),
        }
    }

    async fn call(addr: SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut out = String::new();
        let _ = s.read_to_string(&mut out).await;
        out
    }

    #[tokio::test]
    async fn accepts_only_known_tokens_and_reports_the_sandbox() {
        let mut l = CallbackListener::bind(&route("127.0.0.1"), ListenerOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        l.expect("sb-1", "tok1");
        let addr = l.local_addr();
        assert!(call(addr, "/callback/sb-1/wrong")
            .await
            .starts_with("HTTP/1.0 403"));
        assert!(call(addr, "/callback/sb-1/tok1%0a")
            .await
            .starts_with("HTTP/1.0 403"));
        assert!(call(addr, "/callback/sb-2/tok1")
            .await
            .starts_with("HTTP/1.0 403"));
        assert!(l.next_arrival(Duration::from_millis(200)).await.is_none());
        assert!(call(addr, "/callback/sb-1/tok1")
            .await
            .starts_with("HTTP/1.0 200"));
        let a = l
            .wait_for("sb-1", Duration::from_secs(2))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.sandbox_id, "sb-1");
        assert_eq!(l.route().port, addr.port());
    }

    #[tokio::test]
    async fn arrivals_can_be_awaited_in_any_order() {
        let mut l = CallbackListener::bind(&route("127.0.0.1"), ListenerOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        for i in 0..5 {
            l.expect(&format!("sb-{i}"), "tok");
        }
        let addr = l.local_addr();
        for i in 0..5 {
            assert!(call(addr, &format!("/callback/sb-{i}/tok"))
                .await
                .starts_with("HTTP/1.0 200"));
        }
        for i in (0..5).rev() {
            let a = l
                .wait_for(&format!("sb-{i}"), Duration::from_secs(2))
                .await
                .unwrap_or_else(|e| panic!("sb-{i}: {e}"));
            assert_eq!(a.sandbox_id, format!("sb-{i}"));
        }
    }

    #[tokio::test]
    async fn refuses_wildcard_unless_allowed_and_times_out_cleanly() {
        for wildcard in ["0.0.0.0", "::", "::ffff:0.0.0.0"] {
            let err = CallbackListener::bind(&route(wildcard), ListenerOptions::default()).await;
            assert!(
                matches!(err, Err(ListenerError::Wildcard { .. })),
                "{wildcard}: {err:?}"
            );
        }
        let mut l = CallbackListener::bind(&route("127.0.0.1"), ListenerOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let err = l.wait_for("nobody", Duration::from_millis(100)).await;
        assert!(matches!(err, Err(ListenerError::Timeout { .. })), "{err:?}");
    }

    #[tokio::test]
    async fn binds_an_address_not_yet_on_the_host_with_freebind() {
        // 198.51.100.0/24 is documentation space: never configured, never contacted.
        let no_free = ListenerOptions {
            allow_freebind: false,
            ..ListenerOptions::default()
        };
        let err = CallbackListener::bind(&route("198.51.100.7"), no_free).await;
        assert!(matches!(err, Err(ListenerError::Bind { .. })), "{err:?}");
        if cfg!(target_os = "linux") {
            let l = CallbackListener::bind(&route("198.51.100.7"), ListenerOptions::default())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(l.used_freebind());
        }
    }
}
