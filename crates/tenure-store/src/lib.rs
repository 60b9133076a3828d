//! Persistence for tenure: SQLite (the embedded default) and PostgreSQL, through one SQL path
//! ([`db`]: `$n` placeholders, BIGINT and TEXT columns only).
//!
//! Writes go through [`Tx`]: one database transaction that also carries the audit entries of
//! the change, chained and written at commit, so a change and its audit record land together or
//! not at all. On SQLite all writes share one connection (`BEGIN IMMEDIATE`, WAL,
//! `synchronous=FULL`), so writers queue in-process instead of fighting over the file lock; its
//! statements run on the caller's thread, prepared once (see [`db`]). Callers reach throughput
//! by putting many changes in one transaction (group commit).

mod approvals;
mod checkpoints;
pub mod db;
mod drift;
mod evidence;
mod filter;
pub mod lane;
mod lists;
mod migrate;
mod observe;
mod pcache;
mod privacy;
mod queries;
mod reviews;
mod scim;
mod scim_groups;
mod sessions;
mod sla;
mod sqlite_setup;
mod tasks;
mod timers;
pub mod trace;
pub mod turns;
mod tx;
pub mod vault;

pub use approvals::*;
pub use checkpoints::*;
/// The connection type the queries take (a transaction's or a pooled reader's).
pub use db::Conn;
pub use drift::*;
pub use evidence::*;
pub use lists::*;
pub use migrate::{
    Applied, MIGRATIONS, Migration, MigrationError, SchemaVersion, applied_migrations,
};
pub use observe::*;
pub use privacy::*;
pub use queries::*;
pub use reviews::*;
pub use scim::*;
pub use scim_groups::*;
pub use sessions::*;
pub use sla::*;
pub use tasks::*;
pub use timers::*;
pub use tx::{NewAudit, Savepoint, Tx};
pub use vault::Vault;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tenure_core::run::Priority;

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed or refused a statement.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// The SQLite database failed or refused a statement.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The store was closed.
    #[error("the database is closed")]
    Closed,
    /// A stored value could not be read back (a bug or a hand-edited database).
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// Personal data could not be sealed or opened (see [`vault`]).
    #[error(transparent)]
    Vault(#[from] vault::VaultError),
    /// The database's schema is not one this binary can use (too new, or edited).
    #[error(transparent)]
    Migration(#[from] MigrationError),
    /// The database URL names a backend tenure does not support.
    #[error("unsupported database URL `{0}`: use sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
}

impl StoreError {
    /// Whether the database refused a write because it would break a unique key.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            StoreError::Db(sqlx::Error::Database(d)) => d.is_unique_violation(),
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.extended_code,
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            ),
            _ => false,
        }
    }
}

/// Shorthand for store results.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Creates a fresh, empty PostgreSQL database next to the one `url` names and returns its URL:
/// test suites give every test a database of its own this way.
pub async fn create_scratch_database(url: &str, name: &str) -> Result<String> {
    install_default_drivers();
    if !config_ok_name(name) {
        return Err(StoreError::Corrupt(format!(
            "`{name}` is not a safe database name"
        )));
    }
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let Some((server, _db)) = base.rsplit_once('/') else {
        return Err(StoreError::UnsupportedUrl(url.to_string()));
    };
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await?;
    pool.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .await?;
    pool.close().await;
    Ok(match query {
        Some(q) => format!("{server}/{name}?{q}"),
        None => format!("{server}/{name}"),
    })
}

/// Whether another connection (a running `tenure serve`, another command) has the SQLite
/// database at `path` open: it asks for the file's exclusive lock without waiting, which any
/// other open connection of a WAL database prevents. The connection is closed before returning.
pub async fn sqlite_in_use(path: &Path) -> Result<bool> {
    use sqlx::Connection;
    install_default_drivers();
    sqlite_setup::install();
    let url = format!("sqlite://{}?mode=rw", path.display());
    let mut c = sqlx::AnyConnection::connect(&url).await?;
    c.execute("PRAGMA busy_timeout = 0").await?;
    c.execute("PRAGMA locking_mode = EXCLUSIVE").await?;
    let busy = match c.execute("BEGIN EXCLUSIVE").await {
        Ok(_) => {
            c.execute("COMMIT").await?;
            false
        }
        Err(sqlx::Error::Database(e)) if e.message().contains("locked") => true,
        Err(e) => return Err(e.into()),
    };
    c.close().await?;
    Ok(busy)
}

fn config_ok_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 60
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Which database is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite file.
    Sqlite,
    /// PostgreSQL server, shareable by several instances.
    Postgres,
}

/// A handle on the database: cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    read: Readers,
    write: Writer,
    backend: Backend,
    schema: SchemaVersion,
    committed: Arc<AtomicU64>,
    vault: Vault,
    /// Where urgent tasks run, when not on the caller's runtime (see [`lane`]).
    urgent: Option<Arc<lane::UrgentThread>>,
}

/// A pooled connection for reads; it goes back to the pool when dropped.
#[derive(Debug)]
pub struct Reader(Conn);

impl std::ops::Deref for Reader {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        &self.0
    }
}

impl std::ops::DerefMut for Reader {
    fn deref_mut(&mut self) -> &mut Conn {
        &mut self.0
    }
}

/// Where reads run.
#[derive(Clone, Debug)]
enum Readers {
    /// PostgreSQL: the pool writes share.
    Pool(AnyPool),
    /// SQLite: connections beside the writer, statements on the caller's thread.
    Sqlite(db::SqliteReaders),
}

/// Where write transactions run.
#[derive(Clone, Debug)]
enum Writer {
    /// PostgreSQL: a transaction on a pooled connection.
    Pool(AnyPool),
    /// SQLite: the one writer connection, statements on the caller's thread.
    Sqlite(db::SqliteWriter),
}

/// The file a `sqlite:` URL names, and whether it may be created (`mode=rwc`), as sqlx reads it.
/// An in-memory database is refused: the writer and the readers must share one file.
fn sqlite_file(url: &str) -> Result<(String, bool)> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| StoreError::UnsupportedUrl(url.to_string()))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let params = || query.split('&');
    if path.is_empty() || path == ":memory:" || params().any(|kv| kv == "mode=memory") {
        return Err(StoreError::UnsupportedUrl(url.to_string()));
    }
    let create = params().any(|kv| kv == "mode=rwc");
    Ok((path.to_string(), create))
}

impl Store {
    /// Opens (creating if needed) the SQLite database file at `path`.
    pub async fn open_sqlite(path: &Path) -> Result<Store> {
        let url = format!("sqlite://{}?mode=rwc", path.display());
        Store::connect(&url).await
    }

    /// Connects to `sqlite://PATH` or `postgres://...` and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<Store> {
        Store::connect_with(url, MIGRATIONS).await
    }

    /// Connects and applies the migrations `known` (all of them but in tests).
    pub(crate) async fn connect_with(url: &str, known: &[Migration]) -> Result<Store> {
        install_default_drivers();
        let (read, write, backend) = if url.starts_with("sqlite:") {
            let (path, create) = sqlite_file(url)?;
            let write = Writer::Sqlite(db::SqliteWriter::open(&path, create)?);
            // Readers run beside the one writer (WAL); a request holds one for its few
            // queries, so more of them than cores keeps requests from queueing on the pool.
            let read = Readers::Sqlite(db::SqliteReaders::new(&path, 8));
            (read, write, Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let pool = AnyPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(60))
                .connect(url)
                .await?;
            (
                Readers::Pool(pool.clone()),
                Writer::Pool(pool),
                Backend::Postgres,
            )
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        };
        let mut store = Store {
            read,
            write,
            backend,
            committed: Arc::default(),
            vault: Vault::plain(),
            urgent: None,
            schema: SchemaVersion {
                version: 0,
                name: String::new(),
            },
        };
        store.schema = store
            .migrate_with(known, || chrono::Utc::now().timestamp_millis())
            .await?;
        tracing::info!(
            version = store.schema.version,
            name = %store.schema.name,
            "database schema version"
        );
        Ok(store)
    }

    /// The schema version the database was at once opened (its last migration).
    pub fn schema_version(&self) -> &SchemaVersion {
        &self.schema
    }

    /// The store, sealing personal data under `vault`'s master key (see [`vault`]). A store
    /// opened without one stores it as it is.
    pub fn with_vault(mut self, vault: Vault) -> Store {
        self.vault = vault;
        self
    }

    /// The store, running the urgent lane's tasks ([`Store::spawn`]) on a thread of its own
    /// (see [`lane`]). Its clones share the thread; it stops once all are dropped.
    pub fn with_urgent_thread(mut self) -> Result<Store> {
        self.urgent = Some(Arc::new(lane::UrgentThread::start()?));
        Ok(self)
    }

    /// Whether the urgent lane has a thread of its own ([`Store::with_urgent_thread`]).
    pub fn has_urgent_thread(&self) -> bool {
        self.urgent.is_some()
    }

    /// Spawns `task` in the lane of `priority`: an urgent one on the store's urgent thread
    /// when it has one, everything else (and every task of a store without one) on the
    /// caller's runtime.
    pub fn spawn<F>(&self, priority: Priority, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match &self.urgent {
            Some(thread) if priority.is_urgent() => thread.spawn(task),
            _ => tokio::spawn(task),
        }
    }

    /// How this store seals personal data.
    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts a write transaction of normal priority.
    pub async fn begin(&self) -> Result<Tx> {
        self.begin_with(Priority::Normal).await
    }

    /// Starts a write transaction. On SQLite, whose one writer takes transactions in turn, an
    /// urgent one (a leaver's work) is handed the writer before every normal one waiting;
    /// PostgreSQL runs transactions side by side, so there the priority changes nothing.
    pub async fn begin_with(&self, priority: Priority) -> Result<Tx> {
        let conn = match &self.write {
            Writer::Sqlite(w) => Conn::sqlite_tx(w.begin(priority).await?, self.vault.clone()),
            Writer::Pool(p) => Conn::sqlx_tx(p.begin().await?, self.vault.clone()),
        };
        Ok(Tx::new(conn, self.backend, self.committed.clone()))
    }

    /// How long SQLite's one writer has been busy since the store was opened (`None` on
    /// PostgreSQL, where writers run side by side): against the time passed, how busy it is,
    /// and with what.
    pub fn writer_times(&self) -> Option<db::WriterTimes> {
        match &self.write {
            Writer::Sqlite(w) => Some(w.times()),
            Writer::Pool(_) => None,
        }
    }

    /// Whether an urgent transaction (a leaver's work) waits for SQLite's one writer now: a
    /// long batch of normal work commits what it has done and lets it go first. Always `false`
    /// on PostgreSQL, where transactions run side by side.
    pub fn urgent_waiting(&self) -> bool {
        match &self.write {
            Writer::Sqlite(w) => w.urgent_waiting(),
            Writer::Pool(_) => false,
        }
    }

    /// How many write transactions this store (and its clones) committed since it was opened:
    /// with a count of work done, how well writes are batched.
    pub fn transactions_committed(&self) -> u64 {
        self.committed.load(Ordering::Relaxed)
    }

    /// A connection for reads outside any write transaction.
    pub async fn reader(&self) -> Result<Reader> {
        Ok(Reader(match &self.read {
            Readers::Pool(p) => Conn::pooled(p.acquire().await?, self.vault.clone()),
            Readers::Sqlite(r) => Conn::sqlite_read(r.get().await?, self.vault.clone()),
        }))
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<()> {
        let mut c = self.reader().await?;
        db::query("SELECT 1").execute(&mut c).await?;
        Ok(())
    }

    /// Writes a consistent copy of the SQLite database to `path` (`VACUUM INTO`), while others
    /// go on reading and writing; `path` must not exist. Not for PostgreSQL (use `pg_dump`).
    ///
    /// The copy holds no person keys (see [`vault`]): they are deleted from it and the file
    /// rebuilt, so none is left in its free space. A restore takes them from the database it
    /// replaces or from a keys file ([`person_keys`]); a person forgotten since is in neither,
    /// and stays forgotten.
    pub async fn backup_sqlite(&self, path: &Path) -> Result<()> {
        if self.backend != Backend::Sqlite {
            return Err(StoreError::UnsupportedUrl(
                "VACUUM INTO needs the embedded SQLite database".into(),
            ));
        }
        let mut c = self.reader().await?;
        db::query("VACUUM INTO $1")
            .bind(path.display().to_string())
            .execute(&mut c)
            .await?;
        drop(c);
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || -> Result<()> {
            let copy = rusqlite::Connection::open(&path)?;
            copy.pragma_update(None, "secure_delete", "ON")?;
            copy.execute_batch("DELETE FROM person_keys; VACUUM;")?;
            copy.close().map_err(|(_, e)| StoreError::from(e))
        })
        .await
        .map_err(|e| StoreError::Corrupt(format!("stripping the backup's keys: {e}")))?
    }

    /// Closes every connection.
    pub async fn close(&self) {
        match &self.write {
            Writer::Sqlite(w) => w.close().await,
            Writer::Pool(p) => p.close().await,
        }
        match &self.read {
            Readers::Pool(p) => p.close().await,
            Readers::Sqlite(r) => r.close(),
        }
    }
}
