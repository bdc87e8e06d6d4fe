//! A Rust service that embeds wsbox: the WebSocket protocol runs in the
//! sandboxed component, the service's own logic here, natively. It greets
//! each client, echoes its text in upper case, and pushes a tick to every
//! client each second.
//!
//! ```sh
//! cargo run --release -p wsbox --example embed -- 127.0.0.1:1234
//! ```
//!
//! What it shows: loading the component once, limits for the sandbox and
//! the transport, an instance (TLS would be one more argument: see
//! `wsbox::tls::load_server_config`), a server, the event loop, events.

use std::collections::HashMap;
use std::time::{Duration, Instant};
use wasmtime::component::ResourceAny;
use wsbox::bindings::api::{Event, SecureMode};
use wsbox::net::TransportLimits;
use wsbox::runner::{WsboxComponent, drive};
use wsbox::sandbox::{ListenPolicy, SandboxLimits};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let listen: std::net::SocketAddr = std::env::args().nth(1).as_deref().unwrap_or("127.0.0.1:1234").parse()?;

    // Compile once (wasmtime's cache makes later starts fast), instantiate
    // as often as needed: each instance is one sandbox with its own limits.
    let component = WsboxComponent::embedded()?;
    let limits = SandboxLimits { max_memory: 256 << 20, ..SandboxLimits::default() };
    let transport = TransportLimits { max_connections: 1000, ..TransportLimits::default() };
    let mut instance = component.instantiate_with(ListenPolicy::new([listen]), None, limits, transport).await?;
    let binding = instance.binding;
    let (store, api) = (&mut instance.store, &instance.api);

    drive(binding, async {
        let server = api.server().call_constructor(&mut *store, "embed-example", SecureMode::NonSecureMode).await?;
        if !api.server().call_listen(&mut *store, server, &listen.ip().to_string(), listen.port()).await? {
            anyhow::bail!("cannot listen: {}", api.server().call_error_string(&mut *store, server).await?);
        }
        println!("embed example: listening on {}", api.server().call_server_url(&mut *store, server).await?);

        let mut clients: HashMap<u32, ResourceAny> = HashMap::new();
        let mut next_tick = Instant::now() + Duration::from_secs(1);
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now()).as_millis() as u32;
            for event in api.server().call_process_events(&mut *store, server, wait).await? {
                match event {
                    Event::NewConnection(_) => {
                        while let Some(ws) = api.server().call_next_pending_connection(&mut *store, server).await? {
                            let id = api.websocket().call_id(&mut *store, ws).await?;
                            api.websocket()
                                .call_send_text_message(&mut *store, ws, &format!("hello, client {id}"))
                                .await?;
                            clients.insert(id, ws);
                        }
                    }
                    Event::TextMessageReceived(m) => {
                        if let Some(&ws) = clients.get(&m.socket) {
                            api.websocket().call_send_text_message(&mut *store, ws, &m.message.to_uppercase()).await?;
                        }
                    }
                    Event::Disconnected(id) => {
                        if let Some(ws) = clients.remove(&id) {
                            ws.resource_drop_async(&mut *store).await?;
                        }
                    }
                    _ => {}
                }
            }
            if Instant::now() >= next_tick {
                next_tick += Duration::from_secs(1);
                for &ws in clients.values() {
                    // 0 means the client's send buffer is full: it misses this tick.
                    api.websocket().call_send_text_message(&mut *store, ws, "tick").await?;
                }
            }
        }
    })
    .await
}
