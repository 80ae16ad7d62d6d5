//! Facts through libpod: `/_ping` headers, libpod's `/info` and `/version`, the sandbox network
//! (created when missing: bridge, DNS on, labelled as ours), and the gateway host's own facts,
//! mapped into the same facts document the Docker driver produces.
//!
//! libpod's `/info` is read whole rather than through podman-api's model, which predates
//! `rootlessNetworkCmd` and `pasta`: the fact that decides rootless routing.

use openshell_runtime::consts::LABEL_MANAGED;
use openshell_runtime::facts::Endpoint;
use openshell_runtime::Facts;
use openshell_sandbox::raw;
use openshell_sandbox::{host_facts, GatheredFacts};
use podman_api::opts::NetworkCreateOpts;
use serde_json::{json, Value};

use crate::{PodmanDriver, PodmanDriverError};
use openshell_sandbox::raw_call;
use openshell_sandbox::EngineFailure;

const LIBPOD_INFO: &str = "/v4.0.0/libpod/info";
const LIBPOD_VERSION: &str = "/v4.0.0/libpod/version";

/// The Docker-API `/info` fields the policy reads, taken from libpod's `/info`, so that one
/// engine gives the same facts through either API.
pub fn info_from_libpod(libpod: &Value) -> Value {
    let host = &libpod["host"];
    let mut info = json!({"OSType": host["os"].as_str().unwrap_or("linux")});
    let pairs = [
        ("Name", &host["hostname"]),
        ("KernelVersion", &host["kernel"]),
        ("Architecture", &host["arch"]),
        ("ServerVersion", &libpod["version"]["Version"]),
        ("OperatingSystem", &host["distribution"]["distribution"]),
        ("Rootless", &host["security"]["rootless"]),
        ("BuildahVersion", &host["buildahVersion"]),
    ];
    for (k, v) in pairs {
        if !v.is_null() {
            info[k] = v.clone();
        }
    }
    info
}

impl PodmanDriver {
    async fn raw_get(
        &self,
        call: &'static str,
        path: &str,
    ) -> Result<raw::RawResponse, PodmanDriverError> {
        Ok(raw_call(call, &self.endpoint, path, self.opts.timeout).await?)
    }

    async fn raw_json(&self, call: &'static str, path: &str) -> Result<Value, PodmanDriverError> {
        let r = self.raw_get(call, path).await?;
        if r.status != 200 {
            return Err(PodmanDriverError::NotLibpod {
                endpoint: self.endpoint.to_string(),
                call,
                status: r.status,
            });
        }
        match serde_json::from_slice::<Value>(&r.body) {
            Ok(v @ Value::Object(_)) => Ok(v),
            _ => Err(PodmanDriverError::NotLibpod {
                endpoint: self.endpoint.to_string(),
                call,
                status: r.status,
            }),
        }
    }

    /// The sandbox network's libpod inspect body, creating it when missing.
    pub async fn ensure_network(&self) -> Result<Value, PodmanDriverError> {
        let podman = self.client()?;
        let name = self.opts.network.as_str();
        let net = podman.networks().get(name);
        let found = match self.call("network inspect", net.inspect()).await {
            Ok(n) => n,
            Err(e) if e.has_status(404) => {
                let opts = NetworkCreateOpts::builder()
                    .name(name)
                    .driver("bridge")
                    .dns_enabled(true)
                    .labels([(LABEL_MANAGED, "true")])
                    .build();
                self.call("network create", podman.networks().create(&opts))
                    .await?;
                self.call("network inspect", net.inspect()).await?
            }
            Err(e) => return Err(e),
        };
        let driver = found.driver.clone().unwrap_or_default();
        if driver != "bridge" {
            return Err(PodmanDriverError::from(EngineFailure::NetworkConflict {
                name: name.to_string(),
                driver,
            }));
        }
        Ok(serde_json::to_value(&found).unwrap_or(Value::Null))
    }

    /// Gathers the facts document and parses it.
    pub async fn gather(&self) -> Result<GatheredFacts, PodmanDriverError> {
        let host = self.opts.host.clone().unwrap_or_else(host_facts);
        let mut doc = json!({"host_os": host.os.as_str(), "endpoint": self.endpoint.to_string()});
        if let Some(ip) = host.ipv4 {
            doc["host_ipv4"] = json!(ip.to_string());
        }
        if matches!(self.endpoint, Endpoint::Ssh { .. }) {
            doc["info"] = json!({});
            return self.parse(doc);
        }
        let (ping, libpod, version, network) = tokio::join!(
            self.raw_get("_ping", "/_ping"),
            self.raw_json("libpod info", LIBPOD_INFO),
            self.raw_json("libpod version", LIBPOD_VERSION),
            self.ensure_network(),
        );
        let libpod = libpod?;
        doc["ping"] = json!(ping?.headers);
        doc["version"] = version?;
        doc["info"] = info_from_libpod(&libpod);
        doc["libpod_info"] = libpod;
        doc["network"] = network?;
        self.parse(doc)
    }

    fn parse(&self, mut document: Value) -> Result<GatheredFacts, PodmanDriverError> {
        // Proxy passwords and URL user information never leave the driver (Podman does not
        // mask them as Docker does), so neither the facts nor `--dump-facts` carry them.
        openshell_runtime::facts::redact_document(&mut document);
        let facts = Facts::from_value(&document).map_err(|source| {
            PodmanDriverError::from(EngineFailure::Facts {
                endpoint: self.endpoint.to_string(),
                source,
            })
        })?;
        Ok(GatheredFacts { facts, document })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpod_info_maps_to_the_fields_the_policy_reads() {
        let libpod = json!({"host": {"os": "linux", "hostname": "localhost.localdomain", "kernel": "6.8.0", "arch": "arm64",
            "security": {"rootless": true}, "distribution": {"distribution": "fedora"}, "buildahVersion": "1.39.0"},
            "version": {"Version": "5.4.0"}});
        let info = info_from_libpod(&libpod);
        assert_eq!(
            info,
            json!({"OSType": "linux", "Name": "localhost.localdomain", "KernelVersion": "6.8.0", "Architecture": "arm64",
            "ServerVersion": "5.4.0", "OperatingSystem": "fedora", "Rootless": true, "BuildahVersion": "1.39.0"})
        );
        assert_eq!(info_from_libpod(&json!({})), json!({"OSType": "linux"}));
    }
}
