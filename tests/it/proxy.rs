//! The edge proxy end to end against a real upstream server.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use talos::adapters::http::Plane;
use talos::adapters::proxy::{self, Proxy, ProxyOptions};
use tokio::net::TcpListener;

use crate::TestServer;

struct RunningProxy {
    base: String,
    ops: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start_proxy(upstream: &str, allowed_hosts: Vec<String>) -> (RunningProxy, Arc<Proxy>) {
    let p = Proxy::new(ProxyOptions {
        upstream: upstream.to_string(),
        cache_ttl: Duration::from_secs(60),
        cache_max_bytes: 10 * 1024 * 1024,
        trust_x_forwarded_host: false,
        allowed_hosts,
        upstream_timeout: Duration::from_secs(5),
    })
    .unwrap();
    let main = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ops = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", main.local_addr().unwrap());
    let ops_base = format!("http://{}", ops.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (tx2, rx2) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let _ = rx.await;
        let _ = tx2.send(true);
    });
    let w1 = {
        let mut rx = rx2.clone();
        async move {
            let _ = rx.wait_for(|v| *v).await;
        }
    };
    let w2 = {
        let mut rx = rx2;
        async move {
            let _ = rx.wait_for(|v| *v).await;
        }
    };
    tokio::spawn(talos::adapters::http::server::serve(
        main,
        proxy::service(p.clone()),
        w1,
    ));
    tokio::spawn(talos::adapters::http::server::serve(
        ops,
        proxy::ops_router(p.clone()),
        w2,
    ));
    (
        RunningProxy {
            base,
            ops: ops_base,
            _stop: tx,
        },
        p,
    )
}

async fn pverify(
    c: &reqwest::Client,
    base: &str,
    cred: &str,
    headers: &[(&str, &str)],
) -> (u16, String, serde_json::Value) {
    let mut r = c
        .post(format!("{base}/v2alpha1/admin/apiKeys:verify"))
        .json(&json!({ "credential": cred }));
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let r = r.send().await.unwrap();
    let st = r.status().as_u16();
    let cache = r
        .headers()
        .get("ory-talos-cache")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (st, cache, r.json().await.unwrap_or(serde_json::Value::Null))
}

#[tokio::test]
async fn proxy_caches_valid_results_and_forwards_the_rest() {
    let up = TestServer::start(Plane::All, &[]).await;
    let (p, handle) = start_proxy(&up.base, vec![]).await;
    let c = reqwest::Client::new();

    // Non-verify traffic is forwarded unchanged (issue through the proxy).
    let r = c
        .post(format!("{}/v2alpha1/admin/issuedApiKeys", p.base))
        .json(&json!({"name": "p", "actor_id": "u"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    let id = v["issued_api_key"]["key_id"].as_str().unwrap().to_string();
    let secret = v["secret"].as_str().unwrap().to_string();

    let (st, cache, v) = pverify(&c, &p.base, &secret, &[]).await;
    assert_eq!(
        (st, cache.as_str(), v["is_valid"].as_bool()),
        (200, "MISS", Some(true))
    );
    let (_, cache, v) = pverify(&c, &p.base, &secret, &[]).await;
    assert_eq!(
        (cache.as_str(), v["is_valid"].as_bool()),
        ("HIT", Some(true))
    );
    assert!(handle.cached_entries() <= 1);

    // Invalid results are never cached.
    for _ in 0..2 {
        let (_, cache, v) = pverify(&c, &p.base, "not-a-key", &[]).await;
        assert_eq!(cache, "MISS");
        assert_eq!(v["error_code"], "VERIFICATION_ERROR_NOT_FOUND");
    }

    // Revoked upstream: the proxy keeps serving its cached answer until the
    // TTL, unless the caller asks for a fresh one.
    up.post(
        &format!("/v2alpha1/admin/issuedApiKeys/{id}:revoke"),
        json!({}),
    )
    .await;
    let (_, cache, _) = pverify(&c, &p.base, &secret, &[]).await;
    assert_eq!(cache, "HIT");
    let (_, cache, v) = pverify(&c, &p.base, &secret, &[("cache-control", "no-cache")]).await;
    assert_eq!(cache, "MISS");
    assert_eq!(v["error_code"], "VERIFICATION_ERROR_REVOKED");

    // Upstream errors pass through with their envelope.
    let r = c
        .get(format!(
            "{}/v2alpha1/admin/issuedApiKeys/not-a-uuid",
            p.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!(e["error"]["details"][0]["reason"], "API_KEY_NOT_FOUND");

    // Oversized bodies are refused locally.
    let big = "x".repeat(2 * 1024 * 1024);
    let r = c
        .post(format!("{}/v2alpha1/admin/apiKeys:verify", p.base))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    // Health and metrics on the internal listener only.
    assert_eq!(
        c.get(format!("{}/health/ready", p.ops))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let m = c
        .get(format!("{}/metrics", p.ops))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("talos_proxy_cache_hits_total 2"), "{m}");
    assert!(m.contains("talos_proxy_cache_misses_total"), "{m}");
    assert!(
        m.contains("talos_proxy_upstream_requests_total{status=\"200\"}"),
        "{m}"
    );
    assert!(m.contains("talos_proxy_upstream_latency_seconds"), "{m}");
    assert!(m.contains("talos_proxy_request_duration_seconds"), "{m}");

    // Upstream gone: 502 in the envelope, readiness fails.
    drop(up);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (st, _, e) = pverify(&c, &p.base, "another-key", &[]).await;
    assert_eq!(st, 502, "{e}");
    assert_eq!(e["error"]["code"], 502);
    assert_eq!(
        c.get(format!("{}/health/ready", p.ops))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
}

#[tokio::test]
async fn proxy_host_allow_list() {
    let up = TestServer::start(Plane::All, &[]).await;
    let (p, _) = start_proxy(&up.base, vec!["api.example.com".into()]).await;
    let c = reqwest::Client::new();
    let r = c
        .post(format!("{}/v2alpha1/admin/apiKeys:verify", p.base))
        .json(&json!({"credential": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = c
        .post(format!("{}/v2alpha1/admin/apiKeys:verify", p.base))
        .header("host", "API.example.com:8080")
        .json(&json!({"credential": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// A cached answer looks like the upstream answer it came from: same body,
/// same headers (JSON, `Cache-Control: no-store`, the security headers),
/// except the cache status and the per-response ones.
#[tokio::test]
async fn proxy_hits_carry_the_upstream_answers_headers() {
    let up = TestServer::start(Plane::All, &[]).await;
    let (p, _) = start_proxy(&up.base, vec![]).await;
    let c = reqwest::Client::new();
    let (_, v) = up
        .post(
            "/v2alpha1/admin/issuedApiKeys",
            json!({"name": "h", "actor_id": "u"}),
        )
        .await;
    let secret = v["secret"].as_str().unwrap().to_string();
    let send = || {
        c.post(format!("{}/v2alpha1/admin/apiKeys:verify", p.base))
            .json(&json!({ "credential": secret }))
            .send()
    };
    let comparable = |r: &reqwest::Response| {
        let mut h: Vec<(String, String)> = r
            .headers()
            .iter()
            .filter(|(n, _)| {
                !matches!(
                    n.as_str(),
                    "ory-talos-cache" | "date" | "content-length" | "x-request-id"
                )
            })
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        h.sort();
        h
    };
    let miss = send().await.unwrap();
    assert_eq!(miss.headers()["ory-talos-cache"], "MISS");
    let miss_headers = comparable(&miss);
    let miss_body = miss.text().await.unwrap();
    let hit = send().await.unwrap();
    assert_eq!(hit.headers()["ory-talos-cache"], "HIT");
    let hit_headers = comparable(&hit);
    assert_eq!(hit.text().await.unwrap(), miss_body);
    assert_eq!(hit_headers, miss_headers);
    for (name, value) in [
        ("content-type", "application/json"),
        ("cache-control", "no-store"),
        ("x-content-type-options", "nosniff"),
    ] {
        assert!(
            hit_headers.contains(&(name.to_string(), value.to_string())),
            "{name}: {hit_headers:?}"
        );
    }

    // Credentials with escapes in their JSON are keyed by their value: the
    // same key spelled with an escape is the same entry.
    let escaped = format!(
        r#"{{"credential":"{}\u005f{}"}}"#,
        &secret[..secret.find('_').unwrap()],
        &secret[secret.find('_').unwrap() + 1..]
    );
    let r = c
        .post(format!("{}/v2alpha1/admin/apiKeys:verify", p.base))
        .header("content-type", "application/json")
        .body(escaped)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["ory-talos-cache"], "HIT");
}

/// A client that sends headers and then stalls mid-body gets an answer in
/// the error envelope once the body read timeout passes, not a held
/// connection.
#[tokio::test]
async fn proxy_answers_a_stalled_body() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = TestServer::start(Plane::All, &[]).await;
    let (p, _) = start_proxy(&up.base, vec![]).await;
    let addr = p.base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        b"POST /v2alpha1/admin/apiKeys:verify HTTP/1.1\r\nhost: localhost\r\n\
          content-type: application/json\r\ncontent-length: 100\r\n\r\n{\"credential\":",
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        let mut chunk = [0u8; 1024];
        loop {
            let n = s.read(&mut chunk).await.unwrap();
            buf.extend_from_slice(&chunk[..n]);
            if n == 0 || buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.ends_with(b"}") {
                break;
            }
        }
    })
    .await
    .expect("the proxy answers a stalled body within its read timeout");
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("request body read timed out"), "{text}");
}
