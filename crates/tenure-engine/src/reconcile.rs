//! Changing the rules: what-if over everyone (or for one event) without touching anything, and
//! reload, which swaps the rules and gives every person they change a `reconcile` run.
//!
//! Both go through [`planning::compute`], the function that plans real runs, so what a what-if
//! shows for a person is what their `reconcile` run then does (unless their state changes in
//! between, in which case the run plans from the newer state).

use crate::context::{Inner, Rules};
use crate::error::{EngineError, Result};
use crate::facts;
use crate::planning::{self, Computed, State, schedule_reconcile};
use chrono::DateTime;
use serde::Serialize;
use std::collections::BTreeSet;
use std::sync::Arc;
use tenure_core::audit::AuditAction;
use tenure_core::config::{ClientFacts, Config};
use tenure_core::event::{EventInput, apply_event};
use tenure_core::planner::{Action, PlannedStep, Skipped};
use tenure_policy::PolicyEngine;
use tenure_store::{NewAudit, PersonState, Store};

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
    let mut clients = facts::client_facts(&mut c, &rules.config, &all, &grants).await?;
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
    // The time once the writer is ours, like every writer's: entries stay in time order.
    let now = inner.clock.now_ms();
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
        let now = inner.clock.now_ms();
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

// ------------------------------------------------------------------ group membership

/// The `transfer` event that tells tenure a person's identity provider groups now are `groups`
/// (displayNames): what a membership change over SCIM stores, and what its what-if plans.
pub fn groups_transfer(person: &str, groups: Vec<String>) -> EventInput {
    let mut attributes = serde_json::Map::new();
    attributes.insert(
        tenure_core::config::GROUPS_ATTRIBUTE.into(),
        serde_json::Value::Array(groups.into_iter().map(serde_json::Value::String).collect()),
    );
    EventInput {
        id: None,
        kind: tenure_core::event::EventType::Transfer,
        person: tenure_core::event::PersonInput {
            id: person.to_string(),
            attributes: Some(attributes),
            ..Default::default()
        },
        engagement: None,
        effective_at: None,
        source: Some("scim".into()),
    }
}

/// A change to an identity provider group's members, asked about before it is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberChange {
    /// These people added and these removed (what a PATCH's `add` and `remove` do).
    AddRemove {
        /// People to add.
        add: BTreeSet<String>,
        /// People to remove.
        remove: BTreeSet<String>,
    },
    /// The members replaced by exactly these (a PUT, or Okta's full replace).
    Replace(BTreeSet<String>),
}

/// A member whose access a group change would not re-plan, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct NotPlanned {
    /// The person (the SCIM user's id).
    pub person_id: String,
    /// Why nothing is planned for them.
    pub reason: String,
}

/// What a change to a group's members would do.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GroupWhatIf {
    /// The group's id; absent for a group the identity provider has not pushed yet.
    pub group_id: Option<String>,
    /// Its displayName: what role templates (`[match] groups`) and policy
    /// (`principal.groups`) see.
    pub display_name: String,
    /// People the change would make members, in id order.
    pub members_added: Vec<String>,
    /// People it would take out, in id order.
    pub members_removed: Vec<String>,
    /// Members added or removed whose access would not be re-planned (not hired yet, or gone),
    /// as the change itself would not.
    pub not_planned: Vec<NotPlanned>,
    /// What the re-planned members' access would become, person by person.
    #[serde(flatten)]
    pub what_if: WhatIf,
}

impl WhatIf {
    /// Adds another what-if's counts and plans to this one, listing at most `limit` plans.
    fn merge(&mut self, other: WhatIf, limit: usize) {
        self.people += other.people;
        self.people_changed += other.people_changed;
        self.grants += other.grants;
        self.revokes += other.revokes;
        self.account_changes += other.account_changes;
        self.denied += other.denied;
        self.awaiting_approval += other.awaiting_approval;
        self.truncated |= other.truncated;
        for p in other.plans {
            if self.plans.len() < limit {
                self.plans.push(p);
            } else {
                self.truncated = true;
            }
        }
    }
}

/// What changing the members of the identity provider group `group` (a stored group's id or
/// displayName; a displayName no group has is a group not pushed yet) would do to the access
/// of each person it adds or removes, under `rules`; changes nothing. Each member's groups
/// are laid out as the change would leave them and planned as the `transfer` the change
/// would store ([`groups_transfer`]); members not hired, or gone, are listed in
/// `not_planned`, as the change re-plans only active members. Adding someone who is not a
/// live SCIM user is refused, as the change itself would be.
pub async fn what_if_group(
    store: &Store,
    rules: &Rules,
    group: &str,
    change: &MemberChange,
    now: i64,
    limit: usize,
) -> Result<GroupWhatIf> {
    let invalid = |field: &str, message: String| EngineError::Invalid {
        field: field.into(),
        message,
    };
    if group.trim().is_empty() {
        return Err(invalid("group", "name a group by id or displayName".into()));
    }
    if let MemberChange::AddRemove { add, remove } = change
        && let Some(both) = add.intersection(remove).next()
    {
        return Err(invalid(
            "remove",
            format!("`{both}` is both added and removed"),
        ));
    }
    let mut c = store.reader().await?;
    let stored = match tenure_store::scim_group(&mut c, group).await? {
        Some(g) => Some(g),
        None => match tenure_store::scim_group_id_by_name(&mut c, &group.to_lowercase()).await? {
            Some(id) => tenure_store::scim_group(&mut c, &id).await?,
            None => None,
        },
    };
    let (group_id, display_name) = match &stored {
        Some(g) => (Some(g.id.clone()), g.display_name.clone()),
        None => (None, group.to_string()),
    };
    let old: BTreeSet<String> = match &group_id {
        Some(id) => tenure_store::scim_group_members(&mut c, &[id.as_str()])
            .await?
            .remove(id)
            .unwrap_or_default(),
        None => BTreeSet::new(),
    };
    let new: BTreeSet<String> = match change {
        MemberChange::AddRemove { add, remove } => old
            .iter()
            .chain(add)
            .filter(|m| !remove.contains(*m))
            .cloned()
            .collect(),
        MemberChange::Replace(members) => members.clone(),
    };
    let added: Vec<String> = new.difference(&old).cloned().collect();
    let removed: Vec<String> = old.difference(&new).cloned().collect();
    let affected: Vec<&str> = added.iter().chain(&removed).map(String::as_str).collect();
    let lifecycles = tenure_store::live_scim_users(&mut c, &affected).await?;
    let unknown: Vec<&str> = added
        .iter()
        .map(String::as_str)
        .filter(|m| !lifecycles.contains_key(*m))
        .collect();
    if !unknown.is_empty() {
        let field = match change {
            MemberChange::AddRemove { .. } => "add",
            MemberChange::Replace(_) => "replace",
        };
        let shown: Vec<String> = unknown.iter().take(20).map(|u| format!("`{u}`")).collect();
        return Err(invalid(
            field,
            format!(
                "{} name no known SCIM user: {}{}",
                unknown.len(),
                shown.join(", "),
                if unknown.len() > 20 { ", ..." } else { "" }
            ),
        ));
    }
    let mut groups = tenure_store::scim_groups_of(&mut c, &affected).await?;
    drop(c);
    let mut out = GroupWhatIf {
        group_id: group_id.clone(),
        display_name: display_name.clone(),
        members_added: added.clone(),
        members_removed: removed.clone(),
        not_planned: Vec::new(),
        what_if: WhatIf::default(),
    };
    let mut affected = affected;
    affected.sort_unstable();
    for person in affected {
        match lifecycles.get(person).map(String::as_str) {
            Some("active") => {}
            other => {
                out.not_planned.push(NotPlanned {
                    person_id: person.to_string(),
                    reason: match other {
                        Some("left") => "has left: no access to re-plan".into(),
                        None => "no longer a SCIM user".into(),
                        Some(_) => {
                            "not hired yet: a hire reads the person's groups when it comes".into()
                        }
                    },
                });
                continue;
            }
        }
        // The person's groups as the change would leave them, ordered as stored ones are.
        let mut names: Vec<String> = groups
            .remove(person)
            .unwrap_or_default()
            .into_iter()
            .filter(|(id, name)| match &group_id {
                Some(g) => id != g,
                None => !name.eq_ignore_ascii_case(&display_name),
            })
            .map(|(_, name)| name)
            .collect();
        if new.contains(person) {
            names.push(display_name.clone());
        }
        names.sort_by_cached_key(|n| n.to_lowercase());
        let event = groups_transfer(person, names);
        let one = match what_if_event(store, rules, &event, now).await {
            Ok(w) => w,
            Err(EngineError::Conflict(m)) => {
                out.not_planned.push(NotPlanned {
                    person_id: person.to_string(),
                    reason: m,
                });
                continue;
            }
            Err(e) => return Err(e),
        };
        out.what_if.merge(one, limit);
    }
    Ok(out)
}
