//! The fuzz targets' bodies, one module per target (`fuzz_targets/<name>.rs`
//! only hands libFuzzer's input to `<name>::check`). The same file is
//! compiled into the main crate's `tests/prop` (`fuzz_corpus`), which
//! replays every committed seed in `fuzz/corpus/<name>/` through these
//! checks on each `cargo test`, without cargo-fuzz.
//!
//! Each module's doc says how it reads its input and what it asserts.

pub mod credential_route {
    //! Credential routing (spec §6.4): JWT → macaroon → issued v1 → imported.
    //!
    //! Input: UTF-8 text. If it contains a newline, the part before the first
    //! newline is a comma-separated list of macaroon prefixes and the rest is
    //! the credential; otherwise the prefixes are `["mc"]`.
    //!
    //! Invariants: `route` never panics and agrees with the documented order.

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

    pub fn check(data: &[u8]) {
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
    }
}

pub mod v1_key {
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

    use talos::domain::keys::{
        generate_v1, imported_key_id, is_imported_key_id, is_valid_prefix, parse_v1, verify_v1,
    };
    use talos::domain::{NetworkId, Secret};

    /// The secret the seed corpus keys were minted with.
    const SECRET: &str = "fuzz-hmac-secret-0123456789abcdef0123456789";
    const OTHER: &str = "fuzz-hmac-other--0123456789abcdef0123456789";

    pub fn check(data: &[u8]) {
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
    }
}

pub mod filter {
    //! The AIP-160 list filter subset (spec §7.7).
    //!
    //! Input: UTF-8 text. The whole input is parsed as one filter; if it
    //! contains a newline, the two halves around the first newline are also
    //! parsed and compared.
    //!
    //! Invariants:
    //! * parsing never panics;
    //! * an accepted filter printed back in canonical AIP-160 syntax parses to
    //!   the same filter (parse → encode → parse round-trips);
    //! * a status term is never accepted without an actor_id term;
    //! * `canonical()` (which binds page tokens to filters) is injective:
    //!   two filters have the same canonical form only if they are equal.

    use talos::domain::ListFilter;

    fn encode(f: &ListFilter) -> String {
        let mut terms = Vec::new();
        if let Some(a) = &f.actor_id {
            terms.push(format!("actor_id=\"{a}\""));
        }
        if let Some(s) = f.status {
            terms.push(format!("status={}", s.as_str()));
        }
        terms.join(" AND ")
    }

    fn check_one(input: &str) -> Option<ListFilter> {
        let f = ListFilter::parse(input).ok()?;
        assert!(
            f.status.is_none() || f.actor_id.is_some(),
            "status without actor_id accepted: {input:?}"
        );
        if let Some(a) = &f.actor_id {
            assert!(!a.contains('"') && !a.chars().any(char::is_control));
        }
        let text = encode(&f);
        let back = ListFilter::parse(&text)
            .unwrap_or_else(|e| panic!("re-encoded filter {text:?} (from {input:?}) fails: {e}"));
        assert_eq!(back, f, "round trip through {text:?}");
        assert_eq!(back.canonical(), f.canonical());
        Some(f)
    }

    pub fn check(data: &[u8]) {
        let Ok(s) = std::str::from_utf8(data) else {
            return;
        };
        check_one(s);
        if let Some((a, b)) = s.split_once('\n') {
            if let (Some(fa), Some(fb)) = (check_one(a), check_one(b)) {
                assert_eq!(
                    fa == fb,
                    fa.canonical() == fb.canonical(),
                    "canonical form is not injective: {fa:?} vs {fb:?}"
                );
            }
        }
    }
}

pub mod page_token {
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

    use std::time::Duration;

    use talos::domain::page_token::{
        open, seal, PageTokenBinding, PageTokenError, PAGE_TOKEN_MAX_AGE,
    };
    use talos::domain::{KeyKind, KeyStatus, ListFilter, NetworkId, Secret, Timestamp};

    const NOW: Timestamp = Timestamp(1_750_000_000_000);
    const MAX_TOKEN_LEN: usize = 1024;
    const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    pub fn check(data: &[u8]) {
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
    }
}

pub mod macaroon {
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

    use std::net::{IpAddr, Ipv4Addr};

    use base64::Engine as _;
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

    pub fn check(data: &[u8]) {
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
    }
}

pub mod wire_json {
    //! Request JSON decoding: the protojson request types of
    //! `adapters::http::wire`, through the handlers' own `parse_body`, and the
    //! conversions the handlers apply next (ttl, rate-limit policy, update
    //! bodies with their `{"issued_api_key": {…}}` wrapper).
    //!
    //! Input: arbitrary bytes, offered as the body of every request type.
    //!
    //! Invariants:
    //! * decoding never panics (on any bytes, any nesting, any numbers);
    //! * every value that can be printed back (int64 strings, timestamps, enum
    //!   names, rate-limit policies, IP restrictions, key resources) decodes
    //!   from its own output to the same value: decode → encode → decode;
    //! * an accepted ttl / window re-printed as a protobuf duration parses to
    //!   the same duration;
    //! * the Debug output of requests carrying a secret (import's `raw_key`,
    //!   derive's `credential`) does not depend on that secret.

    use bytes::Bytes;
    use serde::de::DeserializeOwned;
    use serde::Serialize;
    use serde_json::Value;
    use talos::adapters::http::handlers::parse_body;
    use talos::adapters::http::wire::*;
    use talos::domain::duration::{format_proto_duration, parse_ttl, parse_window_secs};

    /// decode → encode → decode gives the same JSON.
    fn round_trip<T: Serialize + DeserializeOwned>(v: &T) {
        let first = serde_json::to_value(v).expect("serializes");
        let back: T = serde_json::from_value(first.clone())
            .unwrap_or_else(|e| panic!("own output {first} does not decode: {e}"));
        assert_eq!(serde_json::to_value(&back).expect("serializes"), first);
    }

    fn check_ttl(t: &Option<String>) {
        if let Some(t) = t {
            if let Ok(d) = parse_ttl(t) {
                let printed = format_proto_duration(d);
                assert_eq!(parse_ttl(&printed), Ok(d), "ttl {t:?} → {printed:?}");
            }
        }
    }

    fn check_policy(p: &RateLimitPolicyWire) {
        round_trip(p);
        if let Ok(input) = p.to_input() {
            if let Some(w) = input.window_secs {
                assert!(w >= 0);
                let printed = format_proto_duration(std::time::Duration::from_secs(w as u64));
                assert_eq!(parse_window_secs(&printed), Ok(w));
            }
        }
    }

    fn check_common(
        ttl: &Option<String>,
        policy: &Option<RateLimitPolicyWire>,
        ip: &Option<IpRestriction>,
        vis: &Option<talos::domain::KeyVisibility>,
    ) {
        check_ttl(ttl);
        if let Some(p) = policy {
            check_policy(p);
        }
        if let Some(r) = ip {
            round_trip(r);
        }
        if let Some(v) = vis {
            round_trip(v);
        }
    }

    pub fn check(data: &[u8]) {
        let body = Bytes::copy_from_slice(data);

        if let Ok(r) = parse_body::<IssueApiKeyRequest>(&body) {
            check_common(
                &r.ttl,
                &r.rate_limit_policy,
                &r.ip_restriction,
                &r.visibility,
            );
        }
        if let Ok(r) = parse_body::<ImportApiKeyRequest>(&body) {
            check_common(
                &r.ttl,
                &r.rate_limit_policy,
                &r.ip_restriction,
                &r.visibility,
            );
            // Debug output does not depend on the raw key (it never shows).
            let mut other = r.clone();
            other.raw_key = format!("{}x", r.raw_key);
            assert_eq!(format!("{r:?}"), format!("{other:?}"));
        }
        if let Ok(r) = parse_body::<BatchCreateImportedApiKeysRequest>(&body) {
            for item in r.requests.into_iter().filter(|v| !v.is_null()) {
                if let Ok(i) = serde_json::from_value::<ImportApiKeyRequest>(item) {
                    check_common(
                        &i.ttl,
                        &i.rate_limit_policy,
                        &i.ip_restriction,
                        &i.visibility,
                    );
                }
            }
        }
        if let Ok(mut v) = parse_body::<Value>(&body) {
            // The update handlers' unwrapping of {"issued_api_key": {...}}.
            for wrapper in ["issued_api_key", "imported_api_key"] {
                let mut v = v.clone();
                if let Value::Object(map) = &mut v {
                    if map.len() == 1 {
                        if let Some(inner @ Value::Object(_)) = map.remove(wrapper) {
                            v = inner;
                        }
                    }
                }
                if let Ok(b) = serde_json::from_value::<UpdateApiKeyBody>(v) {
                    if let Some(Some(p)) = &b.rate_limit_policy {
                        check_policy(p);
                    }
                    if let Some(Some(r)) = &b.ip_restriction {
                        round_trip(r);
                    }
                }
            }
            // Resources and scalars decode from their own output.
            if let Ok(k) = serde_json::from_value::<IssuedApiKey>(v.clone()) {
                round_trip(&k);
            }
            if let Ok(k) = serde_json::from_value::<ImportedApiKey>(v.clone()) {
                round_trip(&k);
            }
            if let Value::Object(map) = &mut v {
                for (_, field) in map.iter() {
                    if let Ok(i) = serde_json::from_value::<Int64>(field.clone()) {
                        round_trip(&i);
                    }
                    if let Ok(t) = serde_json::from_value::<Time>(field.clone()) {
                        round_trip(&t);
                    }
                    if let Ok(s) = serde_json::from_value::<talos::domain::KeyStatus>(field.clone())
                    {
                        round_trip(&s);
                    }
                    if let Ok(r) =
                        serde_json::from_value::<talos::domain::RevocationReason>(field.clone())
                    {
                        round_trip(&r);
                    }
                    if let Some(s) = field.as_str() {
                        check_ttl(&Some(s.to_string()));
                    }
                }
            }
        }
        if let Ok(r) = parse_body::<AdminRotateIssuedApiKeyBody>(&body) {
            check_common(
                &None,
                &r.rate_limit_policy,
                &r.ip_restriction,
                &r.visibility,
            );
        }
        if let Ok(r) = parse_body::<AdminRevokeApiKeyBody>(&body) {
            round_trip(&r.reason);
        }
        let _ = parse_body::<VerifyApiKeyRequest>(&body);
        let _ = parse_body::<BatchVerifyApiKeysRequest>(&body);
        if let Ok(r) = parse_body::<SelfRevokeApiKeyRequest>(&body) {
            round_trip(&r.reason);
        }
        if let Ok(r) = parse_body::<DeriveTokenRequest>(&body) {
            check_ttl(&r.ttl);
            round_trip(&r.algorithm);
            let mut other = r.clone();
            other.credential = format!("{}x", r.credential);
            assert_eq!(
                format!("{r:?}"),
                format!("{other:?}"),
                "credential in Debug"
            );
        }
    }
}
