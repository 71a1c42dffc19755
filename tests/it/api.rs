//! Every operation end to end, as a user would drive it with curl.

use serde_json::json;
use talos::adapters::http::Plane;

use crate::{assert_error, TestServer};

#[tokio::test]
async fn issue_verify_update_rotate_revoke_lifecycle() {
    let s = TestServer::start(Plane::All, &[]).await;
    let (st, v) = s
        .post(
            "/v2alpha1/admin/issuedApiKeys",
            json!({"name": "ci", "actor_id": "user-1", "scopes": ["read", "write"], "ttl": "24h",
                   "metadata": {"team": "a"}, "rate_limit_policy": {"quota": 100, "window": "60s"}}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let key = &v["issued_api_key"];
    let key_id = key["key_id"].as_str().unwrap().to_string();
    let secret = v["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("test_v1_"), "{secret}");
    assert_eq!(key["status"], "KEY_STATUS_ACTIVE");
    assert_eq!(key["visibility"], "KEY_VISIBILITY_SECRET");
    assert_eq!(
        key["rate_limit_policy"]["quota"], "100",
        "int64 is a JSON string"
    );
    assert_eq!(key["rate_limit_policy"]["window"], "60s");
    assert!(key["expire_time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(key["metadata"]["team"], "a");

    // Verify: valid, with the key's facts.
    let r = s.verify(&secret).await;
    assert_eq!(r["is_valid"], true, "{r}");
    assert_eq!(r["key_id"], key_id.as_str());
    assert_eq!(r["actor_id"], "user-1");
    assert_eq!(r["scopes"], json!(["read", "write"]));
    assert_eq!(r["issuer"], "test-issuer");
    assert_eq!(r["error_code"], "VERIFICATION_ERROR_UNSPECIFIED");

    // A flipped checksum character is "not found", never a different answer.
    let mut forged = secret.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let r = s.verify(&forged).await;
    assert_eq!(r["is_valid"], false);
    assert_eq!(r["error_code"], "VERIFICATION_ERROR_NOT_FOUND");
    assert_eq!(r["key_id"], "", "failures reveal nothing about the key");

    // Get never returns the secret.
    let (st, g) = s
        .get(&format!("/v2alpha1/admin/issuedApiKeys/{key_id}"))
        .await;
    assert_eq!(st, 200);
    assert!(!g.to_string().contains(&secret));
    assert_eq!(g["name"], "ci");

    // Update with a mask: only masked fields change; a masked field absent from the body clears.
    let (st, u) = s
        .patch(
            &format!("/v2alpha1/admin/issuedApiKeys/{key_id}?update_mask=name,metadata"),
            json!({"name": "renamed", "scopes": ["ignored"]}),
        )
        .await;
    assert_eq!(st, 200, "{u}");
    assert_eq!(u["name"], "renamed");
    assert_eq!(u["scopes"], json!(["read", "write"]));
    assert_eq!(u["metadata"], json!({}));
    // Without a mask, present fields apply; the wrapped docs form is accepted.
    let (st, u) = s
        .patch(
            &format!("/v2alpha1/admin/issuedApiKeys/{key_id}"),
            json!({"issued_api_key": {"scopes": ["read"], "ip_restriction": {"allowed_cidrs": ["127.0.0.1"]}}}),
        )
        .await;
    assert_eq!(st, 200, "{u}");
    assert_eq!(u["name"], "renamed");
    assert_eq!(u["scopes"], json!(["read"]));
    assert_eq!(
        u["ip_restriction"]["allowed_cidrs"],
        json!(["127.0.0.1/32"])
    );
    // The client is 127.0.0.1, so the key still verifies.
    assert_eq!(s.verify(&secret).await["is_valid"], true);
    let (st, u) = s
        .patch(
            &format!("/v2alpha1/admin/issuedApiKeys/{key_id}"),
            json!({"ip_restriction": {"allowed_cidrs": ["10.0.0.0/8"]}}),
        )
        .await;
    assert_eq!(st, 200, "{u}");
    let r = s.verify(&secret).await;
    assert_eq!(r["error_code"], "VERIFICATION_ERROR_IP_NOT_ALLOWED", "{r}");
    let (st, _) = s
        .patch(
            &format!("/v2alpha1/admin/issuedApiKeys/{key_id}?update_mask=ip_restriction"),
            json!({}),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(s.verify(&secret).await["is_valid"], true);

    // Rotate: new key valid, old revoked, same expiry, overrides applied.
    let (st, rot) = s
        .post(
            &format!("/v2alpha1/admin/issuedApiKeys/{key_id}:rotate"),
            json!({"name": "rotated"}),
        )
        .await;
    assert_eq!(st, 200, "{rot}");
    let new_secret = rot["secret"].as_str().unwrap().to_string();
    let new_id = rot["issued_api_key"]["key_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(new_id, key_id);
    assert_eq!(rot["issued_api_key"]["name"], "rotated");
    assert_eq!(rot["issued_api_key"]["actor_id"], "user-1");
    assert_eq!(rot["issued_api_key"]["expire_time"], key["expire_time"]);
    assert_eq!(rot["old_issued_api_key"]["status"], "KEY_STATUS_REVOKED");
    assert_eq!(s.verify(&new_secret).await["is_valid"], true);
    assert_eq!(
        s.verify(&secret).await["error_code"],
        "VERIFICATION_ERROR_REVOKED"
    );
    // Rotating the revoked key again is a failed precondition.
    let (st, e) = s
        .post(
            &format!("/v2alpha1/admin/issuedApiKeys/{key_id}:rotate"),
            json!({}),
        )
        .await;
    assert_error(st, &e, 409, "FAILED_PRECONDITION", "FAILED_PRECONDITION");

    // Revoke: description rule, success, expiry pushed out, repeat is 409.
    let path = format!("/v2alpha1/admin/issuedApiKeys/{new_id}:revoke");
    let (st, e) = s
        .post(
            &path,
            json!({"reason": "REVOCATION_REASON_KEY_COMPROMISE", "description": "x"}),
        )
        .await;
    assert_error(st, &e, 400, "INVALID_ARGUMENT", "BAD_REQUEST");
    let (st, v) = s
        .post(&path, json!({"reason": "REVOCATION_REASON_KEY_COMPROMISE"}))
        .await;
    assert_eq!((st, v.clone()), (200, json!({})));
    let (st, e) = s
        .post(&path, json!({"reason": "REVOCATION_REASON_KEY_COMPROMISE"}))
        .await;
    assert_error(st, &e, 409, "ALREADY_EXISTS", "CONFLICT");
    assert_eq!(e["error"]["message"], "key is already revoked");
    let (_, g) = s
        .get(&format!("/v2alpha1/admin/issuedApiKeys/{new_id}"))
        .await;
    assert_eq!(g["status"], "KEY_STATUS_REVOKED");
    assert_eq!(g["revocation_reason"], "REVOCATION_REASON_KEY_COMPROMISE");
    let r = s.verify(&new_secret).await;
    assert_eq!(r["is_valid"], false);
    assert_eq!(r["error_code"], "VERIFICATION_ERROR_REVOKED");
}

#[tokio::test]
async fn self_revoke_by_proof_of_possession() {
    let s = TestServer::start(Plane::All, &[]).await;
    let (_, secret) = s.issue("mine", "u").await;
    let (st, v) = s
        .post(
            "/v2alpha1/apiKeys:selfRevoke",
            json!({"credential": secret, "reason": "REVOCATION_REASON_KEY_COMPROMISE"}),
        )
        .await;
    assert_eq!((st, v), (200, json!({})));
    assert_eq!(
        s.verify(&secret).await["error_code"],
        "VERIFICATION_ERROR_REVOKED"
    );
    // Idempotent for the holder.
    let (st, _) = s
        .post(
            "/v2alpha1/apiKeys:selfRevoke",
            json!({"credential": secret}),
        )
        .await;
    assert_eq!(st, 200);
    // Wrong key: 404, empty: 400, privilege_withdrawn: 400.
    let (st, e) = s
        .post(
            "/v2alpha1/apiKeys:selfRevoke",
            json!({"credential": "no-such-key"}),
        )
        .await;
    assert_error(st, &e, 404, "NOT_FOUND", "API_KEY_NOT_FOUND");
    let (st, e) = s
        .post("/v2alpha1/apiKeys:selfRevoke", json!({"credential": ""}))
        .await;
    assert_error(st, &e, 400, "INVALID_ARGUMENT", "CREDENTIAL_REQUIRED");
    let (_, other) = s.issue("other", "u").await;
    let (st, e) = s
        .post(
            "/v2alpha1/apiKeys:selfRevoke",
            json!({"credential": other, "reason": "REVOCATION_REASON_PRIVILEGE_WITHDRAWN"}),
        )
        .await;
    assert_error(st, &e, 400, "INVALID_ARGUMENT", "BAD_REQUEST");
    assert_eq!(s.verify(&other).await["is_valid"], true);
}

#[tokio::test]
async fn import_verify_batch_and_delete() {
    let s = TestServer::start(Plane::All, &[]).await;
    let (st, k) = s
        .post(
            "/v2alpha1/admin/importedApiKeys",
            json!({"raw_key": "sk_live_abc123xyz", "name": "legacy", "actor_id": "u"}),
        )
        .await;
    assert_eq!(st, 200, "{k}");
    // The spec's vector: hex SHA-512/256(nil nid ‖ 0 ‖ raw).
    assert_eq!(
        k["key_id"],
        "0a631ed6dce16b7400719ecc80bcddb8154568b0d61b0b974e348b3f6bf4ebe4"
    );
    assert!(
        !k.to_string().contains("sk_live_abc123xyz"),
        "raw key never returned"
    );
    let r = s.verify("sk_live_abc123xyz").await;
    assert_eq!(r["is_valid"], true, "{r}");
    assert_eq!(r["key_id"], k["key_id"]);

    // Duplicate import: 409 api_key_exists.
    let (st, e) = s
        .post(
            "/v2alpha1/admin/importedApiKeys",
            json!({"raw_key": "sk_live_abc123xyz", "name": "again", "actor_id": "u"}),
        )
        .await;
    assert_error(st, &e, 409, "ALREADY_EXISTS", "API_KEY_EXISTS");
    // An issued-format key cannot be imported.
    let (_, secret) = s.issue("issued", "u").await;
    let (st, e) = s
        .post(
            "/v2alpha1/admin/importedApiKeys",
            json!({"raw_key": secret, "name": "x", "actor_id": "u"}),
        )
        .await;
    assert_error(st, &e, 409, "ALREADY_EXISTS", "CONFLICT");
    let (st, e) = s
        .post(
            "/v2alpha1/admin/importedApiKeys",
            json!({"raw_key": "eyJa.eyJb.sig", "name": "x", "actor_id": "u"}),
        )
        .await;
    assert_error(st, &e, 409, "FAILED_PRECONDITION", "FAILED_PRECONDITION");

    // Batch import: per-item results, duplicates inside the batch and against stored rows.
    let (st, b) = s
        .post(
            "/v2alpha1/admin/importedApiKeys:batchCreate",
            json!({"requests": [
                {"raw_key": "batch-key-1", "name": "b1", "actor_id": "u"},
                {"raw_key": "batch-key-1", "name": "dup", "actor_id": "u"},
                {"raw_key": "sk_live_abc123xyz", "name": "exists", "actor_id": "u"},
                {"raw_key": "batch-key-2", "name": "", "actor_id": "u"},
                {"raw_key": "batch-key-3", "name": "b3", "actor_id": "u", "bogus": 1},
                null,
                {"raw_key": "batch-key-4", "name": "b4", "actor_id": "u"}
            ]}),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["success_count"], 2);
    assert_eq!(b["failure_count"], 5);
    let res = b["results"].as_array().unwrap();
    assert_eq!(res[0]["index"], 0);
    assert!(res[0]["imported_api_key"]["key_id"].is_string());
    assert_eq!(
        res[1]["error_code"],
        "BATCH_CREATE_IMPORTED_API_KEYS_ERROR_ALREADY_EXISTS"
    );
    assert_eq!(
        res[1]["error_message"],
        "key already imported (duplicate detected at index 0)"
    );
    assert_eq!(
        res[2]["error_code"],
        "BATCH_CREATE_IMPORTED_API_KEYS_ERROR_ALREADY_EXISTS"
    );
    assert_eq!(
        res[3]["error_code"],
        "BATCH_CREATE_IMPORTED_API_KEYS_ERROR_INVALID_ARGUMENT"
    );
    assert_eq!(
        res[4]["error_code"],
        "BATCH_CREATE_IMPORTED_API_KEYS_ERROR_INVALID_ARGUMENT"
    );
    assert_eq!(res[5]["error_message"], "batch item is required");
    assert_eq!(res[6]["index"], 6);
    assert_eq!(s.verify("batch-key-4").await["is_valid"], true);
    assert_eq!(
        s.verify("batch-key-2").await["error_code"],
        "VERIFICATION_ERROR_NOT_FOUND"
    );

    // All failed: dominant code.
    let (st, e) = s
        .post(
            "/v2alpha1/admin/importedApiKeys:batchCreate",
            json!({"requests": [{"raw_key": "batch-key-1", "name": "b", "actor_id": "u"}]}),
        )
        .await;
    assert_error(st, &e, 409, "ALREADY_EXISTS", "API_KEY_EXISTS");
    let (st, e) = s
        .post(
            "/v2alpha1/admin/importedApiKeys:batchCreate",
            json!({"requests": []}),
        )
        .await;
    assert_error(st, &e, 400, "INVALID_ARGUMENT", "BAD_REQUEST");

    // Batch verify in request order, never failing the batch.
    let (st, bv) = s
        .post(
            "/v2alpha1/admin/apiKeys:batchVerify",
            json!({"requests": [{"credential": secret}, {"credential": "nope"}, {"credential": "sk_live_abc123xyz"}, {"credential": ""}]}),
        )
        .await;
    assert_eq!(st, 200, "{bv}");
    let r = bv["results"].as_array().unwrap();
    assert_eq!(r.len(), 4);
    assert_eq!(r[0]["is_valid"], true);
    assert_eq!(r[1]["error_code"], "VERIFICATION_ERROR_NOT_FOUND");
    assert_eq!(r[2]["is_valid"], true);
    assert_eq!(r[3]["error_code"], "VERIFICATION_ERROR_INVALID_FORMAT");

    // Update, revoke and delete an imported key.
    let id = k["key_id"].as_str().unwrap();
    let (st, u) = s
        .patch(
            &format!("/v2alpha1/admin/importedApiKeys/{id}?update_mask=scopes"),
            json!({"scopes": ["x"]}),
        )
        .await;
    assert_eq!(st, 200, "{u}");
    assert_eq!(u["scopes"], json!(["x"]));
    let (st, _) = s
        .post(
            &format!("/v2alpha1/admin/importedApiKeys/{id}:revoke"),
            json!({}),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        s.verify("sk_live_abc123xyz").await["error_code"],
        "VERIFICATION_ERROR_REVOKED"
    );
    let (st, v) = s
        .delete(&format!("/v2alpha1/admin/importedApiKeys/{id}"))
        .await;
    assert_eq!((st, v), (200, serde_json::json!({})));
    let (st, e) = s
        .get(&format!("/v2alpha1/admin/importedApiKeys/{id}"))
        .await;
    assert_error(st, &e, 404, "NOT_FOUND", "API_KEY_NOT_FOUND");
    assert_eq!(e["error"]["message"], "imported key not found");
    assert_eq!(
        s.verify("sk_live_abc123xyz").await["error_code"],
        "VERIFICATION_ERROR_NOT_FOUND"
    );
}

#[tokio::test]
async fn listing_pages_filters_and_tokens() {
    let s = TestServer::start(Plane::All, &[]).await;
    let mut ids = Vec::new();
    for i in 0..23 {
        let actor = if i % 2 == 0 { "even" } else { "odd" };
        ids.push(s.issue(&format!("k{i}"), actor).await.0);
    }
    ids.sort();
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let (st, v) = s
            .get(&format!(
                "/v2alpha1/admin/issuedApiKeys?page_size=10&page_token={token}"
            ))
            .await;
        assert_eq!(st, 200, "{v}");
        pages += 1;
        for k in v["issued_api_keys"].as_array().unwrap() {
            seen.push(k["key_id"].as_str().unwrap().to_string());
        }
        token = v["next_page_token"].as_str().unwrap().to_string();
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids, "every key exactly once, in key_id order");

    // Filters.
    let (st, v) = s
        .get("/v2alpha1/admin/issuedApiKeys?filter=actor_id%3D%22odd%22")
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["issued_api_keys"].as_array().unwrap().len(), 11);
    let (_, first) = s.get("/v2alpha1/admin/issuedApiKeys?page_size=1").await;
    let revoke_id = first["issued_api_keys"][0]["key_id"]
        .as_str()
        .unwrap()
        .to_string();
    s.post(
        &format!("/v2alpha1/admin/issuedApiKeys/{revoke_id}:revoke"),
        json!({}),
    )
    .await;
    let actor = first["issued_api_keys"][0]["actor_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, v) = s
        .get(&format!("/v2alpha1/admin/issuedApiKeys?filter=actor_id%3D%22{actor}%22%20AND%20status%3DKEY_STATUS_REVOKED"))
        .await;
    let list = v["issued_api_keys"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{v}");
    assert_eq!(list[0]["key_id"], revoke_id.as_str());
    let (st, e) = s
        .get("/v2alpha1/admin/issuedApiKeys?filter=status%3DKEY_STATUS_ACTIVE")
        .await;
    assert_error(st, &e, 400, "INVALID_ARGUMENT", "BAD_REQUEST");
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("status filter must be combined with actor_id"));
    let (st, e) = s
        .get("/v2alpha1/admin/issuedApiKeys?filter=admin%3Dtrue")
        .await;
    assert_error(st, &e, 400, "INVALID_ARGUMENT", "BAD_REQUEST");

    // Tokens: tampered, bound to the filter and the collection.
    let (_, v) = s.get("/v2alpha1/admin/issuedApiKeys?page_size=5").await;
    let tok = v["next_page_token"].as_str().unwrap().to_string();
    let mut bad = tok.clone();
    bad.truncate(bad.len() - 3);
    bad.push_str("XXX");
    let (st, e) = s
        .get(&format!(
            "/v2alpha1/admin/issuedApiKeys?page_size=5&page_token={bad}"
        ))
        .await;
    assert_error(st, &e, 400, "INVALID_ARGUMENT", "BAD_REQUEST");
    let (st, e) = s
        .get(&format!("/v2alpha1/admin/issuedApiKeys?page_size=5&page_token={tok}&filter=actor_id%3D%22odd%22"))
        .await;
    assert_error(st, &e, 400, "INVALID_ARGUMENT", "BAD_REQUEST");
    let (st, e) = s
        .get(&format!("/v2alpha1/admin/importedApiKeys?page_token={tok}"))
        .await;
    assert_error(st, &e, 400, "INVALID_ARGUMENT", "BAD_REQUEST");
    let (st, e) = s
        .get("/v2alpha1/admin/issuedApiKeys?page_token=%00%01garbage")
        .await;
    assert_error(st, &e, 400, "INVALID_ARGUMENT", "BAD_REQUEST");
}

#[tokio::test]
async fn idempotent_issue_and_import_by_request_id() {
    let s = TestServer::start(Plane::All, &[]).await;
    let body = json!({"name": "n", "actor_id": "u", "request_id": "req-123"});
    let (st, a) = s.post("/v2alpha1/admin/issuedApiKeys", body.clone()).await;
    assert_eq!(st, 200);
    assert!(a["secret"].is_string());
    let (st, b) = s.post("/v2alpha1/admin/issuedApiKeys", body).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["issued_api_key"]["key_id"], a["issued_api_key"]["key_id"]);
    assert!(
        b.get("secret").is_none(),
        "a replay never returns the secret: {b}"
    );
    let (_, list) = s.get("/v2alpha1/admin/issuedApiKeys").await;
    assert_eq!(list["issued_api_keys"].as_array().unwrap().len(), 1);

    let body = json!({"raw_key": "imp-key-1", "name": "n", "actor_id": "u", "request_id": "req-9"});
    let (st, a) = s
        .post("/v2alpha1/admin/importedApiKeys", body.clone())
        .await;
    assert_eq!(st, 200);
    let (st, b) = s.post("/v2alpha1/admin/importedApiKeys", body).await;
    assert_eq!(st, 200);
    assert_eq!(a["key_id"], b["key_id"]);
}

#[tokio::test]
async fn unified_revoke_path_dispatches_by_id_shape() {
    let s = TestServer::start(Plane::All, &[]).await;
    let (id, secret) = s.issue("a", "u").await;
    let (st, _) = s
        .post(
            &format!("/v2alpha1/admin/apiKeys/{id}:revoke"),
            json!({"reason": "REVOCATION_REASON_SUPERSEDED"}),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        s.verify(&secret).await["error_code"],
        "VERIFICATION_ERROR_REVOKED"
    );
    let (_, k) = s
        .post(
            "/v2alpha1/admin/importedApiKeys",
            json!({"raw_key": "imp-x", "name": "n", "actor_id": "u"}),
        )
        .await;
    let (st, _) = s
        .post(
            &format!(
                "/v2alpha1/admin/apiKeys/{}:revoke",
                k["key_id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        s.verify("imp-x").await["error_code"],
        "VERIFICATION_ERROR_REVOKED"
    );
}

#[tokio::test]
async fn quota_caps_active_keys() {
    let s = TestServer::start(Plane::All, &[("TALOS_QUOTA_API_KEYS_MAX", "2")]).await;
    s.issue("a", "u").await;
    s.issue("b", "u").await;
    let (st, e) = s
        .post(
            "/v2alpha1/admin/issuedApiKeys",
            json!({"name": "c", "actor_id": "u"}),
        )
        .await;
    assert_error(st, &e, 402, "PERMISSION_DENIED", "API_KEY_QUOTA_EXCEEDED");
    assert_eq!(e["error"]["details"][0]["metadata"]["limit"], "2");
    assert_eq!(
        e["error"]["message"],
        "the API key quota for this plan permits up to 2 active API keys"
    );
}

#[tokio::test]
async fn expired_keys_and_retired_secrets() {
    // Keys made under a retired secret keep verifying; under a foreign one they do not.
    let s = TestServer::start(Plane::All, &[]).await;
    let (_, secret) = s.issue("old", "u").await;
    let dir = s.stop().await;
    let s = TestServer::start_in(
        dir,
        Plane::All,
        &[
            (
                "TALOS_SECRETS_HMAC_CURRENT",
                "a-brand-new-hmac-secret-of-32-chars-or-more",
            ),
            (
                "TALOS_SECRETS_HMAC_RETIRED",
                &format!("[{{\"value\":\"{}\"}}]", crate::SECRET),
            ),
        ],
    )
    .await;
    assert_eq!(
        s.verify(&secret).await["is_valid"],
        true,
        "retired secret still verifies"
    );
    let dir = s.stop().await;
    let s = TestServer::start_in(
        dir,
        Plane::All,
        &[(
            "TALOS_SECRETS_HMAC_CURRENT",
            "a-brand-new-hmac-secret-of-32-chars-or-more",
        )],
    )
    .await;
    assert_eq!(
        s.verify(&secret).await["error_code"],
        "VERIFICATION_ERROR_NOT_FOUND"
    );

    // A key with a 1s ttl expires.
    let (st, v) = s
        .post(
            "/v2alpha1/admin/issuedApiKeys",
            json!({"name": "short", "actor_id": "u", "ttl": "1s"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let short = v["secret"].as_str().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert_eq!(
        s.verify(&short).await["error_code"],
        "VERIFICATION_ERROR_EXPIRED"
    );
    let (_, g) = s
        .get(&format!(
            "/v2alpha1/admin/issuedApiKeys/{}",
            v["issued_api_key"]["key_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(g["status"], "KEY_STATUS_EXPIRED");
}

#[tokio::test]
async fn public_keys_need_a_public_prefix_and_cannot_self_revoke() {
    let s = TestServer::start(Plane::All, &[]).await;
    let (st, e) = s
        .post(
            "/v2alpha1/admin/issuedApiKeys",
            json!({"name": "p", "actor_id": "u", "visibility": "KEY_VISIBILITY_PUBLIC"}),
        )
        .await;
    assert_error(st, &e, 400, "INVALID_ARGUMENT", "BAD_REQUEST");
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("public_current"));
    let s = TestServer::start(
        Plane::All,
        &[("TALOS_CREDENTIALS_API_KEYS_PREFIX_PUBLIC_CURRENT", "pk")],
    )
    .await;
    let (st, v) = s
        .post(
            "/v2alpha1/admin/issuedApiKeys",
            json!({"name": "p", "actor_id": "u", "visibility": "KEY_VISIBILITY_PUBLIC"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let secret = v["secret"].as_str().unwrap();
    assert!(secret.starts_with("pk_v1_"));
    assert_eq!(
        s.verify(secret).await["visibility"],
        "KEY_VISIBILITY_PUBLIC"
    );
    let (st, e) = s
        .post(
            "/v2alpha1/apiKeys:selfRevoke",
            json!({"credential": secret}),
        )
        .await;
    assert_error(st, &e, 403, "PERMISSION_DENIED", "FORBIDDEN");
}

#[tokio::test]
async fn cors_answers_configured_origins_only() {
    let s = TestServer::start(
        Plane::All,
        &[
            ("TALOS_SERVE_HTTP_CORS_ENABLED", "true"),
            (
                "TALOS_SERVE_HTTP_CORS_ALLOWED_ORIGINS",
                "https://*.example.com,https://app.test",
            ),
            ("TALOS_SERVE_HTTP_CORS_MAX_AGE", "600"),
        ],
    )
    .await;
    let preflight = |origin: &'static str| {
        s.client
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/v2alpha1/admin/apiKeys:verify", s.base),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let ok = preflight("https://console.example.com").await.unwrap();
    let h = ok.headers();
    assert_eq!(
        h.get("access-control-allow-origin").unwrap(),
        "https://console.example.com"
    );
    assert!(h
        .get("access-control-allow-methods")
        .unwrap()
        .to_str()
        .unwrap()
        .contains("POST"));
    assert_eq!(h.get("access-control-max-age").unwrap(), "600");
    let denied = preflight("https://evil.test").await.unwrap();
    assert!(denied
        .headers()
        .get("access-control-allow-origin")
        .is_none());

    // A simple request from an allowed origin carries the header too.
    let r = s
        .client
        .post(format!("{}/v2alpha1/admin/apiKeys:verify", s.base))
        .header("origin", "https://app.test")
        .json(&json!({"credential": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers().get("access-control-allow-origin").unwrap(),
        "https://app.test"
    );
    s.stop().await;

    // Off by default: no CORS headers at all.
    let plain = TestServer::start(Plane::All, &[]).await;
    let r = plain
        .client
        .post(format!("{}/v2alpha1/admin/apiKeys:verify", plain.base))
        .header("origin", "https://app.test")
        .json(&json!({"credential": "nope"}))
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    plain.stop().await;
}

/// Verify is served without the router when no router layer needs it
/// (`http::Api`); with CORS on it goes through the router. Both must answer
/// every kind of request identically: status, body and headers.
#[tokio::test]
async fn verify_answers_the_same_with_and_without_the_router() {
    let direct = TestServer::start(Plane::All, &[]).await;
    let dsn = format!("sqlite://{}", direct.dir.path().join("talos.db").display());
    let routed = TestServer::start(
        Plane::All,
        &[
            ("TALOS_DB_DSN", dsn.as_str()),
            ("TALOS_SERVE_HTTP_CORS_ENABLED", "true"),
            ("TALOS_SERVE_HTTP_CORS_ALLOWED_ORIGINS", "https://app.test"),
        ],
    )
    .await;
    let (_, plain) = direct.issue("plain", "u").await;
    let (st, v) = direct
        .post(
            "/v2alpha1/admin/issuedApiKeys",
            json!({"name": "limited", "actor_id": "u",
                   "rate_limit_policy": {"quota": 100, "window": "60s"}}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let limited = v["secret"].as_str().unwrap().to_string();
    let verify_body = |c: &str| json!({ "credential": c }).to_string();
    let huge = format!("{{\"credential\":\"{}\"}}", "x".repeat(9 * 1024 * 1024));
    // (what, method, extra request headers, body)
    type Case<'a> = (&'a str, reqwest::Method, Vec<(&'a str, &'a str)>, String);
    let post = |what, headers, body| -> Case { (what, reqwest::Method::POST, headers, body) };
    let cases: Vec<Case> = vec![
        post("first (miss)", vec![], verify_body(&plain)),
        post("second (hit)", vec![], verify_body(&plain)),
        post(
            "no-cache",
            vec![("cache-control", "no-cache")],
            verify_body(&plain),
        ),
        post("rate limited", vec![], verify_body(&limited)),
        post("invalid", vec![], verify_body("nope")),
        post("not JSON", vec![], "{not json".into()),
        post("too large", vec![], huge),
        ("wrong method", reqwest::Method::GET, vec![], String::new()),
        post(
            "request id",
            vec![("x-request-id", "req-1")],
            verify_body(&plain),
        ),
    ];
    // Headers that differ by nature (date), or come from the CORS layer.
    let comparable = |r: &reqwest::Response| -> Vec<(String, String)> {
        let mut h: Vec<(String, String)> = r
            .headers()
            .iter()
            .filter(|(n, _)| {
                let n = n.as_str();
                n != "date" && n != "vary" && !n.starts_with("access-control-")
            })
            .map(|(n, v)| {
                let v = match n.as_str() {
                    // A generated id differs; its presence must not.
                    "x-request-id" if v != "req-1" => "<generated>".to_string(),
                    _ => v.to_str().unwrap().to_string(),
                };
                (n.to_string(), v)
            })
            .collect();
        h.sort();
        h
    };
    for (what, method, headers, body) in cases {
        let mut answers = Vec::new();
        for s in [&direct, &routed] {
            let mut req = s
                .client
                .request(method.clone(), s.url("/v2alpha1/admin/apiKeys:verify"))
                .header("content-type", "application/json")
                .body(body.clone());
            for (k, v) in &headers {
                req = req.header(*k, *v);
            }
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let h = comparable(&r);
            let text = r.text().await.unwrap();
            let json: serde_json::Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"));
            answers.push((status, h, json));
        }
        assert_eq!(answers[0], answers[1], "{what}: direct vs routed");
        let headers = &answers[0].1;
        for (name, value) in [
            ("x-frame-options", "DENY"),
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", "strict-origin-when-cross-origin"),
        ] {
            assert!(
                headers.contains(&(name.to_string(), value.to_string())),
                "{what}: {name} missing in {headers:?}"
            );
        }
        if answers[0].0 == 200 {
            assert!(
                headers.contains(&("cache-control".to_string(), "no-store".to_string())),
                "{what}: {headers:?}"
            );
        }
    }
    routed.stop().await;
    direct.stop().await;
}
