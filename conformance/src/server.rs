//! Starting the real `wsbox` binary for a run (the test kit's launcher),
//! and stopping it by PID.

use anyhow::{Result, anyhow};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use wsbox_testkit::process::Process;

/// A running `wsbox serve` on a free loopback port.
pub struct EchoServer {
    process: Process,
    /// `ws://127.0.0.1:PORT` (or the `wss://` URL with `secure`).
    pub url: String,
}

impl EchoServer {
    /// Starts `bin serve --listen 127.0.0.1:0 <args>` and waits for the line
    /// that says where it listens (no sleeps); with `secure`, `args` must
    /// carry the TLS identity and the `wss://` listener's URL is used.
    pub fn start(bin: &Path, args: &[&str], secure: bool) -> Result<Self> {
        let mut command = Command::new(bin);
        command.args(["serve", "--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0"]).args(args);
        let process = Process::spawn(command).map_err(|e| anyhow!(e))?;
        let mut url = process.next_url(Duration::from_secs(60)).map_err(|e| anyhow!(e))?;
        if secure {
            url = process.next_url(Duration::from_secs(10)).map_err(|e| anyhow!("no wss:// listener: {e}"))?;
        }
        Ok(Self { process, url })
    }

    /// Everything the server wrote to stderr so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Whether the server is still running (it must survive the whole run).
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }
}
