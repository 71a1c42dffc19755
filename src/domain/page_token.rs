//! Opaque list cursors: AES-256-GCM under a key derived with HKDF-SHA256
//! from the HMAC secret, bound to network, collection and filter.
//!
//! Token = base64url(0x01 ‖ nonce[12] ‖ AES-GCM(plaintext, aad = 0x01)),
//! plaintext = nid[16] ‖ kind[1] ‖ SHA-256(filter)[..16] ‖ issued_at_ms[8] ‖ last key id.

use std::time::Duration;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

use super::filter::ListFilter;
use super::model::{KeyKind, NetworkId, Secret, Timestamp};
use super::secrets::{hkdf_derive, PAGINATION_KEY_LABEL};

const VERSION: u8 = 1;
const MAX_TOKEN_LEN: usize = 1024;
/// Tolerated clock difference between replicas for a token's issue time.
const FUTURE_SKEW_MS: i64 = 5 * 60 * 1000;

pub const PAGE_TOKEN_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

pub struct PageTokenBinding<'a> {
    pub nid: NetworkId,
    pub kind: KeyKind,
    pub filter: &'a ListFilter,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageTokenError {
    #[error("invalid page token")]
    Invalid,
    #[error("page token network mismatch")]
    NetworkMismatch,
    #[error("page token was issued for a different filter or collection")]
    BindingMismatch,
    #[error("page token has expired; restart listing from the first page")]
    Expired,
}

fn kind_byte(k: KeyKind) -> u8 {
    match k {
        KeyKind::Issued => 1,
        KeyKind::Imported => 2,
    }
}

fn filter_hash(f: &ListFilter) -> [u8; 16] {
    let d = Sha256::digest(f.canonical().as_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&d[..16]);
    out
}

/// One secret's page-token cipher: the HKDF derivation and the AES key
/// schedule, done once (the derivation alone was ~28k instructions, about
/// 5 % of a 10-key list page, when it ran on every page).
#[derive(Clone)]
pub struct PageTokenKey(Aes256Gcm);

impl PageTokenKey {
    pub fn new(secret: &Secret) -> Self {
        PageTokenKey(Aes256Gcm::new(
            &hkdf_derive(secret, PAGINATION_KEY_LABEL).into(),
        ))
    }
}

impl std::fmt::Debug for PageTokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PageTokenKey(<redacted>)")
    }
}

/// [`seal_with`] under `secret`'s key, derived on the spot.
pub fn seal(
    secret: &Secret,
    binding: &PageTokenBinding<'_>,
    last_key_id: &str,
    now: Timestamp,
    nonce: [u8; 12],
) -> String {
    seal_with(&PageTokenKey::new(secret), binding, last_key_id, now, nonce)
}

pub fn seal_with(
    key: &PageTokenKey,
    binding: &PageTokenBinding<'_>,
    last_key_id: &str,
    now: Timestamp,
    nonce: [u8; 12],
) -> String {
    let mut plain = Vec::with_capacity(41 + last_key_id.len());
    plain.extend_from_slice(binding.nid.as_uuid().as_bytes());
    plain.push(kind_byte(binding.kind));
    plain.extend_from_slice(&filter_hash(binding.filter));
    plain.extend_from_slice(&now.millis().to_be_bytes());
    plain.extend_from_slice(last_key_id.as_bytes());
    let sealed = key
        .0
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &plain,
                aad: &[VERSION],
            },
        )
        .expect("AES-GCM encryption of a short message cannot fail");
    let mut out = Vec::with_capacity(1 + 12 + sealed.len());
    out.push(VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    URL_SAFE_NO_PAD.encode(out)
}

/// [`open_with`] under each of `secrets`' keys, derived on the spot.
pub fn open(
    secrets: &[&Secret],
    binding: &PageTokenBinding<'_>,
    token: &str,
    now: Timestamp,
    max_age: Duration,
) -> Result<String, PageTokenError> {
    let keys: Vec<PageTokenKey> = secrets.iter().map(|s| PageTokenKey::new(s)).collect();
    open_with(&keys, binding, token, now, max_age)
}

/// Opens a token sealed under any of `keys` (current first, then retired).
pub fn open_with<'k>(
    keys: impl IntoIterator<Item = &'k PageTokenKey>,
    binding: &PageTokenBinding<'_>,
    token: &str,
    now: Timestamp,
    max_age: Duration,
) -> Result<String, PageTokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(PageTokenError::Invalid);
    }
    let raw = URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|_| PageTokenError::Invalid)?;
    if raw.len() < 1 + 12 + 16 || raw[0] != VERSION {
        return Err(PageTokenError::Invalid);
    }
    let nonce = Nonce::from_slice(&raw[1..13]);
    let plain = keys
        .into_iter()
        .find_map(|k| {
            k.0.decrypt(
                nonce,
                Payload {
                    msg: &raw[13..],
                    aad: &[VERSION],
                },
            )
            .ok()
        })
        .ok_or(PageTokenError::Invalid)?;
    if plain.len() < 41 {
        return Err(PageTokenError::Invalid);
    }
    if &plain[..16] != binding.nid.as_uuid().as_bytes() {
        return Err(PageTokenError::NetworkMismatch);
    }
    if plain[16] != kind_byte(binding.kind) || plain[17..33] != filter_hash(binding.filter) {
        return Err(PageTokenError::BindingMismatch);
    }
    let issued = i64::from_be_bytes(plain[33..41].try_into().expect("8 bytes"));
    let age = now.millis().saturating_sub(issued);
    if age > max_age.as_millis().min(i64::MAX as u128) as i64 || -age > FUTURE_SKEW_MS {
        return Err(PageTokenError::Expired);
    }
    String::from_utf8(plain[41..].to_vec()).map_err(|_| PageTokenError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::KeyStatus;
    use proptest::prelude::*;

    fn s(v: &str) -> Secret {
        Secret::new(v.repeat(32))
    }

    const NOW: Timestamp = Timestamp(1_750_000_000_000);

    fn binding(f: &ListFilter) -> PageTokenBinding<'_> {
        PageTokenBinding {
            nid: NetworkId::NIL,
            kind: KeyKind::Issued,
            filter: f,
        }
    }

    #[test]
    fn round_trip_and_retired_secret() {
        let f = ListFilter::default();
        let t = seal(&s("a"), &binding(&f), "key-42", NOW, [7; 12]);
        assert_eq!(
            open(&[&s("a")], &binding(&f), &t, NOW, PAGE_TOKEN_MAX_AGE).unwrap(),
            "key-42"
        );
        // After rotation the old secret is retired and still opens it.
        assert_eq!(
            open(
                &[&s("b"), &s("a")],
                &binding(&f),
                &t,
                NOW,
                PAGE_TOKEN_MAX_AGE
            )
            .unwrap(),
            "key-42"
        );
        assert_eq!(
            open(&[&s("b")], &binding(&f), &t, NOW, PAGE_TOKEN_MAX_AGE),
            Err(PageTokenError::Invalid)
        );
    }

    #[test]
    fn tampering_is_invalid() {
        let f = ListFilter::default();
        let t = seal(&s("a"), &binding(&f), "key", NOW, [1; 12]);
        let mut x = t[..t.len() - 3].to_string();
        x.push_str("XXX");
        assert_eq!(
            open(&[&s("a")], &binding(&f), &x, NOW, PAGE_TOKEN_MAX_AGE),
            Err(PageTokenError::Invalid)
        );
        for garbage in ["", "!!!", "AAAA", &"A".repeat(2000), "\u{0}\u{1}"] {
            assert_eq!(
                open(&[&s("a")], &binding(&f), garbage, NOW, PAGE_TOKEN_MAX_AGE),
                Err(PageTokenError::Invalid)
            );
        }
    }

    #[test]
    fn bindings_are_enforced() {
        let f = ListFilter::default();
        let t = seal(&s("a"), &binding(&f), "key", NOW, [1; 12]);
        let other_nid = PageTokenBinding {
            nid: NetworkId(uuid::Uuid::from_u128(1)),
            kind: KeyKind::Issued,
            filter: &f,
        };
        assert_eq!(
            open(&[&s("a")], &other_nid, &t, NOW, PAGE_TOKEN_MAX_AGE),
            Err(PageTokenError::NetworkMismatch)
        );
        let imported = PageTokenBinding {
            nid: NetworkId::NIL,
            kind: KeyKind::Imported,
            filter: &f,
        };
        assert_eq!(
            open(&[&s("a")], &imported, &t, NOW, PAGE_TOKEN_MAX_AGE),
            Err(PageTokenError::BindingMismatch)
        );
        let g = ListFilter {
            actor_id: Some("u".into()),
            status: Some(KeyStatus::Active),
        };
        assert_eq!(
            open(&[&s("a")], &binding(&g), &t, NOW, PAGE_TOKEN_MAX_AGE),
            Err(PageTokenError::BindingMismatch)
        );
    }

    #[test]
    fn stale_and_future_tokens_expire() {
        let f = ListFilter::default();
        let t = seal(&s("a"), &binding(&f), "key", NOW, [1; 12]);
        let later = NOW.plus(PAGE_TOKEN_MAX_AGE + Duration::from_secs(1));
        assert_eq!(
            open(&[&s("a")], &binding(&f), &t, later, PAGE_TOKEN_MAX_AGE),
            Err(PageTokenError::Expired)
        );
        let earlier = NOW.minus(Duration::from_secs(600));
        assert_eq!(
            open(&[&s("a")], &binding(&f), &t, earlier, PAGE_TOKEN_MAX_AGE),
            Err(PageTokenError::Expired)
        );
    }

    proptest! {
        #[test]
        fn seal_open_round_trips(id in "[a-f0-9-]{1,64}", actor in proptest::option::of("[^\"\\p{Cc}]{0,20}"), nonce in any::<[u8; 12]>()) {
            let f = ListFilter { actor_id: actor, status: None };
            let t = seal(&s("k"), &binding(&f), &id, NOW, nonce);
            prop_assert_eq!(open(&[&s("k")], &binding(&f), &t, NOW, PAGE_TOKEN_MAX_AGE).unwrap(), id);
        }

        #[test]
        fn garbage_never_panics(t in ".{0,300}") {
            let f = ListFilter::default();
            let _ = open(&[&s("k")], &binding(&f), &t, NOW, PAGE_TOKEN_MAX_AGE);
        }
    }
}
