//! The sandbox lifecycle, written once for every driver on [`SandboxDriver`]: create with
//! cleanup, the bounded removal retry, listing, the capped log read, gathering facts, and
//! marking and sweeping probe containers.

use std::time::Duration;

use futures_util::StreamExt;
use openshell_driver::{ContainerConfig, ErrorKind};
use openshell_runtime::consts::{LABEL_MANAGED, LABEL_PROBE, LABEL_SANDBOX};
use openshell_runtime::{Facts, Route};
use serde::Serialize;
use serde_json::{json, Value};

use crate::driver::SandboxDriver;
use crate::error::EngineError;
use crate::host::{current_os, host_facts, HostFacts};
use crate::network::is_ours;
use crate::reap::{self, Owner, Sweep, SweptProbe};
use crate::spec::{extra_host_entries, SandboxSpec};

/// Most log bytes kept for diagnosis.
const MAX_LOGS: usize = 64 * 1024;
/// Seconds a stopping sandbox gets before it is killed.
const STOP_GRACE_SECS: u32 = 2;

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

impl SandboxDriver {
    /// Gathers the facts document (engine answers, the sandbox network, the gateway host's
    /// facts) and parses it. Creates the sandbox network, labelled as ours, when missing.
    pub async fn gather_facts(&self) -> Result<GatheredFacts, EngineError> {
        // The host's own facts (netlink) are read while the engine answers.
        let host = async {
            match self.options().host.clone() {
                Some(host) => host,
                None => tokio::task::spawn_blocking(host_facts)
                    .await
                    .unwrap_or_else(|e| {
                        tracing::warn!(error = %e, "reading the host's addresses failed");
                        HostFacts {
                            os: current_os(),
                            ipv4: None,
                        }
                    }),
            }
        };
        let (docs, network, host) = tokio::join!(
            self.call("engine facts", self.ops().engine_documents()),
            self.ensure_network(),
            host,
        );
        let mut document = json!({
            "host_os": host.os.as_str(),
            "endpoint": self.endpoint().to_string(),
        });
        if let Some(ip) = host.ipv4 {
            document["host_ipv4"] = json!(ip.to_string());
        }
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
            endpoint: self.endpoint().to_string(),
            source,
        })?;
        Ok(GatheredFacts { facts, document })
    }

    /// The sandbox network's inspect body, creating the network (bridge, labelled as ours) when
    /// it does not exist. Safe to call from any number of runs at once: they agree on one
    /// network, and duplicates of ours left by earlier races are removed. A same-named network
    /// with another driver is refused.
    pub async fn ensure_network(&self) -> Result<Value, EngineError> {
        crate::network::ensure(self).await
    }

    /// Creates (not starts) a sandbox that calls back along `route`. A spec or route that does
    /// not validate changes nothing; a failed create leaves nothing behind.
    pub async fn create(
        &self,
        spec: &SandboxSpec,
        route: &Route,
    ) -> Result<SandboxHandle, EngineError> {
        let config = container_config(self, spec, route)?;
        create_cleanly(self, spec, config).await
    }

    /// Creates (not starts) a reachability probe: like [`create`](Self::create), but labelled
    /// as a probe of this process that is stale `lifetime` from now at the latest, and removed
    /// by the engine itself once it exits. An interrupted run leaves at most a probe that never
    /// started, which [`sweep_probes`](Self::sweep_probes) finds.
    pub async fn create_probe(
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
        // The built-in probe is the relay binary, its container's first process without a
        // SIGTERM handler (as is a script's `sh`): removing it must not wait a stop timeout.
        config.kill_on_stop = true;
        create_cleanly(self, spec, config).await
    }

    /// Removes the probe containers of ours that `which` selects (on every engine network) and
    /// returns them. A probe that cannot be removed is logged and left for the next sweep.
    pub async fn sweep_probes(&self, which: Sweep) -> Result<Vec<SweptProbe>, EngineError> {
        let probes = self
            .call(
                "container list",
                self.ops().list_containers(LABEL_PROBE, "true"),
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

    /// Starts a created sandbox; it then calls back along the route it was created with.
    pub async fn start(&self, sandbox: &SandboxHandle) -> Result<(), EngineError> {
        self.call(
            "container start",
            self.ops().start_container(&sandbox.container_id),
        )
        .await
    }

    /// The sandbox's state in one vocabulary for both engines (Docker's `exited` and libpod's
    /// `stopped` are both [`SandboxState::Exited`]).
    pub async fn inspect(&self, sandbox: &SandboxHandle) -> Result<SandboxState, EngineError> {
        let status = self
            .call(
                "container inspect",
                self.ops().inspect_container(&sandbox.container_id),
            )
            .await?;
        Ok(SandboxState::from_engine(&status.status, status.exit_code))
    }

    /// Stops it; a stopped or missing sandbox is fine.
    pub async fn stop(&self, sandbox: &SandboxHandle) -> Result<(), EngineError> {
        match self
            .call(
                "container stop",
                self.ops()
                    .stop_container(&sandbox.container_id, STOP_GRACE_SECS),
            )
            .await
        {
            Err(e) if matches!(e.kind(), Some(ErrorKind::NotFound | ErrorKind::NotModified)) => {
                Ok(())
            }
            other => other,
        }
    }

    /// Removes it, retrying a bounded number of times while the engine reports a transient
    /// failure; removing a missing sandbox succeeds.
    pub async fn delete(&self, sandbox: &SandboxHandle) -> Result<(), EngineError> {
        // Killed first, so that no engine waits a stop timeout; Docker answers 409 while it is
        // already removing the container (a probe the engine removes itself); the next
        // attempt finds it gone.
        self.remove_now("sandbox", &sandbox.container_id).await
    }

    /// Every sandbox of ours on this engine.
    pub async fn list(&self) -> Result<Vec<SandboxHandle>, EngineError> {
        let all = self
            .call(
                "container list",
                self.ops().list_containers(LABEL_MANAGED, "true"),
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

    /// Its output (at most 64 KiB), for diagnosing a sandbox that did not call back.
    pub async fn logs(&self, sandbox: &SandboxHandle) -> Result<String, EngineError> {
        let collect = async {
            let mut out: Vec<u8> = Vec::new();
            let mut stream = self.ops().logs(&sandbox.container_id);
            while let Some(chunk) = stream.next().await {
                out.extend_from_slice(&chunk?);
                if out.len() >= MAX_LOGS {
                    out.truncate(MAX_LOGS);
                    break;
                }
            }
            Ok(String::from_utf8_lossy(&out).into_owned())
        };
        self.call("container logs", collect).await
    }

    /// Makes sure `image` is present, pulling it when missing.
    pub async fn ensure_image(&self, image: &str) -> Result<(), EngineError> {
        if self
            .call("image inspect", self.ops().image_exists(image))
            .await?
        {
            return Ok(());
        }
        self.call("image pull", self.ops().pull_image(image)).await
    }
}

/// What a sandbox is created with: the validated spec and route, on the sandbox network.
fn container_config(
    ops: &SandboxDriver,
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
        kill_on_stop: false,
        binds: Vec::new(),
        address: None,
    })
}

/// Creates the container; a failed create leaves nothing of ours behind and removes nothing
/// of anyone else's ([`SandboxDriver::create_cleanly`]).
async fn create_cleanly(
    ops: &SandboxDriver,
    spec: &SandboxSpec,
    config: ContainerConfig,
) -> Result<SandboxHandle, EngineError> {
    let container_id = ops.create_cleanly(config).await?;
    Ok(SandboxHandle {
        id: spec.id.clone(),
        container_id,
    })
}

#[cfg(test)]
mod tests {
    use super::SandboxState;
    use super::*;
    use crate::driver::DriverOptions;
    use crate::fake::FakeOps;

    fn config(name: &str) -> ContainerConfig {
        ContainerConfig {
            name: name.to_string(),
            image: "img".into(),
            command: Vec::new(),
            env: Vec::new(),
            labels: [(LABEL_MANAGED.to_string(), "true".to_string())].into(),
            extra_hosts: Vec::new(),
            network: "openshell".into(),
            stdin: false,
            network_mode: openshell_runtime::NetworkMode::Bridge,
            auto_remove: false,
            kill_on_stop: false,
            binds: Vec::new(),
            address: None,
        }
    }

    fn spec(id: &str) -> SandboxSpec {
        SandboxSpec {
            id: id.into(),
            image: "img".into(),
            command: Vec::new(),
            token: String::new(),
            labels: Default::default(),
        }
    }

    /// A create that fails because the name is taken (Docker 409, Podman 500 "already in
    /// use") removes nothing: the container holding the name is someone else's, or the running
    /// sandbox of an earlier create with the same id.
    #[tokio::test]
    async fn a_name_conflict_removes_nothing() {
        for kind in [ErrorKind::Conflict, ErrorKind::Transient] {
            let ops = FakeOps::new();
            ops.with(|s| s.conflict_kind = Some(kind));
            let theirs = ops.add("openshell-sandbox-s1", &[], "running");
            let driver = SandboxDriver::new(ops.clone(), DriverOptions::default());
            let cfg = config("openshell-sandbox-s1");
            let Err(e) = create_cleanly(&driver, &spec("s1"), cfg).await else {
                panic!("a taken name was created")
            };
            assert_eq!(e.kind(), Some(kind));
            assert_eq!(
                ops.with(|s| s.removed.clone()),
                Vec::<String>::new(),
                "{kind:?}"
            );
            assert_eq!(ops.with(|s| s.containers[0].id.clone()), theirs);
        }
    }

    /// Removing a probe or sandbox whose first process ignores SIGTERM does not wait the
    /// engine's stop timeout: Podman's forced removal did (10 s, our whole call timeout), so
    /// Ctrl-C took 10 s and reported nothing removed.
    #[tokio::test(start_paused = true)]
    async fn removal_does_not_wait_a_stop_timeout() {
        let ops = FakeOps::new();
        ops.with(|s| s.forced_removal_wait = Some(Duration::from_secs(10)));
        let id = ops.add("probe", &[(LABEL_MANAGED, "true")], "running");
        let driver = SandboxDriver::new(ops.clone(), DriverOptions::default());
        let began = tokio::time::Instant::now();
        let handle = SandboxHandle {
            id: "p".into(),
            container_id: id,
        };
        driver
            .delete(&handle)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            began.elapsed() < Duration::from_secs(1),
            "removal took {:?}",
            began.elapsed()
        );
        assert_eq!(ops.names(), Vec::<String>::new());
    }

    /// A create that happened but whose reply was lost (or timed out) leaves nothing: the
    /// container carrying this attempt's label is removed, and only that one.
    #[tokio::test]
    async fn a_create_that_failed_after_happening_removes_only_its_own() {
        let ops = FakeOps::new();
        ops.add("other", &[(LABEL_MANAGED, "true")], "running");
        ops.with(|s| s.fail_after_create = Some(ErrorKind::Unreachable));
        let driver = SandboxDriver::new(ops.clone(), DriverOptions::default());
        assert!(create_cleanly(&driver, &spec("s2"), config("mine"))
            .await
            .is_err());
        assert_eq!(ops.names(), vec!["other".to_string()]);
        assert_eq!(ops.with(|s| s.removed.clone()), vec!["mine".to_string()]);
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
