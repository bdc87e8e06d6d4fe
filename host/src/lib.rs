//! wsbox: Qt's `QWebSocketServer` as a sandboxed WebAssembly component, and
//! the wasmtime host that runs it.
//!
//! The WebSocket protocol (RFC 6455) runs inside the component; this crate
//! owns the sockets and feeds the component one flat batch per event-loop
//! turn through the `wsbox:websocket/net` import ([`net`]), loads and
//! instantiates it ([`runner`]), decides what it may do ([`sandbox`]), and
//! carries the apps that drive its exported Qt-shaped API ([`apps`]). It does
//! not parse WebSocket frames or handshakes: that is the guest's job.

pub mod apps;
pub mod bindings;
pub mod cli;
pub mod net;
pub mod runner;
pub mod sandbox;
pub mod tls;
