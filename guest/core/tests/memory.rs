//! Memory of a connection, measured with a counting allocator (so the tests
//! of this binary run one at a time, under a lock).
//!
//! - A frame header and a few bytes: the payload buffer they reserve is bounded.
//! - A decompression bomb: a small compressed frame that would inflate to
//!   64 MiB, against a 1 MiB message limit. The connection fails with 1009
//!   and never holds more than a few MiB.
//! - What a compressed connection holds while it handles messages and keeps
//!   between them, for each kind of offer and setting.

use flate2::{Compress, Compression, FlushCompress};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use wsbox_core::{Config, DeflateConfig, Limits, State};
use wsbox_testkit::driver::*;

struct Counting;
static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn a_frame_header_and_a_few_bytes_reserve_little_before_the_payload_arrives() {
    let _one_at_a_time = SERIAL.lock().unwrap();
    let mut d = Driver::new(Config::default());
    d.feed(0, UPGRADE);
    // A binary frame that claims 8 MiB (under the 16 MiB frame limit), of
    // which only the header and 100 bytes arrive.
    let whole = raw_frame(0x82, &vec![7u8; 8 * 1024 * 1024], true);
    let part = whole[..14 + 100].to_vec();
    drop(whole);
    let baseline = CURRENT.load(Ordering::Relaxed);
    d.feed(1, &part);
    let held = CURRENT.load(Ordering::Relaxed).saturating_sub(baseline);
    assert_eq!(d.outcome().state, State::Open);
    // At most 8 × the 100 bytes that came (and the allocator's rounding).
    assert!(held <= 4 * 1024, "a header claiming 8 MiB and 100 bytes made the connection hold {held} bytes");
    eprintln!("header claiming 8 MiB: {} KiB held", held / 1024);
}

#[test]
fn a_decompression_bomb_is_refused_without_allocating_its_size() {
    let _one_at_a_time = SERIAL.lock().unwrap();
    // 64 MiB of zeros, compressed in 64 KiB steps (never held whole).
    let mut c = Compress::new_with_window_bits(Compression::best(), false, 15);
    let zeros = vec![0u8; 64 * 1024];
    let mut bomb = Vec::with_capacity(256 * 1024);
    for _ in 0..1024 {
        let before = c.total_in();
        while c.total_in() - before < zeros.len() as u64 {
            let at = (c.total_in() - before) as usize;
            bomb.reserve(64 * 1024);
            c.compress_vec(&zeros[at..], &mut bomb, FlushCompress::None).unwrap();
        }
    }
    bomb.reserve(1024);
    c.compress_vec(&[], &mut bomb, FlushCompress::Sync).unwrap();
    bomb.truncate(bomb.len() - 4);
    assert!(bomb.len() < 200 * 1024, "the bomb is small on the wire: {} bytes", bomb.len());
    drop(zeros);

    let limits = Limits { max_message_size: 1024 * 1024, ..Limits::default() };
    let mut d = Driver::new(Config { limits, ..Config::default() });
    let request = String::from_utf8(UPGRADE.to_vec())
        .unwrap()
        .replace("Origin:", "Sec-WebSocket-Extensions: permessage-deflate\r\nOrigin:");
    d.feed(0, request.as_bytes());
    let frame = raw_frame(0xC2, &bomb, true);
    drop(bomb);
    let baseline = CURRENT.load(Ordering::Relaxed);
    PEAK.store(baseline, Ordering::Relaxed);
    d.feed(1, &frame);
    let peak_above_baseline = PEAK.load(Ordering::Relaxed) - baseline;
    let o = d.outcome();
    assert_eq!(o.sent_close(), Some(1009));
    assert_eq!(o.state, State::Closed);
    assert!(
        peak_above_baseline < 4 * 1024 * 1024,
        "inflating a 64 MiB bomb against a 1 MiB limit peaked at {peak_above_baseline} bytes"
    );
    eprintln!("bomb: {} bytes on the wire, peak {} KiB above baseline", frame.len(), peak_above_baseline / 1024);
}

/// What a connection costs around compressed messages: the most it held
/// while handling them (`active`) and what it keeps afterwards (`idle`).
struct Cost {
    active: usize,
    idle: usize,
}

/// Eight JSON-ish messages of ~1.5 KB each way, the client compressing with
/// a `client_bits` window, keeping its context unless `client_resets`.
fn cost_of_compressed_exchanges(offer: &str, config: Config, client_bits: u8, client_resets: bool) -> Cost {
    let mut c = Compress::new_with_window_bits(Compression::fast(), false, client_bits);
    let request = String::from_utf8(UPGRADE.to_vec())
        .unwrap()
        .replace("Origin:", &format!("Sec-WebSocket-Extensions: {offer}\r\nOrigin:"));
    let compressed = offer.starts_with("permessage-deflate");
    let frames: Vec<(String, Vec<u8>)> = (0..8)
        .map(|i| {
            let text =
                format!("{{\"user\": \"u{i}\", \"room\": \"lobby\", \"text\": \"message number {i}\"}} ").repeat(25);
            if !compressed {
                return (text.clone(), text_frame(&text));
            }
            let mut z = Vec::with_capacity(4096);
            c.compress_vec(text.as_bytes(), &mut z, FlushCompress::Sync).unwrap();
            z.truncate(z.len() - 4);
            if client_resets {
                c.reset();
            }
            (text, raw_frame(0xC1, &z, true))
        })
        .collect();
    let before = CURRENT.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let mut d = Driver::new(config);
    d.feed(0, request.as_bytes());
    for (i, (text, frame)) in frames.iter().enumerate() {
        d.feed(1 + i as u64, frame);
        d.conn.send(wsbox_core::MessageKind::Text, text.as_bytes());
        d.collect(1 + i as u64);
        assert_eq!(d.outcome().state, State::Open, "message {i} passed");
        d.out = Vec::new();
        d.events = Vec::new();
    }
    // A few quiet seconds: the decompressor is freed.
    d.conn.handle_timeout(10 + wsbox_core::connection::INFLATER_QUIET_MS);
    let idle = CURRENT.load(Ordering::Relaxed) - before;
    let active = PEAK.load(Ordering::Relaxed) - before;
    drop(d);
    Cost { active, idle }
}

fn text_frame(t: &str) -> Vec<u8> {
    frame(true, 0x1, t.as_bytes())
}

#[test]
fn compressed_connections_are_small_active_and_smaller_idle() {
    let _one_at_a_time = SERIAL.lock().unwrap();
    let browser = "permessage-deflate; client_max_window_bits";
    // The shared compressors are made once per thread: not a connection's cost.
    cost_of_compressed_exchanges(browser, Config::default(), 12, false);
    let full = Config {
        deflate: Some(DeflateConfig { server_max_window_bits: 15, client_max_window_bits: 15, ..Default::default() }),
        ..Config::default()
    };
    cost_of_compressed_exchanges(browser, full.clone(), 15, false);

    let plain = cost_of_compressed_exchanges("x-none", Config::default(), 15, false);
    let default = cost_of_compressed_exchanges(browser, Config::default(), 12, false);
    // Firefox's offer: its window cannot be limited, so it is asked to reset.
    let bare = cost_of_compressed_exchanges("permessage-deflate", Config::default(), 15, true);
    let no_takeover = cost_of_compressed_exchanges(
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        Config::default(),
        15,
        true,
    );
    let full = cost_of_compressed_exchanges(browser, full, 15, false);
    for (name, cost) in [
        ("no extension", &plain),
        ("default", &default),
        ("bare offer", &bare),
        ("none kept", &no_takeover),
        ("15-bit", &full),
    ] {
        eprintln!(
            "{name}: active {} KiB, idle {} KiB (over no extension: {} / {} KiB)",
            cost.active / 1024,
            cost.idle / 1024,
            cost.active.saturating_sub(plain.active) / 1024,
            cost.idle.saturating_sub(plain.idle) / 1024
        );
    }
    for (name, cost) in [("default", &default), ("bare offer", &bare), ("none kept", &no_takeover)] {
        assert!(
            cost.active <= plain.active + 64 * 1024,
            "{name}: an active compressed connection held {} bytes, {} without the extension",
            cost.active,
            plain.active
        );
        // The windows (at most 8 KiB), plus the message buffer every
        // connection keeps for its next message, which inflating grows in
        // steps of 4 KiB where a plain message is sized exactly.
        assert!(
            cost.idle <= plain.idle + 8 * 1024 + 4 * 1024,
            "{name}: an idle compressed connection kept {} bytes over {} without the extension",
            cost.idle,
            plain.idle
        );
    }
    assert!(no_takeover.idle + 4 * 1024 < default.idle, "without context takeover no window is kept");
    // Full context takeover keeps two 32 KiB windows.
    assert!(full.idle > default.idle + 48 * 1024 && full.idle <= plain.idle + 64 * 1024 + 4 * 1024);
}
