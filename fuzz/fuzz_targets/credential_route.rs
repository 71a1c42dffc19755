//! Credential routing (spec §6.4): JWT → macaroon → issued v1 → imported.
//!
//! Input: UTF-8 text. If it contains a newline, the part before the first
//! newline is a comma-separated list of macaroon prefixes and the rest is
//! the credential; otherwise the prefixes are `["mc"]`.
//!
//! Invariants: `route` never panics and agrees with the documented order.
#![no_main]

use libfuzzer_sys::fuzz_target;
use talos::domain::credential::{route, CredentialKind};
use talos::domain::keys::parse_v1;

fn looks_like_jwt(s: &str) -> bool {
    // The spec's regex, written independently of the code under test.
    let Some(rest) = s.strip_prefix("eyJ") else {
        return false;
    };
    let seg = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let parts: Vec<&str> = rest.split('.').collect();
    parts.len() == 3 && parts.iter().all(|p| seg(p))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (prefixes, credential): (Vec<String>, &str) = match text.split_once('\n') {
        Some((p, c)) => (p.split(',').map(str::to_string).collect(), c),
        None => (vec!["mc".to_string()], text),
    };
    let kind = route(credential, &prefixes);
    // Deterministic.
    assert_eq!(kind, route(credential, &prefixes));
    let macaroon = prefixes.iter().any(|p| {
        !p.is_empty()
            && credential
                .strip_prefix(p.as_str())
                .and_then(|r| r.strip_prefix("_v1_"))
                .is_some_and(|body| !body.is_empty())
    });
    let expected = if looks_like_jwt(credential) {
        CredentialKind::DerivedJwt
    } else if macaroon {
        CredentialKind::DerivedMacaroon
    } else if parse_v1(credential).is_some() {
        CredentialKind::Issued
    } else {
        CredentialKind::Imported
    };
    assert_eq!(
        kind, expected,
        "credential {credential:?}, prefixes {prefixes:?}"
    );
    // Without macaroon prefixes nothing routes as a macaroon.
    assert_ne!(route(credential, &[]), CredentialKind::DerivedMacaroon);
    let _ = kind.label();
});
