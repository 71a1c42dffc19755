//! Status, expiry, cache-TTL, key-age, scope and IP rules (spec §5.2, §5.5, §7.1).

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

use super::model::{ApiKey, KeyStatus, Timestamp};

pub const MAX_METADATA_BYTES: usize = 64 * 1024;
pub const MAX_REQUEST_ID_LEN: usize = 36;
/// Entries with less life left than this are not cached.
const MIN_CACHE_TTL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusError {
    Revoked,
    Expired,
    BadStatus(i32),
}

/// Revoked is checked before expired; any status but ACTIVE fails.
pub fn check_status(key: &ApiKey, now: Timestamp) -> Result<(), StatusError> {
    check_state(key.status, key.expires_at, now)
}

/// [`check_status`] on the two fields it reads.
pub fn check_state(
    status: KeyStatus,
    expires_at: Option<Timestamp>,
    now: Timestamp,
) -> Result<(), StatusError> {
    match status {
        KeyStatus::Active => {}
        KeyStatus::Revoked => return Err(StatusError::Revoked),
        other => return Err(StatusError::BadStatus(other.as_i32())),
    }
    match expires_at {
        Some(exp) if now > exp => Err(StatusError::Expired),
        _ => Ok(()),
    }
}

/// `min(configured, time to expiry)`, or `None` when not worth caching.
pub fn cache_ttl(
    expires_at: Option<Timestamp>,
    configured: Duration,
    now: Timestamp,
) -> Option<Duration> {
    if configured.is_zero() {
        return None;
    }
    let ttl = match expires_at {
        Some(exp) => configured.min(now.until(exp)),
        None => configured,
    };
    (ttl >= MIN_CACHE_TTL).then_some(ttl)
}

/// The timestamp inside an issued key must be within `max_age` of now and
/// not in the future beyond `skew`.
pub fn key_timestamp_acceptable(
    key_unix_secs: i64,
    now: Timestamp,
    max_age: Option<Duration>,
    skew: Duration,
) -> bool {
    let now_s = now.secs();
    if key_unix_secs > now_s.saturating_add(skew.as_secs() as i64) {
        return false;
    }
    match max_age.filter(|m| !m.is_zero()) {
        Some(m) => key_unix_secs >= now_s.saturating_sub(m.as_secs().min(i64::MAX as u64) as i64),
        None => true,
    }
}

/// Trims, accepts CIDRs and bare IPs, returns canonical network strings.
pub fn normalize_cidrs(input: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::with_capacity(input.len());
    for raw in input {
        let t = raw.trim();
        if t.is_empty() {
            return Err("empty CIDR entry".into());
        }
        let net: IpNet = match t.parse::<IpNet>() {
            Ok(n) => n,
            Err(_) => match t.parse::<IpAddr>() {
                Ok(ip) => IpNet::from(ip),
                Err(_) => return Err(format!("{t:?} is not a CIDR block or IP address")),
            },
        };
        let s = net.trunc().to_string();
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpCheck {
    Allowed,
    Denied,
    UnknownClient,
    BadConfig,
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Parses `serve.http.trusted_proxies`: CIDRs or bare addresses.
pub fn parse_trusted_proxies<S: AsRef<str>>(list: &[S]) -> Result<Vec<IpNet>, String> {
    list.iter()
        .map(|s| {
            let s = s.as_ref().trim();
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("'{s}' is not an IP address or CIDR"))
        })
        .collect()
}

/// Whether forwarding headers from `peer` may be believed: always when no
/// trusted proxies are configured (the headers were switched on by config),
/// otherwise only when the TCP peer is one of them.
pub fn peer_trusted(peer: Option<IpAddr>, trusted: &[IpNet]) -> bool {
    trusted.is_empty()
        || peer.is_some_and(|p| {
            let p = canonical(p);
            trusted.iter().any(|n| n.contains(&p))
        })
}

/// The client address in an `X-Forwarded-For` value. Without trusted
/// proxies: the leftmost entry (Ory Talos's rule). With them: the rightmost
/// entry that is not a trusted proxy — entries to its left were written by
/// whoever sent the request and prove nothing. `None` if that entry is not
/// an address.
pub fn forwarded_for_client(value: &str, trusted: &[IpNet]) -> Option<IpAddr> {
    let mut entries = value.split(',').map(str::trim).filter(|e| !e.is_empty());
    if trusted.is_empty() {
        return entries.next()?.parse().ok();
    }
    let entries: Vec<&str> = entries.collect();
    let mut candidate = None;
    for e in entries.iter().rev() {
        let ip: IpAddr = e.parse().ok()?;
        candidate = Some(ip);
        if !trusted.iter().any(|n| n.contains(&canonical(ip))) {
            break;
        }
    }
    candidate
}

/// Fail-closed IP allow-list check.
pub fn check_ip<S: AsRef<str>>(
    allowed_cidrs: impl IntoIterator<Item = S>,
    client: Option<IpAddr>,
) -> IpCheck {
    let mut cidrs = allowed_cidrs.into_iter().peekable();
    if cidrs.peek().is_none() {
        return IpCheck::Allowed;
    }
    let Some(client) = client else {
        return IpCheck::UnknownClient;
    };
    let client = canonical(client);
    // Every entry must parse (a bad one is a configuration error even when
    // an earlier one matched).
    let mut allowed = false;
    for c in cidrs {
        match c.as_ref().parse::<IpNet>() {
            Ok(n) => allowed |= n.contains(&client),
            Err(_) => return IpCheck::BadConfig,
        }
    }
    if allowed {
        IpCheck::Allowed
    } else {
        IpCheck::Denied
    }
}

/// `Err(first missing)` unless every requested scope is in `parent`.
pub fn scopes_subset(requested: &[String], parent: &[String]) -> Result<(), String> {
    match requested.iter().find(|r| !parent.contains(r)) {
        Some(missing) => Err(missing.clone()),
        None => Ok(()),
    }
}

#[cfg(test)]
mod forwarded_tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn trusted_proxy_list_parses_cidrs_and_addresses() {
        let t = parse_trusted_proxies(&["10.0.0.0/8", "192.168.1.7", "::1"]).unwrap();
        assert_eq!(t.len(), 3);
        assert!(t[1].contains(&ip("192.168.1.7")) && !t[1].contains(&ip("192.168.1.8")));
        let e = parse_trusted_proxies(&["10.0.0.0/8", "nope"]).unwrap_err();
        assert!(e.contains("'nope'"), "{e}");
    }

    #[test]
    fn only_trusted_peers_are_believed() {
        let t = parse_trusted_proxies(&["10.0.0.0/8"]).unwrap();
        assert!(peer_trusted(Some(ip("10.1.2.3")), &t));
        assert!(
            peer_trusted(Some(ip("::ffff:10.1.2.3")), &t),
            "v4-mapped peer"
        );
        assert!(!peer_trusted(Some(ip("203.0.113.9")), &t));
        assert!(!peer_trusted(None, &t));
        assert!(
            peer_trusted(Some(ip("203.0.113.9")), &[]),
            "no list: as configured"
        );
    }

    #[test]
    fn forwarded_for_picks_leftmost_or_rightmost_untrusted() {
        let spoofed = "1.2.3.4, 198.51.100.7, 10.0.0.2";
        assert_eq!(forwarded_for_client(spoofed, &[]), Some(ip("1.2.3.4")));
        let t = parse_trusted_proxies(&["10.0.0.0/8"]).unwrap();
        assert_eq!(forwarded_for_client(spoofed, &t), Some(ip("198.51.100.7")));
        assert_eq!(
            forwarded_for_client("10.0.0.3, 10.0.0.2", &t),
            Some(ip("10.0.0.3"))
        );
        assert_eq!(forwarded_for_client("garbage, 10.0.0.2", &t), None);
        assert_eq!(forwarded_for_client("", &t), None);
        assert_eq!(
            forwarded_for_client(" 2001:db8::1 ", &t),
            Some(ip("2001:db8::1"))
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::tests::sample;

    const NOW: Timestamp = Timestamp(1_750_000_000_000);
    const H: Duration = Duration::from_secs(3600);

    #[test]
    fn status_table_15_3() {
        let mut k = sample();
        let cases = [
            (KeyStatus::Active, Some(NOW.plus(H)), Ok(())),
            (KeyStatus::Active, None, Ok(())),
            (
                KeyStatus::Revoked,
                Some(NOW.plus(H)),
                Err(StatusError::Revoked),
            ),
            (
                KeyStatus::Active,
                Some(NOW.minus(H)),
                Err(StatusError::Expired),
            ),
            (
                KeyStatus::Revoked,
                Some(NOW.minus(H)),
                Err(StatusError::Revoked),
            ),
            (KeyStatus::Unspecified, None, Err(StatusError::BadStatus(0))),
        ];
        for (status, exp, want) in cases {
            k.status = status;
            k.expires_at = exp;
            assert_eq!(check_status(&k, NOW), want, "{status:?} {exp:?}");
        }
    }

    #[test]
    fn cache_ttl_table_15_3() {
        let five = Duration::from_secs(300);
        assert_eq!(cache_ttl(None, five, NOW), Some(five));
        assert_eq!(cache_ttl(Some(NOW.minus(H)), five, NOW), None);
        assert_eq!(
            cache_ttl(Some(NOW.plus(Duration::from_millis(500))), five, NOW),
            None
        );
        assert_eq!(
            cache_ttl(Some(NOW.plus(Duration::from_secs(60))), five, NOW),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            cache_ttl(Some(NOW.plus(Duration::from_secs(120))), five, NOW),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            cache_ttl(Some(NOW.plus(Duration::from_secs(600))), five, NOW),
            Some(five)
        );
        assert_eq!(cache_ttl(Some(NOW.plus(H)), five, NOW), Some(five));
        assert_eq!(cache_ttl(None, Duration::ZERO, NOW), None);
    }

    #[test]
    fn key_age_window() {
        let skew = Duration::from_secs(300);
        let year = Some(Duration::from_secs(8760 * 3600));
        assert!(key_timestamp_acceptable(NOW.secs(), NOW, year, skew));
        assert!(key_timestamp_acceptable(
            NOW.secs() - 8760 * 3600,
            NOW,
            year,
            skew
        ));
        assert!(!key_timestamp_acceptable(
            NOW.secs() - 8760 * 3600 - 1,
            NOW,
            year,
            skew
        ));
        assert!(key_timestamp_acceptable(NOW.secs() + 300, NOW, year, skew));
        assert!(!key_timestamp_acceptable(NOW.secs() + 301, NOW, year, skew));
        assert!(key_timestamp_acceptable(0, NOW, None, skew), "no max age");
    }

    #[test]
    fn ip_table_15_3() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(check_ip(&[] as &[&str], ip("10.0.0.1")), IpCheck::Allowed);
        assert_eq!(
            check_ip(l(&["192.168.1.0/24"]), ip("192.168.1.42")),
            IpCheck::Allowed
        );
        assert_eq!(
            check_ip(l(&["10.0.0.0/8", "192.168.1.0/24"]), ip("192.168.1.10")),
            IpCheck::Allowed
        );
        assert_eq!(
            check_ip(l(&["192.168.1.0/24"]), ip("10.0.0.1")),
            IpCheck::Denied
        );
        assert_eq!(
            check_ip(l(&["10.0.0.0/8", "192.168.1.0/24"]), ip("203.0.113.1")),
            IpCheck::Denied
        );
        assert_eq!(
            check_ip(l(&["192.168.1.0/24"]), None),
            IpCheck::UnknownClient
        );
        assert_eq!(
            check_ip(l(&["192.168.1.0/24"]), ip("::ffff:192.168.1.9")),
            IpCheck::Allowed,
            "v4-mapped v6"
        );
        assert_eq!(
            check_ip(l(&["2001:db8::/32"]), ip("2001:db8::5")),
            IpCheck::Allowed
        );
        assert_eq!(
            check_ip(l(&["garbage"]), ip("10.0.0.1")),
            IpCheck::BadConfig
        );
    }

    #[test]
    fn cidr_normalization() {
        let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            normalize_cidrs(&l(&[
                " 10.1.2.3/8 ",
                "127.0.0.1",
                "2001:db8::1",
                "10.0.0.0/8"
            ]))
            .unwrap(),
            vec!["10.0.0.0/8", "127.0.0.1/32", "2001:db8::1/128"]
        );
        assert!(normalize_cidrs(&l(&["300.1.1.1/8"]))
            .unwrap_err()
            .contains("300.1.1.1/8"));
        assert!(normalize_cidrs(&l(&[""])).is_err());
        assert!(normalize_cidrs(&l(&["10.0.0.0/33"])).is_err());
    }

    #[test]
    fn scope_subsets() {
        let p = vec!["read".to_string(), "write".to_string()];
        assert_eq!(scopes_subset(&["read".to_string()], &p), Ok(()));
        assert_eq!(scopes_subset(&[], &p), Ok(()));
        assert_eq!(
            scopes_subset(&["admin".to_string()], &p),
            Err("admin".to_string())
        );
    }
}
