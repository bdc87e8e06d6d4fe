//! The event loop's own vocabulary: what one `exchange` takes from the guest
//! and hands to it. These mirror the records of WIT's `wsbox:websocket/net`
//! field for field; `bindings.rs` moves them across (the byte lists move,
//! nothing is copied; the bytes to write are read where they lie in the
//! guest's memory), so the event loop knows neither wasmtime nor the
//! generated bindings.

/// A listening socket the guest asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    pub id: u32,
    pub address: String,
    pub port: u16,
}

/// Why a listen failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenErrorCode {
    AddressInUse,
    AddressNotAvailable,
    AccessDenied,
    Other,
}

/// A failed listen, with a message for the app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenError {
    pub code: ListenErrorCode,
    pub message: String,
}

/// What the host decided for an accepted connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    Admit,
    AdmitUncompressed,
    RefuseBusy,
    RefuseAddress,
}

/// An accepted connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    pub conn: u32,
    pub listener: u32,
    pub peer_address: String,
    pub peer_port: u16,
    pub local_address: String,
    pub local_port: u16,
    pub admission: Admission,
    /// The peer is a proxy trusted to name its client in the request.
    pub trusted_proxy: bool,
}

/// An accept that failed (the listener keeps listening).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceptFailure {
    pub listener: u32,
    pub message: String,
    pub out_of_resources: bool,
}

/// A TLS handshake that completed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSession {
    pub conn: u32,
    pub protocol: String,
    pub cipher: String,
    pub server_name: String,
    pub alpn: String,
    pub peer_certificates: Vec<Vec<u8>>,
}

/// A TLS session that failed (the connection is gone).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFailure {
    pub conn: u32,
    pub message: String,
    pub alert_received: Option<u8>,
    pub peer_verify: bool,
}

/// Bytes for one connection, where the guest holds them (its memory, lent
/// for the call: what the socket takes at once is never copied).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write<'a> {
    pub conn: u32,
    pub data: &'a [u8],
}

/// One framed message for several connections (a publication), lent like
/// [`Write`]'s bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedWrite<'a> {
    pub data: &'a [u8],
    pub conns: Vec<u32>,
}

/// A message published to a topic, between instances (the bus's own type).
pub use crate::topics::Publication;

/// Publications the guest counted since the last exchange.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TopicCounts {
    pub publications: u32,
    pub delivered: u64,
    pub skipped: u64,
}

/// What the guest hands over at each turn.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outgoing<'a> {
    /// Written before `writes`.
    pub shared: Vec<SharedWrite<'a>>,
    pub writes: Vec<Write<'a>>,
    pub close: Vec<u32>,
    pub abort: Vec<u32>,
    pub upgraded: Vec<u32>,
    pub closing: Vec<u32>,
    pub heap_bytes: u64,
    pub publications: Vec<Publication>,
    pub topics_joined: Vec<String>,
    pub topics_left: Vec<String>,
    pub topic_counts: TopicCounts,
}

/// One connection's input: `data[previous end..end]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputRun {
    pub conn: u32,
    pub end: u32,
}

/// Everything rarer than input, when anything happened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransportEvents {
    pub opened: Vec<Opened>,
    pub eof: Vec<u32>,
    pub gone: Vec<u32>,
    pub tls_established: Vec<TlsSession>,
    pub tls_failed: Vec<TlsFailure>,
    pub accept_failed: Vec<AcceptFailure>,
    pub written_conns: Vec<u32>,
    pub written_bytes: Vec<u64>,
    pub backed_up: Vec<u32>,
    pub drained: Vec<u32>,
    pub publications: Vec<Publication>,
    pub broker_connected: Option<bool>,
}

/// What the guest gets at each turn: input flat, the rest when there is some.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Incoming {
    pub runs: Vec<InputRun>,
    pub data: Vec<u8>,
    pub transport: Option<TransportEvents>,
}
