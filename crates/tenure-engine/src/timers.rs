//! Scheduling and cancelling timers inside a caller's transaction: grant expiries (time-bound
//! access), contract and engagement end dates. The scheduler fires them.

use crate::error::Result;
use chrono::NaiveDate;
use tenure_core::audit::AuditAction;
use tenure_core::config::TimeBound;
use tenure_core::timer::{self, GrantExpiry, Timer, TimerKind};
use tenure_core::{Engagement, GrantSource, Person, PersonStatus};
use tenure_store::{NewAudit, Tx};

/// Schedules `timer` at `due_at` inside `tx` (or moves the one of its kind and subject there).
pub(crate) async fn schedule(tx: &mut Tx, timer: &Timer, due_at: i64, now: i64) -> Result<()> {
    tenure_store::schedule_timer(tx.conn(), timer, due_at, now).await?;
    Ok(())
}

/// Makes a grant time-bound: it ends `bound.ms` after `now` (or at `cap`, when that is sooner),
/// and a timer revokes it then. Audited with the rule that bounds it.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn bound_grant(
    tx: &mut Tx,
    person_id: &str,
    entitlement: &str,
    source: GrantSource,
    source_ref: &str,
    bound: &TimeBound,
    run_id: Option<&str>,
    now: i64,
) -> Result<i64> {
    let expires_at = now.saturating_add(bound.ms);
    tenure_store::set_grant_expiry(tx.conn(), person_id, entitlement, Some(expires_at), now)
        .await?;
    let expiry = Timer::GrantExpiry(GrantExpiry {
        person_id: person_id.to_string(),
        entitlement: entitlement.to_string(),
        source,
        source_ref: source_ref.to_string(),
    });
    schedule(tx, &expiry, expires_at, now).await?;
    tx.audit(NewAudit {
        at_ms: now,
        actor: "engine".into(),
        action: AuditAction::GrantTimeBound.into(),
        person_id: Some(person_id.to_string()),
        entitlement: Some(entitlement.to_string()),
        run_id: run_id.map(str::to_string),
        reason: bound.why.clone(),
        correlation_id: Some(source_ref.to_string()),
        details: serde_json::json!({ "expires_at": expires_at, "source": source, "source_ref": source_ref }),
        ..Default::default()
    });
    Ok(expires_at)
}

/// Cancels the pending timer of `kind` for `subject` inside `tx`.
pub(crate) async fn cancel(tx: &mut Tx, kind: TimerKind, subject: &str) -> Result<()> {
    tenure_store::cancel_timer(tx.conn(), kind, subject).await?;
    Ok(())
}

/// The first moment after a last day: access ends at midnight UTC after `last_day`.
pub(crate) fn after(last_day: NaiveDate) -> i64 {
    last_day
        .succ_opt()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(i64::MAX, |t| t.and_utc().timestamp_millis())
}

/// Schedules the end of a person's contract and of their engagements, so access goes on the
/// day without anyone sending an event. A timer whose date has changed since does nothing.
pub(crate) async fn schedule_end_dates(
    tx: &mut Tx,
    person: &Person,
    engagements: &[Engagement],
    now: i64,
) -> Result<()> {
    if let Some(end) = person.end_date
        && matches!(person.status, PersonStatus::Active | PersonStatus::PreHire)
    {
        let timer = Timer::PersonEnd(timer::PersonEnd {
            person_id: person.id.clone(),
            end_date: end,
        });
        schedule(tx, &timer, after(end), now).await?;
    }
    for e in engagements.iter().filter(|e| e.active) {
        if let Some(end) = e.end_date {
            let timer = Timer::EngagementEnd(timer::EngagementEnd {
                engagement_id: e.id.clone(),
                person_id: e.person_id.clone(),
                client_id: e.client_id.clone(),
                role: e.role.clone(),
                end_date: end,
            });
            schedule(tx, &timer, after(end), now).await?;
        }
    }
    Ok(())
}
