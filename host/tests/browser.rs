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
use tokio_tungstenite::tungstenite::Message;

fn chromium() -> PathBuf {
    let candidates = [
        std::env::var("WSBOX_CHROMIUM").unwrap_or_default(),
        "/usr/bin/chromium".into(),
        "/usr/bin/chromium-browser".into(),
    ];
    candidates.iter().filter(|c| !c.is_empty()).map(PathBuf::from).find(|p| p.exists()).unwrap_or_else(|| {
        panic!(
            "Chromium is not installed: install Debian's package with `apt-get install -y chromium` \
             (.ci/run does this), or point WSBOX_CHROMIUM at a Chromium binary"
        )
    })
}

struct Browser {
    child: Child,
    devtools: String,
    _profile: PathBuf,
}

impl Browser {
    fn start() -> Self {
        let profile = std::env::temp_dir().join(format!("wsbox-chromium-{}", std::process::id()));
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

async fn open_page(browser: &Browser, page: &Path) -> Cdp {
    let (ws, _) = tokio_tungstenite::connect_async(&browser.devtools).await.expect("DevTools connection");
    let mut cdp = Cdp { ws, next_id: 0, session: None };
    let url = format!("file://{}", page.display());
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
    let browser = Browser::start();
    let page = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/echoclient.html").canonicalize().unwrap();
    let mut cdp = open_page(&browser, &page).await;
    let text = "Hello from Chromium ✓";
    let result = cdp.evaluate(&format!("echoTest({:?}, {:?})", server.url, text)).await;
    assert_eq!(result["text"], json!(text), "{result}");
    assert_eq!(result["binary"], json!(text), "{result}");
    assert!(result["extensions"].as_str().unwrap_or_default().starts_with("permessage-deflate"), "{result}");
    assert_eq!(result["closeCode"], json!(4000), "{result}");
}
