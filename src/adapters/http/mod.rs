//! HTTP adapter: axum router per plane, middleware, OpenAPI, server loop.

pub mod error;
pub mod handlers;
pub mod openapi;
pub mod server;
pub mod wire;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;

use crate::app::config::{ClientIpSource, CorsSettings};
use crate::app::service::RequestCtx;
use crate::app::{App, AppError, ErrorKind};
use crate::domain::tenancy::{resolve_network, TenancyMode};

/// Which routes a listener serves (spec §3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plane {
    /// `talos serve`: admin + public.
    All,
    /// `talos serve admin`.
    Admin,
    /// `talos serve public`.
    Public,
}

impl Plane {
    fn admin(self) -> bool {
        matches!(self, Plane::All | Plane::Admin)
    }
    fn public(self) -> bool {
        matches!(self, Plane::All | Plane::Public)
    }
}

/// Transport-level settings the middleware needs.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    pub tenancy: TenancyMode,
    pub trust_forwarded_host: bool,
    pub client_ip_source: ClientIpSource,
    pub max_body_bytes: usize,
    pub exclude_health_logs: bool,
    /// One OpenTelemetry server span per request (feature `otel`).
    pub tracing: bool,
    /// Browser access (`serve.http.cors`); `None` answers no CORS headers.
    pub cors: Option<CorsSettings>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            tenancy: TenancyMode::Single,
            trust_forwarded_host: false,
            client_ip_source: ClientIpSource::RemoteAddr,
            max_body_bytes: 8 * 1024 * 1024,
            exclude_health_logs: false,
            tracing: false,
            cors: None,
        }
    }
}

pub struct HttpState {
    pub app: Arc<App>,
    pub opts: HttpOptions,
}

/// The API router for a plane (main listener, 4420).
pub fn router(app: Arc<App>, plane: Plane, opts: HttpOptions) -> Router {
    let body_limit = opts.max_body_bytes;
    let tracing = opts.tracing;
    let cors = opts.cors.as_ref().map(cors_layer);
    let state = Arc::new(HttpState { app, opts });
    let mut api = Router::new();
    if plane.admin() {
        api = api
            .route(
                "/v2alpha1/admin/issuedApiKeys",
                post(handlers::issue_api_key).get(handlers::list_issued),
            )
            .route(
                "/v2alpha1/admin/issuedApiKeys/{tail}",
                get(handlers::issued_item_get)
                    .patch(handlers::issued_item_patch)
                    .post(handlers::issued_item_post),
            )
            .route(
                "/v2alpha1/admin/importedApiKeys",
                post(handlers::import_api_key).get(handlers::list_imported),
            )
            .route(
                "/v2alpha1/admin/importedApiKeys:batchCreate",
                post(handlers::batch_import),
            )
            .route(
                "/v2alpha1/admin/importedApiKeys/{tail}",
                get(handlers::imported_item_get)
                    .patch(handlers::imported_item_patch)
                    .post(handlers::imported_item_post)
                    .merge(delete(handlers::delete_imported)),
            )
            .route("/v2alpha1/admin/apiKeys:verify", post(handlers::verify))
            .route(
                "/v2alpha1/admin/apiKeys:batchVerify",
                post(handlers::batch_verify),
            )
            .route(
                "/v2alpha1/admin/apiKeys:derive",
                post(handlers::derive_token),
            )
            .route(
                "/v2alpha1/admin/apiKeys/{tail}",
                post(handlers::api_keys_item_post),
            );
    }
    if plane.public() {
        api = api.route("/v2alpha1/apiKeys:selfRevoke", post(handlers::self_revoke));
    }
    let api = api.layer(middleware::from_fn_with_state(
        state.clone(),
        request_context,
    ));

    let router = Router::new()
        .merge(api)
        .route("/v2alpha1/derivedKeys/jwks.json", get(handlers::jwks))
        .route("/health/alive", get(handlers::alive))
        .route("/health/ready", get(handlers::ready))
        .route("/openapi.json", get(openapi::serve_json))
        .route("/docs", get(openapi::serve_docs))
        .fallback(fallback_not_found)
        .method_not_allowed_fallback(fallback_method)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(body_read_timeout))
        .layer(middleware::from_fn(body_limit_envelope))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            cross_origin_guard,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), access_log))
        .layer(middleware::from_fn(security_headers))
        .layer(middleware::from_fn(request_id));
    let router = match cors {
        Some(layer) => router.layer(layer),
        None => router,
    };
    #[cfg(feature = "otel")]
    let router = if tracing {
        router.layer(middleware::from_fn(
            crate::adapters::telemetry::trace_request,
        ))
    } else {
        router
    };
    #[cfg(not(feature = "otel"))]
    let _ = tracing;
    router.with_state(state)
}

/// How long a client may take to send a request body once its headers
/// arrived (the header read timeout is in `server.rs`): a stalled upload
/// cannot hold a connection, or a graceful shutdown, open.
const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

async fn body_read_timeout(req: Request, next: Next) -> Response {
    next.run(req.map(|b| {
        axum::body::Body::new(tower_http::timeout::TimeoutBody::new(BODY_READ_TIMEOUT, b))
    }))
    .await
}

/// Refuses state-changing requests a browser sends from another origin
/// unless `serve.http.cors` allows that origin. Request bodies are parsed as
/// JSON whatever their Content-Type (so `curl -d` works), which makes a
/// cross-site `text/plain` form post a valid request: without this guard any
/// web page opened by someone who can reach the admin plane could issue or
/// import keys. Browsers always send `Origin` on cross-origin POST, PATCH and
/// DELETE; servers, SDKs and curl do not send it at all.
async fn cross_origin_guard(State(s): State<Arc<HttpState>>, req: Request, next: Next) -> Response {
    use axum::http::Method;
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let Some(origin) = req
        .headers()
        .get("origin")
        .map(|o| o.to_str().unwrap_or("null"))
    else {
        return next.run(req).await;
    };
    let host = req
        .headers()
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let same_origin = origin
        .split_once("://")
        .is_some_and(|(_, rest)| !host.is_empty() && rest.eq_ignore_ascii_case(host));
    let allowed = s.opts.cors.as_ref().is_some_and(|c| {
        c.allowed_origins
            .iter()
            .any(|p| p == "*" || origin_matches(p, origin))
    });
    if same_origin || allowed {
        return next.run(req).await;
    }
    AppError::new(
        ErrorKind::Forbidden,
        "cross-origin request refused: allow the origin in serve.http.cors",
    )
    .into_response()
}

/// Whether `origin` matches a configured pattern (`*`, exact, or one `*`
/// standing for any run of characters).
fn origin_matches(pattern: &str, origin: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern.eq_ignore_ascii_case(origin),
        Some((pre, post)) => {
            origin.len() >= pre.len() + post.len()
                && origin[..pre.len()].eq_ignore_ascii_case(pre)
                && origin[origin.len() - post.len()..].eq_ignore_ascii_case(post)
        }
    }
}

fn cors_layer(c: &CorsSettings) -> tower_http::cors::CorsLayer {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let origins = c.allowed_origins.clone();
    let any = origins.iter().any(|o| o == "*");
    let allow_origin = if any {
        AllowOrigin::any()
    } else {
        AllowOrigin::predicate(move |origin: &HeaderValue, _| {
            origin
                .to_str()
                .is_ok_and(|o| origins.iter().any(|p| origin_matches(p, o)))
        })
    };
    let parse = |names: &[String]| -> Vec<HeaderName> {
        names
            .iter()
            .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok())
            .collect()
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods(
            c.allowed_methods
                .iter()
                .filter_map(|m| m.parse::<axum::http::Method>().ok())
                .collect::<Vec<_>>(),
        )
        .allow_headers(parse(&c.allowed_headers))
        .expose_headers(parse(&c.exposed_headers))
        .allow_credentials(c.allow_credentials)
        .max_age(std::time::Duration::from_secs(c.max_age_secs))
}

/// The health/metrics router (4422): health only, ready without details.
pub fn ops_router(app: Arc<App>) -> Router {
    let state = Arc::new(HttpState {
        app,
        opts: HttpOptions::default(),
    });
    Router::new()
        .route("/health/alive", get(handlers::alive))
        .route(
            "/health/ready",
            get(|State(s): State<Arc<HttpState>>| async move {
                handlers::ready_response(&s, false).await
            }),
        )
        .route("/metrics/prometheus", get(prometheus))
        .route("/metrics", get(prometheus))
        .fallback(fallback_not_found)
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// Prometheus text exposition; 404 in builds without the `metrics` feature.
async fn prometheus(State(s): State<Arc<HttpState>>) -> Response {
    match s.app.metrics().render() {
        Some(text) => (
            [(
                "content-type",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        None => error::not_found().into_response(),
    }
}

async fn fallback_not_found() -> AppError {
    error::not_found()
}

async fn fallback_method() -> AppError {
    AppError::new(ErrorKind::MethodNotAllowed, "method not allowed")
}

/// Resolves tenant and client IP for API routes and stores a [`RequestCtx`].
async fn request_context(
    State(s): State<Arc<HttpState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let headers = req.headers();
    let host = if s.opts.trust_forwarded_host {
        headers
            .get("x-forwarded-host")
            .or_else(|| headers.get("host"))
    } else {
        headers.get("host")
    }
    .and_then(|v| v.to_str().ok())
    .map(|h| h.split(',').next().unwrap_or("").trim().to_string());
    let Some(nid) = resolve_network(&s.opts.tenancy, host.as_deref()) else {
        return AppError::new(ErrorKind::NotFound, "network not found").into_response();
    };
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let client_ip = client_ip(s.opts.client_ip_source, req.headers(), peer);
    #[cfg(feature = "otel")]
    crate::adapters::telemetry::record_nid(nid);
    let mut ctx = RequestCtx::new(nid);
    ctx.client_ip = client_ip;
    req.extensions_mut().insert(ctx);
    next.run(req).await
}

fn client_ip(
    source: ClientIpSource,
    headers: &axum::http::HeaderMap,
    peer: Option<IpAddr>,
) -> Option<IpAddr> {
    let header = match source {
        ClientIpSource::RemoteAddr => return peer,
        ClientIpSource::CfConnectingIp => "cf-connecting-ip",
        ClientIpSource::XForwardedFor => "x-forwarded-for",
        ClientIpSource::XRealIp => "x-real-ip",
        ClientIpSource::TrueClientIp => "true-client-ip",
    };
    let value = headers
        .get(header)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let first = value.split(',').next().unwrap_or("").trim();
    if first.is_empty() {
        return peer;
    }
    first.parse().ok()
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Keeps an incoming X-Request-ID of ≤ 128 bytes, otherwise generates one,
/// and echoes it on the response.
async fn request_id(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
                .expect("uuid is a valid header")
        });
    req.headers_mut().insert(REQUEST_ID, id.clone());
    let mut resp = next.run(req).await;
    resp.headers_mut().insert(REQUEST_ID, id);
    resp
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        "strict-transport-security",
        HeaderValue::from_static("max-age=31536000; includeSubDomains"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        "referrer-policy",
        HeaderValue::from_static("strict-origin-when-cross-origin"),
    );
    if !h.contains_key("content-security-policy") {
        h.insert(
            "content-security-policy",
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        );
    }
    resp
}

/// Turns axum's plain-text 413 into the error envelope.
async fn body_limit_envelope(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    if resp.status() == StatusCode::PAYLOAD_TOO_LARGE
        && resp.headers().get("content-type").map(|v| v.as_bytes()) != Some(b"application/json")
    {
        return AppError::new(ErrorKind::PayloadTooLarge, "request body is too large")
            .into_response();
    }
    resp
}

/// One structured log line and the HTTP metrics per request; never logs
/// bodies or query strings.
async fn access_log(State(s): State<Arc<HttpState>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let endpoint = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let req_bytes = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let rid = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let metrics = s.app.metrics().clone();
    metrics.in_flight(1);
    let resp = next.run(req).await;
    metrics.in_flight(-1);
    let resp_bytes = axum::body::HttpBody::size_hint(resp.body())
        .exact()
        .unwrap_or(0);
    metrics.http(
        method.as_str(),
        resp.status().as_u16(),
        &endpoint,
        start.elapsed().as_secs_f64(),
        req_bytes,
        resp_bytes,
    );
    let health = path.starts_with("/health/");
    if !(health && s.opts.exclude_health_logs) {
        tracing::info!(
            http_request.method = %method,
            http_request.path = %path,
            status = resp.status().as_u16(),
            duration_ms = start.elapsed().as_secs_f64() * 1000.0,
            request_id = %rid,
            "HTTP request completed"
        );
    }
    resp
}
