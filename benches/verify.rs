//! In-process verification through `App::verify`:
//!
//! * cache hit over many issued keys (memory key store + moka memory cache),
//!   random key per iteration, and the memory each cached key costs (RSS
//!   before/after filling the cache);
//! * derived JWT verification next to a bare `jsonwebtoken::decode` of the
//!   same token with the same key.
//!
//! `cargo bench --bench verify` (1M keys; `BENCH_KEYS=100000` or
//! `BENCH_QUICK=1` for fewer).

mod common;

// The allocator the `talos` binary uses (src/main.rs), so in-process
// figures match the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use base64::Engine;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Map, Value};
use talos::adapters::cache::MemoryCache;
use talos::adapters::jwk_generate::{generate, GenerateOptions, JwkKind};
use talos::adapters::memory::MemoryKeyStore;
use talos::app::config::CacheKind;
use talos::app::derive::{load_signing_keys, DeriveRequest};
use talos::app::service::{CacheStatus, RequestCtx};
use talos::app::App;
use talos::domain::derived::DerivedClaims;
use talos::domain::{NetworkId, Secret, TokenAlgorithm};
use talos::ports::{KeyCache, KeyStore, SystemClock};

fn cached_settings() -> talos::app::config::Settings {
    common::settings(&[
        ("TALOS_CACHE_TYPE", "memory"),
        ("TALOS_CACHE_ENABLED", "true"),
        ("TALOS_CACHE_TTL", "1h"),
        ("TALOS_CACHE_MEMORY_MAX_SIZE", "10737418240"),
    ])
}

fn app_with(
    store: Arc<dyn KeyStore>,
    cache: Arc<dyn KeyCache>,
    settings: &talos::app::config::Settings,
) -> App {
    App::new(
        store,
        cache,
        Arc::new(SystemClock),
        Arc::new(ArcSwap::from_pointee(settings.runtime.clone())),
        None,
    )
}

fn cache_hit(c: &mut Criterion) {
    let n = common::key_count("BENCH_KEYS", 1_000_000);
    let rt = common::runtime();
    let settings = cached_settings();
    let CacheKind::Memory { max_bytes } = settings.fixed.cache_kind else {
        panic!("memory cache expected")
    };
    let store: Arc<dyn KeyStore> = Arc::new(MemoryKeyStore::new());
    let t = Instant::now();
    let tokens = rt.block_on(common::seed_issued(&store, n, 1));
    eprintln!(
        "seeded {n} issued keys into the memory store in {:?}",
        t.elapsed()
    );
    let cache = MemoryCache::new(max_bytes);
    let app = app_with(store, Arc::new(cache.clone()), &settings);
    let ctx = RequestCtx::new(NetworkId::NIL);

    // Fill the cache: one verification per key (a miss that writes the entry).
    rt.block_on(cache.run_pending_tasks());
    let rss_before = common::rss_bytes();
    let t = Instant::now();
    rt.block_on(async {
        for tok in &tokens {
            let o = app.verify(&ctx, tok).await;
            assert!(o.result.is_ok(), "seeded key verifies");
        }
        cache.run_pending_tasks().await;
    });
    let rss_after = common::rss_bytes();
    let entries = cache.entry_count();
    let per_key = (rss_after.saturating_sub(rss_before)) as f64 / entries.max(1) as f64;
    eprintln!(
        "cache filled with {entries} entries in {:?}; RSS {:.1} MiB -> {:.1} MiB",
        t.elapsed(),
        rss_before as f64 / 1048576.0,
        rss_after as f64 / 1048576.0
    );
    println!("MEMORY_PER_CACHED_KEY bytes={per_key:.0} entries={entries} rss_before={rss_before} rss_after={rss_after}");
    assert_eq!(entries as usize, n, "every key is cached (no eviction)");
    let o = rt.block_on(app.verify(&ctx, &tokens[0]));
    assert_eq!(o.cache, CacheStatus::Hit);

    let mut g = c.benchmark_group("app_verify");
    let mut pick = common::Pick::new(0x5eed);
    // The credential arrives in a fresh buffer, as a request body would (a
    // server has just read it off the socket): the copy out of the 1M-token
    // table is set-up, not timed.
    g.bench_function(format!("cache_hit_random/{n}_keys"), |b| {
        b.to_async(&rt).iter_batched(
            || tokens[pick.next(n)].clone(),
            |tok| {
                let app = &app;
                let ctx = &ctx;
                async move { black_box(app.verify(ctx, &tok).await) }
            },
            BatchSize::SmallInput,
        )
    });
    // The same, reading the credential straight out of the token table
    // (also timing the cache misses on that table; the figure reported
    // before 2026-11-30).
    g.bench_function(format!("cache_hit_random_cold_token/{n}_keys"), |b| {
        b.to_async(&rt).iter(|| {
            let tok = &tokens[pick.next(n)];
            let app = &app;
            let ctx = &ctx;
            async move { black_box(app.verify(ctx, tok).await) }
        })
    });
    g.bench_function("cache_hit_same_key", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(app.verify(&ctx, &tokens[0]).await) })
    });
    g.bench_function("invalid_checksum", |b| {
        let mut bad = tokens[0].clone();
        bad.pop();
        bad.push('z');
        b.to_async(&rt)
            .iter(|| async { black_box(app.verify(&ctx, &bad).await) })
    });
    g.finish();
}

fn jwks_url(keys: &[Value]) -> String {
    format!(
        "base64://{}",
        base64::engine::general_purpose::STANDARD.encode(json!({ "keys": keys }).to_string())
    )
}

fn derived_jwt(c: &mut Criterion) {
    let rt = common::runtime();
    let mut g = c.benchmark_group("derived_jwt");
    for (label, kind, alg) in [
        ("EdDSA", JwkKind::Eddsa, Algorithm::EdDSA),
        ("ES256", JwkKind::Ecdsa, Algorithm::ES256),
    ] {
        let jwk = generate(
            kind,
            &GenerateOptions {
                kid: Some(format!("bench-{label}")),
                ..Default::default()
            },
        )
        .expect("jwk");
        let settings = common::settings(&[]);
        let store: Arc<dyn KeyStore> = Arc::new(MemoryKeyStore::new());
        let tokens = rt.block_on(common::seed_issued(&store, 1, 1));
        let app = app_with(
            store,
            Arc::new(talos::adapters::cache::NoopCache),
            &settings,
        );
        app.signing_keys().store(
            load_signing_keys(&[Secret::new(jwks_url(std::slice::from_ref(&jwk)))])
                .expect("signing keys"),
        );
        let ctx = RequestCtx::new(NetworkId::NIL);
        let token = rt
            .block_on(app.derive(
                &ctx,
                DeriveRequest {
                    credential: Secret::new(tokens[0].clone()),
                    algorithm: TokenAlgorithm::Jwt,
                    ttl: Some(Duration::from_secs(3600)),
                    scopes: Vec::new(),
                    custom_claims: Map::new(),
                    audiences: Vec::new(),
                },
            ))
            .unwrap_or_else(|e| panic!("derive: {}", e.message))
            .token
            .expose()
            .to_string();
        let o = rt.block_on(app.verify(&ctx, &token));
        assert!(o.result.is_ok(), "derived JWT verifies");

        let public: Jwk = serde_json::from_value(jwk.clone()).expect("jwk parses");
        let key = DecodingKey::from_jwk(&public).expect("decoding key");
        let mut v = Validation::new(alg);
        v.validate_exp = false;
        v.validate_nbf = false;
        v.validate_aud = false;
        v.required_spec_claims.clear();
        jsonwebtoken::decode::<DerivedClaims>(&token, &key, &v).expect("bare decode");

        g.bench_function(format!("app_verify/{label}"), |b| {
            b.to_async(&rt)
                .iter(|| async { black_box(app.verify(&ctx, &token).await) })
        });
        g.bench_function(format!("bare_jsonwebtoken/{label}"), |b| {
            b.iter(|| {
                black_box(jsonwebtoken::decode::<DerivedClaims>(
                    black_box(&token),
                    &key,
                    &v,
                ))
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion_config(4);
    targets = cache_hit, derived_jwt
}
criterion_main!(benches);
