//! Starting the servers under test as child processes pinned to one core,
//! and reading the URL each prints once it listens.

use anyhow::{Context, Result, anyhow, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use wsbox_testkit::process::Process;

/// A server under test.
pub struct Running {
    pub name: &'static str,
    pub url: String,
    pub pid: u32,
    /// Stopped (by PID) when dropped.
    _process: Process,
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
        let mut command = pinned(program, core);
        command.args(args);
        let process = Process::spawn(command).map_err(|e| anyhow!("starting {name} ({}): {e}", program.display()))?;
        let prefix = format!("{scheme}://");
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let url = process.next_url(left).map_err(|e| anyhow!("{name} did not listen on {prefix}: {e}"))?;
            if url.starts_with(&prefix) {
                break url;
            }
        };
        Ok(Self { name, url, pid: process.pid(), _process: process })
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

/// A command running `program` on `core` (through `taskset`), or anywhere.
pub fn pinned(program: &Path, core: Option<usize>) -> Command {
    match core {
        Some(core) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(core.to_string()).arg(program);
            c
        }
        None => Command::new(program),
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
