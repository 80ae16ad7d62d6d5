//! The captures bundled into the binary, so `matrix` shows the whole policy on any machine.

use include_dir::{include_dir, Dir};
use openshell_runtime::{
    decide, Decision, Facts, NetworkMode, Registry, RouteContext, RouteKind, RouteKindChoice,
};
use serde::Serialize;

static FIXTURES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../../tests/fixtures");

/// One row of the matrix.
#[derive(Debug, Serialize)]
pub(crate) struct Row {
    /// Fixture path under `tests/fixtures/`.
    pub(crate) capture: String,
    /// The network mode decided for.
    pub(crate) network_mode: NetworkMode,
    /// `bridge`, `host-network` or `relay` (the mode's kind when refused).
    pub(crate) route_kind: RouteKind,
    /// Recognised runtime.
    pub(crate) runtime: Option<String>,
    /// Container side.
    pub(crate) openshell_host: Option<String>,
    /// Host side.
    pub(crate) bind: Option<String>,
    /// Why there is no route.
    pub(crate) error: Option<String>,
    /// Whether the fixture's recorded expectation holds.
    pub(crate) as_expected: Option<bool>,
    /// The same capture decided for host-network sandboxes (same route kind), in one cell:
    /// `host-network <target>`, `relay <target>` or `refused`; `None` in a host-mode matrix.
    pub(crate) host_mode: Option<String>,
}

fn expected(value: &serde_json::Value, key: &str) -> Option<serde_json::Value> {
    value.pointer(&format!("/fixture/expect/{key}")).cloned()
}

fn collect<'a>(dir: &'a Dir<'a>, out: &mut Vec<&'a include_dir::File<'a>>) {
    out.extend(
        dir.files()
            .filter(|f| f.path().extension().is_some_and(|e| e == "json")),
    );
    for d in dir.dirs() {
        collect(d, out);
    }
}

/// Decides every bundled capture for `mode` and route kind `kind`. The captures record what a
/// bridge sandbox gets with `auto`, so only those rows are checked against them.
pub(crate) fn matrix(mode: NetworkMode, kind: RouteKindChoice) -> Vec<Row> {
    let ctx = RouteContext {
        network_mode: mode,
        ..RouteContext::default()
    };
    let registry = Registry::builtin();
    let mut files = Vec::new();
    collect(&FIXTURES, &mut files);
    files.sort_by_key(|f| f.path().to_path_buf());
    files
        .into_iter()
        .map(|f| {
            let capture = f.path().display().to_string();
            let parsed = f
                .contents_utf8()
                .ok_or_else(|| "not UTF-8".to_string())
                .and_then(|t| {
                    serde_json::from_str::<serde_json::Value>(t).map_err(|e| e.to_string())
                });
            let value = match parsed {
                Ok(v) => v,
                Err(e) => {
                    return Row {
                        capture,
                        network_mode: mode,
                        route_kind: mode.route_kind(),
                        runtime: None,
                        openshell_host: None,
                        bind: None,
                        error: Some(e),
                        as_expected: Some(false),
                        host_mode: None,
                    }
                }
            };
            match Facts::from_value(&value) {
                Ok(mut facts) => {
                    facts.overrides.route_kind = kind;
                    let d = decide(&registry, &facts, &ctx);
                    let mut row = row(capture, &d, &value, mode, kind);
                    if mode == NetworkMode::Bridge {
                        let host = RouteContext {
                            network_mode: NetworkMode::Host,
                            ..ctx
                        };
                        row.host_mode = Some(host_cell(&decide(&registry, &facts, &host)));
                    }
                    row
                }
                Err(e) => Row {
                    capture,
                    network_mode: mode,
                    route_kind: mode.route_kind(),
                    runtime: None,
                    openshell_host: None,
                    bind: None,
                    error: Some(e.to_string()),
                    as_expected: Some(false),
                    host_mode: None,
                },
            }
        })
        .collect()
}

fn row(
    capture: String,
    d: &Decision,
    value: &serde_json::Value,
    mode: NetworkMode,
    kind: RouteKindChoice,
) -> Row {
    let route = d.route.as_ref().ok();
    let runtime = d.runtime_id().map(str::to_string);
    let openshell_host = route.map(|r| r.openshell_host.to_string());
    let bind = route.and_then(|r| r.bind).map(|b| b.to_string());
    let recorded = match (mode, kind) {
        (NetworkMode::Bridge, RouteKindChoice::Auto) => expected(value, "runtime"),
        _ => None,
    };
    let as_expected = recorded.map(|want| {
        let same = |got: &Option<String>, key: &str| match expected(value, key) {
            None => true,
            Some(serde_json::Value::Null) => got.is_none(),
            Some(w) => w.as_str() == got.as_deref(),
        };
        want.as_str() == runtime.as_deref()
            && same(&openshell_host, "openshell_host")
            && same(&bind, "bind")
    });
    Row {
        capture,
        network_mode: mode,
        route_kind: route.map_or(mode.route_kind(), |r| r.route_kind),
        runtime,
        openshell_host,
        bind,
        error: d.route.as_ref().err().map(ToString::to_string),
        as_expected,
        host_mode: None,
    }
}

/// A host-mode decision in one cell: its kind and target, or `refused`.
fn host_cell(d: &Decision) -> String {
    match &d.route {
        Ok(r) => {
            let kind = match r.route_kind {
                RouteKind::Relay => "relay",
                _ => "host-network",
            };
            format!("{kind} {}", r.openshell_host)
        }
        Err(_) => "refused".into(),
    }
}
