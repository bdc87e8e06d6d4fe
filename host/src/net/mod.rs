//! The host's side of the host-fed binding: the `wsbox:websocket/net` import.
//!
//! The host owns every socket, and runs them as one event loop per instance
//! inside the guest's `exchange` call: no task per connection, no lock, no
//! hand-off. Once per turn the guest calls `exchange`; the host writes the
//! guest's output (one `write` per connection; what the socket does not
//! take waits for writability), then takes every readiness event since the
//! last turn from one epoll ([`poller`]), accepts, drains pending output,
//! reads ready connections straight into one flat batch ([`turn`]), and
//! hands the batch over, waiting up to the turn's timeout when there is
//! nothing yet. A turn stops growing near [`TURN_CAP`] bytes and gives each
//! connection at most [`CONN_SHARE`] of it (fairness: connections the full
//! turn left unread go first next turn); a connection whose output backs up
//! past [`WRITE_LIMIT`] is not read until it drains (backpressure).

mod admission;
pub mod batch;
mod conn;
mod http2;
mod listener;
mod poller;
pub mod proxy;
mod turn;

use crate::sandbox::ListenPolicy;
use admission::AdmissionControl;
pub use admission::AdmissionLimits;
use conn::{Conn, Discarded, HeaderOutcome, Phase, ReadOutcome};
use http2::Loop;
use listener::Listening;

/// Listening sockets handed from one instance's sockets to the next (an
/// instance recycled or replaced after a failure), so the port stays open
/// and its backlog is kept: no client is refused in between.
pub struct Listeners(Vec<Listening>);
use crate::health::HealthCheck;
use crate::page::Page;
use crate::topics::{BusPort, TopicBus};
use poller::Poller;
pub use proxy::TrustedProxies;
use rustc_hash::FxHashMap;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use turn::Turn;

// The transport policy's numbers are `wsbox-transport`'s, shared with the
// component's WASI binding. A turn stops taking input near `TURN_CAP`
// (measured: 35 MB turns fell to 0.48x native throughput).
pub use wsbox_transport::{CONN_SHARE, TURN_CAP, WRITE_HARD_CAP, WRITE_LIMIT};

/// The operator's transport limits for one instance.
#[derive(Clone, Debug)]
pub struct TransportLimits {
    /// Open connections at most; past it new ones wait in the OS backlog
    /// until one closes. Default 10 000.
    pub max_connections: usize,
    /// A connection whose output makes no progress this long (the peer does
    /// not read) is dropped. Default 30 s.
    pub write_timeout: Duration,
    /// Listen with SO_REUSEPORT, so that several instances (one per worker
    /// thread) share a port and the kernel spreads connections across them.
    pub reuse_port: bool,
    /// Which new connections are served (memory marks, per-address caps).
    pub admission: AdmissionLimits,
    /// The proxies the operator trusts to name their clients (in a PROXY
    /// header, or in `Forwarded` / `X-Forwarded-For`). Default: none.
    pub proxy: TrustedProxies,
    /// The health check the guest answers on the listeners. Default: none.
    pub health_check: Option<HealthCheck>,
    /// The page the guest serves on the listeners. Default: none.
    pub page: Option<Page>,
    /// How long a TLS connection that chooses HTTP/2 has to start it (the
    /// guest no longer sees that connection, so its own handshake deadline
    /// does not reach it): the app's handshake timeout
    /// (`--handshake-timeout-ms`). None: no deadline. Default 10 s.
    pub handshake_timeout: Option<Duration>,
    /// How long an HTTP/2 connection may stay without a stream before it is
    /// told to go away (`--http2-idle-timeout-ms`). Default 60 s.
    pub http2_idle_timeout: Duration,
    /// How long a saturated loop lets input gather before it hands a turn
    /// over (see `NetHost::coalesce`); zero: never. Default
    /// [`GATHER_INPUT_US`].
    pub gather_input: Duration,
}

impl Default for TransportLimits {
    fn default() -> Self {
        Self {
            max_connections: wsbox_transport::MAX_CONNECTIONS,
            write_timeout: Duration::from_millis(wsbox_transport::WRITE_TIMEOUT_MS),
            reuse_port: false,
            admission: AdmissionLimits::default(),
            proxy: TrustedProxies::default(),
            health_check: None,
            page: None,
            gather_input: Duration::from_micros(GATHER_INPUT_US),
            handshake_timeout: Some(Duration::from_millis(wsbox_defaults::HANDSHAKE_TIMEOUT_MS)),
            http2_idle_timeout: Duration::from_millis(wsbox_defaults::HTTP2_IDLE_TIMEOUT_MS),
        }
    }
}

/// How often deadlines (write timeout, close, linger) are looked at while
/// one runs: their resolution.
const HOUSEKEEPING: Duration = Duration::from_millis(100);

/// How long, in µs, a saturated loop lets input gather before a turn is
/// handed over, by default (see `NetHost::coalesce`); the kernel's timer
/// slack makes it ~0.1 ms. Shorter pauses made smaller turns: 1 µs of slack
/// cost ~12% more CPU per message in the headline cell, for no latency the
/// generator-bound cell could show.
pub const GATHER_INPUT_US: u64 = 50;
/// Only a turn with less input than this pauses.
const COALESCE_BELOW: usize = 64 * 1024;

/// How many connections are in each state (a metric's labels).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnectionStates {
    /// Before the upgrade: the PROXY header, the TLS handshake, the HTTP
    /// request (and a plain request's answer).
    pub handshake: usize,
    /// Upgraded, our close frame not sent.
    pub websocket: usize,
    /// Our close frame sent, or closed by the guest: output being written,
    /// or lingering for the peer's close.
    pub closing: usize,
}

/// Tokens of listeners carry this bit; connections' tokens are their ids.
const LISTENER_TOKEN: usize = 1 << (usize::BITS - 1);

/// Wakes an instance that waits in `exchange`, e.g. to shut down.
#[derive(Clone)]
pub struct Interrupter(Arc<Interrupt>);

#[derive(Default)]
struct Interrupt {
    requested: AtomicBool,
    notify: Notify,
}

impl Interrupter {
    /// The guest's current (or next) wait for input returns at once.
    pub fn interrupt(&self) {
        self.0.requested.store(true, Ordering::Release);
        self.0.notify.notify_one();
    }
}

/// The host's sockets for one component instance, and their event loop.
pub struct NetHost {
    policy: ListenPolicy,
    /// The operator's TLS identity; secure listeners need it.
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: TransportLimits,
    /// Made on first use, in the runtime the instance runs on.
    poller: Option<Poller>,
    // Keyed by ids this loop hands out, never by what a peer chose: a plain
    // fast hash (a connection is looked up for every write).
    listeners: FxHashMap<u32, Listening>,
    next_listener: u32,
    conns: FxHashMap<u32, Conn>,
    next_conn: u32,
    /// The guest's connections that are HTTP/2 streams, each with the id
    /// of the connection that carries it.
    streams: FxHashMap<u32, u32>,
    /// Carriers whose HTTP/2 session has something to do.
    to_pump: Vec<u32>,
    /// Carriers whose session has work for the next turn (input held for
    /// a stream when this one was full): pumped when the guest comes back.
    pump_next_turn: Vec<u32>,
    /// Connections to read, in turn order; those a full turn left unread
    /// stay at the front.
    to_read: VecDeque<u32>,
    /// Connections whose socket became writable while output was pending.
    to_drain: Vec<u32>,
    /// The batch being gathered for the next turn.
    turn: Turn,
    /// Some connection may have a deadline running.
    timers: bool,
    next_housekeeping: Instant,
    /// The last turn found its input without waiting (see `coalesce`).
    last_turn_busy: bool,
    /// The connection cap was reached (logged once until it clears).
    at_cap: bool,
    interrupt: Arc<Interrupt>,
    /// Raw reads for TLS and for discarding while lingering.
    scratch: Box<[u8]>,
    admission: AdmissionControl,
    /// Listening sockets of the previous instance, taken over by `listen`.
    inherited: Vec<Listening>,
    /// This instance's place among the instances that share topics.
    topics: Option<BusPort>,
    /// Publications the guest counted since [`NetHost::take_topic_counts`].
    topic_counts: batch::TopicCounts,
    /// The statuses of the guest's answers to HTTP requests, counted at
    /// each connection's first write (see [`NetHost::take_http_responses`]).
    http_responses: Vec<(u16, u64)>,
    /// HTTP/2 connections and WebSocket streams opened since
    /// [`NetHost::take_http2_counts`].
    http2_counts: Http2Counts,
}

/// HTTP/2 use, counted for the metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Http2Counts {
    /// TLS connections whose ALPN chose HTTP/2.
    pub connections: u64,
    /// WebSockets opened as extended CONNECT streams.
    pub websockets: u64,
}

impl NetHost {
    /// Sockets governed by `policy` (where the component may listen), with
    /// the TLS identity secure listeners use.
    pub fn new(policy: ListenPolicy, tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        Self::with_limits(policy, tls, TransportLimits::default())
    }

    /// [`NetHost::new`] with the operator's transport limits.
    pub fn with_limits(policy: ListenPolicy, tls: Option<Arc<rustls::ServerConfig>>, limits: TransportLimits) -> Self {
        Self {
            admission: AdmissionControl::new(limits.admission),
            policy,
            tls,
            limits,
            poller: None,
            listeners: FxHashMap::default(),
            next_listener: 1,
            conns: FxHashMap::default(),
            next_conn: 1,
            streams: FxHashMap::default(),
            to_pump: Vec::new(),
            pump_next_turn: Vec::new(),
            to_read: VecDeque::new(),
            to_drain: Vec::new(),
            turn: Turn::default(),
            timers: false,
            next_housekeeping: Instant::now(),
            last_turn_busy: false,
            at_cap: false,
            interrupt: Arc::default(),
            scratch: vec![0; wsbox_transport::READ_CHUNK].into_boxed_slice(),
            inherited: Vec::new(),
            topics: None,
            topic_counts: batch::TopicCounts::default(),
            http_responses: Vec::new(),
            http2_counts: Http2Counts::default(),
        }
    }

    /// Shares topics with the other instances on `bus`: the guest forwards
    /// its publications and gets theirs. Before the guest first runs (it
    /// asks once).
    pub fn join_topics(&mut self, bus: &TopicBus) {
        let interrupter = self.interrupter();
        self.topics = Some(bus.join(Box::new(move || interrupter.interrupt())));
    }

    /// The path of the health check the guest answers (see the WIT's
    /// `net.health-check-path`).
    pub fn health_check_path(&self) -> Option<String> {
        self.limits.health_check.as_ref().map(|h| h.path.clone())
    }

    /// The page the guest serves (see the WIT's `net.page`).
    pub fn page(&self) -> Option<&Page> {
        self.limits.page.as_ref()
    }

    /// Whether the server takes new connections: a health check's answer.
    pub fn serving(&self) -> bool {
        self.limits.health_check.as_ref().is_none_or(|h| h.readiness.is_ready())
    }

    /// Whether the guest should forward publications (see [`NetHost::join_topics`]).
    pub fn forwards_publications(&self) -> bool {
        self.topics.is_some()
    }

    /// What the guest counted of its publications since the last call.
    pub fn take_topic_counts(&mut self) -> batch::TopicCounts {
        std::mem::take(&mut self.topic_counts)
    }

    /// The answers the guest gave to HTTP requests since the last call:
    /// (status, count).
    pub fn take_http_responses(&mut self) -> Vec<(u16, u64)> {
        std::mem::take(&mut self.http_responses)
    }

    /// HTTP/2 connections and WebSocket streams opened since the last call.
    pub fn take_http2_counts(&mut self) -> Http2Counts {
        std::mem::take(&mut self.http2_counts)
    }

    /// Takes the listening sockets out, for the next instance; the HTTP/2
    /// connections take no new streams (GOAWAY): new WebSockets come to
    /// the next instance.
    pub fn take_listeners(&mut self) -> Listeners {
        self.go_away_all(None);
        let mut taken: Vec<Listening> = self.listeners.drain().map(|(_, l)| l).collect();
        // And those inherited that the guest had not listened on yet.
        taken.append(&mut self.inherited);
        if let Some(poller) = self.poller.as_ref() {
            for listening in &mut taken {
                let _ = poller.registry().deregister(listening.source());
            }
        }
        Listeners(taken)
    }

    /// Hands over a previous instance's listening sockets: the component's
    /// `listen` on the same IP (any port for port 0, else the same port) and
    /// scheme takes one over instead of binding afresh.
    pub fn inherit_listeners(&mut self, listeners: Listeners) {
        self.inherited = listeners.0;
    }

    /// After the instance failed, gives every connection a proper end, as
    /// a task of its own. Listeners close at once (a fresh instance can
    /// bind). A WebSocket whose close frame had not gone out gets
    /// `close_frame` after its pending output (which ends on a frame
    /// boundary: the guest hands over whole frames); then every connection
    /// is closed as the guest would close it (output written, TLS
    /// close_notify, write side shut, lingering for the peer's close). The
    /// future resolves to the number of close frames sent, once every
    /// connection ended or `grace` passed.
    pub fn farewell(mut self, close_frame: &[u8], grace: Duration) -> impl Future<Output = usize> + use<> {
        self.listeners.clear();
        // No guest is left to deliver publications to.
        self.topics = None;
        let now = Instant::now();
        let mut told = 0;
        let ids: Vec<u32> = self.conns.keys().copied().collect();
        for id in ids {
            let Some(conn) = self.conns.get_mut(&id) else { continue };
            if let Some(h2) = conn.h2() {
                let now_ms = conn::millis(now);
                for stream in h2.stream_ids().collect::<Vec<_>>() {
                    if h2.is_open_websocket(stream)
                        && h2.write(stream, Cow::Borrowed(close_frame), &mut self.turn, now_ms).is_ok()
                    {
                        told += 1;
                    }
                    h2.close(stream);
                }
                h2.go_away();
                self.to_pump.push(id);
                continue;
            }
            if !conn.announced() {
                self.remove(id);
                continue;
            }
            if conn.websocket && !conn.close_sent && conn.phase == Phase::Open {
                if conn.write(Cow::Borrowed(close_frame), &mut self.turn).is_err() {
                    self.fail(id);
                    continue;
                }
                told += 1;
            }
            conn.close(&mut self.turn, now);
            if conn.advance_close(now) {
                self.remove(id);
            }
        }
        self.timers = true;
        async move {
            let end = now + grace;
            while !self.conns.is_empty() && Instant::now() < end {
                // What the peers still send goes nowhere: there is no guest.
                let _ = self.exchange(100).await;
            }
            told
        }
    }

    /// A handle that ends the instance's current wait for input (see
    /// [`Interrupter::interrupt`]); safe to use from any thread.
    pub fn interrupter(&self) -> Interrupter {
        Interrupter(Arc::clone(&self.interrupt))
    }

    /// The number of connections the host holds open (lingering ones too).
    pub fn connection_count(&self) -> usize {
        self.conns.len() + self.streams.len()
    }

    /// The connections by state (one pass over them all: for a sample, not
    /// for every turn).
    pub fn connection_states(&self) -> ConnectionStates {
        let mut states = ConnectionStates::default();
        for conn in self.conns.values() {
            if let Some(h2) = conn.h2_ref() {
                // Not a connection of the guest's: its streams are.
                for (websocket, closing) in h2.stream_states() {
                    match (websocket, closing) {
                        (_, true) => states.closing += 1,
                        (true, false) => states.websocket += 1,
                        (false, false) => states.handshake += 1,
                    }
                }
                continue;
            }
            // (`websocket` stays set once upgraded: closing is asked first.)
            if conn.close_sent || conn.phase != Phase::Open {
                states.closing += 1;
            } else if conn.websocket {
                states.websocket += 1;
            } else {
                states.handshake += 1;
            }
        }
        states
    }

    fn poller(&mut self) -> std::io::Result<&mut Poller> {
        if self.poller.is_none() {
            self.poller = Some(Poller::new()?);
        }
        Ok(self.poller.as_mut().expect("just made"))
    }

    pub fn listen(&mut self, address: String, port: u16, secure: bool) -> Result<batch::Listener, batch::ListenError> {
        let denied = |message: String| batch::ListenError { code: batch::ListenErrorCode::AccessDenied, message };
        let other =
            |e: std::io::Error| batch::ListenError { code: batch::ListenErrorCode::Other, message: e.to_string() };
        let tls = match (secure, &self.tls) {
            (false, _) => None,
            (true, Some(config)) => Some(Arc::clone(config)),
            (true, None) => {
                return Err(denied("wss:// needs a certificate: start wsbox with --tls-cert and --tls-key".into()));
            }
        };
        let ip = address.parse().map_err(|_| batch::ListenError {
            code: batch::ListenErrorCode::AddressNotAvailable,
            message: format!("'{address}' is not an IP address"),
        })?;
        let requested = SocketAddr::new(ip, port);
        if !self.policy.allows(requested) {
            return Err(denied(format!("the host does not allow listening on {requested} (allowed: {})", self.policy)));
        }
        let id = self.next_listener;
        let inherited = self.inherited.iter().position(|l| {
            l.local_addr().is_ok_and(|a| a.ip() == ip && (port == 0 || a.port() == port)) && l.is_secure() == secure
        });
        let mut listening = match inherited {
            Some(at) => Ok(self.inherited.swap_remove(at).renumbered(id, tls)),
            None => Listening::bind(id, requested, self.limits.reuse_port, tls),
        }
        .map_err(|e| batch::ListenError {
            code: match e.kind() {
                std::io::ErrorKind::AddrInUse => batch::ListenErrorCode::AddressInUse,
                std::io::ErrorKind::AddrNotAvailable => batch::ListenErrorCode::AddressNotAvailable,
                std::io::ErrorKind::PermissionDenied => batch::ListenErrorCode::AccessDenied,
                _ => batch::ListenErrorCode::Other,
            },
            message: e.to_string(),
        })?;
        let local = listening.local_addr().map_err(other)?;
        self.poller()
            .map_err(other)?
            .registry()
            .register(listening.source(), mio::Token(LISTENER_TOKEN | id as usize), mio::Interest::READABLE)
            .map_err(other)?;
        self.next_listener += 1;
        self.listeners.insert(id, listening);
        tracing::debug!(listener = id, %local, "listening");
        Ok(batch::Listener { id, address: local.ip().to_string(), port: local.port() })
    }

    /// Runs the event loop until there is something to hand over (or
    /// `timeout_ms` passed), and hands it over.
    pub async fn exchange(&mut self, timeout_ms: u32) -> batch::Incoming {
        // A saturated instance never waits: let the thread's other tasks (a
        // failed instance's farewell) run now and then.
        tokio::task::consume_budget().await;
        let now = Instant::now();
        let deadline = now + Duration::from_millis(timeout_ms as u64);
        let mut woke_with_events = false;
        let mut waited = false;
        loop {
            // A wait that ended on readiness took the events already.
            if !woke_with_events && let Err(e) = self.take_events() {
                tracing::error!(error = %e, "polling the sockets failed");
            }
            if let Some(port) = &self.topics
                && let Some(connected) = port.receive(&mut self.turn.publications)
            {
                self.turn.broker_connected = Some(connected);
            }
            let now = Instant::now();
            self.service(now);
            if self.turn.has_input() && !waited && self.coalesce() {
                // A blocking pause inside the async call: it happens only
                // while this loop is saturated, when its thread has no
                // idle time to give to anyone anyway.
                std::thread::sleep(self.limits.gather_input);
                if let Err(e) = self.take_events() {
                    tracing::error!(error = %e, "polling the sockets failed");
                }
                self.service(Instant::now());
            }
            if self.turn.has_news() || now >= deadline || self.interrupt.requested.swap(false, Ordering::AcqRel) {
                break;
            }
            waited = true;
            woke_with_events = self.wait(deadline).await;
        }
        if waited || !self.turn.has_input() {
            self.last_turn_busy = false;
        }
        self.to_pump.append(&mut self.pump_next_turn);
        let (conns, streams) = (&self.conns, &self.streams);
        self.turn.take(|id| match conns.get(&id) {
            Some(conn) => Some(conn.backed_up()),
            None => conns.get(streams.get(&id)?)?.h2_ref()?.backed_up(id),
        })
    }

    /// Whether to let input gather for `gather_input` before handing
    /// this turn over: when the loop is saturated — this turn and the last
    /// one both found input without waiting for it — and the turn holds
    /// less than [`COALESCE_BELOW`] (a bigger turn already spreads its fixed
    /// costs, and pausing a loop busy with large messages costs throughput). A saturated loop otherwise turns as fast as bytes
    /// trickle in (~2 messages a turn at 64×16×1 KiB), and pays a turn's
    /// fixed costs, an `epoll_wait`, a `recv` and a `send` per connection
    /// (one TCP segment each, which the peer must process too) for each
    /// trickle. Gathering for ~0.1 ms cut the server's syscalls sixfold and
    /// its CPU per message by half. A loop that waited for its input (a
    /// lone request-response client, any server with idle time) never
    /// pauses, so its latency is untouched.
    fn coalesce(&mut self) -> bool {
        let saturated = self.last_turn_busy;
        self.last_turn_busy = true;
        saturated && self.turn.data.len() < COALESCE_BELOW && !self.limits.gather_input.is_zero()
    }

    /// The first half of an exchange (see [`NetHost::exchange`] for the
    /// second): writes each connection's bytes, then closes and aborts as
    /// asked. Synchronous, so that the guest's lent bytes are used only
    /// while no guest code can run.
    pub fn write_output(&mut self, out: batch::Outgoing<'_>) {
        let now = Instant::now();
        self.admission.guest_reported(out.heap_bytes);
        let counts = &mut self.topic_counts;
        counts.publications += out.topic_counts.publications;
        counts.delivered += out.topic_counts.delivered;
        counts.skipped += out.topic_counts.skipped;
        if let Some(port) = &self.topics {
            port.send(out.topics_joined, out.topics_left, out.publications);
        }
        for id in &out.upgraded {
            if let Some(conn) = announced(&mut self.conns, *id) {
                conn.websocket = true;
            } else if let Some((_, h2)) = self.stream_session(*id) {
                h2.mark(*id, true, false);
            }
        }
        for id in &out.closing {
            if let Some(conn) = announced(&mut self.conns, *id) {
                conn.close_sent = true;
            } else if let Some((_, h2)) = self.stream_session(*id) {
                h2.mark(*id, false, true);
            }
        }
        // A connection's share of publications precedes its own output.
        self.write_shared(&out.shared);
        for batch::Write { conn: id, data } in out.writes {
            let Some(conn) = announced(&mut self.conns, id) else {
                self.write_stream(id, Cow::Borrowed(data));
                continue;
            };
            if !conn.answered {
                conn.answered = true;
                count_response(&mut self.http_responses, data);
            }
            match conn.write(Cow::Borrowed(data), &mut self.turn) {
                Ok(()) => {
                    self.timers |= conn.has_timer();
                    // A raised write limit can end backpressure here.
                    enqueue_if_readable(conn, &mut self.to_read);
                }
                Err(conn::Failed) => self.fail(id),
            }
        }
        for id in &out.close {
            if let Some(conn) = announced(&mut self.conns, *id) {
                conn.close(&mut self.turn, now);
                self.timers = true;
                if conn.advance_close(now) {
                    self.remove(*id);
                }
            } else if let Some((carrier, h2)) = self.stream_session(*id) {
                h2.close(*id);
                self.to_pump.push(carrier);
            }
        }
        for id in &out.abort {
            if announced(&mut self.conns, *id).is_some() {
                self.remove(*id);
            } else if let Some((carrier, h2)) = self.stream_session(*id) {
                h2.abort(*id);
                self.to_pump.push(carrier);
                self.forget_stream(*id);
            }
        }
        self.pump(now);
    }

    /// The HTTP/2 session that carries stream `id`, with its carrier's id.
    fn stream_session(&mut self, id: u32) -> Option<(u32, &mut http2::Session)> {
        let carrier = *self.streams.get(&id)?;
        Some((carrier, self.conns.get_mut(&carrier)?.h2()?))
    }

    /// The guest's bytes for an HTTP/2 stream.
    fn write_stream(&mut self, id: u32, bytes: Cow<'_, [u8]>) {
        let now_ms = conn::millis(Instant::now());
        let Some(&carrier) = self.streams.get(&id) else { return };
        let Some(h2) = self.conns.get_mut(&carrier).and_then(Conn::h2) else { return };
        if !h2.answered(id) {
            count_response(&mut self.http_responses, &bytes);
        }
        if h2.write(id, bytes, &mut self.turn, now_ms).is_err() {
            self.turn.gone.push(id);
            self.forget_stream(id);
        }
        self.to_pump.push(carrier);
    }

    /// A stream ended: it no longer routes to its carrier, and no longer
    /// counts for its client's address.
    fn forget_stream(&mut self, id: u32) {
        if let Some(carrier) = self.streams.remove(&id)
            && let Some(conn) = self.conns.get(&carrier)
        {
            self.admission.closed(conn.peer);
        }
    }

    /// Runs the HTTP/2 sessions that have something to do: new streams are
    /// routed, ended ones forgotten, a session that is over closes its
    /// carrier.
    fn pump(&mut self, now: Instant) {
        if self.to_pump.is_empty() {
            return;
        }
        let mut carriers = std::mem::take(&mut self.to_pump);
        carriers.sort_unstable();
        carriers.dedup();
        for carrier in carriers {
            let stream_room = self.limits.max_connections.saturating_sub(self.conns.len() + self.streams.len());
            let Some(conn) = self.conns.get_mut(&carrier) else { continue };
            let mut lp = Loop {
                turn: &mut self.turn,
                next_id: &mut self.next_conn,
                admission: &mut self.admission,
                now,
                now_ms: conn::millis(now),
                health_path: self.limits.health_check.as_ref().map(|h| h.path.as_str()),
                page_path: self.limits.page.as_ref().map(|p| p.path.as_str()),
                began: Vec::new(),
                ended: Vec::new(),
                websockets: 0,
                stream_room,
            };
            let pumped = conn.pump_h2(&mut lp);
            let blocked = matches!(pumped, Ok(true));
            let (began, ended) = (lp.began, lp.ended);
            self.http2_counts.websockets += lp.websockets;
            self.timers |= conn.has_timer();
            let over = conn.h2_ref().is_some_and(|h2| h2.is_closed(now));
            if blocked || conn.h2_ref().is_some_and(http2::Session::wants_pump) {
                self.pump_next_turn.push(carrier);
            }
            for id in began {
                self.streams.insert(id, carrier);
            }
            for id in ended {
                self.forget_stream(id);
            }
            if pumped.is_err() {
                self.fail(carrier);
            } else if over && let Some(conn) = self.conns.get_mut(&carrier) {
                conn.close(&mut self.turn, now);
                self.timers = true;
                if conn.advance_close(now) {
                    self.remove(carrier);
                }
            }
        }
    }

    /// Writes the exchange's publications, grouped by connection: several
    /// publications of one exchange to one subscriber leave in one send (one
    /// segment and one wake-up for its reader, not one each, which is most
    /// of what a burst costs), in order (the sort is stable), never copied.
    fn write_shared(&mut self, shared: &[batch::SharedWrite]) {
        let mut sends: Vec<(u32, usize)> =
            shared.iter().enumerate().flat_map(|(at, w)| w.conns.iter().map(move |&id| (id, at))).collect();
        if shared.len() > 1 {
            sends.sort_by_key(|&(id, _)| id);
        }
        let mut parts: Vec<&[u8]> = Vec::new();
        for group in sends.chunk_by(|a, b| a.0 == b.0) {
            let id = group[0].0;
            parts.clear();
            parts.extend(group.iter().map(|&(_, at)| shared[at].data));
            let Some(conn) = announced(&mut self.conns, id) else {
                if self.streams.contains_key(&id) {
                    self.write_stream(id, Cow::Owned(parts.concat()));
                }
                continue;
            };
            match conn.write_parts(&parts, &mut self.turn) {
                Ok(()) => self.timers |= conn.has_timer(),
                Err(conn::Failed) => self.fail(id),
            }
        }
    }

    /// Takes every readiness event there is now and marks the sockets.
    fn take_events(&mut self) -> std::io::Result<()> {
        let Some(poller) = self.poller.as_mut() else { return Ok(()) };
        loop {
            let more = poller.poll_now()?;
            mark_ready(poller.events(), &mut self.conns, &mut self.listeners, &mut self.to_read, &mut self.to_drain);
            if !more {
                return Ok(());
            }
        }
    }

    /// One pass over what is ready: accept, drain output, read input,
    /// and every [`HOUSEKEEPING`] tick look at the deadlines.
    fn service(&mut self, now: Instant) {
        self.accept(now);
        for id in std::mem::take(&mut self.to_drain) {
            self.drain(id, now);
        }
        self.read(now);
        if now >= self.next_housekeeping {
            self.housekeeping(now);
        }
        if self.at_cap && self.conns.len() + self.streams.len() < self.limits.max_connections {
            // Connections ended since: the backlog's turn.
            self.accept(now);
        }
        self.pump(now);
    }

    fn accept(&mut self, now: Instant) {
        for listening in self.listeners.values_mut() {
            if listening.resting_until.is_some_and(|until| now >= until) {
                listening.resting_until = None;
            }
        }
        for listening in self.listeners.values_mut() {
            while listening.may_accept(now) {
                // HTTP/2 streams are connections of the guest's too.
                if self.conns.len() + self.streams.len() >= self.limits.max_connections {
                    // New connections wait in the backlog until one closes.
                    if !self.at_cap {
                        self.at_cap = true;
                        tracing::warn!(max = self.limits.max_connections, "connection cap reached; not accepting");
                    }
                    return;
                }
                let accepted =
                    listening.accept(self.next_conn, &mut self.turn, now, &mut self.admission, &self.limits.proxy);
                let Some(mut conn) = accepted else {
                    break;
                };
                let Some(poller) = self.poller.as_ref() else { return };
                let interest = mio::Interest::READABLE | mio::Interest::WRITABLE;
                let token = mio::Token(conn.id as usize);
                if let Err(e) = poller.registry().register(conn.stream_mut(), token, interest) {
                    tracing::warn!(error = %e, "cannot watch an accepted connection");
                    if conn.counted {
                        self.admission.closed(conn.peer);
                    }
                    if conn.announced() {
                        self.turn.gone.push(conn.id);
                    }
                } else {
                    // Registered edge-triggered: whatever the peer sent before
                    // now raised no edge for us, so look once.
                    conn.readable = true;
                    conn.queued = true;
                    self.to_read.push_back(conn.id);
                    self.conns.insert(conn.id, conn);
                }
                self.next_conn += 1;
            }
        }
        self.at_cap = false;
    }

    /// Writes a connection's pending output; on progress a closing
    /// connection moves on and a backed-up one may be read again.
    fn drain(&mut self, id: u32, now: Instant) {
        let Some(conn) = self.conns.get_mut(&id) else { return };
        if conn.drain(&mut self.turn).is_err() {
            return self.fail(id);
        }
        if conn.advance_close(now) {
            return self.remove(id);
        }
        if conn.is_carrier() {
            // Its session's writes may have waited for the socket.
            self.to_pump.push(id);
        }
        enqueue_if_readable(conn, &mut self.to_read);
    }

    /// Reads the queued connections in order, each within its share, until
    /// the turn is full; connections with more go to the back.
    fn read(&mut self, now: Instant) {
        let h2 = http2::Deadlines { handshake: self.limits.handshake_timeout, idle: self.limits.http2_idle_timeout };
        for _ in 0..self.to_read.len() {
            if self.turn.room() == 0 {
                return;
            }
            let Some(id) = self.to_read.pop_front() else { return };
            let Some(conn) = self.conns.get_mut(&id) else { continue };
            conn.queued = false;
            if !conn.readable || !conn.wants_reading() {
                continue; // queued again when that changes
            }
            if !conn.wants_input() {
                // Lingering: read and discard until the peer closes.
                match conn.discard_input(&mut self.scratch) {
                    Discarded::Closed => self.remove(id),
                    Discarded::WouldBlock => {}
                    Discarded::More => {
                        conn.queued = true;
                        self.to_read.push_back(id);
                    }
                }
                continue;
            }
            if conn.awaiting_header() {
                self.timers = true;
                match conn.read_header(&mut self.turn, &mut self.admission, now) {
                    HeaderOutcome::Waiting => continue,
                    HeaderOutcome::Opened => {}
                    HeaderOutcome::Refused => {
                        self.remove(id);
                        continue;
                    }
                    HeaderOutcome::Failed => {
                        self.fail(id);
                        continue;
                    }
                }
            }
            let was_carrier = conn.is_carrier();
            let outcome = conn.read_into(&mut self.turn, &mut self.scratch, h2);
            // TLS handshake records written while reading may wait.
            self.timers |= conn.has_timer();
            if conn.is_carrier() {
                self.http2_counts.connections += u64::from(!was_carrier);
                self.to_pump.push(id);
            }
            match outcome {
                ReadOutcome::WouldBlock | ReadOutcome::Eof => {}
                ReadOutcome::Blocked => {
                    conn.queued = true;
                    self.to_read.push_back(id);
                    // A carrier's share is spent on input the turn may not
                    // show (control frames, window updates): end the turn,
                    // so the share renews, rather than wait for news.
                    self.turn.more_to_read |= conn.is_carrier();
                }
                ReadOutcome::Failed => self.fail(id),
            }
        }
    }

    /// Ends connections whose deadline passed.
    fn housekeeping(&mut self, now: Instant) {
        self.next_housekeeping = now + HOUSEKEEPING;
        if !self.timers {
            return;
        }
        let (mut expired, mut stalled, mut stalled_streams) = (Vec::new(), Vec::new(), Vec::new());
        let mut timers = false;
        let (now_ms, write_timeout_ms) = (conn::millis(now), self.limits.write_timeout.as_millis() as u64);
        for conn in self.conns.values_mut() {
            match conn.expired(now, self.limits.write_timeout) {
                Ok(true) => expired.push(conn.id),
                Ok(false) => timers |= conn.has_timer(),
                Err(conn::Failed) => stalled.push(conn.id),
            }
            if let Some(h2) = conn.h2().filter(|h2| h2.has_timer()) {
                // Streams whose peer gives no window are reset; lingering
                // ones and the session's own deadlines are looked at by
                // the pump.
                for id in h2.stalled(now_ms, write_timeout_ms) {
                    self.turn.gone.push(id);
                    stalled_streams.push(id);
                }
                self.to_pump.push(conn.id);
            }
        }
        self.timers = timers;
        stalled_streams.into_iter().for_each(|id| self.forget_stream(id));
        expired.into_iter().for_each(|id| self.remove(id));
        stalled.into_iter().for_each(|id| self.fail(id));
    }

    /// The socket failed: drop the connection and tell the guest.
    fn fail(&mut self, id: u32) {
        if let Some(mut conn) = self.conns.remove(&id) {
            if conn.counted {
                self.admission.closed(conn.peer);
            }
            if conn.announced() {
                self.turn.gone.push(id);
            }
            self.end_streams(&mut conn);
        }
    }

    /// The guest is done with the connection (or its close finished): drop it.
    fn remove(&mut self, id: u32) {
        if let Some(mut conn) = self.conns.remove(&id) {
            if conn.counted {
                self.admission.closed(conn.peer);
            }
            self.end_streams(&mut conn);
        }
    }

    /// A carrier is gone: so are the streams it still had.
    fn end_streams(&mut self, carrier: &mut Conn) {
        let Some(h2) = carrier.h2_ref() else { return };
        for id in h2.stream_ids().collect::<Vec<_>>() {
            self.turn.gone.push(id);
            if self.streams.remove(&id).is_some() {
                self.admission.closed(carrier.peer);
            }
        }
    }

    /// Waits for readiness, an interrupt, `deadline`, or the next deadline
    /// of a connection or a resting listener, whichever comes first. True
    /// when it ended on readiness (whose events it marked, unless the event
    /// buffer filled: then false, so the caller asks for the rest).
    async fn wait(&mut self, deadline: Instant) -> bool {
        let mut until = deadline;
        if self.timers {
            until = until.min(self.next_housekeeping);
        }
        for listening in self.listeners.values().filter(|l| l.accepting) {
            if let Some(rest) = listening.resting_until {
                until = until.min(rest);
            }
        }
        let notified = self.interrupt.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.interrupt.requested.load(Ordering::Acquire) {
            return false;
        }
        let sleep = tokio::time::sleep_until(until.into());
        let Some(poller) = self.poller.as_mut() else {
            tokio::select! {
                biased;
                _ = &mut notified => {}
                _ = sleep => {}
            }
            return false;
        };
        tokio::select! {
            biased;
            ready = poller.ready() => match ready {
                Ok(()) => {
                    mark_ready(poller.events(), &mut self.conns, &mut self.listeners, &mut self.to_read, &mut self.to_drain);
                    !poller.events_full()
                }
                Err(e) => {
                    tracing::error!(error = %e, "waiting for the sockets failed");
                    false
                }
            },
            _ = &mut notified => false,
            _ = sleep => false,
        }
    }
}

impl NetHost {
    /// Closes a listener (`net.unlisten`).
    pub fn unlisten(&mut self, listener: u32) {
        self.listeners.remove(&listener);
        self.go_away_all(Some(listener));
    }

    /// Tells the HTTP/2 connections (of `listener`, or all) to open no new
    /// stream (GOAWAY); their streams go on until they end.
    fn go_away_all(&mut self, listener: Option<u32>) {
        for conn in self.conns.values_mut() {
            if let Some(h2) = conn.h2().filter(|h2| listener.is_none_or(|l| h2.listener() == l)) {
                h2.go_away();
                self.to_pump.push(conn.id);
            }
        }
    }

    /// Pauses or resumes accepting on a listener (`net.set-accepting`).
    pub fn set_accepting(&mut self, listener: u32, accepting: bool) {
        if let Some(listening) = self.listeners.get_mut(&listener) {
            listening.accepting = accepting;
        }
    }

    /// Caps the bytes read for a connection per turn (0: the default share).
    pub fn set_read_limit(&mut self, conn: u32, bytes: u32) {
        if let Some(c) = announced(&mut self.conns, conn) {
            c.read_limit = bytes as usize;
        } else if let Some((carrier, h2)) = self.stream_session(conn) {
            h2.set_read_limit(conn, bytes as usize);
            self.to_pump.push(carrier);
        }
    }

    /// Sets a connection's write limit (0: the default).
    pub fn set_write_limit(&mut self, conn: u32, bytes: u32) {
        if let Some(c) = announced(&mut self.conns, conn) {
            c.set_write_limit(bytes as usize);
        } else if let Some((carrier, h2)) = self.stream_session(conn) {
            h2.set_write_limit(conn, bytes as usize);
            self.to_pump.push(carrier);
        }
    }

    /// Whether bytes written to a connection are reported.
    pub fn report_written(&mut self, conn: u32, enabled: bool) {
        if let Some(c) = announced(&mut self.conns, conn) {
            c.report_written = enabled;
        } else if let Some((_, h2)) = self.stream_session(conn) {
            h2.report_written(conn, enabled);
        }
    }
}

/// Counts the HTTP status `first_output` starts with, if it is an answer
/// (`HTTP/1.1 101 ...`); a few distinct statuses: a short list.
fn count_response(counts: &mut Vec<(u16, u64)>, first_output: &[u8]) {
    let Some(digits) = first_output.strip_prefix(b"HTTP/1.1 ").and_then(|rest| rest.get(..3)) else { return };
    let Some(status) = std::str::from_utf8(digits).ok().and_then(|d| d.parse::<u16>().ok()) else { return };
    match counts.iter_mut().find(|(s, _)| *s == status) {
        Some((_, n)) => *n += 1,
        None => counts.push((status, 1)),
    }
}

/// Connection `id` if the guest has heard of it: what the guest asks of a
/// connection whose PROXY header is still being read (an id it could only
/// guess) is ignored.
fn announced(conns: &mut FxHashMap<u32, Conn>, id: u32) -> Option<&mut Conn> {
    conns.get_mut(&id).filter(|conn| conn.announced())
}

/// Queues a readable connection to be read, unless it is queued already
/// or is not to be read now (it is queued again when that changes).
fn enqueue_if_readable(conn: &mut Conn, to_read: &mut VecDeque<u32>) {
    if conn.readable && conn.wants_reading() && !conn.queued {
        conn.queued = true;
        to_read.push_back(conn.id);
    }
}

/// Marks the sockets `events` name as ready: listeners to accept from,
/// connections to read (queued) and to drain.
fn mark_ready(
    events: &mio::Events,
    conns: &mut FxHashMap<u32, Conn>,
    listeners: &mut FxHashMap<u32, Listening>,
    to_read: &mut VecDeque<u32>,
    to_drain: &mut Vec<u32>,
) {
    for event in events {
        let token = event.token().0;
        if token & LISTENER_TOKEN != 0 {
            if let Some(listening) = listeners.get_mut(&((token & !LISTENER_TOKEN) as u32)) {
                listening.acceptable = true;
            }
            continue;
        }
        let Some(conn) = conns.get_mut(&(token as u32)) else { continue };
        if event.is_read_closed() || event.is_error() {
            conn.saw_hangup();
        }
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            conn.readable = true;
            enqueue_if_readable(conn, to_read);
        }
        if (event.is_writable() || event.is_write_closed() || event.is_error()) && conn.unwritten() > 0 {
            to_drain.push(conn.id);
        }
    }
}
