//! Reconciliation's records: each pass over a system (`reconciliations`), the differences found
//! (`drift_findings`, kept across passes until a complete pass no longer finds them), and the
//! reads a pass makes to compare a page of accounts with tenure's records.

use crate::Result;
use crate::db::{self, Conn, Row};
use crate::filter::Where;
use crate::queries::{corrupt, in_list, parse, push_placeholders};
use std::collections::{BTreeMap, HashMap};
use tenure_core::drift::{HeldGrant, Remedy, Situation};
use tenure_core::{AccountState, GrantState, PersonStatus};

/// Why a reconciliation ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReconTrigger {
    /// Someone asked (API or CLI).
    Request,
    /// The system's `every`.
    Schedule,
    /// The system's circuit closed again after being open.
    CircuitClosed,
}

/// Where a reconciliation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReconState {
    /// Paging through the system.
    Running,
    /// Every account listed and compared; corrections (if any) made.
    Completed,
    /// Compared, but the corrections would disable more of the system's accounts than its
    /// `max_disable_percent` allows: none was made. Run again with confirmation to make them.
    Held,
    /// The system could not be read to the end; findings seen so far are kept, none resolved.
    Failed,
    /// The system's connector cannot list its accounts.
    NotCovered,
    /// Tenure stopped while it ran.
    Interrupted,
}

macro_rules! text_enum {
    ($t:ty { $($v:ident => $s:literal),+ }) => {
        impl $t {
            /// The stored text.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),+ }
            }
        }
        impl std::str::FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> std::result::Result<Self, String> {
                match s {
                    $($s => Ok(Self::$v),)+
                    other => Err(format!("unknown {} `{other}`", stringify!($t))),
                }
            }
        }
    };
}
text_enum!(ReconTrigger { Request => "request", Schedule => "schedule", CircuitClosed => "circuit_closed" });
text_enum!(ReconState { Running => "running", Completed => "completed", Held => "held", Failed => "failed", NotCovered => "not_covered", Interrupted => "interrupted" });

/// One reconciliation as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ReconRow {
    /// Its id (UUIDv7).
    pub id: String,
    /// The system reconciled.
    pub system: String,
    /// Why it ran.
    pub trigger: ReconTrigger,
    /// Who asked, for a request.
    pub requested_by: Option<String>,
    /// Findings only: no correction made.
    pub dry_run: bool,
    /// Where it stands.
    pub state: ReconState,
    /// When it started (epoch ms).
    pub started_at: i64,
    /// When it last made progress (epoch ms).
    pub heartbeat_at: i64,
    /// When it ended (epoch ms).
    pub ended_at: Option<i64>,
    /// Accounts listed so far.
    pub accounts: i64,
    /// Findings per situation (`expected`: accounts in agreement).
    pub counts: BTreeMap<Situation, i64>,
    /// Corrections made to tenure's records.
    pub corrected: i64,
    /// Runs given to people to carry them out.
    pub runs: i64,
    /// Why it failed, was held or is not covered.
    pub message: Option<String>,
}

const RECON_COLS: &str =
    "id, system, trigger_kind, requested_by, dry_run, state, started_at, heartbeat_at,
    ended_at, accounts, counts, corrected, runs, message";

fn recon_row(r: &Row) -> Result<ReconRow> {
    let counts: BTreeMap<String, i64> =
        serde_json::from_str(&r.try_get::<String, _>("counts")?).map_err(corrupt)?;
    Ok(ReconRow {
        id: r.try_get("id")?,
        system: r.try_get("system")?,
        trigger: parse(&r.try_get::<String, _>("trigger_kind")?)?,
        requested_by: r.try_get("requested_by")?,
        dry_run: r.try_get::<i64, _>("dry_run")? != 0,
        state: parse(&r.try_get::<String, _>("state")?)?,
        started_at: r.try_get("started_at")?,
        heartbeat_at: r.try_get("heartbeat_at")?,
        ended_at: r.try_get("ended_at")?,
        accounts: r.try_get("accounts")?,
        counts: counts
            .into_iter()
            .map(|(k, v)| Ok((parse::<Situation>(&k)?, v)))
            .collect::<Result<_>>()?,
        corrected: r.try_get("corrected")?,
        runs: r.try_get("runs")?,
        message: r.try_get("message")?,
    })
}

fn counts_json(counts: &BTreeMap<Situation, i64>) -> String {
    let m: BTreeMap<&str, i64> = counts.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    serde_json::to_string(&m).expect("counts serialize")
}

/// Records a reconciliation starting, unless another one of the same system is running and
/// made progress since `live_after`: that one's id comes back instead. One that made none
/// (its process stopped) is marked `interrupted`.
pub async fn start_reconciliation(
    c: &mut Conn,
    row: &ReconRow,
    live_after: i64,
) -> Result<std::result::Result<(), String>> {
    let running = db::query(
        "SELECT id, heartbeat_at FROM reconciliations WHERE system = $1 AND state = 'running'",
    )
    .bind(row.system.clone())
    .fetch_all(&mut *c)
    .await?;
    for r in &running {
        let id: String = r.try_get(0)?;
        if r.try_get::<i64, _>(1)? > live_after {
            return Ok(Err(id));
        }
        db::query(
            "UPDATE reconciliations SET state = 'interrupted', ended_at = $2,
               message = 'tenure stopped while it ran' WHERE id = $1",
        )
        .bind(id)
        .bind(row.started_at)
        .execute(&mut *c)
        .await?;
    }
    // The unique index on the running one settles a race with another instance: the loser
    // inserts nothing and is told who won.
    let sql = format!(
        "INSERT INTO reconciliations ({RECON_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT DO NOTHING"
    );
    let inserted = db::query(db::AssertSqlSafe(sql))
        .bind(row.id.clone())
        .bind(row.system.clone())
        .bind(row.trigger.as_str())
        .bind(row.requested_by.clone())
        .bind(row.dry_run as i64)
        .bind(row.state.as_str())
        .bind(row.started_at)
        .bind(row.heartbeat_at)
        .bind(row.ended_at)
        .bind(row.accounts)
        .bind(counts_json(&row.counts))
        .bind(row.corrected)
        .bind(row.runs)
        .bind(row.message.clone())
        .execute(&mut *c)
        .await?
        .rows_affected();
    if inserted == 1 {
        return Ok(Ok(()));
    }
    let other = db::query("SELECT id FROM reconciliations WHERE system = $1 AND state = 'running'")
        .bind(row.system.clone())
        .fetch_optional(c)
        .await?
        .map(|r| r.try_get::<String, _>(0))
        .transpose()?
        .unwrap_or_else(|| "one started by another instance".to_string());
    Ok(Err(other))
}

/// Writes a reconciliation's progress or its end (state, counts, figures, message).
pub async fn update_reconciliation(c: &mut Conn, row: &ReconRow) -> Result<()> {
    db::query(
        "UPDATE reconciliations SET state = $2, heartbeat_at = $3, ended_at = $4, accounts = $5,
           counts = $6, corrected = $7, runs = $8, message = $9 WHERE id = $1",
    )
    .bind(row.id.clone())
    .bind(row.state.as_str())
    .bind(row.heartbeat_at)
    .bind(row.ended_at)
    .bind(row.accounts)
    .bind(counts_json(&row.counts))
    .bind(row.corrected)
    .bind(row.runs)
    .bind(row.message.clone())
    .execute(c)
    .await?;
    Ok(())
}

/// One reconciliation.
pub async fn get_reconciliation(c: &mut Conn, id: &str) -> Result<Option<ReconRow>> {
    let sql = format!("SELECT {RECON_COLS} FROM reconciliations WHERE id = $1");
    db::query(db::AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_optional(c)
        .await?
        .as_ref()
        .map(recon_row)
        .transpose()
}

/// Reconciliations, newest first, of one system or all, before the id `before` (a page's last).
pub async fn list_reconciliations(
    c: &mut Conn,
    system: Option<&str>,
    before: Option<&str>,
    limit: i64,
) -> Result<Vec<ReconRow>> {
    let mut w = Where::default();
    w.eq("system", system);
    if let Some(before) = before {
        w.and("id < ?", [before.into()]);
    }
    let tail = format!("ORDER BY id DESC LIMIT ${}", w.next());
    let head = format!("SELECT {RECON_COLS} FROM reconciliations");
    w.fetch(c, &head, &tail, &[limit.into()])
        .await?
        .iter()
        .map(recon_row)
        .collect()
}

/// A finding as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingRow {
    /// Stable id (UUIDv7), kept while the finding stays open.
    pub id: String,
    /// The system.
    pub system: String,
    /// The situation.
    pub situation: Situation,
    /// The system's key for the account.
    pub account_key: String,
    /// The entitlement (tenure id or system name), `None` for the account itself.
    pub entitlement: Option<String>,
    /// Whose, when known.
    pub person_id: Option<String>,
    /// What was seen.
    pub detail: String,
    /// What the system's settings said to do when last seen.
    pub remedy: Remedy,
    /// When first seen (since it was last resolved), epoch ms.
    pub first_seen: i64,
    /// When last seen.
    pub last_seen: i64,
    /// The reconciliation that first saw it.
    pub first_run: String,
    /// The reconciliation that last saw it.
    pub last_run: String,
    /// When a complete reconciliation no longer found it.
    pub resolved_at: Option<i64>,
    /// That reconciliation.
    pub resolved_by: Option<String>,
}

const FINDING_COLS: &str =
    "id, system, situation, account_key, entitlement, person_id, detail, remedy,
    first_seen, last_seen, first_run, last_run, resolved_at, resolved_by";

fn finding_row(r: &Row) -> Result<FindingRow> {
    let entitlement: String = r.try_get("entitlement")?;
    Ok(FindingRow {
        id: r.try_get("id")?,
        system: r.try_get("system")?,
        situation: parse(&r.try_get::<String, _>("situation")?)?,
        account_key: r.try_get("account_key")?,
        entitlement: (!entitlement.is_empty()).then_some(entitlement),
        person_id: r.try_get("person_id")?,
        detail: r.try_get("detail")?,
        remedy: parse(&r.try_get::<String, _>("remedy")?)?,
        first_seen: r.try_get("first_seen")?,
        last_seen: r.try_get("last_seen")?,
        first_run: r.try_get("first_run")?,
        last_run: r.try_get("last_run")?,
        resolved_at: r.try_get("resolved_at")?,
        resolved_by: r.try_get("resolved_by")?,
    })
}

/// Records findings seen by a reconciliation: new ones open, open ones are seen again (their
/// id and first sighting kept), resolved ones open again as new.
pub async fn record_findings(c: &mut Conn, rows: &[FindingRow]) -> Result<()> {
    let suffix = " ON CONFLICT (system, account_key, entitlement, situation) DO UPDATE SET
        person_id = excluded.person_id, detail = excluded.detail, remedy = excluded.remedy,
        last_seen = excluded.last_seen, last_run = excluded.last_run,
        id = CASE WHEN drift_findings.resolved_at IS NULL THEN drift_findings.id ELSE excluded.id END,
        first_seen = CASE WHEN drift_findings.resolved_at IS NULL THEN drift_findings.first_seen ELSE excluded.first_seen END,
        first_run = CASE WHEN drift_findings.resolved_at IS NULL THEN drift_findings.first_run ELSE excluded.first_run END,
        resolved_at = NULL, resolved_by = NULL";
    let sqlite = c.is_sqlite();
    for chunk in rows.chunks(300) {
        let mut sql = format!("INSERT INTO drift_findings ({FINDING_COLS}) VALUES ");
        push_placeholders(&mut sql, chunk.len(), 14, sqlite);
        sql.push_str(suffix);
        let mut q = db::query(db::AssertSqlSafe(sql));
        for f in chunk {
            q = q
                .bind(f.id.clone())
                .bind(f.system.clone())
                .bind(f.situation.as_str())
                .bind(f.account_key.clone())
                .bind(f.entitlement.clone().unwrap_or_default())
                .bind(f.person_id.clone())
                .bind(f.detail.clone())
                .bind(f.remedy.as_str())
                .bind(f.first_seen)
                .bind(f.last_seen)
                .bind(f.first_run.clone())
                .bind(f.last_run.clone())
                .bind(f.resolved_at)
                .bind(f.resolved_by.clone());
        }
        q.execute(&mut *c).await?;
    }
    Ok(())
}

/// Resolves the system's open findings that reconciliation `run` did not see again; how many.
pub async fn resolve_unseen_findings(
    c: &mut Conn,
    system: &str,
    run: &str,
    now: i64,
) -> Result<u64> {
    db::query(
        "UPDATE drift_findings SET resolved_at = $3, resolved_by = $2
          WHERE system = $1 AND resolved_at IS NULL AND last_run <> $2",
    )
    .bind(system.to_string())
    .bind(run.to_string())
    .bind(now)
    .execute(c)
    .await
    .map(|d| d.rows_affected())
}

/// Which findings [`list_findings`] returns.
#[derive(Debug, Clone, Copy, Default)]
pub struct FindingFilter<'a> {
    /// Only this system's.
    pub system: Option<&'a str>,
    /// Only this situation.
    pub situation: Option<Situation>,
    /// Only this person's.
    pub person: Option<&'a str>,
    /// Only those seen by this reconciliation.
    pub seen_by: Option<&'a str>,
    /// Open ones only (not resolved).
    pub open: bool,
    /// Ids after this one (a page's last).
    pub after: Option<&'a str>,
    /// At most this many.
    pub limit: i64,
}

/// Findings in id order.
pub async fn list_findings(c: &mut Conn, f: FindingFilter<'_>) -> Result<Vec<FindingRow>> {
    let mut w = Where::default();
    w.eq("system", f.system)
        .eq("situation", f.situation.map(|s| s.as_str()))
        .eq("person_id", f.person)
        .eq("last_run", f.seen_by);
    if f.open {
        w.and("resolved_at IS NULL", []);
    }
    if let Some(after) = f.after {
        w.and("id > ?", [after.into()]);
    }
    let tail = format!("ORDER BY id LIMIT ${}", w.next());
    let head = format!("SELECT {FINDING_COLS} FROM drift_findings");
    w.fetch(c, &head, &tail, &[f.limit.into()])
        .await?
        .iter()
        .map(finding_row)
        .collect()
}

/// Open findings counted by system and situation, for the metrics.
pub async fn open_finding_counts(c: &mut Conn) -> Result<Vec<(String, Situation, i64)>> {
    db::query(
        "SELECT system, situation, COUNT(*) FROM drift_findings WHERE resolved_at IS NULL
          GROUP BY system, situation ORDER BY system, situation",
    )
    .fetch_all(c)
    .await?
    .iter()
    .map(|r| {
        Ok((
            r.try_get(0)?,
            parse(&r.try_get::<String, _>(1)?)?,
            r.try_get(2)?,
        ))
    })
    .collect()
}

/// Tenure's record of an account, as reconciliation compares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldAccount {
    /// Its state.
    pub state: AccountState,
    /// Found and linked by reconciliation, not made by tenure.
    pub discovered: bool,
}

/// What tenure holds of some people on one system: their status, account and grants.
#[derive(Debug, Default)]
pub struct HeldOnSystem {
    /// Status by person id, for those who exist.
    pub status: HashMap<String, PersonStatus>,
    /// Account by person id.
    pub accounts: HashMap<String, HeldAccount>,
    /// Grants on the system by person id: entitlement and state only.
    pub grants: HashMap<String, Vec<HeldGrant>>,
}

/// Loads [`HeldOnSystem`] for `people` (ids; those that do not exist are left out).
pub async fn held_on_system(c: &mut Conn, system: &str, people: &[String]) -> Result<HeldOnSystem> {
    let sqlite = c.is_sqlite();
    let mut out = HeldOnSystem::default();
    for chunk in people.chunks(500) {
        let mut sql = String::from("SELECT id, status FROM people WHERE id IN ");
        in_list(&mut sql, chunk.len(), sqlite, 1);
        let mut q = db::query(db::AssertSqlSafe(sql));
        for id in chunk {
            q = q.bind(id.clone());
        }
        for r in q.fetch_all(&mut *c).await? {
            out.status.insert(
                r.try_get(0)?,
                parse::<PersonStatus>(&r.try_get::<String, _>(1)?)?,
            );
        }
        let mut sql = String::from(
            "SELECT person_id, state, discovered FROM accounts WHERE system = $1 AND person_id IN ",
        );
        in_list(&mut sql, chunk.len(), sqlite, 2);
        let mut q = db::query(db::AssertSqlSafe(sql)).bind(system.to_string());
        for id in chunk {
            q = q.bind(id.clone());
        }
        for r in q.fetch_all(&mut *c).await? {
            out.accounts.insert(
                r.try_get(0)?,
                HeldAccount {
                    state: parse::<AccountState>(&r.try_get::<String, _>(1)?)?,
                    discovered: r.try_get::<i64, _>(2)? != 0,
                },
            );
        }
        let mut sql = String::from(
            "SELECT person_id, entitlement, state FROM grants WHERE system = $1 AND person_id IN ",
        );
        in_list(&mut sql, chunk.len(), sqlite, 2);
        let mut q = db::query(db::AssertSqlSafe(sql)).bind(system.to_string());
        for id in chunk {
            q = q.bind(id.clone());
        }
        for r in q.fetch_all(&mut *c).await? {
            let g = HeldGrant {
                entitlement: r.try_get(1)?,
                state: parse::<GrantState>(&r.try_get::<String, _>(2)?)?,
            };
            out.grants.entry(r.try_get(0)?).or_default().push(g);
        }
    }
    Ok(out)
}

/// The people whose work email is one of `emails` (compared lowercased): (email lowercased,
/// id, email as stored). Found by the emails' index (a keyed hash on a sealing vault), then
/// read from the opened records.
pub async fn people_by_emails(
    c: &mut Conn,
    emails: &[String],
) -> Result<Vec<(String, String, String)>> {
    let sqlite = c.is_sqlite();
    let indexed: Vec<String> = emails.iter().map(|e| c.vault().email_index(e)).collect();
    let mut out = Vec::new();
    for chunk in indexed.chunks(500) {
        let mut sql = format!("{} WHERE email_index IN ", crate::privacy::PERSON_SELECT);
        in_list(&mut sql, chunk.len(), sqlite, 1);
        let mut q = db::query(db::AssertSqlSafe(sql));
        for e in chunk {
            q = q.bind(e.clone());
        }
        for r in q.fetch_all(&mut *c).await? {
            let p = crate::privacy::person_row(c, &r)?;
            out.push((p.email.trim().to_lowercase(), p.id, p.email));
        }
    }
    Ok(out)
}

/// How many accounts on `system` tenure records as active.
pub async fn count_active_accounts(c: &mut Conn, system: &str) -> Result<i64> {
    db::query("SELECT COUNT(*) FROM accounts WHERE system = $1 AND state = 'active'")
        .bind(system.to_string())
        .fetch_one(c)
        .await?
        .try_get(0)
}

/// The people holding an account on `system` that tenure records as active, in id order after
/// `after`, at most `limit`: reconciliation's list of accounts the system must have.
pub async fn active_accounts_on(
    c: &mut Conn,
    system: &str,
    after: &str,
    limit: i64,
) -> Result<Vec<String>> {
    db::query(
        "SELECT person_id FROM accounts WHERE system = $1 AND state = 'active' AND person_id > $2
          ORDER BY person_id LIMIT $3",
    )
    .bind(system.to_string())
    .bind(after.to_string())
    .bind(limit)
    .fetch_all(c)
    .await?
    .iter()
    .map(|r| r.try_get(0))
    .collect()
}

/// Records an account as perhaps existing and signing in (`uncertain`), so the person's next
/// run judges it; `discovered` when tenure had no record of it (kept once set).
pub async fn mark_account_uncertain(
    c: &mut Conn,
    person: &str,
    system: &str,
    discovered: bool,
    now: i64,
) -> Result<()> {
    db::query(
        "INSERT INTO accounts (person_id, system, state, updated_at, discovered)
         VALUES ($1, $2, 'uncertain', $3, $4)
         ON CONFLICT (person_id, system) DO UPDATE SET state = 'uncertain',
           updated_at = excluded.updated_at,
           discovered = CASE WHEN accounts.state IN ('deleted', 'pending') THEN excluded.discovered
                             ELSE accounts.discovered END",
    )
    .bind(person.to_string())
    .bind(system.to_string())
    .bind(now)
    .bind(discovered as i64)
    .execute(c)
    .await?;
    Ok(())
}

/// Links an account found on a system to the person, as it stands (active or disabled), as
/// one tenure did not make.
pub async fn link_account(
    c: &mut Conn,
    person: &str,
    system: &str,
    enabled: bool,
    now: i64,
) -> Result<()> {
    let state = if enabled {
        AccountState::Active
    } else {
        AccountState::Disabled
    };
    db::query(
        "INSERT INTO accounts (person_id, system, state, updated_at, discovered)
         VALUES ($1, $2, $3, $4, 1)
         ON CONFLICT (person_id, system) DO UPDATE SET state = excluded.state,
           updated_at = excluded.updated_at, discovered = 1",
    )
    .bind(person.to_string())
    .bind(system.to_string())
    .bind(state.as_str())
    .bind(now)
    .execute(c)
    .await?;
    Ok(())
}

/// Records every grant the person holds `granted` on `system` as perhaps held (`uncertain`):
/// the account they were on is gone.
pub async fn mark_system_grants_uncertain(
    c: &mut Conn,
    person: &str,
    system: &str,
    now: i64,
) -> Result<()> {
    db::query(
        "UPDATE grants SET state = 'uncertain', updated_at = $3
          WHERE person_id = $1 AND system = $2 AND state = 'granted'",
    )
    .bind(person.to_string())
    .bind(system.to_string())
    .bind(now)
    .execute(c)
    .await?;
    Ok(())
}

/// Records a grant as perhaps held (`uncertain`), so the person's next run judges it; a grant
/// tenure has no row for is recorded as `discovered` by reconciliation `run`.
pub async fn mark_grant_uncertain(
    c: &mut Conn,
    person: &str,
    entitlement: &str,
    system: &str,
    run: &str,
    now: i64,
) -> Result<()> {
    db::query(
        "INSERT INTO grants (person_id, entitlement, system, source, source_ref, state, updated_at)
         VALUES ($1, $2, $3, 'discovered', $4, 'uncertain', $5)
         ON CONFLICT (person_id, entitlement) DO UPDATE SET state = 'uncertain',
           updated_at = excluded.updated_at",
    )
    .bind(person.to_string())
    .bind(entitlement.to_string())
    .bind(system.to_string())
    .bind(run.to_string())
    .bind(now)
    .execute(c)
    .await?;
    Ok(())
}
