//! HTTP adapter: axum router per plane, middleware, OpenAPI, server loop.

pub mod error;
pub mod handlers;
pub mod openapi;
pub(crate) mod read_timeout;
pub mod server;
pub mod wire;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, MethodRouter};
use axum::Router;
use tower::Service;

use crate::app::config::{ClientIpSource, CorsSettings};
use crate::app::service::RequestCtx;
use crate::app::{App, AppError, ErrorKind};
use crate::domain::access;
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
    /// Peers whose forwarding headers are believed; empty = any peer.
    pub trusted_proxies: Vec<ipnet::IpNet>,
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
            trusted_proxies: Vec::new(),
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

/// The verify route: the hot path, served without the router
/// ([`Api`]).
pub const VERIFY_PATH: &str = "/v2alpha1/admin/apiKeys:verify";

/// The API service for a plane (main listener, 4420): the edge work
/// ([`edge`]) around the axum router.
///
/// The edge sits outside the router as one plain service, not as a
/// `Router::layer`: each axum layer wraps every route in another boxed,
/// cloned-per-request service, and the edge is what every request goes
/// through. Route templates are matched once more here (the same table the
/// router is built from) for the metrics label; that match also picks the
/// verify route, which is served by calling its handler with its
/// extractors directly (see [`handlers::verify_direct`]).
#[derive(Clone)]
pub struct Api(Arc<ApiInner>);

struct ApiInner {
    router: Router,
    state: Arc<HttpState>,
    /// Route template of each path, for labels (`unmatched` when none).
    templates: matchit::Router<&'static str>,
    body_limit: DefaultBodyLimit,
    /// Verify skips the router; off when a router layer (CORS,
    /// OpenTelemetry spans) must see every request.
    direct_verify: bool,
}

/// Every route of a plane, by template: the one table the router and the
/// template matcher are both built from.
fn routes(plane: Plane) -> Vec<(&'static str, MethodRouter<Arc<HttpState>>)> {
    let mut routes = Vec::new();
    if plane.admin() {
        routes.extend([
            (
                "/v2alpha1/admin/issuedApiKeys",
                post(handlers::issue_api_key).get(handlers::list_issued),
            ),
            (
                "/v2alpha1/admin/issuedApiKeys/{tail}",
                get(handlers::issued_item_get)
                    .patch(handlers::issued_item_patch)
                    .post(handlers::issued_item_post),
            ),
            (
                "/v2alpha1/admin/importedApiKeys",
                post(handlers::import_api_key).get(handlers::list_imported),
            ),
            (
                "/v2alpha1/admin/importedApiKeys:batchCreate",
                post(handlers::batch_import),
            ),
            (
                "/v2alpha1/admin/importedApiKeys/{tail}",
                get(handlers::imported_item_get)
                    .patch(handlers::imported_item_patch)
                    .post(handlers::imported_item_post)
                    .merge(delete(handlers::delete_imported)),
            ),
            (VERIFY_PATH, post(handlers::verify)),
            (
                "/v2alpha1/admin/apiKeys:batchVerify",
                post(handlers::batch_verify),
            ),
            (
                "/v2alpha1/admin/apiKeys:derive",
                post(handlers::derive_token),
            ),
            (
                "/v2alpha1/admin/apiKeys/{tail}",
                post(handlers::api_keys_item_post),
            ),
        ]);
    }
    if plane.public() {
        routes.push(("/v2alpha1/apiKeys:selfRevoke", post(handlers::self_revoke)));
    }
    routes.extend([
        ("/v2alpha1/derivedKeys/jwks.json", get(handlers::jwks)),
        ("/health/alive", get(handlers::alive)),
        ("/health/ready", get(handlers::ready)),
        ("/openapi.json", get(openapi::serve_json)),
        ("/docs", get(openapi::serve_docs)),
    ]);
    routes
}

/// The API service for a plane (main listener, 4420).
pub fn router(app: Arc<App>, plane: Plane, opts: HttpOptions) -> Api {
    let body_limit = DefaultBodyLimit::max(opts.max_body_bytes);
    let tracing = opts.tracing;
    let cors = opts.cors.as_ref().map(cors_layer);
    let direct_verify = cors.is_none() && !tracing;
    let state = Arc::new(HttpState { app, opts });
    let mut router = Router::new();
    let mut templates = matchit::Router::new();
    for (template, methods) in routes(plane) {
        templates
            .insert(template, template)
            .expect("route templates are distinct");
        router = router.route(template, methods);
    }
    let router = router
        .fallback(fallback_not_found)
        .method_not_allowed_fallback(fallback_method);
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
    Api(Arc::new(ApiInner {
        router: router.with_state(state.clone()),
        state,
        templates,
        body_limit,
        direct_verify,
    }))
}

impl<B> tower::Service<axum::http::Request<B>> for Api
where
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Unpin + Send + 'static,
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

    fn call(&mut self, req: axum::http::Request<B>) -> Self::Future {
        let api = self.0.clone();
        let req = req.map(|b| {
            axum::body::Body::new(read_timeout::ReadTimeoutBody::new(
                b,
                read_timeout::BODY_READ_TIMEOUT,
            ))
        });
        Box::pin(async move { Ok(edge(&api, req).await) })
    }
}

/// Whether to refuse a state-changing request a browser sends from another
/// origin: allowed only when `serve.http.cors` allows that origin. Request
/// bodies are parsed as JSON whatever their Content-Type (so `curl -d`
/// works), which makes a cross-site `text/plain` form post a valid request:
/// without this guard any web page opened by someone who can reach the
/// admin plane could issue or import keys. Browsers always send `Origin` on
/// cross-origin POST, PATCH and DELETE; servers, SDKs and curl do not send
/// it at all.
fn cross_origin_refused(opts: &HttpOptions, req: &Request) -> bool {
    use axum::http::Method;
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return false;
    }
    let Some(origin) = req
        .headers()
        .get("origin")
        .map(|o| o.to_str().unwrap_or("null"))
    else {
        return false;
    };
    let host = req
        .headers()
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let same_origin = origin
        .split_once("://")
        .is_some_and(|(_, rest)| !host.is_empty() && rest.eq_ignore_ascii_case(host));
    let allowed = opts.cors.as_ref().is_some_and(|c| {
        c.allowed_origins
            .iter()
            .any(|p| p == "*" || origin_matches(p, origin))
    });
    !(same_origin || allowed)
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

/// The tenant and client IP of an API request, resolved from its head (an
/// extractor rather than a middleware layer: a `from_fn` layer costs a
/// boxed future and a clone of the inner service on every request). An
/// unknown network is refused before the body is read.
pub struct Ctx(pub RequestCtx);

impl axum::extract::FromRequestParts<Arc<HttpState>> for Ctx {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        s: &Arc<HttpState>,
    ) -> Result<Self, AppError> {
        let headers = &parts.headers;
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let forwarded_ok = access::peer_trusted(peer, &s.opts.trusted_proxies);
        let host = if s.opts.trust_forwarded_host && forwarded_ok {
            headers
                .get("x-forwarded-host")
                .or_else(|| headers.get(axum::http::header::HOST))
        } else {
            headers.get(axum::http::header::HOST)
        }
        .and_then(|v| v.to_str().ok())
        .map(|h| h.split(',').next().unwrap_or("").trim());
        let Some(nid) = resolve_network(&s.opts.tenancy, host) else {
            return Err(AppError::new(ErrorKind::NotFound, "network not found"));
        };
        let client_ip = if forwarded_ok {
            client_ip(
                s.opts.client_ip_source,
                headers,
                peer,
                &s.opts.trusted_proxies,
            )
        } else {
            peer
        };
        #[cfg(feature = "otel")]
        crate::adapters::telemetry::record_nid(nid);
        let mut ctx = RequestCtx::new(nid);
        ctx.client_ip = client_ip;
        Ok(Ctx(ctx))
    }
}

fn client_ip(
    source: ClientIpSource,
    headers: &axum::http::HeaderMap,
    peer: Option<IpAddr>,
    trusted: &[ipnet::IpNet],
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
    if value.trim().is_empty() {
        return peer;
    }
    if source == ClientIpSource::XForwardedFor {
        return access::forwarded_for_client(value, trusted);
    }
    value.split(',').next().unwrap_or("").trim().parse().ok()
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Everything every request goes through, in one function called by
/// [`Api`] around the router (see there for why not a router layer):
///
/// 1. keeps an incoming X-Request-ID of ≤ 128 bytes, otherwise makes one,
///    and echoes it on the response;
/// 2. refuses cross-origin writes ([`cross_origin_refused`]);
/// 3. bounds how long the body may take to arrive ([`read_timeout::BODY_READ_TIMEOUT`],
///    wrapped in [`Api::call`]) and how large it may be;
/// 4. turns axum's plain-text 413 into the error envelope;
/// 5. records the HTTP metrics and one structured access-log line (never
///    bodies or query strings);
/// 6. adds the security headers.
async fn edge(api: &ApiInner, mut req: Request) -> Response {
    let s = &api.state;
    let start = Instant::now();
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .cloned()
        .unwrap_or_else(new_request_id);
    let method = method_label(req.method());
    let uri = req.uri().clone();
    let endpoint = api
        .templates
        .at(req.uri().path())
        .map_or("unmatched", |m| *m.value);
    let req_bytes = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);

    let metrics = s.app.metrics();
    metrics.in_flight(1);
    let mut resp = if cross_origin_refused(&s.opts, &req) {
        AppError::new(
            ErrorKind::Forbidden,
            "cross-origin request refused: allow the origin in serve.http.cors",
        )
        .into_response()
    } else {
        api.body_limit.apply(&mut req);
        let resp = if api.direct_verify
            && endpoint == VERIFY_PATH
            && req.method() == axum::http::Method::POST
        {
            handlers::verify_direct(s, req).await
        } else {
            match api.router.clone().call(req).await {
                Ok(resp) => resp,
                Err(never) => match never {},
            }
        };
        if resp.status() == StatusCode::PAYLOAD_TOO_LARGE
            && resp
                .headers()
                .get(axum::http::header::CONTENT_TYPE)
                .map(|v| v.as_bytes())
                != Some(b"application/json")
        {
            AppError::new(ErrorKind::PayloadTooLarge, "request body is too large").into_response()
        } else {
            resp
        }
    };
    metrics.in_flight(-1);

    let status = resp.status().as_u16();
    let resp_bytes = axum::body::HttpBody::size_hint(resp.body())
        .exact()
        .unwrap_or(0);
    let elapsed = start.elapsed();
    metrics.http(
        method,
        status,
        endpoint,
        elapsed.as_secs_f64(),
        req_bytes,
        resp_bytes,
    );
    let health = uri.path().starts_with("/health/");
    if !(health && s.opts.exclude_health_logs) {
        let line = crate::adapters::access_log::AccessLine {
            method,
            path: uri.path(),
            status,
            // Whole microseconds, so the line reads 0.007, not 0.0067399999999999995.
            duration_ms: elapsed.as_micros() as f64 / 1000.0,
            request_id: id.to_str().unwrap_or(""),
        };
        if !line.write_direct() {
            access_event(&line);
        }
    }
    let h = resp.headers_mut();
    h.insert(REQUEST_ID, id);
    add_security_headers(h);
    resp
}

/// The access-log line as a `tracing` event (text logs, or OpenTelemetry
/// on; see [`crate::adapters::access_log`]). Emitted here so its target
/// stays this module's, which filters and existing log queries use.
pub(crate) fn access_event(line: &crate::adapters::access_log::AccessLine<'_>) {
    tracing::info!(
        http_request.method = line.method,
        http_request.path = line.path,
        status = line.status,
        duration_ms = line.duration_ms,
        request_id = line.request_id,
        "HTTP request completed"
    );
}

/// A fresh request id: a random (v4) UUID.
fn new_request_id() -> HeaderValue {
    let mut buf = [0u8; 36];
    let text = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(text).expect("a UUID is a valid header value")
}

/// The method as a metrics/log label (unknown methods are one label).
fn method_label(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::PUT => "PUT",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Adds the security headers every response carries, unless the response
/// has them already: verify's answers are built from a header template
/// that includes them ([`handlers::verify`]), which saves five inserts on
/// the hot path.
pub(crate) fn add_security_headers(h: &mut axum::http::HeaderMap) {
    use axum::http::header;
    if h.contains_key(header::X_CONTENT_TYPE_OPTIONS) {
        return;
    }
    // Typed header names: a `&str` name is parsed on every insert.
    h.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000; includeSubDomains"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("strict-origin-when-cross-origin"),
    );
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        );
    }
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    add_security_headers(resp.headers_mut());
    resp
}
