//! A flooding engine: a fake Docker and libpod API on a temporary Unix socket that answers
//! `/_ping` and the version calls like an engine, and every other request with a reply far
//! larger than any engine sends (an endless body, or one that declares 64 MiB). It records the
//! most it wrote on one connection, so a test can tell whether the client stopped reading.
//! Each connection stops after [`MAX_WRITTEN`] bytes, so a client that never stops cannot make
//! the test run forever.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;

/// The most one connection writes.
pub const MAX_WRITTEN: usize = 96 * 1024 * 1024;

/// How a flooding reply is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flood {
    /// Chunked, never ending (until [`MAX_WRITTEN`]).
    Endless,
    /// A `Content-Length` of this many bytes, all sent.
    Declared(usize),
}

/// A running flooding engine; dropping it stops it and removes its socket.
#[derive(Debug)]
pub struct FloodEngine {
    socket: PathBuf,
    dir: PathBuf,
    task: JoinHandle<()>,
    most_written: Arc<AtomicUsize>,
}

impl Drop for FloodEngine {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl FloodEngine {
    /// Starts serving on a fresh socket.
    pub async fn start(flood: Flood) -> std::io::Result<FloodEngine> {
        let dir = std::env::temp_dir().join(crate::live::unique("openshell-flood"));
        std::fs::create_dir_all(&dir)?;
        let socket = dir.join("docker.sock");
        let listener = UnixListener::bind(&socket)?;
        let most_written = Arc::new(AtomicUsize::new(0));
        let most = Arc::clone(&most_written);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let most = Arc::clone(&most);
                tokio::spawn(async move {
                    let written = answer(stream, flood).await;
                    most.fetch_max(written, Ordering::SeqCst);
                });
            }
        });
        Ok(FloodEngine {
            socket,
            dir,
            task,
            most_written,
        })
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The most bytes written on one connection so far.
    pub fn most_written(&self) -> usize {
        self.most_written.load(Ordering::SeqCst)
    }
}

/// Reads one request head and answers it; returns the bytes written.
async fn answer(mut stream: UnixStream, flood: Flood) -> usize {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return 0,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&head);
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let small = |body: &str, extra: &str| {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let reply = if path.ends_with("/_ping") {
        small("OK", "Api-Version: 1.41\r\n")
    } else if path.ends_with("/version") && !path.contains("libpod") {
        small(r#"{"ApiVersion":"1.41","Version":"20.10.24"}"#, "")
    } else {
        return flood_reply(&mut stream, flood).await;
    };
    match stream.write_all(reply.as_bytes()).await {
        Ok(()) => reply.len(),
        Err(_) => 0,
    }
}

async fn flood_reply(stream: &mut UnixStream, flood: Flood) -> usize {
    let filler = [b'a'; 64 * 1024];
    let head = match flood {
        Flood::Endless => "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_string(),
        Flood::Declared(n) => format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {n}\r\n\r\n"),
    };
    if stream.write_all(head.as_bytes()).await.is_err() {
        return 0;
    }
    let mut written = head.len();
    let total = match flood {
        Flood::Endless => MAX_WRITTEN,
        Flood::Declared(n) => n.min(MAX_WRITTEN),
    };
    let mut body = 0;
    while body < total {
        let piece = &filler[..filler.len().min(total - body)];
        let sent = match flood {
            Flood::Endless => {
                let size = format!("{:x}\r\n", piece.len());
                stream.write_all(size.as_bytes()).await.is_ok()
                    && stream.write_all(piece).await.is_ok()
                    && stream.write_all(b"\r\n").await.is_ok()
            }
            Flood::Declared(_) => stream.write_all(piece).await.is_ok(),
        };
        if !sent {
            break;
        }
        body += piece.len();
        written += piece.len();
    }
    written
}
