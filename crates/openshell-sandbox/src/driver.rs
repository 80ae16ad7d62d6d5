//! The lifecycle's handle on one engine: [`SandboxDriver`] is a driver's engine operations
//! (any [`EngineOps`]) with the options every call runs under. Every engine call passes
//! [`SandboxDriver::call`]: one `engine_call` tracing span, one timeout, and one error shape
//! ([`EngineError`]) whose kind the driver decided from the status code.
//!
//! The lifecycle itself is written on this type in the modules above it: sandboxes and
//! probes (`lifecycle`), the sandbox network (`network`), relays (`relay`).

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use openshell_driver::{ContainerConfig, EngineOps, ErrorKind, OpError};
use openshell_runtime::consts::{DEFAULT_SANDBOX_NETWORK, LABEL_CREATE};
use openshell_runtime::facts::Endpoint;
use tracing::Instrument;

use crate::error::EngineError;
use crate::host::HostFacts;
use crate::token::random_hex;

/// How many times a removal is tried while the engine reports a transient failure.
pub(crate) const REMOVE_ATTEMPTS: u32 = 4;
/// Pause between removal attempts.
pub(crate) const REMOVE_PAUSE: Duration = Duration::from_millis(250);

/// How the lifecycle talks to an engine; the same for every driver.
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

/// A container engine that runs sandboxes: one driver's engine operations with the options
/// they run under. The lifecycle every gateway needs (gather facts, own the sandbox network,
/// create, start, inspect, stop, delete, list, logs, probes, relays) is written once on this
/// type, so it is the same through every driver. Cloning is cheap and shares the connection.
#[derive(Clone)]
pub struct SandboxDriver {
    ops: Arc<dyn EngineOps>,
    opts: DriverOptions,
}

impl fmt::Debug for SandboxDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxDriver")
            .field("driver", &self.ops.driver_name())
            .field("endpoint", &self.ops.endpoint().to_string())
            .field("opts", &self.opts)
            .finish()
    }
}

impl SandboxDriver {
    /// The lifecycle over `ops` (a connected driver), with `opts`.
    pub fn new(ops: impl EngineOps + 'static, opts: DriverOptions) -> SandboxDriver {
        SandboxDriver::from_arc(Arc::new(ops), opts)
    }

    /// [`new`](Self::new) for a driver already shared.
    pub fn from_arc(ops: Arc<dyn EngineOps>, opts: DriverOptions) -> SandboxDriver {
        SandboxDriver { ops, opts }
    }

    /// The same engine connection with another sandbox network.
    pub fn with_network(&self, network: impl Into<String>) -> SandboxDriver {
        SandboxDriver {
            ops: Arc::clone(&self.ops),
            opts: DriverOptions {
                network: network.into(),
                ..self.opts.clone()
            },
        }
    }

    /// The driver's name: `docker` or `podman`.
    pub fn name(&self) -> &'static str {
        self.ops.driver_name()
    }

    /// The engine endpoint in use.
    pub fn endpoint(&self) -> &Endpoint {
        self.ops.endpoint()
    }

    /// The sandbox network's name.
    pub fn network(&self) -> &str {
        &self.opts.network
    }

    /// The options every call runs under.
    pub fn options(&self) -> &DriverOptions {
        &self.opts
    }

    /// The driver's engine operations, for a caller that needs one call the lifecycle does not
    /// make (each is unbounded in time: run it through [`call`](Self::call)).
    pub fn ops(&self) -> &dyn EngineOps {
        self.ops.as_ref()
    }

    /// Runs one engine call with the driver's timeout, inside an `engine_call` tracing span,
    /// in the shared error shape.
    pub async fn call<T, F>(&self, call: &'static str, fut: F) -> Result<T, EngineError>
    where
        F: Future<Output = Result<T, OpError>>,
    {
        let endpoint = self.ops.endpoint();
        let after = self.opts.timeout;
        let span = tracing::info_span!("engine_call", call, driver = self.ops.driver_name(), endpoint = %endpoint);
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
}

impl SandboxDriver {
    /// Creates a container; a create that failed leaves nothing of ours behind and removes
    /// nothing of anyone else's. A name conflict (Docker 409; Podman 500 "already in use", whose
    /// kind is only "engine error") means someone else's container holds the name: it is never
    /// removed. A create that failed otherwise (a timeout, a lost reply) may still have
    /// happened: only a container carrying this attempt's random [`LABEL_CREATE`] is removed.
    pub(crate) async fn create_cleanly(
        &self,
        mut config: ContainerConfig,
    ) -> Result<String, EngineError> {
        let attempt = match random_hex(16) {
            Ok(attempt) => {
                config
                    .labels
                    .insert(LABEL_CREATE.to_string(), attempt.clone());
                Some(attempt)
            }
            Err(e) => {
                tracing::warn!(error = %e, "no create label; a failed create is not cleaned up");
                None
            }
        };
        let err = match self
            .call("container create", self.ops().create_container(&config))
            .await
        {
            Ok(id) => return Ok(id),
            Err(e) => e,
        };
        let Some(attempt) = attempt.filter(|_| err.kind() != Some(ErrorKind::Conflict)) else {
            return Err(err);
        };
        let made = match self
            .call(
                "container list",
                self.ops().list_containers(LABEL_CREATE, &attempt),
            )
            .await
        {
            Ok(made) => made,
            Err(cleanup) => {
                tracing::warn!(error = %cleanup, container = %config.name, "failed create not cleaned up");
                return Err(err);
            }
        };
        for c in made {
            let removed = remove_retrying("container", || {
                self.call("container remove", self.ops().remove_container(&c.id))
            })
            .await;
            if let Err(cleanup) = removed {
                tracing::warn!(error = %cleanup, container = %c.id, "failed create not cleaned up");
            }
        }
        Err(err)
    }
}

impl SandboxDriver {
    /// Removes container `id` (`what` it is, for the log) at once: killed first (a stop with
    /// no grace), then removed. A forced removal alone waits the engine's stop timeout on
    /// Podman (SIGTERM, 10 s, SIGKILL) when the first process ignores SIGTERM, as a probe's
    /// `sh` does, which outlived our call timeout and Ctrl-C's patience. The kill's failure
    /// (already stopped, already gone) is no reason not to remove.
    pub(crate) async fn remove_now(&self, what: &str, id: &str) -> Result<(), EngineError> {
        if let Err(e) = self
            .call("container stop", self.ops().stop_container(id, 0))
            .await
        {
            tracing::debug!(error = %e, container = id, what, "kill before removal failed");
        }
        remove_retrying(what, || {
            self.call("container remove", self.ops().remove_container(id))
        })
        .await
    }
}

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

#[cfg(test)]
mod tests {
    use super::{remove_retrying, REMOVE_ATTEMPTS};
    use crate::error::EngineError;
    use openshell_driver::ErrorKind;
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
    /// bounded number of times. A refusal (a 4xx other than a conflict) is final at
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
}
