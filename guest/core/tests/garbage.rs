//! Hostile input never panics: seeded pseudo-random streams of valid and
//! broken frames, fed at random chop sizes, interleaved with the app's
//! commands and timer ticks. (Coverage-guided fuzzing belongs to `cargo
//! fuzz`; this keeps a fast, deterministic version in the normal test run.)

use wsbox_core::{CloseCode, Config, Limits, MessageKind, State, Transport};
use wsbox_testkit::driver::*;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn random_frame(rng: &mut Rng) -> Vec<u8> {
    let len = match rng.below(10) {
        0 => 126 + rng.below(300) as usize,
        1 => 0,
        _ => rng.below(40) as usize,
    };
    let payload = if rng.below(3) == 0 {
        "κόσμε ok ".repeat(len / 10 + 1).into_bytes()[..len].to_vec()
    } else {
        rng.bytes(len)
    };
    match rng.below(6) {
        0 => raw_frame(rng.next() as u8, &payload, rng.below(8) != 0),
        1 => frame(rng.below(2) == 0, [0x0, 0x1, 0x2][rng.below(3) as usize], &payload),
        2 => frame(true, [0x8, 0x9, 0xA][rng.below(3) as usize], &payload[..payload.len().min(125)]),
        3 => {
            let n = rng.below(20) as usize;
            rng.bytes(n)
        }
        4 => close([1000, 1001, 999, 4000, 1005][rng.below(5) as usize], "r"),
        _ => raw_frame(0xC0 | [0x1, 0x2][rng.below(2) as usize], &payload, true),
    }
}

#[test]
fn random_streams_never_panic_and_keep_the_state_machine_consistent() {
    for seed in 1..=400u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E3779B97F4A7C15) | 1);
        let limits = Limits { max_frame_size: 200, max_message_size: 300, outgoing_frame_size: 7, ..Limits::default() };
        let mut d = Driver::new(Config { limits, ..Config::default() });
        let offer = if seed % 2 == 0 { "Sec-WebSocket-Extensions: permessage-deflate\r\n" } else { "" };
        let request = String::from_utf8(UPGRADE.to_vec()).unwrap().replace("Origin:", &format!("{offer}Origin:"));
        let mut script = request.into_bytes();
        for _ in 0..rng.below(12) {
            script.extend(random_frame(&mut rng));
        }
        let mut now = 0;
        let mut at = 0;
        while at < script.len() {
            let n = (1 + rng.below(64) as usize).min(script.len() - at);
            d.feed(now, &script[at..at + n]);
            at += n;
            now += rng.below(3_000);
            match rng.below(8) {
                0 => {
                    d.conn.send(MessageKind::Text, b"app says hi, app says hi, app says hi, app says hi");
                }
                1 => d.conn.ping(now, b"p"),
                2 => d.conn.close(now, CloseCode(rng.below(5000) as u16), "bye"),
                3 => d.conn.handle_timeout(now),
                _ => {}
            }
            d.collect(now);
            if d.conn.state() == State::Closed {
                assert_ne!(d.conn.transport(), Transport::Open, "seed {seed}: closed but the transport stays open");
            }
        }
        if rng.below(2) == 0 {
            d.conn.handle_eof(now);
        } else {
            d.conn.handle_reset(now);
        }
        d.collect(now);
        assert_eq!(d.conn.state(), State::Closed, "seed {seed}");
        assert_ne!(d.conn.transport(), Transport::Open, "seed {seed}");
    }
}
