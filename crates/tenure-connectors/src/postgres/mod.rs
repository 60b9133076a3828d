//! `postgres`: database roles as entitlements, for client data warehouses.
//!
//! Each person gets a login role (`role_prefix` + their HR id); each entitlement is a group role
//! (the entitlement's `name`) granted to it. Disabling sets `NOLOGIN` and ends the person's open
//! sessions; deleting optionally hands what the role owns to another role (`REASSIGN OWNED`),
//! drops its privileges (`DROP OWNED`) and drops the role. Roles tenure manages carry the
//! comment `tenure person <id>`, which is how `list_accounts` finds them. `inventory` lists
//! every role named with `role_prefix`, marked or not (one statement a page, keyset on the role
//! name), with the roles each is a member of.
//!
//! This is a separate connection to the target server, never tenure's own store. Identifiers
//! are always quoted ([`quote_ident`]); the few values PostgreSQL takes only as literals are
//! quoted by [`quote_literal`]. Errors are classified by SQLSTATE ([`classify`]).

use crate::settings::{self, Secret};
use crate::{
    Connector, ConnectorError, Inventory, InventoryAccount, InventoryPages, Op, RemoteAccount,
    attribute,
};
use async_trait::async_trait;
use serde::Deserialize;
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;
use tenure_core::{Entitlement, Person};

/// PostgreSQL silently truncates longer identifiers; tenure refuses them instead.
const MAX_IDENT_BYTES: usize = 63;
/// The comment that marks a role as managed by tenure, followed by the person id.
const MARK: &str = "tenure person ";

/// A `postgres` system's settings (the `[systems.settings]` table).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSettings {
    /// `postgres://user@host:port/database`, without a password.
    pub url: String,
    /// Environment variable holding the password of `url`'s user, if it needs one.
    pub password_env: Option<String>,
    /// Put before the person id to make the login role's name.
    #[serde(default)]
    pub role_prefix: String,
    /// On delete, `REASSIGN OWNED BY` the person's role to this role first.
    pub reassign_owned_to: Option<String>,
    /// On delete, `DROP OWNED BY` the role (its privileges and, without `reassign_owned_to`,
    /// its objects) before dropping it. Default true.
    #[serde(default = "yes")]
    pub drop_owned: bool,
    /// Connections to the target server.
    #[serde(default = "default_connections")]
    pub max_connections: u32,
    /// How long to wait for a connection or a statement.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn yes() -> bool {
    true
}
fn default_connections() -> u32 {
    4
}
fn default_timeout_ms() -> u64 {
    10_000
}

impl PostgresSettings {
    /// Reads and checks settings from a system's settings map.
    pub fn from_map(map: &serde_json::Map<String, serde_json::Value>) -> Result<Self, String> {
        settings::refuse_inline_secrets(map, &["password"])?;
        let s: PostgresSettings = settings::parse(map)?;
        let url = url::Url::parse(&s.url).map_err(|e| format!("url: {e}"))?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(format!(
                "url: scheme must be postgres, not `{}`",
                url.scheme()
            ));
        }
        if url.password().is_some() {
            return Err(
                "url: must not contain a password; name an environment variable in `password_env`"
                    .into(),
            );
        }
        if s.max_connections == 0 {
            return Err("max_connections must be at least 1".into());
        }
        if let Some(r) = &s.reassign_owned_to {
            check_ident(r).map_err(|e| format!("reassign_owned_to: {e}"))?;
        }
        Ok(s)
    }
}

/// Quotes an identifier the way PostgreSQL's `quote_ident` does, always: `"` around it and
/// every `"` inside doubled. Refuses what PostgreSQL could not store faithfully.
pub fn quote_ident(name: &str) -> Result<String, ConnectorError> {
    check_ident(name).map_err(ConnectorError::Permanent)?;
    Ok(format!("\"{}\"", name.replace('"', "\"\"")))
}

fn check_ident(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("an empty role name is not allowed".into());
    }
    if name.contains('\0') {
        return Err("a role name may not contain a NUL byte".into());
    }
    if name.len() > MAX_IDENT_BYTES {
        return Err(format!(
            "role name `{name}` is longer than PostgreSQL's {MAX_IDENT_BYTES} bytes"
        ));
    }
    Ok(())
}

/// Quotes a string literal the way PostgreSQL's `quote_literal` does (`E'...'` when it holds
/// a backslash), for the statements that take no bind parameters (`COMMENT ON`).
pub fn quote_literal(value: &str) -> String {
    let body = value.replace('\0', "").replace('\'', "''");
    if body.contains('\\') {
        format!("E'{}'", body.replace('\\', "\\\\"))
    } else {
        format!("'{body}'")
    }
}

/// Sorts a database error into retryable or permanent, by SQLSTATE class where there is one;
/// a connection that broke once the statement may have gone out leaves its outcome unknown.
pub fn classify(e: sqlx::Error) -> ConnectorError {
    match &e {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            let msg = format!("postgres {code}: {}", db.message());
            let retryable = code.starts_with("08") // connection exception
                || code.starts_with("53") // insufficient resources
                || code.starts_with("57P") // admin shutdown, cannot connect now
                || code == "40001" // serialization failure
                || code == "40P01" // deadlock
                || code == "55P03" // lock not available
                || code == "57014" // statement timeout
                // concurrent GRANTs of one role race on pg_auth_members
                || (code == "XX000" && db.message().contains("tuple concurrently updated"));
            if code == "08007" {
                // transaction resolution unknown: the connection broke during the commit.
                ConnectorError::Unknown(msg)
            } else if retryable {
                ConnectorError::retryable(msg)
            } else {
                ConnectorError::Permanent(msg)
            }
        }
        // No connection was made: the statement never went out.
        sqlx::Error::Io(io)
            if matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::NotFound
                    | std::io::ErrorKind::AddrNotAvailable
                    | std::io::ErrorKind::HostUnreachable
                    | std::io::ErrorKind::NetworkUnreachable
            ) =>
        {
            ConnectorError::retryable(format!("postgres: {e}"))
        }
        // The connection broke with the statement perhaps sent: it may have been applied.
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) => {
            ConnectorError::Unknown(format!("postgres: {e}"))
        }
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => ConnectorError::retryable(format!("postgres: {e}")),
        _ => ConnectorError::Permanent(format!("postgres: {e}")),
    }
}

fn sqlstate(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// `42710 duplicate_object`: the role already exists.
const DUPLICATE_OBJECT: &str = "42710";
/// `42704 undefined_object`: no such role.
const UNDEFINED_OBJECT: &str = "42704";

/// Drives roles on one PostgreSQL server.
pub struct PostgresConnector {
    pool: PgPool,
    settings: PostgresSettings,
}

impl PostgresConnector {
    /// A connector with a lazily connecting pool: tenure starts even when the server is down
    /// (calls fail as retryable and `health` says why).
    pub fn new(settings: PostgresSettings, password: Option<Secret>) -> Result<Self, String> {
        let mut opts = PgConnectOptions::from_str(&settings.url)
            .map_err(|e| format!("url: {e}"))?
            .application_name("tenure")
            .options([
                ("statement_timeout", settings.timeout_ms.to_string()),
                ("lock_timeout", settings.timeout_ms.to_string()),
            ]);
        if let Some(p) = &password {
            opts = opts.password(p.expose());
        }
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(Duration::from_millis(settings.timeout_ms))
            .connect_lazy_with(opts);
        Ok(PostgresConnector { pool, settings })
    }

    /// Builds the connector from a system's settings map, reading the password from the
    /// environment.
    pub fn from_map(map: &serde_json::Map<String, serde_json::Value>) -> Result<Self, String> {
        let s = PostgresSettings::from_map(map)?;
        let password = Secret::from_optional_env("password_env", s.password_env.as_deref())?;
        PostgresConnector::new(s, password)
    }

    /// The login role's name for a person.
    pub fn role_name(&self, person_id: &str) -> String {
        format!("{}{}", self.settings.role_prefix, person_id)
    }

    fn role(&self, person_id: &str) -> Result<String, ConnectorError> {
        quote_ident(&self.role_name(person_id))
    }

    async fn exec(&self, sql: &str) -> Result<(), sqlx::Error> {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    async fn comment(&self, person: &Person) -> Result<(), ConnectorError> {
        let sql = format!(
            "COMMENT ON ROLE {} IS {}",
            self.role(&person.id)?,
            quote_literal(&format!("{MARK}{}", person.id))
        );
        self.exec(&sql).await.map_err(classify)
    }

    async fn terminate_sessions(&self, person_id: &str) -> Result<(), ConnectorError> {
        sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE usename = $1 AND pid <> pg_backend_pid()",
        )
        .bind(self.role_name(person_id))
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        Ok(())
    }
}

/// Every role named with the prefix, in role name order, `page_size` per statement: the
/// roles after the last name seen, each with its comment and the roles it is a member of.
struct PostgresPages<'a> {
    connector: &'a PostgresConnector,
    page_size: usize,
    /// The last role name of the previous page; `None` before the first.
    after: Option<String>,
    done: bool,
}

/// One page of roles. `name` compares and sorts bytewise, so the keyset follows the index on
/// `rolname` from the prefix on; roles made with the cluster (the bootstrap superuser, `pg_*`, oids below
/// 16384, `FirstNormalObjectId`) are never accounts. A membership granted by several grantors
/// (PostgreSQL 16) counts once.
const INVENTORY_PAGE: &str = "
    SELECT r.rolname::text, r.rolcanlogin, d.description,
           COALESCE(m.groups, '{}'::text[])
      FROM (SELECT oid, rolname, rolcanlogin FROM pg_roles
             WHERE rolname >= $1::name AND starts_with(rolname, $1)
               AND rolname > $2::name AND oid >= 16384
             ORDER BY rolname LIMIT $3) r
      LEFT JOIN pg_shdescription d
        ON d.objoid = r.oid AND d.classoid = 'pg_authid'::regclass
      LEFT JOIN LATERAL (
            SELECT array_agg(DISTINCT g.rolname::text ORDER BY g.rolname::text) AS groups
              FROM pg_auth_members a JOIN pg_roles g ON g.oid = a.roleid
             WHERE a.member = r.oid) m ON true
     ORDER BY r.rolname";

#[async_trait]
impl InventoryPages for PostgresPages<'_> {
    async fn next_page(&mut self) -> Result<Option<Vec<InventoryAccount>>, ConnectorError> {
        if self.done {
            return Ok(None);
        }
        let prefix = &self.connector.settings.role_prefix;
        // Every name is greater than the empty one (a role name is never empty).
        let after = self.after.clone().unwrap_or_default();
        let rows = sqlx::query(INVENTORY_PAGE)
            .bind(prefix)
            .bind(&after)
            .bind(i64::try_from(self.page_size).unwrap_or(i64::MAX))
            .fetch_all(&self.connector.pool)
            .await
            .map_err(classify)?;
        if rows.len() < self.page_size {
            self.done = true;
        }
        let page = rows
            .iter()
            .map(|r| {
                let key: String = r.try_get(0)?;
                let description: Option<String> = r.try_get(2)?;
                let username = key.strip_prefix(prefix.as_str()).unwrap_or(&key);
                Ok(InventoryAccount {
                    person_id: description
                        .as_deref()
                        .and_then(|d| d.strip_prefix(MARK))
                        .map(str::to_string),
                    enabled: r.try_get(1)?,
                    attributes: [(attribute::USERNAME.to_string(), username.to_string())].into(),
                    memberships: r.try_get(3)?,
                    key,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(classify)?;
        let Some(last) = page.last() else {
            self.done = true;
            return Ok(None);
        };
        self.after = Some(last.key.clone());
        Ok(Some(page))
    }
}

#[async_trait]
impl Connector for PostgresConnector {
    async fn create_account(&self, _op: &Op, person: &Person) -> Result<(), ConnectorError> {
        let sql = format!("CREATE ROLE {} LOGIN", self.role(&person.id)?);
        match self.exec(&sql).await {
            Ok(()) => {}
            Err(e) if sqlstate(&e).as_deref() == Some(DUPLICATE_OBJECT) => {}
            Err(e) => return Err(classify(e)),
        }
        self.comment(person).await
    }

    async fn update_account(&self, _op: &Op, person: &Person) -> Result<(), ConnectorError> {
        // A role has no attributes of the person's beyond the marker comment.
        self.comment(person).await
    }

    async fn enable_account(&self, _op: &Op, person: &Person) -> Result<(), ConnectorError> {
        let sql = format!("ALTER ROLE {} LOGIN", self.role(&person.id)?);
        self.exec(&sql).await.map_err(classify)
    }

    async fn disable_account(&self, _op: &Op, person: &Person) -> Result<(), ConnectorError> {
        let sql = format!("ALTER ROLE {} NOLOGIN", self.role(&person.id)?);
        match self.exec(&sql).await {
            Ok(()) => {}
            Err(e) if sqlstate(&e).as_deref() == Some(UNDEFINED_OBJECT) => return Ok(()),
            Err(e) => return Err(classify(e)),
        }
        // After NOLOGIN, so a session cannot slip in between.
        self.terminate_sessions(&person.id).await
    }

    async fn delete_account(&self, _op: &Op, person: &Person) -> Result<(), ConnectorError> {
        let role = self.role(&person.id)?;
        self.terminate_sessions(&person.id).await?;
        let mut sqls = Vec::new();
        if let Some(to) = &self.settings.reassign_owned_to {
            sqls.push(format!("REASSIGN OWNED BY {role} TO {}", quote_ident(to)?));
        }
        if self.settings.drop_owned {
            sqls.push(format!("DROP OWNED BY {role}"));
        }
        for sql in sqls {
            match self.exec(&sql).await {
                Ok(()) => {}
                Err(e) if sqlstate(&e).as_deref() == Some(UNDEFINED_OBJECT) => return Ok(()),
                Err(e) => return Err(classify(e)),
            }
        }
        self.exec(&format!("DROP ROLE IF EXISTS {role}"))
            .await
            .map_err(classify)
    }

    async fn grant(
        &self,
        _op: &Op,
        person: &Person,
        entitlement: &Entitlement,
    ) -> Result<(), ConnectorError> {
        // Granting a membership already held is a notice, not an error, in PostgreSQL.
        let sql = format!(
            "GRANT {} TO {}",
            quote_ident(&entitlement.name)?,
            self.role(&person.id)?
        );
        self.exec(&sql).await.map_err(classify)
    }

    async fn revoke(
        &self,
        _op: &Op,
        person: &Person,
        entitlement: &Entitlement,
    ) -> Result<(), ConnectorError> {
        let sql = format!(
            "REVOKE {} FROM {}",
            quote_ident(&entitlement.name)?,
            self.role(&person.id)?
        );
        match self.exec(&sql).await {
            Ok(()) => Ok(()),
            // The person's role (or the group) is gone: the membership is too.
            Err(e) if sqlstate(&e).as_deref() == Some(UNDEFINED_OBJECT) => Ok(()),
            Err(e) => Err(classify(e)),
        }
    }

    async fn list_accounts(&self) -> Result<Vec<RemoteAccount>, ConnectorError> {
        let rows = sqlx::query(
            "SELECT substr(d.description, $1), r.rolcanlogin
               FROM pg_roles r JOIN pg_shdescription d
                 ON d.objoid = r.oid AND d.classoid = 'pg_authid'::regclass
              WHERE starts_with(d.description, $2) AND starts_with(r.rolname, $3)
              ORDER BY r.rolname",
        )
        .bind(MARK.len() as i32 + 1)
        .bind(MARK)
        .bind(&self.settings.role_prefix)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        rows.iter()
            .map(|r| {
                Ok(RemoteAccount {
                    person_id: r.try_get(0)?,
                    enabled: r.try_get(1)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(classify)
    }

    async fn list_memberships(&self, person_id: &str) -> Result<Vec<String>, ConnectorError> {
        sqlx::query_scalar(
            "SELECT g.rolname FROM pg_auth_members m
               JOIN pg_roles g ON g.oid = m.roleid
               JOIN pg_roles u ON u.oid = m.member
              WHERE u.rolname = $1 ORDER BY g.rolname",
        )
        .bind(self.role_name(person_id))
        .fetch_all(&self.pool)
        .await
        .map_err(classify)
    }

    fn account_key(&self, person_id: &str) -> Option<String> {
        Some(self.role_name(person_id))
    }

    fn subject_of<'k>(&self, key: &'k str) -> Option<&'k str> {
        key.strip_prefix(self.settings.role_prefix.as_str())
            .filter(|id| !id.is_empty())
    }

    async fn inventory(&self, page_size: usize) -> Result<Inventory<'_>, ConnectorError> {
        Ok(Inventory::Pages(Box::new(PostgresPages {
            connector: self,
            page_size: page_size.max(1),
            after: None,
            done: false,
        })))
    }

    async fn health(&self) -> Result<(), ConnectorError> {
        self.exec("SELECT 1").await.map_err(classify)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_connection_leaves_the_outcome_unknown_but_a_refused_one_does_not() {
        let io = |kind| sqlx::Error::Io(std::io::Error::from(kind));
        let refused = classify(io(std::io::ErrorKind::ConnectionRefused));
        assert!(refused.is_retryable() && !refused.may_have_acted());
        let reset = classify(io(std::io::ErrorKind::ConnectionReset));
        assert!(reset.is_retryable() && reset.may_have_acted());
        let timed_out = classify(sqlx::Error::PoolTimedOut);
        assert!(timed_out.is_retryable() && !timed_out.may_have_acted());
    }

    #[test]
    fn identifiers_are_always_quoted() {
        assert_eq!(quote_ident("ada").unwrap(), "\"ada\"");
        assert_eq!(
            quote_ident("x\"; DROP ROLE postgres; --").unwrap(),
            "\"x\"\"; DROP ROLE postgres; --\""
        );
        assert!(quote_ident("").is_err());
        assert!(quote_ident("a\0b").is_err());
        assert!(quote_ident(&"a".repeat(64)).is_err());
        assert!(quote_ident(&"a".repeat(63)).is_ok());
    }

    #[test]
    fn literals_are_quoted() {
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\b'"), "E'a\\\\b'''");
    }

    #[test]
    fn settings_refuse_passwords_in_the_file() {
        let map = |v: serde_json::Value| v.as_object().unwrap().clone();
        let e = PostgresSettings::from_map(&map(
            serde_json::json!({"url": "postgres://u:secret@h/db"}),
        ))
        .unwrap_err();
        assert!(e.contains("password_env"), "{e}");
        assert!(!e.contains("secret"), "{e}");
        let e = PostgresSettings::from_map(&map(
            serde_json::json!({"url": "postgres://u@h/db", "password": "x"}),
        ))
        .unwrap_err();
        assert!(e.contains("password_env"), "{e}");
        let e = PostgresSettings::from_map(&map(serde_json::json!({"url": "http://h/db"})))
            .unwrap_err();
        assert!(e.contains("scheme"), "{e}");
        let e = PostgresSettings::from_map(&map(
            serde_json::json!({"url": "postgres://u@h/db", "colour": 1}),
        ))
        .unwrap_err();
        assert!(e.contains("colour"), "{e}");
        let s = PostgresSettings::from_map(&map(serde_json::json!({"url": "postgres://u@h/db"})))
            .unwrap();
        assert!(s.drop_owned);
    }
}
