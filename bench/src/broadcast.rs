//! `wsbox-bench broadcast`: topics under load. P publishers and S
//! subscribers per topic, all clients of `/topics/<name>`; each publisher
//! sends at a fixed rate (open loop: a server that falls behind shows it in
//! the latency and the delivered share, it does not slow the load), every
//! other client of the topic receives.
//! (The stamp is the actual send time, see [`publish`].)
//! Three servers do the same job: wsbox's relay (`--topic-path`), Bun's
//! `ws.publish` (uWebSockets inside) and a tokio-tungstenite broadcast. At a
//! fixed rate every server delivers the same messages, so what differs is
//! the server CPU each delivery costs and the latency.

use crate::load::{is_measured, mark_measured, sent_at, write_sent_at};
use crate::procfs;
use crate::run::{RunOptions, Setup};
use crate::servers::Running;
use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

pub const BEGIN: &str = "<!-- wsbox-bench:broadcast:begin -->";
pub const END: &str = "<!-- wsbox-bench:broadcast:end -->";

/// One broadcast run against one server.
#[derive(Clone, Debug, clap::Args)]
pub struct BroadcastLoadOptions {
    /// `ws://host:port` of a server with a `/topics/<name>` relay.
    #[arg(long)]
    pub url: String,
    /// Where the publishers connect, when not to --url (another process
    /// sharing topics with it through a broker).
    #[arg(long)]
    pub publish_url: Option<String>,
    #[arg(long, default_value_t = 1)]
    pub topics: usize,
    /// Publishers per topic (each also gets the others' messages).
    #[arg(long, default_value_t = 1)]
    pub publishers: usize,
    /// Subscribers per topic that only receive.
    #[arg(long, default_value_t = 100)]
    pub subscribers: usize,
    /// Payload bytes per message (at least 16: the send time).
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Publications per second, over all publishers.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// The server's PID, to report its CPU use.
    #[arg(long)]
    pub server_pid: Option<u32>,
}

/// What one broadcast run measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BroadcastReport {
    pub publications: u64,
    pub deliveries: u64,
    /// Deliveries there should have been: every publication to every other
    /// client of its topic.
    pub expected: u64,
    pub seconds: f64,
    pub deliveries_per_sec: f64,
    /// From the scheduled send to the delivery.
    pub p50_us: f64,
    pub p99_us: f64,
    pub client_cpu_pct: f64,
    pub server_cpu_pct: f64,
    /// The user-space part of `server_cpu_pct` (the rest is the kernel's).
    pub server_user_cpu_pct: f64,
    pub deliveries_per_server_cpu_sec: f64,
}

const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const STOP: u8 = 2;

pub async fn broadcast_load(o: BroadcastLoadOptions) -> Result<BroadcastReport> {
    if o.size < 16 {
        bail!("--size must be at least 16 (the send time travels in the payload)");
    }
    let clock = Instant::now();
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let deliveries = Arc::new(AtomicU64::new(0));
    let publications = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    let mut publishers = Vec::new();
    let publish_base = o.publish_url.as_deref().unwrap_or(&o.url);
    for topic in 0..o.topics {
        let url = format!("{}/topics/t{topic}", o.url.trim_end_matches('/'));
        for _ in 0..o.subscribers {
            let (ws, _) = connect(&url).await.with_context(|| format!("connecting to {url}"))?;
            readers.push(tokio::spawn(receive(ws, Arc::clone(&phase), Arc::clone(&deliveries), clock)));
        }
        let url = format!("{}/topics/t{topic}", publish_base.trim_end_matches('/'));
        for _ in 0..o.publishers {
            let (ws, _) = connect(&url).await.with_context(|| format!("connecting to {url}"))?;
            publishers.push(ws);
        }
    }
    // A server subscribes a client when it takes the connection, which the
    // client cannot see: give the last ones a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let per_publisher = Duration::from_secs_f64((o.topics * o.publishers) as f64 / o.rate);
    let start = Instant::now() + Duration::from_millis(10);
    let count = o.topics * o.publishers;
    let mut senders = Vec::new();
    for (i, ws) in publishers.into_iter().enumerate() {
        let (sink, stream) = ws.split();
        // A publisher gets the other publishers' messages too: counted.
        readers.push(tokio::spawn(receive_stream(stream, Arc::clone(&phase), Arc::clone(&deliveries), clock)));
        // Publishers start spread over one period, not all at once.
        let first = start + per_publisher.mul_f64(i as f64 / count as f64);
        senders.push(tokio::spawn(publish(
            sink,
            first,
            per_publisher,
            o.size,
            Arc::clone(&phase),
            Arc::clone(&publications),
            clock,
        )));
    }
    tokio::time::sleep(Duration::from_secs_f64(o.warmup)).await;
    let (server_cpu0, client_cpu0) = (server_cpu(o.server_pid)?, procfs::cpu_time(std::process::id())?);
    let measured_from = Instant::now();
    phase.store(MEASURE, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs_f64(o.duration)).await;
    phase.store(STOP, Ordering::Relaxed);
    let seconds = measured_from.elapsed().as_secs_f64();
    let (server_cpu1, client_cpu1) = (server_cpu(o.server_pid)?, procfs::cpu_time(std::process::id())?);
    for s in senders {
        s.await??;
    }
    // Messages in flight at the stop still arrive: a reader ends after a
    // quiet spell, so the count covers every publication measured.
    let mut latency = Histogram::<u64>::new_with_bounds(1_000, 60_000_000_000, 3)?;
    for r in readers {
        latency.add(r.await?)?;
    }
    let publications = publications.load(Ordering::Relaxed);
    let deliveries = deliveries.load(Ordering::Relaxed);
    let per_publication = (o.subscribers + o.publishers - 1) as u64;
    let server_secs = (server_cpu1.0 + server_cpu1.1).saturating_sub(server_cpu0.0 + server_cpu0.1).as_secs_f64();
    let server_user_secs = server_cpu1.0.saturating_sub(server_cpu0.0).as_secs_f64();
    Ok(BroadcastReport {
        publications,
        deliveries,
        expected: publications * per_publication,
        seconds,
        deliveries_per_sec: deliveries as f64 / seconds,
        p50_us: latency.value_at_quantile(0.5) as f64 / 1000.0,
        p99_us: latency.value_at_quantile(0.99) as f64 / 1000.0,
        client_cpu_pct: 100.0 * client_cpu1.saturating_sub(client_cpu0).as_secs_f64() / seconds,
        server_cpu_pct: 100.0 * server_secs / seconds,
        server_user_cpu_pct: 100.0 * server_user_secs / seconds,
        deliveries_per_server_cpu_sec: if server_secs > 0.0 { deliveries as f64 / server_secs } else { 0.0 },
    })
}

/// A client connection without Nagle's delay (as the servers' sockets are):
/// a publication must not wait for the previous one's acknowledgement.
async fn connect(
    url: &str,
) -> Result<(Ws, tokio_tungstenite::tungstenite::handshake::client::Response), tokio_tungstenite::tungstenite::Error> {
    tokio_tungstenite::connect_async_with_config(url, None, true).await
}

/// User and system time of the server, if it is a process of its own.
fn server_cpu(pid: Option<u32>) -> Result<(Duration, Duration)> {
    pid.map_or(Ok((Duration::ZERO, Duration::ZERO)), procfs::cpu_times)
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn receive(ws: Ws, phase: Arc<AtomicU8>, deliveries: Arc<AtomicU64>, clock: Instant) -> Histogram<u64> {
    receive_stream(ws.split().1, phase, deliveries, clock).await
}

/// Counts the deliveries of measured publications (those stamped inside
/// the measured window) and their latency; ends once stopped and quiet.
async fn receive_stream(
    mut stream: futures_util::stream::SplitStream<Ws>,
    phase: Arc<AtomicU8>,
    deliveries: Arc<AtomicU64>,
    clock: Instant,
) -> Histogram<u64> {
    let mut latency = Histogram::<u64>::new_with_bounds(1_000, 60_000_000_000, 3).expect("histogram bounds");
    loop {
        let quiet = if phase.load(Ordering::Relaxed) == STOP { 200 } else { 2_000 };
        let message = match tokio::time::timeout(Duration::from_millis(quiet), stream.next()).await {
            Ok(Some(Ok(m))) => m,
            Ok(_) => return latency,
            Err(_) if phase.load(Ordering::Relaxed) == STOP => return latency,
            Err(_) => continue,
        };
        let Message::Binary(payload) = message else { continue };
        // The payload says whether it was published while measuring.
        if is_measured(&payload)
            && let Some(sent) = sent_at(&payload)
        {
            deliveries.fetch_add(1, Ordering::Relaxed);
            let _ = latency.record((clock.elapsed().as_nanos() as u64).saturating_sub(sent).max(1_000));
        }
    }
}

/// Sends one publication every `every`, from `first`, until stopped (late
/// ones go at once, so the rate holds); byte 16 says whether it is measured.
async fn publish(
    mut sink: futures_util::stream::SplitSink<Ws, Message>,
    first: Instant,
    every: Duration,
    size: usize,
    phase: Arc<AtomicU8>,
    publications: Arc<AtomicU64>,
    clock: Instant,
) -> Result<()> {
    let mut due = first;
    loop {
        tokio::time::sleep_until(due.into()).await;
        let now_phase = phase.load(Ordering::Relaxed);
        if now_phase == STOP {
            return Ok(());
        }
        let mut payload = vec![b'a'; size];
        // The actual send time: tokio's timer wakes up to ~1.5 ms late, which
        // a scheduled stamp would add to every server's latency alike. The
        // publisher is never held back at these rates (the report's
        // publications per second say so), so nothing is omitted.
        let stamp = clock.elapsed().as_nanos() as u64;
        write_sent_at(&mut payload, stamp);
        if size > 16 {
            mark_measured(&mut payload, now_phase == MEASURE);
        }
        sink.send(Message::binary(payload)).await?;
        if now_phase == MEASURE {
            publications.fetch_add(1, Ordering::Relaxed);
        }
        due += every;
    }
}

/// One broadcast cell.
struct Cell {
    topics: usize,
    publishers: usize,
    subscribers: usize,
    size: usize,
    rate: f64,
}

impl Cell {
    fn name(&self) -> String {
        format!(
            "{} topic{} × {} publisher{} × {} subscribers, 1 KiB, {:.0} publications/s",
            self.topics,
            if self.topics == 1 { "" } else { "s" },
            self.publishers,
            if self.publishers == 1 { "" } else { "s" },
            self.subscribers,
            self.rate
        )
    }

    fn deliveries_per_sec(&self) -> f64 {
        self.rate * (self.subscribers + self.publishers - 1) as f64
    }
}

fn cells(quick: bool) -> Vec<Cell> {
    if quick {
        return vec![Cell { topics: 1, publishers: 1, subscribers: 20, size: 1024, rate: 200.0 }];
    }
    // 50 000 deliveries a second: the generator's core stays below
    // saturation for every server (its CPU is in the report).
    vec![
        Cell { topics: 1, publishers: 1, subscribers: 100, size: 1024, rate: 500.0 },
        Cell { topics: 1, publishers: 1, subscribers: 1000, size: 1024, rate: 50.0 },
        Cell { topics: 10, publishers: 2, subscribers: 50, size: 1024, rate: 1000.0 },
    ]
}

/// The servers compared.
const SERVERS: [&str; 3] = ["wsbox", crate::run::BUN, "tokio-tungstenite broadcast"];

/// Runs every cell on every server, interleaved; returns the Markdown.
pub fn run(mut opts: RunOptions, bun: Option<PathBuf>) -> Result<String> {
    let Setup { wsbox, pinned, server_core, load_core } = Setup::new(&mut opts)?;
    let bun = match bun {
        Some(b) => b,
        None => bootstrap("bootstrap-bun.sh")?,
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bun/pubsub.js").display().to_string();
    let me = std::env::current_exe()?;
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let servers = [
        Running::start(
            "wsbox",
            &wsbox,
            &s(&["serve", "--listen", "127.0.0.1:0", "--log-level", "warn", "--topic-path", "/topics/"]),
            server_core,
            "ws",
        )?,
        Running::start("bun", &bun, &s(&[&script]), server_core, "ws")?,
        Running::start(
            "tungstenite-broadcast",
            &me,
            &s(&["serve", "tungstenite-broadcast", "--listen", "127.0.0.1:0"]),
            server_core,
            "ws",
        )?,
    ];
    let mut rows = Vec::new();
    for cell in cells(opts.quick) {
        let mut runs: Vec<Vec<BroadcastReport>> = vec![Vec::new(); servers.len()];
        for round in 0..opts.rounds {
            for (i, server) in servers.iter().enumerate() {
                let report = load(server, None, &cell, &opts, load_core)?;
                eprintln!(
                    "wsbox-bench broadcast: {} round {} {}: {:.0} deliveries/s, {:.0} per server-CPU-s, p50 {:.0} µs",
                    cell.name(),
                    round + 1,
                    SERVERS[i],
                    report.deliveries_per_sec,
                    report.deliveries_per_server_cpu_sec,
                    report.p50_us
                );
                runs[i].push(report);
            }
        }
        // Each round's ratio, too: the servers of one round ran back to
        // back, so their ratio is spared the machine's drift between rounds.
        let per_round: Vec<f64> = runs[0]
            .iter()
            .zip(&runs[1])
            .map(|(w, b)| w.deliveries_per_server_cpu_sec / b.deliveries_per_server_cpu_sec.max(f64::MIN_POSITIVE))
            .collect();
        rows.push((cell, runs.iter().map(|r| median(r)).collect::<Vec<_>>(), per_round));
    }
    drop(servers);
    let nats_cell = cells(opts.quick).remove(0);
    let through_nats = through_nats(&wsbox, &nats_cell, &opts, server_core, load_core)?;
    let mut md = markdown(&rows, pinned, &opts);
    md.push_str(&nats_markdown(&nats_cell, &through_nats));
    if let Some(out) = &opts.out {
        crate::report::write_between(out, BEGIN, END, &md)?;
    }
    Ok(md)
}

/// Runs one of the project's bootstrap scripts (a path from `bench/`) and
/// returns the tool's path it prints.
pub(crate) fn bootstrap(script: &str) -> Result<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(script);
    let out = Command::new("bash").arg(&path).output().with_context(|| format!("running {script}"))?;
    if !out.status.success() {
        bail!("{script} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// The first cell again across two wsbox processes that share topics
/// through a `nats-server` (all three on the servers' core): publishers on
/// one, subscribers on the other. What it adds is the broker's latency.
fn through_nats(
    wsbox: &Path,
    cell: &Cell,
    opts: &RunOptions,
    server_core: Option<usize>,
    load_core: Option<usize>,
) -> Result<BroadcastReport> {
    let nats_server = bootstrap("../host/tests/clients/bootstrap-nats-server.sh")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut command = crate::servers::pinned(&nats_server, server_core);
    command.args(["-a", "127.0.0.1", "-p", &port.to_string()]);
    command.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    let mut nats = KillOnDrop(command.spawn().context("starting nats-server")?);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline || nats.0.try_wait()?.is_some() {
            bail!("nats-server did not listen on 127.0.0.1:{port}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let url = format!("nats://127.0.0.1:{port}");
    let args: Vec<String> =
        ["serve", "--listen", "127.0.0.1:0", "--log-level", "warn", "--topic-path", "/topics/", "--nats", &url]
            .iter()
            .map(|s| s.to_string())
            .collect();
    let publishing = Running::start("wsbox (publishers)", wsbox, &args, server_core, "ws")?;
    let subscribing = Running::start("wsbox (subscribers)", wsbox, &args, server_core, "ws")?;
    // Each connects to NATS in the background: give them a moment.
    std::thread::sleep(Duration::from_millis(500));
    let mut runs = Vec::new();
    for _ in 0..opts.rounds {
        runs.push(load(&subscribing, Some(&publishing), cell, opts, load_core)?);
    }
    Ok(median(&runs))
}

/// A child process killed (by its PID) when dropped.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn load(
    server: &Running,
    publish_to: Option<&Running>,
    cell: &Cell,
    opts: &RunOptions,
    pin: Option<usize>,
) -> Result<BroadcastReport> {
    let me = std::env::current_exe()?;
    let mut command = crate::servers::pinned(&me, pin);
    command.args(["broadcast-load", "--url", &server.url]);
    if let Some(publisher) = publish_to {
        command.args(["--publish-url", &publisher.url]);
    }
    for (flag, value) in [
        ("--topics", cell.topics.to_string()),
        ("--publishers", cell.publishers.to_string()),
        ("--subscribers", cell.subscribers.to_string()),
        ("--size", cell.size.to_string()),
        ("--rate", cell.rate.to_string()),
        ("--duration", opts.duration.to_string()),
        ("--warmup", opts.warmup.to_string()),
        ("--server-pid", server.pid.to_string()),
    ] {
        command.arg(flag).arg(value);
    }
    let output = command.output().context("running the broadcast load")?;
    if !output.status.success() {
        bail!("broadcast load against {} failed: {}", server.name, String::from_utf8_lossy(&output.stderr).trim());
    }
    serde_json::from_slice(&output.stdout).context("parsing the broadcast report")
}

fn nats_markdown(cell: &Cell, r: &BroadcastReport) -> String {
    let delivered = if r.expected > 0 { 100.0 * r.deliveries as f64 / r.expected as f64 } else { 0.0 };
    format!(
        "**Through NATS**: the first cell again, its publisher on one wsbox process and its subscribers on \
         another, the two sharing topics through a `nats-server` ({}).\n\n\
         | path | deliveries/s | delivered | p50 | p99 |\n|---|---:|---:|---:|---:|\n\
         | wsbox → NATS → wsbox | {:.0} | {delivered:.1}% | {:.0} µs | {:.0} µs |\n",
        cell.name(),
        r.deliveries_per_sec,
        r.p50_us,
        r.p99_us
    )
}

fn median(runs: &[BroadcastReport]) -> BroadcastReport {
    let pick = |f: fn(&BroadcastReport) -> f64| crate::report::median_of(runs.iter().map(f));
    BroadcastReport {
        publications: pick(|r| r.publications as f64) as u64,
        deliveries: pick(|r| r.deliveries as f64) as u64,
        expected: pick(|r| r.expected as f64) as u64,
        seconds: pick(|r| r.seconds),
        deliveries_per_sec: pick(|r| r.deliveries_per_sec),
        p50_us: pick(|r| r.p50_us),
        p99_us: pick(|r| r.p99_us),
        client_cpu_pct: pick(|r| r.client_cpu_pct),
        server_cpu_pct: pick(|r| r.server_cpu_pct),
        server_user_cpu_pct: pick(|r| r.server_user_cpu_pct),
        deliveries_per_server_cpu_sec: pick(|r| r.deliveries_per_server_cpu_sec),
    }
}

fn markdown(rows: &[(Cell, Vec<BroadcastReport>, Vec<f64>)], pinned: bool, opts: &RunOptions) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "{}", crate::report::measured_on());
    let _ = writeln!(
        md,
        "`cargo run --release -p wsbox-bench -- broadcast{}`: {} round(s) per cell, {} s measured after {} s warm-up; {}.\n",
        if opts.quick { " --quick" } else { "" },
        opts.rounds,
        opts.duration,
        opts.warmup,
        if pinned { "servers pinned to core 0, the generator to core 1" } else { "unpinned" }
    );
    for (cell, reports, per_round) in rows {
        let _ = writeln!(md, "**{}** ({:.0} deliveries/s asked)\n", cell.name(), cell.deliveries_per_sec());
        let _ = writeln!(
            md,
            "| server | publications/s | deliveries/s | delivered | server CPU | of it user | deliveries per server-CPU-s | p50 | p99 | generator CPU |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for (name, r) in SERVERS.iter().zip(reports) {
            let delivered = if r.expected > 0 { 100.0 * r.deliveries as f64 / r.expected as f64 } else { 0.0 };
            let _ = writeln!(
                md,
                "| {name} | {:.0} | {:.0} | {delivered:.1}% | {:.0}% | {:.0}% | {:.0} | {:.0} µs | {:.0} µs | {:.0}% |",
                r.publications as f64 / r.seconds,
                r.deliveries_per_sec,
                r.server_cpu_pct,
                r.server_user_cpu_pct,
                r.deliveries_per_server_cpu_sec,
                r.p50_us,
                r.p99_us,
                r.client_cpu_pct
            );
        }
        let per_cpu = |i: usize| reports[i].deliveries_per_server_cpu_sec;
        let rounds: Vec<String> = per_round.iter().map(|r| format!("{r:.2}")).collect();
        let _ = writeln!(
            md,
            "\nwsbox ÷ Bun per server-CPU-s: **{:.2}×** (round by round: {}); ÷ tokio-tungstenite: **{:.2}×**.\n",
            per_cpu(0) / per_cpu(1).max(f64::MIN_POSITIVE),
            rounds.join(", "),
            per_cpu(0) / per_cpu(2).max(f64::MIN_POSITIVE)
        );
    }
    md
}
