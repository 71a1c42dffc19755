//! The Redis representation of a cached key: JSON with short field names and
//! the absolute time the entry stops being valid. Version 2 holds exactly a
//! [`KeyView`] (the metadata embedded as raw JSON); an entry of any other
//! version is reported as corrupt, which callers treat as a miss.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::domain::view::{KeyView, KeyViewParts};
use crate::domain::{KeyKind, KeyStatus, KeyVisibility, NetworkId, RateLimitPolicy, Timestamp};
use crate::ports::CacheError;

const VERSION: u8 = 2;

#[derive(Serialize, Deserialize)]
struct Wire<'a> {
    v: u8,
    nid: uuid::Uuid,
    imp: bool,
    #[serde(borrow)]
    id: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    a: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    s: Vec<std::borrow::Cow<'a, str>>,
    st: i32,
    #[serde(borrow)]
    m: &'a RawValue,
    #[serde(default)]
    ex: Option<i64>,
    #[serde(default)]
    rq: Option<i64>,
    #[serde(default)]
    rw: Option<i64>,
    #[serde(borrow)]
    ip: Vec<std::borrow::Cow<'a, str>>,
    vis: i32,
    /// Absolute expiry of the cache entry, unix millis.
    until: i64,
}

pub fn encode(k: &KeyView, until: Timestamp) -> Vec<u8> {
    let m: &RawValue = serde_json::from_str(k.metadata_json())
        .unwrap_or_else(|_| serde_json::from_str("{}").expect("valid JSON"));
    let w = Wire {
        v: VERSION,
        nid: k.nid.0,
        imp: k.kind == KeyKind::Imported,
        id: k.key_id().into(),
        a: k.actor_id().into(),
        s: k.scopes().map(Into::into).collect(),
        st: k.status.as_i32(),
        m,
        ex: k.expires_at.map(Timestamp::millis),
        rq: k.rate_limit.as_ref().map(|r| r.quota),
        rw: k.rate_limit.as_ref().and_then(|r| r.window_secs),
        ip: k.allowed_cidrs().map(Into::into).collect(),
        vis: k.visibility.as_i32(),
        until: until.millis(),
    };
    serde_json::to_vec(&w).expect("cache entry serializes")
}

/// Decodes an entry; returns the view and the absolute entry expiry.
pub fn decode(bytes: &[u8]) -> Result<(KeyView, Timestamp), CacheError> {
    #[derive(Deserialize)]
    struct Version {
        v: u8,
    }
    let unknown_version = |v: u8| CacheError::Corrupt(format!("unknown cache entry version {v}"));
    // One parse on the normal path; an entry of another version usually
    // fails to decode as this one, so its version is read only then.
    let w: Wire = match serde_json::from_slice(bytes) {
        Ok(w) => w,
        Err(e) => {
            return Err(match serde_json::from_slice::<Version>(bytes) {
                Ok(v) if v.v != VERSION => unknown_version(v.v),
                _ => CacheError::Corrupt(e.to_string()),
            })
        }
    };
    if w.v != VERSION {
        return Err(unknown_version(w.v));
    }
    let bad = |what: &str| CacheError::Corrupt(format!("bad {what}"));
    if !w.m.get().trim_start().starts_with('{') {
        return Err(bad("metadata"));
    }
    let view = KeyView::new(KeyViewParts {
        nid: NetworkId(w.nid),
        kind: if w.imp {
            KeyKind::Imported
        } else {
            KeyKind::Issued
        },
        status: KeyStatus::from_i32(w.st).ok_or_else(|| bad("status"))?,
        visibility: KeyVisibility::from_i32(w.vis).ok_or_else(|| bad("visibility"))?,
        expires_at: w.ex.map(Timestamp::from_millis),
        rate_limit: w.rq.map(|quota| RateLimitPolicy {
            quota,
            window_secs: w.rw,
        }),
        key_id: &w.id,
        actor_id: &w.a,
        metadata_json: w.m.get(),
        scopes: &w.s,
        allowed_cidrs: &w.ip,
    });
    Ok((view, Timestamp::from_millis(w.until)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use uuid::Uuid;

    use super::*;
    use crate::domain::ApiKey;

    fn view() -> KeyView {
        let k = ApiKey {
            nid: NetworkId(Uuid::from_u128(9)),
            kind: KeyKind::Imported,
            key_id: "ab".repeat(32),
            name: "n".into(),
            token_prefix: None,
            actor_id: "user \"1\"".into(),
            scopes: vec!["a".into(), "b:c".into()],
            status: KeyStatus::Active,
            metadata: json!({"plan": "pro", "x": {"y": [1, null]}})
                .as_object()
                .cloned()
                .unwrap(),
            last_used_at: None,
            expires_at: Some(Timestamp(5_000)),
            created_at: Timestamp(1),
            updated_at: Timestamp(1),
            rate_limit: Some(RateLimitPolicy {
                quota: 3,
                window_secs: None,
            }),
            revocation_reason: Default::default(),
            revocation_description: String::new(),
            allowed_cidrs: vec!["192.168.0.0/16".into()],
            request_id: None,
            visibility: KeyVisibility::Secret,
        };
        KeyView::of(&k)
    }

    #[test]
    fn round_trip() {
        let v = view();
        let (back, until) = decode(&encode(&v, Timestamp(77))).unwrap();
        assert_eq!(back, v);
        assert_eq!(until, Timestamp(77));
    }

    #[test]
    fn rejects_other_versions_and_garbage() {
        let mut w: serde_json::Value =
            serde_json::from_slice(&encode(&view(), Timestamp(1))).unwrap();
        w["v"] = json!(1);
        let e = decode(&serde_json::to_vec(&w).unwrap()).unwrap_err();
        assert!(e.to_string().contains("version 1"), "{e}");
        w["v"] = json!(2);
        w["m"] = json!([1]);
        assert!(decode(&serde_json::to_vec(&w).unwrap()).is_err());
        w["m"] = json!({});
        w["st"] = json!(99);
        assert!(decode(&serde_json::to_vec(&w).unwrap()).is_err());
        assert!(decode(b"not json").is_err());
    }
}
