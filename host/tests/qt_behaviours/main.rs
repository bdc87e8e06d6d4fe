//! Every documented behaviour of Qt's `QWebSocketServer` and `QWebSocket`
//! (numbered 1–31 by area), through the
//! real host and component: the test is the app (it drives the exported API
//! as a Qt program drives `QWebSocketServer`) and its clients are raw
//! sockets, so each byte on the wire is the test's. Where wsbox deliberately
//! does better than Qt (§4.7), the test asserts the better behaviour and
//! says so; `docs/qt-api.md` lists each difference. `qt_behaviours_wasi.rs`
//! runs the same modules on the WASI binding's component,
//! `qt_behaviours_http2.rs` those after the upgrade over HTTP/2 streams.

/// The component under test: the host-fed one.
const BINDING: wsbox::runner::Binding = wsbox::runner::Binding::HostFed;

/// Plain `ws://`: no TLS identity for the server.
const SCHEME: &str = "ws";
fn server_tls() -> Option<std::sync::Arc<rustls::ServerConfig>> {
    None
}

mod app;
mod beyond_qt;
mod closing;
mod frames;
mod handshake;
mod raw;
mod sending;
