//! One way to run SQL on both backends, with the statement run where it costs least.
//!
//! PostgreSQL goes through sqlx's `Any` driver. SQLite is different: sqlx runs every SQLite
//! statement on a worker thread of its own, a round trip between threads for each statement,
//! and a write transaction of the engine is a dozen statements or more. So SQLite's one writer
//! and its readers are plain [`rusqlite::Connection`]s whose statements run on the caller's
//! thread, prepared once and cached; the only waits left in a write transaction are the lock
//! taken at `BEGIN` and the fsync at `COMMIT`.
//!
//! The queries themselves do not know the difference: they build a [`Query`], bind
//! [`Value`]s and run it on a [`Conn`], and read columns by name or position from a [`Row`].

use crate::turns::{Turn, Turns};
use crate::{Result, StoreError};
use rusqlite::types::Value as SqliteValue;
use sqlx::any::AnyRow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tenure_core::run::Priority;

/// SQL text: a literal, or text built at run time from trusted pieces (see [`AssertSqlSafe`]).
#[derive(Debug, Clone)]
pub enum Sql {
    /// A literal in the source.
    Static(&'static str),
    /// Built at run time; the builder vouches that no input was pasted into it.
    Owned(String),
}

impl Sql {
    fn as_str(&self) -> &str {
        match self {
            Sql::Static(s) => s,
            Sql::Owned(s) => s,
        }
    }
}

/// Marks SQL built at run time as free of pasted input: values go in as bound parameters.
#[derive(Debug, Clone)]
pub struct AssertSqlSafe<T>(pub T);

impl From<&'static str> for Sql {
    fn from(s: &'static str) -> Self {
        Sql::Static(s)
    }
}

impl From<AssertSqlSafe<String>> for Sql {
    fn from(s: AssertSqlSafe<String>) -> Self {
        Sql::Owned(s.0)
    }
}

impl From<AssertSqlSafe<&str>> for Sql {
    fn from(s: AssertSqlSafe<&str>) -> Self {
        Sql::Owned(s.0.to_string())
    }
}

/// A bound parameter. A null keeps its type: PostgreSQL wants to know it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// BIGINT.
    Int(Option<i64>),
    /// TEXT.
    Text(Option<String>),
    /// DOUBLE PRECISION / REAL.
    Real(Option<f64>),
    /// BOOLEAN (an integer 0 or 1 on SQLite).
    Bool(Option<bool>),
}

macro_rules! value_from {
    ($variant:ident: $($t:ty => $conv:expr),* $(,)?) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                #[allow(clippy::redundant_closure_call)]
                Value::$variant(Some(($conv)(v)))
            }
        }
        impl From<Option<$t>> for Value {
            fn from(v: Option<$t>) -> Self {
                #[allow(clippy::redundant_closure_call)]
                Value::$variant(v.map($conv))
            }
        }
    )*};
}

value_from!(Int: i64 => |v| v, i32 => i64::from, u32 => i64::from, &i64 => |v: &i64| *v);
value_from!(Text: String => |v| v, &str => str::to_string, &String => String::clone);
value_from!(Real: f64 => |v| v);
value_from!(Bool: bool => |v| v);

impl From<&Option<String>> for Value {
    fn from(v: &Option<String>) -> Self {
        Value::Text(v.clone())
    }
}

/// What a statement changed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Done {
    rows: u64,
}

impl Done {
    /// Rows inserted, updated or deleted.
    pub fn rows_affected(&self) -> u64 {
        self.rows
    }
}

/// A statement with its parameters, ready to run on a [`Conn`].
#[derive(Debug, Clone)]
#[must_use = "a query does nothing until it is run on a connection"]
pub struct Query {
    sql: Sql,
    args: Vec<Value>,
}

/// A statement to bind parameters to (`$1`, `$2`, ... or anonymous `?` on SQLite).
pub fn query(sql: impl Into<Sql>) -> Query {
    Query {
        sql: sql.into(),
        args: Vec::new(),
    }
}

impl Query {
    /// Binds the next parameter.
    pub fn bind(mut self, v: impl Into<Value>) -> Query {
        self.args.push(v.into());
        self
    }

    /// Runs the statement; rows it returns are read and dropped.
    pub async fn execute(self, c: &mut Conn) -> Result<Done> {
        if let Some(ran) = c.run_sqlite(&self, Rows::None) {
            return ran.map(|r| r.0);
        }
        let r = self.into_sqlx().execute(c.any()).await?;
        Ok(Done {
            rows: r.rows_affected(),
        })
    }

    /// Every row the statement returns.
    pub async fn fetch_all(self, c: &mut Conn) -> Result<Vec<Row>> {
        if let Some(ran) = c.run_sqlite(&self, Rows::All) {
            return ran.map(|r| r.1);
        }
        let rows = self.into_sqlx().fetch_all(c.any()).await?;
        Ok(rows.into_iter().map(|r| Row(RowKind::Any(r))).collect())
    }

    /// The first row the statement returns, or [`sqlx::Error::RowNotFound`].
    pub async fn fetch_one(self, c: &mut Conn) -> Result<Row> {
        self.fetch_optional(c)
            .await?
            .ok_or(StoreError::Db(sqlx::Error::RowNotFound))
    }

    /// The first row the statement returns, if any.
    pub async fn fetch_optional(self, c: &mut Conn) -> Result<Option<Row>> {
        if let Some(ran) = c.run_sqlite(&self, Rows::First) {
            return ran.map(|r| r.1.into_iter().next());
        }
        let row = self.into_sqlx().fetch_optional(c.any()).await?;
        Ok(row.map(|r| Row(RowKind::Any(r))))
    }

    fn into_sqlx(self) -> sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments> {
        let mut q = match self.sql {
            Sql::Static(s) => sqlx::query(s),
            Sql::Owned(s) => sqlx::query(sqlx::AssertSqlSafe(s)),
        };
        for v in self.args {
            q = match v {
                Value::Int(v) => q.bind(v),
                Value::Text(v) => q.bind(v),
                Value::Real(v) => q.bind(v),
                Value::Bool(v) => q.bind(v),
            };
        }
        q
    }
}

/// A connection to run queries on: a write transaction's, or a reader's.
pub struct Conn {
    kind: Kind,
    /// How personal data is sealed and opened on this connection.
    vault: crate::vault::Vault,
}

enum Kind {
    /// A write transaction through sqlx (PostgreSQL).
    Tx(sqlx::Transaction<'static, sqlx::Any>),
    /// A pooled connection for reads (either backend).
    Pooled(sqlx::pool::PoolConnection<sqlx::Any>),
    /// The SQLite writer, inside a transaction.
    Sqlite(SqliteTx),
    /// A SQLite reader.
    SqliteRead(SqliteRead),
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.kind {
            Kind::Tx(_) => "Conn::Tx",
            Kind::Pooled(_) => "Conn::Pooled",
            Kind::Sqlite(_) => "Conn::Sqlite",
            Kind::SqliteRead(_) => "Conn::SqliteRead",
        })
    }
}

impl Conn {
    pub(crate) fn pooled(
        c: sqlx::pool::PoolConnection<sqlx::Any>,
        vault: crate::vault::Vault,
    ) -> Conn {
        Conn {
            kind: Kind::Pooled(c),
            vault,
        }
    }

    pub(crate) fn sqlx_tx(
        t: sqlx::Transaction<'static, sqlx::Any>,
        vault: crate::vault::Vault,
    ) -> Conn {
        Conn {
            kind: Kind::Tx(t),
            vault,
        }
    }

    pub(crate) fn sqlite_tx(t: SqliteTx, vault: crate::vault::Vault) -> Conn {
        Conn {
            kind: Kind::Sqlite(t),
            vault,
        }
    }

    pub(crate) fn sqlite_read(r: SqliteRead, vault: crate::vault::Vault) -> Conn {
        Conn {
            kind: Kind::SqliteRead(r),
            vault,
        }
    }

    /// How personal data is sealed and opened here.
    pub fn vault(&self) -> &crate::vault::Vault {
        &self.vault
    }

    /// Whether this is a SQLite connection (placeholders and some SQL differ). sqlx's
    /// connections are PostgreSQL's: SQLite's are all rusqlite ones.
    pub fn is_sqlite(&self) -> bool {
        matches!(self.kind, Kind::Sqlite(_) | Kind::SqliteRead(_))
    }

    /// Runs SQL text without parameters; it may hold several statements.
    pub async fn execute(&mut self, sql: impl Into<Sql>) -> Result<Done> {
        let sql = sql.into();
        if let Some(c) = self.sqlite() {
            let before = c.total_changes();
            c.execute_batch(sql.as_str())?;
            return Ok(Done {
                rows: changed(c, before),
            });
        }
        let c = self.any();
        let r = match sql {
            Sql::Static(s) => sqlx::Executor::execute(c, s).await?,
            Sql::Owned(s) => sqlx::Executor::execute(c, sqlx::AssertSqlSafe(s)).await?,
        };
        Ok(Done {
            rows: r.rows_affected(),
        })
    }

    /// The SQLite connection underneath, if this is one.
    fn sqlite(&mut self) -> Option<&rusqlite::Connection> {
        match &mut self.kind {
            Kind::Sqlite(w) => Some(w.conn()),
            Kind::SqliteRead(r) => Some(r.conn()),
            Kind::Tx(_) | Kind::Pooled(_) => None,
        }
    }

    /// Runs `q` if this is a SQLite connection (in this thread); `None` for sqlx's.
    fn run_sqlite(&mut self, q: &Query, rows: Rows) -> Option<Result<(Done, Vec<Row>)>> {
        let (sql, args) = (q.sql.as_str(), q.args.as_slice());
        match &mut self.kind {
            Kind::Sqlite(w) => Some(w.run(sql, args, rows)),
            Kind::SqliteRead(r) => Some(statement(r.conn(), sql, args, rows)),
            Kind::Tx(_) | Kind::Pooled(_) => None,
        }
    }

    fn any(&mut self) -> &mut sqlx::AnyConnection {
        match &mut self.kind {
            Kind::Tx(t) => t,
            Kind::Pooled(p) => p,
            Kind::Sqlite(_) | Kind::SqliteRead(_) => {
                unreachable!("SQLite connections run their statements themselves")
            }
        }
    }

    /// Commits the transaction this connection holds.
    pub(crate) async fn commit(self) -> Result<()> {
        match self.kind {
            Kind::Tx(t) => Ok(t.commit().await?),
            Kind::Sqlite(w) => w.commit(),
            Kind::Pooled(_) | Kind::SqliteRead(_) => Ok(()),
        }
    }

    /// Rolls back the transaction this connection holds.
    pub(crate) async fn rollback(self) -> Result<()> {
        match self.kind {
            Kind::Tx(t) => Ok(t.rollback().await?),
            Kind::Sqlite(w) => w.rollback(),
            Kind::Pooled(_) | Kind::SqliteRead(_) => Ok(()),
        }
    }
}

/// The SQLite writer: one connection, taken in turn by write transactions.
#[derive(Clone)]
pub(crate) struct SqliteWriter {
    conn: Arc<tokio::sync::Mutex<Option<rusqlite::Connection>>>,
    turns: Arc<Turns>,
    times: Arc<Times>,
    checkpoints: Arc<Checkpoints>,
}

/// How many commits the log may take before the checkpointer is asked to copy it back.
const CHECKPOINT_EVERY_COMMITS: u64 = 16;

/// How long the log may grow (in pages, 4 KiB each) before a checkpoint takes the writer's turn
/// to copy the rest of it, so that the next transaction writes it again from its beginning.
const RESTART_FRAMES: i64 = 4_096;

/// How long a checkpoint in the writer's turn waits for readers still reading the log to
/// finish before it gives up; it tries again once the log has doubled, so that a long read
/// does not cost the writer this wait at every checkpoint.
const RESTART_WAIT: Duration = Duration::from_millis(25);

/// Copies the log (WAL) back into the database file on a thread of its own, so that no commit
/// waits for it: SQLite would otherwise do it inside the commit that crossed 1,000 pages, and
/// that leave or hire would wait for a copy of everything since the last one and its fsync.
///
/// A checkpoint beside a busy writer never reaches the log's end, since the writer appends while
/// it copies, and SQLite writes the log again from its beginning only once all of it is copied.
/// Without a pause the log would grow for as long as writes keep coming (1.3 GB in a 20-second
/// `tenure bench`), every page appended to fresh file space, which the file system allocates
/// and zeroes first. So once the log holds [`RESTART_FRAMES`] pages, the checkpointer takes the
/// writer's turn, like a transaction, and copies what is left (what came since its last copy)
/// with `RESTART`, which also waits for readers still reading the log; the next transaction
/// then starts the log over.
struct Checkpoints {
    commits: AtomicU64,
    wake: std::sync::Mutex<Option<std::sync::mpsc::SyncSender<()>>>,
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Checkpoints {
    fn start(path: &str, turns: Arc<Turns>, restart_frames: i64) -> Result<Checkpoints> {
        use rusqlite::OpenFlags;
        let c = rusqlite::Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        c.busy_timeout(BUSY_TIMEOUT)?;
        c.pragma_update(None, "synchronous", "FULL")?;
        let (wake, woken) = std::sync::mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("tenure-checkpoint".into())
            .spawn(move || {
                // Each wake-up copies beside the writer (`PASSIVE`, waiting for no one); once
                // the log is long, it finishes in the writer's turn (see `copy_back`).
                let mut restart_at = restart_frames;
                while woken.recv().is_ok() {
                    if let Err(e) = copy_back(&c, &turns, restart_frames, &mut restart_at) {
                        tracing::warn!(error = %e, "copying the SQLite log into the database failed; will try again");
                    }
                }
            })
            .map_err(|e| StoreError::Corrupt(format!("starting the checkpoint thread: {e}")))?;
        Ok(Checkpoints {
            commits: AtomicU64::new(0),
            wake: std::sync::Mutex::new(Some(wake)),
            thread: std::sync::Mutex::new(Some(thread)),
        })
    }

    /// Counts a commit; every so many, wakes the checkpointer (unless it is busy already).
    fn committed(&self) {
        if self.commits.fetch_add(1, Ordering::Relaxed) % CHECKPOINT_EVERY_COMMITS
            == CHECKPOINT_EVERY_COMMITS - 1
            && let Some(wake) = self.wake.lock().expect("checkpoint lock").as_ref()
        {
            let _ = wake.try_send(());
        }
    }

    /// Stops the thread once its checkpoint in progress is done, closing its connection.
    fn stop(&self) {
        self.wake.lock().expect("checkpoint lock").take();
        if let Some(t) = self.thread.lock().expect("checkpoint lock").take()
            && t.join().is_err()
        {
            tracing::error!("the checkpoint thread panicked");
        }
    }
}

/// One checkpoint: beside the writer, then, when the log has grown to `restart_at` pages,
/// once more in the writer's turn (see [`Checkpoints`]). Readers that kept the log from being
/// started over put `restart_at` off to twice the log's length; a restart sets it back to
/// `restart_frames`.
fn copy_back(
    c: &rusqlite::Connection,
    turns: &Arc<Turns>,
    restart_frames: i64,
    restart_at: &mut i64,
) -> Result<()> {
    let (log, _) = wal_checkpoint(c, "PASSIVE")?;
    if log < *restart_at {
        return Ok(());
    }
    let _turn = turns.take_blocking(Priority::Normal);
    c.busy_timeout(RESTART_WAIT)?;
    let done = wal_checkpoint(c, "RESTART");
    c.busy_timeout(BUSY_TIMEOUT)?;
    let (log, stopped) = done?;
    *restart_at = if stopped {
        tracing::debug!(
            log,
            "readers kept the SQLite log from starting over; trying again when it is twice as long"
        );
        log.max(restart_frames) * 2
    } else {
        restart_frames
    };
    Ok(())
}

/// Runs `PRAGMA wal_checkpoint(mode)`: the pages in the log, and whether it stopped short of
/// its end (for a reader, or another process holding a lock).
fn wal_checkpoint(c: &rusqlite::Connection, mode: &str) -> Result<(i64, bool)> {
    let (stopped, log): (i64, i64) =
        c.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    Ok((log, stopped != 0))
}

/// Where the writer's time went, in nanoseconds: held by transactions (from `BEGIN` to their
/// end), and of that, running statements and committing (writing the log and its fsync).
#[derive(Default)]
struct Times {
    held: AtomicU64,
    statements: AtomicU64,
    commits: AtomicU64,
}

impl Times {
    fn add(counter: &AtomicU64, since: Instant) {
        counter.fetch_add(since.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }
}

/// How long the SQLite writer has been busy, in all, since the store was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WriterTimes {
    /// Held by a transaction, from `BEGIN` to its commit or rollback.
    pub held: Duration,
    /// Of that, running statements.
    pub statements: Duration,
    /// Of that, committing: writing the transaction's pages to the log, and the fsync.
    pub commits: Duration,
}

impl std::ops::Sub for WriterTimes {
    type Output = WriterTimes;
    fn sub(self, before: WriterTimes) -> WriterTimes {
        WriterTimes {
            held: self.held.saturating_sub(before.held),
            statements: self.statements.saturating_sub(before.statements),
            commits: self.commits.saturating_sub(before.commits),
        }
    }
}

/// How long a write transaction waits for another process (the CLI, a backup) to let go of
/// the database before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

impl SqliteWriter {
    /// Opens the writer on `path`, creating the file when `create` says so.
    pub(crate) fn open(path: &str, create: bool) -> Result<SqliteWriter> {
        Self::open_restarting_at(path, create, RESTART_FRAMES)
    }

    /// [`SqliteWriter::open`], the log started over at `restart_frames` pages (see
    /// [`Checkpoints`]).
    fn open_restarting_at(path: &str, create: bool, restart_frames: i64) -> Result<SqliteWriter> {
        crate::sqlite_setup::install();
        use rusqlite::OpenFlags;
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let c = rusqlite::Connection::open_with_flags(path, flags)?;
        // WAL lets readers run beside the writer; `synchronous = FULL` makes every commit
        // durable (an fsync of the log at each commit), as on the readers.
        let mode: String = c.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Corrupt(format!(
                "the database stays in journal mode `{mode}`, not WAL"
            )));
        }
        c.pragma_update(None, "synchronous", "FULL")?;
        c.pragma_update(None, "foreign_keys", "ON")?;
        // What is deleted is overwritten with zeros, not left in free space: a forgotten
        // person's key (see `vault`) must not be recoverable from the file.
        c.pragma_update(None, "secure_delete", "ON")?;
        // The writer touches the hot end of every table and index in each transaction: a page
        // cache that holds them (64 MiB, against SQLite's default 2 MiB) saves re-reading
        // pages from the file.
        c.pragma_update(None, "cache_size", -65_536)?;
        // Checkpoints run beside the writer (see `Checkpoints`), not inside its commits.
        c.pragma_update(None, "wal_autocheckpoint", 0)?;
        // A statement that changes many rows keeps what it overwrote until it ends (the
        // statement journal), so that it can be undone alone; past 64 KiB SQLite spills it to
        // a temporary file, which batched writes crossed hundreds of times a second. It is
        // never part of what a commit makes durable (the log is), so it stays in memory.
        c.pragma_update(None, "temp_store", "MEMORY")?;
        let turns = Arc::new(Turns::new(1));
        let checkpoints = Checkpoints::start(path, turns.clone(), restart_frames)?;
        c.busy_timeout(BUSY_TIMEOUT)?;
        c.set_prepared_statement_cache_capacity(512);
        Ok(SqliteWriter {
            conn: Arc::new(tokio::sync::Mutex::new(Some(c))),
            turns,
            times: Arc::default(),
            checkpoints: Arc::new(checkpoints),
        })
    }

    /// Waits for the writer's turn (see [`Turns`]: urgent transactions first), then begins a
    /// transaction that holds the write lock from the start (`BEGIN IMMEDIATE`), so it never
    /// fails half-way for want of it.
    pub(crate) async fn begin(&self, priority: Priority) -> Result<SqliteTx> {
        let turn = self.turns.take(priority).await;
        let guard = self.conn.clone().lock_owned().await;
        let Some(c) = guard.as_ref() else {
            return Err(StoreError::Closed);
        };
        // Nobody else holds the lock in the usual case: take it here. When another process
        // does, wait for it on a blocking thread, not on one of the runtime's.
        c.busy_timeout(Duration::ZERO)?;
        let first = c.execute_batch("BEGIN IMMEDIATE");
        c.busy_timeout(BUSY_TIMEOUT)?;
        match first {
            Ok(()) => Ok(SqliteTx {
                guard,
                _turn: turn,
                since: Instant::now(),
                times: self.times.clone(),
                checkpoints: self.checkpoints.clone(),
            }),
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => {
                let (times, checkpoints) = (self.times.clone(), self.checkpoints.clone());
                tokio::task::spawn_blocking(move || {
                    let c = guard.as_ref().ok_or(StoreError::Closed)?;
                    c.execute_batch("BEGIN IMMEDIATE")?;
                    Ok(SqliteTx {
                        guard,
                        _turn: turn,
                        since: Instant::now(),
                        times,
                        checkpoints,
                    })
                })
                .await
                .map_err(|e| StoreError::Corrupt(format!("the writer thread failed: {e}")))?
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Whether an urgent transaction waits for the writer now.
    pub(crate) fn urgent_waiting(&self) -> bool {
        self.turns.urgent_waiting()
    }

    /// Where the writer's time has gone since it was opened.
    pub(crate) fn times(&self) -> WriterTimes {
        let get = |c: &AtomicU64| Duration::from_nanos(c.load(Ordering::Relaxed));
        WriterTimes {
            held: get(&self.times.held),
            statements: get(&self.times.statements),
            commits: get(&self.times.commits),
        }
    }

    /// Closes the connection; later transactions fail with [`StoreError::Closed`].
    pub(crate) async fn close(&self) {
        let checkpoints = self.checkpoints.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || checkpoints.stop()).await {
            tracing::error!(error = %e, "stopping the checkpoint thread failed");
        }
        if let Some(c) = self.conn.lock().await.take()
            && let Err((_, e)) = c.close()
        {
            tracing::warn!(error = %e, "closing the SQLite writer failed");
        }
    }
}

/// SQLite's readers: connections of their own beside the writer (WAL lets them read while it
/// writes), their statements run in the calling thread like the writer's.
#[derive(Clone)]
pub(crate) struct SqliteReaders {
    pool: Arc<ReaderPool>,
}

impl std::fmt::Debug for SqliteReaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteReaders")
            .field("path", &self.pool.path)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for SqliteWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteWriter").finish_non_exhaustive()
    }
}

struct ReaderPool {
    path: String,
    idle: std::sync::Mutex<Vec<rusqlite::Connection>>,
    permits: Arc<tokio::sync::Semaphore>,
}

impl SqliteReaders {
    /// Readers of the database at `path`, at most `max` at a time, opened as they are needed.
    pub(crate) fn new(path: &str, max: usize) -> SqliteReaders {
        SqliteReaders {
            pool: Arc::new(ReaderPool {
                path: path.to_string(),
                idle: std::sync::Mutex::new(Vec::new()),
                permits: Arc::new(tokio::sync::Semaphore::new(max)),
            }),
        }
    }

    /// A reader, once one is free; it goes back to the pool when dropped.
    pub(crate) async fn get(&self) -> Result<SqliteRead> {
        let permit = self
            .pool
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        let idle = self.pool.idle.lock().expect("reader pool lock").pop();
        let conn = match idle {
            Some(c) => c,
            None => {
                use rusqlite::OpenFlags;
                let c = rusqlite::Connection::open_with_flags(
                    &self.pool.path,
                    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                c.busy_timeout(BUSY_TIMEOUT)?;
                c.pragma_update(None, "foreign_keys", "ON")?;
                c.set_prepared_statement_cache_capacity(256);
                c
            }
        };
        Ok(SqliteRead {
            conn: Some(conn),
            pool: self.pool.clone(),
            _permit: permit,
        })
    }

    /// Closes the idle readers and refuses new ones; readers in use close when dropped.
    pub(crate) fn close(&self) {
        self.pool.permits.close();
        self.pool.idle.lock().expect("reader pool lock").clear();
    }
}

/// A SQLite reader taken from the pool.
pub(crate) struct SqliteRead {
    conn: Option<rusqlite::Connection>,
    pool: Arc<ReaderPool>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl SqliteRead {
    fn conn(&self) -> &rusqlite::Connection {
        self.conn
            .as_ref()
            .expect("a reader holds its connection until dropped")
    }
}

impl Drop for SqliteRead {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            // A reader left inside a transaction (`BEGIN` by hand) is not handed on.
            if c.is_autocommit() && !self.pool.permits.is_closed() {
                self.pool.idle.lock().expect("reader pool lock").push(c);
            }
        }
    }
}

/// The SQLite writer, held for one transaction. Dropped without a commit, it rolls back.
pub(crate) struct SqliteTx {
    guard: tokio::sync::OwnedMutexGuard<Option<rusqlite::Connection>>,
    /// Given back after the connection (fields drop in order), once the transaction is over.
    _turn: Turn,
    since: Instant,
    times: Arc<Times>,
    checkpoints: Arc<Checkpoints>,
}

impl SqliteTx {
    fn conn(&mut self) -> &rusqlite::Connection {
        self.guard
            .as_ref()
            .expect("a transaction is only begun on an open writer")
    }

    fn commit(mut self) -> Result<()> {
        let started = Instant::now();
        let done = self.conn().execute_batch("COMMIT");
        Times::add(&self.times.commits, started);
        done?;
        self.checkpoints.committed();
        Ok(())
    }

    fn rollback(mut self) -> Result<()> {
        self.conn().execute_batch("ROLLBACK")?;
        Ok(())
    }

    /// Runs one statement; returns what it changed and, when asked, the rows it returned.
    fn run(&mut self, sql: &str, args: &[Value], rows: Rows) -> Result<(Done, Vec<Row>)> {
        let started = Instant::now();
        let ran = statement(self.conn(), sql, args, rows);
        Times::add(&self.times.statements, started);
        ran
    }
}

/// Which of the rows a statement returns are wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rows {
    /// None: the statement runs to its end.
    None,
    /// The first: stepping stops there (a change with `RETURNING` is made whole at the first
    /// step, so nothing is left undone).
    First,
    /// Every one.
    All,
}

/// Runs one statement on `c`; returns what it changed and the rows asked for.
fn statement(
    c: &rusqlite::Connection,
    sql: &str,
    args: &[Value],
    wanted: Rows,
) -> Result<(Done, Vec<Row>)> {
    let before = c.total_changes();
    let mut stmt = c.prepare_cached(sql)?;
    bind(&mut stmt, args)?;
    let width = stmt.column_count();
    let want_rows = wanted != Rows::None;
    let columns: Arc<[String]> = if want_rows {
        stmt.column_names().into_iter().map(String::from).collect()
    } else {
        Arc::from(Vec::new())
    };
    let mut out = Vec::new();
    let mut rows = stmt.raw_query();
    while let Some(r) = rows.next()? {
        if want_rows {
            let mut values = Vec::with_capacity(width);
            for i in 0..width {
                values.push(r.get::<_, SqliteValue>(i)?);
            }
            out.push(Row(RowKind::Sqlite {
                columns: columns.clone(),
                values,
            }));
            if wanted == Rows::First {
                break;
            }
        }
    }
    drop(rows);
    drop(stmt);
    Ok((
        Done {
            rows: changed(c, before),
        },
        out,
    ))
}

/// Rows the last statement changed, given the connection's total before it: `changes()` keeps
/// the count of the last statement that changed rows, so it counts only if this one did (a
/// read leaves the total as it was).
fn changed(c: &rusqlite::Connection, total_before: u64) -> u64 {
    if c.total_changes() != total_before {
        c.changes()
    } else {
        0
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        Times::add(&self.times.held, self.since);
        if let Some(c) = self.guard.as_ref()
            && !c.is_autocommit()
            && let Err(e) = c.execute_batch("ROLLBACK")
        {
            tracing::error!(error = %e, "rolling back an abandoned SQLite transaction failed");
        }
    }
}

/// Binds `args` as sqlx does on SQLite: a parameter named `$N` or `?N` takes argument N, an
/// anonymous `?` the next one in order.
fn bind(stmt: &mut rusqlite::Statement<'_>, args: &[Value]) -> Result<()> {
    let count = stmt.parameter_count();
    for i in 1..=count {
        let n = match stmt.parameter_name(i) {
            Some(name) => name
                .strip_prefix('$')
                .or_else(|| name.strip_prefix('?'))
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| StoreError::Corrupt(format!("unsupported parameter `{name}`")))?,
            None => i,
        };
        let Some(v) = args.get(n - 1) else {
            return Err(StoreError::Corrupt(format!(
                "parameter {n} has no value ({} bound)",
                args.len()
            )));
        };
        match v {
            Value::Int(v) => stmt.raw_bind_parameter(i, v)?,
            Value::Text(v) => stmt.raw_bind_parameter(i, v)?,
            Value::Real(v) => stmt.raw_bind_parameter(i, v)?,
            Value::Bool(v) => stmt.raw_bind_parameter(i, v)?,
        }
    }
    Ok(())
}

/// A row a query returned.
pub struct Row(RowKind);

enum RowKind {
    Any(AnyRow),
    Sqlite {
        columns: Arc<[String]>,
        values: Vec<SqliteValue>,
    },
}

impl std::fmt::Debug for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Row")
    }
}

impl Row {
    /// The value of a column, by name or position.
    pub fn try_get<T: Decode, I: ColumnIndex>(&self, index: I) -> Result<T> {
        let i = index.position(self)?;
        match &self.0 {
            RowKind::Any(r) => T::from_any(r, i),
            RowKind::Sqlite { columns, values } => T::from_sqlite(&values[i])
                .map_err(|e| StoreError::Corrupt(format!("column `{}`: {e}", columns[i]))),
        }
    }

    /// The value of a column, by name or position; panics if it cannot be read (for tests).
    pub fn get<T: Decode, I: ColumnIndex + std::fmt::Debug + Copy>(&self, index: I) -> T {
        self.try_get(index)
            .unwrap_or_else(|e| panic!("column {index:?}: {e}"))
    }

    /// How many columns the row has.
    pub fn len(&self) -> usize {
        match &self.0 {
            RowKind::Any(r) => sqlx::Row::len(r),
            RowKind::Sqlite { values, .. } => values.len(),
        }
    }

    /// Whether the row has no columns.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A way to name a column: its position or its name.
pub trait ColumnIndex {
    /// The column's position in `row`.
    fn position(&self, row: &Row) -> Result<usize>;
}

impl ColumnIndex for usize {
    fn position(&self, row: &Row) -> Result<usize> {
        if *self < row.len() {
            Ok(*self)
        } else {
            Err(StoreError::Db(sqlx::Error::ColumnIndexOutOfBounds {
                index: *self,
                len: row.len(),
            }))
        }
    }
}

impl ColumnIndex for &str {
    fn position(&self, row: &Row) -> Result<usize> {
        let found = match &row.0 {
            RowKind::Any(r) => {
                use sqlx::Column;
                sqlx::Row::try_column(r, *self).ok().map(|c| c.ordinal())
            }
            RowKind::Sqlite { columns, .. } => columns.iter().position(|c| c == self),
        };
        found.ok_or_else(|| StoreError::Db(sqlx::Error::ColumnNotFound(self.to_string())))
    }
}

/// A Rust type a column can be read as.
pub trait Decode: Sized {
    /// From a row of sqlx's `Any` driver.
    fn from_any(row: &AnyRow, i: usize) -> Result<Self>;
    /// From a value SQLite returned.
    fn from_sqlite(v: &SqliteValue) -> std::result::Result<Self, String>;
}

fn type_name(v: &SqliteValue) -> &'static str {
    match v {
        SqliteValue::Null => "NULL",
        SqliteValue::Integer(_) => "INTEGER",
        SqliteValue::Real(_) => "REAL",
        SqliteValue::Text(_) => "TEXT",
        SqliteValue::Blob(_) => "BLOB",
    }
}

macro_rules! decode {
    ($t:ty, $want:literal, |$v:ident| $m:expr) => {
        impl Decode for $t {
            fn from_any(row: &AnyRow, i: usize) -> Result<Self> {
                Ok(sqlx::Row::try_get::<$t, usize>(row, i)?)
            }
            fn from_sqlite(v: &SqliteValue) -> std::result::Result<Self, String> {
                let $v = v;
                let found: Option<$t> = $m;
                found.ok_or_else(|| format!("expected {}, found {}", $want, type_name(v)))
            }
        }
        impl Decode for Option<$t> {
            fn from_any(row: &AnyRow, i: usize) -> Result<Self> {
                Ok(sqlx::Row::try_get::<Option<$t>, usize>(row, i)?)
            }
            fn from_sqlite(v: &SqliteValue) -> std::result::Result<Self, String> {
                match v {
                    SqliteValue::Null => Ok(None),
                    v => <$t>::from_sqlite(v).map(Some),
                }
            }
        }
    };
}

decode!(i64, "INTEGER", |v| match v {
    SqliteValue::Integer(n) => Some(*n),
    _ => None,
});
decode!(String, "TEXT", |v| match v {
    SqliteValue::Text(s) => Some(s.clone()),
    _ => None,
});
decode!(f64, "REAL", |v| match v {
    SqliteValue::Real(x) => Some(*x),
    SqliteValue::Integer(n) => Some(*n as f64),
    _ => None,
});
decode!(bool, "BOOLEAN", |v| match v {
    SqliteValue::Integer(n) => Some(*n != 0),
    _ => None,
});

#[cfg(test)]
mod tests {
    use super::*;

    fn writer() -> (tempfile_dir::Dir, SqliteWriter) {
        let dir = tempfile_dir::Dir::new();
        let w = SqliteWriter::open(&dir.path("db.sqlite"), true).expect("open");
        (dir, w)
    }

    /// A scratch directory, removed on drop (no extra dependency for one test module).
    mod tempfile_dir {
        pub struct Dir(std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                let p = std::env::temp_dir().join(format!("tenure-db-{}", uuid::Uuid::new_v4()));
                std::fs::create_dir_all(&p).expect("temp dir");
                Dir(p)
            }
            pub fn path(&self, name: &str) -> String {
                self.0.join(name).display().to_string()
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[tokio::test]
    async fn numbered_parameters_take_their_argument_whatever_their_order() {
        let (_d, w) = writer();
        let mut c = Conn::sqlite_tx(w.begin(Priority::Normal).await.unwrap(), Default::default());
        c.execute("CREATE TABLE t (a BIGINT, b TEXT, c TEXT)")
            .await
            .unwrap();
        query("INSERT INTO t (c, a, b) VALUES ($3, $1, $2)")
            .bind(7_i64)
            .bind("bee")
            .bind(Option::<String>::None)
            .execute(&mut c)
            .await
            .unwrap();
        let row = query("SELECT a, b, c FROM t WHERE b = $1 AND a = $2 AND b = $1")
            .bind("bee")
            .bind(7_i64)
            .fetch_one(&mut c)
            .await
            .unwrap();
        assert_eq!(row.try_get::<i64, _>("a").unwrap(), 7);
        assert_eq!(row.try_get::<String, _>(1).unwrap(), "bee");
        assert_eq!(row.try_get::<Option<String>, _>("c").unwrap(), None);
        assert!(row.try_get::<String, _>("c").is_err(), "a NULL is no TEXT");
        assert!(row.try_get::<i64, _>("nope").is_err());
        c.commit().await.unwrap();
    }

    #[tokio::test]
    async fn rows_changed_are_counted_with_or_without_returning() {
        let (_d, w) = writer();
        let mut c = Conn::sqlite_tx(w.begin(Priority::Normal).await.unwrap(), Default::default());
        c.execute("CREATE TABLE t (a BIGINT PRIMARY KEY)")
            .await
            .unwrap();
        let done = query("INSERT INTO t (a) VALUES (?), (?), (?)")
            .bind(1_i64)
            .bind(2_i64)
            .bind(3_i64)
            .execute(&mut c)
            .await
            .unwrap();
        assert_eq!(done.rows_affected(), 3);
        let gone = query("DELETE FROM t WHERE a < $1 RETURNING a")
            .bind(3_i64)
            .execute(&mut c)
            .await
            .unwrap();
        assert_eq!(gone.rows_affected(), 2);
        let none = query("SELECT a FROM t").execute(&mut c).await.unwrap();
        assert_eq!(none.rows_affected(), 0, "a read changes nothing");
        c.commit().await.unwrap();
    }

    #[tokio::test]
    async fn taking_the_first_row_of_a_change_still_makes_all_of_it() {
        let (_d, w) = writer();
        let mut c = Conn::sqlite_tx(w.begin(Priority::Normal).await.unwrap(), Default::default());
        c.execute("CREATE TABLE t (a BIGINT, b TEXT)")
            .await
            .unwrap();
        query("INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'x'), (3, 'x')")
            .execute(&mut c)
            .await
            .unwrap();
        let first = query("UPDATE t SET b = 'y' RETURNING a")
            .fetch_optional(&mut c)
            .await
            .unwrap();
        assert!(first.is_some());
        let left: i64 = query("SELECT COUNT(*) FROM t WHERE b = 'x'")
            .fetch_one(&mut c)
            .await
            .unwrap()
            .get(0);
        assert_eq!(left, 0, "every row was changed");
        c.commit().await.unwrap();
    }

    #[tokio::test]
    async fn a_transaction_dropped_without_commit_is_rolled_back() {
        let (_d, w) = writer();
        let mut c = Conn::sqlite_tx(w.begin(Priority::Normal).await.unwrap(), Default::default());
        c.execute("CREATE TABLE t (a BIGINT)").await.unwrap();
        c.commit().await.unwrap();
        {
            let mut c =
                Conn::sqlite_tx(w.begin(Priority::Normal).await.unwrap(), Default::default());
            query("INSERT INTO t (a) VALUES (1)")
                .execute(&mut c)
                .await
                .unwrap();
        }
        let mut c = Conn::sqlite_tx(w.begin(Priority::Normal).await.unwrap(), Default::default());
        let n: i64 = query("SELECT COUNT(*) FROM t")
            .fetch_one(&mut c)
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
        assert_eq!(n, 0);
        c.rollback().await.unwrap();
    }

    #[tokio::test]
    async fn a_missing_argument_is_an_error_not_a_null() {
        let (_d, w) = writer();
        let mut c = Conn::sqlite_tx(w.begin(Priority::Normal).await.unwrap(), Default::default());
        let err = query("SELECT $1, $2")
            .bind(1_i64)
            .fetch_one(&mut c)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("parameter 2"), "{err}");
    }

    #[tokio::test]
    async fn a_broken_unique_key_is_reported_as_such() {
        let (_d, w) = writer();
        let mut c = Conn::sqlite_tx(w.begin(Priority::Normal).await.unwrap(), Default::default());
        c.execute("CREATE TABLE t (a BIGINT PRIMARY KEY, b TEXT UNIQUE)")
            .await
            .unwrap();
        query("INSERT INTO t (a, b) VALUES (1, 'x')")
            .execute(&mut c)
            .await
            .unwrap();
        for sql in [
            "INSERT INTO t (a, b) VALUES (1, 'y')",
            "INSERT INTO t (a, b) VALUES (2, 'x')",
        ] {
            let err = query(sql).execute(&mut c).await.unwrap_err();
            assert!(err.is_unique_violation(), "{sql}: {err}");
        }
        let other = query("INSERT INTO t (a, b) VALUES (NULL, 'z', 3)")
            .execute(&mut c)
            .await
            .unwrap_err();
        assert!(!other.is_unique_violation(), "{other}");
    }

    #[tokio::test]
    async fn the_writer_is_durable_and_keeps_its_scratch_data_in_memory() {
        let (_d, w) = writer();
        let mut c = Conn::sqlite_tx(w.begin(Priority::Normal).await.unwrap(), Default::default());
        let pragma = |name: &'static str| query(AssertSqlSafe(format!("PRAGMA {name}")));
        // 2 = FULL: an fsync at every commit.
        let sync: i64 = pragma("synchronous")
            .fetch_one(&mut c)
            .await
            .unwrap()
            .get(0);
        assert_eq!(sync, 2);
        // 2 = MEMORY: no temporary file for a statement journal or a sort.
        let temp: i64 = pragma("temp_store").fetch_one(&mut c).await.unwrap().get(0);
        assert_eq!(temp, 2);
        let mode: String = pragma("journal_mode")
            .fetch_one(&mut c)
            .await
            .unwrap()
            .get(0);
        assert_eq!(mode, "wal");
        c.rollback().await.unwrap();
    }

    #[tokio::test]
    async fn a_closed_writer_refuses_new_transactions() {
        let (_d, w) = writer();
        w.close().await;
        assert!(matches!(
            w.begin(Priority::Normal).await,
            Err(StoreError::Closed)
        ));
    }

    /// A leaver's transaction waiting for the writer begins before normal ones that were
    /// waiting longer, and sees what the transaction before it committed.
    #[tokio::test]
    async fn an_urgent_transaction_takes_the_writer_before_normal_ones_waiting() {
        let (_d, w) = writer();
        let mut first =
            Conn::sqlite_tx(w.begin(Priority::Normal).await.unwrap(), Default::default());
        first
            .execute("CREATE TABLE t (n BIGINT, who TEXT)")
            .await
            .unwrap();
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut waiting = Vec::new();
        for (priority, who) in [(Priority::Normal, "normal"), (Priority::Urgent, "urgent")] {
            let (w, order) = (w.clone(), order.clone());
            waiting.push(tokio::spawn(async move {
                let mut c = Conn::sqlite_tx(w.begin(priority).await.unwrap(), Default::default());
                order.lock().unwrap().push(who);
                query("INSERT INTO t VALUES ((SELECT COUNT(*) FROM t), $1)")
                    .bind(who)
                    .execute(&mut c)
                    .await
                    .unwrap();
                c.commit().await.unwrap();
            }));
            // Each is waiting before the next asks.
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
        }
        first.commit().await.unwrap();
        for t in waiting {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), ["urgent", "normal"]);
    }

    /// Writes `n` transactions of one row of about 3 KiB each (a page or two of the log each).
    async fn write_rows(w: &SqliteWriter, n: usize) {
        for _ in 0..n {
            let mut c =
                Conn::sqlite_tx(w.begin(Priority::Normal).await.unwrap(), Default::default());
            query("INSERT INTO t (b) VALUES (zeroblob(3000))")
                .execute(&mut c)
                .await
                .unwrap();
            c.commit().await.unwrap();
        }
    }

    fn log_pages(dir: &tempfile_dir::Dir) -> u64 {
        let bytes = std::fs::metadata(dir.path("db.sqlite-wal")).unwrap().len();
        bytes / (4096 + 24)
    }

    async fn restarting_writer(restart_frames: i64) -> (tempfile_dir::Dir, SqliteWriter) {
        let dir = tempfile_dir::Dir::new();
        let w = SqliteWriter::open_restarting_at(&dir.path("db.sqlite"), true, restart_frames)
            .expect("open");
        let mut c = Conn::sqlite_tx(w.begin(Priority::Normal).await.unwrap(), Default::default());
        c.execute("CREATE TABLE t (a INTEGER PRIMARY KEY, b BLOB)")
            .await
            .unwrap();
        c.commit().await.unwrap();
        (dir, w)
    }

    /// Under a writer that never pauses, the log is still started over from its beginning
    /// (checkpoints beside the writer alone never reach its end): it stays near the length
    /// that triggers a restart instead of holding every page written.
    #[tokio::test]
    async fn the_log_starts_over_while_the_writer_keeps_writing() {
        let (dir, w) = restarting_writer(64).await;
        write_rows(&w, 3_000).await;
        let pages = log_pages(&dir);
        assert!(
            pages < 1_000,
            "3,000 commits of a page or more each left {pages} pages in the log"
        );
        let mut c = Conn::sqlite_tx(w.begin(Priority::Normal).await.unwrap(), Default::default());
        let n: i64 = query("SELECT COUNT(*) FROM t")
            .fetch_one(&mut c)
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 3_000);
        c.rollback().await.unwrap();
        w.close().await;
    }

    /// A reader holding an old snapshot keeps the log from starting over, as SQLite requires;
    /// writes go on meanwhile, the reader keeps its snapshot, and once it is done the log
    /// starts over again and stops growing.
    #[tokio::test]
    async fn a_long_reader_delays_the_restart_of_the_log_and_blocks_nothing() {
        let (dir, w) = restarting_writer(64).await;
        write_rows(&w, 10).await;
        let reader = rusqlite::Connection::open(dir.path("db.sqlite")).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        let count = || -> i64 {
            reader
                .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(count(), 10);
        write_rows(&w, 500).await;
        assert_eq!(count(), 10, "the reader keeps its snapshot");
        reader.execute_batch("COMMIT").unwrap();
        assert!(log_pages(&dir) >= 500, "the log could not start over");
        write_rows(&w, 2_000).await;
        let grown = log_pages(&dir);
        write_rows(&w, 1_000).await;
        assert_eq!(
            log_pages(&dir),
            grown,
            "with the reader gone the log starts over within the space it had"
        );
        assert_eq!(count(), 3_510);
        w.close().await;
    }
}
