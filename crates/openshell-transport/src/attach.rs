//! One shape for an attached container's stdin and stdout: [`Attached`], an
//! `AsyncRead + AsyncWrite` byte pipe, whatever the client library hands back.
//!
//! Both engines frame a container's output without a TTY (an 8-byte header per chunk naming
//! stdout or stderr), and both client libraries undo that framing into chunks. A driver passes
//! its chunks of stdout here as a stream and its stdin writer as is; stderr never enters the
//! pipe, so a program's diagnostics cannot corrupt the bytes it speaks on stdout. A TTY is
//! never used: it would rewrite the bytes (line endings, control characters).

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::stream::BoxStream;
use hyper::body::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::io::StreamReader;

/// A container's stdout (read) and stdin (write), as one byte pipe.
pub struct Attached {
    output: StreamReader<BoxStream<'static, io::Result<Bytes>>, Bytes>,
    input: Pin<Box<dyn AsyncWrite + Send>>,
}

impl fmt::Debug for Attached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Attached")
    }
}

impl Attached {
    /// A pipe from the container's stdout chunks (already stripped of the engine's framing,
    /// stderr already dropped) and a writer to its stdin.
    pub fn new(
        stdout: BoxStream<'static, io::Result<Bytes>>,
        stdin: Pin<Box<dyn AsyncWrite + Send>>,
    ) -> Attached {
        Attached {
            output: StreamReader::new(stdout),
            input: stdin,
        }
    }
}

impl AsyncRead for Attached {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.output).poll_read(cx, buf)
    }
}

impl AsyncWrite for Attached {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.input.as_mut().poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.input.as_mut().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.input.as_mut().poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn chunks_read_as_one_byte_stream_and_writes_reach_stdin() {
        let chunks = futures_util::stream::iter([
            Ok(Bytes::from_static(b"\x00\x01")),
            Ok(Bytes::from_static(b"\x02yamux")),
        ])
        .boxed();
        let (stdin, mut container_side) = tokio::io::duplex(64);
        let mut pipe = Attached::new(chunks, Box::pin(stdin));
        let mut out = Vec::new();
        pipe.read_to_end(&mut out)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out, b"\x00\x01\x02yamux");
        pipe.write_all(b"\x10\x11")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut got = [0u8; 2];
        container_side
            .read_exact(&mut got)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&got, b"\x10\x11");
    }
}
