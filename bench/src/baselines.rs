//! The native servers wsbox is measured against, built from this workspace:
//! a raw TCP echo (the loopback limit: no framing at all) and the
//! tokio-tungstenite echo as its examples write it (`read.forward(write)`),
//! plain and over tokio-rustls, and a tokio-tungstenite broadcast relay for
//! topics. Each prints "listening on URL" once bound.

use anyhow::Result;
use futures_util::{StreamExt, TryStreamExt};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
pub enum Baseline {
    /// Echoes bytes back as they come: the loopback limit.
    RawTcp,
    /// tokio-tungstenite's echo server.
    Tungstenite,
    /// tokio-tungstenite's echo server behind tokio-rustls.
    TungsteniteTls,
    /// tokio-tungstenite as a topic relay: a client of `/topics/<name>`
    /// gets what the topic's other clients send (one channel per client).
    TungsteniteBroadcast,
}

pub async fn serve(kind: Baseline, listen: SocketAddr, tls: Option<Arc<rustls::ServerConfig>>) -> Result<()> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let scheme = match kind {
        Baseline::RawTcp => "tcp",
        Baseline::Tungstenite | Baseline::TungsteniteBroadcast => "ws",
        Baseline::TungsteniteTls => "wss",
    };
    let rooms = Rooms::default();
    println!("wsbox-bench: {kind:?} listening on {scheme}://{addr}");
    std::io::stdout().flush()?;
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let acceptor = acceptor.clone();
        let rooms = rooms.clone();
        tokio::spawn(async move {
            let _ = match (kind, acceptor) {
                (Baseline::RawTcp, _) => raw_echo(stream).await,
                (Baseline::TungsteniteBroadcast, _) => ws_broadcast(stream, rooms).await,
                (Baseline::TungsteniteTls, Some(acceptor)) => match acceptor.accept(stream).await {
                    Ok(tls) => ws_echo(tls).await,
                    Err(e) => Err(e.into()),
                },
                _ => ws_echo(stream).await,
            };
        });
    }
}

/// Reads what is there (up to 64 KiB) and writes it back: one read and
/// one write per wake-up, nothing else.
async fn raw_echo(mut stream: TcpStream) -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n]).await?;
    }
}

async fn ws_echo<S>(stream: S) -> Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let ws = tokio_tungstenite::accept_async(stream).await?;
    let (write, read) = ws.split();
    read.try_filter(|m| std::future::ready(m.is_text() || m.is_binary())).forward(write).await?;
    Ok(())
}

/// Each topic's clients: an id and the channel to its writer.
type Rooms = Arc<std::sync::Mutex<std::collections::HashMap<String, Vec<(u64, Sender)>>>>;
type Sender = tokio::sync::mpsc::Sender<tokio_tungstenite::tungstenite::Message>;

/// A client's channel holds this many messages; past it the client misses
/// messages (as wsbox and Bun skip a subscriber that does not keep up).
const BROADCAST_QUEUE: usize = 1024;

/// The relay as tokio-tungstenite's chat examples write it: each client
/// has a writer task fed by a channel; a message is cloned into every other
/// client's channel (the payload is shared; each writer frames it).
// The handshake callback's error type is tungstenite's (its `Callback` trait).
#[allow(clippy::result_large_err)]
async fn ws_broadcast(stream: TcpStream, rooms: Rooms) -> Result<()> {
    use futures_util::SinkExt;
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut path = String::new();
    let ws = tokio_tungstenite::accept_hdr_async(
        stream,
        |request: &tokio_tungstenite::tungstenite::handshake::server::Request, response| {
            path = request.uri().path().to_string();
            Ok(response)
        },
    )
    .await?;
    let topic = path.strip_prefix("/topics/").unwrap_or_default().to_string();
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = tokio::sync::mpsc::channel(BROADCAST_QUEUE);
    rooms.lock().expect("rooms").entry(topic.clone()).or_default().push((id, tx));
    let (mut write, mut read) = ws.split();
    let writer = tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            write.feed(message).await?;
            while let Ok(more) = rx.try_recv() {
                write.feed(more).await?;
            }
            write.flush().await?;
        }
        anyhow::Ok(())
    });
    while let Some(Ok(message)) = read.next().await {
        if message.is_text() || message.is_binary() {
            let rooms = rooms.lock().expect("rooms");
            for (other, tx) in rooms.get(&topic).into_iter().flatten() {
                if *other != id {
                    let _ = tx.try_send(message.clone());
                }
            }
        }
    }
    if let Some(room) = rooms.lock().expect("rooms").get_mut(&topic) {
        room.retain(|(other, _)| *other != id);
    }
    writer.abort();
    Ok(())
}
