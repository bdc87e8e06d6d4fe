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

/// Receive window per stream: one turn's share of a connection, so a
/// stream never has more in flight than the guest takes from it in a turn.
pub const STREAM_WINDOW: u32 = wsbox_transport::CONN_SHARE as u32;

/// Receive window of the whole connection: what all its streams together
/// may have in flight, and so what the host holds for one connection at
/// most while the guest does not read (four streams' windows).
pub const CONNECTION_WINDOW: u32 = 4 * STREAM_WINDOW;
