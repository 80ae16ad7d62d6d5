//! The listener's accept loop: one task per connection, at most
//! [`ListenerOptions::max_connections`] of them (a new one closes the oldest), each with
//! [`ListenerOptions::read_timeout`] to send its request line, and a pause after a failed
//! `accept` instead of a spin. Each connection's token is redeemed once, in constant time.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use super::{Arrival, ListenerOptions, Tokens};
use crate::token::tokens_match;

/// Longest request line read.
const MAX_REQUEST: usize = 1024;

/// First and longest pause after a failed `accept`, so a listener out of file descriptors
/// waits for one instead of asking again at full speed.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_millis(100);

pub(super) async fn serve(
    listener: TcpListener,
    tokens: Tokens,
    tx: mpsc::UnboundedSender<Arrival>,
    opts: ListenerOptions,
) {
    let mut open = Connections::default();
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                backoff = ACCEPT_BACKOFF_MIN;
                open.prune();
                if open.0.len() >= opts.max_connections.max(1) {
                    open.close_oldest();
                }
                let tokens = Arc::clone(&tokens);
                let tx = tx.clone();
                let task = tokio::spawn(async move {
                    handle(stream, peer, &tokens, &tx, opts.read_timeout).await;
                });
                open.0.push_back(task.abort_handle());
            }
            // This connection went away before it was accepted; the next one is unaffected.
            Err(e) if is_per_connection(&e) => {}
            // Out of file descriptors, or memory: `accept` fails at once until one is freed,
            // so free one of ours and pause rather than spin.
            Err(e) => {
                if backoff == ACCEPT_BACKOFF_MIN {
                    tracing::warn!(error = %e, "callback listener cannot accept; backing off");
                }
                open.prune();
                open.close_oldest();
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
            }
        }
    }
}

/// The connections being served, oldest first. Dropped with the accept loop (when the
/// listener is dropped), it closes them all rather than leave them to their read timeout.
#[derive(Debug, Default)]
struct Connections(VecDeque<AbortHandle>);

impl Connections {
    fn prune(&mut self) {
        self.0.retain(|c| !c.is_finished());
    }

    fn close_oldest(&mut self) {
        if let Some(oldest) = self.0.pop_front() {
            oldest.abort();
        }
    }
}

impl Drop for Connections {
    fn drop(&mut self) {
        for c in &self.0 {
            c.abort();
        }
    }
}

fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// Reads one request line and answers it. An accepted callback is handed over as an arrival
/// before the answer is written, so closing the connection afterwards cannot lose it.
async fn handle(
    mut stream: TcpStream,
    peer: SocketAddr,
    tokens: &Tokens,
    tx: &mpsc::UnboundedSender<Arrival>,
    read_timeout: Duration,
) {
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
        (Ok(Some(())), Some((id, token))) => redeem(tokens, id, token).then(|| id.to_string()),
        _ => None,
    };
    if let Some(id) = &ok {
        let _ = tx.send(Arrival {
            sandbox_id: id.clone(),
            peer,
        });
    }
    let answer: &[u8] = if ok.is_some() {
        b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n"
    } else {
        b"HTTP/1.0 403 Forbidden\r\nContent-Length: 0\r\n\r\n"
    };
    let _ = stream.write_all(answer).await;
    let _ = stream.shutdown().await;
    tracing::debug!(%peer, accepted = ok.is_some(), "callback request");
}

/// Whether `token` is the one registered for `id`; a match uses it up, so each token is
/// accepted once. The check and the removal happen under one lock, so two racing callbacks
/// with the same token cannot both be accepted.
fn redeem(tokens: &Tokens, id: &str, token: &str) -> bool {
    let Ok(mut t) = tokens.lock() else {
        return false;
    };
    let matched = t.get(id).is_some_and(|want| tokens_match(want, token));
    if matched {
        t.remove(id);
    }
    matched
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
    use super::super::tests::{call, route};
    use super::*;
    use crate::CallbackListener;

    /// Whether the server closed `s` within `within` (after a refusal, or without a word).
    async fn closed_by_server(mut s: TcpStream, within: Duration) -> bool {
        let mut rest = Vec::new();
        tokio::time::timeout(within, s.read_to_end(&mut rest))
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn dropping_the_listener_closes_its_connections() {
        let l = CallbackListener::bind(&route("127.0.0.1"), ListenerOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let s = TcpStream::connect(l.local_addr())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(l);
        assert!(closed_by_server(s, Duration::from_millis(500)).await);
    }

    #[tokio::test]
    async fn an_idle_connection_is_dropped_after_the_read_timeout() {
        let l = CallbackListener::bind(&route("127.0.0.1"), ListenerOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let s = TcpStream::connect(l.local_addr())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // The default request-line timeout is 2 s: a connection that says nothing is closed
        // well before a slow attacker could pile many up.
        assert!(closed_by_server(s, Duration::from_secs(3)).await);
    }

    #[tokio::test]
    async fn a_flood_of_idle_connections_is_bounded_and_callbacks_still_arrive() {
        // Loopback only, 300 connections, all closed when the test ends.
        const FLOOD: usize = 300;
        let mut l = CallbackListener::bind(&route("127.0.0.1"), ListenerOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        l.expect("sb-real", "tok");
        let addr = l.local_addr();
        let mut flood = Vec::with_capacity(FLOOD);
        for _ in 0..FLOOD {
            flood.push(
                TcpStream::connect(addr)
                    .await
                    .unwrap_or_else(|e| panic!("{e}")),
            );
        }
        assert!(call(addr, "/callback/sb-real/tok")
            .await
            .starts_with("HTTP/1.0 200"));
        l.wait_for("sb-real", Duration::from_secs(1))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // The listener holds at most its cap of connections: it made room by closing the
        // oldest idle ones, long before their read timeout.
        let mut checks = tokio::task::JoinSet::new();
        for s in flood {
            checks.spawn(closed_by_server(s, Duration::from_secs(1)));
        }
        let mut closed = 0;
        while let Some(c) = checks.join_next().await {
            closed += usize::from(c.unwrap_or(false));
        }
        let cap = ListenerOptions::default().max_connections;
        assert!(
            closed >= FLOOD - cap,
            "only {closed} of {FLOOD} idle connections closed"
        );
    }

    /// Set in the child half of `accept_errors_back_off_instead_of_spinning`.
    const EMFILE_CHILD: &str = "OPENSHELL_TEST_LISTENER_EMFILE_CHILD";

    /// This process's CPU time so far, in clock ticks (`USER_HZ`, 100 a second on Linux), read
    /// through `stat`, opened before descriptors run out.
    #[cfg(target_os = "linux")]
    fn cpu_ticks(stat: &mut std::fs::File) -> u64 {
        use std::io::{Read as _, Seek as _};
        let mut text = String::new();
        stat.rewind()
            .and_then(|_| stat.read_to_string(&mut text))
            .unwrap_or_else(|e| panic!("{e}"));
        // Fields after the command name, which is in parentheses and may hold spaces: state is
        // the first, utime the 12th, stime the 13th.
        let after = text.rsplit_once(')').map_or("", |(_, rest)| rest);
        after
            .split_whitespace()
            .skip(11)
            .take(2)
            .map(|v| v.parse::<u64>().unwrap_or_else(|e| panic!("{v}: {e}")))
            .sum()
    }

    /// Runs out of file descriptors with connections still pending, so `accept` fails with
    /// EMFILE; measures how much CPU the listener burns meanwhile; then frees them and checks a
    /// real callback still arrives.
    #[cfg(target_os = "linux")]
    fn emfile_child() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        rt.block_on(async {
            let opts = ListenerOptions {
                // Hold what was accepted, so descriptors stay exhausted while measuring.
                read_timeout: Duration::from_secs(30),
                ..ListenerOptions::default()
            };
            let mut l = CallbackListener::bind(&route("127.0.0.1"), opts)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            l.expect("sb-real", "tok");
            let addr = l.local_addr();
            let mut stat = std::fs::File::open("/proc/self/stat").unwrap_or_else(|e| panic!("{e}"));
            // At most 256 tries; the 64-descriptor limit ends it far sooner.
            let mut flood = Vec::new();
            for _ in 0..256 {
                match TcpStream::connect(addr).await {
                    Ok(s) => flood.push(s),
                    Err(_) => break,
                }
            }
            assert!(flood.len() < 256, "the descriptor limit was not reached");
            tokio::time::sleep(Duration::from_millis(200)).await;
            let before = cpu_ticks(&mut stat);
            tokio::time::sleep(Duration::from_secs(1)).await;
            let used = cpu_ticks(&mut stat) - before;
            eprintln!(
                "{} connections opened; {used} CPU ticks in 1 s",
                flood.len()
            );
            // A listener that retries a failing accept at once burns a core: up to 100 ticks,
            // 38 seen on a loaded 2-core machine. One that backs off sleeps: 0 seen.
            assert!(
                used < 10,
                "{used} CPU ticks in 1 s while out of descriptors"
            );
            drop(flood);
            assert!(call(addr, "/callback/sb-real/tok")
                .await
                .starts_with("HTTP/1.0 200"));
            l.wait_for("sb-real", Duration::from_secs(3))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        });
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn accept_errors_back_off_instead_of_spinning() {
        if std::env::var_os(EMFILE_CHILD).is_some() {
            return emfile_child();
        }
        // The descriptor limit is per process: lower it in a child (this test binary, running
        // only this test) rather than here, where it would break the tests running beside us.
        let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
        let mut child = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg("ulimit -n 64 && exec \"$0\" \"$@\"")
            .arg(exe)
            .args([
                "--exact",
                "listener::serve::tests::accept_errors_back_off_instead_of_spinning",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(EMFILE_CHILD, "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while child.try_wait().ok().flatten().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
        let shown = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "child failed:\n{shown}");
        assert!(
            shown.contains("1 passed"),
            "the child ran no test:\n{shown}"
        );
    }
}
