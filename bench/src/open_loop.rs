//! The open loop: messages leave on a fixed schedule, whatever the echoes
//! do. The aggregate rate is spread over the connections in turn (message
//! k goes at `k / rate` on connection `k mod N`), each payload carries its
//! *scheduled* send time, and a round trip is counted from it: a server
//! that falls behind, or a send that had to wait for the socket, shows in
//! the latency instead of slowing the load (no coordinated omission).
//!
//! Waits shorter than a timer tick (tokio's is 1 ms) are spent yielding to
//! the runtime, which polls the sockets each time: the generator keeps its
//! core busy, so its CPU share says nothing here; how late it sent (p99)
//! says whether it kept the schedule.

use crate::load::{
    Conn, CpuSpan, LoadOptions, LoadReport, MEASURE, Opened, STOP, Tally, WARMUP, is_measured, mark_measured,
    write_sent_at,
};
use anyhow::{Context, Result, bail};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

/// After STOP: the readers return.
const DONE: u8 = 3;

/// How long echoes of the last measured messages are awaited.
const DRAIN: Duration = Duration::from_secs(5);

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The sending half of a connection.
enum Writer {
    Raw(tokio::net::tcp::OwnedWriteHalf),
    Ws(SplitSink<Ws, Message>),
    H2(SplitSink<crate::load::H2Ws, Message>),
}

impl Writer {
    async fn send(&mut self, payload: Vec<u8>, text: bool) -> Result<()> {
        let message = |payload: Vec<u8>| {
            if text {
                Message::text(String::from_utf8(payload).expect("ASCII payload"))
            } else {
                Message::binary(payload)
            }
        };
        match self {
            Writer::Raw(w) => w.write_all(&payload).await?,
            Writer::Ws(w) => w.send(message(payload)).await?,
            Writer::H2(w) => w.send(message(payload)).await?,
        }
        Ok(())
    }
}

/// What the readers share: the run's phase and the measured echoes so far.
struct Shared {
    phase: AtomicU8,
    /// Measured messages echoed (whenever they came back).
    received: AtomicU64,
    /// Echoes of any message that came back while measuring: the work the
    /// server's CPU time over that span paid for.
    in_span: AtomicU64,
    clock: Instant,
    size: usize,
}

/// Runs the open loop over `opened` and reports what it measured.
pub async fn run(opened: Opened, opts: &LoadOptions, clock: Instant) -> Result<LoadReport> {
    let Opened { conns, open_server_cpu_us, carriers: _carriers } = opened;
    let shared = Arc::new(Shared {
        phase: AtomicU8::new(WARMUP),
        received: AtomicU64::new(0),
        in_span: AtomicU64::new(0),
        clock,
        size: opts.size,
    });
    let mut writers = Vec::with_capacity(conns.len());
    let mut readers = Vec::with_capacity(conns.len());
    for conn in conns {
        let shared = Arc::clone(&shared);
        match conn {
            Conn::Raw(stream) => {
                let (rd, wr) = stream.into_split();
                writers.push(Writer::Raw(wr));
                readers.push(tokio::spawn(read_raw(rd, shared)));
            }
            Conn::Ws(ws) => {
                let (wr, rd) = (*ws).split();
                writers.push(Writer::Ws(wr));
                readers.push(tokio::spawn(read_ws(rd, shared)));
            }
            Conn::H2(ws) => {
                let (wr, rd) = (*ws).split();
                writers.push(Writer::H2(wr));
                readers.push(tokio::spawn(read_ws(rd, shared)));
            }
        }
    }

    let template = crate::load::template(opts.size);
    let text = opts.kind == crate::load::Kind::Text;
    let mut late_ns = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds");
    let mut sent = 0u64;
    let start = Instant::now();
    let measure_at = start + Duration::from_secs_f64(opts.warmup);
    let stop_at = measure_at + Duration::from_secs_f64(opts.duration);
    let mut cpu = None;
    for k in 0u64.. {
        let due = start + Duration::from_secs_f64(k as f64 / opts.rate);
        if due >= stop_at {
            break;
        }
        if due >= measure_at && cpu.is_none() {
            wait_until(measure_at).await;
            cpu = Some(CpuSpan::start(opts.server_pid)?);
            shared.phase.store(MEASURE, Ordering::Relaxed);
        }
        wait_until(due).await;
        let measured = due >= measure_at;
        let mut payload = template.clone();
        let scheduled = due.duration_since(clock).as_nanos() as u64;
        write_sent_at(&mut payload, scheduled);
        mark_measured(&mut payload, measured);
        if measured {
            let _ = late_ns.record((Instant::now() - due).as_nanos().max(1) as u64);
            sent += 1;
        }
        let conn = (k % writers.len() as u64) as usize;
        // A server that stops reading fills the socket: give up at the end
        // of the drain rather than wait forever.
        match tokio::time::timeout_at((stop_at + DRAIN).into(), writers[conn].send(payload, text)).await {
            Ok(sent) => sent.with_context(|| format!("sending on connection {conn}"))?,
            Err(_) => bail!("the server stopped reading (connection {conn} took no message for {DRAIN:?})"),
        }
    }
    wait_until(stop_at).await;
    let cpu = cpu.context("--duration and --rate leave no message to measure")?.end()?;
    shared.phase.store(STOP, Ordering::Relaxed);

    // The last measured messages are still on their way back.
    let drained = Instant::now() + DRAIN;
    while shared.received.load(Ordering::Relaxed) < sent && Instant::now() < drained {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    shared.phase.store(DONE, Ordering::Relaxed);
    let mut total = Tally::new();
    for reader in readers {
        total.add(&reader.await.context("a reader panicked")?);
    }
    drop(writers);
    let mut report = total.report(&cpu, open_server_cpu_us);
    let in_span = shared.in_span.load(Ordering::Relaxed);
    report.msgs_per_server_cpu_sec = if cpu.server_cpu > 0.0 { in_span as f64 / cpu.server_cpu } else { 0.0 };
    report.sent = sent;
    report.missing = sent.saturating_sub(total.messages);
    report.send_late_p99_us = late_ns.value_at_quantile(0.99) as f64 / 1_000.0;
    Ok(report)
}

/// Waits until `due`: on the timer while it is more than a tick away, then
/// by yielding (each yield lets the runtime poll the sockets).
async fn wait_until(due: Instant) {
    loop {
        let now = Instant::now();
        if now >= due {
            return;
        }
        if due - now > Duration::from_millis(2) {
            tokio::time::sleep_until((due - Duration::from_millis(1)).into()).await;
        } else {
            tokio::task::yield_now().await;
        }
    }
}

impl Shared {
    /// Counts one echo if it was sent while measuring.
    fn echo(&self, tally: &mut Tally, payload: &[u8]) {
        if self.phase.load(Ordering::Relaxed) == MEASURE {
            self.in_span.fetch_add(1, Ordering::Relaxed);
        }
        if is_measured(payload) {
            let counted = tally.messages;
            tally.record_echo(payload, self.size, self.clock);
            if tally.messages > counted {
                self.received.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn done(&self) -> bool {
        self.phase.load(Ordering::Relaxed) == DONE
    }
}

/// Reads echoes until the run is done (looking every 100 ms).
async fn read_ws<S>(mut rd: SplitStream<S>, shared: Arc<Shared>) -> Tally
where
    SplitStream<S>: StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let mut tally = Tally::new();
    while !shared.done() {
        match tokio::time::timeout(Duration::from_millis(100), rd.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => shared.echo(&mut tally, t.as_bytes()),
            Ok(Some(Ok(Message::Binary(b)))) => shared.echo(&mut tally, &b),
            Ok(Some(Ok(_))) | Err(_) => {}
            Ok(Some(Err(_)) | None) => {
                tally.errors += 1;
                break;
            }
        }
    }
    tally
}

/// [`read_ws`] for the raw echo: echoes are `size` bytes back to back
/// (`read` into a buffer, which a timeout may cancel without losing bytes).
async fn read_raw(mut rd: tokio::net::tcp::OwnedReadHalf, shared: Arc<Shared>) -> Tally {
    let mut tally = Tally::new();
    let mut buf = vec![0u8; shared.size * 64];
    let mut filled = 0;
    while !shared.done() {
        match tokio::time::timeout(Duration::from_millis(100), rd.read(&mut buf[filled..])).await {
            Ok(Ok(0) | Err(_)) => {
                tally.errors += 1;
                break;
            }
            Ok(Ok(n)) => filled += n,
            Err(_) => continue,
        }
        let whole = filled / shared.size * shared.size;
        for echo in buf[..whole].chunks_exact(shared.size) {
            shared.echo(&mut tally, echo);
        }
        buf.copy_within(whole..filled, 0);
        filled -= whole;
    }
    tally
}
