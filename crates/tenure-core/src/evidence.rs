//! Evidence of one leave: when it was received and took effect, what each system had removed
//! and when (with the audit entries that prove each line), the approvals it touched, what is
//! still held, and whether the revocation target (`[sla] revoke`) was met.
//!
//! Pure: the caller reads the leave, the person's audit entries from the leave's receipt on,
//! and the accounts and grants stored now; [`leaver`] puts them together.

use crate::audit::{AuditAction, AuditEntry};
use crate::config::SlaSettings;
use crate::model::{Account, AccountState, Grant, GrantState, PersonStatus};
use crate::planner::Action;
use serde::Serialize;
use std::collections::BTreeMap;

/// The leave the evidence is about, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Leave {
    /// The `leave` event.
    pub event_id: String,
    /// The run it started.
    pub run_id: String,
    /// When tenure received it (epoch ms).
    pub received_at: i64,
    /// When it takes effect (epoch ms): the receipt, or a later last day.
    pub effective_at: i64,
    /// The `event.received` audit entry that records it.
    pub audit_seq: Option<i64>,
}

/// One audit entry a line of evidence rests on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Cited {
    /// Its sequence number in the audit trail.
    pub audit_seq: i64,
    /// When it was written (epoch ms): for a step, when the system's answer was recorded.
    pub at: i64,
    /// Its action (`step.revoke`, `approval.withdrawn`, ...).
    pub action: String,
    /// The entitlement it concerns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entitlement: Option<String>,
    /// The run it belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The operation id the connector was called with (steps).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub op_id: Option<String>,
    /// Its reason.
    pub reason: String,
}

/// Whether a target was met.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SlaCheck {
    /// The target (ms), when `[sla]` sets one.
    pub target_ms: Option<i64>,
    /// From the leave taking effect to the last removal, once nothing is left to remove.
    pub took_ms: Option<i64>,
    /// Met or missed; absent without a target, or while removal is still within it.
    pub met: Option<bool>,
}

/// What one system had removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SystemRemoval {
    /// The system.
    pub system: String,
    /// The account's disable.
    pub disabled: Option<Cited>,
    /// Each entitlement's revoke.
    pub revoked: Vec<Cited>,
    /// The account's delete (systems that keep disabled accounts have none).
    pub deleted: Option<Cited>,
    /// Access given on this system after the leave (a compensation, a rehire).
    pub granted: Vec<Cited>,
    /// Steps that failed for good.
    pub failed: Vec<Cited>,
    /// Access on this system still held now.
    pub still_held: Vec<StillHeld>,
    /// This system's revocation target (`[sla.systems.ID] revoke`, else `[sla] revoke`).
    pub sla: SlaCheck,
}

/// Access still held after a leave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct StillHeld {
    /// The entitlement; absent for the account itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entitlement: Option<String>,
    /// Its state now (`active`, `pending`, `granted`, `awaiting_approval`).
    pub state: String,
}

/// The evidence of one leave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LeaverEvidence {
    /// The person.
    pub person_id: String,
    /// Their status now.
    #[schema(value_type = String)]
    pub status: PersonStatus,
    /// The leave.
    pub leave: Leave,
    /// When removal was due to begin (epoch ms): the later of receipt and effect.
    pub due_at: i64,
    /// Each system the person had access on, or had access removed from, by id.
    pub systems: Vec<SystemRemoval>,
    /// Approvals and access requests the leave touched (withdrawn, handed over, ...).
    pub approvals: Vec<Cited>,
    /// Nothing is held on any system any more.
    pub complete: bool,
    /// The revocation target over all systems (`[sla] revoke`).
    pub sla: SlaCheck,
}

/// Nothing removed yet from `system`, with its target.
fn removal(system: &str, sla: &SlaSettings) -> SystemRemoval {
    SystemRemoval {
        system: system.to_string(),
        disabled: None,
        revoked: Vec::new(),
        deleted: None,
        granted: Vec::new(),
        failed: Vec::new(),
        still_held: Vec::new(),
        sla: SlaCheck {
            target_ms: sla.revoke_for(system),
            took_ms: None,
            met: None,
        },
    }
}

/// Puts the evidence of `leave` together from the person's audit entries written since it
/// was received (in chain order), and the accounts and grants (with each grant's system)
/// stored now. `now` decides whether a target not met yet is already missed.
#[allow(clippy::too_many_arguments)]
pub fn leaver(
    person_id: &str,
    status: PersonStatus,
    leave: Leave,
    entries: &[AuditEntry],
    accounts: &[Account],
    grants: &[(Grant, String)],
    sla: &SlaSettings,
    now: i64,
) -> LeaverEvidence {
    let due_at = leave.received_at.max(leave.effective_at);
    let mut systems: BTreeMap<String, SystemRemoval> = BTreeMap::new();
    let mut approvals = Vec::new();
    for e in entries.iter().filter(|e| {
        e.person_id.as_deref() == Some(person_id) && leave.audit_seq.is_none_or(|seq| e.seq >= seq)
    }) {
        let Ok(action) = e.action.parse::<AuditAction>() else {
            continue;
        };
        let cited = Cited {
            audit_seq: e.seq,
            at: e.at_ms,
            action: e.action.clone(),
            entitlement: e.entitlement.clone(),
            run_id: e.run_id.clone(),
            op_id: serde_json::from_str::<serde_json::Value>(&e.details)
                .ok()
                .and_then(|d| d.get("op_id").and_then(|o| o.as_str()).map(str::to_string)),
            reason: e.reason.clone(),
        };
        let text = e.action.as_str();
        if text.starts_with("approval.") || text.starts_with("request.") {
            approvals.push(cited);
            continue;
        }
        let Some(sys) = e.system.as_deref() else {
            continue;
        };
        let s = systems
            .entry(sys.to_string())
            .or_insert_with(|| removal(sys, sla));
        match action {
            AuditAction::StepDone(Action::DisableAccount) => {
                s.disabled.get_or_insert(cited);
            }
            AuditAction::StepDone(Action::DeleteAccount) => {
                s.deleted.get_or_insert(cited);
            }
            AuditAction::StepDone(Action::Revoke) => s.revoked.push(cited),
            AuditAction::StepDone(
                Action::Grant | Action::CreateAccount | Action::EnableAccount,
            ) => s.granted.push(cited),
            AuditAction::StepFailed => s.failed.push(cited),
            _ => {}
        }
    }
    for a in accounts {
        if matches!(
            a.state,
            AccountState::Active | AccountState::Pending | AccountState::Uncertain
        ) {
            systems
                .entry(a.system.clone())
                .or_insert_with(|| removal(&a.system, sla))
                .still_held
                .push(StillHeld {
                    entitlement: None,
                    state: a.state.to_string(),
                });
        }
    }
    for (g, sys) in grants {
        if matches!(
            g.state,
            GrantState::Granted
                | GrantState::Pending
                | GrantState::AwaitingApproval
                | GrantState::Uncertain
        ) {
            systems
                .entry(sys.clone())
                .or_insert_with(|| removal(sys, sla))
                .still_held
                .push(StillHeld {
                    entitlement: Some(g.entitlement.clone()),
                    state: g.state.to_string(),
                });
        }
    }
    let check = |target: Option<i64>, open: bool, last: Option<i64>| -> SlaCheck {
        let took = (!open).then(|| last.map_or(0, |at| (at - due_at).max(0)));
        let met = match (target, took) {
            (Some(t), Some(took)) => Some(took <= t),
            (Some(t), None) if now - due_at > t => Some(false),
            _ => None,
        };
        SlaCheck {
            target_ms: target,
            took_ms: took,
            met,
        }
    };
    let mut last_overall: Option<i64> = None;
    let mut open_overall = false;
    for s in systems.values_mut() {
        let last = s
            .disabled
            .iter()
            .chain(&s.revoked)
            .chain(&s.deleted)
            .map(|c| c.at)
            .max();
        let open = !s.still_held.is_empty();
        s.sla = check(s.sla.target_ms, open, last);
        open_overall |= open;
        last_overall = last_overall.max(last);
    }
    LeaverEvidence {
        person_id: person_id.to_string(),
        status,
        due_at,
        sla: check(sla.revoke_ms, open_overall, last_overall),
        leave,
        systems: systems.into_values().collect(),
        approvals,
        complete: !open_overall,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SystemSla;
    use crate::model::GrantSource;

    fn entry(
        seq: i64,
        at: i64,
        action: &str,
        system: Option<&str>,
        ent: Option<&str>,
    ) -> AuditEntry {
        AuditEntry {
            seq,
            at_ms: at,
            actor: "engine".into(),
            action: action.into(),
            person_id: Some("p1".into()),
            entitlement: ent.map(str::to_string),
            system: system.map(str::to_string),
            run_id: Some("r1".into()),
            reason: "leave".into(),
            correlation_id: None,
            details: format!(r#"{{"attempts":1,"op_id":"op-{seq}"}}"#),
            trace_id: None,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    fn leave() -> Leave {
        Leave {
            event_id: "e1".into(),
            run_id: "r1".into(),
            received_at: 1_000,
            effective_at: 1_000,
            audit_seq: Some(10),
        }
    }

    fn sla() -> SlaSettings {
        SlaSettings {
            revoke_ms: Some(500),
            provision_ms: None,
            systems: BTreeMap::from([(
                "git".to_string(),
                SystemSla {
                    revoke_ms: Some(100),
                    provision_ms: None,
                },
            )]),
        }
    }

    fn grant(ent: &str, state: GrantState) -> (Grant, String) {
        (
            Grant {
                person_id: "p1".into(),
                entitlement: ent.into(),
                source: GrantSource::Birthright,
                source_ref: "t".into(),
                state,
                granted_at: None,
                expires_at: None,
            },
            ent.split(':').next().unwrap().to_string(),
        )
    }

    /// Each system's removals cite their audit entries and operation ids; entries from before
    /// the leave and of other people are left out; times count from the leave taking effect.
    #[test]
    fn a_completed_leave_cites_each_removal_and_checks_each_target() {
        let mut other = entry(13, 1_050, "step.revoke", Some("crm"), Some("crm:admin"));
        other.person_id = Some("p2".into());
        let entries = vec![
            entry(5, 900, "step.grant", Some("crm"), Some("crm:sales")),
            entry(10, 1_000, "event.received", None, None),
            entry(11, 1_020, "approval.withdrawn", None, Some("crm:admin")),
            entry(12, 1_040, "step.disable_account", Some("crm"), None),
            other,
            entry(14, 1_060, "step.disable_account", Some("git"), None),
            entry(15, 1_150, "step.revoke", Some("git"), Some("git:write")),
            entry(16, 1_300, "step.revoke", Some("crm"), Some("crm:sales")),
            entry(17, 1_310, "step.delete_account", Some("crm"), None),
        ];
        let accounts = [
            Account {
                person_id: "p1".into(),
                system: "crm".into(),
                state: AccountState::Deleted,
                discovered: false,
            },
            Account {
                person_id: "p1".into(),
                system: "git".into(),
                state: AccountState::Disabled,
                discovered: false,
            },
        ];
        let grants = [
            grant("crm:sales", GrantState::Revoked),
            grant("git:write", GrantState::Revoked),
        ];
        let e = leaver(
            "p1",
            PersonStatus::Terminated,
            leave(),
            &entries,
            &accounts,
            &grants,
            &sla(),
            5_000,
        );
        assert!(e.complete);
        assert_eq!(e.approvals.len(), 1);
        assert_eq!(e.approvals[0].audit_seq, 11);
        let crm = &e.systems[0];
        assert_eq!(crm.system, "crm");
        assert_eq!(crm.disabled.as_ref().unwrap().audit_seq, 12);
        assert_eq!(
            crm.disabled.as_ref().unwrap().op_id.as_deref(),
            Some("op-12")
        );
        assert_eq!(
            crm.revoked.iter().map(|c| c.audit_seq).collect::<Vec<_>>(),
            [16]
        );
        assert_eq!(crm.deleted.as_ref().unwrap().audit_seq, 17);
        assert!(
            crm.granted.is_empty(),
            "the grant before the leave is not cited"
        );
        // crm's target is the global 500 ms: met in 310.
        assert_eq!(
            crm.sla,
            SlaCheck {
                target_ms: Some(500),
                took_ms: Some(310),
                met: Some(true)
            }
        );
        // git's own target is 100 ms: missed in 150.
        let git = &e.systems[1];
        assert_eq!(
            git.sla,
            SlaCheck {
                target_ms: Some(100),
                took_ms: Some(150),
                met: Some(false)
            }
        );
        assert_eq!(e.sla.took_ms, Some(310));
        assert_eq!(e.sla.met, Some(true));
    }

    /// Access still held keeps the leave open: no time taken yet, and the target counts as
    /// missed only once it has passed.
    #[test]
    fn access_still_held_keeps_the_leave_open_until_its_target_passes() {
        let entries = vec![
            entry(10, 1_000, "event.received", None, None),
            entry(11, 1_040, "step.disable_account", Some("crm"), None),
            entry(12, 1_050, "step.failed", Some("git"), Some("git:write")),
        ];
        let grants = [grant("git:write", GrantState::Granted)];
        let open = |now| {
            leaver(
                "p1",
                PersonStatus::Terminated,
                leave(),
                &entries,
                &[],
                &grants,
                &sla(),
                now,
            )
        };
        let within = open(1_050);
        assert!(!within.complete);
        let git = within.systems.iter().find(|s| s.system == "git").unwrap();
        assert_eq!(git.failed[0].audit_seq, 12);
        assert_eq!(
            git.still_held,
            [StillHeld {
                entitlement: Some("git:write".into()),
                state: "granted".into()
            }]
        );
        assert_eq!(git.sla.took_ms, None);
        assert_eq!(git.sla.met, None, "100 ms have not passed");
        assert_eq!(within.sla.met, None);
        let late = open(1_200);
        assert_eq!(
            late.systems
                .iter()
                .find(|s| s.system == "git")
                .unwrap()
                .sla
                .met,
            Some(false)
        );
        assert_eq!(late.sla.met, None, "the global 500 ms have not passed");
        assert_eq!(open(1_600).sla.met, Some(false));
        // crm holds nothing: done in 40 ms.
        assert_eq!(
            late.systems
                .iter()
                .find(|s| s.system == "crm")
                .unwrap()
                .sla
                .met,
            Some(true)
        );
        // Without targets nothing is judged.
        let none = leaver(
            "p1",
            PersonStatus::Terminated,
            leave(),
            &entries,
            &[],
            &grants,
            &SlaSettings::default(),
            10_000,
        );
        assert_eq!(none.sla.met, None);
    }
}
