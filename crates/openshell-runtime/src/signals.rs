//! Engine-family signals shared by detectors: is this Podman or Docker behind the socket?
//!
//! Podman serves a Docker-compatible API that answers `/info` much like Docker does, which is
//! how the original bug happened. It still gives itself away by several independent signals, and
//! any one of them is enough.

use crate::evidence::Evidence;
use crate::facts::{Endpoint, Facts, HostOs, PingFacts};
use crate::route::EngineKind;

/// Evidence that the engine is Podman, one entry per independent signal.
pub fn podman_evidence(facts: &Facts) -> Vec<Evidence> {
    let mut ev = facts
        .ping
        .as_ref()
        .map(podman_ping_evidence)
        .unwrap_or_default();
    if let Some(c) = facts.version.as_ref().and_then(|v| {
        v.components
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case("Podman Engine"))
    }) {
        ev.push(Evidence::new(
            "version.Components[].Name",
            &c.name,
            "Podman reports a \"Podman Engine\" component",
        ));
    }
    if let Some(libpod) = &facts.libpod {
        ev.push(Evidence::new(
            "libpod_info.version.Version",
            libpod.version.as_deref().unwrap_or("(absent)"),
            "the engine answered libpod's /info",
        ));
    }
    if !facts.info.podman_only_fields.is_empty() {
        ev.push(Evidence::new(
            "info",
            &facts.info.podman_only_fields.join(","),
            "fields only Podman reports in /info",
        ));
    }
    ev
}

/// `/_ping`'s own evidence that the engine is Podman.
fn podman_ping_evidence(ping: &PingFacts) -> Vec<Evidence> {
    let mut ev = Vec::new();
    if let Some(v) = ping.header("Libpod-Api-Version") {
        ev.push(Evidence::new(
            "ping.Libpod-Api-Version",
            v,
            "only Podman's API service sends this header",
        ));
    }
    if let Some(server) = ping.header("Server").filter(|s| s.starts_with("Libpod/")) {
        ev.push(Evidence::new(
            "ping.Server",
            server,
            "Podman's API service names itself Libpod",
        ));
    }
    ev
}

/// `/_ping`'s own evidence that the engine is Docker Engine.
fn docker_ping_evidence(ping: &PingFacts) -> Option<Evidence> {
    let server = ping.header("Server").filter(|s| s.starts_with("Docker/"))?;
    Some(Evidence::new(
        "ping.Server",
        server,
        "Docker Engine names itself Docker/<version>",
    ))
}

/// Whether `/_ping` alone names Docker Engine: its Docker signal and none of Podman's. A driver
/// need not ask such an engine libpod's `/info` (an engine whose `/_ping` names nothing, as in
/// captures, still is: that answer is what identifies Podman there).
pub fn ping_names_docker_engine(ping: &PingFacts) -> bool {
    docker_ping_evidence(ping).is_some() && podman_ping_evidence(ping).is_empty()
}

/// Evidence that the engine is Docker Engine (moby).
pub fn docker_evidence(facts: &Facts) -> Vec<Evidence> {
    let mut ev: Vec<Evidence> = facts
        .ping
        .as_ref()
        .and_then(docker_ping_evidence)
        .into_iter()
        .collect();
    if let Some(c) = facts
        .version
        .as_ref()
        .and_then(|v| v.components.iter().find(|c| c.name == "Engine"))
    {
        ev.push(Evidence::new(
            "version.Components[].Name",
            &c.name,
            "Docker Engine reports an \"Engine\" component",
        ));
    }
    ev
}

/// The engine family with its evidence. With no Podman signal at all, a Docker-API engine is
/// taken for Docker Engine, and the evidence says that this is by elimination.
pub fn engine_kind(facts: &Facts) -> (EngineKind, Vec<Evidence>) {
    let podman = podman_evidence(facts);
    if !podman.is_empty() {
        return (EngineKind::Podman, podman);
    }
    let mut docker = docker_evidence(facts);
    if docker.is_empty() {
        docker.push(Evidence::new(
            "ping, version, info",
            "no Podman signal",
            "a Docker-API engine without any Podman signal is taken for Docker Engine",
        ));
    }
    (EngineKind::Docker, docker)
}

/// Whether `info.OperatingSystem` names `name`, with or without the suffix dockerd appends when
/// it runs inside a container (` (containerized)`, or ` (error determining if containerized)`
/// when it cannot tell; moby `daemon/info.go`). Recent Docker Desktop runs dockerd in a container
/// and reports `Docker Desktop (containerized)`.
pub fn os_name_is(os: &str, name: &str) -> bool {
    os.strip_prefix(name).is_some_and(|rest| {
        rest.is_empty()
            || rest == " (containerized)"
            || rest == " (error determining if containerized)"
    })
}

/// Evidence for the gateway host's OS, if known.
pub fn host_os_evidence(facts: &Facts) -> Option<(HostOs, Evidence)> {
    let os = facts.host_os.clone()?;
    let ev = Evidence::new("host_os", os.as_str(), "the OS the gateway runs on");
    Some((os, ev))
}

/// Evidence from the endpoint path when it contains `needle` (written with `/`). Backslashes
/// count as `/`, because Podman's early Hyper-V machines exported Windows paths such as
/// `unix://C:\Users\me\.local\share\containers\podman\machine\hyperv\podman.sock`.
pub fn endpoint_path_contains(facts: &Facts, needle: &str, meaning: &str) -> Option<Evidence> {
    let ep = facts.endpoint.as_ref()?;
    let path = ep.path()?;
    path.replace('\\', "/")
        .contains(needle)
        .then(|| Evidence::new("endpoint", &ep.to_string(), meaning))
}

/// Whether the endpoint is a Unix socket under a user's runtime directory (`/run/user/<uid>/`),
/// where rootless engines put their sockets.
pub fn endpoint_in_user_runtime_dir(facts: &Facts) -> Option<Evidence> {
    match facts.endpoint.as_ref()? {
        ep @ Endpoint::Unix { path } if path.contains("/run/user/") => Some(Evidence::new(
            "endpoint",
            &ep.to_string(),
            "rootless engines put their socket in the user's runtime directory",
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_ping_naming_dockerd_alone_names_docker_engine() {
        let ping = |pairs: &[(&str, &str)]| PingFacts {
            headers: pairs
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
                .collect(),
        };
        assert!(ping_names_docker_engine(&ping(&[(
            "Server",
            "Docker/20.10.24+dfsg1 (linux)"
        )])));
        for not in [
            ping(&[]),
            ping(&[("Api-Version", "1.41")]),
            ping(&[("Server", "Libpod/4.3.1 (linux)")]),
            ping(&[("Server", "Docker/1.0"), ("Libpod-Api-Version", "4.3.1")]),
        ] {
            assert!(!ping_names_docker_engine(&not), "{not:?}");
        }
    }
}
