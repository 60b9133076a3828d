//! The approval gate on planned grants, inside a caller's transaction: opening an approval
//! chain for a grant that needs one, finishing it (approved, denied, expired, withdrawn),
//! releasing an access request's grant, and the notifications that go with each.

use crate::context::Inner;
use crate::error::{EngineError, Result};
use crate::{facts, progress, timers};
use std::collections::{BTreeMap, HashMap};
use tenure_core::approval::RequestState;
use tenure_core::approval::{
    ApprovalState, Chain, ChainError, Parties, StageKind, StageRule, build_chain,
};
use tenure_core::audit::AuditAction;
use tenure_core::run::StepState;
use tenure_core::timer::{self, ApprovalTimer, GrantExpiry, Timer, TimerKind};
use tenure_core::{GrantSource, GrantState};
use tenure_store::{ApprovalRow, NewAudit, RequestRow, RunRow, StepRow, Tx};

/// The window requested access lasts once granted: what was asked for, within the entitlement's
/// bound (risk, the client's maximum access duration) and break-glass's cap; `Err` names the
/// problem.
pub(crate) fn window(
    config: &tenure_core::config::Config,
    bound: Option<tenure_core::config::TimeBound>,
    requested: Option<i64>,
    break_glass: bool,
) -> std::result::Result<Option<i64>, String> {
    if let Some(d) = requested
        && d <= 0
    {
        return Err("must be a positive number of seconds".into());
    }
    let mut max = bound;
    if break_glass {
        let cap = config.approvals.break_glass_max_ms;
        if max.as_ref().is_none_or(|m| m.ms > cap) {
            max = Some(tenure_core::config::TimeBound {
                ms: cap,
                why: format!("break-glass access lasts at most {} minutes", cap / 60_000),
            });
        }
    }
    match (requested, max) {
        (Some(d), Some(m)) if d > m.ms => Err(m.why),
        (Some(d), _) => Ok(Some(d)),
        (None, m) => Ok(m.map(|m| m.ms)),
    }
}

/// Called by `plan_run` once a run's steps are stored: opens an approval for every grant step
/// that waits, and settles the run's access request: denied when policy or separation of
/// duties denied its grant (break-glass included), else break-glass released at once, an
/// extension waiting without a step.
pub(crate) async fn on_planned(
    inner: &Inner,
    tx: &mut Tx,
    run: &RunRow,
    request: Option<&RequestRow>,
    steps: &[StepRow],
    authorized: &tenure_policy::authorize::Authorized,
    now: i64,
) -> Result<()> {
    let stages = authorized.stages();
    let awaiting: Vec<&StepRow> = steps
        .iter()
        .filter(|s| s.state == StepState::AwaitingApproval)
        .collect();
    // Who asked: read only when an approval is to be opened.
    let requester = match (request, &run.event_id) {
        (Some(r), _) => r.requester.clone(),
        (None, Some(id)) if !awaiting.is_empty() => tenure_store::get_event(tx.conn(), id)
            .await?
            .map_or_else(|| "engine".to_string(), |e| e.actor),
        _ => "engine".into(),
    };
    let mut request_step = false;
    for step in awaiting {
        let Some(ent) = step.entitlement.as_deref() else {
            continue;
        };
        let for_request = request.filter(|r| r.entitlement == ent);
        request_step |= for_request.is_some();
        let kinds = stages.get(ent).cloned().unwrap_or_default();
        open(
            inner,
            tx,
            run,
            Some(step),
            for_request,
            ent,
            &requester,
            &kinds,
            now,
        )
        .await?;
    }
    let Some(r) = request else {
        return Ok(());
    };
    let grant_step = steps.iter().find(|s| {
        s.entitlement.as_deref() == Some(r.entitlement.as_str())
            && s.action == tenure_core::planner::Action::Grant
    });
    if let Some(policies) = authorized.denied_by(&r.entitlement) {
        // Break-glass skips approvals, never a denial.
        return deny_request(inner, tx, run, r, policies, now).await;
    }
    if r.break_glass {
        let overridden = authorized.overridden(&r.entitlement);
        if !overridden.is_empty() {
            tx.audit(NewAudit {
                at_ms: now,
                actor: r.requester.clone(),
                action: AuditAction::RequestSodOverridden.into(),
                person_id: Some(r.person_id.clone()),
                entitlement: Some(r.entitlement.clone()),
                run_id: Some(run.id.clone()),
                reason: format!(
                    "break-glass overrides {}, as [approvals] break_glass_may_override allows",
                    overridden.join(", ")
                ),
                correlation_id: Some(r.id.clone()),
                details: serde_json::json!({ "request_id": r.id, "policies": overridden }),
                ..Default::default()
            });
        }
        release_request(inner, tx, r, "engine", now).await?;
        notify_break_glass(inner, tx, r, overridden, now).await?;
        return Ok(());
    }
    if request_step {
        return Ok(());
    }
    if grant_step.is_some() {
        // Neither policy nor configuration asks for approval: granted as requested.
        return release_request(inner, tx, r, "engine", now).await;
    }
    let held = tenure_store::grants_of(tx.conn(), &r.person_id)
        .await?
        .into_iter()
        .any(|(g, _)| g.entitlement == r.entitlement && g.state == GrantState::Granted);
    if held {
        // An extension of access already held: approvers decide on the new window alone.
        let kinds = stages
            .get(&r.entitlement)
            .cloned()
            .unwrap_or_else(|| inner.rules().config.approvals.request_stages.clone());
        if kinds.is_empty() {
            return release_request(inner, tx, r, "engine", now).await;
        }
        open(
            inner,
            tx,
            run,
            None,
            Some(r),
            &r.entitlement,
            &requester,
            &kinds,
            now,
        )
        .await?;
    } else {
        // No grant planned, yet none denied: nothing would carry the request out.
        deny_request(inner, tx, run, r, &[], now).await?;
    }
    Ok(())
}

/// Ends a request `denied` because its grant may not be made: `policies` are the Cedar policies
/// and separation-of-duties rules that decided (also in the run's note), audited
/// `request.denied` and told to the requester.
pub(crate) async fn deny_request(
    inner: &Inner,
    tx: &mut Tx,
    run: &RunRow,
    r: &RequestRow,
    policies: &[String],
    now: i64,
) -> Result<()> {
    tenure_store::deny_request_by_policy(tx.conn(), &r.id, policies, now).await?;
    let reason = if policies.is_empty() {
        "no grant could be planned for this request; see the run's note".to_string()
    } else {
        format!("forbidden by {}", policies.join(", "))
    };
    tx.audit(NewAudit {
        at_ms: now,
        actor: "engine".into(),
        action: AuditAction::RequestDenied.into(),
        person_id: Some(r.person_id.clone()),
        entitlement: Some(r.entitlement.clone()),
        run_id: Some(run.id.clone()),
        reason: reason.clone(),
        correlation_id: Some(r.id.clone()),
        details: serde_json::json!({
            "request_id": r.id, "policies": policies, "break_glass": r.break_glass,
        }),
        ..Default::default()
    });
    notify(
        inner,
        tx,
        "request.denied",
        std::slice::from_ref(&r.requester),
        serde_json::json!({
            "request_id": r.id, "person_id": r.person_id, "entitlement": r.entitlement,
            "reason": reason, "policies": policies,
        }),
        now,
    )
    .await
}

/// Person id to manager id, for everyone up the management lines of `seeds`.
pub(crate) async fn management_lines(
    tx: &mut Tx,
    seeds: impl IntoIterator<Item = String>,
) -> Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    let mut todo: Vec<String> = seeds.into_iter().collect();
    let mut seen = std::collections::HashSet::new();
    while let Some(p) = todo.pop() {
        if !seen.insert(p.clone()) || seen.len() > 256 {
            continue;
        }
        if let Some(person) = tenure_store::get_person(tx.conn(), &p).await?
            && let Some(m) = person.manager
        {
            out.insert(p, m.clone());
            todo.push(m);
        }
    }
    Ok(out)
}

/// Who the model names for a stage of this grant.
pub(crate) async fn stage_approvers(
    inner: &Inner,
    tx: &mut Tx,
    person_id: &str,
    entitlement: &str,
    kind: StageKind,
) -> Result<Vec<String>> {
    let rules = inner.rules();
    let settings = &rules.config.approvals;
    let ent = rules.config.entitlements.get(entitlement);
    Ok(match kind {
        StageKind::Manager => tenure_store::get_person(tx.conn(), person_id)
            .await?
            .and_then(|p| p.manager)
            .into_iter()
            .collect(),
        StageKind::Owner => ent
            .and_then(|e| e.owner.as_deref())
            .map(|o| settings.members(o))
            .unwrap_or_default(),
        StageKind::ClientOwner => {
            let clients = facts::client_facts_of(tx.conn(), &rules.config, entitlement).await?;
            let client = ent
                .and_then(|e| e.client.as_deref())
                .and_then(|c| clients.get(&rules.config, c));
            match client.and_then(|c| c.attributes.get("owner")) {
                Some(serde_json::Value::String(o)) => settings.members(o),
                Some(serde_json::Value::Array(list)) => list
                    .iter()
                    .filter_map(|v| v.as_str())
                    .flat_map(|o| settings.members(o))
                    .collect(),
                _ => Vec::new(),
            }
        }
    })
}

/// Opens an approval for one waiting grant (or an extension, without a step).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn open(
    inner: &Inner,
    tx: &mut Tx,
    run: &RunRow,
    step: Option<&StepRow>,
    request: Option<&RequestRow>,
    entitlement: &str,
    requester: &str,
    kinds: &[StageKind],
    now: i64,
) -> Result<()> {
    let rules = inner.rules();
    let settings = &rules.config.approvals;
    let mut named: BTreeMap<StageKind, Vec<String>> = BTreeMap::new();
    for k in kinds {
        named.insert(
            *k,
            stage_approvers(inner, tx, &run.person_id, entitlement, *k).await?,
        );
    }
    let seeds = named
        .values()
        .flatten()
        .cloned()
        .chain([requester.to_string(), run.person_id.clone()]);
    let lines = management_lines(tx, seeds).await?;
    let parties = Parties {
        requester,
        beneficiary: &run.person_id,
    };
    let built = build_chain(
        kinds,
        &|k| named.get(&k).cloned().unwrap_or_default(),
        &|k| {
            if settings.require_all.contains(&k) {
                StageRule::All
            } else {
                StageRule::Any
            }
        },
        &|p| lines.get(p).cloned(),
        parties,
    );
    let id = uuid::Uuid::now_v7().to_string();
    let (chain, no_approver) = match built {
        Ok(c) => (c, None),
        Err(e @ ChainError::NoApprover(_)) => (
            Chain {
                stages: Vec::new(),
                current: 0,
                state: ApprovalState::Denied,
            },
            Some(e.to_string()),
        ),
    };
    let mut row = ApprovalRow {
        id: id.clone(),
        run_id: run.id.clone(),
        step_id: step.map(|s| s.id.clone()),
        request_id: request.map(|r| r.id.clone()),
        person_id: run.person_id.clone(),
        entitlement: entitlement.to_string(),
        requester: requester.to_string(),
        state: chain.state,
        chain,
        created_at: now,
        stage_due_at: now + settings.stage_timeout_ms,
        deadline_at: now + settings.deadline_ms,
        decided_at: None,
    };
    tenure_store::insert_approval(tx.conn(), &row).await?;
    tx.audit(NewAudit {
        at_ms: now,
        actor: "engine".into(),
        action: AuditAction::ApprovalOpened.into(),
        person_id: Some(run.person_id.clone()),
        entitlement: Some(entitlement.to_string()),
        run_id: Some(run.id.clone()),
        reason: format!("stages: {}", kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")),
        correlation_id: Some(id.clone()),
        details: serde_json::json!({ "approval_id": id, "requester": requester, "chain": row.chain, "request_id": row.request_id }),
        ..Default::default()
    });
    if let Some(reason) = no_approver {
        return finish_denied(
            inner,
            tx,
            &mut row,
            "engine",
            &reason,
            ApprovalState::Denied,
            now,
        )
        .await;
    }
    timers::schedule(
        tx,
        &Timer::ApprovalEscalate(ApprovalTimer {
            approval_id: id.clone(),
        }),
        row.stage_due_at,
        now,
    )
    .await?;
    timers::schedule(
        tx,
        &Timer::ApprovalDeadline(ApprovalTimer {
            approval_id: id.clone(),
        }),
        row.deadline_at,
        now,
    )
    .await?;
    notify_stage(inner, tx, &row, "approval.requested", now).await
}

/// Who the approval waits for now.
pub(crate) fn waiting_for(row: &ApprovalRow) -> Vec<String> {
    row.chain
        .current_stage()
        .map(|s| {
            s.approvers
                .iter()
                .filter(|a| !s.approved_by.contains(a))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) async fn notify_stage(
    inner: &Inner,
    tx: &mut Tx,
    row: &ApprovalRow,
    kind: &str,
    now: i64,
) -> Result<()> {
    let to = waiting_for(row);
    notify(
        inner,
        tx,
        kind,
        &to,
        serde_json::json!({
            "approval_id": row.id, "person_id": row.person_id, "entitlement": row.entitlement,
            "requester": row.requester, "request_id": row.request_id,
            "stage": row.chain.current_stage().map(|s| s.kind),
            "deadline_at": row.deadline_at,
        }),
        now,
    )
    .await
}

/// Every stage approved: release the waiting step (its phase makes it ready) and, for a
/// request, start its window.
pub(crate) async fn finish_approved(
    inner: &Inner,
    tx: &mut Tx,
    row: &mut ApprovalRow,
    actor: &str,
    now: i64,
) -> Result<()> {
    if let Some(step) = &row.step_id
        && !tenure_store::set_step_approval(tx.conn(), step, StepState::Pending, None, now).await?
    {
        // The grant no longer waits (its run was cancelled or superseded): nothing is granted.
        let why = Withdrawal {
            actor,
            reason: "the grant no longer waits for this approval".into(),
            by_run: None,
            denied_by: None,
        };
        return close_withdrawn(inner, tx, row, &why, now).await;
    }
    if row.step_id.is_none() {
        // An extension: there must still be access to extend (a leave or a revoke may have
        // come while it waited).
        let held = tenure_store::grants_of(tx.conn(), &row.person_id)
            .await?
            .into_iter()
            .any(|(g, _)| g.entitlement == row.entitlement && g.state == GrantState::Granted);
        if !held {
            let why = Withdrawal {
                actor,
                reason: "the access to extend is no longer held".into(),
                by_run: None,
                denied_by: None,
            };
            return close_withdrawn(inner, tx, row, &why, now).await;
        }
    }
    row.state = ApprovalState::Approved;
    row.decided_at = Some(now);
    tenure_store::update_approval(tx.conn(), row).await?;
    timers::cancel(tx, TimerKind::ApprovalEscalate, &row.id).await?;
    timers::cancel(tx, TimerKind::ApprovalDeadline, &row.id).await?;
    if row.step_id.is_some() {
        tenure_store::set_grant_state(
            tx.conn(),
            &row.person_id,
            &row.entitlement,
            GrantState::Pending,
            now,
        )
        .await?;
        // Planned time-bound access: its window starts now. A request's starts in
        // `release_request`.
        if row.request_id.is_none()
            && let Some(bound) =
                facts::time_bound(tx.conn(), &inner.rules().config, &row.entitlement).await?
            && let Some((g, _)) = tenure_store::grants_of(tx.conn(), &row.person_id)
                .await?
                .into_iter()
                .find(|(g, _)| g.entitlement == row.entitlement)
        {
            timers::bound_grant(
                tx,
                &row.person_id,
                &row.entitlement,
                g.source,
                &g.source_ref,
                &bound,
                Some(&row.run_id),
                now,
            )
            .await?;
        }
    }
    tx.audit(NewAudit {
        at_ms: now,
        actor: actor.to_string(),
        action: AuditAction::ApprovalApproved.into(),
        person_id: Some(row.person_id.clone()),
        entitlement: Some(row.entitlement.clone()),
        run_id: Some(row.run_id.clone()),
        reason: "every stage approved".into(),
        correlation_id: Some(row.id.clone()),
        details: serde_json::json!({ "approval_id": row.id, "chain": row.chain }),
        ..Default::default()
    });
    if let Some(request_id) = &row.request_id
        && let Some(r) = tenure_store::get_request(tx.conn(), request_id).await?
    {
        release_request(inner, tx, &r, actor, now).await?;
    }
    notify(
        inner,
        tx,
        "approval.approved",
        std::slice::from_ref(&row.requester),
        serde_json::json!({ "approval_id": row.id, "person_id": row.person_id, "entitlement": row.entitlement, "request_id": row.request_id }),
        now,
    )
    .await?;
    progress::advance_run(inner, tx, &row.run_id, now).await
}

/// A request's access goes ahead: record the decision and, when the access is time-bound, its
/// expiry and the timer that revokes it.
pub(crate) async fn release_request(
    inner: &Inner,
    tx: &mut Tx,
    r: &RequestRow,
    actor: &str,
    now: i64,
) -> Result<()> {
    let rules = inner.rules();
    let bound = facts::time_bound(tx.conn(), &rules.config, &r.entitlement).await?;
    let window = window(&rules.config, bound, r.duration_ms, r.break_glass)
        .map_err(|m| EngineError::Conflict(format!("request {}: {m}", r.id)))?;
    let expires_at = window.map(|w| now + w);
    tenure_store::decide_request(tx.conn(), &r.id, RequestState::Approved, expires_at, now).await?;
    // The grant row is this request's now (an extension takes over the one held).
    tenure_store::claim_grant_for_request(
        tx.conn(),
        &r.person_id,
        &r.entitlement,
        &r.id,
        expires_at,
        now,
    )
    .await?;
    match expires_at {
        Some(at) => {
            let expiry = Timer::GrantExpiry(GrantExpiry {
                person_id: r.person_id.clone(),
                entitlement: r.entitlement.clone(),
                source: GrantSource::Request,
                source_ref: r.id.clone(),
            });
            timers::schedule(tx, &expiry, at, now).await?
        }
        None => {
            timers::cancel(
                tx,
                TimerKind::GrantExpiry,
                &timer::grant_subject(&r.person_id, &r.entitlement),
            )
            .await?
        }
    }
    tx.audit(NewAudit {
        at_ms: now,
        actor: actor.to_string(),
        action: AuditAction::RequestApproved.into(),
        person_id: Some(r.person_id.clone()),
        entitlement: Some(r.entitlement.clone()),
        run_id: Some(r.run_id.clone()),
        reason: if r.break_glass {
            "break-glass: approval skipped, reviewed afterwards".into()
        } else {
            "approved".into()
        },
        correlation_id: Some(r.id.clone()),
        details: serde_json::json!({ "request_id": r.id, "expires_at": expires_at, "break_glass": r.break_glass }),
        ..Default::default()
    });
    Ok(())
}

/// Break-glass access went ahead: tell the approvers it would have needed, for review.
pub(crate) async fn notify_break_glass(
    inner: &Inner,
    tx: &mut Tx,
    r: &RequestRow,
    overridden: &[String],
    now: i64,
) -> Result<()> {
    let mut to = Vec::new();
    let kinds: Vec<StageKind> = tenure_core::approval::STAGE_ORDER.to_vec();
    for k in kinds {
        for a in stage_approvers(inner, tx, &r.person_id, &r.entitlement, k).await? {
            if !to.contains(&a) && a != r.requester && a != r.person_id {
                to.push(a);
            }
        }
    }
    notify(
        inner,
        tx,
        "request.break_glass",
        &to,
        serde_json::json!({
            "request_id": r.id, "person_id": r.person_id, "entitlement": r.entitlement,
            "requester": r.requester, "justification": r.justification, "review": true,
            "sod_overridden": overridden,
        }),
        now,
    )
    .await
}

/// Denied (by an approver, or automatically at the deadline): the waiting step is denied, the
/// grant with it, and the run ends once the rest of it has.
pub(crate) async fn finish_denied(
    inner: &Inner,
    tx: &mut Tx,
    row: &mut ApprovalRow,
    actor: &str,
    reason: &str,
    state: ApprovalState,
    now: i64,
) -> Result<()> {
    row.state = state;
    row.chain.state = state;
    row.decided_at = Some(now);
    tenure_store::update_approval(tx.conn(), row).await?;
    timers::cancel(tx, TimerKind::ApprovalEscalate, &row.id).await?;
    timers::cancel(tx, TimerKind::ApprovalDeadline, &row.id).await?;
    if let Some(step) = &row.step_id
        && tenure_store::set_step_approval(
            tx.conn(),
            step,
            StepState::Denied,
            Some(&format!("{state} by {actor}: {reason}")),
            now,
        )
        .await?
    {
        tenure_store::set_grant_state(
            tx.conn(),
            &row.person_id,
            &row.entitlement,
            GrantState::Denied,
            now,
        )
        .await?;
    }
    if let Some(request_id) = &row.request_id {
        tenure_store::decide_request(tx.conn(), request_id, state.into(), None, now).await?;
    }
    tx.audit(NewAudit {
        at_ms: now,
        actor: actor.to_string(),
        action: if state == ApprovalState::Expired {
            AuditAction::ApprovalExpired.into()
        } else {
            AuditAction::ApprovalDenied.into()
        },
        person_id: Some(row.person_id.clone()),
        entitlement: Some(row.entitlement.clone()),
        run_id: Some(row.run_id.clone()),
        reason: reason.to_string(),
        correlation_id: Some(row.id.clone()),
        details: serde_json::json!({ "approval_id": row.id, "request_id": row.request_id }),
        ..Default::default()
    });
    notify(
        inner,
        tx,
        &format!("approval.{state}"),
        std::slice::from_ref(&row.requester),
        serde_json::json!({ "approval_id": row.id, "person_id": row.person_id, "entitlement": row.entitlement, "request_id": row.request_id, "reason": reason }),
        now,
    )
    .await?;
    progress::advance_run(inner, tx, &row.run_id, now).await
}

/// Why pending approvals are withdrawn, for the audit trail.
pub(crate) struct Withdrawal<'a> {
    /// Who withdrew them: `engine`, or the operator who cancelled the run.
    pub actor: &'a str,
    /// Why, in words.
    pub reason: String,
    /// The run that caused it (a later run of the person, or the cancelled run itself).
    pub by_run: Option<&'a str>,
    /// The policies and rules that now deny the grant, when that is why: its access request
    /// ends `denied` rather than `withdrawn`.
    pub denied_by: Option<&'a [String]>,
}

/// Withdraws the pending approvals of these steps, which were cancelled before anyone decided:
/// each is closed `withdrawn` (so no decision is taken on it any more), its timers cancelled,
/// its request withdrawn, audited `approval.withdrawn`, and its requester told.
pub(crate) async fn withdraw(
    inner: &Inner,
    tx: &mut Tx,
    step_ids: &[String],
    why: &Withdrawal<'_>,
    now: i64,
) -> Result<()> {
    for mut row in tenure_store::pending_approvals_of_steps(tx.conn(), step_ids).await? {
        close_withdrawn(inner, tx, &mut row, why, now).await?;
    }
    Ok(())
}

/// Closes one pending approval as withdrawn; see [`withdraw`].
pub(crate) async fn close_withdrawn(
    inner: &Inner,
    tx: &mut Tx,
    row: &mut ApprovalRow,
    why: &Withdrawal<'_>,
    now: i64,
) -> Result<()> {
    row.state = ApprovalState::Withdrawn;
    row.chain.state = ApprovalState::Withdrawn;
    row.decided_at = Some(now);
    tenure_store::update_approval(tx.conn(), row).await?;
    timers::cancel(tx, TimerKind::ApprovalEscalate, &row.id).await?;
    timers::cancel(tx, TimerKind::ApprovalDeadline, &row.id).await?;
    match (&row.request_id, why.denied_by) {
        (Some(request_id), Some(policies)) => {
            tenure_store::deny_request_by_policy(tx.conn(), request_id, policies, now).await?;
            tx.audit(NewAudit {
                at_ms: now,
                actor: why.actor.to_string(),
                action: AuditAction::RequestDenied.into(),
                person_id: Some(row.person_id.clone()),
                entitlement: Some(row.entitlement.clone()),
                run_id: Some(row.run_id.clone()),
                reason: format!("forbidden by {}", policies.join(", ")),
                correlation_id: Some(request_id.clone()),
                details: serde_json::json!({ "request_id": request_id, "policies": policies, "by_run": why.by_run }),
                ..Default::default()
            });
        }
        (Some(request_id), None) => {
            tenure_store::decide_request(tx.conn(), request_id, RequestState::Withdrawn, None, now)
                .await?
        }
        (None, _) => {}
    }
    tx.audit(NewAudit {
        at_ms: now,
        actor: why.actor.to_string(),
        action: AuditAction::ApprovalWithdrawn.into(),
        person_id: Some(row.person_id.clone()),
        entitlement: Some(row.entitlement.clone()),
        run_id: Some(row.run_id.clone()),
        reason: why.reason.clone(),
        correlation_id: Some(row.id.clone()),
        details: serde_json::json!({
            "approval_id": row.id, "request_id": row.request_id, "by_run": why.by_run,
            "policies": why.denied_by,
        }),
        ..Default::default()
    });
    notify(
        inner,
        tx,
        "approval.withdrawn",
        std::slice::from_ref(&row.requester),
        serde_json::json!({
            "approval_id": row.id, "person_id": row.person_id, "entitlement": row.entitlement,
            "request_id": row.request_id, "reason": why.reason,
        }),
        now,
    )
    .await
}

/// `person` left (their leave is being planned, in `tx`): the tokens that act as them are
/// revoked (a rehire does not bring them back; a new token does), and each pending approval
/// that names them goes, for their part, to the first working manager above them, as an
/// escalation would (`Chain::hand_over`), audited `approval.escalated`. Approvals for the
/// leaver's own access are withdrawn by the leave itself.
/// A reviewer left: their undecided items of every open campaign go to its fallback (or, when
/// the campaign has none or the fallback is the leaver, to admins), audited per campaign.
async fn hand_over_reviews(inner: &Inner, tx: &mut Tx, person: &str, now: i64) -> Result<()> {
    use tenure_core::review::{CampaignState, Reviewer};
    let rules = inner.rules();
    let teams = &rules.config.approvals.teams;
    let open =
        tenure_store::list_campaigns(tx.conn(), Some(CampaignState::Open), None, 1_000).await?;
    for c in open {
        let to = c
            .definition
            .fallback
            .as_deref()
            .map(|f| Reviewer::named(f, teams))
            .filter(|r| *r != Reviewer::Person(person.to_string()))
            .map(|r| r.stored());
        let moved =
            tenure_store::hand_over_review_items(tx.conn(), &c.id, person, to.as_deref()).await?;
        if moved > 0 {
            tx.audit(NewAudit {
                at_ms: now,
                actor: "engine".into(),
                action: AuditAction::ReviewReassigned.into(),
                person_id: Some(person.to_string()),
                reason: format!(
                    "`{person}` left: {moved} undecided items of `{}` go to {}",
                    c.name,
                    to.as_deref().unwrap_or("admins")
                ),
                correlation_id: Some(c.id.clone()),
                details: serde_json::json!({ "campaign_id": c.id, "items": moved, "to": to }),
                ..Default::default()
            });
        }
    }
    Ok(())
}

pub(crate) async fn on_person_left(
    inner: &Inner,
    tx: &mut Tx,
    person: &str,
    now: i64,
) -> Result<()> {
    let revoked = tenure_store::revoke_tokens_of_person(tx.conn(), person, now).await?;
    for t in &revoked {
        tx.audit(NewAudit {
            at_ms: now,
            actor: "engine".into(),
            action: AuditAction::TokenRevoked.into(),
            person_id: Some(person.to_string()),
            reason: format!(
                "`{person}` left: tokens that act as them stop working (a rehire needs a new token)"
            ),
            correlation_id: Some(t.id.clone()),
            details: serde_json::json!({ "token_id": t.id, "name": t.name }),
            ..Default::default()
        });
    }
    hand_over_reviews(inner, tx, person, now).await?;
    let pending = tenure_store::pending_approvals_naming(tx.conn(), person).await?;
    if pending.is_empty() {
        return Ok(());
    }
    let lines = working_lines(tx, [person.to_string()]).await?;
    for mut row in pending {
        let parties = Parties {
            requester: &row.requester.clone(),
            beneficiary: &row.person_id.clone(),
        };
        let stage_before = row.chain.current;
        let added = row
            .chain
            .hand_over(person, &|p| lines.get(p).cloned(), parties);
        row.state = row.chain.state;
        tx.audit(NewAudit {
            at_ms: now,
            actor: "engine".into(),
            action: AuditAction::ApprovalEscalated.into(),
            person_id: Some(row.person_id.clone()),
            entitlement: Some(row.entitlement.clone()),
            run_id: Some(row.run_id.clone()),
            reason: if added.is_empty() {
                format!(
                    "approver `{person}` left; nobody above them to hand their part to: the approval waits for its escalation or deadline"
                )
            } else {
                format!(
                    "approver `{person}` left; their part goes to {}",
                    added.join(", ")
                )
            },
            correlation_id: Some(row.id.clone()),
            details: serde_json::json!({
                "approval_id": row.id, "stage": stage_before, "added": added, "left": person,
            }),
            ..Default::default()
        });
        if row.state == ApprovalState::Approved {
            finish_approved(inner, tx, &mut row, "engine", now).await?;
            continue;
        }
        if row.chain.current != stage_before {
            row.stage_due_at = now + inner.rules().config.approvals.stage_timeout_ms;
            timers::schedule(
                tx,
                &Timer::ApprovalEscalate(ApprovalTimer {
                    approval_id: row.id.clone(),
                }),
                row.stage_due_at,
                now,
            )
            .await?;
        }
        tenure_store::update_approval(tx.conn(), &row).await?;
        if !added.is_empty() {
            notify(
                inner,
                tx,
                "approval.escalated",
                &added,
                serde_json::json!({ "approval_id": row.id, "person_id": row.person_id, "entitlement": row.entitlement, "requester": row.requester, "left": person }),
                now,
            )
            .await?;
        }
    }
    Ok(())
}

/// Person id to the first manager above them who is still working (see
/// `PersonStatus::is_working`), for everyone up the management lines of `seeds`: whoever
/// takes over from someone who left must be able to decide.
pub(crate) async fn working_lines(
    tx: &mut Tx,
    seeds: impl IntoIterator<Item = String>,
) -> Result<HashMap<String, String>> {
    let lines = management_lines(tx, seeds).await?;
    let mut working = HashMap::new();
    for p in lines.values() {
        if !working.contains_key(p) {
            let w = tenure_store::get_person(tx.conn(), p)
                .await?
                .is_some_and(|p| p.status.is_working());
            working.insert(p.clone(), w);
        }
    }
    let mut out = HashMap::new();
    for start in lines.keys() {
        let mut at = lines.get(start);
        let mut steps = 0;
        while let Some(m) = at {
            if working.get(m).copied().unwrap_or(false) {
                out.insert(start.clone(), m.clone());
                break;
            }
            steps += 1;
            at = if steps > 256 { None } else { lines.get(m) };
        }
    }
    Ok(out)
}

/// Queues a signed webhook notification (when one is configured) in the outbox, inside `tx`.
pub(crate) async fn notify(
    inner: &Inner,
    tx: &mut Tx,
    kind: &str,
    recipients: &[String],
    data: serde_json::Value,
    now: i64,
) -> Result<()> {
    if inner.rules().config.notifications.webhook_url.is_none() || recipients.is_empty() {
        return Ok(());
    }
    let id = format!("msg_{}", uuid::Uuid::now_v7().simple());
    let body = serde_json::json!({
        "type": kind,
        "timestamp": chrono::DateTime::from_timestamp_millis(now).unwrap_or_default().to_rfc3339(),
        "data": { "recipients": recipients, "event": data },
    });
    tenure_store::queue_delivery(tx.conn(), &id, &body, now, now).await?;
    Ok(())
}
