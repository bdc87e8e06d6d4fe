//! Graceful shutdown: on SIGTERM or Ctrl-C the server stops accepting,
//! sends 1001 Going Away to every open connection, waits for their close
//! frames, and exits 0.

mod support;

use futures_util::StreamExt;
use std::time::Duration;
use support::Server;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

async fn shutdown_with(signal: &str) {
    let mut server = Server::start(&[]);
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(connect_async(&server.url).await.expect("connect").0);
    }
    server.signal(signal);
    for ws in &mut clients {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("close in time");
        match msg {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(u16::from(frame.code), 1001);
                assert_eq!(frame.reason.as_str(), "Server shutting down");
            }
            other => panic!("expected a 1001 close, got {other:?}"),
        }
        // tungstenite answers the close; the stream then ends.
        let _ = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
    }
    let status = server.wait_exit(Duration::from_secs(10)).expect("the server exits after its clients closed");
    assert!(status.success(), "exit status {status:?}; log:\n{}", server.stderr());
    assert!(server.stderr().contains("shutdown requested"), "{}", server.stderr());
    assert!(std::net::TcpStream::connect(("127.0.0.1", server.port)).is_err(), "no longer accepting");
}

#[tokio::test]
async fn sigterm_closes_every_connection_with_1001_and_exits_0() {
    shutdown_with("TERM").await;
}

#[tokio::test]
async fn ctrl_c_closes_every_connection_with_1001_and_exits_0() {
    shutdown_with("INT").await;
}

/// A WebSocket whose peer will never answer a close (it reads nothing more).
fn silent_websocket(server: &Server) -> std::net::TcpStream {
    use std::io::{Read, Write};
    let mut silent = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    silent.write_all(wsbox_testkit::upgrade::request("/", "x", &[]).as_bytes()).unwrap();
    let mut head = [0u8; 12];
    silent.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 101");
    silent
}

#[test]
fn a_peer_that_never_answers_our_close_is_dropped_at_the_close_timeout() {
    // Grace far longer than the core's 5 s close timeout: the exit must come from the timeout.
    let mut server = Server::start(&["--shutdown-timeout-ms", "30000"]);
    let silent = silent_websocket(&server);
    let started = std::time::Instant::now();
    server.signal("TERM");
    let status = server.wait_exit(Duration::from_secs(15)).expect("exit after the close timeout");
    assert!(status.success());
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(4) && waited < Duration::from_secs(12), "{waited:?}");
    drop(silent);
}

#[test]
fn a_second_signal_exits_at_once_without_waiting_for_connections() {
    let mut server = Server::start(&["--shutdown-timeout-ms", "30000"]);
    let silent = silent_websocket(&server);
    server.signal("INT");
    // The first signal starts the graceful shutdown: the silent peer holds it open.
    assert!(server.wait_exit(Duration::from_millis(500)).is_none(), "the first signal must not end the process");
    let started = std::time::Instant::now();
    server.signal("INT");
    let status = server.wait_exit(Duration::from_secs(3)).expect("the second signal ends the process");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert_eq!(status.code(), Some(130), "log:\n{}", server.stderr());
    assert!(server.stderr().contains("second shutdown signal"), "{}", server.stderr());
    drop(silent);
}
