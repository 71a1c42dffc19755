//! Enforced rate limits (memory and Redis backends) and Prometheus metrics.

use serde_json::json;
use talos::adapters::http::Plane;

use crate::TestServer;

async fn issue_limited(s: &TestServer, quota: i64) -> String {
    let (st, v) = s
        .post(
            "/v2alpha1/admin/issuedApiKeys",
            json!({"name": "rl", "actor_id": "u", "rate_limit_policy": {"quota": quota, "window": "60s"}}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    v["secret"].as_str().unwrap().to_string()
}

#[cfg(feature = "rate-limit")]
#[tokio::test]
async fn memory_rate_limit_is_enforced_on_verify() {
    let s = TestServer::start(Plane::All, &[("TALOS_RATE_LIMIT_ENABLED", "true")]).await;
    let key = issue_limited(&s, 3).await;
    for remaining in [2, 1, 0] {
        let r = s
            .client
            .post(s.url("/v2alpha1/admin/apiKeys:verify"))
            .json(&json!({"credential": key}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["ratelimit-policy"], "\"default\";q=3;w=60");
        assert_eq!(
            r.headers()["ratelimit"].to_str().unwrap(),
            format!("\"default\";r={remaining}")
        );
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["is_valid"], true);
        assert_eq!(v["rate_limit_remaining"], remaining.to_string());
        assert!(v["rate_limit_reset_time"].is_string());
    }
    let r = s
        .client
        .post(s.url("/v2alpha1/admin/apiKeys:verify"))
        .json(&json!({"credential": key}))
        .send()
        .await
        .unwrap();
    assert!(r.headers().contains_key("retry-after"));
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["is_valid"], false);
    assert_eq!(v["error_code"], "VERIFICATION_ERROR_RATE_LIMITED");
    assert_eq!(v["error_message"], "rate limit exceeded");
    // Other keys are unaffected: each key has its own cell.
    let other = issue_limited(&s, 3).await;
    assert_eq!(s.verify(&other).await["is_valid"], true);
}

#[tokio::test]
async fn policies_are_metadata_only_when_disabled() {
    let s = TestServer::start(Plane::All, &[]).await;
    let key = issue_limited(&s, 1).await;
    for _ in 0..3 {
        let v = s.verify(&key).await;
        assert_eq!(v["is_valid"], true);
        assert_eq!(v["rate_limit_policy"]["quota"], "1");
        assert!(v.get("rate_limit_remaining").is_none());
    }
}

#[cfg(feature = "cache-redis")]
#[tokio::test]
async fn redis_rate_limit_is_shared_by_all_instances() {
    let addr = crate::services::redis_url();
    crate::services::require_redis(&addr).await;
    let dir = tempfile::tempdir().unwrap();
    let dsn = format!("sqlite://{}", dir.path().join("shared.db").display());
    let redis_cfg = format!(r#"{{"addrs":["{addr}"]}}"#);
    let env = [
        ("TALOS_DB_DSN", dsn.as_str()),
        ("TALOS_RATE_LIMIT_ENABLED", "true"),
        ("TALOS_RATE_LIMIT_BACKEND", "redis"),
        ("TALOS_CACHE_REDIS", redis_cfg.as_str()),
    ];
    let a = TestServer::start(Plane::All, &env).await;
    let b = TestServer::start(Plane::All, &env).await;
    let key = issue_limited(&a, 5).await;
    let mut admitted = 0;
    for i in 0..12 {
        let s = if i % 2 == 0 { &a } else { &b };
        if s.verify(&key).await["is_valid"] == true {
            admitted += 1;
        }
    }
    assert_eq!(
        admitted, 5,
        "two instances together admit exactly the quota"
    );
}

#[cfg(feature = "metrics")]
#[tokio::test]
async fn prometheus_metrics_on_the_ops_listener() {
    let s = TestServer::start(Plane::All, &[]).await;
    let (id, secret) = s.issue("m", "u").await;
    s.verify(&secret).await;
    s.verify("nope").await;
    s.post(
        &format!("/v2alpha1/admin/issuedApiKeys/{id}:revoke"),
        json!({"reason": "REVOCATION_REASON_KEY_COMPROMISE"}),
    )
    .await;
    let text = s
        .client
        .get(format!("{}/metrics/prometheus", s.ops))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "http_requests_total{method=\"POST\",code=\"200\",endpoint=\"/v2alpha1/admin/apiKeys:verify\"} 2",
        "talos_verifications_total{credential_type=\"issued\",result=\"success\"} 1",
        "talos_verifications_total{credential_type=\"imported\",result=\"failure\"} 1",
        "talos_api_keys_created_total{label=\"issued\"} 1",
        "talos_api_keys_revoked_total{label=\"REVOCATION_REASON_KEY_COMPROMISE\"} 1",
        "http_request_duration_seconds_bucket",
        "http_requests_in_flight",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert!(!text.contains(&id), "metrics never carry key ids");
    // Not on the API listener.
    let r = s
        .client
        .get(s.url("/metrics/prometheus"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
