//! Wire types: the protojson shapes of the Talos v2alpha1 API. The same
//! types drive serde (handlers) and utoipa (the OpenAPI document).
//!
//! Conventions (spec §2.1): snake_case names, int64 as JSON strings (numbers
//! accepted on input), durations like `"3600s"`, RFC 3339 timestamps, enum
//! names. Scalars, lists and maps are always emitted (protojson
//! `EmitUnpopulated`); unset message fields (timestamps, policies) are
//! omitted. Requests reject unknown fields.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaFormat, SchemaType, Type};
use utoipa::openapi::{KnownFormat, RefOr};
use utoipa::{PartialSchema, ToSchema};

use crate::app::service::{RateLimitInput, Verified, VerifyFailure, VerifyOutcome};
use crate::domain::duration::{format_proto_duration, parse_window_secs};
use crate::domain::{
    ApiKey, BatchImportErrorCode, KeyStatus, KeyVisibility, RateLimitPolicy, RevocationReason,
    Timestamp, TokenAlgorithm, VerificationErrorCode,
};

// ------------------------------------------------------------------ enums

macro_rules! wire_enum {
    ($($t:ident),+ $(,)?) => {$(
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = $t;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        write!(f, "one of {}", $t::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", "))
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$t, E> {
                        $t::from_wire(v).ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
                    }
                    fn visit_i64<E: de::Error>(self, v: i64) -> Result<$t, E> {
                        i32::try_from(v).ok().and_then($t::from_i32)
                            .ok_or_else(|| E::invalid_value(de::Unexpected::Signed(v), &self))
                    }
                    fn visit_u64<E: de::Error>(self, v: u64) -> Result<$t, E> {
                        i32::try_from(v).ok().and_then($t::from_i32)
                            .ok_or_else(|| E::invalid_value(de::Unexpected::Unsigned(v), &self))
                    }
                    fn visit_unit<E: de::Error>(self) -> Result<$t, E> {
                        Ok($t::default())
                    }
                }
                d.deserialize_any(V)
            }
        }
        impl PartialSchema for $t {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(SchemaType::Type(Type::String))
                    .enum_values(Some($t::ALL.iter().map(|v| v.as_str())))
                    .default(Some(Value::String($t::default().as_str().into())))
                    .into()
            }
        }
        impl ToSchema for $t {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($t))
            }
        }
    )+};
}

wire_enum!(
    KeyStatus,
    KeyVisibility,
    RevocationReason,
    TokenAlgorithm,
    VerificationErrorCode,
    BatchImportErrorCode
);

// ------------------------------------------------------------- scalars

/// int64 as protojson: a JSON string on output, string or number on input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Int64(pub i64);

impl Serialize for Int64 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for Int64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Int64;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an int64 as a JSON number or string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Int64, E> {
                Ok(Int64(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Int64, E> {
                i64::try_from(v)
                    .map(Int64)
                    .map_err(|_| E::custom("int64 out of range"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Int64, E> {
                if v.fract() == 0.0 && v.abs() < 9.007_199_254_740_992e15 {
                    Ok(Int64(v as i64))
                } else {
                    Err(E::custom("int64 must be a whole number"))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Int64, E> {
                v.trim()
                    .parse()
                    .map(Int64)
                    .map_err(|_| E::custom(format!("invalid int64 {v:?}")))
            }
        }
        d.deserialize_any(V)
    }
}

impl PartialSchema for Int64 {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .format(Some(SchemaFormat::Custom("int64".into())))
            .into()
    }
}
impl ToSchema for Int64 {}

/// google.protobuf.Timestamp as RFC 3339.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Time(pub Timestamp);

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse_rfc3339(&s)
            .map(Time)
            .ok_or_else(|| de::Error::custom(format!("invalid RFC 3339 timestamp {s:?}")))
    }
}

impl PartialSchema for Time {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .into()
    }
}
impl ToSchema for Time {}

/// Deserializes a field so that an explicit `null` is distinguishable from
/// an absent field: absent → `None`, null → `Some(None)`.
pub fn double_option<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

// ------------------------------------------------------------ resources

#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitPolicyWire {
    /// Maximum number of requests per window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<Int64>,
    /// Window as a protobuf duration, e.g. `"60s"` (whole seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// Only `requests` is supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

impl RateLimitPolicyWire {
    pub fn from_domain(p: &RateLimitPolicy) -> Self {
        RateLimitPolicyWire {
            quota: Some(Int64(p.quota)),
            window: p
                .window_secs
                .map(|w| format_proto_duration(std::time::Duration::from_secs(w.max(0) as u64))),
            unit: Some("requests".into()),
        }
    }
    pub fn to_input(&self) -> Result<RateLimitInput, String> {
        if let Some(u) = self.unit.as_deref() {
            if !u.is_empty() && u != "requests" {
                return Err(format!(
                    "rate_limit_policy.unit: only \"requests\" is supported, got {u:?}"
                ));
            }
        }
        let window_secs = match self.window.as_deref() {
            None | Some("") => None,
            Some(w) => {
                Some(parse_window_secs(w).map_err(|e| format!("rate_limit_policy.window: {e}"))?)
            }
        };
        Ok(RateLimitInput {
            quota: self.quota.map(|q| q.0),
            window_secs,
        })
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IpRestriction {
    /// CIDR blocks allowed to use the key; empty means unrestricted.
    #[serde(default)]
    pub allowed_cidrs: Vec<String>,
}

macro_rules! key_resource {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
        pub struct $name {
            pub key_id: String,
            pub name: String,
            pub actor_id: String,
            pub scopes: Vec<String>,
            pub status: KeyStatus,
            #[schema(value_type = Object)]
            pub metadata: Map<String, Value>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub expire_time: Option<Time>,
            pub create_time: Time,
            pub update_time: Time,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub last_used_time: Option<Time>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub rate_limit_policy: Option<RateLimitPolicyWire>,
            pub revocation_reason: RevocationReason,
            pub revocation_description: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub ip_restriction: Option<IpRestriction>,
            pub visibility: KeyVisibility,
        }

        impl $name {
            pub fn from_domain(k: &ApiKey, now: Timestamp) -> Self {
                $name {
                    key_id: k.key_id.clone(),
                    name: k.name.clone(),
                    actor_id: k.actor_id.clone(),
                    scopes: k.scopes.clone(),
                    status: k.effective_status(now),
                    metadata: k.metadata.clone(),
                    expire_time: k.expires_at.map(Time),
                    create_time: Time(k.created_at),
                    update_time: Time(k.updated_at),
                    last_used_time: k.last_used_at.map(Time),
                    rate_limit_policy: k.rate_limit.as_ref().map(RateLimitPolicyWire::from_domain),
                    revocation_reason: k.revocation_reason,
                    revocation_description: k.revocation_description.clone(),
                    ip_restriction: (!k.allowed_cidrs.is_empty())
                        .then(|| IpRestriction { allowed_cidrs: k.allowed_cidrs.clone() }),
                    visibility: k.visibility,
                }
            }
        }
    };
}

key_resource!(
    /// An issued API key. The secret is never part of this resource.
    IssuedApiKey
);
key_resource!(
    /// An imported API key, identified by the tenant-scoped SHA-512/256 of the raw key.
    ImportedApiKey
);

// ------------------------------------------------------------- requests

#[derive(Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct IssueApiKeyRequest {
    /// Human-readable name (required).
    pub name: String,
    /// Owner of the key (required).
    pub actor_id: String,
    pub scopes: Vec<String>,
    /// Lifetime, e.g. `"3600s"`, `"24h"`, `"30d"`, `"1y6mo"`; unset uses the configured default.
    pub ttl: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: Option<Map<String, Value>>,
    pub rate_limit_policy: Option<RateLimitPolicyWire>,
    pub ip_restriction: Option<IpRestriction>,
    /// Idempotency key (≤ 36 characters); a replay returns the original key without its secret.
    pub request_id: Option<String>,
    pub visibility: Option<KeyVisibility>,
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct IssueApiKeyResponse {
    pub issued_api_key: IssuedApiKey,
    /// The full API key. Returned only once, at issuance (absent on idempotent replays).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

#[derive(Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ImportApiKeyRequest {
    /// The foreign key to import (≤ 8192 bytes). Stored only as a hash.
    pub raw_key: String,
    pub name: String,
    pub actor_id: String,
    pub scopes: Vec<String>,
    pub ttl: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: Option<Map<String, Value>>,
    pub rate_limit_policy: Option<RateLimitPolicyWire>,
    pub ip_restriction: Option<IpRestriction>,
    pub request_id: Option<String>,
    pub visibility: Option<KeyVisibility>,
}

impl fmt::Debug for ImportApiKeyRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImportApiKeyRequest")
            .field("raw_key", &"***")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchCreateImportedApiKeysRequest {
    /// 1–1000 import requests. Each item is validated on its own; one bad
    /// item never fails the batch.
    #[schema(value_type = Vec<ImportApiKeyRequest>)]
    pub requests: Vec<Value>,
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchCreateImportedApiKeysResult {
    pub index: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imported_api_key: Option<ImportedApiKey>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<BatchImportErrorCode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchCreateImportedApiKeysResponse {
    pub results: Vec<BatchCreateImportedApiKeysResult>,
    pub success_count: i32,
    pub failure_count: i32,
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct ListIssuedApiKeysResponse {
    pub issued_api_keys: Vec<IssuedApiKey>,
    pub next_page_token: String,
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct ListImportedApiKeysResponse {
    pub imported_api_keys: Vec<ImportedApiKey>,
    pub next_page_token: String,
}

/// The body of an update: the resource's fields. Only `name`, `scopes`,
/// `metadata`, `rate_limit_policy` and `ip_restriction` are mutable; the
/// other resource fields are accepted and ignored. The body may also be
/// wrapped as `{"issued_api_key": {…}}` / `{"imported_api_key": {…}}`.
#[derive(Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct UpdateApiKeyBody {
    pub name: Option<String>,
    pub scopes: Option<Vec<String>>,
    #[serde(deserialize_with = "double_option")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Option<Map<String, Value>>>,
    #[serde(deserialize_with = "double_option")]
    #[schema(value_type = Option<RateLimitPolicyWire>)]
    pub rate_limit_policy: Option<Option<RateLimitPolicyWire>>,
    #[serde(deserialize_with = "double_option")]
    #[schema(value_type = Option<IpRestriction>)]
    pub ip_restriction: Option<Option<IpRestriction>>,
    // Read-only resource fields, ignored.
    #[schema(ignore)]
    pub key_id: Option<Value>,
    #[schema(ignore)]
    pub actor_id: Option<Value>,
    #[schema(ignore)]
    pub status: Option<Value>,
    #[schema(ignore)]
    pub expire_time: Option<Value>,
    #[schema(ignore)]
    pub create_time: Option<Value>,
    #[schema(ignore)]
    pub update_time: Option<Value>,
    #[schema(ignore)]
    pub last_used_time: Option<Value>,
    #[schema(ignore)]
    pub revocation_reason: Option<Value>,
    #[schema(ignore)]
    pub revocation_description: Option<Value>,
    #[schema(ignore)]
    pub visibility: Option<Value>,
}

#[derive(Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AdminRotateIssuedApiKeyBody {
    pub name: Option<String>,
    pub scopes: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    pub rate_limit_policy: Option<RateLimitPolicyWire>,
    pub ip_restriction: Option<IpRestriction>,
    pub visibility: Option<KeyVisibility>,
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct RotateIssuedApiKeyResponse {
    pub issued_api_key: IssuedApiKey,
    pub secret: String,
    pub old_issued_api_key: IssuedApiKey,
}

#[derive(Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AdminRevokeApiKeyBody {
    pub reason: RevocationReason,
    /// Only allowed with `REVOCATION_REASON_PRIVILEGE_WITHDRAWN`.
    pub description: String,
}

#[derive(Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct VerifyApiKeyRequest {
    /// The credential to verify: issued or imported key, derived JWT or macaroon (≤ 8192 bytes).
    pub credential: String,
    /// Accept the credential only if it names one of these audiences.
    pub expected_audiences: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct VerifyApiKeyResponse {
    pub is_valid: bool,
    pub key_id: String,
    pub actor_id: String,
    pub scopes: Vec<String>,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expire_time: Option<Time>,
    pub status: KeyStatus,
    pub visibility: KeyVisibility,
    pub issuer: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_policy: Option<RateLimitPolicyWire>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_remaining: Option<Int64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_reset_time: Option<Time>,
    pub error_code: VerificationErrorCode,
    pub error_message: String,
    pub audiences: Vec<String>,
}

impl VerifyApiKeyResponse {
    pub fn from_outcome(o: &VerifyOutcome, issuer: &str) -> Self {
        let mut r = match &o.result {
            Ok(v) => Self::valid(v, issuer),
            Err(f) => Self::invalid(f),
        };
        if let Some(rate) = &o.rate {
            r.rate_limit_remaining = Some(Int64(rate.remaining));
            r.rate_limit_reset_time = Some(Time(rate.reset_at));
        }
        r
    }

    pub fn valid(v: &Verified, issuer: &str) -> Self {
        VerifyApiKeyResponse {
            is_valid: true,
            key_id: v.key_id().to_string(),
            actor_id: v.key.actor_id().to_string(),
            scopes: v.key.scopes().map(str::to_string).collect(),
            metadata: v.key.metadata(),
            expire_time: v.key.expires_at.map(Time),
            status: v.status(),
            visibility: v.visibility,
            issuer: issuer.to_string(),
            rate_limit_policy: v
                .key
                .rate_limit
                .as_ref()
                .map(RateLimitPolicyWire::from_domain),
            rate_limit_remaining: None,
            rate_limit_reset_time: None,
            error_code: VerificationErrorCode::Unspecified,
            error_message: String::new(),
            audiences: v.audiences.clone(),
        }
    }

    /// A failure reveals nothing about the key beyond the error code.
    pub fn invalid(f: &VerifyFailure) -> Self {
        VerifyApiKeyResponse {
            is_valid: false,
            key_id: String::new(),
            actor_id: String::new(),
            scopes: Vec::new(),
            metadata: Map::new(),
            expire_time: None,
            status: KeyStatus::Unspecified,
            visibility: KeyVisibility::Unspecified,
            issuer: String::new(),
            rate_limit_policy: None,
            rate_limit_remaining: None,
            rate_limit_reset_time: None,
            error_code: f.code,
            error_message: f.message.clone(),
            audiences: Vec::new(),
        }
    }
}

/// Serializes a verification exactly as [`VerifyApiKeyResponse`] does
/// (same fields, same order, same omissions), borrowing from the outcome
/// instead of copying the key into owned strings and maps: this is the
/// body the verify handlers send.
pub struct VerifyResponseBody<'a> {
    pub outcome: &'a VerifyOutcome,
    pub issuer: &'a str,
}

/// A key view's scopes as a JSON array, without collecting them.
struct Scopes<'a>(&'a crate::domain::view::KeyView);

impl Serialize for Scopes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.scopes())
    }
}

impl Serialize for VerifyResponseBody<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeStruct};
        let o = self.outcome;
        let rate = o.rate.as_ref();
        let mut st = s.serialize_struct("VerifyApiKeyResponse", 15)?;
        match &o.result {
            Ok(v) => {
                let k = &v.key;
                let metadata: &serde_json::value::RawValue =
                    serde_json::from_str(k.metadata_json()).map_err(S::Error::custom)?;
                st.serialize_field("is_valid", &true)?;
                st.serialize_field("key_id", k.key_id())?;
                st.serialize_field("actor_id", k.actor_id())?;
                st.serialize_field("scopes", &Scopes(k))?;
                st.serialize_field("metadata", metadata)?;
                match k.expires_at {
                    Some(t) => st.serialize_field("expire_time", &Time(t))?,
                    None => st.skip_field("expire_time")?,
                }
                st.serialize_field("status", &v.status())?;
                st.serialize_field("visibility", &v.visibility)?;
                st.serialize_field("issuer", self.issuer)?;
                match &k.rate_limit {
                    Some(p) => st.serialize_field(
                        "rate_limit_policy",
                        &RateLimitPolicyWire::from_domain(p),
                    )?,
                    None => st.skip_field("rate_limit_policy")?,
                }
            }
            Err(_) => {
                st.serialize_field("is_valid", &false)?;
                st.serialize_field("key_id", "")?;
                st.serialize_field("actor_id", "")?;
                st.serialize_field("scopes", &[] as &[&str])?;
                st.serialize_field("metadata", &Map::new())?;
                st.skip_field("expire_time")?;
                st.serialize_field("status", &KeyStatus::Unspecified)?;
                st.serialize_field("visibility", &KeyVisibility::Unspecified)?;
                st.serialize_field("issuer", "")?;
                st.skip_field("rate_limit_policy")?;
            }
        }
        match rate {
            Some(r) => {
                st.serialize_field("rate_limit_remaining", &Int64(r.remaining))?;
                st.serialize_field("rate_limit_reset_time", &Time(r.reset_at))?;
            }
            None => {
                st.skip_field("rate_limit_remaining")?;
                st.skip_field("rate_limit_reset_time")?;
            }
        }
        match &o.result {
            Ok(v) => {
                st.serialize_field("error_code", &VerificationErrorCode::Unspecified)?;
                st.serialize_field("error_message", "")?;
                st.serialize_field("audiences", &v.audiences)?;
            }
            Err(f) => {
                st.serialize_field("error_code", &f.code)?;
                st.serialize_field("error_message", &f.message)?;
                st.serialize_field("audiences", &[] as &[&str])?;
            }
        }
        st.end()
    }
}

impl VerifyResponseBody<'_> {
    /// The body's JSON appended to `out`: the same bytes as serializing it
    /// with serde_json (a test holds them identical), written directly. The
    /// verify response is the hot path's only body, and serde's field by
    /// field calls were about a tenth of the cache hit's instructions
    /// (callgrind, bench/RESULTS.md evening round). Fails only on stored
    /// metadata that is not JSON, as serializing would.
    pub fn write_json(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        use crate::adapters::json_text::push_json_str as str_;
        fn strs<'s>(out: &mut Vec<u8>, items: impl Iterator<Item = &'s str>) {
            out.push(b'[');
            for (i, item) in items.enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                str_(out, item);
            }
            out.push(b']');
        }
        let o = self.outcome;
        match &o.result {
            Ok(v) => {
                let k = &v.key;
                let metadata: &serde_json::value::RawValue =
                    serde_json::from_str(k.metadata_json())?;
                out.extend_from_slice(b"{\"is_valid\":true,\"key_id\":");
                str_(out, k.key_id());
                out.extend_from_slice(b",\"actor_id\":");
                str_(out, k.actor_id());
                out.extend_from_slice(b",\"scopes\":");
                strs(out, k.scopes());
                out.extend_from_slice(b",\"metadata\":");
                out.extend_from_slice(metadata.get().as_bytes());
                if let Some(t) = k.expires_at {
                    out.extend_from_slice(b",\"expire_time\":");
                    str_(out, &t.to_rfc3339());
                }
                out.extend_from_slice(b",\"status\":");
                str_(out, v.status().as_str());
                out.extend_from_slice(b",\"visibility\":");
                str_(out, v.visibility.as_str());
                out.extend_from_slice(b",\"issuer\":");
                str_(out, self.issuer);
                if let Some(p) = &k.rate_limit {
                    out.extend_from_slice(b",\"rate_limit_policy\":");
                    serde_json::to_writer(&mut *out, &RateLimitPolicyWire::from_domain(p))?;
                }
            }
            Err(_) => out.extend_from_slice(
                b"{\"is_valid\":false,\"key_id\":\"\",\"actor_id\":\"\",\"scopes\":[],\"metadata\":{},\"status\":\"KEY_STATUS_UNSPECIFIED\",\"visibility\":\"KEY_VISIBILITY_UNSPECIFIED\",\"issuer\":\"\"",
            ),
        }
        if let Some(r) = &o.rate {
            out.extend_from_slice(b",\"rate_limit_remaining\":\"");
            out.extend_from_slice(itoa::Buffer::new().format(r.remaining).as_bytes());
            out.extend_from_slice(b"\",\"rate_limit_reset_time\":");
            str_(out, &r.reset_at.to_rfc3339());
        }
        match &o.result {
            Ok(v) => {
                out.extend_from_slice(
                    b",\"error_code\":\"VERIFICATION_ERROR_UNSPECIFIED\",\"error_message\":\"\",\"audiences\":",
                );
                strs(out, v.audiences.iter().map(String::as_str));
            }
            Err(f) => {
                out.extend_from_slice(b",\"error_code\":");
                str_(out, f.code.as_str());
                out.extend_from_slice(b",\"error_message\":");
                str_(out, &f.message);
                out.extend_from_slice(b",\"audiences\":[]");
            }
        }
        out.push(b'}');
        Ok(())
    }
}

impl BatchVerifyResponseBody<'_> {
    /// `{"results":[…]}` with each result as [`VerifyResponseBody::write_json`]
    /// writes it.
    pub fn write_json(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        out.extend_from_slice(b"{\"results\":[");
        for (i, r) in self.results.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            r.write_json(out)?;
        }
        out.extend_from_slice(b"]}");
        Ok(())
    }
}

/// The batch verify body, borrowing like [`VerifyResponseBody`].
#[derive(Serialize)]
pub struct BatchVerifyResponseBody<'a> {
    pub results: Vec<VerifyResponseBody<'a>>,
}

#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchVerifyApiKeysRequest {
    /// 1–100 verification requests.
    pub requests: Vec<VerifyApiKeyRequest>,
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchVerifyApiKeysResponse {
    /// One result per request, in request order.
    pub results: Vec<VerifyApiKeyResponse>,
}

#[derive(Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SelfRevokeApiKeyRequest {
    /// The full key, as proof of possession.
    pub credential: String,
    pub reason: RevocationReason,
}

/// An empty message (`google.protobuf.Empty`), serialized as `{}`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct Empty {}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct HealthStatus {
    pub status: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct HealthNotReady {
    /// Failed checks by name.
    #[schema(value_type = Object)]
    pub errors: Map<String, Value>,
}

// ------------------------------------------------------------- errors

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorInfo {
    #[serde(rename = "@type")]
    pub type_url: String,
    pub reason: String,
    pub domain: String,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorStatus {
    /// HTTP status code.
    pub code: u16,
    pub message: String,
    /// Canonical gRPC status name, e.g. `NOT_FOUND`.
    pub status: String,
    pub details: Vec<ErrorInfo>,
}

/// The AIP-193 error envelope of every non-2xx response.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorStatus,
}

// ------------------------------------------------------------ derived tokens

#[derive(Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DeriveTokenRequest {
    /// The parent API key (issued or imported).
    pub credential: String,
    /// `TOKEN_ALGORITHM_JWT` (default) or `TOKEN_ALGORITHM_MACAROON`.
    pub algorithm: TokenAlgorithm,
    /// Token lifetime; default `credentials.derived_tokens.default_ttl`.
    pub ttl: Option<String>,
    /// Subset of the parent's scopes; empty means all of them.
    pub scopes: Vec<String>,
    /// Extra claims; reserved claim names are dropped.
    #[schema(value_type = Option<Object>)]
    pub custom_claims: Option<Map<String, Value>>,
    pub audiences: Vec<String>,
}

impl fmt::Debug for DeriveTokenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeriveTokenRequest")
            .field("credential", &"***")
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct Token {
    /// The signed token.
    pub token: String,
    pub expire_time: Time,
    pub scopes: Vec<String>,
    /// Parent metadata merged with the custom claims.
    #[schema(value_type = Object)]
    pub claims: Map<String, Value>,
    pub audiences: Vec<String>,
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct DeriveTokenResponse {
    pub token: Token,
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct GetJwksResponse {
    /// `{"keys": [...]}`: public keys only.
    #[schema(value_type = Object)]
    pub jwks: Value,
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;
    use uuid::Uuid;

    use super::*;
    use crate::app::service::{CacheStatus, RateInfo};
    use crate::domain::credential::CredentialKind;
    use crate::domain::view::KeyView;
    use crate::domain::{KeyKind, NetworkId};

    fn key(full: bool) -> ApiKey {
        ApiKey {
            nid: NetworkId(Uuid::from_u128(3)),
            kind: KeyKind::Issued,
            key_id: "792b4c1a-1a2d-430b-b733-c789a2b7b1fe".into(),
            name: "n".into(),
            token_prefix: Some("tk".into()),
            actor_id: if full {
                "user-\"1\"\n".into()
            } else {
                String::new()
            },
            scopes: if full {
                vec!["read".into(), "wri\u{e9}te".into()]
            } else {
                vec![]
            },
            status: KeyStatus::Active,
            metadata: if full {
                json!({"plan": "pro", "z": {"a": [1, 2.5, null, true]}, "e": "\\u00e9"})
                    .as_object()
                    .cloned()
                    .unwrap()
            } else {
                Map::new()
            },
            last_used_at: None,
            expires_at: full.then_some(Timestamp(1_800_000_000_123)),
            created_at: Timestamp(1),
            updated_at: Timestamp(1),
            rate_limit: full.then_some(RateLimitPolicy {
                quota: 100,
                window_secs: Some(60),
            }),
            revocation_reason: RevocationReason::Unspecified,
            revocation_description: String::new(),
            allowed_cidrs: vec![],
            request_id: None,
            visibility: if full {
                KeyVisibility::Public
            } else {
                KeyVisibility::Unspecified
            },
        }
    }

    fn outcomes() -> Vec<VerifyOutcome> {
        let rate = RateInfo {
            remaining: 7,
            reset_at: Timestamp(1_700_000_000_000),
            retry_after_ms: None,
        };
        let valid = |full: bool, audiences: Vec<String>| Verified {
            kind: CredentialKind::Issued,
            key: Arc::new(KeyView::of(&key(full))),
            visibility: if full {
                KeyVisibility::Public
            } else {
                KeyVisibility::Secret
            },
            audiences,
        };
        let failure = VerifyFailure::new(VerificationErrorCode::RateLimited, "rate \"limit\"");
        vec![
            VerifyOutcome {
                result: Ok(valid(true, vec!["aud-1".into()])),
                cache: CacheStatus::Hit,
                rate: Some(rate),
            },
            VerifyOutcome {
                result: Ok(valid(false, vec![])),
                cache: CacheStatus::Miss,
                rate: None,
            },
            VerifyOutcome {
                result: Err(failure.clone()),
                cache: CacheStatus::Skip,
                rate: Some(rate),
            },
            VerifyOutcome {
                result: Err(failure),
                cache: CacheStatus::Skip,
                rate: None,
            },
        ]
    }

    #[test]
    fn borrowed_verify_body_is_byte_identical_to_the_schema_type() {
        for o in outcomes() {
            let owned =
                serde_json::to_string(&VerifyApiKeyResponse::from_outcome(&o, "iss")).unwrap();
            let body = serde_json::to_string(&VerifyResponseBody {
                outcome: &o,
                issuer: "iss",
            })
            .unwrap();
            assert_eq!(body, owned);
            let mut direct = Vec::new();
            VerifyResponseBody {
                outcome: &o,
                issuer: "iss",
            }
            .write_json(&mut direct)
            .unwrap();
            assert_eq!(String::from_utf8(direct).unwrap(), owned);
            // And it reads back as the schema type.
            let back: VerifyApiKeyResponse = serde_json::from_str(&body).unwrap();
            assert_eq!(back.is_valid, o.result.is_ok());
        }
        let all = outcomes();
        let body = BatchVerifyResponseBody {
            results: all
                .iter()
                .map(|outcome| VerifyResponseBody {
                    outcome,
                    issuer: "iss",
                })
                .collect(),
        };
        let batch = serde_json::to_string(&body).unwrap();
        let owned = serde_json::to_string(&BatchVerifyApiKeysResponse {
            results: all
                .iter()
                .map(|o| VerifyApiKeyResponse::from_outcome(o, "iss"))
                .collect(),
        })
        .unwrap();
        assert_eq!(batch, owned);
        let mut direct = Vec::new();
        body.write_json(&mut direct).unwrap();
        assert_eq!(String::from_utf8(direct).unwrap(), owned);
    }
}
