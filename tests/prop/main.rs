//! Property tests (issue 9, hardening):
//!
//! * `keys` — issued v1 keys: mint → parse round trips, and checksums never
//!   validate under a wrong secret or after any one-character change;
//! * `page_tokens` — seal → open round trips and bindings;
//! * `stores` — a random sequence of admin operations applied through the
//!   `KeyStore` port to the in-memory store and to SQLite (temp file) gives
//!   the same observable results.
//!
//! Case counts are bounded so the whole target runs in a few seconds;
//! `PROPTEST_CASES` raises them for a longer local run.

mod fuzz_corpus;
// The fuzz targets' checks (the cargo-fuzz crate's library), compiled in.
#[path = "../../fuzz/src/lib.rs"]
mod fuzz_checks;
mod keys;
mod page_tokens;
#[cfg(feature = "sqlite")]
mod stores;

use proptest::test_runner::Config;

/// `cases` unless `PROPTEST_CASES` says otherwise.
pub fn config(cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    Config {
        cases,
        // Failures are reported in the test output; no regression files are
        // written into the source tree.
        failure_persistence: None,
        ..Config::default()
    }
}
