//! The Markdown report: the machine, the command, a table per cell, the
//! ratios to the native baselines and the targets.

use crate::load::{IdleReport, LoadReport};
use anyhow::Result;
use std::fmt::Write;
use std::path::Path;

pub const BEGIN: &str = "<!-- wsbox-bench:results:begin -->";
pub const END: &str = "<!-- wsbox-bench:results:end -->";

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpu}, {cores} cores, Linux {}", kernel.trim())
}

/// The median of `values` (the upper one of an even count); panics on none.
pub(crate) fn median_of(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut sorted: Vec<f64> = values.into_iter().collect();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// "Measured <date> on <machine> (commit <hash>)." — the first words of every table.
pub(crate) fn measured_on() -> String {
    format!("Measured {} on {} (commit {}).", date(), machine(), commit())
}

fn commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let head = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_default();
    let dirty = git(&["status", "--porcelain", "--", "host", "guest", "wit", "bench"]).is_some_and(|s| !s.is_empty());
    if dirty { format!("{head}+dirty") } else { head }
}

fn find<'a>(row: &'a [(&'static str, LoadReport)], label: &str) -> Option<&'a LoadReport> {
    row.iter().find(|(l, _)| *l == label).map(|(_, r)| r)
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 { format!("{:.2}×", a / b) } else { "n/a".into() }
}

/// What `wsbox-bench run` measured, and how.
pub struct Results {
    pub cells: Vec<(String, Vec<(&'static str, LoadReport)>)>,
    /// The same cells at fixed rates (the open loop).
    pub open_loop: Vec<FixedRate>,
    pub idle: Vec<(&'static str, IdleReport)>,
    pub cold_start_ms: f64,
    /// The same with the compile cache warm.
    pub cached_start_ms: f64,
    pub pinned: bool,
    /// The command and its settings, as the report states them.
    pub command: String,
    pub markdown: String,
}

/// One cell at one fixed rate: every server's medians.
pub struct FixedRate {
    pub cell: String,
    /// The rate as a share of the weakest server's closed-loop msgs/s.
    pub share: f64,
    pub rate: f64,
    pub rows: Vec<(&'static str, LoadReport)>,
}

/// Above this share of its core the generator, not the server, sets a
/// closed-loop cell's pace.
const GENERATOR_BOUND_PCT: f64 = 90.0;

/// Which servers' runs of a closed-loop cell were generator-bound.
fn regime(row: &[(&'static str, LoadReport)]) -> String {
    let servers = || row.iter().filter(|(l, _)| *l != "raw TCP echo");
    let bound: Vec<String> = servers()
        .filter(|(_, r)| r.client_cpu_pct > GENERATOR_BOUND_PCT)
        .map(|(l, r)| format!("{} ({:.0}%)", short(l), r.client_cpu_pct))
        .collect();
    if bound.is_empty() {
        let most = servers().map(|(_, r)| r.client_cpu_pct).fold(0.0, f64::max);
        format!("server-bound (generator ≤ {most:.0}%)")
    } else {
        format!("**generator-bound**: {}", bound.join(", "))
    }
}

/// A server's name, short enough for a table cell.
fn short(label: &str) -> &str {
    label.split(" (").next().unwrap_or(label)
}

/// The best baseline's messages per server-CPU second in a row: the
/// better of tokio-tungstenite (or its TLS twin) and Bun.
fn best_baseline(row: &[(&'static str, LoadReport)]) -> Option<f64> {
    let t = find(row, "tokio-tungstenite").or(find(row, "tokio-tungstenite + tokio-rustls"))?;
    Some(
        find(row, crate::run::BUN)
            .map_or(t.msgs_per_server_cpu_sec, |b| b.msgs_per_server_cpu_sec.max(t.msgs_per_server_cpu_sec)),
    )
}

/// Whether every server was fed the rate: a server that echoed less than
/// 99% of it, or that the generator sent to more than 1 ms late at p99
/// (its socket full, or the generator itself behind), was not at the
/// stated load, and the row is not like for like.
fn schedule(f: &FixedRate) -> String {
    let behind: Vec<String> = f
        .rows
        .iter()
        .filter(|(_, r)| r.msgs_per_sec < 0.99 * f.rate || r.send_late_p99_us > 1_000.0)
        .map(|(l, r)| {
            format!("{} ({:.0} msgs/s, sent {:.0} ms late)", short(l), r.msgs_per_sec, r.send_late_p99_us / 1000.0)
        })
        .collect();
    if behind.is_empty() { "kept".into() } else { format!("**not kept**: {}", behind.join(", ")) }
}

fn open_loop_tables(md: &mut String, fixed: &[FixedRate]) {
    if fixed.is_empty() {
        return;
    }
    let _ = writeln!(md, "\n### Fixed rates (open loop)\n");
    let _ = writeln!(
        md,
        "Each plain cell again at {} of the weakest server's closed-loop msgs/s above, sent on a schedule (`wsbox-bench load --rate`): every server echoes the same messages, so what differs is the server CPU each costs and the latency, counted from the scheduled send time. \"late p99\" is how late the generator sent; a row whose schedule was \"not kept\" (a server echoed under 99% of the rate, or was sent to over 1 ms late) is not at equal load. \"{}\" is wsbox with its input gathering off: what the pause buys and costs.\n",
        fixed
            .iter()
            .map(|f| format!("{:.0}%", f.share * 100.0))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
            .join(", "),
        crate::run::NO_GATHER
    );
    let _ = writeln!(
        md,
        "| cell | rate msgs/s | schedule | wsbox ÷ tokio-tungstenite (msgs per server-CPU s) | wsbox ÷ Bun | wsbox ÷ the better of the two | p50 wsbox − the better's | {0} ÷ the better of the two | p50 {0} − the better's |",
        crate::run::NO_GATHER
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|");
    for f in fixed {
        let (Some(w), Some(t), Some(b)) =
            (find(&f.rows, "wsbox"), find(&f.rows, "tokio-tungstenite"), find(&f.rows, crate::run::BUN))
        else {
            continue;
        };
        let better = if b.msgs_per_server_cpu_sec > t.msgs_per_server_cpu_sec { b } else { t };
        let no_gather = find(&f.rows, crate::run::NO_GATHER);
        let _ = writeln!(
            md,
            "| {} | {:.0} ({:.0}%) | {} | {} | {} | {} | {:+.0} µs | {} | {} |",
            f.cell,
            f.rate,
            f.share * 100.0,
            schedule(f),
            ratio(w.msgs_per_server_cpu_sec, t.msgs_per_server_cpu_sec),
            ratio(w.msgs_per_server_cpu_sec, b.msgs_per_server_cpu_sec),
            ratio(w.msgs_per_server_cpu_sec, better.msgs_per_server_cpu_sec),
            w.p50_us - better.p50_us,
            no_gather.map_or("—".into(), |n| ratio(n.msgs_per_server_cpu_sec, better.msgs_per_server_cpu_sec)),
            no_gather.map_or("—".into(), |n| format!("{:+.0} µs", n.p50_us - better.p50_us)),
        );
    }
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "| cell | rate msgs/s | server | msgs/s echoed | server CPU-µs per message | msgs per server-CPU s | p50 µs | p99 µs | p99.9 µs | generator late p99 µs | sent (all rounds) | missing (all rounds) | errors |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for f in fixed {
        for (label, r) in &f.rows {
            let _ = writeln!(
                md,
                "| {} | {:.0} | {label} | {:.0} | {:.2} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {} | {} |",
                f.cell,
                f.rate,
                r.msgs_per_sec,
                r.server_cpu_us_per_msg(),
                r.msgs_per_server_cpu_sec,
                r.p50_us,
                r.p99_us,
                r.p999_us,
                r.send_late_p99_us,
                r.sent,
                r.missing,
                r.errors
            );
        }
    }
}

pub fn markdown(results: &Results) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "Measured {} on {} (commit {}).", date(), machine(), commit());
    let _ = writeln!(
        md,
        "Command: {}, interleaved; {}.\n",
        results.command,
        if results.pinned { "servers pinned to core 0, load generator to core 1" } else { "unpinned" }
    );
    let _ = writeln!(md, "### Ratios\n");
    let _ = writeln!(
        md,
        "| cell | regime | wsbox ÷ tokio-tungstenite (msgs/s) | wsbox ÷ tokio-tungstenite (msgs per server-CPU s) | wsbox ÷ Bun (msgs per server-CPU s) | wsbox ÷ the better of the two (msgs per server-CPU s) | wsbox ÷ raw TCP (msgs/s) | p50 wsbox − tokio-tungstenite |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
    for (cell, row) in &results.cells {
        let (w, t, raw) = match (
            find(row, "wsbox").or(find(row, "wsbox (TLS)")),
            find(row, "tokio-tungstenite").or(find(row, "tokio-tungstenite + tokio-rustls")),
            find(row, "raw TCP echo"),
        ) {
            (Some(w), Some(t), raw) => (w, t, raw),
            _ => continue,
        };
        let tls = if find(row, "wsbox (TLS)").is_some() { " (TLS)" } else { "" };
        let bun = find(row, crate::run::BUN);
        let best = best_baseline(row).unwrap_or(0.0);
        let _ = writeln!(
            md,
            "| {cell}{tls} | {} | {} | {} | {} | {} | {} | {:+.0} µs |",
            regime(row),
            ratio(w.msgs_per_sec, t.msgs_per_sec),
            ratio(w.msgs_per_server_cpu_sec, t.msgs_per_server_cpu_sec),
            bun.map_or("—".into(), |b| ratio(w.msgs_per_server_cpu_sec, b.msgs_per_server_cpu_sec)),
            ratio(w.msgs_per_server_cpu_sec, best),
            raw.map_or("—".into(), |r| ratio(w.msgs_per_sec, r.msgs_per_sec)),
            w.p50_us - t.p50_us
        );
    }
    let plain = results.cells.iter().find(|(c, row)| c.starts_with("64×16×1 KiB") && find(row, "wsbox").is_some());
    let tls = results.cells.iter().find(|(_, row)| find(row, "wsbox (TLS)").is_some());
    if let (Some((_, plain)), Some((_, tls))) = (plain, tls) {
        let (p, s) = (find(plain, "wsbox").unwrap(), find(tls, "wsbox (TLS)").unwrap());
        let _ = writeln!(
            md,
            "\nwsbox over TLS ÷ wsbox plain, headline cell: {} msgs/s.",
            ratio(s.msgs_per_sec, p.msgs_per_sec)
        );
    }

    let _ = writeln!(md, "\n### Every cell (medians)\n");
    let _ = writeln!(
        md,
        "| cell | server | msgs/s | MiB/s | p50 µs | p99 µs | p99.9 µs | server CPU % | msgs per server-CPU s | generator CPU % | errors |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|");
    for (cell, row) in &results.cells {
        for (label, r) in row {
            let _ = writeln!(
                md,
                "| {cell} | {label} | {:.0} | {:.1} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {} |",
                r.msgs_per_sec,
                r.mib_per_sec,
                r.p50_us,
                r.p99_us,
                r.p999_us,
                r.server_cpu_pct,
                r.msgs_per_server_cpu_sec,
                r.client_cpu_pct,
                r.errors
            );
        }
    }

    open_loop_tables(&mut md, &results.open_loop);

    let _ = writeln!(md, "\n### Memory per idle connection\n");
    let n = results.idle.first().map_or(0, |(_, r)| r.conns);
    let _ = writeln!(
        md,
        "| server | RSS, no connection | RSS, {n} idle | RSS after they close | per connection | RSS, {n} idle again | per connection, again |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|");
    for (label, r) in &results.idle {
        let _ = writeln!(
            md,
            "| {label} | {:.1} MiB | {:.1} MiB | {:.1} MiB | {:.1} KiB | {:.1} MiB | {:.1} KiB |",
            mib(r.rss_before),
            mib(r.rss_open),
            mib(r.rss_after),
            r.bytes_per_conn / 1024.0,
            mib(r.rss_open_again),
            r.bytes_per_conn_again / 1024.0
        );
    }
    let _ = writeln!(
        md,
        "\n### Cold start\n\nSpawn to \"listening\" (median): {:.0} ms compiling the component (`--no-compile-cache`), {:.0} ms with the compile cache warm.",
        results.cold_start_ms, results.cached_start_ms
    );
    md
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn date() -> String {
    std::process::Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Replaces the text between the result markers of `path` (creating the
/// file, or appending the markers, when they are missing).
pub fn write_section(path: &Path, section: &str) -> Result<()> {
    write_between(path, BEGIN, END, section)
}

/// Replaces what lies between the `begin` and `end` markers of `path` (or
/// appends the block).
pub fn write_between(path: &Path, begin: &str, end: &str, section: &str) -> Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let block = format!("{begin}\n{section}{end}");
    let new = match (old.find(begin), old.find(end)) {
        (Some(b), Some(e)) if b < e => format!("{}{block}{}", &old[..b], &old[e + end.len()..]),
        _ => format!("{old}{}{block}\n", if old.is_empty() || old.ends_with('\n') { "" } else { "\n" }),
    };
    std::fs::write(path, new)?;
    Ok(())
}
