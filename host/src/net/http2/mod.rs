//! WebSockets over HTTP/2 (RFC 8441) on wss:// listeners.
//!
//! When a client's TLS handshake chooses `h2` by ALPN, the host speaks
//! HTTP/2 on that connection with the `h2` crate, advertises
//! `SETTINGS_ENABLE_CONNECT_PROTOCOL`, and turns each extended CONNECT with
//! `:protocol = websocket` into a connection for the guest: the guest runs
//! the same handshake (origin policy, subprotocols, permessage-deflate,
//! admission, its caps) and the same RFC 6455 frames over the stream as
//! over a TCP connection. See [`session`] for the carrier and its streams,
//! [`translate`] for the request and answer translation, [`io`] for the
//! byte pipe between the event loop and `h2`.
//!
//! Cleartext HTTP/2 (h2c) is not offered on ws://: browsers never use it,
//! and prior-knowledge clients are tools that can speak HTTP/1.1.

mod io;
mod session;
mod translate;

pub use session::{Loop, Origin, Session};

/// Streams one HTTP/2 connection may have open at once (the common
/// server default; each is a connection to the guest, under its caps).
pub const MAX_CONCURRENT_STREAMS: u32 = 100;

/// Largest request header list: the same bound as an HTTP/1.1 request
/// head (past it the stream is refused).
pub const MAX_HEADER_LIST: u32 = wsbox_defaults::MAX_REQUEST_HEAD as u32;

/// Receive window per stream: HTTP/2's default. The host hands a stream's
/// DATA to the guest as it comes and releases the window at once, so this
/// bounds only what one stream whose guest side is backed up holds.
pub const STREAM_WINDOW: u32 = 64 * 1024;

/// Receive window of the whole connection: every stream's window, so that
/// streams whose guest side is backed up never starve the others (what the
/// host holds for one connection at most: 6.25 MiB with 100 streams).
pub const CONNECTION_WINDOW: u32 = MAX_CONCURRENT_STREAMS * STREAM_WINDOW;

/// An HTTP/2 connection's deadlines while it has no stream.
#[derive(Clone, Copy, Debug)]
pub struct Deadlines {
    /// How long the client has to start HTTP/2 once TLS chose it (None: no
    /// deadline).
    pub handshake: Option<std::time::Duration>,
    /// How long a started connection may stay without a stream before it
    /// is told to go away.
    pub idle: std::time::Duration,
}
