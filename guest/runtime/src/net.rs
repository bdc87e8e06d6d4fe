//! What a binding supplies (the [`Net`] trait) and the batch it exchanges
//! once per turn, both ways: the `wsbox:websocket/net` interface in Rust.

pub use crate::topics::TopicCounts;
use wsbox_core::MessageKind;

/// How a listen attempt failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenErrorKind {
    AddressInUse,
    AddressNotAvailable,
    AccessDenied,
    Other,
}

/// A listener the transport opened.
pub struct ListenerInfo {
    pub id: u32,
    pub address: String,
    pub port: u16,
}

/// A connection the transport accepted.
pub struct Opened {
    pub conn: u32,
    pub listener: u32,
    pub peer_address: String,
    pub peer_port: u16,
    pub local_address: String,
    pub local_port: u16,
    pub admission: Admission,
    /// The peer is a proxy trusted to name its client in `Forwarded` /
    /// `X-Forwarded-For` (see [`crate::forwarded`]).
    pub trusted_proxy: bool,
}

/// The transport's admission decision for a new connection (see
/// `wsbox:websocket/net.admission`), carried out when its request is complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    Admit,
    AdmitUncompressed,
    RefuseBusy,
    RefuseAddress,
}

/// A message published to a topic, as it travels between instances.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publication {
    pub topic: String,
    pub kind: MessageKind,
    pub data: Vec<u8>,
}

/// Everything to write in one turn (see `wsbox:websocket/net.outgoing`).
#[derive(Default)]
pub struct OutBatch {
    /// Framed publications, each for several connections: written before
    /// `writes` (a connection's share never follows its own output).
    pub shared: Vec<(Vec<u8>, Vec<u32>)>,
    /// Each connection's output in the buffer it was framed into (taken
    /// from the connection, not copied), at most one per connection.
    pub writes: Vec<(u32, Vec<u8>)>,
    pub close: Vec<u32>,
    pub abort: Vec<u32>,
    /// Connections that became WebSockets, and WebSockets whose close frame
    /// went out, this turn: the host closes the rest properly if the
    /// instance fails.
    pub upgraded: Vec<u32>,
    pub closing: Vec<u32>,
    /// Publications made here, for other instances (when the binding
    /// [forwards](Net::forwards_publications) them), and the topics whose
    /// first subscriber came or last one left.
    pub publications: Vec<Publication>,
    pub topics_joined: Vec<String>,
    pub topics_left: Vec<String>,
    pub topic_counts: TopicCounts,
    /// Written buffers kept to take the next turns' output into, so a
    /// connection that sends every turn does not allocate every turn.
    spare: Vec<Vec<u8>>,
}

/// Written buffers up to this capacity are kept for reuse...
const SPARE_CAPACITY: usize = 16 * 1024;
/// ...and at most this many of them.
const SPARE_BUFFERS: usize = 256;

impl OutBatch {
    /// An empty buffer to take a connection's output into.
    pub(crate) fn buffer(&mut self) -> Vec<u8> {
        self.spare.pop().unwrap_or_default()
    }

    /// Keeps `buf` for reuse if it is small (and there is room).
    pub(crate) fn give_back(&mut self, mut buf: Vec<u8>) {
        if buf.capacity() <= SPARE_CAPACITY && buf.capacity() > 0 && self.spare.len() < SPARE_BUFFERS {
            buf.clear();
            self.spare.push(buf);
        }
    }

    /// Empties the batch once the transport has written it.
    pub(crate) fn clear(&mut self) {
        let mut writes = std::mem::take(&mut self.writes);
        for (_, buf) in writes.drain(..) {
            self.give_back(buf);
        }
        self.writes = writes;
        self.close.clear();
        self.abort.clear();
        self.upgraded.clear();
        self.closing.clear();
        self.shared.clear();
        self.publications.clear();
        self.topics_joined.clear();
        self.topics_left.clear();
        self.topic_counts = TopicCounts::default();
    }
}

/// A TLS session the host established.
#[derive(Clone, Debug, Default)]
pub struct TlsInfo {
    pub protocol: String,
    pub cipher: String,
    pub server_name: String,
    pub alpn: String,
    pub peer_certificates: Vec<Vec<u8>>,
}

/// A TLS handshake that failed in the host.
pub struct TlsFailed {
    pub conn: u32,
    pub message: String,
    pub alert_received: Option<u8>,
    pub peer_verify: bool,
}

/// A failed `accept` on a listener.
pub struct AcceptFailed {
    pub listener: u32,
    pub message: String,
    /// Out of descriptors or memory.
    pub resource: bool,
}

/// Everything that arrived in one turn (see `wsbox:websocket/net.incoming`).
#[derive(Default)]
pub struct InBatch {
    pub accept_failed: Vec<AcceptFailed>,
    /// Bytes that reached the socket, per connection that asked.
    pub written: Vec<(u32, u64)>,
    pub tls_established: Vec<(u32, TlsInfo)>,
    pub tls_failed: Vec<TlsFailed>,
    pub opened: Vec<Opened>,
    /// `(conn, end)`: `data[previous end..end]` came from `conn`.
    pub runs: Vec<(u32, u32)>,
    pub data: Vec<u8>,
    pub eof: Vec<u32>,
    pub gone: Vec<u32>,
    /// Output past the connection's write limit (the transport stopped reading it).
    pub backed_up: Vec<u32>,
    /// Output drained after `backed_up`.
    pub drained: Vec<u32>,
    /// Publications from other instances, for this one's subscribers.
    pub publications: Vec<Publication>,
    /// The broker connection was lost (false) or is back (true).
    pub broker_connected: Option<bool>,
}

/// What a binding supplies: listeners, one exchange per turn, and the time.
pub trait Net {
    fn listen(&mut self, address: &str, port: u16, secure: bool) -> Result<ListenerInfo, (ListenErrorKind, String)>;
    fn unlisten(&mut self, listener: u32);
    /// Pauses (false) or resumes (true) accepting on a listener.
    fn set_accepting(&mut self, listener: u32, accepting: bool);
    /// Caps the bytes read for `conn` per turn (0: the transport's default).
    fn set_read_limit(&mut self, conn: u32, bytes: u32);
    /// Whether bytes written to `conn` are reported in [`InBatch::written`].
    fn report_written(&mut self, conn: u32, enabled: bool);
    /// Unwritten output past which `conn` is reported backed up and not read.
    fn set_write_limit(&mut self, conn: u32, bytes: u32);
    /// Writes `out`, waits up to `timeout_ms`, returns what arrived. The
    /// runtime empties `out` afterwards and reuses its buffers: a binding that
    /// moves them out puts them back.
    fn exchange(&mut self, out: &mut OutBatch, timeout_ms: u32) -> InBatch;
    /// Milliseconds on a monotonic clock.
    fn now_ms(&self) -> u64;
    /// Whether the transport wants every publication and every change of
    /// interest in a topic ([`OutBatch::publications`]): other instances
    /// may have subscribers. Asked once.
    fn forwards_publications(&self) -> bool {
        false
    }

    /// A path whose plain `GET` is a load balancer's health check (see the
    /// WIT's `net.health-check-path`); none by default. Asked once.
    fn health_check_path(&self) -> Option<String> {
        None
    }

    /// Whether the server takes new connections: a health check's answer.
    fn serving(&mut self) -> bool {
        true
    }

    /// A page the servers answer plain `GET`s of its path with (see the
    /// WIT's `net.page`); none by default. Asked once.
    fn page(&self) -> Option<wsbox_core::Page> {
        None
    }
}
