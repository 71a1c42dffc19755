//! Adapters: implementations of the ports (storage, caches, rate limiters)
//! and the HTTP transport. The in-memory key store is always compiled (it is
//! the fake used by fast app/HTTP tests and the `memory` DSN); everything
//! optional sits behind its Cargo feature.

pub mod access_log;
pub mod cache;
pub mod http;
pub mod json_text;
pub mod jwk_generate;
pub mod jwks;
pub mod log_format;
pub mod log_writer;
pub mod memory;
#[cfg(feature = "proxy")]
pub mod proxy;
#[cfg(feature = "rate-limit")]
pub mod ratelimit;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
pub mod sql;
pub mod store;
#[cfg(feature = "otel")]
pub mod telemetry;

use crate::domain::rules::revocation_expiry;
use crate::domain::{ApiKey, KeyStatus, RevocationReason, Timestamp};

/// The revocation write every adapter performs (port rule for `revoke` and
/// `rotate`): status REVOKED, reason and description, `updated_at = now`,
/// `expires_at = max(now + 30 days, old)`.
pub(crate) fn apply_revocation(
    key: &mut ApiKey,
    reason: RevocationReason,
    description: &str,
    now: Timestamp,
) {
    key.status = KeyStatus::Revoked;
    key.revocation_reason = reason;
    key.revocation_description = description.to_string();
    key.expires_at = Some(revocation_expiry(key.expires_at, now));
    key.updated_at = now;
}
