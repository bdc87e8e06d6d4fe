//! A scripted transport for driving the runtime as a binding would, in the
//! manner of quinn-proto's test pairs: the test decides what each exchange
//! returns and reads back everything the runtime handed over.

#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use wsbox_runtime::{
    Admission, AppEvent, InBatch, ListenErrorKind, ListenerInfo, Net, Opened, OutBatch, Publication, Runtime, Sink,
    TopicCounts,
};
use wsbox_testkit::frames::{ServerFrame, decode_server_output};

/// What the scripted transport saw and will return.
#[derive(Default)]
pub struct Wire {
    pub now: u64,
    pub next_listener: u32,
    /// Listeners open: id → (address, port).
    pub listeners: HashMap<u32, (String, u16)>,
    /// Listen attempts to fail, with this message.
    pub fail_listen: Option<String>,
    pub paused: Vec<u32>,
    /// What the next exchange returns.
    pub incoming: InBatch,
    /// Every byte handed over, per connection.
    pub written: HashMap<u32, Vec<u8>>,
    pub closed: Vec<u32>,
    pub aborted: Vec<u32>,
    pub upgraded: Vec<u32>,
    pub closing: Vec<u32>,
    pub write_limits: HashMap<u32, u32>,
    pub read_limits: HashMap<u32, u32>,
    /// The timeout the last exchange was given.
    pub last_wait_ms: u32,
    /// Whether the transport asks for publications (other instances).
    pub forwarding: bool,
    /// Publications handed over for other instances, and the topics joined
    /// and left, in order.
    pub publications: Vec<Publication>,
    pub joined: Vec<String>,
    pub left: Vec<String>,
    /// Shared writes as handed over: (bytes, connections).
    pub shared: Vec<(Vec<u8>, Vec<u32>)>,
    /// Publication counts, summed over exchanges.
    pub counts: TopicCounts,
    /// Peers are trusted proxies (their requests name the client).
    pub trusted_proxy: bool,
    /// The transport's health check path, and whether it drains.
    pub health_check_path: Option<String>,
    pub draining: bool,
}

/// The runtime's side of the wire.
pub struct ScriptedNet(pub Rc<RefCell<Wire>>);

impl Net for ScriptedNet {
    fn listen(&mut self, address: &str, port: u16, _secure: bool) -> Result<ListenerInfo, (ListenErrorKind, String)> {
        let mut w = self.0.borrow_mut();
        if let Some(message) = w.fail_listen.clone() {
            return Err((ListenErrorKind::AddressInUse, message));
        }
        w.next_listener += 1;
        let id = w.next_listener;
        let port = if port == 0 { 40_000 + id as u16 } else { port };
        w.listeners.insert(id, (address.to_string(), port));
        Ok(ListenerInfo { id, address: address.to_string(), port })
    }

    fn unlisten(&mut self, listener: u32) {
        self.0.borrow_mut().listeners.remove(&listener);
    }

    fn set_accepting(&mut self, listener: u32, accepting: bool) {
        let mut w = self.0.borrow_mut();
        w.paused.retain(|l| *l != listener);
        if !accepting {
            w.paused.push(listener);
        }
    }

    fn set_read_limit(&mut self, conn: u32, bytes: u32) {
        self.0.borrow_mut().read_limits.insert(conn, bytes);
    }

    fn report_written(&mut self, _conn: u32, _enabled: bool) {}

    fn set_write_limit(&mut self, conn: u32, bytes: u32) {
        self.0.borrow_mut().write_limits.insert(conn, bytes);
    }

    fn exchange(&mut self, out: &mut OutBatch, timeout_ms: u32) -> InBatch {
        let mut w = self.0.borrow_mut();
        // Shared writes first, as the transport does.
        for (bytes, conns) in &out.shared {
            for conn in conns {
                w.written.entry(*conn).or_default().extend_from_slice(bytes);
            }
        }
        w.shared.extend(out.shared.iter().cloned());
        w.publications.extend(out.publications.iter().cloned());
        w.joined.extend(out.topics_joined.iter().cloned());
        w.left.extend(out.topics_left.iter().cloned());
        w.counts.publications += out.topic_counts.publications;
        w.counts.delivered += out.topic_counts.delivered;
        w.counts.skipped += out.topic_counts.skipped;
        for (conn, bytes) in &out.writes {
            w.written.entry(*conn).or_default().extend_from_slice(bytes);
        }
        w.closed.extend(&out.close);
        w.aborted.extend(&out.abort);
        w.upgraded.extend(&out.upgraded);
        w.closing.extend(&out.closing);
        w.last_wait_ms = timeout_ms;
        std::mem::take(&mut w.incoming)
    }

    fn now_ms(&self) -> u64 {
        self.0.borrow().now
    }

    fn forwards_publications(&self) -> bool {
        self.0.borrow().forwarding
    }

    fn health_check_path(&self) -> Option<String> {
        self.0.borrow().health_check_path.clone()
    }

    fn serving(&mut self) -> bool {
        !self.0.borrow().draining
    }
}

/// Signals as text, for assertions that read like Qt's.
#[derive(Default)]
pub struct Signals(pub Vec<String>);

impl Sink for Signals {
    fn push(&mut self, event: AppEvent<'_>) {
        self.0.push(match event {
            AppEvent::NewConnection(server) => format!("new-connection {server}"),
            AppEvent::ServerError { server, code, message, .. } => {
                format!("server-error {server} {} {message}", code.0)
            }
            AppEvent::Closed(server) => format!("closed {server}"),
            AppEvent::Message { socket, data, .. } => {
                format!("message {socket} {}", String::from_utf8_lossy(data))
            }
            AppEvent::Frame { socket, data, is_last, .. } => {
                format!("frame {socket} {} {is_last}", String::from_utf8_lossy(data))
            }
            AppEvent::Pong { socket, .. } => format!("pong {socket}"),
            AppEvent::StateChanged { socket, state } => format!("state {socket} {state:?}"),
            AppEvent::AboutToClose(socket) => format!("about-to-close {socket}"),
            AppEvent::ReadChannelFinished(socket) => format!("read-channel-finished {socket}"),
            AppEvent::Disconnected(socket) => format!("disconnected {socket}"),
            AppEvent::Error { socket, error } => format!("error {socket} {error:?}"),
            AppEvent::TlsFailed { socket, message, .. } => format!("tls-failed {socket} {message}"),
            AppEvent::TlsAlertReceived { socket, alert, .. } => format!("tls-alert {socket} {alert}"),
            AppEvent::OriginAuthenticationRequired { socket, request, .. } => {
                format!("origin-authentication-required {socket} {}", request.origin)
            }
            AppEvent::AcceptError { server, message, .. } => format!("accept-error {server} {message}"),
            AppEvent::BytesWritten { socket, bytes } => format!("bytes-written {socket} {bytes}"),
            AppEvent::Writable(socket) => format!("writable {socket}"),
            AppEvent::BrokerConnected(connected) => format!("broker-connected {connected}"),
        });
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A runtime over a scripted transport, with one server listening.
pub struct Harness {
    pub rt: Runtime<ScriptedNet>,
    pub wire: Rc<RefCell<Wire>>,
    pub server: u32,
    listener: u32,
}

impl Harness {
    /// One server named "test", listening, with `configure` applied first.
    pub fn new(configure: impl FnOnce(&mut Runtime<ScriptedNet>, u32)) -> Self {
        Self::with_wire(Wire::default(), configure)
    }

    /// [`Harness::new`] over a transport set up as `wire` says.
    pub fn with_wire(wire: Wire, configure: impl FnOnce(&mut Runtime<ScriptedNet>, u32)) -> Self {
        let wire = Rc::new(RefCell::new(wire));
        let mut rt = Runtime::new(ScriptedNet(Rc::clone(&wire)));
        let server = rt.new_server("test".to_string(), false);
        configure(&mut rt, server);
        assert!(rt.listen(server, "127.0.0.1", 0), "listen");
        let listener = rt.server(server).listener.as_ref().expect("listening").id;
        Self { rt, wire, server, listener }
    }

    /// A connection accepted by the transport, admitted as `admission` says,
    /// with `bytes` already arrived.
    pub fn connect_with(&mut self, conn: u32, admission: Admission, bytes: &[u8]) {
        let mut w = self.wire.borrow_mut();
        let trusted_proxy = w.trusted_proxy;
        w.incoming.opened.push(Opened {
            conn,
            listener: self.listener,
            peer_address: "192.0.2.7".to_string(),
            peer_port: 50_000 + conn as u16,
            local_address: "127.0.0.1".to_string(),
            local_port: 1234,
            admission,
            trusted_proxy,
        });
        drop(w);
        self.arrive(conn, bytes);
    }

    pub fn connect(&mut self, conn: u32, bytes: &[u8]) {
        self.connect_with(conn, Admission::Admit, bytes)
    }

    /// Bytes from `conn` for the next exchange.
    pub fn arrive(&mut self, conn: u32, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let mut w = self.wire.borrow_mut();
        w.incoming.data.extend_from_slice(bytes);
        let end = w.incoming.data.len() as u32;
        w.incoming.runs.push((conn, end));
    }

    /// One turn with no wait; the signals it raised.
    pub fn turn(&mut self) -> Vec<String> {
        let mut signals = Signals::default();
        self.rt.turn(0, &mut signals);
        signals.0
    }

    /// Turns until one hands nothing more to the transport (at most 4).
    pub fn settle(&mut self) -> Vec<String> {
        let mut all = Vec::new();
        for _ in 0..4 {
            all.extend(self.turn());
        }
        all
    }

    pub fn advance(&mut self, ms: u64) {
        self.wire.borrow_mut().now += ms;
    }

    /// Everything written to `conn` so far, as an HTTP head and frames.
    pub fn output(&self, conn: u32) -> (String, Vec<ServerFrame>) {
        decode_server_output(self.wire.borrow().written.get(&conn).map_or(&[][..], Vec::as_slice))
    }
}
