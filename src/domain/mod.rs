//! Pure domain logic: key formats and checksums, credential routing,
//! tenancy, expiry/scope/CIDR rules, list filters, page-token crypto.
//!
//! No I/O, no async, no sqlx/axum/redis/tokio. Randomness and the current
//! time are passed in by callers so every function here is deterministic.

pub mod access;
pub mod audit;
pub mod base58;
pub mod credential;
pub mod derived;
pub mod duration;
pub mod filter;
pub mod keys;
pub mod macaroon;
pub mod model;
pub mod page_token;
pub mod ratelimit;
pub mod rules;
pub mod secrets;
pub mod tenancy;
pub mod view;

pub use filter::{FilterError, ListFilter};
pub use model::*;
