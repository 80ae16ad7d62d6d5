//! The sandbox lifecycle, written once for every driver: [`SandboxDriver`] is implemented for
//! each [`EngineOps`], so the Docker and Podman drivers share create-with-cleanup, the bounded
//! removal retry, listing, the capped log read, owning the sandbox network, gathering facts, and
//! marking and sweeping probe containers.
//!
//! Every engine call goes through one helper (`traced`): one `engine_call` tracing span, one timeout,
//! and one error shape ([`EngineError`]) whose kind the driver decided from the status code.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use openshell_runtime::consts::{
    DEFAULT_SANDBOX_NETWORK, LABEL_MANAGED, LABEL_PROBE, LABEL_SANDBOX,
};
use openshell_runtime::facts::Endpoint;
use openshell_runtime::{Facts, Route};
use serde::Serialize;
use serde_json::{json, Value};
use tracing::Instrument;

use crate::error::{EngineError, ErrorKind, OpError};
use crate::host::{host_facts, HostFacts};
use crate::network::{self, is_ours};
use crate::reap::{self, Owner, Sweep, SweptProbe};
use crate::spec::{extra_host_entries, SandboxSpec};
use crate::support::{ContainerConfig, EngineOps};

/// How many times a removal is tried while the engine reports a transient failure.
pub(crate) const REMOVE_ATTEMPTS: u32 = 4;
/// Pause between removal attempts.
pub(crate) const REMOVE_PAUSE: Duration = Duration::from_millis(250);

/// Runs `remove` (one engine call removing `what`) until it succeeds or finds nothing to remove,
/// trying again, at most [`REMOVE_ATTEMPTS`] times in all, while the engine answers with a
/// transient failure or a conflict: an object whose owner is exiting or being removed at that
/// moment (a container exiting on its own, a network whose last endpoint is going) is refused
/// for a moment, then goes (Podman answers 500, Docker 409).
pub(crate) async fn remove_retrying<F, Fut>(what: &str, mut remove: F) -> Result<(), EngineError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), EngineError>>,
{
    let mut attempt = 1;
    loop {
        match remove().await {
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e)
                if attempt < REMOVE_ATTEMPTS
                    && matches!(e.kind(), Some(ErrorKind::Transient | ErrorKind::Conflict)) =>
            {
                tracing::debug!(error = %e, attempt, what, "removal failed; retrying");
                attempt += 1;
                tokio::time::sleep(REMOVE_PAUSE).await;
            }
            other => return other,
        }
    }
}
/// Most log bytes kept for diagnosis.
const MAX_LOGS: usize = 64 * 1024;
/// Seconds a stopping sandbox gets before it is killed.
const STOP_GRACE_SECS: u32 = 2;

/// How a driver talks to its engine; the same for both drivers.
#[derive(Debug, Clone)]
pub struct DriverOptions {
    /// The sandbox network's name (created, labelled as ours, when missing).
    pub network: String,
    /// The longest any single engine call may take.
    pub timeout: Duration,
    /// The gateway host's facts; `None` reads this machine's. Replays of another machine's
    /// captures set them, so the host is an input like every other fact.
    pub host: Option<HostFacts>,
}

impl Default for DriverOptions {
    fn default() -> Self {
        DriverOptions {
            network: DEFAULT_SANDBOX_NETWORK.to_string(),
            timeout: Duration::from_secs(20),
            host: None,
        }
    }
}

/// Facts gathered from a live engine, with the document they were parsed from (what
/// `--dump-facts` writes, so anyone can replay the decision).
#[derive(Debug, Clone)]
pub struct GatheredFacts {
    /// The parsed facts.
    pub facts: Facts,
    /// The facts document.
    pub document: Value,
}

/// A sandbox container of ours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SandboxHandle {
    /// The sandbox's id, as given in its [`SandboxSpec`].
    pub id: String,
    /// The engine's container id (or name, for a container whose id was never returned).
    pub container_id: String,
}

/// A sandbox's state as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SandboxState {
    /// Created, not started.
    Created,
    /// Started and not yet exited.
    Running,
    /// Exited with this code (`-1` when the engine reported none).
    Exited(i64),
    /// Anything else the engine says, in its words.
    Other(String),
}

impl SandboxState {
    /// Docker's and libpod's state words, in one vocabulary.
    fn from_engine(status: &str, exit_code: Option<i64>) -> SandboxState {
        match status {
            "created" | "configured" => SandboxState::Created,
            "running" => SandboxState::Running,
            "exited" | "stopped" => SandboxState::Exited(exit_code.unwrap_or(-1)),
            "" => SandboxState::Other("no state reported".into()),
            other => SandboxState::Other(openshell_runtime::display_value(other)),
        }
    }
}

/// Runs one engine call of `ops` with the driver's timeout, inside an `engine_call` tracing
/// span, in the shared error shape.
pub(crate) async fn traced<O, T, F>(ops: &O, call: &'static str, fut: F) -> Result<T, EngineError>
where
    O: EngineOps + ?Sized,
    F: Future<Output = Result<T, OpError>>,
{
    let endpoint = ops.endpoint();
    let after = ops.options().timeout;
    let span =
        tracing::info_span!("engine_call", call, driver = ops.driver_name(), endpoint = %endpoint);
    match tokio::time::timeout(after, fut).instrument(span).await {
        Err(_) => Err(EngineError::Timeout {
            call,
            endpoint: endpoint.to_string(),
            after,
        }),
        Ok(Err(OpError { kind, source })) => Err(EngineError::Call {
            call,
            endpoint: endpoint.to_string(),
            kind,
            source,
        }),
        Ok(Ok(v)) => Ok(v),
    }
}

/// A container engine that runs sandboxes: the lifecycle every gateway needs, the same through
/// either driver. Implemented for every [`EngineOps`]; drivers do not implement it themselves.
#[async_trait]
pub trait SandboxDriver: Send + Sync {
    /// `docker` or `podman`.
    fn name(&self) -> &'static str;

    /// The engine endpoint in use.
    fn endpoint(&self) -> &Endpoint;

    /// The sandbox network's name.
    fn network(&self) -> &str;

    /// Gathers the facts document (engine answers, the sandbox network, the gateway host's
    /// facts) and parses it. Creates the sandbox network, labelled as ours, when missing.
    async fn gather_facts(&self) -> Result<GatheredFacts, EngineError>;

    /// The sandbox network's inspect body, creating the network (bridge, labelled as ours) when
    /// it does not exist. Safe to call from any number of runs at once: they agree on one
    /// network, and duplicates of ours left by earlier races are removed. A same-named network
    /// with another driver is refused.
    async fn ensure_network(&self) -> Result<Value, EngineError>;

    /// Creates (not starts) a sandbox that calls back along `route`. A spec or route that does
    /// not validate changes nothing; a failed create leaves nothing behind.
    async fn create(&self, spec: &SandboxSpec, route: &Route)
        -> Result<SandboxHandle, EngineError>;

    /// Creates (not starts) a reachability probe: like [`create`](Self::create), but labelled
    /// as a probe of this process that is stale `lifetime` from now at the latest, and removed
    /// by the engine itself once it exits. An interrupted run leaves at most a probe that never
    /// started, which [`sweep_probes`](Self::sweep_probes) finds.
    async fn create_probe(
        &self,
        spec: &SandboxSpec,
        route: &Route,
        lifetime: Duration,
    ) -> Result<SandboxHandle, EngineError>;

    /// Removes the probe containers of ours that `which` selects (on every engine network) and
    /// returns them. A probe that cannot be removed is logged and left for the next sweep.
    async fn sweep_probes(&self, which: Sweep) -> Result<Vec<SweptProbe>, EngineError>;

    /// Starts a created sandbox; it then calls back along the route it was created with.
    async fn start(&self, sandbox: &SandboxHandle) -> Result<(), EngineError>;

    /// The sandbox's state in one vocabulary for both engines (Docker's `exited` and libpod's
    /// `stopped` are both [`SandboxState::Exited`]).
    async fn inspect(&self, sandbox: &SandboxHandle) -> Result<SandboxState, EngineError>;

    /// Stops it; a stopped or missing sandbox is fine.
    async fn stop(&self, sandbox: &SandboxHandle) -> Result<(), EngineError>;

    /// Removes it, retrying a bounded number of times while the engine reports a transient
    /// failure; removing a missing sandbox succeeds.
    async fn delete(&self, sandbox: &SandboxHandle) -> Result<(), EngineError>;

    /// Every sandbox of ours on this engine.
    async fn list(&self) -> Result<Vec<SandboxHandle>, EngineError>;

    /// Its output (at most 64 KiB), for diagnosing a sandbox that did not call back.
    async fn logs(&self, sandbox: &SandboxHandle) -> Result<String, EngineError>;

    /// Removes the sandbox network if it is ours (labelled) and exists.
    async fn remove_network(&self) -> Result<(), EngineError>;

    /// Makes sure `image` is present, pulling it when missing.
    async fn ensure_image(&self, image: &str) -> Result<(), EngineError>;
}

#[async_trait]
impl<T: EngineOps + ?Sized> SandboxDriver for T {
    fn name(&self) -> &'static str {
        self.driver_name()
    }

    fn endpoint(&self) -> &Endpoint {
        EngineOps::endpoint(self)
    }

    fn network(&self) -> &str {
        &self.options().network
    }

    async fn gather_facts(&self) -> Result<GatheredFacts, EngineError> {
        let host = self.options().host.clone().unwrap_or_else(host_facts);
        let mut document = json!({
            "host_os": host.os.as_str(),
            "endpoint": EngineOps::endpoint(self).to_string(),
        });
        if let Some(ip) = host.ipv4 {
            document["host_ipv4"] = json!(ip.to_string());
        }
        let (docs, network) = tokio::join!(
            traced(self, "engine facts", self.engine_documents()),
            self.ensure_network(),
        );
        let docs = docs?;
        document["ping"] = json!(docs.ping);
        document["version"] = docs.version;
        document["info"] = docs.info;
        if let Some(libpod) = docs.libpod_info {
            document["libpod_info"] = libpod;
        }
        document["network"] = network?;
        // Proxy passwords and URL user information never leave the driver (Podman does not
        // mask them as Docker does), so neither the facts nor `--dump-facts` carry them.
        openshell_runtime::facts::redact_document(&mut document);
        let facts = Facts::from_value(&document).map_err(|source| EngineError::Facts {
            endpoint: EngineOps::endpoint(self).to_string(),
            source,
        })?;
        Ok(GatheredFacts { facts, document })
    }

    async fn ensure_network(&self) -> Result<Value, EngineError> {
        network::ensure(self).await
    }

    async fn create(
        &self,
        spec: &SandboxSpec,
        route: &Route,
    ) -> Result<SandboxHandle, EngineError> {
        let config = container_config(self, spec, route)?;
        create_cleanly(self, spec, config).await
    }

    async fn create_probe(
        &self,
        spec: &SandboxSpec,
        route: &Route,
        lifetime: Duration,
    ) -> Result<SandboxHandle, EngineError> {
        let mut config = container_config(self, spec, route)?;
        config
            .labels
            .extend(reap::probe_labels(&Owner::here(), lifetime));
        config.auto_remove = true;
        create_cleanly(self, spec, config).await
    }

    async fn sweep_probes(&self, which: Sweep) -> Result<Vec<SweptProbe>, EngineError> {
        let probes = traced(
            self,
            "container list",
            self.list_containers(LABEL_PROBE, "true"),
        )
        .await?;
        let (here, now) = (Owner::here(), reap::now_secs());
        let mut swept = Vec::new();
        for c in probes.into_iter().filter(|c| is_ours(&c.labels)) {
            let Some(reason) = reap::sweep_reason(which, &c.labels, &here, now, &reap::pid_alive)
            else {
                continue;
            };
            let handle = SandboxHandle {
                id: c.labels.get(LABEL_SANDBOX).cloned().unwrap_or_default(),
                container_id: c.id,
            };
            match self.delete(&handle).await {
                Ok(()) => swept.push(SweptProbe {
                    container_id: handle.container_id,
                    sandbox_id: handle.id,
                    reason,
                }),
                Err(e) => {
                    tracing::warn!(error = %e, container = %handle.container_id, "stale probe container not removed; the next run tries again");
                }
            }
        }
        Ok(swept)
    }

    async fn start(&self, sandbox: &SandboxHandle) -> Result<(), EngineError> {
        traced(
            self,
            "container start",
            self.start_container(&sandbox.container_id),
        )
        .await
    }

    async fn inspect(&self, sandbox: &SandboxHandle) -> Result<SandboxState, EngineError> {
        let status = traced(
            self,
            "container inspect",
            self.inspect_container(&sandbox.container_id),
        )
        .await?;
        Ok(SandboxState::from_engine(&status.status, status.exit_code))
    }

    async fn stop(&self, sandbox: &SandboxHandle) -> Result<(), EngineError> {
        match traced(
            self,
            "container stop",
            self.stop_container(&sandbox.container_id, STOP_GRACE_SECS),
        )
        .await
        {
            Err(e) if matches!(e.kind(), Some(ErrorKind::NotFound | ErrorKind::NotModified)) => {
                Ok(())
            }
            other => other,
        }
    }

    async fn delete(&self, sandbox: &SandboxHandle) -> Result<(), EngineError> {
        // Docker answers 409 while it is already removing the container (a probe the engine
        // removes itself); the next attempt finds it gone.
        remove_retrying("sandbox", || {
            traced(
                self,
                "container remove",
                self.remove_container(&sandbox.container_id),
            )
        })
        .await
    }

    async fn list(&self) -> Result<Vec<SandboxHandle>, EngineError> {
        let all = traced(
            self,
            "container list",
            self.list_containers(LABEL_MANAGED, "true"),
        )
        .await?;
        Ok(all
            .into_iter()
            .filter_map(|c| {
                Some(SandboxHandle {
                    id: c.labels.get(LABEL_SANDBOX)?.clone(),
                    container_id: c.id,
                })
            })
            .collect())
    }

    async fn logs(&self, sandbox: &SandboxHandle) -> Result<String, EngineError> {
        let collect = async {
            let mut out: Vec<u8> = Vec::new();
            let mut stream = EngineOps::logs(self, &sandbox.container_id);
            while let Some(chunk) = stream.next().await {
                out.extend_from_slice(&chunk?);
                if out.len() >= MAX_LOGS {
                    out.truncate(MAX_LOGS);
                    break;
                }
            }
            Ok(String::from_utf8_lossy(&out).into_owned())
        };
        traced(self, "container logs", collect).await
    }

    async fn remove_network(&self) -> Result<(), EngineError> {
        let name = self.options().network.as_str();
        let net = match traced(self, "network inspect", self.inspect_network(name)).await {
            Err(e) if e.is_not_found() => return Ok(()),
            other => other?,
        };
        if !is_ours(&net.labels) {
            return Ok(());
        }
        // Our relays sit on our network: they go with it. A sandbox or relay removed just now
        // may still hold its endpoint for a moment.
        crate::relay::remove_relays(self).await?;
        remove_retrying("network", || {
            traced(
                self,
                "network remove",
                EngineOps::remove_network(self, name),
            )
        })
        .await
    }

    async fn ensure_image(&self, image: &str) -> Result<(), EngineError> {
        if traced(self, "image inspect", self.image_exists(image)).await? {
            return Ok(());
        }
        traced(self, "image pull", self.pull_image(image)).await
    }
}

/// What a sandbox is created with: the validated spec and route, on the sandbox network.
fn container_config<O: EngineOps + ?Sized>(
    ops: &O,
    spec: &SandboxSpec,
    route: &Route,
) -> Result<ContainerConfig, EngineError> {
    spec.validate()?;
    Ok(ContainerConfig {
        name: spec.container_name(),
        image: spec.image.clone(),
        command: spec.command.clone(),
        env: spec.env(route),
        labels: spec.all_labels(),
        extra_hosts: extra_host_entries(route)?,
        network: ops.options().network.clone(),
        stdin: false,
        network_mode: route.network_mode(),
        auto_remove: false,
    })
}

/// Creates the container; a failed create leaves nothing behind.
async fn create_cleanly<O: EngineOps + ?Sized>(
    ops: &O,
    spec: &SandboxSpec,
    config: ContainerConfig,
) -> Result<SandboxHandle, EngineError> {
    match traced(ops, "container create", ops.create_container(&config)).await {
        Ok(container_id) => Ok(SandboxHandle {
            id: spec.id.clone(),
            container_id,
        }),
        Err(e) => {
            // A create that timed out may still have happened: leave nothing behind.
            let leftover = SandboxHandle {
                id: spec.id.clone(),
                container_id: config.name,
            };
            if let Err(cleanup) = ops.delete(&leftover).await {
                tracing::warn!(error = %cleanup, container = %leftover.container_id, "failed create not cleaned up");
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{remove_retrying, SandboxState, REMOVE_ATTEMPTS};
    use crate::error::{EngineError, ErrorKind};
    use std::cell::Cell;

    fn failing(kind: ErrorKind) -> EngineError {
        EngineError::Call {
            call: "network remove",
            endpoint: "unix:///run/podman/podman.sock".into(),
            kind,
            source: "network is being used".into(),
        }
    }

    /// Podman answers 500 for a network whose last container is still going: tried again, a
    /// bounded number of times. A refusal (Docker's 403 "has active endpoints") is final at
    /// once, and "not found" means done.
    #[tokio::test]
    async fn removals_retry_transient_failures_a_bounded_number_of_times() {
        let calls = Cell::new(0);
        let answers = |fail_first: u32, kind: ErrorKind| {
            calls.set(0);
            let calls = &calls;
            move || {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move {
                    if n <= fail_first {
                        Err(failing(kind))
                    } else {
                        Ok(())
                    }
                }
            }
        };
        assert!(remove_retrying("network", answers(2, ErrorKind::Transient))
            .await
            .is_ok());
        assert_eq!(calls.get(), 3);
        let forever = remove_retrying("network", answers(u32::MAX, ErrorKind::Conflict)).await;
        assert_eq!(forever.ok(), None);
        assert_eq!(calls.get(), REMOVE_ATTEMPTS);
        let refused = remove_retrying("network", answers(u32::MAX, ErrorKind::Rejected)).await;
        assert_eq!(
            refused.err().and_then(|e| e.kind()),
            Some(ErrorKind::Rejected)
        );
        assert_eq!(calls.get(), 1);
        let gone = remove_retrying("network", answers(u32::MAX, ErrorKind::NotFound)).await;
        assert!(gone.is_ok());
        assert_eq!(calls.get(), 1);
    }

    #[test]
    fn both_engines_state_words_map_to_one_vocabulary() {
        assert_eq!(
            SandboxState::from_engine("configured", None),
            SandboxState::Created
        );
        assert_eq!(
            SandboxState::from_engine("stopped", Some(3)),
            SandboxState::Exited(3)
        );
        assert_eq!(
            SandboxState::from_engine("exited", None),
            SandboxState::Exited(-1)
        );
        assert_eq!(
            SandboxState::from_engine("paused\n", None),
            SandboxState::Other("paused\\n".into())
        );
    }
}
