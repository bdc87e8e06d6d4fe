//! Topics: which sockets subscribe to what, and what publishing has cost
//! since the last exchange. Publishing itself (framing once per shape) is
//! in `runtime::publish`.

use std::collections::HashMap;

/// Longest topic name, in bytes.
pub const MAX_TOPIC_LEN: usize = wsbox_defaults::MAX_TOPIC_LEN;
/// Topics one socket may hold.
pub const MAX_TOPICS_PER_SOCKET: usize = wsbox_defaults::MAX_TOPICS_PER_SOCKET;

/// Publications counted since the last exchange.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TopicCounts {
    pub publications: u32,
    /// Subscribers a publication was queued for.
    pub delivered: u64,
    /// Subscribers skipped for a full send buffer.
    pub skipped: u64,
}

/// Every topic with a subscriber on this instance.
#[derive(Default)]
pub(crate) struct Topics {
    /// Subscribers of each topic, in subscription order.
    subscribers: HashMap<String, Vec<u32>>,
    /// Topics whose first subscriber came, or whose last one left, since the
    /// last exchange (kept only when publications are forwarded).
    pub(crate) joined: Vec<String>,
    pub(crate) left: Vec<String>,
    track_interest: bool,
}

/// Whether `topic` can name a topic.
pub fn valid_topic(topic: &str) -> bool {
    (1..=MAX_TOPIC_LEN).contains(&topic.len())
}

impl Topics {
    pub(crate) fn new(track_interest: bool) -> Self {
        Self { track_interest, ..Self::default() }
    }

    pub(crate) fn subscribers(&self, topic: &str) -> &[u32] {
        self.subscribers.get(topic).map_or(&[], Vec::as_slice)
    }

    /// Adds `socket` to `topic` (the caller checked that it is not there).
    pub(crate) fn add(&mut self, topic: &str, socket: u32) {
        let subscribers = self.subscribers.entry(topic.to_owned()).or_default();
        subscribers.push(socket);
        if subscribers.len() == 1 && self.track_interest {
            note_change(&mut self.joined, &mut self.left, topic);
        }
    }

    /// Removes `socket` from `topic`.
    pub(crate) fn remove(&mut self, topic: &str, socket: u32) {
        let Some(subscribers) = self.subscribers.get_mut(topic) else { return };
        subscribers.retain(|&s| s != socket);
        if subscribers.is_empty() {
            self.subscribers.remove(topic);
            if self.track_interest {
                note_change(&mut self.left, &mut self.joined, topic);
            }
        }
    }
}

/// Records a change of interest in `topic`, unless it undoes one not yet
/// reported (then both vanish: the host only ever sees the net change).
fn note_change(changes: &mut Vec<String>, opposite: &mut Vec<String>, topic: &str) {
    if let Some(at) = opposite.iter().position(|t| t == topic) {
        opposite.swap_remove(at);
    } else {
        changes.push(topic.to_owned());
    }
}
