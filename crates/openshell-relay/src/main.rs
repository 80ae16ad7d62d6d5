//! `openshell-relay`: the program a relay container runs on a sandbox network.
//!
//! It listens on `0.0.0.0:<port>` inside its container and carries every connection it accepts
//! as one stream of a yamux session whose transport is its own stdin and stdout. The gateway
//! holds the other end of that session through the engine's attach API, so the relay needs no
//! published port and the gateway listens on the host's loopback only.
//!
//! The relay forwards nowhere but into that session: it takes no destination, neither on its
//! command line nor from a peer, so a compromised sandbox can only reach what the gateway
//! chooses to connect the stream to (its own port on loopback). The session ends when stdin
//! does (the gateway detached or died), and then the relay exits, so a relay never outlives
//! the gateway that owns it by more than its engine takes to close stdin.
//!
//! Only `std`, `tokio`, `futures` and `yamux`: it links statically and runs in an image that
//! holds nothing but this binary.

use std::future::poll_fn;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::task::Poll;

use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::compat::{FuturesAsyncReadCompatExt, TokioAsyncReadCompatExt};
use yamux::{Config, Connection, ConnectionError, Mode, Stream};

/// Most connections waiting for their stream at once; more wait in the listener's backlog.
const PENDING_OPENS: usize = 64;
/// Most streams open at once. yamux 0.14 ends the whole session when a peer opens a stream
/// beyond the other's limit (512 by default), and the gateway may still hold a stream for a
/// moment after the relay closed it; half that limit leaves room for those. Connections beyond
/// it are not accepted until a stream closes: they wait in the listener's backlog (or time out
/// there), and the session and every other connection go on.
const MAX_STREAMS: usize = 256;

/// A request for a new stream, answered with the stream or why none could be opened.
type OpenRequest = oneshot::Sender<Result<Stream, String>>;

fn usage() -> String {
    "usage: openshell-relay <port>  (listens on 0.0.0.0:<port>; the session runs over stdin/stdout)"
        .to_string()
}

fn parse_port(args: &[String]) -> Result<u16, String> {
    match args {
        [port] => match port.parse::<u16>() {
            Ok(0) | Err(_) => Err(format!(
                "invalid port {port:?}: expected 1-65535\n{}",
                usage()
            )),
            Ok(p) => Ok(p),
        },
        _ => Err(usage()),
    }
}

/// Drives the session: opens outbound streams on request and reads the transport, until the
/// gateway closes the session or it fails. The gateway opens no streams of its own; any it
/// opens is dropped, which resets it.
async fn drive<T>(
    mut conn: Connection<T>,
    mut requests: mpsc::Receiver<OpenRequest>,
) -> Result<(), ConnectionError>
where
    T: futures::AsyncRead + futures::AsyncWrite + Unpin,
{
    let mut waiting: Option<OpenRequest> = None;
    let mut requests_open = true;
    poll_fn(move |cx| {
        loop {
            if waiting.is_none() && requests_open {
                match requests.poll_recv(cx) {
                    Poll::Ready(Some(tx)) => waiting = Some(tx),
                    Poll::Ready(None) => requests_open = false,
                    Poll::Pending => {}
                }
            }
            let Some(tx) = waiting.take() else { break };
            match conn.poll_new_outbound(cx) {
                Poll::Ready(Ok(stream)) => {
                    let _ = tx.send(Ok(stream));
                }
                Poll::Ready(Err(e)) => {
                    let _ = tx.send(Err(e.to_string()));
                }
                Poll::Pending => {
                    waiting = Some(tx);
                    break;
                }
            }
        }
        loop {
            match conn.poll_next_inbound(cx) {
                Poll::Ready(Some(Ok(unexpected))) => drop(unexpected),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await
}

/// The session's byte pipe.
trait Transport: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Transport for T {}

/// Stdin and stdout as non-blocking pipes driven by the runtime, when they are pipes (both
/// engines hand a container without a TTY pipes for them): tokio's own stdin and stdout do each
/// read and write on a blocking thread, a thread hop per yamux frame. Anything else (a file, a
/// socket) gets `None`, and the blocking stdio is used instead. The session's writes go through
/// a buffer either way, so a frame's header and body leave in one write when yamux flushes.
fn stdio_pipes() -> Option<(
    tokio::net::unix::pipe::Receiver,
    tokio::net::unix::pipe::Sender,
)> {
    use std::os::fd::AsFd;
    let input = std::io::stdin().as_fd().try_clone_to_owned().ok()?;
    let output = std::io::stdout().as_fd().try_clone_to_owned().ok()?;
    let input = tokio::net::unix::pipe::Receiver::from_owned_fd(input).ok()?;
    let output = tokio::net::unix::pipe::Sender::from_owned_fd(output).ok()?;
    Some((input, output))
}

/// Carries one accepted connection over a new stream of the session.
async fn carry(mut tcp: TcpStream, opener: mpsc::Sender<OpenRequest>) {
    let (tx, rx) = oneshot::channel();
    if opener.send(tx).await.is_err() {
        return;
    }
    let stream = match rx.await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            eprintln!("openshell-relay: cannot open a stream to the gateway: {e}");
            return;
        }
        Err(_) => return,
    };
    let mut stream = stream.compat();
    // Either side closing ends the copy; errors here are one connection's, not the relay's.
    let _ = tokio::io::copy_bidirectional(&mut tcp, &mut stream).await;
}

async fn run(port: u16) -> Result<(), String> {
    let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let transport: Box<dyn Transport> = match stdio_pipes() {
        Some((input, output)) => {
            Box::new(tokio::io::join(input, tokio::io::BufWriter::new(output)))
        }
        None => Box::new(tokio::io::join(
            tokio::io::stdin(),
            tokio::io::BufWriter::new(tokio::io::stdout()),
        )),
    };
    // The relay is its container's first process, for which the kernel ignores SIGTERM unless
    // it is handled: without this, an engine's stop or forced removal (Podman's `rm -f`) waits
    // its whole stop timeout (10 s) before it kills the relay.
    let mut terminate =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
    let mut interrupt =
        signal(SignalKind::interrupt()).map_err(|e| format!("cannot handle SIGINT: {e}"))?;
    let stop = async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    };
    relay(listener, transport, stop).await
}

/// Carries every connection `listener` accepts over one session on `transport`, at most
/// [`MAX_STREAMS`] at once, until the session ends or `stop` completes.
async fn relay<T: Transport>(
    listener: TcpListener,
    transport: T,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let conn = Connection::new(transport.compat(), Config::default(), Mode::Client);
    let (opener, requests) = mpsc::channel::<OpenRequest>(PENDING_OPENS);
    let session = drive(conn, requests);
    tokio::pin!(session);
    tokio::pin!(stop);
    let streams = Arc::new(Semaphore::new(MAX_STREAMS));
    loop {
        // A connection is accepted only with a stream to spare; until then it waits in the
        // listener's backlog.
        let permit = tokio::select! {
            ended = &mut session => {
                return ended.map_err(|e| format!("session with the gateway failed: {e}"));
            }
            () = &mut stop => return Ok(()),
            permit = Arc::clone(&streams).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return Ok(()),
            },
        };
        tokio::select! {
            ended = &mut session => {
                return ended.map_err(|e| format!("session with the gateway failed: {e}"));
            }
            () = &mut stop => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    let _ = tcp.set_nodelay(true);
                    let opener = opener.clone();
                    tokio::spawn(async move {
                        carry(tcp, opener).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    // Descriptor exhaustion and the like pass; pause rather than spin.
                    eprintln!("openshell-relay: accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port = match parse_port(&args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("openshell-relay: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("openshell-relay: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(port)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("openshell-relay: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::AsyncWriteExt as _;
    use std::time::Duration;

    fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
        r.unwrap_or_else(|e| panic!("{e}"))
    }

    /// A flood of connections never opens more than [`MAX_STREAMS`] streams at once (yamux
    /// ends the whole session past the gateway's limit); the rest wait, and are carried once
    /// streams close. Loopback only; 300 connections, every wait bounded.
    #[tokio::test]
    async fn a_flood_opens_at_most_max_streams_and_the_rest_wait() {
        const CONNECTIONS: usize = MAX_STREAMS + 44;
        let listener = ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await);
        let addr = ok(listener.local_addr());
        let (relay_side, gateway_side) = tokio::io::duplex(1 << 16);
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let relay_task = tokio::spawn(relay(listener, relay_side, async {
            let _ = stop_rx.await;
        }));
        // The gateway: a yamux server that hands every stream to the test.
        let mut config = Config::default();
        config.set_max_num_streams(4096);
        let mut gateway = Connection::new(gateway_side.compat(), config, Mode::Server);
        let (streams_tx, mut streams) = mpsc::unbounded_channel::<Stream>();
        let gateway_task = tokio::spawn(poll_fn(move |cx| loop {
            match gateway.poll_next_inbound(cx) {
                Poll::Ready(Some(Ok(s))) => {
                    let _ = streams_tx.send(s);
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }));
        let mut clients = Vec::new();
        for _ in 0..CONNECTIONS {
            let mut c = ok(TcpStream::connect(addr).await);
            ok(tokio::io::AsyncWriteExt::write_all(&mut c, b"c").await);
            clients.push(c);
        }
        // Take streams until none comes for a second; each is answered, as a gateway would.
        let mut held = Vec::new();
        while let Ok(Some(mut s)) =
            tokio::time::timeout(Duration::from_secs(1), streams.recv()).await
        {
            ok(s.write_all(b"g").await);
            ok(s.flush().await);
            held.push(s);
            assert!(held.len() <= CONNECTIONS, "more streams than connections");
        }
        assert_eq!(held.len(), MAX_STREAMS, "streams open at once");
        tokio::time::sleep(Duration::from_millis(200)).await;
        // The carried connections end, on both sides; the waiting ones are carried then.
        let mut waiting = Vec::new();
        for c in clients {
            let mut byte = [0u8; 1];
            match c.try_read(&mut byte) {
                Ok(1) => drop(c),
                _ => waiting.push(c),
            }
        }
        assert_eq!(waiting.len(), CONNECTIONS - MAX_STREAMS);
        drop(held);
        let mut later = 0;
        while later < waiting.len() {
            let mut s = tokio::time::timeout(Duration::from_secs(10), streams.recv())
                .await
                .unwrap_or_else(|_| panic!("only {later} waiting connections were carried"))
                .unwrap_or_else(|| panic!("the gateway ended"));
            ok(s.write_all(b"g").await);
            later += 1;
        }
        assert!(!gateway_task.is_finished(), "the session ended");
        let _ = stop_tx.send(());
        let ended = tokio::time::timeout(Duration::from_secs(5), relay_task).await;
        assert!(matches!(ended, Ok(Ok(Ok(())))), "{ended:?}");
        gateway_task.abort();
    }

    #[test]
    fn takes_exactly_one_port_and_nothing_else() {
        assert_eq!(parse_port(&["17670".into()]), Ok(17670));
        assert!(parse_port(&["0".into()]).is_err());
        assert!(parse_port(&["10.0.0.1:22".into()]).is_err());
        assert!(parse_port(&["1".into(), "2".into()]).is_err());
        assert!(parse_port(&[]).is_err());
    }
}
