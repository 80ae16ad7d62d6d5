//! Sandbox lifecycle through the Docker API, applying a decided route as-is.

use std::collections::HashMap;

use async_trait::async_trait;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, ListContainersOptions, LogsOptions,
    RemoveContainerOptions, StopContainerOptions,
};
use futures_util::StreamExt;
use openshell_runtime::consts::{LABEL_MANAGED, LABEL_SANDBOX};
use openshell_runtime::facts::Endpoint;
use openshell_runtime::Route;
use openshell_sandbox::{
    extra_host_entries, is_transient_state_error, GatheredFacts, SandboxDriver, SandboxHandle,
    SandboxSpec, SandboxState, REMOVE_ATTEMPTS,
};

use openshell_sandbox::EngineFailure;

use crate::{DockerDriver, DockerDriverError};

/// Most log bytes kept for diagnosis.
const MAX_LOGS: usize = 64 * 1024;

#[async_trait]
impl SandboxDriver for DockerDriver {
    type Error = DockerDriverError;

    fn name(&self) -> &'static str {
        "docker"
    }

    fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn network(&self) -> &str {
        &self.opts.network
    }

    async fn gather_facts(&self) -> Result<GatheredFacts, DockerDriverError> {
        self.gather().await
    }

    async fn create(
        &self,
        spec: &SandboxSpec,
        route: &Route,
    ) -> Result<SandboxHandle, DockerDriverError> {
        spec.validate().map_err(EngineFailure::from)?;
        let docker = self.client()?;
        let extra_hosts = extra_host_entries(route).map_err(EngineFailure::from)?;
        let labels: HashMap<String, String> = spec.all_labels().into_iter().collect();
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd: Some(spec.command.clone()),
            env: Some(
                spec.env(route)
                    .into_iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect(),
            ),
            labels: Some(labels),
            host_config: Some(HostConfig {
                extra_hosts: Some(extra_hosts),
                network_mode: Some(self.opts.network.clone()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let name = spec.container_name();
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
        let mut attempt = 1;
        loop {
            let removed = self
                .call(
                    "container remove",
                    docker.remove_container(&sandbox.container_id, Some(opts.clone())),
                )
                .await;
            match removed {
                Err(e) if e.is_not_found() => return Ok(()),
                Err(e) if attempt < REMOVE_ATTEMPTS && is_transient_state_error(&e.to_string()) => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                }
                other => return other,
            }
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

    async fn ensure_image(&self, image: &str) -> Result<(), DockerDriverError> {
        let docker = self.client()?;
        match self
            .call("image inspect", docker.inspect_image(image))
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        let opts = bollard::query_parameters::CreateImageOptionsBuilder::new()
            .from_image(image)
            .build();
        let pull = async {
            let mut stream = docker.create_image(Some(opts), None, None);
            while let Some(progress) = stream.next().await {
                progress?;
            }
            Ok(())
        };
        self.call("image pull", pull).await
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
