use async_trait::async_trait;

use crate::domain::ratelimit::Decision;
use crate::domain::NetworkId;

#[derive(Debug, thiserror::Error)]
#[error("rate limiter unavailable: {0}")]
pub struct RateLimitError(pub String);

/// Per-key GCRA rate limiting. Callers fail open on error.
#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    async fn check(
        &self,
        nid: NetworkId,
        key_id: &str,
        quota: i64,
        window_ms: i64,
    ) -> Result<Decision, RateLimitError>;
    fn name(&self) -> &'static str;
}
