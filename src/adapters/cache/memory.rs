//! In-process cache (moka) with a per-entry TTL and a size bound.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::future::Cache;
use moka::Expiry;

use crate::domain::{ApiKey, NetworkId};
use crate::ports::{CacheError, KeyCache};

type Key = (NetworkId, String);

#[derive(Clone)]
struct Entry {
    key: Arc<ApiKey>,
    ttl: Duration,
}

struct PerEntryTtl;

impl Expiry<Key, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _k: &Key, v: &Entry, _now: Instant) -> Option<Duration> {
        Some(v.ttl)
    }
    fn expire_after_update(
        &self,
        _k: &Key,
        v: &Entry,
        _now: Instant,
        _d: Option<Duration>,
    ) -> Option<Duration> {
        Some(v.ttl)
    }
}

/// Rough heap + inline size of an entry, for the byte bound.
fn weight(k: &Key, v: &Entry) -> u32 {
    let a = &v.key;
    let meta = if a.metadata.is_empty() {
        0
    } else {
        serde_json::to_vec(&a.metadata)
            .map(|b| b.len())
            .unwrap_or(256)
    };
    let size = 64
        + k.1.len()
        + std::mem::size_of::<ApiKey>()
        + a.key_id.len()
        + a.name.len()
        + a.actor_id.len()
        + a.scopes.iter().map(|s| s.len() + 24).sum::<usize>()
        + a.allowed_cidrs.iter().map(|s| s.len() + 24).sum::<usize>()
        + meta;
    size.min(u32::MAX as usize) as u32
}

#[derive(Clone)]
pub struct MemoryCache {
    inner: Cache<Key, Entry>,
}

impl MemoryCache {
    /// `max_bytes` bounds the estimated memory held by entries.
    pub fn new(max_bytes: u64) -> Self {
        let inner = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(weight)
            .expire_after(PerEntryTtl)
            .build();
        MemoryCache { inner }
    }

    pub fn entry_count(&self) -> u64 {
        self.inner.entry_count()
    }

    pub async fn run_pending_tasks(&self) {
        self.inner.run_pending_tasks().await;
    }

    /// Drops every entry.
    pub async fn clear(&self) {
        self.inner.invalidate_all();
        self.inner.run_pending_tasks().await;
    }

    pub(crate) async fn evict_local(&self, nid: NetworkId, key_id: &str) {
        self.inner.invalidate(&(nid, key_id.to_string())).await;
    }

    pub(crate) async fn get_local(&self, nid: NetworkId, key_id: &str) -> Option<ApiKey> {
        self.inner
            .get(&(nid, key_id.to_string()))
            .await
            .map(|e| (*e.key).clone())
    }

    pub(crate) async fn put_local(&self, key: &ApiKey, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        self.inner
            .insert(
                (key.nid, key.key_id.clone()),
                Entry {
                    key: Arc::new(key.clone()),
                    ttl,
                },
            )
            .await;
    }
}

#[async_trait]
impl KeyCache for MemoryCache {
    async fn get(&self, nid: NetworkId, key_id: &str) -> Result<Option<ApiKey>, CacheError> {
        Ok(self.get_local(nid, key_id).await)
    }
    async fn put(&self, key: &ApiKey, ttl: Duration) -> Result<(), CacheError> {
        self.put_local(key, ttl).await;
        Ok(())
    }
    async fn evict(&self, nid: NetworkId, key_id: &str) -> Result<(), CacheError> {
        self.evict_local(nid, key_id).await;
        Ok(())
    }
    fn name(&self) -> &'static str {
        "memory"
    }
}
