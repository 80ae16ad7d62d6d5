//! The gateway side of a decided route, as one handle: [`Gateway::start`] binds the callback
//! listener exactly where the route says and, when the route is the relay, starts the relay
//! that carries sandbox connections to that listener on loopback; [`Gateway::create`] creates
//! each sandbox along the route it must use (the relay's current address for a relay route)
//! and expects its callback; [`Gateway::shutdown`] removes the relay. No caller branches on
//! the route's kind or names a driver's operations.

use std::time::Duration;

use openshell_runtime::{HostTarget, Route};

use crate::driver::SandboxDriver;
use crate::error::EngineError;
use crate::lifecycle::SandboxHandle;
use crate::listener::{Arrival, CallbackListener, ListenerError, ListenerOptions};
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
}

/// A gateway's side of one route: its callback listener and, for a relay route, its relay.
#[derive(Debug)]
pub struct Gateway {
    driver: SandboxDriver,
    listener: CallbackListener,
    relay: Option<Relay>,
}

impl Gateway {
    /// Binds the callback listener where `route` says and, for a relay route, makes sure the
    /// sandbox network exists and starts a relay on it for the listener's port. When the relay
    /// cannot start, nothing stays bound.
    pub async fn start(
        driver: &SandboxDriver,
        route: &Route,
        opts: GatewayOptions,
    ) -> Result<Gateway, GatewayError> {
        let listener = CallbackListener::bind(route, opts.listener).await?;
        let relay = if route.openshell_host == HostTarget::Relay {
            driver.ensure_network().await?;
            let relay_opts = RelayOptions {
                port: listener.route().port,
                ..opts.relay
            };
            Some(Relay::start(driver.clone(), relay_opts).await?)
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
