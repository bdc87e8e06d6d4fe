//! Every limit the core enforces, with its default and the reason for it.

use wsbox_defaults as defaults;
pub use wsbox_defaults::MAX_CONFIGURABLE_SIZE;

/// Limits and timeouts of one connection. The defaults are what a public
/// production server can ship; each states why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest request head (request line and headers) accepted, in bytes.
    ///
    /// Default 64 KiB: far above what browsers send (cookies included), far
    /// below Qt's 800 KiB. Past it the request is answered with
    /// `431 Request Header Fields Too Large`.
    pub max_request_head: usize,
    /// Largest frame payload accepted, in bytes (Qt's
    /// `maxAllowedIncomingFrameSize`). Checked from the frame header, before
    /// the payload is read.
    ///
    /// Default 16 MiB: the largest single frame the Autobahn suite sends
    /// (case 9.1.6). Qt's default of ~2 GiB lets one peer claim 2 GiB of
    /// memory (CVE-2018-21035). Past it the connection closes with 1009.
    pub max_frame_size: u64,
    /// Largest message accepted, in bytes, summed over its frames (Qt's
    /// `maxAllowedIncomingMessageSize`).
    ///
    /// Default 64 MiB: four times the largest frame, as tungstenite chooses.
    /// Past it the connection closes with 1009.
    pub max_message_size: u64,
    /// Payload bytes per outgoing frame: a longer message is fragmented
    /// (Qt's `outgoingFrameSize`, default 512 KiB). Never 0.
    pub outgoing_frame_size: u64,
    /// Milliseconds a client has to complete its upgrade request (Qt's
    /// `handshakeTimeout`, default 10 000). `None` disables the deadline.
    pub handshake_timeout_ms: Option<u64>,
    /// Milliseconds to wait for the peer's close frame after ours before the
    /// TCP connection is dropped. Default 5 000 (Qt waits ≈3 s).
    pub close_timeout_ms: u64,
    /// Milliseconds a started frame may go without new bytes before the
    /// connection is closed with 1001 (Qt's 5 000 ms). Between frames a
    /// connection may stay idle forever. `None` disables it.
    pub stalled_frame_timeout_ms: Option<u64>,
    /// Milliseconds without any input after which the server pings the
    /// peer (keepalive). `None`, the default, sends no pings of its own.
    pub keepalive_interval_ms: Option<u64>,
    /// Milliseconds a keepalive ping may go unanswered (by any input)
    /// before the connection is closed with 1001. Default 10 000.
    pub keepalive_timeout_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_head: defaults::MAX_REQUEST_HEAD,
            max_frame_size: defaults::MAX_FRAME_SIZE,
            max_message_size: defaults::MAX_MESSAGE_SIZE,
            outgoing_frame_size: defaults::OUTGOING_FRAME_SIZE,
            handshake_timeout_ms: Some(defaults::HANDSHAKE_TIMEOUT_MS),
            close_timeout_ms: defaults::CLOSE_TIMEOUT_MS,
            stalled_frame_timeout_ms: Some(defaults::STALLED_FRAME_TIMEOUT_MS),
            keepalive_interval_ms: None,
            keepalive_timeout_ms: defaults::KEEPALIVE_TIMEOUT_MS,
        }
    }
}
