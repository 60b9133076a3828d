//! Moving runs on from their steps: the next phase of each system, compensation of a
//! cancelled run, the end of a run and its announcement.

use crate::access::AccessChanges;
use crate::context::Inner;
use crate::error::Result;
use crate::messages::RunFinished;
use tenure_core::audit::AuditAction;
use tenure_core::run::{DoneStep, Priority, RunKind, RunState, compensation, evaluate};
use tenure_store::{NewAudit, NewStep, RunRow, StepRow, Tx};

pub(crate) async fn fail_run(
    inner: &Inner,
    tx: &mut Tx,
    run: &RunRow,
    error: &str,
    now: i64,
) -> Result<()> {
    tenure_store::set_run_state(tx.conn(), &run.id, RunState::Failed, Some(error), now).await?;
    run_ended(inner, tx, run, RunState::Failed, error.to_string(), now);
    Ok(())
}

/// Re-evaluates a run from its steps; see [`advance_runs`].
pub(crate) async fn advance_run(inner: &Inner, tx: &mut Tx, run_id: &str, now: i64) -> Result<()> {
    advance_runs(inner, tx, &[run_id.to_string()], now).await
}

/// Re-evaluates runs from their steps: starts each system's next phase, compensates a cancelled
/// run, or records that it ended. One read of the runs and one of their steps for the batch.
pub(crate) async fn advance_runs(
    inner: &Inner,
    tx: &mut Tx,
    run_ids: &[String],
    now: i64,
) -> Result<()> {
    let runs = tenure_store::runs_by_ids(tx.conn(), run_ids).await?;
    let statuses = tenure_store::step_statuses_of_runs(tx.conn(), run_ids).await?;
    let (mut releases, mut states) = (Vec::new(), Vec::new());
    for run in runs {
        if run.state.is_terminal() || run.state == RunState::Pending {
            continue;
        }
        let steps = statuses.get(&run.id).map_or(&[][..], Vec::as_slice);
        let eval = evaluate(steps, run.cancel_requested);
        if eval.cancel_queued {
            // Queued again after the cancel (a retry, a lease taken back): cancelled as the
            // cancel did the steps queued then. None waits for an approval: those were
            // cancelled with the run, and no step of it is gated again.
            let queued = tenure_store::cancel_pending_steps(tx.conn(), &run.id, now).await?;
            AccessChanges::of_cancelled(&queued)
                .write(tx.conn(), now)
                .await?;
            Box::pin(advance_run(inner, tx, &run.id, now)).await?;
            continue;
        }
        if eval.compensate {
            add_compensation(inner, tx, &run, now).await?;
            Box::pin(advance_run(inner, tx, &run.id, now)).await?;
            continue;
        }
        releases.extend(eval.release.into_iter().map(|l| (run.id.clone(), l)));
        if eval.state != run.state {
            states.push((run.id.clone(), eval.state));
            if eval.state.is_terminal() {
                run_ended(
                    inner,
                    tx,
                    &run,
                    eval.state,
                    format!("{} run ended", run.kind),
                    now,
                );
            }
        }
    }
    tenure_store::release_lanes(tx.conn(), &releases, now).await?;
    tenure_store::set_run_states(tx.conn(), &states, now).await?;
    Ok(())
}

/// Audits, measures and announces the end of a run.
pub(crate) fn run_ended(
    inner: &Inner,
    tx: &mut Tx,
    run: &RunRow,
    state: RunState,
    reason: String,
    now: i64,
) {
    let latency_ms = (now - run.created_at.max(run.effective_at)).max(0);
    tx.audit_traced(
        NewAudit {
            at_ms: now,
            actor: "engine".into(),
            action: AuditAction::RunEnded(state).into(),
            person_id: Some(run.person_id.clone()),
            run_id: Some(run.id.clone()),
            reason,
            correlation_id: run.event_id.clone(),
            details: serde_json::json!({ "latency_ms": latency_ms }),
            ..Default::default()
        },
        run.trace_id(),
    );
    if let Some(dir) = tenure_core::sla::Direction::of(run.kind)
        && !matches!(state, RunState::Cancelled | RunState::Compensated)
        && dir
            .target(&inner.rules().config.sla, None)
            .is_some_and(|t| latency_ms > t)
    {
        metrics::counter!("tenure_sla_breaches_total", "direction" => dir.as_str()).increment(1);
    }
    if state == RunState::Succeeded {
        let seconds = latency_ms as f64 / 1000.0;
        match run.kind {
            RunKind::Hire | RunKind::Rehire => {
                metrics::histogram!("tenure_time_to_provision_seconds").record(seconds)
            }
            RunKind::Leave => metrics::histogram!("tenure_time_to_revoke_seconds").record(seconds),
            _ => {}
        }
    }
    metrics::counter!("tenure_runs_finished_total", "kind" => run.kind.as_str(), "state" => state.as_str()).increment(1);
    announce(
        inner,
        tx,
        RunFinished {
            run_id: run.id.clone(),
            kind: run.kind,
            state,
            latency_ms,
        },
    );
}

/// Adds steps that undo, in reverse order per system, what a cancelled run had done.
pub(crate) async fn add_compensation(
    inner: &Inner,
    tx: &mut Tx,
    run: &RunRow,
    now: i64,
) -> Result<()> {
    let steps = tenure_store::steps_of_run(tx.conn(), &run.id).await?;
    let done: Vec<DoneStep> = steps
        .iter()
        .map(|s| DoneStep {
            phase: s.phase as u32,
            action: s.action,
            state: s.state,
            compensation: s.compensation_of.is_some(),
        })
        .collect();
    let first_idx = steps.iter().map(|s| s.idx).max().unwrap_or(-1) + 1;
    let mut comp = Vec::new();
    for (next_idx, undo) in (first_idx..).zip(compensation(&done)) {
        let s = &steps[undo.of];
        comp.push(StepRow {
            compensation_of: Some(s.idx),
            ..StepRow::new(NewStep {
                run_id: &run.id,
                idx: next_idx,
                phase: undo.phase as i64,
                priority: Priority::Urgent,
                now,
                person_id: &s.person_id,
                system: &s.system,
                action: undo.action,
                entitlement: s.entitlement.as_deref(),
                source: s.source,
                source_ref: s.source_ref.as_deref(),
            })
        });
    }
    if comp.is_empty() {
        // Nothing done can be undone (updates and deletes only): record the cancel as final.
        tenure_store::set_run_state(tx.conn(), &run.id, RunState::Cancelled, None, now).await?;
        run_ended(
            inner,
            tx,
            run,
            RunState::Cancelled,
            "cancelled; nothing to undo".into(),
            now,
        );
        return Ok(());
    }
    tx.audit(NewAudit {
        at_ms: now,
        actor: "engine".into(),
        action: AuditAction::RunCompensating.into(),
        person_id: Some(run.person_id.clone()),
        run_id: Some(run.id.clone()),
        reason: "run cancelled: undoing the steps already done".into(),
        correlation_id: run.event_id.clone(),
        details: serde_json::json!({ "steps": comp.len() }),
        ..Default::default()
    });
    tenure_store::insert_steps(tx.conn(), &comp).await?;
    Ok(())
}

/// Tells subscribers a run ended, once the transaction that ended it is committed, and wakes
/// the dispatcher: a run of the same person may have been waiting for this one.
pub(crate) fn announce(inner: &Inner, tx: &mut Tx, notice: RunFinished) {
    let finished = inner.finished.clone();
    let wake = inner.wake_handle();
    tx.after_commit(move || {
        let _ = finished.send(notice);
        wake.notify_one();
    });
}
