//! `[retention]`: dropping what tenure no longer needs once its period is over, and forgetting
//! people.
//!
//! - Events' raw payloads (`retention.event_payloads`): the body as received, with names and
//!   emails, dropped once the event is older than the period and its run has ended. The
//!   event's record stays (its id, type, person, times, sender and body hash), and so does
//!   everything the run did: audit entries name ids, not payloads.
//! - People who left (`retention.forget_people`): forgotten as `tenure forget` does once their
//!   leave is older than the period, they hold nothing and no run on them is going.
//!
//! A pass runs at start and every hour, in transactions of [`BATCH`] events (each with one
//! audit entry listing the events it dropped) and one transaction per person forgotten (with
//! its `person.forgotten` entry), so the purge itself is evidence.

use crate::context::Inner;
use crate::error::EngineError;
use crate::error::Result;
use std::sync::Arc;
use std::time::Duration;
use tenure_core::audit::AuditAction;
use tenure_core::privacy::{ForgetRefused, may_forget};
use tenure_store::{Erased, NewAudit};

/// Events dropped per transaction (and listed per audit entry).
const BATCH: i64 = 500;
/// How often a pass runs.
const EVERY: Duration = Duration::from_secs(3600);

/// What a pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPass {
    /// Events whose payloads were dropped.
    pub event_payloads_dropped: usize,
    /// People forgotten.
    pub people_forgotten: usize,
}

/// One pass over everything past its period, now (by the engine's clock).
pub(crate) async fn pass(inner: &Inner) -> Result<RetentionPass> {
    let mut done = RetentionPass::default();
    let settings = inner.rules().config.retention.clone();
    if let Some(period) = settings.forget_people_ms {
        done.people_forgotten = forget_people(inner, period).await?;
    }
    let Some(period) = settings.event_payloads_ms else {
        return Ok(done);
    };
    loop {
        let mut tx = inner.store.begin().await?;
        let now = inner.clock.now_ms();
        let before = now - period;
        let ids = tenure_store::drop_event_payloads(tx.conn(), before, now, BATCH).await?;
        if ids.is_empty() {
            tx.rollback().await?;
            break;
        }
        tx.audit(NewAudit {
            at_ms: now,
            actor: "retention".into(),
            action: AuditAction::EventPayloadsDropped.into(),
            reason: format!(
                "retention.event_payloads: {} events received before the period of {} days, their runs ended",
                ids.len(),
                period / 86_400_000
            ),
            details: serde_json::json!({
                "received_before": before,
                "period_ms": period,
                "events": ids,
            }),
            ..Default::default()
        });
        tx.commit().await?;
        done.event_payloads_dropped += ids.len();
        metrics::counter!("tenure_retention_dropped_total", "kind" => "event_payloads")
            .increment(ids.len() as u64);
        if (ids.len() as i64) < BATCH {
            break;
        }
    }
    Ok(done)
}

/// Forgets the people who left more than `period` ago and may be forgotten now; those who may
/// not yet (still holding something, a run going) are looked at again next pass.
async fn forget_people(inner: &Inner, period: i64) -> Result<usize> {
    let mut forgotten = 0;
    let mut after = String::new();
    loop {
        let before = inner.clock.now_ms() - period;
        let mut c = inner.store.reader().await?;
        let ids = tenure_store::people_left_before(&mut c, before, &after, BATCH).await?;
        drop(c);
        for id in &ids {
            let reason = format!(
                "retention.forget_people: left more than {} days ago",
                period / 86_400_000
            );
            match forget(inner, id, "retention", &reason).await {
                Ok(_) => forgotten += 1,
                Err(EngineError::Conflict(why)) => {
                    tracing::debug!(person = %id, %why, "retention: not forgotten yet")
                }
                Err(e) => return Err(e),
            }
        }
        match ids.last() {
            Some(last) if ids.len() as i64 == BATCH => after = last.clone(),
            _ => return Ok(forgotten),
        }
    }
}

/// Forgets `person` with the engine's store and clock.
pub(crate) async fn forget(
    inner: &Inner,
    person: &str,
    actor: &str,
    reason: &str,
) -> Result<Erased> {
    forget_person(&inner.store, || inner.clock.now_ms(), person, actor, reason).await
}

/// Forgets `person` (see `tenure_store::forget_person`) when [`may_forget`] allows it, in one
/// transaction with its `person.forgotten` audit entry; `now` is read once the transaction is
/// the writer's. What the engine, `tenure forget` and `tenure restore` (re-applying forgets to
/// an older copy) do.
pub async fn forget_person(
    store: &tenure_store::Store,
    now: impl Fn() -> i64,
    person: &str,
    actor: &str,
    reason: &str,
) -> Result<Erased> {
    let mut tx = store.begin().await?;
    let now = now();
    let facts = tenure_store::forget_facts(tx.conn(), person).await?;
    if let Err(refused) = may_forget(person, facts) {
        tx.rollback().await?;
        return Err(match refused {
            ForgetRefused::Unknown(p) => EngineError::NotFound(format!("person {p}")),
            other => EngineError::Conflict(other.to_string()),
        });
    }
    let erased = tenure_store::forget_person(tx.conn(), person, now).await?;
    tx.audit(NewAudit {
        at_ms: now,
        actor: actor.to_string(),
        action: AuditAction::PersonForgotten.into(),
        person_id: Some(person.to_string()),
        reason: reason.to_string(),
        details: serde_json::json!({
            "key_deleted": erased.key,
            "event_payloads_dropped": erased.event_payloads,
        }),
        ..Default::default()
    });
    tx.commit().await?;
    let by = if actor == "retention" {
        "retention"
    } else {
        "request"
    };
    metrics::counter!("tenure_people_forgotten_total", "by" => by).increment(1);
    Ok(erased)
}

/// Runs a pass at start, then every hour, until shutdown.
pub(crate) async fn run(inner: Arc<Inner>) {
    let mut shutdown = inner.shutdown.subscribe();
    loop {
        if *shutdown.borrow() {
            break;
        }
        match pass(&inner).await {
            Ok(p) if p != RetentionPass::default() => tracing::info!(
                event_payloads = p.event_payloads_dropped,
                people = p.people_forgotten,
                "retention: payloads past their period dropped, people forgotten"
            ),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "retention pass failed; will try again"),
        }
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = shutdown.wait_for(|stop| *stop) => {}
        }
    }
}
