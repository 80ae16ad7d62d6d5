//! Live: `doctor` interrupted by signals leaves nothing behind.

use std::process::Command;

use crate::common::*;

/// `doctor` interrupted at any moment leaves no probe container once the next run is done:
/// SIGINT makes it remove its probe and exit 130; SIGKILL leaves at most a probe that the engine
/// removes itself once it exits, or that the next run sweeps and reports. (Before, every
/// interrupted run could leave a container that nothing ever removed.) The same holds for the
/// relay a relay-route probe starts: SIGINT removes it, and the next run reaps what SIGKILL left.
#[test]
fn interrupted_doctors_leave_no_probe_after_the_next_run() {
    use openshell_tests::live::{
        containers_on_network, import_busybox, networks_prefixed, remove_image,
        remove_networks_named,
    };
    use std::time::Duration;
    // Direct routes, then the relay route, whose relay container is the run's too.
    let kinds: [(&str, &[&str]); 2] = [("direct", &[]), ("relay", &["--route-kind", "relay"])];
    // The rootful engines, each through its own API.
    let engines = openshell_tests::live::pairs()
        .filter(|p| p.engine.on_this_host() && !p.engine.rootless() && p.native())
        .map(|p| (p.local(), p.driver()));
    for ((engine, driver), (kind, extra)) in engines.flat_map(|e| kinds.map(|k| (e.clone(), k))) {
        if !engine.available() {
            continue;
        }
        let network = format!(
            "openshell-cli-{}-interrupted-{kind}-{}",
            std::process::id(),
            engine.name
        );
        let endpoint = format!("unix://{}", engine.socket);
        let image = import_busybox(&engine).unwrap_or_else(|e| panic!("{e}"));
        let mut args = vec![
            "doctor",
            "--no-config",
            "-o",
            "json",
            "--driver",
            driver,
            "--endpoint",
            &endpoint,
            "--network",
            &network,
            "--probe-image",
            &image,
            "--timeout",
            "30",
            "--probe-timeout",
            "12",
        ];
        args.extend_from_slice(extra);
        let mut interrupted = Vec::new();
        // Bounded: five moments per signal, from before the probe exists to after it is done.
        for delay_ms in [200u64, 500, 900, 1400, 2500] {
            for signal in ["INT", "KILL"] {
                let child = bin()
                    .args(&args)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap_or_else(|e| panic!("cannot run the binary: {e}"));
                std::thread::sleep(Duration::from_millis(delay_ms));
                let _ = Command::new("kill")
                    .args([&format!("-{signal}"), &child.id().to_string()])
                    .status();
                let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
                interrupted.push((signal, delay_ms, out));
            }
        }
        // The relay route: a signal the moment its relay exists (seen on the engine), whatever
        // the machine's speed. SIGINT must remove it; what SIGKILL leaves, the next run reaps.
        let mut while_relaying = Vec::new();
        if kind == "relay" {
            // Bounded: a run that finished its relay probe before the signal reached it (a slow
            // `ps` on a loaded machine) proves nothing, and is tried again, at most twice more.
            for (signal, attempt) in ["INT", "KILL"]
                .into_iter()
                .flat_map(|s| (0..3).map(move |a| (s, a)))
            {
                if while_relaying.iter().any(|(s, _, _)| *s == signal) {
                    continue;
                }
                let child = bin()
                    .args(&args)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap_or_else(|e| panic!("cannot run the binary: {e}"));
                // This run's relay, by its owner label (boot id, pid namespace, pid): relays
                // of the SIGKILLed runs above may still be on the network.
                let owner = openshell_tests::live::owner_label(child.id());
                // Bounded: 600 looks, 50 ms apart.
                let mut seen = false;
                for _ in 0..600 {
                    let relays = openshell_tests::live::containers_labelled(
                        &engine,
                        openshell_runtime::consts::LABEL_RELAY_OWNER,
                        &owner,
                    );
                    if relays.is_ok_and(|r| !r.is_empty()) {
                        seen = true;
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                let _ = Command::new("kill")
                    .args([&format!("-{signal}"), &child.id().to_string()])
                    .status();
                let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
                if out.status.code() == Some(0) && attempt < 2 {
                    continue;
                }
                while_relaying.push((signal, seen, out));
            }
        }
        // A create sent just before a kill may land a moment later; then the next run starts.
        std::thread::sleep(Duration::from_secs(2));
        let next = run(&args);
        let relays = openshell_tests::live::containers_labelled(
            &engine,
            openshell_runtime::consts::LABEL_RELAY_NETWORK,
            &network,
        );
        let left = containers_on_network(&engine, &network);
        for name in left.iter().flatten() {
            let _ = Command::new(&engine.cli[0])
                .args(["rm", "-f", name])
                .output();
        }
        // Scratch networks (the subnet pick before the network is created) that the
        // interrupted runs left go with the next run that creates the network: remove it, run
        // once more, and look. Every CI run left one or two on dockerd before.
        remove_networks_named(&engine, &network);
        let again = run(&args);
        let scratch_prefix = format!("{network}-subnet-");
        let scratch = networks_prefixed(&engine, &scratch_prefix);
        for name in scratch.iter().flatten() {
            remove_networks_named(&engine, name);
        }
        for name in containers_on_network(&engine, &network).iter().flatten() {
            let _ = Command::new(&engine.cli[0])
                .args(["rm", "-f", name])
                .output();
        }
        remove_networks_named(&engine, &network);
        remove_image(&engine, &image);
        assert_eq!(
            again.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&again.stderr)
        );
        assert_eq!(
            scratch,
            Ok(Vec::new()),
            "{} ({kind}): scratch networks left",
            engine.name
        );

        for (signal, delay_ms, out) in &interrupted {
            if *signal == "INT" {
                // Caught, never fatal: 130, or the run's own code when it was done first.
                assert!(
                    out.status.code().is_some(),
                    "{} SIGINT after {delay_ms} ms killed the run: {:?} {}",
                    engine.name,
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        assert!(
            interrupted
                .iter()
                .any(|(s, _, out)| *s == "INT" && out.status.code() == Some(130)),
            "{} ({kind}): no SIGINT landed during a run",
            engine.name
        );
        for (signal, seen, out) in &while_relaying {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(seen, "{}: {signal}: no relay appeared: {err}", engine.name);
            if *signal == "INT" {
                assert_eq!(out.status.code(), Some(130), "{}: {err}", engine.name);
                assert!(
                    err.contains("and 1 relay container(s)"),
                    "{}: SIGINT during the relay probe: {err}",
                    engine.name
                );
            }
        }
        assert_eq!(
            next.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&next.stderr)
        );
        assert!(json(&next)["swept"].is_array());
        assert_eq!(
            left,
            Ok(Vec::new()),
            "{} ({kind}): probe or relay containers left",
            engine.name
        );
        assert_eq!(
            relays.map_err(|e| e.to_string()),
            Ok(Vec::new()),
            "{} ({kind}): relays left",
            engine.name
        );
    }
}
