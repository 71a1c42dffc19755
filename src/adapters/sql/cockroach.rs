//! CockroachDB adapter: the PostgreSQL engine (CockroachDB speaks the
//! PostgreSQL wire protocol, and the `cockroach` feature always enables
//! `postgres`) with three differences:
//! * its own migrations folder (`migrations/cockroach`, INT4 enums);
//! * migrations run without a lock: sqlx takes `pg_advisory_lock`, which
//!   CockroachDB does not implement;
//! * every write transaction is retried on SQLSTATE 40001 (serialization
//!   failure / "restart transaction"), which CockroachDB returns under
//!   contention because it runs SERIALIZABLE — up to 5 attempts with a small
//!   exponential backoff.

use sqlx::migrate::Migrator;

use super::postgres::{open_flavor, Flavor, PostgresKeyStore};
use crate::adapters::store::{OpenError, PoolConfig};

pub static MIGRATOR: Migrator = Migrator {
    locking: false,
    ..sqlx::migrate!("migrations/cockroach")
};

/// Attempts per write transaction (1 + 4 retries).
pub const MAX_ATTEMPTS: u32 = 5;

/// Opens a CockroachDB store (`cfg.url` already rewritten to postgres://).
pub async fn open(cfg: &PoolConfig) -> Result<PostgresKeyStore, OpenError> {
    open_flavor(
        cfg,
        Flavor {
            backend: "cockroach",
            migrator: &MIGRATOR,
            max_attempts: MAX_ATTEMPTS,
        },
    )
    .await
}
