//! `examples/echoclient.html` in a real browser: headless Chromium (Debian's
//! package; `.ci/run` installs it) opens the page from disk, and the page
//! connects to the running server, echoes a text and a binary message,
//! reports the negotiated extension and the close code. Driven over the
//! Chrome DevTools Protocol with the same WebSocket client the other tests use.

mod support;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::Server;
use support::pki::{Pki, spki_sha256};
use tokio_tungstenite::tungstenite::Message;

/// Debian's Chromium, installed by `tests/clients/bootstrap-chromium.sh`
/// when missing.
fn chromium() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/bootstrap-chromium.sh");
    let out = Command::new("bash").arg(&script).output().expect("run the Chromium bootstrap script");
    assert!(
        out.status.success(),
        "Chromium is not available ({}):\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().trim())
}

struct Browser {
    child: Child,
    devtools: String,
    _profile: PathBuf,
}

impl Browser {
    /// Chromium trusting the listed public keys (base64 SHA-256 of their
    /// SubjectPublicKeyInfo) as if a CA had signed them: how a private CA's
    /// leaf is accepted without touching the system's trust store.
    fn start(trusted_spki: &[String]) -> Self {
        // One profile per browser: a second Chromium on a profile in use hands over and exits.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let profile = std::env::temp_dir().join(format!("wsbox-chromium-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        let mut child = Command::new(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(trusted_spki.iter().map(|h| format!("--ignore-certificate-errors-spki-list={h}")))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start Chromium");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let devtools = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(at) = line.find("ws://") {
                        break line[at..].trim().to_string();
                    }
                }
                _ => {
                    let _ = child.kill();
                    panic!("Chromium exited before opening its DevTools endpoint");
                }
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Browser { child, devtools, _profile: profile }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._profile);
    }
}

/// A DevTools session on one page.
struct Cdp {
    ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    next_id: u64,
    session: Option<String>,
}

impl Cdp {
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        self.ws.send(Message::text(msg.to_string())).await.unwrap();
        loop {
            let reply =
                tokio::time::timeout(Duration::from_secs(20), self.ws.next()).await.expect("DevTools reply in time");
            let Some(Ok(Message::Text(text))) = reply else { panic!("DevTools connection ended: {reply:?}") };
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["id"] == json!(id) {
                assert!(v.get("error").is_none(), "{method} failed: {v}");
                return v["result"].clone();
            }
        }
    }

    async fn evaluate(&mut self, expression: &str) -> Value {
        let r = self
            .call("Runtime.evaluate", json!({ "expression": expression, "awaitPromise": true, "returnByValue": true }))
            .await;
        assert!(r.get("exceptionDetails").is_none(), "{expression} threw: {r}");
        r["result"]["value"].clone()
    }
}

async fn open_page(browser: &Browser, url: &str) -> Cdp {
    let (ws, _) = tokio_tungstenite::connect_async(&browser.devtools).await.expect("DevTools connection");
    let mut cdp = Cdp { ws, next_id: 0, session: None };
    let target = cdp.call("Target.createTarget", json!({ "url": url })).await;
    let attached = cdp.call("Target.attachToTarget", json!({ "targetId": target["targetId"], "flatten": true })).await;
    cdp.session = Some(attached["sessionId"].as_str().unwrap().to_string());
    for _ in 0..100 {
        if cdp.evaluate("typeof window.echoTest").await == json!("function") {
            return cdp;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the page did not load: {url}");
}

#[tokio::test]
async fn echoclient_page_echoes_through_chromium_over_ws() {
    let server = Server::start(&[]);
    let browser = Browser::start(&[]);
    check_echo_page(&browser, &server.url).await;
}

#[tokio::test]
async fn echoclient_page_echoes_through_chromium_over_wss_with_a_private_ca() {
    let pki = Pki::new("browser-wss");
    let (cert, key) = pki.leaf("server", &["localhost"], &rcgen::PKCS_ECDSA_P256_SHA256);
    let (c, k) = (cert.display().to_string(), key.display().to_string());
    let server = Server::start(&["--tls-cert", &c, "--tls-key", &k]);
    let browser = Browser::start(&[spki_sha256(&key)]);
    let url = server.tls_url.clone().expect("wss listener").replace("127.0.0.1", "localhost");
    check_echo_page(&browser, &url).await;
}

#[tokio::test]
async fn the_page_served_over_https_opens_its_websocket_on_the_same_http2_connection() {
    let pki = Pki::new("browser-h2");
    let (cert, key) = pki.leaf("server", &["localhost"], &rcgen::PKCS_ECDSA_P256_SHA256);
    let (c, k) = (cert.display().to_string(), key.display().to_string());
    let flags =
        ["--tls-cert", &c, "--tls-key", &k, "--page", "--metrics-listen", "127.0.0.1:0", "--log-level", "debug"];
    let server = Server::start(&flags);
    let browser = Browser::start(&[spki_sha256(&key)]);
    let origin = server.tls_url.clone().expect("wss listener").replace("wss://127.0.0.1", "https://localhost");
    let mut cdp = open_page(&browser, &format!("{origin}/")).await;
    // The page served by the server points its socket back at the server.
    let url = cdp.evaluate("document.getElementById('url').value").await;
    assert_eq!(url, json!(format!("{}/", origin.replace("https://", "wss://"))));
    check_echo(&mut cdp, url.as_str().unwrap()).await;
    // The server saw the WebSocket as a stream of an HTTP/2 connection, the
    // one that carried the page, not as a connection of its own.
    let (_, metrics) = support::http_get(&server.metrics_addr(), "GET", "/metrics");
    assert_eq!(support::sample(&metrics, "wsbox_http2_websockets_total"), 1.0, "{metrics}");
    let log = server.stderr();
    let carrier = |kind: &str| {
        let line = log.lines().find(|l| l.contains("HTTP/2 request") && l.contains(kind) && l.contains("path=\"/\""));
        let line = line.unwrap_or_else(|| panic!("no {kind} request for / in the log:\n{log}"));
        line.split_whitespace().find_map(|field| field.strip_prefix("carrier=")).unwrap().to_string()
    };
    assert_eq!(carrier("kind=Plain"), carrier("kind=WebSocket"), "{log}");
}

async fn check_echo_page(browser: &Browser, url: &str) {
    let page = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/echoclient.html").canonicalize().unwrap();
    let mut cdp = open_page(browser, &format!("file://{}", page.display())).await;
    check_echo(&mut cdp, url).await;
}

/// The page's `echoTest` against `url`: a text and a binary message echoed,
/// permessage-deflate negotiated, the close code the page chose.
async fn check_echo(cdp: &mut Cdp, url: &str) {
    let text = "Hello from Chromium ✓";
    let result = cdp.evaluate(&format!("echoTest({url:?}, {text:?})")).await;
    assert_eq!(result["text"], json!(text), "{result}");
    assert_eq!(result["binary"], json!(text), "{result}");
    assert!(result["extensions"].as_str().unwrap_or_default().starts_with("permessage-deflate"), "{result}");
    assert_eq!(result["closeCode"], json!(4000), "{result}");
}
