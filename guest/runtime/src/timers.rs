//! The sockets' deadlines in one heap, earliest first; stale entries are
//! skipped when they come up.

use crate::socket::Socket;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// `(deadline, socket)`, earliest first.
pub(crate) type Timers = BinaryHeap<Reverse<(u64, u32)>>;

/// Puts the socket's next deadline in the timer heap (stale entries are
/// skipped when they come up).
///
/// A deadline that moves later (the stall and keepalive clocks restart with
/// every input) keeps the entry already in the heap: it fires early, the
/// core ignores a timeout that is not due, and the socket is rescheduled
/// then. So input costs no heap push; only an earlier deadline adds one.
pub(crate) fn schedule(timers: &mut Timers, id: u32, s: &mut Socket) {
    match (s.conn.poll_timeout(), s.timer) {
        (Some(deadline), Some(queued)) if queued <= deadline => {}
        (Some(deadline), _) => {
            s.timer = Some(deadline);
            timers.push(Reverse((deadline, id)));
        }
        (None, _) => s.timer = None,
    }
}
