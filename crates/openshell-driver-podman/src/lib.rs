//! The libpod driver: engine operations over podman-api.
//!
//! It implements [`EngineOps`] and nothing more: the sandbox lifecycle, facts gathering,
//! timeouts and retries come from `openshell-sandbox`, finding the engine (Podman's order) from
//! `openshell-engine`, every connection (through a private proxy podman-api talks to) from
//! `openshell-transport`, and the route from `openshell-runtime`.
//! The same engine reached through Podman's Docker-compatible API (the Docker driver) and
//! through libpod (this driver) yields the same facts that matter, so the one policy gives the
//! same route.
#![deny(missing_docs)]

mod facts;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::{StreamExt, TryStreamExt};
use openshell_driver::{
    labels_of, libpod, Attached, ContainerConfig, ContainerStatus, ContainerSummary, DriverError,
    EngineDocuments, EngineOps, ErrorKind, ImageSummary, LogStream, NetworkInfo, OpError,
    PingHeaders,
};
use openshell_runtime::facts::Endpoint;
use openshell_runtime::NetworkMode;
use openshell_transport::proxy::{Mark, Proxy};
use openshell_transport::raw::{self, RawResponse};
use openshell_transport::transport::{self, Target};
use podman_api::conn::TtyChunk;
use podman_api::models::{ContainerMount, Namespace, Subnet};
use podman_api::opts::{
    ContainerAttachOpts, ContainerCreateOpts, ContainerDeleteOpts, ContainerListFilter,
    ContainerListOpts, ContainerLogsOpts, ContainerStopOpts, ImageImportOpts, ImageListFilter,
    ImageListOpts, NetworkCreateOpts, NetworkListFilter, NetworkListOpts, PullOpts,
};
use podman_api::Podman;
use serde_json::Value;
use tokio_util::compat::FuturesAsyncWriteCompatExt;

pub use facts::info_from_libpod;

const LIBPOD_VERSION: &str = "/v4.0.0/libpod/version";

/// The kind of a podman-api error, from libpod's status code when it answered.
fn op(e: podman_api::Error) -> OpError {
    use podman_api::Error as P;
    let kind = match &e {
        P::Fault { code, .. } => ErrorKind::from_status(code.as_u16()),
        P::SerdeJsonError(_) | P::InvalidResponse(_) | P::ServerError(_) => ErrorKind::BadAnswer,
        _ => ErrorKind::Unreachable,
    };
    OpError::new(kind, e)
}

/// libpod's network model (the same in inspect and list answers) as the plain value.
fn network_info(net: &podman_api::models::Network) -> Result<NetworkInfo, OpError> {
    Ok(NetworkInfo {
        id: net.id.clone().unwrap_or_default(),
        name: net.name.clone().unwrap_or_default(),
        driver: net.driver.clone().unwrap_or_default(),
        labels: labels_of(net.labels.clone()),
        body: serde_json::to_value(net).map_err(|e| OpError::new(ErrorKind::BadAnswer, e))?,
    })
}

/// The port of a `tcp://` Podman endpoint that names none (`podman system service`'s
/// documented example).
const DEFAULT_TCP_PORT: u16 = 8080;

/// A connection to one Podman service.
#[derive(Debug, Clone)]
pub struct PodmanDriver {
    podman: Podman,
    /// podman-api opens its own connections and takes no transport of ours, so it talks to this
    /// proxy, which reaches the engine through the capped transport.
    proxy: Arc<Proxy>,
    endpoint: Target,
    timeout: Duration,
    /// `/_ping`'s headers, when discovery read them just before connecting.
    ping: Option<PingHeaders>,
}

impl PodmanDriver {
    /// Sets up a client for `endpoint` (`unix://`, `tcp://` with or without TLS, or `ssh://`: a
    /// [`Target`] carries the TLS material or ssh settings) and the proxy it talks through;
    /// nothing is sent to the engine until the first call.
    pub async fn connect(
        endpoint: impl Into<Target>,
        timeout: Duration,
    ) -> Result<PodmanDriver, DriverError> {
        PodmanDriver::connect_after_ping(endpoint, timeout, None).await
    }

    /// [`connect`](Self::connect) to an engine whose `/_ping` the caller has just read
    /// (discovery's probe): the facts take its headers instead of asking again.
    pub async fn connect_after_ping(
        endpoint: impl Into<Target>,
        timeout: Duration,
        ping: Option<PingHeaders>,
    ) -> Result<PodmanDriver, DriverError> {
        let endpoint: Target = endpoint.into();
        transport::check(&endpoint).map_err(|source| DriverError::Unsupported {
            endpoint: endpoint.to_string(),
            driver: "podman",
            source,
        })?;
        let endpoint = endpoint.map_endpoint(|e| match e {
            Endpoint::Tcp { host, port, tls } => Endpoint::Tcp {
                host,
                port: Some(port.unwrap_or(DEFAULT_TCP_PORT)),
                tls,
            },
            other => other,
        });
        let proxy = Proxy::start(endpoint.clone(), timeout).map_err(|e| DriverError::Connect {
            endpoint: endpoint.to_string(),
            source: Box::new(e),
        })?;
        Ok(PodmanDriver {
            podman: Podman::unix(proxy.socket()),
            proxy: Arc::new(proxy),
            endpoint,
            timeout,
            ping,
        })
    }

    /// podman-api's error in our terms. A transport failure at the proxy since `mark` (a reply
    /// over the size budget, an engine that did not answer) is what the client only saw as a
    /// closed connection, so it is reported instead; an answer with a status code is not.
    fn fail(&self, mark: Mark, e: podman_api::Error) -> OpError {
        if !matches!(e, podman_api::Error::Fault { .. }) {
            if let Some(incident) = self.proxy.incident_since(mark) {
                return OpError::from(incident);
            }
        }
        op(e)
    }

    /// Runs one podman-api call, reporting its failure through [`PodmanDriver::fail`].
    async fn call<T>(
        &self,
        fut: impl Future<Output = Result<T, podman_api::Error>>,
    ) -> Result<T, OpError> {
        let mark = self.proxy.mark();
        fut.await.map_err(|e| self.fail(mark, e))
    }

    async fn raw_get(&self, path: &str) -> Result<RawResponse, OpError> {
        Ok(raw::get(&self.endpoint, path, self.timeout).await?)
    }

    /// A libpod document read whole; anything but a JSON object means this is not libpod.
    async fn raw_json(&self, call: &'static str, path: &str) -> Result<Value, OpError> {
        let r = self.raw_get(path).await?;
        let not_libpod = || {
            OpError::new(
                ErrorKind::BadAnswer,
                DriverError::WrongApi {
                    endpoint: self.endpoint.to_string(),
                    api: "libpod",
                    call,
                    status: r.status,
                },
            )
        };
        if r.status != 200 {
            return Err(not_libpod());
        }
        match serde_json::from_slice::<Value>(&r.body) {
            Ok(v @ Value::Object(_)) => Ok(v),
            _ => Err(not_libpod()),
        }
    }
}

#[async_trait]
impl EngineOps for PodmanDriver {
    fn driver_name(&self) -> &'static str {
        "podman"
    }

    fn endpoint(&self) -> &Endpoint {
        self.endpoint.endpoint()
    }

    async fn engine_documents(&self) -> Result<EngineDocuments, OpError> {
        // libpod's /info is read whole: podman-api's model predates `rootlessNetworkCmd` and
        // `pasta`, the facts that decide rootless routing.
        let ping = async {
            match &self.ping {
                Some(headers) => Ok(headers.clone()),
                None => self.raw_get("/_ping").await.map(|r| r.headers),
            }
        };
        let (libpod, ping, version) = tokio::join!(
            self.raw_json("libpod info", libpod::INFO),
            ping,
            self.raw_json("libpod version", LIBPOD_VERSION),
        );
        let libpod = libpod?;
        Ok(EngineDocuments {
            ping: ping?,
            version: version?,
            info: info_from_libpod(&libpod),
            libpod_info: Some(libpod),
        })
    }

    async fn create_container(&self, c: &ContainerConfig) -> Result<String, OpError> {
        let env: HashMap<&str, &str> = c
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let builder = ContainerCreateOpts::builder()
            .name(&c.name)
            .image(&c.image)
            .command(&c.command)
            .env(env)
            .labels(c.labels.clone())
            .hosts_add(c.extra_hosts.clone())
            .stdin(c.stdin)
            .remove(c.auto_remove)
            .mounts(c.binds.iter().map(|b| ContainerMount {
                destination: Some(b.target.clone()),
                source: Some(b.source.display().to_string()),
                _type: Some("bind".into()),
                options: Some(vec![
                    "rbind".into(),
                    if b.read_only { "ro" } else { "rw" }.into(),
                ]),
                uid_mappings: None,
                gid_mappings: None,
            }));
        // SIGKILL's number on every Linux architecture.
        let builder = if c.kill_on_stop {
            builder.stop_signal(9)
        } else {
            builder
        };
        let opts = match c.network_mode {
            NetworkMode::Bridge => builder
                .net_namespace(Namespace {
                    nsmode: Some("bridge".into()),
                    value: None,
                })
                // libpod's per-network options: `static_ips` fixes the address.
                .networks([(
                    c.network.clone(),
                    match c.address {
                        Some(ip) => serde_json::json!({ "static_ips": [ip.to_string()] }),
                        None => serde_json::json!({}),
                    },
                )]),
            // libpod's `host` namespace mode joins no network (naming one is refused).
            NetworkMode::Host => builder.net_namespace(Namespace {
                nsmode: Some("host".into()),
                value: None,
            }),
        }
        .build();
        let created = self.call(self.podman.containers().create(&opts)).await?;
        Ok(created.id)
    }

    async fn start_container(&self, id: &str) -> Result<(), OpError> {
        self.call(self.podman.containers().get(id).start(None))
            .await
    }

    async fn inspect_container(&self, id: &str) -> Result<ContainerStatus, OpError> {
        let c = self
            .call(self.podman.containers().get(id).inspect())
            .await?;
        Ok(match c.state {
            Some(state) => ContainerStatus {
                status: state.status.unwrap_or_default(),
                exit_code: state.exit_code.map(i64::from),
            },
            None => ContainerStatus {
                status: String::new(),
                exit_code: None,
            },
        })
    }

    async fn stop_container(&self, id: &str, grace_secs: u32) -> Result<(), OpError> {
        let opts = ContainerStopOpts::builder()
            .timeout(usize::try_from(grace_secs).unwrap_or(usize::MAX))
            .build();
        self.call(self.podman.containers().get(id).stop(&opts))
            .await
    }

    async fn remove_container(&self, id: &str) -> Result<(), OpError> {
        let opts = ContainerDeleteOpts::builder()
            .force(true)
            .volumes(true)
            .build();
        self.call(self.podman.containers().get(id).delete(&opts))
            .await
    }

    async fn list_containers(
        &self,
        label: &str,
        value: &str,
    ) -> Result<Vec<ContainerSummary>, OpError> {
        let opts = ContainerListOpts::builder()
            .all(true)
            .filter([ContainerListFilter::LabelKeyVal(label.into(), value.into())])
            .build();
        let list = self.call(self.podman.containers().list(&opts)).await?;
        Ok(list
            .into_iter()
            .filter_map(|c| {
                Some(ContainerSummary {
                    id: c.id?,
                    labels: labels_of(c.labels),
                })
            })
            .collect())
    }

    fn logs<'a>(&'a self, id: &'a str) -> LogStream<'a> {
        let opts = ContainerLogsOpts::builder()
            .stdout(true)
            .stderr(true)
            .build();
        let container = self.podman.containers().get(id);
        let mark = self.proxy.mark();
        // podman-api's log stream borrows the container handle: the stream owns both.
        async_stream::stream! {
            let mut chunks = container.logs(&opts);
            while let Some(chunk) = chunks.next().await {
                yield chunk.map(Vec::<u8>::from).map_err(|e| self.fail(mark, e));
            }
        }
        .boxed()
    }

    async fn image_exists(&self, image: &str) -> Result<bool, OpError> {
        self.call(self.podman.images().get(image).exists()).await
    }

    async fn pull_image(&self, image: &str) -> Result<(), OpError> {
        let opts = PullOpts::builder().reference(image).build();
        let images = self.podman.images();
        let mark = self.proxy.mark();
        images
            .pull(&opts)
            .map_err(|e| self.fail(mark, e))
            .try_for_each(|report| async move {
                match report.error {
                    Some(err) => Err(OpError::new(ErrorKind::Rejected, err)),
                    None => Ok(()),
                }
            })
            .await
    }

    async fn inspect_network(&self, name: &str) -> Result<NetworkInfo, OpError> {
        let net = self
            .call(self.podman.networks().get(name).inspect())
            .await?;
        network_info(&net)
    }

    async fn list_networks(&self, name: &str) -> Result<Vec<NetworkInfo>, OpError> {
        let opts = NetworkListOpts::builder()
            .filter([NetworkListFilter::Name(name.to_string())])
            .build();
        let list = self.call(self.podman.networks().list(&opts)).await?;
        list.iter().map(network_info).collect()
    }

    async fn create_network(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
        subnet: Option<&openshell_driver::Subnet>,
    ) -> Result<(), OpError> {
        let opts = NetworkCreateOpts::builder()
            .name(name)
            .driver("bridge")
            // Off: we never use the network's DNS (routes are extra hosts), and with it on,
            // netavark must start aardvark-dns for the first container; rootless Podman 5
            // without a systemd user session (an ssh login, a CI job) then fails every start
            // ("aardvark-dns failed to start: Failed to connect to user scope bus").
            .dns_enabled(false)
            .labels(labels.clone());
        let opts = match subnet {
            Some(s) => opts.subnets([Subnet {
                subnet: Some(s.subnet.clone()),
                gateway: s.gateway.clone(),
                lease_range: None,
            }]),
            None => opts,
        }
        .build();
        self.call(self.podman.networks().create(&opts))
            .await
            .map(|_| ())
    }

    async fn remove_network(&self, name: &str) -> Result<(), OpError> {
        self.call(self.podman.networks().get(name).delete())
            .await
            .map(|_| ())
    }

    async fn import_image(&self, reference: &str, tarball: Vec<u8>) -> Result<(), OpError> {
        let opts = ImageImportOpts::builder().reference(reference).build();
        self.call(self.podman.images().import(&opts, tarball))
            .await
            .map(|_| ())
    }

    async fn list_images(&self, repository: &str) -> Result<Vec<ImageSummary>, OpError> {
        let opts = ImageListOpts::builder()
            .filter([ImageListFilter::Reference(repository.into(), None)])
            .build();
        let list = self.call(self.podman.images().list(&opts)).await?;
        Ok(list
            .into_iter()
            .map(|i| ImageSummary {
                id: i.id.unwrap_or_default(),
                tags: i.repo_tags.or(i.names).unwrap_or_default(),
                created: i.created.unwrap_or_default(),
            })
            .collect())
    }

    async fn remove_image(&self, reference: &str) -> Result<(), OpError> {
        // `delete`, not `remove`: podman-api's `remove` forces.
        self.call(self.podman.images().get(reference).delete())
            .await
    }

    async fn attach(&self, id: &str) -> Result<Attached, OpError> {
        // libpod applies detach keys to plain stdin as well: ctrl-p ctrl-q in the byte stream
        // would end the session. An empty value turns them off.
        let opts = ContainerAttachOpts::builder()
            .stdin(true)
            .stdout(true)
            .stderr(false)
            .detach_keys("")
            .build();
        let container = self.podman.containers().get(id);
        let attached = self.call(container.attach(&opts)).await?;
        let (chunks, stdin) = attached.split();
        let stdout = chunks
            .filter_map(|chunk| async move {
                match chunk {
                    Ok(TtyChunk::StdOut(bytes)) => Some(Ok(bytes.into())),
                    Ok(TtyChunk::StdErr(_) | TtyChunk::StdIn(_)) => None,
                    Err(e) => Some(Err(std::io::Error::other(e))),
                }
            })
            .boxed();
        Ok(Attached::new(stdout, Box::pin(stdin.compat_write())))
    }

    async fn container_address(&self, id: &str, network: &str) -> Result<Option<IpAddr>, OpError> {
        let c = self
            .call(self.podman.containers().get(id).inspect())
            .await?;
        Ok(c.network_settings
            .and_then(|n| n.networks)
            .and_then(|mut n| n.remove(network))
            .and_then(|e| e.ip_address)
            .and_then(|ip| ip.parse().ok()))
    }
}
