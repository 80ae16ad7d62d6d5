//! An engine in memory, for this crate's tests: containers with names and labels, name
//! conflicts answered as the engines answer them, and attach sessions whose life the test sets.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use openshell_driver::{
    Attached, ContainerConfig, ContainerStatus, ContainerSummary, EngineDocuments, EngineOps,
    ErrorKind, ImageSummary, LogStream, NetworkInfo, OpError,
};
use openshell_runtime::consts::LABEL_MANAGED;
use openshell_runtime::facts::Endpoint;

/// One container the fake engine holds.
#[derive(Debug, Clone)]
pub(crate) struct FakeContainer {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) status: String,
    /// What it was created with (`None` for one [`FakeOps::add`] put there).
    pub(crate) config: Option<ContainerConfig>,
}

/// What the fake engine holds and how it answers.
#[derive(Debug, Default)]
pub(crate) struct FakeState {
    pub(crate) containers: Vec<FakeContainer>,
    pub(crate) next: u32,
    /// A create of a taken name fails with this kind (Docker 409, Podman 500).
    pub(crate) conflict_kind: Option<ErrorKind>,
    /// The next creates fail with this kind after they happened (a timeout, a broken reply).
    pub(crate) fail_after_create: Option<ErrorKind>,
    /// How long each attach session lasts before its stdout ends.
    pub(crate) session_life: Option<Duration>,
    /// The network removal fails with this kind while containers are on it.
    pub(crate) network_in_use: Option<ErrorKind>,
    /// A forced removal of a running container waits this long first, as Podman's does for
    /// a first process that ignores SIGTERM (its stop timeout, then SIGKILL).
    pub(crate) forced_removal_wait: Option<Duration>,
    /// Every container name ever removed.
    pub(crate) removed: Vec<String>,
    /// How many attaches were made.
    pub(crate) attaches: u32,
    /// The gateway its bridge networks report, if any.
    pub(crate) bridge_gateway: Option<IpAddr>,
    /// Images: reference and creation time (seconds since the epoch).
    pub(crate) images: Vec<(String, i64)>,
    /// References a container was made from: their removal is refused as a conflict.
    pub(crate) images_in_use: Vec<String>,
    /// A relay told to carry through the gateway's socket sees it (logs that it listens);
    /// otherwise it logs that it sees no socket there, as a relay in another mount namespace.
    pub(crate) socket_visible: bool,
    /// A create asking for a fixed address fails with this kind (dockerd on a network without
    /// a configured subnet answers 400).
    pub(crate) refuse_address: Option<ErrorKind>,
}

/// An in-memory engine; clones share the state.
#[derive(Debug, Clone)]
pub(crate) struct FakeOps {
    pub(crate) state: Arc<Mutex<FakeState>>,
    endpoint: Endpoint,
}

impl FakeOps {
    pub(crate) fn new() -> FakeOps {
        FakeOps {
            state: Arc::default(),
            endpoint: Endpoint::parse("unix:///run/fake.sock").unwrap_or_else(|e| panic!("{e}")),
        }
    }

    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut FakeState) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Puts a container into the engine as someone else would have.
    pub(crate) fn add(&self, name: &str, labels: &[(&str, &str)], status: &str) -> String {
        self.with(|s| {
            s.next += 1;
            let id = format!("c{}", s.next);
            s.containers.push(FakeContainer {
                id: id.clone(),
                name: name.to_string(),
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                status: status.to_string(),
                config: None,
            });
            id
        })
    }

    pub(crate) fn names(&self) -> Vec<String> {
        self.with(|s| s.containers.iter().map(|c| c.name.clone()).collect())
    }
}

fn err(kind: ErrorKind, what: &str) -> OpError {
    OpError::new(kind, what.to_string())
}

#[async_trait]
impl EngineOps for FakeOps {
    fn driver_name(&self) -> &'static str {
        "fake"
    }
    fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }
    async fn engine_documents(&self) -> Result<EngineDocuments, OpError> {
        Err(err(ErrorKind::Rejected, "no facts in the fake"))
    }
    async fn create_container(&self, config: &ContainerConfig) -> Result<String, OpError> {
        self.with(|s| {
            if let (Some(kind), Some(_)) = (s.refuse_address, config.address) {
                return Err(err(kind, "user specified IP address is supported only when connecting to networks with user configured subnets"));
            }
            if s.containers.iter().any(|c| c.name == config.name) {
                return Err(err(
                    s.conflict_kind.unwrap_or(ErrorKind::Conflict),
                    "the container name is already in use",
                ));
            }
            s.next += 1;
            let id = format!("c{}", s.next);
            s.containers.push(FakeContainer {
                id: id.clone(),
                name: config.name.clone(),
                labels: config.labels.clone(),
                status: "created".into(),
                config: Some(config.clone()),
            });
            match s.fail_after_create {
                Some(kind) => Err(err(kind, "the reply was lost")),
                None => Ok(id),
            }
        })
    }
    async fn start_container(&self, id: &str) -> Result<(), OpError> {
        self.with(|s| match s.containers.iter_mut().find(|c| c.id == id) {
            Some(c) => {
                c.status = "running".into();
                Ok(())
            }
            None => Err(err(ErrorKind::NotFound, "no such container")),
        })
    }
    async fn inspect_container(&self, id: &str) -> Result<ContainerStatus, OpError> {
        self.with(
            |s| match s.containers.iter().find(|c| c.id == id || c.name == id) {
                Some(c) => Ok(ContainerStatus {
                    status: c.status.clone(),
                    exit_code: None,
                }),
                None => Err(err(ErrorKind::NotFound, "no such container")),
            },
        )
    }
    async fn stop_container(&self, id: &str, _: u32) -> Result<(), OpError> {
        self.with(|s| match s.containers.iter_mut().find(|c| c.id == id) {
            Some(c) => {
                c.status = "exited".into();
                Ok(())
            }
            None => Err(err(ErrorKind::NotFound, "no such container")),
        })
    }
    async fn remove_container(&self, id: &str) -> Result<(), OpError> {
        let wait = self.with(|s| {
            let running = s
                .containers
                .iter()
                .any(|c| (c.id == id || c.name == id) && c.status == "running");
            s.forced_removal_wait.filter(|_| running)
        });
        if let Some(wait) = wait {
            tokio::time::sleep(wait).await;
        }
        self.with(
            |s| match s.containers.iter().position(|c| c.id == id || c.name == id) {
                Some(i) => {
                    let c = s.containers.remove(i);
                    s.removed.push(c.name);
                    Ok(())
                }
                None => Err(err(ErrorKind::NotFound, "no such container")),
            },
        )
    }
    async fn list_containers(
        &self,
        label: &str,
        value: &str,
    ) -> Result<Vec<ContainerSummary>, OpError> {
        Ok(self.with(|s| {
            s.containers
                .iter()
                .filter(|c| c.labels.get(label).map(String::as_str) == Some(value))
                .map(|c| ContainerSummary {
                    id: c.id.clone(),
                    labels: c.labels.clone(),
                })
                .collect()
        }))
    }
    fn logs<'a>(&'a self, id: &'a str) -> LogStream<'a> {
        // A relay's diagnostics, as crates/openshell-relay writes them.
        let log = self.with(|s| {
            let config = s
                .containers
                .iter()
                .find(|c| c.id == id)
                .and_then(|c| c.config.clone())?;
            let port = config.command.iter().rev().find(|a| a.parse::<u16>().is_ok())?.clone();
            match config.command.get(1).map(String::as_str) {
                Some("socket") if !s.socket_visible => Some(format!(
                    "openshell-relay: no gateway socket at {}: No such file or directory (os error 2)\n",
                    config.command[2]
                )),
                _ => Some(format!("openshell-relay: listening on 0.0.0.0:{port}\n")),
            }
        });
        Box::pin(futures_util::stream::iter(log.map(|l| Ok(l.into_bytes()))))
    }
    async fn image_exists(&self, _: &str) -> Result<bool, OpError> {
        Ok(true)
    }
    async fn pull_image(&self, _: &str) -> Result<(), OpError> {
        Ok(())
    }
    async fn inspect_network(&self, name: &str) -> Result<NetworkInfo, OpError> {
        let mut body = serde_json::json!({"Name": name, "Driver": "bridge"});
        if let Some(gw) = self.with(|s| s.bridge_gateway) {
            body["IPAM"] = serde_json::json!({"Config": [{"Gateway": gw.to_string()}]});
        }
        Ok(NetworkInfo {
            id: "n1".into(),
            name: name.into(),
            driver: "bridge".into(),
            labels: BTreeMap::from([(LABEL_MANAGED.to_string(), "true".to_string())]),
            body,
        })
    }
    async fn list_networks(&self, name: &str) -> Result<Vec<NetworkInfo>, OpError> {
        Ok(vec![self.inspect_network(name).await?])
    }
    async fn create_network(
        &self,
        _: &str,
        _: &BTreeMap<String, String>,
        _: Option<&openshell_driver::Subnet>,
    ) -> Result<(), OpError> {
        Ok(())
    }
    async fn remove_network(&self, _: &str) -> Result<(), OpError> {
        self.with(|s| match (s.network_in_use, s.containers.is_empty()) {
            (Some(kind), false) => Err(err(kind, "network is being used")),
            _ => Ok(()),
        })
    }
    async fn list_images(&self, repository: &str) -> Result<Vec<ImageSummary>, OpError> {
        let prefix = format!("{repository}:");
        Ok(self.with(|s| {
            s.images
                .iter()
                .filter(|(r, _)| r.starts_with(&prefix))
                .map(|(r, created)| ImageSummary {
                    id: r.clone(),
                    tags: vec![r.clone()],
                    created: *created,
                })
                .collect()
        }))
    }
    async fn remove_image(&self, reference: &str) -> Result<(), OpError> {
        self.with(|s| {
            if s.images_in_use.iter().any(|r| r == reference) {
                return Err(err(ErrorKind::Conflict, "image is in use by a container"));
            }
            let before = s.images.len();
            s.images.retain(|(r, _)| r != reference);
            if s.images.len() == before {
                return Err(err(ErrorKind::NotFound, "no such image"));
            }
            Ok(())
        })
    }
    async fn attach(&self, _: &str) -> Result<Attached, OpError> {
        let life = self.with(|s| {
            s.attaches += 1;
            s.session_life
        });
        let stdout: futures_util::stream::BoxStream<'static, std::io::Result<bytes::Bytes>> =
            match life {
                Some(life) => Box::pin(futures_util::stream::once(async move {
                    tokio::time::sleep(life).await;
                    Ok(bytes::Bytes::new())
                })),
                None => Box::pin(futures_util::stream::pending()),
            };
        Ok(Attached::new(stdout, Box::pin(tokio::io::sink())))
    }
    async fn container_address(&self, id: &str, _: &str) -> Result<Option<IpAddr>, OpError> {
        let fixed = self.with(|s| {
            s.containers
                .iter()
                .find(|c| c.id == id)
                .and_then(|c| c.config.as_ref()?.address)
        });
        if fixed.is_some() {
            return Ok(fixed);
        }
        let n = id.trim_start_matches('c').parse::<u8>().unwrap_or(0);
        Ok(Some(IpAddr::V4(Ipv4Addr::new(10, 89, 0, n))))
    }
}
