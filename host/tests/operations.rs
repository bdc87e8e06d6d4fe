//! What an operator runs wsbox with: systemd's readiness protocol, shell
//! completions and man pages generated from the command line's definition,
//! metrics, proxies, health checks, and reloading the app while serving.

mod support;

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::Duration;
use support::{Server, http_get, sample};

/// A fresh directory for one test (under the system's temporary directory:
/// a Unix socket's path must stay short).
fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wsbox-ops-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The next datagram systemd would receive, within `timeout`.
fn next_notification(socket: &UnixDatagram, timeout: Duration) -> String {
    socket.set_read_timeout(Some(timeout)).unwrap();
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).expect("a notification in time");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn under_systemd_it_notifies_ready_when_listening_and_stopping_at_shutdown() {
    let dir = scratch_dir("notify");
    let path = dir.join("notify.sock");
    let systemd = UnixDatagram::bind(&path).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_wsbox"));
    command.args(["serve", "--listen", "127.0.0.1:0"]).env("NOTIFY_SOCKET", &path);
    let mut server = Server::spawn(command, false);
    // The listening line is out: READY=1 came with it.
    assert_eq!(next_notification(&systemd, Duration::from_secs(5)).trim(), "READY=1");
    std::net::TcpStream::connect(("127.0.0.1", server.port)).expect("ready means accepting");
    server.signal("TERM");
    assert_eq!(next_notification(&systemd, Duration::from_secs(5)).trim(), "STOPPING=1");
    assert!(server.wait_exit(Duration::from_secs(10)).expect("exits").success());
}

#[test]
fn completions_cover_every_subcommand_and_flag() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(env!("CARGO_BIN_EXE_wsbox")).args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}: {}", String::from_utf8_lossy(&out.stderr));
        let script = String::from_utf8(out.stdout).unwrap();
        for word in ["serve", "components", "run", "max-connections", "tls-cert", "shutdown-timeout-ms"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    let out = Command::new(env!("CARGO_BIN_EXE_wsbox")).args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "an unknown shell is a usage error");
}

#[test]
fn man_pages_are_written_for_wsbox_and_each_subcommand() {
    let dir = scratch_dir("man");
    let out = Command::new(env!("CARGO_BIN_EXE_wsbox")).arg("man").arg("--out").arg(&dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed = String::from_utf8(out.stdout).unwrap();
    for page in ["wsbox.1", "wsbox-serve.1", "wsbox-run.1", "wsbox-components.1"] {
        assert!(listed.contains(page), "{page} not listed in {listed}");
        let text = std::fs::read_to_string(dir.join(page)).unwrap();
        assert!(text.starts_with(".ie") || text.contains(".TH"), "{page} is not roff: {}", &text[..80.min(text.len())]);
    }
    let serve = std::fs::read_to_string(dir.join("wsbox-serve.1")).unwrap();
    assert!(serve.contains("max\\-connections"), "the serve page documents its flags");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_endpoint_counts_what_a_load_did() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let server = Server::start(&["--metrics-listen", "127.0.0.1:0"]);
    let addr = server.metrics_addr();

    let (clients, per_client) = (20, 10);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let ws_url = server.url.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url).await.expect("connect");
            for i in 0..per_client {
                let text = format!("client {c:02} message {i:02}"); // 20 bytes
                ws.send(Message::text(text.clone())).await.unwrap();
                assert_eq!(ws.next().await.unwrap().unwrap(), Message::text(text));
            }
            ws.send(Message::binary(vec![7u8; 1000])).await.unwrap();
            assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary(vec![7u8; 1000]));
            ws.close(None).await.unwrap();
            while ws.next().await.is_some() {}
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    for _ in 0..3 {
        let (status, _) = http_get(&format!("127.0.0.1:{}", server.port), "GET", "/");
        assert!(status.starts_with("HTTP/1.1 400"), "{status}");
    }
    let (status, _) = http_get(&format!("127.0.0.1:{}", server.port), "GET", "/healthz");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");

    // The closes and refusals are counted as the server sees them: poll.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let text = loop {
        let (status, body) = http_get(&addr, "GET", "/metrics");
        assert_eq!(status, "HTTP/1.1 200 OK");
        let refused: f64 = body
            .lines()
            .filter(|l| l.starts_with("wsbox_handshakes_refused_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        let health_checks = sample(&body, r#"wsbox_http_responses_total{status="200"}"#);
        if sample(&body, r#"wsbox_closes_total{code="1000"}"#) >= clients as f64
            && refused >= 3.0
            && health_checks >= 1.0
        {
            break body;
        }
        assert!(std::time::Instant::now() < deadline, "closes and refusals not counted in time:\n{body}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let texts = (clients * per_client) as f64;
    assert_eq!(sample(&text, r#"wsbox_messages_total{direction="in",kind="text"}"#), texts, "{text}");
    assert_eq!(sample(&text, r#"wsbox_messages_total{direction="out",kind="text"}"#), texts, "{text}");
    assert_eq!(sample(&text, r#"wsbox_message_bytes_total{direction="in",kind="text"}"#), texts * 20.0);
    assert_eq!(sample(&text, r#"wsbox_message_bytes_total{direction="out",kind="text"}"#), texts * 20.0);
    assert_eq!(sample(&text, r#"wsbox_messages_total{direction="in",kind="binary"}"#), clients as f64);
    assert_eq!(sample(&text, r#"wsbox_message_bytes_total{direction="out",kind="binary"}"#), clients as f64 * 1000.0);
    // Every answer to an HTTP request, by status.
    assert_eq!(sample(&text, r#"wsbox_http_responses_total{status="101"}"#), clients as f64, "{text}");
    assert_eq!(sample(&text, r#"wsbox_http_responses_total{status="400"}"#), 3.0, "{text}");
    assert_eq!(sample(&text, r#"wsbox_http_responses_total{status="200"}"#), 1.0, "{text}");
    // tungstenite offers no compression.
    assert_eq!(sample(&text, r#"wsbox_websockets_opened_total{compression="none"}"#), clients as f64);
    assert_eq!(sample(&text, r#"wsbox_closes_total{code="1000"}"#), clients as f64);
    assert_eq!(sample(&text, r#"wsbox_websockets_open{transport="ws"}"#), 0.0);
    assert!(sample(&text, r#"wsbox_guest_memory_bytes{worker="0"}"#) > 0.0, "{text}");
    assert_eq!(sample(&text, "wsbox_guest_memory_cap_bytes"), (1u64 << 30) as f64);
    assert!(sample(&text, "wsbox_turn_seconds_count") > 0.0);
    assert!(text.trim_end().ends_with("# EOF"), "OpenMetrics ends with # EOF");

    assert!(http_get(&addr, "GET", "/other").0.starts_with("HTTP/1.1 404"));
    assert!(http_get(&addr, "POST", "/metrics").0.starts_with("HTTP/1.1 405"));

    // Connections by state (sampled every 250 ms): 4 WebSockets, 2 TCP
    // connections that have not sent their request yet, and a WebSocket the
    // server is closing (invalid UTF-8: 1007 sent; its client never answers).
    let mut open = Vec::new();
    for _ in 0..4 {
        open.push(tokio_tungstenite::connect_async(&server.url).await.expect("connect").0);
    }
    let idle: Vec<_> = (0..2).map(|_| std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap()).collect();
    let (status, _, mut closing) = upgrade_behind(server.port, b"");
    assert!(status.starts_with("HTTP/1.1 101"), "{status}");
    std::io::Write::write_all(&mut closing, &wsbox_testkit::frames::frame(true, 0x1, &[0xff])).unwrap();
    let state =
        |body: &str, state: &str| sample(body, &format!(r#"wsbox_connections_by_state{{worker="0",state="{state}"}}"#));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let body = http_get(&addr, "GET", "/metrics").1;
        if state(&body, "websocket") == 4.0 && state(&body, "handshake") == 2.0 && state(&body, "closing") == 1.0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "connections by state:\n{body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop((open, idle, closing));
}

/// Sends `preamble`, an upgrade request and a text message over a new
/// connection to `port`; returns the response's status line ("" when the
/// server closed without one), the echo when there was one, and the open
/// stream.
fn upgrade_behind(port: u16, preamble: &[u8]) -> (String, Option<String>, std::net::TcpStream) {
    upgrade_with(port, preamble, &[])
}

/// [`upgrade_behind`] with extra request `headers` (`"Name: value"`).
fn upgrade_with(port: u16, preamble: &[u8], headers: &[&str]) -> (String, Option<String>, std::net::TcpStream) {
    use std::io::{Read, Write};
    use wsbox_testkit::frames;
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = preamble.to_vec();
    out.extend_from_slice(wsbox_testkit::upgrade::request("/", "localhost", headers).as_bytes());
    let _ = tcp.write_all(&out);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        match tcp.read(&mut buf) {
            Ok(0) | Err(_) => return (String::new(), None, tcp),
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    };
    let status = String::from_utf8_lossy(&got[..head_end]).lines().next().unwrap_or_default().to_string();
    if !status.contains(" 101 ") {
        return (status, None, tcp);
    }
    tcp.write_all(&frames::text("through the proxy")).unwrap();
    let mut rest = got[head_end..].to_vec();
    loop {
        if let Some((frame, _)) = frames::parse_frame(&rest) {
            return (status, Some(String::from_utf8_lossy(&frame.payload).into_owned()), tcp);
        }
        match tcp.read(&mut buf) {
            Ok(0) | Err(_) => return (status, None, tcp),
            Ok(n) => rest.extend_from_slice(&buf[..n]),
        }
    }
}

/// A PROXY v2 header (PROXY command, TCP) for `client` → `server`.
fn proxy_v2(client: std::net::SocketAddr, server: std::net::SocketAddr) -> Vec<u8> {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n\x21".to_vec();
    let mut addresses = Vec::new();
    match (client, server) {
        (std::net::SocketAddr::V4(c), std::net::SocketAddr::V4(s)) => {
            header.push(0x11);
            addresses.extend_from_slice(&c.ip().octets());
            addresses.extend_from_slice(&s.ip().octets());
        }
        (std::net::SocketAddr::V6(c), std::net::SocketAddr::V6(s)) => {
            header.push(0x21);
            addresses.extend_from_slice(&c.ip().octets());
            addresses.extend_from_slice(&s.ip().octets());
        }
        _ => panic!("one family for both addresses"),
    }
    addresses.extend_from_slice(&client.port().to_be_bytes());
    addresses.extend_from_slice(&server.port().to_be_bytes());
    header.extend_from_slice(&(addresses.len() as u16).to_be_bytes());
    header.extend_from_slice(&addresses);
    header
}

#[test]
fn behind_a_trusted_proxy_the_app_and_the_address_limits_see_the_client() {
    let server = Server::start(&[
        "--proxy-protocol",
        "--trusted-proxy",
        "127.0.0.0/8",
        "--max-connections-per-address",
        "1",
        "--log-level",
        "debug",
    ]);
    let v1 = b"PROXY TCP4 203.0.113.7 192.0.2.1 4242 80\r\n";
    let (status, echo, _first) = upgrade_behind(server.port, v1);
    assert!(status.contains(" 101 "), "{status}\n{}", server.stderr());
    assert_eq!(echo.as_deref(), Some("through the proxy"));
    let v2 = proxy_v2("[2001:db8::9]:5151".parse().unwrap(), "[2001:db8::1]:80".parse().unwrap());
    let (status, echo, _second) = upgrade_behind(server.port, &v2);
    assert!(status.contains(" 101 ") && echo.is_some(), "{status}\n{}", server.stderr());
    // The app saw the clients the headers named.
    assert!(server.log_shows("peer=203.0.113.7:4242"), "{}", server.stderr());
    assert!(server.log_shows("peer=2001:db8::9:5151"), "{}", server.stderr());
    // The per-address cap counts the client, not the proxy: a second
    // connection of 203.0.113.7 is refused while its first is open, another
    // client behind the same proxy is served.
    let (status, _, _) = upgrade_behind(server.port, v1);
    assert!(status.contains(" 429 "), "{status}");
    let other = b"PROXY TCP4 203.0.113.8 192.0.2.1 4243 80\r\n";
    let (status, echo, _third) = upgrade_behind(server.port, other);
    assert!(status.contains(" 101 ") && echo.is_some(), "{status}");
}

#[test]
fn a_proxy_header_from_an_untrusted_peer_a_missing_one_and_a_malformed_one_are_refused() {
    let v1 = b"PROXY TCP4 203.0.113.7 192.0.2.1 4242 80\r\n";
    // Loopback is not a trusted proxy here: its header is refused; a
    // connection without one is a client of its own.
    let server = Server::start(&["--proxy-protocol", "--trusted-proxy", "192.0.2.0/24"]);
    let (status, _, _) = upgrade_behind(server.port, v1);
    assert_eq!(status, "", "no answer to a header from an untrusted peer");
    assert!(server.log_shows("not a trusted proxy"), "{}", server.stderr());
    let (status, echo, _) = upgrade_behind(server.port, b"");
    assert!(status.contains(" 101 ") && echo.is_some(), "a direct client is served: {status}");

    // Loopback is the trusted proxy here: it must send a well-formed header.
    let server = Server::start(&["--proxy-protocol", "--trusted-proxy", "127.0.0.1"]);
    let (status, _, _) = upgrade_behind(server.port, b"");
    assert_eq!(status, "");
    assert!(server.log_shows("without a PROXY header"), "{}", server.stderr());
    let (status, _, _) = upgrade_behind(server.port, b"PROXY TCP4 999.0.113.7 192.0.2.1 4242 80\r\n");
    assert_eq!(status, "");
    assert!(server.log_shows("malformed PROXY header"), "{}", server.stderr());
    let (status, echo, _) = upgrade_behind(server.port, v1);
    assert!(status.contains(" 101 ") && echo.is_some(), "still serving: {status}");
}

#[test]
fn forwarded_headers_name_the_client_only_from_a_trusted_proxy() {
    let forwarded = ["X-Forwarded-For: 10.1.1.1, 198.51.100.23"];
    // Loopback is a trusted HTTP proxy here: the last entry is the client,
    // and the per-address limits (on for loopback here) skip the proxy.
    let server = Server::start(&[
        "--trusted-proxy",
        "127.0.0.1",
        "--address-limits-on-loopback",
        "--max-connections-per-address",
        "1",
        "--log-level",
        "debug",
    ]);
    let (status, echo, _first) = upgrade_with(server.port, b"", &forwarded);
    assert!(status.contains(" 101 ") && echo.is_some(), "{status}\n{}", server.stderr());
    let (status, echo, _second) =
        upgrade_with(server.port, b"", &["Forwarded: for=192.0.2.60;proto=http, for=\"[2001:db8::7]:4711\""]);
    assert!(status.contains(" 101 ") && echo.is_some(), "the proxy's address is not capped: {status}");
    assert!(server.log_shows("peer=198.51.100.23:0"), "{}", server.stderr());
    assert!(server.log_shows("peer=2001:db8::7:4711"), "{}", server.stderr());

    // Nobody is trusted here: the header is the client's own claim, ignored.
    let server = Server::start(&["--log-level", "debug"]);
    let (status, echo, _) = upgrade_with(server.port, b"", &forwarded);
    assert!(status.contains(" 101 ") && echo.is_some(), "{status}");
    assert!(server.log_shows("peer=127.0.0.1:"), "{}", server.stderr());
    assert!(!server.stderr().contains("198.51.100.23"), "{}", server.stderr());
}

#[test]
fn proxy_health_check_reload_gather_and_http2_idle_flags_are_checked() {
    for (args, named) in [
        (&["--proxy-protocol"][..], "--trusted-proxy"),
        (&["--proxy-protocol", "--trusted-proxy", "10.0.0.0/33"], "--trusted-proxy"),
        (&["--health-check-path", "healthz"], "--health-check-path"),
        (&["--reload-endpoint"], "--metrics-listen"),
        (&["--gather-input-us", "5000"], "--gather-input-us"),
        (&["--http2-idle-timeout-ms", "0"], "--http2-idle-timeout-ms"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_wsbox")).arg("serve").args(args).output().unwrap();
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(named), "{args:?}: {stderr}");
    }
}

/// The health check: 200 while serving; on SIGTERM 503 at once while the
/// server still serves for --drain-delay-ms, then the graceful shutdown.
#[test]
fn healthz_turns_503_before_the_shutdown_begins() {
    use std::io::{Read, Write};
    let mut server = Server::start(&["--metrics-listen", "127.0.0.1:0", "--drain-delay-ms", "1500"]);
    let addr = server.metrics_addr();
    let (status, body) = http_get(&addr, "GET", "/healthz");
    assert!(status.starts_with("HTTP/1.1 200") && body == "serving\n", "{status} {body:?}");
    let (status, _) = http_get(&addr, "POST", "/healthz");
    assert!(status.starts_with("HTTP/1.1 405"), "{status}");
    // The same check on the WebSocket listener, where load balancers ask;
    // any other plain request there is still a 400.
    let listener = format!("127.0.0.1:{}", server.port);
    let (status, body) = http_get(&listener, "GET", "/healthz");
    assert!(status.starts_with("HTTP/1.1 200") && body == "serving\n", "{status} {body:?}");
    assert!(http_get(&listener, "GET", "/").0.starts_with("HTTP/1.1 400"));

    // A client connected before the signal, still echoing while draining.
    let (status, _, mut held) = upgrade_behind(server.port, b"");
    assert!(status.contains(" 101 "), "{status}");
    server.signal("TERM");
    let draining = (0..100).any(|_| {
        let (status, _) = http_get(&addr, "GET", "/healthz");
        let draining = status.starts_with("HTTP/1.1 503");
        if !draining {
            std::thread::sleep(Duration::from_millis(10));
        }
        draining
    });
    assert!(draining, "/healthz says 503 once a shutdown is asked for\n{}", server.stderr());
    let (status, body) = http_get(&listener, "GET", "/healthz");
    assert!(status.starts_with("HTTP/1.1 503") && body == "not serving\n", "{status} {body:?}");
    // Still serving: a new client is upgraded and echoed, the held one too.
    let (status, echo, _) = upgrade_behind(server.port, b"");
    assert!(status.contains(" 101 ") && echo.is_some(), "new clients are served while draining: {status}");
    held.write_all(&wsbox_testkit::frames::text("still here")).unwrap();
    let mut buf = [0u8; 64];
    let n = held.read(&mut buf).unwrap();
    assert!(buf[..n].ends_with(b"still here"), "{:?}", &buf[..n]);
    // Then the shutdown: 1001 to the held client, exit 0.
    let status = server.wait_exit(Duration::from_secs(15)).expect("exits after the drain delay and the shutdown");
    assert!(status.success(), "{status:?}\n{}", server.stderr());
    let log = server.stderr();
    let (draining_at, shutdown_at) = (log.find("draining:"), log.find("shutdown requested"));
    assert!(matches!((draining_at, shutdown_at), (Some(d), Some(s)) if d < s), "{log}");
}

/// The `Server:` header of a handshake with `url`, and the socket.
async fn connect_named(url: &str) -> Result<(String, support::Ws), String> {
    let (ws, response) = tokio_tungstenite::connect_async(url).await.map_err(|e| e.to_string())?;
    let name = response.headers().get("server").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    Ok((name, ws))
}

/// Sends `text` and waits (5 s) for its echo.
async fn echo_text(ws: &mut support::Ws, text: &str) -> Result<(), String> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    ws.send(Message::text(text)).await.map_err(|e| e.to_string())?;
    match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
        Ok(Some(Ok(Message::Text(echo)))) if echo.as_str() == text => Ok(()),
        other => Err(format!("echo of {text:?}: {other:?}")),
    }
}

/// A config file naming the component and the server name (the `Server:`
/// header, which tells which app's settings a handshake met).
fn write_app_config(path: &std::path::Path, component: &std::path::Path, server_name: &str) {
    let text = format!("component = {:?}\nserver-name = {server_name:?}\n", component.display().to_string());
    std::fs::write(path, text).unwrap();
}

/// SIGHUP with a new component and new settings in the config file, under
/// load: connections opened before keep echoing on the previous instance
/// until they end, handshakes go on without a failure, and new connections
/// meet the new app (its `Server:` header, and its component: the new one
/// is built with the test-only faults, the old one echoes the fault message).
/// A shutdown then closes what either instance holds with 1001.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_swaps_the_app_under_load_without_dropping_a_connection() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let dir = scratch_dir("swap");
    support::write_components(&dir);
    let (old_component, new_component) = (dir.join("wsbox-server.wasm"), support::faulty_component());
    let config = dir.join("wsbox.toml");
    write_app_config(&config, &old_component, "old-app");
    let server = Server::start(&["--config", config.to_str().unwrap()]);
    let url = server.url.clone();

    // Established before the swap, each echoing all along.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let echoed = Arc::new(AtomicUsize::new(0));
    let mut established = Vec::new();
    for c in 0..20 {
        let (name, mut ws) = connect_named(&url).await.expect("connect");
        assert_eq!(name, "old-app");
        let (stop, failures, echoed) = (stop.clone(), failures.clone(), echoed.clone());
        established.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                if let Err(e) = echo_text(&mut ws, &format!("established {c} message {i}")).await {
                    failures.lock().unwrap().push(format!("established {c}: {e}"));
                    return None;
                }
                echoed.fetch_add(1, Ordering::Relaxed);
                i += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Some(ws)
        }));
    }
    // Handshakes all along: each counts which app answered.
    let (old_seen, new_seen) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let fresh = {
        let (stop, failures, url) = (stop.clone(), failures.clone(), url.clone());
        let (old_seen, new_seen) = (old_seen.clone(), new_seen.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let outcome = async {
                    let (name, mut ws) = connect_named(&url).await?;
                    echo_text(&mut ws, "fresh").await?;
                    ws.close(None).await.map_err(|e| e.to_string())?;
                    Ok::<_, String>(name)
                };
                match outcome.await {
                    Ok(name) if name == "old-app" => old_seen.fetch_add(1, Ordering::Relaxed),
                    Ok(name) if name == "new-app" => new_seen.fetch_add(1, Ordering::Relaxed),
                    Ok(name) => panic!("unexpected Server header {name:?}"),
                    Err(e) => {
                        failures.lock().unwrap().push(format!("fresh: {e}"));
                        0
                    }
                };
            }
        })
    };
    let wait_for = |count: &Arc<AtomicUsize>, at_least: usize, what: &str| {
        let (count, what) = (count.clone(), what.to_string());
        async move {
            for _ in 0..1200 {
                if count.load(Ordering::Relaxed) >= at_least {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("{what}: fewer than {at_least} in 60 s");
        }
    };
    wait_for(&old_seen, 5, "handshakes with the old app").await;
    wait_for(&echoed, 100, "echoes on established connections").await;

    write_app_config(&config, new_component, "new-app");
    server.signal("HUP");
    wait_for(&new_seen, 5, "handshakes with the new app (the new component compiles first)").await;
    let echoed_at_swap = echoed.load(Ordering::Relaxed);
    wait_for(&echoed, echoed_at_swap + 100, "echoes on established connections after the swap").await;
    stop.store(true, Ordering::Relaxed);
    fresh.await.unwrap();
    let mut kept = Vec::new();
    for task in established {
        kept.extend(task.await.unwrap());
    }
    assert!(failures.lock().unwrap().is_empty(), "{:?}\n{}", failures.lock().unwrap(), server.stderr());
    assert_eq!(kept.len(), 20, "every established connection is still open");

    // The previous component serves the connections it kept: it has no
    // faults, so the fault message is only echoed.
    echo_text(&mut kept[0], "__wsbox_fault:trap").await.expect("the old component echoes the fault message");
    // The new component has them: the message stops its instance, whose
    // connection gets 1012, while the old instance's connections go on.
    let (name, mut probe) = connect_named(&url).await.expect("connect to the new app");
    assert_eq!(name, "new-app");
    echo_text(&mut probe, "before the fault").await.unwrap();
    {
        use futures_util::SinkExt;
        probe.send(tokio_tungstenite::tungstenite::Message::text("__wsbox_fault:trap")).await.unwrap();
    }
    assert_eq!(support::close_code(&mut probe).await, Some(1012), "the new component trapped");
    for (i, ws) in kept.iter_mut().enumerate() {
        echo_text(ws, &format!("after the fault {i}")).await.expect("the old instance is not the one that failed");
    }
    let (name, mut after) = connect_named(&url).await.expect("the new app restarted");
    assert_eq!(name, "new-app");
    echo_text(&mut after, "restarted").await.unwrap();

    // A shutdown while the previous instance drains: what both instances
    // hold gets 1001, and the previous instance is done.
    let mut last = kept.pop().unwrap();
    for mut ws in kept {
        ws.close(None).await.unwrap();
    }
    server.signal("TERM");
    let started = std::time::Instant::now();
    assert_eq!(support::close_code(&mut last).await, Some(1001), "the draining instance's connection");
    assert_eq!(support::close_code(&mut after).await, Some(1001), "the new instance's connection");
    assert!(started.elapsed() < Duration::from_secs(5), "the draining instance saw the shutdown");
    // The closing handshakes complete (unanswered, they would last the
    // shutdown grace, as long as the wait for the log line below).
    let _ = last.close(None).await;
    let _ = after.close(None).await;
    assert!(server.log_shows("the previous instance is done"), "{}", server.stderr());
    let log = server.stderr();
    assert!(log.contains("SIGHUP: serving the new app"), "{log}");
}

/// A reload's drain time is bounded: what the previous instance still holds
/// then gets 1001. A config that does not parse and a component that does
/// not compile are refused and logged, and the app stays; a SIGHUP that changes nothing swaps nothing. Every worker
/// hands over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_drains_for_a_bounded_time_and_a_bad_config_changes_nothing() {
    let dir = scratch_dir("drain");
    support::write_components(&dir);
    let component = dir.join("wsbox-server.wasm");
    let config = dir.join("wsbox.toml");
    write_app_config(&config, &component, "first");
    // Two workers: each hands over.
    let args = ["--config", config.to_str().unwrap(), "--reload-drain-timeout-ms", "500", "--workers", "2"];
    let server = Server::start(&args);

    server.signal("HUP");
    assert!(server.log_shows("the app and its settings are unchanged"), "{}", server.stderr());
    std::fs::write(&config, "server-name = [\n").unwrap();
    server.signal("HUP");
    assert!(server.log_shows("app reload failed"), "{}", server.stderr());
    // A component that does not compile: refused too.
    let good = std::fs::read(&component).unwrap();
    std::fs::write(&component, b"\0asm not a component").unwrap();
    write_app_config(&config, &component, "first");
    server.signal("HUP");
    assert!(
        (0..250).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            server.stderr().matches("app reload failed").count() == 2
        }),
        "{}",
        server.stderr()
    );
    std::fs::write(&component, good).unwrap();
    let (name, mut kept) = connect_named(&server.url).await.unwrap();
    assert_eq!(name, "first", "the app stays");

    write_app_config(&config, &component, "second");
    server.signal("HUP");
    let started = std::time::Instant::now();
    assert_eq!(support::close_code(&mut kept).await, Some(1001), "the drain time is over");
    assert!(started.elapsed() < Duration::from_secs(5));
    for i in 0..8 {
        let (name, mut ws) =
            connect_named(&server.url).await.unwrap_or_else(|e| panic!("connection {i}: {e}\n{}", server.stderr()));
        assert_eq!(name, "second", "connection {i}: every worker serves the new app");
        echo_text(&mut ws, "served by the new app").await.unwrap();
    }
    let log = server.stderr();
    assert_eq!(log.matches("handed the listeners over").count(), 2, "{log}");
}

/// With `--reload-endpoint`, `POST /reload` on the metrics address does what
/// SIGHUP does and answers with the outcome; without it, there is no such path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_reload_on_the_metrics_address_reloads_and_says_how_it_went() {
    let config = scratch_dir("reload-endpoint").join("wsbox.toml");
    std::fs::write(&config, "server-name = \"first\"\n").unwrap();
    let args = ["--config", config.to_str().unwrap(), "--metrics-listen", "127.0.0.1:0", "--reload-endpoint"];
    let server = Server::start(&args);
    let addr = server.metrics_addr();

    let (status, body) = http_get(&addr, "POST", "/reload");
    assert_eq!((status.as_str(), body.trim()), ("HTTP/1.1 200 OK", "the app and its settings are unchanged"));
    std::fs::write(&config, "server-name = \"second\"\n").unwrap();
    let (status, body) = http_get(&addr, "POST", "/reload");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body.starts_with("serving the new app"), "{body}");
    let (name, mut ws) = connect_named(&server.url).await.unwrap();
    assert_eq!(name, "second");
    echo_text(&mut ws, "after the reload").await.unwrap();

    std::fs::write(&config, "server-name = [\n").unwrap();
    let (status, body) = http_get(&addr, "POST", "/reload");
    assert_eq!(status, "HTTP/1.1 500 Internal Server Error");
    assert!(body.contains("app reload failed") && body.contains("not valid TOML"), "{body}");
    assert!(server.log_shows("POST /reload: app reload failed"), "{}", server.stderr());
    assert!(http_get(&addr, "GET", "/reload").0.starts_with("HTTP/1.1 405"));

    let plain = Server::start(&["--metrics-listen", "127.0.0.1:0"]);
    assert!(http_get(&plain.metrics_addr(), "POST", "/reload").0.starts_with("HTTP/1.1 404"));
}
