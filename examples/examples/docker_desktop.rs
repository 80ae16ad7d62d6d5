//! Docker Desktop: recognised by its OS name, labels, hostname or LinuxKit kernel; routes through host-gateway with the gateway on loopback.
//!
//! Run: `cargo run -p openshell-examples --example docker_desktop`. Live when this backend is on the
//! machine, otherwise on its recorded capture through the replay engine; it says which.

use openshell_examples::{run, Api, Backend};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    run(Backend {
        runtime: "docker-desktop",
        sockets: &["~/.docker/run/docker.sock", "~/.docker/desktop/docker.sock"],
        capture: "docker-desktop/dd-4.10.1-20.10.17-macos-x86_64-cygnu7-belajar-docker.json",
        api: Api::Docker,
    })
    .await
}
