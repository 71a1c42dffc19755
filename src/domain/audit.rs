//! Audit-event throttling (spec §13.4): `APIKeyVerificationFailed` is
//! emitted at most [`FAILURE_EVENTS_PER_WINDOW`] times per network per
//! minute, so a credential-stuffing burst cannot flood the audit stream.

use std::collections::HashMap;

use super::{NetworkId, Timestamp};

pub const FAILURE_EVENTS_PER_WINDOW: u32 = 10;
pub const WINDOW_MS: i64 = 60_000;
/// Idle buckets are dropped after this many windows without an event.
const IDLE_WINDOWS: i64 = 2;
/// How often [`EventThrottle::allow`] sweeps idle buckets.
const SWEEP_EVERY_MS: i64 = 5 * 60_000;

/// Fixed-window counter per network id.
#[derive(Debug, Default)]
pub struct EventThrottle {
    buckets: HashMap<NetworkId, (i64, u32)>,
    last_sweep: i64,
}

impl EventThrottle {
    /// Whether one more event for `nid` may be emitted at `now`.
    pub fn allow(&mut self, nid: NetworkId, now: Timestamp) -> bool {
        let now = now.0;
        if now - self.last_sweep >= SWEEP_EVERY_MS {
            self.buckets
                .retain(|_, (start, _)| now - *start < IDLE_WINDOWS * WINDOW_MS);
            self.last_sweep = now;
        }
        let bucket = self.buckets.entry(nid).or_insert((now, 0));
        if now - bucket.0 >= WINDOW_MS {
            *bucket = (now, 0);
        }
        if bucket.1 >= FAILURE_EVENTS_PER_WINDOW {
            return false;
        }
        bucket.1 += 1;
        true
    }

    /// Networks currently tracked (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nid(n: u128) -> NetworkId {
        NetworkId(uuid::Uuid::from_u128(n))
    }

    #[test]
    fn ten_per_minute_per_network() {
        let mut t = EventThrottle::default();
        let t0 = Timestamp(1_000_000);
        let allowed = (0..11).filter(|_| t.allow(nid(1), t0)).count();
        assert_eq!(allowed, 10, "the 11th event in a window is dropped");
        // Another network has its own budget.
        assert!(t.allow(nid(2), t0));
        // Still refused within the window, allowed again after it.
        assert!(!t.allow(nid(1), Timestamp(t0.0 + WINDOW_MS - 1)));
        assert!(t.allow(nid(1), Timestamp(t0.0 + WINDOW_MS)));
    }

    #[test]
    fn idle_buckets_are_swept() {
        let mut t = EventThrottle::default();
        let t0 = Timestamp(10 * SWEEP_EVERY_MS);
        for n in 0..100 {
            t.allow(nid(n), t0);
        }
        assert_eq!(t.tracked(), 100);
        // After two idle windows and a sweep interval only the new one remains.
        t.allow(nid(7), Timestamp(t0.0 + SWEEP_EVERY_MS));
        assert_eq!(t.tracked(), 1);
    }
}
