//! Hot reload: the config file is watched (polled for changes, which works
//! on every filesystem including Kubernetes ConfigMap symlink swaps). A
//! valid new file atomically replaces the per-request settings (secrets,
//! prefixes, TTLs, issuer, cache toggles, quota, rate-limit switch, signing
//! key URLs); a bad file is refused with a log line and the old settings keep
//! serving. Keys that need a restart are reported when they change.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;

use super::config::{self, RuntimeSettings, StaticSettings};

fn fingerprint(path: &std::path::Path) -> Option<(SystemTime, u64, Vec<u8>)> {
    let meta = std::fs::metadata(path).ok()?;
    let contents = std::fs::read(path).ok()?;
    Some((meta.modified().ok()?, meta.len(), contents))
}

/// One reload attempt. Returns the new runtime settings, or why the file
/// was refused.
pub fn reload_once(
    path: &std::path::Path,
    fixed: &StaticSettings,
) -> Result<RuntimeSettings, String> {
    let loaded = config::load(Some(path), fixed.reload_env.0.clone())?;
    let mut warnings = loaded.warnings;
    let settings = config::resolve(&loaded.raw, &mut warnings)?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    if settings.fixed.http_addr != fixed.http_addr
        || settings.fixed.metrics_addr != fixed.metrics_addr
        || settings.fixed.store.dsn != fixed.store.dsn
        || settings.fixed.cache_kind != fixed.cache_kind
    {
        tracing::warn!("the new configuration changes keys that need a restart (listeners, db.dsn, cache.type); those changes are ignored until then");
    }
    Ok(settings.runtime)
}

/// Polls `path` every `every` and swaps `runtime` on a valid change.
pub fn spawn_watcher(
    path: PathBuf,
    fixed: StaticSettings,
    runtime: Arc<ArcSwap<RuntimeSettings>>,
    every: Duration,
    on_reload: impl Fn(&RuntimeSettings) + Send + Sync + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last = fingerprint(&path);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = fingerprint(&path);
            if now.is_none() || now == last {
                continue;
            }
            last = now;
            match reload_once(&path, &fixed) {
                Ok(new) => {
                    on_reload(&new);
                    runtime.store(Arc::new(new));
                    tracing::info!(file = %path.display(), "configuration reloaded");
                }
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "configuration change refused; the previous configuration stays in effect");
                }
            }
        }
    })
}
