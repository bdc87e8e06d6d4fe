//! Output: messages (compressed when negotiated), pings and control
//! frames, and the bytes handed to the transport.

use super::*;

impl Connection {
    /// Queues a message, fragmented into frames of the outgoing frame size.
    /// Returns the payload bytes queued: 0 unless the connection is open
    /// (Qt's `sendTextMessage` / `sendBinaryMessage`).
    pub fn send(&mut self, kind: MessageKind, payload: &[u8]) -> u64 {
        if self.state() != State::Open {
            return 0;
        }
        let first = first_opcode(kind);
        let frame_size = self.config.limits.outgoing_frame_size.max(1) as usize;
        let min_size = self.config.deflate.as_ref().map_or(usize::MAX, |c| c.min_size);
        match &mut self.deflate {
            Some(deflate) if payload.len() >= min_size => {
                deflate.deflater.compress_message(payload, &mut self.scratch);
                write_message(&mut self.out, first, true, &self.scratch, frame_size);
                // Between messages a compressed connection keeps only its windows.
                self.scratch = Vec::new();
            }
            _ => write_message(&mut self.out, first, false, payload, frame_size),
        }
        payload.len() as u64
    }

    /// How a message of `len` bytes would be framed here: connections of
    /// the same shape can be sent the same bytes ([`FrameShape::frame`],
    /// then [`Connection::send_framed`]). `None` unless the connection is open.
    pub fn shape_for(&self, len: usize) -> Option<FrameShape> {
        if self.state() != State::Open {
            return None;
        }
        let min_size = self.config.deflate.as_ref().map_or(usize::MAX, |c| c.min_size);
        Some(FrameShape {
            compressor: self.deflate.as_ref().filter(|_| len >= min_size).map(|d| d.deflater.key()),
            frame_size: self.config.limits.outgoing_frame_size.max(1) as usize,
        })
    }

    /// Sends `payload` as `framed`, the bytes [`FrameShape::frame`] made for
    /// this connection's [`Connection::shape_for`] (and perhaps for many
    /// others), and keeps the compression context in step with the peer's.
    /// Returns true when nothing is queued here ahead of them: the binding
    /// may then hand `framed` to the transport as it is, before this
    /// connection's own output. Otherwise the bytes are queued here (and
    /// false returned).
    pub fn send_framed(&mut self, payload: &[u8], shape: FrameShape, framed: &[u8]) -> bool {
        if shape.compressor.is_some()
            && let Some(deflate) = &mut self.deflate
        {
            deflate.deflater.sent_elsewhere(payload);
        }
        if self.out.is_empty() {
            return true;
        }
        self.out.extend_from_slice(framed);
        false
    }

    /// Sends a ping with at most 125 bytes of `payload`, and restarts the
    /// round-trip timer that pong events report.
    pub fn ping(&mut self, now: u64, payload: &[u8]) {
        if self.state() != State::Open {
            return;
        }
        let payload = &payload[..payload.len().min(125)];
        self.last_ping = now;
        self.send_control(OpCode::Ping, payload);
    }

    /// Moves every queued byte for the peer to the end of `dst`.
    pub fn take_transmit(&mut self, dst: &mut Vec<u8>) {
        // Swapping saves a copy, but only when the connection gets a buffer
        // no larger than its own: otherwise a binding's large turn buffer
        // would move into a connection every turn and stay there (1 000
        // connections ended up holding ~1 MiB each).
        if dst.is_empty() && dst.capacity() <= self.out.capacity() {
            std::mem::swap(dst, &mut self.out);
        } else {
            dst.extend_from_slice(&self.out);
            self.out.clear();
        }
        // After a burst (a large message), an idle connection keeps a small buffer.
        if self.out.capacity() > IDLE_OUT_CAPACITY {
            self.out = Vec::new();
        }
    }

    pub(super) fn send_control(&mut self, opcode: OpCode, payload: &[u8]) {
        encode_header(&mut self.out, true, false, opcode, payload.len() as u64);
        self.out.extend_from_slice(payload);
    }
}

/// How a message is framed for a connection: whether it is compressed (and
/// by which compressor) and the frame size. A message framed once for a
/// shape is valid on every connection of that shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FrameShape {
    compressor: Option<CompressorKey>,
    frame_size: usize,
}

impl FrameShape {
    /// The message `payload` as frames of this shape; compressed from a
    /// fresh stream, so valid whatever context each peer keeps.
    pub fn frame(&self, kind: MessageKind, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match self.compressor {
            Some(key) => {
                let mut compressed = Vec::new();
                compress_fresh(key, payload, &mut compressed);
                write_message(&mut out, first_opcode(kind), true, &compressed, self.frame_size);
            }
            None => write_message(&mut out, first_opcode(kind), false, payload, self.frame_size),
        }
        out
    }
}

fn first_opcode(kind: MessageKind) -> OpCode {
    match kind {
        MessageKind::Text => OpCode::Text,
        MessageKind::Binary => OpCode::Binary,
    }
}

/// Appends a message as frames of at most `frame_size` payload bytes; RSV1
/// (compressed) goes on the first frame only.
pub(super) fn write_message(out: &mut Vec<u8>, first: OpCode, rsv1: bool, payload: &[u8], frame_size: usize) {
    out.reserve(payload.len() + 14);
    let mut chunks = payload.chunks(frame_size).peekable();
    if chunks.peek().is_none() {
        encode_header(out, true, rsv1, first, 0);
    }
    let (mut opcode, mut rsv1) = (first, rsv1);
    while let Some(chunk) = chunks.next() {
        let fin = chunks.peek().is_none();
        encode_header(out, fin, rsv1, opcode, chunk.len() as u64);
        out.extend_from_slice(chunk);
        (opcode, rsv1) = (OpCode::Continuation, false);
    }
}

/// permessage-deflate state of one connection: between messages, only the
/// windows of the sides that keep their context (see [`crate::deflate`]).
#[derive(Debug)]
pub(super) struct Deflate {
    pub(super) response: String,
    pub(super) inflater: Inflater,
    pub(super) deflater: Deflater,
}

impl Deflate {
    pub(super) fn new(params: DeflateParams, response: String, level: u32) -> Self {
        Self { inflater: Inflater::new(&params), deflater: Deflater::new(&params, level), response }
    }
}

/// Frees a per-connection buffer that one large message grew, so idle
/// connections stay small.
pub(super) fn shrink_if_large(buf: &mut Vec<u8>) {
    if buf.capacity() > RETAINED_CAPACITY {
        *buf = Vec::new();
    }
}
