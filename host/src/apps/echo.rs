//! The echo app: Qt's echo server example (newConnection →
//! nextPendingConnection → textMessageReceived → sendTextMessage, the same
//! for binary), on the batched path: one `turn` call per event-loop turn
//! carries every echo in and every received message out.

use crate::bindings::api::{self, BatchEvent, Event, MessageBatch, MessageKind};
use crate::runner::Instance;
use anyhow::{Result, bail};
use std::collections::HashMap;
use std::net::SocketAddr;
use wasmtime::component::ResourceAny;

/// How long one turn may wait when nothing happens.
const IDLE_TURN_MS: u32 = 1000;

/// How the echo server is set up.
pub struct EchoOptions {
    /// The `Server:` header.
    pub name: String,
    /// Where to listen.
    pub listen: SocketAddr,
    /// permessage-deflate settings.
    pub compression: api::CompressionOptions,
}

/// Listens as `options` say, calls `on_listening` with the server URL, then
/// echoes every message until the component fails.
pub async fn run(instance: &mut Instance, options: &EchoOptions, on_listening: impl FnOnce(&str)) -> Result<()> {
    let Instance { store, api } = instance;
    let listen = options.listen;
    let server = api.server().call_constructor(&mut *store, &options.name, api::SecureMode::NonSecureMode).await?;
    api.server().call_set_compression(&mut *store, server, options.compression).await?;
    if !api.server().call_listen(&mut *store, server, &listen.ip().to_string(), listen.port()).await? {
        let reason = api.server().call_error_string(&mut *store, server).await?;
        bail!("cannot listen on {listen}: {reason}");
    }
    let url = api.server().call_server_url(&mut *store, server).await?;
    on_listening(&url);

    let mut sockets: HashMap<u32, ResourceAny> = HashMap::new();
    let mut out = MessageBatch { sockets: Vec::new(), kinds: Vec::new(), ends: Vec::new(), data: Vec::new() };
    loop {
        let batch = api.server().call_turn(&mut *store, server, IDLE_TURN_MS, &out).await?;
        out.sockets.clear();
        out.kinds.clear();
        out.ends.clear();
        out.data.clear();
        for event in batch.events {
            match event {
                BatchEvent::TextMessage(span) | BatchEvent::BinaryMessage(span) => {
                    let kind = if matches!(event, BatchEvent::TextMessage(_)) {
                        MessageKind::Text
                    } else {
                        MessageKind::Binary
                    };
                    out.sockets.push(span.socket);
                    out.kinds.push(kind);
                    out.data.extend_from_slice(&batch.payload[span.start as usize..span.end as usize]);
                    out.ends.push(out.data.len() as u32);
                }
                BatchEvent::Other(Event::NewConnection(_)) => {
                    while let Some(socket) = api.server().call_next_pending_connection(&mut *store, server).await? {
                        let id = api.websocket().call_id(&mut *store, socket).await?;
                        sockets.insert(id, socket);
                    }
                }
                BatchEvent::Other(Event::Disconnected(id)) => {
                    if let Some(socket) = sockets.remove(&id) {
                        socket.resource_drop_async(&mut *store).await?;
                    }
                }
                _ => {}
            }
        }
    }
}
