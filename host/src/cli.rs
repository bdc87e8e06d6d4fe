//! The command line.

use crate::bindings::api::CompressionOptions;
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

/// How log lines are written (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
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
    /// Milliseconds a client has to complete its upgrade request (the TLS
    /// handshake included on wss://); -1 disables the deadline (Qt's
    /// `handshakeTimeout`).
    #[arg(long, default_value_t = 10_000, value_name = "MS", allow_negative_numbers = true, value_parser = clap::value_parser!(i32).range(-1..))]
    pub handshake_timeout_ms: i32,
    /// The `Server:` header of handshake responses.
    #[arg(long, default_value = "wsbox", value_name = "NAME")]
    pub server_name: String,
    /// Certificate chain (PEM, leaf first; RSA, ECDSA or Ed25519) for `wss://`.
    #[arg(long, value_name = "PEM", requires = "tls_key", help_heading = "TLS (wss://, terminated by the host)")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of the certificate; it never enters the sandbox.
    #[arg(long, value_name = "PEM", requires = "tls_cert", help_heading = "TLS (wss://, terminated by the host)")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates that chain to these CA certificates (PEM).
    /// Off by default: browsers abort when asked unexpectedly.
    #[arg(long, value_name = "PEM", requires = "tls_cert", help_heading = "TLS (wss://, terminated by the host)")]
    pub tls_client_ca: Option<PathBuf>,
    /// Where to serve `wss://` (beside `ws://` on --listen).
    #[arg(
        long,
        value_name = "ADDR:PORT",
        default_value = "127.0.0.1:1443",
        help_heading = "TLS (wss://, terminated by the host)"
    )]
    pub tls_listen: SocketAddr,
    /// Decline permessage-deflate (on by default).
    #[arg(long, help_heading = "Compression (permessage-deflate)")]
    pub no_deflate: bool,
    /// Largest LZ77 window our compressor uses, as a power of two.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u8).range(8..=15), value_name = "8-15", help_heading = "Compression (permessage-deflate)")]
    pub deflate_server_window_bits: u8,
    /// Largest window clients are asked to compress with (when they allow it).
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u8).range(8..=15), value_name = "8-15", help_heading = "Compression (permessage-deflate)")]
    pub deflate_client_window_bits: u8,
    /// Reset our compressor after every message (saves ~256 KiB per idle connection, compresses worse).
    #[arg(long, help_heading = "Compression (permessage-deflate)")]
    pub deflate_server_no_context_takeover: bool,
    /// Ask clients to reset their compressor after every message.
    #[arg(long, help_heading = "Compression (permessage-deflate)")]
    pub deflate_client_no_context_takeover: bool,
    /// Messages shorter than this are sent uncompressed.
    #[arg(long, default_value_t = 32, value_name = "BYTES", help_heading = "Compression (permessage-deflate)")]
    pub deflate_min_size: u32,
    /// On Ctrl-C or SIGTERM: how long open connections get to answer our
    /// 1001 Going Away before the server exits.
    #[arg(long, default_value_t = 5000, value_name = "MS")]
    pub shutdown_timeout_ms: u64,
    /// Log format: `text` for people, `json` (one object per line) for machines.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log level of wsbox (`error`, `warn`, `info`, `debug`, `trace`; other
    /// crates stay at `warn`), or a full `tracing` directive such as
    /// `wsbox=debug,wasmtime=info`. `RUST_LOG` overrides it.
    #[arg(long, default_value = "info", value_name = "FILTER")]
    pub log_level: String,
}

impl ServeArgs {
    /// The permessage-deflate settings these flags ask for.
    pub fn compression(&self) -> CompressionOptions {
        CompressionOptions {
            enabled: !self.no_deflate,
            server_max_window_bits: self.deflate_server_window_bits,
            client_max_window_bits: self.deflate_client_window_bits,
            server_no_context_takeover: self.deflate_server_no_context_takeover,
            client_no_context_takeover: self.deflate_client_no_context_takeover,
            min_size: self.deflate_min_size,
        }
    }
}
