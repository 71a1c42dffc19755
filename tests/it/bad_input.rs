//! Bad input gets the spec's status and error envelope, and nothing is written.

use serde_json::json;
use talos::adapters::http::Plane;

use crate::{assert_error, TestServer};

async fn count_issued(s: &TestServer) -> usize {
    let (_, v) = s.get("/v2alpha1/admin/issuedApiKeys?page_size=1000").await;
    v["issued_api_keys"].as_array().unwrap().len()
}

#[tokio::test]
async fn malformed_requests_are_rejected_without_writes() {
    let s = TestServer::start(Plane::All, &[]).await;
    let cases: Vec<(&str, String)> = vec![
        ("malformed JSON", "{\"name\": ".into()),
        ("not an object", "[1,2]".into()),
        ("unknown field", json!({"name": "n", "actor_id": "u", "surprise": true}).to_string()),
        ("wrong type", json!({"name": 5, "actor_id": "u"}).to_string()),
        ("missing name", json!({"actor_id": "u"}).to_string()),
        ("missing actor", json!({"name": "n"}).to_string()),
        ("ttl over max", json!({"name": "n", "actor_id": "u", "ttl": "9000h"}).to_string()),
        ("ttl garbage", json!({"name": "n", "actor_id": "u", "ttl": "soon"}).to_string()),
        ("bad enum", json!({"name": "n", "actor_id": "u", "visibility": "KEY_VISIBILITY_NOPE"}).to_string()),
        ("bad cidr", json!({"name": "n", "actor_id": "u", "ip_restriction": {"allowed_cidrs": ["300.1.1.1/8"]}}).to_string()),
        ("bad quota", json!({"name": "n", "actor_id": "u", "rate_limit_policy": {"quota": 0}}).to_string()),
        ("fractional window", json!({"name": "n", "actor_id": "u", "rate_limit_policy": {"quota": 1, "window": "1.5s"}}).to_string()),
        ("long request id", json!({"name": "n", "actor_id": "u", "request_id": "x".repeat(37)}).to_string()),
        ("metadata too big", json!({"name": "n", "actor_id": "u", "metadata": {"blob": "x".repeat(70_000)}}).to_string()),
    ];
    for (what, body) in cases {
        let (st, e) = s.post_raw("/v2alpha1/admin/issuedApiKeys", &body).await;
        assert_eq!(st, 400, "{what}: {e}");
        assert_error(st, &e, 400, "INVALID_ARGUMENT", "BAD_REQUEST");
    }
    let (st, e) = s
        .post_raw(
            "/v2alpha1/admin/issuedApiKeys",
            &json!({"name": "n", "actor_id": "u", "ttl": "9000h"}).to_string(),
        )
        .await;
    assert_eq!(st, 400);
    assert_eq!(
        e["error"]["message"],
        "ttl exceeds the configured maximum of 8760h0m0s"
    );
    assert_eq!(count_issued(&s).await, 0, "nothing was written");

    // Oversized body: 413 in the envelope.
    let huge = format!("{{\"name\":\"{}\"}}", "x".repeat(9 * 1024 * 1024));
    let (st, e) = s.post_raw("/v2alpha1/admin/issuedApiKeys", &huge).await;
    assert_error(st, &e, 413, "RESOURCE_EXHAUSTED", "PAYLOAD_TOO_LARGE");

    // Unknown ids and bad masks.
    let (st, e) = s
        .get("/v2alpha1/admin/issuedApiKeys/00000000-0000-4000-8000-000000000000")
        .await;
    assert_error(st, &e, 404, "NOT_FOUND", "API_KEY_NOT_FOUND");
    assert_eq!(e["error"]["message"], "API key not found");
    let (st, e) = s.get("/v2alpha1/admin/issuedApiKeys/not-a-uuid").await;
    assert_error(st, &e, 404, "NOT_FOUND", "API_KEY_NOT_FOUND");
    let (id, _) = s.issue("a", "u").await;
    let (st, e) = s
        .patch(
            &format!("/v2alpha1/admin/issuedApiKeys/{id}?update_mask=actor_id"),
            json!({"actor_id": "evil"}),
        )
        .await;
    assert_error(st, &e, 400, "INVALID_ARGUMENT", "BAD_REQUEST");
    let (_, g) = s.get(&format!("/v2alpha1/admin/issuedApiKeys/{id}")).await;
    assert_eq!(g["actor_id"], "u");
    let (st, e) = s
        .post(
            &format!("/v2alpha1/admin/issuedApiKeys/{id}:explode"),
            json!({}),
        )
        .await;
    assert_error(st, &e, 404, "NOT_FOUND", "NOT_FOUND");
    let (st, e) = s
        .post(
            "/v2alpha1/admin/issuedApiKeys/00000000-0000-4000-8000-000000000000:revoke",
            json!({}),
        )
        .await;
    assert_error(st, &e, 404, "NOT_FOUND", "API_KEY_NOT_FOUND");
    let (st, e) = s
        .post(
            "/v2alpha1/admin/apiKeys:batchVerify",
            json!({"requests": (0..101).map(|_| json!({"credential": "x"})).collect::<Vec<_>>()}),
        )
        .await;
    assert_error(st, &e, 400, "INVALID_ARGUMENT", "BAD_REQUEST");
    let (st, e) = s
        .post_raw("/v2alpha1/admin/apiKeys:verify", "{not json")
        .await;
    assert_error(st, &e, 400, "INVALID_ARGUMENT", "BAD_REQUEST");
}

#[tokio::test]
async fn hostile_credentials_verify_as_invalid_never_5xx() {
    let s = TestServer::start(Plane::All, &[]).await;
    let big_nul = "\0".repeat(64 * 1024);
    let mc_big = format!("mc_v1_{}", "A".repeat(64 * 1024));
    let creds: Vec<&str> = vec![
        "not-a-valid-key", "short", "ory_at1_!!!invalid!!!", "invalid.jwt", "talos_\0_secret", &big_nul, "☃☃☃",
        "valid\nX-Injected-Header: evil", "valid\r\nX-Injected: evil", "   ", "talos_", "mc_v1_", "not.a.jwt",
        "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ0ZXN0In0.fakesig", "\u{feff}test_v1_abc", "\u{202e}abc", "...", &mc_big,
        "eyJhbGciOiJub25lIn0", "eyJhbGciOiJFZERTQSJ9.garbage",
        "test_v1_QixobFgVufjZNuoYXKtn78NAqFVroyN518nRaK3WD3nxTNufzwJq9sjdrDMrcyP2_Dyb7mnt6XNKTHEN4sViJTpmF6N5UxjRDRHfbMr7NYtai",
    ];
    for c in creds {
        let (st, v) = s
            .post("/v2alpha1/admin/apiKeys:verify", json!({"credential": c}))
            .await;
        assert_eq!(st, 200, "{c:?} → {v}");
        assert_eq!(v["is_valid"], false, "{c:?}");
        assert_ne!(v["error_code"], "VERIFICATION_ERROR_UNSPECIFIED");
        assert_ne!(
            v["error_code"], "VERIFICATION_ERROR_INTERNAL",
            "{c:?} → {v}"
        );
    }
    let (_, v) = s
        .post("/v2alpha1/admin/apiKeys:verify", json!({"credential": ""}))
        .await;
    assert_eq!(v["error_code"], "VERIFICATION_ERROR_INVALID_FORMAT");
}
