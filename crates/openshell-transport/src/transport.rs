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
//! The budget is per connection, and each connection carries one request: [`send`] opens a
//! connection per request (the Docker driver's client and raw requests), and podman-api keeps
//! no idle connection to a Unix socket (the Podman driver's relay). So it is a budget per reply,
//! headers included. The price is one connect per engine call, which is cheap on the local
//! sockets and loopback ports engines listen on. A streamed reply (logs, pull progress) shares
//! the same budget; the lifecycle reads at most 64 KiB of logs, and a pull's progress stays far
//! below it within the call's timeout. A reply that switches protocols (`101`, an attach) is
//! not budgeted after its status line: it is a stream both sides read as it goes, for as long
//! as the session lasts, and no client collects it whole.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::body::Incoming;
use hyper::header::{HeaderValue, HOST};
use hyper::{Request, Response, Uri};
use hyper_util::rt::TokioIo;
use openshell_runtime::facts::Endpoint;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::rustls;

use crate::ssh::{SshFailed, SshSettings, SshStream};
use crate::tls::TlsMaterial;
use crate::BoxError;

/// The most bytes read from one engine connection, that is, one reply.
pub const MAX_REPLY: usize = 8 * 1024 * 1024;

/// The port of a `tcp://` endpoint that names none (the Docker daemon's plain-HTTP port).
const DEFAULT_TCP_PORT: u16 = 2375;

/// The port of a `tcp://` endpoint with TLS that names none (the Docker daemon's TLS port).
const DEFAULT_TLS_PORT: u16 = 2376;

/// An endpoint and what reaching it takes: the TLS material for a `tcp://` endpoint that
/// requires TLS, the ssh client's settings for an `ssh://` one. Discovery builds it; an
/// [`Endpoint`] alone converts into a target that needs neither.
#[derive(Debug, Clone)]
pub struct Target {
    endpoint: Endpoint,
    tls: Option<Arc<TlsMaterial>>,
    ssh: SshSettings,
}

impl Target {
    /// `endpoint`, with no TLS material and ssh's defaults.
    pub fn new(endpoint: Endpoint) -> Target {
        Target {
            endpoint,
            tls: None,
            ssh: SshSettings::default(),
        }
    }

    /// This target speaking TLS with `material` (the endpoint is marked as requiring TLS).
    pub fn with_tls(self, material: TlsMaterial) -> Target {
        Target {
            endpoint: self.endpoint.with_tls(),
            tls: Some(Arc::new(material)),
            ..self
        }
    }

    /// This target with these ssh settings (used for `ssh://` endpoints only).
    pub fn with_ssh(self, ssh: SshSettings) -> Target {
        Target { ssh, ..self }
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
            ..self
        }
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

/// A stream whose reads fail once more than `limit` bytes came through it. What was read past
/// the limit is at most one read buffer, so a client's memory stays bounded near the limit.
/// The stream carries one request, so the first bytes read are the reply's status line: a
/// reply that switches protocols (`101`) lifts the limit ([`Capped::upgraded`]).
#[derive(Debug)]
pub struct Capped<S> {
    inner: S,
    read: usize,
    limit: usize,
    head: Vec<u8>,
    upgraded: Arc<AtomicBool>,
    framing: Framing,
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
        ) => EngineStream::Tcp(
            TcpStream::connect((host.as_str(), port.unwrap_or(DEFAULT_TCP_PORT)))
                .await
                .map_err(TransportError::Connect)?,
        ),
        (
            Endpoint::Tcp {
                host,
                port,
                tls: true,
            },
            Some(material),
        ) => {
            let tcp = TcpStream::connect((host.as_str(), port.unwrap_or(DEFAULT_TLS_PORT)))
                .await
                .map_err(TransportError::Connect)?;
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
                .ssh()
                .connect(host, *port, path.as_deref())
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

/// Sends one request to `endpoint` on a connection of its own and returns the response, whose
/// body is read through the connection's budget. The connection closes once the body has been
/// read or dropped.
pub async fn send<B>(target: &Target, req: Request<B>) -> Result<Response<Incoming>, TransportError>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let stream = connect(target).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| http_error(target, e))?;
    // The connection task ends when the response body is done or dropped: the sender goes away
    // with this call, so no second request can follow on the connection. An attach upgrades it.
    // A connection that fails says why only to this task (the request just sees itself
    // canceled), so its error is handed back.
    let (failed, why) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            let _ = failed.send(e);
        }
    });
    let (mut parts, body) = req.into_parts();
    // Client libraries build absolute URIs for their own pools; the engine wants origin form.
    let origin = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    parts.uri = Uri::try_from(origin).map_err(|e| TransportError::Request(e.into()))?;
    parts
        .headers
        .entry(HOST)
        .or_insert(HeaderValue::from_static("docker"));
    match sender.send_request(Request::from_parts(parts, body)).await {
        Ok(response) => Ok(response),
        Err(e) if e.is_canceled() => {
            // The connection's own error, when it failed; it ends as the request is canceled,
            // so the wait is short, and bounded all the same.
            let cause = tokio::time::timeout(CONNECTION_ERROR_WAIT, why)
                .await
                .ok()
                .and_then(Result::ok);
            Err(http_error(target, cause.unwrap_or(e)))
        }
        Err(e) => Err(http_error(target, e)),
    }
}

/// How long a canceled request waits for its connection's error.
const CONNECTION_ERROR_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

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
    use tokio::io::AsyncReadExt;

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
