//! The dispatcher (plan due runs, claim ready steps, call connectors) and the completer
//! (record outcomes, retry, advance runs), each batching its writes into few transactions.

use crate::access::AccessChanges;
use crate::context::Inner;
use crate::dispatch::{claim_urgent_now, dispatch};
use crate::error::Result;
use crate::messages::{CallResult, Outcome, RenewRequest};
use crate::{planning, progress};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tenure_connectors::ConnectorError;
use tenure_core::audit::AuditAction;
use tenure_core::outcome::{self, CallOutcome, OutcomeKind, StepFacts};
use tenure_core::run::Priority;
use tenure_store::{NewAudit, StepRow, StepUpdate};
use tokio::sync::mpsc;

/// How often the dispatcher looks for work nobody announced (other instances, expired leases).
const POLL_MS: i64 = 1_000;
/// How often expired leases are taken back.
const REQUEUE_EVERY_MS: i64 = 5_000;
/// At most this many leaver outcomes are recorded in one transaction.
const URGENT_BATCH: usize = 128;
/// At most this many other outcomes are taken to record at once.
const NORMAL_BATCH: usize = 512;
/// Other outcomes are recorded this many at a time. Between two such parts the transaction is
/// committed when a leaver's transaction waits for SQLite's one writer: it waits for a part,
/// never for a whole batch of hire outcomes.
const NORMAL_PART: usize = 32;

/// Takes back steps a previous process left running.
pub(crate) async fn recover(inner: &Inner) -> Result<()> {
    let now = inner.clock.now_ms();
    let lease_before = if inner.options.sole_instance {
        i64::MAX
    } else {
        now
    };
    let mut tx = inner.store.begin().await?;
    let n = tenure_store::requeue_expired(tx.conn(), lease_before, now).await?;
    if n > 0 {
        tx.audit(NewAudit {
            at_ms: now,
            actor: "engine".into(),
            action: AuditAction::EngineRecovered.into(),
            reason: "steps left running by a stopped process are retried with their operation ids"
                .into(),
            details: serde_json::json!({ "steps": n }),
            ..Default::default()
        });
        tracing::info!(
            steps = n,
            "recovered steps left running by a previous process"
        );
    }
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn dispatcher(inner: Arc<Inner>) {
    let mut shutdown = inner.shutdown.subscribe();
    let mut last_requeue = inner.clock.now_ms();
    loop {
        if *shutdown.borrow() {
            break;
        }
        let now = inner.clock.now_ms();
        // Planning one run can unblock the next of the same person: go again while it helps.
        for _ in 0..16 {
            match plan_due(&inner).await {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "planning due runs failed; will try again");
                    break;
                }
            }
        }
        if now - last_requeue >= REQUEUE_EVERY_MS.min(inner.options.lease_ms / 2) {
            last_requeue = now;
            match requeue(&inner, now).await {
                Ok(0) => {}
                Ok(n) => tracing::warn!(steps = n, "took back steps whose lease ran out"),
                Err(e) => tracing::error!(error = %e, "taking back expired steps failed"),
            }
        }
        // Leaver steps have capacity of their own: a backlog of hires never holds them back.
        let normal = inner
            .options
            .max_in_flight
            .saturating_sub(inner.in_flight.load(Ordering::Acquire));
        let urgent = inner
            .options
            .max_urgent_in_flight
            .saturating_sub(inner.urgent_in_flight.load(Ordering::Acquire));
        let (want, urgent_only) = if normal > 0 {
            (normal.min(inner.options.claim_batch), false)
        } else {
            (urgent.min(inner.options.claim_batch), true)
        };
        let mut claimed = 0;
        if want > 0 && ready_now(&inner, now).await {
            match claim(&inner, now, want, urgent_only).await {
                Ok(steps) => {
                    claimed = steps.len();
                    dispatch(&inner, steps).await;
                }
                Err(e) => tracing::error!(error = %e, "claiming steps failed; will try again"),
            }
        }
        if claimed > 0 && claimed == want {
            continue; // more may be waiting
        }
        let wait = match next_due(&inner, now).await {
            Ok(Some(t)) if t > now => (t - now).min(POLL_MS),
            Ok(Some(_)) if want > 0 && claimed == 0 => POLL_MS, // due but waiting on another run
            Ok(Some(_)) => 0,
            Ok(None) => POLL_MS,
            Err(e) => {
                tracing::error!(error = %e, "reading the queue failed");
                POLL_MS
            }
        };
        if wait == 0 {
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            _ = inner.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
            _ = shutdown.wait_for(|stop| *stop) => {}
        }
    }
}

/// Plans the runs whose time has come; returns how many were planned. Runs waiting for an
/// earlier run of the same person stay pending.
async fn plan_due(inner: &Arc<Inner>) -> Result<usize> {
    let mut c = inner.store.reader().await?;
    // Runs come urgent first: when the first is, this transaction takes the writer ahead of
    // normal work. It plans the normal runs due as well: an urgent run waiting for an earlier
    // run of its person stays first, and must not hold back the runs behind it.
    let Some(first) = tenure_store::runs_due(&mut c, inner.clock.now_ms(), 1)
        .await?
        .pop()
    else {
        return Ok(0);
    };
    drop(c);
    let priority = first.priority;
    let mut tx = inner.store.begin_with(priority).await?;
    // The time once the writer is ours: a run ended by the transaction before this one is
    // never planned, by these timestamps, before it ended.
    let now = inner.clock.now_ms();
    let due = tenure_store::runs_due(tx.conn(), now, 256).await?;
    let (mut planned, mut urgent) = (0, Vec::new());
    for run in &due {
        if planning::plan_run(inner, &mut tx, run, now).await? == planning::Planned::Yes {
            planned += 1;
            if run.priority.is_urgent() {
                urgent.push(run.id.clone());
            }
        }
    }
    claim_urgent_now(inner, &mut tx, &urgent, now).await?;
    tx.commit().await?;
    Ok(planned)
}

async fn requeue(inner: &Inner, now: i64) -> Result<u64> {
    let mut tx = inner.store.begin().await?;
    let n = tenure_store::requeue_expired(tx.conn(), now, now).await?;
    tx.commit().await?;
    Ok(n)
}

/// Whether a read shows a step ready to claim. When none is, a claim's write transaction would
/// find nothing and only take SQLite's one writer from work that has some (a leave's next
/// phase, claimed in the completer's transaction, waited behind such empty claims). A failed
/// read says yes: the claim then reports its own error.
async fn ready_now(inner: &Inner, now: i64) -> bool {
    let ready = async {
        let mut c = inner.store.reader().await?;
        tenure_store::any_step_claimable(&mut c, now).await
    };
    ready.await.unwrap_or(true)
}

async fn claim(inner: &Inner, now: i64, limit: usize, urgent_only: bool) -> Result<Vec<StepRow>> {
    let mut tx = inner.store.begin().await?;
    let lease_until = now + inner.options.lease_ms;
    let backend = tx.backend();
    let steps = tenure_store::claim_steps(
        tx.conn(),
        backend,
        now,
        lease_until,
        limit as i64,
        urgent_only,
    )
    .await?;
    tx.commit().await?;
    Ok(steps)
}

/// The earliest time a step or a run becomes due; runs already due but waiting on an earlier
/// run of the same person count as "due now" only through the caller's logic.
async fn next_due(inner: &Inner, now: i64) -> Result<Option<i64>> {
    let mut c = inner.store.reader().await?;
    let step = tenure_store::next_step_available(&mut c).await?;
    let run = tenure_store::next_run_due(&mut c).await?;
    // A run due now that stayed pending is waiting for another run; do not spin on it.
    let run = run.filter(|t| *t > now);
    Ok(match (step, run) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

/// Records the outcomes of one priority's steps, in batches of a transaction each, and renews
/// the leases of that priority's steps still in flight. Leavers' outcomes have a completer of
/// their own: they never wait for a batch of hire outcomes being recorded, only (on SQLite) for
/// the writer's transaction under way.
pub(crate) async fn completer(
    inner: Arc<Inner>,
    priority: Priority,
    mut outcomes: mpsc::Receiver<Outcome>,
    mut renew_requests: mpsc::Receiver<RenewRequest>,
) {
    let (in_flight, batch_limit) = match priority {
        Priority::Urgent => (&inner.urgent_in_flight, URGENT_BATCH),
        Priority::Normal => (&inner.in_flight, NORMAL_BATCH),
    };
    let mut shutdown = inner.shutdown.subscribe();
    // Leases are renewed here, between this completer's recordings, so an outcome is always
    // fenced by the lease its step holds in the database: renewal and recording of the same
    // step never interleave (the other completer's steps are not this one's to renew).
    let every = Duration::from_millis((inner.options.lease_ms / 3).max(1) as u64);
    let mut renew_tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    renew_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Vec::with_capacity(batch_limit);
    // Once stopping, only the outcomes of calls still in flight are awaited. `wait_for` sees a
    // stop requested before this task first ran, which `changed` would miss.
    let mut stopping = false;
    // A renewal asked for (with whom to answer) or due by the tick.
    let mut renewal: Option<Option<RenewRequest>> = None;
    loop {
        let received = tokio::select! {
            biased;
            // A renewal is due once a third of a lease: it never holds outcomes back for long,
            // and a steady stream of outcomes never holds it back.
            Some(reply) = renew_requests.recv() => {
                renewal = Some(Some(reply));
                false
            }
            _ = renew_tick.tick() => {
                renewal = Some(None);
                false
            }
            n = outcomes.recv_many(&mut batch, batch_limit) => n > 0,
            _ = shutdown.wait_for(|stop| *stop), if !stopping => {
                stopping = true;
                false
            }
        };
        match renewal.take() {
            Some(Some(reply)) => {
                let _ = reply.send(renew(&inner, priority).await);
            }
            Some(None) => {
                if let Err(e) = renew(&inner, priority).await {
                    tracing::error!(error = %e, "renewing step leases failed; will try again");
                }
            }
            None => {}
        }
        if received {
            if priority == Priority::Urgent {
                // Outcomes that come back together (a leave's calls of one phase) are
                // recorded together: those sent while this task was waking join the batch.
                tokio::task::yield_now().await;
                while batch.len() < batch_limit
                    && let Ok(o) = outcomes.try_recv()
                {
                    batch.push(o);
                }
            }
            let recorded = std::mem::take(&mut batch);
            let count = recorded.len();
            if let Err(e) = record(&inner, recorded, priority).await {
                // What the failed transaction held was not stored; its steps stay leased and
                // are taken back when the lease runs out, then retried with the same
                // operation ids.
                tracing::error!(error = %e, steps = count, "recording step outcomes failed");
            }
            in_flight.fetch_sub(count, Ordering::AcqRel);
            inner.wake.notify_one();
        }
        if stopping && in_flight.load(Ordering::Acquire) == 0 {
            break;
        }
    }
}

/// Renews the leases of held steps of this priority that are a third or more used, so a call
/// that outlives its lease is not taken back and made again. A lease another instance took
/// back stays lost.
async fn renew(inner: &Inner, priority: Priority) -> Result<usize> {
    let now = inner.clock.now_ms();
    let lease_ms = inner.options.lease_ms;
    let due: Vec<(String, i64)> = inner
        .held
        .lock()
        .expect("held lock")
        .iter()
        .filter(|(_, h)| h.priority == priority && h.current - now <= lease_ms - lease_ms / 3)
        .map(|(id, h)| (id.clone(), h.current))
        .collect();
    if due.is_empty() {
        return Ok(0);
    }
    let new_lease = now + lease_ms;
    let leases: Vec<(&str, i64)> = due.iter().map(|(id, l)| (id.as_str(), *l)).collect();
    let mut tx = inner.store.begin_with(priority).await?;
    let renewed = tenure_store::renew_leases(tx.conn(), &leases, new_lease).await?;
    tx.commit().await?;
    let mut held = inner.held.lock().expect("held lock");
    for (id, old) in &due {
        if renewed.contains(id)
            && let Some(h) = held.get_mut(id)
            && h.current == *old
        {
            h.current = new_lease;
        }
    }
    let lost = due.len() - renewed.len();
    if lost > 0 {
        // Finished in the meantime, or taken back by another instance: its outcome is fenced.
        tracing::debug!(
            steps = lost,
            "leases not renewed: the steps are no longer ours"
        );
    }
    metrics::counter!("tenure_lease_renewals_total").increment(renewed.len() as u64);
    Ok(renewed.len())
}

/// Records a lane's outcomes in transactions taken with the lane's priority: one for a
/// leaver's, as few as leavers' work allows for the others.
async fn record(inner: &Arc<Inner>, mut outcomes: Vec<Outcome>, priority: Priority) -> Result<()> {
    // The lease each step holds now (renewed during its call, perhaps); the steps are no longer
    // renewed, whatever comes of the recording: a failed one leaves them to be taken back.
    {
        let mut held = inner.held.lock().expect("held lock");
        for o in &mut outcomes {
            let ours = held
                .get(&o.step.id)
                .is_some_and(|h| Some(h.claimed) == o.step.lease_until);
            if ours && let Some(h) = held.remove(&o.step.id) {
                o.step.lease_until = Some(h.current);
            }
        }
    }
    let part = match priority {
        Priority::Urgent => outcomes.len().max(1),
        Priority::Normal => NORMAL_PART,
    };
    // A run's outcomes side by side: they are mostly recorded, and the run advanced, together.
    outcomes.sort_by(|a, b| a.step.run_id.cmp(&b.step.run_id));
    let mut rest = outcomes.into_iter().peekable();
    while rest.peek().is_some() {
        let mut tx = inner.store.begin_with(priority).await?;
        let now = inner.clock.now_ms();
        loop {
            record_part(inner, &mut tx, rest.by_ref().take(part).collect(), now).await?;
            if rest.peek().is_none() || inner.store.urgent_waiting() {
                break;
            }
        }
        tx.commit().await?;
    }
    Ok(())
}

/// Records outcomes inside `tx`: their steps' new states, the access they changed, their runs'
/// progress, and the claim of leavers' steps that progress released.
async fn record_part(
    inner: &Arc<Inner>,
    tx: &mut tenure_store::Tx,
    outcomes: Vec<Outcome>,
    now: i64,
) -> Result<()> {
    let rules = inner.rules();
    let settings = &rules.config.engine;
    let mut runs = BTreeSet::new();
    let mut updates = Vec::with_capacity(outcomes.len());
    let mut access = AccessChanges::default();
    let mut urgent_runs = BTreeSet::new();
    // Fencing: a call that outlived its step's lease lost the step to another worker, which
    // calls again with the same operation id and records that outcome. This one is dropped.
    let leases: Vec<(&str, Option<i64>)> = outcomes
        .iter()
        .map(|o| (o.step.id.as_str(), o.step.lease_until))
        .collect();
    let ours = tenure_store::steps_still_leased(tx.conn(), &leases).await?;
    let (outcomes, late): (Vec<Outcome>, Vec<Outcome>) = outcomes
        .into_iter()
        .partition(|o| ours.contains(&o.step.id));
    for o in &late {
        tracing::warn!(
            step = %o.step.id,
            system = %o.step.system,
            "a step's lease ran out during its call; its outcome is left to the worker that took it back"
        );
        metrics::counter!("tenure_step_outcomes_total", "system" => o.step.system.clone(), "outcome" => "lease_lost")
            .increment(1);
    }
    for Outcome { step, result, span } in outcomes {
        let trace_id = tenure_store::trace::trace_id_of(&span);
        runs.insert(step.run_id.clone());
        if step.priority.is_urgent() {
            urgent_runs.insert(step.run_id.clone());
        }
        let audit = |action: AuditAction, reason: String, details: serde_json::Value| NewAudit {
            at_ms: now,
            actor: "engine".into(),
            action: action.into(),
            person_id: Some(step.person_id.clone()),
            entitlement: step.entitlement.clone(),
            system: Some(step.system.clone()),
            run_id: Some(step.run_id.clone()),
            reason,
            correlation_id: Some(step.op_id.clone()),
            details,
        };
        let why = match (&step.source, &step.source_ref, step.compensation_of) {
            (_, _, Some(idx)) => format!("undoing step {idx} of a cancelled run"),
            (Some(src), Some(r), _) => format!("{src} {r}"),
            _ => format!(
                "{} run {}",
                if step.priority.is_urgent() {
                    "urgent"
                } else {
                    "lifecycle"
                },
                step.run_id
            ),
        };
        let outcome = match result {
            CallResult::Deferred(until) => CallOutcome::Deferred(until),
            CallResult::Called(Ok(())) => CallOutcome::Succeeded,
            CallResult::Called(Err(ConnectorError::Waiting {
                message,
                recheck_after_ms,
            })) => CallOutcome::Waiting {
                message,
                recheck_after_ms,
            },
            CallResult::Called(Err(e)) => CallOutcome::Failed {
                retry_after_ms: match &e {
                    ConnectorError::Retryable { retry_after_ms, .. } => {
                        Some(retry_after_ms.unwrap_or(0))
                    }
                    ConnectorError::Unknown(_) => Some(0),
                    _ => None,
                },
                unanswered: e.may_have_acted(),
                message: e.to_string(),
            },
        };
        let facts = StepFacts {
            action: step.action,
            attempts: step.attempts,
            compensation_of: step.compensation_of,
            last_error: step.last_error.as_deref(),
            maybe_applied: step.maybe_applied,
            op_id: &step.op_id,
            why: &why,
        };
        let d = {
            let mut rng = inner.rng.lock().expect("rng lock");
            outcome::decide(facts, outcome, settings, now, &mut *rng)
        };
        access.push(&step, d.access);
        if let Some(idx) = d.compensated {
            tenure_store::mark_compensated(tx.conn(), &step.run_id, idx).await?;
        }
        if let Some(a) = d.audit {
            tx.audit_traced(audit(a.action, a.reason, a.details), trace_id);
        }
        // A deferral made no call: it is no outcome of one.
        if d.kind != OutcomeKind::Deferred {
            metrics::counter!("tenure_step_outcomes_total", "system" => step.system.clone(), "outcome" => d.kind.as_str())
                .increment(1);
        }
        updates.push(StepUpdate {
            id: step.id.clone(),
            state: d.state,
            attempts: d.attempts,
            last_error: d.last_error,
            available_at: d.available_at,
            maybe_applied: d.maybe_applied,
        });
    }
    tenure_store::update_steps(tx.conn(), &updates, now).await?;
    access.write(tx.conn(), now).await?;
    let runs: Vec<String> = runs.into_iter().collect();
    progress::advance_runs(inner, tx, &runs, now).await?;
    let urgent_runs: Vec<String> = urgent_runs.into_iter().collect();
    claim_urgent_now(inner, tx, &urgent_runs, now).await?;
    Ok(())
}
