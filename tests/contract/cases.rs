//! The key-store contract, written once against `&dyn KeyStore`.
//! Every case works in fresh networks, so cases never see each other's rows.

use std::collections::BTreeSet;

use talos::domain::rules::REVOCATION_RETENTION;
use talos::domain::{
    ApiKey, KeyKind, KeyStatus, KeyVisibility, ListFilter, NetworkId, RateLimitPolicy,
    RevocationReason, Timestamp,
};
use talos::ports::{BatchInsertOutcome, StoreError};

use crate::isolation::tenant_isolation_random_ops;
use crate::support::*;

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        pub const ALL: &[(&str, CaseFn)] = &[$((stringify!($name), |s| Box::pin($name(s)))),*];
    };
}

cases![
    insert_and_get_round_trip,
    insert_conflicts_write_nothing,
    insert_requires_network,
    get_many_returns_existing_rows,
    get_by_request_id,
    list_filters,
    list_keyset_pagination_under_concurrent_inserts,
    update_writes_only_mutable_fields,
    revoke_rules,
    concurrent_revokes_one_wins,
    rotate_success,
    rotate_failures_write_nothing,
    concurrent_rotations_one_wins,
    delete_rules,
    concurrent_inserts_same_request_id,
    batch_insert_imported_outcomes,
    batch_insert_imported_is_all_or_nothing,
    count_active_with_cap,
    touch_last_used_debounce,
    tenant_isolation,
    tenant_isolation_random_ops,
    ensure_network_is_idempotent,
    ping_and_migrations,
];

fn ids(keys: &[ApiKey]) -> Vec<String> {
    keys.iter().map(|k| k.key_id.clone()).collect()
}

async fn insert_and_get_round_trip(s: Store) {
    let nid = new_network(&s).await;
    for kind in KINDS {
        let mut k = key_of(kind, nid);
        k.last_used_at = Some(t(5));
        k.request_id = Some(format!("req-{}", issued_id()));
        s.insert(&k).await.unwrap();
        assert_eq!(
            s.get(nid, kind, &k.key_id).await.unwrap(),
            Some(k.clone()),
            "{kind:?}"
        );

        // Sparse key: NULL-able columns empty, no owner, rate limit without window.
        let mut sparse = key_of(kind, nid);
        sparse.actor_id = String::new();
        sparse.token_prefix = if kind == KeyKind::Issued {
            Some("x".into())
        } else {
            None
        };
        sparse.scopes.clear();
        sparse.metadata.clear();
        sparse.allowed_cidrs.clear();
        sparse.expires_at = None;
        sparse.rate_limit = Some(RateLimitPolicy {
            quota: 5,
            window_secs: None,
        });
        sparse.visibility = KeyVisibility::Unspecified;
        s.insert(&sparse).await.unwrap();
        assert_eq!(
            s.get(nid, kind, &sparse.key_id).await.unwrap(),
            Some(sparse.clone())
        );
        sparse.key_id = match kind {
            KeyKind::Issued => issued_id(),
            KeyKind::Imported => imported_id(),
        };
        sparse.rate_limit = None;
        s.insert(&sparse).await.unwrap();
        assert_eq!(
            s.get(nid, kind, &sparse.key_id).await.unwrap(),
            Some(sparse.clone())
        );

        assert_eq!(s.get(nid, kind, "missing").await.unwrap(), None);
    }
    // Same key id in the other table is a different key.
    let k = issued(nid);
    s.insert(&k).await.unwrap();
    assert_eq!(
        s.get(nid, KeyKind::Imported, &k.key_id).await.unwrap(),
        None
    );
}

async fn insert_conflicts_write_nothing(s: Store) {
    let nid = new_network(&s).await;
    for kind in KINDS {
        let mut a = key_of(kind, nid);
        a.request_id = Some(format!("r-{}", issued_id()));
        s.insert(&a).await.unwrap();

        let mut dup_id = key_of(kind, nid);
        dup_id.key_id = a.key_id.clone();
        dup_id.name = "other".into();
        assert!(matches!(s.insert(&dup_id).await, Err(StoreError::Conflict)));
        assert_eq!(
            s.get(nid, kind, &a.key_id).await.unwrap().unwrap().name,
            a.name
        );

        let mut dup_req = key_of(kind, nid);
        dup_req.request_id = a.request_id.clone();
        assert!(matches!(
            s.insert(&dup_req).await,
            Err(StoreError::Conflict)
        ));
        assert_eq!(s.get(nid, kind, &dup_req.key_id).await.unwrap(), None);

        // Keys without a request id never collide on it.
        for _ in 0..2 {
            s.insert(&key_of(kind, nid)).await.unwrap();
        }
    }
    // The same request id in the other table, or in another network, is fine.
    let other = new_network(&s).await;
    let mut i = issued(nid);
    i.request_id = Some("shared-req".into());
    s.insert(&i).await.unwrap();
    let mut m = imported(nid);
    m.request_id = Some("shared-req".into());
    s.insert(&m).await.unwrap();
    let mut o = issued(other);
    o.request_id = Some("shared-req".into());
    o.key_id = i.key_id.clone();
    s.insert(&o).await.unwrap();
}

async fn insert_requires_network(s: Store) {
    let unknown = NetworkId(uuid::Uuid::new_v4());
    for kind in KINDS {
        let k = key_of(kind, unknown);
        let r = s.insert(&k).await;
        assert!(
            r.is_err() && !matches!(r, Err(StoreError::Conflict)),
            "{r:?}"
        );
        assert_eq!(s.get(unknown, kind, &k.key_id).await.unwrap(), None);
    }
}

async fn get_many_returns_existing_rows(s: Store) {
    let nid = new_network(&s).await;
    let other = new_network(&s).await;
    for kind in KINDS {
        let keys: Vec<ApiKey> = (0..3).map(|_| key_of(kind, nid)).collect();
        for k in &keys {
            s.insert(k).await.unwrap();
        }
        let foreign = key_of(kind, other);
        s.insert(&foreign).await.unwrap();

        let mut want: Vec<String> = ids(&keys);
        want.sort();
        // more ids than one IN chunk, with missing, foreign and repeated ids
        let mut query: Vec<String> = (0..600).map(|_| issued_id()).collect();
        query.extend(ids(&keys));
        query.push(foreign.key_id.clone());
        query.push(keys[0].key_id.clone());
        let mut got = s.get_many(nid, kind, &query).await.unwrap();
        got.sort_by(|a, b| a.key_id.cmp(&b.key_id));
        got.dedup_by(|a, b| a.key_id == b.key_id);
        assert_eq!(ids(&got), want);
        for k in &got {
            assert_eq!(Some(k), keys.iter().find(|x| x.key_id == k.key_id));
        }
        assert!(s.get_many(nid, kind, &[]).await.unwrap().is_empty());
    }
}

async fn get_by_request_id(s: Store) {
    let nid = new_network(&s).await;
    let other = new_network(&s).await;
    for kind in KINDS {
        let mut k = key_of(kind, nid);
        let rid = format!("req-{}", issued_id());
        k.request_id = Some(rid.clone());
        s.insert(&k).await.unwrap();
        assert_eq!(
            s.get_by_request_id(nid, kind, &rid).await.unwrap(),
            Some(k.clone())
        );
        assert_eq!(s.get_by_request_id(nid, kind, "nope").await.unwrap(), None);
        assert_eq!(s.get_by_request_id(other, kind, &rid).await.unwrap(), None);
        let other_kind = if kind == KeyKind::Issued {
            KeyKind::Imported
        } else {
            KeyKind::Issued
        };
        assert_eq!(
            s.get_by_request_id(nid, other_kind, &rid).await.unwrap(),
            None
        );
    }
}

async fn list_filters(s: Store) {
    let now = t(DAY_MS);
    for kind in KINDS {
        let nid = new_network(&s).await;
        let mk = |actor: &str, expires: Option<Timestamp>| {
            let mut k = key_of(kind, nid);
            k.actor_id = actor.into();
            k.expires_at = expires;
            k
        };
        let active_forever = mk("alice", None);
        let active_later = mk("alice", Some(now.plus(std::time::Duration::from_millis(1))));
        let expired = mk("alice", Some(t(0)));
        let expires_now = mk("alice", Some(now)); // boundary: expires_at <= now is EXPIRED
        let revoked = mk("alice", None);
        let bob = mk("bob", None);
        let nobody = mk("", None);
        let all = [
            &active_forever,
            &active_later,
            &expired,
            &expires_now,
            &revoked,
            &bob,
            &nobody,
        ];
        for k in all {
            s.insert(k).await.unwrap();
        }
        s.revoke(
            nid,
            kind,
            &revoked.key_id,
            RevocationReason::KeyCompromise,
            "",
            t(1),
        )
        .await
        .unwrap();

        let list = |filter: ListFilter| {
            let s = s.clone();
            async move {
                let got = s.list(nid, kind, &filter, None, 100, now).await.unwrap();
                let got_ids = ids(&got);
                let mut sorted = got_ids.clone();
                sorted.sort();
                assert_eq!(got_ids, sorted, "list must be ordered by key_id");
                got_ids.into_iter().collect::<BTreeSet<_>>()
            }
        };
        let set = |ks: &[&ApiKey]| ks.iter().map(|k| k.key_id.clone()).collect::<BTreeSet<_>>();
        let alice = Some("alice".to_string());
        let f = |actor: Option<String>, status: Option<KeyStatus>| ListFilter {
            actor_id: actor,
            status,
        };

        assert_eq!(list(f(None, None)).await, set(&all));
        assert_eq!(
            list(f(alice.clone(), None)).await,
            set(&[
                &active_forever,
                &active_later,
                &expired,
                &expires_now,
                &revoked
            ])
        );
        assert_eq!(list(f(Some("bob".into()), None)).await, set(&[&bob]));
        assert_eq!(list(f(Some("".into()), None)).await, set(&[&nobody]));
        assert_eq!(
            list(f(Some("ALICE".into()), None)).await,
            set(&[]),
            "actor match is exact"
        );
        assert_eq!(
            list(f(alice.clone(), Some(KeyStatus::Active))).await,
            set(&[&active_forever, &active_later])
        );
        assert_eq!(
            list(f(alice.clone(), Some(KeyStatus::Expired))).await,
            set(&[&expired, &expires_now])
        );
        assert_eq!(
            list(f(alice.clone(), Some(KeyStatus::Revoked))).await,
            set(&[&revoked])
        );
        assert_eq!(
            list(f(alice.clone(), Some(KeyStatus::Unspecified)))
                .await
                .len(),
            5
        );
        // status without actor also works at the store level
        assert_eq!(
            list(f(None, Some(KeyStatus::Revoked))).await,
            set(&[&revoked])
        );

        // limit and `after`
        let first2 = s
            .list(nid, kind, &ListFilter::default(), None, 2, now)
            .await
            .unwrap();
        assert_eq!(first2.len(), 2);
        let rest = s
            .list(
                nid,
                kind,
                &ListFilter::default(),
                Some(&first2[1].key_id),
                100,
                now,
            )
            .await
            .unwrap();
        assert_eq!(rest.len(), all.len() - 2);
        assert!(rest.iter().all(|k| k.key_id > first2[1].key_id));
        assert!(s
            .list(nid, kind, &ListFilter::default(), None, 0, now)
            .await
            .unwrap()
            .is_empty());
        // rows come back whole
        let one = s
            .list(nid, kind, &f(Some("bob".into()), None), None, 10, now)
            .await
            .unwrap();
        assert_eq!(one, vec![bob.clone()]);
    }
}

async fn list_keyset_pagination_under_concurrent_inserts(s: Store) {
    let nid = new_network(&s).await;
    let kind = KeyKind::Issued;
    let mut initial = BTreeSet::new();
    for _ in 0..60 {
        let k = issued(nid);
        initial.insert(k.key_id.clone());
        s.insert(&k).await.unwrap();
    }
    let writer = {
        let s = s.clone();
        tokio::spawn(async move {
            let mut added = Vec::new();
            for _ in 0..40 {
                let k = issued(nid);
                s.insert(&k).await.unwrap();
                added.push(k.key_id);
                tokio::task::yield_now().await;
            }
            added
        })
    };
    let mut seen: Vec<String> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = s
            .list(nid, kind, &ListFilter::default(), after.as_deref(), 7, T0)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        for k in &page {
            if let Some(last) = seen.last() {
                assert!(
                    &k.key_id > last,
                    "pages must be strictly ordered, no repeats"
                );
            }
            seen.push(k.key_id.clone());
        }
        after = page.last().map(|k| k.key_id.clone());
        tokio::task::yield_now().await;
    }
    let added = writer.await.unwrap();
    let seen_set: BTreeSet<String> = seen.iter().cloned().collect();
    assert!(
        initial.is_subset(&seen_set),
        "a row present throughout was skipped"
    );
    let everything: BTreeSet<String> = initial.iter().cloned().chain(added).collect();
    assert!(seen_set.is_subset(&everything));
    // after the writer finished, a full walk sees everything exactly once
    let full = s
        .list(nid, kind, &ListFilter::default(), None, 1000, T0)
        .await
        .unwrap();
    assert_eq!(ids(&full), everything.into_iter().collect::<Vec<_>>());
}

async fn update_writes_only_mutable_fields(s: Store) {
    let nid = new_network(&s).await;
    for kind in KINDS {
        let mut k = key_of(kind, nid);
        k.request_id = Some(format!("r-{}", issued_id()));
        k.last_used_at = Some(t(1));
        s.insert(&k).await.unwrap();

        let mut changed = k.clone();
        // mutable
        changed.name = "renamed".into();
        changed.scopes = vec!["admin".into()];
        changed.metadata = serde_json::json!({"k": "v"}).as_object().unwrap().clone();
        changed.rate_limit = Some(RateLimitPolicy {
            quota: 7,
            window_secs: None,
        });
        changed.allowed_cidrs = vec![];
        changed.updated_at = t(1000);
        // immutable: must be ignored
        changed.actor_id = "mallory".into();
        changed.status = KeyStatus::Revoked;
        changed.expires_at = None;
        changed.created_at = t(-5);
        changed.last_used_at = None;
        changed.request_id = None;
        changed.visibility = KeyVisibility::Unspecified;
        changed.revocation_reason = RevocationReason::KeyCompromise;
        changed.revocation_description = "x".into();
        if kind == KeyKind::Issued {
            changed.token_prefix = Some("evil".into());
        }
        s.update(&changed).await.unwrap();

        let mut want = k.clone();
        want.name = changed.name.clone();
        want.scopes = changed.scopes.clone();
        want.metadata = changed.metadata.clone();
        want.rate_limit = changed.rate_limit.clone();
        want.allowed_cidrs = vec![];
        want.updated_at = t(1000);
        assert_eq!(
            s.get(nid, kind, &k.key_id).await.unwrap(),
            Some(want.clone())
        );

        // identical values again: still found (MySQL reports 0 changed rows)
        s.update(&want).await.unwrap();
        let mut removing = want.clone();
        removing.rate_limit = None;
        s.update(&removing).await.unwrap();
        assert_eq!(
            s.get(nid, kind, &k.key_id)
                .await
                .unwrap()
                .unwrap()
                .rate_limit,
            None
        );

        let missing = key_of(kind, nid);
        assert!(matches!(
            s.update(&missing).await,
            Err(StoreError::NotFound)
        ));
        assert_eq!(s.get(nid, kind, &missing.key_id).await.unwrap(), None);
    }
}

async fn revoke_rules(s: Store) {
    let nid = new_network(&s).await;
    let now = t(DAY_MS);
    let floor = now.plus(REVOCATION_RETENTION);
    for kind in KINDS {
        // no expiry → now + 30d
        let mut a = key_of(kind, nid);
        a.expires_at = None;
        s.insert(&a).await.unwrap();
        let r = s
            .revoke(
                nid,
                kind,
                &a.key_id,
                RevocationReason::PrivilegeWithdrawn,
                "left the team",
                now,
            )
            .await
            .unwrap();
        let mut want = a.clone();
        want.status = KeyStatus::Revoked;
        want.revocation_reason = RevocationReason::PrivilegeWithdrawn;
        want.revocation_description = "left the team".into();
        want.expires_at = Some(floor);
        want.updated_at = now;
        assert_eq!(r, want);
        assert_eq!(s.get(nid, kind, &a.key_id).await.unwrap(), Some(want));

        let again = s
            .revoke(nid, kind, &a.key_id, RevocationReason::Unspecified, "", now)
            .await;
        assert!(
            matches!(again, Err(StoreError::AlreadyRevoked)),
            "{again:?}"
        );

        // earlier expiry → pushed to now + 30d; later expiry → kept
        let mut b = key_of(kind, nid);
        b.expires_at = Some(now.plus(std::time::Duration::from_secs(3600)));
        let mut c = key_of(kind, nid);
        let far = floor.plus(std::time::Duration::from_secs(1));
        c.expires_at = Some(far);
        // already expired keys can be revoked
        let mut d = key_of(kind, nid);
        d.expires_at = Some(t(0));
        for k in [&b, &c, &d] {
            s.insert(k).await.unwrap();
        }
        let rb = s
            .revoke(nid, kind, &b.key_id, RevocationReason::Superseded, "", now)
            .await
            .unwrap();
        assert_eq!(rb.expires_at, Some(floor));
        let rc = s
            .revoke(nid, kind, &c.key_id, RevocationReason::Superseded, "", now)
            .await
            .unwrap();
        assert_eq!(rc.expires_at, Some(far));
        let rd = s
            .revoke(nid, kind, &d.key_id, RevocationReason::Superseded, "", now)
            .await
            .unwrap();
        assert_eq!(rd.expires_at, Some(floor));

        let missing = s
            .revoke(nid, kind, "missing", RevocationReason::Unspecified, "", now)
            .await;
        assert!(matches!(missing, Err(StoreError::NotFound)), "{missing:?}");
    }
    // a key is only found in its own table
    let k = issued(nid);
    s.insert(&k).await.unwrap();
    let r = s
        .revoke(
            nid,
            KeyKind::Imported,
            &k.key_id,
            RevocationReason::Unspecified,
            "",
            now,
        )
        .await;
    assert!(matches!(r, Err(StoreError::NotFound)));
}

async fn concurrent_revokes_one_wins(s: Store) {
    let nid = new_network(&s).await;
    let k = issued(nid);
    s.insert(&k).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..6 {
        let (s, id) = (s.clone(), k.key_id.clone());
        tasks.push(tokio::spawn(async move {
            s.revoke(
                nid,
                KeyKind::Issued,
                &id,
                RevocationReason::KeyCompromise,
                "",
                t(i),
            )
            .await
        }));
    }
    let (mut ok, mut already) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::AlreadyRevoked) => already += 1,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!((ok, already), (1, 5));
}

fn successor(old: &ApiKey) -> ApiKey {
    let mut n = issued(old.nid);
    n.actor_id = old.actor_id.clone();
    n.expires_at = old.expires_at;
    n.name = "rotated".into();
    n.created_at = t(DAY_MS);
    n.updated_at = t(DAY_MS);
    n
}

async fn rotate_success(s: Store) {
    let nid = new_network(&s).await;
    let now = t(DAY_MS);
    let old = issued(nid);
    s.insert(&old).await.unwrap();
    let new = successor(&old);
    let returned = s.rotate(nid, &old.key_id, &new, now).await.unwrap();

    let mut want_old = old.clone();
    want_old.status = KeyStatus::Revoked;
    want_old.revocation_reason = RevocationReason::Superseded;
    want_old.revocation_description = String::new();
    want_old.expires_at = Some(now.plus(REVOCATION_RETENTION));
    want_old.updated_at = now;
    assert_eq!(returned, want_old);
    assert_eq!(
        s.get(nid, KeyKind::Issued, &old.key_id).await.unwrap(),
        Some(want_old)
    );
    assert_eq!(
        s.get(nid, KeyKind::Issued, &new.key_id).await.unwrap(),
        Some(new.clone())
    );

    // the new key can be rotated in turn
    let newer = successor(&new);
    s.rotate(nid, &new.key_id, &newer, now).await.unwrap();
    assert!(s
        .get(nid, KeyKind::Issued, &newer.key_id)
        .await
        .unwrap()
        .is_some());
}

async fn rotate_failures_write_nothing(s: Store) {
    let nid = new_network(&s).await;
    let now = t(DAY_MS);

    // missing old key
    let ghost = issued(nid);
    let n = successor(&ghost);
    assert!(matches!(
        s.rotate(nid, &ghost.key_id, &n, now).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(s.get(nid, KeyKind::Issued, &n.key_id).await.unwrap(), None);

    // revoked old key
    let revoked = issued(nid);
    s.insert(&revoked).await.unwrap();
    s.revoke(
        nid,
        KeyKind::Issued,
        &revoked.key_id,
        RevocationReason::Unspecified,
        "",
        now,
    )
    .await
    .unwrap();
    let before = s.get(nid, KeyKind::Issued, &revoked.key_id).await.unwrap();
    let n = successor(&revoked);
    let r = s.rotate(nid, &revoked.key_id, &n, now).await;
    assert!(matches!(r, Err(StoreError::NotActive)), "{r:?}");
    assert_eq!(s.get(nid, KeyKind::Issued, &n.key_id).await.unwrap(), None);
    assert_eq!(
        s.get(nid, KeyKind::Issued, &revoked.key_id).await.unwrap(),
        before
    );

    // expired old key is not active
    let mut expired = issued(nid);
    expired.expires_at = Some(t(0));
    s.insert(&expired).await.unwrap();
    let n = successor(&expired);
    let r = s.rotate(nid, &expired.key_id, &n, now).await;
    assert!(matches!(r, Err(StoreError::NotActive)), "{r:?}");
    assert_eq!(s.get(nid, KeyKind::Issued, &n.key_id).await.unwrap(), None);

    // imported keys are not rotatable (rotate is issued-only)
    let imp = imported(nid);
    s.insert(&imp).await.unwrap();
    let n = successor(&imp);
    assert!(matches!(
        s.rotate(nid, &imp.key_id, &n, now).await,
        Err(StoreError::NotFound)
    ));

    // new key conflicts (request id taken) → whole rotation rolled back
    let mut holder = issued(nid);
    holder.request_id = Some("taken".into());
    s.insert(&holder).await.unwrap();
    let old = issued(nid);
    s.insert(&old).await.unwrap();
    let mut n = successor(&old);
    n.request_id = Some("taken".into());
    let r = s.rotate(nid, &old.key_id, &n, now).await;
    assert!(matches!(r, Err(StoreError::Conflict)), "{r:?}");
    assert_eq!(
        s.get(nid, KeyKind::Issued, &old.key_id).await.unwrap(),
        Some(old.clone())
    );
    assert_eq!(s.get(nid, KeyKind::Issued, &n.key_id).await.unwrap(), None);
    // new key id equal to an existing key id
    let mut n = successor(&old);
    n.key_id = holder.key_id.clone();
    let r = s.rotate(nid, &old.key_id, &n, now).await;
    assert!(matches!(r, Err(StoreError::Conflict)), "{r:?}");
    assert_eq!(
        s.get(nid, KeyKind::Issued, &old.key_id).await.unwrap(),
        Some(old.clone())
    );
}

async fn concurrent_rotations_one_wins(s: Store) {
    let nid = new_network(&s).await;
    let old = issued(nid);
    s.insert(&old).await.unwrap();
    let news: Vec<ApiKey> = (0..6).map(|_| successor(&old)).collect();
    let mut tasks = Vec::new();
    for n in news.clone() {
        let (s, id) = (s.clone(), old.key_id.clone());
        tasks.push(tokio::spawn(async move {
            s.rotate(nid, &id, &n, t(DAY_MS)).await
        }));
    }
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::NotActive) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(ok, 1);
    let present = s.get_many(nid, KeyKind::Issued, &ids(&news)).await.unwrap();
    assert_eq!(present.len(), 1, "exactly one successor may exist");
}

async fn delete_rules(s: Store) {
    let nid = new_network(&s).await;
    for kind in KINDS {
        let k = key_of(kind, nid);
        let keep = key_of(kind, nid);
        s.insert(&k).await.unwrap();
        s.insert(&keep).await.unwrap();
        s.delete(nid, kind, &k.key_id).await.unwrap();
        assert_eq!(s.get(nid, kind, &k.key_id).await.unwrap(), None);
        assert!(matches!(
            s.delete(nid, kind, &k.key_id).await,
            Err(StoreError::NotFound)
        ));
        assert_eq!(
            s.get(nid, kind, &keep.key_id).await.unwrap(),
            Some(keep.clone())
        );
        // the id can be reused after a hard delete
        s.insert(&k).await.unwrap();
    }
}

async fn concurrent_inserts_same_request_id(s: Store) {
    let nid = new_network(&s).await;
    for kind in KINDS {
        let rid = format!("idem-{}", issued_id());
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let mut k = key_of(kind, nid);
            k.request_id = Some(rid.clone());
            let s = s.clone();
            tasks.push(tokio::spawn(async move { (s.insert(&k).await, k) }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                (Ok(()), k) => winners.push(k),
                (Err(StoreError::Conflict), _) => {}
                (Err(e), _) => panic!("unexpected {e:?}"),
            }
        }
        assert_eq!(winners.len(), 1);
        assert_eq!(
            s.get_by_request_id(nid, kind, &rid).await.unwrap(),
            Some(winners[0].clone())
        );
        let all = s
            .list(nid, kind, &ListFilter::default(), None, 100, T0)
            .await
            .unwrap();
        assert_eq!(all.len(), 1);
    }
}

async fn batch_insert_imported_outcomes(s: Store) {
    let nid = new_network(&s).await;
    let existing = imported(nid);
    s.insert(&existing).await.unwrap();
    let a = imported(nid);
    let mut dup = imported(nid);
    dup.key_id = existing.key_id.clone();
    dup.name = "should not overwrite".into();
    let b = imported(nid);
    let out = s
        .batch_insert_imported(&[a.clone(), dup, b.clone()])
        .await
        .unwrap();
    use BatchInsertOutcome::*;
    assert_eq!(out, vec![Inserted, Duplicate, Inserted]);
    assert_eq!(
        s.get(nid, KeyKind::Imported, &a.key_id).await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(
        s.get(nid, KeyKind::Imported, &b.key_id).await.unwrap(),
        Some(b.clone())
    );
    assert_eq!(
        s.get(nid, KeyKind::Imported, &existing.key_id)
            .await
            .unwrap(),
        Some(existing)
    );

    // a batch of only duplicates writes nothing and still succeeds
    let out = s
        .batch_insert_imported(&[a.clone(), b.clone()])
        .await
        .unwrap();
    assert_eq!(out, vec![Duplicate, Duplicate]);
    assert!(s.batch_insert_imported(&[]).await.unwrap().is_empty());

    // a larger batch
    let many: Vec<ApiKey> = (0..250).map(|_| imported(nid)).collect();
    let out = s.batch_insert_imported(&many).await.unwrap();
    assert!(out.iter().all(|o| *o == Inserted));
    assert_eq!(s.count_active(nid, 10_000).await.unwrap(), 253);

    // one key twice in a batch, next to itself and far apart (SQLite
    // writes 100 rows per statement): the first is inserted, the rest are
    // duplicates
    let twice = imported(nid);
    let mut batch: Vec<ApiKey> = (0..200).map(|_| imported(nid)).collect();
    batch.insert(0, twice.clone());
    batch.insert(1, twice.clone());
    batch.insert(150, twice.clone());
    let out = s.batch_insert_imported(&batch).await.unwrap();
    for (i, o) in out.iter().enumerate() {
        let want = if i == 1 || i == 150 {
            Duplicate
        } else {
            Inserted
        };
        assert_eq!(*o, want, "row {i}");
    }
    assert_eq!(s.count_active(nid, 10_000).await.unwrap(), 454);
}

async fn batch_insert_imported_is_all_or_nothing(s: Store) {
    let nid = new_network(&s).await;
    // a row whose network does not exist fails the batch
    let first = imported(nid);
    let orphan = imported(NetworkId(uuid::Uuid::new_v4()));
    assert!(s
        .batch_insert_imported(&[first.clone(), orphan])
        .await
        .is_err());
    assert_eq!(
        s.get(nid, KeyKind::Imported, &first.key_id).await.unwrap(),
        None
    );

    // a request-id conflict with an existing row is an error, not a duplicate
    let mut holder = imported(nid);
    holder.request_id = Some("batch-req".into());
    s.insert(&holder).await.unwrap();
    let first = imported(nid);
    let mut clash = imported(nid);
    clash.request_id = Some("batch-req".into());
    let r = s
        .batch_insert_imported(&[first.clone(), clash.clone()])
        .await;
    assert!(r.is_err(), "{r:?}");
    assert_eq!(
        s.get(nid, KeyKind::Imported, &first.key_id).await.unwrap(),
        None
    );
    assert_eq!(
        s.get(nid, KeyKind::Imported, &clash.key_id).await.unwrap(),
        None
    );
    assert_eq!(s.count_active(nid, 100).await.unwrap(), 1);
}

async fn count_active_with_cap(s: Store) {
    let nid = new_network(&s).await;
    let empty = new_network(&s).await;
    for i in 0..4 {
        let k = issued(nid);
        s.insert(&k).await.unwrap();
        if i == 0 {
            s.revoke(
                nid,
                KeyKind::Issued,
                &k.key_id,
                RevocationReason::Unspecified,
                "",
                T0,
            )
            .await
            .unwrap();
        }
    }
    let mut expired = imported(nid);
    expired.expires_at = Some(t(-1)); // expired but not revoked: counts
    s.insert(&expired).await.unwrap();
    s.insert(&imported(nid)).await.unwrap();
    assert_eq!(s.count_active(nid, 100).await.unwrap(), 5);
    assert_eq!(s.count_active(nid, 5).await.unwrap(), 5);
    assert_eq!(s.count_active(nid, 4).await.unwrap(), 4);
    assert_eq!(s.count_active(nid, 2).await.unwrap(), 2);
    assert_eq!(s.count_active(nid, 0).await.unwrap(), 0);
    assert_eq!(s.count_active(nid, u64::MAX).await.unwrap(), 5);
    assert_eq!(s.count_active(empty, 100).await.unwrap(), 0);
}

async fn touch_last_used_debounce(s: Store) {
    let nid = new_network(&s).await;
    let other = new_network(&s).await;
    let day = (T0.millis() / DAY_MS + 1) * DAY_MS; // a UTC midnight
    let at = Timestamp::from_millis(day + 12 * 3_600_000); // noon
    for kind in KINDS {
        let mk = |last: Option<i64>| {
            let mut k = key_of(kind, nid);
            k.last_used_at = last.map(Timestamp::from_millis);
            k
        };
        let never = mk(None);
        let earlier_today = mk(Some(day + 1));
        let yesterday = mk(Some(day - 1));
        let later_today = mk(Some(day + 13 * 3_600_000));
        let untouched = mk(None);
        for k in [&never, &earlier_today, &yesterday, &later_today, &untouched] {
            s.insert(k).await.unwrap();
        }
        let mut foreign = key_of(kind, other);
        foreign.key_id = never.key_id.clone();
        s.insert(&foreign).await.unwrap();

        let ids: Vec<String> = [&never, &earlier_today, &yesterday, &later_today]
            .iter()
            .map(|k| k.key_id.clone())
            .chain(["missing".to_string()])
            .collect();
        s.touch_last_used(nid, kind, &ids, at).await.unwrap();
        s.touch_last_used(nid, kind, &[], at).await.unwrap();

        let get = |k: &ApiKey| {
            let (s, id) = (s.clone(), k.key_id.clone());
            async move { s.get(nid, kind, &id).await.unwrap().unwrap() }
        };
        assert_eq!(get(&never).await.last_used_at, Some(at));
        assert_eq!(get(&yesterday).await.last_used_at, Some(at));
        assert_eq!(get(&earlier_today).await, earlier_today);
        assert_eq!(get(&later_today).await, later_today);
        assert_eq!(get(&untouched).await, untouched);
        // only last_used_at changes
        let mut want = never.clone();
        want.last_used_at = Some(at);
        assert_eq!(get(&never).await, want);
        assert_eq!(
            s.get(other, kind, &foreign.key_id).await.unwrap(),
            Some(foreign.clone())
        );
    }
}

async fn tenant_isolation(s: Store) {
    let a = new_network(&s).await;
    let now = t(DAY_MS);
    for kind in KINDS {
        let b = new_network(&s).await;
        let mut k = key_of(kind, a);
        k.request_id = Some(format!("iso-{}", issued_id()));
        s.insert(&k).await.unwrap();
        let id = k.key_id.clone();
        let rid = k.request_id.clone().unwrap();

        assert_eq!(s.get(b, kind, &id).await.unwrap(), None);
        assert!(s
            .get_many(b, kind, std::slice::from_ref(&id))
            .await
            .unwrap()
            .is_empty());
        assert_eq!(s.get_by_request_id(b, kind, &rid).await.unwrap(), None);
        assert!(s
            .list(b, kind, &ListFilter::default(), None, 100, now)
            .await
            .unwrap()
            .is_empty());
        let f = ListFilter {
            actor_id: Some(k.actor_id.clone()),
            status: Some(KeyStatus::Active),
        };
        assert!(s
            .list(b, kind, &f, None, 100, now)
            .await
            .unwrap()
            .is_empty());
        let mut moved = k.clone();
        moved.nid = b;
        moved.name = "hijack".into();
        assert!(matches!(s.update(&moved).await, Err(StoreError::NotFound)));
        let r = s
            .revoke(b, kind, &id, RevocationReason::KeyCompromise, "", now)
            .await;
        assert!(matches!(r, Err(StoreError::NotFound)));
        if kind == KeyKind::Issued {
            let n = successor(&moved);
            assert!(matches!(
                s.rotate(b, &id, &n, now).await,
                Err(StoreError::NotFound)
            ));
            assert_eq!(s.get(b, kind, &n.key_id).await.unwrap(), None);
        }
        assert!(matches!(
            s.delete(b, kind, &id).await,
            Err(StoreError::NotFound)
        ));
        s.touch_last_used(b, kind, std::slice::from_ref(&id), now)
            .await
            .unwrap();
        assert_eq!(s.count_active(b, 100).await.unwrap(), 0);
        // nothing in network A changed
        assert_eq!(s.get(a, kind, &id).await.unwrap(), Some(k.clone()));
        // and B may hold its own key with the same id and request id
        s.insert(&moved).await.unwrap();
        assert_eq!(s.get(b, kind, &id).await.unwrap(), Some(moved.clone()));
        assert_eq!(s.get(a, kind, &id).await.unwrap(), Some(k.clone()));
    }
}

async fn ensure_network_is_idempotent(s: Store) {
    let nid = new_network(&s).await;
    s.ensure_network(nid, t(5)).await.unwrap();
    s.ensure_network(NetworkId::NIL, T0).await.unwrap();
    s.ensure_network(NetworkId::NIL, T0).await.unwrap();
    let k = issued(nid);
    s.insert(&k).await.unwrap();
    s.ensure_network(nid, t(10)).await.unwrap();
    assert!(s
        .get(nid, KeyKind::Issued, &k.key_id)
        .await
        .unwrap()
        .is_some());
}

async fn ping_and_migrations(s: Store) {
    s.ping().await.unwrap();
    let st = s.migration_status().await.unwrap();
    assert!(st.pending().is_empty(), "{st:?}");
    let known: Vec<i64> = st.known.iter().map(|(v, _)| *v).collect();
    assert_eq!(st.applied, known);
    if s.backend() != "memory" {
        assert_eq!(st.known.first(), Some(&(1, "initial".to_string())));
    }
    assert!(
        s.migrate_up().await.unwrap().is_empty(),
        "nothing left to apply"
    );
}
