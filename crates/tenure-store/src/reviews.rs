//! Access review campaigns and their items (migration 18).

use crate::Result;
use crate::db::{self, Conn, Row};
use crate::queries::{corrupt, in_list, parse, push_placeholders};
use tenure_core::review::{
    CampaignDefinition, CampaignState, ItemOutcome, Recommendation, ReviewDecision, SettledBy,
    Signals, recommend,
};
use tenure_core::{GrantSource, Risk};

/// A stored campaign.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignRow {
    /// Its id.
    pub id: String,
    /// The definition's name (`[[reviews]]`), or the name given over the API.
    pub name: String,
    /// What it covers and how it runs, frozen when it opened.
    pub definition: CampaignDefinition,
    /// Open or closed.
    pub state: CampaignState,
    /// Who opened it (`scheduler` for a recurrence).
    pub opened_by: String,
    /// When (epoch ms).
    pub opened_at: i64,
    /// When reviewers' time ends.
    pub due_at: i64,
    /// When it closed.
    pub closed_at: Option<i64>,
    /// Who closed it (`scheduler` at its end).
    pub closed_by: Option<String>,
    /// How many items it has.
    pub items: i64,
    /// How many of them a reviewer decided.
    pub decided: i64,
}

const CAMPAIGN_COLS: &str = "id, name, definition, state, opened_by, opened_at, due_at, closed_at, closed_by, items, decided";

fn campaign_row(r: &Row) -> Result<CampaignRow> {
    Ok(CampaignRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        definition: serde_json::from_str(&r.try_get::<String, _>("definition")?)
            .map_err(corrupt)?,
        state: parse(&r.try_get::<String, _>("state")?)?,
        opened_by: r.try_get("opened_by")?,
        opened_at: r.try_get("opened_at")?,
        due_at: r.try_get("due_at")?,
        closed_at: r.try_get("closed_at")?,
        closed_by: r.try_get("closed_by")?,
        items: r.try_get("items")?,
        decided: r.try_get("decided")?,
    })
}

/// Stores a new campaign.
pub async fn insert_campaign(c: &mut Conn, row: &CampaignRow) -> Result<()> {
    let definition = serde_json::to_string(&row.definition).map_err(corrupt)?;
    db::query(db::AssertSqlSafe(format!(
        "INSERT INTO review_campaigns ({CAMPAIGN_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    )))
    .bind(row.id.clone())
    .bind(row.name.clone())
    .bind(definition)
    .bind(row.state.as_str())
    .bind(row.opened_by.clone())
    .bind(row.opened_at)
    .bind(row.due_at)
    .bind(row.closed_at)
    .bind(row.closed_by.clone())
    .bind(row.items)
    .bind(row.decided)
    .execute(c)
    .await?;
    Ok(())
}

/// A campaign by id.
pub async fn get_campaign(c: &mut Conn, id: &str) -> Result<Option<CampaignRow>> {
    db::query(db::AssertSqlSafe(format!(
        "SELECT {CAMPAIGN_COLS} FROM review_campaigns WHERE id = $1"
    )))
    .bind(id.to_string())
    .fetch_optional(c)
    .await?
    .map(|r| campaign_row(&r))
    .transpose()
}

/// Campaigns, newest first: open ones, closed ones, or all; a page before `before` (an id).
pub async fn list_campaigns(
    c: &mut Conn,
    state: Option<CampaignState>,
    before: Option<&str>,
    limit: i64,
) -> Result<Vec<CampaignRow>> {
    let mut sql = format!("SELECT {CAMPAIGN_COLS} FROM review_campaigns WHERE 1 = 1");
    let mut n = 0;
    let mut arg = || {
        n += 1;
        format!("${n}")
    };
    if state.is_some() {
        sql.push_str(&format!(" AND state = {}", arg()));
    }
    if before.is_some() {
        sql.push_str(&format!(" AND id < {}", arg()));
    }
    sql.push_str(&format!(" ORDER BY id DESC LIMIT {}", arg()));
    let mut q = db::query(db::AssertSqlSafe(sql));
    if let Some(s) = state {
        q = q.bind(s.as_str());
    }
    if let Some(b) = before {
        q = q.bind(b.to_string());
    }
    q.bind(limit)
        .fetch_all(c)
        .await?
        .iter()
        .map(campaign_row)
        .collect()
}

/// Whether a campaign of this name is open.
pub async fn open_campaign_named(c: &mut Conn, name: &str) -> Result<Option<String>> {
    let r = db::query(
        "SELECT id FROM review_campaigns WHERE name = $1 AND state = 'open' ORDER BY opened_at DESC LIMIT 1",
    )
    .bind(name.to_string())
    .fetch_optional(c)
    .await?;
    r.map(|r| r.try_get(0)).transpose()
}

/// Adds `decided` newly decided items to a campaign's count.
pub async fn count_decided(c: &mut Conn, id: &str, decided: i64) -> Result<()> {
    db::query("UPDATE review_campaigns SET decided = decided + $1 WHERE id = $2")
        .bind(decided)
        .bind(id.to_string())
        .execute(c)
        .await?;
    Ok(())
}

/// Marks a campaign closed.
pub async fn close_campaign(c: &mut Conn, id: &str, by: &str, at: i64) -> Result<bool> {
    let done = db::query(
        "UPDATE review_campaigns SET state = 'closed', closed_at = $1, closed_by = $2
         WHERE id = $3 AND state = 'open'",
    )
    .bind(at)
    .bind(by.to_string())
    .bind(id.to_string())
    .execute(c)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Open items across open campaigns, and those of them past their campaign's end.
pub async fn review_gauges(c: &mut Conn, now: i64) -> Result<(i64, i64)> {
    let r = db::query(
        "SELECT CAST(COALESCE(SUM(items - decided), 0) AS BIGINT),
                CAST(COALESCE(SUM(CASE WHEN due_at <= $1 THEN items - decided ELSE 0 END), 0) AS BIGINT)
         FROM review_campaigns WHERE state = 'open'",
    )
    .bind(now)
    .fetch_one(c)
    .await?;
    Ok((r.try_get(0)?, r.try_get(1)?))
}

/// A stored item: one (person, entitlement) held when its campaign opened.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemRow {
    /// Its campaign.
    pub campaign_id: String,
    /// Its number in the campaign, from 1.
    pub seq: i64,
    /// Whose access.
    pub person_id: String,
    /// What access.
    pub entitlement: String,
    /// On which system.
    pub system: String,
    /// The entitlement's risk when the campaign opened.
    pub risk: Risk,
    /// How the grant was given.
    pub source: GrantSource,
    /// The template, engagement or request.
    pub source_ref: String,
    /// When it was granted.
    pub granted_at: Option<i64>,
    /// A person id or `team:NAME`; `None`: admins decide.
    pub reviewer: Option<String>,
    /// What was known of the item when the campaign opened (stored in the `recommendation`
    /// column in a few bytes, [`Signals::encode`]).
    pub signals: Option<Signals>,
    /// What those facts recommend, with the evidence ([`tenure_core::review::recommend`]).
    pub recommendation: Option<Recommendation>,
    /// The reviewer's decision.
    pub decision: Option<ReviewDecision>,
    /// Why.
    pub justification: Option<String>,
    /// Who decided.
    pub decided_by: Option<String>,
    /// For whom (the reviewer a delegate stood in for).
    pub decided_for: Option<String>,
    /// When.
    pub decided_at: Option<i64>,
    /// Who settled it once applied: the reviewer, the campaign's default, the recommendation.
    pub settled_by: Option<SettledBy>,
    /// What it came to.
    pub outcome: Option<ItemOutcome>,
    /// The revocation run that carried a `revoke` out.
    pub run_id: Option<String>,
    /// When its result was applied.
    pub applied_at: Option<i64>,
}

const ITEM_COLS: &str = "campaign_id, seq, person_id, entitlement, system, risk, source, source_ref, \
    granted_at, reviewer, recommendation, decision, justification, decided_by, decided_for, \
    decided_at, settled_by, outcome, run_id, applied_at";

fn opt<T: std::str::FromStr>(s: Option<String>) -> Result<Option<T>>
where
    T::Err: std::fmt::Display,
{
    s.as_deref().map(parse).transpose()
}

fn item_row(r: &Row) -> Result<ItemRow> {
    let source: GrantSource = parse(&r.try_get::<String, _>("source")?)?;
    let signals = r
        .try_get::<Option<String>, _>("recommendation")?
        .map(|s| Signals::decode(&s, source).map_err(corrupt))
        .transpose()?;
    Ok(ItemRow {
        campaign_id: r.try_get("campaign_id")?,
        seq: r.try_get("seq")?,
        person_id: r.try_get("person_id")?,
        entitlement: r.try_get("entitlement")?,
        system: r.try_get("system")?,
        risk: parse(&r.try_get::<String, _>("risk")?)?,
        source,
        source_ref: r.try_get("source_ref")?,
        granted_at: r.try_get("granted_at")?,
        reviewer: r.try_get("reviewer")?,
        signals,
        recommendation: signals.as_ref().and_then(recommend),
        decision: opt(r.try_get("decision")?)?,
        justification: r.try_get("justification")?,
        decided_by: r.try_get("decided_by")?,
        decided_for: r.try_get("decided_for")?,
        decided_at: r.try_get("decided_at")?,
        settled_by: opt(r.try_get("settled_by")?)?,
        outcome: opt(r.try_get("outcome")?)?,
        run_id: r.try_get("run_id")?,
        applied_at: r.try_get("applied_at")?,
    })
}

/// Stores a campaign's items, many rows per statement.
pub async fn insert_review_items(c: &mut Conn, items: &[ItemRow]) -> Result<()> {
    const COLS: usize = 11;
    let sqlite = c.is_sqlite();
    for chunk in items.chunks(500) {
        let mut sql = String::from(
            "INSERT INTO review_items (campaign_id, seq, person_id, entitlement, system, risk, \
             source, source_ref, granted_at, reviewer, recommendation) VALUES ",
        );
        push_placeholders(&mut sql, chunk.len(), COLS, sqlite);
        let mut q = db::query(db::AssertSqlSafe(sql));
        for i in chunk {
            let recommendation = i.signals.as_ref().map(Signals::encode);
            q = q
                .bind(i.campaign_id.clone())
                .bind(i.seq)
                .bind(i.person_id.clone())
                .bind(i.entitlement.clone())
                .bind(i.system.clone())
                .bind(i.risk.as_str())
                .bind(i.source.as_str())
                .bind(i.source_ref.clone())
                .bind(i.granted_at)
                .bind(i.reviewer.clone())
                .bind(recommendation);
        }
        q.execute(&mut *c).await?;
    }
    Ok(())
}

/// Which of a campaign's items to list.
#[derive(Debug, Clone, Default)]
pub struct ItemFilter<'a> {
    /// The campaign.
    pub campaign_id: &'a str,
    /// Only items waiting for one of these reviewers (stored forms; an empty string stands
    /// for "nobody named"); `None`: every reviewer's.
    pub reviewers: Option<&'a [String]>,
    /// Only undecided (`Some(false)`) or decided (`Some(true)`) items.
    pub decided: Option<bool>,
    /// Only this person's items.
    pub person_id: Option<&'a str>,
    /// After this item number.
    pub after: i64,
    /// At most this many.
    pub limit: i64,
}

/// The reviewers of `list` who are named (an empty string stands for "nobody named").
fn named(list: &[String]) -> impl Iterator<Item = &String> {
    list.iter().filter(|r| !r.is_empty())
}

/// The condition that an item waits for one of `reviewers` (stored forms; an empty string:
/// items nobody was named for), its placeholders taken from `next` in the order of
/// [`named`]; `None` when the list matches nothing.
fn reviewer_condition(reviewers: &[String], next: &mut impl FnMut() -> String) -> Option<String> {
    let mut parts = Vec::new();
    let marks: Vec<String> = named(reviewers).map(|_| next()).collect();
    if !marks.is_empty() {
        parts.push(format!("reviewer IN ({})", marks.join(", ")));
    }
    if reviewers.iter().any(|r| r.is_empty()) {
        parts.push("reviewer IS NULL".to_string());
    }
    (!parts.is_empty()).then(|| format!("({})", parts.join(" OR ")))
}

/// A page of a campaign's items, in item order.
pub async fn review_items(c: &mut Conn, f: &ItemFilter<'_>) -> Result<Vec<ItemRow>> {
    let mut sql =
        format!("SELECT {ITEM_COLS} FROM review_items WHERE campaign_id = $1 AND seq > $2");
    let mut n = 2;
    let mut next = || {
        n += 1;
        format!("${n}")
    };
    if let Some(list) = f.reviewers {
        let Some(cond) = reviewer_condition(list, &mut next) else {
            return Ok(Vec::new());
        };
        sql.push_str(&format!(" AND {cond}"));
    }
    match f.decided {
        Some(true) => sql.push_str(" AND decision IS NOT NULL"),
        Some(false) => sql.push_str(" AND decision IS NULL"),
        None => {}
    }
    if f.person_id.is_some() {
        sql.push_str(&format!(" AND person_id = {}", next()));
    }
    sql.push_str(&format!(" ORDER BY seq LIMIT {}", next()));
    let mut q = db::query(db::AssertSqlSafe(sql))
        .bind(f.campaign_id.to_string())
        .bind(f.after);
    for r in named(f.reviewers.unwrap_or_default()) {
        q = q.bind(r.clone());
    }
    if let Some(p) = f.person_id {
        q = q.bind(p.to_string());
    }
    q.bind(f.limit)
        .fetch_all(c)
        .await?
        .iter()
        .map(item_row)
        .collect()
}

/// Some items of a campaign by number.
pub async fn review_items_by_seq(
    c: &mut Conn,
    campaign: &str,
    seqs: &[i64],
) -> Result<Vec<ItemRow>> {
    let mut out = Vec::with_capacity(seqs.len());
    let sqlite = c.is_sqlite();
    for chunk in seqs.chunks(500) {
        let first = if sqlite { "?" } else { "$1" };
        let mut sql =
            format!("SELECT {ITEM_COLS} FROM review_items WHERE campaign_id = {first} AND seq IN ");
        in_list(&mut sql, chunk.len(), sqlite, 2);
        let mut q = db::query(db::AssertSqlSafe(sql)).bind(campaign.to_string());
        for s in chunk {
            q = q.bind(*s);
        }
        for r in q.fetch_all(&mut *c).await? {
            out.push(item_row(&r)?);
        }
    }
    out.sort_by_key(|i| i.seq);
    Ok(out)
}

/// Records a reviewer's decision on an item still undecided; false when it was decided.
pub async fn record_review_decision(c: &mut Conn, item: &ItemRow) -> Result<bool> {
    let done = db::query(
        "UPDATE review_items SET decision = $1, justification = $2, decided_by = $3,
             decided_for = $4, decided_at = $5
         WHERE campaign_id = $6 AND seq = $7 AND decision IS NULL",
    )
    .bind(item.decision.map(|d| d.as_str()))
    .bind(item.justification.clone())
    .bind(item.decided_by.clone())
    .bind(item.decided_for.clone())
    .bind(item.decided_at)
    .bind(item.campaign_id.clone())
    .bind(item.seq)
    .execute(c)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records what an item came to once applied.
pub async fn record_review_outcome(c: &mut Conn, item: &ItemRow) -> Result<()> {
    db::query(
        "UPDATE review_items SET settled_by = $1, outcome = $2, run_id = $3, applied_at = $4
         WHERE campaign_id = $5 AND seq = $6",
    )
    .bind(item.settled_by.map(|s| s.as_str()))
    .bind(item.outcome.map(|o| o.as_str()))
    .bind(item.run_id.clone())
    .bind(item.applied_at)
    .bind(item.campaign_id.clone())
    .bind(item.seq)
    .execute(c)
    .await?;
    Ok(())
}

/// Items of a campaign not applied yet, in item order, after `after`.
pub async fn unapplied_review_items(
    c: &mut Conn,
    campaign: &str,
    after: i64,
    limit: i64,
) -> Result<Vec<ItemRow>> {
    db::query(db::AssertSqlSafe(format!(
        "SELECT {ITEM_COLS} FROM review_items
         WHERE campaign_id = $1 AND seq > $2 AND applied_at IS NULL ORDER BY seq LIMIT $3"
    )))
    .bind(campaign.to_string())
    .bind(after)
    .bind(limit)
    .fetch_all(c)
    .await?
    .iter()
    .map(item_row)
    .collect()
}

/// Settles every undecided, unapplied item of a campaign as kept by the campaign's default
/// in one statement; returns how many.
pub async fn keep_undecided_review_items(c: &mut Conn, campaign: &str, at: i64) -> Result<u64> {
    let done = db::query(
        "UPDATE review_items SET settled_by = 'default', outcome = 'kept', applied_at = $1
         WHERE campaign_id = $2 AND applied_at IS NULL AND decision IS NULL",
    )
    .bind(at)
    .bind(campaign.to_string())
    .execute(c)
    .await?;
    Ok(done.rows_affected())
}

/// Settles every kept, unapplied item of a campaign in one statement; returns how many.
pub async fn apply_kept_review_items(c: &mut Conn, campaign: &str, at: i64) -> Result<u64> {
    let done = db::query(
        "UPDATE review_items SET settled_by = 'reviewer', outcome = 'kept', applied_at = $1
         WHERE campaign_id = $2 AND applied_at IS NULL AND decision = 'keep'",
    )
    .bind(at)
    .bind(campaign.to_string())
    .execute(c)
    .await?;
    Ok(done.rows_affected())
}

/// The reviewers of a campaign's open items, each with how many wait for them.
pub async fn open_items_by_reviewer(
    c: &mut Conn,
    campaign: &str,
) -> Result<Vec<(Option<String>, i64)>> {
    db::query(
        "SELECT reviewer, COUNT(*) FROM review_items
         WHERE campaign_id = $1 AND decision IS NULL GROUP BY reviewer ORDER BY reviewer",
    )
    .bind(campaign.to_string())
    .fetch_all(c)
    .await?
    .iter()
    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
    .collect()
}

/// How many undecided items of each of `campaigns` wait for one of `reviewers` (stored forms;
/// an empty string stands for "nobody named", as in [`ItemFilter`]), leaving out those about
/// `except`'s own access. Campaigns with none are left out.
pub async fn count_waiting_items(
    c: &mut Conn,
    campaigns: &[String],
    reviewers: &[String],
    except: &str,
) -> Result<Vec<(String, i64)>> {
    if campaigns.is_empty() {
        return Ok(Vec::new());
    }
    let mut n = 1;
    let mut next = || {
        n += 1;
        format!("${n}")
    };
    let ids: Vec<String> = campaigns.iter().map(|_| next()).collect();
    let Some(who) = reviewer_condition(reviewers, &mut next) else {
        return Ok(Vec::new());
    };
    let sql = format!(
        "SELECT campaign_id, COUNT(*) FROM review_items
         WHERE person_id <> $1 AND decision IS NULL AND campaign_id IN ({}) AND {who}
         GROUP BY campaign_id ORDER BY campaign_id DESC",
        ids.join(", ")
    );
    let mut q = db::query(db::AssertSqlSafe(sql)).bind(except.to_string());
    for id in campaigns {
        q = q.bind(id.clone());
    }
    for r in named(reviewers) {
        q = q.bind(r.clone());
    }
    q.fetch_all(c)
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// Every granted grant, a page in (person, entitlement) order after `after`.
pub async fn held_grants(
    c: &mut Conn,
    after: Option<(&str, &str)>,
    limit: i64,
) -> Result<Vec<(tenure_core::Grant, String)>> {
    let (p, e) = after.unwrap_or(("", ""));
    let rows = db::query(
        "SELECT person_id, entitlement, system, source, source_ref, state, granted_at, expires_at
         FROM grants WHERE state = 'granted' AND (person_id, entitlement) > ($1, $2)
         ORDER BY person_id, entitlement LIMIT $3",
    )
    .bind(p.to_string())
    .bind(e.to_string())
    .bind(limit)
    .fetch_all(c)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                tenure_core::Grant {
                    person_id: r.try_get(0)?,
                    entitlement: r.try_get(1)?,
                    source: parse(&r.try_get::<String, _>(3)?)?,
                    source_ref: r.try_get(4)?,
                    state: parse(&r.try_get::<String, _>(5)?)?,
                    granted_at: r.try_get(6)?,
                    expires_at: r.try_get(7)?,
                },
                r.try_get::<String, _>(2)?,
            ))
        })
        .collect()
}

/// Every active engagement.
pub async fn active_engagements(c: &mut Conn) -> Result<Vec<tenure_core::Engagement>> {
    db::query("SELECT data FROM engagements WHERE active = 1")
        .fetch_all(c)
        .await?
        .iter()
        .map(|r| serde_json::from_str(&r.try_get::<String, _>(0)?).map_err(corrupt))
        .collect()
}

/// An audit entry that proves what became of a campaign's item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewProof {
    /// Its sequence number in the chain.
    pub seq: i64,
    /// `review.decided`, `review.revoked`, `review.flagged` or `step.revoke`.
    pub action: String,
    /// The item it is about (the `review.*` entries).
    pub item: Option<i64>,
    /// The run (the revocations).
    pub run_id: Option<String>,
    /// The entitlement.
    pub entitlement: Option<String>,
}

/// The audit entries about `people` that prove a campaign's items: its decisions,
/// revocations and flags, and the people's revocations done on the systems (for the caller
/// to match by run and entitlement). Read through the person index.
pub async fn review_proofs(
    c: &mut Conn,
    campaign: &str,
    people: &[String],
) -> Result<Vec<ReviewProof>> {
    let sqlite = c.is_sqlite();
    let mut out = Vec::new();
    for chunk in people.chunks(500) {
        let mut marks = String::new();
        in_list(&mut marks, chunk.len(), sqlite, 2);
        let first = if sqlite { "?" } else { "$1" };
        let sql = format!(
            "SELECT seq, action, run_id, entitlement, details FROM audit_log
             WHERE correlation_id = {first} AND person_id IN {marks}
               AND action IN ('review.decided', 'review.revoked', 'review.flagged')
             UNION ALL
             SELECT seq, action, run_id, entitlement, NULL FROM audit_log
             WHERE person_id IN {marks} AND action = 'step.revoke' AND run_id IS NOT NULL"
        );
        let mut q = db::query(db::AssertSqlSafe(sql)).bind(campaign.to_string());
        for p in chunk {
            q = q.bind(p.clone());
        }
        if sqlite {
            // `?` marks are numbered in order of appearance: the list again.
            for p in chunk {
                q = q.bind(p.clone());
            }
        }
        for r in q.fetch_all(&mut *c).await? {
            let details: Option<String> = r.try_get(4)?;
            let item = details
                .as_deref()
                .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
                .and_then(|d| d.get("item").and_then(|i| i.as_i64()));
            out.push(ReviewProof {
                seq: r.try_get(0)?,
                action: r.try_get(1)?,
                item,
                run_id: r.try_get(2)?,
                entitlement: r.try_get(3)?,
            });
        }
    }
    Ok(out)
}

/// Hands `from`'s undecided items of a campaign to `to` (a stored reviewer; `None`: admins),
/// except items about `to` itself, which go to admins: nobody reviews their own access.
/// Returns how many moved.
pub async fn hand_over_review_items(
    c: &mut Conn,
    campaign: &str,
    from: &str,
    to: Option<&str>,
) -> Result<u64> {
    let done = db::query(
        "UPDATE review_items SET reviewer = CASE WHEN person_id = $1 THEN NULL ELSE $1 END
         WHERE campaign_id = $2 AND reviewer = $3 AND decision IS NULL",
    )
    .bind(to.map(str::to_string))
    .bind(campaign.to_string())
    .bind(from.to_string())
    .execute(c)
    .await?;
    Ok(done.rows_affected())
}

/// Records undecided or kept items as settled `kept` by `by`, many per statement.
pub async fn keep_review_items(
    c: &mut Conn,
    campaign: &str,
    seqs: &[i64],
    by: SettledBy,
    at: i64,
) -> Result<()> {
    let sqlite = c.is_sqlite();
    for chunk in seqs.chunks(500) {
        let (a, b, d) = if sqlite {
            ("?", "?", "?")
        } else {
            ("$1", "$2", "$3")
        };
        let mut sql = format!(
            "UPDATE review_items SET settled_by = {a}, outcome = 'kept', applied_at = {b}
             WHERE campaign_id = {d} AND seq IN "
        );
        in_list(&mut sql, chunk.len(), sqlite, 4);
        let mut q = db::query(db::AssertSqlSafe(sql))
            .bind(by.as_str())
            .bind(at)
            .bind(campaign.to_string());
        for s in chunk {
            q = q.bind(*s);
        }
        q.execute(&mut *c).await?;
    }
    Ok(())
}
