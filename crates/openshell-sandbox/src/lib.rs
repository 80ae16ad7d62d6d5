//! What every sandbox driver shares, written once: the sandbox lifecycle ([`SandboxDriver`],
//! implemented for every driver's engine operations), the gateway-side [`CallbackListener`],
//! the reachability probe, and the gateway host's own facts ([`host_facts`]).
//!
//! The design choice: a driver crate is only engine operations over its client library
//! ([`support::EngineOps`]); everything built on top of them (cleanup on failure, bounded
//! retries decided on error kinds, network ownership, facts gathering, timeouts and tracing)
//! lives here, so the Docker and Podman drivers cannot drift apart. Routing itself stays in
//! `openshell-runtime`: nothing here decides a route, it only gathers facts and applies routes.
#![deny(missing_docs)]

mod driver;
mod env;
mod error;
mod host;
mod listener;
mod network;
mod probe;
mod reap;
mod relay;
mod spec;
pub mod support;
mod token;

pub use driver::{DriverOptions, GatheredFacts, SandboxDriver, SandboxHandle, SandboxState};
pub use env::{reads_env_var, EnvError, READ_PREFIX, READ_VARS};
pub use error::{DiscoveryError, EngineError, ErrorKind};
pub use host::{current_os, host_facts, HostFacts};
pub use listener::{is_host_address, Arrival, CallbackListener, ListenerError, ListenerOptions};
pub use probe::{
    probe_in_order, probe_route, require_verified_route, ProbeOptions, ProbeOutcome, ProbeResult,
    Unverified, DEFAULT_PROBE_IMAGE,
};
pub use reap::{Sweep, SweptProbe};
pub use relay::{
    normalise_arch, reap_relays, remove_own_relays, Relay, RelayError, RelayOptions,
    ENV_RELAY_BINARY, ENV_RELAY_IMAGE,
};
pub use spec::{sandbox_command, SandboxSpec, SpecError, ENV_ENDPOINT, ENV_SANDBOX_ID, ENV_TOKEN};
pub use support::discover::{Candidate, CandidateOutcome, Candidates, Discovery, DiscoveryEnv};
pub use token::{new_token, TokenError};
