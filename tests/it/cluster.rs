//! Two real `talos serve` processes sharing PostgreSQL and Redis, as a
//! platform team would run them: a key revoked through one instance stops
//! verifying on the other within a second, and a rate-limit policy holds
//! across both instances together.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::binary::{sigterm, spawn, stderr_of, wait_ready, Proc};
use crate::services::{self, pg::FreshDb};

async fn post(base: &str, path: &str, body: Value) -> (u16, Value, Option<String>) {
    let r = crate::post_raw(base, path, body).await;
    let status = r.status().as_u16();
    let cache = r
        .headers()
        .get("ory-talos-cache")
        .map(|v| v.to_str().unwrap().to_string());
    (status, r.json().await.unwrap(), cache)
}

fn stop(p: Proc) {
    sigterm(&p.child);
    let (status, err) = stderr_of(p);
    assert!(status.success(), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_revocations_and_rate_limits() {
    let redis = services::redis_url();
    services::require_redis(&redis).await;
    let db = FreshDb::create().await;
    let redis_cfg = format!(r#"{{"addrs":["{redis}"],"timeout":"500ms"}}"#);
    let env = [
        ("TALOS_DB_DSN", db.url.as_str()),
        ("TALOS_CACHE_TYPE", "redis"),
        ("TALOS_CACHE_ENABLED", "true"),
        ("TALOS_CACHE_REDIS", redis_cfg.as_str()),
        ("TALOS_RATE_LIMIT_ENABLED", "true"),
        ("TALOS_RATE_LIMIT_BACKEND", "redis"),
        // Nobody drains the servers' stderr pipes during the test.
        ("TALOS_LOG_LEVEL", "warn"),
    ];
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = spawn(dir_a.path(), &env);
    wait_ready(&a).await;
    let b = spawn(dir_b.path(), &env);
    wait_ready(&b).await;

    // Revocation on A reaches B's memory tier within a second.
    let (st, v, _) = post(
        &a.base,
        "/v2alpha1/admin/issuedApiKeys",
        json!({"name": "shared", "actor_id": "u"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let id = v["issued_api_key"]["key_id"].as_str().unwrap().to_string();
    let key = v["secret"].as_str().unwrap().to_string();
    // Let both instances' Redis subscriptions come up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let verify = |base: String, key: String| async move {
        post(
            &base,
            "/v2alpha1/admin/apiKeys:verify",
            json!({"credential": key}),
        )
        .await
    };
    verify(b.base.clone(), key.clone()).await;
    let (_, v, cache) = verify(b.base.clone(), key.clone()).await;
    assert_eq!(
        (v["is_valid"].as_bool(), cache.as_deref()),
        (Some(true), Some("HIT"))
    );
    let (st, _, _) = post(
        &a.base,
        &format!("/v2alpha1/admin/issuedApiKeys/{id}:revoke"),
        json!({}),
    )
    .await;
    assert_eq!(st, 200);
    let start = Instant::now();
    loop {
        let (_, v, _) = verify(b.base.clone(), key.clone()).await;
        if v["error_code"] == "VERIFICATION_ERROR_REVOKED" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "instance B still accepts a key revoked on A after 1 s: {v}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A 5-per-window policy admits 5 verifications across both instances.
    // (A long window keeps the test independent of machine speed.)
    let (st, v, _) = post(
        &a.base,
        "/v2alpha1/admin/issuedApiKeys",
        json!({"name": "limited", "actor_id": "u",
               "rate_limit_policy": {"quota": 5, "window": "30s"}}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let limited = v["secret"].as_str().unwrap().to_string();
    let mut outcomes = Vec::new();
    for i in 0..8 {
        let base = if i % 2 == 0 { &a.base } else { &b.base };
        let (_, v, _) = verify(base.clone(), limited.clone()).await;
        outcomes.push(v["error_code"].as_str().unwrap_or("").to_string());
    }
    let admitted = outcomes
        .iter()
        .filter(|c| c.is_empty() || *c == "VERIFICATION_ERROR_UNSPECIFIED")
        .count();
    assert_eq!(admitted, 5, "{outcomes:?}");
    assert_eq!(
        outcomes[5], "VERIFICATION_ERROR_RATE_LIMITED",
        "{outcomes:?}"
    );

    stop(a);
    stop(b);
    db.drop_now().await;
}
