//! Request handlers. Each documented operation is one function annotated
//! with `#[utoipa::path]`; the router dispatches AIP custom methods
//! (`{key_id}:rotate`) to them because axum cannot match a literal suffix
//! after a path parameter.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use utoipa::IntoParams;

use super::error::not_found;
use super::wire::*;
use super::{Ctx, HttpState};
use crate::app::service::{
    BatchItem, CacheDirective, KeyUpdate, NewKey, Patch, RequestCtx, RotateInput,
};
use crate::app::AppError;
use crate::domain::duration::parse_ttl;
use crate::domain::{KeyKind, KeyVisibility, Secret};

type Result<T> = std::result::Result<T, AppError>;

/// Parses a JSON body leniently about the content type (curl's `-d` sends
/// form encoding) and strictly about the content. An empty body is `{}`.
pub fn parse_body<T: DeserializeOwned>(body: &Bytes) -> Result<T> {
    let bytes: &[u8] = if body.iter().all(|b| b.is_ascii_whitespace()) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(bytes)
        .map_err(|e| AppError::bad_request(format!("invalid request body: {e}")))
}

fn ttl(s: &Option<String>) -> Result<Option<std::time::Duration>> {
    match s.as_deref() {
        None | Some("") => Ok(None),
        Some(t) => parse_ttl(t)
            .map(Some)
            .map_err(|e| AppError::bad_request(format!("ttl: {e}"))),
    }
}

/// The fields issue and import requests share.
struct KeyFields {
    name: String,
    actor_id: String,
    scopes: Vec<String>,
    ttl: Option<String>,
    metadata: Option<serde_json::Map<String, Value>>,
    rate_limit_policy: Option<RateLimitPolicyWire>,
    ip_restriction: Option<IpRestriction>,
    request_id: Option<String>,
    visibility: Option<KeyVisibility>,
}

fn new_key(f: KeyFields) -> Result<NewKey> {
    Ok(NewKey {
        name: f.name,
        actor_id: f.actor_id,
        scopes: f.scopes,
        ttl: ttl(&f.ttl)?,
        metadata: f.metadata.unwrap_or_default(),
        rate_limit: f
            .rate_limit_policy
            .map(|p| p.to_input())
            .transpose()
            .map_err(AppError::bad_request)?,
        allowed_cidrs: f
            .ip_restriction
            .map(|r| r.allowed_cidrs)
            .unwrap_or_default(),
        request_id: f.request_id,
        visibility: f.visibility.unwrap_or_default(),
    })
}

fn import_input(r: ImportApiKeyRequest) -> Result<(Secret, NewKey)> {
    let raw = Secret::new(r.raw_key);
    let key = new_key(KeyFields {
        name: r.name,
        actor_id: r.actor_id,
        scopes: r.scopes,
        ttl: r.ttl,
        metadata: r.metadata,
        rate_limit_policy: r.rate_limit_policy,
        ip_restriction: r.ip_restriction,
        request_id: r.request_id,
        visibility: r.visibility,
    })?;
    Ok((raw, key))
}

/// Splits `id:verb`.
fn split_verb(tail: &str) -> (&str, Option<&str>) {
    match tail.split_once(':') {
        Some((id, verb)) => (id, Some(verb)),
        None => (tail, None),
    }
}

// ------------------------------------------------------------ issued keys

/// Issue an API key.
#[utoipa::path(post, path = "/v2alpha1/admin/issuedApiKeys", operation_id = "adminIssueApiKey",
    tag = "admin", request_body = IssueApiKeyRequest,
    responses((status = 200, body = IssueApiKeyResponse), (status = "default", body = ErrorEnvelope)))]
pub async fn issue_api_key(
    State(s): State<Arc<HttpState>>,
    Ctx(ctx): Ctx,
    body: Bytes,
) -> Result<Json<IssueApiKeyResponse>> {
    let r: IssueApiKeyRequest = parse_body(&body)?;
    let input = new_key(KeyFields {
        name: r.name,
        actor_id: r.actor_id,
        scopes: r.scopes,
        ttl: r.ttl,
        metadata: r.metadata,
        rate_limit_policy: r.rate_limit_policy,
        ip_restriction: r.ip_restriction,
        request_id: r.request_id,
        visibility: r.visibility,
    })?;
    let (key, secret) = s.app.issue(ctx.nid, input).await?;
    Ok(Json(IssueApiKeyResponse {
        issued_api_key: IssuedApiKey::from_domain(&key, s.app.now()),
        secret: secret.map(|s| s.expose().to_string()),
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// 1–1000; 0 or less means 50, more than 1000 is clamped.
    #[serde(default)]
    pub page_size: Option<i64>,
    /// Opaque token from a previous `next_page_token`.
    #[serde(default)]
    pub page_token: Option<String>,
    /// AIP-160 subset: `actor_id="…"` and `status=KEY_STATUS_…` joined by AND.
    #[serde(default)]
    pub filter: Option<String>,
}

/// List issued API keys.
#[utoipa::path(get, path = "/v2alpha1/admin/issuedApiKeys", operation_id = "adminListIssuedApiKeys",
    tag = "admin", params(ListParams),
    responses((status = 200, body = ListIssuedApiKeysResponse), (status = "default", body = ErrorEnvelope)))]
pub async fn list_issued(
    State(s): State<Arc<HttpState>>,
    Ctx(ctx): Ctx,
    q: std::result::Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ListIssuedApiKeysResponse>> {
    let Query(q) = q.map_err(|e| AppError::bad_request(e.body_text()))?;
    let page = s
        .app
        .list(
            ctx.nid,
            KeyKind::Issued,
            q.page_size.unwrap_or(0),
            q.page_token.as_deref().unwrap_or(""),
            q.filter.as_deref().unwrap_or(""),
        )
        .await?;
    let now = s.app.now();
    Ok(Json(ListIssuedApiKeysResponse {
        issued_api_keys: page
            .keys
            .iter()
            .map(|k| IssuedApiKey::from_domain(k, now))
            .collect(),
        next_page_token: page.next_page_token,
    }))
}

/// Get an issued API key.
#[utoipa::path(get, path = "/v2alpha1/admin/issuedApiKeys/{key_id}", operation_id = "adminGetIssuedApiKey",
    tag = "admin", params(("key_id" = String, Path, description = "UUID of the key")),
    responses((status = 200, body = IssuedApiKey), (status = "default", body = ErrorEnvelope)))]
pub async fn get_issued(s: &HttpState, ctx: &RequestCtx, key_id: &str) -> Result<Response> {
    let k = s.app.get(ctx.nid, KeyKind::Issued, key_id).await?;
    Ok(Json(IssuedApiKey::from_domain(&k, s.app.now())).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UpdateParams {
    /// Comma-separated field paths: name, scopes, metadata, rate_limit_policy, ip_restriction.
    #[serde(default)]
    pub update_mask: Option<String>,
}

fn parse_update(body: &Bytes, wrapper: &str, mask: Option<&str>) -> Result<KeyUpdate> {
    let mut v: Value = parse_body(body)?;
    // Accept the docs' wrapped form {"issued_api_key": {...}} too.
    if let Value::Object(map) = &mut v {
        if map.len() == 1 {
            if let Some(inner @ Value::Object(_)) = map.remove(wrapper) {
                v = inner;
            }
        }
    }
    let b: UpdateApiKeyBody = serde_json::from_value(v)
        .map_err(|e| AppError::bad_request(format!("invalid request body: {e}")))?;
    let mask = mask
        .map(|m| {
            m.split(',')
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty())
                .collect::<Vec<_>>()
        })
        .filter(|m| !m.is_empty());
    let patch = |o: Option<Option<_>>| match o {
        None => Patch::Absent,
        Some(None) => Patch::Null,
        Some(Some(v)) => Patch::Value(v),
    };
    Ok(KeyUpdate {
        mask,
        name: b.name.map(Patch::Value).unwrap_or_default(),
        scopes: b.scopes.map(Patch::Value).unwrap_or_default(),
        metadata: patch(b.metadata),
        rate_limit: match b.rate_limit_policy {
            None => Patch::Absent,
            Some(None) => Patch::Null,
            Some(Some(p)) => Patch::Value(p.to_input().map_err(AppError::bad_request)?),
        },
        allowed_cidrs: match b.ip_restriction {
            None => Patch::Absent,
            Some(None) => Patch::Null,
            Some(Some(r)) => Patch::Value(r.allowed_cidrs),
        },
    })
}

/// Update an issued API key.
#[utoipa::path(patch, path = "/v2alpha1/admin/issuedApiKeys/{issued_api_key.key_id}", operation_id = "adminUpdateIssuedApiKey",
    tag = "admin", request_body = UpdateApiKeyBody,
    params(("issued_api_key.key_id" = String, Path, description = "UUID of the key"), UpdateParams),
    responses((status = 200, body = IssuedApiKey), (status = "default", body = ErrorEnvelope)))]
pub async fn update_issued(
    s: &HttpState,
    ctx: &RequestCtx,
    key_id: &str,
    mask: Option<&str>,
    body: &Bytes,
) -> Result<Response> {
    let upd = parse_update(body, "issued_api_key", mask)?;
    let k = s.app.update(ctx.nid, KeyKind::Issued, key_id, upd).await?;
    Ok(Json(IssuedApiKey::from_domain(&k, s.app.now())).into_response())
}

/// Rotate an issued API key: a new key replaces it atomically.
#[utoipa::path(post, path = "/v2alpha1/admin/issuedApiKeys/{key_id}:rotate", operation_id = "adminRotateIssuedApiKey",
    tag = "admin", request_body = AdminRotateIssuedApiKeyBody, params(("key_id" = String, Path)),
    responses((status = 200, body = RotateIssuedApiKeyResponse), (status = "default", body = ErrorEnvelope)))]
pub async fn rotate_issued(
    s: &HttpState,
    ctx: &RequestCtx,
    key_id: &str,
    body: &Bytes,
) -> Result<Response> {
    let b: AdminRotateIssuedApiKeyBody = parse_body(body)?;
    let input = RotateInput {
        name: b.name,
        scopes: b.scopes,
        metadata: b.metadata,
        rate_limit: b
            .rate_limit_policy
            .map(|p| p.to_input())
            .transpose()
            .map_err(AppError::bad_request)?,
        allowed_cidrs: b.ip_restriction.map(|r| r.allowed_cidrs),
        visibility: b.visibility,
    };
    let (new, secret, old) = s.app.rotate(ctx.nid, key_id, input).await?;
    let now = s.app.now();
    Ok(Json(RotateIssuedApiKeyResponse {
        issued_api_key: IssuedApiKey::from_domain(&new, now),
        secret: secret.expose().to_string(),
        old_issued_api_key: IssuedApiKey::from_domain(&old, now),
    })
    .into_response())
}

/// Revoke an issued API key (irreversible).
#[utoipa::path(post, path = "/v2alpha1/admin/issuedApiKeys/{key_id}:revoke", operation_id = "adminRevokeIssuedApiKey",
    tag = "admin", request_body = AdminRevokeApiKeyBody, params(("key_id" = String, Path)),
    responses((status = 200, body = Empty), (status = "default", body = ErrorEnvelope)))]
pub async fn revoke_issued(
    s: &HttpState,
    ctx: &RequestCtx,
    key_id: &str,
    body: &Bytes,
) -> Result<Response> {
    let b: AdminRevokeApiKeyBody = parse_body(body)?;
    s.app
        .revoke(ctx.nid, KeyKind::Issued, key_id, b.reason, &b.description)
        .await?;
    Ok(Json(Empty {}).into_response())
}

// ----------------------------------------------------------- imported keys

/// Import a foreign API key; only its tenant-scoped hash is stored.
#[utoipa::path(post, path = "/v2alpha1/admin/importedApiKeys", operation_id = "adminImportApiKey",
    tag = "admin", request_body = ImportApiKeyRequest,
    responses((status = 200, body = ImportedApiKey), (status = "default", body = ErrorEnvelope)))]
pub async fn import_api_key(
    State(s): State<Arc<HttpState>>,
    Ctx(ctx): Ctx,
    body: Bytes,
) -> Result<Json<ImportedApiKey>> {
    let r: ImportApiKeyRequest = parse_body(&body)?;
    let (raw, input) = import_input(r)?;
    let k = s.app.import(ctx.nid, &raw, input).await?;
    Ok(Json(ImportedApiKey::from_domain(&k, s.app.now())))
}

/// Import up to 1000 keys; results are reported per item.
#[utoipa::path(post, path = "/v2alpha1/admin/importedApiKeys:batchCreate", operation_id = "adminBatchCreateImportedApiKeys",
    tag = "admin", request_body = BatchCreateImportedApiKeysRequest,
    responses((status = 200, body = BatchCreateImportedApiKeysResponse), (status = "default", body = ErrorEnvelope)))]
pub async fn batch_import(
    State(s): State<Arc<HttpState>>,
    Ctx(ctx): Ctx,
    body: Bytes,
) -> Result<Json<BatchCreateImportedApiKeysResponse>> {
    let r: BatchCreateImportedApiKeysRequest = parse_body(&body)?;
    let items = r
        .requests
        .into_iter()
        .map(|v| {
            if v.is_null() {
                return Err("batch item is required".to_string());
            }
            let req: ImportApiKeyRequest =
                serde_json::from_value(v).map_err(|e| format!("invalid item: {e}"))?;
            import_input(req).map_err(|e| e.message)
        })
        .collect();
    let res = s.app.batch_import(ctx.nid, items).await?;
    let now = s.app.now();
    let mut success = 0;
    let results: Vec<_> = res
        .items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let index = i.min(999) as i32;
            match item {
                BatchItem::Imported(k) => {
                    success += 1;
                    BatchCreateImportedApiKeysResult {
                        index,
                        imported_api_key: Some(ImportedApiKey::from_domain(k, now)),
                        error_code: None,
                        error_message: None,
                    }
                }
                BatchItem::Failed(code, msg) => BatchCreateImportedApiKeysResult {
                    index,
                    imported_api_key: None,
                    error_code: Some(*code),
                    error_message: Some(msg.clone()),
                },
            }
        })
        .collect();
    let failure = results.len() as i32 - success;
    Ok(Json(BatchCreateImportedApiKeysResponse {
        results,
        success_count: success,
        failure_count: failure,
    }))
}

/// List imported API keys.
#[utoipa::path(get, path = "/v2alpha1/admin/importedApiKeys", operation_id = "adminListImportedApiKeys",
    tag = "admin", params(ListParams),
    responses((status = 200, body = ListImportedApiKeysResponse), (status = "default", body = ErrorEnvelope)))]
pub async fn list_imported(
    State(s): State<Arc<HttpState>>,
    Ctx(ctx): Ctx,
    q: std::result::Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ListImportedApiKeysResponse>> {
    let Query(q) = q.map_err(|e| AppError::bad_request(e.body_text()))?;
    let page = s
        .app
        .list(
            ctx.nid,
            KeyKind::Imported,
            q.page_size.unwrap_or(0),
            q.page_token.as_deref().unwrap_or(""),
            q.filter.as_deref().unwrap_or(""),
        )
        .await?;
    let now = s.app.now();
    Ok(Json(ListImportedApiKeysResponse {
        imported_api_keys: page
            .keys
            .iter()
            .map(|k| ImportedApiKey::from_domain(k, now))
            .collect(),
        next_page_token: page.next_page_token,
    }))
}

/// Get an imported API key.
#[utoipa::path(get, path = "/v2alpha1/admin/importedApiKeys/{key_id}", operation_id = "adminGetImportedApiKey",
    tag = "admin", params(("key_id" = String, Path, description = "64 lowercase hex characters")),
    responses((status = 200, body = ImportedApiKey), (status = "default", body = ErrorEnvelope)))]
pub async fn get_imported(s: &HttpState, ctx: &RequestCtx, key_id: &str) -> Result<Response> {
    let k = s.app.get(ctx.nid, KeyKind::Imported, key_id).await?;
    Ok(Json(ImportedApiKey::from_domain(&k, s.app.now())).into_response())
}

/// Update an imported API key.
#[utoipa::path(patch, path = "/v2alpha1/admin/importedApiKeys/{imported_api_key.key_id}", operation_id = "adminUpdateImportedApiKey",
    tag = "admin", request_body = UpdateApiKeyBody,
    params(("imported_api_key.key_id" = String, Path), UpdateParams),
    responses((status = 200, body = ImportedApiKey), (status = "default", body = ErrorEnvelope)))]
pub async fn update_imported(
    s: &HttpState,
    ctx: &RequestCtx,
    key_id: &str,
    mask: Option<&str>,
    body: &Bytes,
) -> Result<Response> {
    let upd = parse_update(body, "imported_api_key", mask)?;
    let k = s
        .app
        .update(ctx.nid, KeyKind::Imported, key_id, upd)
        .await?;
    Ok(Json(ImportedApiKey::from_domain(&k, s.app.now())).into_response())
}

/// Revoke an imported API key (irreversible).
#[utoipa::path(post, path = "/v2alpha1/admin/importedApiKeys/{key_id}:revoke", operation_id = "adminRevokeImportedApiKey",
    tag = "admin", request_body = AdminRevokeApiKeyBody, params(("key_id" = String, Path)),
    responses((status = 200, body = Empty), (status = "default", body = ErrorEnvelope)))]
pub async fn revoke_imported(
    s: &HttpState,
    ctx: &RequestCtx,
    key_id: &str,
    body: &Bytes,
) -> Result<Response> {
    let b: AdminRevokeApiKeyBody = parse_body(body)?;
    s.app
        .revoke(ctx.nid, KeyKind::Imported, key_id, b.reason, &b.description)
        .await?;
    Ok(Json(Empty {}).into_response())
}

/// Delete an imported API key permanently.
#[utoipa::path(delete, path = "/v2alpha1/admin/importedApiKeys/{key_id}", operation_id = "adminDeleteImportedApiKey",
    tag = "admin", params(("key_id" = String, Path)),
    responses((status = 200, body = Empty), (status = "default", body = ErrorEnvelope)))]
pub async fn delete_imported(
    State(s): State<Arc<HttpState>>,
    Ctx(ctx): Ctx,
    Path(key_id): Path<String>,
) -> Result<Json<Empty>> {
    s.app.delete_imported(ctx.nid, &key_id).await?;
    Ok(Json(Empty {}))
}

/// Revoke an issued or imported key by id (the docs' unified path).
#[utoipa::path(post, path = "/v2alpha1/admin/apiKeys/{key_id}:revoke", operation_id = "adminRevokeApiKey",
    tag = "admin", request_body = AdminRevokeApiKeyBody, params(("key_id" = String, Path)),
    responses((status = 200, body = Empty), (status = "default", body = ErrorEnvelope)))]
pub async fn revoke_any(
    s: &HttpState,
    ctx: &RequestCtx,
    key_id: &str,
    body: &Bytes,
) -> Result<Response> {
    let b: AdminRevokeApiKeyBody = parse_body(body)?;
    s.app
        .revoke_any(ctx.nid, key_id, b.reason, &b.description)
        .await?;
    Ok(Json(Empty {}).into_response())
}

// ------------------------------------------------------------- dispatchers

pub async fn issued_item_get(
    State(s): State<Arc<HttpState>>,
    Ctx(ctx): Ctx,
    Path(tail): Path<String>,
) -> Result<Response> {
    match split_verb(&tail) {
        (id, None) => get_issued(&s, &ctx, id).await,
        _ => Err(not_found()),
    }
}

pub async fn issued_item_patch(
    State(s): State<Arc<HttpState>>,
    Ctx(ctx): Ctx,
    Path(tail): Path<String>,
    Query(p): Query<UpdateParamsLenient>,
    body: Bytes,
) -> Result<Response> {
    match split_verb(&tail) {
        (id, None) => update_issued(&s, &ctx, id, p.update_mask.as_deref(), &body).await,
        _ => Err(not_found()),
    }
}

pub async fn issued_item_post(
    State(s): State<Arc<HttpState>>,
    Ctx(ctx): Ctx,
    Path(tail): Path<String>,
    body: Bytes,
) -> Result<Response> {
    match split_verb(&tail) {
        (id, Some("rotate")) => rotate_issued(&s, &ctx, id, &body).await,
        (id, Some("revoke")) => revoke_issued(&s, &ctx, id, &body).await,
        _ => Err(not_found()),
    }
}

pub async fn imported_item_get(
    State(s): State<Arc<HttpState>>,
    Ctx(ctx): Ctx,
    Path(tail): Path<String>,
) -> Result<Response> {
    match split_verb(&tail) {
        (id, None) => get_imported(&s, &ctx, id).await,
        _ => Err(not_found()),
    }
}

pub async fn imported_item_patch(
    State(s): State<Arc<HttpState>>,
    Ctx(ctx): Ctx,
    Path(tail): Path<String>,
    Query(p): Query<UpdateParamsLenient>,
    body: Bytes,
) -> Result<Response> {
    match split_verb(&tail) {
        (id, None) => update_imported(&s, &ctx, id, p.update_mask.as_deref(), &body).await,
        _ => Err(not_found()),
    }
}

pub async fn imported_item_post(
    State(s): State<Arc<HttpState>>,
    Ctx(ctx): Ctx,
    Path(tail): Path<String>,
    body: Bytes,
) -> Result<Response> {
    match split_verb(&tail) {
        (id, Some("revoke")) => revoke_imported(&s, &ctx, id, &body).await,
        _ => Err(not_found()),
    }
}

pub async fn api_keys_item_post(
    State(s): State<Arc<HttpState>>,
    Ctx(ctx): Ctx,
    Path(tail): Path<String>,
    body: Bytes,
) -> Result<Response> {
    match split_verb(&tail) {
        (id, Some("revoke")) => revoke_any(&s, &ctx, id, &body).await,
        _ => Err(not_found()),
    }
}

#[derive(Deserialize, Default)]
pub struct UpdateParamsLenient {
    #[serde(default)]
    pub update_mask: Option<String>,
}

// ------------------------------------------------------------ verification

/// The request's cache directive, read straight from the request head (the
/// `HeaderMap` extractor would copy every header of every verify request).
pub struct CacheHeaders(pub CacheDirective);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for CacheHeaders {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> std::result::Result<Self, Self::Rejection> {
        Ok(CacheHeaders(cache_directive(&parts.headers)))
    }
}

pub(crate) const ORY_TALOS_CACHE: axum::http::HeaderName =
    axum::http::HeaderName::from_static("ory-talos-cache");

/// Reads `Cache-Control` / `Pragma` (spec §2.5).
pub fn cache_directive(headers: &HeaderMap) -> CacheDirective {
    let mut d = CacheDirective::Default;
    for v in headers.get_all(axum::http::header::CACHE_CONTROL) {
        let v = v.to_str().unwrap_or("").to_ascii_lowercase();
        for part in v.split(',').map(str::trim) {
            match part {
                "no-store" => return CacheDirective::NoStore,
                "no-cache" => d = CacheDirective::NoCache,
                _ => {}
            }
        }
    }
    if d == CacheDirective::Default {
        for v in headers.get_all(axum::http::header::PRAGMA) {
            if v.to_str()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("no-cache")
            {
                d = CacheDirective::NoCache;
            }
        }
    }
    d
}

/// The headers every verify answer carries (JSON, `Cache-Control:
/// no-store`, the security headers), built once. The edge proxy's cached
/// answers start from the same map.
pub(crate) fn verify_headers() -> &'static HeaderMap {
    static HEADERS: std::sync::OnceLock<HeaderMap> = std::sync::OnceLock::new();
    HEADERS.get_or_init(|| {
        // Room for the per-answer headers too (cache status, rate limits,
        // request id), so the copy does not grow again.
        let mut h = HeaderMap::with_capacity(16);
        h.insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(
            axum::http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
        super::add_security_headers(&mut h);
        h
    })
}

/// A verify answer: a 200 with its JSON body already written, and the
/// [`verify_headers`] copied from their map. A copy costs less than
/// inserting them one by one on every request.
fn verify_response(body: Vec<u8>) -> Response {
    let mut resp = Response::new(axum::body::Body::from(body));
    *resp.headers_mut() = verify_headers().clone();
    resp
}

/// Stored metadata that is not JSON (a damaged row): an internal error, as
/// axum's `Json` would have answered, but in the error envelope.
fn unserializable(e: serde_json::Error) -> AppError {
    tracing::error!(error = %e, "verify response could not be serialized");
    AppError::internal("internal error")
}

/// Verify a credential. Always 200: the verdict is in `is_valid`/`error_code`.
#[utoipa::path(post, path = "/v2alpha1/admin/apiKeys:verify", operation_id = "adminVerifyApiKey",
    tag = "admin", request_body = VerifyApiKeyRequest,
    params(("Cache-Control" = Option<String>, Header, description = "no-cache skips the cache read; no-store skips read and write"),
           ("Pragma" = Option<String>, Header, description = "no-cache: same as Cache-Control: no-cache")),
    responses((status = 200, body = VerifyApiKeyResponse, headers(("Ory-Talos-Cache" = String, description = "HIT, MISS or SKIP"))),
              (status = "default", body = ErrorEnvelope)))]
pub async fn verify(
    State(s): State<Arc<HttpState>>,
    Ctx(mut ctx): Ctx,
    CacheHeaders(directive): CacheHeaders,
    body: Bytes,
) -> Result<Response> {
    let r: VerifyApiKeyRequest = parse_body(&body)?;
    ctx.cache = directive;
    let outcome = s
        .app
        .verify_with(&ctx, &r.credential, &r.expected_audiences)
        .await;
    let rt = s.app.settings();
    let mut body = Vec::with_capacity(512);
    VerifyResponseBody {
        outcome: &outcome,
        issuer: &rt.issuer,
    }
    .write_json(&mut body)
    .map_err(unserializable)?;
    let mut resp = verify_response(body);
    resp.headers_mut().insert(
        ORY_TALOS_CACHE,
        HeaderValue::from_static(outcome.cache.as_str()),
    );
    if let Ok(Some(p)) = outcome.result.as_ref().map(|v| v.key.rate_limit.as_ref()) {
        let window = p.window_secs.unwrap_or(0);
        if let Ok(h) = HeaderValue::from_str(&format!("\"default\";q={};w={}", p.quota, window)) {
            resp.headers_mut().insert("ratelimit-policy", h);
        }
    }
    if let Some(rate) = &outcome.rate {
        if let Ok(h) = HeaderValue::from_str(&format!("\"default\";r={}", rate.remaining)) {
            resp.headers_mut().insert("ratelimit", h);
        }
        if let Some(ms) = rate.retry_after_ms {
            let secs = (ms.max(0) + 999) / 1000;
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                HeaderValue::from(secs.max(1)),
            );
        }
    }
    Ok(resp)
}

/// [`verify`] without the router: its extractors run in the order axum
/// runs them, with the same rejections, and the handler itself is called.
/// Used by [`super::Api`] for `POST` on the verify path, the hot path.
pub async fn verify_direct(s: &Arc<HttpState>, req: axum::extract::Request) -> Response {
    use axum::extract::{FromRequest, FromRequestParts};
    let (mut parts, body) = req.into_parts();
    let ctx = match Ctx::from_request_parts(&mut parts, s).await {
        Ok(ctx) => ctx,
        Err(e) => return e.into_response(),
    };
    let Ok(directive) = CacheHeaders::from_request_parts(&mut parts, s).await;
    let req = axum::extract::Request::from_parts(parts, body);
    let body = match Bytes::from_request(req, s).await {
        Ok(body) => body,
        Err(rejection) => return rejection.into_response(),
    };
    verify(State(s.clone()), ctx, directive, body)
        .await
        .into_response()
}

/// Verify up to 100 credentials; results in request order.
#[utoipa::path(post, path = "/v2alpha1/admin/apiKeys:batchVerify", operation_id = "adminBatchVerifyApiKeys",
    tag = "admin", request_body = BatchVerifyApiKeysRequest,
    params(("Cache-Control" = Option<String>, Header), ("Pragma" = Option<String>, Header)),
    responses((status = 200, body = BatchVerifyApiKeysResponse), (status = "default", body = ErrorEnvelope)))]
pub async fn batch_verify(
    State(s): State<Arc<HttpState>>,
    Ctx(mut ctx): Ctx,
    CacheHeaders(directive): CacheHeaders,
    body: Bytes,
) -> Result<Response> {
    let r: BatchVerifyApiKeysRequest = parse_body(&body)?;
    ctx.cache = directive;
    let creds: Vec<(String, Vec<String>)> = r
        .requests
        .into_iter()
        .map(|q| (q.credential, q.expected_audiences))
        .collect();
    let outcomes = s.app.batch_verify(&ctx, &creds).await?;
    let rt = s.app.settings();
    let results = outcomes
        .iter()
        .map(|outcome| VerifyResponseBody {
            outcome,
            issuer: &rt.issuer,
        })
        .collect();
    let mut body = Vec::with_capacity(512 * outcomes.len() + 16);
    BatchVerifyResponseBody { results }
        .write_json(&mut body)
        .map_err(unserializable)?;
    Ok(verify_response(body))
}

/// Revoke your own key by presenting it (proof of possession).
#[utoipa::path(post, path = "/v2alpha1/apiKeys:selfRevoke", operation_id = "revokeApiKey",
    tag = "public", request_body = SelfRevokeApiKeyRequest,
    responses((status = 200, body = Empty), (status = "default", body = ErrorEnvelope)))]
pub async fn self_revoke(
    State(s): State<Arc<HttpState>>,
    Ctx(ctx): Ctx,
    body: Bytes,
) -> Result<Json<Empty>> {
    let r: SelfRevokeApiKeyRequest = parse_body(&body)?;
    s.app.self_revoke(&ctx, &r.credential, r.reason).await?;
    Ok(Json(Empty {}))
}

// ------------------------------------------------------------------ health

/// Liveness: 200 whenever the process serves HTTP.
#[utoipa::path(get, path = "/health/alive", operation_id = "isAlive", tag = "health",
    responses((status = 200, body = HealthStatus)))]
pub async fn alive() -> Json<HealthStatus> {
    Json(HealthStatus {
        status: "ok".into(),
    })
}

/// Readiness: checks the database.
#[utoipa::path(get, path = "/health/ready", operation_id = "isReady", tag = "health",
    responses((status = 200, body = HealthStatus), (status = 503, body = HealthNotReady)))]
pub async fn ready(State(s): State<Arc<HttpState>>) -> Response {
    ready_response(&s, true).await
}

pub async fn ready_response(s: &HttpState, detailed: bool) -> Response {
    match s.app.ready().await {
        Ok(()) => Json(HealthStatus {
            status: "ok".into(),
        })
        .into_response(),
        Err(e) => {
            let msg = if detailed { e } else { "not ready".to_string() };
            let mut errors = serde_json::Map::new();
            errors.insert("database".into(), Value::String(msg));
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                Json(HealthNotReady { errors }),
            )
                .into_response()
        }
    }
}

// ----------------------------------------------------------- derived tokens

/// Derive a short-lived JWT or macaroon from an API key.
#[utoipa::path(post, path = "/v2alpha1/admin/apiKeys:derive", operation_id = "adminDeriveToken",
    tag = "admin", request_body = DeriveTokenRequest,
    responses((status = 200, body = DeriveTokenResponse), (status = "default", body = ErrorEnvelope)))]
pub async fn derive_token(
    State(s): State<Arc<HttpState>>,
    Ctx(ctx): Ctx,
    body: Bytes,
) -> Result<Json<DeriveTokenResponse>> {
    let r: DeriveTokenRequest = parse_body(&body)?;
    let req = crate::app::derive::DeriveRequest {
        credential: Secret::new(r.credential),
        algorithm: r.algorithm,
        ttl: ttl(&r.ttl)?,
        scopes: r.scopes,
        custom_claims: r.custom_claims.unwrap_or_default(),
        audiences: r.audiences,
    };
    let t = s.app.derive(&ctx, req).await?;
    Ok(Json(DeriveTokenResponse {
        token: Token {
            token: t.token.expose().to_string(),
            expire_time: Time(t.expires_at),
            scopes: t.scopes,
            claims: t.claims,
            audiences: t.audiences,
        },
    }))
}

/// The public keys that verify derived JWTs.
#[utoipa::path(get, path = "/v2alpha1/derivedKeys/jwks.json", operation_id = "getJwks",
    tag = "public", responses((status = 200, body = GetJwksResponse)))]
pub async fn jwks(State(s): State<Arc<HttpState>>) -> Response {
    let mut resp = Json(GetJwksResponse { jwks: s.app.jwks() }).into_response();
    resp.headers_mut().insert(
        "cache-control",
        HeaderValue::from_static("public, max-age=300"),
    );
    resp
}
