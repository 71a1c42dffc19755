//! Issued v1 keys and imported key ids (spec §6.1, §6.2).
//!
//! Issued: `<prefix>_v1_<Base58("<unix secs>:<uuid>")>_<Base58(HMAC-SHA256(secret, "<prefix>_v1_<id>_"))>`.
//! Imported: `hex(SHA-512/256(nid ‖ 0x00 ‖ raw key))`.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512_256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::base58;
use super::model::{NetworkId, Secret};

type HmacSha256 = Hmac<Sha256>;

const MAX_IDENTIFIER_LEN: usize = 100;
const MIN_CHECKSUM_LEN: usize = 32;
const MAX_CHECKSUM_LEN: usize = 44;

/// A structurally valid issued key (its checksum not yet verified).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedV1<'a> {
    pub prefix: &'a str,
    pub identifier: &'a str,
    pub checksum: &'a str,
    pub key_id: Uuid,
    pub timestamp: i64,
}

fn is_base58(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() && !matches!(b, b'0' | b'O' | b'I' | b'l'))
}

/// `^[a-zA-Z0-9_]{1,16}$`
pub fn is_valid_prefix(p: &str) -> bool {
    (1..=16).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// 64 lowercase hex characters.
pub fn is_imported_key_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Canonical lowercase hyphenated UUID.
pub fn is_issued_key_id(s: &str) -> bool {
    issued_key_uuid(s).is_some()
}

/// The UUID of an issued key id, if `s` is its canonical (lowercase,
/// hyphenated) spelling.
pub fn issued_key_uuid(s: &str) -> Option<Uuid> {
    if s.len() != 36 {
        return None;
    }
    Uuid::parse_str(s).ok().filter(|u| is_canonical(u, s))
}

/// `s` is exactly the lowercase hyphenated form of `u` (no allocation).
fn is_canonical(u: &Uuid, s: &str) -> bool {
    let mut buf = [0u8; 36];
    u.as_hyphenated().encode_lower(&mut buf).as_bytes() == s.as_bytes()
}

/// The HMAC key of issued-key checksums under one secret, with the key
/// schedule (the ipad/opad blocks) done once: a checksum then costs the
/// message blocks only, not two extra SHA-256 compressions per verify.
#[derive(Clone)]
pub struct ChecksumKey(HmacSha256);

impl ChecksumKey {
    pub fn new(secret: &Secret) -> Self {
        ChecksumKey(
            HmacSha256::new_from_slice(secret.expose().as_bytes())
                .expect("HMAC accepts any key length"),
        )
    }

    fn checksum(&self, prefix: &str, identifier: &str) -> [u8; 32] {
        let mut mac = self.0.clone();
        mac.update(prefix.as_bytes());
        mac.update(b"_v1_");
        mac.update(identifier.as_bytes());
        mac.update(b"_");
        mac.finalize().into_bytes().into()
    }
}

impl std::fmt::Debug for ChecksumKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChecksumKey(***)")
    }
}

fn checksum_of(prefix: &str, identifier: &str, secret: &Secret) -> [u8; 32] {
    ChecksumKey::new(secret).checksum(prefix, identifier)
}

/// Base58 text of a 32-byte checksum (at most 44 characters).
fn checksum_text<'o>(sum: &[u8; 32], out: &'o mut [u8; 48]) -> &'o str {
    base58::encode_into(sum, out).expect("32 bytes fit 48 characters")
}

/// Mints an issued key.
pub fn generate_v1(prefix: &str, key_id: Uuid, unix_secs: i64, secret: &Secret) -> String {
    let payload = format!("{unix_secs}:{}", key_id.as_hyphenated());
    let mut buf = [0u8; 128];
    let identifier = base58::encode_into(payload.as_bytes(), &mut buf)
        .expect("a 20-digit timestamp and a UUID fit")
        .to_string();
    let mut sum = [0u8; 48];
    let checksum = checksum_text(&checksum_of(prefix, &identifier, secret), &mut sum);
    format!("{prefix}_v1_{identifier}_{checksum}")
}

/// Structural parse, from the right (prefixes may contain `_`).
pub fn parse_v1(credential: &str) -> Option<ParsedV1<'_>> {
    let (rest, checksum) = credential.rsplit_once('_')?;
    let (rest, identifier) = rest.rsplit_once('_')?;
    let prefix = rest.strip_suffix("_v1")?;
    // The identifier's alphabet is checked by decoding it, below.
    if !is_valid_prefix(prefix)
        || identifier.len() > MAX_IDENTIFIER_LEN
        || !is_base58(checksum)
        || !(MIN_CHECKSUM_LEN..=MAX_CHECKSUM_LEN).contains(&checksum.len())
    {
        return None;
    }
    let mut buf = [0u8; base58::MAX_BYTES];
    let decoded = base58::decode_into(identifier, &mut buf)?;
    let text = std::str::from_utf8(decoded).ok()?;
    let (ts, id) = text.split_once(':')?;
    if ts.is_empty() || ts.len() > 19 || !ts.bytes().all(|b| b.is_ascii_digit()) || id.len() != 36 {
        return None;
    }
    let key_id = issued_key_uuid(id)?;
    Some(ParsedV1 {
        prefix,
        identifier,
        checksum,
        key_id,
        timestamp: ts.parse().ok()?,
    })
}

/// Parses and verifies against each secret (current first, then retired).
pub fn verify_v1<'a>(credential: &'a str, secrets: &[&Secret]) -> Option<ParsedV1<'a>> {
    let keys: Vec<ChecksumKey> = secrets.iter().map(|s| ChecksumKey::new(s)).collect();
    verify_parsed(parse_v1(credential)?, &keys)
}

/// Verifies an already parsed key against each key (see [`verify_v1`]).
///
/// The presented checksum is decoded once and compared with each key's
/// computed bytes in constant time, rather than each computed checksum
/// encoded and compared with the text: decoding only multiplies, encoding
/// divides. The two are the same test, since a byte string has exactly one
/// Base58 spelling (leading zero bytes are `1`s, the rest is the number
/// without leading zeros): a text that decodes to the 32 computed bytes is
/// the text encoding would have produced.
pub fn verify_parsed<'a, 'k>(
    parsed: ParsedV1<'a>,
    keys: impl IntoIterator<Item = &'k ChecksumKey>,
) -> Option<ParsedV1<'a>> {
    let mut buf = [0u8; base58::MAX_BYTES];
    // Depends on the presented text only, never on a secret.
    let presented = base58::decode_into(parsed.checksum, &mut buf)?;
    // Evaluate every key so timing does not reveal which one matched.
    let mut ok = false;
    for k in keys {
        let expected = k.checksum(parsed.prefix, parsed.identifier);
        ok |= presented.len() == expected.len() && bool::from(presented.ct_eq(&expected));
    }
    ok.then_some(parsed)
}

/// Tenant-scoped id of an imported key.
pub fn imported_key_id(nid: NetworkId, raw_key: &str) -> String {
    let mut h = Sha512_256::new();
    h.update(nid.to_string().as_bytes());
    h.update([0u8]);
    h.update(raw_key.as_bytes());
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "test-hmac-secret-for-api-key-checksum-validation-32chars";
    const UUID: &str = "792b4c1a-1a2d-430b-b733-c789a2b7b1fe";
    const IDENT: &str = "QixobFgVufjZNuoYXKtn78NAqFVroyN518nRaK3WD3nxTNufzwJq9sjdrDMrcyP2";

    #[test]
    fn spec_vectors_15_2() {
        let s = Secret::new(SECRET);
        let id = Uuid::parse_str(UUID).unwrap();
        let k = generate_v1("talos", id, 1_780_334_005, &s);
        assert_eq!(
            k,
            format!("talos_v1_{IDENT}_Dyb7mnt6XNKTHEN4sViJTpmF6N5UxjRDRHfbMr7NYtai")
        );
        assert_eq!(k.len(), 118);
        let k = generate_v1("ory_ak", id, 1_780_334_005, &s);
        assert_eq!(
            k,
            format!("ory_ak_v1_{IDENT}_4Uwrzrk8ki58CMFHL3QspPXXj6uBYdBDo7QzzA2KCtVD")
        );
        assert_eq!(k.len(), 119);
        let p = verify_v1(&k, &[&s]).unwrap();
        assert_eq!(p.prefix, "ory_ak");
        assert_eq!(p.key_id, id);
        assert_eq!(p.timestamp, 1_780_334_005);
    }

    #[test]
    fn documented_example_decodes_15_1() {
        let k = "prod_v1_QixobFgVufjZNuoYXKtn78NAqFVroyN518nRaK3WD3nxTNufzwJq9sjdrDMrcyP2_3wyBJBd2KxqXK117oqGWZzJU85Nv7C9vKWj9nVSqbEby";
        let p = parse_v1(k).unwrap();
        assert_eq!(p.prefix, "prod");
        assert_eq!(p.key_id.to_string(), UUID);
        assert_eq!(p.checksum.len(), 44);
        assert!(
            verify_v1(k, &[&Secret::new(SECRET)]).is_none(),
            "unknown secret"
        );
    }

    #[test]
    fn wrong_secret_and_tampering_fail() {
        let s = Secret::new(SECRET);
        let other = Secret::new("different-secret-32chars-long-12");
        let k = generate_v1("talos", Uuid::new_v4(), 1_700_000_000, &s);
        assert!(verify_v1(&k, &[&other]).is_none());
        assert!(
            verify_v1(&k, &[&other, &s]).is_some(),
            "retired secret matches"
        );
        let mut t = k.clone();
        let last = t.pop().unwrap();
        t.push(if last == 'a' { 'b' } else { 'a' });
        assert!(verify_v1(&t, &[&s]).is_none());
        // Prefix swap invalidates the checksum.
        let swapped = k.replacen("talos", "other", 1);
        assert!(verify_v1(&swapped, &[&s]).is_none());
    }

    #[test]
    fn only_the_exact_checksum_text_verifies() {
        // The checksum is checked by decoding the presented text; no other
        // text may decode to the same bytes and pass.
        let s = Secret::new(SECRET);
        let k = generate_v1("talos", Uuid::new_v4(), 1_700_000_000, &s);
        assert!(verify_v1(&k, &[&s]).is_some());
        let (head, sum) = k.rsplit_once('_').unwrap();
        // A leading '1' is a leading zero byte: 33 bytes, not the 32.
        assert!(verify_v1(&format!("{head}_1{sum}"), &[&s]).is_none());
        // Every single-character change, to every Base58 character.
        for i in 0..sum.len() {
            for &c in base58::ALPHABET {
                if sum.as_bytes()[i] == c {
                    continue;
                }
                let mut t = sum.to_string();
                t.replace_range(i..=i, &char::from(c).to_string());
                assert!(verify_v1(&format!("{head}_{t}"), &[&s]).is_none(), "{t}");
            }
        }
        // Dropping or adding a character.
        assert!(verify_v1(&format!("{head}_{}", &sum[1..]), &[&s]).is_none());
        assert!(verify_v1(&format!("{head}_{sum}z"), &[&s]).is_none());
    }

    #[test]
    fn routing_fixtures_do_not_parse() {
        for s in [
            "prod_v1_0ujsswThIG_short",
            "verylongprefix_v1_0ujsswThIGTUYm2K8Fj63K_data",
            "api_v1_0ujsswThIGTUYm2K8Fj63K_short",
            "api_v1_0ujsswThIGTUYm2K8Fj63K_toolongchecksum123",
            "api_v1_0ujsswTh_checksum12",
            "api_v1_0ujsswThIGTUYm2K8Fj63K",
            "prod_v1_0ujsswTh-GTUYm2K8Fj63K_data",
            "sk_live_abc123xyz789",
            "",
            "_v1__",
            "talos_v1_",
        ] {
            assert!(parse_v1(s).is_none(), "{s}");
        }
    }

    #[test]
    fn prefixes_from_go_tests_route_as_issued() {
        let s = Secret::new(SECRET);
        for p in [
            "prod", "test", "a", "api", "dev", "staging", "12345678", "ory_ak", "a_b_c",
        ] {
            let k = generate_v1(p, Uuid::new_v4(), 1_700_000_000, &s);
            assert_eq!(verify_v1(&k, &[&s]).unwrap().prefix, p);
        }
    }

    #[test]
    fn imported_ids_15_2() {
        let nil = NetworkId::NIL;
        let one = NetworkId(Uuid::parse_str("00000000-0000-0000-0000-000000000001").unwrap());
        let two = NetworkId(Uuid::parse_str("00000000-0000-0000-0000-000000000002").unwrap());
        let cases = [
            (
                nil,
                "imported-credential-value-12345",
                "65aabb33ffcee9436ae160a8cada57d6924d7f41409752c9e4ba7ff163bf99f6",
            ),
            (
                nil,
                "sk_live_abc123xyz",
                "0a631ed6dce16b7400719ecc80bcddb8154568b0d61b0b974e348b3f6bf4ebe4",
            ),
            (
                one,
                "test123",
                "564bf1fe6a6a20b7a1b72dbb2f9a1b03411ac2f12d5c6c44ddce4b0f90f66f52",
            ),
            (
                one,
                "sk_live_test",
                "97ca6e8d5d15b15c71b86893c46f68d25ff0d64eb824c09c79192103b3f22b8f",
            ),
            (
                one,
                "shared-key-material",
                "bdade44d1f122cc652b04f2f1242aa317af99c4ebd1c1cd7d92651a86fe7c22b",
            ),
            (
                two,
                "shared-key-material",
                "2f206693444f2eb870f11e4cca742bd5bb6db32b2d3971985d2c18466b172324",
            ),
        ];
        for (nid, raw, want) in cases {
            assert_eq!(imported_key_id(nid, raw), want);
            assert!(is_imported_key_id(want));
        }
    }

    #[test]
    fn id_shapes() {
        assert!(is_issued_key_id(UUID));
        assert!(!is_issued_key_id(&UUID.to_uppercase()));
        assert!(!is_issued_key_id("not-a-uuid"));
        assert!(!is_imported_key_id(&"A".repeat(64)));
        assert!(is_valid_prefix("ory_ak"));
        assert!(!is_valid_prefix("bad-prefix"));
        assert!(!is_valid_prefix(&"a".repeat(17)));
    }
}
