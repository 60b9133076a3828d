//! Planning runs and moving them along: from an event to steps, from step outcomes to the
//! run's next phase, and the operator's cancel and retry.

use crate::access::AccessChanges;
use crate::context::{Inner, Rules};
use crate::error::{EngineError, Result};
use crate::facts::client_facts;
use crate::progress::{advance_run, advance_runs, fail_run};
use crate::{gates, timers};
use chrono::DateTime;
use std::collections::BTreeSet;
use tenure_core::audit::AuditAction;
use tenure_core::config::ClientFacts;
use tenure_core::event::{EventInput, EventType, apply_event};
use tenure_core::planner::{self, Action};
use tenure_core::run::{
    Priority, RunKind, RunState, StepFacts, StepState, SystemProgress, systems_progress,
};
use tenure_core::{AccountState, Grant, GrantSource, GrantState, Person, PersonStatus};
use tenure_policy::authorize::{Authorized, authorize_grants};
use tenure_store::{EventRow, NewAudit, NewStep, RunRow, StepRow, Tx};
use tracing::Instrument;

/// A run with its steps, as the store holds them (the API shows it through its own view).
#[derive(Debug, Clone)]
pub struct RunDetail {
    /// The run.
    pub run: RunRow,
    /// Its steps in order.
    pub steps: Vec<StepRow>,
    /// Where each system's part of it stands, in system order.
    pub systems: Vec<SystemProgress>,
}

pub(crate) async fn run_detail(inner: &Inner, run_id: &str) -> Result<RunDetail> {
    let mut c = inner.store.reader().await?;
    let run = tenure_store::get_run(&mut c, run_id)
        .await?
        .ok_or_else(|| EngineError::NotFound(format!("run `{run_id}`")))?;
    let steps = tenure_store::steps_of_run(&mut c, run_id).await?;
    let open = tenure_store::open_task_ids_of_run(&mut c, run_id).await?;
    let facts: Vec<StepFacts<'_>> = steps
        .iter()
        .map(|s| StepFacts {
            system: &s.system,
            state: s.state,
            ready: s.ready,
            task_open: open.contains(&s.op_id),
            last_error: s.last_error.as_deref(),
        })
        .collect();
    let systems = systems_progress(&facts, run.state);
    Ok(RunDetail {
        run,
        steps,
        systems,
    })
}

/// Whether `plan_run` planned the run or left it waiting.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Planned {
    Yes,
    Waiting,
    /// No longer pending (ended or planned meanwhile).
    Skipped,
}

/// Plans a pending run inside `tx`: applies its event to the person, diffs desired against
/// current access, stores the steps and starts the first phase.
///
/// Runs of one person go one at a time, in order, with two exceptions:
/// - a run whose remaining work is only grants waiting for approval (no step pending or
///   running) does not hold the person's later runs back, since an approval may take days: the
///   later run is planned against the current state. A waiting grant it still wants stays
///   waiting (it is not planned twice); one it no longer wants (the engagement ended, the
///   person moved out of the template's match, the contract ended) has its approval withdrawn
///   and the earlier run ends (see [`store_plan`]);
/// - a leave does not queue: it cancels the unstarted steps of the person's earlier runs,
///   withdraws their pending approvals, and waits only for calls already in flight.
///
/// Earlier runs not yet planned always apply first (they may create the person).
pub(crate) async fn plan_run(
    inner: &Inner,
    tx: &mut Tx,
    run: &RunRow,
    now: i64,
) -> Result<Planned> {
    // The caller's copy may be stale: an earlier plan in the same batch may have ended it.
    match tenure_store::get_run(tx.conn(), &run.id).await? {
        Some(current) if current.state == RunState::Pending => {}
        _ => return Ok(Planned::Skipped),
    }
    if matches!(run.kind, RunKind::Reconcile | RunKind::Remediate) {
        return plan_reconcile(inner, tx, run, now)
            .instrument(plan_span(run))
            .await;
    }
    let event_row = match &run.event_id {
        Some(id) => tenure_store::get_event(tx.conn(), id).await?,
        None => None,
    };
    plan_loaded(inner, tx, run, event_row.as_ref(), None, None, now)
        .instrument(plan_span(run))
        .await
}

/// What planning reads of a person, read for a whole batch of runs at once (see
/// [`prefetch`]).
pub(crate) struct Prefetched {
    stored: tenure_store::StoredPerson,
    /// The person's open runs, in (effective time, id) order.
    open_runs: Vec<RunRow>,
}

/// What planning a batch of new runs leaves to do once all are planned (see
/// [`plan_new_run`]): marking them planned and judging them from their steps, for the whole
/// batch in two or three statements instead of three or four per run.
#[derive(Default)]
pub(crate) struct Batch {
    /// Runs planned, with their planner notes.
    planned: Vec<(String, Option<String>)>,
}

impl Batch {
    /// Marks the batch's runs planned and starts (or ends) each one.
    pub(crate) async fn finish(self, inner: &Inner, tx: &mut Tx, now: i64) -> Result<()> {
        if self.planned.is_empty() {
            return Ok(());
        }
        tenure_store::set_runs_planned(tx.conn(), &self.planned, planned_at(inner, now)).await?;
        let ids: Vec<String> = self.planned.into_iter().map(|(id, _)| id).collect();
        advance_runs(inner, tx, &ids, now).await
    }
}

/// When a run planned in a transaction that began at `now` is recorded planned: the clock
/// read again, after planning read which earlier runs had ended. On PostgreSQL writers run
/// side by side, so a run that ended in a transaction committed while this one was planning
/// may have read its clock after `now`; read again here, the time is after every end the plan
/// saw, and no run is recorded planned before the run it waited for ended.
fn planned_at(inner: &Inner, now: i64) -> i64 {
    inner.clock.now_ms().max(now)
}

/// Reads at once what planning `runs` will read of their people, for the people with exactly
/// one run among them: planning a run changes only its own person's rows (and supersedes only
/// that person's earlier runs), so what is read for one person stays true until its run is
/// planned. A person with several runs in the batch is read when each is planned.
pub(crate) async fn prefetch(
    tx: &mut Tx,
    runs: &[&RunRow],
) -> Result<std::collections::HashMap<String, Prefetched>> {
    let mut count: std::collections::HashMap<&str, usize> = Default::default();
    for r in runs {
        *count.entry(r.person_id.as_str()).or_default() += 1;
    }
    let ids: Vec<String> = count
        .into_iter()
        .filter(|&(_, n)| n == 1)
        .map(|(id, _)| id.to_string())
        .collect();
    if ids.len() < 2 {
        return Ok(Default::default());
    }
    let mut open = tenure_store::open_runs_of_people(tx.conn(), &ids).await?;
    let stored = tenure_store::stored_people(tx.conn(), &ids).await?;
    Ok(stored
        .into_iter()
        .map(|(id, stored)| {
            let open_runs = open.remove(&id).unwrap_or_default();
            (id, Prefetched { stored, open_runs })
        })
        .collect())
}

/// Plans a run stored earlier in this same transaction, with the event it was stored with:
/// neither needs reading back, and it is still pending (a run is only ever changed by its own
/// planning before it has steps; planning other runs supersedes earlier runs, never later ones).
/// `pre` is what [`prefetch`] read of its person, if it did; such a run is marked planned and
/// started by `batch` ([`Batch::finish`]), since nothing else in the batch looks at it.
pub(crate) async fn plan_new_run(
    inner: &Inner,
    tx: &mut Tx,
    run: &RunRow,
    event: &EventRow,
    pre: Option<Prefetched>,
    batch: &mut Batch,
    now: i64,
) -> Result<Planned> {
    let batch = pre.is_some().then_some(batch);
    plan_loaded(inner, tx, run, Some(event), pre, batch, now)
        .instrument(plan_span(run))
        .await
}

/// How many times a leave cancels an earlier run's waiting steps before it waits for that run
/// instead: more than one pass is needed only when outcomes keep committing in between.
const SUPERSEDE_PASSES: u32 = 3;

/// The span a run is planned in: a child of the run's own, so planning joins its trace.
fn plan_span(run: &RunRow) -> tracing::Span {
    let span = tracing::info_span!(
        target: "tenure::plan",
        "plan",
        run_id = %run.id,
        kind = run.kind.as_str(),
        trace_id = tracing::field::Empty,
    );
    tenure_store::trace::set_parent(&span, run.traceparent.as_deref());
    tenure_store::trace::record_trace_id(&span);
    span
}

/// [`plan_run`] once the run is known to be pending and its event (if any) is read; with a
/// `batch`, marking the run planned and starting it is left to [`Batch::finish`].
#[allow(clippy::too_many_arguments)]
async fn plan_loaded(
    inner: &Inner,
    tx: &mut Tx,
    run: &RunRow,
    event_row: Option<&EventRow>,
    pre: Option<Prefetched>,
    batch: Option<&mut Batch>,
    now: i64,
) -> Result<Planned> {
    // An access request's run has no event: it plans the person as stored, with the request's
    // grant among their wants (see `approvals`).
    let request = match (&event_row, run.kind) {
        (None, RunKind::Request) => tenure_store::request_of_run(tx.conn(), &run.id).await?,
        _ => None,
    };
    let event: Option<EventInput> = match (&event_row, &request) {
        (Some(row), _) => Some(
            serde_json::from_str(&row.body)
                .map_err(|e| tenure_store::StoreError::Corrupt(format!("event {}: {e}", row.id)))?,
        ),
        (None, Some(_)) => None,
        (None, None) => {
            fail_run(inner, tx, run, "the run's event is missing", now).await?;
            return Ok(Planned::Yes);
        }
    };
    let kind = event.as_ref().map(|e| e.kind);

    let (earlier, mut pre) = match pre {
        Some(Prefetched { stored, open_runs }) => {
            let earlier = open_runs
                .into_iter()
                .filter(|o| (o.effective_at, &o.id) < (run.effective_at, &run.id))
                .collect();
            (earlier, Some(stored))
        }
        None => (
            tenure_store::earlier_open_runs(tx.conn(), &run.person_id, run).await?,
            None,
        ),
    };
    let leave_ahead =
        kind == Some(EventType::Leave) && earlier.iter().all(|o| o.state != RunState::Pending);
    if !leave_ahead && holds_back(tx, &earlier).await? {
        return Ok(Planned::Waiting);
    }
    if leave_ahead && !earlier.is_empty() {
        // What was read of the person's grants and accounts changes below.
        pre = None;
        // A leave jumps ahead of work already planned: it cancels the steps that have not
        // started (approvals still open included) and waits just for calls in flight.
        let why = gates::Withdrawal {
            actor: "engine",
            reason: format!("{} run {} takes precedence", run.kind, run.id),
            by_run: Some(&run.id),
            denied_by: None,
        };
        let mut waiting = false;
        for other in &earlier {
            // Cancel what has not started, then look for what has not ended. On PostgreSQL an
            // outcome can commit between the two statements (a running step put back in the
            // queue for a retry, the next phase's steps written), so whatever then waits to
            // run is cancelled by another pass.
            let mut cancelled_steps = 0;
            let mut passes = 0;
            let unended = loop {
                let cancelled =
                    tenure_store::cancel_pending_steps(tx.conn(), &other.id, now).await?;
                // A step that was ever claimed may have changed its system (a call that timed
                // out after the change, one whose lease ran out mid-call): for a leaver, what
                // it may have made counts as made, so the leave takes it away.
                forget_planned_effects(inner, tx, &cancelled, &why, now).await?;
                cancelled_steps += cancelled.len();
                passes += 1;
                let unended = tenure_store::run_unended_steps(tx.conn(), &other.id).await?;
                if !unended.waiting || passes == SUPERSEDE_PASSES {
                    break unended;
                }
            };
            if cancelled_steps > 0 {
                tx.audit(NewAudit {
                    at_ms: now,
                    actor: "engine".into(),
                    action: AuditAction::RunSuperseded.into(),
                    person_id: Some(run.person_id.clone()),
                    run_id: Some(other.id.clone()),
                    reason: format!("{} run {} takes precedence", run.kind, run.id),
                    correlation_id: other.event_id.clone(),
                    details: serde_json::json!({ "cancelled_steps": cancelled_steps, "by_run": run.id }),
                    ..Default::default()
                });
            }
            // A call in flight (or, after every pass, a step still being put back) is waited
            // for: the leave stays pending, and the planner tries it again after the next
            // outcome.
            if unended.running || unended.waiting {
                waiting = true;
            } else {
                advance_run(inner, tx, &other.id, now).await?;
            }
        }
        if waiting {
            return Ok(Planned::Waiting);
        }
    }

    let rules = inner.rules();
    let today = DateTime::from_timestamp_millis(now)
        .unwrap_or_default()
        .date_naive();
    let (stored, engagements, held) = match pre {
        Some(p) => (p.person, p.engagements, Some((p.accounts, p.grants))),
        None => (
            tenure_store::get_person(tx.conn(), &run.person_id).await?,
            tenure_store::engagements_of(tx.conn(), &run.person_id).await?,
            None,
        ),
    };
    let applied = match (&event, &stored) {
        (Some(event), _) => apply_event(event, stored.as_ref(), &engagements, today),
        (None, Some(person)) => Ok(tenure_core::event::Applied {
            person: person.clone(),
            engagements: Vec::new(),
            client: None,
            attributes_changed: false,
        }),
        (None, None) => Err(tenure_core::event::ApplyError::UnknownPerson(
            run.person_id.clone(),
        )),
    };
    let applied = match applied {
        Ok(a) => a,
        Err(e) => {
            fail_run(inner, tx, run, &e.to_string(), now).await?;
            return Ok(Planned::Yes);
        }
    };
    tenure_store::upsert_person_after(tx.conn(), &applied.person, stored.as_ref(), now).await?;
    if applied.person.status == PersonStatus::Terminated
        && stored
            .as_ref()
            .is_some_and(|s| s.status != PersonStatus::Terminated)
    {
        gates::on_person_left(inner, tx, &applied.person.id, now).await?;
    }
    if let Some(client) = &applied.client {
        let before = tenure_store::clients_by_ids(tx.conn(), &[client.id.as_str()]).await?;
        tenure_store::upsert_client(tx.conn(), client).await?;
        if before.first() != Some(client) {
            rejudge_client(inner, tx, client, &run.person_id, now).await?;
        }
    }
    for en in &applied.engagements {
        tenure_store::upsert_engagement(tx.conn(), en).await?;
    }
    timers::schedule_end_dates(tx, &applied.person, &applied.engagements, now).await?;
    let mut all_engagements = engagements;
    for en in &applied.engagements {
        match all_engagements.iter_mut().find(|g| g.id == en.id) {
            Some(g) => *g = en.clone(),
            None => all_engagements.push(en.clone()),
        }
    }
    let (accounts, grants) = match held {
        Some(held) => held,
        None => held_by(tx, &run.person_id).await?,
    };
    let clients = client_facts(tx.conn(), &rules.config, &all_engagements, &grants).await?;
    let state = State {
        person: &applied.person,
        engagements: &all_engagements,
        accounts: &accounts,
        grants: &grants,
        clients: &clients,
    };
    let computed = compute(
        &rules,
        &state,
        Changed::by(&applied, stored.as_ref()),
        request.as_ref(),
        now,
    );
    let priority = if kind.is_some_and(EventType::is_urgent) || run.priority.is_urgent() {
        Priority::Urgent
    } else {
        Priority::Normal
    };
    let reason = match (&event, &event_row, &request) {
        (Some(e), Some(row), _) => format!("{} event {}", e.kind, row.id),
        (_, _, Some(r)) => format!("access request {}", r.id),
        _ => run.kind.to_string(),
    };
    let note = store_plan(
        inner,
        tx,
        run,
        &state,
        computed,
        priority,
        reason,
        request.as_ref(),
        now,
    )
    .await?;
    match batch {
        Some(batch) => batch.planned.push((run.id.clone(), note)),
        None => {
            tenure_store::set_run_planned(tx.conn(), &run.id, note, planned_at(inner, now)).await?;
            advance_run(inner, tx, &run.id, now).await?;
        }
    }
    Ok(Planned::Yes)
}

/// A client's terms changed (an event told new ones): everyone else they bear on gets a
/// `reconcile` run, which judges their held access again under the new terms (the person of
/// the event is judged by its own run).
async fn rejudge_client(
    inner: &Inner,
    tx: &mut Tx,
    client: &tenure_core::Client,
    told_by: &str,
    now: i64,
) -> Result<()> {
    let rules = inner.rules();
    let entitlements: Vec<&str> = rules
        .config
        .entitlements
        .iter()
        .filter(|(_, e)| e.client.as_deref() == Some(client.id.as_str()))
        .map(|(id, _)| id.as_str())
        .collect();
    let mut people =
        tenure_store::people_bound_by_client(tx.conn(), &client.id, &entitlements).await?;
    people.retain(|p| p != told_by);
    if people.is_empty() {
        return Ok(());
    }
    schedule_reconcile(tx, &people, now).await?;
    tx.audit(NewAudit {
        at_ms: now,
        actor: "engine".into(),
        action: AuditAction::ClientTermsChanged.into(),
        person_id: Some(told_by.to_string()),
        reason: format!(
            "client {} has new terms: the access of the people they bind is judged again",
            client.id
        ),
        details: serde_json::json!({ "client": client.id, "people": people }),
        ..Default::default()
    });
    Ok(())
}

/// Plans a `reconcile` run: the stored person, unchanged, against the rules in force. Waits
/// behind the person's earlier runs like any run.
async fn plan_reconcile(inner: &Inner, tx: &mut Tx, run: &RunRow, now: i64) -> Result<Planned> {
    let earlier = tenure_store::earlier_open_runs(tx.conn(), &run.person_id, run).await?;
    if holds_back(tx, &earlier).await? {
        return Ok(Planned::Waiting);
    }
    let Some(person) = tenure_store::get_person(tx.conn(), &run.person_id).await? else {
        fail_run(inner, tx, run, "the person is not known", now).await?;
        return Ok(Planned::Yes);
    };
    let engagements = tenure_store::engagements_of(tx.conn(), &run.person_id).await?;
    let (accounts, grants) = held_by(tx, &run.person_id).await?;
    let rules = inner.rules();
    let clients = client_facts(tx.conn(), &rules.config, &engagements, &grants).await?;
    let state = State {
        person: &person,
        engagements: &engagements,
        accounts: &accounts,
        grants: &grants,
        clients: &clients,
    };
    // The rules changed: access already held is judged again too (what a what-if showed).
    let changed = Changed {
        account_attributes: false,
        facts: true,
    };
    let computed = compute(&rules, &state, changed, None, now);
    let reason = match run.kind {
        RunKind::Remediate => format!(
            "reconciliation corrected the record of this person's access: {}",
            rules.label
        ),
        _ => format!("rules changed: {}", rules.label),
    };
    let note = store_plan(
        inner,
        tx,
        run,
        &state,
        computed,
        run.priority,
        reason,
        None,
        now,
    )
    .await?;
    tenure_store::set_run_planned(tx.conn(), &run.id, note, planned_at(inner, now)).await?;
    advance_run(inner, tx, &run.id, now).await?;
    Ok(Planned::Yes)
}

/// The accounts and grants (every state) a person holds, as stored.
async fn held_by(tx: &mut Tx, person: &str) -> Result<(Vec<tenure_core::Account>, Vec<Grant>)> {
    let accounts = tenure_store::accounts_of(tx.conn(), person).await?;
    let grants = tenure_store::grants_of(tx.conn(), person)
        .await?
        .into_iter()
        .map(|(g, _)| g)
        .collect();
    Ok((accounts, grants))
}

/// Whether the person's earlier open runs hold a later one back: every one does, except a
/// run that waits only for approvals (a step awaiting approval, none pending or running). One
/// with no step left at all is ending in another transaction: the later run waits for that.
async fn holds_back(tx: &mut Tx, earlier: &[RunRow]) -> Result<bool> {
    if earlier.is_empty() {
        return Ok(false);
    }
    if earlier.iter().any(|o| o.state == RunState::Pending) {
        return Ok(true);
    }
    let ids: Vec<String> = earlier.iter().map(|o| o.id.clone()).collect();
    let statuses = tenure_store::step_statuses_of_runs(tx.conn(), &ids).await?;
    Ok(ids.iter().any(|id| {
        let steps = statuses.get(id).map_or(&[][..], Vec::as_slice);
        let waiting = steps.iter().any(|s| s.state == StepState::AwaitingApproval);
        let busy = steps
            .iter()
            .any(|s| matches!(s.state, StepState::Pending | StepState::Running));
        busy || !waiting
    }))
}

/// What one person holds now, as stored.
pub(crate) struct State<'a> {
    pub person: &'a Person,
    pub engagements: &'a [tenure_core::Engagement],
    pub accounts: &'a [tenure_core::Account],
    pub grants: &'a [Grant],
    /// What events told of the clients involved.
    pub clients: &'a ClientFacts,
}

/// A plan with policy's decisions on its grants.
pub(crate) struct Computed {
    pub plan: planner::Plan,
    pub authorized: Authorized,
}

/// What an event changed, which decides how much of the person's access is looked at anew.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Changed {
    /// Attributes that accounts carry (name, email, title, ...): every account kept is updated.
    pub account_attributes: bool,
    /// A fact policy reads (the person's, or their client's terms), or policy itself: access
    /// already held is judged again, and what policy now forbids is revoked.
    pub facts: bool,
}

impl Changed {
    /// What applying an event to `stored` changed.
    pub(crate) fn by(applied: &tenure_core::event::Applied, stored: Option<&Person>) -> Changed {
        Changed {
            account_attributes: applied.attributes_changed && stored.is_some(),
            facts: stored.is_some_and(|s| *s != applied.person) || applied.client.is_some(),
        }
    }
}

/// The one place a plan is computed, for runs and for what-if alike: desired access from the
/// templates, engagements and requests; policy and separation of duties on every grant not yet
/// held, whatever wants it and whether or not it is already stored `pending` (and on held
/// access when the facts policy reads changed); the diff against what the person holds.
/// `request` is the access request the run carries out, if any: its grant needs the configured
/// request stages, or no approval at all when it is break-glass (which may override the
/// separation-of-duties rules `break_glass_may_override` names, and nothing else).
pub(crate) fn compute(
    rules: &Rules,
    state: &State<'_>,
    changed: Changed,
    request: Option<&tenure_store::RequestRow>,
    now: i64,
) -> Computed {
    let config = &rules.config;
    let today = DateTime::from_timestamp_millis(now)
        .unwrap_or_default()
        .date_naive();
    let mut desired = planner::desired_access(
        config,
        state.clients,
        state.person,
        state.engagements,
        state.grants,
        today,
        now,
    );
    let break_glass = request
        .filter(|r| r.break_glass)
        .map(|r| r.entitlement.as_str());
    let mut authorized = authorize_grants(
        config,
        &rules.policy,
        state.clients,
        state.person,
        &mut desired,
        state.grants,
        changed.facts,
        break_glass,
    );
    for d in authorized.decisions() {
        metrics::counter!("tenure_policy_decisions_total", "decision" => d.outcome()).increment(1);
    }
    if let Some(r) = request {
        authorized.for_request(
            &r.entitlement,
            r.break_glass,
            &config.approvals.request_stages,
        );
    }
    let plan = planner::plan(
        config,
        &desired,
        state.accounts,
        state.grants,
        changed.account_attributes,
    );
    Computed { plan, authorized }
}

/// Time-bound access (risky entitlements, clients with a maximum access duration) gets its
/// window as it is planned; a grant that waits for approval gets it when approved. Held access
/// without a window, or with a longer one than the rules now allow (a client's contract
/// changed), is bound from now. A request's own grant is bound by the request's flow.
#[allow(clippy::too_many_arguments)]
async fn bound_planned_grants(
    inner: &Inner,
    tx: &mut Tx,
    run: &RunRow,
    planned: &[(Grant, String)],
    held: &[&Grant],
    clients: &ClientFacts,
    request: Option<&tenure_store::RequestRow>,
    now: i64,
) -> Result<()> {
    let rules = inner.rules();
    let config = &rules.config;
    let planned = planned
        .iter()
        .map(|(g, _)| g)
        .filter(|g| {
            g.state == GrantState::Pending
                && g.source != GrantSource::Request
                && request.is_none_or(|r| r.entitlement != g.entitlement)
        })
        .filter_map(|g| Some((g, config.time_bound_with(&g.entitlement, clients)?)));
    let held = held
        .iter()
        .filter(|g| g.state == GrantState::Granted && g.source != GrantSource::Request)
        .filter_map(|g| Some((*g, config.time_bound_with(&g.entitlement, clients)?)))
        .filter(|(g, bound)| {
            g.expires_at
                .is_none_or(|at| at > now.saturating_add(bound.ms))
        });
    for (g, bound) in planned.chain(held) {
        timers::bound_grant(
            tx,
            &g.person_id,
            &g.entitlement,
            g.source,
            &g.source_ref,
            &bound,
            Some(&run.id),
            now,
        )
        .await?;
    }
    Ok(())
}

/// Stores a computed plan as the run's steps, marks planned access pending and audits
/// `run.planned`. Returns the planner's note: the caller marks the run planned with it
/// (`set_run_planned`) and starts its first phase.
#[allow(clippy::too_many_arguments)]
async fn store_plan(
    inner: &Inner,
    tx: &mut Tx,
    run: &RunRow,
    state: &State<'_>,
    computed: Computed,
    priority: Priority,
    reason: String,
    request: Option<&tenure_store::RequestRow>,
    now: i64,
) -> Result<Option<String>> {
    let Computed { plan, authorized } = computed;
    for d in authorized.denied() {
        // A grant planned by an earlier run that never ran is no longer wanted.
        tenure_store::forget_pending_grant(tx.conn(), &run.person_id, &d.entitlement).await?;
    }
    withdraw_unwanted(inner, tx, run, &plan.withdrawn, &authorized, now).await?;
    let steps: Vec<StepRow> = plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| StepRow {
            state: match &s.entitlement {
                Some(e) if s.action == Action::Grant && authorized.needs_approval(e) => {
                    StepState::AwaitingApproval
                }
                _ => StepState::Pending,
            },
            ..StepRow::new(NewStep {
                run_id: &run.id,
                idx: i as i64,
                phase: s.phase as i64,
                priority,
                now,
                person_id: &run.person_id,
                system: &s.system,
                action: s.action,
                entitlement: s.entitlement.as_deref(),
                source: s.source,
                source_ref: s.source_ref.as_deref(),
            })
        })
        .collect();
    tenure_store::insert_steps(tx.conn(), &steps).await?;
    // Show planned access as pending right away.
    let mut accounts_pending = Vec::new();
    let mut grants_pending = Vec::new();
    for s in &steps {
        match s.action {
            Action::CreateAccount => accounts_pending.push((
                s.person_id.clone(),
                s.system.clone(),
                AccountState::Pending,
            )),
            Action::Grant => grants_pending.push((
                Grant {
                    person_id: s.person_id.clone(),
                    entitlement: s.entitlement.clone().unwrap_or_default(),
                    source: s.source.unwrap_or(tenure_core::GrantSource::Birthright),
                    source_ref: s.source_ref.clone().unwrap_or_default(),
                    state: if s.state == StepState::AwaitingApproval {
                        GrantState::AwaitingApproval
                    } else {
                        GrantState::Pending
                    },
                    granted_at: None,
                    expires_at: None,
                },
                s.system.clone(),
            )),
            _ => {}
        }
    }
    tenure_store::upsert_accounts(tx.conn(), &accounts_pending, now).await?;
    tenure_store::upsert_grants(tx.conn(), &grants_pending, now).await?;
    let revoking: BTreeSet<&str> = plan
        .steps
        .iter()
        .filter(|s| s.action == Action::Revoke)
        .filter_map(|s| s.entitlement.as_deref())
        .collect();
    let held: Vec<&Grant> = state
        .grants
        .iter()
        .filter(|g| !revoking.contains(g.entitlement.as_str()))
        .collect();
    bound_planned_grants(
        inner,
        tx,
        run,
        &grants_pending,
        &held,
        state.clients,
        request,
        now,
    )
    .await?;
    let mut note = serde_json::Map::new();
    if !plan.skipped.is_empty() {
        note.insert("skipped".into(), serde_json::json!(plan.skipped));
    }
    authorized.add_to_note(&mut note);
    let note = (!note.is_empty()).then(|| serde_json::Value::Object(note).to_string());

    let mut details = serde_json::json!({
        "status": state.person.status,
        "steps": plan.steps.iter().map(|s| serde_json::json!({
            "phase": s.phase, "action": s.action, "system": s.system, "entitlement": s.entitlement,
            "source": s.source, "source_ref": s.source_ref,
        })).collect::<Vec<_>>(),
        "skipped": plan.skipped,
    });
    if let Some(d) = details.as_object_mut() {
        authorized.add_to_audit(d);
    }
    tx.audit(NewAudit {
        at_ms: now,
        actor: "engine".into(),
        action: AuditAction::RunPlanned.into(),
        person_id: Some(run.person_id.clone()),
        run_id: Some(run.id.clone()),
        reason,
        correlation_id: run
            .event_id
            .clone()
            .or_else(|| request.map(|r| r.id.clone())),
        details,
        ..Default::default()
    });
    gates::on_planned(inner, tx, run, request, &steps, &authorized, now).await?;
    Ok(note)
}

/// Grants that wait for an approval in an earlier run of the person but that this run's plan
/// no longer wants: their steps are cancelled, their approvals withdrawn, their pending grant
/// rows forgotten, and the earlier runs re-evaluated (one left with nothing else to do ends).
/// A grant that policy or separation of duties now denies (the rules changed while it waited)
/// ends its access request `denied`, citing them; any other ends it `withdrawn`.
async fn withdraw_unwanted(
    inner: &Inner,
    tx: &mut Tx,
    run: &RunRow,
    entitlements: &[String],
    authorized: &Authorized,
    now: i64,
) -> Result<()> {
    if entitlements.is_empty() {
        return Ok(());
    }
    let mut earlier = BTreeSet::new();
    for e in entitlements {
        let cancelled = tenure_store::cancel_waiting_grant_steps(
            tx.conn(),
            &run.person_id,
            std::slice::from_ref(e),
            now,
        )
        .await?;
        let why = match authorized.denied_by(e) {
            Some(policies) => gates::Withdrawal {
                actor: "engine",
                reason: format!(
                    "the {} run {} finds this grant forbidden by {}",
                    run.kind,
                    run.id,
                    policies.join(", ")
                ),
                by_run: Some(&run.id),
                denied_by: Some(policies),
            },
            None => gates::Withdrawal {
                actor: "engine",
                reason: format!("the {} run {} no longer wants this grant", run.kind, run.id),
                by_run: Some(&run.id),
                denied_by: None,
            },
        };
        forget_planned_effects(inner, tx, &cancelled, &why, now).await?;
        earlier.extend(cancelled.into_iter().map(|s| s.run_id));
    }
    advance_runs(inner, tx, &earlier.into_iter().collect::<Vec<_>>(), now).await
}

/// Undoes the "pending" marks that planning put on accounts and grants whose steps were
/// cancelled before they ran, and withdraws the approvals those steps waited for. What each
/// step leaves is the core's decision (`outcome::cancelled`): a step claimed before may have
/// changed its system, and leaves its account or grant `uncertain` for a later run to make
/// again or take away.
async fn forget_planned_effects(
    inner: &Inner,
    tx: &mut Tx,
    cancelled: &[StepRow],
    why: &gates::Withdrawal<'_>,
    now: i64,
) -> Result<()> {
    let waiting: Vec<String> = cancelled
        .iter()
        .filter(|s| s.action == Action::Grant)
        .map(|s| s.id.clone())
        .collect();
    gates::withdraw(inner, tx, &waiting, why, now).await?;
    AccessChanges::of_cancelled(cancelled)
        .write(tx.conn(), now)
        .await
}

pub(crate) async fn cancel_run(inner: &Inner, run_id: &str, actor: &str) -> Result<()> {
    let mut tx = inner.store.begin().await?;
    let now = inner.clock.now_ms();
    let run = tenure_store::lock_run(tx.conn(), run_id)
        .await?
        .ok_or_else(|| EngineError::NotFound(format!("run `{run_id}`")))?;
    if run.state.is_terminal() && run.state != RunState::Failed {
        return Err(EngineError::Conflict(format!(
            "run `{run_id}` has already ended ({})",
            run.state
        )));
    }
    if run.cancel_requested {
        return Err(EngineError::Conflict(format!(
            "run `{run_id}` is already being cancelled"
        )));
    }
    tenure_store::request_cancel(tx.conn(), run_id).await?;
    let cancelled = tenure_store::cancel_pending_steps(tx.conn(), run_id, now).await?;
    let why = gates::Withdrawal {
        actor,
        reason: "run cancelled by an operator".into(),
        by_run: Some(run_id),
        denied_by: None,
    };
    forget_planned_effects(inner, &mut tx, &cancelled, &why, now).await?;
    tx.audit(NewAudit {
        at_ms: now,
        actor: actor.to_string(),
        action: AuditAction::RunCancelRequested.into(),
        person_id: Some(run.person_id.clone()),
        run_id: Some(run.id.clone()),
        reason: "cancelled by an operator".into(),
        correlation_id: run.event_id.clone(),
        details: serde_json::json!({ "cancelled_steps": cancelled.len() }),
        ..Default::default()
    });
    if run.state == RunState::Pending || run.state == RunState::Failed {
        // Never planned, or failed: make it evaluable (failed runs compensate too).
        tenure_store::set_run_state(tx.conn(), run_id, RunState::Running, None, now).await?;
    }
    advance_run(inner, &mut tx, run_id, now).await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn retry_run(inner: &Inner, run_id: &str, actor: &str) -> Result<()> {
    let mut tx = inner.store.begin().await?;
    let now = inner.clock.now_ms();
    let run = tenure_store::lock_run(tx.conn(), run_id)
        .await?
        .ok_or_else(|| EngineError::NotFound(format!("run `{run_id}`")))?;
    // A run with a failed system is retried as soon as nothing else is needed from the
    // operator: once it has failed, or while its other systems still work or wait.
    if run.state.is_terminal() && run.state != RunState::Failed {
        return Err(EngineError::Conflict(format!(
            "only runs with failed steps can be retried; run `{run_id}` is {}",
            run.state
        )));
    }
    // A cancelled run retries only what undoes it; its own failures stay failed.
    let compensation_only = run.cancel_requested;
    let tasks =
        tenure_store::reopen_failed_tasks_of_run(tx.conn(), run_id, compensation_only).await?;
    let steps = tenure_store::retry_failed_steps(tx.conn(), run_id, compensation_only, now).await?;
    if steps == 0 {
        return Err(EngineError::Conflict(if run.state == RunState::Failed {
            format!(
                "run `{run_id}` failed before planning ({}); send a corrected event instead",
                run.error.as_deref().unwrap_or("no error recorded")
            )
        } else {
            format!(
                "only runs with failed steps can be retried; run `{run_id}` is {} with none",
                run.state
            )
        }));
    }
    if run.state == RunState::Failed {
        tenure_store::set_run_state(tx.conn(), run_id, RunState::Running, None, now).await?;
    }
    tx.audit(NewAudit {
        at_ms: now,
        actor: actor.to_string(),
        action: AuditAction::RunRetried.into(),
        person_id: Some(run.person_id.clone()),
        run_id: Some(run.id.clone()),
        reason: "retried by an operator".into(),
        correlation_id: run.event_id.clone(),
        details: serde_json::json!({ "steps": steps, "tasks_reopened": tasks }),
        ..Default::default()
    });
    advance_run(inner, &mut tx, run_id, now).await?;
    tx.commit().await?;
    Ok(())
}

/// Gives each account of `system` no person holds (reached through the ids `subjects`) a
/// `remediate` run of its own that disables it: one `disable_account` step at leaver
/// priority, marked as acting on an account tenure found (`source = discovered`, see
/// [`StepRow::is_orphan`]) so that no person's record changes when it is done. Nothing is
/// planned from rules: the account is no one's, and taking access away needs no approval.
/// An account whose run from an earlier pass has not ended (its system keeps failing) gets no
/// second one. Returns how many runs it made.
pub(crate) async fn disable_orphans(
    inner: &Inner,
    tx: &mut Tx,
    system: &str,
    subjects: &[String],
    reconciliation: &str,
    now: i64,
) -> Result<usize> {
    if subjects.is_empty() {
        return Ok(0);
    }
    let open = tenure_store::open_runs_of_people(tx.conn(), subjects).await?;
    let mut runs = Vec::with_capacity(subjects.len());
    let mut steps = Vec::with_capacity(subjects.len());
    for subject in subjects.iter().filter(|s| !open.contains_key(*s)) {
        let run = RunRow::pending(
            uuid::Uuid::now_v7().to_string(),
            subject.clone(),
            RunKind::Remediate,
            Priority::Urgent,
            now,
        )
        .in_trace(None);
        steps.push(StepRow::new(NewStep {
            run_id: &run.id,
            idx: 0,
            phase: 0,
            priority: Priority::Urgent,
            now,
            person_id: subject,
            system,
            action: Action::DisableAccount,
            entitlement: None,
            source: Some(GrantSource::Discovered),
            source_ref: Some(reconciliation),
        }));
        tx.audit(NewAudit {
            at_ms: now,
            actor: "engine".into(),
            action: AuditAction::RunPlanned.into(),
            person_id: Some(subject.clone()),
            run_id: Some(run.id.clone()),
            system: Some(system.to_string()),
            reason: format!(
                "reconciliation found an account on {system} that no person holds: disabling it"
            ),
            correlation_id: Some(reconciliation.to_string()),
            details: serde_json::json!({
                "orphan": true,
                "steps": [{ "phase": 0, "action": Action::DisableAccount, "system": system }],
            }),
            ..Default::default()
        });
        runs.push(run);
    }
    tenure_store::insert_runs(tx.conn(), &runs).await?;
    tenure_store::insert_steps(tx.conn(), &steps).await?;
    let planned: Vec<(String, Option<String>)> =
        runs.iter().map(|r| (r.id.clone(), None)).collect();
    tenure_store::set_runs_planned(tx.conn(), &planned, planned_at(inner, now)).await?;
    let ids: Vec<String> = runs.into_iter().map(|r| r.id).collect();
    advance_runs(inner, tx, &ids, now).await?;
    Ok(ids.len())
}

/// Gives each of `people` a `reconcile` run, due now: the dispatcher plans them against the
/// rules in force, judging held access again.
pub(crate) async fn schedule_reconcile(
    tx: &mut tenure_store::Tx,
    people: &[String],
    now: i64,
) -> Result<()> {
    let people: Vec<(String, Priority)> = people
        .iter()
        .map(|p| (p.clone(), Priority::Normal))
        .collect();
    schedule_rejudge(tx, RunKind::Reconcile, &people, now).await
}

/// Gives each of `people` a run of `kind` (`reconcile` or `remediate`) at its priority (urgent
/// for one who must lose access), due now.
pub(crate) async fn schedule_rejudge(
    tx: &mut tenure_store::Tx,
    kind: RunKind,
    people: &[(String, Priority)],
    now: i64,
) -> Result<()> {
    let runs: Vec<RunRow> = people
        .iter()
        .map(|(person_id, priority)| {
            let id = uuid::Uuid::now_v7().to_string();
            RunRow::pending(id, person_id.clone(), kind, *priority, now).in_trace(None)
        })
        .collect();
    tenure_store::insert_runs(tx.conn(), &runs).await?;
    Ok(())
}
