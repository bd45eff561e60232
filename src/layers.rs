//! The layering rules of docs/architecture.md ("Layers: who may call whom"), checked against the
//! source: every `crate::` path in a top-level module may name only modules on lower lines of
//! that list, and no two files reach each other through `crate::`, `super::` or `self::` paths.
//! Host tests only: this reads the source tree, it is not part of el2visor.

#![cfg(test)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The layers, bottom first, from the fenced block after `<!-- layers: top first -->`.
fn layers() -> Vec<Vec<String>> {
    let doc = std::fs::read_to_string(root().join("docs/architecture.md")).expect("docs/architecture.md");
    let start = doc.find("<!-- layers: top first -->").expect("the layers marker in docs/architecture.md");
    let end = doc[start..].find("<!-- /layers -->").expect("the end of the layers block") + start;
    let mut out: Vec<Vec<String>> = doc[start..end]
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with("```") && !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect();
    out.reverse();
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The source without comments (line, doc and block comments) and string literals, so that
/// only code is read.
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every path that starts with `prefix` (`crate`, `super`, `self`), as its segments after the
/// prefix; `prefix::{a::b, c}` gives each member of the group.
fn paths(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let pat = format!("{prefix}::");
    let mut at = 0;
    while let Some(pos) = code[at..].find(&pat) {
        let start = at + pos;
        at = start + pat.len();
        if start > 0 && code[..start].chars().next_back().is_some_and(|c| is_ident(c) || c == '$' || c == ':') {
            continue;
        }
        let rest = &code[at..];
        if let Some(group) = rest.strip_prefix('{') {
            let close = group.find('}').unwrap_or(group.len());
            for member in group[..close].split(',') {
                let segs: Vec<String> = member.trim().split("::").map(|s| s.trim().to_string()).filter(|s| !s.is_empty() && s.chars().all(is_ident)).collect();
                if !segs.is_empty() {
                    out.push(segs);
                }
            }
        } else {
            let mut segs = Vec::new();
            let mut s = rest;
            loop {
                let len = s.find(|c: char| !is_ident(c)).unwrap_or(s.len());
                if len == 0 {
                    break;
                }
                segs.push(s[..len].to_string());
                s = &s[len..];
                match s.strip_prefix("::") {
                    Some(r) => s = r,
                    None => break,
                }
            }
            out.push(segs);
        }
    }
    out
}

/// A file's module path: src/gic/virt.rs is ["gic", "virt"], src/gic/mod.rs is ["gic"].
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap();
    let mut segs: Vec<String> = rel.iter().map(|s| s.to_string_lossy().into_owned()).collect();
    let last = segs.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" && stem != "main" {
        segs.push(stem.to_string());
    }
    segs
}

struct Tree {
    files: Vec<(PathBuf, Vec<String>, String)>,
}

fn tree() -> Tree {
    let src = root().join("src");
    let mut paths = Vec::new();
    rust_files(&src, &mut paths);
    paths.sort();
    let files = paths
        .into_iter()
        .map(|p| {
            let m = module_path(&src, &p);
            let code = code_only(&std::fs::read_to_string(&p).unwrap());
            (p, m, code)
        })
        .collect();
    Tree { files }
}

#[test]
fn modules_use_only_lower_layers() {
    let layers = layers();
    let level: BTreeMap<&str, usize> =
        layers.iter().enumerate().flat_map(|(i, l)| l.iter().map(move |m| (m.as_str(), i))).collect();
    let t = tree();
    let mut problems = Vec::new();
    for (file, module, code) in &t.files {
        let Some(top) = module.first() else { continue };
        if top == "layers" {
            continue;
        }
        let Some(&mine) = level.get(top.as_str()) else {
            problems.push(format!("{}: module `{top}` is not in docs/architecture.md's layer list", file.display()));
            continue;
        };
        for p in paths(code, "crate") {
            let Some(&theirs) = level.get(p[0].as_str()) else { continue };
            if p[0] != *top && theirs >= mine {
                problems.push(format!("{}: `{top}` uses `crate::{}`, which is not below it", file.display(), p.join("::")));
            }
        }
    }
    assert!(problems.is_empty(), "layering violations:\n{}", problems.join("\n"));
}

#[test]
fn no_file_uses_a_file_that_uses_it_back() {
    let t = tree();
    let by_module: BTreeMap<&[String], usize> = t.files.iter().enumerate().map(|(i, (_, m, _))| (m.as_slice(), i)).collect();
    // The file a path (from the crate root) lands in: its longest prefix that is a file's module.
    let resolve = |segs: &[String]| -> Option<usize> { (1..=segs.len()).rev().find_map(|n| by_module.get(&segs[..n]).copied()) };
    let mut edges: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); t.files.len()];
    for (i, (_, module, code)) in t.files.iter().enumerate() {
        // `self` is the file's own module; `super` is its parent.
        let base_self: Vec<String> = module.clone();
        let base_super: Vec<String> = module[..module.len().saturating_sub(1)].to_vec();
        let mut targets = Vec::new();
        for p in paths(code, "crate") {
            targets.push(p);
        }
        for p in paths(code, "self") {
            targets.push(base_self.iter().cloned().chain(p).collect());
        }
        for p in paths(code, "super") {
            targets.push(base_super.iter().cloned().chain(p).collect());
        }
        for segs in targets {
            if let Some(j) = resolve(&segs) {
                // A child naming its ancestors' module files (mod.rs) for shared types is the
                // normal shape of a module; only edges between files that are not ancestors of
                // each other can form the cycles this test is about.
                let (a, b) = (&t.files[i].1, &t.files[j].1);
                if j != i && !b.starts_with(a) && !a.starts_with(b) {
                    edges[i].insert(j);
                }
            }
        }
    }
    // Any cycle shows up as a back edge in a depth-first search.
    let mut state = vec![0u8; t.files.len()];
    let mut stack = Vec::new();
    let mut cycles = Vec::new();
    fn dfs(n: usize, edges: &[BTreeSet<usize>], state: &mut [u8], stack: &mut Vec<usize>, cycles: &mut Vec<Vec<usize>>) {
        state[n] = 1;
        stack.push(n);
        for &m in &edges[n] {
            if state[m] == 1 {
                let from = stack.iter().position(|&x| x == m).unwrap();
                cycles.push(stack[from..].to_vec());
            } else if state[m] == 0 {
                dfs(m, edges, state, stack, cycles);
            }
        }
        stack.pop();
        state[n] = 2;
    }
    for n in 0..t.files.len() {
        if state[n] == 0 {
            dfs(n, &edges, &mut state, &mut stack, &mut cycles);
        }
    }
    let show = |c: &Vec<usize>| c.iter().map(|&i| t.files[i].0.strip_prefix(root()).unwrap().display().to_string()).collect::<Vec<_>>().join(" -> ");
    assert!(cycles.is_empty(), "file cycles:\n{}", cycles.iter().map(show).collect::<Vec<_>>().join("\n"));
}

#[test]
fn the_checker_sees_paths_and_skips_comments() {
    let code = code_only("use crate::{a::b, c};\n// crate::d\nlet x = crate::e::f(\"crate::g\"); /* crate::h */");
    let p = paths(&code, "crate");
    assert_eq!(p, vec![vec!["a", "b"], vec!["c"], vec!["e", "f"]]);
    assert_eq!(paths("$crate::logging::x", "crate"), Vec::<Vec<String>>::new());
    assert_eq!(layers().last().unwrap(), &vec!["boot".to_string()]);
}
