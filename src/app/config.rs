//! Configuration: defaults → file (`--config`, YAML/TOML/JSON) → `TALOS_*`
//! environment variables, loaded with figment and validated into resolved
//! [`Settings`] before any listener binds.
//!
//! Key names follow the Ory Talos schema (spec §10.2). Environment variables
//! are matched against the table of known keys (`TALOS_` + path with `.`
//! replaced by `_`), so keys that themselves contain underscores map
//! unambiguously. Every secret-bearing key also accepts `<VAR>_FILE`.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Format, Json, Serialized, Toml, Yaml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::adapters::store::{Backend, StoreOptions};
use crate::domain::duration::parse_go_duration;
use crate::domain::keys::is_valid_prefix;
use crate::domain::secrets::{Retired, SecretSet};
use crate::domain::tenancy::{TenancyMode, TenantTable};
use crate::domain::{NetworkId, Secret, Timestamp};

/// The exact startup error when no HMAC secret is configured (spec §10.1).
pub const NO_HMAC_KEY: &str = "project has no HMAC key configured";

// ---------------------------------------------------------------------------
// Raw configuration, as written by operators.
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RawConfig {
    pub serve: RawServe,
    pub credentials: RawCredentials,
    pub db: RawDb,
    pub cache: RawCache,
    pub rate_limit: RawRateLimit,
    pub last_used: RawLastUsed,
    pub log: RawLog,
    pub tracing: Value,
    pub secrets: RawSecrets,
    pub quota: RawQuota,
    pub multitenancy: RawMultitenancy,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RawServe {
    pub http: RawHttp,
    pub metrics: RawListener,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct RawHttp {
    pub host: String,
    pub port: u16,
    pub request_log: RawRequestLog,
    pub cors: Value,
    pub client_ip_source: String,
    pub trust_forwarded_host: bool,
    /// talos-rs extension: peers whose forwarding headers are believed.
    pub trusted_proxies: Vec<String>,
    /// talos-rs extension: maximum request body in bytes (default 8 MiB).
    pub max_body_bytes: usize,
}

impl Default for RawHttp {
    fn default() -> Self {
        RawHttp {
            host: "0.0.0.0".into(),
            port: 4420,
            request_log: RawRequestLog::default(),
            cors: Value::Null,
            client_ip_source: String::new(),
            trust_forwarded_host: false,
            trusted_proxies: Vec::new(),
            max_body_bytes: 8 * 1024 * 1024,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RawRequestLog {
    pub exclude_health_endpoints: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct RawListener {
    pub host: String,
    pub port: u16,
}

impl Default for RawListener {
    fn default() -> Self {
        RawListener {
            host: "0.0.0.0".into(),
            port: 4422,
        }
    }
}

/// A retired value: a bare string (never expires) or `{value, expires_at}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RawRetired {
    Bare(String),
    Entry {
        value: String,
        #[serde(default)]
        expires_at: Option<String>,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct RawCredentials {
    pub issuer: String,
    pub issuer_retired: Vec<RawRetired>,
    pub clock_skew: String,
    pub api_keys: RawApiKeys,
    pub derived_tokens: RawDerivedTokens,
}

impl Default for RawCredentials {
    fn default() -> Self {
        RawCredentials {
            issuer: String::new(),
            issuer_retired: Vec::new(),
            clock_skew: "5m".into(),
            api_keys: RawApiKeys::default(),
            derived_tokens: RawDerivedTokens::default(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct RawApiKeys {
    pub default_ttl: String,
    pub max_ttl: String,
    pub prefix: RawPrefixes,
}

impl Default for RawApiKeys {
    fn default() -> Self {
        RawApiKeys {
            default_ttl: String::new(),
            max_ttl: "8760h".into(),
            prefix: RawPrefixes::default(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct RawPrefixes {
    pub current: String,
    pub retired: Vec<String>,
    pub public_current: String,
    pub public_retired: Vec<String>,
}

impl Default for RawPrefixes {
    fn default() -> Self {
        RawPrefixes {
            current: "ory_ak".into(),
            retired: Vec::new(),
            public_current: String::new(),
            public_retired: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct RawDerivedTokens {
    pub default_ttl: String,
    pub jwt: RawJwt,
    pub macaroon: RawMacaroon,
}

impl Default for RawDerivedTokens {
    fn default() -> Self {
        RawDerivedTokens {
            default_ttl: "1h".into(),
            jwt: RawJwt::default(),
            macaroon: RawMacaroon::default(),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RawJwt {
    pub signing_key_id: String,
    pub signing_keys: RawSigningKeys,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RawSigningKeys {
    pub urls: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RawMacaroon {
    pub prefix: RawMacaroonPrefix,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct RawMacaroonPrefix {
    pub current: String,
    pub retired: Vec<String>,
}

impl Default for RawMacaroonPrefix {
    fn default() -> Self {
        RawMacaroonPrefix {
            current: "mc".into(),
            retired: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct RawDb {
    pub dsn: String,
    /// talos-rs extensions: pool and timeout settings.
    pub max_connections: u32,
    pub min_connections: u32,
    pub connect_timeout: String,
    pub acquire_timeout: String,
    pub statement_timeout: String,
    /// Apply pending migrations when the server starts (default true).
    pub migrate_on_start: bool,
}

impl Default for RawDb {
    fn default() -> Self {
        RawDb {
            dsn: String::new(),
            max_connections: 10,
            min_connections: 0,
            connect_timeout: "5s".into(),
            acquire_timeout: "5s".into(),
            statement_timeout: "10s".into(),
            migrate_on_start: true,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct RawCache {
    #[serde(rename = "type")]
    pub kind: String,
    pub enabled: bool,
    pub ttl: String,
    pub memory: Value,
    pub redis: Value,
}

impl Default for RawCache {
    fn default() -> Self {
        RawCache {
            kind: "noop".into(),
            enabled: false,
            ttl: "5m".into(),
            memory: Value::Null,
            redis: Value::Null,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RawRateLimit {
    pub enabled: bool,
    pub backend: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct RawLastUsed {
    pub queue_size: usize,
    pub flush_size: usize,
    pub flush_interval: String,
    pub num_workers: usize,
}

impl Default for RawLastUsed {
    fn default() -> Self {
        RawLastUsed {
            queue_size: 10_000,
            flush_size: 100,
            flush_interval: "30s".into(),
            num_workers: 4,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct RawLog {
    pub level: String,
    pub format: String,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            level: "info".into(),
            format: "json".into(),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RawSecrets {
    pub hmac: RawHmac,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RawHmac {
    pub current: String,
    pub retired: Vec<RawRetired>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RawQuota {
    pub api_keys_max: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RawMultitenancy {
    pub enabled: bool,
    pub networks: Vec<RawNetwork>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RawNetwork {
    pub hostname: String,
    pub id: String,
    pub config_path: String,
}

// ---------------------------------------------------------------------------
// Known keys: drives env-var mapping and unknown-key warnings.
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyType {
    Str,
    Int,
    Bool,
    Float,
    /// Comma-separated, or a JSON array.
    StrList,
    /// JSON array (of strings or objects).
    JsonList,
    /// A nested object whose sub-keys are free-form (e.g. `tracing`).
    Object,
}

/// Every key talos-rs understands, with its type and whether it carries a
/// secret (secret keys also accept `TALOS_…_FILE`).
const KNOWN_KEYS: &[(&str, KeyType, bool)] = &[
    ("serve.http.host", KeyType::Str, false),
    ("serve.http.port", KeyType::Int, false),
    (
        "serve.http.request_log.exclude_health_endpoints",
        KeyType::Bool,
        false,
    ),
    ("serve.http.cors", KeyType::Object, false),
    ("serve.http.client_ip_source", KeyType::Str, false),
    ("serve.http.trust_forwarded_host", KeyType::Bool, false),
    ("serve.http.trusted_proxies", KeyType::StrList, false),
    ("serve.http.max_body_bytes", KeyType::Int, false),
    ("serve.metrics.host", KeyType::Str, false),
    ("serve.metrics.port", KeyType::Int, false),
    ("credentials.issuer", KeyType::Str, false),
    ("credentials.issuer_retired", KeyType::JsonList, false),
    ("credentials.clock_skew", KeyType::Str, false),
    ("credentials.api_keys.default_ttl", KeyType::Str, false),
    ("credentials.api_keys.max_ttl", KeyType::Str, false),
    ("credentials.api_keys.prefix.current", KeyType::Str, false),
    (
        "credentials.api_keys.prefix.retired",
        KeyType::StrList,
        false,
    ),
    (
        "credentials.api_keys.prefix.public_current",
        KeyType::Str,
        false,
    ),
    (
        "credentials.api_keys.prefix.public_retired",
        KeyType::StrList,
        false,
    ),
    (
        "credentials.derived_tokens.default_ttl",
        KeyType::Str,
        false,
    ),
    (
        "credentials.derived_tokens.jwt.signing_key_id",
        KeyType::Str,
        false,
    ),
    (
        "credentials.derived_tokens.jwt.signing_keys.urls",
        KeyType::StrList,
        true,
    ),
    (
        "credentials.derived_tokens.macaroon.prefix.current",
        KeyType::Str,
        false,
    ),
    (
        "credentials.derived_tokens.macaroon.prefix.retired",
        KeyType::StrList,
        false,
    ),
    ("db.dsn", KeyType::Str, true),
    ("db.max_connections", KeyType::Int, false),
    ("db.min_connections", KeyType::Int, false),
    ("db.connect_timeout", KeyType::Str, false),
    ("db.acquire_timeout", KeyType::Str, false),
    ("db.statement_timeout", KeyType::Str, false),
    ("db.migrate_on_start", KeyType::Bool, false),
    ("cache.type", KeyType::Str, false),
    ("cache.enabled", KeyType::Bool, false),
    ("cache.ttl", KeyType::Str, false),
    ("cache.memory", KeyType::Object, false),
    ("cache.redis", KeyType::Object, false),
    ("rate_limit.enabled", KeyType::Bool, false),
    ("rate_limit.backend", KeyType::Str, false),
    ("last_used.queue_size", KeyType::Int, false),
    ("last_used.flush_size", KeyType::Int, false),
    ("last_used.flush_interval", KeyType::Str, false),
    ("last_used.num_workers", KeyType::Int, false),
    ("log.level", KeyType::Str, false),
    ("log.format", KeyType::Str, false),
    ("tracing", KeyType::Object, false),
    ("secrets.hmac.current", KeyType::Str, true),
    ("secrets.hmac.retired", KeyType::JsonList, true),
    ("quota.api_keys_max", KeyType::Int, false),
    ("multitenancy.enabled", KeyType::Bool, false),
    ("multitenancy.networks", KeyType::JsonList, false),
];

/// Sub-keys accepted under the free-form objects (for typo warnings and env
/// mapping of their leaves).
const KNOWN_OBJECT_LEAVES: &[(&str, KeyType)] = &[
    ("serve.http.cors.enabled", KeyType::Bool),
    ("serve.http.cors.allowed_origins", KeyType::StrList),
    ("serve.http.cors.allowed_methods", KeyType::StrList),
    ("serve.http.cors.allowed_headers", KeyType::StrList),
    ("serve.http.cors.exposed_headers", KeyType::StrList),
    ("serve.http.cors.allow_credentials", KeyType::Bool),
    ("serve.http.cors.max_age", KeyType::Int),
    ("serve.http.cors.debug", KeyType::Bool),
    ("cache.memory.max_size", KeyType::Int),
    ("cache.memory.num_counters", KeyType::Int),
    ("cache.redis.addrs", KeyType::StrList),
    ("cache.redis.password", KeyType::Str),
    ("cache.redis.db", KeyType::Int),
    ("cache.redis.pool_size", KeyType::Int),
    ("cache.redis.timeout", KeyType::Str),
    ("cache.redis.min_idle_conns", KeyType::Int),
    ("cache.redis.conn_max_idle_time", KeyType::Str),
    ("cache.redis.conn_max_lifetime", KeyType::Str),
    ("cache.redis.tls.enabled", KeyType::Bool),
    ("tracing.enabled", KeyType::Bool),
    ("tracing.service_name", KeyType::Str),
    ("tracing.service_version", KeyType::Str),
    ("tracing.environment", KeyType::Str),
    ("tracing.exporter", KeyType::Str),
    ("tracing.endpoint", KeyType::Str),
    ("tracing.sample_rate", KeyType::Float),
];

pub(crate) fn env_name(path: &str) -> String {
    format!("TALOS_{}", path.replace('.', "_").to_ascii_uppercase())
}

fn lookup_key(path: &str) -> Option<KeyType> {
    KNOWN_KEYS
        .iter()
        .map(|(p, t, _)| (*p, *t))
        .chain(KNOWN_OBJECT_LEAVES.iter().copied())
        .find(|(p, _)| *p == path)
        .map(|(_, t)| t)
}

fn parse_env_value(path: &str, ty: KeyType, raw: &str) -> Result<Value, String> {
    let bad = |what: &str| format!("{}: expected {what}, got {raw:?}", env_name(path));
    Ok(match ty {
        KeyType::Str => Value::String(raw.to_string()),
        KeyType::Int => Value::from(raw.trim().parse::<i64>().map_err(|_| bad("an integer"))?),
        KeyType::Float => Value::from(raw.trim().parse::<f64>().map_err(|_| bad("a number"))?),
        KeyType::Bool => match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Value::Bool(true),
            "false" | "0" | "no" | "off" | "" => Value::Bool(false),
            _ => return Err(bad("true or false")),
        },
        KeyType::StrList => {
            let t = raw.trim();
            if t.starts_with('[') {
                serde_json::from_str(t).map_err(|_| bad("a JSON array"))?
            } else {
                Value::Array(
                    t.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| Value::String(s.to_string()))
                        .collect(),
                )
            }
        }
        KeyType::JsonList => {
            let t = raw.trim();
            if t.starts_with('[') {
                serde_json::from_str(t).map_err(|_| bad("a JSON array"))?
            } else {
                // A bare comma-separated list of strings is accepted too.
                Value::Array(
                    t.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| Value::String(s.to_string()))
                        .collect(),
                )
            }
        }
        KeyType::Object => serde_json::from_str(raw).map_err(|_| bad("a JSON object"))?,
    })
}

fn insert_path(root: &mut Map<String, Value>, path: &str, value: Value) {
    let mut parts = path.split('.').peekable();
    let mut cur = root;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            cur.insert(part.to_string(), value);
            return;
        }
        let entry = cur
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        cur = entry.as_object_mut().expect("just made an object");
    }
}

/// Turns `TALOS_*` variables into a nested JSON object. Returns warnings for
/// variables that match no key.
fn env_overrides(
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<(Map<String, Value>, Vec<String>), String> {
    let mut out = Map::new();
    let mut warnings = Vec::new();
    let mut all: Vec<(&str, KeyType, bool)> = KNOWN_KEYS.to_vec();
    all.extend(
        KNOWN_OBJECT_LEAVES
            .iter()
            .map(|(p, t)| (*p, *t, *p == SECRET_OBJECT_LEAF)),
    );
    for (name, value) in vars {
        if !name.starts_with("TALOS_") {
            continue;
        }
        let matched = all.iter().find_map(|(path, ty, secret)| {
            let base = env_name(path);
            if name == base {
                Some((path, ty, false))
            } else if *secret && name == format!("{base}_FILE") {
                Some((path, ty, true))
            } else {
                None
            }
        });
        match matched {
            Some((path, ty, from_file)) => {
                let raw = if from_file {
                    std::fs::read_to_string(&value)
                        .map_err(|e| format!("{name}: cannot read {value}: {e}"))?
                        .trim_end_matches(['\n', '\r'])
                        .to_string()
                } else {
                    value
                };
                insert_path(&mut out, path, parse_env_value(path, *ty, &raw)?);
            }
            None if name.starts_with("TALOS_TEST_") => {}
            None => warnings.push(format!(
                "environment variable {name} does not match any configuration key; ignored"
            )),
        }
    }
    Ok((out, warnings))
}

/// Paths present in `value` that are not configuration keys.
fn unknown_keys(value: &Value) -> Vec<String> {
    fn walk(prefix: &str, v: &Value, out: &mut Vec<String>) {
        let Value::Object(map) = v else { return };
        for (k, child) in map {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match lookup_key(&path) {
                Some(KeyType::Object) => walk(&path, child, out),
                Some(_) => {}
                None => {
                    let is_branch = KNOWN_KEYS
                        .iter()
                        .map(|(p, _, _)| *p)
                        .chain(KNOWN_OBJECT_LEAVES.iter().map(|(p, _)| *p))
                        .any(|p| p.starts_with(&format!("{path}.")));
                    if is_branch {
                        walk(&path, child, out)
                    } else {
                        out.push(path)
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    walk("", value, &mut out);
    out
}

/// A loaded (not yet validated) configuration plus the warnings produced
/// while loading it.
pub struct Loaded {
    pub raw: RawConfig,
    pub warnings: Vec<String>,
    /// The `TALOS_*` variables that were applied (reused on hot reload).
    pub env: EnvSnapshot,
}

/// `TALOS_*` variables captured at startup. Debug shows names only.
#[derive(Clone, Default)]
pub struct EnvSnapshot(pub Vec<(String, String)>);

impl std::fmt::Debug for EnvSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| k))
            .finish()
    }
}

/// Loads defaults → file → environment.
pub fn load(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Loaded, String> {
    let mut figment = Figment::from(Serialized::defaults(RawConfig::default()));
    let mut warnings = Vec::new();
    if let Some(path) = file {
        if !path.exists() {
            return Err(format!("config file {} does not exist", path.display()));
        }
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let file_figment = match ext.as_str() {
            "yaml" | "yml" => Figment::from(Yaml::file(path)),
            "toml" => Figment::from(Toml::file(path)),
            "json" => Figment::from(Json::file(path)),
            other => {
                return Err(format!(
                "config file {}: unsupported extension '{other}' (use .yaml, .yml, .toml or .json)",
                path.display()
            ))
            }
        };
        let file_value: Value = file_figment
            .extract()
            .map_err(|e| format!("config file {}: {e}", path.display()))?;
        for key in unknown_keys(&file_value) {
            warnings.push(format!(
                "config file {}: unknown key '{key}' ignored",
                path.display()
            ));
        }
        figment = figment.merge(file_figment);
    }
    let env: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with("TALOS_"))
        .collect();
    let (env_map, env_warnings) = env_overrides(env.clone())?;
    warnings.extend(env_warnings);
    figment = figment.merge(Serialized::defaults(Value::Object(env_map)));
    let raw: RawConfig = figment.extract().map_err(|e| format_figment_error(&e))?;
    Ok(Loaded {
        raw,
        warnings,
        env: EnvSnapshot(env),
    })
}

fn format_figment_error(e: &figment::Error) -> String {
    let mut parts = Vec::new();
    for err in e.clone() {
        let path = err.path.join(".");
        if path.is_empty() {
            parts.push(format!("invalid configuration: {}", err.kind));
        } else {
            parts.push(format!("invalid configuration at '{path}': {}", err.kind));
        }
    }
    parts.join("; ")
}

// ---------------------------------------------------------------------------
// Resolved settings.
// ---------------------------------------------------------------------------

/// Where verification reads the client IP from (spec §5.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientIpSource {
    RemoteAddr,
    CfConnectingIp,
    XForwardedFor,
    XRealIp,
    TrueClientIp,
}

/// The resolved `serve.http.cors` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorsSettings {
    /// Exact origins, `*`, or patterns with one `*` (e.g. `https://*.example.com`).
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    pub allowed_headers: Vec<String>,
    pub exposed_headers: Vec<String>,
    pub allow_credentials: bool,
    pub max_age_secs: u64,
}

/// Reads `serve.http.cors`; `None` unless `enabled` is true.
pub fn resolve_cors(raw: &Value) -> Result<Option<CorsSettings>, String> {
    if raw.get("enabled").and_then(Value::as_bool) != Some(true) {
        return Ok(None);
    }
    let list = |k: &str, default: &[&str]| -> Result<Vec<String>, String> {
        match raw.get(k) {
            None | Some(Value::Null) => Ok(default.iter().map(|s| s.to_string()).collect()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .filter(|s| !s.trim().is_empty())
                        .map(|s| s.trim().to_string())
                        .ok_or_else(|| {
                            format!("serve.http.cors.{k}: every entry must be a non-empty string")
                        })
                })
                .collect(),
            Some(_) => Err(format!("serve.http.cors.{k} must be a list of strings")),
        }
    };
    let allowed_origins = list("allowed_origins", &["*"])?;
    for o in &allowed_origins {
        if o.matches('*').count() > 1 {
            return Err(format!(
                "serve.http.cors.allowed_origins: '{o}' has more than one wildcard"
            ));
        }
    }
    const METHODS: &[&str] = &[
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "TRACE", "PATCH", "OPTIONS",
    ];
    let allowed_methods = list(
        "allowed_methods",
        &["GET", "POST", "PUT", "PATCH", "DELETE"],
    )?;
    if let Some(m) = allowed_methods
        .iter()
        .find(|m| !METHODS.contains(&m.as_str()))
    {
        return Err(format!(
            "serve.http.cors.allowed_methods: '{m}' is not an HTTP method"
        ));
    }
    let allowed_headers = list("allowed_headers", &["Authorization", "Content-Type"])?;
    let exposed_headers = list("exposed_headers", &["Content-Type"])?;
    for h in allowed_headers.iter().chain(&exposed_headers) {
        if axum::http::HeaderName::from_bytes(h.as_bytes()).is_err() {
            return Err(format!("serve.http.cors: '{h}' is not a valid header name"));
        }
    }
    let allow_credentials = raw
        .get("allow_credentials")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if allow_credentials && allowed_origins.iter().any(|o| o == "*") {
        return Err("serve.http.cors: allow_credentials cannot be combined with the origin '*'; list the origins".into());
    }
    let max_age_secs = match raw.get("max_age") {
        None | Some(Value::Null) => 0,
        Some(v) => v
            .as_u64()
            .ok_or("serve.http.cors.max_age must be a whole number of seconds")?,
    };
    Ok(Some(CorsSettings {
        allowed_origins,
        allowed_methods,
        allowed_headers,
        exposed_headers,
        allow_credentials,
        max_age_secs,
    }))
}

/// The resolved `tracing` block: OTLP/gRPC export of request spans.
#[derive(Clone, Debug, PartialEq)]
pub struct TracingSettings {
    pub service_name: String,
    pub service_version: String,
    pub environment: String,
    /// OTLP gRPC endpoint, e.g. `http://otel-collector:4317` (insecure transport).
    pub endpoint: String,
    /// Head sampling ratio for root spans (0–1); an incoming sampled
    /// `traceparent` is always followed.
    pub sample_rate: f64,
}

/// Reads the `tracing` block. `Ok(None)` when disabled, or when this build
/// has no `otel` feature (then with a one-line warning).
pub fn resolve_tracing(
    raw: &Value,
    warnings: &mut Vec<String>,
) -> Result<Option<TracingSettings>, String> {
    let field = |k: &str| raw.get(k).filter(|v| !v.is_null());
    let text = |k: &str, default: &str| -> Result<String, String> {
        match field(k) {
            None => Ok(default.to_string()),
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
            Some(Value::String(_)) => Ok(default.to_string()),
            Some(other) => Err(format!("tracing.{k}: expected a string, got {other}")),
        }
    };
    let enabled = match field("enabled") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(format!(
                "tracing.enabled: expected true or false, got {other}"
            ))
        }
    };
    if !enabled {
        return Ok(None);
    }
    if !cfg!(feature = "otel") {
        warnings.push("tracing.enabled is ignored: OpenTelemetry tracing is not compiled into this build; rebuild with --features otel".into());
        return Ok(None);
    }
    let exporter = text("exporter", "")?;
    if exporter != "otlp" {
        return Err(format!(
            "tracing.exporter: '{exporter}' is not supported; the only exporter is 'otlp'"
        ));
    }
    let endpoint = text("endpoint", "")?;
    if endpoint.is_empty() {
        return Err("tracing.endpoint is required when tracing.enabled is true (an OTLP gRPC address such as http://localhost:4317)".into());
    }
    let endpoint = if endpoint.contains("://") {
        endpoint
    } else {
        format!("http://{endpoint}")
    };
    if !endpoint.starts_with("http://") {
        return Err(format!(
            "tracing.endpoint: '{endpoint}' must be http:// (OTLP gRPC over an insecure transport)"
        ));
    }
    let sample_rate = match field("sample_rate") {
        None => 0.001,
        Some(v) => v
            .as_f64()
            .filter(|r| (0.0..=1.0).contains(r))
            .ok_or_else(|| format!("tracing.sample_rate: {v} is not a number between 0 and 1"))?,
    };
    Ok(Some(TracingSettings {
        service_name: text("service_name", "talos")?,
        service_version: text("service_version", "0.0.0")?,
        environment: text("environment", "development")?,
        endpoint,
        sample_rate,
    }))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// Where rate-limit state lives (`rate_limit.backend`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RateLimitBackend {
    Memory,
    /// Shared through Redis, using the `cache.redis` connection settings.
    Redis(RedisSettings),
}

/// The cache backend with what it needs (validated at startup).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheKind {
    Noop,
    Memory { max_bytes: u64 },
    Redis(RedisSettings),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisSettings {
    pub addrs: Vec<String>,
    pub password: Option<Secret>,
    pub db: i64,
    pub timeout: Duration,
    pub l1_max_bytes: u64,
}

fn obj_get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_object().and_then(|m| m.get(key))
}

fn resolve_cache(raw: &RawCache) -> Result<CacheKind, String> {
    let max_bytes = match obj_get(&raw.memory, "max_size") {
        None => 104_857_600,
        Some(v) => v
            .as_u64()
            .filter(|n| (1_048_576..=10_737_418_240).contains(n))
            .ok_or("cache.memory.max_size must be an integer between 1048576 and 10737418240")?,
    };
    Ok(match raw.kind.trim() {
        "" | "noop" => CacheKind::Noop,
        "memory" => CacheKind::Memory { max_bytes },
        "redis" => {
            let r = &raw.redis;
            let addrs = match obj_get(r, "addrs") {
                None => vec!["localhost:6379".to_string()],
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_string)
                            .ok_or("cache.redis.addrs must be strings")
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                Some(_) => return Err("cache.redis.addrs must be a list of host:port".into()),
            };
            if addrs.is_empty()
                || addrs.iter().any(|a| {
                    a.rsplit_once(':')
                        .and_then(|(_, p)| p.parse::<u16>().ok())
                        .is_none()
                })
            {
                return Err("cache.redis.addrs must be a non-empty list of host:port".into());
            }
            if r.get("tls")
                .and_then(|t| t.get("enabled"))
                .and_then(Value::as_bool)
                == Some(true)
            {
                return Err("cache.redis.tls.enabled: TLS to Redis is not supported yet; use a local TLS tunnel (e.g. stunnel) or a private network".into());
            }
            let timeout = match obj_get(r, "timeout").and_then(Value::as_str) {
                None => Duration::from_secs(3),
                Some(t) => duration("cache.redis.timeout", t)?,
            };
            let db = obj_get(r, "db").and_then(Value::as_i64).unwrap_or(0);
            if !(0..=15).contains(&db) {
                return Err("cache.redis.db must be between 0 and 15".into());
            }
            CacheKind::Redis(RedisSettings {
                addrs,
                password: obj_get(r, "password")
                    .and_then(Value::as_str)
                    .filter(|p| !p.is_empty())
                    .map(Secret::new),
                db,
                timeout,
                l1_max_bytes: max_bytes,
            })
        }
        other => return Err(format!("unknown cache type: {other}")),
    })
}

/// Settings that need a restart to change.
#[derive(Clone, Debug)]
pub struct StaticSettings {
    pub http_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub trust_forwarded_host: bool,
    pub client_ip_source: ClientIpSource,
    /// Empty: forwarding headers (when switched on) are believed from any peer.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub exclude_health_logs: bool,
    pub max_body_bytes: usize,
    pub store: StoreOptions,
    pub backend: Backend,
    pub cache_kind: CacheKind,
    pub rate_limit_backend: RateLimitBackend,
    pub log_level: String,
    pub log_format: LogFormat,
    /// OpenTelemetry export; `None` when off or not compiled in.
    pub tracing: Option<TracingSettings>,
    pub cors: Option<CorsSettings>,
    pub tenancy: TenancyMode,
    pub last_used_queue: usize,
    pub last_used_flush_size: usize,
    pub last_used_flush_interval: Duration,
    /// The file to watch for hot reload (set by the CLI; not in `--dev`).
    pub config_file: Option<PathBuf>,
    /// Environment overrides to re-apply on every reload.
    pub reload_env: EnvSnapshot,
    /// Network ids of the configured tenants (their `networks` rows are
    /// created at startup).
    pub tenant_ids: Vec<NetworkId>,
}

/// Settings read per request; a config reload swaps them atomically.
#[derive(Clone, Debug)]
pub struct RuntimeSettings {
    pub issuer: String,
    pub issuers_retired: Vec<Retired<String>>,
    pub clock_skew: Duration,
    pub default_ttl: Option<Duration>,
    pub max_ttl: Option<Duration>,
    pub prefix: String,
    pub retired_prefixes: Vec<String>,
    pub public_prefix: Option<String>,
    pub public_retired_prefixes: Vec<String>,
    pub derived_default_ttl: Duration,
    pub signing_key_id: String,
    pub signing_key_urls: Vec<Secret>,
    /// Accepted macaroon prefixes: `[current, …retired]`, never empty; new
    /// macaroons carry the first ([`RuntimeSettings::macaroon_prefix`]).
    pub macaroon_accepted_prefixes: Vec<String>,
    pub secrets: SecretSet,
    pub cache_enabled: bool,
    pub cache_ttl: Duration,
    pub quota: Option<u64>,
    pub rate_limit_enabled: bool,
}

impl RuntimeSettings {
    /// Every prefix an issued key may carry: current, public, and retired.
    pub fn allowed_prefixes(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.prefix.as_str())
            .chain(self.public_prefix.as_deref())
            .chain(self.retired_prefixes.iter().map(String::as_str))
            .chain(self.public_retired_prefixes.iter().map(String::as_str))
    }
    pub fn macaroon_prefixes(&self) -> &[String] {
        &self.macaroon_accepted_prefixes
    }
    /// The prefix new macaroons are minted with.
    pub fn macaroon_prefix(&self) -> &str {
        &self.macaroon_accepted_prefixes[0]
    }
    /// `[issuer, …active retired issuers]` at `now`.
    pub fn accepted_issuers(&self, now: Timestamp) -> Vec<&str> {
        std::iter::once(self.issuer.as_str())
            .chain(
                crate::domain::secrets::active_retired(&self.issuers_retired, now)
                    .into_iter()
                    .map(String::as_str),
            )
            .collect()
    }
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub fixed: StaticSettings,
    pub runtime: RuntimeSettings,
}

fn duration(path: &str, s: &str) -> Result<Duration, String> {
    parse_go_duration(s.trim()).map_err(|e| format!("{path}: {e}"))
}

fn optional_duration(path: &str, s: &str) -> Result<Option<Duration>, String> {
    if s.trim().is_empty() {
        return Ok(None);
    }
    duration(path, s).map(|d| Some(d).filter(|d| !d.is_zero()))
}

fn retired_list(
    path: &str,
    list: &[RawRetired],
    min_len: usize,
    warnings: &mut Vec<String>,
) -> Result<Vec<Retired<String>>, String> {
    let mut out = Vec::new();
    for (i, entry) in list.iter().enumerate() {
        let (value, expires) = match entry {
            RawRetired::Bare(v) => (v.clone(), None),
            RawRetired::Entry { value, expires_at } => (value.clone(), expires_at.clone()),
        };
        if value.is_empty() {
            continue;
        }
        if value.chars().count() < min_len {
            return Err(format!(
                "{path}[{i}] must be at least {min_len} characters long"
            ));
        }
        let expires_at = match expires.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(s) => match Timestamp::parse_rfc3339(s) {
                Some(t) => Some(t),
                None => {
                    warnings.push(format!(
                        "{path}[{i}].expires_at is not an RFC 3339 date-time; entry skipped"
                    ));
                    continue;
                }
            },
        };
        out.push(Retired { value, expires_at });
    }
    Ok(out)
}

fn check_prefix(path: &str, p: &str) -> Result<(), String> {
    if is_valid_prefix(p) {
        Ok(())
    } else {
        Err(format!(
            "{path}: prefix '{p}' must match ^[a-zA-Z0-9_]{{1,16}}$"
        ))
    }
}

fn check_macaroon_prefix(path: &str, p: &str) -> Result<(), String> {
    if !p.is_empty() && p.len() <= 8 && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Ok(())
    } else {
        Err(format!(
            "{path}: prefix '{p}' must match ^[a-zA-Z0-9_]{{1,8}}$"
        ))
    }
}

fn socket_addr(path: &str, host: &str, port: u16) -> Result<SocketAddr, String> {
    let host = host.trim().trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = match host {
        "" => IpAddr::from([0, 0, 0, 0]),
        "localhost" => IpAddr::from([127, 0, 0, 1]),
        h => h
            .parse()
            .map_err(|_| format!("{path}.host: '{h}' is not an IP address"))?,
    };
    Ok(SocketAddr::new(ip, port))
}

/// Validates a raw configuration into settings. Warnings are appended to
/// `warnings`; the first hard error is returned.
pub fn resolve(raw: &RawConfig, warnings: &mut Vec<String>) -> Result<Settings, String> {
    // Secrets first: the exact message the spec requires.
    let current = raw.secrets.hmac.current.clone();
    if current.is_empty() {
        return Err(NO_HMAC_KEY.to_string());
    }
    if current.chars().count() < 32 {
        return Err(format!(
            "secrets.hmac.current must be at least 32 characters long (it has {})",
            current.chars().count()
        ));
    }
    let retired_secrets = retired_list(
        "secrets.hmac.retired",
        &raw.secrets.hmac.retired,
        32,
        warnings,
    )?
    .into_iter()
    .map(|r| Retired {
        value: Secret::new(r.value),
        expires_at: r.expires_at,
    })
    .collect();

    let c = &raw.credentials;
    if c.issuer.trim().is_empty() {
        return Err(
            "credentials.issuer is required (the issuer of derived tokens, e.g. https://auth.example.com)"
                .into(),
        );
    }
    let clock_skew = duration("credentials.clock_skew", &c.clock_skew)?;
    if clock_skew > Duration::from_secs(600) {
        return Err("credentials.clock_skew must be at most 600s".into());
    }
    let p = &c.api_keys.prefix;
    check_prefix("credentials.api_keys.prefix.current", &p.current)?;
    for r in &p.retired {
        check_prefix("credentials.api_keys.prefix.retired", r)?;
    }
    let public_prefix = if p.public_current.is_empty() {
        None
    } else {
        check_prefix(
            "credentials.api_keys.prefix.public_current",
            &p.public_current,
        )?;
        Some(p.public_current.clone())
    };
    for r in &p.public_retired {
        check_prefix("credentials.api_keys.prefix.public_retired", r)?;
    }
    let mp = &c.derived_tokens.macaroon.prefix;
    check_macaroon_prefix(
        "credentials.derived_tokens.macaroon.prefix.current",
        &mp.current,
    )?;
    for r in &mp.retired {
        check_macaroon_prefix("credentials.derived_tokens.macaroon.prefix.retired", r)?;
    }
    for (i, url) in c.derived_tokens.jwt.signing_keys.urls.iter().enumerate() {
        let scheme_ok = ["base64://", "file://", "https://", "http://"]
            .iter()
            .any(|s| url.starts_with(s));
        if !scheme_ok {
            return Err(format!(
                "credentials.derived_tokens.jwt.signing_keys.urls[{i}]: unsupported scheme (use base64://, file:// or https://)"
            ));
        }
        if url.starts_with("http://") {
            warnings.push(format!(
                "credentials.derived_tokens.jwt.signing_keys.urls[{i}] uses plain http://; signing keys should not travel unencrypted"
            ));
        }
    }

    let runtime = RuntimeSettings {
        issuer: c.issuer.trim().to_string(),
        issuers_retired: retired_list(
            "credentials.issuer_retired",
            &c.issuer_retired,
            1,
            warnings,
        )?,
        clock_skew,
        default_ttl: optional_duration(
            "credentials.api_keys.default_ttl",
            &c.api_keys.default_ttl,
        )?,
        max_ttl: optional_duration("credentials.api_keys.max_ttl", &c.api_keys.max_ttl)?,
        prefix: p.current.clone(),
        retired_prefixes: p.retired.clone(),
        public_prefix,
        public_retired_prefixes: p.public_retired.clone(),
        derived_default_ttl: duration(
            "credentials.derived_tokens.default_ttl",
            &c.derived_tokens.default_ttl,
        )?,
        signing_key_id: c.derived_tokens.jwt.signing_key_id.clone(),
        signing_key_urls: c
            .derived_tokens
            .jwt
            .signing_keys
            .urls
            .iter()
            .map(|u| Secret::new(u.clone()))
            .collect(),
        macaroon_accepted_prefixes: std::iter::once(&mp.current)
            .chain(&mp.retired)
            .cloned()
            .collect(),
        secrets: SecretSet::new(Secret::new(current), retired_secrets),
        cache_enabled: raw.cache.enabled,
        cache_ttl: duration("cache.ttl", &raw.cache.ttl).or_else(|e| {
            // A non-positive ttl disables caching (spec §10.2).
            if raw.cache.ttl.trim().starts_with('-') {
                Ok(Duration::ZERO)
            } else {
                Err(e)
            }
        })?,
        quota: Some(raw.quota.api_keys_max).filter(|q| *q > 0),
        rate_limit_enabled: raw.rate_limit.enabled,
    };
    if let (Some(d), Some(m)) = (runtime.default_ttl, runtime.max_ttl) {
        if d > m {
            return Err(
                "credentials.api_keys.default_ttl must not exceed credentials.api_keys.max_ttl"
                    .into(),
            );
        }
    }

    // Database.
    if raw.db.dsn.trim().is_empty() {
        return Err("database DSN is required but config key \"db.dsn\" is not set".into());
    }
    let backend = Backend::from_dsn(raw.db.dsn.trim()).map_err(|e| e.to_string())?;
    let store = StoreOptions {
        dsn: Secret::new(raw.db.dsn.trim().to_string()),
        max_connections: raw.db.max_connections.max(1),
        min_connections: raw.db.min_connections,
        connect_timeout: duration("db.connect_timeout", &raw.db.connect_timeout)?,
        acquire_timeout: duration("db.acquire_timeout", &raw.db.acquire_timeout)?,
        statement_timeout: duration("db.statement_timeout", &raw.db.statement_timeout)?,
        run_migrations: raw.db.migrate_on_start,
    };

    // Cache.
    let cache_kind = resolve_cache(&raw.cache)?;
    let rate_limit_backend = match raw.rate_limit.backend.trim() {
        "" | "memory" => RateLimitBackend::Memory,
        "redis" => {
            let as_redis = RawCache {
                kind: "redis".into(),
                ..raw.cache.clone()
            };
            match resolve_cache(&as_redis)? {
                CacheKind::Redis(r) => RateLimitBackend::Redis(r),
                _ => unreachable!("resolve_cache(redis) yields Redis"),
            }
        }
        other => {
            return Err(format!(
                "rate_limit.backend: '{other}' is not memory or redis"
            ))
        }
    };

    let client_ip_source = match raw.serve.http.client_ip_source.trim() {
        "" | "CLIENT_IP_SOURCE_UNSPECIFIED" | "CLIENT_IP_SOURCE_REMOTE_ADDR" => {
            ClientIpSource::RemoteAddr
        }
        "CLIENT_IP_SOURCE_CF_CONNECTING_IP" => ClientIpSource::CfConnectingIp,
        "CLIENT_IP_SOURCE_X_FORWARDED_FOR" => ClientIpSource::XForwardedFor,
        "CLIENT_IP_SOURCE_X_REAL_IP" => ClientIpSource::XRealIp,
        "CLIENT_IP_SOURCE_TRUE_CLIENT_IP" => ClientIpSource::TrueClientIp,
        other => {
            warnings.push(format!(
                "serve.http.client_ip_source: unknown value '{other}', using the TCP peer address"
            ));
            ClientIpSource::RemoteAddr
        }
    };

    let trusted_proxies =
        crate::domain::access::parse_trusted_proxies(&raw.serve.http.trusted_proxies)
            .map_err(|e| format!("serve.http.trusted_proxies: {e}"))?;
    if trusted_proxies.is_empty()
        && (client_ip_source != ClientIpSource::RemoteAddr || raw.serve.http.trust_forwarded_host)
    {
        warnings.push(
            "serve.http: forwarding headers are believed from any peer; list your proxies in \
             serve.http.trusted_proxies so clients cannot set them"
                .to_string(),
        );
    }

    let log_format = match raw.log.format.trim() {
        "" | "json" => LogFormat::Json,
        "text" => LogFormat::Text,
        other => return Err(format!("log.format: '{other}' is not json or text")),
    };
    let log_level = match raw.log.level.trim() {
        "" => "info".to_string(),
        l @ ("debug" | "info" | "warn" | "error" | "trace") => l.to_string(),
        other => {
            return Err(format!(
                "log.level: '{other}' is not debug, info, warn or error"
            ))
        }
    };

    let tracing = resolve_tracing(&raw.tracing, warnings)?;
    if raw.multitenancy.enabled && !cfg!(feature = "multitenancy") {
        warnings.push("multitenancy.enabled is ignored: multitenancy is not compiled into this build; rebuild with --features multitenancy".into());
    }
    if raw.rate_limit.enabled && !cfg!(feature = "rate-limit") {
        warnings.push("rate_limit.enabled is ignored: rate-limit enforcement is not compiled into this build (policies are stored as metadata only); rebuild with --features rate-limit".into());
    }
    let mut tenant_ids = Vec::new();
    let tenancy = if raw.multitenancy.enabled && cfg!(feature = "multitenancy") {
        let mut entries = Vec::new();
        for (i, n) in raw.multitenancy.networks.iter().enumerate() {
            let id = uuid::Uuid::parse_str(&n.id)
                .ok()
                .filter(|u| u.as_hyphenated().to_string() == n.id)
                .ok_or_else(|| format!("multitenancy.networks[{i}].id must be a lowercase UUID"))?;
            if n.hostname.trim().is_empty() {
                return Err(format!("multitenancy.networks[{i}].hostname is required"));
            }
            entries.push((n.hostname.clone(), NetworkId(id)));
            tenant_ids.push(NetworkId(id));
        }
        TenancyMode::ByHost(
            TenantTable::new(entries).map_err(|e| format!("multitenancy.networks: {e}"))?,
        )
    } else {
        TenancyMode::Single
    };

    let fixed = StaticSettings {
        http_addr: socket_addr("serve.http", &raw.serve.http.host, raw.serve.http.port)?,
        metrics_addr: socket_addr(
            "serve.metrics",
            &raw.serve.metrics.host,
            raw.serve.metrics.port,
        )?,
        trust_forwarded_host: raw.serve.http.trust_forwarded_host,
        client_ip_source,
        trusted_proxies,
        exclude_health_logs: raw.serve.http.request_log.exclude_health_endpoints,
        max_body_bytes: raw.serve.http.max_body_bytes.max(1024),
        store,
        backend,
        cache_kind,
        rate_limit_backend,
        log_level,
        log_format,
        tracing,
        cors: resolve_cors(&raw.serve.http.cors)?,
        tenancy,
        last_used_queue: raw.last_used.queue_size.clamp(256, 1_000_000),
        last_used_flush_size: raw.last_used.flush_size.clamp(1, 10_000),
        last_used_flush_interval: duration(
            "last_used.flush_interval",
            &raw.last_used.flush_interval,
        )?,
        config_file: None,
        reload_env: EnvSnapshot::default(),
        tenant_ids,
    };
    Ok(Settings { fixed, runtime })
}

/// `talos serve --dev`: fills what a newcomer has not configured. The HMAC
/// secret is generated once and kept in the data dir, so keys survive a
/// restart; it is printed only when it is created.
pub fn apply_dev_defaults(raw: &mut RawConfig, data_dir: &Path) -> Result<Option<String>, String> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("cannot create data dir {}: {e}", data_dir.display()))?;
    let mut announced = None;
    if raw.secrets.hmac.current.is_empty() {
        let path = data_dir.join("dev-hmac-secret");
        let secret = match std::fs::read_to_string(&path) {
            Ok(s) if s.trim().len() >= 32 => s.trim().to_string(),
            _ => {
                use rand::RngCore;
                let mut bytes = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut bytes);
                let s = hex::encode(bytes);
                write_private_file(&path, &s)?;
                announced = Some(s.clone());
                s
            }
        };
        raw.secrets.hmac.current = secret;
    }
    if raw.db.dsn.is_empty() {
        raw.db.dsn = format!("sqlite://{}", data_dir.join("talos.db").display());
    }
    if raw.credentials.issuer.is_empty() {
        raw.credentials.issuer = format!("http://127.0.0.1:{}", raw.serve.http.port);
    }
    raw.serve.http.host = "127.0.0.1".into();
    raw.serve.metrics.host = "127.0.0.1".into();
    if raw.log.format == "json" {
        raw.log.format = "text".into();
    }
    Ok(announced)
}

/// Writes a file readable only by its owner (secrets, private keys).
pub fn write_private_file(path: &Path, contents: &str) -> Result<(), String> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    f.write_all(contents.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Default dev data dir.
pub fn default_dev_dir() -> PathBuf {
    PathBuf::from(".talos-dev")
}

/// Every configuration key with its environment variable, for docs and
/// `talos config keys`.
/// The one secret among the free-form objects' leaves.
const SECRET_OBJECT_LEAF: &str = "cache.redis.password";

/// Whether a key carries a secret (and so also accepts `TALOS_…_FILE`).
pub fn is_secret_key(path: &str) -> bool {
    KNOWN_KEYS
        .iter()
        .any(|(p, _, secret)| *p == path && *secret)
        || path == SECRET_OBJECT_LEAF
}

/// Every leaf key the loader accepts (objects are listed by their leaves).
pub fn leaf_keys() -> Vec<&'static str> {
    let mut seen = BTreeSet::new();
    KNOWN_KEYS
        .iter()
        .filter(|(_, t, _)| !matches!(t, KeyType::Object))
        .map(|(p, _, _)| *p)
        .chain(KNOWN_OBJECT_LEAVES.iter().map(|(p, _)| *p))
        .filter(|p| seen.insert(*p))
        .collect()
}

pub fn documented_keys() -> Vec<(String, String)> {
    let mut seen = BTreeSet::new();
    KNOWN_KEYS
        .iter()
        .map(|(p, _, _)| *p)
        .chain(KNOWN_OBJECT_LEAVES.iter().map(|(p, _)| *p))
        .filter(|p| seen.insert(*p))
        .map(|p| (p.to_string(), env_name(p)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "test-hmac-secret-32-characters-long-for-hmac-sha256";

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn base_env() -> Vec<(String, String)> {
        env(&[
            ("TALOS_SECRETS_HMAC_CURRENT", SECRET),
            ("TALOS_DB_DSN", "memory"),
            ("TALOS_CREDENTIALS_ISSUER", "test-issuer"),
        ])
    }

    fn resolve_env(vars: Vec<(String, String)>) -> Result<Settings, String> {
        let loaded = load(None, vars)?;
        let mut w = loaded.warnings;
        resolve(&loaded.raw, &mut w)
    }

    #[test]
    fn defaults_match_the_spec() {
        let s = resolve_env(base_env()).unwrap();
        assert_eq!(s.fixed.http_addr.to_string(), "0.0.0.0:4420");
        assert_eq!(s.fixed.metrics_addr.to_string(), "0.0.0.0:4422");
        assert_eq!(s.runtime.prefix, "ory_ak");
        assert_eq!(s.runtime.macaroon_prefix(), "mc");
        assert_eq!(s.runtime.max_ttl, Some(Duration::from_secs(8760 * 3600)));
        assert_eq!(s.runtime.default_ttl, None);
        assert_eq!(s.runtime.derived_default_ttl, Duration::from_secs(3600));
        assert_eq!(s.runtime.clock_skew, Duration::from_secs(300));
        assert!(!s.runtime.cache_enabled);
        assert_eq!(s.fixed.cache_kind, CacheKind::Noop);
        assert_eq!(s.fixed.log_format, LogFormat::Json);
    }

    #[test]
    fn missing_hmac_secret_is_the_exact_error() {
        let vars = env(&[
            ("TALOS_DB_DSN", "memory"),
            ("TALOS_CREDENTIALS_ISSUER", "x"),
        ]);
        assert_eq!(resolve_env(vars).err().unwrap(), NO_HMAC_KEY);
        let vars = env(&[
            ("TALOS_SECRETS_HMAC_CURRENT", "short"),
            ("TALOS_DB_DSN", "memory"),
        ]);
        let e = resolve_env(vars).err().unwrap();
        assert!(e.contains("at least 32 characters"), "{e}");
    }

    #[test]
    fn env_maps_keys_with_underscores() {
        let mut vars = base_env();
        vars.extend(env(&[
            ("TALOS_SERVE_HTTP_PORT", "9999"),
            ("TALOS_CREDENTIALS_API_KEYS_DEFAULT_TTL", "24h"),
            ("TALOS_CREDENTIALS_API_KEYS_PREFIX_PUBLIC_CURRENT", "pk"),
            ("TALOS_CREDENTIALS_API_KEYS_PREFIX_RETIRED", "old1, old2"),
            (
                "TALOS_SECRETS_HMAC_RETIRED",
                r#"[{"value":"old-hmac-secret-must-be-32-chars!!"},"another-old-secret-of-32-chars!!!!"]"#,
            ),
            ("TALOS_CACHE_ENABLED", "true"),
            ("TALOS_QUOTA_API_KEYS_MAX", "5"),
        ]));
        let s = resolve_env(vars).unwrap();
        assert_eq!(s.fixed.http_addr.port(), 9999);
        assert_eq!(s.runtime.default_ttl, Some(Duration::from_secs(86400)));
        assert_eq!(s.runtime.public_prefix.as_deref(), Some("pk"));
        assert_eq!(s.runtime.retired_prefixes, vec!["old1", "old2"]);
        assert_eq!(s.runtime.secrets.retired.len(), 2);
        assert!(s.runtime.cache_enabled);
        assert_eq!(s.runtime.quota, Some(5));
    }

    #[test]
    fn file_then_env_precedence_and_unknown_key_warnings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("talos.yaml");
        std::fs::write(
            &path,
            format!(
                "secrets:\n  hmac:\n    current: {SECRET}\ndb:\n  dsn: memory\ncredentials:\n  issuer: file-issuer\n  api_keys:\n    prefix:\n      current: talos\n  typo_key: 1\nserve:\n  http:\n    port: 1234\n"
            ),
        )
        .unwrap();
        let loaded = load(
            Some(&path),
            env(&[("TALOS_SERVE_HTTP_PORT", "4321"), ("TALOS_NOPE", "1")]),
        )
        .unwrap();
        assert!(
            loaded
                .warnings
                .iter()
                .any(|w| w.contains("credentials.typo_key")),
            "{:?}",
            loaded.warnings
        );
        assert!(loaded.warnings.iter().any(|w| w.contains("TALOS_NOPE")));
        let mut w = vec![];
        let s = resolve(&loaded.raw, &mut w).unwrap();
        assert_eq!(s.fixed.http_addr.port(), 4321);
        assert_eq!(s.runtime.prefix, "talos");
        assert_eq!(s.runtime.issuer, "file-issuer");
    }

    #[test]
    fn toml_and_json_files_load() {
        let dir = tempfile::tempdir().unwrap();
        let toml = dir.path().join("c.toml");
        std::fs::write(&toml, format!("[secrets.hmac]\ncurrent = \"{SECRET}\"\n[db]\ndsn = \"memory\"\n[credentials]\nissuer = \"t\"\n")).unwrap();
        let l = load(Some(&toml), vec![]).unwrap();
        assert!(resolve(&l.raw, &mut vec![]).is_ok());
        let json = dir.path().join("c.json");
        std::fs::write(&json, format!("{{\"secrets\":{{\"hmac\":{{\"current\":\"{SECRET}\"}}}},\"db\":{{\"dsn\":\"memory\"}},\"credentials\":{{\"issuer\":\"t\"}}}}")).unwrap();
        let l = load(Some(&json), vec![]).unwrap();
        assert!(resolve(&l.raw, &mut vec![]).is_ok());
    }

    #[test]
    fn bad_values_name_the_key() {
        let mut vars = base_env();
        vars.push(("TALOS_SERVE_HTTP_PORT".into(), "not-a-port".into()));
        let e = resolve_env(vars).err().unwrap();
        assert!(e.contains("TALOS_SERVE_HTTP_PORT"), "{e}");
        let mut vars = base_env();
        vars.push((
            "TALOS_CREDENTIALS_API_KEYS_PREFIX_CURRENT".into(),
            "bad-prefix!".into(),
        ));
        let e = resolve_env(vars).err().unwrap();
        assert!(e.contains("credentials.api_keys.prefix.current"), "{e}");
        let mut vars = base_env();
        vars.push(("TALOS_CACHE_TYPE".into(), "weird".into()));
        assert_eq!(
            resolve_env(vars).err().unwrap(),
            "unknown cache type: weird"
        );
        let vars = env(&[
            ("TALOS_SECRETS_HMAC_CURRENT", SECRET),
            ("TALOS_CREDENTIALS_ISSUER", "x"),
        ]);
        assert!(resolve_env(vars).err().unwrap().contains("db.dsn"));
    }

    #[test]
    fn secrets_can_come_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        std::fs::write(&p, format!("{SECRET}\n")).unwrap();
        let vars = env(&[
            ("TALOS_SECRETS_HMAC_CURRENT_FILE", p.to_str().unwrap()),
            ("TALOS_DB_DSN", "memory"),
            ("TALOS_CREDENTIALS_ISSUER", "x"),
        ]);
        let s = resolve_env(vars).unwrap();
        assert_eq!(s.runtime.secrets.current.expose(), SECRET);
    }

    #[test]
    fn settings_debug_never_shows_secrets() {
        let mut vars = base_env();
        vars[1].1 = "postgres://u:topsecretpw@127.0.0.1/db".into();
        let s = resolve_env(vars).unwrap();
        let dbg = format!("{s:?}");
        assert!(!dbg.contains(SECRET));
        assert!(!dbg.contains("topsecretpw"));
    }

    fn with(extra: &[(&str, &str)]) -> Result<Settings, String> {
        let mut vars = base_env();
        vars.extend(env(extra));
        resolve_env(vars)
    }

    #[test]
    fn tracing_block_is_validated() {
        assert_eq!(with(&[]).unwrap().fixed.tracing, None);
        let on = [
            ("TALOS_TRACING_ENABLED", "true"),
            ("TALOS_TRACING_EXPORTER", "otlp"),
            ("TALOS_TRACING_ENDPOINT", "collector:4317"),
        ];
        let t = with(&on).map(|s| s.fixed.tracing);
        if cfg!(feature = "otel") {
            let t = t.unwrap().expect("enabled");
            assert_eq!(t.endpoint, "http://collector:4317");
            assert_eq!(t.sample_rate, 0.001);
            assert_eq!(t.service_name, "talos");
            let err = with(&[on[0], ("TALOS_TRACING_EXPORTER", "zipkin"), on[2]]).unwrap_err();
            assert!(
                err.contains("tracing.exporter") && err.contains("otlp"),
                "{err}"
            );
            let err = with(&[on[0], on[1]]).unwrap_err();
            assert!(err.contains("tracing.endpoint is required"), "{err}");
            let err =
                with(&[on[0], on[1], on[2], ("TALOS_TRACING_SAMPLE_RATE", "1.5")]).unwrap_err();
            assert!(err.contains("tracing.sample_rate"), "{err}");
        } else {
            // OSS: parsed but inert, with a warning naming the feature.
            assert_eq!(t.unwrap(), None);
            let loaded = load(
                None,
                base_env().into_iter().chain(env(&on)).collect::<Vec<_>>(),
            )
            .unwrap();
            let mut w = loaded.warnings;
            resolve(&loaded.raw, &mut w).unwrap();
            assert!(w.iter().any(|w| w.contains("--features otel")), "{w:?}");
        }
    }

    #[test]
    fn cors_block_is_validated() {
        assert_eq!(with(&[]).unwrap().fixed.cors, None);
        let c = with(&[("TALOS_SERVE_HTTP_CORS_ENABLED", "true")])
            .unwrap()
            .fixed
            .cors
            .unwrap();
        assert_eq!(c.allowed_origins, vec!["*"]);
        assert_eq!(c.allowed_methods.len(), 5);
        let err = with(&[
            ("TALOS_SERVE_HTTP_CORS_ENABLED", "true"),
            ("TALOS_SERVE_HTTP_CORS_ALLOW_CREDENTIALS", "true"),
        ])
        .unwrap_err();
        assert!(err.contains("allow_credentials"), "{err}");
        let err = with(&[
            ("TALOS_SERVE_HTTP_CORS_ENABLED", "true"),
            (
                "TALOS_SERVE_HTTP_CORS_ALLOWED_ORIGINS",
                "https://*.*.example.com",
            ),
        ])
        .unwrap_err();
        assert!(err.contains("more than one wildcard"), "{err}");
        let err = with(&[
            ("TALOS_SERVE_HTTP_CORS_ENABLED", "true"),
            ("TALOS_SERVE_HTTP_CORS_ALLOWED_METHODS", "GET,FETCH"),
        ])
        .unwrap_err();
        assert!(err.contains("FETCH"), "{err}");
    }

    #[test]
    fn redis_password_accepts_a_file_and_tls_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "s3cret-redis\n").unwrap();
        let loaded = load(
            None,
            base_env()
                .into_iter()
                .chain(env(&[(
                    "TALOS_CACHE_REDIS_PASSWORD_FILE",
                    pw.to_str().unwrap(),
                )]))
                .collect::<Vec<_>>(),
        )
        .unwrap();
        assert_eq!(loaded.raw.cache.redis["password"], "s3cret-redis");
        if cfg!(feature = "cache-redis") {
            let err = with(&[
                ("TALOS_CACHE_TYPE", "redis"),
                ("TALOS_CACHE_REDIS_ADDRS", "127.0.0.1:6379"),
                ("TALOS_CACHE_REDIS_TLS_ENABLED", "true"),
            ])
            .unwrap_err();
            assert!(err.contains("cache.redis.tls.enabled"), "{err}");
        }
    }
}
