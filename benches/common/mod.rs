//! Helpers shared by the criterion benches: settings, key fixtures, RSS.
#![allow(dead_code)] // each bench uses its own subset

use std::sync::Arc;

use serde_json::{json, Map, Value};
use talos::app::config::{self, Settings};
use talos::domain::keys::generate_v1;
use talos::domain::{
    ApiKey, KeyKind, KeyStatus, KeyVisibility, NetworkId, RevocationReason, Secret, Timestamp,
};
use talos::ports::{Clock, KeyStore, SystemClock};
use uuid::Uuid;

pub const SECRET: &str = "bench-hmac-secret-0123456789abcdef-0123456789";
pub const PREFIX: &str = "ory_ak";

/// Number of keys from `var`, else `default` (`BENCH_QUICK=1` divides by 10).
pub fn key_count(var: &str, default: usize) -> usize {
    let n = std::env::var(var)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default);
    if quick() && std::env::var(var).is_err() {
        (n / 10).max(1000)
    } else {
        n
    }
}

/// A single-threaded tokio runtime for `b.to_async(..)`.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Criterion settings shared by the benches: `measure_secs` per benchmark,
/// or a short run (1 s, 20 samples) with `BENCH_QUICK=1`.
pub fn criterion_config(measure_secs: u64) -> criterion::Criterion {
    let c = criterion::Criterion::default();
    if quick() {
        c.warm_up_time(std::time::Duration::from_millis(300))
            .measurement_time(std::time::Duration::from_secs(1))
            .sample_size(20)
    } else {
        c.warm_up_time(std::time::Duration::from_secs(1))
            .measurement_time(std::time::Duration::from_secs(measure_secs))
    }
}

pub fn quick() -> bool {
    std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Resolved settings from `TALOS_*`-style pairs on top of a bench baseline.
pub fn settings(extra: &[(&str, &str)]) -> Settings {
    let mut env: Vec<(String, String)> = vec![
        ("TALOS_SECRETS_HMAC_CURRENT".into(), SECRET.into()),
        ("TALOS_DB_DSN".into(), "memory".into()),
        ("TALOS_CREDENTIALS_ISSUER".into(), "bench-issuer".into()),
        ("TALOS_LOG_LEVEL".into(), "error".into()),
    ];
    for (k, v) in extra {
        env.retain(|(ek, _)| ek != k);
        env.push((k.to_string(), v.to_string()));
    }
    let loaded = config::load(None, env).expect("bench config loads");
    let mut warnings = loaded.warnings;
    config::resolve(&loaded.raw, &mut warnings).expect("bench config resolves")
}

pub fn now() -> Timestamp {
    SystemClock.now()
}

/// A stored issued key (never expires) and its secret, as `talos` would mint it.
pub fn issued_key(i: usize, now: Timestamp, secret: &Secret) -> (ApiKey, String) {
    let id = Uuid::new_v4();
    let token = generate_v1(PREFIX, id, now.secs(), secret);
    // `BENCH_METADATA=0` seeds keys without metadata (to see its memory share).
    let mut metadata = Map::new();
    if std::env::var("BENCH_METADATA").map_or(true, |v| v != "0") {
        metadata.insert("plan".into(), json!("pro"));
    }
    let key = ApiKey {
        nid: NetworkId::NIL,
        kind: KeyKind::Issued,
        key_id: id.as_hyphenated().to_string(),
        name: "bench".into(),
        token_prefix: Some(PREFIX.into()),
        actor_id: format!("user-{}", i % 1000),
        scopes: vec!["read".into(), "write".into()],
        status: KeyStatus::Active,
        metadata,
        // Already used today: verification does not queue a last-used
        // write-back (the steady state of a busy key).
        last_used_at: Some(now),
        expires_at: None,
        created_at: now,
        updated_at: now,
        rate_limit: None,
        revocation_reason: RevocationReason::Unspecified,
        revocation_description: String::new(),
        allowed_cidrs: Vec::new(),
        request_id: None,
        visibility: KeyVisibility::Secret,
    };
    (key, token)
}

/// Writes `n` issued keys through the store port (`concurrency` writers)
/// and returns their secrets.
pub async fn seed_issued(store: &Arc<dyn KeyStore>, n: usize, concurrency: usize) -> Vec<String> {
    let now = now();
    store
        .ensure_network(NetworkId::NIL, now)
        .await
        .expect("network row");
    let secret = Secret::new(SECRET);
    let mut tokens = Vec::with_capacity(n);
    let mut batch = Vec::with_capacity(concurrency.max(1));
    for i in 0..n {
        let (key, token) = issued_key(i, now, &secret);
        tokens.push(token);
        batch.push(key);
        if batch.len() == concurrency.max(1) || i + 1 == n {
            let futs = batch.iter().map(|k| store.insert(k));
            for r in futures::future::join_all(futs).await {
                r.expect("seed insert");
            }
            batch.clear();
        }
        if n >= 200_000 && (i + 1) % 100_000 == 0 {
            eprintln!("  seeded {} / {n}", i + 1);
        }
    }
    tokens
}

/// Resident set size of this process, in bytes.
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Cheap deterministic index generator (xorshift64*) for picking keys.
pub struct Pick(u64);

impl Pick {
    pub fn new(seed: u64) -> Self {
        Pick(seed | 1)
    }
    pub fn next(&mut self, n: usize) -> usize {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) % n as u64) as usize
    }
}

/// A verify response body as the HTTP layer would send it (for wire benches).
pub fn sample_verify_response() -> Value {
    json!({
        "is_valid": true,
        "key_id": "792b4c1a-1a2d-430b-b733-c789a2b7b1fe",
        "actor_id": "user-7",
        "scopes": ["read", "write"],
        "metadata": {"plan": "pro"},
        "status": "KEY_STATUS_ACTIVE",
        "visibility": "KEY_VISIBILITY_SECRET",
        "issuer": "bench-issuer",
        "error_code": "VERIFICATION_ERROR_UNSPECIFIED",
        "error_message": "",
        "audiences": []
    })
}
