//! The key store port. One contract test suite (`tests/contract`) runs every
//! adapter through it.

use async_trait::async_trait;

use crate::domain::{ApiKey, KeyKind, ListFilter, NetworkId, RevocationReason, Timestamp};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No row with that (nid, key_id).
    #[error("not found")]
    NotFound,
    /// A unique constraint fired: (nid, key_id) or (nid, request_id).
    #[error("conflict")]
    Conflict,
    /// The key exists but is already revoked (revoke/rotate preconditions).
    #[error("key is already revoked")]
    AlreadyRevoked,
    /// The key exists but is not active (rotate precondition).
    #[error("key is not active")]
    NotActive,
    /// The database did not answer within the configured timeout.
    #[error("database operation timed out")]
    Timeout,
    /// The database cannot be reached.
    #[error("database connection failed: {0}")]
    Unavailable(String),
    /// The schema in the database is newer than this binary knows.
    #[error("{0}")]
    Schema(String),
    #[error("database error: {0}")]
    Other(String),
}

/// Per-row result of a batch import insert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchInsertOutcome {
    Inserted,
    /// (nid, key_id) already existed; nothing was written for this row.
    Duplicate,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrationStatus {
    /// Versions applied in the database, ascending.
    pub applied: Vec<i64>,
    /// Versions this binary knows, ascending, with their descriptions.
    pub known: Vec<(i64, String)>,
}

impl MigrationStatus {
    pub fn pending(&self) -> Vec<i64> {
        self.known
            .iter()
            .map(|(v, _)| *v)
            .filter(|v| !self.applied.contains(v))
            .collect()
    }
}

/// Durable storage of API keys. Every method is scoped by network id.
///
/// Rules every adapter must follow (checked by the contract suite):
/// * `list` orders by `key_id` ascending and returns rows with
///   `key_id > after` (when given), at most `limit` rows. The filter's status
///   `Active` means stored ACTIVE and not expired at `now`; `Expired` means
///   stored ACTIVE and `expires_at <= now`; `Revoked` means stored REVOKED.
/// * `insert` fails with `Conflict` on a duplicate (nid, key_id) or
///   (nid, request_id) and writes nothing.
/// * `update` writes only the mutable fields (name, scopes, metadata,
///   rate_limit, allowed_cidrs) and `updated_at`.
/// * `revoke` is atomic: it fails with `AlreadyRevoked` if the key is revoked,
///   and sets status REVOKED, the reason and description, `updated_at = now`,
///   and `expires_at = max(now + 30 days, old expires_at)` (NULL → now + 30d).
/// * `rotate` is atomic: in one transaction it checks that the old issued key is
///   ACTIVE (`NotActive` otherwise; `NotFound` if missing), inserts `new_key` and
///   revokes the old key (reason SUPERSEDED, same expiry rule as `revoke`). It
///   returns the old key as stored after revocation.
/// * `batch_insert_imported` writes every non-duplicate row in one transaction,
///   either all of them or none (an error means nothing was written).
#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    async fn insert(&self, key: &ApiKey) -> Result<(), StoreError>;
    async fn get(
        &self,
        nid: NetworkId,
        kind: KeyKind,
        key_id: &str,
    ) -> Result<Option<ApiKey>, StoreError>;
    /// Rows that exist among `key_ids`, in any order.
    async fn get_many(
        &self,
        nid: NetworkId,
        kind: KeyKind,
        key_ids: &[String],
    ) -> Result<Vec<ApiKey>, StoreError>;
    async fn get_by_request_id(
        &self,
        nid: NetworkId,
        kind: KeyKind,
        request_id: &str,
    ) -> Result<Option<ApiKey>, StoreError>;
    async fn list(
        &self,
        nid: NetworkId,
        kind: KeyKind,
        filter: &ListFilter,
        after: Option<&str>,
        limit: u32,
        now: Timestamp,
    ) -> Result<Vec<ApiKey>, StoreError>;
    /// Writes the mutable fields of `key`; `NotFound` if the row is gone.
    async fn update(&self, key: &ApiKey) -> Result<(), StoreError>;
    async fn revoke(
        &self,
        nid: NetworkId,
        kind: KeyKind,
        key_id: &str,
        reason: RevocationReason,
        description: &str,
        now: Timestamp,
    ) -> Result<ApiKey, StoreError>;
    async fn rotate(
        &self,
        nid: NetworkId,
        old_key_id: &str,
        new_key: &ApiKey,
        now: Timestamp,
    ) -> Result<ApiKey, StoreError>;
    /// Hard delete (imported keys only in the API); `NotFound` if missing.
    async fn delete(&self, nid: NetworkId, kind: KeyKind, key_id: &str) -> Result<(), StoreError>;
    async fn batch_insert_imported(
        &self,
        keys: &[ApiKey],
    ) -> Result<Vec<BatchInsertOutcome>, StoreError>;
    /// Non-revoked keys (issued + imported) of the network, counting at most `cap`.
    async fn count_active(&self, nid: NetworkId, cap: u64) -> Result<u64, StoreError>;
    /// Sets `last_used_at = at` for the given keys where it is NULL or older
    /// than the start of `at`'s UTC day.
    async fn touch_last_used(
        &self,
        nid: NetworkId,
        kind: KeyKind,
        key_ids: &[String],
        at: Timestamp,
    ) -> Result<(), StoreError>;
    /// Cheap liveness query for `/health/ready`.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Ensures the network row exists (OSS seeds the nil network at startup).
    async fn ensure_network(&self, nid: NetworkId, now: Timestamp) -> Result<(), StoreError>;
    async fn migrate_up(&self) -> Result<Vec<i64>, StoreError>;
    async fn migration_status(&self) -> Result<MigrationStatus, StoreError>;
    /// Backend name for logs: `memory`, `sqlite`, `postgres`, `mysql`, `cockroach`.
    fn backend(&self) -> &'static str;
}
