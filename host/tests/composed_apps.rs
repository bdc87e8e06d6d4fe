//! App components in other languages, composed with the server component
//! and run in the sandbox: Qt's echo example in Python (componentize-py,
//! `examples/echo-python`) and a chat room in Rust (`examples/chat`). Each is
//! built from source here, composed with `wac plug` with the host-fed server
//! component (run by `wsbox run`) and with the WASI one (run by stock
//! `wasmtime run -S inherit-network`), and checked with real clients. The
//! tools come from the project's bootstrap scripts (PyPI, crates.io).

mod support;

use futures_util::{SinkExt, StreamExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use support::Server;
use tokio_tungstenite::tungstenite::Message;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The tool a `host/tests/clients` bootstrap script installs.
fn tool(script: &str) -> String {
    support::bootstrap(&format!("host/tests/clients/{script}"))
}

fn run(command: &mut Command) {
    let out = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(out.status.success(), "{command:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

/// The app composed with the host-fed server component and with the WASI one.
fn compose(app: &Path, dir: &Path) -> (PathBuf, PathBuf) {
    support::write_components(dir);
    let wac = tool("bootstrap-wac.sh");
    let stem = app.file_stem().unwrap().to_string_lossy().into_owned();
    let fed = dir.join(format!("{stem}-host-fed.wasm"));
    let wasi = dir.join(format!("{stem}-wasi.wasm"));
    for (server, out) in [("wsbox-server.wasm", &fed), ("wsbox-server-wasi.wasm", &wasi)] {
        run(Command::new(&wac).arg("plug").arg(app).arg("--plug").arg(dir.join(server)).arg("-o").arg(out));
    }
    (fed, wasi)
}

/// `wsbox run APP --listen 127.0.0.1:0` and `wasmtime run … APP --listen 127.0.0.1:0`.
fn start_both(fed: &Path, wasi: &Path) -> (Server, Server) {
    let mut under_wsbox = Command::new(env!("CARGO_BIN_EXE_wsbox"));
    under_wsbox.arg("run").arg(fed).args(["--listen", "127.0.0.1:0"]);
    let mut under_wasmtime = Command::new(tool("bootstrap-wasmtime-cli.sh"));
    under_wasmtime.args(["run", "-S", "inherit-network"]).arg(wasi).args(["--listen", "127.0.0.1:0"]);
    (Server::spawn(under_wsbox, false), Server::spawn(under_wasmtime, false))
}

fn work_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_echo_app_composed_with_the_server_runs_under_wsbox_and_stock_wasmtime() {
    let dir = work_dir("composed-python");
    let app = dir.join("echo-py.wasm");
    run(Command::new(tool("bootstrap-componentize-py.sh"))
        .arg("-d")
        .arg(root().join("wit"))
        .args(["-w", "app", "componentize", "-p"])
        .arg(root().join("examples/echo-python"))
        .arg("app")
        .arg("-o")
        .arg(&app));
    let (fed, wasi) = compose(&app, &dir);
    let (under_wsbox, under_wasmtime) = start_both(&fed, &wasi);
    for server in [&under_wsbox, &under_wasmtime] {
        support::echo_checks(&server.url).await;
        support::many_peers(&server.url, 20, 20).await;
        broadcast_checks(&server.url).await;
    }
}

/// The Python app's topic: "broadcast: …" reaches every other client, not the sender.
async fn broadcast_checks(url: &str) {
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(tokio_tungstenite::connect_async(url).await.expect("connect").0);
    }
    // Each is subscribed once its first echo comes back.
    for ws in &mut clients {
        ws.send(Message::text("ready?")).await.unwrap();
        assert_eq!(next_text(ws).await, "ready?");
    }
    clients[0].send(Message::text("broadcast: hello everyone")).await.unwrap();
    for ws in &mut clients[1..] {
        assert_eq!(next_text(ws).await, "hello everyone");
    }
    // The sender got nothing before the echo of its next message.
    clients[0].send(Message::text("after")).await.unwrap();
    assert_eq!(next_text(&mut clients[0]).await, "after");
}

async fn next_text(ws: &mut support::Ws) -> String {
    match tokio::time::timeout(std::time::Duration::from_secs(10), ws.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => t.to_string(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_chat_app_composed_with_the_server_broadcasts_to_the_room() {
    let dir = work_dir("composed-chat");
    run(Command::new(env!("CARGO"))
        .current_dir(root().join("examples/chat"))
        .args(["build", "--release", "--locked", "--target", "wasm32-wasip2", "--target-dir"])
        .arg(dir.join("target"))
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS"));
    let app = dir.join("chat.wasm");
    std::fs::copy(dir.join("target/wasm32-wasip2/release/wsbox_chat.wasm"), &app).unwrap();
    let (fed, wasi) = compose(&app, &dir);
    let (under_wsbox, under_wasmtime) = start_both(&fed, &wasi);
    for server in [&under_wsbox, &under_wasmtime] {
        chat_checks(&server.url).await;
    }
}

/// Three members join the lobby (and one another room); a message from one
/// reaches all three with its sender's number, and not the other room; a
/// member who leaves is announced to the others.
async fn chat_checks(url: &str) {
    let mut members = Vec::new();
    for joined in 0..3 {
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("join");
        let welcome = next_text(&mut ws).await;
        assert!(welcome.starts_with("* welcome, you are "), "{welcome}");
        assert!(welcome.ends_with(&format!("; {joined} here before you")), "{welcome}");
        let id: u32 = welcome["* welcome, you are ".len()..].split(';').next().unwrap().parse().unwrap();
        for (_, earlier) in &mut members {
            assert_eq!(next_text(earlier).await, format!("* {id} joined"));
        }
        members.push((id, ws));
    }
    let (mut kitchen, _) = tokio_tungstenite::connect_async(format!("{url}/kitchen")).await.expect("join");
    assert!(next_text(&mut kitchen).await.ends_with("; 0 here before you"), "another room");
    let first = members[0].0;
    members[0].1.send(Message::text("hello room")).await.unwrap();
    for (_, ws) in &mut members {
        assert_eq!(next_text(ws).await, format!("{first}: hello room"));
    }
    kitchen.send(Message::text("anyone?")).await.unwrap();
    assert!(next_text(&mut kitchen).await.ends_with(": anyone?"), "the lobby's line did not come first");
    let (left, mut ws) = members.pop().unwrap();
    ws.close(None).await.unwrap();
    for (_, ws) in &mut members {
        assert_eq!(next_text(ws).await, format!("* {left} left"));
    }
}
