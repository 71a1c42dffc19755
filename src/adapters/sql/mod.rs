//! SQL adapters of the key store: one thin module per backend, each behind
//! its own Cargo feature and with its own migrations folder. Row decoding
//! and error classification live once in `rows.rs`; statements shared by
//! several dialects live once in `common.rs`. Backend selection is in
//! `adapters::store`.

pub(crate) mod common;
pub(crate) mod rows;

#[cfg(feature = "cockroach")]
pub mod cockroach;
#[cfg(feature = "mysql")]
pub mod mysql;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub mod sqlite;
