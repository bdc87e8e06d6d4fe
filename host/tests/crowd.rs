//! Crowds of ordinary clients (Python `websockets`, offering
//! permessage-deflate as every browser does) against the real binary: the
//! server must hold any crowd its limits admit, refuse the rest with a
//! proper HTTP status, and never trap. Bounded: at most 3 500 loopback
//! clients, each test under a minute.

mod support;

use std::path::Path;
use std::process::Command;
use support::Server;

/// Runs `tests/clients/crowd.py` and returns its counts by name.
fn crowd(url: &str, count: u32) -> std::collections::HashMap<String, String> {
    let python = support::bootstrap("host/tests/clients/bootstrap-python-websockets.sh");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/crowd.py");
    let out = Command::new(python)
        .arg(script)
        .arg(url)
        .arg(count.to_string())
        .arg("--again")
        .output()
        .expect("run the crowd");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the crowd failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    eprintln!("crowd of {count}: {}", stdout.trim().replace('\n', "; "));
    stdout
        .split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn count(counts: &std::collections::HashMap<String, String>, key: &str) -> u32 {
    counts.get(key).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no {key} in {counts:?}"))
}

#[test]
fn a_crowd_of_3500_deflate_clients_is_held_and_echoed_with_default_flags() {
    let server = Server::start(&[]);
    let before = server.rss();
    let counts = crowd(&server.url, 3_500);
    let during = server.rss();
    assert_eq!(count(&counts, "echoed"), 3_500, "{counts:?}");
    assert_eq!(count(&counts, "again_echoed"), 3_500, "every held client echoes again: {counts:?}");
    assert_eq!(counts["closed_with"], "", "no held client was closed: {counts:?}");
    let log = server.stderr();
    assert!(!log.contains("the guest stopped"), "the guest failed under the crowd:\n{log}");
    eprintln!("server RSS: {} MiB idle, {} MiB after the crowd", before >> 20, during >> 20);
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
