//! End-to-end on real engines. Each scenario is written once, generic over the driver, and run
//! for every engine/driver pair by one macro: dockerd through the Docker driver, rootful and
//! rootless Podman through the Docker driver (its Docker-compatible API) and through the Podman
//! driver (libpod), and rootless dockerd (RootlessKit) through the Docker driver.
//! Each test creates its own image, network and sandboxes, and removes them also on failure.

use std::panic::AssertUnwindSafe;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::FutureExt;
use openshell_engine::{connect_to, DriverKind};
use openshell_runtime::{
    Exposure, Facts, HostTarget, NetworkMode, Registry, Route, RouteContext, RouteError, RouteKind,
};
use openshell_sandbox::DriverOptions;
use openshell_sandbox::{
    sandbox_command, CallbackListener, ListenerError, ListenerOptions, SandboxDriver,
    SandboxHandle, SandboxSpec, SandboxState, Sweep,
};
use openshell_tests::decide_direct as decide;
use openshell_tests::live::{self, Engine};

pub struct Ctx {
    engine: Engine,
    driver: SandboxDriver,
    image: String,
    /// Sandbox ids this test created, so cleanup touches nothing of concurrent tests.
    created: Mutex<Vec<String>>,
}

pub async fn docker(engine: &Engine) -> SandboxDriver {
    let opts = DriverOptions {
        network: live::unique("openshell-it"),
        ..DriverOptions::default()
    };
    connect_to(DriverKind::Docker, engine.endpoint(), opts)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

pub async fn podman(engine: &Engine) -> SandboxDriver {
    let opts = DriverOptions {
        network: live::unique("openshell-it"),
        ..DriverOptions::default()
    };
    connect_to(DriverKind::Podman, engine.endpoint(), opts)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Held (shared) by every test run through [`run`], which may create probes, and alone by
/// one that sweeps every probe this process owns ([`run_alone`]): the tests share one process,
/// and such a sweep would otherwise remove another test's probe mid-flight.
static PROBES: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// Imports the image, runs `body`, then removes every sandbox, network and image the test made,
/// whether the body passed or panicked.
pub async fn run<F, Fut>(engine: &Engine, driver: SandboxDriver, body: F)
where
    F: FnOnce(&'static Ctx) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let _probes = PROBES.read().await;
    run_body(engine, driver, body).await;
}

/// [`run`], with no other test of this process running meanwhile, for a test that sweeps every
/// probe this process owns.
pub async fn run_alone<F, Fut>(engine: &Engine, driver: SandboxDriver, body: F)
where
    F: FnOnce(&'static Ctx) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let _probes = PROBES.write().await;
    run_body(engine, driver, body).await;
}

async fn run_body<F, Fut>(engine: &Engine, driver: SandboxDriver, body: F)
where
    F: FnOnce(&'static Ctx) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let image =
        live::import_busybox(engine).unwrap_or_else(|e| panic!("cannot build the test image: {e}"));
    let ctx: &'static Ctx = Box::leak(Box::new(Ctx {
        engine: engine.clone(),
        driver,
        image,
        created: Mutex::default(),
    }));
    let outcome = AssertUnwindSafe(body(ctx)).catch_unwind().await;
    let mine = ctx.created.lock().map(|c| c.clone()).unwrap_or_default();
    if let Ok(all) = ctx.driver.list().await {
        for h in all.iter().filter(|h| mine.contains(&h.id)) {
            let _ = ctx.driver.delete(h).await;
        }
    }
    let removed = ctx.driver.remove_network().await;
    live::remove_image(engine, &ctx.image);
    let network = ctx.driver.network();
    assert!(
        !live::exists(engine, "network", network),
        "network {network} left behind (removing it gave {removed:?})"
    );
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

impl Ctx {
    pub fn driver(&self) -> &SandboxDriver {
        &self.driver
    }

    pub fn image(&self) -> &str {
        &self.image
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

/// The engine's route, decided from its live facts plus the operator setting the engine was
/// configured with (rootless host loopback). Panics on a route that would send the test's
/// traffic to the host's LAN-facing address or every interface: tests talk only to loopback and
/// the bridges they create.
pub async fn decide_live(ctx: &Ctx) -> Route {
    decide_live_in(ctx, NetworkMode::Bridge).await
}

/// The engine's live facts, with the operator setting the engine was configured with.
async fn live_facts(ctx: &Ctx) -> Facts {
    let mut facts = ctx
        .driver
        .gather_facts()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .facts;
    if ctx.engine.rootless_host_loopback {
        facts.overrides.rootless_host_loopback = Some(true);
    }
    facts
}

fn live_ctx(mode: NetworkMode) -> RouteContext {
    RouteContext {
        port: 0,
        tls: false,
        network_mode: mode,
    }
}

/// [`decide_live`] for sandboxes in `mode`.
pub async fn decide_live_in(ctx: &Ctx, mode: NetworkMode) -> Route {
    let facts = live_facts(ctx).await;
    let d = decide(&Registry::builtin(), &facts, &live_ctx(mode));
    let route = d.route.unwrap_or_else(|e| {
        panic!(
            "{} via {}: no route: {e}",
            ctx.engine.name,
            ctx.driver.name()
        )
    });
    assert_eq!(
        route.runtime,
        ctx.engine.runtime,
        "{} via {}: wrong runtime",
        ctx.engine.name,
        ctx.driver.name()
    );
    assert!(
        matches!(route.exposure, Exposure::Loopback | Exposure::Bridge),
        "{} via {}: the route {:?} (bind {:?}) leaves loopback and the test's bridges; live tests must not send traffic there",
        ctx.engine.name,
        ctx.driver.name(),
        route.openshell_host,
        route.bind
    );
    route
}

/// Waits for `heard` (a sandbox's callback, at a listener or a gateway); when it fails, panics
/// with `what`, the failure and the sandbox's output.
pub async fn await_callback<T, E: std::fmt::Display>(
    ctx: &Ctx,
    h: &SandboxHandle,
    what: &str,
    heard: impl std::future::Future<Output = Result<T, E>>,
) {
    if let Err(e) = heard.await {
        let logs = SandboxDriver::logs(&ctx.driver, h)
            .await
            .unwrap_or_default();
        panic!("{what}{e}\nsandbox output:\n{logs}");
    }
}

/// Creates and starts a sandbox along `route`; any engine error fails the test.
pub async fn launch(ctx: &Ctx, spec: &SandboxSpec, route: &Route) -> SandboxHandle {
    let h = ctx
        .driver
        .create(spec, route)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    ctx.driver.start(&h).await.unwrap_or_else(|e| panic!("{e}"));
    h
}

pub fn spec(ctx: &Ctx, attempts: u32) -> SandboxSpec {
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
/// says; deleting it leaves nothing of ours. On Podman the bridge does not exist until the
/// first container starts, so the listener binds it before it exists (IP_FREEBIND).
pub async fn callback_end_to_end(engine: &Engine, driver: SandboxDriver) {
    run(engine, driver, |ctx| async move {
        let route = decide_live(ctx).await;
        if ctx.engine.podman {
            assert_ne!(
                route.openshell_host,
                HostTarget::HostGateway,
                "Podman 4.3 must never get host-gateway"
            );
        }
        let mut listener = CallbackListener::bind(&route, ListenerOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // Netavark creates a network's bridge only when its first container starts: on a fresh
        // Podman network the address is bound before it exists. dockerd creates it up front.
        let fresh_netavark_bridge = ctx.engine.podman && route.exposure == Exposure::Bridge;
        assert_eq!(
            listener.used_freebind(),
            fresh_netavark_bridge,
            "bridge presence on a fresh network"
        );
        let route = listener.route().clone();
        let spec = spec(ctx, 60);
        listener.expect(&spec.id, &spec.token);
        let h = launch(ctx, &spec, &route).await;
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

/// Host networking: a sandbox in the engine's host network namespace, still calling
/// `host.openshell.internal`, reaches a gateway bound on the host's loopback. On rootless
/// dockerd that namespace is RootlessKit's: without host loopback declared the decision
/// refuses, and the naive 127.0.0.1 (the sandbox's own loopback there) really receives nothing.
pub async fn host_network_callback(engine: &Engine, driver: SandboxDriver) {
    run(engine, driver, |ctx| async move {
        let route = decide_live_in(ctx, NetworkMode::Host).await;
        assert_eq!(route.route_kind, RouteKind::HostNetwork);
        assert_eq!(route.exposure, Exposure::Loopback, "{route:?}");
        assert!(matches!(route.openshell_host, HostTarget::Ip(_)), "{route:?}");
        let mut listener = CallbackListener::bind(&route, ListenerOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let route = listener.route().clone();
        let spec = spec(ctx, 60);
        listener.expect(&spec.id, &spec.token);
        let h = launch(ctx, &spec, &route).await;
        if let Err(e) = listener.wait_for(&spec.id, live::CALLBACK_WAIT).await {
            let logs = ctx.driver.logs(&h).await.unwrap_or_default();
            panic!("{e}\nsandbox output:\n{logs}");
        }
        ctx.driver
            .delete(&h)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        if ctx.engine.runtime != "rootless-docker" {
            return;
        }
        // Without host loopback declared, no route: the refusal names the fix.
        let mut facts = live_facts(ctx).await;
        facts.overrides.rootless_host_loopback = None;
        let d = decide(&Registry::builtin(), &facts, &live_ctx(NetworkMode::Host));
        assert!(
            matches!(d.route, Err(RouteError::NoSafeRoute { ref fix, .. }) if fix.contains("disable-host-loopback")),
            "{:?}",
            d.route
        );
        // The naive route (127.0.0.1 on both sides) is refused as an override, and a sandbox
        // sent there anyway calls RootlessKit's loopback, not the gateway's.
        facts.overrides.host_gateway_ip = Some([127, 0, 0, 1].into());
        let d = decide(&Registry::builtin(), &facts, &live_ctx(NetworkMode::Host));
        assert!(
            matches!(d.route, Err(RouteError::LoopbackElsewhere { .. })),
            "{:?}",
            d.route
        );
        let mut naive = route.clone();
        naive.openshell_host = HostTarget::Ip([127, 0, 0, 1].into());
        naive.port = 0;
        let mut listener = CallbackListener::bind(&naive, ListenerOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let naive = listener.route().clone();
        let spec = self::spec(ctx, 4);
        listener.expect(&spec.id, &spec.token);
        let h = launch(ctx, &spec, &naive).await;
        let err = listener.wait_for(&spec.id, Duration::from_secs(8)).await;
        assert!(matches!(err, Err(ListenerError::Timeout { .. })), "{err:?}");
        ctx.driver
            .delete(&h)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    })
    .await;
}

/// A gateway bound where the route does not lead (loopback, while sandboxes are sent to the
/// bridge) receives nothing, and that is reported as a timeout naming the listener, not a hang.
pub async fn misbound_gateway_gets_no_callback(engine: &Engine, driver: SandboxDriver) {
    run(engine, driver, |ctx| async move {
        let mut route = decide_live(ctx).await;
        // Somewhere the route does not lead: loopback, or another loopback address when the
        // route itself is loopback (10.0.2.2 lands on 127.0.0.1 only).
        let elsewhere = if route.bind.is_some_and(|b| b.is_loopback()) {
            "127.0.0.2"
        } else {
            "127.0.0.1"
        };
        route.bind = Some(elsewhere.parse().unwrap_or_else(|_| unreachable!()));
        let mut listener = CallbackListener::bind(&route, ListenerOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let route = listener.route().clone();
        let spec = spec(ctx, 6);
        listener.expect(&spec.id, &spec.token);
        let h = launch(ctx, &spec, &route).await;
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

/// A failed create (an image that does not exist) leaves no container behind.
pub async fn failed_create_leaves_nothing(engine: &Engine, driver: SandboxDriver) {
    run(engine, driver, |ctx| async move {
        let route = decide_live(ctx).await;
        let mut spec = spec(ctx, 1);
        spec.image = "localhost/openshell-no-such-image:missing".into();
        assert!(ctx.driver.create(&spec, &route).await.is_err());
        let left = ctx.driver.list().await.unwrap_or_else(|e| panic!("{e}"));
        assert!(
            left.iter().all(|l| l.id != spec.id),
            "failed create left {} behind",
            spec.id
        );
    })
    .await;
}

/// Scratch networks (the subnet pick before a network is created) that interrupted runs left
/// are removed by the next run that creates the network: one whose run is gone from this host,
/// and one of another host's run that expired. A live run's stays. (Every CI run's SIGKILLed
/// `doctor`s left one or two on dockerd before.)
pub async fn scratch_networks_of_gone_runs_are_swept(engine: &Engine, driver: SandboxDriver) {
    run(engine, driver, |ctx| async move {
        use openshell_runtime::consts::{LABEL_EXPIRES, LABEL_MANAGED, LABEL_OWNER, LABEL_SCRATCH};
        let network = ctx.driver.network().to_string();
        let mut gone = std::process::Command::new("true")
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let gone_pid = gone.id();
        let _ = gone.wait();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let planted = [
            ("gone0001", live::owner_label(gone_pid), now + 600, false),
            (
                "live0001",
                live::owner_label(std::process::id()),
                now + 600,
                true,
            ),
            (
                "elsewher",
                "another-boot/4026531836/1".to_string(),
                now - 1,
                false,
            ),
        ];
        for (suffix, owner, expires, _) in &planted {
            let labels = std::collections::BTreeMap::from([
                (LABEL_MANAGED.to_string(), "true".to_string()),
                (LABEL_SCRATCH.to_string(), network.clone()),
                (LABEL_OWNER.to_string(), owner.clone()),
                (LABEL_EXPIRES.to_string(), expires.to_string()),
            ]);
            let name = format!("{network}-subnet-{suffix}");
            ctx.driver
                .ops()
                .create_network(&name, &labels, None)
                .await
                .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        }
        let ensured = ctx.driver.ensure_network().await;
        let left: Vec<(String, bool)> = planted
            .iter()
            .map(|(suffix, _, _, _)| {
                let name = format!("{network}-subnet-{suffix}");
                let exists = live::exists(&ctx.engine, "network", &name);
                live::remove_networks_named(&ctx.engine, &name);
                (name, exists)
            })
            .collect();
        ensured.unwrap_or_else(|e| panic!("{e}"));
        let want: Vec<(String, bool)> = planted
            .iter()
            .map(|(suffix, _, _, stays)| (format!("{network}-subnet-{suffix}"), *stays))
            .collect();
        assert_eq!(left, want, "{}", ctx.engine.name);
    })
    .await;
}

/// A probe removes itself: once started, the engine deletes it when it exits; one that never
/// started is found by a sweep of this run's probes, and a stale-probe sweep leaves a live
/// run's probe alone.
pub async fn probes_remove_themselves(engine: &Engine, driver: SandboxDriver) {
    run_alone(engine, driver, |ctx| async move {
        let route = decide_live(ctx).await;
        let lifetime = Duration::from_secs(120);
        let mut started = spec(ctx, 1);
        started.command = vec!["sh".into(), "-c".into(), "exit 3".into()];
        let h = ctx
            .driver
            .create_probe(&started, &route, lifetime)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        ctx.driver.start(&h).await.unwrap_or_else(|e| panic!("{e}"));
        let mut gone = false;
        for _ in 0..80 {
            if ctx
                .driver
                .inspect(&h)
                .await
                .is_err_and(|e| e.is_not_found())
            {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert!(gone, "an exited probe was not removed by the engine");

        let never = spec(ctx, 1);
        let h = ctx
            .driver
            .create_probe(&never, &route, lifetime)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let stale = ctx
            .driver
            .sweep_probes(Sweep::Stale)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            stale.iter().all(|p| p.container_id != h.container_id),
            "a live run's probe was swept as stale"
        );
        let mine = ctx
            .driver
            .sweep_probes(Sweep::Mine)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            mine.iter().any(|p| p.container_id == h.container_id),
            "{mine:?}"
        );
        assert!(ctx
            .driver
            .inspect(&h)
            .await
            .is_err_and(|e| e.is_not_found()));
    })
    .await;
}

/// Eight runs at once on a fresh network name all succeed, see the same network and leave one
/// behind: creating the sandbox network is idempotent under concurrency. (Only the network is
/// asked for: eight whole fact gatherings at once take Podman's `/info` past the timeout on a
/// loaded machine, which is not what this test is about.) (Before, dockerd 20.10
/// made up to eight networks of the name, and Podman failed the runs that lost the race.)
pub async fn concurrent_runs_agree_on_one_network(engine: &Engine, driver: SandboxDriver) {
    let network = driver.network().to_string();
    let outcome = AssertUnwindSafe(async {
        let runs = futures_util::future::join_all((0..8).map(|_| driver.ensure_network())).await;
        let ids: Vec<String> = runs
            .into_iter()
            .map(|r| {
                let net = r.unwrap_or_else(|e| panic!("a concurrent run failed: {e}"));
                net.get("Id")
                    .or_else(|| net.get("id"))
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        assert!(
            ids.iter().all(|id| !id.is_empty() && *id == ids[0]),
            "the runs saw different networks: {ids:?}"
        );
        let left = live::networks_named(engine, &network).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(left.len(), 1, "networks called {network}: {left:?}");
        assert!(ids[0].starts_with(&left[0]), "{ids:?} vs {left:?}");
    })
    .catch_unwind()
    .await;
    live::remove_networks_named(engine, &network);
    assert!(
        live::networks_named(engine, &network).is_ok_and(|l| l.is_empty()),
        "network {network} left behind"
    );
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

macro_rules! live_scenarios {
    ($($module:ident => $engine:expr, $connect:ident;)*) => {$(
        mod $module {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn callback_end_to_end() {
                let engine = $engine;
                if engine.available() {
                    super::callback_end_to_end(&engine, super::$connect(&engine).await).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn misbound_gateway_gets_no_callback() {
                let engine = $engine;
                if engine.available() {
                    super::misbound_gateway_gets_no_callback(&engine, super::$connect(&engine).await).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn host_network_callback() {
                let engine = $engine;
                if engine.available() {
                    super::host_network_callback(&engine, super::$connect(&engine).await).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn probes_remove_themselves() {
                let engine = $engine;
                if engine.available() {
                    super::probes_remove_themselves(&engine, super::$connect(&engine).await).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_runs_agree_on_one_network() {
                let engine = $engine;
                if engine.available() {
                    super::concurrent_runs_agree_on_one_network(&engine, super::$connect(&engine).await).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn scratch_networks_of_gone_runs_are_swept() {
                let engine = $engine;
                if engine.available() {
                    super::scratch_networks_of_gone_runs_are_swept(&engine, super::$connect(&engine).await).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn failed_create_leaves_nothing() {
                let engine = $engine;
                if engine.available() {
                    super::failed_create_leaves_nothing(&engine, super::$connect(&engine).await).await;
                }
            }
        }
    )*};
}

openshell_tests::live_pairs!(live_scenarios);

/// Creates a network through dockerd's API as dockerd 20.10 allows: without `CheckDuplicate`, so
/// a second network of the same name is made. Returns its id.
fn create_duplicate(engine: &Engine, name: &str, ours: bool) -> String {
    let labels = if ours {
        serde_json::json!({"io.openshell.managed": "true"})
    } else {
        serde_json::json!({})
    };
    let body = serde_json::json!({"Name": name, "Driver": "bridge", "Labels": labels});
    let out = std::process::Command::new("curl")
        .args(["-fsS", "--max-time", "20", "--unix-socket", &engine.socket])
        .args([
            "-H",
            "Content-Type: application/json",
            "-d",
            &body.to_string(),
        ])
        .arg("http://d/v1.41/networks/create")
        .output()
        .unwrap_or_else(|e| panic!("curl: {e}"));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    v["Id"].as_str().unwrap_or_default().to_string()
}

/// Duplicates of ours (what the old race left on dockerd 20.10) are healed: the lowest id
/// survives, and the run succeeds. A same-named network that is not ours is left for the
/// operator, and the error names both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_of_ours_are_healed_on_dockerd() {
    let engine = openshell_tests::live::dockerd();
    if !engine.available() {
        return;
    }
    let driver = docker(&engine).await;
    let network = driver.network().to_string();
    let outcome = AssertUnwindSafe(async {
        let mut made: Vec<String> = (0..3)
            .map(|_| create_duplicate(&engine, &network, true))
            .collect();
        made.sort();
        assert_eq!(
            live::networks_named(&engine, &network).map(|l| l.len()),
            Ok(3),
            "dockerd did not make duplicates"
        );
        let g = driver
            .gather_facts()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let left = live::networks_named(&engine, &network).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(left.len(), 1, "{left:?}");
        assert!(made[0].starts_with(&left[0]), "{made:?} vs {left:?}");
        assert_eq!(g.document["network"]["Id"], made[0].as_str());

        let foreign = create_duplicate(&engine, &network, false);
        let err = driver
            .gather_facts()
            .await
            .err()
            .unwrap_or_else(|| panic!("an ambiguous name was accepted"));
        assert!(
            matches!(
                err,
                openshell_sandbox::EngineError::DuplicateNetworks { .. }
            ),
            "{err}"
        );
        assert!(err.to_string().contains(&foreign[..12]), "{err}");
        assert_eq!(
            live::networks_named(&engine, &network).map(|l| l.len()),
            Ok(2)
        );
    })
    .catch_unwind()
    .await;
    live::remove_networks_named(&engine, &network);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Why the route for Podman 4.3 never says `host-gateway`: its Docker-compatible API accepts the
/// word at create time and writes it verbatim into /etc/hosts, so the name never resolves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_4_3_writes_host_gateway_verbatim() {
    let engine = openshell_tests::live::podman();
    if !engine.available() {
        return;
    }
    run(&engine, docker(&engine).await, |ctx| async move {
        let mut route = decide_live(ctx).await;
        route.openshell_host = HostTarget::HostGateway;
        let mut spec = spec(ctx, 1);
        spec.command = vec!["cat".into(), "/etc/hosts".into()];
        let h = launch(ctx, &spec, &route).await;
        let mut logs = String::new();
        for _ in 0..20 {
            logs = ctx.driver.logs(&h).await.unwrap_or_default();
            if logs.contains("host.openshell.internal") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert!(
            logs.lines()
                .any(|l| l.starts_with("host-gateway") && l.contains("host.openshell.internal")),
            "expected the literal word in /etc/hosts, got:\n{logs}"
        );
        ctx.driver
            .delete(&h)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    })
    .await;
}

/// One policy, two drivers: the same Podman reached through its Docker-compatible API and
/// through libpod gives the same route and the same extra hosts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_drivers_decide_the_same_for_the_same_podman() {
    let engine = openshell_tests::live::podman();
    if !engine.available() {
        return;
    }
    let network = live::unique("openshell-it");
    let d = connect_to(
        DriverKind::Docker,
        engine.endpoint(),
        DriverOptions {
            network: network.clone(),
            ..DriverOptions::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let p = connect_to(
        DriverKind::Podman,
        engine.endpoint(),
        DriverOptions {
            network: network.clone(),
            ..DriverOptions::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let outcome = AssertUnwindSafe(async {
        let ctx = RouteContext::default();
        let via_docker = decide(
            &Registry::builtin(),
            &d.gather_facts()
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .facts,
            &ctx,
        );
        let via_libpod = decide(
            &Registry::builtin(),
            &p.gather_facts()
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .facts,
            &ctx,
        );
        let a = via_docker
            .route
            .unwrap_or_else(|e| panic!("docker driver: {e}"));
        let b = via_libpod
            .route
            .unwrap_or_else(|e| panic!("podman driver: {e}"));
        assert_eq!(a.runtime, "podman");
        assert_eq!(
            (a.runtime.as_str(), a.openshell_host, a.bind),
            (b.runtime.as_str(), b.openshell_host, b.bind)
        );
        assert_eq!(a.extra_hosts(), b.extra_hosts());
        assert_eq!(a.sandbox_endpoint(), b.sandbox_endpoint());
    })
    .catch_unwind()
    .await;
    let _ = p.remove_network().await;
    assert!(
        !live::exists(&engine, "network", &network),
        "network {network} left behind"
    );
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// A rootless engine without the loopback setting: detected with `evidence` among its evidence,
/// and the route is the host's primary (LAN-facing) address, flagged as such; without that
/// address the refusal names `fix`. No traffic is sent: tests never target that address.
async fn rootless_without_loopback_routes_to_the_primary_address(
    engine: &Engine,
    driver: SandboxDriver,
    evidence: &str,
    fix: &str,
) {
    let outcome = AssertUnwindSafe(async {
        let g = driver
            .gather_facts()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(g.facts.overrides.rootless_host_loopback, None);
        let d = decide(&Registry::builtin(), &g.facts, &RouteContext::default());
        let w = d
            .detection
            .winner
            .as_ref()
            .unwrap_or_else(|| panic!("not detected"));
        assert_eq!(d.runtime_id(), Some(engine.runtime));
        assert!(
            w.evidence.iter().any(|e| e.meaning.contains(evidence)),
            "{:?}",
            w.evidence
        );
        match (d.route, g.facts.host_ipv4) {
            (Ok(route), Some(ip)) => {
                assert_eq!(route.openshell_host, HostTarget::Ip(ip.into()));
                assert_eq!(route.bind, Some(ip.into()));
                assert_eq!(route.exposure, Exposure::Lan);
                assert!(route.notes.iter().any(|n| n.contains("LAN-facing")));
            }
            (Err(e), None) => assert!(e.to_string().contains(fix), "{e}"),
            (other, ip) => panic!("unexpected {other:?} with host_ipv4 {ip:?}"),
        }
    })
    .catch_unwind()
    .await;
    let _ = driver.remove_network().await;
    assert!(
        !live::exists(engine, "network", driver.network()),
        "network left behind"
    );
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rootless_podman_without_loopback_routes_to_the_primary_address() {
    let engine = openshell_tests::live::podman_rootless();
    if engine.available() {
        let driver = podman(&engine).await;
        rootless_without_loopback_routes_to_the_primary_address(
            &engine,
            driver,
            "slirp4netns",
            "allow_host_loopback=true",
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rootless_dockerd_without_loopback_routes_to_the_primary_address() {
    let engine = openshell_tests::live::dockerd_rootless();
    if engine.available() {
        let driver = docker(&engine).await;
        rootless_without_loopback_routes_to_the_primary_address(
            &engine,
            driver,
            "dockerd runs rootless",
            "DOCKERD_ROOTLESS_ROOTLESSKIT_DISABLE_HOST_LOOPBACK=false",
        )
        .await;
    }
}
