use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::domain::view::KeyView;
use crate::domain::NetworkId;
use crate::ports::{CacheError, KeyCache, Ticket};

/// Caches nothing: every verification reads the database.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoopCache;

#[async_trait]
impl KeyCache for NoopCache {
    async fn get(
        &self,
        _nid: NetworkId,
        _key_id: &str,
    ) -> Result<Option<Arc<KeyView>>, CacheError> {
        Ok(None)
    }
    async fn ticket(&self, _nid: NetworkId, _key_id: &str) -> Ticket {
        Ticket::default()
    }
    async fn put(&self, _key: Arc<KeyView>, _ttl: Duration, _t: Ticket) -> Result<(), CacheError> {
        Ok(())
    }
    async fn evict(&self, _nid: NetworkId, _key_id: &str) -> Result<(), CacheError> {
        Ok(())
    }
    fn name(&self) -> &'static str {
        "noop"
    }
}
