//! The engine operations a driver implements, and the plain values they take and give.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use async_trait::async_trait;
use futures_core::stream::BoxStream;
use openshell_runtime::facts::Endpoint;
use openshell_runtime::NetworkMode;
use openshell_transport::Attached;
use serde_json::Value;

use crate::error::OpError;

/// The headers of an engine's `/_ping` answer (names lowercase). Discovery pings the engine it
/// chooses; a driver connected with that answer does not ask again.
pub type PingHeaders = BTreeMap<String, String>;

/// Everything a container is created with. The shared lifecycle (`openshell-sandbox`) fills it
/// from a validated sandbox spec and a [`Route`](openshell_runtime::Route); a driver maps
/// it field by field onto its client's create call and adds nothing of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerConfig {
    /// Container name.
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Command and arguments.
    pub command: Vec<String>,
    /// Environment, in order.
    pub env: Vec<(String, String)>,
    /// Labels, ours included.
    pub labels: BTreeMap<String, String>,
    /// `name:value` extra-hosts entries, already validated.
    pub extra_hosts: Vec<String>,
    /// The bridge network the container joins in [`NetworkMode::Bridge`]; unused in
    /// [`NetworkMode::Host`].
    pub network: String,
    /// Keep stdin open for one attached client, closing it when that client detaches (Docker's
    /// `OpenStdin` + `StdinOnce`, libpod's `stdin`). The relay speaks over it; sandboxes do not.
    pub stdin: bool,
    /// Which network namespace the container gets: a bridge network's, or the engine's host
    /// namespace (Docker `network_mode: host`, libpod `netns: host`). Taken from the route, so
    /// that the sandbox runs where its route was decided for.
    pub network_mode: NetworkMode,
    /// The engine removes the container itself once it exits (Docker's `AutoRemove`, libpod's
    /// `remove`); a container that never starts stays.
    pub auto_remove: bool,
    /// Stopping it sends `SIGKILL` at once (Docker's `StopSignal`, libpod's `stop_signal`): for
    /// our own programs that run as their container's first process with no `SIGTERM` handler
    /// (the relay, the probe), which the kernel would otherwise let sit out the engine's whole
    /// stop timeout (10 s) on every stop or forced removal.
    pub kill_on_stop: bool,
    /// Host directories bind-mounted into the container (Docker's `Binds`, libpod's `mounts`).
    /// The relay gets the gateway's socket directory this way (docs/relay.md).
    pub binds: Vec<BindMount>,
    /// A fixed address on [`network`](Self::network) (Docker's `IPAMConfig.IPv4Address`, libpod's
    /// `static_ips`), or `None` for whatever the engine assigns. Docker grants it only on a
    /// network created with a subnet; an engine that refuses it fails the create.
    pub address: Option<IpAddr>,
}

/// A network's subnet, as a create names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    /// CIDR, e.g. `172.18.0.0/16`.
    pub subnet: String,
    /// The bridge's own address in it, e.g. `172.18.0.1`. Named, because dockerd reports no
    /// gateway in the inspect of a network created with a subnet and none (the policy reads it
    /// there).
    pub gateway: Option<String>,
}

/// A host directory mounted into a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    /// The directory on the engine's host (an absolute path).
    pub source: std::path::PathBuf,
    /// Where it appears in the container (an absolute path).
    pub target: String,
    /// Mounted read-only.
    pub read_only: bool,
}

/// A container as a list call reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSummary {
    /// Container id.
    pub id: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

/// A container's state in the engine's own words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStatus {
    /// Docker's `State.Status` or libpod's `State.Status` (`created`, `running`, `exited`,
    /// `configured`, `stopped`, ...); empty when the engine reported none.
    pub status: String,
    /// The exit code, when the engine reported one.
    pub exit_code: Option<i64>,
}

/// A network as an inspect or list call reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkInfo {
    /// Its id, empty when not reported.
    pub id: String,
    /// Its name, empty when not reported.
    pub name: String,
    /// Its driver (`bridge`, `macvlan`, ...), empty when not reported.
    pub driver: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// The whole inspect (or list entry) body, which becomes the facts document's `network`.
    pub body: Value,
}

/// An image as a list call reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSummary {
    /// Its id, empty when not reported.
    pub id: String,
    /// Its `repo:tag` references.
    pub tags: Vec<String>,
    /// When it was created (for an imported image: imported), in seconds since the epoch; 0
    /// when not reported.
    pub created: i64,
}

/// The engine's own answers that make up a facts document (see docs/facts-format.md).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineDocuments {
    /// `/_ping`'s response headers.
    pub ping: PingHeaders,
    /// The Docker-API `/version` body, or libpod's.
    pub version: Value,
    /// The Docker-API `/info` body, or the same fields taken from libpod's `/info`.
    pub info: Value,
    /// libpod's whole `/info`, when the engine is Podman.
    pub libpod_info: Option<Value>,
}

/// A stream of log bytes.
pub type LogStream<'a> = BoxStream<'a, Result<Vec<u8>, OpError>>;

/// The engine operations one driver implements over its client library. Every method is one
/// engine call (or one client-level exchange such as draining a pull); none retries, sleeps or
/// decides anything. The shared lifecycle bounds each in time and wraps it in a tracing span.
#[async_trait]
pub trait EngineOps: Send + Sync + fmt::Debug {
    /// The driver's name: `docker` or `podman`.
    fn driver_name(&self) -> &'static str;
    /// The endpoint this client talks to.
    fn endpoint(&self) -> &Endpoint;

    /// The raw facts calls: `/_ping` headers, `/version`, `/info`, and libpod's `/info` when
    /// the engine answers it.
    async fn engine_documents(&self) -> Result<EngineDocuments, OpError>;
    /// Creates (not starts) a container; returns its id.
    async fn create_container(&self, config: &ContainerConfig) -> Result<String, OpError>;
    /// Starts a container.
    async fn start_container(&self, id: &str) -> Result<(), OpError>;
    /// A container's state.
    async fn inspect_container(&self, id: &str) -> Result<ContainerStatus, OpError>;
    /// Stops a container, killing it after `grace_secs`.
    async fn stop_container(&self, id: &str, grace_secs: u32) -> Result<(), OpError>;
    /// Removes a container and its anonymous volumes, running or not.
    async fn remove_container(&self, id: &str) -> Result<(), OpError>;
    /// Every container (any state) carrying `label` = `value`.
    async fn list_containers(
        &self,
        label: &str,
        value: &str,
    ) -> Result<Vec<ContainerSummary>, OpError>;
    /// A container's stdout and stderr so far, as a stream the caller may stop reading.
    fn logs<'a>(&'a self, id: &'a str) -> LogStream<'a>;
    /// Whether an image is present.
    async fn image_exists(&self, image: &str) -> Result<bool, OpError>;
    /// Pulls an image, draining the engine's progress until it is done.
    async fn pull_image(&self, image: &str) -> Result<(), OpError>;
    /// Inspects a network by name or id.
    async fn inspect_network(&self, name: &str) -> Result<NetworkInfo, OpError>;
    /// The networks the engine's name filter matches for `name`: every network called `name`,
    /// and possibly others (Docker matches substrings, libpod regular expressions). Old Docker
    /// engines let several networks share a name, which only a list shows.
    async fn list_networks(&self, name: &str) -> Result<Vec<NetworkInfo>, OpError>;
    /// Creates a bridge network with these labels, on `subnet` when one is given, else on one the
    /// engine picks.
    async fn create_network(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
        subnet: Option<&Subnet>,
    ) -> Result<(), OpError>;
    /// Removes a network by name or id (refused by the engine while containers use it).
    async fn remove_network(&self, name: &str) -> Result<(), OpError>;
    // The relay's operations. A driver that cannot carry a relay leaves them out: each then
    // fails with `ErrorKind::Unsupported`, and the relay route is refused with that error.

    /// Imports a root-filesystem tarball as the image `reference` (`repo:tag`), through the
    /// engine's API (Docker's `POST /images/create?fromSrc=-`, libpod's `/images/import`).
    async fn import_image(&self, reference: &str, tarball: Vec<u8>) -> Result<(), OpError> {
        let _ = (reference, tarball);
        Err(OpError::unsupported(self.driver_name(), "image import"))
    }
    /// The images whose reference matches the repository `repository` (any tag).
    async fn list_images(&self, repository: &str) -> Result<Vec<ImageSummary>, OpError> {
        let _ = repository;
        Err(OpError::unsupported(self.driver_name(), "image list"))
    }
    /// Removes the image reference `reference`, never forced: the engine refuses while any
    /// container (in any state) uses the image ([`ErrorKind::Conflict`](crate::ErrorKind)),
    /// and only untags an image that has other references.
    async fn remove_image(&self, reference: &str) -> Result<(), OpError> {
        let _ = reference;
        Err(OpError::unsupported(self.driver_name(), "image removal"))
    }
    /// Attaches to a running container's stdin and stdout, without a TTY and without detach
    /// keys, so every byte passes unchanged.
    async fn attach(&self, id: &str) -> Result<Attached, OpError> {
        let _ = id;
        Err(OpError::unsupported(self.driver_name(), "container attach"))
    }
    /// A container's IP address on `network`; `None` when it has none there (not running, or
    /// not attached to it).
    async fn container_address(&self, id: &str, network: &str) -> Result<Option<IpAddr>, OpError> {
        let _ = (id, network);
        Err(OpError::unsupported(
            self.driver_name(),
            "container address lookup",
        ))
    }
}

/// Labels from a client model's optional map.
pub fn labels_of<I: IntoIterator<Item = (String, String)>>(
    labels: Option<I>,
) -> BTreeMap<String, String> {
    labels.map(|l| l.into_iter().collect()).unwrap_or_default()
}
