//! Runtimes defined outside this crate, carried in the [`Runtime`](super::Runtime) enum.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use crate::error::RouteError;
use crate::route::{EngineKind, RoutePlan};

use super::{ContainerRuntime, HostNetwork};

/// An embedder's runtime, registered through a custom detector.
#[derive(Clone)]
pub struct External(Arc<dyn ContainerRuntime + Send + Sync>);

impl External {
    /// Wraps an embedder's runtime.
    pub fn new(runtime: impl ContainerRuntime + Send + Sync + 'static) -> External {
        External(Arc::new(runtime))
    }
}

impl fmt::Debug for External {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "External({})", self.0.id())
    }
}

impl ContainerRuntime for External {
    fn id(&self) -> &str {
        self.0.id()
    }

    fn engine(&self) -> EngineKind {
        self.0.engine()
    }

    fn plan(&self) -> Result<RoutePlan, RouteError> {
        self.0.plan()
    }

    fn loopback_aliases(&self) -> &[IpAddr] {
        self.0.loopback_aliases()
    }

    fn alternatives(&self) -> Vec<RoutePlan> {
        self.0.alternatives()
    }

    fn mapped_host_addresses(&self) -> Vec<IpAddr> {
        self.0.mapped_host_addresses()
    }

    fn host_network(&self) -> HostNetwork {
        self.0.host_network()
    }
}
