//! The edge proxy (`talos proxy`, feature `proxy`): a sidecar that answers
//! verify requests from a local cache of *valid* results and forwards
//! everything else to an upstream Talos (spec §13.6).
//!
//! * Only `POST /v2alpha1/admin/apiKeys:verify` answers that are 200 with
//!   `is_valid: true` are cached, for `min(--cache-ttl, time to expire_time)`;
//!   entries expiring within a second are not cached.
//! * The cache key is SHA-256 over length-prefixed host, forwarded client IP
//!   and credential, so tenants and IP-restricted keys never share entries.
//! * `Cache-Control: no-cache` / `Pragma: no-cache` skip the lookup,
//!   `no-store` also skips the write. `Ory-Talos-Cache: HIT|MISS` tells.
//! * Upstream errors and invalid results pass through and are never cached;
//!   an unreachable upstream is a 502 in the error envelope.

use std::sync::Arc;
use std::time::{Duration, Instant};

use std::borrow::Cow;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use moka::future::Cache;
use moka::Expiry;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use sha2::{Digest, Sha256};

use crate::adapters::http::handlers::{cache_directive, verify_headers, ORY_TALOS_CACHE};
use crate::adapters::http::read_timeout::{BodyReadTimeout, ReadTimeoutBody, BODY_READ_TIMEOUT};
use crate::app::service::CacheDirective;
use crate::app::{AppError, ErrorKind};
use crate::domain::tenancy::normalize_host;
use crate::domain::Timestamp;
use crate::ports::{Clock, SystemClock};

pub const VERIFY_PATH: &str = "/v2alpha1/admin/apiKeys:verify";
/// Bodies larger than this are refused with 413.
pub const MAX_BODY: usize = 1024 * 1024;

#[derive(Clone, Debug)]
pub struct ProxyOptions {
    /// Base URL of the upstream Talos, e.g. `http://talos:4420`.
    pub upstream: String,
    pub cache_ttl: Duration,
    pub cache_max_bytes: u64,
    pub trust_x_forwarded_host: bool,
    /// Normalized hostnames allowed to use the proxy; empty allows all.
    pub allowed_hosts: Vec<String>,
    /// Upstream request timeout.
    pub upstream_timeout: Duration,
}

#[derive(Clone)]
struct Cached {
    body: Bytes,
    ttl: Duration,
}

struct TtlExpiry;

impl Expiry<[u8; 32], Cached> for TtlExpiry {
    fn expire_after_create(&self, _k: &[u8; 32], v: &Cached, _now: Instant) -> Option<Duration> {
        Some(v.ttl)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CachedLabel {
    cached: String,
}

struct ProxyMetrics {
    registry: Registry,
    hits: Counter,
    misses: Counter,
    upstream: Family<StatusLabel, Counter>,
    upstream_latency: Histogram,
    /// `talos_proxy_request_duration_seconds{cached="true"|"false"}`: the
    /// two series, taken from their family once (a histogram's clone shares
    /// its counts), so a request does not look its label up.
    duration_hit: Histogram,
    duration_miss: Histogram,
}

fn latency_hist() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 18))
}

impl ProxyMetrics {
    fn new() -> Self {
        let mut registry = Registry::default();
        let duration =
            Family::<CachedLabel, Histogram, fn() -> Histogram>::new_with_constructor(latency_hist);
        let series = |cached: &str| {
            duration
                .get_or_create(&CachedLabel {
                    cached: cached.into(),
                })
                .clone()
        };
        let m = ProxyMetrics {
            registry: Registry::default(),
            hits: Counter::default(),
            misses: Counter::default(),
            upstream: Family::default(),
            upstream_latency: latency_hist(),
            duration_hit: series("true"),
            duration_miss: series("false"),
        };
        registry.register(
            "talos_proxy_cache_hits",
            "Verify answers served from the proxy cache",
            m.hits.clone(),
        );
        registry.register(
            "talos_proxy_cache_misses",
            "Verify requests forwarded on a cache miss",
            m.misses.clone(),
        );
        registry.register(
            "talos_proxy_upstream_requests",
            "Requests forwarded upstream, by status",
            m.upstream.clone(),
        );
        registry.register(
            "talos_proxy_upstream_latency_seconds",
            "Upstream round-trip time",
            m.upstream_latency.clone(),
        );
        registry.register(
            "talos_proxy_request_duration_seconds",
            "Proxy request duration, by whether it was served from cache",
            duration,
        );
        ProxyMetrics { registry, ..m }
    }
}

pub struct Proxy {
    opts: ProxyOptions,
    client: reqwest::Client,
    cache: Cache<[u8; 32], Cached>,
    metrics: ProxyMetrics,
    clock: SystemClock,
}

impl Proxy {
    pub fn new(mut opts: ProxyOptions) -> Result<Arc<Self>, String> {
        opts.upstream = opts.upstream.trim_end_matches('/').to_string();
        if !(opts.upstream.starts_with("http://") || opts.upstream.starts_with("https://")) {
            return Err(format!(
                "--upstream must be an http:// or https:// URL, got '{}'",
                opts.upstream
            ));
        }
        let client = reqwest::Client::builder()
            .timeout(opts.upstream_timeout)
            .pool_max_idle_per_host(64)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        let cache = Cache::builder()
            .max_capacity(opts.cache_max_bytes)
            .weigher(|_k: &[u8; 32], v: &Cached| (v.body.len() + 96).min(u32::MAX as usize) as u32)
            .expire_after(TtlExpiry)
            .build();
        Ok(Arc::new(Proxy {
            opts,
            client,
            cache,
            metrics: ProxyMetrics::new(),
            clock: SystemClock,
        }))
    }

    pub fn cached_entries(&self) -> u64 {
        self.cache.entry_count()
    }
}

/// The public listener: every request goes to [`handle`], with no router in
/// between (there is nothing to route: verify is recognized by method and
/// path, everything else is forwarded as it is).
pub fn service(proxy: Arc<Proxy>) -> ProxyService {
    ProxyService(proxy)
}

/// The proxy as a plain tower service, for `server::serve`.
#[derive(Clone)]
pub struct ProxyService(Arc<Proxy>);

impl<B> tower::Service<Request<B>> for ProxyService
where
    B: axum::body::HttpBody<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let p = self.0.clone();
        // A client that stalls mid-body cannot hold the connection: the same
        // read timeout as the server's.
        let req = req.map(|b| Body::new(ReadTimeoutBody::new(b, BODY_READ_TIMEOUT)));
        Box::pin(async move { Ok(handle(&p, req).await) })
    }
}

/// The internal listener: health and metrics only.
pub fn ops_router(proxy: Arc<Proxy>) -> Router {
    Router::new()
        .route(
            "/health/alive",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/metrics/prometheus", get(metrics))
        .with_state(proxy)
}

async fn ready(State(p): State<Arc<Proxy>>) -> Response {
    match p
        .client
        .get(format!("{}/health/alive", p.opts.upstream))
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => {
            axum::Json(serde_json::json!({"status": "ok"})).into_response()
        }
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"errors": {"upstream": "upstream is not reachable"}})),
        )
            .into_response(),
    }
}

async fn metrics(State(p): State<Arc<Proxy>>) -> Response {
    let mut out = String::new();
    match prometheus_client::encoding::text::encode(&mut out, &p.metrics.registry) {
        Ok(()) => (
            [(
                "content-type",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            out,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn request_host(headers: &HeaderMap, trust_forwarded: bool) -> String {
    let raw = if trust_forwarded {
        headers
            .get("x-forwarded-host")
            .or_else(|| headers.get("host"))
    } else {
        headers.get("host")
    };
    raw.and_then(|v| v.to_str().ok())
        .map(|h| h.split(',').next().unwrap_or("").trim())
        .and_then(normalize_host)
        .unwrap_or_default()
}

fn cache_key(host: &str, client: &str, credential: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [host.as_bytes(), client.as_bytes(), credential.as_bytes()] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
        h.update([0u8]);
    }
    h.finalize().into()
}

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

/// The part of a verify request the cache key needs; the rest of the body
/// is the upstream's business. Borrowed: no copy unless it has escapes.
#[derive(serde::Deserialize)]
struct VerifyCredential<'a> {
    #[serde(borrow)]
    credential: Cow<'a, str>,
}

async fn handle(p: &Proxy, req: Request) -> Response {
    let start = Instant::now();
    let (parts, body) = req.into_parts();
    let host = request_host(&parts.headers, p.opts.trust_x_forwarded_host);
    if !p.opts.allowed_hosts.is_empty() && !p.opts.allowed_hosts.contains(&host) {
        return AppError::new(ErrorKind::Forbidden, "host not allowed").into_response();
    }
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) if stalled(&e) => {
            return AppError::bad_request("invalid request body: request body read timed out")
                .into_response()
        }
        Err(_) => {
            return AppError::new(ErrorKind::PayloadTooLarge, "request body is too large")
                .into_response()
        }
    };
    let is_verify = parts.method == axum::http::Method::POST && parts.uri.path() == VERIFY_PATH;
    let directive = cache_directive(&parts.headers);
    let key = if is_verify {
        serde_json::from_slice::<VerifyCredential>(&body)
            .ok()
            .map(|v| {
                let client = parts
                    .headers
                    .get("x-forwarded-for")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                cache_key(&host, client, &v.credential)
            })
    } else {
        None
    };
    if let (Some(k), CacheDirective::Default) = (&key, directive) {
        if let Some(hit) = p.cache.get(k).await {
            p.metrics.hits.inc();
            p.metrics
                .duration_hit
                .observe(start.elapsed().as_secs_f64());
            return hit_response(hit.body);
        }
    }
    if key.is_some() {
        p.metrics.misses.inc();
    }

    // Forward.
    let path = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    let url = format!("{}{}", p.opts.upstream, path);
    let mut fwd = p.client.request(parts.method.clone(), &url);
    for (name, value) in parts.headers.iter() {
        if !HOP_BY_HOP.contains(&name.as_str()) && name != "host" {
            fwd = fwd.header(name, value);
        }
    }
    if !host.is_empty() {
        fwd = fwd.header("x-forwarded-host", host.as_str());
    }
    let up_start = Instant::now();
    let upstream = fwd.body(body).send().await;
    p.metrics
        .upstream_latency
        .observe(up_start.elapsed().as_secs_f64());
    let upstream = match upstream {
        Ok(r) => r,
        Err(e) => {
            p.metrics
                .upstream
                .get_or_create(&StatusLabel {
                    status: "error".into(),
                })
                .inc();
            tracing::warn!(error = %e, "upstream request failed");
            return AppError::new(ErrorKind::BadGateway, "upstream Talos is not reachable")
                .into_response();
        }
    };
    let status = upstream.status();
    p.metrics
        .upstream
        .get_or_create(&StatusLabel {
            status: status.as_u16().to_string(),
        })
        .inc();
    let headers = upstream.headers().clone();
    let bytes = match upstream.bytes().await {
        Ok(b) => b,
        Err(_) => {
            return AppError::new(ErrorKind::BadGateway, "upstream response was cut off")
                .into_response()
        }
    };
    if let Some(k) = key {
        if status == StatusCode::OK && directive != CacheDirective::NoStore {
            if let Some(ttl) = cacheable_ttl(&bytes, p.opts.cache_ttl, p.clock.now()) {
                p.cache
                    .insert(
                        k,
                        Cached {
                            body: bytes.clone(),
                            ttl,
                        },
                    )
                    .await;
            }
        }
    }
    let mut resp = Response::new(Body::from(bytes));
    *resp.status_mut() = status;
    for (name, value) in headers.iter() {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            resp.headers_mut().append(name.clone(), value.clone());
        }
    }
    if is_verify {
        resp.headers_mut()
            .insert(ORY_TALOS_CACHE, HeaderValue::from_static("MISS"));
    }
    p.metrics
        .duration_miss
        .observe(start.elapsed().as_secs_f64());
    resp
}

/// Whether reading the body failed because the client stopped sending it.
fn stalled(e: &axum::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<BodyReadTimeout>() {
            return true;
        }
        cur = err.source();
    }
    false
}

/// A cached verify answer: its body, with the headers the upstream's verify
/// answers carry (JSON, `Cache-Control: no-store`, the security headers),
/// copied from a map built once, and `Ory-Talos-Cache: HIT`.
fn hit_response(body: Bytes) -> Response {
    static HEADERS: std::sync::OnceLock<HeaderMap> = std::sync::OnceLock::new();
    let headers = HEADERS.get_or_init(|| {
        let mut h = verify_headers().clone();
        h.insert(ORY_TALOS_CACHE, HeaderValue::from_static("HIT"));
        h
    });
    let mut resp = Response::new(Body::from(body));
    *resp.headers_mut() = headers.clone();
    resp
}

/// TTL for a verify answer: only valid results, at most until the key expires.
fn cacheable_ttl(body: &[u8], max: Duration, now: Timestamp) -> Option<Duration> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    if !v.get("is_valid")?.as_bool()? {
        return None;
    }
    let ttl = match v.get("expire_time").and_then(|e| e.as_str()) {
        Some(e) => max.min(now.until(Timestamp::parse_rfc3339(e)?)),
        None => max,
    };
    (ttl >= Duration::from_secs(1)).then_some(ttl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_valid_unexpiring_results_are_cacheable() {
        let now = Timestamp::from_secs(1_000);
        let max = Duration::from_secs(60);
        assert_eq!(cacheable_ttl(br#"{"is_valid":true}"#, max, now), Some(max));
        assert_eq!(cacheable_ttl(br#"{"is_valid":false}"#, max, now), None);
        assert_eq!(cacheable_ttl(b"not json", max, now), None);
        let soon = Timestamp::from_secs(1_010).to_rfc3339();
        assert_eq!(
            cacheable_ttl(
                format!(r#"{{"is_valid":true,"expire_time":"{soon}"}}"#).as_bytes(),
                max,
                now
            ),
            Some(Duration::from_secs(10))
        );
        let now_exp = Timestamp::from_millis(1_000_500).to_rfc3339();
        assert_eq!(
            cacheable_ttl(
                format!(r#"{{"is_valid":true,"expire_time":"{now_exp}"}}"#).as_bytes(),
                max,
                now
            ),
            None
        );
    }

    #[test]
    fn cache_keys_separate_hosts_clients_and_credentials() {
        let a = cache_key("a.example", "", "k");
        assert_ne!(a, cache_key("b.example", "", "k"));
        assert_ne!(a, cache_key("a.example", "10.0.0.1", "k"));
        assert_ne!(a, cache_key("a.example", "", "k2"));
        // Length prefixes: no ambiguity from concatenation.
        assert_ne!(cache_key("ab", "", "c"), cache_key("a", "", "bc"));
    }
}
