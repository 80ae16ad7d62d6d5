//! The drivers, as one table. Each row is a driver: its kind, its name (in flags,
//! configuration and reports), how it connects, and which discovery order finds its engines. Everything else that lists drivers ([`DriverKind`],
//! [`DriverKind::ALL`], parsing names, connecting, the discovery plan) is generated from it.
//! Its row order is the order in which discovery tries the drivers' orders when none is
//! chosen. Adding a driver is its operations crate, one module under `discover`, and one row
//! here (docs/adding-a-driver.md).

use std::sync::Arc;
use std::time::Duration;

use openshell_driver::{DriverError, EngineOps, PingHeaders};
use openshell_transport::tls::TlsFiles;
use openshell_transport::Target;
use serde::Serialize;

use crate::discover::{self, Candidates, DiscoveryEnv, DiscoveryError};

macro_rules! drivers {
    ($(
        $(#[$doc:meta])*
        $kind:ident => name: $name:literal, connect: $connect:path, order: $order:ident;
    )+) => {
        /// Which driver, and so which API, speaks to an engine.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        #[serde(rename_all = "lowercase")]
        pub enum DriverKind {
            $( $(#[$doc])* $kind, )+
        }

        impl DriverKind {
            /// Every driver, in the table's order (the order discovery tries them in).
            pub const ALL: &'static [DriverKind] = &[$(DriverKind::$kind),+];

            /// The driver's name: `docker`, `podman`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(DriverKind::$kind => $name,)+
                }
            }

            /// The driver called `name`, if there is one.
            pub fn parse(name: &str) -> Option<DriverKind> {
                match name {
                    $($name => Some(DriverKind::$kind),)+
                    _ => None,
                }
            }

            /// Connects this driver to `target`; `timeout` bounds each call it makes to do so.
            /// `ping` is the engine's `/_ping` answer when the caller has just read it.
            pub(crate) async fn connect(
                self,
                target: Target,
                timeout: Duration,
                ping: Option<PingHeaders>,
            ) -> Result<Arc<dyn EngineOps>, DriverError> {
                match self {
                    $(DriverKind::$kind => Ok(Arc::new($connect(target, timeout, ping).await?)),)+
                }
            }

            /// This driver's discovery order.
            pub(crate) fn candidates(
                self,
                endpoint: Option<&str>,
                env: &DiscoveryEnv,
                flags: &TlsFiles,
            ) -> Result<Candidates, DiscoveryError> {
                match self {
                    $(DriverKind::$kind => discover::$order::candidates(endpoint, env, flags),)+
                }
            }

            /// The one endpoint this driver's order names for this run (a flag, a variable, a
            /// context or connection chosen for it), if it names one.
            pub(crate) fn named_for_this_run(
                self,
                endpoint: Option<&str>,
                env: &DiscoveryEnv,
                flags: &TlsFiles,
            ) -> Result<Option<Candidates>, DiscoveryError> {
                match self {
                    $(DriverKind::$kind => discover::$order::named_for_this_run(endpoint, env, flags),)+
                }
            }
        }
    };
}

drivers! {
    /// The Docker API (bollard): Docker Engine, Docker Desktop, Colima, OrbStack, Rancher
    /// Desktop, Lima, and Podman's compatible service.
    Docker => name: "docker", connect: openshell_driver_docker::DockerDriver::connect_after_ping, order: docker;
    /// Podman's libpod API (podman-api).
    Podman => name: "podman", connect: openshell_driver_podman::PodmanDriver::connect_after_ping, order: podman;
}

impl std::fmt::Display for DriverKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::DriverKind;

    #[test]
    fn every_driver_parses_back_from_its_name() {
        for &kind in DriverKind::ALL {
            assert_eq!(DriverKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(DriverKind::parse("Docker"), None);
        assert_eq!(DriverKind::parse(""), None);
    }
}
