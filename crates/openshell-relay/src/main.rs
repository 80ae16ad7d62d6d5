//! `openshell-relay`: the program a relay container runs on a sandbox network, and the
//! reachability probe `doctor` runs.
//!
//! `openshell-relay <port> [<listen address>]` listens on `0.0.0.0:<port>` inside its container
//! (or on the address given after the port: `127.0.0.1` for a relay in an engine's host network
//! namespace, where it must not face the network) and carries every connection it accepts as
//! one stream of a yamux session whose transport is its own stdin and
//! stdout. The gateway holds the other end of that session through the engine's attach API, so
//! the relay needs no published port and the gateway listens on the host's loopback only.
//!
//! The relay forwards nowhere but into that session: it takes no destination, neither on its
//! command line nor from a peer, so a compromised sandbox can only reach what the gateway
//! chooses to connect the stream to (its own port on loopback). The session ends when stdin
//! does (the gateway detached or died), and then the relay exits, so a relay never outlives
//! the gateway that owns it by more than its engine takes to close stdin.
//!
//! `openshell-relay socket <path> <port> [<listen address>]` carries each connection to the
//! gateway's Unix socket at `path` (bind-mounted from the gateway's host) instead, where the
//! engine shares the gateway's kernel and filesystem; it checks first that `path` is a socket
//! and exits at once with `no gateway socket at <path>` when it is not (see [`socket`]).
//!
//! `openshell-relay probe <linger-secs>` is the probe (see [`probe`]).
//!
//! The design choice: `std` and nothing else. The program links statically, runs in an image
//! that holds nothing but this binary, and is compiled by `openshell-sandbox`'s build script
//! with `rustc` alone in a few seconds, so that every build of the library (and of the CLI)
//! carries a relay for its engine without a separate build step or any download.

mod mux;
mod probe;
mod socket;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

fn usage() -> String {
    "usage: openshell-relay <port> [<listen address>]  (listens on 0.0.0.0:<port> by default; the session runs over stdin/stdout)\n       openshell-relay socket <path> <port> [<listen address>]  (carries connections to the gateway's Unix socket at <path>)\n       openshell-relay probe <linger-secs>  (calls back once, as a sandbox does)"
        .to_string()
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
enum Mode {
    /// Where to listen, and the gateway's socket when connections go there.
    Relay(SocketAddr, Option<PathBuf>),
    Probe(u64),
}

/// A port (1-65535) on `ip`.
fn listen_on(port: &str, ip: IpAddr) -> Result<Mode, String> {
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!(
            "invalid port {port:?}: expected 1-65535\n{}",
            usage()
        )),
        Ok(p) => Ok(Mode::Relay(SocketAddr::new(ip, p), None)),
    }
}

fn parse(args: &[String]) -> Result<Mode, String> {
    match args {
        [socket, path, rest @ ..] if socket == "socket" && (1..=2).contains(&rest.len()) => {
            if !path.starts_with('/') {
                return Err(format!(
                    "invalid socket path {path:?}: expected an absolute path\n{}",
                    usage()
                ));
            }
            match parse(rest)? {
                Mode::Relay(addr, None) => Ok(Mode::Relay(addr, Some(PathBuf::from(path)))),
                _ => Err(usage()),
            }
        }
        [port] => listen_on(port, IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        [probe, linger] if probe == "probe" => match linger.parse::<u64>() {
            Ok(s) if s <= 3600 => Ok(Mode::Probe(s)),
            _ => Err(format!(
                "invalid linger {linger:?}: expected 0-3600 seconds\n{}",
                usage()
            )),
        },
        // An address, never a name: nothing is looked up.
        [port, ip] => match ip.parse::<IpAddr>() {
            Ok(ip) => listen_on(port, ip),
            Err(_) => Err(format!("invalid listen address {ip:?}\n{}", usage())),
        },
        _ => Err(usage()),
    }
}

fn relay(addr: SocketAddr, socket: Option<PathBuf>) -> Result<(), String> {
    // Before listening: a relay that cannot see the gateway's socket says so at once, and the
    // gateway falls back to the session over stdin/stdout.
    if let Some(path) = &socket {
        socket::check(path)?;
    }
    let listener = TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    // The gateway reads this line (from the logs) before it hands out a host-network relay, or
    // one that carries through the socket.
    eprintln!("openshell-relay: listening on {addr}");
    if let Some(path) = socket {
        std::thread::spawn(move || socket::serve(listener, path));
        // The gateway holds stdin: when it ends, the gateway is gone, and so is the relay.
        let mut sink = [0u8; 512];
        let mut stdin = std::io::stdin().lock();
        loop {
            match std::io::Read::read(&mut stdin, &mut sink) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("reading stdin failed: {e}")),
            }
        }
    }
    let session = mux::Session::new(std::io::stdout());
    let accepting = std::sync::Arc::clone(&session);
    std::thread::spawn(move || mux::serve(listener, accepting));
    // The session ends with stdin: the process ends with it, and every stream with the process.
    session
        .run(std::io::stdin().lock())
        .map_err(|e| format!("session with the gateway failed: {e}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse(&args) {
        Err(e) => {
            eprintln!("openshell-relay: {e}");
            ExitCode::from(2)
        }
        Ok(Mode::Probe(linger)) => ExitCode::from(probe::run(Duration::from_secs(linger))),
        Ok(Mode::Relay(addr, socket)) => match relay(addr, socket) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("openshell-relay: {e}");
                ExitCode::from(1)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::{parse, Mode};

    #[test]
    fn takes_a_port_and_at_most_a_listen_address_or_a_probe() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let relay = |a: &str| {
            Ok(Mode::Relay(
                a.parse().unwrap_or_else(|_| unreachable!()),
                None,
            ))
        };
        let via = |a: &str, p: &str| {
            Ok(Mode::Relay(
                a.parse().unwrap_or_else(|_| unreachable!()),
                Some(p.into()),
            ))
        };
        assert_eq!(
            parse(&args(&["socket", "/gw/gateway.sock", "17670"])),
            via("0.0.0.0:17670", "/gw/gateway.sock")
        );
        assert_eq!(
            parse(&args(&["socket", "/gw/g.sock", "17670", "127.0.0.1"])),
            via("127.0.0.1:17670", "/gw/g.sock")
        );
        assert!(parse(&args(&["socket", "gw.sock", "17670"])).is_err());
        assert!(parse(&args(&["socket", "/gw.sock"])).is_err());
        assert!(parse(&args(&["socket", "/gw.sock", "socket", "/x", "1"])).is_err());
        assert!(parse(&args(&["socket", "/gw.sock", "probe", "1"])).is_err());
        assert_eq!(parse(&args(&["17670"])), relay("0.0.0.0:17670"));
        assert_eq!(
            parse(&args(&["17670", "127.0.0.1"])),
            relay("127.0.0.1:17670")
        );
        assert!(parse(&args(&["1", "localhost"])).is_err());
        assert!(parse(&args(&["1", "127.0.0.1", "3"])).is_err());
        assert_eq!(parse(&args(&["probe", "7"])), Ok(Mode::Probe(7)));
        assert!(parse(&args(&["0"])).is_err());
        assert!(parse(&args(&["10.0.0.1:22"])).is_err());
        assert!(parse(&args(&["1", "2"])).is_err());
        assert!(parse(&args(&["probe", "-1"])).is_err());
        assert!(parse(&args(&["probe", "99999"])).is_err());
        assert!(parse(&args(&[])).is_err());
    }
}
