//! Encrypted list cursors (`domain::page_token`).
//!
//! Input: arbitrary bytes. They are (1) presented as a page token to `open`
//! when they are UTF-8, and (2) used to build a real token: the first 12
//! bytes are the nonce, the rest (lossily decoded) the last key id; byte 0
//! and byte 1 also pick one character of that token to tamper with.
//!
//! Invariants:
//! * `open` never panics on any input;
//! * seal → open round-trips the last key id (for tokens within the length
//!   limit), under the current and under a retired secret;
//! * a token never opens under another secret, network, collection or
//!   filter, nor after its maximum age;
//! * changing any one character of a token makes it fail to open.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use talos::domain::page_token::{open, seal, PageTokenBinding, PageTokenError, PAGE_TOKEN_MAX_AGE};
use talos::domain::{KeyKind, KeyStatus, ListFilter, NetworkId, Secret, Timestamp};

const NOW: Timestamp = Timestamp(1_750_000_000_000);
const MAX_TOKEN_LEN: usize = 1024;
const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fuzz_target!(|data: &[u8]| {
    let secret = Secret::new("fuzz-hmac-secret-0123456789abcdef0123456789");
    let retired = Secret::new("fuzz-hmac-retired-123456789abcdef0123456789");
    let filter = ListFilter {
        actor_id: Some("user-1".into()),
        status: Some(KeyStatus::Active),
    };
    let binding = PageTokenBinding {
        nid: NetworkId::NIL,
        kind: KeyKind::Issued,
        filter: &filter,
    };

    // (1) Hostile tokens.
    if let Ok(s) = std::str::from_utf8(data) {
        let r = open(&[&secret, &retired], &binding, s, NOW, PAGE_TOKEN_MAX_AGE);
        assert!(r.is_err(), "a token nobody sealed opened: {s:?}");
    }

    // (2) Real tokens.
    let mut nonce = [0u8; 12];
    let n = data.len().min(12);
    nonce[..n].copy_from_slice(&data[..n]);
    let last = String::from_utf8_lossy(&data[n..]).into_owned();
    let token = seal(&retired, &binding, &last, NOW, nonce);
    let opened = open(
        &[&secret, &retired],
        &binding,
        &token,
        NOW,
        PAGE_TOKEN_MAX_AGE,
    );
    if token.len() > MAX_TOKEN_LEN {
        assert_eq!(opened, Err(PageTokenError::Invalid));
        return;
    }
    assert_eq!(opened.as_deref(), Ok(last.as_str()), "round trip");

    let other_nid = PageTokenBinding {
        nid: NetworkId(uuid::Uuid::from_u128(1)),
        ..binding
    };
    let imported = PageTokenBinding {
        kind: KeyKind::Imported,
        ..binding
    };
    let no_filter = ListFilter::default();
    let other_filter = PageTokenBinding {
        filter: &no_filter,
        ..binding
    };
    assert_eq!(
        open(&[&secret], &binding, &token, NOW, PAGE_TOKEN_MAX_AGE),
        Err(PageTokenError::Invalid),
        "opened under a secret that did not seal it"
    );
    assert_eq!(
        open(&[&retired], &other_nid, &token, NOW, PAGE_TOKEN_MAX_AGE),
        Err(PageTokenError::NetworkMismatch)
    );
    assert_eq!(
        open(&[&retired], &imported, &token, NOW, PAGE_TOKEN_MAX_AGE),
        Err(PageTokenError::BindingMismatch)
    );
    assert_eq!(
        open(&[&retired], &other_filter, &token, NOW, PAGE_TOKEN_MAX_AGE),
        Err(PageTokenError::BindingMismatch)
    );
    let late = NOW.plus(PAGE_TOKEN_MAX_AGE + Duration::from_millis(1));
    assert_eq!(
        open(&[&retired], &binding, &token, late, PAGE_TOKEN_MAX_AGE),
        Err(PageTokenError::Expired)
    );

    // One changed character never opens.
    if data.len() >= 2 && !token.is_empty() {
        let pos = usize::from(data[0]) * 7 % token.len();
        let replacement = B64URL[usize::from(data[1]) % B64URL.len()];
        let mut bytes = token.clone().into_bytes();
        if bytes[pos] != replacement {
            bytes[pos] = replacement;
            let tampered = String::from_utf8(bytes).expect("ASCII");
            assert!(
                open(&[&retired], &binding, &tampered, NOW, PAGE_TOKEN_MAX_AGE).is_err(),
                "a tampered token opened"
            );
        }
    }
});
