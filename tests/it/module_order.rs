//! The core's modules import each other in one direction: no cycle among the top-level modules
//! of `openshell-runtime`, read from the source.
//!
//! A cycle is how a pure policy crate slowly turns into one tangle (the route needing the
//! registry needing the runtimes needing the route), so it is checked here rather than by
//! review. Every `crate::<module>` path in a module's files (imports, paths in code, and doc
//! links) is an edge from that module to `<module>`; `super::` inside a module's own folder is
//! not an edge. `lib.rs` is the crate root and re-exports everything, so it is not a module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn core_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/openshell-runtime/src")
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
    (name != "lib").then(|| name.to_string())
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The modules a source text names as `crate::m` or inside `crate::{m, n::x, ...}`.
fn referenced_modules(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (at, _) in text.match_indices("crate::") {
        // `crate::` must start a path, not end another identifier (`my_crate::`).
        if text[..at].chars().next_back().is_some_and(is_ident) {
            continue;
        }
        let rest = &text[at + "crate::".len()..];
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
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
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
        let text =
            std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for target in referenced_modules(&text) {
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
fn the_core_modules_form_no_import_cycle() {
    let graph = module_graph(&core_src());
    assert!(
        graph.len() >= 8,
        "expected the core's modules, found {:?}",
        graph.keys()
    );
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
        panic!(
            "the modules of openshell-runtime import each other in a cycle: {}\n\
             move the shared items down to a lower module (see docs/ARCHITECTURE.md); edges:\n{}",
            cycle.join(" -> "),
            edges.join("\n")
        );
    }
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
