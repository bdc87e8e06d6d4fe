//! Joins the frames of a message and validates text as it arrives.

use super::utf8::Utf8Validator;
use crate::error::ProtocolError;
use std::ops::Range;

/// Capacity kept between messages; a larger buffer is freed when its
/// message is done, so one 16 MiB message does not pin 16 MiB per
/// connection, and an idle connection holds little.
pub const RETAINED_CAPACITY: usize = 16 * 1024;

/// A data frame's payload up to this size is given room in full when its
/// first bytes arrive, so a frame whose bytes come in several reads is not
/// copied each time the buffer grows. Larger frames grow as their bytes
/// arrive.
const PRESIZE_LIMIT: u64 = 64 * 1024;

/// Room reserved ahead is at most this many times the bytes that arrived: a
/// frame header and a few bytes must not make a connection hold 64 KiB
/// (10 000 connections doing that would hold 640 MiB of guest memory).
const PRESIZE_FACTOR: usize = 8;

/// Text or binary, from the opcode of a message's first frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageKind {
    /// Opcode 0x1: UTF-8 text.
    Text,
    /// Opcode 0x2: bytes.
    Binary,
}

/// Where a finished message's bytes wait for the app.
#[derive(Debug)]
pub enum Delivered {
    /// In the connection's arena, shared with the other events.
    InArena(Range<usize>),
    /// In a buffer of its own.
    Alone(Vec<u8>),
}

/// The message being received: its kind, its bytes so far and, for text, the
/// UTF-8 state. Reused from one message to the next so that receiving does not
/// allocate once the buffer has grown to the usual message size.
#[derive(Debug, Default)]
pub struct Assembler {
    kind: Option<MessageKind>,
    buf: Vec<u8>,
    utf8: Utf8Validator,
    /// Where the bytes not yet reported in a frame event start in `buf`.
    frame_start: usize,
}

impl Assembler {
    /// The kind of the message in progress, if one is.
    pub fn in_progress(&self) -> Option<MessageKind> {
        self.kind
    }

    /// Bytes received so far for the message in progress.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when no bytes of a message are held.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Starts a message (the first frame's header was read).
    pub fn begin(&mut self, kind: MessageKind) {
        self.kind = Some(kind);
        self.buf.clear();
        self.utf8 = Utf8Validator::default();
        self.frame_start = 0;
    }

    /// Makes room for a frame of `payload_len` bytes whose first
    /// `first_chunk` bytes just arrived: up to [`PRESIZE_LIMIT`], and at most
    /// [`PRESIZE_FACTOR`] times what arrived.
    pub fn reserve_frame(&mut self, payload_len: u64, first_chunk: usize) {
        let want = (payload_len.min(PRESIZE_LIMIT) as usize).min(first_chunk.saturating_mul(PRESIZE_FACTOR));
        if self.buf.is_empty() && self.buf.capacity() < want {
            // A fresh buffer: growing the old one would copy its stale bytes.
            self.buf = Vec::with_capacity(want);
        } else {
            self.buf.reserve(want);
        }
    }

    /// The buffer to append unmasked payload bytes to; call
    /// [`Assembler::validate_from`] with the previous length afterwards.
    pub fn buf_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Validates the text bytes appended since `from`.
    pub fn validate_from(&mut self, from: usize) -> Result<(), ProtocolError> {
        if self.kind == Some(MessageKind::Text) {
            self.utf8.feed(&self.buf[from..]).map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        Ok(())
    }

    /// The current frame's bytes that can be delivered now: for text, up to
    /// the last complete code point (a code point that straddles frames is
    /// delivered with the frame that completes it, as Qt does).
    pub fn frame_bytes(&mut self) -> &[u8] {
        let end = self.buf.len() - self.utf8.pending();
        let start = self.frame_start.min(end);
        self.frame_start = end;
        &self.buf[start..end]
    }

    /// Ends the message (FIN frame complete): its kind and bytes. Text that
    /// ends inside a code point is invalid.
    pub fn finish(&mut self) -> Result<(MessageKind, &[u8]), ProtocolError> {
        let kind = self.kind.take().expect("a message is in progress");
        if kind == MessageKind::Text && !self.utf8.is_complete() {
            return Err(ProtocolError::InvalidUtf8);
        }
        Ok((kind, &self.buf))
    }

    /// Ends the message like [`Assembler::finish`] and hands its bytes over
    /// without copying them where it can: an empty arena trades buffers with
    /// the assembler (the usual case: one message per connection between two
    /// drains); a message larger than [`RETAINED_CAPACITY`] leaves in its own
    /// buffer (the assembler would free that buffer anyway, and appending it
    /// to an arena that already holds messages copies it, and the arena again
    /// each time it grows); a small one is appended to the arena.
    pub fn finish_into(&mut self, arena: &mut Vec<u8>) -> Result<(MessageKind, Delivered), ProtocolError> {
        let (kind, bytes) = self.finish()?;
        let start = arena.len();
        let delivered = if start == 0 {
            std::mem::swap(arena, &mut self.buf);
            Delivered::InArena(0..arena.len())
        } else if bytes.len() > RETAINED_CAPACITY {
            Delivered::Alone(std::mem::take(&mut self.buf))
        } else {
            arena.extend_from_slice(bytes);
            Delivered::InArena(start..arena.len())
        };
        Ok((kind, delivered))
    }

    /// Drops the message (done or abandoned); a buffer larger than the
    /// retained capacity is freed.
    pub fn reset(&mut self) {
        self.kind = None;
        self.buf.clear();
        if self.buf.capacity() > RETAINED_CAPACITY {
            self.buf = Vec::new();
        }
    }
}
