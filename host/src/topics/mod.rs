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

use crate::net::Interrupter;
use crate::net::batch::Publication;
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

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
    wake: Interrupter,
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Publication>,
    bytes: usize,
    /// Dropped since the last log line.
    dropped: u64,
}

impl TopicBus {
    pub fn new() -> Self {
        Self::default()
    }

    /// A new member, woken through `wake` when publications arrive for it.
    pub fn join(&self, wake: Interrupter) -> BusPort {
        let mut members = lock(&self.0);
        members.next_id += 1;
        let id = members.next_id;
        let inbox = Arc::new(Inbox { queue: Mutex::default(), wake });
        members.members.push(Member { id, inbox: Arc::clone(&inbox), topics: HashSet::new() });
        BusPort { bus: self.clone(), id, inbox }
    }

    /// How many instances have a subscriber to `topic`.
    pub fn interested(&self, topic: &str) -> usize {
        lock(&self.0).members.iter().filter(|m| m.topics.contains(topic)).count()
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
        if let Some(me) = members.members.iter_mut().find(|m| m.id == self.id) {
            for topic in left {
                me.topics.remove(&topic);
            }
            me.topics.extend(joined);
        }
        for publication in publications {
            let interested: Vec<&Inbox> = members
                .members
                .iter()
                .filter(|m| m.id != self.id && m.topics.contains(&publication.topic))
                .map(|m| &*m.inbox)
                .collect();
            if let Some((last, rest)) = interested.split_last() {
                for inbox in rest {
                    inbox.push(publication.clone());
                }
                last.push(publication);
            }
        }
    }

    /// Moves waiting publications into `into`, up to one turn's worth.
    pub fn receive(&self, into: &mut Vec<Publication>) {
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
        self.wake.interrupt();
    }
}

impl Drop for BusPort {
    fn drop(&mut self) {
        lock(&self.bus.0).members.retain(|m| m.id != self.id);
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

    fn wake() -> Interrupter {
        crate::net::NetHost::new(crate::sandbox::ListenPolicy::new([]), None).interrupter()
    }

    #[test]
    fn a_publication_reaches_each_other_interested_member_once() {
        let bus = TopicBus::new();
        let (a, b, c) = (bus.join(wake()), bus.join(wake()), bus.join(wake()));
        b.send(vec!["room".into()], vec![], vec![]);
        c.send(vec!["other".into()], vec![], vec![]);
        a.send(vec!["room".into()], vec![], vec![publication("room", b"hi"), publication("nobody", b"x")]);
        let (mut got_a, mut got_b, mut got_c) = (Vec::new(), Vec::new(), Vec::new());
        a.receive(&mut got_a);
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
}
