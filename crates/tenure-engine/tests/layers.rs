//! The engine's files form layers: no file imports one that imports it, directly or through
//! others. `lib.rs` is the top (the `Engine` facade); a file that names something of the crate
//! root (`crate::Inner`) would import `lib.rs`, which imports every file, so each names the
//! file that defines what it uses (`crate::context::Inner`).
//!
//! Read from the sources: every `crate::` path outside comments is an edge from its file to
//! the module it names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The modules each file of `src/` names through `crate::` paths, by file stem.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(&src).expect("src/ lists") {
        let path = entry.expect("a directory entry").path();
        if path.extension().is_some_and(|e| e == "rs") {
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            files.insert(
                stem,
                std::fs::read_to_string(&path).expect("a source file reads"),
            );
        }
    }
    let modules: BTreeSet<String> = files.keys().filter(|m| *m != "lib").cloned().collect();
    let mut graph = BTreeMap::new();
    for (file, text) in &files {
        let mut named = BTreeSet::new();
        let code: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect();
        let code = code.join("\n");
        if file == "lib" {
            for line in code.lines() {
                let line = line.trim_start().trim_start_matches("pub ");
                if let Some(m) = line.strip_prefix("mod ") {
                    named.insert(m.trim_end_matches(';').trim().to_string());
                }
            }
        }
        let mut rest = code.as_str();
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            for first in first_segments(rest) {
                // A name that is not a module is an item of the crate root: `lib.rs`.
                named.insert(if modules.contains(&first) {
                    first
                } else {
                    "lib".to_string()
                });
            }
        }
        named.remove(file);
        graph.insert(file.clone(), named);
    }
    graph
}

/// The first path segment of each path a `crate::` is followed by: one, or each of a
/// `{a, b::c, d}` group.
fn first_segments(after: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    if !after.starts_with('{') {
        return vec![ident(after)];
    }
    let mut depth = 0;
    let mut parts = Vec::new();
    let mut start = 1;
    for (i, c) in after.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    parts.push(ident(&after[start..i]));
                    break;
                }
            }
            ',' if depth == 1 => {
                parts.push(ident(&after[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.into_iter().filter(|p| !p.is_empty()).collect()
}

/// A path of imports from `from` back to itself, if there is one.
fn cycle_through(graph: &BTreeMap<String, BTreeSet<String>>, from: &str) -> Option<Vec<String>> {
    let mut stack = vec![vec![from.to_string()]];
    let mut seen = BTreeSet::new();
    while let Some(path) = stack.pop() {
        let last = path.last().unwrap();
        for next in graph.get(last).into_iter().flatten() {
            if next == from {
                let mut cycle = path.clone();
                cycle.push(from.to_string());
                return Some(cycle);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push(longer);
            }
        }
    }
    None
}

#[test]
fn no_engine_file_imports_one_that_imports_it() {
    let graph = imports();
    assert!(
        graph.len() > 10,
        "the engine's files were not found: {graph:?}"
    );
    // The reading sees the imports that are there: the facade names the loops, the planner
    // names the approval gate.
    assert!(graph["lib"].contains("worker"), "{:?}", graph["lib"]);
    assert!(
        graph["planning"].contains("gates"),
        "{:?}",
        graph["planning"]
    );
    let cycles: Vec<String> = graph
        .keys()
        .filter_map(|file| cycle_through(&graph, file))
        .map(|c| c.join(" -> "))
        .collect();
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_reading_finds_a_cycle_when_there_is_one() {
    let mut graph = BTreeMap::new();
    graph.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    graph.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
    graph.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    graph.insert("d".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(
        cycle_through(&graph, "a").unwrap(),
        ["a", "b", "c", "a"].map(String::from)
    );
    assert_eq!(cycle_through(&graph, "d"), None);
    assert_eq!(
        first_segments("{context::Inner, error::{EngineError, Result}, facts};"),
        ["context", "error", "facts"].map(String::from)
    );
    assert_eq!(first_segments("planning::plan_run(x)"), ["planning"]);
}
