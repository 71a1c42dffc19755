use std::time::Duration;

use async_trait::async_trait;

use crate::domain::{ApiKey, NetworkId};
use crate::ports::{CacheError, KeyCache};

/// Caches nothing: every verification reads the database.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoopCache;

#[async_trait]
impl KeyCache for NoopCache {
    async fn get(&self, _nid: NetworkId, _key_id: &str) -> Result<Option<ApiKey>, CacheError> {
        Ok(None)
    }
    async fn put(&self, _key: &ApiKey, _ttl: Duration) -> Result<(), CacheError> {
        Ok(())
    }
    async fn evict(&self, _nid: NetworkId, _key_id: &str) -> Result<(), CacheError> {
        Ok(())
    }
    fn name(&self) -> &'static str {
        "noop"
    }
}
