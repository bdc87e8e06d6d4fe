//! Topics: subscriptions, publishing framed once per shape, shared writes
//! ordered before each socket's own output, backpressure by skipping, the
//! automatic unsubscribe on close, and forwarding to other instances.

mod harness;

use harness::{Harness, Wire};
use wsbox_core::MessageKind;
use wsbox_runtime::{Publication, Sent};
use wsbox_testkit::frames::{close, text};
use wsbox_testkit::upgrade::request;

/// A harness with sockets 1..=n upgraded and taken by the app.
fn open(n: u32, wire: Wire) -> Harness {
    let mut h = Harness::with_wire(wire, |_, _| {});
    for conn in 1..=n {
        h.connect(conn, request("/", "server.test", &[]).as_bytes());
    }
    h.settle();
    for conn in 1..=n {
        assert_eq!(h.rt.next_pending(h.server), Some(conn));
    }
    h
}

fn texts(h: &Harness, conn: u32) -> Vec<String> {
    let (_, frames) = h.output(conn);
    frames.iter().filter(|f| f.opcode == 0x1).map(|f| String::from_utf8(f.payload.clone()).unwrap()).collect()
}

#[test]
fn a_publication_reaches_every_subscriber_but_the_excluded_one_in_one_shared_write() {
    let mut h = open(3, Wire::default());
    for conn in 1..=3 {
        assert!(h.rt.subscribe(conn, "room"));
    }
    assert!(!h.rt.subscribe(1, "room"), "already subscribed");
    assert_eq!(h.rt.subscriber_count("room"), 3);
    assert_eq!(h.rt.publish("room", MessageKind::Text, b"hello", Some(1)), Some(2));
    assert_eq!(h.rt.publish("nobody", MessageKind::Text, b"x", None), Some(0));
    h.turn();
    assert_eq!(texts(&h, 1), Vec::<String>::new());
    assert_eq!(texts(&h, 2), ["hello"]);
    assert_eq!(texts(&h, 3), ["hello"]);
    let w = h.wire.borrow();
    assert_eq!(w.shared.len(), 1, "framed once");
    assert_eq!(w.shared[0].1, [2, 3]);
    assert_eq!((w.counts.publications, w.counts.delivered, w.counts.skipped), (2, 2, 0));
    assert!(w.publications.is_empty(), "nothing forwarded unless the transport asks");
}

#[test]
fn a_socket_keeps_its_order_whether_a_publication_is_shared_or_queued_behind_its_output() {
    let mut h = open(2, Wire::default());
    assert!(h.rt.subscribe(1, "t") && h.rt.subscribe(2, "t"));
    // Socket 1: a publication (shared), then its own message.
    // Socket 2: its own message, then the publication (queued behind it).
    assert_eq!(h.rt.send(2, MessageKind::Text, b"own before"), Sent::Queued);
    assert_eq!(h.rt.publish("t", MessageKind::Text, b"published", None), Some(2));
    assert_eq!(h.rt.send(1, MessageKind::Text, b"own after"), Sent::Queued);
    h.turn();
    assert_eq!(texts(&h, 1), ["published", "own after"]);
    assert_eq!(texts(&h, 2), ["own before", "published"]);
    assert_eq!(h.wire.borrow().shared[0].1, [1]);
}

#[test]
fn publications_from_one_publisher_arrive_in_order() {
    let mut h = open(2, Wire::default());
    assert!(h.rt.subscribe(2, "t"));
    for i in 0..20 {
        h.rt.publish("t", MessageKind::Text, format!("{i}").as_bytes(), Some(1));
        if i % 3 == 0 {
            // Interleaved with the subscriber's own output and turns.
            h.rt.send(2, MessageKind::Binary, b"own");
        }
        if i % 7 == 0 {
            h.turn();
        }
    }
    h.turn();
    assert_eq!(texts(&h, 2), (0..20).map(|i| i.to_string()).collect::<Vec<_>>());
}

#[test]
fn a_subscriber_without_room_is_skipped_and_counted() {
    let mut h = open(2, Wire::default());
    assert!(h.rt.subscribe(1, "t") && h.rt.subscribe(2, "t"));
    h.rt.set_max_send_buffer(2, 64 * 1024);
    let big = vec![b'x'; 40 * 1024];
    assert_eq!(h.rt.publish("t", MessageKind::Binary, &big, None), Some(2));
    // The shared bytes count against the cap before they leave.
    assert_eq!(h.rt.publish("t", MessageKind::Binary, &big, None), Some(2));
    assert_eq!(h.rt.publish("t", MessageKind::Binary, &big, None), Some(1), "socket 2 is past 64 KiB");
    h.turn();
    // Written; the transport reports socket 2 backed up: still skipped.
    h.wire.borrow_mut().incoming.backed_up.push(2);
    h.turn();
    assert_eq!(h.rt.publish("t", MessageKind::Binary, b"small", None), Some(1));
    h.wire.borrow_mut().incoming.drained.push(2);
    h.turn();
    assert_eq!(h.rt.publish("t", MessageKind::Binary, b"small", None), Some(2));
    h.turn();
    assert_eq!(h.wire.borrow().counts.skipped, 2);
}

#[test]
fn closing_and_dropping_a_socket_unsubscribe_it() {
    let mut h = open(3, Wire { forwarding: true, ..Wire::default() });
    assert!(h.rt.subscribe(1, "a") && h.rt.subscribe(2, "a") && h.rt.subscribe(3, "b"));
    assert_eq!(h.rt.socket(1).unwrap().topics, ["a"]);
    h.turn();
    // The peer closes socket 1; the app drops socket 3.
    h.arrive(1, &close(1000, ""));
    h.rt.release_socket(3);
    h.settle();
    assert_eq!(h.rt.subscriber_count("a"), 1);
    assert_eq!(h.rt.subscriber_count("b"), 0);
    assert!(!h.rt.subscribe(1, "c"), "a closed socket cannot subscribe");
    assert!(h.rt.unsubscribe(2, "a") && !h.rt.unsubscribe(2, "a"));
    h.turn();
    let w = h.wire.borrow();
    assert_eq!(w.joined, ["a", "b"]);
    assert_eq!(w.left, ["b", "a"]);
}

#[test]
fn topic_names_and_counts_are_limited() {
    let mut h = open(1, Wire::default());
    assert!(!h.rt.subscribe(1, ""));
    assert!(!h.rt.subscribe(1, &"x".repeat(257)));
    assert!(h.rt.subscribe(1, &"x".repeat(256)));
    for i in 1..1024 {
        assert!(h.rt.subscribe(1, &format!("t{i}")));
    }
    assert!(!h.rt.subscribe(1, "one too many"));
    assert_eq!(h.rt.publish("", MessageKind::Text, b"x", None), None);
    assert_eq!(h.rt.publish("t1", MessageKind::Text, &[0xff], None), None, "text must be UTF-8");
}

#[test]
fn with_forwarding_publications_go_out_and_come_in_without_echo() {
    let mut h = open(2, Wire { forwarding: true, ..Wire::default() });
    assert!(h.rt.subscribe(2, "t"));
    // Joined, then left and joined again before the exchange: one net join.
    assert!(h.rt.subscribe(1, "u") && h.rt.unsubscribe(1, "u") && h.rt.subscribe(1, "u"));
    assert_eq!(h.rt.publish("t", MessageKind::Text, b"from here", Some(2)), Some(0));
    // From another instance: delivered here, not forwarded again.
    h.wire.borrow_mut().incoming.publications.push(Publication {
        topic: "t".into(),
        kind: MessageKind::Text,
        data: b"from elsewhere".to_vec(),
    });
    h.turn();
    h.turn();
    assert_eq!(texts(&h, 2), ["from elsewhere"]);
    let w = h.wire.borrow();
    assert_eq!(w.publications.len(), 1);
    assert_eq!(w.publications[0].data, b"from here");
    assert_eq!(w.joined, ["t", "u"]);
    assert!(w.left.is_empty());
}

#[test]
fn the_broker_state_reaches_the_app() {
    let mut h = open(1, Wire::default());
    h.wire.borrow_mut().incoming.broker_connected = Some(false);
    assert_eq!(h.turn(), ["broker-connected false"]);
    // A peer's message still arrives as before.
    h.arrive(1, &text("hi"));
    assert_eq!(h.turn(), ["message 1 hi"]);
}
