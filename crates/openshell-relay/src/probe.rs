//! `openshell-relay probe <linger-secs>`: what a sandbox does to call back, once, classified.
//!
//! It reads the callback URL, sandbox id and token from the environment a sandbox gets
//! (`OPENSHELL_ENDPOINT`, `OPENSHELL_SANDBOX_ID`, `OPENSHELL_TOKEN`), resolves the URL's host
//! the way a sandbox's resolver does for the extra hosts the engine wrote (`/etc/hosts`; a static
//! binary has no NSS modules to ask), connects, and sends the callback request. A failure is
//! printed as a verdict line (`openshell-probe-verdict=<code>`), then the process lingers
//! `linger-secs` before it exits with that code, so the gateway can read the verdict before
//! the engine removes the exited probe. Codes: 3 the name did not resolve, 4 connection
//! refused, 5 no answer in time (or an answer that is not a success).

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

/// What the probe prints before its exit code.
pub(crate) const VERDICT: &str = "openshell-probe-verdict=";
const NAME_UNRESOLVED: u8 = 3;
const REFUSED: u8 = 4;
const TIMEOUT: u8 = 5;
/// How long the connect and the answer may each take.
const WAIT: Duration = Duration::from_secs(5);

/// The URL's host and port (`http://host:port[/...]`), without user information.
pub(crate) fn host_port(url: &str) -> Option<(String, u16)> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    let authority = rest.split('/').next()?;
    if authority.contains('@') {
        return None;
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, p) = v6.split_once("]:")?;
        (h, p)
    } else {
        authority.rsplit_once(':')?
    };
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    (!host.is_empty()).then(|| (host.to_string(), port))
}

/// The first address `/etc/hosts` (its text) gives `name`, as a resolver reads it.
pub(crate) fn resolve_in_hosts(hosts: &str, name: &str) -> Option<IpAddr> {
    hosts.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or_default();
        let mut fields = line.split_whitespace();
        let addr: IpAddr = fields.next()?.parse().ok()?;
        fields.any(|n| n.eq_ignore_ascii_case(name)).then_some(addr)
    })
}

/// Whether `name` is an address already (no lookup needed).
fn literal(name: &str) -> Option<IpAddr> {
    name.parse().ok()
}

fn verdict(code: u8, why: &str, linger: Duration) -> u8 {
    println!("probe: {why}");
    println!("{VERDICT}{code}");
    let _ = std::io::stdout().flush();
    std::thread::sleep(linger);
    code
}

/// Runs the probe; returns the exit code.
pub(crate) fn run(linger: Duration) -> u8 {
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    let (endpoint, id, token) = (
        var("OPENSHELL_ENDPOINT"),
        var("OPENSHELL_SANDBOX_ID"),
        var("OPENSHELL_TOKEN"),
    );
    let (host, port) = match host_port(&endpoint) {
        Some(hp) => hp,
        None => {
            return verdict(
                NAME_UNRESOLVED,
                &format!("OPENSHELL_ENDPOINT {endpoint:?} is not http://host:port"),
                linger,
            )
        }
    };
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let ip = match literal(&host).or_else(|| resolve_in_hosts(&hosts, &host)) {
        Some(ip) => ip,
        None => {
            return verdict(
                NAME_UNRESOLVED,
                &format!("{host} is not in /etc/hosts"),
                linger,
            )
        }
    };
    let addr = SocketAddr::new(ip, port);
    let mut tcp = match TcpStream::connect_timeout(&addr, WAIT) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return verdict(REFUSED, &format!("{addr}: connection refused"), linger)
        }
        Err(e) => return verdict(TIMEOUT, &format!("{addr}: {e}"), linger),
    };
    let _ = tcp.set_read_timeout(Some(WAIT));
    let _ = tcp.set_write_timeout(Some(WAIT));
    let request = format!(
        "GET /callback/{id}/{token} HTTP/1.0\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
    );
    if let Err(e) = tcp.write_all(request.as_bytes()) {
        return verdict(
            TIMEOUT,
            &format!("{addr}: sending the callback: {e}"),
            linger,
        );
    }
    let mut answer = Vec::new();
    let _ = tcp.take(4096).read_to_end(&mut answer);
    let status = String::from_utf8_lossy(&answer);
    let line = status.lines().next().unwrap_or_default();
    match line.split_whitespace().nth(1) {
        Some(code) if code.starts_with('2') => 0,
        _ => verdict(
            TIMEOUT,
            &format!(
                "{addr} answered {:?}",
                line.chars().take(80).collect::<String>()
            ),
            linger,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_split_into_host_and_port() {
        assert_eq!(
            host_port("http://host.openshell.internal:17670"),
            Some(("host.openshell.internal".into(), 17670))
        );
        assert_eq!(host_port("https://h:1/x"), Some(("h".into(), 1)));
        assert_eq!(host_port("http://[::1]:80"), Some(("::1".into(), 80)));
        assert_eq!(host_port("http://u@h:80"), None);
        assert_eq!(host_port("http://h:0"), None);
        assert_eq!(host_port("ftp://h:80"), None);
        assert_eq!(host_port("http://:80"), None);
    }

    #[test]
    fn the_hosts_file_is_read_as_a_resolver_reads_it() {
        let hosts = "127.0.0.1 localhost\n# 10.0.0.1 host.openshell.internal\n\
                     192.168.65.254\thost.docker.internal HOST.openshell.internal # extra\n\
                     10.0.0.2 host.openshell.internal\n";
        assert_eq!(
            resolve_in_hosts(hosts, "host.openshell.internal"),
            "192.168.65.254".parse().ok()
        );
        assert_eq!(resolve_in_hosts(hosts, "nothere"), None);
        assert_eq!(
            resolve_in_hosts("garbage host.openshell.internal", "host.openshell.internal"),
            None
        );
    }
}
