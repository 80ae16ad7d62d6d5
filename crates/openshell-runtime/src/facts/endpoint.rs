//! Where the engine was reached: a local socket or pipe, or a network address.
//!
//! An endpoint keeps no user information (`user:password@`): `Display` never shows it, and an
//! endpoint refused by [`Endpoint::parse`] is named with it hidden (`tcp://xxxxx@host:2375`).
//!
//! A TCP endpoint records whether the engine must be spoken to over TLS (`https://`, or a TLS
//! setting discovery found), so that no connection ever falls back to plain HTTP.

use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

/// How the client reached the engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Endpoint {
    /// A Unix socket path.
    Unix {
        /// Socket path.
        path: String,
    },
    /// A Windows named pipe.
    Npipe {
        /// Pipe path, e.g. `//./pipe/docker_engine`.
        path: String,
    },
    /// Plain or TLS TCP (`tcp://`, `http://`, `https://`).
    Tcp {
        /// Host name or address.
        host: String,
        /// Port, when given.
        port: Option<u16>,
        /// The engine speaks TLS here (`https://`, or TLS settings for this endpoint); shown
        /// as `https://`.
        tls: bool,
    },
    /// The engine socket behind an SSH connection.
    Ssh {
        /// Host name or address.
        host: String,
        /// Port, when given.
        port: Option<u16>,
        /// Remote socket path, when given (Podman connections carry one).
        path: Option<String>,
    },
}

/// The longest endpoint taken: socket paths run to 108 bytes and host names to 253, so longer
/// is a mistake or an attack, and refusing it keeps every message that names an endpoint short
/// (a 120 KB `DOCKER_HOST` made a 240 KB error line).
const MAX_ENDPOINT: usize = 1024;

/// Why an endpoint string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// The scheme is not one engines use.
    #[error("unsupported scheme in {value}: use unix://, npipe://, tcp://, http(s):// or ssh://")]
    Scheme {
        /// The offending value (sanitised).
        value: String,
    },
    /// Something after the scheme is missing or malformed.
    #[error("malformed endpoint {value}: {problem}")]
    Malformed {
        /// The offending value (sanitised).
        value: String,
        /// What is wrong.
        problem: &'static str,
    },
}

impl Endpoint {
    /// Parses the forms `DOCKER_HOST`, Docker contexts and Podman connections use. A bare
    /// absolute path is a Unix socket.
    pub fn parse(raw: &str) -> Result<Endpoint, EndpointError> {
        // Hidden before truncating, so a cut cannot leave a password without its `@`.
        let value = crate::evidence::display_value(&super::redact::redact_endpoint(raw));
        let malformed = |problem| EndpointError::Malformed {
            value: value.clone(),
            problem,
        };
        if raw.len() > MAX_ENDPOINT {
            return Err(malformed(
                "it is longer than 1024 bytes, more than any socket path or host name",
            ));
        }
        if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(malformed("it contains whitespace or control characters"));
        }
        if raw.starts_with('/') {
            return Ok(Endpoint::Unix { path: raw.into() });
        }
        let Some((scheme, rest)) = raw.split_once("://") else {
            return Err(EndpointError::Scheme { value });
        };
        match scheme.to_ascii_lowercase().as_str() {
            "unix" => {
                if rest.is_empty() {
                    return Err(malformed("no socket path"));
                }
                Ok(Endpoint::Unix { path: rest.into() })
            }
            "npipe" => {
                if rest.is_empty() {
                    return Err(malformed("no pipe path"));
                }
                Ok(Endpoint::Npipe { path: rest.into() })
            }
            "tcp" | "http" | "https" => {
                if rest.contains('@') {
                    return Err(malformed(
                        "it carries credentials (user:password@), which the engine API does not take; remove them",
                    ));
                }
                let authority = rest.split('/').next().unwrap_or_default();
                let (host, port) =
                    split_host_port(authority).ok_or_else(|| malformed("bad host or port"))?;
                Ok(Endpoint::Tcp {
                    host,
                    port,
                    tls: scheme.eq_ignore_ascii_case("https"),
                })
            }
            "ssh" => {
                let (authority, path) = match rest.find('/') {
                    Some(i) => (&rest[..i], Some(rest[i..].to_string())),
                    None => (rest, None),
                };
                let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
                let (host, port) =
                    split_host_port(host_port).ok_or_else(|| malformed("bad host or port"))?;
                // The path goes into `ssh -L <local>:<path>`, where OpenSSH expands `%` tokens
                // and `${VAR}` (sending our environment to the remote sshd) and reads
                // `<path>:<port>` as a TCP forward. No socket path needs these characters.
                if path.as_deref().is_some_and(|p| p.contains(['%', '$', ':'])) {
                    return Err(malformed(
                        "the socket path holds `%`, `$` or `:`, which ssh would expand or read as a port; name the socket by a plain path",
                    ));
                }
                Ok(Endpoint::Ssh {
                    host,
                    port,
                    path: path.filter(|p| p.len() > 1),
                })
            }
            _ => Err(EndpointError::Scheme { value }),
        }
    }

    /// Whether the engine must be spoken to over TLS.
    pub fn requires_tls(&self) -> bool {
        matches!(self, Endpoint::Tcp { tls: true, .. })
    }

    /// This endpoint, spoken to over TLS when it is a TCP one (TLS settings such as
    /// `DOCKER_TLS_VERIFY` apply to TCP only; sockets, pipes and SSH are left as they are).
    pub fn with_tls(self) -> Endpoint {
        match self {
            Endpoint::Tcp { host, port, .. } => Endpoint::Tcp {
                host,
                port,
                tls: true,
            },
            other => other,
        }
    }

    /// The host part of a network endpoint.
    pub fn network_host(&self) -> Option<&str> {
        match self {
            Endpoint::Tcp { host, .. } | Endpoint::Ssh { host, .. } => Some(host),
            Endpoint::Unix { .. } | Endpoint::Npipe { .. } => None,
        }
    }

    /// Whether the engine is on another machine: a network endpoint whose host is not loopback.
    /// Podman machine connections are `ssh://` to `127.0.0.1`, so they stay local.
    pub fn is_remote(&self) -> bool {
        self.network_host().is_some_and(|h| !is_loopback_host(h))
    }

    /// The socket or pipe path, for local endpoints and SSH endpoints that carry one.
    pub fn path(&self) -> Option<&str> {
        match self {
            Endpoint::Unix { path } | Endpoint::Npipe { path } => Some(path),
            Endpoint::Ssh { path, .. } => path.as_deref(),
            Endpoint::Tcp { .. } => None,
        }
    }
}

fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn split_host_port(authority: &str) -> Option<(String, Option<u16>)> {
    if authority.is_empty() {
        return None;
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_:".contains(c))
    {
        return None;
    }
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok()?),
        None => None,
    };
    Some((host.to_string(), port))
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let port = |p: &Option<u16>| p.map(|p| format!(":{p}")).unwrap_or_default();
        let host = |h: &str| {
            if h.contains(':') {
                format!("[{h}]")
            } else {
                h.to_string()
            }
        };
        match self {
            Endpoint::Unix { path } => write!(f, "unix://{path}"),
            Endpoint::Npipe { path } => write!(f, "npipe://{path}"),
            Endpoint::Tcp {
                host: h,
                port: p,
                tls,
            } => {
                let scheme = if *tls { "https" } else { "tcp" };
                write!(f, "{scheme}://{}{}", host(h), port(p))
            }
            Endpoint::Ssh {
                host: h,
                port: p,
                path,
            } => {
                write!(
                    f,
                    "ssh://{}{}{}",
                    host(h),
                    port(p),
                    path.as_deref().unwrap_or("")
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_engine_endpoint_forms() {
        let cases = [
            (
                "unix:///var/run/docker.sock",
                "unix:///var/run/docker.sock",
                false,
            ),
            (
                "/run/podman/podman.sock",
                "unix:///run/podman/podman.sock",
                false,
            ),
            (
                "npipe:////./pipe/docker_engine",
                "npipe:////./pipe/docker_engine",
                false,
            ),
            ("tcp://10.0.0.5:2376", "tcp://10.0.0.5:2376", true),
            ("https://10.0.0.5:2376", "https://10.0.0.5:2376", true),
            ("HTTPS://localhost:2376/", "https://localhost:2376", false),
            ("http://localhost:2375", "tcp://localhost:2375", false),
            ("tcp://localhost:2375", "tcp://localhost:2375", false),
            (
                "ssh://core@127.0.0.1:52641/run/user/501/podman/podman.sock",
                "ssh://127.0.0.1:52641/run/user/501/podman/podman.sock",
                false,
            ),
            (
                "ssh://me@build.example.org",
                "ssh://build.example.org",
                true,
            ),
            ("tcp://[::1]:2375", "tcp://[::1]:2375", false),
            ("tcp://[2001:db8::5]:2375", "tcp://[2001:db8::5]:2375", true),
        ];
        for (raw, shown, remote) in cases {
            let e = Endpoint::parse(raw).unwrap_or_else(|err| panic!("{raw}: {err}"));
            assert_eq!(e.to_string(), shown, "{raw}");
            assert_eq!(e.is_remote(), remote, "{raw}");
            assert_eq!(e.requires_tls(), shown.starts_with("https://"), "{raw}");
            // What is shown parses back to the same endpoint (facts files replay it).
            assert_eq!(Endpoint::parse(shown), Ok(e), "{raw}");
        }
    }

    #[test]
    fn refuses_malformed_endpoints() {
        for raw in [
            "",
            "docker.sock",
            "ftp://x",
            "tcp://",
            "tcp://h:99999",
            "unix://",
            "tcp://a b:1",
            "ssh://u@/p",
            "tcp://x\n:1",
            // ssh would expand these in `-L <local>:<path>`, or read a port.
            "ssh://h/run/${HOME}/podman.sock",
            "ssh://h/run/$USER/podman.sock",
            "ssh://h/run/%u/podman.sock",
            "ssh://h:22/a:22",
        ] {
            assert!(Endpoint::parse(raw).is_err(), "{raw:?} should be refused");
        }
    }

    /// An endpoint of any length was echoed whole in every message naming it; it is refused,
    /// and the refusal shows at most a capped part of it.
    #[test]
    fn an_overlong_endpoint_is_refused_with_a_short_message() {
        for raw in [
            format!("tcp://{}:1", "a".repeat(120_000)),
            format!("unix:///{}", "a".repeat(2000)),
            format!("ssh://h/{}", "a".repeat(2000)),
        ] {
            let err = Endpoint::parse(&raw)
                .err()
                .unwrap_or_else(|| panic!("an endpoint of {} bytes was taken", raw.len()));
            assert!(err.to_string().len() < 400, "{}", err.to_string().len());
        }
        assert!(Endpoint::parse(&format!("unix:///{}", "a".repeat(900))).is_ok());
    }

    #[test]
    fn credentials_are_never_shown() {
        // Refused or accepted, an endpoint's user information never reaches a message: not the
        // password, and not a lone user part either (it is often a token).
        for raw in [
            "tcp://user:s3cret@host:2375",
            "tcp://user:s3cret@host",
            "https://s3cret@host:2376",
            "tcp://user:s3cret/x@host:2375",
            "ssh://user:s3cret@/run/docker.sock",
            "ssh://user:s3cret@host:99999",
            "tcp://user:s3cret@a b:1",
            "tcp://user:my s3cret@host:1",
            "user:s3cret@host:2375",
        ] {
            let shown = match Endpoint::parse(raw) {
                Ok(e) => e.to_string(),
                Err(e) => e.to_string(),
            };
            assert!(!shown.contains("s3cret"), "{raw}: {shown}");
        }
        let err = Endpoint::parse("tcp://user:s3cret@host:2375")
            .map(|e| e.to_string())
            .unwrap_or_else(|e| e.to_string());
        assert!(err.contains("tcp://xxxxx@host:2375"), "{err}");
        assert!(err.contains("credentials"), "{err}");
        let ssh = Endpoint::parse("ssh://core:s3cret@127.0.0.1:52641/run/podman.sock")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ssh.to_string(), "ssh://127.0.0.1:52641/run/podman.sock");
    }
}
