//! The compact, immutable form of a key that verification needs: what the
//! cache holds and what a successful verification returns.
//!
//! One `KeyView` is two heap blocks (the struct behind its `Arc`, and one
//! text buffer with its offsets appended) instead of the ~15 an [`ApiKey`]
//! owns; the metadata is kept as its serialized JSON, which is what every
//! reader (the HTTP response, Redis) wants anyway.

use std::fmt;

use serde_json::{Map, Value};
use uuid::Uuid;

use super::keys::issued_key_uuid;

use super::model::{
    ApiKey, KeyKind, KeyStatus, KeyVisibility, NetworkId, RateLimitPolicy, Timestamp,
};

/// A verified key's public facts, in one buffer.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyView {
    pub nid: NetworkId,
    pub kind: KeyKind,
    pub status: KeyStatus,
    pub visibility: KeyVisibility,
    pub expires_at: Option<Timestamp>,
    pub rate_limit: Option<RateLimitPolicy>,
    /// `key_id ‖ actor_id ‖ metadata JSON ‖ scopes… ‖ cidrs…`
    text: Box<str>,
    /// End offset in `text` of each of those parts, in that order.
    ends: Box<[u32]>,
    scope_count: u32,
    /// The key id's binary form when it is an issued key's canonical UUID:
    /// what a cache compares instead of reading `text`.
    issued_uuid: Option<Uuid>,
}

/// The parts a [`KeyView`] is built from (owned or borrowed strings).
pub struct KeyViewParts<'a, S: AsRef<str>> {
    pub nid: NetworkId,
    pub kind: KeyKind,
    pub status: KeyStatus,
    pub visibility: KeyVisibility,
    pub expires_at: Option<Timestamp>,
    pub rate_limit: Option<RateLimitPolicy>,
    pub key_id: &'a str,
    pub actor_id: &'a str,
    /// Serialized JSON object (`{}` when empty).
    pub metadata_json: &'a str,
    pub scopes: &'a [S],
    pub allowed_cidrs: &'a [S],
}

impl KeyView {
    /// Builds a view. Panics only if the text exceeds 4 GiB, which the
    /// request size limits make impossible.
    pub fn new<S: AsRef<str>>(p: KeyViewParts<'_, S>) -> Self {
        let fixed = [p.key_id, p.actor_id, p.metadata_json];
        let len: usize = fixed.iter().map(|s| s.len()).sum::<usize>()
            + p.scopes.iter().map(|s| s.as_ref().len()).sum::<usize>()
            + p.allowed_cidrs
                .iter()
                .map(|s| s.as_ref().len())
                .sum::<usize>();
        let mut text = String::with_capacity(len);
        let mut ends = Vec::with_capacity(3 + p.scopes.len() + p.allowed_cidrs.len());
        let parts = fixed
            .into_iter()
            .chain(p.scopes.iter().map(AsRef::as_ref))
            .chain(p.allowed_cidrs.iter().map(AsRef::as_ref));
        for part in parts {
            text.push_str(part);
            ends.push(u32::try_from(text.len()).expect("key view text under 4 GiB"));
        }
        KeyView {
            nid: p.nid,
            kind: p.kind,
            status: p.status,
            visibility: p.visibility,
            expires_at: p.expires_at,
            rate_limit: p.rate_limit,
            text: text.into_boxed_str(),
            ends: ends.into_boxed_slice(),
            scope_count: p.scopes.len() as u32,
            issued_uuid: issued_key_uuid(p.key_id),
        }
    }

    /// The view of a stored key.
    pub fn of(k: &ApiKey) -> Self {
        let metadata = metadata_json(&k.metadata);
        KeyView::new(KeyViewParts {
            nid: k.nid,
            kind: k.kind,
            status: k.status,
            visibility: k.visibility,
            expires_at: k.expires_at,
            rate_limit: k.rate_limit.clone(),
            key_id: &k.key_id,
            actor_id: &k.actor_id,
            metadata_json: &metadata,
            scopes: &k.scopes,
            allowed_cidrs: &k.allowed_cidrs,
        })
    }

    fn part(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.text[start..self.ends[i] as usize]
    }

    fn parts(&self, from: usize, count: usize) -> impl ExactSizeIterator<Item = &str> + '_ {
        (from..from + count).map(move |i| self.part(i))
    }

    pub fn key_id(&self) -> &str {
        self.part(0)
    }

    /// The key id as a UUID, when it is in an issued key's canonical form.
    pub fn issued_uuid(&self) -> Option<Uuid> {
        self.issued_uuid
    }

    pub fn actor_id(&self) -> &str {
        self.part(1)
    }

    /// The metadata as a serialized JSON object.
    pub fn metadata_json(&self) -> &str {
        self.part(2)
    }

    /// The metadata, parsed (allocates; the hot path uses the JSON).
    pub fn metadata(&self) -> Map<String, Value> {
        serde_json::from_str(self.metadata_json()).unwrap_or_default()
    }

    pub fn scopes(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.parts(3, self.scope_count as usize)
    }

    pub fn allowed_cidrs(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        let from = 3 + self.scope_count as usize;
        self.parts(from, self.ends.len() - from)
    }

    /// Heap bytes this view owns, struct included (for a cache's weigher).
    pub fn heap_size(&self) -> usize {
        std::mem::size_of::<Self>() + self.text.len() + self.ends.len() * 4
    }
}

/// Serialized form of a metadata map, `{}` when empty.
pub fn metadata_json(m: &Map<String, Value>) -> String {
    if m.is_empty() {
        return "{}".to_string();
    }
    serde_json::to_string(m).unwrap_or_else(|_| "{}".to_string())
}

impl fmt::Debug for KeyView {
    // Metadata may hold customer data: keep it out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyView")
            .field("nid", &self.nid)
            .field("kind", &self.kind)
            .field("key_id", &self.key_id())
            .field("status", &self.status)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use uuid::Uuid;

    use super::*;

    fn key(scopes: &[&str], cidrs: &[&str], metadata: Value) -> ApiKey {
        ApiKey {
            nid: NetworkId(Uuid::from_u128(7)),
            kind: KeyKind::Issued,
            key_id: "792b4c1a-1a2d-430b-b733-c789a2b7b1fe".into(),
            name: "n".into(),
            token_prefix: Some("tk".into()),
            actor_id: "actor-ü".into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            status: KeyStatus::Active,
            metadata: metadata.as_object().cloned().unwrap_or_default(),
            last_used_at: None,
            expires_at: Some(Timestamp(1_700_000_000_000)),
            created_at: Timestamp(1),
            updated_at: Timestamp(2),
            rate_limit: Some(RateLimitPolicy {
                quota: 10,
                window_secs: Some(60),
            }),
            revocation_reason: Default::default(),
            revocation_description: String::new(),
            allowed_cidrs: cidrs.iter().map(|s| s.to_string()).collect(),
            request_id: None,
            visibility: KeyVisibility::Public,
        }
    }

    #[test]
    fn round_trips_every_part() {
        let k = key(
            &["read", "", "write:all"],
            &["10.0.0.0/8", "::1/128"],
            json!({"plan": "pro", "n": [1, 2], "s": "a\"b"}),
        );
        let v = KeyView::of(&k);
        assert_eq!(v.key_id(), k.key_id);
        assert_eq!(v.actor_id(), "actor-ü");
        assert_eq!(v.scopes().collect::<Vec<_>>(), ["read", "", "write:all"]);
        assert_eq!(
            v.allowed_cidrs().collect::<Vec<_>>(),
            ["10.0.0.0/8", "::1/128"]
        );
        assert_eq!(v.metadata(), k.metadata);
        assert_eq!(
            serde_json::from_str::<Value>(v.metadata_json()).unwrap(),
            json!({"plan": "pro", "n": [1, 2], "s": "a\"b"})
        );
        assert_eq!((v.nid, v.kind, v.status), (k.nid, k.kind, k.status));
        assert_eq!((v.expires_at, &v.rate_limit), (k.expires_at, &k.rate_limit));
        assert_eq!(v.visibility, KeyVisibility::Public);
    }

    #[test]
    fn empty_lists_and_metadata() {
        let mut k = key(&[], &[], json!({}));
        k.actor_id.clear();
        let v = KeyView::of(&k);
        assert_eq!(v.scopes().len(), 0);
        assert_eq!(v.allowed_cidrs().len(), 0);
        assert_eq!(v.metadata_json(), "{}");
        assert_eq!(v.actor_id(), "");
        assert_eq!(v.key_id(), k.key_id);
    }

    #[test]
    fn debug_hides_metadata_and_actor() {
        let v = KeyView::of(&key(&["s"], &[], json!({"email": "x@example.com"})));
        let d = format!("{v:?}");
        assert!(!d.contains("example.com") && !d.contains("actor"), "{d}");
        assert!(d.contains(&v.key_id().to_string()));
    }
}
