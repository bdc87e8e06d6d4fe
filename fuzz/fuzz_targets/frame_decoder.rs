#![no_main]
//! `wsbox_testkit::fuzzing::frame_decoder`; the corpus in fuzz/corpus/frame_decoder is replayed by `cargo test`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| wsbox_testkit::fuzzing::frame_decoder(data));
