//! Failures both drivers share, whatever client library they speak through; each driver's
//! error wraps this next to its client's own error type.

use std::future::Future;
use std::time::Duration;

use openshell_runtime::facts::Endpoint;
use tracing::Instrument;

use crate::raw::{RawError, RawResponse};
use crate::SpecError;

/// What went wrong talking to an engine, outside the client library's own errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineFailure {
    /// A raw request (ping headers, complete libpod info) failed.
    #[error("{call} on {endpoint} failed: {source}")]
    Raw {
        /// Which call.
        call: &'static str,
        /// Endpoint.
        endpoint: String,
        /// The failure.
        #[source]
        source: RawError,
    },
    /// A call did not answer in time.
    #[error("{call} on {endpoint} did not answer within {after:?}")]
    Timeout {
        /// Which call.
        call: &'static str,
        /// Endpoint.
        endpoint: String,
        /// The limit.
        after: Duration,
    },
    /// The endpoint kind is not supported for engine calls.
    #[error("endpoint {endpoint} is not supported for engine calls by this driver (unix:// and tcp:// are)")]
    Unsupported {
        /// Endpoint.
        endpoint: String,
    },
    /// A network of the sandbox network's name exists with another driver.
    #[error("network {name} exists with driver {driver}, not bridge; remove it or choose another sandbox network name")]
    NetworkConflict {
        /// Name.
        name: String,
        /// Its driver.
        driver: String,
    },
    /// The sandbox spec is invalid.
    #[error(transparent)]
    InvalidSpec(#[from] SpecError),
    /// The route cannot be applied (an extra host failed validation).
    #[error("route cannot be applied: {0}")]
    Route(#[from] openshell_runtime::ExtraHostError),
    /// The engine's answers did not make a facts document.
    #[error("engine facts from {endpoint} are unusable: {source}")]
    Facts {
        /// Endpoint.
        endpoint: String,
        /// The parser's error.
        #[source]
        source: openshell_runtime::FactsError,
    },
}

/// How a client-library call failed: the client's own error, or a shared failure (timeout).
#[derive(Debug)]
pub enum CallError<E> {
    /// The client library's error.
    Client(E),
    /// A failure both drivers share.
    Failure(EngineFailure),
}

/// Runs one client-library call within `timeout`, inside an `engine_call` tracing span.
pub async fn timed_call<T, E, F>(
    call: &'static str,
    endpoint: &Endpoint,
    timeout: Duration,
    fut: F,
) -> Result<T, CallError<E>>
where
    F: Future<Output = Result<T, E>>,
{
    let span = tracing::info_span!("engine_call", call, endpoint = %endpoint);
    match tokio::time::timeout(timeout, fut).instrument(span).await {
        Err(_) => Err(CallError::Failure(EngineFailure::Timeout {
            call,
            endpoint: endpoint.to_string(),
            after: timeout,
        })),
        Ok(r) => r.map_err(CallError::Client),
    }
}

/// A raw `GET path` within `timeout`, inside an `engine_call` tracing span, its failure named.
pub async fn raw_call(
    call: &'static str,
    endpoint: &Endpoint,
    path: &str,
    timeout: Duration,
) -> Result<RawResponse, EngineFailure> {
    let span = tracing::info_span!("engine_call", call, endpoint = %endpoint);
    crate::raw::get(endpoint, path, timeout)
        .instrument(span)
        .await
        .map_err(|source| EngineFailure::Raw {
            call,
            endpoint: endpoint.to_string(),
            source,
        })
}
