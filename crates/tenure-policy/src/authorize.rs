//! Policy's decision on the grants of one plan: Cedar policy, separation of duties and what
//! an access request adds. Pure: it reads nothing and writes nothing; the engine hands it what
//! it loaded and stores what it says.

use crate::{Approver, Decision, GrantContext, PolicyEngine};
use std::collections::{BTreeMap, BTreeSet};
use tenure_core::approval::StageKind;
use tenure_core::config::{ClientFacts, Config};
use tenure_core::planner::{self};
use tenure_core::sod::{self, SodEffect};
use tenure_core::{Grant, GrantState, Person};

/// Policy's decision on one grant a plan would make.
pub struct GrantDecision {
    /// The entitlement.
    pub entitlement: String,
    /// What policy (and separation of duties) decided.
    pub decision: Decision,
    /// Who must approve, per required approval: (approver, person or team if known, policy).
    pub approvers: Vec<(Approver, Option<String>, String)>,
    /// Held already: a denial revokes it.
    pub held: bool,
    /// Separation-of-duties rules that would have denied it and that break-glass overrode
    /// (`sod:...` ids).
    pub overridden: Vec<String>,
}

/// What policy said about the grants of one plan, with what an access request adds: its
/// configured stages, or no approval at all for break-glass.
#[derive(Default)]
pub struct Authorized {
    decisions: Vec<GrantDecision>,
    /// Stages required on top of policy's, per entitlement (access requests).
    extra: BTreeMap<String, Vec<StageKind>>,
    /// Entitlements whose approval is waived (break-glass).
    waived: BTreeSet<String>,
}

impl GrantDecision {
    /// The decision in one word, as metrics label it: `deny`, `approval_required` or `allow`.
    pub fn outcome(&self) -> &'static str {
        if !self.decision.allowed {
            "deny"
        } else if self.decision.needs_approval() {
            "approval_required"
        } else {
            "allow"
        }
    }
}

impl Authorized {
    /// Every grant decided, in the order decided.
    pub fn decisions(&self) -> &[GrantDecision] {
        &self.decisions
    }

    /// Applies an access request: its entitlement needs the configured request stages, or
    /// nothing at all when it is break-glass.
    pub fn for_request(&mut self, entitlement: &str, break_glass: bool, stages: &[StageKind]) {
        if break_glass {
            self.waived.insert(entitlement.to_string());
        } else if !stages.is_empty() {
            self.extra.insert(entitlement.to_string(), stages.to_vec());
        }
    }

    /// The approval stages each waiting entitlement needs (policy's and the request's).
    pub fn stages(&self) -> BTreeMap<String, Vec<StageKind>> {
        let mut out: BTreeMap<String, Vec<StageKind>> = self.extra.clone();
        for d in self.awaiting_policy() {
            let kinds = out.entry(d.entitlement.clone()).or_default();
            for a in &d.decision.approvals {
                let k = match a.approver {
                    Approver::Manager => StageKind::Manager,
                    Approver::Owner => StageKind::Owner,
                    Approver::ClientOwner => StageKind::ClientOwner,
                };
                if !kinds.contains(&k) {
                    kinds.push(k);
                }
            }
        }
        out.retain(|e, _| !self.waived.contains(e));
        out
    }

    pub fn denied(&self) -> impl Iterator<Item = &GrantDecision> {
        self.decisions.iter().filter(|d| !d.decision.allowed)
    }

    /// Every entitlement denied, with the policies that denied it.
    pub fn denials(&self) -> std::collections::BTreeMap<&str, &[String]> {
        self.denied()
            .map(|d| (d.entitlement.as_str(), d.decision.reasons.as_slice()))
            .collect()
    }

    /// The policies (Cedar ids, `sod:...` rules) that denied `entitlement`, if they did.
    pub fn denied_by(&self, entitlement: &str) -> Option<&[String]> {
        self.denied()
            .find(|d| d.entitlement == entitlement)
            .map(|d| d.decision.reasons.as_slice())
    }

    /// The separation-of-duties rules break-glass overrode to let `entitlement` through.
    pub fn overridden(&self, entitlement: &str) -> &[String] {
        self.decisions
            .iter()
            .find(|d| d.entitlement == entitlement)
            .map_or(&[], |d| d.overridden.as_slice())
    }

    pub fn overridden_json(&self) -> Vec<serde_json::Value> {
        self.decisions
            .iter()
            .filter(|d| !d.overridden.is_empty())
            .map(|d| serde_json::json!({ "entitlement": d.entitlement, "policies": d.overridden }))
            .collect()
    }

    pub fn awaiting_policy(&self) -> impl Iterator<Item = &GrantDecision> {
        self.decisions
            .iter()
            .filter(|d| d.decision.needs_approval())
    }

    pub fn awaiting(&self) -> impl Iterator<Item = &GrantDecision> {
        self.awaiting_policy()
            .filter(|d| !self.waived.contains(&d.entitlement))
    }

    pub fn needs_approval(&self, entitlement: &str) -> bool {
        !self.waived.contains(entitlement)
            && (self.extra.contains_key(entitlement)
                || self.awaiting().any(|d| d.entitlement == entitlement))
    }

    pub fn denied_json(&self) -> Vec<serde_json::Value> {
        self.denied()
            .map(|d| {
                let mut j = serde_json::json!({
                    "entitlement": d.entitlement,
                    "policies": d.decision.reasons,
                    "reason": d.decision.explain(),
                    "errors": d.decision.errors,
                });
                if d.held {
                    j["revoked"] = true.into();
                }
                j
            })
            .collect()
    }

    pub fn awaiting_json(&self) -> Vec<serde_json::Value> {
        self.awaiting()
            .map(|d| {
                serde_json::json!({
                    "entitlement": d.entitlement,
                    "approvals": d.approvers.iter().map(|(a, who, policy)| serde_json::json!({
                        "approver": a, "who": who, "policy": policy,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect()
    }

    /// The run's note: what was denied (with the deciding policies) and what waits for whom.
    pub fn add_to_note(&self, note: &mut serde_json::Map<String, serde_json::Value>) {
        let denied = self.denied_json();
        if !denied.is_empty() {
            note.insert("denied".into(), denied.into());
        }
        let awaiting = self.awaiting_json();
        if !awaiting.is_empty() {
            note.insert("awaiting_approval".into(), awaiting.into());
        }
        let overridden = self.overridden_json();
        if !overridden.is_empty() {
            note.insert("break_glass_overrides".into(), overridden.into());
        }
    }

    /// The `run.planned` audit entry: every decision with its reasons, then the denied grants
    /// and the approvals required.
    pub fn add_to_audit(&self, details: &mut serde_json::Map<String, serde_json::Value>) {
        if self.decisions.is_empty() {
            return;
        }
        let all: Vec<_> = self
            .decisions
            .iter()
            .map(|d| {
                let outcome = if !d.decision.allowed {
                    "deny"
                } else if d.decision.needs_approval() {
                    "approval_required"
                } else {
                    "allow"
                };
                serde_json::json!({
                    "entitlement": d.entitlement,
                    "decision": outcome,
                    "policies": d.decision.reasons,
                    "errors": d.decision.errors,
                })
            })
            .collect();
        details.insert("authorization".into(), all.into());
        details.insert("denied".into(), self.denied_json().into());
        details.insert("awaiting_approval".into(), self.awaiting_json().into());
        let overridden = self.overridden_json();
        if !overridden.is_empty() {
            details.insert("break_glass_overrides".into(), overridden.into());
        }
    }
}

/// Asks policy about every grant the plan would make (wanted, not held), then separation of
/// duties: a grant that would complete a toxic combination with what the person keeps is
/// denied, or waits for the rule's exception approver. Denied entitlements leave `desired`, so
/// no step is planned for them, nor an account needed only for them. Held entitlements are
/// asked about again only with `rejudge_held` (the facts policy reads changed): one policy now
/// forbids leaves `desired` too, so the plan revokes it; separation of duties never takes held
/// access away.
///
/// Access already on its way (stored `pending` by an earlier run or by the access request this
/// run carries out, or waiting for an approval) is judged like any other: being stored first
/// exempts nothing. It is judged before what is new, so of two grants that complete a
/// combination, the one planned first keeps its place; within each group, in id order.
///
/// `break_glass` is the entitlement a break-glass request asks for: a separation-of-duties
/// `deny` rule that `[approvals] break_glass_may_override` names lets it through, recorded as
/// an override; any other denial stands.
#[allow(clippy::too_many_arguments)]
pub fn authorize_grants(
    config: &Config,
    policy: &PolicyEngine,
    clients: &ClientFacts,
    person: &Person,
    desired: &mut planner::Desired,
    grants: &[Grant],
    rejudge_held: bool,
    break_glass: Option<&str>,
) -> Authorized {
    let mut out = Authorized::default();
    if !policy.is_enforcing() && config.sod.is_empty() {
        return out;
    }
    let held: BTreeSet<&str> = grants
        .iter()
        .filter(|g| g.is_held())
        .map(|g| g.entitlement.as_str())
        .collect();
    let on_its_way: BTreeSet<&str> = grants
        .iter()
        .filter(|g| matches!(g.state, GrantState::Pending | GrantState::AwaitingApproval))
        .map(|g| g.entitlement.as_str())
        .collect();
    // What the person keeps once this plan has run: what they hold and still want, then each
    // grant as it is allowed.
    let mut holding: BTreeSet<String> = desired
        .entitlements
        .keys()
        .filter(|e| held.contains(e.as_str()))
        .cloned()
        .collect();
    let order: Vec<(&String, &planner::Want)> = {
        let (first, new): (Vec<_>, Vec<_>) = desired
            .entitlements
            .iter()
            .partition(|(id, _)| held.contains(id.as_str()) || on_its_way.contains(id.as_str()));
        first.into_iter().chain(new).collect()
    };
    for (id, want) in order {
        // Held access is asked about again only when the facts policy reads changed: if policy
        // now forbids it, it is revoked; if it only asks for an approval, the approval already
        // given stands.
        let is_held = held.contains(id.as_str());
        if is_held && !rejudge_held {
            continue;
        }
        let Some(ent) = config.entitlements.get(id) else {
            continue;
        };
        let client = ent.client.as_deref().and_then(|c| clients.get(config, c));
        let mut decision = if policy.is_enforcing() {
            policy.authorize(
                person,
                ent,
                client,
                GrantContext {
                    source: want.source,
                    source_ref: &want.source_ref,
                },
            )
        } else {
            Decision {
                allowed: true,
                ..Decision::default()
            }
        };
        if is_held {
            decision.approvals.clear();
        }
        // Separation of duties decides what may be added: everything not held yet.
        let mut overridden = Vec::new();
        if decision.allowed && !is_held {
            let may_override = break_glass == Some(id.as_str());
            overridden = apply_sod(config, &holding, id, may_override, &mut decision);
        }
        if decision.allowed {
            holding.insert(id.clone());
        } else {
            holding.remove(id);
        }
        let approvers = decision
            .approvals
            .iter()
            .map(|a| {
                let who = match a.approver {
                    Approver::Owner => ent.owner.clone(),
                    Approver::Manager => person.manager.clone(),
                    Approver::ClientOwner => client
                        .and_then(|c| c.attributes.get("owner"))
                        .and_then(|o| o.as_str())
                        .map(str::to_string),
                };
                (a.approver, who, a.policy.clone())
            })
            .collect();
        out.decisions.push(GrantDecision {
            entitlement: id.clone(),
            decision,
            approvers,
            held: is_held,
            overridden,
        });
    }
    let denied: Vec<String> = out.denied().map(|d| d.entitlement.clone()).collect();
    if !denied.is_empty() {
        for id in &denied {
            desired.entitlements.remove(id);
        }
        desired.systems = desired
            .entitlements
            .keys()
            .filter_map(|e| config.entitlements.get(e))
            .map(|e| e.system.clone())
            .collect();
    }
    out
}

/// Applies the separation-of-duties rules that granting `adding` on top of `holding` would
/// violate: a denying rule denies (its id, `sod:...`, becomes the reason); an exception rule
/// adds its approver to the approvals the grant waits for. With `break_glass`, a denying rule
/// that `[approvals] break_glass_may_override` names does not deny: its id is returned, for the
/// grant to be recorded as an override.
fn apply_sod(
    config: &Config,
    holding: &BTreeSet<String>,
    adding: &str,
    break_glass: bool,
    decision: &mut Decision,
) -> Vec<String> {
    let mut overridden = Vec::new();
    for rule in sod::completed_by(&config.sod, holding, adding) {
        match &rule.effect {
            SodEffect::Deny
                if break_glass && config.approvals.break_glass_may_override.contains(&rule.id) =>
            {
                overridden.push(rule.reason_id());
            }
            SodEffect::Deny => {
                if decision.allowed {
                    decision.allowed = false;
                    decision.reasons.clear();
                    decision.approvals.clear();
                }
                decision.reasons.push(rule.reason_id());
            }
            SodEffect::Approval { approver } if decision.allowed => {
                // Validated against the same list when the configuration was loaded.
                if let Ok(approver) = approver.parse::<Approver>() {
                    decision.approvals.push(crate::Approval {
                        approver,
                        policy: rule.reason_id(),
                    });
                }
            }
            SodEffect::Approval { .. } => {}
        }
    }
    if !decision.allowed {
        // Denied by another rule: nothing was overridden.
        overridden.clear();
    }
    overridden
}
