//! The reachability probe on real engines: every classified outcome, and nothing left behind.

use std::process::Command;
use std::time::Duration;

use openshell_runtime::{HostTarget, Route};
use openshell_sandbox::{probe_route, ProbeOptions, ProbeOutcome};
use openshell_tests::live;

use crate::live::{docker, run, Ctx};

fn opts(ctx: &Ctx) -> ProbeOptions {
    ProbeOptions {
        image: Some(ctx.image().to_string()),
        timeout: Duration::from_secs(15),
        ..ProbeOptions::default()
    }
}

/// The built-in probe: the relay binary this build embeds, imported through the engine's API
/// (no image named, no relay binary named).
fn builtin() -> ProbeOptions {
    ProbeOptions {
        timeout: Duration::from_secs(15),
        ..ProbeOptions::default()
    }
}

/// Both probes: the script in a busybox image, and the built-in one.
fn both(ctx: &Ctx) -> [(&'static str, ProbeOptions); 2] {
    [("script", opts(ctx)), ("built-in", builtin())]
}

async fn no_probe_left(ctx: &Ctx) {
    // Only this test's network: probes of tests running concurrently live on their own.
    let left = live::containers_on_network(ctx.engine(), ctx.driver().network())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(left.is_empty(), "probe containers left: {left:?}");
}

/// A free TCP port number on this host (bound on loopback, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Drops TCP to `port` arriving on `iface` while alive (a firewall on the sandbox bridge).
struct FirewallDrop(String, u16);

impl FirewallDrop {
    fn new(iface: &str, port: u16) -> FirewallDrop {
        let rule = |op: &str| {
            Command::new("iptables")
                .args([
                    op,
                    "INPUT",
                    "-i",
                    iface,
                    "-p",
                    "tcp",
                    "--dport",
                    &port.to_string(),
                    "-j",
                    "DROP",
                ])
                .status()
        };
        assert!(
            rule("-I").is_ok_and(|s| s.success()),
            "cannot add an iptables rule"
        );
        FirewallDrop(iface.to_string(), port)
    }
}

impl std::ops::Drop for FirewallDrop {
    fn drop(&mut self) {
        let _ = Command::new("iptables")
            .args([
                "-D",
                "INPUT",
                "-i",
                &self.0,
                "-p",
                "tcp",
                "--dport",
                &self.1.to_string(),
                "-j",
                "DROP",
            ])
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_classifies_ok_refused_and_timeout_on_dockerd() {
    let engine = live::dockerd();
    if !engine.available() {
        return;
    }
    run(&engine, docker(&engine).await, |ctx| async move {
        let route: Route = crate::live::decide_live(ctx).await;
        // A firewall on the bridge drops callbacks to one port: a timeout, not a hang.
        let net = Command::new("docker")
            .args([
                "network",
                "inspect",
                "-f",
                "{{.Id}}",
                ctx.driver().network(),
            ])
            .output();
        let id = net
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        let iface = format!("br-{}", id.get(..12).unwrap_or_default());
        let mut dropped = route.clone();
        dropped.port = free_port();
        let _rule = FirewallDrop::new(&iface, dropped.port);
        for (kind, opts) in both(ctx) {
            let ok = probe_route(ctx.driver(), &route, &opts).await;
            assert!(
                matches!(ok.outcome, ProbeOutcome::Ok { .. }),
                "{kind}: {ok:?}"
            );

            // The gateway on loopback while sandboxes go to the bridge: refused, quickly.
            let mut misbound = route.clone();
            misbound.bind = Some("127.0.0.1".parse().unwrap_or_else(|_| unreachable!()));
            let refused = probe_route(ctx.driver(), &misbound, &opts).await;
            assert_eq!(
                refused.outcome,
                ProbeOutcome::Refused,
                "{kind}: {refused:?}"
            );

            let timeout = probe_route(ctx.driver(), &dropped, &opts).await;
            assert_eq!(
                timeout.outcome,
                ProbeOutcome::Timeout,
                "{kind}: {timeout:?}"
            );
        }
        no_probe_left(ctx).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_reports_an_unresolved_host_gateway_on_podman_4_3() {
    let engine = live::podman();
    if !engine.available() {
        return;
    }
    run(&engine, docker(&engine).await, |ctx| async move {
        let mut route = crate::live::decide_live(ctx).await;
        route.openshell_host = HostTarget::HostGateway;
        for (kind, opts) in both(ctx) {
            let r = probe_route(ctx.driver(), &route, &opts).await;
            assert_eq!(r.outcome, ProbeOutcome::NameUnresolved, "{kind}: {r:?}");
        }
        let missing = ProbeOptions {
            image: Some("localhost/openshell-no-such-image:missing".into()),
            ..opts(ctx)
        };
        let r = probe_route(ctx.driver(), &crate::live::decide_live(ctx).await, &missing).await;
        assert!(
            matches!(r.outcome, ProbeOutcome::ProbeUnavailable { .. }),
            "{r:?}"
        );
        no_probe_left(ctx).await;
    })
    .await;
}

/// A driver that requires a verified route at start-up gets the proven route, or fails fast
/// with every classified outcome instead of creating sandboxes that would hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_requires_a_verified_route() {
    let engine = live::dockerd();
    if !engine.available() {
        return;
    }
    run(&engine, docker(&engine).await, |ctx| async move {
        let facts = ctx
            .driver()
            .gather_facts()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .facts;
        let ctx0 = openshell_runtime::RouteContext {
            port: 0,
            tls: false,
            ..Default::default()
        };
        let decision =
            openshell_tests::decide_direct(&openshell_runtime::Registry::builtin(), &facts, &ctx0);
        let (route, results) =
            openshell_sandbox::require_verified_route(ctx.driver(), &decision, &opts(ctx))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            Some(&route.openshell_host),
            decision.route.as_ref().ok().map(|r| &r.openshell_host)
        );
        assert_eq!(results.len(), 1);

        let mut broken = decision.clone();
        if let Ok(r) = broken.route.as_mut() {
            r.bind = Some("127.0.0.1".parse().unwrap_or_else(|_| unreachable!()));
        }
        broken.fallbacks.clear();
        let err = openshell_sandbox::require_verified_route(ctx.driver(), &broken, &opts(ctx))
            .await
            .err()
            .unwrap_or_else(|| panic!("a misbound route was accepted"));
        assert_eq!(err.results[0].outcome, ProbeOutcome::Refused);
        assert!(err.to_string().contains("refused"), "{err}");
        no_probe_left(ctx).await;
    })
    .await;
}
