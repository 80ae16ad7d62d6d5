//! The one way to an engine: every connection to an engine (raw requests, the Docker driver's
//! client, the Podman driver's relay) is opened by [`connect`], which hands it out already
//! wrapped in a [`Capped`] byte budget. Whichever client reads a reply, it cannot read more than
//! [`MAX_REPLY`] bytes of it: the read after the budget fails with [`ReplyTooLarge`].
//!
//! It is also the one place that decides which endpoints can be reached at all ([`check`]), and
//! how: a [`Target`] is an endpoint with what reaching it takes. Unix sockets and plain
//! `tcp://` are connected directly; `tcp://` with TLS through the TLS material discovery loaded
//! ([`crate::tls`]: the engine's certificate is always verified), and an endpoint that requires
//! TLS but came without material is refused before anything is sent, since plain HTTP would
//! carry the engine calls (and what they carry, such as a sandbox's callback token) in the
//! clear; `ssh://` through the system ssh client ([`crate::ssh`]).
//!
//! The budget is per reply, headers included: [`Capped`] starts it over when a request is
//! written after a reply was read (HTTP/1.1 clients send the next request only once the
//! previous reply is in). So connections are kept and reused: [`send`] takes an idle one the
//! target kept (every clone of a [`Target`] shares them) before it opens one, and keeps it
//! again once the reply is in: one TCP connect and TLS handshake, or one ssh client, serves
//! many engine calls, as the docker CLI's one connection does. A kept connection the engine
//! closed is retried once on a new one, but only for a request that was not written or that
//! cannot change anything (a bodiless `GET`); every call stays bounded by its caller's timeout.
//! A streamed reply (logs, pull progress) shares the budget of its reply; the lifecycle reads
//! at most 64 KiB of logs, and a pull's progress stays far below it within the call's timeout.
//! A reply that switches protocols (`101`, an attach) is not budgeted after its status line: it
//! is a stream both sides read as it goes, for as long as the session lasts, and no client
//! collects it whole; its attach frames are checked ([`MAX_ATTACH_FRAME`]).

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, HOST};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use openshell_runtime::facts::Endpoint;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::rustls;

use crate::ssh::{SessionSlot, SshFailed, SshSettings, SshStream};
use crate::tls::TlsMaterial;
use crate::BoxError;

/// The most bytes read of one engine reply, headers included.
pub const MAX_REPLY: usize = 8 * 1024 * 1024;

/// The port of a `tcp://` endpoint that names none (the Docker daemon's plain-HTTP port).
const DEFAULT_TCP_PORT: u16 = 2375;

/// The port of a `tcp://` endpoint with TLS that names none (the Docker daemon's TLS port).
const DEFAULT_TLS_PORT: u16 = 2376;

/// An endpoint and what reaching it takes: the TLS material for a `tcp://` endpoint that
/// requires TLS, the ssh client's settings for an `ssh://` one. Discovery builds it; an
/// [`Endpoint`] alone converts into a target that needs neither.
///
/// Clones share their connections: idle HTTP/1.1 connections kept for the next request
/// ([`send`]) and, for `ssh://`, one ssh session ([`crate::ssh`]). Both end when the last
/// clone is dropped; a target changed by [`Target::with_tls`], [`Target::with_ssh`] or
/// [`Target::map_endpoint`] starts with none.
#[derive(Debug, Clone)]
pub struct Target {
    endpoint: Endpoint,
    tls: Option<Arc<TlsMaterial>>,
    ssh: SshSettings,
    shared: Arc<Shared>,
}

/// What the clones of a target share.
#[derive(Debug, Default)]
struct Shared {
    pool: Pool,
    session: SessionSlot,
}

impl Target {
    /// `endpoint`, with no TLS material and ssh's defaults.
    pub fn new(endpoint: Endpoint) -> Target {
        Target {
            endpoint,
            tls: None,
            ssh: SshSettings::default(),
            shared: Arc::default(),
        }
    }

    /// This target speaking TLS with `material` (the endpoint is marked as requiring TLS).
    pub fn with_tls(self, material: TlsMaterial) -> Target {
        Target {
            endpoint: self.endpoint.with_tls(),
            tls: Some(Arc::new(material)),
            ssh: self.ssh,
            shared: Arc::default(),
        }
    }

    /// This target with these ssh settings (used for `ssh://` endpoints only).
    pub fn with_ssh(self, ssh: SshSettings) -> Target {
        Target {
            ssh,
            endpoint: self.endpoint,
            tls: self.tls,
            shared: Arc::default(),
        }
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// This target with its endpoint changed by `f` (a default port filled in); what reaching
    /// it takes stays.
    pub fn map_endpoint(self, f: impl FnOnce(Endpoint) -> Endpoint) -> Target {
        Target {
            endpoint: f(self.endpoint),
            tls: self.tls,
            ssh: self.ssh,
            shared: Arc::default(),
        }
    }

    /// How long a request waits for a connection in use to be free before it opens another:
    /// [`COSTLY_WAIT`] where a new connection costs more than that (an ssh client running
    /// `docker system dial-stdio` on the remote side, a remote docker CLI started per
    /// connection); [`BRIEF_WAIT`] for TCP, TLS and a channel through an ssh forward, whose
    /// cost (a round trip or two, a handshake) is more than a connection needs to become free
    /// once its reply was read, but less than the engine's slower answers a concurrent call
    /// would wait for; none for a Unix socket, where connecting costs less than waiting.
    fn wait_for_kept(&self) -> Duration {
        match self.endpoint {
            Endpoint::Ssh { path: None, .. } => COSTLY_WAIT,
            Endpoint::Unix { .. } | Endpoint::Npipe { .. } => Duration::ZERO,
            Endpoint::Tcp { .. } | Endpoint::Ssh { .. } => BRIEF_WAIT,
        }
    }

    /// How many idle connections to the engine this target (and its clones) keeps now.
    pub fn idle_connections(&self) -> usize {
        self.shared.pool.idle_count()
    }

    /// The TLS material, when the endpoint is spoken to over TLS.
    pub fn tls(&self) -> Option<&TlsMaterial> {
        self.tls.as_deref()
    }

    /// The ssh settings.
    pub fn ssh(&self) -> &SshSettings {
        &self.ssh
    }
}

impl From<Endpoint> for Target {
    fn from(endpoint: Endpoint) -> Target {
        Target::new(endpoint)
    }
}

impl PartialEq for Target {
    fn eq(&self, other: &Target) -> bool {
        self.endpoint == other.endpoint
            && self.ssh == other.ssh
            && self.tls.as_ref().map(|t| t.files()) == other.tls.as_ref().map(|t| t.files())
    }
}

impl Eq for Target {}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.endpoint.fmt(f)
    }
}

impl serde::Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.endpoint.serialize(s)
    }
}

/// A reply went over the budget; the rest of it was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the engine's reply is over {limit} bytes, the most read from an engine, and was refused (a misbehaving engine, or something else answering on its socket)")]
pub struct ReplyTooLarge {
    /// The budget in bytes.
    pub limit: usize,
}

/// An attach stream announced a frame longer than any an attached container sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the engine's attach stream announced a frame of {claimed} bytes, over the {limit} bytes accepted (the relay's frames are small); the stream was refused (a misbehaving engine, or something else answering on its socket)")]
pub struct AttachFrameTooLarge {
    /// The length the frame header claimed.
    pub claimed: u32,
    /// The most accepted.
    pub limit: u32,
}

/// The longest frame an attach stream may announce. Engines frame each write of the
/// container's stdout or stderr (the relay writes at most a yamux frame, 16 KiB and a header,
/// at a time); a client library buffers a whole frame before handing it out, so a hostile
/// header of 0xFFFFFFF0 bytes made the gateway allocate hundreds of MB.
pub const MAX_ATTACH_FRAME: u32 = 1024 * 1024;

/// Where a reply's bytes are, for the attach-frame check: in the HTTP head (with how much of
/// its `\r\n\r\n` end was seen), in an attach frame's 8-byte header (with the bytes so far),
/// in a frame's body (with the bytes left), or past a head that did not switch protocols.
#[derive(Debug, Clone, Copy)]
enum Framing {
    Head(u8),
    Header([u8; 8], u8),
    Body(u32),
    Off,
}

/// Why a connection to an engine could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// Connecting failed.
    #[error("cannot connect: {0}")]
    Connect(#[source] io::Error),
    /// The endpoint kind cannot be reached this way.
    #[error("endpoint {0} cannot be reached directly (only unix:// and tcp://)")]
    Unsupported(String),
    /// The endpoint requires TLS but came without TLS material; nothing was sent to it.
    #[error("{0} requires TLS, and no TLS material (ca.pem, cert.pem, key.pem) was named for it; nothing was sent to it in plain HTTP")]
    TlsRequired(String),
    /// The TLS handshake failed (most often: the engine's certificate is not signed by the CA,
    /// or does not name the host connected to).
    #[error("TLS handshake with {endpoint} failed: {source}; the engine's certificate must be signed by a CA in {ca} and name {host}")]
    Tls {
        /// The endpoint.
        endpoint: String,
        /// The host the certificate must name.
        host: String,
        /// What it is verified against: the CA file, or the system's trusted CAs.
        ca: String,
        /// What failed.
        #[source]
        source: io::Error,
    },
    /// The engine ended the TLS session with an alert: it did not accept this client (under
    /// TLS 1.3 it checks the client certificate after the handshake, so this can come with the
    /// first request).
    #[error("{endpoint} ended the TLS session with the alert {alert}: {advice}")]
    TlsAlert {
        /// The endpoint.
        endpoint: String,
        /// The alert, as rustls names it (`CertificateRequired`).
        alert: String,
        /// What to do about it.
        advice: &'static str,
    },
    /// The ssh client could not be started, or closed the connection before the engine answered.
    #[error("ssh to {endpoint} failed: {source}")]
    Ssh {
        /// The endpoint.
        endpoint: String,
        /// What failed, with what ssh said.
        #[source]
        source: io::Error,
    },
    /// The reply went over [`MAX_REPLY`].
    #[error(transparent)]
    TooLarge(#[from] ReplyTooLarge),
    /// The ssh client closed the connection before the engine answered.
    #[error(transparent)]
    SshClosed(#[from] SshFailed),
    /// The HTTP exchange failed.
    #[error("HTTP exchange failed: {0}")]
    Http(#[source] hyper::Error),
    /// The request could not be sent as built (a URI without a path).
    #[error("bad request: {0}")]
    Request(#[source] hyper::http::Error),
    /// The private proxy could not relay a request: this failure, also recorded for the driver.
    #[error(transparent)]
    Relayed(Arc<TransportError>),
}

/// A connection to an engine, before its budget.
#[derive(Debug)]
pub enum EngineStream {
    /// A Unix socket.
    Unix(UnixStream),
    /// A TCP connection.
    Tcp(TcpStream),
    /// A TLS session over TCP.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// A connection through an ssh process.
    Ssh(Box<SshStream>),
}

/// Where an upgraded reply's status code sits: `HTTP/1.1 101`.
const STATUS_LINE_START: usize = b"HTTP/1.1 101".len();

/// A stream whose reads fail once more than `limit` bytes of one reply came through it. What
/// was read past the limit is at most one read buffer, so a client's memory stays bounded near
/// the limit.
///
/// HTTP/1.1 clients (hyper's among them) send a request only once the previous reply is read,
/// so a write after reads starts a new exchange: the budget and what is known of the reply
/// start over, and the first bytes read after it are the next reply's status line. A reply
/// that switches protocols (`101`) lifts the limit for good ([`Capped::upgraded`]). An engine
/// cannot make us write, so however it splits its bytes, it gets at most `limit` bytes per
/// request we sent.
#[derive(Debug)]
pub struct Capped<S> {
    inner: S,
    read: usize,
    limit: usize,
    head: Vec<u8>,
    upgraded: Arc<AtomicBool>,
    framing: Framing,
    /// Bytes were read since the last write: the next write starts a new exchange.
    replied: bool,
}

impl<S> Capped<S> {
    /// `inner`, allowed `limit` bytes.
    pub fn new(inner: S, limit: usize) -> Capped<S> {
        Capped {
            inner,
            read: 0,
            limit,
            head: Vec::with_capacity(STATUS_LINE_START),
            upgraded: Arc::default(),
            framing: Framing::Head(0),
            replied: false,
        }
    }

    /// A new request is being written after a reply was read: the next reply gets a budget of
    /// its own. Nothing starts over on a stream that switched protocols.
    fn next_exchange(&mut self) {
        if self.replied && !self.upgraded.load(Ordering::SeqCst) {
            self.read = 0;
            self.head.clear();
            self.framing = Framing::Head(0);
            self.replied = false;
        }
    }

    /// Follows the reply through `fresh` bytes: past the head of a reply that switched
    /// protocols (an attach, never with a TTY here), the stream is the engines' frames (a
    /// byte naming stdout or stderr, three zeros, a big-endian u32 length, the payload); a
    /// frame longer than [`MAX_ATTACH_FRAME`] is refused before any client reads its header.
    fn watch_frames(&mut self, fresh: &[u8]) -> Result<(), AttachFrameTooLarge> {
        let mut i = 0;
        while i < fresh.len() {
            self.framing = match self.framing {
                Framing::Off => return Ok(()),
                Framing::Head(seen) => {
                    let b = fresh[i];
                    i += 1;
                    let seen = match (seen, b) {
                        (0 | 2, b'\r') => seen + 1,
                        (1 | 3, b'\n') => seen + 1,
                        (_, b'\r') => 1,
                        _ => 0,
                    };
                    match (seen, self.upgraded.load(Ordering::Relaxed)) {
                        (4, true) => Framing::Header([0; 8], 0),
                        (4, false) => Framing::Off,
                        _ => Framing::Head(seen),
                    }
                }
                Framing::Header(mut header, have) => {
                    let take = (8 - have as usize).min(fresh.len() - i);
                    header[have as usize..have as usize + take]
                        .copy_from_slice(&fresh[i..i + take]);
                    i += take;
                    let have = have + take as u8;
                    if have < 8 {
                        Framing::Header(header, have)
                    } else {
                        let claimed =
                            u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
                        if claimed > MAX_ATTACH_FRAME {
                            return Err(AttachFrameTooLarge {
                                claimed,
                                limit: MAX_ATTACH_FRAME,
                            });
                        }
                        match claimed {
                            0 => Framing::Header([0; 8], 0),
                            n => Framing::Body(n),
                        }
                    }
                }
                Framing::Body(left) => {
                    let take = (left as usize).min(fresh.len() - i);
                    i += take;
                    match left - take as u32 {
                        0 => Framing::Header([0; 8], 0),
                        n => Framing::Body(n),
                    }
                }
            };
        }
        Ok(())
    }

    /// Becomes true once the reply switched protocols (and the limit no longer applies).
    pub fn upgraded(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.upgraded)
    }

    /// Notes the reply's first bytes until its status code is known.
    fn watch_status(&mut self, fresh: &[u8]) {
        let want = STATUS_LINE_START - self.head.len();
        self.head.extend_from_slice(&fresh[..fresh.len().min(want)]);
        if self.head.len() == STATUS_LINE_START
            && self.head.starts_with(b"HTTP/1.")
            && self.head.ends_with(b" 101")
        {
            self.upgraded.store(true, Ordering::SeqCst);
        }
    }
}

/// Whether [`connect`] can reach `target`: a Unix socket, TCP (with TLS only when the target
/// carries TLS material), or ssh. Drivers ask before they set up a client, so a refusal comes
/// first and names the endpoint.
pub fn check(target: &Target) -> Result<(), TransportError> {
    let endpoint = target.endpoint();
    match endpoint {
        Endpoint::Unix { .. } | Endpoint::Tcp { tls: false, .. } | Endpoint::Ssh { .. } => Ok(()),
        Endpoint::Tcp { tls: true, .. } if target.tls().is_some() => Ok(()),
        Endpoint::Tcp { tls: true, .. } => Err(TransportError::TlsRequired(endpoint.to_string())),
        Endpoint::Npipe { .. } => Err(TransportError::Unsupported(endpoint.to_string())),
    }
}

/// Opens a connection to `target`, with a budget of [`MAX_REPLY`] bytes. Nothing else in
/// the workspace opens an engine connection.
pub async fn connect(target: &Target) -> Result<Capped<EngineStream>, TransportError> {
    check(target)?;
    let endpoint = target.endpoint();
    let stream = match (endpoint, target.tls()) {
        (Endpoint::Unix { path }, _) => EngineStream::Unix(
            UnixStream::connect(path)
                .await
                .map_err(TransportError::Connect)?,
        ),
        (
            Endpoint::Tcp {
                host,
                port,
                tls: false,
            },
            _,
        ) => EngineStream::Tcp(tcp_connect(host, port.unwrap_or(DEFAULT_TCP_PORT)).await?),
        (
            Endpoint::Tcp {
                host,
                port,
                tls: true,
            },
            Some(material),
        ) => {
            let tcp = tcp_connect(host, port.unwrap_or(DEFAULT_TLS_PORT)).await?;
            let tls =
                material
                    .handshake(host, tcp)
                    .await
                    .map_err(|source| match tls_alert(&source) {
                        // The engine refused us, not we the engine.
                        Some(alert) => alert_error(endpoint, alert),
                        None => TransportError::Tls {
                            endpoint: endpoint.to_string(),
                            host: host.clone(),
                            ca: material.trust(),
                            source,
                        },
                    })?;
            EngineStream::Tls(Box::new(tls))
        }
        (Endpoint::Ssh { host, port, path }, _) => EngineStream::Ssh(Box::new(
            target
                .shared
                .session
                .connect(target.ssh(), host, *port, path.as_deref())
                .await
                .map_err(|source| TransportError::Ssh {
                    endpoint: endpoint.to_string(),
                    source,
                })?,
        )),
        (other, _) => return Err(TransportError::Unsupported(other.to_string())),
    };
    Ok(Capped::new(stream, MAX_REPLY))
}

/// A TCP connection to `host:port` that sends each write at once (`TCP_NODELAY`). With Nagle's
/// algorithm on, a request written in two parts (a TLS record, then the next; HTTP's head, then
/// its body) waited for the engine's delayed acknowledgement of the first: 40 ms per exchange
/// on Linux, which made every TLS connection and many calls over TCP 40 ms slower (curl, Go's
/// client and so dockerd's own CLI all turn Nagle off).
async fn tcp_connect(host: &str, port: u16) -> Result<TcpStream, TransportError> {
    let tcp = TcpStream::connect((host, port))
        .await
        .map_err(TransportError::Connect)?;
    tcp.set_nodelay(true).map_err(TransportError::Connect)?;
    Ok(tcp)
}

/// Sends one request to `target` and returns the response, whose body is read through the
/// connection's budget. The connection is one the target kept from an earlier request when one
/// is idle, else a new one; once the response is in, it is kept for the next request (it takes
/// one once its body has been read; one whose body is dropped unread closes).
///
/// A kept connection the engine closed meanwhile fails the request before or as it is
/// written: a request that was not written is sent once more on a new connection, and so is a
/// `GET` or `HEAD` without a body that got no answer. Any other request is never sent twice:
/// its failure is the caller's.
pub async fn send<B>(target: &Target, req: Request<B>) -> Result<Response<Incoming>, TransportError>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    send_waiting(target, req, target.wait_for_kept()).await
}

/// [`send`], waiting at most `wait` for a kept connection in use to be free.
async fn send_waiting<B>(
    target: &Target,
    req: Request<B>,
    wait: Duration,
) -> Result<Response<Incoming>, TransportError>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let (mut parts, body) = req.into_parts();
    // Client libraries build absolute URIs for their own pools; the engine wants origin form.
    let origin = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    parts.uri = Uri::try_from(origin).map_err(|e| TransportError::Request(e.into()))?;
    parts
        .headers
        .entry(HOST)
        .or_insert(HeaderValue::from_static("docker"));
    let resendable = (parts.method == Method::GET || parts.method == Method::HEAD)
        && body.size_hint().exact() == Some(0);
    let again = resendable.then(|| bodiless_copy(&parts));
    let req = Request::from_parts(parts, body.map_err(Into::into).boxed_unsync());
    let kept = target.shared.pool.checkout_or_wait(wait).await;
    let req = match kept {
        None => req,
        Some(mut conn) => match conn.sender.try_send_request(req).await {
            Ok(response) => {
                target.shared.pool.keep(conn, &response);
                return Ok(response);
            }
            Err(mut e) => match (e.take_message(), again) {
                (Some(unsent), _) => {
                    tracing::debug!(error = %e.error(), "a kept engine connection was closed; sending on a new one");
                    unsent
                }
                (None, Some(copy)) if went_away(e.error()) => {
                    tracing::debug!(error = %e.error(), "a kept engine connection closed without an answer; sending the request again on a new one");
                    copy
                }
                (None, _) => return Err(conn.failure(target, e.into_error()).await),
            },
        },
    };
    let mut conn = open(target).await?;
    match conn.sender.send_request(req).await {
        Ok(response) => {
            target.shared.pool.keep(conn, &response);
            Ok(response)
        }
        Err(e) => Err(conn.failure(target, e).await),
    }
}

/// Whether a request failed because its kept connection went away before an answer: the
/// engine closed it (the reply ended before it began, or the request was canceled with the
/// connection) or reset it (a Unix socket closed with our request unread resets, as does a TCP
/// peer) or the write hit a closed pipe. Garbage, a timeout or a reply cut short are none of
/// these, so they are not sent again.
fn went_away(e: &hyper::Error) -> bool {
    if e.is_incomplete_message() || e.is_canceled() {
        return true;
    }
    let io = std::error::Error::source(e).and_then(|s| s.downcast_ref::<io::Error>());
    io.is_some_and(|io| {
        matches!(
            io.kind(),
            io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::UnexpectedEof
        )
    })
}

/// A request like the one of `parts`, with no body, to send again.
fn bodiless_copy(parts: &hyper::http::request::Parts) -> Request<PoolBody> {
    let mut copy = Request::new(Empty::new().map_err(|never| match never {}).boxed_unsync());
    *copy.method_mut() = parts.method.clone();
    *copy.uri_mut() = parts.uri.clone();
    *copy.version_mut() = parts.version;
    *copy.headers_mut() = parts.headers.clone();
    copy
}

/// A new HTTP/1.1 connection to `target`, its connection task running.
async fn open(target: &Target) -> Result<Pooled, TransportError> {
    let stream = connect(target).await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| http_error(target, e))?;
    // The task ends once the connection is idle and its sender gone (dropped from the pool or
    // with the target), or upgraded (an attach) and done. A connection that fails says why only
    // to this task (the request just sees itself canceled), so its error is handed back.
    let (failed, why) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            let _ = failed.send(e);
        }
    });
    Ok(Pooled::new(sender, why, &target.shared.pool))
}

/// The body every request is sent with, whatever the caller's: boxed.
type PoolBody = UnsyncBoxBody<Bytes, BoxError>;

/// One HTTP/1.1 connection to an engine, in use or kept for the next request.
struct Pooled {
    sender: SendRequest<PoolBody>,
    /// The connection task's error, if it failed.
    why: tokio::sync::oneshot::Receiver<hyper::Error>,
    /// When it was last handed back.
    kept: Instant,
    /// The count of its pool's live connections, which this one is part of until dropped.
    live: Arc<AtomicUsize>,
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Pooled {
    fn new(
        sender: SendRequest<PoolBody>,
        why: tokio::sync::oneshot::Receiver<hyper::Error>,
        pool: &Pool,
    ) -> Pooled {
        pool.live.fetch_add(1, Ordering::SeqCst);
        Pooled {
            sender,
            why,
            kept: Instant::now(),
            live: Arc::clone(&pool.live),
        }
    }

    /// The error for a request that failed on this connection: the connection's own error when
    /// the request only saw itself canceled (it ends as the request is canceled, so the wait
    /// is short, and bounded all the same).
    async fn failure(mut self, target: &Target, e: hyper::Error) -> TransportError {
        if !e.is_canceled() {
            return http_error(target, e);
        }
        let cause = tokio::time::timeout(CONNECTION_ERROR_WAIT, &mut self.why)
            .await
            .ok()
            .and_then(Result::ok);
        http_error(target, cause.unwrap_or(e))
    }
}

/// The most connections a target keeps, in use or idle.
const MAX_KEPT: usize = 8;

/// How long an idle connection is kept. Engines close idle connections on their own schedule
/// (Podman's service after its idle timeout); one closed meanwhile costs a retry, not a
/// failure, but a short keep avoids most.
const KEEP_IDLE: Duration = Duration::from_secs(30);

/// How long a request to a target whose connections are costly waits for one in use to be
/// free before it opens another: about what a new `docker system dial-stdio` costs.
const COSTLY_WAIT: Duration = Duration::from_millis(400);

/// How long a request waits for a connection in use to be free where a new one costs a round
/// trip or a handshake ([`Target`]'s `wait_for_kept`).
const BRIEF_WAIT: Duration = Duration::from_millis(2);

/// The connections a target keeps for its next requests.
#[derive(Default)]
struct Pool {
    conns: Mutex<Vec<Pooled>>,
    /// Connections open for HTTP: kept, or carrying a request.
    live: Arc<AtomicUsize>,
    /// Signalled when a connection is handed back.
    returned: tokio::sync::Notify,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pool({} idle)", self.idle_count())
    }
}

impl Pool {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Pooled>> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An idle connection, if one is kept and still open; closed and long-idle ones go.
    fn checkout(&self) -> Option<Pooled> {
        let mut conns = self.lock();
        let stale = |c: &Pooled| c.sender.is_ready() && c.kept.elapsed() > KEEP_IDLE;
        conns.retain(|c| !c.sender.is_closed() && !stale(c));
        let idle = conns.iter().position(|c| c.sender.is_ready())?;
        Some(conns.swap_remove(idle))
    }

    /// An idle connection as [`Pool::checkout`] finds one, else, while connections are open,
    /// the first that is free within `wait`: one in use until its reply is read, or one handed
    /// back meanwhile. For targets where a new connection costs more than waiting for one
    /// (an ssh client and a remote docker CLI each), so that the calls of a run share one.
    ///
    /// A connection whose reply was just read takes a moment (its connection task's next turn,
    /// on another thread) before it takes a request: without a wait, a call right after
    /// another's reply opened a connection for nothing.
    async fn checkout_or_wait(&self, wait: Duration) -> Option<Pooled> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let returned = self.returned.notified();
            if let Some(idle) = self.checkout() {
                return Some(idle);
            }
            if self.live.load(Ordering::SeqCst) == 0 {
                return None;
            }
            let busy = {
                let mut conns = self.lock();
                let newest = (0..conns.len()).max_by_key(|&i| conns[i].kept);
                newest.map(|i| conns.swap_remove(i))
            };
            match busy {
                Some(mut conn) => {
                    match tokio::time::timeout_at(deadline, conn.sender.ready()).await {
                        Ok(Ok(())) => return Some(conn),
                        // Closed: try what else there is.
                        Ok(Err(_)) => {}
                        Err(_) => {
                            self.put(conn);
                            return None;
                        }
                    }
                }
                None => {
                    if tokio::time::timeout_at(deadline, returned).await.is_err() {
                        return None;
                    }
                }
            }
        }
    }

    /// Keeps `conn` for a next request once `response`'s body is read, unless the response
    /// took the connection over (`101`) or enough are kept already.
    fn keep(&self, conn: Pooled, response: &Response<Incoming>) {
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            return;
        }
        self.put(conn);
    }

    fn put(&self, mut conn: Pooled) {
        {
            let mut conns = self.lock();
            conns.retain(|c| !c.sender.is_closed());
            if conns.len() < MAX_KEPT {
                conn.kept = Instant::now();
                conns.push(conn);
            }
        }
        self.returned.notify_waiters();
    }

    fn idle_count(&self) -> usize {
        self.lock().iter().filter(|c| c.sender.is_ready()).count()
    }
}

/// How long a canceled request waits for its connection's error.
const CONNECTION_ERROR_WAIT: Duration = Duration::from_millis(500);

/// An HTTP failure, or the budget, ssh or TLS failure that caused it.
fn http_error(target: &Target, e: hyper::Error) -> TransportError {
    if let Some(t) = too_large(&e) {
        return TransportError::TooLarge(t);
    }
    if let Some(alert) = tls_alert(&e) {
        return alert_error(target.endpoint(), alert);
    }
    match ssh_failure(&e) {
        Some(f) => TransportError::SshClosed(f),
        None => TransportError::Http(e),
    }
}

/// The TLS alert the engine sent, somewhere behind an error.
fn tls_alert(err: &(dyn StdError + 'static)) -> Option<rustls::AlertDescription> {
    find_behind(err, &|e| match e.downcast_ref::<rustls::Error>() {
        Some(rustls::Error::AlertReceived(alert)) => Some(*alert),
        _ => None,
    })
}

/// The failure for an engine that ended the TLS session with `alert`, with what to do.
fn alert_error(endpoint: &Endpoint, alert: rustls::AlertDescription) -> TransportError {
    use rustls::AlertDescription as A;
    let advice = match alert {
        A::CertificateRequired | A::HandshakeFailure => "the engine requires a client certificate: name one with its key (cert.pem and key.pem beside ca.pem for the Docker driver; TLSCert and TLSKey of the Podman connection)",
        A::BadCertificate
        | A::UnknownCA
        | A::CertificateUnknown
        | A::UnsupportedCertificate
        | A::CertificateRevoked
        | A::CertificateExpired
        | A::AccessDenied
        | A::DecryptError => "the engine did not accept the client certificate: it must be signed by the CA the engine trusts for clients (dockerd --tlscacert, podman system service --tls-client-ca) and still be valid",
        _ => "the engine refused the session; its log says why",
    };
    TransportError::TlsAlert {
        endpoint: endpoint.to_string(),
        alert: format!("{alert:?}"),
        advice,
    }
}

/// The first thing `pick` finds in `err` or the errors behind it. `io::Error` hides the error
/// it wraps from `source()`, so it is looked into.
fn find_behind<T>(
    err: &(dyn StdError + 'static),
    pick: &dyn Fn(&(dyn StdError + 'static)) -> Option<T>,
) -> Option<T> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(found) = pick(e) {
            return Some(found);
        }
        if let Some(inner) = e.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
            if let Some(found) = find_behind(inner, pick) {
                return Some(found);
            }
        }
        next = e.source();
    }
    None
}

/// The [`SshFailed`] behind a client library's error, if the ssh client is what failed.
fn ssh_failure(err: &(dyn StdError + 'static)) -> Option<SshFailed> {
    find_behind(err, &|e| e.downcast_ref::<SshFailed>().cloned())
}

/// The [`ReplyTooLarge`] somewhere behind a client library's error, if the budget is what
/// failed.
pub fn too_large(err: &(dyn StdError + 'static)) -> Option<ReplyTooLarge> {
    find_behind(err, &|e| {
        if let Some(t) = e.downcast_ref::<ReplyTooLarge>() {
            return Some(*t);
        }
        match e.downcast_ref::<TransportError>() {
            Some(TransportError::TooLarge(t)) => Some(*t),
            _ => None,
        }
    })
}

impl<S: AsyncRead + Unpin> AsyncRead for Capped<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let this = &mut *self;
                if buf.filled().len() > before {
                    this.replied = true;
                }
                if this.head.len() < STATUS_LINE_START {
                    this.watch_status(&buf.filled()[before..]);
                }
                if let Err(e) = this.watch_frames(&buf.filled()[before..]) {
                    buf.set_filled(before);
                    return Poll::Ready(Err(io::Error::other(e)));
                }
                if this.upgraded.load(Ordering::Relaxed) {
                    return Poll::Ready(Ok(()));
                }
                self.read = self.read.saturating_add(buf.filled().len() - before);
                if self.read > self.limit {
                    // A failed read hands out nothing (tokio's readers rely on that).
                    buf.set_filled(before);
                    let limit = self.limit;
                    return Poll::Ready(Err(io::Error::other(ReplyTooLarge { limit })));
                }
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Capped<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.next_exchange();
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl AsyncRead for EngineStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            EngineStream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            EngineStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            EngineStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            EngineStream::Ssh(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for EngineStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            EngineStream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            EngineStream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            EngineStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            EngineStream::Ssh(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            EngineStream::Unix(s) => Pin::new(s).poll_flush(cx),
            EngineStream::Tcp(s) => Pin::new(s).poll_flush(cx),
            EngineStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            EngineStream::Ssh(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            EngineStream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            EngineStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            EngineStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            EngineStream::Ssh(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

    /// What a test engine does with the request it read, by its request line.
    #[derive(Clone, Copy)]
    enum Answer {
        /// `200` with a body of this many bytes, keeping the connection.
        Body(usize),
        /// The same, after this many milliseconds.
        Late(usize, u64),
        /// Closes the connection without answering.
        Hang,
        /// `200` with a body of this many bytes, then closes the connection as the next
        /// request arrives, without reading it: the client sees the connection reset.
        BodyThenReset(usize),
    }

    /// A test engine on a Unix socket: answers requests one after another on each connection,
    /// as `answer` says for the request line; counts connections and request lines.
    struct TestEngine {
        target: Target,
        connections: Arc<std::sync::atomic::AtomicUsize>,
        requests: Arc<Mutex<Vec<String>>>,
        _dir: tempfile::TempDir,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for TestEngine {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    fn test_engine(answer: fn(&str, usize) -> Answer) -> TestEngine {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("engine.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap_or_else(|e| panic!("{e}"));
        let target = Target::new(Endpoint::Unix {
            path: path.to_string_lossy().into_owned(),
        });
        serve_test_engine(listener, target, dir, answer)
    }

    /// A test engine on a loopback TCP port.
    async fn tcp_test_engine(answer: fn(&str, usize) -> Answer) -> TestEngine {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let port = listener.local_addr().map(|a| a.port()).ok();
        let target = Target::new(Endpoint::Tcp {
            host: "127.0.0.1".into(),
            port,
            tls: false,
        });
        serve_test_engine(listener, target, dir, answer)
    }

    trait Accept: Send + 'static {
        type Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static;
        fn accept(&self) -> impl std::future::Future<Output = io::Result<Self::Io>> + Send;
        /// Waits until the peer sent something, without reading it.
        fn readable(io: &Self::Io) -> impl std::future::Future<Output = io::Result<()>> + Send;
    }

    impl Accept for tokio::net::UnixListener {
        type Io = UnixStream;
        async fn accept(&self) -> io::Result<UnixStream> {
            tokio::net::UnixListener::accept(self).await.map(|(s, _)| s)
        }
        async fn readable(io: &UnixStream) -> io::Result<()> {
            io.readable().await
        }
    }

    impl Accept for tokio::net::TcpListener {
        type Io = TcpStream;
        async fn accept(&self) -> io::Result<TcpStream> {
            tokio::net::TcpListener::accept(self).await.map(|(s, _)| s)
        }
        async fn readable(io: &TcpStream) -> io::Result<()> {
            io.readable().await
        }
    }

    fn serve_test_engine<L: Accept>(
        listener: L,
        target: Target,
        dir: tempfile::TempDir,
        answer: fn(&str, usize) -> Answer,
    ) -> TestEngine {
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (c, r) = (Arc::clone(&connections), Arc::clone(&requests));
        let task = tokio::spawn(async move {
            // Bounded: a test makes a handful of connections.
            for _ in 0..32 {
                let Ok(stream) = listener.accept().await else {
                    return;
                };
                c.fetch_add(1, Ordering::SeqCst);
                let r = Arc::clone(&r);
                tokio::spawn(async move {
                    let mut stream = tokio::io::BufReader::new(stream);
                    for _ in 0..32 {
                        let mut line = String::new();
                        if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        // The rest of the head (the requests here have no body).
                        loop {
                            let mut header = String::new();
                            if stream.read_line(&mut header).await.unwrap_or(0) == 0 {
                                return;
                            }
                            if header == "\r\n" {
                                break;
                            }
                        }
                        let seen = {
                            let mut r = r.lock().unwrap_or_else(PoisonError::into_inner);
                            r.push(line.trim().to_string());
                            r.iter().filter(|l| **l == line.trim()).count()
                        };
                        let answer = match answer(line.trim(), seen) {
                            Answer::Late(n, ms) => {
                                tokio::time::sleep(Duration::from_millis(ms)).await;
                                Answer::Body(n)
                            }
                            other => other,
                        };
                        match answer {
                            Answer::Late(..) => return,
                            Answer::Body(n) | Answer::BodyThenReset(n) => {
                                let head =
                                    format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n");
                                let mut reply = head.into_bytes();
                                reply.resize(reply.len() + n, b'x');
                                if stream.get_mut().write_all(&reply).await.is_err() {
                                    return;
                                }
                                if matches!(answer, Answer::BodyThenReset(_)) {
                                    let _ = L::readable(stream.get_ref()).await;
                                    return;
                                }
                            }
                            Answer::Hang => return,
                        }
                    }
                });
            }
        });
        TestEngine {
            target,
            connections,
            requests,
            _dir: dir,
            task,
        }
    }

    async fn get(target: &Target, path: &str) -> Result<Bytes, TransportError> {
        let req = Request::get(path)
            .body(Empty::<Bytes>::new())
            .unwrap_or_else(|e| panic!("{e}"));
        let res = send(target, req).await?;
        let body = res
            .into_body()
            .collect()
            .await
            .map_err(|e| match too_large(&e) {
                Some(t) => TransportError::TooLarge(t),
                None => TransportError::Http(e),
            })?;
        Ok(body.to_bytes())
    }

    /// One connection serves calls one after another, each reply within a budget of its own:
    /// five replies of 5 MiB (25 MiB in all, three times the budget) on one connection.
    #[tokio::test]
    async fn one_kept_connection_serves_many_replies_each_within_its_budget() {
        let engine = test_engine(|_, _| Answer::Body(5 * 1024 * 1024));
        for _ in 0..5 {
            let body = get(&engine.target, "/info")
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(body.len(), 5 * 1024 * 1024);
        }
        assert_eq!(engine.connections.load(Ordering::SeqCst), 1);
        // Clones share the connection.
        let clone = engine.target.clone();
        get(&clone, "/_ping")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(engine.connections.load(Ordering::SeqCst), 1);
        assert_eq!(clone.idle_connections(), 1);
    }

    /// Calls one after another on a multi-threaded runtime share one TCP connection: a call
    /// right after a reply was read waits the moment the connection needs to take a request
    /// (without it, every other call opened a connection for nothing).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn calls_one_after_another_share_one_tcp_connection() {
        let engine = tcp_test_engine(|_, _| Answer::Body(64)).await;
        for _ in 0..20 {
            get(&engine.target, "/_ping")
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(engine.connections.load(Ordering::SeqCst), 1);
    }

    /// Where a new connection is costly, a call waits for the one in use rather than open
    /// another; where it is not, concurrent calls get connections of their own.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_costly_target_waits_for_its_connection_in_use() {
        for (wait, connections) in [(COSTLY_WAIT, 1), (Duration::ZERO, 2)] {
            let engine = test_engine(|_, _| Answer::Late(16, 100));
            get(&engine.target, "/_ping")
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let call = |target: Target| async move {
                let req = Request::get("/info")
                    .body(Empty::<Bytes>::new())
                    .unwrap_or_else(|e| panic!("{e}"));
                let res = send_waiting(&target, req, wait)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                res.into_body().collect().await.map(|b| b.to_bytes().len())
            };
            let first = tokio::spawn(call(engine.target.clone()));
            tokio::time::sleep(Duration::from_millis(20)).await;
            let second = call(engine.target.clone()).await;
            let first = first.await.unwrap_or_else(|e| panic!("{e}"));
            assert!(matches!((first, second), (Ok(16), Ok(16))));
            assert_eq!(
                engine.connections.load(Ordering::SeqCst),
                connections,
                "wait {wait:?}"
            );
        }
    }

    /// A reply over the budget still fails on a kept connection, and the connection is not
    /// used again.
    #[tokio::test]
    async fn a_reply_over_the_budget_fails_on_a_kept_connection_too() {
        let engine = test_engine(|line, _| match line {
            "GET /big HTTP/1.1" => Answer::Body(MAX_REPLY + 1),
            _ => Answer::Body(2),
        });
        get(&engine.target, "/small")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let err = get(&engine.target, "/big").await.err();
        assert!(matches!(err, Some(TransportError::TooLarge(_))), "{err:?}");
        get(&engine.target, "/small")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(engine.connections.load(Ordering::SeqCst), 2);
    }

    /// A kept connection that the engine closes on a request: a bodiless GET is sent again
    /// on a new connection; a POST is never sent twice, and its failure is the caller's.
    #[tokio::test]
    async fn a_closed_kept_connection_resends_a_get_and_never_a_post() {
        let engine = test_engine(|line, seen| match (line, seen) {
            ("GET /again HTTP/1.1", 1) | ("POST /once HTTP/1.1", _) => Answer::Hang,
            _ => Answer::Body(2),
        });
        get(&engine.target, "/first")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let body = get(&engine.target, "/again")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&body[..], b"xx");
        assert_eq!(engine.connections.load(Ordering::SeqCst), 2);

        let post = Request::post("/once")
            .body(Empty::<Bytes>::new())
            .unwrap_or_else(|e| panic!("{e}"));
        let failed = send(&engine.target, post).await;
        assert!(failed.is_err(), "{failed:?}");
        let requests = engine
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let posts = requests.iter().filter(|l| l.starts_with("POST")).count();
        let gets = requests.iter().filter(|l| l.contains("/again")).count();
        assert_eq!((posts, gets), (1, 2), "{requests:?}");
    }

    /// A kept connection the engine resets as the next request arrives (a Unix socket closed
    /// with a request unread resets): a bodiless GET is sent again on a new connection. An
    /// engine that answers once per connection (as the flooding engine of the `it` tests did)
    /// failed every other call with "connection error" before.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_kept_connection_reset_under_a_get_resends_it() {
        let engine = test_engine(|_, _| Answer::BodyThenReset(2));
        for _ in 0..5 {
            let body = get(&engine.target, "/info")
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(&body[..], b"xx");
        }
        let post = Request::post("/once")
            .body(Empty::<Bytes>::new())
            .unwrap_or_else(|e| panic!("{e}"));
        let failed = send(&engine.target, post).await;
        let posts = engine
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|l| l.starts_with("POST"))
            .count();
        assert!(posts <= 1, "{failed:?}");
    }

    #[tokio::test]
    async fn a_tls_endpoint_is_refused_before_connecting() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let port = listener.local_addr().map(|a| a.port()).ok();
        let endpoint = Endpoint::Tcp {
            host: "127.0.0.1".into(),
            port,
            tls: true,
        };
        let refused = connect(&Target::new(endpoint)).await;
        assert!(
            matches!(refused, Err(TransportError::TlsRequired(_))),
            "{refused:?}"
        );
        let nothing =
            tokio::time::timeout(std::time::Duration::from_millis(100), listener.accept());
        assert!(nothing.await.is_err(), "something connected");
    }

    #[tokio::test]
    async fn a_reply_that_switches_protocols_is_not_budgeted() {
        let (a, mut b) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let _ = b.write_all(b"HTTP/1.1 101 UPGRADED\r\n\r\n").await;
            // Attach frames: stdout, 1016 bytes each.
            for _ in 0..64 {
                let mut frame = vec![1u8, 0, 0, 0];
                frame.extend_from_slice(&1016u32.to_be_bytes());
                frame.extend_from_slice(&[b'x'; 1016]);
                if b.write_all(&frame).await.is_err() {
                    break;
                }
            }
        });
        let mut capped = Capped::new(a, 1000);
        let upgraded = capped.upgraded();
        let mut sink = Vec::new();
        capped
            .read_to_end(&mut sink)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(upgraded.load(Ordering::SeqCst));
        assert_eq!(sink.len(), 25 + 64 * 1024);
        let _ = writer.await;
    }

    /// An attach reply whose frame header claims 0xFFFFFFF0 bytes is refused before a client
    /// library reads the header (bollard buffered whatever length the engine claimed: 538 MB
    /// RSS); the frames before it pass, however the bytes are split into reads.
    #[tokio::test]
    async fn an_attach_frame_longer_than_the_cap_is_refused() {
        for chunk in [1usize, 3, 64] {
            let mut reply = b"HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\n\r\n".to_vec();
            reply.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 2, b'o', b'k']);
            reply.extend_from_slice(&[1, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xF0]);
            reply.extend_from_slice(&[0u8; 64]);
            let (a, mut b) = tokio::io::duplex(64);
            let writer = tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                for part in reply.chunks(chunk) {
                    if b.write_all(part).await.is_err() {
                        break;
                    }
                }
            });
            let mut capped = Capped::new(a, 1 << 20);
            let mut got = Vec::new();
            let mut buf = [0u8; 16];
            let err = loop {
                match capped.read(&mut buf).await {
                    Ok(0) => panic!("chunk {chunk}: the whole frame header went through"),
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e) => break e,
                }
            };
            let too_large = err
                .get_ref()
                .and_then(|e| e.downcast_ref::<AttachFrameTooLarge>())
                .unwrap_or_else(|| panic!("chunk {chunk}: {err}"));
            assert_eq!(too_large.claimed, 0xFFFF_FFF0);
            assert!(got.ends_with(b"ok") || got.len() < 60, "chunk {chunk}");
            assert!(!got.ends_with(&[0xFF, 0xFF, 0xFF, 0xF0]), "chunk {chunk}");
            writer.abort();
        }
    }

    #[tokio::test]
    async fn reads_past_the_budget_fail_with_the_size_error() {
        let (a, mut b) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            // Bounded: the reader gives up long before 1 MiB.
            for _ in 0..1024 {
                if b.write_all(&[b'x'; 1024]).await.is_err() {
                    break;
                }
            }
        });
        let mut capped = Capped::new(a, 10_000);
        let mut sink = Vec::new();
        let err = capped
            .read_to_end(&mut sink)
            .await
            .err()
            .unwrap_or_else(|| panic!("read everything"));
        assert_eq!(too_large(&err), Some(ReplyTooLarge { limit: 10_000 }));
        assert!(sink.len() <= 10_000 + 64, "{}", sink.len());
        drop(capped);
        let _ = writer.await;
    }
}
