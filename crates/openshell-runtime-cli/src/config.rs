//! The operator's settings, from flags, `OPENSHELL_*` environment variables and OpenShell's
//! `gateway.toml`, with precedence flag > env > file > the facts file's own `overrides`.
//!
//! The environment and the file are read through parameters so tests can fake them. The file
//! is read with a size cap, and its likely mistakes come back as [`ConfigWarning`]s.

mod lint;

use std::io::Read as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use openshell_runtime::addr::{check, parse_for, AddressError, AddressRole};
use openshell_runtime::{EngineKind, NetworkMode, Overrides};
use serde::Serialize;

pub use lint::ConfigWarning;

/// Largest gateway.toml read: a real one is a few hundred bytes.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Environment variable for the container-side address.
pub const ENV_HOST_GATEWAY_IP: &str = "OPENSHELL_HOST_GATEWAY_IP";
/// Environment variable saying the rootless helper maps 10.0.2.2 to the host's loopback
/// (slirp4netns `allow_host_loopback=true`, or RootlessKit with host loopback enabled).
pub const ENV_ROOTLESS_HOST_LOOPBACK: &str = "OPENSHELL_ROOTLESS_HOST_LOOPBACK";
/// Environment variable for the gateway's bind address (`IP` or `IP:PORT`).
pub const ENV_BIND_ADDRESS: &str = "OPENSHELL_BIND_ADDRESS";
/// Environment variable for where sandboxes run: `bridge` or `host`.
pub const ENV_NETWORK_MODE: &str = "OPENSHELL_NETWORK_MODE";

/// Where a setting came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Setting<T> {
    /// The value.
    pub value: T,
    /// Its source, e.g. `--bind` or `OPENSHELL_BIND_ADDRESS`.
    pub source: String,
}

/// Settings after precedence.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Settings {
    /// Container-side address.
    pub host_gateway_ip: Option<Setting<IpAddr>>,
    /// Gateway bind address.
    pub bind: Option<Setting<IpAddr>>,
    /// Gateway port (from a bind address that carries one).
    pub port: Option<Setting<u16>>,
    /// The rootless network helper maps 10.0.2.2 to the host's loopback.
    pub rootless_host_loopback: Option<Setting<bool>>,
    /// Likely mistakes in gateway.toml that were ignored.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<ConfigWarning>,
    /// Where sandboxes run (bridge when unset).
    pub network_mode: Option<Setting<NetworkMode>>,
}

/// A setting that could not be used; exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
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
pub struct Flags {
    /// `--host-gateway-ip`.
    pub host_gateway_ip: Option<String>,
    /// `--bind`.
    pub bind: Option<String>,
    /// `--rootless-host-loopback`.
    pub rootless_host_loopback: bool,
    /// `--network-mode`.
    pub network_mode: Option<NetworkMode>,
}

/// Reads the config file, at most [`MAX_CONFIG_BYTES`] of it (`--config /dev/zero` must not
/// fill memory). A missing file is `NotFound`, as from [`std::fs::read_to_string`].
pub fn read_config(path: &Path) -> std::io::Result<String> {
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
pub fn default_config_path(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(xdg) = env("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        return Some(Path::new(&xdg).join("openshell/gateway.toml"));
    }
    env("HOME").map(|h| Path::new(&h).join(".config/openshell/gateway.toml"))
}

fn network_mode(raw: &str, source: &str) -> Result<Setting<NetworkMode>, ConfigError> {
    NetworkMode::parse(raw)
        .map(|value| Setting {
            value,
            source: source.to_string(),
        })
        .ok_or_else(|| ConfigError::Value {
            origin: source.to_string(),
            problem: format!(
                "{} is neither bridge nor host",
                openshell_runtime::display_value(raw)
            ),
        })
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

/// Reads `[openshell.gateway] bind_address` and `[openshell.drivers.<driver>] host_gateway_ip`.
fn from_file(text: &str, path: &Path, driver: &str) -> Result<Settings, ConfigError> {
    let doc: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::File {
            path: path.to_path_buf(),
            problem: e.message().to_string(),
        })?;
    let shown = path.display().to_string();
    let warnings = lint::lint(&doc, &shown);
    let table = |keys: &[&str]| -> Option<&toml::Table> {
        let mut t = &doc;
        for k in keys {
            t = t.get(*k)?.as_table()?;
        }
        Some(t)
    };
    let string =
        |t: Option<&toml::Table>, key: &str, what: &str| -> Result<Option<String>, ConfigError> {
            match t.and_then(|t| t.get(key)) {
                None => Ok(None),
                Some(toml::Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(ConfigError::Value {
                    origin: format!("{shown}: {what}"),
                    problem: format!("expected a string, found {}", other.type_str()),
                }),
            }
        };
    let mut out = Settings {
        warnings,
        ..Settings::default()
    };
    let gw_key = "[openshell.gateway] bind_address";
    if let Some(b) = string(table(&["openshell", "gateway"]), "bind_address", gw_key)? {
        let (bind, port) = bind_address(&b, &format!("{shown}: {gw_key}"))?;
        out.bind = Some(bind);
        out.port = port;
    }
    let drv_key = format!("[openshell.drivers.{driver}] host_gateway_ip");
    if let Some(h) = string(
        table(&["openshell", "drivers", driver]),
        "host_gateway_ip",
        &drv_key,
    )? {
        out.host_gateway_ip = Some(ip(&h, &format!("{shown}: {drv_key}"))?);
    }
    // Not an OpenShell key (OpenShell has no host-network setting yet): ours, in the driver's
    // table beside host_gateway_ip.
    let mode_key = format!("[openshell.drivers.{driver}] sandbox_network_mode");
    if let Some(m) = string(
        table(&["openshell", "drivers", driver]),
        "sandbox_network_mode",
        &mode_key,
    )? {
        out.network_mode = Some(network_mode(&m, &format!("{shown}: {mode_key}"))?);
    }
    Ok(out)
}

/// Gathers settings with precedence flag > env > file. `config` is the file's path and text
/// when there is one; `engine` picks the driver section of the file.
pub fn gather(
    flags: &Flags,
    env: &dyn Fn(&str) -> Option<String>,
    config: Option<(&Path, &str)>,
    engine: EngineKind,
) -> Result<Settings, ConfigError> {
    let driver = match engine {
        EngineKind::Docker => "docker",
        EngineKind::Podman => "podman",
    };
    let mut s = match config {
        Some((path, text)) => from_file(text, path, driver)?,
        None => Settings::default(),
    };
    if let Some(v) = env(ENV_BIND_ADDRESS).filter(|v| !v.is_empty()) {
        let (bind, port) = bind_address(&v, ENV_BIND_ADDRESS)?;
        s.bind = Some(bind);
        s.port = port.or(s.port);
    }
    if let Some(v) = env(ENV_HOST_GATEWAY_IP).filter(|v| !v.is_empty()) {
        s.host_gateway_ip = Some(ip(&v, ENV_HOST_GATEWAY_IP)?);
    }
    if let Some(v) = env(ENV_ROOTLESS_HOST_LOOPBACK).filter(|v| !v.is_empty()) {
        let value = match v.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" => true,
            "0" | "false" | "no" => false,
            _ => {
                return Err(ConfigError::Value {
                    origin: ENV_ROOTLESS_HOST_LOOPBACK.into(),
                    problem: format!(
                        "{} is not true or false",
                        openshell_runtime::display_value(&v)
                    ),
                })
            }
        };
        s.rootless_host_loopback = Some(Setting {
            value,
            source: ENV_ROOTLESS_HOST_LOOPBACK.into(),
        });
    }
    if let Some(v) = env(ENV_NETWORK_MODE).filter(|v| !v.is_empty()) {
        s.network_mode = Some(network_mode(&v, ENV_NETWORK_MODE)?);
    }
    if let Some(m) = flags.network_mode {
        s.network_mode = Some(Setting {
            value: m,
            source: "--network-mode".into(),
        });
    }
    if flags.rootless_host_loopback {
        s.rootless_host_loopback = Some(Setting {
            value: true,
            source: "--rootless-host-loopback".into(),
        });
    }
    if let Some(v) = &flags.bind {
        s.bind = Some(bind_address(v, "--bind")?.0);
    }
    if let Some(v) = &flags.host_gateway_ip {
        s.host_gateway_ip = Some(ip(v, "--host-gateway-ip")?);
    }
    Ok(s)
}

impl Settings {
    /// Lays these settings over the facts file's own overrides.
    pub fn apply(&self, overrides: &mut Overrides) {
        if let Some(h) = &self.host_gateway_ip {
            overrides.host_gateway_ip = Some(h.value);
        }
        if let Some(b) = &self.bind {
            overrides.bind = Some(b.value);
        }
        if let Some(l) = &self.rootless_host_loopback {
            overrides.rootless_host_loopback = Some(l.value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

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
