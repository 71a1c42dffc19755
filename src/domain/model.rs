//! The API-key record and its enums, as the rest of the domain sees them.
//!
//! Issued and imported keys share one field set (spec §5.1); `KeyKind` tells
//! them apart. Timestamps are UTC instants with millisecond precision, which
//! every backend stores losslessly as a BIGINT.

use std::fmt;

use serde_json::{Map, Value};
use uuid::Uuid;

/// A point in time: milliseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }
    pub const fn from_secs(s: i64) -> Self {
        Timestamp(s.saturating_mul(1000))
    }
    pub const fn millis(self) -> i64 {
        self.0
    }
    pub const fn secs(self) -> i64 {
        self.0.div_euclid(1000)
    }
    pub fn plus(self, d: std::time::Duration) -> Self {
        Timestamp(
            self.0
                .saturating_add(d.as_millis().min(i64::MAX as u128) as i64),
        )
    }
    pub fn minus(self, d: std::time::Duration) -> Self {
        Timestamp(
            self.0
                .saturating_sub(d.as_millis().min(i64::MAX as u128) as i64),
        )
    }
    /// Time from `self` until `later`, zero if `later` is not after `self`.
    pub fn until(self, later: Timestamp) -> std::time::Duration {
        std::time::Duration::from_millis(later.0.saturating_sub(self.0).max(0) as u64)
    }
    /// RFC 3339 in UTC, as protojson prints `google.protobuf.Timestamp`:
    /// `2025-06-15T10:30:00Z`, with `.mmm` only when milliseconds are non-zero.
    pub fn to_rfc3339(self) -> String {
        let nanos = (self.0 as i128) * 1_000_000;
        let dt = time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let (y, mo, d) = (dt.year(), dt.month() as u8, dt.day());
        let (h, mi, s) = (dt.hour(), dt.minute(), dt.second());
        let ms = dt.millisecond();
        if ms == 0 {
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
        } else {
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
        }
    }
    /// Parses an RFC 3339 timestamp with any offset; sub-millisecond digits are dropped.
    pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
        let dt =
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
        Some(Timestamp((dt.unix_timestamp_nanos() / 1_000_000) as i64))
    }
}

/// The tenant a request belongs to. OSS builds only ever see the nil UUID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetworkId(pub Uuid);

impl NetworkId {
    pub const NIL: NetworkId = NetworkId(Uuid::nil());
    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl fmt::Display for NetworkId {
    /// Canonical lowercase hyphenated form, the form hashed into imported key ids.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.as_hyphenated().fmt(f)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyKind {
    Issued,
    Imported,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Issued => "issued",
            KeyKind::Imported => "imported",
        }
    }
}

/// Declares a proto-style enum with its wire names and stored ordinals.
macro_rules! proto_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $num:literal => $wire:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
        pub enum $name {
            #[default]
            $($variant),+
        }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }
            pub fn from_wire(s: &str) -> Option<Self> {
                match s { $($wire => Some($name::$variant),)+ _ => None }
            }
            pub fn as_i32(self) -> i32 {
                match self { $($name::$variant => $num),+ }
            }
            pub fn from_i32(n: i32) -> Option<Self> {
                match n { $($num => Some($name::$variant),)+ _ => None }
            }
        }
    };
}

proto_enum!(
    /// Lifecycle state. `Expired` is never stored; it is computed on read.
    KeyStatus {
        Unspecified = 0 => "KEY_STATUS_UNSPECIFIED",
        Active = 1 => "KEY_STATUS_ACTIVE",
        Revoked = 2 => "KEY_STATUS_REVOKED",
        Expired = 3 => "KEY_STATUS_EXPIRED",
    }
);

proto_enum!(KeyVisibility {
    Unspecified = 0 => "KEY_VISIBILITY_UNSPECIFIED",
    Secret = 1 => "KEY_VISIBILITY_SECRET",
    Public = 2 => "KEY_VISIBILITY_PUBLIC",
});

proto_enum!(RevocationReason {
    Unspecified = 0 => "REVOCATION_REASON_UNSPECIFIED",
    KeyCompromise = 1 => "REVOCATION_REASON_KEY_COMPROMISE",
    AffiliationChanged = 2 => "REVOCATION_REASON_AFFILIATION_CHANGED",
    Superseded = 3 => "REVOCATION_REASON_SUPERSEDED",
    PrivilegeWithdrawn = 4 => "REVOCATION_REASON_PRIVILEGE_WITHDRAWN",
});

proto_enum!(TokenAlgorithm {
    Unspecified = 0 => "TOKEN_ALGORITHM_UNSPECIFIED",
    Jwt = 1 => "TOKEN_ALGORITHM_JWT",
    Macaroon = 2 => "TOKEN_ALGORITHM_MACAROON",
});

proto_enum!(VerificationErrorCode {
    Unspecified = 0 => "VERIFICATION_ERROR_UNSPECIFIED",
    InvalidFormat = 1 => "VERIFICATION_ERROR_INVALID_FORMAT",
    Expired = 2 => "VERIFICATION_ERROR_EXPIRED",
    Revoked = 3 => "VERIFICATION_ERROR_REVOKED",
    NotFound = 4 => "VERIFICATION_ERROR_NOT_FOUND",
    SignatureInvalid = 5 => "VERIFICATION_ERROR_SIGNATURE_INVALID",
    Internal = 6 => "VERIFICATION_ERROR_INTERNAL",
    IpNotAllowed = 7 => "VERIFICATION_ERROR_IP_NOT_ALLOWED",
    RateLimited = 8 => "VERIFICATION_ERROR_RATE_LIMITED",
    AudienceMismatch = 9 => "VERIFICATION_ERROR_AUDIENCE_MISMATCH",
});

proto_enum!(BatchImportErrorCode {
    Unspecified = 0 => "BATCH_CREATE_IMPORTED_API_KEYS_ERROR_UNSPECIFIED",
    InvalidArgument = 1 => "BATCH_CREATE_IMPORTED_API_KEYS_ERROR_INVALID_ARGUMENT",
    AlreadyExists = 2 => "BATCH_CREATE_IMPORTED_API_KEYS_ERROR_ALREADY_EXISTS",
    FailedPrecondition = 3 => "BATCH_CREATE_IMPORTED_API_KEYS_ERROR_FAILED_PRECONDITION",
    Internal = 4 => "BATCH_CREATE_IMPORTED_API_KEYS_ERROR_INTERNAL",
    ResourceExhausted = 5 => "BATCH_CREATE_IMPORTED_API_KEYS_ERROR_RESOURCE_EXHAUSTED",
});

/// Per-key rate-limit policy (spec §5.4). `window_secs` is whole seconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimitPolicy {
    pub quota: i64,
    pub window_secs: Option<i64>,
}

/// One stored API key, issued or imported. Holds no secret material.
#[derive(Clone, PartialEq)]
pub struct ApiKey {
    pub nid: NetworkId,
    pub kind: KeyKind,
    /// Issued: lowercase UUID v4. Imported: 64 lowercase hex chars.
    pub key_id: String,
    pub name: String,
    /// Issued keys only: the prefix the key was minted with.
    pub token_prefix: Option<String>,
    /// Empty means "no owner" (stored as NULL).
    pub actor_id: String,
    pub scopes: Vec<String>,
    pub status: KeyStatus,
    pub metadata: Map<String, Value>,
    pub last_used_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub rate_limit: Option<RateLimitPolicy>,
    pub revocation_reason: RevocationReason,
    pub revocation_description: String,
    /// Normalised CIDR strings (`10.0.0.0/8`); empty means unrestricted.
    pub allowed_cidrs: Vec<String>,
    pub request_id: Option<String>,
    pub visibility: KeyVisibility,
}

impl fmt::Debug for ApiKey {
    // Written by hand so that metadata (which may hold customer data) and the
    // idempotency key stay out of logs; nothing here is a secret, but a short
    // Debug keeps log lines readable.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("nid", &self.nid)
            .field("kind", &self.kind)
            .field("key_id", &self.key_id)
            .field("status", &self.status)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl ApiKey {
    /// Status as reported on read: a stored ACTIVE key past its expiry is EXPIRED.
    pub fn effective_status(&self, now: Timestamp) -> KeyStatus {
        match (self.status, self.expires_at) {
            (KeyStatus::Active, Some(exp)) if now > exp => KeyStatus::Expired,
            (s, _) => s,
        }
    }
}

/// A secret string (HMAC secret, raw API key, DSN password…) that never
/// prints itself.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip() {
        let t = Timestamp::from_secs(1_750_000_000);
        assert_eq!(t.to_rfc3339(), "2025-06-15T15:06:40Z");
        assert_eq!(Timestamp::parse_rfc3339("2025-06-15T15:06:40Z"), Some(t));
        let t2 = Timestamp::from_millis(1_750_000_000_123);
        assert_eq!(t2.to_rfc3339(), "2025-06-15T15:06:40.123Z");
        assert_eq!(Timestamp::parse_rfc3339(&t2.to_rfc3339()), Some(t2));
        assert_eq!(
            Timestamp::parse_rfc3339("2025-06-15T17:06:40+02:00"),
            Some(t)
        );
    }

    #[test]
    fn enums_round_trip() {
        for s in KeyStatus::ALL {
            assert_eq!(KeyStatus::from_wire(s.as_str()), Some(*s));
            assert_eq!(KeyStatus::from_i32(s.as_i32()), Some(*s));
        }
        assert_eq!(
            RevocationReason::from_i32(4),
            Some(RevocationReason::PrivilegeWithdrawn)
        );
        assert_eq!(KeyVisibility::from_wire("nope"), None);
    }

    #[test]
    fn secret_debug_is_masked() {
        let s = Secret::new("super-secret-value");
        assert!(!format!("{s:?}").contains("super"));
    }

    #[test]
    fn effective_status_computes_expired() {
        let mut k = sample();
        k.expires_at = Some(Timestamp(1000));
        assert_eq!(k.effective_status(Timestamp(999)), KeyStatus::Active);
        assert_eq!(k.effective_status(Timestamp(1001)), KeyStatus::Expired);
        k.status = KeyStatus::Revoked;
        assert_eq!(k.effective_status(Timestamp(1001)), KeyStatus::Revoked);
    }

    pub(crate) fn sample() -> ApiKey {
        ApiKey {
            nid: NetworkId::NIL,
            kind: KeyKind::Issued,
            key_id: "792b4c1a-1a2d-430b-b733-c789a2b7b1fe".into(),
            name: "n".into(),
            token_prefix: Some("talos".into()),
            actor_id: "a".into(),
            scopes: vec![],
            status: KeyStatus::Active,
            metadata: Map::new(),
            last_used_at: None,
            expires_at: None,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
            rate_limit: None,
            revocation_reason: RevocationReason::Unspecified,
            revocation_description: String::new(),
            allowed_cidrs: vec![],
            request_id: None,
            visibility: KeyVisibility::Secret,
        }
    }
}
