//! A server under test as a child process: started, its "listening on"
//! lines read as they come (no sleeps), its stderr kept, stopped by PID
//! when dropped.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running server process.
pub struct Process {
    child: Child,
    /// What the program is called in messages.
    pub name: String,
    /// Each line on stdout that says where the server listens, in order
    /// (behind a lock so that a `Process` may be shared between threads).
    urls: Mutex<Receiver<String>>,
    log: Arc<Mutex<String>>,
}

impl Process {
    /// Spawns `command` with stdout piped (its listening lines are read)
    /// and stderr kept for [`Process::log`].
    pub fn spawn(mut command: Command) -> Result<Self, String> {
        let name = command.get_program().to_string_lossy().into_owned();
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        let log = Arc::new(Mutex::new(String::new()));
        let (sink, mut stderr) = (Arc::clone(&log), child.stderr.take().expect("piped stderr"));
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().expect("log lock").push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let (tx, urls) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        // Keeps draining stdout, so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = listening_url(&line) {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        Ok(Self { child, name, urls: Mutex::new(urls), log })
    }

    /// The URL of the next listening line, within `timeout`; an error with
    /// the server's log if it exits or stays silent.
    pub fn next_url(&self, timeout: Duration) -> Result<String, String> {
        self.urls.lock().expect("urls lock").recv_timeout(timeout).map_err(|_| {
            // The stderr reader may still be copying the last lines.
            std::thread::sleep(Duration::from_millis(100));
            format!("{} did not report listening within {timeout:?}; its log:\n{}", self.name, self.log())
        })
    }

    /// The process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the server wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    /// Whether the server is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends a signal (`TERM`, `INT`, `HUP`) to the server.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill").arg(format!("-{name}")).arg(self.pid().to_string()).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{name} {} failed", self.pid());
    }

    /// Waits up to `timeout` for the server to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The server's resident memory in bytes (from /proc).
    pub fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("/proc status");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS");
        kib * 1024
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The URL (`ws://`, `wss://`, `tcp://`…) a "listening on URL" line ends with.
pub fn listening_url(line: &str) -> Option<&str> {
    let url = line.split_whitespace().last()?;
    (line.contains("listening on ") && url.contains("://")).then_some(url)
}
