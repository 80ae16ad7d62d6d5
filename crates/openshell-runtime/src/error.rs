//! Errors of the policy: each says what failed and what the operator can do about it.

use std::net::IpAddr;

use crate::addr::AddressError;
use crate::report::Consulted;
use crate::route::HostTarget;

/// Why no route was decided. Every variant is a refusal to guess (fail closed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// No detector recognised the engine.
    #[error(
        "no detector recognised this engine ({}); to fix: {fix}",
        summarize(consulted)
    )]
    Undetected {
        /// What every detector said.
        consulted: Vec<Consulted>,
        /// The setting that would let a route be chosen anyway.
        fix: String,
    },
    /// The runtime is known, but no address is known to reach the gateway from its containers.
    #[error("{runtime}: no safe route: {reason}; to fix: {fix}")]
    NoSafeRoute {
        /// The id of the runtime that refused.
        runtime: String,
        /// Why nothing is known to work.
        reason: String,
        /// The exact setting that would fix it.
        fix: String,
    },
    /// The runtime is known, but a fact its route needs is missing.
    #[error("{runtime}: cannot route without `{fact}`: {why}; to fix: {fix}")]
    MissingFact {
        /// The id of the runtime that refused.
        runtime: String,
        /// The missing fact, as named in the facts format.
        fact: &'static str,
        /// Why the route needs it.
        why: String,
        /// How to provide it or do without it.
        fix: String,
    },
    /// A bind override that does not receive what sandboxes send.
    #[error(
        "{runtime}: bind {bind} does not receive traffic sandboxes send to {target}{}",
        needed.map(|n| format!("; bind {n} instead, or also set host_gateway_ip to an address {bind} receives")).unwrap_or_default()
    )]
    BindConflict {
        /// The id of the runtime that refused.
        runtime: String,
        /// The operator's bind.
        bind: IpAddr,
        /// Where sandboxes would be sent.
        target: HostTarget,
        /// The bind the runtime needs.
        needed: Option<IpAddr>,
    },
    /// An address of the route cannot serve its role, whether an override, a runtime's plan or
    /// a bind derived from the container side put it there.
    #[error("{runtime}: {source}")]
    Address {
        /// Runtime id.
        runtime: String,
        /// Which address, in which role, and why not.
        #[source]
        source: AddressError,
    },
    /// An override sends host-network sandboxes to a loopback address that, in the engine's
    /// host network namespace, is not this host's loopback.
    #[error(
        "{runtime}: with host networking, {target} is the loopback of {namespace}, not of the gateway's host, so nothing the gateway binds receives it; to fix: {fix}"
    )]
    LoopbackElsewhere {
        /// The id of the runtime that refused.
        runtime: String,
        /// The operator's container-side address.
        target: HostTarget,
        /// Whose namespace that loopback belongs to (the VM's, RootlessKit's).
        namespace: String,
        /// The address that would work, or how to get one.
        fix: String,
    },
    /// The only direct route binds the host's LAN-facing address, and the operator did not
    /// allow LAN exposure.
    #[error(
        "{runtime}: the only direct route binds {bind}, the host's LAN-facing address, which other machines can reach; to fix: {fix}"
    )]
    LanNotAllowed {
        /// The id of the runtime that refused.
        runtime: String,
        /// The LAN-facing bind the route needs.
        bind: IpAddr,
        /// How to allow it or avoid it.
        fix: String,
    },
    /// The operator asked for the relay where it cannot serve.
    #[error("{runtime}: the relay cannot serve here: {reason}; to fix: {fix}")]
    RelayUnavailable {
        /// The id of the runtime (or `unknown`).
        runtime: String,
        /// Why not.
        reason: String,
        /// What to change.
        fix: String,
    },
}

impl RouteError {
    /// The runtime id the error is about, when one was recognised.
    pub fn runtime(&self) -> Option<&str> {
        match self {
            RouteError::Undetected { .. } => None,
            RouteError::NoSafeRoute { runtime, .. }
            | RouteError::MissingFact { runtime, .. }
            | RouteError::BindConflict { runtime, .. }
            | RouteError::Address { runtime, .. }
            | RouteError::LoopbackElsewhere { runtime, .. }
            | RouteError::LanNotAllowed { runtime, .. }
            | RouteError::RelayUnavailable { runtime, .. } => Some(runtime),
        }
    }
}

fn summarize(consulted: &[Consulted]) -> String {
    consulted
        .iter()
        .map(|c| format!("{}: {}", c.detector, c.outcome))
        .collect::<Vec<_>>()
        .join("; ")
}
