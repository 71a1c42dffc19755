//! SQLite adapter.
//!
//! File databases run in WAL mode with `synchronous=NORMAL`, a busy timeout
//! and foreign keys on. Read-modify-write transactions (revoke, rotate,
//! batch import) start with `BEGIN IMMEDIATE`, taking the write lock up
//! front, so two concurrent revokes/rotations of one key serialize instead
//! of both reading ACTIVE (SQLite has no `SELECT … FOR UPDATE`).
//!
//! WAL checkpoints of a file database run in a background task, not in the
//! commit of whichever request crosses SQLite's threshold; see
//! [`checkpoint_in_background`].
//!
//! A file database has two pools. Writes go through one connection, so
//! writers queue in the pool (in order, without sleeping) instead of in
//! SQLite's busy handler, which sleeps 1, 2, 5, 10 … 100 ms between tries.
//! Reads go through `db.max_connections` read-only connections that read
//! the file through a memory map ([`READ_MAP_BYTES`]): a page already in
//! the OS page cache costs no `pread` and no copy into SQLite's own cache,
//! so a list page or a verification miss on a large file costs about what
//! it costs on a small one. Only read-only connections map the file: a
//! connection that maps it also grows it with `ftruncate` before a
//! checkpoint writes to it, so the write path stays as it was without a
//! map (a map on every connection went with failed disk-full recoveries;
//! docs/decisions.md).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, Sqlite, SqliteConnection};

use super::common::{self, bind_args, bind_key, Placeholders};
use super::rows::{map_db_error, nid_str, KeyParams, KeyRow, TxError};
use crate::adapters::apply_revocation;
use crate::adapters::store::{OpenError, PoolConfig};
use crate::domain::{
    ApiKey, KeyKind, KeyStatus, ListFilter, NetworkId, RevocationReason, Timestamp,
};
use crate::ports::{BatchInsertOutcome, KeyStore, MigrationStatus, StoreError};

pub static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

const BEGIN_IMMEDIATE: &str = "BEGIN IMMEDIATE";

pub struct SqliteKeyStore {
    /// Queries that only read. For an in-memory or read-only database this
    /// is the same pool as `writes`.
    reads: SqlitePool,
    /// Everything that writes: one connection for a file database.
    writes: SqlitePool,
    /// Held shared by every write and exclusively by the background
    /// checkpoint's short catch-up pass; see [`checkpoint_in_background`].
    writers: WriteGate,
}

/// Shared by writers, taken exclusively by the checkpointer.
type WriteGate = Arc<tokio::sync::RwLock<()>>;

/// Rows per statement in a batch import: 18 parameters each, far below
/// SQLite's 32766.
const BATCH_ROWS: usize = 100;

/// How much of a file database each read connection maps (virtual address
/// space, not memory: only pages read are resident, and they are the OS
/// page cache's, shared by every connection). Past this size the rest of
/// the file is read with `pread` as without a map. Public for the store
/// bench, whose bare pool reads the way the store does.
pub const READ_MAP_BYTES: u64 = 1 << 30;

/// What `sqlite://<path>?<query>` means: the path after the scheme is a raw
/// filesystem path; `:memory:` or `mode=memory` is a private in-memory
/// database; `mode=ro|rw|rwc` map to read-only / no-create / create.
struct SqliteTarget {
    path: String,
    memory: bool,
    read_only: bool,
    create: bool,
}

fn parse_target(url: &str) -> SqliteTarget {
    let rest = url
        .strip_prefix("sqlite3://")
        .or_else(|| url.strip_prefix("sqlite://"))
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut t = SqliteTarget {
        path: path.to_string(),
        memory: path == ":memory:" || path.is_empty(),
        read_only: false,
        create: true,
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == "mode" {
            match v {
                "memory" => t.memory = true,
                "ro" => {
                    t.read_only = true;
                    t.create = false;
                }
                "rw" => t.create = false,
                _ => {}
            }
        }
    }
    t
}

/// Opens a SQLite store (`cfg.url` is a sqlite:// or sqlite3:// DSN).
pub async fn open(cfg: &PoolConfig) -> Result<SqliteKeyStore, OpenError> {
    let connect_err = |reason: String| OpenError::Connect {
        backend: "sqlite",
        reason: cfg.scrub(&reason),
    };
    let t = parse_target(&cfg.url);
    let mut opts = SqliteConnectOptions::new()
        .foreign_keys(true)
        .busy_timeout(cfg.statement_timeout);
    let connect = |pool: SqlitePoolOptions, opts: SqliteConnectOptions| async move {
        match tokio::time::timeout(cfg.connect_timeout, pool.connect_with(opts)).await {
            Ok(Ok(pool)) => Ok(pool),
            Ok(Err(e)) => Err(connect_err(e.to_string())),
            Err(_) => Err(connect_err(format!(
                "no answer within {:?}",
                cfg.connect_timeout
            ))),
        }
    };
    // No ping before handing out a connection: a connection to a local file
    // cannot have gone away, and sqlx's ping is one more round trip to the
    // connection's worker thread (two thread wake-ups) on every query.
    let pool = SqlitePoolOptions::new()
        .acquire_timeout(cfg.acquire_timeout)
        .test_before_acquire(false);
    if t.memory {
        // Every connection to ":memory:" is a different database: pin the
        // pool to one connection that never closes.
        opts = opts.in_memory(true);
        let pool = pool
            .max_connections(1)
            .min_connections(1)
            .max_lifetime(None)
            .idle_timeout(None);
        let pool = connect(pool, opts).await?;
        return SqliteKeyStore::ready(pool.clone(), pool, WriteGate::default(), cfg).await;
    }
    opts = wal_mode(
        opts.filename(&t.path)
            .create_if_missing(t.create)
            .read_only(t.read_only),
    );
    let sized = |pool: SqlitePoolOptions, max: u32| {
        pool.max_connections(max)
            .min_connections(cfg.min_connections.min(max))
            .max_lifetime(cfg.max_lifetime)
            .idle_timeout(cfg.idle_timeout)
    };
    // The read pool opens after the write pool has created the file and
    // put it in WAL mode; a read-only connection could do neither.
    let read_opts = opts
        .clone()
        .read_only(true)
        .pragma("mmap_size", READ_MAP_BYTES.to_string());
    let reads = |pool| connect(sized(pool, cfg.max_connections), read_opts);
    if t.read_only {
        let pool = reads(pool).await?;
        return SqliteKeyStore::ready(pool.clone(), pool, WriteGate::default(), cfg).await;
    }
    // A statement that writes many rows inside a transaction (batch
    // import's multi-row INSERT) keeps a statement journal: by default a
    // temporary file, written page by page next to the WAL. In memory it is
    // a few MiB at most (one statement's original pages).
    let write_opts = opts.clone().pragma("temp_store", "memory");
    let writes = connect(sized(pool.clone(), 1), write_opts).await?;
    let writers = WriteGate::default();
    tokio::spawn(checkpoint_in_background(
        opts,
        Arc::downgrade(&writers),
        CHECKPOINT_EVERY,
        WAL_RESTART_FRAMES,
    ));
    let reads = reads(pool).await?;
    SqliteKeyStore::ready(reads, writes, writers, cfg).await
}

impl SqliteKeyStore {
    /// Migrates (or checks the schema) before the store is handed out.
    async fn ready(
        reads: SqlitePool,
        writes: SqlitePool,
        writers: WriteGate,
        cfg: &PoolConfig,
    ) -> Result<SqliteKeyStore, OpenError> {
        let store = SqliteKeyStore {
            reads,
            writes,
            writers,
        };
        if cfg.run_migrations {
            store.migrate_up().await?;
        } else {
            store.check_schema().await?;
        }
        Ok(store)
    }
}

/// A file database's journal settings: WAL, `synchronous=NORMAL`, and
/// SQLite's automatic checkpoint moved far out (see [`WAL_SAFETY_FRAMES`]),
/// since [`checkpoint_in_background`] does that work.
fn wal_mode(opts: SqliteConnectOptions) -> SqliteConnectOptions {
    opts.journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .pragma("wal_autocheckpoint", WAL_SAFETY_FRAMES.to_string())
}

/// How often the background checkpoint runs.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(50);

/// How long the background checkpoint waits after a failed pass.
const CHECKPOINT_BACKOFF: Duration = Duration::from_secs(2);

/// WAL frames (pages) past which the background checkpoint makes the WAL
/// start over: 8 Ki frames, 32 MiB with 4 KiB pages. Each start-over holds
/// writers off for one short pass (about 1–2 ms on the benchmark VM's disk),
/// so this sets how often that happens; the measurements behind the choice
/// are in docs/decisions.md.
const WAL_RESTART_FRAMES: i64 = 8192;

/// SQLite's own automatic checkpoint stays on as a safety net, well past
/// [`WAL_RESTART_FRAMES`]: should the background task fall behind (or
/// readers keep the WAL from starting over), commits checkpoint the way
/// SQLite does by default instead of letting the file grow without end.
const WAL_SAFETY_FRAMES: i64 = 4 * WAL_RESTART_FRAMES;

const CHECKPOINT_PASSIVE: &str = "PRAGMA wal_checkpoint(PASSIVE)";

/// Copies the WAL into the database file every `every` while the store is
/// open, and keeps the WAL from growing past about `restart_frames`.
///
/// SQLite's automatic checkpoint runs inside the commit that takes the WAL
/// past 1000 pages and fsyncs both files there: 7–16 ms in one issue request
/// in a few hundred on a disk (bench/load/issue_disk.sh). A PASSIVE
/// checkpoint on a connection of its own takes no lock that writers or
/// readers wait for, so the bulk of the copying and syncing happens beside
/// them.
///
/// The WAL only starts over from its beginning when a writer finds every
/// frame already copied, and under writes that never pause a PASSIVE pass
/// never gets there (frames are added while it copies), so on its own the
/// WAL grows without end. Hence the second step: once the WAL holds more
/// than `restart_frames`, the task runs up to three more passes beside the
/// writers, until one finds no more than [`CATCH_UP_TAIL_FRAMES`] new frames,
/// then takes `writers` exclusively — waiting only for the writes in flight,
/// never sleeping in SQLite's busy handler — and runs a last pass, which
/// copies the few frames left with nothing racing it. The next writer then
/// starts the WAL over. Writers wait for that short pass once per
/// `restart_frames` written instead of for a full checkpoint once per 1000.
///
/// The task holds the gate weakly and ends when the store is dropped.
async fn checkpoint_in_background(
    opts: SqliteConnectOptions,
    writers: std::sync::Weak<tokio::sync::RwLock<()>>,
    every: Duration,
    restart_frames: i64,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ckpt: Option<Checkpointer> = None;
    loop {
        tick.tick().await;
        let Some(gate) = writers.upgrade() else {
            return;
        };
        let c = match ckpt.as_mut() {
            Some(c) => c,
            None => match Checkpointer::open(&opts).await {
                Ok(c) => ckpt.insert(c),
                Err(e) => {
                    tracing::warn!(error = %e, "background WAL checkpoint: cannot open the database");
                    continue;
                }
            },
        };
        if let Err(e) = c.round(&gate, restart_frames).await {
            tracing::warn!(error = %e, "background WAL checkpoint failed");
            ckpt = None;
            // A failed pass has usually met a full disk. Copying frames
            // into the database file grows it, so retrying at once would
            // take the space an operator just freed before the writers
            // can use it for the WAL (the disk-full test in tests/it).
            drop(gate);
            tokio::time::sleep(CHECKPOINT_BACKOFF).await;
        }
    }
}

/// A catch-up pass is worth holding writers off for once the pass before it
/// copied no more than this many frames (about as many are added meanwhile).
const CATCH_UP_TAIL_FRAMES: i64 = 64;

/// The state of [`checkpoint_in_background`]: its own connection, the
/// database file opened once more for fsync, and how many WAL frames the
/// last pass found copied.
struct Checkpointer {
    conn: SqliteConnection,
    db: Arc<std::fs::File>,
    copied: i64,
}

impl Checkpointer {
    async fn open(opts: &SqliteConnectOptions) -> Result<Self, sqlx::Error> {
        let conn = opts.connect().await?;
        let db = Arc::new(std::fs::File::open(opts.get_filename())?);
        Ok(Checkpointer {
            conn,
            db,
            copied: 0,
        })
    }

    /// One PASSIVE pass; returns the frames in the WAL and how many of them
    /// this pass copied.
    ///
    /// SQLite fsyncs the database file only at the end of a checkpoint that
    /// copied every frame, so a run of partial passes would leave all the
    /// pages they wrote unsynced, and the complete pass at the end — the
    /// catch-up, with writers held off — would pay for all of them (60–140 ms
    /// on a 1M-key file on this VM's disk). So after every pass that copied
    /// something the task syncs the file itself (with `sync`), beside the
    /// writers.
    async fn pass(&mut self, sync: bool) -> Result<(i64, i64), sqlx::Error> {
        let (_busy, frames, copied): (i64, i64, i64) = sqlx::query_as(CHECKPOINT_PASSIVE)
            .fetch_one(&mut self.conn)
            .await?;
        // A smaller count than last time: the WAL started over in between.
        let fresh = if copied >= self.copied {
            copied - self.copied
        } else {
            copied
        };
        self.copied = copied;
        if sync && fresh > 0 {
            let db = self.db.clone();
            tokio::task::spawn_blocking(move || db.sync_data())
                .await
                .map_err(|e| sqlx::Error::Io(std::io::Error::other(e)))??;
        }
        Ok((frames, fresh))
    }

    /// One round: a pass, and once the WAL holds more than `restart_frames`,
    /// up to three more passes to shrink what writers add meanwhile, then the
    /// catch-up pass with `writers` held off.
    async fn round(
        &mut self,
        writers: &tokio::sync::RwLock<()>,
        restart_frames: i64,
    ) -> Result<(), sqlx::Error> {
        let (mut frames, _) = self.pass(true).await?;
        for _ in 0..3 {
            if frames <= restart_frames {
                return Ok(());
            }
            let (f, fresh) = self.pass(true).await?;
            frames = f;
            if fresh <= CATCH_UP_TAIL_FRAMES {
                break;
            }
        }
        if frames <= restart_frames {
            return Ok(());
        }
        // Complete, this pass fsyncs the database itself.
        let started = std::time::Instant::now();
        let _no_writers = writers.write().await;
        let (frames, copied) = self.pass(false).await?;
        tracing::debug!(
            frames,
            copied,
            held_us = started.elapsed().as_micros() as u64,
            "WAL caught up; the next write starts it over"
        );
        Ok(())
    }
}

/// A write connection and the shared hold on the write gate that goes with
/// it (see [`SqliteKeyStore::writer`]).
struct Writer<'a> {
    conn: PoolConnection<Sqlite>,
    _gate: tokio::sync::RwLockReadGuard<'a, ()>,
}

impl Writer<'_> {
    /// Passes a transaction's result through; after a database error the
    /// connection is closed instead of going back to the pool. SQLite rolls
    /// a transaction back by itself on some errors (a full disk at COMMIT),
    /// after which sqlx's own ROLLBACK fails and the connection would refuse
    /// every later transaction ("begin_with at non-zero transaction
    /// depth"): with one write connection, every later write. The pool
    /// opens a fresh one.
    fn settle<T>(&mut self, r: Result<T, TxError>) -> Result<T, TxError> {
        if let Err(TxError::Db(_)) = &r {
            self.conn.close_on_drop();
        }
        r
    }
}

impl SqliteKeyStore {
    /// Fails with `StoreError::Schema` if the database was migrated by a
    /// newer talos than this binary.
    pub async fn check_schema(&self) -> Result<(), StoreError> {
        common::check_known(&self.applied().await?, &MIGRATOR)
    }

    async fn applied(&self) -> Result<Vec<i64>, StoreError> {
        let mut conn = self.writes.acquire().await.map_err(map_db_error)?;
        common::applied_versions(&mut *conn)
            .await
            .map_err(map_db_error)
    }

    /// The write connection, with the write gate held shared. The
    /// connection comes first: writers queue in the pool, so the
    /// checkpoint's catch-up waits for the one write in flight, not for a
    /// queue of them.
    async fn writer(&self) -> Result<Writer<'_>, sqlx::Error> {
        let conn = self.writes.acquire().await?;
        let gate = self.writers.read().await;
        Ok(Writer { conn, _gate: gate })
    }

    async fn insert_in(conn: &mut SqliteConnection, key: &ApiKey) -> Result<(), sqlx::Error> {
        let p = KeyParams::of(key);
        match key.kind {
            KeyKind::Issued => {
                bind_key!(sqlx::query(common::INSERT_ISSUED), key, p)
                    .bind(key.token_prefix.clone())
                    .bind(common::ISSUED_KEY_VERSION)
                    .execute(conn)
                    .await?;
            }
            KeyKind::Imported => {
                bind_key!(sqlx::query(common::INSERT_IMPORTED), key, p)
                    .execute(conn)
                    .await?;
            }
        }
        Ok(())
    }

    async fn write_revocation(
        conn: &mut SqliteConnection,
        key: &ApiKey,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(common::revoke_sql(key.kind))
            .bind(key.status.as_i32())
            .bind(key.revocation_reason.as_i32())
            .bind(key.revocation_description.clone())
            .bind(key.expires_at.map(|t| t.millis()))
            .bind(key.updated_at.millis())
            .bind(nid_str(key.nid))
            .bind(key.key_id.clone())
            .execute(conn)
            .await?;
        Ok(())
    }

    async fn revoke_in(
        conn: &mut SqliteConnection,
        nid: NetworkId,
        kind: KeyKind,
        key_id: &str,
        reason: RevocationReason,
        description: &str,
        now: Timestamp,
    ) -> Result<ApiKey, TxError> {
        let mut tx = conn.begin_with(BEGIN_IMMEDIATE).await?;
        let row: Option<KeyRow> = sqlx::query_as(common::get_sql(kind))
            .bind(nid_str(nid))
            .bind(key_id)
            .fetch_optional(&mut *tx)
            .await?;
        let mut key = row.ok_or(StoreError::NotFound)?.into_domain(kind)?;
        if key.status == KeyStatus::Revoked {
            return Err(StoreError::AlreadyRevoked.into());
        }
        apply_revocation(&mut key, reason, description, now);
        Self::write_revocation(&mut tx, &key).await?;
        tx.commit().await?;
        Ok(key)
    }

    async fn rotate_in(
        conn: &mut SqliteConnection,
        nid: NetworkId,
        old_key_id: &str,
        new_key: &ApiKey,
        now: Timestamp,
    ) -> Result<ApiKey, TxError> {
        let mut tx = conn.begin_with(BEGIN_IMMEDIATE).await?;
        let row: Option<KeyRow> = sqlx::query_as(common::GET_ISSUED)
            .bind(nid_str(nid))
            .bind(old_key_id)
            .fetch_optional(&mut *tx)
            .await?;
        let mut old = row
            .ok_or(StoreError::NotFound)?
            .into_domain(KeyKind::Issued)?;
        if old.effective_status(now) != KeyStatus::Active {
            return Err(StoreError::NotActive.into());
        }
        let mut new_key = new_key.clone();
        new_key.nid = nid;
        new_key.kind = KeyKind::Issued;
        Self::insert_in(&mut tx, &new_key).await?;
        apply_revocation(&mut old, RevocationReason::Superseded, "", now);
        Self::write_revocation(&mut tx, &old).await?;
        tx.commit().await?;
        Ok(old)
    }

    async fn batch_in(
        conn: &mut SqliteConnection,
        keys: &[ApiKey],
    ) -> Result<Vec<BatchInsertOutcome>, TxError> {
        let mut tx = conn.begin_with(BEGIN_IMMEDIATE).await?;
        let mut out = Vec::with_capacity(keys.len());
        // Many rows per statement: each statement is a round trip to the
        // connection's worker thread (two thread wake-ups), which cost
        // about a third of a 1000-key import one row at a time.
        for chunk in keys.chunks(BATCH_ROWS) {
            let mut q = sqlx::QueryBuilder::<Sqlite>::new(common::INSERT_IMPORTED_ROWS_HEAD);
            q.push_values(chunk, |mut row, key| {
                let p = KeyParams::of(key);
                bind_key!(push_bind; row, key, p);
            });
            q.push(common::INSERT_IMPORTED_ROWS_TAIL);
            let mut inserted: std::collections::HashSet<String> = q
                .build_query_scalar::<String>()
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .collect();
            // A key twice in one batch: the first is inserted, the second
            // is a duplicate (rows are inserted in order).
            out.extend(chunk.iter().map(|key| {
                if inserted.remove(&key.key_id) {
                    BatchInsertOutcome::Inserted
                } else {
                    BatchInsertOutcome::Duplicate
                }
            }));
        }
        tx.commit().await?;
        Ok(out)
    }
}

#[async_trait]
impl KeyStore for SqliteKeyStore {
    async fn insert(&self, key: &ApiKey) -> Result<(), StoreError> {
        let mut w = self.writer().await.map_err(map_db_error)?;
        Self::insert_in(&mut w.conn, key)
            .await
            .map_err(map_db_error)
    }

    async fn get(
        &self,
        nid: NetworkId,
        kind: KeyKind,
        key_id: &str,
    ) -> Result<Option<ApiKey>, StoreError> {
        let row: Option<KeyRow> = sqlx::query_as(common::get_sql(kind))
            .bind(nid_str(nid))
            .bind(key_id)
            .fetch_optional(&self.reads)
            .await
            .map_err(map_db_error)?;
        row.map(|r| r.into_domain(kind)).transpose()
    }

    async fn get_many(
        &self,
        nid: NetworkId,
        kind: KeyKind,
        key_ids: &[String],
    ) -> Result<Vec<ApiKey>, StoreError> {
        let mut out = Vec::with_capacity(key_ids.len());
        for chunk in key_ids.chunks(common::IN_CHUNK) {
            let b = common::get_many_query(Placeholders::Numbered, nid, kind, chunk);
            let rows: Vec<KeyRow> = bind_args!(sqlx::query_as(&b.sql), b.args)
                .fetch_all(&self.reads)
                .await
                .map_err(map_db_error)?;
            for r in rows {
                out.push(r.into_domain(kind)?);
            }
        }
        Ok(out)
    }

    async fn get_by_request_id(
        &self,
        nid: NetworkId,
        kind: KeyKind,
        request_id: &str,
    ) -> Result<Option<ApiKey>, StoreError> {
        let row: Option<KeyRow> = sqlx::query_as(common::get_by_request_id_sql(kind))
            .bind(nid_str(nid))
            .bind(request_id)
            .fetch_optional(&self.reads)
            .await
            .map_err(map_db_error)?;
        row.map(|r| r.into_domain(kind)).transpose()
    }

    async fn list(
        &self,
        nid: NetworkId,
        kind: KeyKind,
        filter: &ListFilter,
        after: Option<&str>,
        limit: u32,
        now: Timestamp,
    ) -> Result<Vec<ApiKey>, StoreError> {
        let b = common::list_query(Placeholders::Numbered, nid, kind, filter, after, limit, now);
        let rows: Vec<KeyRow> = bind_args!(sqlx::query_as(&b.sql), b.args)
            .fetch_all(&self.reads)
            .await
            .map_err(map_db_error)?;
        rows.into_iter().map(|r| r.into_domain(kind)).collect()
    }

    async fn update(&self, key: &ApiKey) -> Result<(), StoreError> {
        let p = KeyParams::of(key);
        let mut w = self.writer().await.map_err(map_db_error)?;
        let r = sqlx::query(common::update_sql(key.kind))
            .bind(key.name.clone())
            .bind(p.scopes)
            .bind(p.metadata)
            .bind(p.rate_limit_quota)
            .bind(p.rate_limit_window)
            .bind(p.allowed_cidrs)
            .bind(key.updated_at.millis())
            .bind(p.nid)
            .bind(key.key_id.clone())
            .execute(&mut *w.conn)
            .await
            .map_err(map_db_error)?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn revoke(
        &self,
        nid: NetworkId,
        kind: KeyKind,
        key_id: &str,
        reason: RevocationReason,
        description: &str,
        now: Timestamp,
    ) -> Result<ApiKey, StoreError> {
        let mut w = self.writer().await.map_err(map_db_error)?;
        let r = Self::revoke_in(&mut w.conn, nid, kind, key_id, reason, description, now).await;
        Ok(w.settle(r)?)
    }

    async fn rotate(
        &self,
        nid: NetworkId,
        old_key_id: &str,
        new_key: &ApiKey,
        now: Timestamp,
    ) -> Result<ApiKey, StoreError> {
        let mut w = self.writer().await.map_err(map_db_error)?;
        let r = Self::rotate_in(&mut w.conn, nid, old_key_id, new_key, now).await;
        Ok(w.settle(r)?)
    }

    async fn delete(&self, nid: NetworkId, kind: KeyKind, key_id: &str) -> Result<(), StoreError> {
        let mut w = self.writer().await.map_err(map_db_error)?;
        let r = sqlx::query(common::delete_sql(kind))
            .bind(nid_str(nid))
            .bind(key_id)
            .execute(&mut *w.conn)
            .await
            .map_err(map_db_error)?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn batch_insert_imported(
        &self,
        keys: &[ApiKey],
    ) -> Result<Vec<BatchInsertOutcome>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut w = self.writer().await.map_err(map_db_error)?;
        let r = Self::batch_in(&mut w.conn, keys).await;
        Ok(w.settle(r)?)
    }

    async fn count_active(&self, nid: NetworkId, cap: u64) -> Result<u64, StoreError> {
        let cap_i = i64::try_from(cap).unwrap_or(i64::MAX);
        let mut total: u64 = 0;
        for sql in [common::COUNT_ACTIVE_ISSUED, common::COUNT_ACTIVE_IMPORTED] {
            let n: i64 = sqlx::query_scalar(sql)
                .bind(nid_str(nid))
                .bind(cap_i)
                .fetch_one(&self.reads)
                .await
                .map_err(map_db_error)?;
            total = total.saturating_add(n.max(0) as u64);
            if total >= cap {
                return Ok(cap);
            }
        }
        Ok(total)
    }

    async fn touch_last_used(
        &self,
        nid: NetworkId,
        kind: KeyKind,
        key_ids: &[String],
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let mut w = self.writer().await.map_err(map_db_error)?;
        for chunk in key_ids.chunks(common::IN_CHUNK) {
            let b = common::touch_query(Placeholders::Numbered, nid, kind, chunk, at);
            bind_args!(sqlx::query(&b.sql), b.args)
                .execute(&mut *w.conn)
                .await
                .map_err(map_db_error)?;
        }
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query(common::PING)
            .execute(&self.reads)
            .await
            .map_err(map_db_error)?;
        Ok(())
    }

    async fn ensure_network(&self, nid: NetworkId, now: Timestamp) -> Result<(), StoreError> {
        let mut w = self.writer().await.map_err(map_db_error)?;
        sqlx::query(common::ENSURE_NETWORK)
            .bind(nid_str(nid))
            .bind(now.millis())
            .bind(now.millis())
            .execute(&mut *w.conn)
            .await
            .map_err(map_db_error)?;
        Ok(())
    }

    async fn migrate_up(&self) -> Result<Vec<i64>, StoreError> {
        let before = self.applied().await?;
        common::check_known(&before, &MIGRATOR)?;
        MIGRATOR
            .run(&self.writes)
            .await
            .map_err(common::map_migrate_error)?;
        let after = self.applied().await?;
        Ok(after.into_iter().filter(|v| !before.contains(v)).collect())
    }

    async fn migration_status(&self) -> Result<MigrationStatus, StoreError> {
        Ok(common::migration_status(self.applied().await?, &MIGRATOR))
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// Writes that never pause keep a PASSIVE checkpoint from ever copying
    /// the whole WAL, so on its own it never lets the WAL start over; the
    /// catch-up pass behind the write gate must keep the file bounded anyway,
    /// with SQLite's own checkpoint (the safety net) out of reach, and lose
    /// no write.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_stays_bounded_under_writes_that_never_pause() {
        const RESTART: i64 = 256; // frames: 1 MiB with 4 KiB pages
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal.db");
        let opts = wal_mode(
            SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true),
        )
        .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts.clone())
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (x BLOB NOT NULL)")
            .execute(&pool)
            .await
            .unwrap();
        let writers = WriteGate::default();
        let task = tokio::spawn(checkpoint_in_background(
            opts,
            Arc::downgrade(&writers),
            Duration::from_millis(20),
            RESTART,
        ));
        let wal = dir.path().join("wal.db-wal");
        let blob = vec![7u8; 8192];
        let (mut written, mut largest) = (0u64, 0u64);
        // Enough writes to tell, however slow the machine (a busy CI
        // runner wrote 30 MB in the 2 s this loop used to run for): 48 MiB,
        // three times what the WAL may reach, with a generous time cap.
        let started = Instant::now();
        while written < 48 << 20 && started.elapsed() < Duration::from_secs(60) {
            let _writing = writers.read().await;
            sqlx::query("INSERT INTO t (x) VALUES (?)")
                .bind(&blob)
                .execute(&pool)
                .await
                .unwrap();
            written += blob.len() as u64;
            largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
        }
        assert!(
            written >= 48 << 20,
            "too few writes to tell ({written} bytes in {:?})",
            started.elapsed()
        );
        // 16 MiB: sixteen times the restart point, and an eighth of the
        // safety net's 32 Ki frames (128 MiB), so SQLite's own checkpoint
        // cannot be what kept it there.
        assert!(
            largest < 16 << 20,
            "the WAL reached {largest} bytes while {written} were written"
        );
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM t")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(rows as u64, written / 8192, "no write lost");
        drop(writers);
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .expect("the checkpoint task ends with the store")
            .unwrap();
    }
}
