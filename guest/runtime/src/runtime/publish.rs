//! Topics as the app sees them: subscriptions, and publishing a message to
//! every subscriber with one framing per frame shape. A subscriber with
//! nothing queued gets the shared bytes through the batch's shared writes
//! (one copy across the boundary for all of them); one with output queued
//! gets them behind it, so its order holds either way.

use super::Runtime;
use crate::net::{Net, Publication};
use crate::socket::mark_dirty;
use crate::topics::{MAX_TOPICS_PER_SOCKET, valid_topic};
use wsbox_core::{FrameShape, MessageKind, State};

impl<N: Net> Runtime<N> {
    /// Subscribes an open socket to `topic`; false when it cannot be (see
    /// the WIT's `websocket.subscribe`) or already was.
    pub fn subscribe(&mut self, id: u32, topic: &str) -> bool {
        let Some(s) = self.sockets.get_mut(&id) else { return false };
        if s.released
            || s.conn.state() != State::Open
            || !valid_topic(topic)
            || s.topics.len() >= MAX_TOPICS_PER_SOCKET
            || s.topics.iter().any(|t| t == topic)
        {
            return false;
        }
        s.topics.push(topic.to_owned());
        self.topics.add(topic, id);
        true
    }

    /// Ends a subscription; false when there was none.
    pub fn unsubscribe(&mut self, id: u32, topic: &str) -> bool {
        let Some(s) = self.sockets.get_mut(&id) else { return false };
        let Some(at) = s.topics.iter().position(|t| t == topic) else { return false };
        s.topics.remove(at);
        self.topics.remove(topic, id);
        true
    }

    /// The sockets of this instance subscribed to `topic`.
    pub fn subscriber_count(&self, topic: &str) -> u32 {
        self.topics.subscribers(topic).len() as u32
    }

    /// Publishes to every subscriber of `topic` but `except`, here and (when
    /// forwarding) elsewhere. Returns the subscribers here it was queued
    /// for; `None` when the topic name is invalid or text is not UTF-8.
    pub fn publish(&mut self, topic: &str, kind: MessageKind, payload: &[u8], except: Option<u32>) -> Option<u32> {
        if !valid_topic(topic) || (kind == MessageKind::Text && std::str::from_utf8(payload).is_err()) {
            return None;
        }
        let delivered = self.deliver(topic, kind, payload, except);
        if self.forwarding {
            let publication = Publication { topic: topic.to_owned(), kind, data: payload.to_vec() };
            self.out.publications.push(publication);
        }
        Some(delivered)
    }

    /// A publication from another instance, for the subscribers here.
    pub(super) fn deliver_from_elsewhere(&mut self, publication: &Publication) {
        if valid_topic(&publication.topic) {
            self.deliver(&publication.topic, publication.kind, &publication.data, None);
        }
    }

    /// Queues the message for every open subscriber with room, framed once
    /// per shape; returns how many.
    fn deliver(&mut self, topic: &str, kind: MessageKind, payload: &[u8], except: Option<u32>) -> u32 {
        let counts = &mut self.out.topic_counts;
        counts.publications += 1;
        // Connections negotiate few distinct shapes: a short list.
        let mut shapes: Vec<(FrameShape, Vec<u8>, Vec<u32>)> = Vec::new();
        let mut delivered = 0u32;
        for &id in self.topics.subscribers(topic) {
            let Some(s) = self.sockets.get_mut(&id).filter(|_| Some(id) != except) else { continue };
            let Some(shape) = s.conn.shape_for(payload.len()).filter(|_| !s.released && !s.transport_done) else {
                continue;
            };
            if s.send_buffer_full() {
                counts.skipped += 1;
                continue;
            }
            let at = match shapes.iter().position(|(sh, ..)| *sh == shape) {
                Some(at) => at,
                None => {
                    shapes.push((shape, shape.frame(kind, payload), Vec::new()));
                    shapes.len() - 1
                }
            };
            let (_, framed, conns) = &mut shapes[at];
            if s.conn.send_framed(payload, shape, framed) {
                s.shared_pending += framed.len() as u64;
                conns.push(id);
            } else {
                mark_dirty(&mut self.dirty, id, s);
            }
            delivered += 1;
        }
        counts.delivered += u64::from(delivered);
        for (_, framed, conns) in shapes {
            if !conns.is_empty() {
                self.out.shared.push((framed, conns));
            }
        }
        delivered
    }

    /// Drops the subscriptions of a socket that is no longer open (closing,
    /// closed, or its handle dropped).
    pub(super) fn forget_topics_if_closed(&mut self, id: u32) {
        let Some(s) = self.sockets.get_mut(&id) else { return };
        if s.topics.is_empty() || s.conn.state() == State::Open {
            return;
        }
        for topic in std::mem::take(&mut s.topics) {
            self.topics.remove(&topic, id);
        }
    }

    /// After an exchange: the shared writes are the transport's now.
    pub(super) fn shared_written(&mut self) {
        for (_, conns) in &self.out.shared {
            for id in conns {
                if let Some(s) = self.sockets.get_mut(id) {
                    s.shared_pending = 0;
                }
            }
        }
    }

    /// Moves the changes of interest into the batch, for the transport.
    pub(super) fn report_interest(&mut self) {
        self.out.topics_joined.append(&mut self.topics.joined);
        self.out.topics_left.append(&mut self.topics.left);
    }
}
