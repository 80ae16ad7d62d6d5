//! Sandbox lifecycle through the Docker API, applying a decided route as-is.

use std::collections::HashMap;

use async_trait::async_trait;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, ListContainersOptions, LogsOptions,
    RemoveContainerOptions, StopContainerOptions,
};
use futures_util::StreamExt;
use openshell_runtime::consts::{LABEL_MANAGED, LABEL_PREFIX, LABEL_SANDBOX};
use openshell_runtime::facts::Endpoint;
use openshell_runtime::{ExtraHost, Route};
use openshell_sandbox::{
    GatheredFacts, SandboxDriver, SandboxHandle, SandboxSpec, SandboxState, ENV_ENDPOINT,
    ENV_SANDBOX_ID, ENV_TOKEN,
};

use crate::{DockerDriver, DockerDriverError};

/// Most log bytes kept for diagnosis.
const MAX_LOGS: usize = 64 * 1024;

fn invalid(field: &'static str, problem: impl Into<String>) -> DockerDriverError {
    DockerDriverError::InvalidSpec {
        field,
        problem: problem.into(),
    }
}

/// Checks a spec before anything is created, so a bad one changes nothing.
fn validate(spec: &SandboxSpec) -> Result<(), DockerDriverError> {
    let id_ok = !spec.id.is_empty()
        && spec.id.len() <= 40
        && !spec.id.starts_with('-')
        && spec
            .id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !id_ok {
        return Err(invalid(
            "id",
            format!(
                "{:?} must be 1-40 of [a-z0-9-], not starting with '-'",
                openshell_runtime::display_value(&spec.id)
            ),
        ));
    }
    let token_ok = (16..=128).contains(&spec.token.len())
        && spec
            .token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !token_ok {
        return Err(invalid("token", "must be 16-128 of [A-Za-z0-9_-]"));
    }
    if spec.image.is_empty()
        || spec
            .image
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(invalid(
            "image",
            format!(
                "{:?} is not an image reference",
                openshell_runtime::display_value(&spec.image)
            ),
        ));
    }
    for (k, v) in &spec.labels {
        if k.starts_with(LABEL_PREFIX) {
            return Err(invalid(
                "labels",
                format!("{k:?} uses the reserved prefix {LABEL_PREFIX}"),
            ));
        }
        if k.is_empty() || k.chars().chain(v.chars()).any(char::is_control) {
            return Err(invalid(
                "labels",
                format!(
                    "{:?} has an empty key or control characters",
                    openshell_runtime::display_value(k)
                ),
            ));
        }
    }
    Ok(())
}

/// The container name of a sandbox.
pub(crate) fn container_name(id: &str) -> String {
    format!("openshell-{id}")
}

#[async_trait]
impl SandboxDriver for DockerDriver {
    type Error = DockerDriverError;

    fn name(&self) -> &'static str {
        "docker"
    }

    fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    async fn gather_facts(&self) -> Result<GatheredFacts, DockerDriverError> {
        self.gather().await
    }

    async fn create(
        &self,
        spec: &SandboxSpec,
        route: &Route,
    ) -> Result<SandboxHandle, DockerDriverError> {
        validate(spec)?;
        let docker = self.client()?;
        let extra_hosts: Vec<String> = route
            .extra_hosts()
            .iter()
            .map(|h| ExtraHost::parse(&h.to_string()).map(|h| h.to_string()))
            .collect::<Result<_, _>>()
            .map_err(|e| DockerDriverError::Route(e.to_string()))?;
        let mut labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
        labels.insert(LABEL_MANAGED.into(), "true".into());
        labels.insert(LABEL_SANDBOX.into(), spec.id.clone());
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd: Some(spec.command.clone()),
            env: Some(vec![
                format!("{ENV_ENDPOINT}={}", route.sandbox_endpoint()),
                format!("{ENV_SANDBOX_ID}={}", spec.id),
                format!("{ENV_TOKEN}={}", spec.token),
            ]),
            labels: Some(labels),
            host_config: Some(HostConfig {
                extra_hosts: Some(extra_hosts),
                network_mode: Some(self.opts.network.clone()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let name = container_name(&spec.id);
        let opts = CreateContainerOptions {
            name: Some(name.clone()),
            ..Default::default()
        };
        let created = self
            .call(
                "container create",
                docker.create_container(Some(opts), body),
            )
            .await;
        match created {
            Ok(r) => Ok(SandboxHandle {
                id: spec.id.clone(),
                container_id: r.id,
            }),
            Err(e) => {
                // A create that timed out may still have happened: leave nothing behind.
                let _ = self
                    .delete(&SandboxHandle {
                        id: spec.id.clone(),
                        container_id: name,
                    })
                    .await;
                Err(e)
            }
        }
    }

    async fn start(&self, sandbox: &SandboxHandle) -> Result<(), DockerDriverError> {
        let docker = self.client()?;
        self.call(
            "container start",
            docker.start_container(&sandbox.container_id, None),
        )
        .await
    }

    async fn inspect(&self, sandbox: &SandboxHandle) -> Result<SandboxState, DockerDriverError> {
        let docker = self.client()?;
        let c = self
            .call(
                "container inspect",
                docker.inspect_container(&sandbox.container_id, None::<InspectContainerOptions>),
            )
            .await?;
        let state = c.state.unwrap_or_default();
        let status = state.status.map(|s| s.to_string()).unwrap_or_default();
        Ok(match status.as_str() {
            "created" => SandboxState::Created,
            "running" => SandboxState::Running,
            "exited" => SandboxState::Exited(state.exit_code.unwrap_or(-1)),
            other => SandboxState::Other(other.to_string()),
        })
    }

    async fn stop(&self, sandbox: &SandboxHandle) -> Result<(), DockerDriverError> {
        let docker = self.client()?;
        let opts = StopContainerOptions {
            t: Some(2),
            ..Default::default()
        };
        match self
            .call(
                "container stop",
                docker.stop_container(&sandbox.container_id, Some(opts)),
            )
            .await
        {
            Err(e) if e.is_not_found() => Ok(()),
            Err(DockerDriverError::Call {
                source:
                    bollard::errors::Error::DockerResponseServerError {
                        status_code: 304, ..
                    },
                ..
            }) => Ok(()),
            other => other,
        }
    }

    async fn delete(&self, sandbox: &SandboxHandle) -> Result<(), DockerDriverError> {
        let docker = self.client()?;
        let opts = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        match self
            .call(
                "container remove",
                docker.remove_container(&sandbox.container_id, Some(opts)),
            )
            .await
        {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    async fn list(&self) -> Result<Vec<SandboxHandle>, DockerDriverError> {
        let docker = self.client()?;
        let opts = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![format!("{LABEL_MANAGED}=true")],
            )])),
            ..Default::default()
        };
        let list = self
            .call("container list", docker.list_containers(Some(opts)))
            .await?;
        Ok(list
            .into_iter()
            .filter_map(|c| {
                let id = c.labels.as_ref()?.get(LABEL_SANDBOX)?.clone();
                Some(SandboxHandle {
                    id,
                    container_id: c.id?,
                })
            })
            .collect())
    }

    async fn logs(&self, sandbox: &SandboxHandle) -> Result<String, DockerDriverError> {
        let docker = self.client()?;
        let opts = LogsOptions {
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        let collect = async {
            let mut out = String::new();
            let mut stream = docker.logs(&sandbox.container_id, Some(opts));
            while let Some(chunk) = stream.next().await {
                out.push_str(&chunk?.to_string());
                if out.len() > MAX_LOGS {
                    break;
                }
            }
            Ok(out)
        };
        self.call("container logs", collect).await
    }

    async fn remove_network(&self) -> Result<(), DockerDriverError> {
        let docker = self.client()?;
        let name = self.opts.network.as_str();
        let net = match self
            .call("network inspect", docker.inspect_network(name, None))
            .await
        {
            Err(e) if e.is_not_found() => return Ok(()),
            other => other?,
        };
        let ours = net
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_MANAGED))
            .is_some_and(|v| v == "true");
        if !ours {
            return Ok(());
        }
        match self
            .call("network remove", docker.remove_network(name))
            .await
        {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SandboxSpec {
        SandboxSpec {
            id: "sb-1".into(),
            image: "busybox:local".into(),
            command: vec![],
            token: "0123456789abcdef".into(),
            labels: Default::default(),
        }
    }

    #[test]
    fn hostile_specs_are_refused_before_anything_is_created() {
        assert!(validate(&spec()).is_ok());
        type Mutation = Box<dyn Fn(&mut SandboxSpec)>;
        let cases: Vec<Mutation> = vec![
            Box::new(|s| s.id = "Upper".into()),
            Box::new(|s| s.id = "a/b".into()),
            Box::new(|s| s.id = "-x".into()),
            Box::new(|s| s.id = "x".repeat(41)),
            Box::new(|s| s.token = "short".into()),
            Box::new(|s| s.token = "0123456789abcdef\n".into()),
            Box::new(|s| s.image = "a b".into()),
            Box::new(|s| {
                s.labels
                    .insert("io.openshell.managed".into(), "false".into());
            }),
            Box::new(|s| {
                s.labels.insert("k".into(), "v\nx".into());
            }),
        ];
        for (i, mutate) in cases.iter().enumerate() {
            let mut s = spec();
            mutate(&mut s);
            assert!(validate(&s).is_err(), "case {i} accepted");
        }
    }
}
