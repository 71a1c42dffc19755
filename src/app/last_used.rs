//! Asynchronous, batched, deduplicated `last_used_at` updates (spec §7.10).
//!
//! Verification enqueues without waiting; a full queue drops the update
//! (last-used is advisory). A worker flushes every `flush_interval` or when
//! `flush_size` distinct keys are pending, and once more on shutdown.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::domain::{KeyKind, NetworkId};
use crate::ports::{Clock, KeyStore};

type Entry = (NetworkId, KeyKind, String);

#[derive(Clone)]
pub struct LastUsedQueue {
    tx: mpsc::Sender<Entry>,
}

impl LastUsedQueue {
    /// Starts the worker. Dropping every clone of the queue makes the worker
    /// flush what it has and stop; await the handle to wait for that.
    pub fn start(
        store: Arc<dyn KeyStore>,
        clock: Arc<dyn Clock>,
        capacity: usize,
        flush_size: usize,
        flush_interval: Duration,
    ) -> (LastUsedQueue, JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Entry>(capacity.max(1));
        let handle = tokio::spawn(async move {
            let mut pending: HashSet<Entry> = HashSet::new();
            let mut tick = tokio::time::interval(flush_interval.max(Duration::from_millis(10)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    msg = rx.recv() => match msg {
                        Some(e) => {
                            pending.insert(e);
                            if pending.len() >= flush_size {
                                flush(&*store, &*clock, &mut pending).await;
                            }
                        }
                        None => {
                            flush(&*store, &*clock, &mut pending).await;
                            return;
                        }
                    },
                    _ = tick.tick() => flush(&*store, &*clock, &mut pending).await,
                }
            }
        });
        (LastUsedQueue { tx }, handle)
    }

    pub fn record(&self, nid: NetworkId, kind: KeyKind, key_id: &str) {
        // try_send: never block verification; drop when full.
        let _ = self.tx.try_send((nid, kind, key_id.to_string()));
    }
}

async fn flush(store: &dyn KeyStore, clock: &dyn Clock, pending: &mut HashSet<Entry>) {
    if pending.is_empty() {
        return;
    }
    let now = clock.now();
    let mut groups: std::collections::HashMap<(NetworkId, KeyKind), Vec<String>> =
        Default::default();
    for (nid, kind, id) in pending.drain() {
        groups.entry((nid, kind)).or_default().push(id);
    }
    for ((nid, kind), ids) in groups {
        if let Err(e) = store.touch_last_used(nid, kind, &ids, now).await {
            tracing::warn!(error = %e, count = ids.len(), "last-used update failed; dropped");
        }
    }
}
