//! `wsbox-bench http2`: the same WebSockets over HTTP/1.1 (a TLS connection
//! each) and as streams of HTTP/2 connections (RFC 8441), on one wsbox with
//! TLS, pinned as `run` does: echo throughput per second of server CPU, and
//! the server's CPU to open a WebSocket (TCP, TLS and WebSocket handshakes,
//! against an extended CONNECT on a connection already open).

use crate::load::{Kind, LoadReport};
use crate::run::{self, RunOptions};
use crate::servers::Running;
use anyhow::Result;
use std::fmt::Write as _;

pub const BEGIN: &str = "<!-- wsbox-bench:http2:begin -->";
pub const END: &str = "<!-- wsbox-bench:http2:end -->";

/// (label, WebSockets, streams per HTTP/2 connection: 0 for HTTP/1.1).
type Way = (&'static str, usize);

pub fn run(mut opts: RunOptions) -> Result<String> {
    let run::Setup { wsbox, pinned, server_core, load_core } = run::Setup::new(&mut opts)?;
    let identity = crate::pki::Identity::generate()?;
    let (cert, key) = (identity.cert.display().to_string(), identity.key.display().to_string());
    let args: Vec<String> = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tls-listen",
        "127.0.0.1:0",
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--log-level",
        "warn",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let server = Running::start("wsbox (wss://)", &wsbox, &args, server_core, "wss")?;
    let (echo, opening) = if opts.quick {
        (run::cell(8, 4, 1024, Kind::Binary), run::cell(40, 1, 32, Kind::Binary))
    } else {
        (run::cell(64, 16, 1024, Kind::Binary), run::cell(1000, 1, 32, Kind::Binary))
    };
    let echo_ways: [Way; 3] = [
        ("HTTP/1.1, a TLS connection each", 0),
        ("HTTP/2, 8 connections × 8 streams", 8),
        ("HTTP/2, 1 connection × 64 streams", 64),
    ];
    let opening_ways: [Way; 2] =
        [("HTTP/1.1, a TLS connection each", 0), ("HTTP/2, 10 connections × 100 streams", 100)];
    let echo_ways = if opts.quick { &echo_ways[..2] } else { &echo_ways[..] };
    let mut md = String::new();
    writeln!(
        md,
        "{}\n`cargo run --release -p wsbox-bench -- http2`: {} round(s), {} s measured after {} s warm-up, ways interleaved round by round; {}.\n",
        crate::report::measured_on(),
        opts.rounds,
        opts.duration,
        opts.warmup,
        if pinned { "wsbox pinned to core 0, the generator to core 1" } else { "unpinned" }
    )?;
    let measure = |cell: &run::Cell, ways: &[Way], opts: &RunOptions| -> Result<Vec<LoadReport>> {
        let mut runs: Vec<Vec<LoadReport>> = vec![Vec::new(); ways.len()];
        for round in 0..opts.rounds {
            for (i, (label, streams)) in ways.iter().enumerate() {
                let streams = if opts.quick && *streams > 0 { cell.conns.min(*streams) } else { *streams };
                let report = run::load_over(&server, Some(&identity.ca), cell, opts, load_core, streams)?;
                eprintln!(
                    "wsbox-bench http2: {} round {} {label}: {:.0} msgs/s, {:.0} per server-CPU-s, opening {:.0} µs of server CPU each",
                    cell.name,
                    round + 1,
                    report.msgs_per_sec,
                    report.msgs_per_server_cpu_sec,
                    report.open_server_cpu_us
                );
                runs[i].push(report);
            }
        }
        Ok(runs.iter().map(|r| run::median(r)).collect())
    };

    let echoed = measure(&echo, echo_ways, &opts)?;
    writeln!(md, "**Echo, {}** (closed loop):\n", echo.name)?;
    writeln!(md, "| way | msgs/s | server CPU | msgs per server-CPU-s | p50 | p99 | generator CPU | errors |")?;
    writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|")?;
    for ((label, _), r) in echo_ways.iter().zip(&echoed) {
        writeln!(
            md,
            "| {label} | {:.0} | {:.0}% | {:.0} | {:.0} µs | {:.0} µs | {:.0}% | {} |",
            r.msgs_per_sec, r.server_cpu_pct, r.msgs_per_server_cpu_sec, r.p50_us, r.p99_us, r.client_cpu_pct, r.errors
        )?;
    }
    let ratio = |i: usize| echoed[i].msgs_per_server_cpu_sec / echoed[0].msgs_per_server_cpu_sec.max(f64::MIN_POSITIVE);
    let ratios: Vec<String> = (1..echoed.len()).map(|i| format!("{:.2}×", ratio(i))).collect();
    writeln!(md, "\nHTTP/2 ÷ HTTP/1.1 per server-CPU-s: **{}**.\n", ratios.join(" / "))?;

    // Opening: a short run whose measured part does not matter; what
    // counts is the server's CPU while the sockets were opened.
    let short = RunOptions { duration: 0.5, warmup: 0.2, ..opts.clone() };
    let opened = measure(&opening, &opening_ways, &short)?;
    writeln!(md, "**Opening {} WebSockets**:\n", opening.conns)?;
    writeln!(md, "| way | server CPU per WebSocket opened |")?;
    writeln!(md, "|---|---:|")?;
    for ((label, _), r) in opening_ways.iter().zip(&opened) {
        writeln!(md, "| {label} | {:.0} µs |", r.open_server_cpu_us)?;
    }
    writeln!(
        md,
        "\nAn HTTP/2 stream costs the server **{:.2}×** what a TLS connection and its upgrade cost.",
        opened[1].open_server_cpu_us / opened[0].open_server_cpu_us.max(f64::MIN_POSITIVE)
    )?;
    if let Some(out) = &opts.out {
        crate::report::write_between(out, BEGIN, END, &md)?;
    }
    Ok(md)
}
