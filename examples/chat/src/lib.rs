//! A chat room as a wsbox app component (world `app`): server logic that
//! imports `wsbox:websocket/websocket-server` and runs as a command. Every
//! text message goes to everyone in the room, prefixed with its sender's
//! number; joins and leaves are announced. Composed with a server
//! component it is a complete server:
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
use wsbox::websocket::websocket_server::{Event, SecureMode, Server, Websocket};

/// The close code for a member whose connection cannot keep up (1013, Try
/// Again Later): the room does not hold messages for one slow reader.
const TOO_SLOW: u16 = 1013;

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

        let mut room: BTreeMap<u32, Websocket> = BTreeMap::new();
        loop {
            for event in server.process_events(1000) {
                match event {
                    Event::NewConnection(_) => {
                        while let Some(member) = server.next_pending_connection() {
                            let id = member.id();
                            broadcast(&mut room, &format!("* {id} joined"));
                            member
                                .send_text_message(&format!("* welcome, you are {id}; {} here before you", room.len()));
                            room.insert(id, member);
                        }
                    }
                    Event::TextMessageReceived(m) => broadcast(&mut room, &format!("{}: {}", m.socket, m.message)),
                    Event::Disconnected(id) if room.remove(&id).is_some() => {
                        broadcast(&mut room, &format!("* {id} left"));
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Sends `line` to everyone; a member whose send buffer is full is closed.
fn broadcast(room: &mut BTreeMap<u32, Websocket>, line: &str) {
    for member in room.values() {
        if member.send_text_message(line) == 0 && member.send_buffer_full() {
            member.close(TOO_SLOW, "too slow to keep up with the room");
        }
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
