//! The byte pipe between the event loop and the `h2` state machine. `h2`
//! reads and writes through tokio's `AsyncRead`/`AsyncWrite`; here those
//! are two buffers the event loop fills (the plaintext its socket and TLS
//! session produced) and empties (what goes out through them). Nothing in
//! it waits: an empty inbound buffer is `Pending`, and the event loop polls
//! the session again whenever it has put something in or taken something
//! out, so no waker is needed.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Inbound buffer kept between bursts.
const KEPT_CAPACITY: usize = 16 * 1024;

#[derive(Default)]
pub struct Pipe {
    /// Plaintext from the peer, not yet read by `h2`.
    pub inbound: Vec<u8>,
    /// Where `h2` has read up to in `inbound`.
    read_at: usize,
    /// The peer sends nothing more.
    pub inbound_closed: bool,
    /// What `h2` wrote, for the socket.
    pub outbound: Vec<u8>,
    /// How much more `outbound` may take before `h2`'s writes wait (the
    /// socket's backpressure, set by the event loop before each poll).
    pub room: usize,
    /// A write waited for room (the event loop runs the session again
    /// once the socket has taken what it wrote).
    pub blocked: bool,
}

impl Pipe {
    /// Adds plaintext from the peer.
    pub fn push_inbound(&mut self, bytes: &[u8]) {
        if self.read_at == self.inbound.len() {
            self.inbound.clear();
            self.read_at = 0;
            if self.inbound.capacity() > KEPT_CAPACITY {
                // A burst's buffer is not kept for the connection's life.
                self.inbound.shrink_to(KEPT_CAPACITY);
            }
        }
        self.inbound.extend_from_slice(bytes);
    }
}

/// `h2`'s end of the pipe.
#[derive(Clone, Default)]
pub struct PipeIo(Arc<Mutex<Pipe>>);

impl PipeIo {
    /// The event loop's end (never contended: one thread uses both ends).
    pub fn lock(&self) -> MutexGuard<'_, Pipe> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl AsyncRead for PipeIo {
    fn poll_read(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let mut pipe = self.lock();
        let available = &pipe.inbound[pipe.read_at..];
        if available.is_empty() {
            // An empty read is the end of the stream.
            return if pipe.inbound_closed { Poll::Ready(Ok(())) } else { Poll::Pending };
        }
        let n = available.len().min(buf.remaining());
        buf.put_slice(&available[..n]);
        pipe.read_at += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for PipeIo {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        let mut pipe = self.lock();
        if pipe.room == 0 {
            pipe.blocked = true;
            return Poll::Pending;
        }
        let n = bytes.len().min(pipe.room);
        pipe.outbound.extend_from_slice(&bytes[..n]);
        pipe.room -= n;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
