//! `wasi:cli/run`: Qt's echo server example as a command, so that stock
//! `wasmtime run -S inherit-network wsbox-echo.wasm --listen 127.0.0.1:1234`
//! is a WebSocket echo server with nothing else around it. It drives the
//! same runtime the exported `server` resource does, in this process.

use crate::bindings::exports::wasi::cli::run::Guest as Run;
use crate::exports::{Component, rt};
use std::collections::{HashMap, VecDeque};
use std::io::Write;
use wsbox_core::MessageKind;
use wsbox_runtime::{AppEvent, Sent, Sink};

const USAGE: &str = "usage: wsbox-echo [--listen ADDRESS:PORT] (default 127.0.0.1:1234)";

impl Run for Component {
    fn run() -> Result<(), ()> {
        let (address, port) = match listen_address(std::env::args().skip(1)) {
            Ok(listen) => listen,
            Err(message) => {
                eprintln!("wsbox-echo: {message}\n{USAGE}");
                return Err(());
            }
        };
        let server = rt(|rt| rt.new_server("wsbox".into(), false));
        if !rt(|rt| rt.listen(server, &address, port)) {
            let reason = rt(|rt| rt.server(server).error_string.clone());
            eprintln!("wsbox-echo: {reason}");
            return Err(());
        }
        let url = rt(|rt| {
            let l = rt.server(server).listener.as_ref().expect("listening");
            format!("ws://{}:{}", l.address, l.port)
        });
        println!("wsbox echo (WASI command): listening on {url}");
        let _ = std::io::stdout().flush();

        let mut sink = EchoSink::default();
        // Echoes a slow reader's send buffer had no room for, in order.
        let mut held: HashMap<u32, VecDeque<(MessageKind, Vec<u8>)>> = HashMap::new();
        loop {
            rt(|rt| rt.turn(1000, &mut sink));
            rt(|rt| {
                let mut start = 0;
                for &(socket, kind, end) in &sink.messages {
                    let message = &sink.data[start..end];
                    start = end;
                    if let Some(queue) = held.get_mut(&socket) {
                        queue.push_back((kind, message.to_vec()));
                    } else if rt.send(socket, kind, message) == Sent::BufferFull {
                        held.entry(socket).or_default().push_back((kind, message.to_vec()));
                    }
                }
                for socket in sink.writable.drain(..) {
                    let Some(mut queue) = held.remove(&socket) else { continue };
                    while let Some((kind, message)) = queue.pop_front() {
                        if rt.send(socket, kind, &message) == Sent::BufferFull {
                            queue.push_front((kind, message));
                            held.insert(socket, queue);
                            break;
                        }
                    }
                }
                for _ in 0..sink.new_connections {
                    while rt.next_pending(server).is_some() {}
                }
                for socket in sink.disconnected.drain(..) {
                    held.remove(&socket);
                    rt.release_socket(socket);
                }
            });
            sink.clear();
        }
    }
}

/// `--listen ADDRESS:PORT` (or `--listen=…`), the only option.
fn listen_address(mut args: impl Iterator<Item = String>) -> Result<(String, u16), String> {
    let mut listen = "127.0.0.1:1234".to_string();
    while let Some(arg) = args.next() {
        if let Some(value) = arg.strip_prefix("--listen=") {
            listen = value.to_string();
        } else if arg == "--listen" {
            listen = args.next().ok_or("--listen needs ADDRESS:PORT")?;
        } else {
            return Err(format!("unknown argument '{arg}'"));
        }
    }
    let (address, port) = listen.rsplit_once(':').ok_or(format!("'{listen}' is not ADDRESS:PORT"))?;
    let port = port.parse().map_err(|_| format!("'{port}' is not a port"))?;
    Ok((address.trim_start_matches('[').trim_end_matches(']').to_string(), port))
}

/// What one turn asks of the echo app.
#[derive(Default)]
struct EchoSink {
    /// (socket, kind, end of its payload in `data`).
    messages: Vec<(u32, MessageKind, usize)>,
    data: Vec<u8>,
    new_connections: usize,
    writable: Vec<u32>,
    disconnected: Vec<u32>,
}

impl EchoSink {
    fn clear(&mut self) {
        self.messages.clear();
        self.data.clear();
        self.new_connections = 0;
    }
}

impl Sink for EchoSink {
    fn push(&mut self, event: AppEvent<'_>) {
        match event {
            AppEvent::Message { socket, kind, data } => {
                self.data.extend_from_slice(data);
                self.messages.push((socket, kind, self.data.len()));
            }
            AppEvent::NewConnection(_) => self.new_connections += 1,
            AppEvent::Writable(socket) => self.writable.push(socket),
            AppEvent::Disconnected(socket) => self.disconnected.push(socket),
            _ => {}
        }
    }

    fn is_empty(&self) -> bool {
        self.messages.is_empty()
            && self.new_connections == 0
            && self.writable.is_empty()
            && self.disconnected.is_empty()
    }

    fn expect_payload(&mut self, bytes: usize) {
        self.data.reserve(bytes);
    }
}
