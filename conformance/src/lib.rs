//! The Autobahn|Testsuite harness for wsbox: bootstraps `wstest`, starts the
//! real `wsbox` echo server, runs the `fuzzingclient` against it, parses the
//! results and writes `reports/`.
//!
//! It does not judge: `wstest` exits 0 whatever happened, so the verdict
//! comes from `index.json`, and the test suite compares the case → behaviour
//! map with a committed snapshot (`host/tests/autobahn.rs`).

pub mod results;
pub mod server;
pub mod wstest;

use std::path::PathBuf;

/// The repository root (this crate lives in `<root>/conformance`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("conformance/ has a parent").to_path_buf()
}

use anyhow::{Context, Result, bail};
use results::Results;
use server::EchoServer;
use std::path::Path;
use std::time::{Duration, Instant};

/// One run against a fresh server.
pub struct Run {
    pub results: Results,
    /// Wall time of the wstest run.
    pub wall: Duration,
    /// The server's stderr (printed when something fails).
    pub server_log: String,
}

/// Starts `bin` (the wsbox binary), runs the fuzzing client for `cases` with
/// its raw reports in `workdir`, checks the server survived, parses the results.
pub fn run(bin: &Path, wstest: &Path, cases: &[String], workdir: &Path) -> Result<Run> {
    let mut server = EchoServer::start(bin, &[])?;
    let started = Instant::now();
    let ran = wstest::run_fuzzingclient(wstest, &server.url, cases, &[], workdir);
    let wall = started.elapsed();
    let alive = server.is_running();
    let server_log = server.log();
    drop(server);
    ran.with_context(|| format!("wstest run failed; server log:\n{server_log}"))?;
    if !alive {
        bail!("the wsbox server died during the run; its log:\n{server_log}");
    }
    let results = Results::load(&workdir.join("index.json"), "wsbox")?;
    Ok(Run { results, wall, server_log })
}

/// What `just conformance` prints.
pub struct Report {
    pub results: Results,
    pub summary: String,
}

/// Runs `cases` and rewrites `reports/`: `summary.md`, and under `ws/` the
/// raw `index.json`, the per-case JSON and the HTML report.
pub fn run_into_reports(bin: &Path, wstest: &Path, cases: &[String], reports: &Path) -> Result<Report> {
    let work = std::env::temp_dir().join(format!("wsbox-autobahn-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let run = run(bin, wstest, cases, &work)?;
    let raw = reports.join("ws");
    let _ = std::fs::remove_dir_all(&raw);
    std::fs::create_dir_all(&raw)?;
    for entry in std::fs::read_dir(&work)? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy().to_string();
        if name.ends_with(".json") || name.ends_with(".html") {
            if name == "fuzzingclient.json" {
                continue;
            }
            std::fs::copy(&path, raw.join(&name))?;
        }
    }
    let context = format!(
        "Autobahn|Testsuite 25.10.1 `fuzzingclient` against the wsbox echo app over `ws://`, cases `{}`. \
         Run on {} at wsbox commit `{}`; wstest wall time {:.0} s. Raw results: [`ws/index.json`](ws/index.json), \
         HTML: [`ws/index.html`](ws/index.html).",
        cases.join(" "),
        today_utc(),
        commit(),
        run.wall.as_secs_f64()
    );
    let summary = run.results.summary_markdown("ws://", &context);
    let md = format!(
        "# Autobahn|Testsuite results\n\nRefreshed by `just conformance` (all 517 cases). The test suite checks the \
         same case → behaviour map against `conformance/snapshots/`.\n\n{summary}"
    );
    std::fs::write(reports.join("summary.md"), md)?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(Report { results: run.results, summary })
}

/// `git rev-parse --short HEAD`, with `+dirty` when the protocol code has
/// uncommitted changes.
pub fn commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(repo_root())
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let head = git(&["rev-parse", "--short", "HEAD"]);
    let dirty = !git(&["status", "--porcelain", "--", "guest", "wit", "host"]).is_empty();
    format!("{head}{}", if dirty { "+dirty" } else { "" })
}

/// Today's date (UTC) as YYYY-MM-DD.
pub fn today_utc() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}
