//! The runtime: every server and socket of one component instance, and the
//! calls the app makes on them. The event loop itself is in [`turn`], the
//! mapping of core events to Qt's signals in [`events`], the upgrade
//! decision in [`upgrade`].

mod events;
mod publish;
mod turn;
mod upgrade;

use crate::net::{Net, OutBatch};
use crate::server::{PlainRequests, Server, record_forbidden, refuse_pending_full, status_phrase};
use crate::signals::Deferred;
use crate::socket::{DEFAULT_MAX_SEND_BUFFER, SEND_BUFFER_RANGE, Sent, Socket, mark_dirty};
use crate::timers::Timers;
use crate::topics::Topics;
use rustc_hash::FxHashMap;
use std::sync::Arc;
use wsbox_core::{CloseCode, Config, Connection, MessageKind, State};

/// Every server and socket of this component instance.
pub struct Runtime<N: Net> {
    net: N,
    next_server: u32,
    // Keyed by ids the transport and the runtime hand out, never by what a
    // peer chose: a plain fast hash, looked up several times per delivery.
    servers: FxHashMap<u32, Server>,
    by_listener: FxHashMap<u32, u32>,
    sockets: FxHashMap<u32, Socket>,
    dirty: Vec<u32>,
    timers: Timers,
    deferred: Vec<Deferred>,
    out: OutBatch,
    /// Sockets with a refused send, to tell when they have room.
    refused: Vec<u32>,
    topics: Topics,
    /// Publications go to the transport too (other instances may have subscribers).
    forwarding: bool,
    /// What the transport answers plain requests with, given to every
    /// server's connections.
    plain: PlainRequests,
}

impl<N: Net> Runtime<N> {
    pub fn new(net: N) -> Self {
        let forwarding = net.forwards_publications();
        let plain = PlainRequests { health_check_path: net.health_check_path(), page: net.page() };
        Self {
            plain,
            net,
            topics: Topics::new(forwarding),
            forwarding,
            next_server: 1,
            servers: FxHashMap::default(),
            by_listener: FxHashMap::default(),
            sockets: FxHashMap::default(),
            dirty: Vec::new(),
            timers: Timers::new(),
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
        let server = Server::new(name, secure, self.plain.clone());
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
        self.forget_topics_if_closed(id);
        let Some(s) = self.sockets.get_mut(&id) else { return };
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
}
