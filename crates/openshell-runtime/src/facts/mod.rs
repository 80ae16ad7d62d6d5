//! What an engine (and the gateway's own host) reported, parsed once into types.
//!
//! Drivers fill [`Facts`] from live engine calls; the CLI and the tests fill it from a facts file
//! (see `docs/facts-format.md`) through [`Facts::from_json`]. Parsing is lenient: unknown fields
//! are ignored, missing ones become `None`, and a field of the wrong type is dropped with a
//! [`FactWarning`] rather than failing the whole document. Only structural problems (no `info`
//! object, an unparseable endpoint, an override that is no address fit for its role) are
//! errors. An address fact that cannot serve its role (a wildcard or multicast bridge gateway, a
//! loopback `host_ipv4`) is dropped with a warning, like a wrong type.

mod endpoint;
mod parse;
mod redact;
mod version;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

use crate::addr::{check, AddressError, AddressRole};
use crate::route::RouteKindChoice;

pub use endpoint::{Endpoint, EndpointError};
pub use redact::{redact_credentials, redact_document, redact_userinfo, MASK};
pub use version::EngineVersion;

/// Everything the policy may look at. Built once at the edge, then only read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// OS of the machine the gateway (and the engine client) runs on, not the engine's VM.
    pub host_os: Option<HostOs>,
    /// How the client reached the engine.
    pub endpoint: Option<Endpoint>,
    /// Primary IPv4 of the gateway host (source address of its default route).
    pub host_ipv4: Option<Ipv4Addr>,
    /// Headers of `GET /_ping`.
    pub ping: Option<PingFacts>,
    /// Body of `GET /version`.
    pub version: Option<VersionFacts>,
    /// Body of `GET /info`: the one required part.
    pub info: InfoFacts,
    /// The sandbox bridge network (`GET /networks/{name}` or libpod's network inspect).
    pub network: Option<NetworkFacts>,
    /// Podman's `GET /libpod/info`, when the engine is Podman.
    pub libpod: Option<LibpodFacts>,
    /// What the operator configured.
    pub overrides: Overrides,
    /// Fields that were present but unusable (wrong type, too long), kept to be shown.
    pub warnings: Vec<FactWarning>,
}

/// OS of the gateway's host.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HostOs {
    /// Linux.
    Linux,
    /// macOS.
    Macos,
    /// Windows.
    Windows,
    /// Anything else, kept verbatim (after sanitising) so errors can name it.
    Other(String),
}

impl HostOs {
    /// Parses the facts-file spelling (`linux`, `macos`, `windows`; `darwin` is accepted too).
    pub fn parse(s: &str) -> HostOs {
        match s.trim().to_ascii_lowercase().as_str() {
            "linux" => HostOs::Linux,
            "macos" | "darwin" | "osx" => HostOs::Macos,
            "windows" => HostOs::Windows,
            _ => HostOs::Other(crate::evidence::display_value(s)),
        }
    }

    /// The facts-file spelling.
    pub fn as_str(&self) -> &str {
        match self {
            HostOs::Linux => "linux",
            HostOs::Macos => "macos",
            HostOs::Windows => "windows",
            HostOs::Other(s) => s,
        }
    }
}

impl fmt::Display for HostOs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Headers of the engine's `/_ping` answer, keys lower-cased.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PingFacts {
    /// All headers, lower-cased names.
    pub headers: BTreeMap<String, String>,
}

impl PingFacts {
    /// A header by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// One entry of `/version`'s `Components`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    /// `Name`, e.g. `Engine` or `Podman Engine`.
    pub name: String,
    /// `Version`.
    pub version: Option<String>,
    /// `Details` (string values only), e.g. RootlessKit's `NetworkDriver`.
    pub details: BTreeMap<String, String>,
}

/// The parts of `/version` the policy uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionFacts {
    /// `Version`.
    pub version: Option<String>,
    /// `ApiVersion`.
    pub api_version: Option<String>,
    /// `Os`.
    pub os: Option<String>,
    /// `KernelVersion`.
    pub kernel_version: Option<String>,
    /// `Platform.Name`.
    pub platform_name: Option<String>,
    /// `Components`.
    pub components: Vec<Component>,
    /// `NetworkDriver` of the `rootlesskit` component (rootless dockerd 23.0 and later).
    pub rootlesskit_net: Option<RootlessKitNet>,
}

impl VersionFacts {
    /// The component called `name` (compared without case).
    pub fn component(&self, name: &str) -> Option<&Component> {
        self.components
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }
}

impl Component {
    /// The `Details` entry called `key` (compared without case).
    pub fn detail(&self, key: &str) -> Option<&str> {
        self.details
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

/// RootlessKit's network driver (`rootlesskit --net`), which rootless dockerd reports as
/// `NetworkDriver` in its `rootlesskit` component of `/version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RootlessKitNet {
    /// slirp4netns (the default when installed).
    Slirp4netns,
    /// VPNKit (the old fallback).
    Vpnkit,
    /// gvisor-tap-vsock (experimental).
    GvisorTapVsock,
    /// pasta (RootlessKit 2.0 and later).
    Pasta,
    /// lxc-user-nic (kernel NAT through a SUID helper).
    LxcUserNic,
    /// Anything else, kept for messages.
    Other(String),
}

impl RootlessKitNet {
    /// Parses `NetworkDriver`.
    pub fn parse(s: &str) -> RootlessKitNet {
        match s.trim() {
            "slirp4netns" => RootlessKitNet::Slirp4netns,
            "vpnkit" => RootlessKitNet::Vpnkit,
            "gvisor-tap-vsock" => RootlessKitNet::GvisorTapVsock,
            "pasta" => RootlessKitNet::Pasta,
            "lxc-user-nic" => RootlessKitNet::LxcUserNic,
            other => RootlessKitNet::Other(crate::evidence::display_value(other)),
        }
    }

    /// The name RootlessKit uses.
    pub fn as_str(&self) -> &str {
        match self {
            RootlessKitNet::Slirp4netns => "slirp4netns",
            RootlessKitNet::Vpnkit => "vpnkit",
            RootlessKitNet::GvisorTapVsock => "gvisor-tap-vsock",
            RootlessKitNet::Pasta => "pasta",
            RootlessKitNet::LxcUserNic => "lxc-user-nic",
            RootlessKitNet::Other(s) => s,
        }
    }
}

/// One `SecurityOptions` entry, e.g. `name=seccomp,profile=default`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityOption {
    /// The `name=` part.
    pub name: String,
    /// Raw text, for evidence.
    pub raw: String,
}

/// The parts of `/info` the policy uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InfoFacts {
    /// `ID`.
    pub id: Option<String>,
    /// `Name`: the engine host's hostname.
    pub name: Option<String>,
    /// `OperatingSystem`.
    pub operating_system: Option<String>,
    /// `OSType`.
    pub os_type: Option<String>,
    /// `KernelVersion`.
    pub kernel_version: Option<String>,
    /// `ServerVersion`.
    pub server_version: Option<String>,
    /// `Architecture`.
    pub architecture: Option<String>,
    /// `DockerRootDir`.
    pub docker_root_dir: Option<String>,
    /// `Labels`, split at the first `=`.
    pub labels: Vec<(String, String)>,
    /// `SecurityOptions`.
    pub security_options: Vec<SecurityOption>,
    /// `HttpProxy` (Docker Desktop reports `http.docker.internal:3128`).
    pub http_proxy: Option<String>,
    /// `Rootless`: only Podman's compat API reports it.
    pub rootless: Option<bool>,
    /// Podman-only fields present in this body (`BuildahVersion`, `Rootless`, ...).
    pub podman_only_fields: Vec<&'static str>,
}

impl InfoFacts {
    /// Whether `SecurityOptions` holds `name=<name>`.
    pub fn has_security_option(&self, name: &str) -> bool {
        self.security_options.iter().any(|o| o.name == name)
    }

    /// The first label whose key is `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The sandbox bridge network as the engine described it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkFacts {
    /// The network's name (`Name`, or libpod's `name`).
    pub name: Option<String>,
    /// Driver (`bridge` for both engines).
    pub driver: Option<String>,
    /// The first IPv4 IPAM gateway: the bridge routes' target and bind.
    pub ipv4_gateway: Option<Ipv4Addr>,
    /// The first IPv6 IPAM gateway, used only when the network has no IPv4 one.
    pub ipv6_gateway: Option<Ipv6Addr>,
    /// The network's labels, as reported (kept for reports; the policy does not read them).
    pub labels: BTreeMap<String, String>,
}

/// Podman's rootless network helper.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RootlessHelper {
    /// pasta (passt), Podman 5's default.
    Pasta,
    /// slirp4netns, Podman 4's default.
    Slirp4netns,
    /// Anything else, kept for the error message.
    Other(String),
}

impl RootlessHelper {
    /// Parses `host.rootlessNetworkCmd`.
    pub fn parse(s: &str) -> RootlessHelper {
        match s.trim() {
            "pasta" | "passt" => RootlessHelper::Pasta,
            "slirp4netns" => RootlessHelper::Slirp4netns,
            other => RootlessHelper::Other(crate::evidence::display_value(other)),
        }
    }

    /// The name Podman uses.
    pub fn as_str(&self) -> &str {
        match self {
            RootlessHelper::Pasta => "pasta",
            RootlessHelper::Slirp4netns => "slirp4netns",
            RootlessHelper::Other(s) => s,
        }
    }
}

/// The parts of libpod's `/info` the policy uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LibpodFacts {
    /// `version.Version`.
    pub version: Option<String>,
    /// `host.security.rootless`.
    pub rootless: Option<bool>,
    /// `host.rootlessNetworkCmd` (Podman 5 and later).
    pub rootless_network_cmd: Option<RootlessHelper>,
    /// `host.networkBackend` (`netavark` or `cni`).
    pub network_backend: Option<String>,
    /// `host.hostname`.
    pub hostname: Option<String>,
    /// `host.kernel`.
    pub kernel: Option<String>,
    /// `host.distribution.distribution`.
    pub distribution: Option<String>,
    /// `host.distribution.variant` (`coreos` on Podman machine images).
    pub distribution_variant: Option<String>,
    /// `host.remoteSocket.path`.
    pub remote_socket: Option<String>,
    /// `host.serviceIsRemote`.
    pub service_is_remote: Option<bool>,
    /// Whether `host.pasta` is described.
    pub has_pasta: bool,
    /// Whether `host.slirp4netns` is described.
    pub has_slirp4netns: bool,
    /// The host id that container root maps to in `host.idMappings` (`uidmap`, else `gidmap`).
    /// Podman fills these mappings only when it runs rootless (rootful: `null`).
    pub container_root_host_id: Option<u64>,
}

/// What the operator configured, already validated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Overrides {
    /// What `host.openshell.internal` must map to inside containers.
    pub host_gateway_ip: Option<IpAddr>,
    /// Which host address the gateway must bind.
    pub bind: Option<IpAddr>,
    /// The rootless network helper maps the host's loopback into containers
    /// (slirp4netns `allow_host_loopback=true`), as the operator configured it.
    pub rootless_host_loopback: Option<bool>,
    /// The operator lets the gateway bind the host's LAN-facing address when no route on
    /// loopback or a bridge exists (otherwise the relay is preferred).
    pub allow_lan: bool,
    /// Which kinds of route the policy may choose.
    pub route_kind: RouteKindChoice,
}

impl Overrides {
    /// These overrides in canonical form, each address checked for its role: `host_gateway_ip`
    /// as the container side, `bind` as the operator's own bind (the one place a wildcard is
    /// allowed). The facts parser and the CLI check as they read; this is for overrides built in
    /// code, and is what `resolve` relies on.
    pub fn checked(&self) -> Result<Overrides, AddressError> {
        self.checked_as(AddressRole::ContainerTarget)
    }

    /// [`checked`](Self::checked), with `host_gateway_ip` checked for `target` (the
    /// host-network target role lets loopback through).
    pub fn checked_as(&self, target: AddressRole) -> Result<Overrides, AddressError> {
        let role = |ip: Option<IpAddr>, role| ip.map(|ip| check(ip, role)).transpose();
        Ok(Overrides {
            host_gateway_ip: role(self.host_gateway_ip, target)?,
            bind: role(self.bind, AddressRole::OperatorBind)?,
            rootless_host_loopback: self.rootless_host_loopback,
            allow_lan: self.allow_lan,
            route_kind: self.route_kind,
        })
    }
}

/// A field that was present but could not be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FactWarning {
    /// Dotted path, e.g. `info.Labels[3]`.
    pub field: String,
    /// What was wrong with it.
    pub problem: String,
}

/// Why a facts document was refused as a whole.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FactsError {
    /// The document is not JSON.
    #[error("facts are not valid JSON: {source}")]
    Json {
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// The document (or a required part) is not an object.
    #[error("`{field}` must be a JSON object, found {found}")]
    NotAnObject {
        /// Which part.
        field: String,
        /// JSON type found instead.
        found: &'static str,
    },
    /// `info` is missing.
    #[error("`info` is missing: it must hold the engine's /info body (`docker info --format '{{{{json .}}}}'`)")]
    MissingInfo,
    /// An address field that must be valid is not, or cannot serve its role.
    #[error("`{field}` is invalid: {source}")]
    Address {
        /// Which field.
        field: String,
        /// What is wrong with the address.
        #[source]
        source: AddressError,
    },
    /// A field that must be valid is not.
    #[error("`{field}` is invalid: {problem}")]
    Invalid {
        /// Which field.
        field: String,
        /// What is wrong, naming the value.
        problem: String,
    },
}

impl Facts {
    /// Parses a facts document (see `docs/facts-format.md`).
    pub fn from_json(text: &str) -> Result<Facts, FactsError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|source| FactsError::Json { source })?;
        Facts::from_value(&value)
    }

    /// Parses an already-decoded facts document.
    pub fn from_value(value: &serde_json::Value) -> Result<Facts, FactsError> {
        parse::facts(value)
    }

    /// Parses an engine's `/info` body alone (the other parts stay empty).
    pub fn info_from_value(value: &serde_json::Value) -> (InfoFacts, Vec<FactWarning>) {
        let mut w = parse::Warnings::default();
        let info = parse::info(value, &mut w);
        (info, w.into_inner())
    }

    /// Parses one network's inspect (or list entry) body alone, in Docker's or libpod's shape.
    pub fn network_from_value(value: &serde_json::Value) -> (NetworkFacts, Vec<FactWarning>) {
        let mut w = parse::Warnings::default();
        let network = match value {
            serde_json::Value::Object(m) => parse::network(m, &mut w),
            _ => NetworkFacts::default(),
        };
        (network, w.into_inner())
    }

    /// The engine's version as reported by `/info` or `/version`.
    pub fn engine_version(&self) -> Option<EngineVersion> {
        // Each source is parsed on its own, so that an empty or unparsable value (Docker
        // Desktop's reduced `/info` reports `ServerVersion: ""`) does not hide the next one.
        let libpod = self.libpod.as_ref().and_then(|l| l.version.as_deref());
        let info = self.info.server_version.as_deref();
        let version = self.version.as_ref().and_then(|v| v.version.as_deref());
        [libpod, info, version]
            .into_iter()
            .flatten()
            .find_map(EngineVersion::parse)
    }
}

/// Parses an IP address setting into canonical form (brackets and a prefix length such as `/24`
/// are accepted; anything else after `/` is not). It checks no role: pass the result to
/// [`addr::check`](crate::addr::check), or use [`addr::parse_for`](crate::addr::parse_for).
pub fn parse_ip(s: &str) -> Result<IpAddr, AddressError> {
    crate::addr::parse(s)
}
