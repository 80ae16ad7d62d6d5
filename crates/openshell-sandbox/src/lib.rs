//! What a gateway does with an engine, written once for every driver: the sandbox lifecycle
//! ([`SandboxDriver`], over any driver's engine operations), the gateway side of a route
//! ([`Gateway`]: the callback listener bound where the route says, and the relay when the
//! route is a relay), the reachability probe, and the gateway host's own facts
//! ([`host_facts`]).
//!
//! The design choice: a driver crate is only engine operations over its client library
//! (`openshell_driver::EngineOps`); everything built on top of them (cleanup on failure, bounded
//! retries decided on error kinds, network ownership, facts gathering, timeouts and tracing,
//! the relay) lives here, so the drivers cannot drift apart. Routing itself stays in
//! `openshell-runtime`: nothing here decides a route, it only gathers facts and applies
//! routes. Reaching the engine (HTTP, TLS, ssh) is `openshell-transport`'s, below the drivers;
//! this crate never speaks HTTP itself.
#![deny(missing_docs)]

mod driver;
mod elf;
mod error;
#[cfg(test)]
mod fake;
mod gateway;
mod host;
mod lifecycle;
mod listener;
mod network;
mod probe;
mod reap;
mod relay;
mod spec;
mod token;

pub use driver::{DriverOptions, SandboxDriver};
pub use error::EngineError;
pub use gateway::{Gateway, GatewayError, GatewayOptions};
pub use host::{current_os, host_facts, HostFacts};
pub use lifecycle::{GatheredFacts, SandboxHandle, SandboxState};
pub use listener::{is_host_address, Arrival, CallbackListener, ListenerError, ListenerOptions};
pub use openshell_driver::ErrorKind;
pub use probe::{
    check_target, probe_in_order, probe_route, require_verified_route, ForeignTarget, ProbeOptions,
    ProbeOutcome, ProbeResult, Unverified,
};
pub use reap::{Sweep, SweptProbe};
pub use relay::{
    embedded_arches, embedded_relay, normalise_arch, prune_relay_images, reap_relays, relay_ready,
    remove_own_relays, Relay, RelayError, RelayOptions, ENV_RELAY_BINARY, ENV_RELAY_IMAGE,
};
pub use spec::{sandbox_command, SandboxSpec, SpecError, ENV_ENDPOINT, ENV_SANDBOX_ID, ENV_TOKEN};
pub use token::{new_token, TokenError};
