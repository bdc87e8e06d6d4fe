//! The event loop behind `server.process-events` and `server.turn`, shared by
//! every I/O binding: servers, their pending queues, the sockets and their
//! timers, and the mapping from core events to Qt's signals.
//!
//! One turn: emit deferred signals, write what every socket queued, wait for
//! the transport (up to the app's timeout or the next deadline), feed what
//! arrived to the cores, fire due timers. Output produced while handling
//! input (handshake responses, pongs, close replies) goes out at the start of
//! the next turn, together with the app's replies.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use wsbox_core::handshake::Request;
use wsbox_core::{CloseCode, Config, Connection, Event, MessageKind, SocketError, State, Transport};

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

/// Seconds a client refused for load is asked to wait (`Retry-After`).
const RETRY_AFTER_SECONDS: u32 = 5;

/// Everything to write in one turn (see `wsbox:websocket/net.outgoing`).
#[derive(Default)]
pub struct OutBatch {
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
    fn buffer(&mut self) -> Vec<u8> {
        self.spare.pop().unwrap_or_default()
    }

    /// Keeps `buf` for reuse if it is small (and there is room).
    fn give_back(&mut self, mut buf: Vec<u8>) {
        if buf.capacity() <= SPARE_CAPACITY && buf.capacity() > 0 && self.spare.len() < SPARE_BUFFERS {
            buf.clear();
            self.spare.push(buf);
        }
    }

    /// Empties the batch once the transport has written it.
    fn clear(&mut self) {
        let mut writes = std::mem::take(&mut self.writes);
        for (_, buf) in writes.drain(..) {
            self.give_back(buf);
        }
        self.writes = writes;
        self.close.clear();
        self.abort.clear();
        self.upgraded.clear();
        self.closing.clear();
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
}

/// What became of a message the app sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    Queued,
    /// Not connected (or text that is not UTF-8): dropped.
    Rejected,
    /// The send buffer is full: not queued; `Writable` follows.
    BufferFull,
}

/// Default cap on a socket's unsent output (the host's default write limit).
pub const DEFAULT_MAX_SEND_BUFFER: u64 = 4 * 1024 * 1024;
/// The range a send-buffer cap is clamped to. Up to twice the cap (what the
/// transport holds before it reports backed-up, plus one turn's output
/// queued meanwhile) and one 64 MiB message must stay under the host's hard
/// cap of 80 MiB (which guards against a guest that ignores its own cap).
pub const SEND_BUFFER_RANGE: std::ops::RangeInclusive<u64> = 64 * 1024..=8 * 1024 * 1024;
/// Default cap on connections still in the opening handshake, per server.
pub const DEFAULT_MAX_HANDSHAKING: usize = 1024;

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
}

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
enum Deferred {
    ServerError { server: u32, code: CloseCode, message: String, peer_address: String, peer_port: u16 },
    Closed(u32),
}

/// A `QWebSocketServer`.
pub struct Server {
    pub name: String,
    pub secure: bool,
    pub listener: Option<ListenerInfo>,
    pub pending: VecDeque<u32>,
    /// Sockets the app was told about in an earlier turn and has not taken:
    /// what `max_pending` is checked against. Upgrades of the current turn
    /// do not count, since the app cannot take them before the turn returns
    /// (in Qt the slot runs at once).
    waiting_before_turn: usize,
    pub max_pending: usize,
    pub error: CloseCode,
    pub error_string: String,
    pub config: Arc<Config>,
    /// `pauseAccepting` was called (and not `resumeAccepting`).
    pub paused: bool,
    /// Origins allowed to upgrade; empty allows any.
    pub allowed_origins: Vec<String>,
    /// Each well-formed request waits for the app's decision.
    pub origin_authentication: bool,
    /// Send-buffer cap of later sockets.
    pub max_send_buffer: u64,
    /// Connections in the opening handshake at most.
    pub max_handshaking: usize,
    /// Connections accepted in arrival order, oldest first, while they may
    /// still be in the handshake (pruned lazily).
    handshaking: VecDeque<u32>,
}

/// A connection and what the runtime knows about it.
pub struct Socket {
    pub conn: Connection,
    pub server: u32,
    pub peer_address: String,
    pub peer_port: u16,
    pub local_address: String,
    pub local_port: u16,
    /// The TLS session, on a secure server.
    pub tls: Option<TlsInfo>,
    /// Handed to the app by `next-pending-connection`.
    taken: bool,
    /// The app dropped its handle: no more signals for it.
    released: bool,
    /// Queued in `dirty` for the next flush.
    dirty: bool,
    /// Close or abort was handed to the transport.
    transport_done: bool,
    /// The deadline currently in the timer heap.
    timer: Option<u64>,
    /// The request waits for the app's `accept_handshake` / `refuse_handshake`.
    awaiting_decision: bool,
    /// The last transport error (Qt's `error()`).
    pub error: Option<SocketError>,
    /// Qt's `readBufferSize` (0: unlimited, the transport's default share).
    pub read_buffer_size: u64,
    /// `bytesWritten` events are wanted.
    pub bytes_written_events: bool,
    /// Sends are refused past this much unsent output.
    pub max_send_buffer: u64,
    /// The transport reported the output backed up (not yet drained).
    backed_up: bool,
    /// A send was refused: later ones are too (order) until `Writable`.
    send_refused: bool,
    /// What the transport's admission policy decided.
    admission: Admission,
    /// The transport was told it upgraded, and that its close frame went out.
    told_upgraded: bool,
    told_closing: bool,
}

impl Socket {
    /// Whether a send now would be refused for want of buffer room.
    pub fn send_buffer_full(&self) -> bool {
        self.send_refused || self.backed_up || self.conn.bytes_to_write() as u64 >= self.max_send_buffer
    }
}

/// Every server and socket of this component instance.
pub struct Runtime<N: Net> {
    net: N,
    next_server: u32,
    servers: HashMap<u32, Server>,
    by_listener: HashMap<u32, u32>,
    sockets: HashMap<u32, Socket>,
    dirty: Vec<u32>,
    timers: BinaryHeap<Reverse<(u64, u32)>>,
    deferred: Vec<Deferred>,
    out: OutBatch,
    /// Sockets with a refused send, to tell when they have room.
    refused: Vec<u32>,
}

/// Qt's default for `maxPendingConnections`.
const DEFAULT_MAX_PENDING: usize = 30;

impl<N: Net> Runtime<N> {
    pub fn new(net: N) -> Self {
        Self {
            net,
            next_server: 1,
            servers: HashMap::new(),
            by_listener: HashMap::new(),
            sockets: HashMap::new(),
            dirty: Vec::new(),
            timers: BinaryHeap::new(),
            deferred: Vec::new(),
            out: OutBatch::default(),
            refused: Vec::new(),
        }
    }

    pub fn now_ms(&self) -> u64 {
        self.net.now_ms()
    }

    // ---- servers ----

    pub fn new_server(&mut self, name: String, secure: bool) -> u32 {
        let id = self.next_server;
        self.next_server += 1;
        let config = Config { server_name: name.clone(), secure, ..Config::default() };
        let server = Server {
            name,
            secure,
            listener: None,
            pending: VecDeque::new(),
            waiting_before_turn: 0,
            max_pending: DEFAULT_MAX_PENDING,
            error: CloseCode::NORMAL,
            error_string: String::new(),
            config: Arc::new(config),
            paused: false,
            allowed_origins: Vec::new(),
            origin_authentication: false,
            max_send_buffer: DEFAULT_MAX_SEND_BUFFER,
            max_handshaking: DEFAULT_MAX_HANDSHAKING,
            handshaking: VecDeque::new(),
        };
        self.servers.insert(id, server);
        id
    }

    pub fn server(&self, id: u32) -> &Server {
        &self.servers[&id]
    }

    pub fn server_config_mut(&mut self, id: u32) -> &mut Config {
        Arc::make_mut(&mut self.servers.get_mut(&id).expect("live server").config)
    }

    pub fn server_mut(&mut self, id: u32) -> &mut Server {
        self.servers.get_mut(&id).expect("live server")
    }

    /// `pauseAccepting` (false) / `resumeAccepting` (true).
    pub fn set_accepting(&mut self, id: u32, accepting: bool) {
        let server = self.servers.get_mut(&id).expect("live server");
        server.paused = !accepting;
        if let Some(listener) = &server.listener {
            self.net.set_accepting(listener.id, accepting);
        }
    }

    /// Lets a request the app was asked about upgrade (the pending cap is
    /// checked again: the queue may have filled meanwhile).
    pub fn accept_handshake(&mut self, server: u32, socket: u32) {
        let now = self.net.now_ms();
        let Some(s) = self.sockets.get_mut(&socket).filter(|s| s.awaiting_decision && s.server == server) else {
            return;
        };
        s.awaiting_decision = false;
        let Some(srv) = self.servers.get_mut(&server) else { return };
        if srv.pending.len() >= srv.max_pending {
            refuse_pending_full(srv, server, s, &mut self.deferred);
        } else {
            s.conn.accept_upgrade(now);
        }
        mark_dirty(&mut self.dirty, socket, s);
    }

    /// Refuses a request the app was asked about: HTTP `status` (403 when
    /// not a 4xx/5xx), `server-error` 1008 at the next turn.
    pub fn refuse_handshake(&mut self, server: u32, socket: u32, status: u16, reason: &str) {
        let Some(s) = self.sockets.get_mut(&socket).filter(|s| s.awaiting_decision && s.server == server) else {
            return;
        };
        s.awaiting_decision = false;
        let status = if (400..600).contains(&status) { status } else { 403 };
        s.conn.refuse_upgrade(status, status_phrase(status), reason);
        if let Some(srv) = self.servers.get_mut(&server) {
            record_forbidden(srv, server, s, &mut self.deferred);
        }
        mark_dirty(&mut self.dirty, socket, s);
    }

    /// Qt's `setReadBufferSize`: passed to the transport as a per-turn cap.
    pub fn set_read_buffer_size(&mut self, id: u32, size: u64) {
        if let Some(s) = self.sockets.get_mut(&id) {
            s.read_buffer_size = size;
            self.net.set_read_limit(id, size.min(u32::MAX as u64) as u32);
        }
    }

    /// Whether `bytesWritten` is reported for a socket.
    pub fn set_bytes_written_events(&mut self, id: u32, enabled: bool) {
        if let Some(s) = self.sockets.get_mut(&id) {
            s.bytes_written_events = enabled;
            self.net.report_written(id, enabled);
        }
    }

    /// The socket's send-buffer cap (0 restores the server's), clamped to
    /// [`SEND_BUFFER_RANGE`]; the transport's write limit follows it.
    pub fn set_max_send_buffer(&mut self, id: u32, size: u64) {
        let Some(s) = self.sockets.get_mut(&id) else { return };
        let size = if size == 0 {
            self.servers.get(&s.server).map_or(DEFAULT_MAX_SEND_BUFFER, |srv| srv.max_send_buffer)
        } else {
            size.clamp(*SEND_BUFFER_RANGE.start(), *SEND_BUFFER_RANGE.end())
        };
        s.max_send_buffer = size;
        self.net.set_write_limit(id, size as u32);
    }

    /// `flush`: true when bytes were waiting; they are handed over at the
    /// next exchange (at the latest when this call's turn ends).
    pub fn flush_socket(&mut self, id: u32) -> bool {
        let Some(s) = self.sockets.get_mut(&id) else { return false };
        let waiting = s.conn.bytes_to_write() > 0;
        if waiting {
            mark_dirty(&mut self.dirty, id, s);
        }
        waiting
    }

    pub fn listen(&mut self, id: u32, address: &str, port: u16) -> bool {
        let server = self.servers.get_mut(&id).expect("live server");
        if server.listener.is_some() {
            return false;
        }
        match self.net.listen(address, port, server.secure) {
            Ok(info) => {
                self.by_listener.insert(info.id, id);
                if server.paused {
                    self.net.set_accepting(info.id, false);
                }
                server.listener = Some(info);
                true
            }
            Err((_, message)) => {
                // Qt reports a failed listen as serverError(1006) with the OS text.
                server.error = CloseCode::ABNORMAL_DISCONNECTION;
                server.error_string = message.clone();
                self.deferred.push(Deferred::ServerError {
                    server: id,
                    code: server.error,
                    message,
                    peer_address: String::new(),
                    peer_port: 0,
                });
                false
            }
        }
    }

    /// `QWebSocketServer::close`: stop listening, close sockets not yet taken
    /// with 1001, leave taken ones alone, emit `closed` next turn.
    pub fn close_server(&mut self, id: u32) {
        let now = self.now_ms();
        let server = self.servers.get_mut(&id).expect("live server");
        if let Some(listener) = server.listener.take() {
            self.by_listener.remove(&listener.id);
            self.net.unlisten(listener.id);
        }
        let pending: Vec<u32> = server.pending.drain(..).collect();
        for socket in pending {
            if let Some(s) = self.sockets.get_mut(&socket) {
                s.conn.close(now, CloseCode::GOING_AWAY, "Server closed.");
                s.released = true;
                mark_dirty(&mut self.dirty, socket, s);
            }
        }
        self.deferred.push(Deferred::Closed(id));
    }

    pub fn drop_server(&mut self, id: u32) {
        self.close_server(id);
        self.deferred.retain(|d| !matches!(d, Deferred::Closed(s) if *s == id));
        self.servers.remove(&id);
    }

    pub fn next_pending(&mut self, id: u32) -> Option<u32> {
        let server = self.servers.get_mut(&id)?;
        while let Some(socket) = server.pending.pop_front() {
            if let Some(s) = self.sockets.get_mut(&socket) {
                s.taken = true;
                return Some(socket);
            }
        }
        None
    }

    // ---- sockets ----

    pub fn socket(&self, id: u32) -> Option<&Socket> {
        self.sockets.get(&id)
    }

    /// Runs a command on a socket's core and schedules its output.
    pub fn with_socket<R>(&mut self, id: u32, f: impl FnOnce(&mut Connection, u64) -> R) -> Option<R> {
        let now = self.net.now_ms();
        let s = self.sockets.get_mut(&id)?;
        let r = f(&mut s.conn, now);
        mark_dirty(&mut self.dirty, id, s);
        Some(r)
    }

    /// The app dropped its handle: close with 1001 if still open (Qt's
    /// destructor), stop reporting signals, forget the socket once closed.
    pub fn release_socket(&mut self, id: u32) {
        let now = self.net.now_ms();
        let Some(s) = self.sockets.get_mut(&id) else { return };
        s.released = true;
        s.conn.close(now, CloseCode::GOING_AWAY, "Connection closed");
        if s.transport_done {
            self.sockets.remove(&id);
        } else {
            mark_dirty(&mut self.dirty, id, s);
        }
    }

    // ---- the loop ----

    /// Queues one app message, unless the socket is not connected or its
    /// send buffer is full (then it and every later one wait for `Writable`).
    pub fn send(&mut self, id: u32, kind: MessageKind, payload: &[u8]) -> Sent {
        if kind == MessageKind::Text && std::str::from_utf8(payload).is_err() {
            return Sent::Rejected;
        }
        let Some(s) = self.sockets.get_mut(&id) else { return Sent::Rejected };
        if s.released || s.conn.state() != State::Open {
            return Sent::Rejected;
        }
        if s.send_buffer_full() {
            if !s.send_refused {
                s.send_refused = true;
                self.refused.push(id);
            }
            return Sent::BufferFull;
        }
        s.conn.send(kind, payload);
        mark_dirty(&mut self.dirty, id, s);
        Sent::Queued
    }

    /// One turn of the event loop.
    pub fn turn(&mut self, timeout_ms: u32, sink: &mut impl Sink) {
        for server in self.servers.values_mut() {
            server.waiting_before_turn = server.pending.len();
        }
        for d in self.deferred.drain(..) {
            match d {
                Deferred::ServerError { server, code, message, peer_address, peer_port } => {
                    sink.push(AppEvent::ServerError {
                        server,
                        code,
                        message: &message,
                        peer_address: &peer_address,
                        peer_port,
                    })
                }
                Deferred::Closed(server) => sink.push(AppEvent::Closed(server)),
            }
        }
        // One clock reading serves the flush and the wait budget: they are
        // microseconds apart, and each reading is a call out of the sandbox
        // (a turn makes two; at ~2 messages a turn under load, every call
        // counts).
        let now = self.net.now_ms();
        self.flush(now, sink);

        let timeout = if sink.is_empty() { self.wait_budget(now, timeout_ms) } else { 0 };
        let input = self.net.exchange(&mut self.out, timeout);
        self.out.clear();
        let now = self.net.now_ms();
        sink.expect_payload(input.data.len());

        for o in input.opened {
            let Some(&server) = self.by_listener.get(&o.listener) else {
                // Accepted just before its listener closed: nobody wants it.
                self.out.abort.push(o.conn);
                continue;
            };
            let srv = self.servers.get_mut(&server).expect("live server");
            let config = Arc::clone(&srv.config);
            let max_send_buffer = srv.max_send_buffer;
            if let Some(oldest) = make_room_for_handshake(srv, &self.sockets) {
                // Dropped without a response: it never finished its request.
                if let Some(s) = self.sockets.get_mut(&oldest) {
                    s.conn.abort();
                    mark_dirty(&mut self.dirty, oldest, s);
                }
            }
            srv.handshaking.push_back(o.conn);
            if max_send_buffer != DEFAULT_MAX_SEND_BUFFER {
                self.net.set_write_limit(o.conn, max_send_buffer as u32);
            }
            let socket = Socket {
                conn: Connection::new(config, now),
                server,
                peer_address: o.peer_address,
                peer_port: o.peer_port,
                local_address: o.local_address,
                local_port: o.local_port,
                tls: None,
                taken: false,
                released: false,
                dirty: false,
                transport_done: false,
                timer: None,
                awaiting_decision: false,
                error: None,
                read_buffer_size: 0,
                bytes_written_events: false,
                max_send_buffer,
                backed_up: false,
                send_refused: false,
                admission: o.admission,
                told_upgraded: false,
                told_closing: false,
            };
            self.sockets.insert(o.conn, socket);
            self.after_input(o.conn, now, sink);
        }
        for f in &input.accept_failed {
            if let Some(&server) = self.by_listener.get(&f.listener) {
                sink.push(AppEvent::AcceptError { server, message: &f.message, resource: f.resource });
            }
        }
        for &(socket, bytes) in &input.written {
            if self.sockets.get(&socket).is_some_and(|s| s.bytes_written_events && !s.released) {
                sink.push(AppEvent::BytesWritten { socket, bytes });
            }
        }
        for conn in input.backed_up {
            if let Some(s) = self.sockets.get_mut(&conn) {
                s.backed_up = true;
            }
        }
        for conn in input.drained {
            if let Some(s) = self.sockets.get_mut(&conn) {
                s.backed_up = false;
            }
        }
        if !self.refused.is_empty() {
            let sockets = &mut self.sockets;
            self.refused.retain(|&id| {
                let Some(s) = sockets.get_mut(&id).filter(|s| !s.released && s.conn.state() == State::Open) else {
                    return false;
                };
                s.send_refused = false;
                if s.send_buffer_full() {
                    s.send_refused = true;
                    return true;
                }
                sink.push(AppEvent::Writable(id));
                false
            });
        }
        for (conn, info) in input.tls_established {
            if let Some(s) = self.sockets.get_mut(&conn) {
                s.tls = Some(info);
            }
        }
        for f in &input.tls_failed {
            if let Some(s) = self.sockets.get(&f.conn).filter(|s| !s.released) {
                let (server, socket) = (s.server, f.conn);
                if let Some(alert) = f.alert_received {
                    sink.push(AppEvent::TlsAlertReceived { server, socket, alert, description: &f.message });
                }
                sink.push(AppEvent::TlsFailed {
                    server,
                    socket,
                    message: &f.message,
                    peer_address: &s.peer_address,
                    peer_port: s.peer_port,
                    peer_verify: f.peer_verify,
                });
            }
        }
        let mut start = 0usize;
        for &(conn, end) in &input.runs {
            let end = (end as usize).clamp(start, input.data.len());
            let bytes = &input.data[start..end];
            start = end;
            if let Some(s) = self.sockets.get_mut(&conn) {
                s.conn.handle_input(now, bytes);
                self.after_input(conn, now, sink);
            }
        }
        for conn in input.eof {
            if let Some(s) = self.sockets.get_mut(&conn) {
                s.conn.handle_eof(now);
                self.after_input(conn, now, sink);
            }
        }
        for conn in input.gone {
            if let Some(s) = self.sockets.get_mut(&conn) {
                s.conn.handle_reset(now);
                s.transport_done = true;
                self.after_input(conn, now, sink);
            }
        }
        while let Some(&Reverse((deadline, conn))) = self.timers.peek() {
            if deadline > now {
                break;
            }
            self.timers.pop();
            if let Some(s) = self.sockets.get_mut(&conn)
                && s.timer == Some(deadline)
            {
                s.timer = None;
                s.conn.handle_timeout(now);
                self.after_input(conn, now, sink);
            }
        }
    }

    /// How long the exchange may wait: the app's timeout, cut at the next deadline.
    fn wait_budget(&mut self, now: u64, timeout_ms: u32) -> u32 {
        while let Some(&Reverse((deadline, conn))) = self.timers.peek() {
            let live = self.sockets.get(&conn).is_some_and(|s| s.timer == Some(deadline));
            if live {
                return deadline.saturating_sub(now).min(timeout_ms as u64) as u32;
            }
            self.timers.pop();
        }
        timeout_ms
    }

    /// Writes every dirty socket's output into the batch and applies its
    /// transport action; forgets sockets that are over and not held.
    fn flush(&mut self, now: u64, sink: &mut impl Sink) {
        let dirty = std::mem::take(&mut self.dirty);
        for id in &dirty {
            let Some(s) = self.sockets.get_mut(id) else { continue };
            s.dirty = false;
            // The app has answered the last turn's messages: a deferred
            // protocol error may now close the connection.
            s.conn.end_round();
            self.drain(*id, now, sink);
            let Some(s) = self.sockets.get_mut(id) else { continue };
            let mut bytes = self.out.buffer();
            s.conn.take_transmit(&mut bytes);
            if !bytes.is_empty() && !s.transport_done {
                self.out.writes.push((*id, bytes));
            } else {
                self.out.give_back(bytes);
            }
            if !s.told_upgraded && matches!(s.conn.state(), State::Open | State::Closing) {
                s.told_upgraded = true;
                self.out.upgraded.push(*id);
            }
            if !s.told_closing && s.told_upgraded && s.conn.close_sent() {
                s.told_closing = true;
                self.out.closing.push(*id);
            }
            if !s.transport_done {
                match s.conn.transport() {
                    Transport::Open => {}
                    Transport::Close => {
                        self.out.close.push(*id);
                        s.transport_done = true;
                    }
                    Transport::Abort => {
                        self.out.abort.push(*id);
                        s.transport_done = true;
                    }
                }
            }
            // Commands (close, a dropped handle) may have set a deadline.
            schedule(&mut self.timers, *id, s);
            if s.transport_done && (!s.taken || s.released) {
                let server = s.server;
                self.sockets.remove(id);
                if let Some(srv) = self.servers.get_mut(&server) {
                    srv.pending.retain(|p| p != id);
                }
            }
        }
        let mut dirty = dirty;
        dirty.clear();
        if self.dirty.is_empty() {
            self.dirty = dirty;
        }
    }

    /// After input or a timer: report the socket's signals, schedule its
    /// output and its next deadline.
    fn after_input(&mut self, id: u32, now: u64, sink: &mut impl Sink) {
        self.drain(id, now, sink);
        let Some(s) = self.sockets.get_mut(&id) else { return };
        if s.conn.bytes_to_write() > 0 || s.conn.transport() != Transport::Open || s.conn.has_pending_failure() {
            mark_dirty(&mut self.dirty, id, s);
        }
        schedule(&mut self.timers, id, s);
    }

    /// Turns the core's events into signals; decides upgrade requests.
    fn drain(&mut self, id: u32, now: u64, sink: &mut impl Sink) {
        loop {
            let Some(s) = self.sockets.get_mut(&id) else { return };
            let server_id = s.server;
            let mut server = self.servers.get_mut(&server_id);
            let mut requested = false;
            let quiet = s.released;
            let (peer_address, peer_port) = (s.peer_address.as_str(), s.peer_port);
            let mut last_error = None;
            s.conn.drain_events(|e| {
                let socket = id;
                match e {
                    Event::UpgradeRequested => requested = true,
                    Event::Upgraded => {
                        if let Some(srv) = server.as_deref_mut() {
                            srv.pending.push_back(id);
                            sink.push(AppEvent::NewConnection(server_id));
                        }
                    }
                    Event::HandshakeRefused(error) => {
                        if let Some(srv) = server.as_deref_mut() {
                            srv.error = error.close_code();
                            srv.error_string = error.message().to_string();
                        }
                        let (code, message) = (error.close_code(), error.message());
                        sink.push(AppEvent::ServerError { server: server_id, code, message, peer_address, peer_port });
                    }
                    _ if quiet => {}
                    Event::TextMessage(data) => sink.push(AppEvent::Message { socket, kind: MessageKind::Text, data }),
                    Event::BinaryMessage(data) => {
                        sink.push(AppEvent::Message { socket, kind: MessageKind::Binary, data })
                    }
                    Event::TextFrame { frame, is_last } => {
                        sink.push(AppEvent::Frame { socket, kind: MessageKind::Text, data: frame, is_last })
                    }
                    Event::BinaryFrame { frame, is_last } => {
                        sink.push(AppEvent::Frame { socket, kind: MessageKind::Binary, data: frame, is_last })
                    }
                    Event::Pong { elapsed_ms, payload } => sink.push(AppEvent::Pong { socket, elapsed_ms, payload }),
                    Event::StateChanged(state) => sink.push(AppEvent::StateChanged { socket, state }),
                    Event::AboutToClose => sink.push(AppEvent::AboutToClose(socket)),
                    Event::ReadChannelFinished => sink.push(AppEvent::ReadChannelFinished(socket)),
                    Event::Disconnected => sink.push(AppEvent::Disconnected(socket)),
                    Event::Error(error) => {
                        last_error = Some(error);
                        sink.push(AppEvent::Error { socket, error })
                    }
                }
            });
            if last_error.is_some() {
                s.error = last_error;
            }
            if !requested {
                return;
            }
            self.decide_upgrade(id, now, sink);
        }
    }

    /// Answers an upgrade request: 503 when the server's pending queue is
    /// full (Qt closes without a response), 403 for an origin not allowed;
    /// otherwise the app is asked (origin authentication on) or it upgrades.
    fn decide_upgrade(&mut self, id: u32, now: u64, sink: &mut impl Sink) {
        let Some(s) = self.sockets.get_mut(&id) else { return };
        let Some(server) = self.servers.get_mut(&s.server) else {
            s.conn.refuse_upgrade(503, "Service Unavailable", "The server is closed.");
            return;
        };
        let server_id = s.server;
        if let Some((status, message, code)) = match s.admission {
            Admission::RefuseBusy => {
                Some((503, "The server is busy: its memory is near its limit.", CloseCode::TRY_AGAIN_LATER))
            }
            Admission::RefuseAddress => {
                Some((429, "Too many connections from this address.", CloseCode::POLICY_VIOLATED))
            }
            Admission::Admit | Admission::AdmitUncompressed => None,
        } {
            s.conn.refuse_upgrade_retry_after(status, status_phrase(status), message, RETRY_AFTER_SECONDS);
            defer_server_error(server, server_id, s, code, message, &mut self.deferred);
            return;
        }
        if s.admission == Admission::AdmitUncompressed {
            s.conn.decline_extensions();
        }
        let origin = s.conn.request().map_or("", |r| r.origin.as_str());
        if server.waiting_before_turn >= server.max_pending {
            refuse_pending_full(server, server_id, s, &mut self.deferred);
        } else if !server.allowed_origins.is_empty() && !server.allowed_origins.iter().any(|o| o == origin) {
            s.conn.refuse_upgrade(403, "Forbidden", "Access forbidden.");
            record_forbidden(server, server_id, s, &mut self.deferred);
        } else if server.origin_authentication {
            s.awaiting_decision = true;
            if let Some(request) = s.conn.request() {
                sink.push(AppEvent::OriginAuthenticationRequired {
                    server: server_id,
                    socket: id,
                    request,
                    peer_address: &s.peer_address,
                    peer_port: s.peer_port,
                });
            }
        } else {
            s.conn.accept_upgrade(now);
        }
    }
}

/// Keeps a server's connections in the handshake under its cap: forgets
/// those that finished (or are gone) and, when the cap is still reached,
/// returns the oldest unfinished one to drop.
fn make_room_for_handshake(server: &mut Server, sockets: &HashMap<u32, Socket>) -> Option<u32> {
    let unfinished =
        |id: &u32| sockets.get(id).is_some_and(|s| s.conn.state() == State::Handshaking && !s.transport_done);
    if server.handshaking.len() >= server.max_handshaking {
        server.handshaking.retain(unfinished);
    }
    if server.handshaking.len() >= server.max_handshaking.max(1) {
        return server.handshaking.pop_front();
    }
    None
}

/// The pending queue is full: 503, and `server-error` 1006 as Qt reports it.
fn refuse_pending_full(server: &mut Server, server_id: u32, s: &mut Socket, deferred: &mut Vec<Deferred>) {
    let message = "Too many pending connections.";
    s.conn.refuse_upgrade(503, "Service Unavailable", message);
    defer_server_error(server, server_id, s, CloseCode::ABNORMAL_DISCONNECTION, message, deferred);
}

/// An origin was refused: `server-error` 1008 "Access forbidden." (Qt's).
fn record_forbidden(server: &mut Server, server_id: u32, s: &Socket, deferred: &mut Vec<Deferred>) {
    defer_server_error(server, server_id, s, CloseCode::POLICY_VIOLATED, "Access forbidden.", deferred);
}

/// Records a refused handshake as the server's last error and queues its
/// `server-error` (with the peer) for the next turn.
fn defer_server_error(
    server: &mut Server,
    server_id: u32,
    s: &Socket,
    code: CloseCode,
    message: &str,
    deferred: &mut Vec<Deferred>,
) {
    server.error = code;
    server.error_string = message.to_string();
    deferred.push(Deferred::ServerError {
        server: server_id,
        code,
        message: message.to_string(),
        peer_address: s.peer_address.clone(),
        peer_port: s.peer_port,
    });
}

/// The reason phrase of an HTTP error status the app may choose.
fn status_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Refused",
    }
}

/// Puts the socket's next deadline in the timer heap (stale entries are
/// skipped when they come up).
///
/// A deadline that moves later (the stall and keepalive clocks restart with
/// every input) keeps the entry already in the heap: it fires early, the
/// core ignores a timeout that is not due, and the socket is rescheduled
/// then. So input costs no heap push; only an earlier deadline adds one.
fn schedule(timers: &mut BinaryHeap<Reverse<(u64, u32)>>, id: u32, s: &mut Socket) {
    match (s.conn.poll_timeout(), s.timer) {
        (Some(deadline), Some(queued)) if queued <= deadline => {}
        (Some(deadline), _) => {
            s.timer = Some(deadline);
            timers.push(Reverse((deadline, id)));
        }
        (None, _) => s.timer = None,
    }
}

fn mark_dirty(dirty: &mut Vec<u32>, id: u32, s: &mut Socket) {
    if !s.dirty {
        s.dirty = true;
        dirty.push(id);
    }
}
