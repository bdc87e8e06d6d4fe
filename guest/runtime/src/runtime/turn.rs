//! One turn of the event loop: deferred signals, output handed to the
//! transport, the exchange, input fed to the cores, due timers.
//!
//! Output produced while handling input (handshake responses, pongs, close
//! replies) goes out at the start of the next turn, with the app's replies.

use super::Runtime;
use crate::net::{InBatch, Net, Opened};
use crate::server::make_room_for_handshake;
use crate::signals::{AppEvent, Deferred, Sink};
use crate::socket::{DEFAULT_MAX_SEND_BUFFER, Socket, mark_dirty};
use crate::timers::schedule;
use std::cmp::Reverse;
use std::sync::Arc;
use wsbox_core::{State, Transport};

impl<N: Net> Runtime<N> {
    /// One turn of the event loop.
    pub fn turn(&mut self, timeout_ms: u32, sink: &mut impl Sink) {
        for server in self.servers.values_mut() {
            server.waiting_before_turn = server.pending.len();
        }
        self.emit_deferred(sink);
        // One clock reading serves the flush and the wait budget: they are
        // microseconds apart, and each reading is a call out of the sandbox
        // (a turn makes two; at ~2 messages a turn under load, every call
        // counts).
        let now = self.net.now_ms();
        self.flush(now, sink);

        self.report_interest();

        let timeout = if sink.is_empty() { self.wait_budget(now, timeout_ms) } else { 0 };
        let mut input = self.net.exchange(&mut self.out, timeout);
        self.shared_written();
        self.out.clear();
        let now = self.net.now_ms();
        sink.expect_payload(input.data.len());

        for o in std::mem::take(&mut input.opened) {
            self.accept(o, now, sink);
        }
        if let Some(connected) = input.broker_connected {
            sink.push(AppEvent::BrokerConnected(connected));
        }
        for publication in std::mem::take(&mut input.publications) {
            self.deliver_from_elsewhere(&publication);
        }
        self.take_reports(&mut input, sink);
        self.feed(input, now, sink);
        self.fire_timers(now, sink);
    }

    /// Signals raised by calls since the last turn.
    fn emit_deferred(&mut self, sink: &mut impl Sink) {
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
    }

    /// A connection the transport accepted: a socket in the handshake, under
    /// the server's handshake cap (the oldest unfinished one makes room).
    fn accept(&mut self, o: Opened, now: u64, sink: &mut impl Sink) {
        let Some(&server) = self.by_listener.get(&o.listener) else {
            // Accepted just before its listener closed: nobody wants it.
            self.out.abort.push(o.conn);
            return;
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
        let conn = o.conn;
        self.sockets.insert(conn, Socket::accepted(config, now, server, o, max_send_buffer));
        self.after_input(conn, now, sink);
    }

    /// What the transport reports besides input: accept failures, bytes
    /// written, output backed up or drained (and so room for refused sends),
    /// TLS sessions made or failed.
    fn take_reports(&mut self, input: &mut InBatch, sink: &mut impl Sink) {
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
        for conn in &input.backed_up {
            if let Some(s) = self.sockets.get_mut(conn) {
                s.backed_up = true;
            }
        }
        for conn in &input.drained {
            if let Some(s) = self.sockets.get_mut(conn) {
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
        for (conn, info) in input.tls_established.drain(..) {
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
    }

    /// Each connection's bytes, end of input and resets, to its core.
    fn feed(&mut self, input: InBatch, now: u64, sink: &mut impl Sink) {
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
    }

    /// Timeouts that are due.
    fn fire_timers(&mut self, now: u64, sink: &mut impl Sink) {
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
            self.forget_topics_if_closed(*id);
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
    pub(super) fn after_input(&mut self, id: u32, now: u64, sink: &mut impl Sink) {
        self.drain(id, now, sink);
        let Some(s) = self.sockets.get_mut(&id) else { return };
        if s.conn.bytes_to_write() > 0 || s.conn.transport() != Transport::Open || s.conn.has_pending_failure() {
            mark_dirty(&mut self.dirty, id, s);
        }
        schedule(&mut self.timers, id, s);
    }
}
