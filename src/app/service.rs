//! Use cases. Everything the HTTP adapter (and the CLI) can ask of the
//! server goes through [`App`]; it speaks domain types and [`AppError`].

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rand::RngCore;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::config::RuntimeSettings;
use super::error::{AppError, ErrorKind};
use super::last_used::LastUsedQueue;
use super::metrics::Metrics;
use crate::domain::access::{self, IpCheck, StatusError};
use crate::domain::credential::{self, CredentialKind, MAX_CREDENTIAL_BYTES};
use crate::domain::duration::{format_go_duration, MAX_TTL, MIN_TTL};
use crate::domain::keys;
use crate::domain::page_token::{self, PageTokenBinding, PageTokenError, PAGE_TOKEN_MAX_AGE};
use crate::domain::view::KeyView;
use crate::domain::{
    ApiKey, BatchImportErrorCode, KeyKind, KeyStatus, KeyVisibility, ListFilter, NetworkId,
    RateLimitPolicy, RevocationReason, Secret, Timestamp, VerificationErrorCode,
};
use crate::ports::{
    BatchInsertOutcome, Clock, KeyCache, KeyStore, RateLimiter, StoreError, Ticket,
};

/// How a request asks verification to use the cache (spec §2.5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CacheDirective {
    #[default]
    Default,
    /// `Cache-Control: no-cache` / `Pragma: no-cache`: skip the read, still write.
    NoCache,
    /// `Cache-Control: no-store`: skip read and write.
    NoStore,
}

/// Per-request facts the transport resolved: tenant, client IP, cache wishes.
#[derive(Clone, Copy, Debug)]
pub struct RequestCtx {
    pub nid: NetworkId,
    pub client_ip: Option<IpAddr>,
    pub cache: CacheDirective,
}

impl RequestCtx {
    pub fn new(nid: NetworkId) -> Self {
        RequestCtx {
            nid,
            client_ip: None,
            cache: CacheDirective::Default,
        }
    }
}

/// Rate-limit input as clients send it: quota and window are independent.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RateLimitInput {
    pub quota: Option<i64>,
    pub window_secs: Option<i64>,
}

/// Fields for a new issued or imported key.
#[derive(Clone, Debug, Default)]
pub struct NewKey {
    pub name: String,
    pub actor_id: String,
    pub scopes: Vec<String>,
    pub ttl: Option<Duration>,
    pub metadata: Map<String, Value>,
    pub rate_limit: Option<RateLimitInput>,
    pub allowed_cidrs: Vec<String>,
    pub request_id: Option<String>,
    pub visibility: KeyVisibility,
}

/// A three-state field for PATCH-like inputs.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Patch<T> {
    #[default]
    Absent,
    Null,
    Value(T),
}

impl<T> Patch<T> {
    pub fn is_present(&self) -> bool {
        !matches!(self, Patch::Absent)
    }
}

/// An update (spec §4.4): with a mask, exactly the masked paths change (an
/// absent body value clears); without one, the fields present change.
#[derive(Clone, Debug, Default)]
pub struct KeyUpdate {
    pub mask: Option<Vec<String>>,
    pub name: Patch<String>,
    pub scopes: Patch<Vec<String>>,
    pub metadata: Patch<Map<String, Value>>,
    pub rate_limit: Patch<RateLimitInput>,
    pub allowed_cidrs: Patch<Vec<String>>,
}

pub const UPDATE_MASK_PATHS: &[&str] = &[
    "name",
    "scopes",
    "metadata",
    "rate_limit_policy",
    "ip_restriction",
];

/// Rotation overrides: `None` inherits from the old key (spec §4.5).
#[derive(Clone, Debug, Default)]
pub struct RotateInput {
    pub name: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub metadata: Option<Map<String, Value>>,
    pub rate_limit: Option<RateLimitInput>,
    pub allowed_cidrs: Option<Vec<String>>,
    pub visibility: Option<KeyVisibility>,
}

pub struct Page {
    pub keys: Vec<ApiKey>,
    pub next_page_token: String,
}

/// A successful verification, whatever the credential type: the key's
/// shared view (for a stored key, the very object the cache holds).
#[derive(Clone, Debug)]
pub struct Verified {
    pub kind: CredentialKind,
    pub key: Arc<KeyView>,
    /// As reported: stored keys are normalised to PUBLIC or SECRET.
    pub visibility: KeyVisibility,
    pub audiences: Vec<String>,
}

impl Verified {
    fn from_view(kind: CredentialKind, key: Arc<KeyView>) -> Self {
        Verified {
            kind,
            visibility: normalize_visibility(key.visibility),
            key,
            audiences: Vec::new(),
        }
    }

    pub fn key_id(&self) -> &str {
        self.key.key_id()
    }

    /// Always ACTIVE: anything else is not a successful verification.
    pub fn status(&self) -> KeyStatus {
        KeyStatus::Active
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyFailure {
    pub code: VerificationErrorCode,
    pub message: String,
}

impl VerifyFailure {
    pub fn new(code: VerificationErrorCode, message: impl Into<String>) -> Self {
        VerifyFailure {
            code,
            message: message.into(),
        }
    }
    fn not_found() -> Self {
        Self::new(
            VerificationErrorCode::NotFound,
            "The API key was not found.",
        )
    }
    fn internal(e: &StoreError) -> Self {
        let msg = match e {
            StoreError::Timeout => "database operation timed out",
            StoreError::Unavailable(_) => "database connection failed",
            _ => "database error",
        };
        tracing::warn!(error = %e, "verification could not reach the key store");
        Self::new(VerificationErrorCode::Internal, msg)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheStatus {
    Hit,
    Miss,
    Skip,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "HIT",
            CacheStatus::Miss => "MISS",
            CacheStatus::Skip => "SKIP",
        }
    }
}

/// Rate-limit state reported with a verification (commercial builds with
/// `rate_limit.enabled`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateInfo {
    pub remaining: i64,
    pub reset_at: Timestamp,
    /// Set when the request was refused.
    pub retry_after_ms: Option<i64>,
}

#[derive(Clone, Debug)]
pub struct VerifyOutcome {
    pub result: Result<Verified, VerifyFailure>,
    pub cache: CacheStatus,
    pub rate: Option<RateInfo>,
}

impl VerifyOutcome {
    fn fail(f: VerifyFailure, cache: CacheStatus) -> Self {
        VerifyOutcome {
            result: Err(f),
            cache,
            rate: None,
        }
    }
}

/// Per-item result of a batch import.
pub enum BatchItem {
    Imported(Box<ApiKey>),
    Failed(BatchImportErrorCode, String),
}

pub struct BatchImportResult {
    pub items: Vec<BatchItem>,
}

pub const MAX_BATCH_IMPORT: usize = 1000;
pub const MAX_BATCH_VERIFY: usize = 100;
const MAX_NAME_LEN: usize = 255;
const MAX_ACTOR_LEN: usize = 255;
const MAX_SCOPES: usize = 100;
const MAX_SCOPE_LEN: usize = 256;
const MAX_CIDRS: usize = 100;

fn normalize_visibility(v: KeyVisibility) -> KeyVisibility {
    match v {
        KeyVisibility::Public => KeyVisibility::Public,
        _ => KeyVisibility::Secret,
    }
}

pub struct App {
    store: Arc<dyn KeyStore>,
    cache: Arc<dyn KeyCache>,
    clock: Arc<dyn Clock>,
    runtime: Arc<ArcSwap<RuntimeSettings>>,
    last_used: Option<LastUsedQueue>,
    limiter: Option<Arc<dyn RateLimiter>>,
    metrics: Arc<Metrics>,
    signing: Arc<super::derive::SigningKeysHandle>,
    failure_events: std::sync::Mutex<crate::domain::audit::EventThrottle>,
}

impl App {
    pub fn new(
        store: Arc<dyn KeyStore>,
        cache: Arc<dyn KeyCache>,
        clock: Arc<dyn Clock>,
        runtime: Arc<ArcSwap<RuntimeSettings>>,
        last_used: Option<LastUsedQueue>,
    ) -> Self {
        App {
            store,
            cache,
            clock,
            runtime,
            last_used,
            limiter: None,
            metrics: Arc::new(Metrics::default()),
            signing: Arc::new(arc_swap::ArcSwapOption::empty()),
            failure_events: Default::default(),
        }
    }

    /// JWT signing keys in effect (swapped on config reload).
    pub fn signing_keys(&self) -> &Arc<super::derive::SigningKeysHandle> {
        &self.signing
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Enables rate-limit enforcement (commercial builds); `rate_limit.enabled`
    /// still switches it per request.
    pub fn with_rate_limiter(mut self, limiter: Arc<dyn RateLimiter>) -> Self {
        self.limiter = Some(limiter);
        self
    }

    pub fn settings(&self) -> arc_swap::Guard<Arc<RuntimeSettings>> {
        self.runtime.load()
    }

    pub fn store(&self) -> &Arc<dyn KeyStore> {
        &self.store
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    // ----------------------------------------------------------------- issue

    pub async fn issue(
        &self,
        nid: NetworkId,
        input: NewKey,
    ) -> Result<(ApiKey, Option<Secret>), AppError> {
        let rt = self.settings();
        let now = self.now();
        let prepared = prepare_new_key(&input, &rt, now)?;
        let visibility = normalize_visibility(input.visibility);
        let prefix = match visibility {
            KeyVisibility::Public => rt.public_prefix.clone().ok_or_else(|| {
                AppError::bad_request(
                    "public key prefix not configured: set credentials.api_keys.prefix.public_current",
                )
            })?,
            _ => rt.prefix.clone(),
        };
        self.enforce_quota(nid, &rt).await?;
        let key_id = Uuid::new_v4();
        let secret = Secret::new(keys::generate_v1(
            &prefix,
            key_id,
            now.secs(),
            &rt.secrets.current,
        ));
        let key = ApiKey {
            nid,
            kind: KeyKind::Issued,
            key_id: key_id.as_hyphenated().to_string(),
            token_prefix: Some(prefix),
            visibility,
            ..prepared
        };
        match self.store.insert(&key).await {
            Ok(()) => {
                self.metrics.key_created("issued");
                tracing::info!(event = "IssuedAPIKeyCreated", nid = %nid, key_id = %key.key_id, actor_id = %key.actor_id, "API key issued");
                Ok((key, Some(secret)))
            }
            Err(StoreError::Conflict) => {
                if let Some(existing) = self
                    .replay(nid, KeyKind::Issued, input.request_id.as_deref())
                    .await?
                {
                    return Ok((existing, None));
                }
                Err(AppError::new(
                    ErrorKind::ApiKeyExists,
                    format!("API key with ID {} already exists", key.key_id),
                ))
            }
            Err(e) => Err(AppError::store("create API key", e)),
        }
    }

    async fn replay(
        &self,
        nid: NetworkId,
        kind: KeyKind,
        request_id: Option<&str>,
    ) -> Result<Option<ApiKey>, AppError> {
        let Some(rid) = request_id else {
            return Ok(None);
        };
        self.store
            .get_by_request_id(nid, kind, rid)
            .await
            .map_err(|e| AppError::store("idempotency lookup", e))
    }

    async fn enforce_quota(&self, nid: NetworkId, rt: &RuntimeSettings) -> Result<(), AppError> {
        let Some(cap) = rt.quota else { return Ok(()) };
        let used = self
            .store
            .count_active(nid, cap)
            .await
            .map_err(|e| AppError::store("count active API keys", e))?;
        if used >= cap {
            return Err(quota_error(cap, used));
        }
        Ok(())
    }

    // ---------------------------------------------------------------- import

    pub async fn import(
        &self,
        nid: NetworkId,
        raw_key: &Secret,
        input: NewKey,
    ) -> Result<ApiKey, AppError> {
        let rt = self.settings();
        let now = self.now();
        check_raw_key(raw_key, &rt).map_err(|(kind, msg)| AppError::new(kind, msg))?;
        let prepared = prepare_new_key(&input, &rt, now)?;
        self.enforce_quota(nid, &rt).await?;
        let key = ApiKey {
            nid,
            kind: KeyKind::Imported,
            key_id: keys::imported_key_id(nid, raw_key.expose()),
            token_prefix: None,
            visibility: normalize_visibility(input.visibility),
            ..prepared
        };
        match self.store.insert(&key).await {
            Ok(()) => {
                self.metrics.key_created("imported");
                tracing::info!(event = "ImportedAPIKeyCreated", nid = %nid, key_id = %key.key_id, "API key imported");
                Ok(key)
            }
            Err(StoreError::Conflict) => {
                if let Some(existing) = self
                    .replay(nid, KeyKind::Imported, input.request_id.as_deref())
                    .await?
                {
                    return Ok(existing);
                }
                Err(AppError::new(
                    ErrorKind::ApiKeyExists,
                    "key already imported (duplicate detected)",
                ))
            }
            Err(e) => Err(AppError::store("import API key", e)),
        }
    }

    /// Batch import (spec §4.8). `items` are already-decoded requests; a
    /// decoding failure arrives as `Err(message)` and becomes INVALID_ARGUMENT.
    pub async fn batch_import(
        &self,
        nid: NetworkId,
        items: Vec<Result<(Secret, NewKey), String>>,
    ) -> Result<BatchImportResult, AppError> {
        if items.is_empty() {
            return Err(AppError::bad_request("keys must contain at least one item"));
        }
        if items.len() > MAX_BATCH_IMPORT {
            return Err(AppError::bad_request("maximum 1000 keys per batch"));
        }
        let rt = self.settings();
        let now = self.now();
        let mut results: Vec<Option<BatchItem>> = (0..items.len()).map(|_| None).collect();
        let mut candidates: Vec<(usize, ApiKey)> = Vec::new();
        let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for (i, item) in items.into_iter().enumerate() {
            let (raw, input) = match item {
                Ok(v) => v,
                Err(msg) => {
                    results[i] = Some(BatchItem::Failed(
                        BatchImportErrorCode::InvalidArgument,
                        msg,
                    ));
                    continue;
                }
            };
            if let Err((kind, msg)) = check_raw_key(&raw, &rt) {
                let code = match kind {
                    ErrorKind::BadRequest => BatchImportErrorCode::InvalidArgument,
                    _ => BatchImportErrorCode::FailedPrecondition,
                };
                results[i] = Some(BatchItem::Failed(code, msg));
                continue;
            }
            let prepared = match prepare_new_key(&input, &rt, now) {
                Ok(p) => p,
                Err(e) => {
                    results[i] = Some(BatchItem::Failed(batch_code(e.kind), e.message));
                    continue;
                }
            };
            let key_id = keys::imported_key_id(nid, raw.expose());
            if let Some(first) = seen.get(&key_id) {
                results[i] = Some(BatchItem::Failed(
                    BatchImportErrorCode::AlreadyExists,
                    format!("key already imported (duplicate detected at index {first})"),
                ));
                continue;
            }
            seen.insert(key_id.clone(), i);
            candidates.push((
                i,
                ApiKey {
                    nid,
                    kind: KeyKind::Imported,
                    key_id,
                    token_prefix: None,
                    // request_id is not used for batch items (spec §4.8).
                    request_id: None,
                    visibility: normalize_visibility(input.visibility),
                    ..prepared
                },
            ));
        }
        if let Some(cap) = rt.quota {
            let used = self
                .store
                .count_active(nid, cap)
                .await
                .map_err(|e| AppError::store("count active API keys", e))?;
            let headroom = cap.saturating_sub(used) as usize;
            if candidates.len() > headroom {
                for (i, _) in candidates.drain(headroom..) {
                    results[i] = Some(BatchItem::Failed(
                        BatchImportErrorCode::ResourceExhausted,
                        format!(
                            "the API key quota for this plan permits up to {cap} active API keys"
                        ),
                    ));
                }
            }
        }
        if !candidates.is_empty() {
            let rows: Vec<ApiKey> = candidates.iter().map(|(_, k)| k.clone()).collect();
            let outcomes = self
                .store
                .batch_insert_imported(&rows)
                .await
                .map_err(|e| AppError::store("import keys in batch", e))?;
            for (pos, (i, key)) in candidates.into_iter().enumerate() {
                results[i] = Some(match outcomes.get(pos) {
                    Some(BatchInsertOutcome::Inserted) => BatchItem::Imported(Box::new(key)),
                    Some(BatchInsertOutcome::Duplicate) => BatchItem::Failed(
                        BatchImportErrorCode::AlreadyExists,
                        "key already imported (duplicate detected)".into(),
                    ),
                    None => BatchItem::Failed(
                        BatchImportErrorCode::Internal,
                        "batch insert returned no row for key".into(),
                    ),
                });
            }
        }
        let items: Vec<BatchItem> = results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    BatchItem::Failed(
                        BatchImportErrorCode::Internal,
                        "batch item failed with no result".into(),
                    )
                })
            })
            .collect();
        if !items.iter().any(|i| matches!(i, BatchItem::Imported(_))) {
            return Err(dominant_batch_error(&items));
        }
        let ok = items
            .iter()
            .filter(|i| matches!(i, BatchItem::Imported(_)))
            .count();
        for (index, item) in items.iter().enumerate() {
            match item {
                BatchItem::Imported(_) => self.metrics.batch_import("SUCCESS", 1),
                BatchItem::Failed(code, reason) => {
                    let short = code
                        .as_str()
                        .trim_start_matches("BATCH_CREATE_IMPORTED_API_KEYS_ERROR_");
                    self.metrics.batch_import(short, 1);
                    tracing::info!(event = "APIKeyImportFailed", nid = %nid, key_type = "imported", index, error_code = code.as_str(), reason = %reason, "imported key rejected");
                }
            }
        }
        for _ in 0..ok {
            self.metrics.key_created("imported");
        }
        tracing::info!(event = "ImportedAPIKeyCreated", nid = %nid, imported = ok, failed = items.len() - ok, "batch import finished");
        Ok(BatchImportResult { items })
    }

    // ------------------------------------------------------------ read paths

    pub async fn get(
        &self,
        nid: NetworkId,
        kind: KeyKind,
        key_id: &str,
    ) -> Result<ApiKey, AppError> {
        let not_found = || match kind {
            KeyKind::Issued => AppError::not_found_issued(),
            KeyKind::Imported => AppError::not_found_imported(),
        };
        if !valid_key_id(kind, key_id) {
            return Err(not_found());
        }
        let op = match kind {
            KeyKind::Issued => "get API key",
            KeyKind::Imported => "get imported key",
        };
        self.store
            .get(nid, kind, key_id)
            .await
            .map_err(|e| AppError::store(op, e))?
            .ok_or_else(not_found)
    }

    pub async fn list(
        &self,
        nid: NetworkId,
        kind: KeyKind,
        page_size: i64,
        page_token: &str,
        filter: &str,
    ) -> Result<Page, AppError> {
        let rt = self.settings();
        let now = self.now();
        let size = if page_size <= 0 {
            50
        } else {
            page_size.min(1000)
        } as u32;
        let filter = ListFilter::parse(filter).map_err(|e| AppError::bad_request(e.to_string()))?;
        let binding = PageTokenBinding {
            nid,
            kind,
            filter: &filter,
        };
        let after = if page_token.is_empty() {
            None
        } else {
            Some(
                page_token::open_with(
                    rt.secrets.active_page_token_keys(now),
                    &binding,
                    page_token,
                    now,
                    PAGE_TOKEN_MAX_AGE,
                )
                .map_err(page_token_error)?,
            )
        };
        let op = match kind {
            KeyKind::Issued => "list API keys",
            KeyKind::Imported => "list imported keys",
        };
        let mut keys = self
            .store
            .list(nid, kind, &filter, after.as_deref(), size + 1, now)
            .await
            .map_err(|e| AppError::store(op, e))?;
        let next_page_token = if keys.len() > size as usize {
            keys.truncate(size as usize);
            let last = keys.last().map(|k| k.key_id.clone()).unwrap_or_default();
            let mut nonce = [0u8; 12];
            rand::rngs::OsRng.fill_bytes(&mut nonce);
            page_token::seal_with(
                rt.secrets.current_page_token_key(),
                &binding,
                &last,
                now,
                nonce,
            )
        } else {
            String::new()
        };
        Ok(Page {
            keys,
            next_page_token,
        })
    }

    // ----------------------------------------------------------- mutations

    pub async fn update(
        &self,
        nid: NetworkId,
        kind: KeyKind,
        key_id: &str,
        upd: KeyUpdate,
    ) -> Result<ApiKey, AppError> {
        if let Some(mask) = &upd.mask {
            for path in mask {
                if !UPDATE_MASK_PATHS.contains(&path.as_str()) {
                    return Err(AppError::bad_request(format!(
                        "invalid update_mask path '{path}'; allowed: {}",
                        UPDATE_MASK_PATHS.join(", ")
                    )));
                }
            }
        }
        let mut key = self.get(nid, kind, key_id).await?;
        let applies = |path: &str, present: bool| match &upd.mask {
            Some(mask) => mask.iter().any(|p| p == path),
            None => present,
        };
        if applies("name", upd.name.is_present()) {
            key.name = match &upd.name {
                Patch::Value(v) => v.clone(),
                _ => String::new(),
            };
            check_name(&key.name, true)?;
        }
        if applies("scopes", upd.scopes.is_present()) {
            key.scopes = match &upd.scopes {
                Patch::Value(v) => v.clone(),
                _ => Vec::new(),
            };
            check_scopes(&key.scopes)?;
        }
        if applies("metadata", upd.metadata.is_present()) {
            key.metadata = match &upd.metadata {
                Patch::Value(v) => v.clone(),
                _ => Map::new(),
            };
            check_metadata(&key.metadata)?;
        }
        if applies("rate_limit_policy", upd.rate_limit.is_present()) {
            key.rate_limit = match &upd.rate_limit {
                Patch::Value(v) => Some(resolve_rate_limit(v)?),
                _ => None,
            };
        }
        if applies("ip_restriction", upd.allowed_cidrs.is_present()) {
            key.allowed_cidrs = match &upd.allowed_cidrs {
                Patch::Value(v) => normalize_cidrs(v)?,
                _ => Vec::new(),
            };
        }
        key.updated_at = self.now();
        let op = match kind {
            KeyKind::Issued => "update issued API key",
            KeyKind::Imported => "update imported API key",
        };
        self.store.update(&key).await.map_err(|e| match e {
            StoreError::NotFound => not_found_for(kind),
            e => AppError::store(op, e),
        })?;
        self.evict(nid, &key.key_id).await;
        tracing::info!(event = if kind == KeyKind::Issued { "IssuedAPIKeyUpdated" } else { "ImportedAPIKeyUpdated" }, nid = %nid, key_id = %key.key_id, "API key updated");
        Ok(key)
    }

    pub async fn rotate(
        &self,
        nid: NetworkId,
        key_id: &str,
        input: RotateInput,
    ) -> Result<(ApiKey, Secret, ApiKey), AppError> {
        let rt = self.settings();
        let now = self.now();
        let old = self.get(nid, KeyKind::Issued, key_id).await?;
        if old.status != KeyStatus::Active {
            return Err(AppError::new(
                ErrorKind::FailedPrecondition,
                "cannot rotate a non-active key",
            ));
        }
        let visibility = match input.visibility {
            Some(v) if v != KeyVisibility::Unspecified => v,
            _ => normalize_visibility(old.visibility),
        };
        let prefix = match visibility {
            KeyVisibility::Public => rt.public_prefix.clone().ok_or_else(|| {
                AppError::bad_request(
                    "public key prefix not configured: set credentials.api_keys.prefix.public_current",
                )
            })?,
            _ => rt.prefix.clone(),
        };
        let name = input.name.unwrap_or_else(|| old.name.clone());
        check_name(&name, false)?;
        let scopes = input.scopes.unwrap_or_else(|| old.scopes.clone());
        check_scopes(&scopes)?;
        let metadata = input.metadata.unwrap_or_else(|| old.metadata.clone());
        check_metadata(&metadata)?;
        let rate_limit = match &input.rate_limit {
            None => old.rate_limit.clone(),
            Some(r) => {
                let merged = RateLimitInput {
                    quota: r.quota,
                    window_secs: r
                        .window_secs
                        .or(old.rate_limit.as_ref().and_then(|p| p.window_secs)),
                };
                Some(resolve_rate_limit(&merged)?)
            }
        };
        let allowed_cidrs = match &input.allowed_cidrs {
            None => old.allowed_cidrs.clone(),
            Some(v) => normalize_cidrs(v)?,
        };
        let new_id = Uuid::new_v4();
        let secret = Secret::new(keys::generate_v1(
            &prefix,
            new_id,
            now.secs(),
            &rt.secrets.current,
        ));
        let new_key = ApiKey {
            nid,
            kind: KeyKind::Issued,
            key_id: new_id.as_hyphenated().to_string(),
            name,
            token_prefix: Some(prefix),
            actor_id: old.actor_id.clone(),
            scopes,
            status: KeyStatus::Active,
            metadata,
            last_used_at: None,
            expires_at: old.expires_at,
            created_at: now,
            updated_at: now,
            rate_limit,
            revocation_reason: RevocationReason::Unspecified,
            revocation_description: String::new(),
            allowed_cidrs,
            request_id: None,
            visibility,
        };
        let old_revoked = self
            .store
            .rotate(nid, key_id, &new_key, now)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => AppError::not_found_issued(),
                StoreError::NotActive | StoreError::AlreadyRevoked => AppError::new(
                    ErrorKind::FailedPrecondition,
                    "cannot rotate a non-active key",
                ),
                StoreError::Conflict => AppError::new(
                    ErrorKind::ApiKeyExists,
                    format!("API key with ID {} already exists", new_key.key_id),
                ),
                e => AppError::store("rotate API key", e),
            })?;
        self.evict(nid, key_id).await;
        self.metrics.key_rotated();
        tracing::info!(event = "IssuedAPIKeyRotated", nid = %nid, key_id = %new_key.key_id, old_key_id = %key_id, "API key rotated");
        Ok((new_key, secret, old_revoked))
    }

    pub async fn revoke(
        &self,
        nid: NetworkId,
        kind: KeyKind,
        key_id: &str,
        reason: RevocationReason,
        description: &str,
    ) -> Result<(), AppError> {
        if !description.is_empty() && reason != RevocationReason::PrivilegeWithdrawn {
            return Err(AppError::bad_request(
                "description is only allowed when reason is PRIVILEGE_WITHDRAWN",
            ));
        }
        if description.chars().count() > 1024 {
            return Err(AppError::bad_request(
                "description must be at most 1024 characters",
            ));
        }
        if !valid_key_id(kind, key_id) {
            return Err(not_found_for(kind));
        }
        let op = match kind {
            KeyKind::Issued => "revoke API key",
            KeyKind::Imported => "revoke imported API key",
        };
        self.store
            .revoke(nid, kind, key_id, reason, description, self.now())
            .await
            .map_err(|e| match e {
                StoreError::NotFound => not_found_for(kind),
                e => AppError::store(op, e),
            })?;
        self.evict(nid, key_id).await;
        self.metrics.key_revoked(reason.as_str());
        tracing::info!(event = if kind == KeyKind::Issued { "IssuedAPIKeyRevoked" } else { "ImportedAPIKeyRevoked" }, nid = %nid, key_id = %key_id, reason = reason.as_str(), "API key revoked");
        Ok(())
    }

    /// The docs' unified revoke path: dispatch by the shape of the key id.
    pub async fn revoke_any(
        &self,
        nid: NetworkId,
        key_id: &str,
        reason: RevocationReason,
        description: &str,
    ) -> Result<(), AppError> {
        let kind = if keys::is_imported_key_id(key_id) {
            KeyKind::Imported
        } else {
            KeyKind::Issued
        };
        self.revoke(nid, kind, key_id, reason, description).await
    }

    pub async fn delete_imported(&self, nid: NetworkId, key_id: &str) -> Result<(), AppError> {
        if !keys::is_imported_key_id(key_id) {
            return Err(AppError::not_found_imported());
        }
        self.store
            .delete(nid, KeyKind::Imported, key_id)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => AppError::not_found_imported(),
                e => AppError::store("delete imported key", e),
            })?;
        self.evict(nid, key_id).await;
        tracing::info!(event = "ImportedAPIKeyDeleted", nid = %nid, key_id = %key_id, "imported key deleted");
        Ok(())
    }

    async fn evict(&self, nid: NetworkId, key_id: &str) {
        if let Err(e) = self.cache.evict(nid, key_id).await {
            tracing::warn!(error = %e, key_id = %key_id, "cache eviction failed");
        }
    }

    // ---------------------------------------------------------- verification

    /// Authenticates an issued/imported credential without the cache.
    /// Returns the stored key (any status) or the failure to report.
    async fn lookup_credential(
        &self,
        ctx: &RequestCtx,
        rt: &RuntimeSettings,
        credential: &str,
        (kind, parsed): (CredentialKind, Option<keys::ParsedV1<'_>>),
        now: Timestamp,
    ) -> Result<(KeyKind, String), VerifyFailure> {
        match kind {
            CredentialKind::Issued => {
                let parsed = parsed
                    .or_else(|| keys::parse_v1(credential))
                    .and_then(|p| keys::verify_parsed(p, rt.secrets.active_checksum_keys(now)))
                    .ok_or_else(VerifyFailure::not_found)?;
                if !access::key_timestamp_acceptable(
                    parsed.timestamp,
                    now,
                    rt.max_ttl,
                    rt.clock_skew,
                ) {
                    return Err(VerifyFailure::not_found());
                }
                if !rt.allowed_prefixes().any(|p| p == parsed.prefix) {
                    return Err(VerifyFailure::not_found());
                }
                Ok((KeyKind::Issued, parsed.key_id.as_hyphenated().to_string()))
            }
            CredentialKind::Imported => Ok((
                KeyKind::Imported,
                keys::imported_key_id(ctx.nid, credential),
            )),
            CredentialKind::DerivedJwt | CredentialKind::DerivedMacaroon => {
                Err(VerifyFailure::new(
                    VerificationErrorCode::SignatureInvalid,
                    "Signature verification failed.",
                ))
            }
        }
    }

    fn check_key(&self, ctx: &RequestCtx, key: &ApiKey) -> Result<(), VerifyFailure> {
        match access::check_status(key, self.now()) {
            Ok(()) => {}
            Err(StatusError::Revoked) => {
                return Err(VerifyFailure::new(
                    VerificationErrorCode::Revoked,
                    "The API key has been revoked.",
                ))
            }
            Err(StatusError::Expired) => {
                return Err(VerifyFailure::new(
                    VerificationErrorCode::Expired,
                    "The API key has expired.",
                ))
            }
            Err(StatusError::BadStatus(_)) => return Err(VerifyFailure::not_found()),
        }
        check_ip(&key.allowed_cidrs, ctx.client_ip)
    }

    pub async fn verify(&self, ctx: &RequestCtx, credential: &str) -> VerifyOutcome {
        self.verify_with(ctx, credential, &[]).await
    }

    /// Verification with an audience requirement (SDK 1.22.89): a caller that
    /// states audiences accepts only credentials naming one of them; a
    /// credential naming audiences is refused when the caller states none.
    pub async fn verify_with(
        &self,
        ctx: &RequestCtx,
        credential: &str,
        expected_audiences: &[String],
    ) -> VerifyOutcome {
        let mut outcome = self.verify_stored(ctx, credential).await;
        if let Ok(v) = &outcome.result {
            let ok = if expected_audiences.is_empty() {
                v.audiences.is_empty()
            } else {
                v.audiences.iter().any(|a| expected_audiences.contains(a))
            };
            if !ok {
                outcome.result = Err(VerifyFailure::new(
                    VerificationErrorCode::AudienceMismatch,
                    "the credential is not valid for the expected audience",
                ));
            }
        }
        if let Ok(v) = &outcome.result {
            match self.rate_limit(ctx, v).await {
                Ok(rate) => outcome.rate = rate,
                Err(rate) => {
                    outcome.rate = Some(rate);
                    outcome.result = Err(VerifyFailure::new(
                        VerificationErrorCode::RateLimited,
                        "rate limit exceeded",
                    ));
                }
            }
        }
        let label = match &outcome.result {
            Ok(v) => v.kind.label(),
            Err(_) if credential.is_empty() => "unknown",
            Err(_) => precheck_credential(credential, &self.settings())
                .map(|(k, _)| k.label())
                .unwrap_or("unknown"),
        };
        self.metrics.verification(label, outcome.result.is_ok());
        match outcome.cache {
            CacheStatus::Hit => self.metrics.cache_result("hit"),
            CacheStatus::Miss => self.metrics.cache_result("miss"),
            CacheStatus::Skip => {}
        }
        if let Err(failure) = &outcome.result {
            let now = self.now();
            let emit = self
                .failure_events
                .lock()
                .map(|mut t| t.allow(ctx.nid, now))
                .unwrap_or(false);
            if emit {
                tracing::info!(event = "APIKeyVerificationFailed", nid = %ctx.nid, credential_type = label, reason = failure.code.as_str(), "verification failed");
            }
        }
        outcome
    }

    /// Applies the key's rate-limit policy. `Err` carries the refusal state.
    async fn rate_limit(
        &self,
        ctx: &RequestCtx,
        v: &Verified,
    ) -> Result<Option<RateInfo>, RateInfo> {
        let (Some(limiter), Some(policy)) = (&self.limiter, &v.key.rate_limit) else {
            return Ok(None);
        };
        if !self.settings().rate_limit_enabled {
            return Ok(None);
        }
        let window_ms = policy
            .window_secs
            .map(|w| w.saturating_mul(1000))
            .unwrap_or(crate::domain::ratelimit::DEFAULT_WINDOW_MS);
        match limiter
            .check(ctx.nid, v.key_id(), policy.quota, window_ms)
            .await
        {
            Ok(d) => {
                self.metrics
                    .rate_limit_decision(if d.allowed { "allowed" } else { "limited" });
                let info = RateInfo {
                    remaining: d.remaining,
                    reset_at: self
                        .now()
                        .plus(Duration::from_millis(d.reset_after_ms.max(0) as u64)),
                    retry_after_ms: (!d.allowed).then_some(d.retry_after_ms),
                };
                if d.allowed {
                    Ok(Some(info))
                } else {
                    Err(info)
                }
            }
            Err(e) => {
                // Fail open: a broken limiter must not take verification down.
                self.metrics.rate_limit_decision("error");
                tracing::warn!(error = %e, limiter = limiter.name(), "rate limiter failed; allowing the request");
                Ok(None)
            }
        }
    }

    async fn verify_stored(&self, ctx: &RequestCtx, credential: &str) -> VerifyOutcome {
        let rt = self.settings();
        let (kind, parsed) = match precheck_credential(credential, &rt) {
            Ok(k) => k,
            Err(f) => return VerifyOutcome::fail(f, CacheStatus::Skip),
        };
        if matches!(
            kind,
            CredentialKind::DerivedJwt | CredentialKind::DerivedMacaroon
        ) {
            // Stateless: no database, no cache, no rate limiting.
            return VerifyOutcome {
                result: self.verify_derived(ctx, credential, kind),
                cache: CacheStatus::Skip,
                rate: None,
            };
        }
        let cache_on = rt.cache_enabled && !rt.cache_ttl.is_zero();
        if let (true, CacheDirective::Default, Some(p)) = (cache_on, ctx.cache, &parsed) {
            // The cache line of the lookup below loads while the checksum
            // is computed.
            self.cache.prefetch(ctx.nid, p.key_id);
        }
        let now = self.now();
        let (key_kind, key_id) = match self
            .lookup_credential(ctx, &rt, credential, (kind, parsed), now)
            .await
        {
            Ok(v) => v,
            Err(f) => return VerifyOutcome::fail(f, CacheStatus::Skip),
        };
        let mut status = CacheStatus::Skip;
        if cache_on && ctx.cache == CacheDirective::Default {
            status = CacheStatus::Miss;
            match self.cache.get(ctx.nid, &key_id).await {
                Ok(Some(cached))
                    if cached.kind == key_kind
                        && access::check_state(cached.status, cached.expires_at, now).is_ok() =>
                {
                    let result = check_ip(cached.allowed_cidrs(), ctx.client_ip)
                        .map(|()| Verified::from_view(kind, cached));
                    return VerifyOutcome {
                        result,
                        cache: CacheStatus::Hit,
                        rate: None,
                    };
                }
                Ok(_) => {}
                Err(e) => {
                    self.metrics.cache_result("error");
                    tracing::warn!(error = %e, "cache read failed; falling back to the database")
                }
            }
        }
        // Taken before the read: an eviction after it voids our put.
        let ticket = if cache_on && ctx.cache != CacheDirective::NoStore {
            Some(self.cache.ticket(ctx.nid, &key_id).await)
        } else {
            None
        };
        let key = match self.store.get(ctx.nid, key_kind, &key_id).await {
            Ok(Some(k)) => k,
            Ok(None) => return VerifyOutcome::fail(VerifyFailure::not_found(), status),
            Err(e) => return VerifyOutcome::fail(VerifyFailure::internal(&e), status),
        };
        if let Err(f) = self.check_key(ctx, &key) {
            return VerifyOutcome::fail(f, status);
        }
        let view = self.after_verified(&rt, &key, ticket).await;
        VerifyOutcome {
            result: Ok(Verified::from_view(kind, view)),
            cache: status,
            rate: None,
        }
    }

    async fn after_verified(
        &self,
        rt: &RuntimeSettings,
        key: &ApiKey,
        ticket: Option<Ticket>,
    ) -> Arc<KeyView> {
        let now = self.now();
        let view = Arc::new(KeyView::of(key));
        if let Some(ticket) = ticket {
            if let Some(ttl) = access::cache_ttl(key.expires_at, rt.cache_ttl, now) {
                if let Err(e) = self.cache.put(view.clone(), ttl, ticket).await {
                    tracing::warn!(error = %e, "cache write failed");
                }
            }
        }
        if let Some(q) = &self.last_used {
            if key
                .last_used_at
                .is_none_or(|t| t < crate::domain::rules::utc_day_start(now))
            {
                q.record(key.nid, key.kind, &key.key_id);
            }
        }
        view
    }

    pub async fn batch_verify(
        &self,
        ctx: &RequestCtx,
        credentials: &[(String, Vec<String>)],
    ) -> Result<Vec<VerifyOutcome>, AppError> {
        if credentials.is_empty() {
            return Err(AppError::bad_request(
                "requests must contain at least one item",
            ));
        }
        if credentials.len() > MAX_BATCH_VERIFY {
            return Err(AppError::bad_request("maximum 100 credentials per batch"));
        }
        let mut out = Vec::with_capacity(credentials.len());
        for (c, aud) in credentials {
            out.push(self.verify_with(ctx, c, aud).await);
        }
        Ok(out)
    }

    // --------------------------------------------------------- self-revoke

    pub async fn self_revoke(
        &self,
        ctx: &RequestCtx,
        credential: &str,
        reason: RevocationReason,
    ) -> Result<(), AppError> {
        if credential.is_empty() {
            return Err(AppError::new(
                ErrorKind::CredentialRequired,
                "A credential is required.",
            ));
        }
        if reason == RevocationReason::PrivilegeWithdrawn {
            return Err(AppError::bad_request(
                "REVOCATION_REASON_PRIVILEGE_WITHDRAWN is reserved for administrators",
            ));
        }
        let rt = self.settings();
        let (kind, parsed) = match precheck_credential(credential, &rt) {
            Ok(k) => k,
            Err(_) => return Err(AppError::not_found_issued()),
        };
        if matches!(
            kind,
            CredentialKind::DerivedJwt | CredentialKind::DerivedMacaroon
        ) {
            return Err(AppError::new(
                ErrorKind::DerivedTokenNotRevocable,
                "Derived tokens cannot be revoked.",
            ));
        }
        let (key_kind, key_id) = self
            .lookup_credential(ctx, &rt, credential, (kind, parsed), self.now())
            .await
            .map_err(|_| not_found_for(KeyKind::Issued))?;
        let key = self
            .store
            .get(ctx.nid, key_kind, &key_id)
            .await
            .map_err(|e| AppError::store("get key for revocation", e))?
            .ok_or_else(|| not_found_for(key_kind))?;
        match access::check_status(&key, self.now()) {
            Ok(()) => {}
            Err(StatusError::Revoked) => return Ok(()),
            Err(StatusError::Expired) => {
                return Err(AppError::new(
                    ErrorKind::ApiKeyExpired,
                    "The API key has expired.",
                ))
            }
            Err(StatusError::BadStatus(n)) => {
                return Err(AppError::new(
                    ErrorKind::ApiKeyNotFound,
                    format!("key status {n}"),
                ))
            }
        }
        if normalize_visibility(key.visibility) == KeyVisibility::Public {
            return Err(AppError::new(
                ErrorKind::Forbidden,
                "public keys cannot be self-revoked; ask an administrator to revoke it",
            ));
        }
        match self
            .store
            .revoke(ctx.nid, key_kind, &key_id, reason, "", self.now())
            .await
        {
            Ok(_) | Err(StoreError::AlreadyRevoked) => {}
            Err(StoreError::NotFound) => return Err(not_found_for(key_kind)),
            Err(e) => return Err(AppError::store("revoke key", e)),
        }
        self.evict(ctx.nid, &key_id).await;
        self.metrics.key_revoked(reason.as_str());
        tracing::info!(event = if key_kind == KeyKind::Issued { "IssuedAPIKeyRevoked" } else { "ImportedAPIKeyRevoked" }, nid = %ctx.nid, key_id = %key_id, initiated_by = "self", "API key self-revoked");
        Ok(())
    }

    pub async fn ready(&self) -> Result<(), String> {
        self.store.ping().await.map_err(|e| e.to_string())
    }
}

fn not_found_for(kind: KeyKind) -> AppError {
    match kind {
        KeyKind::Issued => AppError::not_found_issued(),
        KeyKind::Imported => AppError::not_found_imported(),
    }
}

fn valid_key_id(kind: KeyKind, key_id: &str) -> bool {
    match kind {
        KeyKind::Issued => keys::is_issued_key_id(key_id),
        KeyKind::Imported => keys::is_imported_key_id(key_id),
    }
}

fn quota_error(cap: u64, used: u64) -> AppError {
    AppError::new(
        ErrorKind::QuotaExceeded,
        format!("the API key quota for this plan permits up to {cap} active API keys"),
    )
    .with("limit", cap.to_string())
    .with("current_usage", used.to_string())
}

fn page_token_error(e: PageTokenError) -> AppError {
    AppError::bad_request(e.to_string())
}

/// Size cap and routing; the failure verification reports for a credential
/// that cannot be a key at all.
fn precheck_credential<'a>(
    credential: &'a str,
    rt: &RuntimeSettings,
) -> Result<(CredentialKind, Option<keys::ParsedV1<'a>>), VerifyFailure> {
    if credential.is_empty() {
        return Err(VerifyFailure::new(
            VerificationErrorCode::InvalidFormat,
            "A credential is required.",
        ));
    }
    if credential.len() > MAX_CREDENTIAL_BYTES {
        return Err(VerifyFailure::new(
            VerificationErrorCode::InvalidFormat,
            format!("credential must be at most {MAX_CREDENTIAL_BYTES} bytes"),
        ));
    }
    Ok(credential::route_parsed(credential, rt.macaroon_prefixes()))
}

fn check_ip<S: AsRef<str>>(
    cidrs: impl IntoIterator<Item = S>,
    client: Option<IpAddr>,
) -> Result<(), VerifyFailure> {
    match access::check_ip(cidrs, client) {
        IpCheck::Allowed => Ok(()),
        IpCheck::Denied => Err(VerifyFailure::new(
            VerificationErrorCode::IpNotAllowed,
            "request IP not allowed",
        )),
        IpCheck::UnknownClient => Err(VerifyFailure::new(
            VerificationErrorCode::IpNotAllowed,
            "unable to determine client IP",
        )),
        IpCheck::BadConfig => Err(VerifyFailure::new(
            VerificationErrorCode::Internal,
            "invalid CIDR configuration",
        )),
    }
}

/// Checks a raw key for import: size, and that it cannot be mistaken for an
/// issued key or a derived token.
fn check_raw_key(raw: &Secret, rt: &RuntimeSettings) -> Result<(), (ErrorKind, String)> {
    let s = raw.expose();
    if s.is_empty() {
        return Err((ErrorKind::BadRequest, "raw_key is required".into()));
    }
    if s.len() > MAX_CREDENTIAL_BYTES {
        return Err((
            ErrorKind::BadRequest,
            format!("raw_key must be at most {MAX_CREDENTIAL_BYTES} bytes"),
        ));
    }
    match credential::route(s, rt.macaroon_prefixes()) {
        CredentialKind::Issued => Err((
            ErrorKind::Conflict,
            "cannot import key: format conflicts with issued api key pattern".into(),
        )),
        CredentialKind::DerivedJwt | CredentialKind::DerivedMacaroon => Err((
            ErrorKind::FailedPrecondition,
            "cannot import key: format conflicts with derived token pattern".into(),
        )),
        CredentialKind::Imported => Ok(()),
    }
}

fn batch_code(kind: ErrorKind) -> BatchImportErrorCode {
    match kind {
        ErrorKind::BadRequest => BatchImportErrorCode::InvalidArgument,
        ErrorKind::ApiKeyExists | ErrorKind::Conflict => BatchImportErrorCode::AlreadyExists,
        ErrorKind::FailedPrecondition => BatchImportErrorCode::FailedPrecondition,
        _ => BatchImportErrorCode::Internal,
    }
}

/// The error a batch import answers when no item succeeded (spec §4.8).
fn dominant_batch_error(items: &[BatchItem]) -> AppError {
    let count = |code: BatchImportErrorCode| {
        items
            .iter()
            .filter(|i| matches!(i, BatchItem::Failed(c, _) if *c == code))
            .count()
    };
    let mut leader = BatchImportErrorCode::Internal;
    let mut best = count(BatchImportErrorCode::Internal) + count(BatchImportErrorCode::Unspecified);
    for code in [
        BatchImportErrorCode::AlreadyExists,
        BatchImportErrorCode::InvalidArgument,
        BatchImportErrorCode::FailedPrecondition,
        BatchImportErrorCode::ResourceExhausted,
    ] {
        let n = count(code);
        if n > best {
            best = n;
            leader = code;
        }
    }
    match leader {
        BatchImportErrorCode::AlreadyExists => {
            AppError::new(ErrorKind::ApiKeyExists, "all keys in batch already exist")
        }
        BatchImportErrorCode::InvalidArgument => {
            AppError::bad_request("all keys in batch failed validation")
        }
        BatchImportErrorCode::FailedPrecondition => AppError::new(
            ErrorKind::FailedPrecondition,
            "all keys in batch failed precondition checks",
        ),
        BatchImportErrorCode::ResourceExhausted => AppError::new(
            ErrorKind::QuotaExceeded,
            "all keys in batch exceeded the tenant quota",
        ),
        _ => AppError::internal("all keys in batch import failed"),
    }
}

fn check_name(name: &str, allow_empty: bool) -> Result<(), AppError> {
    if !allow_empty && name.trim().is_empty() {
        return Err(AppError::bad_request("name is required"));
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(AppError::bad_request(format!(
            "name must be at most {MAX_NAME_LEN} characters"
        )));
    }
    Ok(())
}

fn check_scopes(scopes: &[String]) -> Result<(), AppError> {
    if scopes.len() > MAX_SCOPES {
        return Err(AppError::bad_request(format!(
            "at most {MAX_SCOPES} scopes are allowed"
        )));
    }
    for s in scopes {
        if s.is_empty()
            || s.len() > MAX_SCOPE_LEN
            || s.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(AppError::bad_request(format!(
                "invalid scope {s:?}: scopes are 1-{MAX_SCOPE_LEN} characters without whitespace"
            )));
        }
    }
    Ok(())
}

fn check_metadata(m: &Map<String, Value>) -> Result<(), AppError> {
    let size = serde_json::to_vec(m).map(|v| v.len()).unwrap_or(usize::MAX);
    if size > access::MAX_METADATA_BYTES {
        return Err(AppError::bad_request(format!(
            "metadata must be at most {} bytes when serialized (got {size})",
            access::MAX_METADATA_BYTES
        )));
    }
    Ok(())
}

fn normalize_cidrs(list: &[String]) -> Result<Vec<String>, AppError> {
    if list.len() > MAX_CIDRS {
        return Err(AppError::bad_request(format!(
            "at most {MAX_CIDRS} CIDRs are allowed"
        )));
    }
    access::normalize_cidrs(list)
        .map_err(|e| AppError::bad_request(format!("ip_restriction.allowed_cidrs: {e}")))
}

fn resolve_rate_limit(r: &RateLimitInput) -> Result<RateLimitPolicy, AppError> {
    let quota = r.quota.unwrap_or(0);
    if quota <= 0 {
        return Err(AppError::bad_request(
            "rate_limit_policy.quota must be greater than 0",
        ));
    }
    if let Some(w) = r.window_secs {
        if w <= 0 {
            return Err(AppError::bad_request(
                "rate_limit_policy.window must be at least 1s",
            ));
        }
    }
    Ok(RateLimitPolicy {
        quota,
        window_secs: r.window_secs,
    })
}

/// Validates a new key's fields and resolves its TTL; the caller fills in
/// kind, id, prefix and visibility.
fn prepare_new_key(
    input: &NewKey,
    rt: &RuntimeSettings,
    now: Timestamp,
) -> Result<ApiKey, AppError> {
    check_name(&input.name, false)?;
    if input.actor_id.trim().is_empty() {
        return Err(AppError::bad_request("actor_id is required"));
    }
    if input.actor_id.chars().count() > MAX_ACTOR_LEN {
        return Err(AppError::bad_request(format!(
            "actor_id must be at most {MAX_ACTOR_LEN} characters"
        )));
    }
    check_scopes(&input.scopes)?;
    check_metadata(&input.metadata)?;
    if let Some(rid) = &input.request_id {
        if rid.chars().count() > access::MAX_REQUEST_ID_LEN {
            return Err(AppError::bad_request(format!(
                "request_id must be at most {} characters",
                access::MAX_REQUEST_ID_LEN
            )));
        }
    }
    let ttl = match input.ttl.filter(|d| !d.is_zero()) {
        Some(ttl) => {
            if ttl < MIN_TTL || ttl > MAX_TTL {
                return Err(AppError::bad_request(
                    "ttl must be between 1s and 315360000s",
                ));
            }
            if let Some(max) = rt.max_ttl {
                if ttl > max {
                    return Err(AppError::bad_request(format!(
                        "ttl exceeds the configured maximum of {}",
                        format_go_duration(max)
                    )));
                }
            }
            Some(ttl)
        }
        None => rt.default_ttl,
    };
    let rate_limit = match &input.rate_limit {
        Some(r) => Some(resolve_rate_limit(r)?),
        None => None,
    };
    Ok(ApiKey {
        nid: NetworkId::NIL,
        kind: KeyKind::Issued,
        key_id: String::new(),
        name: input.name.clone(),
        token_prefix: None,
        actor_id: input.actor_id.clone(),
        scopes: input.scopes.clone(),
        status: KeyStatus::Active,
        metadata: input.metadata.clone(),
        last_used_at: None,
        expires_at: ttl.map(|d| now.plus(d)),
        created_at: now,
        updated_at: now,
        rate_limit,
        revocation_reason: RevocationReason::Unspecified,
        revocation_description: String::new(),
        allowed_cidrs: normalize_cidrs(&input.allowed_cidrs)?,
        request_id: input.request_id.clone().filter(|r| !r.is_empty()),
        visibility: normalize_visibility(input.visibility),
    })
}
