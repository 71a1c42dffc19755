//! The key-store contract suite: the cases in `cases.rs` run, unchanged, on
//! every adapter — memory, SQLite (temp file), PostgreSQL and MariaDB/MySQL
//! (a fresh database per run, dropped at the end), and the CockroachDB
//! adapter pointed at the local PostgreSQL.
//!
//! PostgreSQL and MariaDB come from `TALOS_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) and `TALOS_TEST_MYSQL_URL`
//! (default `mysql://root@127.0.0.1:3306/test`). An unreachable server fails
//! the test with instructions; it never passes silently.

// A build without SQL backends runs only the memory instance.
#![cfg_attr(
    not(any(feature = "sqlite", feature = "postgres", feature = "mysql")),
    allow(dead_code, unused_imports)
)]

mod cases;
mod isolation;
mod migrations;
mod support;

use std::time::Duration;

use talos::adapters::store::{open_store, OpenError, StoreOptions};
use talos::domain::{KeyKind, RevocationReason, Secret};
use talos::ports::StoreError;

use support::*;

fn options(dsn: &str) -> StoreOptions {
    StoreOptions {
        dsn: Secret::new(dsn),
        ..StoreOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn contract_memory() {
    let store = open_store(&options("memory")).await.expect("open memory");
    assert_eq!(store.backend(), "memory");
    let mut report = Report::new("memory");
    report.run_cases(&store, cases::ALL).await;
    report.finish();
}

const FUTURE_VERSION: i64 = 9999;

fn expect_newer_schema(r: Result<impl Sized, OpenError>) {
    match r {
        Err(OpenError::Store(StoreError::Schema(msg))) => assert_eq!(
            msg,
            "database schema version 9999 is newer than this binary supports (max 1); upgrade talos"
        ),
        Err(e) => panic!("expected a schema error, got {e}"),
        Ok(_) => panic!("a database migrated by a newer talos must be refused"),
    }
}

/// Opening a database that has a migration newer than this binary fails,
/// with and without `run_migrations`; `migrate_up` on an open store too.
async fn newer_schema_is_refused(dsn: String, inject: impl std::future::Future<Output = ()>) {
    let open = open_store(&options(&dsn))
        .await
        .expect("open before injection");
    inject.await;
    expect_newer_schema(open_store(&options(&dsn)).await);
    let no_migrate = StoreOptions {
        run_migrations: false,
        ..options(&dsn)
    };
    expect_newer_schema(open_store(&no_migrate).await);
    match open.migrate_up().await {
        Err(StoreError::Schema(m)) => assert!(m.contains("newer than this binary"), "{m}"),
        other => panic!("migrate_up must refuse: {other:?}"),
    }
}

/// A statement blocked on a lock held elsewhere ends in `Timeout`, quickly.
async fn blocked_write_times_out<L, Fut>(dsn: String, lock_row: L)
where
    L: FnOnce(talos::domain::NetworkId, String) -> Fut,
    Fut: std::future::Future<Output = Box<dyn std::any::Any + Send>>,
{
    let opts = StoreOptions {
        statement_timeout: Duration::from_millis(300),
        acquire_timeout: Duration::from_secs(5),
        ..options(&dsn)
    };
    let s = open_store(&opts).await.expect("open");
    let nid = new_network(&s).await;
    let k = issued(nid);
    s.insert(&k).await.unwrap();
    let guard = lock_row(nid, k.key_id.clone()).await;
    let started = std::time::Instant::now();
    let r = tokio::time::timeout(
        Duration::from_secs(20),
        s.revoke(
            nid,
            KeyKind::Issued,
            &k.key_id,
            RevocationReason::Unspecified,
            "",
            T0,
        ),
    )
    .await
    .expect("the store hung instead of timing out");
    assert!(
        matches!(r, Err(StoreError::Timeout)),
        "expected Timeout, got {r:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    drop(guard);
}

#[cfg(feature = "sqlite")]
mod sqlite_backend {
    use super::*;
    use sqlx::Connection;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn contract_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let dsn = format!("sqlite://{}", dir.path().join("talos.db").display());
        let store = open_store(&options(&dsn)).await.expect("open sqlite");
        assert_eq!(store.backend(), "sqlite");
        let mut report = Report::new("sqlite");
        report.run_cases(&store, cases::ALL).await;

        let d = dsn.clone();
        report
            .check("blocked_write_times_out", async move {
                blocked_write_times_out(d.clone(), |_, _| async move {
                    let path = d.trim_start_matches("sqlite://").to_string();
                    let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{path}"))
                        .await
                        .unwrap();
                    sqlx::query("BEGIN IMMEDIATE")
                        .execute(&mut c)
                        .await
                        .unwrap();
                    Box::new(c) as Box<dyn std::any::Any + Send>
                })
                .await
            })
            .await;
        let d = dsn.clone();
        report
            .check("newer_schema_is_refused", async move {
                let path = d.trim_start_matches("sqlite://").to_string();
                newer_schema_is_refused(d, async move {
                    let mut c =
                        sqlx::SqliteConnection::connect(&format!("sqlite://{path}")).await.unwrap();
                    sqlx::query(
                        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (?, 'from the future', TRUE, ?, 0)",
                    )
                    .bind(FUTURE_VERSION)
                    .bind(vec![0u8])
                    .execute(&mut c)
                    .await
                    .unwrap();
                })
                .await
            })
            .await;
        let d = format!("sqlite://{}", dir.path().join("checkpoint.db").display());
        report
            .check("wal_is_checkpointed_in_the_background", async move {
                // The store checkpoints from a background task, and SQLite's
                // own checkpoint only starts at 32 Ki WAL frames, far past
                // what 300 inserts write: the database file must grow while
                // the store stays open, with no one asking for a checkpoint.
                let path = d.trim_start_matches("sqlite://").to_string();
                let s = open_store(&options(&d)).await.expect("open");
                let nid = new_network(&s).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
                let size = || std::fs::metadata(&path).unwrap().len();
                let before = size();
                let mut keys = Vec::new();
                for _ in 0..300 {
                    let k = issued(nid);
                    s.insert(&k).await.unwrap();
                    keys.push(k);
                }
                let started = std::time::Instant::now();
                while size() <= before {
                    assert!(
                        started.elapsed() < Duration::from_secs(5),
                        "the database file stayed at {before} bytes: no checkpoint ran"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                for k in [&keys[0], &keys[299]] {
                    assert_eq!(
                        s.get(nid, KeyKind::Issued, &k.key_id)
                            .await
                            .unwrap()
                            .as_ref(),
                        Some(k)
                    );
                }
            })
            .await;
        report
            .check("in_memory_dsn", async {
                let s = open_store(&options("sqlite://:memory:"))
                    .await
                    .expect("open :memory:");
                let nid = new_network(&s).await;
                let k = issued(nid);
                s.insert(&k).await.unwrap();
                assert_eq!(
                    s.get(nid, KeyKind::Issued, &k.key_id).await.unwrap(),
                    Some(k)
                );
            })
            .await;
        report.finish();
    }
}

#[cfg(feature = "postgres")]
mod postgres_backend {
    use super::*;
    use sqlx::{Connection, PgConnection};

    pub fn base_url() -> String {
        std::env::var("TALOS_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
    }

    /// `url` with its database name replaced.
    pub fn with_db(url: &str, db: &str) -> String {
        let (main, query) = match url.split_once('?') {
            Some((m, q)) => (m, format!("?{q}")),
            None => (url, String::new()),
        };
        let host_start = main.find("://").map(|i| i + 3).unwrap_or(0);
        let host_end = main[host_start..]
            .find('/')
            .map(|i| host_start + i)
            .unwrap_or(main.len());
        format!("{}/{db}{query}", &main[..host_end])
    }

    async fn admin() -> PgConnection {
        let url = base_url();
        PgConnection::connect(&url).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {} ({e}). Start it with \
                 `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` \
                 or point TALOS_TEST_POSTGRES_URL at a server.",
                talos::adapters::store::redact_dsn(&url)
            )
        })
    }

    pub async fn create_db() -> (String, String) {
        let name = format!("talos_test_{}", uuid::Uuid::new_v4().simple());
        let mut c = admin().await;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut c)
            .await
            .unwrap();
        (name.clone(), with_db(&base_url(), &name))
    }

    pub async fn drop_db(name: &str) {
        let mut c = admin().await;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut c)
            .await
            .unwrap();
    }

    pub async fn inject_future_version(url: String) {
        let mut c = PgConnection::connect(&url).await.unwrap();
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES ($1, 'from the future', TRUE, $2, 0)",
        )
        .bind(FUTURE_VERSION)
        .bind(vec![0u8])
        .execute(&mut c)
        .await
        .unwrap();
    }

    pub async fn lock_row(
        url: String,
        nid: talos::domain::NetworkId,
        key_id: String,
    ) -> Box<dyn std::any::Any + Send> {
        let mut c = PgConnection::connect(&url).await.unwrap();
        sqlx::query("BEGIN").execute(&mut c).await.unwrap();
        sqlx::query("SELECT 1 FROM issued_api_keys WHERE nid = $1 AND key_id = $2 FOR UPDATE")
            .bind(nid.to_string())
            .bind(key_id)
            .execute(&mut c)
            .await
            .unwrap();
        Box::new(c)
    }

    /// Runs the suite on `scheme://…` pointing at a fresh PostgreSQL database.
    pub async fn run(scheme: &str, backend: &'static str) {
        let (name, url) = create_db().await;
        let dsn = format!("{scheme}://{}", url.split_once("://").unwrap().1);
        let mut report = Report::new(backend);
        match open_store(&options(&dsn)).await {
            Ok(store) => {
                assert_eq!(store.backend(), backend);
                report.run_cases(&store, cases::ALL).await;
                let (d, u) = (dsn.clone(), url.clone());
                report
                    .check("blocked_write_times_out", async move {
                        blocked_write_times_out(d, |nid, id| lock_row(u, nid, id)).await
                    })
                    .await;
                let (d, u) = (dsn.clone(), url.clone());
                report
                    .check("newer_schema_is_refused", async move {
                        newer_schema_is_refused(d, inject_future_version(u)).await
                    })
                    .await;
                store.ping().await.unwrap();
            }
            Err(e) => {
                report
                    .check("open", async move { panic!("open {backend}: {e}") })
                    .await
            }
        }
        drop_db(&name).await;
        report.finish();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn contract_postgres() {
        run("postgres", "postgres").await;
    }
}

/// The CockroachDB adapter (its migrations, lock-free migrator and 40001
/// retry wrapper) against the local PostgreSQL; CockroachDB-only behaviour
/// is not exercised here (see features.md).
#[cfg(feature = "cockroach")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn contract_cockroach_adapter_on_postgres() {
    postgres_backend::run("cockroach", "cockroach").await;
}

#[cfg(feature = "mysql")]
mod mysql_backend {
    use super::*;
    use sqlx::{Connection, MySqlConnection};

    fn base_url() -> String {
        std::env::var("TALOS_TEST_MYSQL_URL")
            .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
    }

    async fn admin() -> MySqlConnection {
        let url = base_url();
        MySqlConnection::connect(&url).await.unwrap_or_else(|e| {
            panic!(
                "MariaDB/MySQL is not reachable at {} ({e}). Start it with \
                 `start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd` \
                 or point TALOS_TEST_MYSQL_URL at a server.",
                talos::adapters::store::redact_dsn(&url)
            )
        })
    }

    async fn inject_future_version(url: String) {
        let mut c = MySqlConnection::connect(&url).await.unwrap();
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (?, 'from the future', TRUE, ?, 0)",
        )
        .bind(FUTURE_VERSION)
        .bind(vec![0u8])
        .execute(&mut c)
        .await
        .unwrap();
    }

    async fn lock_row(
        url: String,
        nid: talos::domain::NetworkId,
        key_id: String,
    ) -> Box<dyn std::any::Any + Send> {
        let mut c = MySqlConnection::connect(&url).await.unwrap();
        sqlx::query("BEGIN").execute(&mut c).await.unwrap();
        sqlx::query("SELECT 1 FROM issued_api_keys WHERE nid = ? AND key_id = ? FOR UPDATE")
            .bind(nid.to_string())
            .bind(key_id)
            .execute(&mut c)
            .await
            .unwrap();
        Box::new(c)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn contract_mysql() {
        let name = format!("talos_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!(
            "CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        ))
        .execute(&mut admin().await)
        .await
        .unwrap();
        let url = postgres_like_with_db(&base_url(), &name);
        let mut report = Report::new("mysql");
        match open_store(&options(&url)).await {
            Ok(store) => {
                assert_eq!(store.backend(), "mysql");
                report.run_cases(&store, cases::ALL).await;
                // the Go driver DSN form opens the same database
                let go_dsn = url.replacen("@127.0.0.1:3306/", "@tcp(127.0.0.1:3306)/", 1);
                if go_dsn != url {
                    let go = format!("{go_dsn}?parseTime=true&max_conns=2");
                    report
                        .check("go_style_dsn", async move {
                            let s = open_store(&options(&go)).await.expect("open Go-style DSN");
                            s.ping().await.unwrap();
                        })
                        .await;
                }
                let u = url.clone();
                report
                    .check("blocked_write_times_out", async move {
                        blocked_write_times_out(u.clone(), |nid, id| lock_row(u, nid, id)).await
                    })
                    .await;
                let u = url.clone();
                report
                    .check("newer_schema_is_refused", async move {
                        newer_schema_is_refused(u.clone(), inject_future_version(u)).await
                    })
                    .await;
            }
            Err(e) => {
                report
                    .check("open", async move { panic!("open mysql: {e}") })
                    .await
            }
        }
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
            .execute(&mut admin().await)
            .await
            .unwrap();
        report.finish();
    }

    fn postgres_like_with_db(url: &str, db: &str) -> String {
        let (main, query) = match url.split_once('?') {
            Some((m, q)) => (m, format!("?{q}")),
            None => (url, String::new()),
        };
        let host_start = main.find("://").map(|i| i + 3).unwrap_or(0);
        let host_end = main[host_start..]
            .find('/')
            .map(|i| host_start + i)
            .unwrap_or(main.len());
        format!("{}/{db}{query}", &main[..host_end])
    }
}
