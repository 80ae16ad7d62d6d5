//! gateway.toml and the `OPENSHELL_*` variables: precedence, both layouts, the size cap, lint warnings.

use std::process::Command;

use crate::common::*;

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
