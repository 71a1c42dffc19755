//! Rate limiters (feature `rate-limit`): one GCRA cell per key, in process
//! or shared through Redis.

pub mod memory;
#[cfg(feature = "cache-redis")]
pub mod redis;

pub use memory::MemoryRateLimiter;
#[cfg(feature = "cache-redis")]
pub use redis::RedisRateLimiter;
