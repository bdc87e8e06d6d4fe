//! Deadlines: the handshake, the close, a stalled frame, keepalive pings,
//! and the quiet decompressor.

use super::*;

impl Connection {
    /// Acts on a deadline from [`Connection::poll_timeout`] that has passed.
    pub fn handle_timeout(&mut self, now: u64) {
        self.keepalive_tick(now);
        if self.inflater_quiet_at.is_some_and(|at| now >= at) {
            self.inflater_quiet_at = None;
            if let Some(deflate) = &mut self.deflate {
                deflate.inflater.release();
            }
        }
        let Some(deadline) = self.deadline else { return };
        if now < deadline {
            return;
        }
        self.deadline = None;
        match self.state {
            // Qt closes TCP at the handshake deadline: no response, no signal.
            State::Handshaking => {
                self.state = State::Closed;
                self.transport = Transport::Abort;
            }
            State::Closing => {
                self.records.push(Record::Error(SocketError::Timeout));
                self.finish(Transport::Abort);
            }
            // Only the stall deadline is set while open.
            State::Open => {
                self.records.push(Record::Error(SocketError::Timeout));
                self.close(now, CloseCode::GOING_AWAY, "Timeout when reading data from socket.");
            }
            State::Closed => {}
        }
    }

    /// The next deadline (handshake, stall, close or keepalive), if any.
    pub fn poll_timeout(&self) -> Option<u64> {
        [self.deadline, self.keepalive_at, self.keepalive_due, self.inflater_quiet_at].into_iter().flatten().min()
    }

    /// Any input from an open connection restarts the keepalive clock.
    pub(super) fn heard_from_peer(&mut self, now: u64) {
        self.keepalive_due = None;
        self.keepalive_at = match (self.state, self.config.limits.keepalive_interval_ms) {
            (State::Open, Some(interval)) => Some(now.saturating_add(interval)),
            _ => None,
        };
    }

    /// Sends a keepalive ping or gives up on a silent peer, when due.
    pub(super) fn keepalive_tick(&mut self, now: u64) {
        if self.state != State::Open {
            self.keepalive_at = None;
            self.keepalive_due = None;
            return;
        }
        if self.keepalive_due.is_some_and(|due| now >= due) {
            self.keepalive_due = None;
            self.keepalive_at = None;
            self.records.push(Record::Error(SocketError::Timeout));
            self.close(now, CloseCode::GOING_AWAY, "No answer to a keepalive ping.");
        } else if self.keepalive_at.is_some_and(|at| now >= at) {
            self.keepalive_at = None;
            self.keepalive_due = Some(now.saturating_add(self.config.limits.keepalive_timeout_ms));
            self.send_control(OpCode::Ping, KEEPALIVE_PAYLOAD);
        }
    }
}
