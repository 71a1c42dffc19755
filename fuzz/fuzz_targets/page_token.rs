//! libFuzzer entry point; the checks are in `talos_fuzz::page_token` (fuzz/src/lib.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| talos_fuzz::page_token::check(data));
