use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use crate::domain::view::KeyView;
use crate::domain::NetworkId;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache unavailable: {0}")]
    Unavailable(String),
    #[error("cache entry could not be decoded: {0}")]
    Corrupt(String),
}

/// Taken before a verification reads a key from the database and handed
/// back with the entry to cache. A cache drops a put whose ticket predates
/// an invalidation (in process: of any key; shared: of that key), so a verification that read a key just
/// before it was revoked cannot cache the old, valid state after the
/// revocation's eviction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ticket {
    /// The in-process invalidation generation.
    pub local: u64,
    /// The key's shared (Redis) generation; `None` if it could not be
    /// read, in which case the shared tier is not written.
    pub shared: Option<i64>,
}

/// Cache of successfully verified issued/imported keys, keyed by
/// (network id, key id) — never by the secret. Entries are shared,
/// immutable [`KeyView`]s: a hit hands out a reference count, not a copy.
#[async_trait]
pub trait KeyCache: Send + Sync + 'static {
    async fn get(&self, nid: NetworkId, key_id: &str) -> Result<Option<Arc<KeyView>>, CacheError>;
    /// The ticket for a database read about to start (see [`Ticket`]).
    async fn ticket(&self, nid: NetworkId, key_id: &str) -> Ticket;
    async fn put(&self, key: Arc<KeyView>, ttl: Duration, ticket: Ticket)
        -> Result<(), CacheError>;
    async fn evict(&self, nid: NetworkId, key_id: &str) -> Result<(), CacheError>;
    /// A hint that a `get` for this issued key is coming: an in-process
    /// cache may start loading the memory that lookup will read, so the load
    /// overlaps the checksum computation in between. Never blocks or fails.
    fn prefetch(&self, _nid: NetworkId, _issued: Uuid) {}
    /// Short name for logs and the `/health/ready` report.
    fn name(&self) -> &'static str;
}
