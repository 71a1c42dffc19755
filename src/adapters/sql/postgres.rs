//! PostgreSQL adapter (also the engine of the CockroachDB adapter, which
//! only changes the migrations folder, the migration lock and the retry
//! policy; see `cockroach.rs`).

use std::future::Future;
use std::str::FromStr;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Executor, PgConnection};

use super::common::{self, bind_args, bind_key, Placeholders};
use super::rows::{map_db_error, nid_str, retry_serialization, KeyParams, KeyRow, TxError};
use crate::adapters::apply_revocation;
use crate::adapters::store::{OpenError, PoolConfig};
use crate::domain::{
    ApiKey, KeyKind, KeyStatus, ListFilter, NetworkId, RevocationReason, Timestamp,
};
use crate::ports::{BatchInsertOutcome, KeyStore, MigrationStatus, StoreError};

pub static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// Row locks for read-modify-write transactions (revoke, rotate).
const LOCK_ISSUED: &str = concat!(
    "SELECT ",
    common::issued_select_cols!(),
    " FROM issued_api_keys WHERE nid = $1 AND key_id = $2 FOR UPDATE"
);
const LOCK_IMPORTED: &str = concat!(
    "SELECT ",
    common::imported_select_cols!(),
    " FROM imported_api_keys WHERE nid = $1 AND key_id = $2 FOR UPDATE"
);

fn lock_sql(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::Issued => LOCK_ISSUED,
        KeyKind::Imported => LOCK_IMPORTED,
    }
}

/// What differs between PostgreSQL and CockroachDB.
pub(crate) struct Flavor {
    pub backend: &'static str,
    pub migrator: &'static Migrator,
    /// Attempts per write transaction; >1 retries SQLSTATE 40001.
    pub max_attempts: u32,
}

pub struct PostgresKeyStore {
    pool: PgPool,
    flavor: Flavor,
}

/// Opens a PostgreSQL store (`cfg.url` is a postgres:// URL).
pub async fn open(cfg: &PoolConfig) -> Result<PostgresKeyStore, OpenError> {
    open_flavor(
        cfg,
        Flavor {
            backend: "postgres",
            migrator: &MIGRATOR,
            max_attempts: 1,
        },
    )
    .await
}

pub(crate) async fn open_flavor(
    cfg: &PoolConfig,
    flavor: Flavor,
) -> Result<PostgresKeyStore, OpenError> {
    let backend = flavor.backend;
    let connect_err = |reason: String| OpenError::Connect {
        backend,
        reason: cfg.scrub(&reason),
    };
    let opts = PgConnectOptions::from_str(&cfg.url).map_err(|e| connect_err(e.to_string()))?;
    // A slow database must yield StoreError::Timeout, never a hang.
    let set_timeout = format!(
        "SET statement_timeout = {}",
        cfg.statement_timeout.as_millis()
    );
    let pool = PgPoolOptions::new()
        .max_connections(cfg.max_connections)
        .min_connections(cfg.min_connections)
        .acquire_timeout(cfg.acquire_timeout)
        .max_lifetime(cfg.max_lifetime)
        .idle_timeout(cfg.idle_timeout)
        .after_connect(move |conn, _meta| {
            let set_timeout = set_timeout.clone();
            Box::pin(async move {
                conn.execute(set_timeout.as_str()).await?;
                Ok(())
            })
        })
        .connect_lazy_with(opts);
    match tokio::time::timeout(cfg.connect_timeout, pool.acquire()).await {
        Ok(Ok(_conn)) => {}
        Ok(Err(e)) => return Err(connect_err(e.to_string())),
        Err(_) => {
            return Err(connect_err(format!(
                "no answer within {:?}",
                cfg.connect_timeout
            )))
        }
    }
    let store = PostgresKeyStore { pool, flavor };
    if cfg.run_migrations {
        store.migrate_up().await?;
    } else {
        store.check_schema().await?;
    }
    Ok(store)
}

impl PostgresKeyStore {
    /// Fails with `StoreError::Schema` if the database was migrated by a
    /// newer talos than this binary.
    pub async fn check_schema(&self) -> Result<(), StoreError> {
        let applied = self.applied().await?;
        common::check_known(&applied, self.flavor.migrator)
    }

    async fn applied(&self) -> Result<Vec<i64>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(map_db_error)?;
        common::applied_versions(&mut *conn)
            .await
            .map_err(map_db_error)
    }

    /// Runs one whole write transaction, retried on SQLSTATE 40001 as the
    /// flavor allows (CockroachDB needs this for every write).
    async fn retry<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, TxError>>,
    {
        retry_serialization(self.flavor.max_attempts, f).await
    }

    async fn insert_in(conn: &mut PgConnection, key: &ApiKey) -> Result<(), sqlx::Error> {
        let p = KeyParams::of(key);
        match key.kind {
            KeyKind::Issued => {
                let q = bind_key!(sqlx::query(common::INSERT_ISSUED), key, p);
                q.bind(key.token_prefix.clone())
                    .bind(common::ISSUED_KEY_VERSION)
                    .execute(conn)
                    .await?;
            }
            KeyKind::Imported => {
                bind_key!(sqlx::query(common::INSERT_IMPORTED), key, p)
                    .execute(conn)
                    .await?;
            }
        }
        Ok(())
    }

    async fn revoke_once(
        &self,
        nid: NetworkId,
        kind: KeyKind,
        key_id: &str,
        reason: RevocationReason,
        description: &str,
        now: Timestamp,
    ) -> Result<ApiKey, TxError> {
        let mut tx = self.pool.begin().await?;
        let row: Option<KeyRow> = sqlx::query_as(lock_sql(kind))
            .bind(nid_str(nid))
            .bind(key_id)
            .fetch_optional(&mut *tx)
            .await?;
        let mut key = row.ok_or(StoreError::NotFound)?.into_domain(kind)?;
        if key.status == KeyStatus::Revoked {
            return Err(StoreError::AlreadyRevoked.into());
        }
        apply_revocation(&mut key, reason, description, now);
        Self::write_revocation(&mut tx, &key).await?;
        tx.commit().await?;
        Ok(key)
    }

    async fn write_revocation(conn: &mut PgConnection, key: &ApiKey) -> Result<(), sqlx::Error> {
        sqlx::query(common::revoke_sql(key.kind))
            .bind(key.status.as_i32())
            .bind(key.revocation_reason.as_i32())
            .bind(key.revocation_description.clone())
            .bind(key.expires_at.map(|t| t.millis()))
            .bind(key.updated_at.millis())
            .bind(nid_str(key.nid))
            .bind(key.key_id.clone())
            .execute(conn)
            .await?;
        Ok(())
    }

    async fn rotate_once(
        &self,
        nid: NetworkId,
        old_key_id: &str,
        new_key: &ApiKey,
        now: Timestamp,
    ) -> Result<ApiKey, TxError> {
        let mut tx = self.pool.begin().await?;
        let row: Option<KeyRow> = sqlx::query_as(LOCK_ISSUED)
            .bind(nid_str(nid))
            .bind(old_key_id)
            .fetch_optional(&mut *tx)
            .await?;
        let mut old = row
            .ok_or(StoreError::NotFound)?
            .into_domain(KeyKind::Issued)?;
        if old.effective_status(now) != KeyStatus::Active {
            return Err(StoreError::NotActive.into());
        }
        let mut new_key = new_key.clone();
        new_key.nid = nid;
        new_key.kind = KeyKind::Issued;
        Self::insert_in(&mut tx, &new_key).await?;
        apply_revocation(&mut old, RevocationReason::Superseded, "", now);
        Self::write_revocation(&mut tx, &old).await?;
        tx.commit().await?;
        Ok(old)
    }

    async fn batch_once(&self, keys: &[ApiKey]) -> Result<Vec<BatchInsertOutcome>, TxError> {
        let mut tx = self.pool.begin().await?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let p = KeyParams::of(key);
            let r = bind_key!(sqlx::query(common::INSERT_IMPORTED_SKIP_DUPLICATE), key, p)
                .execute(&mut *tx)
                .await?;
            out.push(if r.rows_affected() == 1 {
                BatchInsertOutcome::Inserted
            } else {
                BatchInsertOutcome::Duplicate
            });
        }
        tx.commit().await?;
        Ok(out)
    }
}

#[async_trait]
impl KeyStore for PostgresKeyStore {
    async fn insert(&self, key: &ApiKey) -> Result<(), StoreError> {
        self.retry(|| async {
            let mut conn = self.pool.acquire().await?;
            Ok(Self::insert_in(&mut conn, key).await?)
        })
        .await
    }

    async fn get(
        &self,
        nid: NetworkId,
        kind: KeyKind,
        key_id: &str,
    ) -> Result<Option<ApiKey>, StoreError> {
        let row: Option<KeyRow> = sqlx::query_as(common::get_sql(kind))
            .bind(nid_str(nid))
            .bind(key_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_db_error)?;
        row.map(|r| r.into_domain(kind)).transpose()
    }

    async fn get_many(
        &self,
        nid: NetworkId,
        kind: KeyKind,
        key_ids: &[String],
    ) -> Result<Vec<ApiKey>, StoreError> {
        let mut out = Vec::with_capacity(key_ids.len());
        for chunk in key_ids.chunks(common::IN_CHUNK) {
            let b = common::get_many_query(Placeholders::Numbered, nid, kind, chunk);
            let rows: Vec<KeyRow> = bind_args!(sqlx::query_as(&b.sql), b.args)
                .fetch_all(&self.pool)
                .await
                .map_err(map_db_error)?;
            for r in rows {
                out.push(r.into_domain(kind)?);
            }
        }
        Ok(out)
    }

    async fn get_by_request_id(
        &self,
        nid: NetworkId,
        kind: KeyKind,
        request_id: &str,
    ) -> Result<Option<ApiKey>, StoreError> {
        let row: Option<KeyRow> = sqlx::query_as(common::get_by_request_id_sql(kind))
            .bind(nid_str(nid))
            .bind(request_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_db_error)?;
        row.map(|r| r.into_domain(kind)).transpose()
    }

    async fn list(
        &self,
        nid: NetworkId,
        kind: KeyKind,
        filter: &ListFilter,
        after: Option<&str>,
        limit: u32,
        now: Timestamp,
    ) -> Result<Vec<ApiKey>, StoreError> {
        let b = common::list_query(Placeholders::Numbered, nid, kind, filter, after, limit, now);
        let rows: Vec<KeyRow> = bind_args!(sqlx::query_as(&b.sql), b.args)
            .fetch_all(&self.pool)
            .await
            .map_err(map_db_error)?;
        rows.into_iter().map(|r| r.into_domain(kind)).collect()
    }

    async fn update(&self, key: &ApiKey) -> Result<(), StoreError> {
        let p = KeyParams::of(key);
        let affected = self
            .retry(|| async {
                let r = sqlx::query(common::update_sql(key.kind))
                    .bind(key.name.clone())
                    .bind(p.scopes.clone())
                    .bind(p.metadata.clone())
                    .bind(p.rate_limit_quota)
                    .bind(p.rate_limit_window)
                    .bind(p.allowed_cidrs.clone())
                    .bind(key.updated_at.millis())
                    .bind(p.nid.clone())
                    .bind(key.key_id.clone())
                    .execute(&self.pool)
                    .await?;
                Ok(r.rows_affected())
            })
            .await?;
        if affected == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn revoke(
        &self,
        nid: NetworkId,
        kind: KeyKind,
        key_id: &str,
        reason: RevocationReason,
        description: &str,
        now: Timestamp,
    ) -> Result<ApiKey, StoreError> {
        self.retry(|| self.revoke_once(nid, kind, key_id, reason, description, now))
            .await
    }

    async fn rotate(
        &self,
        nid: NetworkId,
        old_key_id: &str,
        new_key: &ApiKey,
        now: Timestamp,
    ) -> Result<ApiKey, StoreError> {
        self.retry(|| self.rotate_once(nid, old_key_id, new_key, now))
            .await
    }

    async fn delete(&self, nid: NetworkId, kind: KeyKind, key_id: &str) -> Result<(), StoreError> {
        let affected = self
            .retry(|| async {
                let r = sqlx::query(common::delete_sql(kind))
                    .bind(nid_str(nid))
                    .bind(key_id)
                    .execute(&self.pool)
                    .await?;
                Ok(r.rows_affected())
            })
            .await?;
        if affected == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn batch_insert_imported(
        &self,
        keys: &[ApiKey],
    ) -> Result<Vec<BatchInsertOutcome>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.retry(|| self.batch_once(keys)).await
    }

    async fn count_active(&self, nid: NetworkId, cap: u64) -> Result<u64, StoreError> {
        let cap_i = i64::try_from(cap).unwrap_or(i64::MAX);
        let mut total: u64 = 0;
        for sql in [common::COUNT_ACTIVE_ISSUED, common::COUNT_ACTIVE_IMPORTED] {
            let n: i64 = sqlx::query_scalar(sql)
                .bind(nid_str(nid))
                .bind(cap_i)
                .fetch_one(&self.pool)
                .await
                .map_err(map_db_error)?;
            total = total.saturating_add(n.max(0) as u64);
            if total >= cap {
                return Ok(cap);
            }
        }
        Ok(total)
    }

    async fn touch_last_used(
        &self,
        nid: NetworkId,
        kind: KeyKind,
        key_ids: &[String],
        at: Timestamp,
    ) -> Result<(), StoreError> {
        for chunk in key_ids.chunks(common::IN_CHUNK) {
            let b = common::touch_query(Placeholders::Numbered, nid, kind, chunk, at);
            self.retry(|| async {
                bind_args!(sqlx::query(&b.sql), b.args.clone())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            })
            .await?;
        }
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query(common::PING)
            .execute(&self.pool)
            .await
            .map_err(map_db_error)?;
        Ok(())
    }

    async fn ensure_network(&self, nid: NetworkId, now: Timestamp) -> Result<(), StoreError> {
        self.retry(|| async {
            sqlx::query(common::ENSURE_NETWORK)
                .bind(nid_str(nid))
                .bind(now.millis())
                .bind(now.millis())
                .execute(&self.pool)
                .await?;
            Ok(())
        })
        .await
    }

    async fn migrate_up(&self) -> Result<Vec<i64>, StoreError> {
        let before = self.applied().await?;
        common::check_known(&before, self.flavor.migrator)?;
        self.flavor
            .migrator
            .run(&self.pool)
            .await
            .map_err(common::map_migrate_error)?;
        let after = self.applied().await?;
        Ok(after.into_iter().filter(|v| !before.contains(v)).collect())
    }

    async fn migration_status(&self) -> Result<MigrationStatus, StoreError> {
        Ok(common::migration_status(
            self.applied().await?,
            self.flavor.migrator,
        ))
    }

    fn backend(&self) -> &'static str {
        self.flavor.backend
    }
}
