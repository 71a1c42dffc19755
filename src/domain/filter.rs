//! The AIP-160 subset accepted by the list endpoints (spec §7.7):
//! `actor_id="<value>"` and `status=<KEY_STATUS_…>`, joined by ` AND `.
//! A status term needs an actor_id term. Anything else is rejected with a
//! message that says what was wrong.

use super::model::KeyStatus;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListFilter {
    pub actor_id: Option<String>,
    pub status: Option<KeyStatus>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid filter: {0}")]
pub struct FilterError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, FilterError> {
    Err(FilterError(msg.into()))
}

impl ListFilter {
    /// A stable textual form, used to bind page tokens to the filter that
    /// produced them.
    pub fn canonical(&self) -> String {
        let mut out = String::new();
        if let Some(a) = &self.actor_id {
            out.push_str("actor_id=");
            out.push_str(&a.len().to_string());
            out.push(':');
            out.push_str(a);
        }
        if let Some(s) = self.status {
            out.push_str(";status=");
            out.push_str(s.as_str());
        }
        out
    }

    pub fn parse(input: &str) -> Result<ListFilter, FilterError> {
        let mut filter = ListFilter::default();
        let input = input.trim();
        if input.is_empty() {
            return Ok(filter);
        }
        let mut rest = input;
        loop {
            rest = rest.trim_start();
            let (field, after) = take_ident(rest)?;
            rest = after.trim_start();
            rest = rest
                .strip_prefix('=')
                .ok_or_else(|| FilterError(format!("expected '=' after '{field}'")))?
                .trim_start();
            match field {
                "actor_id" => {
                    if filter.actor_id.is_some() {
                        return err("actor_id may appear only once");
                    }
                    let (value, after) = take_quoted(rest)?;
                    filter.actor_id = Some(value.to_string());
                    rest = after;
                }
                "status" => {
                    if filter.status.is_some() {
                        return err("status may appear only once");
                    }
                    let (value, after) = if rest.starts_with('"') {
                        take_quoted(rest)?
                    } else {
                        take_ident(rest)?
                    };
                    let status = KeyStatus::from_wire(value).ok_or_else(|| {
                        FilterError(format!(
                            "unknown status '{value}'; use one of KEY_STATUS_ACTIVE, KEY_STATUS_REVOKED, KEY_STATUS_EXPIRED"
                        ))
                    })?;
                    // UNSPECIFIED means "no status filter" (spec §7.7).
                    filter.status = Some(status).filter(|s| *s != KeyStatus::Unspecified);
                    rest = after;
                }
                other => {
                    return err(format!(
                        "unsupported field '{other}'; only actor_id and status can be filtered"
                    ))
                }
            }
            let trimmed = rest.trim_start();
            if trimmed.is_empty() {
                break;
            }
            // Terms are separated by whitespace, AND, whitespace.
            if trimmed.len() == rest.len() {
                return err(format!("unexpected input '{}'", preview(trimmed)));
            }
            let Some(after_and) = trimmed.strip_prefix("AND") else {
                return err(format!(
                    "unexpected input '{}'; terms can only be joined with AND",
                    preview(trimmed)
                ));
            };
            if !after_and.starts_with([' ', '\t']) {
                return err("expected a term after AND");
            }
            rest = after_and;
        }
        if filter.status.is_some() && filter.actor_id.is_none() {
            return err("status filter must be combined with actor_id");
        }
        Ok(filter)
    }
}

fn preview(s: &str) -> String {
    s.chars().take(32).collect()
}

fn take_ident(s: &str) -> Result<(&str, &str), FilterError> {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    if end == 0 {
        return match s.chars().next() {
            None => err("expected a term"),
            Some(c) => err(format!("unexpected character '{c}'")),
        };
    }
    Ok((&s[..end], &s[end..]))
}

fn take_quoted(s: &str) -> Result<(&str, &str), FilterError> {
    let Some(body) = s.strip_prefix('"') else {
        return err("expected a double-quoted value");
    };
    let Some(end) = body.find('"') else {
        return err("unterminated quoted value");
    };
    let value = &body[..end];
    if value.chars().any(|c| c.is_control()) {
        return err("quoted values may not contain control characters");
    }
    Ok((value, &body[end + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> ListFilter {
        ListFilter::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }
    fn bad(s: &str) -> String {
        ListFilter::parse(s).expect_err(s).0
    }

    #[test]
    fn accepts_supported_terms() {
        assert_eq!(ok(""), ListFilter::default());
        assert_eq!(
            ok("actor_id=\"user-1\"").actor_id.as_deref(),
            Some("user-1")
        );
        let f = ok("actor_id=\"u\" AND status=KEY_STATUS_REVOKED");
        assert_eq!(f.status, Some(KeyStatus::Revoked));
        let f = ok("status = \"KEY_STATUS_ACTIVE\" AND actor_id = \"u\"");
        assert_eq!(f.status, Some(KeyStatus::Active));
        assert_eq!(f.actor_id.as_deref(), Some("u"));
        let f = ok("actor_id=\"'; DROP TABLE keys; --\"");
        assert_eq!(f.actor_id.as_deref(), Some("'; DROP TABLE keys; --"));
        assert_eq!(
            ok("actor_id=\"u\" AND status=KEY_STATUS_UNSPECIFIED").status,
            None
        );
    }

    #[test]
    fn rejects_everything_else() {
        assert!(bad("status=KEY_STATUS_ACTIVE")
            .contains("status filter must be combined with actor_id"));
        for s in [
            "actor_id=\"a\" OR actor_id=\"b\"",
            "(actor_id=\"a\")",
            "actor_id=\"test\" /* comment */",
            "actor_id=\"a\" UNION SELECT 1",
            "admin=true",
            "1=1; DROP TABLE keys",
            "actor_id=\"a\" AND AND status=KEY_STATUS_ACTIVE",
            "AND",
            "actor_id=\"a\" AND",
            "actor_id=\"a\" AND actor_id=\"b\"",
            "actor_id=\"test\nAND 1=1\"",
            "actor_id=unquoted",
            "actor_id=\"open",
            "actor_id=\"a\"AND status=KEY_STATUS_ACTIVE",
            "actor_id=\"a\" and status=KEY_STATUS_ACTIVE",
            "actor_id=\"a\" AND status=ACTIVE",
        ] {
            bad(s);
        }
    }

    #[test]
    fn canonical_distinguishes_filters() {
        let a = ok("actor_id=\"a;status=KEY_STATUS_ACTIVE\"");
        let b = ok("actor_id=\"a\" AND status=KEY_STATUS_ACTIVE");
        assert_ne!(a.canonical(), b.canonical());
        assert_eq!(ListFilter::default().canonical(), "");
    }
}
