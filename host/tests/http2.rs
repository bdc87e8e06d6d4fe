//! WebSockets over HTTP/2 (RFC 8441) on the wss:// listener: a real HTTP/2
//! client (the `h2` crate) opens each WebSocket as an extended CONNECT
//! stream, and tokio-tungstenite speaks RFC 6455 over the stream.

mod support;

use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use support::Server;
use support::pki::{Pki, client_config};
use tokio_tungstenite::tungstenite::Message;
use wsbox_testkit::h2::{H2Connection, connect};

/// A server with a TLS identity for `localhost`, and its wss:// port.
fn server(pki: &Pki, extra: &[&str]) -> (Server, u16) {
    let (cert, key) = pki.leaf("server", &["localhost"], &rcgen::PKCS_ECDSA_P256_SHA256);
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let mut args = vec!["--tls-cert", cert.as_str(), "--tls-key", key.as_str()];
    args.extend_from_slice(extra);
    let server = Server::start(&args);
    let port = server.tls_url.as_ref().unwrap().rsplit(':').next().unwrap().parse().unwrap();
    (server, port)
}

async fn h2(pki: &Pki, port: u16) -> H2Connection {
    connect(port, client_config(&pki.ca_path(), None)).await
}

/// A response's whole body, as text.
async fn body_text(response: http::Response<h2::RecvStream>) -> String {
    let mut body = response.into_body();
    let mut text = Vec::new();
    while let Some(chunk) = body.data().await {
        text.extend_from_slice(&chunk.unwrap());
    }
    String::from_utf8_lossy(&text).into_owned()
}

#[tokio::test]
async fn a_websocket_over_an_http2_stream_echoes_like_one_over_tcp() {
    let pki = Pki::new("h2-echo");
    let (_server, port) = server(&pki, &[]);
    let connection = h2(&pki, port).await;
    let (ws, _) = connection.websocket("/", &[]).await;
    support::echo_checks_on(ws).await;

    // Every size class of the frame header, and a message larger than any
    // window (the stream's and the connection's): flow control both ways.
    let (mut ws, _) = connection.websocket("/", &[]).await;
    for size in [0usize, 125, 126, 65_535, 65_536, 16 * 1024 * 1024] {
        let payload: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        ws.send(Message::binary(payload.clone())).await.unwrap();
        let echoed = tokio::time::timeout(Duration::from_secs(60), ws.next()).await.expect("in time");
        assert_eq!(echoed.unwrap().unwrap(), Message::binary(payload), "{size} bytes");
    }
    ws.send(Message::text("")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text(""));
    // A fragmented message comes back whole.
    let mut stream = ws.into_inner();
    use tokio::io::AsyncWriteExt;
    stream.write_all(&wsbox_testkit::frames::frame(false, 0x1, b"frag")).await.unwrap();
    stream.write_all(&wsbox_testkit::frames::frame(true, 0x0, b"mented")).await.unwrap();
    let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
        stream,
        tokio_tungstenite::tungstenite::protocol::Role::Client,
        None,
    )
    .await;
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("fragmented"));
    ws.close(None).await.unwrap();
    assert_eq!(support::close_code(&mut ws).await, Some(1000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_websockets_share_one_http2_connection_each_in_order() {
    let pki = Pki::new("h2-many");
    let (_server, port) = server(&pki, &[]);
    let connection = std::sync::Arc::new(h2(&pki, port).await);
    support::many_peers_with(100, 100, move |_| {
        let connection = std::sync::Arc::clone(&connection);
        async move { connection.websocket("/", &[]).await.0 }
    })
    .await;
}

#[tokio::test]
async fn the_handshake_policy_applies_and_other_requests_get_http_answers() {
    let pki = Pki::new("h2-policy");
    let (_server, port) = server(&pki, &[]);
    let connection = h2(&pki, port).await;

    // Subprotocols and permessage-deflate are negotiated as over HTTP/1.1;
    // the answer carries no HTTP/1.1-only header.
    let offer = [("sec-websocket-protocol", "chat"), ("sec-websocket-extensions", "permessage-deflate")];
    let (mut ws, headers) = connection.websocket("/", &offer).await;
    assert!(headers.get("sec-websocket-accept").is_none() && headers.get("upgrade").is_none(), "{headers:?}");
    assert!(headers["sec-websocket-extensions"].to_str().unwrap().starts_with("permessage-deflate"), "{headers:?}");
    ws.close(None).await.unwrap();

    // A request the guest refuses keeps its status: no version → 400 (426 with the version wanted).
    let (response, _) = connection.request("CONNECT", Some("websocket"), "/", &[]).await.unwrap();
    assert!(response.status().is_client_error(), "{response:?}");
    // Another protocol: 501. Another method: 404. The health check: the guest's answer.
    let (response, _) = connection.request("CONNECT", Some("webtransport"), "/", &[]).await.unwrap();
    assert_eq!(response.status(), 501);
    let (response, _) = connection.request("POST", None, "/", &[]).await.unwrap();
    assert_eq!(response.status(), 404);
    let (response, _) = connection.request("GET", None, "/healthz", &[]).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(body_text(response).await.trim(), "serving");
}

#[tokio::test]
async fn a_stream_reset_mid_message_ends_that_websocket_only() {
    let pki = Pki::new("h2-reset");
    let (server, port) = server(&pki, &["--metrics-listen", "127.0.0.1:0"]);
    let connection = h2(&pki, port).await;
    let (mut kept, _) = connection.websocket("/", &[]).await;
    let (ws, _) = connection.websocket("/", &[]).await;
    let mut stream = ws.into_inner();
    use tokio::io::AsyncWriteExt;
    let half = &wsbox_testkit::frames::binary(&[7; 1000])[..500];
    stream.write_all(half).await.unwrap();
    stream.send.send_reset(h2::Reason::CANCEL);
    // The server forgets the reset one; the other goes on.
    let mut websockets = f64::NAN;
    for _ in 0..200 {
        let (_, metrics) = support::http_get(&server.metrics_addr(), "GET", "/metrics");
        websockets = support::sample(&metrics, "wsbox_connections_by_state{worker=\"0\",state=\"websocket\"}");
        if websockets == 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(websockets, 1.0, "one WebSocket left");
    kept.send(Message::text("still here")).await.unwrap();
    assert_eq!(kept.next().await.unwrap().unwrap(), Message::text("still here"));
}

#[tokio::test]
async fn sigterm_closes_every_stream_with_1001_and_sends_goaway() {
    let pki = Pki::new("h2-goaway");
    let (mut server, port) = server(&pki, &[]);
    let connection = h2(&pki, port).await;
    let mut sockets = Vec::new();
    for _ in 0..3 {
        sockets.push(connection.websocket("/", &[]).await.0);
    }
    server.signal("TERM");
    for ws in &mut sockets {
        assert_eq!(support::close_code(ws).await, Some(1001));
        // The close handshake completes: the client answers.
        let _ = ws.close(None).await;
    }
    // GOAWAY: the connection ends and no new stream opens.
    let ended = tokio::time::timeout(Duration::from_secs(10), connection.driver).await;
    assert!(ended.is_ok(), "the HTTP/2 connection ended");
    assert!(server.wait_exit(Duration::from_secs(20)).is_some_and(|s| s.success()), "{}", server.stderr());
}

/// A reload (SIGHUP, here with a new server name): an HTTP/2 connection
/// opened before it gets GOAWAY. Its open WebSocket goes on echoing on the
/// previous instance and closes normally, a new stream on it is refused,
/// and a new connection's WebSockets meet the new app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_sends_goaway_and_the_open_streams_go_on() {
    let pki = Pki::new("h2-reload");
    let config = pki.dir.join("wsbox.toml");
    std::fs::write(&config, "server-name = \"old-app\"\n").unwrap();
    let (server, port) = server(&pki, &["--config", config.to_str().unwrap()]);
    let before = h2(&pki, port).await;
    let (mut ws, headers) = before.websocket("/", &[]).await;
    assert_eq!(headers["server"], "old-app");

    std::fs::write(&config, "server-name = \"new-app\"\n").unwrap();
    server.signal("HUP");
    assert!(server.log_shows("SIGHUP: serving the new app"), "{}", server.stderr());
    ws.send(Message::text("after the reload")).await.unwrap();
    let echo = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("in time");
    assert_eq!(echo.unwrap().unwrap(), Message::text("after the reload"));

    let refused = tokio::time::timeout(
        Duration::from_secs(5),
        before.request("CONNECT", Some("websocket"), "/", &[("sec-websocket-version", "13")]),
    )
    .await
    .expect("in time");
    assert!(refused.is_err(), "a stream opened after the GOAWAY was refused: {:?}", refused.map(|(r, _)| r));

    let after = h2(&pki, port).await;
    let (fresh, headers) = after.websocket("/", &[]).await;
    assert_eq!(headers["server"], "new-app");
    support::echo_checks_on(fresh).await;

    ws.close(None).await.unwrap();
    assert_eq!(support::close_code(&mut ws).await, Some(1000));
    let ended = tokio::time::timeout(Duration::from_secs(10), before.driver).await;
    assert!(ended.is_ok(), "the connection that got GOAWAY ended with its last stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_that_overfill_a_turn_are_all_delivered() {
    // 5 connections × 4 streams × 1 MiB at once: more than a turn takes
    // (each connection reads its share, five shares pass the turn's cap),
    // so input waits in streams for later turns with no socket event to
    // bring it.
    let pki = Pki::new("h2-overfill");
    let (_server, port) = server(&pki, &[]);
    let mut tasks = Vec::new();
    for c in 0..5u8 {
        let connection = std::sync::Arc::new(h2(&pki, port).await);
        for n in 0..4u8 {
            let connection = std::sync::Arc::clone(&connection);
            tasks.push(tokio::spawn(async move {
                let (mut ws, _) = connection.websocket("/", &[]).await;
                let payload = vec![c * 4 + n; 1024 * 1024];
                ws.send(Message::binary(payload.clone())).await.unwrap();
                let echoed = tokio::time::timeout(Duration::from_secs(30), ws.next()).await.expect("in time");
                assert_eq!(echoed.unwrap().unwrap(), Message::binary(payload), "connection {c} stream {n}");
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test]
async fn the_connection_cap_counts_streams() {
    let pki = Pki::new("h2-cap");
    // The HTTP/2 connection is one, its streams the others.
    let (_server, port) = server(&pki, &["--max-connections", "3"]);
    let connection = h2(&pki, port).await;
    let _first = connection.websocket("/", &[]).await;
    let _second = connection.websocket("/", &[]).await;
    let (response, _) =
        connection.request("CONNECT", Some("websocket"), "/", &[("sec-websocket-version", "13")]).await.unwrap();
    assert_eq!(response.status(), 503);
}

#[tokio::test]
async fn an_http2_connection_that_never_starts_is_closed() {
    use tokio::io::AsyncReadExt;
    let pki = Pki::new("h2-silent");
    // The app's handshake timeout applies (the default is 10 s).
    let (_server, port) = server(&pki, &["--handshake-timeout-ms", "2000"]);
    let mut config = (*client_config(&pki.ca_path(), None)).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)).connect(name, tcp).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    // No connection preface: the server gives up after the handshake
    // timeout and closes.
    let started = std::time::Instant::now();
    let mut sink = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(20), tls.read_to_end(&mut sink)).await;
    assert!(ended.is_ok(), "the server closed the silent connection");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(1800), "not before the handshake timeout: {waited:?}");
    assert!(waited < Duration::from_secs(8), "the app's 2 s, not the default 10 s: {waited:?}");
}

#[tokio::test]
async fn no_http2_offers_only_http1() {
    let pki = Pki::new("h2-off");
    let (_server, port) = server(&pki, &["--no-http2"]);
    let mut config = (*client_config(&pki.ca_path(), None)).clone();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)).connect(name, tcp).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
}

#[tokio::test]
async fn the_page_is_served_on_both_listeners_and_upgrades_on_its_path_still_upgrade() {
    let pki = Pki::new("h2-page");
    let (server, port) = server(&pki, &["--page"]);
    // ws:// over HTTP/1.1.
    let (status, body) = support::http_get(&format!("127.0.0.1:{}", server.port), "GET", "/");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert!(body.contains("window.echoTest"), "the example client");
    support::echo_checks(&format!("{}/", server.url)).await;
    // wss:// over HTTP/2: the page, the health check, and a WebSocket on /.
    let connection = h2(&pki, port).await;
    for (path, expected) in [("/", "window.echoTest"), ("/healthz", "serving")] {
        let (response, _) = connection.request("GET", None, path, &[]).await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert!(body_text(response).await.contains(expected), "{path}");
    }
    let (ws, _) = connection.websocket("/", &[]).await;
    support::echo_checks_on(ws).await;
    // A WebSocket request on / that fails is refused, never answered with
    // the page (a 200 would open the tunnel).
    let (response, _) = connection.request("CONNECT", Some("websocket"), "/", &[]).await.unwrap();
    assert!(response.status().is_client_error(), "{response:?}");
}

#[tokio::test]
async fn a_connection_left_without_streams_is_told_to_go_away_after_the_idle_timeout() {
    let pki = Pki::new("h2-idle");
    let (_server, port) = server(&pki, &["--http2-idle-timeout-ms", "1000"]);
    let connection = h2(&pki, port).await;
    // An open stream keeps the connection past the idle timeout.
    let (mut ws, _) = connection.websocket("/", &[]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    ws.send(Message::text("still here")).await.unwrap();
    let echo = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("in time");
    assert_eq!(echo.unwrap().unwrap(), Message::text("still here"));
    ws.close(None).await.unwrap();
    assert_eq!(support::close_code(&mut ws).await, Some(1000));
    // Without a stream it ends once the timeout has passed, not before.
    let idle_since = std::time::Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(10), connection.driver).await;
    let after = idle_since.elapsed();
    assert!(ended.is_ok(), "the idle connection was not ended within 10 s");
    assert!(after >= Duration::from_millis(800), "ended {after:?} after its last stream, before the 1 s timeout");
}
