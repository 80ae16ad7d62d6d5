//! Every bundled capture through the registry and the policy, checked against its recorded
//! expectation; and every runtime id covered by a detector and by captures.

use std::collections::BTreeMap;

use openshell_runtime::{decide, Facts, Registry, RouteContext, RuntimeId};
use openshell_tests::{fixtures, Fixture};

/// What the policy decided, in the fixture's own terms.
fn outcome(f: &Fixture) -> Result<BTreeMap<&'static str, serde_json::Value>, String> {
    let facts = Facts::from_value(&f.doc).map_err(|e| e.to_string())?;
    let d = decide(&Registry::builtin(), &facts, &RouteContext::default());
    let route = d.route.as_ref().ok();
    let s = |v: Option<String>| v.map_or(serde_json::Value::Null, serde_json::Value::String);
    Ok(BTreeMap::from([
        ("runtime", s(d.runtime_id().map(str::to_string))),
        (
            "openshell_host",
            s(route.map(|r| r.openshell_host.to_string())),
        ),
        ("bind", s(route.and_then(|r| r.bind).map(|b| b.to_string()))),
    ]))
}

#[test]
fn every_capture_decides_as_recorded() {
    let all = fixtures();
    assert!(!all.is_empty(), "no fixtures found");
    let mut failures = Vec::new();
    for f in &all {
        let got = match outcome(f) {
            Ok(got) => got,
            Err(e) => {
                failures.push(format!("{}: facts refused: {e}", f.name));
                continue;
            }
        };
        for (key, value) in &got {
            match f.expect(key) {
                None => failures.push(format!(
                    "{}: fixture.expect.{key} is missing (got {value})",
                    f.name
                )),
                Some(want) if want != value => {
                    failures.push(format!("{}: {key}: expected {want}, got {value}", f.name))
                }
                Some(_) => {}
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} captures differ:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}

#[test]
fn every_capture_cites_its_source() {
    for f in fixtures() {
        let urls = f.source_urls();
        assert!(!urls.is_empty(), "{}: fixture.sources has no url", f.name);
        for u in urls {
            assert!(
                u.starts_with("https://") || u == "local capture",
                "{}: source {u:?} is neither a public URL nor a local capture",
                f.name
            );
        }
    }
}

#[test]
fn every_runtime_id_has_a_detector_and_two_public_captures() {
    let registry = Registry::builtin();
    let names = registry.names();
    let all = fixtures();
    for id in RuntimeId::ALL {
        assert!(
            names.contains(&id.as_str()),
            "runtime {id} has no detector in the registry"
        );
        let mine: Vec<_> = all
            .iter()
            .filter(|f| f.expect("runtime").and_then(|r| r.as_str()) == Some(id.as_str()))
            .collect();
        // At least two captures from public sources per runtime (captures taken on this
        // machine come on top and do not count).
        let public = mine
            .iter()
            .filter(|f| f.source_urls().iter().any(|u| u.starts_with("https://")))
            .count();
        assert!(
            public >= 2,
            "runtime {id} has {public} public capture(s) in tests/fixtures/{id}/, needs 2"
        );
        assert!(
            mine.iter().all(|f| f.folder == id.as_str()),
            "captures of {id} must sit in tests/fixtures/{id}/"
        );
    }
    assert_eq!(
        names.len(),
        RuntimeId::ALL.len(),
        "registry holds detectors without a RuntimeId"
    );
}

/// Every runtime file in the core's `src/runtime/` is a line of the runtime table (so a file
/// left out of `runtimes!` fails here rather than silently never being compiled), and every id
/// has its file, its row in docs/runtimes.md and its fixtures folder.
#[test]
fn every_runtime_file_is_in_the_table_with_docs_and_fixtures() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // Files of runtime/ that are not one runtime: the table itself and the embedder's wrapper.
    const NOT_A_RUNTIME: [&str; 2] = ["mod", "external"];
    let dir = root.join("crates/openshell-runtime/src/runtime");
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut files: Vec<String> = entries
        .map(|e| e.unwrap_or_else(|e| panic!("{e}")).path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .filter_map(|p| Some(p.file_stem()?.to_str()?.to_string()))
        .filter(|stem| !NOT_A_RUNTIME.contains(&stem.as_str()))
        .collect();
    files.sort();
    let mut ids: Vec<String> = RuntimeId::ALL
        .iter()
        .map(|id| id.as_str().replace('-', "_"))
        .collect();
    ids.sort();
    assert_eq!(
        files, ids,
        "src/runtime/<file>.rs and the runtimes! table in src/runtime/mod.rs differ: each runtime \
         file needs its line `file::Type = \"id\"` (id = file name with '-' for '_'), and each \
         line its file"
    );
    let docs = std::fs::read_to_string(root.join("docs/runtimes.md"))
        .unwrap_or_else(|e| panic!("docs/runtimes.md: {e}"));
    for id in RuntimeId::ALL {
        assert!(
            docs.contains(&format!("\n| `{id}` |")),
            "docs/runtimes.md has no matrix row for runtime {id}"
        );
        let fixtures = root.join("tests/fixtures").join(id.as_str());
        assert!(
            fixtures.is_dir(),
            "runtime {id} has no fixtures folder {}",
            fixtures.display()
        );
    }
}

/// The order of preference over every capture (issue 13): a capture whose direct route was
/// refused for lack of a route, or needs a LAN-facing bind, now decides the relay; a capture
/// with a direct route on loopback or a bridge keeps it, whatever `auto` adds.
#[test]
fn every_capture_prefers_direct_then_relay() {
    use openshell_runtime::{Exposure, HostTarget, RouteError, RouteKind, RouteKindChoice};
    let mut failures = Vec::new();
    for f in fixtures() {
        let Ok(facts) = Facts::from_value(&f.doc) else {
            continue;
        };
        let ctx = RouteContext::default();
        let with = |kind| {
            let mut facts = facts.clone();
            facts.overrides.route_kind = kind;
            decide(&Registry::builtin(), &facts, &ctx).route
        };
        let direct = with(RouteKindChoice::Direct);
        let auto = with(RouteKindChoice::Auto);
        let relayed = auto.as_ref().is_ok_and(|r| {
            r.route_kind == RouteKind::Relay
                && r.openshell_host == HostTarget::Relay
                && r.bind == Some("127.0.0.1".parse().unwrap_or_else(|_| unreachable!()))
                && r.exposure == Exposure::Loopback
        });
        let ok = match &direct {
            Err(
                RouteError::NoSafeRoute { .. }
                | RouteError::MissingFact { .. }
                | RouteError::Undetected { .. }
                | RouteError::LanNotAllowed { .. },
            ) => relayed,
            Ok(d) if matches!(d.exposure, Exposure::Loopback | Exposure::Bridge) => {
                auto.as_ref().ok() == Some(d)
            }
            Ok(d) => auto.as_ref().ok() == Some(d) || relayed,
            // An operator's conflicting override stays an error.
            Err(e) => auto.as_ref().err() == Some(e),
        };
        if !ok {
            failures.push(format!(
                "{}: direct {:?} but auto {:?}",
                f.name,
                direct.as_ref().map(|r| (r.openshell_host, r.bind)),
                auto.as_ref()
                    .map(|r| (r.route_kind, r.openshell_host, r.bind))
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Where the relay cannot help, the policy keeps refusing; `route_kind` narrows the choice;
/// the relay is the last fallback.
#[test]
fn the_relay_is_chosen_only_where_it_can_serve() {
    use openshell_runtime::{NetworkMode, RouteError, RouteKind, RouteKindChoice};
    let all = fixtures();
    let doc = |name: &str| {
        let f = all
            .iter()
            .find(|f| f.name.contains(name))
            .unwrap_or_else(|| panic!("no fixture {name}"));
        Facts::from_value(&f.doc).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let bridge = RouteContext::default();
    // No direct route: auto relays, direct refuses as before.
    let mut refused = doc("podman-rootless-2.1.1-linuxmint20-slirp4netns");
    let d = decide(&Registry::builtin(), &refused, &bridge);
    let r = d.route.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.route_kind, RouteKind::Relay);
    assert!(
        r.notes
            .iter()
            .any(|n| n.starts_with("direct route refused: podman-rootless")),
        "{r:?}"
    );
    refused.overrides.route_kind = RouteKindChoice::Direct;
    let d = decide(&Registry::builtin(), &refused, &bridge);
    assert!(
        matches!(
            d.route,
            Err(RouteError::NoSafeRoute { .. } | RouteError::MissingFact { .. })
        ),
        "{d:?}"
    );
    assert!(d.fallbacks.iter().all(|f| f.route_kind != RouteKind::Relay));
    // Host networking where the engine's host namespace is the gateway's own (rootless Podman
    // shares the user's): 127.0.0.1 is the direct route, and a forced relay there would listen
    // on the gateway's own port, so it is refused.
    refused.overrides.route_kind = RouteKindChoice::Relay;
    let host = RouteContext {
        network_mode: NetworkMode::Host,
        ..RouteContext::default()
    };
    let d = decide(&Registry::builtin(), &refused, &host);
    assert!(
        matches!(d.route, Err(RouteError::RelayUnavailable { .. })),
        "{d:?}"
    );
    // The operator's own address conflicts with a forced relay.
    let mut native = doc("native-docker/debian12-docker.io-20.10.24-this-machine");
    native.overrides.route_kind = RouteKindChoice::Relay;
    native.overrides.host_gateway_ip =
        Some("172.17.0.1".parse().unwrap_or_else(|_| unreachable!()));
    let d = decide(&Registry::builtin(), &native, &bridge);
    assert!(
        matches!(d.route, Err(RouteError::RelayUnavailable { .. })),
        "{d:?}"
    );
    // A direct bridge route stays, and the relay is its last fallback.
    native.overrides = Default::default();
    let d = decide(&Registry::builtin(), &native, &bridge);
    assert_eq!(
        d.route.as_ref().map(|r| r.route_kind),
        Ok(RouteKind::Bridge)
    );
    assert_eq!(
        d.fallbacks.last().map(|f| f.route_kind),
        Some(RouteKind::Relay)
    );
    // A LAN-facing bind needs allow_lan: auto relays, direct refuses, allowed it binds.
    let mut lan = doc("debian12-docker.io-20.10.24-rootless-this-machine");
    let d = decide(&Registry::builtin(), &lan, &bridge);
    assert_eq!(d.route.as_ref().map(|r| r.route_kind), Ok(RouteKind::Relay));
    lan.overrides.route_kind = RouteKindChoice::Direct;
    let d = decide(&Registry::builtin(), &lan, &bridge);
    assert!(
        matches!(d.route, Err(RouteError::LanNotAllowed { .. })),
        "{d:?}"
    );
    lan.overrides.allow_lan = true;
    let d = decide(&Registry::builtin(), &lan, &bridge);
    assert_eq!(
        d.route.as_ref().map(|r| r.route_kind),
        Ok(RouteKind::Bridge)
    );
}
