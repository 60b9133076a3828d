//! The planner: desired access (role templates, active engagements, live requests) minus current
//! access (accounts and grants) gives an ordered plan of steps. Pure and deterministic.
//!
//! Phases order the steps of one run on each system (every system advances on its own, as the
//! `run` module decides); steps within a phase run in parallel:
//! - phase 0: create or enable accounts that are needed, update changed attributes, revoke
//!   entitlements that are no longer wanted on accounts that stay, and disable accounts that
//!   are no longer needed (a leaver's every account is disabled here, on all systems at once);
//! - phase 1: grant new entitlements (their accounts exist now) and revoke what remains on the
//!   accounts disabled in phase 0;
//! - phase 2: delete disabled accounts on systems whose retention is `delete`.

use crate::config::{ClientFacts, Config};
use crate::model::{
    Account, AccountState, Engagement, Grant, GrantSource, GrantState, Person, PersonStatus,
    Retention, string_enum,
};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

string_enum!(
    /// What a step does on a target system.
    Action {
        CreateAccount => "create_account",
        UpdateAccount => "update_account",
        EnableAccount => "enable_account",
        DisableAccount => "disable_account",
        DeleteAccount => "delete_account",
        Grant => "grant",
        Revoke => "revoke",
    }
);

impl Action {
    /// The action that undoes this one, used when a cancelled run is compensated.
    /// Deleting an account and updating attributes cannot be undone.
    pub fn compensation(self) -> Option<Action> {
        match self {
            Action::CreateAccount => Some(Action::DeleteAccount),
            Action::EnableAccount => Some(Action::DisableAccount),
            Action::DisableAccount => Some(Action::EnableAccount),
            Action::Grant => Some(Action::Revoke),
            Action::Revoke => Some(Action::Grant),
            Action::UpdateAccount | Action::DeleteAccount => None,
        }
    }

    /// Whether the action takes access away.
    pub fn is_removal(self) -> bool {
        matches!(
            self,
            Action::DisableAccount | Action::DeleteAccount | Action::Revoke
        )
    }
}

/// One step of a plan.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
pub struct PlannedStep {
    /// Steps of a lower phase on the same system finish before a higher phase of it starts.
    pub phase: u32,
    /// The target system.
    pub system: String,
    /// What to do.
    pub action: Action,
    /// The entitlement, for grant and revoke.
    pub entitlement: Option<String>,
    /// Why the access is wanted (grants only).
    pub source: Option<GrantSource>,
    /// The template, engagement or request id behind a grant.
    pub source_ref: Option<String>,
}

/// Why a wanted entitlement is left out of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Skipped {
    /// The entitlement id the template produced.
    pub entitlement: String,
    /// The template that produced it.
    pub template: String,
    /// Why it was skipped.
    pub reason: String,
}

/// The ordered steps for one run, and what was left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Steps sorted by phase.
    pub steps: Vec<PlannedStep>,
    /// Wanted entitlements that could not be planned.
    pub skipped: Vec<Skipped>,
    /// Entitlements whose grant waits for an approval (planned by an earlier run of the person)
    /// but that are no longer wanted: their approvals are withdrawn.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub withdrawn: Vec<String>,
}

/// Where a wanted entitlement comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Want {
    /// Birthright, engagement or request.
    pub source: GrantSource,
    /// The template, engagement or request id.
    pub source_ref: String,
}

/// The access a person should hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    /// Entitlement id to the first source that wants it.
    pub entitlements: BTreeMap<String, Want>,
    /// Systems the person needs an account on.
    pub systems: BTreeSet<String>,
    /// Template output that named no known entitlement.
    pub skipped: Vec<Skipped>,
}

/// Computes the access `person` should hold on `today` (at `now_ms` for request expiry).
pub fn desired_access(
    config: &Config,
    clients: &ClientFacts,
    person: &Person,
    engagements: &[Engagement],
    grants: &[Grant],
    today: NaiveDate,
    now_ms: i64,
) -> Desired {
    let mut d = Desired::default();
    if person.status == PersonStatus::Terminated {
        return d;
    }
    // Time-bound access that ran out is not given again by the templates (or by the same
    // engagement) on their own: it comes back through a request, approved like any other, or
    // with a new engagement. A rehire (a start date after the expiry) starts afresh.
    let employed_since = person
        .start_date
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis());
    let ran_out_at = |ent: &str, source: GrantSource, source_ref: &str| {
        let g = grants.iter().find(|g| g.entitlement == ent)?;
        let same_source =
            g.source == source && (source == GrantSource::Birthright || g.source_ref == source_ref);
        let at = g.expires_at?;
        (same_source
            && at <= now_ms
            && employed_since.is_none_or(|s| at >= s)
            && config.time_bound_with(ent, clients).is_some())
        .then_some(at)
    };
    let want =
        |d: &mut Desired, ent: String, template: &str, source: GrantSource, source_ref: &str| {
            if source != GrantSource::Request
                && let Some(at) = ran_out_at(&ent, source, source_ref)
            {
                let when = chrono::DateTime::from_timestamp_millis(at)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .unwrap_or_default();
                d.skipped.push(Skipped {
                    entitlement: ent,
                    template: template.to_string(),
                    reason: format!(
                        "time-bound access ended at {when}; ask for it again with a request"
                    ),
                });
                return;
            }
            match config.entitlements.get(&ent) {
                Some(e) => {
                    d.systems.insert(e.system.clone());
                    d.entitlements.entry(ent).or_insert_with(|| Want {
                        source,
                        source_ref: source_ref.to_string(),
                    });
                }
                None => d.skipped.push(Skipped {
                    entitlement: ent,
                    template: template.to_string(),
                    reason: "no such entitlement in the catalog".into(),
                }),
            }
        };
    for t in &config.templates {
        if t.rule.is_engagement_rule() {
            for g in engagements
                .iter()
                .filter(|g| g.is_current(today) && t.rule.matches_role(&g.role))
            {
                for ent in &t.entitlements {
                    let ent = ent.replace("{client}", &g.client_id);
                    want(&mut d, ent, &t.id, GrantSource::Engagement, &g.id);
                }
            }
        } else if t.rule.matches_person(person) {
            for ent in &t.entitlements {
                want(&mut d, ent.clone(), &t.id, GrantSource::Birthright, &t.id);
            }
        }
    }
    for g in grants.iter().filter(|g| g.source == GrantSource::Request) {
        let live = matches!(
            g.state,
            GrantState::Granted | GrantState::Pending | GrantState::AwaitingApproval
        ) && g.expires_at.is_none_or(|t| t > now_ms);
        if live {
            want(
                &mut d,
                g.entitlement.clone(),
                "request",
                GrantSource::Request,
                &g.source_ref,
            );
        }
    }
    d
}

/// Diffs desired against current access and orders the steps that close the gap.
///
/// `attributes_changed` adds an account update on every account that stays enabled.
pub fn plan(
    config: &Config,
    desired: &Desired,
    accounts: &[Account],
    grants: &[Grant],
    attributes_changed: bool,
) -> Plan {
    let mut steps = Vec::new();
    let account_of: BTreeMap<&str, AccountState> = accounts
        .iter()
        .map(|a| (a.system.as_str(), a.state))
        .collect();

    for system in &desired.systems {
        match account_of.get(system.as_str()) {
            None | Some(AccountState::Deleted | AccountState::Pending) => {
                steps.push(step(0, system, Action::CreateAccount, None))
            }
            // It may or may not exist, enabled or not: create it (answered "already so" by a
            // system that has it), then enable it (likewise when it is).
            Some(AccountState::Uncertain) => {
                steps.push(step(0, system, Action::CreateAccount, None));
                steps.push(step(1, system, Action::EnableAccount, None));
            }
            Some(AccountState::Disabled) => {
                steps.push(step(0, system, Action::EnableAccount, None))
            }
            Some(AccountState::Active) => {
                if attributes_changed {
                    steps.push(step(0, system, Action::UpdateAccount, None));
                }
            }
        }
    }

    let held: BTreeSet<&str> = grants
        .iter()
        .filter(|g| g.is_held())
        .map(|g| g.entitlement.as_str())
        .collect();
    // A grant waiting for an approval is already planned (by an earlier run of the person that
    // waits only for that approval): it is not planned twice, and it goes no further once it
    // is no longer wanted.
    let waiting: BTreeSet<&str> = grants
        .iter()
        .filter(|g| g.state == GrantState::AwaitingApproval)
        .map(|g| g.entitlement.as_str())
        .collect();
    let withdrawn = waiting
        .iter()
        .filter(|e| !desired.entitlements.contains_key(**e))
        .map(|e| e.to_string())
        .collect();
    for (ent, want) in &desired.entitlements {
        if !held.contains(ent.as_str()) && !waiting.contains(ent.as_str()) {
            let system = &config.entitlements[ent].system;
            steps.push(PlannedStep {
                source: Some(want.source),
                source_ref: Some(want.source_ref.clone()),
                ..step(1, system, Action::Grant, Some(ent))
            });
        }
    }
    // Taken away: what is held, and what may be (a grant whose outcome was never heard).
    let takeable = grants
        .iter()
        .filter(|g| g.may_be_held())
        .map(|g| g.entitlement.as_str())
        .collect::<BTreeSet<&str>>();
    for ent in takeable {
        if desired.entitlements.contains_key(ent) {
            continue;
        }
        // An entitlement that left the catalog can no longer be addressed; reconciliation finds it.
        let Some(e) = config.entitlements.get(ent) else {
            continue;
        };
        let phase = if desired.systems.contains(&e.system) {
            0
        } else {
            1
        };
        steps.push(step(phase, &e.system, Action::Revoke, Some(ent)));
    }

    for a in accounts {
        // A pending account was never created: nothing to take away.
        if desired.systems.contains(&a.system) || a.state == AccountState::Pending {
            continue;
        }
        let Some(system) = config.systems.get(&a.system) else {
            continue;
        };
        if a.may_be_enabled() {
            steps.push(step(0, &a.system, Action::DisableAccount, None));
        }
        // An account reconciliation found and linked was not made by tenure: it is disabled,
        // but deleted only when the system's reconciliation settings allow it.
        let deletable = !a.discovered
            || config
                .reconcile
                .get(&a.system)
                .is_some_and(|r| r.delete_discovered);
        if a.state != AccountState::Deleted && system.retention == Retention::Delete && deletable {
            steps.push(step(2, &a.system, Action::DeleteAccount, None));
        }
    }

    steps.sort();
    Plan {
        steps,
        skipped: desired.skipped.clone(),
        withdrawn,
    }
}

fn step(phase: u32, system: &str, action: Action, entitlement: Option<&str>) -> PlannedStep {
    PlannedStep {
        phase,
        system: system.to_string(),
        action,
        entitlement: entitlement.map(str::to_string),
        source: None,
        source_ref: None,
    }
}

/// Applies the effect of a succeeded step to the current accounts and grants, as the engine
/// records it; used by the engine's store and by the planner's own tests.
pub fn apply_step(
    person_id: &str,
    s: &PlannedStep,
    accounts: &mut Vec<Account>,
    grants: &mut Vec<Grant>,
    now_ms: i64,
) {
    let set_account = |accounts: &mut Vec<Account>, state: AccountState| match accounts
        .iter_mut()
        .find(|a| a.system == s.system)
    {
        Some(a) => a.state = state,
        None => accounts.push(Account {
            person_id: person_id.to_string(),
            system: s.system.clone(),
            state,
            discovered: false,
        }),
    };
    match s.action {
        Action::CreateAccount | Action::EnableAccount => {
            set_account(accounts, AccountState::Active)
        }
        Action::DisableAccount => set_account(accounts, AccountState::Disabled),
        Action::DeleteAccount => set_account(accounts, AccountState::Deleted),
        Action::UpdateAccount => {}
        Action::Grant | Action::Revoke => {
            let ent = s.entitlement.clone().unwrap_or_default();
            let state = if s.action == Action::Grant {
                GrantState::Granted
            } else {
                GrantState::Revoked
            };
            match grants.iter_mut().find(|g| g.entitlement == ent) {
                Some(g) => {
                    g.state = state;
                    if let (Some(src), Some(r)) = (s.source, &s.source_ref) {
                        g.source = src;
                        g.source_ref = r.clone();
                    }
                }
                None => grants.push(Grant {
                    person_id: person_id.to_string(),
                    entitlement: ent,
                    source: s.source.unwrap_or(GrantSource::Birthright),
                    source_ref: s.source_ref.clone().unwrap_or_default(),
                    state,
                    granted_at: Some(now_ms),
                    expires_at: None,
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, SourceFile};
    use crate::model::WorkerType;
    use proptest::prelude::*;

    fn config() -> Config {
        let main = r#"
[[systems]]
id = "directory"
connector = "sandbox"
[[systems]]
id = "chat"
connector = "sandbox"
retention = "keep"
[[systems]]
id = "crm"
connector = "sandbox"
[[clients]]
id = "acme"
max_access_days = 30
[[clients]]
id = "globex"
[[entitlements]]
id = "directory:staff"
system = "directory"
[[entitlements]]
id = "directory:eng"
system = "directory"
[[entitlements]]
id = "directory:sales"
system = "directory"
[[entitlements]]
id = "chat:general"
system = "chat"
[[entitlements]]
id = "chat:eng"
system = "chat"
[[entitlements]]
id = "crm:acme"
system = "crm"
client = "acme"
[[entitlements]]
id = "crm:globex"
system = "crm"
client = "globex"
"#;
        let t = |p: &str, s: &str| SourceFile {
            path: p.into(),
            text: s.into(),
        };
        Config::parse(
            &t("tenure.toml", main),
            &[
                t("all.toml", "entitlements = [\"directory:staff\", \"chat:general\"]"),
                t("eng.toml", "entitlements = [\"directory:eng\", \"chat:eng\"]\n[match]\ndepartment = [\"Engineering\"]\n"),
                t("sales.toml", "entitlements = [\"directory:sales\"]\n[match]\ndepartment = [\"Sales\"]\n"),
                t("consultant.toml", "entitlements = [\"crm:{client}\"]\n[match]\nengagement_role = [\"consultant\"]\n"),
            ],
        )
        .unwrap()
    }

    fn person(dept: &str, status: PersonStatus) -> Person {
        Person {
            id: "p1".into(),
            name: "Ada".into(),
            email: "ada@example.com".into(),
            worker_type: WorkerType::Employee,
            department: Some(dept.into()),
            title: None,
            location: None,
            manager: None,
            start_date: None,
            end_date: None,
            status,
            attributes: Default::default(),
        }
    }

    fn engagement(client: &str, active: bool) -> Engagement {
        Engagement {
            id: format!("p1:{client}:consultant"),
            person_id: "p1".into(),
            client_id: client.into(),
            role: "consultant".into(),
            start_date: None,
            end_date: None,
            active,
        }
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 6, 1).unwrap()
    }

    fn run_to_completion(
        c: &Config,
        p: &Person,
        en: &[Engagement],
        accounts: &mut Vec<Account>,
        grants: &mut Vec<Grant>,
    ) -> Plan {
        let d = desired_access(c, &ClientFacts::default(), p, en, grants, today(), 0);
        let plan = plan(c, &d, accounts, grants, false);
        for s in &plan.steps {
            apply_step(&p.id, s, accounts, grants, 0);
        }
        plan
    }

    #[test]
    fn a_grant_waiting_for_approval_is_not_planned_twice_and_is_withdrawn_once_unwanted() {
        let c = config();
        let mut accounts = Vec::new();
        let mut grants = Vec::new();
        let en = [engagement("acme", true)];
        let p = person("Engineering", PersonStatus::Active);
        run_to_completion(&c, &p, &[], &mut accounts, &mut grants);
        // The engagement's grant was planned and waits for its approval (its account exists).
        let waiting = Grant {
            person_id: "p1".into(),
            entitlement: "crm:acme".into(),
            source: GrantSource::Engagement,
            source_ref: en[0].id.clone(),
            state: GrantState::AwaitingApproval,
            granted_at: None,
            expires_at: None,
        };
        grants.push(waiting);
        accounts.push(Account {
            person_id: "p1".into(),
            system: "crm".into(),
            state: AccountState::Active,
            discovered: false,
        });
        // Still wanted (a transfer within engineering): no second grant, nothing withdrawn.
        let d = desired_access(&c, &ClientFacts::default(), &p, &en, &grants, today(), 0);
        let again = plan(&c, &d, &accounts, &grants, true);
        assert!(
            again
                .steps
                .iter()
                .all(|s| s.entitlement.as_deref() != Some("crm:acme")),
            "{again:#?}"
        );
        assert!(again.withdrawn.is_empty());
        // The engagement ended: the waiting grant is withdrawn, and never revoked (it was
        // never given).
        let ended = [engagement("acme", false)];
        let d = desired_access(&c, &ClientFacts::default(), &p, &ended, &grants, today(), 0);
        let after = plan(&c, &d, &accounts, &grants, false);
        assert_eq!(after.withdrawn, vec!["crm:acme".to_string()]);
        assert!(
            after
                .steps
                .iter()
                .all(|s| s.entitlement.as_deref() != Some("crm:acme")),
            "{after:#?}"
        );
    }

    #[test]
    fn time_bound_access_that_ran_out_is_not_given_again_by_the_same_source() {
        let c = config();
        let p = person("Engineering", PersonStatus::Active);
        let en = [engagement("acme", true)];
        let ran_out = |source_ref: &str, state: GrantState| Grant {
            person_id: "p1".into(),
            entitlement: "crm:acme".into(),
            source: GrantSource::Engagement,
            source_ref: source_ref.into(),
            state,
            granted_at: Some(0),
            expires_at: Some(1_000),
        };
        let wants = |grants: &[Grant], p: &Person, now: i64| {
            desired_access(&c, &ClientFacts::default(), p, &en, grants, today(), now)
        };
        // Ran out (revoked at its expiry, or due and not yet revoked): skipped, with the reason.
        for state in [GrantState::Revoked, GrantState::Granted] {
            let d = wants(&[ran_out("p1:acme:consultant", state)], &p, 1_000);
            assert!(!d.entitlements.contains_key("crm:acme"), "{d:?}");
            assert_eq!(d.skipped.len(), 1);
            assert!(
                d.skipped[0]
                    .reason
                    .starts_with("time-bound access ended at 1970-01-01T00:00:01Z")
            );
        }
        // Not yet due, another engagement, or a rehire after it ran out: wanted.
        let g = ran_out("p1:acme:consultant", GrantState::Granted);
        assert!(
            wants(std::slice::from_ref(&g), &p, 999)
                .entitlements
                .contains_key("crm:acme")
        );
        let other = ran_out("p1:acme:old", GrantState::Revoked);
        assert!(
            wants(&[other], &p, 5_000)
                .entitlements
                .contains_key("crm:acme")
        );
        let rehired = Person {
            start_date: NaiveDate::from_ymd_opt(1970, 1, 2),
            ..p.clone()
        };
        let g = ran_out("p1:acme:consultant", GrantState::Revoked);
        assert!(
            wants(&[g], &rehired, 100_000_000)
                .entitlements
                .contains_key("crm:acme")
        );
        // An entitlement that is no longer time-bound (the rule was lifted) is wanted again.
        let standing = Grant {
            entitlement: "crm:globex".into(),
            source_ref: "p1:globex:consultant".into(),
            ..ran_out("", GrantState::Revoked)
        };
        let d = desired_access(
            &c,
            &ClientFacts::default(),
            &p,
            &[engagement("globex", true)],
            std::slice::from_ref(&standing),
            today(),
            5_000,
        );
        assert!(d.entitlements.contains_key("crm:globex"));
        // Unless what an event told of the client bounds it.
        let told = crate::model::Client {
            id: "globex".into(),
            name: "Globex".into(),
            attributes: Default::default(),
            max_access_days: Some(7),
        };
        let d = desired_access(
            &c,
            &ClientFacts::new(&c, [told]),
            &p,
            &[engagement("globex", true)],
            &[standing],
            today(),
            5_000,
        );
        assert!(!d.entitlements.contains_key("crm:globex"), "{d:?}");
    }

    #[test]
    fn hire_creates_accounts_before_grants() {
        let c = config();
        let p = person("Engineering", PersonStatus::Active);
        let d = desired_access(&c, &ClientFacts::default(), &p, &[], &[], today(), 0);
        let plan = plan(&c, &d, &[], &[], false);
        let creates: Vec<_> = plan
            .steps
            .iter()
            .filter(|s| s.action == Action::CreateAccount)
            .collect();
        assert_eq!(creates.len(), 2);
        assert!(creates.iter().all(|s| s.phase == 0));
        assert_eq!(
            plan.steps
                .iter()
                .filter(|s| s.action == Action::Grant && s.phase == 1)
                .count(),
            4
        );
    }

    #[test]
    fn leave_disables_everything_first_then_revokes_then_deletes_per_retention() {
        let c = config();
        let (mut a, mut g) = (vec![], vec![]);
        let p = person("Engineering", PersonStatus::Active);
        run_to_completion(&c, &p, &[engagement("acme", true)], &mut a, &mut g);
        let gone = person("Engineering", PersonStatus::Terminated);
        let d = desired_access(&c, &ClientFacts::default(), &gone, &[], &g, today(), 0);
        let plan = plan(&c, &d, &a, &g, false);
        let phase = |act: Action| {
            plan.steps
                .iter()
                .filter(|s| s.action == act)
                .map(|s| s.phase)
                .collect::<Vec<_>>()
        };
        assert_eq!(phase(Action::DisableAccount), vec![0, 0, 0]);
        assert_eq!(phase(Action::Revoke), vec![1; 5]);
        // chat keeps its disabled accounts; crm and directory delete them.
        assert_eq!(phase(Action::DeleteAccount), vec![2, 2]);
    }

    /// An account or grant whose last call went unanswered before its step failed may exist:
    /// a hire's next run makes it again, and a leave takes it away like one held.
    #[test]
    fn uncertain_access_is_made_again_when_wanted_and_taken_away_when_not() {
        let c = config();
        let (mut a, mut g) = (vec![], vec![]);
        let p = person("Engineering", PersonStatus::Active);
        run_to_completion(&c, &p, &[], &mut a, &mut g);
        for acc in a.iter_mut().filter(|a| a.system == "chat") {
            acc.state = AccountState::Uncertain;
        }
        for gr in g.iter_mut().filter(|g| g.entitlement == "directory:eng") {
            gr.state = GrantState::Uncertain;
        }
        let d = desired_access(&c, &ClientFacts::default(), &p, &[], &g, today(), 0);
        let again = plan(&c, &d, &a, &g, false);
        let steps: Vec<(Action, &str)> = again
            .steps
            .iter()
            .map(|s| (s.action, s.entitlement.as_deref().unwrap_or(&s.system)))
            .collect();
        assert_eq!(
            steps,
            [
                (Action::CreateAccount, "chat"),
                (Action::EnableAccount, "chat"),
                (Action::Grant, "directory:eng")
            ]
        );

        let gone = person("Engineering", PersonStatus::Terminated);
        let d = desired_access(&c, &ClientFacts::default(), &gone, &[], &g, today(), 0);
        let leave = plan(&c, &d, &a, &g, false);
        let of = |system: &str| {
            leave
                .steps
                .iter()
                .filter(|s| s.system == system)
                .map(|s| (s.action, s.entitlement.clone()))
                .collect::<Vec<_>>()
        };
        // chat keeps disabled accounts: its uncertain one is disabled and its grants revoked.
        assert_eq!(
            of("chat"),
            [
                (Action::DisableAccount, None),
                (Action::Revoke, Some("chat:eng".to_string())),
                (Action::Revoke, Some("chat:general".to_string())),
            ]
        );
        assert!(
            of("directory").contains(&(Action::Revoke, Some("directory:eng".to_string()))),
            "{:?}",
            of("directory")
        );
    }

    #[test]
    fn transfer_swaps_exactly_the_role_difference() {
        let c = config();
        let (mut a, mut g) = (vec![], vec![]);
        run_to_completion(
            &c,
            &person("Engineering", PersonStatus::Active),
            &[],
            &mut a,
            &mut g,
        );
        let d = desired_access(
            &c,
            &ClientFacts::default(),
            &person("Sales", PersonStatus::Active),
            &[],
            &g,
            today(),
            0,
        );
        let plan = plan(&c, &d, &a, &g, false);
        let summary: Vec<_> = plan
            .steps
            .iter()
            .map(|s| (s.action, s.entitlement.clone().unwrap_or(s.system.clone())))
            .collect();
        assert_eq!(
            summary,
            vec![
                (Action::Revoke, "chat:eng".to_string()),
                (Action::Revoke, "directory:eng".to_string()),
                (Action::Grant, "directory:sales".to_string()),
            ]
        );
    }

    #[test]
    fn engagement_end_removes_exactly_that_clients_access() {
        let c = config();
        let (mut a, mut g) = (vec![], vec![]);
        let p = person("Engineering", PersonStatus::Active);
        run_to_completion(
            &c,
            &p,
            &[engagement("acme", true), engagement("globex", true)],
            &mut a,
            &mut g,
        );
        let d = desired_access(
            &c,
            &ClientFacts::default(),
            &p,
            &[engagement("acme", false), engagement("globex", true)],
            &g,
            today(),
            0,
        );
        let plan = plan(&c, &d, &a, &g, false);
        assert_eq!(plan.steps.len(), 1);
        assert_eq!(plan.steps[0].action, Action::Revoke);
        assert_eq!(plan.steps[0].entitlement.as_deref(), Some("crm:acme"));
    }

    #[test]
    fn unknown_client_entitlements_are_skipped_not_planned() {
        let c = config();
        let p = person("Engineering", PersonStatus::Active);
        let d = desired_access(
            &c,
            &ClientFacts::default(),
            &p,
            &[engagement("initech", true)],
            &[],
            today(),
            0,
        );
        assert_eq!(d.skipped.len(), 1);
        assert_eq!(d.skipped[0].entitlement, "crm:initech");
    }

    fn arb_person() -> impl Strategy<Value = (Person, Vec<Engagement>)> {
        (
            prop::sample::select(vec!["Engineering", "Sales", "Finance"]),
            any::<bool>(),
            prop::collection::vec(
                (
                    prop::sample::select(vec!["acme", "globex", "initech"]),
                    any::<bool>(),
                ),
                0..3,
            ),
        )
            .prop_map(|(dept, gone, ens)| {
                let status = if gone {
                    PersonStatus::Terminated
                } else {
                    PersonStatus::Active
                };
                let mut seen = BTreeSet::new();
                let ens = ens
                    .into_iter()
                    .filter(|(c, _)| seen.insert(*c))
                    .map(|(c, active)| engagement(c, active))
                    .collect();
                (person(dept, status), ens)
            })
    }

    proptest! {
        /// From any state reached by earlier plans, applying a plan reaches the desired state and
        /// planning again yields nothing.
        #[test]
        fn plans_converge(history in prop::collection::vec(arb_person(), 1..6)) {
            let c = config();
            let (mut a, mut g) = (vec![], vec![]);
            for (p, en) in &history {
                run_to_completion(&c, p, en, &mut a, &mut g);
                let d = desired_access(&c, &ClientFacts::default(), p, en, &g, today(), 0);
                let again = plan(&c, &d, &a, &g, false);
                prop_assert!(again.steps.is_empty(), "replan not empty: {:?}", again.steps);
                let held: BTreeSet<_> = g.iter().filter(|g| g.is_held()).map(|g| g.entitlement.clone()).collect();
                let wanted: BTreeSet<_> = d.entitlements.keys().cloned().collect();
                prop_assert_eq!(held, wanted);
                for acc in &a {
                    prop_assert_eq!(acc.is_enabled(), d.systems.contains(&acc.system));
                }
            }
        }

        /// Plans are ordered: accounts exist before grants, and every removal of an account
        /// comes after its entitlements are revoked.
        #[test]
        fn plans_are_ordered(history in prop::collection::vec(arb_person(), 1..5)) {
            let c = config();
            let (mut a, mut g) = (vec![], vec![]);
            for (p, en) in &history {
                let plan = run_to_completion(&c, p, en, &mut a, &mut g);
                for s in &plan.steps {
                    match s.action {
                        Action::Grant => prop_assert!(plan.steps.iter().filter(|o| o.system == s.system && matches!(o.action, Action::CreateAccount | Action::EnableAccount)).all(|o| o.phase < s.phase)),
                        Action::DeleteAccount => prop_assert!(plan.steps.iter().filter(|o| o.system == s.system && o.action == Action::Revoke).all(|o| o.phase < s.phase)),
                        _ => {}
                    }
                }
            }
        }
    }
}
