#![no_main]
//! `wsbox_testkit::fuzzing::connection`; the corpus in fuzz/corpus/connection is replayed by `cargo test`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| wsbox_testkit::fuzzing::connection(data));
