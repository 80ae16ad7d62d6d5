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
