//! End-to-end on real engines: the same scenarios run for each engine (one macro, no copies).
//! Each creates its own image, network and sandboxes, and removes them also on failure.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt;
use openshell_driver_docker::{DockerDriver, DockerOptions};
use openshell_runtime::{decide, HostTarget, Registry, Route, RouteContext};
use openshell_sandbox::{
    sandbox_command, CallbackListener, ListenerError, ListenerOptions, SandboxDriver, SandboxSpec,
    SandboxState,
};
use openshell_tests::live::{self, Engine};

struct Ctx {
    engine: Engine,
    driver: DockerDriver,
    image: String,
    /// Sandbox ids this test created, so cleanup touches nothing of concurrent tests.
    created: std::sync::Mutex<Vec<String>>,
}

/// Connects, imports the image, runs `body`, then removes every sandbox, network and image the
/// test made, whether the body passed or panicked.
async fn with_engine<F, Fut>(engine: &Engine, body: F)
where
    F: FnOnce(&'static Ctx) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    if !engine.available() {
        return;
    }
    let image =
        live::import_busybox(engine).unwrap_or_else(|e| panic!("cannot build the test image: {e}"));
    let network = live::unique("openshell-it");
    let opts = DockerOptions {
        network: network.clone(),
        ..DockerOptions::default()
    };
    let driver = DockerDriver::connect(engine.endpoint(), opts)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ctx: &'static Ctx = Box::leak(Box::new(Ctx {
        engine: engine.clone(),
        driver,
        image,
        created: Default::default(),
    }));
    let outcome = AssertUnwindSafe(body(ctx)).catch_unwind().await;
    // Cleanup: the sandboxes this test created, its network, its image.
    let mine = ctx.created.lock().map(|c| c.clone()).unwrap_or_default();
    if let Ok(all) = ctx.driver.list().await {
        for h in all.iter().filter(|h| mine.contains(&h.id)) {
            let _ = ctx.driver.delete(h).await;
        }
    }
    let _ = ctx.driver.remove_network().await;
    live::remove_image(engine, &ctx.image);
    assert!(
        !live::exists(engine, "network", &network),
        "network {network} left behind"
    );
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn decide_live(ctx: &Ctx) -> Route {
    let gathered = ctx
        .driver
        .gather_facts()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let d = decide(
        &Registry::builtin(),
        &gathered.facts,
        &RouteContext {
            port: 0,
            tls: false,
        },
    );
    let route = d
        .route
        .unwrap_or_else(|e| panic!("{}: no route: {e}", ctx.engine.name));
    assert_eq!(
        route.runtime, ctx.engine.runtime,
        "{}: wrong runtime",
        ctx.engine.name
    );
    route
}

fn spec(ctx: &Ctx, attempts: u32) -> SandboxSpec {
    let id = live::unique("it");
    if let Ok(mut c) = ctx.created.lock() {
        c.push(id.clone());
    }
    SandboxSpec {
        id,
        image: ctx.image.clone(),
        command: sandbox_command(attempts),
        token: live::token(),
        labels: Default::default(),
    }
}

/// A sandbox created along the decided route calls back to a listener bound where the route
/// says; deleting it leaves nothing of ours.
async fn callback_end_to_end(engine: &Engine) {
    with_engine(engine, |ctx| async move {
        let route = decide_live(ctx).await;
        if ctx.engine.cli == "podman" {
            assert_ne!(
                route.openshell_host,
                HostTarget::HostGateway,
                "Podman 4.3 must never get host-gateway"
            );
        }
        let mut listener = CallbackListener::bind(&route, ListenerOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let route = listener.route().clone();
        let spec = spec(ctx, 60);
        listener.expect(&spec.id, &spec.token);
        let h = ctx
            .driver
            .create(&spec, &route)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        ctx.driver.start(&h).await.unwrap_or_else(|e| panic!("{e}"));
        match listener.wait_for(&spec.id, live::CALLBACK_WAIT).await {
            Ok(a) => assert_eq!(a.sandbox_id, spec.id),
            Err(e) => {
                let logs = ctx.driver.logs(&h).await.unwrap_or_default();
                panic!("{e}\nsandbox output:\n{logs}");
            }
        }
        ctx.driver
            .delete(&h)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        ctx.driver
            .delete(&h)
            .await
            .unwrap_or_else(|e| panic!("delete is not idempotent: {e}"));
        let left = ctx.driver.list().await.unwrap_or_else(|e| panic!("{e}"));
        assert!(
            left.iter().all(|l| l.id != spec.id),
            "sandbox {} left behind",
            spec.id
        );
        assert!(!live::exists(&ctx.engine, "container", &h.container_id));
    })
    .await;
}

/// A gateway bound where the route does not lead (loopback, while sandboxes are sent to the
/// bridge) receives nothing, and that is reported as a timeout naming the listener, not a hang.
async fn misbound_gateway_gets_no_callback(engine: &Engine) {
    with_engine(engine, |ctx| async move {
        let mut route = decide_live(ctx).await;
        assert_ne!(
            route.bind,
            Some("127.0.0.1".parse().unwrap_or_else(|_| unreachable!()))
        );
        route.bind = Some("127.0.0.1".parse().unwrap_or_else(|_| unreachable!()));
        let mut listener = CallbackListener::bind(&route, ListenerOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let route = listener.route().clone();
        let spec = spec(ctx, 6);
        listener.expect(&spec.id, &spec.token);
        let h = ctx
            .driver
            .create(&spec, &route)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        ctx.driver.start(&h).await.unwrap_or_else(|e| panic!("{e}"));
        let err = listener.wait_for(&spec.id, Duration::from_secs(8)).await;
        assert!(matches!(err, Err(ListenerError::Timeout { .. })), "{err:?}");
        // The sandbox gives up by itself, within its bounded retries.
        let mut state = SandboxState::Running;
        for _ in 0..40 {
            state = ctx
                .driver
                .inspect(&h)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            if matches!(state, SandboxState::Exited(_)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert_eq!(
            state,
            SandboxState::Exited(1),
            "the sandbox should report its failed callback"
        );
        ctx.driver
            .delete(&h)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    })
    .await;
}

macro_rules! live_scenarios {
    ($($module:ident => $engine:expr),* $(,)?) => {$(
        mod $module {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn callback_end_to_end() {
                super::callback_end_to_end(&$engine).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn misbound_gateway_gets_no_callback() {
                super::misbound_gateway_gets_no_callback(&$engine).await;
            }
        }
    )*};
}

live_scenarios! {
    dockerd => openshell_tests::live::DOCKERD,
    podman_docker_api => openshell_tests::live::PODMAN_DOCKER_API,
}

/// Why the route for Podman 4.3 never says `host-gateway`: its Docker-compatible API accepts the
/// word at create time and writes it verbatim into /etc/hosts, so the name never resolves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_4_3_writes_host_gateway_verbatim() {
    with_engine(&openshell_tests::live::PODMAN_DOCKER_API, |ctx| async move {
        let mut route = decide_live(ctx).await;
        route.openshell_host = HostTarget::HostGateway;
        let mut spec = spec(ctx, 1);
        spec.command = vec!["cat".into(), "/etc/hosts".into()];
        let h = ctx.driver.create(&spec, &route).await.unwrap_or_else(|e| panic!("{e}"));
        ctx.driver.start(&h).await.unwrap_or_else(|e| panic!("{e}"));
        let mut logs = String::new();
        for _ in 0..20 {
            logs = ctx.driver.logs(&h).await.unwrap_or_default();
            if logs.contains("host.openshell.internal") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert!(
            logs.lines().any(|l| l.starts_with("host-gateway") && l.contains("host.openshell.internal")),
            "expected the literal word in /etc/hosts, got:\n{logs}"
        );
        ctx.driver.delete(&h).await.unwrap_or_else(|e| panic!("{e}"));
    })
    .await;
}
