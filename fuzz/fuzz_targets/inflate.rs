#![no_main]
//! `wsbox_testkit::fuzzing::inflate`; the corpus in fuzz/corpus/inflate is replayed by `cargo test`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| wsbox_testkit::fuzzing::inflate(data));
