//! Starting the servers under test as child processes pinned to one core,
//! and reading the URL each prints once it listens.

use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server under test.
pub struct Running {
    pub name: &'static str,
    pub url: String,
    pub pid: u32,
    child: Child,
}

impl Running {
    /// Runs `program args…` on `core` (through `taskset`, when there is one)
    /// and waits up to 60 s for a "listening on <scheme>://…" line.
    pub fn start(
        name: &'static str,
        program: &Path,
        args: &[String],
        core: Option<usize>,
        scheme: &str,
    ) -> Result<Self> {
        let mut command = match core {
            Some(core) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(core.to_string()).arg(program);
                c
            }
            None => Command::new(program),
        };
        let mut child = command
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {name} ({})", program.display()))?;
        let pid = child.id();
        let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let prefix = format!("listening on {scheme}://");
        let url = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(at) = line.find(&prefix) {
                        break line[at + "listening on ".len()..].trim().to_string();
                    }
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!("{name} exited before listening on {scheme}://");
                }
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(Self { name, url, pid, child })
    }
}

impl Running {
    /// This program's tokio-tungstenite echo baseline (plain `ws://`) on `core`.
    pub fn tungstenite(core: Option<usize>) -> Result<Self> {
        let me = std::env::current_exe()?;
        let args = ["serve", "tungstenite", "--listen", "127.0.0.1:0"].map(String::from);
        Self::start("tungstenite", &me, &args, core, "ws")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `taskset` can pin processes here (it is in util-linux).
pub fn can_pin() -> bool {
    std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2
        && Command::new("taskset")
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// The `wsbox` binary next to this one (`target/release/wsbox`).
pub fn sibling_wsbox() -> Result<PathBuf> {
    let me = std::env::current_exe()?;
    let mut dir = me.parent().context("no directory")?.to_path_buf();
    // Integration tests run from target/<profile>/deps.
    if dir.ends_with("deps") {
        dir.pop();
    }
    let wsbox = dir.join("wsbox");
    if !wsbox.exists() {
        bail!(
            "{} not found: build it first with `cargo build --release -p wsbox` (or pass --wsbox PATH)",
            wsbox.display()
        );
    }
    Ok(wsbox)
}

/// Time from spawning `wsbox` to its "listening" line, `runs` times.
pub fn cold_starts(wsbox: &Path, extra: &[&str], runs: usize) -> Result<Vec<Duration>> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let args: Vec<String> = ["serve", "--listen", "127.0.0.1:0", "--log-level", "warn"]
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect();
        let started = Instant::now();
        let server = Running::start("wsbox", wsbox, &args, None, "ws")?;
        times.push(started.elapsed());
        drop(server);
    }
    Ok(times)
}
