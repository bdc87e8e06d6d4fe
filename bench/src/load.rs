//! The load generator: N connections, each keeping a window of W messages
//! of a fixed size in flight (closed loop: every echo sends the next one),
//! or, with `--rate`, a fixed aggregate rate spread over the connections
//! (open loop, [`crate::open_loop`]). The send time travels in the payload
//! (16 hex digits of nanoseconds since the generator started), so a round
//! trip is measured on one clock.

use crate::procfs;
use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

/// A client connection (boxed in [`Conn`]: its close is called as
/// `WsStream::close`, since `Box` is a `Sink` too and would take the call).
type WsStream = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
pub enum Kind {
    Text,
    Binary,
}

/// One load run.
#[derive(Clone, Debug, clap::Args)]
pub struct LoadOptions {
    /// `ws://…`, `wss://…` (with --ca) or `tcp://host:port` (a raw echo).
    #[arg(long)]
    pub url: String,
    /// Concurrent connections.
    #[arg(long, default_value_t = 64)]
    pub conns: usize,
    /// Messages in flight per connection.
    #[arg(long, default_value_t = 16)]
    pub window: usize,
    /// Payload bytes per message (at least 16: the send time).
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    #[arg(long, value_enum, default_value_t = Kind::Binary)]
    pub kind: Kind,
    /// Measured seconds.
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// The server's PID, to report its CPU use.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// CA certificate (PEM) to trust for `wss://`.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Open the WebSockets as streams of HTTP/2 connections (RFC 8441),
    /// this many per connection (`wss://` only; 0: one TLS connection each).
    #[arg(long, default_value_t = 0)]
    pub h2_streams: usize,
    /// Messages per second over all connections, sent on a fixed schedule
    /// whatever the echoes do (open loop; --window is then unused). 0: the
    /// closed loop.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
}

/// What one load run measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoadReport {
    pub messages: u64,
    pub bytes: u64,
    pub errors: u64,
    pub seconds: f64,
    pub msgs_per_sec: f64,
    pub mib_per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    /// The generator's own CPU use, % of one core.
    pub client_cpu_pct: f64,
    /// The server's CPU use, % of one core (0 when no PID was given).
    pub server_cpu_pct: f64,
    /// Messages echoed per second of server CPU time: not capped by the generator.
    pub msgs_per_server_cpu_sec: f64,
    /// The server's CPU time while the connections were opened, per
    /// WebSocket (TCP, TLS and WebSocket handshakes, or an HTTP/2 stream).
    pub open_server_cpu_us: f64,
    /// Open loop only (`msgs_per_server_cpu_sec` then counts the echoes
    /// that came back within the CPU's span, whenever they were sent):
    /// messages sent while measuring, those of them never
    /// echoed (within the drain after the run), and how late the generator
    /// sent, p99 (µs after the scheduled time; the latency is counted from
    /// the schedule, so a late send is never omitted, but a large figure
    /// says the generator, not the server, fell behind).
    #[serde(default)]
    pub sent: u64,
    #[serde(default)]
    pub missing: u64,
    #[serde(default)]
    pub send_late_p99_us: f64,
}

impl LoadReport {
    /// Server CPU per echoed message, in µs (the open loop's cost figure).
    pub fn server_cpu_us_per_msg(&self) -> f64 {
        if self.msgs_per_server_cpu_sec > 0.0 { 1e6 / self.msgs_per_server_cpu_sec } else { 0.0 }
    }
}

pub(crate) const WARMUP: u8 = 0;
pub(crate) const MEASURE: u8 = 1;
pub(crate) const STOP: u8 = 2;

/// What one connection counted while measuring.
pub(crate) struct Tally {
    pub latency_ns: Histogram<u64>,
    pub messages: u64,
    pub bytes: u64,
    pub errors: u64,
}

impl Tally {
    pub(crate) fn new() -> Self {
        Self {
            latency_ns: Histogram::new_with_bounds(1_000, 60_000_000_000, 3).expect("histogram bounds"),
            messages: 0,
            bytes: 0,
            errors: 0,
        }
    }

    fn record(&mut self, phase: u8, payload: &[u8], expected: usize, clock: Instant) {
        if phase == MEASURE {
            self.record_echo(payload, expected, clock);
        }
    }

    /// Counts one echo and its round trip from the stamp in its payload.
    pub(crate) fn record_echo(&mut self, payload: &[u8], expected: usize, clock: Instant) {
        match sent_at(payload) {
            Some(sent) if payload.len() == expected => {
                let now = clock.elapsed().as_nanos() as u64;
                let _ = self.latency_ns.record(now.saturating_sub(sent).max(1_000));
                self.messages += 1;
                self.bytes += payload.len() as u64;
            }
            _ => self.errors += 1,
        }
    }
}

fn stamp(template: &[u8], clock: Instant) -> Vec<u8> {
    let mut payload = template.to_vec();
    write_sent_at(&mut payload, clock.elapsed().as_nanos() as u64);
    payload
}

/// Writes a send time (ns since the generator's clock started) into the
/// payload's first 16 bytes, where [`sent_at`] reads it.
pub(crate) fn write_sent_at(payload: &mut [u8], ns: u64) {
    payload[..16].copy_from_slice(format!("{ns:016x}").as_bytes());
}

pub(crate) fn sent_at(payload: &[u8]) -> Option<u64> {
    u64::from_str_radix(std::str::from_utf8(payload.get(..16)?).ok()?, 16).ok()
}

/// Byte 16 of a payload, for loads with a warm-up on a fixed schedule:
/// whether it was sent while measuring ([`is_measured`] reads it).
pub(crate) fn mark_measured(payload: &mut [u8], measured: bool) {
    payload[16] = if measured { b'M' } else { b'W' };
}

pub(crate) fn is_measured(payload: &[u8]) -> bool {
    payload.get(16) == Some(&b'M')
}

/// A WebSocket over an HTTP/2 stream.
pub(crate) type H2Ws = tokio_tungstenite::WebSocketStream<wsbox_testkit::h2::H2Stream>;

pub(crate) enum Conn {
    Raw(tokio::net::TcpStream),
    Ws(Box<WsStream>),
    H2(Box<H2Ws>),
}

/// The payload every message starts from: the stamp's room, then letters.
pub(crate) fn template(size: usize) -> Vec<u8> {
    let mut template = vec![b'a'; size];
    template[16..].iter_mut().enumerate().for_each(|(i, b)| *b = b'a' + (i % 26) as u8);
    template
}

/// Opens one connection (WebSocket handshake included).
async fn connect(url: &str, tls: Option<&Arc<rustls::ClientConfig>>) -> Result<Conn> {
    if let Some(addr) = url.strip_prefix("tcp://") {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        return Ok(Conn::Raw(stream));
    }
    let connector = tls.map(|c| tokio_tungstenite::Connector::Rustls(Arc::clone(c)));
    let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(url, None, true, connector)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    Ok(Conn::Ws(Box::new(ws)))
}

async fn drive(conn: Conn, opts: Arc<LoadOptions>, phase: Arc<AtomicU8>, clock: Instant) -> Result<Tally> {
    let mut tally = Tally::new();
    let template = template(opts.size);
    match conn {
        Conn::Raw(mut stream) => {
            let (mut rd, mut wr) = stream.split();
            for _ in 0..opts.window {
                wr.write_all(&stamp(&template, clock)).await?;
            }
            let mut echo = vec![0u8; opts.size];
            loop {
                rd.read_exact(&mut echo).await?;
                let now = phase.load(Ordering::Relaxed);
                tally.record(now, &echo, opts.size, clock);
                if now == STOP {
                    return Ok(tally);
                }
                wr.write_all(&stamp(&template, clock)).await?;
            }
        }
        Conn::Ws(ws) => drive_ws(*ws, &opts, &phase, clock, &template, tally).await,
        Conn::H2(ws) => drive_ws(*ws, &opts, &phase, clock, &template, tally).await,
    }
}

/// [`drive`] on a WebSocket over any byte stream.
async fn drive_ws<S: AsyncRead + AsyncWrite + Unpin>(
    mut ws: tokio_tungstenite::WebSocketStream<S>,
    opts: &LoadOptions,
    phase: &AtomicU8,
    clock: Instant,
    template: &[u8],
    mut tally: Tally,
) -> Result<Tally> {
    let message = |payload: Vec<u8>| match opts.kind {
        Kind::Binary => Message::binary(payload),
        Kind::Text => Message::text(String::from_utf8(payload).expect("ASCII payload")),
    };
    for _ in 0..opts.window {
        ws.feed(message(stamp(template, clock))).await?;
    }
    ws.flush().await?;
    loop {
        let echo = ws.next().await.context("the server closed the connection")??;
        let now = phase.load(Ordering::Relaxed);
        match &echo {
            Message::Text(t) => tally.record(now, t.as_bytes(), opts.size, clock),
            Message::Binary(b) => tally.record(now, b, opts.size, clock),
            _ => continue,
        }
        if now == STOP {
            let _ = tokio::time::timeout(Duration::from_millis(200), ws.close(None)).await;
            return Ok(tally);
        }
        ws.send(message(stamp(template, clock))).await?;
    }
}

/// Runs the load and reports what it measured.
pub async fn run(opts: LoadOptions) -> Result<LoadReport> {
    if opts.size < 16 {
        bail!("--size must be at least 16 (the send time travels in the payload)");
    }
    if opts.rate < 0.0 || !opts.rate.is_finite() {
        bail!("--rate must be a number of messages per second (0: the closed loop)");
    }
    if opts.rate > 0.0 && opts.size < 17 {
        bail!("--size must be at least 17 with --rate (the send time, then whether it is measured)");
    }
    if opts.conns == 0 {
        bail!("--conns must be at least 1");
    }
    let clock = Instant::now();
    let opened = open_all(&opts).await?;
    if opts.rate > 0.0 {
        return crate::open_loop::run(opened, &opts, clock).await;
    }
    let Opened { conns, open_server_cpu_us, carriers: _carriers } = opened;
    let opts = Arc::new(opts);
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let tasks: Vec<_> =
        conns.into_iter().map(|conn| tokio::spawn(drive(conn, Arc::clone(&opts), Arc::clone(&phase), clock))).collect();

    tokio::time::sleep(Duration::from_secs_f64(opts.warmup)).await;
    let cpu = CpuSpan::start(opts.server_pid)?;
    phase.store(MEASURE, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs_f64(opts.duration)).await;
    phase.store(STOP, Ordering::Relaxed);
    let cpu = cpu.end()?;

    let mut total = Tally::new();
    for task in tasks {
        match tokio::time::timeout(Duration::from_secs(5), task).await {
            Ok(Ok(Ok(t))) => total.add(&t),
            _ => total.errors += 1,
        }
    }
    Ok(total.report(&cpu, open_server_cpu_us))
}

/// The generator's and the server's CPU over the measured span.
pub(crate) struct CpuSpan {
    started: Instant,
    client0: Duration,
    server: Option<(u32, Duration)>,
    /// Set by [`CpuSpan::end`].
    pub seconds: f64,
    pub client_cpu: f64,
    pub server_cpu: f64,
}

impl CpuSpan {
    pub(crate) fn start(server_pid: Option<u32>) -> Result<Self> {
        let server = server_pid.map(|pid| procfs::cpu_time(pid).map(|t| (pid, t))).transpose()?;
        Ok(Self {
            started: Instant::now(),
            client0: procfs::cpu_time(std::process::id())?,
            server,
            seconds: 0.0,
            client_cpu: 0.0,
            server_cpu: 0.0,
        })
    }

    pub(crate) fn end(mut self) -> Result<Self> {
        self.seconds = self.started.elapsed().as_secs_f64();
        self.client_cpu = (procfs::cpu_time(std::process::id())? - self.client0).as_secs_f64();
        if let Some((pid, before)) = self.server {
            self.server_cpu = (procfs::cpu_time(pid)? - before).as_secs_f64();
        }
        Ok(self)
    }
}

impl Tally {
    pub(crate) fn add(&mut self, other: &Tally) {
        self.latency_ns.add(&other.latency_ns).expect("same histogram bounds");
        self.messages += other.messages;
        self.bytes += other.bytes;
        self.errors += other.errors;
    }

    /// The report of a run that echoed what this counted, over `cpu`.
    pub(crate) fn report(&self, cpu: &CpuSpan, open_server_cpu_us: f64) -> LoadReport {
        let us = |q: f64| self.latency_ns.value_at_quantile(q) as f64 / 1_000.0;
        LoadReport {
            messages: self.messages,
            bytes: self.bytes,
            errors: self.errors,
            seconds: cpu.seconds,
            msgs_per_sec: self.messages as f64 / cpu.seconds,
            mib_per_sec: self.bytes as f64 / cpu.seconds / (1024.0 * 1024.0),
            p50_us: us(0.5),
            p99_us: us(0.99),
            p999_us: us(0.999),
            client_cpu_pct: 100.0 * cpu.client_cpu / cpu.seconds,
            server_cpu_pct: 100.0 * cpu.server_cpu / cpu.seconds,
            msgs_per_server_cpu_sec: if cpu.server_cpu > 0.0 { self.messages as f64 / cpu.server_cpu } else { 0.0 },
            open_server_cpu_us,
            sent: 0,
            missing: 0,
            send_late_p99_us: 0.0,
        }
    }
}

/// The connections of a run, open, and what opening them cost the server.
pub(crate) struct Opened {
    pub conns: Vec<Conn>,
    /// The server's CPU time while they were opened, per WebSocket, in µs.
    pub open_server_cpu_us: f64,
    /// HTTP/2 connections whose streams are `conns`: kept open while they run.
    pub carriers: Vec<Arc<wsbox_testkit::h2::H2Connection>>,
}

/// Opens `opts.conns` connections (WebSocket handshakes included).
async fn open_all(opts: &LoadOptions) -> Result<Opened> {
    let tls = opts.ca.as_deref().map(crate::pki::client_config).transpose()?;
    let mut conns = Vec::with_capacity(opts.conns);
    let mut opening = opts.server_pid.map(procfs::cpu_time).transpose()?;
    // HTTP/2 connections stay open while their streams run.
    let mut carriers = Vec::new();
    if opts.h2_streams > 0 {
        let config = tls.as_ref().context("--h2-streams needs a wss:// URL and --ca")?;
        let local = ["wss://localhost:", "wss://127.0.0.1:"].iter().any(|p| opts.url.starts_with(p));
        if !local {
            bail!("--h2-streams connects to this machine only (wss://localhost:PORT), not {}", opts.url);
        }
        let port: u16 =
            opts.url.rsplit(':').next().and_then(|p| p.trim_end_matches('/').parse().ok()).context("a port")?;
        for _ in 0..opts.conns.div_ceil(opts.h2_streams) {
            carriers.push(Arc::new(wsbox_testkit::h2::connect(port, Arc::clone(config)).await));
        }
        // What opening a WebSocket costs is the stream's: the connections
        // that carry them were opened before.
        opening = opts.server_pid.map(procfs::cpu_time).transpose()?;
        for chunk in (0..opts.conns).collect::<Vec<_>>().chunks(64) {
            let pending: Vec<_> = chunk
                .iter()
                .map(|i| {
                    let carrier = Arc::clone(&carriers[i / opts.h2_streams]);
                    async move { carrier.websocket("/", &[]).await.0 }
                })
                .collect();
            for ws in futures_util::future::join_all(pending).await {
                conns.push(Conn::H2(Box::new(ws)));
            }
        }
    } else {
        // Connect in slices so 1 000 handshakes do not all queue at once.
        for chunk in (0..opts.conns).collect::<Vec<_>>().chunks(64) {
            let pending: Vec<_> = chunk.iter().map(|_| connect(&opts.url, tls.as_ref())).collect();
            for conn in futures_util::future::join_all(pending).await {
                conns.push(conn?);
            }
        }
    }
    let open_server_cpu = match (opts.server_pid, opening) {
        (Some(pid), Some(before)) => (procfs::cpu_time(pid)? - before).as_secs_f64(),
        _ => 0.0,
    };
    Ok(Opened { conns, open_server_cpu_us: 1e6 * open_server_cpu / opts.conns.max(1) as f64, carriers })
}

/// Resident memory of a server with no, `conns` idle, and again no connections.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IdleReport {
    pub conns: usize,
    pub rss_before: u64,
    pub rss_open: u64,
    pub rss_after: u64,
    pub bytes_per_conn: f64,
    /// The same with a second batch, once the first has closed.
    pub rss_open_again: u64,
    pub bytes_per_conn_again: f64,
}

/// Warms the server with a few echoes, then holds `conns` idle connections.
pub async fn idle(url: &str, ca: Option<&std::path::Path>, conns: usize, server_pid: u32) -> Result<IdleReport> {
    let tls = ca.map(crate::pki::client_config).transpose()?;
    {
        let mut warm = Vec::new();
        for _ in 0..8 {
            warm.push(connect(url, tls.as_ref()).await?);
        }
        for conn in &mut warm {
            if let Conn::Ws(ws) = conn {
                ws.send(Message::binary(vec![1u8; 1024])).await?;
                ws.next().await.context("warm-up echo")??;
                WsStream::close(&mut *ws, None).await?;
            }
        }
    }
    // RSS while `conns` idle connections are open (they close on return).
    let hold_idle = || async {
        let mut open = Vec::with_capacity(conns);
        for _ in 0..conns {
            open.push(connect(url, tls.as_ref()).await?);
        }
        settled_rss(server_pid).await
    };
    let rss_before = settled_rss(server_pid).await?;
    let rss_open = hold_idle().await?;
    let rss_after = settled_rss(server_pid).await?;
    // A second round on the now warm server: memory an allocator returns
    // late (wsbox's compiler scratch) no longer hides in the first delta.
    let rss_open_again = hold_idle().await?;
    Ok(IdleReport {
        conns,
        rss_before,
        rss_open,
        rss_after,
        bytes_per_conn: (rss_open as f64 - rss_before as f64) / conns as f64,
        rss_open_again,
        bytes_per_conn_again: (rss_open_again as f64 - rss_after as f64) / conns as f64,
    })
}

/// The server's RSS once it stops moving (allocators return freed memory
/// with a delay, and a start-up's compiler memory goes away late): sampled
/// every 250 ms until three samples agree within 64 KiB, at most 10 s.
async fn settled_rss(pid: u32) -> Result<u64> {
    let mut samples = vec![procfs::rss_bytes(pid)?];
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        samples.push(procfs::rss_bytes(pid)?);
        if let [.., a, b, c] = samples[..]
            && a.abs_diff(b) < 64 * 1024
            && b.abs_diff(c) < 64 * 1024
        {
            return Ok(c);
        }
    }
    Ok(*samples.last().expect("sampled"))
}
