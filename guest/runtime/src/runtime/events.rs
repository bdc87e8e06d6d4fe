//! The core's events of one socket, turned into Qt's signals.

use super::Runtime;
use crate::net::Net;
use crate::signals::{AppEvent, Sink};
use wsbox_core::{Event, MessageKind};

impl<N: Net> Runtime<N> {
    /// Turns the core's events into signals; decides upgrade requests.
    pub(super) fn drain(&mut self, id: u32, now: u64, sink: &mut impl Sink) {
        loop {
            let Some(s) = self.sockets.get_mut(&id) else { return };
            let server_id = s.server;
            let mut server = self.servers.get_mut(&server_id);
            let mut requested = false;
            let mut health_check = false;
            let quiet = s.released;
            let (peer_address, peer_port) = (s.peer_address.as_str(), s.peer_port);
            let mut last_error = None;
            s.conn.drain_events(|e| {
                let socket = id;
                match e {
                    Event::UpgradeRequested => requested = true,
                    Event::HealthCheck => health_check = true,
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
            if health_check {
                let serving = self.net.serving();
                if let Some(s) = self.sockets.get_mut(&id) {
                    s.conn.answer_health_check(serving);
                }
                return;
            }
            if !requested {
                return;
            }
            self.decide_upgrade(id, now, sink);
        }
    }
}
