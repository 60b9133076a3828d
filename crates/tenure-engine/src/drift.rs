//! Reconciliation of target systems: read what a system really holds, compare it with what
//! tenure believes, record the differences, and (where the system's settings say so) correct
//! tenure's records and give each person concerned a `remediate` run.
//!
//! The decisions are the core's ([`tenure_core::drift`]); this module loads, asks and writes:
//! 1. a `reconciliations` row is started (one at a time per system);
//! 2. the connector's inventory is read page by page; each page's people, accounts and grants
//!    are loaded in a few statements, each account is correlated and classified, and the
//!    page's findings are written in one transaction;
//! 3. accounts tenure holds active that the system never listed are found by paging through
//!    tenure's own accounts of the system;
//! 4. unless it is a dry run, or the corrections would disable more of the system's accounts
//!    than `max_disable_percent` allows without confirmation, the corrections are written and
//!    the runs scheduled, in transactions of [`CORRECTIONS_PER_TX`];
//! 5. findings not seen again are resolved (only after a complete pass), and the row ends.
//!
//! Memory holds one page, the ids of the people matched so far, and the corrections to make.
//!
//! Remediation never calls a system from here: the runs do, through the planner, policy,
//! priorities, operation ids and the audit trail like any other change. A correction only makes
//! tenure's record say "may be so" (`uncertain`), which is safe against a run that changed the
//! system since the page was read: the run then finds the work done ("already so").

use crate::context::Inner;
use crate::error::{EngineError, Result};
use crate::planning::{disable_orphans, schedule_rejudge};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use tenure_connectors::{Connector, Inventory, InventoryAccount};
use tenure_core::audit::AuditAction;
use tenure_core::drift::{
    self, Belief, Candidates, Catalog, Correction, Finding, Match, Observed, PersonField,
    ReconcileSettings, Situation,
};
use tenure_core::run::{Priority, RunKind};
use tenure_store::{
    FindingRow, NewAudit, ReconRow, ReconState, ReconTrigger, Store, active_accounts_on,
    held_on_system, people_by_emails,
};

/// Accounts asked of a connector per page.
pub const PAGE: usize = 1_000;
/// Corrections written per transaction.
const CORRECTIONS_PER_TX: usize = 500;
/// A running reconciliation that has made no progress for this long is taken as stopped.
const LIVE_MS: i64 = 5 * 60_000;
/// How often a pass records its progress (and the findings so far) at the least.
const HEARTBEAT_MS: i64 = 10_000;
/// Findings written per transaction at most.
const FINDINGS_PER_TX: usize = 2_000;

/// What to reconcile, and how.
#[derive(Debug, Clone)]
pub struct ReconcileRequest {
    /// The system.
    pub system: String,
    /// Record findings only; correct nothing.
    pub dry_run: bool,
    /// Make the corrections even when they would disable more accounts than the system's
    /// `max_disable_percent` allows.
    pub confirm: bool,
    /// Why it runs.
    pub trigger: ReconTrigger,
    /// Who asked (a token's name, `scheduler`).
    pub actor: String,
}

/// A correction waiting to be made, and why.
struct Pending {
    correction: Correction,
    situation: Situation,
    entitlement: Option<String>,
    detail: String,
}

/// How a pass ended before its findings were complete.
enum Stopped {
    NotCovered(&'static str),
    System(String),
    Engine(EngineError),
}

impl From<EngineError> for Stopped {
    fn from(e: EngineError) -> Self {
        Stopped::Engine(e)
    }
}

impl From<tenure_store::StoreError> for Stopped {
    fn from(e: tenure_store::StoreError) -> Self {
        Stopped::Engine(e.into())
    }
}

/// Reconciles one system (see the module docs) and returns the reconciliation as it ended.
pub(crate) async fn reconcile(inner: &Arc<Inner>, req: ReconcileRequest) -> Result<ReconRow> {
    let row = start(inner, &req).await?;
    finish(inner, req, row).await
}

/// Starts reconciling one system and goes on in a task of its own; returns the
/// reconciliation as it started (or the reason it cannot: no such system, one running).
pub(crate) async fn spawn(inner: &Arc<Inner>, req: ReconcileRequest) -> Result<ReconRow> {
    let row = start(inner, &req).await?;
    let started = row.clone();
    let inner = inner.clone();
    tokio::spawn(async move {
        let (system, id) = (row.system.clone(), row.id.clone());
        if let Err(e) = finish(&inner, req, row).await {
            tracing::error!(%system, reconciliation = %id, error = %e, "reconciliation failed");
        }
    });
    Ok(started)
}

/// Records the reconciliation as running (refused while another of the system runs).
async fn start(inner: &Inner, req: &ReconcileRequest) -> Result<ReconRow> {
    if !inner.systems.contains_key(&req.system) {
        return Err(EngineError::NotFound(format!("system `{}`", req.system)));
    }
    let mut tx = inner.store.begin().await?;
    let now = inner.clock.now_ms();
    let row = ReconRow {
        id: uuid::Uuid::now_v7().to_string(),
        system: req.system.clone(),
        trigger: req.trigger,
        requested_by: Some(req.actor.clone()),
        dry_run: req.dry_run,
        state: ReconState::Running,
        started_at: now,
        heartbeat_at: now,
        ended_at: None,
        accounts: 0,
        counts: BTreeMap::new(),
        corrected: 0,
        runs: 0,
        message: None,
    };
    if let Err(other) = tenure_store::start_reconciliation(tx.conn(), &row, now - LIVE_MS).await? {
        return Err(EngineError::Conflict(format!(
            "system `{}` is being reconciled now: {other}",
            req.system
        )));
    }
    tx.audit(NewAudit {
        at_ms: now,
        actor: req.actor.clone(),
        action: AuditAction::ReconciliationStarted.into(),
        system: Some(req.system.clone()),
        reason: format!(
            "reconciliation of {} ({}{})",
            req.system,
            req.trigger.as_str(),
            if req.dry_run { ", dry run" } else { "" }
        ),
        details: serde_json::json!({ "reconciliation": row.id, "dry_run": req.dry_run }),
        ..Default::default()
    });
    tx.commit().await?;
    Ok(row)
}

/// Reads, compares, records and corrects (see the module docs); ends the row.
async fn finish(inner: &Arc<Inner>, req: ReconcileRequest, mut row: ReconRow) -> Result<ReconRow> {
    let config = inner.rules().config.clone();
    let Some(handle) = inner.systems.get(&req.system) else {
        return Err(EngineError::NotFound(format!("system `{}`", req.system)));
    };
    let settings = config
        .reconcile
        .get(&req.system)
        .cloned()
        .unwrap_or_default();
    let catalog = Catalog::of_system(&req.system, config.entitlements.values());

    let passed = pass(
        inner,
        handle.connector.as_ref(),
        &settings,
        &catalog,
        &mut row,
    )
    .await;
    let (pending, stopped) = match passed {
        Ok(p) => (p, None),
        Err(s) => (Vec::new(), Some(s)),
    };
    match stopped {
        None => {
            let disables = pending
                .iter()
                .filter(|p| {
                    matches!(p.situation, Situation::Stale | Situation::Orphan)
                        || (p.situation == Situation::Excess && p.entitlement.is_none())
                })
                .count();
            let limit = settings.max_disable_share * row.accounts as f64;
            if !req.dry_run && !req.confirm && disables > 0 && disables as f64 > limit {
                row.state = ReconState::Held;
                row.message = Some(format!(
                    "the corrections would disable {disables} of {} accounts, more than the {}% \
                     allowed without confirmation; nothing was corrected: reconcile again with \
                     confirmation to make them",
                    row.accounts,
                    settings.max_disable_share * 100.0
                ));
            } else {
                row.state = ReconState::Completed;
                if !req.dry_run {
                    correct(inner, &req, &mut row, pending).await?;
                }
            }
        }
        Some(Stopped::NotCovered(why)) => {
            row.state = ReconState::NotCovered;
            row.message = Some(why.to_string());
        }
        Some(Stopped::System(e)) => {
            row.state = ReconState::Failed;
            row.message = Some(format!("the system could not be read to the end: {e}"));
        }
        Some(Stopped::Engine(e)) => {
            row.state = ReconState::Failed;
            row.message = Some(format!("reconciliation failed: {e}"));
        }
    }

    let mut tx = inner.store.begin().await?;
    let now = inner.clock.now_ms();
    let complete = matches!(row.state, ReconState::Completed | ReconState::Held);
    let resolved = if complete {
        tenure_store::resolve_unseen_findings(tx.conn(), &row.system, &row.id, now).await?
    } else {
        0
    };
    row.heartbeat_at = now;
    row.ended_at = Some(now);
    tenure_store::update_reconciliation(tx.conn(), &row).await?;
    tx.audit(NewAudit {
        at_ms: now,
        actor: req.actor.clone(),
        action: AuditAction::ReconciliationEnded.into(),
        system: Some(row.system.clone()),
        reason: format!("reconciliation of {} {}", row.system, row.state.as_str()),
        details: serde_json::json!({
            "reconciliation": row.id,
            "state": row.state.as_str(),
            "accounts": row.accounts,
            "counts": row.counts.iter().map(|(k, v)| (k.as_str(), *v)).collect::<BTreeMap<_, _>>(),
            "corrected": row.corrected,
            "runs": row.runs,
            "resolved": resolved,
            "message": row.message,
        }),
        ..Default::default()
    });
    tx.commit().await?;
    let systems: Vec<String> = config.systems.keys().cloned().collect();
    publish_open_findings(&inner.store, &systems).await;
    if row.runs > 0 {
        inner.wake_all();
    }
    match row.state {
        ReconState::Failed => {
            tracing::warn!(system = %row.system, reconciliation = %row.id, message = ?row.message, "reconciliation failed")
        }
        _ => {
            tracing::info!(system = %row.system, reconciliation = %row.id, state = row.state.as_str(), accounts = row.accounts, "reconciliation ended")
        }
    }
    Ok(row)
}

/// Reads the system's inventory and tenure's records, and writes the findings, page by page.
/// Returns the corrections the findings call for.
async fn pass(
    inner: &Inner,
    connector: &dyn Connector,
    settings: &ReconcileSettings,
    catalog: &Catalog,
    row: &mut ReconRow,
) -> std::result::Result<Vec<Pending>, Stopped> {
    let mut pages = match connector.inventory(PAGE).await {
        Ok(Inventory::Pages(p)) => p,
        Ok(Inventory::NotCovered(why)) => return Err(Stopped::NotCovered(why)),
        Err(e) => return Err(Stopped::System(e.to_string())),
    };
    let mut seen: HashSet<String> = HashSet::new();
    // How many of them tenure holds active.
    let mut seen_active = 0;
    let mut pending = Vec::new();
    // Findings are written a few thousand at a time: most pages find little.
    let mut findings = Vec::new();
    // Each page's people are loaded in a task of their own while the next page is read.
    let mut next = pages.next_page().await;
    loop {
        let page = match next {
            Ok(Some(page)) => page,
            Ok(None) => break,
            Err(e) => {
                write_findings(inner, row, &findings).await?;
                return Err(Stopped::System(e.to_string()));
            }
        };
        let loading = spawn_load(inner, connector, &row.system, settings, &page);
        next = pages.next_page().await;
        let loaded = match loading.await {
            Ok(loaded) => loaded?,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Only a runtime shutting down cancels it.
            Err(_) => return Err(Stopped::Engine(EngineError::ShuttingDown)),
        };
        judge_page(
            connector,
            settings,
            catalog,
            row,
            &page,
            loaded,
            &mut seen,
            &mut seen_active,
            &mut findings,
            &mut pending,
        );
        if findings.len() >= FINDINGS_PER_TX
            || inner.clock.now_ms() - row.heartbeat_at >= HEARTBEAT_MS
        {
            write_findings(inner, row, &findings).await?;
            findings.clear();
        }
    }
    write_findings(inner, row, &findings).await?;
    findings.clear();

    // What tenure holds active that the system did not list: as many as tenure holds active
    // beyond those listed, so the list is read only until they are found (not at all on most
    // passes). Runs changing accounts meanwhile can make this miss one; the next pass sees it.
    let unlisted = {
        let mut r = inner.store.reader().await?;
        tenure_store::count_active_accounts(&mut r, &row.system).await? - seen_active
    };
    let mut found = 0;
    let mut after = String::new();
    while found < unlisted {
        let ids = {
            let mut r = inner.store.reader().await?;
            active_accounts_on(&mut r, &row.system, &after, PAGE as i64).await?
        };
        let Some(last) = ids.last() else { break };
        after = last.clone();
        for id in ids.iter().filter(|id| !seen.contains(*id)) {
            if let Some(f) = drift::absent(id, tenure_core::AccountState::Active, settings) {
                found += 1;
                *row.counts.entry(f.situation).or_default() += 1;
                if f.remedy == drift::Remedy::Grant {
                    pending.push(Pending {
                        correction: Correction::AccountGone {
                            person_id: id.clone(),
                        },
                        situation: f.situation,
                        entitlement: None,
                        detail: f.detail.clone(),
                    });
                }
                findings.push(f);
            }
        }
        if findings.len() >= FINDINGS_PER_TX {
            write_findings(inner, row, &findings).await?;
            findings.clear();
        }
    }
    write_findings(inner, row, &findings).await?;
    Ok(pending)
}

/// What tenure holds for the people one page may name, loaded beside the next page's read.
struct Loaded {
    held: tenure_store::HeldOnSystem,
    /// (email lowercased, person id, email as stored).
    by_email: Vec<(String, String, String)>,
}

/// Loads [`Loaded`] for a page: the people its accounts' marks and id rules name, those whose
/// email an email rule names, and their accounts and grants on `system`. Owns what it reads
/// with, so it can run in a task of its own.
async fn load(
    store: Store,
    system: String,
    rules: Vec<drift::Rule>,
    marks: Vec<String>,
    attributes: Vec<BTreeMap<String, String>>,
) -> Result<Loaded> {
    let mut ids: BTreeSet<String> = marks.into_iter().collect();
    let mut emails = BTreeSet::new();
    for attrs in &attributes {
        for (rule, value) in rules.iter().zip(drift::rule_values(&rules, attrs)) {
            let Some(value) = value else { continue };
            match rule.person {
                PersonField::Id => {
                    ids.insert(value);
                }
                PersonField::Email => {
                    emails.insert(value.to_lowercase());
                }
            }
        }
    }
    let mut r = store.reader().await?;
    let by_email = if emails.is_empty() {
        Vec::new()
    } else {
        let emails: Vec<String> = emails.into_iter().collect();
        people_by_emails(&mut r, &emails).await?
    };
    ids.extend(by_email.iter().map(|(_, id, _)| id.clone()));
    let ids: Vec<String> = ids.into_iter().collect();
    let held = held_on_system(&mut r, &system, &ids).await?;
    Ok(Loaded { held, by_email })
}

/// Starts loading what a page needs in a task of its own: the people its accounts' marks
/// name, and those the connector reaches them for.
fn spawn_load(
    inner: &Inner,
    connector: &dyn Connector,
    system: &str,
    settings: &ReconcileSettings,
    page: &[InventoryAccount],
) -> tokio::task::JoinHandle<Result<Loaded>> {
    let rules = settings.correlate.clone();
    let attributes = if rules.is_empty() {
        Vec::new()
    } else {
        page.iter().map(|a| a.attributes.clone()).collect()
    };
    tokio::spawn(load(
        inner.store.clone(),
        system.to_string(),
        rules,
        page.iter()
            .flat_map(|a| {
                let subject = connector
                    .subject_of(&a.key)
                    .filter(|s| a.person_id.as_deref() != Some(*s))
                    .map(str::to_string);
                a.person_id.clone().into_iter().chain(subject)
            })
            .collect(),
        attributes,
    ))
}

/// Correlates and classifies one page against what was loaded for it.
#[allow(clippy::too_many_arguments)]
fn judge_page(
    connector: &dyn Connector,
    settings: &ReconcileSettings,
    catalog: &Catalog,
    row: &mut ReconRow,
    page: &[InventoryAccount],
    loaded: Loaded,
    seen: &mut HashSet<String>,
    seen_active: &mut i64,
    findings: &mut Vec<Finding>,
    pending: &mut Vec<Pending>,
) {
    let rules = &settings.correlate;
    let Loaded { mut held, by_email } = loaded;
    let mut candidates = Candidates {
        people: std::mem::take(&mut held.status),
        by_rule: vec![HashMap::new(); rules.len()],
    };
    for (i, rule) in rules.iter().enumerate() {
        match rule.person {
            PersonField::Id => {
                for id in candidates.people.keys() {
                    candidates.by_rule[i].insert(id.clone(), vec![id.clone()]);
                }
            }
            PersonField::Email => {
                // The store matched lowercased; a rule that keeps case compares as stored.
                for (lower, id, stored) in &by_email {
                    let key = if rule.ignore_case {
                        lower.clone()
                    } else {
                        rule.normalize(stored)
                    };
                    candidates.by_rule[i]
                        .entry(key)
                        .or_default()
                        .push(id.clone());
                }
            }
        }
    }
    for account in page {
        let subject = connector.subject_of(&account.key);
        let observed = Observed {
            key: &account.key,
            mark: account.person_id.as_deref(),
            subject,
            enabled: account.enabled,
            attributes: &account.attributes,
            memberships: &account.memberships,
        };
        let matched = drift::correlate(&observed, rules, settings.on_several, &candidates);
        let addressable = match &matched {
            Match::Person(p) => {
                account.person_id.as_deref() == Some(p.as_str())
                    || connector.account_key(p).as_deref() == Some(account.key.as_str())
            }
            _ => false,
        };
        let no_grants: &[drift::HeldGrant] = &[];
        let (status, belief) = match &matched {
            Match::Person(p) => {
                // The person's own account is here; another one a rule matched says nothing
                // of whether theirs exists.
                if addressable
                    && seen.insert(p.clone())
                    && held
                        .accounts
                        .get(p)
                        .is_some_and(|a| a.state == tenure_core::AccountState::Active)
                {
                    *seen_active += 1;
                }
                (
                    candidates.people.get(p).copied(),
                    Belief {
                        account: held.accounts.get(p).map(|a| a.state),
                        grants: held.grants.get(p).map_or(no_grants, Vec::as_slice),
                    },
                )
            }
            _ => (None, Belief::default()),
        };
        let known = belief.account.is_some_and(|a| {
            !matches!(
                a,
                tenure_core::AccountState::Deleted | tenure_core::AccountState::Pending
            )
        });
        let found = drift::classify(
            &observed,
            &matched,
            addressable,
            status,
            &belief,
            catalog,
            settings,
        );
        row.accounts += 1;
        if found.iter().all(|f| f.entitlement.is_some()) {
            // The account itself agrees (its memberships may not).
            *row.counts.entry(Situation::Expected).or_default() += 1;
        }
        for f in found {
            *row.counts.entry(f.situation).or_default() += 1;
            if let Some(c) = f.correction(account.enabled, known, observed.subject) {
                pending.push(Pending {
                    correction: c,
                    situation: f.situation,
                    entitlement: f.entitlement.clone(),
                    detail: f.detail.clone(),
                });
            }
            findings.push(f);
        }
    }
}

/// Writes findings (auditing the stale ones) and the reconciliation's progress in one
/// transaction.
async fn write_findings(inner: &Inner, row: &mut ReconRow, findings: &[Finding]) -> Result<()> {
    let mut tx = inner.store.begin().await?;
    let now = inner.clock.now_ms();
    let rows: Vec<FindingRow> = findings
        .iter()
        .map(|f| FindingRow {
            id: uuid::Uuid::now_v7().to_string(),
            system: row.system.clone(),
            situation: f.situation,
            account_key: f.account_key.clone(),
            entitlement: f.entitlement.clone(),
            person_id: f.person_id.clone(),
            detail: f.detail.clone(),
            remedy: f.remedy,
            first_seen: now,
            last_seen: now,
            first_run: row.id.clone(),
            last_run: row.id.clone(),
            resolved_at: None,
            resolved_by: None,
        })
        .collect();
    tenure_store::record_findings(tx.conn(), &rows).await?;
    for f in findings.iter().filter(|f| f.situation == Situation::Stale) {
        tracing::warn!(
            system = %row.system,
            person = ?f.person_id,
            account = %f.account_key,
            "stale account: the person has left but the account can sign in"
        );
        tx.audit(NewAudit {
            at_ms: now,
            actor: "reconciliation".into(),
            action: AuditAction::ReconciliationStale.into(),
            person_id: f.person_id.clone(),
            system: Some(row.system.clone()),
            reason: f.detail.clone(),
            details: serde_json::json!({
                "reconciliation": row.id,
                "account": f.account_key,
                "severity": "high",
                "remedy": f.remedy.as_str(),
            }),
            ..Default::default()
        });
    }
    row.heartbeat_at = now;
    tenure_store::update_reconciliation(tx.conn(), row).await?;
    tx.commit().await?;
    Ok(())
}

/// Makes the corrections and gives each person concerned a `remediate` run: urgent (and
/// first) for one whose stale account is to be disabled. A person's corrections and run share
/// a transaction.
async fn correct(
    inner: &Inner,
    req: &ReconcileRequest,
    row: &mut ReconRow,
    pending: Vec<Pending>,
) -> Result<()> {
    let mut by_person: BTreeMap<String, Vec<Pending>> = BTreeMap::new();
    for p in pending {
        by_person
            .entry(p.correction.person_id().to_string())
            .or_default()
            .push(p);
    }
    let priority = |ps: &[Pending]| {
        if ps
            .iter()
            .any(|p| matches!(p.situation, Situation::Stale | Situation::Orphan))
        {
            Priority::Urgent
        } else {
            Priority::Normal
        }
    };
    let mut people: Vec<(String, Vec<Pending>)> = by_person.into_iter().collect();
    people.sort_by_key(|(_, ps)| priority(ps));
    let mut people = people.into_iter().peekable();
    while people.peek().is_some() {
        let mut tx = inner.store.begin().await?;
        let now = inner.clock.now_ms();
        let mut runs = Vec::new();
        let mut orphans = Vec::new();
        let mut written = 0;
        while written < CORRECTIONS_PER_TX {
            let Some((person, ps)) = people.next() else {
                break;
            };
            // An orphan's subject names no person: its account gets a run of its own.
            let orphan = ps
                .iter()
                .any(|p| matches!(p.correction, Correction::DisableOrphan { .. }));
            for p in &ps {
                apply(&mut tx, &person, &row.system, &row.id, &p.correction, now).await?;
                tx.audit(NewAudit {
                    at_ms: now,
                    actor: req.actor.clone(),
                    action: AuditAction::ReconciliationCorrected.into(),
                    person_id: (!orphan).then(|| person.clone()),
                    entitlement: p.entitlement.clone(),
                    system: Some(row.system.clone()),
                    reason: format!("{}: {}", p.situation, p.detail),
                    details: serde_json::json!({
                        "reconciliation": row.id,
                        "situation": p.situation.as_str(),
                        "account": orphan.then_some(&person),
                    }),
                    ..Default::default()
                });
            }
            written += ps.len();
            row.corrected += ps.len() as i64;
            if orphan {
                orphans.push(person);
            } else {
                runs.push((person, priority(&ps)));
            }
        }
        let made = disable_orphans(inner, &mut tx, &row.system, &orphans, &row.id, now).await?;
        schedule_rejudge(&mut tx, RunKind::Remediate, &runs, now).await?;
        row.runs += (runs.len() + made) as i64;
        row.heartbeat_at = now;
        tenure_store::update_reconciliation(tx.conn(), row).await?;
        tx.commit().await?;
    }
    Ok(())
}

/// Writes one correction to tenure's records.
async fn apply(
    tx: &mut tenure_store::Tx,
    person: &str,
    system: &str,
    reconciliation: &str,
    correction: &Correction,
    now: i64,
) -> Result<()> {
    match correction {
        Correction::AccountUncertain { discovered, .. } => {
            tenure_store::mark_account_uncertain(tx.conn(), person, system, *discovered, now)
                .await?
        }
        Correction::AccountGone { .. } => {
            tenure_store::mark_account_uncertain(tx.conn(), person, system, false, now).await?;
            tenure_store::mark_system_grants_uncertain(tx.conn(), person, system, now).await?
        }
        Correction::Link { enabled, .. } => {
            tenure_store::link_account(tx.conn(), person, system, *enabled, now).await?
        }
        // Nothing of tenure's to correct: the run disables it.
        Correction::DisableOrphan { .. } => {}
        Correction::GrantUncertain { entitlement, .. } => {
            tenure_store::mark_grant_uncertain(
                tx.conn(),
                person,
                entitlement,
                system,
                reconciliation,
                now,
            )
            .await?
        }
    }
    Ok(())
}

/// Sets the open-findings gauges of every system and situation from the store (logged, never
/// fatal, when it cannot).
pub(crate) async fn publish_open_findings(store: &Store, systems: &[String]) {
    let counts = async {
        let mut r = store.reader().await?;
        tenure_store::open_finding_counts(&mut r).await
    }
    .await;
    match counts {
        Ok(counts) => {
            let mut all: BTreeMap<(String, Situation), i64> = systems
                .iter()
                .flat_map(|s| {
                    Situation::ALL
                        .iter()
                        .filter(|s| **s != Situation::Expected)
                        .map(|sit| ((s.clone(), *sit), 0))
                })
                .collect();
            for (system, situation, n) in counts {
                all.insert((system, situation), n);
            }
            for ((system, situation), n) in all {
                metrics::gauge!(
                    "tenure_reconciliation_open_findings",
                    "system" => system,
                    "situation" => situation.as_str()
                )
                .set(n as f64);
            }
        }
        Err(e) => tracing::warn!(error = %e, "reading open findings for the metrics failed"),
    }
}

/// How often the reconciler looks for systems due when nothing wakes it.
const POLL: std::time::Duration = std::time::Duration::from_secs(30);
/// After a circuit closes, a system reconciled within this long is not reconciled again.
const AFTER_OUTAGE_GAP_MS: i64 = 5 * 60_000;

/// The reconciler's loop: reconciles the systems that are due, every [`POLL`] (the first
/// time [`POLL`] after start) or when a circuit closes, until shutdown.
pub(crate) async fn run(inner: Arc<Inner>) {
    let mut shutdown = inner.shutdown.subscribe();
    if !*shutdown.borrow() {
        let systems: Vec<String> = inner.rules().config.systems.keys().cloned().collect();
        publish_open_findings(&inner.store, &systems).await;
    }
    loop {
        // A stop sent before this task first ran is seen here, not by `changed`.
        if *shutdown.borrow() {
            break;
        }
        tokio::select! {
            _ = inner.reconcile_wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            break;
        }
        if let Err(e) = due(&inner).await {
            tracing::error!(error = %e, "scheduled reconciliation failed; will try again");
        }
    }
}

/// Reconciles the systems due now (see [`crate::Engine::reconcile_due`] in the facade).
pub(crate) async fn due(inner: &Arc<Inner>) -> Result<Vec<ReconRow>> {
    let config = inner.rules().config.clone();
    let closed: BTreeSet<String> =
        std::mem::take(&mut *inner.circuits_closed.lock().expect("circuits lock"))
            .into_iter()
            .collect();
    let now = inner.clock.now_ms();
    let mut out = Vec::new();
    for (system, settings) in &config.reconcile {
        if settings.every_ms.is_none() && !(settings.after_outage && closed.contains(system)) {
            continue;
        }
        let last = {
            let mut r = inner.store.reader().await?;
            tenure_store::list_reconciliations(&mut r, Some(system), None, 1).await?
        };
        let last_start = last.first().map(|r| r.started_at);
        let trigger = if settings
            .every_ms
            .is_some_and(|every| last_start.is_none_or(|t| now - t >= every))
        {
            ReconTrigger::Schedule
        } else if settings.after_outage
            && closed.contains(system)
            && last_start.is_none_or(|t| now - t >= AFTER_OUTAGE_GAP_MS)
        {
            ReconTrigger::CircuitClosed
        } else {
            continue;
        };
        let request = ReconcileRequest {
            system: system.clone(),
            dry_run: false,
            confirm: false,
            trigger,
            actor: "scheduler".into(),
        };
        match reconcile(inner, request).await {
            Ok(row) => out.push(row),
            // Another instance (or a request) is reconciling it now.
            Err(EngineError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}
