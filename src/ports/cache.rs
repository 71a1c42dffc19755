use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::domain::view::KeyView;
use crate::domain::NetworkId;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache unavailable: {0}")]
    Unavailable(String),
    #[error("cache entry could not be decoded: {0}")]
    Corrupt(String),
}

/// Cache of successfully verified issued/imported keys, keyed by
/// (network id, key id) — never by the secret. Entries are shared,
/// immutable [`KeyView`]s: a hit hands out a reference count, not a copy.
#[async_trait]
pub trait KeyCache: Send + Sync + 'static {
    async fn get(&self, nid: NetworkId, key_id: &str) -> Result<Option<Arc<KeyView>>, CacheError>;
    async fn put(&self, key: Arc<KeyView>, ttl: Duration) -> Result<(), CacheError>;
    async fn evict(&self, nid: NetworkId, key_id: &str) -> Result<(), CacheError>;
    /// Short name for logs and the `/health/ready` report.
    fn name(&self) -> &'static str;
}
