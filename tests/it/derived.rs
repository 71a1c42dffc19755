//! Derived tokens end to end: derive, verify statelessly, JWKS, rotation.

use base64::Engine;
use serde_json::{json, Value};
use talos::adapters::http::Plane;
use talos::adapters::jwk_generate::{generate, GenerateOptions, JwkKind};

use crate::{assert_error, TestServer};

fn jwks_url(keys: &[Value]) -> String {
    format!(
        "base64://{}",
        base64::engine::general_purpose::STANDARD.encode(json!({ "keys": keys }).to_string())
    )
}

fn key(kind: JwkKind, kid: &str) -> Value {
    generate(
        kind,
        &GenerateOptions {
            kid: Some(kid.into()),
            ..Default::default()
        },
    )
    .unwrap()
}

fn public(k: &Value) -> Value {
    let mut p = k.clone();
    for f in ["d", "p", "q", "dp", "dq", "qi"] {
        p.as_object_mut().unwrap().remove(f);
    }
    p
}

async fn parent(s: &TestServer, extra: Value) -> (String, String) {
    let mut body = json!({"name": "parent", "actor_id": "user-7", "scopes": ["read", "write"], "ttl": "24h", "metadata": {"plan": "pro"}});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (st, v) = s.post("/v2alpha1/admin/issuedApiKeys", body).await;
    assert_eq!(st, 200, "{v}");
    (
        v["issued_api_key"]["key_id"].as_str().unwrap().into(),
        v["secret"].as_str().unwrap().into(),
    )
}

async fn derive(s: &TestServer, body: Value) -> (u16, Value) {
    s.post("/v2alpha1/admin/apiKeys:derive", body).await
}

#[tokio::test]
async fn derive_and_verify_jwt_and_macaroon() {
    let k = key(JwkKind::Eddsa, "ed-1");
    let url = jwks_url(std::slice::from_ref(&k));
    let s = TestServer::start(
        Plane::All,
        &[(
            "TALOS_CREDENTIALS_DERIVED_TOKENS_JWT_SIGNING_KEYS_URLS",
            &url,
        )],
    )
    .await;
    let (pid, secret) = parent(&s, json!({})).await;

    let (st, v) = derive(&s, json!({"credential": secret, "ttl": "10m", "scopes": ["read"], "custom_claims": {"tenant": "t1", "exp": 1, "plan": "free"}})).await;
    assert_eq!(st, 200, "{v}");
    let t = &v["token"];
    let jwt = t["token"].as_str().unwrap().to_string();
    assert_eq!(jwt.split('.').count(), 3);
    assert_eq!(t["scopes"], json!(["read"]));
    assert_eq!(t["claims"]["tenant"], "t1");
    assert_eq!(
        t["claims"]["plan"], "free",
        "response claims: custom overrides metadata"
    );
    assert!(
        t["claims"].get("exp").is_none(),
        "reserved claims are dropped"
    );
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(jwt.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (header["alg"].as_str(), header["kid"].as_str()),
        (Some("EdDSA"), Some("ed-1"))
    );

    let r = s.verify(&jwt).await;
    assert_eq!(r["is_valid"], true, "{r}");
    assert_eq!(r["key_id"], pid.as_str());
    assert_eq!(r["actor_id"], "user-7");
    assert_eq!(r["scopes"], json!(["read"]));
    assert_eq!(r["issuer"], "test-issuer");
    assert_eq!(
        r["metadata"]["plan"], "pro",
        "verification: sealed metadata wins"
    );
    // The cache is never used for derived tokens.
    let resp = s
        .client
        .post(s.url("/v2alpha1/admin/apiKeys:verify"))
        .json(&json!({"credential": jwt}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["ory-talos-cache"], "SKIP");

    // Tampered signature.
    let mut bad = jwt.clone().into_bytes();
    let n = bad.len();
    bad[n - 2] = if bad[n - 2] == b'A' { b'B' } else { b'A' };
    assert_eq!(
        s.verify(std::str::from_utf8(&bad).unwrap()).await["error_code"],
        "VERIFICATION_ERROR_SIGNATURE_INVALID"
    );

    // Macaroon, with holder attenuation.
    let (st, v) = derive(
        &s,
        json!({"credential": secret, "algorithm": "TOKEN_ALGORITHM_MACAROON"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let mac = v["token"]["token"].as_str().unwrap().to_string();
    assert!(mac.starts_with("mc_v1_"), "{mac}");
    let r = s.verify(&mac).await;
    assert_eq!(r["is_valid"], true, "{r}");
    assert_eq!(r["scopes"], json!(["read", "write"]));
    let prefixes = vec!["mc".to_string()];
    let narrowed = talos::domain::derived::attenuate(&mac, &prefixes, "scope read").unwrap();
    assert_eq!(s.verify(&narrowed).await["scopes"], json!(["read"]));
    let unknown = talos::domain::derived::attenuate(&mac, &prefixes, "admin yes").unwrap();
    assert_eq!(s.verify(&unknown).await["is_valid"], false);

    // Derived tokens cannot be self-revoked, nor derive further tokens.
    let (st, e) = s
        .post("/v2alpha1/apiKeys:selfRevoke", json!({"credential": jwt}))
        .await;
    assert_error(
        st,
        &e,
        400,
        "INVALID_ARGUMENT",
        "DERIVED_TOKEN_NOT_REVOCABLE",
    );
    let (st, e) = derive(&s, json!({"credential": jwt})).await;
    assert_error(st, &e, 400, "INVALID_ARGUMENT", "BAD_REQUEST");

    // Revoking the parent blocks new derivations; issued tokens live on.
    s.post(
        &format!("/v2alpha1/admin/issuedApiKeys/{pid}:revoke"),
        json!({}),
    )
    .await;
    let (st, e) = derive(&s, json!({"credential": secret})).await;
    assert_error(st, &e, 403, "PERMISSION_DENIED", "FORBIDDEN");
    assert_eq!(e["error"]["message"], "key is revoked");
    assert_eq!(s.verify(&jwt).await["is_valid"], true);
}

#[tokio::test]
async fn derive_rules_and_errors() {
    let url = jwks_url(&[key(JwkKind::Ecdsa, "ec-1")]);
    let s = TestServer::start(
        Plane::All,
        &[(
            "TALOS_CREDENTIALS_DERIVED_TOKENS_JWT_SIGNING_KEYS_URLS",
            &url,
        )],
    )
    .await;
    let (_, secret) = parent(&s, json!({"ttl": "1h"})).await;
    let (st, e) = derive(
        &s,
        json!({"credential": secret, "ttl": "5m", "scopes": ["admin"]}),
    )
    .await;
    assert_error(st, &e, 403, "PERMISSION_DENIED", "FORBIDDEN");
    assert_eq!(
        e["error"]["message"],
        "requested scope 'admin' not available in parent key"
    );
    let (st, e) = derive(&s, json!({"credential": secret, "ttl": "9000h"})).await;
    assert_error(st, &e, 400, "INVALID_ARGUMENT", "BAD_REQUEST");
    assert_eq!(
        e["error"]["message"],
        "ttl exceeds the configured maximum of 8760h0m0s"
    );
    let (st, e) = derive(&s, json!({"credential": secret, "ttl": "2h"})).await;
    assert_error(st, &e, 400, "INVALID_ARGUMENT", "BAD_REQUEST");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("derived token ttl (2h0m0s) exceeds parent key remaining lifetime (59m"),
        "{e}"
    );
    let (st, e) = derive(&s, json!({"credential": "not-a-key"})).await;
    assert_error(st, &e, 401, "UNAUTHENTICATED", "UNAUTHORIZED");
    let (st, e) = derive(&s, json!({"credential": ""})).await;
    assert_error(st, &e, 400, "INVALID_ARGUMENT", "CREDENTIAL_REQUIRED");

    // ES256 works end to end; audiences are enforced.
    let (st, v) = derive(
        &s,
        json!({"credential": secret, "ttl": "5m", "audiences": ["svc-a"]}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let jwt = v["token"]["token"].as_str().unwrap().to_string();
    let verify = |aud: Value| {
        let s = &s;
        let jwt = jwt.clone();
        async move {
            s.post(
                "/v2alpha1/admin/apiKeys:verify",
                json!({"credential": jwt, "expected_audiences": aud}),
            )
            .await
            .1
        }
    };
    assert_eq!(
        verify(json!([])).await["error_code"],
        "VERIFICATION_ERROR_AUDIENCE_MISMATCH"
    );
    assert_eq!(
        verify(json!(["svc-b"])).await["error_code"],
        "VERIFICATION_ERROR_AUDIENCE_MISMATCH"
    );
    let ok = verify(json!(["svc-b", "svc-a"])).await;
    assert_eq!(ok["is_valid"], true, "{ok}");
    assert_eq!(ok["audiences"], json!(["svc-a"]));
    let (_, r) = s
        .post(
            "/v2alpha1/admin/apiKeys:verify",
            json!({"credential": secret, "expected_audiences": ["svc-a"]}),
        )
        .await;
    assert_eq!(
        r["error_code"], "VERIFICATION_ERROR_AUDIENCE_MISMATCH",
        "API keys carry no audience"
    );

    // The parent's CIDRs travel with the token.
    let (_, restricted) = parent(
        &s,
        json!({"ip_restriction": {"allowed_cidrs": ["10.0.0.0/8"]}}),
    )
    .await;
    let (st, v) = derive(&s, json!({"credential": restricted})).await;
    assert_eq!(
        st, 401,
        "the parent itself cannot be verified from 127.0.0.1: {v}"
    );
}

#[tokio::test]
async fn jwks_is_public_on_every_plane_and_rotation_keeps_old_tokens_valid() {
    let a = key(JwkKind::Eddsa, "key-a");
    let b = key(JwkKind::Rsa, "key-b");
    let s = TestServer::start(
        Plane::All,
        &[(
            "TALOS_CREDENTIALS_DERIVED_TOKENS_JWT_SIGNING_KEYS_URLS",
            &jwks_url(std::slice::from_ref(&a)),
        )],
    )
    .await;
    let (_, secret) = parent(&s, json!({})).await;
    let (_, v) = derive(&s, json!({"credential": secret})).await;
    let old = v["token"]["token"].as_str().unwrap().to_string();
    let dir = s.stop().await;

    // Rotate: B signs, A stays published (public part only).
    let urls = jwks_url(&[b.clone(), public(&a)]);
    let s = TestServer::start_in(
        dir,
        Plane::All,
        &[
            (
                "TALOS_CREDENTIALS_DERIVED_TOKENS_JWT_SIGNING_KEYS_URLS",
                &urls,
            ),
            (
                "TALOS_CREDENTIALS_DERIVED_TOKENS_JWT_SIGNING_KEY_ID",
                "key-b",
            ),
        ],
    )
    .await;
    assert_eq!(
        s.verify(&old).await["is_valid"],
        true,
        "tokens signed by the old key still verify"
    );
    let (st, v) = derive(&s, json!({"credential": secret})).await;
    assert_eq!(st, 200, "{v}");
    let new = v["token"]["token"].as_str().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(new.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (header["alg"].as_str(), header["kid"].as_str()),
        (Some("RS256"), Some("key-b"))
    );
    assert_eq!(s.verify(new).await["is_valid"], true);

    let r = s
        .client
        .get(s.url("/v2alpha1/derivedKeys/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "public, max-age=300");
    let body: Value = r.json().await.unwrap();
    let kids: Vec<&str> = body["jwks"]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, vec!["key-b", "key-a"]);
    let text = body.to_string();
    for f in ["\"d\"", "\"p\"", "\"q\"", "\"dp\"", "\"dq\"", "\"qi\""] {
        assert!(!text.contains(f), "JWKS leaks {f}");
    }
    let public_plane = TestServer::start(
        Plane::Public,
        &[(
            "TALOS_CREDENTIALS_DERIVED_TOKENS_JWT_SIGNING_KEYS_URLS",
            &urls,
        )],
    )
    .await;
    let (st, v) = public_plane.get("/v2alpha1/derivedKeys/jwks.json").await;
    assert_eq!(st, 200);
    assert_eq!(v["jwks"]["keys"].as_array().unwrap().len(), 2);
    let (st, _) = public_plane
        .post(
            "/v2alpha1/admin/apiKeys:derive",
            json!({"credential": secret}),
        )
        .await;
    assert_eq!(st, 404, "derive is admin-only");
}

#[tokio::test]
async fn a_bad_signing_key_url_stops_startup_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let env = vec![
        (
            "TALOS_SECRETS_HMAC_CURRENT".to_string(),
            crate::SECRET.to_string(),
        ),
        (
            "TALOS_DB_DSN".to_string(),
            format!("sqlite://{}", dir.path().join("x.db").display()),
        ),
        ("TALOS_CREDENTIALS_ISSUER".to_string(), "i".to_string()),
        (
            "TALOS_CREDENTIALS_DERIVED_TOKENS_JWT_SIGNING_KEYS_URLS".to_string(),
            "base64://SECRETMARKER!!!".to_string(),
        ),
    ];
    let loaded = talos::app::config::load(None, env).unwrap();
    let settings = talos::app::config::resolve(&loaded.raw, &mut vec![]).unwrap();
    let e = talos::app::wiring::build(&settings)
        .await
        .err()
        .expect("startup fails");
    assert!(e.contains("urls[0]") && !e.contains("SECRETMARKER"), "{e}");
}
