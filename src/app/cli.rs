//! The `talos` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use super::config::{self, Settings};
use super::wiring;
use crate::adapters::http::Plane;
use crate::adapters::store::{open_store, Backend, StoreOptions};
use crate::domain::Secret;

#[derive(Parser, Debug)]
#[command(
    name = "talos",
    version,
    about = "API-key server, wire-compatible with Ory Talos (v2alpha1)"
)]
pub struct Cli {
    /// Configuration file (YAML, TOML or JSON). TALOS_* environment variables override it.
    #[arg(long, global = true, env = "TALOS_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server: all planes, or only `admin` or `public`.
    Serve(ServeArgs),
    /// Database migrations.
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Print the OpenAPI document.
    Openapi,
    /// Print the version.
    Version,
    /// Probe a health URL; exit 0 when it answers 200 (for container health checks).
    Healthcheck {
        #[arg(long, default_value = "http://127.0.0.1:4422/health/ready")]
        url: String,
    },
    /// Admin client for a running server (issue, list, verify, import…).
    Keys(super::keys_cli::KeysArgs),
    /// Edge proxy: answers verify from a local cache of valid results and
    /// forwards everything else to an upstream Talos (commercial).
    Proxy(ProxyArgs),
    /// JSON Web Keys: generate signing keys, fetch a server's JWKS.
    Jwk {
        #[command(subcommand)]
        action: JwkAction,
    },
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(subcommand)]
    pub plane: Option<PlaneArg>,
    /// Development mode: embedded SQLite under --data-dir, a generated HMAC
    /// secret, listening on 127.0.0.1 only. Never use in production.
    #[arg(long, global = true)]
    pub dev: bool,
    /// Data directory for --dev.
    #[arg(long, global = true, default_value = ".talos-dev")]
    pub data_dir: PathBuf,
}

#[derive(Subcommand, Debug, Clone, Copy)]
pub enum PlaneArg {
    /// Admin plane only (key management, verification).
    Admin,
    /// Public plane only (self-revoke, JWKS).
    Public,
}

#[derive(Subcommand, Debug)]
pub enum MigrateAction {
    /// Apply pending migrations.
    Up(MigrateArgs),
    /// Show applied and pending migrations.
    Status(MigrateArgs),
}

#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// Database DSN; falls back to DB_DSN, DSN, then the config's db.dsn.
    #[arg(long)]
    pub database: Option<String>,
}

#[derive(Args, Debug)]
pub struct ProxyArgs {
    /// Upstream Talos base URL, e.g. http://talos-admin:4420.
    #[arg(long)]
    pub upstream: String,
    /// Address for proxied traffic.
    #[arg(long, default_value = ":8080")]
    pub listen: String,
    /// Address for health and metrics.
    #[arg(long, default_value = ":8081")]
    pub metrics_listen: String,
    /// Maximum time a valid verify result is served from cache (Go duration).
    #[arg(long, default_value = "1m")]
    pub cache_ttl: String,
    /// Cache size bound in bytes.
    #[arg(long, default_value_t = 104_857_600)]
    pub cache_max_size: u64,
    /// Accepted for compatibility with Ory's proxy; the cache sizes itself by bytes.
    #[arg(long, default_value_t = 10_000)]
    pub cache_num_counters: u64,
    /// Use X-Forwarded-Host (instead of Host) for tenant separation and the allow-list.
    #[arg(long)]
    pub trust_x_forwarded_host: bool,
    /// Comma-separated hostnames allowed to use the proxy (default: all).
    #[arg(long, value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum JwkAction {
    /// Generate a key: eddsa, rsa, ecdsa or hmac.
    Generate {
        #[arg(value_enum)]
        kind: JwkKindArg,
        /// Key id (default: the RFC 7638 thumbprint).
        #[arg(long)]
        kid: Option<String>,
        #[arg(long = "use", default_value = "sig")]
        usage: String,
        /// RSA modulus size (2048–8192) or HMAC key size (≥ 256).
        #[arg(long)]
        bits: Option<usize>,
        /// ECDSA curve: P-256 or P-384.
        #[arg(long, default_value = "P-256")]
        curve: String,
        /// RSA algorithm override (RS384, PS256…).
        #[arg(long)]
        alg: Option<String>,
        /// Wrap the key in a JWKS ({"keys": [...]}).
        #[arg(long)]
        jwks: bool,
        /// Strip the private parts.
        #[arg(long)]
        public_only: bool,
        /// Write to a file (mode 0600) instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Fetch a server's JWKS.
    Get {
        #[arg(short = 'e', long, default_value = "http://localhost:4420")]
        endpoint: String,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum JwkKindArg {
    Eddsa,
    Rsa,
    Ecdsa,
    Hmac,
}

#[derive(Subcommand, Debug)]
pub enum ConfigAction {
    /// Validate a configuration file (and TALOS_* variables) and report problems.
    Check,
    /// List every configuration key with its environment variable.
    Keys,
    /// Print the configuration reference (Markdown; docs/configuration.md).
    Reference,
}

/// Entry point used by `main.rs`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!("talos {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Healthcheck { url } => run_async(async move {
            let client = reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(3))
                .build()
                .map_err(|e| e.to_string())?;
            let r = client
                .get(&url)
                .send()
                .await
                .map_err(|e| format!("{url}: {e}"))?;
            if r.status().is_success() {
                Ok(())
            } else {
                Err(format!("{url} answered {}", r.status()))
            }
        }),
        Command::Openapi => {
            print!("{}", crate::adapters::http::openapi::document_json());
            ExitCode::SUCCESS
        }
        Command::Config {
            action: ConfigAction::Keys,
        } => {
            for (key, env) in config::documented_keys() {
                println!("{key:<55} {env}");
            }
            ExitCode::SUCCESS
        }
        Command::Config {
            action: ConfigAction::Reference,
        } => {
            print!("{}", super::config_docs::reference_markdown());
            ExitCode::SUCCESS
        }
        Command::Config {
            action: ConfigAction::Check,
        } => match load_settings(cli.config.as_deref(), None) {
            Ok((_, warnings)) => {
                for w in &warnings {
                    eprintln!("warning: {w}");
                }
                println!("configuration is valid");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Serve(args) => run_async(serve(cli.config, args)),
        Command::Migrate { action } => run_async(migrate(cli.config, action)),
        Command::Proxy(args) => run_async(proxy(args)),
        Command::Keys(args) => super::keys_cli::main(args),
        Command::Jwk { action } => jwk(action),
    }
}

fn run_async(fut: impl std::future::Future<Output = Result<(), String>>) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            tracing::error!(error = %e, "talos stopped with an error");
            ExitCode::FAILURE
        }
    }
}

/// Loads and validates configuration; `dev` applies `--dev` defaults.
pub fn load_settings(
    file: Option<&std::path::Path>,
    dev: Option<&std::path::Path>,
) -> Result<(Settings, Vec<String>), String> {
    let loaded = config::load(file, std::env::vars())?;
    let mut raw = loaded.raw;
    let mut warnings = loaded.warnings;
    let env = loaded.env;
    if let Some(dir) = dev {
        if let Some(secret) = config::apply_dev_defaults(&mut raw, dir)? {
            eprintln!();
            eprintln!("  ################################################################");
            eprintln!("  #  DEVELOPMENT MODE — NOT FOR PRODUCTION                       #");
            eprintln!("  #  Generated HMAC secret (printed once, kept in the data dir): #");
            eprintln!("  #  {secret}  #");
            eprintln!("  ################################################################");
            eprintln!();
        }
    }
    let mut settings = config::resolve(&raw, &mut warnings)?;
    if dev.is_none() {
        settings.fixed.config_file = file.map(|p| p.to_path_buf());
        settings.fixed.reload_env = env;
    }
    Ok((settings, warnings))
}

async fn serve(config_file: Option<PathBuf>, args: ServeArgs) -> Result<(), String> {
    let dev_dir = args.dev.then_some(args.data_dir.as_path());
    let (settings, warnings) = load_settings(config_file.as_deref(), dev_dir)?;
    let telemetry = wiring::init_logging(
        &settings.fixed.log_level,
        settings.fixed.log_format,
        settings.fixed.tracing.as_ref(),
    )?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        "Starting Ory Talos (talos-rs)"
    );
    for w in warnings {
        tracing::warn!("{w}");
    }
    if args.dev {
        tracing::warn!(data_dir = %args.data_dir.display(), "development mode: embedded SQLite and a generated secret; do not use in production");
    }
    tracing::info!("Configuration validated");
    let plane = match args.plane {
        None => Plane::All,
        Some(PlaneArg::Admin) => {
            tracing::warn!("the admin plane has no authentication; protect it at the network");
            Plane::Admin
        }
        Some(PlaneArg::Public) => Plane::Public,
    };
    if let Some(t) = &settings.fixed.tracing {
        tracing::info!(endpoint = %t.endpoint, sample_rate = t.sample_rate, service_name = %t.service_name, "OpenTelemetry tracing enabled");
    }
    let result = wiring::serve(settings, plane, wiring::shutdown_signal()).await;
    telemetry.shutdown().await;
    result
}

async fn migrate(config_file: Option<PathBuf>, action: MigrateAction) -> Result<(), String> {
    let args = match &action {
        MigrateAction::Up(a) | MigrateAction::Status(a) => a,
    };
    let dsn = match args
        .database
        .clone()
        .or_else(|| std::env::var("DB_DSN").ok())
        .or_else(|| std::env::var("DSN").ok())
        .filter(|s| !s.is_empty())
    {
        Some(d) => d,
        None => {
            let loaded = config::load(config_file.as_deref(), std::env::vars())?;
            loaded.raw.db.dsn
        }
    };
    if dsn.trim().is_empty() {
        return Err(
            "no database DSN: pass --database, set DB_DSN, or set db.dsn in the config".into(),
        );
    }
    let backend = Backend::from_dsn(&dsn).map_err(|e| e.to_string())?;
    let opts = StoreOptions {
        dsn: Secret::new(dsn.clone()),
        run_migrations: false,
        ..StoreOptions::default()
    };
    let store = open_store(&opts).await.map_err(|e| e.to_string())?;
    match action {
        MigrateAction::Up(_) => {
            let applied = store.migrate_up().await.map_err(|e| e.to_string())?;
            if applied.is_empty() {
                println!("{}: database is up to date", backend.name());
            } else {
                for v in applied {
                    println!("{}: applied migration {v}", backend.name());
                }
            }
        }
        MigrateAction::Status(_) => {
            let status = store.migration_status().await.map_err(|e| e.to_string())?;
            println!("{:<8} {:<10} description", "version", "state");
            for (v, desc) in &status.known {
                let state = if status.applied.contains(v) {
                    "applied"
                } else {
                    "pending"
                };
                println!("{v:<8} {state:<10} {desc}");
            }
            let pending = status.pending();
            println!(
                "Database Status: {}",
                if pending.is_empty() {
                    "clean (up to date)".to_string()
                } else {
                    format!("{} pending", pending.len())
                }
            );
        }
    }
    Ok(())
}

/// `:8080` → `0.0.0.0:8080`.
fn listen_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    let full = if s.starts_with(':') {
        format!("0.0.0.0{s}")
    } else {
        s.to_string()
    };
    full.parse()
        .map_err(|_| format!("'{s}' is not a listen address like :8080 or 127.0.0.1:8080"))
}

#[cfg(feature = "proxy")]
async fn proxy(args: ProxyArgs) -> Result<(), String> {
    use crate::adapters::proxy::{self, Proxy, ProxyOptions};
    let _telemetry = wiring::init_logging("info", config::LogFormat::Json, None)?;
    let cache_ttl = crate::domain::duration::parse_go_duration(&args.cache_ttl)
        .map_err(|e| format!("--cache-ttl: {e}"))?;
    let allowed_hosts = args
        .allowed_hosts
        .iter()
        .filter(|h| !h.trim().is_empty())
        .map(|h| {
            crate::domain::tenancy::normalize_host(h)
                .ok_or_else(|| format!("--allowed-hosts: '{h}' is not a hostname"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let p = Proxy::new(ProxyOptions {
        upstream: args.upstream.clone(),
        cache_ttl,
        cache_max_bytes: args.cache_max_size,
        trust_x_forwarded_host: args.trust_x_forwarded_host,
        allowed_hosts,
        upstream_timeout: std::time::Duration::from_secs(10),
    })?;
    let listen = listen_addr(&args.listen)?;
    let metrics = listen_addr(&args.metrics_listen)?;
    let main = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let ops = tokio::net::TcpListener::bind(metrics)
        .await
        .map_err(|e| format!("cannot listen on {metrics}: {e}"))?;
    tracing::info!(listen = %listen, metrics = %metrics, upstream = %args.upstream, "edge proxy started");
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        wiring::shutdown_signal().await;
        let _ = tx.send(true);
    });
    let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    let a = crate::adapters::http::server::serve(main, proxy::service(p.clone()), wait(rx.clone()));
    let b = crate::adapters::http::server::serve(ops, proxy::ops_router(p), wait(rx));
    let (ra, rb) = tokio::join!(a, b);
    ra.and(rb).map_err(|e| e.to_string())
}

#[cfg(not(feature = "proxy"))]
async fn proxy(_args: ProxyArgs) -> Result<(), String> {
    let _ = listen_addr;
    Err("the edge proxy is not compiled into this build; rebuild with --features proxy".into())
}

fn jwk(action: JwkAction) -> ExitCode {
    use crate::adapters::jwk_generate::{generate, GenerateOptions, JwkKind};
    match action {
        JwkAction::Generate {
            kind,
            kid,
            usage,
            bits,
            curve,
            alg,
            jwks,
            public_only,
            output,
        } => {
            let kind = match kind {
                JwkKindArg::Eddsa => JwkKind::Eddsa,
                JwkKindArg::Rsa => JwkKind::Rsa,
                JwkKindArg::Ecdsa => JwkKind::Ecdsa,
                JwkKindArg::Hmac => JwkKind::Hmac,
            };
            let opts = GenerateOptions {
                kid,
                usage,
                bits,
                curve,
                alg,
                jwks,
                public_only,
            };
            let v = match generate(kind, &opts) {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let text = serde_json::to_string_pretty(&v).unwrap_or_default() + "\n";
            match output {
                None => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Some(path) => match config::write_private_file(&path, &text) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("error: {e}");
                        ExitCode::FAILURE
                    }
                },
            }
        }
        JwkAction::Get { endpoint } => run_async(async move {
            let url = format!(
                "{}/v2alpha1/derivedKeys/jwks.json",
                endpoint.trim_end_matches('/')
            );
            let r = reqwest::get(&url)
                .await
                .map_err(|e| format!("{url}: {e}"))?;
            if !r.status().is_success() {
                return Err(format!("{url} answered {}", r.status()));
            }
            let v: serde_json::Value = r.json().await.map_err(|e| e.to_string())?;
            println!(
                "{}",
                serde_json::to_string_pretty(&v["jwks"]).unwrap_or_default()
            );
            Ok(())
        }),
    }
}
