//! The sans-io protocol core of wsbox: an RFC 6455 WebSocket server
//! connection as a state machine. Bytes and the time go in; bytes to send,
//! events (Qt's signals) and the next deadline come out.
//!
//! It does no I/O and reads no clock, so the same code runs inside the wasm
//! component (fed by the host's sockets or by `wasi:sockets`), in native
//! unit tests and under fuzzers. It does not listen, accept, or own sockets;
//! it does not do TLS (the host terminates TLS before bytes arrive here).
//!
//! ```
//! use std::sync::Arc;
//! use wsbox_core::{Config, Connection, Event, MessageKind};
//!
//! let mut conn = Connection::new(Arc::new(Config::default()), 0);
//! conn.handle_input(0, b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
//!     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
//!     Sec-WebSocket-Version: 13\r\n\r\n");
//! // The request is complete: the server decides (origin, pending cap …).
//! let mut requested = false;
//! conn.drain_events(|e| requested |= e == Event::UpgradeRequested);
//! assert!(requested);
//! conn.accept_upgrade(0);
//! let mut response = Vec::new();
//! conn.take_transmit(&mut response);
//! assert!(response.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
//!
//! // A masked text frame "hi" from the client (mask 0,0,0,0 for brevity).
//! conn.handle_input(1, &[0x81, 0x82, 0, 0, 0, 0, b'h', b'i']);
//! let mut texts = Vec::new();
//! conn.drain_events(|e| if let Event::TextMessage(t) = e { texts.push(t.to_vec()) });
//! assert_eq!(texts, [b"hi".to_vec()]);
//! assert_eq!(conn.send(MessageKind::Text, b"hi"), 2);
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![doc(test(attr(deny(warnings))))]

pub mod close;
pub mod connection;
pub mod deflate;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod limits;
pub mod message;

pub use close::CloseCode;
pub use connection::{Config, Connection, Event, FrameShape, SocketError, State, Transport};
pub use deflate::DeflateConfig;
pub use error::ProtocolError;
pub use handshake::Page;
pub use limits::Limits;
pub use message::MessageKind;
