//! Which container runtime is behind an engine socket, and how its sandboxes reach the gateway.
//!
//! The key design choice: routing is a pure function of facts. Drivers (Docker via bollard,
//! Podman via libpod) gather [`Facts`] from a live engine; a facts file does the same for tests
//! and bug reports. The [`Registry`] of detectors names the runtime with its evidence, and the
//! runtime's [`ContainerRuntime`] implementation turns its facts into one [`Route`]: what
//! `host.openshell.internal` maps to inside the sandbox, which host address the gateway binds,
//! and the URL sandboxes call. Both drivers share this one policy, and it never guesses: a
//! runtime with no route known to work gets a [`RouteError`] naming the setting that fixes it.
//!
//! This crate does no I/O, starts no async runtime and names no engine-client type.
//!
//! ```
//! use openshell_runtime::{decide, Facts, Registry, RouteContext};
//!
//! let facts = Facts::from_json(r#"{
//!     "host_os": "macos",
//!     "ping": {"Libpod-Api-Version": "5.8.2", "Server": "Libpod/5.8.2 (linux)"},
//!     "info": {"Name": "localhost.localdomain", "OperatingSystem": "fedora", "ServerVersion": "5.8.2"}
//! }"#)?;
//! let decision = decide(&Registry::builtin(), &facts, &RouteContext::default());
//! let route = decision.route?;
//! assert_eq!(route.runtime, "podman-machine");
//! assert_eq!(route.openshell_host.to_string(), "host-gateway");
//! assert_eq!(route.bind.map(|b| b.to_string()).as_deref(), Some("127.0.0.1"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod addr;
pub mod consts;
mod decide;
mod error;
mod evidence;
pub mod facts;
pub mod registry;
mod report;
mod resolve;
pub mod route;
pub mod runtime;
pub mod signals;
pub mod sockets;

pub use addr::{AddressError, AddressRole};
pub use decide::{decide, Decision};
pub use error::RouteError;
pub use evidence::{display_value, Evidence};
pub use facts::{Facts, FactsError, HostOs, Overrides};
pub use registry::{DetectionReport, Detector, Registry};
pub use route::{
    EngineKind, Exposure, ExtraHost, ExtraHostError, HostTarget, NetworkMode, ProbeGate,
    RelayCarrier, Route, RouteContext, RouteKind, RouteKindChoice, RoutePlan, TargetSource,
    RELAY_TARGET,
};
pub use runtime::{
    relay_carrier, well_known_sockets, ContainerRuntime, Detection, External, GatewayRoute,
    HostNetwork, Runtime, RuntimeId,
};
pub use sockets::{OsFamily, SocketApi, SocketLocation, SocketRoot};
