//! `wsbox-bench`: a load generator, the native baselines, and `run`, which
//! measures wsbox against them and writes `docs/benchmarks.md`.

mod baselines;
mod broadcast;
mod fairness;
mod hosts;
mod http2;
mod load;
mod open_loop;
mod pki;
mod procfs;
mod report;
mod run;
mod servers;
mod uring;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(version, about = "Benchmarks wsbox against a raw TCP echo and tokio-tungstenite")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Every cell against every server, interleaved; prints (and with --out writes) the report.
    Run(run::RunOptions),
    /// One component under every host (wsbox with each binding, stock
    /// wasmtime, Node + jco) beside tokio-tungstenite; prints (and with
    /// --out writes) the table.
    Hosts(hosts::HostsOptions),
    /// A light client's round trip alone and beside a flooding peer, on wsbox
    /// and tokio-tungstenite; prints (and with --out writes) the table.
    Fairness(run::RunOptions),
    /// Topics: wsbox's relay, Bun's pub/sub and a tokio-tungstenite
    /// broadcast at fixed publication rates, interleaved; prints (and with
    /// --out writes) the table.
    Broadcast {
        #[command(flatten)]
        run: run::RunOptions,
        /// The Bun binary (default: bench/bootstrap-bun.sh installs the pinned one).
        #[arg(long)]
        bun: Option<PathBuf>,
    },
    /// WebSockets over HTTP/1.1 against the same as HTTP/2 streams (RFC
    /// 8441) on wsbox with TLS: echo per server-CPU second, and the
    /// server's CPU to open one; prints (and with --out writes) the table.
    Http2(run::RunOptions),
    /// What `io_uring` would save: a broadcast's sends and a lone client's
    /// echo on loopback TCP, a system call each against `io_uring`
    /// submissions, interleaved; prints (and with --out writes) the table.
    Uring(run::RunOptions),
    /// One broadcast run against a URL; prints a JSON report.
    BroadcastLoad(broadcast::BroadcastLoadOptions),
    /// One load run against a URL; prints a JSON report.
    Load(load::LoadOptions),
    /// Resident memory of a server with idle connections; prints JSON.
    Idle {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 1000)]
        conns: usize,
        #[arg(long)]
        server_pid: u32,
        #[arg(long)]
        ca: Option<PathBuf>,
    },
    /// Serves a native baseline.
    Serve {
        #[arg(value_enum)]
        kind: baselines::Baseline,
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Certificate chain (PEM) for `tungstenite-tls`.
        #[arg(long)]
        cert: Option<PathBuf>,
        /// Private key (PEM) for `tungstenite-tls`.
        #[arg(long)]
        key: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    match run_cli(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wsbox-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_cli(cli: Cli) -> Result<()> {
    let runtime = || tokio::runtime::Builder::new_multi_thread().enable_all().build();
    match cli.command {
        Cmd::Run(opts) => {
            let results = run::run(opts)?;
            print!("{}", results.markdown);
        }
        Cmd::Hosts(opts) => print!("{}", hosts::run(opts)?),
        Cmd::Fairness(opts) => print!("{}", fairness::run(opts)?),
        Cmd::Broadcast { run, bun } => print!("{}", broadcast::run(run, bun)?),
        Cmd::Http2(opts) => print!("{}", http2::run(opts)?),
        Cmd::Uring(opts) => print!("{}", uring::run(opts)?),
        Cmd::BroadcastLoad(opts) => {
            // One thread: the generator is pinned to one core, where a
            // second runtime thread would only add context switches to the
            // latency it measures.
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let report = runtime.block_on(broadcast::broadcast_load(opts))?;
            println!("{}", serde_json::to_string(&report)?);
        }
        Cmd::Load(opts) => {
            // The open loop yields between sends, which only a runtime of
            // one thread turns into polling the sockets (see open_loop.rs).
            let runtime = if opts.rate > 0.0 {
                tokio::runtime::Builder::new_current_thread().enable_all().build()?
            } else {
                runtime()?
            };
            let report = runtime.block_on(load::run(opts))?;
            println!("{}", serde_json::to_string(&report)?);
        }
        Cmd::Idle { url, conns, server_pid, ca } => {
            let report = runtime()?.block_on(load::idle(&url, ca.as_deref(), conns, server_pid))?;
            println!("{}", serde_json::to_string(&report)?);
        }
        Cmd::Serve { kind, listen, cert, key } => {
            let tls = match (kind, cert, key) {
                (baselines::Baseline::TungsteniteTls, Some(cert), Some(key)) => Some(pki::server_config(&cert, &key)?),
                (baselines::Baseline::TungsteniteTls, _, _) => anyhow::bail!("tungstenite-tls needs --cert and --key"),
                _ => None,
            };
            runtime()?.block_on(baselines::serve(kind, listen, tls))?;
        }
    }
    Ok(())
}
