//! Shared test support: the bundled captures under `tests/fixtures/`.

use std::path::{Path, PathBuf};

/// One capture file with its recorded expectation.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// Path relative to `tests/fixtures/`.
    pub name: String,
    /// The folder it sits in (a runtime id).
    pub folder: String,
    /// The whole document.
    pub doc: serde_json::Value,
}

impl Fixture {
    /// `fixture.expect.<key>`; `None` when the key is absent.
    pub fn expect(&self, key: &str) -> Option<&serde_json::Value> {
        self.doc.pointer(&format!("/fixture/expect/{key}"))
    }

    /// `fixture.sources[].url`.
    pub fn source_urls(&self) -> Vec<&str> {
        self.doc
            .pointer("/fixture/sources")
            .and_then(|s| s.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.get("url").and_then(|u| u.as_str()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The fixtures folder.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Every fixture, sorted by name. Panics (failing the test) on unreadable or non-JSON files.
pub fn fixtures() -> Vec<Fixture> {
    let mut out = Vec::new();
    let root = fixtures_dir();
    let Ok(folders) = std::fs::read_dir(&root) else {
        panic!("cannot read {}", root.display());
    };
    for folder in folders.flatten().filter(|e| e.path().is_dir()) {
        let folder_name = folder.file_name().to_string_lossy().into_owned();
        let Ok(files) = std::fs::read_dir(folder.path()) else {
            panic!("cannot read {}", folder.path().display());
        };
        for file in files.flatten() {
            let path = file.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            let doc = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
            out.push(Fixture {
                name: format!("{folder_name}/{}", file.file_name().to_string_lossy()),
                folder: folder_name.clone(),
                doc,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

pub mod flood;
pub mod live;
pub mod replay;

/// [`openshell_runtime::decide`] with `route_kind` `direct` and LAN binds allowed: the direct
/// policy as it was before the relay (issue 13), which the older policy tests pin. Tests of the
/// order of preference call `openshell_runtime::decide` itself.
pub fn decide_direct(
    registry: &openshell_runtime::Registry,
    facts: &openshell_runtime::Facts,
    ctx: &openshell_runtime::RouteContext,
) -> openshell_runtime::Decision {
    let mut facts = facts.clone();
    facts.overrides.route_kind = openshell_runtime::RouteKindChoice::Direct;
    facts.overrides.allow_lan = true;
    openshell_runtime::decide(registry, &facts, ctx)
}
