//! The one table of operator settings ([`KEYS`]): each setting's name, flag, `OPENSHELL_*`
//! variables and gateway.toml keys, and how a value of it is checked and applied. Reading the
//! environment and the file, `config lint` ([`super::lint`]) and the flag check in `main.rs`'s
//! tests all go through it, and [`resolve`] is the one place the precedence
//! (flag > env > gateway.toml) is written.

use openshell_runtime::{NetworkMode, Overrides};

use super::{
    bind_address, bool_value, ip, network_mode, route_kind, ConfigError, Flags, Setting, Settings,
};

/// The container drivers whose gateway.toml tables we read.
pub(crate) const DRIVERS: &[&str] = &["docker", "podman"];

/// A gateway.toml table a key sits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    /// `[openshell]`.
    OpenShell,
    /// `[openshell.gateway]`.
    Gateway,
    /// `[openshell.drivers.<driver>]`, the table of the driver in use.
    Driver,
}

impl Section {
    /// The dotted path of this section for `driver`, e.g. `openshell.drivers.podman`.
    pub(crate) fn path(self, driver: &str) -> String {
        match self {
            Section::OpenShell => "openshell".into(),
            Section::Gateway => "openshell.gateway".into(),
            Section::Driver => format!("openshell.drivers.{driver}"),
        }
    }
}

/// The TOML type a key's value must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Toml {
    /// A string.
    Str,
    /// A boolean.
    Bool,
    /// A list of strings, of which the first counts (`compute_drivers`).
    FirstOfList,
    /// Any value; the setting checks it.
    Any,
}

/// One gateway.toml key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FileKey {
    /// Its table.
    pub(crate) section: Section,
    /// Its name.
    pub(crate) key: &'static str,
    /// Its type.
    pub(crate) value: Toml,
}

/// One environment variable.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EnvVar {
    /// Its name.
    pub(crate) name: &'static str,
    /// Read only when this driver's table applies (`OPENSHELL_PODMAN_HOST_GATEWAY_IP`).
    pub(crate) driver: Option<&'static str>,
}

/// A value as a source gives it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Raw {
    /// Text: every variable and value flag, and a file's strings.
    Text(String),
    /// A switch flag, or a file's boolean.
    Bool(bool),
    /// A file value of [`Toml::Any`].
    Toml(toml::Value),
}

/// The sources, lowest precedence first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layer {
    /// gateway.toml.
    File,
    /// `OPENSHELL_*` variables.
    Env,
    /// Flags.
    Flag,
}

/// Where a value came from.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    /// E.g. `--bind`, `OPENSHELL_BIND_ADDRESS` or `gateway.toml: [openshell.gateway] bind_address`.
    pub(crate) source: String,
    /// Its layer.
    pub(crate) layer: Layer,
}

/// What the settings read later depend on: the driver whose table is read, and the network
/// mode an endpoint is judged for.
#[derive(Debug, Clone)]
pub(crate) struct Cx {
    /// `docker` or `podman`.
    pub(crate) driver: String,
    /// Where sandboxes run.
    pub(crate) mode: NetworkMode,
}

/// When a setting is resolved: what others depend on goes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// The file's layout and the driver (which table the driver keys come from).
    Driver,
    /// The network mode (how an endpoint applies).
    Mode,
    /// Everything else.
    Rest,
}

/// A flag's value: the raw value, and its source when that is not `--<flag>`.
pub(crate) type FlagValue<'a> = Option<(Raw, Option<&'a str>)>;

/// One operator setting.
pub(crate) struct Key {
    /// Its name (the field of `settings` in `-o json`).
    pub(crate) name: &'static str,
    /// Its flag, without `--`, as `detect` and `doctor` spell it.
    pub(crate) flag: Option<&'static str>,
    /// Its variables; a later one wins.
    pub(crate) env: &'static [EnvVar],
    /// Its gateway.toml keys (both layouts, where there are two); a later one wins.
    pub(crate) file: &'static [FileKey],
    /// When it is resolved.
    pub(crate) stage: Stage,
    /// Its flag's value.
    pub(crate) flag_value: fn(&Flags) -> FlagValue<'_>,
    /// Checks a value and lays it over the settings.
    pub(crate) apply: fn(&mut Settings, &Raw, &Origin, &Cx) -> Result<(), ConfigError>,
    /// Lays the setting in force over the facts file's own overrides.
    pub(crate) overrides: fn(&Settings, &mut Overrides),
}

const fn file(section: Section, key: &'static str, value: Toml) -> FileKey {
    FileKey {
        section,
        key,
        value,
    }
}

const fn env(name: &'static str) -> EnvVar {
    EnvVar { name, driver: None }
}

fn no_flag(_: &Flags) -> FlagValue<'_> {
    None
}

fn no_overrides(_: &Settings, _: &mut Overrides) {}

fn text(v: &Option<String>) -> FlagValue<'_> {
    v.as_ref().map(|v| (Raw::Text(v.clone()), None))
}

fn switch(on: bool) -> FlagValue<'static> {
    on.then_some((Raw::Bool(true), None))
}

/// A value of a text setting. Only text reaches one (the file's type was checked).
fn as_text(raw: &Raw) -> String {
    match raw {
        Raw::Text(t) => t.clone(),
        Raw::Bool(b) => b.to_string(),
        Raw::Toml(v) => v.to_string(),
    }
}

/// A value of a yes/no setting: a switch, a file's boolean or a variable's word.
fn as_bool(raw: &Raw, origin: &Origin) -> Result<bool, ConfigError> {
    match raw {
        Raw::Bool(b) => Ok(*b),
        other => bool_value(&as_text(other), &origin.source),
    }
}

fn at<T>(value: T, origin: &Origin) -> Option<Setting<T>> {
    Some(Setting {
        value,
        source: origin.source.clone(),
    })
}

/// Every operator setting, once. The order is the order values are laid over each other within
/// one layer (an endpoint's address over `host_gateway_ip`), and the order of keys in
/// gateway.toml's sections for `config lint`.
pub(crate) static KEYS: &[Key] = &[
    Key {
        name: "bind",
        flag: Some("bind"),
        env: &[env("OPENSHELL_BIND_ADDRESS")],
        file: &[file(Section::Gateway, "bind_address", Toml::Str)],
        stage: Stage::Rest,
        flag_value: |f| text(&f.bind),
        // `IP:PORT` also sets the port, except on the flag (`--port` is the flag for that).
        apply: |s, raw, o, _| {
            let (bind, port) = bind_address(&as_text(raw), &o.source)?;
            s.bind = Some(bind);
            if o.layer != Layer::Flag {
                s.port = port.or(s.port.take());
            }
            Ok(())
        },
        overrides: |s, o| {
            if let Some(b) = &s.bind {
                o.bind = Some(b.value);
            }
        },
    },
    // The file's layout: checked before anything is read from it.
    Key {
        name: "version",
        flag: None,
        env: &[],
        file: &[file(Section::OpenShell, "version", Toml::Any)],
        stage: Stage::Driver,
        flag_value: no_flag,
        apply: |_, raw, o, _| match raw {
            Raw::Toml(toml::Value::Integer(1 | 2)) => Ok(()),
            other => Err(ConfigError::Value {
                origin: o.source.clone(),
                problem: format!(
                    "{} is not a layout this tool reads (1: compute_drivers, 2: compute_driver)",
                    as_text(other)
                ),
            }),
        },
        overrides: no_overrides,
    },
    // The driver whose table applies: the live engine's driver (the flag), else the file's
    // `compute_driver` (layout 2, not yet released upstream) or first `compute_drivers`
    // (layout 1, what OpenShell releases read), else the engine's family (`gather`).
    Key {
        name: "driver",
        flag: Some("driver"),
        env: &[],
        file: &[
            file(Section::Gateway, "compute_drivers", Toml::FirstOfList),
            file(Section::Gateway, "compute_driver", Toml::Str),
        ],
        stage: Stage::Driver,
        flag_value: |f| {
            f.driver
                .as_ref()
                .map(|(v, source)| (Raw::Text(v.clone()), Some(source.as_str())))
        },
        apply: |s, raw, o, _| {
            s.driver = at(as_text(raw), o);
            Ok(())
        },
        overrides: no_overrides,
    },
    // The gateway's host_gateway_ip is inherited by the driver tables; a driver's own wins.
    Key {
        name: "host_gateway_ip",
        flag: Some("host-gateway-ip"),
        env: &[
            env("OPENSHELL_HOST_GATEWAY_IP"),
            // What OpenShell's Podman driver reads for its host_gateway_ip.
            EnvVar {
                name: "OPENSHELL_PODMAN_HOST_GATEWAY_IP",
                driver: Some("podman"),
            },
        ],
        file: &[
            file(Section::Gateway, "host_gateway_ip", Toml::Str),
            file(Section::Driver, "host_gateway_ip", Toml::Str),
        ],
        stage: Stage::Rest,
        flag_value: |f| text(&f.host_gateway_ip),
        apply: |s, raw, o, _| {
            s.host_gateway_ip = Some(ip(&as_text(raw), &o.source)?);
            Ok(())
        },
        overrides: |s, o| {
            if let Some(h) = &s.host_gateway_ip {
                o.host_gateway_ip = Some(h.value);
            }
        },
    },
    // OpenShell's gateway endpoint for sandboxes: it sets TLS, the port and the address
    // (`apply_endpoint`), over what the same layer set before it.
    Key {
        name: "grpc_endpoint",
        flag: None,
        env: &[env("OPENSHELL_GRPC_ENDPOINT")],
        file: &[file(Section::Driver, "grpc_endpoint", Toml::Str)],
        stage: Stage::Rest,
        flag_value: no_flag,
        apply: |s, raw, o, cx| {
            super::apply_endpoint(s, &as_text(raw), &o.source, &cx.driver, cx.mode)
        },
        overrides: no_overrides,
    },
    // Not an OpenShell key (OpenShell has no host-network setting yet): ours, in the driver's
    // table beside host_gateway_ip.
    Key {
        name: "network_mode",
        flag: Some("network-mode"),
        env: &[env("OPENSHELL_NETWORK_MODE")],
        file: &[file(Section::Driver, "sandbox_network_mode", Toml::Str)],
        stage: Stage::Mode,
        flag_value: |f| {
            f.network_mode
                .map(|m| (Raw::Text(m.as_str().to_string()), None))
        },
        apply: |s, raw, o, _| {
            s.network_mode = Some(network_mode(&as_text(raw), &o.source)?);
            Ok(())
        },
        overrides: no_overrides,
    },
    Key {
        name: "rootless_host_loopback",
        flag: Some("rootless-host-loopback"),
        env: &[env("OPENSHELL_ROOTLESS_HOST_LOOPBACK")],
        file: &[],
        stage: Stage::Rest,
        flag_value: |f| switch(f.rootless_host_loopback),
        apply: |s, raw, o, _| {
            s.rootless_host_loopback = at(as_bool(raw, o)?, o);
            Ok(())
        },
        overrides: |s, o| {
            if let Some(l) = &s.rootless_host_loopback {
                o.rootless_host_loopback = Some(l.value);
            }
        },
    },
    // Ours too (OpenShell has no such settings), gateway-wide.
    Key {
        name: "route_kind",
        flag: Some("route-kind"),
        env: &[env("OPENSHELL_ROUTE_KIND")],
        file: &[file(Section::Gateway, "sandbox_route_kind", Toml::Str)],
        stage: Stage::Rest,
        flag_value: |f| {
            f.route_kind
                .map(|k| (Raw::Text(k.as_str().to_string()), None))
        },
        apply: |s, raw, o, _| {
            s.route_kind = Some(route_kind(&as_text(raw), &o.source)?);
            Ok(())
        },
        overrides: |s, o| {
            if let Some(k) = &s.route_kind {
                o.route_kind = k.value;
            }
        },
    },
    Key {
        name: "allow_lan",
        flag: Some("allow-lan"),
        env: &[env("OPENSHELL_ALLOW_LAN")],
        file: &[file(Section::Gateway, "sandbox_allow_lan", Toml::Bool)],
        stage: Stage::Rest,
        flag_value: |f| switch(f.allow_lan),
        apply: |s, raw, o, _| {
            s.allow_lan = at(as_bool(raw, o)?, o);
            Ok(())
        },
        overrides: |s, o| {
            if let Some(l) = &s.allow_lan {
                o.allow_lan = l.value;
            }
        },
    },
];

/// What the settings are read from.
pub(crate) struct Sources<'a> {
    /// The flags.
    pub(crate) flags: &'a Flags,
    /// The environment.
    pub(crate) env: &'a dyn Fn(&str) -> Option<String>,
    /// The parsed gateway.toml and how it is shown in messages.
    pub(crate) file: Option<(&'a toml::Table, &'a str)>,
}

/// The precedence, once for every setting: each layer, lowest first (gateway.toml, then the
/// environment, then the flags), lays each of `stage`'s settings it gives over what lower
/// layers set, every value checked (an invalid one is an error even where a higher layer
/// would replace it).
pub(crate) fn resolve(
    stage: Stage,
    sources: &Sources<'_>,
    cx: &Cx,
    s: &mut Settings,
) -> Result<(), ConfigError> {
    for layer in [Layer::File, Layer::Env, Layer::Flag] {
        for key in KEYS.iter().filter(|k| k.stage == stage) {
            for (raw, source) in values(key, layer, sources, cx)? {
                (key.apply)(s, &raw, &Origin { source, layer }, cx)?;
            }
        }
    }
    Ok(())
}

/// What `layer` gives for `key`, in order, with each value's source.
fn values(
    key: &Key,
    layer: Layer,
    sources: &Sources<'_>,
    cx: &Cx,
) -> Result<Vec<(Raw, String)>, ConfigError> {
    Ok(match layer {
        Layer::File => match sources.file {
            None => Vec::new(),
            Some((doc, shown)) => {
                let mut out = Vec::new();
                for k in key.file {
                    let origin = format!("{shown}: [{}] {}", k.section.path(&cx.driver), k.key);
                    if let Some(raw) = read(doc, k, &cx.driver, &origin)? {
                        out.push((raw, origin));
                    }
                }
                out
            }
        },
        Layer::Env => key
            .env
            .iter()
            .filter(|v| v.driver.is_none_or(|d| d == cx.driver))
            .filter_map(|v| {
                (sources.env)(v.name)
                    .filter(|value| !value.is_empty())
                    .map(|value| (Raw::Text(value), v.name.to_string()))
            })
            .collect(),
        Layer::Flag => (key.flag_value)(sources.flags)
            .map(|(raw, source)| {
                let source = source.map_or_else(
                    || format!("--{}", key.flag.unwrap_or(key.name)),
                    str::to_string,
                );
                (raw, source)
            })
            .into_iter()
            .collect(),
    })
}

/// The table at a dotted path, when every step is a table.
pub(crate) fn table<'a>(doc: &'a toml::Table, path: &str) -> Option<&'a toml::Table> {
    let mut t = doc;
    for k in path.split('.').filter(|k| !k.is_empty()) {
        t = t.get(k)?.as_table()?;
    }
    Some(t)
}

/// One file key's value, checked for its type; an error names where a value of another
/// type sits.
fn read(
    doc: &toml::Table,
    key: &FileKey,
    driver: &str,
    origin: &str,
) -> Result<Option<Raw>, ConfigError> {
    let Some(value) = table(doc, &key.section.path(driver)).and_then(|t| t.get(key.key)) else {
        return Ok(None);
    };
    let wrong = |expected: &str, found: &toml::Value| ConfigError::Value {
        origin: origin.to_string(),
        problem: format!("expected {expected}, found {}", found.type_str()),
    };
    match (key.value, value) {
        (Toml::Any, v) => Ok(Some(Raw::Toml(v.clone()))),
        (Toml::Str, toml::Value::String(s)) => Ok(Some(Raw::Text(s.clone()))),
        (Toml::Str, other) => Err(wrong("a string", other)),
        (Toml::Bool, toml::Value::Boolean(b)) => Ok(Some(Raw::Bool(*b))),
        (Toml::Bool, other) => Err(wrong("true or false", other)),
        (Toml::FirstOfList, toml::Value::Array(a)) => match a.first() {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(Raw::Text(s.clone()))),
            Some(other) => Err(wrong("driver names", other)),
        },
        (Toml::FirstOfList, other) => Err(wrong("a list of driver names", other)),
    }
}
