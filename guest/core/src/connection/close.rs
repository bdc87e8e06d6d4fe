//! The closing handshake, aborts and protocol failures.

use super::*;

impl Connection {
    /// Whether our close frame has been queued (nothing may follow it).
    pub fn close_sent(&self) -> bool {
        self.close_sent
    }

    /// Starts the closing handshake with `code` and `reason` (cut to 123
    /// bytes at a character boundary). A code that may not appear on the
    /// wire (1005, 1006, 1015, out of range) sends a close frame without a
    /// code, which `close_code` then reports as 1005. Does nothing unless open.
    pub fn close(&mut self, now: u64, code: CloseCode, reason: &str) {
        if self.state() != State::Open {
            return;
        }
        let reason = truncate_reason(reason);
        if code.is_valid_on_wire() {
            self.send_close(Some(code), reason);
            self.close_code = code;
            self.close_reason = reason.to_string();
        } else {
            self.send_close(None, "");
            self.close_code = CloseCode::MISSING_STATUS_CODE;
            self.close_reason.clear();
        }
        self.records.push(Record::AboutToClose);
        self.enter(Phase::Closing { deadline: now.saturating_add(self.config.limits.close_timeout_ms) });
    }

    /// Drops the connection now: no close frame, queued bytes discarded.
    pub fn abort(&mut self) {
        self.out.clear();
        match self.state() {
            State::Handshaking => {
                self.phase = Phase::Closed;
                self.transport = Transport::Abort;
            }
            State::Open | State::Closing => self.finish(Transport::Abort),
            State::Closed => self.transport = Transport::Abort,
        }
    }

    /// Fails the connection (RFC 6455 §7.1.7): a close frame with the error's
    /// code and reason, then the transport closes. Further input is ignored.
    pub(super) fn fail(&mut self, error: ProtocolError) {
        let was_open = self.state() == State::Open;
        if !self.close_sent {
            self.send_close(Some(error.close_code()), error.reason());
        }
        self.close_code = error.close_code();
        self.close_reason = error.reason().to_string();
        self.message.reset();
        if was_open {
            self.pass_through_closing();
        }
        self.finish(Transport::Close);
    }

    /// The transport ended without a closing handshake.
    pub(super) fn lost(&mut self, transport: Transport) {
        if !self.close_sent {
            self.close_code = CloseCode::ABNORMAL_DISCONNECTION;
        }
        self.records.push(Record::Error(SocketError::RemoteHostClosed));
        self.finish(transport);
    }

    pub(super) fn finish(&mut self, transport: Transport) {
        self.pending_failure = None;
        self.transport = transport;
        self.enter(Phase::Closed);
        self.records.push(Record::Disconnected);
    }

    /// Our close frame is queued and the transport closes at once (a
    /// failure, or the answer to the peer's close): the app still sees the
    /// connection pass through Closing, as Qt's signals do.
    pub(super) fn pass_through_closing(&mut self) {
        self.records.push(Record::AboutToClose);
        self.records.push(Record::StateChanged(State::Closing));
    }

    /// Moves to `phase`, telling the app when its state changes.
    pub(super) fn enter(&mut self, phase: Phase) {
        let state = phase.state();
        let changed = self.state() != state;
        self.phase = phase;
        if changed {
            self.records.push(Record::StateChanged(state));
        }
    }

    pub(super) fn send_close(&mut self, code: Option<CloseCode>, reason: &str) {
        let mut payload = Vec::with_capacity(2 + reason.len());
        if let Some(code) = code {
            payload.extend_from_slice(&code.0.to_be_bytes());
            payload.extend_from_slice(truncate_reason(reason).as_bytes());
        }
        self.send_control(OpCode::Close, &payload);
        self.close_sent = true;
    }
}
