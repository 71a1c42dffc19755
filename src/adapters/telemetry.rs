//! OpenTelemetry traces (feature `otel`): the OTLP/gRPC exporter, the
//! per-request server span with W3C `traceparent` propagation, and
//! decorators that give every key-store and cache call a child span.
//!
//! Nothing here is installed unless `tracing.enabled` is true, so a server
//! without tracing pays nothing for it. Spans carry network ids, key ids,
//! routes and outcomes — never credentials, secrets or request bodies.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanData};
use opentelemetry_sdk::Resource;
use tracing::field::Empty;
use tracing::{info_span, Instrument};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::app::config::TracingSettings;
use crate::domain::view::KeyView;
use crate::domain::{ApiKey, KeyKind, ListFilter, NetworkId, RevocationReason, Timestamp};
use crate::ports::{
    BatchInsertOutcome, CacheError, KeyCache, KeyStore, MigrationStatus, StoreError, Ticket,
};

/// Keeps the tracer provider alive; [`TelemetryGuard::shutdown`] flushes
/// buffered spans (call it off the async runtime, e.g. in `spawn_blocking`).
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl TelemetryGuard {
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown_with_timeout(Duration::from_secs(5)) {
            eprintln!("tracing: flushing spans at shutdown failed: {e}");
        }
    }
}

/// The OTLP tonic exporter needs a Tokio reactor, but the SDK's batch
/// processor exports from its own OS thread with a plain executor. This
/// wrapper owns a one-thread runtime and drives each export on it.
struct ReactorExporter {
    inner: opentelemetry_otlp::SpanExporter,
    rt: tokio::runtime::Runtime,
}

impl std::fmt::Debug for ReactorExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReactorExporter")
    }
}

impl opentelemetry_sdk::trace::SpanExporter for ReactorExporter {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl Future<Output = opentelemetry_sdk::error::OTelSdkResult> + Send {
        let result = self.rt.block_on(self.inner.export(batch));
        std::future::ready(result)
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }
    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.inner.force_flush()
    }
    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Builds the tracer provider and the `tracing` layer that feeds it.
pub fn otel_layer<S>(
    settings: &TracingSettings,
) -> Result<
    (
        tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::SdkTracer>,
        TelemetryGuard,
    ),
    String,
>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("talos-otel")
        .enable_all()
        .build()
        .map_err(|e| format!("tracing: cannot start the exporter runtime: {e}"))?;
    let inner = {
        let _enter = rt.enter();
        opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(settings.endpoint.clone())
            .with_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("tracing.endpoint: cannot build the OTLP exporter: {e}"))?
    };
    let resource = Resource::builder()
        .with_service_name(settings.service_name.clone())
        .with_attributes([
            KeyValue::new("service.version", settings.service_version.clone()),
            KeyValue::new("deployment.environment.name", settings.environment.clone()),
        ])
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(ReactorExporter { inner, rt })
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            settings.sample_rate,
        ))))
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("talos");
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_threads(false)
        .with_location(false);
    Ok((layer, TelemetryGuard { provider }))
}

struct HeaderExtractor<'a>(&'a axum::http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Middleware: one server span per request, continuing an incoming W3C
/// `traceparent`. The route template (never the raw path with key ids) names
/// the span; the tenant is recorded later by the tenancy middleware.
pub async fn trace_request(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().clone();
    let span = info_span!(
        target: "talos::http",
        "request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = %method,
        http.route = %route,
        http.response.status_code = Empty,
        nid = Empty,
    );
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(req.headers()));
    let _ = span.set_parent(parent);
    let resp = next.run(req).instrument(span.clone()).await;
    let status = resp.status().as_u16();
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
    resp
}

/// Records the resolved tenant on the current request span (no-op when
/// tracing is off).
pub fn record_nid(nid: NetworkId) {
    tracing::Span::current().record("nid", tracing::field::display(nid));
}

fn kind_label(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::Issued => "issued",
        KeyKind::Imported => "imported",
    }
}

macro_rules! store_span {
    ($self:ident, $name:literal) => {
        info_span!(target: "talos::store", $name, otel.kind = "client", db.system.name = $self.inner.backend())
    };
    ($self:ident, $name:literal, $($field:tt)+) => {
        info_span!(target: "talos::store", $name, otel.kind = "client", db.system.name = $self.inner.backend(), $($field)+)
    };
}

/// A [`KeyStore`] whose every call is a child span of the current request.
pub struct TracedStore {
    inner: Arc<dyn KeyStore>,
}

impl TracedStore {
    pub fn wrap(inner: Arc<dyn KeyStore>) -> Arc<dyn KeyStore> {
        Arc::new(TracedStore { inner })
    }
}

#[async_trait]
impl KeyStore for TracedStore {
    async fn insert(&self, key: &ApiKey) -> Result<(), StoreError> {
        let span = store_span!(self, "store.insert", key_type = kind_label(key.kind));
        self.inner.insert(key).instrument(span).await
    }
    async fn get(
        &self,
        nid: NetworkId,
        kind: KeyKind,
        key_id: &str,
    ) -> Result<Option<ApiKey>, StoreError> {
        let span = store_span!(self, "store.get", key_type = kind_label(kind));
        self.inner.get(nid, kind, key_id).instrument(span).await
    }
    async fn get_many(
        &self,
        nid: NetworkId,
        kind: KeyKind,
        key_ids: &[String],
    ) -> Result<Vec<ApiKey>, StoreError> {
        let span = store_span!(
            self,
            "store.get_many",
            key_type = kind_label(kind),
            count = key_ids.len()
        );
        self.inner
            .get_many(nid, kind, key_ids)
            .instrument(span)
            .await
    }
    async fn get_by_request_id(
        &self,
        nid: NetworkId,
        kind: KeyKind,
        request_id: &str,
    ) -> Result<Option<ApiKey>, StoreError> {
        let span = store_span!(self, "store.get_by_request_id", key_type = kind_label(kind));
        self.inner
            .get_by_request_id(nid, kind, request_id)
            .instrument(span)
            .await
    }
    async fn list(
        &self,
        nid: NetworkId,
        kind: KeyKind,
        filter: &ListFilter,
        after: Option<&str>,
        limit: u32,
        now: Timestamp,
    ) -> Result<Vec<ApiKey>, StoreError> {
        let span = store_span!(self, "store.list", key_type = kind_label(kind), limit);
        self.inner
            .list(nid, kind, filter, after, limit, now)
            .instrument(span)
            .await
    }
    async fn update(&self, key: &ApiKey) -> Result<(), StoreError> {
        let span = store_span!(self, "store.update", key_type = kind_label(key.kind));
        self.inner.update(key).instrument(span).await
    }
    async fn revoke(
        &self,
        nid: NetworkId,
        kind: KeyKind,
        key_id: &str,
        reason: RevocationReason,
        description: &str,
        now: Timestamp,
    ) -> Result<ApiKey, StoreError> {
        let span = store_span!(self, "store.revoke", key_type = kind_label(kind));
        self.inner
            .revoke(nid, kind, key_id, reason, description, now)
            .instrument(span)
            .await
    }
    async fn rotate(
        &self,
        nid: NetworkId,
        old_key_id: &str,
        new_key: &ApiKey,
        now: Timestamp,
    ) -> Result<ApiKey, StoreError> {
        let span = store_span!(self, "store.rotate");
        self.inner
            .rotate(nid, old_key_id, new_key, now)
            .instrument(span)
            .await
    }
    async fn delete(&self, nid: NetworkId, kind: KeyKind, key_id: &str) -> Result<(), StoreError> {
        let span = store_span!(self, "store.delete", key_type = kind_label(kind));
        self.inner.delete(nid, kind, key_id).instrument(span).await
    }
    async fn batch_insert_imported(
        &self,
        keys: &[ApiKey],
    ) -> Result<Vec<BatchInsertOutcome>, StoreError> {
        let span = store_span!(self, "store.batch_insert_imported", count = keys.len());
        self.inner
            .batch_insert_imported(keys)
            .instrument(span)
            .await
    }
    async fn count_active(&self, nid: NetworkId, cap: u64) -> Result<u64, StoreError> {
        let span = store_span!(self, "store.count_active");
        self.inner.count_active(nid, cap).instrument(span).await
    }
    async fn touch_last_used(
        &self,
        nid: NetworkId,
        kind: KeyKind,
        key_ids: &[String],
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let span = store_span!(self, "store.touch_last_used", count = key_ids.len());
        self.inner
            .touch_last_used(nid, kind, key_ids, at)
            .instrument(span)
            .await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        // Health probes would flood traces; not spanned.
        self.inner.ping().await
    }
    async fn ensure_network(&self, nid: NetworkId, now: Timestamp) -> Result<(), StoreError> {
        self.inner.ensure_network(nid, now).await
    }
    async fn migrate_up(&self) -> Result<Vec<i64>, StoreError> {
        self.inner.migrate_up().await
    }
    async fn migration_status(&self) -> Result<MigrationStatus, StoreError> {
        self.inner.migration_status().await
    }
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
}

/// A [`KeyCache`] whose calls are child spans, with the hit/miss outcome.
pub struct TracedCache {
    inner: Arc<dyn KeyCache>,
}

impl TracedCache {
    pub fn wrap(inner: Arc<dyn KeyCache>) -> Arc<dyn KeyCache> {
        Arc::new(TracedCache { inner })
    }
}

#[async_trait]
impl KeyCache for TracedCache {
    async fn get(&self, nid: NetworkId, key_id: &str) -> Result<Option<Arc<KeyView>>, CacheError> {
        let span = info_span!(target: "talos::cache", "cache.get", cache.system = self.inner.name(), cache.hit = Empty);
        let out = self.inner.get(nid, key_id).instrument(span.clone()).await;
        if let Ok(hit) = &out {
            span.record("cache.hit", hit.is_some());
        }
        out
    }
    async fn ticket(&self, nid: NetworkId, key_id: &str) -> Ticket {
        self.inner.ticket(nid, key_id).await
    }
    async fn put(
        &self,
        key: Arc<KeyView>,
        ttl: Duration,
        ticket: Ticket,
    ) -> Result<(), CacheError> {
        let span =
            info_span!(target: "talos::cache", "cache.put", cache.system = self.inner.name());
        self.inner.put(key, ttl, ticket).instrument(span).await
    }
    async fn evict(&self, nid: NetworkId, key_id: &str) -> Result<(), CacheError> {
        let span =
            info_span!(target: "talos::cache", "cache.evict", cache.system = self.inner.name());
        self.inner.evict(nid, key_id).instrument(span).await
    }
    fn prefetch(&self, nid: NetworkId, issued: uuid::Uuid) {
        self.inner.prefetch(nid, issued)
    }
    fn name(&self) -> &'static str {
        self.inner.name()
    }
}
