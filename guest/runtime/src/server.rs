//! A `QWebSocketServer`'s state and its upgrade policy's rules: the pending
//! queue, the cap on connections in the handshake, and how a refusal is
//! recorded as the server's error.

use crate::net::ListenerInfo;
use crate::signals::Deferred;
use crate::socket::Socket;
use rustc_hash::FxHashMap;
use std::collections::VecDeque;
use std::sync::Arc;
use wsbox_core::{CloseCode, Config, State};

/// Qt's default for `maxPendingConnections`.
pub const DEFAULT_MAX_PENDING: usize = wsbox_defaults::MAX_PENDING_CONNECTIONS;
/// Default cap on connections still in the opening handshake, per server.
pub const DEFAULT_MAX_HANDSHAKING: usize = wsbox_defaults::MAX_HANDSHAKING;
/// Seconds a client refused for load is asked to wait (`Retry-After`).
pub(crate) const RETRY_AFTER_SECONDS: u32 = 5;

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
    pub(crate) waiting_before_turn: usize,
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
    pub(crate) handshaking: VecDeque<u32>,
}

/// What a server answers plain (not upgrading) requests with, besides 400:
/// the transport's health check and page.
#[derive(Clone, Debug, Default)]
pub(crate) struct PlainRequests {
    pub health_check_path: Option<String>,
    pub page: Option<wsbox_core::Page>,
}

impl Server {
    /// A server with Qt's defaults and wsbox's caps, not listening.
    pub(crate) fn new(name: String, secure: bool, plain: PlainRequests) -> Self {
        let PlainRequests { health_check_path, page } = plain;
        let config = Config { server_name: name.clone(), secure, health_check_path, page, ..Config::default() };
        Server {
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
            max_send_buffer: crate::socket::DEFAULT_MAX_SEND_BUFFER,
            max_handshaking: DEFAULT_MAX_HANDSHAKING,
            handshaking: VecDeque::new(),
        }
    }
}

/// Keeps a server's connections in the handshake under its cap: forgets
/// those that finished (or are gone) and, when the cap is still reached,
/// returns the oldest unfinished one to drop.
pub(crate) fn make_room_for_handshake(server: &mut Server, sockets: &FxHashMap<u32, Socket>) -> Option<u32> {
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
pub(crate) fn refuse_pending_full(server: &mut Server, server_id: u32, s: &mut Socket, deferred: &mut Vec<Deferred>) {
    let message = "Too many pending connections.";
    s.conn.refuse_upgrade(503, "Service Unavailable", message);
    defer_server_error(server, server_id, s, CloseCode::ABNORMAL_DISCONNECTION, message, deferred);
}

/// An origin was refused: `server-error` 1008 "Access forbidden." (Qt's).
pub(crate) fn record_forbidden(server: &mut Server, server_id: u32, s: &Socket, deferred: &mut Vec<Deferred>) {
    defer_server_error(server, server_id, s, CloseCode::POLICY_VIOLATED, "Access forbidden.", deferred);
}

/// Records a refused handshake as the server's last error and queues its
/// `server-error` (with the peer) for the next turn.
pub(crate) fn defer_server_error(
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
pub(crate) fn status_phrase(status: u16) -> &'static str {
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
