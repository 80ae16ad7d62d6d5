//! A runtime defined outside `openshell-runtime`, registered at run time.
//!
//! The runtime is fictional: "devbox", an in-house VM on developers' Macs that runs Docker
//! Engine and forwards one fixed address, 10.0.99.254, to the Mac's loopback (the way Lima
//! forwards 192.168.5.2). No built-in detector knows it, so without help the policy refuses to
//! route, because it never guesses. With its detector registered, the same facts give a route
//! whose gateway stays on loopback.
//!
//! Run it with `cargo run -p openshell-examples --example custom_runtime`.

use std::error::Error;
use std::net::{IpAddr, Ipv4Addr};

use openshell_runtime::registry::{Detection, Detector};
use openshell_runtime::{
    decide, ContainerRuntime, Decision, EngineKind, Evidence, External, Facts, HostTarget,
    Registry, RouteContext, RouteError, RoutePlan,
};
use serde_json::json;

/// The address devbox forwards to the Mac's loopback.
const DEVBOX_HOST_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 99, 254));
/// The hostname devbox gives its VM, which dockerd reports as `info.Name`.
const DEVBOX_HOSTNAME: &str = "devbox";

/// The runtime: what its containers must be told to reach the gateway.
#[derive(Debug)]
struct Devbox;

impl ContainerRuntime for Devbox {
    fn id(&self) -> &str {
        "devbox"
    }

    fn engine(&self) -> EngineKind {
        // Docker Engine runs in the VM, so the native alias is host.docker.internal.
        EngineKind::Docker
    }

    fn plan(&self) -> Result<RoutePlan, RouteError> {
        // A literal address rather than host-gateway: devbox leaves dockerd's host-gateway at
        // docker0 inside the VM, which does not reach the Mac.
        Ok(RoutePlan::to_loopback(
            HostTarget::Ip(DEVBOX_HOST_IP),
            "devbox forwards 10.0.99.254 to the Mac's loopback",
        ))
    }

    fn loopback_aliases(&self) -> &[IpAddr] {
        // An operator override to this address keeps the gateway on loopback too.
        const ALIASES: [IpAddr; 1] = [DEVBOX_HOST_IP];
        &ALIASES
    }
}

/// The detector: recognises devbox by its VM hostname.
#[derive(Debug)]
struct DevboxDetector;

impl Detector for DevboxDetector {
    fn name(&self) -> &str {
        "devbox"
    }

    fn detect(&self, facts: &Facts) -> Detection {
        match facts.info.name.as_deref() {
            Some(name) if name == DEVBOX_HOSTNAME => Detection::Match {
                runtime: External::new(Devbox).into(),
                evidence: vec![Evidence::new("info.Name", name, "devbox's VM hostname")],
            },
            _ => Detection::NotMine(format!("hostname is not {DEVBOX_HOSTNAME}")),
        }
    }
}

/// Prints one decision: the route and its extra hosts, or why there is none.
fn show(title: &str, decision: &Decision) {
    println!("== {title}");
    println!(
        "runtime:     {}",
        decision.runtime_id().unwrap_or("(not recognised)")
    );
    match &decision.route {
        Ok(route) => {
            println!("maps to:     {}", route.openshell_host);
            let bind = route
                .bind
                .map_or_else(|| "(none)".to_string(), |b| b.to_string());
            println!("binds:       {bind} ({:?})", route.exposure);
            println!("endpoint:    {}", route.sandbox_endpoint());
            for host in route.extra_hosts() {
                println!("extra host:  {host}");
            }
            println!("why:         {}", route.why);
            for note in &route.notes {
                println!("note:        {note}");
            }
        }
        Err(e) => println!("refused:     {e}"),
    }
    println!();
}

fn main() -> Result<(), Box<dyn Error>> {
    // What a driver would gather from devbox's engine: /_ping headers and a trimmed /info.
    let doc = json!({
        "host_os": "macos",
        "endpoint": "unix:///Users/dev/.devbox/docker.sock",
        "ping": {"Api-Version": "1.45", "Server": "Docker/26.1.4 (linux)"},
        "info": {
            "Name": DEVBOX_HOSTNAME,
            "OperatingSystem": "Ubuntu 24.04 LTS",
            "ServerVersion": "26.1.4"
        }
    });
    let facts = Facts::from_value(&doc)?;
    let ctx = RouteContext::default();

    // Without the detector no built-in runtime claims a Docker engine on macOS: refused.
    let builtin = Registry::builtin();
    let without = decide(&builtin, &facts, &ctx);
    show("built-in detectors only", &without);

    // With it, consulted just before the generic native-docker fallback.
    let mut registry = Registry::builtin();
    registry.register_before("native-docker", DevboxDetector);
    let with = decide(&registry, &facts, &ctx);
    show("with the devbox detector", &with);

    // The operator names devbox's own address: the gateway still binds loopback only.
    let mut overridden = facts.clone();
    overridden.overrides.host_gateway_ip = Some(DEVBOX_HOST_IP);
    show(
        "with host_gateway_ip = 10.0.99.254",
        &decide(&registry, &overridden, &ctx),
    );

    // Fail if the example stopped showing what it claims, so CI notices.
    if without.route.is_ok() {
        return Err("expected the built-in registry to refuse devbox".into());
    }
    let route = with.route?;
    if route.bind != Some(IpAddr::V4(Ipv4Addr::LOCALHOST)) {
        return Err(format!("expected a loopback bind, got {:?}", route.bind).into());
    }
    Ok(())
}
