//! Every crate's modules import each other in one direction: no cycle among the top-level
//! modules of any crate of the workspace, read from the source.
//!
//! A cycle is how a crate slowly turns into one tangle (the route needing the registry needing
//! the runtimes needing the route; the lifecycle calling the relay built on it), so it is
//! checked here rather than by review. Every `crate::<module>` path in a module's files
//! (imports, paths in code, and doc links) is an edge from that module to `<module>`, and so is
//! `super::<module>` in a file at the top of `src/` (whose parent is the crate root);
//! `super::` inside a module's own folder is not an edge. A path through the crate root's
//! re-exports (`crate::Item`, where the root has `pub use module::Item`) is an edge to that
//! module. `lib.rs` (or `main.rs`) is the crate root and re-exports everything, so it is not a
//! module. A file's `#[cfg(test)]` part is not read: tests may use anything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates")
}

/// Every crate's `src` folder, with its root file (`lib.rs`, else `main.rs`).
fn crate_sources() -> Vec<(String, PathBuf, PathBuf)> {
    let dir = crates_dir();
    let mut out = Vec::new();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        let src = path.join("src");
        let root = ["lib.rs", "main.rs"]
            .iter()
            .map(|r| src.join(r))
            .find(|r| r.is_file());
        if let (Some(root), Some(name)) = (root, path.file_name().and_then(|n| n.to_str())) {
            out.push((name.to_string(), src, root));
        }
    }
    out.sort();
    out
}

/// A file's text without its `#[cfg(test)]` part (test modules come last in our files).
fn without_tests(text: &str) -> &str {
    text.find("#[cfg(test)]").map_or(text, |at| &text[..at])
}

/// The crate root's re-exports: item name → the top-level module it comes from, read from
/// `pub use module::Item;` and `pub use module::{A, B, ...};` lines.
fn reexports(root_text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let text = without_tests(root_text);
    for (at, _) in text.match_indices("pub use ") {
        let rest = &text[at + "pub use ".len()..];
        let Some(end) = rest.find(';') else { continue };
        let path = &rest[..end];
        let Some((module, items)) = path.split_once("::") else {
            continue;
        };
        let module = module.trim();
        if module.is_empty() || !module.chars().all(is_ident) {
            continue;
        }
        let items = items.trim().trim_start_matches('{').trim_end_matches('}');
        for item in items.split(',') {
            let name: String = item
                .rsplit("::")
                .next()
                .unwrap_or_default()
                .trim()
                .chars()
                .take_while(|c| is_ident(*c))
                .collect();
            if !name.is_empty() && name != "self" {
                out.insert(name, module.to_string());
            }
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to: `facts/parse.rs` → `facts`, `route.rs` → `route`.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "lib" && name != "main").then(|| name.to_string())
}

/// Whether `file` sits at the top of `src/` (so its `super` is the crate root).
fn is_top_level(src: &Path, file: &Path) -> bool {
    file.parent() == Some(src)
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The modules a source text names as `crate::m` or inside `crate::{m, n::x, ...}`.
fn referenced_modules(text: &str) -> BTreeSet<String> {
    referenced_after(text, "crate::")
}

/// The names a source text puts right after `prefix` (`crate::`, `super::`), alone or in a
/// `{...}` group.
fn referenced_after(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (at, _) in text.match_indices(prefix) {
        // The prefix must start a path, not end another identifier (`my_crate::`).
        if text[..at].chars().next_back().is_some_and(is_ident) {
            continue;
        }
        let rest = &text[at + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level items of the group: the identifier before `::`, `,` or `}` at depth 0.
            let mut depth = 0usize;
            let mut start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && is_ident(c) => {
                        let name: String =
                            group[i..].chars().take_while(|c| is_ident(*c)).collect();
                        out.insert(name);
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name: String = rest.chars().take_while(|c| is_ident(*c)).collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// Module → the other modules it references.
fn module_graph(src: &Path, root: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let root_text =
        std::fs::read_to_string(root).unwrap_or_else(|e| panic!("{}: {e}", root.display()));
    let reexported = reexports(&root_text);
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeSet<String> = files.iter().filter_map(|f| module_of(src, f)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = modules
        .iter()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect();
    for file in &files {
        let Some(module) = module_of(src, file) else {
            continue;
        };
        let whole =
            std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let text = without_tests(&whole);
        let mut named = referenced_modules(text);
        if is_top_level(src, file) {
            named.extend(referenced_after(text, "super::"));
        }
        for name in named {
            let target = match reexported.get(&name) {
                Some(m) if !modules.contains(&name) => m.clone(),
                _ => name,
            };
            if target != module && modules.contains(&target) {
                graph.entry(module.clone()).or_default().insert(target);
            }
        }
    }
    graph
}

/// A cycle in the graph, as the list of modules along it, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, done, path) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut done, &mut Vec::new()))
}

#[test]
fn no_crate_has_an_import_cycle() {
    let crates = crate_sources();
    let names: Vec<&str> = crates.iter().map(|(n, _, _)| n.as_str()).collect();
    for expected in [
        "openshell-runtime",
        "openshell-transport",
        "openshell-driver",
        "openshell-sandbox",
        "openshell-engine",
        "openshell-runtime-cli",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} not found among {names:?}"
        );
    }
    let core = crates
        .iter()
        .find(|(n, _, _)| n == "openshell-runtime")
        .map(|(_, src, root)| module_graph(src, root))
        .unwrap_or_default();
    assert!(
        core.len() >= 8,
        "expected the core's modules, found {:?}",
        core.keys()
    );
    let mut cycles = Vec::new();
    for (name, src, root) in &crates {
        let graph = module_graph(src, root);
        if let Some(cycle) = find_cycle(&graph) {
            let edges: Vec<String> = graph
                .iter()
                .map(|(m, to)| {
                    format!(
                        "{m} -> {}",
                        to.iter().cloned().collect::<Vec<_>>().join(", ")
                    )
                })
                .collect();
            cycles.push(format!(
                "{name}: {}\n  edges:\n  {}",
                cycle.join(" -> "),
                edges.join("\n  ")
            ));
        }
    }
    assert!(
        cycles.is_empty(),
        "modules import each other in a cycle; move the shared items down to a lower module \
         (see docs/ARCHITECTURE.md):\n{}",
        cycles.join("\n")
    );
}

#[test]
fn the_reference_scanner_sees_every_form_of_path() {
    let text = "use crate::route::X;\nuse crate::{facts::{A, B}, evidence::Evidence, consts};\n\
                /// See [`crate::signals`].\nlet x = crate::error::RouteError::Foo; my_crate::nope;";
    let got: Vec<String> = referenced_modules(text).into_iter().collect();
    assert_eq!(
        got,
        ["consts", "error", "evidence", "facts", "route", "signals"]
    );
    let supers: Vec<String> = referenced_after("use super::{network, driver::X};", "super::")
        .into_iter()
        .collect();
    assert_eq!(supers, ["driver", "network"]);
    let root = "pub use probe::{probe_route, ProbeOptions};\npub use relay::Relay;\n\
                pub use openshell_driver::ErrorKind;\n#[cfg(test)]\npub use lifecycle::Hidden;";
    let map = reexports(root);
    assert_eq!(map.get("ProbeOptions").map(String::as_str), Some("probe"));
    assert_eq!(map.get("Relay").map(String::as_str), Some("relay"));
    assert_eq!(map.get("Hidden"), None);
    assert_eq!(without_tests("a\n#[cfg(test)]\nb"), "a\n");
    let mut cyclic = BTreeMap::new();
    cyclic.insert("route".to_string(), BTreeSet::from(["error".to_string()]));
    cyclic.insert(
        "error".to_string(),
        BTreeSet::from(["registry".to_string()]),
    );
    cyclic.insert(
        "registry".to_string(),
        BTreeSet::from(["route".to_string()]),
    );
    assert_eq!(
        find_cycle(&cyclic),
        Some(vec![
            "error".into(),
            "registry".into(),
            "route".into(),
            "error".into()
        ])
    );
}
