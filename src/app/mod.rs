//! Application layer: configuration, use cases, wiring and the CLI.

pub mod cli;
pub mod config;
pub mod config_docs;
pub mod derive;
pub mod error;
pub mod keys_cli;
pub mod last_used;
pub mod metrics;
pub mod reload;
pub mod service;
pub mod wiring;

pub use error::{AppError, ErrorKind};
pub use service::App;
