//! Reconciliation's decisions: whose an account found on a target system is, in which
//! situation it stands against what tenure believes, and what correcting it means.
//!
//! The engine pages through a system's inventory, loads the people and access the page
//! names, and asks [`correlate`] and [`classify`]; after the last page it asks [`absent`] for
//! every account tenure holds that the system did not list. Nothing here reads or writes.
//!
//! Remediation never calls a system from here: it corrects tenure's belief (an account or a
//! grant becomes `uncertain`, or an account found is linked) and gives the person a run, so the
//! planner, policy, priorities, operation ids and the audit trail do the rest exactly as for
//! any other change.

use crate::model::{AccountState, GrantState, PersonStatus, string_enum};
use std::collections::{BTreeMap, BTreeSet, HashMap};

string_enum!(
    /// Where an account or a membership found on a system stands against tenure's records.
    Situation {
        /// No person matches the account.
        Orphan => "orphan",
        /// The person has left (or is terminated) but the account can still sign in.
        Stale => "stale",
        /// The account matches a person, but tenure does not know it.
        Unlinked => "unlinked",
        /// Access tenure did not give: a membership, or an account enabled that tenure holds
        /// disabled.
        Excess => "excess",
        /// Access tenure holds that the system lacks: a grant, or the account itself.
        Missing => "missing",
        /// The account matches several people.
        Ambiguous => "ambiguous",
        /// In agreement. Counted, never stored as a finding.
        Expected => "expected",
    }
);

string_enum!(
    /// What reconciliation does about a situation on a system.
    Remedy {
        /// Record the finding; change nothing.
        Report => "report",
        /// Disable the account through a leaver-priority run (`stale`, `orphan`).
        Disable => "disable",
        /// Record the account as the person's (`unlinked`); the person's run then judges it.
        Link => "link",
        /// Take the membership (or the enabled account) away through a run (`excess`).
        Revoke => "revoke",
        /// Give the access again through a run (`missing`).
        Grant => "grant",
    }
);

impl Situation {
    /// The remedies a system may configure for the situation (`report` always).
    pub fn remedies(self) -> &'static [Remedy] {
        match self {
            Situation::Stale | Situation::Orphan => &[Remedy::Report, Remedy::Disable],
            Situation::Unlinked => &[Remedy::Report, Remedy::Link],
            Situation::Excess => &[Remedy::Report, Remedy::Revoke],
            Situation::Missing => &[Remedy::Report, Remedy::Grant],
            Situation::Ambiguous | Situation::Expected => &[Remedy::Report],
        }
    }

    /// Whether an open finding in this situation is an incident (raised at high severity).
    pub fn is_incident(self) -> bool {
        self == Situation::Stale
    }
}

string_enum!(
    /// An account attribute correlation can match.
    AccountField {
        /// The sign-in name.
        Username => "username",
        /// The email address.
        Email => "email",
        /// The HR id written on the account.
        EmployeeId => "employee_id",
    }
);

string_enum!(
    /// A person field correlation can match.
    PersonField {
        /// The HR id.
        Id => "id",
        /// The work email address.
        Email => "email",
    }
);

/// A value written around a part: `u-{}` is `u-` then the part. `{}` alone is the value
/// itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pattern {
    /// The text before the part.
    pub prefix: String,
    /// The text after it.
    pub suffix: String,
}

impl Pattern {
    /// Reads a pattern: text with exactly one `{}`.
    pub fn parse(text: &str) -> Result<Pattern, String> {
        match text.split_once("{}") {
            Some((prefix, suffix)) if !suffix.contains("{}") => Ok(Pattern {
                prefix: prefix.to_string(),
                suffix: suffix.to_string(),
            }),
            _ => Err(format!(
                "a pattern holds exactly one `{{}}` where the compared part goes, such as \"u-{{}}\" or \"{{}}@example.com\"; `{text}` does not"
            )),
        }
    }

    /// The part of `value` at `{}`, when `value` fits the pattern and the part is not empty.
    /// `ignore_case`: the pattern's own text matches in any case.
    pub fn part<'v>(&self, value: &'v str, ignore_case: bool) -> Option<&'v str> {
        let fits = |v: &str, p: &str| {
            if ignore_case {
                v.eq_ignore_ascii_case(p)
            } else {
                v == p
            }
        };
        let (p, s) = (self.prefix.len(), self.suffix.len());
        if value.len() <= p + s
            || !value.is_char_boundary(p)
            || !value.is_char_boundary(value.len() - s)
            || !fits(&value[..p], &self.prefix)
            || !fits(&value[value.len() - s..], &self.suffix)
        {
            return None;
        }
        Some(&value[p..value.len() - s])
    }

    /// The pattern with `part` at `{}`.
    pub fn write(&self, part: &str) -> String {
        format!("{}{part}{}", self.prefix, self.suffix)
    }

    /// Whether it is `{}` alone.
    pub fn is_plain(&self) -> bool {
        self.prefix.is_empty() && self.suffix.is_empty()
    }
}

/// One correlation rule: an account attribute against a person field, each possibly written
/// around the part they share (a username `u-1042` for the person `1042`; a uid `ada` for the
/// email `ada@example.com`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The account side.
    pub account: AccountField,
    /// The person side.
    pub person: PersonField,
    /// Compare without regard to case (after trimming).
    pub ignore_case: bool,
    /// How the account's value is written around the shared part.
    pub account_pattern: Pattern,
    /// How the person's value is written around it.
    pub person_pattern: Pattern,
}

impl Rule {
    /// A rule comparing the two values whole.
    pub fn plain(account: AccountField, person: PersonField, ignore_case: bool) -> Rule {
        Rule {
            account,
            person,
            ignore_case,
            account_pattern: Pattern::default(),
            person_pattern: Pattern::default(),
        }
    }

    /// The value as this rule compares it.
    pub fn normalize(&self, value: &str) -> String {
        let v = value.trim();
        if self.ignore_case {
            v.to_lowercase()
        } else {
            v.to_string()
        }
    }

    /// The person value (normalized) an account's value points at, if it fits the account
    /// pattern.
    pub fn person_value(&self, account_value: &str) -> Option<String> {
        let part = self
            .account_pattern
            .part(account_value.trim(), self.ignore_case)?;
        Some(self.normalize(&self.person_pattern.write(part)))
    }
}

string_enum!(
    /// What correlation does when a rule matches several people.
    OnSeveral {
        /// The account is `ambiguous`, for a person to settle.
        Report => "report",
        /// The next rule decides among them; `ambiguous` when none does.
        NextRule => "next_rule",
    }
);

/// `[systems.reconcile]`: how a system is reconciled.
#[derive(Debug, Clone, PartialEq)]
pub struct ReconcileSettings {
    /// How often it is reconciled on its own, if at all (ms).
    pub every_ms: Option<i64>,
    /// Tried in order after the person id tenure writes on the accounts it makes; the first
    /// rule that matches anyone decides.
    pub correlate: Vec<Rule>,
    /// What a rule matching several people does.
    pub on_several: OnSeveral,
    /// What to do per situation; a situation not named is reported.
    pub actions: BTreeMap<Situation, Remedy>,
    /// The largest share (0 to 1) of the system's accounts one reconciliation may disable
    /// without confirmation.
    pub max_disable_share: f64,
    /// Whether an account found and linked (not made by tenure) may be deleted once no longer
    /// needed, where the system's retention deletes; otherwise it is only disabled.
    pub delete_discovered: bool,
    /// Whether the system is reconciled when its circuit closes again after an outage (on by
    /// default once `[systems.reconcile]` is written).
    pub after_outage: bool,
}

impl Default for ReconcileSettings {
    fn default() -> Self {
        ReconcileSettings {
            every_ms: None,
            correlate: Vec::new(),
            on_several: OnSeveral::Report,
            actions: BTreeMap::new(),
            max_disable_share: 0.05,
            delete_discovered: false,
            after_outage: false,
        }
    }
}

impl ReconcileSettings {
    /// What to do about `situation`.
    pub fn remedy(&self, situation: Situation) -> Remedy {
        self.actions
            .get(&situation)
            .copied()
            .unwrap_or(Remedy::Report)
    }
}

/// An account as the system listed it, as far as reconciliation's decisions go.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    /// The system's key for it.
    pub key: &'a str,
    /// The person id tenure wrote on it, if any.
    pub mark: Option<&'a str>,
    /// The id the connector reaches this very account through (its key read back: the
    /// sandbox's id, a PostgreSQL role without its prefix, the LDAP id attribute), when it
    /// derives the account from an id. An orphan is disabled through it.
    pub subject: Option<&'a str>,
    /// Whether it can sign in.
    pub enabled: bool,
    /// Correlation attributes by [`AccountField`] name.
    pub attributes: &'a BTreeMap<String, String>,
    /// Its groups or roles by the system's names.
    pub memberships: &'a [String],
}

/// What the engine found for one page: the people its accounts may belong to.
#[derive(Debug, Default)]
pub struct Candidates {
    /// People by id, with their status.
    pub people: HashMap<String, PersonStatus>,
    /// Per rule (in [`ReconcileSettings::correlate`] order): normalized person value to the
    /// ids of the people holding it.
    pub by_rule: Vec<HashMap<String, Vec<String>>>,
}

/// Whose an account is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// One person: by the id tenure wrote on it, or by a rule.
    Person(String),
    /// Several people match the first rule that matches anyone.
    Several(Vec<String>),
    /// Nobody.
    Nobody,
}

/// The person values (normalized) an account points at through each rule; `None` where it
/// lacks the attribute or the value does not fit the rule's account pattern.
pub fn rule_values(rules: &[Rule], attributes: &BTreeMap<String, String>) -> Vec<Option<String>> {
    rules
        .iter()
        .map(|r| {
            attributes
                .get(r.account.as_str())
                .filter(|v| !v.trim().is_empty())
                .and_then(|v| r.person_value(v))
        })
        .collect()
}

/// Decides whose the account is: the person whose id tenure wrote on it when that person
/// exists, else the person the connector reaches the account for (its [`Observed::subject`]),
/// else the first rule matching anyone. A rule matching several people makes the
/// account ambiguous, or (`on_several = "next_rule"`) leaves the choice among them to the
/// rules after it: the first of those matching exactly one of them decides.
pub fn correlate(
    observed: &Observed<'_>,
    rules: &[Rule],
    on_several: OnSeveral,
    candidates: &Candidates,
) -> Match {
    for id in [observed.mark, observed.subject].into_iter().flatten() {
        if candidates.people.contains_key(id) {
            return Match::Person(id.to_string());
        }
    }
    // Once a rule matched several: the people still in the running.
    let mut among: Option<BTreeSet<&String>> = None;
    for (i, value) in rule_values(rules, observed.attributes)
        .into_iter()
        .enumerate()
    {
        let Some(value) = value else { continue };
        let Some(ids) = candidates.by_rule.get(i).and_then(|m| m.get(&value)) else {
            continue;
        };
        let mut ids: BTreeSet<&String> = ids.iter().collect();
        if let Some(among) = &among {
            ids.retain(|id| among.contains(id));
        }
        match ids.len() {
            0 => continue,
            1 => return Match::Person(ids.into_iter().next().cloned().unwrap_or_default()),
            _ if on_several == OnSeveral::Report => {
                return Match::Several(ids.into_iter().cloned().collect());
            }
            _ => among = Some(ids),
        }
    }
    match among {
        Some(ids) => Match::Several(ids.into_iter().cloned().collect()),
        None => Match::Nobody,
    }
}

/// A grant as reconciliation compares it: which entitlement, in which state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldGrant {
    /// The entitlement's tenure id.
    pub entitlement: String,
    /// Where tenure's record of it stands.
    pub state: GrantState,
}

/// What tenure holds for one person on the system being reconciled.
#[derive(Debug, Clone, Copy, Default)]
pub struct Belief<'a> {
    /// The state of the person's account there, when tenure has a record of one.
    pub account: Option<AccountState>,
    /// The grants of entitlements on this system.
    pub grants: &'a [HeldGrant],
}

/// A system's catalog as reconciliation reads memberships: the system's name of each
/// entitlement to its tenure id.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// System name (and, as a fallback, tenure id) to tenure id.
    pub by_name: HashMap<String, String>,
    /// Tenure id to system name.
    pub name_of: HashMap<String, String>,
}

impl Catalog {
    /// Reads the entitlements of `system` out of `entitlements`.
    pub fn of_system<'a>(
        system: &str,
        entitlements: impl IntoIterator<Item = &'a crate::model::Entitlement>,
    ) -> Catalog {
        let mut c = Catalog::default();
        for e in entitlements.into_iter().filter(|e| e.system == system) {
            c.by_name
                .entry(e.id.clone())
                .or_insert_with(|| e.id.clone());
            c.by_name.insert(e.name.clone(), e.id.clone());
            c.name_of.insert(e.id.clone(), e.name.clone());
        }
        c
    }
}

/// A difference found, and what is to be done about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The situation.
    pub situation: Situation,
    /// The system's key for the account it concerns (for a missing account: the person id).
    pub account_key: String,
    /// The person it belongs to, when known.
    pub person_id: Option<String>,
    /// The entitlement it concerns: a tenure id, or the system's name of a group the catalog
    /// does not know. `None` for the account itself.
    pub entitlement: Option<String>,
    /// What was seen, in a sentence.
    pub detail: String,
    /// What the system's settings say to do, narrowed to what can be done.
    pub remedy: Remedy,
}

/// A change to tenure's belief that remediation makes before giving the person a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Correction {
    /// The account may exist and sign in: the person's run creates and enables it if wanted,
    /// disables it if not. `discovered` when tenure had no record of it.
    AccountUncertain {
        /// Whose.
        person_id: String,
        /// Tenure did not make it: never deleted unless the system says so.
        discovered: bool,
    },
    /// The system has no account where tenure holds one active: the account, and every grant
    /// on it tenure holds, may or may not be there. The person's run makes (and grants) again
    /// what is still wanted.
    AccountGone {
        /// Whose.
        person_id: String,
    },
    /// Record an account found on the system as the person's, as it stands.
    Link {
        /// Whose.
        person_id: String,
        /// Whether it can sign in.
        enabled: bool,
    },
    /// The grant may be held: the person's run grants it if wanted, revokes it if not.
    GrantUncertain {
        /// Whose.
        person_id: String,
        /// Which (tenure id).
        entitlement: String,
    },
    /// An account no person holds is disabled by a run of its own: a leaver-priority run
    /// whose one step disables the account the connector reaches through `subject`.
    DisableOrphan {
        /// The id the connector reaches the account through (the run's subject).
        subject: String,
    },
}

impl Correction {
    /// The person whose run follows.
    pub fn person_id(&self) -> &str {
        match self {
            Correction::AccountUncertain { person_id, .. }
            | Correction::AccountGone { person_id }
            | Correction::Link { person_id, .. }
            | Correction::GrantUncertain { person_id, .. }
            | Correction::DisableOrphan { subject: person_id } => person_id,
        }
    }
}

impl Finding {
    /// The correction that carries out the finding's remedy, if it has one. `subject`: the
    /// id the connector reaches the account through ([`Observed::subject`]).
    pub fn correction(
        &self,
        enabled: bool,
        known_account: bool,
        subject: Option<&str>,
    ) -> Option<Correction> {
        if self.situation == Situation::Orphan {
            if self.remedy != Remedy::Disable || !enabled {
                return None;
            }
            return subject.map(|s| Correction::DisableOrphan {
                subject: s.to_string(),
            });
        }
        let person_id = self.person_id.clone()?;
        match (self.remedy, &self.entitlement) {
            (Remedy::Report, _) => None,
            (Remedy::Link, _) => Some(Correction::Link { person_id, enabled }),
            (Remedy::Disable | Remedy::Revoke | Remedy::Grant, None) => {
                Some(Correction::AccountUncertain {
                    person_id,
                    discovered: !known_account,
                })
            }
            (Remedy::Revoke | Remedy::Grant, Some(entitlement)) => {
                Some(Correction::GrantUncertain {
                    person_id,
                    entitlement: entitlement.clone(),
                })
            }
            (Remedy::Disable, Some(_)) => None,
        }
    }
}

/// Classifies one listed account. The account itself is `expected` when nothing is found
/// about it, which the caller counts; the other findings come back.
///
/// `addressable`: whether the system's connector reaches this very account when it acts for
/// the matched person (it carries the person's mark, or its key is the one the connector
/// derives from the person's id). An account matched only by a rule and not addressable (a
/// second account under another name) can only be reported: a run would act on another one.
pub fn classify(
    observed: &Observed<'_>,
    matched: &Match,
    addressable: bool,
    status: Option<PersonStatus>,
    belief: &Belief<'_>,
    catalog: &Catalog,
    settings: &ReconcileSettings,
) -> Vec<Finding> {
    let finding = |situation: Situation,
                   person: Option<&str>,
                   entitlement: Option<String>,
                   detail: String| {
        let mut remedy = settings.remedy(situation);
        // A group the catalog does not know cannot be addressed by a run, nor can an account
        // the connector would not reach for the person (an orphan: see below).
        if (!addressable && situation != Situation::Orphan)
            || entitlement
                .as_ref()
                .is_some_and(|e| !catalog.name_of.contains_key(e))
        {
            remedy = Remedy::Report;
        }
        Finding {
            situation,
            account_key: observed.key.to_string(),
            person_id: person.map(str::to_string),
            entitlement,
            detail,
            remedy,
        }
    };
    let person = match matched {
        Match::Nobody => {
            let mut f = finding(
                Situation::Orphan,
                None,
                None,
                if observed.enabled {
                    "no person matches the account, and it can sign in".into()
                } else {
                    "no person matches the account (disabled)".into()
                },
            );
            // Disabled already, or out of the connector's reach: only reported.
            if !observed.enabled || observed.subject.is_none() {
                f.remedy = Remedy::Report;
            }
            return vec![f];
        }
        Match::Several(ids) => {
            return vec![finding(
                Situation::Ambiguous,
                None,
                None,
                format!(
                    "the account matches {} people: {}",
                    ids.len(),
                    ids.join(", ")
                ),
            )];
        }
        Match::Person(p) => p.as_str(),
    };
    let gone = status == Some(PersonStatus::Terminated);
    let state = belief.account;
    let known = matches!(
        state,
        Some(AccountState::Active | AccountState::Disabled | AccountState::Uncertain)
    );
    if gone && observed.enabled {
        return vec![finding(
            Situation::Stale,
            Some(person),
            None,
            "the person has left but the account can sign in".into(),
        )];
    }
    if !addressable {
        return vec![finding(
            Situation::Unlinked,
            Some(person),
            None,
            "the account matches the person by a correlation rule, but it is not the account \
             tenure manages for them"
                .into(),
        )];
    }
    if !known {
        return vec![finding(
            Situation::Unlinked,
            Some(person),
            None,
            format!(
                "the account matches the person but tenure holds {}",
                match state {
                    Some(s) => format!("their account {s}"),
                    None => "no account for them".into(),
                }
            ),
        )];
    }
    let mut out = Vec::new();
    match (state, observed.enabled) {
        (Some(AccountState::Disabled), true) => out.push(finding(
            Situation::Excess,
            Some(person),
            None,
            "the account can sign in but tenure disabled it".into(),
        )),
        (Some(AccountState::Active), false) => out.push(finding(
            Situation::Missing,
            Some(person),
            None,
            "the account is disabled but tenure holds it enabled".into(),
        )),
        _ => {}
    }
    // A person holds a handful of grants on a system: lists beat maps here.
    let held = |id: &str| {
        belief
            .grants
            .iter()
            .find(|g| g.entitlement == id)
            .map(|g| g.state)
    };
    let mut seen: Vec<&str> = Vec::with_capacity(observed.memberships.len());
    for name in observed.memberships {
        let Some(id) = catalog.by_name.get(name) else {
            out.push(finding(
                Situation::Excess,
                Some(person),
                Some(name.clone()),
                format!("a member of `{name}`, which no entitlement names"),
            ));
            continue;
        };
        if seen.contains(&id.as_str()) {
            continue;
        }
        seen.push(id.as_str());
        match held(id) {
            Some(GrantState::Granted | GrantState::Uncertain) => {}
            // Planned or waiting for an approval: a run would give it (once approved) rather
            // than take it away, so a person decides.
            Some(s @ (GrantState::Pending | GrantState::AwaitingApproval)) => {
                let mut f = finding(
                    Situation::Excess,
                    Some(person),
                    Some(id.clone()),
                    format!(
                        "a member of `{name}` while tenure's grant is still {s}: reported, for a \
                         person to decide"
                    ),
                );
                f.remedy = Remedy::Report;
                out.push(f);
            }
            other => out.push(finding(
                Situation::Excess,
                Some(person),
                Some(id.clone()),
                match other {
                    Some(s) => format!("a member of `{name}` while tenure holds the grant {s}"),
                    None => format!("a member of `{name}`, which tenure did not grant"),
                },
            )),
        }
    }
    for g in belief.grants {
        if g.state == GrantState::Granted && !seen.contains(&g.entitlement.as_str()) {
            let name = catalog
                .name_of
                .get(&g.entitlement)
                .map_or(g.entitlement.as_str(), String::as_str);
            out.push(finding(
                Situation::Missing,
                Some(person),
                Some(g.entitlement.clone()),
                format!("tenure holds the grant but the account is not a member of `{name}`"),
            ));
        }
    }
    out
}

/// The finding for a person whose account tenure holds in `state` but the system did not
/// list: `missing` when tenure holds it active. Its correction is [`Correction::AccountGone`].
pub fn absent(
    person_id: &str,
    state: AccountState,
    settings: &ReconcileSettings,
) -> Option<Finding> {
    (state == AccountState::Active).then(|| Finding {
        situation: Situation::Missing,
        account_key: person_id.to_string(),
        person_id: Some(person_id.to_string()),
        entitlement: None,
        detail: "tenure holds the account active but the system has no such account".into(),
        remedy: settings.remedy(Situation::Missing),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(actions: &[(Situation, Remedy)]) -> ReconcileSettings {
        ReconcileSettings {
            correlate: vec![Rule::plain(AccountField::Email, PersonField::Email, true)],
            actions: actions.iter().copied().collect(),
            ..ReconcileSettings::default()
        }
    }

    fn catalog() -> Catalog {
        Catalog {
            by_name: [
                ("vpn users", "vpn"),
                ("vpn", "vpn"),
                ("admins", "admin"),
                ("admin", "admin"),
            ]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
            name_of: [("vpn", "vpn users"), ("admin", "admins")]
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        }
    }

    fn account(state: AccountState) -> Option<AccountState> {
        Some(state)
    }

    fn grant(ent: &str, state: GrantState) -> HeldGrant {
        HeldGrant {
            entitlement: ent.into(),
            state,
        }
    }

    fn observed<'a>(
        attrs: &'a BTreeMap<String, String>,
        members: &'a [String],
        enabled: bool,
    ) -> Observed<'a> {
        Observed {
            key: "ada",
            mark: None,
            subject: Some("ada"),
            enabled,
            attributes: attrs,
            memberships: members,
        }
    }

    fn situations(f: &[Finding]) -> Vec<(Situation, Option<&str>, Remedy)> {
        f.iter()
            .map(|f| (f.situation, f.entitlement.as_deref(), f.remedy))
            .collect()
    }

    #[test]
    fn the_mark_decides_before_any_rule_and_rules_go_in_order() {
        let attrs: BTreeMap<String, String> =
            [("email".to_string(), " Ada@Example.com ".to_string())].into();
        let mut c = Candidates::default();
        c.people.insert("ada".into(), PersonStatus::Active);
        c.people.insert("bob".into(), PersonStatus::Active);
        c.by_rule
            .push([("ada@example.com".to_string(), vec!["ada".to_string()])].into());
        let rules = settings(&[]).correlate;
        let mut o = observed(&attrs, &[], true);
        o.subject = None;
        assert_eq!(
            correlate(&o, &rules, OnSeveral::Report, &c),
            Match::Person("ada".into())
        );
        o.mark = Some("bob");
        assert_eq!(
            correlate(&o, &rules, OnSeveral::Report, &c),
            Match::Person("bob".into())
        );
        // A mark naming nobody tenure knows falls back to the rules.
        o.mark = Some("gone");
        assert_eq!(
            correlate(&o, &rules, OnSeveral::Report, &c),
            Match::Person("ada".into())
        );
        c.by_rule[0].insert(
            "ada@example.com".into(),
            vec!["ada".into(), "ann".into(), "ada".into()],
        );
        assert_eq!(
            correlate(&o, &rules, OnSeveral::Report, &c),
            Match::Several(vec!["ada".into(), "ann".into()])
        );
        c.by_rule[0].clear();
        assert_eq!(correlate(&o, &rules, OnSeveral::Report, &c), Match::Nobody);
        // The account the connector reaches for a person is theirs, after the mark.
        o.subject = Some("bob");
        assert_eq!(
            correlate(&o, &rules, OnSeveral::Report, &c),
            Match::Person("bob".into())
        );
        o.mark = Some("ada");
        assert_eq!(
            correlate(&o, &rules, OnSeveral::Report, &c),
            Match::Person("ada".into())
        );
        let case_sensitive = Rule {
            ignore_case: false,
            ..rules[0].clone()
        };
        assert_eq!(case_sensitive.normalize(" Ada@X "), "Ada@X");
    }

    #[test]
    fn patterns_take_the_shared_part_and_several_matches_go_to_the_next_rule() {
        let p = |t: &str| Pattern::parse(t).unwrap();
        assert!(Pattern::parse("u-").is_err() && Pattern::parse("{}-{}").is_err());
        assert!(p("{}").is_plain());
        assert_eq!(p("u-{}").part("u-1042", false), Some("1042"));
        assert_eq!(p("u-{}").part("U-1042", false), None);
        assert_eq!(p("u-{}").part("U-1042", true), Some("1042"));
        // The part is never empty, and a multi-byte edge is not cut.
        assert_eq!(p("u-{}").part("u-", false), None);
        assert_eq!(p("é{}").part("ée", false), Some("e"));
        assert_eq!(p("a{}").part("éa", false), None);
        assert_eq!(p("{}@example.com").write("ada"), "ada@example.com");

        // A uid `ada` for ada@example.com; a username `u-1042` for the person `1042`.
        let mut by_uid = Rule::plain(AccountField::Username, PersonField::Email, true);
        by_uid.person_pattern = p("{}@Example.com");
        assert_eq!(by_uid.person_value(" Ada "), Some("ada@example.com".into()));
        let mut by_number = Rule::plain(AccountField::Username, PersonField::Id, false);
        by_number.account_pattern = p("u-{}");
        assert_eq!(by_number.person_value("u-1042"), Some("1042".into()));
        assert_eq!(by_number.person_value("admin"), None);

        // Two people share an email; the employee id tells them apart, if asked to.
        let rules = vec![
            Rule::plain(AccountField::Email, PersonField::Email, true),
            Rule::plain(AccountField::EmployeeId, PersonField::Id, false),
        ];
        let c = Candidates {
            people: HashMap::new(),
            by_rule: vec![
                [(
                    "team@x".to_string(),
                    vec!["a1".to_string(), "a2".to_string()],
                )]
                .into(),
                [
                    ("a2".to_string(), vec!["a2".to_string()]),
                    ("b9".to_string(), vec!["b9".to_string()]),
                ]
                .into(),
            ],
        };
        let attrs = |id: &str| -> BTreeMap<String, String> {
            [
                ("email".to_string(), "team@x".to_string()),
                ("employee_id".to_string(), id.to_string()),
            ]
            .into()
        };
        let several = Match::Several(vec!["a1".into(), "a2".into()]);
        for (id, report, next) in [
            ("a2", several.clone(), Match::Person("a2".into())),
            // The next rule names someone else: still between the first two.
            ("b9", several.clone(), several.clone()),
            ("", several.clone(), several.clone()),
        ] {
            let a = attrs(id);
            let o = observed(&a, &[], true);
            assert_eq!(correlate(&o, &rules, OnSeveral::Report, &c), report, "{id}");
            assert_eq!(correlate(&o, &rules, OnSeveral::NextRule, &c), next, "{id}");
        }
    }

    #[test]
    fn each_situation_is_found_with_the_remedy_configured_for_it() {
        let attrs = BTreeMap::new();
        let all = settings(&[
            (Situation::Stale, Remedy::Disable),
            (Situation::Unlinked, Remedy::Link),
            (Situation::Excess, Remedy::Revoke),
            (Situation::Missing, Remedy::Grant),
        ]);
        let ada = Match::Person("ada".into());
        let members = ["vpn users".to_string(), "printers".to_string()];
        let o = observed(&attrs, &members, true);
        let none = Belief::default();
        let cat = catalog();
        let active = Some(PersonStatus::Active);

        let f = classify(&o, &Match::Nobody, false, None, &none, &cat, &all);
        assert_eq!(situations(&f), [(Situation::Orphan, None, Remedy::Report)]);
        // Orphans are disabled when asked to, while they can sign in and the connector
        // reaches them.
        let mut orphans = all.clone();
        orphans.actions.insert(Situation::Orphan, Remedy::Disable);
        let f = classify(&o, &Match::Nobody, false, None, &none, &cat, &orphans);
        assert_eq!(situations(&f), [(Situation::Orphan, None, Remedy::Disable)]);
        let mut unreachable = o;
        unreachable.subject = None;
        let off = observed(&attrs, &[], false);
        for o in [unreachable, off] {
            let f = classify(&o, &Match::Nobody, false, None, &none, &cat, &orphans);
            assert_eq!(situations(&f), [(Situation::Orphan, None, Remedy::Report)]);
        }
        let f = classify(
            &o,
            &Match::Several(vec!["a".into(), "b".into()]),
            false,
            None,
            &none,
            &cat,
            &all,
        );
        assert_eq!(
            situations(&f),
            [(Situation::Ambiguous, None, Remedy::Report)]
        );
        // A leaver's enabled account is stale, known to tenure or not.
        let left = Some(PersonStatus::Terminated);
        for b in [
            Belief::default(),
            Belief {
                account: account(AccountState::Disabled),
                grants: &[],
            },
        ] {
            let f = classify(&o, &ada, true, left, &b, &cat, &all);
            assert_eq!(situations(&f), [(Situation::Stale, None, Remedy::Disable)]);
        }
        // ...but a disabled one is nothing to worry about.
        let off = observed(&attrs, &[], false);
        let b = Belief {
            account: account(AccountState::Disabled),
            grants: &[],
        };
        assert!(classify(&off, &ada, true, left, &b, &cat, &all).is_empty());
        // Unknown to tenure: unlinked, whatever it holds.
        for state in [
            None,
            Some(AccountState::Deleted),
            Some(AccountState::Pending),
        ] {
            let b = Belief {
                account: state.and_then(account),
                grants: &[],
            };
            let f = classify(&o, &ada, true, active, &b, &cat, &all);
            assert_eq!(situations(&f), [(Situation::Unlinked, None, Remedy::Link)]);
        }
        // Known: memberships tenure did not grant are excess (an unknown group only reported),
        // grants the system lacks are missing, uncertain ones agree either way.
        let b = Belief {
            account: account(AccountState::Active),
            grants: &[
                grant("admin", GrantState::Granted),
                grant("vpn", GrantState::Revoked),
            ],
        };
        let f = classify(&o, &ada, true, active, &b, &cat, &all);
        assert_eq!(
            situations(&f),
            [
                (Situation::Excess, Some("vpn"), Remedy::Revoke),
                (Situation::Excess, Some("printers"), Remedy::Report),
                (Situation::Missing, Some("admin"), Remedy::Grant),
            ]
        );
        let b = Belief {
            account: account(AccountState::Active),
            grants: &[
                grant("admin", GrantState::Uncertain),
                grant("vpn", GrantState::Uncertain),
            ],
        };
        let members = ["vpn".to_string()];
        let f = classify(
            &observed(&attrs, &members, true),
            &ada,
            true,
            active,
            &b,
            &cat,
            &all,
        );
        assert!(f.is_empty(), "{f:?}");
        // The account's own state.
        let b = Belief {
            account: account(AccountState::Disabled),
            grants: &[],
        };
        let f = classify(
            &observed(&attrs, &[], true),
            &ada,
            true,
            active,
            &b,
            &cat,
            &all,
        );
        assert_eq!(situations(&f), [(Situation::Excess, None, Remedy::Revoke)]);
        let b = Belief {
            account: account(AccountState::Active),
            grants: &[],
        };
        let f = classify(
            &observed(&attrs, &[], false),
            &ada,
            true,
            active,
            &b,
            &cat,
            &all,
        );
        assert_eq!(situations(&f), [(Situation::Missing, None, Remedy::Grant)]);
        // An account a rule matched that the connector would not reach is only reported, a
        // leaver's included (still as an incident).
        let f = classify(&o, &ada, false, left, &none, &cat, &all);
        assert_eq!(situations(&f), [(Situation::Stale, None, Remedy::Report)]);
        let f = classify(&o, &ada, false, active, &none, &cat, &all);
        assert_eq!(
            situations(&f),
            [(Situation::Unlinked, None, Remedy::Report)]
        );
        // Nothing configured: everything only reported.
        let report = settings(&[]);
        let f = classify(&o, &ada, true, left, &none, &cat, &report);
        assert_eq!(situations(&f), [(Situation::Stale, None, Remedy::Report)]);
        // Absent accounts.
        assert_eq!(
            absent("ada", AccountState::Active, &all).map(|f| f.remedy),
            Some(Remedy::Grant)
        );
        assert_eq!(absent("ada", AccountState::Disabled, &all), None);
    }

    proptest::proptest! {
        /// Over any memberships and grant states of a known, addressable account: a catalog
        /// entitlement is excess exactly when the system holds it and tenure holds no grant
        /// that may be held, missing exactly when tenure holds it granted and the system does
        /// not, never both; a group no entitlement names is excess and only reported.
        #[test]
        fn memberships_and_grants_diff_exactly(
            held in proptest::collection::vec(proptest::bool::ANY, 2),
            states in proptest::collection::vec(
                proptest::option::of(proptest::sample::select(GrantState::ALL.to_vec())),
                2,
            ),
            by_id in proptest::bool::ANY,
            stray in proptest::bool::ANY,
        ) {
            let ids = ["vpn", "admin"];
            let names = ["vpn users", "admins"];
            let mut members: Vec<String> = (0..2)
                .filter(|i| held[*i])
                .map(|i| if by_id { ids[i] } else { names[i] }.to_string())
                .collect();
            if stray {
                members.push("printers".into());
            }
            let grants: Vec<HeldGrant> = (0..2)
                .filter_map(|i| states[i].map(|s| grant(ids[i], s)))
                .collect();
            let belief = Belief {
                account: account(AccountState::Active),
                grants: &grants,
            };
            let attrs = BTreeMap::new();
            let all = settings(&[(Situation::Excess, Remedy::Revoke), (Situation::Missing, Remedy::Grant)]);
            let found = classify(
                &observed(&attrs, &members, true),
                &Match::Person("ada".into()),
                true,
                Some(PersonStatus::Active),
                &belief,
                &catalog(),
                &all,
            );
            for i in 0..2 {
                let may_hold = matches!(states[i], Some(GrantState::Granted | GrantState::Uncertain));
                let of = |s: Situation| found
                    .iter()
                    .filter(|f| f.situation == s && f.entitlement.as_deref() == Some(ids[i]))
                    .count();
                proptest::prop_assert_eq!(of(Situation::Excess), usize::from(held[i] && !may_hold));
                // Access waiting for its run or approval is never taken away automatically.
                let waiting = matches!(states[i], Some(GrantState::Pending | GrantState::AwaitingApproval));
                let right = found.iter().all(|f| {
                    f.entitlement.as_deref() != Some(ids[i])
                        || f.situation != Situation::Excess
                        || (f.remedy == Remedy::Report) == waiting
                });
                proptest::prop_assert!(right, "{:?}", found);
                proptest::prop_assert_eq!(
                    of(Situation::Missing),
                    usize::from(!held[i] && states[i] == Some(GrantState::Granted))
                );
            }
            let strays: Vec<&Finding> = found
                .iter()
                .filter(|f| f.entitlement.as_deref() == Some("printers"))
                .collect();
            proptest::prop_assert_eq!(strays.len(), usize::from(stray));
            proptest::prop_assert!(strays.iter().all(|f| f.situation == Situation::Excess && f.remedy == Remedy::Report));
            proptest::prop_assert!(found.iter().all(|f| f.entitlement.is_some()));
        }
    }

    #[test]
    fn corrections_carry_out_remedies_and_nothing_else() {
        let f = |situation, entitlement: Option<&str>, remedy| Finding {
            situation,
            account_key: "k".into(),
            person_id: Some("ada".into()),
            entitlement: entitlement.map(str::to_string),
            detail: String::new(),
            remedy,
        };
        assert_eq!(
            f(Situation::Stale, None, Remedy::Disable).correction(true, false, None),
            Some(Correction::AccountUncertain {
                person_id: "ada".into(),
                discovered: true
            })
        );
        assert_eq!(
            f(Situation::Unlinked, None, Remedy::Link).correction(false, false, None),
            Some(Correction::Link {
                person_id: "ada".into(),
                enabled: false
            })
        );
        assert_eq!(
            f(Situation::Excess, Some("vpn"), Remedy::Revoke).correction(true, true, None),
            Some(Correction::GrantUncertain {
                person_id: "ada".into(),
                entitlement: "vpn".into()
            })
        );
        assert_eq!(
            f(Situation::Missing, None, Remedy::Report).correction(true, true, None),
            None
        );
        let mut orphan = f(Situation::Orphan, None, Remedy::Report);
        orphan.person_id = None;
        assert_eq!(orphan.correction(true, false, Some("jdoe")), None);
        orphan.remedy = Remedy::Disable;
        assert_eq!(
            orphan.correction(true, false, Some("jdoe")),
            Some(Correction::DisableOrphan {
                subject: "jdoe".into()
            })
        );
        // Nothing to do for a disabled one, no way to reach one without a subject.
        assert_eq!(orphan.correction(false, false, Some("jdoe")), None);
        assert_eq!(orphan.correction(true, false, None), None);
        for s in Situation::ALL {
            assert!(s.remedies().contains(&Remedy::Report));
        }
    }
}
