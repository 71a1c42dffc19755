//! Page tokens: `seal` → `open` round trips under random bindings, times
//! and nonces; a token opens only under the binding and secret it was
//! sealed with.

use std::time::Duration;

use proptest::prelude::*;
use talos::domain::page_token::{open, seal, PageTokenBinding, PageTokenError, PAGE_TOKEN_MAX_AGE};
use talos::domain::{KeyKind, KeyStatus, ListFilter, NetworkId, Secret, Timestamp};
use uuid::Uuid;

fn kind() -> impl Strategy<Value = KeyKind> {
    prop_oneof![Just(KeyKind::Issued), Just(KeyKind::Imported)]
}

fn filter() -> impl Strategy<Value = ListFilter> {
    let status = prop_oneof![
        Just(None),
        Just(Some(KeyStatus::Active)),
        Just(Some(KeyStatus::Revoked)),
        Just(Some(KeyStatus::Expired)),
    ];
    (proptest::option::of("[^\"\\p{Cc}]{0,24}"), status)
        .prop_map(|(actor_id, status)| ListFilter { actor_id, status })
}

/// Issued (UUID) or imported (64 hex) key ids, or anything short.
fn last_key_id() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u128>().prop_map(|u| Uuid::from_u128(u).to_string()),
        "[0-9a-f]{64}",
        "\\PC{0,40}",
    ]
}

proptest! {
    #![proptest_config(crate::config(256))]

    #[test]
    fn seal_open_round_trips(
        nid in any::<u128>(),
        kind in kind(),
        filter in filter(),
        last in last_key_id(),
        nonce in any::<[u8; 12]>(),
        issued_ms in 0i64..4_000_000_000_000,
        age_ms in 0u64..PAGE_TOKEN_MAX_AGE.as_millis() as u64,
        secret in "\\PC{32,40}",
        retired in "\\PC{32,40}",
    ) {
        prop_assume!(secret != retired);
        let (current, retired) = (Secret::new(secret), Secret::new(retired));
        let binding = PageTokenBinding { nid: NetworkId(Uuid::from_u128(nid)), kind, filter: &filter };
        let now = Timestamp(issued_ms);
        let later = now.plus(Duration::from_millis(age_ms));
        let token = seal(&retired, &binding, &last, now, nonce);
        // Opens under the secret list that still has the sealing secret.
        prop_assert_eq!(
            open(&[&current, &retired], &binding, &token, later, PAGE_TOKEN_MAX_AGE),
            Ok(last.clone())
        );
        // Not under another secret.
        prop_assert_eq!(
            open(&[&current], &binding, &token, later, PAGE_TOKEN_MAX_AGE),
            Err(PageTokenError::Invalid)
        );
        // Not past its maximum age.
        let stale = now.plus(PAGE_TOKEN_MAX_AGE + Duration::from_millis(1));
        prop_assert_eq!(
            open(&[&retired], &binding, &token, stale, PAGE_TOKEN_MAX_AGE),
            Err(PageTokenError::Expired)
        );
    }

    #[test]
    fn bindings_are_enforced(
        a in (any::<u128>(), kind(), filter()),
        b in (any::<u128>(), kind(), filter()),
        last in last_key_id(),
        nonce in any::<[u8; 12]>(),
    ) {
        let secret = Secret::new("p".repeat(32));
        let now = Timestamp(1_750_000_000_000);
        let ba = PageTokenBinding { nid: NetworkId(Uuid::from_u128(a.0)), kind: a.1, filter: &a.2 };
        let bb = PageTokenBinding { nid: NetworkId(Uuid::from_u128(b.0)), kind: b.1, filter: &b.2 };
        let token = seal(&secret, &ba, &last, now, nonce);
        let r = open(&[&secret], &bb, &token, now, PAGE_TOKEN_MAX_AGE);
        if a.0 != b.0 {
            prop_assert_eq!(r, Err(PageTokenError::NetworkMismatch));
        } else if a.1 != b.1 || a.2 != b.2 {
            prop_assert_eq!(r, Err(PageTokenError::BindingMismatch));
        } else {
            prop_assert_eq!(r, Ok(last));
        }
    }
}
