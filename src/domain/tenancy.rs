//! Tenancy: the network id comes from the request hostname (spec §9).
//! OSS builds run in `Single` mode: every request is the nil network.

use std::collections::HashMap;

use super::model::NetworkId;

/// Lowercase, without port, IPv6 brackets or one trailing dot. `None` for
/// empty, over-long (> 253) or non-printable hosts.
pub fn normalize_host(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > 300 || raw.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return None;
    }
    let host = if let Some(rest) = raw.strip_prefix('[') {
        // [v6]:port or [v6]
        rest.split_once(']')?.0
    } else if raw.matches(':').count() == 1 {
        raw.split_once(':')?.0
    } else {
        // A bare IPv6 address (several colons) has no port.
        raw
    };
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    if host.is_empty() || host.len() > 253 || !host.chars().all(|c| c.is_ascii_graphic()) {
        return None;
    }
    Some(host)
}

#[derive(Clone, Debug, Default)]
pub struct TenantTable {
    hosts: HashMap<String, NetworkId>,
}

impl TenantTable {
    pub fn new(entries: impl IntoIterator<Item = (String, NetworkId)>) -> Result<Self, String> {
        let mut hosts = HashMap::new();
        for (raw, nid) in entries {
            let host = normalize_host(&raw).ok_or_else(|| format!("invalid hostname {raw:?}"))?;
            if hosts.insert(host.clone(), nid).is_some() {
                return Err(format!("hostname {host:?} is configured twice"));
            }
        }
        Ok(TenantTable { hosts })
    }

    pub fn resolve(&self, host: &str) -> Option<NetworkId> {
        self.hosts.get(&normalize_host(host)?).copied()
    }

    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }
}

#[derive(Clone, Debug)]
pub enum TenancyMode {
    Single,
    ByHost(TenantTable),
}

pub fn resolve_network(mode: &TenancyMode, host: Option<&str>) -> Option<NetworkId> {
    match mode {
        TenancyMode::Single => Some(NetworkId::NIL),
        TenancyMode::ByHost(t) => t.resolve(host?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nid(n: u128) -> NetworkId {
        NetworkId(uuid::Uuid::from_u128(n))
    }

    #[test]
    fn normalizes_hosts() {
        assert_eq!(
            normalize_host("API.Example.com:4420").as_deref(),
            Some("api.example.com")
        );
        assert_eq!(
            normalize_host("example.com.").as_deref(),
            Some("example.com")
        );
        assert_eq!(normalize_host("[::1]:80").as_deref(), Some("::1"));
        assert_eq!(
            normalize_host("[2001:DB8::1]").as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(
            normalize_host("2001:db8::1").as_deref(),
            Some("2001:db8::1")
        );
        for bad in ["", " ", "a\0b", "a b", &"a".repeat(254), "\u{7f}"] {
            assert_eq!(normalize_host(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn table_resolves_and_rejects_duplicates() {
        let t = TenantTable::new([
            ("a.example.com".to_string(), nid(1)),
            ("B.example.com.".to_string(), nid(2)),
        ])
        .unwrap();
        assert_eq!(t.resolve("A.EXAMPLE.COM:443"), Some(nid(1)));
        assert_eq!(t.resolve("b.example.com"), Some(nid(2)));
        assert_eq!(t.resolve("c.example.com"), None);
        assert_eq!(t.len(), 2);
        let e = TenantTable::new([
            ("x.io".to_string(), nid(1)),
            ("X.io:80".to_string(), nid(2)),
        ])
        .unwrap_err();
        assert!(e.contains("x.io"), "{e}");
    }

    #[test]
    fn modes() {
        assert_eq!(
            resolve_network(&TenancyMode::Single, None),
            Some(NetworkId::NIL)
        );
        assert_eq!(
            resolve_network(&TenancyMode::Single, Some("anything")),
            Some(NetworkId::NIL)
        );
        let t = TenancyMode::ByHost(TenantTable::new([("a.io".to_string(), nid(7))]).unwrap());
        assert_eq!(resolve_network(&t, Some("a.io")), Some(nid(7)));
        assert_eq!(resolve_network(&t, None), None);
    }
}
