//! Starting the real `wsbox` binary for a run, and stopping it by PID.

use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

/// A running `wsbox serve` on a free loopback port.
pub struct EchoServer {
    child: Child,
    /// `ws://127.0.0.1:PORT`.
    pub url: String,
    log: Arc<Mutex<String>>,
}

impl EchoServer {
    /// Starts `bin serve --listen 127.0.0.1:0 <args>` and waits for the line
    /// that says where it listens (no sleeps); with `secure`, `args` must
    /// carry the TLS identity and the `wss://` listener's URL is used.
    pub fn start(bin: &Path, args: &[&str], secure: bool) -> Result<Self> {
        let mut child = Command::new(bin)
            .args(["serve", "--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let log = Arc::new(Mutex::new(String::new()));
        let mut stderr = child.stderr.take().expect("piped stderr");
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().expect("log lock").push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let Some(Ok(mut line)) = lines.next() else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("wsbox exited before listening; its log:\n{}", log.lock().expect("log lock"));
        };
        if secure {
            match lines.next() {
                Some(Ok(second)) => line = second,
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!("wsbox did not open its wss:// listener; its log:\n{}", log.lock().expect("log lock"));
                }
            }
        }
        std::thread::spawn(move || for _ in lines {});
        let url = line.split_whitespace().last().unwrap_or_default().to_string();
        if !url.starts_with("ws") {
            bail!("unexpected first line from wsbox: {line}");
        }
        Ok(Self { child, url, log })
    }

    /// Everything the server wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    /// Whether the server is still running (it must survive the whole run).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
