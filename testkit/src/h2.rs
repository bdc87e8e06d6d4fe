//! A WebSocket client over HTTP/2 (RFC 8441), as a browser opens one: an
//! extended CONNECT on an HTTP/2 connection it already holds. The stream is
//! wrapped as a byte stream, so tokio-tungstenite speaks RFC 6455 over it
//! exactly as over TCP. (Feature `h2-client`: the host's tests and the
//! bench use it.)

use bytes::Bytes;
use h2::client::SendRequest;
use h2::{RecvStream, SendStream};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;

/// One HTTP/2 connection to the server, driven by a task of its own.
pub struct H2Connection {
    send: SendRequest<Bytes>,
    pub driver: tokio::task::JoinHandle<Result<(), h2::Error>>,
}

/// Connects to `127.0.0.1:port` with TLS (ALPN `h2` only, server name
/// `localhost`) and waits for the server's SETTINGS to allow extended
/// CONNECT.
pub async fn connect(port: u16, config: Arc<rustls::ClientConfig>) -> H2Connection {
    let mut config = (*config).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("TCP connect");
    tcp.set_nodelay(true).unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.expect("TLS handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]), "the server chose HTTP/2 by ALPN");
    let (send, connection) = h2::client::handshake(tls).await.expect("HTTP/2 handshake");
    let driver = tokio::spawn(connection);
    let mut send = send.ready().await.expect("ready for a request");
    for _ in 0..500 {
        if send.is_extended_connect_protocol_enabled() {
            return H2Connection { send, driver };
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        send = send.ready().await.expect("ready for a request");
    }
    panic!("the server never sent SETTINGS_ENABLE_CONNECT_PROTOCOL");
}

impl H2Connection {
    /// Sends `method` (with `:protocol` when given) for `path` with
    /// `headers`; the response and the request's stream.
    pub async fn request(
        &self,
        method: &str,
        protocol: Option<&str>,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<(http::Response<RecvStream>, SendStream<Bytes>), h2::Error> {
        let mut builder = http::Request::builder().method(method).uri(format!("https://localhost{path}"));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        if let Some(protocol) = protocol {
            builder = builder.extension(h2::ext::Protocol::from(protocol));
        }
        let mut send = self.send.clone().ready().await?;
        let (response, stream) = send.send_request(builder.body(()).unwrap(), false)?;
        Ok((response.await?, stream))
    }

    /// A WebSocket on a new stream of this connection, with `headers`
    /// beside the version; the server's response headers too.
    pub async fn websocket(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (WebSocketStream<H2Stream>, http::HeaderMap) {
        let mut all = vec![("sec-websocket-version", "13")];
        all.extend_from_slice(headers);
        let (response, send) = self.request("CONNECT", Some("websocket"), path, &all).await.expect("extended CONNECT");
        assert_eq!(response.status(), 200, "the WebSocket was accepted: {response:?}");
        let (parts, recv) = response.into_parts();
        let stream = H2Stream { send, recv, held: Bytes::new(), ended: false };
        (WebSocketStream::from_raw_socket(stream, Role::Client, None).await, parts.headers)
    }
}

/// An HTTP/2 stream as a byte stream.
pub struct H2Stream {
    pub send: SendStream<Bytes>,
    recv: RecvStream,
    held: Bytes,
    ended: bool,
}

impl AsyncRead for H2Stream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.held.is_empty() {
            match ready!(self.recv.poll_data(cx)) {
                Some(Ok(data)) => {
                    let _ = self.recv.flow_control().release_capacity(data.len());
                    self.held = data;
                }
                Some(Err(e)) => return Poll::Ready(Err(io::Error::other(e))),
                None => return Poll::Ready(Ok(())),
            }
        }
        let n = self.held.len().min(buf.remaining());
        buf.put_slice(&self.held.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for H2Stream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        self.send.reserve_capacity(bytes.len());
        let mut capacity = self.send.capacity();
        while capacity == 0 {
            match ready!(self.send.poll_capacity(cx)) {
                Some(Ok(n)) => capacity = n,
                Some(Err(e)) => return Poll::Ready(Err(io::Error::other(e))),
                None => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            }
        }
        let n = capacity.min(bytes.len());
        self.send.send_data(Bytes::copy_from_slice(&bytes[..n]), false).map_err(io::Error::other)?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.ended {
            self.ended = true;
            let _ = self.send.send_data(Bytes::new(), true);
        }
        Poll::Ready(Ok(()))
    }
}
