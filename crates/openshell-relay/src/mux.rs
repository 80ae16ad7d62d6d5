//! The relay's side of a yamux session over stdin/stdout, written on `std` alone.
//!
//! The wire format is yamux's (hashicorp/yamux `spec.md`, as the `yamux` crate on the gateway
//! side speaks it): a 12-byte header (version 0, type, flags, stream id, length, big-endian),
//! then `length` bytes of payload for a data frame. The relay is the client: it opens an
//! odd-numbered stream for each connection it accepts (`SYN` on its first frame) and never
//! accepts a stream the gateway opens (answered with `RST`). Flow control is yamux's: each
//! direction of a stream starts with a 256 KiB window; the relay sends no more than the
//! gateway's window allows, and grants the gateway more only as a sandbox's socket takes the
//! bytes, so no stream can make the relay buffer more than one window and a slow sandbox does
//! not stall the others (each stream has its own reader and writer thread).
//!
//! At most [`MAX_STREAMS`] streams are open at once, far below what the gateway's session
//! accepts: further connections wait in the listener's backlog until a stream closes.

use std::collections::HashMap;
use std::io::{self, BufWriter, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

/// yamux's protocol version.
const VERSION: u8 = 0;
/// Frame types.
const TYPE_DATA: u8 = 0;
const TYPE_WINDOW_UPDATE: u8 = 1;
const TYPE_PING: u8 = 2;
const TYPE_GO_AWAY: u8 = 3;
/// Frame flags.
const FLAG_SYN: u16 = 1;
const FLAG_ACK: u16 = 2;
const FLAG_FIN: u16 = 4;
const FLAG_RST: u16 = 8;
/// Every stream's window in each direction at its start (yamux's default).
pub(crate) const INITIAL_WINDOW: u32 = 256 * 1024;
/// The most bytes one data frame of ours carries.
const MAX_CHUNK: usize = 16 * 1024;
/// The most streams open at once; the gateway's yamux session accepts 512.
pub(crate) const MAX_STREAMS: usize = 256;
/// How long a new stream's `SYN` waits for the sandbox's first bytes, to leave with them in one
/// write. Alone, the `SYN` and the first data frame are two small writes in a row; where the
/// engine forwards each write of the relay's stdout as it comes (Podman's conmon) and the
/// session crosses a TCP connection with Nagle's algorithm on (sshd sets no `TCP_NODELAY` for
/// a forwarding-only session), the second waited for the first's delayed ACK: 40 ms on every
/// callback through a relay over `ssh://` to Podman.
const SYN_WAIT: Duration = Duration::from_millis(5);
/// Bytes the sandbox's socket took that are granted back to the gateway in one window update:
/// half the window (as yamux itself does), so that the gateway never runs dry, and few small
/// frames follow one another (each a write that Nagle's algorithm may hold, as above).
const GRANT_BATCH: u32 = INITIAL_WINDOW / 2;

/// One frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// Frame type.
    pub(crate) kind: u8,
    /// `SYN`, `ACK`, `FIN`, `RST`.
    pub(crate) flags: u16,
    /// Stream id (0 for the session).
    pub(crate) stream: u32,
    /// Payload length (data), window delta (window update), opaque value (ping), code (go away).
    pub(crate) length: u32,
}

impl Header {
    /// The 12 bytes on the wire.
    pub(crate) fn encode(&self) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[0] = VERSION;
        b[1] = self.kind;
        b[2..4].copy_from_slice(&self.flags.to_be_bytes());
        b[4..8].copy_from_slice(&self.stream.to_be_bytes());
        b[8..12].copy_from_slice(&self.length.to_be_bytes());
        b
    }

    /// A header read from the wire; an unknown version or type is a protocol error.
    pub(crate) fn decode(b: &[u8; 12]) -> Result<Header, String> {
        if b[0] != VERSION {
            return Err(format!("unsupported yamux version {}", b[0]));
        }
        if b[1] > TYPE_GO_AWAY {
            return Err(format!("unknown yamux frame type {}", b[1]));
        }
        Ok(Header {
            kind: b[1],
            flags: u16::from_be_bytes([b[2], b[3]]),
            stream: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            length: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        })
    }
}

/// What the session reader hands a stream's writer thread.
enum Inbound {
    Data(Vec<u8>),
    Fin,
    Reset,
}

/// The sending side of one stream: how much the gateway lets us send, and whether it is over.
struct Credit {
    window: u64,
    reset: bool,
}

/// One open stream.
struct Stream {
    credit: Mutex<Credit>,
    more: Condvar,
    /// (Behind a lock: `Sender` is `Sync` only from Rust 1.72, and the relay also builds with
    /// Debian 12's rustc 1.63 for the architectures rustup cannot add here.)
    inbox: Mutex<Sender<Inbound>>,
    /// Bytes the gateway sent that the sandbox's socket has not taken yet.
    unread: AtomicU32,
    /// Halves (reading, writing) still running; the stream is closed when both are done.
    halves: AtomicU32,
}

/// The session: the frame writer and the open streams.
pub(crate) struct Session<W: Write + Send + 'static> {
    out: Mutex<BufWriter<W>>,
    streams: Mutex<HashMap<u32, Arc<Stream>>>,
    open: Mutex<usize>,
    closed: Condvar,
    next_id: AtomicU32,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A thread that panicked holding a lock leaves consistent data here (counters, maps).
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl<W: Write + Send + 'static> Session<W> {
    /// A session writing its frames to `out`.
    pub(crate) fn new(out: W) -> Arc<Session<W>> {
        Arc::new(Session {
            out: Mutex::new(BufWriter::with_capacity(MAX_CHUNK + 12, out)),
            streams: Mutex::new(HashMap::new()),
            open: Mutex::new(0),
            closed: Condvar::new(),
            next_id: AtomicU32::new(1),
        })
    }

    /// Writes one frame (header and payload in one flush).
    fn send(&self, header: Header, payload: &[u8]) -> io::Result<()> {
        let mut out = locked(&self.out);
        out.write_all(&header.encode())?;
        out.write_all(payload)?;
        out.flush()
    }

    fn window_update(&self, stream: u32, flags: u16, delta: u32) -> io::Result<()> {
        let h = Header {
            kind: TYPE_WINDOW_UPDATE,
            flags,
            stream,
            length: delta,
        };
        self.send(h, &[])
    }

    /// Waits for a free stream slot, then carries `tcp` over a new stream.
    pub(crate) fn carry(self: &Arc<Self>, tcp: TcpStream) -> io::Result<()> {
        {
            let mut open = locked(&self.open);
            while *open >= MAX_STREAMS {
                open = match self.closed.wait(open) {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                };
            }
            *open += 1;
        }
        let id = self.next_id.fetch_add(2, Ordering::SeqCst);
        let (tx, rx) = channel();
        let stream = Arc::new(Stream {
            credit: Mutex::new(Credit {
                window: u64::from(INITIAL_WINDOW),
                reset: false,
            }),
            more: Condvar::new(),
            inbox: Mutex::new(tx),
            unread: AtomicU32::new(0),
            halves: AtomicU32::new(2),
        });
        locked(&self.streams).insert(id, Arc::clone(&stream));
        let reader = match tcp.try_clone() {
            Ok(reader) => reader,
            Err(e) => {
                self.half_done(id, &stream);
                self.half_done(id, &stream);
                return Err(e);
            }
        };
        let (s1, st1) = (Arc::clone(self), Arc::clone(&stream));
        thread::spawn(move || s1.pump_out(id, &st1, reader));
        let (s2, st2) = (Arc::clone(self), stream);
        thread::spawn(move || s2.pump_in(id, &st2, tcp, rx));
        Ok(())
    }

    /// One half of stream `id` is over; the second to finish closes it.
    fn half_done(&self, id: u32, stream: &Stream) {
        if stream.halves.fetch_sub(1, Ordering::SeqCst) == 1 {
            locked(&self.streams).remove(&id);
            let mut open = locked(&self.open);
            *open = open.saturating_sub(1);
            self.closed.notify_one();
        }
    }

    /// Sandbox socket → gateway: data frames within the gateway's window, then `FIN`. The
    /// stream opens (`SYN`) with the sandbox's first bytes when they come within [`SYN_WAIT`]
    /// (a client speaks first), else alone.
    fn pump_out(&self, id: u32, stream: &Stream, mut tcp: TcpStream) {
        let mut buf = vec![0u8; MAX_CHUNK];
        // `SYN` while the stream is not open yet.
        let mut syn = FLAG_SYN;
        if tcp.set_read_timeout(Some(SYN_WAIT)).is_err() {
            syn = 0;
            if self.window_update(id, FLAG_SYN, 0).is_err() {
                let _ = tcp.shutdown(Shutdown::Both);
                self.half_done(id, stream);
                return;
            }
        }
        loop {
            let allowed = {
                let mut credit = locked(&stream.credit);
                while credit.window == 0 && !credit.reset {
                    credit = match stream.more.wait(credit) {
                        Ok(g) => g,
                        Err(p) => p.into_inner(),
                    };
                }
                if credit.reset {
                    break;
                }
                usize::try_from(credit.window).map_or(MAX_CHUNK, |w| w.min(MAX_CHUNK))
            };
            match tcp.read(&mut buf[..allowed]) {
                Ok(0) => {
                    let fin = Header {
                        kind: TYPE_WINDOW_UPDATE,
                        flags: FLAG_FIN | syn,
                        stream: id,
                        length: 0,
                    };
                    let _ = self.send(fin, &[]);
                    break;
                }
                Ok(n) => {
                    locked(&stream.credit).window -= n as u64;
                    let data = Header {
                        kind: TYPE_DATA,
                        flags: syn,
                        stream: id,
                        length: n as u32,
                    };
                    if self.send(data, &buf[..n]).is_err() {
                        break;
                    }
                    if syn != 0 {
                        syn = 0;
                        if tcp.set_read_timeout(None).is_err() {
                            break;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Nothing within `SYN_WAIT`: the stream opens alone, and reads wait from now on.
                Err(e)
                    if syn != 0
                        && matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                {
                    syn = 0;
                    if tcp.set_read_timeout(None).is_err()
                        || self.window_update(id, FLAG_SYN, 0).is_err()
                    {
                        break;
                    }
                }
                Err(_) => {
                    let rst = Header {
                        kind: TYPE_WINDOW_UPDATE,
                        flags: FLAG_RST | syn,
                        stream: id,
                        length: 0,
                    };
                    let _ = self.send(rst, &[]);
                    let _ = tcp.shutdown(Shutdown::Both);
                    break;
                }
            }
        }
        self.half_done(id, stream);
    }

    /// Gateway → sandbox socket: what the session reader queued, each chunk granted back to
    /// the gateway once the socket took it; `FIN` half-closes the socket.
    fn pump_in(&self, id: u32, stream: &Stream, mut tcp: TcpStream, inbox: Receiver<Inbound>) {
        // Taken by the socket, not granted back yet.
        let mut taken = 0u32;
        for msg in inbox {
            match msg {
                Inbound::Data(bytes) => {
                    if tcp.write_all(&bytes).is_err() {
                        let _ = tcp.shutdown(Shutdown::Both);
                        break;
                    }
                    let n = bytes.len() as u32;
                    stream.unread.fetch_sub(n, Ordering::SeqCst);
                    taken = taken.saturating_add(n);
                    if taken >= GRANT_BATCH {
                        if self.window_update(id, 0, taken).is_err() {
                            break;
                        }
                        taken = 0;
                    }
                }
                Inbound::Fin => {
                    let _ = tcp.shutdown(Shutdown::Write);
                    break;
                }
                Inbound::Reset => {
                    let _ = tcp.shutdown(Shutdown::Both);
                    break;
                }
            }
        }
        self.half_done(id, stream);
    }

    /// Ends stream `id` from the gateway's side: both halves stop.
    fn reset(&self, stream: &Stream) {
        locked(&stream.credit).reset = true;
        stream.more.notify_all();
        let _ = locked(&stream.inbox).send(Inbound::Reset);
    }

    /// Reads frames from `input` until the gateway ends the session: `Ok` for the end of input
    /// or a go-away, `Err` for a protocol violation or a broken pipe.
    pub(crate) fn run<R: Read>(&self, mut input: R) -> Result<(), String> {
        let mut head = [0u8; 12];
        loop {
            match read_exact_or_eof(&mut input, &mut head) {
                Ok(false) => return Ok(()),
                Ok(true) => {}
                Err(e) => return Err(format!("reading the session: {e}")),
            }
            let h = Header::decode(&head)?;
            match h.kind {
                TYPE_PING => {
                    if h.flags & FLAG_SYN != 0 {
                        let pong = Header {
                            kind: TYPE_PING,
                            flags: FLAG_ACK,
                            stream: 0,
                            length: h.length,
                        };
                        self.send(pong, &[])
                            .map_err(|e| format!("answering a ping: {e}"))?;
                    }
                }
                TYPE_GO_AWAY => return Ok(()),
                TYPE_DATA => {
                    if h.length > INITIAL_WINDOW {
                        return Err(format!(
                            "a data frame of {} bytes exceeds the window",
                            h.length
                        ));
                    }
                    let mut payload = vec![0u8; h.length as usize];
                    input
                        .read_exact(&mut payload)
                        .map_err(|e| format!("reading a data frame: {e}"))?;
                    self.on_stream_frame(h, payload)?;
                }
                _ => self.on_stream_frame(h, Vec::new())?,
            }
        }
    }

    fn on_stream_frame(&self, h: Header, payload: Vec<u8>) -> Result<(), String> {
        let found = locked(&self.streams).get(&h.stream).cloned();
        let stream = if let Some(stream) = found {
            stream
        } else {
            // A stream the gateway opens is refused; frames of a stream that just closed are
            // dropped.
            if h.flags & FLAG_SYN != 0 {
                let rst = Header {
                    kind: TYPE_WINDOW_UPDATE,
                    flags: FLAG_RST,
                    stream: h.stream,
                    length: 0,
                };
                self.send(rst, &[])
                    .map_err(|e| format!("refusing a stream: {e}"))?;
            }
            return Ok(());
        };
        if h.flags & FLAG_RST != 0 {
            self.reset(&stream);
            return Ok(());
        }
        if h.kind == TYPE_WINDOW_UPDATE && h.length > 0 {
            locked(&stream.credit).window += u64::from(h.length);
            stream.more.notify_all();
        }
        if !payload.is_empty() {
            let n = payload.len() as u32;
            let unread = stream.unread.fetch_add(n, Ordering::SeqCst) + n;
            if unread > INITIAL_WINDOW {
                // The gateway sent past our window: that stream is broken, not the session.
                self.reset(&stream);
                return Ok(());
            }
            let _ = locked(&stream.inbox).send(Inbound::Data(payload));
        }
        if h.flags & FLAG_FIN != 0 {
            let _ = locked(&stream.inbox).send(Inbound::Fin);
        }
        Ok(())
    }
}

/// Fills `buf`; `Ok(false)` when the input ended before its first byte.
fn read_exact_or_eof<R: Read>(input: &mut R, buf: &mut [u8]) -> io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Accepts connections on `listener` and carries each over `session`, for as long as the
/// process runs.
pub(crate) fn serve<W: Write + Send + 'static>(listener: TcpListener, session: Arc<Session<W>>) {
    for conn in listener.incoming() {
        match conn {
            Ok(tcp) => {
                let _ = tcp.set_nodelay(true);
                if let Err(e) = session.carry(tcp) {
                    eprintln!("openshell-relay: cannot open a stream to the gateway: {e}");
                }
            }
            Err(e) => {
                // Descriptor exhaustion and the like pass; pause rather than spin.
                eprintln!("openshell-relay: accept failed: {e}");
                thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_bad_ones_are_refused() {
        let h = Header {
            kind: TYPE_WINDOW_UPDATE,
            flags: FLAG_SYN | FLAG_FIN,
            stream: 0x0102_0304,
            length: 0x0506_0708,
        };
        let wire = h.encode();
        assert_eq!(wire, [0, 1, 0, 5, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(Header::decode(&wire), Ok(h));
        let mut bad = wire;
        bad[0] = 1;
        assert!(Header::decode(&bad).is_err());
        bad = wire;
        bad[1] = 4;
        assert!(Header::decode(&bad).is_err());
    }

    #[test]
    fn a_ping_is_answered_and_a_stream_the_gateway_opens_is_reset() {
        let out = SharedBuf::default();
        let session = Session::new(out.clone());
        let mut input = Vec::new();
        input.extend_from_slice(
            &Header {
                kind: TYPE_PING,
                flags: FLAG_SYN,
                stream: 0,
                length: 7,
            }
            .encode(),
        );
        input.extend_from_slice(
            &Header {
                kind: TYPE_WINDOW_UPDATE,
                flags: FLAG_SYN,
                stream: 2,
                length: 0,
            }
            .encode(),
        );
        assert_eq!(session.run(&input[..]), Ok(()));
        let written = out.bytes();
        assert_eq!(written.len(), 24);
        let pong = Header::decode(&written[..12].try_into().unwrap_or([0; 12]));
        assert_eq!(
            pong,
            Ok(Header {
                kind: TYPE_PING,
                flags: FLAG_ACK,
                stream: 0,
                length: 7
            })
        );
        let rst = Header::decode(&written[12..24].try_into().unwrap_or([0; 12]));
        assert_eq!(rst.map(|h| (h.flags, h.stream)), Ok((FLAG_RST, 2)));
    }

    #[test]
    fn an_oversized_data_frame_ends_the_session_without_allocating_it() {
        let session = Session::new(SharedBuf::default());
        let input = Header {
            kind: TYPE_DATA,
            flags: 0,
            stream: 1,
            length: u32::MAX,
        }
        .encode();
        assert!(session.run(&input[..]).is_err());
    }

    /// The stream ids the relay opened (window updates with `SYN`) in what it wrote.
    fn opened(out: &SharedBuf) -> Vec<u32> {
        let bytes = out.bytes();
        let mut at = 0;
        let mut ids = Vec::new();
        while at + 12 <= bytes.len() {
            let mut head = [0u8; 12];
            head.copy_from_slice(&bytes[at..at + 12]);
            let Ok(h) = Header::decode(&head) else { break };
            at += 12
                + if h.kind == TYPE_DATA {
                    h.length as usize
                } else {
                    0
                };
            if h.kind == TYPE_WINDOW_UPDATE && h.flags & FLAG_SYN != 0 {
                ids.push(h.stream);
            }
        }
        ids
    }

    fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "{what}");
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// A flood (issue 22): 300 connections at once open exactly [`MAX_STREAMS`] streams, far
    /// below the gateway session's limit; the rest wait in the backlog, and each stream the
    /// gateway ends lets one more through. Nothing but loopback, bounded in count and time.
    #[test]
    fn a_flood_opens_at_most_max_streams_and_the_rest_wait() {
        let out = SharedBuf::default();
        let session = Session::new(out.clone());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let serving = Arc::clone(&session);
        thread::spawn(move || serve(listener, serving));
        let conns: Vec<TcpStream> = (0..300)
            .map(|_| TcpStream::connect(addr).unwrap_or_else(|e| panic!("{e}")))
            .collect();
        wait_for("the first streams did not open", || {
            opened(&out).len() == MAX_STREAMS
        });
        thread::sleep(Duration::from_millis(300));
        let ids = opened(&out);
        assert_eq!(ids.len(), MAX_STREAMS, "more streams than the bound");
        // The gateway resets ten streams: ten waiting connections get theirs.
        let mut input = Vec::new();
        for id in &ids[..10] {
            input.extend_from_slice(
                &Header {
                    kind: TYPE_WINDOW_UPDATE,
                    flags: FLAG_RST,
                    stream: *id,
                    length: 0,
                }
                .encode(),
            );
        }
        assert_eq!(session.run(&input[..]), Ok(()));
        wait_for("reset streams did not make room", || {
            opened(&out).len() == MAX_STREAMS + 10
        });
        drop(conns);
    }

    #[derive(Clone, Default)]
    struct SharedBuf(Arc<Mutex<Vec<u8>>>);

    impl SharedBuf {
        fn bytes(&self) -> Vec<u8> {
            locked(&self.0).clone()
        }
    }

    impl Write for SharedBuf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            locked(&self.0).extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
}
