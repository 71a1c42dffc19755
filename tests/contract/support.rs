//! Test data builders and the case runner.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::json;
use talos::domain::{
    ApiKey, KeyKind, KeyStatus, KeyVisibility, NetworkId, RateLimitPolicy, RevocationReason,
    Timestamp,
};
use talos::ports::KeyStore;
use uuid::Uuid;

pub type Store = Arc<dyn KeyStore>;
pub type CaseFn = fn(Store) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// 2025-06-15T15:06:40Z
pub const T0: Timestamp = Timestamp::from_millis(1_750_000_000_000);
pub const DAY_MS: i64 = 86_400_000;

pub fn t(offset_ms: i64) -> Timestamp {
    Timestamp::from_millis(T0.millis() + offset_ms)
}

pub async fn new_network(s: &Store) -> NetworkId {
    let nid = NetworkId(Uuid::new_v4());
    s.ensure_network(nid, T0).await.expect("ensure_network");
    nid
}

pub fn issued_id() -> String {
    Uuid::new_v4().as_hyphenated().to_string()
}

pub fn imported_id() -> String {
    format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

/// A fully populated issued key (every column non-default).
pub fn issued(nid: NetworkId) -> ApiKey {
    let mut metadata = serde_json::Map::new();
    metadata.insert("team".into(), json!("payments"));
    metadata.insert(
        "nested".into(),
        json!({"a": [1, 2.5, null, true], "ü": "✓"}),
    );
    ApiKey {
        nid,
        kind: KeyKind::Issued,
        key_id: issued_id(),
        name: "ci key — ünïcode".into(),
        token_prefix: Some("talos".into()),
        actor_id: "user-1".into(),
        scopes: vec!["read".into(), "write:all".into()],
        status: KeyStatus::Active,
        metadata,
        last_used_at: None,
        expires_at: Some(t(10 * DAY_MS)),
        created_at: T0,
        updated_at: T0,
        rate_limit: Some(RateLimitPolicy {
            quota: 100,
            window_secs: Some(60),
        }),
        revocation_reason: RevocationReason::Unspecified,
        revocation_description: String::new(),
        allowed_cidrs: vec!["10.0.0.0/8".into(), "2001:db8::/32".into()],
        request_id: None,
        visibility: KeyVisibility::Secret,
    }
}

pub fn imported(nid: NetworkId) -> ApiKey {
    ApiKey {
        kind: KeyKind::Imported,
        key_id: imported_id(),
        token_prefix: None,
        visibility: KeyVisibility::Public,
        ..issued(nid)
    }
}

pub fn key_of(kind: KeyKind, nid: NetworkId) -> ApiKey {
    match kind {
        KeyKind::Issued => issued(nid),
        KeyKind::Imported => imported(nid),
    }
}

pub const KINDS: [KeyKind; 2] = [KeyKind::Issued, KeyKind::Imported];

/// Collects case failures so every case runs and the database is always
/// dropped before the test fails.
pub struct Report {
    backend: &'static str,
    failures: Vec<String>,
    passed: usize,
}

impl Report {
    pub fn new(backend: &'static str) -> Self {
        Report {
            backend,
            failures: Vec::new(),
            passed: 0,
        }
    }

    pub async fn check<F>(&mut self, name: &str, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        match tokio::spawn(fut).await {
            Ok(()) => self.passed += 1,
            Err(e) => {
                let msg = match e.try_into_panic() {
                    Ok(p) => p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "panic".into()),
                    Err(e) => e.to_string(),
                };
                eprintln!("[{}] FAILED {name}: {msg}", self.backend);
                self.failures.push(format!("{name}: {msg}"));
            }
        }
    }

    pub async fn run_cases(&mut self, store: &Store, cases: &[(&'static str, CaseFn)]) {
        for (name, case) in cases {
            self.check(name, case(store.clone())).await;
        }
    }

    pub fn finish(self) {
        eprintln!("[{}] {} contract cases passed", self.backend, self.passed);
        assert!(
            self.failures.is_empty(),
            "{} contract failures on {}:\n  {}",
            self.failures.len(),
            self.backend,
            self.failures.join("\n  ")
        );
    }
}
