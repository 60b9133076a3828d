//! Access reviews: open a campaign (its items frozen from the grants held then, each with its
//! reviewer and recommendation), record decisions, and apply the results through runs.
//!
//! What may be decided, by whom, what is recommended and what an undecided item comes to are
//! `tenure_core::review`'s to say; this file loads what those functions need and writes what
//! they decide, every change with its audit entry in one transaction. A `revoke` becomes a run
//! of kind `review` with one revoke step per item, planned, claimed, called and audited as any
//! other run's steps; access a role template gives back at once is flagged to the template's
//! owner instead of being revoked in a loop.

use crate::context::Inner;
use crate::error::{EngineError, Result};
use crate::gates::notify;
use crate::timers::{cancel, schedule};
use chrono::DateTime;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use tenure_core::audit::AuditAction;
use tenure_core::config::{ClientFacts, Config};
use tenure_core::planner::{self, Action};
use tenure_core::review::{
    self, ApplyAt, CampaignDefinition, CampaignState, DAY_MS, DecideError, InScope, ItemOutcome,
    PeerGroup, PeerShare, ReviewDecision, Reviewer, ReviewerKind, SettledBy, Signals,
    WhenUndecided,
};
use tenure_core::run::{Priority, RunKind, RunState};
use tenure_core::timer::{ReviewOpening, ReviewTimer, Timer, TimerKind};
use tenure_core::{GrantSource, GrantState, Person};
use tenure_store::{CampaignRow, ItemRow, NewAudit, NewStep, RunRow, StepRow, Tx};

/// Grants read per statement when a campaign opens.
const GRANT_PAGE: i64 = 20_000;
/// Items settled per statement batch when a campaign closes.
const SETTLE_PAGE: i64 = 2_000;
/// The most items one decision may cover.
pub const MAX_DECISION_ITEMS: usize = 1_000;
/// The longest justification.
pub const MAX_JUSTIFICATION: usize = 2_000;

/// A campaign to open.
#[derive(Debug, Clone)]
pub struct OpenCampaign {
    /// Its name: a `[[reviews]]` definition's, or one given over the API.
    pub name: String,
    /// What it covers and how it runs.
    pub definition: CampaignDefinition,
    /// Who opens it.
    pub actor: String,
}

/// Opens a campaign: one item per (person, entitlement) in scope, frozen now.
pub(crate) async fn open(inner: &Arc<Inner>, req: OpenCampaign) -> Result<CampaignRow> {
    let rules = inner.rules();
    let problems = req.definition.problems(&rules.config.approvals.teams);
    let problems: Vec<String> = problems
        .into_iter()
        .chain(
            req.definition
                .scope
                .unknown_names(&rules.config.systems, &rules.config.entitlements),
        )
        .collect();
    if !problems.is_empty() {
        return Err(EngineError::Invalid {
            field: "definition".into(),
            message: problems.join("; "),
        });
    }
    let started = std::time::Instant::now();
    let pop = population_read_apart(&inner.store, &rules.config).await?;
    let read = started.elapsed();
    let mut tx = inner.store.begin().await?;
    let now = inner.clock.now_ms();
    if let Some(id) = tenure_store::open_campaign_named(tx.conn(), &req.name).await? {
        return Err(EngineError::Conflict(format!(
            "campaign `{id}` named `{}` is still open; close it first",
            req.name
        )));
    }
    let row = open_in(
        inner,
        &mut tx,
        &req.name,
        req.definition,
        &req.actor,
        now,
        pop,
    )
    .await?;
    tracing::info!(campaign = %row.id, read_ms = read.as_millis() as u64, "read before the writer was taken");
    tx.commit().await?;
    inner.wake_all();
    Ok(row)
}

/// What a campaign's opening reads of everyone, once.
struct Population {
    people: HashMap<String, Person>,
    /// Working people per peer group (department, title).
    peers: HashMap<(String, String), u32>,
    /// Holders per peer group and entitlement.
    holders: HashMap<(String, String, String), u32>,
    /// Active engagements: id to (client, role).
    engagements: HashMap<String, (String, String)>,
    /// People on an active engagement per (client, role).
    crew: HashMap<(String, String), u32>,
    /// Of those, holders per (client, role, entitlement).
    crew_holders: HashMap<(String, String, String), u32>,
    clients: ClientFacts,
    /// Every grant held, with its system, read once.
    grants: Vec<(tenure_core::Grant, String)>,
}

/// A person's peer group: same department and title, compared without case.
fn peer_key(p: &Person) -> Option<(String, String)> {
    Some((
        p.department.as_deref()?.trim().to_lowercase(),
        p.title.as_deref()?.trim().to_lowercase(),
    ))
}

/// Everyone, by id.
async fn read_people(c: &mut tenure_store::Conn) -> Result<HashMap<String, Person>> {
    let mut people = HashMap::new();
    let mut after: Option<String> = None;
    loop {
        let page = tenure_store::list_people(c, after.as_deref(), 5_000).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        people.extend(page.into_iter().map(|p| (p.id.clone(), p)));
    }
    Ok(people)
}

/// Every grant held, with its system, a page at a time.
async fn read_grants(c: &mut tenure_store::Conn) -> Result<Vec<(tenure_core::Grant, String)>> {
    let mut grants = Vec::new();
    let mut after: Option<(String, String)> = None;
    loop {
        let page = tenure_store::held_grants(
            c,
            after.as_ref().map(|(p, e)| (p.as_str(), e.as_str())),
            GRANT_PAGE,
        )
        .await?;
        let Some((last, _)) = page.last() else { break };
        after = Some((last.person_id.clone(), last.entitlement.clone()));
        grants.extend(page);
    }
    Ok(grants)
}

/// Reads everything a campaign's items are made from, once, in the caller's transaction (the
/// scheduler's, for a recurrence).
async fn population(c: &mut tenure_store::Conn, config: &Config) -> Result<Population> {
    let people = read_people(c).await?;
    let grants = read_grants(c).await?;
    let active = tenure_store::active_engagements(c).await?;
    let told = tenure_store::list_clients(c).await?;
    Ok(assemble(config, people, grants, active, told))
}

/// The same, through two readers at once (the grants on one, everything else on the other),
/// before the writer is taken: for a campaign opened by hand. Its items are as of the moment
/// it opens.
async fn population_read_apart(store: &tenure_store::Store, config: &Config) -> Result<Population> {
    let grants_store = store.clone();
    let grants = tokio::spawn(async move {
        let mut c = grants_store.reader().await?;
        read_grants(&mut c).await
    });
    let mut c = store.reader().await?;
    let people = read_people(&mut c).await?;
    let active = tenure_store::active_engagements(&mut c).await?;
    let told = tenure_store::list_clients(&mut c).await?;
    drop(c);
    let grants = grants
        .await
        .map_err(|e| EngineError::Unavailable(format!("reading the grants held: {e}")))??;
    Ok(assemble(config, people, grants, active, told))
}

/// Counts each peer group's people and holdings.
fn assemble(
    config: &Config,
    people: HashMap<String, Person>,
    grants: Vec<(tenure_core::Grant, String)>,
    active: Vec<tenure_core::Engagement>,
    told: Vec<tenure_core::Client>,
) -> Population {
    let mut peers = HashMap::new();
    for p in people.values().filter(|p| p.status.is_working()) {
        if let Some(k) = peer_key(p) {
            *peers.entry(k).or_insert(0u32) += 1;
        }
    }
    // A person's (client, role) pairs, each counted once however many engagements make it.
    let mut roles_of: HashMap<String, HashSet<(String, String)>> = HashMap::new();
    let mut engagements = HashMap::new();
    for e in active {
        let key = (e.client_id.clone(), e.role.to_lowercase());
        roles_of
            .entry(e.person_id.clone())
            .or_default()
            .insert(key.clone());
        engagements.insert(e.id, key);
    }
    let mut crew = HashMap::new();
    for keys in roles_of.values() {
        for k in keys {
            *crew.entry(k.clone()).or_insert(0u32) += 1;
        }
    }
    let mut crew_holders = HashMap::new();
    let mut holders = HashMap::new();
    for (g, _) in &grants {
        if let Some((d, t)) = people
            .get(&g.person_id)
            .filter(|p| p.status.is_working())
            .and_then(peer_key)
        {
            *holders.entry((d, t, g.entitlement.clone())).or_insert(0u32) += 1;
        }
        for (client, role) in roles_of.get(&g.person_id).into_iter().flatten() {
            let key = (client.clone(), role.clone(), g.entitlement.clone());
            *crew_holders.entry(key).or_insert(0u32) += 1;
        }
    }
    Population {
        people,
        peers,
        holders,
        engagements,
        crew,
        crew_holders,
        clients: ClientFacts::new(config, told),
        grants,
    }
}

/// The reviewer the model names for an item, before the fallback.
fn named_reviewer(
    config: &Config,
    clients: &ClientFacts,
    def: &CampaignDefinition,
    person: &Person,
    entitlement: &str,
) -> Option<Reviewer> {
    let teams = &config.approvals.teams;
    let ent = config.entitlements.get(entitlement);
    match def.reviewer {
        ReviewerKind::Manager => person.manager.clone().map(Reviewer::Person),
        ReviewerKind::Owner => ent
            .and_then(|e| e.owner.as_deref())
            .map(|o| Reviewer::named(o, teams)),
        ReviewerKind::ClientOwner => {
            let client = ent
                .and_then(|e| e.client.as_deref())
                .and_then(|c| clients.get(config, c))?;
            let owner = match client.attributes.get("owner")? {
                serde_json::Value::String(o) => Some(o.as_str()),
                serde_json::Value::Array(list) => list.iter().find_map(|v| v.as_str()),
                _ => None,
            }?;
            Some(Reviewer::named(owner, teams))
        }
        ReviewerKind::Team => def.team.clone().map(Reviewer::Team),
    }
}

/// Whether what gave a grant still does.
fn still_given(
    config: &Config,
    engagements: &HashMap<String, (String, String)>,
    person: &Person,
    g: &tenure_core::Grant,
    now: i64,
) -> bool {
    match g.source {
        GrantSource::Birthright => config.templates.iter().any(|t| {
            t.id == g.source_ref
                && t.rule.matches_person(person)
                && t.entitlements.contains(&g.entitlement)
        }),
        GrantSource::Engagement => engagements.contains_key(&g.source_ref),
        GrantSource::Request => g.expires_at.is_none_or(|t| t > now),
        GrantSource::Discovered => false,
    }
}

/// The person's peers for a grant: those on the same client in the same role when an
/// engagement gave it (and is still active), else those with the same department and title.
/// The person is not their own peer.
fn peers_of(pop: &Population, person: &Person, g: &tenure_core::Grant) -> Option<PeerShare> {
    if g.source == GrantSource::Engagement
        && let Some((client, role)) = pop.engagements.get(&g.source_ref)
    {
        let key = (client.clone(), role.clone());
        let crew = pop.crew.get(&key).copied().unwrap_or(0);
        let holding = pop
            .crew_holders
            .get(&(key.0, key.1, g.entitlement.clone()))
            .copied()
            .unwrap_or(0);
        return Some(PeerShare {
            group: PeerGroup::ClientRole,
            holding: holding.saturating_sub(1),
            peers: crew.saturating_sub(1),
        });
    }
    let k = peer_key(person)?;
    let in_group = pop.peers.get(&k).copied().unwrap_or(0);
    let holding = pop
        .holders
        .get(&(k.0, k.1, g.entitlement.clone()))
        .copied()
        .unwrap_or(0);
    let me = u32::from(person.status.is_working());
    Some(PeerShare {
        group: PeerGroup::DepartmentTitle,
        holding: holding.saturating_sub(me),
        peers: in_group.saturating_sub(me),
    })
}

/// The items of a campaign over `pop`, sent `chunk` by chunk; returns how many, how many
/// grants were read, and how many items each reviewer has.
fn make_items(
    config: &Config,
    definition: &CampaignDefinition,
    id: &str,
    pop: &Population,
    now: i64,
    chunks: &tokio::sync::mpsc::Sender<Vec<ItemRow>>,
) -> (i64, usize, BTreeMap<Option<Reviewer>, i64>) {
    let teams = &config.approvals.teams;
    let fallback = definition
        .fallback
        .as_deref()
        .map(|f| Reviewer::named(f, teams));
    let working = |p: &str| pop.people.get(p).is_some_and(|p| p.status.is_working());
    let mut items = Vec::new();
    let mut seq = 0i64;
    let mut per_reviewer: BTreeMap<Option<Reviewer>, i64> = BTreeMap::new();
    for chunk in pop.grants.chunks(10_000) {
        for (g, system) in chunk {
            let (Some(person), Some(ent)) = (
                pop.people.get(&g.person_id),
                config.entitlements.get(&g.entitlement),
            ) else {
                continue;
            };
            let in_scope = InScope {
                entitlement: &g.entitlement,
                system,
                client: ent.client.as_deref(),
                risk: ent.risk,
                source: g.source,
                department: person.department.as_deref(),
                worker_type: person.worker_type,
            };
            if !definition.scope.covers(&in_scope) {
                continue;
            }
            let named = named_reviewer(config, &pop.clients, definition, person, &g.entitlement);
            let reviewer =
                review::pick_reviewer(&person.id, named, fallback.clone(), teams, working);
            let peers = peers_of(pop, person, g);
            let signals = Signals {
                status: person.status,
                source: g.source,
                still_given: still_given(config, &pop.engagements, person, g, now),
                peers,
            };
            seq += 1;
            *per_reviewer.entry(reviewer.clone()).or_insert(0) += 1;
            items.push(ItemRow {
                campaign_id: id.to_string(),
                seq,
                person_id: g.person_id.clone(),
                entitlement: g.entitlement.clone(),
                system: system.clone(),
                risk: ent.risk,
                source: g.source,
                source_ref: g.source_ref.clone(),
                granted_at: g.granted_at,
                reviewer: reviewer.map(|r| r.stored()),
                signals: Some(signals),
                recommendation: None,
                decision: None,
                justification: None,
                decided_by: None,
                decided_for: None,
                decided_at: None,
                settled_by: None,
                outcome: None,
                run_id: None,
                applied_at: None,
            });
        }
        if chunks.blocking_send(std::mem::take(&mut items)).is_err() {
            break; // the writer gave up: its error is the caller's
        }
    }
    (seq, pop.grants.len(), per_reviewer)
}

/// Opens a campaign inside `tx` (the API's, or the scheduler's for a recurrence).
async fn open_in(
    inner: &Inner,
    tx: &mut Tx,
    name: &str,
    definition: CampaignDefinition,
    actor: &str,
    now: i64,
    pop: Population,
) -> Result<CampaignRow> {
    let rules = inner.rules();
    let config = &rules.config;
    let started = std::time::Instant::now();
    let id = format!("rc_{}", uuid::Uuid::now_v7().simple());
    // Items are made on a thread of their own, a chunk at a time, while the writer stores
    // the chunk before: the two cores share the work.
    let (chunks, mut made) = tokio::sync::mpsc::channel::<Vec<ItemRow>>(2);
    let maker = {
        let (config, definition, id) = (rules.config.clone(), definition.clone(), id.clone());
        tokio::task::spawn_blocking(move || {
            make_items(&config, &definition, &id, &pop, now, &chunks)
        })
    };
    let mut inserting = std::time::Duration::ZERO;
    while let Some(items) = made.recv().await {
        let t = std::time::Instant::now();
        tenure_store::insert_review_items(tx.conn(), &items).await?;
        inserting += t.elapsed();
    }
    let (seq, grants, per_reviewer) = maker
        .await
        .map_err(|e| EngineError::Unavailable(format!("making the campaign's items: {e}")))?;
    tracing::info!(
        campaign = %id, name, items = seq, grants,
        insert_ms = inserting.as_millis() as u64,
        total_ms = started.elapsed().as_millis() as u64,
        "access review opened"
    );
    let due_at = now + i64::from(definition.duration_days) * DAY_MS;
    let row = CampaignRow {
        id: id.clone(),
        name: name.to_string(),
        definition,
        state: CampaignState::Open,
        opened_by: actor.to_string(),
        opened_at: now,
        due_at,
        closed_at: None,
        closed_by: None,
        items: seq,
        decided: 0,
    };
    tenure_store::insert_campaign(tx.conn(), &row).await?;
    let timer = ReviewTimer {
        campaign_id: id.clone(),
    };
    if row.definition.auto_close {
        schedule(tx, &Timer::ReviewClose(timer.clone()), due_at, now).await?;
    }
    if let Some(at) = row.definition.reminders(now, due_at).first() {
        schedule(tx, &Timer::ReviewRemind(timer), *at, now).await?;
    }
    if let Some(r) = row.definition.recurrence
        && config.reviews.contains_key(name)
    {
        let opening = Timer::ReviewOpen(ReviewOpening {
            name: name.to_string(),
        });
        schedule(tx, &opening, r.next(now), now).await?;
    }
    tx.audit(NewAudit {
        at_ms: now,
        actor: actor.to_string(),
        action: AuditAction::ReviewOpened.into(),
        reason: format!("access review `{name}` opened with {seq} items"),
        correlation_id: Some(id.clone()),
        details: serde_json::json!({
            "campaign_id": id, "name": name, "items": seq, "due_at": due_at,
            "definition": row.definition,
            "reviewers": per_reviewer.len(),
        }),
        ..Default::default()
    });
    for (reviewer, count) in per_reviewer {
        let Some(reviewer) = reviewer else { continue };
        notify_reviewer(
            inner,
            tx,
            "review.opened",
            &reviewer,
            serde_json::json!({
                "campaign_id": id, "name": name, "reviewer": reviewer.stored(),
                "items": count, "due_at": due_at,
            }),
            now,
        )
        .await?;
    }
    Ok(row)
}

/// A decision on some items of a campaign.
#[derive(Debug, Clone)]
pub struct DecideItems {
    /// The campaign.
    pub campaign_id: String,
    /// The items' numbers.
    pub items: Vec<i64>,
    /// Keep or revoke, for every one of them.
    pub decision: ReviewDecision,
    /// Why (required to keep high or privileged access).
    pub justification: Option<String>,
    /// The person deciding.
    pub actor: String,
    /// Whether the actor is an admin (who decides items no reviewer could be named for).
    pub admin: bool,
}

/// Records a decision on items of an open campaign: all of them, or none (and why).
pub(crate) async fn decide(inner: &Arc<Inner>, d: DecideItems) -> Result<Vec<ItemRow>> {
    if d.items.is_empty() || d.items.len() > MAX_DECISION_ITEMS {
        return Err(EngineError::Invalid {
            field: "items".into(),
            message: format!("name 1 to {MAX_DECISION_ITEMS} items"),
        });
    }
    let justification = d
        .justification
        .as_deref()
        .map(str::trim)
        .filter(|j| !j.is_empty())
        .map(str::to_string);
    if justification
        .as_ref()
        .is_some_and(|j| j.chars().count() > MAX_JUSTIFICATION)
    {
        return Err(EngineError::Invalid {
            field: "justification".into(),
            message: format!("at most {MAX_JUSTIFICATION} characters"),
        });
    }
    let rules = inner.rules();
    let teams = &rules.config.approvals.teams;
    let mut tx = inner.store.begin().await?;
    let now = inner.clock.now_ms();
    let campaign = tenure_store::get_campaign(tx.conn(), &d.campaign_id)
        .await?
        .ok_or_else(|| EngineError::NotFound(format!("campaign `{}`", d.campaign_id)))?;
    if campaign.state == CampaignState::Closed {
        return Err(EngineError::Conflict(DecideError::Closed.to_string()));
    }
    if let Some(person) = tenure_store::get_person(tx.conn(), &d.actor).await?
        && !person.status.is_working()
    {
        return Err(EngineError::Forbidden(format!(
            "`{}` is {}: only people who work here review access",
            d.actor, person.status
        )));
    }
    let delegators = tenure_store::delegators_of(tx.conn(), &d.actor, now).await?;
    let mut wanted = d.items.clone();
    wanted.sort_unstable();
    wanted.dedup();
    let found = tenure_store::review_items_by_seq(tx.conn(), &campaign.id, &wanted).await?;
    if found.len() != wanted.len() {
        let have: HashSet<i64> = found.iter().map(|i| i.seq).collect();
        let missing = wanted
            .iter()
            .find(|s| !have.contains(s))
            .copied()
            .unwrap_or(0);
        return Err(EngineError::NotFound(format!(
            "item {missing} of campaign `{}`",
            campaign.id
        )));
    }
    let mut decided = Vec::with_capacity(found.len());
    for mut item in found {
        let reviewer = item.reviewer.as_deref().map(Reviewer::from_stored);
        let on_behalf_of = review::may_decide(
            reviewer.as_ref(),
            &item.person_id,
            &d.actor,
            &delegators,
            teams,
            d.admin,
        )
        .map_err(|e| EngineError::Forbidden(format!("item {}: {e}", item.seq)))?;
        if item.decision.is_some() {
            return Err(EngineError::Conflict(format!(
                "item {} was already decided ({}) by `{}`",
                item.seq,
                item.decision.map(|x| x.as_str()).unwrap_or_default(),
                item.decided_by.as_deref().unwrap_or_default()
            )));
        }
        if review::needs_justification(d.decision, item.risk) && justification.is_none() {
            return Err(EngineError::Invalid {
                field: "justification".into(),
                message: format!(
                    "item {}: {}",
                    item.seq,
                    DecideError::JustificationNeeded(item.risk)
                ),
            });
        }
        item.decision = Some(d.decision);
        item.justification = justification.clone();
        item.decided_by = Some(d.actor.clone());
        item.decided_for = Some(on_behalf_of.clone());
        item.decided_at = Some(now);
        if !tenure_store::record_review_decision(tx.conn(), &item).await? {
            return Err(EngineError::Conflict(format!(
                "item {} was decided meanwhile",
                item.seq
            )));
        }
        tx.audit(NewAudit {
            at_ms: now,
            actor: d.actor.clone(),
            action: AuditAction::ReviewDecided.into(),
            person_id: Some(item.person_id.clone()),
            entitlement: Some(item.entitlement.clone()),
            system: Some(item.system.clone()),
            reason: justification.clone().unwrap_or_default(),
            correlation_id: Some(campaign.id.clone()),
            details: serde_json::json!({
                "campaign_id": campaign.id, "item": item.seq, "decision": d.decision,
                "on_behalf_of": on_behalf_of, "delegated": on_behalf_of != d.actor,
                "recommendation": item.recommendation.as_ref().map(|r| serde_json::json!({
                    "decision": r.decision, "confidence": r.confidence,
                })),
            }),
            ..Default::default()
        });
        decided.push(item);
    }
    tenure_store::count_decided(tx.conn(), &campaign.id, decided.len() as i64).await?;
    if campaign.definition.apply == ApplyAt::Decision && d.decision == ReviewDecision::Revoke {
        let settled: Vec<(ItemRow, SettledBy)> = decided
            .iter()
            .cloned()
            .map(|i| (i, SettledBy::Reviewer))
            .collect();
        let applied = apply_revokes(inner, &mut tx, &campaign, settled, &d.actor, now).await?;
        decided = applied;
    }
    tx.commit().await?;
    inner.wake_all();
    Ok(decided)
}

/// Closes an open campaign by hand (`actor`) and applies its results.
pub(crate) async fn close(inner: &Arc<Inner>, id: &str, actor: &str) -> Result<CampaignRow> {
    let mut tx = inner.store.begin().await?;
    let now = inner.clock.now_ms();
    let campaign = tenure_store::get_campaign(tx.conn(), id)
        .await?
        .ok_or_else(|| EngineError::NotFound(format!("campaign `{id}`")))?;
    if campaign.state == CampaignState::Closed {
        return Err(EngineError::Conflict(format!(
            "campaign `{id}` is already closed"
        )));
    }
    close_in(inner, &mut tx, &campaign, actor, now).await?;
    tx.commit().await?;
    inner.wake_all();
    let mut c = inner.store.reader().await?;
    tenure_store::get_campaign(&mut c, id)
        .await?
        .ok_or_else(|| EngineError::NotFound(format!("campaign `{id}`")))
}

/// Closes `campaign` inside `tx`: settles every item not yet applied (its decision, or the
/// campaign's rule for undecided items) and starts the revocation runs.
pub(crate) async fn close_in(
    inner: &Inner,
    tx: &mut Tx,
    campaign: &CampaignRow,
    actor: &str,
    now: i64,
) -> Result<()> {
    if !tenure_store::close_campaign(tx.conn(), &campaign.id, actor, now).await? {
        return Ok(()); // closed meanwhile
    }
    let def = &campaign.definition;
    let mut kept = tenure_store::apply_kept_review_items(tx.conn(), &campaign.id, now).await?;
    if def.when_undecided == WhenUndecided::Keep {
        kept += tenure_store::keep_undecided_review_items(tx.conn(), &campaign.id, now).await?;
    }
    let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut after = 0;
    loop {
        let page =
            tenure_store::unapplied_review_items(tx.conn(), &campaign.id, after, SETTLE_PAGE)
                .await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        let mut revoke = Vec::new();
        let mut keep: BTreeMap<SettledBy, Vec<i64>> = BTreeMap::new();
        for item in page {
            let rec = item
                .recommendation
                .as_ref()
                .map(|r| (r.decision, r.confidence));
            let (decision, by) = review::settle(item.decision, rec, item.risk, def.when_undecided);
            match decision {
                ReviewDecision::Keep => keep.entry(by).or_default().push(item.seq),
                ReviewDecision::Revoke => revoke.push((item, by)),
            }
        }
        for (by, seqs) in keep {
            tenure_store::keep_review_items(tx.conn(), &campaign.id, &seqs, by, now).await?;
            kept += seqs.len() as u64;
        }
        for item in apply_revokes(inner, tx, campaign, revoke, actor, now).await? {
            if let Some(o) = item.outcome {
                *counts.entry(o.as_str()).or_insert(0) += 1;
            }
        }
    }
    counts.insert(ItemOutcome::Kept.as_str(), kept);
    cancel(tx, TimerKind::ReviewClose, &campaign.id).await?;
    cancel(tx, TimerKind::ReviewRemind, &campaign.id).await?;
    tx.audit(NewAudit {
        at_ms: now,
        actor: actor.to_string(),
        action: AuditAction::ReviewClosed.into(),
        reason: format!("access review `{}` closed", campaign.name),
        correlation_id: Some(campaign.id.clone()),
        details: serde_json::json!({
            "campaign_id": campaign.id, "name": campaign.name, "items": campaign.items,
            "outcomes": counts,
        }),
        ..Default::default()
    });
    Ok(())
}

/// Carries out `revoke` items: a run per person with a revoke step per item still held for the
/// reason the item froze; access a template gives back at once is flagged to its owner; access
/// already gone is recorded so. Returns the items with their outcome.
async fn apply_revokes(
    inner: &Inner,
    tx: &mut Tx,
    campaign: &CampaignRow,
    items: Vec<(ItemRow, SettledBy)>,
    actor: &str,
    now: i64,
) -> Result<Vec<ItemRow>> {
    let rules = inner.rules();
    let config = &rules.config;
    let mut by_person: BTreeMap<String, Vec<(ItemRow, SettledBy)>> = BTreeMap::new();
    for (item, by) in items {
        by_person
            .entry(item.person_id.clone())
            .or_default()
            .push((item, by));
    }
    let today = DateTime::from_timestamp_millis(now)
        .unwrap_or_default()
        .date_naive();
    let mut out = Vec::new();
    for (person_id, items) in by_person {
        let grants: Vec<tenure_core::Grant> = tenure_store::grants_of(tx.conn(), &person_id)
            .await?
            .into_iter()
            .map(|(g, _)| g)
            .collect();
        let person = tenure_store::get_person(tx.conn(), &person_id).await?;
        let desired = match &person {
            Some(p) => {
                let engagements = tenure_store::engagements_of(tx.conn(), &person_id).await?;
                let clients =
                    crate::facts::client_facts(tx.conn(), config, &engagements, &grants).await?;
                planner::desired_access(config, &clients, p, &engagements, &grants, today, now)
            }
            None => planner::Desired::default(),
        };
        let run_id = uuid::Uuid::now_v7().to_string();
        let mut steps = Vec::new();
        for (mut item, by) in items {
            item.settled_by = Some(by);
            item.applied_at = Some(now);
            let held = grants.iter().find(|g| {
                g.entitlement == item.entitlement
                    && g.source == item.source
                    && g.source_ref == item.source_ref
                    && matches!(g.state, GrantState::Granted | GrantState::Uncertain)
            });
            let standing = desired
                .entitlements
                .get(&item.entitlement)
                .filter(|w| w.source != GrantSource::Request);
            let mut audit = NewAudit {
                at_ms: now,
                actor: actor.to_string(),
                person_id: Some(person_id.clone()),
                entitlement: Some(item.entitlement.clone()),
                system: Some(item.system.clone()),
                correlation_id: Some(campaign.id.clone()),
                details: serde_json::json!({
                    "campaign_id": campaign.id, "item": item.seq, "settled_by": by,
                }),
                ..Default::default()
            };
            match (held, standing) {
                (None, _) => item.outcome = Some(ItemOutcome::Gone),
                (Some(_), Some(want)) => {
                    item.outcome = Some(ItemOutcome::Flagged);
                    let owner = template_owner(config, want, &item.entitlement);
                    audit.action = AuditAction::ReviewFlagged.into();
                    audit.reason = format!(
                        "{} {} gives it back at once; told {}",
                        want.source,
                        want.source_ref,
                        owner.as_deref().unwrap_or("nobody (no owner)")
                    );
                    tx.audit(audit);
                    if let Some(owner) = owner {
                        let to = config.approvals.members(&owner);
                        notify(
                            inner,
                            tx,
                            "review.flagged",
                            &to,
                            serde_json::json!({
                                "campaign_id": campaign.id, "item": item.seq,
                                "person_id": person_id, "entitlement": item.entitlement,
                                "source": want.source, "source_ref": want.source_ref,
                            }),
                            now,
                        )
                        .await?;
                    }
                }
                (Some(g), None) => {
                    item.outcome = Some(ItemOutcome::Revoked);
                    item.run_id = Some(run_id.clone());
                    let mut step = StepRow::new(NewStep {
                        run_id: &run_id,
                        idx: steps.len() as i64,
                        phase: 0,
                        priority: Priority::Normal,
                        now,
                        person_id: &person_id,
                        system: &item.system,
                        action: Action::Revoke,
                        entitlement: Some(&item.entitlement),
                        source: Some(g.source),
                        source_ref: Some(&g.source_ref),
                    });
                    step.ready = true;
                    steps.push(step);
                    audit.action = AuditAction::ReviewRevoked.into();
                    audit.run_id = Some(run_id.clone());
                    audit.reason = item
                        .justification
                        .clone()
                        .unwrap_or_else(|| format!("access review `{}`: {by}", campaign.name));
                    tx.audit(audit);
                }
            }
            tenure_store::record_review_outcome(tx.conn(), &item).await?;
            out.push(item);
        }
        if !steps.is_empty() {
            tenure_store::insert_run(
                tx.conn(),
                &RunRow {
                    id: run_id.clone(),
                    event_id: None,
                    person_id: person_id.clone(),
                    kind: RunKind::Review,
                    state: RunState::Running,
                    priority: Priority::Normal,
                    effective_at: now,
                    created_at: now,
                    planned_at: Some(now),
                    finished_at: None,
                    cancel_requested: false,
                    error: None,
                    note: Some(
                        serde_json::json!({
                            "review": { "campaign_id": campaign.id, "name": campaign.name },
                        })
                        .to_string(),
                    ),
                    traceparent: tenure_store::trace::run_context(
                        &run_id,
                        RunKind::Review.as_str(),
                        None,
                    ),
                },
            )
            .await?;
            tenure_store::insert_steps(tx.conn(), &steps).await?;
        }
    }
    Ok(out)
}

/// Who answers for the template that gives `want`: the birthright template's owner, else the
/// owner of a template listing the entitlement, else the entitlement's owner.
fn template_owner(config: &Config, want: &planner::Want, entitlement: &str) -> Option<String> {
    let by_id = config
        .templates
        .iter()
        .find(|t| want.source == GrantSource::Birthright && t.id == want.source_ref)
        .and_then(|t| t.owner.clone());
    by_id
        .or_else(|| {
            config
                .templates
                .iter()
                .filter(|t| {
                    t.entitlements.iter().any(|e| {
                        e == entitlement
                            || e.split_once("{client}").is_some_and(|(a, b)| {
                                entitlement.starts_with(a) && entitlement.ends_with(b)
                            })
                    })
                })
                .find_map(|t| t.owner.clone())
        })
        .or_else(|| {
            config
                .entitlements
                .get(entitlement)
                .and_then(|e| e.owner.clone())
        })
}

/// Tells every member of `reviewer` through the signed webhook (when one is configured).
async fn notify_reviewer(
    inner: &Inner,
    tx: &mut Tx,
    kind: &str,
    reviewer: &Reviewer,
    data: serde_json::Value,
    now: i64,
) -> Result<()> {
    let rules = inner.rules();
    let to: Vec<String> = reviewer
        .members(&rules.config.approvals.teams)
        .iter()
        .map(|m| m.to_string())
        .collect();
    notify(inner, tx, kind, &to, data, now).await
}

/// A campaign's reminder: every reviewer with open items is told, and the next reminder set.
pub(crate) async fn remind(inner: &Inner, tx: &mut Tx, id: &str, now: i64) -> Result<()> {
    let Some(campaign) = tenure_store::get_campaign(tx.conn(), id).await? else {
        return Ok(());
    };
    if campaign.state != CampaignState::Open {
        return Ok(());
    }
    for (reviewer, open) in tenure_store::open_items_by_reviewer(tx.conn(), id).await? {
        let Some(reviewer) = reviewer.as_deref().map(Reviewer::from_stored) else {
            continue;
        };
        notify_reviewer(
            inner,
            tx,
            "review.reminder",
            &reviewer,
            serde_json::json!({
                "campaign_id": id, "name": campaign.name, "reviewer": reviewer.stored(),
                "open_items": open, "due_at": campaign.due_at,
            }),
            now,
        )
        .await?;
    }
    let next = campaign
        .definition
        .reminders(campaign.opened_at, campaign.due_at)
        .into_iter()
        .find(|t| *t > now);
    if let Some(at) = next {
        let timer = Timer::ReviewRemind(ReviewTimer {
            campaign_id: id.to_string(),
        });
        schedule(tx, &timer, at, now).await?;
    }
    Ok(())
}

/// A campaign's end: it closes unless it was closed by hand.
pub(crate) async fn close_due(inner: &Inner, tx: &mut Tx, id: &str, now: i64) -> Result<()> {
    match tenure_store::get_campaign(tx.conn(), id).await? {
        Some(c) if c.state == CampaignState::Open => {
            close_in(inner, tx, &c, "scheduler", now).await
        }
        _ => Ok(()),
    }
}

/// A recurring definition's next opening: a new campaign, unless the last one is still open
/// (then this period is skipped) or the definition is gone.
pub(crate) async fn open_due(inner: &Inner, tx: &mut Tx, name: &str, now: i64) -> Result<()> {
    let rules = inner.rules();
    let Some(def) = rules.config.reviews.get(name).cloned() else {
        tracing::info!(name, "a recurring review's definition is gone; not opened");
        return Ok(());
    };
    if let Some(open) = tenure_store::open_campaign_named(tx.conn(), name).await? {
        tracing::warn!(name, campaign = %open, "the last campaign is still open; this period is skipped");
        if let Some(r) = def.recurrence {
            let opening = Timer::ReviewOpen(ReviewOpening {
                name: name.to_string(),
            });
            schedule(tx, &opening, r.next(now), now).await?;
        }
        return Ok(());
    }
    let pop = population(tx.conn(), &rules.config).await?;
    open_in(inner, tx, name, def, "scheduler", now, pop).await?;
    Ok(())
}
