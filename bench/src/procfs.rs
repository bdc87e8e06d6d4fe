//! CPU time and resident memory of a process, from `/proc` (Linux).

use anyhow::{Context, Result};
use std::time::Duration;

/// User + system CPU time consumed so far by process `pid` (all threads).
pub fn cpu_time(pid: u32) -> Result<Duration> {
    let (user, system) = cpu_times(pid)?;
    Ok(user + system)
}

/// User and system CPU time consumed so far by process `pid` (all threads),
/// apart: the user part is the server's own code, the system part mostly
/// the kernel's socket paths, which every server pays alike.
pub fn cpu_times(pid: u32) -> Result<(Duration, Duration)> {
    let stat =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; fields are counted after its ')'.
    let rest = &stat[stat.rfind(')').context("malformed /proc stat")? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 here (0-based 11, 12).
    let ticks = |at: usize| -> Result<Duration> {
        let n: u64 = fields[at].parse()?;
        Ok(Duration::from_nanos(n * 1_000_000_000 / clock_ticks_per_second()))
    };
    Ok((ticks(11)?, ticks(12)?))
}

/// Resident set size of process `pid`, in bytes.
pub fn rss_bytes(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).context("no VmRSS line")?;
    let kib: u64 = line.split_whitespace().nth(1).context("malformed VmRSS")?.parse()?;
    Ok(kib * 1024)
}

/// `_SC_CLK_TCK`: 100 on every Linux this runs on (the kernel's USER_HZ).
fn clock_ticks_per_second() -> u64 {
    100
}
