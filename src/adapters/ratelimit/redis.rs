//! Cluster-wide limiter: the GCRA step runs atomically inside Redis as a Lua
//! script, using the Redis server's clock, so N instances together admit no
//! more than the policy.

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::Script;
use tokio::sync::OnceCell;

use crate::domain::ratelimit::Decision;
use crate::domain::NetworkId;
use crate::ports::{RateLimitError, RateLimiter};

/// KEYS[1] = cell; ARGV = quota, window_ms. Returns {allowed, remaining,
/// reset_after_ms, retry_after_ms}. Mirrors `domain::ratelimit::gcra`.
const GCRA_LUA: &str = r#"
local quota = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
if quota < 1 then quota = 1 end
if window < 1 then window = 1 end
local t = math.max(math.floor(window / quota), 1)
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + t
local allow_at = new_tat - window
if now < allow_at then
  return {0, 0, tat - now, allow_at - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.max(new_tat - now, 1))
local remaining = math.floor((now + window - new_tat) / t)
if remaining < 0 then remaining = 0 end
if remaining > quota then remaining = quota end
return {1, remaining, new_tat - now, 0}
"#;

pub struct RedisRateLimiter {
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
    script: Script,
    timeout: Duration,
    namespace: String,
}

impl RedisRateLimiter {
    pub fn new(client: redis::Client, timeout: Duration, namespace: &str) -> Self {
        RedisRateLimiter {
            client,
            conn: OnceCell::new(),
            script: Script::new(GCRA_LUA),
            timeout,
            namespace: namespace.to_string(),
        }
    }

    async fn conn(&self) -> Result<ConnectionManager, RateLimitError> {
        self.conn
            .get_or_try_init(|| async {
                let cfg = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(self.timeout)
                    .set_response_timeout(self.timeout)
                    .set_number_of_retries(1);
                ConnectionManager::new_with_config(self.client.clone(), cfg).await
            })
            .await
            .cloned()
            .map_err(|e| RateLimitError(e.to_string()))
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(
        &self,
        nid: NetworkId,
        key_id: &str,
        quota: i64,
        window_ms: i64,
    ) -> Result<Decision, RateLimitError> {
        let fut = async {
            let mut conn = self.conn().await?;
            let cell = format!("{}:rl:{}:{}", self.namespace, nid, key_id);
            let r: Vec<i64> = self
                .script
                .key(cell)
                .arg(quota)
                .arg(window_ms)
                .invoke_async(&mut conn)
                .await
                .map_err(|e| RateLimitError(e.to_string()))?;
            if r.len() != 4 {
                return Err(RateLimitError("unexpected script reply".into()));
            }
            Ok(Decision {
                allowed: r[0] == 1,
                remaining: r[1],
                reset_after_ms: r[2],
                retry_after_ms: r[3],
                new_tat: 0,
            })
        };
        tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| RateLimitError("redis timed out".into()))?
    }
    fn name(&self) -> &'static str {
        "redis"
    }
}
