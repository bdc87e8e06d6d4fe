//! The answer to an upgrade request: the transport's admission decision,
//! the pending queue, the allowed origins, then the app (origin
//! authentication) or the upgrade itself.

use super::Runtime;
use crate::net::{Admission, Net};
use crate::server::{RETRY_AFTER_SECONDS, defer_server_error, record_forbidden, refuse_pending_full, status_phrase};
use crate::signals::{AppEvent, Sink};
use wsbox_core::CloseCode;

impl<N: Net> Runtime<N> {
    /// Answers an upgrade request: 503 when the server's pending queue is
    /// full (Qt closes without a response), 403 for an origin not allowed;
    /// otherwise the app is asked (origin authentication on) or it upgrades.
    pub(super) fn decide_upgrade(&mut self, id: u32, now: u64, sink: &mut impl Sink) {
        let Some(s) = self.sockets.get_mut(&id) else { return };
        if s.trusted_proxy
            && let Some((address, port)) = s.conn.request().and_then(crate::forwarded::client)
        {
            // Everything from here on (the app, its logs) sees the client.
            s.peer_address = address.to_string();
            s.peer_port = port.unwrap_or(0);
        }
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
