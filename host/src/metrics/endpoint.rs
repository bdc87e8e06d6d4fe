//! The operations endpoint: `GET /metrics` and the health check `GET
//! /healthz` over plain HTTP/1.1 on `--metrics-listen`, and with
//! `--reload-endpoint` `POST /reload` (what SIGHUP does, answered with its
//! outcome), on a thread of its own, one connection at a time (a scraper's
//! and a load balancer's load, not a crowd's), so the event loops never
//! wait on it. Anything else gets 404 or 405; a request that does not come
//! within a few seconds is dropped.

use super::Metrics;
use crate::health::Readiness;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

/// The path scrapers ask for.
pub const PATH: &str = "/metrics";
/// The path health checks ask for: `200` while the server takes new
/// connections, `503` before it listens and once it drains.
pub const HEALTH_PATH: &str = crate::health::DEFAULT_PATH;

/// The path that reloads, when the reload endpoint is on.
pub const RELOAD_PATH: &str = "/reload";

/// A reload asked for over HTTP: where its outcome goes (`Ok`: what was
/// done; `Err`: what was refused, the rest kept).
pub type ReloadReply = tokio::sync::oneshot::Sender<Result<String, String>>;

/// The OpenMetrics text format's content type.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Largest request head read.
const MAX_HEAD: usize = 8 * 1024;
/// How long an answered client may take to close.
const LINGER: Duration = Duration::from_secs(1);
/// How long a scraper may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Listens on `addr` and serves `metrics` from a background thread; returns
/// the address it listens on (port 0 picks one). With `reload`, `POST
/// /reload` sends a [`ReloadReply`] there and answers with the outcome.
pub fn spawn(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    reload: Option<UnboundedSender<ReloadReply>>,
) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    std::thread::Builder::new().name("wsbox-metrics".into()).spawn(move || {
        for stream in listener.incoming() {
            match stream {
                Ok(stream) => {
                    if let Err(e) = answer(stream, &metrics, &readiness, reload.as_ref()) {
                        tracing::debug!(error = %e, "metrics request failed");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "metrics endpoint: accept failed"),
            }
        }
    })?;
    Ok(local)
}

fn answer(
    mut stream: TcpStream,
    metrics: &Metrics,
    readiness: &Readiness,
    reload: Option<&UnboundedSender<ReloadReply>>,
) -> io::Result<()> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let (method, path) = loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&head) {
            Ok(httparse::Status::Complete(_)) => {
                break (request.method.unwrap_or("").to_string(), request.path.unwrap_or("").to_string());
            }
            Ok(httparse::Status::Partial) if head.len() < MAX_HEAD => {}
            _ => return respond(&mut stream, "400 Bad Request", "text/plain", b"bad request\n", true),
        }
    };
    let path = path.split('?').next().unwrap_or("");
    match (method.as_str(), path) {
        ("GET" | "HEAD", PATH) => {
            let body = metrics.encode();
            respond(&mut stream, "200 OK", CONTENT_TYPE, body.as_bytes(), method == "GET")
        }
        ("GET" | "HEAD", HEALTH_PATH) => match readiness.is_ready() {
            true => respond(&mut stream, "200 OK", "text/plain", b"serving\n", method == "GET"),
            false => respond(&mut stream, "503 Service Unavailable", "text/plain", b"not serving\n", method == "GET"),
        },
        ("POST", RELOAD_PATH) if reload.is_some() => {
            let (reply, outcome) = tokio::sync::oneshot::channel();
            let asked = reload.is_some_and(|r| r.send(reply).is_ok());
            // A reload may take seconds (compiling a component): its answer
            // waits on a thread of its own, so scrapes and health checks
            // are answered meanwhile.
            std::thread::Builder::new().name("wsbox-reload-answer".into()).spawn(move || {
                let _ = match asked.then(|| outcome.blocking_recv().ok()).flatten() {
                    Some(Ok(done)) => {
                        respond(&mut stream, "200 OK", "text/plain", format!("{done}\n").as_bytes(), true)
                    }
                    Some(Err(refused)) => {
                        let body = format!("{refused}\n");
                        respond(&mut stream, "500 Internal Server Error", "text/plain", body.as_bytes(), true)
                    }
                    None => respond(&mut stream, "503 Service Unavailable", "text/plain", b"not reloading\n", true),
                };
            })?;
            Ok(())
        }
        (_, RELOAD_PATH) if reload.is_some() => {
            respond(&mut stream, "405 Method Not Allowed", "text/plain", b"use POST\n", true)
        }
        (_, PATH | HEALTH_PATH) => respond(&mut stream, "405 Method Not Allowed", "text/plain", b"use GET\n", true),
        _ => {
            let body: &[u8] = match reload {
                Some(_) => b"metrics are at /metrics, health at /healthz, POST /reload reloads\n",
                None => b"metrics are at /metrics, health at /healthz\n",
            };
            respond(&mut stream, "404 Not Found", "text/plain", body, true)
        }
    }
}

/// Writes the response; a HEAD request gets the head only.
fn respond(stream: &mut TcpStream, status: &str, content_type: &str, body: &[u8], with_body: bool) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    if with_body {
        stream.write_all(body)?;
    }
    // Input left unread (a request body) would make the close a reset that
    // can destroy the answer: shut our side, then read until the client
    // closes (briefly).
    stream.shutdown(std::net::Shutdown::Write)?;
    stream.set_read_timeout(Some(LINGER))?;
    let mut sink = [0u8; 4096];
    for _ in 0..16 {
        if matches!(stream.read(&mut sink), Ok(0) | Err(_)) {
            break;
        }
    }
    Ok(())
}
