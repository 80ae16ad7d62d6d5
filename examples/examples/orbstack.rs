//! OrbStack: recognised by its OS name and kernel; routes through host-gateway with the gateway on loopback.
//!
//! Run: `cargo run -p openshell-examples --example orbstack`. Live when this backend is on the
//! machine, otherwise on its recorded capture through the replay engine; it says which.

use openshell_examples::{run, Api, Backend};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    run(Backend {
        runtime: "orbstack",
        sockets: &["~/.orbstack/run/docker.sock"],
        capture: "orbstack/orbstack-28.5.2-macos-x86_64-sanghwa-na-codyssey.json",
        api: Api::Docker,
    })
    .await
}
