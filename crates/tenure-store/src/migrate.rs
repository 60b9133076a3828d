//! Numbered schema migrations, and the table recording which ones a database has had.
//!
//! [`MIGRATIONS`] lists every migration in order: a number, a name and its SQL (one file in
//! `crates/tenure-store/migrations/`, the same for SQLite and PostgreSQL, or one file each when
//! the two dialects must differ), and optionally a data step in Rust that runs after the SQL in
//! the same transaction. Opening a database
//! applies those it has not had, each in a transaction of its own that also records it in
//! `schema_migrations` (number, name, SHA-256 of its SQL, when). Which migration comes next is
//! decided by [`next_step`], a pure function of what the database recorded.
//!
//! A database made before versions were recorded (its tables exist, `schema_migrations` does
//! not) is brought to the baseline by the idempotent upgrade earlier versions ran at every
//! start, then recorded at version 1. A database that recorded a migration this binary does not
//! know, or one whose SQL differs from this binary's, is refused, never downgraded.

use crate::db::{self, Conn};
use crate::{Backend, Result, StoreError};
use sha2::{Digest, Sha256};
use std::future::Future;
use std::pin::Pin;

/// A data step: Rust code that runs after a migration's SQL, in its transaction.
pub type DataStep =
    for<'c> fn(&'c mut Conn) -> Pin<Box<dyn Future<Output = Result<()>> + Send + 'c>>;

/// One numbered change to the schema.
#[derive(Clone, Copy)]
pub struct Migration {
    /// Its number: 1 for the baseline, then one more for each.
    pub version: i64,
    /// A short name, for logs and the `schema_migrations` table.
    pub name: &'static str,
    /// Its statements, separated by `;` (no `;` inside a literal; a `CREATE TRIGGER` runs to
    /// its `END`), `--` comments on lines of their own. PostgreSQL runs them too unless
    /// `postgres` is given.
    pub sql: &'static str,
    /// PostgreSQL's statements, when they differ from SQLite's (`sql` is then SQLite's alone).
    pub postgres: Option<&'static str>,
    /// Rust code run after the SQL in the same transaction (a data migration), if any.
    pub data: Option<DataStep>,
}

impl std::fmt::Debug for Migration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Migration")
            .field("version", &self.version)
            .field("name", &self.name)
            .field("postgres", &self.postgres.is_some())
            .field("data", &self.data.is_some())
            .finish_non_exhaustive()
    }
}

impl Migration {
    /// The SHA-256 of its SQL (line endings normalized; both texts when the backends differ,
    /// so an edit to either is seen on both), hex: what `schema_migrations` records.
    pub fn checksum(&self) -> String {
        let mut text = self.sql.replace("\r\n", "\n");
        if let Some(pg) = self.postgres {
            text.push('\0');
            text.push_str(&pg.replace("\r\n", "\n"));
        }
        hex::encode(Sha256::digest(text.as_bytes()))
    }

    /// The SQL `backend` runs.
    fn sql_for(&self, backend: Backend) -> &'static str {
        match (backend, self.postgres) {
            (Backend::Postgres, Some(pg)) => pg,
            _ => self.sql,
        }
    }

    /// The statements `backend` runs, comment lines removed, in order.
    fn statements(&self, backend: Backend) -> Vec<String> {
        split_statements(self.sql_for(backend))
    }
}

/// Statements separated by `;`, comment lines removed; a `CREATE TRIGGER` keeps the `;` of its
/// body up to its `END`.
fn split_statements(sql: &str) -> Vec<String> {
    let code: String = sql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut out: Vec<String> = Vec::new();
    let mut open_trigger = false;
    for piece in code.split(';') {
        if open_trigger && let Some(last) = out.last_mut() {
            last.push(';');
            last.push_str(piece);
        } else {
            let s = piece.trim();
            if s.is_empty() {
                continue;
            }
            out.push(s.to_string());
        }
        let last = out.last_mut().expect("a statement was pushed or extended");
        let upper = last.to_ascii_uppercase();
        open_trigger = upper.starts_with("CREATE TRIGGER") && !upper.trim_end().ends_with("END");
        *last = last.trim().to_string();
    }
    out
}

/// Every migration, in order. Add one by adding a file to `migrations/` and a line here with
/// the next number; never edit one that has been released.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "baseline",
        sql: include_str!("../migrations/0001_baseline.sql"),
        postgres: None,
        data: None,
    },
    Migration {
        version: 2,
        name: "scim_groups",
        sql: include_str!("../migrations/0002_scim_groups.sql"),
        postgres: None,
        data: None,
    },
    Migration {
        version: 3,
        name: "scim_substring_index",
        sql: include_str!("../migrations/0003_scim_substring_index.sqlite.sql"),
        postgres: Some(include_str!(
            "../migrations/0003_scim_substring_index.postgres.sql"
        )),
        data: None,
    },
    Migration {
        version: 4,
        name: "scim_user_search",
        sql: include_str!("../migrations/0004_scim_user_search.sqlite.sql"),
        postgres: Some(include_str!(
            "../migrations/0004_scim_user_search.postgres.sql"
        )),
        data: Some(crate::scim::user_search_index),
    },
    Migration {
        version: 5,
        name: "audit_checkpoints",
        sql: include_str!("../migrations/0005_audit_checkpoints.sql"),
        postgres: None,
        data: None,
    },
    Migration {
        version: 6,
        name: "scim_user_search_postgres",
        sql: include_str!("../migrations/0006_scim_user_search_postgres.sqlite.sql"),
        postgres: Some(include_str!(
            "../migrations/0006_scim_user_search_postgres.postgres.sql"
        )),
        data: Some(crate::scim::user_search_index_postgres),
    },
    Migration {
        version: 7,
        name: "events_by_person",
        sql: include_str!("../migrations/0007_events_by_person.sql"),
        postgres: None,
        data: None,
    },
    Migration {
        version: 8,
        name: "step_outcome_unknown",
        sql: include_str!("../migrations/0008_step_outcome_unknown.sqlite.sql"),
        postgres: Some(include_str!(
            "../migrations/0008_step_outcome_unknown.postgres.sql"
        )),
        data: Some(crate::queries::add_step_maybe_applied),
    },
    Migration {
        version: 9,
        name: "reconciliation",
        sql: include_str!("../migrations/0009_reconciliation.sqlite.sql"),
        postgres: Some(include_str!(
            "../migrations/0009_reconciliation.postgres.sql"
        )),
        data: Some(crate::queries::add_account_discovered),
    },
    Migration {
        version: 10,
        name: "one_running_reconciliation",
        sql: include_str!("../migrations/0010_one_running_reconciliation.sql"),
        postgres: None,
        data: None,
    },
    Migration {
        version: 11,
        name: "traces",
        sql: include_str!("../migrations/0011_traces.sqlite.sql"),
        postgres: Some(include_str!("../migrations/0011_traces.postgres.sql")),
        data: Some(crate::queries::add_trace_columns),
    },
    Migration {
        version: 12,
        name: "event_payload_retention",
        sql: include_str!("../migrations/0012_event_payload_retention.sqlite.sql"),
        postgres: Some(include_str!(
            "../migrations/0012_event_payload_retention.postgres.sql"
        )),
        data: Some(crate::queries::add_event_payload_dropped),
    },
    Migration {
        version: 13,
        name: "personal_data_keys",
        sql: include_str!("../migrations/0013_personal_data_keys.sqlite.sql"),
        postgres: Some(include_str!(
            "../migrations/0013_personal_data_keys.postgres.sql"
        )),
        data: Some(crate::privacy::add_people_privacy_columns),
    },
    Migration {
        version: 14,
        name: "console_sessions",
        sql: include_str!("../migrations/0014_console_sessions.sql"),
        postgres: None,
        data: None,
    },
    Migration {
        version: 15,
        name: "audit_by_person",
        sql: include_str!("../migrations/0015_audit_by_person.sql"),
        postgres: None,
        data: None,
    },
    Migration {
        version: 16,
        name: "console_oidc",
        sql: include_str!("../migrations/0016_console_oidc.sqlite.sql"),
        postgres: Some(include_str!("../migrations/0016_console_oidc.postgres.sql")),
        data: Some(crate::sessions::add_session_sign_in),
    },
    Migration {
        version: 17,
        name: "people_search_index",
        sql: include_str!("../migrations/0017_people_search_index.sql"),
        postgres: None,
        data: None,
    },
    Migration {
        version: 18,
        name: "access_reviews",
        sql: include_str!("../migrations/0018_access_reviews.sql"),
        postgres: None,
        data: None,
    },
    Migration {
        version: 19,
        name: "people_search_pending",
        sql: include_str!("../migrations/0019_people_search_pending.sqlite.sql"),
        postgres: Some(include_str!(
            "../migrations/0019_people_search_pending.postgres.sql"
        )),
        data: None,
    },
];

/// A migration a database records as applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Its number.
    pub version: i64,
    /// Its name when it was applied.
    pub name: String,
    /// The checksum of its SQL when it was applied.
    pub checksum: String,
    /// When it was applied (epoch ms).
    pub applied_at: i64,
}

/// The schema version of an open database: the last migration applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaVersion {
    /// Its number.
    pub version: i64,
    /// Its name.
    pub name: String,
}

/// Why a database's schema cannot be used by this binary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MigrationError {
    /// The database had migrations this binary does not know: a newer tenure wrote it.
    #[error(
        "the database's schema is at version {database}, newer than this tenure knows (version \
         {binary}): run a tenure at least as new as the one that upgraded it; tenure never \
         downgrades a schema"
    )]
    TooNew {
        /// The database's version.
        database: i64,
        /// The newest version this binary knows.
        binary: i64,
    },
    /// A migration the database had differs from this binary's migration of the same number.
    #[error(
        "migration {version} (`{name}`) applied to this database (schema version {database}) \
         differs from this tenure's (schema version {binary}): checksum {recorded} recorded, \
         {expected} expected; an applied migration must never be edited"
    )]
    Changed {
        /// The migration's number.
        version: i64,
        /// Its name in this binary.
        name: String,
        /// The checksum the database recorded.
        recorded: String,
        /// The checksum of this binary's SQL.
        expected: String,
        /// The database's version.
        database: i64,
        /// The newest version this binary knows.
        binary: i64,
    },
    /// The database recorded a later migration without an earlier one.
    #[error(
        "the database (schema version {database}) lacks migration {missing}, which this tenure \
         (schema version {binary}) applies before later ones: it was upgraded out of order"
    )]
    Gap {
        /// The migration missing.
        missing: i64,
        /// The database's version.
        database: i64,
        /// The newest version this binary knows.
        binary: i64,
    },
    /// The list of migrations is not numbered 1, 2, 3, ... (a bug in this binary).
    #[error("migration {found} is listed where migration {expected} belongs")]
    Misnumbered {
        /// The number listed.
        found: i64,
        /// The number that belongs there.
        expected: i64,
    },
}

/// What opening a database does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Every migration is applied.
    UpToDate,
    /// The database predates version records: upgrade it the old way, record the baseline.
    AdoptBaseline,
    /// Apply this migration (an index into the list).
    Apply(usize),
}

/// Decides the next step from the migrations known and those the database recorded (in any
/// order), and whether it holds tenure's tables without any record (`unrecorded`).
pub fn next_step(
    known: &[Migration],
    applied: &[Applied],
    unrecorded: bool,
) -> Result<Next, MigrationError> {
    for (i, m) in known.iter().enumerate() {
        let expected = i as i64 + 1;
        if m.version != expected {
            return Err(MigrationError::Misnumbered {
                found: m.version,
                expected,
            });
        }
    }
    let binary = known.len() as i64;
    let database = applied.iter().map(|a| a.version).max().unwrap_or(0);
    if database > binary {
        return Err(MigrationError::TooNew { database, binary });
    }
    if applied.is_empty() && unrecorded {
        return Ok(Next::AdoptBaseline);
    }
    for (i, m) in known.iter().enumerate() {
        match applied.iter().find(|a| a.version == m.version) {
            Some(a) if a.checksum != m.checksum() => {
                return Err(MigrationError::Changed {
                    version: m.version,
                    name: m.name.to_string(),
                    recorded: a.checksum.clone(),
                    expected: m.checksum(),
                    database,
                    binary,
                });
            }
            Some(_) => {}
            None if m.version < database => {
                return Err(MigrationError::Gap {
                    missing: m.version,
                    database,
                    binary,
                });
            }
            None => return Ok(Next::Apply(i)),
        }
    }
    Ok(Next::UpToDate)
}

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version    BIGINT PRIMARY KEY,
    name       TEXT NOT NULL,
    checksum   TEXT NOT NULL,
    applied_at BIGINT NOT NULL
)";

/// The key of the PostgreSQL advisory lock instances take turns migrating under.
const MIGRATION_LOCK: i64 = 7317001;

/// Whether the current database (schema, on PostgreSQL) has a table of this name.
async fn table_exists(c: &mut Conn, backend: Backend, table: &str) -> Result<bool> {
    let sql = match backend {
        Backend::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1",
        Backend::Postgres => {
            "SELECT COUNT(*) FROM information_schema.tables
             WHERE table_schema = current_schema() AND table_name = $1"
        }
    };
    let n: i64 = db::query(sql)
        .bind(table.to_string())
        .fetch_one(c)
        .await?
        .try_get(0)?;
    Ok(n > 0)
}

/// The migrations the database records, oldest first.
pub async fn applied_migrations(c: &mut Conn) -> Result<Vec<Applied>> {
    db::query("SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version")
        .fetch_all(c)
        .await?
        .iter()
        .map(|r| {
            Ok(Applied {
                version: r.try_get(0)?,
                name: r.try_get(1)?,
                checksum: r.try_get(2)?,
                applied_at: r.try_get(3)?,
            })
        })
        .collect()
}

/// Adds `column` (with its SQL type and constraints, `decl`) to a SQLite `table` unless the
/// table has it: SQLite has no `ADD COLUMN IF NOT EXISTS`, and a migration's data step must
/// be safe to run again over its own result. Names are the caller's constants, never input.
pub(crate) async fn sqlite_add_column(
    c: &mut Conn,
    table: &'static str,
    column: &'static str,
    decl: &'static str,
) -> Result<()> {
    let has: i64 = db::query(db::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM pragma_table_info('{table}') WHERE name = '{column}'"
    )))
    .fetch_one(&mut *c)
    .await?
    .try_get(0)?;
    if has == 0 {
        c.execute(db::AssertSqlSafe(format!(
            "ALTER TABLE {table} ADD COLUMN {column} {decl}"
        )))
        .await?;
    }
    Ok(())
}

async fn record(c: &mut Conn, m: &Migration, now_ms: i64) -> Result<()> {
    db::query(
        "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(m.version)
    .bind(m.name.to_string())
    .bind(m.checksum())
    .bind(now_ms)
    .execute(c)
    .await?;
    Ok(())
}

async fn run_sql(c: &mut Conn, backend: Backend, m: &Migration) -> Result<()> {
    for statement in m.statements(backend) {
        c.execute(db::AssertSqlSafe(statement)).await?;
    }
    if let Some(data) = m.data {
        data(c).await?;
    }
    Ok(())
}

/// Brings a database that predates version records to the baseline the way earlier versions
/// did at every start: the people list's columns added, the baseline's idempotent DDL, the
/// approvers and people columns of rows stored before those existed filled in.
async fn upgrade_unrecorded(c: &mut Conn, backend: Backend) -> Result<()> {
    crate::lists::add_people_columns(c, backend).await?;
    run_sql(c, backend, &MIGRATIONS[0]).await?;
    crate::approvals::index_unindexed_approvals(c).await?;
    crate::lists::fill_people_columns(c).await
}

impl crate::Store {
    /// Applies the migrations `known` the database has not had, each in a transaction of its
    /// own under the migration lock, and returns the version it is then at. `now_ms` stamps
    /// what is recorded.
    pub(crate) async fn migrate_with(
        &self,
        known: &[Migration],
        now_ms: impl Fn() -> i64,
    ) -> Result<SchemaVersion> {
        loop {
            let mut tx = self.begin().await?;
            if self.backend() == Backend::Postgres {
                // Instances starting together take turns; each sees what the one before did.
                db::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(MIGRATION_LOCK)
                    .execute(tx.conn())
                    .await?;
            }
            let recorded = table_exists(tx.conn(), self.backend(), "schema_migrations").await?;
            let applied = if recorded {
                applied_migrations(tx.conn()).await?
            } else {
                Vec::new()
            };
            let unrecorded = !recorded && table_exists(tx.conn(), self.backend(), "people").await?;
            match next_step(known, &applied, unrecorded).map_err(StoreError::Migration)? {
                Next::UpToDate => {
                    tx.rollback().await?;
                    // Version 0 only if the list is empty, which `MIGRATIONS` never is.
                    return Ok(applied.last().map_or(
                        SchemaVersion {
                            version: 0,
                            name: String::new(),
                        },
                        |last| SchemaVersion {
                            version: last.version,
                            name: last.name.clone(),
                        },
                    ));
                }
                Next::AdoptBaseline => {
                    let baseline = &known[0];
                    upgrade_unrecorded(tx.conn(), self.backend()).await?;
                    tx.conn().execute(CREATE_TABLE).await?;
                    record(tx.conn(), baseline, now_ms()).await?;
                    tx.commit().await?;
                    tracing::info!(
                        version = baseline.version,
                        name = baseline.name,
                        "database made before schema versions were recorded: upgraded in place and recorded at the baseline"
                    );
                }
                Next::Apply(i) => {
                    let m = &known[i];
                    tx.conn().execute(CREATE_TABLE).await?;
                    run_sql(tx.conn(), self.backend(), m).await?;
                    record(tx.conn(), m, now_ms()).await?;
                    tx.commit().await?;
                    tracing::info!(
                        version = m.version,
                        name = m.name,
                        "schema migration applied"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(version: i64, sql: &'static str) -> Migration {
        Migration {
            version,
            name: "m",
            sql,
            postgres: None,
            data: None,
        }
    }

    fn applied(m: &Migration) -> Applied {
        Applied {
            version: m.version,
            name: m.name.into(),
            checksum: m.checksum(),
            applied_at: 0,
        }
    }

    const KNOWN: [Migration; 3] = [
        Migration {
            version: 1,
            name: "one",
            sql: "CREATE TABLE a (x BIGINT)",
            postgres: None,
            data: None,
        },
        Migration {
            version: 2,
            name: "two",
            sql: "CREATE TABLE b (x BIGINT)",
            postgres: None,
            data: None,
        },
        Migration {
            version: 3,
            name: "three",
            sql: "CREATE TABLE c (x BIGINT)",
            postgres: None,
            data: None,
        },
    ];

    #[test]
    fn an_empty_database_gets_every_migration_in_order() {
        let mut done = Vec::new();
        loop {
            match next_step(&KNOWN, &done, false).unwrap() {
                Next::Apply(i) => done.push(applied(&KNOWN[i])),
                Next::UpToDate => break,
                Next::AdoptBaseline => panic!("an empty database is not adopted"),
            }
        }
        assert_eq!(
            done.iter().map(|a| a.version).collect::<Vec<_>>(),
            [1, 2, 3]
        );
    }

    #[test]
    fn applied_migrations_are_matched_by_number_whatever_their_order() {
        let done = [applied(&KNOWN[1]), applied(&KNOWN[0])];
        assert_eq!(next_step(&KNOWN, &done, false), Ok(Next::Apply(2)));
        let all = [applied(&KNOWN[2]), applied(&KNOWN[0]), applied(&KNOWN[1])];
        assert_eq!(next_step(&KNOWN, &all, false), Ok(Next::UpToDate));
    }

    #[test]
    fn tables_without_records_are_adopted_at_the_baseline_then_upgraded() {
        assert_eq!(next_step(&KNOWN, &[], true), Ok(Next::AdoptBaseline));
        // Once recorded, the tables count for nothing: the records decide.
        let done = [applied(&KNOWN[0])];
        assert_eq!(next_step(&KNOWN, &done, true), Ok(Next::Apply(1)));
    }

    #[test]
    fn a_newer_database_is_refused_naming_both_versions() {
        let newer = Applied {
            version: 4,
            ..applied(&KNOWN[2])
        };
        let done = [
            applied(&KNOWN[0]),
            applied(&KNOWN[1]),
            applied(&KNOWN[2]),
            newer,
        ];
        let err = next_step(&KNOWN, &done, false).unwrap_err();
        assert_eq!(
            err,
            MigrationError::TooNew {
                database: 4,
                binary: 3
            }
        );
        let msg = err.to_string();
        assert!(
            msg.contains("version 4") && msg.contains("version 3"),
            "{msg}"
        );
    }

    #[test]
    fn an_edited_migration_is_refused() {
        let mut edited = applied(&KNOWN[1]);
        edited.checksum = m(2, "CREATE TABLE b (y BIGINT)").checksum();
        let done = [applied(&KNOWN[0]), edited.clone()];
        let err = next_step(&KNOWN, &done, false).unwrap_err();
        assert_eq!(
            err,
            MigrationError::Changed {
                version: 2,
                name: "two".into(),
                recorded: edited.checksum,
                expected: KNOWN[1].checksum(),
                database: 2,
                binary: 3,
            }
        );
    }

    #[test]
    fn a_missing_earlier_migration_is_refused() {
        let done = [applied(&KNOWN[0]), applied(&KNOWN[2])];
        assert_eq!(
            next_step(&KNOWN, &done, false),
            Err(MigrationError::Gap {
                missing: 2,
                database: 3,
                binary: 3
            })
        );
    }

    #[test]
    fn a_misnumbered_list_is_refused() {
        let list = [m(1, "SELECT 1"), m(3, "SELECT 1")];
        assert_eq!(
            next_step(&list, &[], false),
            Err(MigrationError::Misnumbered {
                found: 3,
                expected: 2
            })
        );
    }

    #[test]
    fn the_shipped_migrations_are_numbered_and_split_into_statements() {
        assert_eq!(next_step(MIGRATIONS, &[], false), Ok(Next::Apply(0)));
        for m in MIGRATIONS {
            for backend in [Backend::Sqlite, Backend::Postgres] {
                let statements = m.statements(backend);
                // A migration may run nothing on one backend when its data step decides there.
                assert!(
                    !statements.is_empty() || m.data.is_some(),
                    "migration {} is empty",
                    m.version
                );
                assert!(
                    statements.iter().all(|s| !s.contains("--")),
                    "migration {} keeps a comment",
                    m.version
                );
            }
        }
    }

    #[test]
    fn statements_split_on_semicolons_after_comments_are_removed() {
        let m = m(
            1,
            "-- a comment; with a semicolon\nCREATE TABLE a (x BIGINT);\n\n  -- x\nCREATE INDEX i ON a (x);\n",
        );
        assert_eq!(
            m.statements(Backend::Sqlite),
            ["CREATE TABLE a (x BIGINT)", "CREATE INDEX i ON a (x)"]
        );
    }

    #[test]
    fn a_trigger_keeps_the_statements_of_its_body() {
        let m = m(
            1,
            "CREATE TABLE a (x BIGINT);\nCREATE TRIGGER t AFTER INSERT ON a BEGIN\n  INSERT INTO b VALUES (new.x);\n  INSERT INTO c VALUES (new.x);\nEND;\ncreate trigger u after delete on a begin delete from b; end;\nCREATE INDEX i ON a (x);",
        );
        assert_eq!(
            m.statements(Backend::Sqlite),
            [
                "CREATE TABLE a (x BIGINT)",
                "CREATE TRIGGER t AFTER INSERT ON a BEGIN\n  INSERT INTO b VALUES (new.x);\n  INSERT INTO c VALUES (new.x);\nEND",
                "create trigger u after delete on a begin delete from b; end",
                "CREATE INDEX i ON a (x)",
            ]
        );
    }

    #[test]
    fn each_backend_runs_its_own_text_and_the_checksum_covers_both() {
        let shared = m(1, "CREATE TABLE a (x BIGINT)");
        let split = Migration {
            postgres: Some("CREATE TABLE a (x BIGINT); CREATE INDEX i ON a (x)"),
            ..shared
        };
        assert_eq!(split.statements(Backend::Sqlite).len(), 1);
        assert_eq!(split.statements(Backend::Postgres).len(), 2);
        assert_eq!(shared.statements(Backend::Postgres).len(), 1);
        assert_ne!(split.checksum(), shared.checksum());
        let edited = Migration {
            postgres: Some("CREATE TABLE a (x BIGINT)"),
            ..shared
        };
        assert_ne!(split.checksum(), edited.checksum());
    }

    #[test]
    fn the_checksum_ignores_line_endings_only() {
        assert_eq!(m(1, "A;\nB").checksum(), m(1, "A;\r\nB").checksum());
        assert_ne!(m(1, "A;\nB").checksum(), m(1, "A;\nC").checksum());
    }

    fn copy_people(c: &mut Conn) -> Pin<Box<dyn Future<Output = Result<()>> + Send + '_>> {
        Box::pin(async move {
            c.execute("INSERT INTO people_copy (id) SELECT id FROM people")
                .await?;
            Ok(())
        })
    }

    fn refuse(_: &mut Conn) -> Pin<Box<dyn Future<Output = Result<()>> + Send + '_>> {
        Box::pin(async { Err(StoreError::Corrupt("data step failed".into())) })
    }

    async fn table_count(store: &crate::Store, table: &str) -> i64 {
        let mut c = store.reader().await.unwrap();
        let sql = format!("SELECT COUNT(*) FROM {table}");
        db::query(db::AssertSqlSafe(sql))
            .fetch_one(&mut c)
            .await
            .unwrap()
            .get(0)
    }

    #[tokio::test]
    async fn a_later_migration_runs_its_data_step_in_its_transaction_or_not_at_all() {
        let dir = std::env::temp_dir().join(format!("tenure-migrate-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.join("t.db").display());
        let store = crate::Store::connect_with(&url, &MIGRATIONS[..1])
            .await
            .unwrap();
        let mut tx = store.begin().await.unwrap();
        tx.conn()
            .execute("INSERT INTO people (id, status, data, updated_at) VALUES ('p1', 'active', '{}', 1)")
            .await
            .unwrap();
        tx.commit().await.unwrap();

        let copy = Migration {
            version: 2,
            name: "copy",
            sql: "CREATE TABLE people_copy (id TEXT PRIMARY KEY)",
            postgres: None,
            data: Some(copy_people),
        };
        let broken = Migration {
            version: 3,
            name: "broken",
            sql: "CREATE TABLE doomed (id TEXT); INSERT INTO doomed (id) VALUES ('x')",
            postgres: None,
            data: Some(refuse),
        };
        let two = [MIGRATIONS[0], copy];
        let at = store.migrate_with(&two, || 42).await.unwrap();
        assert_eq!((at.version, &*at.name), (2, "copy"));
        assert_eq!(table_count(&store, "people_copy").await, 1);

        let three = [MIGRATIONS[0], copy, broken];
        let err = store.migrate_with(&three, || 43).await.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
        // Nothing of migration 3 stayed: neither its table nor its record.
        let mut c = store.reader().await.unwrap();
        let applied = applied_migrations(&mut c).await.unwrap();
        assert_eq!(
            applied
                .iter()
                .map(|a| (a.version, a.applied_at))
                .collect::<Vec<_>>()[1..],
            [(2, 42)]
        );
        assert!(
            !table_exists(&mut c, Backend::Sqlite, "doomed")
                .await
                .unwrap()
        );
        drop(c);
        // Opened by the binary that knew only migration 1, the database is newer.
        let err = store
            .migrate_with(&MIGRATIONS[..1], || 44)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Migration(MigrationError::TooNew {
                    database: 2,
                    binary: 1
                })
            ),
            "{err}"
        );
        store.close().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
