//! Topics across processes through a real NATS server (Debian's
//! `nats-server`, installed by `host/tests/clients/bootstrap-nats-server.sh`,
//! started here on a loopback port and stopped by this test): two wsbox
//! processes with `--nats`, the built-in relay, real clients. A publication
//! reaches the other process's subscribers in order, crossing the broker
//! once per process (the broker's own counters say so), never back to its
//! own process; when the broker goes away local delivery goes on, and when
//! it is back so does delivery across.

mod support;

use futures_util::{SinkExt, StreamExt};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::{Server, Ws, http_get};
use tokio_tungstenite::tungstenite::Message;

/// A `nats-server` of our own on loopback, killed when dropped.
struct Nats {
    child: Child,
    port: u16,
    monitor: u16,
}

impl Nats {
    /// Starts one on the given ports (`None`: any free ones).
    fn start(ports: Option<(u16, u16)>) -> Self {
        let binary = support::bootstrap("host/tests/clients/bootstrap-nats-server.sh");
        let (port, monitor) =
            ports.map_or(("-1".to_string(), "-1".to_string()), |(p, m)| (p.to_string(), m.to_string()));
        let mut child = Command::new(binary)
            .args(["-a", "127.0.0.1", "-p", &port, "-m", &monitor])
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("start nats-server");
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        // Reads its log to the end, so that it never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let (mut port, mut monitor) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(20);
        while port.is_none() || monitor.is_none() {
            let line =
                rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("nats-server started");
            let after =
                |marker: &str| line.split(marker).nth(1).and_then(|a| a.rsplit(':').next()?.trim().parse().ok());
            port = port.or(after("Listening for client connections on "));
            monitor = monitor.or(after("Starting http monitor on "));
        }
        Nats { child, port: port.unwrap(), monitor: monitor.unwrap() }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The broker's view of its client connections (`/connz`).
    fn connections(&self) -> Vec<serde_json::Value> {
        let (_, body) = http_get(&format!("127.0.0.1:{}", self.monitor), "GET", "/connz?subs=1");
        let json: serde_json::Value = serde_json::from_str(&body).expect("connz is JSON");
        json["connections"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until `count` clients hold a subscription to `subject`; returns the connections.
    fn await_subscribers(&self, subject: &str, count: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let connections = self.connections();
            let holding = connections
                .iter()
                .filter(|c| c["subscriptions_list"].as_array().is_some_and(|s| s.iter().any(|s| s == subject)))
                .count();
            if holding == count {
                return connections;
            }
            assert!(Instant::now() < deadline, "{holding} of {count} subscribed to {subject}: {connections:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wsbox(nats: &Nats) -> Server {
    Server::start(&["--topic-path", "/topics/", "--nats", &nats.url(), "--metrics-listen", "127.0.0.1:0"])
}

/// The value of the metric `series` on `server`'s endpoint.
fn metric(server: &Server, series: &str) -> f64 {
    support::sample(&support::http_get(&server.metrics_addr(), "GET", "/metrics").1, series)
}

/// Waits for the `n`th time the server's log has `line`.
fn await_log(server: &Server, line: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.stderr().matches(line).count() < n {
        assert!(Instant::now() < deadline, "no '{line}' (×{n}) in the log:\n{}", server.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn join(server: &Server, topic: &str) -> Ws {
    tokio_tungstenite::connect_async(format!("{}/topics/{topic}", server.url)).await.expect("connect").0
}

async fn next(ws: &mut Ws) -> Message {
    match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
        Ok(Some(Ok(m))) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_cross_processes_through_nats_once_per_process_and_survive_its_loss() {
    let nats = Nats::start(None);
    let (one, two) = (wsbox(&nats), wsbox(&nats));
    await_log(&one, "NATS: connected", 1);
    await_log(&two, "NATS: connected", 1);
    assert_eq!(metric(&one, "wsbox_nats_connected"), 1.0);

    let mut publisher = join(&one, "room").await;
    let mut local = join(&one, "room").await;
    let mut far = [join(&two, "room").await, join(&two, "room").await];
    // Each process subscribes once, whatever its number of subscribers.
    nats.await_subscribers("wsbox.topics.room", 2);

    for i in 0..100 {
        publisher.send(Message::text(format!("{i}"))).await.unwrap();
    }
    publisher.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    for ws in far.iter_mut().chain([&mut local]) {
        for i in 0..100 {
            assert_eq!(next(ws).await, Message::text(format!("{i}")));
        }
        assert_eq!(next(ws).await, Message::binary(vec![1, 2, 3]), "the kind crosses too");
    }
    // Back the other way: 100 from process two reach both processes.
    for i in 0..100 {
        far[0].send(Message::text(format!("two {i}"))).await.unwrap();
    }
    for ws in [&mut publisher, &mut local, &mut far[1]] {
        for i in 0..100 {
            assert_eq!(next(ws).await, Message::text(format!("two {i}")));
        }
    }

    // The broker's counters: each process took each of the other's
    // publications once (not once per subscriber), and none of its own
    // came back (no echo).
    let connections = nats.connections();
    let out_msgs: Vec<u64> = connections.iter().map(|c| c["out_msgs"].as_u64().unwrap()).collect();
    let in_msgs: Vec<u64> = connections.iter().map(|c| c["in_msgs"].as_u64().unwrap()).collect();
    let mut pairs: Vec<(u64, u64)> = in_msgs.into_iter().zip(out_msgs).collect();
    pairs.sort();
    assert_eq!(pairs, [(100, 101), (101, 100)], "(in, out) per process: {connections:?}");

    // The broker goes away: local delivery goes on.
    let (port, monitor) = (nats.port, nats.monitor);
    drop(nats);
    await_log(&one, "NATS: the connection is lost", 1);
    publisher.send(Message::text("while lost")).await.unwrap();
    assert_eq!(next(&mut local).await, Message::text("while lost"));
    // The gap is reported: what could not reach the broker is counted.
    await_log(&one, "NATS: 1 publications did not reach the broker", 1);
    assert_eq!(metric(&one, "wsbox_nats_connected"), 0.0);
    assert_eq!(metric(&one, "wsbox_nats_publications_dropped_total"), 1.0);

    // It comes back on the same port: each process reconnects and
    // resubscribes, and delivery across resumes.
    let nats = Nats::start(Some((port, monitor)));
    await_log(&one, "NATS: connected", 2);
    await_log(&two, "NATS: connected", 2);
    assert_eq!(metric(&one, "wsbox_nats_connected"), 1.0);
    nats.await_subscribers("wsbox.topics.room", 2);
    publisher.send(Message::text("back")).await.unwrap();
    for ws in far.iter_mut().chain([&mut local]) {
        assert_eq!(next(ws).await, Message::text("back"));
    }
}

#[test]
fn a_bad_nats_url_or_prefix_stops_the_start_with_a_clear_error() {
    for (args, expected) in [
        (["--nats", "http://[", "--listen", "127.0.0.1:0"], "is not a NATS URL"),
        (["--nats-subject-prefix", "a..b", "--nats", "nats://127.0.0.1:1"], "is not a NATS subject"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_wsbox")).arg("serve").args(args).output().unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{stderr}");
    }
}
