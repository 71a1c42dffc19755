//! libFuzzer entry point; the checks are in `talos_fuzz::filter` (fuzz/src/lib.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| talos_fuzz::filter::check(data));
