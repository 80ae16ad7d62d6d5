//! What can go wrong talking to an engine, in one error type for both drivers.
//!
//! Each driver decides an [`ErrorKind`] once, from the engine's HTTP status, when it turns its
//! client library's error into an [`OpError`]. Everything above the drivers (removal retries,
//! "missing is fine", "someone else created it") decides on that kind, never on message text.

use std::fmt;
use std::time::Duration;

use openshell_runtime::facts::EndpointError;

use crate::support::raw::RawError;
use crate::support::transport::{ReplyTooLarge, TransportError};
use crate::SpecError;

/// A client library's error, kept whole as the source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The kind of an engine call's failure, decided from the engine's status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// 404: the object does not exist.
    NotFound,
    /// 409: the object exists, or is in a state that forbids the call.
    Conflict,
    /// 304: the call had nothing to do (a stopped container asked to stop).
    NotModified,
    /// 5xx: the engine failed; a retry of an idempotent call may succeed (Podman 4.3 answers a
    /// forced removal that races the container's own exit with 500).
    Transient,
    /// Any other 4xx: the engine refused the request as made.
    Rejected,
    /// No HTTP answer at all: the connection failed or broke.
    Unreachable,
    /// The answer could not be read (malformed JSON, over a size limit, wrong API).
    BadAnswer,
}

impl ErrorKind {
    /// The kind an HTTP status stands for.
    pub fn from_status(status: u16) -> ErrorKind {
        match status {
            304 => ErrorKind::NotModified,
            404 => ErrorKind::NotFound,
            409 => ErrorKind::Conflict,
            500..=599 => ErrorKind::Transient,
            _ => ErrorKind::Rejected,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::NotModified => "not modified",
            ErrorKind::Transient => "engine error",
            ErrorKind::Rejected => "rejected",
            ErrorKind::Unreachable => "unreachable",
            ErrorKind::BadAnswer => "bad answer",
        })
    }
}

/// One engine operation's failure as a driver reports it: the kind, decided from the status
/// code, and the client library's own error.
#[derive(Debug)]
pub struct OpError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// The client library's error.
    pub source: BoxError,
}

impl OpError {
    /// A failure of `kind` with its source.
    pub fn new(kind: ErrorKind, source: impl Into<BoxError>) -> OpError {
        OpError {
            kind,
            source: source.into(),
        }
    }
}

impl From<RawError> for OpError {
    fn from(e: RawError) -> OpError {
        let kind = match &e {
            RawError::Transport(t) => transport_kind(t),
            RawError::Timeout(_) => ErrorKind::Unreachable,
            RawError::Body(_) | RawError::Request(_) => ErrorKind::BadAnswer,
        };
        OpError::new(kind, e)
    }
}

/// The kind of a transport failure: the engine was not reached, or its reply was refused.
pub(crate) fn transport_kind(e: &TransportError) -> ErrorKind {
    match e {
        TransportError::TooLarge(_) | TransportError::Request(_) => ErrorKind::BadAnswer,
        _ => ErrorKind::Unreachable,
    }
}

impl From<std::sync::Arc<TransportError>> for OpError {
    fn from(e: std::sync::Arc<TransportError>) -> OpError {
        OpError::new(transport_kind(&e), e)
    }
}

impl From<ReplyTooLarge> for OpError {
    fn from(e: ReplyTooLarge) -> OpError {
        OpError::new(ErrorKind::BadAnswer, e)
    }
}

/// What went wrong talking to an engine, through either driver.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// No client could be set up for the endpoint.
    #[error("cannot connect to {endpoint}: {source}; is the engine running, and may this user use its socket?")]
    Connect {
        /// The endpoint, as shown to people.
        endpoint: String,
        /// The client library's error.
        #[source]
        source: BoxError,
    },
    /// An engine call failed; `kind` says how.
    #[error("{call} on {endpoint} failed ({kind}): {source}")]
    Call {
        /// The call, e.g. `container create`.
        call: &'static str,
        /// The endpoint, as shown to people.
        endpoint: String,
        /// The kind, decided by the driver from the status code.
        kind: ErrorKind,
        /// The client library's error.
        #[source]
        source: BoxError,
    },
    /// A call did not answer in time.
    #[error("{call} on {endpoint} did not answer within {after:?}")]
    Timeout {
        /// The call.
        call: &'static str,
        /// The endpoint, as shown to people.
        endpoint: String,
        /// The limit that passed.
        after: Duration,
    },
    /// The endpoint cannot be used for engine calls by this driver (`ssh://`, `npipe://`, or
    /// one that requires TLS); nothing was sent to it.
    #[error("the {driver} driver cannot use {endpoint}: {source}")]
    Unsupported {
        /// The endpoint, as shown to people.
        endpoint: String,
        /// The driver that refused it.
        driver: &'static str,
        /// Why: the transport's verdict.
        #[source]
        source: TransportError,
    },
    /// A network of the sandbox network's name exists with another driver.
    #[error("network {name} exists with driver {driver}, not bridge; remove it or choose another sandbox network name")]
    NetworkConflict {
        /// The network's name.
        name: String,
        /// Its driver.
        driver: String,
    },
    /// Several networks share the sandbox network's name (old Docker engines allow it), and not
    /// all could be healed: a container cannot join the name while it is ambiguous.
    #[error("network {name} exists {} times ({}); containers cannot join it by name: remove the ones not in use by id (`docker network rm <id>`)", .ids.len(), .ids.join(", "))]
    DuplicateNetworks {
        /// The network's name.
        name: String,
        /// The ids sharing it (first 12 characters).
        ids: Vec<String>,
    },
    /// The endpoint answered, but not with the API this driver speaks.
    #[error("{endpoint} does not serve the {api} API ({call} answered HTTP {status}); choose the other driver")]
    WrongApi {
        /// The endpoint, as shown to people.
        endpoint: String,
        /// The API expected (`libpod`).
        api: &'static str,
        /// The call that showed it.
        call: &'static str,
        /// The status it answered.
        status: u16,
    },
    /// The sandbox spec is invalid; nothing was created.
    #[error(transparent)]
    InvalidSpec(#[from] SpecError),
    /// The route cannot be applied (an extra host failed validation); nothing was created.
    #[error("route cannot be applied: {0}")]
    Route(#[from] openshell_runtime::ExtraHostError),
    /// The engine's answers did not make a facts document.
    #[error("engine facts from {endpoint} are unusable: {source}")]
    Facts {
        /// The endpoint, as shown to people.
        endpoint: String,
        /// The parser's error.
        #[source]
        source: openshell_runtime::FactsError,
    },
}

impl EngineError {
    /// The failure's kind, for callers that decide what to do next.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            EngineError::Call { kind, .. } => Some(*kind),
            EngineError::Timeout { .. } | EngineError::Connect { .. } => {
                Some(ErrorKind::Unreachable)
            }
            EngineError::WrongApi { .. } | EngineError::Facts { .. } => Some(ErrorKind::BadAnswer),
            _ => None,
        }
    }

    /// Whether the engine said the object does not exist.
    pub fn is_not_found(&self) -> bool {
        self.kind() == Some(ErrorKind::NotFound)
    }
}

/// Why discovery could not list its candidates.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// An endpoint string is malformed.
    #[error("{origin} names an invalid endpoint: {source}")]
    BadEndpoint {
        /// Where it came from (`DOCKER_HOST`, `context colima`, ...).
        origin: String,
        /// The parser's error.
        #[source]
        source: EndpointError,
    },
    /// A configuration file (Docker context, Podman connections) cannot be used.
    #[error("{what} cannot be read from {path}: {source}")]
    Config {
        /// What was being read, e.g. `docker context "colima"`.
        what: String,
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// The TLS material an endpoint needs cannot be used (a missing CA, an unpaired key).
    #[error("{endpoint} (named by {origin}) requires TLS, but its TLS material cannot be used, so nothing was sent to it: {source}")]
    Tls {
        /// The endpoint, as shown.
        endpoint: String,
        /// Where the endpoint and its TLS setting came from (`DOCKER_HOST, TLS by
        /// DOCKER_TLS_VERIFY`, `context remote`).
        origin: String,
        /// Why.
        #[source]
        source: Box<crate::support::tls::TlsError>,
    },
    /// A named connection or context is defined nowhere.
    #[error("{origin} names {name:?}, which {searched} does not define")]
    UnknownName {
        /// Where the name came from (`CONTAINER_CONNECTION`).
        origin: &'static str,
        /// The name (sanitised).
        name: String,
        /// Where it was looked up.
        searched: &'static str,
    },
}
