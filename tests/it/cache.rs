#![cfg_attr(not(feature = "cache-memory"), allow(unused_imports, dead_code))]
//! Verification caches: memory, Redis (tiered, cross-node invalidation),
//! degradation when Redis goes away.

use std::time::{Duration, Instant};

use serde_json::json;
use talos::adapters::http::Plane;

use crate::services::{self, PrivateRedis};
use crate::TestServer;

#[cfg(feature = "cache-memory")]
#[tokio::test]
async fn memory_cache_hits_and_revocation_evicts() {
    let s = TestServer::start(
        Plane::All,
        &[
            ("TALOS_CACHE_TYPE", "memory"),
            ("TALOS_CACHE_ENABLED", "true"),
        ],
    )
    .await;
    let (id, secret) = s.issue("c", "u").await;
    let (c, v) = s.verify_cached(&secret, &[]).await;
    assert_eq!((c.as_str(), v["is_valid"].as_bool()), ("MISS", Some(true)));
    let (c, v) = s.verify_cached(&secret, &[]).await;
    assert_eq!((c.as_str(), v["is_valid"].as_bool()), ("HIT", Some(true)));
    assert_eq!(
        s.verify_cached(&secret, &[("cache-control", "no-cache")])
            .await
            .0,
        "SKIP"
    );
    assert_eq!(
        s.verify_cached(&secret, &[("pragma", "no-cache")]).await.0,
        "SKIP"
    );
    // A forged variant of a cached key never hits the cache.
    let mut forged = secret.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'x' { 'y' } else { 'x' });
    let (_, v) = s.verify_cached(&forged, &[]).await;
    assert_eq!(v["error_code"], "VERIFICATION_ERROR_NOT_FOUND");
    // Revocation evicts: the next verification sees it at once.
    s.post(
        &format!("/v2alpha1/admin/issuedApiKeys/{id}:revoke"),
        json!({}),
    )
    .await;
    let (c, v) = s.verify_cached(&secret, &[]).await;
    assert_eq!(c, "MISS");
    assert_eq!(v["error_code"], "VERIFICATION_ERROR_REVOKED");
    // Failures are not cached.
    let (c, _) = s.verify_cached(&secret, &[]).await;
    assert_eq!(c, "MISS");
}

#[tokio::test]
async fn oss_style_cache_config_is_refused_when_not_compiled() {
    // The default build has both caches; check the config error path instead.
    let r = talos::app::config::load(
        None,
        vec![
            (
                "TALOS_SECRETS_HMAC_CURRENT".to_string(),
                crate::SECRET.to_string(),
            ),
            ("TALOS_DB_DSN".to_string(), "memory".to_string()),
            ("TALOS_CREDENTIALS_ISSUER".to_string(), "x".to_string()),
            ("TALOS_CACHE_TYPE".to_string(), "weird".to_string()),
        ],
    )
    .unwrap();
    let e = talos::app::config::resolve(&r.raw, &mut vec![]).unwrap_err();
    assert_eq!(e, "unknown cache type: weird");
}

#[cfg(all(feature = "cache-redis", feature = "postgres"))]
#[tokio::test]
async fn redis_invalidation_reaches_other_nodes_within_a_second() {
    let addr = services::redis_url();
    services::require_redis(&addr).await;
    let db = services::pg::FreshDb::create().await;
    let networks = format!(r#"{{"addrs":["{addr}"],"timeout":"500ms"}}"#);
    let env = [
        ("TALOS_DB_DSN", db.url.as_str()),
        ("TALOS_CACHE_TYPE", "redis"),
        ("TALOS_CACHE_ENABLED", "true"),
        ("TALOS_CACHE_REDIS", networks.as_str()),
    ];
    let a = TestServer::start(Plane::All, &env).await;
    let b = TestServer::start(Plane::All, &env).await;
    let (id, secret) = a.issue("shared", "u").await;
    // Let the Redis connections and subscriptions come up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(b.verify_cached(&secret, &[]).await.0, "MISS");
    assert_eq!(b.verify_cached(&secret, &[]).await.0, "HIT");
    let (c, _) = a.verify_cached(&secret, &[]).await;
    assert_eq!(c, "HIT", "node A reads the entry B wrote to Redis");
    a.post(
        &format!("/v2alpha1/admin/issuedApiKeys/{id}:revoke"),
        json!({}),
    )
    .await;
    let start = Instant::now();
    loop {
        let (_, v) = b.verify_cached(&secret, &[]).await;
        if v["error_code"] == "VERIFICATION_ERROR_REVOKED" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "B still accepts a key revoked on A after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(a);
    drop(b);
    db.drop_now().await;
}

#[cfg(feature = "cache-redis")]
#[tokio::test]
async fn redis_outage_degrades_to_the_database_and_recovers() {
    let mut redis = PrivateRedis::start().await;
    let cfg = format!(r#"{{"addrs":["{}"],"timeout":"300ms"}}"#, redis.addr());
    let s = TestServer::start(
        Plane::All,
        &[
            ("TALOS_CACHE_TYPE", "redis"),
            ("TALOS_CACHE_ENABLED", "true"),
            ("TALOS_CACHE_REDIS", &cfg),
        ],
    )
    .await;
    let (_, k1) = s.issue("one", "u").await;
    let (_, k2) = s.issue("two", "u").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.verify_cached(&k1, &[]).await;
    assert_eq!(s.verify_cached(&k1, &[]).await.0, "HIT");

    redis.kill();
    // Cached keys keep verifying (L1); uncached keys fall back to the
    // database; nothing waits much longer than the Redis timeout.
    for cred in [&k1, &k2, &k2] {
        let t = Instant::now();
        let (_, v) = s.verify_cached(cred, &[]).await;
        assert_eq!(v["is_valid"], true, "{v}");
        assert!(
            t.elapsed() < Duration::from_millis(1500),
            "verify took {:?} with Redis down",
            t.elapsed()
        );
    }

    redis.restart().await;
    // The connection manager reconnects by itself; entries go back to Redis.
    let mut recovered = false;
    for _ in 0..50 {
        let probe = s.issue("probe", "u").await.1;
        s.verify_cached(&probe, &[]).await;
        let mut c = redis::Client::open(format!("redis://{}", redis.addr()))
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("talos:*")
            .query_async(&mut c)
            .await
            .unwrap();
        if !keys.is_empty() {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        recovered,
        "the cache writes to Redis again after it returns"
    );
}

/// A verification that read a key just before another instance revoked it
/// must not put the old state back into Redis (or its own L1) afterwards.
#[cfg(feature = "cache-redis")]
#[tokio::test]
async fn redis_put_racing_a_revocation_on_another_node_is_dropped() {
    use std::sync::Arc;

    use talos::adapters::cache::redis::{RedisCache, RedisOptions};
    use talos::domain::view::{KeyView, KeyViewParts};
    use talos::domain::{KeyKind, KeyStatus, KeyVisibility, NetworkId};
    use talos::ports::KeyCache;

    let addr = services::redis_url();
    services::require_redis(&addr).await;
    let namespace = format!("talos-race-{}", uuid::Uuid::new_v4().simple());
    let opts = RedisOptions {
        addr,
        password: None,
        db: 0,
        timeout: Duration::from_millis(500),
        namespace,
        l1_max_bytes: 1 << 20,
    };
    let a = RedisCache::start(opts.clone()).unwrap();
    let b = RedisCache::start(opts).unwrap();
    for _ in 0..100 {
        if a.connected().await && b.connected().await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await; // subscriptions
    let nid = NetworkId(uuid::Uuid::new_v4());
    let id = uuid::Uuid::new_v4().to_string();
    let view = Arc::new(KeyView::new(KeyViewParts {
        nid,
        kind: KeyKind::Issued,
        status: KeyStatus::Active,
        visibility: KeyVisibility::Secret,
        expires_at: None,
        rate_limit: None,
        key_id: &id,
        actor_id: "u",
        metadata_json: "{}",
        scopes: &["read"],
        allowed_cidrs: &[] as &[&str],
    }));
    let ttl = Duration::from_secs(60);

    // A takes its ticket and reads the active key; B revokes it meanwhile.
    let ticket = a.ticket(nid, &id).await;
    assert!(ticket.shared.is_some(), "redis generation readable");
    b.evict(nid, &id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await; // B's broadcast reaches A
    a.put(view.clone(), ttl, ticket).await.unwrap();
    assert!(
        a.get(nid, &id).await.unwrap().is_none(),
        "A's L1 and Redis stay empty"
    );
    assert!(
        b.get(nid, &id).await.unwrap().is_none(),
        "B sees no stale entry"
    );

    // A put with a ticket taken after the revocation is cached as usual.
    let ticket = a.ticket(nid, &id).await;
    a.put(view, ttl, ticket).await.unwrap();
    let hit = b.get(nid, &id).await.unwrap().expect("written to Redis");
    assert_eq!(hit.key_id(), id);
}
