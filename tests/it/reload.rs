//! Secrets and prefixes reload from the watched config file without a
//! restart; a bad file is refused and the old settings keep serving.

use serde_json::json;

use crate::{TestServer, SECRET};

const NEW_SECRET: &str = "rotated-hmac-secret-with-at-least-32-characters";

fn yaml(current: &str, retired: &[&str], prefix: &str) -> String {
    let retired: String = retired
        .iter()
        .map(|r| format!("\n      - value: \"{r}\""))
        .collect();
    format!(
        "secrets:\n  hmac:\n    current: \"{current}\"\n    retired:{}\ncredentials:\n  issuer: test-issuer\n  api_keys:\n    prefix:\n      current: {prefix}\n      retired: [test]\n",
        if retired.is_empty() { " []".to_string() } else { retired }
    )
}

async fn wait_until(
    mut f: impl FnMut() -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>,
) -> bool {
    for _ in 0..80 {
        if f().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn secret_rotation_reloads_without_restart() {
    let s = TestServer::start_with_file(&yaml(SECRET, &[], "test"), &[]).await;
    let (_, old_key) = s.issue("before", "u").await;
    let path = s.dir.path().join("talos.yaml");

    // Rotate: new current secret and prefix, old secret retired.
    std::fs::write(&path, yaml(NEW_SECRET, &[SECRET], "live")).unwrap();
    let base = s.base.clone();
    let client = s.client.clone();
    let reloaded = wait_until(|| {
        let (client, base) = (client.clone(), base.clone());
        Box::pin(async move {
            let r = client
                .post(format!("{base}/v2alpha1/admin/issuedApiKeys"))
                .json(&json!({"name": "probe", "actor_id": "u"}))
                .send()
                .await
                .unwrap();
            let v: serde_json::Value = r.json().await.unwrap();
            v["secret"]
                .as_str()
                .is_some_and(|k| k.starts_with("live_v1_"))
        })
    })
    .await;
    assert!(reloaded, "the new prefix took effect within 8 s");
    let (_, new_key) = s.issue("after", "u").await;
    assert!(new_key.starts_with("live_v1_"));
    assert_eq!(
        s.verify(&old_key).await["is_valid"],
        true,
        "old key verifies via the retired secret and prefix"
    );
    assert_eq!(s.verify(&new_key).await["is_valid"], true);

    // A broken file is refused; the previous settings keep serving.
    std::fs::write(&path, "secrets:\n  hmac:\n    current: short\n").unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2600)).await;
    let (_, still) = s.issue("still", "u").await;
    assert!(still.starts_with("live_v1_"));
    assert_eq!(s.verify(&old_key).await["is_valid"], true);

    // Dropping the retired secret makes the old key stop verifying.
    std::fs::write(&path, yaml(NEW_SECRET, &[], "live")).unwrap();
    let s_ref = &s;
    let mut ok = false;
    for _ in 0..80 {
        if s_ref.verify(&old_key).await["error_code"] == "VERIFICATION_ERROR_NOT_FOUND" {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ok, "retiring the old secret for good invalidates its keys");
}
