//! A connection's output that the socket has not taken yet, and the
//! backpressure it implies.

use crate::{WRITE_HARD_CAP, WRITE_LIMIT};
use std::borrow::Cow;

/// A connection's pending output: `pending[written..]` is what the socket
/// has not taken yet.
#[derive(Debug, Default)]
pub struct Output {
    pending: Vec<u8>,
    written: usize,
    /// When output last made progress (or became pending).
    progress_ms: u64,
    /// Unwritten output past which the connection is backed up (0: [`WRITE_LIMIT`]).
    limit: usize,
    backed_up: bool,
}

/// The output passed [`WRITE_HARD_CAP`]: the peer does not read; drop the
/// connection rather than grow without bound.
#[derive(Debug, PartialEq, Eq)]
pub struct OverCap;

/// A change of backpressure to report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pressure {
    /// Past the write limit: stop reading the connection.
    BackedUp,
    /// Down to half the limit: read it again.
    Drained,
}

impl Output {
    /// Bytes waiting for the socket.
    pub fn unwritten(&self) -> usize {
        self.pending.len() - self.written
    }

    /// What waits, in order.
    pub fn waiting(&self) -> &[u8] {
        &self.pending[self.written..]
    }

    /// Whether the output is past its limit (not read meanwhile).
    pub fn backed_up(&self) -> bool {
        self.backed_up
    }

    /// Sets the write limit (0: the default [`WRITE_LIMIT`]).
    pub fn set_limit(&mut self, bytes: usize) {
        self.limit = bytes;
    }

    /// The write limit in force.
    pub fn limit(&self) -> usize {
        match self.limit {
            0 => WRITE_LIMIT,
            limit => limit,
        }
    }

    /// Keeps what the socket did not take of `bytes` (`done` of them went
    /// straight out, which only happens when nothing was waiting). An owned
    /// buffer arriving when nothing waits becomes the pending output as it
    /// is, its written head skipped: no copy. Of borrowed bytes only the
    /// rest is copied.
    pub fn keep(&mut self, bytes: Cow<'_, [u8]>, done: usize, now_ms: u64) -> Result<(), OverCap> {
        if done == bytes.len() {
            return Ok(());
        }
        if self.unwritten() + bytes.len() - done > WRITE_HARD_CAP {
            return Err(OverCap);
        }
        if self.unwritten() == 0 {
            (self.pending, self.written) = match bytes {
                Cow::Owned(bytes) => (bytes, done),
                Cow::Borrowed(bytes) => (bytes[done..].to_vec(), 0),
            };
            self.progress_ms = now_ms;
        } else {
            self.compact();
            self.pending.extend_from_slice(&bytes[done..]);
        }
        Ok(())
    }

    /// The socket took `n` more bytes of [`Output::waiting`].
    pub fn wrote(&mut self, n: usize, now_ms: u64) {
        if n == 0 {
            return;
        }
        self.written += n;
        self.progress_ms = now_ms;
        if self.unwritten() == 0 {
            // Freed, not kept: the next rest to wait arrives in a buffer of
            // its own (see `keep`), so a kept one would never be reused.
            self.pending = Vec::new();
            self.written = 0;
        } else {
            self.compact();
        }
    }

    /// Drops the written head once it is most of the buffer, so the buffer
    /// holds mostly what is not written.
    fn compact(&mut self) {
        if self.written > self.pending.len() / 2 {
            self.pending.drain(..self.written);
            self.written = 0;
        }
    }

    /// Backpressure with hysteresis: backed up past the limit, drained at
    /// half of it; returns a change to report.
    pub fn pressure(&mut self) -> Option<Pressure> {
        let (unwritten, limit) = (self.unwritten(), self.limit());
        if unwritten > limit && !self.backed_up {
            self.backed_up = true;
            Some(Pressure::BackedUp)
        } else if unwritten <= limit / 2 && self.backed_up {
            self.backed_up = false;
            Some(Pressure::Drained)
        } else {
            None
        }
    }

    /// Whether output waits and has made no progress for `timeout_ms`.
    pub fn stalled(&self, now_ms: u64, timeout_ms: u64) -> bool {
        self.unwritten() > 0 && now_ms.saturating_sub(self.progress_ms) >= timeout_ms
    }

    /// When [`Output::stalled`] would turn true, if output waits.
    pub fn stall_deadline(&self, timeout_ms: u64) -> Option<u64> {
        (self.unwritten() > 0).then(|| self.progress_ms.saturating_add(timeout_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_socket_took_at_once_is_not_kept() {
        let mut out = Output::default();
        out.keep(Cow::Borrowed(b"hello"), 5, 0).unwrap();
        assert_eq!(out.unwritten(), 0);
        out.keep(Cow::Borrowed(b"hello"), 2, 0).unwrap();
        assert_eq!(out.waiting(), b"llo");
        assert_eq!(out.pending.len(), 3, "of borrowed bytes only the rest is copied");
    }

    #[test]
    fn later_output_queues_behind_and_drains_in_order() {
        let mut out = Output::default();
        out.keep(Cow::Owned(b"abcdef".to_vec()), 1, 0).unwrap();
        out.keep(Cow::Borrowed(b"gh"), 0, 5).unwrap();
        assert_eq!(out.waiting(), b"bcdefgh");
        out.wrote(4, 10);
        assert_eq!(out.waiting(), b"fgh");
        out.wrote(3, 11);
        assert_eq!(out.unwritten(), 0);
    }

    #[test]
    fn backpressure_turns_on_past_the_limit_and_off_at_half() {
        let mut out = Output::default();
        out.set_limit(100);
        out.keep(Cow::Owned(vec![0; 101]), 0, 0).unwrap();
        assert_eq!(out.pressure(), Some(Pressure::BackedUp));
        assert_eq!(out.pressure(), None, "reported once");
        out.wrote(50, 1);
        assert_eq!(out.pressure(), None, "51 left: above half the limit");
        out.wrote(1, 2);
        assert_eq!(out.pressure(), Some(Pressure::Drained));
        assert!(!out.backed_up());
    }

    #[test]
    fn past_the_hard_cap_the_output_is_refused() {
        let mut out = Output::default();
        out.keep(Cow::Owned(vec![0; WRITE_HARD_CAP]), 0, 0).unwrap();
        assert_eq!(out.keep(Cow::Borrowed(b"x"), 0, 0), Err(OverCap));
    }

    #[test]
    fn output_without_progress_stalls_at_the_timeout() {
        let mut out = Output::default();
        assert!(!out.stalled(1_000_000, 10), "nothing waits: never stalled");
        out.keep(Cow::Borrowed(b"abc"), 0, 100).unwrap();
        assert_eq!(out.stall_deadline(30), Some(130));
        assert!(!out.stalled(129, 30));
        out.wrote(1, 120);
        assert!(!out.stalled(149, 30), "progress restarts the clock");
        assert!(out.stalled(150, 30));
    }

    #[test]
    fn read_shares_respect_the_apps_limit_within_the_connection_share() {
        assert_eq!(crate::read_share(0), crate::CONN_SHARE);
        assert_eq!(crate::read_share(100), 100);
        assert_eq!(crate::read_share(usize::MAX), crate::CONN_SHARE);
    }
}
