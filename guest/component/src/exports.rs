//! The exported WIT resources: `server` (QWebSocketServer) and `websocket`
//! (QWebSocket), thin handles onto the instance's one [`Runtime`].

use crate::Binding;
use crate::bindings::exports::wsbox::websocket::websocket_server as api;
use std::cell::RefCell;
use wsbox_core::limits::MAX_CONFIGURABLE_SIZE;
use wsbox_core::{CloseCode, DeflateConfig, Limits, MessageKind, SocketError, State};
use wsbox_runtime::{AppEvent, Runtime, SEND_BUFFER_RANGE, Sent, Sink};

thread_local! {
    static RUNTIME: RefCell<Option<Runtime<Binding>>> = const { RefCell::new(None) };
}

/// Runs `f` on the instance's runtime (created on first use).
pub(crate) fn rt<R>(f: impl FnOnce(&mut Runtime<Binding>) -> R) -> R {
    RUNTIME.with(|cell| f(cell.borrow_mut().get_or_insert_with(|| Runtime::new(Binding::new()))))
}

pub struct Component;

impl api::Guest for Component {
    type Server = ServerHandle;
    type Websocket = SocketHandle;

    fn max_incoming_frame_size() -> u64 {
        MAX_CONFIGURABLE_SIZE
    }

    fn max_incoming_message_size() -> u64 {
        MAX_CONFIGURABLE_SIZE
    }

    fn max_outgoing_frame_size() -> u64 {
        MAX_CONFIGURABLE_SIZE
    }

    fn publish_text_message(topic: String, message: String, except: Option<u32>) -> u32 {
        rt(|rt| rt.publish(&topic, MessageKind::Text, message.as_bytes(), except)).unwrap_or(0)
    }

    fn publish_binary_message(topic: String, message: Vec<u8>, except: Option<u32>) -> u32 {
        rt(|rt| rt.publish(&topic, MessageKind::Binary, &message, except)).unwrap_or(0)
    }

    fn subscriber_count(topic: String) -> u32 {
        rt(|rt| rt.subscriber_count(&topic))
    }
}

fn message_kind(kind: api::MessageKind) -> MessageKind {
    match kind {
        api::MessageKind::Text => MessageKind::Text,
        api::MessageKind::Binary => MessageKind::Binary,
    }
}

/// Qt's setters ignore sizes above the ceiling.
fn set_size(target: &mut u64, size: u64) {
    if size <= MAX_CONFIGURABLE_SIZE {
        *target = size;
    }
}

/// `setOutgoingFrameSize`: 0 and sizes above the ceiling are refused.
fn set_frame_size(limits: &mut Limits, size: u64) -> bool {
    let ok = (1..=MAX_CONFIGURABLE_SIZE).contains(&size);
    if ok {
        limits.outgoing_frame_size = size;
    }
    ok
}

/// A `server` resource.
pub struct ServerHandle {
    id: u32,
}

impl api::GuestServer for ServerHandle {
    fn new(server_name: String, mode: api::SecureMode) -> Self {
        let secure = mode == api::SecureMode::SecureMode;
        Self { id: rt(|rt| rt.new_server(server_name, secure)) }
    }

    fn id(&self) -> u32 {
        self.id
    }

    fn listen(&self, address: String, port: u16) -> bool {
        rt(|rt| rt.listen(self.id, &address, port))
    }

    fn close(&self) {
        rt(|rt| rt.close_server(self.id))
    }

    fn is_listening(&self) -> bool {
        rt(|rt| rt.server(self.id).listener.is_some())
    }

    fn server_address(&self) -> String {
        rt(|rt| rt.server(self.id).listener.as_ref().map(|l| l.address.clone()).unwrap_or_default())
    }

    fn server_port(&self) -> u16 {
        rt(|rt| rt.server(self.id).listener.as_ref().map_or(0, |l| l.port))
    }

    fn server_url(&self) -> String {
        rt(|rt| {
            let server = rt.server(self.id);
            let Some(l) = &server.listener else { return String::new() };
            let scheme = if server.secure { "wss" } else { "ws" };
            // Qt shows the any-address as 127.0.0.1.
            let host = match l.address.as_str() {
                "0.0.0.0" => "127.0.0.1".to_string(),
                "::" => "[::1]".to_string(),
                a if a.contains(':') => format!("[{a}]"),
                a => a.to_string(),
            };
            format!("{scheme}://{host}:{}", l.port)
        })
    }

    fn secure_mode(&self) -> api::SecureMode {
        if rt(|rt| rt.server(self.id).secure) { api::SecureMode::SecureMode } else { api::SecureMode::NonSecureMode }
    }

    fn server_name(&self) -> String {
        rt(|rt| rt.server(self.id).name.clone())
    }

    fn has_pending_connections(&self) -> bool {
        rt(|rt| !rt.server(self.id).pending.is_empty())
    }

    fn next_pending_connection(&self) -> Option<api::Websocket> {
        rt(|rt| rt.next_pending(self.id)).map(|id| api::Websocket::new(SocketHandle { id }))
    }

    fn server_error(&self) -> u16 {
        rt(|rt| rt.server(self.id).error.0)
    }

    fn error_string(&self) -> String {
        rt(|rt| rt.server(self.id).error_string.clone())
    }

    fn set_handshake_timeout(&self, ms: i32) {
        rt(|rt| rt.server_config_mut(self.id).limits.handshake_timeout_ms = u64::try_from(ms).ok())
    }

    fn handshake_timeout(&self) -> i32 {
        rt(|rt| rt.server(self.id).config.limits.handshake_timeout_ms.map_or(-1, |ms| ms.min(i32::MAX as u64) as i32))
    }

    fn set_compression(&self, options: api::CompressionOptions) {
        let deflate = options.enabled.then(|| DeflateConfig {
            server_max_window_bits: options.server_max_window_bits.clamp(8, 15),
            client_max_window_bits: options.client_max_window_bits.clamp(8, 15),
            server_no_context_takeover: options.server_no_context_takeover,
            client_no_context_takeover: options.client_no_context_takeover,
            min_size: options.min_size as usize,
            ..DeflateConfig::default()
        });
        rt(|rt| rt.server_config_mut(self.id).deflate = deflate)
    }

    fn compression(&self) -> api::CompressionOptions {
        rt(|rt| {
            let config = &rt.server(self.id).config;
            let d = config.deflate.clone();
            let shown = d.clone().unwrap_or_default();
            api::CompressionOptions {
                enabled: d.is_some(),
                server_max_window_bits: shown.server_max_window_bits,
                client_max_window_bits: shown.client_max_window_bits,
                server_no_context_takeover: shown.server_no_context_takeover,
                client_no_context_takeover: shown.client_no_context_takeover,
                min_size: shown.min_size.min(u32::MAX as usize) as u32,
            }
        })
    }

    fn set_frame_events(&self, enabled: bool) {
        rt(|rt| rt.server_config_mut(self.id).frame_events = enabled)
    }

    fn set_max_pending_connections(&self, count: u32) {
        rt(|rt| rt.server_mut(self.id).max_pending = count as usize)
    }

    fn max_pending_connections(&self) -> u32 {
        rt(|rt| rt.server(self.id).max_pending.min(u32::MAX as usize) as u32)
    }

    fn pause_accepting(&self) {
        rt(|rt| rt.set_accepting(self.id, false))
    }

    fn resume_accepting(&self) {
        rt(|rt| rt.set_accepting(self.id, true))
    }

    fn set_server_name(&self, name: String) {
        rt(|rt| {
            rt.server_config_mut(self.id).server_name = name.clone();
            rt.server_mut(self.id).name = name;
        })
    }

    fn set_supported_subprotocols(&self, protocols: Vec<String>) {
        rt(|rt| rt.server_config_mut(self.id).subprotocols = protocols)
    }

    fn supported_subprotocols(&self) -> Vec<String> {
        rt(|rt| rt.server(self.id).config.subprotocols.clone())
    }

    fn supported_versions(&self) -> Vec<u8> {
        vec![13]
    }

    fn set_allowed_origins(&self, origins: Vec<String>) {
        rt(|rt| rt.server_mut(self.id).allowed_origins = origins)
    }

    fn allowed_origins(&self) -> Vec<String> {
        rt(|rt| rt.server(self.id).allowed_origins.clone())
    }

    fn set_origin_authentication(&self, enabled: bool) {
        rt(|rt| rt.server_mut(self.id).origin_authentication = enabled)
    }

    fn accept_handshake(&self, socket: u32) {
        rt(|rt| rt.accept_handshake(self.id, socket))
    }

    fn refuse_handshake(&self, socket: u32, status: u16, reason: String) {
        rt(|rt| rt.refuse_handshake(self.id, socket, status, &reason))
    }

    fn set_max_allowed_incoming_frame_size(&self, size: u64) {
        rt(|rt| set_size(&mut rt.server_config_mut(self.id).limits.max_frame_size, size))
    }

    fn max_allowed_incoming_frame_size(&self) -> u64 {
        rt(|rt| rt.server(self.id).config.limits.max_frame_size)
    }

    fn set_max_allowed_incoming_message_size(&self, size: u64) {
        rt(|rt| set_size(&mut rt.server_config_mut(self.id).limits.max_message_size, size))
    }

    fn max_allowed_incoming_message_size(&self) -> u64 {
        rt(|rt| rt.server(self.id).config.limits.max_message_size)
    }

    fn set_outgoing_frame_size(&self, size: u64) -> bool {
        rt(|rt| set_frame_size(&mut rt.server_config_mut(self.id).limits, size))
    }

    fn set_keepalive(&self, interval_ms: u32, timeout_ms: u32) {
        rt(|rt| {
            let limits = &mut rt.server_config_mut(self.id).limits;
            limits.keepalive_interval_ms = (interval_ms > 0).then_some(u64::from(interval_ms));
            limits.keepalive_timeout_ms = u64::from(timeout_ms.max(1));
        })
    }

    fn outgoing_frame_size(&self) -> u64 {
        rt(|rt| rt.server(self.id).config.limits.outgoing_frame_size)
    }

    fn set_max_send_buffer_size(&self, size: u64) {
        rt(|rt| {
            rt.server_mut(self.id).max_send_buffer = size.clamp(*SEND_BUFFER_RANGE.start(), *SEND_BUFFER_RANGE.end())
        })
    }

    fn max_send_buffer_size(&self) -> u64 {
        rt(|rt| rt.server(self.id).max_send_buffer)
    }

    fn set_max_handshaking_connections(&self, count: u32) {
        rt(|rt| rt.server_mut(self.id).max_handshaking = count.max(1) as usize)
    }

    fn max_handshaking_connections(&self) -> u32 {
        rt(|rt| rt.server(self.id).max_handshaking as u32)
    }

    fn process_events(&self, timeout_ms: u32) -> Vec<api::Event> {
        let mut sink = OwnedSink(Vec::new());
        rt(|rt| rt.turn(timeout_ms, &mut sink));
        sink.0
    }

    fn turn(&self, timeout_ms: u32, outgoing: api::MessageBatch) -> api::EventBatch {
        let mut sink = BatchSink::default();
        let mut rejected = Vec::new();
        let mut buffer_full = Vec::new();
        let mut delivered = Vec::with_capacity(outgoing.publications.len());
        rt(|rt| {
            let mut start = 0usize;
            for (i, message) in outgoing.messages.iter().enumerate() {
                let end = (message.end as usize).clamp(start, outgoing.data.len());
                match rt.send(message.socket, message_kind(message.kind), &outgoing.data[start..end]) {
                    Sent::Queued => {}
                    Sent::Rejected => rejected.push(i as u32),
                    Sent::BufferFull => buffer_full.push(i as u32),
                }
                start = end;
            }
            for p in &outgoing.publications {
                let end = (p.end as usize).clamp(start, outgoing.data.len());
                let payload = &outgoing.data[start..end];
                delivered.push(rt.publish(&p.topic, message_kind(p.kind), payload, p.except).unwrap_or(0));
                start = end;
            }
            rt.turn(timeout_ms, &mut sink);
        });
        api::EventBatch { events: sink.events, payload: sink.payload, rejected, buffer_full, delivered }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        rt(|rt| rt.drop_server(self.id))
    }
}

/// A `websocket` resource.
pub struct SocketHandle {
    id: u32,
}

impl SocketHandle {
    fn read<R: Default>(&self, f: impl FnOnce(&wsbox_runtime::Socket) -> R) -> R {
        rt(|rt| rt.socket(self.id).map(f).unwrap_or_default())
    }

    fn request<R: Default>(&self, f: impl FnOnce(&wsbox_core::handshake::Request, bool) -> R) -> R {
        self.read(|s| s.conn.request().map(|r| f(r, s.conn.config().secure)).unwrap_or_default())
    }
}

impl api::GuestWebsocket for SocketHandle {
    fn id(&self) -> u32 {
        self.id
    }

    fn send_text_message(&self, message: String) -> u64 {
        self.send(MessageKind::Text, message.as_bytes())
    }

    fn send_binary_message(&self, message: Vec<u8>) -> u64 {
        self.send(MessageKind::Binary, &message)
    }

    fn ping(&self, payload: Vec<u8>) {
        rt(|rt| rt.with_socket(self.id, |c, now| c.ping(now, &payload)));
    }

    fn close(&self, code: u16, reason: String) {
        rt(|rt| rt.with_socket(self.id, |c, now| c.close(now, CloseCode(code), &reason)));
    }

    fn abort(&self) {
        rt(|rt| rt.with_socket(self.id, |c, _| c.abort()));
    }

    fn state(&self) -> api::SocketState {
        rt(|rt| rt.socket(self.id).map_or(api::SocketState::Unconnected, |s| socket_state(s.conn.state())))
    }

    fn close_code(&self) -> u16 {
        rt(|rt| rt.socket(self.id).map_or(CloseCode::ABNORMAL_DISCONNECTION.0, |s| s.conn.close_code().0))
    }

    fn close_reason(&self) -> String {
        self.read(|s| s.conn.close_reason().to_string())
    }

    fn origin(&self) -> String {
        self.request(|r, _| r.origin.clone())
    }

    fn request_url(&self) -> String {
        self.request(|r, secure| r.url(secure))
    }

    fn resource_name(&self) -> String {
        self.request(|r, _| r.path().to_string())
    }

    fn subprotocol(&self) -> String {
        self.read(|s| s.conn.subprotocol().unwrap_or_default().to_string())
    }

    fn extensions(&self) -> String {
        self.read(|s| s.conn.extensions().unwrap_or_default().to_string())
    }

    fn ssl_configuration(&self) -> Option<api::TlsSessionInfo> {
        self.read(|s| {
            s.tls.as_ref().map(|t| api::TlsSessionInfo {
                protocol: t.protocol.clone(),
                cipher: t.cipher.clone(),
                server_name: t.server_name.clone(),
                alpn: t.alpn.clone(),
                peer_certificates: t.peer_certificates.clone(),
            })
        })
    }

    fn peer_address(&self) -> String {
        self.read(|s| s.peer_address.clone())
    }

    fn peer_port(&self) -> u16 {
        self.read(|s| s.peer_port)
    }

    fn local_address(&self) -> String {
        self.read(|s| s.local_address.clone())
    }

    fn local_port(&self) -> u16 {
        self.read(|s| s.local_port)
    }

    fn peer_name(&self) -> String {
        String::new()
    }

    fn request_headers(&self) -> Vec<(String, String)> {
        self.request(|r, _| r.headers.clone())
    }

    fn offered_subprotocols(&self) -> Vec<String> {
        self.request(|r, _| r.subprotocols.clone())
    }

    fn version(&self) -> u8 {
        13
    }

    fn is_valid(&self) -> bool {
        self.read(|s| s.conn.state() == State::Open)
    }

    fn error(&self) -> api::SocketError {
        rt(|rt| rt.socket(self.id).and_then(|s| s.error).map_or(api::SocketError::UnknownSocketError, socket_error))
    }

    fn error_string(&self) -> String {
        let text = match rt(|rt| rt.socket(self.id).and_then(|s| s.error)) {
            None => "Unknown error",
            Some(SocketError::RemoteHostClosed) => "The remote host closed the connection",
            Some(SocketError::Timeout) => "The peer did not answer in time",
        };
        text.to_string()
    }

    fn bytes_to_write(&self) -> u64 {
        self.read(|s| s.conn.bytes_to_write() as u64)
    }

    fn flush(&self) -> bool {
        rt(|rt| rt.flush_socket(self.id))
    }

    fn set_bytes_written_events(&self, enabled: bool) {
        rt(|rt| rt.set_bytes_written_events(self.id, enabled))
    }

    fn set_read_buffer_size(&self, size: u64) {
        rt(|rt| rt.set_read_buffer_size(self.id, size))
    }

    fn read_buffer_size(&self) -> u64 {
        self.read(|s| s.read_buffer_size)
    }

    fn set_max_allowed_incoming_frame_size(&self, size: u64) {
        rt(|rt| rt.with_socket(self.id, |c, _| set_size(&mut c.config_mut().limits.max_frame_size, size)));
    }

    fn max_allowed_incoming_frame_size(&self) -> u64 {
        self.read(|s| s.conn.config().limits.max_frame_size)
    }

    fn set_max_allowed_incoming_message_size(&self, size: u64) {
        rt(|rt| rt.with_socket(self.id, |c, _| set_size(&mut c.config_mut().limits.max_message_size, size)));
    }

    fn max_allowed_incoming_message_size(&self) -> u64 {
        self.read(|s| s.conn.config().limits.max_message_size)
    }

    fn set_outgoing_frame_size(&self, size: u64) -> bool {
        rt(|rt| rt.with_socket(self.id, |c, _| set_frame_size(&mut c.config_mut().limits, size))).unwrap_or(false)
    }

    fn outgoing_frame_size(&self) -> u64 {
        self.read(|s| s.conn.config().limits.outgoing_frame_size)
    }

    fn set_max_send_buffer_size(&self, size: u64) {
        rt(|rt| rt.set_max_send_buffer(self.id, size))
    }

    fn max_send_buffer_size(&self) -> u64 {
        self.read(|s| s.max_send_buffer)
    }

    fn send_buffer_full(&self) -> bool {
        self.read(|s| s.send_buffer_full())
    }

    fn subscribe(&self, topic: String) -> bool {
        rt(|rt| rt.subscribe(self.id, &topic))
    }

    fn unsubscribe(&self, topic: String) -> bool {
        rt(|rt| rt.unsubscribe(self.id, &topic))
    }

    fn topics(&self) -> Vec<String> {
        self.read(|s| s.topics.clone())
    }
}

impl SocketHandle {
    fn send(&self, kind: MessageKind, payload: &[u8]) -> u64 {
        match rt(|rt| rt.send(self.id, kind, payload)) {
            Sent::Queued => payload.len() as u64,
            Sent::Rejected | Sent::BufferFull => 0,
        }
    }
}

impl Drop for SocketHandle {
    fn drop(&mut self) {
        rt(|rt| rt.release_socket(self.id))
    }
}

fn socket_state(state: State) -> api::SocketState {
    match state {
        State::Handshaking => api::SocketState::Connecting,
        State::Open => api::SocketState::Connected,
        State::Closing => api::SocketState::Closing,
        State::Closed => api::SocketState::Unconnected,
    }
}

fn socket_error(error: SocketError) -> api::SocketError {
    match error {
        SocketError::RemoteHostClosed => api::SocketError::RemoteHostClosedError,
        SocketError::Timeout => api::SocketError::SocketTimeoutError,
    }
}

/// Text the core validated; never panics even if it were not.
fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// The signal as an owned WIT event (messages and frames included).
fn owned(event: AppEvent<'_>) -> api::Event {
    use api::Event as E;
    match event {
        AppEvent::NewConnection(server) => E::NewConnection(server),
        AppEvent::ServerError { server, code, message, peer_address, peer_port } => {
            E::ServerError(api::ServerErrorEvent {
                server,
                code: code.0,
                error_string: message.to_string(),
                peer_address: peer_address.to_string(),
                peer_port,
            })
        }
        AppEvent::Closed(server) => E::Closed(server),
        AppEvent::Message { socket, kind: MessageKind::Text, data } => {
            E::TextMessageReceived(api::TextMessage { socket, message: text(data) })
        }
        AppEvent::Message { socket, kind: MessageKind::Binary, data } => {
            E::BinaryMessageReceived(api::BinaryMessage { socket, message: data.to_vec() })
        }
        AppEvent::Frame { socket, kind: MessageKind::Text, data, is_last } => {
            E::TextFrameReceived(api::TextFrame { socket, frame: text(data), is_last_frame: is_last })
        }
        AppEvent::Frame { socket, kind: MessageKind::Binary, data, is_last } => {
            E::BinaryFrameReceived(api::BinaryFrame { socket, frame: data.to_vec(), is_last_frame: is_last })
        }
        AppEvent::Pong { socket, elapsed_ms, payload } => {
            E::Pong(api::PongReceived { socket, elapsed_time: elapsed_ms, payload: payload.to_vec() })
        }
        AppEvent::StateChanged { socket, state } => {
            E::StateChanged(api::StateChange { socket, state: socket_state(state) })
        }
        AppEvent::AboutToClose(socket) => E::AboutToClose(socket),
        AppEvent::ReadChannelFinished(socket) => E::ReadChannelFinished(socket),
        AppEvent::Disconnected(socket) => E::Disconnected(socket),
        AppEvent::Error { socket, error } => {
            E::ErrorOccurred(api::SocketErrorEvent { socket, error: socket_error(error) })
        }
        AppEvent::TlsFailed { server, socket, message, peer_address, peer_port, peer_verify } => {
            let e = api::TlsErrorEvent {
                server,
                socket,
                error_string: message.to_string(),
                peer_address: peer_address.to_string(),
                peer_port,
            };
            if peer_verify { E::PeerVerifyError(e) } else { E::SslErrors(e) }
        }
        AppEvent::OriginAuthenticationRequired { server, socket, request, peer_address, peer_port } => {
            E::OriginAuthenticationRequired(api::HandshakeRequest {
                server,
                socket,
                origin: request.origin.clone(),
                target: request.target.clone(),
                headers: request.headers.clone(),
                subprotocols: request.subprotocols.clone(),
                peer_address: peer_address.to_string(),
                peer_port,
            })
        }
        AppEvent::AcceptError { server, message, resource } => E::AcceptError(api::AcceptErrorEvent {
            server,
            error: if resource { api::SocketError::SocketResourceError } else { api::SocketError::NetworkError },
            error_string: message.to_string(),
        }),
        AppEvent::BytesWritten { socket, bytes } => E::BytesWritten(api::BytesWrittenEvent { socket, bytes }),
        AppEvent::Writable(socket) => E::Writable(socket),
        AppEvent::BrokerConnected(true) => E::BrokerStateChanged(api::BrokerState::Connected),
        AppEvent::BrokerConnected(false) => E::BrokerStateChanged(api::BrokerState::Disconnected),
        AppEvent::TlsAlertReceived { server, socket, alert, description } => E::AlertReceived(api::TlsAlertEvent {
            server,
            socket,
            level: 1,
            alert,
            description: description.to_string(),
        }),
    }
}

/// `process-events`: one owned event per signal.
struct OwnedSink(Vec<api::Event>);

impl Sink for OwnedSink {
    fn push(&mut self, event: AppEvent<'_>) {
        self.0.push(owned(event));
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// `turn`: messages and frames as spans of one flat payload.
#[derive(Default)]
struct BatchSink {
    events: Vec<api::BatchEvent>,
    payload: Vec<u8>,
}

impl BatchSink {
    fn span(&mut self, socket: u32, data: &[u8], is_last_frame: bool) -> api::PayloadSpan {
        let start = self.payload.len() as u32;
        self.payload.extend_from_slice(data);
        api::PayloadSpan { socket, start, end: self.payload.len() as u32, is_last_frame }
    }
}

impl Sink for BatchSink {
    fn push(&mut self, event: AppEvent<'_>) {
        #[cfg(feature = "faults")]
        if let AppEvent::Message { data, .. } = &event {
            crate::faults::inject(data);
        }
        let event = match event {
            AppEvent::Message { socket, kind, data } => {
                let span = self.span(socket, data, true);
                match kind {
                    MessageKind::Text => api::BatchEvent::TextMessage(span),
                    MessageKind::Binary => api::BatchEvent::BinaryMessage(span),
                }
            }
            AppEvent::Frame { socket, kind, data, is_last } => {
                let span = self.span(socket, data, is_last);
                match kind {
                    MessageKind::Text => api::BatchEvent::TextFrame(span),
                    MessageKind::Binary => api::BatchEvent::BinaryFrame(span),
                }
            }
            other => api::BatchEvent::Other(owned(other)),
        };
        self.events.push(event);
    }

    fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    fn expect_payload(&mut self, bytes: usize) {
        self.payload.reserve(bytes);
    }
}
