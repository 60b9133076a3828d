//! Durable timers as one typed enum.
//!
//! A timer is stored as three columns: its kind (the enum's tag), its subject (what it is about,
//! unique per kind, so scheduling again moves it) and its payload (the variant's fields, JSON).
//! [`Timer::kind`], [`Timer::subject`] and [`Timer::payload`] give the columns to write;
//! [`Timer::from_stored`] reads them back, including the shapes older versions wrote, and says
//! precisely why a row cannot be read instead of guessing.
//!
//! The id a timer is about (an approval, a person, an engagement) is its subject and is not
//! repeated in the payload: those fields are skipped when serializing and taken from the subject
//! when reading.
//!
//! What a timer does when it fires is decided here from what is stored, without I/O
//! ([`GrantExpiry::check`], [`PersonEnd::leave`], [`EngagementEnd::end`]); the scheduler loads
//! the facts, asks, and writes what it is told.

use crate::event::{ClientInput, EngagementInput, EventInput, EventType, PersonInput};
use crate::model::{Engagement, Grant, GrantSource, GrantState, Person, PersonStatus, string_enum};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

string_enum!(
    /// What a timer does when it fires: the `kind` column of the `timers` table.
    TimerKind {
        /// A time-bound grant reaches its end: revoke it.
        #[serde(rename = "grant.expiry")]
        GrantExpiry => "grant.expiry",
        /// An approval stage waited too long: escalate it.
        #[serde(rename = "approval.escalate")]
        ApprovalEscalate => "approval.escalate",
        /// An approval was not decided in time: it expires.
        #[serde(rename = "approval.deadline")]
        ApprovalDeadline => "approval.deadline",
        /// A person's end date has passed: they leave.
        #[serde(rename = "person.end")]
        PersonEnd => "person.end",
        /// An engagement's end date has passed: it ends.
        #[serde(rename = "engagement.end")]
        EngagementEnd => "engagement.end",
        /// An access review campaign's end: it closes and its results are applied.
        #[serde(rename = "review.close")]
        ReviewClose => "review.close",
        /// Reviewers with open items are reminded.
        #[serde(rename = "review.remind")]
        ReviewRemind => "review.remind",
        /// A recurring campaign opens again.
        #[serde(rename = "review.open")]
        ReviewOpen => "review.open",
    }
);

impl TimerKind {
    /// The payload field that holds the timer's subject, for kinds whose subject is an id the
    /// payload does not repeat.
    fn subject_field(self) -> Option<&'static str> {
        match self {
            TimerKind::GrantExpiry => None,
            TimerKind::ApprovalEscalate | TimerKind::ApprovalDeadline => Some("approval_id"),
            TimerKind::PersonEnd => Some("person_id"),
            TimerKind::EngagementEnd => Some("engagement_id"),
            TimerKind::ReviewClose | TimerKind::ReviewRemind => Some("campaign_id"),
            TimerKind::ReviewOpen => Some("name"),
        }
    }
}

string_enum!(
    /// Where a row of the `timers` table stands: a timer, or a webhook delivery of the
    /// notification outbox, which shares the table.
    TimerState {
        /// Waiting for its time (a delivery: for its first or next attempt).
        Pending => "pending",
        /// A delivery being sent under a lease.
        Running => "running",
        /// Fired (a delivery: delivered).
        Fired => "fired",
        /// Cancelled before it fired.
        Cancelled => "cancelled",
        /// A delivery that failed its last attempt.
        Dead => "dead",
        /// A timer whose stored kind or payload this version cannot read: kept, with the
        /// reason in `last_error`, and never fired.
        Unreadable => "unreadable",
    }
);

/// A durable timer: what fires and everything its handler needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload")]
pub enum Timer {
    /// A time-bound grant ends.
    #[serde(rename = "grant.expiry")]
    GrantExpiry(GrantExpiry),
    /// An approval's current stage timed out.
    #[serde(rename = "approval.escalate")]
    ApprovalEscalate(ApprovalTimer),
    /// An approval's deadline passed.
    #[serde(rename = "approval.deadline")]
    ApprovalDeadline(ApprovalTimer),
    /// A person's contract end date passed.
    #[serde(rename = "person.end")]
    PersonEnd(PersonEnd),
    /// An engagement's end date passed.
    #[serde(rename = "engagement.end")]
    EngagementEnd(EngagementEnd),
    /// A campaign's end.
    #[serde(rename = "review.close")]
    ReviewClose(ReviewTimer),
    /// A campaign's next reminder.
    #[serde(rename = "review.remind")]
    ReviewRemind(ReviewTimer),
    /// A recurring campaign's next opening.
    #[serde(rename = "review.open")]
    ReviewOpen(ReviewOpening),
}

/// A campaign's end or reminder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewTimer {
    /// The campaign (the timer's subject).
    #[serde(skip_serializing)]
    pub campaign_id: String,
}

/// The next opening of a recurring campaign definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewOpening {
    /// The definition's name in `[[reviews]]` (the timer's subject).
    #[serde(skip_serializing)]
    pub name: String,
}

/// The end of a time-bound grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "GrantExpiryPayload")]
pub struct GrantExpiry {
    /// Who holds the grant.
    pub person_id: String,
    /// What is held.
    pub entitlement: String,
    /// Why it is held: the timer fires only if the grant is still held for this reason.
    pub source: GrantSource,
    /// The template, engagement or request the grant came from.
    pub source_ref: String,
}

/// Every field an expiry's payload has held. Timers written before planned grants could be
/// time-bound name the request behind the grant (`request_id`) instead of `source` and
/// `source_ref`.
#[derive(Deserialize)]
struct GrantExpiryPayload {
    person_id: String,
    entitlement: String,
    source: Option<GrantSource>,
    source_ref: Option<String>,
    request_id: Option<String>,
}

impl TryFrom<GrantExpiryPayload> for GrantExpiry {
    type Error = String;

    fn try_from(p: GrantExpiryPayload) -> Result<GrantExpiry, String> {
        let (source, source_ref) = match (p.source, p.source_ref, p.request_id) {
            (Some(source), Some(source_ref), None) => (source, source_ref),
            (None, None, Some(request_id)) => (GrantSource::Request, request_id),
            _ => {
                return Err(
                    "an expiry names either `source` and `source_ref`, or only `request_id`".into(),
                );
            }
        };
        Ok(GrantExpiry {
            person_id: p.person_id,
            entitlement: p.entitlement,
            source,
            source_ref,
        })
    }
}

/// An approval's escalation or deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalTimer {
    /// The approval (the timer's subject).
    #[serde(skip_serializing)]
    pub approval_id: String,
}

/// A person's contract end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonEnd {
    /// The person (the timer's subject).
    #[serde(skip_serializing)]
    pub person_id: String,
    /// Their last day: the timer does nothing if the person's end date changed since.
    pub end_date: NaiveDate,
}

/// An engagement's end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngagementEnd {
    /// The engagement (the timer's subject).
    #[serde(skip_serializing)]
    pub engagement_id: String,
    /// Whose engagement it is.
    pub person_id: String,
    /// The client.
    pub client_id: String,
    /// The engagement role.
    pub role: String,
    /// Its last day: the timer does nothing if the engagement's end date changed since.
    pub end_date: NaiveDate,
}

/// A stored timer that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read a `{kind}` timer for `{subject}`: {reason}")]
pub struct TimerError {
    /// The stored kind.
    pub kind: String,
    /// The stored subject.
    pub subject: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The timer subject of a person's grant of an entitlement.
pub fn grant_subject(person_id: &str, entitlement: &str) -> String {
    serde_json::json!([person_id, entitlement]).to_string()
}

impl Timer {
    /// What the timer does: its stored kind.
    pub fn kind(&self) -> TimerKind {
        match self {
            Timer::GrantExpiry(_) => TimerKind::GrantExpiry,
            Timer::ApprovalEscalate(_) => TimerKind::ApprovalEscalate,
            Timer::ApprovalDeadline(_) => TimerKind::ApprovalDeadline,
            Timer::PersonEnd(_) => TimerKind::PersonEnd,
            Timer::EngagementEnd(_) => TimerKind::EngagementEnd,
            Timer::ReviewClose(_) => TimerKind::ReviewClose,
            Timer::ReviewRemind(_) => TimerKind::ReviewRemind,
            Timer::ReviewOpen(_) => TimerKind::ReviewOpen,
        }
    }

    /// What the timer is about, unique per kind: scheduling a timer of the same kind and
    /// subject moves it.
    pub fn subject(&self) -> String {
        match self {
            Timer::GrantExpiry(e) => grant_subject(&e.person_id, &e.entitlement),
            Timer::ApprovalEscalate(a) | Timer::ApprovalDeadline(a) => a.approval_id.clone(),
            Timer::PersonEnd(p) => p.person_id.clone(),
            Timer::EngagementEnd(e) => e.engagement_id.clone(),
            Timer::ReviewClose(r) | Timer::ReviewRemind(r) => r.campaign_id.clone(),
            Timer::ReviewOpen(o) => o.name.clone(),
        }
    }

    /// The stored payload: the variant's fields but the subject.
    pub fn payload(&self) -> serde_json::Value {
        let mut tagged = serde_json::to_value(self).expect("a timer serializes");
        tagged
            .get_mut("payload")
            .map(serde_json::Value::take)
            .expect("a timer serializes with its payload")
    }

    /// Reads a stored timer from its kind, subject and payload text, in the shape this version
    /// writes or one an older version wrote.
    pub fn from_stored(kind: &str, subject: &str, payload: &str) -> Result<Timer, TimerError> {
        let error = |reason: String| TimerError {
            kind: kind.to_string(),
            subject: subject.to_string(),
            reason,
        };
        let known: TimerKind = kind
            .parse()
            .map_err(|e: crate::UnknownValue| error(e.to_string()))?;
        let mut payload: serde_json::Value = serde_json::from_str(payload)
            .map_err(|e| error(format!("payload is not JSON: {e}")))?;
        let Some(fields) = payload.as_object_mut() else {
            return Err(error("payload is not a JSON object".into()));
        };
        if let Some(field) = known.subject_field() {
            fields.insert(field.into(), subject.into());
        }
        let tagged = serde_json::json!({ "kind": known.as_str(), "payload": payload });
        serde_json::from_value(tagged).map_err(|e| error(e.to_string()))
    }
}

/// How long an expiry whose grant step has not finished waits before it looks again.
pub const EXPIRY_RECHECK_MS: i64 = 30_000;

/// What a grant's expiry finds when it fires, from the grant as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryCheck {
    /// The grant was extended, given again for another reason, settled or is gone: nothing to
    /// do.
    Moot,
    /// Its grant step has not finished (a system is down): look again at this time.
    LookAgain(i64),
    /// Due: held (or perhaps held: `uncertain`) for this timer's reason, and its window, which
    /// ended at `expires_at`, has passed. It is revoked unless another source now wants it as
    /// standing access.
    Due {
        /// When the window ended.
        expires_at: i64,
    },
}

impl GrantExpiry {
    /// Checks the expiry at `now` against the person's grant of its entitlement as stored
    /// (`None` when there is none).
    pub fn check(&self, grant: Option<&Grant>, now: i64) -> ExpiryCheck {
        let Some(grant) = grant else {
            return ExpiryCheck::Moot;
        };
        let ours = grant.entitlement == self.entitlement
            && grant.source == self.source
            && grant.source_ref == self.source_ref;
        match (ours, grant.expires_at) {
            (true, Some(expires_at)) if expires_at <= now => match grant.state {
                GrantState::Granted | GrantState::Uncertain => ExpiryCheck::Due { expires_at },
                GrantState::Pending => {
                    ExpiryCheck::LookAgain(now.saturating_add(EXPIRY_RECHECK_MS))
                }
                GrantState::AwaitingApproval
                | GrantState::Denied
                | GrantState::Revoked
                | GrantState::Failed => ExpiryCheck::Moot,
            },
            _ => ExpiryCheck::Moot,
        }
    }
}

impl PersonEnd {
    /// The leave the scheduler raises for the person as stored (`None`: gone), keyed by person
    /// and date so it is stored once; none when their end date changed since or they are
    /// already leaving or gone.
    pub fn leave(&self, person: Option<&Person>) -> Option<EventInput> {
        let person = person?;
        let still = person.end_date == Some(self.end_date)
            && matches!(person.status, PersonStatus::Active | PersonStatus::PreHire);
        still.then(|| EventInput {
            id: Some(format!("end-date:{}:{}", person.id, self.end_date)),
            kind: EventType::Leave,
            person: PersonInput {
                id: person.id.clone(),
                end_date: Some(self.end_date),
                ..Default::default()
            },
            engagement: None,
            effective_at: None,
            source: Some(SCHEDULER.into()),
        })
    }
}

impl EngagementEnd {
    /// The engagement end the scheduler raises, given the person's engagements as stored; none
    /// when the engagement is gone, already ended, or its end date changed since.
    pub fn end(&self, engagements: &[Engagement]) -> Option<EventInput> {
        let e = engagements.iter().find(|e| e.id == self.engagement_id)?;
        (e.active && e.end_date == Some(self.end_date)).then(|| EventInput {
            id: Some(format!("end-date:{}:{}", e.id, self.end_date)),
            kind: EventType::EngagementEnd,
            person: PersonInput {
                id: self.person_id.clone(),
                ..Default::default()
            },
            engagement: Some(EngagementInput {
                id: Some(e.id.clone()),
                client: ClientInput::Id(e.client_id.clone()),
                role: e.role.clone(),
                start_date: None,
                end_date: Some(self.end_date),
            }),
            effective_at: None,
            source: Some(SCHEDULER.into()),
        })
    }
}

/// The source named on the events the scheduler raises.
pub const SCHEDULER: &str = "scheduler";

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(t: &Timer) -> Timer {
        Timer::from_stored(t.kind().as_str(), &t.subject(), &t.payload().to_string()).unwrap()
    }

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn every_kind() -> Vec<Timer> {
        vec![
            Timer::GrantExpiry(GrantExpiry {
                person_id: "p-1".into(),
                entitlement: "github:admins".into(),
                source: GrantSource::Engagement,
                source_ref: "eng-1".into(),
            }),
            Timer::ApprovalEscalate(ApprovalTimer {
                approval_id: "ap-1".into(),
            }),
            Timer::ApprovalDeadline(ApprovalTimer {
                approval_id: "ap-1".into(),
            }),
            Timer::PersonEnd(PersonEnd {
                person_id: "p-1".into(),
                end_date: date("2026-03-31"),
            }),
            Timer::EngagementEnd(EngagementEnd {
                engagement_id: "eng-1".into(),
                person_id: "p-1".into(),
                client_id: "acme".into(),
                role: "consultant".into(),
                end_date: date("2026-06-30"),
            }),
            Timer::ReviewClose(ReviewTimer {
                campaign_id: "rc-1".into(),
            }),
            Timer::ReviewRemind(ReviewTimer {
                campaign_id: "rc-1".into(),
            }),
            Timer::ReviewOpen(ReviewOpening {
                name: "privileged-quarterly".into(),
            }),
        ]
    }

    #[test]
    fn every_kind_reads_back_as_written() {
        let timers = every_kind();
        assert_eq!(timers.len(), TimerKind::ALL.len());
        for t in timers {
            assert_eq!(stored(&t), t);
            // The serde tag is the stored kind.
            assert_eq!(serde_json::to_value(&t).unwrap()["kind"], t.kind().as_str());
        }
    }

    #[test]
    fn payloads_keep_the_shape_stored_rows_have() {
        let [
            expiry,
            escalate,
            deadline,
            person,
            engagement,
            close,
            remind,
            open,
        ] = every_kind().try_into().unwrap();
        assert_eq!(close.payload(), serde_json::json!({}));
        assert_eq!(
            (close.subject(), remind.subject()),
            ("rc-1".into(), "rc-1".into())
        );
        assert_eq!(open.subject(), "privileged-quarterly");
        assert_eq!(
            expiry.payload(),
            serde_json::json!({"person_id": "p-1", "entitlement": "github:admins", "source": "engagement", "source_ref": "eng-1"})
        );
        assert_eq!(expiry.subject(), r#"["p-1","github:admins"]"#);
        assert_eq!(escalate.payload(), serde_json::json!({}));
        assert_eq!(deadline.subject(), "ap-1");
        assert_eq!(
            person.payload(),
            serde_json::json!({"end_date": "2026-03-31"})
        );
        assert_eq!(person.subject(), "p-1");
        assert_eq!(
            engagement.payload(),
            serde_json::json!({"person_id": "p-1", "client_id": "acme", "role": "consultant", "end_date": "2026-06-30"})
        );
        assert_eq!(engagement.subject(), "eng-1");
    }

    #[test]
    fn both_stored_shapes_of_an_expiry_read() {
        let subject = r#"["p-1","github:admins"]"#;
        let current = r#"{"person_id":"p-1","entitlement":"github:admins","source":"request","source_ref":"req-1"}"#;
        let older = r#"{"person_id":"p-1","entitlement":"github:admins","request_id":"req-1"}"#;
        let want = Timer::GrantExpiry(GrantExpiry {
            person_id: "p-1".into(),
            entitlement: "github:admins".into(),
            source: GrantSource::Request,
            source_ref: "req-1".into(),
        });
        assert_eq!(
            Timer::from_stored("grant.expiry", subject, current).unwrap(),
            want
        );
        assert_eq!(
            Timer::from_stored("grant.expiry", subject, older).unwrap(),
            want
        );
        // Read in the older shape, written again in the current one.
        assert_eq!(
            Timer::from_stored("grant.expiry", subject, older)
                .unwrap()
                .payload(),
            serde_json::from_str::<serde_json::Value>(current).unwrap()
        );
        let planned = r#"{"person_id":"p-1","entitlement":"github:admins","source":"birthright","source_ref":"base"}"#;
        let Timer::GrantExpiry(e) = Timer::from_stored("grant.expiry", subject, planned).unwrap()
        else {
            panic!("an expiry");
        };
        assert_eq!(
            (e.source, e.source_ref.as_str()),
            (GrantSource::Birthright, "base")
        );
    }

    #[test]
    fn the_stored_shapes_of_the_other_kinds_read() {
        let escalate = Timer::from_stored("approval.escalate", "ap-9", "{}").unwrap();
        assert_eq!(
            escalate,
            Timer::ApprovalEscalate(ApprovalTimer {
                approval_id: "ap-9".into()
            })
        );
        let person =
            Timer::from_stored("person.end", "p-9", r#"{"end_date":"2026-01-31"}"#).unwrap();
        assert_eq!(
            person,
            Timer::PersonEnd(PersonEnd {
                person_id: "p-9".into(),
                end_date: date("2026-01-31")
            })
        );
        let engagement = Timer::from_stored(
            "engagement.end",
            "eng-9",
            r#"{"person_id":"p-9","client_id":"acme","role":"consultant","end_date":"2026-01-31"}"#,
        )
        .unwrap();
        let Timer::EngagementEnd(e) = engagement else {
            panic!("an engagement end")
        };
        assert_eq!(
            (e.engagement_id.as_str(), e.person_id.as_str()),
            ("eng-9", "p-9")
        );
    }

    #[test]
    fn what_cannot_be_read_says_why() {
        let err = |kind: &str, payload: &str| Timer::from_stored(kind, "s-1", payload).unwrap_err();
        let e = err("grant.renewal", "{}");
        assert_eq!(e.kind, "grant.renewal");
        assert_eq!(e.subject, "s-1");
        assert!(
            e.reason.contains("unknown TimerKind `grant.renewal`"),
            "{e}"
        );
        assert!(err("person.end", "not json").reason.contains("not JSON"));
        assert!(
            err("person.end", "[1]")
                .reason
                .contains("not a JSON object")
        );
        assert!(
            err("person.end", r#"{"end_date":"tomorrow"}"#)
                .reason
                .contains("input contains invalid characters")
        );
        assert!(
            err("person.end", "{}")
                .reason
                .contains("missing field `end_date`")
        );
        // An expiry whose source is unknown, or that names neither shape: never guessed.
        let unknown_source =
            r#"{"person_id":"p","entitlement":"e","source":"gift","source_ref":"x"}"#;
        assert!(
            err("grant.expiry", unknown_source)
                .reason
                .contains("unknown variant `gift`")
        );
        let neither = r#"{"person_id":"p","entitlement":"e"}"#;
        assert!(err("grant.expiry", neither).reason.contains("`request_id`"));
        let both = r#"{"person_id":"p","entitlement":"e","source":"request","source_ref":"r","request_id":"r"}"#;
        assert!(err("grant.expiry", both).reason.contains("either"));
        assert_eq!(
            err("grant.renewal", "{}").to_string(),
            "cannot read a `grant.renewal` timer for `s-1`: unknown TimerKind `grant.renewal`, expected one of: grant.expiry, approval.escalate, approval.deadline, person.end, engagement.end, review.close, review.remind, review.open"
        );
    }

    #[test]
    fn timer_states_read_back() {
        for s in TimerState::ALL {
            assert_eq!(s.as_str().parse::<TimerState>().unwrap(), *s);
        }
        assert!("sent".parse::<TimerState>().is_err());
    }

    fn grant(state: GrantState, source_ref: &str, expires_at: Option<i64>) -> Grant {
        Grant {
            person_id: "p1".into(),
            entitlement: "crm:acme".into(),
            source: GrantSource::Request,
            source_ref: source_ref.into(),
            state,
            granted_at: Some(0),
            expires_at,
        }
    }

    fn expiry() -> GrantExpiry {
        GrantExpiry {
            person_id: "p1".into(),
            entitlement: "crm:acme".into(),
            source: GrantSource::Request,
            source_ref: "r1".into(),
        }
    }

    /// An expiry is due only for a grant still held (or perhaps held) for its reason whose
    /// window has passed; a grant whose step has not finished is looked at again; anything
    /// else (gone, extended, given for another reason, settled) makes it moot.
    #[test]
    fn an_expiry_is_due_only_for_the_grant_it_was_set_for() {
        let e = expiry();
        let now = 1_000;
        assert_eq!(e.check(None, now), ExpiryCheck::Moot);
        for state in [GrantState::Granted, GrantState::Uncertain] {
            assert_eq!(
                e.check(Some(&grant(state, "r1", Some(900))), now),
                ExpiryCheck::Due { expires_at: 900 }
            );
        }
        assert_eq!(
            e.check(Some(&grant(GrantState::Pending, "r1", Some(900))), now),
            ExpiryCheck::LookAgain(now + EXPIRY_RECHECK_MS)
        );
        for moot in [
            grant(GrantState::Granted, "r1", Some(1_001)), // extended
            grant(GrantState::Granted, "r1", None),        // held for good now
            grant(GrantState::Granted, "r2", Some(900)),   // another request's
            grant(GrantState::Revoked, "r1", Some(900)),
            grant(GrantState::Failed, "r1", Some(900)),
            grant(GrantState::AwaitingApproval, "r1", Some(900)),
        ] {
            assert_eq!(e.check(Some(&moot), now), ExpiryCheck::Moot, "{moot:?}");
        }
        let birthright = Grant {
            source: GrantSource::Birthright,
            ..grant(GrantState::Granted, "r1", Some(900))
        };
        assert_eq!(e.check(Some(&birthright), now), ExpiryCheck::Moot);
    }

    /// A contract end raises the leave once, keyed by person and date; not when the end date
    /// moved, nor for someone already leaving or gone.
    #[test]
    fn a_contract_end_raises_a_leave_only_while_it_still_stands() {
        let end = NaiveDate::from_ymd_opt(2026, 12, 31).unwrap();
        let t = PersonEnd {
            person_id: "p1".into(),
            end_date: end,
        };
        let person = |status, end_date| Person {
            id: "p1".into(),
            name: "P".into(),
            email: "p@example.com".into(),
            worker_type: crate::WorkerType::Contractor,
            department: None,
            title: None,
            location: None,
            manager: None,
            start_date: None,
            end_date,
            status,
            attributes: Default::default(),
        };
        let leave = t
            .leave(Some(&person(PersonStatus::Active, Some(end))))
            .unwrap();
        assert_eq!(leave.kind, EventType::Leave);
        assert_eq!(leave.id.as_deref(), Some("end-date:p1:2026-12-31"));
        assert_eq!(leave.person.end_date, Some(end));
        assert_eq!(leave.source.as_deref(), Some(SCHEDULER));
        assert!(
            t.leave(Some(&person(PersonStatus::PreHire, Some(end))))
                .is_some()
        );
        assert!(t.leave(None).is_none());
        let moved = end.succ_opt();
        assert!(
            t.leave(Some(&person(PersonStatus::Active, moved)))
                .is_none()
        );
        for gone in [PersonStatus::Leaving, PersonStatus::Terminated] {
            assert!(t.leave(Some(&person(gone, Some(end)))).is_none());
        }
    }

    /// An engagement end raises the engagement's end once; not when it moved or has ended.
    #[test]
    fn an_engagement_end_raises_its_end_only_while_it_still_stands() {
        let end = NaiveDate::from_ymd_opt(2026, 12, 31).unwrap();
        let t = EngagementEnd {
            engagement_id: "en1".into(),
            person_id: "p1".into(),
            client_id: "acme".into(),
            role: "consultant".into(),
            end_date: end,
        };
        let engagement = |active, end_date| Engagement {
            id: "en1".into(),
            person_id: "p1".into(),
            client_id: "acme".into(),
            role: "consultant".into(),
            start_date: None,
            end_date,
            active,
        };
        let raised = t.end(&[engagement(true, Some(end))]).unwrap();
        assert_eq!(raised.kind, EventType::EngagementEnd);
        assert_eq!(raised.id.as_deref(), Some("end-date:en1:2026-12-31"));
        let en = raised.engagement.unwrap();
        assert_eq!((en.id.as_deref(), en.end_date), (Some("en1"), Some(end)));
        assert!(t.end(&[]).is_none());
        assert!(t.end(&[engagement(false, Some(end))]).is_none());
        assert!(t.end(&[engagement(true, end.succ_opt())]).is_none());
    }
}
