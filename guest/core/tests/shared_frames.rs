//! One message framed once for many connections (topics): the same bytes
//! are valid on every connection of the same shape, and a connection that
//! keeps its compression context stays in step with its peer's.

use flate2::{Decompress, FlushDecompress};
use wsbox_core::{Config, MessageKind};
use wsbox_testkit::driver::*;

fn upgrade_offering(offer: &str) -> Vec<u8> {
    String::from_utf8(UPGRADE.to_vec())
        .unwrap()
        .replace("Origin:", &format!("Sec-WebSocket-Extensions: {offer}\r\nOrigin:"))
        .into_bytes()
}

/// A client's decompressor with context takeover: the window is the whole
/// history of what it inflated.
struct Client {
    inflate: Decompress,
}

impl Client {
    fn new() -> Self {
        Self { inflate: Decompress::new_with_window_bits(false, 15) }
    }

    fn read(&mut self, frame: &ServerFrame) -> Vec<u8> {
        if frame.rsv & 0x4 == 0 {
            return frame.payload.clone();
        }
        let mut input = frame.payload.clone();
        input.extend_from_slice(&[0, 0, 0xFF, 0xFF]);
        let mut out = Vec::with_capacity(1 << 16);
        self.inflate.decompress_vec(&input, &mut out, FlushDecompress::Sync).expect("valid deflate");
        out
    }
}

fn open(offer: &str) -> Driver {
    let mut d = Driver::new(Config::default());
    d.feed(0, &upgrade_offering(offer));
    d.out.clear();
    d
}

#[test]
fn a_publication_framed_once_keeps_every_context_in_step() {
    let mut a = open("permessage-deflate; client_max_window_bits");
    let mut b = open("permessage-deflate; client_max_window_bits");
    let (mut client_a, mut client_b) = (Client::new(), Client::new());
    let own = b"a message of this connection's own, long enough to be compressed".repeat(3);
    let published = b"one publication for every subscriber, compressed once for all".repeat(3);

    // Each connection first sends a message of its own through its context.
    a.conn.send(MessageKind::Text, &own);
    b.conn.send(MessageKind::Text, &own);
    a.conn.take_transmit(&mut a.out);
    b.conn.take_transmit(&mut b.out);

    // Then one publication, framed once.
    let shape = a.conn.shape_for(published.len()).expect("open");
    assert_eq!(b.conn.shape_for(published.len()), Some(shape), "same negotiation, same shape");
    let framed = shape.frame(MessageKind::Text, &published);
    assert!(a.conn.send_framed(&published, shape, &framed), "nothing queued: shareable");
    a.out.extend_from_slice(&framed);
    // `b` has output queued ahead: the bytes are queued behind it.
    b.conn.ping(0, b"p");
    assert!(!b.conn.send_framed(&published, shape, &framed));
    b.conn.take_transmit(&mut b.out);

    // Then more of their own, referring back into the window (which now
    // holds the publication on both sides).
    a.conn.send(MessageKind::Text, &published);
    b.conn.send(MessageKind::Text, &published);
    a.conn.take_transmit(&mut a.out);
    b.conn.take_transmit(&mut b.out);

    for (d, client) in [(&a, &mut client_a), (&b, &mut client_b)] {
        let (_, frames) = decode_server_output(&[b"HTTP/1.1 101 x\r\n\r\n".as_slice(), &d.out].concat());
        let texts: Vec<Vec<u8>> = frames.iter().filter(|f| f.opcode == 0x1).map(|f| client.read(f)).collect();
        assert_eq!(texts, [own.clone(), published.clone(), published.clone()]);
        let last = frames.iter().rfind(|f| f.opcode == 0x1).unwrap();
        assert!(last.payload.len() < 20, "the repeat refers back to the publication: {} bytes", last.payload.len());
    }
}

#[test]
fn shapes_differ_by_compression_and_frame_size() {
    let plain = open("");
    let deflate = open("permessage-deflate");
    let small = deflate.conn.shape_for(4).unwrap();
    // Below the compression threshold a deflate connection frames like a plain one.
    assert_eq!(plain.conn.shape_for(4), Some(small));
    assert_ne!(plain.conn.shape_for(1000), deflate.conn.shape_for(1000));

    let mut tiny_frames = open("");
    tiny_frames.conn.config_mut().limits.outgoing_frame_size = 10;
    let shape = tiny_frames.conn.shape_for(25).unwrap();
    assert_ne!(Some(shape), plain.conn.shape_for(25));
    let (_, frames) = decode_server_output(
        &[b"HTTP/1.1 101 x\r\n\r\n".as_slice(), &shape.frame(MessageKind::Binary, &[7; 25])].concat(),
    );
    assert_eq!(frames.iter().map(|f| f.payload.len()).collect::<Vec<_>>(), [10, 10, 5]);
    assert_eq!((frames[0].opcode, frames[1].opcode, frames[2].fin), (0x2, 0x0, true));
}

#[test]
fn a_connection_that_is_not_open_has_no_shape() {
    let mut d = open("");
    d.conn.close(0, wsbox_core::CloseCode::NORMAL, "");
    assert_eq!(d.conn.shape_for(1), None);
}
