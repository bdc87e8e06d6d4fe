//! Input: the request head, then frames, messages and control frames;
//! the end of input and resets.

use super::*;

impl Connection {
    /// Handles bytes read from the peer at `now`.
    pub fn handle_input(&mut self, now: u64, mut input: &[u8]) {
        if let Phase::Handshaking { head, .. } = &mut self.phase {
            let max_head = self.config.limits.max_request_head;
            if self.health_check.is_some() {
                // A health check's answer closes the connection: nothing more is read.
                return;
            }
            if self.request.is_some() {
                // Awaiting the upgrade decision: keep early frames, within reason.
                if head.len() + input.len() > max_head {
                    return self.abort();
                }
                return head.extend_from_slice(input);
            }
            head.extend_from_slice(input);
            match parse_request(head, max_head) {
                Ok(None) => {}
                Ok(Some((request, head_len))) => {
                    head.drain(..head_len);
                    self.request = Some(request);
                    self.records.push(Record::UpgradeRequested);
                }
                Err(error) => {
                    let path = self.config.health_check_path.as_deref();
                    let page = self.config.page.as_ref();
                    if let Some(head_only) = path.and_then(|p| plain_get(head, p)) {
                        self.health_check = Some(head_only);
                        self.records.push(Record::HealthCheck);
                    } else if let Some((page, head_only)) = page.and_then(|p| Some((p, plain_get(head, &p.path)?))) {
                        write_page_response(&mut self.out, page, head_only, &self.config.server_name);
                        self.phase = Phase::Closed;
                        self.transport = Transport::Close;
                    } else {
                        let (status, phrase) = error.status();
                        self.refuse(status, phrase, error.message(), error.extra_header());
                        self.records.push(Record::HandshakeRefused(error));
                    }
                }
            }
            return;
        }
        if matches!(self.state(), State::Open | State::Closing) && self.pending_failure.is_none() {
            self.handle_frames(now, std::mem::take(&mut input));
            self.watch_for_stall(now);
            self.heard_from_peer(now);
        }
    }

    /// While open, a frame that has started must keep arriving: the stall
    /// deadline restarts with every input inside a frame and is cleared
    /// between frames (an idle connection is never timed out, as in Qt).
    pub(super) fn watch_for_stall(&mut self, now: u64) {
        let stalled = match self.config.limits.stalled_frame_timeout_ms {
            Some(timeout) if !self.decoder.is_idle() => Some(now.saturating_add(timeout)),
            _ => None,
        };
        if let Phase::Open { stall_deadline, .. } = &mut self.phase {
            *stall_deadline = stalled;
        }
    }

    /// Tells the connection the app has seen the events of the last input
    /// and queued its answers. A protocol error that came in the same input
    /// as earlier messages takes effect now, so the answers to those messages
    /// go out before the close frame, as they would from a server that
    /// handles one frame at a time (Autobahn 3.2, 4.1.3, 5.15 check this).
    pub fn end_round(&mut self) {
        self.delivered_this_round = 0;
        if let Some(error) = self.pending_failure.take() {
            self.fail(error);
        }
    }

    /// True when a protocol error waits for [`Connection::end_round`].
    pub fn has_pending_failure(&self) -> bool {
        self.pending_failure.is_some()
    }

    /// The peer closed its sending side (TCP FIN).
    pub fn handle_eof(&mut self, _now: u64) {
        match self.state() {
            State::Handshaking => {
                self.phase = Phase::Closed;
                self.transport = Transport::Close;
            }
            State::Open | State::Closing => {
                self.records.push(Record::ReadChannelFinished);
                self.lost(Transport::Close);
            }
            State::Closed => {}
        }
    }

    /// The transport is gone (reset or write error); nothing more can be sent.
    pub fn handle_reset(&mut self, _now: u64) {
        match self.state() {
            State::Handshaking => self.phase = Phase::Closed,
            State::Open | State::Closing => self.lost(Transport::Abort),
            State::Closed => {}
        }
        self.transport = Transport::Abort;
        self.out.clear();
    }

    pub(super) fn handle_frames(&mut self, now: u64, mut input: &[u8]) {
        while matches!(self.state(), State::Open | State::Closing) {
            let max_frame = self.config.limits.max_frame_size;
            let allow_rsv1 = self.deflate.is_some();
            let result = match self.decoder.decode(&mut input, allow_rsv1, max_frame) {
                Ok(Some(Chunk::Header(header))) => self.on_header(header),
                Ok(Some(Chunk::Payload { masked, offset, last })) => self.on_payload(now, masked, offset, last),
                Ok(None) => return,
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                if self.delivered_this_round > 0 && self.state() == State::Open {
                    // Further input is ignored either way; only the close waits.
                    self.pending_failure = Some(e);
                } else {
                    self.fail(e);
                }
                return;
            }
        }
    }

    pub(super) fn on_header(&mut self, header: FrameHeader) -> Result<(), ProtocolError> {
        let max_message = self.config.limits.max_message_size;
        // RSV1 means "compressed" and belongs on a message's first frame only.
        if header.rsv1 && !matches!(header.opcode, OpCode::Text | OpCode::Binary) {
            return Err(ProtocolError::ReservedBitsSet);
        }
        match header.opcode {
            OpCode::Text | OpCode::Binary => {
                if self.message.in_progress().is_some() {
                    return Err(ProtocolError::ExpectedContinuation);
                }
                self.compressed = header.rsv1;
                // A compressed message is measured as it inflates.
                if !self.compressed && header.payload_len > max_message {
                    return Err(ProtocolError::MessageTooLarge);
                }
                let kind = if header.opcode == OpCode::Text { MessageKind::Text } else { MessageKind::Binary };
                self.message.begin(kind);
            }
            OpCode::Continuation => {
                if self.message.in_progress().is_none() {
                    return Err(ProtocolError::UnexpectedContinuation);
                }
                if !self.compressed && self.message.len() as u64 + header.payload_len > max_message {
                    return Err(ProtocolError::MessageTooLarge);
                }
            }
            OpCode::Close | OpCode::Ping | OpCode::Pong => self.control.clear(),
        }
        self.frame = Some(header);
        Ok(())
    }

    pub(super) fn on_payload(
        &mut self,
        now: u64,
        masked: &[u8],
        offset: usize,
        last: bool,
    ) -> Result<(), ProtocolError> {
        let header = self.frame.expect("a payload follows a header");
        if header.opcode.is_control() {
            unmask_into(&mut self.control, masked, header.mask, offset);
            if last {
                self.frame = None;
                self.on_control(now, header.opcode)?;
            }
            return Ok(());
        }
        let from = self.message.len();
        let limit = self.config.limits.max_message_size;
        match (&mut self.deflate, self.compressed) {
            (Some(deflate), true) => {
                self.scratch.clear();
                unmask_into(&mut self.scratch, masked, header.mask, offset);
                let inflater = &mut deflate.inflater;
                inflater.inflate(&self.scratch, self.message.buf_mut(), limit).map_err(inflate_error)?;
                if last && header.fin {
                    inflater.finish_message(self.message.buf_mut(), limit).map_err(inflate_error)?;
                    self.inflater_quiet_at = Some(now.saturating_add(INFLATER_QUIET_MS));
                }
            }
            _ => {
                if offset == 0 && !last {
                    // The frame's first bytes, and more to come: make room
                    // for the rest now rather than growing (and copying)
                    // read by read.
                    self.message.reserve_frame(header.payload_len, masked.len());
                }
                unmask_into(self.message.buf_mut(), masked, header.mask, offset)
            }
        }
        self.message.validate_from(from)?;
        if !last {
            return Ok(());
        }
        self.frame = None;
        let kind = self.message.in_progress().expect("a data frame belongs to a message");
        if self.config.frame_events {
            let range = push_arena(&mut self.arena, self.message.frame_bytes());
            self.records.push(Record::Frame { kind, range, is_last: header.fin });
        }
        if header.fin {
            let (kind, bytes) = self.message.finish_into(&mut self.arena)?;
            self.records.push(Record::Message { kind, bytes });
            self.delivered_this_round += 1;
            self.message.reset();
            if self.compressed {
                // Between messages a compressed connection keeps only its windows.
                self.scratch = Vec::new();
            }
        }
        Ok(())
    }

    pub(super) fn on_control(&mut self, now: u64, opcode: OpCode) -> Result<(), ProtocolError> {
        match opcode {
            OpCode::Ping => {
                if self.state() == State::Open {
                    let payload = std::mem::take(&mut self.control);
                    self.send_control(OpCode::Pong, &payload);
                    self.control = payload;
                }
            }
            // The answer to our own keepalive is not the app's business.
            OpCode::Pong if self.control == KEEPALIVE_PAYLOAD => {}
            OpCode::Pong => {
                let range = push_arena(&mut self.arena, &self.control);
                let elapsed_ms = now.saturating_sub(self.last_ping);
                self.records.push(Record::Pong { elapsed_ms, range });
            }
            OpCode::Close => self.on_close()?,
            _ => unreachable!("only control opcodes reach on_control"),
        }
        Ok(())
    }

    pub(super) fn on_close(&mut self) -> Result<(), ProtocolError> {
        let (code, reason) = match self.control.len() {
            0 => (None, String::new()),
            1 => return Err(ProtocolError::CloseFrameTooShort),
            _ => {
                let code = CloseCode(u16::from_be_bytes([self.control[0], self.control[1]]));
                if !code.is_valid_on_wire() {
                    return Err(ProtocolError::InvalidCloseCode);
                }
                let reason = std::str::from_utf8(&self.control[2..]).map_err(|_| ProtocolError::InvalidUtf8)?;
                (Some(code), reason.to_string())
            }
        };
        if self.state() == State::Open {
            // Echo the peer's code and reason; an empty close is answered with 1000 (Qt).
            let reply = code.unwrap_or(CloseCode::NORMAL);
            self.send_close(Some(reply), &reason);
            self.close_code = reply;
            self.close_reason = reason;
            self.pass_through_closing();
        }
        self.finish(Transport::Close);
        // The peer's close frame is the last thing it sends (RFC 6455 §5.5.1):
        // its read channel is finished, reported after `disconnected` as Qt does.
        self.records.push(Record::ReadChannelFinished);
        Ok(())
    }
}

pub(super) fn inflate_error(e: InflateError) -> ProtocolError {
    match e {
        InflateError::TooLarge => ProtocolError::MessageTooLarge,
        InflateError::Corrupt => ProtocolError::InvalidCompressedData,
    }
}
