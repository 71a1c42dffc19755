//! The in-memory store and SQLite agree: a random sequence of admin
//! operations (issue, import, batch import, get, get by request id, get
//! many, list, update, revoke, delete, rotate, touch, count, clock moves)
//! applied through the `KeyStore` port to both gives the same observable
//! result at every step, and the same final contents.

use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use talos::adapters::memory::MemoryKeyStore;
use talos::adapters::store::{open_store, StoreOptions};
use talos::domain::{
    ApiKey, KeyKind, KeyStatus, KeyVisibility, ListFilter, NetworkId, RateLimitPolicy,
    RevocationReason, Secret, Timestamp,
};
use talos::ports::{KeyStore, StoreError};
use uuid::Uuid;

/// 2025-06-15T15:06:40Z
const T0: Timestamp = Timestamp::from_millis(1_750_000_000_000);
const DAY_MS: i64 = 86_400_000;

/// Small pools so that operations collide (conflicts, not-found, reuse).
const IDS: usize = 4;
const ACTORS: [&str; 3] = ["", "user-1", "user-2"];
const REQUEST_IDS: [&str; 3] = ["req-a", "req-b", "req-c"];
const SCOPES: [&str; 4] = ["read", "write", "admin", "ünïcode:scope"];
const CIDRS: [&str; 3] = ["10.0.0.0/8", "192.168.1.0/24", "2001:db8::/32"];

fn key_id(kind: KeyKind, i: usize) -> String {
    match kind {
        // Fixed UUIDs, chosen so that bytewise order differs from index order.
        KeyKind::Issued => Uuid::from_u128(0x9e37_79b9_7f4a_7c15_u128.wrapping_mul(i as u128 + 1))
            .as_hyphenated()
            .to_string(),
        KeyKind::Imported => format!("{:064x}", 0x51ed_270b_u128.wrapping_mul(i as u128 + 7)),
    }
}

#[derive(Clone, Debug)]
struct Fields {
    name: String,
    actor: usize,
    scopes: Vec<usize>,
    metadata: Option<u8>,
    /// Offset from the current clock, in hours (negative: already expired).
    expires_in_h: Option<i64>,
    rate_limit: Option<(i64, Option<i64>)>,
    cidrs: Vec<usize>,
    request_id: Option<usize>,
    visibility: KeyVisibility,
    last_used_h: Option<i64>,
}

#[derive(Clone, Debug)]
enum Op {
    Insert(KeyKind, usize, Fields),
    BatchImport(Vec<(usize, Fields)>),
    Get(KeyKind, usize),
    GetByRequestId(KeyKind, usize),
    GetMany(KeyKind, Vec<usize>),
    List {
        kind: KeyKind,
        actor: Option<usize>,
        status: Option<KeyStatus>,
        after: Option<usize>,
        limit: u32,
    },
    Update(KeyKind, usize, Fields),
    Revoke(KeyKind, usize, RevocationReason, String),
    Delete(KeyKind, usize),
    Rotate(usize, usize, Fields),
    Touch(KeyKind, Vec<usize>, i64),
    CountActive(u64),
    /// Moves the clock forward by this many hours.
    Advance(i64),
}

fn kind() -> impl Strategy<Value = KeyKind> {
    prop_oneof![Just(KeyKind::Issued), Just(KeyKind::Imported)]
}

fn fields() -> impl Strategy<Value = Fields> {
    (
        (
            "(?s:.){0,12}",
            0..ACTORS.len(),
            proptest::collection::vec(0..SCOPES.len(), 0..3),
            proptest::option::of(0u8..3),
            proptest::option::of(-48i64..400),
        ),
        (
            proptest::option::of((1i64..1000, proptest::option::of(1i64..3600))),
            proptest::collection::vec(0..CIDRS.len(), 0..2),
            proptest::option::of(0..REQUEST_IDS.len()),
            prop_oneof![
                Just(KeyVisibility::Unspecified),
                Just(KeyVisibility::Secret),
                Just(KeyVisibility::Public)
            ],
            proptest::option::of(-72i64..0),
        ),
    )
        .prop_map(
            |(
                (name, actor, scopes, metadata, expires_in_h),
                (rate_limit, cidrs, request_id, visibility, last_used_h),
            )| Fields {
                name,
                actor,
                scopes,
                metadata,
                expires_in_h,
                rate_limit,
                cidrs,
                request_id,
                visibility,
                last_used_h,
            },
        )
}

fn reason() -> impl Strategy<Value = RevocationReason> {
    proptest::sample::select(RevocationReason::ALL.to_vec())
}

fn op() -> impl Strategy<Value = Op> {
    let id = 0..IDS;
    let status = prop_oneof![
        Just(None),
        Just(Some(KeyStatus::Active)),
        Just(Some(KeyStatus::Revoked)),
        Just(Some(KeyStatus::Expired)),
    ];
    prop_oneof![
        6 => (kind(), id.clone(), fields()).prop_map(|(k, i, f)| Op::Insert(k, i, f)),
        1 => proptest::collection::vec((id.clone(), fields()), 0..4).prop_map(Op::BatchImport),
        2 => (kind(), id.clone()).prop_map(|(k, i)| Op::Get(k, i)),
        1 => (kind(), 0..REQUEST_IDS.len()).prop_map(|(k, i)| Op::GetByRequestId(k, i)),
        1 => (kind(), proptest::collection::vec(id.clone(), 0..4)).prop_map(|(k, v)| Op::GetMany(k, v)),
        3 => (kind(), proptest::option::of(0..ACTORS.len()), status, proptest::option::of(id.clone()), 1u32..4)
            .prop_map(|(kind, actor, status, after, limit)| Op::List { kind, actor, status, after, limit }),
        2 => (kind(), id.clone(), fields()).prop_map(|(k, i, f)| Op::Update(k, i, f)),
        2 => (kind(), id.clone(), reason(), "[a-z ]{0,8}").prop_map(|(k, i, r, d)| Op::Revoke(k, i, r, d)),
        1 => (kind(), id.clone()).prop_map(|(k, i)| Op::Delete(k, i)),
        2 => (id.clone(), id.clone(), fields()).prop_map(|(o, n, f)| Op::Rotate(o, n, f)),
        1 => (kind(), proptest::collection::vec(id.clone(), 0..3), 0i64..30).prop_map(|(k, v, h)| Op::Touch(k, v, h)),
        1 => (0u64..12).prop_map(Op::CountActive),
        1 => (1i64..200).prop_map(Op::Advance),
    ]
}

fn hours(now: Timestamp, h: i64) -> Timestamp {
    Timestamp::from_millis(now.millis() + h * 3_600_000)
}

fn build(nid: NetworkId, kind: KeyKind, i: usize, f: &Fields, now: Timestamp) -> ApiKey {
    let metadata: Map<String, Value> = match f.metadata {
        None => Map::new(),
        Some(0) => json!({"team": "payments"}).as_object().unwrap().clone(),
        Some(1) => json!({"n": [1, 2.5, null, true], "ü": "✓"})
            .as_object()
            .unwrap()
            .clone(),
        Some(_) => json!({"deep": {"a": {"b": -7}}, "big": 9007199254740993_i64})
            .as_object()
            .unwrap()
            .clone(),
    };
    ApiKey {
        nid,
        kind,
        key_id: key_id(kind, i),
        name: f.name.clone(),
        token_prefix: (kind == KeyKind::Issued).then(|| "talos".to_string()),
        actor_id: ACTORS[f.actor].to_string(),
        scopes: f.scopes.iter().map(|&s| SCOPES[s].to_string()).collect(),
        status: KeyStatus::Active,
        metadata,
        last_used_at: f.last_used_h.map(|h| hours(now, h)),
        expires_at: f.expires_in_h.map(|h| hours(now, h)),
        created_at: now,
        updated_at: now,
        rate_limit: f
            .rate_limit
            .map(|(quota, window_secs)| RateLimitPolicy { quota, window_secs }),
        revocation_reason: RevocationReason::Unspecified,
        revocation_description: String::new(),
        allowed_cidrs: f.cidrs.iter().map(|&c| CIDRS[c].to_string()).collect(),
        request_id: f.request_id.map(|r| REQUEST_IDS[r].to_string()),
        visibility: f.visibility,
    }
}

/// What a caller can observe of an error: its kind. (`Other` messages
/// legitimately differ between backends.)
fn err_kind(e: &StoreError) -> &'static str {
    match e {
        StoreError::NotFound => "NotFound",
        StoreError::Conflict => "Conflict",
        StoreError::AlreadyRevoked => "AlreadyRevoked",
        StoreError::NotActive => "NotActive",
        StoreError::Timeout => "Timeout",
        StoreError::Unavailable(_) => "Unavailable",
        StoreError::Schema(_) => "Schema",
        StoreError::Other(_) => "Other",
    }
}

type Observed = Result<String, &'static str>;

fn observe<T: std::fmt::Debug>(r: Result<T, StoreError>, show: impl Fn(&T) -> String) -> Observed {
    match r {
        Ok(v) => Ok(show(&v)),
        Err(e) => Err(err_kind(&e)),
    }
}

/// Full contents (ApiKey's Debug hides fields; this shows all of them).
fn show_key(k: &ApiKey) -> String {
    format!(
        "{} {:?} {} name={:?} prefix={:?} actor={:?} scopes={:?} status={:?} meta={} last_used={:?} \
         expires={:?} created={:?} updated={:?} rl={:?} reason={:?} desc={:?} cidrs={:?} rid={:?} vis={:?}",
        k.nid, k.kind, k.key_id, k.name, k.token_prefix, k.actor_id, k.scopes, k.status,
        Value::Object(k.metadata.clone()), k.last_used_at, k.expires_at, k.created_at,
        k.updated_at, k.rate_limit, k.revocation_reason, k.revocation_description,
        k.allowed_cidrs, k.request_id, k.visibility
    )
}

fn show_keys(keys: &[ApiKey]) -> String {
    keys.iter().map(show_key).collect::<Vec<_>>().join("\n")
}

fn show_sorted(keys: &[ApiKey]) -> String {
    let mut keys = keys.to_vec();
    keys.sort_by(|a, b| a.key_id.cmp(&b.key_id));
    show_keys(&keys)
}

async fn apply(s: &dyn KeyStore, nid: NetworkId, op: &Op, now: Timestamp) -> Observed {
    match op {
        Op::Insert(kind, i, f) => observe(s.insert(&build(nid, *kind, *i, f, now)).await, |_| {
            "inserted".into()
        }),
        Op::BatchImport(items) => {
            let keys: Vec<ApiKey> = items
                .iter()
                .map(|(i, f)| build(nid, KeyKind::Imported, *i, f, now))
                .collect();
            observe(s.batch_insert_imported(&keys).await, |o| format!("{o:?}"))
        }
        Op::Get(kind, i) => observe(s.get(nid, *kind, &key_id(*kind, *i)).await, |k| {
            k.as_ref().map(show_key).unwrap_or_else(|| "none".into())
        }),
        Op::GetByRequestId(kind, r) => observe(
            s.get_by_request_id(nid, *kind, REQUEST_IDS[*r]).await,
            |k| k.as_ref().map(show_key).unwrap_or_else(|| "none".into()),
        ),
        Op::GetMany(kind, ids) => {
            let ids: Vec<String> = ids.iter().map(|&i| key_id(*kind, i)).collect();
            observe(s.get_many(nid, *kind, &ids).await, |k| show_sorted(k))
        }
        Op::List {
            kind,
            actor,
            status,
            after,
            limit,
        } => {
            let filter = ListFilter {
                actor_id: actor.map(|a| ACTORS[a].to_string()),
                status: *status,
            };
            let after = after.map(|i| key_id(*kind, i));
            observe(
                s.list(nid, *kind, &filter, after.as_deref(), *limit, now)
                    .await,
                |k| show_keys(k),
            )
        }
        Op::Update(kind, i, f) => {
            // Immutable fields in the argument differ on purpose: only the
            // mutable ones may be written.
            let mut k = build(nid, *kind, *i, f, now);
            k.status = KeyStatus::Revoked;
            k.created_at = Timestamp(0);
            observe(s.update(&k).await, |_| "updated".into())
        }
        Op::Revoke(kind, i, reason, desc) => observe(
            s.revoke(nid, *kind, &key_id(*kind, *i), *reason, desc, now)
                .await,
            show_key,
        ),
        Op::Delete(kind, i) => observe(s.delete(nid, *kind, &key_id(*kind, *i)).await, |_| {
            "deleted".into()
        }),
        Op::Rotate(old, new, f) => {
            let new_key = build(nid, KeyKind::Issued, *new, f, now);
            observe(
                s.rotate(nid, &key_id(KeyKind::Issued, *old), &new_key, now)
                    .await,
                show_key,
            )
        }
        Op::Touch(kind, ids, h) => {
            let ids: Vec<String> = ids.iter().map(|&i| key_id(*kind, i)).collect();
            observe(
                s.touch_last_used(nid, *kind, &ids, hours(now, *h)).await,
                |_| "touched".into(),
            )
        }
        Op::CountActive(cap) => observe(s.count_active(nid, *cap).await, |n| n.to_string()),
        Op::Advance(_) => Ok("tick".into()),
    }
}

async fn everything(s: &dyn KeyStore, nid: NetworkId, now: Timestamp) -> String {
    let mut out = String::new();
    for kind in [KeyKind::Issued, KeyKind::Imported] {
        let keys = s
            .list(nid, kind, &ListFilter::default(), None, 1000, now)
            .await
            .expect("list all");
        out.push_str(&show_keys(&keys));
        out.push('\n');
    }
    out
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let dsn = format!("sqlite://{}", dir.path().join("prop.db").display());
    let sqlite = open_store(&StoreOptions {
        dsn: Secret::new(dsn),
        max_connections: 2,
        ..StoreOptions::default()
    })
    .await
    .expect("open SQLite");
    let memory: Arc<dyn KeyStore> = Arc::new(MemoryKeyStore::new());
    let nid = NetworkId(Uuid::new_v4());
    let mut now = T0;
    for s in [&memory, &sqlite] {
        s.ensure_network(nid, now).await.unwrap();
    }
    for (step, op) in ops.iter().enumerate() {
        if let Op::Advance(h) = op {
            now = hours(now, *h);
        }
        let m = apply(memory.as_ref(), nid, op, now).await;
        let q = apply(sqlite.as_ref(), nid, op, now).await;
        prop_assert_eq!(m, q, "step {} {:?} at {:?}", step, op, now);
    }
    let later = Timestamp::from_millis(now.millis() + 400 * DAY_MS);
    for at in [now, later] {
        prop_assert_eq!(
            everything(memory.as_ref(), nid, at).await,
            everything(sqlite.as_ref(), nid, at).await
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(crate::config(64))]

    #[test]
    fn memory_and_sqlite_agree(ops in proptest::collection::vec(op(), 1..50)) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(run(ops))?;
    }
}

/// A fixed scenario touching every operation once, so a regression shows
/// up even if the random sequences are unlucky.
#[tokio::test]
async fn every_operation_once() {
    let f = Fields {
        name: "n".into(),
        actor: 1,
        scopes: vec![0, 1],
        metadata: Some(1),
        expires_in_h: Some(24),
        rate_limit: Some((10, Some(60))),
        cidrs: vec![0],
        request_id: Some(0),
        visibility: KeyVisibility::Secret,
        last_used_h: None,
    };
    let g = Fields {
        request_id: None,
        ..f.clone()
    };
    let ops = vec![
        Op::Insert(KeyKind::Issued, 0, f.clone()),
        Op::Insert(KeyKind::Issued, 1, f.clone()),
        Op::Insert(KeyKind::Imported, 0, f.clone()),
        Op::BatchImport(vec![(0, g.clone()), (1, g.clone()), (1, g.clone())]),
        Op::Get(KeyKind::Issued, 0),
        Op::GetByRequestId(KeyKind::Imported, 0),
        Op::GetMany(KeyKind::Imported, vec![0, 1, 2]),
        Op::List {
            kind: KeyKind::Issued,
            actor: Some(1),
            status: Some(KeyStatus::Active),
            after: None,
            limit: 10,
        },
        Op::Update(KeyKind::Issued, 0, g.clone()),
        Op::Touch(KeyKind::Issued, vec![0, 1], 1),
        Op::Rotate(0, 2, g.clone()),
        Op::Rotate(0, 3, g.clone()),
        Op::Revoke(
            KeyKind::Imported,
            1,
            RevocationReason::KeyCompromise,
            String::new(),
        ),
        Op::Revoke(
            KeyKind::Imported,
            1,
            RevocationReason::KeyCompromise,
            String::new(),
        ),
        Op::Delete(KeyKind::Imported, 1),
        Op::Delete(KeyKind::Imported, 1),
        Op::CountActive(10),
        Op::Advance(48),
        Op::List {
            kind: KeyKind::Issued,
            actor: Some(1),
            status: Some(KeyStatus::Expired),
            after: None,
            limit: 10,
        },
        Op::Rotate(1, 4, g),
    ];
    run(ops).await.unwrap();
}

#[test]
fn pools_are_distinct() {
    for kind in [KeyKind::Issued, KeyKind::Imported] {
        let ids: std::collections::BTreeSet<String> = (0..IDS).map(|i| key_id(kind, i)).collect();
        assert_eq!(ids.len(), IDS);
    }
    assert!(talos::domain::keys::is_issued_key_id(&key_id(
        KeyKind::Issued,
        3
    )));
    assert!(talos::domain::keys::is_imported_key_id(&key_id(
        KeyKind::Imported,
        3
    )));
}
