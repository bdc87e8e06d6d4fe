//! Every Qt behaviour test of `qt_behaviours/` again, on the WASI binding's
//! component (world `server-wasi`): the component listens through
//! `wasi:sockets` itself, the host only grants TCP. Same modules, same
//! assertions.

/// The component under test: the one that brings its own sockets.
const BINDING: wsbox::runner::Binding = wsbox::runner::Binding::WasiSockets;

/// Plain `ws://` (the WASI binding has no TLS).
const SCHEME: &str = "ws";
fn server_tls() -> Option<std::sync::Arc<rustls::ServerConfig>> {
    None
}

#[path = "qt_behaviours/app.rs"]
mod app;
#[path = "qt_behaviours/beyond_qt.rs"]
mod beyond_qt;
#[path = "qt_behaviours/closing.rs"]
mod closing;
#[path = "qt_behaviours/frames.rs"]
mod frames;
#[path = "qt_behaviours/handshake.rs"]
mod handshake;
#[path = "qt_behaviours/raw.rs"]
mod raw;
#[path = "qt_behaviours/sending.rs"]
mod sending;
