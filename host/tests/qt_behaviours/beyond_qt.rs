//! wsbox's own limits where Qt has none (where Qt has a known defect): a send
//! buffer that refuses sends to a peer that does not read and says when it
//! has room again, and a cap on connections still in the handshake.

use crate::app::App;
use crate::raw::{Raw, request};
use crate::{sock, srv};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};
use wsbox::bindings::api::Event;

const MESSAGE: usize = 16 * 1024;

/// A message whose first 8 bytes are its sequence number.
fn numbered(seq: u64) -> Vec<u8> {
    let mut m = vec![(seq % 251) as u8; MESSAGE];
    m[..8].copy_from_slice(&seq.to_be_bytes());
    m
}

/// A peer that stops reading: sends are refused once the send buffer (64 KiB
/// here) and the sockets' buffers are full, nothing is queued past that,
/// `writable` comes once the peer reads again, and the peer gets every
/// message that was accepted, in order, and none that was refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_buffer_refuses_sends_to_a_peer_that_does_not_read_and_says_when_there_is_room() {
    let (mut app, port) = App::listening().await;
    let (go_tx, go_rx) = mpsc::channel::<u64>();
    let client = thread::spawn(move || {
        let (mut raw, _) = Raw::upgraded(port, "/", &[]);
        // Not reading until told how many messages to expect.
        let expected = go_rx.recv().expect("the count");
        raw.stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        for seq in 0..expected {
            let f = raw.frame().unwrap_or_else(|| panic!("message {seq} of {expected} never came"));
            assert_eq!((f.opcode, f.payload.len()), (0x2, MESSAGE), "message {seq}");
            assert_eq!(f.payload, numbered(seq), "message {seq} out of order or corrupted");
        }
        raw
    });
    let ws = app.take().await;
    assert_eq!(sock!(app, ws, call_max_send_buffer_size), 4 * 1024 * 1024, "the default");
    sock!(app, ws, call_set_max_send_buffer_size, 1);
    assert_eq!(sock!(app, ws, call_max_send_buffer_size), 64 * 1024, "clamped to the smallest cap");

    // Send until refused, turn until `writable`, again, until no `writable`
    // comes for 300 ms: the peer's and our buffers are full.
    let mut seq = 0u64;
    let mut refusals = 0;
    loop {
        while sock!(app, ws, call_send_binary_message, &numbered(seq)) == MESSAGE as u64 {
            seq += 1;
            assert!(seq < 64 * 64, "{} MiB accepted for a peer that reads nothing", (seq * MESSAGE as u64) >> 20);
        }
        refusals += 1;
        assert!(sock!(app, ws, call_send_buffer_full), "a refused send means a full buffer");
        assert_eq!(sock!(app, ws, call_send_binary_message, &numbered(seq)), 0, "refused again until writable");
        app.forget();
        let quiet_until = Instant::now() + Duration::from_millis(300);
        let mut writable = false;
        while Instant::now() < quiet_until && !writable {
            writable = app.turn(10).await.iter().any(|e| matches!(e, Event::Writable(_)));
        }
        if !writable {
            break;
        }
    }
    assert!(refusals > 1, "the kernel's buffers took some before the cap held");
    assert!(sock!(app, ws, call_send_buffer_full));

    // The peer reads: room again, and the next message goes out after all the others.
    go_tx.send(seq + 1).unwrap();
    app.until("writable", |e| matches!(e, Event::Writable(_))).await;
    assert!(!sock!(app, ws, call_send_buffer_full));
    assert_eq!(sock!(app, ws, call_send_binary_message, &numbered(seq)), MESSAGE as u64);
    app.serve(client).await;
}

/// Past `max-handshaking-connections`, a new connection drops the oldest one
/// still in its handshake: slow requests cannot keep a fresh client out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_handshaking_cap_the_oldest_unfinished_handshake_is_dropped() {
    let (mut app, port) = App::listening().await;
    assert_eq!(srv!(app, call_max_handshaking_connections), 1024, "the default");
    srv!(app, call_set_max_handshaking_connections, 2);
    let half = &request("/", &[])[..20];
    let mut slow: Vec<Raw> = Vec::new();
    for _ in 0..2 {
        let mut raw = Raw::connect(port);
        raw.send(half.as_bytes());
        slow.push(raw);
        app.run_for(100).await;
    }
    let fresh = thread::spawn(move || Raw::upgraded(port, "/", &[]));
    let (mut fresh, _) = app.serve(fresh).await;
    let ends = thread::spawn(move || {
        let oldest = slow[0].ends_within(Duration::from_secs(2));
        let second = slow[1].ends_within(Duration::from_millis(300));
        (oldest, second)
    });
    let (oldest, second) = app.serve(ends).await;
    assert!(oldest, "the oldest unfinished handshake was dropped");
    assert!(!second, "the other one still waits for its deadline");
    let ws = app.take().await;
    assert_eq!(sock!(app, ws, call_send_text_message, "fresh"), 5);
    let got = app.serve(thread::spawn(move || fresh.frame())).await.expect("the fresh client's message");
    assert_eq!(got.payload, b"fresh");
}

/// Resets in the middle of a handshake and in the middle of a frame, and
/// peers that half-close (shut down their sending side mid-frame), leave
/// nothing behind: the host's live connections return to 0 and the guest's
/// memory stops growing after the first rounds (a leak per connection would
/// grow it by hundreds of KiB a round).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resets_mid_handshake_and_mid_frame_leave_no_connection_and_no_memory_behind() {
    let (mut app, port) = App::listening().await;
    srv!(app, call_set_max_pending_connections, 1000);
    let mut memory = Vec::new();
    for _round in 0..8 {
        let clients = thread::spawn(move || {
            (0..100)
                .map(|i| {
                    if i % 3 == 0 {
                        let mut raw = Raw::connect(port);
                        raw.send(b"GET / HTTP/1.1\r\nHost: h\r\nUpgr");
                        raw
                    } else {
                        let (mut raw, _) = Raw::upgraded(port, "/", &[]);
                        // Half of a masked 1 000-byte binary frame.
                        let mut frame = vec![0x82, 0x80 | 126, 0x03, 0xE8, 1, 2, 3, 4];
                        frame.extend(std::iter::repeat_n(0u8, 500));
                        raw.send(&frame);
                        if i % 3 == 2 {
                            // Half-closed: no more input will come.
                            raw.stream.shutdown(std::net::Shutdown::Write).unwrap();
                        }
                        raw
                    }
                })
                .collect::<Vec<_>>()
        });
        let clients = app.serve(clients).await;
        app.run_for(50).await;
        for raw in clients {
            // SO_LINGER 0: closing sends a reset.
            socket2::SockRef::from(&raw.stream).set_linger(Some(Duration::ZERO)).unwrap();
        }
        app.run_for(300).await;
        if app.inst.binding == wsbox::runner::Binding::HostFed {
            assert_eq!(app.inst.store.data().net.connection_count(), 0, "live connections after the resets");
        }
        memory.push(app.inst.store.data().guest_memory_bytes());
    }
    let (settled, last) = (memory[2], memory[7]);
    assert!(settled > 0, "the guest's memory is measured");
    assert!(last <= settled + 512 * 1024, "guest memory grew from {settled} to {last} bytes over 5 rounds: {memory:?}");
    // Still serving.
    let fresh = thread::spawn(move || Raw::upgraded(port, "/", &[]));
    app.serve(fresh).await;
}
