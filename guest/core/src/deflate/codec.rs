//! The compressor and decompressor of one connection.
//!
//! Memory is the design constraint: a browser crowd offers permessage-deflate
//! on every connection. zlib-rs's compressor holds a 128 KiB hash table
//! whatever its window, so one compressor per connection would cost over
//! 200 KiB each. Instead:
//!
//! - **Compressing**: every connection of a thread shares one compressor per
//!   (window, level). A connection that keeps its context keeps only the last
//!   window of what it sent ([`Window`], 4 KiB at the default 12 bits); when
//!   another connection used the compressor since its last message, the
//!   compressor is reset and given that window as a preset dictionary: the
//!   peer's decompressor holds those bytes, so back references into them are
//!   exactly what context takeover allows. When it was the last user, its
//!   stream simply goes on (a busy connection pays no reset).
//! - **Decompressing**: a decompressor's state must survive a message split
//!   across reads, so each connection has its own, made when a compressed
//!   message starts and kept while messages keep coming; the connection
//!   frees it ([`Inflater::release`]) after a quiet spell. With context
//!   takeover it is rebuilt from the last window of what it inflated (zlib's
//!   preset dictionary again), so an idle connection holds only its two
//!   windows, whatever the setting.

use super::negotiate::DeflateParams;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use std::cell::RefCell;

/// The four bytes a sync flush ends with; stripped from each compressed
/// message and added back before inflating (RFC 7692 §7.2.1, §7.2.2).
const SYNC_TAIL: [u8; 4] = [0x00, 0x00, 0xFF, 0xFF];

/// Largest output produced per inflate call, so a decompression bomb is
/// caught within one chunk of the limit.
const INFLATE_CHUNK: usize = 64 * 1024;

thread_local! {
    /// The shared compressors, by (window bits, level), each with the id of
    /// the connection whose stream it holds (if one keeps its context).
    /// Connections negotiate few distinct windows: a handful of entries.
    static COMPRESSORS: RefCell<Vec<Shared>> = const { RefCell::new(Vec::new()) };
    /// The next [`Deflater`]'s id.
    static NEXT_ID: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

struct Shared {
    key: CompressorKey,
    compress: Compress,
    owner: Option<u64>,
}

/// The last bytes of a stream, up to a window's size: what a kept context
/// may refer back to.
#[derive(Debug)]
struct Window {
    bytes: Vec<u8>,
    size: usize,
}

impl Window {
    fn new(bits: u8) -> Self {
        Self { bytes: Vec::new(), size: 1 << bits }
    }

    /// Appends `data`, keeping only the last `size` bytes.
    fn push(&mut self, data: &[u8]) {
        if self.bytes.capacity() == 0 {
            // Exactly one window, never a doubling past it.
            self.bytes.reserve_exact(self.size);
        }
        let tail = &data[data.len().saturating_sub(self.size)..];
        let keep = self.size - tail.len();
        if self.bytes.len() > keep {
            self.bytes.drain(..self.bytes.len() - keep);
        }
        self.bytes.extend_from_slice(tail);
    }
}

/// Compresses outgoing messages.
#[derive(Debug)]
pub struct Deflater {
    id: u64,
    bits: u8,
    level: u32,
    /// What we sent last, when we keep our context.
    window: Option<Window>,
}

impl Deflater {
    /// A compressor for the negotiated window. zlib cannot compress raw
    /// deflate with a 256-byte window, so for `server_max_window_bits=8`
    /// messages are sent as stored blocks: valid deflate, never a back
    /// reference, so any window the peer has is enough.
    pub fn new(params: &DeflateParams, level: u32) -> Self {
        let stored = params.server_max_window_bits < 9;
        let bits = params.server_max_window_bits.max(9);
        let level = if stored { 0 } else { level.min(9) };
        let keeps_context = !params.server_no_context_takeover && level > 0;
        let id = NEXT_ID.with(|next| next.replace(next.get() + 1));
        Self { id, bits, level, window: keeps_context.then(|| Window::new(bits)) }
    }

    /// The compressor this connection uses: connections with the same key
    /// can take the same compressed bytes ([`compress_fresh`]).
    pub fn key(&self) -> CompressorKey {
        CompressorKey { bits: self.bits, level: self.level }
    }

    /// Records that the peer was sent `input` compressed by another stream
    /// ([`compress_fresh`]): the peer's decompressor now holds it in its
    /// window, so ours must too, or later back references would disagree.
    pub fn sent_elsewhere(&mut self, input: &[u8]) {
        if let Some(window) = &mut self.window {
            window.push(input);
        }
    }

    /// Replaces `out` with the compressed form of `input`, sync tail removed.
    pub fn compress_message(&mut self, input: &[u8], out: &mut Vec<u8>) {
        with_compressor(self.key(), |shared| {
            let continues = self.window.is_some() && shared.owner == Some(self.id);
            if !continues {
                shared.compress.reset();
                if let Some(window) = self.window.as_ref().filter(|w| !w.bytes.is_empty()) {
                    // Without the dictionary the message is still valid, only
                    // compressed less: an error here (there is none for a raw
                    // stream just reset) must not fail the send.
                    let _ = shared.compress.set_dictionary(&window.bytes);
                }
            }
            compress_into(&mut shared.compress, input, out);
            shared.owner = self.window.is_some().then_some(self.id);
        });
        if let Some(window) = &mut self.window {
            window.push(input);
        }
    }
}

/// Which shared compressor: the window (9–15 bits) and the level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CompressorKey {
    bits: u8,
    level: u32,
}

/// Replaces `out` with `input` compressed from a fresh stream (no back
/// reference before it), sync tail removed: every peer whose connection's
/// [`Deflater::key`] is `key` can inflate it, whatever its context, and each
/// such connection then calls [`Deflater::sent_elsewhere`].
pub fn compress_fresh(key: CompressorKey, input: &[u8], out: &mut Vec<u8>) {
    with_compressor(key, |shared| {
        shared.compress.reset();
        compress_into(&mut shared.compress, input, out);
        // Nobody's stream goes on from here: the next user resets it.
        shared.owner = None;
    });
}

/// Runs `f` with this thread's compressor for `key`, made on first use.
fn with_compressor<R>(key: CompressorKey, f: impl FnOnce(&mut Shared) -> R) -> R {
    COMPRESSORS.with(|cell| {
        let mut compressors = cell.borrow_mut();
        let at = match compressors.iter().position(|s| s.key == key) {
            Some(at) => at,
            None => {
                let compress = Compress::new_with_window_bits(Compression::new(key.level), false, key.bits);
                compressors.push(Shared { key, compress, owner: None });
                compressors.len() - 1
            }
        };
        f(&mut compressors[at])
    })
}

/// Compresses `input` as one sync-flushed piece into `out`, sync tail removed.
fn compress_into(compress: &mut Compress, input: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let start = compress.total_in();
    loop {
        out.reserve(input.len() / 2 + 64);
        let consumed = (compress.total_in() - start) as usize;
        // Compressing into a Vec with spare room cannot fail.
        let _ = compress.compress_vec(&input[consumed..], out, FlushCompress::Sync);
        let consumed = (compress.total_in() - start) as usize;
        if consumed == input.len() && out.len() < out.capacity() && out.ends_with(&SYNC_TAIL) {
            break;
        }
    }
    out.truncate(out.len() - SYNC_TAIL.len());
}

/// Why inflating failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InflateError {
    /// The inflated message would pass the size limit.
    TooLarge,
    /// Not valid deflate data.
    Corrupt,
}

/// Decompresses incoming messages, streaming.
pub struct Inflater {
    bits: u8,
    /// Made at a message's first bytes, kept until [`Inflater::release`].
    decompress: Option<Box<Decompress>>,
    /// A message is half inflated.
    mid_message: bool,
    /// What the client sent last, when it keeps its context.
    window: Option<Window>,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater")
            .field("bits", &self.bits)
            .field("held", &self.decompress.is_some())
            .field("window", &self.window)
            .finish()
    }
}

impl Inflater {
    /// A decompressor for the client's negotiated window.
    pub fn new(params: &DeflateParams) -> Self {
        let bits = params.client_max_window_bits.max(9);
        let window = (!params.client_no_context_takeover).then(|| Window::new(bits));
        Self { bits, decompress: None, mid_message: false, window }
    }

    /// The decompressor of the message in progress, made (from the kept
    /// window) at its first bytes.
    fn decompressor(&mut self) -> Result<&mut Decompress, InflateError> {
        if self.decompress.is_none() {
            let mut fresh = Box::new(Decompress::new_with_window_bits(false, self.bits));
            if let Some(window) = self.window.as_ref().filter(|w| !w.bytes.is_empty()) {
                fresh.set_dictionary(&window.bytes).map_err(|_| InflateError::Corrupt)?;
            }
            self.decompress = Some(fresh);
        }
        Ok(self.decompress.as_mut().expect("made above"))
    }

    /// Inflates `input` (part of a compressed message) onto `out`, failing
    /// as soon as `out` passes `limit` bytes. The buffer grows by doubling
    /// but never past `limit` plus one chunk, so a small frame that would
    /// inflate to gigabytes (a decompression bomb) allocates no more than
    /// the limit before it is refused.
    pub fn inflate(&mut self, mut input: &[u8], out: &mut Vec<u8>, limit: u64) -> Result<(), InflateError> {
        let ceiling = usize::try_from(limit).unwrap_or(usize::MAX).saturating_add(INFLATE_CHUNK);
        self.mid_message = true;
        let decompress = self.decompressor()?;
        loop {
            if out.capacity() - out.len() < 1024 {
                // Double (from 4 KiB), but never past the limit plus a chunk.
                let grow = out.len().clamp(4096, INFLATE_CHUNK);
                let target = (out.len() + grow).min(ceiling).max(out.len() + 1);
                out.reserve_exact(target - out.len());
            }
            let (in_before, out_before) = (decompress.total_in(), decompress.total_out());
            let result = decompress.decompress_vec(input, out, FlushDecompress::Sync);
            let read = (decompress.total_in() - in_before) as usize;
            let written = (decompress.total_out() - out_before) as usize;
            input = &input[read..];
            result.map_err(|_| InflateError::Corrupt)?;
            if out.len() as u64 > limit {
                return Err(InflateError::TooLarge);
            }
            let output_room_left = out.len() < out.capacity();
            if input.is_empty() && output_room_left {
                return Ok(());
            }
            if read == 0 && written == 0 && output_room_left {
                // Input left that the stream will not take (data after a final block).
                return Err(InflateError::Corrupt);
            }
        }
    }

    /// Ends a message whose inflated bytes are all of `out`: inflates the
    /// sync tail, and keeps the message's last window when the client keeps
    /// its context (else resets the decompressor for the next message).
    pub fn finish_message(&mut self, out: &mut Vec<u8>, limit: u64) -> Result<(), InflateError> {
        let result = self.inflate(&SYNC_TAIL, out, limit);
        self.mid_message = false;
        if result.is_err() {
            self.decompress = None;
            return result;
        }
        match (&mut self.window, &mut self.decompress) {
            (Some(window), _) => window.push(out),
            (None, Some(decompress)) => decompress.reset(false),
            (None, None) => {}
        }
        Ok(())
    }

    /// Frees the decompressor between messages (the connection went quiet);
    /// the next message rebuilds it from the kept window.
    pub fn release(&mut self) {
        if !self.mid_message {
            self.decompress = None;
        }
    }

    /// True while the decompressor is held.
    pub fn holds_decompressor(&self) -> bool {
        self.decompress.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_keeps_the_last_bytes_of_everything_pushed() {
        let mut w = Window::new(9);
        w.push(&[1; 100]);
        w.push(&[2; 500]);
        assert_eq!(w.bytes.len(), 512);
        assert_eq!((&w.bytes[..12], w.bytes[12]), (&[1; 12][..], 2));
        w.push(&[3; 10]);
        assert_eq!((&w.bytes[..2], w.bytes[2], &w.bytes[502..]), (&[1; 2][..], 2, &[3; 10][..]));
        w.push(&[4; 2000]);
        assert_eq!(w.bytes, vec![4; 512]);
        assert_eq!(w.bytes.capacity(), 512);
    }
}
