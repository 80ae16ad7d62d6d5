//! The helpers under the driver: bollard's client over the transport, its errors' kinds, and
//! the few bodies and escapes this driver writes itself.

use std::collections::{BTreeMap, HashMap};

use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HostConfig, NetworkingConfig,
};
use bollard::{BollardRequest, Docker};
use openshell_driver::{ContainerConfig, ErrorKind, OpError};
use openshell_runtime::NetworkMode;
use openshell_transport::transport::{self, Target};
use serde_json::Value;

/// The create body for `c`, field by field. Bind mounts go in `Binds` (`source:target[:ro]`), as
/// `docker run -v` sends them; a fixed address is the endpoint's `IPAMConfig` on `c.network`,
/// which dockerd grants only on a network created with a subnet.
pub(crate) fn create_body(c: &ContainerConfig) -> ContainerCreateBody {
    let binds: Vec<String> = c
        .binds
        .iter()
        .map(|b| {
            let ro = if b.read_only { ":ro" } else { "" };
            format!("{}:{}{ro}", b.source.display(), b.target)
        })
        .collect();
    let networking_config = match (c.network_mode, c.address) {
        (NetworkMode::Bridge, Some(ip)) => {
            let ipam = EndpointIpamConfig {
                ipv4_address: ip.is_ipv4().then(|| ip.to_string()),
                ipv6_address: ip.is_ipv6().then(|| ip.to_string()),
                ..Default::default()
            };
            let endpoint = EndpointSettings {
                ipam_config: Some(ipam),
                ..Default::default()
            };
            Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(c.network.clone(), endpoint)])),
            })
        }
        _ => None,
    };
    ContainerCreateBody {
        image: Some(c.image.clone()),
        cmd: Some(c.command.clone()),
        env: Some(c.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(c.labels.clone().into_iter().collect::<HashMap<_, _>>()),
        open_stdin: Some(c.stdin),
        stdin_once: Some(c.stdin),
        attach_stdin: Some(c.stdin),
        stop_signal: c.kill_on_stop.then(|| "SIGKILL".to_string()),
        host_config: Some(HostConfig {
            extra_hosts: Some(c.extra_hosts.clone()),
            // With host networking the container joins no network: `host` is Docker's name
            // for the engine's own namespace.
            network_mode: Some(match c.network_mode {
                NetworkMode::Bridge => c.network.clone(),
                NetworkMode::Host => "host".to_string(),
            }),
            auto_remove: c.auto_remove.then_some(true),
            binds: (!binds.is_empty()).then_some(binds),
            ..Default::default()
        }),
        networking_config,
        ..Default::default()
    }
}

/// The kind of a bollard error, from the engine's status code when it answered. A reply
/// stopped by the transport's size budget is reported as that.
pub(crate) fn op(e: bollard::errors::Error) -> OpError {
    use bollard::errors::Error as B;
    if let Some(too_large) = transport::too_large(&e) {
        return too_large.into();
    }
    let kind = match &e {
        B::DockerResponseServerError { status_code, .. } => ErrorKind::from_status(*status_code),
        B::JsonDataError { .. } | B::JsonSerdeError { .. } => ErrorKind::BadAnswer,
        _ => ErrorKind::Unreachable,
    };
    OpError::new(kind, e)
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> Result<Value, OpError> {
    serde_json::to_value(v).map_err(|e| OpError::new(ErrorKind::BadAnswer, e))
}

/// `1.41` as bollard's version type.
pub(crate) fn parse_api_version(raw: &str) -> Option<bollard::ClientVersion> {
    let (major, minor) = raw.trim().split_once('.')?;
    Some(bollard::ClientVersion {
        major_version: major.parse().ok()?,
        minor_version: minor.parse().ok()?,
    })
}

/// A bollard client whose requests go over `openshell-transport`'s kept connections, each reply
/// read within its size budget (bollard's own clients read replies whole, however large).
pub(crate) fn capped_client(
    endpoint: &Target,
    secs: u64,
    version: &bollard::ClientVersion,
) -> Result<Docker, bollard::errors::Error> {
    let endpoint = endpoint.clone();
    let request = move |req: BollardRequest| {
        let endpoint = endpoint.clone();
        async move {
            transport::send(&endpoint, req)
                .await
                .map_err(|e| bollard::errors::Error::IOError {
                    err: std::io::Error::other(e),
                })
        }
    };
    // The address only fills the request URIs, which the transport reduces to their paths.
    Docker::connect_with_custom_transport(request, Some("http://docker"), secs, version)
}

/// The fields of a container list entry that we read; everything else (its state among them)
/// is left unparsed.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct ListedContainer {
    #[serde(rename = "Id")]
    pub(crate) id: String,
    #[serde(rename = "Labels", default)]
    pub(crate) labels: Option<BTreeMap<String, String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_entries_parse_whatever_state_the_engine_reports() {
        let body = r#"[{"Id":"abc","State":"stopped","Labels":{"io.openshell.managed":"true"}},{"Id":"def","Labels":null}]"#;
        let list: Vec<ListedContainer> =
            serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(list[0].id, "abc");
        assert_eq!(list[1].labels, None);
    }
}
