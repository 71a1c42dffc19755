//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the
//! fuzz targets' own checks (`fuzz/src/lib.rs`, compiled in here), so every
//! `cargo test` re-asserts the fuzzing invariants on the seeds without a
//! cargo-fuzz build. Live fuzzing is `scripts/fuzz.sh`.

use std::path::Path;

use crate::fuzz_checks;

type Check = fn(&[u8]);

const TARGETS: &[(&str, Check)] = &[
    ("credential_route", fuzz_checks::credential_route::check),
    ("v1_key", fuzz_checks::v1_key::check),
    ("filter", fuzz_checks::filter::check),
    ("page_token", fuzz_checks::page_token::check),
    ("macaroon", fuzz_checks::macaroon::check),
    ("wire_json", fuzz_checks::wire_json::check),
];

#[test]
fn fuzz_corpus_replays_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (target, check) in TARGETS {
        let dir = root.join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no seeds for {target}");
        for f in &files {
            let data = std::fs::read(f).unwrap();
            let run = std::panic::catch_unwind(|| check(&data));
            assert!(run.is_ok(), "{target}: {} fails its checks", f.display());
        }
        eprintln!("fuzz corpus {target}: {} inputs replayed", files.len());
    }
}
