//! Lenient walk over engine JSON: take what has the right type, note what does not.
//!
//! Engines differ (Docker vs Podman, old vs new) and users paste edited captures, so a field of
//! the wrong type is dropped with a warning instead of failing the document. Strings longer than
//! [`MAX_STRING`] are dropped too: no real fact is that long, and a hostile engine should not be
//! able to make us carry megabytes into error messages.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv6Addr};

use serde_json::{Map, Value};

use crate::addr::{self, AddressError, AddressRole};

use super::{
    Component, Endpoint, FactWarning, Facts, FactsError, HostOs, InfoFacts, LibpodFacts,
    NetworkFacts, Overrides, PingFacts, RootlessHelper, RootlessKitNet, SecurityOption,
    VersionFacts,
};

/// Longest string fact kept.
pub(crate) const MAX_STRING: usize = 4096;
/// Most list entries kept (labels, security options, components).
pub(crate) const MAX_ITEMS: usize = 512;

/// Fields only Podman's Docker-compatible `/info` reports.
const PODMAN_ONLY_INFO_FIELDS: &[&str] = &[
    "BuildahVersion",
    "Rootless",
    "CPURealtimePeriod",
    "CPURealtimeRuntime",
    "SwapFree",
    "SwapTotal",
    "Uptime",
];

/// Collected warnings.
#[derive(Debug, Default)]
pub(crate) struct Warnings(Vec<FactWarning>);

impl Warnings {
    fn push(&mut self, field: impl Into<String>, problem: impl Into<String>) {
        if self.0.len() < MAX_ITEMS {
            self.0.push(FactWarning {
                field: field.into(),
                problem: problem.into(),
            });
        }
    }

    pub(crate) fn into_inner(self) -> Vec<FactWarning> {
        self.0
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An optional sub-object; `null` counts as absent.
fn object<'a>(
    parent: &'a Map<String, Value>,
    key: &str,
    path: &str,
    w: &mut Warnings,
) -> Option<&'a Map<String, Value>> {
    match parent.get(key)? {
        Value::Null => None,
        Value::Object(m) => Some(m),
        other => {
            w.push(
                join(path, key),
                format!("expected an object, found {}", type_name(other)),
            );
            None
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn checked_string(s: &str, field: &str, w: &mut Warnings) -> Option<String> {
    if s.len() > MAX_STRING {
        w.push(
            field,
            format!("{} bytes long, over the {MAX_STRING}-byte limit", s.len()),
        );
        return None;
    }
    Some(s.to_string())
}

fn string(obj: &Map<String, Value>, key: &str, path: &str, w: &mut Warnings) -> Option<String> {
    match obj.get(key)? {
        Value::Null => None,
        Value::String(s) => checked_string(s, &join(path, key), w),
        other => {
            w.push(
                join(path, key),
                format!("expected a string, found {}", type_name(other)),
            );
            None
        }
    }
}

fn boolean(obj: &Map<String, Value>, key: &str, path: &str, w: &mut Warnings) -> Option<bool> {
    match obj.get(key)? {
        Value::Null => None,
        Value::Bool(b) => Some(*b),
        // Some captures are transcribed from text output, where booleans are words.
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        other => {
            w.push(
                join(path, key),
                format!("expected a boolean, found {}", type_name(other)),
            );
            None
        }
    }
}

/// An array of strings; non-string items are dropped with a warning.
fn strings(obj: &Map<String, Value>, key: &str, path: &str, w: &mut Warnings) -> Vec<String> {
    let field = join(path, key);
    match obj.get(key) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            if items.len() > MAX_ITEMS {
                w.push(
                    field.as_str(),
                    format!("{} items, only the first {MAX_ITEMS} kept", items.len()),
                );
            }
            items
                .iter()
                .take(MAX_ITEMS)
                .enumerate()
                .filter_map(|(i, item)| match item {
                    Value::String(s) => checked_string(s, &format!("{field}[{i}]"), w),
                    other => {
                        w.push(
                            format!("{field}[{i}]"),
                            format!("expected a string, found {}", type_name(other)),
                        );
                        None
                    }
                })
                .collect()
        }
        Some(other) => {
            w.push(
                field,
                format!("expected an array, found {}", type_name(other)),
            );
            Vec::new()
        }
    }
}

/// A string-to-string map (labels); other values are dropped with a warning.
fn string_map(
    obj: &Map<String, Value>,
    key: &str,
    path: &str,
    w: &mut Warnings,
) -> BTreeMap<String, String> {
    let field = join(path, key);
    let Some(m) = object(obj, key, path, w) else {
        return BTreeMap::new();
    };
    m.iter()
        .take(MAX_ITEMS)
        .filter_map(|(k, v)| match v {
            Value::String(s) => {
                let item = format!("{field}.{k}");
                Some((checked_string(k, &item, w)?, checked_string(s, &item, w)?))
            }
            other => {
                w.push(
                    format!("{field}.{k}"),
                    format!("expected a string, found {}", type_name(other)),
                );
                None
            }
        })
        .collect()
}

/// Parses a whole facts document.
pub(crate) fn facts(value: &Value) -> Result<Facts, FactsError> {
    let Value::Object(root) = value else {
        return Err(FactsError::NotAnObject {
            field: "(document)".into(),
            found: type_name(value),
        });
    };
    let mut w = Warnings::default();
    let info_value = match root.get("info") {
        None | Some(Value::Null) => return Err(FactsError::MissingInfo),
        Some(v @ Value::Object(_)) => v,
        Some(other) => {
            return Err(FactsError::NotAnObject {
                field: "info".into(),
                found: type_name(other),
            })
        }
    };
    let host_os = string(root, "host_os", "", &mut w).map(|s| HostOs::parse(&s));
    let endpoint = match string(root, "endpoint", "", &mut w) {
        Some(s) => Some(Endpoint::parse(&s).map_err(|e| FactsError::Invalid {
            field: "endpoint".into(),
            problem: e.to_string(),
        })?),
        None => None,
    };
    let host_ipv4 = match string(root, "host_ipv4", "", &mut w) {
        Some(s) => match addr::parse_for(&s, AddressRole::HostPrimary) {
            Ok(IpAddr::V4(v4)) => Some(v4),
            Ok(IpAddr::V6(_)) => {
                return Err(FactsError::Invalid {
                    field: "host_ipv4".into(),
                    problem: format!(
                        "{} is IPv6; host_ipv4 takes the IPv4 default-route source",
                        crate::evidence::display_value(&s)
                    ),
                })
            }
            // The host's address cannot be its primary one: dropped, so that the runtimes that
            // route through it refuse for want of `host_ipv4`, and the others are unaffected.
            Err(unfit @ AddressError::Unfit { .. }) => {
                w.push("host_ipv4", unfit.to_string());
                None
            }
            Err(source) => {
                return Err(FactsError::Address {
                    field: "host_ipv4".into(),
                    source,
                })
            }
        },
        None => None,
    };
    let ping = object(root, "ping", "", &mut w).map(|m| ping(m, &mut w));
    let version = object(root, "version", "", &mut w).map(|m| version(m, &mut w));
    let info = info(info_value, &mut w);
    let network = object(root, "network", "", &mut w).map(|m| network(m, &mut w));
    let libpod = object(root, "libpod_info", "", &mut w).map(|m| libpod(m, &mut w));
    let overrides = match object(root, "overrides", "", &mut w) {
        Some(m) => overrides(m)?,
        None => Overrides::default(),
    };
    Ok(Facts {
        host_os,
        endpoint,
        host_ipv4,
        ping,
        version,
        info,
        network,
        libpod,
        overrides,
        warnings: w.into_inner(),
    })
}

fn ping(m: &Map<String, Value>, w: &mut Warnings) -> PingFacts {
    let headers = m
        .iter()
        .take(MAX_ITEMS)
        .filter_map(|(k, v)| {
            let field = format!("ping.{k}");
            let value = match v {
                Value::String(s) => s.as_str(),
                // Some HTTP libraries print repeated headers as arrays.
                Value::Array(a) => a.first().and_then(Value::as_str)?,
                other => {
                    w.push(
                        field,
                        format!("expected a string, found {}", type_name(other)),
                    );
                    return None;
                }
            };
            Some((
                checked_string(k, &field, w)?.to_ascii_lowercase(),
                checked_string(value, &field, w)?,
            ))
        })
        .collect();
    PingFacts { headers }
}

fn version(m: &Map<String, Value>, w: &mut Warnings) -> VersionFacts {
    let p = "version";
    let components = match m.get("Components") {
        Some(Value::Array(items)) => items
            .iter()
            .take(MAX_ITEMS)
            .enumerate()
            .filter_map(|(i, item)| {
                let path = format!("version.Components[{i}]");
                let Value::Object(c) = item else {
                    w.push(
                        path,
                        format!("expected an object, found {}", type_name(item)),
                    );
                    return None;
                };
                Some(Component {
                    name: string(c, "Name", &path, w)?,
                    version: string(c, "Version", &path, w),
                    details: string_map(c, "Details", &path, w),
                })
            })
            .collect(),
        None | Some(Value::Null) => Vec::new(),
        Some(other) => {
            w.push(
                "version.Components",
                format!("expected an array, found {}", type_name(other)),
            );
            Vec::new()
        }
    };
    let rootlesskit_net = components
        .iter()
        .find(|c| c.name.eq_ignore_ascii_case("rootlesskit"))
        .and_then(|c| c.detail("NetworkDriver"))
        .map(RootlessKitNet::parse);
    VersionFacts {
        rootlesskit_net,
        version: string(m, "Version", p, w),
        api_version: string(m, "ApiVersion", p, w),
        os: string(m, "Os", p, w),
        kernel_version: string(m, "KernelVersion", p, w),
        platform_name: object(m, "Platform", p, w)
            .and_then(|pl| string(pl, "Name", "version.Platform", w)),
        components,
    }
}

/// Parses an `/info` body; `value` must be an object or an empty default is returned.
pub(crate) fn info(value: &Value, w: &mut Warnings) -> InfoFacts {
    let Value::Object(m) = value else {
        w.push(
            "info",
            format!("expected an object, found {}", type_name(value)),
        );
        return InfoFacts::default();
    };
    let p = "info";
    let labels = strings(m, "Labels", p, w)
        .into_iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (l, String::new()),
        })
        .collect();
    let security_options = strings(m, "SecurityOptions", p, w)
        .into_iter()
        .map(|raw| {
            let name = raw
                .split(',')
                .find_map(|kv| kv.strip_prefix("name="))
                .unwrap_or(raw.as_str())
                .to_string();
            SecurityOption { name, raw }
        })
        .collect();
    InfoFacts {
        id: string(m, "ID", p, w),
        name: string(m, "Name", p, w),
        operating_system: string(m, "OperatingSystem", p, w),
        os_type: string(m, "OSType", p, w),
        kernel_version: string(m, "KernelVersion", p, w),
        server_version: string(m, "ServerVersion", p, w),
        architecture: string(m, "Architecture", p, w),
        docker_root_dir: string(m, "DockerRootDir", p, w),
        labels,
        security_options,
        http_proxy: string(m, "HttpProxy", p, w),
        rootless: boolean(m, "Rootless", p, w),
        podman_only_fields: PODMAN_ONLY_INFO_FIELDS
            .iter()
            .copied()
            .filter(|f| m.contains_key(*f))
            .collect(),
    }
}

/// A bridge gateway fact. One that is no address, or that no bridge of this host can have
/// (a wildcard, loopback, multicast...), is dropped with a warning: the runtime then refuses for
/// want of a gateway, naming the fact, instead of routing to it.
fn gateway(raw: Option<String>, field: &str, w: &mut Warnings) -> Option<IpAddr> {
    let raw = raw?;
    if raw.trim().is_empty() {
        return None;
    }
    match addr::parse_for(&raw, AddressRole::BridgeGateway) {
        Ok(ip) => Some(ip),
        Err(problem) => {
            w.push(field, problem.to_string());
            None
        }
    }
}

pub(crate) fn network(m: &Map<String, Value>, w: &mut Warnings) -> NetworkFacts {
    let p = "network";
    // Docker's shape: IPAM.Config[].Gateway. Libpod's: subnets[].gateway.
    let mut gateways = Vec::new();
    let mut collect = |items: Option<&Value>, path: &str, key: &str, w: &mut Warnings| {
        let Some(Value::Array(items)) = items else {
            return;
        };
        for (i, item) in items.iter().take(MAX_ITEMS).enumerate() {
            if let Value::Object(c) = item {
                let path = format!("{path}[{i}]");
                let raw = string(c, key, &path, w);
                if let Some(ip) = gateway(raw, &join(&path, key), w) {
                    gateways.push(ip);
                }
            }
        }
    };
    if let Some(ipam) = object(m, "IPAM", p, w) {
        collect(ipam.get("Config"), "network.IPAM.Config", "Gateway", w);
    }
    collect(m.get("subnets"), "network.subnets", "gateway", w);
    let ipv4_gateway = gateways.iter().find_map(|ip| match ip {
        IpAddr::V4(v4) => Some(*v4),
        IpAddr::V6(_) => None,
    });
    let ipv6_gateway: Option<Ipv6Addr> = gateways.iter().find_map(|ip| match ip {
        IpAddr::V6(v6) => Some(*v6),
        IpAddr::V4(_) => None,
    });
    let mut labels = string_map(m, "Labels", p, w);
    labels.extend(string_map(m, "labels", p, w));
    NetworkFacts {
        name: string(m, "Name", p, w).or_else(|| string(m, "name", p, w)),
        driver: string(m, "Driver", p, w).or_else(|| string(m, "driver", p, w)),
        ipv4_gateway,
        ipv6_gateway,
        labels,
    }
}

fn libpod(m: &Map<String, Value>, w: &mut Warnings) -> LibpodFacts {
    let host = object(m, "host", "libpod_info", w);
    let ver = object(m, "version", "libpod_info", w);
    let hp = "libpod_info.host";
    let mut out = LibpodFacts {
        version: ver.and_then(|v| string(v, "Version", "libpod_info.version", w)),
        ..LibpodFacts::default()
    };
    if let Some(h) = host {
        out.rootless = object(h, "security", hp, w)
            .and_then(|s| boolean(s, "rootless", "libpod_info.host.security", w));
        out.rootless_network_cmd =
            string(h, "rootlessNetworkCmd", hp, w).map(|s| RootlessHelper::parse(&s));
        out.network_backend = string(h, "networkBackend", hp, w);
        out.hostname = string(h, "hostname", hp, w);
        out.kernel = string(h, "kernel", hp, w);
        if let Some(d) = object(h, "distribution", hp, w) {
            let dp = "libpod_info.host.distribution";
            out.distribution = string(d, "distribution", dp, w);
            out.distribution_variant = string(d, "variant", dp, w);
        }
        out.remote_socket = object(h, "remoteSocket", hp, w)
            .and_then(|r| string(r, "path", "libpod_info.host.remoteSocket", w));
        out.service_is_remote = boolean(h, "serviceIsRemote", hp, w);
        out.has_pasta = object(h, "pasta", hp, w).is_some_and(|p| !p.is_empty());
        out.has_slirp4netns = object(h, "slirp4netns", hp, w).is_some_and(|s| !s.is_empty());
        out.container_root_host_id = object(h, "idMappings", hp, w).and_then(|m| {
            ["uidmap", "gidmap"]
                .into_iter()
                .find_map(|k| container_root(m, k, w))
        });
    }
    out
}

/// The `host_id` of the entry with `container_id` 0 in `libpod_info.host.idMappings.<key>`
/// (`null` or absent: none). Entries of the wrong shape are skipped with a warning.
fn container_root(m: &Map<String, Value>, key: &str, w: &mut Warnings) -> Option<u64> {
    let field = format!("libpod_info.host.idMappings.{key}");
    let items = match m.get(key)? {
        Value::Array(items) => items,
        Value::Null => return None,
        other => {
            w.push(
                field,
                format!("expected an array, found {}", type_name(other)),
            );
            return None;
        }
    };
    items.iter().take(MAX_ITEMS).find_map(|item| {
        let id = |k: &str| item.get(k).and_then(Value::as_u64);
        match (id("container_id"), id("host_id")) {
            (Some(0), Some(host)) => Some(host),
            (Some(_), Some(_)) => None,
            _ => {
                w.push(
                    field.as_str(),
                    "expected objects with numeric container_id and host_id",
                );
                None
            }
        }
    })
}

fn overrides(m: &Map<String, Value>) -> Result<Overrides, FactsError> {
    let ip = |key: &str, role: AddressRole| -> Result<Option<IpAddr>, FactsError> {
        match m.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => {
                addr::parse_for(s, role)
                    .map(Some)
                    .map_err(|source| FactsError::Address {
                        field: format!("overrides.{key}"),
                        source,
                    })
            }
            Some(other) => Err(FactsError::Invalid {
                field: format!("overrides.{key}"),
                problem: format!("expected an IP address string, found {}", type_name(other)),
            }),
        }
    };
    let flag = |key: &str| -> Result<Option<bool>, FactsError> {
        match m.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(FactsError::Invalid {
                field: format!("overrides.{key}"),
                problem: format!("expected true or false, found {}", type_name(other)),
            }),
        }
    };
    if let Some(unknown) = m
        .keys()
        .find(|k| !["host_gateway_ip", "bind", "rootless_host_loopback"].contains(&k.as_str()))
    {
        return Err(FactsError::Invalid {
            field: format!("overrides.{}", crate::evidence::display_value(unknown)),
            problem: "unknown setting; known: host_gateway_ip, bind, rootless_host_loopback".into(),
        });
    }
    Ok(Overrides {
        // Loopback passes here (it is right with host networking on native engines); `resolve`
        // refuses it for a bridge, where it is the sandbox's own.
        host_gateway_ip: ip("host_gateway_ip", AddressRole::HostNetworkTarget)?,
        bind: ip("bind", AddressRole::OperatorBind)?,
        rootless_host_loopback: flag("rootless_host_loopback")?,
        ..Overrides::default()
    })
}
