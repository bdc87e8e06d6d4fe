//! The app side of a behaviour test: the embedded component, instantiated in
//! this process behind the real host (`net`, sockets, the event loop), and
//! driven through the exported API as a Qt program drives its server.

use std::sync::OnceLock;
use std::time::{Duration, Instant};
use wasmtime::component::ResourceAny;
use wsbox::bindings::api::{Event, SecureMode};
use wsbox::runner::{Instance, WsboxComponent};
use wsbox::sandbox::ListenPolicy;

/// Compiled once per test binary.
fn component() -> &'static WsboxComponent {
    static COMPONENT: OnceLock<WsboxComponent> = OnceLock::new();
    COMPONENT.get_or_init(|| {
        WsboxComponent::embedded_binding(crate::BINDING, &WsboxComponent::config(true))
            .expect("the embedded component compiles")
    })
}

/// Calls a `server` method: `srv!(app, call_listen, "127.0.0.1", 0)`.
#[macro_export]
macro_rules! srv {
    ($app:expr, $method:ident $(, $arg:expr)*) => {{
        let app = &mut $app;
        let server = app.server;
        app.inst.api.server().$method(&mut app.inst.store, server $(, $arg)*).await.expect("server call")
    }};
}

/// Calls a `websocket` method on `handle`.
#[macro_export]
macro_rules! sock {
    ($app:expr, $handle:expr, $method:ident $(, $arg:expr)*) => {{
        let app = &mut $app;
        app.inst.api.websocket().$method(&mut app.inst.store, $handle $(, $arg)*).await.expect("websocket call")
    }};
}

pub struct App {
    pub inst: Instance,
    pub server: ResourceAny,
    /// Every event seen so far, in order.
    pub events: Vec<Event>,
    /// Where [`App::until`] looks next: each match moves past itself.
    cursor: usize,
}

impl App {
    /// A server named `wsbox-test`, not listening yet, on a fresh instance.
    pub async fn new() -> Self {
        let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
        let tls = crate::server_tls();
        let mode = if tls.is_some() { SecureMode::SecureMode } else { SecureMode::NonSecureMode };
        let mut inst = component().instantiate(ListenPolicy::new([any]), tls).await.expect("instantiate");
        let server =
            inst.api.server().call_constructor(&mut inst.store, "wsbox-test", mode).await.expect("server constructor");
        assert_eq!(inst.binding, crate::BINDING, "the component of the binding under test");
        Self { inst, server, events: Vec::new(), cursor: 0 }
    }

    /// [`App::new`], listening on a free loopback port; returns the port.
    pub async fn listening() -> (Self, u16) {
        let mut app = Self::new().await;
        assert!(srv!(app, call_listen, "127.0.0.1", 0), "listen on a free port");
        let port = srv!(app, call_server_port);
        (app, port)
    }

    /// One turn of the loop (waiting up to `ms`); returns its events.
    pub async fn turn(&mut self, ms: u32) -> Vec<Event> {
        let server = self.server;
        let events = self.inst.api.server().call_process_events(&mut self.inst.store, server, ms).await.expect("turn");
        self.events.extend(events.iter().cloned());
        events
    }

    /// The first event after the previous match (or seen later, turning
    /// up to 10 s) that matches `want`.
    pub async fn until(&mut self, what: &str, want: impl Fn(&Event) -> bool) -> Event {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let from = self.cursor.min(self.events.len());
            if let Some(i) = self.events[from..].iter().position(&want) {
                self.cursor = from + i + 1;
                return self.events[from + i].clone();
            }
            assert!(Instant::now() < deadline, "no {what} within 10 s; events: {:#?}", self.events);
            self.turn(20).await;
        }
    }

    /// Turns for `ms` milliseconds.
    pub async fn run_for(&mut self, ms: u64) {
        let deadline = Instant::now() + Duration::from_millis(ms);
        while Instant::now() < deadline {
            self.turn(10).await;
        }
    }

    /// Turns until a client thread is done (10 s at most), then joins it.
    pub async fn serve<T>(&mut self, client: std::thread::JoinHandle<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !client.is_finished() {
            assert!(Instant::now() < deadline, "the client did not finish within 10 s; events: {:#?}", self.events);
            self.turn(10).await;
        }
        self.turn(0).await;
        client.join().expect("the client thread")
    }

    /// Waits for a pending connection and takes it.
    pub async fn take(&mut self) -> ResourceAny {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let server = self.server;
            let next = self.inst.api.server().call_next_pending_connection(&mut self.inst.store, server).await;
            if let Some(ws) = next.expect("next-pending-connection") {
                return ws;
            }
            assert!(Instant::now() < deadline, "no pending connection within 10 s; events: {:#?}", self.events);
            self.turn(20).await;
        }
    }

    /// Forgets the events seen so far.
    pub fn forget(&mut self) {
        self.events.clear();
        self.cursor = 0;
    }

    /// The server errors seen so far: (code, text).
    pub fn server_errors(&self) -> Vec<(u16, String)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::ServerError(e) => Some((e.code, e.error_string.clone())),
                _ => None,
            })
            .collect()
    }

    pub fn new_connections(&self) -> usize {
        self.events.iter().filter(|e| matches!(e, Event::NewConnection(_))).count()
    }
}

impl App {
    /// Turns until a client thread reports on `rx` (10 s at most).
    pub async fn until_told<T>(&mut self, rx: &std::sync::mpsc::Receiver<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(v) = rx.try_recv() {
                return v;
            }
            assert!(Instant::now() < deadline, "the client said nothing within 10 s; events: {:#?}", self.events);
            self.turn(10).await;
        }
    }
}
