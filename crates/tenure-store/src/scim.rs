//! Storage of the SCIM server: user documents, the value index that filters run on, and the
//! outbox of lifecycle events that earlier versions filled (read and emptied at start only).
//!
//! The store knows nothing of SCIM schemas: the API resolves attribute paths and normalizes
//! values, and hands over a [`Cond`] tree whose names and values are already in the form the
//! index holds. Every value reaches the database as a bound parameter; only fixed SQL text
//! and placeholders are ever concatenated.

use crate::db::{self, Conn};
use crate::{Backend, Result};
use std::fmt::Write as _;

/// One indexed value of a resource: `attr` (lowercase, extension attributes prefixed with
/// their schema URN), `idx` (the position in a multi-valued attribute, else 0), `sub`
/// (lowercase sub-attribute name, or empty) and the normalized value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedValue {
    /// Attribute name, normalized.
    pub attr: String,
    /// Position within a multi-valued attribute.
    pub idx: i64,
    /// Sub-attribute name, normalized, or empty.
    pub sub: String,
    /// The value, normalized.
    pub val: String,
}

/// A comparison, in the terms of the value index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CondOp {
    /// Equal.
    Eq,
    /// Not equal (also true when the attribute has no value).
    Ne,
    /// Contains.
    Co,
    /// Starts with.
    Sw,
    /// Ends with.
    Ew,
    /// Greater than (by code point order of the normalized text).
    Gt,
    /// Greater or equal.
    Ge,
    /// Less than.
    Lt,
    /// Less or equal.
    Le,
}

/// A filter over the value index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cond {
    /// Some value at `attr`/`sub` compares true with `val`.
    Cmp {
        /// Attribute.
        attr: String,
        /// Sub-attribute or empty.
        sub: String,
        /// Comparison.
        op: CondOp,
        /// Normalized value.
        val: String,
    },
    /// Some value at `attr`/`sub` exists.
    Present {
        /// Attribute.
        attr: String,
        /// Sub-attribute or empty.
        sub: String,
    },
    /// All hold.
    And(Vec<Cond>),
    /// One holds.
    Or(Vec<Cond>),
    /// Does not hold.
    Not(Box<Cond>),
    /// One element of the multi-valued `attr` satisfies `cond`, whose `Cmp`/`Present` name
    /// sub-attributes of that same element (their `attr` is ignored).
    Element {
        /// The multi-valued attribute.
        attr: String,
        /// The condition on one element.
        cond: Box<Cond>,
    },
}

/// How to order a listing: by the smallest value of `attr`/`sub`, then by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    /// Attribute.
    pub attr: String,
    /// Sub-attribute or empty.
    pub sub: String,
    /// Descending.
    pub descending: bool,
}

/// A stored SCIM user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimUserRow {
    /// The resource id (also the person id).
    pub id: String,
    /// userName, lowercased (unique among live users).
    pub user_name_ci: String,
    /// `none`, `active` or `left`: the lifecycle tenure made of the user so far.
    pub lifecycle: String,
    /// Version, bumped on every change; the ETag.
    pub version: i64,
    /// Created (epoch ms).
    pub created_at: i64,
    /// Last modified (epoch ms).
    pub updated_at: i64,
    /// The resource document (JSON), without `id` and `meta`.
    pub doc: String,
}

/// A lifecycle event an earlier version queued for the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// Idempotency key of the event.
    pub key: String,
    /// The SCIM resource that produced it.
    pub resource_id: String,
    /// The event (JSON).
    pub event: String,
}

/// `column op p` (`p` a placeholder), in `backend`'s dialect, comparing by code point order.
pub(crate) fn compare_sql(backend: Backend, column: &str, op: CondOp, p: &str) -> String {
    let pg = backend == Backend::Postgres;
    let collate = if pg { " COLLATE \"C\"" } else { "" };
    match op {
        CondOp::Eq | CondOp::Ne => format!("{column} = {p}"),
        CondOp::Co if pg => format!("strpos({column}, {p}) > 0"),
        CondOp::Co => format!("instr({column}, {p}) > 0"),
        CondOp::Sw if pg => format!("starts_with({column}, {p})"),
        CondOp::Sw => format!("substr({column}, 1, length({p})) = {p}"),
        CondOp::Ew if pg => format!("right({column}, length({p})) = {p}"),
        CondOp::Ew => format!(
            "length({column}) >= length({p}) AND substr({column}, length({column}) - length({p}) + 1) = {p}"
        ),
        CondOp::Gt => format!("{column}{collate} > {p}"),
        CondOp::Ge => format!("{column}{collate} >= {p}"),
        CondOp::Lt => format!("{column}{collate} < {p}"),
        CondOp::Le => format!("{column}{collate} <= {p}"),
    }
}

/// SQL text and the parameters it binds, in order.
struct Sql {
    text: String,
    binds: Vec<String>,
    backend: Backend,
}

impl Sql {
    fn param(&mut self, v: &str) -> String {
        self.binds.push(v.to_string());
        format!("${}", self.binds.len())
    }

    /// `column op $n`, in each dialect, comparing by code point order.
    fn compare(&mut self, column: &str, op: CondOp, val: &str) -> String {
        let p = self.param(val);
        compare_sql(self.backend, column, op, &p)
    }

    /// The users the per-user index finds for `search` (see [`user_search_query`]).
    fn user_search(&mut self, search: UserSearch<'_>) {
        let p = self.param(&search.param(self.backend));
        let _ = write!(
            self.text,
            "{} IN ({})",
            user_key(self.backend),
            search.keys(self.backend, &p)
        );
    }

    /// Which rows of `scim_values {alias}` hold a value of `attr`/`sub` comparing true with
    /// `val`. A substring comparison (`co`, `sw`, `ew`) whose value the trigram index can
    /// answer ([`trigram_searchable`]) is looked up there first and then checked exactly;
    /// any other comparison reads the attribute's values through `scim_values_lookup`.
    fn value_rows(&mut self, alias: &str, attr: &str, sub: &str, op: CondOp, val: &str) -> String {
        let a = self.param(attr);
        let s = self.param(sub);
        let column = format!("{alias}.val");
        if !matches!(op, CondOp::Co | CondOp::Sw | CondOp::Ew)
            || !trigram_searchable(self.backend, val)
        {
            let cmp = self.compare(&column, op, val);
            return format!("{alias}.attr = {a} AND {alias}.sub = {s} AND {cmp}");
        }
        match self.backend {
            Backend::Sqlite => {
                // The FTS5 table names the rows holding the text; `+` keeps the planner from
                // reading the attribute's values by `scim_values_lookup` instead.
                let phrase = self.param(&format!("\"{}\"", val.replace('"', "\"\"")));
                let cmp = self.compare(&column, op, val);
                format!(
                    "{alias}.id IN (SELECT rowid FROM scim_values_trigram WHERE scim_values_trigram MATCH {phrase}) AND +{alias}.attr = {a} AND +{alias}.sub = {s} AND {cmp}"
                )
            }
            Backend::Postgres => {
                let escaped = crate::filter::like_escaped(val);
                let pattern = match op {
                    CondOp::Co => format!("%{escaped}%"),
                    CondOp::Sw => format!("{escaped}%"),
                    _ => format!("%{escaped}"),
                };
                let p = self.param(&pattern);
                // The planner weighs the trigram index against reading the attribute's values
                // (`scim_values_lookup`) by how common the pattern's trigrams are.
                format!(
                    "{alias}.attr = {a} AND {alias}.sub = {s} AND {column} LIKE {p} ESCAPE '\\'"
                )
            }
        }
    }

    /// A predicate on `scim_users u`.
    fn cond(&mut self, c: &Cond) {
        match c {
            Cond::Cmp { attr, sub, op, val } => {
                if let Some(search) = user_search_query(self.backend, attr, sub, *op, val) {
                    self.user_search(search);
                    return;
                }
                let op2 = if *op == CondOp::Ne { CondOp::Eq } else { *op };
                let rows = self.value_rows("v", attr, sub, op2, val);
                let not = if *op == CondOp::Ne { "NOT " } else { "" };
                let _ = write!(
                    self.text,
                    "u.id {not}IN (SELECT v.resource_id FROM scim_values v WHERE {rows})"
                );
            }
            Cond::Present { attr, sub } => {
                let a = self.param(attr);
                let s = self.param(sub);
                let _ = write!(
                    self.text,
                    "u.id IN (SELECT v.resource_id FROM scim_values v WHERE v.attr = {a} AND v.sub = {s})"
                );
            }
            Cond::And(cs) | Cond::Or(cs) => {
                let joiner = if matches!(c, Cond::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                self.text.push('(');
                for (i, c) in cs.iter().enumerate() {
                    if i > 0 {
                        self.text.push_str(joiner);
                    }
                    self.cond(c);
                }
                self.text.push(')');
            }
            Cond::Not(c) => {
                self.text.push_str("NOT (");
                self.cond(c);
                self.text.push(')');
            }
            Cond::Element { attr, cond } => {
                // One comparison (other than `ne`) holds of an element exactly when the row of
                // its sub-attribute compares true: that row alone answers.
                if let Cond::Cmp { sub, op, val, .. } = cond.as_ref()
                    && *op != CondOp::Ne
                {
                    if let Some(search) = user_search_query(self.backend, attr, sub, *op, val) {
                        self.user_search(search);
                        return;
                    }
                    let rows = self.value_rows("e", attr, sub, *op, val);
                    let _ = write!(
                        self.text,
                        "u.id IN (SELECT e.resource_id FROM scim_values e WHERE {rows})"
                    );
                    return;
                }
                // An element needing a substring of one of its sub-attributes is found from
                // the row holding it (`e` then names that row's element, as below).
                let rows = match substring_needed(cond) {
                    Some((sub, op, val)) => self.value_rows("e", attr, sub, op, val),
                    None => {
                        let a = self.param(attr);
                        format!("e.attr = {a}")
                    }
                };
                let _ = write!(
                    self.text,
                    "u.id IN (SELECT e.resource_id FROM scim_values e WHERE {rows} AND "
                );
                self.element(cond);
                self.text.push(')');
            }
        }
    }

    /// A predicate on one element `e` of a multi-valued attribute.
    fn element(&mut self, c: &Cond) {
        match c {
            Cond::Cmp { sub, op, val, .. } => {
                let s = self.param(sub);
                let op2 = if *op == CondOp::Ne { CondOp::Eq } else { *op };
                // Checked against the element's own rows, which `scim_values_resource` finds.
                let cmp = self.compare("w.val", op2, val);
                let not = if *op == CondOp::Ne { "NOT " } else { "" };
                let _ = write!(
                    self.text,
                    "{not}EXISTS (SELECT 1 FROM scim_values w WHERE w.resource_id = e.resource_id AND w.attr = e.attr AND w.idx = e.idx AND w.sub = {s} AND {cmp})"
                );
            }
            Cond::Present { sub, .. } => {
                let s = self.param(sub);
                let _ = write!(
                    self.text,
                    "EXISTS (SELECT 1 FROM scim_values w WHERE w.resource_id = e.resource_id AND w.attr = e.attr AND w.idx = e.idx AND w.sub = {s})"
                );
            }
            Cond::And(cs) | Cond::Or(cs) => {
                let joiner = if matches!(c, Cond::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                self.text.push('(');
                for (i, c) in cs.iter().enumerate() {
                    if i > 0 {
                        self.text.push_str(joiner);
                    }
                    self.element(c);
                }
                self.text.push(')');
            }
            Cond::Not(c) => {
                self.text.push_str("NOT (");
                self.element(c);
                self.text.push(')');
            }
            // The API never nests value paths (the grammar forbids it); treat one as its body.
            Cond::Element { cond, .. } => self.element(cond),
        }
    }
}

/// Whether the trigram index can find the values holding `val`: it needs three characters
/// (SQLite's trigram tokenizer), and on PostgreSQL three letters or digits in a row (pg_trgm
/// takes its trigrams from words; a pattern without one would read the whole index).
fn trigram_searchable(backend: Backend, val: &str) -> bool {
    match backend {
        Backend::Sqlite => val.chars().count() >= 3,
        Backend::Postgres => {
            let mut run = 0;
            val.chars().any(|c| {
                run = if c.is_alphanumeric() { run + 1 } else { 0 };
                run >= 3
            })
        }
    }
}

/// The attributes (name, sub-attribute) whose `co` the per-user trigram index answers, each
/// with its column in the index (SQLite's `scim_users_trigram`, migration 4; PostgreSQL's
/// `scim_users_search`, migration 6), in the tables' column order.
const USER_SEARCH: [(&str, &str, &str); 6] = [
    ("username", "", "username"),
    ("displayname", "", "displayname"),
    ("emails", "value", "emails"),
    ("name", "formatted", "name_formatted"),
    ("name", "familyname", "name_familyname"),
    ("name", "givenname", "name_givenname"),
];

/// What separates a user's several values of one attribute in its per-user index column:
/// a text without it cannot match across two values.
const VALUE_SEPARATOR: char = '\n';

/// A comparison the per-user index answers alone: a `co` on one of [`USER_SEARCH`]'s
/// attributes (its index column here) with the text `val`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct UserSearch<'a> {
    column: &'static str,
    val: &'a str,
}

impl UserSearch<'_> {
    /// What the index query binds: on SQLite the FTS5 query (column filter and phrase; a
    /// trigram phrase matches where its trigrams stand one after another, which is where the
    /// text is), on PostgreSQL the `LIKE` pattern. Case is kept: the values are normalized
    /// already.
    fn param(&self, backend: Backend) -> String {
        match backend {
            Backend::Sqlite => format!(
                "{{{}}} : \"{}\"",
                self.column,
                self.val.replace('"', "\"\"")
            ),
            Backend::Postgres => format!("%{}%", crate::filter::like_escaped(self.val)),
        }
    }

    /// The keys ([`user_key`]) of the users holding the text, bound as `p`.
    fn keys(&self, backend: Backend, p: &str) -> String {
        match backend {
            Backend::Sqlite => {
                format!("SELECT rowid FROM scim_users_trigram WHERE scim_users_trigram MATCH {p}")
            }
            Backend::Postgres => format!(
                "SELECT user_id FROM scim_users_search WHERE {} LIKE {p} ESCAPE '\\'",
                self.column
            ),
        }
    }
}

/// The column of `scim_users u` the per-user index is keyed by: `seq` on SQLite (FTS5 rows
/// are numbered), the id on PostgreSQL. Each is also the backend's listing order.
fn user_key(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "u.seq",
        Backend::Postgres => "u.id",
    }
}

/// The index lookup that finds exactly the users holding `val` in a value of `attr`/`sub`,
/// when the per-user index can answer this comparison alone: a `co` on one of
/// [`USER_SEARCH`]'s attributes whose text the trigram index can search
/// ([`trigram_searchable`]) and which holds no separator. No row of `scim_users` or
/// `scim_values` needs reading to check it.
fn user_search_query<'a>(
    backend: Backend,
    attr: &str,
    sub: &str,
    op: CondOp,
    val: &'a str,
) -> Option<UserSearch<'a>> {
    if op != CondOp::Co || val.contains(VALUE_SEPARATOR) || !trigram_searchable(backend, val) {
        return None;
    }
    let (_, _, column) = USER_SEARCH
        .iter()
        .find(|(a, s, _)| *a == attr && *s == sub)?;
    Some(UserSearch { column, val })
}

/// The index lookup of a filter that is one comparison [`user_search_query`] answers: its
/// matches are then counted in the index alone, which holds one row per live user.
fn user_search_only(backend: Backend, filter: Option<&Cond>) -> Option<UserSearch<'_>> {
    match filter? {
        Cond::Cmp { attr, sub, op, val } => user_search_query(backend, attr, sub, *op, val),
        Cond::Element { attr, cond } => match cond.as_ref() {
            Cond::Cmp { sub, op, val, .. } => user_search_query(backend, attr, sub, *op, val),
            _ => None,
        },
        _ => None,
    }
}

/// A user's row of the per-user index: for each of [`USER_SEARCH`]'s attributes, its values
/// joined by [`VALUE_SEPARATOR`] (`None` without one).
fn user_search_row(values: &[IndexedValue]) -> Vec<Option<String>> {
    USER_SEARCH
        .iter()
        .map(|(attr, sub, _)| {
            let vals: Vec<&str> = values
                .iter()
                .filter(|v| v.attr == *attr && v.sub == *sub)
                .map(|v| v.val.as_str())
                .collect();
            (!vals.is_empty()).then(|| vals.join(&VALUE_SEPARATOR.to_string()))
        })
        .collect()
}

/// `key, username, displayname, ...`: the columns of the per-user index a row is written to,
/// `key` its key column (`rowid` on SQLite, `user_id` on PostgreSQL).
fn user_search_columns(key: &str) -> String {
    let mut cols = String::from(key);
    for (_, _, column) in USER_SEARCH {
        cols.push_str(", ");
        cols.push_str(column);
    }
    cols
}

/// A user's entry in the per-user index: its id, its `seq` (SQLite's key) and its values.
type UserEntry<'a> = (&'a str, i64, &'a [IndexedValue]);

/// Writes the per-user index rows of users: one per user, keyed by its `seq` on SQLite and by
/// its id on PostgreSQL.
async fn index_user_search(c: &mut Conn, users: &[UserEntry<'_>]) -> Result<()> {
    let sqlite = c.is_sqlite();
    let (table, key) = if sqlite {
        ("scim_users_trigram", "rowid")
    } else {
        ("scim_users_search", "user_id")
    };
    for chunk in users.chunks(500) {
        let mut sql = format!("INSERT INTO {table} ({}) VALUES ", user_search_columns(key));
        crate::queries::push_placeholders(&mut sql, chunk.len(), USER_SEARCH.len() + 1, sqlite);
        let mut q = db::query(db::AssertSqlSafe(sql));
        for (id, seq, values) in chunk {
            q = if sqlite {
                q.bind(*seq)
            } else {
                q.bind(id.to_string())
            };
            for column in user_search_row(values) {
                q = q.bind(column);
            }
        }
        q.execute(&mut *c).await?;
    }
    Ok(())
}

/// Takes a stored user out of the per-user index; returns its `seq` (0 on PostgreSQL, which
/// keys the index by id).
async fn unindex_user_search(c: &mut Conn, id: &str) -> Result<i64> {
    if !c.is_sqlite() {
        db::query("DELETE FROM scim_users_search WHERE user_id = $1")
            .bind(id)
            .execute(&mut *c)
            .await?;
        return Ok(0);
    }
    let seq: i64 = db::query("SELECT seq FROM scim_users WHERE id = $1")
        .bind(id)
        .fetch_one(&mut *c)
        .await?
        .try_get(0)?;
    db::query("DELETE FROM scim_users_trigram WHERE rowid = $1")
        .bind(seq)
        .execute(&mut *c)
        .await?;
    Ok(seq)
}

/// Migration 4's data step: on SQLite, numbers the users (`seq`, in id order for those stored
/// before) and fills the per-user trigram index from their stored values. Safe to run again
/// over its own result: the column is added once, only users without a number get one, and
/// the index is emptied before it is filled. Nothing on PostgreSQL.
pub(crate) fn user_search_index(
    c: &mut Conn,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + '_>> {
    Box::pin(async move {
        if !c.is_sqlite() {
            return Ok(());
        }
        crate::migrate::sqlite_add_column(c, "scim_users", "seq", "INTEGER").await?;
        let max: i64 = db::query("SELECT COALESCE(MAX(seq), 0) FROM scim_users")
            .fetch_one(&mut *c)
            .await?
            .try_get(0)?;
        db::query(
            "UPDATE scim_users SET seq = $1 + r.n
             FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM scim_users WHERE seq IS NULL) AS r
             WHERE scim_users.id = r.id",
        )
        .bind(max)
        .execute(&mut *c)
        .await?;
        db::query("CREATE UNIQUE INDEX IF NOT EXISTS scim_users_seq ON scim_users (seq)")
            .execute(&mut *c)
            .await?;
        db::query("INSERT INTO scim_users_trigram (scim_users_trigram) VALUES ('delete-all')")
            .execute(&mut *c)
            .await?;
        let mut sql = format!(
            "INSERT INTO scim_users_trigram ({}) SELECT u.seq",
            user_search_columns("rowid")
        );
        for (attr, sub, _) in USER_SEARCH {
            // `+` keeps the planner on `scim_values_resource` (one user's values), not on
            // reading every value of the attribute for each user.
            let _ = write!(
                sql,
                ", (SELECT group_concat(v.val, char(10)) FROM scim_values v
                    WHERE v.resource_id = u.id AND +v.attr = '{attr}' AND +v.sub = '{sub}')"
            );
        }
        sql.push_str(" FROM scim_users u WHERE u.deleted = 0");
        db::query(db::AssertSqlSafe(sql)).execute(&mut *c).await?;
        Ok(())
    })
}

/// Migration 6's data step: on PostgreSQL, fills the per-user trigram index
/// (`scim_users_search`) from the stored values of the live users. Safe to run again over its
/// own result: the table is emptied before it is filled. Nothing on SQLite (migration 4).
pub(crate) fn user_search_index_postgres(
    c: &mut Conn,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + '_>> {
    Box::pin(async move {
        if c.is_sqlite() {
            return Ok(());
        }
        db::query("DELETE FROM scim_users_search")
            .execute(&mut *c)
            .await?;
        let mut sql = format!(
            "INSERT INTO scim_users_search ({}) SELECT u.id",
            user_search_columns("user_id")
        );
        for (attr, sub, _) in USER_SEARCH {
            let _ = write!(
                sql,
                ", (SELECT string_agg(v.val, chr(10) ORDER BY v.idx, v.val) FROM scim_values v
                    WHERE v.resource_id = u.id AND v.attr = '{attr}' AND v.sub = '{sub}')"
            );
        }
        sql.push_str(" FROM scim_users u WHERE u.deleted = 0");
        db::query(db::AssertSqlSafe(sql)).execute(&mut *c).await?;
        Ok(())
    })
}

/// The substring comparison (sub-attribute, operator, value) that an element condition cannot
/// hold without: the condition itself, or one of the conditions it joins with `and`.
fn substring_needed(c: &Cond) -> Option<(&str, CondOp, &str)> {
    match c {
        Cond::Cmp { sub, op, val, .. } if matches!(op, CondOp::Co | CondOp::Sw | CondOp::Ew) => {
            Some((sub, *op, val))
        }
        Cond::And(cs) => cs.iter().find_map(substring_needed),
        Cond::Element { cond, .. } => substring_needed(cond),
        _ => None,
    }
}

pub(crate) fn backend_of(c: &Conn) -> Backend {
    if c.is_sqlite() {
        Backend::Sqlite
    } else {
        Backend::Postgres
    }
}

fn user_row(r: &db::Row) -> Result<ScimUserRow> {
    Ok(ScimUserRow {
        id: r.try_get("id")?,
        user_name_ci: r.try_get("user_name_ci")?,
        lifecycle: r.try_get("lifecycle")?,
        version: r.try_get("version")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        doc: r.try_get("doc")?,
    })
}

const USER_COLS: &str =
    "u.id, u.user_name_ci, u.lifecycle, u.version, u.created_at, u.updated_at, u.doc";

/// A live (not deleted) SCIM user.
pub async fn scim_user(c: &mut Conn, id: &str) -> Result<Option<ScimUserRow>> {
    let sql = format!("SELECT {USER_COLS} FROM scim_users u WHERE u.id = $1 AND u.deleted = 0");
    let row = db::query(db::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut *c)
        .await?;
    row.as_ref().map(user_row).transpose()
}

/// A live SCIM user with the entitlements its person holds in `granted` state (its SCIM
/// `groups`), in one query.
pub async fn scim_user_with_groups(
    c: &mut Conn,
    id: &str,
) -> Result<Option<(ScimUserRow, Vec<String>)>> {
    let sql = format!(
        "SELECT {USER_COLS}, g.entitlement FROM scim_users u
         LEFT JOIN grants g ON g.person_id = u.id AND g.state = 'granted'
         WHERE u.id = $1 AND u.deleted = 0 ORDER BY g.entitlement"
    );
    let rows = db::query(db::AssertSqlSafe(sql))
        .bind(id)
        .fetch_all(&mut *c)
        .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let user = user_row(first)?;
    let mut groups = Vec::new();
    for r in &rows {
        if let Some(e) = r.try_get::<Option<String>, _>(7)? {
            groups.push(e);
        }
    }
    Ok(Some((user, groups)))
}

/// The entitlements each of `people` holds in `granted` state, in entitlement order (their
/// SCIM `groups`); people holding none are absent.
pub async fn granted_entitlements(
    c: &mut Conn,
    people: &[&str],
) -> Result<std::collections::HashMap<String, Vec<String>>> {
    let mut out: std::collections::HashMap<String, Vec<String>> = Default::default();
    for chunk in people.chunks(500) {
        let mut sql = String::from(
            "SELECT person_id, entitlement FROM grants WHERE state = 'granted' AND person_id IN (",
        );
        push_params(&mut sql, chunk.len());
        sql.push_str(") ORDER BY person_id, entitlement");
        let mut q = db::query(db::AssertSqlSafe(sql));
        for p in chunk {
            q = q.bind(p.to_string());
        }
        for r in q.fetch_all(&mut *c).await? {
            out.entry(r.try_get(0)?).or_default().push(r.try_get(1)?);
        }
    }
    Ok(out)
}

/// The live user holding `user_name_ci`, if any.
pub async fn scim_user_id_by_name(c: &mut Conn, user_name_ci: &str) -> Result<Option<String>> {
    let row = db::query("SELECT id FROM scim_users WHERE user_name_ci = $1 AND deleted = 0")
        .bind(user_name_ci)
        .fetch_optional(&mut *c)
        .await?;
    row.map(|r| r.try_get(0)).transpose()
}

/// The live users holding these userNames (lowercased): name → id.
pub async fn scim_user_ids_by_names(
    c: &mut Conn,
    names: &[&str],
) -> Result<std::collections::HashMap<String, String>> {
    let mut out = std::collections::HashMap::with_capacity(names.len());
    for chunk in names.chunks(500) {
        let mut sql = String::from(
            "SELECT user_name_ci, id FROM scim_users WHERE deleted = 0 AND user_name_ci IN (",
        );
        push_params(&mut sql, chunk.len());
        sql.push(')');
        let mut q = db::query(db::AssertSqlSafe(sql));
        for n in chunk {
            q = q.bind(n.to_string());
        }
        for r in q.fetch_all(&mut *c).await? {
            out.insert(r.try_get(0)?, r.try_get(1)?);
        }
    }
    Ok(out)
}

/// The condition on `scim_users u` of live users matching `filter`, with its parameters.
fn live_matching(backend: Backend, filter: Option<&Cond>) -> Sql {
    let mut q = Sql {
        text: String::from("u.deleted = 0"),
        binds: Vec::new(),
        backend,
    };
    if let Some(f) = filter {
        q.text.push_str(" AND ");
        q.cond(f);
    }
    q
}

/// How the database would count the live users matching `filter` (SQLite's `EXPLAIN QUERY
/// PLAN`, PostgreSQL's `EXPLAIN`), one line per step: which indexes a filter reads.
pub async fn scim_search_plan(c: &mut Conn, filter: Option<&Cond>) -> Result<Vec<String>> {
    let backend = backend_of(c);
    let q = live_matching(backend, filter);
    let (explain, column) = match backend {
        Backend::Sqlite => ("EXPLAIN QUERY PLAN", 3),
        Backend::Postgres => ("EXPLAIN", 0),
    };
    let sql = format!(
        "{explain} SELECT COUNT(*) FROM scim_users u WHERE {}",
        q.text
    );
    let mut query = db::query(db::AssertSqlSafe(sql));
    for b in &q.binds {
        query = query.bind(b.clone());
    }
    query
        .fetch_all(&mut *c)
        .await?
        .iter()
        .map(|r| r.try_get::<String, _>(column))
        .collect()
}

/// Users matching `filter`, ordered by `sort` (else by id), `offset` skipped, at most `limit`,
/// each with the entitlements its person holds (see [`granted_entitlements`]); with the total
/// count of matches. In id order (no `sort`), the page and its grants are one query.
pub async fn search_scim_users(
    c: &mut Conn,
    filter: Option<&Cond>,
    sort: Option<&SortKey>,
    offset: i64,
    limit: i64,
) -> Result<(i64, Vec<(ScimUserRow, Vec<String>)>)> {
    let backend = backend_of(c);
    let mut q = live_matching(backend, filter);
    let where_sql = std::mem::take(&mut q.text);
    let filter_binds = q.binds.len();
    // One comparison the per-user index answers is counted there, without reading the users:
    // the index holds exactly the live ones.
    let indexed = user_search_only(backend, filter);
    let count = async |c: &mut Conn, binds: &[String]| -> Result<i64> {
        let count = match &indexed {
            Some(search) => db::query(db::AssertSqlSafe(format!(
                "SELECT COUNT(*) FROM ({}) k",
                search.keys(backend, "$1")
            )))
            .bind(search.param(backend)),
            None => {
                let count_sql = format!("SELECT COUNT(*) FROM scim_users u WHERE {where_sql}");
                let mut count = db::query(db::AssertSqlSafe(count_sql));
                for b in binds {
                    count = count.bind(b.clone());
                }
                count
            }
        };
        count.fetch_one(&mut *c).await?.try_get(0)
    };
    if limit == 0 {
        return Ok((count(c, &q.binds).await?, Vec::new()));
    }
    let mut order = String::new();
    if let Some(s) = sort {
        let a = q.param(&s.attr);
        let sb = q.param(&s.sub);
        let collate = if q.backend == Backend::Postgres {
            " COLLATE \"C\""
        } else {
            ""
        };
        let dir = if s.descending { "DESC" } else { "ASC" };
        // Resources without the attribute sort last ascending, first descending (RFC 7644 §3.4.2.3).
        let _ = write!(
            order,
            "(SELECT MIN(s.val) FROM scim_values s WHERE s.resource_id = u.id AND s.attr = {a} AND s.sub = {sb}) IS NULL {dir_nulls}, (SELECT MIN(s.val) FROM scim_values s WHERE s.resource_id = u.id AND s.attr = {a} AND s.sub = {sb}){collate} {dir}, ",
            dir_nulls = if s.descending { "DESC" } else { "ASC" },
        );
    }
    let key = user_key(backend);
    order.push_str(key);
    let lim = q.param(&limit.to_string());
    let off = q.param(&offset.to_string());
    let cast = |p: &str| format!("CAST({p} AS BIGINT)");
    let page = match (&indexed, sort) {
        // The page is taken from the index's matches in key order (on SQLite FTS5 yields them
        // so and reads only as far as the page ends). (The filter is that one comparison, so
        // its only parameter, `$1`, is the index query.)
        (Some(search), None) => format!(
            "SELECT {USER_COLS}, {key} AS ord FROM scim_users u WHERE {key} IN
             ({} ORDER BY 1 LIMIT {} OFFSET {})
             ORDER BY {order}",
            search.keys(backend, "$1"),
            cast(&lim),
            cast(&off)
        ),
        _ => format!(
            "SELECT {USER_COLS}, {key} AS ord FROM scim_users u WHERE {where_sql} ORDER BY {order} LIMIT {} OFFSET {}",
            cast(&lim),
            cast(&off)
        ),
    };
    // Without `sortBy` the page's grants come with it: the outer query keeps the page's order.
    let sql = if sort.is_none() {
        format!(
            "SELECT p.*, g.entitlement FROM ({page}) p
             LEFT JOIN grants g ON g.person_id = p.id AND g.state = 'granted'
             ORDER BY p.ord, g.entitlement"
        )
    } else {
        page
    };
    let mut query = db::query(db::AssertSqlSafe(sql));
    for b in &q.binds {
        query = query.bind(b.clone());
    }
    let mut users: Vec<(ScimUserRow, Vec<String>)> = Vec::new();
    for r in query.fetch_all(&mut *c).await? {
        let user = user_row(&r)?;
        if users.last().is_none_or(|(last, _)| last.id != user.id) {
            users.push((user, Vec::new()));
        }
        if sort.is_none()
            && let Some(e) = r.try_get::<Option<String>, _>(8)?
            && let Some((_, groups)) = users.last_mut()
        {
            groups.push(e);
        }
    }
    if sort.is_some() && !users.is_empty() {
        let ids: Vec<&str> = users.iter().map(|(u, _)| u.id.as_str()).collect();
        let mut held = granted_entitlements(c, &ids).await?;
        for (u, groups) in &mut users {
            *groups = held.remove(&u.id).unwrap_or_default();
        }
    }
    // A page that is not full and not past the end holds the last match: the total needs no
    // count of its own (the common case of a filter naming one user).
    let total = if (users.len() as i64) < limit && (!users.is_empty() || offset == 0) {
        offset + users.len() as i64
    } else {
        count(c, &q.binds[..filter_binds]).await?
    };
    Ok((total, users))
}

/// Writes a user and its value index: a new one when `prev_version` is `None`, else a
/// replacement of the live user at exactly that version. Returns false (and writes nothing)
/// when the stored version moved on in between.
pub async fn put_scim_user(
    c: &mut Conn,
    u: &ScimUserRow,
    prev_version: Option<i64>,
    values: &[IndexedValue],
) -> Result<bool> {
    let Some(prev) = prev_version else {
        insert_scim_users(c, &[(u.clone(), values.to_vec())]).await?;
        return Ok(true);
    };
    let n = db::query(
        "UPDATE scim_users SET user_name_ci = $2, lifecycle = $3, version = $4, updated_at = $5, doc = $6
         WHERE id = $1 AND version = $7 AND deleted = 0",
    )
    .bind(&u.id)
    .bind(&u.user_name_ci)
    .bind(&u.lifecycle)
    .bind(u.version)
    .bind(u.updated_at)
    .bind(&u.doc)
    .bind(prev)
    .execute(&mut *c)
    .await?
    .rows_affected();
    if n != 1 {
        return Ok(false);
    }
    db::query("DELETE FROM scim_values WHERE resource_id = $1")
        .bind(&u.id)
        .execute(&mut *c)
        .await?;
    let indexed: Vec<(&str, &IndexedValue)> = values.iter().map(|v| (u.id.as_str(), v)).collect();
    insert_values(c, &indexed).await?;
    let seq = unindex_user_search(c, &u.id).await?;
    index_user_search(c, &[(u.id.as_str(), seq, values)]).await?;
    Ok(true)
}

/// Writes new users and their value index: one statement for the users and one for all their
/// values (per few hundred rows), however many users.
pub async fn insert_scim_users(
    c: &mut Conn,
    users: &[(ScimUserRow, Vec<IndexedValue>)],
) -> Result<()> {
    let sqlite = c.is_sqlite();
    // SQLite numbers the users in the order written (`seq`, the listing order and the key of
    // the per-user index); the writer holds the database, so the largest number is its own.
    let first_seq: i64 = if sqlite {
        db::query("SELECT COALESCE(MAX(seq), 0) + 1 FROM scim_users")
            .fetch_one(&mut *c)
            .await?
            .try_get(0)?
    } else {
        0
    };
    let (columns, per_row) = if sqlite {
        (
            "id, user_name_ci, deleted, lifecycle, version, created_at, updated_at, doc, seq",
            9,
        )
    } else {
        (
            "id, user_name_ci, deleted, lifecycle, version, created_at, updated_at, doc",
            8,
        )
    };
    let mut seq = first_seq;
    for chunk in users.chunks(500) {
        let mut sql = format!("INSERT INTO scim_users ({columns}) VALUES ");
        crate::queries::push_placeholders(&mut sql, chunk.len(), per_row, sqlite);
        let mut q = db::query(db::AssertSqlSafe(sql));
        for (u, _) in chunk {
            q = q
                .bind(u.id.clone())
                .bind(u.user_name_ci.clone())
                .bind(0_i64)
                .bind(u.lifecycle.clone())
                .bind(u.version)
                .bind(u.created_at)
                .bind(u.updated_at)
                .bind(u.doc.clone());
            if sqlite {
                q = q.bind(seq);
                seq += 1;
            }
        }
        q.execute(&mut *c).await?;
    }
    let values: Vec<(&str, &IndexedValue)> = users
        .iter()
        .flat_map(|(u, vs)| vs.iter().map(move |v| (u.id.as_str(), v)))
        .collect();
    insert_values(c, &values).await?;
    let rows: Vec<UserEntry<'_>> = (first_seq..)
        .zip(users)
        .map(|(seq, (u, vs))| (u.id.as_str(), seq, vs.as_slice()))
        .collect();
    index_user_search(c, &rows).await?;
    Ok(())
}

/// Adds rows to the value index.
async fn insert_values(c: &mut Conn, values: &[(&str, &IndexedValue)]) -> Result<()> {
    let sqlite = c.is_sqlite();
    for chunk in values.chunks(500) {
        let mut sql =
            String::from("INSERT INTO scim_values (resource_id, attr, idx, sub, val) VALUES ");
        crate::queries::push_placeholders(&mut sql, chunk.len(), 5, sqlite);
        let mut q = db::query(db::AssertSqlSafe(sql));
        for (id, v) in chunk {
            q = q
                .bind(id.to_string())
                .bind(v.attr.clone())
                .bind(v.idx)
                .bind(v.sub.clone())
                .bind(v.val.clone());
        }
        q.execute(&mut *c).await?;
    }
    Ok(())
}

/// The value index of one resource, ordered by attribute, position, sub-attribute and value.
pub async fn scim_values_of(c: &mut Conn, id: &str) -> Result<Vec<IndexedValue>> {
    let rows = db::query(
        "SELECT attr, idx, sub, val FROM scim_values WHERE resource_id = $1 ORDER BY attr, idx, sub, val",
    )
    .bind(id)
    .fetch_all(&mut *c)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(IndexedValue {
                attr: r.try_get(0)?,
                idx: r.try_get(1)?,
                sub: r.try_get(2)?,
                val: r.try_get(3)?,
            })
        })
        .collect()
}

/// Marks a user deleted (its id stays taken; its userName is free again) and drops its index.
pub async fn delete_scim_user(
    c: &mut Conn,
    id: &str,
    prev_version: i64,
    lifecycle: &str,
    now: i64,
) -> Result<bool> {
    let n = db::query(
        "UPDATE scim_users SET deleted = 1, lifecycle = $2, version = version + 1, updated_at = $3 WHERE id = $1 AND deleted = 0 AND version = $4",
    )
    .bind(id)
    .bind(lifecycle)
    .bind(now)
    .bind(prev_version)
    .execute(&mut *c)
    .await?
    .rows_affected();
    if n == 1 {
        unindex_user_search(c, id).await?;
        db::query("DELETE FROM scim_values WHERE resource_id = $1")
            .bind(id)
            .execute(&mut *c)
            .await?;
    }
    Ok(n == 1)
}

/// Events still waiting, oldest first.
pub async fn scim_outbox(c: &mut Conn, limit: i64) -> Result<Vec<OutboxRow>> {
    let rows = db::query(
        "SELECT key, resource_id, event FROM scim_outbox ORDER BY created_at, key LIMIT $1",
    )
    .bind(limit)
    .fetch_all(&mut *c)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(OutboxRow {
                key: r.try_get(0)?,
                resource_id: r.try_get(1)?,
                event: r.try_get(2)?,
            })
        })
        .collect()
}

/// `$1, $2, ... $n`.
fn push_params(sql: &mut String, n: usize) {
    for i in 0..n {
        if i > 0 {
            sql.push_str(", ");
        }
        let _ = write!(sql, "${}", i + 1);
    }
}

/// Removes events the engine has stored.
pub async fn delete_scim_outbox(c: &mut Conn, keys: &[String]) -> Result<()> {
    for chunk in keys.chunks(500) {
        let mut sql = String::from("DELETE FROM scim_outbox WHERE key IN (");
        push_params(&mut sql, chunk.len());
        sql.push(')');
        let mut q = db::query(db::AssertSqlSafe(sql));
        for k in chunk {
            q = q.bind(k.clone());
        }
        q.execute(&mut *c).await?;
    }
    Ok(())
}

/// Person ids holding each entitlement in `granted` state, for SCIM groups.
pub async fn entitlement_holders(c: &mut Conn, entitlement: &str) -> Result<Vec<String>> {
    let rows = db::query(
        "SELECT person_id FROM grants WHERE entitlement = $1 AND state = 'granted' ORDER BY person_id",
    )
    .bind(entitlement)
    .fetch_all(&mut *c)
    .await?;
    rows.iter().map(|r| r.try_get(0)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MIGRATIONS, Migration, Store};

    /// A database of its own for each backend under test: SQLite in a temporary folder, and a
    /// scratch PostgreSQL database with `TENURE_TEST_DATABASE_URL`; opened with `known`.
    async fn stores(what: &str, known: &[Migration]) -> Vec<(String, Store)> {
        let dir = std::env::temp_dir().join(format!("tenure-{what}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut urls = vec![format!("sqlite://{}?mode=rwc", dir.join("t.db").display())];
        if let Some(url) = std::env::var("TENURE_TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
        {
            let name = format!("tenure_{what}_{}", uuid::Uuid::new_v4().simple());
            urls.push(crate::create_scratch_database(&url, &name).await.unwrap());
        }
        let mut out = Vec::new();
        for url in urls {
            let store = Store::connect_with(&url, known).await.unwrap();
            out.push((url, store));
        }
        out
    }

    fn value(attr: &str, idx: i64, sub: &str, val: &str) -> IndexedValue {
        IndexedValue {
            attr: attr.into(),
            idx,
            sub: sub.into(),
            val: val.into(),
        }
    }

    fn user(id: &str, values: Vec<IndexedValue>) -> (ScimUserRow, Vec<IndexedValue>) {
        let row = ScimUserRow {
            id: id.into(),
            user_name_ci: id.into(),
            lifecycle: "none".into(),
            version: 1,
            created_at: 0,
            updated_at: 0,
            doc: "{}".into(),
        };
        (row, values)
    }

    /// Texts with the characters each dialect treats specially: LIKE's wildcards and escape,
    /// GLOB's, FTS5's quotes, non-ASCII letters, a case-exact capital, short ones.
    const TEXTS: [&str; 16] = [
        "a%b_c\\d",
        "50% off",
        "x_y",
        "ünïcødé",
        "straße",
        "quote\"d",
        "*star?[x]",
        "ab",
        "abc",
        "abcabc",
        "Abc",
        "smith",
        "blacksmith",
        "smithers",
        "o'neil",
        "-_-",
    ];

    const NEEDLES: [&str; 22] = [
        "", "%", "_", "a%b", "\\", "50%", "0% o", "ab", "abc", "bca", "smi", "ith", "ße", "ünï",
        "e\"d", "*st", "?[x]", "Abc", "x", "%b_", "-_-", "zzz",
    ];

    /// Users each holding one of [`TEXTS`] as userName and two emails (one work, one home).
    fn population() -> Vec<(ScimUserRow, Vec<IndexedValue>)> {
        (0..TEXTS.len())
            .map(|i| {
                let other = TEXTS[(i + 5) % TEXTS.len()];
                user(
                    &format!("u{i:02}"),
                    vec![
                        value("username", 0, "", TEXTS[i]),
                        value("emails", 0, "value", &format!("{}@{other}", TEXTS[i])),
                        value("emails", 0, "type", "work"),
                        value("emails", 1, "value", other),
                        value("emails", 1, "type", "home"),
                    ],
                )
            })
            .collect()
    }

    fn holds(op: CondOp, have: &str, want: &str) -> bool {
        match op {
            CondOp::Co => have.contains(want),
            CondOp::Sw => have.starts_with(want),
            CondOp::Ew => have.ends_with(want),
            _ => unreachable!("substring operators only"),
        }
    }

    async fn ids(c: &mut Conn, cond: &Cond) -> Vec<String> {
        let (total, users) = search_scim_users(c, Some(cond), None, 0, 1000)
            .await
            .unwrap();
        let ids: Vec<String> = users.into_iter().map(|(u, _)| u.id).collect();
        assert_eq!(total as usize, ids.len(), "{cond:?}");
        ids
    }

    /// `co`, `sw` and `ew` select exactly the users whose values hold the text, whether the
    /// trigram index answers (three characters or more) or the values are read (shorter), on
    /// plain attributes and inside a value filter, with every special character taken
    /// literally and case kept.
    #[tokio::test]
    async fn substring_filters_match_exactly_what_holds_the_text() {
        for (url, store) in stores("scimsub", MIGRATIONS).await {
            let users = population();
            let mut tx = store.begin().await.unwrap();
            insert_scim_users(tx.conn(), &users).await.unwrap();
            // A user replaced and one deleted leave nothing behind in the index.
            let (mut row, _) = users[0].clone();
            row.version = 2;
            assert!(
                put_scim_user(
                    tx.conn(),
                    &row,
                    Some(1),
                    &[value("username", 0, "", "replaced")]
                )
                .await
                .unwrap()
            );
            assert!(
                delete_scim_user(tx.conn(), "u01", 1, "none", 1)
                    .await
                    .unwrap()
            );
            tx.commit().await.unwrap();
            let mut expected = users.clone();
            expected[0].1 = vec![value("username", 0, "", "replaced")];
            expected.remove(1);

            let mut c = store.reader().await.unwrap();
            let mut checked = 0;
            for needle in NEEDLES {
                for op in [CondOp::Co, CondOp::Sw, CondOp::Ew] {
                    let plain = Cond::Cmp {
                        attr: "username".into(),
                        sub: String::new(),
                        op,
                        val: needle.into(),
                    };
                    let want: Vec<String> = expected
                        .iter()
                        .filter(|(_, vs)| {
                            vs.iter()
                                .any(|v| v.attr == "username" && holds(op, &v.val, needle))
                        })
                        .map(|(u, _)| u.id.clone())
                        .collect();
                    assert_eq!(
                        ids(&mut c, &plain).await,
                        want,
                        "{url}: username {op:?} {needle:?}"
                    );
                    // Page by page, the same users in the same order, each page counting all.
                    let mut paged = Vec::new();
                    for offset in 0..=want.len() as i64 {
                        let (total, page) =
                            search_scim_users(&mut c, Some(&plain), None, offset, 1)
                                .await
                                .unwrap();
                        assert_eq!(total as usize, want.len(), "{url}: {needle:?} at {offset}");
                        paged.extend(page.into_iter().map(|(u, _)| u.id));
                    }
                    assert_eq!(paged, want, "{url}: username {op:?} {needle:?}, paged");
                    let work = Cond::Element {
                        attr: "emails".into(),
                        cond: Box::new(Cond::And(vec![
                            Cond::Cmp {
                                attr: String::new(),
                                sub: "value".into(),
                                op,
                                val: needle.into(),
                            },
                            Cond::Cmp {
                                attr: String::new(),
                                sub: "type".into(),
                                op: CondOp::Eq,
                                val: "work".into(),
                            },
                        ])),
                    };
                    let want: Vec<String> = expected
                        .iter()
                        .filter(|(_, vs)| {
                            vs.iter().any(|v| {
                                v.attr == "emails"
                                    && v.sub == "value"
                                    && v.idx == 0
                                    && holds(op, &v.val, needle)
                            })
                        })
                        .map(|(u, _)| u.id.clone())
                        .collect();
                    assert_eq!(
                        ids(&mut c, &work).await,
                        want,
                        "{url}: emails[work] {op:?} {needle:?}"
                    );
                    checked += usize::from(!want.is_empty());
                    let any = Cond::Element {
                        attr: "emails".into(),
                        cond: Box::new(Cond::Cmp {
                            attr: String::new(),
                            sub: "value".into(),
                            op,
                            val: needle.into(),
                        }),
                    };
                    let want: Vec<String> = expected
                        .iter()
                        .filter(|(_, vs)| {
                            vs.iter().any(|v| {
                                v.attr == "emails" && v.sub == "value" && holds(op, &v.val, needle)
                            })
                        })
                        .map(|(u, _)| u.id.clone())
                        .collect();
                    assert_eq!(
                        ids(&mut c, &any).await,
                        want,
                        "{url}: emails[value {op:?} {needle:?}]"
                    );
                }
            }
            assert!(checked > 30, "too few needles match anything: a weak test");
            drop(c);
            store.close().await;
        }
    }

    /// The plan of a substring filter names the trigram index, on a plain attribute and in a
    /// value filter; a text too short for trigrams reads the attribute's values instead.
    #[tokio::test]
    async fn substring_filters_read_the_trigram_index() {
        for (url, store) in stores("scimplan", MIGRATIONS).await {
            // Enough users, with values as varied as names, that PostgreSQL's planner prefers
            // an index to reading the table.
            let hex = |i: u64, k: u64| format!("{:08x}", (i + 1) * k % 4_294_967_291);
            let users: Vec<_> = (0..20_000_u64)
                .map(|i| {
                    user(
                        &format!("u{i:05}"),
                        vec![
                            value(
                                "username",
                                0,
                                "",
                                &format!("{}.{}", hex(i, 2_654_435_761), hex(i, 40_503)),
                            ),
                            value(
                                "emails",
                                0,
                                "value",
                                &format!("{}@corp{}.test", hex(i, 97_531), i % 13),
                            ),
                            value("emails", 0, "type", "work"),
                        ],
                    )
                })
                .collect();
            let name = format!("{}.{}", hex(42, 2_654_435_761), hex(42, 40_503));
            let email = hex(7, 97_531);
            let mut tx = store.begin().await.unwrap();
            insert_scim_users(tx.conn(), &users).await.unwrap();
            tx.commit().await.unwrap();
            let mut c = store.reader().await.unwrap();
            if store.backend() == Backend::Postgres {
                db::query("ANALYZE").execute(&mut c).await.unwrap();
            }
            let cmp = |sub: &str, op, val: &str| Cond::Cmp {
                attr: "username".into(),
                sub: sub.into(),
                op,
                val: val.into(),
            };
            let element = Cond::Element {
                attr: "emails".into(),
                cond: Box::new(cmp("value", CondOp::Co, &email[1..7])),
            };
            // A `co` of a user attribute reads the per-user index (SQLite's FTS5 table,
            // PostgreSQL's `scim_users_search`); the others the per-value one.
            let per_user = if store.backend() == Backend::Sqlite {
                "scim_users_trigram"
            } else {
                "scim_users_search"
            };
            for (what, cond, index) in [
                ("userName co", cmp("", CondOp::Co, &name[3..11]), per_user),
                (
                    "userName sw",
                    cmp("", CondOp::Sw, &name[..6]),
                    "scim_values_trigram",
                ),
                (
                    "userName ew",
                    cmp("", CondOp::Ew, &name[11..]),
                    "scim_values_trigram",
                ),
                ("emails[value co]", element, per_user),
            ] {
                let plan = scim_search_plan(&mut c, Some(&cond))
                    .await
                    .unwrap()
                    .join("\n");
                assert!(plan.contains(index), "{url}: {what}:\n{plan}");
                if store.backend() == Backend::Postgres && index == per_user {
                    // PostgreSQL reads a table of 20,000 short rows whole; kept from that, it
                    // takes the column's trigram index (the pattern's form fits the index).
                    db::query("SET enable_seqscan = off")
                        .execute(&mut c)
                        .await
                        .unwrap();
                    let plan = scim_search_plan(&mut c, Some(&cond))
                        .await
                        .unwrap()
                        .join("\n");
                    db::query("RESET enable_seqscan")
                        .execute(&mut c)
                        .await
                        .unwrap();
                    assert!(
                        plan.contains("scim_users_search_"),
                        "{url}: {what}:\n{plan}"
                    );
                }
                let (total, _) = search_scim_users(&mut c, Some(&cond), None, 0, 10)
                    .await
                    .unwrap();
                assert!(total > 0, "{url}: {what} finds no one");
            }
            let short = cmp("", CondOp::Co, "e4");
            let plan = scim_search_plan(&mut c, Some(&short))
                .await
                .unwrap()
                .join("\n");
            assert!(
                !plan.contains("scim_values_trigram") && plan.contains("scim_values_lookup"),
                "{url}: a two-character text:\n{plan}"
            );
            drop(c);
            store.close().await;
        }
    }

    /// The columns the store writes are the per-user index's own, in its order.
    #[test]
    fn the_user_search_columns_are_the_migrations() {
        let sql = include_str!("../migrations/0004_scim_user_search.sqlite.sql");
        let declared: Vec<&str> = sql
            .lines()
            .map(str::trim)
            .filter_map(|l| l.strip_suffix(','))
            .filter(|l| !l.contains(' ') && !l.starts_with("--"))
            .collect();
        let written: Vec<&str> = USER_SEARCH.iter().map(|(_, _, c)| *c).collect();
        assert_eq!(declared, written);
        let sql = include_str!("../migrations/0006_scim_user_search_postgres.postgres.sql");
        let declared: Vec<&str> = sql
            .lines()
            .map(|l| l.trim().trim_end_matches(','))
            .filter_map(|l| l.strip_suffix(" TEXT"))
            .collect();
        assert_eq!(declared, written);
        for column in written {
            assert!(
                sql.contains(&format!("({column} gin_trgm_ops)")),
                "{column} has no trigram index"
            );
        }
        let quoted = user_search_query(Backend::Sqlite, "emails", "value", CondOp::Co, "a\"b")
            .expect("a co on emails' values");
        assert_eq!(quoted.param(Backend::Sqlite), "{emails} : \"a\"\"b\"");
        let pattern = user_search_query(Backend::Postgres, "username", "", CondOp::Co, "5%_\\abc")
            .expect("a co with three letters in a row");
        assert_eq!(pattern.param(Backend::Postgres), "%5\\%\\_\\\\abc%");
        for (attr, sub, op, val) in [
            ("emails", "type", CondOp::Co, "work"),
            ("username", "", CondOp::Sw, "abc"),
            ("username", "", CondOp::Co, "ab"),
            ("username", "", CondOp::Co, "a\nb"),
        ] {
            assert_eq!(user_search_query(Backend::Sqlite, attr, sub, op, val), None);
        }
        // pg_trgm takes its trigrams from words: a text without three letters or digits in a
        // row is not looked up there.
        assert_eq!(
            user_search_query(Backend::Postgres, "username", "", CondOp::Co, "a.b.c"),
            None
        );
    }

    /// Stores users as a database of schema version 2 or 3 did: their rows (no `seq` yet) and
    /// their values, each in one statement.
    async fn store_as_before_seq(c: &mut Conn, users: &[(ScimUserRow, Vec<IndexedValue>)]) {
        for (u, values) in users {
            db::query(
                "INSERT INTO scim_users (id, user_name_ci, deleted, lifecycle, version, created_at, updated_at, doc)
                 VALUES ($1, $2, 0, $3, $4, $5, $6, $7)",
            )
            .bind(&u.id)
            .bind(&u.user_name_ci)
            .bind(&u.lifecycle)
            .bind(u.version)
            .bind(u.created_at)
            .bind(u.updated_at)
            .bind(&u.doc)
            .execute(&mut *c)
            .await
            .unwrap();
            let indexed: Vec<(&str, &IndexedValue)> =
                values.iter().map(|v| (u.id.as_str(), v)).collect();
            insert_values(c, &indexed).await.unwrap();
        }
    }

    /// A database made before the trigram indexes (schema version 2, SCIM users stored) gets
    /// them filled when it is opened: substring filters find the users stored before, through
    /// the indexes, in the order of their ids, and users written after, listed after them.
    #[tokio::test]
    async fn a_database_from_before_the_index_has_its_values_indexed_on_upgrade() {
        for (url, old) in stores("scimupgrade", &MIGRATIONS[..2]).await {
            assert_eq!(old.schema_version().version, 2);
            let mut tx = old.begin().await.unwrap();
            // Written out of id order: the upgrade numbers them by id.
            let mut users = population();
            users.reverse();
            store_as_before_seq(tx.conn(), &users).await;
            tx.commit().await.unwrap();
            old.close().await;

            let store = Store::connect(&url).await.unwrap();
            assert_eq!(
                store.schema_version().version,
                MIGRATIONS.last().unwrap().version
            );
            let smi = Cond::Cmp {
                attr: "username".into(),
                sub: String::new(),
                op: CondOp::Co,
                val: "smi".into(),
            };
            let mut c = store.reader().await.unwrap();
            let plan = scim_search_plan(&mut c, Some(&smi))
                .await
                .unwrap()
                .join("\n");
            if store.backend() == Backend::Sqlite {
                // PostgreSQL's planner reads a table this small whole; the plan test above
                // covers its index.
                assert!(plan.contains("scim_users_trigram"), "{url}:\n{plan}");
                let ew = Cond::Cmp {
                    attr: "username".into(),
                    sub: String::new(),
                    op: CondOp::Ew,
                    val: "ith".into(),
                };
                let plan = scim_search_plan(&mut c, Some(&ew))
                    .await
                    .unwrap()
                    .join("\n");
                assert!(plan.contains("scim_values_trigram"), "{url}:\n{plan}");
                assert_eq!(ids(&mut c, &ew).await, ["u11", "u12"], "{url}");
            }
            assert_eq!(ids(&mut c, &smi).await, ["u11", "u12", "u13"], "{url}");
            drop(c);
            let mut tx = store.begin().await.unwrap();
            insert_scim_users(
                tx.conn(),
                &[user("a1", vec![value("username", 0, "", "goldsmith")])],
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
            let mut c = store.reader().await.unwrap();
            // Listed in creation order on SQLite, in id order on PostgreSQL.
            let want: &[&str] = match store.backend() {
                Backend::Sqlite => &["u11", "u12", "u13", "a1"],
                Backend::Postgres => &["a1", "u11", "u12", "u13"],
            };
            assert_eq!(ids(&mut c, &smi).await, want, "{url}");
            drop(c);
            // Migration 4 (and those after it) runs again over its own result (a database
            // whose record of them was lost) and leaves the same answers.
            db::query("DELETE FROM schema_migrations WHERE version >= 4")
                .execute(&mut store.reader().await.unwrap())
                .await
                .unwrap();
            store.close().await;
            let store = Store::connect(&url).await.unwrap();
            assert_eq!(
                store.schema_version().version,
                MIGRATIONS.last().unwrap().version
            );
            let mut c = store.reader().await.unwrap();
            assert_eq!(ids(&mut c, &smi).await, want, "{url}");
            drop(c);
            store.close().await;
        }
    }
}
