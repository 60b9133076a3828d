//! Reads what the evidence of a leave is made of (see `tenure_core::evidence`): the person's
//! latest `leave` event, their audit entries since it was received, and what they hold now.

use crate::db::{self, Conn};
use crate::{AuditFilter, Result, accounts_of, audit_matching, get_person, grants_of};
use tenure_core::audit::AuditAction;
use tenure_core::config::SlaSettings;
use tenure_core::evidence::{self, Leave, LeaverEvidence};

/// What the evidence of a person's leave came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaverReport {
    /// No person has this id.
    NoSuchPerson,
    /// The person has no `leave` event.
    NotLeft,
    /// The evidence of their latest leave.
    Leaver(Box<LeaverEvidence>),
}

/// Audit entries read per query.
const PAGE: i64 = 1_000;

/// The evidence of `person_id`'s latest leave, measured against `sla` at `now`.
pub async fn leaver_evidence(
    c: &mut Conn,
    person_id: &str,
    sla: &SlaSettings,
    now: i64,
) -> Result<LeaverReport> {
    let Some(person) = get_person(c, person_id).await? else {
        return Ok(LeaverReport::NoSuchPerson);
    };
    let Some(row) = db::query(
        "SELECT id, run_id, received_at, effective_at FROM events
         WHERE person_id = $1 AND kind = 'leave' ORDER BY received_at DESC, id DESC LIMIT 1",
    )
    .bind(person_id)
    .fetch_optional(&mut *c)
    .await?
    else {
        return Ok(LeaverReport::NotLeft);
    };
    let mut leave = Leave {
        event_id: row.try_get(0)?,
        run_id: row.try_get(1)?,
        received_at: row.try_get(2)?,
        effective_at: row.try_get(3)?,
        audit_seq: None,
    };
    let mut entries = Vec::new();
    let mut after = 0;
    loop {
        let page = audit_matching(
            c,
            &AuditFilter {
                after,
                person: Some(person_id),
                since: Some(leave.received_at),
                limit: PAGE,
                ..Default::default()
            },
        )
        .await?;
        let full = page.len() as i64 == PAGE;
        after = page.last().map_or(after, |e| e.seq);
        entries.extend(page);
        if !full {
            break;
        }
    }
    let received = AuditAction::EventReceived.to_string();
    leave.audit_seq = entries
        .iter()
        .find(|e| e.action == received && e.correlation_id.as_deref() == Some(&leave.event_id))
        .map(|e| e.seq);
    let accounts = accounts_of(c, person_id).await?;
    let grants = grants_of(c, person_id).await?;
    Ok(LeaverReport::Leaver(Box::new(evidence::leaver(
        person_id,
        person.status,
        leave,
        &entries,
        &accounts,
        &grants,
        sla,
        now,
    ))))
}
