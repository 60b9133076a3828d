//! Access reviews (certification campaigns) as plain data and pure functions: what a campaign
//! covers, who reviews each item, who may decide it, what is recommended and why, and what an
//! item comes to when the campaign closes.
//!
//! The rules live here and only here: nobody decides on their own access; keeping high or
//! privileged access needs a justification; a recommendation is never applied on its own to
//! high or privileged access.

use crate::model::{GrantSource, PersonStatus, Risk, WorkerType, string_enum};
use chrono::{DateTime, Months, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

string_enum!(
    /// Where a campaign stands.
    CampaignState {
        /// Reviewers decide its items.
        Open => "open",
        /// Its results are applied; nothing more is decided.
        Closed => "closed",
    }
);

string_enum!(
    /// A reviewer's decision on an item.
    ReviewDecision {
        /// The access is still needed.
        Keep => "keep",
        /// The access goes.
        Revoke => "revoke",
    }
);

string_enum!(
    /// What an item nobody decided comes to when its campaign closes.
    WhenUndecided {
        /// The access stays.
        Keep => "keep",
        /// The access goes.
        Revoke => "revoke",
        /// The recommendation is followed, except on high and privileged access, which stays.
        Recommendation => "recommendation",
    }
);

string_enum!(
    /// How often a campaign of a definition opens again.
    Recurrence {
        /// A calendar month after the last one opened.
        Monthly => "monthly",
        /// Three calendar months after the last one opened.
        Quarterly => "quarterly",
    }
);

string_enum!(
    /// When a `revoke` is carried out.
    ApplyAt {
        /// When the campaign closes (at its end, or by hand).
        Close => "close",
        /// As soon as it is decided.
        Decision => "decision",
    }
);

string_enum!(
    /// Who reviews an item, taken from the model.
    ReviewerKind {
        /// The person's manager.
        Manager => "manager",
        /// The entitlement's owner (a person or a team).
        Owner => "owner",
        /// The owner of the client the entitlement belongs to.
        ClientOwner => "client_owner",
        /// A named team of `[approvals.teams]`.
        Team => "team",
    }
);

string_enum!(
    /// What an item came to once its decision was carried out.
    ItemOutcome {
        /// The access stays.
        Kept => "kept",
        /// A revocation run was started for it.
        Revoked => "revoked",
        /// A role template gives it back at once: its owner was told instead of revoking it
        /// in a loop.
        Flagged => "flagged",
        /// The access was already gone (or held for another reason) when the result was
        /// applied: nothing to do.
        Gone => "gone",
    }
);

string_enum!(
    /// Who settled an item.
    SettledBy {
        /// A reviewer (or their delegate) decided it.
        Reviewer => "reviewer",
        /// Nobody decided: the campaign's `when_undecided`.
        Default => "default",
        /// Nobody decided: the recommendation was followed.
        Recommendation => "recommendation",
    }
);

string_enum!(
    /// One thing a recommendation rests on.
    Signal {
        /// The person is leaving (or has left).
        Leaving => "leaving",
        /// Nothing gives the access any more: its template no longer matches the person, its
        /// engagement ended, or its request's window is over.
        ReasonGone => "reason_gone",
        /// Found on the system by reconciliation; no rule or request gave it.
        Discovered => "discovered",
        /// Few or none of the person's peers hold it.
        PeersLack => "peers_lack",
        /// Most of the person's peers hold it too.
        PeersHold => "peers_hold",
    }
);

/// What a campaign covers: the grants held when it opens that match every list given (an
/// empty list matches everything).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewScope {
    /// Entitlements of these clients.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<String>,
    /// Entitlements on these systems.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub systems: Vec<String>,
    /// These entitlements.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entitlements: Vec<String>,
    /// Entitlements of these risks (`["high", "privileged"]`: every privileged grant).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub risks: Vec<Risk>,
    /// Grants given this way (`request`, `birthright`, `engagement`, `discovered`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<GrantSource>,
    /// People of these departments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub departments: Vec<String>,
    /// People of these worker types (`["contractor"]`: all contractors).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub worker_types: Vec<WorkerType>,
}

/// A held grant as the scope sees it.
#[derive(Debug, Clone, Copy)]
pub struct InScope<'a> {
    /// The entitlement.
    pub entitlement: &'a str,
    /// Its system.
    pub system: &'a str,
    /// Its client, for client-scoped access.
    pub client: Option<&'a str>,
    /// Its risk.
    pub risk: Risk,
    /// How it was given.
    pub source: GrantSource,
    /// The holder's department.
    pub department: Option<&'a str>,
    /// The holder's worker type.
    pub worker_type: WorkerType,
}

impl ReviewScope {
    /// Whether the scope covers this grant.
    pub fn covers(&self, g: &InScope<'_>) -> bool {
        fn any<T: PartialEq>(list: &[T], v: Option<T>) -> bool {
            list.is_empty() || v.is_some_and(|v| list.contains(&v))
        }
        any(&self.clients, g.client.map(str::to_string))
            && any(&self.systems, Some(g.system.to_string()))
            && any(&self.entitlements, Some(g.entitlement.to_string()))
            && any(&self.risks, Some(g.risk))
            && any(&self.sources, Some(g.source))
            && any(&self.departments, g.department.map(str::to_string))
            && any(&self.worker_types, Some(g.worker_type))
    }
}

impl ReviewScope {
    /// The systems and entitlements the scope names that the catalog does not have.
    pub fn unknown_names(
        &self,
        systems: &BTreeMap<String, crate::model::System>,
        entitlements: &BTreeMap<String, crate::model::Entitlement>,
    ) -> Vec<String> {
        let systems = self
            .systems
            .iter()
            .filter(|s| !systems.contains_key(*s))
            .map(|s| format!("scope names unknown system `{s}`"));
        let entitlements = self
            .entitlements
            .iter()
            .filter(|e| !entitlements.contains_key(*e))
            .map(|e| format!("scope names unknown entitlement `{e}`"));
        systems.chain(entitlements).collect()
    }
}

/// A campaign's definition: from `[[reviews]]` in `tenure.toml`, or given over the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CampaignDefinition {
    /// What the campaign covers.
    pub scope: ReviewScope,
    /// Who reviews each item.
    pub reviewer: ReviewerKind,
    /// The team that reviews, when `reviewer` is `team`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// Who reviews an item whose reviewer is the person themself, has left, or is not named
    /// (a person id or a team of `[approvals.teams]`). Without one, such items go to admins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// How long reviewers have, in days.
    pub duration_days: u32,
    /// Reminders to reviewers with items still open, this many days before the end.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reminder_days: Vec<u32>,
    /// Opens again on its own, a month or a quarter after it last opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrence: Option<Recurrence>,
    /// What an item nobody decided comes to.
    pub when_undecided: WhenUndecided,
    /// When a `revoke` is carried out.
    pub apply: ApplyAt,
    /// Whether the campaign closes by itself at its end (otherwise an admin closes it, and
    /// items still open past the end are overdue).
    pub auto_close: bool,
}

/// The most values a scope list (or the reminders) may hold.
pub const MAX_SCOPE_VALUES: usize = 1_000;
/// The longest name a definition may hold (a team, a fallback, a scope value).
pub const MAX_NAME: usize = 200;

/// The longest a campaign may last.
pub const MAX_DURATION_DAYS: u32 = 366;

impl CampaignDefinition {
    /// The problems of the definition (empty when it is sound), given the teams that exist.
    pub fn problems(&self, teams: &BTreeMap<String, Vec<String>>) -> Vec<String> {
        let mut out = Vec::new();
        if self.duration_days == 0 || self.duration_days > MAX_DURATION_DAYS {
            out.push(format!(
                "duration_days must be 1 to {MAX_DURATION_DAYS}, not {}",
                self.duration_days
            ));
        }
        if let Some(d) = self
            .reminder_days
            .iter()
            .find(|d| **d == 0 || **d >= self.duration_days)
        {
            out.push(format!(
                "reminder_days must be 1 to {} (days before the end), not {d}",
                self.duration_days.saturating_sub(1)
            ));
        }
        match (self.reviewer, &self.team) {
            (ReviewerKind::Team, None) => out.push("reviewer `team` needs `team`".into()),
            (ReviewerKind::Team, Some(t)) if !teams.contains_key(t) => {
                out.push(format!("team `{t}` is not a team of [approvals.teams]"))
            }
            (ReviewerKind::Team, Some(_)) | (_, None) => {}
            (_, Some(_)) => out.push("`team` is only for reviewer `team`".into()),
        }
        if self
            .fallback
            .as_deref()
            .is_some_and(|f| f.trim().is_empty())
        {
            out.push("fallback is empty".into());
        }
        let sc = &self.scope;
        let names = [
            ("scope.clients", &sc.clients),
            ("scope.systems", &sc.systems),
            ("scope.entitlements", &sc.entitlements),
            ("scope.departments", &sc.departments),
        ];
        for (key, list) in names {
            if list.len() > MAX_SCOPE_VALUES {
                out.push(format!("{key} lists more than {MAX_SCOPE_VALUES} values"));
            }
        }
        let texts = names
            .iter()
            .flat_map(|(key, list)| list.iter().map(move |v| (*key, v.as_str())))
            .chain(self.team.as_deref().map(|t| ("team", t)))
            .chain(self.fallback.as_deref().map(|f| ("fallback", f)));
        for (key, v) in texts {
            if let Err(e) = crate::text::check(v, MAX_NAME) {
                out.push(format!("{key}: {e}"));
            }
        }
        if self.reminder_days.len() > MAX_SCOPE_VALUES {
            out.push(format!(
                "reminder_days lists more than {MAX_SCOPE_VALUES} values"
            ));
        }
        out
    }

    /// When reminders are due for a campaign that ends at `due_at`, earliest first.
    pub fn reminders(&self, opened_at: i64, due_at: i64) -> Vec<i64> {
        let mut at: Vec<i64> = self
            .reminder_days
            .iter()
            .map(|d| due_at - i64::from(*d) * DAY_MS)
            .filter(|t| *t > opened_at)
            .collect();
        at.sort_unstable();
        at.dedup();
        at
    }
}

/// A day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

impl Recurrence {
    /// When a campaign opened at `opened_at` opens next.
    pub fn next(self, opened_at: i64) -> i64 {
        let months = match self {
            Recurrence::Monthly => 1,
            Recurrence::Quarterly => 3,
        };
        DateTime::<Utc>::from_timestamp_millis(opened_at)
            .and_then(|t| t.checked_add_months(Months::new(months)))
            .map(|t| t.timestamp_millis())
            .unwrap_or(opened_at + i64::from(months) * 30 * DAY_MS)
    }
}

/// Who reviews an item: a person, or any member of a team.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reviewer {
    /// This person.
    Person(String),
    /// Any member of this team of `[approvals.teams]`.
    Team(String),
}

/// How a team reviewer is stored and shown: `team:NAME`.
const TEAM_PREFIX: &str = "team:";

impl Reviewer {
    /// An owner as configured (a person id or a team name).
    pub fn named(owner: &str, teams: &BTreeMap<String, Vec<String>>) -> Reviewer {
        if teams.contains_key(owner) {
            Reviewer::Team(owner.to_string())
        } else {
            Reviewer::Person(owner.to_string())
        }
    }

    /// The stored form: the person's id, or `team:NAME`.
    pub fn stored(&self) -> String {
        match self {
            Reviewer::Person(p) => p.clone(),
            Reviewer::Team(t) => format!("{TEAM_PREFIX}{t}"),
        }
    }

    /// Reads the stored form.
    pub fn from_stored(s: &str) -> Reviewer {
        match s.strip_prefix(TEAM_PREFIX) {
            Some(t) => Reviewer::Team(t.to_string()),
            None => Reviewer::Person(s.to_string()),
        }
    }

    /// Who may answer as this reviewer.
    pub fn members<'a>(&'a self, teams: &'a BTreeMap<String, Vec<String>>) -> Vec<&'a str> {
        match self {
            Reviewer::Person(p) => vec![p.as_str()],
            Reviewer::Team(t) => teams
                .get(t)
                .map(|m| m.iter().map(String::as_str).collect())
                .unwrap_or_default(),
        }
    }
}

/// The reviewer of `subject`'s item: `named` when someone working other than the subject can
/// answer as it, else `fallback` on the same terms, else nobody (admins decide).
pub fn pick_reviewer(
    subject: &str,
    named: Option<Reviewer>,
    fallback: Option<Reviewer>,
    teams: &BTreeMap<String, Vec<String>>,
    is_working: impl Fn(&str) -> bool,
) -> Option<Reviewer> {
    let usable = |r: &Reviewer| {
        r.members(teams)
            .iter()
            .any(|m| *m != subject && is_working(m))
    };
    named
        .filter(|r| usable(r))
        .or_else(|| fallback.filter(|r| usable(r)))
}

/// Why someone may not decide an item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecideError {
    /// The item is about their own access.
    #[error("`{0}` may not review their own access")]
    OwnAccess(String),
    /// They are not its reviewer, nor a delegate of it.
    #[error("`{actor}` is not the reviewer of this item (it waits for {reviewer})")]
    NotReviewer {
        /// Who tried.
        actor: String,
        /// Who it waits for.
        reviewer: String,
    },
    /// Keeping high or privileged access needs a reason.
    #[error("keeping {0} access needs a justification")]
    JustificationNeeded(Risk),
    /// The campaign is closed.
    #[error("the campaign is closed")]
    Closed,
}

/// Whether `actor` may decide an item of `subject` reviewed by `reviewer` (`None`: nobody
/// named; an admin decides), given who delegated to the actor now. Returns whom they decide
/// for (themselves, or the reviewer who delegated to them).
pub fn may_decide(
    reviewer: Option<&Reviewer>,
    subject: &str,
    actor: &str,
    delegators: &[String],
    teams: &BTreeMap<String, Vec<String>>,
    admin: bool,
) -> Result<String, DecideError> {
    if actor == subject {
        return Err(DecideError::OwnAccess(actor.to_string()));
    }
    let Some(reviewer) = reviewer else {
        return if admin {
            Ok(actor.to_string())
        } else {
            Err(DecideError::NotReviewer {
                actor: actor.to_string(),
                reviewer: "an admin (no reviewer could be named)".into(),
            })
        };
    };
    let members = reviewer.members(teams);
    if members.contains(&actor) {
        return Ok(actor.to_string());
    }
    members
        .iter()
        .find(|m| **m != subject && delegators.iter().any(|d| d == *m))
        .map(|m| m.to_string())
        .ok_or_else(|| DecideError::NotReviewer {
            actor: actor.to_string(),
            reviewer: reviewer.stored(),
        })
}

/// Whether deciding `decision` on access of `risk` needs a justification.
pub fn needs_justification(decision: ReviewDecision, risk: Risk) -> bool {
    decision == ReviewDecision::Keep && risk >= Risk::High
}

string_enum!(
    /// Who a person's peers are.
    PeerGroup {
        /// People at work with the same department and title.
        DepartmentTitle => "department_title",
        /// People on an active engagement with the same client in the same role (for access
        /// an engagement gave).
        ClientRole => "client_role",
    }
);

/// How many of a person's peers hold the same access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PeerShare {
    /// Who the peers are.
    pub group: PeerGroup,
    /// Peers (the person excluded) holding it.
    pub holding: u32,
    /// Peers in all.
    pub peers: u32,
}

/// Fewer peers than this say nothing.
pub const MIN_PEERS: u32 = 5;

/// What is known of an item when its campaign opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signals {
    /// The person's status.
    pub status: PersonStatus,
    /// How the grant was given.
    pub source: GrantSource,
    /// Whether what gave it still does (its template still matches, its engagement is
    /// current, its request's window is open).
    pub still_given: bool,
    /// The person's peers, when they have a department and a title.
    pub peers: Option<PeerShare>,
}

impl Signals {
    /// The facts as stored with an item, in a few bytes (`active 1 d:9/49`: status, whether
    /// what gave the access still does, the peer group with its holders and size, or `-`).
    /// The grant's source is stored beside them. The facts are frozen when the campaign
    /// opens; the recommendation is worked out from them ([`recommend`]).
    pub fn encode(&self) -> String {
        let peers = match self.peers {
            None => "-".to_string(),
            Some(p) => {
                let g = match p.group {
                    PeerGroup::DepartmentTitle => 'd',
                    PeerGroup::ClientRole => 'c',
                };
                format!("{g}:{}/{}", p.holding, p.peers)
            }
        };
        format!("{} {} {peers}", self.status, u8::from(self.still_given))
    }

    /// Reads [`Signals::encode`]'s form back, with the grant's `source`.
    pub fn decode(text: &str, source: GrantSource) -> Result<Signals, String> {
        let bad = || format!("review facts `{text}` are not `STATUS 0|1 PEERS`");
        let mut parts = text.split(' ');
        let (Some(status), Some(still), Some(peers), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let status: PersonStatus = status
            .parse()
            .map_err(|e: crate::UnknownValue| e.to_string())?;
        let still_given = match still {
            "0" => false,
            "1" => true,
            _ => return Err(bad()),
        };
        let peers = match peers {
            "-" => None,
            p => {
                let (g, counts) = p.split_once(':').ok_or_else(bad)?;
                let (holding, all) = counts.split_once('/').ok_or_else(bad)?;
                Some(PeerShare {
                    group: match g {
                        "d" => PeerGroup::DepartmentTitle,
                        "c" => PeerGroup::ClientRole,
                        _ => return Err(bad()),
                    },
                    holding: holding.parse().map_err(|_| bad())?,
                    peers: all.parse().map_err(|_| bad())?,
                })
            }
        };
        Ok(Signals {
            status,
            source,
            still_given,
            peers,
        })
    }
}

/// One piece of evidence behind a recommendation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Evidence {
    /// What it rests on.
    pub signal: Signal,
    /// What it suggests.
    pub suggests: ReviewDecision,
    /// How sure, in percent.
    pub confidence: u8,
    /// What was seen, in words.
    pub detail: String,
}

/// A recommendation: the decision the strongest evidence suggests, and all of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Recommendation {
    /// What to decide.
    pub decision: ReviewDecision,
    /// How sure, in percent: the strongest evidence's confidence.
    pub confidence: u8,
    /// Every piece of evidence, strongest first.
    pub evidence: Vec<Evidence>,
}

/// Confidence a leaving person no longer needs the access.
pub const LEAVING_CONFIDENCE: u8 = 90;
/// Confidence that access nothing gives any more is not needed.
pub const REASON_GONE_CONFIDENCE: u8 = 95;
/// Confidence that access found on a system, given by nothing, is not needed.
pub const DISCOVERED_CONFIDENCE: u8 = 80;

/// The confidence peer evidence gives: the share of peers on the suggested side, times a
/// weight that grows from 55 % at five peers to 85 % at 35 or more: never as strong as the
/// evidence of a person leaving or of a reason gone.
pub fn peer_confidence(share: f64, peers: u32) -> u8 {
    let weight = 50.0 + f64::from(peers.min(35));
    (share * weight).round().clamp(0.0, 100.0) as u8
}

/// The recommendation for an item, from what is known of it; none when nothing is known.
///
/// - the person is leaving: `revoke`, 90 %;
/// - what gave the access no longer does: `revoke`, 95 %;
/// - found on the system, given by nothing: `revoke`, 80 %;
/// - with at least five peers: at most 10 % of them hold it, `revoke`; at least 50 %, `keep`;
///   the confidence is [`peer_confidence`] of the share on that side.
///
/// The strongest evidence decides (`revoke` on a tie).
pub fn recommend(s: &Signals) -> Option<Recommendation> {
    let mut evidence = Vec::new();
    if matches!(s.status, PersonStatus::Leaving | PersonStatus::Terminated) {
        evidence.push(Evidence {
            signal: Signal::Leaving,
            suggests: ReviewDecision::Revoke,
            confidence: LEAVING_CONFIDENCE,
            detail: format!("the person is {}", s.status),
        });
    }
    match (s.source, s.still_given) {
        (GrantSource::Discovered, _) => evidence.push(Evidence {
            signal: Signal::Discovered,
            suggests: ReviewDecision::Revoke,
            confidence: DISCOVERED_CONFIDENCE,
            detail: "found on the system by reconciliation; no rule or request gave it".into(),
        }),
        (source, false) => evidence.push(Evidence {
            signal: Signal::ReasonGone,
            suggests: ReviewDecision::Revoke,
            confidence: REASON_GONE_CONFIDENCE,
            detail: match source {
                GrantSource::Birthright => "its role template no longer matches the person",
                GrantSource::Engagement => "the engagement that gave it has ended",
                _ => "the request that gave it is no longer in force",
            }
            .into(),
        }),
        _ => {}
    }
    if let Some(p) = s.peers.filter(|p| p.peers >= MIN_PEERS) {
        let share = f64::from(p.holding) / f64::from(p.peers);
        let who = match p.group {
            PeerGroup::DepartmentTitle => "with the same department and title",
            PeerGroup::ClientRole => "in the same role at the same client",
        };
        let detail = format!("{} of {} peers {who} hold it", p.holding, p.peers);
        if share <= 0.1 {
            evidence.push(Evidence {
                signal: Signal::PeersLack,
                suggests: ReviewDecision::Revoke,
                confidence: peer_confidence(1.0 - share, p.peers),
                detail,
            });
        } else if share >= 0.5 {
            evidence.push(Evidence {
                signal: Signal::PeersHold,
                suggests: ReviewDecision::Keep,
                confidence: peer_confidence(share, p.peers),
                detail,
            });
        }
    }
    evidence.sort_by(|a, b| {
        b.confidence
            .cmp(&a.confidence)
            .then_with(|| b.suggests.cmp(&a.suggests))
    });
    let top = evidence.first()?;
    Some(Recommendation {
        decision: top.suggests,
        confidence: top.confidence,
        evidence,
    })
}

/// A recommendation below this confidence is not followed for an undecided item.
pub const FOLLOW_CONFIDENCE: u8 = 50;

/// What an item comes to at close: its decision, or the campaign's rule for undecided items.
/// A recommendation is never followed on its own for high or privileged access, nor below
/// [`FOLLOW_CONFIDENCE`]: such an item is kept.
pub fn settle(
    decided: Option<ReviewDecision>,
    recommended: Option<(ReviewDecision, u8)>,
    risk: Risk,
    when_undecided: WhenUndecided,
) -> (ReviewDecision, SettledBy) {
    match (decided, when_undecided) {
        (Some(d), _) => (d, SettledBy::Reviewer),
        (None, WhenUndecided::Keep) => (ReviewDecision::Keep, SettledBy::Default),
        (None, WhenUndecided::Revoke) => (ReviewDecision::Revoke, SettledBy::Default),
        (None, WhenUndecided::Recommendation) => match recommended {
            Some((d, c)) if risk < Risk::High && c >= FOLLOW_CONFIDENCE => {
                (d, SettledBy::Recommendation)
            }
            _ => (ReviewDecision::Keep, SettledBy::Default),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn teams() -> BTreeMap<String, Vec<String>> {
        BTreeMap::from([(
            "sec".to_string(),
            vec!["ann".to_string(), "bob".to_string()],
        )])
    }

    #[test]
    fn an_empty_scope_covers_everything_and_each_list_narrows_it() {
        let g = InScope {
            entitlement: "crm:acme-admin",
            system: "crm",
            client: Some("acme"),
            risk: Risk::Privileged,
            source: GrantSource::Request,
            department: None,
            worker_type: WorkerType::Contractor,
        };
        assert!(ReviewScope::default().covers(&g));
        let privileged = ReviewScope {
            risks: vec![Risk::High, Risk::Privileged],
            ..Default::default()
        };
        assert!(privileged.covers(&g));
        let acme_contractors = ReviewScope {
            clients: vec!["acme".into()],
            worker_types: vec![WorkerType::Contractor],
            ..Default::default()
        };
        assert!(acme_contractors.covers(&g));
        let sales = ReviewScope {
            departments: vec!["sales".into()],
            ..Default::default()
        };
        assert!(!sales.covers(&g), "no department is not `sales`");
        let other_client = ReviewScope {
            clients: vec!["globex".into()],
            ..Default::default()
        };
        assert!(!other_client.covers(&g));
    }

    #[test]
    fn nobody_reviews_their_own_access_and_the_fallback_steps_in() {
        let working = |p: &str| p != "gone";
        let t = teams();
        let manager = |m: &str| Some(Reviewer::Person(m.into()));
        assert_eq!(
            pick_reviewer("p", manager("m"), None, &t, working),
            manager("m")
        );
        let fallback = Some(Reviewer::Team("sec".into()));
        assert_eq!(
            pick_reviewer("p", manager("p"), fallback.clone(), &t, working),
            fallback,
            "the person themself is never their reviewer"
        );
        assert_eq!(
            pick_reviewer("p", manager("gone"), fallback.clone(), &t, working),
            fallback,
            "a reviewer who left is replaced"
        );
        assert_eq!(pick_reviewer("p", None, None, &t, working), None);
        // A team whose only other member is the subject cannot review them.
        let t1 = BTreeMap::from([("solo".to_string(), vec!["p".to_string()])]);
        assert_eq!(
            pick_reviewer("p", Some(Reviewer::Team("solo".into())), None, &t1, working),
            None
        );
    }

    #[test]
    fn deciding_takes_the_reviewer_a_team_member_or_a_delegate_never_the_subject() {
        let t = teams();
        let ann = Reviewer::Person("ann".into());
        let sec = Reviewer::Team("sec".into());
        assert_eq!(
            may_decide(Some(&ann), "p", "ann", &[], &t, false),
            Ok("ann".into())
        );
        assert_eq!(
            may_decide(Some(&ann), "p", "dan", &["ann".into()], &t, false),
            Ok("ann".into()),
            "a delegate decides for the reviewer"
        );
        assert!(matches!(
            may_decide(Some(&ann), "p", "dan", &[], &t, true),
            Err(DecideError::NotReviewer { .. })
        ));
        assert_eq!(
            may_decide(Some(&sec), "p", "bob", &[], &t, false),
            Ok("bob".into())
        );
        assert_eq!(
            may_decide(Some(&sec), "ann", "ann", &[], &t, true),
            Err(DecideError::OwnAccess("ann".into())),
            "not even a team member or an admin decides on their own access"
        );
        assert_eq!(
            may_decide(Some(&sec), "ann", "dan", &["ann".into()], &t, false),
            Err(DecideError::NotReviewer {
                actor: "dan".into(),
                reviewer: "team:sec".into()
            }),
            "a delegate of the subject does not decide for them"
        );
        assert_eq!(
            may_decide(None, "p", "root", &[], &t, true),
            Ok("root".into())
        );
        assert!(may_decide(None, "p", "ann", &[], &t, false).is_err());
    }

    #[test]
    fn recommendations_say_why_and_how_sure() {
        let base = Signals {
            status: PersonStatus::Active,
            source: GrantSource::Birthright,
            still_given: true,
            peers: None,
        };
        assert_eq!(recommend(&base), None, "nothing known, nothing recommended");
        assert_eq!(base.encode(), "active 1 -");
        for bad in [
            "",
            "active 1",
            "active 2 -",
            "gone 1 -",
            "active 1 x:1/2",
            "active 1 d:1",
        ] {
            assert!(Signals::decode(bad, GrantSource::Request).is_err(), "{bad}");
        }
        let leaving = recommend(&Signals {
            status: PersonStatus::Leaving,
            ..base
        })
        .unwrap();
        assert_eq!(
            (leaving.decision, leaving.confidence),
            (ReviewDecision::Revoke, 90)
        );
        let gone = recommend(&Signals {
            still_given: false,
            source: GrantSource::Engagement,
            peers: Some(PeerShare {
                group: PeerGroup::DepartmentTitle,
                holding: 40,
                peers: 40,
            }),
            ..base
        })
        .unwrap();
        assert_eq!(
            (gone.decision, gone.confidence),
            (ReviewDecision::Revoke, 95)
        );
        assert_eq!(gone.evidence.len(), 2, "{gone:?}");
        assert_eq!(gone.evidence[1].signal, Signal::PeersHold);
        let peers = |holding, peers| {
            recommend(&Signals {
                peers: Some(PeerShare {
                    group: PeerGroup::DepartmentTitle,
                    holding,
                    peers,
                }),
                ..base
            })
        };
        assert_eq!(peers(0, 4), None, "four peers say nothing");
        let lack = peers(0, 5).unwrap();
        assert_eq!(
            lack.evidence[0].detail,
            "0 of 5 peers with the same department and title hold it"
        );
        assert_eq!(
            (lack.decision, lack.confidence),
            (ReviewDecision::Revoke, 55)
        );
        assert_eq!(peers(0, 100).unwrap().confidence, 85);
        assert_eq!(peers(3, 10), None, "30 % holding suggests nothing");
        let hold = peers(9, 10).unwrap();
        assert_eq!((hold.decision, hold.confidence), (ReviewDecision::Keep, 54));
    }

    #[test]
    fn an_undecided_item_follows_the_campaign_and_recommendations_never_alone_on_high_risk() {
        use ReviewDecision::*;
        let rec = Some((Revoke, 90));
        assert_eq!(
            settle(Some(Keep), rec, Risk::Low, WhenUndecided::Revoke),
            (Keep, SettledBy::Reviewer)
        );
        assert_eq!(
            settle(None, rec, Risk::Low, WhenUndecided::Keep),
            (Keep, SettledBy::Default)
        );
        assert_eq!(
            settle(None, None, Risk::Privileged, WhenUndecided::Revoke),
            (Revoke, SettledBy::Default)
        );
        assert_eq!(
            settle(None, rec, Risk::Medium, WhenUndecided::Recommendation),
            (Revoke, SettledBy::Recommendation)
        );
        assert_eq!(
            settle(None, rec, Risk::High, WhenUndecided::Recommendation),
            (Keep, SettledBy::Default)
        );
        assert_eq!(
            settle(
                None,
                Some((Revoke, 40)),
                Risk::Low,
                WhenUndecided::Recommendation
            ),
            (Keep, SettledBy::Default)
        );
    }

    #[test]
    fn a_definition_names_its_mistakes() {
        let mut d = CampaignDefinition {
            scope: ReviewScope::default(),
            reviewer: ReviewerKind::Team,
            team: Some("nobody".into()),
            fallback: None,
            duration_days: 14,
            reminder_days: vec![14],
            recurrence: Some(Recurrence::Quarterly),
            when_undecided: WhenUndecided::Keep,
            apply: ApplyAt::Close,
            auto_close: true,
        };
        let p = d.problems(&teams());
        assert_eq!(p.len(), 2, "{p:?}");
        d.team = Some("sec".into());
        d.reminder_days = vec![7, 2];
        assert!(d.problems(&teams()).is_empty());
        let mut nul = d.clone();
        nul.fallback = Some("a\0b".into());
        nul.scope.departments = vec!["x".repeat(201)];
        let p = nul.problems(&teams());
        assert_eq!(p.len(), 2, "{p:?}");
        let due = 20 * DAY_MS;
        assert_eq!(d.reminders(6 * DAY_MS, due), vec![13 * DAY_MS, 18 * DAY_MS]);
        assert_eq!(
            d.reminders(14 * DAY_MS, due),
            vec![18 * DAY_MS],
            "no reminder before the opening"
        );
    }

    #[test]
    fn recurrence_follows_the_calendar() {
        let jan31 = chrono::NaiveDate::from_ymd_opt(2027, 1, 31)
            .unwrap()
            .and_hms_opt(9, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis();
        let feb = DateTime::<Utc>::from_timestamp_millis(Recurrence::Monthly.next(jan31)).unwrap();
        assert_eq!(feb.to_rfc3339(), "2027-02-28T09:00:00+00:00");
        let q = DateTime::<Utc>::from_timestamp_millis(Recurrence::Quarterly.next(jan31)).unwrap();
        assert_eq!(q.to_rfc3339(), "2027-04-30T09:00:00+00:00");
    }

    proptest! {
        #[test]
        fn settling_never_revokes_high_risk_access_on_a_recommendation_alone(
            decided in proptest::option::of(prop_oneof![Just(ReviewDecision::Keep), Just(ReviewDecision::Revoke)]),
            rec in proptest::option::of((prop_oneof![Just(ReviewDecision::Keep), Just(ReviewDecision::Revoke)], 0u8..=100)),
            risk in prop_oneof![Just(Risk::Low), Just(Risk::Medium), Just(Risk::High), Just(Risk::Privileged)],
            when in prop_oneof![Just(WhenUndecided::Keep), Just(WhenUndecided::Revoke), Just(WhenUndecided::Recommendation)],
        ) {
            let (d, by) = settle(decided, rec, risk, when);
            if let Some(x) = decided {
                prop_assert_eq!((d, by), (x, SettledBy::Reviewer));
            }
            if by == SettledBy::Recommendation {
                prop_assert!(risk < Risk::High);
                prop_assert_eq!(Some(d), rec.map(|r| r.0));
            }
            if decided.is_none() && when == WhenUndecided::Keep {
                prop_assert_eq!(d, ReviewDecision::Keep);
            }
        }

        #[test]
        fn a_recommendation_is_its_strongest_evidence(
            leaving in any::<bool>(),
            still in any::<bool>(),
            source in prop_oneof![Just(GrantSource::Birthright), Just(GrantSource::Engagement), Just(GrantSource::Request), Just(GrantSource::Discovered)],
            peers in proptest::option::of((0u32..60, 0u32..60)),
        ) {
            let s = Signals {
                status: if leaving { PersonStatus::Leaving } else { PersonStatus::Active },
                source,
                still_given: still,
                peers: peers.map(|(h, p)| PeerShare { group: PeerGroup::ClientRole, holding: h.min(p), peers: p }),
            };
            prop_assert_eq!(Signals::decode(&s.encode(), source), Ok(s));
            if let Some(r) = recommend(&s) {
                prop_assert!(r.confidence <= 100);
                prop_assert!(r.evidence.iter().all(|e| e.confidence <= r.confidence));
                prop_assert_eq!(r.evidence[0].suggests, r.decision);
                if leaving {
                    prop_assert_eq!(r.decision, ReviewDecision::Revoke);
                }
            } else {
                prop_assert!(!leaving && still && source != GrantSource::Discovered);
            }
        }
    }
}
