//! SIGKILL in the middle of writes: after a restart on the same SQLite file
//! nothing is half-written. Batch imports commit whole chunks or nothing,
//! and a rotation either fully happened (new key active, old key revoked)
//! or did not happen at all.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::binary::{spawn, wait_ready, Proc};
use crate::{list_all, post_json};

const CHUNK: usize = 100;

fn sigkill(p: &mut Proc) {
    p.child.kill().unwrap();
    p.child.wait().unwrap();
}

fn chunk_body(chunk: usize) -> Value {
    let items: Vec<Value> = (0..CHUNK)
        .map(|i| {
            let n = chunk * CHUNK + i;
            json!({"raw_key": format!("crash-import-{n:05}"), "name": format!("k{n}"), "actor_id": "u"})
        })
        .collect();
    json!({ "requests": items })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_batch_import_leaves_whole_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let quiet = [("TALOS_LOG_LEVEL", "warn")];
    let mut p = spawn(dir.path(), &quiet);
    wait_ready(&p).await;
    let chunks = 30;
    let acked = Arc::new(AtomicUsize::new(0));
    let sender = tokio::spawn({
        let base = p.base.clone();
        let acked = acked.clone();
        async move {
            let c = reqwest::Client::new();
            for chunk in 0..chunks {
                let ok = c
                    .post(format!("{base}/v2alpha1/admin/importedApiKeys:batchCreate"))
                    .json(&chunk_body(chunk))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200);
                if !ok {
                    return;
                }
                acked.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    while acked.load(Ordering::SeqCst) < 5 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    sigkill(&mut p);
    let _ = sender.await;
    let acked = acked.load(Ordering::SeqCst);
    assert!(acked < chunks, "the kill landed before the import finished");

    let p = spawn(dir.path(), &quiet);
    wait_ready(&p).await;
    let stored = list_all(&p.base, "importedApiKeys", "imported_api_keys").await;
    assert_eq!(
        stored.len() % CHUNK,
        0,
        "a chunk was half-written: {} rows",
        stored.len()
    );
    let committed = stored.len() / CHUNK;
    assert!(
        committed == acked || committed == acked + 1,
        "{committed} chunks stored, {acked} acknowledged"
    );
    // Every stored key verifies; rerunning the whole import completes it
    // without duplicates.
    let (_, v) = post_json(
        &p.base,
        "/v2alpha1/admin/apiKeys:verify",
        json!({"credential": "crash-import-00042"}),
    )
    .await;
    assert_eq!(v["is_valid"], true, "{v}");
    let mut imported = 0;
    let mut duplicates = 0;
    for chunk in 0..chunks {
        let (status, v) = post_json(
            &p.base,
            "/v2alpha1/admin/importedApiKeys:batchCreate",
            chunk_body(chunk),
        )
        .await;
        if status == 200 {
            for r in v["results"].as_array().unwrap() {
                if r["imported_api_key"].is_object() {
                    imported += 1;
                } else {
                    assert_eq!(
                        r["error_code"], "BATCH_CREATE_IMPORTED_API_KEYS_ERROR_ALREADY_EXISTS",
                        "{r}"
                    );
                    duplicates += 1;
                }
            }
        } else {
            // A chunk of nothing but duplicates fails as a whole (409).
            assert_eq!(status, 409, "{v}");
            duplicates += CHUNK;
        }
    }
    assert_eq!(duplicates, committed * CHUNK);
    assert_eq!(imported + duplicates, chunks * CHUNK);
    let stored = list_all(&p.base, "importedApiKeys", "imported_api_keys").await;
    assert_eq!(stored.len(), chunks * CHUNK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_rotations_leaves_one_active_key() {
    let dir = tempfile::tempdir().unwrap();
    let quiet = [("TALOS_LOG_LEVEL", "warn")];
    let mut p = spawn(dir.path(), &quiet);
    wait_ready(&p).await;
    let (_, v) = post_json(
        &p.base,
        "/v2alpha1/admin/issuedApiKeys",
        json!({"name": "rot", "actor_id": "rotator"}),
    )
    .await;
    let first = v["issued_api_key"]["key_id"].as_str().unwrap().to_string();
    let acked = Arc::new(AtomicUsize::new(0));
    let rotator = tokio::spawn({
        let base = p.base.clone();
        let acked = acked.clone();
        async move {
            let c = reqwest::Client::new();
            let mut current = first;
            loop {
                let Ok(r) = c
                    .post(format!(
                        "{base}/v2alpha1/admin/issuedApiKeys/{current}:rotate"
                    ))
                    .json(&json!({}))
                    .send()
                    .await
                else {
                    return;
                };
                let Ok(v) = r.json::<Value>().await else {
                    return;
                };
                let Some(id) = v["issued_api_key"]["key_id"].as_str() else {
                    return;
                };
                current = id.to_string();
                acked.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    while acked.load(Ordering::SeqCst) < 10 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    sigkill(&mut p);
    let _ = rotator.await;
    let acked = acked.load(Ordering::SeqCst);

    let p = spawn(dir.path(), &quiet);
    wait_ready(&p).await;
    let keys = list_all(&p.base, "issuedApiKeys", "issued_api_keys").await;
    let active: Vec<&Value> = keys
        .iter()
        .filter(|k| k["status"] == "KEY_STATUS_ACTIVE")
        .collect();
    assert_eq!(
        active.len(),
        1,
        "exactly one key of the chain is active: {keys:?}"
    );
    assert!(
        keys.len() == acked + 1 || keys.len() == acked + 2,
        "{} keys after {acked} acknowledged rotations",
        keys.len()
    );
    for k in keys.iter().filter(|k| k["status"] != "KEY_STATUS_ACTIVE") {
        assert_eq!(k["status"], "KEY_STATUS_REVOKED", "{k}");
        assert_eq!(
            k["revocation_reason"], "REVOCATION_REASON_SUPERSEDED",
            "{k}"
        );
    }
}
