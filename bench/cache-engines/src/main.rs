//! 1M entries, each a 48-byte key and an `Arc` of a ~200-byte value (a
//! 96-byte struct and a 100-byte heap buffer, about a cached key view).
//! Prints the RSS growth per entry.

use std::sync::Arc;
use std::time::{Duration, Instant};
use moka::Expiry;

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines().find(|l| l.starts_with("VmRSS")).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap()
}
#[derive(Clone, Hash, PartialEq, Eq)]
struct K { nid: u128, id: [u8; 32] }
struct V { _buf: Box<[u8]>, _x: [u64; 12] }
struct PerEntry;
impl Expiry<K, (Arc<V>, Duration)> for PerEntry {
    fn expire_after_create(&self, _k: &K, v: &(Arc<V>, Duration), _n: Instant) -> Option<Duration> { Some(v.1) }
}
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mode = std::env::args().nth(1).unwrap();
    let n: u64 = 1_000_000;
    let before = rss_kib();
    let t = Instant::now();
    match mode.as_str() {
        "perentry" => {
            let c: moka::future::Cache<K, (Arc<V>, Duration)> = moka::future::Cache::builder().max_capacity(10_000_000_000).weigher(|_k, _v| 300).expire_after(PerEntry).build();
            for i in 0..n { c.insert(K { nid: 1, id: { let mut a = [0u8;32]; a[..8].copy_from_slice(&i.to_le_bytes()); a } }, (Arc::new(V { _buf: vec![7u8; 100].into(), _x: [0; 12] }), Duration::from_secs(3600))).await; }
            c.run_pending_tasks().await;
            eprintln!("{} entries", c.entry_count());
        }
        "global" => {
            let c: moka::future::Cache<K, Arc<V>> = moka::future::Cache::builder().max_capacity(10_000_000_000).weigher(|_k, _v| 300).time_to_live(Duration::from_secs(3600)).build();
            for i in 0..n { c.insert(K { nid: 1, id: { let mut a = [0u8;32]; a[..8].copy_from_slice(&i.to_le_bytes()); a } }, Arc::new(V { _buf: vec![7u8; 100].into(), _x: [0; 12] })).await; }
            c.run_pending_tasks().await;
            eprintln!("{} entries", c.entry_count());
        }
        "sync_global" => {
            let c: moka::sync::Cache<K, Arc<V>> = moka::sync::Cache::builder().max_capacity(10_000_000_000).weigher(|_k, _v| 300).time_to_live(Duration::from_secs(3600)).build();
            for i in 0..n { c.insert(K { nid: 1, id: { let mut a = [0u8;32]; a[..8].copy_from_slice(&i.to_le_bytes()); a } }, Arc::new(V { _buf: vec![7u8; 100].into(), _x: [0; 12] })); }
            c.run_pending_tasks();
            eprintln!("{} entries", c.entry_count());
        }
        "quick" => {
            let c: quick_cache::sync::Cache<K, Arc<V>, W> = quick_cache::sync::Cache::with_weighter(n as usize * 2, 10_000_000_000, W);
            for i in 0..n { c.insert(K { nid: 1, id: { let mut a = [0u8;32]; a[..8].copy_from_slice(&i.to_le_bytes()); a } }, Arc::new(V { _buf: vec![7u8; 100].into(), _x: [0; 12] })); }
            eprintln!("{} entries", c.len());
        }
        "values_only" => {
            let mut v = Vec::with_capacity(n as usize);
            for _ in 0..n { v.push(Arc::new(V { _buf: vec![7u8; 100].into(), _x: [0; 12] })); }
            eprintln!("{}", v.len());
            let after = rss_kib();
            println!("{mode}: {:.0} B/entry", (after - before) as f64 * 1024.0 / n as f64);
            return;
        }
        _ => panic!(),
    }
    let after = rss_kib();
    println!("{mode}: {:.0} B/entry in {:?}", (after - before) as f64 * 1024.0 / n as f64, t.elapsed());
}

#[derive(Clone)]
struct W;
impl quick_cache::Weighter<K, Arc<V>> for W {
    fn weight(&self, _k: &K, _v: &Arc<V>) -> u64 { 300 }
}
