//! `talos keys …`: an admin client for a running server.
//!
//! Exit codes scripts can rely on:
//! * 0 — success (for `verify`: the credential is valid);
//! * 1 — the server answered with an error (its code and message are shown),
//!   or `verify` found the credential invalid;
//! * 2 — bad command-line input (flags, files, JSON);
//! * 3 — the server could not be reached.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Map, Value};

#[derive(Args, Debug)]
pub struct KeysArgs {
    /// Server base URL.
    #[arg(
        short = 'e',
        long,
        global = true,
        default_value = "http://localhost:4420",
        env = "TALOS_ENDPOINT"
    )]
    pub endpoint: String,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Print only the essential value (ids, secrets, validity).
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: KeysCommand,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    JsonPretty,
    Yaml,
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Issue an API key (same as `issued issue`).
    Issue(IssueArgs),
    /// Issued keys.
    Issued {
        #[command(subcommand)]
        action: IssuedAction,
    },
    /// Imported keys.
    Imported {
        #[command(subcommand)]
        action: ImportedAction,
    },
    /// Verify a credential.
    Verify {
        credential: String,
        /// Send Cache-Control: no-cache.
        #[arg(long)]
        no_cache: bool,
    },
    /// Verify several credentials in one request (≤ 100).
    BatchVerify {
        #[arg(required = true)]
        credentials: Vec<String>,
        #[arg(long)]
        no_cache: bool,
    },
    /// Derive a short-lived token from a key.
    DeriveToken {
        credential: String,
        #[arg(long, value_enum, default_value_t = Algorithm::Jwt)]
        algorithm: Algorithm,
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// Comma-separated subset of the key's scopes.
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
        /// Custom claims as a JSON object.
        #[arg(long)]
        claims: Option<String>,
    },
    /// Revoke your own key by presenting it.
    SelfRevoke {
        credential: String,
        #[arg(long, value_enum)]
        reason: Option<Reason>,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Algorithm {
    Jwt,
    Macaroon,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Reason {
    KeyCompromise,
    AffiliationChanged,
    Superseded,
    PrivilegeWithdrawn,
}

impl Reason {
    fn wire(self) -> &'static str {
        match self {
            Reason::KeyCompromise => "REVOCATION_REASON_KEY_COMPROMISE",
            Reason::AffiliationChanged => "REVOCATION_REASON_AFFILIATION_CHANGED",
            Reason::Superseded => "REVOCATION_REASON_SUPERSEDED",
            Reason::PrivilegeWithdrawn => "REVOCATION_REASON_PRIVILEGE_WITHDRAWN",
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct KeyFieldArgs {
    /// Owner of the key.
    #[arg(long = "actor")]
    pub actor: Option<String>,
    #[arg(long, value_delimiter = ',')]
    pub scopes: Option<Vec<String>>,
    /// Lifetime, e.g. 24h, 30d, 1y.
    #[arg(long)]
    pub ttl: Option<String>,
    /// Metadata as a JSON object.
    #[arg(long)]
    pub metadata: Option<String>,
    /// Comma-separated CIDRs; "" clears (update).
    #[arg(long)]
    pub allowed_cidrs: Option<String>,
    /// Requests per window (0 = none).
    #[arg(long)]
    pub rate_limit_quota: Option<i64>,
    /// Window, e.g. 60s.
    #[arg(long)]
    pub rate_limit_window: Option<String>,
}

#[derive(Args, Debug)]
pub struct IssueArgs {
    pub name: String,
    #[command(flatten)]
    pub fields: KeyFieldArgs,
    /// Idempotency key (≤ 36 characters).
    #[arg(long)]
    pub request_id: Option<String>,
    /// Issue a public key (needs a public prefix on the server).
    #[arg(long)]
    pub public: bool,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[arg(long)]
    pub actor: Option<String>,
    /// active, revoked or expired (needs --actor).
    #[arg(long)]
    pub status: Option<String>,
    #[arg(long)]
    pub page_size: Option<u32>,
    #[arg(long)]
    pub page_token: Option<String>,
    /// Follow next_page_token until the end.
    #[arg(long)]
    pub all: bool,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    pub key_id: String,
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub fields: KeyFieldArgs,
    /// Explicit update mask (comma-separated); default: the fields given.
    #[arg(long)]
    pub update_mask: Option<String>,
}

#[derive(Args, Debug)]
pub struct RevokeArgs {
    pub key_id: String,
    #[arg(long, value_enum)]
    pub reason: Option<Reason>,
    /// Only with --reason privilege-withdrawn.
    #[arg(long)]
    pub reason_text: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum IssuedAction {
    Issue(IssueArgs),
    Get {
        key_id: String,
    },
    List(ListArgs),
    Update(UpdateArgs),
    Rotate {
        key_id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, value_delimiter = ',')]
        scopes: Option<Vec<String>>,
        #[arg(long)]
        metadata: Option<String>,
    },
    Revoke(RevokeArgs),
}

#[derive(Subcommand, Debug)]
pub enum ImportedAction {
    /// Import one foreign key.
    Import {
        name: String,
        #[arg(long)]
        raw_key: String,
        #[command(flatten)]
        fields: KeyFieldArgs,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Import many keys from a JSON array, JSON lines or CSV file ("-" = stdin).
    BatchImport(BatchImportArgs),
    Get {
        key_id: String,
    },
    List(ListArgs),
    Update(UpdateArgs),
    Revoke(RevokeArgs),
    Delete {
        key_id: String,
    },
}

#[derive(Args, Debug)]
pub struct BatchImportArgs {
    /// Input file: JSON array, JSON lines (.jsonl) or CSV with a header
    /// (raw_key,name,actor_id[,scopes][,ttl]; scopes separated by ';'). "-" reads stdin.
    #[arg(long)]
    pub file: String,
    /// Keys per request (1–1000).
    #[arg(long, default_value_t = 1000)]
    pub chunk_size: usize,
    /// Where to write failed items (JSON lines, never the raw keys).
    #[arg(long)]
    pub failures: Option<PathBuf>,
    /// Progress file for resuming; default `<file>.progress` (none for stdin).
    #[arg(long)]
    pub progress_file: Option<PathBuf>,
}

/// Errors the CLI reports, with their exit codes.
pub enum CliError {
    Usage(String),
    Server {
        status: u16,
        code: String,
        message: String,
    },
    Connect(String),
    Invalid,
}

impl CliError {
    fn exit(self) -> ExitCode {
        match self {
            CliError::Usage(m) => {
                eprintln!("error: {m}");
                ExitCode::from(2)
            }
            CliError::Server {
                status,
                code,
                message,
            } => {
                eprintln!("error: server answered {status} {code}: {message}");
                ExitCode::from(1)
            }
            CliError::Connect(m) => {
                eprintln!("error: cannot reach the server: {m}");
                ExitCode::from(3)
            }
            CliError::Invalid => ExitCode::from(1),
        }
    }
}

type CliResult<T> = Result<T, CliError>;

struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    fn new(endpoint: &str) -> CliResult<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| CliError::Usage(e.to_string()))?;
        Ok(Client {
            base: endpoint.trim_end_matches('/').to_string(),
            http,
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> CliResult<Value> {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| CliError::Connect(e.to_string()))?;
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .await
            .map_err(|e| CliError::Connect(e.to_string()))?;
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if (200..300).contains(&status) {
            return Ok(v);
        }
        let code = v["error"]["details"][0]["reason"]
            .as_str()
            .or_else(|| v["error"]["status"].as_str())
            .unwrap_or("UNKNOWN")
            .to_string();
        let message = v["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string());
        Err(CliError::Server {
            status,
            code,
            message,
        })
    }
}

fn parse_json_object(flag: &str, s: &str) -> CliResult<Map<String, Value>> {
    match serde_json::from_str::<Value>(s) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(CliError::Usage(format!("{flag} must be a JSON object"))),
    }
}

fn cidrs(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

/// Builds the JSON fields shared by issue/import (present flags only).
fn key_fields(f: &KeyFieldArgs, out: &mut Map<String, Value>) -> CliResult<()> {
    if let Some(a) = &f.actor {
        out.insert("actor_id".into(), json!(a));
    }
    if let Some(s) = &f.scopes {
        out.insert("scopes".into(), json!(s));
    }
    if let Some(t) = &f.ttl {
        out.insert("ttl".into(), json!(t));
    }
    if let Some(m) = &f.metadata {
        out.insert(
            "metadata".into(),
            Value::Object(parse_json_object("--metadata", m)?),
        );
    }
    if let Some(c) = &f.allowed_cidrs {
        out.insert(
            "ip_restriction".into(),
            json!({ "allowed_cidrs": cidrs(c) }),
        );
    }
    match (f.rate_limit_quota, &f.rate_limit_window) {
        (Some(q), w) if q > 0 => {
            let mut p = json!({ "quota": q.to_string() });
            if let Some(w) = w {
                p["window"] = json!(w);
            }
            out.insert("rate_limit_policy".into(), p);
        }
        (Some(_), _) => {
            out.insert("rate_limit_policy".into(), Value::Null);
        }
        (None, Some(_)) => {
            return Err(CliError::Usage(
                "--rate-limit-window needs --rate-limit-quota".into(),
            ))
        }
        (None, None) => {}
    }
    Ok(())
}

fn list_query(a: &ListArgs, token: Option<&str>) -> String {
    let mut q = Vec::new();
    let mut filter = Vec::new();
    if let Some(actor) = &a.actor {
        filter.push(format!("actor_id=\"{}\"", actor.replace('"', "")));
    }
    if let Some(st) = &a.status {
        let st = st.to_ascii_uppercase();
        let st = if st.starts_with("KEY_STATUS_") {
            st
        } else {
            format!("KEY_STATUS_{st}")
        };
        filter.push(format!("status={st}"));
    }
    if !filter.is_empty() {
        q.push(format!("filter={}", urlencode(&filter.join(" AND "))));
    }
    if let Some(n) = a.page_size {
        q.push(format!("page_size={n}"));
    }
    if let Some(t) = token.or(a.page_token.as_deref()) {
        q.push(format!("page_token={}", urlencode(t)));
    }
    if q.is_empty() {
        String::new()
    } else {
        format!("?{}", q.join("&"))
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn pathseg(s: &str) -> String {
    urlencode(s)
}

// ------------------------------------------------------------------ output

fn print(format: Format, quiet: bool, v: &Value, quiet_field: &[&str]) {
    if quiet {
        let mut cur = v;
        for f in quiet_field {
            cur = &cur[*f];
        }
        match cur {
            Value::String(s) => println!("{s}"),
            Value::Null => {}
            other => println!("{other}"),
        }
        return;
    }
    match format {
        Format::Json => println!("{v}"),
        Format::JsonPretty => println!("{}", serde_json::to_string_pretty(v).unwrap_or_default()),
        Format::Yaml => print!("{}", serde_yaml::to_string(v).unwrap_or_default()),
        Format::Table => print_table(v),
    }
}

const KEY_COLUMNS: &[&str] = &[
    "key_id",
    "name",
    "actor_id",
    "status",
    "scopes",
    "expire_time",
];

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

fn table(rows: &[&Value], cols: &[&str]) {
    let data: Vec<Vec<String>> = rows
        .iter()
        .map(|r| cols.iter().map(|c| cell(&r[*c])).collect())
        .collect();
    let widths: Vec<usize> = cols
        .iter()
        .enumerate()
        .map(|(i, c)| {
            data.iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
                .max(c.len())
        })
        .collect();
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    println!(
        "{}",
        line(cols.iter().map(|c| c.to_ascii_uppercase()).collect())
    );
    for r in data {
        println!("{}", line(r));
    }
}

fn print_table(v: &Value) {
    let Some(obj) = v.as_object() else {
        println!("{v}");
        return;
    };
    // Lists.
    for list in ["issued_api_keys", "imported_api_keys"] {
        if let Some(Value::Array(items)) = obj.get(list) {
            table(&items.iter().collect::<Vec<_>>(), KEY_COLUMNS);
            if let Some(t) = obj
                .get("next_page_token")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
            {
                println!("\nnext page: --page-token {t}");
            }
            return;
        }
    }
    if let Some(Value::Array(items)) = obj.get("results") {
        let cols: &[&str] = if items.first().is_some_and(|i| i.get("is_valid").is_some()) {
            &["is_valid", "key_id", "actor_id", "error_code"]
        } else {
            &["index", "error_code", "error_message"]
        };
        table(&items.iter().collect::<Vec<_>>(), cols);
        return;
    }
    // A single object: key/value lines, secret first.
    if let Some(s) = obj.get("secret").and_then(Value::as_str) {
        println!("{:<22} {s}", "SECRET");
        println!("{:<22} (shown only once; store it now)", "");
    }
    let inner = obj.get("issued_api_key").unwrap_or(v);
    if let Some(m) = inner.as_object() {
        for (k, val) in m {
            if k != "secret" {
                println!("{:<22} {}", k.to_ascii_uppercase(), cell(val));
            }
        }
    }
}

// -------------------------------------------------------------- commands

pub fn main(args: KeysArgs) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return CliError::Usage(e.to_string()).exit(),
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.exit(),
    }
}

async fn run(a: KeysArgs) -> CliResult<()> {
    let c = Client::new(&a.endpoint)?;
    let (fmt, q) = (a.format, a.quiet);
    use reqwest::Method as M;
    match a.command {
        KeysCommand::Issue(i)
        | KeysCommand::Issued {
            action: IssuedAction::Issue(i),
        } => {
            let mut body = Map::new();
            body.insert("name".into(), json!(i.name));
            key_fields(&i.fields, &mut body)?;
            if i.fields.actor.is_none() {
                return Err(CliError::Usage("--actor is required".into()));
            }
            if let Some(r) = i.request_id {
                body.insert("request_id".into(), json!(r));
            }
            if i.public {
                body.insert("visibility".into(), json!("KEY_VISIBILITY_PUBLIC"));
            }
            let v = c
                .call(
                    M::POST,
                    "/v2alpha1/admin/issuedApiKeys",
                    Some(Value::Object(body)),
                    &[],
                )
                .await?;
            print(fmt, q, &v, &["secret"]);
        }
        KeysCommand::Issued { action } => issued(&c, fmt, q, action).await?,
        KeysCommand::Imported { action } => imported(&c, fmt, q, action).await?,
        KeysCommand::Verify {
            credential,
            no_cache,
        } => {
            let h: &[(&str, &str)] = if no_cache {
                &[("cache-control", "no-cache")]
            } else {
                &[]
            };
            let v = c
                .call(
                    M::POST,
                    "/v2alpha1/admin/apiKeys:verify",
                    Some(json!({ "credential": credential })),
                    h,
                )
                .await?;
            print(fmt, q, &v, &["is_valid"]);
            if v["is_valid"] != true {
                return Err(CliError::Invalid);
            }
        }
        KeysCommand::BatchVerify {
            credentials,
            no_cache,
        } => {
            let h: &[(&str, &str)] = if no_cache {
                &[("cache-control", "no-cache")]
            } else {
                &[]
            };
            let reqs: Vec<Value> = credentials
                .iter()
                .map(|c| json!({ "credential": c }))
                .collect();
            let v = c
                .call(
                    M::POST,
                    "/v2alpha1/admin/apiKeys:batchVerify",
                    Some(json!({ "requests": reqs })),
                    h,
                )
                .await?;
            print(fmt, false, &v, &[]);
        }
        KeysCommand::DeriveToken {
            credential,
            algorithm,
            ttl,
            scopes,
            claims,
        } => {
            let mut body = json!({
                "credential": credential,
                "algorithm": match algorithm { Algorithm::Jwt => "TOKEN_ALGORITHM_JWT", Algorithm::Macaroon => "TOKEN_ALGORITHM_MACAROON" },
                "ttl": ttl,
            });
            if !scopes.is_empty() {
                body["scopes"] = json!(scopes);
            }
            if let Some(cl) = claims {
                body["custom_claims"] = Value::Object(parse_json_object("--claims", &cl)?);
            }
            let v = c
                .call(M::POST, "/v2alpha1/admin/apiKeys:derive", Some(body), &[])
                .await?;
            print(fmt, q, &v, &["token", "token"]);
        }
        KeysCommand::SelfRevoke { credential, reason } => {
            let mut body = json!({ "credential": credential });
            if let Some(r) = reason {
                body["reason"] = json!(r.wire());
            }
            c.call(M::POST, "/v2alpha1/apiKeys:selfRevoke", Some(body), &[])
                .await?;
            if !q {
                println!("revoked");
            }
        }
    }
    Ok(())
}

fn update_body(u: &UpdateArgs) -> CliResult<(String, Value)> {
    let mut body = Map::new();
    if let Some(n) = &u.name {
        body.insert("name".into(), json!(n));
    }
    key_fields(&u.fields, &mut body)?;
    if u.fields.actor.is_some() || u.fields.ttl.is_some() {
        return Err(CliError::Usage(
            "--actor and --ttl cannot be updated".into(),
        ));
    }
    let mask = match &u.update_mask {
        Some(m) => m.clone(),
        None => body.keys().cloned().collect::<Vec<_>>().join(","),
    };
    if mask.is_empty() {
        return Err(CliError::Usage("nothing to update: pass --name, --scopes, --metadata, --allowed-cidrs or --rate-limit-*".into()));
    }
    Ok((mask, Value::Object(body)))
}

fn revoke_body(r: &RevokeArgs) -> Value {
    let mut b = json!({});
    if let Some(reason) = r.reason {
        b["reason"] = json!(reason.wire());
    }
    if let Some(t) = &r.reason_text {
        b["description"] = json!(t);
    }
    b
}

async fn list(
    c: &Client,
    fmt: Format,
    q: bool,
    base: &str,
    field: &str,
    a: &ListArgs,
) -> CliResult<()> {
    let mut token: Option<String> = None;
    let mut all: Vec<Value> = Vec::new();
    loop {
        let v = c
            .call(
                reqwest::Method::GET,
                &format!("{base}{}", list_query(a, token.as_deref())),
                None,
                &[],
            )
            .await?;
        let next = v["next_page_token"].as_str().unwrap_or("").to_string();
        if !a.all {
            if q {
                for k in v[field].as_array().into_iter().flatten() {
                    println!("{}", k["key_id"].as_str().unwrap_or(""));
                }
            } else {
                print(fmt, false, &v, &[]);
            }
            return Ok(());
        }
        all.extend(v[field].as_array().cloned().unwrap_or_default());
        if next.is_empty() {
            break;
        }
        token = Some(next);
    }
    let v = json!({ field: all, "next_page_token": "" });
    if q {
        for k in &all {
            println!("{}", k["key_id"].as_str().unwrap_or(""));
        }
    } else {
        print(fmt, false, &v, &[]);
    }
    Ok(())
}

/// `GET <base>/<key_id>`, printed (issued and imported keys alike).
async fn get_key(c: &Client, fmt: Format, q: bool, base: &str, key_id: &str) -> CliResult<()> {
    let v = c
        .call(
            reqwest::Method::GET,
            &format!("{base}/{}", pathseg(key_id)),
            None,
            &[],
        )
        .await?;
    print(fmt, q, &v, &["key_id"]);
    Ok(())
}

/// `PATCH <base>/<key_id>?update_mask=…` with the fields given, printed.
async fn update_key(c: &Client, fmt: Format, q: bool, base: &str, u: &UpdateArgs) -> CliResult<()> {
    let (mask, body) = update_body(u)?;
    let path = format!(
        "{base}/{}?update_mask={}",
        pathseg(&u.key_id),
        urlencode(&mask)
    );
    let v = c
        .call(reqwest::Method::PATCH, &path, Some(body), &[])
        .await?;
    print(fmt, q, &v, &["key_id"]);
    Ok(())
}

async fn issued(c: &Client, fmt: Format, q: bool, action: IssuedAction) -> CliResult<()> {
    use reqwest::Method as M;
    const BASE: &str = "/v2alpha1/admin/issuedApiKeys";
    match action {
        IssuedAction::Issue(_) => unreachable!("handled by the caller"),
        IssuedAction::Get { key_id } => get_key(c, fmt, q, BASE, &key_id).await?,
        IssuedAction::List(a) => list(c, fmt, q, BASE, "issued_api_keys", &a).await?,
        IssuedAction::Update(u) => update_key(c, fmt, q, BASE, &u).await?,
        IssuedAction::Rotate {
            key_id,
            name,
            scopes,
            metadata,
        } => {
            let mut body = Map::new();
            if let Some(n) = name {
                body.insert("name".into(), json!(n));
            }
            if let Some(s) = scopes {
                body.insert("scopes".into(), json!(s));
            }
            if let Some(m) = metadata {
                body.insert(
                    "metadata".into(),
                    Value::Object(parse_json_object("--metadata", &m)?),
                );
            }
            let v = c
                .call(
                    M::POST,
                    &format!("{BASE}/{}:rotate", pathseg(&key_id)),
                    Some(Value::Object(body)),
                    &[],
                )
                .await?;
            print(fmt, q, &v, &["secret"]);
        }
        IssuedAction::Revoke(r) => {
            c.call(
                M::POST,
                &format!("{BASE}/{}:revoke", pathseg(&r.key_id)),
                Some(revoke_body(&r)),
                &[],
            )
            .await?;
            if !q {
                println!("revoked {}", r.key_id);
            }
        }
    }
    Ok(())
}

async fn imported(c: &Client, fmt: Format, q: bool, action: ImportedAction) -> CliResult<()> {
    use reqwest::Method as M;
    const BASE: &str = "/v2alpha1/admin/importedApiKeys";
    match action {
        ImportedAction::Import {
            name,
            raw_key,
            fields,
            request_id,
        } => {
            let mut body = Map::new();
            body.insert("name".into(), json!(name));
            body.insert("raw_key".into(), json!(raw_key));
            key_fields(&fields, &mut body)?;
            if fields.actor.is_none() {
                return Err(CliError::Usage("--actor is required".into()));
            }
            if let Some(r) = request_id {
                body.insert("request_id".into(), json!(r));
            }
            let v = c
                .call(M::POST, BASE, Some(Value::Object(body)), &[])
                .await?;
            print(fmt, q, &v, &["key_id"]);
        }
        ImportedAction::BatchImport(b) => batch_import(c, fmt, q, b).await?,
        ImportedAction::Get { key_id } => get_key(c, fmt, q, BASE, &key_id).await?,
        ImportedAction::List(a) => list(c, fmt, q, BASE, "imported_api_keys", &a).await?,
        ImportedAction::Update(u) => update_key(c, fmt, q, BASE, &u).await?,
        ImportedAction::Revoke(r) => {
            c.call(
                M::POST,
                &format!("{BASE}/{}:revoke", pathseg(&r.key_id)),
                Some(revoke_body(&r)),
                &[],
            )
            .await?;
            if !q {
                println!("revoked {}", r.key_id);
            }
        }
        ImportedAction::Delete { key_id } => {
            c.call(
                M::DELETE,
                &format!("{BASE}/{}", pathseg(&key_id)),
                None,
                &[],
            )
            .await?;
            if !q {
                println!("deleted {key_id}");
            }
        }
    }
    Ok(())
}

// ----------------------------------------------------------- batch import

/// Reads import items from JSON (array), JSON lines or CSV.
pub fn read_items(text: &str, hint: &str) -> Result<Vec<Value>, String> {
    let t = text.trim_start_matches('\u{feff}').trim();
    if t.is_empty() {
        return Ok(Vec::new());
    }
    if t.starts_with('[') {
        return match serde_json::from_str::<Value>(t) {
            Ok(Value::Array(a)) => Ok(a),
            Ok(_) => Err("expected a JSON array".into()),
            Err(e) => Err(format!("invalid JSON: {e}")),
        };
    }
    if t.starts_with('{') || hint.ends_with(".jsonl") || hint.ends_with(".ndjson") {
        return t
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("line {}: {e}", i + 1)))
            .collect();
    }
    // CSV with a header row; no quoting beyond trimming (keys never hold commas).
    let mut lines = t.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap_or("")
        .split(',')
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    for required in ["raw_key", "name", "actor_id"] {
        if !header.iter().any(|h| h == required) {
            return Err(format!(
                "CSV header must name {required} (got: {})",
                header.join(",")
            ));
        }
    }
    let mut out = Vec::new();
    for (i, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split(',').map(str::trim).collect();
        if cols.len() != header.len() {
            return Err(format!(
                "CSV line {}: expected {} columns, got {}",
                i + 2,
                header.len(),
                cols.len()
            ));
        }
        let mut item = Map::new();
        for (h, v) in header.iter().zip(cols) {
            match h.as_str() {
                "scopes" => {
                    item.insert(
                        "scopes".into(),
                        json!(v.split(';').filter(|s| !s.is_empty()).collect::<Vec<_>>()),
                    );
                }
                _ if v.is_empty() => {}
                other => {
                    item.insert(other.to_string(), json!(v));
                }
            }
        }
        out.push(Value::Object(item));
    }
    Ok(out)
}

#[derive(Default, Debug, PartialEq, Eq)]
pub struct ImportSummary {
    pub imported: usize,
    pub duplicates: usize,
    pub failed: usize,
}

/// Sends one chunk and returns one result per item (`index` relative to the
/// chunk). When every item fails the server answers a single error with the
/// dominant code, which would hide the other items' reasons; the chunk is
/// then re-sent item by item (imports are idempotent, so nothing doubles).
async fn send_chunk(c: &Client, chunk: &[Value]) -> CliResult<Vec<Value>> {
    let send = |items: &[Value]| {
        c.call(
            reqwest::Method::POST,
            "/v2alpha1/admin/importedApiKeys:batchCreate",
            Some(json!({ "requests": items })),
            &[],
        )
    };
    match send(chunk).await {
        Ok(v) => Ok(v["results"].as_array().cloned().unwrap_or_default()),
        Err(CliError::Server { status, .. }) if status < 500 && chunk.len() > 1 => {
            let mut out = Vec::with_capacity(chunk.len());
            for (i, item) in chunk.iter().enumerate() {
                let r = match send(std::slice::from_ref(item)).await {
                    Ok(v) => {
                        let mut r = v["results"][0].clone();
                        r["index"] = json!(i);
                        r
                    }
                    Err(CliError::Server {
                        status,
                        code,
                        message,
                    }) if status < 500 => item_error(i, &code, &message),
                    Err(e) => return Err(e),
                };
                out.push(r);
            }
            Ok(out)
        }
        Err(CliError::Server {
            status,
            code,
            message,
        }) if status < 500 => Ok(vec![item_error(0, &code, &message)]),
        Err(e) => Err(e),
    }
}

/// A per-item result built from a whole-request error for one item.
fn item_error(index: usize, code: &str, message: &str) -> Value {
    let code = match code {
        "API_KEY_EXISTS" => "BATCH_CREATE_IMPORTED_API_KEYS_ERROR_ALREADY_EXISTS",
        other => other,
    };
    json!({ "index": index, "error_code": code, "error_message": message })
}

async fn batch_import(c: &Client, fmt: Format, q: bool, b: BatchImportArgs) -> CliResult<()> {
    if !(1..=1000).contains(&b.chunk_size) {
        return Err(CliError::Usage(
            "--chunk-size must be between 1 and 1000".into(),
        ));
    }
    let text = if b.file == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| CliError::Usage(format!("stdin: {e}")))?;
        s
    } else {
        std::fs::read_to_string(&b.file).map_err(|e| CliError::Usage(format!("{}: {e}", b.file)))?
    };
    let items =
        read_items(&text, &b.file).map_err(|e| CliError::Usage(format!("{}: {e}", b.file)))?;
    let progress_path = b
        .progress_file
        .clone()
        .or_else(|| (b.file != "-").then(|| PathBuf::from(format!("{}.progress", b.file))));
    // Resume: the progress file holds the number of items already sent.
    let done_before = progress_path
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(0)
        .min(items.len());
    let mut failures_out = match &b.failures {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| CliError::Usage(format!("{}: {e}", p.display())))?,
        ),
        None => None,
    };
    let total = items.len();
    let bar = if std::io::stderr().is_terminal() && !q {
        let pb = indicatif::ProgressBar::new(total as u64);
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} keys  {per_sec}  eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        pb.set_position(done_before as u64);
        Some(pb)
    } else {
        None
    };
    if done_before > 0 && !q {
        eprintln!("resuming after {done_before} of {total} items (from the progress file)");
    }
    let mut summary = ImportSummary::default();
    let mut reasons: std::collections::BTreeMap<String, usize> = Default::default();
    let mut offset = done_before;
    while offset < total {
        let end = (offset + b.chunk_size).min(total);
        let results = match send_chunk(c, &items[offset..end]).await {
            Ok(r) => r,
            Err(e) => {
                if let Some(pb) = &bar {
                    pb.abandon();
                }
                eprintln!(
                    "stopped at item {offset} of {total}; run the same command again to resume"
                );
                return Err(e);
            }
        };
        for r in &results {
            let idx = offset + r["index"].as_u64().unwrap_or(0) as usize;
            if r.get("imported_api_key").is_some_and(|k| !k.is_null()) {
                summary.imported += 1;
            } else if r["error_code"] == "BATCH_CREATE_IMPORTED_API_KEYS_ERROR_ALREADY_EXISTS" {
                summary.duplicates += 1;
            } else {
                summary.failed += 1;
                let msg = r["error_message"].as_str().unwrap_or("").to_string();
                *reasons.entry(msg.clone()).or_default() += 1;
                if let Some(f) = failures_out.as_mut() {
                    let line = json!({
                        "item": idx,
                        "name": items[idx].get("name").cloned().unwrap_or(Value::Null),
                        "error_code": r["error_code"],
                        "error_message": msg,
                    });
                    let _ = writeln!(f, "{line}");
                }
            }
        }
        offset = end;
        if let Some(p) = &progress_path {
            let _ = std::fs::write(p, offset.to_string());
        }
        match &bar {
            Some(pb) => pb.set_position(offset as u64),
            None if !q => eprintln!("progress: {offset}/{total} items"),
            None => {}
        }
    }
    if let Some(pb) = &bar {
        pb.finish_and_clear();
    }
    if let Some(p) = &progress_path {
        let _ = std::fs::remove_file(p);
    }
    let v = json!({
        "imported": summary.imported,
        "duplicates": summary.duplicates,
        "failed": summary.failed,
        "failure_reasons": reasons,
    });
    if q {
        println!(
            "{} {} {}",
            summary.imported, summary.duplicates, summary.failed
        );
    } else if fmt == Format::Table {
        println!(
            "imported {}  duplicates {}  failed {}",
            summary.imported, summary.duplicates, summary.failed
        );
        for (reason, n) in &reasons {
            println!("  {n:>6}  {reason}");
        }
    } else {
        print(fmt, false, &v, &[]);
    }
    if summary.failed > 0 {
        return Err(CliError::Invalid);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_json_jsonl_and_csv() {
        let a = read_items(r#"[{"raw_key":"a","name":"n","actor_id":"u"}]"#, "x.json").unwrap();
        assert_eq!(a.len(), 1);
        let b = read_items("{\"raw_key\":\"a\"}\n\n{\"raw_key\":\"b\"}\n", "x.jsonl").unwrap();
        assert_eq!(b.len(), 2);
        let c = read_items(
            "raw_key,name,actor_id,scopes\nk1,n1,u1,read;write\nk2,n2,u2,\n",
            "x.csv",
        )
        .unwrap();
        assert_eq!(c[0]["scopes"], json!(["read", "write"]));
        assert_eq!(c[1]["raw_key"], "k2");
        assert!(read_items("name,actor_id\nx,y\n", "x.csv").is_err());
        assert!(read_items("raw_key,name,actor_id\nk,n\n", "x.csv").is_err());
        assert!(read_items("{bad", "x.jsonl").is_err());
    }

    #[test]
    fn list_query_builds_a_filter() {
        let a = ListArgs {
            actor: Some("u1".into()),
            status: Some("revoked".into()),
            page_size: Some(5),
            page_token: None,
            all: false,
        };
        assert_eq!(
            list_query(&a, None),
            "?filter=actor_id%3D%22u1%22%20AND%20status%3DKEY_STATUS_REVOKED&page_size=5"
        );
    }
}
