//! What the live benchmarks share: medians, the sandbox they start, and one sandbox timed from
//! create to its callback. Each benchmark binary includes this module (`mod common;`) and uses
//! what it needs.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use openshell_runtime::{decide, NetworkMode, Registry, Route, RouteContext, RouteKindChoice};
use openshell_sandbox::{new_token, CallbackListener, SandboxDriver, SandboxSpec};
use openshell_tests::live;

/// How long a benchmark waits for one callback.
pub(crate) const WAIT: Duration = Duration::from_secs(60);

/// The two-thread runtime the live benchmarks run on (this machine's size).
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The route a gateway would use with `driver`'s engine: decided from its live facts for
/// `mode`, with `kind` as the operator's route-kind choice.
pub(crate) async fn route_of(
    driver: &SandboxDriver,
    mode: NetworkMode,
    kind: RouteKindChoice,
) -> Route {
    let mut facts = driver
        .gather_facts()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .facts;
    facts.overrides.route_kind = kind;
    let context = RouteContext {
        port: 0,
        tls: false,
        network_mode: mode,
    };
    decide(&Registry::builtin(), &facts, &context)
        .route
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The middle value (the upper one of an even count); zero for none.
pub(crate) fn median(v: Vec<Duration>) -> Duration {
    percentile(v, 0.5)
}

/// The value at fraction `p` (0 to 1) of the sorted list, nearest rank; zero for none.
pub(crate) fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v.get(i).copied().unwrap_or_default()
}

/// Milliseconds, whole.
pub(crate) fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// A sandbox of `image` running `command`, its id prefixed by `prefix`, with a fresh token.
pub(crate) fn spec(prefix: &str, image: &str, command: Vec<String>) -> SandboxSpec {
    SandboxSpec {
        id: live::unique(prefix),
        image: image.into(),
        command,
        token: new_token().unwrap_or_else(|e| panic!("{e}")),
        labels: Default::default(),
    }
}

/// One sandbox `s` along `route`: created, started and called back (timed), then deleted.
pub(crate) async fn create_to_callback(
    driver: &SandboxDriver,
    listener: &mut CallbackListener,
    route: &Route,
    s: &SandboxSpec,
) -> Duration {
    listener.expect(&s.id, &s.token);
    let t0 = Instant::now();
    let h = driver
        .create(s, route)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let created = t0.elapsed();
    driver.start(&h).await.unwrap_or_else(|e| panic!("{e}"));
    let started = t0.elapsed();
    listener
        .wait_for(&s.id, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let took = t0.elapsed();
    // The phases, for finding where a transport's time goes.
    if std::env::var_os("OPENSHELL_BENCH_PHASES").is_some() {
        eprintln!(
            "phases: create {} ms, start {} ms, callback {} ms",
            created.as_millis(),
            (started - created).as_millis(),
            (took - started).as_millis()
        );
    }
    driver.delete(&h).await.unwrap_or_else(|e| panic!("{e}"));
    took
}
