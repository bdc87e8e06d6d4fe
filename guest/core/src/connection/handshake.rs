//! The answer to the upgrade request: 101 with the negotiated subprotocol
//! and extensions, or an HTTP error.

use super::*;

impl Connection {
    /// Accepts the upgrade request announced by [`Event::UpgradeRequested`]:
    /// queues the 101 response (with the subprotocol chosen by Qt's rule) and
    /// handles any frames the client sent early. Does nothing otherwise.
    pub fn accept_upgrade(&mut self, now: u64) {
        if self.state() != State::Handshaking {
            return;
        }
        let Some(request) = &self.request else { return };
        let subprotocol = choose_subprotocol(&request.subprotocols, &self.config.subprotocols).map(str::to_string);
        let accept = accept_key(&request.key);
        let deflate = self
            .config
            .deflate
            .as_ref()
            .filter(|_| !self.extensions_declined)
            .and_then(|c| negotiate(&request.extensions, c));
        let extensions = deflate.as_ref().map(|(_, response)| response.as_str());
        write_upgrade_response(&mut self.out, &accept, subprotocol.as_deref(), extensions, &self.config.server_name);
        let level = self.config.deflate.as_ref().map_or(1, |c| c.level);
        self.deflate = deflate.map(|(params, response)| Deflate::new(params, response, level));
        self.subprotocol = subprotocol;
        let open = Phase::Open { stall_deadline: None, keepalive: Keepalive::default() };
        let Phase::Handshaking { head: early, .. } = std::mem::replace(&mut self.phase, open) else {
            unreachable!("checked above")
        };
        self.last_ping = now;
        self.heard_from_peer(now);
        self.records.push(Record::Upgraded);
        self.handle_frames(now, &early);
    }

    /// Refuses the upgrade request with an HTTP `status` (403 for a refused
    /// origin, 503 when too many connections wait): the response carries
    /// `body` as text, then the transport closes.
    pub fn refuse_upgrade(&mut self, status: u16, phrase: &str, body: &str) {
        if self.state() == State::Handshaking {
            self.refuse(status, phrase, body, None);
        }
    }

    /// [`Connection::refuse_upgrade`] with a `Retry-After` header: the
    /// refusal is for load (503, 429), and the client may retry in `seconds`.
    pub fn refuse_upgrade_retry_after(&mut self, status: u16, phrase: &str, body: &str, seconds: u32) {
        if self.state() == State::Handshaking {
            self.refuse(status, phrase, body, Some(&format!("Retry-After: {seconds}")));
        }
    }

    /// Answers the health check announced by [`Event::HealthCheck`]: `200`
    /// while the server is `serving`, `503` otherwise; then the transport
    /// closes. Does nothing otherwise.
    pub fn answer_health_check(&mut self, serving: bool) {
        let Some(head_only) = self.health_check.take() else { return };
        let (status, phrase, body) =
            if serving { (200, "OK", "serving") } else { (503, "Service Unavailable", "not serving") };
        self.refuse(status, phrase, body, None);
        if head_only {
            // A HEAD gets the GET's head, Content-Length included: the
            // response ends with the body and its newline.
            self.out.truncate(self.out.len() - (body.len() + 1));
        }
    }

    /// Makes [`Connection::accept_upgrade`] decline every extension offer
    /// (the server is short of memory for compression).
    pub fn decline_extensions(&mut self) {
        self.extensions_declined = true;
    }

    pub(super) fn refuse(&mut self, status: u16, phrase: &str, body: &str, extra_header: Option<&str>) {
        write_error_response(&mut self.out, status, phrase, body, extra_header, &self.config.server_name);
        self.phase = Phase::Closed;
        self.transport = Transport::Close;
    }
}
