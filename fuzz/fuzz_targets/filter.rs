//! The AIP-160 list filter subset (spec §7.7).
//!
//! Input: UTF-8 text. The whole input is parsed as one filter; if it
//! contains a newline, the two halves around the first newline are also
//! parsed and compared.
//!
//! Invariants:
//! * parsing never panics;
//! * an accepted filter printed back in canonical AIP-160 syntax parses to
//!   the same filter (parse → encode → parse round-trips);
//! * a status term is never accepted without an actor_id term;
//! * `canonical()` (which binds page tokens to filters) is injective:
//!   two filters have the same canonical form only if they are equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use talos::domain::ListFilter;

fn encode(f: &ListFilter) -> String {
    let mut terms = Vec::new();
    if let Some(a) = &f.actor_id {
        terms.push(format!("actor_id=\"{a}\""));
    }
    if let Some(s) = f.status {
        terms.push(format!("status={}", s.as_str()));
    }
    terms.join(" AND ")
}

fn check(input: &str) -> Option<ListFilter> {
    let f = ListFilter::parse(input).ok()?;
    assert!(
        f.status.is_none() || f.actor_id.is_some(),
        "status without actor_id accepted: {input:?}"
    );
    if let Some(a) = &f.actor_id {
        assert!(!a.contains('"') && !a.chars().any(char::is_control));
    }
    let text = encode(&f);
    let back = ListFilter::parse(&text)
        .unwrap_or_else(|e| panic!("re-encoded filter {text:?} (from {input:?}) fails: {e}"));
    assert_eq!(back, f, "round trip through {text:?}");
    assert_eq!(back.canonical(), f.canonical());
    Some(f)
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    check(s);
    if let Some((a, b)) = s.split_once('\n') {
        if let (Some(fa), Some(fb)) = (check(a), check(b)) {
            assert_eq!(
                fa == fb,
                fa.canonical() == fb.canonical(),
                "canonical form is not injective: {fa:?} vs {fb:?}"
            );
        }
    }
});
