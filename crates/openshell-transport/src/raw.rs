//! Raw engine requests the client libraries cannot make for us: `/_ping` with its response
//! headers (where Podman names itself) and libpod's complete `/info` (podman-api's model predates
//! `rootlessNetworkCmd` and `pasta`). One HTTP/1 exchange over a connection from
//! [`crate::transport`], bounded in time and, like every engine reply, in size.
//! Shared by both drivers.

use std::collections::BTreeMap;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;

use crate::transport::{self, Target, TransportError};

/// A raw exchange's failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RawError {
    /// The connection failed, or the reply went over the size budget.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The body could not be read.
    #[error("cannot read the response body: {0}")]
    Body(#[source] hyper::Error),
    /// It took too long.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The request could not be built (a path that is not a valid URI).
    #[error("bad request: {0}")]
    Request(#[source] hyper::http::Error),
}

/// An engine's refusal of a raw request: an error status, with the engine's message.
#[derive(Debug, thiserror::Error)]
#[error("{call} answered {status}: {message}")]
pub struct Refused {
    /// The request.
    pub call: &'static str,
    /// The HTTP status code.
    pub status: u16,
    /// The engine's message ([`RawResponse::message`]).
    pub message: String,
}

/// A raw response.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// The HTTP status code, as the engine sent it.
    pub status: u16,
    /// Headers (names lower-cased by hyper).
    pub headers: BTreeMap<String, String>,
    /// The body, at most the size limit.
    pub body: Bytes,
}

impl RawResponse {
    /// What the engine says in an error reply: the `message` of its JSON body (Docker's and
    /// Podman's error shape), else the body's first 512 bytes.
    pub fn message(&self) -> String {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v.get("message")?.as_str().map(str::to_string))
            .unwrap_or_else(|| {
                String::from_utf8_lossy(&self.body[..self.body.len().min(512)]).into()
            })
    }
}

async fn exchange<B>(target: &Target, req: hyper::Request<B>) -> Result<RawResponse, RawError>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<crate::BoxError>,
{
    let res = transport::send(target, req).await?;
    let status = res.status().as_u16();
    let headers = res
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|e| match transport::too_large(&e) {
            Some(t) => RawError::Transport(t.into()),
            None => RawError::Body(e),
        })?
        .to_bytes();
    Ok(RawResponse {
        status,
        headers,
        body,
    })
}

/// `text` escaped for a URL query value: every byte but the unreserved ones as `%XX`.
pub fn query_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `GET path` on the engine at `target`, within `timeout`.
pub async fn get(target: &Target, path: &str, timeout: Duration) -> Result<RawResponse, RawError> {
    let req = hyper::Request::get(path)
        .body(Empty::<Bytes>::new())
        .map_err(RawError::Request)?;
    tokio::time::timeout(timeout, exchange(target, req))
        .await
        .map_err(|_| RawError::Timeout(timeout))?
}

/// `POST path` with a JSON `body` on the engine at `target`, within `timeout`.
pub async fn post_json(
    target: &Target,
    path: &str,
    body: &serde_json::Value,
    timeout: Duration,
) -> Result<RawResponse, RawError> {
    let req = hyper::Request::post(path)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(http_body_util::Full::new(Bytes::from(body.to_string())))
        .map_err(RawError::Request)?;
    tokio::time::timeout(timeout, exchange(target, req))
        .await
        .map_err(|_| RawError::Timeout(timeout))?
}

#[cfg(test)]
mod tests {
    #[test]
    fn query_values_are_escaped_but_for_unreserved_bytes() {
        assert_eq!(
            super::query_escape(r#"{"label":["a=b"]}"#),
            "%7B%22label%22%3A%5B%22a%3Db%22%5D%7D"
        );
        assert_eq!(super::query_escape("a-Z.0_~"), "a-Z.0_~");
    }
}
