//! `docs/qt-api.md` against the WIT package and Qt's member list: every name
//! in the table's WIT column exists in `wit/`, every row has a counterpart
//! or a reason, and every Qt member listed in `docs/qt-members.txt` has a row.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use wit_parser::{Resolve, TypeDefKind};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Every name the table may use: functions, methods (`server.listen`),
/// constructors (`server.constructor`), types, fields and cases
/// (`event.pong`); `net.`-prefixed for the `net` interface.
fn wit_names() -> BTreeSet<String> {
    let mut resolve = Resolve::default();
    let (package, _) = resolve.push_dir(root().join("wit")).expect("wit/ parses");
    let mut names = BTreeSet::new();
    for (_, iface) in resolve.interfaces.iter().filter(|(_, i)| i.package == Some(package)) {
        let prefix = match iface.name.as_deref() {
            Some("websocket-server") => String::new(),
            Some(other) => format!("{other}."),
            None => continue,
        };
        for (name, _) in &iface.functions {
            let name = if let Some(rest) = name.strip_prefix("[constructor]") {
                format!("{rest}.constructor")
            } else if let Some(rest) = name.strip_prefix("[method]").or(name.strip_prefix("[static]")) {
                rest.to_string()
            } else {
                name.clone()
            };
            names.insert(format!("{prefix}{name}"));
        }
        for (name, id) in &iface.types {
            names.insert(format!("{prefix}{name}"));
            let members: Vec<String> = match &resolve.types[*id].kind {
                TypeDefKind::Record(r) => r.fields.iter().map(|f| f.name.clone()).collect(),
                TypeDefKind::Variant(v) => v.cases.iter().map(|c| c.name.clone()).collect(),
                TypeDefKind::Enum(e) => e.cases.iter().map(|c| c.name.clone()).collect(),
                _ => Vec::new(),
            };
            for member in members {
                names.insert(format!("{prefix}{name}.{member}"));
            }
        }
    }
    names
}

/// The text between backticks in `cell`.
fn code_spans(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

/// (Qt column, WIT column, notes) of every table row before the differences.
fn table_rows(doc: &str) -> Vec<(String, String, String)> {
    let body = doc.split("## Deliberate differences").next().unwrap();
    body.lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cols: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
            assert_eq!(cols.len(), 3, "a row needs three columns: {l}");
            (cols[0].to_string(), cols[1].to_string(), cols[2].to_string())
        })
        .collect()
}

#[test]
fn every_wit_name_in_the_table_exists_and_every_row_has_a_counterpart_or_a_reason() {
    let doc = std::fs::read_to_string(root().join("docs/qt-api.md")).unwrap();
    let names = wit_names();
    let rows = table_rows(&doc);
    assert!(rows.len() > 100, "the table lost rows: {}", rows.len());
    let mut missing = Vec::new();
    for (qt, wit, notes) in &rows {
        if wit == "—" {
            assert!(notes.len() > 10, "{qt} has no WIT counterpart and no reason");
            continue;
        }
        let spans = code_spans(wit);
        assert!(!spans.is_empty(), "{qt}: the WIT column names nothing: {wit}");
        for name in spans {
            if !names.contains(name) {
                missing.push(format!("{qt} → `{name}`"));
            }
        }
    }
    assert!(missing.is_empty(), "names not in wit/: {missing:#?}\nknown: {names:#?}");
}

#[test]
fn every_qt_member_has_a_row() {
    let list = std::fs::read_to_string(root().join("docs/qt-members.txt")).unwrap();
    let doc = std::fs::read_to_string(root().join("docs/qt-api.md")).unwrap();
    let qt_column: String = table_rows(&doc).into_iter().map(|(qt, _, _)| qt + "\n").collect();
    let members: BTreeSet<&str> =
        list.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    assert!(members.len() > 80, "docs/qt-members.txt lists too few members: {members:?}");
    let missing: Vec<&&str> = members.iter().filter(|m| !qt_column.contains(**m)).collect();
    assert!(missing.is_empty(), "Qt members without a row in docs/qt-api.md: {missing:?}");
}
