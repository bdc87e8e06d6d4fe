//! Every default of wsbox's protocol and server policy, defined once, with
//! the reason for it. The protocol core (`Limits`, `DeflateConfig`), the
//! runtime (a new server's caps), the host's CLI (its flags' defaults and
//! help) and the echo app's options all read them from here; the transport
//! policy's numbers are `wsbox-transport`'s.

#![no_std]

// ---- sizes ----

/// The ceiling of the frame, message and outgoing frame size settings
/// (Qt's `maxIncomingFrameSize` and friends: `INT_MAX - 1`); larger values
/// are ignored, as Qt ignores them.
pub const MAX_CONFIGURABLE_SIZE: u64 = 2_147_483_646;
/// Largest request head: far above what browsers send (cookies included),
/// far below Qt's 800 KiB. Past it: `431`.
pub const MAX_REQUEST_HEAD: usize = 64 * 1024;
/// Largest frame payload: the largest single frame the Autobahn suite sends
/// (case 9.1.6). Qt's ~2 GiB lets one peer claim 2 GiB (CVE-2018-21035).
pub const MAX_FRAME_SIZE: u64 = 16 * 1024 * 1024;
/// Largest message: four times the largest frame, as tungstenite chooses.
pub const MAX_MESSAGE_SIZE: u64 = 64 * 1024 * 1024;
/// Payload bytes per outgoing frame (Qt's `outgoingFrameSize`).
pub const OUTGOING_FRAME_SIZE: u64 = 512 * 1024;

// ---- timeouts ----

/// Milliseconds a client has to complete its upgrade request (Qt's).
pub const HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
/// Milliseconds to wait for the peer's close frame after ours (Qt waits ≈3 s).
pub const CLOSE_TIMEOUT_MS: u64 = 5_000;
/// Milliseconds a started frame may go without new bytes (Qt's).
pub const STALLED_FRAME_TIMEOUT_MS: u64 = 5_000;
/// Milliseconds a keepalive ping may go unanswered.
pub const KEEPALIVE_TIMEOUT_MS: u64 = 10_000;
/// Milliseconds an HTTP/2 connection may stay without a stream before it is
/// told to go away (browsers keep idle connections for later pages; not
/// for ever).
pub const HTTP2_IDLE_TIMEOUT_MS: u64 = 60_000;

// ---- permessage-deflate ----

/// Window bits of the server's compressor: 4 KiB windows keep a compressed
/// connection small (see docs/deflate.md for the ratios each size gives).
pub const DEFLATE_SERVER_WINDOW_BITS: u8 = 12;
/// Window bits asked of the client's compressor.
pub const DEFLATE_CLIENT_WINDOW_BITS: u8 = 12;
/// Messages shorter than this are sent uncompressed.
pub const DEFLATE_MIN_SIZE: usize = 32;
/// zlib level: 1 is the fastest; higher levels gain little on chat-sized
/// messages.
pub const DEFLATE_LEVEL: u32 = 1;

// ---- server policy ----

/// Qt's default for `maxPendingConnections`.
pub const MAX_PENDING_CONNECTIONS: usize = 30;
/// Connections in the opening handshake at most, per server.
pub const MAX_HANDSHAKING: usize = 1024;
/// Cap on a socket's unsent output: sends past it are refused until it
/// drains. Also the transport's default write limit.
pub const MAX_SEND_BUFFER: u64 = 4 * 1024 * 1024;
/// The range a send-buffer cap is clamped to. Up to twice the cap (what the
/// transport holds before it reports backed-up, plus one turn's output
/// queued meanwhile) and one 64 MiB message stay under the transport's hard
/// cap of 80 MiB.
pub const SEND_BUFFER_MIN: u64 = 64 * 1024;
/// See [`SEND_BUFFER_MIN`].
pub const SEND_BUFFER_MAX: u64 = 8 * 1024 * 1024;

// ---- topics ----

/// Longest topic name, in bytes (a name is 1 to this many bytes).
pub const MAX_TOPIC_LEN: usize = 256;
/// Topics one socket may be subscribed to at once.
pub const MAX_TOPICS_PER_SOCKET: usize = 1024;
