//! SQLite on a full disk: the server refuses writes with a clear error,
//! keeps serving reads and verifications, writes nothing half-way, and
//! recovers by itself once space is freed. The disk is a 3 MiB tmpfs the
//! test mounts (root is needed for that; the test says so otherwise).

use std::process::Command;

use serde_json::{json, Value};

use crate::binary::{sigterm, spawn, stderr_of, wait_ready};
use crate::{list_all, post_json};

struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Tmpfs {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a size-limited tmpfs and needs root (or CAP_SYS_ADMIN): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

async fn count(base: &str) -> usize {
    list_all(base, "importedApiKeys", "imported_api_keys")
        .await
        .len()
}

fn batch(from: usize, n: usize) -> Value {
    let pad = "x".repeat(400);
    let items: Vec<Value> = (from..from + n)
        .map(|i| {
            json!({"raw_key": format!("full-disk-{i:06}"), "name": format!("k{i}"),
                   "actor_id": "u", "metadata": {"pad": pad}})
        })
        .collect();
    json!({ "requests": items })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_disk_full_refuses_writes_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let _fs = Tmpfs::mount(dir.path(), "3m");
    // Ballast we delete later to free space.
    let ballast = dir.path().join("ballast");
    std::fs::write(&ballast, vec![0u8; 1024 * 1024]).unwrap();
    let p = spawn(dir.path(), &[("TALOS_LOG_LEVEL", "error")]);
    wait_ready(&p).await;

    let (st, v) = post_json(
        &p.base,
        "/v2alpha1/admin/issuedApiKeys",
        json!({"name": "early", "actor_id": "u"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let early = v["secret"].as_str().unwrap().to_string();

    // Fill the disk with batches of 100 until a write fails.
    let mut next = 0;
    let mut acked = 0;
    let failure = loop {
        let (st, v) = post_json(
            &p.base,
            "/v2alpha1/admin/importedApiKeys:batchCreate",
            batch(next, 100),
        )
        .await;
        next += 100;
        if st != 200 {
            break (st, v);
        }
        acked += v["results"].as_array().unwrap().len();
        assert!(next < 200_000, "the disk never filled up");
    };
    let (st, body) = failure;
    assert!(
        st >= 500,
        "a full disk is a server-side failure: {st} {body}"
    );
    assert_eq!(body["error"]["code"], st, "error envelope: {body}");
    let text = body.to_string();
    assert!(
        !text.contains("full-disk-"),
        "no raw key in the error: {text}"
    );

    // Still alive: health, reads and verification work.
    let alive = reqwest::get(format!("{}/health/alive", p.ops))
        .await
        .unwrap();
    assert_eq!(alive.status(), 200);
    let (_, v) = post_json(
        &p.base,
        "/v2alpha1/admin/apiKeys:verify",
        json!({"credential": early}),
    )
    .await;
    assert_eq!(v["is_valid"], true, "{v}");
    // The failed batch left nothing behind.
    assert_eq!(
        count(&p.base).await,
        acked,
        "only acknowledged batches are stored"
    );

    // Free space: writes succeed again without a restart. The first write
    // after freeing space may still fail once under load (a pooled SQLite
    // connection that met SQLITE_FULL mid-transaction, or a checkpoint still
    // catching up), so allow a few attempts; each failure is a clean error
    // that stores nothing (checked by the count below).
    std::fs::remove_file(&ballast).unwrap();
    let mut attempts = Vec::new();
    for _ in 0..5 {
        let (st, v) = post_json(
            &p.base,
            "/v2alpha1/admin/importedApiKeys:batchCreate",
            batch(next, 100),
        )
        .await;
        attempts.push(st);
        if st == 200 {
            break;
        }
        assert!(st >= 500, "a failed write is a server error: {st} {v}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    if attempts.last() != Some(&200) {
        // Stop the server first: its stderr only ends when it exits.
        sigterm(&p.child);
        let (_, err) = stderr_of(p);
        panic!("writes did not recover once space was free: {attempts:?}\n{err}");
    }
    assert_eq!(count(&p.base).await, acked + 100, "attempts: {attempts:?}");

    sigterm(&p.child);
    let (status, err) = stderr_of(p);
    assert!(status.success(), "{err}");
}
