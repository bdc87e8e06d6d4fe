//! One server-side WebSocket connection as a deterministic state machine.

use crate::close::{CloseCode, truncate_reason};
use crate::deflate::{DeflateConfig, DeflateParams, Deflater, InflateError, Inflater, negotiate};
use crate::error::ProtocolError;
use crate::frame::{Chunk, Decoder, FrameHeader, OpCode, encode_header, unmask_into};
use crate::handshake::{
    HandshakeError, Request, accept_key, choose_subprotocol, parse_request, write_error_response,
    write_upgrade_response,
};
use crate::limits::Limits;
use crate::message::{Assembler, Delivered, MessageKind, RETAINED_CAPACITY};
use std::ops::Range;
use std::sync::Arc;

/// Output buffer a connection keeps between bursts; more is freed once taken.
const IDLE_OUT_CAPACITY: usize = 64 * 1024;

/// The payload of the server's own keepalive pings (their pongs are not
/// reported to the app).
const KEEPALIVE_PAYLOAD: &[u8] = b"wsbox-keepalive";

/// What a server tells each of its connections: the limits and the
/// handshake policy.
#[derive(Clone, Debug)]
pub struct Config {
    /// Sizes and timeouts.
    pub limits: Limits,
    /// The `Server:` response header; omitted when empty (Qt's `serverName`).
    pub server_name: String,
    /// Subprotocols the server accepts (Qt's `supportedSubprotocols`).
    pub subprotocols: Vec<String>,
    /// Whether to report each data frame (Qt's `textFrameReceived` /
    /// `binaryFrameReceived`). Off by default: signals nobody asked for cost
    /// nothing.
    pub frame_events: bool,
    /// Whether the transport is TLS (`wss://` in request URLs).
    pub secure: bool,
    /// permessage-deflate (RFC 7692) when a client offers it; `None` declines
    /// every offer. On by default.
    pub deflate: Option<DeflateConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            server_name: String::new(),
            subprotocols: Vec::new(),
            frame_events: false,
            secure: false,
            deflate: Some(DeflateConfig::default()),
        }
    }
}

/// The state of a connection (RFC 6455 §4, §5.5.1, §7).
///
/// ```text
///  Handshaking ──101──▶ Open ──close() / peer close / error──▶ Closing ──▶ Closed
///       │                 │                                      ▲
///       └─refused/timeout─┴──────────── EOF, abort ──────────────┴────────▶ Closed
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Reading the upgrade request. Next: `Open` (101 sent) or `Closed`
    /// (refused, timed out, or the peer left). Not visible to the app.
    Handshaking,
    /// Upgraded; messages flow both ways (Qt: `ConnectedState`). Next:
    /// `Closing` when we send a close frame, `Closed` when the peer's close
    /// is answered or the transport ends.
    Open,
    /// Our close frame is sent and the peer's is awaited; data frames that
    /// arrive meanwhile are still delivered (Qt: `ClosingState`). Next:
    /// `Closed` when the peer's close arrives, the close timeout passes, or
    /// the transport ends.
    Closing,
    /// Done (Qt: `UnconnectedState`). The binding closes the transport as
    /// [`Connection::transport`] says.
    Closed,
}

/// What the binding must do with the transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Keep it open.
    Open,
    /// Write what is queued, then close it (the server closes TCP first,
    /// RFC 6455 §7.1.1).
    Close,
    /// Drop it now; queued bytes are discarded.
    Abort,
}

/// Transport errors the app is told about (Qt's `errorOccurred`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketError {
    /// The peer closed or reset TCP without a closing handshake.
    RemoteHostClosed,
    /// The peer did not answer our close frame in time.
    Timeout,
}

/// Something the app may want to know, in the order it happened (Qt's
/// signals). Payloads borrow the connection's buffers until the next call.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A well-formed upgrade request arrived ([`Connection::request`]); answer
    /// it with [`Connection::accept_upgrade`] or [`Connection::refuse_upgrade`]
    /// (Qt's `originAuthenticationRequired` moment). Bytes the client sends
    /// meanwhile are kept.
    UpgradeRequested,
    /// The 101 response is queued: the connection is open (Qt queues it and
    /// emits `newConnection`).
    Upgraded,
    /// The upgrade request was malformed and answered with an HTTP error
    /// (Qt's `serverError`).
    HandshakeRefused(HandshakeError),
    /// A text data frame (UTF-8, up to the last complete code point), if frame
    /// events are on.
    TextFrame {
        /// The frame's text bytes.
        frame: &'a [u8],
        /// FIN: the message's last frame.
        is_last: bool,
    },
    /// A binary data frame, if frame events are on.
    BinaryFrame {
        /// The frame's bytes.
        frame: &'a [u8],
        /// FIN: the message's last frame.
        is_last: bool,
    },
    /// A complete text message (valid UTF-8).
    TextMessage(&'a [u8]),
    /// A complete binary message.
    BinaryMessage(&'a [u8]),
    /// A pong, with the milliseconds since our last ping (or since the upgrade).
    Pong {
        /// Milliseconds since the last `ping` (Qt's `elapsedTime`).
        elapsed_ms: u64,
        /// The pong's payload.
        payload: &'a [u8],
    },
    /// The state changed (only states the app can see: Open, Closing, Closed).
    StateChanged(State),
    /// Our close frame was queued (Qt's `aboutToClose`, emitted once).
    AboutToClose,
    /// The peer will send nothing more (Qt's `readChannelFinished`).
    ReadChannelFinished,
    /// The connection is over (Qt's `disconnected`).
    Disconnected,
    /// A transport error (Qt's `errorOccurred`).
    Error(SocketError),
}

/// An event as stored: payloads are ranges into the connection's arena (a
/// large message has a buffer of its own).
#[derive(Debug)]
enum Record {
    UpgradeRequested,
    Upgraded,
    HandshakeRefused(HandshakeError),
    Frame { kind: MessageKind, range: Range<usize>, is_last: bool },
    Message { kind: MessageKind, bytes: Delivered },
    Pong { elapsed_ms: u64, range: Range<usize> },
    StateChanged(State),
    AboutToClose,
    ReadChannelFinished,
    Disconnected,
    Error(SocketError),
}

impl Record {
    /// The event this record stands for, its payload borrowed from `arena`.
    fn event<'a>(&'a self, arena: &'a [u8]) -> Event<'a> {
        match self {
            Record::UpgradeRequested => Event::UpgradeRequested,
            Record::Upgraded => Event::Upgraded,
            Record::HandshakeRefused(e) => Event::HandshakeRefused(*e),
            Record::Frame { kind, range, is_last } => {
                let (frame, is_last) = (&arena[range.clone()], *is_last);
                match kind {
                    MessageKind::Text => Event::TextFrame { frame, is_last },
                    MessageKind::Binary => Event::BinaryFrame { frame, is_last },
                }
            }
            Record::Message { kind, bytes } => {
                let bytes = match bytes {
                    Delivered::InArena(range) => &arena[range.clone()],
                    Delivered::Alone(buf) => buf.as_slice(),
                };
                match kind {
                    MessageKind::Text => Event::TextMessage(bytes),
                    MessageKind::Binary => Event::BinaryMessage(bytes),
                }
            }
            Record::Pong { elapsed_ms, range } => {
                Event::Pong { elapsed_ms: *elapsed_ms, payload: &arena[range.clone()] }
            }
            Record::StateChanged(s) => Event::StateChanged(*s),
            Record::AboutToClose => Event::AboutToClose,
            Record::ReadChannelFinished => Event::ReadChannelFinished,
            Record::Disconnected => Event::Disconnected,
            Record::Error(e) => Event::Error(*e),
        }
    }
}

/// One server-side connection: the opening handshake, frames, messages and
/// the closing handshake, with no I/O and no clock.
///
/// Methods come in a fixed order, as in quinn-proto:
/// - getters (`state`, `request`, `close_code`, …);
/// - input: [`Connection::handle_input`] with bytes read from the peer,
///   [`Connection::handle_eof`] / [`Connection::handle_reset`] when the
///   transport ends, [`Connection::handle_timeout`] when
///   [`Connection::poll_timeout`]'s deadline has passed;
/// - commands from the app: [`Connection::send`], [`Connection::ping`],
///   [`Connection::close`], [`Connection::abort`];
/// - output, in this order after any input or command:
///   [`Connection::drain_events`], [`Connection::take_transmit`],
///   [`Connection::transport`], [`Connection::poll_timeout`].
///
/// Protocol duties are returned as data: a ping queues a pong, a peer's close
/// queues the echoed close and asks for the transport to close, a protocol
/// error queues a close frame with the matching code. Time is milliseconds on
/// any monotonic clock, passed in.
#[derive(Debug)]
pub struct Connection {
    config: Arc<Config>,
    state: State,
    transport: Transport,
    /// The request head while handshaking.
    head: Vec<u8>,
    request: Option<Request>,
    subprotocol: Option<String>,
    decoder: Decoder,
    /// The header of the frame whose payload is being read.
    frame: Option<FrameHeader>,
    message: Assembler,
    control: Vec<u8>,
    out: Vec<u8>,
    records: Vec<Record>,
    arena: Vec<u8>,
    close_code: CloseCode,
    close_reason: String,
    close_sent: bool,
    deadline: Option<u64>,
    /// When to send a keepalive ping (no input since `interval`).
    keepalive_at: Option<u64>,
    /// When an unanswered keepalive ping closes the connection.
    keepalive_due: Option<u64>,
    last_ping: u64,
    /// The negotiated permessage-deflate state, if any.
    deflate: Option<Deflate>,
    /// The message being received is compressed (RSV1 on its first frame).
    compressed: bool,
    /// [`Connection::decline_extensions`] was called.
    extensions_declined: bool,
    /// When the decompressor, held since the last compressed message, is
    /// freed if no other came ([`INFLATER_QUIET_MS`]).
    inflater_quiet_at: Option<u64>,
    /// Unmasked compressed bytes on their way to the inflater; compressed
    /// bytes on their way out.
    scratch: Vec<u8>,
    /// Messages delivered since the app last had a chance to answer.
    delivered_this_round: usize,
    /// A protocol error met after messages of the same round: it takes
    /// effect at [`Connection::end_round`], after the app's answers.
    pending_failure: Option<ProtocolError>,
}

impl Connection {
    /// A connection whose TCP (or TLS) stream was just accepted at `now`.
    pub fn new(config: Arc<Config>, now: u64) -> Self {
        let deadline = config.limits.handshake_timeout_ms.map(|t| now.saturating_add(t));
        Self {
            config,
            state: State::Handshaking,
            transport: Transport::Open,
            head: Vec::new(),
            request: None,
            subprotocol: None,
            decoder: Decoder::default(),
            frame: None,
            message: Assembler::default(),
            control: Vec::new(),
            out: Vec::new(),
            records: Vec::new(),
            arena: Vec::new(),
            close_code: CloseCode::NORMAL,
            close_reason: String::new(),
            close_sent: false,
            deadline,
            keepalive_at: None,
            keepalive_due: None,
            last_ping: now,
            delivered_this_round: 0,
            pending_failure: None,
            deflate: None,
            compressed: false,
            extensions_declined: false,
            inflater_quiet_at: None,
            scratch: Vec::new(),
        }
    }

    // ---- getters ----

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The upgrade request, once it has been read.
    pub fn request(&self) -> Option<&Request> {
        self.request.as_ref()
    }

    /// The negotiated subprotocol, if any.
    pub fn subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_deref()
    }

    /// The negotiated `Sec-WebSocket-Extensions` response value
    /// (`permessage-deflate; …`), if an extension was agreed.
    pub fn extensions(&self) -> Option<&str> {
        self.deflate.as_ref().map(|d| d.response.as_str())
    }

    /// The server's configuration for this connection.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// This connection's own copy of the server's config, to change its
    /// limits (Qt's per-socket `setMaxAllowedIncomingFrameSize` and friends).
    pub fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// 1000 until a close; then the code sent or received (Qt's `closeCode`).
    pub fn close_code(&self) -> CloseCode {
        self.close_code
    }

    /// "" until a close; then the reason sent or received (Qt's `closeReason`).
    pub fn close_reason(&self) -> &str {
        &self.close_reason
    }

    /// Bytes queued and not yet taken by [`Connection::take_transmit`].
    pub fn bytes_to_write(&self) -> usize {
        self.out.len()
    }

    // ---- input ----

    /// Handles bytes read from the peer at `now`.
    pub fn handle_input(&mut self, now: u64, mut input: &[u8]) {
        if self.state == State::Handshaking {
            if self.request.is_some() {
                // Awaiting the upgrade decision: keep early frames, within reason.
                if self.head.len() + input.len() > self.config.limits.max_request_head {
                    return self.abort();
                }
                return self.head.extend_from_slice(input);
            }
            self.head.extend_from_slice(input);
            match parse_request(&self.head, self.config.limits.max_request_head) {
                Ok(None) => {}
                Ok(Some((request, head_len))) => {
                    self.head.drain(..head_len);
                    self.request = Some(request);
                    self.records.push(Record::UpgradeRequested);
                }
                Err(error) => {
                    let (status, phrase) = error.status();
                    self.refuse(status, phrase, error.message(), error.extra_header());
                    self.records.push(Record::HandshakeRefused(error));
                }
            }
            return;
        }
        if matches!(self.state, State::Open | State::Closing) && self.pending_failure.is_none() {
            self.handle_frames(now, std::mem::take(&mut input));
            self.watch_for_stall(now);
            self.heard_from_peer(now);
        }
    }

    /// While open, a frame that has started must keep arriving: the stall
    /// deadline restarts with every input inside a frame and is cleared
    /// between frames (an idle connection is never timed out, as in Qt).
    fn watch_for_stall(&mut self, now: u64) {
        if self.state != State::Open {
            return;
        }
        self.deadline = match self.config.limits.stalled_frame_timeout_ms {
            Some(timeout) if !self.decoder.is_idle() => Some(now.saturating_add(timeout)),
            _ => None,
        };
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
        match self.state {
            State::Handshaking => {
                self.state = State::Closed;
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
        match self.state {
            State::Handshaking => self.state = State::Closed,
            State::Open | State::Closing => self.lost(Transport::Abort),
            State::Closed => {}
        }
        self.transport = Transport::Abort;
        self.out.clear();
    }

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

    // ---- commands ----

    /// Accepts the upgrade request announced by [`Event::UpgradeRequested`]:
    /// queues the 101 response (with the subprotocol chosen by Qt's rule) and
    /// handles any frames the client sent early. Does nothing otherwise.
    pub fn accept_upgrade(&mut self, now: u64) {
        if self.state != State::Handshaking {
            return;
        }
        let Some(request) = &self.request else { return };
        let subprotocol = choose_subprotocol(&request.subprotocols, &self.config.subprotocols).map(str::to_string);
        let accept = accept_key(&request.key);
        let deflate = self
            .config
            .deflate
            .as_ref()
            .filter(|_| !self.extensions_declined)
            .and_then(|c| negotiate(&request.extensions, c));
        let extensions = deflate.as_ref().map(|(_, response)| response.as_str());
        write_upgrade_response(&mut self.out, &accept, subprotocol.as_deref(), extensions, &self.config.server_name);
        let level = self.config.deflate.as_ref().map_or(1, |c| c.level);
        self.deflate = deflate.map(|(params, response)| Deflate::new(params, response, level));
        self.subprotocol = subprotocol;
        self.state = State::Open;
        self.deadline = None;
        self.last_ping = now;
        self.heard_from_peer(now);
        self.records.push(Record::Upgraded);
        let early = std::mem::take(&mut self.head);
        self.handle_frames(now, &early);
    }

    /// Refuses the upgrade request with an HTTP `status` (403 for a refused
    /// origin, 503 when too many connections wait): the response carries
    /// `body` as text, then the transport closes.
    pub fn refuse_upgrade(&mut self, status: u16, phrase: &str, body: &str) {
        if self.state == State::Handshaking {
            self.refuse(status, phrase, body, None);
        }
    }

    /// [`Connection::refuse_upgrade`] with a `Retry-After` header: the
    /// refusal is for load (503, 429), and the client may retry in `seconds`.
    pub fn refuse_upgrade_retry_after(&mut self, status: u16, phrase: &str, body: &str, seconds: u32) {
        if self.state == State::Handshaking {
            self.refuse(status, phrase, body, Some(&format!("Retry-After: {seconds}")));
        }
    }

    /// Makes [`Connection::accept_upgrade`] decline every extension offer
    /// (the server is short of memory for compression).
    pub fn decline_extensions(&mut self) {
        self.extensions_declined = true;
    }

    /// Whether our close frame has been queued (nothing may follow it).
    pub fn close_sent(&self) -> bool {
        self.close_sent
    }

    /// Queues a message, fragmented into frames of the outgoing frame size.
    /// Returns the payload bytes queued: 0 unless the connection is open
    /// (Qt's `sendTextMessage` / `sendBinaryMessage`).
    pub fn send(&mut self, kind: MessageKind, payload: &[u8]) -> u64 {
        if self.state != State::Open {
            return 0;
        }
        let first = match kind {
            MessageKind::Text => OpCode::Text,
            MessageKind::Binary => OpCode::Binary,
        };
        let frame_size = self.config.limits.outgoing_frame_size.max(1) as usize;
        let min_size = self.config.deflate.as_ref().map_or(usize::MAX, |c| c.min_size);
        match &mut self.deflate {
            Some(deflate) if payload.len() >= min_size => {
                deflate.deflater.compress_message(payload, &mut self.scratch);
                write_message(&mut self.out, first, true, &self.scratch, frame_size);
                // Between messages a compressed connection keeps only its windows.
                self.scratch = Vec::new();
            }
            _ => write_message(&mut self.out, first, false, payload, frame_size),
        }
        payload.len() as u64
    }

    /// Sends a ping with at most 125 bytes of `payload`, and restarts the
    /// round-trip timer that pong events report.
    pub fn ping(&mut self, now: u64, payload: &[u8]) {
        if self.state != State::Open {
            return;
        }
        let payload = &payload[..payload.len().min(125)];
        self.last_ping = now;
        self.send_control(OpCode::Ping, payload);
    }

    /// Starts the closing handshake with `code` and `reason` (cut to 123
    /// bytes at a character boundary). A code that may not appear on the
    /// wire (1005, 1006, 1015, out of range) sends a close frame without a
    /// code, which `close_code` then reports as 1005. Does nothing unless open.
    pub fn close(&mut self, now: u64, code: CloseCode, reason: &str) {
        if self.state != State::Open {
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
        self.set_state(State::Closing);
        self.deadline = Some(now.saturating_add(self.config.limits.close_timeout_ms));
    }

    /// Drops the connection now: no close frame, queued bytes discarded.
    pub fn abort(&mut self) {
        self.out.clear();
        match self.state {
            State::Handshaking => {
                self.state = State::Closed;
                self.transport = Transport::Abort;
            }
            State::Open | State::Closing => self.finish(Transport::Abort),
            State::Closed => self.transport = Transport::Abort,
        }
    }

    // ---- output ----

    /// Calls `f` with every event since the last call, in order.
    pub fn drain_events(&mut self, mut f: impl FnMut(Event<'_>)) {
        for record in self.records.drain(..) {
            f(record.event(&self.arena));
        }
        self.arena.clear();
        shrink_if_large(&mut self.arena);
    }

    /// True when events are waiting for [`Connection::drain_events`].
    pub fn has_events(&self) -> bool {
        !self.records.is_empty()
    }

    /// Moves every queued byte for the peer to the end of `dst`.
    pub fn take_transmit(&mut self, dst: &mut Vec<u8>) {
        // Swapping saves a copy, but only when the connection gets a buffer
        // no larger than its own: otherwise a binding's large turn buffer
        // would move into a connection every turn and stay there (1 000
        // connections ended up holding ~1 MiB each).
        if dst.is_empty() && dst.capacity() <= self.out.capacity() {
            std::mem::swap(dst, &mut self.out);
        } else {
            dst.extend_from_slice(&self.out);
            self.out.clear();
        }
        // After a burst (a large message), an idle connection keeps a small buffer.
        if self.out.capacity() > IDLE_OUT_CAPACITY {
            self.out = Vec::new();
        }
    }

    /// What the binding must do with the transport once the queued bytes are
    /// taken.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The next deadline (handshake, stall, close or keepalive), if any.
    pub fn poll_timeout(&self) -> Option<u64> {
        [self.deadline, self.keepalive_at, self.keepalive_due, self.inflater_quiet_at].into_iter().flatten().min()
    }

    /// Any input from an open connection restarts the keepalive clock.
    fn heard_from_peer(&mut self, now: u64) {
        self.keepalive_due = None;
        self.keepalive_at = match (self.state, self.config.limits.keepalive_interval_ms) {
            (State::Open, Some(interval)) => Some(now.saturating_add(interval)),
            _ => None,
        };
    }

    /// Sends a keepalive ping or gives up on a silent peer, when due.
    fn keepalive_tick(&mut self, now: u64) {
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

    // ---- internals ----

    fn refuse(&mut self, status: u16, phrase: &str, body: &str, extra_header: Option<&str>) {
        self.head = Vec::new();
        write_error_response(&mut self.out, status, phrase, body, extra_header, &self.config.server_name);
        self.state = State::Closed;
        self.transport = Transport::Close;
        self.deadline = None;
    }

    fn handle_frames(&mut self, now: u64, mut input: &[u8]) {
        while matches!(self.state, State::Open | State::Closing) {
            let max_frame = self.config.limits.max_frame_size;
            let allow_rsv1 = self.deflate.is_some();
            let result = match self.decoder.decode(&mut input, allow_rsv1, max_frame) {
                Ok(Some(Chunk::Header(header))) => self.on_header(header),
                Ok(Some(Chunk::Payload { masked, offset, last })) => self.on_payload(now, masked, offset, last),
                Ok(None) => return,
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                if self.delivered_this_round > 0 && self.state == State::Open {
                    // Further input is ignored either way; only the close waits.
                    self.pending_failure = Some(e);
                } else {
                    self.fail(e);
                }
                return;
            }
        }
    }

    fn on_header(&mut self, header: FrameHeader) -> Result<(), ProtocolError> {
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

    fn on_payload(&mut self, now: u64, masked: &[u8], offset: usize, last: bool) -> Result<(), ProtocolError> {
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

    fn on_control(&mut self, now: u64, opcode: OpCode) -> Result<(), ProtocolError> {
        match opcode {
            OpCode::Ping => {
                if self.state == State::Open {
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

    fn on_close(&mut self) -> Result<(), ProtocolError> {
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
        if self.state == State::Open {
            // Echo the peer's code and reason; an empty close is answered with 1000 (Qt).
            let reply = code.unwrap_or(CloseCode::NORMAL);
            self.send_close(Some(reply), &reason);
            self.close_code = reply;
            self.close_reason = reason;
            self.records.push(Record::AboutToClose);
            self.set_state(State::Closing);
        }
        self.finish(Transport::Close);
        // The peer's close frame is the last thing it sends (RFC 6455 §5.5.1):
        // its read channel is finished, reported after `disconnected` as Qt does.
        self.records.push(Record::ReadChannelFinished);
        Ok(())
    }

    /// Fails the connection (RFC 6455 §7.1.7): a close frame with the error's
    /// code and reason, then the transport closes. Further input is ignored.
    fn fail(&mut self, error: ProtocolError) {
        let was_open = self.state == State::Open;
        if !self.close_sent {
            self.send_close(Some(error.close_code()), error.reason());
        }
        self.close_code = error.close_code();
        self.close_reason = error.reason().to_string();
        self.message.reset();
        if was_open {
            self.records.push(Record::AboutToClose);
            self.set_state(State::Closing);
        }
        self.finish(Transport::Close);
    }

    /// The transport ended without a closing handshake.
    fn lost(&mut self, transport: Transport) {
        if !self.close_sent {
            self.close_code = CloseCode::ABNORMAL_DISCONNECTION;
        }
        self.records.push(Record::Error(SocketError::RemoteHostClosed));
        self.finish(transport);
    }

    fn finish(&mut self, transport: Transport) {
        self.deadline = None;
        self.pending_failure = None;
        self.transport = transport;
        self.set_state(State::Closed);
        self.records.push(Record::Disconnected);
    }

    fn set_state(&mut self, state: State) {
        if self.state != state {
            self.state = state;
            self.records.push(Record::StateChanged(state));
        }
    }

    fn send_close(&mut self, code: Option<CloseCode>, reason: &str) {
        let mut payload = Vec::with_capacity(2 + reason.len());
        if let Some(code) = code {
            payload.extend_from_slice(&code.0.to_be_bytes());
            payload.extend_from_slice(truncate_reason(reason).as_bytes());
        }
        self.send_control(OpCode::Close, &payload);
        self.close_sent = true;
    }

    fn send_control(&mut self, opcode: OpCode, payload: &[u8]) {
        encode_header(&mut self.out, true, false, opcode, payload.len() as u64);
        self.out.extend_from_slice(payload);
    }
}

/// Appends a message as frames of at most `frame_size` payload bytes; RSV1
/// (compressed) goes on the first frame only.
fn write_message(out: &mut Vec<u8>, first: OpCode, rsv1: bool, payload: &[u8], frame_size: usize) {
    out.reserve(payload.len() + 14);
    let mut chunks = payload.chunks(frame_size).peekable();
    if chunks.peek().is_none() {
        encode_header(out, true, rsv1, first, 0);
    }
    let (mut opcode, mut rsv1) = (first, rsv1);
    while let Some(chunk) = chunks.next() {
        let fin = chunks.peek().is_none();
        encode_header(out, fin, rsv1, opcode, chunk.len() as u64);
        out.extend_from_slice(chunk);
        (opcode, rsv1) = (OpCode::Continuation, false);
    }
}

fn inflate_error(e: InflateError) -> ProtocolError {
    match e {
        InflateError::TooLarge => ProtocolError::MessageTooLarge,
        InflateError::Corrupt => ProtocolError::InvalidCompressedData,
    }
}

/// A connection's decompressor (~40 KiB) is kept while compressed messages
/// keep coming, and freed after this long without one: a busy connection
/// does not rebuild it per message, a quiet one holds only its windows.
pub const INFLATER_QUIET_MS: u64 = 2_000;

/// permessage-deflate state of one connection: between messages, only the
/// windows of the sides that keep their context (see [`crate::deflate`]).
#[derive(Debug)]
struct Deflate {
    response: String,
    inflater: Inflater,
    deflater: Deflater,
}

impl Deflate {
    fn new(params: DeflateParams, response: String, level: u32) -> Self {
        Self { inflater: Inflater::new(&params), deflater: Deflater::new(&params, level), response }
    }
}

/// Frees a per-connection buffer that one large message grew, so idle
/// connections stay small.
fn shrink_if_large(buf: &mut Vec<u8>) {
    if buf.capacity() > RETAINED_CAPACITY {
        *buf = Vec::new();
    }
}

fn push_arena(arena: &mut Vec<u8>, bytes: &[u8]) -> Range<usize> {
    let start = arena.len();
    arena.extend_from_slice(bytes);
    start..arena.len()
}
