//! Storage of the groups an identity provider pushes over SCIM: one row per group
//! (`scim_groups`, its `version` the ETag) and one per membership (`scim_group_members`, the
//! member being a SCIM user, whose id is its person's). tenure's own entitlements are not here:
//! they are configuration.

use crate::Result;
use crate::db::{self, Conn};
use crate::queries::push_placeholders;
use std::collections::{BTreeMap, BTreeSet};

/// A stored group, without its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimGroupRow {
    /// The group's id (a UUID tenure gave it).
    pub id: String,
    /// Its displayName, as the identity provider sent it.
    pub display_name: String,
    /// The identity provider's own id for it.
    pub external_id: Option<String>,
    /// Version, the ETag; 1 when created.
    pub version: i64,
    /// When it was created (epoch ms).
    pub created_at: i64,
    /// When it last changed (epoch ms).
    pub updated_at: i64,
}

const GROUP_COLS: &str = "id, display_name, external_id, version, created_at, updated_at";

fn group_row(r: &db::Row) -> Result<ScimGroupRow> {
    Ok(ScimGroupRow {
        id: r.try_get("id")?,
        display_name: r.try_get("display_name")?,
        external_id: r.try_get("external_id")?,
        version: r.try_get("version")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// `$from, ... $(from + n - 1)`.
fn params(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One stored group.
pub async fn scim_group(c: &mut Conn, id: &str) -> Result<Option<ScimGroupRow>> {
    let sql = format!("SELECT {GROUP_COLS} FROM scim_groups WHERE id = $1");
    let row = db::query(db::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut *c)
        .await?;
    row.as_ref().map(group_row).transpose()
}

/// Every stored group, in id order (creation order).
pub async fn scim_groups(c: &mut Conn) -> Result<Vec<ScimGroupRow>> {
    let sql = format!("SELECT {GROUP_COLS} FROM scim_groups ORDER BY id");
    let rows = db::query(db::AssertSqlSafe(sql)).fetch_all(&mut *c).await?;
    rows.iter().map(group_row).collect()
}

/// How a group's lowercased displayName is compared with a lowercased text, in
/// [`scim_groups_by_name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameMatch {
    /// Equal.
    Eq,
    /// Contains.
    Co,
    /// Starts with.
    Sw,
    /// Ends with.
    Ew,
}

/// The groups whose lowercased displayName compares true with `text` (lowercased, as SCIM
/// filters normalize it), in id order as [`scim_groups`]: a filter that needs such a comparison reads these
/// instead of every group.
pub async fn scim_groups_by_name(
    c: &mut Conn,
    how: NameMatch,
    text: &str,
) -> Result<Vec<ScimGroupRow>> {
    let op = match how {
        NameMatch::Eq => crate::CondOp::Eq,
        NameMatch::Co => crate::CondOp::Co,
        NameMatch::Sw => crate::CondOp::Sw,
        NameMatch::Ew => crate::CondOp::Ew,
    };
    let test = crate::scim::compare_sql(crate::scim::backend_of(c), "display_name_ci", op, "$1");
    let sql = format!("SELECT {GROUP_COLS} FROM scim_groups WHERE {test} ORDER BY id");
    let rows = db::query(db::AssertSqlSafe(sql))
        .bind(text)
        .fetch_all(&mut *c)
        .await?;
    rows.iter().map(group_row).collect()
}

/// The group holding the displayName `display_name_ci` (lowercased), if any.
pub async fn scim_group_id_by_name(c: &mut Conn, display_name_ci: &str) -> Result<Option<String>> {
    let row = db::query("SELECT id FROM scim_groups WHERE display_name_ci = $1")
        .bind(display_name_ci)
        .fetch_optional(&mut *c)
        .await?;
    row.map(|r| r.try_get(0)).transpose()
}

/// The members of each of `groups` (person ids, sorted); groups with none are absent. Only
/// live users count: a deleted user's memberships go with it ([`leave_scim_groups`]), and one
/// that a group change committed beside the delete (PostgreSQL, two transactions at once) is
/// not listed either.
pub async fn scim_group_members(
    c: &mut Conn,
    groups: &[&str],
) -> Result<BTreeMap<String, BTreeSet<String>>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for chunk in groups.chunks(500) {
        let sql = format!(
            "SELECT m.group_id, m.person_id FROM scim_group_members m
             JOIN scim_users u ON u.id = m.person_id AND u.deleted = 0
             WHERE m.group_id IN ({})",
            params(1, chunk.len())
        );
        let mut q = db::query(db::AssertSqlSafe(sql));
        for g in chunk {
            q = q.bind(g.to_string());
        }
        for r in q.fetch_all(&mut *c).await? {
            out.entry(r.try_get(0)?).or_default().insert(r.try_get(1)?);
        }
    }
    Ok(out)
}

/// The groups (id, displayName) each of `people` is a member of, by displayName; people in no
/// group are absent.
pub async fn scim_groups_of(
    c: &mut Conn,
    people: &[&str],
) -> Result<BTreeMap<String, Vec<(String, String)>>> {
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for chunk in people.chunks(500) {
        let sql = format!(
            "SELECT m.person_id, g.id, g.display_name FROM scim_group_members m
             JOIN scim_groups g ON g.id = m.group_id
             WHERE m.person_id IN ({}) ORDER BY m.person_id, g.display_name_ci",
            params(1, chunk.len())
        );
        let mut q = db::query(db::AssertSqlSafe(sql));
        for p in chunk {
            q = q.bind(p.to_string());
        }
        for r in q.fetch_all(&mut *c).await? {
            out.entry(r.try_get(0)?)
                .or_default()
                .push((r.try_get(1)?, r.try_get(2)?));
        }
    }
    Ok(out)
}

/// Which of `ids` are live SCIM users, with their lifecycle (`none`, `active`, `left`).
pub async fn live_scim_users(c: &mut Conn, ids: &[&str]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for chunk in ids.chunks(500) {
        let sql = format!(
            "SELECT id, lifecycle FROM scim_users WHERE deleted = 0 AND id IN ({})",
            params(1, chunk.len())
        );
        let mut q = db::query(db::AssertSqlSafe(sql));
        for id in chunk {
            q = q.bind(id.to_string());
        }
        for r in q.fetch_all(&mut *c).await? {
            out.insert(r.try_get(0)?, r.try_get(1)?);
        }
    }
    Ok(out)
}

/// Writes a group: inserts it when `prev_version` is `None`, else updates it only if it is
/// still at `prev_version` (false when it moved on or is gone).
pub async fn put_scim_group(
    c: &mut Conn,
    g: &ScimGroupRow,
    prev_version: Option<i64>,
) -> Result<bool> {
    let name_ci = g.display_name.to_lowercase();
    match prev_version {
        None => {
            db::query(
                "INSERT INTO scim_groups (id, display_name, display_name_ci, external_id, version, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&g.id)
            .bind(&g.display_name)
            .bind(name_ci)
            .bind(g.external_id.clone())
            .bind(g.version)
            .bind(g.created_at)
            .bind(g.updated_at)
            .execute(&mut *c)
            .await?;
            Ok(true)
        }
        Some(prev) => {
            let n = db::query(
                "UPDATE scim_groups SET display_name = $2, display_name_ci = $3, external_id = $4, version = $5, updated_at = $6
                 WHERE id = $1 AND version = $7",
            )
            .bind(&g.id)
            .bind(&g.display_name)
            .bind(name_ci)
            .bind(g.external_id.clone())
            .bind(g.version)
            .bind(g.updated_at)
            .bind(prev)
            .execute(&mut *c)
            .await?
            .rows_affected();
            Ok(n == 1)
        }
    }
}

/// Adds and removes members of a group, a few hundred rows per statement.
pub async fn change_scim_group_members(
    c: &mut Conn,
    group: &str,
    added: &[&str],
    removed: &[&str],
) -> Result<()> {
    let sqlite = c.is_sqlite();
    for chunk in added.chunks(500) {
        let mut sql = String::from("INSERT INTO scim_group_members (group_id, person_id) VALUES ");
        push_placeholders(&mut sql, chunk.len(), 2, sqlite);
        let mut q = db::query(db::AssertSqlSafe(sql));
        for p in chunk {
            q = q.bind(group.to_string()).bind(p.to_string());
        }
        q.execute(&mut *c).await?;
    }
    for chunk in removed.chunks(500) {
        let sql = format!(
            "DELETE FROM scim_group_members WHERE group_id = $1 AND person_id IN ({})",
            params(2, chunk.len())
        );
        let mut q = db::query(db::AssertSqlSafe(sql)).bind(group.to_string());
        for p in chunk {
            q = q.bind(p.to_string());
        }
        q.execute(&mut *c).await?;
    }
    Ok(())
}

/// Takes `person` out of every group it is a member of (its SCIM user is being deleted): the
/// memberships go and each group moves to its next version. Returns the groups as they now
/// stand, by displayName.
pub async fn leave_scim_groups(c: &mut Conn, person: &str, now: i64) -> Result<Vec<ScimGroupRow>> {
    let sql = format!(
        "SELECT {GROUP_COLS} FROM scim_groups WHERE id IN
         (SELECT group_id FROM scim_group_members WHERE person_id = $1)
         ORDER BY display_name_ci"
    );
    let rows = db::query(db::AssertSqlSafe(sql))
        .bind(person)
        .fetch_all(&mut *c)
        .await?;
    let mut groups = rows.iter().map(group_row).collect::<Result<Vec<_>>>()?;
    if groups.is_empty() {
        return Ok(groups);
    }
    db::query("DELETE FROM scim_group_members WHERE person_id = $1")
        .bind(person)
        .execute(&mut *c)
        .await?;
    for chunk in groups.chunks_mut(500) {
        let sql = format!(
            "UPDATE scim_groups SET version = version + 1, updated_at = $1 WHERE id IN ({})",
            params(2, chunk.len())
        );
        let mut q = db::query(db::AssertSqlSafe(sql)).bind(now);
        for g in chunk.iter() {
            q = q.bind(g.id.clone());
        }
        q.execute(&mut *c).await?;
        for g in chunk {
            g.version += 1;
            g.updated_at = now;
        }
    }
    Ok(groups)
}

/// Deletes a group and its memberships if it is still at `prev_version`.
pub async fn delete_scim_group(c: &mut Conn, id: &str, prev_version: i64) -> Result<bool> {
    let n = db::query("DELETE FROM scim_groups WHERE id = $1 AND version = $2")
        .bind(id)
        .bind(prev_version)
        .execute(&mut *c)
        .await?
        .rows_affected();
    if n == 1 {
        db::query("DELETE FROM scim_group_members WHERE group_id = $1")
            .bind(id)
            .execute(&mut *c)
            .await?;
    }
    Ok(n == 1)
}
