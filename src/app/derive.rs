//! Derived tokens: minting JWTs and macaroons from a key (spec §8.1) and
//! verifying them statelessly (§8.5): no database, no cache.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use uuid::Uuid;

use super::error::{AppError, ErrorKind};
use super::service::{App, RequestCtx, Verified, VerifyFailure};
use crate::domain::access::{self, IpCheck};
use crate::domain::credential::{CredentialKind, MAX_CREDENTIAL_BYTES};
use crate::domain::derived::{self, ClaimError, DeriveInput, DerivedClaims};
use crate::domain::duration::format_go_duration;
use crate::domain::view::{metadata_json, KeyView, KeyViewParts};
use crate::domain::{KeyKind, KeyStatus, Secret, Timestamp, TokenAlgorithm, VerificationErrorCode};
use crate::ports::TokenKeys;

pub struct DeriveRequest {
    pub credential: Secret,
    pub algorithm: TokenAlgorithm,
    pub ttl: Option<Duration>,
    pub scopes: Vec<String>,
    pub custom_claims: Map<String, Value>,
    pub audiences: Vec<String>,
}

pub struct DerivedToken {
    pub token: Secret,
    pub expires_at: Timestamp,
    pub scopes: Vec<String>,
    pub claims: Map<String, Value>,
    pub audiences: Vec<String>,
}

/// The signing keys currently in effect (replaced on config reload).
pub type SigningKeysHandle = arc_swap::ArcSwapOption<Box<dyn TokenKeys>>;

fn signature_invalid() -> VerifyFailure {
    VerifyFailure::new(
        VerificationErrorCode::SignatureInvalid,
        "Signature verification failed.",
    )
}

impl App {
    /// Verifies a derived JWT or macaroon without touching storage.
    pub(crate) fn verify_derived(
        &self,
        ctx: &RequestCtx,
        credential: &str,
        kind: CredentialKind,
    ) -> Result<Verified, VerifyFailure> {
        let rt = self.settings();
        let now = self.now();
        let claims: DerivedClaims = match kind {
            CredentialKind::DerivedJwt => {
                let keys = self
                    .signing_keys()
                    .load_full()
                    .ok_or_else(signature_invalid)?;
                keys.verify_jwt(credential)
                    .map_err(|_| signature_invalid())?
            }
            CredentialKind::DerivedMacaroon => {
                let roots: Vec<[u8; 32]> = rt.secrets.active_macaroon_roots(now).copied().collect();
                derived::verify_macaroon(
                    credential,
                    rt.macaroon_prefixes(),
                    &roots,
                    now,
                    ctx.client_ip,
                )
                .map_err(|_| signature_invalid())?
            }
            _ => return Err(signature_invalid()),
        };
        let issuers = rt.accepted_issuers(now);
        derived::check_claims(&claims, &issuers, ctx.nid, now, rt.clock_skew).map_err(
            |e| match e {
                ClaimError::TokenType => VerifyFailure::new(
                    VerificationErrorCode::InvalidFormat,
                    "The token type is invalid.",
                ),
                ClaimError::NetworkMismatch => VerifyFailure::new(
                    VerificationErrorCode::NotFound,
                    "token not valid for this network",
                ),
                ClaimError::Expired => {
                    VerifyFailure::new(VerificationErrorCode::Expired, "The token has expired.")
                }
                _ => signature_invalid(),
            },
        )?;
        let id = claims.identity();
        match access::check_ip(&id.allowed_cidrs, ctx.client_ip) {
            IpCheck::Allowed => {}
            IpCheck::UnknownClient => {
                return Err(VerifyFailure::new(
                    VerificationErrorCode::IpNotAllowed,
                    "unable to determine client IP",
                ))
            }
            IpCheck::Denied => {
                return Err(VerifyFailure::new(
                    VerificationErrorCode::IpNotAllowed,
                    "request IP not allowed",
                ))
            }
            IpCheck::BadConfig => return Err(signature_invalid()),
        }
        let metadata = metadata_json(&id.metadata);
        let view = KeyView::new(KeyViewParts {
            nid: ctx.nid,
            kind: KeyKind::Issued,
            status: KeyStatus::Active,
            visibility: id.visibility,
            expires_at: id.expires_at,
            rate_limit: None,
            key_id: &id.key_id,
            actor_id: &id.actor_id,
            metadata_json: &metadata,
            scopes: &id.scopes,
            allowed_cidrs: &[],
        });
        Ok(Verified {
            kind,
            key: Arc::new(view),
            visibility: id.visibility,
            audiences: id.audiences,
        })
    }

    /// The public JWKS: `{"keys": [...]}` (empty when no keys are configured).
    pub fn jwks(&self) -> Value {
        match self.signing_keys().load_full() {
            Some(k) => k.public_jwks(),
            None => serde_json::json!({ "keys": [] }),
        }
    }

    /// `POST /v2alpha1/admin/apiKeys:derive`.
    pub async fn derive(
        &self,
        ctx: &RequestCtx,
        req: DeriveRequest,
    ) -> Result<DerivedToken, AppError> {
        let cred = req.credential.expose();
        if cred.is_empty() {
            return Err(AppError::new(
                ErrorKind::CredentialRequired,
                "A credential is required.",
            ));
        }
        if cred.len() > MAX_CREDENTIAL_BYTES {
            return Err(AppError::bad_request(format!(
                "credential must be at most {MAX_CREDENTIAL_BYTES} bytes"
            )));
        }
        let rt = self.settings();
        let now = self.now();
        let ttl = req
            .ttl
            .filter(|t| !t.is_zero())
            .unwrap_or(rt.derived_default_ttl);
        if let Some(max) = rt.max_ttl {
            if ttl > max {
                return Err(AppError::bad_request(format!(
                    "ttl exceeds the configured maximum of {}",
                    format_go_duration(max)
                )));
            }
        }
        let parent = self.authenticate_parent(ctx, cred).await?;
        if let Some(exp) = parent.expires_at {
            let remaining = now.until(exp);
            if remaining.is_zero() {
                return Err(AppError::new(
                    ErrorKind::FailedPrecondition,
                    "cannot derive token from expired parent key",
                ));
            }
            if ttl > remaining {
                return Err(AppError::bad_request(format!(
                    "derived token ttl ({}) exceeds parent key remaining lifetime ({})",
                    format_go_duration(ttl),
                    format_go_duration(Duration::from_secs(remaining.as_secs()))
                )));
            }
        }
        let scopes = if req.scopes.is_empty() {
            parent.scopes.clone()
        } else {
            access::scopes_subset(&req.scopes, &parent.scopes).map_err(|s| {
                AppError::new(
                    ErrorKind::Forbidden,
                    format!("requested scope '{s}' not available in parent key"),
                )
            })?;
            req.scopes.clone()
        };
        for a in &req.audiences {
            if a.is_empty() || a.len() > 256 {
                return Err(AppError::bad_request("audiences must be 1-256 characters"));
            }
        }
        let custom = derived::strip_reserved(&req.custom_claims);
        let claims = derived::build_claims(DeriveInput {
            parent: &parent,
            jti: Uuid::new_v4().as_hyphenated().to_string(),
            issuer: &rt.issuer,
            now,
            ttl,
            scopes: scopes.clone(),
            custom_claims: custom.clone(),
            audiences: req.audiences.clone(),
        });
        let (token, algorithm) = match req.algorithm {
            TokenAlgorithm::Macaroon => (
                derived::mint_macaroon(
                    rt.secrets.current_macaroon_root(),
                    rt.macaroon_prefix(),
                    &claims,
                ),
                "macaroon",
            ),
            _ => {
                let keys = self.signing_keys().load_full().ok_or_else(|| {
                    AppError::internal("get signing key")
                        .with("detail", "no signing key URLs configured")
                })?;
                let t = keys.sign_jwt(&rt.signing_key_id, &claims).map_err(|e| {
                    tracing::error!(error = %e, "JWT signing failed");
                    AppError::internal("get signing key")
                })?;
                (t, "jwt")
            }
        };
        if token.len() > MAX_CREDENTIAL_BYTES {
            return Err(AppError::bad_request(format!(
                "the derived token would be {} bytes, more than the {MAX_CREDENTIAL_BYTES}-byte limit; use fewer claims",
                token.len()
            )));
        }
        self.metrics().token_derived(algorithm);
        tracing::info!(event = "APIKeyDerivedToken", nid = %ctx.nid, key_id = %parent.key_id, algorithm, ttl = %format_go_duration(ttl), "derived token minted");
        let mut merged = parent.metadata.clone();
        for (k, v) in custom {
            merged.insert(k, v);
        }
        Ok(DerivedToken {
            token: Secret::new(token),
            expires_at: now.plus(ttl),
            scopes,
            claims: merged,
            audiences: req.audiences,
        })
    }

    /// Verifies the parent credential (bypassing the cache read) and loads
    /// the stored key. Derived tokens cannot be parents.
    async fn authenticate_parent(
        &self,
        ctx: &RequestCtx,
        cred: &str,
    ) -> Result<crate::domain::ApiKey, AppError> {
        let mut no_cache = *ctx;
        no_cache.cache = super::service::CacheDirective::NoCache;
        let outcome = self.verify(&no_cache, cred).await;
        let v = match outcome.result {
            Ok(v) => v,
            Err(f) if f.code == VerificationErrorCode::Revoked => {
                return Err(AppError::new(ErrorKind::Forbidden, "key is revoked"))
            }
            Err(f) if f.code == VerificationErrorCode::Internal => {
                return Err(AppError::new(ErrorKind::Unavailable, f.message))
            }
            Err(_) => return Err(AppError::new(ErrorKind::Unauthorized, "verify API key")),
        };
        let kind = match v.kind {
            CredentialKind::Issued => crate::domain::KeyKind::Issued,
            CredentialKind::Imported => crate::domain::KeyKind::Imported,
            CredentialKind::DerivedJwt | CredentialKind::DerivedMacaroon => {
                return Err(AppError::bad_request(
                    "a derived token cannot be used to derive another token",
                ))
            }
        };
        self.store()
            .get(ctx.nid, kind, v.key_id())
            .await
            .map_err(|e| AppError::store("verify API key", e))?
            .ok_or_else(|| AppError::new(ErrorKind::Unauthorized, "verify API key"))
    }
}

/// Loads signing keys from the configured URLs; `None` when none are set.
pub fn load_signing_keys(urls: &[Secret]) -> Result<Option<Arc<Box<dyn TokenKeys>>>, String> {
    if urls.is_empty() {
        return Ok(None);
    }
    let plain: Vec<String> = urls.iter().map(|u| u.expose().to_string()).collect();
    let keys = crate::adapters::jwks::SigningKeys::load(&plain).map_err(|e| e.to_string())?;
    Ok(Some(Arc::new(Box::new(keys) as Box<dyn TokenKeys>)))
}
