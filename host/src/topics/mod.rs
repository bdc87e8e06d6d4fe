//! Topics between instances. Each instance (a worker's guest) delivers a
//! publication to its own subscribers itself, framed once; what crosses
//! instances is the publication, unframed, once per instance that has
//! subscribers to its topic, never once per subscriber.
//!
//! The workers of one process share a [`TopicBus`]: each instance joins it
//! with a [`BusPort`] (its `net` then asks the guest to forward every
//! publication and every topic's first and last subscriber), and the bus
//! hands each publication to the other members interested in its topic,
//! waking their event loops. At most once: a member whose inbox is full
//! (a stalled instance) loses what does not fit, counted and logged.
//!
//! Across processes, a broker ([`nats`]) is one more party on the bus: it
//! gets every publication made in this process once (whatever the number of
//! workers) and subscribes to a topic while any worker has a subscriber to
//! it; what it receives goes to every interested worker.

pub mod nats;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// A message published to a topic, between instances: the payload, not yet
/// framed (WIT's `net.publication`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publication {
    pub topic: String,
    pub binary: bool,
    pub data: Vec<u8>,
}

/// How the bus wakes a member's event loop (it must not block).
pub type Wake = Box<dyn Fn() + Send + Sync>;

/// Bytes of publications an instance may have waiting before more are dropped.
pub const INBOX_CAP: usize = 16 * 1024 * 1024;

/// Publications handed to an instance per turn, in bytes (at least one):
/// what one turn's input may hold (see `wsbox_transport::TURN_CAP`).
const PER_TURN: usize = wsbox_transport::TURN_CAP;

/// The instances of one process that exchange publications.
#[derive(Clone, Default)]
pub struct TopicBus(Arc<Mutex<Members>>);

#[derive(Default)]
struct Members {
    next_id: u64,
    members: Vec<Member>,
    /// How many members have a subscriber to each topic.
    interest: HashMap<String, usize>,
    broker: Option<BrokerLink>,
    /// The broker connection's last state, for members that join later.
    broker_connected: Option<bool>,
}

/// What the bus asks of the broker.
#[derive(Debug)]
pub enum BrokerCommand {
    /// The first member's subscriber to a topic came.
    Subscribe(String),
    /// The last one left.
    Unsubscribe(String),
    Publish(Publication),
}

/// The bus's side of the broker: commands, and the bytes of publications
/// queued for it (past [`INBOX_CAP`] more are dropped, as for a member).
struct BrokerLink {
    commands: tokio::sync::mpsc::UnboundedSender<BrokerCommand>,
    queued: Arc<AtomicUsize>,
}

struct Member {
    id: u64,
    inbox: Arc<Inbox>,
    /// Topics with a subscriber on this member.
    topics: HashSet<String>,
}

/// Publications waiting for one instance, and how to wake it.
struct Inbox {
    queue: Mutex<Queue>,
    wake: Wake,
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Publication>,
    bytes: usize,
    /// Dropped since the last log line.
    dropped: u64,
    /// The broker connection changed since the member last looked.
    broker_connected: Option<bool>,
}

impl TopicBus {
    pub fn new() -> Self {
        Self::default()
    }

    /// A new member, woken through `wake` when publications arrive for it.
    pub fn join(&self, wake: Wake) -> BusPort {
        let mut members = lock(&self.0);
        members.next_id += 1;
        let id = members.next_id;
        let queue = Queue { broker_connected: members.broker_connected, ..Queue::default() };
        let inbox = Arc::new(Inbox { queue: Mutex::new(queue), wake });
        members.members.push(Member { id, inbox: Arc::clone(&inbox), topics: HashSet::new() });
        BusPort { bus: self.clone(), id, inbox }
    }

    /// How many instances have a subscriber to `topic`.
    pub fn interested(&self, topic: &str) -> usize {
        lock(&self.0).interest.get(topic).copied().unwrap_or(0)
    }

    /// Attaches the broker: it gets the interest there is now, then every
    /// change and every publication, through the returned receiver.
    pub fn attach_broker(&self) -> (tokio::sync::mpsc::UnboundedReceiver<BrokerCommand>, Arc<AtomicUsize>) {
        let (commands, receiver) = tokio::sync::mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let mut members = lock(&self.0);
        for topic in members.interest.keys() {
            let _ = commands.send(BrokerCommand::Subscribe(topic.clone()));
        }
        members.broker = Some(BrokerLink { commands, queued: Arc::clone(&queued) });
        (receiver, queued)
    }

    /// A publication from the broker, for every interested member.
    pub fn from_broker(&self, publication: Publication) {
        let members = lock(&self.0);
        deliver(&members.members, None, publication);
    }

    /// The broker connection was lost or is back: every member's app is told.
    pub fn broker_state(&self, connected: bool) {
        let mut members = lock(&self.0);
        members.broker_connected = Some(connected);
        for member in &members.members {
            lock(&member.inbox.queue).broker_connected = Some(connected);
            (member.inbox.wake)();
        }
    }
}

/// Hands `publication` to each member interested in its topic but `except`
/// (the last one takes it itself).
fn deliver(members: &[Member], except: Option<u64>, publication: Publication) {
    let interested: Vec<&Inbox> = members
        .iter()
        .filter(|m| Some(m.id) != except && m.topics.contains(&publication.topic))
        .map(|m| &*m.inbox)
        .collect();
    if let Some((last, rest)) = interested.split_last() {
        for inbox in rest {
            inbox.push(publication.clone());
        }
        last.push(publication);
    }
}

impl Members {
    /// Member `id`'s interest in `topic` began (or ended): the broker
    /// follows the first and the last.
    fn interest_changed(&mut self, id: u64, topic: String, joined: bool) {
        let Some(member) = self.members.iter_mut().find(|m| m.id == id) else { return };
        let changed = if joined { member.topics.insert(topic.clone()) } else { member.topics.remove(&topic) };
        if !changed {
            return;
        }
        let count = self.interest.entry(topic.clone()).or_default();
        let command = if joined {
            *count += 1;
            (*count == 1).then(|| BrokerCommand::Subscribe(topic.clone()))
        } else {
            *count -= 1;
            (*count == 0).then(|| BrokerCommand::Unsubscribe(topic.clone()))
        };
        if *count == 0 {
            self.interest.remove(&topic);
        }
        if let (Some(broker), Some(command)) = (&self.broker, command) {
            let _ = broker.commands.send(command);
        }
    }
}

/// One instance's place on the bus; leaving it (drop) forgets its interest.
pub struct BusPort {
    bus: TopicBus,
    id: u64,
    inbox: Arc<Inbox>,
}

impl BusPort {
    /// What the instance handed over at an exchange: changes of interest
    /// first (so a subscriber that came in the same turn as a publication
    /// elsewhere is not missed later), then its publications.
    pub fn send(&self, joined: Vec<String>, left: Vec<String>, publications: Vec<Publication>) {
        if joined.is_empty() && left.is_empty() && publications.is_empty() {
            return;
        }
        let mut members = lock(&self.bus.0);
        for topic in left {
            members.interest_changed(self.id, topic, false);
        }
        for topic in joined {
            members.interest_changed(self.id, topic, true);
        }
        for publication in publications {
            if let Some(broker) = &members.broker {
                broker.publish(publication.clone());
            }
            deliver(&members.members, Some(self.id), publication);
        }
    }

    /// Moves waiting publications into `into`, up to one turn's worth, and
    /// returns a change of the broker connection since the last call.
    pub fn receive(&self, into: &mut Vec<Publication>) -> Option<bool> {
        let mut queue = lock(&self.inbox.queue);
        if queue.dropped > 0 {
            tracing::warn!(
                dropped = queue.dropped,
                "publications from other workers were dropped: this instance's inbox was full ({} MiB)",
                INBOX_CAP >> 20
            );
            queue.dropped = 0;
        }
        let mut taken = 0;
        while taken < PER_TURN
            && let Some(p) = queue.items.pop_front()
        {
            taken += p.data.len().max(1);
            queue.bytes -= p.data.len();
            into.push(p);
        }
        queue.broker_connected.take()
    }
}

impl BrokerLink {
    fn publish(&self, publication: Publication) {
        let len = publication.data.len();
        if self.queued.fetch_add(len, Ordering::AcqRel) + len > INBOX_CAP {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            nats::count_dropped(1);
            return;
        }
        if self.commands.send(BrokerCommand::Publish(publication)).is_err() {
            self.queued.fetch_sub(len, Ordering::AcqRel);
        }
    }
}

impl Inbox {
    fn push(&self, publication: Publication) {
        let mut queue = lock(&self.queue);
        if queue.bytes + publication.data.len() > INBOX_CAP {
            queue.dropped += 1;
            return;
        }
        queue.bytes += publication.data.len();
        queue.items.push_back(publication);
        drop(queue);
        (self.wake)();
    }
}

impl Drop for BusPort {
    fn drop(&mut self) {
        let mut members = lock(&self.bus.0);
        let mut topics: Vec<String> = members
            .members
            .iter()
            .find(|m| m.id == self.id)
            .map(|m| m.topics.iter().cloned().collect())
            .unwrap_or_default();
        // In name order, so what the broker is told does not depend on hashing.
        topics.sort_unstable();
        for topic in topics {
            members.interest_changed(self.id, topic, false);
        }
        members.members.retain(|m| m.id != self.id);
    }
}

/// The bus's locks guard plain data: a panic elsewhere leaves it usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publication(topic: &str, data: &[u8]) -> Publication {
        Publication { topic: topic.into(), binary: false, data: data.to_vec() }
    }

    fn wake() -> Wake {
        Box::new(|| {})
    }

    #[test]
    fn a_publication_reaches_each_other_interested_member_once() {
        let bus = TopicBus::new();
        let (a, b, c) = (bus.join(wake()), bus.join(wake()), bus.join(wake()));
        b.send(vec!["room".into()], vec![], vec![]);
        c.send(vec!["other".into()], vec![], vec![]);
        a.send(vec!["room".into()], vec![], vec![publication("room", b"hi"), publication("nobody", b"x")]);
        let (mut got_a, mut got_b, mut got_c) = (Vec::new(), Vec::new(), Vec::new());
        assert_eq!(a.receive(&mut got_a), None);
        b.receive(&mut got_b);
        c.receive(&mut got_c);
        assert!(got_a.is_empty(), "never back to the publisher's instance");
        assert_eq!(got_b, [publication("room", b"hi")]);
        assert!(got_c.is_empty());
        assert_eq!(bus.interested("room"), 2);
        drop(b);
        assert_eq!(bus.interested("room"), 1, "a member that leaves takes its interest along");
    }

    #[test]
    fn a_full_inbox_drops_and_a_turn_takes_a_bounded_share() {
        let bus = TopicBus::new();
        let (a, b) = (bus.join(wake()), bus.join(wake()));
        b.send(vec!["t".into()], vec![], vec![]);
        let big = vec![0u8; 1024 * 1024];
        let sent: Vec<Publication> = (0..20).map(|_| publication("t", &big)).collect();
        a.send(vec![], vec![], sent);
        let mut first = Vec::new();
        b.receive(&mut first);
        assert_eq!(first.len(), 1, "one turn's worth");
        let mut rest = Vec::new();
        while {
            let before = rest.len();
            b.receive(&mut rest);
            rest.len() > before
        } {}
        assert_eq!(1 + rest.len(), INBOX_CAP / big.len(), "what did not fit was dropped");
    }

    #[test]
    fn the_broker_follows_the_first_and_last_interest_and_gets_each_publication_once() {
        let bus = TopicBus::new();
        let (a, b) = (bus.join(wake()), bus.join(wake()));
        a.send(vec!["early".into()], vec![], vec![]);
        let (mut commands, _) = bus.attach_broker();
        b.send(vec!["early".into(), "t".into()], vec![], vec![]);
        a.send(vec!["t".into()], vec![], vec![publication("t", b"x")]);
        b.send(vec![], vec!["t".into(), "early".into()], vec![]);
        drop(a);
        let mut seen = Vec::new();
        while let Ok(command) = commands.try_recv() {
            seen.push(format!("{command:?}"));
        }
        assert_eq!(
            seen,
            [
                r#"Subscribe("early")"#,
                r#"Subscribe("t")"#,
                r#"Publish(Publication { topic: "t", binary: false, data: [120] })"#,
                r#"Unsubscribe("early")"#,
                r#"Unsubscribe("t")"#,
            ]
        );
    }

    #[test]
    fn publications_and_the_state_from_the_broker_reach_the_members() {
        let bus = TopicBus::new();
        let a = bus.join(wake());
        a.send(vec!["t".into()], vec![], vec![]);
        bus.from_broker(publication("t", b"from afar"));
        bus.from_broker(publication("u", b"nobody here"));
        bus.broker_state(false);
        let mut got = Vec::new();
        assert_eq!(a.receive(&mut got), Some(false));
        assert_eq!(got, [publication("t", b"from afar")]);
        assert_eq!(a.receive(&mut got), None, "told once");
        let later = bus.join(wake());
        assert_eq!(later.receive(&mut got), Some(false), "a member that joins later learns the state");
    }
}
