//! Sandbox lifecycle through libpod, applying a decided route as-is (`hostadd`).

use std::collections::HashMap;

use async_trait::async_trait;
use futures_util::StreamExt;
use openshell_runtime::consts::{LABEL_MANAGED, LABEL_SANDBOX};
use openshell_runtime::facts::Endpoint;
use openshell_runtime::Route;
use openshell_sandbox::{
    extra_host_entries, is_transient_state_error, GatheredFacts, SandboxDriver, SandboxHandle,
    SandboxSpec, SandboxState, REMOVE_ATTEMPTS,
};
use podman_api::models::Namespace;
use podman_api::opts::{
    ContainerCreateOpts, ContainerDeleteOpts, ContainerListFilter, ContainerListOpts,
    ContainerLogsOpts, ContainerStopOpts,
};

use openshell_sandbox::EngineFailure;

use crate::{PodmanDriver, PodmanDriverError};

/// Most log bytes kept for diagnosis.
const MAX_LOGS: usize = 64 * 1024;

#[async_trait]
impl SandboxDriver for PodmanDriver {
    type Error = PodmanDriverError;

    fn name(&self) -> &'static str {
        "podman"
    }

    fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn network(&self) -> &str {
        &self.opts.network
    }

    async fn gather_facts(&self) -> Result<GatheredFacts, PodmanDriverError> {
        self.gather().await
    }

    async fn create(
        &self,
        spec: &SandboxSpec,
        route: &Route,
    ) -> Result<SandboxHandle, PodmanDriverError> {
        spec.validate().map_err(EngineFailure::from)?;
        let podman = self.client()?;
        let hosts = extra_host_entries(route).map_err(EngineFailure::from)?;
        let env: HashMap<String, String> = spec.env(route).into_iter().collect();
        let name = spec.container_name();
        let opts = ContainerCreateOpts::builder()
            .name(&name)
            .image(&spec.image)
            .command(&spec.command)
            .env(env)
            .labels(spec.all_labels())
            .hosts_add(hosts)
            .net_namespace(Namespace {
                nsmode: Some("bridge".into()),
                value: None,
            })
            .networks([(self.opts.network.clone(), serde_json::json!({}))])
            .build();
        match self
            .call("container create", podman.containers().create(&opts))
            .await
        {
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

    async fn start(&self, sandbox: &SandboxHandle) -> Result<(), PodmanDriverError> {
        let podman = self.client()?;
        self.call(
            "container start",
            podman.containers().get(&sandbox.container_id).start(None),
        )
        .await
    }

    async fn inspect(&self, sandbox: &SandboxHandle) -> Result<SandboxState, PodmanDriverError> {
        let podman = self.client()?;
        let c = self
            .call(
                "container inspect",
                podman.containers().get(&sandbox.container_id).inspect(),
            )
            .await?;
        let Some(state) = c.state else {
            return Ok(SandboxState::Other("no state reported".into()));
        };
        Ok(match state.status.as_deref().unwrap_or_default() {
            "created" | "configured" => SandboxState::Created,
            "running" => SandboxState::Running,
            "exited" | "stopped" => SandboxState::Exited(state.exit_code.map_or(-1, i64::from)),
            other => SandboxState::Other(other.to_string()),
        })
    }

    async fn stop(&self, sandbox: &SandboxHandle) -> Result<(), PodmanDriverError> {
        let podman = self.client()?;
        let opts = ContainerStopOpts::builder().timeout(2).build();
        match self
            .call(
                "container stop",
                podman.containers().get(&sandbox.container_id).stop(&opts),
            )
            .await
        {
            Err(e) if e.has_status(404) || e.has_status(304) => Ok(()),
            other => other,
        }
    }

    async fn delete(&self, sandbox: &SandboxHandle) -> Result<(), PodmanDriverError> {
        let podman = self.client()?;
        let opts = ContainerDeleteOpts::builder()
            .force(true)
            .volumes(true)
            .build();
        let container = podman.containers().get(&sandbox.container_id);
        let mut attempt = 1;
        loop {
            match self.call("container remove", container.delete(&opts)).await {
                Err(e) if e.has_status(404) => return Ok(()),
                Err(e) if attempt < REMOVE_ATTEMPTS && is_transient_state_error(&e.to_string()) => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                }
                other => return other,
            }
        }
    }

    async fn list(&self) -> Result<Vec<SandboxHandle>, PodmanDriverError> {
        let podman = self.client()?;
        let opts = ContainerListOpts::builder()
            .all(true)
            .filter([ContainerListFilter::LabelKeyVal(
                LABEL_MANAGED.into(),
                "true".into(),
            )])
            .build();
        let list = self
            .call("container list", podman.containers().list(&opts))
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

    async fn logs(&self, sandbox: &SandboxHandle) -> Result<String, PodmanDriverError> {
        let podman = self.client()?;
        let opts = ContainerLogsOpts::builder()
            .stdout(true)
            .stderr(true)
            .build();
        let container = podman.containers().get(&sandbox.container_id);
        let collect = async {
            let mut out = String::new();
            let mut stream = container.logs(&opts);
            while let Some(chunk) = stream.next().await {
                let bytes: Vec<u8> = chunk?.into();
                out.push_str(&String::from_utf8_lossy(&bytes));
                if out.len() > MAX_LOGS {
                    break;
                }
            }
            Ok(out)
        };
        self.call("container logs", collect).await
    }

    async fn ensure_image(&self, image: &str) -> Result<(), PodmanDriverError> {
        let podman = self.client()?;
        if self
            .call("image exists", podman.images().get(image).exists())
            .await?
        {
            return Ok(());
        }
        let opts = podman_api::opts::PullOpts::builder()
            .reference(image)
            .build();
        let images = podman.images();
        let pull = async {
            let mut stream = images.pull(&opts);
            while let Some(report) = stream.next().await {
                if let Some(err) = report?.error {
                    return Err(podman_api::Error::StringError(err));
                }
            }
            Ok(())
        };
        self.call("image pull", pull).await
    }

    async fn remove_network(&self) -> Result<(), PodmanDriverError> {
        let podman = self.client()?;
        let net = podman.networks().get(&self.opts.network);
        let found = match self.call("network inspect", net.inspect()).await {
            Err(e) if e.has_status(404) => return Ok(()),
            other => other?,
        };
        let ours = found
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_MANAGED))
            .is_some_and(|v| v == "true");
        if !ours {
            return Ok(());
        }
        match self.call("network remove", net.delete()).await {
            Err(e) if e.has_status(404) => Ok(()),
            other => other.map(|_| ()),
        }
    }
}
