//! The echo app: Qt's echo server example (newConnection →
//! nextPendingConnection → textMessageReceived → sendTextMessage, the same
//! for binary), on the batched path: one `turn` call per event-loop turn
//! carries every echo in and every received message out. Echoes a slow
//! reader's send buffer has no room for are held here, in order, until
//! its `writable` event (the host meanwhile stops reading that peer, so
//! what is held stays within about one turn's input).
//!
//! With a topic path (`--topic-path /topics/`) it is also a relay: a
//! client of `/topics/<name>` is subscribed to `<name>`, and each message it
//! sends is published to the topic's other subscribers, one entry in the
//! turn's batch whatever their number (and, with several workers, on
//! every worker).

use super::HandOver;
use super::log_budget::{LINES_PER_WINDOW, LogBudget};
use crate::bindings::api::{self, BatchEvent, Event, MessageBatch, MessageKind, OutgoingMessage, OutgoingPublication};
use crate::metrics::{Kind, Metrics, TurnCounts};
use crate::runner::Instance;
use anyhow::{Result, bail};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use wasmtime::component::ResourceAny;
use wsbox_defaults as defaults;

/// How long one turn may wait when nothing happens.
const IDLE_TURN_MS: u32 = 1000;
/// Turn length while shutting down, so the grace period is kept.
const SHUTDOWN_TURN_MS: u32 = 50;
/// How often the connections-by-state gauge is sampled (a pass over every
/// connection: not once per turn).
const STATES_SAMPLE: Duration = Duration::from_millis(250);
/// Held echoes sent again per turn at most: when many slow readers drain at
/// once, their backlogs go out over several turns instead of one batch of
/// hundreds of MiB (which the guest would have to hold whole).
const RESEND_PER_TURN: usize = 1024 * 1024;

/// How long an instance that handed its listeners over (a reload) serves
/// its connections before it closes the rest with 1001 Going Away.
pub const DEFAULT_RELOAD_DRAIN: Duration = Duration::from_secs(300);

/// What asks a running echo app to end.
#[derive(Clone, Copy)]
pub struct Signals<'a> {
    /// Shut down: stop listening, close every connection with 1001, return
    /// once they closed or the grace period is over.
    pub stop: &'a AtomicBool,
    /// Hand over (a reload): once requested, give the listeners away and
    /// serve the open connections to their end, for at most
    /// [`EchoOptions::reload_drain`] (then 1001 and the grace period).
    pub hand_over: Option<&'a HandOver>,
}

/// How the echo server is set up.
#[derive(Clone)]
pub struct EchoOptions {
    /// The `Server:` header.
    pub name: String,
    /// Where to listen for `ws://`.
    pub listen: SocketAddr,
    /// Where to listen for `wss://` (the host's TLS identity must be set).
    pub tls_listen: Option<SocketAddr>,
    /// permessage-deflate settings.
    pub compression: api::CompressionOptions,
    /// Qt's `handshakeTimeout` in ms; negative disables it.
    pub handshake_timeout_ms: i32,
    /// On shutdown, how long open connections get to answer our 1001.
    pub shutdown_grace: Duration,
    /// After a hand-over, how long the connections kept may go on.
    pub reload_drain: Duration,
    /// Qt's `maxPendingConnections`.
    pub max_pending_connections: u32,
    /// Qt's `supportedSubprotocols`.
    pub subprotocols: Vec<String>,
    /// Origins allowed to connect; empty allows any.
    pub allowed_origins: Vec<String>,
    /// Largest frame and message accepted, and the outgoing frame size.
    pub max_frame_size: u64,
    pub max_message_size: u64,
    pub outgoing_frame_size: u64,
    /// Keepalive ping after this many ms without input (0: none), and how
    /// long it may go unanswered.
    pub keepalive_interval_ms: u32,
    pub keepalive_timeout_ms: u32,
    /// Per-connection send-buffer cap.
    pub max_send_buffer: u64,
    /// Connections still in the handshake, at most.
    pub max_handshaking_connections: u32,
    /// Serve topics at this path prefix (see the module's documentation).
    pub topic_path: Option<String>,
    /// End [`run`] with [`Ending::Recycle`] once the instance holds no
    /// connection and its linear memory grew past its size when it started
    /// listening by [`crate::sandbox::RECYCLE_GROWTH`] (a spike pins linear
    /// memory, which never shrinks; a fresh instance starts small). Off in
    /// [`EchoOptions::new`]; `wsbox serve` turns it on. Ignored under the
    /// WASI binding, whose guest holds sockets the host cannot count.
    pub recycle_when_idle: bool,
    /// Where to count messages, connections and turns (`None`: nowhere),
    /// and the worker label this instance's gauges carry.
    pub metrics: Option<Arc<Metrics>>,
    pub worker: u32,
}

/// Why [`run`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Shut down (the `stop` flag): every connection closed or the grace over.
    Stopped,
    /// Handed over ([`Signals::hand_over`]), then every connection it kept
    /// ended (or the drain time was over and they were closed with 1001).
    Drained,
    /// Idle and grown: the caller should start a fresh instance (handing it
    /// the listeners: [`crate::net::NetHost::take_listeners`]).
    Recycle,
}

impl EchoOptions {
    /// Takes the ports of `urls` (where an instance listened) as this
    /// app's: a port 0 becomes the port the kernel gave, so that the next
    /// instance, or a worker sharing it, listens on the same one.
    pub fn adopt_ports(&mut self, urls: &[String]) {
        for url in urls {
            let Some(port) = url.rsplit(':').next().and_then(|p| p.parse::<u16>().ok()) else { continue };
            if url.starts_with("wss://") {
                if let Some(tls) = self.tls_listen.as_mut() {
                    tls.set_port(port);
                }
            } else {
                self.listen.set_port(port);
            }
        }
    }

    /// Qt's defaults (and wsbox's limits) on `listen`, without TLS.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            name: "wsbox".into(),
            listen,
            tls_listen: None,
            compression: api::CompressionOptions {
                enabled: true,
                server_max_window_bits: defaults::DEFLATE_SERVER_WINDOW_BITS,
                client_max_window_bits: defaults::DEFLATE_CLIENT_WINDOW_BITS,
                server_no_context_takeover: false,
                client_no_context_takeover: false,
                min_size: defaults::DEFLATE_MIN_SIZE as u32,
            },
            handshake_timeout_ms: defaults::HANDSHAKE_TIMEOUT_MS as i32,
            shutdown_grace: Duration::from_secs(5),
            reload_drain: DEFAULT_RELOAD_DRAIN,
            max_pending_connections: defaults::MAX_PENDING_CONNECTIONS as u32,
            subprotocols: Vec::new(),
            allowed_origins: Vec::new(),
            max_frame_size: defaults::MAX_FRAME_SIZE,
            max_message_size: defaults::MAX_MESSAGE_SIZE,
            outgoing_frame_size: defaults::OUTGOING_FRAME_SIZE,
            keepalive_interval_ms: 0,
            keepalive_timeout_ms: defaults::KEEPALIVE_TIMEOUT_MS as u32,
            max_send_buffer: defaults::MAX_SEND_BUFFER,
            max_handshaking_connections: defaults::MAX_HANDSHAKING as u32,
            topic_path: None,
            recycle_when_idle: false,
            metrics: None,
            worker: 0,
        }
    }
}

/// What the app knows of one open connection (for its log lines).
struct Open {
    handle: ResourceAny,
    /// Over `wss://`.
    secure: bool,
    since: Instant,
    messages: u64,
    bytes: u64,
}

/// Listens as `options` say, calls `on_listening` with the server URL, then
/// echoes every message. When `signals.stop` is set (and the instance
/// interrupted), it stops listening, closes every connection with 1001 Going
/// Away, waits up to the grace period for their close frames, and returns.
/// When a hand-over is requested, it gives its listeners away and returns
/// once the connections it holds have ended.
pub async fn run(
    instance: &mut Instance,
    options: &EchoOptions,
    signals: Signals<'_>,
    on_listening: impl FnMut(&str),
) -> Result<Ending> {
    crate::runner::drive(instance.binding, serve(instance, options, signals, on_listening)).await
}

async fn serve(
    instance: &mut Instance,
    options: &EchoOptions,
    signals: Signals<'_>,
    mut on_listening: impl FnMut(&str),
) -> Result<Ending> {
    // Only where the host holds the sockets can it tell that none is left:
    // a WASI-binding guest holds its own, which recycling would drop.
    let may_recycle = options.recycle_when_idle && instance.binding == crate::runner::Binding::HostFed;
    let Instance { store, api, .. } = instance;
    let mut servers: HashMap<u32, ResourceAny> = HashMap::new();
    let mut wanted = vec![(options.listen, api::SecureMode::NonSecureMode)];
    wanted.extend(options.tls_listen.map(|addr| (addr, api::SecureMode::SecureMode)));
    let mut urls = Vec::new();
    let mut secure_servers = Vec::new();
    for (listen, mode) in wanted {
        let server = api.server().call_constructor(&mut *store, &options.name, mode).await?;
        api.server().call_set_compression(&mut *store, server, options.compression).await?;
        api.server().call_set_handshake_timeout(&mut *store, server, options.handshake_timeout_ms).await?;
        let s = api.server();
        s.call_set_max_pending_connections(&mut *store, server, options.max_pending_connections).await?;
        s.call_set_supported_subprotocols(&mut *store, server, &options.subprotocols).await?;
        s.call_set_allowed_origins(&mut *store, server, &options.allowed_origins).await?;
        s.call_set_max_allowed_incoming_frame_size(&mut *store, server, options.max_frame_size).await?;
        s.call_set_max_allowed_incoming_message_size(&mut *store, server, options.max_message_size).await?;
        s.call_set_keepalive(&mut *store, server, options.keepalive_interval_ms, options.keepalive_timeout_ms).await?;
        s.call_set_max_send_buffer_size(&mut *store, server, options.max_send_buffer).await?;
        s.call_set_max_handshaking_connections(&mut *store, server, options.max_handshaking_connections).await?;
        if !s.call_set_outgoing_frame_size(&mut *store, server, options.outgoing_frame_size).await? {
            bail!("invalid outgoing frame size {}", options.outgoing_frame_size);
        }
        if !api.server().call_listen(&mut *store, server, &listen.ip().to_string(), listen.port()).await? {
            let reason = api.server().call_error_string(&mut *store, server).await?;
            bail!("cannot listen on {listen}: {reason}");
        }
        urls.push(api.server().call_server_url(&mut *store, server).await?);
        let id = api.server().call_id(&mut *store, server).await?;
        if mode == api::SecureMode::SecureMode {
            secure_servers.push(id);
        }
        servers.insert(id, server);
    }
    // Every server shares the instance's one event loop; any of them turns it.
    let server = *servers.values().next().expect("at least one server");
    for url in &urls {
        on_listening(url);
    }
    let memory_at_start = store.data().guest_memory_bytes();

    let debug = tracing::enabled!(tracing::Level::DEBUG);
    let metrics = options.metrics.as_deref();
    let mut sockets: HashMap<u32, Open> = HashMap::new();
    // Echoes waiting for their socket's `writable`, oldest first.
    let mut held: HashMap<u32, VecDeque<(MessageKind, Vec<u8>)>> = HashMap::new();
    // Sockets that said `writable` and still hold echoes, in that order.
    let mut resend: VecDeque<u32> = VecDeque::new();
    let mut out = MessageBatch { messages: Vec::new(), publications: Vec::new(), data: Vec::new() };
    // Relay sockets and their topic; what they sent this turn, for the topic.
    let mut relays: HashMap<u32, String> = HashMap::new();
    let mut published = Vec::new();
    let mut shutting_down: Option<Instant> = None;
    // Since when this instance no longer listens (it handed over).
    let mut handed_over: Option<Instant> = None;
    let mut next_states_sample = Instant::now();
    // Lines peers cause, each kind within its budget (a scanner must not flood the log).
    let (mut tls_failures, mut refusals) = (LogBudget::default(), LogBudget::default());
    loop {
        // Short turns while shutting down or draining: the grace and the
        // drain time are kept, and a draining instance sees a shutdown soon
        // (nothing wakes it: its worker's interrupter is the new instance's).
        let timeout = if shutting_down.is_some() || handed_over.is_some() { SHUTDOWN_TURN_MS } else { IDLE_TURN_MS };
        let turn_started = metrics.map(|_| Instant::now());
        let batch = api.server().call_turn(&mut *store, server, timeout, &out).await?;
        let turn_seconds = turn_started.map(|started| started.elapsed().as_secs_f64());
        let mut counts = TurnCounts::default();
        if let Some(m) = metrics {
            count_sent(&out, &batch.buffer_full, &mut counts);
            m.send_buffer_refused(batch.buffer_full.len());
            // The worker's gauges follow its newest instance.
            if handed_over.is_none() {
                m.worker_state(options.worker, store.data().net.connection_count(), store.data().guest_memory_bytes());
                let now = turn_started.unwrap_or_else(Instant::now);
                if now >= next_states_sample {
                    next_states_sample = now + STATES_SAMPLE;
                    m.connection_states(options.worker, store.data().net.connection_states());
                }
            }
            m.topics(store.data_mut().net.take_topic_counts());
            m.http_responses(&store.data_mut().net.take_http_responses());
            m.http2(store.data_mut().net.take_http2_counts());
        }
        // Refused echoes are older than anything still held for their socket:
        // they go back in front, in order, and the socket waits for its next
        // `writable` before anything is sent to it again.
        let mut refused: Vec<(u32, MessageKind, Vec<u8>)> = Vec::new();
        for &i in &batch.buffer_full {
            let i = i as usize;
            let start = if i == 0 { 0 } else { out.messages[i - 1].end as usize };
            let OutgoingMessage { socket, kind, end } = out.messages[i];
            refused.push((socket, kind, out.data[start..end as usize].to_vec()));
        }
        for (socket, kind, message) in refused.into_iter().rev() {
            held.entry(socket).or_default().push_front((kind, message));
            resend.retain(|&s| s != socket);
        }
        out.messages.clear();
        out.publications.clear();
        out.data.clear();
        // When the messages fill the payload end to end (the usual case), the
        // payload itself is sent back: the echo costs no copy here.
        // (Not with a topic path: a relayed message is not echoed, so the
        // payload is not the echoes' end to end.)
        let reuse = held.is_empty()
            && options.topic_path.is_none()
            && payload_is_messages_only(&batch.events, batch.payload.len());
        for event in batch.events {
            match event {
                BatchEvent::TextMessage(span) | BatchEvent::BinaryMessage(span) => {
                    let kind = if matches!(event, BatchEvent::TextMessage(_)) {
                        MessageKind::Text
                    } else {
                        MessageKind::Binary
                    };
                    if let Some(open) = sockets.get_mut(&span.socket) {
                        open.messages += 1;
                        open.bytes += u64::from(span.end - span.start);
                    }
                    counts.receive(
                        if kind == MessageKind::Text { Kind::Text } else { Kind::Binary },
                        (span.end - span.start) as usize,
                    );
                    if let Some(topic) = relays.get(&span.socket) {
                        published.push((topic.clone(), kind, span));
                        continue;
                    }
                    if let Some(queue) = held.get_mut(&span.socket) {
                        // Behind echoes still waiting for room: keep the order.
                        queue.push_back((kind, batch.payload[span.start as usize..span.end as usize].to_vec()));
                        continue;
                    }
                    let end = if reuse {
                        span.end
                    } else {
                        out.data.extend_from_slice(&batch.payload[span.start as usize..span.end as usize]);
                        out.data.len() as u32
                    };
                    out.messages.push(OutgoingMessage { socket: span.socket, kind, end });
                }
                BatchEvent::Other(Event::NewConnection(server_id)) => {
                    let Some(&owner) = servers.get(&server_id) else { continue };
                    while let Some(socket) = api.server().call_next_pending_connection(&mut *store, owner).await? {
                        let ws = api.websocket();
                        let id = ws.call_id(&mut *store, socket).await?;
                        if debug {
                            let peer = ws.call_peer_address(&mut *store, socket).await?;
                            let port = ws.call_peer_port(&mut *store, socket).await?;
                            let path = ws.call_resource_name(&mut *store, socket).await?;
                            let subprotocol = ws.call_subprotocol(&mut *store, socket).await?;
                            let extensions = ws.call_extensions(&mut *store, socket).await?;
                            let tls = ws.call_ssl_configuration(&mut *store, socket).await?.map(|t| {
                                format!(
                                    "{} {} sni={} alpn={} peer-certificates={}",
                                    t.protocol,
                                    t.cipher,
                                    t.server_name,
                                    t.alpn,
                                    t.peer_certificates.len()
                                )
                            });
                            tracing::debug!(socket = id, peer = %format!("{peer}:{port}"), path, subprotocol, extensions, tls = tls.unwrap_or_default(), "connection opened");
                        }
                        let secure = secure_servers.contains(&server_id);
                        if let Some(m) = metrics {
                            m.websocket_opened(secure, !ws.call_extensions(&mut *store, socket).await?.is_empty());
                        }
                        sockets
                            .insert(id, Open { handle: socket, secure, since: Instant::now(), messages: 0, bytes: 0 });
                        if let Some(topic) = relay_topic(options, &ws.call_resource_name(&mut *store, socket).await?) {
                            if ws.call_subscribe(&mut *store, socket, &topic).await? {
                                relays.insert(id, topic);
                            } else {
                                let reason = format!("a topic name is 1 to {} bytes", defaults::MAX_TOPIC_LEN);
                                ws.call_close(&mut *store, socket, 1008, &reason).await?;
                            }
                        }
                        if shutting_down.is_some() {
                            ws.call_close(&mut *store, socket, 1001, "Server shutting down").await?;
                        }
                    }
                }
                BatchEvent::Other(Event::Writable(id)) if held.contains_key(&id) && !resend.contains(&id) => {
                    resend.push_back(id);
                }
                BatchEvent::Other(Event::Disconnected(id)) => {
                    held.remove(&id);
                    relays.remove(&id);
                    if let Some(open) = sockets.remove(&id) {
                        // One crossing for the close code, whoever wants it.
                        let code = match metrics.is_some() || debug {
                            true => Some(api.websocket().call_close_code(&mut *store, open.handle).await?),
                            false => None,
                        };
                        if let (Some(m), Some(code)) = (metrics, code) {
                            m.websocket_closed(open.secure, code);
                        }
                        if let (true, Some(code)) = (debug, code) {
                            let ws = api.websocket();
                            let reason = ws.call_close_reason(&mut *store, open.handle).await?;
                            tracing::debug!(
                                socket = id,
                                code,
                                reason,
                                messages = open.messages,
                                bytes = open.bytes,
                                duration_ms = open.since.elapsed().as_millis() as u64,
                                "connection closed"
                            );
                        }
                        open.handle.resource_drop_async(&mut *store).await?;
                    }
                }
                BatchEvent::Other(Event::SslErrors(e) | Event::PeerVerifyError(e)) => {
                    if let Some(m) = metrics {
                        m.tls_failure();
                    }
                    if tls_failures.admit(Instant::now()) {
                        tracing::warn!(socket = e.socket, peer = %format!("{}:{}", e.peer_address, e.peer_port), "TLS handshake failed: {}", e.error_string);
                    }
                }
                BatchEvent::Other(Event::ServerError(e)) => {
                    if let Some(m) = metrics {
                        m.handshake_refused(e.code);
                    }
                    if refusals.admit(Instant::now()) {
                        tracing::warn!(code = e.code, peer = %format!("{}:{}", e.peer_address, e.peer_port), "handshake refused: {}", e.error_string);
                    }
                }
                _ => {}
            }
        }
        if let (Some(m), Some(seconds)) = (metrics, turn_seconds) {
            m.turn(&counts, seconds);
        }
        // The clock is read only when lines were suppressed.
        let now = (tls_failures.has_suppressed() || refusals.has_suppressed()).then(Instant::now);
        if let Some(n) = now.and_then(|now| tls_failures.take_suppressed(now)) {
            tracing::warn!(
                suppressed = n,
                "{n} more failed TLS handshakes not logged (at most {LINES_PER_WINDOW} a second are)"
            );
        }
        if let Some(n) = now.and_then(|now| refusals.take_suppressed(now)) {
            tracing::warn!(
                suppressed = n,
                "{n} more refused handshakes not logged (at most {LINES_PER_WINDOW} a second are)"
            );
        }
        if reuse {
            // Reuse needs nothing held, and nothing became held since: there
            // is nothing to resend either.
            out.data = batch.payload;
        } else {
            resend_held(&mut held, &mut resend, &mut out);
            // Publications follow every message in the batch's data, copied
            // once from the payload (never reused when there can be any).
            for (topic, kind, span) in published.drain(..) {
                out.data.extend_from_slice(&batch.payload[span.start as usize..span.end as usize]);
                let end = out.data.len() as u32;
                out.publications.push(OutgoingPublication { topic, kind, end, except: Some(span.socket) });
            }
        }
        let drain_over = handed_over.is_some_and(|since| since.elapsed() >= options.reload_drain);
        if (signals.stop.load(Ordering::Acquire) || drain_over) && shutting_down.is_none() {
            shutting_down = Some(Instant::now());
            let reason = if drain_over {
                tracing::info!(connections = sockets.len(), "reload drain time over: closing the rest with 1001");
                "Server reloaded"
            } else {
                tracing::info!(
                    connections = sockets.len(),
                    "shutting down: no new connections, closing open ones with 1001"
                );
                "Server shutting down"
            };
            for s in servers.values() {
                api.server().call_close(&mut *store, *s).await?;
            }
            for open in sockets.values() {
                api.websocket().call_close(&mut *store, open.handle, 1001, reason).await?;
            }
        }
        // (After the stop: an instance shutting down hands nothing over.)
        if handed_over.is_none()
            && shutting_down.is_none()
            && let Some(hand_over) = signals.hand_over.filter(|h| h.is_requested())
        {
            handed_over = Some(Instant::now());
            hand_over.give(store.data_mut().net.take_listeners());
            tracing::info!(
                connections = sockets.len(),
                drain_ms = options.reload_drain.as_millis() as u64,
                "handed the listeners over; serving the open connections to their end"
            );
        }
        if handed_over.is_some()
            && shutting_down.is_none()
            && sockets.is_empty()
            && store.data().net.connection_count() == 0
        {
            break;
        }
        if may_recycle
            && handed_over.is_none()
            && shutting_down.is_none()
            && store.data().net.connection_count() == 0
            && store.data().guest_memory_bytes() > memory_at_start + crate::sandbox::RECYCLE_GROWTH
        {
            tracing::info!(
                guest_memory_mib = store.data().guest_memory_bytes() >> 20,
                "no connection left and the guest's memory grew: recycling the instance"
            );
            return Ok(Ending::Recycle);
        }
        if let Some(since) = shutting_down {
            if sockets.is_empty() {
                tracing::info!("all connections closed");
                break;
            }
            if since.elapsed() >= options.shutdown_grace {
                tracing::warn!(connections = sockets.len(), "shutdown grace period over; dropping the rest");
                break;
            }
        }
    }
    for (_, open) in sockets.drain() {
        open.handle.resource_drop_async(&mut *store).await?;
    }
    // One last turn writes what the drops queued.
    api.server().call_turn(&mut *store, server, 0, &out).await?;
    for (_, s) in servers.drain() {
        s.resource_drop_async(&mut *store).await?;
    }
    Ok(if handed_over.is_some() { Ending::Drained } else { Ending::Stopped })
}

/// The topic a request for `path` relays, when topics are on and the path
/// is under their prefix.
fn relay_topic(options: &EchoOptions, path: &str) -> Option<String> {
    let prefix = options.topic_path.as_deref()?;
    path.strip_prefix(prefix).map(str::to_string)
}

/// Moves held echoes of sockets that became writable into `out`, oldest
/// first, up to [`RESEND_PER_TURN`] bytes; the rest waits for the next turn
/// (still ahead of anything newer for the same socket).
fn resend_held(
    held: &mut HashMap<u32, VecDeque<(MessageKind, Vec<u8>)>>,
    resend: &mut VecDeque<u32>,
    out: &mut MessageBatch,
) {
    let mut budget = RESEND_PER_TURN;
    while budget > 0
        && let Some(id) = resend.pop_front()
    {
        let Some(queue) = held.get_mut(&id) else { continue };
        while budget > 0
            && let Some((kind, message)) = queue.pop_front()
        {
            budget = budget.saturating_sub(message.len().max(1));
            out.data.extend_from_slice(&message);
            out.messages.push(OutgoingMessage { socket: id, kind, end: out.data.len() as u32 });
        }
        if queue.is_empty() {
            held.remove(&id);
        } else {
            resend.push_front(id);
        }
    }
}

/// Counts the messages of `out` the guest took: all but those it refused
/// for a full send buffer (`refused` holds their indices).
fn count_sent(out: &MessageBatch, refused: &[u32], counts: &mut TurnCounts) {
    let mut start = 0;
    for (i, message) in out.messages.iter().enumerate() {
        let len = message.end as usize - start;
        start = message.end as usize;
        if !refused.contains(&(i as u32)) {
            counts.send(if message.kind == MessageKind::Text { Kind::Text } else { Kind::Binary }, len);
        }
    }
}

/// Whether the payload holds only whole messages, back to back in event order.
fn payload_is_messages_only(events: &[BatchEvent], len: usize) -> bool {
    let mut at = 0;
    for event in events {
        match event {
            BatchEvent::TextMessage(span) | BatchEvent::BinaryMessage(span) if span.start as usize == at => {
                at = span.end as usize;
            }
            BatchEvent::Other(_) => {}
            _ => return false,
        }
    }
    at == len
}
