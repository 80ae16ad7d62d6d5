//! An engine on another machine, reached over `tcp://` or `ssh://`.
//!
//! Identified by a network endpoint whose host is not loopback (Podman machine's `ssh://` to
//! 127.0.0.1 stays local), or by what an engine behind a local proxy says of itself: a
//! loopback `tcp://` endpoint is not always a local engine (Testcontainers Cloud answers on
//! `tcp://127.0.0.1:<port>` through Testcontainers Desktop, and marks its version; Docker's
//! cloud engines carry a label, even behind Docker Desktop's own socket). Whatever the engine
//! calls its host — host-gateway, a bridge gateway — is that other machine, never this one, so
//! no alias can reach a gateway here. The route fails
//! closed unless the operator names an address of this machine the remote containers can reach.

use crate::error::RouteError;
use crate::evidence::Evidence;
use crate::facts::Facts;
use crate::route::{EngineKind, RoutePlan};
use crate::signals::engine_kind;
use crate::sockets::SocketLocation;

use super::{matched, ContainerRuntime, Detection, HostNetwork, RuntimeId};

/// An engine on another machine (`remote-docker`): no route unless the operator sets
/// `host_gateway_ip`, because the engine's own host addresses belong to the other machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteDocker {
    /// The endpoint, as shown to people.
    pub endpoint: String,
    /// Engine family on the other side.
    pub engine: EngineKind,
}

/// None: a remote engine is reached only through an endpoint the operator names
/// (`DOCKER_HOST`, a context or a connection), never by looking for a socket.
pub(crate) const SOCKETS: &[SocketLocation] = &[];

/// Markers an engine on another machine, fronted by a local proxy, puts in its version, with
/// who puts them there. Testcontainers Cloud: `78+testcontainerscloud (via Testcontainers
/// Desktop 1.4.18)`; the same proxy in front of a local engine says only `(via Testcontainers
/// Desktop …)`, which is no marker.
const REMOTE_VERSION_MARKERS: &[(&str, &str)] = &[("+testcontainerscloud", "Testcontainers Cloud")];

/// The `/info` label Docker's cloud engines (Docker Offload, and Testcontainers Cloud since it
/// runs on them) carry, whichever local endpoint fronts them: Testcontainers Desktop's loopback
/// port, or Docker Desktop's own socket, which then also carries Desktop's label.
const REMOTE_LABEL: &str = "cloud.docker.run.version";

/// Evidence that the engine runs elsewhere behind a local proxy: a cloud engine's label, or a
/// marker in its reported version.
fn proxied_remote(facts: &Facts) -> Option<Evidence> {
    if let Some(value) = facts.info.label(REMOTE_LABEL) {
        return Some(Evidence::new(
            "info.Labels",
            &format!("{REMOTE_LABEL}={value}"),
            "a Docker cloud engine's label: the engine runs on another machine behind a local endpoint",
        ));
    }
    let reported = [
        ("info.ServerVersion", facts.info.server_version.as_deref()),
        (
            "version.Version",
            facts.version.as_ref().and_then(|v| v.version.as_deref()),
        ),
    ];
    reported.into_iter().find_map(|(fact, value)| {
        let value = value?;
        let lower = value.to_ascii_lowercase();
        REMOTE_VERSION_MARKERS
            .iter()
            .find(|(marker, _)| lower.contains(marker))
            .map(|(marker, who)| {
                Evidence::new(
                    fact,
                    value,
                    format!("{marker:?} in the version: {who}, an engine on another machine behind a local proxy"),
                )
            })
    })
}

impl RemoteDocker {
    /// Matches an endpoint whose host is a network address other than loopback (`tcp://`,
    /// `http(s)://`, `ssh://`), or an engine whose version marks it as remote behind a local
    /// proxy, whichever engine family answers there.
    pub fn detect(facts: &Facts) -> Detection {
        let Some(ep) = facts.endpoint.as_ref().filter(|e| e.is_remote()) else {
            return match proxied_remote(facts) {
                Some(ev) => matched(
                    RemoteDocker {
                        endpoint: facts
                            .endpoint
                            .as_ref()
                            .map_or("a local proxy".into(), ToString::to_string),
                        engine: engine_kind(facts).0,
                    },
                    vec![ev],
                ),
                None => Detection::NotMine("the endpoint is local".into()),
            };
        };
        let shown = ep.to_string();
        let ev = vec![Evidence::new(
            "endpoint",
            &shown,
            "a network endpoint whose host is not loopback: the engine is on another machine",
        )];
        matched(
            RemoteDocker {
                endpoint: shown,
                engine: engine_kind(facts).0,
            },
            ev,
        )
    }
}

impl ContainerRuntime for RemoteDocker {
    fn id(&self) -> &str {
        RuntimeId::RemoteDocker.as_str()
    }

    fn engine(&self) -> EngineKind {
        self.engine
    }

    fn plan(&self) -> Result<RoutePlan, RouteError> {
        Err(RouteError::NoSafeRoute {
            runtime: self.id().into(),
            reason: format!(
                "the engine at {} is on another machine: its host-gateway and bridge addresses are that machine's, not this one's",
                self.endpoint
            ),
            fix: "set host_gateway_ip to an address of this machine that the remote containers can reach (--host-gateway-ip IP, OPENSHELL_HOST_GATEWAY_IP, or host_gateway_ip in gateway.toml); the gateway then binds that address".into(),
        })
    }

    fn host_network(&self) -> HostNetwork {
        HostNetwork::refused(
            "the remote machine",
            RouteError::NoSafeRoute {
                runtime: self.id().into(),
                reason: format!(
                    "host networking joins the network namespace of the machine at {}, whose loopback is that machine's: there is no direct route to this one",
                    self.endpoint
                ),
                fix: "set host_gateway_ip to an address of this machine that the remote machine reaches (the gateway then binds it), or run the gateway on the engine's machine".into(),
            },
        )
    }
}
