//! Hostile and careless peers against the real binary, bounded in count and
//! time (the minutes-long versions are `just soak`): slowloris, a reader
//! that never reads, many peers with checksummed traffic, and resets in
//! the middle of a handshake or a frame. The server must keep serving a
//! fresh client throughout, lose nothing, and keep its memory bounded.

mod support;

use futures_util::{SinkExt, StreamExt};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::Server;
use tokio_tungstenite::tungstenite::Message;

const MIB: u64 = 1024 * 1024;

/// `normal` in the test suite, `soak` under `just soak` (`WSBOX_SOAK=1`).
fn scale(normal: u32, soak: u32) -> u32 {
    if std::env::var_os("WSBOX_SOAK").is_some() { soak } else { normal }
}

/// A fresh client's echo round trip.
async fn fresh_echo(url: &str) -> Duration {
    let started = Instant::now();
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("a fresh client connects");
    ws.send(Message::text("fresh")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("fresh"));
    let _ = ws.close(None).await;
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_all_dropped_at_the_deadline_while_a_fresh_client_is_served() {
    // The deadline is 3 s so that "served throughout" has room: the fresh
    // client must be answered long before the slow ones are dropped.
    let server = Server::start(&["--handshake-timeout-ms", "3000"]);
    let port = server.port;
    let rss_before = server.rss();
    let slow: Vec<TcpStream> = (0..1000)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: web").unwrap();
            s
        })
        .collect();
    let took = fresh_echo(&server.url).await;
    assert!(took < Duration::from_millis(2500), "a fresh client waited {took:?} behind 1 000 slow ones");
    let rss_during = server.rss();
    let slow = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        for mut s in slow {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 64];
            // EOF (or a reset) and no HTTP response: dropped at the deadline.
            match s.read(&mut buf) {
                Ok(0) | Err(_) => {}
                Ok(n) => panic!("a slowloris connection got an answer: {:?}", String::from_utf8_lossy(&buf[..n])),
            }
        }
        started.elapsed()
    });
    let all_dropped_after = slow.await.unwrap();
    eprintln!(
        "slowloris: RSS {} → {} MiB with 1 000 half requests; fresh echo {took:?}; all dropped {all_dropped_after:?} after the reads began",
        rss_before / MIB,
        rss_during / MIB
    );
    assert!(all_dropped_after < Duration::from_secs(5), "the last one was dropped after {all_dropped_after:?}");
    assert!(rss_during < rss_before + 64 * MIB, "RSS grew from {rss_before} to {rss_during} for 1 000 half requests");
    fresh_echo(&server.url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_reads_cannot_grow_the_servers_memory_and_is_dropped_at_the_write_timeout() {
    let server = Server::start(&["--write-timeout-ms", "1500"]);
    let rss_before = server.rss();
    let url = server.url.clone();
    // 64 MiB of 1 MiB messages, never reading the echoes: the server stops
    // reading from this peer once its output backs up.
    let (ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let (mut sink, _never_read) = ws.split();
    let message = Message::binary(vec![7u8; MIB as usize]);
    let mut sent = 0u64;
    for _ in 0..64 {
        match tokio::time::timeout(Duration::from_secs(2), sink.send(message.clone())).await {
            Ok(Ok(())) => sent += MIB,
            _ => break,
        }
    }
    let stalled = Instant::now();
    fresh_echo(&server.url).await;
    let rss_after = server.rss();
    eprintln!("slow reader: {} MiB accepted of 64; RSS {} → {} MiB", sent / MIB, rss_before / MIB, rss_after / MIB);
    assert!(sent < 64 * MIB, "flow control never pushed back: {sent} bytes accepted");
    assert!(rss_after < rss_before + 48 * MIB, "RSS grew from {} to {} MiB", rss_before / MIB, rss_after / MIB);
    // Dropped once its output made no progress for the write timeout: our
    // writes start failing (the server reset the connection).
    let dropped = loop {
        if stalled.elapsed() > Duration::from_secs(10) {
            break false;
        }
        match tokio::time::timeout(Duration::from_millis(500), sink.send(Message::binary(vec![1u8; 64 * 1024]))).await {
            Ok(Err(_)) => break true,
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    assert!(dropped, "the reader that never reads was not dropped");
    eprintln!("slow reader dropped {:?} after its writes stalled", stalled.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_connections_new_clients_wait_in_the_backlog_until_one_closes() {
    let server = Server::start(&["--max-connections", "5"]);
    let mut open = Vec::new();
    for _ in 0..5 {
        open.push(tokio_tungstenite::connect_async(&server.url).await.expect("within the cap").0);
    }
    let url = server.url.clone();
    let waiting = tokio::spawn(async move { tokio_tungstenite::connect_async(&url).await.map(|(ws, _)| ws) });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!waiting.is_finished(), "the sixth client was served past the cap");
    let mut first = open.remove(0);
    first.close(None).await.unwrap();
    while first.next().await.is_some() {}
    let mut sixth = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("served once a connection closed")
        .unwrap()
        .expect("handshake");
    sixth.send(Message::text("sixth")).await.unwrap();
    assert_eq!(sixth.next().await.unwrap().unwrap(), Message::text("sixth"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_peers_lose_reorder_and_corrupt_nothing_and_close_cleanly() {
    let server = Server::start(&[]);
    support::many_peers(&server.url, scale(200, 1000), scale(100, 1000)).await;
    fresh_echo(&server.url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resets_mid_handshake_and_mid_frame_leave_nothing_behind() {
    let server = Server::start(&[]);
    let port = server.port;
    fresh_echo(&server.url).await;
    let rss_before = server.rss();
    tokio::task::spawn_blocking(move || {
        for round in 0..scale(5, 100) {
            let conns: Vec<TcpStream> = (0..200)
                .map(|i| {
                    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                    if i % 2 == 0 {
                        s.write_all(b"GET / HTTP/1.1\r\nHost: h\r\nUpgr").unwrap();
                    } else {
                        let request = wsbox_testkit::upgrade::request("/", "h", &[]);
                        s.write_all(request.as_bytes()).unwrap();
                        // Half of a 1 000-byte masked binary frame.
                        let mut frame = vec![0x82, 0x80 | 126, 0x03, 0xE8, 1, 2, 3, 4];
                        frame.extend(std::iter::repeat_n(0u8, 500));
                        s.write_all(&frame).unwrap();
                    }
                    s
                })
                .collect();
            std::thread::sleep(Duration::from_millis(100));
            for s in conns {
                // SO_LINGER 0: close sends a reset.
                socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO)).unwrap();
            }
            let _ = round;
        }
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    fresh_echo(&server.url).await;
    let rss_after = server.rss();
    assert!(rss_after < rss_before + 16 * MIB, "RSS grew from {} to {} MiB", rss_before / MIB, rss_after / MIB);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_closes_a_silent_peer_with_1001_and_keeps_an_answering_one() {
    let server = Server::start(&["--keepalive-interval-ms", "300", "--keepalive-timeout-ms", "300"]);
    // A peer whose pings are answered (tokio-tungstenite answers while reading).
    let (mut alive, _) = tokio_tungstenite::connect_async(&server.url).await.unwrap();
    // A silent peer: raw TCP that upgrades, then never reads nor writes.
    let port = server.port;
    let silent = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(wsbox_testkit::upgrade::request("/", "h", &[]).as_bytes()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let started = Instant::now();
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            // 101 head, a ping (0x89), then a close (0x88) with 1001.
            if let Some(at) = got.windows(2).position(|w| w[0] == 0x88 && w[1] >= 2)
                && got.len() >= at + 4
            {
                return (u16::from_be_bytes([got[at + 2], got[at + 3]]), got.contains(&0x89), started.elapsed());
            }
        }
        (0, got.contains(&0x89), started.elapsed())
    });
    // Meanwhile the answering peer keeps talking now and then.
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        alive.send(Message::text("still here")).await.unwrap();
        assert_eq!(alive.next().await.unwrap().unwrap(), Message::text("still here"));
    }
    let (code, pinged, took) = silent.await.unwrap();
    assert!(pinged, "the silent peer was never pinged");
    assert_eq!(code, 1001, "closed with 1001 after {took:?}");
    assert!(took < Duration::from_secs(2), "closed after {took:?}");
    // A peer that only reads (and so answers pings) but sends nothing stays open.
    let quiet = tokio::time::timeout(Duration::from_millis(900), async {
        loop {
            match alive.next().await {
                Some(Ok(Message::Ping(_))) => {}
                other => return other,
            }
        }
    })
    .await;
    assert!(quiet.is_err(), "nothing but pings should arrive: {quiet:?}");
    alive.send(Message::text("after")).await.unwrap();
    let mut echoed = false;
    while let Some(Ok(m)) = alive.next().await {
        if m == Message::text("after") {
            echoed = true;
            break;
        }
    }
    assert!(echoed, "the answering peer was closed");
}

/// A peer that keeps sending after the server closed it: the server drains
/// and discards what it sends for the linger period (so our close frame is
/// not destroyed by a reset), then drops it, while other clients are served
/// as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_floods_after_our_close_is_dropped_after_the_linger_while_others_are_served() {
    let server = Server::start(&[]);
    let port = server.port;
    let flood = std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let request = wsbox_testkit::upgrade::request("/", "h", &[]);
        s.write_all(request.as_bytes()).unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
        // Close 1000, masked with a zero key; the server answers and closes.
        s.write_all(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8]).unwrap();
        let mut answer = [0u8; 4];
        s.read_exact(&mut answer).unwrap();
        assert_eq!(answer, [0x88, 0x02, 0x03, 0xe8], "the server echoes the close");
        // Now flood until the server drops us.
        let closed_at = Instant::now();
        let chunk = vec![0x55u8; 64 * 1024];
        while closed_at.elapsed() < Duration::from_secs(8) {
            if s.write_all(&chunk).is_err() {
                return closed_at.elapsed();
            }
        }
        panic!("still accepting the flood 8 s after the close");
    });
    // Others are served throughout the flood.
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(2500) {
        let took = fresh_echo(&server.url).await;
        assert!(took < Duration::from_millis(500), "a fresh client waited {took:?} beside the flood");
    }
    let dropped_after = tokio::task::spawn_blocking(move || flood.join().unwrap()).await.unwrap();
    // LINGER is 2 s; deadlines are looked at every 100 ms.
    assert!(
        dropped_after >= Duration::from_millis(1500) && dropped_after < Duration::from_millis(4000),
        "the flooding peer was dropped {dropped_after:?} after the close (linger: 2 s)"
    );
}

#[test]
fn a_flood_of_bad_handshakes_is_logged_within_a_budget_with_a_count_of_the_rest() {
    let server = Server::start(&[]);
    let bad = 200;
    for _ in 0..bad {
        let mut peer = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        peer.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut answer = Vec::new();
        let _ = peer.read_to_end(&mut answer);
        assert!(answer.starts_with(b"HTTP/1.1 400"), "{}", String::from_utf8_lossy(&answer));
    }
    // The count comes once the window of the flood is over (within a turn).
    let deadline = Instant::now() + Duration::from_secs(10);
    let counted = |log: &str| -> u64 {
        log.lines()
            .filter(|l| l.contains("more refused handshakes not logged"))
            .filter_map(|l| l.split("suppressed=").nth(1)?.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
    };
    loop {
        let log = server.stderr();
        let logged = log.lines().filter(|l| l.contains("handshake refused")).count() as u64;
        if logged + counted(&log) == bad {
            // However fast the flood came, at most 10 lines a second of it.
            assert!(logged <= 30, "{logged} lines logged of {bad} refusals:\n{log}");
            assert!(counted(&log) >= bad - 30);
            break;
        }
        assert!(Instant::now() < deadline, "every refusal is logged or counted; log:\n{log}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
