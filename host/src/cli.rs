//! The command line.

use crate::apps::echo::{DEFAULT_RELOAD_DRAIN, EchoOptions};
use crate::bindings::api::CompressionOptions;
use crate::net::AdmissionLimits;
use clap::{Args, CommandFactory, Parser, Subcommand};
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use wsbox_defaults as defaults;

/// Qt's QWebSocketServer as a sandboxed WebAssembly component.
#[derive(Debug, Parser)]
#[command(name = "wsbox", version, about, args_conflicts_with_subcommands = true, args_override_self = true)]
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
    Serve(Box<ServeArgs>),
    /// Write the three components this build made (the host-fed one, the
    /// WASI one, the echo command) to a directory and print their paths.
    Components(ComponentsArgs),
    /// Run an app component (server logic in any language, world `app`,
    /// composed with a server component) in the sandbox.
    Run(RunArgs),
    /// Print a shell completion script for wsbox (e.g. `wsbox completions
    /// bash > /etc/bash_completion.d/wsbox`).
    Completions(CompletionsArgs),
    /// Write wsbox's man pages (wsbox.1 and one per subcommand) to a directory.
    Man(ManArgs),
}

/// Options of `wsbox man`.
#[derive(Debug, Clone, Args)]
pub struct ManArgs {
    /// The directory to write the pages to (created if missing).
    #[arg(long, value_name = "DIR", default_value = "man")]
    pub out: PathBuf,
}

/// Options of `wsbox completions`.
#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Writes `shell`'s completion script for the whole command line to `out`.
pub fn write_completions(shell: clap_complete::Shell, out: &mut dyn std::io::Write) {
    clap_complete::generate(shell, &mut Cli::command(), "wsbox", out);
}

/// Writes `wsbox.1` and a page per subcommand (`wsbox-serve.1`, …) into
/// `dir`; returns the paths written.
pub fn write_man_pages(dir: &std::path::Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let command = Cli::command();
    let mut written = Vec::new();
    let mut page = |name: String, command: clap::Command| -> std::io::Result<()> {
        let path = dir.join(format!("{name}.1"));
        let mut file = std::fs::File::create(&path)?;
        clap_mangen::Man::new(command).render(&mut file)?;
        written.push(path);
        Ok(())
    };
    page("wsbox".into(), command.clone())?;
    for sub in command.get_subcommands() {
        let name = format!("wsbox-{}", sub.get_name());
        page(name.clone(), sub.clone().name(name))?;
    }
    Ok(written)
}

/// Options of `wsbox run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Where the app may listen (repeat for several; port 0 allows any
    /// port of that address).
    #[arg(long = "allow-listen", default_value = "127.0.0.1:0", value_name = "ADDR:PORT")]
    pub allow_listen: Vec<SocketAddr>,
    /// Largest linear memory the app may use, in MiB.
    #[arg(long, default_value_t = 1024, value_name = "MIB", value_parser = clap::value_parser!(u64).range(16..=4096))]
    pub max_guest_memory_mib: u64,
    /// The composed app component (`wac plug app.wasm --plug wsbox-server.wasm`).
    pub app: PathBuf,
    /// The app's own arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "ARGS")]
    pub args: Vec<String>,
}

/// Options of `wsbox components`.
#[derive(Debug, Clone, Args)]
pub struct ComponentsArgs {
    /// Where to write them.
    #[arg(long, default_value = "components", value_name = "DIR")]
    pub out: PathBuf,
}

/// Which I/O binding serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BindingArg {
    /// The host owns the sockets and TLS and feeds the component one batch
    /// per turn (`wsbox:websocket/net`): the fast path.
    HostFed,
    /// The component listens through `wasi:sockets` itself, as under stock
    /// WASI hosts (plain ws:// only; for comparison and testing).
    Wasi,
}

/// How log lines are written (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Options of `wsbox serve`.
#[derive(Debug, Clone, PartialEq, Args)]
pub struct ServeArgs {
    /// Read options from a TOML file: its keys are these flags' long names
    /// (`listen = "0.0.0.0:80"`, `no-deflate = true`); flags on the command
    /// line win over the file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address and port to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:1234", value_name = "ADDR:PORT")]
    pub listen: SocketAddr,
    /// Run this component instead of the embedded one (either binding; it
    /// is told by the component's imports).
    #[arg(long, value_name = "PATH", conflicts_with = "binding")]
    pub component: Option<PathBuf>,
    /// Which embedded component serves: the host-fed one, or the one that
    /// listens through wasi:sockets itself (no TLS; the transport limits
    /// are the component's own).
    #[arg(long, value_enum, default_value_t = BindingArg::HostFed)]
    pub binding: BindingArg,
    /// Milliseconds a client has to complete its upgrade request (the TLS
    /// handshake included on wss://); -1 disables the deadline (Qt's
    /// `handshakeTimeout`).
    #[arg(long, default_value_t = defaults::HANDSHAKE_TIMEOUT_MS as i32, value_name = "MS", allow_negative_numbers = true, value_parser = clap::value_parser!(i32).range(-1..))]
    pub handshake_timeout_ms: i32,
    /// The `Server:` header of handshake responses.
    #[arg(long, default_value = "wsbox", value_name = "NAME")]
    pub server_name: String,
    /// Upgraded connections that may wait for the app at once (Qt's
    /// `maxPendingConnections`); past it clients get 503.
    #[arg(long, default_value_t = defaults::MAX_PENDING_CONNECTIONS as u32, value_name = "N", help_heading = "Handshake policy")]
    pub max_pending_connections: u32,
    /// A subprotocol the server accepts (repeat the flag for several; the
    /// client's first offer on the list is chosen, Qt's rule).
    #[arg(long = "subprotocol", value_name = "NAME", help_heading = "Handshake policy")]
    pub subprotocols: Vec<String>,
    /// An `Origin` allowed to connect (repeat for several); others get 403.
    /// By default any origin may connect.
    #[arg(long = "allowed-origin", value_name = "ORIGIN", help_heading = "Handshake policy")]
    pub allowed_origins: Vec<String>,
    /// Largest frame payload accepted; a larger frame is refused with 1009
    /// from its header (Qt's `maxAllowedIncomingFrameSize`).
    #[arg(long, default_value_t = defaults::MAX_FRAME_SIZE, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..=defaults::MAX_CONFIGURABLE_SIZE), help_heading = "Sizes")]
    pub max_frame_size: u64,
    /// Largest message accepted (after inflation), closed with 1009 past it.
    #[arg(long, default_value_t = defaults::MAX_MESSAGE_SIZE, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..=defaults::MAX_CONFIGURABLE_SIZE), help_heading = "Sizes")]
    pub max_message_size: u64,
    /// Payload bytes per outgoing frame; longer messages are fragmented.
    #[arg(long, default_value_t = defaults::OUTGOING_FRAME_SIZE, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..=defaults::MAX_CONFIGURABLE_SIZE), help_heading = "Sizes")]
    pub outgoing_frame_size: u64,
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
    /// Offer only HTTP/1.1 on wss:// (by default ALPN offers HTTP/2 too, and
    /// a browser that holds an HTTP/2 connection to the server opens its
    /// WebSockets as streams of it; see docs/http2.md).
    #[arg(long, help_heading = "TLS (wss://, terminated by the host)")]
    pub no_http2: bool,
    /// Milliseconds an HTTP/2 connection may stay without a WebSocket
    /// stream before the server sends GOAWAY and closes it.
    #[arg(long, default_value_t = defaults::HTTP2_IDLE_TIMEOUT_MS, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..), help_heading = "TLS (wss://, terminated by the host)")]
    pub http2_idle_timeout_ms: u64,
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
    /// Largest LZ77 window our compressor uses, as a power of two; with context takeover each connection keeps this much of what it sent (15 = 32 KiB each: full context takeover).
    #[arg(long, default_value_t = defaults::DEFLATE_SERVER_WINDOW_BITS, value_parser = clap::value_parser!(u8).range(8..=15), value_name = "8-15", help_heading = "Compression (permessage-deflate)")]
    pub deflate_server_window_bits: u8,
    /// Largest window clients are asked to compress with (when they allow it); a client that does not allow it is asked not to keep its context unless this is 15.
    #[arg(long, default_value_t = defaults::DEFLATE_CLIENT_WINDOW_BITS, value_parser = clap::value_parser!(u8).range(8..=15), value_name = "8-15", help_heading = "Compression (permessage-deflate)")]
    pub deflate_client_window_bits: u8,
    /// Reset our compressor after every message (saves the window kept per connection, compresses worse).
    #[arg(long, help_heading = "Compression (permessage-deflate)")]
    pub deflate_server_no_context_takeover: bool,
    /// Ask clients to reset their compressor after every message.
    #[arg(long, help_heading = "Compression (permessage-deflate)")]
    pub deflate_client_no_context_takeover: bool,
    /// Messages shorter than this are sent uncompressed.
    #[arg(long, default_value_t = defaults::DEFLATE_MIN_SIZE as u32, value_name = "BYTES", help_heading = "Compression (permessage-deflate)")]
    pub deflate_min_size: u32,
    /// Ping a connection after this many ms without input (0: never); a
    /// peer that answers nothing within --keepalive-timeout-ms is closed with 1001.
    #[arg(long, default_value_t = 0, value_name = "MS", help_heading = "Transport")]
    pub keepalive_interval_ms: u32,
    /// How long a keepalive ping may go unanswered.
    #[arg(long, default_value_t = defaults::KEEPALIVE_TIMEOUT_MS as u32, value_name = "MS", value_parser = clap::value_parser!(u32).range(1..), help_heading = "Transport")]
    pub keepalive_timeout_ms: u32,
    /// Per connection, output not yet written past which sends are refused
    /// and the peer is not read until it has taken half of it (64 KiB to 8 MiB).
    #[arg(long, default_value_t = defaults::MAX_SEND_BUFFER, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(defaults::SEND_BUFFER_MIN..=defaults::SEND_BUFFER_MAX), help_heading = "Transport")]
    pub max_send_buffer: u64,
    /// Connections still in the opening handshake at most; a new one past
    /// it drops the oldest unfinished one (slowloris cannot lock clients out).
    #[arg(long, default_value_t = defaults::MAX_HANDSHAKING as u32, value_name = "N", value_parser = clap::value_parser!(u32).range(1..), help_heading = "Transport")]
    pub max_handshaking_connections: u32,
    /// Serve topics at this path prefix: a client connecting to
    /// PREFIX<topic> (e.g. `/topics/` + `lobby`) subscribes to the topic, and
    /// each message it sends is published to the topic's other subscribers,
    /// on every worker (wsbox's own relay; other paths still echo). Off by default.
    #[arg(long, value_name = "PREFIX", value_parser = parse_topic_path, help_heading = "Topics")]
    pub topic_path: Option<String>,
    /// Share topics with other wsbox processes through this NATS server
    /// (`nats://host:4222`): each publication goes to NATS once per process,
    /// each process subscribes to the topics its clients hold. Lost
    /// connections are retried with backoff; meanwhile topics stay local.
    #[arg(long, value_name = "URL", help_heading = "Topics")]
    pub nats: Option<String>,
    /// The NATS subject prefix topics are published under (`<prefix>.<topic>`).
    #[arg(long, default_value = crate::topics::nats::DEFAULT_SUBJECT_PREFIX, value_name = "SUBJECT", requires = "nats", help_heading = "Topics")]
    pub nats_subject_prefix: String,
    /// Event loops, each a thread with its own sandboxed instance, sharing
    /// the listening port (SO_REUSEPORT: the kernel spreads connections).
    /// One per core serves the most; a guest that traps takes down only its
    /// own worker's connections.
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256), help_heading = "Transport")]
    pub workers: u16,
    /// Open connections at most; past it new ones wait in the OS backlog.
    #[arg(long, default_value_t = wsbox_transport::MAX_CONNECTIONS as u64, value_name = "N", value_parser = clap::value_parser!(u64).range(1..), help_heading = "Transport")]
    pub max_connections: u64,
    /// Open connections one client address may hold (0: no cap); past it
    /// upgrades get 429 with Retry-After. Loopback peers are exempt unless
    /// --address-limits-on-loopback.
    #[arg(long, default_value_t = AdmissionLimits::default().max_per_address, value_name = "N", help_heading = "Admission")]
    pub max_connections_per_address: u32,
    /// Upgrades one client address may start per second (0: no limit);
    /// past it they get 429 with Retry-After.
    #[arg(long, default_value_t = AdmissionLimits::default().handshakes_per_address_per_second, value_name = "N", help_heading = "Admission")]
    pub max_handshakes_per_address_per_second: u32,
    /// Apply the per-address limits to loopback peers too (a local proxy's
    /// clients all share its loopback address, so they are exempt by default).
    #[arg(long, help_heading = "Admission")]
    pub address_limits_on_loopback: bool,
    /// Read a PROXY protocol header (v1 or v2, as HAProxy, nginx's stream
    /// module and AWS's NLB send) at the start of each connection from a
    /// --trusted-proxy: the app, the per-address limits and the logs see the
    /// client it names. From anyone else a connection that starts with a
    /// header is refused (a client cannot claim an address).
    #[arg(long, requires = "trusted_proxies", help_heading = "Proxies")]
    pub proxy_protocol: bool,
    /// A proxy trusted to name its clients: an address or a network such as
    /// 10.0.0.0/8 (repeat for several). With --proxy-protocol its
    /// connections start with a PROXY header; without, the last entry of
    /// its requests' `Forwarded` (or else `X-Forwarded-For`) header is the
    /// client's address the app and its logs see, and the per-address
    /// limits do not count the proxy's own address. Nobody else's headers
    /// are read.
    #[arg(long = "trusted-proxy", value_name = "CIDR", value_parser = crate::net::proxy::parse_trusted, help_heading = "Proxies")]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// A peer that takes none of its output for this long is dropped (a
    /// reader that stopped reading cannot hold memory forever).
    #[arg(long, default_value_t = wsbox_transport::WRITE_TIMEOUT_MS, value_name = "MS", value_parser = clap::value_parser!(u64).range(100..), help_heading = "Transport")]
    pub write_timeout_ms: u64,
    /// How long a saturated event loop lets input gather before handing it
    /// to the guest, in µs: fewer, larger turns cost less CPU per message
    /// and add about this much (plus the kernel's timer slack) to the round
    /// trip while the loop is saturated; a loop with idle time never
    /// pauses. 0: never gather (the lowest latency under load, the most CPU).
    #[arg(long, default_value_t = crate::net::GATHER_INPUT_US, value_name = "US", value_parser = clap::value_parser!(u64).range(0..=1000), help_heading = "Transport")]
    pub gather_input_us: u64,
    /// Where compiled components are cached, so later starts skip compiling
    /// (default: wasmtime's cache directory, ~/.cache/wasmtime).
    #[arg(long, value_name = "DIR", help_heading = "Sandbox")]
    pub compile_cache_dir: Option<PathBuf>,
    /// Compile the component at every start instead of caching it.
    #[arg(long, help_heading = "Sandbox")]
    pub no_compile_cache: bool,
    /// Largest linear memory the guest may use, in MiB; past it the guest
    /// traps and a fresh instance replaces it.
    #[arg(long, default_value_t = 1024, value_name = "MIB", value_parser = clap::value_parser!(u64).range(16..=4096), help_heading = "Sandbox")]
    pub max_guest_memory_mib: u64,
    /// Longest the guest may run without returning or waiting, in ms; a
    /// guest stuck in a loop is stopped and replaced. 0 turns the watchdog
    /// off (it adds a check to every loop iteration in the guest).
    #[arg(long, default_value_t = 2000, value_name = "MS", help_heading = "Sandbox")]
    pub max_guest_run_ms: u64,
    /// On Ctrl-C or SIGTERM: how long open connections get to answer our
    /// 1001 Going Away before the server exits.
    #[arg(long, default_value_t = 5000, value_name = "MS")]
    pub shutdown_timeout_ms: u64,
    /// On Ctrl-C or SIGTERM: how long the health check (`/healthz`) answers
    /// 503 while the server still serves, before the shutdown begins (give a
    /// load balancer time to stop sending new clients).
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub drain_delay_ms: u64,
    /// At a reload (SIGHUP) that changes the app (--component or its
    /// settings): how long the previous instance serves the connections it
    /// holds, while a new instance takes new ones, before it closes the
    /// rest with 1001 Going Away.
    #[arg(long, default_value_t = DEFAULT_RELOAD_DRAIN.as_millis() as u64, value_name = "MS")]
    pub reload_drain_timeout_ms: u64,
    /// A plain `GET` (or `HEAD`) of this path on the WebSocket listeners is
    /// a load balancer's health check: `200 serving` while the server takes
    /// new connections, `503 not serving` before it listens and once it
    /// drains (see --drain-delay-ms); any other plain request still gets
    /// 400. An empty path turns it off.
    #[arg(long, default_value = crate::health::DEFAULT_PATH, value_name = "PATH", value_parser = parse_health_check_path)]
    pub health_check_path: String,
    /// Serve a page to browsers at `/` on every listener (a plain `GET`;
    /// upgrade requests on `/` still upgrade): the example echo client
    /// (examples/echoclient.html, built in). Off unless given.
    #[arg(long)]
    pub page: bool,
    /// Serve FILE as the page at `/` instead of the example client.
    #[arg(long, value_name = "FILE")]
    pub page_file: Option<PathBuf>,
    /// Serve metrics (OpenMetrics text, `GET /metrics`) and the health check
    /// (`GET /healthz`) on this address; off unless given. Every series is in
    /// docs/operations.md.
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics_listen: Option<SocketAddr>,
    /// Also reload on `POST /reload` to the --metrics-listen address: what
    /// SIGHUP does, answered with the outcome (200, or 500 saying what was
    /// refused). Off unless given: whoever reaches that address can use it.
    #[arg(long, requires = "metrics_listen")]
    pub reload_endpoint: bool,
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
    /// The echo app's options these flags ask for (a `wss://` listener
    /// when `tls`); metrics and the worker label are the pool's to set.
    pub fn echo_options(&self, tls: bool) -> EchoOptions {
        EchoOptions {
            name: self.server_name.clone(),
            listen: self.listen,
            tls_listen: tls.then_some(self.tls_listen),
            compression: self.compression(),
            handshake_timeout_ms: self.handshake_timeout_ms,
            shutdown_grace: Duration::from_millis(self.shutdown_timeout_ms),
            reload_drain: Duration::from_millis(self.reload_drain_timeout_ms),
            max_pending_connections: self.max_pending_connections,
            subprotocols: self.subprotocols.clone(),
            allowed_origins: self.allowed_origins.clone(),
            max_frame_size: self.max_frame_size,
            max_message_size: self.max_message_size,
            outgoing_frame_size: self.outgoing_frame_size,
            keepalive_interval_ms: self.keepalive_interval_ms,
            keepalive_timeout_ms: self.keepalive_timeout_ms,
            max_send_buffer: self.max_send_buffer,
            max_handshaking_connections: self.max_handshaking_connections,
            topic_path: self.topic_path.clone(),
            recycle_when_idle: true,
            metrics: None,
            worker: 0,
        }
    }

    /// These flags with `other`'s values for the ones a reload applies: the
    /// component and the app's settings ([`ServeArgs::echo_options`] but
    /// where it listens). So `new.with_app_flags_of(old) != new` says the
    /// app changed, and `!= old` that something a reload cannot apply did.
    pub fn with_app_flags_of(&self, other: &ServeArgs) -> ServeArgs {
        ServeArgs {
            component: other.component.clone(),
            server_name: other.server_name.clone(),
            handshake_timeout_ms: other.handshake_timeout_ms,
            shutdown_timeout_ms: other.shutdown_timeout_ms,
            reload_drain_timeout_ms: other.reload_drain_timeout_ms,
            max_pending_connections: other.max_pending_connections,
            subprotocols: other.subprotocols.clone(),
            allowed_origins: other.allowed_origins.clone(),
            max_frame_size: other.max_frame_size,
            max_message_size: other.max_message_size,
            outgoing_frame_size: other.outgoing_frame_size,
            no_deflate: other.no_deflate,
            deflate_server_window_bits: other.deflate_server_window_bits,
            deflate_client_window_bits: other.deflate_client_window_bits,
            deflate_server_no_context_takeover: other.deflate_server_no_context_takeover,
            deflate_client_no_context_takeover: other.deflate_client_no_context_takeover,
            deflate_min_size: other.deflate_min_size,
            keepalive_interval_ms: other.keepalive_interval_ms,
            keepalive_timeout_ms: other.keepalive_timeout_ms,
            max_send_buffer: other.max_send_buffer,
            max_handshaking_connections: other.max_handshaking_connections,
            topic_path: other.topic_path.clone(),
            ..self.clone()
        }
    }

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

/// `--topic-path`: a path prefix starting with `/`.
fn parse_topic_path(prefix: &str) -> Result<String, String> {
    if prefix.starts_with('/') && !prefix.contains(['?', '#', ' ']) {
        Ok(prefix.to_string())
    } else {
        Err(format!("'{prefix}' is not a path prefix (one starting with '/', such as /topics/)"))
    }
}

/// Parses the command line, reading `--config FILE` when given: the file's
/// keys become flags placed before the command line's own, so those win.
/// Exits with clap's message on a bad flag, and with one line naming the
/// file and key on a bad file.
pub fn parse() -> Cli {
    let argv: Vec<OsString> = std::env::args_os().collect();
    match parse_from(argv) {
        Ok(cli) => cli,
        Err(ParseError::Clap(e)) => e.exit(),
        Err(ParseError::Config(message)) => {
            eprintln!("wsbox: error: {message}");
            std::process::exit(2);
        }
    }
}

/// Why the command line could not be parsed.
#[derive(Debug)]
pub enum ParseError {
    /// A bad flag or value (clap's message, with usage).
    Clap(clap::Error),
    /// The `--config` file is unreadable, not TOML, or has a bad key.
    Config(String),
}

/// [`parse`] without exiting: for tests and embedders.
pub fn parse_from(argv: Vec<OsString>) -> Result<Cli, ParseError> {
    let cli = Cli::try_parse_from(&argv).map_err(ParseError::Clap)?;
    let Some(path) = cli.serve_args().config.clone() else {
        return Ok(cli);
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| ParseError::Config(format!("cannot read the config file {}: {e}", path.display())))?;
    let from_file = config_flags(&text).map_err(|e| ParseError::Config(format!("{}: {e}", path.display())))?;
    // argv[0], `serve`, the file's flags, then the command line's own flags.
    let mut rest = argv.into_iter();
    let mut merged: Vec<OsString> = rest.next().into_iter().collect();
    merged.push("serve".into());
    merged.extend(from_file);
    merged.extend(rest.skip_while(|a| a == "serve"));
    Cli::try_parse_from(merged).map_err(ParseError::Clap)
}

/// The flags a TOML config file stands for.
fn config_flags(text: &str) -> Result<Vec<OsString>, String> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| format!("not valid TOML: {}", e.message()))?;
    let command = <ServeArgs as clap::Args>::augment_args(clap::Command::new("serve"));
    let mut flags = Vec::new();
    for (key, value) in table {
        let arg = command
            .get_arguments()
            .find(|a| a.get_long() == Some(key.as_str()) && key != "config")
            .ok_or_else(|| format!("unknown key '{key}' (the keys are the long flags of `wsbox serve --help`)"))?;
        let takes_value = arg.get_action().takes_values();
        match (value, takes_value) {
            (toml::Value::Boolean(true), false) => flags.push(format!("--{key}").into()),
            (toml::Value::Boolean(false), false) => {}
            (toml::Value::String(s), true) => flags.push(format!("--{key}={s}").into()),
            (toml::Value::Integer(n), true) => flags.push(format!("--{key}={n}").into()),
            (toml::Value::Array(items), true) if matches!(arg.get_action(), clap::ArgAction::Append) => {
                for item in items {
                    match item {
                        toml::Value::String(s) => flags.push(format!("--{key}={s}").into()),
                        other => return Err(format!("'{key}' wants a list of strings, not {}", other.type_str())),
                    }
                }
            }
            (other, false) => return Err(format!("'{key}' is a switch: write {key} = true, not {other}")),
            (other, true) => return Err(format!("'{key}' wants a string or a number, not {}", other.type_str())),
        }
    }
    Ok(flags)
}

impl Cli {
    /// The serve options, whether `serve` was written or not.
    pub fn serve_args(&self) -> &ServeArgs {
        match &self.command {
            Some(Command::Serve(args)) => args.as_ref(),
            Some(Command::Components(_) | Command::Run(_) | Command::Completions(_) | Command::Man(_)) | None => {
                &self.serve
            }
        }
    }
}

/// `--health-check-path`: empty (off) or a path starting with `/`.
fn parse_health_check_path(text: &str) -> Result<String, String> {
    if text.is_empty() || (text.starts_with('/') && !text.contains(['?', ' '])) {
        Ok(text.to_string())
    } else {
        Err(format!("'{text}' is not a path such as /healthz (or empty, for no health check)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str], config: Option<&str>) -> Result<Cli, ParseError> {
        let mut argv: Vec<OsString> = vec!["wsbox".into()];
        argv.extend(args.iter().map(OsString::from));
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("wsbox-cli-test-{}-{n}.toml", std::process::id()));
        if let Some(text) = config {
            std::fs::write(&path, text).unwrap();
            argv.push("--config".into());
            argv.push(path.clone().into());
        }
        let parsed = parse_from(argv);
        let _ = std::fs::remove_file(&path);
        parsed
    }

    fn config_error(result: Result<Cli, ParseError>) -> String {
        match result {
            Err(ParseError::Config(message)) => message,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn the_file_sets_options_and_the_command_line_wins() {
        let file =
            "listen = \"127.0.0.1:4000\"\nserver-name = \"from-file\"\nno-deflate = true\nhandshake-timeout-ms = -1\n";
        let cli = parse(&["serve", "--server-name", "from-flag"], Some(file)).unwrap();
        let args = cli.serve_args();
        assert_eq!(args.listen, "127.0.0.1:4000".parse().unwrap());
        assert_eq!(args.server_name, "from-flag");
        assert!(args.no_deflate);
        assert_eq!(args.handshake_timeout_ms, -1);
        // Without `serve` too.
        let cli = parse(&[], Some("deflate-min-size = 64\n")).unwrap();
        assert_eq!(cli.serve_args().deflate_min_size, 64);
    }

    #[test]
    fn a_bad_file_is_one_line_naming_the_key() {
        assert!(config_error(parse(&[], Some("lisen = \"x\"\n"))).contains("unknown key 'lisen'"));
        assert!(config_error(parse(&[], Some("no-deflate = \"yes\"\n"))).contains("'no-deflate' is a switch"));
        assert!(config_error(parse(&[], Some("listen = [1]\n"))).contains("'listen' wants a string or a number"));
        assert!(config_error(parse(&[], Some("listen = \n"))).contains("not valid TOML"));
        // A value the flag itself refuses is clap's error, as on the command line.
        assert!(matches!(parse(&[], Some("deflate-server-window-bits = 20\n")), Err(ParseError::Clap(_))));
    }

    /// What a reload applies is told apart from what waits for a restart.
    #[test]
    fn a_reload_tells_the_app_flags_from_the_others() {
        let args = |extra: &[&str]| parse(extra, None).unwrap().serve_args().clone();
        let old = args(&["--server-name", "old"]);
        let app_only = args(&["--server-name", "new", "--subprotocol", "chat", "--no-deflate"]);
        assert_ne!(app_only.with_app_flags_of(&old), app_only, "the app changed");
        assert_eq!(app_only.with_app_flags_of(&old), old, "nothing else did");
        let moved = args(&["--server-name", "old", "--listen", "127.0.0.1:4000"]);
        assert_eq!(moved.with_app_flags_of(&old), moved, "the app did not change");
        assert_ne!(moved.with_app_flags_of(&old), old, "the address did");
        assert_eq!(app_only.echo_options(false).name, "new");
    }

    #[test]
    fn a_missing_file_says_which() {
        let argv = ["wsbox", "--config", "/nonexistent/wsbox.toml"].map(OsString::from).to_vec();
        assert!(config_error(parse_from(argv)).contains("cannot read the config file /nonexistent/wsbox.toml"));
    }

    /// The example config, with every commented-out key switched on, is a
    /// config wsbox accepts: the example names no flag that is gone.
    #[test]
    fn the_example_config_with_every_key_on_parses() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/wsbox.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let all_on: String = text
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(setting) if setting.contains(" = ") && !setting.starts_with("wsbox ") => setting,
                _ => line,
            })
            .map(|line| format!("{line}\n"))
            .collect();
        let cli = parse(&[], Some(&all_on)).unwrap_or_else(|e| panic!("{e:?}\n{all_on}"));
        let args = cli.serve_args();
        assert!(args.proxy_protocol && !args.trusted_proxies.is_empty());
        assert_eq!(args.subprotocols, ["chat", "superchat"]);
        assert_eq!(args.topic_path.as_deref(), Some("/topics/"));
    }
}
