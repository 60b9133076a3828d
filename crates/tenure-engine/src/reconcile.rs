//! Changing the rules: what-if over everyone (or for one event) without touching anything, and
//! reload, which swaps the rules and gives every person they change a `reconcile` run.
//!
//! Both go through [`planning::compute`], the function that plans real runs, so what a what-if
//! shows for a person is what their `reconcile` run then does (unless their state changes in
//! between, in which case the run plans from the newer state).

use crate::planning::{self, Computed, State};
use crate::{EngineError, Inner, Result, Rules};
use chrono::DateTime;
use serde::Serialize;
use std::sync::Arc;
use tenure_core::audit::AuditAction;
use tenure_core::config::{ClientFacts, Config};
use tenure_core::event::{EventInput, apply_event};
use tenure_core::planner::{Action, PlannedStep, Skipped};
use tenure_core::run::{Priority, RunKind};
use tenure_policy::PolicyEngine;
use tenure_store::{NewAudit, PersonState, RunRow, Store};

/// People read per page while scanning everyone.
const PAGE: i64 = 1_000;

/// One person's plan under the rules asked about.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PersonPlan {
    /// The person.
    pub person_id: String,
    /// The steps, in phase order, each with its source (template, engagement or request).
    pub steps: Vec<PlannedStep>,
    /// Grants policy or separation of duties would refuse, with the deciding rules.
    pub denied: Vec<serde_json::Value>,
    /// Grants that would wait for an approval, and whose.
    pub awaiting_approval: Vec<serde_json::Value>,
    /// Template output naming no known entitlement.
    pub skipped: Vec<Skipped>,
}

/// What a set of rules (or one event) would change, person by person.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct WhatIf {
    /// People looked at.
    pub people: usize,
    /// People whose access would change (a step, a denial or an approval).
    pub people_changed: usize,
    /// Grant steps in all.
    pub grants: usize,
    /// Revoke steps in all.
    pub revokes: usize,
    /// Account steps in all (create, enable, update, disable, delete).
    pub account_changes: usize,
    /// Grants refused.
    pub denied: usize,
    /// Grants that would wait for approval.
    pub awaiting_approval: usize,
    /// The plans of the people whose access would change, in id order, up to the limit asked.
    pub plans: Vec<PersonPlan>,
    /// Whether more people changed than `plans` lists.
    pub truncated: bool,
}

impl WhatIf {
    /// Counts one person's plan; `unchanged` when it only repeats denials the rules in force
    /// already make (a standing denial is not a change).
    fn add(&mut self, person_id: &str, computed: Computed, unchanged: bool, limit: usize) {
        self.people += 1;
        let Computed { plan, authorized } = computed;
        let denied = authorized.denied_json();
        let awaiting = authorized.awaiting_json();
        if unchanged || (plan.steps.is_empty() && denied.is_empty()) {
            return;
        }
        self.people_changed += 1;
        for s in &plan.steps {
            match s.action {
                Action::Grant => self.grants += 1,
                Action::Revoke => self.revokes += 1,
                _ => self.account_changes += 1,
            }
        }
        self.denied += denied.len();
        self.awaiting_approval += awaiting.len();
        if self.plans.len() < limit {
            self.plans.push(PersonPlan {
                person_id: person_id.to_string(),
                steps: plan.steps,
                denied,
                awaiting_approval: awaiting,
                skipped: plan.skipped,
            });
        } else {
            self.truncated = true;
        }
    }
}

fn state<'a>(p: &'a PersonState, clients: &'a ClientFacts) -> State<'a> {
    State {
        person: &p.person,
        engagements: &p.engagements,
        accounts: &p.accounts,
        grants: &p.grants,
        clients,
    }
}

/// Plans everyone against `rules`, reading the store page by page; changes nothing.
/// `in_force`, the rules in force, tells whether policy changed: then access already held is
/// judged again too, and what the new policy forbids shows as revokes. Without it (offline,
/// the rules in force unknown), held access is always judged again.
pub async fn what_if(
    store: &Store,
    rules: &Rules,
    in_force: Option<&Rules>,
    now: i64,
    limit: usize,
) -> Result<WhatIf> {
    let mut out = WhatIf::default();
    scan(
        store,
        rules,
        policy_changed(rules, in_force),
        in_force,
        now,
        |p, computed, unchanged| {
            out.add(&p.person.id, computed, unchanged, limit);
        },
    )
    .await?;
    Ok(out)
}

/// Whether `rules` bring a policy that decides otherwise than the one in force.
fn policy_changed(rules: &Rules, in_force: Option<&Rules>) -> bool {
    in_force.is_none_or(|f| !rules.policy.decides_as(&f.policy))
}

/// Calls `each` with every stored person's plan under `rules`; `rejudge_held` asks policy about
/// access already held as well. With `in_force`, a plan with no step is compared with the one
/// the rules in force make, and `each` is told whether its denials are the same ones (nothing
/// would change for that person).
async fn scan(
    store: &Store,
    rules: &Rules,
    rejudge_held: bool,
    in_force: Option<&Rules>,
    now: i64,
    mut each: impl FnMut(&PersonState, Computed, bool),
) -> Result<()> {
    // What events told of clients, once for the whole scan (clients are few, people many).
    let mut c = store.reader().await?;
    let told = tenure_store::list_clients(&mut c).await?;
    drop(c);
    let clients = ClientFacts::new(&rules.config, told);
    let mut after: Option<String> = None;
    loop {
        let mut c = store.reader().await?;
        let page = tenure_store::people_states(&mut c, after.as_deref(), PAGE).await?;
        drop(c);
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = Some(last.person.id.clone());
        let changed = planning::Changed {
            account_attributes: false,
            facts: rejudge_held,
        };
        for p in &page {
            let computed = planning::compute(rules, &state(p, &clients), changed, None, now);
            let standing = computed.plan.steps.is_empty()
                && computed.authorized.denied().next().is_some()
                && in_force.is_some_and(|f| {
                    let before = planning::compute(f, &state(p, &clients), changed, None, now);
                    before.authorized.denials() == computed.authorized.denials()
                });
            each(p, computed, standing);
        }
    }
}

/// What `event` would do to its person under `rules`: applied to a copy of the stored state,
/// nothing stored.
pub async fn what_if_event(
    store: &Store,
    rules: &Rules,
    event: &EventInput,
    now: i64,
) -> Result<WhatIf> {
    let today = DateTime::from_timestamp_millis(now)
        .unwrap_or_default()
        .date_naive();
    let id = &event.person.id;
    let mut c = store.reader().await?;
    let stored = tenure_store::get_person(&mut c, id).await?;
    let engagements = tenure_store::engagements_of(&mut c, id).await?;
    let accounts = tenure_store::accounts_of(&mut c, id).await?;
    let grants: Vec<_> = tenure_store::grants_of(&mut c, id)
        .await?
        .into_iter()
        .map(|(g, _)| g)
        .collect();
    let applied = apply_event(event, stored.as_ref(), &engagements, today)
        .map_err(|e| EngineError::Conflict(e.to_string()))?;
    let mut all = engagements;
    for en in &applied.engagements {
        match all.iter_mut().find(|g| g.id == en.id) {
            Some(g) => *g = en.clone(),
            None => all.push(en.clone()),
        }
    }
    // The event's own word on its client counts, as it would once stored.
    let mut clients = planning::client_facts(&mut c, &rules.config, &all, &grants).await?;
    drop(c);
    if let Some(told) = &applied.client {
        clients.tell(&rules.config, told.clone());
    }
    let computed = planning::compute(
        rules,
        &State {
            person: &applied.person,
            engagements: &all,
            accounts: &accounts,
            grants: &grants,
            clients: &clients,
        },
        planning::Changed::by(&applied, stored.as_ref()),
        None,
        now,
    );
    let mut out = WhatIf::default();
    out.add(id, computed, false, 1);
    Ok(out)
}

/// What a reload did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Reloaded {
    /// The rules' label from now on ("reload 1", ...).
    pub label: String,
    /// Policy ids in force.
    pub policies: Vec<String>,
    /// Template ids in force.
    pub templates: Vec<String>,
    /// People given a `reconcile` run because the new rules change their access.
    pub runs: usize,
}

/// How many `reconcile` runs are stored per transaction.
const RUNS_PER_TX: usize = 500;

pub(crate) async fn reload(
    inner: &Arc<Inner>,
    config: Config,
    policy: PolicyEngine,
    actor: &str,
) -> Result<Reloaded> {
    let mut count = inner.reloading.lock().await;
    let old = inner.rules();
    if config.systems != old.config.systems {
        return Err(EngineError::Conflict(
            "the reloaded configuration changes systems; their connectors are built at start, so restart tenure to apply it (the rules in force are unchanged)".into(),
        ));
    }
    *count += 1;
    let rules = Arc::new(Rules {
        config: Arc::new(config),
        policy: Arc::new(policy),
        label: format!("reload {count}"),
    });
    let now = inner.clock.now_ms();
    let reloaded = Reloaded {
        label: rules.label.clone(),
        policies: rules.policy.policy_ids().to_vec(),
        templates: rules
            .config
            .templates
            .iter()
            .map(|t| t.id.clone())
            .collect(),
        runs: 0,
    };
    // The swap and its audit entry: the entry is written first, so an audit trail never lacks
    // the rules a later plan cites.
    let mut tx = inner.store.begin().await?;
    tx.audit(NewAudit {
        at_ms: now,
        actor: actor.to_string(),
        action: AuditAction::RulesReloaded.into(),
        reason: format!("{}: configuration and policy replaced", rules.label),
        details: serde_json::json!({
            "policies": reloaded.policies,
            "templates": reloaded.templates,
            "separation_of_duties": rules.config.sod.iter().map(|r| r.reason_id()).collect::<Vec<_>>(),
        }),
        ..Default::default()
    });
    tx.commit().await?;
    *inner.rules.write().expect("rules lock") = rules.clone();

    // Everyone the new rules change gets a re-plan, in batches.
    let mut changed = Vec::new();
    let rejudge_held = policy_changed(&rules, Some(&old));
    scan(
        &inner.store,
        &rules,
        rejudge_held,
        None,
        now,
        |p, computed, _| {
            // A grant waiting for approval that the new rules deny is withdrawn by the re-plan,
            // before anyone approves it.
            if !computed.plan.steps.is_empty() || !computed.plan.withdrawn.is_empty() {
                changed.push(p.person.id.clone());
            }
        },
    )
    .await?;
    for chunk in changed.chunks(RUNS_PER_TX) {
        let mut tx = inner.store.begin().await?;
        schedule_reconcile(&mut tx, chunk, now).await?;
        tx.audit(NewAudit {
            at_ms: now,
            actor: actor.to_string(),
            action: AuditAction::RulesReconcileScheduled.into(),
            reason: format!(
                "{}: the new rules change these people's access",
                rules.label
            ),
            details: serde_json::json!({ "people": chunk }),
            ..Default::default()
        });
        tx.commit().await?;
    }
    inner.wake.notify_one();
    Ok(Reloaded {
        runs: changed.len(),
        ..reloaded
    })
}

/// Gives each of `people` a `reconcile` run, due now: the dispatcher plans them against the
/// rules in force, judging held access again.
pub(crate) async fn schedule_reconcile(
    tx: &mut tenure_store::Tx,
    people: &[String],
    now: i64,
) -> Result<()> {
    let runs: Vec<RunRow> = people
        .iter()
        .map(|person_id| {
            let id = uuid::Uuid::now_v7().to_string();
            RunRow::pending(
                id,
                person_id.clone(),
                RunKind::Reconcile,
                Priority::Normal,
                now,
            )
        })
        .collect();
    tenure_store::insert_runs(tx.conn(), &runs).await?;
    Ok(())
}
