//! Ports: the small async traits the application needs from the outside
//! world, spoken in domain types. Adapters implement them; no sqlx, redis or
//! axum type crosses this boundary.

pub mod cache;
pub mod clock;
pub mod key_store;
pub mod rate_limit;
pub mod token_keys;

pub use cache::{CacheError, KeyCache, Ticket};
pub use clock::{Clock, SystemClock};
pub use key_store::{BatchInsertOutcome, KeyStore, MigrationStatus, StoreError};
pub use rate_limit::{RateLimitError, RateLimiter};
pub use token_keys::{TokenKeyError, TokenKeys};
