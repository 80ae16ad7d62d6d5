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
