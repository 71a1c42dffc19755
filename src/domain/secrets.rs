//! The HMAC secret family and retired values (spec §7.3, §7.8, §8.4).

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::keys::ChecksumKey;
use super::model::{Secret, Timestamp};
use super::page_token::PageTokenKey;

pub const PAGINATION_KEY_LABEL: &str = "talos/pagination/v1/cursor-key";
pub const MACAROON_ROOT_KEY_LABEL: &str = "talos/macaroon/v1/root-key";

/// A value that stays accepted until `expires_at` (exclusive), or forever.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retired<T> {
    pub value: T,
    pub expires_at: Option<Timestamp>,
}

impl<T> Retired<T> {
    /// Accepted at `now`: no expiry, or `now < expires_at`.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.expires_at.is_none_or(|e| now < e)
    }
}

/// Entries active at `now` (see [`Retired::is_active`]).
pub fn active_retired<T>(list: &[Retired<T>], now: Timestamp) -> Vec<&T> {
    list.iter()
        .filter(|r| r.is_active(now))
        .map(|r| &r.value)
        .collect()
}

#[derive(Clone, Debug)]
pub struct SecretSet {
    pub current: Secret,
    pub retired: Vec<Retired<Secret>>,
    /// `[current, …retired]`'s keys, in that order, computed once.
    keys: Vec<SecretKeys>,
}

/// What one secret's uses derive from it: the checksum key (HMAC key
/// schedule), the page-token key (HKDF, then the AES key schedule) and the
/// macaroon root key (HMAC).
#[derive(Clone)]
struct SecretKeys {
    checksum: ChecksumKey,
    page_token: PageTokenKey,
    macaroon_root: [u8; 32],
}

impl std::fmt::Debug for SecretKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKeys(<redacted>)")
    }
}

impl SecretSet {
    pub fn new(current: Secret, retired: Vec<Retired<Secret>>) -> Self {
        let keys = std::iter::once(&current)
            .chain(retired.iter().map(|r| &r.value))
            .map(|s| SecretKeys {
                checksum: ChecksumKey::new(s),
                page_token: PageTokenKey::new(s),
                macaroon_root: hmac_derive(s, MACAROON_ROOT_KEY_LABEL),
            })
            .collect();
        SecretSet {
            current,
            retired,
            keys,
        }
    }

    /// The current secret's page-token key: new tokens are sealed with it.
    pub fn current_page_token_key(&self) -> &PageTokenKey {
        &self.keys[0].page_token
    }

    /// The page-token keys of [`SecretSet::active`], same order.
    pub fn active_page_token_keys(&self, now: Timestamp) -> impl Iterator<Item = &PageTokenKey> {
        self.active_keys(now).map(|k| &k.page_token)
    }

    /// The current secret's macaroon root key: new macaroons are minted with it.
    pub fn current_macaroon_root(&self) -> &[u8; 32] {
        &self.keys[0].macaroon_root
    }

    /// The macaroon root keys of [`SecretSet::active`], same order.
    pub fn active_macaroon_roots(&self, now: Timestamp) -> impl Iterator<Item = &[u8; 32]> {
        self.active_keys(now).map(|k| &k.macaroon_root)
    }

    /// The keys of [`SecretSet::active`], same order, no allocation.
    fn active_keys(&self, now: Timestamp) -> impl Iterator<Item = &SecretKeys> {
        self.with_activity(now)
            .zip(&self.keys)
            .filter_map(|((_, active), k)| active.then_some(k))
    }

    /// `[current, …retired]`, each with whether it is accepted at `now`
    /// (retired ones until they expire; empty values never).
    fn with_activity(&self, now: Timestamp) -> impl Iterator<Item = (&Secret, bool)> {
        std::iter::once((&self.current, true))
            .chain(
                self.retired
                    .iter()
                    .map(move |r| (&r.value, r.is_active(now))),
            )
            .map(|(s, active)| (s, active && !s.is_empty()))
    }

    /// `[current, …active retired]`, skipping empty values.
    pub fn active(&self, now: Timestamp) -> Vec<&Secret> {
        self.with_activity(now)
            .filter_map(|(s, active)| active.then_some(s))
            .collect()
    }

    /// The checksum keys of [`SecretSet::active`], same order, no allocation.
    pub fn active_checksum_keys(&self, now: Timestamp) -> impl Iterator<Item = &ChecksumKey> {
        self.active_keys(now).map(|k| &k.checksum)
    }
}

/// `HMAC-SHA256(key = secret, msg = label)`.
pub fn hmac_derive(secret: &Secret, label: &str) -> [u8; 32] {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).expect("any key length");
    mac.update(label.as_bytes());
    mac.finalize().into_bytes().into()
}

/// `HKDF-SHA256(ikm = secret, salt = none, info = label)`, 32 bytes.
pub fn hkdf_derive(secret: &Secret, label: &str) -> [u8; 32] {
    let hk = Hkdf::<Sha256>::new(None, secret.expose().as_bytes());
    let mut out = [0u8; 32];
    hk.expand(label.as_bytes(), &mut out)
        .expect("32 bytes is a valid HKDF length");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::keys;

    #[test]
    fn domain_separated_vectors_15_2() {
        let cases = [
            (
                "test-secret-at-least-32-bytes-long",
                "c98c63834a762aff458b40711bdfbd07749056e7422fed06cec15185153fe4cc",
                "3ec76155c87f17af3902b563bddf76a82fc71b17659a21d8e73c1d732ae857a9",
            ),
            (
                "test-secret-123-must-be-32chars!",
                "f4fbc4c2bfaf0ff7cf5acc856a059e5e0a7207889691634a079726ed89f8f66d",
                "7992c4e963d30e8048777a910418f8273ea090fddf1920be5adc275c59a8c87e",
            ),
        ];
        for (secret, cursor, root) in cases {
            let s = Secret::new(secret);
            assert_eq!(hex::encode(hmac_derive(&s, PAGINATION_KEY_LABEL)), cursor);
            assert_eq!(hex::encode(hmac_derive(&s, MACAROON_ROOT_KEY_LABEL)), root);
        }
    }

    #[test]
    fn hkdf_differs_by_label_and_secret() {
        let a = Secret::new("a".repeat(32));
        let b = Secret::new("b".repeat(32));
        assert_ne!(hkdf_derive(&a, "x"), hkdf_derive(&a, "y"));
        assert_ne!(hkdf_derive(&a, "x"), hkdf_derive(&b, "x"));
        assert_eq!(hkdf_derive(&a, "x"), hkdf_derive(&a, "x"));
    }

    #[test]
    fn retired_activity_boundaries() {
        let now = Timestamp::from_millis(1_000);
        let r = |e: Option<i64>| Retired {
            value: 1,
            expires_at: e.map(Timestamp::from_millis),
        };
        assert_eq!(active_retired(&[r(None)], now).len(), 1);
        assert_eq!(active_retired(&[r(Some(1_001))], now).len(), 1);
        assert_eq!(
            active_retired(&[r(Some(1_000))], now).len(),
            0,
            "equal means expired"
        );
        assert_eq!(active_retired(&[r(Some(999))], now).len(), 0);
    }

    #[test]
    fn secret_set_order_15_3() {
        let now = Timestamp::from_secs(2_000_000_000);
        let set = SecretSet::new(
            Secret::new("hmac-secret-32chars-minimum-12345678901234"),
            vec![
                Retired {
                    value: Secret::new("expired-hmac"),
                    expires_at: Some(Timestamp::from_secs(1)),
                },
                Retired {
                    value: Secret::new("kept-hmac-secret-32chars-12345678901234567"),
                    expires_at: None,
                },
                Retired {
                    value: Secret::new(""),
                    expires_at: None,
                },
            ],
        );
        let active: Vec<&str> = set.active(now).into_iter().map(Secret::expose).collect();
        assert_eq!(
            active,
            vec![
                "hmac-secret-32chars-minimum-12345678901234",
                "kept-hmac-secret-32chars-12345678901234567"
            ]
        );
        // The scheduled checksum keys follow the same selection and order.
        assert_eq!(set.active_checksum_keys(now).count(), 2);
        let id = uuid::Uuid::from_u128(7);
        for (secret, accepted) in [
            ("hmac-secret-32chars-minimum-12345678901234", true),
            ("kept-hmac-secret-32chars-12345678901234567", true),
            ("expired-hmac", false),
            ("some-other-secret", false),
        ] {
            let key = keys::generate_v1("t", id, 1_000, &Secret::new(secret));
            let parsed = keys::parse_v1(&key).unwrap();
            assert_eq!(
                keys::verify_parsed(parsed, set.active_checksum_keys(now)).is_some(),
                accepted,
                "{secret}"
            );
        }
        let minted = keys::generate_v1("t", id, 1_000, &set.current);
        let first = keys::parse_v1(&minted).unwrap();
        let only_current = set.active_checksum_keys(now).take(1);
        assert!(
            keys::verify_parsed(first, only_current).is_some(),
            "current first"
        );
    }

    #[test]
    fn derived_keys_are_the_secrets_own_and_follow_expiry() {
        use crate::domain::filter::ListFilter;
        use crate::domain::model::NetworkId;
        use crate::domain::page_token::{self, PageTokenBinding, PAGE_TOKEN_MAX_AGE};
        let now = Timestamp::from_millis(1_700_000_000_000);
        let current = Secret::new("c".repeat(32));
        let live = Secret::new("l".repeat(32));
        let expired = Secret::new("e".repeat(32));
        let set = SecretSet::new(
            current.clone(),
            vec![
                Retired {
                    value: expired.clone(),
                    expires_at: Some(now),
                },
                Retired {
                    value: live.clone(),
                    expires_at: None,
                },
            ],
        );
        let f = ListFilter::default();
        let b = PageTokenBinding {
            nid: NetworkId::NIL,
            kind: crate::domain::KeyKind::Issued,
            filter: &f,
        };
        // The cached current key seals exactly what the secret itself does.
        assert_eq!(
            page_token::seal_with(set.current_page_token_key(), &b, "k1", now, [3; 12]),
            page_token::seal(&current, &b, "k1", now, [3; 12]),
        );
        let open = |t: &str| {
            page_token::open_with(
                set.active_page_token_keys(now),
                &b,
                t,
                now,
                PAGE_TOKEN_MAX_AGE,
            )
        };
        assert_eq!(
            open(&page_token::seal(&live, &b, "k2", now, [4; 12])).unwrap(),
            "k2"
        );
        assert_eq!(
            open(&page_token::seal(&expired, &b, "k3", now, [5; 12])),
            Err(page_token::PageTokenError::Invalid),
            "a retired secret past its expiry opens nothing"
        );
        assert!(!format!("{set:?}").contains(&"c".repeat(32)));
        // Macaroon roots: the same derivation, the same expiry rule.
        assert_eq!(
            *set.current_macaroon_root(),
            hmac_derive(&current, MACAROON_ROOT_KEY_LABEL)
        );
        let roots: Vec<[u8; 32]> = set.active_macaroon_roots(now).copied().collect();
        assert_eq!(
            roots,
            vec![
                hmac_derive(&current, MACAROON_ROOT_KEY_LABEL),
                hmac_derive(&live, MACAROON_ROOT_KEY_LABEL)
            ]
        );
        let root_hex = hex::encode(set.current_macaroon_root());
        assert!(!format!("{set:?}").contains(&root_hex));
    }
}
