//! `examples/echoclient.html` in real browsers: headless Chromium and
//! Firefox (Debian's packages; `.ci/run` installs them) open the page, and
//! the page connects to the running server, echoes a text and a binary
//! message, reports the negotiated extension and the close code. Chromium is
//! driven over the Chrome DevTools Protocol, Firefox over WebDriver BiDi,
//! both with the same WebSocket client the other tests use.

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
    bootstrapped("bootstrap-chromium.sh", "Chromium")
}

/// Debian's Firefox ESR, installed by `tests/clients/bootstrap-firefox.sh`
/// when missing.
fn firefox() -> PathBuf {
    bootstrapped("bootstrap-firefox.sh", "Firefox")
}

/// The path a `tests/clients/` bootstrap script prints last.
fn bootstrapped(script: &str, what: &str) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients").join(script);
    let out = Command::new("bash").arg(&script).output().expect("run the bootstrap script");
    assert!(
        out.status.success(),
        "{what} is not available ({}):\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().trim())
}

/// A page a test drives: JavaScript evaluated in it, its result as JSON.
trait Page {
    async fn evaluate(&mut self, expression: &str) -> Value;
}

/// Waits until `page` has loaded `examples/echoclient.html`'s script.
async fn wait_for_echo_test(page: &mut impl Page, url: &str) {
    for _ in 0..100 {
        if page.evaluate("typeof window.echoTest").await == json!("function") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the page did not load: {url}");
}

/// A headless browser on a profile of its own, with the WebSocket endpoint
/// it is driven through; stopped, and its profile removed, when dropped.
struct Headless {
    child: Child,
    endpoint: String,
    profile: PathBuf,
}

impl Headless {
    /// A fresh profile directory (one per browser: a second Chromium on a
    /// profile in use hands over and exits).
    fn new_profile(browser: &str) -> PathBuf {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let profile = std::env::temp_dir().join(format!("wsbox-{browser}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).unwrap();
        profile
    }

    /// Starts `command` and reads its standard error up to the line in
    /// which `endpoint` finds where it is driven.
    fn launch(mut command: Command, what: &str, profile: PathBuf, endpoint: impl Fn(&str) -> Option<String>) -> Self {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {what}: {e}"));
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let endpoint = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(found) = endpoint(&line) {
                        break found;
                    }
                }
                _ => {
                    let _ = child.kill();
                    panic!("{what} exited before opening its remote-control endpoint");
                }
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Headless { child, endpoint, profile }
    }
}

impl Drop for Headless {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Headless Chromium and its DevTools endpoint.
struct Browser(Headless);

impl Browser {
    /// Chromium trusting the listed public keys (base64 SHA-256 of their
    /// SubjectPublicKeyInfo) as if a CA had signed them: how a private CA's
    /// leaf is accepted without touching the system's trust store.
    fn start(trusted_spki: &[String]) -> Self {
        let profile = Headless::new_profile("chromium");
        let mut command = Command::new(chromium());
        command
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
            .arg("about:blank");
        Browser(Headless::launch(command, "Chromium", profile, |line| {
            line.find("ws://").map(|at| line[at..].trim().to_string())
        }))
    }
}

/// The WebSocket a browser is driven through.
type Control = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Sends a command (DevTools and BiDi both send JSON with an `id`) and
/// returns the reply with that id, past any events.
async fn command(ws: &mut Control, protocol: &str, msg: Value) -> Value {
    let id = msg["id"].clone();
    ws.send(Message::text(msg.to_string())).await.unwrap();
    loop {
        let reply = tokio::time::timeout(Duration::from_secs(20), ws.next()).await;
        let reply = reply.unwrap_or_else(|_| panic!("no {protocol} reply within 20 s"));
        let Some(Ok(Message::Text(text))) = reply else { panic!("{protocol} connection ended: {reply:?}") };
        let v: Value = serde_json::from_str(&text).unwrap();
        if v["id"] == id {
            return v;
        }
    }
}

/// A DevTools session on one page.
struct Cdp {
    ws: Control,
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
        let v = command(&mut self.ws, "DevTools", msg).await;
        assert!(v.get("error").is_none(), "{method} failed: {v}");
        v["result"].clone()
    }
}

impl Page for Cdp {
    async fn evaluate(&mut self, expression: &str) -> Value {
        let r = self
            .call("Runtime.evaluate", json!({ "expression": expression, "awaitPromise": true, "returnByValue": true }))
            .await;
        assert!(r.get("exceptionDetails").is_none(), "{expression} threw: {r}");
        r["result"]["value"].clone()
    }
}

async fn open_page(browser: &Browser, url: &str) -> Cdp {
    let (ws, _) = tokio_tungstenite::connect_async(&browser.0.endpoint).await.expect("DevTools connection");
    let mut cdp = Cdp { ws, next_id: 0, session: None };
    let target = cdp.call("Target.createTarget", json!({ "url": url })).await;
    let attached = cdp.call("Target.attachToTarget", json!({ "targetId": target["targetId"], "flatten": true })).await;
    cdp.session = Some(attached["sessionId"].as_str().unwrap().to_string());
    wait_for_echo_test(&mut cdp, url).await;
    cdp
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
    let (server, key) = tls_server(&pki, &[]);
    let browser = Browser::start(&[spki_sha256(&key)]);
    let url = server.tls_url.clone().expect("wss listener").replace("127.0.0.1", "localhost");
    check_echo_page(&browser, &url).await;
}

#[tokio::test]
async fn the_page_served_over_https_opens_its_websocket_on_the_same_http2_connection() {
    let pki = Pki::new("browser-h2");
    let (server, key) = tls_server(&pki, &["--page", "--metrics-listen", "127.0.0.1:0", "--log-level", "debug"]);
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

/// A server with a certificate for `localhost` from `pki`'s private CA (and
/// `extra` flags), and the path of the certificate's key.
fn tls_server(pki: &Pki, extra: &[&str]) -> (Server, PathBuf) {
    let (cert, key) = pki.leaf("server", &["localhost"], &rcgen::PKCS_ECDSA_P256_SHA256);
    let (cert, key_arg) = (cert.display().to_string(), key.display().to_string());
    let mut args = vec!["--tls-cert", cert.as_str(), "--tls-key", key_arg.as_str()];
    args.extend_from_slice(extra);
    (Server::start(&args), key)
}

async fn check_echo_page(browser: &Browser, url: &str) {
    let mut cdp = open_page(browser, &echoclient_page()).await;
    check_echo(&mut cdp, url).await;
}

/// `examples/echoclient.html`, as a `file://` URL.
fn echoclient_page() -> String {
    let page = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/echoclient.html").canonicalize().unwrap();
    format!("file://{}", page.display())
}

/// The page's `echoTest` against `url`: a text and a binary message echoed,
/// permessage-deflate negotiated, the close code the page chose.
async fn check_echo(page: &mut impl Page, url: &str) {
    let text = "Hello from a browser ✓";
    let result = page.evaluate(&format!("echoTest({url:?}, {text:?})")).await;
    assert_eq!(result["text"], json!(text), "{result}");
    assert_eq!(result["binary"], json!(text), "{result}");
    assert!(result["extensions"].as_str().unwrap_or_default().starts_with("permessage-deflate"), "{result}");
    assert_eq!(result["closeCode"], json!(4000), "{result}");
}

/// Headless Firefox and its WebDriver BiDi endpoint.
struct Firefox(Headless);

impl Firefox {
    fn start() -> Self {
        let profile = Headless::new_profile("firefox");
        // Nothing to ask the network for at start-up (it is closed in CI).
        std::fs::write(
            profile.join("user.js"),
            "user_pref(\"browser.shell.checkDefaultBrowser\", false);\n\
             user_pref(\"app.update.disabledForTesting\", true);\n\
             user_pref(\"datareporting.policy.dataSubmissionEnabled\", false);\n\
             user_pref(\"toolkit.telemetry.reportingpolicy.firstRun\", false);\n",
        )
        .unwrap();
        let mut command = Command::new(firefox());
        command
            .args(["--headless", "--no-remote", "--remote-debugging-port=0", "--profile"])
            .arg(&profile)
            .arg("about:blank");
        Firefox(Headless::launch(command, "Firefox", profile, |line| {
            line.strip_prefix("WebDriver BiDi listening on ").map(|url| format!("{}/session", url.trim()))
        }))
    }
}

/// A WebDriver BiDi session on Firefox's first tab.
struct Bidi {
    ws: Control,
    next_id: u64,
    context: String,
}

impl Bidi {
    /// A session that accepts the test PKI's certificates
    /// (`acceptInsecureCerts`, WebDriver's way to trust a private CA), on
    /// `url` once it has loaded.
    async fn open(firefox: &Firefox, url: &str) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(&firefox.0.endpoint).await.expect("WebDriver BiDi connection");
        let mut bidi = Bidi { ws, next_id: 0, context: String::new() };
        bidi.call("session.new", json!({ "capabilities": { "alwaysMatch": { "acceptInsecureCerts": true } } })).await;
        let tree = bidi.call("browsingContext.getTree", json!({})).await;
        bidi.context = tree["contexts"][0]["context"].as_str().expect("a tab").to_string();
        let context = bidi.context.clone();
        bidi.call("browsingContext.navigate", json!({ "context": context, "url": url, "wait": "complete" })).await;
        wait_for_echo_test(&mut bidi, url).await;
        bidi
    }

    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({ "id": id, "method": method, "params": params });
        let v = command(&mut self.ws, "BiDi", msg).await;
        assert_eq!(v["type"], json!("success"), "{method} failed: {v}");
        v["result"].clone()
    }
}

impl Page for Bidi {
    /// The expression's value, as JSON (through `JSON.stringify` in the page:
    /// BiDi's own serialisation of objects is a tree of typed nodes).
    async fn evaluate(&mut self, expression: &str) -> Value {
        let wrapped = format!("Promise.resolve({expression}).then((v) => JSON.stringify(v))");
        let target = json!({ "context": self.context });
        let r = self
            .call("script.evaluate", json!({ "expression": wrapped, "target": target, "awaitPromise": true }))
            .await;
        assert_eq!(r["type"], json!("success"), "{expression} threw: {r}");
        serde_json::from_str(r["result"]["value"].as_str().expect("a JSON string")).unwrap()
    }
}

#[tokio::test]
async fn echoclient_page_echoes_through_firefox_over_ws() {
    let server = Server::start(&[]);
    let firefox = Firefox::start();
    let mut page = Bidi::open(&firefox, &echoclient_page()).await;
    check_echo(&mut page, &server.url).await;
}

#[tokio::test]
async fn echoclient_page_echoes_through_firefox_over_wss_with_a_private_ca() {
    let pki = Pki::new("firefox-wss");
    let (server, _) = tls_server(&pki, &[]);
    let firefox = Firefox::start();
    let url = server.tls_url.clone().expect("wss listener").replace("127.0.0.1", "localhost");
    let mut page = Bidi::open(&firefox, &echoclient_page()).await;
    check_echo(&mut page, &url).await;
}

#[tokio::test]
async fn the_page_served_over_https_opens_its_websocket_over_http2_in_firefox() {
    let pki = Pki::new("firefox-h2");
    let (server, _) = tls_server(&pki, &["--page", "--metrics-listen", "127.0.0.1:0"]);
    let firefox = Firefox::start();
    let origin = server.tls_url.clone().expect("wss listener").replace("wss://127.0.0.1", "https://localhost");
    let mut page = Bidi::open(&firefox, &format!("{origin}/")).await;
    let url = page.evaluate("document.getElementById('url').value").await;
    assert_eq!(url, json!(format!("{}/", origin.replace("https://", "wss://"))));
    check_echo(&mut page, url.as_str().unwrap()).await;
    // Firefox opened the WebSocket as a stream of HTTP/2 (RFC 8441).
    let (_, metrics) = support::http_get(&server.metrics_addr(), "GET", "/metrics");
    assert_eq!(support::sample(&metrics, "wsbox_http2_websockets_total"), 1.0, "{metrics}");
}
