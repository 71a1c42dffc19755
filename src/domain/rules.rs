//! Lifecycle rules shared by every adapter and use case.

use std::time::Duration;

use super::model::Timestamp;

/// A revoked key's expiry is pushed to at least this far in the future.
pub const REVOCATION_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// `expires_at` after a revocation: `max(now + 30 days, old)`; a key with no
/// expiry gets `now + 30 days`.
pub fn revocation_expiry(old: Option<Timestamp>, now: Timestamp) -> Timestamp {
    let floor = now.plus(REVOCATION_RETENTION);
    match old {
        Some(old) if old > floor => old,
        _ => floor,
    }
}

/// Start of the UTC day containing `t` (last-used debounce boundary).
pub fn utc_day_start(t: Timestamp) -> Timestamp {
    const DAY_MS: i64 = 86_400_000;
    Timestamp::from_millis(t.millis().div_euclid(DAY_MS) * DAY_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revocation_pushes_expiry_out() {
        let now = Timestamp::from_secs(1_000_000);
        let floor = now.plus(REVOCATION_RETENTION);
        assert_eq!(revocation_expiry(None, now), floor);
        assert_eq!(revocation_expiry(Some(now), now), floor);
        let later = floor.plus(Duration::from_secs(1));
        assert_eq!(revocation_expiry(Some(later), now), later);
    }

    #[test]
    fn day_start() {
        assert_eq!(
            utc_day_start(Timestamp::from_millis(86_400_000 + 5)),
            Timestamp::from_millis(86_400_000)
        );
        assert_eq!(
            utc_day_start(Timestamp::from_millis(86_399_999)),
            Timestamp::from_millis(0)
        );
    }
}
