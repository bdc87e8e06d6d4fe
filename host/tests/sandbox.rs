//! A misbehaving guest under the real host: the component built with its
//! test-only `faults` feature spins, allocates without bound or traps when a
//! client sends a magic message. The host must stop it (watchdog, memory
//! cap), log why, close every connection of that instance with a 1012
//! Service Restart close frame, start a fresh instance that serves again,
//! and never give up (frequent failures only slow the restarts down).

mod support;

use futures_util::{SinkExt, StreamExt};
use std::process::Command;
use std::time::Duration;
use support::{close_code, faulty_component};
use tokio_tungstenite::tungstenite::Message;
use wsbox_testkit::process::Process;

/// wsbox serving the faulty component, with a tight watchdog and memory cap.
struct Supervised(Process);

impl Supervised {
    fn start(extra: &[&str]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wsbox"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--component"])
            .arg(faulty_component())
            .args(["--max-guest-run-ms", "300", "--max-guest-memory-mib", "64"])
            .args(extra);
        Self(Process::spawn(command).unwrap_or_else(|e| panic!("{e}")))
    }

    /// The URL of the next "listening on" line (30 s: the first start compiles).
    fn next_url(&self) -> String {
        self.0.next_url(Duration::from_secs(30)).unwrap_or_else(|e| panic!("{e}"))
    }

    fn stderr(&self) -> String {
        self.0.log()
    }
}

/// Echo works; the fault message ends the connection (the instance is
/// gone) with a 1012 close frame from the host.
async fn echo_then_fault(url: &str, fault: &str) {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("connect");
    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("hello"));
    ws.send(Message::text(fault)).await.unwrap();
    assert_eq!(close_code(&mut ws).await, Some(1012), "the faulty instance's connection");
}

async fn echo(url: &str) {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("connect to the fresh instance");
    ws.send(Message::text("again")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("again"));
}

#[tokio::test]
async fn a_guest_stuck_in_a_loop_is_stopped_by_the_watchdog_and_replaced() {
    let server = Supervised::start(&[]);
    let url = server.next_url();
    let started = std::time::Instant::now();
    echo_then_fault(&url, "__wsbox_fault:loop").await;
    assert!(started.elapsed() < Duration::from_secs(5), "stopped after {:?}", started.elapsed());
    echo(&server.next_url()).await;
    let log = server.stderr();
    assert!(log.contains("stopped by the watchdog"), "{log}");
    assert!(log.contains("starting a fresh instance") && log.contains("restarts_within_a_minute=1"), "{log}");
}

#[tokio::test]
async fn a_guest_that_allocates_without_bound_hits_the_memory_cap_and_is_replaced() {
    let server = Supervised::start(&[]);
    echo_then_fault(&server.next_url(), "__wsbox_fault:alloc").await;
    echo(&server.next_url()).await;
    let log = server.stderr();
    assert!(log.contains("memory allocation") && log.contains("failed"), "the guest's own report: {log}");
    assert!(log.contains("starting a fresh instance"), "{log}");
}

#[tokio::test]
async fn a_trapping_guest_is_replaced_every_time_and_frequent_failures_back_off() {
    let mut server = Supervised::start(&[]);
    for _ in 0..7 {
        echo_then_fault(&server.next_url(), "__wsbox_fault:trap").await;
    }
    echo(&server.next_url()).await;
    assert!(server.0.is_running(), "the server never gives up");
    let log = server.stderr();
    assert!(log.contains("fault injected: trap"), "{log}");
    assert!(log.contains("restarts_within_a_minute=6") && log.contains("pause_ms=100"), "{log}");
    assert!(log.contains("restarts_within_a_minute=7") && log.contains("pause_ms=200"), "{log}");
}

#[tokio::test]
async fn every_websocket_of_a_failed_instance_gets_a_1012_close() {
    let server = Supervised::start(&[]);
    let url = server.next_url();
    let mut bystanders = Vec::new();
    for i in 0..50 {
        let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.expect("connect");
        ws.send(Message::text(format!("hi {i}"))).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text(format!("hi {i}")));
        bystanders.push(ws);
    }
    echo_then_fault(&url, "__wsbox_fault:trap").await;
    for ws in &mut bystanders {
        assert_eq!(close_code(ws).await, Some(1012), "a bystander of the failed instance");
    }
    echo(&server.next_url()).await;
    // Logged when the last of them ended (or the 5 s grace passed).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !server.stderr().contains("closed_with_1012=51") && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(server.stderr().contains("closed_with_1012=51"), "{}", server.stderr());
}

#[tokio::test]
async fn with_several_workers_a_fault_costs_only_its_own_instances_connections() {
    let server = Supervised::start(&["--workers", "4"]);
    let url = server.next_url();
    let mut clients = Vec::new();
    for i in 0..200 {
        let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.expect("connect");
        ws.send(Message::text(format!("hi {i}"))).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text(format!("hi {i}")));
        clients.push(ws);
    }
    // The kernel spreads connections over the workers' listeners; one of
    // these clients makes its worker's instance trap.
    let mut faulty = clients.pop().unwrap();
    faulty.send(Message::text("__wsbox_fault:trap")).await.unwrap();
    assert_eq!(close_code(&mut faulty).await, Some(1012));
    let (mut closed, mut alive) = (0, 0);
    for ws in &mut clients {
        ws.send(Message::text("still there?")).await.unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("an answer or a close");
        match reply {
            Some(Ok(Message::Text(t))) if t.as_str() == "still there?" => alive += 1,
            Some(Ok(Message::Close(Some(f)))) if u16::from(f.code) == 1012 => closed += 1,
            other => panic!("neither an echo nor a 1012 close: {other:?}"),
        }
    }
    eprintln!("of 199 bystanders: {closed} closed with 1012 (the failed worker's), {alive} still echo");
    assert!(alive > 0 && closed + alive == 199, "only the failed instance's connections were closed");
    assert!(closed < 150, "a fault cost about a quarter of the connections, not {closed} of 199");
}
