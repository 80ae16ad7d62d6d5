//! The `openshell-runtime` binary as users run it: exit codes, JSON fields, live detection.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_openshell-runtime"));
    c.env_remove("OPENSHELL_HOST_GATEWAY_IP")
        .env_remove("OPENSHELL_BIND_ADDRESS")
        .env_remove("OPENSHELL_NETWORK_MODE")
        .env_remove("OPENSHELL_GRPC_ENDPOINT")
        .env_remove("OPENSHELL_PODMAN_HOST_GATEWAY_IP");
    c
}

fn run(args: &[&str]) -> Output {
    bin()
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the binary: {e}"))
}

fn fixture(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(rel)
        .display()
        .to_string()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// A file of a test's in the temporary directory, removed when dropped (also when the test
/// fails), so that test runs leave nothing there.
struct TmpFile(String);

impl std::ops::Deref for TmpFile {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Drop for TmpFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn write_tmp(name: &str, text: &str) -> TmpFile {
    let p = std::env::temp_dir().join(format!("openshell-cli-{}-{name}", std::process::id()));
    std::fs::write(&p, text).unwrap_or_else(|e| panic!("{e}"));
    TmpFile(p.display().to_string())
}

#[test]
fn facts_mode_exit_codes_and_fields() {
    let ok = run(&[
        "detect",
        "--no-config",
        "-o",
        "json",
        "--facts",
        &fixture("native-docker/debian12-docker.io-20.10.24-this-machine.json"),
    ]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let v = json(&ok);
    assert_eq!(v["runtime"], "native-docker");
    assert_eq!(v["openshell_host"], "172.18.0.1");
    assert_eq!(v["bind"], "172.18.0.1");
    assert_eq!(
        v["sandbox_endpoint"],
        "http://host.openshell.internal:17670"
    );
    assert_eq!(v["extra_hosts"][0], "host.openshell.internal:172.18.0.1");
    assert!(v["evidence"].as_array().is_some_and(|e| !e.is_empty()));

    // A remote engine has no direct route: auto decides the relay, direct refuses as before.
    let relayed = run(&[
        "detect",
        "--no-config",
        "-o",
        "json",
        "--facts",
        &fixture("remote-docker/remote-docker-20.10.5-ssh-compose-cli-1456.json"),
    ]);
    assert_eq!(relayed.status.code(), Some(0));
    let v = json(&relayed);
    assert_eq!(v["route_kind"], "relay", "{v}");
    assert_eq!(v["openshell_host"], "relay", "{v}");
    assert_eq!(v["bind"], "127.0.0.1", "{v}");

    let refused = run(&[
        "detect",
        "--no-config",
        "--route-kind",
        "direct",
        "-o",
        "json",
        "--facts",
        &fixture("remote-docker/remote-docker-20.10.5-ssh-compose-cli-1456.json"),
    ]);
    assert_eq!(refused.status.code(), Some(4));
    let v = json(&refused);
    assert_eq!(v["runtime"], "remote-docker");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("host_gateway_ip")),
        "{v}"
    );

    let fixed = run(&[
        "detect",
        "--no-config",
        "-o",
        "json",
        "--host-gateway-ip",
        "10.20.0.1",
        "--port",
        "9000",
        "--tls",
        "--facts",
        &fixture("remote-docker/remote-docker-20.10.5-ssh-compose-cli-1456.json"),
    ]);
    assert_eq!(fixed.status.code(), Some(0));
    let v = json(&fixed);
    assert_eq!(v["bind"], "10.20.0.1");
    assert_eq!(
        v["sandbox_endpoint"],
        "https://host.openshell.internal:9000"
    );
}

#[test]
fn bad_input_exits_2_and_names_the_field() {
    let cases = [
        ("not-json", "{", "not valid JSON"),
        ("no-info", r#"{"host_os":"linux"}"#, "`info` is missing"),
        (
            "bad-override",
            r#"{"info":{},"overrides":{"bind":"0.0.0.0.0"}}"#,
            "overrides.bind",
        ),
        (
            "bad-endpoint",
            r#"{"info":{},"endpoint":"ftp://x"}"#,
            "endpoint",
        ),
    ];
    for (name, text, needle) in cases {
        let out = run(&["detect", "--no-config", "--facts", &write_tmp(name, text)]);
        assert_eq!(out.status.code(), Some(2), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{name}: {err}");
    }
    let bad_flag = run(&[
        "detect",
        "--no-config",
        "--bind",
        "nope",
        "--facts",
        &fixture("native-docker/debian12-docker.io-20.10.24-this-machine.json"),
    ]);
    assert_eq!(bad_flag.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_flag.stderr).contains("--bind"));
}

#[test]
fn config_file_and_env_feed_overrides_with_precedence() {
    let facts = fixture("podman-machine/podman-machine-4.3.1-macos-arm64-qemu-podman-16700.json");
    let cfg = write_tmp("gateway.toml", "[openshell.gateway]\nbind_address = \"127.0.0.1:18080\"\n[openshell.drivers.podman]\nhost_gateway_ip = \"192.168.127.254\"\n");
    let out = bin()
        .args(["detect", "-o", "json", "--config", &cfg, "--facts", &facts])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let v = json(&out);
    assert_eq!(v["openshell_host"], "192.168.127.254");
    assert_eq!(v["bind"], "127.0.0.1");
    assert_eq!(
        v["sandbox_endpoint"],
        "http://host.openshell.internal:18080"
    );
    let env = bin()
        .args(["detect", "-o", "json", "--config", &cfg, "--facts", &facts])
        .env("OPENSHELL_BIND_ADDRESS", "10.1.2.3")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    // 10.1.2.3 does not receive what goes to 192.168.127.254 unless the operator says so: the
    // override pair is the operator's word on both sides.
    assert_eq!(json(&env)["bind"], "10.1.2.3");
}

#[test]
fn matrix_decides_every_bundled_capture_as_recorded() {
    let out = run(&["matrix", "-o", "json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let rows = json(&out);
    let rows = rows.as_array().unwrap_or_else(|| panic!("not an array"));
    assert!(rows.len() >= 22);
    assert!(rows.iter().all(|r| r["as_expected"] == true));
}

/// Live: the done-when of the Docker driver issue, through the binary.
#[test]
fn live_detect_against_dockerd_and_podman() {
    for (sock, runtime, cli, driver) in [
        ("/var/run/docker.sock", "native-docker", "docker", "docker"),
        ("/run/podman/podman.sock", "podman", "podman", "docker"),
        ("/run/podman/podman.sock", "podman", "podman", "podman"),
    ] {
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

/// Runs `doctor` against a live engine with a locally imported probe image.
fn doctor(
    engine: &openshell_tests::live::Engine,
    driver: &str,
    network: &str,
    extra: &[&str],
) -> Output {
    let image = openshell_tests::live::import_busybox(engine).unwrap_or_else(|e| panic!("{e}"));
    let endpoint = format!("unix://{}", engine.socket);
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
        network,
        "--probe-image",
        &image,
        "--probe-timeout",
        "12",
    ];
    args.extend_from_slice(extra);
    let out = run(&args);
    openshell_tests::live::remove_image(engine, &image);
    out
}

/// What `detect` decides on dockerd for `network`, which it creates: the bridge's gateway
/// address (native Docker routes sandboxes there).
fn dockerd_bridge_gateway(network: &str) -> String {
    let decided = json(&run(&[
        "detect",
        "--no-config",
        "-o",
        "json",
        "--driver",
        "docker",
        "--network",
        network,
    ]));
    decided["openshell_host"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// `doctor` proves the route on dockerd, rootful Podman through both drivers and the rootless
/// engines (with `--rootless-host-loopback`), finds the
/// working fallback behind a deliberately broken override, and exits 5 with firewall advice
/// when a firewall drops every route.
#[test]
fn live_doctor_proves_routes_and_classifies_failures() {
    use openshell_tests::live::{dockerd, dockerd_rootless, podman, podman_rootless};
    // The rootless engines run with host loopback enabled, which they do not report: the
    // operator says so with --rootless-host-loopback (without it the route is the host's
    // LAN-facing address, which tests must not send traffic to).
    for (engine, driver) in [
        (dockerd(), "docker"),
        (podman(), "docker"),
        (podman(), "podman"),
        (dockerd_rootless(), "docker"),
        (podman_rootless(), "podman"),
    ] {
        if !engine.available() {
            continue;
        }
        let extra: &[&str] = if engine.rootless_host_loopback {
            &["--rootless-host-loopback"]
        } else {
            &[]
        };
        let network = format!(
            "openshell-doctor-{}-{}-{driver}",
            std::process::id(),
            engine.name.replace(' ', "-")
        );
        let out = doctor(&engine, driver, &network, extra);
        let v = json(&out);
        openshell_tests::live::remove_network(&engine, &network);
        assert!(
            !openshell_tests::live::exists(&engine, "network", &network),
            "network {network} left behind"
        );
        assert_eq!(out.status.code(), Some(0), "{v}");
        assert_eq!(v["runtime"], engine.runtime, "{v}");
        assert_eq!(v["probes"][0]["outcome"], "ok", "{v}");
        assert_eq!(v["proven"]["openshell_host"], v["openshell_host"]);
    }

    let engine = dockerd();
    if !engine.available() {
        return;
    }
    // A broken override (the bridge, with the gateway on loopback): refused, then the runtime's
    // own route is probed and proven.
    let network = format!("openshell-doctor-{}-broken", std::process::id());
    let gw = dockerd_bridge_gateway(&network);
    let out = doctor(
        &engine,
        "docker",
        &network,
        &["--host-gateway-ip", &gw, "--bind", "127.0.0.1"],
    );
    let v = json(&out);
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(v["probes"][0]["outcome"], "refused", "{v}");
    assert_eq!(v["probes"][1]["outcome"], "ok", "{v}");
    assert_eq!(v["proven"]["bind"], gw.as_str());

    // An override on the sandbox bridge's subnet that no one holds: the probe binds it with
    // IP_FREEBIND, it never comes up, and doctor says it is not this host's address rather than
    // asking for a gateway there (the probe's packets stay on this test's bridge, unanswered).
    let absent = gw
        .rsplit_once('.')
        .map(|(net, _)| format!("{net}.201"))
        .unwrap_or_default();
    let out = doctor(&engine, "docker", &network, &["--host-gateway-ip", &absent]);
    let v = json(&out);
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(v["probes"][0]["bind"], absent.as_str(), "{v}");
    assert_eq!(v["probes"][0]["not_on_host"], true, "{v}");
    assert_eq!(v["probes"][1]["outcome"], "ok", "{v}");
    assert!(
        v["advice"][0]
            .as_str()
            .is_some_and(|a| a.starts_with(&format!("{absent} is not an address of this host"))),
        "{v}"
    );

    // A firewall on the sandbox bridge drops the gateway's port: no route proven, exit 5.
    let id = Command::new("docker")
        .args(["network", "inspect", "-f", "{{.Id}}", &network])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let iface = format!("br-{}", id.get(..12).unwrap_or_default());
    let rule = |op: &str| {
        Command::new("iptables")
            .args([
                op, "INPUT", "-i", &iface, "-p", "tcp", "--dport", "17681", "-j", "DROP",
            ])
            .status()
    };
    assert!(rule("-I").is_ok_and(|s| s.success()));
    // Direct routes only: none proven, exit 5, with firewall advice.
    let direct = doctor(
        &engine,
        "docker",
        &network,
        &["--port", "17681", "--route-kind", "direct"],
    );
    // Every kind: the direct routes time out, and the relay, last, is proven with the gateway
    // on loopback (the firewall drops bridge-to-host traffic; the relay's path is the engine's
    // API socket).
    let auto = doctor(&engine, "docker", &network, &["--port", "17681"]);
    let _ = rule("-D");
    openshell_tests::live::remove_network(&engine, &network);
    let v = json(&direct);
    assert_eq!(direct.status.code(), Some(5), "{v}");
    assert_eq!(v["probes"][0]["outcome"], "timeout", "{v}");
    assert!(
        v["probes"]
            .as_array()
            .is_some_and(|p| p.iter().all(|p| p["openshell_host"] != "relay")),
        "{v}"
    );
    assert!(
        v["advice"][0].as_str().is_some_and(|a| a.contains("INPUT")),
        "{v}"
    );
    let v = json(&auto);
    assert_eq!(auto.status.code(), Some(0), "{v}");
    let probes = v["probes"].as_array().cloned().unwrap_or_default();
    let (last, direct) = probes
        .split_last()
        .unwrap_or_else(|| panic!("no probes: {v}"));
    assert!(!direct.is_empty(), "{v}");
    assert!(direct.iter().all(|p| p["outcome"] == "timeout"), "{v}");
    assert_eq!(last["openshell_host"], "relay", "{v}");
    assert_eq!(last["outcome"], "ok", "{v}");
    assert_eq!(v["proven"]["openshell_host"], "relay", "{v}");
    assert_eq!(v["proven"]["bind"], "127.0.0.1", "{v}");
    assert!(
        openshell_tests::live::containers_labelled(
            &engine,
            openshell_runtime::consts::LABEL_RELAY_NETWORK,
            &network
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .is_empty(),
        "doctor left its relay behind"
    );
}

/// Rootless engines whose host loopback is not declared: the policy decides the relay (no
/// LAN-facing bind), `doctor` proves it with the gateway on 127.0.0.1, and leaves no relay.
#[test]
fn live_rootless_engines_without_declared_loopback_relay_by_default() {
    use openshell_tests::live::{dockerd_rootless, podman_rootless};
    for (engine, driver) in [
        (dockerd_rootless(), "docker"),
        (podman_rootless(), "podman"),
        (podman_rootless(), "docker"),
    ] {
        if !engine.available() {
            continue;
        }
        let network = format!(
            "openshell-relay-default-{}-{}-{driver}",
            std::process::id(),
            engine.name.replace(' ', "-")
        );
        let endpoint = format!("unix://{}", engine.socket);
        let detect = run(&[
            "detect",
            "--no-config",
            "-o",
            "json",
            "--driver",
            driver,
            "--endpoint",
            &endpoint,
            "--network",
            &network,
        ]);
        let out = doctor(&engine, driver, &network, &[]);
        let relays = openshell_tests::live::containers_labelled(
            &engine,
            openshell_runtime::consts::LABEL_RELAY_NETWORK,
            &network,
        );
        openshell_tests::live::remove_network(&engine, &network);
        let d = json(&detect);
        assert_eq!(detect.status.code(), Some(0), "{d}");
        assert_eq!(d["runtime"], engine.runtime, "{d}");
        assert_eq!(d["route_kind"], "relay", "{d}");
        assert_eq!(d["openshell_host"], "relay", "{d}");
        assert_eq!(d["bind"], "127.0.0.1", "{d}");
        let v = json(&out);
        assert_eq!(out.status.code(), Some(0), "{v}");
        assert_eq!(v["probes"][0]["openshell_host"], "relay", "{v}");
        assert_eq!(v["probes"][0]["outcome"], "ok", "{v}");
        assert_eq!(v["proven"]["bind"], "127.0.0.1", "{v}");
        assert!(
            relays.unwrap_or_else(|e| panic!("{e}")).is_empty(),
            "doctor left its relay behind on {}",
            engine.name
        );
    }
}

#[test]
fn doctor_without_an_engine_exits_3() {
    let out = run(&[
        "doctor",
        "--no-config",
        "--driver",
        "docker",
        "--endpoint",
        "unix:///nonexistent/openshell.sock",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("absent"));
}

/// A non-UTF-8 value in a variable we never read is ignored; in one we read it is invalid input
/// (exit 2) that names the variable. It used to panic (exit 101) in live mode and be ignored
/// silently in `settle`.
#[cfg(unix)]
#[test]
fn non_utf8_environment_is_ignored_unless_read() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let bad = OsStr::from_bytes(b"tcp://\xff:2375");
    let no_engine = [
        "detect",
        "--no-config",
        "--endpoint",
        "unix:///nonexistent/openshell.sock",
    ];
    let facts = fixture("native-docker/debian12-docker.io-20.10.24-this-machine.json");
    let with_config = ["detect", "-o", "json", "--facts", facts.as_str()];
    let with_env = |args: &[&str], var: &str| {
        bin()
            .args(args)
            .env(var, bad)
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    for (args, var, code) in [
        (&no_engine[..], "SOME_UNRELATED_VARIABLE", 3),
        (&no_engine[..], "DOCKER_HOST", 2),
        (&no_engine[..], "XDG_RUNTIME_DIR", 2),
        (&with_config[..], "OPENSHELL_BIND_ADDRESS", 2),
        (&with_config[..], "SOME_UNRELATED_VARIABLE", 0),
    ] {
        let out = with_env(args, var);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{var} {args:?}: {err}");
        if code == 2 {
            assert!(err.contains(var) && err.contains("UTF-8"), "{var}: {err}");
        }
    }
}

/// Credentials in an endpoint (`DOCKER_HOST`, `--endpoint`, a facts file's `endpoint`) never
/// reach the terminal.
#[test]
fn endpoint_credentials_are_not_echoed() {
    let secret = "s3cret-pw";
    let url = format!("tcp://user:{secret}@127.0.0.1:1");
    let facts = write_tmp(
        "secret-endpoint",
        &format!(r#"{{"info":{{}},"endpoint":"{url}"}}"#),
    );
    let outs = [
        bin()
            .args(["detect", "--no-config"])
            .env("DOCKER_HOST", &url)
            .output(),
        bin()
            .args(["detect", "--no-config", "--endpoint", &url])
            .output(),
        bin()
            .args(["detect", "--no-config", "--facts", &facts])
            .output(),
    ];
    for out in outs {
        let out = out.unwrap_or_else(|e| panic!("{e}"));
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(2), "{all}");
        assert!(!all.contains(secret), "{all}");
        assert!(all.contains("xxxxx@127.0.0.1:1"), "{all}");
    }
}

/// `--dump-facts` writes what the engine reported, minus credentials: an engine (here a replay
/// of Podman's compatible API, which does not mask them) with a proxy password in `/info`.
#[test]
fn dump_facts_carries_no_credentials() {
    let doc = serde_json::json!({
        "host_os": "linux",
        "ping": {"Api-Version": "1.41", "Libpod-Api-Version": "4.3.1", "Server": "Libpod/4.3.1 (linux)"},
        "info": {
            "Name": "box", "ServerVersion": "4.3.1", "OperatingSystem": "debian",
            "HttpProxy": "http://user:s3cret-pw@proxy.corp:3128",
            "HttpsProxy": "user:s3cret-pw@proxy.corp:3128"
        },
        "network": {"Name": "openshell", "Driver": "bridge", "IPAM": {"Config": [{"Subnet": "10.89.0.0/24", "Gateway": "10.89.0.1"}]}}
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let engine = rt
        .block_on(openshell_tests::replay::ReplayEngine::start(&doc))
        .unwrap_or_else(|e| panic!("{e}"));
    let dump = write_tmp("dump-no-credentials.json", "");
    let out = run(&[
        "detect",
        "--no-config",
        "-o",
        "json",
        "--driver",
        "docker",
        "--endpoint",
        &format!("unix://{}", engine.socket().display()),
        "--dump-facts",
        &dump,
    ]);
    drop(engine);
    let written = std::fs::read_to_string(&*dump).unwrap_or_default();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        written.contains("xxxxx@proxy.corp:3128"),
        "{written}\n{all}"
    );
    assert!(!written.contains("s3cret"), "{written}");
    assert!(!all.contains("s3cret"), "{all}");
}

/// `--config` reads at most a bounded amount (`/dev/zero` used to grow to 2 GB and be killed);
/// the run is held to 1 GiB of address space so a regression fails ("out of memory") instead
/// of exhausting the machine.
#[cfg(target_os = "linux")]
#[test]
fn config_is_read_with_a_size_cap() {
    let facts = fixture("native-docker/debian12-docker.io-20.10.24-this-machine.json");
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg("ulimit -v 1048576 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_openshell-runtime"))
        .args(["detect", "--config", "/dev/zero", "--facts", &facts])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("/dev/zero") && err.contains("is over"),
        "{err}"
    );
}

/// Misspelled keys, keys in the wrong section and sections of the wrong type in gateway.toml
/// are warned about (stderr, and `settings.warnings` in JSON) instead of ignored silently;
/// OpenShell's own other keys are not ours to judge and pass quietly.
#[test]
fn config_mistakes_are_warned_about() {
    let facts = fixture("native-docker/debian12-docker.io-20.10.24-this-machine.json");
    let cfg = write_tmp(
        "typos.toml",
        "[openshell.gateway]\nbind_adress = \"127.0.0.1\"\nhost_gateway_ip = \"10.0.0.1\"\ngrpc_endpoint = \"http://10.0.0.4:1\"\nlog_level = \"debug\"\n\n[openshell.driver.docker]\nhost_gateway_ip = \"10.0.0.2\"\n\n[openshell.drivers]\npodman = \"10.0.0.3\"\n",
    );
    let out = bin()
        .args(["detect", "-o", "json", "--config", &cfg, "--facts", &facts])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    for needle in [
        "bind_adress",
        "did you mean bind_address",
        "[openshell.gateway] grpc_endpoint: ignored here",
        "[openshell] driver: unknown section",
        "[openshell.drivers] podman: expected a section",
    ] {
        assert!(err.contains(needle), "{needle:?} not in:\n{err}");
    }
    assert!(!err.contains("log_level"), "{err}");
    let v = json(&out);
    // OpenShell's driver tables inherit the gateway's host_gateway_ip, so it is read, not
    // warned about.
    assert_eq!(v["openshell_host"], "10.0.0.1", "{v}");
    assert_eq!(
        v["settings"]["warnings"].as_array().map(Vec::len),
        Some(4),
        "{v}"
    );
}

/// Issue 10: an address that cannot serve its role is invalid input (exit 2, naming the value
/// and where it came from) or a refusal (exit 4), never a route; IPv4-mapped forms are checked
/// as the IPv4 address they are.
#[test]
fn impossible_addresses_exit_2_or_4_never_a_route() {
    let facts = fixture("native-docker/debian12-docker.io-20.10.24-this-machine.json");
    let detect = |extra: &[&str]| {
        let mut args = vec!["detect", "--no-config", "-o", "json", "--facts", &facts];
        args.extend_from_slice(extra);
        run(&args)
    };
    for value in [
        "::ffff:0.0.0.0",
        "::ffff:0:0",
        "0.0.0.0",
        "::",
        "::0.0.0.0",
        "224.0.0.1",
        "ff02::1",
        "255.255.255.255",
        "240.0.0.1",
        "169.254.169.254",
        "10.0.0.1/garbage",
    ] {
        let out = detect(&["--host-gateway-ip", value]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "--host-gateway-ip {value}: {err}"
        );
        assert!(
            err.contains("--host-gateway-ip") && err.contains(value),
            "--host-gateway-ip {value}: {err}"
        );
    }
    // Loopback is valid input (host-network sandboxes on native engines call it), but a
    // bridge sandbox's loopback is its own: the bridge decision refuses it (exit 4), and the
    // host-network one takes it.
    for value in ["0:0:0:0:0:0:0:1", "127.0.0.1"] {
        let out = detect(&["--host-gateway-ip", value]);
        assert_eq!(out.status.code(), Some(4), "--host-gateway-ip {value}");
        let v = json(&out);
        assert!(
            v["error"].as_str().is_some_and(|e| e.contains("loopback")),
            "{v}"
        );
        let host = detect(&["--host-gateway-ip", value, "--network-mode", "host"]);
        assert_eq!(host.status.code(), Some(0), "{}", json(&host));
    }
    for value in [
        "224.0.0.1",
        "255.255.255.255",
        "169.254.169.254",
        "10.0.0.1/garbage",
    ] {
        let out = detect(&["--bind", value]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--bind {value}: {err}");
        assert!(
            err.contains("--bind") && err.contains(value),
            "--bind {value}: {err}"
        );
    }
    // The operator's own wildcard bind stays allowed, and is reported as the wildcard it is.
    let wildcard = detect(&["--bind", "::ffff:0.0.0.0"]);
    assert_eq!(
        wildcard.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&wildcard.stderr)
    );
    let v = json(&wildcard);
    assert_eq!(v["bind"], "0.0.0.0");
    assert_eq!(v["exposure"], "wildcard");

    let port0 = detect(&["--port", "0"]);
    assert_eq!(port0.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&port0.stderr).contains("--port"));

    // The environment and gateway.toml go through the same checks.
    for (var, value, named) in [
        (
            "OPENSHELL_HOST_GATEWAY_IP",
            "::ffff:0.0.0.0",
            "::ffff:0.0.0.0",
        ),
        ("OPENSHELL_BIND_ADDRESS", "224.0.0.1:17670", "224.0.0.1"),
        ("OPENSHELL_BIND_ADDRESS", "172.18.0.1:0", "172.18.0.1:0"),
    ] {
        let out = bin()
            .args(["detect", "-o", "json", "--facts", &facts])
            .env(var, value)
            .env("XDG_CONFIG_HOME", "/nonexistent")
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}={value}: {err}");
        assert!(
            err.contains(var) && err.contains(named),
            "{var}={value}: {err}"
        );
    }
    let cfg = write_tmp(
        "wildcard-gateway.toml",
        "[openshell.drivers.docker]\nhost_gateway_ip = \"::\"\n",
    );
    let out = run(&["detect", "--config", &cfg, "--facts", &facts]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("host_gateway_ip") && err.contains("::"),
        "{err}"
    );

    // An engine reporting an impossible gateway gets a refusal for want of it, not a route.
    let text = std::fs::read_to_string(&facts).unwrap_or_else(|e| panic!("{e}"));
    for gw in ["::", "::ffff:0.0.0.0", "224.0.0.1"] {
        let doc = text.replace(
            "\"Gateway\": \"172.18.0.1\"",
            &format!("\"Gateway\": \"{gw}\""),
        );
        assert_ne!(doc, text, "the fixture's gateway moved");
        let path = write_tmp("impossible-gateway.json", &doc);
        let out = run(&[
            "detect",
            "--no-config",
            "--route-kind",
            "direct",
            "-o",
            "json",
            "--facts",
            &path,
        ]);
        assert_eq!(out.status.code(), Some(4), "gateway {gw}");
        assert!(json(&out)["bind"].is_null(), "gateway {gw}");
    }
}

/// Every file under `tests/fixtures/`, sorted.
fn all_fixtures() -> Vec<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    let mut out = Vec::new();
    for dir in std::fs::read_dir(&root).unwrap_or_else(|e| panic!("{e}")) {
        let dir = dir.unwrap_or_else(|e| panic!("{e}")).path();
        if !dir.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{e}")) {
            let f = f.unwrap_or_else(|e| panic!("{e}")).path();
            if f.extension().is_some_and(|e| e == "json") {
                out.push(f);
            }
        }
    }
    out.sort();
    out
}

/// `detect --network-mode host` answers for every bundled capture: a host-network route with
/// literal extra hosts, or a refusal that names its fix (exit 4), never a crash or a bridge
/// route.
#[test]
fn detect_host_mode_answers_for_every_bundled_capture() {
    let all = all_fixtures();
    assert!(all.len() > 30, "only {} fixtures", all.len());
    for f in &all {
        let path = f.display().to_string();
        let out = run(&[
            "detect",
            "--no-config",
            "--network-mode",
            "host",
            "-o",
            "json",
            "--facts",
            &path,
        ]);
        let v = json(&out);
        assert_eq!(v["network_mode"], "host", "{path}: {v}");
        assert_eq!(v["route_kind"], "host-network", "{path}: {v}");
        match out.status.code() {
            Some(0) => {
                let host = v["openshell_host"].as_str().unwrap_or_default();
                assert!(host.parse::<std::net::IpAddr>().is_ok(), "{path}: {v}");
                let hosts = v["extra_hosts"].as_array().cloned().unwrap_or_default();
                assert!(
                    hosts.iter().any(|h| h
                        == &serde_json::Value::String(format!("host.openshell.internal:{host}"))),
                    "{path}: {v}"
                );
            }
            Some(4) => assert!(
                v["error"].as_str().is_some_and(|e| e.contains("to fix:")),
                "{path}: {v}"
            ),
            other => panic!(
                "{path}: exit {other:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }
    // The default stays bridge, and the environment chooses host too.
    let native = fixture("native-docker/debian12-docker.io-20.10.24-this-machine.json");
    let bridge = json(&run(&[
        "detect",
        "--no-config",
        "-o",
        "json",
        "--facts",
        &native,
    ]));
    assert_eq!(bridge["route_kind"], "bridge");
    let by_env = bin()
        .env("OPENSHELL_NETWORK_MODE", "host")
        .env("HOME", "/nonexistent")
        .env_remove("XDG_CONFIG_HOME")
        .args(["detect", "-o", "json", "--facts", &native])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let v = json(&by_env);
    assert_eq!(v["route_kind"], "host-network", "{v}");
    assert_eq!(v["openshell_host"], "127.0.0.1", "{v}");
    assert_eq!(
        v["settings"]["network_mode"]["source"],
        "OPENSHELL_NETWORK_MODE"
    );
    // matrix shows the host-mode column of every capture.
    let m = json(&run(&["matrix", "--network-mode", "host", "-o", "json"]));
    let rows = m.as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), all.len());
    assert!(rows.iter().all(|r| r["route_kind"] == "host-network"));
}

/// `doctor --network-mode host` proves the host-network route on every engine here: a probe
/// container in the engine's host namespace calls back to the gateway's loopback.
#[test]
fn live_doctor_proves_host_network_routes() {
    use openshell_tests::live::{dockerd, dockerd_rootless, podman, podman_rootless};
    for (engine, driver) in [
        (dockerd(), "docker"),
        (podman(), "docker"),
        (podman(), "podman"),
        (dockerd_rootless(), "docker"),
        (podman_rootless(), "docker"),
        (podman_rootless(), "podman"),
    ] {
        if !engine.available() {
            continue;
        }
        // Its own port: the bridge doctor test may probe on the default one concurrently.
        let mut extra = vec!["--network-mode", "host", "--port", "17683"];
        if engine.rootless_host_loopback {
            extra.push("--rootless-host-loopback");
        }
        let network = format!(
            "openshell-doctor-host-{}-{}-{driver}",
            std::process::id(),
            engine.name.replace(' ', "-")
        );
        let out = doctor(&engine, driver, &network, &extra);
        let v = json(&out);
        openshell_tests::live::remove_network(&engine, &network);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{} via {driver}: {v}",
            engine.name
        );
        assert_eq!(v["route_kind"], "host-network", "{v}");
        assert_eq!(v["probes"][0]["outcome"], "ok", "{v}");
        assert_eq!(v["bind"], "127.0.0.1", "{v}");
    }
}

/// OpenShell's configuration as it is today: an explicit gateway endpoint, from
/// `OPENSHELL_GRPC_ENDPOINT` or a driver table's `grpc_endpoint`, is an override checked like
/// any other, and both file layouts pick the driver table.
#[test]
fn openshell_endpoint_and_both_layouts_are_overrides_checked_like_any_other() {
    let colima =
        fixture("colima/colima-20.10.18-alpine3.16-macos-arm64-testcontainers-skagedal.json");
    let native = fixture("native-docker/debian12-docker.io-20.10.24-this-machine.json");
    let detect = |facts: &str, cfg: Option<&str>, env: &[(&str, &str)], mode: &str| {
        let mut c = bin();
        c.env("HOME", "/nonexistent").env_remove("XDG_CONFIG_HOME");
        for (k, v) in env {
            c.env(k, v);
        }
        c.args([
            "detect",
            "-o",
            "json",
            "--network-mode",
            mode,
            "--facts",
            facts,
        ]);
        if let Some(cfg) = cfg {
            c.args(["--config", cfg]);
        }
        c.output().unwrap_or_else(|e| panic!("{e}"))
    };
    let loopback = [("OPENSHELL_GRPC_ENDPOINT", "http://127.0.0.1:8080")];
    // On a VM runtime with host networking, 127.0.0.1 is the VM's: refused, naming the
    // variable and the address that would work.
    let out = detect(&colima, None, &loopback, "host");
    assert_eq!(out.status.code(), Some(4), "{}", json(&out));
    let err = json(&out)["error"].as_str().unwrap_or_default().to_string();
    for want in [
        "OPENSHELL_GRPC_ENDPOINT",
        "127.0.0.1",
        "192.168.5.2",
        "host.openshell.internal",
    ] {
        assert!(err.contains(want), "{want} missing: {err}");
    }
    // The same endpoint on native Docker in host mode is right: loopback, port 8080.
    let out = detect(&native, None, &loopback, "host");
    assert_eq!(out.status.code(), Some(0));
    let v = json(&out);
    assert_eq!(v["openshell_host"], "127.0.0.1", "{v}");
    assert_eq!(v["sandbox_endpoint"], "http://host.openshell.internal:8080");
    assert_eq!(
        v["settings"]["host_gateway_ip"]["source"],
        "OPENSHELL_GRPC_ENDPOINT"
    );
    // host.openshell.internal leaves the address to the policy; https sets TLS.
    let out = detect(
        &colima,
        None,
        &[(
            "OPENSHELL_GRPC_ENDPOINT",
            "https://host.openshell.internal:8443",
        )],
        "host",
    );
    assert_eq!(out.status.code(), Some(0));
    let v = json(&out);
    assert_eq!(v["openshell_host"], "192.168.5.2", "{v}");
    assert_eq!(
        v["sandbox_endpoint"],
        "https://host.openshell.internal:8443"
    );
    assert!(v["settings"]["host_gateway_ip"].is_null(), "{v}");
    // In bridge mode OpenShell's Docker driver swaps host and port for
    // host.openshell.internal:<gateway port>, so only the scheme counts, and a warning says so.
    let out = detect(
        &native,
        None,
        &[("OPENSHELL_GRPC_ENDPOINT", "https://127.0.0.1:8080")],
        "bridge",
    );
    assert_eq!(out.status.code(), Some(0));
    let v = json(&out);
    assert_eq!(v["openshell_host"], "172.18.0.1", "{v}");
    assert_eq!(
        v["sandbox_endpoint"],
        "https://host.openshell.internal:17670"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("replaces 127.0.0.1:8080"));

    // Layout 1 (released): compute_drivers picks the table, the gateway's host_gateway_ip is
    // inherited, the driver's grpc_endpoint wins over it.
    let v1 = write_tmp(
        "v1-gateway.toml",
        "[openshell]\nversion = 1\n[openshell.gateway]\ncompute_drivers = [\"podman\"]\nhost_gateway_ip = \"10.0.0.7\"\n[openshell.drivers.docker]\nhost_gateway_ip = \"10.9.9.9\"\n[openshell.drivers.podman]\ngrpc_endpoint = \"https://10.88.0.1:9443\"\n",
    );
    let out = detect(&native, Some(&v1), &[], "bridge");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(v["openshell_host"], "10.88.0.1", "{v}");
    assert_eq!(
        v["sandbox_endpoint"],
        "https://host.openshell.internal:9443"
    );
    assert_eq!(v["settings"]["driver"]["value"], "podman");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("replaces host_gateway_ip 10.0.0.7"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        v["settings"]["driver"]["source"]
            .as_str()
            .unwrap_or_default()
            .ends_with("[openshell.gateway] compute_drivers"),
        "{v}"
    );
    // The environment beats the file; OPENSHELL_PODMAN_HOST_GATEWAY_IP applies to podman.
    let out = detect(
        &native,
        Some(&v1),
        &[("OPENSHELL_GRPC_ENDPOINT", "http://10.88.0.5:7000")],
        "bridge",
    );
    let v = json(&out);
    assert_eq!(v["openshell_host"], "10.88.0.5", "{v}");
    assert_eq!(v["sandbox_endpoint"], "http://host.openshell.internal:7000");
    let no_ep = write_tmp(
        "v1-podman.toml",
        "[openshell.gateway]\ncompute_drivers = [\"podman\"]\nhost_gateway_ip = \"10.0.0.7\"\n",
    );
    let out = detect(
        &native,
        Some(&no_ep),
        &[("OPENSHELL_PODMAN_HOST_GATEWAY_IP", "10.88.0.9")],
        "bridge",
    );
    let v = json(&out);
    assert_eq!(v["openshell_host"], "10.88.0.9", "{v}");
    assert_eq!(
        v["settings"]["host_gateway_ip"]["source"],
        "OPENSHELL_PODMAN_HOST_GATEWAY_IP"
    );

    // Layout 2 (not yet released): compute_driver; a loopback endpoint on Colima in host mode
    // is refused naming the file's key.
    let v2 = write_tmp(
        "v2-gateway.toml",
        "[openshell]\nversion = 2\n[openshell.gateway]\ncompute_driver = \"docker\"\n[openshell.drivers.docker]\ngrpc_endpoint = \"http://localhost:8080\"\n",
    );
    let out = detect(&colima, Some(&v2), &[], "host");
    assert_eq!(out.status.code(), Some(4));
    let err = json(&out)["error"].as_str().unwrap_or_default().to_string();
    assert!(
        err.contains("[openshell.drivers.docker] grpc_endpoint") && err.contains("192.168.5.2"),
        "{err}"
    );
    let out = detect(&native, Some(&v2), &[], "host");
    assert_eq!(json(&out)["openshell_host"], "127.0.0.1");

    // What cannot be read exits 2 naming its source.
    let v3 = write_tmp("v3-gateway.toml", "[openshell]\nversion = 3\n");
    let out = detect(&native, Some(&v3), &[], "bridge");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("version"));
    for bad in [
        "127.0.0.1:8080",
        "ftp://127.0.0.1:8080",
        "http://127.0.0.1:0",
        "http://0.0.0.0:8080",
    ] {
        let out = detect(&native, None, &[("OPENSHELL_GRPC_ENDPOINT", bad)], "host");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains("OPENSHELL_GRPC_ENDPOINT"), "{bad}: {err}");
    }
}

/// `doctor` takes OpenShell's endpoint from `OPENSHELL_GRPC_ENDPOINT` like any override: on
/// dockerd with host networking its loopback address is proven end to end, and on rootless
/// dockerd without declared host loopback the same address is refused, naming the variable,
/// and only a fallback is proven.
#[test]
fn live_doctor_checks_the_openshell_endpoint() {
    use openshell_tests::live::{dockerd, dockerd_rootless};
    for (engine, works) in [(dockerd(), true), (dockerd_rootless(), false)] {
        // Rootless dockerd runs without --rootless-host-loopback here: undeclared, RootlessKit's
        // loopback is not the host's.
        if !engine.available() {
            continue;
        }
        let image =
            openshell_tests::live::import_busybox(&engine).unwrap_or_else(|e| panic!("{e}"));
        let endpoint = format!("unix://{}", engine.socket);
        let network = format!(
            "openshell-doctor-grpc-{}-{}",
            std::process::id(),
            engine.name.replace(' ', "-")
        );
        let out = bin()
            .env("HOME", "/nonexistent")
            .env_remove("XDG_CONFIG_HOME")
            .env("OPENSHELL_GRPC_ENDPOINT", "http://127.0.0.1:17684")
            .args([
                "doctor",
                "-o",
                "json",
                "--driver",
                "docker",
                "--endpoint",
                &endpoint,
                "--network",
                &network,
                "--network-mode",
                "host",
                "--probe-image",
                &image,
                "--probe-timeout",
                "12",
            ])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        openshell_tests::live::remove_image(&engine, &image);
        openshell_tests::live::remove_network(&engine, &network);
        let v = json(&out);
        if works {
            assert_eq!(out.status.code(), Some(0), "{}: {v}", engine.name);
            assert_eq!(v["probes"][0]["outcome"], "ok", "{v}");
            assert_eq!(
                v["sandbox_endpoint"],
                "http://host.openshell.internal:17684"
            );
            assert_eq!(
                v["settings"]["host_gateway_ip"]["source"],
                "OPENSHELL_GRPC_ENDPOINT"
            );
        } else {
            // The decision refuses; doctor then tries the fallbacks, and one that arrives (here
            // 10.0.2.2, RootlessKit's host loopback) is the address that would work.
            match out.status.code() {
                Some(0) => assert_ne!(v["proven"]["openshell_host"], "127.0.0.1", "{v}"),
                other => assert_eq!(other, Some(4), "{}: {v}", engine.name),
            }
            let err = v["error"].as_str().unwrap_or_default();
            assert!(
                err.contains("OPENSHELL_GRPC_ENDPOINT") && err.contains("127.0.0.1"),
                "{}: {v}",
                engine.name
            );
        }
    }
}

/// Runs `n` copies of the binary at once with `args` and waits for all of them.
fn run_concurrently(n: usize, args: &[&str]) -> Vec<Output> {
    let children: Vec<_> = (0..n)
        .map(|_| {
            bin()
                .args(args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run the binary: {e}"))
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

/// Eight `doctor` runs at once on a fresh network name all succeed and leave one network (on
/// dockerd 20.10 they made several networks of the name, and every later run failed as
/// ambiguous; on Podman the runs that lost the race failed with a conflict). They also share
/// the gateway's port: all but one probe on a free port.
#[test]
fn concurrent_doctors_leave_one_network() {
    use openshell_tests::live::{
        dockerd, import_busybox, networks_named, podman, remove_image, remove_networks_named,
    };
    for (engine, driver) in [
        (dockerd(), "docker"),
        (podman(), "docker"),
        (podman(), "podman"),
    ] {
        if !engine.available() {
            continue;
        }
        let network = format!(
            "openshell-cli-{}-concurrent-{}-{driver}",
            std::process::id(),
            engine.name
        );
        let endpoint = format!("unix://{}", engine.socket);
        let image = import_busybox(&engine).unwrap_or_else(|e| panic!("{e}"));
        let outs = run_concurrently(
            8,
            &[
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
                // Eight runs at once are slow on a loaded two-core machine (Podman's /info
                // alone takes seconds); this test is about the network and the port.
                "--timeout",
                "60",
                "--probe-timeout",
                "40",
            ],
        );
        let left = networks_named(&engine, &network);
        remove_networks_named(&engine, &network);
        remove_image(&engine, &image);
        for out in &outs {
            assert_eq!(
                out.status.code(),
                Some(0),
                "{} via {driver}: {}{}",
                engine.name,
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            );
        }
        assert_eq!(left.map(|l| l.len()), Ok(1), "{} via {driver}", engine.name);
    }
}

/// `doctor` beside a running gateway: with the gateway's port held on the route's bind address
/// it still proves the route, on a free port, and says the port is busy (it used to exit 5 and
/// blame the probe image). With `--tls` the route is proven too: the probe speaks plain HTTP
/// and says TLS was not probed (it used to speak https to a plain listener and blame a
/// firewall).
#[test]
fn live_doctor_beside_a_running_gateway_and_with_tls() {
    let engine = openshell_tests::live::dockerd();
    if !engine.available() {
        return;
    }
    let network = format!("openshell-doctor-{}-busy", std::process::id());
    // dockerd creates the bridge with the network, so the gateway can bind it before any probe.
    let gw = dockerd_bridge_gateway(&network);
    let gateway = std::net::TcpListener::bind((gw.as_str(), 0));
    let port = gateway
        .as_ref()
        .ok()
        .and_then(|l| l.local_addr().ok())
        .map(|a| a.port().to_string());
    let busy = port.map(|p| doctor(&engine, "docker", &network, &["--port", &p]));
    drop(gateway);
    let tls = doctor(&engine, "docker", &network, &["--tls"]);
    openshell_tests::live::remove_network(&engine, &network);
    let busy = busy.unwrap_or_else(|| panic!("cannot hold a port on {gw:?}"));

    let v = json(&busy);
    assert_eq!(busy.status.code(), Some(0), "{v}");
    assert_eq!(v["probes"][0]["outcome"], "ok", "{v}");
    assert!(
        v["probes"][0]["notes"].as_array().is_some_and(|n| n
            .iter()
            .any(|n| n.as_str().is_some_and(|n| n.contains("in use")))),
        "{v}"
    );

    let v = json(&tls);
    assert_eq!(tls.status.code(), Some(0), "{v}");
    assert_eq!(v["probes"][0]["outcome"], "ok", "{v}");
    assert!(
        v["probes"][0]["notes"].as_array().is_some_and(|n| n
            .iter()
            .any(|n| n.as_str().is_some_and(|n| n.contains("TLS is not probed")))),
        "{v}"
    );
}

/// `doctor` interrupted at any moment leaves no probe container once the next run is done:
/// SIGINT makes it remove its probe and exit 130; SIGKILL leaves at most a probe that the engine
/// removes itself once it exits, or that the next run sweeps and reports. (Before, every
/// interrupted run could leave a container that nothing ever removed.) The same holds for the
/// relay a relay-route probe starts: SIGINT removes it, and the next run reaps what SIGKILL left.
#[test]
fn interrupted_doctors_leave_no_probe_after_the_next_run() {
    use openshell_tests::live::{
        containers_on_network, dockerd, import_busybox, podman, remove_image, remove_networks_named,
    };
    use std::time::Duration;
    // Direct routes, then the relay route, whose relay container is the run's too.
    let kinds: [(&str, &[&str]); 2] = [("direct", &[]), ("relay", &["--route-kind", "relay"])];
    for ((engine, driver), (kind, extra)) in [(dockerd(), "docker"), (podman(), "podman")]
        .into_iter()
        .flat_map(|e| kinds.map(|k| (e.clone(), k)))
    {
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
                let boot =
                    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
                let pid_ns: String = std::fs::read_link("/proc/self/ns/pid")
                    .map(|l| {
                        l.to_string_lossy()
                            .chars()
                            .filter(char::is_ascii_digit)
                            .collect()
                    })
                    .unwrap_or_default();
                let owner = format!("{}/{pid_ns}/{}", boot.trim(), child.id());
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
        remove_networks_named(&engine, &network);
        remove_image(&engine, &image);

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

/// The binary with discovery's environment emptied: no named endpoint, no context, and a home
/// and runtime directory of its own, so only what a test sets is named.
fn isolated(home: &Path) -> Command {
    let mut c = bin();
    for k in [
        "DOCKER_HOST",
        "DOCKER_CONTEXT",
        "DOCKER_CONFIG",
        "DOCKER_TLS_VERIFY",
        "DOCKER_CERT_PATH",
        "CONTAINER_HOST",
        "CONTAINER_CONNECTION",
        "CONTAINERS_CONF",
        "PODMAN_CONNECTIONS_CONF",
        "XDG_CONFIG_HOME",
    ] {
        c.env_remove(k);
    }
    c.env("HOME", home).env("XDG_RUNTIME_DIR", home);
    c
}

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    l.local_addr().unwrap_or_else(|e| panic!("{e}")).port()
}

#[test]
fn a_named_endpoint_that_does_not_answer_is_not_replaced() {
    // Before: DOCKER_HOST at a closed port fell through to the rootful Podman socket, decided
    // for it (exit 0) and created a network there.
    // Removed when dropped, also when an assertion fails.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let home = dir.path();
    let tcp = format!("tcp://127.0.0.1:{}", closed_port());
    for value in [tcp.as_str(), "npipe:////./pipe/docker_engine"] {
        let out = isolated(home)
            .args(["detect", "--no-config", "--timeout", "2"])
            .env("DOCKER_HOST", value)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{value}: {err}");
        assert!(out.stdout.is_empty(), "{value}: decided anyway");
        assert!(
            err.contains(value) && err.contains("named by DOCKER_HOST"),
            "{value}: {err}"
        );
    }
}

/// An engine endpoint that requires TLS without usable TLS material (none, a missing CA, a
/// broken file, Podman's https:// for which no material is named) is refused (exit 2, naming
/// what asked for TLS and the file), and not one byte goes to it: it used to get plain HTTP.
/// The "engine" is a loopback listener that only records whether anything connected. With
/// material, TLS is spoken (the transport's tests and the remote live tests).
#[test]
fn tls_endpoints_without_usable_material_are_refused_without_a_byte_sent() {
    use std::net::TcpListener;
    // Removed when dropped, also when an assertion fails.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let home = dir.path();
    let docker = home.join(".docker");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    listener
        .set_nonblocking(true)
        .unwrap_or_else(|e| panic!("{e}"));
    let port = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("{e}"))
        .port();
    let tcp = format!("tcp://127.0.0.1:{port}");
    let https = format!("https://127.0.0.1:{port}");
    // A context in the store whose host is plain tcp://, with TLS material or SkipTLSVerify.
    let context = |name: &str, skip_verify: bool, material: bool| {
        use sha2::Digest;
        let hex: String = sha2::Sha256::digest(name.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let meta = docker.join("contexts/meta").join(&hex);
        std::fs::create_dir_all(&meta).unwrap_or_else(|e| panic!("{e}"));
        let doc = serde_json::json!({"Name": name, "Endpoints": {"docker": {"Host": tcp, "SkipTLSVerify": skip_verify}}});
        std::fs::write(meta.join("meta.json"), doc.to_string()).unwrap_or_else(|e| panic!("{e}"));
        if material {
            let store = docker.join("contexts/tls").join(&hex).join("docker");
            std::fs::create_dir_all(&store).unwrap_or_else(|e| panic!("{e}"));
            for f in ["ca.pem", "cert.pem", "key.pem"] {
                std::fs::write(store.join(f), "-").unwrap_or_else(|e| panic!("{e}"));
            }
        }
    };
    context("remote-tls", false, true);
    context("remote-skip", true, false);
    let cert_path = home.display().to_string();
    let home_ca = format!("{}/.docker/ca.pem", home.display());
    let own_ca = format!("{}/ca.pem", home.display());
    // (environment, flags, what the refusal names as asking for TLS, the file it names)
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str], &'a str, &'a str);
    let cases: [Case<'_>; 7] = [
        (&[("DOCKER_HOST", &https)], &[], "DOCKER_HOST", &home_ca),
        (
            &[],
            &["--endpoint", &https, "--driver", "podman"],
            "--endpoint",
            "no TLS material",
        ),
        (
            &[("DOCKER_HOST", &tcp), ("DOCKER_TLS_VERIFY", "1")],
            &[],
            "DOCKER_TLS_VERIFY",
            &home_ca,
        ),
        (
            &[("DOCKER_HOST", &tcp), ("DOCKER_CERT_PATH", &cert_path)],
            &[],
            "DOCKER_CERT_PATH",
            &own_ca,
        ),
        (
            &[("DOCKER_TLS", "1")],
            &["--endpoint", &tcp, "--driver", "docker"],
            "DOCKER_TLS",
            &home_ca,
        ),
        (
            &[("DOCKER_CONTEXT", "remote-tls")],
            &[],
            "TLS material",
            "ca.pem holds no certificate",
        ),
        (
            &[("DOCKER_CONTEXT", "remote-skip")],
            &[],
            "SkipTLSVerify",
            "/docker/ca.pem",
        ),
    ];
    for (vars, flags, why, file) in cases {
        let out = isolated(home)
            .args(["detect", "--no-config", "--timeout", "2"])
            .args(flags)
            .envs(vars.iter().copied())
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{vars:?} {flags:?}: {err}");
        assert!(
            err.contains("requires TLS")
                && err.contains(why)
                && err.contains(&https)
                && err.contains(file),
            "{vars:?} {flags:?}: {err}"
        );
        assert!(
            listener.accept().is_err(),
            "{vars:?} {flags:?}: the TLS endpoint was sent plain HTTP"
        );
    }
}

/// A reader that goes away (`detect | head -1`) ends the output quietly: no panic, no error.
#[test]
fn a_closed_stdout_is_not_a_panic() {
    let facts = fixture("native-docker/debian12-docker.io-20.10.24-this-machine.json");
    for args in [
        vec!["matrix"],
        vec!["matrix", "-o", "json"],
        vec!["detect", "--no-config", "-o", "json", "--facts", &facts],
    ] {
        let mut child = bin()
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run the binary: {e}"));
        // Close the read end before the binary writes.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    }
}

/// `detect` reaches the namespaced dockerd over tcp:// with TLS (client certificate, the
/// engine's certificate verified against the CA) and over ssh:// (`docker system dial-stdio`,
/// and a forwarded Unix socket), says it is remote and decides the relay; a wrong CA and an
/// unknown host key are refused, with the reason, and nothing else is tried in their place.
#[test]
fn live_detect_reaches_a_remote_engine_over_tls_and_ssh() {
    let Some(remote) = openshell_tests::live::remote_settings() else {
        return;
    };
    let get = |k: &str| {
        remote
            .get(k)
            .cloned()
            .unwrap_or_else(|| panic!("{k} missing from the remote engine's settings"))
    };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let home = dir.path();
    // Its own network (detect creates the sandbox network), removed at the end.
    let network = format!("openshell-detect-remote-{}", std::process::id());
    let detect_with = |endpoint: &str, vars: &[(&str, &str)], flags: &[&str]| {
        isolated(home)
            .args(["detect", "--no-config", "-o", "json", "--timeout", "20"])
            .args(["--endpoint", endpoint, "--network", &network])
            .args(flags)
            .envs(vars.iter().copied())
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let detect = |endpoint: &str, vars: &[(&str, &str)]| detect_with(endpoint, vars, &[]);
    let certs = get("OPENSHELL_REMOTE_DOCKER_CERT_PATH");
    let ssh_config = get("OPENSHELL_REMOTE_SSH_CONFIG");
    let forwarded = format!(
        "{}{}",
        get("OPENSHELL_REMOTE_DOCKER_SSH"),
        get("OPENSHELL_REMOTE_DOCKER_SOCKET")
    );
    let tls_vars = [
        ("DOCKER_CERT_PATH", certs.as_str()),
        ("DOCKER_TLS_VERIFY", "1"),
    ];
    let ssh_vars = [("OPENSHELL_SSH_CONFIG", ssh_config.as_str())];
    let cases: [(String, &[(&str, &str)]); 3] = [
        (get("OPENSHELL_REMOTE_DOCKER_TCP"), &tls_vars),
        (get("OPENSHELL_REMOTE_DOCKER_SSH"), &ssh_vars),
        (forwarded, &ssh_vars),
    ];
    let mut detected: Vec<_> = cases
        .iter()
        .map(|(endpoint, vars)| ((endpoint.clone(), "docker"), detect(endpoint, vars)))
        .collect();
    // The TLS files as flags (Podman's global flags' names): the namespaced dockerd through
    // the Docker driver, with a stale DOCKER_CERT_PATH the flags replace unread, and the
    // namespaced Podman through the Podman driver, with nothing in the environment.
    let file = |f: &str| format!("{certs}/{f}");
    let (ca, cert, key) = (file("ca.pem"), file("cert.pem"), file("key.pem"));
    let tls_flags = ["--tls-ca", &ca, "--tls-cert", &cert, "--tls-key", &key];
    let podman_tls = get("OPENSHELL_REMOTE_PODMAN_TLS");
    let stale = [
        ("DOCKER_TLS_VERIFY", "1"),
        ("DOCKER_CERT_PATH", "/nonexistent/openshell-certs"),
    ];
    for (endpoint, driver, vars) in [
        (get("OPENSHELL_REMOTE_DOCKER_TCP"), "docker", &stale[..]),
        (podman_tls.clone(), "podman", &[][..]),
    ] {
        let mut flags = tls_flags.to_vec();
        flags.extend(["--driver", driver]);
        let out = detect_with(&endpoint, vars, &flags);
        detected.push(((endpoint, driver), out));
    }
    openshell_tests::live::remove_networks_named(
        &openshell_tests::live::remote_dockerd(&remote),
        &network,
    );
    openshell_tests::live::remove_networks_named(
        &openshell_tests::live::remote_podman(&remote),
        &network,
    );
    for ((endpoint, driver), out) in detected {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{endpoint}: {err}");
        let v = json(&out);
        assert_eq!(v["runtime"], "remote-docker", "{endpoint}: {v}");
        assert_eq!(v["route_kind"], "relay", "{endpoint}: {v}");
        assert_eq!(v["bind"], "127.0.0.1", "{endpoint}: {v}");
        assert_eq!(v["driver"], driver, "{endpoint}: {v}");
    }
    // The flags without an endpoint of theirs: refused before anything is contacted.
    let out = isolated(home)
        .args(["detect", "--no-config", "--tls-ca", &ca])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no endpoint is named"), "{err}");

    // Another CA: the engine's certificate is not trusted, and the refusal says so.
    let other = home.join("other-ca");
    std::fs::create_dir_all(&other).unwrap_or_else(|e| panic!("{e}"));
    let testdata =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../openshell-transport/testdata/tls");
    std::fs::copy(testdata.join("other-ca.pem"), other.join("ca.pem"))
        .unwrap_or_else(|e| panic!("{e}"));
    let other = other.display().to_string();
    let untrusted = detect(
        &get("OPENSHELL_REMOTE_DOCKER_TCP"),
        &[("DOCKER_CERT_PATH", &other), ("DOCKER_TLS_VERIFY", "1")],
    );
    let err = String::from_utf8_lossy(&untrusted.stderr);
    assert_eq!(untrusted.status.code(), Some(3), "{err}");
    assert!(
        err.contains("TLS handshake") && err.contains(&other),
        "{err}"
    );

    // No known_hosts entry for the engine's host (ssh's own configuration, not the test's).
    let empty = home.join("ssh_config");
    std::fs::write(
        &empty,
        format!(
            "UserKnownHostsFile {}/known_hosts\nGlobalKnownHostsFile /dev/null\n",
            home.display()
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let empty = empty.display().to_string();
    let unknown = detect(
        &get("OPENSHELL_REMOTE_DOCKER_SSH"),
        &[("OPENSHELL_SSH_CONFIG", &empty)],
    );
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert_eq!(unknown.status.code(), Some(3), "{err}");
    assert!(err.contains("Host key verification failed"), "{err}");
}

/// `doctor`'s report `v` (for `what`) proves the relay with one probe, the gateway on
/// 127.0.0.1, the relay on the remote engine: on `network`, at an address of its pool.
fn assert_relay_proven_on(
    engine: &openshell_tests::live::Engine,
    network: &str,
    v: &serde_json::Value,
    what: &str,
) {
    let probes = v["probes"].as_array().cloned().unwrap_or_default();
    assert_eq!(probes.len(), 1, "{what}: {v}");
    assert_eq!(probes[0]["outcome"], "ok", "{what}: {v}");
    assert_eq!(probes[0]["openshell_host"], "relay", "{what}: {v}");
    assert_eq!(probes[0]["bind"], "127.0.0.1", "{what}: {v}");
    let gateway = remote_gateway(engine, network);
    let prefix = gateway.rsplit_once('.').map_or("", |(p, _)| p).to_string();
    // Another note comes first when the gateway's port is busy (a running gateway).
    let notes = probes[0]["notes"].as_array().cloned().unwrap_or_default();
    let note = notes
        .iter()
        .filter_map(|n| n.as_str())
        .find(|n| n.starts_with("carried by relay container"))
        .unwrap_or_default();
    assert!(
        note.contains(&format!(" at {prefix}."))
            && note.ends_with(&format!("on network {network}")),
        "{what}: {v}"
    );
}

/// The end of a remote doctor test: removes its network, probe image and relay images from
/// `engine`, resumes the test's panic if it failed, else checks that no relay, probe or relay
/// image was left there.
fn finish_remote(
    engine: &openshell_tests::live::Engine,
    network: &str,
    image: &str,
    outcome: std::thread::Result<()>,
) {
    use openshell_runtime::consts::{LABEL_PROBE, LABEL_RELAY_NETWORK};
    use openshell_tests::live::{
        containers_labelled, images_of, remove_image, remove_images_of, remove_networks_named,
    };
    let relays = containers_labelled(engine, LABEL_RELAY_NETWORK, network);
    let probes = containers_labelled(engine, LABEL_PROBE, "true");
    remove_networks_named(engine, network);
    remove_image(engine, image);
    remove_images_of(engine, "localhost/openshell-relay");
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    let name = &engine.name;
    assert_eq!(relays, Ok(Vec::new()), "relays left on the {name}");
    assert_eq!(probes, Ok(Vec::new()), "probes left on the {name}");
    assert_eq!(
        images_of(engine, "localhost/openshell-relay"),
        Ok(Vec::new()),
        "relay images left on the {name}"
    );
}

/// The network's gateway on the remote engine (its bridge address, inside the namespace).
fn remote_gateway(engine: &openshell_tests::live::Engine, network: &str) -> String {
    let out = Command::new(&engine.cli[0])
        .args(&engine.cli[1..])
        .args(["network", "inspect", "-f"])
        .arg(if engine.podman {
            "{{range .Subnets}}{{.Gateway}}{{end}}"
        } else {
            "{{range .IPAM.Config}}{{.Gateway}}{{end}}"
        })
        .arg(network)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let gateway = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success() && gateway.parse::<std::net::Ipv4Addr>().is_ok(),
        "{network}: {gateway:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    gateway
}

/// `doctor` against the namespaced remote engine (issue 14): over tcp:// with TLS, ssh://
/// (dial-stdio) and ssh:// with a forwarded socket it decides the relay and proves it, the
/// relay running on the remote engine's network and its attach stream carrying the probe's
/// callback over that connection to a listener on 127.0.0.1 here. The direct routes do not
/// arrive: the network's gateway and the default bridge's (where host-gateway points on a
/// remote dockerd) are the remote machine's own addresses, and the probe there is refused. An
/// explicit `host_gateway_ip` this host holds on the remote's side (the veth of the test's
/// namespace) keeps working. Everything the runs made on the remote engine is removed.
#[test]
fn live_doctor_proves_the_relay_on_a_remote_engine() {
    use openshell_tests::live::{import_busybox, remote_dockerd, remote_setting, remote_settings};
    let Some(settings) = remote_settings() else {
        return;
    };
    let engine = remote_dockerd(&settings);
    if !engine.available() {
        return;
    }
    let get = |k: &str| remote_setting(&settings, k);
    let image = import_busybox(&engine).unwrap_or_else(|e| panic!("{e}"));
    let network = format!("openshell-doctor-remote-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let home = dir.path();
    let doctor = |endpoint: &str, vars: &[(&str, &str)], extra: &[&str]| {
        let out = isolated(home)
            .args(["doctor", "--no-config", "-o", "json", "--timeout", "30"])
            .args(["--endpoint", endpoint, "--network", &network])
            .args(["--probe-image", &image, "--probe-timeout", "20"])
            .args(extra)
            .envs(vars.iter().copied())
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let v = json(&out);
        (out.status.code(), v)
    };
    let certs = get("OPENSHELL_REMOTE_DOCKER_CERT_PATH");
    let ssh_config = get("OPENSHELL_REMOTE_SSH_CONFIG");
    let tcp = get("OPENSHELL_REMOTE_DOCKER_TCP");
    let ssh = get("OPENSHELL_REMOTE_DOCKER_SSH");
    let forwarded = format!("{ssh}{}", get("OPENSHELL_REMOTE_DOCKER_SOCKET"));
    let tls_vars = [
        ("DOCKER_CERT_PATH", certs.as_str()),
        ("DOCKER_TLS_VERIFY", "1"),
    ];
    let ssh_vars = [("OPENSHELL_SSH_CONFIG", ssh_config.as_str())];
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let cases: [(&str, &[(&str, &str)]); 3] = [
            (&tcp, &tls_vars),
            (&ssh, &ssh_vars),
            (&forwarded, &ssh_vars),
        ];
        for (endpoint, vars) in cases {
            let (code, v) = doctor(endpoint, vars, &[]);
            assert_eq!(code, Some(0), "{endpoint}: {v}");
            assert_eq!(v["runtime"], "remote-docker", "{endpoint}: {v}");
            assert_eq!(v["route_kind"], "relay", "{endpoint}: {v}");
            assert_relay_proven_on(&engine, &network, &v, endpoint);
        }

        // The direct routes arrive at the remote machine, not here: refused, whichever
        // transport carried the engine calls (the network's gateway over each; the default
        // bridge, where host-gateway points on a remote dockerd, over TLS).
        let gateway = remote_gateway(&engine, &network);
        let bridge = remote_gateway(&engine, "bridge");
        for (endpoint, vars, addr, bind) in [
            (&tcp, &tls_vars[..], &gateway, None),
            (&ssh, &ssh_vars[..], &gateway, None),
            (&forwarded, &ssh_vars[..], &gateway, None),
            (&tcp, &tls_vars[..], &bridge, Some("127.0.0.1")),
        ] {
            let mut extra = vec!["--route-kind", "direct", "--host-gateway-ip", addr];
            extra.extend(bind.iter().flat_map(|b| ["--bind", *b]));
            let (code, v) = doctor(endpoint, vars, &extra);
            assert_eq!(code, Some(5), "{endpoint} {addr}: {v}");
            assert_eq!(v["route_kind"], "bridge", "{addr}: {v}");
            assert_eq!(v["probes"][0]["openshell_host"], addr.as_str(), "{v}");
            assert_eq!(v["probes"][0]["outcome"], "refused", "{addr}: {v}");
            assert!(v["proven"].is_null(), "{addr}: {v}");
        }
        // Without host_gateway_ip, direct only: nothing is decided, and the reason says why.
        let (code, v) = doctor(&tcp, &tls_vars, &["--route-kind", "direct"]);
        assert_ne!(code, Some(0), "{v}");
        let err = v["error"].as_str().unwrap_or_default();
        assert!(err.contains("on another machine"), "{v}");
        assert!(v["probes"].as_array().is_some_and(Vec::is_empty), "{v}");

        // An address of this host that the remote containers reach keeps working.
        let host = get("OPENSHELL_REMOTE_HOST_ADDR");
        let (code, v) = doctor(&tcp, &tls_vars, &["--host-gateway-ip", &host]);
        assert_eq!(code, Some(0), "{v}");
        assert_eq!(v["proven"]["openshell_host"], host.as_str(), "{v}");
        assert_eq!(v["proven"]["bind"], host.as_str(), "{v}");
    }));
    finish_remote(&engine, &network, &image, outcome);
}

/// `doctor` against the namespaced Podman service (issue 14) over ssh:// (its socket forwarded)
/// and over tcp:// with TLS (client certificates required), each through the Podman driver and
/// the Docker driver: detects a remote engine, decides the relay and proves it (the relay on the
/// remote Podman network, the callback at 127.0.0.1 here). A Podman connection whose CA did not
/// sign the engine, or that has no client certificate, is refused in the handshake (exit 3); the
/// remote network's gateway as a direct route is refused. Everything made there is removed.
#[test]
fn live_doctor_proves_the_relay_on_a_remote_podman() {
    use openshell_tests::live::{import_busybox, remote_podman, remote_setting, remote_settings};
    let Some(settings) = remote_settings() else {
        return;
    };
    let engine = remote_podman(&settings);
    if !engine.available() {
        return;
    }
    let ssh = remote_setting(&settings, "OPENSHELL_REMOTE_PODMAN_SSH");
    let ssh_config = remote_setting(&settings, "OPENSHELL_REMOTE_SSH_CONFIG");
    let tcp = remote_setting(&settings, "OPENSHELL_REMOTE_PODMAN_TLS");
    let certs = PathBuf::from(remote_setting(
        &settings,
        "OPENSHELL_REMOTE_DOCKER_CERT_PATH",
    ));
    let image = import_busybox(&engine).unwrap_or_else(|e| panic!("{e}"));
    let network = format!("openshell-doctor-remote-podman-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // Podman's TLS connections (5.7+) as `podman system connection add --tls-ca --tls-cert
    // --tls-key` writes them; one signed by another CA, one without a client certificate.
    let connections = dir.path().join("podman-connections.json");
    let other_ca = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../openshell-transport/testdata/tls/other-ca.pem");
    std::fs::write(
        &connections,
        serde_json::json!({"Connection": {"Default": "", "Connections": {
            "remote-tls": {"URI": tcp, "TLSCA": certs.join("ca.pem"),
                "TLSCert": certs.join("cert.pem"), "TLSKey": certs.join("key.pem")},
            "other-ca": {"URI": tcp, "TLSCA": other_ca,
                "TLSCert": certs.join("cert.pem"), "TLSKey": certs.join("key.pem")},
            "no-client-cert": {"URI": tcp, "TLSCA": certs.join("ca.pem")}
        }}})
        .to_string(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let connections = connections.display().to_string();
    let certs = certs.display().to_string();
    // Each transport with each driver that can use it: ssh:// with both; TLS through a
    // connection (the Podman driver) and through DOCKER_CERT_PATH (the Docker driver, on
    // Podman's Docker-compatible API).
    let reach = |driver: &str, transport: &str| -> (Vec<String>, Vec<(&str, String)>) {
        match (driver, transport) {
            (_, "ssh") => (
                vec!["--endpoint".into(), ssh.clone()],
                vec![("OPENSHELL_SSH_CONFIG", ssh_config.clone())],
            ),
            ("podman", connection) => (
                Vec::new(),
                vec![
                    ("PODMAN_CONNECTIONS_CONF", connections.clone()),
                    ("CONTAINER_CONNECTION", connection.to_string()),
                ],
            ),
            _ => (
                vec!["--endpoint".into(), tcp.clone()],
                vec![
                    ("DOCKER_CERT_PATH", certs.clone()),
                    ("DOCKER_TLS_VERIFY", "1".into()),
                ],
            ),
        }
    };
    let doctor = |driver: &str, transport: &str, extra: &[&str]| {
        let (args, vars) = reach(driver, transport);
        let out = isolated(dir.path())
            .args(["doctor", "--no-config", "-o", "json", "--timeout", "30"])
            .args(["--driver", driver])
            .args(&args)
            .args(["--network", &network])
            .args(["--probe-image", &image, "--probe-timeout", "20"])
            .args(extra)
            .envs(vars)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        // A run refused before any decision prints its error alone.
        let v = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        (out.status.code(), v, err)
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for (driver, transport) in [
            ("podman", "ssh"),
            ("docker", "ssh"),
            ("podman", "remote-tls"),
            ("docker", "tls"),
        ] {
            let (code, v, err) = doctor(driver, transport, &[]);
            let driver = format!("{driver} over {transport}");
            assert_eq!(code, Some(0), "{driver}: {v} {err}");
            assert_eq!(v["runtime"], "remote-docker", "{driver}: {v}");
            assert!(
                driver.starts_with(v["driver"].as_str().unwrap_or("?")),
                "{v}"
            );
            assert_eq!(v["route_kind"], "relay", "{driver}: {v}");
            // Podman's own alias is routed too: the engine on the other side is Podman.
            assert!(
                v["extra_hosts"]
                    .as_array()
                    .is_some_and(|h| h.iter().any(|h| h == "host.containers.internal:relay")),
                "{driver}: {v}"
            );
            assert_relay_proven_on(&engine, &network, &v, &driver);
        }
        // An engine another CA signed, and an engine that wants a client certificate the
        // connection does not have: refused in the handshake, with the reason, exit 3.
        for (connection, want) in [
            ("other-ca", "other-ca.pem"),
            ("no-client-cert", "CertificateRequired"),
        ] {
            let (code, v, err) = doctor("podman", connection, &[]);
            assert_eq!(code, Some(3), "{connection}: {v} {err}");
            assert!(
                err.contains(want) && err.contains(&tcp.replace("tcp://", "https://")),
                "{connection}: {err}"
            );
        }
        // The network's gateway, the remote machine's own address, as a direct route: refused,
        // over each transport and driver.
        let gateway = remote_gateway(&engine, &network);
        for (driver, transport) in [
            ("podman", "ssh"),
            ("docker", "ssh"),
            ("podman", "remote-tls"),
            ("docker", "tls"),
        ] {
            let (code, v, err) = doctor(
                driver,
                transport,
                &["--route-kind", "direct", "--host-gateway-ip", &gateway],
            );
            assert_eq!(code, Some(5), "{driver} over {transport}: {v} {err}");
            assert_eq!(
                v["probes"][0]["outcome"], "refused",
                "{driver} over {transport}: {v}"
            );
        }
    }));
    finish_remote(&engine, &network, &image, outcome);
}
