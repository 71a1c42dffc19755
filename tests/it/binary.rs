//! The real `talos` binary: graceful shutdown on SIGTERM, JSON logs without
//! secrets, the `keys` CLI, `migrate`, and startup errors.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::services::free_port;
use crate::{post_json, SECRET};

const BIN: &str = env!("CARGO_BIN_EXE_talos");

pub(crate) struct Proc {
    pub(crate) child: Child,
    pub(crate) base: String,
    pub(crate) ops: String,
}

pub(crate) fn spawn(dir: &std::path::Path, extra: &[(&str, &str)]) -> Proc {
    let (port, ops) = (free_port(), free_port());
    let mut cmd = Command::new(BIN);
    cmd.arg("serve")
        .env_clear()
        .env("TALOS_SECRETS_HMAC_CURRENT", SECRET)
        .env(
            "TALOS_DB_DSN",
            format!("sqlite://{}", dir.join("talos.db").display()),
        )
        .env("TALOS_CREDENTIALS_ISSUER", "bin-issuer")
        .env("TALOS_SERVE_HTTP_HOST", "127.0.0.1")
        .env("TALOS_SERVE_HTTP_PORT", port.to_string())
        .env("TALOS_SERVE_METRICS_HOST", "127.0.0.1")
        .env("TALOS_SERVE_METRICS_PORT", ops.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    Proc {
        child: cmd.spawn().unwrap(),
        base: format!("http://127.0.0.1:{port}"),
        ops: format!("http://127.0.0.1:{ops}"),
    }
}

pub(crate) async fn wait_ready(p: &Proc) {
    let c = reqwest::Client::new();
    for _ in 0..300 {
        if c.get(format!("{}/health/ready", p.ops))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("server did not become ready");
}

pub(crate) fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

/// A test that panics must not leave its server running.
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for the process to exit and returns its status and stderr.
pub(crate) fn stderr_of(mut p: Proc) -> (std::process::ExitStatus, String) {
    let child = &mut p.child;
    // Drain stderr first: a child blocked on a full pipe never exits.
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    (status, err)
}

#[tokio::test]
async fn sigterm_drains_and_logs_never_carry_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let p = spawn(dir.path(), &[]);
    wait_ready(&p).await;
    let (_, v) = post_json(
        &p.base,
        "/v2alpha1/admin/issuedApiKeys",
        json!({"name": "n", "actor_id": "u", "metadata": {"note": "x"}}),
    )
    .await;
    let key = v["secret"].as_str().unwrap().to_string();
    let (_, v) = post_json(
        &p.base,
        "/v2alpha1/admin/apiKeys:verify",
        json!({"credential": key}),
    )
    .await;
    assert_eq!(v["is_valid"], true);
    for (path, body) in [
        (
            "/v2alpha1/admin/importedApiKeys",
            json!({"raw_key": "sk_live_rawsecret_123", "name": "i", "actor_id": "u"}),
        ),
        (
            "/v2alpha1/admin/apiKeys:verify",
            json!({"credential": "sk_live_rawsecret_123"}),
        ),
        ("/v2alpha1/apiKeys:selfRevoke", json!({"credential": key})),
    ] {
        post_json(&p.base, path, body).await;
    }

    // A request in flight when SIGTERM arrives still completes.
    let slow = tokio::spawn({
        let base = p.base.clone();
        async move {
            let big: Vec<serde_json::Value> = (0..100)
                .map(|i| json!({"credential": format!("k{i}")}))
                .collect();
            reqwest::Client::new()
                .post(format!("{base}/v2alpha1/admin/apiKeys:batchVerify"))
                .json(&json!({"requests": big}))
                .send()
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(5)).await;
    let t = Instant::now();
    sigterm(&p.child);
    let (status, err) = stderr_of(p);
    assert!(status.success(), "exit status {status:?}\n{err}");
    assert!(t.elapsed() < Duration::from_secs(10));
    if let Ok(Ok(r)) = slow.await {
        assert_eq!(r.status(), 200);
    }
    assert!(
        err.contains("\"message\":\"server stopped\""),
        "JSON logs with a clean stop:\n{err}"
    );
    // The access lines (written straight into the log buffer, not through
    // a tracing event): JSON with the event's fields, one per request.
    let access: Vec<serde_json::Value> = err
        .lines()
        .filter(|l| l.contains("HTTP request completed"))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let verify = access
        .iter()
        .find(|v| v["http_request.path"] == "/v2alpha1/admin/apiKeys:verify")
        .unwrap_or_else(|| panic!("no access line for verify:\n{err}"));
    assert_eq!(verify["level"], "INFO");
    assert_eq!(verify["http_request.method"], "POST");
    assert_eq!(verify["status"], 200);
    assert!(verify["duration_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(verify["request_id"].as_str().unwrap().len(), 36);
    assert!(verify["timestamp"].as_str().unwrap().ends_with('Z'));
    assert!(access.len() >= 5, "{} access lines:\n{err}", access.len());
    for secret in [key.as_str(), SECRET, "sk_live_rawsecret_123"] {
        assert!(!err.contains(secret), "a secret leaked into the logs");
    }
}

#[tokio::test]
async fn the_log_level_filters_access_lines() {
    for (level, expect) in [("warn", false), ("info", true)] {
        let dir = tempfile::tempdir().unwrap();
        let p = spawn(dir.path(), &[("TALOS_LOG_LEVEL", level)]);
        wait_ready(&p).await;
        post_json(
            &p.base,
            "/v2alpha1/admin/apiKeys:verify",
            json!({"credential": "k"}),
        )
        .await;
        sigterm(&p.child);
        let (status, err) = stderr_of(p);
        assert!(status.success(), "{err}");
        assert_eq!(
            err.contains("HTTP request completed"),
            expect,
            "log level {level}:\n{err}"
        );
    }
}

#[tokio::test]
async fn startup_errors_are_clear() {
    let out = Command::new(BIN)
        .arg("serve")
        .env_clear()
        .env("TALOS_DB_DSN", "memory")
        .env("TALOS_CREDENTIALS_ISSUER", "x")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("project has no HMAC key configured"));
    let out = Command::new(BIN)
        .arg("serve")
        .env_clear()
        .env("TALOS_SECRETS_HMAC_CURRENT", SECRET)
        .env("TALOS_CREDENTIALS_ISSUER", "x")
        .env("TALOS_DB_DSN", "oracle://db")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unsupported database DSN scheme 'oracle'"),
        "{err}"
    );
    // A database that does not answer fails within the connect timeout.
    let t = Instant::now();
    let out = Command::new(BIN)
        .arg("serve")
        .env_clear()
        .env("TALOS_SECRETS_HMAC_CURRENT", SECRET)
        .env("TALOS_CREDENTIALS_ISSUER", "x")
        .env(
            "TALOS_DB_DSN",
            format!("postgres://postgres:pw@127.0.0.1:{}/none", free_port()),
        )
        .env("TALOS_DB_CONNECT_TIMEOUT", "2s")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "took {:?}",
        t.elapsed()
    );
    if cfg!(feature = "postgres") {
        assert!(
            err.contains("cannot connect to the postgres database"),
            "{err}"
        );
    } else {
        assert!(
            err.contains(
                "postgres is not compiled into this build; rebuild with --features postgres"
            ),
            "{err}"
        );
    }
    assert!(
        !err.contains(":pw@"),
        "the DSN password is never printed: {err}"
    );
}

#[tokio::test]
async fn keys_cli_against_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    // The server's stderr is a pipe nobody drains while the CLI runs: keep
    // the thousands of access-log lines out of it, or the server blocks.
    let p = spawn(dir.path(), &[("TALOS_LOG_LEVEL", "warn")]);
    wait_ready(&p).await;
    let cli = |args: &[&str]| {
        let out = Command::new(BIN)
            .arg("keys")
            .arg("-e")
            .arg(&p.base)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, key, err) = cli(&[
        "issue",
        "ci",
        "--actor",
        "u1",
        "--scopes",
        "read,write",
        "--ttl",
        "24h",
        "-q",
    ]);
    assert_eq!(code, 0, "{err}");
    let key = key.trim().to_string();
    assert!(key.starts_with("ory_ak_v1_"), "{key}");
    let (code, out, _) = cli(&["verify", &key, "--format", "json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["scopes"], json!(["read", "write"]));
    assert_eq!(
        cli(&["verify", "bogus-key", "-q"]).0,
        1,
        "invalid credential → exit 1"
    );
    let (code, out, _) = cli(&["issued", "list", "--actor", "u1"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("KEY_ID"), "{out}");
    let id = v["key_id"].as_str().unwrap();
    let (code, out, _) = cli(&[
        "issued", "update", id, "--name", "renamed", "--format", "yaml",
    ]);
    assert_eq!(code, 0);
    assert!(out.contains("name: renamed"), "{out}");
    let (code, _, err) = cli(&["issued", "revoke", id, "--reason", "key-compromise"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = cli(&["issued", "revoke", id]);
    assert_eq!(code, 1);
    assert!(
        err.contains("409 CONFLICT: key is already revoked"),
        "{err}"
    );
    let (code, _, err) = cli(&["issued", "get", "00000000-0000-4000-8000-000000000000"]);
    assert_eq!(
        (code, err.contains("404 API_KEY_NOT_FOUND")),
        (1, true),
        "{err}"
    );
    assert_eq!(
        cli(&["issue", "x"]).0,
        2,
        "missing --actor is a usage error"
    );
    let down = Command::new(BIN)
        .args([
            "keys",
            "-e",
            &format!("http://127.0.0.1:{}", free_port()),
            "verify",
            "k",
        ])
        .output()
        .unwrap();
    assert_eq!(down.status.code(), Some(3), "unreachable server → exit 3");

    // Bulk import: CSV with a duplicate row and a bad row; resumable.
    let csv = dir.path().join("keys.csv");
    let mut text = String::from("raw_key,name,actor_id,scopes\n");
    for i in 0..2500 {
        text.push_str(&format!("bulk-key-{i},k{i},u,read\n"));
    }
    text.push_str("bulk-key-7,dup,u,read\n");
    text.push_str("bulk-key-bad,,u,read\n");
    std::fs::write(&csv, &text).unwrap();
    let failures = dir.path().join("failed.jsonl");
    let (code, out, err) = cli(&[
        "imported",
        "batch-import",
        "--file",
        csv.to_str().unwrap(),
        "--failures",
        failures.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "one item failed → exit 1\n{out}{err}");
    assert!(
        out.contains("imported 2500  duplicates 1  failed 1"),
        "{out}"
    );
    let failed = std::fs::read_to_string(&failures).unwrap();
    assert_eq!(failed.lines().count(), 1);
    assert!(
        failed.contains("\"item\":2501") && !failed.contains("bulk-key-bad"),
        "{failed}"
    );
    assert!(
        err.contains("progress: 1000/2502"),
        "plain progress lines off a terminal: {err}"
    );
    // Running it again imports nothing twice.
    let (_, out, err) = cli(&["imported", "batch-import", "--file", csv.to_str().unwrap()]);
    assert!(
        out.contains("imported 0  duplicates 2501  failed 1"),
        "{out}\n{err}"
    );
    // Resume from a progress file: only the tail is sent.
    std::fs::write(dir.path().join("keys.csv.progress"), "2000").unwrap();
    let (_, out, err) = cli(&["imported", "batch-import", "--file", csv.to_str().unwrap()]);
    assert!(err.contains("resuming after 2000 of 2502"), "{err}");
    assert!(
        out.contains("imported 0  duplicates 501  failed 1"),
        "{out}\n{err}"
    );
    let (code, out, _) = cli(&["imported", "list", "--page-size", "1000", "--all", "-q"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 2500);

    sigterm(&p.child);
    let _ = stderr_of(p);
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn migrate_commands_on_postgres() {
    let db = crate::services::pg::FreshDb::create().await;
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .arg("migrate")
            .args(args)
            .args(["--database", &db.url])
            .env_clear()
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    let (ok, out) = run(&["status"]);
    assert!(ok);
    assert!(out.contains("pending"), "{out}");
    let (ok, out) = run(&["up"]);
    assert!(ok);
    assert!(out.contains("applied migration 1"), "{out}");
    let (ok, out) = run(&["status"]);
    assert!(ok && out.contains("clean (up to date)"), "{out}");
    db.drop_now().await;
}
