//! Persistence for tenure: SQLite (the embedded default) and PostgreSQL, through one SQL path
//! (sqlx's `Any` driver, `$n` placeholders, BIGINT and TEXT columns only).
//!
//! Writes go through [`Tx`]: one database transaction that also carries the audit entries of
//! the change, chained and written at commit, so a change and its audit record land together or
//! not at all. On SQLite all writes share one connection (`BEGIN IMMEDIATE`, WAL,
//! `synchronous=FULL`), so writers queue in-process instead of fighting over the file lock;
//! callers reach throughput by putting many changes in one transaction (group commit).

mod approvals;
mod checkpoints;
mod evidence;
mod filter;
mod lists;
mod migrate;
mod observe;
mod queries;
mod scim;
mod scim_groups;
mod sla;
mod tasks;
mod timers;
mod tx;

pub use approvals::*;
pub use checkpoints::*;
pub use evidence::*;
pub use lists::*;
pub use migrate::{
    Applied, MIGRATIONS, Migration, MigrationError, SchemaVersion, applied_migrations,
};
pub use observe::*;
pub use queries::*;
pub use scim::*;
pub use scim_groups::*;
pub use sla::*;
/// The connection type the queries take (a transaction's or a pooled reader's).
pub use sqlx::AnyConnection;
pub use tasks::*;
pub use timers::*;
pub use tx::{NewAudit, Savepoint, Tx};

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};
use std::path::Path;
use std::time::Duration;

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed or refused a statement.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// A stored value could not be read back (a bug or a hand-edited database).
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// The database's schema is not one this binary can use (too new, or edited).
    #[error(transparent)]
    Migration(#[from] MigrationError),
    /// The database URL names a backend tenure does not support.
    #[error("unsupported database URL `{0}`: use sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
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
    read: AnyPool,
    write: AnyPool,
    backend: Backend,
    schema: SchemaVersion,
}

type BoxFuture<'c, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'c>>;

/// Sets every SQLite connection up: WAL lets readers run beside the writer, `synchronous = FULL`
/// makes every commit durable, and a busy timeout lets other processes (the CLI) wait their turn.
fn sqlite_pragmas(
    conn: &mut sqlx::AnyConnection,
    _meta: sqlx::pool::PoolConnectionMetadata,
) -> BoxFuture<'_, Result<(), sqlx::Error>> {
    Box::pin(async move {
        for p in [
            "PRAGMA journal_mode = WAL",
            "PRAGMA synchronous = FULL",
            "PRAGMA busy_timeout = 10000",
            "PRAGMA foreign_keys = ON",
        ] {
            conn.execute(p).await?;
        }
        Ok(())
    })
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
            let pragmas = sqlite_pragmas;
            let write = AnyPoolOptions::new()
                .max_connections(1)
                .test_before_acquire(false)
                .acquire_timeout(Duration::from_secs(60))
                .after_connect(pragmas)
                .connect(url)
                .await?;
            // Readers run beside the one writer (WAL); a request holds one for its few
            // queries, so more of them than cores keeps requests from queueing on the pool.
            // A connection to a local file cannot go stale: no ping before each use (sqlx's
            // default), which would cost every request a second round trip to the database.
            let read = AnyPoolOptions::new()
                .max_connections(8)
                .test_before_acquire(false)
                .after_connect(pragmas)
                .connect(url)
                .await?;
            (read, write, Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let pool = AnyPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(60))
                .connect(url)
                .await?;
            (pool.clone(), pool, Backend::Postgres)
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        };
        let mut store = Store {
            read,
            write,
            backend,
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

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<Tx> {
        let tx = match self.backend {
            Backend::Sqlite => self.write.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.write.begin().await?,
        };
        Ok(Tx::new(tx, self.backend))
    }

    /// A connection for reads outside any write transaction.
    pub async fn reader(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Any>> {
        Ok(self.read.acquire().await?)
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    /// The pool writes go through, for components that keep their own tables (the sandbox).
    pub fn write_pool(&self) -> &AnyPool {
        &self.write
    }

    /// Writes a consistent copy of the SQLite database to `path` (`VACUUM INTO`), while others
    /// go on reading and writing; `path` must not exist. Not for PostgreSQL (use `pg_dump`).
    pub async fn backup_sqlite(&self, path: &Path) -> Result<()> {
        if self.backend != Backend::Sqlite {
            return Err(StoreError::UnsupportedUrl(
                "VACUUM INTO needs the embedded SQLite database".into(),
            ));
        }
        let mut c = self.read.acquire().await?;
        sqlx::query("VACUUM INTO $1")
            .bind(path.display().to_string())
            .execute(&mut *c)
            .await?;
        Ok(())
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}
