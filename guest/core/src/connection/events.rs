//! What the app is told: events recorded with their payloads in one arena,
//! handed out by [`Connection::drain_events`].

use super::{Connection, Event, SocketError, State, shrink_if_large};
use crate::handshake::HandshakeError;
use crate::message::{Delivered, MessageKind};
use std::ops::Range;

/// An event as stored: payloads are ranges into the connection's arena (a
/// large message has a buffer of its own).
#[derive(Debug)]
pub(super) enum Record {
    UpgradeRequested,
    Upgraded,
    HandshakeRefused(HandshakeError),
    HealthCheck,
    Frame { kind: MessageKind, range: Range<usize>, is_last: bool },
    Message { kind: MessageKind, bytes: Delivered },
    Pong { elapsed_ms: u64, range: Range<usize> },
    StateChanged(State),
    AboutToClose,
    ReadChannelFinished,
    Disconnected,
    Error(SocketError),
}

impl Record {
    /// The event this record stands for, its payload borrowed from `arena`.
    fn event<'a>(&'a self, arena: &'a [u8]) -> Event<'a> {
        match self {
            Record::UpgradeRequested => Event::UpgradeRequested,
            Record::Upgraded => Event::Upgraded,
            Record::HandshakeRefused(e) => Event::HandshakeRefused(*e),
            Record::HealthCheck => Event::HealthCheck,
            Record::Frame { kind, range, is_last } => {
                let (frame, is_last) = (&arena[range.clone()], *is_last);
                match kind {
                    MessageKind::Text => Event::TextFrame { frame, is_last },
                    MessageKind::Binary => Event::BinaryFrame { frame, is_last },
                }
            }
            Record::Message { kind, bytes } => {
                let bytes = match bytes {
                    Delivered::InArena(range) => &arena[range.clone()],
                    Delivered::Alone(buf) => buf.as_slice(),
                };
                match kind {
                    MessageKind::Text => Event::TextMessage(bytes),
                    MessageKind::Binary => Event::BinaryMessage(bytes),
                }
            }
            Record::Pong { elapsed_ms, range } => {
                Event::Pong { elapsed_ms: *elapsed_ms, payload: &arena[range.clone()] }
            }
            Record::StateChanged(s) => Event::StateChanged(*s),
            Record::AboutToClose => Event::AboutToClose,
            Record::ReadChannelFinished => Event::ReadChannelFinished,
            Record::Disconnected => Event::Disconnected,
            Record::Error(e) => Event::Error(*e),
        }
    }
}

impl Connection {
    /// Calls `f` with every event since the last call, in order.
    pub fn drain_events(&mut self, mut f: impl FnMut(Event<'_>)) {
        for record in self.records.drain(..) {
            f(record.event(&self.arena));
        }
        self.arena.clear();
        shrink_if_large(&mut self.arena);
    }

    /// True when events are waiting for [`Connection::drain_events`].
    pub fn has_events(&self) -> bool {
        !self.records.is_empty()
    }
}

pub(super) fn push_arena(arena: &mut Vec<u8>, bytes: &[u8]) -> Range<usize> {
    let start = arena.len();
    arena.extend_from_slice(bytes);
    start..arena.len()
}
