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
    let rows = table_rows(&report, 11);
    for cols in &rows {
        let msgs: f64 = cols[3].parse().unwrap_or_else(|_| panic!("msgs/s in {cols:?}"));
        assert!(msgs > 0.0, "no messages echoed: {cols:?}");
        assert_eq!(cols[11], "0", "errors in: {cols:?}");
    }
    // 4 plain cells × 4 servers (Bun installed by bench/bootstrap-bun.sh
    // from the npm registry) + the TLS cell × 2.
    assert_eq!(rows.len(), 18, "every server in every cell:\n{report}");
    // The open loop: the plain cells at half the weakest server's rate,
    // wsbox with and without input gathering, tokio-tungstenite and Bun;
    // all echoed (the run drains them).
    let fixed = table_rows(&report, 13);
    for cols in &fixed {
        let sent: u64 = cols[11].parse().unwrap_or_else(|_| panic!("sent in {cols:?}"));
        assert!(sent > 0, "nothing sent at a fixed rate: {cols:?}");
        assert_eq!((cols[12], cols[13]), ("0", "0"), "missing echoes or errors in: {cols:?}");
    }
    assert_eq!(fixed.len(), 4 * 4, "every plain cell at a fixed rate on four servers:\n{report}");
    for server in ["wsbox", "tokio-tungstenite", "Bun 1.4.4 (uWebSockets)", "raw TCP echo"] {
        assert!(report.contains(&format!("| {server} | ")), "{server} has no idle-memory row:\n{report}");
    }
}

/// The body rows of the report's tables with `columns` columns, each split
/// into its cells (index 1 is the first column).
fn table_rows(report: &str, columns: usize) -> Vec<Vec<&str>> {
    report
        .lines()
        .filter(|l| l.starts_with("| ") && l.matches('|').count() == columns + 1)
        .map(|l| l.split('|').map(str::trim).collect::<Vec<_>>())
        .filter(|cols| cols[1] != "cell" && !cols[1].starts_with("---"))
        .collect()
}

/// The hosts comparison, short: every host carries messages without errors.
#[test]
fn a_quick_hosts_run_measures_every_host() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let tool = |script: &str| {
        let out = Command::new("bash").arg(root.join(script)).output().expect("run a bootstrap script");
        assert!(out.status.success(), "{script} failed:\n{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let wasmtime = tool("host/tests/clients/bootstrap-wasmtime-cli.sh");
    let wsbox = std::path::PathBuf::from(env!("CARGO_BIN_EXE_wsbox-bench")).with_file_name("wsbox");
    assert!(wsbox.exists(), "{} is missing: cargo test --workspace builds it", wsbox.display());
    let written =
        Command::new(&wsbox).args(["components", "--out"]).arg(root.join("examples/node/components")).status();
    assert!(written.expect("wsbox components").success());
    tool("examples/node/bootstrap.sh");
    let out = Command::new(env!("CARGO_BIN_EXE_wsbox-bench"))
        .args(["hosts", "--quick", "--duration", "0.2", "--wasmtime", &wasmtime, "--node-example"])
        .arg(root.join("examples/node"))
        .output()
        .expect("run wsbox-bench hosts");
    assert!(out.status.success(), "wsbox-bench hosts --quick failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8_lossy(&out.stdout);
    let rows = table_rows(&table, 9);
    for cols in &rows {
        let msgs: f64 = cols[3].parse().unwrap_or_else(|_| panic!("msgs/s in {cols:?}"));
        assert!(msgs > 0.0, "no messages echoed: {cols:?}");
        assert_eq!(cols[9], "0", "errors in: {cols:?}");
    }
    assert_eq!(rows.len(), 4 * 5, "every host in every cell (quick: 50 connections, under wasmtime's limit):\n{table}");
}

/// The broadcast comparison, short: wsbox, Bun (installed by
/// bench/bootstrap-bun.sh from the npm registry) and the tokio-tungstenite
/// relay each deliver the publications to every subscriber, and so do two
/// wsbox processes through a `nats-server`.
#[test]
fn a_quick_broadcast_run_delivers_on_every_server() {
    let out = std::env::temp_dir().join(format!("wsbox-bench-broadcast-{}.md", std::process::id()));
    std::fs::write(&out, "# kept\n").unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_wsbox-bench"))
        .args(["broadcast", "--quick", "--duration", "0.5", "--out"])
        .arg(&out)
        .status()
        .expect("run wsbox-bench");
    assert!(status.success(), "wsbox-bench broadcast --quick failed (see its stderr above)");
    let report = std::fs::read_to_string(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    let rows: Vec<&str> = report
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| server") && !l.starts_with("| path"))
        .collect();
    assert_eq!(rows.len(), 4, "one row per server, and one through NATS:\n{report}");
    for row in rows {
        let cols: Vec<&str> = row.split('|').map(str::trim).collect();
        // The servers' table has publications/s before deliveries/s.
        let at = if cols[1].contains("NATS") { 3 } else { 4 };
        let delivered: f64 = cols[at].trim_end_matches('%').parse().unwrap_or_else(|_| panic!("delivered in {row}"));
        // At 200 publications/s to 20 subscribers nothing is skipped.
        assert_eq!(delivered, 100.0, "every publication to every subscriber: {row}");
    }
}

/// The HTTP/2 comparison, short: the WebSockets carry messages without
/// errors over HTTP/1.1 and as HTTP/2 streams, and opening them is measured.
#[test]
fn a_quick_http2_run_echoes_over_both_versions() {
    let out = Command::new(env!("CARGO_BIN_EXE_wsbox-bench"))
        .args(["http2", "--quick", "--duration", "0.2"])
        .output()
        .expect("run wsbox-bench http2");
    assert!(out.status.success(), "wsbox-bench http2 --quick failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<Vec<&str>> =
        table.lines().filter(|l| l.starts_with("| HTTP/")).map(|l| l.split('|').map(str::trim).collect()).collect();
    let echo: Vec<_> = rows.iter().filter(|cols| cols.len() == 10).collect();
    assert_eq!(echo.len(), 2, "HTTP/1.1 and HTTP/2 echo rows:\n{table}");
    for cols in echo {
        assert!(cols[2].parse::<f64>().unwrap() > 0.0, "no messages echoed: {cols:?}");
        assert_eq!(cols[8], "0", "errors: {cols:?}");
    }
    let opening: Vec<_> = rows.iter().filter(|cols| cols.len() == 4).collect();
    assert_eq!(opening.len(), 2, "HTTP/1.1 and HTTP/2 opening rows:\n{table}");
}

/// The `io_uring` comparison, short: every cell is measured with a system
/// call each, and with `io_uring` wherever the kernel offers it (a machine
/// that does not says so in the table instead).
#[test]
fn a_quick_uring_run_measures_every_cell() {
    let out = Command::new(env!("CARGO_BIN_EXE_wsbox-bench"))
        .args(["uring", "--quick", "--duration", "0.2"])
        .output()
        .expect("run wsbox-bench uring");
    assert!(out.status.success(), "wsbox-bench uring --quick failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8_lossy(&out.stdout);
    let rows = table_rows(&table, 5);
    let uring = !table.contains("`io_uring` is not available here");
    assert_eq!(rows.len(), if uring { 6 } else { 3 }, "every cell in every mode:\n{table}");
    for cols in &rows {
        let us: f64 = cols[3].parse().unwrap_or_else(|_| panic!("CPU-µs in {cols:?}"));
        assert!(us > 0.0, "nothing measured: {cols:?}");
    }
}
