//! Qt's signals as the runtime raises them ([`AppEvent`]), where they go
//! ([`Sink`]), and those raised by a call, delivered at the next turn.

use wsbox_core::handshake::Request;
use wsbox_core::{CloseCode, MessageKind, SocketError, State};

/// Qt's signals, as the runtime hands them to an export.
pub enum AppEvent<'a> {
    NewConnection(u32),
    ServerError {
        server: u32,
        code: CloseCode,
        message: &'a str,
        peer_address: &'a str,
        peer_port: u16,
    },
    Closed(u32),
    Message {
        socket: u32,
        kind: MessageKind,
        data: &'a [u8],
    },
    Frame {
        socket: u32,
        kind: MessageKind,
        data: &'a [u8],
        is_last: bool,
    },
    Pong {
        socket: u32,
        elapsed_ms: u64,
        payload: &'a [u8],
    },
    StateChanged {
        socket: u32,
        state: State,
    },
    AboutToClose(u32),
    ReadChannelFinished(u32),
    Disconnected(u32),
    Error {
        socket: u32,
        error: SocketError,
    },
    /// A TLS handshake failed (`peer_verify`: the client certificate).
    TlsFailed {
        server: u32,
        socket: u32,
        message: &'a str,
        peer_address: &'a str,
        peer_port: u16,
        peer_verify: bool,
    },
    /// The client ended the TLS handshake with an alert.
    TlsAlertReceived {
        server: u32,
        socket: u32,
        alert: u8,
        description: &'a str,
    },
    /// A well-formed request waits for `accept_handshake` / `refuse_handshake`.
    OriginAuthenticationRequired {
        server: u32,
        socket: u32,
        request: &'a Request,
        peer_address: &'a str,
        peer_port: u16,
    },
    /// `accept` failed on the server's listener.
    AcceptError {
        server: u32,
        message: &'a str,
        resource: bool,
    },
    /// Bytes reached the socket (for sockets that asked).
    BytesWritten {
        socket: u32,
        bytes: u64,
    },
    /// The send buffer has room again after a refused send.
    Writable(u32),
    /// The transport's broker connection was lost (false) or is back (true).
    BrokerConnected(bool),
}

/// Where a turn's signals go.
pub trait Sink {
    fn push(&mut self, event: AppEvent<'_>);
    fn is_empty(&self) -> bool;
    /// About `bytes` of message payload may follow (the turn's input size):
    /// a flat sink reserves it once instead of doubling as messages arrive.
    fn expect_payload(&mut self, _bytes: usize) {}
}

/// Signals raised outside a turn (by a call), delivered at the next turn.
pub(crate) enum Deferred {
    ServerError { server: u32, code: CloseCode, message: String, peer_address: String, peer_port: u16 },
    Closed(u32),
}
