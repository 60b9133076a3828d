//! Approval chains, as plain data: stages in order (manager, entitlement owner, client owner),
//! each with its approvers and a rule (any one of them, or all), and the pure functions that
//! build a chain, record a decision and escalate a stage that waited too long.
//!
//! The rules live here and only here: nobody approves a request they made or a grant to
//! themselves; a delegate acts for one approver; a deny anywhere ends the chain; the chain is
//! approved once its last stage is.

use crate::model::string_enum;
use serde::{Deserialize, Serialize};

string_enum!(
    /// Who approves a stage, taken from the model.
    StageKind {
        /// The beneficiary's manager.
        Manager => "manager",
        /// The entitlement's owner (a person or a team).
        Owner => "owner",
        /// The owner of the client the entitlement belongs to.
        ClientOwner => "client_owner",
    }
);

string_enum!(
    /// How many of a stage's approvers must approve.
    StageRule {
        /// One approval completes the stage.
        Any => "any",
        /// Every approver must approve.
        All => "all",
    }
);

string_enum!(
    /// Where an approval stands.
    ApprovalState {
        /// Waiting for a decision.
        Pending => "pending",
        /// Every stage approved.
        Approved => "approved",
        /// Someone denied it.
        Denied => "denied",
        /// Nobody decided before the deadline: denied automatically.
        Expired => "expired",
        /// The grant is no longer wanted (a leave, a cancel, or a later run of the person that
        /// no longer wants it came first): nothing is granted.
        Withdrawn => "withdrawn",
    }
);

string_enum!(
    /// Where an access request stands: its approval's outcome, once there is one.
    RequestState {
        /// Waiting for its approval.
        Pending => "pending",
        /// Approved (or break-glass): its run grants the access.
        Approved => "approved",
        /// Denied by an approver or by policy.
        Denied => "denied",
        /// Nobody decided before the deadline.
        Expired => "expired",
        /// No longer wanted before it was decided.
        Withdrawn => "withdrawn",
    }
);

impl From<ApprovalState> for RequestState {
    fn from(s: ApprovalState) -> RequestState {
        match s {
            ApprovalState::Pending => RequestState::Pending,
            ApprovalState::Approved => RequestState::Approved,
            ApprovalState::Denied => RequestState::Denied,
            ApprovalState::Expired => RequestState::Expired,
            ApprovalState::Withdrawn => RequestState::Withdrawn,
        }
    }
}

string_enum!(
    /// A decision on an approval.
    Verdict { Approve => "approve", Deny => "deny" }
);

/// The stage order every chain follows, whatever order the stages were asked for in.
pub const STAGE_ORDER: [StageKind; 3] =
    [StageKind::Manager, StageKind::Owner, StageKind::ClientOwner];

/// One stage of a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Stage {
    /// Whose approval this stage asks for.
    pub kind: StageKind,
    /// Any one approver, or all of them.
    pub rule: StageRule,
    /// Who may decide (person ids), escalation targets included.
    pub approvers: Vec<String>,
    /// Approvers (or those they stood in for) who approved.
    pub approved_by: Vec<String>,
    /// How many times the stage was escalated.
    pub escalations: u32,
}

impl Stage {
    /// Whether the stage's rule is met.
    pub fn is_satisfied(&self) -> bool {
        match self.rule {
            StageRule::Any => !self.approved_by.is_empty(),
            StageRule::All => self.approvers.iter().all(|a| self.approved_by.contains(a)),
        }
    }
}

/// A chain of stages decided in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Chain {
    /// The stages, in order.
    pub stages: Vec<Stage>,
    /// The stage being decided now.
    pub current: usize,
    /// Where the chain stands.
    pub state: ApprovalState,
}

/// The people an approval is about: neither may decide it.
#[derive(Debug, Clone, Copy)]
pub struct Parties<'a> {
    /// Who asked (the beneficiary, their manager, or an operator).
    pub requester: &'a str,
    /// Who would hold the access.
    pub beneficiary: &'a str,
}

impl Parties<'_> {
    /// Whether `who` is the requester or the beneficiary.
    pub fn involves(&self, who: &str) -> bool {
        who == self.requester || who == self.beneficiary
    }
}

/// Why a chain cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// A stage has nobody who may decide it (the model names nobody, or only the parties
    /// themselves and nobody above them).
    #[error(
        "no one can approve the {0} stage: the model names no approver other than the requester or the beneficiary"
    )]
    NoApprover(StageKind),
}

/// Why a decision is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecisionError {
    /// The chain is already decided.
    #[error("the approval is already {0}")]
    NotPending(ApprovalState),
    /// The actor asked for the access, or would hold it.
    #[error("`{0}` cannot decide an approval they requested or that grants them access")]
    SelfApproval(String),
    /// The actor is not an approver of the current stage, nor a delegate of one.
    #[error("`{0}` is not an approver of the current stage ({1})")]
    NotAnApprover(String, StageKind),
    /// The approver already approved this stage.
    #[error("`{0}` already approved this stage")]
    AlreadyApproved(String),
}

/// What a decision did to the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The stage still waits for more approvers (rule `all`).
    StageWaiting,
    /// The stage is done and the next one begins.
    NextStage(usize),
    /// Every stage approved.
    Approved,
    /// Denied.
    Denied,
}

/// How far up the management line a stage looks for someone who is not a party.
const MAX_CLIMB: usize = 8;

/// Replaces each party among `candidates` by the first manager above them who is not a party.
fn without_parties(
    candidates: Vec<String>,
    parties: Parties<'_>,
    manager_of: &dyn Fn(&str) -> Option<String>,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in candidates {
        let mut who = Some(c);
        let mut climbed = 0;
        while let Some(w) = &who {
            if !parties.involves(w) {
                break;
            }
            climbed += 1;
            who = if climbed > MAX_CLIMB {
                None
            } else {
                manager_of(w)
            };
        }
        if let Some(w) = who
            && !out.contains(&w)
        {
            out.push(w);
        }
    }
    out
}

/// Builds the chain for the stage kinds asked for (by policy and configuration), in the fixed
/// order manager, owner, client owner. `approvers_of` names each stage's approvers from the
/// model; approvers who are parties are replaced by their manager (nobody approves for
/// themselves), and `rule_of` gives each stage's rule.
pub fn build_chain(
    kinds: &[StageKind],
    approvers_of: &dyn Fn(StageKind) -> Vec<String>,
    rule_of: &dyn Fn(StageKind) -> StageRule,
    manager_of: &dyn Fn(&str) -> Option<String>,
    parties: Parties<'_>,
) -> Result<Chain, ChainError> {
    let mut stages = Vec::new();
    for kind in STAGE_ORDER.into_iter().filter(|k| kinds.contains(k)) {
        let approvers = without_parties(approvers_of(kind), parties, manager_of);
        if approvers.is_empty() {
            return Err(ChainError::NoApprover(kind));
        }
        stages.push(Stage {
            kind,
            rule: rule_of(kind),
            approvers,
            approved_by: Vec::new(),
            escalations: 0,
        });
    }
    let state = if stages.is_empty() {
        ApprovalState::Approved
    } else {
        ApprovalState::Pending
    };
    Ok(Chain {
        stages,
        current: 0,
        state,
    })
}

impl Chain {
    /// The stage being decided, while the chain is pending.
    pub fn current_stage(&self) -> Option<&Stage> {
        (self.state == ApprovalState::Pending)
            .then(|| self.stages.get(self.current))
            .flatten()
    }

    /// For whom `actor` may decide now: themselves if they are an approver of the current stage,
    /// else the first approver who delegated to them (`delegators`: who delegated to `actor`
    /// for today). `None` if they may not decide.
    pub fn acts_for(&self, actor: &str, delegators: &[String]) -> Option<String> {
        let stage = self.current_stage()?;
        if stage.approvers.iter().any(|a| a == actor) {
            return Some(actor.to_string());
        }
        stage
            .approvers
            .iter()
            .find(|a| delegators.contains(a) && !stage.approved_by.contains(a))
            .cloned()
    }

    /// Records `actor`'s decision, acting for `on_behalf_of` (themselves or a delegator; see
    /// [`Chain::acts_for`]).
    pub fn decide(
        &mut self,
        actor: &str,
        on_behalf_of: &str,
        verdict: Verdict,
        parties: Parties<'_>,
    ) -> Result<Progress, DecisionError> {
        if self.state != ApprovalState::Pending {
            return Err(DecisionError::NotPending(self.state));
        }
        if parties.involves(actor) || parties.involves(on_behalf_of) {
            return Err(DecisionError::SelfApproval(actor.to_string()));
        }
        let stage = &mut self.stages[self.current];
        if !stage.approvers.iter().any(|a| a == on_behalf_of) {
            return Err(DecisionError::NotAnApprover(actor.to_string(), stage.kind));
        }
        if verdict == Verdict::Deny {
            self.state = ApprovalState::Denied;
            return Ok(Progress::Denied);
        }
        if stage.approved_by.iter().any(|a| a == on_behalf_of) {
            return Err(DecisionError::AlreadyApproved(on_behalf_of.to_string()));
        }
        stage.approved_by.push(on_behalf_of.to_string());
        if !stage.is_satisfied() {
            return Ok(Progress::StageWaiting);
        }
        Ok(self.finish_stage())
    }

    /// Escalates the current stage to the managers of its approvers who have not approved yet
    /// (parties excluded): under `any` they join the approvers, under `all` each stands in for
    /// the approver who did not answer. Returns who was added; empty if nobody is above.
    pub fn escalate(
        &mut self,
        manager_of: &dyn Fn(&str) -> Option<String>,
        parties: Parties<'_>,
    ) -> Vec<String> {
        if self.state != ApprovalState::Pending {
            return Vec::new();
        }
        let stage = &mut self.stages[self.current];
        let waiting: Vec<String> = stage
            .approvers
            .iter()
            .filter(|a| !stage.approved_by.contains(a))
            .cloned()
            .collect();
        let mut added = Vec::new();
        for w in waiting {
            let Some(m) =
                without_parties(manager_of(&w).into_iter().collect(), parties, manager_of)
                    .into_iter()
                    .next()
            else {
                continue;
            };
            if stage.rule == StageRule::All {
                stage.approvers.retain(|a| a != &w);
            }
            if !stage.approvers.contains(&m) {
                stage.approvers.push(m.clone());
                added.push(m);
            }
        }
        if !added.is_empty() {
            stage.escalations += 1;
        }
        if stage.is_satisfied() {
            // A stand-in had already approved: the stage is done.
            self.finish_stage();
        }
        added
    }

    /// Hands the part of `gone` (an approver who left) to the first manager above them who is
    /// not a party, as [`Chain::escalate`] would: in the current stage and every later one that
    /// names them and that they have not approved, the manager stands in for them (under `any`
    /// and `all` alike, since someone who left decides nothing). A stage with nobody above
    /// `gone` keeps them, and waits for its escalation or the deadline. Returns who was added.
    pub fn hand_over(
        &mut self,
        gone: &str,
        manager_of: &dyn Fn(&str) -> Option<String>,
        parties: Parties<'_>,
    ) -> Vec<String> {
        if self.state != ApprovalState::Pending {
            return Vec::new();
        }
        let Some(m) = without_parties(manager_of(gone).into_iter().collect(), parties, manager_of)
            .into_iter()
            .next()
            .filter(|m| m != gone)
        else {
            return Vec::new();
        };
        let mut added = Vec::new();
        for (i, stage) in self.stages.iter_mut().enumerate().skip(self.current) {
            if !stage.approvers.iter().any(|a| a == gone)
                || stage.approved_by.iter().any(|a| a == gone)
            {
                continue;
            }
            stage.approvers.retain(|a| a != gone);
            if !stage.approvers.contains(&m) {
                stage.approvers.push(m.clone());
                if !added.contains(&m) {
                    added.push(m.clone());
                }
            }
            if i == self.current {
                stage.escalations += 1;
            }
        }
        if self
            .stages
            .get(self.current)
            .is_some_and(Stage::is_satisfied)
        {
            // Under `all`, the others had approved and the stand-in already had too.
            self.finish_stage();
        }
        added
    }

    fn finish_stage(&mut self) -> Progress {
        if self.current + 1 < self.stages.len() {
            self.current += 1;
            Progress::NextStage(self.current)
        } else {
            self.state = ApprovalState::Approved;
            Progress::Approved
        }
    }

    /// The deadline passed with the chain still pending: it is denied automatically.
    pub fn expire(&mut self) -> bool {
        if self.state == ApprovalState::Pending {
            self.state = ApprovalState::Expired;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn org() -> HashMap<&'static str, &'static str> {
        // ann -> mia -> ceo; bob -> mia; owner1 -> cto
        HashMap::from([
            ("ann", "mia"),
            ("bob", "mia"),
            ("mia", "ceo"),
            ("owner1", "cto"),
        ])
    }

    fn chain(kinds: &[StageKind], requester: &str, beneficiary: &str) -> Result<Chain, ChainError> {
        let o = org();
        let manager_of = move |p: &str| o.get(p).map(|m| m.to_string());
        build_chain(
            kinds,
            &|k| match k {
                StageKind::Manager => manager_of(beneficiary).into_iter().collect(),
                StageKind::Owner => vec!["owner1".into(), "owner2".into()],
                StageKind::ClientOwner => vec!["client1".into()],
            },
            &|k| {
                if k == StageKind::Owner {
                    StageRule::All
                } else {
                    StageRule::Any
                }
            },
            &manager_of,
            Parties {
                requester,
                beneficiary,
            },
        )
    }

    const P: Parties<'static> = Parties {
        requester: "ann",
        beneficiary: "ann",
    };

    #[test]
    fn stages_follow_the_fixed_order_and_all_needs_everyone() {
        let mut c = chain(
            &[StageKind::ClientOwner, StageKind::Manager, StageKind::Owner],
            "ann",
            "ann",
        )
        .unwrap();
        let kinds: Vec<_> = c.stages.iter().map(|s| s.kind).collect();
        assert_eq!(kinds, STAGE_ORDER);
        assert_eq!(
            c.decide("mia", "mia", Verdict::Approve, P),
            Ok(Progress::NextStage(1))
        );
        assert_eq!(
            c.decide("owner1", "owner1", Verdict::Approve, P),
            Ok(Progress::StageWaiting)
        );
        assert_eq!(
            c.decide("owner1", "owner1", Verdict::Approve, P),
            Err(DecisionError::AlreadyApproved("owner1".into()))
        );
        assert_eq!(
            c.decide("owner2", "owner2", Verdict::Approve, P),
            Ok(Progress::NextStage(2))
        );
        assert_eq!(
            c.decide("mia", "mia", Verdict::Approve, P),
            Err(DecisionError::NotAnApprover(
                "mia".into(),
                StageKind::ClientOwner
            ))
        );
        assert_eq!(
            c.decide("client1", "client1", Verdict::Approve, P),
            Ok(Progress::Approved)
        );
        assert_eq!(c.state, ApprovalState::Approved);
    }

    #[test]
    fn a_deny_ends_the_chain() {
        let mut c = chain(&[StageKind::Manager, StageKind::Owner], "ann", "ann").unwrap();
        assert_eq!(
            c.decide("mia", "mia", Verdict::Deny, P),
            Ok(Progress::Denied)
        );
        assert_eq!(
            c.decide("owner1", "owner1", Verdict::Approve, P),
            Err(DecisionError::NotPending(ApprovalState::Denied))
        );
    }

    #[test]
    fn a_manager_asking_for_their_report_is_replaced_by_their_own_manager() {
        // mia asks for ann: ann's manager is mia, a party, so mia's manager decides.
        let c = chain(&[StageKind::Manager], "mia", "ann").unwrap();
        assert_eq!(c.stages[0].approvers, vec!["ceo".to_string()]);
        let mut c2 = c.clone();
        let parties = Parties {
            requester: "mia",
            beneficiary: "ann",
        };
        assert_eq!(
            c2.decide("mia", "ceo", Verdict::Approve, parties),
            Err(DecisionError::SelfApproval("mia".into()))
        );
    }

    #[test]
    fn a_stage_nobody_can_decide_is_an_error() {
        // bob has no owner-type approver besides himself when he owns the entitlement.
        let r = build_chain(
            &[StageKind::Owner],
            &|_| vec!["solo".into()],
            &|_| StageRule::Any,
            &|_| None,
            Parties {
                requester: "solo",
                beneficiary: "solo",
            },
        );
        assert_eq!(r, Err(ChainError::NoApprover(StageKind::Owner)));
    }

    #[test]
    fn delegates_act_for_their_delegator_only() {
        let c = chain(&[StageKind::Manager], "ann", "ann").unwrap();
        assert_eq!(c.acts_for("sub", &["mia".into()]), Some("mia".into()));
        assert_eq!(c.acts_for("sub", &["owner1".into()]), None);
        assert_eq!(c.acts_for("mia", &[]), Some("mia".into()));
    }

    #[test]
    fn escalation_adds_the_managers_of_those_who_did_not_answer() {
        let o = org();
        let manager_of = move |p: &str| o.get(p).map(|m| m.to_string());
        let mut c = chain(&[StageKind::Owner], "ann", "ann").unwrap();
        c.decide("owner2", "owner2", Verdict::Approve, P).unwrap();
        assert_eq!(c.escalate(&manager_of, P), vec!["cto".to_string()]);
        assert_eq!(c.stages[0].escalations, 1);
        // Nobody above the cto: a second escalation adds nobody.
        assert_eq!(c.escalate(&manager_of, P), Vec::<String>::new());
        assert_eq!(
            c.stages[0].approvers,
            vec!["owner2".to_string(), "cto".into()]
        );
        assert_eq!(
            c.decide("cto", "cto", Verdict::Approve, P),
            Ok(Progress::Approved)
        );
        assert!(!c.expire());
    }

    #[test]
    fn a_leaver_s_part_goes_to_their_manager_in_every_stage_still_open() {
        let o = org();
        let manager_of = move |p: &str| o.get(p).map(|m| m.to_string());
        // bob asks for himself; mia (his manager) and owner1 (all-stage) decide.
        let parties = Parties {
            requester: "bob",
            beneficiary: "bob",
        };
        let mut c = build_chain(
            &[StageKind::Manager, StageKind::Owner],
            &|k| match k {
                StageKind::Manager => vec!["mia".into()],
                _ => vec!["owner1".into(), "mia".into()],
            },
            &|k| {
                if k == StageKind::Owner {
                    StageRule::All
                } else {
                    StageRule::Any
                }
            },
            &manager_of,
            parties,
        )
        .unwrap();
        // mia leaves: the ceo stands in for her in both stages.
        assert_eq!(c.hand_over("mia", &manager_of, parties), vec!["ceo"]);
        assert_eq!(c.stages[0].approvers, vec!["ceo".to_string()]);
        assert_eq!(c.stages[0].escalations, 1);
        assert_eq!(
            c.stages[1].approvers,
            vec!["owner1".to_string(), "ceo".into()]
        );
        assert_eq!(
            c.decide("mia", "mia", Verdict::Approve, parties),
            Err(DecisionError::NotAnApprover(
                "mia".into(),
                StageKind::Manager
            ))
        );
        assert_eq!(
            c.decide("ceo", "ceo", Verdict::Approve, parties),
            Ok(Progress::NextStage(1))
        );
        // owner1 approves and leaves: nothing of theirs is left to hand over.
        assert_eq!(
            c.decide("owner1", "owner1", Verdict::Approve, parties),
            Ok(Progress::StageWaiting)
        );
        assert!(c.hand_over("owner1", &manager_of, parties).is_empty());
        // Nobody above the ceo: the ceo stays and the stage waits for the deadline.
        assert!(c.hand_over("ceo", &manager_of, parties).is_empty());
        assert!(c.stages[1].approvers.contains(&"ceo".to_string()));
        assert_eq!(
            c.decide("ceo", "ceo", Verdict::Approve, parties),
            Ok(Progress::Approved)
        );
    }

    #[test]
    fn a_hand_over_to_someone_who_already_approved_completes_the_stage() {
        let o = org();
        let manager_of = move |p: &str| o.get(p).map(|m| m.to_string());
        let parties = Parties {
            requester: "x",
            beneficiary: "x",
        };
        let mut c = build_chain(
            &[StageKind::Owner],
            &|_| vec!["mia".into(), "ceo".into()],
            &|_| StageRule::All,
            &manager_of,
            parties,
        )
        .unwrap();
        c.decide("ceo", "ceo", Verdict::Approve, parties).unwrap();
        assert!(c.hand_over("mia", &manager_of, parties).is_empty());
        assert_eq!(c.state, ApprovalState::Approved);
    }

    fn arb_actor() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "ann", "mia", "ceo", "owner1", "owner2", "client1", "cto", "sub",
        ])
        .prop_map(str::to_string)
    }

    proptest! {
        /// Whatever sequence of decisions, escalations and expiry: a chain is approved only if
        /// every stage is satisfied by approvers who are not parties, and nothing changes once it
        /// is decided.
        #[test]
        fn chains_are_never_approved_by_a_party_or_with_a_stage_unmet(
            ops in prop::collection::vec((arb_actor(), any::<bool>(), 0u8..10), 0..40),
            requester in prop::sample::select(vec!["ann", "mia"]),
        ) {
            let o = org();
            let manager_of = move |p: &str| o.get(p).map(|m| m.to_string());
            let parties = Parties { requester, beneficiary: "ann" };
            let mut c = chain(&[StageKind::Manager, StageKind::Owner, StageKind::ClientOwner], requester, "ann").unwrap();
            for (actor, approve, op) in ops {
                let before = c.clone();
                match op {
                    0 => { c.escalate(&manager_of, parties); }
                    1 => { c.expire(); }
                    _ => {
                        let verdict = if approve || op > 3 { Verdict::Approve } else { Verdict::Deny };
                        let on_behalf = c.acts_for(&actor, &[]).unwrap_or(actor.clone());
                        if c.decide(&actor, &on_behalf, verdict, parties).is_err() {
                            prop_assert_eq!(&c, &before, "a refused decision changes nothing");
                        }
                    }
                }
                if before.state != ApprovalState::Pending {
                    prop_assert_eq!(&c, &before, "a decided chain never changes");
                }
            }
            for s in &c.stages {
                prop_assert!(s.approved_by.iter().all(|a| !parties.involves(a)));
                prop_assert!(s.approvers.iter().all(|a| !parties.involves(a)));
            }
            if c.state == ApprovalState::Approved {
                prop_assert!(c.stages.iter().all(Stage::is_satisfied));
            }
        }
    }

    #[test]
    fn request_states_read_back_and_follow_their_approval() {
        for s in RequestState::ALL {
            assert_eq!(s.as_str().parse::<RequestState>().unwrap(), *s);
        }
        for a in ApprovalState::ALL {
            assert_eq!(RequestState::from(*a).as_str(), a.as_str());
        }
        let e = "granted".parse::<RequestState>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown RequestState `granted`, expected one of: pending, approved, denied, expired, withdrawn"
        );
    }
}
