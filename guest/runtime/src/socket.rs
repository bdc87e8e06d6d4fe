//! A connection as the runtime holds it: the protocol core, the peer, and
//! the flags the event loop and the app's calls share; the send-buffer cap.

use crate::net::{Admission, TlsInfo};
use std::sync::Arc;
use wsbox_core::{Config, Connection, SocketError};

/// What became of a message the app sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    Queued,
    /// Not connected (or text that is not UTF-8): dropped.
    Rejected,
    /// The send buffer is full: not queued; `Writable` follows.
    BufferFull,
}

/// Default cap on a socket's unsent output (the transport's default write limit).
pub const DEFAULT_MAX_SEND_BUFFER: u64 = wsbox_defaults::MAX_SEND_BUFFER;
/// The range a send-buffer cap is clamped to (see `wsbox_defaults::SEND_BUFFER_MIN`).
pub const SEND_BUFFER_RANGE: std::ops::RangeInclusive<u64> =
    wsbox_defaults::SEND_BUFFER_MIN..=wsbox_defaults::SEND_BUFFER_MAX;

/// A connection and what the runtime knows about it.
pub struct Socket {
    pub conn: Connection,
    pub server: u32,
    pub peer_address: String,
    pub peer_port: u16,
    pub local_address: String,
    pub local_port: u16,
    /// The TLS session, on a secure server.
    pub tls: Option<TlsInfo>,
    /// Handed to the app by `next-pending-connection`.
    pub(crate) taken: bool,
    /// The app dropped its handle: no more signals for it.
    pub(crate) released: bool,
    /// Queued in `dirty` for the next flush.
    pub(crate) dirty: bool,
    /// Close or abort was handed to the transport.
    pub(crate) transport_done: bool,
    /// The deadline currently in the timer heap.
    pub(crate) timer: Option<u64>,
    /// The request waits for the app's `accept_handshake` / `refuse_handshake`.
    pub(crate) awaiting_decision: bool,
    /// The last transport error (Qt's `error()`).
    pub error: Option<SocketError>,
    /// Qt's `readBufferSize` (0: unlimited, the transport's default share).
    pub read_buffer_size: u64,
    /// `bytesWritten` events are wanted.
    pub bytes_written_events: bool,
    /// Sends are refused past this much unsent output.
    pub max_send_buffer: u64,
    /// The transport reported the output backed up (not yet drained).
    pub(crate) backed_up: bool,
    /// A send was refused: later ones are too (order) until `Writable`.
    pub(crate) send_refused: bool,
    /// What the transport's admission policy decided.
    pub(crate) admission: Admission,
    /// The peer is a trusted proxy: its request names the client.
    pub(crate) trusted_proxy: bool,
    /// The transport was told it upgraded, and that its close frame went out.
    pub(crate) told_upgraded: bool,
    pub(crate) told_closing: bool,
    /// The topics it is subscribed to, in subscription order.
    pub topics: Vec<String>,
    /// Bytes of publications shared with other sockets in the batch being
    /// gathered (not in the core's output, but on their way all the same).
    pub(crate) shared_pending: u64,
}

impl Socket {
    /// Whether a send now would be refused for want of buffer room.
    pub fn send_buffer_full(&self) -> bool {
        self.send_refused
            || self.backed_up
            || self.conn.bytes_to_write() as u64 + self.shared_pending >= self.max_send_buffer
    }
}

impl Socket {
    /// A connection just accepted for `server`, in the handshake.
    pub(crate) fn accepted(
        config: Arc<Config>,
        now: u64,
        server: u32,
        opened: crate::net::Opened,
        max_send_buffer: u64,
    ) -> Self {
        Socket {
            conn: Connection::new(config, now),
            server,
            peer_address: opened.peer_address,
            peer_port: opened.peer_port,
            local_address: opened.local_address,
            local_port: opened.local_port,
            trusted_proxy: opened.trusted_proxy,
            tls: None,
            taken: false,
            released: false,
            dirty: false,
            transport_done: false,
            timer: None,
            awaiting_decision: false,
            error: None,
            read_buffer_size: 0,
            bytes_written_events: false,
            max_send_buffer,
            backed_up: false,
            send_refused: false,
            admission: opened.admission,
            told_upgraded: false,
            told_closing: false,
            topics: Vec::new(),
            shared_pending: 0,
        }
    }
}

/// Queues the socket for the next flush (once).
pub(crate) fn mark_dirty(dirty: &mut Vec<u32>, id: u32, s: &mut Socket) {
    if !s.dirty {
        s.dirty = true;
        dirty.push(id);
    }
}
