//! Autobahn|Testsuite against the real wsbox binary, in the normal test run.
//!
//! Every case's behaviour and close behaviour is compared with the committed
//! snapshot `conformance/snapshots/autobahn__autobahn_cases.snap`: any change
//! fails, whether a regression or an improvement. Review it, then re-accept
//! deliberately (`cargo insta review`, or `INSTA_UPDATE=always`) and refresh
//! `reports/` with `just conformance`.

use std::path::PathBuf;
use wsbox_conformance::{repo_root, run, wstest};

#[test]
fn autobahn_cases() {
    let wstest = wstest::ensure_wstest().unwrap_or_else(|e| panic!("{e:#}"));
    let work = std::env::temp_dir().join(format!("wsbox-autobahn-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_wsbox"));
    let run = run(&bin, &wstest, &["*".to_string()], &work).unwrap_or_else(|e| panic!("{e:#}"));
    let map = run.results.behavior_map();
    eprintln!("Autobahn: {:?} in {:.0} s", run.results.counts(), run.wall.as_secs_f64());
    let snapshot = repo_root().join("conformance/snapshots/autobahn__autobahn_cases.snap");
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
        insta::assert_snapshot!("autobahn_cases", map);
    });
}
