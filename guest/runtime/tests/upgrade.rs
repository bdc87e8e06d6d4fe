//! The upgrade decision: the transport's admission, the pending queue, the
//! allowed origins, the app's own decision, and the handshake cap.

mod harness;

use harness::{Harness, Wire};
use wsbox_runtime::Admission;
use wsbox_testkit::upgrade::{ACCEPT, request};

fn plain() -> Vec<u8> {
    request("/", "server.test", &[]).into_bytes()
}

#[test]
fn a_request_upgrades_and_the_app_takes_the_socket() {
    let mut h = Harness::new(|_, _| {});
    h.connect(7, &plain());
    assert_eq!(h.turn(), ["new-connection 1"]);
    h.turn();
    let (head, frames) = h.output(7);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head.contains(ACCEPT), "{head}");
    assert!(frames.is_empty());
    assert_eq!(h.wire.borrow().upgraded, [7], "the transport is told it is a WebSocket");
    assert_eq!(h.rt.next_pending(h.server), Some(7));
    assert_eq!(h.rt.next_pending(h.server), None);
}

#[test]
fn a_full_pending_queue_refuses_with_503_and_reports_1006_next_turn() {
    let mut h = Harness::new(|rt, server| rt.server_mut(server).max_pending = 1);
    h.connect(1, &plain());
    assert_eq!(h.turn(), ["new-connection 1"]);
    // The app did not take socket 1: the queue is full for the next turn.
    h.connect(2, &plain());
    assert_eq!(h.turn(), Vec::<String>::new());
    assert_eq!(h.turn(), ["server-error 1 1006 Too many pending connections."]);
    let (head, _) = h.output(2);
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert_eq!(h.rt.server(h.server).error_string, "Too many pending connections.");
}

#[test]
fn an_origin_not_allowed_gets_403_and_1008() {
    let mut h = Harness::new(|rt, server| rt.server_mut(server).allowed_origins = vec!["https://ok.test".into()]);
    h.connect(1, request("/", "server.test", &["Origin: https://evil.test"]).as_bytes());
    h.connect(2, request("/", "server.test", &["Origin: https://ok.test"]).as_bytes());
    assert_eq!(h.turn(), ["new-connection 1"]);
    assert_eq!(h.turn(), ["server-error 1 1008 Access forbidden."]);
    assert!(h.output(1).0.starts_with("HTTP/1.1 403"), "{}", h.output(1).0);
    assert!(h.output(2).0.starts_with("HTTP/1.1 101"), "{}", h.output(2).0);
}

#[test]
fn the_transports_admission_refusals_carry_retry_after_and_their_close_codes() {
    let mut h = Harness::new(|_, _| {});
    h.connect_with(1, Admission::RefuseBusy, &plain());
    h.connect_with(2, Admission::RefuseAddress, &plain());
    assert_eq!(h.turn(), Vec::<String>::new());
    let signals = h.turn();
    assert_eq!(
        signals,
        [
            "server-error 1 1013 The server is busy: its memory is near its limit.",
            "server-error 1 1008 Too many connections from this address."
        ]
    );
    let (busy, _) = h.output(1);
    assert!(busy.starts_with("HTTP/1.1 503") && busy.contains("Retry-After: 5\r\n"), "{busy}");
    let (address, _) = h.output(2);
    assert!(address.starts_with("HTTP/1.1 429") && address.contains("Retry-After: 5\r\n"), "{address}");
    assert!(h.wire.borrow().upgraded.is_empty());
}

#[test]
fn admitted_uncompressed_declines_the_compression_offer() {
    let offer = request("/", "server.test", &["Sec-WebSocket-Extensions: permessage-deflate"]);
    let mut h = Harness::new(|_, _| {});
    h.connect_with(1, Admission::AdmitUncompressed, offer.as_bytes());
    h.connect_with(2, Admission::Admit, offer.as_bytes());
    h.settle();
    let (declined, _) = h.output(1);
    let (accepted, _) = h.output(2);
    assert!(declined.starts_with("HTTP/1.1 101") && !declined.contains("permessage-deflate"), "{declined}");
    assert!(accepted.contains("Sec-WebSocket-Extensions: permessage-deflate"), "{accepted}");
}

#[test]
fn with_origin_authentication_the_app_decides() {
    let mut h = Harness::new(|rt, server| rt.server_mut(server).origin_authentication = true);
    h.connect(1, request("/", "server.test", &["Origin: https://a.test"]).as_bytes());
    h.connect(2, request("/", "server.test", &["Origin: https://b.test"]).as_bytes());
    assert_eq!(
        h.turn(),
        ["origin-authentication-required 1 https://a.test", "origin-authentication-required 2 https://b.test"]
    );
    assert!(h.output(1).0.is_empty(), "nothing is answered before the app decides");
    h.rt.accept_handshake(h.server, 1);
    h.rt.refuse_handshake(h.server, 2, 401, "who are you?");
    let signals = h.settle();
    assert!(signals.contains(&"new-connection 1".to_string()), "{signals:?}");
    assert!(signals.contains(&"server-error 1 1008 Access forbidden.".to_string()), "{signals:?}");
    assert!(h.output(1).0.starts_with("HTTP/1.1 101"));
    assert!(h.output(2).0.starts_with("HTTP/1.1 401"), "{}", h.output(2).0);
}

#[test]
fn past_the_handshake_cap_the_oldest_unfinished_connection_is_dropped() {
    let mut h = Harness::new(|rt, server| rt.server_mut(server).max_handshaking = 2);
    h.connect(1, b"GET / HTTP/1.1\r\n");
    h.connect(2, b"GET / HTTP/1.1\r\n");
    h.turn();
    h.connect(3, &plain());
    h.settle();
    assert_eq!(h.wire.borrow().aborted, [1], "the oldest half-request goes, without a response");
    assert!(h.output(1).0.is_empty());
    assert!(h.output(3).0.starts_with("HTTP/1.1 101"));
}

#[test]
fn a_failed_listen_is_a_1006_server_error_with_the_transports_text() {
    let mut h = Harness::new(|_, _| {});
    let other = h.rt.new_server("other".to_string(), false);
    h.wire.borrow_mut().fail_listen = Some("Address already in use".to_string());
    assert!(!h.rt.listen(other, "127.0.0.1", 1234));
    assert_eq!(h.turn(), ["server-error 2 1006 Address already in use"]);
}

#[test]
fn a_connection_accepted_as_its_listener_closed_is_aborted() {
    let mut h = Harness::new(|_, _| {});
    h.connect(1, &plain());
    h.rt.close_server(h.server);
    assert_eq!(h.turn(), ["closed 1"]);
    h.turn();
    assert_eq!(h.wire.borrow().aborted, [1]);
    assert!(h.wire.borrow().listeners.is_empty(), "the listener is closed");
}

#[test]
fn a_health_check_is_answered_by_the_transports_state_without_a_signal() {
    let wire = Wire { health_check_path: Some("/healthz".into()), ..Wire::default() };
    let mut h = Harness::with_wire(wire, |_, _| {});
    h.connect(1, b"GET /healthz HTTP/1.1\r\nHost: lb\r\n\r\n");
    h.connect(2, b"GET /other HTTP/1.1\r\nHost: lb\r\n\r\n");
    h.connect(3, &plain());
    let mut signals = h.turn();
    h.wire.borrow_mut().draining = true;
    h.connect(4, b"GET /healthz HTTP/1.1\r\nHost: lb\r\n\r\n");
    signals.extend(h.turn());
    signals.extend(h.turn());
    let errors: Vec<_> = signals.iter().filter(|s| s.starts_with("server-error")).collect();
    assert_eq!(errors.len(), 1, "only the plain request's 400 is a server error: {signals:?}");
    assert_eq!(signals.iter().filter(|s| *s == "new-connection 1").count(), 1, "{signals:?}");
    assert!(h.output(1).0.starts_with("HTTP/1.1 200 OK"), "{}", h.output(1).0);
    assert!(h.output(2).0.starts_with("HTTP/1.1 400"), "{}", h.output(2).0);
    assert!(h.output(3).0.starts_with("HTTP/1.1 101"), "{}", h.output(3).0);
    assert!(h.output(4).0.starts_with("HTTP/1.1 503"), "{}", h.output(4).0);
    assert!(h.wire.borrow().closed.contains(&1) && h.wire.borrow().closed.contains(&4));
}

#[test]
fn only_a_trusted_proxy_names_the_client() {
    let forwarded = request("/", "server.test", &["X-Forwarded-For: 10.0.0.1, 203.0.113.7"]);
    let peer = |trusted_proxy: bool| {
        let mut h = Harness::with_wire(Wire { trusted_proxy, ..Wire::default() }, |_, _| {});
        h.connect(1, forwarded.as_bytes());
        assert_eq!(h.turn(), ["new-connection 1"]);
        let s = h.rt.socket(1).expect("socket");
        (s.peer_address.clone(), s.peer_port)
    };
    assert_eq!(peer(true), ("203.0.113.7".to_string(), 0));
    assert_eq!(peer(false), ("192.0.2.7".to_string(), 50_001), "anyone else's header is ignored");
}
