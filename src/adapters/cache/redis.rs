//! Redis cache, tiered: an in-process L1 (the memory cache) in front of Redis (L2).
//!
//! * Entries in Redis carry their own PX expiry; L1 entries never outlive
//!   the Redis entry they came from.
//! * Evictions INCR the key's generation `<ns>:gen:<nid>:<key_id>` (kept
//!   10 minutes), delete the Redis
//!   entry and PUBLISH `<nid>:<key_id>` on the invalidation channel. A put
//!   is written (by a script) only if the generation still equals the one
//!   its [`Ticket`] read before the database read, so a verification that
//!   raced a revocation cannot re-cache the old state in either tier; every instance subscribes and drops its L1 copy,
//!   so a key revoked on one instance stops verifying on the others at once.
//!   After a lost subscription the whole L1 is cleared (messages may have
//!   been missed while disconnected).
//! * Every Redis call is bounded by `timeout`; on error or timeout the cache
//!   reports `Unavailable` and verification falls back to the database. The
//!   connection manager reconnects by itself; a server started while Redis
//!   is down keeps retrying in the background.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands;
use tokio::sync::RwLock;

use super::codec;
use super::memory::MemoryCache;
use crate::domain::view::KeyView;
use crate::domain::{NetworkId, Secret};
use crate::ports::{CacheError, Clock, KeyCache, SystemClock, Ticket};

/// SET the entry only if the shared generation is still the ticket's
/// (KEYS: entry, generation; ARGV: value, ttl ms, expected generation).
const PUT_IF_CURRENT: &str = r"
local g = redis.call('GET', KEYS[2]) or '0'
if g == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
";

/// How long a key's generation outlives its last eviction: far longer than
/// any verification's database read, so an outstanding ticket never sees it
/// vanish (and if it did, the put would only be dropped).
const GENERATION_TTL_MS: i64 = 600_000;

#[derive(Clone, Debug)]
pub struct RedisOptions {
    /// `host:port`; only the first address is used (no cluster mode yet).
    pub addr: String,
    pub password: Option<Secret>,
    pub db: i64,
    pub timeout: Duration,
    /// Key and channel namespace, e.g. `talos`.
    pub namespace: String,
    /// Byte bound of the in-process L1.
    pub l1_max_bytes: u64,
}

pub struct RedisCache {
    conn: Arc<RwLock<Option<ConnectionManager>>>,
    l1: MemoryCache,
    timeout: Duration,
    namespace: String,
    channel: String,
    clock: SystemClock,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for RedisCache {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn client(opts: &RedisOptions) -> Result<redis::Client, CacheError> {
    client_for(&opts.addr, opts.password.as_ref(), opts.db)
}

/// A Redis client for `host:port` (shared with the Redis rate limiter).
pub fn client_for(
    addr: &str,
    password: Option<&Secret>,
    db: i64,
) -> Result<redis::Client, CacheError> {
    let (host, port) = addr
        .rsplit_once(':')
        .and_then(|(h, p)| p.parse::<u16>().ok().map(|p| (h.to_string(), p)))
        .ok_or_else(|| CacheError::Unavailable(format!("invalid redis address '{addr}'")))?;
    let info = redis::ConnectionInfo {
        addr: redis::ConnectionAddr::Tcp(host, port),
        redis: redis::RedisConnectionInfo {
            db,
            username: None,
            password: password.map(|p| p.expose().to_string()),
            protocol: redis::ProtocolVersion::RESP2,
        },
    };
    redis::Client::open(info).map_err(|e| CacheError::Unavailable(e.to_string()))
}

impl RedisCache {
    /// Builds the cache and starts its background tasks. Never fails because
    /// Redis is down: it keeps connecting in the background.
    pub fn start(opts: RedisOptions) -> Result<Self, CacheError> {
        let client = client(&opts)?;
        let conn: Arc<RwLock<Option<ConnectionManager>>> = Arc::new(RwLock::new(None));
        let l1 = MemoryCache::new(opts.l1_max_bytes);
        let channel = format!("{}:invalidate", opts.namespace);
        let mut tasks = Vec::new();

        // Connector: establish the (self-healing) connection manager once.
        {
            let conn = conn.clone();
            let client = client.clone();
            let timeout = opts.timeout;
            tasks.push(tokio::spawn(async move {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(timeout)
                    .set_response_timeout(timeout)
                    .set_number_of_retries(1);
                loop {
                    match tokio::time::timeout(
                        timeout,
                        ConnectionManager::new_with_config(client.clone(), config.clone()),
                    )
                    .await
                    {
                        Ok(Ok(m)) => {
                            *conn.write().await = Some(m);
                            tracing::info!("redis cache connected");
                            return;
                        }
                        Ok(Err(e)) => tracing::warn!(error = %e, "redis unavailable; retrying"),
                        Err(_) => tracing::warn!("redis connect timed out; retrying"),
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }));
        }

        // Subscriber: drop L1 entries that another instance invalidated.
        {
            let l1 = l1.clone();
            let channel = channel.clone();
            tasks.push(tokio::spawn(async move {
                let mut first = true;
                loop {
                    match client.get_async_pubsub().await {
                        Ok(mut pubsub) => {
                            if let Err(e) = pubsub.subscribe(&channel).await {
                                tracing::warn!(error = %e, "redis subscribe failed");
                            } else {
                                if !first {
                                    // We may have missed invalidations while away.
                                    l1.clear().await;
                                }
                                first = false;
                                let mut stream = pubsub.on_message();
                                while let Some(msg) = stream.next().await {
                                    let payload: String = match msg.get_payload() {
                                        Ok(p) => p,
                                        Err(_) => continue,
                                    };
                                    if let Some((nid, key_id)) = payload.split_once(':') {
                                        if let Ok(nid) = uuid::Uuid::parse_str(nid) {
                                            l1.evict_local(NetworkId(nid), key_id).await;
                                        }
                                    }
                                }
                                tracing::warn!(
                                    "redis invalidation subscription lost; reconnecting"
                                );
                            }
                        }
                        Err(e) => tracing::debug!(error = %e, "redis pubsub connect failed"),
                    }
                    l1.clear().await;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }));
        }

        Ok(RedisCache {
            conn,
            l1,
            timeout: opts.timeout,
            namespace: opts.namespace,
            channel,
            clock: SystemClock,
            tasks,
        })
    }

    fn generation_key(&self, nid: NetworkId, key_id: &str) -> String {
        format!("{}:gen:{}:{}", self.namespace, nid, key_id)
    }

    fn redis_key(&self, nid: NetworkId, key_id: &str) -> String {
        format!("{}:{}:{}", self.namespace, nid, key_id)
    }

    async fn connection(&self) -> Result<ConnectionManager, CacheError> {
        self.conn
            .read()
            .await
            .clone()
            .ok_or_else(|| CacheError::Unavailable("redis is not connected".into()))
    }

    async fn bounded<T>(
        &self,
        fut: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, CacheError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(CacheError::Unavailable(e.to_string())),
            Err(_) => Err(CacheError::Unavailable("redis timed out".into())),
        }
    }

    /// True when a connection exists (for readiness reports).
    pub async fn connected(&self) -> bool {
        self.conn.read().await.is_some()
    }

    pub fn l1(&self) -> &MemoryCache {
        &self.l1
    }
}

#[async_trait]
impl KeyCache for RedisCache {
    async fn get(&self, nid: NetworkId, key_id: &str) -> Result<Option<Arc<KeyView>>, CacheError> {
        if let Some(k) = self.l1.get_local(nid, key_id).await {
            return Ok(Some(k));
        }
        let l1_generation = self.l1.generation();
        let mut conn = self.connection().await?;
        let rk = self.redis_key(nid, key_id);
        let bytes: Option<Vec<u8>> = self.bounded(conn.get(&rk)).await?;
        let Some(bytes) = bytes else { return Ok(None) };
        let (view, until) = codec::decode(&bytes)?;
        if view.nid != nid || view.key_id() != key_id {
            return Err(CacheError::Corrupt("entry does not match its key".into()));
        }
        let view = Arc::new(view);
        let remaining = self.clock.now().until(until);
        self.l1
            .put_local(view.clone(), remaining, l1_generation)
            .await;
        Ok(Some(view))
    }

    async fn ticket(&self, nid: NetworkId, key_id: &str) -> Ticket {
        let local = self.l1.generation();
        let shared = match self.connection().await {
            Ok(mut conn) => {
                let key = self.generation_key(nid, key_id);
                self.bounded(conn.get::<_, Option<i64>>(&key))
                    .await
                    .ok()
                    .map(|g| g.unwrap_or(0))
            }
            Err(_) => None,
        };
        Ticket { local, shared }
    }

    async fn put(
        &self,
        key: Arc<KeyView>,
        ttl: Duration,
        ticket: Ticket,
    ) -> Result<(), CacheError> {
        if ttl.is_zero() {
            return Ok(());
        }
        self.l1.put_local(key.clone(), ttl, ticket.local).await;
        let Some(generation) = ticket.shared else {
            return Ok(());
        };
        let until = self.clock.now().plus(ttl);
        let bytes = codec::encode(&key, until);
        let mut conn = self.connection().await?;
        let rk = self.redis_key(key.nid, key.key_id());
        let ms = ttl.as_millis().clamp(1, u64::MAX as u128) as u64;
        let script = redis::Script::new(PUT_IF_CURRENT);
        let _: i64 = self
            .bounded(
                script
                    .key(&rk)
                    .key(self.generation_key(key.nid, key.key_id()))
                    .arg(bytes)
                    .arg(ms)
                    .arg(generation.to_string())
                    .invoke_async(&mut conn),
            )
            .await?;
        Ok(())
    }

    async fn evict(&self, nid: NetworkId, key_id: &str) -> Result<(), CacheError> {
        self.l1.evict_local(nid, key_id).await;
        let mut conn = self.connection().await?;
        let rk = self.redis_key(nid, key_id);
        let payload = format!("{nid}:{key_id}");
        let _: () = self
            .bounded(async {
                let mut pipe = redis::pipe();
                let gk = self.generation_key(nid, key_id);
                pipe.incr(&gk, 1)
                    .ignore()
                    .pexpire(&gk, GENERATION_TTL_MS)
                    .ignore()
                    .del(&rk)
                    .ignore()
                    .publish(&self.channel, &payload)
                    .ignore();
                pipe.query_async(&mut conn).await
            })
            .await?;
        Ok(())
    }

    fn prefetch(&self, nid: NetworkId, issued: uuid::Uuid) {
        self.l1.prefetch(nid, issued)
    }

    fn name(&self) -> &'static str {
        "redis"
    }
}
