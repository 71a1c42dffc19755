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
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
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

fuzz_target!(|data: &[u8]| {
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
                if let Ok(s) = serde_json::from_value::<talos::domain::KeyStatus>(field.clone()) {
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
});
