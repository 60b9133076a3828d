//! The durable scheduler: timers live in the `timers` table, not in memory, so a timer due while
//! the process was down fires when it comes back, and fires once.
//!
//! Two kinds of timer:
//! - **in-transaction** timers (grant expiries, approval escalations and deadlines, contract and
//!   engagement end dates) are claimed and marked fired in the transaction that carries out
//!   their effect, so the effect and the mark commit together (`FOR UPDATE SKIP LOCKED` on
//!   PostgreSQL lets instances share them; SQLite has one writer);
//! - **webhook deliveries** (the notification outbox) call out over HTTP, which never happens
//!   inside a transaction: they are leased, sent, then recorded, and a delivery whose lease ran
//!   out (the process died mid-call) is sent again with the same `webhook-id`.
//!
//! Timers are the core's typed `Timer`, matched on when they fire. A stored timer that cannot
//! be read (a kind this version does not know, a payload of a shape it does not read) is logged
//! with its id and kept as `unreadable`, its reason in `last_error`: never fired, never dropped.
//!
//! Time is the engine's injected clock: tests move a `ManualClock` and wake the loop.

use crate::context::Inner;
use crate::error::Result;
use crate::messages::{Planning, Submission};
use crate::timers::schedule;
use crate::{approvals, dispatch, facts, ingest, reviews};
use chrono::DateTime;
use std::sync::Arc;
use std::time::Duration;
use tenure_core::GrantSource;
use tenure_core::audit::AuditAction;
use tenure_core::event::EventInput;
use tenure_core::planner::{self, Action};
use tenure_core::run::{Priority, RunKind, RunState};
use tenure_core::timer::{self, ExpiryCheck, GrantExpiry, Timer};
use tenure_store::{DeliveryEnd, NewAudit, NewStep, RunRow, StepRow, Tx};

/// Timers fired per transaction.
const FIRE_BATCH: i64 = 512;
/// Deliveries sent at once.
const DELIVERY_BATCH: i64 = 32;
/// How long a delivery may take before another attempt may be made.
const DELIVERY_LEASE_MS: i64 = 30_000;
/// How long the loop sleeps at most when nothing is due soon.
const POLL_MS: i64 = 1_000;

/// The scheduler's loop: fire due timers, send due notifications, sleep until the next is due
/// (or a second at most: other instances may add timers), or until woken.
pub(crate) async fn run(inner: Arc<Inner>) {
    let mut shutdown = inner.shutdown.subscribe();
    loop {
        if *shutdown.borrow() {
            break;
        }
        let now = inner.clock.now_ms();
        let fired = match fire_due(&inner, now).await {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "firing due timers failed; will try again");
                0
            }
        };
        let delivered = match deliver(&inner, now).await {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "sending notifications failed; will try again");
                0
            }
        };
        if fired as i64 == FIRE_BATCH {
            continue; // more may be due
        }
        let now = inner.clock.now_ms();
        let wait = match next_due(&inner).await {
            Ok(Some(t)) if t > now => (t - now).min(POLL_MS),
            // Due and acted on: look again at once. Due but nothing could be done (a delivery
            // left over from a webhook no longer configured): do not spin on it.
            Ok(Some(_)) if fired + delivered > 0 => 0,
            Ok(_) => POLL_MS,
            Err(e) => {
                tracing::error!(error = %e, "reading timers failed");
                POLL_MS
            }
        };
        if wait == 0 {
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            _ = inner.timer_wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
            _ = shutdown.wait_for(|stop| *stop) => {}
        }
    }
}

async fn next_due(inner: &Inner) -> Result<Option<i64>> {
    let mut c = inner.store.reader().await?;
    Ok(tenure_store::next_timer_due(&mut c).await?)
}

/// Fires up to a batch of due timers in one transaction; returns how many fired.
pub(crate) async fn fire_due(inner: &Arc<Inner>, now: i64) -> Result<usize> {
    let _one_at_a_time = inner.firing.lock().await;
    let mut c = inner.store.reader().await?;
    let due = tenure_store::next_firing_due(&mut c).await?;
    drop(c);
    if due.is_none_or(|t| t > now) {
        return Ok(0);
    }
    let mut tx = inner.store.begin().await?;
    let backend = tx.backend();
    let timers = tenure_store::claim_due_timers(tx.conn(), backend, now, FIRE_BATCH).await?;
    let mut urgent = Vec::new();
    for t in &timers {
        let timer = match &t.timer {
            Ok(timer) => timer,
            Err(e) => {
                // Kept, not fired and not dropped: an operator can see it and why.
                tracing::error!(id = %t.id, error = %e, "a stored timer cannot be read; kept as unreadable");
                tenure_store::set_timer_unreadable(tx.conn(), &t.id, &e.to_string()).await?;
                metrics::counter!("tenure_timers_unreadable_total").increment(1);
                continue;
            }
        };
        match timer {
            Timer::GrantExpiry(e) => {
                if let Some(run) = expire_grant(inner, &mut tx, e, now).await? {
                    urgent.push(run);
                }
            }
            Timer::ApprovalEscalate(a) => {
                approvals::escalate(inner, &mut tx, &a.approval_id, now).await?
            }
            Timer::ApprovalDeadline(a) => {
                approvals::expire(inner, &mut tx, &a.approval_id, now).await?
            }
            Timer::PersonEnd(p) => person_end(inner, &mut tx, p, now).await?,
            Timer::EngagementEnd(e) => engagement_end(inner, &mut tx, e, now).await?,
            Timer::ReviewClose(r) => {
                reviews::close_due(inner, &mut tx, &r.campaign_id, now).await?
            }
            Timer::ReviewRemind(r) => reviews::remind(inner, &mut tx, &r.campaign_id, now).await?,
            Timer::ReviewOpen(o) => reviews::open_due(inner, &mut tx, &o.name, now).await?,
        }
    }
    dispatch::claim_urgent_now(inner, &mut tx, &urgent, now).await?;
    tx.commit().await?;
    if !timers.is_empty() {
        metrics::counter!("tenure_timers_fired_total").increment(timers.len() as u64);
        inner.wake.notify_one();
    }
    Ok(timers.len())
}

/// A time-bound grant's end: a run of one revoke step, urgent like a leaver's. Returns the run.
async fn expire_grant(
    inner: &Inner,
    tx: &mut Tx,
    expiry: &GrantExpiry,
    now: i64,
) -> Result<Option<String>> {
    let (person_id, entitlement) = (expiry.person_id.as_str(), expiry.entitlement.as_str());
    let (source, source_ref) = (expiry.source, expiry.source_ref.as_str());
    let grants: Vec<_> = tenure_store::grants_of(tx.conn(), person_id)
        .await?
        .into_iter()
        .map(|(g, _)| g)
        .collect();
    let grant = grants.iter().find(|g| g.entitlement == entitlement);
    let (grant, expires_at) = match (grant, expiry.check(grant, now)) {
        (Some(grant), ExpiryCheck::Due { expires_at }) => (grant, expires_at),
        (_, ExpiryCheck::LookAgain(at)) => {
            schedule(tx, &Timer::GrantExpiry(expiry.clone()), at, now).await?;
            return Ok(None);
        }
        _ => return Ok(None),
    };
    let rules = inner.rules();
    let Some(system) = rules.config.system_of(entitlement).map(|s| s.id.clone()) else {
        return Ok(None);
    };
    // Still wanted for another reason that gives standing access (a template or an engagement,
    // for an entitlement that need not be time-bound): keep it. Time-bound access is never
    // carried over into another source's window here; that source gives it anew, with its own
    // approval and window, on the person's next run.
    if let Some(want) =
        standing_want(tx, &rules.config, person_id, entitlement, &grants, now).await?
    {
        let mut kept = grant.clone();
        kept.source = want.source;
        kept.source_ref = want.source_ref.clone();
        kept.expires_at = None;
        tenure_store::upsert_grant(tx.conn(), &kept, &system, now).await?;
        tx.audit(NewAudit {
            at_ms: now,
            actor: "scheduler".into(),
            action: AuditAction::GrantExpirySuperseded.into(),
            person_id: Some(person_id.to_string()),
            entitlement: Some(entitlement.to_string()),
            system: Some(system),
            reason: format!("now held through {} {}", want.source, want.source_ref),
            correlation_id: Some(source_ref.to_string()),
            details: serde_json::json!({ "source": source, "source_ref": source_ref }),
            ..Default::default()
        });
        return Ok(None);
    }
    let run_id = uuid::Uuid::now_v7().to_string();
    tenure_store::insert_run(
        tx.conn(),
        &RunRow {
            id: run_id.clone(),
            event_id: None,
            person_id: person_id.to_string(),
            kind: RunKind::Expiry,
            state: RunState::Running,
            priority: Priority::Urgent,
            effective_at: expires_at,
            created_at: expires_at,
            planned_at: Some(now),
            finished_at: None,
            cancel_requested: false,
            error: None,
            note: None,
            traceparent: tenure_store::trace::run_context(&run_id, RunKind::Expiry.as_str(), None),
        },
    )
    .await?;
    tenure_store::insert_steps(
        tx.conn(),
        &[StepRow {
            ready: true,
            ..StepRow::new(NewStep {
                run_id: &run_id,
                idx: 0,
                phase: 0,
                priority: Priority::Urgent,
                now,
                person_id,
                system: &system,
                action: Action::Revoke,
                entitlement: Some(entitlement),
                source: Some(source),
                source_ref: Some(source_ref),
            })
        }],
    )
    .await?;
    tx.audit(NewAudit {
        at_ms: now,
        actor: "scheduler".into(),
        action: AuditAction::GrantExpired.into(),
        person_id: Some(person_id.to_string()),
        entitlement: Some(entitlement.to_string()),
        system: Some(system),
        run_id: Some(run_id.clone()),
        reason: format!("time-bound access from {source} {source_ref} ended"),
        correlation_id: Some(source_ref.to_string()),
        details: serde_json::json!({
            "source": source, "source_ref": source_ref,
            "request_id": (source == GrantSource::Request).then_some(source_ref),
            "expires_at": expires_at, "late_ms": now - expires_at,
        }),
    });
    Ok(Some(run_id))
}

/// The source that wants `entitlement` for the person as standing access (a template or an
/// engagement, for an entitlement that need not be time-bound), if any.
async fn standing_want(
    tx: &mut Tx,
    config: &tenure_core::config::Config,
    person_id: &str,
    entitlement: &str,
    grants: &[tenure_core::Grant],
    now: i64,
) -> Result<Option<planner::Want>> {
    let Some(person) = tenure_store::get_person(tx.conn(), person_id).await? else {
        return Ok(None);
    };
    let engagements = tenure_store::engagements_of(tx.conn(), person_id).await?;
    let clients = facts::client_facts(tx.conn(), config, &engagements, grants).await?;
    if config.time_bound_with(entitlement, &clients).is_some() {
        return Ok(None);
    }
    let today = DateTime::from_timestamp_millis(now)
        .unwrap_or_default()
        .date_naive();
    let mut desired =
        planner::desired_access(config, &clients, &person, &engagements, grants, today, now);
    Ok(desired.entitlements.remove(entitlement))
}

/// A person's end date has passed and no leave came: they leave now, through an event of the
/// scheduler's own (keyed by person and date, so it is stored once).
async fn person_end(inner: &Arc<Inner>, tx: &mut Tx, t: &timer::PersonEnd, now: i64) -> Result<()> {
    let person = tenure_store::get_person(tx.conn(), &t.person_id).await?;
    match t.leave(person.as_ref()) {
        Some(event) => raise(inner, tx, event, "end date reached", now).await,
        None => Ok(()),
    }
}

/// An engagement's end date has passed and no engagement end came: it ends now.
async fn engagement_end(
    inner: &Arc<Inner>,
    tx: &mut Tx,
    t: &timer::EngagementEnd,
    now: i64,
) -> Result<()> {
    let engagements = tenure_store::engagements_of(tx.conn(), &t.person_id).await?;
    match t.end(&engagements) {
        Some(event) => raise(inner, tx, event, "engagement end date reached", now).await,
        None => Ok(()),
    }
}

/// Stores an event the scheduler raises, like one from HR, and plans it in the same transaction.
async fn raise(
    inner: &Arc<Inner>,
    tx: &mut Tx,
    event: EventInput,
    why: &str,
    now: i64,
) -> Result<()> {
    let person = event.person.id.clone();
    let kind = event.kind;
    let sub = Submission {
        event,
        idempotency_key: None,
        actor: "scheduler".into(),
        request_id: None,
        trace: None,
    };
    let outcome =
        ingest::store_events(inner, tx, &[(&sub, now)], now, Planning::InTransaction).await?;
    tx.audit(NewAudit {
        at_ms: now,
        actor: "scheduler".into(),
        action: AuditAction::SchedulerRaised(kind).into(),
        person_id: Some(person),
        reason: why.to_string(),
        details: serde_json::json!({ "outcome": format!("{outcome:?}") }),
        ..Default::default()
    });
    Ok(())
}

/// Sends due notifications: lease them, POST each signed (Standard Webhooks) outside any
/// transaction, then record delivery, a retry with backoff, or giving up.
pub(crate) async fn deliver(inner: &Arc<Inner>, now: i64) -> Result<usize> {
    let (Some(url), Some(key)) = (
        inner.rules().config.notifications.webhook_url.clone(),
        inner.webhook_key.clone(),
    ) else {
        return Ok(0);
    };
    let mut tx = inner.store.begin().await?;
    let backend = tx.backend();
    let due = tenure_store::claim_deliveries(
        tx.conn(),
        backend,
        now,
        now + DELIVERY_LEASE_MS,
        DELIVERY_BATCH,
    )
    .await?;
    tx.commit().await?;
    if due.is_empty() {
        return Ok(0);
    }
    let mut calls = tokio::task::JoinSet::new();
    for t in due {
        let (client, url, key) = (inner.http.clone(), url.clone(), key.clone());
        let ts = inner.clock.now_ms() / 1000;
        calls.spawn(async move {
            let body = t.body.to_string();
            let signature = tenure_core::webhook::sign(&key, &t.message_id, ts, body.as_bytes());
            let result = client
                .post(&url)
                .header("content-type", "application/json")
                .header("webhook-id", &t.message_id)
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", signature)
                .body(body)
                .send()
                .await;
            let outcome = match result {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(format!("the receiver answered {}", r.status())),
                Err(e) => Err(format!("could not reach the receiver: {e}")),
            };
            (t, outcome)
        });
    }
    let mut results = Vec::new();
    while let Some(r) = calls.join_next().await {
        match r {
            Ok(r) => results.push(r),
            Err(e) => tracing::error!(error = %e, "a notification task ended abnormally"),
        }
    }
    let max = inner.rules().config.notifications.max_attempts as i64;
    let mut tx = inner.store.begin().await?;
    let now = inner.clock.now_ms();
    for (t, outcome) in &results {
        match outcome {
            Ok(()) => {
                tenure_store::finish_delivery(tx.conn(), &t.id, DeliveryEnd::Delivered, None, now)
                    .await?;
                metrics::counter!("tenure_notifications_total", "outcome" => "delivered")
                    .increment(1);
            }
            Err(e) if t.attempts < max => {
                let delay = {
                    let mut rng = inner.rng.lock().expect("rng lock");
                    tenure_core::retry::backoff_ms(t.attempts as u32, 1_000, 300_000, &mut *rng)
                };
                let retry = DeliveryEnd::RetryAt(now + delay as i64);
                tenure_store::finish_delivery(tx.conn(), &t.id, retry, Some(e), now).await?;
                metrics::counter!("tenure_notifications_total", "outcome" => "retried")
                    .increment(1);
            }
            Err(e) => {
                tenure_store::finish_delivery(tx.conn(), &t.id, DeliveryEnd::Dead, Some(e), now)
                    .await?;
                tx.audit(NewAudit {
                    at_ms: now,
                    actor: "scheduler".into(),
                    action: AuditAction::NotificationFailed.into(),
                    reason: e.clone(),
                    correlation_id: Some(t.message_id.clone()),
                    details: serde_json::json!({ "attempts": t.attempts, "type": t.body.get("type") }),
                    ..Default::default()
                });
                metrics::counter!("tenure_notifications_total", "outcome" => "failed").increment(1);
            }
        }
    }
    tx.commit().await?;
    Ok(results.len())
}
