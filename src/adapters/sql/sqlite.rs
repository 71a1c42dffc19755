//! SQLite adapter.
//!
//! File databases run in WAL mode with `synchronous=NORMAL`, a busy timeout
//! and foreign keys on. Read-modify-write transactions (revoke, rotate,
//! batch import) start with `BEGIN IMMEDIATE`, taking the write lock up
//! front, so two concurrent revokes/rotations of one key serialize instead
//! of both reading ACTIVE (SQLite has no `SELECT … FOR UPDATE`).

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::SqliteConnection;

use super::common::{self, bind_args, bind_key, Placeholders};
use super::rows::{map_db_error, nid_str, KeyParams, KeyRow, TxError};
use crate::adapters::apply_revocation;
use crate::adapters::store::{OpenError, PoolConfig};
use crate::domain::{
    ApiKey, KeyKind, KeyStatus, ListFilter, NetworkId, RevocationReason, Timestamp,
};
use crate::ports::{BatchInsertOutcome, KeyStore, MigrationStatus, StoreError};

pub static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

const BEGIN_IMMEDIATE: &str = "BEGIN IMMEDIATE";

pub struct SqliteKeyStore {
    pool: SqlitePool,
}

/// What `sqlite://<path>?<query>` means: the path after the scheme is a raw
/// filesystem path; `:memory:` or `mode=memory` is a private in-memory
/// database; `mode=ro|rw|rwc` map to read-only / no-create / create.
struct SqliteTarget {
    path: String,
    memory: bool,
    read_only: bool,
    create: bool,
}

fn parse_target(url: &str) -> SqliteTarget {
    let rest = url
        .strip_prefix("sqlite3://")
        .or_else(|| url.strip_prefix("sqlite://"))
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut t = SqliteTarget {
        path: path.to_string(),
        memory: path == ":memory:" || path.is_empty(),
        read_only: false,
        create: true,
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == "mode" {
            match v {
                "memory" => t.memory = true,
                "ro" => {
                    t.read_only = true;
                    t.create = false;
                }
                "rw" => t.create = false,
                _ => {}
            }
        }
    }
    t
}

/// Opens a SQLite store (`cfg.url` is a sqlite:// or sqlite3:// DSN).
pub async fn open(cfg: &PoolConfig) -> Result<SqliteKeyStore, OpenError> {
    let connect_err = |reason: String| OpenError::Connect {
        backend: "sqlite",
        reason: cfg.scrub(&reason),
    };
    let t = parse_target(&cfg.url);
    let mut opts = SqliteConnectOptions::new()
        .foreign_keys(true)
        .busy_timeout(cfg.statement_timeout);
    let mut pool = SqlitePoolOptions::new().acquire_timeout(cfg.acquire_timeout);
    if t.memory {
        // Every connection to ":memory:" is a different database: pin the
        // pool to one connection that never closes.
        opts = opts.in_memory(true);
        pool = pool
            .max_connections(1)
            .min_connections(1)
            .max_lifetime(None)
            .idle_timeout(None);
    } else {
        opts = opts
            .filename(&t.path)
            .create_if_missing(t.create)
            .read_only(t.read_only)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal);
        pool = pool
            .max_connections(cfg.max_connections)
            .min_connections(cfg.min_connections)
            .max_lifetime(cfg.max_lifetime)
            .idle_timeout(cfg.idle_timeout);
    }
    let pool = match tokio::time::timeout(cfg.connect_timeout, pool.connect_with(opts)).await {
        Ok(Ok(pool)) => pool,
        Ok(Err(e)) => return Err(connect_err(e.to_string())),
        Err(_) => {
            return Err(connect_err(format!(
                "no answer within {:?}",
                cfg.connect_timeout
            )))
        }
    };
    let store = SqliteKeyStore { pool };
    if cfg.run_migrations {
        store.migrate_up().await?;
    } else {
        store.check_schema().await?;
    }
    Ok(store)
}

impl SqliteKeyStore {
    /// Fails with `StoreError::Schema` if the database was migrated by a
    /// newer talos than this binary.
    pub async fn check_schema(&self) -> Result<(), StoreError> {
        common::check_known(&self.applied().await?, &MIGRATOR)
    }

    async fn applied(&self) -> Result<Vec<i64>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(map_db_error)?;
        common::applied_versions(&mut *conn)
            .await
            .map_err(map_db_error)
    }

    async fn insert_in(conn: &mut SqliteConnection, key: &ApiKey) -> Result<(), sqlx::Error> {
        let p = KeyParams::of(key);
        match key.kind {
            KeyKind::Issued => {
                bind_key!(sqlx::query(common::INSERT_ISSUED), key, p)
                    .bind(key.token_prefix.clone())
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

    async fn write_revocation(
        conn: &mut SqliteConnection,
        key: &ApiKey,
    ) -> Result<(), sqlx::Error> {
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

    async fn revoke_tx(
        &self,
        nid: NetworkId,
        kind: KeyKind,
        key_id: &str,
        reason: RevocationReason,
        description: &str,
        now: Timestamp,
    ) -> Result<ApiKey, TxError> {
        let mut tx = self.pool.begin_with(BEGIN_IMMEDIATE).await?;
        let row: Option<KeyRow> = sqlx::query_as(common::get_sql(kind))
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

    async fn rotate_tx(
        &self,
        nid: NetworkId,
        old_key_id: &str,
        new_key: &ApiKey,
        now: Timestamp,
    ) -> Result<ApiKey, TxError> {
        let mut tx = self.pool.begin_with(BEGIN_IMMEDIATE).await?;
        let row: Option<KeyRow> = sqlx::query_as(common::GET_ISSUED)
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

    async fn batch_tx(&self, keys: &[ApiKey]) -> Result<Vec<BatchInsertOutcome>, TxError> {
        let mut tx = self.pool.begin_with(BEGIN_IMMEDIATE).await?;
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
impl KeyStore for SqliteKeyStore {
    async fn insert(&self, key: &ApiKey) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await.map_err(map_db_error)?;
        Self::insert_in(&mut conn, key).await.map_err(map_db_error)
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
        let r = sqlx::query(common::update_sql(key.kind))
            .bind(key.name.clone())
            .bind(p.scopes)
            .bind(p.metadata)
            .bind(p.rate_limit_quota)
            .bind(p.rate_limit_window)
            .bind(p.allowed_cidrs)
            .bind(key.updated_at.millis())
            .bind(p.nid)
            .bind(key.key_id.clone())
            .execute(&self.pool)
            .await
            .map_err(map_db_error)?;
        if r.rows_affected() == 0 {
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
        Ok(self
            .revoke_tx(nid, kind, key_id, reason, description, now)
            .await?)
    }

    async fn rotate(
        &self,
        nid: NetworkId,
        old_key_id: &str,
        new_key: &ApiKey,
        now: Timestamp,
    ) -> Result<ApiKey, StoreError> {
        Ok(self.rotate_tx(nid, old_key_id, new_key, now).await?)
    }

    async fn delete(&self, nid: NetworkId, kind: KeyKind, key_id: &str) -> Result<(), StoreError> {
        let r = sqlx::query(common::delete_sql(kind))
            .bind(nid_str(nid))
            .bind(key_id)
            .execute(&self.pool)
            .await
            .map_err(map_db_error)?;
        if r.rows_affected() == 0 {
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
        Ok(self.batch_tx(keys).await?)
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
            bind_args!(sqlx::query(&b.sql), b.args)
                .execute(&self.pool)
                .await
                .map_err(map_db_error)?;
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
        sqlx::query(common::ENSURE_NETWORK)
            .bind(nid_str(nid))
            .bind(now.millis())
            .bind(now.millis())
            .execute(&self.pool)
            .await
            .map_err(map_db_error)?;
        Ok(())
    }

    async fn migrate_up(&self) -> Result<Vec<i64>, StoreError> {
        let before = self.applied().await?;
        common::check_known(&before, &MIGRATOR)?;
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(common::map_migrate_error)?;
        let after = self.applied().await?;
        Ok(after.into_iter().filter(|v| !before.contains(v)).collect())
    }

    async fn migration_status(&self) -> Result<MigrationStatus, StoreError> {
        Ok(common::migration_status(self.applied().await?, &MIGRATOR))
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }
}
