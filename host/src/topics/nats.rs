//! The bridge to a NATS server (`--nats URL`): topics across processes and
//! machines through an existing broker, never a cluster protocol of our own.
//!
//! One connection per process, on a thread of its own. Each publication
//! made in the process goes to NATS once, on the subject
//! `<prefix>.<topic>`; the process subscribes to a topic's subject while
//! any of its workers has a subscriber to the topic, so a message crosses
//! the broker once per process that wants it, never once per subscriber.
//! The connection is made with `no_echo`: the process never gets its own
//! publications back (its workers already had them from the bus).
//!
//! At most once: while the connection is lost, publications reach this
//! process's subscribers only (the others' are dropped, counted and
//! logged); the client reconnects with backoff and resubscribes, and every
//! app is told both ways (`broker-state-changed`).

use super::{BrokerCommand, Publication, TopicBus};
use anyhow::{Context, Result};
use async_nats::connection::State;
use async_nats::{ConnectOptions, Event, HeaderMap, ServerAddr};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::StreamExt;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// The subject prefix unless `--nats-subject-prefix` says otherwise.
pub const DEFAULT_SUBJECT_PREFIX: &str = "wsbox.topics";

/// The header that says whether a message is text or binary. A message
/// without it (published by some other NATS client) is text when it is
/// UTF-8, binary otherwise.
const KIND_HEADER: &str = "Wsbox-Kind";

/// Reconnection waits: 100 ms, doubling to this.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(5);

/// Publications dropped (broker lost or too far behind) since the last log line.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// What the bridge shows the metrics (see `crate::metrics`): whether the
/// broker connection is up, and the publications that did not reach it.
#[derive(Clone, Debug, Default)]
pub struct BrokerMetrics {
    pub connected: Gauge,
    pub dropped: Counter,
}

/// Where to connect and the subjects' prefix.
#[derive(Clone, Debug)]
pub struct NatsOptions {
    pub url: String,
    pub subject_prefix: String,
}

impl NatsOptions {
    /// Checks the URL and the prefix before anything starts.
    pub fn validate(&self) -> Result<()> {
        self.url.parse::<ServerAddr>().with_context(|| format!("--nats: '{}' is not a NATS URL", self.url))?;
        let valid = !self.subject_prefix.is_empty()
            && self.subject_prefix.split('.').all(|t| !t.is_empty() && t.chars().all(plain_subject_char));
        anyhow::ensure!(
            valid,
            "--nats-subject-prefix: '{}' is not a NATS subject of plain tokens (letters, digits, '-', '_', separated by '.')",
            self.subject_prefix
        );
        Ok(())
    }
}

/// Starts the bridge for `bus` on a thread of its own; connecting (and
/// reconnecting) goes on in the background. `metrics`, when on, follow the
/// connection's state and count what did not reach the broker.
pub fn start(bus: &TopicBus, options: NatsOptions, metrics: Option<BrokerMetrics>) -> Result<()> {
    options.validate()?;
    let (commands, queued) = bus.attach_broker();
    let bus = bus.clone();
    std::thread::Builder::new().name("wsbox-nats".into()).spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime,
            Err(e) => return tracing::error!("NATS: cannot start the bridge's runtime: {e}"),
        };
        runtime.block_on(run(bus, options, commands, queued, metrics));
    })?;
    Ok(())
}

async fn run(
    bus: TopicBus,
    options: NatsOptions,
    mut commands: tokio::sync::mpsc::UnboundedReceiver<BrokerCommand>,
    queued: Arc<AtomicUsize>,
    metrics: Option<BrokerMetrics>,
) {
    tracing::info!(url = %options.url, subject_prefix = %options.subject_prefix, "NATS: connecting");
    let events = bus.clone();
    let watched = metrics.clone();
    let connecting = ConnectOptions::new()
        .name("wsbox")
        .no_echo()
        .retry_on_initial_connect()
        .max_reconnects(None)
        .reconnect_delay_callback(reconnect_delay)
        .event_callback(move |event| {
            let (bus, metrics) = (events.clone(), watched.clone());
            async move { on_event(&bus, metrics.as_ref(), event) }
        })
        .connect(options.url.as_str())
        .await;
    let client = match connecting {
        Ok(client) => client,
        Err(e) => return tracing::error!("NATS: cannot connect to {}: {e}; topics stay in this process", options.url),
    };
    let mut subscriptions: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    while let Some(command) = commands.recv().await {
        match command {
            BrokerCommand::Publish(publication) => {
                queued.fetch_sub(publication.data.len(), Ordering::AcqRel);
                // While the connection is lost the client would queue (then
                // block): publications are at most once, so they are dropped.
                if client.connection_state() != State::Connected {
                    count_dropped(1);
                } else {
                    let subject = subject(&options.subject_prefix, &publication.topic);
                    let mut headers = HeaderMap::new();
                    headers.insert(KIND_HEADER, if publication.binary { "binary" } else { "text" });
                    if let Err(e) = client.publish_with_headers(subject, headers, publication.data.into()).await {
                        tracing::debug!("NATS: publish failed: {e}");
                        count_dropped(1);
                    }
                }
            }
            BrokerCommand::Subscribe(topic) => match client.subscribe(subject(&options.subject_prefix, &topic)).await {
                Ok(mut subscriber) => {
                    let (bus, prefix) = (bus.clone(), options.subject_prefix.clone());
                    let forward = tokio::spawn(async move {
                        while let Some(message) = subscriber.next().await {
                            match publication(&prefix, &message.subject, message.headers.as_ref(), &message.payload) {
                                Some(publication) => bus.from_broker(publication),
                                None => {
                                    tracing::debug!(subject = %message.subject, "NATS: a message that is no topic's; ignored")
                                }
                            }
                        }
                    });
                    if let Some(old) = subscriptions.insert(topic, forward) {
                        old.abort();
                    }
                }
                Err(e) => tracing::warn!(topic, "NATS: cannot subscribe: {e}"),
            },
            BrokerCommand::Unsubscribe(topic) => {
                // Dropping the subscriber (with its task) unsubscribes.
                if let Some(forward) = subscriptions.remove(&topic) {
                    forward.abort();
                }
            }
        }
        log_dropped(metrics.as_ref());
    }
}

fn on_event(bus: &TopicBus, metrics: Option<&BrokerMetrics>, event: Event) {
    if let (Some(m), Event::Connected | Event::Disconnected) = (metrics, &event) {
        m.connected.set(i64::from(matches!(event, Event::Connected)));
    }
    match event {
        Event::Connected => {
            tracing::info!("NATS: connected");
            bus.broker_state(true);
        }
        Event::Disconnected => {
            tracing::warn!(
                "NATS: the connection is lost; publications reach this process's subscribers only until it is back (retrying)"
            );
            bus.broker_state(false);
        }
        Event::SlowConsumer(sid) => {
            tracing::warn!(subscription = sid, "NATS: this process reads too slowly; the broker dropped messages")
        }
        other => tracing::info!("NATS: {other}"),
    }
}

/// 100 ms, doubling, at most [`MAX_RECONNECT_DELAY`].
fn reconnect_delay(attempts: usize) -> Duration {
    let doubled = Duration::from_millis(100).saturating_mul(1u32 << attempts.min(16));
    doubled.min(MAX_RECONNECT_DELAY)
}

/// Publications the bridge could not pass on.
pub(crate) fn count_dropped(n: u64) {
    DROPPED.fetch_add(n, Ordering::Relaxed);
}

fn log_dropped(metrics: Option<&BrokerMetrics>) {
    let n = DROPPED.swap(0, Ordering::Relaxed);
    if let Some(m) = metrics {
        m.dropped.inc_by(n);
    }
    if n > 0 {
        tracing::warn!(
            dropped = n,
            "NATS: {n} publications did not reach the broker (connection lost, or too far behind)"
        );
    }
}

fn plain_subject_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// The subject of `topic`: `<prefix>.<topic>` when the topic reads as plain
/// NATS tokens (`chat.room-1`: NATS wildcards then work across topics),
/// otherwise `<prefix>.~<base64url of the topic>`, one token (no plain
/// topic starts with `~`, so the two never meet).
pub fn subject(prefix: &str, topic: &str) -> String {
    let plain = topic.split('.').all(|t| !t.is_empty() && t.chars().all(plain_subject_char));
    if plain { format!("{prefix}.{topic}") } else { format!("{prefix}.~{}", URL_SAFE_NO_PAD.encode(topic)) }
}

/// The topic a subject under `prefix` stands for.
pub fn topic(prefix: &str, subject: &str) -> Option<String> {
    let rest = subject.strip_prefix(prefix)?.strip_prefix('.')?;
    match rest.strip_prefix('~') {
        Some(encoded) => String::from_utf8(URL_SAFE_NO_PAD.decode(encoded).ok()?).ok(),
        None => Some(rest.to_string()),
    }
}

/// A message from NATS as a publication; `None` when it is not one (another
/// subject, text that is not UTF-8).
fn publication(prefix: &str, subject: &str, headers: Option<&HeaderMap>, payload: &[u8]) -> Option<Publication> {
    let topic = topic(prefix, subject)?;
    let kind = headers.and_then(|h| h.get(KIND_HEADER)).map(|v| v.as_str().to_string());
    let binary = match kind.as_deref() {
        Some("binary") => true,
        Some("text") => false,
        _ => std::str::from_utf8(payload).is_err(),
    };
    if !binary && std::str::from_utf8(payload).is_err() {
        return None;
    }
    Some(Publication { topic, binary, data: payload.to_vec() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_topics_are_subjects_and_others_are_encoded_as_one_token() {
        assert_eq!(subject("wsbox.topics", "lobby"), "wsbox.topics.lobby");
        assert_eq!(subject("wsbox.topics", "chat.room-1"), "wsbox.topics.chat.room-1");
        for odd in ["with space", "a..b", ".lead", "*", ">", "~tilde", "ünïcode", "trail."] {
            let s = subject("p", odd);
            assert!(s.starts_with("p.~") && !s[2..].contains('.'), "{odd} → {s}");
            assert_eq!(topic("p", &s).as_deref(), Some(odd));
        }
        assert_eq!(topic("p", "p.chat.room-1").as_deref(), Some("chat.room-1"));
        assert_eq!(topic("p", "other.lobby"), None);
        assert_eq!(topic("p", "p.~!!"), None, "not base64url");
    }

    #[test]
    fn a_message_without_the_kind_header_is_text_when_it_is_utf8() {
        let p = publication("p", "p.t", None, b"hello").unwrap();
        assert!(!p.binary);
        assert!(publication("p", "p.t", None, &[0xff, 0]).unwrap().binary);
        let mut headers = HeaderMap::new();
        headers.insert(KIND_HEADER, "text");
        assert!(publication("p", "p.t", Some(&headers), &[0xff]).is_none(), "text that is not UTF-8");
        headers.insert(KIND_HEADER, "binary");
        assert!(publication("p", "p.t", Some(&headers), b"abc").unwrap().binary);
    }

    #[test]
    fn options_are_checked_before_starting() {
        let ok = NatsOptions { url: "nats://127.0.0.1:4222".into(), subject_prefix: DEFAULT_SUBJECT_PREFIX.into() };
        ok.validate().unwrap();
        let bad_prefix = NatsOptions { subject_prefix: "a..b".into(), ..ok.clone() };
        assert!(bad_prefix.validate().unwrap_err().to_string().contains("--nats-subject-prefix"));
        let bad_url = NatsOptions { url: "http://[".into(), ..ok };
        assert!(bad_url.validate().unwrap_err().to_string().contains("--nats"));
    }

    #[test]
    fn reconnects_back_off_to_five_seconds() {
        assert_eq!(reconnect_delay(0), Duration::from_millis(100));
        assert_eq!(reconnect_delay(3), Duration::from_millis(800));
        assert_eq!(reconnect_delay(100), MAX_RECONNECT_DELAY);
    }
}
