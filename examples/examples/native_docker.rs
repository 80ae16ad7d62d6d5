//! Native Docker on Linux: the sandbox bridge's gateway address on both sides.
//!
//! Run: `cargo run -p openshell-examples --example native_docker`. Live when this backend is on the
//! machine, otherwise on its recorded capture through the replay engine; it says which.

use openshell_examples::{run, Api, Backend};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    run(Backend {
        runtime: "native-docker",
        sockets: &["/var/run/docker.sock"],
        capture: "native-docker/debian12-docker.io-20.10.24-this-machine.json",
        api: Api::Docker,
    })
    .await
}
