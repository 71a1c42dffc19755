//! Issued v1 keys: `generate_v1`, `parse_v1`, `verify_v1`.

use proptest::prelude::*;
use talos::domain::keys::{generate_v1, parse_v1, verify_v1};
use talos::domain::Secret;
use uuid::Uuid;

fn prefix() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_]{1,16}"
}

fn secret() -> impl Strategy<Value = String> {
    // Any secret the config accepts (≥ 32 characters), any Unicode.
    "\\PC{32,48}"
}

proptest! {
    #![proptest_config(crate::config(256))]

    /// mint → parse gives back exactly what was minted, and the key verifies.
    #[test]
    fn v1_round_trip(p in prefix(), id in any::<u128>(), ts in 0..=i64::MAX, s in secret()) {
        let secret = Secret::new(s);
        let key_id = Uuid::from_u128(id);
        let key = generate_v1(&p, key_id, ts, &secret);
        let parsed = parse_v1(&key).expect("a minted key parses");
        prop_assert_eq!(parsed.prefix, p.as_str());
        prop_assert_eq!(parsed.key_id, key_id);
        prop_assert_eq!(parsed.timestamp, ts);
        prop_assert_eq!(
            format!("{}_v1_{}_{}", parsed.prefix, parsed.identifier, parsed.checksum),
            key.clone()
        );
        let verified = verify_v1(&key, &[&secret]).expect("verifies under its secret");
        prop_assert_eq!(verified, parsed);
        // Deterministic: minting twice gives the same key.
        prop_assert_eq!(generate_v1(&p, key_id, ts, &secret), key);
    }

    /// A checksum never validates under a different secret, in any position
    /// of the secret list, and validates whenever its own secret is listed.
    #[test]
    fn checksum_needs_the_right_secret(
        p in prefix(),
        id in any::<u128>(),
        ts in 0..=i64::MAX,
        right in secret(),
        wrong in proptest::collection::vec(secret(), 1..4),
        pos in any::<prop::sample::Index>(),
    ) {
        let right = Secret::new(right);
        let wrong: Vec<Secret> = wrong
            .into_iter()
            .filter(|w| w != right.expose())
            .map(Secret::new)
            .collect();
        let key = generate_v1(&p, Uuid::from_u128(id), ts, &right);
        let wrong_refs: Vec<&Secret> = wrong.iter().collect();
        prop_assert!(verify_v1(&key, &wrong_refs).is_none());
        let mut with_right = wrong_refs.clone();
        with_right.insert(pos.index(with_right.len() + 1), &right);
        prop_assert!(verify_v1(&key, &with_right).is_some());
    }

    /// Changing any one character of a key makes it fail verification.
    #[test]
    fn one_changed_character_fails(
        p in prefix(),
        id in any::<u128>(),
        ts in 0..=i64::MAX,
        s in secret(),
        pos in any::<prop::sample::Index>(),
        c in "[a-zA-Z0-9_]",
    ) {
        let secret = Secret::new(s);
        let key = generate_v1(&p, Uuid::from_u128(id), ts, &secret);
        let i = pos.index(key.len());
        let c = c.chars().next().unwrap();
        prop_assume!(key.as_bytes()[i] != c as u8);
        let mut tampered = key.into_bytes();
        tampered[i] = c as u8;
        let tampered = String::from_utf8(tampered).unwrap();
        prop_assert!(verify_v1(&tampered, &[&secret]).is_none(), "{}", tampered);
    }

    /// Garbage never panics and never verifies.
    #[test]
    fn garbage_never_verifies(s in "\\PC{0,200}", key in secret()) {
        prop_assert!(verify_v1(&s, &[&Secret::new(key)]).is_none());
    }
}
