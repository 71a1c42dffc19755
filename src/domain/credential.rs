//! Credential routing (spec §6.4): JWT → macaroon → issued v1 → imported.

use super::keys::{parse_v1, ParsedV1};

/// Credentials longer than this are refused before any work is done.
pub const MAX_CREDENTIAL_BYTES: usize = 8192;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialKind {
    DerivedJwt,
    DerivedMacaroon,
    Issued,
    Imported,
}

impl CredentialKind {
    /// Label used in metrics and events.
    pub fn label(self) -> &'static str {
        match self {
            CredentialKind::DerivedJwt => "derived_jwt",
            CredentialKind::DerivedMacaroon => "derived_macaroon",
            CredentialKind::Issued => "issued",
            CredentialKind::Imported => "imported",
        }
    }
}

fn is_b64url_segment(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `^eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$`
fn looks_like_jwt(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("eyJ") else {
        return false;
    };
    let mut parts = rest.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(sig), None) => {
            is_b64url_segment(h) && is_b64url_segment(p) && is_b64url_segment(sig)
        }
        _ => false,
    }
}

pub fn route(credential: &str, macaroon_prefixes: &[String]) -> CredentialKind {
    route_parsed(credential, macaroon_prefixes).0
}

/// [`route`], also handing back the parsed issued key so that verification
/// does not parse it a second time.
pub fn route_parsed<'a>(
    credential: &'a str,
    macaroon_prefixes: &[String],
) -> (CredentialKind, Option<ParsedV1<'a>>) {
    if looks_like_jwt(credential) {
        return (CredentialKind::DerivedJwt, None);
    }
    if macaroon_prefixes.iter().any(|p| {
        !p.is_empty()
            && credential.len() > p.len() + 4
            && credential.starts_with(p.as_str())
            && credential[p.len()..].starts_with("_v1_")
    }) {
        return (CredentialKind::DerivedMacaroon, None);
    }
    match parse_v1(credential) {
        Some(p) => (CredentialKind::Issued, Some(p)),
        None => (CredentialKind::Imported, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::keys::generate_v1;
    use crate::domain::Secret;

    fn mc() -> Vec<String> {
        vec!["mc".into()]
    }

    #[test]
    fn jwt_fixtures() {
        for s in [
            "eyJhbGc.payload_with_underscore.signature-with-dash",
            "eyJheader-dash.payload-dash.signature-dash",
        ] {
            assert_eq!(route(s, &mc()), CredentialKind::DerivedJwt, "{s}");
        }
        for s in [
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
            "eyJhbGciOiJIUzI1NiJ9.payload",
            "header.payload.signature.extra",
            "eyJa.b.c.d",
            "eyJa b.c.d",
            "eyJa/b.c.d",
            "eyJ..",
            "sk_live_abc123xyz789",
            "ghp_abc123def456ghi789jkl012mno345pqr",
            "my-custom-api-key-12345",
            "simpletalos",
        ] {
            assert_eq!(route(s, &mc()), CredentialKind::Imported, "{s}");
        }
    }

    #[test]
    fn macaroon_prefixes() {
        let tok = "mc_v1_AgETaHR0cHM6Ly9leGFtcGxlLmNvbQIk";
        assert_eq!(route(tok, &mc()), CredentialKind::DerivedMacaroon);
        assert_eq!(
            route("custom_v1_AgE", &["custom".into()]),
            CredentialKind::DerivedMacaroon
        );
        assert_eq!(
            route("old_v1_AgE", &["new".into(), "old".into()]),
            CredentialKind::DerivedMacaroon
        );
        assert_eq!(route("unknown_v1_AgE", &mc()), CredentialKind::Imported);
        assert_eq!(route(tok, &[]), CredentialKind::Imported);
        assert_eq!(
            route("mc_v1_", &mc()),
            CredentialKind::Imported,
            "nothing after the prefix"
        );
    }

    #[test]
    fn issued_keys_route_as_issued_before_imported() {
        let k = generate_v1(
            "talos",
            uuid::Uuid::new_v4(),
            1_700_000_000,
            &Secret::new("x".repeat(32)),
        );
        assert_eq!(route(&k, &mc()), CredentialKind::Issued);
        // A key whose prefix equals a macaroon prefix is a macaroon by order.
        let k = generate_v1(
            "mc",
            uuid::Uuid::new_v4(),
            1_700_000_000,
            &Secret::new("x".repeat(32)),
        );
        assert_eq!(route(&k, &mc()), CredentialKind::DerivedMacaroon);
    }
}
