//! A replay engine: a small Docker-API server on a temporary Unix socket that answers from a
//! recorded capture, so the drivers can be tested against runtimes this machine cannot run
//! (Docker Desktop, Colima, OrbStack, Rancher Desktop, Lima, Podman machine).
//!
//! It answers `/_ping` (with the captured headers), `/version`, `/info`, `/networks/<name>` and
//! `/networks` (a network created through it, with Docker's or libpod's create, is remembered,
//! and so is the create request: [`ReplayEngine::network_creates`]), and libpod's `/info` when
//! the capture has it.
//! Every request is logged ([`ReplayEngine::requests`]), so a test can show what a run did
//! not ask for. Version prefixes (`/v1.41/...`) are accepted on every path. A document's `replay_hang`
//! (a path) makes requests for that path wait 30 s before their answer, as an engine that
//! stopped answering would.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::UnixListener;
use tokio::task::JoinHandle;

/// A running replay engine; dropping it stops it and removes its socket.
#[derive(Debug)]
pub struct ReplayEngine {
    socket: PathBuf,
    dir: PathBuf,
    task: JoinHandle<()>,
    state: Arc<Mutex<State>>,
}

impl Drop for ReplayEngine {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[derive(Debug)]
struct State {
    doc: Value,
    network: Option<Value>,
    /// Every network create: its path (without the version prefix) and JSON body.
    creates: Vec<(String, Value)>,
    /// Every request: its method and path (without the version prefix), in order.
    requests: Vec<(String, String)>,
}

impl ReplayEngine {
    /// Serves `doc` (a facts document) on a socket whose path ends like the capture's own
    /// endpoint when that was a Unix socket (detectors look at the path), else `docker.sock`.
    pub async fn start(doc: &Value) -> std::io::Result<ReplayEngine> {
        let dir = std::env::temp_dir().join(crate::live::unique("openshell-replay"));
        let tail = doc
            .get("endpoint")
            .and_then(Value::as_str)
            .and_then(|e| e.strip_prefix("unix://"))
            .map(|p| p.trim_start_matches('/').to_string())
            .filter(|p| dir.join(p).as_os_str().len() < 100)
            .unwrap_or_else(|| "docker.sock".to_string());
        let socket = dir.join(tail);
        if let Some(parent) = socket.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let listener = UnixListener::bind(&socket)?;
        let state = Arc::new(Mutex::new(State {
            doc: doc.clone(),
            network: doc.get("network").cloned(),
            creates: Vec::new(),
            requests: Vec::new(),
        }));
        let served = Arc::clone(&state);
        let task = tokio::spawn(async move {
            let state = served;
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = Arc::clone(&state);
                tokio::spawn(async move {
                    let svc =
                        hyper::service::service_fn(move |req| answer(Arc::clone(&state), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(ReplayEngine {
            socket,
            dir,
            task,
            state,
        })
    }

    /// The network creates it received, in order: path without the version prefix
    /// (`/networks/create` or `/libpod/networks/create`) and the request's JSON body.
    pub fn network_creates(&self) -> Vec<(String, Value)> {
        self.state
            .lock()
            .map(|s| s.creates.clone())
            .unwrap_or_default()
    }

    /// Every request it received, in order: method and path without the version prefix.
    pub fn requests(&self) -> Vec<(String, String)> {
        self.state
            .lock()
            .map(|s| s.requests.clone())
            .unwrap_or_default()
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

/// The network the replay engine reports after the driver creates one.
pub fn created_network() -> Value {
    json!({
        "Name": "openshell", "Id": "replay", "Driver": "bridge",
        "IPAM": {"Config": [{"Subnet": "10.123.0.0/24", "Gateway": "10.123.0.1"}]},
        "Labels": {"io.openshell.managed": "true"}
    })
}

fn strip_version(path: &str) -> &str {
    let Some(rest) = path.strip_prefix("/v") else {
        return path;
    };
    match rest.find('/') {
        Some(i) if rest[..i].chars().all(|c| c.is_ascii_digit() || c == '.') => &rest[i..],
        _ => path,
    }
}

fn reply(status: u16, body: &Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

async fn answer(
    state: Arc<Mutex<State>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = strip_version(req.uri().path()).to_string();
    let method = req.method().clone();
    if let Ok(mut st) = state.lock() {
        // Bounded: a test's run makes a few dozen requests.
        if st.requests.len() < 10_000 {
            st.requests.push((method.to_string(), path.clone()));
        }
    }
    let hang = state.lock().ok().and_then(|st| {
        st.doc
            .get("replay_hang")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    if hang.as_deref() == Some(path.as_str()) {
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    }
    // A created network keeps the name it was created with (bounded: a create body is small).
    let create = matches!(
        path.as_str(),
        "/networks/create" | "/libpod/networks/create"
    );
    let create_body = if method == "POST" && create {
        let body = http_body_util::Limited::new(req.into_body(), 64 * 1024)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        serde_json::from_slice::<Value>(&body).ok()
    } else {
        None
    };
    let created_name = create_body
        .as_ref()
        .and_then(|v| v.get("Name").or_else(|| v.get("name"))?.as_str())
        .map(str::to_string);
    let Ok(mut st) = state.lock() else {
        return Ok(reply(500, &json!({"message": "replay state poisoned"})));
    };
    let not_found = || reply(404, &json!({"message": "not in the capture"}));
    let r = match (method.as_str(), path.as_str()) {
        ("GET" | "HEAD", "/_ping") => {
            let mut r = Response::new(Full::new(Bytes::from_static(b"OK")));
            if let Some(h) = st.doc.get("ping").and_then(Value::as_object) {
                // Framing headers are the server's own business, not the capture's.
                let framing = [
                    "content-length",
                    "transfer-encoding",
                    "connection",
                    "date",
                    "content-type",
                ];
                for (k, v) in h
                    .iter()
                    .filter(|(k, _)| !framing.contains(&k.to_ascii_lowercase().as_str()))
                {
                    if let (Ok(name), Some(Ok(value))) = (
                        hyper::header::HeaderName::from_bytes(k.as_bytes()),
                        v.as_str().map(hyper::header::HeaderValue::from_str),
                    ) {
                        r.headers_mut().insert(name, value);
                    }
                }
            }
            r
        }
        ("GET", "/version") => {
            // bollard negotiates from ApiVersion; a capture without /version gets only that.
            let mut v = st.doc.get("version").cloned().unwrap_or_else(|| json!({}));
            if v.get("ApiVersion").is_none() {
                let api = st
                    .doc
                    .pointer("/ping/Api-Version")
                    .and_then(Value::as_str)
                    .unwrap_or("1.41")
                    .to_string();
                v["ApiVersion"] = json!(api);
            }
            reply(200, &v)
        }
        ("GET", "/info") => reply(200, st.doc.get("info").unwrap_or(&json!({}))),
        ("GET", "/libpod/info") => match st.doc.get("libpod_info") {
            Some(l) => reply(200, l),
            None => not_found(),
        },
        ("POST", "/networks/create" | "/libpod/networks/create") => {
            let mut network = created_network();
            if let Some(name) = created_name {
                network["Name"] = json!(name);
            }
            st.network = Some(network);
            st.creates
                .push((path.clone(), create_body.unwrap_or(Value::Null)));
            if path.starts_with("/libpod/") {
                // libpod answers with the network it made.
                reply(
                    200,
                    &json!({"name": st.network.as_ref().map(|n| n["Name"].clone()), "id": "replay"}),
                )
            } else {
                reply(201, &json!({"Id": "replay", "Warning": ""}))
            }
        }
        ("GET", "/networks") => reply(200, &json!(st.network.iter().collect::<Vec<_>>())),
        ("GET", p) if p.starts_with("/networks/") => match &st.network {
            Some(n) => reply(200, n),
            None => not_found(),
        },
        _ => not_found(),
    };
    Ok(r)
}
