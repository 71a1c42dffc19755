//! Fault injection: the database goes away under a running server (a TCP
//! proxy between them is cut), then comes back. Cached keys keep verifying,
//! misses answer a clear error within the configured timeouts, readiness
//! reports the outage, and the server recovers without a restart.

use std::time::{Duration, Instant};

use serde_json::json;
use talos::adapters::http::Plane;

use crate::services::pg::FreshDb;
use crate::services::{Cut, CutProxy};
use crate::TestServer;

async fn ready(s: &TestServer) -> u16 {
    s.client
        .get(format!("{}/health/ready", s.ops))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Bound for any single request during the outage: the configured 1 s
/// connect/acquire timeouts plus generous slack for a loaded CI machine.
/// This guards against hangs; it is not a performance assertion.
const HANG: Duration = Duration::from_secs(10);

async fn outage_and_recovery(how: Cut) {
    let db = FreshDb::create().await;
    let proxy = CutProxy::start("127.0.0.1:5432").await;
    let dsn = db.url.replace("127.0.0.1:5432", &proxy.addr());
    let s = TestServer::start(
        Plane::All,
        &[
            ("TALOS_DB_DSN", &dsn),
            ("TALOS_DB_CONNECT_TIMEOUT", "1s"),
            ("TALOS_DB_ACQUIRE_TIMEOUT", "1s"),
            ("TALOS_DB_STATEMENT_TIMEOUT", "2s"),
            ("TALOS_CACHE_TYPE", "memory"),
            ("TALOS_CACHE_ENABLED", "true"),
        ],
    )
    .await;
    assert_eq!(ready(&s).await, 200);
    let (_, cached) = s.issue("cached", "u").await;
    let (_, uncached) = s.issue("uncached", "u").await;
    s.verify_cached(&cached, &[]).await;
    assert_eq!(s.verify_cached(&cached, &[]).await.0, "HIT");

    // A key revoked before the outage: it must never come back as valid.
    let (revoked_id, revoked) = s.issue("revoked", "u").await;
    s.verify_cached(&revoked, &[]).await;
    let (st, _) = s
        .post(
            &format!("/v2alpha1/admin/issuedApiKeys/{revoked_id}:revoke"),
            json!({}),
        )
        .await;
    assert_eq!(st, 200);

    proxy.cut(how);

    // Under concurrent load during the outage: no hung request, no wrong
    // answer (cached stays valid, uncached is INTERNAL, revoked never valid).
    let mut load = Vec::new();
    for worker in 0..8 {
        let client = s.client.clone();
        let base = s.base.clone();
        let keys = [cached.clone(), uncached.clone(), revoked.clone()];
        load.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            for i in 0..6 {
                let which = (worker + i) % 3;
                let t = Instant::now();
                let v: serde_json::Value = client
                    .post(format!("{base}/v2alpha1/admin/apiKeys:verify"))
                    .json(&json!({ "credential": keys[which] }))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                answers.push((which, v, t.elapsed()));
            }
            answers
        }));
    }
    for task in load {
        for (which, v, took) in task.await.unwrap() {
            assert!(took < HANG, "a verify hung for {took:?}");
            match which {
                0 => assert_eq!(v["is_valid"], true, "cached key: {v}"),
                1 => assert_eq!(
                    v["error_code"], "VERIFICATION_ERROR_INTERNAL",
                    "uncached: {v}"
                ),
                _ => assert_eq!(v["is_valid"], false, "revoked key reported valid: {v}"),
            }
        }
    }

    // A cached key keeps verifying with the database gone.
    let t = Instant::now();
    let (cache, v) = s.verify_cached(&cached, &[]).await;
    assert_eq!(
        (cache.as_str(), v["is_valid"].as_bool()),
        ("HIT", Some(true)),
        "{v}"
    );
    assert!(t.elapsed() < HANG);

    // A miss gets a clear internal error, not a hang and not "not found".
    let t = Instant::now();
    let (_, v) = s.verify_cached(&uncached, &[]).await;
    assert_eq!(v["is_valid"], false, "{v}");
    assert_eq!(v["error_code"], "VERIFICATION_ERROR_INTERNAL", "{v}");
    assert!(t.elapsed() < HANG, "verify took {:?}", t.elapsed());

    // Writes fail with 503/504 in the error envelope.
    let t = Instant::now();
    let (st, body) = s
        .post(
            "/v2alpha1/admin/issuedApiKeys",
            json!({"name": "during-outage", "actor_id": "u"}),
        )
        .await;
    assert!(st == 503 || st == 504, "{st} {body}");
    assert_eq!(body["error"]["code"], st, "{body}");
    assert!(t.elapsed() < HANG, "issue took {:?}", t.elapsed());

    assert_eq!(ready(&s).await, 503, "readiness reports the outage");

    proxy.restore();
    let t = Instant::now();
    while ready(&s).await != 200 {
        assert!(t.elapsed() < Duration::from_secs(30), "no recovery");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, v) = s.verify_cached(&uncached, &[]).await;
    assert_eq!(v["is_valid"], true, "recovered without a restart: {v}");
    let (st, body) = s
        .post(
            "/v2alpha1/admin/issuedApiKeys",
            json!({"name": "after", "actor_id": "u"}),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    // Nothing half-written: the failed issue left no row.
    let (st, list) = s.get("/v2alpha1/admin/issuedApiKeys?page_size=50").await;
    assert_eq!(st, 200);
    let names: Vec<&str> = list["issued_api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert!(!names.contains(&"during-outage"), "{names:?}");
    assert_eq!(names.len(), 4, "{names:?}");
    s.stop().await;
    db.drop_now().await;
}

#[tokio::test]
async fn database_refusing_connections() {
    outage_and_recovery(Cut::Refuse).await;
}

#[tokio::test]
async fn database_black_holed() {
    outage_and_recovery(Cut::Blackhole).await;
}
