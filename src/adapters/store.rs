//! Backend selection, in exactly one place: DSN scheme → backend, "known
//! but not compiled into this build" errors, pool parameters, and the one
//! `match` that builds the `Arc<dyn KeyStore>`.

use std::sync::Arc;
use std::time::Duration;

use crate::domain::Secret;
use crate::ports::{KeyStore, StoreError};

use super::memory::MemoryKeyStore;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Sqlite,
    Postgres,
    Mysql,
    Cockroach,
}

impl Backend {
    pub const ALL: [Backend; 5] = [
        Backend::Memory,
        Backend::Sqlite,
        Backend::Postgres,
        Backend::Mysql,
        Backend::Cockroach,
    ];

    /// `memory` (also `memory://`), `sqlite://` `sqlite3://` (raw path after
    /// the scheme; `sqlite://:memory:` is fine), `postgres://`
    /// `postgresql://`, `mysql://`, `cockroach://` `cockroachdb://`.
    pub fn from_dsn(dsn: &str) -> Result<Backend, OpenError> {
        let dsn = dsn.trim();
        if dsn == "memory" || dsn == "memory:" || dsn == "memory://" {
            return Ok(Backend::Memory);
        }
        let scheme = match dsn.find("://") {
            Some(i) => &dsn[..i],
            // never echo a whole scheme-less DSN (it may hold a password)
            None => dsn.split([':', '/', '@', '?']).next().unwrap_or(""),
        };
        match scheme.to_ascii_lowercase().as_str() {
            "memory" => Ok(Backend::Memory),
            "sqlite" | "sqlite3" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            "mysql" => Ok(Backend::Mysql),
            "cockroach" | "cockroachdb" => Ok(Backend::Cockroach),
            _ => Err(OpenError::UnknownScheme {
                scheme: scheme.to_string(),
            }),
        }
    }

    /// The Cargo feature that compiles this backend in (`None`: always there).
    pub fn feature(self) -> Option<&'static str> {
        match self {
            Backend::Memory => None,
            Backend::Sqlite => Some("sqlite"),
            Backend::Postgres => Some("postgres"),
            Backend::Mysql => Some("mysql"),
            Backend::Cockroach => Some("cockroach"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
            Backend::Mysql => "mysql",
            Backend::Cockroach => "cockroach",
        }
    }

    /// Whether this build contains the backend.
    pub fn is_compiled(self) -> bool {
        match self {
            Backend::Memory => true,
            Backend::Sqlite => cfg!(feature = "sqlite"),
            Backend::Postgres => cfg!(feature = "postgres"),
            Backend::Mysql => cfg!(feature = "mysql"),
            Backend::Cockroach => cfg!(feature = "cockroach"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Database DSN; its scheme picks the backend. Pool query parameters
    /// (`max_conns`, `max_idle_conns`, `max_conn_lifetime`,
    /// `max_conn_idle_time`) override the fields below.
    pub dsn: Secret,
    /// Pool size. Default 10.
    pub max_connections: u32,
    /// Connections kept open when idle. Default 0.
    pub min_connections: u32,
    /// Limit for establishing the first connection at startup. Default 5s.
    pub connect_timeout: Duration,
    /// Limit for getting a pooled connection (or opening one). Default 5s.
    pub acquire_timeout: Duration,
    /// Server-side statement limit (PostgreSQL/CockroachDB
    /// `statement_timeout`, MariaDB `max_statement_time`, MySQL
    /// `max_execution_time`; SQLite `busy_timeout`). Default 10s.
    pub statement_timeout: Duration,
    /// Apply pending migrations when opening. Default true.
    pub run_migrations: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            dsn: Secret::new("memory"),
            max_connections: 10,
            min_connections: 0,
            connect_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(10),
            run_migrations: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{backend} is not compiled into this build; rebuild with --features {feature}")]
    NotCompiled {
        backend: &'static str,
        feature: &'static str,
    },
    #[error("unsupported database DSN scheme '{scheme}'; supported: memory, sqlite://, sqlite3://, postgres://, postgresql://, mysql://, cockroach://, cockroachdb://")]
    UnknownScheme { scheme: String },
    /// `reason` never contains the DSN password.
    #[error("cannot connect to the {backend} database: {reason}")]
    Connect {
        backend: &'static str,
        reason: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Everything a SQL adapter needs to build its pool: the driver URL (pool
/// parameters removed, scheme normalized) and resolved pool settings.
#[derive(Clone)]
pub struct PoolConfig {
    pub url: String,
    pub max_connections: u32,
    pub min_connections: u32,
    pub connect_timeout: Duration,
    pub acquire_timeout: Duration,
    pub statement_timeout: Duration,
    pub max_lifetime: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    pub run_migrations: bool,
    /// Password of the original DSN (raw and percent-decoded), to scrub it
    /// from driver error messages.
    secrets: Vec<String>,
}

impl std::fmt::Debug for PoolConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolConfig")
            .field("url", &redact_dsn(&self.url))
            .field("max_connections", &self.max_connections)
            .field("min_connections", &self.min_connections)
            .field("statement_timeout", &self.statement_timeout)
            .finish_non_exhaustive()
    }
}

impl PoolConfig {
    /// `reason` with any occurrence of the DSN password replaced by `***`.
    pub fn scrub(&self, reason: &str) -> String {
        let mut out = reason.to_string();
        for s in self.secrets.iter().filter(|s| s.len() >= 2) {
            out = out.replace(s.as_str(), "***");
        }
        out
    }

    /// Resolves options + DSN for `backend`.
    pub fn resolve(opts: &StoreOptions, backend: Backend) -> Result<PoolConfig, OpenError> {
        let dsn = opts.dsn.expose().trim();
        let mut cfg = PoolConfig {
            url: String::new(),
            max_connections: opts.max_connections.max(1),
            min_connections: opts.min_connections,
            connect_timeout: opts.connect_timeout,
            acquire_timeout: opts.acquire_timeout,
            statement_timeout: opts.statement_timeout,
            // Talos defaults (spec §12.2)
            max_lifetime: Some(Duration::from_secs(30 * 60)),
            idle_timeout: Some(Duration::from_secs(10 * 60)),
            run_migrations: opts.run_migrations,
            secrets: dsn_password(dsn)
                .into_iter()
                .flat_map(|p| [percent_decode(&p), p])
                .collect(),
        };
        let bad = |reason: String| OpenError::Connect {
            backend: backend.name(),
            reason,
        };
        let (base, query) = dsn.split_once('?').unwrap_or((dsn, ""));
        let mut kept: Vec<&str> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let int = || {
                v.parse::<u32>()
                    .map_err(|_| bad(format!("DSN parameter {k}={v} is not a whole number")))
            };
            let dur = || {
                parse_go_duration(v)
                    .ok_or_else(|| bad(format!("DSN parameter {k}={v} is not a duration like 30m")))
            };
            match k {
                "max_conns" | "pool_max_conns" => cfg.max_connections = int()?.max(1),
                "pool_min_conns" => cfg.min_connections = int()?,
                // sqlx keeps idle connections until max_conn_idle_time; it
                // has no separate idle cap. Validated, then ignored.
                "max_idle_conns" => {
                    int()?;
                }
                "max_conn_lifetime" | "pool_max_conn_lifetime" => {
                    cfg.max_lifetime = Some(dur()?).filter(|d| !d.is_zero())
                }
                "max_conn_idle_time" | "pool_max_conn_idle_time" => {
                    cfg.idle_timeout = Some(dur()?).filter(|d| !d.is_zero())
                }
                // pgxpool knobs without an sqlx equivalent.
                "pool_health_check_period" | "pool_mode" => {}
                _ => kept.push(pair),
            }
        }
        cfg.min_connections = cfg.min_connections.min(cfg.max_connections);
        let with_query = |base: String, kept: &[&str]| {
            if kept.is_empty() {
                base
            } else {
                format!("{base}?{}", kept.join("&"))
            }
        };
        cfg.url = match backend {
            Backend::Cockroach => {
                let rest = base.split_once("://").map(|(_, r)| r).unwrap_or(base);
                with_query(format!("postgres://{rest}"), &kept)
            }
            Backend::Mysql => mysql_url(base, &kept),
            _ => with_query(base.to_string(), &kept),
        };
        Ok(cfg)
    }
}

/// Opens the key store the DSN names. Unknown schemes and backends not
/// compiled into this build are reported precisely.
pub async fn open_store(opts: &StoreOptions) -> Result<Arc<dyn KeyStore>, OpenError> {
    let backend = Backend::from_dsn(opts.dsn.expose())?;
    #[allow(unused_variables)]
    let cfg = match backend {
        Backend::Memory => return Ok(Arc::new(MemoryKeyStore::new())),
        b => PoolConfig::resolve(opts, b)?,
    };
    match backend {
        #[cfg(feature = "sqlite")]
        Backend::Sqlite => Ok(Arc::new(super::sql::sqlite::open(&cfg).await?)),
        #[cfg(feature = "postgres")]
        Backend::Postgres => Ok(Arc::new(super::sql::postgres::open(&cfg).await?)),
        #[cfg(feature = "mysql")]
        Backend::Mysql => Ok(Arc::new(super::sql::mysql::open(&cfg).await?)),
        #[cfg(feature = "cockroach")]
        Backend::Cockroach => Ok(Arc::new(super::sql::cockroach::open(&cfg).await?)),
        #[allow(unreachable_patterns)]
        b => Err(OpenError::NotCompiled {
            backend: b.name(),
            feature: b.feature().unwrap_or(""),
        }),
    }
}

/// The DSN with its password replaced by `***`, for logs.
pub fn redact_dsn(dsn: &str) -> String {
    let Some(i) = dsn.find("://") else {
        return dsn.to_string();
    };
    let (scheme, rest) = (&dsn[..i + 3], &dsn[i + 3..]);
    if scheme.starts_with("sqlite") {
        return dsn.to_string(); // a file path, no credentials
    }
    let (main, query) = match rest.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (rest, None),
    };
    let main = match main.rfind('@') {
        Some(at) => match main[..at].find(':') {
            Some(c) => format!("{}:***{}", &main[..c], &main[at..]),
            None => main.to_string(),
        },
        None => main.to_string(),
    };
    let mut out = format!("{scheme}{main}");
    if let Some(q) = query {
        let q: Vec<String> = q
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => pair.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&q.join("&"));
    }
    out
}

/// The password in a DSN (URL userinfo, Go MySQL form, or `password=` query).
fn dsn_password(dsn: &str) -> Vec<String> {
    let mut out = Vec::new();
    let rest = dsn.split_once("://").map(|(_, r)| r).unwrap_or(dsn);
    let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
    if let Some(at) = main.rfind('@') {
        if let Some((_, pw)) = main[..at].split_once(':') {
            out.push(pw.to_string());
        }
    }
    for pair in query.split('&') {
        if let Some((k, v)) = pair.split_once('=') {
            if k.eq_ignore_ascii_case("password") {
                out.push(v.to_string());
            }
        }
    }
    out.retain(|p| !p.is_empty());
    out
}

/// Go durations: `30m`, `1h30m`, `10s`, `250ms`, `1.5h`; bare `0`.
fn parse_go_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * secs;
        rest = &rest[unit_end..];
    }
    Duration::try_from_secs_f64(total).ok()
}

/// Accepts both `mysql://user:pass@host:3306/db` and the Go driver form
/// `mysql://user:pass@tcp(host:3306)/db?parseTime=true` (and `unix(/path)`),
/// returning the URL form sqlx understands. Go-only parameters are dropped.
fn mysql_url(base: &str, params: &[&str]) -> String {
    let rest = base.split_once("://").map(|(_, r)| r).unwrap_or(base);
    let mut query: Vec<String> = Vec::new();
    for pair in params {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "parseTime"
            | "loc"
            | "multiStatements"
            | "interpolateParams"
            | "timeout"
            | "readTimeout"
            | "writeTimeout"
            | "allowNativePasswords"
            | "allowCleartextPasswords"
            | "clientFoundRows"
            | "columnsWithAlias"
            | "rejectReadOnly"
            | "checkConnLiveness"
            | "maxAllowedPacket" => {}
            "tls" => query.push(format!(
                "ssl-mode={}",
                match v {
                    "true" | "skip-verify" => "REQUIRED",
                    "preferred" => "PREFERRED",
                    _ => "DISABLED",
                }
            )),
            _ => query.push(pair.to_string()),
        }
    }
    // Go form: [user[:pass]@]tcp(addr)/db or unix(path)/db.
    let proto = ["tcp(", "unix("]
        .iter()
        .filter_map(|p| {
            let at_form = format!("@{p}");
            rest.find(&at_form)
                .map(|i| (i, i + 1, *p))
                .or_else(|| rest.starts_with(p).then_some((0, 0, *p)))
        })
        .next();
    let url_rest = match proto {
        Some((user_end, proto_start, proto)) => {
            let userinfo = &rest[..user_end];
            let after = &rest[proto_start + proto.len()..];
            let (addr, tail) = after.split_once(')').unwrap_or((after, ""));
            let creds = if userinfo.is_empty() {
                String::new()
            } else {
                match userinfo.split_once(':') {
                    Some((u, p)) => format!("{}:{}@", percent_encode(u), percent_encode(p)),
                    None => format!("{}@", percent_encode(userinfo)),
                }
            };
            let host = if proto == "unix(" {
                query.push(format!("socket={addr}"));
                "localhost".to_string()
            } else if addr.is_empty() {
                "127.0.0.1:3306".to_string()
            } else {
                addr.to_string()
            };
            format!("{creds}{host}{tail}")
        }
        None => rest.to_string(),
    };
    if query.is_empty() {
        format!("mysql://{url_rest}")
    } else {
        format!("mysql://{url_rest}?{}", query.join("&"))
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(dsn: &str) -> PoolConfig {
        let b = Backend::from_dsn(dsn).unwrap();
        PoolConfig::resolve(
            &StoreOptions {
                dsn: Secret::new(dsn),
                ..Default::default()
            },
            b,
        )
        .unwrap()
    }

    #[test]
    fn schemes() {
        for (dsn, b) in [
            ("memory", Backend::Memory),
            ("memory://", Backend::Memory),
            ("sqlite:///var/lib/talos.db", Backend::Sqlite),
            ("sqlite3://talos.db?mode=rwc", Backend::Sqlite),
            ("sqlite://:memory:", Backend::Sqlite),
            ("postgres://u:p@h/db", Backend::Postgres),
            ("postgresql://h/db", Backend::Postgres),
            ("mysql://u:p@tcp(h:3306)/db?parseTime=true", Backend::Mysql),
            ("cockroach://root@h:26257/db", Backend::Cockroach),
            ("cockroachdb://root@h:26257/db", Backend::Cockroach),
        ] {
            assert_eq!(Backend::from_dsn(dsn).unwrap(), b, "{dsn}");
        }
        let e = Backend::from_dsn("unsupported://x")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'unsupported'") && e.contains("cockroachdb://"),
            "{e}"
        );
        let e = Backend::from_dsn("user:secret@host")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn pool_params_are_removed_and_applied() {
        let c = resolve(
            "postgres://u:p@h:5432/db?sslmode=disable&max_conns=7&max_idle_conns=2&max_conn_lifetime=1h30m&max_conn_idle_time=90s",
        );
        assert_eq!(c.url, "postgres://u:p@h:5432/db?sslmode=disable");
        assert_eq!(c.max_connections, 7);
        assert_eq!(c.max_lifetime, Some(Duration::from_secs(5400)));
        assert_eq!(c.idle_timeout, Some(Duration::from_secs(90)));
        let b = Backend::Postgres;
        let bad = StoreOptions {
            dsn: Secret::new("postgres://h/db?max_conns=x"),
            ..Default::default()
        };
        assert!(PoolConfig::resolve(&bad, b).is_err());
    }

    #[test]
    fn cockroach_and_mysql_urls() {
        assert_eq!(
            resolve("cockroach://root@h:26257/db?sslmode=disable").url,
            "postgres://root@h:26257/db?sslmode=disable"
        );
        assert_eq!(
            resolve("mysql://user:p@ss/w@tcp(db.example:3306)/talos?parseTime=true&max_conns=3")
                .url,
            "mysql://user:p%40ss%2Fw@db.example:3306/talos"
        );
        assert_eq!(
            resolve("mysql://root@tcp(127.0.0.1:3306)/test").url,
            "mysql://root@127.0.0.1:3306/test"
        );
        assert_eq!(
            resolve("mysql://root@unix(/run/mysqld.sock)/test").url,
            "mysql://root@localhost/test?socket=/run/mysqld.sock"
        );
        assert_eq!(
            resolve("mysql://root:pw@localhost:3306/test?ssl-mode=DISABLED").url,
            "mysql://root:pw@localhost:3306/test?ssl-mode=DISABLED"
        );
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact_dsn("postgres://u:s3cret@h:5432/db?sslmode=disable"),
            "postgres://u:***@h:5432/db?sslmode=disable"
        );
        assert_eq!(
            redact_dsn("mysql://u:p@ss@tcp(h:3306)/db?parseTime=true"),
            "mysql://u:***@tcp(h:3306)/db?parseTime=true"
        );
        assert_eq!(
            redact_dsn("postgres://h/db?user=u&password=pw"),
            "postgres://h/db?user=u&password=***"
        );
        assert_eq!(redact_dsn("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_dsn("sqlite:///tmp/a.db"), "sqlite:///tmp/a.db");
        let c = resolve("postgres://u:p%40ss@h/db");
        assert_eq!(
            c.scrub("password authentication failed: p@ss p%40ss"),
            "password authentication failed: *** ***"
        );
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_go_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_go_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("10"), None);
        assert_eq!(parse_go_duration(""), None);
    }
}
