//! Remote engines (issue 14), live: the namespaced dockerd of `scripts/remote.sh`, reached over
//! `tcp://` with TLS, over `ssh://` (`docker system dial-stdio`) and over `ssh://` with a
//! forwarded Unix socket, and its namespaced Podman service over `ssh://` with a forwarded
//! socket and over `tcp://` with TLS (each through the Podman driver, and the Docker driver on
//! Podman's compatible API). Each decides the relay from the engine's live facts, and sandboxes on
//! that engine call back through a relay whose attach stream rides the same TLS or ssh
//! connection to a listener on `127.0.0.1` here: the namespace has no route to this host's
//! loopback, so nothing else could carry them. Everything made on the remote engine (sandboxes,
//! relays, the network, the sandbox image and the relay image) is removed, also on failure.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use futures_util::future::join_all;
use futures_util::{FutureExt, StreamExt};
use openshell_engine::{connect_to, DriverKind};
use openshell_runtime::consts::LABEL_RELAY_NETWORK;
use openshell_runtime::facts::Endpoint;
use openshell_runtime::{decide, HostTarget, NetworkMode, Registry, RouteContext, RouteKind};
use openshell_sandbox::{
    CallbackListener, DriverOptions, ListenerOptions, Relay, RelayOptions, SandboxDriver,
};
use openshell_tests::live::{self, remote_setting, Engine};
use openshell_transport::ssh::{user_of, SshSettings};
use openshell_transport::tls::{TlsFiles, TlsMaterial};
use openshell_transport::Target;

use crate::live::{launch, run, spec, Ctx};

/// Sandboxes calling back at once through the remote relay (each ssh:// engine call is an ssh
/// session of about half a second, so fewer than the local relay test's 32).
const CONCURRENT: usize = 3;

/// The repository relay images are imported as (see `openshell-sandbox`'s relay).
const RELAY_REPOSITORY: &str = "localhost/openshell-relay";

/// The remote engine's targets, by transport: tcp:// with TLS, ssh:// with dial-stdio, ssh://
/// forwarding the engine's socket.
fn targets(settings: &std::collections::BTreeMap<String, String>) -> Vec<(&'static str, Target)> {
    let parse = |raw: &str| Endpoint::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
    let certs = PathBuf::from(remote_setting(
        settings,
        "OPENSHELL_REMOTE_DOCKER_CERT_PATH",
    ));
    let tls = TlsMaterial::load(&certs, "DOCKER_CERT_PATH").unwrap_or_else(|e| panic!("{e}"));
    let tcp = remote_setting(settings, "OPENSHELL_REMOTE_DOCKER_TCP");
    let ssh = remote_setting(settings, "OPENSHELL_REMOTE_DOCKER_SSH");
    let forwarded = format!(
        "{ssh}{}",
        remote_setting(settings, "OPENSHELL_REMOTE_DOCKER_SOCKET")
    );
    let ssh_settings = |raw: &str| SshSettings {
        user: user_of(raw),
        config: Some(PathBuf::from(remote_setting(
            settings,
            "OPENSHELL_REMOTE_SSH_CONFIG",
        ))),
        ..SshSettings::default()
    };
    vec![
        ("tcp+tls", Target::new(parse(&tcp)).with_tls(tls)),
        (
            "ssh dial-stdio",
            Target::new(parse(&ssh)).with_ssh(ssh_settings(&ssh)),
        ),
        (
            "ssh forwarded socket",
            Target::new(parse(&forwarded)).with_ssh(ssh_settings(&forwarded)),
        ),
    ]
}

/// The namespaced Podman's targets: its socket forwarded over ssh (Podman 4.3 has no
/// dial-stdio), and tcp:// with TLS, its material named file by file as a Podman 5.7 connection
/// names it.
fn podman_targets(
    settings: &std::collections::BTreeMap<String, String>,
) -> Vec<(&'static str, Target)> {
    let raw = remote_setting(settings, "OPENSHELL_REMOTE_PODMAN_SSH");
    let endpoint = Endpoint::parse(&raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
    let ssh = Target::new(endpoint).with_ssh(SshSettings {
        user: user_of(&raw),
        config: Some(PathBuf::from(remote_setting(
            settings,
            "OPENSHELL_REMOTE_SSH_CONFIG",
        ))),
        ..SshSettings::default()
    });
    let certs = PathBuf::from(remote_setting(
        settings,
        "OPENSHELL_REMOTE_DOCKER_CERT_PATH",
    ));
    let files = TlsFiles {
        ca: Some(certs.join("ca.pem")),
        cert: Some(certs.join("cert.pem")),
        key: Some(certs.join("key.pem")),
    };
    let tls =
        TlsMaterial::from_files(&files, "the test's connection").unwrap_or_else(|e| panic!("{e}"));
    let raw = remote_setting(settings, "OPENSHELL_REMOTE_PODMAN_TLS");
    let endpoint = Endpoint::parse(&raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
    vec![
        ("ssh forwarded socket", ssh),
        ("tcp+tls", Target::new(endpoint).with_tls(tls)),
    ]
}

fn driver_options() -> DriverOptions {
    DriverOptions {
        network: live::unique("openshell-remote-it"),
        ..DriverOptions::default()
    }
}

/// Removes the relay images the test imported (the remote engine is the tests' alone) and
/// checks none is left.
fn remove_relay_images(engine: &Engine) {
    live::remove_images_of(engine, RELAY_REPOSITORY);
    assert_eq!(
        live::images_of(engine, RELAY_REPOSITORY).map(|i| i.len()),
        Ok(0),
        "relay images left on the {}",
        engine.name
    );
}

/// Runs `test`, then removes the relay images it imported on `engine` (also when it failed,
/// whose panic is then resumed).
async fn then_remove_relay_images(engine: &Engine, test: impl std::future::Future<Output = ()>) {
    let outcome = std::panic::AssertUnwindSafe(test).catch_unwind().await;
    remove_relay_images(engine);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// The relay containers on `network`.
fn relays_on(engine: &Engine, network: &str) -> Vec<String> {
    live::containers_labelled(engine, LABEL_RELAY_NETWORK, network)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The policy decides the relay from the remote engine's live facts; [`CONCURRENT`] sandboxes
/// call back through one relay to a listener on 127.0.0.1; shutting the relay down leaves none.
pub async fn remote_relay_callbacks(
    engine: &Engine,
    driver: SandboxDriver,
    transport: &'static str,
) {
    run(engine, driver, move |ctx: &'static Ctx| async move {
        let facts = ctx
            .driver()
            .gather_facts()
            .await
            .unwrap_or_else(|e| panic!("{transport}: {e}"))
            .facts;
        let routing = RouteContext {
            port: 0,
            tls: false,
            network_mode: NetworkMode::Bridge,
        };
        let route = decide(&Registry::builtin(), &facts, &routing)
            .route
            .unwrap_or_else(|e| panic!("{transport}: no route: {e}"));
        assert_eq!(route.runtime, ctx.engine().runtime, "{transport}");
        assert_eq!(route.route_kind, RouteKind::Relay, "{transport}: {route:?}");
        assert_eq!(route.openshell_host, HostTarget::Relay, "{transport}");
        assert_eq!(route.bind, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        ctx.driver()
            .ensure_network()
            .await
            .unwrap_or_else(|e| panic!("{transport}: {e}"));
        let mut listener = CallbackListener::bind(&route, ListenerOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{transport}: {e}"));
        let ops = ctx.driver().clone();
        let opts = RelayOptions::from_env(listener.route().port).unwrap_or_else(|e| panic!("{e}"));
        let relay = Relay::start(ops, opts)
            .await
            .unwrap_or_else(|e| panic!("{transport}: {e}"));
        let network = ctx.driver().network().to_string();
        let result = std::panic::AssertUnwindSafe(async {
            let carried = relay
                .route(listener.route())
                .unwrap_or_else(|e| panic!("{e}"));
            // The relay's address is on the remote engine's network: not this host's loopback.
            assert!(
                matches!(carried.openshell_host, HostTarget::Ip(ip) if !ip.is_loopback()),
                "{transport}: {carried:?}"
            );
            assert_eq!(carried.bind, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
            let specs: Vec<_> = (0..CONCURRENT).map(|_| spec(ctx, 60)).collect();
            for s in &specs {
                listener.expect(&s.id, &s.token);
            }
            let handles: Vec<_> = futures_util::stream::iter(&specs)
                .map(|s| launch(ctx, s, &carried))
                .buffered(CONCURRENT)
                .collect()
                .await;
            for (s, h) in specs.iter().zip(&handles) {
                match listener.wait_for(&s.id, live::CALLBACK_WAIT).await {
                    Ok(a) => assert!(a.peer.ip().is_loopback(), "{transport}: {a:?}"),
                    Err(e) => {
                        let logs = SandboxDriver::logs(ctx.driver(), h)
                            .await
                            .unwrap_or_default();
                        panic!("{transport}: {e}\nsandbox output:\n{logs}");
                    }
                }
            }
            join_all(handles.iter().map(|h| ctx.driver().delete(h))).await;
            assert_eq!(relays_on(ctx.engine(), &network).len(), 1, "{transport}");
        })
        .catch_unwind()
        .await;
        relay
            .shutdown()
            .await
            .unwrap_or_else(|e| panic!("{transport}: {e}"));
        assert!(
            relays_on(ctx.engine(), &network).is_empty(),
            "{transport}: a relay remains on {network}"
        );
        if let Err(panic) = result {
            std::panic::resume_unwind(panic);
        }
    })
    .await;
}

/// Through the Docker driver, over each transport in turn (one relay image, imported once and
/// removed at the end: the transports share the engine).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_dockerd_relay_over_tls_and_ssh() {
    let Some(settings) = live::remote_settings() else {
        return;
    };
    let engine = live::remote_dockerd(&settings);
    if !engine.available() {
        return;
    }
    then_remove_relay_images(&engine, async {
        for (transport, target) in targets(&settings) {
            let driver = connect_to(DriverKind::Docker, target, driver_options())
                .await
                .unwrap_or_else(|e| panic!("{transport}: {e}"));
            remote_relay_callbacks(&engine, driver, transport).await;
        }
    })
    .await;
}

/// The namespaced Podman over an ssh-forwarded socket and over tcp:// with TLS, each through the
/// Podman driver (libpod) and the Docker driver (Podman's Docker-compatible API).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_podman_relay_over_tls_and_ssh() {
    let Some(settings) = live::remote_settings() else {
        return;
    };
    let engine = live::remote_podman(&settings);
    if !engine.available() {
        return;
    }
    then_remove_relay_images(&engine, async {
        for (transport, target) in podman_targets(&settings) {
            let driver = connect_to(DriverKind::Podman, target.clone(), driver_options())
                .await
                .unwrap_or_else(|e| panic!("{transport}, podman driver: {e}"));
            remote_relay_callbacks(&engine, driver, transport).await;
            let driver = connect_to(DriverKind::Docker, target, driver_options())
                .await
                .unwrap_or_else(|e| panic!("{transport}, docker driver: {e}"));
            remote_relay_callbacks(&engine, driver, transport).await;
        }
    })
    .await;
}
