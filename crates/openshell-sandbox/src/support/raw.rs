//! Raw engine requests the client libraries cannot make for us: `/_ping` with its response
//! headers (where Podman names itself) and libpod's complete `/info` (podman-api's model predates
//! `rootlessNetworkCmd` and `pasta`). One HTTP/1 exchange over the engine's socket, with hyper,
//! bounded in time and size. Shared by both drivers.

use std::collections::BTreeMap;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use openshell_runtime::facts::Endpoint;
use tokio::io::{AsyncRead, AsyncWrite};

/// Largest body read.
const MAX_BODY: usize = 8 * 1024 * 1024;

/// A raw exchange's failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RawError {
    /// The socket could not be connected (no engine there, or no permission).
    #[error("cannot connect: {0}")]
    Connect(#[source] std::io::Error),
    /// HTTP failed.
    #[error("HTTP exchange failed: {0}")]
    Http(#[source] hyper::Error),
    /// The body could not be read, or was over the size limit.
    #[error("cannot read the response body (at most {limit} bytes are read): {source}")]
    Body {
        /// The size limit in bytes.
        limit: usize,
        /// What failed.
        #[source]
        source: crate::error::BoxError,
    },
    /// It took too long.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The endpoint kind cannot be reached this way.
    #[error("endpoint {0} cannot be reached directly (only unix:// and tcp://)")]
    Unsupported(String),
    /// The request could not be built (a path that is not a valid URI).
    #[error("bad request: {0}")]
    Request(#[source] hyper::http::Error),
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

async fn exchange<S>(stream: S, path: &str) -> Result<RawResponse, RawError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(RawError::Http)?;
    let conn = tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header(hyper::header::HOST, "docker")
        .body(Empty::<Bytes>::new())
        .map_err(RawError::Request)?;
    let res = sender.send_request(req).await.map_err(RawError::Http)?;
    let status = res.status().as_u16();
    let headers = res
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let body = Limited::new(res.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|source| RawError::Body {
            limit: MAX_BODY,
            source,
        })?
        .to_bytes();
    conn.abort();
    Ok(RawResponse {
        status,
        headers,
        body,
    })
}

/// `GET path` on the engine at `endpoint`, within `timeout`.
pub async fn get(
    endpoint: &Endpoint,
    path: &str,
    timeout: Duration,
) -> Result<RawResponse, RawError> {
    let fut = async {
        match endpoint {
            Endpoint::Unix { path: sock } => {
                let s = tokio::net::UnixStream::connect(sock)
                    .await
                    .map_err(RawError::Connect)?;
                exchange(s, path).await
            }
            Endpoint::Tcp { host, port } => {
                let s = tokio::net::TcpStream::connect((host.as_str(), port.unwrap_or(2375)))
                    .await
                    .map_err(RawError::Connect)?;
                exchange(s, path).await
            }
            other => Err(RawError::Unsupported(other.to_string())),
        }
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| RawError::Timeout(timeout))?
}
