#![no_main]
//! `wsbox_testkit::fuzzing::handshake`; the corpus in fuzz/corpus/handshake is replayed by `cargo test`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| wsbox_testkit::fuzzing::handshake(data));
