//! Forwarding headers (security review F3): believed only as configured,
//! and with `serve.http.trusted_proxies` only from those peers. The test
//! client always connects from 127.0.0.1.

use serde_json::{json, Value};
use talos::adapters::http::Plane;

use crate::TestServer;

/// An issued key usable only from 198.51.100.0/24.
async fn restricted_key(s: &TestServer) -> String {
    let (st, v) = s
        .post(
            "/v2alpha1/admin/issuedApiKeys",
            json!({"name": "f", "actor_id": "u",
                   "ip_restriction": {"allowed_cidrs": ["198.51.100.0/24"]}}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    v["secret"].as_str().unwrap().to_string()
}

async fn verify_with_xff(s: &TestServer, key: &str, xff: &str) -> Value {
    let (_, v) = s
        .verify_cached(
            key,
            &[("x-forwarded-for", xff), ("cache-control", "no-cache")],
        )
        .await;
    v
}

/// A server reading the client IP from X-Forwarded-For, trusting
/// `trusted_proxies` when given.
async fn xff_server(trusted_proxies: Option<&str>) -> TestServer {
    let mut env = vec![(
        "TALOS_SERVE_HTTP_CLIENT_IP_SOURCE",
        "CLIENT_IP_SOURCE_X_FORWARDED_FOR",
    )];
    if let Some(t) = trusted_proxies {
        env.push(("TALOS_SERVE_HTTP_TRUSTED_PROXIES", t));
    }
    TestServer::start(Plane::All, &env).await
}

fn allowed(v: &Value) -> bool {
    match v["is_valid"].as_bool() {
        Some(true) => true,
        _ => {
            assert_eq!(v["error_code"], "VERIFICATION_ERROR_IP_NOT_ALLOWED", "{v}");
            false
        }
    }
}

#[tokio::test]
async fn forwarded_for_is_ignored_by_default() {
    let s = TestServer::start(Plane::All, &[]).await;
    let key = restricted_key(&s).await;
    // The peer (127.0.0.1) counts; the header does not.
    assert!(!allowed(&verify_with_xff(&s, &key, "198.51.100.7").await));
}

#[tokio::test]
async fn without_trusted_proxies_the_leftmost_entry_counts() {
    let s = xff_server(None).await;
    let key = restricted_key(&s).await;
    // Ory Talos's rule: anyone can claim an address (hence the startup warning).
    assert!(allowed(
        &verify_with_xff(&s, &key, "198.51.100.7, 10.0.0.1").await
    ));
    assert!(!allowed(
        &verify_with_xff(&s, &key, "10.0.0.1, 198.51.100.7").await
    ));
}

#[tokio::test]
async fn headers_from_an_untrusted_peer_are_ignored() {
    let s = xff_server(Some("10.0.0.0/8")).await;
    let key = restricted_key(&s).await;
    assert!(!allowed(&verify_with_xff(&s, &key, "198.51.100.7").await));
}

#[tokio::test]
async fn through_a_trusted_proxy_the_rightmost_untrusted_entry_counts() {
    let s = xff_server(Some("127.0.0.1, 10.0.0.0/8")).await;
    let key = restricted_key(&s).await;
    // The client claimed 198.51.100.7; the proxies appended what they saw.
    assert!(!allowed(
        &verify_with_xff(&s, &key, "198.51.100.7, 203.0.113.5, 10.0.0.2").await
    ));
    assert!(allowed(
        &verify_with_xff(&s, &key, "203.0.113.5, 198.51.100.7, 10.0.0.2").await
    ));
}

#[test]
fn a_bad_trusted_proxy_entry_is_a_startup_error() {
    let loaded = talos::app::config::load(
        None,
        vec![
            (
                "TALOS_SECRETS_HMAC_CURRENT".to_string(),
                crate::SECRET.to_string(),
            ),
            ("TALOS_DB_DSN".to_string(), "memory".to_string()),
            (
                "TALOS_CREDENTIALS_ISSUER".to_string(),
                "test-issuer".to_string(),
            ),
            (
                "TALOS_SERVE_HTTP_TRUSTED_PROXIES".to_string(),
                "10.0.0.0/8,proxy.local".to_string(),
            ),
        ],
    )
    .unwrap();
    let mut warnings = Vec::new();
    let e = talos::app::config::resolve(&loaded.raw, &mut warnings).unwrap_err();
    assert!(
        e.contains("serve.http.trusted_proxies") && e.contains("proxy.local"),
        "{e}"
    );
}
