//! Single-node limiter: a sharded map of per-key TATs.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::domain::ratelimit::{gcra, Decision};
use crate::domain::NetworkId;
use crate::ports::{Clock, RateLimitError, RateLimiter, SystemClock};

const SHARDS: usize = 32;
/// A shard is swept of idle cells when it grows past this many.
const SWEEP_AT: usize = 4096;

pub struct MemoryRateLimiter {
    shards: Vec<Mutex<HashMap<(NetworkId, String), i64>>>,
    clock: Box<dyn Clock>,
}

impl Default for MemoryRateLimiter {
    fn default() -> Self {
        Self::with_clock(Box::new(SystemClock))
    }
}

impl MemoryRateLimiter {
    pub fn with_clock(clock: Box<dyn Clock>) -> Self {
        MemoryRateLimiter {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            clock,
        }
    }

    fn shard(&self, nid: NetworkId, key_id: &str) -> &Mutex<HashMap<(NetworkId, String), i64>> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        nid.hash(&mut h);
        key_id.hash(&mut h);
        &self.shards[(h.finish() as usize) % SHARDS]
    }
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn check(
        &self,
        nid: NetworkId,
        key_id: &str,
        quota: i64,
        window_ms: i64,
    ) -> Result<Decision, RateLimitError> {
        let now = self.clock.now().millis();
        let mut map = self
            .shard(nid, key_id)
            .lock()
            .map_err(|_| RateLimitError("lock poisoned".into()))?;
        let k = (nid, key_id.to_string());
        let d = gcra(map.get(&k).copied(), now, quota, window_ms);
        if d.allowed {
            map.insert(k, d.new_tat);
        }
        if map.len() > SWEEP_AT {
            // A cell whose TAT is in the past holds no information.
            map.retain(|_, tat| *tat > now);
        }
        Ok(d)
    }
    fn name(&self) -> &'static str {
        "memory"
    }
}
