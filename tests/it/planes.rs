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

/// A web page in a browser that can reach the admin plane must not be able
/// to write to it: cross-origin POSTs (which browsers mark with `Origin`)
/// are refused unless `serve.http.cors` allows the origin. Servers and curl
/// send no `Origin` and are unaffected.
#[tokio::test]
async fn cross_origin_writes_are_refused_unless_allowed() {
    let s = TestServer::start(Plane::All, &[]).await;
    let body = r#"{"raw_key":"sk_csrf_attempt","name":"x","actor_id":"u"}"#;
    let r = s
        .client
        .post(s.url("/v2alpha1/admin/importedApiKeys"))
        .header("origin", "https://evil.example")
        .header("content-type", "text/plain")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["status"], "PERMISSION_DENIED", "{v}");
    assert_eq!(
        s.verify("sk_csrf_attempt").await["is_valid"],
        false,
        "nothing was imported"
    );
    // Same origin (e.g. a page served by the API host itself) and requests
    // without Origin still work.
    let host = s.base.trim_start_matches("http://").to_string();
    let r = s
        .client
        .post(s.url("/v2alpha1/admin/apiKeys:verify"))
        .header("origin", format!("http://{host}"))
        .body(r#"{"credential":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (st, _) = s
        .post(
            "/v2alpha1/admin/importedApiKeys",
            serde_json::from_str(body).unwrap(),
        )
        .await;
    assert_eq!(st, 200);
    s.stop().await;

    // An origin allowed by CORS may write.
    let s = TestServer::start(
        Plane::All,
        &[
            ("TALOS_SERVE_HTTP_CORS_ENABLED", "true"),
            (
                "TALOS_SERVE_HTTP_CORS_ALLOWED_ORIGINS",
                "https://console.example",
            ),
        ],
    )
    .await;
    let r = s
        .client
        .post(s.url("/v2alpha1/admin/issuedApiKeys"))
        .header("origin", "https://console.example")
        .body(r#"{"name":"n","actor_id":"u"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    s.stop().await;
}

/// A client that sends headers and then stalls its body is cut off: it
/// cannot hold a connection (or a graceful shutdown) open indefinitely.
#[tokio::test]
async fn stalled_request_bodies_time_out() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start(Plane::All, &[]).await;
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
    sock.write_all(
        format!(
            "POST /v2alpha1/admin/apiKeys:verify HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"cred"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        sock.read_to_end(&mut buf),
    )
    .await;
    assert!(
        read.is_ok(),
        "the server kept a stalled upload open for 30 s"
    );
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 4"), "{text}");
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(5),
        "cut off too early"
    );
    s.stop().await;
}
