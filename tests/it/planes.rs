//! Planes expose exactly their routes; health, headers, OpenAPI.

use serde_json::json;
use talos::adapters::http::Plane;

use crate::{assert_error, TestServer};

#[tokio::test]
async fn each_plane_serves_only_its_routes() {
    let admin = TestServer::start(Plane::Admin, &[]).await;
    let (st, _) = admin
        .post(
            "/v2alpha1/admin/issuedApiKeys",
            json!({"name": "t", "actor_id": "u1", "scopes": ["read"]}),
        )
        .await;
    assert_eq!(st, 200);
    let (st, e) = admin
        .post(
            "/v2alpha1/apiKeys:selfRevoke",
            json!({"credential": "talos_invalid_credential"}),
        )
        .await;
    assert_error(st, &e, 404, "NOT_FOUND", "NOT_FOUND");

    let public = TestServer::start(Plane::Public, &[]).await;
    for (method, path) in [
        ("POST", "/v2alpha1/admin/issuedApiKeys"),
        ("GET", "/v2alpha1/admin/issuedApiKeys"),
        ("POST", "/v2alpha1/admin/apiKeys:verify"),
        ("POST", "/v2alpha1/admin/importedApiKeys:batchCreate"),
        ("GET", "/v2alpha1/admin/derivedKeys/jwks.json"),
    ] {
        let r = public
            .client
            .request(method.parse().unwrap(), public.url(path))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        let (st, e) = crate::split(r).await;
        assert_error(st, &e, 404, "NOT_FOUND", "NOT_FOUND");
    }
    let (st, e) = public
        .post(
            "/v2alpha1/apiKeys:selfRevoke",
            json!({"credential": "talos_invalid_credential"}),
        )
        .await;
    assert_error(st, &e, 404, "NOT_FOUND", "API_KEY_NOT_FOUND");

    for s in [&admin, &public] {
        for base in [&s.base, &s.ops] {
            let r = s
                .client
                .get(format!("{base}/health/alive"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(
                r.json::<serde_json::Value>().await.unwrap(),
                json!({"status": "ok"})
            );
            let r = s
                .client
                .get(format!("{base}/health/ready"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    }
}

#[tokio::test]
async fn headers_request_id_and_cache_status() {
    let s = TestServer::start(Plane::All, &[]).await;
    let r = s
        .client
        .get(s.url("/health/alive"))
        .header("x-request-id", "my-request-id")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "my-request-id");
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(
        r.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
    assert_eq!(
        r.headers()["referrer-policy"],
        "strict-origin-when-cross-origin"
    );
    assert!(!r.headers()["content-security-policy"].is_empty());
    let long = "x".repeat(129);
    let r = s
        .client
        .get(s.url("/health/alive"))
        .header("x-request-id", &long)
        .send()
        .await
        .unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap();
    assert_ne!(id, long);
    assert!(uuid::Uuid::parse_str(id).is_ok());

    let (_, secret) = s.issue("a", "u").await;
    let r = s
        .client
        .post(s.url("/v2alpha1/admin/apiKeys:verify"))
        .json(&json!({"credential": secret}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["ory-talos-cache"],
        "SKIP",
        "cache disabled by default"
    );
    let r = s.client.get(s.url("/nope")).send().await.unwrap();
    let (st, e) = crate::split(r).await;
    assert_error(st, &e, 404, "NOT_FOUND", "NOT_FOUND");
    let r = s
        .client
        .put(s.url("/v2alpha1/admin/issuedApiKeys"))
        .send()
        .await
        .unwrap();
    let (st, e) = crate::split(r).await;
    assert_error(st, &e, 405, "UNIMPLEMENTED", "METHOD_NOT_ALLOWED");
}

#[tokio::test]
async fn openapi_is_served_committed_and_routed() {
    let s = TestServer::start(Plane::All, &[]).await;
    let (st, doc) = s.get("/openapi.json").await;
    assert_eq!(st, 200);
    let committed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json"))
            .expect("openapi.json is committed"),
    )
    .unwrap();
    assert_eq!(
        doc, committed,
        "openapi.json is stale: run `cargo run -- openapi > openapi.json`"
    );
    // Every documented operation is routed (the answer is never the router's 404/405).
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let concrete = path
                .replace("{key_id}", "00000000-0000-4000-8000-000000000000")
                .replace(
                    "{issued_api_key.key_id}",
                    "00000000-0000-4000-8000-000000000000",
                )
                .replace("{imported_api_key.key_id}", &"a".repeat(64));
            let r = s
                .client
                .request(method.to_uppercase().parse().unwrap(), s.url(&concrete))
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            let st = r.status().as_u16();
            let (_, body) = crate::split(r).await;
            let router_miss =
                st == 405 || (st == 404 && body["error"]["details"][0]["reason"] == "NOT_FOUND");
            assert!(
                !router_miss,
                "{method} {path} is documented but not routed: {st} {body}"
            );
        }
    }
    let r = s.client.get(s.url("/docs")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("/openapi.json"));
    assert!(
        !html.contains("https://"),
        "the docs page loads nothing from outside"
    );
}
