//! Rootful Podman through libpod (podman-api): the bridge gateway as a literal address, never host-gateway on 4.3.
//!
//! Run: `cargo run -p openshell-examples --example podman`. Live when this backend is on the
//! machine, otherwise on its recorded capture through the replay engine; it says which.

use openshell_examples::{run, Api, Backend};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    run(Backend {
        runtime: "podman",
        sockets: &["/run/podman/podman.sock"],
        capture: "podman/debian12-podman-4.3.1-rootful-this-machine.json",
        api: Api::Libpod,
    })
    .await
}
