//! The configuration reference: one entry per key the loader accepts, with
//! its meaning, default, reload behaviour and edition. `talos config
//! reference` prints it as Markdown; `docs/configuration.md` is that output,
//! and a test keeps the two (and the loader's key list) in step.

use super::config::{env_name, is_secret_key};

/// When a change to the key takes effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reload {
    /// Read per request; picked up from the watched config file.
    Hot,
    /// Read once at startup.
    Restart,
}

/// Which builds act on the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edition {
    /// Every build, OSS included.
    All,
    /// Parsed everywhere but only acted on by builds with the named feature.
    Feature(&'static str),
}

pub struct KeyDoc {
    pub key: &'static str,
    pub default: &'static str,
    pub reload: Reload,
    pub edition: Edition,
    pub meaning: &'static str,
}

const fn doc(
    key: &'static str,
    default: &'static str,
    reload: Reload,
    edition: Edition,
    meaning: &'static str,
) -> KeyDoc {
    KeyDoc {
        key,
        default,
        reload,
        edition,
        meaning,
    }
}

use Edition::{All, Feature};
use Reload::{Hot, Restart};

pub const KEY_DOCS: &[KeyDoc] = &[
    doc("serve.http.host", "`0.0.0.0`", Restart, All, "Address the API listener binds."),
    doc("serve.http.port", "`4420`", Restart, All, "Port of the API listener."),
    doc("serve.http.request_log.exclude_health_endpoints", "`false`", Restart, All, "Leave `/health/*` requests out of the access log."),
    doc("serve.http.cors.enabled", "`false`", Restart, All, "Answer CORS preflights and add CORS headers on the API listener."),
    doc("serve.http.cors.allowed_origins", "`[\"*\"]`", Restart, All, "Origins allowed to call the API from a browser; `*` allows any."),
    doc("serve.http.cors.allowed_methods", "`[\"GET\",\"POST\",\"PUT\",\"PATCH\",\"DELETE\"]`", Restart, All, "Methods allowed in CORS requests."),
    doc("serve.http.cors.allowed_headers", "`[\"Authorization\",\"Content-Type\"]`", Restart, All, "Request headers allowed in CORS requests."),
    doc("serve.http.cors.exposed_headers", "`[\"Content-Type\"]`", Restart, All, "Response headers a browser may read."),
    doc("serve.http.cors.allow_credentials", "`false`", Restart, All, "Allow cookies/credentials in CORS requests (not with `*` origins)."),
    doc("serve.http.cors.max_age", "`0`", Restart, All, "Seconds a browser may cache a preflight answer."),
    doc("serve.http.cors.debug", "`false`", Restart, All, "Accepted for compatibility; has no effect."),
    doc("serve.http.client_ip_source", "remote address", Restart, All, "Where the client IP for CIDR restrictions comes from: `CLIENT_IP_SOURCE_REMOTE_ADDR` (the TCP peer), `…_CF_CONNECTING_IP`, `…_X_FORWARDED_FOR`, `…_X_REAL_IP`, `…_TRUE_CLIENT_IP` (see `serve.http.trusted_proxies`)."),
    doc("serve.http.trusted_proxies", "empty", Restart, All, "talos-rs extension. Proxies (IPs or CIDRs) whose forwarding headers are believed. When set, `X-Forwarded-For`, the other client-IP headers and `X-Forwarded-Host` count only on connections from these peers, and the client is the rightmost `X-Forwarded-For` entry that is not one of them. When empty, the headers switched on above are believed from any peer (leftmost `X-Forwarded-For` entry, as Ory Talos) and the server warns at startup."),
    doc("serve.http.trust_forwarded_host", "`false`", Restart, Feature("multitenancy"), "Resolve the tenant from `X-Forwarded-Host` instead of `Host` (only behind a proxy that sets it)."),
    doc("serve.http.max_body_bytes", "`8388608`", Restart, All, "Largest accepted request body; larger bodies get 413 in the error envelope."),
    doc("serve.metrics.host", "`0.0.0.0`", Restart, All, "Address of the health/metrics listener."),
    doc("serve.metrics.port", "`4422`", Restart, All, "Port of the health/metrics listener (`/health/*`; `/metrics/prometheus` with `metrics`)."),
    doc("credentials.issuer", "— (required)", Hot, All, "`iss` of derived tokens and `issuer` in verify responses."),
    doc("credentials.issuer_retired", "`[]`", Hot, All, "Earlier issuers still accepted on derived tokens: strings or `{value, expires_at}`."),
    doc("credentials.clock_skew", "`5m`", Hot, All, "Leeway for token timestamps (at most 10m)."),
    doc("credentials.api_keys.default_ttl", "none (no expiry)", Hot, All, "Lifetime of an issued key when the request names none."),
    doc("credentials.api_keys.max_ttl", "`8760h`", Hot, All, "Longest key lifetime and key age; also caps derived-token TTLs."),
    doc("credentials.api_keys.prefix.current", "`ory_ak`", Hot, All, "Prefix of newly issued secret keys (`[a-zA-Z0-9_]{1,16}`)."),
    doc("credentials.api_keys.prefix.retired", "`[]`", Hot, All, "Earlier prefixes that still verify."),
    doc("credentials.api_keys.prefix.public_current", "none", Hot, All, "Prefix of public keys; required to issue `PUBLIC` keys."),
    doc("credentials.api_keys.prefix.public_retired", "`[]`", Hot, All, "Earlier public prefixes that still verify."),
    doc("credentials.derived_tokens.default_ttl", "`1h`", Hot, All, "Derived-token lifetime when the request names none."),
    doc("credentials.derived_tokens.jwt.signing_key_id", "`\"\"`", Hot, All, "`kid` of the JWK that signs derived JWTs (else the first `use: sig` key)."),
    doc("credentials.derived_tokens.jwt.signing_keys.urls", "`[]`", Hot, All, "JWKS sources with private keys: `base64://<jwks>` or `file:///path`. Secret."),
    doc("credentials.derived_tokens.macaroon.prefix.current", "`mc`", Hot, All, "Prefix of newly minted macaroons (`[a-zA-Z0-9_]{1,8}`)."),
    doc("credentials.derived_tokens.macaroon.prefix.retired", "`[]`", Hot, All, "Earlier macaroon prefixes that still verify."),
    doc("db.dsn", "— (required)", Restart, All, "Database: `sqlite://path`, `memory`; with their features `postgres://`, `mysql://`, `cockroach://`. Secret (may hold a password)."),
    doc("db.max_connections", "`10`", Restart, All, "Connection pool size. SQLite: the number of read connections; writes go through one more."),
    doc("db.min_connections", "`0`", Restart, All, "Connections kept open when idle."),
    doc("db.connect_timeout", "`5s`", Restart, All, "How long opening a connection may take before the request fails."),
    doc("db.acquire_timeout", "`5s`", Restart, All, "How long a request waits for a pooled connection."),
    doc("db.statement_timeout", "`10s`", Restart, All, "Server-side statement timeout (PostgreSQL/CockroachDB `statement_timeout`, MySQL `max_execution_time`)."),
    doc("db.migrate_on_start", "`true`", Restart, All, "Apply pending migrations when the server starts (else run `talos migrate up`)."),
    doc("cache.type", "`noop`", Restart, All, "Verification cache: `noop`; `memory` (feature `cache-memory`); `redis`, tiered behind memory (feature `cache-redis`)."),
    doc("cache.enabled", "`false`", Hot, All, "Use the cache on verify."),
    doc("cache.ttl", "`5m`", Hot, All, "Longest time a verified key is served from cache (never past its expiry); `0` disables."),
    doc("cache.memory.max_size", "`104857600`", Restart, Feature("cache-memory"), "Memory cache budget in bytes (also the L1 budget in front of Redis)."),
    doc("cache.memory.num_counters", "`10000`", Restart, Feature("cache-memory"), "Accepted for compatibility; the cache sizes itself by `max_size`."),
    doc("cache.redis.addrs", "`[\"localhost:6379\"]`", Restart, Feature("cache-redis"), "Redis address (`host:port`); only the first is used (no cluster mode)."),
    doc("cache.redis.password", "none", Restart, Feature("cache-redis"), "Redis password. Secret."),
    doc("cache.redis.db", "`0`", Restart, Feature("cache-redis"), "Redis database number (0–15)."),
    doc("cache.redis.pool_size", "`100`", Restart, Feature("cache-redis"), "Accepted for compatibility; one multiplexed connection is used."),
    doc("cache.redis.timeout", "`3s`", Restart, Feature("cache-redis"), "Longest wait for any Redis call; on timeout verification falls back to L1 and the database."),
    doc("cache.redis.min_idle_conns", "`2`", Restart, Feature("cache-redis"), "Accepted for compatibility; has no effect."),
    doc("cache.redis.conn_max_idle_time", "`5m`", Restart, Feature("cache-redis"), "Accepted for compatibility; has no effect."),
    doc("cache.redis.conn_max_lifetime", "`30m`", Restart, Feature("cache-redis"), "Accepted for compatibility; has no effect."),
    doc("cache.redis.tls.enabled", "`false`", Restart, Feature("cache-redis"), "Not supported yet: `true` is a startup error."),
    doc("rate_limit.enabled", "`false`", Hot, Feature("rate-limit"), "Enforce each key's `rate_limit_policy` on verify (OSS stores policies only)."),
    doc("rate_limit.backend", "`memory`", Restart, Feature("rate-limit"), "`memory` (per instance) or `redis` (shared across instances; uses `cache.redis`)."),
    doc("last_used.queue_size", "`10000`", Restart, All, "Pending last-used updates kept off the hot path; overflow is dropped and counted."),
    doc("last_used.flush_size", "`100`", Restart, All, "Updates written per batch."),
    doc("last_used.flush_interval", "`30s`", Restart, All, "Longest time an update waits before it is written."),
    doc("last_used.num_workers", "`4`", Restart, All, "Accepted for compatibility; one writer task flushes in batches."),
    doc("log.level", "`info`", Restart, All, "`debug`, `info`, `warn` or `error` (`RUST_LOG` overrides)."),
    doc("log.format", "`json`", Restart, All, "`json` or `text`, to stderr."),
    doc("tracing.enabled", "`false`", Restart, Feature("otel"), "Export OpenTelemetry spans (one per request, children for store and cache calls)."),
    doc("tracing.service_name", "`talos`", Restart, Feature("otel"), "`service.name` resource attribute."),
    doc("tracing.service_version", "`0.0.0`", Restart, Feature("otel"), "`service.version` resource attribute."),
    doc("tracing.environment", "`development`", Restart, Feature("otel"), "`deployment.environment.name` resource attribute."),
    doc("tracing.exporter", "— (`otlp`)", Restart, Feature("otel"), "Exporter; only `otlp` is supported, anything else fails startup."),
    doc("tracing.endpoint", "— (required when enabled)", Restart, Feature("otel"), "OTLP/gRPC collector, e.g. `http://otel-collector:4317` (insecure transport)."),
    doc("tracing.sample_rate", "`0.001`", Restart, Feature("otel"), "Share of root traces sampled (0–1); a sampled incoming `traceparent` is always followed."),
    doc("secrets.hmac.current", "— (required)", Hot, All, "HMAC secret (≥ 32 chars) for key checksums, macaroon roots and page tokens. Secret."),
    doc("secrets.hmac.retired", "`[]`", Hot, All, "Earlier secrets that still verify: strings or `{value, expires_at}`. Secret."),
    doc("quota.api_keys_max", "none (unlimited)", Hot, All, "Most non-revoked keys per tenant; issuing beyond it is refused."),
    doc("multitenancy.enabled", "`false`", Restart, Feature("multitenancy"), "Resolve the tenant from the request hostname."),
    doc("multitenancy.networks", "`[]`", Restart, Feature("multitenancy"), "Tenants: `{hostname, id}` where `id` is the tenant's network id (lowercase UUID)."),
];

fn env_cell(key: &str, env: &str) -> String {
    if is_secret_key(key) {
        format!("`{env}`, `{env}_FILE`")
    } else {
        format!("`{env}`")
    }
}

/// The reference as Markdown (the body of `docs/configuration.md`).
pub fn reference_markdown() -> String {
    let mut out = String::from(
        "# Configuration reference\n\n\
         Generated by `talos config reference` from the loader's key list; do not edit by hand.\n\n\
         Configuration comes from the file given with `--config` (YAML, TOML or JSON) and from\n\
         environment variables, which win. Keys marked *secret* also accept `<VAR>_FILE` naming a\n\
         file that holds the value. *Hot* keys are re-read from the watched config file without a\n\
         restart; a file that fails validation is refused and the previous settings keep serving.\n\
         Keys whose edition names a feature are parsed by every build but only acted on by builds\n\
         compiled with it (the OSS build logs one line saying it ignores them).\n\n\
         | Key | Default | Environment | Reload | Edition | Meaning |\n\
         | --- | --- | --- | --- | --- | --- |\n",
    );
    for d in KEY_DOCS {
        let env = env_name(d.key);
        let reload = match d.reload {
            Hot => "hot",
            Restart => "restart",
        };
        let edition = match d.edition {
            All => "all".to_string(),
            Feature(f) => format!("`{f}`"),
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} |\n",
            d.key,
            d.default,
            env_cell(d.key, &env),
            reload,
            edition,
            d.meaning
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::config::leaf_keys;

    #[test]
    fn every_loader_key_is_documented_once() {
        let documented: Vec<&str> = KEY_DOCS.iter().map(|d| d.key).collect();
        let mut seen = std::collections::BTreeSet::new();
        for k in &documented {
            assert!(seen.insert(*k), "{k} documented twice");
        }
        for key in leaf_keys() {
            assert!(
                documented.contains(&key),
                "config key {key} is missing from the reference (src/app/config_docs.rs)"
            );
        }
        for key in &documented {
            assert!(
                leaf_keys().contains(key),
                "the reference documents {key}, which the loader does not accept"
            );
        }
    }

    #[test]
    fn docs_configuration_md_is_current() {
        let committed = include_str!("../../docs/configuration.md");
        assert!(
            committed == reference_markdown(),
            "docs/configuration.md is stale: run `cargo run -q -- config reference > docs/configuration.md`"
        );
    }
}
