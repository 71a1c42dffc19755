//! Multi-tenancy by hostname: tenants never see each other's keys.

use serde_json::{json, Value};
use talos::adapters::http::Plane;

use crate::{assert_error, TestServer};

const A: &str = "11111111-1111-4111-8111-111111111111";
const B: &str = "22222222-2222-4222-8222-222222222222";

async fn call(s: &TestServer, host: &str, method: &str, path: &str, body: Value) -> (u16, Value) {
    let r = s
        .client
        .request(method.parse().unwrap(), s.url(path))
        .header("host", host)
        .json(&body)
        .send()
        .await
        .unwrap();
    crate::split(r).await
}

#[tokio::test]
async fn tenants_are_isolated_by_hostname() {
    let networks = format!(
        r#"[{{"hostname":"a.example.com","id":"{A}","config_path":"unused"}},{{"hostname":"B.Example.com.","id":"{B}","config_path":"unused"}}]"#
    );
    let s = TestServer::start(
        Plane::All,
        &[
            ("TALOS_MULTITENANCY_ENABLED", "true"),
            ("TALOS_MULTITENANCY_NETWORKS", &networks),
        ],
    )
    .await;

    let (st, v) = call(
        &s,
        "a.example.com:4420",
        "POST",
        "/v2alpha1/admin/issuedApiKeys",
        json!({"name": "a", "actor_id": "u"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let id = v["issued_api_key"]["key_id"].as_str().unwrap().to_string();
    let secret = v["secret"].as_str().unwrap().to_string();

    let verify = |host: &'static str, cred: String| {
        let s = &s;
        async move {
            call(
                s,
                host,
                "POST",
                "/v2alpha1/admin/apiKeys:verify",
                json!({"credential": cred}),
            )
            .await
            .1
        }
    };
    assert_eq!(
        verify("a.example.com", secret.clone()).await["is_valid"],
        true
    );
    assert_eq!(
        verify("b.example.com", secret.clone()).await["error_code"],
        "VERIFICATION_ERROR_NOT_FOUND"
    );

    let (st, e) = call(
        &s,
        "b.example.com",
        "GET",
        &format!("/v2alpha1/admin/issuedApiKeys/{id}"),
        json!({}),
    )
    .await;
    assert_error(st, &e, 404, "NOT_FOUND", "API_KEY_NOT_FOUND");
    let (_, l) = call(
        &s,
        "b.example.com",
        "GET",
        "/v2alpha1/admin/issuedApiKeys",
        json!({}),
    )
    .await;
    assert_eq!(l["issued_api_keys"], json!([]));
    let (st, _) = call(
        &s,
        "b.example.com",
        "POST",
        &format!("/v2alpha1/admin/issuedApiKeys/{id}:revoke"),
        json!({}),
    )
    .await;
    assert_eq!(st, 404);
    let (st, _) = call(
        &s,
        "b.example.com",
        "PATCH",
        &format!("/v2alpha1/admin/issuedApiKeys/{id}"),
        json!({"name": "pwned"}),
    )
    .await;
    assert_eq!(st, 404);
    let (st, _) = call(
        &s,
        "b.example.com",
        "POST",
        "/v2alpha1/apiKeys:selfRevoke",
        json!({"credential": secret}),
    )
    .await;
    assert_eq!(st, 404);
    assert_eq!(
        verify("a.example.com", secret.clone()).await["is_valid"],
        true,
        "B could not touch A's key"
    );

    // The same raw key imported in both tenants gets different ids.
    let (_, ka) = call(
        &s,
        "a.example.com",
        "POST",
        "/v2alpha1/admin/importedApiKeys",
        json!({"raw_key": "shared-key-material", "name": "a", "actor_id": "u"}),
    )
    .await;
    let (_, kb) = call(
        &s,
        "b.example.com",
        "POST",
        "/v2alpha1/admin/importedApiKeys",
        json!({"raw_key": "shared-key-material", "name": "b", "actor_id": "u"}),
    )
    .await;
    assert_eq!(ka["key_id"].as_str().unwrap().len(), 64);
    assert_ne!(ka["key_id"], kb["key_id"]);
    let (st, _) = call(
        &s,
        "b.example.com",
        "DELETE",
        &format!(
            "/v2alpha1/admin/importedApiKeys/{}",
            ka["key_id"].as_str().unwrap()
        ),
        json!({}),
    )
    .await;
    assert_eq!(st, 404);

    // Page tokens are bound to the tenant.
    for i in 0..3 {
        call(
            &s,
            "a.example.com",
            "POST",
            "/v2alpha1/admin/issuedApiKeys",
            json!({"name": format!("k{i}"), "actor_id": "u"}),
        )
        .await;
    }
    let (_, page) = call(
        &s,
        "a.example.com",
        "GET",
        "/v2alpha1/admin/issuedApiKeys?page_size=1",
        json!({}),
    )
    .await;
    let tok = page["next_page_token"].as_str().unwrap();
    let (st, e) = call(
        &s,
        "b.example.com",
        "GET",
        &format!("/v2alpha1/admin/issuedApiKeys?page_size=1&page_token={tok}"),
        json!({}),
    )
    .await;
    assert_error(st, &e, 400, "INVALID_ARGUMENT", "BAD_REQUEST");

    // Unknown hosts are refused.
    let (st, e) = call(
        &s,
        "c.example.com",
        "GET",
        "/v2alpha1/admin/issuedApiKeys",
        json!({}),
    )
    .await;
    assert_error(st, &e, 404, "NOT_FOUND", "NOT_FOUND");
    assert_eq!(e["error"]["message"], "network not found");
}
