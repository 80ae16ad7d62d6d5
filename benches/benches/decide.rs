//! Decision speed: parse every bundled capture, then detect and route it.
//!
//! Run with `cargo bench -p openshell-benches`. Numbers are reported in docs/performance.md,
//! never gated in CI (CI only checks that this builds and runs once).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use openshell_runtime::{decide, Facts, Registry, RouteContext};
use openshell_tests::fixtures;

fn bench(c: &mut Criterion) {
    let docs: Vec<(String, serde_json::Value)> =
        fixtures().into_iter().map(|f| (f.name, f.doc)).collect();
    let texts: Vec<String> = docs.iter().map(|(_, d)| d.to_string()).collect();
    let parsed: Vec<Facts> = docs
        .iter()
        .filter_map(|(_, d)| Facts::from_value(d).ok())
        .collect();
    let registry = Registry::builtin();
    let ctx = RouteContext::default();

    c.bench_function("parse+decide every capture", |b| {
        b.iter(|| {
            for t in &texts {
                if let Ok(f) = Facts::from_json(t) {
                    std::hint::black_box(decide(&registry, &f, &ctx));
                }
            }
        })
    });
    c.bench_function("decide every capture (pre-parsed)", |b| {
        b.iter(|| {
            for f in &parsed {
                std::hint::black_box(decide(&registry, f, &ctx));
            }
        })
    });
    c.bench_function("build the builtin registry", |b| {
        b.iter_batched(|| (), |()| Registry::builtin(), BatchSize::SmallInput)
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
