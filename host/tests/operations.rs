//! What an operator runs wsbox with: systemd's readiness protocol, shell
//! completions and man pages generated from the command line's definition.

mod support;

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::Duration;
use support::Server;

/// A fresh directory for one test (under the system's temporary directory:
/// a Unix socket's path must stay short).
fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wsbox-ops-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The next datagram systemd would receive, within `timeout`.
fn next_notification(socket: &UnixDatagram, timeout: Duration) -> String {
    socket.set_read_timeout(Some(timeout)).unwrap();
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).expect("a notification in time");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn under_systemd_it_notifies_ready_when_listening_and_stopping_at_shutdown() {
    let dir = scratch_dir("notify");
    let path = dir.join("notify.sock");
    let systemd = UnixDatagram::bind(&path).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_wsbox"));
    command.args(["serve", "--listen", "127.0.0.1:0"]).env("NOTIFY_SOCKET", &path);
    let mut server = Server::spawn(command, false);
    // The listening line is out: READY=1 came with it.
    assert_eq!(next_notification(&systemd, Duration::from_secs(5)).trim(), "READY=1");
    std::net::TcpStream::connect(("127.0.0.1", server.port)).expect("ready means accepting");
    server.signal("TERM");
    assert_eq!(next_notification(&systemd, Duration::from_secs(5)).trim(), "STOPPING=1");
    assert!(server.wait_exit(Duration::from_secs(10)).expect("exits").success());
}

#[test]
fn completions_cover_every_subcommand_and_flag() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(env!("CARGO_BIN_EXE_wsbox")).args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}: {}", String::from_utf8_lossy(&out.stderr));
        let script = String::from_utf8(out.stdout).unwrap();
        for word in ["serve", "components", "run", "max-connections", "tls-cert", "shutdown-timeout-ms"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    let out = Command::new(env!("CARGO_BIN_EXE_wsbox")).args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "an unknown shell is a usage error");
}

#[test]
fn man_pages_are_written_for_wsbox_and_each_subcommand() {
    let dir = scratch_dir("man");
    let out = Command::new(env!("CARGO_BIN_EXE_wsbox")).arg("man").arg("--out").arg(&dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed = String::from_utf8(out.stdout).unwrap();
    for page in ["wsbox.1", "wsbox-serve.1", "wsbox-run.1", "wsbox-components.1"] {
        assert!(listed.contains(page), "{page} not listed in {listed}");
        let text = std::fs::read_to_string(dir.join(page)).unwrap();
        assert!(text.starts_with(".ie") || text.contains(".TH"), "{page} is not roff: {}", &text[..80.min(text.len())]);
    }
    let serve = std::fs::read_to_string(dir.join("wsbox-serve.1")).unwrap();
    assert!(serve.contains("max\\-connections"), "the serve page documents its flags");
}
