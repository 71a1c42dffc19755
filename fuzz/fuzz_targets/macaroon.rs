//! libFuzzer entry point; the checks are in `talos_fuzz::macaroon` (fuzz/src/lib.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| talos_fuzz::macaroon::check(data));
