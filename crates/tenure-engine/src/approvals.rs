//! Access requests and approvals: a request becomes a run whose grant step waits in
//! `awaiting_approval`; an approval (one per waiting grant) carries its chain of stages
//! (`tenure_core::approval`), and deciding it releases the step, or denies it and ends the run.
//! Escalations, deadlines and expiries are durable timers (see `scheduler`). Every decision,
//! escalation and expiry is audited with its actor, in the transaction that makes it.

use crate::context::Inner;
use crate::error::{EngineError, Result};
use crate::gates::{
    finish_approved, finish_denied, management_lines, notify, notify_stage, window,
};
use crate::{facts, planning, timers};
use serde::Serialize;
use std::sync::Arc;
use tenure_core::approval::RequestState;
use tenure_core::approval::{ApprovalState, DecisionError, Parties, Progress, Verdict};
use tenure_core::audit::AuditAction;
use tenure_core::run::{Priority, RunKind};
use tenure_core::timer::{ApprovalTimer, Timer};
use tenure_core::{Grant, GrantSource, GrantState, PersonStatus};
use tenure_store::{ApprovalRow, DecisionRow, NewAudit, RequestRow, RunRow, Tx};

/// An access request as the API hands it in.
#[derive(Debug, Clone)]
pub struct NewRequest {
    /// Who would hold the access.
    pub person_id: String,
    /// What is asked for.
    pub entitlement: String,
    /// Who asks: a person id (the token's identity), or an operator token's name.
    pub requester: String,
    /// Why.
    pub justification: String,
    /// For how long (ms); required for high and privileged risk up to the configured maximum,
    /// which is also the default there.
    pub duration_ms: Option<i64>,
    /// Emergency: skip approval, short window, flagged, approvers told afterwards.
    pub break_glass: bool,
}

/// A request accepted: its id and the run that carries it out.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RequestAccepted {
    /// The request.
    pub request_id: String,
    /// Its run.
    pub run_id: String,
}

/// An approval with its decisions, as the store holds them (the API shows it through its own
/// view).
#[derive(Debug, Clone)]
pub struct ApprovalDetail {
    /// The approval.
    pub approval: ApprovalRow,
    /// The decisions made on it, in order.
    pub decisions: Vec<DecisionRow>,
}

/// An access request as the store holds it: where it stands, and each approval of its run with
/// its stages and the decisions made on it (the API shows it through its own view).
#[derive(Debug, Clone)]
pub struct RequestDetail {
    /// The request.
    pub request: RequestRow,
    /// The approvals its run waited or waits for.
    pub approvals: Vec<ApprovalDetail>,
    /// When policy or separation of duties denied its grant: the policies and rules that
    /// decided (as in its run's note).
    pub denied_by: Vec<String>,
}

/// Stores a request, its grant as wanted and its run, and plans the run at once (it waits if an
/// earlier run of the person is still open).
pub(crate) async fn request_access(inner: &Arc<Inner>, req: NewRequest) -> Result<RequestAccepted> {
    let rules = inner.rules();
    let config = &rules.config;
    let invalid = |field: &str, message: String| EngineError::Invalid {
        field: field.to_string(),
        message,
    };
    let Some(ent) = config.entitlements.get(&req.entitlement) else {
        return Err(invalid(
            "entitlement",
            format!("no entitlement `{}` in the catalog", req.entitlement),
        ));
    };
    let mut tx = inner.store.begin().await?;
    let now = inner.clock.now_ms();
    let bound = facts::time_bound(tx.conn(), config, &ent.id).await?;
    window(config, bound, req.duration_ms, req.break_glass)
        .map_err(|m| invalid("duration_secs", m))?;
    let person = tenure_store::get_person(tx.conn(), &req.person_id)
        .await?
        .ok_or_else(|| EngineError::NotFound(format!("person `{}`", req.person_id)))?;
    if matches!(person.status, PersonStatus::Terminated) {
        return Err(EngineError::Conflict(format!(
            "person `{}` has left; access cannot be requested for them",
            person.id
        )));
    }
    let request_id = uuid::Uuid::now_v7().to_string();
    let run_id = uuid::Uuid::now_v7().to_string();
    let existing = tenure_store::grants_of(tx.conn(), &person.id)
        .await?
        .into_iter()
        .find(|(g, _)| g.entitlement == ent.id);
    match &existing {
        Some((g, _)) if g.state == GrantState::Granted && g.source != GrantSource::Request => {
            return Err(EngineError::Conflict(format!(
                "`{}` already holds `{}` through {} {}",
                person.id, ent.id, g.source, g.source_ref
            )));
        }
        Some((g, _)) if matches!(g.state, GrantState::Pending | GrantState::AwaitingApproval) => {
            return Err(EngineError::Conflict(format!(
                "`{}` is already being granted `{}` ({} {}); wait for that to end",
                person.id, ent.id, g.source, g.source_ref
            )));
        }
        // Held through an earlier request: this one extends it once approved.
        Some((g, _)) if g.state == GrantState::Granted => {}
        _ => {
            let grant = Grant {
                person_id: person.id.clone(),
                entitlement: ent.id.clone(),
                source: GrantSource::Request,
                source_ref: request_id.clone(),
                state: GrantState::Pending,
                granted_at: None,
                expires_at: None,
            };
            tenure_store::upsert_grant(tx.conn(), &grant, &ent.system, now).await?;
        }
    }
    let request = RequestRow {
        id: request_id.clone(),
        person_id: person.id.clone(),
        entitlement: ent.id.clone(),
        requester: req.requester.clone(),
        justification: req.justification.clone(),
        duration_ms: req.duration_ms,
        break_glass: req.break_glass,
        state: RequestState::Pending,
        run_id: run_id.clone(),
        created_at: now,
        decided_at: None,
        expires_at: None,
    };
    tenure_store::insert_request(tx.conn(), &request).await?;
    let priority = if req.break_glass {
        Priority::Urgent
    } else {
        Priority::Normal
    };
    let run = RunRow::pending(
        run_id.clone(),
        person.id.clone(),
        RunKind::Request,
        priority,
        now,
    )
    .in_trace(None);
    tenure_store::insert_run(tx.conn(), &run).await?;
    tx.audit(NewAudit {
        at_ms: now,
        actor: req.requester.clone(),
        action: if req.break_glass {
            AuditAction::RequestBreakGlass.into()
        } else {
            AuditAction::RequestCreated.into()
        },
        person_id: Some(person.id.clone()),
        entitlement: Some(ent.id.clone()),
        system: Some(ent.system.clone()),
        run_id: Some(run_id.clone()),
        reason: req.justification.clone(),
        correlation_id: Some(request_id.clone()),
        details: serde_json::json!({
            "request_id": request_id, "duration_ms": req.duration_ms,
            "break_glass": req.break_glass, "extension": existing.is_some_and(|(g, _)| g.state == GrantState::Granted),
        }),
    });
    let planned = planning::plan_run(inner, &mut tx, &run, now).await?;
    if planned == planning::Planned::Yes && run.priority.is_urgent() {
        crate::dispatch::claim_urgent_now(inner, &mut tx, std::slice::from_ref(&run_id), now)
            .await?;
    }
    tx.commit().await?;
    inner.wake_all();
    Ok(RequestAccepted { request_id, run_id })
}

/// The approvals `person` may decide now (as an approver of the current stage, or as the
/// delegate of one); every pending approval when `person` is `None` (an operator).
pub(crate) async fn pending_for(inner: &Inner, person: Option<&str>) -> Result<Vec<ApprovalRow>> {
    let mut c = inner.store.reader().await?;
    let filter = tenure_store::ApprovalFilter {
        states: &[ApprovalState::Pending],
        approver: person,
        now: inner.clock.now_ms(),
        limit: 10_000,
        ..Default::default()
    };
    Ok(tenure_store::list_approvals(&mut c, &filter).await?)
}

/// An access request with its approvals and their decisions.
pub(crate) async fn request_detail(inner: &Inner, id: &str) -> Result<RequestDetail> {
    let mut c = inner.store.reader().await?;
    let request = tenure_store::get_request(&mut c, id)
        .await?
        .ok_or_else(|| EngineError::NotFound(format!("request `{id}`")))?;
    let filter = tenure_store::ApprovalFilter {
        run: Some(&request.run_id),
        limit: 1_000,
        ..Default::default()
    };
    let mut approvals = Vec::new();
    for approval in tenure_store::list_approvals(&mut c, &filter).await? {
        let decisions = tenure_store::decisions_of(&mut c, &approval.id).await?;
        approvals.push(ApprovalDetail {
            approval,
            decisions,
        });
    }
    let denied_by = tenure_store::request_denial(&mut c, id)
        .await?
        .unwrap_or_default();
    Ok(RequestDetail {
        request,
        approvals,
        denied_by,
    })
}

/// One approval with its decisions.
pub(crate) async fn detail(inner: &Inner, id: &str) -> Result<ApprovalDetail> {
    let mut c = inner.store.reader().await?;
    let approval = tenure_store::get_approval(&mut c, id)
        .await?
        .ok_or_else(|| EngineError::NotFound(format!("approval `{id}`")))?;
    let decisions = tenure_store::decisions_of(&mut c, id).await?;
    Ok(ApprovalDetail {
        approval,
        decisions,
    })
}

/// Records `actor`'s decision on an approval, and what follows from it.
pub(crate) async fn decide(
    inner: &Arc<Inner>,
    id: &str,
    actor: &str,
    verdict: Verdict,
    comment: &str,
) -> Result<ApprovalDetail> {
    let mut tx = inner.store.begin().await?;
    let now = inner.clock.now_ms();
    let mut row = tenure_store::get_approval(tx.conn(), id)
        .await?
        .ok_or_else(|| EngineError::NotFound(format!("approval `{id}`")))?;
    if row.state == ApprovalState::Withdrawn {
        return Err(withdrawn_conflict(&row));
    }
    if let Some(person) = tenure_store::get_person(tx.conn(), actor).await?
        && !person.status.is_working()
    {
        return Err(EngineError::Forbidden(format!(
            "`{actor}` is {}: only people who work here decide approvals",
            person.status
        )));
    }
    let delegators = tenure_store::delegators_of(tx.conn(), actor, now).await?;
    let parties = Parties {
        requester: &row.requester.clone(),
        beneficiary: &row.person_id.clone(),
    };
    let on_behalf_of = row
        .chain
        .acts_for(actor, &delegators)
        .unwrap_or_else(|| actor.to_string());
    let stage = row.chain.current as i64;
    let progress = row
        .chain
        .decide(actor, &on_behalf_of, verdict, parties)
        .map_err(|e| match e {
            DecisionError::NotPending(_) | DecisionError::AlreadyApproved(_) => {
                EngineError::Conflict(e.to_string())
            }
            DecisionError::SelfApproval(_) | DecisionError::NotAnApprover(..) => {
                EngineError::Forbidden(e.to_string())
            }
        })?;
    tenure_store::insert_decision(
        tx.conn(),
        id,
        &DecisionRow {
            stage,
            actor: actor.to_string(),
            on_behalf_of: on_behalf_of.clone(),
            decision: verdict.as_str().into(),
            comment: comment.to_string(),
            at_ms: now,
        },
    )
    .await?;
    tx.audit(NewAudit {
        at_ms: now,
        actor: actor.to_string(),
        action: AuditAction::ApprovalDecided(verdict).into(),
        person_id: Some(row.person_id.clone()),
        entitlement: Some(row.entitlement.clone()),
        run_id: Some(row.run_id.clone()),
        reason: comment.to_string(),
        correlation_id: Some(row.id.clone()),
        details: serde_json::json!({
            "approval_id": row.id, "stage": stage, "on_behalf_of": on_behalf_of,
            "delegated": on_behalf_of != actor,
        }),
        ..Default::default()
    });
    match progress {
        Progress::StageWaiting => tenure_store::update_approval(tx.conn(), &row).await?,
        Progress::NextStage(_) => {
            row.stage_due_at = now + inner.rules().config.approvals.stage_timeout_ms;
            tenure_store::update_approval(tx.conn(), &row).await?;
            timers::schedule(
                &mut tx,
                &Timer::ApprovalEscalate(ApprovalTimer {
                    approval_id: id.to_string(),
                }),
                row.stage_due_at,
                now,
            )
            .await?;
            notify_stage(inner, &mut tx, &row, "approval.requested", now).await?;
        }
        Progress::Approved => finish_approved(inner, &mut tx, &mut row, actor, now).await?,
        Progress::Denied => {
            finish_denied(
                inner,
                &mut tx,
                &mut row,
                actor,
                comment,
                ApprovalState::Denied,
                now,
            )
            .await?
        }
    }
    tx.commit().await?;
    inner.wake_all();
    if row.state == ApprovalState::Withdrawn {
        // Approved, but its grant no longer waited: withdrawn instead, nothing granted.
        return Err(withdrawn_conflict(&row));
    }
    detail(inner, id).await
}

/// The answer to a decision on an approval whose grant is no longer wanted.
fn withdrawn_conflict(row: &ApprovalRow) -> EngineError {
    EngineError::Conflict(format!(
        "approval `{}` was withdrawn: `{}` is no longer to be granted `{}`; nothing was granted",
        row.id, row.person_id, row.entitlement
    ))
}

/// The escalation timer of an approval fired: widen its current stage to the managers of
/// those who did not answer.
pub(crate) async fn escalate(inner: &Inner, tx: &mut Tx, id: &str, now: i64) -> Result<()> {
    let Some(mut row) = tenure_store::get_approval(tx.conn(), id).await? else {
        return Ok(());
    };
    if row.state != ApprovalState::Pending {
        return Ok(());
    }
    let seeds = row
        .chain
        .current_stage()
        .map(|s| s.approvers.clone())
        .unwrap_or_default();
    let lines = management_lines(tx, seeds).await?;
    let parties = Parties {
        requester: &row.requester.clone(),
        beneficiary: &row.person_id.clone(),
    };
    let stage_before = row.chain.current;
    let added = row.chain.escalate(&|p| lines.get(p).cloned(), parties);
    row.state = row.chain.state;
    tx.audit(NewAudit {
        at_ms: now,
        actor: "scheduler".into(),
        action: AuditAction::ApprovalEscalated.into(),
        person_id: Some(row.person_id.clone()),
        entitlement: Some(row.entitlement.clone()),
        run_id: Some(row.run_id.clone()),
        reason: if added.is_empty() {
            "stage timed out; nobody above its approvers to escalate to".into()
        } else {
            format!("stage timed out; escalated to {}", added.join(", "))
        },
        correlation_id: Some(row.id.clone()),
        details: serde_json::json!({ "approval_id": row.id, "stage": stage_before, "added": added }),
        ..Default::default()
    });
    if row.state == ApprovalState::Approved {
        return finish_approved(inner, tx, &mut row, "scheduler", now).await;
    }
    if !added.is_empty() {
        row.stage_due_at = now + inner.rules().config.approvals.stage_timeout_ms;
        timers::schedule(
            tx,
            &Timer::ApprovalEscalate(ApprovalTimer {
                approval_id: id.to_string(),
            }),
            row.stage_due_at,
            now,
        )
        .await?;
        notify(
            inner,
            tx,
            "approval.escalated",
            &added,
            serde_json::json!({ "approval_id": row.id, "person_id": row.person_id, "entitlement": row.entitlement, "requester": row.requester }),
            now,
        )
        .await?;
    }
    tenure_store::update_approval(tx.conn(), &row).await?;
    Ok(())
}

/// The deadline timer of an approval fired: still undecided, it is denied automatically.
pub(crate) async fn expire(inner: &Inner, tx: &mut Tx, id: &str, now: i64) -> Result<()> {
    let Some(mut row) = tenure_store::get_approval(tx.conn(), id).await? else {
        return Ok(());
    };
    if !row.chain.expire() {
        return Ok(());
    }
    finish_denied(
        inner,
        tx,
        &mut row,
        "scheduler",
        "not decided before the deadline",
        ApprovalState::Expired,
        now,
    )
    .await
}

/// Records that `delegate` decides `delegator`'s approvals from `starts_at` until `ends_at`.
pub(crate) async fn delegate(
    inner: &Inner,
    delegator: &str,
    delegate: &str,
    starts_at: i64,
    ends_at: i64,
    actor: &str,
) -> Result<tenure_store::DelegationRow> {
    let invalid = |field: &str, message: &str| EngineError::Invalid {
        field: field.into(),
        message: message.into(),
    };
    if delegate == delegator {
        return Err(invalid(
            "delegate",
            "an approver cannot delegate to themselves",
        ));
    }
    if ends_at <= starts_at {
        return Err(invalid("ends_at", "must be after starts_at"));
    }
    let mut tx = inner.store.begin().await?;
    // The time once the writer is ours: the delegation and its entry are stamped in the
    // order they are written.
    let now = inner.clock.now_ms();
    if ends_at <= now {
        return Err(invalid("ends_at", "must be in the future"));
    }
    for (field, who) in [("delegator", delegator), ("delegate", delegate)] {
        if tenure_store::get_person(tx.conn(), who).await?.is_none() {
            return Err(invalid(field, &format!("no person `{who}`")));
        }
    }
    let row = tenure_store::DelegationRow {
        id: uuid::Uuid::now_v7().to_string(),
        delegator: delegator.to_string(),
        delegate: delegate.to_string(),
        starts_at,
        ends_at,
        created_at: now,
        revoked_at: None,
    };
    tenure_store::insert_delegation(tx.conn(), &row).await?;
    tx.audit(NewAudit {
        at_ms: now,
        actor: actor.to_string(),
        action: AuditAction::ApprovalDelegated.into(),
        person_id: Some(delegator.to_string()),
        reason: format!("{delegate} decides for {delegator}"),
        correlation_id: Some(row.id.clone()),
        details: serde_json::json!({ "delegation_id": row.id, "delegate": delegate, "starts_at": starts_at, "ends_at": ends_at }),
        ..Default::default()
    });
    tx.commit().await?;
    Ok(row)
}

/// Withdraws a delegation from now on; `actor` is who asked (the delegator or an operator).
pub(crate) async fn revoke_delegation(
    inner: &Inner,
    id: &str,
    actor: &str,
) -> Result<tenure_store::DelegationRow> {
    let mut tx = inner.store.begin().await?;
    let now = inner.clock.now_ms();
    let mut row = tenure_store::get_delegation(tx.conn(), id)
        .await?
        .ok_or_else(|| EngineError::NotFound(format!("delegation `{id}`")))?;
    if row.revoked_at.is_some() {
        return Err(EngineError::Conflict(format!(
            "delegation `{id}` was already withdrawn"
        )));
    }
    if row.ends_at <= now {
        return Err(EngineError::Conflict(format!(
            "delegation `{id}` has already ended"
        )));
    }
    if !tenure_store::revoke_delegation(tx.conn(), id, now).await? {
        return Err(EngineError::Conflict(format!(
            "delegation `{id}` was already withdrawn"
        )));
    }
    row.revoked_at = Some(now);
    tx.audit(NewAudit {
        at_ms: now,
        actor: actor.to_string(),
        action: AuditAction::ApprovalDelegationRevoked.into(),
        person_id: Some(row.delegator.clone()),
        reason: format!("{} no longer decides for {}", row.delegate, row.delegator),
        correlation_id: Some(row.id.clone()),
        details: serde_json::json!({ "delegation_id": row.id, "delegate": row.delegate, "starts_at": row.starts_at, "ends_at": row.ends_at }),
        ..Default::default()
    });
    tx.commit().await?;
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_bounded_for_risky_access_clients_and_break_glass() {
        let main = tenure_core::config::SourceFile {
            path: "tenure.toml".into(),
            text: r#"
[[systems]]
id = "crm"
connector = "sandbox"
[[clients]]
id = "acme"
max_access_days = 30
[[entitlements]]
id = "chat:low"
system = "crm"
risk = "low"
[[entitlements]]
id = "erp:admin"
system = "crm"
risk = "privileged"
[[entitlements]]
id = "crm:acme"
system = "crm"
risk = "low"
client = "acme"
[[entitlements]]
id = "crm:acme-admin"
system = "crm"
risk = "high"
client = "acme"
"#
            .into(),
        };
        let config = tenure_core::config::Config::parse(&main, &[]).expect("config");
        let h = 3_600_000;
        let day = 24 * h;
        let w = |e: &str, d, bg| window(&config, config.time_bound(e), d, bg);
        assert_eq!(w("chat:low", None, false), Ok(None));
        assert_eq!(w("chat:low", Some(h), false), Ok(Some(h)));
        assert_eq!(w("erp:admin", None, false), Ok(Some(8 * h)));
        assert_eq!(
            w("erp:admin", Some(9 * h), false),
            Err("privileged-risk access lasts at most 480 minutes".into())
        );
        assert_eq!(w("chat:low", None, true), Ok(Some(h)));
        assert!(w("chat:low", Some(2 * h), true).is_err());
        assert!(w("chat:low", Some(0), false).is_err());
        // The client's contract caps low-risk access too, and the shorter bound wins.
        assert_eq!(w("crm:acme", None, false), Ok(Some(30 * day)));
        assert_eq!(
            w("crm:acme", Some(31 * day), false),
            Err("client `acme` allows access for at most 30 days".into())
        );
        assert_eq!(w("crm:acme-admin", None, false), Ok(Some(8 * h)));
    }
}
