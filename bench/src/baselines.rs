//! The native servers wsbox is measured against, built from this workspace:
//! a raw TCP echo (the loopback limit: no framing at all) and the
//! tokio-tungstenite echo as its examples write it (`read.forward(write)`),
//! plain and over tokio-rustls. Each prints "listening on URL" once bound.

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
}

pub async fn serve(kind: Baseline, listen: SocketAddr, tls: Option<Arc<rustls::ServerConfig>>) -> Result<()> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let scheme = match kind {
        Baseline::RawTcp => "tcp",
        Baseline::Tungstenite => "ws",
        Baseline::TungsteniteTls => "wss",
    };
    println!("wsbox-bench: {kind:?} listening on {scheme}://{addr}");
    std::io::stdout().flush()?;
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _ = match (kind, acceptor) {
                (Baseline::RawTcp, _) => raw_echo(stream).await,
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
