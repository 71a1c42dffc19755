//! The memory cache's engine: a sharded open-addressing hash table of
//! `Arc<KeyView>`, with CLOCK eviction by weight and a deadline per entry.
//!
//! Why not a general cache crate (quick_cache before, moka before that): with
//! a million cached keys, a verification's cache hit is dominated by
//! dependent memory misses, and a general engine adds hops — quick_cache
//! reads the hash table's control bytes, then its index bucket, then a slab
//! entry holding the key and value, then the `Arc` the value points to. Here
//! a slot holds the key's hash, the entry's deadline and reference bit, and
//! the `Arc` itself, and the key's identity (tenant and id) is compared on the
//! view behind the `Arc`, which a hit reads anyway. A hit costs two misses:
//! the slot and the view (bench/RESULTS.md, in-process verify).
//!
//! Layout: linear probing with backward-shift deletion (no tombstones), at
//! most 3/4 full; the table of a shard doubles when it would pass that. Reads
//! take the shard's read lock and set the entry's reference bit with a
//! relaxed atomic; writes take the write lock. Eviction is CLOCK over the
//! slots: an expired entry, or one not read since the hand last passed, goes.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use uuid::Uuid;

use crate::domain::keys::issued_key_uuid;
use crate::domain::view::KeyView;
use crate::domain::NetworkId;

/// What a lookup is for: a tenant and a key id, with the id's binary form
/// when it is an issued key's canonical UUID (then the comparison reads no
/// string). Only the canonical spelling has a binary form, so two distinct
/// id strings never compare equal.
#[derive(Clone, Copy)]
pub(super) struct Probe<'a> {
    nid: NetworkId,
    key_id: &'a str,
    uuid: Option<Uuid>,
}

impl<'a> Probe<'a> {
    pub(super) fn new(nid: NetworkId, key_id: &'a str) -> Self {
        Probe {
            nid,
            key_id,
            uuid: issued_key_uuid(key_id),
        }
    }

    pub(super) fn of_view(v: &'a KeyView) -> Self {
        Probe {
            nid: v.nid,
            key_id: v.key_id(),
            uuid: v.issued_uuid(),
        }
    }

    fn matches(&self, v: &KeyView) -> bool {
        v.nid == self.nid
            && match self.uuid {
                Some(u) => v.issued_uuid() == Some(u),
                None => v.key_id() == self.key_id,
            }
    }

    fn hash(&self, h: &foldhash::fast::RandomState) -> u64 {
        match self.uuid {
            Some(u) => hash_issued(h, self.nid, u),
            None => h.hash_one((self.nid.0.as_u128(), self.key_id)),
        }
    }
}

fn hash_issued(h: &foldhash::fast::RandomState, nid: NetworkId, id: Uuid) -> u64 {
    h.hash_one((nid.0.as_u128(), id.as_u128()))
}

/// Set in a slot's `meta` when the entry was read since the hand passed.
const REFERENCED: u64 = 1 << 63;

struct Slot {
    hash: u64,
    /// The deadline in µs since the table's epoch, and [`REFERENCED`].
    meta: AtomicU64,
    view: Option<Arc<KeyView>>,
}

impl Slot {
    fn empty() -> Slot {
        Slot {
            hash: 0,
            meta: AtomicU64::new(0),
            view: None,
        }
    }
}

#[derive(Default)]
struct Shard {
    /// A power of two long (or empty before the first insert).
    slots: Vec<Slot>,
    len: usize,
    weight: u64,
    hand: usize,
}

pub(super) type Weigh = fn(&KeyView) -> u64;

/// A shard behind its lock, and a copy of where its slots are that
/// [`Table::prefetch`] reads without the lock (updated under the write lock
/// whenever the slot array is replaced; a stale copy only wastes a prefetch).
struct Cell {
    shard: RwLock<Shard>,
    slots: AtomicPtr<Slot>,
    mask: AtomicUsize,
}

impl Cell {
    fn publish(&self, shard: &Shard) {
        let base = if shard.slots.is_empty() {
            std::ptr::null_mut()
        } else {
            shard.slots.as_ptr().cast_mut()
        };
        self.slots.store(base, Relaxed);
        self.mask.store(shard.mask(), Relaxed);
    }
}

pub(super) struct Table {
    shards: Box<[Cell]>,
    shard_bits: u32,
    shard_max: u64,
    hasher: foldhash::fast::RandomState,
    epoch: Instant,
    weigh: Weigh,
}

/// Bytes of budget per shard below which fewer shards are used, so a small
/// cache is not cut into slivers too small for one entry.
const MIN_SHARD_BYTES: u64 = 256 * 1024;
const MAX_SHARDS: u64 = 64;
const FIRST_CAPACITY: usize = 16;

impl Table {
    /// A table whose entries weigh at most `max_weight` together.
    pub(super) fn new(max_weight: u64, weigh: Weigh) -> Self {
        let shards = (max_weight / MIN_SHARD_BYTES)
            .clamp(1, MAX_SHARDS)
            .next_power_of_two()
            .min(MAX_SHARDS);
        let shard_bits = shards.trailing_zeros();
        Table {
            shards: (0..shards)
                .map(|_| Cell {
                    shard: RwLock::new(Shard::default()),
                    slots: AtomicPtr::new(std::ptr::null_mut()),
                    mask: AtomicUsize::new(0),
                })
                .collect(),
            shard_bits,
            shard_max: max_weight / shards,
            hasher: foldhash::fast::RandomState::default(),
            epoch: Instant::now(),
            weigh,
        }
    }

    fn micros(&self, t: Instant) -> u64 {
        (t.saturating_duration_since(self.epoch).as_micros() as u64).min(REFERENCED - 1)
    }

    fn cell(&self, hash: u64) -> &Cell {
        let i = if self.shard_bits == 0 {
            0
        } else {
            hash >> (64 - self.shard_bits)
        };
        &self.shards[i as usize]
    }

    fn read(&self, hash: u64) -> RwLockReadGuard<'_, Shard> {
        self.cell(hash)
            .shard
            .read()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self, hash: u64) -> RwLockWriteGuard<'_, Shard> {
        self.cell(hash)
            .shard
            .write()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Starts loading the slot where the issued key `id`'s lookup begins,
    /// without taking the shard's lock.
    pub(super) fn prefetch(&self, nid: NetworkId, id: Uuid) {
        let hash = hash_issued(&self.hasher, nid, id);
        let cell = self.cell(hash);
        let base = cell.slots.load(Relaxed);
        if base.is_null() {
            return;
        }
        let slot = base.wrapping_add(hash as usize & cell.mask.load(Relaxed));
        // A slot may straddle two cache lines.
        prefetch_line(slot.cast());
        prefetch_line(slot.cast::<u8>().wrapping_add(size_of::<Slot>() - 1));
    }

    /// The entry for `probe` if it has not reached its deadline; an expired
    /// one is removed.
    pub(super) fn get(&self, probe: Probe<'_>, now: Instant) -> Option<Arc<KeyView>> {
        let hash = probe.hash(&self.hasher);
        let now = self.micros(now);
        {
            let shard = self.read(hash);
            let slot = &shard.slots[shard.find(hash, &probe)?];
            let meta = slot.meta.load(Relaxed);
            if meta & !REFERENCED > now {
                if meta & REFERENCED == 0 {
                    slot.meta.fetch_or(REFERENCED, Relaxed);
                }
                return slot.view.clone();
            }
        }
        let mut shard = self.write(hash);
        if let Some(i) = shard.find(hash, &probe) {
            if *shard.slots[i].meta.get_mut() & !REFERENCED <= now {
                shard.remove_at(i, self.weigh);
            }
        }
        None
    }

    /// Stores `view` until `until`, replacing its key's entry, and evicts
    /// until the shard is within its budget. An entry heavier than a whole
    /// shard is not stored (and its key's old entry is dropped).
    pub(super) fn insert(&self, view: Arc<KeyView>, until: Instant, now: Instant) {
        let probe = Probe::of_view(&view);
        let hash = probe.hash(&self.hasher);
        let (until, now) = (self.micros(until), self.micros(now));
        let weight = (self.weigh)(&view);
        let mut shard = self.write(hash);
        if let Some(i) = shard.find(hash, &probe) {
            shard.remove_at(i, self.weigh);
        }
        if weight > self.shard_max || until <= now {
            return;
        }
        while shard.weight + weight > self.shard_max && shard.evict_one(now, self.weigh) {}
        shard.place(Slot {
            hash,
            meta: AtomicU64::new(until),
            view: Some(view),
        });
        shard.weight += weight;
        self.cell(hash).publish(&shard);
    }

    /// Removes `probe`'s entry; with `only`, only if it is that very view.
    pub(super) fn remove(&self, probe: Probe<'_>, only: Option<&Arc<KeyView>>) {
        let hash = probe.hash(&self.hasher);
        let mut shard = self.write(hash);
        if let Some(i) = shard.find(hash, &probe) {
            let same = match (only, &shard.slots[i].view) {
                (Some(only), Some(v)) => Arc::ptr_eq(only, v),
                _ => true,
            };
            if same {
                shard.remove_at(i, self.weigh);
            }
        }
    }

    pub(super) fn clear(&self) {
        for cell in self.shards.iter() {
            let mut s = cell.shard.write().unwrap_or_else(|p| p.into_inner());
            *s = Shard::default();
            cell.publish(&s);
        }
    }

    fn sum(&self, f: impl Fn(&Shard) -> u64) -> u64 {
        self.shards
            .iter()
            .map(|c| f(&c.shard.read().unwrap_or_else(|p| p.into_inner())))
            .sum()
    }

    pub(super) fn len(&self) -> u64 {
        self.sum(|s| s.len as u64)
    }

    pub(super) fn weight(&self) -> u64 {
        self.sum(|s| s.weight)
    }

    /// Deadline of `probe`'s entry, for tests.
    #[cfg(test)]
    fn deadline(&self, probe: Probe<'_>) -> Option<std::time::Duration> {
        let hash = probe.hash(&self.hasher);
        let shard = self.read(hash);
        let i = shard.find(hash, &probe)?;
        Some(std::time::Duration::from_micros(
            shard.slots[i].meta.load(Relaxed) & !REFERENCED,
        ))
    }
}

/// PREFETCHT0 of the line holding `p`.
#[inline(always)]
fn prefetch_line(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint with no architectural effect: it never
    // faults and reads nothing into the program, whatever the address (this
    // one may be stale after a resize, which only wastes the prefetch).
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

impl Shard {
    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    fn find(&self, hash: u64, probe: &Probe<'_>) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.mask();
        let mut i = hash as usize & mask;
        loop {
            let slot = &self.slots[i];
            match &slot.view {
                None => return None,
                Some(v) if slot.hash == hash && probe.matches(v) => return Some(i),
                Some(_) => i = (i + 1) & mask,
            }
        }
    }

    /// Puts a slot known not to be in the table, growing it first if needed.
    fn place(&mut self, slot: Slot) {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        let mask = self.mask();
        let mut i = slot.hash as usize & mask;
        while self.slots[i].view.is_some() {
            i = (i + 1) & mask;
        }
        self.slots[i] = slot;
        self.len += 1;
    }

    fn grow(&mut self) {
        let capacity = (self.slots.len() * 2).max(FIRST_CAPACITY);
        let old = std::mem::replace(
            &mut self.slots,
            (0..capacity).map(|_| Slot::empty()).collect(),
        );
        self.len = 0;
        self.hand = 0;
        for slot in old.into_iter().filter(|s| s.view.is_some()) {
            self.place(slot);
        }
    }

    /// Empties slot `i` and shifts back the entries after it that probed
    /// past it, so every entry stays reachable from its home slot.
    fn remove_at(&mut self, mut i: usize, weigh: Weigh) {
        let mask = self.mask();
        if let Some(v) = self.slots[i].view.take() {
            self.weight -= weigh(&v);
            self.len -= 1;
        }
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            if self.slots[j].view.is_none() {
                return;
            }
            let home = self.slots[j].hash as usize & mask;
            // Slot j may move to i unless its home lies cyclically in (i, j].
            let stays = if i <= j {
                i < home && home <= j
            } else {
                i < home || home <= j
            };
            if !stays {
                self.slots.swap(i, j);
                i = j;
            }
        }
    }

    /// Evicts one entry with the CLOCK hand; false if the shard is empty.
    fn evict_one(&mut self, now: u64, weigh: Weigh) -> bool {
        if self.len == 0 {
            return false;
        }
        let mask = self.mask();
        // Two turns at most: the first clears every reference bit.
        for _ in 0..=2 * self.slots.len() {
            let i = self.hand & mask;
            let slot = &mut self.slots[i];
            if slot.view.is_none() {
                self.hand = i + 1;
                continue;
            }
            let meta = slot.meta.get_mut();
            if *meta & REFERENCED != 0 && *meta & !REFERENCED > now {
                *meta &= !REFERENCED;
                self.hand = i + 1;
                continue;
            }
            // The hand stays: the backward shift may move an entry here.
            self.remove_at(i, weigh);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::adapters::cache::test_view as view;

    fn unit(_: &KeyView) -> u64 {
        1
    }

    fn probe(nid: u128, key_id: &str) -> Probe<'_> {
        Probe::new(NetworkId(Uuid::from_u128(nid)), key_id)
    }

    const HOUR: Duration = Duration::from_secs(3600);

    /// Every stored entry is found from its home slot, the counters agree
    /// with the slots, and the load stays at most 3/4.
    fn check_invariants(t: &Table) {
        for c in t.shards.iter() {
            let s = c.shard.read().unwrap();
            if !s.slots.is_empty() {
                assert_eq!(c.slots.load(Relaxed).cast_const(), s.slots.as_ptr());
                assert_eq!(c.mask.load(Relaxed), s.mask());
            }
            let live: Vec<&Slot> = s.slots.iter().filter(|x| x.view.is_some()).collect();
            assert_eq!(live.len(), s.len);
            assert_eq!(
                live.iter()
                    .map(|x| unit(x.view.as_ref().unwrap()))
                    .sum::<u64>(),
                s.weight
            );
            assert!(s.len * 4 <= s.slots.len() * 3);
            for x in live {
                let v = x.view.as_ref().unwrap();
                let p = Probe::of_view(v);
                let i = s.find(x.hash, &p).expect("reachable");
                assert!(Arc::ptr_eq(s.slots[i].view.as_ref().unwrap(), v));
            }
        }
    }

    #[test]
    fn finds_what_it_stores_through_growth_and_removal() {
        let t = Table::new(1 << 40, unit);
        let now = Instant::now();
        let ids: Vec<String> = (0..5000u128)
            .map(|i| Uuid::from_u128(i * 7919).to_string())
            .collect();
        for id in &ids {
            t.insert(view(1, id), now + HOUR, now);
        }
        // Imported-style and odd ids take the string comparison.
        let hex = "ab".repeat(32);
        t.insert(view(1, &hex), now + HOUR, now);
        t.insert(view(1, "ODD"), now + HOUR, now);
        assert_eq!(t.len(), 5002);
        check_invariants(&t);
        for id in &ids {
            assert_eq!(t.get(probe(1, id), now).unwrap().key_id(), id);
            assert!(t.get(probe(2, id), now).is_none(), "another tenant");
        }
        let upper = ids[1].to_uppercase();
        assert_ne!(upper, ids[1]);
        assert!(
            t.get(probe(1, &upper), now).is_none(),
            "not the canonical spelling"
        );
        assert!(t.get(probe(1, &hex), now).is_some());
        assert!(t.get(probe(1, "ODD"), now).is_some());
        assert!(t.get(probe(1, "odd"), now).is_none());
        // Remove every other key: the rest stay reachable.
        for id in ids.iter().step_by(2) {
            t.remove(probe(1, id), None);
        }
        check_invariants(&t);
        for (n, id) in ids.iter().enumerate() {
            assert_eq!(t.get(probe(1, id), now).is_some(), n % 2 == 1, "{n}");
        }
        assert_eq!(t.len(), 2502);
    }

    #[test]
    fn a_put_replaces_and_a_conditional_remove_checks_identity() {
        let t = Table::new(1 << 40, unit);
        let now = Instant::now();
        let id = "792b4c1a-1a2d-430b-b733-c789a2b7b1fe";
        let (a, b) = (view(1, id), view(1, id));
        t.insert(a.clone(), now + HOUR, now);
        t.insert(b.clone(), now + HOUR, now);
        assert_eq!(t.len(), 1);
        assert!(Arc::ptr_eq(&t.get(probe(1, id), now).unwrap(), &b));
        t.remove(probe(1, id), Some(&a));
        assert!(t.get(probe(1, id), now).is_some(), "not the stored view");
        t.remove(probe(1, id), Some(&b));
        assert!(t.get(probe(1, id), now).is_none());
    }

    #[test]
    fn an_expired_entry_is_not_returned_and_is_dropped() {
        let t = Table::new(1 << 40, unit);
        let now = Instant::now();
        let id = "792b4c1a-1a2d-430b-b733-c789a2b7b1fe";
        t.insert(view(1, id), now + Duration::from_millis(5), now);
        assert!(t.deadline(probe(1, id)).is_some());
        assert!(t
            .get(probe(1, id), now + Duration::from_millis(4))
            .is_some());
        assert!(t
            .get(probe(1, id), now + Duration::from_millis(5))
            .is_none());
        assert_eq!(t.len(), 0);
        t.insert(view(1, id), now, now);
        assert_eq!(t.len(), 0, "nothing stored for no time");
    }

    #[test]
    fn clock_keeps_recently_read_entries_and_respects_the_bound() {
        // One shard of 100 units.
        let t = Table::new(100, unit);
        let now = Instant::now();
        let hot: Vec<String> = (0..50u128)
            .map(|i| Uuid::from_u128(i + 1).to_string())
            .collect();
        for id in &hot {
            t.insert(view(1, id), now + HOUR, now);
        }
        for round in 0..20u128 {
            for id in &hot {
                assert!(
                    t.get(probe(1, id), now).is_some(),
                    "hot key evicted in round {round}"
                );
            }
            for i in 0..10u128 {
                let cold = Uuid::from_u128(1_000_000 + round * 10 + i).to_string();
                t.insert(view(1, &cold), now + HOUR, now);
            }
            assert!(t.weight() <= 100);
            check_invariants(&t);
        }
        assert_eq!(t.len(), 100);
    }

    #[test]
    fn expired_entries_go_first() {
        let t = Table::new(10, unit);
        let now = Instant::now();
        for i in 0..10u128 {
            let ttl = if i == 3 {
                Duration::from_millis(1)
            } else {
                HOUR
            };
            t.insert(view(1, &Uuid::from_u128(i + 1).to_string()), now + ttl, now);
            t.get(probe(1, &Uuid::from_u128(i + 1).to_string()), now);
        }
        let later = now + Duration::from_millis(2);
        t.insert(
            view(1, &Uuid::from_u128(99).to_string()),
            later + HOUR,
            later,
        );
        assert!(t
            .deadline(probe(1, &Uuid::from_u128(4).to_string()))
            .is_none());
        assert_eq!(t.len(), 10);
    }

    #[test]
    fn too_heavy_is_not_stored() {
        let t = Table::new(10, |_| 11);
        let now = Instant::now();
        t.insert(view(1, "x"), now + HOUR, now);
        assert_eq!(t.len(), 0);
        assert_eq!(t.weight(), 0);
    }

    #[test]
    fn concurrent_readers_and_writers_agree() {
        let t = Arc::new(Table::new(1 << 40, unit));
        let now = Instant::now();
        let threads: Vec<_> = (0..4u128)
            .map(|n| {
                let t = t.clone();
                std::thread::spawn(move || {
                    for i in 0..2000u128 {
                        let id = Uuid::from_u128(n << 64 | i).to_string();
                        t.insert(view(1, &id), now + HOUR, now);
                        assert!(t.get(probe(1, &id), now).is_some());
                        if i % 3 == 0 {
                            t.remove(probe(1, &id), None);
                            assert!(t.get(probe(1, &id), now).is_none());
                        }
                    }
                })
            })
            .collect();
        for th in threads {
            th.join().unwrap();
        }
        assert_eq!(t.len(), 4 * (2000 - 667));
        check_invariants(&t);
    }
}
