//! Parsing `index.json` and presenting the results.

use anyhow::{Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

/// One case's verdict as `wstest` records it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct CaseResult {
    pub behavior: String,
    #[serde(rename = "behaviorClose")]
    pub behavior_close: String,
    pub duration: u64,
    #[serde(rename = "remoteCloseCode")]
    pub remote_close_code: Option<u16>,
    pub reportfile: String,
}

/// The results of one agent, by case id in Autobahn's order.
#[derive(Clone, Debug)]
pub struct Results {
    pub cases: Vec<(CaseId, CaseResult)>,
}

/// A case id such as `6.4.1`, ordered numerically.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct CaseId(pub Vec<u32>);

impl std::fmt::Display for CaseId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u32::to_string).collect();
        f.write_str(&parts.join("."))
    }
}

impl CaseId {
    fn parse(id: &str) -> Self {
        Self(id.split('.').map(|p| p.parse().unwrap_or(0)).collect())
    }

    /// The top-level group (`6` for `6.4.1`).
    pub fn group(&self) -> u32 {
        self.0[0]
    }
}

/// The title of a top-level Autobahn group.
pub fn group_title(group: u32) -> &'static str {
    match group {
        1 => "Framing",
        2 => "Pings/Pongs",
        3 => "Reserved Bits",
        4 => "Opcodes",
        5 => "Fragmentation",
        6 => "UTF-8 Handling",
        7 => "Close Handling",
        9 => "Limits/Performance",
        10 => "Miscellaneous",
        12 => "WebSocket Compression (different payloads)",
        13 => "WebSocket Compression (different parameters)",
        _ => "Other",
    }
}

/// The behaviours in the order the summary shows them.
pub const BEHAVIORS: [&str; 6] = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED", "WRONG CODE"];

impl Results {
    /// Reads `index.json` and keeps `agent`'s cases.
    pub fn load(index: &Path, agent: &str) -> Result<Self> {
        let text = std::fs::read_to_string(index).with_context(|| format!("reading {}", index.display()))?;
        let all: BTreeMap<String, BTreeMap<String, CaseResult>> =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", index.display()))?;
        let cases = all.get(agent).with_context(|| format!("{} has no results for agent {agent}", index.display()))?;
        let mut cases: Vec<(CaseId, CaseResult)> = cases.iter().map(|(k, v)| (CaseId::parse(k), v.clone())).collect();
        cases.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Self { cases })
    }

    /// One line per case: `id behavior behaviorClose` (the snapshot).
    pub fn behavior_map(&self) -> String {
        let mut out = String::new();
        for (id, r) in &self.cases {
            let _ = writeln!(out, "{id} {} {}", r.behavior, r.behavior_close);
        }
        out
    }

    /// Count of cases per behaviour.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for (_, r) in &self.cases {
            *counts.entry(r.behavior.clone()).or_insert(0) += 1;
        }
        counts
    }

    /// Cases whose behaviour or close behaviour is not OK (INFORMATIONAL
    /// counts as OK for close behaviour only when wstest says so).
    pub fn not_ok(&self) -> Vec<String> {
        self.cases
            .iter()
            .filter(|(_, r)| {
                !(r.behavior == "OK" || r.behavior == "INFORMATIONAL")
                    || !(r.behavior_close == "OK" || r.behavior_close == "INFORMATIONAL")
            })
            .map(|(id, r)| format!("{id}: {} / close {}", r.behavior, r.behavior_close))
            .collect()
    }

    /// The Markdown summary: a table by group × behaviour, plus close behaviour.
    pub fn summary_markdown(&self, title: &str, context: &str) -> String {
        let mut groups: BTreeMap<u32, (BTreeMap<String, usize>, usize, usize)> = BTreeMap::new();
        for (id, r) in &self.cases {
            let entry = groups.entry(id.group()).or_default();
            *entry.0.entry(r.behavior.clone()).or_insert(0) += 1;
            if r.behavior_close == "OK" || r.behavior_close == "INFORMATIONAL" {
                entry.1 += 1;
            } else {
                entry.2 += 1;
            }
        }
        let mut md = String::new();
        let _ = writeln!(md, "## {title}\n\n{context}\n");
        let _ = writeln!(md, "| group | cases | {} | close OK | close other |", BEHAVIORS.join(" | "));
        let _ = writeln!(md, "|---|---:|{}---:|---:|", "---:|".repeat(BEHAVIORS.len()));
        let mut totals = (BTreeMap::<String, usize>::new(), 0usize, 0usize, 0usize);
        for (group, (by, close_ok, close_other)) in &groups {
            let n: usize = by.values().sum();
            let cells: Vec<String> = BEHAVIORS.iter().map(|b| by.get(*b).copied().unwrap_or(0).to_string()).collect();
            let _ = writeln!(
                md,
                "| {group} {} | {n} | {} | {close_ok} | {close_other} |",
                group_title(*group),
                cells.join(" | ")
            );
            for (b, c) in by {
                *totals.0.entry(b.clone()).or_insert(0) += c;
            }
            totals.1 += n;
            totals.2 += close_ok;
            totals.3 += close_other;
        }
        let cells: Vec<String> =
            BEHAVIORS.iter().map(|b| format!("**{}**", totals.0.get(*b).copied().unwrap_or(0))).collect();
        let _ = writeln!(
            md,
            "| **all** | **{}** | {} | **{}** | **{}** |",
            totals.1,
            cells.join(" | "),
            totals.2,
            totals.3
        );
        let others: Vec<String> = self
            .cases
            .iter()
            .filter(|(_, r)| r.behavior != "OK")
            .map(|(id, r)| {
                let close =
                    if r.behavior_close == "OK" { String::new() } else { format!(", close {}", r.behavior_close) };
                format!("{id} ({}{close})", r.behavior)
            })
            .collect();
        if !others.is_empty() && others.len() <= 40 {
            let _ = writeln!(md, "\nOther than OK: {}.", others.join(", "));
        }
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(behavior: &str, close: &str) -> CaseResult {
        CaseResult {
            behavior: behavior.into(),
            behavior_close: close.into(),
            duration: 1,
            remote_close_code: Some(1000),
            reportfile: String::new(),
        }
    }

    #[test]
    fn the_summary_names_each_case_that_is_not_ok_with_its_close_verdict() {
        let results = Results {
            cases: vec![
                (CaseId::parse("1.1.1"), case("OK", "OK")),
                (CaseId::parse("7.1.6"), case("INFORMATIONAL", "INFORMATIONAL")),
                (CaseId::parse("9.1.1"), case("FAILED", "OK")),
            ],
        };
        let md = results.summary_markdown("ws://", "");
        assert!(md.contains("Other than OK: 7.1.6 (INFORMATIONAL, close INFORMATIONAL), 9.1.1 (FAILED)."), "{md}");
        assert!(!md.contains("not OK"), "an INFORMATIONAL close is counted OK in the table: {md}");
    }
}
