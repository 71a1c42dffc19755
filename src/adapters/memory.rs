//! In-memory key store: the fake used by fast app/HTTP tests and the
//! `memory` DSN. It follows every rule of the `KeyStore` port exactly like
//! the SQL adapters (the contract suite runs it too), including the
//! `networks` foreign key: keys can only be written into a network created
//! with `ensure_network`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use crate::domain::{
    ApiKey, KeyKind, KeyStatus, ListFilter, NetworkId, RevocationReason, Timestamp,
};
use crate::ports::{BatchInsertOutcome, KeyStore, MigrationStatus, StoreError};

use super::apply_revocation;

type Table = BTreeMap<(NetworkId, String), ApiKey>;

#[derive(Default)]
struct State {
    networks: BTreeSet<NetworkId>,
    issued: Table,
    imported: Table,
}

impl State {
    fn table(&self, kind: KeyKind) -> &Table {
        match kind {
            KeyKind::Issued => &self.issued,
            KeyKind::Imported => &self.imported,
        }
    }
    fn table_mut(&mut self, kind: KeyKind) -> &mut Table {
        match kind {
            KeyKind::Issued => &mut self.issued,
            KeyKind::Imported => &mut self.imported,
        }
    }
    /// The checks a SQL insert makes: foreign key, then unique constraints.
    fn check_insert(&self, key: &ApiKey) -> Result<(), StoreError> {
        if !self.networks.contains(&key.nid) {
            return Err(no_network());
        }
        let table = self.table(key.kind);
        if table.contains_key(&(key.nid, key.key_id.clone())) {
            return Err(StoreError::Conflict);
        }
        if let Some(rid) = &key.request_id {
            if table
                .values()
                .any(|k| k.nid == key.nid && k.request_id.as_ref() == Some(rid))
            {
                return Err(StoreError::Conflict);
            }
        }
        Ok(())
    }
}

fn no_network() -> StoreError {
    StoreError::Other("the key's network does not exist (call ensure_network first)".into())
}

/// What a SQL backend would store and read back: empty request ids are
/// NULL, imported keys have no token prefix.
fn normalized(key: &ApiKey) -> ApiKey {
    let mut k = key.clone();
    k.request_id = k.request_id.filter(|r| !r.is_empty());
    if k.kind == KeyKind::Imported {
        k.token_prefix = None;
    }
    k
}

#[derive(Default)]
pub struct MemoryKeyStore {
    state: Mutex<State>,
}

impl MemoryKeyStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-written row
        // (every write is a single map operation after all checks), so a
        // poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn matches_filter(k: &ApiKey, filter: &ListFilter, now: Timestamp) -> bool {
    if let Some(actor) = &filter.actor_id {
        if &k.actor_id != actor {
            return false;
        }
    }
    match filter.status {
        // The SQL predicates: ACTIVE means `expires_at > now` (or none),
        // EXPIRED means `expires_at <= now`, so the two are complementary.
        // (`ApiKey::effective_status` reports the boundary instant as
        // active; filtering follows the port rule instead.)
        Some(KeyStatus::Active) => {
            k.status == KeyStatus::Active && k.expires_at.is_none_or(|e| e > now)
        }
        Some(KeyStatus::Expired) => {
            k.status == KeyStatus::Active && k.expires_at.is_some_and(|e| e <= now)
        }
        Some(KeyStatus::Revoked) => k.status == KeyStatus::Revoked,
        Some(KeyStatus::Unspecified) | None => true,
    }
}

#[async_trait]
impl KeyStore for MemoryKeyStore {
    async fn insert(&self, key: &ApiKey) -> Result<(), StoreError> {
        let mut st = self.lock();
        st.check_insert(key)?;
        st.table_mut(key.kind)
            .insert((key.nid, key.key_id.clone()), normalized(key));
        Ok(())
    }

    async fn get(
        &self,
        nid: NetworkId,
        kind: KeyKind,
        key_id: &str,
    ) -> Result<Option<ApiKey>, StoreError> {
        Ok(self
            .lock()
            .table(kind)
            .get(&(nid, key_id.to_string()))
            .cloned())
    }

    async fn get_many(
        &self,
        nid: NetworkId,
        kind: KeyKind,
        key_ids: &[String],
    ) -> Result<Vec<ApiKey>, StoreError> {
        let st = self.lock();
        let table = st.table(kind);
        let wanted: BTreeSet<&String> = key_ids.iter().collect();
        Ok(wanted
            .into_iter()
            .filter_map(|id| table.get(&(nid, id.clone())).cloned())
            .collect())
    }

    async fn get_by_request_id(
        &self,
        nid: NetworkId,
        kind: KeyKind,
        request_id: &str,
    ) -> Result<Option<ApiKey>, StoreError> {
        let st = self.lock();
        Ok(st
            .table(kind)
            .values()
            .find(|k| k.nid == nid && k.request_id.as_deref() == Some(request_id))
            .cloned())
    }

    async fn list(
        &self,
        nid: NetworkId,
        kind: KeyKind,
        filter: &ListFilter,
        after: Option<&str>,
        limit: u32,
        now: Timestamp,
    ) -> Result<Vec<ApiKey>, StoreError> {
        use std::ops::Bound;
        let st = self.lock();
        let lower = match after {
            Some(a) => Bound::Excluded((nid, a.to_string())),
            None => Bound::Included((nid, String::new())),
        };
        Ok(st
            .table(kind)
            .range((lower, Bound::Unbounded))
            .take_while(|((n, _), _)| *n == nid)
            .map(|(_, k)| k)
            .filter(|k| matches_filter(k, filter, now))
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn update(&self, key: &ApiKey) -> Result<(), StoreError> {
        let mut st = self.lock();
        let stored = st
            .table_mut(key.kind)
            .get_mut(&(key.nid, key.key_id.clone()))
            .ok_or(StoreError::NotFound)?;
        stored.name = key.name.clone();
        stored.scopes = key.scopes.clone();
        stored.metadata = key.metadata.clone();
        stored.rate_limit = key.rate_limit.clone();
        stored.allowed_cidrs = key.allowed_cidrs.clone();
        stored.updated_at = key.updated_at;
        Ok(())
    }

    async fn revoke(
        &self,
        nid: NetworkId,
        kind: KeyKind,
        key_id: &str,
        reason: RevocationReason,
        description: &str,
        now: Timestamp,
    ) -> Result<ApiKey, StoreError> {
        let mut st = self.lock();
        let key = st
            .table_mut(kind)
            .get_mut(&(nid, key_id.to_string()))
            .ok_or(StoreError::NotFound)?;
        if key.status == KeyStatus::Revoked {
            return Err(StoreError::AlreadyRevoked);
        }
        apply_revocation(key, reason, description, now);
        Ok(key.clone())
    }

    async fn rotate(
        &self,
        nid: NetworkId,
        old_key_id: &str,
        new_key: &ApiKey,
        now: Timestamp,
    ) -> Result<ApiKey, StoreError> {
        let mut st = self.lock();
        let old_id = (nid, old_key_id.to_string());
        let old = st.issued.get(&old_id).ok_or(StoreError::NotFound)?;
        if old.effective_status(now) != KeyStatus::Active {
            return Err(StoreError::NotActive);
        }
        let mut new_key = normalized(new_key);
        new_key.nid = nid;
        new_key.kind = KeyKind::Issued;
        st.check_insert(&new_key)?;
        // All checks passed: both writes happen under one lock.
        st.issued.insert((nid, new_key.key_id.clone()), new_key);
        let old = st.issued.get_mut(&old_id).ok_or(StoreError::NotFound)?;
        apply_revocation(old, RevocationReason::Superseded, "", now);
        Ok(old.clone())
    }

    async fn delete(&self, nid: NetworkId, kind: KeyKind, key_id: &str) -> Result<(), StoreError> {
        self.lock()
            .table_mut(kind)
            .remove(&(nid, key_id.to_string()))
            .map(|_| ())
            .ok_or(StoreError::NotFound)
    }

    async fn batch_insert_imported(
        &self,
        keys: &[ApiKey],
    ) -> Result<Vec<BatchInsertOutcome>, StoreError> {
        let mut st = self.lock();
        // Validate the whole batch first so an error writes nothing.
        let mut outcomes = Vec::with_capacity(keys.len());
        let mut pending: Vec<ApiKey> = Vec::new();
        for key in keys {
            let mut k = normalized(key);
            k.kind = KeyKind::Imported;
            let id = (k.nid, k.key_id.clone());
            if !st.networks.contains(&k.nid) {
                return Err(no_network());
            }
            if st.imported.contains_key(&id)
                || pending
                    .iter()
                    .any(|p| p.nid == k.nid && p.key_id == k.key_id)
            {
                outcomes.push(BatchInsertOutcome::Duplicate);
                continue;
            }
            if let Some(rid) = &k.request_id {
                let taken = st
                    .imported
                    .values()
                    .chain(pending.iter())
                    .any(|o| o.nid == k.nid && o.request_id.as_ref() == Some(rid));
                if taken {
                    return Err(StoreError::Conflict);
                }
            }
            outcomes.push(BatchInsertOutcome::Inserted);
            pending.push(k);
        }
        for k in pending {
            st.imported.insert((k.nid, k.key_id.clone()), k);
        }
        Ok(outcomes)
    }

    async fn count_active(&self, nid: NetworkId, cap: u64) -> Result<u64, StoreError> {
        let st = self.lock();
        let n = st
            .issued
            .values()
            .chain(st.imported.values())
            .filter(|k| k.nid == nid && k.status != KeyStatus::Revoked)
            .take(usize::try_from(cap).unwrap_or(usize::MAX))
            .count();
        Ok(n as u64)
    }

    async fn touch_last_used(
        &self,
        nid: NetworkId,
        kind: KeyKind,
        key_ids: &[String],
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let day_start = crate::domain::rules::utc_day_start(at);
        let mut st = self.lock();
        let table = st.table_mut(kind);
        for id in key_ids {
            if let Some(k) = table.get_mut(&(nid, id.clone())) {
                if k.last_used_at.is_none_or(|t| t < day_start) {
                    k.last_used_at = Some(at);
                }
            }
        }
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn ensure_network(&self, nid: NetworkId, _now: Timestamp) -> Result<(), StoreError> {
        self.lock().networks.insert(nid);
        Ok(())
    }

    async fn migrate_up(&self) -> Result<Vec<i64>, StoreError> {
        Ok(Vec::new())
    }

    async fn migration_status(&self) -> Result<MigrationStatus, StoreError> {
        Ok(MigrationStatus {
            applied: Vec::new(),
            known: Vec::new(),
        })
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}
