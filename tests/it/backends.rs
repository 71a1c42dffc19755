//! The full API over HTTP on each SQL backend, chosen by the DSN alone:
//! PostgreSQL and MariaDB here (SQLite is every other test's default).

use serde_json::json;
use talos::adapters::http::Plane;

use crate::TestServer;

/// Issue, verify, list with paging, update, rotate, revoke, import, batch
/// verify, self-revoke and delete, as a user would with curl.
async fn full_api(dsn: &str) {
    let s = TestServer::start(Plane::All, &[("TALOS_DB_DSN", dsn)]).await;
    let mut secrets = Vec::new();
    for i in 0..5 {
        secrets.push(s.issue(&format!("k{i}"), "backend-user").await);
    }
    let (id, secret) = secrets[0].clone();
    assert_eq!(s.verify(&secret).await["is_valid"], true);

    // Two pages of 3 + 2.
    let (st, p1) = s
        .get("/v2alpha1/admin/issuedApiKeys?page_size=3&filter=actor_id%3D%22backend-user%22")
        .await;
    assert_eq!(st, 200, "{p1}");
    assert_eq!(p1["issued_api_keys"].as_array().unwrap().len(), 3);
    let token = p1["next_page_token"].as_str().unwrap();
    let (_, p2) = s
        .get(&format!(
            "/v2alpha1/admin/issuedApiKeys?page_size=3&filter=actor_id%3D%22backend-user%22&page_token={token}"
        ))
        .await;
    assert_eq!(p2["issued_api_keys"].as_array().unwrap().len(), 2, "{p2}");

    let (st, v) = s
        .patch(
            &format!("/v2alpha1/admin/issuedApiKeys/{id}?update_mask=name"),
            json!({"name": "renamed"}),
        )
        .await;
    assert_eq!((st, v["name"].as_str()), (200, Some("renamed")), "{v}");

    let (st, rot) = s
        .post(
            &format!("/v2alpha1/admin/issuedApiKeys/{id}:rotate"),
            json!({}),
        )
        .await;
    assert_eq!(st, 200, "{rot}");
    assert_eq!(
        s.verify(&secret).await["error_code"],
        "VERIFICATION_ERROR_REVOKED"
    );
    let new_secret = rot["secret"].as_str().unwrap().to_string();
    assert_eq!(s.verify(&new_secret).await["is_valid"], true);

    let (id1, secret1) = secrets[1].clone();
    let (st, _) = s
        .post(
            &format!("/v2alpha1/admin/issuedApiKeys/{id1}:revoke"),
            json!({}),
        )
        .await;
    assert_eq!(st, 200);
    let (st, _) = s
        .post(
            &format!("/v2alpha1/admin/issuedApiKeys/{id1}:revoke"),
            json!({}),
        )
        .await;
    assert_eq!(st, 409, "a second revoke conflicts");
    assert_eq!(
        s.verify(&secret1).await["error_code"],
        "VERIFICATION_ERROR_REVOKED"
    );

    let (st, imp) = s
        .post(
            "/v2alpha1/admin/importedApiKeys",
            json!({"raw_key": "sk_backend_raw_1", "name": "legacy", "actor_id": "backend-user"}),
        )
        .await;
    assert_eq!(st, 200, "{imp}");
    let imported_id = imp["key_id"].as_str().unwrap().to_string();
    let (st, batch) = s
        .post(
            "/v2alpha1/admin/apiKeys:batchVerify",
            json!({"requests": [
                {"credential": "sk_backend_raw_1"},
                {"credential": secrets[2].1},
                {"credential": "nope"}
            ]}),
        )
        .await;
    assert_eq!(st, 200, "{batch}");
    let valid: Vec<bool> = batch["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["is_valid"].as_bool().unwrap())
        .collect();
    assert_eq!(valid, vec![true, true, false]);

    let (st, _) = s
        .post(
            "/v2alpha1/apiKeys:selfRevoke",
            json!({"credential": secrets[3].1}),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        s.verify(&secrets[3].1).await["error_code"],
        "VERIFICATION_ERROR_REVOKED"
    );

    let (st, _) = s
        .delete(&format!("/v2alpha1/admin/importedApiKeys/{imported_id}"))
        .await;
    assert_eq!(st, 200);
    assert_eq!(s.verify("sk_backend_raw_1").await["is_valid"], false);
    s.stop().await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn full_api_on_postgres() {
    let db = crate::services::pg::FreshDb::create().await;
    full_api(&db.url).await;
    db.drop_now().await;
}

#[cfg(feature = "mysql")]
#[tokio::test]
async fn full_api_on_mariadb() {
    let db = crate::services::mysql::FreshDb::create().await;
    full_api(&db.url).await;
    db.drop_now().await;
}
