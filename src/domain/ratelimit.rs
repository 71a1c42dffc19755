//! GCRA (generic cell rate algorithm) for per-key rate limits.
//!
//! A policy of `quota` requests per `window` has emission interval
//! `T = window / quota` and admits bursts of up to `quota`. The only state is
//! one number per key: the theoretical arrival time (TAT). The same
//! arithmetic runs in memory and, as a Lua script, inside Redis.

/// Window used when a policy has a quota but no window.
pub const DEFAULT_WINDOW_MS: i64 = 60_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Requests still admissible right now after this one.
    pub remaining: i64,
    /// Milliseconds until the bucket is full again.
    pub reset_after_ms: i64,
    /// When denied: milliseconds until a request would be admitted.
    pub retry_after_ms: i64,
    /// TAT to store (unchanged when denied).
    pub new_tat: i64,
}

/// One GCRA step at `now_ms` given the stored TAT (if any).
pub fn gcra(stored_tat: Option<i64>, now_ms: i64, quota: i64, window_ms: i64) -> Decision {
    let quota = quota.max(1);
    let window_ms = window_ms.max(1);
    let t = (window_ms / quota).max(1);
    let tat = stored_tat.unwrap_or(now_ms).max(now_ms);
    let new_tat = tat + t;
    let allow_at = new_tat - window_ms;
    if now_ms < allow_at {
        let remaining = 0;
        return Decision {
            allowed: false,
            remaining,
            reset_after_ms: tat - now_ms,
            retry_after_ms: allow_at - now_ms,
            new_tat: tat,
        };
    }
    let remaining = ((now_ms + window_ms - new_tat) / t).clamp(0, quota);
    Decision {
        allowed: true,
        remaining,
        reset_after_ms: new_tat - now_ms,
        retry_after_ms: 0,
        new_tat,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_a_burst_of_quota_then_denies() {
        let (q, w) = (5, 1000);
        let mut tat = None;
        for i in 0..5 {
            let d = gcra(tat, 0, q, w);
            assert!(d.allowed, "request {i}");
            assert_eq!(d.remaining, 4 - i);
            tat = Some(d.new_tat);
        }
        let d = gcra(tat, 0, q, w);
        assert!(!d.allowed);
        assert_eq!(d.remaining, 0);
        assert_eq!(d.retry_after_ms, 200);
        assert_eq!(d.new_tat, tat.unwrap(), "denials do not consume");
        // One emission interval later one more request fits.
        let d = gcra(tat, 200, q, w);
        assert!(d.allowed);
    }

    #[test]
    fn steady_rate_never_exceeds_quota_per_window() {
        let (q, w) = (10, 1000);
        let mut tat = None;
        let mut admitted = 0;
        for now in (0..10_000).step_by(7) {
            let d = gcra(tat, now, q, w);
            if d.allowed {
                admitted += 1;
                tat = Some(d.new_tat);
            }
        }
        // 10 s at 10/s plus one initial burst of 10.
        assert!(admitted <= 10 * 10 + 10, "{admitted}");
        assert!(admitted >= 10 * 10, "{admitted}");
    }

    #[test]
    fn idle_key_refills() {
        let d = gcra(Some(5_000), 100_000, 3, 1000);
        assert!(d.allowed);
        assert_eq!(d.remaining, 2);
    }
}
