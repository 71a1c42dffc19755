//! Wiring: the one place that picks adapters from resolved settings, and
//! the server lifecycle (bind, serve, drain, flush).

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::config::{CacheKind, LogFormat, Settings, StaticSettings};
use super::last_used::LastUsedQueue;
use super::service::App;
use crate::adapters::cache::NoopCache;
use crate::adapters::http::{self, HttpOptions, Plane};
use crate::adapters::store::open_store;
use crate::ports::{Clock, KeyCache, KeyStore, SystemClock};

/// Flushes exported spans when dropped via [`TelemetryGuard::shutdown`],
/// and buffered log lines when dropped.
pub struct TelemetryGuard {
    #[cfg(feature = "otel")]
    inner: Option<crate::adapters::telemetry::TelemetryGuard>,
    _logs: crate::adapters::log_writer::BatchGuard,
}

impl TelemetryGuard {
    /// Flushes buffered spans (blocking; runs on a blocking thread).
    pub async fn shutdown(self) {
        #[cfg(feature = "otel")]
        if let Some(g) = self.inner {
            let _ = tokio::task::spawn_blocking(move || g.shutdown()).await;
        }
        #[cfg(not(feature = "otel"))]
        let _ = self;
    }
}

/// Installs the global tracing subscriber: JSON (default) or text log lines
/// to stderr, level from config unless `RUST_LOG` is set; and, when the
/// `tracing` block enables it, the OpenTelemetry exporter (its own filter:
/// this crate's spans and events at info and above).
pub fn init_logging(
    level: &str,
    format: LogFormat,
    tracing_settings: Option<&super::config::TracingSettings>,
) -> Result<TelemetryGuard, String> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer, Registry};
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{level},sqlx=warn,hyper=warn")));
    // Lines are batched in memory and written to stderr by a writer thread
    // (crate::adapters::log_writer): the request path never waits on stderr
    // and wakes nobody per line. Not lossy: loggers wait when 8 MiB are queued.
    let (writer, logs_guard) = crate::adapters::log_writer::batched(
        std::io::stderr(),
        crate::adapters::log_writer::BatchOptions::default(),
    )
    .map_err(|e| format!("cannot start the log writer thread: {e}"))?;
    // JSON lines with no OpenTelemetry layer: the access log skips the
    // `tracing` event and writes its line straight into the buffer
    // (crate::adapters::access_log; same bytes, same filter).
    if matches!(format, LogFormat::Json) && !(cfg!(feature = "otel") && tracing_settings.is_some())
    {
        crate::adapters::access_log::write_directly_to(writer.clone());
    }
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_target(false);
    let fmt: Box<dyn Layer<Registry> + Send + Sync> = match format {
        LogFormat::Json => fmt
            .event_format(crate::adapters::log_format::JsonLines)
            .with_filter(filter)
            .boxed(),
        LogFormat::Text => fmt.with_filter(filter).boxed(),
    };
    #[cfg_attr(not(feature = "otel"), allow(unused_mut))]
    let mut layers = vec![fmt];
    let guard = TelemetryGuard {
        _logs: logs_guard,
        #[cfg(feature = "otel")]
        inner: match tracing_settings {
            Some(t) => {
                let (otel, guard) = crate::adapters::telemetry::otel_layer::<Registry>(t)?;
                let only_ours = tracing_subscriber::filter::Targets::new()
                    .with_target("talos", tracing::Level::INFO);
                layers.push(otel.with_filter(only_ours).boxed());
                Some(guard)
            }
            None => None,
        },
    };
    #[cfg(not(feature = "otel"))]
    let _ = tracing_settings;
    let _ = tracing_subscriber::registry().with(layers).try_init();
    Ok(guard)
}

/// Picks the cache adapter. A cache this build was compiled without is a
/// startup error naming the feature (the OSS build has only `noop`).
pub fn build_cache(fixed: &StaticSettings) -> Result<Arc<dyn KeyCache>, String> {
    match &fixed.cache_kind {
        CacheKind::Noop => Ok(Arc::new(NoopCache)),
        #[cfg(feature = "cache-memory")]
        CacheKind::Memory { max_bytes } => Ok(Arc::new(crate::adapters::cache::MemoryCache::new(*max_bytes))),
        #[cfg(not(feature = "cache-memory"))]
        CacheKind::Memory { .. } => Err(
            "Memory cache requires license: the memory cache is not compiled into this build; rebuild with --features cache-memory".into(),
        ),
        #[cfg(feature = "cache-redis")]
        CacheKind::Redis(r) => {
            if r.addrs.len() > 1 {
                tracing::warn!("cache.redis.addrs lists several addresses; Redis Cluster is not supported yet, using the first");
            }
            let cache = crate::adapters::cache::RedisCache::start(crate::adapters::cache::RedisOptions {
                addr: r.addrs[0].clone(),
                password: r.password.clone(),
                db: r.db,
                timeout: r.timeout,
                namespace: "talos".into(),
                l1_max_bytes: r.l1_max_bytes,
            })
            .map_err(|e| e.to_string())?;
            Ok(Arc::new(cache))
        }
        #[cfg(not(feature = "cache-redis"))]
        CacheKind::Redis(_) => Err(
            "Redis cache requires license: the redis cache is not compiled into this build; rebuild with --features cache-redis".into(),
        ),
    }
}

/// The rate limiter, in builds that enforce limits. OSS builds store
/// policies as metadata only.
pub fn build_rate_limiter(
    fixed: &StaticSettings,
) -> Result<Option<Arc<dyn crate::ports::RateLimiter>>, String> {
    #[cfg(feature = "rate-limit")]
    {
        use super::config::RateLimitBackend;
        match &fixed.rate_limit_backend {
            RateLimitBackend::Memory => Ok(Some(Arc::new(crate::adapters::ratelimit::MemoryRateLimiter::default()))),
            #[cfg(feature = "cache-redis")]
            RateLimitBackend::Redis(r) => {
                let client = crate::adapters::cache::redis::client_for(&r.addrs[0], r.password.as_ref(), r.db).map_err(|e| e.to_string())?;
                Ok(Some(Arc::new(crate::adapters::ratelimit::RedisRateLimiter::new(client, r.timeout, "talos"))))
            }
            #[cfg(not(feature = "cache-redis"))]
            RateLimitBackend::Redis(_) => Err("the redis rate limiter is not compiled into this build; rebuild with --features cache-redis".into()),
        }
    }
    #[cfg(not(feature = "rate-limit"))]
    {
        let _ = fixed;
        Ok(None)
    }
}

/// A running application: the use cases plus background workers to stop.
pub struct Running {
    pub app: Arc<App>,
    pub store: Arc<dyn KeyStore>,
    last_used: Option<(LastUsedQueue, JoinHandle<()>)>,
    watcher: Option<JoinHandle<()>>,
}

impl Running {
    /// Stops background work: flushes pending last-used updates.
    pub async fn shutdown(mut self) {
        if let Some(w) = self.watcher.take() {
            w.abort();
        }
        let app = self.app;
        drop(app);
        if let Some((queue, handle)) = self.last_used.take() {
            drop(queue);
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), handle).await;
        }
    }
}

pub async fn build(settings: &Settings) -> Result<Running, String> {
    let fixed = &settings.fixed;
    let cache = build_cache(fixed)?;
    if fixed.cache_kind == CacheKind::Noop && settings.runtime.cache_enabled {
        tracing::warn!("cache.enabled is true but cache.type is noop: nothing will be cached");
    }
    let store = open_store(&fixed.store).await.map_err(|e| e.to_string())?;
    #[cfg(feature = "otel")]
    let (store, cache) = if fixed.tracing.is_some() {
        (
            crate::adapters::telemetry::TracedStore::wrap(store),
            crate::adapters::telemetry::TracedCache::wrap(cache),
        )
    } else {
        (store, cache)
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    store
        .ensure_network(crate::domain::NetworkId::NIL, clock.now())
        .await
        .map_err(|e| format!("cannot seed the default network: {e}"))?;
    for nid in &fixed.tenant_ids {
        store
            .ensure_network(*nid, clock.now())
            .await
            .map_err(|e| format!("cannot create the network row for tenant {nid}: {e}"))?;
    }
    let (queue, handle) = LastUsedQueue::start(
        store.clone(),
        clock.clone(),
        fixed.last_used_queue,
        fixed.last_used_flush_size,
        fixed.last_used_flush_interval,
    );
    let runtime = Arc::new(ArcSwap::from_pointee(settings.runtime.clone()));
    let app = App::new(
        store.clone(),
        cache,
        clock,
        runtime.clone(),
        Some(queue.clone()),
    );
    app.signing_keys().store(super::derive::load_signing_keys(
        &settings.runtime.signing_key_urls,
    )?);
    let signing = app.signing_keys().clone();
    let watcher = fixed.config_file.clone().map(|path| {
        super::reload::spawn_watcher(path, fixed.clone(), runtime.clone(), std::time::Duration::from_secs(2), move |new| {
            // Signing keys reload with the rest; a bad JWKS keeps the old keys.
            match super::derive::load_signing_keys(&new.signing_key_urls) {
                Ok(keys) => signing.store(keys),
                Err(e) => tracing::error!(error = %e, "signing keys not reloaded; keeping the previous ones"),
            }
        })
    });
    let app = Arc::new(match build_rate_limiter(fixed)? {
        Some(l) => app.with_rate_limiter(l),
        None => app,
    });
    tracing::info!(backend = store.backend(), cache = ?fixed.cache_kind, "Database connected");
    Ok(Running {
        app,
        store,
        last_used: Some((queue, handle)),
        watcher,
    })
}

pub fn http_options(fixed: &StaticSettings) -> HttpOptions {
    HttpOptions {
        tenancy: fixed.tenancy.clone(),
        trust_forwarded_host: fixed.trust_forwarded_host,
        client_ip_source: fixed.client_ip_source,
        trusted_proxies: fixed.trusted_proxies.clone(),
        max_body_bytes: fixed.max_body_bytes,
        exclude_health_logs: fixed.exclude_health_logs,
        tracing: fixed.tracing.is_some(),
        cors: fixed.cors.clone(),
    }
}

/// Resolves when the process receives SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown signal received; draining in-flight requests");
}

/// Binds both listeners, serves until `shutdown` resolves, then drains.
pub async fn serve(
    settings: Settings,
    plane: Plane,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let fixed = settings.fixed.clone();
    let main = TcpListener::bind(fixed.http_addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", fixed.http_addr))?;
    let ops = TcpListener::bind(fixed.metrics_addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", fixed.metrics_addr))?;
    serve_on(settings, plane, main, ops, shutdown).await
}

/// Serves on already-bound listeners (tests bind 127.0.0.1:0).
pub async fn serve_on(
    settings: Settings,
    plane: Plane,
    main: TcpListener,
    ops: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let fixed = settings.fixed.clone();
    let running = build(&settings).await?;
    let main_addr = main.local_addr().map_err(|e| e.to_string())?;
    if plane != Plane::Public && !main_addr.ip().is_loopback() {
        tracing::warn!(addr = %main_addr, "the admin API is unauthenticated and listens on a non-loopback address; protect it with a network boundary or an authenticating proxy");
    }
    let router = http::router(running.app.clone(), plane, http_options(&fixed));
    let ops_router = http::ops_router(running.app.clone());
    tracing::info!(addr = %main_addr, plane = ?plane, "HTTP server started");
    tracing::info!(addr = %ops.local_addr().map(|a| a.to_string()).unwrap_or_default(), "Metrics server started");
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = tx.send(true);
    });
    let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    let a = http::server::serve(main, router, wait(rx.clone()));
    let b = http::server::serve(ops, ops_router, wait(rx));
    let (ra, rb) = tokio::join!(a, b);
    running.shutdown().await;
    ra.and(rb).map_err(|e| e.to_string())?;
    tracing::info!("server stopped");
    Ok(())
}
