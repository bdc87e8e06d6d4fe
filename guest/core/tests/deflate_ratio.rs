//! How well each permessage-deflate setting compresses what chat servers
//! send: a corpus of JSON chat messages of 200 B to 4 KiB (generated from a
//! fixed seed, so the figures are the same on every run), compressed by the
//! server's own compressor as one connection's stream. docs/deflate.md quotes
//! the ratios this prints.

use wsbox_core::deflate::{DeflateParams, Deflater};

const WORDS: &[&str] = &[
    "the",
    "a",
    "deploy",
    "is",
    "done",
    "can",
    "you",
    "check",
    "logs",
    "on",
    "staging",
    "server",
    "again",
    "thanks",
    "meeting",
    "at",
    "noon",
    "lunch",
    "anyone",
    "build",
    "failed",
    "green",
    "now",
    "merged",
    "review",
    "please",
    "ticket",
    "priority",
    "customer",
    "reported",
    "latency",
    "spike",
    "dashboard",
    "looks",
    "fine",
    "rollback",
    "tomorrow",
    "weekend",
    "coffee",
    "release",
    "notes",
    "updated",
    "websocket",
    "reconnects",
    "after",
    "timeout",
];
const USERS: &[&str] = &["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"];
const ROOMS: &[&str] = &["general", "ops", "random", "release-2026-12"];

/// xorshift64*: a fixed, dependency-free sequence.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

/// A chat message of about `target` bytes: a JSON envelope (ids, room,
/// author, timestamp, reactions) around a text of words.
fn message(rng: &mut Rng, seq: u64, target: usize) -> String {
    let mut text = String::new();
    while text.len() < 40 || text.len() + 200 < target {
        text.push_str(rng.pick(WORDS));
        text.push(' ');
    }
    format!(
        r#"{{"type":"message","id":"msg-{:016x}","seq":{seq},"room":"{}","author":{{"id":{},"name":"{}"}},"sent_at":"2026-12-02T10:{:02}:{:02}Z","text":"{}","reactions":[]}}"#,
        rng.next(),
        rng.pick(ROOMS),
        rng.next() % 10_000,
        rng.pick(USERS),
        seq / 60 % 60,
        seq % 60,
        text.trim_end()
    )
}

fn corpus() -> Vec<String> {
    let mut rng = Rng(0x5EED_CAFE_F00D_D00D);
    (0..2_000)
        .map(|seq| {
            // Mostly short, some long: 200 B – 4 KiB, median around 450 B.
            let r = rng.next() % 100;
            let target = if r < 70 { 250 + (rng.next() % 450) } else { 700 + (rng.next() % 3_300) };
            message(&mut rng, seq, target as usize)
        })
        .collect()
}

/// Compressed bytes over input bytes for one connection's stream.
fn ratio(corpus: &[String], bits: u8, takeover: bool) -> f64 {
    let params = DeflateParams {
        server_no_context_takeover: !takeover,
        client_no_context_takeover: !takeover,
        server_max_window_bits: bits,
        client_max_window_bits: bits,
    };
    let mut deflater = Deflater::new(&params, 1);
    let mut out = Vec::new();
    let (mut input, mut output) = (0usize, 0usize);
    for m in corpus {
        deflater.compress_message(m.as_bytes(), &mut out);
        input += m.len();
        output += out.len();
    }
    output as f64 / input as f64
}

#[test]
fn context_takeover_with_small_windows_keeps_most_of_the_gain() {
    let corpus = corpus();
    let sizes: Vec<usize> = corpus.iter().map(String::len).collect();
    let mean = sizes.iter().sum::<usize>() / sizes.len();
    let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
    assert!(*min >= 200 && *max <= 4_096, "the corpus stays within 200 B – 4 KiB: {min}–{max}");
    let none = ratio(&corpus, 15, false);
    let kept = [9u8, 10, 12, 15].map(|bits| (bits, ratio(&corpus, bits, true)));
    eprintln!("corpus: {} messages, mean {mean} B; level 1", corpus.len());
    eprintln!("no context takeover: {none:.3}");
    for (bits, r) in kept {
        eprintln!("context takeover, {bits}-bit window ({} B kept per side): {r:.3}", 1usize << bits);
    }
    let (r12, r15) = (kept[2].1, kept[3].1);
    assert!(r12 < none * 0.9, "a 4 KiB window of context compresses clearly better than none ({r12:.3} vs {none:.3})");
    assert!(r12 < r15 * 1.1, "12-bit windows keep most of the 15-bit gain ({r12:.3} vs {r15:.3})");
}
