//! The operator's settings, from flags, `OPENSHELL_*` environment variables and OpenShell's
//! `gateway.toml`, with precedence flag > env > file > the facts file's own `overrides`.
//!
//! The environment and the file are read through parameters so tests can fake them. The file
//! is read with a size cap, and its likely mistakes come back as [`ConfigWarning`]s.

mod keys;
mod lint;

use std::io::Read as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use openshell_runtime::addr::{check, parse_for, AddressError, AddressRole};
use openshell_runtime::{EngineKind, NetworkMode, Overrides, RouteKindChoice};
use serde::Serialize;

#[cfg(test)]
pub(crate) use keys::KEYS;
pub(crate) use lint::ConfigWarning;

use keys::Stage;

/// Largest gateway.toml read: a real one is a few hundred bytes.
pub(crate) const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// The name sandboxes call: an endpoint with this host leaves the address to the policy.
const OPENSHELL_HOST: &str = openshell_runtime::consts::OPENSHELL_HOST;

/// Where a setting came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Setting<T> {
    /// The value.
    pub(crate) value: T,
    /// Its source, e.g. `--bind` or `OPENSHELL_BIND_ADDRESS`.
    pub(crate) source: String,
}

/// Settings after precedence.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Settings {
    /// Container-side address.
    pub(crate) host_gateway_ip: Option<Setting<IpAddr>>,
    /// Gateway bind address.
    pub(crate) bind: Option<Setting<IpAddr>>,
    /// Gateway port (from a bind address that carries one).
    pub(crate) port: Option<Setting<u16>>,
    /// The rootless network helper maps 10.0.2.2 to the host's loopback.
    pub(crate) rootless_host_loopback: Option<Setting<bool>>,
    /// Likely mistakes in gateway.toml that were ignored.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) warnings: Vec<ConfigWarning>,
    /// Where sandboxes run (bridge when unset).
    pub(crate) network_mode: Option<Setting<NetworkMode>>,
    /// Whose `[openshell.drivers.<driver>]` table was read: `docker` or `podman`.
    pub(crate) driver: Option<Setting<String>>,
    /// The gateway endpoint sandboxes dial, as configured (`grpc_endpoint`).
    pub(crate) grpc_endpoint: Option<Setting<String>>,
    /// Sandboxes reach the gateway over TLS (an `https` endpoint).
    pub(crate) tls: Option<Setting<bool>>,
    /// Which kinds of route may be chosen (auto when unset).
    pub(crate) route_kind: Option<Setting<RouteKindChoice>>,
    /// LAN-facing binds allowed.
    pub(crate) allow_lan: Option<Setting<bool>>,
}

/// A setting that could not be used; exit code 2.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    /// The file could not be read or parsed.
    #[error("{}: {problem}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        problem: String,
    },
    /// An address cannot be parsed, or cannot serve as what it is set for.
    #[error("{origin}: {source}")]
    Address {
        /// Where it came from.
        origin: String,
        /// What is wrong with it.
        #[source]
        source: AddressError,
    },
    /// A value is invalid.
    #[error("{origin}: {problem}")]
    Value {
        /// Where it came from.
        origin: String,
        /// What is wrong.
        problem: String,
    },
}

/// The flags that feed settings.
#[derive(Debug, Clone, Default)]
pub(crate) struct Flags {
    /// `--host-gateway-ip`.
    pub(crate) host_gateway_ip: Option<String>,
    /// `--bind`.
    pub(crate) bind: Option<String>,
    /// `--rootless-host-loopback`.
    pub(crate) rootless_host_loopback: bool,
    /// `--network-mode`.
    pub(crate) network_mode: Option<NetworkMode>,
    /// The driver that talks to the live engine, with where that came from (`--driver`):
    /// it picks the driver table over the configured driver.
    pub(crate) driver: Option<(String, String)>,
    /// `--route-kind`.
    pub(crate) route_kind: Option<RouteKindChoice>,
    /// `--allow-lan`.
    pub(crate) allow_lan: bool,
}

/// Reads the config file, at most [`MAX_CONFIG_BYTES`] of it (`--config /dev/zero` must not
/// fill memory). A missing file is `NotFound`, as from [`std::fs::read_to_string`].
pub(crate) fn read_config(path: &Path) -> std::io::Result<String> {
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("it is over {MAX_CONFIG_BYTES} bytes, and a gateway.toml is a few lines"),
        ));
    }
    Ok(text)
}

/// The default location of OpenShell's gateway config.
pub(crate) fn default_config_path(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(xdg) = env("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        return Some(Path::new(&xdg).join("openshell/gateway.toml"));
    }
    env("HOME").map(|h| Path::new(&h).join(".config/openshell/gateway.toml"))
}

/// `raw` as one of a setting's words (`parse` knows them), or the error that says which
/// words there are (`expected`).
fn word<T>(
    raw: &str,
    source: &str,
    parse: fn(&str) -> Option<T>,
    expected: &str,
) -> Result<Setting<T>, ConfigError> {
    parse(raw)
        .map(|value| Setting {
            value,
            source: source.to_string(),
        })
        .ok_or_else(|| ConfigError::Value {
            origin: source.to_string(),
            problem: format!("{} is {expected}", openshell_runtime::display_value(raw)),
        })
}

fn route_kind(raw: &str, source: &str) -> Result<Setting<RouteKindChoice>, ConfigError> {
    word(
        raw,
        source,
        RouteKindChoice::parse,
        "not auto, direct or relay",
    )
}

fn network_mode(raw: &str, source: &str) -> Result<Setting<NetworkMode>, ConfigError> {
    word(raw, source, NetworkMode::parse, "neither bridge nor host")
}

/// The container-side address, in canonical form and fit for that role.
fn ip(raw: &str, source: &str) -> Result<Setting<IpAddr>, ConfigError> {
    // Loopback passes here: it is right for host-network sandboxes on native engines, and the
    // decision, which knows the network mode, refuses it for a bridge.
    parse_for(raw, AddressRole::HostNetworkTarget)
        .map(|value| Setting {
            value,
            source: source.to_string(),
        })
        .map_err(|e| ConfigError::Address {
            origin: source.to_string(),
            source: e,
        })
}

/// Parses `IP`, `IP:PORT` or `[IPv6]:PORT` into a canonical bind address the operator chose (a
/// wildcard is allowed, and then reported as such) and a port other than 0.
fn bind_address(
    raw: &str,
    source: &str,
) -> Result<(Setting<IpAddr>, Option<Setting<u16>>), ConfigError> {
    let bad = |problem: String| ConfigError::Value {
        origin: source.to_string(),
        problem,
    };
    let raw = raw.trim();
    let (ip, port) = match raw.parse::<std::net::SocketAddr>() {
        Ok(sa) if sa.port() == 0 => {
            return Err(bad(format!(
                "{} has port 0; give the gateway's port (1-65535)",
                openshell_runtime::display_value(raw)
            )))
        }
        Ok(sa) => (sa.ip(), Some(sa.port())),
        Err(_) => match raw.parse::<IpAddr>() {
            Ok(ip) => (ip, None),
            Err(_) => {
                return Err(bad(format!(
                    "{} is neither IP nor IP:PORT",
                    openshell_runtime::display_value(raw)
                )))
            }
        },
    };
    let value = check(ip, AddressRole::OperatorBind).map_err(|e| ConfigError::Address {
        origin: source.to_string(),
        source: e,
    })?;
    Ok((
        Setting {
            value,
            source: source.into(),
        },
        port.map(|value| Setting {
            value,
            source: source.into(),
        }),
    ))
}

/// `scheme://host[:port][/path]` split into whether it is TLS, the host, and the port.
fn parse_endpoint(raw: &str, source: &str) -> Result<(bool, String, u16), ConfigError> {
    let bad = |problem: &str| ConfigError::Value {
        origin: source.to_string(),
        problem: format!(
            "{} {problem}; give http://HOST:PORT or https://HOST:PORT",
            openshell_runtime::display_value(raw)
        ),
    };
    let (scheme, rest) = raw
        .trim()
        .split_once("://")
        .ok_or_else(|| bad("has no scheme"))?;
    let tls = match scheme.to_ascii_lowercase().as_str() {
        "http" => false,
        "https" => true,
        _ => return Err(bad("is neither http nor https")),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(ConfigError::Value {
            origin: source.to_string(),
            problem: "carries user information, which a gateway endpoint has none of; give http://HOST:PORT or https://HOST:PORT".into(),
        });
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, tail) = v6.split_once(']').ok_or_else(|| bad("has an unclosed ["))?;
        (h, tail.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            _ => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    let port = match port {
        None => {
            if tls {
                443
            } else {
                80
            }
        }
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad("has no port in 1-65535"))?,
    };
    Ok((tls, host.to_string(), port))
}

/// Lays an explicit gateway endpoint over `s`: its scheme sets TLS, its port the gateway port,
/// and a literal address (or `localhost`) the container-side address. `host.openshell.internal`
/// leaves the address to the policy.
fn apply_endpoint(
    s: &mut Settings,
    raw: &str,
    source: &str,
    driver: &str,
    mode: NetworkMode,
) -> Result<(), ConfigError> {
    let (tls, host, port) = parse_endpoint(raw, source)?;
    fn at<T>(value: T, source: &str) -> Option<Setting<T>> {
        Some(Setting {
            value,
            source: source.to_string(),
        })
    }
    s.grpc_endpoint = at(raw.to_string(), source);
    s.tls = at(tls, source);
    // OpenShell's Docker driver (whose sandboxes are always on a bridge) rewrites the endpoint
    // to host.openshell.internal:<gateway port>, so there only the scheme reaches the sandbox.
    if driver == "docker" && mode == NetworkMode::Bridge {
        s.warnings.push(ConfigWarning {
            origin: source.to_string(),
            problem: format!(
                "OpenShell's Docker driver replaces {}:{port} with {OPENSHELL_HOST}:<gateway port> for bridge sandboxes; only the scheme is used",
                openshell_runtime::display_value(&host)
            ),
        });
        return Ok(());
    }
    s.port = at(port, source);
    if host.eq_ignore_ascii_case(OPENSHELL_HOST) {
        return Ok(());
    }
    let literal = if host.eq_ignore_ascii_case("localhost") {
        "127.0.0.1"
    } else {
        host.as_str()
    };
    if literal.parse::<IpAddr>().is_ok() {
        let endpoint_ip = ip(literal, source)?;
        // The endpoint is what sandboxes dial, so it decides; a different host_gateway_ip
        // would only have mapped the name, which they then never use.
        if let Some(h) = s
            .host_gateway_ip
            .as_ref()
            .filter(|h| h.value != endpoint_ip.value)
        {
            s.warnings.push(ConfigWarning {
                origin: source.to_string(),
                problem: format!(
                    "its address {} replaces host_gateway_ip {} from {}: sandboxes dial the endpoint",
                    endpoint_ip.value, h.value, h.source
                ),
            });
        }
        s.host_gateway_ip = Some(endpoint_ip);
    } else {
        s.warnings.push(ConfigWarning {
            origin: source.to_string(),
            problem: format!(
                "the host {} is a name sandboxes resolve themselves, so the route is not checked against it; use an IP address, or {OPENSHELL_HOST} to let the policy decide",
                openshell_runtime::display_value(&host)
            ),
        });
    }
    Ok(())
}

/// Gathers settings with precedence flag > env > file ([`keys::resolve`], for every setting of
/// [`keys::KEYS`]). `config` is the file's path and text when there is one; the driver table
/// read is the live driver's (`flags.driver`), else the file's configured driver, else
/// `engine`'s family.
pub(crate) fn gather(
    flags: &Flags,
    env: &dyn Fn(&str) -> Option<String>,
    config: Option<(&Path, &str)>,
    engine: EngineKind,
) -> Result<Settings, ConfigError> {
    let doc = match config {
        Some((path, text)) => Some((
            text.parse::<toml::Table>()
                .map_err(|e: toml::de::Error| ConfigError::File {
                    path: path.to_path_buf(),
                    problem: e.message().to_string(),
                })?,
            path.display().to_string(),
        )),
        None => None,
    };
    let sources = keys::Sources {
        flags,
        env,
        file: doc.as_ref().map(|(doc, shown)| (doc, shown.as_str())),
    };
    let mut s = Settings {
        warnings: sources
            .file
            .map(|(doc, shown)| lint::lint(doc, shown))
            .unwrap_or_default(),
        ..Settings::default()
    };
    let mut cx = keys::Cx {
        driver: String::new(),
        mode: NetworkMode::Bridge,
    };
    keys::resolve(Stage::Driver, &sources, &cx, &mut s)?;
    let driver = container_driver(s.driver.take(), engine, &mut s.warnings);
    cx.driver.clone_from(&driver.value);
    s.driver = Some(driver);
    keys::resolve(Stage::Mode, &sources, &cx, &mut s)?;
    cx.mode = s
        .network_mode
        .as_ref()
        .map_or(NetworkMode::Bridge, |m| m.value);
    keys::resolve(Stage::Rest, &sources, &cx, &mut s)?;
    Ok(s)
}

/// The driver whose table is read: the one chosen, when it is a container driver; else, with
/// a note when one was configured, `engine`'s family.
fn container_driver(
    chosen: Option<Setting<String>>,
    engine: EngineKind,
    notes: &mut Vec<ConfigWarning>,
) -> Setting<String> {
    let family = Setting {
        value: match engine {
            EngineKind::Docker => "docker",
            EngineKind::Podman => "podman",
        }
        .to_string(),
        source: "engine family".to_string(),
    };
    match chosen {
        Some(c) if keys::DRIVERS.contains(&c.value.as_str()) => c,
        Some(c) => {
            notes.push(ConfigWarning {
                origin: c.source.clone(),
                problem: format!(
                    "{} is not a container driver this tool decides for; reading [openshell.drivers.{}] by engine family",
                    openshell_runtime::display_value(&c.value),
                    family.value
                ),
            });
            family
        }
        None => family,
    }
}

fn bool_value(v: &str, origin: &str) -> Result<bool, ConfigError> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" => Ok(false),
        _ => Err(ConfigError::Value {
            origin: origin.into(),
            problem: format!(
                "{} is not true or false",
                openshell_runtime::display_value(v)
            ),
        }),
    }
}

impl Settings {
    /// Lays these settings over the facts file's own overrides.
    pub(crate) fn apply(&self, overrides: &mut Overrides) {
        for key in keys::KEYS {
            (key.overrides)(self, overrides);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const ENV_HOST_GATEWAY_IP: &str = "OPENSHELL_HOST_GATEWAY_IP";
    const ENV_ROOTLESS_HOST_LOOPBACK: &str = "OPENSHELL_ROOTLESS_HOST_LOOPBACK";
    const ENV_BIND_ADDRESS: &str = "OPENSHELL_BIND_ADDRESS";
    const ENV_NETWORK_MODE: &str = "OPENSHELL_NETWORK_MODE";

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    const FILE: &str = r#"
[openshell.gateway]
bind_address = "0.0.0.0:17670"

[openshell.drivers.docker]
host_gateway_ip = "192.168.127.254"

[openshell.drivers.podman]
host_gateway_ip = "10.88.0.1"
"#;

    #[test]
    fn network_mode_is_flag_then_env_then_driver_table() {
        let path = Path::new("/cfg/gateway.toml");
        let file = "[openshell.drivers.podman]\nsandbox_network_mode = \"host\"\n";
        let mode = |flags: &Flags, env: &[(&str, &str)], kind| {
            gather(flags, &env_of(env), Some((path, file)), kind)
                .unwrap_or_else(|e| panic!("{e}"))
                .network_mode
                .map(|m| (m.value, m.source))
        };
        let none = Flags::default();
        assert_eq!(
            mode(&none, &[], EngineKind::Podman),
            Some((
                NetworkMode::Host,
                "/cfg/gateway.toml: [openshell.drivers.podman] sandbox_network_mode".into()
            ))
        );
        assert_eq!(mode(&none, &[], EngineKind::Docker), None);
        let env = [(ENV_NETWORK_MODE, "bridge")];
        assert_eq!(
            mode(&none, &env, EngineKind::Podman),
            Some((NetworkMode::Bridge, ENV_NETWORK_MODE.into()))
        );
        let flags = Flags {
            network_mode: Some(NetworkMode::Host),
            ..Flags::default()
        };
        assert_eq!(
            mode(&flags, &env, EngineKind::Podman),
            Some((NetworkMode::Host, "--network-mode".into()))
        );
        let bad = [(ENV_NETWORK_MODE, "container:x")];
        assert!(gather(&none, &env_of(&bad), None, EngineKind::Docker).is_err());
    }

    #[test]
    fn precedence_is_flag_then_env_then_file() {
        let path = Path::new("/cfg/gateway.toml");
        let file_only = gather(
            &Flags::default(),
            &env_of(&[]),
            Some((path, FILE)),
            EngineKind::Docker,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            file_only
                .host_gateway_ip
                .as_ref()
                .map(|s| s.value.to_string())
                .as_deref(),
            Some("192.168.127.254")
        );
        assert_eq!(
            file_only
                .bind
                .as_ref()
                .map(|s| s.value.to_string())
                .as_deref(),
            Some("0.0.0.0")
        );
        assert_eq!(file_only.port.as_ref().map(|s| s.value), Some(17670));

        let podman = gather(
            &Flags::default(),
            &env_of(&[]),
            Some((path, FILE)),
            EngineKind::Podman,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            podman
                .host_gateway_ip
                .map(|s| s.value.to_string())
                .as_deref(),
            Some("10.88.0.1")
        );

        let env = env_of(&[
            (ENV_BIND_ADDRESS, "127.0.0.1:18000"),
            (ENV_HOST_GATEWAY_IP, "10.0.0.9"),
        ]);
        let with_env = gather(
            &Flags::default(),
            &env,
            Some((path, FILE)),
            EngineKind::Docker,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            with_env.bind.as_ref().map(|s| s.source.as_str()),
            Some(ENV_BIND_ADDRESS)
        );
        assert_eq!(with_env.port.map(|s| s.value), Some(18000));
        assert_eq!(
            with_env
                .host_gateway_ip
                .map(|s| s.value.to_string())
                .as_deref(),
            Some("10.0.0.9")
        );

        let flags = Flags {
            host_gateway_ip: Some("10.1.1.1".into()),
            bind: Some("10.1.1.1".into()),
            rootless_host_loopback: true,
            network_mode: None,
            driver: None,
            ..Flags::default()
        };
        let with_flags = gather(&flags, &env, Some((path, FILE)), EngineKind::Docker)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            with_flags.rootless_host_loopback.as_ref().map(|s| s.value),
            Some(true)
        );
        let bad = env_of(&[(ENV_ROOTLESS_HOST_LOOPBACK, "maybe")]);
        assert!(gather(&Flags::default(), &bad, None, EngineKind::Docker).is_err());
        assert_eq!(
            with_flags.bind.map(|s| s.source),
            Some("--bind".to_string())
        );
        assert_eq!(
            with_flags.host_gateway_ip.map(|s| s.source),
            Some("--host-gateway-ip".to_string())
        );
    }

    #[test]
    fn invalid_settings_name_their_source() {
        let path = Path::new("/cfg/gateway.toml");
        let bad_file = "[openshell.gateway]\nbind_address = 17670\n";
        let err = gather(
            &Flags::default(),
            &env_of(&[]),
            Some((path, bad_file)),
            EngineKind::Docker,
        );
        assert!(
            matches!(err, Err(ConfigError::Value { ref origin, .. }) if origin.contains("bind_address")),
            "{err:?}"
        );
        let not_toml = "[openshell.gateway\n";
        assert!(matches!(
            gather(
                &Flags::default(),
                &env_of(&[]),
                Some((path, not_toml)),
                EngineKind::Docker
            ),
            Err(ConfigError::File { .. })
        ));
        let env = env_of(&[(ENV_HOST_GATEWAY_IP, "host-gateway")]);
        let err = gather(&Flags::default(), &env, None, EngineKind::Docker);
        assert!(
            matches!(err, Err(ConfigError::Address { ref origin, .. }) if origin == ENV_HOST_GATEWAY_IP),
            "{err:?}"
        );
        // Mapped forms are checked as the IPv4 address they bind: a wildcard is only ever the
        // operator's bind, never the container side.
        let env = env_of(&[(ENV_HOST_GATEWAY_IP, "::ffff:0.0.0.0")]);
        let err = gather(&Flags::default(), &env, None, EngineKind::Docker);
        assert!(
            matches!(
                err,
                Err(ConfigError::Address {
                    source: AddressError::Unfit { .. },
                    ..
                })
            ),
            "{err:?}"
        );
        let env = env_of(&[(ENV_BIND_ADDRESS, "[::ffff:0.0.0.0]:17670")]);
        let s = gather(&Flags::default(), &env, None, EngineKind::Docker)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            s.bind.map(|b| b.value.to_string()).as_deref(),
            Some("0.0.0.0")
        );
        let env = env_of(&[(ENV_BIND_ADDRESS, "127.0.0.1:0")]);
        assert!(gather(&Flags::default(), &env, None, EngineKind::Docker).is_err());
        let flags = Flags {
            bind: Some("localhost:80".into()),
            ..Flags::default()
        };
        assert!(gather(&flags, &env_of(&[]), None, EngineKind::Docker).is_err());
    }

    #[test]
    fn endpoints_split_into_tls_host_and_port() {
        let p = |raw: &str| parse_endpoint(raw, "t").map_err(|e| e.to_string());
        assert_eq!(
            p("http://127.0.0.1:8080"),
            Ok((false, "127.0.0.1".into(), 8080))
        );
        assert_eq!(p("HTTPS://[::1]:9443/x"), Ok((true, "::1".into(), 9443)));
        assert_eq!(
            p("https://host.openshell.internal"),
            Ok((true, "host.openshell.internal".into(), 443))
        );
        assert_eq!(p("http://10.0.0.1"), Ok((false, "10.0.0.1".into(), 80)));
        for bad in [
            "10.0.0.1:80",
            "grpc://x:1",
            "http://:80",
            "http://x:0",
            "http://x:99999",
            "http://[::1:80",
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
        let creds = p("http://user:secret@10.0.0.1:80")
            .err()
            .unwrap_or_default();
        assert!(!creds.contains("secret"), "{creds}");
    }

    #[test]
    fn config_path_follows_xdg() {
        assert_eq!(
            default_config_path(&env_of(&[("XDG_CONFIG_HOME", "/x")])),
            Some(PathBuf::from("/x/openshell/gateway.toml"))
        );
        assert_eq!(
            default_config_path(&env_of(&[("HOME", "/h")])),
            Some(PathBuf::from("/h/.config/openshell/gateway.toml"))
        );
    }
}
