//! Macaroons: the V2 binary decoder (`domain::macaroon`) and the token
//! layer around it (`domain::derived`: `<prefix>_v1_<base64url(V2)>`,
//! holder caveats `time-before`, `scope`, `ip`).
//!
//! Input: arbitrary bytes, used three ways:
//! 1. decoded as a V2 macaroon: decode → encode → decode round-trips, and
//!    a decoded macaroon's signature never checks under a key it was not
//!    minted with;
//! 2. wrapped as a token (`mc_v1_<base64url(input)>`) and verified: never
//!    panics and never verifies (nobody minted it);
//! 3. split on newlines into holder caveats appended to a genuine token:
//!    verification never panics, and attenuation only narrows — scopes are
//!    a subset and the expiry is not later than the original's, every other
//!    claim is unchanged; the attenuated token decodes with the caveats in
//!    order and its signature still chains from the root key.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use serde_json::Map;
use talos::domain::derived::{attenuate, mint_macaroon, verify_macaroon, DerivedClaims};
use talos::domain::macaroon::Macaroon;
use talos::domain::Timestamp;

const ROOT: [u8; 32] = [7; 32];
const OTHER: [u8; 32] = [8; 32];
const NOW: Timestamp = Timestamp(1_750_000_000_000);

fn claims() -> DerivedClaims {
    DerivedClaims {
        jti: "0b5b6f7e-5f0c-4a59-9a43-1d1f8f2f6a10".into(),
        sub: "792b4c1a-1a2d-430b-b733-c789a2b7b1fe".into(),
        iss: "https://issuer.example".into(),
        iat: NOW.secs(),
        nbf: NOW.secs(),
        exp: NOW.secs() + 3600,
        tty: Some("derived".into()),
        akid: "792b4c1a-1a2d-430b-b733-c789a2b7b1fe".into(),
        pid: String::new(),
        oid: "user-1".into(),
        scp: vec!["read".into(), "write".into(), "admin".into()],
        meta: Map::new(),
        nid: "00000000-0000-0000-0000-000000000000".into(),
        acl: vec![],
        vis: "KEY_VISIBILITY_SECRET".into(),
        aud: vec![],
        custom: Map::new(),
    }
}

fuzz_target!(|data: &[u8]| {
    let prefixes = vec!["mc".to_string()];
    let ip = Some(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)));

    // 1. The binary decoder.
    if let Ok(m) = Macaroon::decode_v2(data) {
        let bytes = m.encode_v2();
        let back = Macaroon::decode_v2(&bytes).expect("an encoded macaroon decodes");
        assert_eq!(back, m, "decode → encode → decode");
        assert_eq!(back.encode_v2(), bytes, "encoding is canonical");
        if m.verify_signature(&ROOT) {
            assert!(!m.verify_signature(&OTHER));
        }
    }

    // 2. As a presented token.
    let token = format!(
        "mc_v1_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
    );
    assert!(verify_macaroon(&token, &prefixes, &[ROOT], NOW, ip).is_err());

    // 3. Holder caveats on a genuine token.
    let original = claims();
    let mut token = mint_macaroon(&ROOT, "mc", &original);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let caveats: Vec<&str> = text.split('\n').take(8).collect();
    for c in &caveats {
        token = attenuate(&token, &prefixes, c).expect("a genuine token attenuates");
    }
    let body = token.strip_prefix("mc_v1_").expect("prefix kept");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(body)
        .expect("base64url");
    if let Ok(m) = Macaroon::decode_v2(&raw) {
        assert!(m.verify_signature(&ROOT), "attenuation keeps the chain");
        assert!(!m.verify_signature(&OTHER));
        assert_eq!(m.caveats.len(), caveats.len() + 1);
        for (got, want) in m.caveats[1..].iter().zip(&caveats) {
            assert_eq!(got.as_slice(), want.as_bytes());
        }
    }
    assert!(verify_macaroon(&token, &prefixes, &[OTHER], NOW, ip).is_err());
    if let Ok(c) = verify_macaroon(&token, &prefixes, &[OTHER, ROOT], NOW, ip) {
        assert!(
            c.scp.iter().all(|s| original.scp.contains(s)),
            "scopes widened"
        );
        assert!(c.exp <= original.exp, "expiry extended");
        let mut same = c.clone();
        same.scp = original.scp.clone();
        same.exp = original.exp;
        assert_eq!(same, original, "a caveat changed another claim");
    }
});
