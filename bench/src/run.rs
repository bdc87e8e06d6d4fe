//! `wsbox-bench run`: every server, every cell, interleaved (A B C A B C …),
//! servers pinned to core 0 and the load generator to core 1; medians of
//! the rounds; a Markdown report of ratios to the native baselines.

use crate::load::{IdleReport, Kind, LoadReport};
use crate::report::Results;
use crate::servers::{self, Running};
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Clone, Debug, clap::Args)]
pub struct RunOptions {
    /// A smoke run: one short round of small cells (seconds, not minutes).
    #[arg(long)]
    pub quick: bool,
    /// Rounds per cell (each round runs every server once).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Measured seconds per run.
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Warm-up seconds per run.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// The Markdown file whose results section is (re)written.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The wsbox binary (default: the one next to this program).
    #[arg(long)]
    pub wsbox: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    Wsbox,
    /// wsbox with `--gather-input-us 0` (the open loop only).
    WsboxNoGather,
    WsboxTls,
    Tungstenite,
    TungsteniteTls,
    Bun,
    RawTcp,
}

impl Target {
    fn label(self) -> &'static str {
        match self {
            Target::Wsbox => "wsbox",
            Target::WsboxNoGather => NO_GATHER,
            Target::WsboxTls => "wsbox (TLS)",
            Target::Tungstenite => "tokio-tungstenite",
            Target::TungsteniteTls => "tokio-tungstenite + tokio-rustls",
            Target::Bun => BUN,
            Target::RawTcp => "raw TCP echo",
        }
    }
}

pub(crate) struct Cell {
    pub name: String,
    pub conns: usize,
    pub window: usize,
    pub size: usize,
    pub kind: Kind,
    /// Messages per second over all connections (the open loop); 0: the
    /// closed loop, `window` in flight per connection.
    pub rate: f64,
    targets: &'static [Target],
}

const PLAIN: &[Target] = &[Target::Wsbox, Target::Tungstenite, Target::Bun, Target::RawTcp];

/// Bun's label in the tables (the version `bench/bootstrap-bun.sh` pins).
pub(crate) const BUN: &str = "Bun 1.4.4 (uWebSockets)";
const TLS: &[Target] = &[Target::WsboxTls, Target::TungsteniteTls];

/// A cell named as the tables name it ("64×16×1 KiB binary").
pub(crate) fn cell(conns: usize, window: usize, size: usize, kind: Kind) -> Cell {
    Cell {
        name: format!(
            "{conns}×{window}×{} {}",
            if size >= 1024 { format!("{} KiB", size / 1024) } else { format!("{size} B") },
            if kind == Kind::Text { "text" } else { "binary" }
        ),
        conns,
        window,
        size,
        kind,
        rate: 0.0,
        targets: &[],
    }
}

/// The open loop's rates, as shares of the weakest server's closed-loop
/// messages per second in the same cell: rates every server sustains.
fn shares(quick: bool) -> &'static [f64] {
    if quick { &[0.5] } else { &[0.25, 0.5, 0.75] }
}

/// The servers compared at fixed rates (the raw echo has no frames to cost).
/// wsbox that never lets input gather: what the pause buys, at equal load.
const OPEN_LOOP: &[Target] = &[Target::Wsbox, Target::WsboxNoGather, Target::Tungstenite, Target::Bun];

/// The label of wsbox without input gathering.
pub(crate) const NO_GATHER: &str = "wsbox --gather-input-us 0";

fn cells(quick: bool) -> Vec<Cell> {
    let many = if quick { 50 } else { 1000 };
    let cell = |conns, window, size, kind, targets| Cell { targets, ..cell(conns, window, size, kind) };
    vec![
        cell(1, 1, 32, Kind::Text, PLAIN),
        cell(64, 16, 1024, Kind::Binary, PLAIN),
        cell(64, 16, 64 * 1024, Kind::Binary, PLAIN),
        cell(many, 16, 1024, Kind::Binary, PLAIN),
        cell(64, 16, 1024, Kind::Binary, TLS),
    ]
}

/// The servers, started once and kept for every cell.
struct Servers {
    running: BTreeMap<Target, Running>,
    ca: PathBuf,
}

fn start_servers(wsbox: &Path, identity: &crate::pki::Identity, pin: Option<usize>) -> Result<Servers> {
    let mut running = BTreeMap::new();
    for target in [
        Target::Wsbox,
        Target::WsboxNoGather,
        Target::WsboxTls,
        Target::Tungstenite,
        Target::TungsteniteTls,
        Target::Bun,
        Target::RawTcp,
    ] {
        running.insert(target, start_server(target, wsbox, identity, pin)?);
    }
    Ok(Servers { running, ca: identity.ca.clone() })
}

/// Starts one server, quiet, on a free port.
fn start_server(target: Target, wsbox: &Path, identity: &crate::pki::Identity, pin: Option<usize>) -> Result<Running> {
    let me = std::env::current_exe()?;
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let (cert, key) = (identity.cert.display().to_string(), identity.key.display().to_string());
    let quiet = ["--listen", "127.0.0.1:0", "--log-level", "warn"];
    let baseline = |kind: &str| s(&["serve", kind, "--listen", "127.0.0.1:0", "--cert", &cert, "--key", &key]);
    match target {
        Target::Wsbox => Running::start("wsbox", wsbox, &s(&[&["serve"], &quiet[..]].concat()), pin, "ws"),
        Target::WsboxNoGather => {
            let args = s(&[&["serve"], &quiet[..], &["--gather-input-us", "0"]].concat());
            Running::start("wsbox-no-gather", wsbox, &args, pin, "ws")
        }
        Target::WsboxTls => {
            let tls = ["--tls-listen", "127.0.0.1:0", "--tls-cert", &cert, "--tls-key", &key];
            Running::start("wsbox-tls", wsbox, &s(&[&["serve"], &quiet[..], &tls[..]].concat()), pin, "wss")
        }
        Target::Tungstenite => Running::start("tungstenite", &me, &baseline("tungstenite"), pin, "ws"),
        Target::TungsteniteTls => Running::start("tungstenite-tls", &me, &baseline("tungstenite-tls"), pin, "wss"),
        Target::Bun => {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bun/echo.js").display().to_string();
            Running::start("bun", &crate::broadcast::bootstrap("bootstrap-bun.sh")?, &s(&[&script]), pin, "ws")
        }
        Target::RawTcp => Running::start("raw-tcp", &me, &baseline("raw-tcp"), pin, "tcp"),
    }
}

/// Runs the generator as a child process (pinned), so its CPU is its own.
pub(crate) fn load(
    server: &Running,
    ca: Option<&Path>,
    cell: &Cell,
    opts: &RunOptions,
    pin: Option<usize>,
) -> Result<LoadReport> {
    load_over(server, ca, cell, opts, pin, 0)
}

/// [`load`] with the WebSockets opened as streams of HTTP/2 connections,
/// `h2_streams` per connection (0: one TLS connection each).
pub(crate) fn load_over(
    server: &Running,
    ca: Option<&Path>,
    cell: &Cell,
    opts: &RunOptions,
    pin: Option<usize>,
    h2_streams: usize,
) -> Result<LoadReport> {
    let me = std::env::current_exe()?;
    let mut command = crate::servers::pinned(&me, pin);
    let url = server.url.replace("wss://127.0.0.1", "wss://localhost");
    command.args(["load", "--url", &url]).args(["--conns", &cell.conns.to_string()]);
    command.args(["--window", &cell.window.to_string(), "--size", &cell.size.to_string()]);
    command.args(["--kind", if cell.kind == Kind::Text { "text" } else { "binary" }]);
    command.args(["--duration", &opts.duration.to_string(), "--warmup", &opts.warmup.to_string()]);
    command.args(["--server-pid", &server.pid.to_string(), "--h2-streams", &h2_streams.to_string()]);
    command.args(["--rate", &cell.rate.to_string()]);
    if let Some(ca) = ca {
        command.arg("--ca").arg(ca);
    }
    let output = command.output().context("running the load generator")?;
    if !output.status.success() {
        bail!(
            "load against {} ({}) failed: {}",
            server.name,
            cell.name,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    serde_json::from_slice(&output.stdout).context("parsing the load report")
}

fn idle(server: &Running, ca: &Path, conns: usize) -> Result<IdleReport> {
    let me = std::env::current_exe()?;
    let url = server.url.replace("wss://127.0.0.1", "wss://localhost");
    let output = Command::new(me)
        .args(["idle", "--url", &url, "--conns", &conns.to_string(), "--server-pid", &server.pid.to_string()])
        .arg("--ca")
        .arg(ca)
        .output()?;
    if !output.status.success() {
        bail!("idle run against {} failed: {}", server.name, String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// The median of each field over the rounds.
pub(crate) fn median(runs: &[LoadReport]) -> LoadReport {
    let pick = |f: fn(&LoadReport) -> f64| crate::report::median_of(runs.iter().map(f));
    LoadReport {
        messages: pick(|r| r.messages as f64) as u64,
        bytes: pick(|r| r.bytes as f64) as u64,
        errors: runs.iter().map(|r| r.errors).sum(),
        seconds: pick(|r| r.seconds),
        msgs_per_sec: pick(|r| r.msgs_per_sec),
        mib_per_sec: pick(|r| r.mib_per_sec),
        p50_us: pick(|r| r.p50_us),
        p99_us: pick(|r| r.p99_us),
        p999_us: pick(|r| r.p999_us),
        client_cpu_pct: pick(|r| r.client_cpu_pct),
        server_cpu_pct: pick(|r| r.server_cpu_pct),
        msgs_per_server_cpu_sec: pick(|r| r.msgs_per_server_cpu_sec),
        open_server_cpu_us: pick(|r| r.open_server_cpu_us),
        // Every round's, like the errors: a message missing in any round shows.
        sent: runs.iter().map(|r| r.sent).sum(),
        missing: runs.iter().map(|r| r.missing).sum(),
        send_late_p99_us: pick(|r| r.send_late_p99_us),
    }
}

/// What every measuring command starts from: the options with `--quick`
/// applied, the wsbox binary, and the cores for servers and generators.
pub(crate) struct Setup {
    pub wsbox: PathBuf,
    pub pinned: bool,
    pub server_core: Option<usize>,
    pub load_core: Option<usize>,
}

impl Setup {
    pub(crate) fn new(opts: &mut RunOptions) -> Result<Self> {
        if opts.quick {
            opts.rounds = 1;
            opts.duration = opts.duration.min(0.3);
            opts.warmup = opts.warmup.min(0.1);
        }
        let wsbox = match &opts.wsbox {
            Some(p) => p.clone(),
            None => servers::sibling_wsbox()?,
        };
        let pinned = servers::can_pin();
        if !pinned {
            eprintln!("wsbox-bench: taskset or a second core is missing: running unpinned");
        }
        let (server_core, load_core) = if pinned { (Some(0), Some(1)) } else { (None, None) };
        Ok(Self { wsbox, pinned, server_core, load_core })
    }
}

/// Every round of one cell, the targets interleaved; the medians.
fn rounds(
    servers: &Servers,
    cell: &Cell,
    targets: &[Target],
    opts: &RunOptions,
    load_core: Option<usize>,
) -> Result<Vec<(&'static str, LoadReport)>> {
    let mut runs: BTreeMap<Target, Vec<LoadReport>> = BTreeMap::new();
    for round in 0..opts.rounds {
        for &target in targets {
            let report = load(&servers.running[&target], Some(&servers.ca), cell, opts, load_core)?;
            eprintln!(
                "wsbox-bench: {}{} round {} {}: {:.0} msgs/s, p50 {:.0} µs, server CPU {:.0}%",
                cell.name,
                if cell.rate > 0.0 { format!(" at {:.0} msgs/s", cell.rate) } else { String::new() },
                round + 1,
                target.label(),
                report.msgs_per_sec,
                report.p50_us,
                report.server_cpu_pct
            );
            runs.entry(target).or_default().push(report);
        }
    }
    Ok(targets.iter().map(|t| (t.label(), median(&runs[t]))).collect())
}

pub fn run(mut opts: RunOptions) -> Result<Results> {
    let Setup { wsbox, pinned, server_core, load_core } = Setup::new(&mut opts)?;
    let identity = crate::pki::Identity::generate()?;

    // Cold start and idle memory first, on fresh processes: compiling at
    // every start, and with the compile cache warmed by one start.
    let runs = if opts.quick { 1 } else { 5 };
    let median_ms =
        |times: Vec<std::time::Duration>| crate::report::median_of(times.iter().map(|d| d.as_secs_f64() * 1000.0));
    let cold_start_ms = median_ms(servers::cold_starts(&wsbox, &["--no-compile-cache"], runs)?);
    let cache_dir = identity.dir.join("compile-cache");
    let cache_dir = cache_dir.display().to_string();
    let cached = ["--compile-cache-dir", cache_dir.as_str()];
    servers::cold_starts(&wsbox, &cached, 1)?;
    let cached_start_ms = median_ms(servers::cold_starts(&wsbox, &cached, runs)?);

    // Idle memory: the median of three fresh servers of each kind (a first
    // 1 000 connections also pay one-time growth, which varies from start
    // to start).
    let idle_conns = if opts.quick { 50 } else { 1000 };
    let idle_rounds = if opts.quick { 1 } else { 3 };
    let mut idle_reports = Vec::new();
    for target in [Target::Wsbox, Target::Tungstenite, Target::Bun, Target::RawTcp] {
        let mut reports = Vec::new();
        for _ in 0..idle_rounds {
            let server = start_server(target, &wsbox, &identity, server_core)?;
            reports.push(idle(&server, &identity.ca, idle_conns)?);
        }
        reports.sort_by(|a, b| a.bytes_per_conn.total_cmp(&b.bytes_per_conn));
        idle_reports.push((target.label(), reports.swap_remove(reports.len() / 2)));
    }
    let servers = start_servers(&wsbox, &identity, server_core)?;

    let mut cell_results = Vec::new();
    let mut open_loop = Vec::new();
    let cells = cells(opts.quick);
    for cell in &cells {
        let runs = rounds(&servers, cell, cell.targets, &opts, load_core)?;
        cell_results.push((cell.name.clone(), runs));
    }
    // The same cells at fixed rates below every server's capacity.
    for (cell, (_, closed)) in cells.iter().zip(&cell_results) {
        if cell.targets != PLAIN {
            continue;
        }
        let weakest = OPEN_LOOP
            .iter()
            .filter_map(|t| closed.iter().find(|(l, _)| *l == t.label()))
            .map(|(_, r)| r.msgs_per_sec)
            .fold(f64::INFINITY, f64::min);
        for &share in shares(opts.quick) {
            let fixed = Cell {
                rate: (weakest * share).round().max(1.0),
                targets: OPEN_LOOP,
                ..crate::run::cell(cell.conns, cell.window, cell.size, cell.kind)
            };
            let runs = rounds(&servers, &fixed, OPEN_LOOP, &opts, load_core)?;
            open_loop.push(crate::report::FixedRate { cell: cell.name.clone(), share, rate: fixed.rate, rows: runs });
        }
    }
    drop(servers);

    let mut results = Results {
        cells: cell_results,
        open_loop,
        idle: idle_reports,
        cold_start_ms,
        cached_start_ms,
        pinned,
        command: format!(
            "`cargo run --release -p wsbox-bench -- run{}` — {} round(s) per cell, {} s measured after {} s warm-up",
            if opts.quick { " --quick" } else { "" },
            opts.rounds,
            opts.duration,
            opts.warmup
        ),
        markdown: String::new(),
    };
    results.markdown = crate::report::markdown(&results);
    if let Some(out) = &opts.out {
        crate::report::write_section(out, &results.markdown)?;
    }
    Ok(results)
}
