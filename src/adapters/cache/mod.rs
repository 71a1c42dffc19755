//! Cache adapters. `noop` is always compiled; `memory` (own table) and `redis`
//! (tiered: memory L1 + Redis L2 with pub/sub invalidation) are behind the
//! `cache-memory` and `cache-redis` features.

#[cfg(feature = "cache-redis")]
mod codec;
#[cfg(feature = "cache-memory")]
pub mod memory;
pub mod noop;
#[cfg(feature = "cache-redis")]
pub mod redis;
#[cfg(feature = "cache-memory")]
mod table;

#[cfg(feature = "cache-memory")]
pub use memory::MemoryCache;
pub use noop::NoopCache;
#[cfg(feature = "cache-redis")]
pub use redis::{RedisCache, RedisOptions};

/// An active issued key's view, for the cache tests.
#[cfg(all(test, feature = "cache-memory"))]
pub(crate) fn test_view(nid: u128, key_id: &str) -> std::sync::Arc<crate::domain::view::KeyView> {
    use crate::domain::view::{KeyView, KeyViewParts};
    use crate::domain::{KeyKind, KeyStatus, KeyVisibility, NetworkId};
    std::sync::Arc::new(KeyView::new(KeyViewParts {
        nid: NetworkId(uuid::Uuid::from_u128(nid)),
        kind: KeyKind::Issued,
        status: KeyStatus::Active,
        visibility: KeyVisibility::Secret,
        expires_at: None,
        rate_limit: None,
        key_id,
        actor_id: "a",
        metadata_json: "{}",
        scopes: &["s"],
        allowed_cidrs: &[] as &[&str],
    }))
}
