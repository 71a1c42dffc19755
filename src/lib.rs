//! talos-rs: an API-key server, wire-compatible with Ory Talos (API v2alpha1).
//!
//! Hexagonal layout: `domain` (pure logic), `ports` (traits), `adapters`
//! (SQL, caches, HTTP), `app` (use cases, config, wiring, CLI).

pub mod adapters;
pub mod app;
pub mod domain;
pub mod ports;
