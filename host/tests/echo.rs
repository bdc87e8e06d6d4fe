//! The echo app end to end: the real host and component, a real client
//! (tokio-tungstenite), loopback only.

mod support;

use futures_util::{SinkExt, StreamExt};
use std::io::{Read, Write};
use support::Server;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(server: &Server) -> Ws {
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(64 << 20))
        .max_frame_size(Some(64 << 20));
    let (ws, response) =
        tokio_tungstenite::connect_async_with_config(&server.url, Some(config), false).await.expect("connect");
    assert_eq!(response.status(), 101);
    ws
}

/// The next data or close message (pongs and pings skipped unless asked).
async fn next(ws: &mut Ws) -> Message {
    tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
        .await
        .expect("a reply within 10 s")
        .expect("stream open")
        .expect("no protocol error")
}

#[tokio::test]
async fn text_and_binary_echo_at_every_length_boundary() {
    let server = Server::start(&[]);
    let mut ws = connect(&server).await;
    for len in [0usize, 125, 126, 65535, 65536, 1 << 20] {
        let text: String = (0..len).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        ws.send(Message::text(text.clone())).await.unwrap();
        assert_eq!(next(&mut ws).await, Message::text(text), "text of {len} bytes");
        let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        ws.send(Message::binary(bytes.clone())).await.unwrap();
        assert_eq!(next(&mut ws).await, Message::binary(bytes), "binary of {len} bytes");
    }
}

#[tokio::test]
async fn a_fragmented_message_is_echoed_whole() {
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    let server = Server::start(&[]);
    let mut ws = connect(&server).await;
    let parts = ["frag", "mented ", "κόσμε"];
    for (i, part) in parts.iter().enumerate() {
        let opcode = if i == 0 { OpCode::Data(Data::Text) } else { OpCode::Data(Data::Continue) };
        let frame = Frame::message(Bytes::from(part.as_bytes().to_vec()), opcode, i == parts.len() - 1);
        ws.send(Message::Frame(frame)).await.unwrap();
    }
    assert_eq!(next(&mut ws).await, Message::text(parts.concat()));
}

#[tokio::test]
async fn a_ping_gets_a_pong_with_the_same_payload() {
    let server = Server::start(&[]);
    let mut ws = connect(&server).await;
    let payload = Bytes::from_static(b"are you there?");
    ws.send(Message::Ping(payload.clone())).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::Pong(payload));
}

#[tokio::test]
async fn a_close_with_code_4000_is_echoed_with_its_reason() {
    let server = Server::start(&[]);
    let mut ws = connect(&server).await;
    ws.send(Message::Close(Some(CloseFrame { code: CloseCode::from(4000), reason: "done here".into() })))
        .await
        .unwrap();
    match next(&mut ws).await {
        Message::Close(Some(frame)) => {
            assert_eq!(u16::from(frame.code), 4000);
            assert_eq!(frame.reason.as_str(), "done here");
        }
        other => panic!("expected the close echoed, got {other:?}"),
    }
    // The server closes TCP after the closing handshake.
    let end = tokio::time::timeout(std::time::Duration::from_secs(5), ws.next()).await.expect("TCP closed");
    assert!(end.is_none() || matches!(end, Some(Err(_))), "{end:?}");
}

#[tokio::test]
async fn hundred_connections_each_get_hundred_echoes_in_order() {
    let server = Server::start(&[]);
    let mut tasks = Vec::new();
    for c in 0..100u32 {
        let url = server.url.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ws, _) = connect_async(&url).await.expect("connect");
            for m in 0..100u32 {
                let body = format!("conn {c} message {m}");
                if m % 2 == 0 {
                    ws.send(Message::text(body.clone())).await.unwrap();
                } else {
                    ws.send(Message::binary(body.clone().into_bytes())).await.unwrap();
                }
            }
            for m in 0..100u32 {
                let body = format!("conn {c} message {m}");
                let want = if m % 2 == 0 { Message::text(body) } else { Message::binary(body.into_bytes()) };
                assert_eq!(next(&mut ws).await, want);
            }
            ws.close(None).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
}

#[test]
fn a_plain_http_get_gets_400() {
    let server = Server::start(&[]);
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{response}");
}

#[test]
fn an_unsupported_version_gets_426() {
    let server = Server::start(&[]);
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    tcp.write_all(
        b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
    )
    .unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 426 Upgrade Required\r\n"), "{response}");
    assert!(response.contains("Sec-WebSocket-Version: 13\r\n"), "{response}");
}

#[test]
fn listening_where_the_operator_did_not_allow_fails_clearly() {
    // The echo app asks for the --listen address; a busy port is a clear error.
    let first = Server::start(&[]);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_wsbox"))
        .args(["serve", "--listen", &format!("127.0.0.1:{}", first.port)])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot listen on") && stderr.to_lowercase().contains("in use"), "{stderr}");
}

#[test]
fn a_client_that_sends_nothing_or_half_a_request_is_dropped_at_the_handshake_deadline() {
    let server = Server::start(&["--handshake-timeout-ms", "300"]);
    for partial in [&b""[..], &b"GET / HTTP/1.1\r\nHost: x\r\n"[..]] {
        let started = std::time::Instant::now();
        let mut tcp = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        tcp.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        tcp.write_all(partial).unwrap();
        let mut buf = Vec::new();
        let _ = tcp.read_to_end(&mut buf);
        assert!(buf.is_empty(), "no response at the deadline (Qt's behaviour): {buf:?}");
        let waited = started.elapsed();
        assert!(
            waited >= std::time::Duration::from_millis(250) && waited < std::time::Duration::from_secs(3),
            "{waited:?}"
        );
    }
}

/// `--workers 2`: two event loops, each with its own sandboxed instance,
/// share the port; the kernel spreads 200 clients across both, and every
/// echo comes back intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_the_port_and_both_serve() {
    let server = Server::start(&["--workers", "2", "--log-level", "debug"]);
    support::many_peers(&server.url, 200, 10).await;
    support::echo_checks(&server.url).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let log = server.stderr();
    for worker in ["worker{index=0}", "worker{index=1}"] {
        let served = log.lines().filter(|l| l.contains(worker) && l.contains("connection opened")).count();
        assert!(served > 0, "{worker} served no connection:\n{log}");
    }
}
