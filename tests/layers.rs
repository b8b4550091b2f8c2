//! The layer rule of `docs/architecture.md`, checked: a file under `src/` may name (through a
//! `crate::…` path) only modules of its own layer or of the layers above it in that document's
//! table. The table is read from the document itself, so the document and this check cannot
//! drift apart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One row of the layer table: its name and the paths (relative to `src/`) it holds.
#[derive(Debug)]
struct Layer {
    name: String,
    paths: Vec<String>,
}

/// The rows of the first Markdown table under `## Layers` whose header starts `| layer |`.
fn layer_table(doc: &str) -> Vec<Layer> {
    let mut rows = Vec::new();
    let mut in_section = false;
    let mut in_table = false;
    for line in doc.lines() {
        if line.starts_with("## ") {
            if in_table {
                break;
            }
            in_section = line.trim() == "## Layers";
            continue;
        }
        if !in_section {
            continue;
        }
        let t = line.trim();
        if !t.starts_with('|') {
            if in_table {
                break;
            }
            continue;
        }
        let cells: Vec<&str> = t.trim_matches('|').split('|').map(str::trim).collect();
        if !in_table {
            in_table = cells.first() == Some(&"layer");
            continue;
        }
        if cells.iter().all(|c| c.chars().all(|ch| ch == '-' || ch == ':')) {
            continue;
        }
        let paths: Vec<String> = cells[1]
            .split('`')
            .skip(1)
            .step_by(2)
            .map(|p| p.trim_end_matches('/').to_string())
            .collect();
        rows.push(Layer {
            name: cells[0].to_string(),
            paths,
        });
    }
    rows
}

/// The row holding `rel` (a path under `src/`): the longest listed path that is `rel` itself
/// or a folder containing it.
fn layer_of(layers: &[Layer], rel: &str) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None;
    for (i, l) in layers.iter().enumerate() {
        for p in &l.paths {
            let hit = rel == p || rel.starts_with(&format!("{p}/"));
            if hit && best.is_none_or(|(_, len)| p.len() > len) {
                best = Some((i, p.len()));
            }
        }
    }
    best.map(|(i, _)| i)
}

/// The layer a top-level module `m` of the crate lives in (`m.rs` or `m/`).
fn layer_of_module(layers: &[Layer], m: &str) -> Option<usize> {
    layer_of(layers, &format!("{m}.rs")).or_else(|| layer_of(layers, m))
}

/// The first segment of every `crate::` path in `src` (comments left out), with its line.
/// `crate::{a::b, c}` gives `a` and `c`.
fn crate_paths(src: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in src.lines().enumerate() {
        let code = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let before = rest[..i].chars().next_back();
            rest = &rest[i + "crate::".len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue; // `osdkit_crate::`, not ours
            }
            if let Some(group) = rest.strip_prefix('{') {
                // Top-level items of the group; nested braces belong to their item.
                let (mut depth, mut item) = (0usize, String::new());
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            out.push((n + 1, first_segment(&item)));
                            item.clear();
                            continue;
                        }
                        _ => {}
                    }
                    item.push(c);
                }
                out.push((n + 1, first_segment(&item)));
            } else {
                out.push((n + 1, first_segment(rest)));
            }
        }
    }
    out.retain(|(_, s)| !s.is_empty());
    out
}

fn first_segment(s: &str) -> String {
    s.trim()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// What `lib.rs` re-exports at the crate root (`pub use context::Context;`): name → module.
fn root_reexports(lib: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for line in lib.lines() {
        let Some(rest) = line.trim().strip_prefix("pub use ") else {
            continue;
        };
        let rest = rest.trim_end_matches(';');
        let module = first_segment(rest);
        if let Some(i) = rest.find('{') {
            for name in rest[i + 1..].trim_end_matches('}').split(',') {
                m.insert(name.trim().to_string(), module.clone());
            }
        } else if let Some(name) = rest.rsplit("::").next() {
            m.insert(name.trim().to_string(), module);
        }
    }
    m
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every wrong-way path under `src`, as `file:line: ...`; and every file no row holds.
fn violations(src: &Path, layers: &[Layer]) -> Vec<String> {
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap_or_default();
    let reexports = root_reexports(&lib);
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut bad = Vec::new();
    for f in files {
        let rel = f
            .strip_prefix(src)
            .expect("under src")
            .to_string_lossy()
            .replace('\\', "/");
        if rel == "lib.rs" {
            continue; // the crate root declares every module
        }
        let Some(mine) = layer_of(layers, &rel) else {
            bad.push(format!("{rel}: in no layer of the table"));
            continue;
        };
        let text = std::fs::read_to_string(&f).expect("readable source");
        for (line, seg) in crate_paths(&text) {
            let module = reexports.get(&seg).cloned().unwrap_or(seg.clone());
            let Some(theirs) = layer_of_module(layers, &module) else {
                // Items defined in lib.rs itself (`crate::VERSION`) belong to no layer.
                if lib.contains(&format!("pub mod {module};")) {
                    bad.push(format!("{rel}:{line}: crate::{seg}: module `{module}` is in no layer"));
                }
                continue;
            };
            if theirs > mine {
                bad.push(format!(
                    "{rel}:{line}: crate::{seg} — layer `{}` uses `{}`, which is below it",
                    layers[mine].name, layers[theirs].name
                ));
            }
        }
    }
    bad
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn real_table() -> Vec<Layer> {
    let doc = std::fs::read_to_string(repo().join("docs/architecture.md")).expect("docs/architecture.md");
    let layers = layer_table(&doc);
    assert!(
        layers.len() >= 8,
        "the layer table of docs/architecture.md was not found: {layers:?}"
    );
    layers
}

#[test]
fn no_crate_path_crosses_a_layer_the_wrong_way() {
    let bad = violations(&repo().join("src"), &real_table());
    assert!(
        bad.is_empty(),
        "layer rule of docs/architecture.md broken:\n{}",
        bad.join("\n")
    );
}

#[test]
fn every_listed_path_exists_and_every_module_is_listed() {
    let layers = real_table();
    let src = repo().join("src");
    for l in &layers {
        for p in &l.paths {
            assert!(
                src.join(p).exists(),
                "layer `{}` lists `{p}`, which is not under src/",
                l.name
            );
        }
    }
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    for line in lib.lines() {
        if let Some(m) = line.trim().strip_prefix("pub mod ") {
            let m = m.trim_end_matches(';');
            assert!(
                layer_of_module(&layers, m).is_some(),
                "module `{m}` is in no layer of docs/architecture.md"
            );
        }
    }
}

/// The checker itself: on a small tree, a wrong-way import is reported (with its line) and a
/// right-way one is not, grouped and nested `use` forms and re-exports included.
#[test]
fn a_wrong_way_import_is_caught() {
    let doc = "# x\n\n## Layers\n\n| layer | paths under `src/` | what |\n|---|---|---|\n\
               | common | `common/` | a |\n| runtime | `context.rs` | b |\n| daemons | `osd/` | c |\n\n## Next\n";
    let layers = layer_table(doc);
    assert_eq!(layers.len(), 3);
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path();
    std::fs::create_dir_all(src.join("common")).unwrap();
    std::fs::create_dir_all(src.join("osd")).unwrap();
    std::fs::write(
        src.join("lib.rs"),
        "pub mod common;\npub mod context;\npub mod osd;\npub use context::Context;\n",
    )
    .unwrap();
    std::fs::write(src.join("context.rs"), "use crate::common::log;\n").unwrap();
    std::fs::write(src.join("osd/mod.rs"), "use crate::{common::{a, b}, Context};\n").unwrap();
    assert!(violations(src, &layers).is_empty(), "{:?}", violations(src, &layers));

    // Upward: common names the OSD (grouped), and the context through a re-export.
    std::fs::write(
        src.join("common/log.rs"),
        "// crate::osd in a comment does not count\nuse crate::{error, osd::Osd};\nfn f() { crate::Context::new(); }\n",
    )
    .unwrap();
    let bad = violations(src, &layers);
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert!(bad[0].starts_with("common/log.rs:2: crate::osd"), "{bad:?}");
    assert!(bad[1].starts_with("common/log.rs:3: crate::Context"), "{bad:?}");

    // A file no row holds is reported too.
    std::fs::write(src.join("stray.rs"), "").unwrap();
    assert!(violations(src, &layers)
        .iter()
        .any(|v| v.starts_with("stray.rs: in no layer")));
}
