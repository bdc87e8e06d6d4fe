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
        let Some(deadline) = self.phase.deadline() else { return };
        if now < deadline {
            return;
        }
        match self.state() {
            // Qt closes TCP at the handshake deadline: no response, no signal.
            State::Handshaking => {
                self.phase = Phase::Closed;
                self.transport = Transport::Abort;
            }
            State::Closing => {
                self.records.push(Record::Error(SocketError::Timeout));
                self.finish(Transport::Abort);
            }
            // The only deadline while open: a frame stalled.
            State::Open => {
                self.records.push(Record::Error(SocketError::Timeout));
                self.close(now, CloseCode::GOING_AWAY, "Timeout when reading data from socket.");
            }
            State::Closed => {}
        }
    }

    /// The next deadline (handshake, stall, close or keepalive), if any.
    pub fn poll_timeout(&self) -> Option<u64> {
        let keepalive = match &self.phase {
            Phase::Open { keepalive, .. } => *keepalive,
            _ => Keepalive::default(),
        };
        [self.phase.deadline(), keepalive.ping_at, keepalive.pong_due, self.inflater_quiet_at]
            .into_iter()
            .flatten()
            .min()
    }

    /// Any input from an open connection restarts the keepalive clock.
    pub(super) fn heard_from_peer(&mut self, now: u64) {
        let interval = self.config.limits.keepalive_interval_ms;
        if let Phase::Open { keepalive, .. } = &mut self.phase {
            *keepalive = Keepalive { ping_at: interval.map(|i| now.saturating_add(i)), pong_due: None };
        }
    }

    /// Sends a keepalive ping or gives up on a silent peer, when due.
    pub(super) fn keepalive_tick(&mut self, now: u64) {
        let timeout = self.config.limits.keepalive_timeout_ms;
        let Phase::Open { keepalive, .. } = &mut self.phase else { return };
        if keepalive.pong_due.is_some_and(|due| now >= due) {
            *keepalive = Keepalive::default();
            self.records.push(Record::Error(SocketError::Timeout));
            self.close(now, CloseCode::GOING_AWAY, "No answer to a keepalive ping.");
        } else if keepalive.ping_at.is_some_and(|at| now >= at) {
            *keepalive = Keepalive { ping_at: None, pong_due: Some(now.saturating_add(timeout)) };
            self.send_control(OpCode::Ping, KEEPALIVE_PAYLOAD);
        }
    }
}
