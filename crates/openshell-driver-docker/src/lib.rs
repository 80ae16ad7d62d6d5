//! The Docker-API driver: engine operations over bollard.
//!
//! It speaks to whatever serves the Docker API: Docker Engine, Docker Desktop, Colima,
//! OrbStack, Rancher Desktop, Lima and Podman's compatible service. It implements
//! [`EngineOps`] and nothing more: the sandbox lifecycle, facts gathering, timeouts and retries
//! come from `openshell-sandbox`, finding the engine (the docker CLI's order) from
//! `openshell-engine`, every connection from `openshell-transport`, and the route from
//! `openshell-runtime`, applied as-is.
#![deny(missing_docs)]

mod client;

use client::{capped_client, create_body, op, parse_api_version, to_json, ListedContainer};

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use bollard::container::LogOutput;
use bollard::models::{Ipam, IpamConfig, NetworkCreateRequest};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptions, CreateImageOptionsBuilder,
    InspectContainerOptions, ListImagesOptionsBuilder, ListNetworksOptions, LogsOptions,
    RemoveContainerOptions, RemoveImageOptionsBuilder, StopContainerOptions,
};
use bollard::Docker;
use futures_util::{StreamExt, TryStreamExt};
use openshell_driver::{
    labels_of, Attached, ContainerConfig, ContainerStatus, ContainerSummary, EngineDocuments,
    EngineOps, ErrorKind, ImageSummary, LogStream, NetworkInfo, OpError, PingHeaders, Subnet,
};
use openshell_driver::{libpod, DriverError};
use openshell_runtime::facts::{Endpoint, PingFacts};
use openshell_transport::raw::{self, RawResponse};
use openshell_transport::transport::{self, Target};
use tracing::Instrument;

/// A connection to one Docker-API engine.
#[derive(Debug, Clone)]
pub struct DockerDriver {
    docker: Docker,
    endpoint: Target,
    timeout: Duration,
    /// The engine named itself Podman on `/_ping` (`Libpod-Api-Version`): it also serves libpod's
    /// API on this endpoint.
    libpod: bool,
    /// `/_ping`'s headers at connect time, which the facts reuse (one round trip less).
    ping: Option<PingHeaders>,
}

impl DockerDriver {
    /// Connects to `endpoint` (`unix://`, `tcp://` with or without TLS, or `ssh://`: a
    /// [`Target`] carries the TLS material or ssh settings) and settles the API version: the
    /// engine's own from `/_ping`'s `Api-Version` header when it is older than bollard's
    /// (Debian's dockerd 20.10 speaks at most 1.41; Engine 29 refuses anything below 1.44),
    /// else negotiated through `/version`.
    pub async fn connect(
        endpoint: impl Into<Target>,
        timeout: Duration,
    ) -> Result<DockerDriver, DriverError> {
        DockerDriver::connect_after_ping(endpoint, timeout, None).await
    }

    /// [`connect`](Self::connect) to an engine whose `/_ping` the caller has just read
    /// (discovery's probe): its headers settle the API version and serve the facts, and the
    /// engine is not asked again.
    pub async fn connect_after_ping(
        endpoint: impl Into<Target>,
        timeout: Duration,
        ping: Option<PingHeaders>,
    ) -> Result<DockerDriver, DriverError> {
        let endpoint: Target = endpoint.into();
        let shown = endpoint.to_string();
        let connect_err = |e: bollard::errors::Error| DriverError::Connect {
            endpoint: shown.clone(),
            source: Box::new(e),
        };
        transport::check(&endpoint).map_err(|source| DriverError::Unsupported {
            endpoint: shown.clone(),
            driver: "docker",
            source,
        })?;
        let secs = timeout.as_secs().max(1);
        // One cheap round trip instead of `/version`, which dockerd 20.10 takes ~7 ms to answer.
        let span =
            tracing::info_span!("engine_call", call = "_ping (api version)", endpoint = %shown);
        let pinged = match ping {
            Some(headers) => Some(headers),
            None => raw::get(&endpoint, "/_ping", timeout)
                .instrument(span)
                .await
                .ok()
                .map(|r| r.headers),
        };
        let libpod = pinged
            .as_ref()
            .is_some_and(|h| h.contains_key("libpod-api-version"));
        let server = pinged
            .as_ref()
            .and_then(|h| h.get("api-version"))
            .and_then(|v| parse_api_version(v));
        let version = match server {
            Some(v) if v < *bollard::API_DEFAULT_VERSION => v,
            _ => *bollard::API_DEFAULT_VERSION,
        };
        let docker = capped_client(&endpoint, secs, &version).map_err(connect_err)?;
        let docker = if server.is_some() {
            docker
        } else {
            let span =
                tracing::info_span!("engine_call", call = "version (negotiate)", endpoint = %shown);
            tokio::time::timeout(timeout, docker.negotiate_version())
                .instrument(span)
                .await
                .map_err(|_| DriverError::Timeout {
                    call: "version",
                    endpoint: shown.clone(),
                    after: timeout,
                })?
                .map_err(connect_err)?
        };
        tracing::debug!(api = %docker.client_version(), "API version");
        Ok(DockerDriver {
            docker,
            endpoint,
            timeout,
            libpod,
            ping: pinged,
        })
    }

    async fn raw_get(&self, path: &str) -> Result<RawResponse, OpError> {
        Ok(raw::get(&self.endpoint, path, self.timeout).await?)
    }
}

#[async_trait]
impl EngineOps for DockerDriver {
    fn driver_name(&self) -> &'static str {
        "docker"
    }

    fn endpoint(&self) -> &Endpoint {
        self.endpoint.endpoint()
    }

    async fn engine_documents(&self) -> Result<EngineDocuments, OpError> {
        let ping = async {
            match &self.ping {
                Some(headers) => Ok(headers.clone()),
                None => self.raw_get("/_ping").await.map(|r| r.headers),
            }
        };
        // libpod's `/info` is asked unless `/_ping` named dockerd itself: it identifies Podman
        // where `/_ping` carries no `Libpod-Api-Version` (replayed captures), and one request
        // less on dockerd leaves it more of the machine for `/info`, the slowest answer (it runs
        // `runc --version` and `docker-init --version`), which is why it is sent first.
        let libpod_info = async {
            match &self.ping {
                Some(headers)
                    if openshell_runtime::signals::ping_names_docker_engine(&PingFacts {
                        headers: headers.clone(),
                    }) =>
                {
                    None
                }
                _ => libpod::info(&self.endpoint, self.timeout).await,
            }
        };
        let (info, ping, version, libpod_info) =
            tokio::join!(self.docker.info(), ping, self.docker.version(), libpod_info,);
        Ok(EngineDocuments {
            ping: ping?,
            version: to_json(&version.map_err(op)?)?,
            info: to_json(&info.map_err(op)?)?,
            libpod_info,
        })
    }

    async fn create_container(&self, c: &ContainerConfig) -> Result<String, OpError> {
        let body = create_body(c);
        let opts = CreateContainerOptions {
            name: Some(c.name.clone()),
            ..Default::default()
        };
        let created = self
            .docker
            .create_container(Some(opts), body)
            .await
            .map_err(op)?;
        Ok(created.id)
    }

    async fn start_container(&self, id: &str) -> Result<(), OpError> {
        self.docker.start_container(id, None).await.map_err(op)
    }

    async fn inspect_container(&self, id: &str) -> Result<ContainerStatus, OpError> {
        let c = self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .map_err(op)?;
        let state = c.state.unwrap_or_default();
        Ok(ContainerStatus {
            status: state.status.map(|s| s.to_string()).unwrap_or_default(),
            exit_code: state.exit_code,
        })
    }

    async fn stop_container(&self, id: &str, grace_secs: u32) -> Result<(), OpError> {
        let opts = StopContainerOptions {
            t: Some(i32::try_from(grace_secs).unwrap_or(i32::MAX)),
            ..Default::default()
        };
        self.docker.stop_container(id, Some(opts)).await.map_err(op)
    }

    async fn remove_container(&self, id: &str) -> Result<(), OpError> {
        let opts = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        self.docker
            .remove_container(id, Some(opts))
            .await
            .map_err(op)
    }

    async fn list_containers(
        &self,
        label: &str,
        value: &str,
    ) -> Result<Vec<ContainerSummary>, OpError> {
        // Read raw rather than through bollard's model: Podman's Docker-compatible API reports
        // states (`stopped`) that bollard 0.21's state enum rejects, which failed the whole list.
        let filters = serde_json::json!({ "label": [format!("{label}={value}")] }).to_string();
        let path = format!(
            "/containers/json?all=1&filters={}",
            raw::query_escape(&filters)
        );
        let r = self.raw_get(&path).await?;
        if r.status != 200 {
            let body = String::from_utf8_lossy(&r.body);
            return Err(OpError::new(
                ErrorKind::from_status(r.status),
                format!(
                    "container list answered HTTP {}: {}",
                    r.status,
                    openshell_runtime::display_value(body.trim())
                ),
            ));
        }
        let list: Vec<ListedContainer> =
            serde_json::from_slice(&r.body).map_err(|e| OpError::new(ErrorKind::BadAnswer, e))?;
        Ok(list
            .into_iter()
            .map(|c| ContainerSummary {
                id: c.id,
                labels: c.labels.unwrap_or_default(),
            })
            .collect())
    }

    fn logs<'a>(&'a self, id: &'a str) -> LogStream<'a> {
        let opts = LogsOptions {
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        self.docker
            .logs(id, Some(opts))
            .map(|chunk| chunk.map(|c| c.into_bytes().to_vec()).map_err(op))
            .boxed()
    }

    async fn image_exists(&self, image: &str) -> Result<bool, OpError> {
        match self.docker.inspect_image(image).await.map_err(op) {
            Ok(_) => Ok(true),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn pull_image(&self, image: &str) -> Result<(), OpError> {
        let opts = CreateImageOptionsBuilder::new().from_image(image).build();
        self.docker
            .create_image(Some(opts), None, None)
            .map_err(op)
            .try_for_each(|_| async { Ok(()) })
            .await
    }

    async fn inspect_network(&self, name: &str) -> Result<NetworkInfo, OpError> {
        let net = self.docker.inspect_network(name, None).await.map_err(op)?;
        Ok(NetworkInfo {
            id: net.id.clone().unwrap_or_default(),
            name: net.name.clone().unwrap_or_default(),
            driver: net.driver.clone().unwrap_or_default(),
            labels: labels_of(net.labels.clone()),
            body: to_json(&net)?,
        })
    }

    async fn list_networks(&self, name: &str) -> Result<Vec<NetworkInfo>, OpError> {
        let opts = ListNetworksOptions {
            filters: Some(HashMap::from([(
                "name".to_string(),
                vec![name.to_string()],
            )])),
        };
        let list = self.docker.list_networks(Some(opts)).await.map_err(op)?;
        list.into_iter()
            .map(|net| {
                Ok(NetworkInfo {
                    id: net.id.clone().unwrap_or_default(),
                    name: net.name.clone().unwrap_or_default(),
                    driver: net.driver.clone().unwrap_or_default(),
                    labels: labels_of(net.labels.clone()),
                    body: to_json(&net)?,
                })
            })
            .collect()
    }

    /// A bridge network. On Podman it is created through libpod's API on the same endpoint,
    /// without DNS: Podman's compatible `POST /networks/create` enables DNS on every bridge and
    /// honours no option that turns it off (`pkg/api/handlers/compat/networks.go`, 4.x to 5.x;
    /// seen live on 5.4.2: an unknown option is only warned about). Docker's user-defined
    /// networks have no such switch: dockerd's embedded DNS is in-process and needs nothing.
    async fn create_network(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
        subnet: Option<&Subnet>,
    ) -> Result<(), OpError> {
        if self.libpod {
            let body = libpod::network_body(name, labels, subnet);
            let call = "libpod network create";
            return libpod::post_json(
                &self.endpoint,
                call,
                libpod::NETWORK_CREATE,
                &body,
                self.timeout,
            )
            .await;
        }
        let req = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".into()),
            labels: Some(labels.clone().into_iter().collect()),
            ipam: subnet.map(|s| Ipam {
                config: Some(vec![IpamConfig {
                    subnet: Some(s.subnet.clone()),
                    gateway: s.gateway.clone(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.docker
            .create_network(req)
            .await
            .map_err(op)
            .map(|_| ())
    }

    async fn remove_network(&self, name: &str) -> Result<(), OpError> {
        // dockerd answers 403 to removing a network that is in use ("has active endpoints"; the
        // only other 403, a predefined network, is never ours), also for a moment after its
        // last container went (seen on rootless dockerd 20.10 under load): a conflict, which the
        // lifecycle retries a bounded number of times.
        self.docker.remove_network(name).await.map_err(|e| {
            let in_use = matches!(
                &e,
                bollard::errors::Error::DockerResponseServerError {
                    status_code: 403,
                    ..
                }
            );
            let mut err = op(e);
            if in_use {
                err.kind = ErrorKind::Conflict;
            }
            err
        })
    }

    async fn import_image(&self, reference: &str, tarball: Vec<u8>) -> Result<(), OpError> {
        // The whole reference goes in `repo` (the API allows a tag there): Podman 4.3's
        // compatible import ignores `tag` and would tag the image `latest`.
        let opts = CreateImageOptionsBuilder::new()
            .from_src("-")
            .repo(reference)
            .build();
        self.docker
            .create_image(Some(opts), Some(bollard::body_full(tarball.into())), None)
            .map_err(op)
            .try_for_each(|_| async { Ok(()) })
            .await
    }

    async fn list_images(&self, repository: &str) -> Result<Vec<ImageSummary>, OpError> {
        let filters = HashMap::from([("reference".to_string(), vec![repository.to_string()])]);
        let opts = ListImagesOptionsBuilder::new().filters(&filters).build();
        let list = self.docker.list_images(Some(opts)).await.map_err(op)?;
        Ok(list
            .into_iter()
            .map(|i| ImageSummary {
                id: i.id,
                tags: i.repo_tags,
                created: i.created,
            })
            .collect())
    }

    async fn remove_image(&self, reference: &str) -> Result<(), OpError> {
        let opts = RemoveImageOptionsBuilder::new().force(false).build();
        self.docker
            .remove_image(reference, Some(opts), None)
            .await
            .map(|_| ())
            .map_err(op)
    }

    async fn attach(&self, id: &str) -> Result<Attached, OpError> {
        // Detach keys only apply with a TTY on Docker, but Podman's compatible API applies
        // them to plain stdin too (ctrl-p ctrl-q would end the session mid-stream): an empty
        // value turns them off there and is ignored by Docker.
        let opts = AttachContainerOptionsBuilder::new()
            .stream(true)
            .stdin(true)
            .stdout(true)
            .stderr(false)
            .detach_keys("")
            .build();
        let attached = self
            .docker
            .attach_container(id, Some(opts))
            .await
            .map_err(op)?;
        let stdout = attached
            .output
            .filter_map(|chunk| async move {
                match chunk {
                    Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                        Some(Ok(message))
                    }
                    Ok(LogOutput::StdErr { .. } | LogOutput::StdIn { .. }) => None,
                    Err(e) => Some(Err(std::io::Error::other(e))),
                }
            })
            .boxed();
        Ok(Attached::new(stdout, attached.input))
    }

    async fn container_address(&self, id: &str, network: &str) -> Result<Option<IpAddr>, OpError> {
        let c = self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .map_err(op)?;
        Ok(c.network_settings
            .and_then(|n| n.networks)
            .and_then(|mut n| n.remove(network))
            .and_then(|e| e.ip_address)
            .and_then(|ip| ip.parse().ok()))
    }
}
