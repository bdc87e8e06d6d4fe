//! What an operator scrapes: counters and gauges in the OpenMetrics text
//! format (prometheus-client), served by [`endpoint`] when
//! `--metrics-listen` is given. Every series is documented in
//! `docs/operations.md`.
//!
//! Cheap on the hot path: the echo app counts a turn's messages and bytes in
//! locals ([`TurnCounts`]) and adds them once per turn; the rest is per
//! connection or per event. Workers share one [`Metrics`]; per-worker
//! gauges carry a `worker` label.

pub mod endpoint;

use crate::topics::nats::BrokerMetrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabels {
    worker: u32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    worker: u32,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransportLabels {
    transport: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MessageLabels {
    direction: &'static str,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CompressionLabels {
    compression: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CauseLabels {
    cause: &'static str,
}

/// Why an instance was replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartCause {
    /// The guest trapped (a panic, an allocation past the memory cap).
    Trap,
    /// The watchdog stopped it.
    Watchdog,
    /// It held no connection and its memory had grown: replaced by a fresh one.
    Recycle,
    /// A reload: an instance of the new app took over its listeners.
    Reload,
}

/// The kind of a message, for its label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A text message.
    Text,
    /// A binary message.
    Binary,
}

/// One turn's messages and bytes, added to the shared counters at once.
#[derive(Debug, Default)]
pub struct TurnCounts {
    /// Messages and bytes received, text then binary.
    pub received: [(u64, u64); 2],
    /// Messages and bytes sent, text then binary.
    pub sent: [(u64, u64); 2],
}

impl TurnCounts {
    /// Counts a message of `len` bytes received.
    pub fn receive(&mut self, kind: Kind, len: usize) {
        let slot = &mut self.received[kind as usize];
        slot.0 += 1;
        slot.1 += len as u64;
    }

    /// Counts a message of `len` bytes sent.
    pub fn send(&mut self, kind: Kind, len: usize) {
        let slot = &mut self.sent[kind as usize];
        slot.0 += 1;
        slot.1 += len as u64;
    }
}

/// Every series wsbox exports, and the registry that encodes them.
pub struct Metrics {
    registry: Registry,
    connections: Family<WorkerLabels, Gauge>,
    connections_by_state: Family<StateLabels, Gauge>,
    websockets_open: Family<TransportLabels, Gauge>,
    websockets_opened: Family<CompressionLabels, Counter>,
    handshakes_refused: Family<CodeLabels, Counter>,
    http_responses: Family<StatusLabels, Counter>,
    http2_connections: Counter,
    http2_websockets: Counter,
    broker: BrokerMetrics,
    tls_failures: Counter,
    messages: Family<MessageLabels, Counter>,
    message_bytes: Family<MessageLabels, Counter>,
    closes: Family<CodeLabels, Counter>,
    send_buffer_refusals: Counter,
    guest_memory: Family<WorkerLabels, Gauge<u64, AtomicU64>>,
    guest_memory_cap: Gauge<u64, AtomicU64>,
    restarts: Family<CauseLabels, Counter>,
    turn_seconds: Histogram,
    publications: Counter,
    deliveries: Counter,
    deliveries_skipped: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics { .. }")
    }
}

impl Metrics {
    /// Every series at zero; `memory_cap` is the guest's cap in bytes.
    pub fn new(memory_cap: u64) -> Self {
        let mut registry = Registry::with_prefix("wsbox");
        let m = Metrics {
            registry: Registry::default(),
            connections: Family::default(),
            connections_by_state: Family::default(),
            websockets_open: Family::default(),
            websockets_opened: Family::default(),
            handshakes_refused: Family::default(),
            http_responses: Family::default(),
            http2_connections: Counter::default(),
            http2_websockets: Counter::default(),
            broker: BrokerMetrics::default(),
            tls_failures: Counter::default(),
            messages: Family::default(),
            message_bytes: Family::default(),
            closes: Family::default(),
            send_buffer_refusals: Counter::default(),
            guest_memory: Family::default(),
            guest_memory_cap: Gauge::default(),
            restarts: Family::default(),
            // 10 µs to ~1.3 s.
            turn_seconds: Histogram::new(exponential_buckets(1e-5, 4.0, 9)),
            publications: Counter::default(),
            deliveries: Counter::default(),
            deliveries_skipped: Counter::default(),
        };
        m.guest_memory_cap.set(memory_cap);
        let r = &mut registry;
        r.register(
            "connections",
            "TCP connections the host holds (handshaking, WebSocket or closing), per worker",
            m.connections.clone(),
        );
        r.register(
            "connections_by_state",
            "TCP connections by state (handshake, websocket, closing), per worker, sampled every 250 ms",
            m.connections_by_state.clone(),
        );
        r.register("websockets_open", "Open WebSockets, by transport (ws, wss)", m.websockets_open.clone());
        r.register(
            "websockets_opened",
            "WebSockets opened, by whether permessage-deflate was negotiated",
            m.websockets_opened.clone(),
        );
        r.register(
            "handshakes_refused",
            "Upgrade requests answered with an HTTP error, by the close code the app is told (Qt's serverError)",
            m.handshakes_refused.clone(),
        );
        r.register(
            "http_responses",
            "Answers to the HTTP requests on the listeners, by status (101: upgraded; 200: the page or a health check; 503: a health check or refused; others: refused)",
            m.http_responses.clone(),
        );
        r.register(
            "http2_connections",
            "TLS connections whose ALPN chose HTTP/2 (their WebSockets are streams)",
            m.http2_connections.clone(),
        );
        r.register(
            "http2_websockets",
            "WebSockets opened as HTTP/2 streams (RFC 8441 extended CONNECT)",
            m.http2_websockets.clone(),
        );
        r.register("tls_handshake_failures", "TLS handshakes that failed", m.tls_failures.clone());
        r.register(
            "nats_connected",
            "1 while the NATS connection (--nats) is up, 0 while it is lost",
            m.broker.connected.clone(),
        );
        r.register(
            "nats_publications_dropped",
            "Publications that did not reach the NATS broker (connection lost, or too far behind)",
            m.broker.dropped.clone(),
        );
        r.register(
            "messages",
            "WebSocket messages, by direction (in, out) and kind (text, binary)",
            m.messages.clone(),
        );
        r.register(
            "message_bytes",
            "Payload bytes of WebSocket messages, by direction and kind",
            m.message_bytes.clone(),
        );
        r.register("closes", "WebSockets ended, by close code (1006: no closing handshake)", m.closes.clone());
        r.register(
            "send_buffer_refusals",
            "Messages refused because the socket's send buffer was full",
            m.send_buffer_refusals.clone(),
        );
        r.register("guest_memory_bytes", "Linear memory the guest holds, per worker", m.guest_memory.clone());
        r.register("guest_memory_cap_bytes", "The guest's memory cap", m.guest_memory_cap.clone());
        r.register("instance_restarts", "Instances replaced, by cause (trap, watchdog, recycle)", m.restarts.clone());
        r.register("turn_seconds", "Time of one turn of the guest (one exchange of batches)", m.turn_seconds.clone());
        r.register(
            "topic_publications",
            "Publications handled by an instance: made there, or arrived from another worker",
            m.publications.clone(),
        );
        r.register("topic_deliveries", "Subscribers publications were queued for", m.deliveries.clone());
        r.register(
            "topic_deliveries_skipped",
            "Subscribers a publication skipped because their send buffer was full",
            m.deliveries_skipped.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The OpenMetrics text exposition of every series.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("writing to a String");
        text
    }

    /// Adds a turn's counts and its duration.
    pub fn turn(&self, counts: &TurnCounts, seconds: f64) {
        for (direction, pairs) in [("in", &counts.received), ("out", &counts.sent)] {
            for (kind, &(messages, bytes)) in ["text", "binary"].into_iter().zip(pairs.iter()) {
                if messages > 0 {
                    let labels = MessageLabels { direction, kind };
                    self.messages.get_or_create(&labels).inc_by(messages);
                    self.message_bytes.get_or_create(&labels).inc_by(bytes);
                }
            }
        }
        self.turn_seconds.observe(seconds);
    }

    /// Worker `worker`'s instance's connections, by state.
    pub fn connection_states(&self, worker: u32, states: crate::net::ConnectionStates) {
        for (state, count) in
            [("handshake", states.handshake), ("websocket", states.websocket), ("closing", states.closing)]
        {
            self.connections_by_state.get_or_create(&StateLabels { worker, state }).set(count as i64);
        }
    }

    /// Worker `worker`'s instance holds `connections` TCP connections and
    /// `memory` bytes of linear memory.
    pub fn worker_state(&self, worker: u32, connections: usize, memory: usize) {
        let labels = WorkerLabels { worker };
        self.connections.get_or_create(&labels).set(connections as i64);
        self.guest_memory.get_or_create(&labels).set(memory as u64);
    }

    /// A WebSocket opened over `wss` or not, with compression or not.
    pub fn websocket_opened(&self, secure: bool, compressed: bool) {
        self.websockets_open.get_or_create(&transport(secure)).inc();
        let compression = if compressed { "permessage-deflate" } else { "none" };
        self.websockets_opened.get_or_create(&CompressionLabels { compression }).inc();
    }

    /// A WebSocket ended with close code `code`.
    pub fn websocket_closed(&self, secure: bool, code: u16) {
        self.websockets_open.get_or_create(&transport(secure)).dec();
        self.closes.get_or_create(&CodeLabels { code }).inc();
    }

    /// An upgrade request refused; `code` is the close code the app is told.
    pub fn handshake_refused(&self, code: u16) {
        self.handshakes_refused.get_or_create(&CodeLabels { code }).inc();
    }

    /// A TLS handshake failed.
    pub fn tls_failure(&self) {
        self.tls_failures.inc();
    }

    /// `n` messages refused for a full send buffer.
    pub fn send_buffer_refused(&self, n: usize) {
        self.send_buffer_refusals.inc_by(n as u64);
    }

    /// The series the NATS bridge keeps up to date.
    pub fn broker(&self) -> BrokerMetrics {
        self.broker.clone()
    }

    /// Answers to HTTP requests since the last call, by status.
    pub fn http_responses(&self, counts: &[(u16, u64)]) {
        for &(status, n) in counts {
            self.http_responses.get_or_create(&StatusLabels { status }).inc_by(n);
        }
    }

    /// HTTP/2 use an instance counted since its last report.
    pub fn http2(&self, counts: crate::net::Http2Counts) {
        self.http2_connections.inc_by(counts.connections);
        self.http2_websockets.inc_by(counts.websockets);
    }

    /// Publications an instance counted since its last report.
    pub fn topics(&self, counts: crate::net::batch::TopicCounts) {
        self.publications.inc_by(u64::from(counts.publications));
        self.deliveries.inc_by(counts.delivered);
        self.deliveries_skipped.inc_by(counts.skipped);
    }

    /// An instance was replaced.
    pub fn restart(&self, cause: RestartCause) {
        let cause = match cause {
            RestartCause::Trap => "trap",
            RestartCause::Watchdog => "watchdog",
            RestartCause::Recycle => "recycle",
            RestartCause::Reload => "reload",
        };
        self.restarts.get_or_create(&CauseLabels { cause }).inc();
    }
}

fn transport(secure: bool) -> TransportLabels {
    TransportLabels { transport: if secure { "wss" } else { "ws" } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_turns_counts_and_the_events_show_in_the_exposition() {
        let metrics = Metrics::new(1 << 30);
        let mut turn = TurnCounts::default();
        turn.receive(Kind::Text, 5);
        turn.receive(Kind::Text, 7);
        turn.send(Kind::Binary, 100);
        metrics.turn(&turn, 0.000_2);
        metrics.websocket_opened(true, true);
        metrics.websocket_opened(false, false);
        metrics.websocket_closed(false, 1000);
        metrics.handshake_refused(1002);
        metrics.restart(RestartCause::Watchdog);
        let text = metrics.encode();
        for line in [
            r#"wsbox_messages_total{direction="in",kind="text"} 2"#,
            r#"wsbox_message_bytes_total{direction="in",kind="text"} 12"#,
            r#"wsbox_messages_total{direction="out",kind="binary"} 1"#,
            r#"wsbox_websockets_open{transport="wss"} 1"#,
            r#"wsbox_websockets_open{transport="ws"} 0"#,
            r#"wsbox_websockets_opened_total{compression="permessage-deflate"} 1"#,
            r#"wsbox_closes_total{code="1000"} 1"#,
            r#"wsbox_handshakes_refused_total{code="1002"} 1"#,
            r#"wsbox_instance_restarts_total{cause="watchdog"} 1"#,
            "wsbox_guest_memory_cap_bytes 1073741824",
            "wsbox_turn_seconds_count 1",
            "# EOF",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }
}
