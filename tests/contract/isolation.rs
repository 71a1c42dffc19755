//! Property test: random sequences of operations across three tenants, on
//! every backend. Whatever the sequence, a tenant only ever sees, changes or
//! deletes its own keys; the same key id may exist in two tenants without
//! either noticing the other. A model of who owns what predicts every
//! answer.
//!
//! Sequences are drawn with proptest strategies from a seeded RNG (printed
//! on failure; set `TALOS_PROP_SEED` to replay one). The store is async,
//! so the runner draws values rather than driving proptest's sync loop.

use std::collections::{BTreeSet, HashMap};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use talos::domain::{KeyKind, ListFilter, NetworkId, RevocationReason};
use talos::ports::StoreError;

use crate::support::*;

const TENANTS: usize = 3;
const SEQUENCES: usize = 6;
const OPS: usize = 40;

#[derive(Clone, Debug)]
enum Op {
    /// A new key in `tenant`; with `reuse`, it takes the id of an existing
    /// entry (possibly another tenant's).
    Create {
        tenant: usize,
        imported: bool,
        reuse: Option<usize>,
    },
    Get {
        tenant: usize,
        entry: usize,
    },
    List {
        tenant: usize,
        imported: bool,
    },
    Update {
        tenant: usize,
        entry: usize,
    },
    Revoke {
        tenant: usize,
        entry: usize,
    },
    Rotate {
        tenant: usize,
        entry: usize,
    },
    Delete {
        tenant: usize,
        entry: usize,
    },
    Touch {
        tenant: usize,
        entry: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let t = 0..TENANTS;
    let e = any::<usize>();
    prop_oneof![
        3 => (t.clone(), any::<bool>(), proptest::option::weighted(0.3, any::<usize>()))
            .prop_map(|(tenant, imported, reuse)| Op::Create { tenant, imported, reuse }),
        3 => (t.clone(), e).prop_map(|(tenant, entry)| Op::Get { tenant, entry }),
        1 => (t.clone(), any::<bool>()).prop_map(|(tenant, imported)| Op::List { tenant, imported }),
        2 => (t.clone(), e).prop_map(|(tenant, entry)| Op::Update { tenant, entry }),
        2 => (t.clone(), e).prop_map(|(tenant, entry)| Op::Revoke { tenant, entry }),
        1 => (t.clone(), e).prop_map(|(tenant, entry)| Op::Rotate { tenant, entry }),
        1 => (t.clone(), e).prop_map(|(tenant, entry)| Op::Delete { tenant, entry }),
        1 => (t, e).prop_map(|(tenant, entry)| Op::Touch { tenant, entry }),
    ]
}

/// What the model knows about one stored row.
#[derive(Clone, Debug)]
struct Row {
    name: String,
    revoked: bool,
    touched: bool,
}

type Key = (usize, KeyKind, String);

struct Model {
    rows: HashMap<Key, Row>,
    /// Every (kind, id) ever created, for ops to pick from.
    ids: Vec<(KeyKind, String)>,
}

impl Model {
    fn pick(&self, entry: usize) -> Option<(KeyKind, String)> {
        (!self.ids.is_empty()).then(|| self.ids[entry % self.ids.len()].clone())
    }
}

fn draw_sequences(seed: [u8; 32]) -> Vec<Vec<Op>> {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed),
    );
    let strat = proptest::collection::vec(op(), OPS);
    (0..SEQUENCES)
        .map(|_| strat.new_tree(&mut runner).expect("draw").current())
        .collect()
}

fn seed() -> [u8; 32] {
    let hex = std::env::var("TALOS_PROP_SEED")
        .unwrap_or_else(|_| format!("{:064x}", uuid::Uuid::new_v4().as_u128()));
    let mut s = [0u8; 32];
    for (i, b) in s.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2).unwrap_or("00"), 16).unwrap_or(0);
    }
    s
}

pub async fn tenant_isolation_random_ops(s: Store) {
    let seed = seed();
    let seed_hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    for (n, ops) in draw_sequences(seed).into_iter().enumerate() {
        let mut nets = Vec::new();
        for _ in 0..TENANTS {
            nets.push(new_network(&s).await);
        }
        let mut m = Model {
            rows: HashMap::new(),
            ids: Vec::new(),
        };
        for (i, op) in ops.iter().enumerate() {
            let ctx = format!("TALOS_PROP_SEED={seed_hex} sequence {n} op {i}: {op:?}");
            apply(&s, &nets, &mut m, op, &ctx).await;
        }
        // Final check: every tenant sees exactly its own rows.
        for (tenant, nid) in nets.iter().enumerate() {
            for kind in KINDS {
                check_list(
                    &s,
                    *nid,
                    tenant,
                    kind,
                    &m,
                    &format!("final, seed {seed_hex}"),
                )
                .await;
            }
        }
    }
}

async fn check_list(s: &Store, nid: NetworkId, tenant: usize, kind: KeyKind, m: &Model, ctx: &str) {
    let got: BTreeSet<String> = s
        .list(nid, kind, &ListFilter::default(), None, 1000, t(DAY_MS))
        .await
        .unwrap()
        .into_iter()
        .map(|k| {
            assert_eq!(k.nid, nid, "{ctx}: a listed row from another tenant");
            k.key_id
        })
        .collect();
    let want: BTreeSet<String> = m
        .rows
        .keys()
        .filter(|(t, k, _)| *t == tenant && *k == kind)
        .map(|(_, _, id)| id.clone())
        .collect();
    assert_eq!(got, want, "{ctx}: list of tenant {tenant} {kind:?}");
}

async fn apply(s: &Store, nets: &[NetworkId], m: &mut Model, op: &Op, ctx: &str) {
    let now = t(DAY_MS);
    match *op {
        Op::Create {
            tenant,
            imported,
            reuse,
        } => {
            let kind = if imported {
                KeyKind::Imported
            } else {
                KeyKind::Issued
            };
            let mut k = key_of(kind, nets[tenant]);
            if let Some((rk, rid)) = reuse.and_then(|r| m.pick(r)) {
                if rk == kind && !m.rows.contains_key(&(tenant, kind, rid.clone())) {
                    k.key_id = rid;
                }
            }
            k.name = format!("t{tenant}");
            s.insert(&k)
                .await
                .unwrap_or_else(|e| panic!("{ctx}: insert: {e}"));
            m.rows.insert(
                (tenant, kind, k.key_id.clone()),
                Row {
                    name: k.name.clone(),
                    revoked: false,
                    touched: false,
                },
            );
            m.ids.push((kind, k.key_id));
        }
        Op::Get { tenant, entry } => {
            let Some((kind, id)) = m.pick(entry) else {
                return;
            };
            let got = s.get(nets[tenant], kind, &id).await.unwrap();
            let want = m.rows.get(&(tenant, kind, id));
            match (got, want) {
                (None, None) => {}
                (Some(k), Some(row)) => {
                    assert_eq!(k.nid, nets[tenant], "{ctx}");
                    assert_eq!(k.name, row.name, "{ctx}: another tenant's write leaked in");
                    assert_eq!(
                        k.status == talos::domain::KeyStatus::Revoked,
                        row.revoked,
                        "{ctx}"
                    );
                    assert_eq!(k.last_used_at.is_some(), row.touched, "{ctx}: last-used");
                }
                (got, want) => panic!(
                    "{ctx}: get returned {:?}, model says {want:?}",
                    got.map(|k| k.key_id)
                ),
            }
        }
        Op::List { tenant, imported } => {
            let kind = if imported {
                KeyKind::Imported
            } else {
                KeyKind::Issued
            };
            check_list(s, nets[tenant], tenant, kind, m, ctx).await;
        }
        Op::Update { tenant, entry } => {
            let Some((kind, id)) = m.pick(entry) else {
                return;
            };
            let mut k = key_of(kind, nets[tenant]);
            k.key_id = id.clone();
            k.name = format!("updated-by-t{tenant}");
            let r = s.update(&k).await;
            match m.rows.get_mut(&(tenant, kind, id)) {
                Some(row) => {
                    r.unwrap_or_else(|e| panic!("{ctx}: owner update: {e}"));
                    row.name = k.name;
                    // `update` writes mutable fields only; status stays.
                }
                None => assert!(matches!(r, Err(StoreError::NotFound)), "{ctx}: {r:?}"),
            }
        }
        Op::Revoke { tenant, entry } => {
            let Some((kind, id)) = m.pick(entry) else {
                return;
            };
            let r = s
                .revoke(
                    nets[tenant],
                    kind,
                    &id,
                    RevocationReason::KeyCompromise,
                    "",
                    now,
                )
                .await;
            match m.rows.get_mut(&(tenant, kind, id)) {
                Some(row) if !row.revoked => {
                    assert_eq!(r.unwrap_or_else(|e| panic!("{ctx}: {e}")).nid, nets[tenant]);
                    row.revoked = true;
                }
                Some(_) => assert!(
                    matches!(r, Err(ref e) if !matches!(e, StoreError::NotFound)),
                    "{ctx}: revoking a revoked key is a conflict: {r:?}"
                ),
                None => assert!(matches!(r, Err(StoreError::NotFound)), "{ctx}: {r:?}"),
            }
        }
        Op::Rotate { tenant, entry } => {
            let Some((kind, id)) = m.pick(entry) else {
                return;
            };
            if kind != KeyKind::Issued {
                return;
            }
            let mut new = issued(nets[tenant]);
            new.name = format!("rotated-t{tenant}");
            let r = s.rotate(nets[tenant], &id, &new, now).await;
            match m.rows.get(&(tenant, kind, id.clone())).cloned() {
                Some(row) if !row.revoked => {
                    r.unwrap_or_else(|e| panic!("{ctx}: owner rotate: {e}"));
                    m.rows.get_mut(&(tenant, kind, id)).unwrap().revoked = true;
                    m.rows.insert(
                        (tenant, kind, new.key_id.clone()),
                        Row {
                            name: new.name.clone(),
                            revoked: false,
                            touched: false,
                        },
                    );
                    m.ids.push((kind, new.key_id));
                }
                Some(_) => assert!(
                    matches!(r, Err(ref e) if !matches!(e, StoreError::NotFound)),
                    "{ctx}: {r:?}"
                ),
                None => {
                    assert!(matches!(r, Err(StoreError::NotFound)), "{ctx}: {r:?}");
                    assert_eq!(
                        s.get(nets[tenant], kind, &new.key_id).await.unwrap(),
                        None,
                        "{ctx}"
                    );
                }
            }
        }
        Op::Delete { tenant, entry } => {
            let Some((kind, id)) = m.pick(entry) else {
                return;
            };
            let r = s.delete(nets[tenant], kind, &id).await;
            match m.rows.remove(&(tenant, kind, id)) {
                Some(_) => r.unwrap_or_else(|e| panic!("{ctx}: owner delete: {e}")),
                None => assert!(matches!(r, Err(StoreError::NotFound)), "{ctx}: {r:?}"),
            }
        }
        Op::Touch { tenant, entry } => {
            let Some((kind, id)) = m.pick(entry) else {
                return;
            };
            s.touch_last_used(nets[tenant], kind, std::slice::from_ref(&id), now)
                .await
                .unwrap_or_else(|e| panic!("{ctx}: touch: {e}"));
            if let Some(row) = m.rows.get_mut(&(tenant, kind, id.clone())) {
                row.touched = true;
            }
            // Every tenant's row with this id carries a timestamp only if
            // that tenant touched it.
            for (other, nid) in nets.iter().enumerate() {
                let got = s.get(*nid, kind, &id).await.unwrap();
                let want = m.rows.get(&(other, kind, id.clone()));
                assert_eq!(got.is_some(), want.is_some(), "{ctx}");
                if let (Some(k), Some(row)) = (got, want) {
                    assert_eq!(
                        k.last_used_at.is_some(),
                        row.touched,
                        "{ctx}: tenant {other}"
                    );
                }
            }
        }
    }
}
