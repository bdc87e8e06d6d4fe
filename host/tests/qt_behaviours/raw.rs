//! A raw WebSocket client over a blocking socket: every byte is the test's,
//! so a test can send what no library would (bad frames, half requests).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

pub use wsbox_testkit::frames::ServerFrame as Frame;
use wsbox_testkit::frames::{FrameSource, raw_frame};
pub use wsbox_testkit::upgrade::ACCEPT;

pub struct Raw {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

/// A request head with the usual upgrade headers plus `extra` lines.
pub fn request(target: &str, extra: &[&str]) -> String {
    wsbox_testkit::upgrade::request(target, "127.0.0.1", extra)
}

/// A client frame, masked unless `masked` is false.
pub fn frame(fin: bool, opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    raw_frame(u8::from(fin) << 7 | opcode, payload, masked)
}

pub use wsbox_testkit::frames::close as close_frame;

impl Raw {
    pub fn connect(port: u16) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        stream.set_nodelay(true).unwrap();
        Self { stream, buf: Vec::new() }
    }

    /// Connects, upgrades with `extra` headers and returns the response head.
    pub fn upgraded(port: u16, target: &str, extra: &[&str]) -> (Self, String) {
        let mut raw = Self::connect(port);
        raw.send(request(target, extra).as_bytes());
        let head = raw.response();
        assert!(head.starts_with("HTTP/1.1 101"), "not upgraded: {head}");
        (raw, head)
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// The response head (through the blank line), or what came before EOF.
    pub fn response(&mut self) -> String {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head: Vec<u8> = self.buf.drain(..end + 4).collect();
                return String::from_utf8_lossy(&head).into_owned();
            }
            if !self.fill() {
                return String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into_owned();
            }
        }
    }

    /// Everything until the server closes (for a refused request's body).
    pub fn rest(&mut self) -> String {
        while self.fill() {}
        String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into_owned()
    }

    /// The next frame, or `None` when the connection ends.
    pub fn frame(&mut self) -> Option<Frame> {
        self.next_frame()
    }

    /// Frames until a close frame: its code and reason (panics if none).
    pub fn close_received(&mut self) -> (u16, String) {
        FrameSource::close_received(self)
    }

    /// True when the server ends the connection (EOF or reset) within `within`.
    pub fn ends_within(&mut self, within: Duration) -> bool {
        self.stream.set_read_timeout(Some(within)).unwrap();
        let mut chunk = [0u8; 4096];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    return false;
                }
                Err(_) => return true,
            }
        }
    }
}

impl FrameSource for Raw {
    fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 65536];
        match self.stream.read(&mut chunk) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }
}
