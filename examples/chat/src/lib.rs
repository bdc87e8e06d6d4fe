//! Chat rooms as a wsbox app component (world `app`): server logic that
//! imports `wsbox:websocket/websocket-server` and runs as a command. A
//! client's request path names its room (`/` is the lobby, `/kitchen` the
//! kitchen); each room is a topic, so a line is published once and the
//! server frames it once for every member, whatever their number. Every
//! text message goes to everyone in the room, its sender included,
//! prefixed with the sender's number; joins and leaves are announced. A
//! member too slow to keep up misses lines (the server skips a subscriber
//! whose send buffer is full) rather than holding the room's memory.
//! Composed with a server component it is a complete server:
//!
//! ```sh
//! wac plug chat.wasm --plug wsbox-server.wasm -o chat-composed.wasm   # host-fed
//! wsbox run chat-composed.wasm --listen 127.0.0.1:1234
//! wac plug chat.wasm --plug wsbox-server-wasi.wasm -o chat-wasi.wasm  # WASI only
//! wasmtime run -S inherit-network chat-wasi.wasm --listen 127.0.0.1:1234
//! ```

use std::collections::BTreeMap;
use std::io::Write;

wit_bindgen::generate!({
    world: "app",
    path: "../../wit",
});

use exports::wasi::cli::run::Guest;
use wsbox::websocket::websocket_server::{
    Event, SecureMode, Server, Websocket, publish_text_message, subscriber_count,
};

struct Chat;

impl Guest for Chat {
    fn run() -> Result<(), ()> {
        let (address, port) = listen_address().map_err(|e| eprintln!("chat: {e}"))?;
        let server = Server::new("wsbox-chat", SecureMode::NonSecureMode);
        if !server.listen(&address, port) {
            eprintln!("chat: cannot listen on {address}:{port}: {}", server.error_string());
            return Err(());
        }
        println!("wsbox chat: listening on {}", server.server_url());
        let _ = std::io::stdout().flush();

        // Each member's socket and room.
        let mut members: BTreeMap<u32, (Websocket, String)> = BTreeMap::new();
        loop {
            for event in server.process_events(1000) {
                match event {
                    Event::NewConnection(_) => {
                        while let Some(member) = server.next_pending_connection() {
                            let (id, room) = (member.id(), room_of(&member.resource_name()));
                            let before = subscriber_count(&room);
                            member.send_text_message(&format!("* welcome, you are {id}; {before} here before you"));
                            publish_text_message(&room, &format!("* {id} joined"), None);
                            if member.subscribe(&room) {
                                members.insert(id, (member, room));
                            } else {
                                member.close(1008, "a room name is 1 to 256 bytes");
                            }
                        }
                    }
                    Event::TextMessageReceived(m) => {
                        if let Some((_, room)) = members.get(&m.socket) {
                            publish_text_message(room, &format!("{}: {}", m.socket, m.message), None);
                        }
                    }
                    // The server unsubscribed it when it closed.
                    Event::Disconnected(id) => {
                        if let Some((_, room)) = members.remove(&id) {
                            publish_text_message(&room, &format!("* {id} left"), None);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

/// The room a request path names: `/` is the lobby.
fn room_of(path: &str) -> String {
    match path.trim_start_matches('/') {
        "" => "lobby".to_string(),
        room => room.to_string(),
    }
}

/// `--listen ADDRESS:PORT` (default 127.0.0.1:1234).
fn listen_address() -> Result<(String, u16), String> {
    let mut listen = "127.0.0.1:1234".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next().ok_or("--listen needs ADDRESS:PORT")?,
            other => return Err(format!("unknown argument '{other}' (usage: chat [--listen ADDRESS:PORT])")),
        }
    }
    let (address, port) = listen.rsplit_once(':').ok_or(format!("'{listen}' is not ADDRESS:PORT"))?;
    Ok((address.to_string(), port.parse().map_err(|_| format!("'{port}' is not a port"))?))
}

export!(Chat);
