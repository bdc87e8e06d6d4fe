//! A short run of the whole benchmark (no thresholds), so it cannot rot:
//! every server starts, every cell carries messages without errors, and
//! the report is written between its markers.

use std::process::Command;

#[test]
fn a_quick_run_measures_every_server_in_every_cell_and_writes_the_report() {
    let out = std::env::temp_dir().join(format!("wsbox-bench-smoke-{}.md", std::process::id()));
    std::fs::write(&out, "# kept text\n").unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_wsbox-bench"))
        .args(["run", "--quick", "--duration", "0.2", "--out"])
        .arg(&out)
        .status()
        .expect("run wsbox-bench");
    assert!(status.success(), "wsbox-bench run --quick failed (see its stderr above)");
    let report = std::fs::read_to_string(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    assert!(report.starts_with("# kept text\n"), "text outside the markers was not kept:\n{report}");
    assert!(
        report.contains("<!-- wsbox-bench:results:begin -->") && report.contains("<!-- wsbox-bench:results:end -->")
    );
    let mut rows = 0;
    for line in report.lines().filter(|l| l.starts_with("| ") && l.matches('|').count() == 12) {
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        if cols[1] == "cell" || cols[1].starts_with("---") {
            continue;
        }
        let msgs: f64 = cols[3].parse().unwrap_or_else(|_| panic!("msgs/s in {line}"));
        assert!(msgs > 0.0, "no messages echoed: {line}");
        assert_eq!(cols[11], "0", "errors in: {line}");
        rows += 1;
    }
    // 4 plain cells × 3 servers + the TLS cell × 2.
    assert_eq!(rows, 14, "every server in every cell:\n{report}");
    for server in ["wsbox", "tokio-tungstenite", "raw TCP echo"] {
        assert!(report.contains(&format!("| {server} | ")), "{server} has no idle-memory row:\n{report}");
    }
}
