//! Podman machine behind the Docker API, the original bug: recognised by Podman's ping headers and a macOS host, routed through gvproxy's 192.168.127.254 to the Mac's loopback.
//!
//! Run: `cargo run -p openshell-examples --example podman_machine`. Live when this backend is on the
//! machine, otherwise on its recorded capture through the replay engine; it says which.

use openshell_examples::{run, Api, Backend};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    run(Backend {
        runtime: "podman-machine",
        sockets: &[],
        capture: "podman-machine/podman-machine-4.6.1-macos-qemu-ping-headers-podman-19767.json",
        api: Api::Docker,
    })
    .await
}
