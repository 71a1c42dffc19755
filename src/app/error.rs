//! The one application error type. Every use case returns it; the HTTP
//! adapter maps it to the AIP-193 envelope in exactly one place.

use std::fmt;

use crate::ports::StoreError;

/// Error identities from the spec's error catalogue (§14.1). Each has a
/// stable id (upper-cased into `ErrorInfo.reason`), an HTTP status and a
/// canonical gRPC status name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    BadRequest,
    CredentialRequired,
    DerivedTokenNotRevocable,
    InvalidTokenType,
    ApiKeyExpired,
    ApiKeyRevoked,
    SignatureInvalid,
    Unauthorized,
    QuotaExceeded,
    Forbidden,
    IpNotAllowed,
    PaymentRequired,
    ApiKeyNotFound,
    NotFound,
    ApiKeyExists,
    Conflict,
    FailedPrecondition,
    PayloadTooLarge,
    TooManyRequests,
    MethodNotAllowed,
    Internal,
    BadGateway,
    Unavailable,
    Timeout,
}

impl ErrorKind {
    pub fn id(self) -> &'static str {
        use ErrorKind::*;
        match self {
            BadRequest => "bad_request",
            CredentialRequired => "credential_required",
            DerivedTokenNotRevocable => "derived_token_not_revocable",
            InvalidTokenType => "invalid_token_type",
            ApiKeyExpired => "api_key_expired",
            ApiKeyRevoked => "api_key_revoked",
            SignatureInvalid => "signature_invalid",
            Unauthorized => "unauthorized",
            QuotaExceeded => "api_key_quota_exceeded",
            Forbidden => "forbidden",
            IpNotAllowed => "ip_not_allowed",
            PaymentRequired => "payment_required",
            ApiKeyNotFound => "api_key_not_found",
            NotFound => "not_found",
            ApiKeyExists => "api_key_exists",
            Conflict => "conflict",
            FailedPrecondition => "failed_precondition",
            PayloadTooLarge => "payload_too_large",
            TooManyRequests => "too_many_requests",
            MethodNotAllowed => "method_not_allowed",
            Internal => "internal_server_error",
            BadGateway => "bad_gateway",
            Unavailable => "service_unavailable",
            Timeout => "gateway_timeout",
        }
    }

    pub fn http_status(self) -> u16 {
        use ErrorKind::*;
        match self {
            BadRequest | CredentialRequired | DerivedTokenNotRevocable | InvalidTokenType => 400,
            ApiKeyExpired | ApiKeyRevoked | SignatureInvalid | Unauthorized => 401,
            QuotaExceeded => 402,
            Forbidden | IpNotAllowed | PaymentRequired => 403,
            ApiKeyNotFound | NotFound => 404,
            MethodNotAllowed => 405,
            ApiKeyExists | Conflict | FailedPrecondition => 409,
            PayloadTooLarge => 413,
            TooManyRequests => 429,
            Internal => 500,
            BadGateway => 502,
            Unavailable => 503,
            Timeout => 504,
        }
    }

    pub fn grpc_status(self) -> &'static str {
        use ErrorKind::*;
        match self {
            BadRequest | CredentialRequired | DerivedTokenNotRevocable | InvalidTokenType => {
                "INVALID_ARGUMENT"
            }
            ApiKeyExpired | ApiKeyRevoked | SignatureInvalid | Unauthorized => "UNAUTHENTICATED",
            QuotaExceeded | Forbidden | IpNotAllowed | PaymentRequired => "PERMISSION_DENIED",
            ApiKeyNotFound | NotFound => "NOT_FOUND",
            ApiKeyExists | Conflict => "ALREADY_EXISTS",
            FailedPrecondition => "FAILED_PRECONDITION",
            PayloadTooLarge | TooManyRequests => "RESOURCE_EXHAUSTED",
            MethodNotAllowed => "UNIMPLEMENTED",
            Internal => "INTERNAL",
            Unavailable | BadGateway => "UNAVAILABLE",
            Timeout => "DEADLINE_EXCEEDED",
        }
    }
}

/// An error a client sees: kind + human message + optional string metadata
/// for `ErrorInfo.metadata`. Messages never carry key material.
#[derive(Clone, PartialEq, Eq)]
pub struct AppError {
    pub kind: ErrorKind,
    pub message: String,
    pub metadata: Vec<(&'static str, String)>,
}

impl AppError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        AppError {
            kind,
            message: message.into(),
            metadata: Vec::new(),
        }
    }
    pub fn with(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.metadata.push((key, value.into()));
        self
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
    pub fn not_found_issued() -> Self {
        Self::new(ErrorKind::ApiKeyNotFound, "API key not found")
    }
    pub fn not_found_imported() -> Self {
        Self::new(ErrorKind::ApiKeyNotFound, "imported key not found")
    }

    /// Maps a store error for operation `op` (e.g. "create API key").
    /// Internal details are logged here, once, and never sent to clients.
    pub fn store(op: &'static str, e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::new(ErrorKind::ApiKeyNotFound, "API key not found"),
            StoreError::Conflict => Self::new(ErrorKind::ApiKeyExists, "identifier already exists"),
            StoreError::AlreadyRevoked => Self::new(ErrorKind::Conflict, "key is already revoked"),
            StoreError::NotActive => Self::new(
                ErrorKind::FailedPrecondition,
                "cannot rotate a non-active key",
            ),
            StoreError::Timeout => {
                tracing::warn!(operation = op, "database operation timed out");
                Self::new(ErrorKind::Timeout, "database operation timed out")
            }
            StoreError::Unavailable(detail) => {
                tracing::warn!(operation = op, error = %detail, "database connection failed");
                Self::new(ErrorKind::Unavailable, "database connection failed")
            }
            StoreError::Schema(detail) | StoreError::Other(detail) => {
                tracing::error!(operation = op, error = %detail, "database error");
                Self::internal(op)
            }
        }
    }
}

impl fmt::Debug for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.id(), self.message)
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AppError {}
