//! The gateway's side of a callback: listen exactly where the route says, and report which
//! sandbox arrived with a valid token.
//!
//! Sandboxes call `GET /callback/<sandbox-id>/<token>` on `host.openshell.internal:<port>`. The
//! listener reads one bounded request line per connection, answers `200` for a known
//! sandbox/token pair and `403` otherwise; only the former counts as an arrival. A token is
//! compared in constant time and accepted once: a replayed callback is refused.
//!
//! Anyone who can reach the port can connect, so nothing a peer does may starve the callbacks
//! that matter: the listener holds at most [`ListenerOptions::max_connections`] connections
//! (a new one closes the oldest), gives each [`ListenerOptions::read_timeout`] to send its
//! request line, and backs off when `accept` fails (out of file descriptors) instead of
//! spinning.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openshell_runtime::Route;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

mod serve;

use serve::serve;

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
    /// How long a connection may take to send its request line. A sandbox sends it at once;
    /// only a broken or hostile peer is slower.
    pub read_timeout: Duration,
    /// Most connections served at once. When a new connection would exceed it, the oldest is
    /// closed: a real callback sends its request line within a round trip, so under a flood of
    /// idle connections it is served before it becomes the oldest.
    pub max_connections: usize,
}

impl Default for ListenerOptions {
    fn default() -> Self {
        ListenerOptions {
            allow_wildcard: false,
            allow_freebind: true,
            read_timeout: Duration::from_secs(2),
            max_connections: 128,
        }
    }
}

/// Most arrivals kept for sandboxes nobody is waiting for yet.
const MAX_EARLY: usize = 4096;

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

/// Registered one-time tokens by sandbox id.
type Tokens = Arc<Mutex<HashMap<String, String>>>;

/// Listens where a route says and collects arrivals.
#[derive(Debug)]
pub struct CallbackListener {
    addr: SocketAddr,
    route: Route,
    tokens: Tokens,
    arrivals: mpsc::UnboundedReceiver<Arrival>,
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

/// Whether `ip` is an address of this host now: binding it (without `IP_FREEBIND`) is refused
/// with `EADDRNOTAVAIL` exactly when it is not. Nothing is sent; any other failure is no answer,
/// and counts as an address of this host (nothing is claimed that was not seen).
pub fn is_host_address(ip: IpAddr) -> bool {
    match std::net::TcpListener::bind(SocketAddr::new(ip, 0)) {
        Ok(_) => true,
        Err(e) => e.kind() != io::ErrorKind::AddrNotAvailable,
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
        // Unbounded is bounded here: a token is accepted once, so there are never more
        // arrivals than `expect` calls. It lets a connection hand over its arrival without
        // waiting, before anything can close it.
        let (tx, arrivals) = mpsc::unbounded_channel();
        let task = tokio::spawn(serve(listener, Arc::clone(&tokens), tx, opts));
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

    /// Registers a sandbox's one-time token: the first callback that presents it is accepted,
    /// every later one refused.
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

#[cfg(test)]
mod tests {
    use super::*;
    use openshell_runtime::{EngineKind, Exposure, HostTarget, RouteKind};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    pub(super) fn route(bind: &str) -> Route {
        Route {
            runtime: "test".into(),
            engine: EngineKind::Docker,
            route_kind: RouteKind::Bridge,
            openshell_host: HostTarget::Ip("127.0.0.1".parse().unwrap_or_else(|_| unreachable!())),
            target_source: openshell_runtime::TargetSource::Runtime,
            bind: Some(bind.parse().unwrap_or_else(|_| unreachable!())),
            exposure: Exposure::Loopback,
            port: 0,
            tls: false,
            why: String::new(),
            notes: Vec::new(),
        }
    }

    pub(super) async fn call(addr: SocketAddr, path: &str) -> String {
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

    #[tokio::test]
    async fn accepts_each_token_once() {
        let mut l = CallbackListener::bind(&route("127.0.0.1"), ListenerOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        l.expect("sb-1", "tok1");
        let addr = l.local_addr();
        assert!(call(addr, "/callback/sb-1/tok1")
            .await
            .starts_with("HTTP/1.0 200"));
        l.wait_for("sb-1", Duration::from_secs(2))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // A replay of a used token (a copied log line, a second process) is refused and is no
        // arrival.
        assert!(call(addr, "/callback/sb-1/tok1")
            .await
            .starts_with("HTTP/1.0 403"));
        assert!(l.next_arrival(Duration::from_millis(200)).await.is_none());
    }

    /// Binding tells whether an address is this host's; nothing is sent.
    #[test]
    fn host_addresses_are_told_by_binding() {
        assert!(is_host_address(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)));
        // TEST-NET-1 (RFC 5737) is never assigned.
        assert!(!is_host_address(IpAddr::V4(std::net::Ipv4Addr::new(
            192, 0, 2, 1
        ))));
    }
}
