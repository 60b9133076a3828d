//! Access requests and approvals: a request becomes a run whose grant step waits in
//! `awaiting_approval`; an approval (one per waiting grant) carries its chain of stages
//! (`tenure_core::approval`), and deciding it releases the step, or denies it and ends the run.
//! Escalations, deadlines and expiries are durable timers (see `scheduler`). Every decision,
//! escalation and expiry is audited with its actor, in the transaction that makes it.

use crate::{EngineError, Inner, Result, planning, scheduler};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tenure_core::approval::RequestState;
use tenure_core::approval::{
    ApprovalState, Chain, ChainError, DecisionError, Parties, Progress, StageKind, StageRule,
    Verdict, build_chain,
};
use tenure_core::audit::AuditAction;
use tenure_core::run::{Priority, RunKind, StepState};
use tenure_core::timer::{self, ApprovalTimer, GrantExpiry, Timer, TimerKind};
use tenure_core::{Grant, GrantSource, GrantState, PersonStatus};
use tenure_store::{ApprovalRow, DecisionRow, NewAudit, RequestRow, RunRow, StepRow, Tx};

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

/// An approval with its decisions, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalDetail {
    /// The approval.
    #[serde(flatten)]
    pub approval: ApprovalRow,
    /// The decisions made on it, in order.
    pub decisions: Vec<DecisionRow>,
}

/// An access request as the API shows it: where it stands, and each approval of its run with
/// its stages and the decisions made on it.
#[derive(Debug, Clone, Serialize)]
pub struct RequestDetail {
    /// The request.
    pub request: RequestRow,
    /// The approvals its run waited or waits for.
    pub approvals: Vec<ApprovalDetail>,
    /// When policy or separation of duties denied its grant: the policies and rules that
    /// decided (as in its run's note).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub denied_by: Vec<String>,
}

/// The window requested access lasts once granted: what was asked for, within the entitlement's
/// bound (risk, the client's maximum access duration) and break-glass's cap; `Err` names the
/// problem.
fn window(
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
    let now = inner.clock.now_ms();
    let mut tx = inner.store.begin().await?;
    let bound = planning::time_bound(tx.conn(), config, &ent.id).await?;
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
    );
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
        crate::worker::claim_urgent_now(inner, &mut tx, std::slice::from_ref(&run_id), now).await?;
    }
    tx.commit().await?;
    inner.wake_all();
    Ok(RequestAccepted { request_id, run_id })
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
    authorized: &planning::Authorized,
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
async fn deny_request(
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
async fn management_lines(
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
async fn stage_approvers(
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
            let clients = planning::client_facts_of(tx.conn(), &rules.config, entitlement).await?;
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
async fn open(
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
    scheduler::schedule(
        tx,
        &Timer::ApprovalEscalate(ApprovalTimer {
            approval_id: id.clone(),
        }),
        row.stage_due_at,
        now,
    )
    .await?;
    scheduler::schedule(
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
fn waiting_for(row: &ApprovalRow) -> Vec<String> {
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

async fn notify_stage(
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
    let now = inner.clock.now_ms();
    let mut tx = inner.store.begin().await?;
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
            scheduler::schedule(
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

/// Every stage approved: release the waiting step (its phase makes it ready) and, for a
/// request, start its window.
async fn finish_approved(
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
    scheduler::cancel(tx, TimerKind::ApprovalEscalate, &row.id).await?;
    scheduler::cancel(tx, TimerKind::ApprovalDeadline, &row.id).await?;
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
                planning::time_bound(tx.conn(), &inner.rules().config, &row.entitlement).await?
            && let Some((g, _)) = tenure_store::grants_of(tx.conn(), &row.person_id)
                .await?
                .into_iter()
                .find(|(g, _)| g.entitlement == row.entitlement)
        {
            scheduler::bound_grant(
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
    planning::advance_run(inner, tx, &row.run_id, now).await
}

/// A request's access goes ahead: record the decision and, when the access is time-bound, its
/// expiry and the timer that revokes it.
async fn release_request(
    inner: &Inner,
    tx: &mut Tx,
    r: &RequestRow,
    actor: &str,
    now: i64,
) -> Result<()> {
    let rules = inner.rules();
    let bound = planning::time_bound(tx.conn(), &rules.config, &r.entitlement).await?;
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
            scheduler::schedule(tx, &expiry, at, now).await?
        }
        None => {
            scheduler::cancel(
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
async fn notify_break_glass(
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
async fn finish_denied(
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
    scheduler::cancel(tx, TimerKind::ApprovalEscalate, &row.id).await?;
    scheduler::cancel(tx, TimerKind::ApprovalDeadline, &row.id).await?;
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
    planning::advance_run(inner, tx, &row.run_id, now).await
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
async fn close_withdrawn(
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
    scheduler::cancel(tx, TimerKind::ApprovalEscalate, &row.id).await?;
    scheduler::cancel(tx, TimerKind::ApprovalDeadline, &row.id).await?;
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
        scheduler::schedule(
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

/// `person` left (their leave is being planned, in `tx`): the tokens that act as them are
/// revoked (a rehire does not bring them back; a new token does), and each pending approval
/// that names them goes, for their part, to the first working manager above them, as an
/// escalation would (`Chain::hand_over`), audited `approval.escalated`. Approvals for the
/// leaver's own access are withdrawn by the leave itself.
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
            scheduler::schedule(
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
async fn working_lines(
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
    let now = inner.clock.now_ms();
    if ends_at <= now {
        return Err(invalid("ends_at", "must be in the future"));
    }
    let mut tx = inner.store.begin().await?;
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
    let now = inner.clock.now_ms();
    let mut tx = inner.store.begin().await?;
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
