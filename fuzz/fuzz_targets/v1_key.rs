//! Issued v1 keys (spec §6.1): `parse_v1`, `verify_v1`, `generate_v1`.
//!
//! Input: UTF-8 text, taken as a presented credential.
//!
//! Invariants:
//! * parsing never panics; a parsed key reassembles to exactly the input;
//! * re-minting the parsed (prefix, key id, timestamp) under a secret gives a
//!   key that parses back to the same fields and verifies under that secret
//!   only (also when it is a retired secret in the list);
//! * a presented key verifies only if it is byte-for-byte the key minted for
//!   its own identifier, and never under a different secret;
//! * imported key ids are always 64 lowercase hex characters.
#![no_main]

use libfuzzer_sys::fuzz_target;
use talos::domain::keys::{
    generate_v1, imported_key_id, is_imported_key_id, is_valid_prefix, parse_v1, verify_v1,
};
use talos::domain::{NetworkId, Secret};

/// The secret the seed corpus keys were minted with.
const SECRET: &str = "fuzz-hmac-secret-0123456789abcdef0123456789";
const OTHER: &str = "fuzz-hmac-other--0123456789abcdef0123456789";

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let secret = Secret::new(SECRET);
    let other = Secret::new(OTHER);

    let id = imported_key_id(NetworkId::NIL, s);
    assert!(is_imported_key_id(&id));

    let Some(p) = parse_v1(s) else {
        assert!(verify_v1(s, &[&secret, &other]).is_none());
        return;
    };
    assert!(is_valid_prefix(p.prefix));
    assert_eq!(
        format!("{}_v1_{}_{}", p.prefix, p.identifier, p.checksum),
        s,
        "a parsed key reassembles to the input"
    );
    assert!(p.timestamp >= 0);

    // Re-mint from the parsed fields: parses back, verifies under its secret only.
    let minted = generate_v1(p.prefix, p.key_id, p.timestamp, &secret);
    let q = parse_v1(&minted).expect("a minted key parses");
    assert_eq!(
        (q.prefix, q.key_id, q.timestamp),
        (p.prefix, p.key_id, p.timestamp)
    );
    assert!(verify_v1(&minted, &[&secret]).is_some());
    assert!(
        verify_v1(&minted, &[&other, &secret]).is_some(),
        "retired secret"
    );
    assert!(verify_v1(&minted, &[&other]).is_none(), "wrong secret");
    assert!(verify_v1(&minted, &[]).is_none());

    // The presented key itself.
    let ok = verify_v1(s, &[&secret]).is_some();
    if ok {
        assert!(verify_v1(s, &[&other]).is_none(), "valid under two secrets");
        // Same identifier, same prefix → the checksum is the minted one.
        let canonical_ts = minted == s;
        let same_identifier = q.identifier == p.identifier;
        assert!(
            canonical_ts || !same_identifier,
            "a verified key with the canonical identifier must equal the minted key"
        );
    } else if q.identifier == p.identifier {
        // Canonical identifier but not verified: the checksum differs.
        assert_ne!(minted, s);
    }
});
