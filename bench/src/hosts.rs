//! `wsbox-bench hosts`: one component, many hosts. The same echo through
//! the wsbox host with each binding (host-fed, `--binding wasi`), the WASI
//! component under stock `wasmtime run` (the echo command component), under
//! Node through jco (`examples/node`), and tokio-tungstenite as the native
//! anchor; interleaved, pinned as `run` does, ratios to the wsbox host.

use crate::load::{Kind, LoadReport};
use crate::run::{self, RunOptions};
use crate::servers::Running;
use anyhow::{Context, Result, bail};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;

pub const BEGIN: &str = "<!-- wsbox-bench:hosts:begin -->";
pub const END: &str = "<!-- wsbox-bench:hosts:end -->";

#[derive(Clone, Debug, clap::Args)]
pub struct HostsOptions {
    #[command(flatten)]
    pub run: RunOptions,
    /// The wasmtime CLI (`host/tests/clients/bootstrap-wasmtime-cli.sh` prints it).
    #[arg(long)]
    pub wasmtime: PathBuf,
    /// `examples/node`, prepared by its `bootstrap.sh`.
    #[arg(long)]
    pub node_example: PathBuf,
}

/// A server under test and the cells it can take.
struct Host {
    label: &'static str,
    running: Running,
    /// Takes the 1 000-connection cell (wasmtime 48's CLI stalls past ~128:
    /// wasmtime issue #14174).
    many: bool,
}

pub fn run(mut opts: HostsOptions) -> Result<String> {
    let run::Setup { wsbox, pinned, server_core, load_core } = run::Setup::new(&mut opts.run)?;
    let dir = std::env::temp_dir().join(format!("wsbox-bench-hosts-{}", std::process::id()));
    let written = Command::new(&wsbox).args(["components", "--out"]).arg(&dir).output()?;
    if !written.status.success() {
        bail!("wsbox components: {}", String::from_utf8_lossy(&written.stderr));
    }
    let echo = dir.join("wsbox-echo.wasm").display().to_string();
    let script = opts.node_example.join("echo-server.mjs");
    if !script.exists() || !opts.node_example.join("gen/wsbox.js").exists() {
        bail!("{} is not prepared: run examples/node/bootstrap.sh first", opts.node_example.display());
    }
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let listen = ["--listen", "127.0.0.1:0"];
    let quiet = [&["serve"], &listen[..], &["--log-level", "warn"]].concat();
    let node = PathBuf::from("node");
    let hosts = vec![
        Host {
            label: "wsbox host, host-fed",
            running: Running::start("wsbox", &wsbox, &s(&quiet), server_core, "ws")?,
            many: true,
        },
        Host {
            label: "wsbox host, --binding wasi",
            running: Running::start(
                "wsbox-wasi",
                &wsbox,
                &s(&[&quiet[..], &["--binding", "wasi"]].concat()),
                server_core,
                "ws",
            )?,
            many: true,
        },
        Host {
            label: "wasmtime run 48.0.8 (echo command)",
            running: Running::start(
                "wasmtime",
                &opts.wasmtime,
                &s(&[&["run", "-S", "inherit-network", &echo][..], &listen[..]].concat()),
                server_core,
                "ws",
            )?,
            many: false,
        },
        Host {
            label: "Node 20 + jco 1.35",
            running: Running::start(
                "node",
                &node,
                &s(&[&[script.to_str().context("a UTF-8 path")?][..], &listen[..]].concat()),
                server_core,
                "ws",
            )?,
            many: true,
        },
        Host { label: "tokio-tungstenite (native)", running: Running::tungstenite(server_core)?, many: true },
    ];
    let many = if opts.run.quick { 50 } else { 1000 };
    let cells = [
        run::cell(1, 1, 32, Kind::Text),
        run::cell(64, 16, 1024, Kind::Binary),
        run::cell(64, 16, 64 * 1024, Kind::Binary),
        run::cell(many, 16, 1024, Kind::Binary),
    ];
    let mut md = String::new();
    writeln!(
        md,
        "{} Command: `just bench-hosts` (`wsbox-bench hosts`) — {} round(s) of {} s per host and cell, interleaved; {}.\n",
        crate::report::measured_on(),
        opts.run.rounds,
        opts.run.duration,
        if pinned { "servers pinned to core 0, load generator to core 1" } else { "unpinned" }
    )?;
    writeln!(md, "| cell | host | msgs/s | × wsbox host-fed | msgs per server-CPU s | × | p50 µs | p99 µs | errors |")?;
    writeln!(md, "|---|---|---:|---:|---:|---:|---:|---:|---:|")?;
    for cell in &cells {
        let mut runs: Vec<Vec<LoadReport>> = hosts.iter().map(|_| Vec::new()).collect();
        for round in 0..opts.run.rounds {
            for (i, host) in hosts.iter().enumerate() {
                if cell.conns > 128 && !host.many {
                    continue;
                }
                let report = run::load(&host.running, None, cell, &opts.run, load_core)?;
                eprintln!(
                    "wsbox-bench hosts: {} round {} {}: {:.0} msgs/s",
                    cell.name,
                    round + 1,
                    host.label,
                    report.msgs_per_sec
                );
                runs[i].push(report);
            }
        }
        let medians: Vec<Option<LoadReport>> = runs.iter().map(|r| (!r.is_empty()).then(|| run::median(r))).collect();
        let base = medians[0].clone().context("the wsbox host ran every cell")?;
        for (host, m) in hosts.iter().zip(&medians) {
            match m {
                Some(m) => writeln!(
                    md,
                    "| {} | {} | {:.0} | {:.2} | {:.0} | {:.2} | {:.0} | {:.0} | {} |",
                    cell.name,
                    host.label,
                    m.msgs_per_sec,
                    m.msgs_per_sec / base.msgs_per_sec,
                    m.msgs_per_server_cpu_sec,
                    m.msgs_per_server_cpu_sec / base.msgs_per_server_cpu_sec,
                    m.p50_us,
                    m.p99_us,
                    m.errors
                )?,
                None => writeln!(
                    md,
                    "| {} | {} | — | — | — | — | — | — | stalls past ~128 connections (wasmtime #14174) |",
                    cell.name, host.label
                )?,
            }
        }
    }
    drop(hosts);
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(out) = &opts.run.out {
        crate::report::write_between(out, BEGIN, END, &md)?;
    }
    Ok(md)
}
