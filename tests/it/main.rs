//! End-to-end tests: the real server on 127.0.0.1:0 over HTTP, backed by a
//! real SQLite file (one temp dir per test).

mod api;
#[cfg(any(feature = "postgres", feature = "mysql"))]
mod backends;
mod bad_input;
mod binary;
mod cache;
#[cfg(all(feature = "postgres", feature = "cache-redis", feature = "rate-limit"))]
mod cluster;
mod crash;
mod derived;
#[cfg(all(unix, feature = "sqlite"))]
mod diskfull;
#[cfg(feature = "postgres")]
mod faults;
mod forwarded;
mod helm;
mod limits;
#[cfg(feature = "otel")]
mod otel;
mod planes;
#[cfg(feature = "proxy")]
mod proxy;
mod reload;
mod services;
#[cfg(feature = "multitenancy")]
mod tenancy;

use std::net::SocketAddr;

use serde_json::{json, Value};
use talos::adapters::http::Plane;
use talos::app::{config, wiring};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub const SECRET: &str = "test-hmac-secret-32-characters-long-for-hmac-sha256";

pub struct TestServer {
    pub base: String,
    pub ops: String,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<Result<(), String>>>,
    pub dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start(plane: Plane, extra: &[(&str, &str)]) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, plane, extra).await
    }

    pub async fn start_in(
        dir: tempfile::TempDir,
        plane: Plane,
        extra: &[(&str, &str)],
    ) -> TestServer {
        Self::start_full(dir, plane, extra, None).await
    }

    /// Starts with a config file (watched for hot reload) in the temp dir.
    pub async fn start_with_file(yaml: &str, extra: &[(&str, &str)]) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("talos.yaml");
        std::fs::write(&path, yaml).unwrap();
        Self::start_full(dir, Plane::All, extra, Some(path)).await
    }

    async fn start_full(
        dir: tempfile::TempDir,
        plane: Plane,
        extra: &[(&str, &str)],
        file: Option<std::path::PathBuf>,
    ) -> TestServer {
        let dsn = format!("sqlite://{}", dir.path().join("talos.db").display());
        let mut env: Vec<(String, String)> = vec![
            ("TALOS_DB_DSN".into(), dsn),
            ("TALOS_LOG_LEVEL".into(), "warn".into()),
        ];
        if file.is_none() {
            // Without a file, the environment carries the whole config.
            env.push(("TALOS_SECRETS_HMAC_CURRENT".into(), SECRET.into()));
            env.push(("TALOS_CREDENTIALS_ISSUER".into(), "test-issuer".into()));
            env.push((
                "TALOS_CREDENTIALS_API_KEYS_PREFIX_CURRENT".into(),
                "test".into(),
            ));
        }
        for (k, v) in extra {
            env.retain(|(ek, _)| ek != k);
            env.push((k.to_string(), v.to_string()));
        }
        let loaded = config::load(file.as_deref(), env).expect("config loads");
        let mut warnings = loaded.warnings;
        let mut settings = config::resolve(&loaded.raw, &mut warnings).expect("config resolves");
        settings.fixed.config_file = file;
        settings.fixed.reload_env = loaded.env.clone();
        let main = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ops = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", main.local_addr().unwrap());
        let ops_base = format!("http://{}", ops.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(wiring::serve_on(settings, plane, main, ops, async move {
            let _ = rx.await;
        }));
        let client = reqwest::Client::new();
        // Wait for readiness.
        for _ in 0..200 {
            if let Ok(r) = client.get(format!("{ops_base}/health/ready")).send().await {
                if r.status() == 200 {
                    break;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        TestServer {
            base,
            ops: ops_base,
            client,
            shutdown: Some(tx),
            handle: Some(handle),
            dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        split(r).await
    }

    pub async fn post_raw(&self, path: &str, body: &str) -> (u16, Value) {
        let r = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        split(r).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.client.get(self.url(path)).send().await.unwrap();
        split(r).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .client
            .patch(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        split(r).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        let r = self.client.delete(self.url(path)).send().await.unwrap();
        split(r).await
    }

    pub async fn issue(&self, name: &str, actor: &str) -> (String, String) {
        let (st, v) = self
            .post(
                "/v2alpha1/admin/issuedApiKeys",
                json!({"name": name, "actor_id": actor, "scopes": ["read"]}),
            )
            .await;
        assert_eq!(st, 200, "{v}");
        (
            v["issued_api_key"]["key_id"].as_str().unwrap().to_string(),
            v["secret"].as_str().unwrap().to_string(),
        )
    }

    /// Verify with extra request headers; returns the `Ory-Talos-Cache`
    /// header (HIT/MISS/SKIP) and the body.
    pub async fn verify_cached(
        &self,
        credential: &str,
        headers: &[(&str, &str)],
    ) -> (String, Value) {
        let mut req = self
            .client
            .post(self.url("/v2alpha1/admin/apiKeys:verify"))
            .json(&json!({ "credential": credential }));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 200, "verify always answers 200");
        let cache = r.headers()["ory-talos-cache"].to_str().unwrap().to_string();
        (cache, r.json().await.unwrap())
    }

    pub async fn verify(&self, credential: &str) -> Value {
        let (st, v) = self
            .post(
                "/v2alpha1/admin/apiKeys:verify",
                json!({ "credential": credential }),
            )
            .await;
        assert_eq!(st, 200, "verify always answers 200: {v}");
        v
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.unwrap().unwrap();
        }
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// POSTs `body` as JSON to `base` + `path` (a spawned or in-process
/// server) and returns the response.
pub async fn post_raw(base: &str, path: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}{path}"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// [`post_raw`], returning the status and the body.
pub async fn post_json(base: &str, path: &str, body: Value) -> (u16, Value) {
    split(post_raw(base, path, body).await).await
}

pub async fn split(r: reqwest::Response) -> (u16, Value) {
    let st = r.status().as_u16();
    let text = r.text().await.unwrap();
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (st, v)
}

/// Asserts an AIP-193 envelope with the given HTTP status, gRPC status and reason.
pub fn assert_error(st: u16, v: &Value, code: u16, status: &str, reason: &str) {
    assert_eq!(st, code, "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    assert_eq!(v["error"]["status"], status, "{v}");
    assert_eq!(v["error"]["details"][0]["reason"], reason, "{v}");
    assert_eq!(
        v["error"]["details"][0]["domain"], "www.ory.com/talos",
        "{v}"
    );
    assert_eq!(
        v["error"]["details"][0]["@type"], "type.googleapis.com/google.rpc.ErrorInfo",
        "{v}"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{v}"
    );
}

#[allow(dead_code)]
pub fn addr(s: &str) -> SocketAddr {
    s.trim_start_matches("http://").parse().unwrap()
}

/// Every row of an admin collection (`issuedApiKeys`/`importedApiKeys`),
/// following `next_page_token` to the end.
pub async fn list_all(base: &str, collection: &str, field: &str) -> Vec<Value> {
    let c = reqwest::Client::new();
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let v: Value = c
            .get(format!(
                "{base}/v2alpha1/admin/{collection}?page_size=1000&page_token={token}"
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        out.extend(v[field].as_array().cloned().unwrap_or_default());
        match v["next_page_token"].as_str() {
            Some(t) if !t.is_empty() => token = t.to_string(),
            _ => return out,
        }
    }
}
