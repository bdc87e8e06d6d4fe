//! Client frames as a test writes them (masked or not, any first byte) and
//! server frames as a test reads them back.

/// The masking key of every client frame built here.
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A masked client frame.
pub fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    raw_frame((fin as u8) << 7 | opcode, payload, true)
}

/// A frame with a chosen first byte (RSV bits, reserved opcodes), masked or not.
pub fn raw_frame(b0: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = vec![b0];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n @ 0..=125 => out.push(mask_bit | n as u8),
        n @ 126..=0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        out.extend_from_slice(&MASK);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// A masked, final text frame.
pub fn text(payload: &str) -> Vec<u8> {
    frame(true, 0x1, payload.as_bytes())
}

/// A masked, final binary frame.
pub fn binary(payload: &[u8]) -> Vec<u8> {
    frame(true, 0x2, payload)
}

/// A masked close frame with a code and a reason.
pub fn close(code: u16, reason: &str) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason.as_bytes());
    frame(true, 0x8, &payload)
}

/// A frame the server sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerFrame {
    pub fin: bool,
    pub rsv: u8,
    pub masked: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl ServerFrame {
    /// The code of a close frame that carries one.
    pub fn close_code(&self) -> Option<u16> {
        self.close().map(|(code, _)| code)
    }

    /// The code and reason of a close frame that carries them.
    pub fn close(&self) -> Option<(u16, String)> {
        (self.opcode == 0x8 && self.payload.len() >= 2).then(|| {
            (
                u16::from_be_bytes([self.payload[0], self.payload[1]]),
                String::from_utf8_lossy(&self.payload[2..]).into_owned(),
            )
        })
    }
}

/// The first frame of `bytes` and its length, once it is complete (a
/// masked frame is unmasked).
pub fn parse_frame(bytes: &[u8]) -> Option<(ServerFrame, usize)> {
    let (&b0, rest) = bytes.split_first()?;
    let &b1 = rest.first()?;
    let masked = b1 & 0x80 != 0;
    let (len, mut at) = match b1 & 0x7F {
        126 => (u64::from(u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?)), 4),
        127 => (u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?), 10),
        n => (u64::from(n), 2),
    };
    let key: Option<[u8; 4]> = if masked {
        let key = bytes.get(at..at + 4)?.try_into().ok()?;
        at += 4;
        Some(key)
    } else {
        None
    };
    let end = at.checked_add(usize::try_from(len).ok()?)?;
    let mut payload = bytes.get(at..end)?.to_vec();
    if let Some(key) = key {
        payload.iter_mut().enumerate().for_each(|(i, b)| *b ^= key[i % 4]);
    }
    let frame = ServerFrame { fin: b0 & 0x80 != 0, rsv: (b0 >> 4) & 0x7, masked, opcode: b0 & 0xF, payload };
    Some((frame, end))
}

/// A test's client reading the server's frames from what it receives (a
/// socket, an HTTP/2 stream): what was read waits in a buffer, filled on
/// demand.
pub trait FrameSource {
    /// What was read and not yet taken.
    fn buffer(&mut self) -> &mut Vec<u8>;
    /// Reads more into the buffer; false once nothing more comes.
    fn fill(&mut self) -> bool;

    /// The next frame, or `None` when the input ends.
    fn next_frame(&mut self) -> Option<ServerFrame> {
        loop {
            if let Some((frame, used)) = parse_frame(self.buffer()) {
                self.buffer().drain(..used);
                return Some(frame);
            }
            if !self.fill() {
                return None;
            }
        }
    }

    /// Frames until a close frame: its code and reason (panics if none).
    fn close_received(&mut self) -> (u16, String) {
        while let Some(f) = self.next_frame() {
            if f.opcode == 0x8 {
                return f.close().unwrap_or((1005, String::new()));
            }
        }
        panic!("the input ended without a close frame");
    }
}

/// Splits server output into the HTTP head and the frames after a 101
/// (the whole output as text otherwise); server frames are never masked
/// and nothing trails the last one.
pub fn decode_server_output(out: &[u8]) -> (String, Vec<ServerFrame>) {
    let head_end = out.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4).unwrap_or(0);
    let http = String::from_utf8_lossy(&out[..head_end]).into_owned();
    if !http.starts_with("HTTP/1.1 101") {
        return (String::from_utf8_lossy(out).into_owned(), Vec::new());
    }
    let mut frames = Vec::new();
    let mut rest = &out[head_end..];
    while let Some((frame, used)) = parse_frame(rest) {
        assert!(!frame.masked, "server frames are never masked");
        frames.push(frame);
        rest = &rest[used..];
    }
    assert!(rest.is_empty(), "trailing bytes after the last server frame");
    (http, frames)
}
