//! MySQL 8 / MariaDB adapter. Stays in the MySQL ∩ MariaDB subset: no
//! `RETURNING`, no `ON CONFLICT`; `?` placeholders; upserts are written
//! with `INSERT IGNORE` only where no other error can be swallowed.

use std::str::FromStr;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlPool, MySqlPoolOptions};
use sqlx::Executor;

use super::common::{self, bind_args, bind_key, Placeholders};
use super::rows::{map_db_error, nid_str, retry_serialization, KeyParams, KeyRow, TxError};
use crate::adapters::apply_revocation;
use crate::adapters::store::{OpenError, PoolConfig};
use crate::domain::{
    ApiKey, KeyKind, KeyStatus, ListFilter, NetworkId, RevocationReason, Timestamp,
};
use crate::ports::{BatchInsertOutcome, KeyStore, MigrationStatus, StoreError};

pub static MIGRATOR: Migrator = sqlx::migrate!("migrations/mysql");

/// Runs of a write (insert, revoke, rotate, batch import).
/// InnoDB may pick one of two contending transactions as a deadlock victim
/// (ER_LOCK_DEADLOCK, SQLSTATE 40001) and roll it back whole; running it
/// again is the documented remedy, so the caller never sees it.
const MAX_ATTEMPTS: u32 = 5;

const GET_ISSUED: &str = concat!(
    "SELECT ",
    common::mysql_issued_select_cols!(),
    " FROM issued_api_keys WHERE nid = ? AND key_id = ?"
);
const GET_IMPORTED: &str = concat!(
    "SELECT ",
    common::mysql_imported_select_cols!(),
    " FROM imported_api_keys WHERE nid = ? AND key_id = ?"
);
const LOCK_ISSUED: &str = concat!(
    "SELECT ",
    common::mysql_issued_select_cols!(),
    " FROM issued_api_keys WHERE nid = ? AND key_id = ? FOR UPDATE"
);
const LOCK_IMPORTED: &str = concat!(
    "SELECT ",
    common::mysql_imported_select_cols!(),
    " FROM imported_api_keys WHERE nid = ? AND key_id = ? FOR UPDATE"
);
const GET_ISSUED_BY_REQUEST_ID: &str = concat!(
    "SELECT ",
    common::mysql_issued_select_cols!(),
    " FROM issued_api_keys WHERE nid = ? AND request_id = ?"
);
const GET_IMPORTED_BY_REQUEST_ID: &str = concat!(
    "SELECT ",
    common::mysql_imported_select_cols!(),
    " FROM imported_api_keys WHERE nid = ? AND request_id = ?"
);
const INSERT_ISSUED: &str = concat!(
    "INSERT INTO issued_api_keys (",
    common::insert_cols!(),
    ", token_prefix, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
);
/// Also used per row by the batch import: MySQL has no `ON CONFLICT (cols)`,
/// and `INSERT IGNORE` / `ON DUPLICATE KEY` would also swallow a request_id
/// conflict (and IGNORE turns other errors into warnings). A statement error
/// does not abort a MySQL transaction, so the batch inspects which key fired.
const INSERT_IMPORTED: &str = concat!(
    "INSERT INTO imported_api_keys (",
    common::insert_cols!(),
    ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
);
const UPDATE_ISSUED: &str = "UPDATE issued_api_keys SET name = ?, scopes = ?, metadata = ?, \
     rate_limit_quota = ?, rate_limit_window = ?, allowed_cidrs = ?, updated_at = ? \
     WHERE nid = ? AND key_id = ?";
const UPDATE_IMPORTED: &str = "UPDATE imported_api_keys SET name = ?, scopes = ?, metadata = ?, \
     rate_limit_quota = ?, rate_limit_window = ?, allowed_cidrs = ?, updated_at = ? \
     WHERE nid = ? AND key_id = ?";
const REVOKE_ISSUED: &str = "UPDATE issued_api_keys SET status = ?, revocation_reason = ?, \
     revocation_reason_text = ?, expires_at = ?, updated_at = ? WHERE nid = ? AND key_id = ?";
const REVOKE_IMPORTED: &str = "UPDATE imported_api_keys SET status = ?, revocation_reason = ?, \
     revocation_reason_text = ?, expires_at = ?, updated_at = ? WHERE nid = ? AND key_id = ?";
const DELETE_ISSUED: &str = "DELETE FROM issued_api_keys WHERE nid = ? AND key_id = ?";
const DELETE_IMPORTED: &str = "DELETE FROM imported_api_keys WHERE nid = ? AND key_id = ?";
const COUNT_ACTIVE_ISSUED: &str = "SELECT COUNT(*) FROM (SELECT 1 FROM issued_api_keys \
     WHERE nid = ? AND status <> 2 LIMIT ?) capped";
const COUNT_ACTIVE_IMPORTED: &str = "SELECT COUNT(*) FROM (SELECT 1 FROM imported_api_keys \
     WHERE nid = ? AND status <> 2 LIMIT ?) capped";
/// The primary key is the only constraint on `networks` and every value is
/// well-typed, so IGNORE can only skip the existing row.
const ENSURE_NETWORK: &str =
    "INSERT IGNORE INTO networks (id, created_at, updated_at) VALUES (?, ?, ?)";

/// ER_DUP_ENTRY
const ER_DUP_ENTRY: u16 = 1062;
/// ER_UNKNOWN_SYSTEM_VARIABLE
const ER_UNKNOWN_SYSTEM_VARIABLE: u16 = 1193;

fn by_kind(kind: KeyKind, issued: &'static str, imported: &'static str) -> &'static str {
    match kind {
        KeyKind::Issued => issued,
        KeyKind::Imported => imported,
    }
}

pub struct MysqlKeyStore {
    pool: MySqlPool,
}

/// Sets the per-session statement timeout: MariaDB's `max_statement_time`
/// (seconds, any statement), else MySQL's `max_execution_time` (ms, SELECT).
async fn set_statement_timeout(conn: &mut MySqlConnection, ms: u128) -> Result<(), sqlx::Error> {
    let mariadb = format!(
        "SET SESSION max_statement_time = {}.{:03}",
        ms / 1000,
        ms % 1000
    );
    match conn.execute(mariadb.as_str()).await {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(d))
            if d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                .is_some_and(|m| m.number() == ER_UNKNOWN_SYSTEM_VARIABLE) =>
        {
            conn.execute(format!("SET SESSION max_execution_time = {ms}").as_str())
                .await?;
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Opens a MySQL/MariaDB store (`cfg.url` is a mysql:// URL).
pub async fn open(cfg: &PoolConfig) -> Result<MysqlKeyStore, OpenError> {
    let connect_err = |reason: String| OpenError::Connect {
        backend: "mysql",
        reason: cfg.scrub(&reason),
    };
    let opts = MySqlConnectOptions::from_str(&cfg.url)
        .map_err(|e| connect_err(e.to_string()))?
        .charset("utf8mb4");
    let ms = cfg.statement_timeout.as_millis();
    let pool = MySqlPoolOptions::new()
        .max_connections(cfg.max_connections)
        .min_connections(cfg.min_connections)
        .acquire_timeout(cfg.acquire_timeout)
        .max_lifetime(cfg.max_lifetime)
        .idle_timeout(cfg.idle_timeout)
        .after_connect(move |conn, _meta| Box::pin(set_statement_timeout(conn, ms)))
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
    let store = MysqlKeyStore { pool };
    if cfg.run_migrations {
        store.migrate_up().await?;
    } else {
        store.check_schema().await?;
    }
    Ok(store)
}

impl MysqlKeyStore {
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

    async fn insert_in(conn: &mut MySqlConnection, key: &ApiKey) -> Result<(), sqlx::Error> {
        let p = KeyParams::of(key);
        match key.kind {
            KeyKind::Issued => {
                bind_key!(sqlx::query(INSERT_ISSUED), key, p)
                    .bind(key.token_prefix.clone())
                    .bind(common::ISSUED_KEY_VERSION)
                    .execute(conn)
                    .await?;
            }
            KeyKind::Imported => {
                bind_key!(sqlx::query(INSERT_IMPORTED), key, p)
                    .execute(conn)
                    .await?;
            }
        }
        Ok(())
    }

    async fn write_revocation(conn: &mut MySqlConnection, key: &ApiKey) -> Result<(), sqlx::Error> {
        sqlx::query(by_kind(key.kind, REVOKE_ISSUED, REVOKE_IMPORTED))
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
        let mut tx = self.pool.begin().await?;
        let row: Option<KeyRow> = sqlx::query_as(by_kind(kind, LOCK_ISSUED, LOCK_IMPORTED))
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

    async fn batch_tx(&self, keys: &[ApiKey]) -> Result<Vec<BatchInsertOutcome>, TxError> {
        let mut tx = self.pool.begin().await?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            match Self::insert_in(&mut tx, key).await {
                Ok(()) => out.push(BatchInsertOutcome::Inserted),
                Err(e) if is_primary_key_duplicate(&e) => out.push(BatchInsertOutcome::Duplicate),
                // Dropping `tx` rolls back the rows already inserted.
                Err(e) => return Err(e.into()),
            }
        }
        tx.commit().await?;
        Ok(out)
    }
}

/// True for ER_DUP_ENTRY on the primary key (nid, key_id). MariaDB names the
/// key `'PRIMARY'`, MySQL 8 `'imported_api_keys.PRIMARY'`.
fn is_primary_key_duplicate(e: &sqlx::Error) -> bool {
    let sqlx::Error::Database(d) = e else {
        return false;
    };
    d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
        .is_some_and(|m| m.number() == ER_DUP_ENTRY && m.message().ends_with("PRIMARY'"))
}

#[async_trait]
impl KeyStore for MysqlKeyStore {
    async fn insert(&self, key: &ApiKey) -> Result<(), StoreError> {
        // Concurrent inserts racing on the same unique request_id can also
        // be picked as deadlock victims.
        retry_serialization(MAX_ATTEMPTS, || async {
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
        let row: Option<KeyRow> = sqlx::query_as(by_kind(kind, GET_ISSUED, GET_IMPORTED))
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
            let b = common::get_many_query(Placeholders::Question, nid, kind, chunk);
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
        let sql = by_kind(kind, GET_ISSUED_BY_REQUEST_ID, GET_IMPORTED_BY_REQUEST_ID);
        let row: Option<KeyRow> = sqlx::query_as(sql)
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
        let b = common::list_query(Placeholders::Question, nid, kind, filter, after, limit, now);
        let rows: Vec<KeyRow> = bind_args!(sqlx::query_as(&b.sql), b.args)
            .fetch_all(&self.pool)
            .await
            .map_err(map_db_error)?;
        rows.into_iter().map(|r| r.into_domain(kind)).collect()
    }

    async fn update(&self, key: &ApiKey) -> Result<(), StoreError> {
        let p = KeyParams::of(key);
        // sqlx sets CLIENT_FOUND_ROWS, so rows_affected counts matched rows
        // even when no value changed.
        let r = sqlx::query(by_kind(key.kind, UPDATE_ISSUED, UPDATE_IMPORTED))
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
        retry_serialization(MAX_ATTEMPTS, || {
            self.revoke_tx(nid, kind, key_id, reason, description, now)
        })
        .await
    }

    async fn rotate(
        &self,
        nid: NetworkId,
        old_key_id: &str,
        new_key: &ApiKey,
        now: Timestamp,
    ) -> Result<ApiKey, StoreError> {
        retry_serialization(MAX_ATTEMPTS, || {
            self.rotate_tx(nid, old_key_id, new_key, now)
        })
        .await
    }

    async fn delete(&self, nid: NetworkId, kind: KeyKind, key_id: &str) -> Result<(), StoreError> {
        let r = sqlx::query(by_kind(kind, DELETE_ISSUED, DELETE_IMPORTED))
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
        retry_serialization(MAX_ATTEMPTS, || self.batch_tx(keys)).await
    }

    async fn count_active(&self, nid: NetworkId, cap: u64) -> Result<u64, StoreError> {
        let cap_i = i64::try_from(cap).unwrap_or(i64::MAX);
        let mut total: u64 = 0;
        for sql in [COUNT_ACTIVE_ISSUED, COUNT_ACTIVE_IMPORTED] {
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
            let b = common::touch_query(Placeholders::Question, nid, kind, chunk, at);
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
        sqlx::query(ENSURE_NETWORK)
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
        "mysql"
    }
}
