//! The command line.

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Qt's QWebSocketServer as a sandboxed WebAssembly component.
#[derive(Debug, Parser)]
#[command(name = "wsbox", version, about, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// `wsbox` alone is `wsbox serve`.
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the echo app (the default).
    Serve(ServeArgs),
}

/// Options of `wsbox serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address and port to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:1234", value_name = "ADDR:PORT")]
    pub listen: SocketAddr,
    /// Run this component instead of the embedded one.
    #[arg(long, value_name = "PATH")]
    pub component: Option<PathBuf>,
    /// The `Server:` header of handshake responses.
    #[arg(long, default_value = "wsbox", value_name = "NAME")]
    pub server_name: String,
    /// Log filter (`error`, `warn`, `info`, `debug`, `trace`, or a
    /// `tracing` directive); `RUST_LOG` overrides it.
    #[arg(long, default_value = "info", value_name = "FILTER")]
    pub log_level: String,
}
