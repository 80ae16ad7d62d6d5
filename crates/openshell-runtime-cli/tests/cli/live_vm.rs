//! Live: the VMs of `scripts/vm.sh` (issue 24), networked as Podman machine (gvproxy) and as
//! Colima (Lima's user-mode network), proven by `doctor` across the VM boundary.
//!
//! `doctor` runs in the VM's network namespace (`nsenter --net`), whose loopback is the one the
//! VM's NAT lands on (192.168.127.254 through gvproxy, 192.168.5.2 through slirp), as the
//! gateway's host would be a Mac's. The engine is reached only through the socket the VM's
//! runtime forwards. The tests of one VM run one after the other: a TCG VM has one vCPU.

use std::process::{Command, Output};
use std::sync::Mutex;

use openshell_tests::live::{self, Vm};
use serde_json::Value;

use crate::common::*;

const GVPROXY_HOST: &str = "192.168.127.254";
const LIMA_HOST: &str = "192.168.5.2";

/// One test at a time per VM.
static PODMAN_MACHINE: Mutex<()> = Mutex::new(());
static COLIMA: Mutex<()> = Mutex::new(());

/// `doctor -o json` in the VM's network namespace against its forwarded socket.
fn vm_doctor(vm: &Vm, driver: &str, network: &str, extra: &[&str]) -> (Output, Value) {
    let endpoint = format!("unix://{}", vm.socket);
    let out = in_netns(vm)
        .args(["doctor", "--no-config", "-o", "json", "--driver", driver])
        .args(["--endpoint", &endpoint, "--network", network])
        // TCG: every engine call and container start is slower than on hardware.
        .args(["--timeout", "90", "--probe-timeout", "60"])
        .args(extra)
        .output()
        .unwrap_or_else(|e| panic!("cannot run doctor in {}: {e}", vm.netns));
    let v = json(&out);
    (out, v)
}

/// The binary, run in the VM's network namespace, with the same clean environment as `bin()`.
fn in_netns(vm: &Vm) -> Command {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net={}", vm.netns))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_openshell-runtime"));
    for k in [
        "OPENSHELL_HOST_GATEWAY_IP",
        "OPENSHELL_BIND_ADDRESS",
        "OPENSHELL_NETWORK_MODE",
        "OPENSHELL_GRPC_ENDPOINT",
        "OPENSHELL_PODMAN_HOST_GATEWAY_IP",
    ] {
        c.env_remove(k);
    }
    c
}

/// The gateway address of `network` as the engine reports it (Docker API).
fn bridge_gateway(vm: &Vm, network: &str) -> String {
    let out = Command::new("docker")
        .args(["--host", &format!("unix://{}", vm.socket)])
        .args(["network", "inspect", "-f"])
        .arg("{{range .IPAM.Config}}{{.Gateway}}{{end}}")
        .arg(network)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Removes `network` and checks that nothing of the test is left on the VM's engine.
fn clean(vm: &Vm, network: &str) {
    let engine = vm.engine();
    live::remove_network(&engine, network);
    assert!(
        !live::exists(&engine, "network", network),
        "network {network} left behind on {}",
        vm.name
    );
}

/// The proven route is the decided one, proven first, with the gateway on loopback.
fn assert_decided_proven(out: &Output, v: &Value, runtime: &str, host: &str) {
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(v["runtime"], runtime, "{v}");
    assert_eq!(v["probes"][0]["outcome"], "ok", "{v}");
    assert_eq!(v["proven"]["openshell_host"], host, "{v}");
    assert_eq!(v["proven"]["bind"], "127.0.0.1", "{v}");
}

/// The seed's failure, reproduced where it happened: Podman machine, reached through the Docker
/// driver (and, as a control, through the Podman driver). The naive route, the sandbox
/// network's bridge gateway (10.89.x.1, an address that exists only inside the VM) with the
/// gateway on the host's loopback, carries no callback; doctor then proves gvproxy's host
/// address.
#[test]
fn podman_machine_naive_bridge_gateway_gets_no_callback() {
    let Some(vm) = live::vm("podman-machine") else {
        return;
    };
    let _one = PODMAN_MACHINE.lock().unwrap_or_else(|e| e.into_inner());
    for driver in ["docker", "podman"] {
        let network = format!("openshell-vm-naive-{}-{driver}", std::process::id());
        // `detect` creates the sandbox network, whose gateway the seed's driver chose.
        let endpoint = format!("unix://{}", vm.socket);
        let detected = in_netns(&vm)
            .args(["detect", "--no-config", "-o", "json", "--timeout", "90"])
            .args([
                "--driver",
                driver,
                "--endpoint",
                &endpoint,
                "--network",
                &network,
            ])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let d = json(&detected);
        let gw = bridge_gateway(&vm, &network);
        let (out, v) = vm_doctor(
            &vm,
            driver,
            &network,
            &["--host-gateway-ip", &gw, "--bind", "127.0.0.1"],
        );
        clean(&vm, &network);
        assert_eq!(d["runtime"], "podman-machine", "{driver}: {d}");
        assert!(gw.starts_with("10.89."), "{driver}: bridge gateway {gw}");
        assert_eq!(
            v["probes"][0]["openshell_host"],
            gw.as_str(),
            "{driver}: {v}"
        );
        // The probe reaches the VM's bridge, where no gateway listens: the callback never
        // arrives on the host (the seed's sandboxes retried it forever).
        assert_eq!(v["probes"][0]["outcome"], "refused", "{driver}: {v}");
        assert_eq!(out.status.code(), Some(0), "{driver}: {v}");
        assert_eq!(v["proven"]["openshell_host"], GVPROXY_HOST, "{driver}: {v}");
        assert_eq!(v["proven"]["bind"], "127.0.0.1", "{driver}: {v}");
    }
}

/// The fix: the decided route (gvproxy's 192.168.127.254, the gateway on 127.0.0.1) carries
/// the callback, first time, through the Docker driver (the seed's path) and the Podman driver.
#[test]
fn podman_machine_decided_route_gets_the_callback() {
    let Some(vm) = live::vm("podman-machine") else {
        return;
    };
    let _one = PODMAN_MACHINE.lock().unwrap_or_else(|e| e.into_inner());
    for driver in ["docker", "podman"] {
        let network = format!("openshell-vm-decided-{}-{driver}", std::process::id());
        let (out, v) = vm_doctor(&vm, driver, &network, &[]);
        clean(&vm, &network);
        assert_decided_proven(&out, &v, "podman-machine", GVPROXY_HOST);
        assert_eq!(v["openshell_host"], GVPROXY_HOST, "{driver}: {v}");
        assert_eq!(v["driver"], driver, "{v}");
    }
}

/// Host networking and the relay on Podman machine, through both drivers.
#[test]
fn podman_machine_host_network_and_relay_get_the_callback() {
    let Some(vm) = live::vm("podman-machine") else {
        return;
    };
    let _one = PODMAN_MACHINE.lock().unwrap_or_else(|e| e.into_inner());
    for driver in ["docker", "podman"] {
        let network = format!("openshell-vm-host-{}-{driver}", std::process::id());
        let (out, v) = vm_doctor(&vm, driver, &network, &["--network-mode", "host"]);
        clean(&vm, &network);
        assert_decided_proven(&out, &v, "podman-machine", GVPROXY_HOST);

        let network = format!("openshell-vm-relay-{}-{driver}", std::process::id());
        let (out, v) = vm_doctor(&vm, driver, &network, &["--route-kind", "relay"]);
        clean(&vm, &network);
        assert_decided_proven(&out, &v, "podman-machine", "relay");
    }
}

/// Colima: dockerd started with `--host-gateway-ip 192.168.5.2`; `host-gateway` on the bridge,
/// Lima's host address in the host network, and the relay all carry the callback. The naive
/// bridge gateway (inside the VM only) carries none.
#[test]
fn colima_host_gateway_host_network_and_relay_get_the_callback() {
    let Some(vm) = live::vm("colima") else {
        return;
    };
    let _one = COLIMA.lock().unwrap_or_else(|e| e.into_inner());
    let network = format!("openshell-vm-colima-{}", std::process::id());
    let (out, v) = vm_doctor(&vm, "docker", &network, &[]);
    let gw = bridge_gateway(&vm, &network);
    let (naive_out, naive) = vm_doctor(
        &vm,
        "docker",
        &network,
        &["--host-gateway-ip", &gw, "--bind", "127.0.0.1"],
    );
    clean(&vm, &network);
    assert_decided_proven(&out, &v, "colima", "host-gateway");
    assert_eq!(naive["probes"][0]["openshell_host"], gw.as_str(), "{naive}");
    assert_eq!(naive["probes"][0]["outcome"], "refused", "{naive}");
    assert_eq!(naive_out.status.code(), Some(0), "{naive}");
    assert_eq!(naive["proven"]["openshell_host"], "host-gateway", "{naive}");

    let network = format!("openshell-vm-colima-host-{}", std::process::id());
    let (out, v) = vm_doctor(&vm, "docker", &network, &["--network-mode", "host"]);
    clean(&vm, &network);
    assert_decided_proven(&out, &v, "colima", LIMA_HOST);

    let network = format!("openshell-vm-colima-relay-{}", std::process::id());
    let (out, v) = vm_doctor(&vm, "docker", &network, &["--route-kind", "relay"]);
    clean(&vm, &network);
    assert_decided_proven(&out, &v, "colima", "relay");
}

/// Discovery finds Colima's forwarded socket through the docker context `colima start` makes
/// current (`~/.docker/config.json`), ahead of this host's own /var/run/docker.sock, and the
/// decision needs nothing else.
#[test]
fn colima_socket_is_discovered_under_home() {
    let Some(vm) = live::vm("colima") else {
        return;
    };
    let home = vm
        .settings
        .get("OPENSHELL_VM_COLIMA_HOME")
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "OPENSHELL_VM_COLIMA_HOME missing from {}",
                live::VM_ENV_FILE
            )
        });
    let _one = COLIMA.lock().unwrap_or_else(|e| e.into_inner());
    let network = format!("openshell-vm-discover-{}", std::process::id());
    let out = isolated(std::path::Path::new(&home))
        .args(["detect", "--no-config", "-o", "json", "--timeout", "90"])
        .args(["--network", &network])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    // Also where a wrong discovery would have made it.
    live::remove_networks_named(&live::dockerd(), &network);
    clean(&vm, &network);
    let v = json(&out);
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(v["runtime"], "colima", "{v}");
    assert_eq!(v["openshell_host"], "host-gateway", "{v}");
}
