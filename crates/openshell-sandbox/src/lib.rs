//! What the Docker and Podman drivers share, so that each is written once: the
//! [`SandboxDriver`] trait, the gateway-side [`CallbackListener`], and the gateway host's own
//! facts ([`host_facts`]). Routing itself stays in `openshell-runtime`; nothing here decides a
//! route, it only gathers facts and applies routes.
#![deny(missing_docs)]

mod discover;
mod driver;
mod env;
mod failure;
mod host;
mod listener;
mod probe;
pub mod raw;
mod token;

pub use discover::{probe_candidates, DiscoveryEnv};
pub use driver::{
    extra_host_entries, is_transient_state_error, sandbox_command, Candidate, CandidateOutcome,
    Discovery, GatheredFacts, SandboxDriver, SandboxHandle, SandboxSpec, SandboxState, SpecError,
    ENV_ENDPOINT, ENV_SANDBOX_ID, ENV_TOKEN, REMOVE_ATTEMPTS,
};
pub use env::{reads_env_var, EnvError, READ_PREFIX, READ_VARS};
pub use failure::{raw_call, timed_call, CallError, EngineFailure};
pub use host::{current_os, host_facts, HostFacts};
pub use listener::{Arrival, CallbackListener, ListenerError, ListenerOptions};
pub use probe::{
    probe_in_order, probe_route, require_verified_route, ProbeOptions, ProbeOutcome, ProbeResult,
    Unverified, DEFAULT_PROBE_IMAGE,
};
pub use token::{new_token, TokenError};
