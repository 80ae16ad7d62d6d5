//! The gateway side of a decided route, as one handle: [`Gateway::start`] binds the callback
//! listener exactly where the route says and, when the route is the relay, starts the relay
//! that carries sandbox connections to that listener on loopback; [`Gateway::create`] creates
//! each sandbox along the route it must use (the relay's current address for a relay route)
//! and expects its callback; [`Gateway::shutdown`] removes the relay. No caller branches on
//! the route's kind or names a driver's operations.

use std::time::Duration;

use openshell_runtime::{NetworkMode, Route, RouteKind};

use crate::driver::SandboxDriver;
use crate::error::EngineError;
use crate::lifecycle::SandboxHandle;
use crate::listener::{Arrival, CallbackListener, ListenerError, ListenerOptions};
use crate::probe::{check_target, ForeignTarget};
use crate::relay::{Relay, RelayError, RelayOptions};
use crate::spec::SandboxSpec;

/// How the gateway side is set up.
#[derive(Debug, Clone, Default)]
pub struct GatewayOptions {
    /// The callback listener's limits (and whether a wildcard bind is allowed).
    pub listener: ListenerOptions,
    /// Where a relay comes from, for a relay route (its port is the listener's, whatever is
    /// set here). [`RelayOptions::from_env`] reads the process environment.
    pub relay: RelayOptions,
}

/// Why the gateway side could not be set up or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The callback listener could not bind where the route says.
    #[error(transparent)]
    Listener(#[from] ListenerError),
    /// The relay could not be started, or is gone.
    #[error(transparent)]
    Relay(#[from] RelayError),
    /// An engine call failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The route's address is the operator's, and neither this host's nor an engine bridge's:
    /// no sandbox is sent toward it.
    #[error(transparent)]
    Target(Box<ForeignTarget>),
}

/// A gateway's side of one route: its callback listener and, for a relay route, its relay.
#[derive(Debug)]
pub struct Gateway {
    driver: SandboxDriver,
    listener: CallbackListener,
    relay: Option<Relay>,
}

impl Gateway {
    /// Binds the callback listener where `route` says and, for a relay route, starts a relay
    /// for the listener's port where the route's sandboxes run: on the sandbox network (made
    /// sure to exist), or in the engine's host network namespace on its `127.0.0.1`. When the
    /// relay cannot start, nothing stays bound. An operator's address that is neither this
    /// host's nor an engine bridge's gateway is refused first ([`check_target`]), as for a
    /// probe: sandboxes would send their callbacks (and tokens) there.
    pub async fn start(
        driver: &SandboxDriver,
        route: &Route,
        opts: GatewayOptions,
    ) -> Result<Gateway, GatewayError> {
        check_target(driver, route)
            .await
            .map_err(|e| GatewayError::Target(Box::new(e)))?;
        let listener = CallbackListener::bind(route, opts.listener).await?;
        let relay = if route.route_kind == RouteKind::Relay {
            let mode = route.network_mode();
            if mode == NetworkMode::Bridge {
                driver.ensure_network().await?;
            }
            // Through the gateway's socket where the engine shares this host's kernel and
            // filesystem (the policy's word, from the runtime and the endpoint), else attach.
            let relay_opts = RelayOptions {
                port: listener.route().port,
                carrier: openshell_runtime::relay_carrier(&route.runtime, driver.ops().endpoint()),
                ..opts.relay
            };
            Some(Relay::start_in(driver.clone(), relay_opts, mode).await?)
        } else {
            None
        };
        Ok(Gateway {
            driver: driver.clone(),
            listener,
            relay,
        })
    }

    /// The route a sandbox created now must be given: the listener's own route, or, for a relay
    /// route, the same route carried by the relay's current address. Fails when the relay is
    /// gone for good.
    pub fn sandbox_route(&self) -> Result<Route, GatewayError> {
        match &self.relay {
            Some(relay) => Ok(relay.route(self.listener.route())?),
            None => Ok(self.listener.route().clone()),
        }
    }

    /// The route the listener was bound for (the gateway's side: its bind address and port).
    pub fn route(&self) -> &Route {
        self.listener.route()
    }

    /// The relay, when the route is one.
    pub fn relay(&self) -> Option<&Relay> {
        self.relay.as_ref()
    }

    /// The callback listener, for waiting on arrivals.
    pub fn listener(&mut self) -> &mut CallbackListener {
        &mut self.listener
    }

    /// Creates (not starts) a sandbox along [`sandbox_route`](Self::sandbox_route) and expects
    /// its callback (its id with its token).
    pub async fn create(&self, spec: &SandboxSpec) -> Result<SandboxHandle, GatewayError> {
        let route = self.sandbox_route()?;
        self.listener.expect(&spec.id, &spec.token);
        Ok(self.driver.create(spec, &route).await?)
    }

    /// Waits up to `timeout` for the sandbox `sandbox_id` to call back.
    pub async fn wait_for(
        &mut self,
        sandbox_id: &str,
        timeout: Duration,
    ) -> Result<Arrival, ListenerError> {
        self.listener.wait_for(sandbox_id, timeout).await
    }

    /// Stops the relay (removing its container) and closes the listener.
    pub async fn shutdown(self) -> Result<(), EngineError> {
        match self.relay {
            Some(relay) => relay.shutdown().await,
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use async_trait::async_trait;
    use openshell_driver::{
        ContainerConfig, ContainerStatus, ContainerSummary, EngineDocuments, EngineOps, ErrorKind,
        LogStream, NetworkInfo, OpError,
    };
    use openshell_runtime::consts::LABEL_MANAGED;
    use openshell_runtime::facts::Endpoint;
    use openshell_runtime::{EngineKind, RouteContext};

    use super::*;
    use crate::driver::DriverOptions;

    /// A driver that implements only the required operations: no image import, no attach, no
    /// address lookup. It answers as an engine with our network and a relay image would, and
    /// counts what is left of the containers it created.
    #[derive(Debug, Default)]
    struct NoRelayOps {
        endpoint: Option<Endpoint>,
        live: Arc<AtomicUsize>,
    }

    fn refused() -> OpError {
        OpError::new(ErrorKind::Rejected, "not in this fake")
    }

    #[async_trait]
    impl EngineOps for NoRelayOps {
        fn driver_name(&self) -> &'static str {
            "minimal"
        }
        fn endpoint(&self) -> &Endpoint {
            self.endpoint.as_ref().unwrap_or_else(|| unreachable!())
        }
        async fn engine_documents(&self) -> Result<EngineDocuments, OpError> {
            Err(refused())
        }
        async fn create_container(&self, _: &ContainerConfig) -> Result<String, OpError> {
            self.live.fetch_add(1, Ordering::SeqCst);
            Ok("relay-1".into())
        }
        async fn start_container(&self, _: &str) -> Result<(), OpError> {
            Ok(())
        }
        async fn inspect_container(&self, _: &str) -> Result<ContainerStatus, OpError> {
            Err(refused())
        }
        async fn stop_container(&self, _: &str, _: u32) -> Result<(), OpError> {
            Ok(())
        }
        async fn remove_container(&self, _: &str) -> Result<(), OpError> {
            self.live.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        }
        async fn list_containers(
            &self,
            _: &str,
            _: &str,
        ) -> Result<Vec<ContainerSummary>, OpError> {
            Ok(Vec::new())
        }
        fn logs<'a>(&'a self, _: &'a str) -> LogStream<'a> {
            Box::pin(futures_util::stream::empty())
        }
        async fn image_exists(&self, _: &str) -> Result<bool, OpError> {
            Ok(true)
        }
        async fn pull_image(&self, _: &str) -> Result<(), OpError> {
            Err(refused())
        }
        async fn inspect_network(&self, name: &str) -> Result<NetworkInfo, OpError> {
            Ok(NetworkInfo {
                id: "n1".into(),
                name: name.into(),
                driver: "bridge".into(),
                labels: BTreeMap::from([(LABEL_MANAGED.to_string(), "true".to_string())]),
                body: serde_json::json!({"Name": name, "Driver": "bridge"}),
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
            Err(refused())
        }
        async fn remove_network(&self, _: &str) -> Result<(), OpError> {
            Ok(())
        }
    }

    /// A driver without the relay's operations still compiles (they have defaults), and a
    /// relay route on it is refused with the operation it lacks, leaving no container.
    #[tokio::test]
    async fn a_driver_that_cannot_relay_refuses_the_relay_route_clearly() {
        let ops = NoRelayOps {
            endpoint: Endpoint::parse("unix:///run/minimal.sock").ok(),
            ..NoRelayOps::default()
        };
        let live = Arc::clone(&ops.live);
        let driver = SandboxDriver::new(ops, DriverOptions::default());
        // Any free port: the default one may be taken by a gateway or another test.
        let context = RouteContext {
            port: 0,
            ..RouteContext::default()
        };
        let route = Route::relay(
            "test",
            EngineKind::Docker,
            &context,
            String::new(),
            Vec::new(),
        );
        let opts = GatewayOptions {
            relay: RelayOptions {
                image: Some("localhost/relay:test".into()),
                ..RelayOptions::default()
            },
            ..GatewayOptions::default()
        };
        let err = Gateway::start(&driver, &route, opts)
            .await
            .err()
            .unwrap_or_else(|| panic!("a relay started on a driver without attach"));
        let text = err.to_string();
        assert!(
            text.contains("the minimal driver does not support container attach"),
            "{text}"
        );
        assert!(text.contains("(unsupported)"), "{text}");
        assert_eq!(
            live.load(Ordering::SeqCst),
            0,
            "the relay container was left"
        );
    }
}
