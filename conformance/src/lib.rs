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

/// Which transport a run tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// `ws://`.
    Plain,
    /// `wss://`, TLS terminated by the host, with a certificate made for the run.
    Tls,
}

impl Transport {
    /// `ws` or `wss`.
    pub fn scheme(self) -> &'static str {
        match self {
            Self::Plain => "ws",
            Self::Tls => "wss",
        }
    }
}

/// Starts `bin` (the wsbox binary), runs one fuzzing client per shard (a
/// list of case patterns) against it at once, with each shard's raw reports
/// in `workdir/shard-N` (or `workdir` itself for a single shard), checks the
/// server survived, and merges the results.
///
/// `wstest` is a single-threaded Python program and, on every case group
/// but a few, the bottleneck: shards let a run use every core.
pub fn run(bin: &Path, wstest: &Path, shards: &[Vec<String>], workdir: &Path, transport: Transport) -> Result<Run> {
    std::fs::create_dir_all(workdir)?;
    let mut args: Vec<String> = Vec::new();
    if transport == Transport::Tls {
        // wstest does not verify the chain; a self-signed certificate will do.
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
        let (cert_path, key_path) = (workdir.join("server.pem"), workdir.join("server.key"));
        std::fs::write(&cert_path, cert.cert.pem())?;
        std::fs::write(&key_path, cert.signing_key.serialize_pem())?;
        args = vec![
            "--tls-cert".into(),
            cert_path.display().to_string(),
            "--tls-key".into(),
            key_path.display().to_string(),
        ];
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut server = EchoServer::start(bin, &args, transport == Transport::Tls)?;
    let outdirs: Vec<PathBuf> = match shards.len() {
        1 => vec![workdir.to_path_buf()],
        n => (0..n).map(|i| workdir.join(format!("shard-{i}"))).collect(),
    };
    let started = Instant::now();
    let ran: Vec<Result<()>> = std::thread::scope(|scope| {
        let clients: Vec<_> = shards
            .iter()
            .zip(&outdirs)
            .map(|(cases, outdir)| scope.spawn(|| wstest::run_fuzzingclient(wstest, &server.url, cases, &[], outdir)))
            .collect();
        clients.into_iter().map(|c| c.join().expect("a wstest thread")).collect()
    });
    let wall = started.elapsed();
    let alive = server.is_running();
    let server_log = server.log();
    drop(server);
    for outcome in ran {
        outcome.with_context(|| format!("wstest run failed; server log:\n{server_log}"))?;
    }
    if !alive {
        bail!("the wsbox server died during the run; its log:\n{server_log}");
    }
    let mut results = Results { cases: Vec::new() };
    for outdir in &outdirs {
        results.cases.extend(Results::load(&outdir.join("index.json"), "wsbox")?.cases);
    }
    results.cases.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Run { results, wall, server_log })
}

/// What `just conformance` prints.
pub struct Report {
    pub results: Results,
    pub summary: String,
}

/// Runs `cases` over `ws://` and `wss://` and rewrites `reports/`:
/// `summary.md`, and under `ws/` and `wss/` the raw `index.json`, the
/// per-case JSON and the HTML report.
pub fn run_into_reports(bin: &Path, wstest: &Path, cases: &[String], reports: &Path) -> Result<Report> {
    // The two transports run at once (one wstest each, a core each); each
    // keeps one shard so that its `index.json` and HTML report are whole.
    let transports = [Transport::Plain, Transport::Tls];
    let runs: Vec<Result<(Transport, PathBuf, Run)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = transports
            .iter()
            .map(|&transport| {
                scope.spawn(move || {
                    let work = std::env::temp_dir().join(format!(
                        "wsbox-autobahn-{}-{}",
                        std::process::id(),
                        transport.scheme()
                    ));
                    let _ = std::fs::remove_dir_all(&work);
                    let run = run(bin, wstest, &[cases.to_vec()], &work, transport)?;
                    Ok((transport, work, run))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a transport's thread")).collect()
    });
    let mut sections = Vec::new();
    let mut all = None;
    for outcome in runs {
        let (transport, work, run) = outcome?;
        let scheme = transport.scheme();
        let raw = reports.join(scheme);
        let _ = std::fs::remove_dir_all(&raw);
        std::fs::create_dir_all(&raw)?;
        for entry in std::fs::read_dir(&work)? {
            let path = entry?.path();
            let name = path.file_name().unwrap_or_default().to_string_lossy().to_string();
            if (name.ends_with(".json") || name.ends_with(".html")) && name != "fuzzingclient.json" {
                std::fs::copy(&path, raw.join(&name))?;
            }
        }
        let context = format!(
            "Autobahn|Testsuite 25.10.1 `fuzzingclient` against the wsbox echo app over `{scheme}://`{}, cases `{}`. \
             Run on {} at wsbox commit `{}`; wstest wall time {:.0} s (both transports at once). Raw results: \
             [`{scheme}/index.json`]({scheme}/index.json), HTML: [`{scheme}/index.html`]({scheme}/index.html).",
            if transport == Transport::Tls { " (TLS 1.3 terminated by the host)" } else { "" },
            cases.join(" "),
            today_utc(),
            commit(),
            run.wall.as_secs_f64()
        );
        sections.push(run.results.summary_markdown(&format!("{scheme}://"), &context));
        let _ = std::fs::remove_dir_all(&work);
        all.get_or_insert(run.results);
    }
    let summary = sections.join("\n");
    let md = format!(
        "# Autobahn|Testsuite results\n\nRefreshed by `just conformance` (all 517 cases over each transport). The test \
         suite checks the same case → behaviour maps against `conformance/snapshots/` (over `wss://` it runs 1.*–10.*, \
         12.1.1–12.1.7 and 13.1.1–13.1.7).\n\n{summary}"
    );
    std::fs::write(reports.join("summary.md"), md)?;
    Ok(Report { results: all.expect("two runs"), summary })
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
