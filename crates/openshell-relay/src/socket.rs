//! The relay's fast carrier: every accepted connection goes to the gateway's Unix socket, which
//! the gateway bind-mounts into the relay's container, instead of into the yamux session over
//! stdin/stdout. Only where the engine runs on the gateway's own kernel and filesystem (native
//! Docker and Podman on Linux); the gateway decides that, and falls back to the session when
//! this relay reports that it cannot see the socket ([`check`]).
//!
//! The socket takes no destination either: the gateway connects every connection it accepts
//! there to its own port on `127.0.0.1`, as it does every yamux stream. Stdin still ties the
//! relay to its gateway: the relay exits when stdin ends, as in the session mode.
//!
//! Bytes are copied by two threads per connection with a large buffer each ([`BUFFER`]), so
//! bulk transfers cost few system calls and no framing.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;

use crate::mux::MAX_STREAMS;

/// Each direction's copy buffer.
const BUFFER: usize = 256 * 1024;

/// Whether `path` is a socket, as this relay sees it at its mount point: the gateway's socket
/// directory may be empty or absent here (an engine in another mount namespace or chroot, a
/// VM), and then the relay must say so at once rather than refuse every connection later.
pub(crate) fn check(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => Ok(()),
        Ok(_) => Err(format!(
            "no gateway socket at {}: it is not a socket here",
            path.display()
        )),
        Err(e) => Err(format!("no gateway socket at {}: {e}", path.display())),
    }
}

/// Counts connections carried at once, so that no more than [`MAX_STREAMS`] are (more wait in
/// the listener's backlog, as in the session mode).
struct Slots {
    used: Mutex<usize>,
    freed: Condvar,
}

impl Slots {
    fn take(&self) {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        while *used >= MAX_STREAMS {
            used = self.freed.wait(used).unwrap_or_else(|p| p.into_inner());
        }
        *used += 1;
    }

    fn give(&self) {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        *used = used.saturating_sub(1);
        self.freed.notify_one();
    }
}

/// Accepts connections for ever, carrying each to the gateway's socket at `path`.
pub(crate) fn serve(listener: TcpListener, path: PathBuf) {
    let slots = Arc::new(Slots {
        used: Mutex::new(0),
        freed: Condvar::new(),
    });
    let path = Arc::new(path);
    let mut refused: u64 = 0;
    loop {
        slots.take();
        let tcp = match listener.accept() {
            Ok((tcp, _)) => tcp,
            Err(_) => {
                slots.give();
                // A failed accept (out of descriptors) must not spin.
                thread::sleep(std::time::Duration::from_millis(50));
                continue;
            }
        };
        let unix = match UnixStream::connect(path.as_path()) {
            Ok(u) => u,
            Err(e) => {
                slots.give();
                refused += 1;
                if refused.is_power_of_two() {
                    eprintln!(
                        "openshell-relay: the gateway socket {} refused a connection ({refused} so far): {e}",
                        path.display()
                    );
                }
                continue;
            }
        };
        let slots = Arc::clone(&slots);
        thread::spawn(move || {
            carry(tcp, unix);
            slots.give();
        });
    }
}

/// Copies both ways until both directions ended.
fn carry(tcp: TcpStream, unix: UnixStream) {
    let _ = tcp.set_nodelay(true);
    let (tcp_in, unix_in) = match (tcp.try_clone(), unix.try_clone()) {
        (Ok(t), Ok(u)) => (t, u),
        _ => return,
    };
    // Sandbox to gateway on a thread of its own; gateway to sandbox on this one.
    let up = thread::spawn(move || {
        let _ = pump(tcp_in, &unix_in);
        let _ = unix_in.shutdown(Shutdown::Write);
    });
    let _ = pump(unix, &tcp);
    let _ = tcp.shutdown(Shutdown::Write);
    let _ = up.join();
}

/// Copies `from` into `to` until `from` ends.
fn pump<R: Read, W>(mut from: R, mut to: W) -> io::Result<()>
where
    W: Write,
{
    let mut buf = vec![0u8; BUFFER];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "openshell-relay-test-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        dir
    }

    /// Anything but a socket at the path is refused at once, with the path in the message.
    #[test]
    fn only_a_socket_passes_the_check() {
        let dir = temp_dir("check");
        let missing = dir.join("gateway.sock");
        let e = check(&missing).err().unwrap_or_default();
        assert!(e.starts_with("no gateway socket at "), "{e}");
        assert!(e.contains("gateway.sock"), "{e}");
        std::fs::write(&missing, b"x").unwrap_or_else(|e| panic!("{e}"));
        let e = check(&missing).err().unwrap_or_default();
        assert!(e.contains("not a socket"), "{e}");
        std::fs::remove_file(&missing).unwrap_or_else(|e| panic!("{e}"));
        let _listener = UnixListener::bind(&missing).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(check(&missing), Ok(()));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A connection to the relay reaches the socket's listener and carries bytes both ways,
    /// half-closes included. Loopback and a temporary socket only.
    #[test]
    fn carries_both_ways_to_the_socket() {
        let dir = temp_dir("carry");
        let path = dir.join("gateway.sock");
        let gateway = UnixListener::bind(&path).unwrap_or_else(|e| panic!("{e}"));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let p = path.clone();
        thread::spawn(move || serve(listener, p));
        let echo = thread::spawn(move || {
            let (mut s, _) = gateway.accept().unwrap_or_else(|e| panic!("{e}"));
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap_or_else(|e| panic!("{e}"));
            s.write_all(&got).unwrap_or_else(|e| panic!("{e}"));
        });
        let mut c = TcpStream::connect(addr).unwrap_or_else(|e| panic!("{e}"));
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        c.write_all(&data).unwrap_or_else(|e| panic!("{e}"));
        c.shutdown(Shutdown::Write)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut back = Vec::new();
        c.read_to_end(&mut back).unwrap_or_else(|e| panic!("{e}"));
        assert!(back == data, "{} bytes came back", back.len());
        echo.join().unwrap_or_else(|_| panic!("echo failed"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
