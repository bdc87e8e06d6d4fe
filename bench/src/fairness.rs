//! `wsbox-bench fairness`: does one busy peer starve the others? A light
//! client (1 connection, 1 message of 32 B in flight) measures its round
//! trip alone, then beside a flood (4 connections × 64 in flight × 64 KiB)
//! on the same server; wsbox and tokio-tungstenite, pinned as `run` does.

use crate::load::{Kind, LoadReport};
use crate::run::{self, RunOptions};
use crate::servers::Running;
use anyhow::Result;
use std::fmt::Write as _;
use std::path::Path;

pub const BEGIN: &str = "<!-- wsbox-bench:fairness:begin -->";
pub const END: &str = "<!-- wsbox-bench:fairness:end -->";

pub fn run(mut opts: RunOptions) -> Result<String> {
    let run::Setup { wsbox, pinned, server_core, load_core } = run::Setup::new(&mut opts)?;
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let servers = [
        (
            "wsbox",
            Running::start(
                "wsbox",
                &wsbox,
                &s(&["serve", "--listen", "127.0.0.1:0", "--log-level", "warn"]),
                server_core,
                "ws",
            )?,
        ),
        ("tokio-tungstenite", Running::tungstenite(server_core)?),
    ];
    let light = run::cell(1, 1, 32, Kind::Text);
    let flood = run::cell(4, 64, 64 * 1024, Kind::Binary);
    let mut md = String::new();
    writeln!(
        md,
        "{} Command: `just bench-fairness` (`wsbox-bench fairness`) — {} round(s) of {} s; the light client is {}, the flood {}; {}.\n",
        crate::report::measured_on(),
        opts.rounds,
        opts.duration,
        light.name,
        flood.name,
        if pinned { "servers pinned to core 0, load generators to core 1" } else { "unpinned" }
    )?;
    writeln!(
        md,
        "| server | light p50 alone µs | light p99 alone µs | light p50 beside the flood µs | light p99 beside the flood µs | flood msgs/s | errors |"
    )?;
    writeln!(md, "|---|---:|---:|---:|---:|---:|---:|")?;
    for (label, server) in &servers {
        let (mut alone, mut beside, mut floods) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..opts.rounds {
            alone.push(run::load(server, None, &light, &opts, load_core)?);
            let (l, f) = std::thread::scope(|scope| -> Result<(LoadReport, LoadReport)> {
                let flooding = scope.spawn(|| run::load(server, None, &flood, &opts, load_core));
                let l = run::load(server, None, &light, &opts, load_core)?;
                let f = flooding.join().map_err(|_| anyhow::anyhow!("the flood thread panicked"))??;
                Ok((l, f))
            })?;
            eprintln!(
                "wsbox-bench fairness: {label} round {}: light p99 {:.0} µs alone, {:.0} µs beside the flood",
                round + 1,
                alone[round].p99_us,
                l.p99_us
            );
            beside.push(l);
            floods.push(f);
        }
        let (a, b, f) = (run::median(&alone), run::median(&beside), run::median(&floods));
        writeln!(
            md,
            "| {label} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {} |",
            a.p50_us,
            a.p99_us,
            b.p50_us,
            b.p99_us,
            f.msgs_per_sec,
            a.errors + b.errors + f.errors
        )?;
    }
    drop(servers);
    if let Some(out) = &opts.out {
        crate::report::write_between(Path::new(out), BEGIN, END, &md)?;
    }
    Ok(md)
}
