//! Crowds of ordinary clients (Python `websockets`, offering
//! permessage-deflate as every browser does) against the real binary: the
//! server must hold any crowd its limits admit, refuse the rest with a
//! proper HTTP status, never trap, and give its memory back once the crowd
//! has left. Bounded: at most 3 500 loopback
//! clients, each test under a minute.

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use support::Server;

/// Runs `tests/clients/crowd.py`, calls `held` while the whole crowd is
/// connected, and returns the crowd's counts by name.
fn crowd_holding(url: &str, count: u32, flags: &[&str], held: impl FnOnce()) -> HashMap<String, String> {
    let python = support::bootstrap("host/tests/clients/bootstrap-python-websockets.sh");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/crowd.py");
    let mut child = Command::new(python)
        .arg(script)
        .arg(url)
        .arg(count.to_string())
        .arg("--again")
        .args(flags)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the crowd");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).expect("the crowd's first line");
    held();
    child.stdin.take().unwrap().write_all(b"go\n").expect("tell the crowd to go on");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).expect("the crowd's output");
    let out = child.wait_with_output().expect("the crowd ends");
    let stdout = first + &rest;
    assert!(out.status.success(), "the crowd failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    eprintln!("crowd of {count}: {}", stdout.trim().replace('\n', "; "));
    stdout
        .split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn crowd(url: &str, count: u32) -> HashMap<String, String> {
    crowd_holding(url, count, &[], || {})
}

fn count(counts: &HashMap<String, String>, key: &str) -> u32 {
    counts.get(key).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no {key} in {counts:?}"))
}

#[test]
fn a_crowd_of_3500_deflate_clients_is_held_and_echoed_with_default_flags_and_its_memory_comes_back() {
    let server = Server::start(&[]);
    let before = server.rss();
    let mut during = 0;
    let counts = crowd_holding(&server.url, 3_500, &[], || during = server.rss());
    assert_eq!(count(&counts, "echoed"), 3_500, "{counts:?}");
    assert_eq!(count(&counts, "again_echoed"), 3_500, "every held client echoes again: {counts:?}");
    assert_eq!(counts["closed_with"], "", "no held client was closed: {counts:?}");
    let log = server.stderr();
    assert!(!log.contains("the guest stopped"), "the guest failed under the crowd:\n{log}");
    // The crowd left: the grown instance is recycled, and its memory with it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while server.rss() > before + (32 << 20) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let after = server.rss();
    eprintln!(
        "server RSS: {} MiB idle, {} MiB with the crowd, {} MiB after it left",
        before >> 20,
        during >> 20,
        after >> 20
    );
    assert!(after <= before + (32 << 20), "RSS {after} stayed over {before} + 32 MiB after the crowd left");
    assert!(server.stderr().contains("recycling the instance"), "{}", server.stderr());
    // And the fresh instance serves.
    let counts = crowd(&server.url, 10);
    assert_eq!(count(&counts, "echoed"), 10, "{counts:?}");
}

#[test]
fn past_the_memory_mark_upgrades_get_503_and_held_clients_keep_echoing() {
    // A 16 MiB guest: the refusal mark (three quarters) comes within a
    // crowd of 1 500.
    let server = Server::start(&["--max-guest-memory-mib", "16"]);
    let counts = crowd(&server.url, 1_500);
    let (echoed, refused) = (count(&counts, "echoed"), count(&counts, "refused_503"));
    assert!(refused > 0, "some upgrades were refused: {counts:?}");
    assert!(echoed > 100, "the crowd before the mark was served: {counts:?}");
    assert_eq!(echoed + refused, 1_500, "nobody failed otherwise: {counts:?}");
    assert_eq!(count(&counts, "again_echoed"), echoed, "every held client still echoes: {counts:?}");
    let log = server.stderr();
    assert!(!log.contains("the guest stopped"), "the guest failed under the crowd:\n{log}");
}

#[test]
fn one_address_past_its_cap_gets_429() {
    let server = Server::start(&[
        "--address-limits-on-loopback",
        "--max-connections-per-address",
        "50",
        "--max-handshakes-per-address-per-second",
        "0",
    ]);
    let counts = crowd(&server.url, 80);
    assert_eq!((count(&counts, "echoed"), count(&counts, "refused_429")), (50, 30), "{counts:?}");
    assert_eq!(count(&counts, "again_echoed"), 50, "{counts:?}");
}

/// The default connection cap, plain and compressed clients mixed, under
/// `just soak` (`WSBOX_SOAK=1`); 2 000 of them otherwise.
#[test]
fn a_mixed_crowd_of_plain_and_deflate_clients_is_held() {
    let size = if std::env::var_os("WSBOX_SOAK").is_some() { 10_000 } else { 2_000 };
    let server = Server::start(&[]);
    let before = server.rss();
    let mut during = 0;
    let counts = crowd_holding(&server.url, size, &["--mixed"], || during = server.rss());
    assert_eq!(count(&counts, "echoed"), size, "{counts:?}");
    assert_eq!(count(&counts, "again_echoed"), size, "{counts:?}");
    assert!(!server.stderr().contains("the guest stopped"), "{}", server.stderr());
    eprintln!(
        "{size} mixed: RSS {} MiB idle, {} MiB held ({} KiB a connection)",
        before >> 20,
        during >> 20,
        (during - before) / 1024 / u64::from(size)
    );
}

/// Under `--binding wasi` the guest holds its own sockets, which the host
/// cannot count: the instance must never be recycled under them (it once
/// was, as soon as its memory grew by 16 MiB, dropping every connection).
#[test]
fn the_wasi_binding_holds_a_deflate_crowd_without_recycling_under_it() {
    let server = Server::start(&["--binding", "wasi"]);
    let counts = crowd(&server.url, 3_000);
    assert_eq!(count(&counts, "echoed"), 3_000, "{counts:?}");
    assert_eq!(count(&counts, "again_echoed"), 3_000, "{counts:?}");
    assert_eq!(counts["closed_with"], "", "no held client was closed: {counts:?}");
    assert!(!server.stderr().contains("recycling"), "{}", server.stderr());
}
