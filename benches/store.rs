//! SQL paths, in process:
//!
//! * verify with the cache off (`cache.type: noop`, every call reads the
//!   database) next to a bare sqlx primary-key lookup of the same row on the
//!   same database — SQLite (temp file) and PostgreSQL;
//! * issue, and batch import of 1000 keys, on SQLite.
//!
//! `cargo bench --bench store`. Keys per database: `BENCH_SQL_KEYS`
//! (default 100000; `BENCH_QUICK=1` → 10000). PostgreSQL comes from
//! `TALOS_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`);
//! a fresh `talos_bench_<pid>` database is created and dropped. When it is
//! unreachable the PostgreSQL group is skipped with a message.

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use sqlx::{Connection, Executor};
use talos::adapters::cache::NoopCache;
use talos::adapters::store::{open_store, StoreOptions};
use talos::app::service::{NewKey, RequestCtx};
use talos::app::App;
use talos::domain::{NetworkId, Secret};
use talos::ports::{KeyStore, SystemClock};

/// The statement the SQL stores run for an issued-key lookup (same columns,
/// same predicate on the primary key).
const BARE_LOOKUP: &str = "SELECT nid, key_id, name, token_prefix, actor_id, scopes, status, \
     metadata, last_used_at, expires_at, created_at, updated_at, rate_limit_quota, \
     rate_limit_window, revocation_reason, revocation_reason_text, allowed_cidrs, \
     request_id, visibility FROM issued_api_keys WHERE nid = $1 AND key_id = $2";

const NIL: &str = "00000000-0000-0000-0000-000000000000";

fn uncached_app(store: Arc<dyn KeyStore>) -> App {
    let settings = common::settings(&[]);
    App::new(
        store,
        Arc::new(NoopCache),
        Arc::new(SystemClock),
        Arc::new(ArcSwap::from_pointee(settings.runtime.clone())),
        None,
    )
}

async fn open(dsn: &str) -> Arc<dyn KeyStore> {
    open_store(&StoreOptions {
        dsn: Secret::new(dsn),
        ..StoreOptions::default()
    })
    .await
    .unwrap_or_else(|e| panic!("open {}: {e}", talos::adapters::store::redact_dsn(dsn)))
}

/// Key ids (the uuid inside each token) for the bare lookup.
fn key_ids(tokens: &[String]) -> Vec<String> {
    tokens
        .iter()
        .map(|t| {
            talos::domain::keys::parse_v1(t)
                .expect("token parses")
                .key_id
                .as_hyphenated()
                .to_string()
        })
        .collect()
}

/// The bare primary-key lookup of one issued key.
async fn bare_lookup<P: sqlx::Database>(pool: &sqlx::Pool<P>, id: &str) -> Option<P::Row>
where
    for<'q> <P as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, P>,
    for<'q> &'q str: sqlx::Encode<'q, P> + sqlx::Type<P>,
    for<'c> &'c sqlx::Pool<P>: sqlx::Executor<'c, Database = P>,
{
    sqlx::query::<P>(BARE_LOOKUP)
        .bind(NIL)
        .bind(id)
        .fetch_optional(pool)
        .await
        .expect("lookup")
}

/// `verify_miss` (cache off) next to `bare_sqlx_pk_lookup` on the same
/// random keys, then the [`paired`] comparison.
#[allow(clippy::too_many_arguments)]
fn miss_vs_bare<P: sqlx::Database>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &tokio::runtime::Runtime,
    label: &str,
    seed: u64,
    app: &App,
    pool: &sqlx::Pool<P>,
    tokens: &[String],
    ids: &[String],
) where
    for<'q> <P as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, P>,
    for<'q> &'q str: sqlx::Encode<'q, P> + sqlx::Type<P>,
    for<'c> &'c sqlx::Pool<P>: sqlx::Executor<'c, Database = P>,
{
    let n = tokens.len();
    let ctx = RequestCtx::new(NetworkId::NIL);
    let mut pick = common::Pick::new(seed);
    g.bench_function(format!("verify_miss/{n}_keys"), |b| {
        b.to_async(rt).iter(|| {
            let tok = &tokens[pick.next(n)];
            let ctx = &ctx;
            async move {
                let o = app.verify(ctx, tok).await;
                debug_assert!(o.result.is_ok());
                black_box(o)
            }
        })
    });
    let mut pick = common::Pick::new(seed);
    g.bench_function(format!("bare_sqlx_pk_lookup/{n}_keys"), |b| {
        b.to_async(rt).iter(|| {
            let id = &ids[pick.next(n)];
            async move {
                let row = bare_lookup(pool, id).await;
                debug_assert!(row.is_some());
                black_box(row)
            }
        })
    });
    rt.block_on(paired(label, app, tokens, ids, |id| async move {
        bare_lookup(pool, id).await.is_some()
    }));
}

/// Paired comparison that survives a noisy machine: `rounds` alternating
/// blocks of `per` verify-miss calls and `per` bare lookups (same random
/// keys), reporting the median per-call time of each and their ratio.
/// `found(id)` is the bare lookup (whether the row exists).
async fn paired<'a, F, Fut>(label: &str, app: &App, tokens: &[String], ids: &'a [String], found: F)
where
    F: Fn(&'a str) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let ctx = RequestCtx::new(NetworkId::NIL);
    let (rounds, per) = (9, 500);
    let mut pick = common::Pick::new(99);
    let (mut miss, mut bare) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let picks: Vec<usize> = (0..per).map(|_| pick.next(tokens.len())).collect();
        let t = Instant::now();
        for &i in &picks {
            black_box(app.verify(&ctx, &tokens[i]).await);
        }
        miss.push(t.elapsed() / per as u32);
        let t = Instant::now();
        for &i in &picks {
            black_box(found(&ids[i]).await);
        }
        bare.push(t.elapsed() / per as u32);
    }
    miss.sort();
    bare.sort();
    let (m, b) = (miss[rounds / 2], bare[rounds / 2]);
    println!(
        "MISS_VS_BARE_{label} verify_miss_us={:.1} bare_lookup_us={:.1} ratio={:.2} (median of {rounds} interleaved blocks of {per})",
        m.as_secs_f64() * 1e6,
        b.as_secs_f64() * 1e6,
        m.as_secs_f64() / b.as_secs_f64()
    );
}

fn sqlite(c: &mut Criterion) {
    let n = common::key_count("BENCH_SQL_KEYS", 100_000);
    let rt = common::runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bench.db");
    let dsn = format!("sqlite://{}", path.display());
    let store = rt.block_on(open(&dsn));
    let t = Instant::now();
    let tokens = rt.block_on(common::seed_issued(&store, n, 1));
    eprintln!("sqlite: seeded {n} issued keys in {:?}", t.elapsed());
    let ids = key_ids(&tokens);
    let app = uncached_app(store);
    let bare = rt.block_on(async {
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
            // The store's read settings (read-only, its memory map, no ping
            // before a connection is handed out), so the
            // ratio measures the store's own work, not a different setup.
            .read_only(true)
            .pragma(
                "mmap_size",
                talos::adapters::sql::sqlite::READ_MAP_BYTES.to_string(),
            );
        sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(10)
            .test_before_acquire(false)
            .connect_with(opts)
            .await
            .expect("bare sqlite pool")
    });

    let mut g = c.benchmark_group("sqlite");
    miss_vs_bare(&mut g, &rt, "SQLITE", 11, &app, &bare, &tokens, &ids);

    let mut i = 0u64;
    g.bench_function("issue", |b| {
        b.to_async(&rt).iter(|| {
            i += 1;
            let input = NewKey {
                name: "bench".into(),
                actor_id: format!("user-{}", i % 1000),
                scopes: vec!["read".into()],
                ..NewKey::default()
            };
            let app = &app;
            async move { black_box(app.issue(NetworkId::NIL, input).await.expect("issued")) }
        })
    });

    // Tail latency of issue, which criterion's mean does not show: 2000
    // sequential calls, each timed.
    let mut lat: Vec<Duration> = rt.block_on(async {
        let mut lat = Vec::with_capacity(2000);
        for j in 0..2000 {
            let input = NewKey {
                name: "bench".into(),
                actor_id: format!("user-{}", j % 1000),
                scopes: vec!["read".into()],
                ..NewKey::default()
            };
            let t = Instant::now();
            app.issue(NetworkId::NIL, input).await.expect("issued");
            lat.push(t.elapsed());
        }
        lat
    });
    lat.sort();
    let q = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "ISSUE_LATENCY_SQLITE n={} p50_us={} p99_us={} p999_us={} max_us={}",
        lat.len(),
        q(0.50).as_micros(),
        q(0.99).as_micros(),
        q(0.999).as_micros(),
        lat[lat.len() - 1].as_micros()
    );

    g.sample_size(10);
    let mut batch_no = 0u64;
    g.bench_function("batch_import_1000", |b| {
        b.to_async(&rt).iter_batched(
            || {
                batch_no += 1;
                (0..1000)
                    .map(|j| {
                        Ok((
                            Secret::new(format!("legacy_{batch_no}_{j}_{}", uuid::Uuid::new_v4())),
                            NewKey {
                                name: "imported".into(),
                                actor_id: format!("user-{}", j % 1000),
                                scopes: vec!["read".into()],
                                ..NewKey::default()
                            },
                        ))
                    })
                    .collect::<Vec<_>>()
            },
            |items| async {
                let r = app
                    .batch_import(NetworkId::NIL, items)
                    .await
                    .expect("batch import");
                black_box(r.items.len())
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
    rt.block_on(bare.close());
}

fn postgres(c: &mut Criterion) {
    let admin_url = std::env::var("TALOS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let rt = common::runtime();
    let db = format!("talos_bench_{}", std::process::id());
    let base = admin_url
        .rsplit_once('/')
        .map(|(b, _)| b.to_string())
        .unwrap_or(admin_url.clone());
    let created = rt.block_on(async {
        let mut conn = sqlx::PgConnection::connect(&admin_url).await?;
        conn.execute(format!("CREATE DATABASE {db}").as_str())
            .await?;
        // Seeding speed only (the database is dropped afterwards): commits
        // do not wait for the WAL flush. Reads are unaffected.
        conn.execute(format!("ALTER DATABASE {db} SET synchronous_commit = off").as_str())
            .await?;
        Ok::<_, sqlx::Error>(())
    });
    if let Err(e) = created {
        eprintln!("postgres: skipped ({e}); start PostgreSQL or set TALOS_TEST_POSTGRES_URL");
        return;
    }
    let dsn = format!("{base}/{db}");
    let n = common::key_count("BENCH_SQL_KEYS", 100_000);
    let store = rt.block_on(open(&dsn));
    let t = Instant::now();
    let tokens = rt.block_on(common::seed_issued(&store, n, 16));
    eprintln!("postgres: seeded {n} issued keys in {:?}", t.elapsed());
    let ids = key_ids(&tokens);
    let app = uncached_app(store);
    let bare = rt.block_on(async {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(10)
            .connect(&dsn)
            .await
            .expect("bare pg pool")
    });
    let mut g = c.benchmark_group("postgres");
    miss_vs_bare(&mut g, &rt, "POSTGRES", 13, &app, &bare, &tokens, &ids);
    g.finish();

    drop(app);
    rt.block_on(async {
        bare.close().await;
        // The store's pool goes with `app`; FORCE ends any straggler.
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url).await {
            let _ = conn
                .execute(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)").as_str())
                .await;
        }
    });
}

criterion_group! {
    name = benches;
    config = common::criterion_config(4);
    targets = sqlite, postgres
}
criterion_main!(benches);
