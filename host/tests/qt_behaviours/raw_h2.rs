//! The raw client of `raw.rs`, with the same calls, over a stream of an
//! HTTP/2 connection (RFC 8441): `qt_behaviours_http2.rs` runs the frame,
//! closing and sending behaviours through it. Every byte of the WebSocket
//! is still the test's; the HTTP/2 connection runs on a thread of its own
//! (the test's thread is the app's), and bytes come and go by channels.

use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

pub use wsbox_testkit::frames::ServerFrame as Frame;
use wsbox_testkit::frames::{FrameSource, raw_frame};

/// A client frame, masked unless `masked` is false.
pub fn frame(fin: bool, opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    raw_frame(u8::from(fin) << 7 | opcode, payload, masked)
}

pub use wsbox_testkit::frames::close as close_frame;

/// What `raw.rs` keeps in its `stream` field that tests read: the read
/// timeout and the connection's local address.
pub struct StreamInfo {
    local: SocketAddr,
    timeout: std::cell::Cell<Duration>,
}

impl StreamInfo {
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()> {
        self.timeout.set(timeout.unwrap_or(Duration::from_secs(3600)));
        Ok(())
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

pub struct Raw {
    pub stream: StreamInfo,
    buf: Vec<u8>,
    outgoing: Option<tokio::sync::mpsc::UnboundedSender<Vec<u8>>>,
    /// Chunks of the stream's DATA; `None`: the stream ended.
    incoming: mpsc::Receiver<Option<Vec<u8>>>,
    ended: bool,
}

impl Raw {
    /// Opens a WebSocket on a new HTTP/2 connection to `port` (extended
    /// CONNECT to `target`, `extra` as `Name: value` lines) and returns the
    /// response head as text (`HTTP/2 200` and its headers).
    pub fn upgraded(port: u16, target: &str, extra: &[&str]) -> (Self, String) {
        let (opened_tx, opened_rx) = mpsc::channel();
        let (in_tx, incoming) = mpsc::channel();
        let target = target.to_string();
        let extra: Vec<(String, String)> = extra
            .iter()
            .map(|line| {
                let (name, value) = line.split_once(':').expect("a header line");
                (name.trim().to_ascii_lowercase(), value.trim().to_string())
            })
            .collect();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(run_stream(port, target, extra, opened_tx, in_tx));
        });
        let (outgoing, head, local) = opened_rx.recv_timeout(Duration::from_secs(10)).expect("the stream opened");
        let stream = StreamInfo { local, timeout: std::cell::Cell::new(Duration::from_secs(5)) };
        (Self { stream, buf: Vec::new(), outgoing: Some(outgoing), incoming, ended: false }, head)
    }

    pub fn send(&mut self, bytes: &[u8]) {
        if let Some(outgoing) = &self.outgoing {
            let _ = outgoing.send(bytes.to_vec());
        }
    }

    /// The next frame, or `None` when the stream ends.
    pub fn frame(&mut self) -> Option<Frame> {
        self.next_frame()
    }

    /// Frames until a close frame: its code and reason (panics if none).
    pub fn close_received(&mut self) -> (u16, String) {
        FrameSource::close_received(self)
    }

    /// True when the server ends the stream within `within`.
    pub fn ends_within(&mut self, within: Duration) -> bool {
        let deadline = std::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.incoming.recv_timeout(left) {
                Ok(Some(_)) => {}
                Ok(None) | Err(mpsc::RecvTimeoutError::Disconnected) => return true,
                Err(mpsc::RecvTimeoutError::Timeout) => return false,
            }
        }
    }
}

type Opened = (tokio::sync::mpsc::UnboundedSender<Vec<u8>>, String, SocketAddr);

/// The HTTP/2 side of one [`Raw`]: connects, opens the stream, then moves
/// bytes between the channels and the stream until either side ends. The
/// peer leaving without a close (the `Raw` dropped) resets the stream.
async fn run_stream(
    port: u16,
    target: String,
    extra: Vec<(String, String)>,
    opened: mpsc::Sender<Opened>,
    incoming: mpsc::Sender<Option<Vec<u8>>>,
) {
    let config = crate::tls::client_config();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    tcp.set_nodelay(true).unwrap();
    let local = tcp.local_addr().unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await.expect("TLS handshake");
    let (send, connection) = h2::client::handshake(tls).await.expect("HTTP/2 handshake");
    tokio::spawn(connection);
    let mut send = send.ready().await.unwrap();
    while !send.is_extended_connect_protocol_enabled() {
        tokio::time::sleep(Duration::from_millis(5)).await;
        send = send.ready().await.unwrap();
    }
    // `Host: 127.0.0.1`, as `raw.rs`'s requests say.
    let mut request = http::Request::builder()
        .method("CONNECT")
        .uri(format!("https://127.0.0.1{target}"))
        .header("sec-websocket-version", "13");
    for (name, value) in &extra {
        request = request.header(name.as_str(), value.as_str());
    }
    let request = request.extension(h2::ext::Protocol::from("websocket")).body(()).unwrap();
    let (response, mut stream) = send.send_request(request, false).expect("extended CONNECT");
    let response = response.await.expect("a response");
    assert_eq!(response.status(), 200, "the WebSocket was accepted: {response:?}");
    let mut head = format!("HTTP/2 {}\r\n", response.status().as_u16());
    for (name, value) in response.headers() {
        head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap_or("")));
    }
    head.push_str("\r\n");
    let (out_tx, mut out_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    opened.send((out_tx, head, local)).unwrap();
    let mut body = response.into_body();
    loop {
        tokio::select! {
            data = body.data() => match data {
                Some(Ok(chunk)) => {
                    let _ = body.flow_control().release_capacity(chunk.len());
                    if incoming.send(Some(chunk.to_vec())).is_err() {
                        break;
                    }
                }
                _ => {
                    let _ = incoming.send(None);
                    break;
                }
            },
            bytes = out_rx.recv() => match bytes {
                Some(bytes) => {
                    let _ = stream.send_data(Bytes::from(bytes), false);
                }
                // The `Raw` is gone: the peer leaves without a close.
                None => {
                    stream.send_reset(h2::Reason::CANCEL);
                    break;
                }
            },
        }
    }
    // Keep the connection a moment so a reset reaches the server.
    tokio::time::sleep(Duration::from_millis(100)).await;
}

impl FrameSource for Raw {
    fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    fn fill(&mut self) -> bool {
        if self.ended {
            return false;
        }
        match self.incoming.recv_timeout(self.stream.timeout.get()) {
            Ok(Some(chunk)) => {
                self.buf.extend_from_slice(&chunk);
                true
            }
            Ok(None) | Err(_) => {
                self.ended = true;
                false
            }
        }
    }
}
