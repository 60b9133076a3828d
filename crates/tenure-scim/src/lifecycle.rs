//! What a SCIM change means for the person: the lifecycle event it becomes.
//!
//! - a new active user is a `hire`; a new inactive one is stored and waits;
//! - `active: false` on a hired user, or `DELETE`, is a `leave`;
//! - `active: true` again is a `rehire` (a `hire` if the user was never active);
//! - a change of a mapped attribute (name, email, worker type, department, title, location,
//!   manager, start and end dates) on an active user is a `transfer`.
//!
//! Events carry the idempotency key `scim:{id}:{version}`, so sending one twice (after a crash,
//! from the outbox) is a replay, never a second run.

use crate::schema::{ENTERPRISE, TENURE};
use crate::{ScimError, ScimType};
use chrono::NaiveDate;
use serde_json::{Map, Value};
use tenure_core::WorkerType;
use tenure_core::event::{EventInput, EventType, PersonInput, validate_event};

/// Where tenure has the user: never hired, hired, gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// Never hired: stored, no person yet (inactive, or waiting for what a hire needs).
    None,
    /// Hired and not gone.
    Active,
    /// Gone (a leave was sent).
    Left,
}

impl Lifecycle {
    /// The stored form: `none`, `active` or `left`.
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::None => "none",
            Lifecycle::Active => "active",
            Lifecycle::Left => "left",
        }
    }

    /// Reads the stored form; anything else is an error naming it (a row this version did
    /// not write), never a guess that the user was not hired.
    pub fn parse(s: &str) -> Result<Lifecycle, String> {
        match s {
            "none" => Ok(Lifecycle::None),
            "active" => Ok(Lifecycle::Active),
            "left" => Ok(Lifecycle::Left),
            other => Err(format!(
                "stored SCIM user lifecycle `{other}` is none of none, active, left"
            )),
        }
    }
}

fn text(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn ext<'a>(doc: &'a Map<String, Value>, urn: &str, attr: &str) -> Option<&'a Value> {
    doc.get(urn).and_then(|e| e.get(attr))
}

/// Whether the user is active (`active` absent counts as true, as identity providers mean it).
pub fn is_active(doc: &Map<String, Value>) -> bool {
    doc.get("active").and_then(Value::as_bool).unwrap_or(true)
}

fn email_of(doc: &Map<String, Value>) -> Option<String> {
    let emails = doc.get("emails").and_then(Value::as_array);
    let pick = |pred: &dyn Fn(&Value) -> bool| {
        emails
            .and_then(|a| a.iter().find(|e| pred(e)))
            .and_then(|e| text(e.get("value")))
            .map(str::to_string)
    };
    pick(&|e| e.get("primary") == Some(&Value::Bool(true)))
        .or_else(|| pick(&|e| text(e.get("type")).is_some_and(|t| t.eq_ignore_ascii_case("work"))))
        .or_else(|| pick(&|_| true))
        .or_else(|| {
            text(doc.get("userName"))
                .filter(|u| u.contains('@'))
                .map(str::to_string)
        })
}

fn name_of(doc: &Map<String, Value>) -> Option<String> {
    if let Some(d) = text(doc.get("displayName")) {
        return Some(d.to_string());
    }
    let name = doc.get("name");
    if let Some(f) = text(name.and_then(|n| n.get("formatted"))) {
        return Some(f.to_string());
    }
    let parts: Vec<&str> = ["givenName", "familyName"]
        .iter()
        .filter_map(|k| text(name.and_then(|n| n.get(*k))))
        .collect();
    if !parts.is_empty() {
        return Some(parts.join(" "));
    }
    text(doc.get("userName")).map(str::to_string)
}

fn date(doc: &Map<String, Value>, attr: &str) -> Result<Option<NaiveDate>, ScimError> {
    match text(ext(doc, TENURE, attr)) {
        None => Ok(None),
        // Cleaning checked it is an xsd:dateTime; its date in UTC counts.
        Some(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| Some(t.with_timezone(&chrono::Utc).date_naive()))
            .map_err(|_| {
                ScimError::new(
                    ScimType::InvalidValue,
                    format!("{TENURE}:{attr}: `{s}` is not an xsd:dateTime"),
                )
            }),
    }
}

/// The person fields a user document carries.
pub fn person_of(id: &str, doc: &Map<String, Value>) -> Result<PersonInput, ScimError> {
    // The tenure extension is authoritative and strict; userType is free text in RFC 7643
    // ("Intern", "Temp", ...) and sets the worker type only when it names one.
    let worker_type = match text(ext(doc, TENURE, "workerType")) {
        Some(w) => w.to_ascii_lowercase().parse().map_err(|_| {
            ScimError::new(
                ScimType::InvalidValue,
                format!("{TENURE}:workerType `{w}` is not one of employee, contractor, partner"),
            )
        })?,
        None => text(doc.get("userType"))
            .and_then(|u| u.to_ascii_lowercase().parse().ok())
            .unwrap_or(WorkerType::Employee),
    };
    Ok(PersonInput {
        id: id.to_string(),
        name: name_of(doc),
        email: email_of(doc),
        worker_type: Some(worker_type),
        department: text(ext(doc, ENTERPRISE, "department")).map(str::to_string),
        title: text(doc.get("title")).map(str::to_string),
        location: text(ext(doc, TENURE, "location")).map(str::to_string),
        manager: text(ext(doc, ENTERPRISE, "manager").and_then(|m| m.get("value")))
            .map(str::to_string),
        start_date: date(doc, "startDate")?,
        end_date: date(doc, "endDate")?,
        attributes: None,
    })
}

/// What a change makes of the user.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The event to send, if any.
    pub event: Option<EventInput>,
    /// The lifecycle after it.
    pub next: Lifecycle,
    /// Why an active user is not (yet) a person, when it lacks what a hire needs.
    pub waiting: Option<String>,
}

/// The event a change from `before` (None: a new user) to `after` (None: deleted) makes.
/// An active user that lacks what a person needs (an email address) is stored and waits,
/// with the reason in `waiting`, and becomes a hire with the change that completes it.
pub fn event_for(
    id: &str,
    lifecycle: Lifecycle,
    before: Option<&Map<String, Value>>,
    after: Option<&Map<String, Value>>,
) -> Result<Outcome, ScimError> {
    let new = after.map(|d| person_of(id, d)).transpose()?;
    let (kind, next) = match (lifecycle, after) {
        (Lifecycle::Active, None) => (Some(EventType::Leave), Lifecycle::Left),
        (l, None) => (None, l),
        (Lifecycle::Active, Some(d)) if !is_active(d) => (Some(EventType::Leave), Lifecycle::Left),
        (Lifecycle::Active, Some(_)) => {
            let old = before.map(|d| person_of(id, d)).transpose()?;
            if old == new {
                (None, Lifecycle::Active)
            } else {
                (Some(EventType::Transfer), Lifecycle::Active)
            }
        }
        (Lifecycle::None, Some(d)) if is_active(d) => (Some(EventType::Hire), Lifecycle::Active),
        (Lifecycle::Left, Some(d)) if is_active(d) => (Some(EventType::Rehire), Lifecycle::Active),
        (l, Some(_)) => (None, l),
    };
    let Some(kind) = kind else {
        return Ok(Outcome {
            event: None,
            next,
            waiting: None,
        });
    };
    let person = match kind {
        EventType::Leave => PersonInput {
            id: id.to_string(),
            ..Default::default()
        },
        _ => new.expect("a user that is not deleted"),
    };
    let event = EventInput {
        id: None,
        kind,
        person,
        engagement: None,
        effective_at: None,
        source: Some("scim".into()),
    };
    match validate_event(&event) {
        Ok(()) => Ok(Outcome {
            event: Some(event),
            next,
            waiting: None,
        }),
        Err(e)
            if matches!(kind, EventType::Hire | EventType::Rehire) && e.field == "person.email" =>
        {
            Ok(Outcome {
                event: None,
                next: lifecycle,
                waiting: Some(format!(
                    "not a person yet ({}: {}): send an `emails` value or a userName that is an email address",
                    e.field, e.message
                )),
            })
        }
        Err(e) => Err(ScimError::new(
            ScimType::InvalidValue,
            format!(
                "the user cannot become a tenure person ({}: {})",
                e.field, e.message
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn ev(o: &Outcome) -> Option<EventType> {
        o.event.as_ref().map(|e| e.kind)
    }

    #[test]
    fn a_stored_lifecycle_reads_back_and_an_unknown_one_is_an_error() {
        for l in [Lifecycle::None, Lifecycle::Active, Lifecycle::Left] {
            assert_eq!(Lifecycle::parse(l.as_str()), Ok(l));
        }
        let e = Lifecycle::parse("hired").unwrap_err();
        assert!(e.contains("`hired`"), "{e}");
    }

    #[test]
    fn changes_map_to_lifecycle_events() {
        let a = doc(
            json!({"userName": "ada@example.com", "name": {"givenName": "Ada", "familyName": "L"}}),
        );
        let o = event_for("u1", Lifecycle::None, None, Some(&a)).unwrap();
        assert_eq!((ev(&o), o.next), (Some(EventType::Hire), Lifecycle::Active));
        let p = &o.event.as_ref().unwrap().person;
        assert_eq!(p.name.as_deref(), Some("Ada L"));
        assert_eq!(p.email.as_deref(), Some("ada@example.com"));
        assert_eq!(p.worker_type, Some(WorkerType::Employee));

        let o = event_for("u1", Lifecycle::Active, Some(&a), Some(&a)).unwrap();
        assert_eq!(ev(&o), None, "no change, no event");

        let mut b = a.clone();
        b.insert("title".into(), json!("CTO"));
        let o = event_for("u1", Lifecycle::Active, Some(&a), Some(&b)).unwrap();
        assert_eq!(ev(&o), Some(EventType::Transfer));

        b.insert("active".into(), json!(false));
        let o = event_for("u1", Lifecycle::Active, Some(&a), Some(&b)).unwrap();
        assert_eq!((ev(&o), o.next), (Some(EventType::Leave), Lifecycle::Left));

        let o = event_for("u1", Lifecycle::Left, Some(&b), Some(&a)).unwrap();
        assert_eq!(
            (ev(&o), o.next),
            (Some(EventType::Rehire), Lifecycle::Active)
        );

        let o = event_for("u1", Lifecycle::Active, Some(&a), None).unwrap();
        assert_eq!((ev(&o), o.next), (Some(EventType::Leave), Lifecycle::Left));

        let o = event_for("u1", Lifecycle::Left, Some(&a), None).unwrap();
        assert_eq!((ev(&o), o.next), (None, Lifecycle::Left));
    }

    #[test]
    fn an_inactive_new_user_waits_and_a_user_without_email_waits_with_a_reason() {
        let off = doc(json!({"userName": "x@example.com", "active": false}));
        let o = event_for("u", Lifecycle::None, None, Some(&off)).unwrap();
        assert_eq!(
            (ev(&o), o.next, o.waiting.clone()),
            (None, Lifecycle::None, None)
        );
        let no_mail = doc(json!({"userName": "bjensen"}));
        let o = event_for("u", Lifecycle::None, None, Some(&no_mail)).unwrap();
        assert_eq!((ev(&o), o.next), (None, Lifecycle::None));
        assert!(o.waiting.unwrap().contains("person.email"));
        let mut with_mail = no_mail.clone();
        with_mail.insert("emails".into(), json!([{"value": "bjensen@example.com"}]));
        let o = event_for("u", Lifecycle::None, Some(&no_mail), Some(&with_mail)).unwrap();
        assert_eq!(ev(&o), Some(EventType::Hire));
        let bad = doc(json!({"userName": "b", "emails": [{"value": "not-an-address"}]}));
        let a = doc(json!({"userName": "b", "emails": [{"value": "b@example.com"}]}));
        assert!(event_for("u", Lifecycle::Active, Some(&a), Some(&bad)).is_err());
    }

    #[test]
    fn worker_type_comes_from_the_extension_or_user_type() {
        let d = doc(json!({"userName": "c@example.com", "userType": "Contractor"}));
        assert_eq!(
            person_of("u", &d).unwrap().worker_type,
            Some(WorkerType::Contractor)
        );
        let d = doc(json!({"userName": "c@example.com", "userType": "Intern"}));
        assert_eq!(
            person_of("u", &d).unwrap().worker_type,
            Some(WorkerType::Employee)
        );
        let d = doc(json!({"userName": "c@example.com", TENURE: {"workerType": "intern"}}));
        assert!(person_of("u", &d).is_err());
        let d = doc(
            json!({"userName": "c@example.com", TENURE: {"workerType": "partner", "endDate": "2027-01-31T00:00:00Z"}}),
        );
        let p = person_of("u", &d).unwrap();
        assert_eq!(p.worker_type, Some(WorkerType::Partner));
        assert_eq!(p.end_date, NaiveDate::from_ymd_opt(2027, 1, 31));
    }
}
