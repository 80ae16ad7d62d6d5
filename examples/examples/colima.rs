//! Colima: recognised by its VM hostname or socket; host-gateway is 192.168.5.2, which reaches the Mac's loopback.
//!
//! Run: `cargo run -p openshell-examples --example colima`. Live when this backend is on the
//! machine, otherwise on its recorded capture through the replay engine; it says which.

use openshell_examples::{run, Api, Backend};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    run(Backend {
        runtime: "colima",
        sockets: &["~/.colima/default/docker.sock", "~/.colima/docker.sock"],
        capture: "colima/colima-29.5.2-ubuntu24.04-macos-arm64-host-lima-internal-proxy-anysoft-qinglong.json",
        api: Api::Docker,
    })
    .await
}
