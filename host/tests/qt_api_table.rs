//! `docs/qt-api.md` against the WIT package and Qt's member list: every name
//! in the table's WIT column exists in `wit/`, every row has a counterpart
//! or a reason, and every member of QT-API.md §1–§3 and §5 has a row.

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

/// Member names from QT-API.md: the identifier before each `(` in the
/// first column of §1–§3's tables and in §3's bullets, and §5's enum names.
fn qt_members(reference: &str) -> BTreeSet<String> {
    let start = reference.find("## 1.").expect("§1");
    let helpers = reference.find("## 3.").expect("§3");
    let end = reference.find("## 4.").expect("§4");
    // Tables' first columns (slots rows included), then §3's prose whole.
    let mut cells: Vec<&str> = reference[start..helpers]
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| Qt ") && !l.starts_with("|---"))
        .map(|l| l.trim_matches('|').split(" | ").next().unwrap_or_default())
        .collect();
    cells.push(&reference[helpers..end]);
    let mut members = BTreeSet::new();
    for cell in cells {
        for span in code_spans(cell) {
            let Some(open) = span.find('(') else { continue };
            let ident: String = span[..open]
                .chars()
                .rev()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '~')
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            if !ident.is_empty() {
                members.insert(ident);
            }
        }
    }
    let enums = &reference[reference.find("## 5.").expect("§5")..];
    for bold in enums.split("**").skip(1).step_by(2) {
        for name in bold.split(", ") {
            members.insert(name.rsplit("::").next().unwrap().to_string());
        }
    }
    members
}

#[test]
fn every_qt_member_has_a_row() {
    let path = root().join("../shared/QT-API.md");
    let reference = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("cannot read {} ({e}): clone wsbox with the shared/ folder beside it", path.display())
    });
    let doc = std::fs::read_to_string(root().join("docs/qt-api.md")).unwrap();
    let qt_column: String = table_rows(&doc).into_iter().map(|(qt, _, _)| qt + "\n").collect();
    let members = qt_members(&reference);
    assert!(members.len() > 80, "QT-API.md parsed to too few members: {members:?}");
    let missing: Vec<&String> = members.iter().filter(|m| !qt_column.contains(m.as_str())).collect();
    assert!(missing.is_empty(), "Qt members without a row in docs/qt-api.md: {missing:?}");
}
