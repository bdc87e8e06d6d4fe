//! The transport policy, written once: the wsbox host's event loop and the
//! component's WASI binding both move bytes by these rules, so a guest sees
//! the same fairness and backpressure whichever transport feeds it.
//!
//! Sans-io: the caller does the reads and writes and passes the time in
//! (milliseconds on its monotonic clock); this crate keeps the numbers and
//! the state they imply.
//!
//! - Reading: a turn gathers at most [`TURN_CAP`] bytes, each connection at
//!   most its [`read_share`] of them, in reads of at most [`READ_CHUNK`].
//! - Writing: what the socket does not take at once waits in [`Output`];
//!   past the connection's write limit it is not read and is reported
//!   backed up, until its output drains to half the limit; past
//!   [`WRITE_HARD_CAP`] or [`WRITE_TIMEOUT_MS`] without progress the peer is
//!   not reading and the connection is dropped.
//! - Closing: once its output is written our side shuts down and the
//!   connection lingers up to [`LINGER_MS`], draining the peer, so that
//!   unread input does not turn the close into a reset.

mod output;

pub use output::{Output, OverCap, Pressure};

/// Input per turn at most (keeps a turn cache-sized).
pub const TURN_CAP: usize = 1024 * 1024;
/// One connection's share of a turn (fairness: connections the full turn
/// did not reach are read first next turn).
pub const CONN_SHARE: usize = 256 * 1024;
/// Largest single read.
pub const READ_CHUNK: usize = 64 * 1024;
/// Default unwritten output past which a connection is not read (the
/// guest's default send-buffer cap is the same 4 MiB).
pub const WRITE_LIMIT: usize = wsbox_defaults::MAX_SEND_BUFFER as usize;
/// Unwritten output past which the connection is dropped: guards against a
/// guest that ignores its own send-buffer cap (at most 8 MiB, twice of
/// which plus a 64 MiB message stays under this).
pub const WRITE_HARD_CAP: usize = 80 * 1024 * 1024;
/// Output without progress for this long: the peer stopped reading.
pub const WRITE_TIMEOUT_MS: u64 = 30_000;
/// How long a closing connection may take to write its output, and then
/// how long it lingers draining the peer.
pub const LINGER_MS: u64 = 2_000;
/// Open connections at most by default; past it new ones wait in the backlog.
pub const MAX_CONNECTIONS: usize = 10_000;
/// The listen backlog asked for.
pub const BACKLOG: u32 = 1024;

/// The most a connection may read this turn: its own limit (Qt's
/// `readBufferSize`, 0 for none) within [`CONN_SHARE`].
pub fn read_share(read_limit: usize) -> usize {
    match read_limit {
        0 => CONN_SHARE,
        limit => limit.min(CONN_SHARE),
    }
}
