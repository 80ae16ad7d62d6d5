//! Gathers the facts document from a live engine: `/_ping` headers, `/version`, `/info`, the
//! sandbox network (created when missing), libpod's `/info` when the engine is Podman, and the
//! gateway host's own facts. The engine calls run concurrently.

use std::collections::HashMap;

use bollard::models::NetworkCreateRequest;
use openshell_runtime::consts::LABEL_MANAGED;
use openshell_runtime::facts::Endpoint;
use openshell_runtime::Facts;
use openshell_sandbox::{host_facts, GatheredFacts};
use serde_json::{json, Value};

use openshell_sandbox::raw;

use crate::{DockerDriver, DockerDriverError};
use openshell_sandbox::raw_call;
use openshell_sandbox::EngineFailure;

/// libpod's API path prefix; Podman 4 and 5 serve it.
const LIBPOD_INFO: &str = "/v4.0.0/libpod/info";

impl DockerDriver {
    fn to_json<T: serde::Serialize>(&self, v: &T) -> Value {
        serde_json::to_value(v).unwrap_or(Value::Null)
    }

    async fn raw_get(
        &self,
        call: &'static str,
        path: &str,
    ) -> Result<raw::RawResponse, DockerDriverError> {
        Ok(raw_call(call, &self.endpoint, path, self.opts.timeout).await?)
    }

    /// The sandbox network's inspect body, creating the network (labelled as ours) when it
    /// does not exist. A same-named network with another driver is refused.
    pub async fn ensure_network(&self) -> Result<Value, DockerDriverError> {
        let docker = self.client()?;
        let name = self.opts.network.as_str();
        match self
            .call("network inspect", docker.inspect_network(name, None))
            .await
        {
            Ok(net) => {
                let driver = net.driver.clone().unwrap_or_default();
                if driver != "bridge" {
                    return Err(DockerDriverError::from(EngineFailure::NetworkConflict {
                        name: name.to_string(),
                        driver,
                    }));
                }
                Ok(self.to_json(&net))
            }
            Err(e) if e.is_not_found() => {
                let req = NetworkCreateRequest {
                    name: name.to_string(),
                    driver: Some("bridge".into()),
                    labels: Some(HashMap::from([(
                        LABEL_MANAGED.to_string(),
                        "true".to_string(),
                    )])),
                    ..Default::default()
                };
                self.call("network create", docker.create_network(req))
                    .await?;
                let net = self
                    .call("network inspect", docker.inspect_network(name, None))
                    .await?;
                Ok(self.to_json(&net))
            }
            Err(e) => Err(e),
        }
    }

    /// Gathers the facts document and parses it.
    pub async fn gather(&self) -> Result<GatheredFacts, DockerDriverError> {
        let host = self.opts.host.clone().unwrap_or_else(host_facts);
        let mut doc = json!({
            "host_os": host.os.as_str(),
            "endpoint": self.endpoint.to_string(),
        });
        if let Some(ip) = host.ipv4 {
            doc["host_ipv4"] = json!(ip.to_string());
        }
        if matches!(self.endpoint, Endpoint::Ssh { .. }) {
            // Remote over SSH: the endpoint is the fact that matters; nothing is contacted.
            doc["info"] = json!({});
            return self.parse(doc);
        }
        let docker = self.client()?;
        // libpod's /info is asked of every engine: Podman answers it, Docker refuses the API
        // version. It identifies Podman even where a proxy stripped the ping headers.
        let (ping, version, info, network, libpod) = tokio::join!(
            self.raw_get("_ping", "/_ping"),
            self.call("version", docker.version()),
            self.call("info", docker.info()),
            self.ensure_network(),
            self.raw_get("libpod info", LIBPOD_INFO),
        );
        let ping = ping?;
        doc["ping"] = json!(ping.headers);
        doc["version"] = self.to_json(&version?);
        doc["info"] = self.to_json(&info?);
        doc["network"] = network?;
        match libpod {
            Ok(r) if r.status == 200 => match serde_json::from_slice::<Value>(&r.body) {
                Ok(v @ Value::Object(_)) => doc["libpod_info"] = v,
                _ => tracing::warn!("libpod /info answered, but not with a JSON object; ignored"),
            },
            Ok(r) => tracing::debug!(status = r.status, "no libpod /info: not Podman"),
            Err(e) => tracing::debug!(error = %e, "no libpod /info"),
        }
        self.parse(doc)
    }

    fn parse(&self, mut document: Value) -> Result<GatheredFacts, DockerDriverError> {
        // Proxy passwords and URL user information never leave the driver (Podman does not
        // mask them as Docker does), so neither the facts nor `--dump-facts` carry them.
        openshell_runtime::facts::redact_document(&mut document);
        let facts = Facts::from_value(&document).map_err(|source| {
            DockerDriverError::from(EngineFailure::Facts {
                endpoint: self.endpoint.to_string(),
                source,
            })
        })?;
        Ok(GatheredFacts { facts, document })
    }
}
