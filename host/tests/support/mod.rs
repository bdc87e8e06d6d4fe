//! Starts the real `wsbox` binary (host + embedded component) — or another
//! host serving a wsbox component — on a free loopback port and stops it
//! when the test ends; and the client workloads several tests share.

#![allow(dead_code)]

pub mod pki;

use std::process::Command;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use wsbox_testkit::process::Process;

/// A server process under test (the test kit's launcher), with its URLs.
pub struct Server {
    process: Process,
    pub url: String,
    /// The `wss://` URL, when started with `--tls-cert`.
    pub tls_url: Option<String>,
    pub port: u16,
}

impl Server {
    /// Starts `wsbox serve --listen 127.0.0.1:0 <extra>` and waits for its
    /// "listening on" line (no sleeps).
    pub fn start(extra: &[&str]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wsbox"));
        command.args(["serve", "--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0"]).args(extra);
        Self::spawn(command, extra.contains(&"--tls-cert"))
    }

    /// Starts any server process that prints "listening on URL" with its
    /// `ws://` URL (then its `wss://` URL when `tls`).
    pub fn spawn(command: Command, tls: bool) -> Self {
        let process = Process::spawn(command).unwrap_or_else(|e| panic!("{e}"));
        let url = process.next_url(Duration::from_secs(60)).unwrap_or_else(|e| panic!("{e}"));
        assert!(url.starts_with("ws://127.0.0.1:"), "unexpected listening URL: {url}");
        let tls_url = tls.then(|| process.next_url(Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}")));
        let port = url.rsplit(':').next().unwrap().parse().expect("port");
        Server { process, url, tls_url, port }
    }

    /// Sends a signal (`TERM`, `INT`) to the server process.
    pub fn signal(&self, name: &str) {
        self.process.signal(name);
    }

    /// Waits up to `timeout` for the server to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        self.process.wait_exit(timeout)
    }

    pub fn stderr(&self) -> String {
        self.process.log()
    }

    /// Waits up to 5 s for `text` in the server's log.
    pub fn log_shows(&self, text: &str) -> bool {
        (0..250).any(|_| {
            let found = self.stderr().contains(text);
            if !found {
                std::thread::sleep(Duration::from_millis(20));
            }
            found
        })
    }

    /// Where the metrics endpoint listens (`--metrics-listen`), from the log
    /// (waiting up to 5 s: the log is read on a thread of its own, and the
    /// line may come after the listening line was seen).
    pub fn metrics_addr(&self) -> String {
        let find = |log: &str| {
            log.lines()
                .find(|l| l.contains("metrics endpoint"))
                .and_then(|l| l.split("url=http://").nth(1)?.split_whitespace().next().map(str::to_string))
        };
        for _ in 0..250 {
            if let Some(url) = find(&self.stderr()) {
                return url.trim_end_matches("/metrics").to_string();
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("no metrics endpoint in the log:\n{}", self.stderr());
    }

    /// The server's resident memory in bytes (from /proc).
    pub fn rss(&self) -> u64 {
        self.process.rss()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- server stderr ---\n{}", self.stderr());
        }
    }
}

/// Echo as Qt's echo example does it, checked with a real client: text and
/// binary (64 KiB) come back as sent, a ping gets its pong, and a close with
/// 4000 "bye" is answered with the same code and reason.
pub async fn echo_checks(url: &str) {
    let (ws, _) = tokio_tungstenite::connect_async(url).await.expect("connect");
    echo_checks_on(ws).await;
}

/// [`echo_checks`] on a WebSocket already open (over any byte stream).
pub async fn echo_checks_on<S: AsyncRead + AsyncWrite + Unpin>(mut ws: WebSocketStream<S>) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    ws.send(Message::text("héllo wsbox")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("héllo wsbox"));
    let binary: Vec<u8> = (0..65_536u32).map(|i| (i * 31 % 251) as u8).collect();
    ws.send(Message::binary(binary.clone())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary(binary));
    ws.send(Message::Ping(b"are you there".to_vec().into())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::Pong(b"are you there".to_vec().into()));
    let close = CloseFrame { code: 4000.into(), reason: "bye".into() };
    ws.close(Some(close)).await.unwrap();
    match ws.next().await {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!((u16::from(frame.code), frame.reason.as_str()), (4000, "bye"));
        }
        other => panic!("the close was not answered with 4000 bye: {other:?}"),
    }
}

/// `peers` concurrent connections each send `messages` binary messages of
/// 8..8 KiB (every byte depends on peer and sequence) and read them back:
/// nothing lost, reordered or corrupted; then each closes with 1000 and
/// gets 1000 back.
pub async fn many_peers(url: &str, peers: u32, messages: u32) {
    let url = url.to_string();
    many_peers_with(peers, messages, move |_| {
        let url = url.clone();
        async move { tokio_tungstenite::connect_async(&url).await.expect("connect").0 }
    })
    .await;
}

/// [`many_peers`] with peers that `connect` opens (over any byte stream).
pub async fn many_peers_with<S, F, Fut>(peers: u32, messages: u32, connect: F)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Fn(u32) -> Fut,
    Fut: Future<Output = WebSocketStream<S>> + Send + 'static,
{
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let tasks: Vec<_> = (0..peers)
        .map(|peer| {
            let connecting = connect(peer);
            tokio::spawn(async move {
                let ws = connecting.await;
                let (mut sink, mut stream) = ws.split();
                let payload = move |seq: u32| {
                    let len = ((peer.wrapping_mul(7919) ^ seq.wrapping_mul(104_729)) % 8192) as usize;
                    let mut p = Vec::with_capacity(len + 8);
                    p.extend_from_slice(&peer.to_be_bytes());
                    p.extend_from_slice(&seq.to_be_bytes());
                    p.extend((0..len).map(|i| (i as u32 ^ peer ^ seq) as u8));
                    p
                };
                let reader = tokio::spawn(async move {
                    for seq in 0..messages {
                        match stream.next().await {
                            Some(Ok(Message::Binary(got))) => {
                                assert_eq!(got, payload(seq), "peer {peer} message {seq}")
                            }
                            other => panic!("peer {peer} message {seq}: {other:?}"),
                        }
                    }
                    stream
                });
                for seq in 0..messages {
                    sink.send(Message::binary(payload(seq))).await.unwrap();
                }
                let stream = reader.await.expect("every echo, in order, intact");
                let mut ws = sink.reunite(stream).unwrap();
                ws.close(None).await.unwrap();
                match ws.next().await {
                    Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1000),
                    other => panic!("peer {peer}: the close was not answered: {other:?}"),
                }
            })
        })
        .collect();
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(600), task).await.expect("in time").expect("a peer");
    }
}

/// A client connection as tokio-tungstenite makes it.
pub type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Runs a bootstrap script (path from the repository root) and returns the
/// tool path it prints; fails with the script's own message.
pub fn bootstrap(script: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(script);
    let out = Command::new("bash").arg(&path).output().unwrap_or_else(|e| panic!("run {script}: {e}"));
    assert!(out.status.success(), "{script} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `wsbox components --out DIR`: the three components this build made.
pub fn write_components(dir: &std::path::Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_wsbox"))
        .args(["components", "--out"])
        .arg(dir)
        .output()
        .expect("run wsbox components");
    assert!(out.status.success(), "wsbox components: {}", String::from_utf8_lossy(&out.stderr));
}

/// `GET path` on `addr`; the status line and the body.
pub fn http_get(addr: &str, method: &str, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(stream, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (head.lines().next().unwrap_or("").to_string(), body.to_string())
}

/// The value of the series `name{labels}` (as written in the exposition), or 0.
pub fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// The component built with its test-only `faults` feature (once per test
/// binary): a text message `__wsbox_fault:trap` (`:loop`, `:alloc`) makes
/// it trap (spin, allocate without bound).
pub fn faulty_component() -> &'static std::path::Path {
    static BUILT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let target_dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("faulty-guest");
        wsbox_testkit::guest::build(root, &target_dir, Some("faults")).unwrap_or_else(|e| panic!("{e}"))
    })
}

/// The code of the close frame the server sends next, within 10 s (`None`:
/// the connection ended without one).
pub async fn close_code<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> Option<u16> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) => return None,
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    ended.expect("no close within 10 s")
}
