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
