//! Rootful Podman on the gateway's own Linux host.
//!
//! Identified by any Podman signal (see [`crate::signals`]) with a Linux gateway host and
//! `rootless = false` (libpod `host.security.rootless`, or compat `/info`'s `Rootless`) or the
//! rootful socket `/run/podman/podman.sock`. Sandboxes sit on a netavark (or CNI) bridge of this
//! host, so, as with native Docker, the bridge's gateway address is both the target and the bind.
//! The target is always the literal address: Podman only resolves `host-gateway` from 4.7 on
//! (older releases reject or mangle it), and even then it picks the gateway of the container's
//! first network, while we must bind the sandbox network's own gateway.
//! Source: containers/common `libnetwork/etchosts/ip.go`; see docs/runtimes.md.

use crate::error::RouteError;
use crate::evidence::Evidence;
use crate::facts::{EngineVersion, Facts, HostOs, NetworkFacts};
use crate::route::{EngineKind, RoutePlan};
use crate::signals::{engine_kind, host_os_evidence};
use crate::sockets::{SocketApi, SocketLocation, SocketRoot};

use super::{bridge_plan, matched, ContainerRuntime, Detection, HostNetwork, RuntimeId};

/// Rootful Podman on the gateway's own Linux host (`podman`). Routes to the sandbox bridge's
/// gateway address, which is also the bind; never `host-gateway`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Podman {
    /// The sandbox network, whose IPAM gateway is the route; the route is refused without it.
    pub network: Option<NetworkFacts>,
    /// The Podman version, as detected; the bridge route does not depend on it.
    pub version: Option<EngineVersion>,
}

/// Whether Podman runs rootless, with the fact that says so; `None` when nothing tells.
pub(crate) fn rootless_evidence(facts: &Facts) -> Option<(bool, Evidence)> {
    if let Some(r) = facts.libpod.as_ref().and_then(|l| l.rootless) {
        return Some((
            r,
            Evidence::new(
                "libpod_info.host.security.rootless",
                &r.to_string(),
                "libpod's own answer",
            ),
        ));
    }
    if let Some(r) = facts.info.rootless {
        return Some((
            r,
            Evidence::new(
                "info.Rootless",
                &r.to_string(),
                "Podman's compat /info field",
            ),
        ));
    }
    if let Some(o) = facts
        .info
        .security_options
        .iter()
        .find(|o| o.name == "rootless")
    {
        return Some((
            true,
            Evidence::new(
                "info.SecurityOptions",
                &o.raw,
                "Podman lists rootless as a security option",
            ),
        ));
    }
    // libpod fills idMappings only when rootless; rootful reports null (not taken as evidence).
    if let Some(host) = facts
        .libpod
        .as_ref()
        .and_then(|l| l.container_root_host_id)
        .filter(|h| *h != 0)
    {
        return Some((
            true,
            Evidence::new(
                "libpod_info.host.idMappings",
                &format!("container root = host id {host}"),
                "libpod maps container root to an unprivileged host id, as only rootless Podman does",
            ),
        ));
    }
    let Some(path) = facts.endpoint.as_ref().and_then(|e| e.path()) else {
        return root_dir_evidence(facts);
    };
    if path.ends_with("/run/podman/podman.sock") {
        return Some((
            false,
            Evidence::new("endpoint", path, "Podman's rootful socket"),
        ));
    }
    if path.ends_with("/run/docker.sock") {
        return Some((false, Evidence::new("endpoint", path, "the system-wide Docker socket, which podman-docker links to rootful Podman; rootless Podman serves only in the user's runtime directory")));
    }
    if path.contains("/run/user/") {
        return Some((
            true,
            Evidence::new("endpoint", path, "a per-user (rootless) Podman socket"),
        ));
    }
    root_dir_evidence(facts)
}

/// Whether Podman runs rootless, judged from its storage root (`info.DockerRootDir`, the graph
/// root) when nothing else tells: rootful Podman keeps images in `/var/lib/containers/storage`,
/// which an unprivileged user cannot write, and rootless Podman in
/// `$HOME/.local/share/containers/storage` (containers-storage.conf(5) defaults). Other roots
/// say nothing.
fn root_dir_evidence(facts: &Facts) -> Option<(bool, Evidence)> {
    let dir = facts.info.docker_root_dir.as_deref()?;
    let dir = dir.trim_end_matches('/');
    if dir == "/var/lib/containers/storage" {
        return Some((
            false,
            Evidence::new(
                "info.DockerRootDir",
                dir,
                "rootful Podman's storage root, which only root can write",
            ),
        ));
    }
    if dir.ends_with("/.local/share/containers/storage") {
        return Some((
            true,
            Evidence::new(
                "info.DockerRootDir",
                dir,
                "rootless Podman's per-user storage root",
            ),
        ));
    }
    None
}

/// Where rootful Podman's service listens: `unix:///run/podman/podman.sock`
/// (podman-system-service(1),
/// <https://docs.podman.io/en/latest/markdown/podman-system-service.1.html>).
pub(crate) const SOCKETS: &[SocketLocation] = &[SocketLocation {
    root: SocketRoot::Absolute,
    path: "/run/podman/podman.sock",
    default_instance: None,
    api: SocketApi::Podman,
    rank: 210,
    label: "Podman (rootful)",
    only_on: None,
}];

impl Podman {
    /// Matches Podman on a Linux host when it runs rootful; fails (stopping the search) when
    /// nothing tells rootful from rootless or the host OS is unknown.
    pub fn detect(facts: &Facts) -> Detection {
        let (kind, mut ev) = engine_kind(facts);
        if kind != EngineKind::Podman {
            return Detection::NotMine("no Podman signal".into());
        }
        match host_os_evidence(facts) {
            Some((HostOs::Linux, e)) => ev.push(e),
            Some((os, _)) => return Detection::NotMine(format!("Podman on {os} runs in a machine VM")),
            None => return Detection::Failed("Podman engine, but host_os is unknown: cannot tell a Linux host from a Podman machine".into()),
        }
        match rootless_evidence(facts) {
            Some((false, e)) => ev.push(e),
            Some((true, _)) => return Detection::NotMine("Podman runs rootless".into()),
            None => {
                return Detection::Failed(
                    "Podman engine, but nothing says whether it runs rootless (no rootless field, rootful socket or storage root): gather libpod /info"
                        .into(),
                )
            }
        }
        matched(
            Podman {
                network: facts.network.clone(),
                version: facts.engine_version(),
            },
            ev,
        )
    }
}

impl ContainerRuntime for Podman {
    fn id(&self) -> &str {
        RuntimeId::Podman.as_str()
    }

    fn engine(&self) -> EngineKind {
        EngineKind::Podman
    }

    fn plan(&self) -> Result<RoutePlan, RouteError> {
        bridge_plan(
            RuntimeId::Podman,
            self.network.as_ref(),
            "sandboxes sit on a Podman bridge of this host: its gateway address reaches the host and nothing else",
        )
    }

    fn host_network(&self) -> HostNetwork {
        HostNetwork::shared(
            "rootful Podman's host network is this host's namespace: the sandbox's 127.0.0.1 is the gateway's",
        )
    }
}
