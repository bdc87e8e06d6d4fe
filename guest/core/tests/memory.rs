//! Memory of a connection, measured with a counting allocator (so the tests
//! of this binary run one at a time, under a lock).
//!
//! - A frame header and a few bytes: the payload buffer they reserve is bounded.
//! - A decompression bomb: a small compressed frame that would inflate to
//!   64 MiB, against a 1 MiB message limit. The connection fails with 1009
//!   and never holds more than a few MiB.
//! - What an idle connection keeps with context takeover on and off.

mod peer;

use flate2::{Compress, Compression, FlushCompress};
use peer::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use wsbox_core::{Config, Limits, State};

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

/// Bytes a connection holds after one compressed message each way.
fn idle_bytes_after_a_compressed_exchange(offer: &str) -> usize {
    let mut c = Compress::new_with_window_bits(Compression::default(), false, 15);
    let text = "some json-ish text, {\"key\": \"value\"} ".repeat(40);
    let mut z = Vec::with_capacity(4096);
    c.compress_vec(text.as_bytes(), &mut z, FlushCompress::Sync).unwrap();
    z.truncate(z.len() - 4);
    let request = String::from_utf8(UPGRADE.to_vec())
        .unwrap()
        .replace("Origin:", &format!("Sec-WebSocket-Extensions: {offer}\r\nOrigin:"));
    let compressed = offer.starts_with("permessage-deflate");
    let frame = if compressed { raw_frame(0xC1, &z, true) } else { text_frame(&text) };
    let before = CURRENT.load(Ordering::Relaxed);
    let mut d = Driver::new(Config::default());
    d.feed(0, request.as_bytes());
    d.feed(1, &frame);
    d.conn.send(wsbox_core::MessageKind::Text, text.as_bytes());
    d.collect(1);
    d.out = Vec::new();
    d.events = Vec::new();
    let held = CURRENT.load(Ordering::Relaxed) - before;
    drop(d);
    held
}

fn text_frame(t: &str) -> Vec<u8> {
    frame(true, 0x1, t.as_bytes())
}

#[test]
fn idle_memory_with_and_without_context_takeover() {
    let _one_at_a_time = SERIAL.lock().unwrap();
    let plain = idle_bytes_after_a_compressed_exchange("x-none");
    let takeover = idle_bytes_after_a_compressed_exchange("permessage-deflate");
    let no_takeover = idle_bytes_after_a_compressed_exchange(
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
    );
    let small_window = idle_bytes_after_a_compressed_exchange(
        "permessage-deflate; server_max_window_bits=10; client_max_window_bits=10",
    );
    eprintln!(
        "idle connection after one message each way: no deflate {} KiB, context takeover {} KiB, \
         no context takeover {} KiB, 1 KiB windows {} KiB",
        plain / 1024,
        takeover / 1024,
        no_takeover / 1024,
        small_window / 1024
    );
    assert!(takeover > plain + 100 * 1024, "context takeover keeps a compressor and a decompressor");
    assert!(no_takeover < plain + 16 * 1024, "without context takeover nothing is kept between messages");
    assert!(small_window < takeover, "smaller windows hold less");
}
