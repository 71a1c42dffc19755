//! Statements shared by more than one SQL backend, and the few statements
//! whose text depends on the number of arguments (built at runtime from
//! constant fragments; values are always bound, never interpolated).
//!
//! Numbered placeholders (`$1`) are understood by PostgreSQL, CockroachDB and
//! SQLite, so those three share the constants below; MySQL/MariaDB only knows
//! `?` and writes its own in `mysql.rs` from the same column lists.

// A MySQL-only build uses just the dynamic builders and column lists.
#![cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]

use crate::domain::{KeyKind, KeyStatus, ListFilter, NetworkId, Timestamp};

use super::rows::nid_str;

/// Columns decoded into `KeyRow`, issued table.
macro_rules! issued_select_cols {
    () => {
        "nid, key_id, name, token_prefix, actor_id, scopes, status, metadata, \
         last_used_at, expires_at, created_at, updated_at, rate_limit_quota, \
         rate_limit_window, revocation_reason, revocation_reason_text, \
         allowed_cidrs, request_id, visibility"
    };
}
/// Columns decoded into `KeyRow`, imported table (it has no token_prefix).
macro_rules! imported_select_cols {
    () => {
        "nid, key_id, name, NULL AS token_prefix, actor_id, scopes, status, \
         metadata, last_used_at, expires_at, created_at, updated_at, \
         rate_limit_quota, rate_limit_window, revocation_reason, \
         revocation_reason_text, allowed_cidrs, request_id, visibility"
    };
}
/// Insert column list; bind order is `bind_key!` in each backend:
/// nid, key_id, name, actor_id, scopes, status, metadata, last_used_at,
/// expires_at, created_at, updated_at, rate_limit_quota, rate_limit_window,
/// revocation_reason, revocation_reason_text, allowed_cidrs, request_id,
/// visibility [, token_prefix, version for issued keys].
macro_rules! insert_cols {
    () => {
        "nid, key_id, name, actor_id, scopes, status, metadata, last_used_at, \
         expires_at, created_at, updated_at, rate_limit_quota, rate_limit_window, \
         revocation_reason, revocation_reason_text, allowed_cidrs, request_id, visibility"
    };
}
/// MySQL/MariaDB variants: the id columns are `utf8mb4_bin` (exact,
/// bytewise comparison and order), which the server reports as VARBINARY
/// and sqlx refuses to decode as a string, so they are read through
/// `CAST(… AS CHAR)`. WHERE and ORDER BY still use the columns themselves.
macro_rules! mysql_issued_select_cols {
    () => {
        "CAST(nid AS CHAR) AS nid, CAST(key_id AS CHAR) AS key_id, name, token_prefix, \
         CAST(actor_id AS CHAR) AS actor_id, scopes, status, metadata, last_used_at, \
         expires_at, created_at, updated_at, rate_limit_quota, rate_limit_window, \
         revocation_reason, revocation_reason_text, allowed_cidrs, \
         CAST(request_id AS CHAR) AS request_id, visibility"
    };
}
macro_rules! mysql_imported_select_cols {
    () => {
        "CAST(nid AS CHAR) AS nid, CAST(key_id AS CHAR) AS key_id, name, \
         NULL AS token_prefix, CAST(actor_id AS CHAR) AS actor_id, scopes, status, \
         metadata, last_used_at, expires_at, created_at, updated_at, rate_limit_quota, \
         rate_limit_window, revocation_reason, revocation_reason_text, allowed_cidrs, \
         CAST(request_id AS CHAR) AS request_id, visibility"
    };
}
#[allow(unused_imports)] // each backend uses its own subset
pub(crate) use {
    imported_select_cols, insert_cols, issued_select_cols, mysql_imported_select_cols,
    mysql_issued_select_cols,
};

/// Binds the 18 shared insert columns (see `insert_cols!`) of `$key`
/// (`&ApiKey`) with its encoded `$p` (`&KeyParams`) onto query `$q`.
macro_rules! bind_key {
    ($q:expr, $key:expr, $p:expr) => {
        $crate::adapters::sql::common::bind_key!(bind; $q, $key, $p)
    };
    // `push_bind` for one row of a `QueryBuilder::push_values`.
    ($bind:ident; $q:expr, $key:expr, $p:expr) => {
        $q.$bind($p.nid.clone())
            .$bind($key.key_id.clone())
            .$bind($key.name.clone())
            .$bind($p.actor_id.clone())
            .$bind($p.scopes.clone())
            .$bind($key.status.as_i32())
            .$bind($p.metadata.clone())
            .$bind($key.last_used_at.map(|t| t.millis()))
            .$bind($key.expires_at.map(|t| t.millis()))
            .$bind($key.created_at.millis())
            .$bind($key.updated_at.millis())
            .$bind($p.rate_limit_quota)
            .$bind($p.rate_limit_window)
            .$bind($key.revocation_reason.as_i32())
            .$bind($key.revocation_description.clone())
            .$bind($p.allowed_cidrs.clone())
            .$bind($p.request_id.clone())
            .$bind($key.visibility.as_i32())
    };
}
pub(crate) use bind_key;

/// Format version stored in `issued_api_keys.version` (Talos v1 keys).
pub(crate) const ISSUED_KEY_VERSION: i32 = 1;

// ---- numbered-placeholder statements (PostgreSQL, CockroachDB, SQLite) ----

pub(crate) const GET_ISSUED: &str = concat!(
    "SELECT ",
    issued_select_cols!(),
    " FROM issued_api_keys WHERE nid = $1 AND key_id = $2"
);
pub(crate) const GET_IMPORTED: &str = concat!(
    "SELECT ",
    imported_select_cols!(),
    " FROM imported_api_keys WHERE nid = $1 AND key_id = $2"
);
pub(crate) const GET_ISSUED_BY_REQUEST_ID: &str = concat!(
    "SELECT ",
    issued_select_cols!(),
    " FROM issued_api_keys WHERE nid = $1 AND request_id = $2"
);
pub(crate) const GET_IMPORTED_BY_REQUEST_ID: &str = concat!(
    "SELECT ",
    imported_select_cols!(),
    " FROM imported_api_keys WHERE nid = $1 AND request_id = $2"
);
pub(crate) const INSERT_ISSUED: &str = concat!(
    "INSERT INTO issued_api_keys (",
    insert_cols!(),
    ", token_prefix, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
     $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"
);
pub(crate) const INSERT_IMPORTED: &str = concat!(
    "INSERT INTO imported_api_keys (",
    insert_cols!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
     $16, $17, $18)"
);
/// Batch import, many rows per statement (SQLite): the head, then
/// `QueryBuilder::push_values`, then the tail. A duplicate (nid, key_id) is
/// skipped and only inserted rows' ids come back; any other violation
/// (request_id) is an error that aborts the batch.
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
pub(crate) const INSERT_IMPORTED_ROWS_HEAD: &str =
    concat!("INSERT INTO imported_api_keys (", insert_cols!(), ") ");
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
pub(crate) const INSERT_IMPORTED_ROWS_TAIL: &str =
    " ON CONFLICT (nid, key_id) DO NOTHING RETURNING key_id";
/// Batch import row (PostgreSQL, CockroachDB): a duplicate (nid, key_id) is
/// skipped (0 rows affected); any other violation (request_id) is an error
/// that aborts the batch.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) const INSERT_IMPORTED_SKIP_DUPLICATE: &str = concat!(
    "INSERT INTO imported_api_keys (",
    insert_cols!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
     $16, $17, $18) ON CONFLICT (nid, key_id) DO NOTHING"
);
pub(crate) const UPDATE_ISSUED: &str = "UPDATE issued_api_keys SET name = $1, scopes = $2, \
     metadata = $3, rate_limit_quota = $4, rate_limit_window = $5, allowed_cidrs = $6, \
     updated_at = $7 WHERE nid = $8 AND key_id = $9";
pub(crate) const UPDATE_IMPORTED: &str = "UPDATE imported_api_keys SET name = $1, scopes = $2, \
     metadata = $3, rate_limit_quota = $4, rate_limit_window = $5, allowed_cidrs = $6, \
     updated_at = $7 WHERE nid = $8 AND key_id = $9";
pub(crate) const REVOKE_ISSUED: &str = "UPDATE issued_api_keys SET status = $1, \
     revocation_reason = $2, revocation_reason_text = $3, expires_at = $4, updated_at = $5 \
     WHERE nid = $6 AND key_id = $7";
pub(crate) const REVOKE_IMPORTED: &str = "UPDATE imported_api_keys SET status = $1, \
     revocation_reason = $2, revocation_reason_text = $3, expires_at = $4, updated_at = $5 \
     WHERE nid = $6 AND key_id = $7";
pub(crate) const DELETE_ISSUED: &str = "DELETE FROM issued_api_keys WHERE nid = $1 AND key_id = $2";
pub(crate) const DELETE_IMPORTED: &str =
    "DELETE FROM imported_api_keys WHERE nid = $1 AND key_id = $2";
/// Counting stops at the cap: the subquery reads at most `$2` index entries.
pub(crate) const COUNT_ACTIVE_ISSUED: &str = "SELECT COUNT(*) FROM (SELECT 1 FROM issued_api_keys \
     WHERE nid = $1 AND status <> 2 LIMIT $2) capped";
pub(crate) const COUNT_ACTIVE_IMPORTED: &str = "SELECT COUNT(*) FROM (SELECT 1 FROM \
     imported_api_keys WHERE nid = $1 AND status <> 2 LIMIT $2) capped";
pub(crate) const ENSURE_NETWORK: &str = "INSERT INTO networks (id, created_at, updated_at) \
     VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING";
pub(crate) const PING: &str = "SELECT 1";

pub(crate) fn get_sql(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::Issued => GET_ISSUED,
        KeyKind::Imported => GET_IMPORTED,
    }
}
pub(crate) fn get_by_request_id_sql(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::Issued => GET_ISSUED_BY_REQUEST_ID,
        KeyKind::Imported => GET_IMPORTED_BY_REQUEST_ID,
    }
}
pub(crate) fn update_sql(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::Issued => UPDATE_ISSUED,
        KeyKind::Imported => UPDATE_IMPORTED,
    }
}
pub(crate) fn revoke_sql(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::Issued => REVOKE_ISSUED,
        KeyKind::Imported => REVOKE_IMPORTED,
    }
}
pub(crate) fn delete_sql(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::Issued => DELETE_ISSUED,
        KeyKind::Imported => DELETE_IMPORTED,
    }
}

// ---- statements whose text depends on the arguments ----

/// How a dialect spells bind parameters.
#[cfg_attr(not(feature = "mysql"), allow(dead_code))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Placeholders {
    /// `$1, $2, …` (PostgreSQL, CockroachDB, SQLite)
    Numbered,
    /// `?` (MySQL/MariaDB)
    Question,
}

/// A value to bind, in order, onto a dynamically built statement.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Arg {
    Text(String),
    Int(i64),
}

/// Builds SQL text with placeholders in the right dialect while collecting
/// the arguments in bind order.
pub(crate) struct SqlBuf {
    style: Placeholders,
    pub sql: String,
    pub args: Vec<Arg>,
}

impl SqlBuf {
    pub fn new(style: Placeholders, head: &str) -> Self {
        SqlBuf {
            style,
            sql: head.to_string(),
            args: Vec::new(),
        }
    }
    pub fn push(&mut self, s: &str) -> &mut Self {
        self.sql.push_str(s);
        self
    }
    pub fn bind(&mut self, a: Arg) -> &mut Self {
        self.args.push(a);
        match self.style {
            Placeholders::Numbered => {
                self.sql.push('$');
                self.sql.push_str(&self.args.len().to_string());
            }
            Placeholders::Question => self.sql.push('?'),
        }
        self
    }
    fn bind_list(&mut self, items: &[String]) -> &mut Self {
        self.push("(");
        for (i, id) in items.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind(Arg::Text(id.clone()));
        }
        self.push(")")
    }
}

pub(crate) const ISSUED_SELECT: &str = concat!(
    "SELECT ",
    issued_select_cols!(),
    " FROM issued_api_keys WHERE nid = "
);
pub(crate) const IMPORTED_SELECT: &str = concat!(
    "SELECT ",
    imported_select_cols!(),
    " FROM imported_api_keys WHERE nid = "
);

/// The start of a key `SELECT … WHERE nid = ` in the placeholder style's
/// dialect (MySQL selects its binary-collated id columns through CAST, see
/// `mysql.rs`).
fn select_head(style: Placeholders, kind: KeyKind) -> &'static str {
    match (style, kind) {
        (Placeholders::Numbered, KeyKind::Issued) => ISSUED_SELECT,
        (Placeholders::Numbered, KeyKind::Imported) => IMPORTED_SELECT,
        (Placeholders::Question, KeyKind::Issued) => MYSQL_ISSUED_SELECT,
        (Placeholders::Question, KeyKind::Imported) => MYSQL_IMPORTED_SELECT,
    }
}

pub(crate) const MYSQL_ISSUED_SELECT: &str = concat!(
    "SELECT ",
    mysql_issued_select_cols!(),
    " FROM issued_api_keys WHERE nid = "
);
pub(crate) const MYSQL_IMPORTED_SELECT: &str = concat!(
    "SELECT ",
    mysql_imported_select_cols!(),
    " FROM imported_api_keys WHERE nid = "
);

fn table(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::Issued => "issued_api_keys",
        KeyKind::Imported => "imported_api_keys",
    }
}

/// Most ids bound into one `IN (…)` list; longer inputs are chunked.
pub(crate) const IN_CHUNK: usize = 500;

/// `list`: keyset pagination ordered by key_id (see the port's rules).
pub(crate) fn list_query(
    style: Placeholders,
    nid: NetworkId,
    kind: KeyKind,
    filter: &ListFilter,
    after: Option<&str>,
    limit: u32,
    now: Timestamp,
) -> SqlBuf {
    let mut b = SqlBuf::new(style, select_head(style, kind));
    b.bind(Arg::Text(nid_str(nid)));
    match filter.actor_id.as_deref() {
        // "no owner" is stored as NULL
        Some("") => {
            b.push(" AND actor_id IS NULL");
        }
        Some(actor) => {
            b.push(" AND actor_id = ")
                .bind(Arg::Text(actor.to_string()));
        }
        None => {}
    }
    match filter.status {
        Some(KeyStatus::Active) => {
            b.push(" AND status = 1 AND (expires_at IS NULL OR expires_at > ")
                .bind(Arg::Int(now.millis()))
                .push(")");
        }
        Some(KeyStatus::Expired) => {
            b.push(" AND status = 1 AND expires_at IS NOT NULL AND expires_at <= ")
                .bind(Arg::Int(now.millis()));
        }
        Some(KeyStatus::Revoked) => {
            b.push(" AND status = 2");
        }
        Some(KeyStatus::Unspecified) | None => {}
    }
    if let Some(after) = after {
        b.push(" AND key_id > ").bind(Arg::Text(after.to_string()));
    }
    // Qualified so MySQL orders by the column (its index), not by the
    // `CAST(key_id AS CHAR) AS key_id` select alias.
    b.push(" ORDER BY ")
        .push(table(kind))
        .push(".key_id LIMIT ");
    b.bind(Arg::Int(i64::from(limit)));
    b
}

/// `get_many`: one chunk of ids.
pub(crate) fn get_many_query(
    style: Placeholders,
    nid: NetworkId,
    kind: KeyKind,
    ids: &[String],
) -> SqlBuf {
    let mut b = SqlBuf::new(style, select_head(style, kind));
    b.bind(Arg::Text(nid_str(nid))).push(" AND key_id IN ");
    b.bind_list(ids);
    b
}

/// `touch_last_used`: one chunk of ids; only rows never used or last used
/// before the start of `at`'s UTC day are written.
pub(crate) fn touch_query(
    style: Placeholders,
    nid: NetworkId,
    kind: KeyKind,
    ids: &[String],
    at: Timestamp,
) -> SqlBuf {
    let day_start = crate::domain::rules::utc_day_start(at);
    let mut b = SqlBuf::new(style, "UPDATE ");
    b.push(table(kind)).push(" SET last_used_at = ");
    b.bind(Arg::Int(at.millis())).push(" WHERE nid = ");
    b.bind(Arg::Text(nid_str(nid))).push(" AND key_id IN ");
    b.bind_list(ids);
    b.push(" AND (last_used_at IS NULL OR last_used_at < ")
        .bind(Arg::Int(day_start.millis()))
        .push(")");
    b
}

/// Binds `SqlBuf` arguments onto any sqlx query value that has `.bind`.
macro_rules! bind_args {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for a in $args {
            q = match a {
                $crate::adapters::sql::common::Arg::Text(s) => q.bind(s),
                $crate::adapters::sql::common::Arg::Int(i) => q.bind(i),
            };
        }
        q
    }};
}
pub(crate) use bind_args;

/// Applied migration versions, for the schema-version guard and status.
pub(crate) async fn applied_versions<C>(conn: &mut C) -> Result<Vec<i64>, sqlx::Error>
where
    C: sqlx::migrate::Migrate + ?Sized,
{
    conn.ensure_migrations_table().await.map_err(migrate_err)?;
    let mut v: Vec<i64> = conn
        .list_applied_migrations()
        .await
        .map_err(migrate_err)?
        .into_iter()
        .map(|m| m.version)
        .collect();
    v.sort_unstable();
    Ok(v)
}

fn migrate_err(e: sqlx::migrate::MigrateError) -> sqlx::Error {
    match e {
        sqlx::migrate::MigrateError::Execute(e) => e,
        other => sqlx::Error::Migrate(Box::new(other)),
    }
}

/// Refuses a database that has a migration applied that this binary does
/// not know (a newer talos migrated it).
pub(crate) fn check_known(
    applied: &[i64],
    migrator: &sqlx::migrate::Migrator,
) -> Result<(), crate::ports::StoreError> {
    let max_known = migrator.iter().map(|m| m.version).max().unwrap_or(0);
    if let Some(&newest) = applied.iter().max() {
        if newest > max_known {
            return Err(crate::ports::StoreError::Schema(format!(
                "database schema version {newest} is newer than this binary supports (max {max_known}); upgrade talos"
            )));
        }
    }
    Ok(())
}

pub(crate) fn migration_status(
    applied: Vec<i64>,
    migrator: &sqlx::migrate::Migrator,
) -> crate::ports::MigrationStatus {
    let mut known: Vec<(i64, String)> = migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| (m.version, m.description.to_string()))
        .collect();
    known.sort();
    crate::ports::MigrationStatus { applied, known }
}

/// Maps a failed `Migrator::run` into the port's vocabulary.
pub(crate) fn map_migrate_error(e: sqlx::migrate::MigrateError) -> crate::ports::StoreError {
    use sqlx::migrate::MigrateError;
    match e {
        MigrateError::Execute(e) => super::rows::map_db_error(e),
        MigrateError::ExecuteMigration(e, v) => crate::ports::StoreError::Schema(format!(
            "migration {v} failed: {}",
            super::rows::map_db_error(e)
        )),
        other => crate::ports::StoreError::Schema(format!("migration failed: {other}")),
    }
}
