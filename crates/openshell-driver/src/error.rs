//! What an engine operation's failure is, decided once by the driver that made the call.
//!
//! Each driver decides an [`ErrorKind`] once, from the engine's HTTP status, when it turns its
//! client library's error into an [`OpError`]. Everything above the drivers (removal retries,
//! "missing is fine", "someone else created it") decides on that kind, never on message text.
//! [`DriverError`] is why a driver could not be connected at all.

use std::fmt;
use std::time::Duration;

use openshell_transport::raw::RawError;
use openshell_transport::transport::{ReplyTooLarge, TransportError};
pub use openshell_transport::BoxError;

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
    /// The driver does not implement the operation (nothing was sent).
    Unsupported,
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
            ErrorKind::Unsupported => "unsupported",
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
            // A body that cannot be read, a request that cannot be made, and whatever a newer
            // transport reports: the answer is unusable.
            _ => ErrorKind::BadAnswer,
        };
        OpError::new(kind, e)
    }
}

/// The kind of a transport failure: the engine was not reached, or its reply was refused.
pub fn transport_kind(e: &TransportError) -> ErrorKind {
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

/// A driver that cannot perform an operation at all (a driver without the relay's operations).
#[derive(Debug, thiserror::Error)]
#[error("the {driver} driver does not support {operation}")]
pub struct Unsupported {
    /// The driver's name.
    pub driver: &'static str,
    /// What was asked of it, e.g. `image import`.
    pub operation: &'static str,
}

impl OpError {
    /// The failure of an operation `driver` does not implement.
    pub fn unsupported(driver: &'static str, operation: &'static str) -> OpError {
        OpError::new(ErrorKind::Unsupported, Unsupported { driver, operation })
    }
}

/// Why a driver could not be connected to an endpoint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// No client could be set up for the endpoint.
    #[error("cannot connect to {endpoint}: {source}; is the engine running, and may this user use its socket?")]
    Connect {
        /// The endpoint, as shown to people.
        endpoint: String,
        /// The client library's error.
        #[source]
        source: BoxError,
    },
    /// A call made while connecting did not answer in time.
    #[error("{call} on {endpoint} did not answer within {after:?}")]
    Timeout {
        /// The call.
        call: &'static str,
        /// The endpoint, as shown to people.
        endpoint: String,
        /// The limit that passed.
        after: Duration,
    },
    /// The endpoint cannot be used for engine calls by this driver (`npipe://`, or one that
    /// requires TLS but came without material); nothing was sent to it.
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
}
