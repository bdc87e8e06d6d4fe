//! One server-side WebSocket connection as a deterministic state machine.
//!
//! Split by concern: [`receive`] (bytes, end of input, frames), [`send`]
//! (messages, pings, output), [`close`] (the closing handshake and
//! failures), [`handshake`] (the upgrade answer), [`timers`] (deadlines and
//! keepalive), [`events`] (what the app is told).

mod close;
mod events;
mod handshake;
mod receive;
mod send;
mod timers;

use events::{Record, push_arena};
pub use send::FrameShape;
use send::{Deflate, shrink_if_large};

use crate::close::{CloseCode, truncate_reason};
use crate::deflate::{
    CompressorKey, DeflateConfig, DeflateParams, Deflater, InflateError, Inflater, compress_fresh, negotiate,
};
use crate::error::ProtocolError;
use crate::frame::{Chunk, Decoder, FrameHeader, OpCode, encode_header, unmask_into};
use crate::handshake::{
    HandshakeError, Page, Request, accept_key, choose_subprotocol, parse_request, plain_get, write_error_response,
    write_page_response, write_upgrade_response,
};
use crate::limits::Limits;
use crate::message::{Assembler, MessageKind, RETAINED_CAPACITY};
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
    /// A path whose plain `GET` or `HEAD` (no upgrade) is a health check,
    /// announced by [`Event::HealthCheck`] instead of refused with 400.
    pub health_check_path: Option<String>,
    /// A page whose plain `GET` or `HEAD` (no upgrade) is answered with it
    /// instead of refused with 400. None by default.
    pub page: Option<Page>,
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
            health_check_path: None,
            page: None,
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

/// What a connection holds in each state; [`State`] is its public face.
#[derive(Debug)]
enum Phase {
    /// The request head as it arrives (then any frames the client sends
    /// before our answer), and the handshake deadline.
    Handshaking {
        head: Vec<u8>,
        deadline: Option<u64>,
    },
    /// The stall deadline (a frame that has started must keep arriving) and
    /// the keepalive clock.
    Open {
        stall_deadline: Option<u64>,
        keepalive: Keepalive,
    },
    /// When we stop waiting for the peer's close frame.
    Closing {
        deadline: u64,
    },
    Closed,
}

impl Phase {
    fn state(&self) -> State {
        match self {
            Phase::Handshaking { .. } => State::Handshaking,
            Phase::Open { .. } => State::Open,
            Phase::Closing { .. } => State::Closing,
            Phase::Closed => State::Closed,
        }
    }

    /// The state's own deadline: the handshake's, a stalled frame's, or the close's.
    fn deadline(&self) -> Option<u64> {
        match *self {
            Phase::Handshaking { deadline, .. } => deadline,
            Phase::Open { stall_deadline, .. } => stall_deadline,
            Phase::Closing { deadline } => Some(deadline),
            Phase::Closed => None,
        }
    }
}

/// The keepalive clock of an open connection.
#[derive(Clone, Copy, Debug, Default)]
struct Keepalive {
    /// When to send a keepalive ping (no input since the interval).
    ping_at: Option<u64>,
    /// When an unanswered keepalive ping closes the connection.
    pong_due: Option<u64>,
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
    /// A health check of [`Config::health_check_path`] arrived; answer it
    /// with [`Connection::answer_health_check`]. Not a WebSocket: no other
    /// event follows.
    HealthCheck,
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
    phase: Phase,
    transport: Transport,
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
    /// When our last ping went out (or the upgrade), for a pong's elapsed time.
    last_ping: u64,
    /// The negotiated permessage-deflate state, if any.
    deflate: Option<Deflate>,
    /// The message being received is compressed (RSV1 on its first frame).
    compressed: bool,
    /// [`Connection::decline_extensions`] was called.
    extensions_declined: bool,
    /// A health check awaits its answer: `Some(true)` for a `HEAD`.
    health_check: Option<bool>,
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
            phase: Phase::Handshaking { head: Vec::new(), deadline },
            transport: Transport::Open,
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
            last_ping: now,
            delivered_this_round: 0,
            pending_failure: None,
            deflate: None,
            compressed: false,
            extensions_declined: false,
            health_check: None,
            inflater_quiet_at: None,
            scratch: Vec::new(),
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.phase.state()
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

    /// What the binding must do with the transport once the queued bytes are
    /// taken.
    pub fn transport(&self) -> Transport {
        self.transport
    }
}

/// A connection's decompressor (~40 KiB) is kept while compressed messages
/// keep coming, and freed after this long without one: a busy connection
/// does not rebuild it per message, a quiet one holds only its windows.
pub const INFLATER_QUIET_MS: u64 = 2_000;
