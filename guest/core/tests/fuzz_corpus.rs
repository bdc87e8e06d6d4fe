//! Replays the committed fuzz corpus (fuzz/corpus/<target>/) through the
//! fuzz targets' bodies natively, so every `cargo test` re-checks what the
//! fuzzer found and the crashes it once found stay fixed.

use std::path::Path;
use wsbox_testkit::fuzzing;

fn replay(target: &str, body: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("the corpus {} is missing: {e}", dir.display()));
    let mut count = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| body(&data));
        assert!(outcome.is_ok(), "{target} fails on {}", path.display());
        count += 1;
    }
    assert!(count > 0, "the corpus {} is empty", dir.display());
}

#[test]
fn handshake_corpus() {
    replay("handshake", fuzzing::handshake);
}

#[test]
fn frame_decoder_corpus() {
    replay("frame_decoder", fuzzing::frame_decoder);
}

#[test]
fn connection_corpus() {
    replay("connection", fuzzing::connection);
}

#[test]
fn inflate_corpus() {
    replay("inflate", fuzzing::inflate);
}
