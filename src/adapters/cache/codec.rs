//! The Redis representation of a cached key: JSON with short field names and
//! the absolute time the entry stops being valid.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::domain::{
    ApiKey, KeyKind, KeyStatus, KeyVisibility, NetworkId, RateLimitPolicy, RevocationReason,
    Timestamp,
};
use crate::ports::CacheError;

#[derive(Serialize, Deserialize)]
struct Wire {
    v: u8,
    nid: uuid::Uuid,
    imp: bool,
    id: String,
    n: String,
    #[serde(default)]
    p: Option<String>,
    a: String,
    s: Vec<String>,
    st: i32,
    m: Map<String, Value>,
    #[serde(default)]
    lu: Option<i64>,
    #[serde(default)]
    ex: Option<i64>,
    c: i64,
    u: i64,
    #[serde(default)]
    rq: Option<i64>,
    #[serde(default)]
    rw: Option<i64>,
    rr: i32,
    rd: String,
    ip: Vec<String>,
    vis: i32,
    /// Absolute expiry of the cache entry, unix millis.
    until: i64,
}

pub fn encode(k: &ApiKey, until: Timestamp) -> Vec<u8> {
    let w = Wire {
        v: 1,
        nid: k.nid.0,
        imp: k.kind == KeyKind::Imported,
        id: k.key_id.clone(),
        n: k.name.clone(),
        p: k.token_prefix.clone(),
        a: k.actor_id.clone(),
        s: k.scopes.clone(),
        st: k.status.as_i32(),
        m: k.metadata.clone(),
        lu: k.last_used_at.map(Timestamp::millis),
        ex: k.expires_at.map(Timestamp::millis),
        c: k.created_at.millis(),
        u: k.updated_at.millis(),
        rq: k.rate_limit.as_ref().map(|r| r.quota),
        rw: k.rate_limit.as_ref().and_then(|r| r.window_secs),
        rr: k.revocation_reason.as_i32(),
        rd: k.revocation_description.clone(),
        ip: k.allowed_cidrs.clone(),
        vis: k.visibility.as_i32(),
        until: until.millis(),
    };
    serde_json::to_vec(&w).expect("cache entry serializes")
}

/// Decodes an entry; returns the key and the absolute entry expiry.
pub fn decode(bytes: &[u8]) -> Result<(ApiKey, Timestamp), CacheError> {
    let w: Wire = serde_json::from_slice(bytes).map_err(|e| CacheError::Corrupt(e.to_string()))?;
    if w.v != 1 {
        return Err(CacheError::Corrupt(format!(
            "unknown cache entry version {}",
            w.v
        )));
    }
    let bad = |what: &str| CacheError::Corrupt(format!("bad {what}"));
    let key = ApiKey {
        nid: NetworkId(w.nid),
        kind: if w.imp {
            KeyKind::Imported
        } else {
            KeyKind::Issued
        },
        key_id: w.id,
        name: w.n,
        token_prefix: w.p,
        actor_id: w.a,
        scopes: w.s,
        status: KeyStatus::from_i32(w.st).ok_or_else(|| bad("status"))?,
        metadata: w.m,
        last_used_at: w.lu.map(Timestamp::from_millis),
        expires_at: w.ex.map(Timestamp::from_millis),
        created_at: Timestamp::from_millis(w.c),
        updated_at: Timestamp::from_millis(w.u),
        rate_limit: w.rq.map(|quota| RateLimitPolicy {
            quota,
            window_secs: w.rw,
        }),
        revocation_reason: RevocationReason::from_i32(w.rr)
            .ok_or_else(|| bad("revocation reason"))?,
        revocation_description: w.rd,
        allowed_cidrs: w.ip,
        request_id: None,
        visibility: KeyVisibility::from_i32(w.vis).ok_or_else(|| bad("visibility"))?,
    };
    Ok((key, Timestamp::from_millis(w.until)))
}
