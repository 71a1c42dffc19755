//! Derived tokens: the claim set (spec §8.2), its rules, and the macaroon
//! token format. JWT signing lives in the JWKS adapter.
//!
//! Macaroon token: `<prefix>_v1_<base64url(V2 binary)>`, location = issuer,
//! identifier = `jti`. The first caveat is `talos-claims <JSON claims>`;
//! holders may append caveats to narrow it further:
//! * `time-before <RFC 3339>` — the token stops verifying earlier;
//! * `scope <s1> <s2> …` — scopes are narrowed to this set;
//! * `ip <cidr>[,<cidr>…]` — the client IP must be in one of them.
//!
//! Any other caveat makes the token invalid (macaroon semantics: a
//! verifier refuses what it does not understand).

use std::net::IpAddr;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::access::{check_ip, IpCheck};
use super::macaroon::{Macaroon, MacaroonError};
use super::model::{ApiKey, KeyVisibility, NetworkId, Timestamp};

pub const RESERVED_CLAIMS: &[&str] = &[
    "jti", "sub", "iss", "aud", "iat", "exp", "nbf", "nid", "akid", "pid", "tty", "oid", "scp",
    "scope", "meta", "vis", "acl",
];
/// Value of the `tty` claim on derived tokens.
pub const TOKEN_TYPE_DERIVED: &str = "derived";
const CLAIMS_CAVEAT: &str = "talos-claims ";

fn is_empty_map(m: &Map<String, Value>) -> bool {
    m.is_empty()
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DerivedClaims {
    pub jti: String,
    /// Parent key id.
    pub sub: String,
    pub iss: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<String>,
    /// The key id verification reports (the parent's).
    pub akid: String,
    #[serde(default)]
    pub pid: String,
    /// Actor (owner) of the parent key.
    #[serde(default)]
    pub oid: String,
    #[serde(default)]
    pub scp: Vec<String>,
    #[serde(default, skip_serializing_if = "is_empty_map")]
    pub meta: Map<String, Value>,
    pub nid: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acl: Vec<String>,
    #[serde(default)]
    pub vis: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aud: Vec<String>,
    /// Custom claims, at the top level of the payload.
    #[serde(flatten)]
    pub custom: Map<String, Value>,
}

/// Drops reserved names from client-supplied custom claims.
pub fn strip_reserved(custom: &Map<String, Value>) -> Map<String, Value> {
    custom
        .iter()
        .filter(|(k, _)| !RESERVED_CLAIMS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

pub struct DeriveInput<'a> {
    pub parent: &'a ApiKey,
    pub jti: String,
    pub issuer: &'a str,
    pub now: Timestamp,
    pub ttl: Duration,
    pub scopes: Vec<String>,
    pub custom_claims: Map<String, Value>,
    pub audiences: Vec<String>,
}

pub fn build_claims(i: DeriveInput<'_>) -> DerivedClaims {
    let now = i.now.secs();
    DerivedClaims {
        jti: i.jti,
        sub: i.parent.key_id.clone(),
        iss: i.issuer.to_string(),
        iat: now,
        nbf: now,
        exp: now.saturating_add(i.ttl.as_secs() as i64),
        tty: Some(TOKEN_TYPE_DERIVED.to_string()),
        akid: i.parent.key_id.clone(),
        pid: i.parent.key_id.clone(),
        oid: i.parent.actor_id.clone(),
        scp: i.scopes,
        meta: i.parent.metadata.clone(),
        nid: i.parent.nid.to_string(),
        acl: i.parent.allowed_cidrs.clone(),
        vis: match i.parent.visibility {
            KeyVisibility::Public => "public".into(),
            _ => "secret".into(),
        },
        aud: i.audiences,
        custom: strip_reserved(&i.custom_claims),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token issuer is not accepted")]
    Issuer,
    #[error("token type is invalid")]
    TokenType,
    #[error("token not valid for this network")]
    NetworkMismatch,
}

pub fn check_claims(
    c: &DerivedClaims,
    accepted_issuers: &[&str],
    expected_nid: NetworkId,
    now: Timestamp,
    skew: Duration,
) -> Result<(), ClaimError> {
    let now = now.secs();
    let skew = skew.as_secs() as i64;
    if !accepted_issuers.contains(&c.iss.as_str()) {
        return Err(ClaimError::Issuer);
    }
    if now > c.exp.saturating_add(skew) {
        return Err(ClaimError::Expired);
    }
    if c.nbf.saturating_sub(skew) > now {
        return Err(ClaimError::NotYetValid);
    }
    if c.tty.as_deref().is_some_and(|t| t != TOKEN_TYPE_DERIVED) {
        return Err(ClaimError::TokenType);
    }
    if c.nid != expected_nid.to_string() {
        return Err(ClaimError::NetworkMismatch);
    }
    Ok(())
}

/// What a verified derived token stands for.
#[derive(Clone, Debug, PartialEq)]
pub struct DerivedIdentity {
    pub key_id: String,
    pub actor_id: String,
    pub scopes: Vec<String>,
    pub metadata: Map<String, Value>,
    pub expires_at: Option<Timestamp>,
    pub visibility: KeyVisibility,
    pub allowed_cidrs: Vec<String>,
    pub audiences: Vec<String>,
}

impl DerivedClaims {
    pub fn identity(&self) -> DerivedIdentity {
        // Custom claims overlaid by the sealed metadata: metadata wins.
        let mut metadata = self.custom.clone();
        for (k, v) in &self.meta {
            metadata.insert(k.clone(), v.clone());
        }
        DerivedIdentity {
            key_id: if self.akid.is_empty() {
                self.sub.clone()
            } else {
                self.akid.clone()
            },
            actor_id: self.oid.clone(),
            scopes: self.scp.clone(),
            metadata,
            expires_at: Some(Timestamp::from_secs(self.exp)),
            visibility: if self.vis == "public" {
                KeyVisibility::Public
            } else {
                KeyVisibility::Secret
            },
            allowed_cidrs: self.acl.clone(),
            audiences: self.aud.clone(),
        }
    }
}

// ------------------------------------------------------------- macaroons

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DerivedTokenError {
    #[error("not a macaroon token")]
    Format,
    #[error(transparent)]
    Macaroon(#[from] MacaroonError),
    #[error("macaroon signature is invalid")]
    Signature,
    #[error("macaroon claims are missing or invalid")]
    Claims,
    #[error("macaroon caveat is not satisfied: {0}")]
    Caveat(String),
}

pub fn mint_macaroon(root_key: &[u8; 32], prefix: &str, claims: &DerivedClaims) -> String {
    let mut m = Macaroon::mint(root_key, claims.jti.as_bytes(), &claims.iss);
    let json = serde_json::to_string(claims).expect("claims serialize");
    m.add_first_party_caveat(format!("{CLAIMS_CAVEAT}{json}").as_bytes());
    format!("{prefix}_v1_{}", URL_SAFE_NO_PAD.encode(m.encode_v2()))
}

fn decode_token(token: &str, prefixes: &[String]) -> Result<Macaroon, DerivedTokenError> {
    let body = prefixes
        .iter()
        .filter(|p| !p.is_empty())
        .find_map(|p| {
            token
                .strip_prefix(p.as_str())
                .and_then(|r| r.strip_prefix("_v1_"))
        })
        .ok_or(DerivedTokenError::Format)?;
    let bytes = URL_SAFE_NO_PAD
        .decode(body.trim_end_matches('='))
        .map_err(|_| DerivedTokenError::Format)?;
    Ok(Macaroon::decode_v2(&bytes)?)
}

/// A holder narrows a macaroon by appending a caveat (no secret needed).
pub fn attenuate(
    token: &str,
    prefixes: &[String],
    caveat: &str,
) -> Result<String, DerivedTokenError> {
    let mut m = decode_token(token, prefixes)?;
    m.add_first_party_caveat(caveat.as_bytes());
    let prefix = prefixes
        .iter()
        .find(|p| token.starts_with(&format!("{p}_v1_")))
        .ok_or(DerivedTokenError::Format)?;
    Ok(format!(
        "{prefix}_v1_{}",
        URL_SAFE_NO_PAD.encode(m.encode_v2())
    ))
}

/// Verifies a macaroon under any of the root keys and returns its claims
/// after applying the holder's caveats.
pub fn verify_macaroon(
    token: &str,
    prefixes: &[String],
    root_keys: &[[u8; 32]],
    now: Timestamp,
    client_ip: Option<IpAddr>,
) -> Result<DerivedClaims, DerivedTokenError> {
    let m = decode_token(token, prefixes)?;
    let mut ok = false;
    for k in root_keys {
        ok |= m.verify_signature(k);
    }
    if !ok {
        return Err(DerivedTokenError::Signature);
    }
    let first = m.caveats.first().ok_or(DerivedTokenError::Claims)?;
    let json = std::str::from_utf8(first)
        .ok()
        .and_then(|s| s.strip_prefix(CLAIMS_CAVEAT))
        .ok_or(DerivedTokenError::Claims)?;
    let mut claims: DerivedClaims =
        serde_json::from_str(json).map_err(|_| DerivedTokenError::Claims)?;
    if claims.jti.as_bytes() != m.identifier.as_slice() {
        return Err(DerivedTokenError::Claims);
    }
    for c in &m.caveats[1..] {
        let c =
            std::str::from_utf8(c).map_err(|_| DerivedTokenError::Caveat("not UTF-8".into()))?;
        let (name, arg) = c.split_once(' ').unwrap_or((c, ""));
        match name {
            "time-before" => {
                let t = Timestamp::parse_rfc3339(arg.trim())
                    .ok_or_else(|| DerivedTokenError::Caveat(c.to_string()))?;
                if now >= t {
                    return Err(DerivedTokenError::Caveat("time-before has passed".into()));
                }
                claims.exp = claims.exp.min(t.secs());
            }
            "scope" => {
                let allowed: Vec<&str> = arg.split_whitespace().collect();
                claims.scp.retain(|s| allowed.contains(&s.as_str()));
            }
            "ip" => {
                let cidrs: Vec<String> = arg
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                if cidrs.is_empty() || check_ip(&cidrs, client_ip) != IpCheck::Allowed {
                    return Err(DerivedTokenError::Caveat("client IP not allowed".into()));
                }
            }
            _ => {
                return Err(DerivedTokenError::Caveat(format!(
                    "unknown caveat {name:?}"
                )))
            }
        }
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::tests::sample;
    use serde_json::json;

    const NOW: Timestamp = Timestamp(1_750_000_000_000);

    fn claims() -> DerivedClaims {
        let mut parent = sample();
        parent.scopes = vec!["read".into(), "write".into()];
        parent.metadata = json!({"team": "a", "plan": "pro"})
            .as_object()
            .unwrap()
            .clone();
        parent.allowed_cidrs = vec!["10.0.0.0/8".into()];
        let custom = json!({"exp": 1, "sub": "evil", "tenant": "t1", "plan": "free"})
            .as_object()
            .unwrap()
            .clone();
        build_claims(DeriveInput {
            parent: &parent,
            jti: "jti-1".into(),
            issuer: "https://issuer",
            now: NOW,
            ttl: Duration::from_secs(3600),
            scopes: vec!["read".into()],
            custom_claims: custom,
            audiences: vec![],
        })
    }

    fn mc() -> Vec<String> {
        vec!["mc".into()]
    }

    #[test]
    fn reserved_claims_are_stripped_and_metadata_wins() {
        let c = claims();
        assert_eq!(c.exp, NOW.secs() + 3600);
        assert_eq!(c.sub, sample().key_id);
        assert!(!c.custom.contains_key("exp") && !c.custom.contains_key("sub"));
        let id = c.identity();
        assert_eq!(id.metadata["tenant"], "t1");
        assert_eq!(
            id.metadata["plan"], "pro",
            "sealed metadata overrides custom claims"
        );
        assert_eq!(id.key_id, sample().key_id);
        assert_eq!(id.scopes, vec!["read"]);
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["tenant"], "t1", "custom claims sit at the top level");
        assert_eq!(v["tty"], TOKEN_TYPE_DERIVED);
    }

    #[test]
    fn claim_checks() {
        let c = claims();
        let nid = NetworkId::NIL;
        let skew = Duration::from_secs(60);
        assert_eq!(
            check_claims(&c, &["https://issuer"], nid, NOW, skew),
            Ok(())
        );
        assert_eq!(
            check_claims(&c, &["https://other"], nid, NOW, skew),
            Err(ClaimError::Issuer)
        );
        assert_eq!(
            check_claims(&c, &["x", "https://issuer"], nid, NOW, skew),
            Ok(()),
            "retired issuer"
        );
        let late = NOW.plus(Duration::from_secs(3600 + 61));
        assert_eq!(
            check_claims(&c, &["https://issuer"], nid, late, skew),
            Err(ClaimError::Expired)
        );
        let early = NOW.minus(Duration::from_secs(61));
        assert_eq!(
            check_claims(&c, &["https://issuer"], nid, early, skew),
            Err(ClaimError::NotYetValid)
        );
        let other = NetworkId(uuid::Uuid::from_u128(0xbbbb));
        assert_eq!(
            check_claims(&c, &["https://issuer"], other, NOW, skew),
            Err(ClaimError::NetworkMismatch)
        );
        let mut wrong = c.clone();
        wrong.tty = Some("access".into());
        assert_eq!(
            check_claims(&wrong, &["https://issuer"], nid, NOW, skew),
            Err(ClaimError::TokenType)
        );
        let mut missing = c;
        missing.tty = None;
        assert_eq!(
            check_claims(&missing, &["https://issuer"], nid, NOW, skew),
            Ok(()),
            "a missing tty is accepted"
        );
    }

    #[test]
    fn macaroon_round_trip_with_retired_roots() {
        let (old, new) = ([1u8; 32], [2u8; 32]);
        let t = mint_macaroon(&old, "mc", &claims());
        assert!(t.starts_with("mc_v1_Ag"), "{t}");
        let got = verify_macaroon(&t, &mc(), &[new, old], NOW, None).unwrap();
        assert_eq!(got, claims());
        assert_eq!(
            verify_macaroon(&t, &mc(), &[new], NOW, None),
            Err(DerivedTokenError::Signature)
        );
        assert_eq!(
            verify_macaroon(&t, &["other".into()], &[old], NOW, None),
            Err(DerivedTokenError::Format)
        );
    }

    #[test]
    fn holders_can_narrow_but_not_widen() {
        let root = [9u8; 32];
        let t = mint_macaroon(&root, "mc", &claims());
        let narrowed = attenuate(&t, &mc(), "scope read").unwrap();
        assert_eq!(
            verify_macaroon(&narrowed, &mc(), &[root], NOW, None)
                .unwrap()
                .scp,
            vec!["read"]
        );
        let widened = attenuate(&t, &mc(), "scope read admin").unwrap();
        assert_eq!(
            verify_macaroon(&widened, &mc(), &[root], NOW, None)
                .unwrap()
                .scp,
            vec!["read"],
            "cannot add scopes"
        );
        let soon = NOW.plus(Duration::from_secs(60)).to_rfc3339();
        let shorter = attenuate(&t, &mc(), &format!("time-before {soon}")).unwrap();
        assert_eq!(
            verify_macaroon(&shorter, &mc(), &[root], NOW, None)
                .unwrap()
                .exp,
            NOW.secs() + 60
        );
        assert!(verify_macaroon(
            &shorter,
            &mc(),
            &[root],
            NOW.plus(Duration::from_secs(61)),
            None
        )
        .is_err());
        let ip = attenuate(&t, &mc(), "ip 192.168.1.0/24").unwrap();
        assert!(verify_macaroon(
            &ip,
            &mc(),
            &[root],
            NOW,
            Some("192.168.1.10".parse().unwrap())
        )
        .is_ok());
        assert!(
            verify_macaroon(&ip, &mc(), &[root], NOW, Some("10.0.0.1".parse().unwrap())).is_err()
        );
        assert!(verify_macaroon(&ip, &mc(), &[root], NOW, None).is_err());
        let unknown = attenuate(&t, &mc(), "admin true").unwrap();
        assert!(matches!(
            verify_macaroon(&unknown, &mc(), &[root], NOW, None),
            Err(DerivedTokenError::Caveat(_))
        ));
    }

    #[test]
    fn tampered_tokens_fail() {
        let root = [3u8; 32];
        let t = mint_macaroon(&root, "mc", &claims());
        let mut bytes = URL_SAFE_NO_PAD.decode(&t[6..]).unwrap();
        let n = bytes.len();
        bytes[n - 1] ^= 0xff;
        let bad = format!("mc_v1_{}", URL_SAFE_NO_PAD.encode(&bytes));
        assert_eq!(
            verify_macaroon(&bad, &mc(), &[root], NOW, None),
            Err(DerivedTokenError::Signature)
        );
        for g in [
            "mc_v1_",
            "mc_v1_!!!",
            "mc_v1_AAAA",
            &format!("mc_v1_{}", "A".repeat(65536)),
        ] {
            assert!(verify_macaroon(g, &mc(), &[root], NOW, None).is_err());
        }
    }
}
