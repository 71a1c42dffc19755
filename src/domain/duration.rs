//! Durations: Go syntax (`1h30m`, `500ms`), protojson (`"3600s"`), and the
//! extended TTL units Talos accepts on the API (`d`, `w`, `mo`, `y`).

use std::time::Duration;

pub const MIN_TTL: Duration = Duration::from_secs(1);
pub const MAX_TTL: Duration = Duration::from_secs(315_360_000);

fn unit_nanos(unit: &str, extended: bool) -> Option<u128> {
    const S: u128 = 1_000_000_000;
    Some(match unit {
        "ns" => 1,
        "us" | "µs" | "μs" => 1_000,
        "ms" => 1_000_000,
        "s" => S,
        "m" => 60 * S,
        "h" => 3_600 * S,
        "d" if extended => 86_400 * S,
        "w" if extended => 7 * 86_400 * S,
        "mo" if extended => 30 * 86_400 * S,
        "y" if extended => 365 * 86_400 * S,
        _ => return None,
    })
}

fn parse(s: &str, extended: bool) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if s.starts_with('-') {
        return Err(format!("negative duration {s:?}"));
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let units = if extended {
        "ns, us, ms, s, m, h, d, w, mo, y"
    } else {
        "ns, us, ms, s, m, h"
    };
    let mut total: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_end];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(format!("invalid duration {s:?}"));
        }
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = &rest[unit_end..];
        if unit.is_empty() {
            return Err(format!("missing unit in duration {s:?} (use {units})"));
        }
        let per = unit_nanos(unit, extended)
            .ok_or_else(|| format!("unknown unit {unit:?} in duration {s:?} (use {units})"))?;
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        let int: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| format!("invalid duration {s:?}"))?
        };
        let mut value = int
            .checked_mul(per)
            .ok_or_else(|| format!("duration {s:?} is too large"))?;
        if !frac.is_empty() {
            let digits = frac.len().min(18) as u32;
            let f: u128 = frac[..digits as usize]
                .parse()
                .map_err(|_| format!("invalid duration {s:?}"))?;
            value += f * per / 10u128.pow(digits);
        }
        total = total
            .checked_add(value)
            .ok_or_else(|| format!("duration {s:?} is too large"))?;
    }
    if total > u64::MAX as u128 {
        return Err(format!("duration {s:?} is too large"));
    }
    Ok(Duration::from_nanos(total as u64))
}

/// API ttl: protojson, Go durations and the extended units (`1y6mo`).
pub fn parse_ttl(s: &str) -> Result<Duration, String> {
    parse(s, true)
}

/// Config durations: Go syntax only.
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    parse(s, false)
}

/// `rate_limit_policy.window`: whole seconds only.
pub fn parse_window_secs(s: &str) -> Result<i64, String> {
    let d = parse(s, false)?;
    if d.subsec_nanos() != 0 {
        return Err(format!("window {s:?} must be a whole number of seconds"));
    }
    i64::try_from(d.as_secs()).map_err(|_| format!("window {s:?} is too large"))
}

/// protojson Duration: `"3600s"`, `"1.500s"` (0, 3, 6 or 9 fraction digits).
pub fn format_proto_duration(d: Duration) -> String {
    let n = d.subsec_nanos();
    let secs = d.as_secs();
    if n == 0 {
        format!("{secs}s")
    } else if n.is_multiple_of(1_000_000) {
        format!("{secs}.{:03}s", n / 1_000_000)
    } else if n.is_multiple_of(1_000) {
        format!("{secs}.{:06}s", n / 1_000)
    } else {
        format!("{secs}.{n:09}s")
    }
}

fn trim_frac(int: u64, frac: u64, width: usize) -> String {
    if frac == 0 {
        return int.to_string();
    }
    let f = format!("{frac:0width$}");
    format!("{int}.{}", f.trim_end_matches('0'))
}

/// Go's `time.Duration.String()`: `8760h0m0s`, `1m30s`, `1.5s`, `500ms`, `0s`.
pub fn format_go_duration(d: Duration) -> String {
    let total = d.as_nanos();
    if total == 0 {
        return "0s".into();
    }
    if total < 1_000 {
        return format!("{total}ns");
    }
    if total < 1_000_000 {
        return format!(
            "{}µs",
            trim_frac((total / 1_000) as u64, (total % 1_000) as u64, 3)
        );
    }
    if total < 1_000_000_000 {
        return format!(
            "{}ms",
            trim_frac((total / 1_000_000) as u64, (total % 1_000_000) as u64, 6)
        );
    }
    let secs = d.as_secs();
    let s = trim_frac(secs % 60, d.subsec_nanos() as u64, 9);
    let (h, m) = (secs / 3600, (secs % 3600) / 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn parses_ttl_forms() {
        assert_eq!(parse_ttl("3600s").unwrap(), secs(3600));
        assert_eq!(parse_ttl("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_ttl("24h").unwrap(), secs(86_400));
        assert_eq!(parse_ttl("1h30m").unwrap(), secs(5_400));
        assert_eq!(parse_ttl("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_ttl("30d").unwrap(), secs(30 * 86_400));
        assert_eq!(parse_ttl("2w").unwrap(), secs(14 * 86_400));
        assert_eq!(
            parse_ttl("1y6mo").unwrap(),
            secs(365 * 86_400 + 180 * 86_400)
        );
        assert_eq!(parse_ttl("1mo").unwrap(), secs(30 * 86_400));
        assert_eq!(parse_ttl("0").unwrap(), Duration::ZERO);
        for bad in ["", "soon", "10", "-5s", "1x", "1.2.3s", "h", "1h-", "."] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn config_durations_reject_extended_units() {
        assert_eq!(parse_go_duration("8760h").unwrap(), secs(8760 * 3600));
        assert_eq!(parse_go_duration("1.5h").unwrap(), secs(5400));
        assert_eq!(
            parse_go_duration("300µs").unwrap(),
            Duration::from_micros(300)
        );
        assert!(parse_go_duration("1d").is_err());
        assert!(parse_go_duration("1mo").is_err());
    }

    #[test]
    fn windows_are_whole_seconds() {
        assert_eq!(parse_window_secs("60s").unwrap(), 60);
        assert_eq!(parse_window_secs("1m").unwrap(), 60);
        assert!(parse_window_secs("1.5s").is_err());
        assert!(parse_window_secs("500ms").is_err());
    }

    #[test]
    fn formats() {
        assert_eq!(format_proto_duration(secs(60)), "60s");
        assert_eq!(format_proto_duration(Duration::from_millis(1500)), "1.500s");
        assert_eq!(
            format_proto_duration(Duration::from_micros(1_000_001)),
            "1.000001s"
        );
        assert_eq!(format_go_duration(secs(8760 * 3600)), "8760h0m0s");
        assert_eq!(format_go_duration(secs(3600)), "1h0m0s");
        assert_eq!(format_go_duration(secs(90)), "1m30s");
        assert_eq!(format_go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_go_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(format_go_duration(Duration::ZERO), "0s");
        assert_eq!(format_go_duration(Duration::from_nanos(1500)), "1.5µs");
        assert_eq!(format_go_duration(Duration::from_nanos(7)), "7ns");
    }

    #[test]
    fn round_trips() {
        for d in [
            secs(1),
            secs(59),
            secs(3601),
            Duration::from_millis(2500),
            secs(MAX_TTL.as_secs()),
        ] {
            assert_eq!(parse_go_duration(&format_go_duration(d)).unwrap(), d);
            assert_eq!(parse_ttl(&format_proto_duration(d)).unwrap(), d);
        }
    }
}
