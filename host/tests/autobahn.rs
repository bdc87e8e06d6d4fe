//! Autobahn|Testsuite against the real wsbox binary, in the normal test run.
//!
//! Every case's behaviour and close behaviour is compared with the committed
//! snapshot `conformance/snapshots/autobahn__autobahn_cases.snap`: any change
//! fails, whether a regression or an improvement. Review it, then re-accept
//! deliberately (`cargo insta review`, or `INSTA_UPDATE=always`) and refresh
//! `reports/` with `just conformance`.

use std::path::PathBuf;
use wsbox_conformance::{Transport, repo_root, run, wstest};

/// Every case over `ws://`, in two wstest processes at once (wstest is
/// single-threaded and the bottleneck; group 12 is about half its time).
#[test]
fn autobahn_cases() {
    check(
        "autobahn_cases",
        Transport::Plain,
        &[&["12.*"], &["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*", "13.*"]],
    );
}

/// Over `wss://`: every non-compression case and the short-message cases of
/// 12.1 and 13.1 (compression over TLS; all of groups 12 and 13 again over
/// TLS would double the test time: `just conformance` runs all 517 over both
/// and the reports hold both). wstest takes a pattern without `*` as one
/// case's name, and one with `*` as a prefix: hence the cases one by one.
#[test]
fn autobahn_wss_cases() {
    #[rustfmt::skip]
    let cases = [
        "1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*",
        "12.1.1", "12.1.2", "12.1.3", "12.1.4", "12.1.5", "12.1.6", "12.1.7",
        "13.1.1", "13.1.2", "13.1.3", "13.1.4", "13.1.5", "13.1.6", "13.1.7",
    ];
    check("autobahn_wss_cases", Transport::Tls, &[&cases]);
}

/// Runs `shards` (each a list of case patterns, one wstest process each)
/// against one server and compares the merged results with the snapshot.
fn check(name: &str, transport: Transport, shards: &[&[&str]]) {
    let wstest = wstest::ensure_wstest().unwrap_or_else(|e| panic!("{e:#}"));
    let work = std::env::temp_dir().join(format!("wsbox-autobahn-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_wsbox"));
    let shards: Vec<Vec<String>> = shards.iter().map(|s| s.iter().map(|c| c.to_string()).collect()).collect();
    let run = run(&bin, &wstest, &shards, &work, transport).unwrap_or_else(|e| panic!("{e:#}"));
    let map = run.results.behavior_map();
    eprintln!("Autobahn {name}: {:?} in {:.0} s", run.results.counts(), run.wall.as_secs_f64());
    let snapshot = repo_root().join(format!("conformance/snapshots/autobahn__{name}.snap"));
    let committed = std::fs::read_to_string(&snapshot).unwrap_or_default();
    if !committed.contains(&map) {
        eprintln!(
            "Autobahn results differ from the committed snapshot: a regression, or an improvement to re-accept \
             deliberately (cargo insta review), then refresh reports/ with `just conformance`.\nNot OK now: {:#?}\n\
             Server log:\n{}",
            run.results.not_ok(),
            run.server_log
        );
    }
    let _ = std::fs::remove_dir_all(&work);
    insta::with_settings!({
        snapshot_path => repo_root().join("conformance/snapshots"),
        prepend_module_to_snapshot => true,
        description => "Autobahn case → behaviour, close behaviour (regression, or re-accept deliberately)",
        omit_expression => true,
    }, {
        insta::assert_snapshot!(name, map);
    });
}
