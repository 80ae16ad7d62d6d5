//! libpod's API spoken raw, for what a client library does not cover: its `/info` (which also
//! tells Podman from Docker behind the Docker API) and the network create of a network we own.
//! Both drivers reach it on their endpoint through the transport, each reply within its budget.

use std::collections::BTreeMap;
use std::time::Duration;

use openshell_transport::raw;
use openshell_transport::Target;
use serde_json::Value;

use crate::{ErrorKind, OpError, Subnet};

/// libpod's `/info`. Podman answers it on either API's socket; Docker refuses the API version.
pub const INFO: &str = "/v4.0.0/libpod/info";

/// libpod's network create.
pub const NETWORK_CREATE: &str = "/v4.0.0/libpod/networks/create";

/// libpod's `/info` when the engine at `target` serves it as a JSON object; `None` for Docker
/// (or anything else that does not). Asked of every engine the Docker driver reaches: it
/// identifies Podman even where `/_ping` named none (replayed captures of Podman whose `/_ping`
/// carries no `Libpod-Api-Version` were taken for Docker when only those were asked).
pub async fn info(target: &Target, timeout: Duration) -> Option<Value> {
    match raw::get(target, INFO, timeout).await {
        Ok(r) if r.status == 200 => match serde_json::from_slice::<Value>(&r.body) {
            Ok(v @ Value::Object(_)) => Some(v),
            _ => {
                tracing::warn!("libpod /info answered, but not with a JSON object; ignored");
                None
            }
        },
        Ok(r) => {
            tracing::debug!(status = r.status, "no libpod /info: not Podman");
            None
        }
        Err(e) => {
            tracing::debug!(error = %e, "no libpod /info");
            None
        }
    }
}

/// The body of libpod's network create for a network we own: a bridge without DNS. Nothing of
/// ours resolves names on the sandbox network (routes are extra hosts), and aardvark-dns, which
/// a DNS-enabled network starts with its first container, fails for a rootless user without a
/// systemd user session on Podman 5 (netavark runs it with `systemd-run --user`), failing every
/// container start on the network. `isolate` is what Podman's compatible API sets for bridges.
/// A `subnet`, when given, is the network's own (libpod's `subnets`).
pub fn network_body(
    name: &str,
    labels: &BTreeMap<String, String>,
    subnet: Option<&Subnet>,
) -> Value {
    let mut body = serde_json::json!({
        "name": name,
        "driver": "bridge",
        "dns_enabled": false,
        "labels": labels,
        "options": {"isolate": "true"},
    });
    if let Some(subnet) = subnet {
        body["subnets"] =
            serde_json::json!([{ "subnet": subnet.subnet, "gateway": subnet.gateway }]);
    }
    body
}

/// `POST path` with a JSON body on `target`, within `timeout`; the reply's body is read only
/// for an error status's message, and the status decides the error's kind.
pub async fn post_json(
    target: &Target,
    call: &'static str,
    path: &str,
    body: &Value,
    timeout: Duration,
) -> Result<(), OpError> {
    let r = raw::post_json(target, path, body, timeout).await?;
    if (200..300).contains(&r.status) {
        return Ok(());
    }
    let error = raw::Refused {
        call,
        status: r.status,
        message: r.message(),
    };
    Err(OpError::new(ErrorKind::from_status(r.status), error))
}
