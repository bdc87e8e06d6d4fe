//! wsbox: Qt's `QWebSocketServer` as a sandboxed WebAssembly component, and
//! the wasmtime host that runs it.
//!
//! **What it is.** The WebSocket protocol (RFC 6455, permessage-deflate)
//! runs inside the component, behind Qt's API carried over to WIT
//! (`wsbox:websocket/websocket-server`). This crate loads and instantiates
//! the component ([`runner`]), owns its sockets and TLS and feeds it one flat
//! batch per event-loop turn through the `wsbox:websocket/net` import
//! ([`net`], [`tls`]), decides what it may do ([`sandbox`]: where it may
//! listen, how much memory and run time it gets), and carries the apps that
//! drive its exported API ([`apps`]). It also runs the component's second
//! binding, which listens through `wasi:sockets` itself
//! ([`runner::Binding::WasiSockets`]), and app components composed with
//! either ([`runner::WsboxComponent::run_app`]).
//!
//! **What it is not.** Not a WebSocket library for native code: this crate
//! parses no frame and no handshake (the guest does; `guest/core` is the
//! sans-io core if you want it natively). Not a general wasm runtime: it
//! runs wsbox's worlds (`server`, `server-wasi`, `app`).
//!
//! Serving from a Rust program — a server, its event loop, its events
//! (`examples/embed.rs` is a complete program; `docs/embedding.md` has more):
//!
//! ```no_run
//! use wsbox::bindings::api::{Event, SecureMode};
//! use wsbox::net::TransportLimits;
//! use wsbox::runner::{WsboxComponent, drive};
//! use wsbox::sandbox::{ListenPolicy, SandboxLimits};
//!
//! # async fn serve() -> anyhow::Result<()> {
//! let component = WsboxComponent::embedded()?; // compile once
//! let policy = ListenPolicy::new(["127.0.0.1:0".parse()?]);
//! let limits = SandboxLimits { max_memory: 256 << 20, ..SandboxLimits::default() };
//! // `None`: no TLS; `Some(tls::load_server_config(&files)?)` serves wss://.
//! let mut inst = component.instantiate_with(policy, None, limits, TransportLimits::default()).await?;
//! let (store, api) = (&mut inst.store, &inst.api);
//! drive(inst.binding, async {
//!     let server = api.server().call_constructor(&mut *store, "my-app", SecureMode::NonSecureMode).await?;
//!     api.server().call_listen(&mut *store, server, "127.0.0.1", 0).await?;
//!     loop {
//!         for event in api.server().call_process_events(&mut *store, server, 1000).await? {
//!             match event {
//!                 Event::NewConnection(_) => {
//!                     while let Some(ws) = api.server().call_next_pending_connection(&mut *store, server).await? {
//!                         api.websocket().call_send_text_message(&mut *store, ws, "welcome").await?;
//!                     }
//!                 }
//!                 Event::TextMessageReceived(m) => println!("{}: {}", m.socket, m.message),
//!                 _ => {}
//!             }
//!         }
//!     }
//! })
//! .await
//! # }
//! ```

pub mod apps;
pub mod bindings;
pub mod cli;
pub mod health;
pub mod metrics;
pub mod net;
pub mod page;
pub mod runner;
pub mod sandbox;
pub mod serve;
pub mod state;
pub mod tls;
pub mod topics;
