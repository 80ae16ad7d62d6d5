//! `openshell-relay`: the program a relay container runs on a sandbox network.
//!
//! It listens on `0.0.0.0:<port>` inside its container (or on the address given after the port:
//! `127.0.0.1` for a relay in an engine's host network namespace, where it must not face the
//! network) and carries every connection it accepts
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
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::task::Poll;

use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot};
use tokio_util::compat::{FuturesAsyncReadCompatExt, TokioAsyncReadCompatExt};
use yamux::{Config, Connection, ConnectionError, Mode, Stream};

/// Most connections waiting for their stream at once; more wait in the listener's backlog.
const PENDING_OPENS: usize = 64;

/// A request for a new stream, answered with the stream or why none could be opened.
type OpenRequest = oneshot::Sender<Result<Stream, String>>;

fn usage() -> String {
    "usage: openshell-relay <port> [<listen address>]  (listens on 0.0.0.0:<port> by default; the session runs over stdin/stdout)"
        .to_string()
}

/// The port and the address to listen on (default `0.0.0.0`): an address, never a name.
fn parse_args(args: &[String]) -> Result<SocketAddr, String> {
    let (port, ip) = match args {
        [port] => (port, IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        [port, ip] => match ip.parse::<IpAddr>() {
            Ok(ip) => (port, ip),
            Err(_) => return Err(format!("invalid listen address {ip:?}\n{}", usage())),
        },
        _ => return Err(usage()),
    };
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!(
            "invalid port {port:?}: expected 1-65535\n{}",
            usage()
        )),
        Ok(p) => Ok(SocketAddr::new(ip, p)),
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

async fn run(addr: SocketAddr) -> Result<(), String> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    // The gateway reads this line (from the logs) before it hands out a host-network relay.
    eprintln!("openshell-relay: listening on {addr}");
    let transport: Box<dyn Transport> = match stdio_pipes() {
        Some((input, output)) => {
            Box::new(tokio::io::join(input, tokio::io::BufWriter::new(output)))
        }
        None => Box::new(tokio::io::join(
            tokio::io::stdin(),
            tokio::io::BufWriter::new(tokio::io::stdout()),
        )),
    };
    let conn = Connection::new(transport.compat(), Config::default(), Mode::Client);
    let (opener, requests) = mpsc::channel::<OpenRequest>(PENDING_OPENS);
    let session = drive(conn, requests);
    tokio::pin!(session);
    // The relay is its container's first process, for which the kernel ignores SIGTERM unless
    // it is handled: without this, an engine's stop or forced removal (Podman's `rm -f`) waits
    // its whole stop timeout (10 s) before it kills the relay.
    let mut terminate =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
    let mut interrupt =
        signal(SignalKind::interrupt()).map_err(|e| format!("cannot handle SIGINT: {e}"))?;
    loop {
        tokio::select! {
            ended = &mut session => {
                return ended.map_err(|e| format!("session with the gateway failed: {e}"));
            }
            _ = terminate.recv() => return Ok(()),
            _ = interrupt.recv() => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    let _ = tcp.set_nodelay(true);
                    tokio::spawn(carry(tcp, opener.clone()));
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
    let addr = match parse_args(&args) {
        Ok(a) => a,
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
    match runtime.block_on(run(addr)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("openshell-relay: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_args;

    #[test]
    fn takes_a_port_and_at_most_a_listen_address() {
        let ok = |a: &[&str]| parse_args(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            ok(&["17670"]),
            Ok("0.0.0.0:17670".parse().unwrap_or_else(|_| unreachable!()))
        );
        assert_eq!(
            ok(&["17670", "127.0.0.1"]),
            Ok("127.0.0.1:17670".parse().unwrap_or_else(|_| unreachable!()))
        );
        assert!(ok(&["0"]).is_err());
        assert!(ok(&["10.0.0.1:22"]).is_err());
        assert!(ok(&["1", "localhost"]).is_err());
        assert!(ok(&["1", "127.0.0.1", "3"]).is_err());
        assert!(ok(&[]).is_err());
    }
}
