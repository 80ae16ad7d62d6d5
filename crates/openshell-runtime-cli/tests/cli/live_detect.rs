//! Live: `detect` against this machine's engines.

use std::path::Path;
use std::process::Command;

use openshell_tests::live;

use crate::common::*;

/// Live: the done-when of the Docker driver issue, through the binary.
#[test]
fn live_detect_against_dockerd_and_podman() {
    // The rootful engines, through each driver.
    for pair in live::pairs().filter(|p| p.engine.on_this_host() && !p.engine.rootless()) {
        let engine = pair.local();
        let (sock, runtime, cli, driver) = (
            engine.socket.as_str(),
            engine.runtime,
            engine.cli[0].as_str(),
            pair.driver(),
        );
        if !Path::new(sock).exists() {
            assert!(
                std::env::var("OPENSHELL_LIVE").as_deref() != Ok("require"),
                "{sock} missing and OPENSHELL_LIVE=require"
            );
            eprintln!("SKIPPED (no engine at {sock}): run scripts/engines.sh as root");
            continue;
        }
        let network = format!("openshell-cli-{}-{cli}-{driver}", std::process::id());
        let dump = std::env::temp_dir().join(format!("{network}.json"));
        let out = run(&[
            "detect",
            "--no-config",
            "-o",
            "json",
            "--driver",
            driver,
            "--endpoint",
            &format!("unix://{sock}"),
            "--network",
            &network,
            "--dump-facts",
            &dump.display().to_string(),
        ]);
        let _ = Command::new(cli).args(["network", "rm", &network]).output();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v = json(&out);
        assert_eq!(v["driver"], driver);
        assert_eq!(v["runtime"], runtime);
        assert_eq!(v["openshell_host"], v["bind"], "{v}");
        assert_ne!(v["openshell_host"], "host-gateway");
        let gw = v["openshell_host"].as_str().unwrap_or_default().to_string();
        // The dumped facts replay to the same decision.
        let replay = run(&[
            "detect",
            "--no-config",
            "-o",
            "json",
            "--facts",
            &dump.display().to_string(),
        ]);
        assert_eq!(json(&replay)["openshell_host"], gw.as_str());
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&dump).unwrap_or_default())
                .unwrap_or_default();
        let _ = std::fs::remove_file(&dump);
        let ipam_gw = doc
            .pointer("/network/IPAM/Config/0/Gateway")
            .or_else(|| doc.pointer("/network/subnets/0/gateway"))
            .and_then(|g| g.as_str())
            .unwrap_or_default();
        assert_eq!(
            ipam_gw.split('/').next(),
            Some(gw.as_str()),
            "the route is the sandbox network's gateway"
        );
    }
}
