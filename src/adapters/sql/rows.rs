//! The one row type every SQL backend decodes, its conversion to the domain
//! type, and the one place where database errors become port errors.

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::domain::{
    ApiKey, KeyKind, KeyStatus, KeyVisibility, NetworkId, RateLimitPolicy, RevocationReason,
    Timestamp,
};
use crate::ports::StoreError;

/// A row of `issued_api_keys` or `imported_api_keys`, in portable column
/// types that decode the same on SQLite, PostgreSQL/CockroachDB and
/// MySQL/MariaDB. Imported rows select `NULL AS token_prefix`.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct KeyRow {
    pub nid: String,
    pub key_id: String,
    pub name: String,
    pub token_prefix: Option<String>,
    pub actor_id: Option<String>,
    pub scopes: String,
    pub status: i32,
    pub metadata: String,
    pub last_used_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub rate_limit_quota: Option<i64>,
    pub rate_limit_window: Option<i64>,
    pub revocation_reason: i32,
    pub revocation_reason_text: String,
    pub allowed_cidrs: String,
    pub request_id: Option<String>,
    pub visibility: i32,
}

fn corrupt(what: &str, key_id: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Other(format!("corrupt {what} in stored key {key_id}: {detail}"))
}

impl KeyRow {
    pub fn into_domain(self, kind: KeyKind) -> Result<ApiKey, StoreError> {
        let k = &self.key_id;
        let nid = Uuid::parse_str(&self.nid).map_err(|e| corrupt("nid", k, e))?;
        let scopes: Vec<String> =
            parse_json_or_empty(&self.scopes).map_err(|e| corrupt("scopes", k, e))?;
        let allowed_cidrs: Vec<String> =
            parse_json_or_empty(&self.allowed_cidrs).map_err(|e| corrupt("allowed_cidrs", k, e))?;
        let metadata: Map<String, Value> =
            parse_json_or_empty(&self.metadata).map_err(|e| corrupt("metadata", k, e))?;
        let status =
            KeyStatus::from_i32(self.status).ok_or_else(|| corrupt("status", k, self.status))?;
        let revocation_reason = RevocationReason::from_i32(self.revocation_reason)
            .ok_or_else(|| corrupt("revocation_reason", k, self.revocation_reason))?;
        let visibility = KeyVisibility::from_i32(self.visibility)
            .ok_or_else(|| corrupt("visibility", k, self.visibility))?;
        Ok(ApiKey {
            nid: NetworkId(nid),
            kind,
            key_id: self.key_id,
            name: self.name,
            token_prefix: match kind {
                KeyKind::Issued => self.token_prefix,
                KeyKind::Imported => None,
            },
            actor_id: self.actor_id.unwrap_or_default(),
            scopes,
            status,
            metadata,
            last_used_at: self.last_used_at.map(Timestamp),
            expires_at: self.expires_at.map(Timestamp),
            created_at: Timestamp(self.created_at),
            updated_at: Timestamp(self.updated_at),
            rate_limit: self.rate_limit_quota.map(|quota| RateLimitPolicy {
                quota,
                window_secs: self.rate_limit_window,
            }),
            revocation_reason,
            revocation_description: self.revocation_reason_text,
            allowed_cidrs,
            request_id: self.request_id,
            visibility,
        })
    }
}

/// `NULL`-ish JSON (`""`, `null`) reads as the empty value, as Talos does for
/// `allowed_cidrs`.
fn parse_json_or_empty<T: serde::de::DeserializeOwned + Default>(
    s: &str,
) -> Result<T, serde_json::Error> {
    let t = s.trim();
    if t.is_empty() || t == "null" {
        return Ok(T::default());
    }
    serde_json::from_str(t)
}

/// Column values of one key in the order of `common::INSERT_COLUMNS`
/// (the parts that need encoding; everything else is bound from `ApiKey`).
pub(crate) struct KeyParams {
    pub nid: String,
    pub actor_id: Option<String>,
    pub scopes: String,
    pub metadata: String,
    pub allowed_cidrs: String,
    pub rate_limit_quota: Option<i64>,
    pub rate_limit_window: Option<i64>,
    pub request_id: Option<String>,
}

impl KeyParams {
    pub fn of(key: &ApiKey) -> KeyParams {
        KeyParams {
            nid: nid_str(key.nid),
            actor_id: Some(key.actor_id.clone()).filter(|a| !a.is_empty()),
            scopes: json_text(&key.scopes),
            metadata: json_text(&key.metadata),
            allowed_cidrs: json_text(&key.allowed_cidrs),
            rate_limit_quota: key.rate_limit.as_ref().map(|r| r.quota),
            rate_limit_window: key.rate_limit.as_ref().and_then(|r| r.window_secs),
            request_id: key.request_id.clone().filter(|r| !r.is_empty()),
        }
    }
}

pub(crate) fn nid_str(nid: NetworkId) -> String {
    nid.0.as_hyphenated().to_string()
}

fn json_text<T: serde::Serialize>(v: &T) -> String {
    // Vec<String> and Map<String, Value> always serialize.
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// The error a transaction body returns: either a port outcome decided by
/// the adapter (`NotFound`, `NotActive`…) or a raw driver error, which is
/// kept raw so retry policies (CockroachDB 40001) can inspect it.
#[derive(Debug)]
pub(crate) enum TxError {
    Store(StoreError),
    Db(sqlx::Error),
}

impl From<sqlx::Error> for TxError {
    fn from(e: sqlx::Error) -> Self {
        TxError::Db(e)
    }
}

impl From<StoreError> for TxError {
    fn from(e: StoreError) -> Self {
        TxError::Store(e)
    }
}

impl From<TxError> for StoreError {
    fn from(e: TxError) -> Self {
        match e {
            TxError::Store(s) => s,
            TxError::Db(d) => map_db_error(d),
        }
    }
}

/// Runs `f` (one whole transaction) again while it fails with SQLSTATE
/// 40001 — a serialization failure on PostgreSQL/CockroachDB, a deadlock
/// (ER_LOCK_DEADLOCK, 1213) on MySQL/MariaDB, where InnoDB has already
/// rolled the transaction back — with a small jittered exponential backoff
/// (20, 40, 80, 160 ms bases), up to `max_attempts` runs in all.
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) async fn retry_serialization<T, F, Fut>(
    max_attempts: u32,
    mut f: F,
) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, TxError>>,
{
    let mut attempt = 1;
    loop {
        match f().await {
            Err(TxError::Db(e))
                if attempt < max_attempts && db_code(&e).as_deref() == Some("40001") =>
            {
                let base = 10u64 << attempt;
                let jitter = rand::random::<u64>() % base;
                tokio::time::sleep(std::time::Duration::from_millis(base + jitter)).await;
                attempt += 1;
            }
            other => return other.map_err(StoreError::from),
        }
    }
}

/// SQLSTATE / driver code of a database error, if it is one.
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) fn db_code(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(d) => d.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// Classifies every driver error into the port's vocabulary. Messages are
/// the driver's (they never contain the DSN).
pub(crate) fn map_db_error(e: sqlx::Error) -> StoreError {
    use sqlx::error::ErrorKind;
    match e {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::PoolTimedOut => StoreError::Timeout,
        sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => {
            StoreError::Unavailable("connection pool is closed".into())
        }
        sqlx::Error::Io(e) if e.kind() == std::io::ErrorKind::TimedOut => StoreError::Timeout,
        sqlx::Error::Io(e) => StoreError::Unavailable(e.to_string()),
        sqlx::Error::Tls(e) => StoreError::Unavailable(format!("TLS: {e}")),
        sqlx::Error::Protocol(m) => StoreError::Unavailable(format!("protocol error: {m}")),
        sqlx::Error::Database(d) => {
            match d.kind() {
                ErrorKind::UniqueViolation => return StoreError::Conflict,
                ErrorKind::ForeignKeyViolation => {
                    return StoreError::Other(
                        "the key's network does not exist (call ensure_network first)".into(),
                    )
                }
                _ => {}
            }
            let code = d.code().map(|c| c.into_owned()).unwrap_or_default();
            if is_timeout_code(&code, d.as_ref()) {
                return StoreError::Timeout;
            }
            // Connection-class SQLSTATEs (08xxx), admin shutdown (57P01..03).
            if code.starts_with("08") || matches!(code.as_str(), "57P01" | "57P02" | "57P03") {
                return StoreError::Unavailable(d.message().to_string());
            }
            StoreError::Other(d.message().to_string())
        }
        other => StoreError::Other(other.to_string()),
    }
}

fn is_timeout_code(code: &str, _d: &dyn sqlx::error::DatabaseError) -> bool {
    // PostgreSQL/CockroachDB: 57014 query_canceled (statement_timeout),
    // 55P03 lock_not_available (lock_timeout).
    if matches!(code, "57014" | "55P03") {
        return true;
    }
    // SQLite: SQLITE_BUSY / SQLITE_LOCKED (and extended codes) after busy_timeout.
    #[cfg(feature = "sqlite")]
    if _d.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        if let Ok(n) = code.parse::<i32>() {
            return matches!(n & 0xff, 5 | 6);
        }
    }
    // MariaDB 1969 ER_STATEMENT_TIMEOUT (max_statement_time), MySQL 3024
    // ER_QUERY_TIMEOUT (max_execution_time), 1205 lock wait timeout,
    // 1317 query interrupted.
    #[cfg(feature = "mysql")]
    if let Some(m) = _d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        return matches!(m.number(), 1969 | 3024 | 1205 | 1317);
    }
    false
}

#[cfg(all(test, any(feature = "postgres", feature = "mysql")))]
mod retry_tests {
    use std::borrow::Cow;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[derive(Debug)]
    struct FakeDbError(&'static str);

    impl std::fmt::Display for FakeDbError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "fake {}", self.0)
        }
    }
    impl std::error::Error for FakeDbError {}
    impl sqlx::error::DatabaseError for FakeDbError {
        fn message(&self) -> &str {
            "Deadlock found when trying to get lock; try restarting transaction"
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.0))
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    fn db(code: &'static str) -> TxError {
        TxError::Db(sqlx::Error::Database(Box::new(FakeDbError(code))))
    }

    /// Fails with `code` for the first `failures` runs, then succeeds.
    async fn run(max: u32, code: &'static str, failures: u32) -> (Result<u32, StoreError>, u32) {
        let runs = AtomicU32::new(0);
        let r = retry_serialization(max, || async {
            let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
            if n <= failures {
                Err(db(code))
            } else {
                Ok(n)
            }
        })
        .await;
        (r, runs.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn deadlock_victims_run_again_until_they_commit() {
        let (r, runs) = run(5, "40001", 3).await;
        assert_eq!(r.unwrap(), 4);
        assert_eq!(runs, 4);
    }

    #[tokio::test]
    async fn gives_up_after_max_attempts_with_the_database_error() {
        let (r, runs) = run(3, "40001", 10).await;
        assert_eq!(runs, 3);
        assert!(
            matches!(r, Err(StoreError::Other(ref m)) if m.contains("Deadlock")),
            "{r:?}"
        );
    }

    #[tokio::test]
    async fn other_errors_and_single_attempt_flavors_are_not_retried() {
        let (r, runs) = run(5, "23505", 10).await;
        assert_eq!(runs, 1);
        assert!(r.is_err());
        let (r, runs) = run(1, "40001", 10).await;
        assert_eq!(runs, 1);
        assert!(r.is_err());
    }
}
