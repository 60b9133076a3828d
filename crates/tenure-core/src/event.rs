//! Lifecycle events: their wire form, validation with field-precise errors, and how each one
//! changes a person and their engagements.

use crate::model::{Client, Engagement, Person, PersonStatus, WorkerType, string_enum};
use crate::text;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

string_enum!(
    /// What happened to a person.
    EventType {
        Hire => "hire",
        Transfer => "transfer",
        Leave => "leave",
        Rehire => "rehire",
        ContractChange => "contract_change",
        EngagementStart => "engagement_start",
        EngagementEnd => "engagement_end",
    }
);

impl EventType {
    /// Leavers lose access first: steps of these events run ahead of all others.
    pub fn is_urgent(self) -> bool {
        matches!(self, EventType::Leave | EventType::EngagementEnd)
    }
}

/// A lifecycle event as it arrives on `POST /api/v1/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventInput {
    /// The sender's own id for the event; doubles as an idempotency key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// Who it happened to: `id` always, the rest as the event type needs.
    pub person: PersonInput,
    /// The engagement, for `engagement_start` and `engagement_end`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engagement: Option<EngagementInput>,
    /// When the event takes effect (RFC 3339); now if absent. Future events wait until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_at: Option<DateTime<Utc>>,
    /// Which system sent it (`workday`, `csv`, `scim`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Person fields carried by an event; absent fields keep their stored value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonInput {
    /// The HR id.
    #[schema(schema_with = crate::wire::id)]
    pub id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::wire::optional_non_blank)]
    pub name: Option<String>,
    /// Work email address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::wire::optional_email)]
    pub email: Option<String>,
    /// Employee, contractor or partner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_type: Option<WorkerType>,
    /// Department, matched by role templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    /// Job title, matched by role templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Office or country, matched by role templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The HR id of the person's manager.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<String>,
    /// First working day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_date: Option<NaiveDate>,
    /// Last working day (contract end for contractors); not before `start_date`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_date: Option<NaiveDate>,
    /// Facts for policy (`{"nda_signed": true, "trainings": ["gdpr"]}`): each key given replaces
    /// the stored value; `null` removes it. Values are booleans, strings, integers or lists of
    /// strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::wire::optional_attributes)]
    pub attributes: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The client of an engagement: its id alone, or its id with name and attributes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ClientInput {
    /// Just the id of a known client.
    Id(String),
    /// The client in full; upserted.
    Full(Client),
}

impl ClientInput {
    /// The client's id.
    pub fn id(&self) -> &str {
        match self {
            ClientInput::Id(id) => id,
            ClientInput::Full(c) => &c.id,
        }
    }
}

/// Engagement fields carried by an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EngagementInput {
    /// Stable id; `PERSON:CLIENT:ROLE` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The client: its id, or the client in full (stored or updated).
    pub client: ClientInput,
    /// The engagement role, matched by engagement templates (e.g. `consultant`).
    #[schema(schema_with = crate::wire::non_blank)]
    pub role: String,
    /// First day on the engagement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_date: Option<NaiveDate>,
    /// Last day on the engagement, not before `start_date`; for `engagement_end`, today when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_date: Option<NaiveDate>,
}

impl EngagementInput {
    /// The engagement's id for `person_id`: the given one, or `person:client:role`.
    pub fn id_for(&self, person_id: &str) -> String {
        self.id
            .clone()
            .unwrap_or_else(|| format!("{person_id}:{}:{}", self.client.id(), self.role))
    }
}

/// An event that failed validation, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct EventError {
    /// The JSON path of the offending field (`person.email`), or `body`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl EventError {
    fn new(field: impl Into<String>, message: impl fmt::Display) -> Self {
        Self {
            field: field.into(),
            message: message.to_string(),
        }
    }
}

/// Parses and validates an event body, with an error that names the field at fault.
pub fn parse_event(body: &[u8]) -> Result<EventInput, EventError> {
    // serde accepts a JSON array for a struct (fields by position); an event is an object.
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        Some(_) => return Err(EventError::new("body", "must be a JSON object")),
        None => {
            return Err(EventError::new(
                "body",
                "is empty; send the event as a JSON object",
            ));
        }
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    let event: EventInput = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.to_string();
        // serde_json appends " at line L column C"; keep it, it helps with large bodies.
        let field = if matches!(
            inner.classify(),
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof
        ) {
            // Malformed JSON: the path where the parser stopped names no field.
            "body".to_string()
        } else if let Some(missing) = message
            .strip_prefix("missing field `")
            .and_then(|m| m.split('`').next())
        {
            // A missing field is reported on its parent; name the field itself.
            match path.as_str() {
                "." | "?" | "" => missing.to_string(),
                parent => format!("{parent}.{missing}"),
            }
        } else if path == "." || path == "?" || path.is_empty() {
            "body".to_string()
        } else {
            path
        };
        EventError::new(field, message)
    })?;
    validate_event(&event)?;
    Ok(event)
}

/// A client carried in full: a name, attributes within the limits, contract terms in range.
fn check_client(c: &Client) -> Result<(), EventError> {
    if c.name.trim().is_empty() {
        return Err(EventError::new(
            "engagement.client.name",
            "must not be empty",
        ));
    }
    check_text("engagement.client.name", &c.name, text::MAX_NAME)?;
    if let Some(d) = c.max_access_days
        && !(1..=crate::config::MAX_ACCESS_DAYS).contains(&i64::from(d))
    {
        return Err(EventError::new(
            "engagement.client.max_access_days",
            format!(
                "must be a whole number of days from 1 to {}",
                crate::config::MAX_ACCESS_DAYS
            ),
        ));
    }
    check_attributes("engagement.client.attributes", &c.attributes)
}

/// Checks what the type system cannot: required fields per event type and value formats.
pub fn validate_event(e: &EventInput) -> Result<(), EventError> {
    let p = &e.person;
    check_id("person.id", &p.id)?;
    if let Some(id) = &e.id {
        check_id("id", id)?;
    }
    if let Some(email) = &p.email {
        check_text("person.email", email, text::MAX_EMAIL)?;
        if !is_email(email) {
            return Err(EventError::new(
                "person.email",
                format!("`{email}` is not an email address"),
            ));
        }
    }
    if let Some(name) = &p.name {
        if name.trim().is_empty() {
            return Err(EventError::new("person.name", "must not be empty"));
        }
        check_text("person.name", name, text::MAX_NAME)?;
    }
    for (field, value) in [
        ("person.department", &p.department),
        ("person.title", &p.title),
        ("person.location", &p.location),
        ("person.manager", &p.manager),
        ("source", &e.source),
    ] {
        if let Some(v) = value {
            check_text(field, v, text::MAX_NAME)?;
        }
    }
    if let (Some(s), Some(end)) = (p.start_date, p.end_date)
        && end < s
    {
        return Err(EventError::new(
            "person.end_date",
            format!("{end} is before start_date {s}"),
        ));
    }
    if let Some(attrs) = &p.attributes {
        check_attributes("person.attributes", attrs)?;
    }
    match e.kind {
        EventType::Hire | EventType::Rehire => {
            if p.name.is_none() {
                return Err(EventError::new(
                    "person.name",
                    format!("required for a {} event", e.kind),
                ));
            }
            if p.email.is_none() {
                return Err(EventError::new(
                    "person.email",
                    format!("required for a {} event", e.kind),
                ));
            }
            if p.worker_type.is_none() {
                return Err(EventError::new(
                    "person.worker_type",
                    format!(
                        "required for a {} event (employee, contractor or partner)",
                        e.kind
                    ),
                ));
            }
        }
        EventType::EngagementStart | EventType::EngagementEnd => {
            let Some(en) = &e.engagement else {
                return Err(EventError::new(
                    "engagement",
                    format!("required for a {} event", e.kind),
                ));
            };
            check_id("engagement.client", en.client.id())?;
            if let ClientInput::Full(c) = &en.client {
                check_client(c)?;
            }
            if en.role.trim().is_empty() {
                return Err(EventError::new("engagement.role", "must not be empty"));
            }
            check_text("engagement.role", &en.role, text::MAX_NAME)?;
            if let Some(id) = &en.id {
                check_text("engagement.id", id, text::MAX_NAME)?;
            }
            if let (Some(s), Some(end)) = (en.start_date, en.end_date)
                && end < s
            {
                return Err(EventError::new(
                    "engagement.end_date",
                    format!("{end} is before start_date {s}"),
                ));
            }
        }
        EventType::Transfer | EventType::Leave | EventType::ContractChange => {}
    }
    if e.engagement.is_some()
        && !matches!(
            e.kind,
            EventType::EngagementStart | EventType::EngagementEnd
        )
    {
        return Err(EventError::new(
            "engagement",
            format!(
                "only engagement_start and engagement_end carry an engagement, not {}",
                e.kind
            ),
        ));
    }
    Ok(())
}

/// Free text within its bound and without NUL (see [`crate::text`]).
fn check_text(field: &str, value: &str, max: usize) -> Result<(), EventError> {
    text::check(value, max).map_err(|e| EventError::new(field, e))
}

pub(crate) fn check_id(field: &str, id: &str) -> Result<(), EventError> {
    if id.is_empty() {
        return Err(EventError::new(field, "must not be empty"));
    }
    if id.chars().count() > crate::wire::MAX_ID_CHARS {
        return Err(EventError::new(
            field,
            format!("must be at most {} characters", crate::wire::MAX_ID_CHARS),
        ));
    }
    if id.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(EventError::new(
            field,
            "must not contain spaces or control characters",
        ));
    }
    Ok(())
}

pub(crate) fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && !domain.contains('@')
}

/// Why an event cannot be applied to the stored state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// Transfer, leave, contract change or engagement events need a known person.
    #[error("person `{0}` is not known; send a hire event first")]
    UnknownPerson(String),
    /// Engagement end names an engagement the person does not have.
    #[error("person `{person}` has no engagement `{engagement}`")]
    UnknownEngagement {
        /// Whose engagement.
        person: String,
        /// The engagement id looked for.
        engagement: String,
    },
}

/// The person and engagements after an event, as the planner needs them.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The person after the event.
    pub person: Person,
    /// Engagements to upsert (new or changed).
    pub engagements: Vec<Engagement>,
    /// The client to upsert, when the event carried one in full.
    pub client: Option<Client>,
    /// Whether attributes that target systems hold (name, email, title, ...) changed.
    pub attributes_changed: bool,
}

/// Applies an event to the stored person (if any) and their engagements, on day `today`.
pub fn apply_event(
    event: &EventInput,
    stored: Option<&Person>,
    engagements: &[Engagement],
    today: NaiveDate,
) -> Result<Applied, ApplyError> {
    let input = &event.person;
    let person = match (event.kind, stored) {
        (EventType::Hire | EventType::Rehire, prior) => {
            let base = prior
                .cloned()
                .unwrap_or_else(|| Person::new(&input.id, "", ""));
            let mut p = merge(base, input);
            if event.kind == EventType::Rehire && input.end_date.is_none() {
                p.end_date = None;
            }
            p.status = if p.start_date.is_some_and(|d| d > today) {
                PersonStatus::PreHire
            } else {
                PersonStatus::Active
            };
            p
        }
        (_, None) => return Err(ApplyError::UnknownPerson(input.id.clone())),
        (EventType::Leave, Some(prior)) => {
            let mut p = merge(prior.clone(), input);
            p.status = PersonStatus::Terminated;
            if p.end_date.is_none() {
                p.end_date = Some(today);
            }
            p
        }
        (_, Some(prior)) => merge(prior.clone(), input),
    };
    let attributes_changed = stored.is_none_or(|s| {
        s.name != person.name
            || s.email != person.email
            || s.title != person.title
            || s.department != person.department
            || s.location != person.location
            || s.manager != person.manager
            || s.worker_type != person.worker_type
    });

    let mut changed = Vec::new();
    let mut client = None;
    match event.kind {
        EventType::EngagementStart => {
            let en = event
                .engagement
                .as_ref()
                .expect("validated: engagement_start carries one");
            if let ClientInput::Full(c) = &en.client {
                client = Some(c.clone());
            }
            changed.push(Engagement {
                id: en.id_for(&person.id),
                person_id: person.id.clone(),
                client_id: en.client.id().to_string(),
                role: en.role.clone(),
                start_date: en.start_date,
                end_date: en.end_date,
                active: true,
            });
        }
        EventType::EngagementEnd => {
            let en = event
                .engagement
                .as_ref()
                .expect("validated: engagement_end carries one");
            let id = en.id_for(&person.id);
            let Some(found) = engagements.iter().find(|g| g.id == id) else {
                return Err(ApplyError::UnknownEngagement {
                    person: person.id.clone(),
                    engagement: id,
                });
            };
            let mut ended = found.clone();
            ended.active = false;
            ended.end_date = Some(en.end_date.unwrap_or(today));
            changed.push(ended);
        }
        EventType::Leave => {
            // A leaver's engagements end with them.
            for g in engagements.iter().filter(|g| g.active) {
                let mut ended = g.clone();
                ended.active = false;
                ended.end_date = Some(
                    person
                        .end_date
                        .unwrap_or(today)
                        .min(g.end_date.unwrap_or(today)),
                );
                changed.push(ended);
            }
        }
        _ => {}
    }
    Ok(Applied {
        person,
        engagements: changed,
        client,
        attributes_changed,
    })
}

/// Person attribute names are identifiers policy can read (`nda_signed`); values are booleans,
/// strings, integers, lists of strings, or `null` to remove one.
fn check_attributes(
    at: &str,
    attrs: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), EventError> {
    use serde_json::Value;
    for (k, v) in attrs {
        let field = format!("{at}.{k}");
        if !crate::model::is_attribute_name(k) {
            return Err(EventError::new(
                at,
                format!(
                    "`{k}` is not an attribute name (letters, digits and `_`, at most 64, not starting with a digit)"
                ),
            ));
        }
        if k == crate::config::GROUPS_ATTRIBUTE && !(v.is_array() || v.is_null()) {
            return Err(EventError::new(
                field,
                "must be a list of group names, or null",
            ));
        }
        let ok = match v {
            Value::Null | Value::Bool(_) | Value::String(_) => true,
            Value::Number(n) => n.is_i64(),
            Value::Array(items) => items.iter().all(Value::is_string),
            Value::Object(_) => false,
        };
        if !ok {
            return Err(EventError::new(
                field,
                "must be a boolean, a string, an integer, a list of strings, or null to remove it",
            ));
        }
        match v {
            Value::String(s) => check_text(&field, s, text::MAX_ATTRIBUTE)?,
            Value::Array(items) => {
                let max = if k == crate::config::GROUPS_ATTRIBUTE {
                    text::MAX_GROUPS
                } else {
                    text::MAX_LIST
                };
                if items.len() > max {
                    return Err(EventError::new(
                        field,
                        format!("must hold at most {max} strings"),
                    ));
                }
                for (i, s) in items.iter().filter_map(Value::as_str).enumerate() {
                    check_text(&format!("{field}[{i}]"), s, text::MAX_ATTRIBUTE)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn merge(mut p: Person, i: &PersonInput) -> Person {
    if let Some(attrs) = &i.attributes {
        for (k, v) in attrs {
            if v.is_null() {
                p.attributes.remove(k);
            } else {
                p.attributes.insert(k.clone(), v.clone());
            }
        }
    }
    if let Some(v) = &i.name {
        p.name = v.clone();
    }
    if let Some(v) = &i.email {
        p.email = v.clone();
    }
    if let Some(v) = i.worker_type {
        p.worker_type = v;
    }
    if let Some(v) = &i.department {
        p.department = Some(v.clone());
    }
    if let Some(v) = &i.title {
        p.title = Some(v.clone());
    }
    if let Some(v) = &i.location {
        p.location = Some(v.clone());
    }
    if let Some(v) = &i.manager {
        p.manager = Some(v.clone());
    }
    if let Some(v) = i.start_date {
        p.start_date = Some(v);
    }
    if let Some(v) = i.end_date {
        p.end_date = Some(v);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> EventError {
        parse_event(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn a_client_carried_in_full_is_checked() {
        let start = |client: &str| {
            format!(
                r#"{{"type":"engagement_start","person":{{"id":"p"}},"engagement":{{"role":"r","client":{client}}}}}"#
            )
        };
        let e = err(&start(r#"{"id":"acme","name":" "}"#));
        assert_eq!(e.field, "engagement.client.name");
        let e = err(&start(r#"{"id":"acme","name":"Acme","max_access_days":0}"#));
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            (
                "engagement.client.max_access_days",
                "must be a whole number of days from 1 to 3650"
            )
        );
        let e = err(&start(
            r#"{"id":"acme","name":"Acme","attributes":{"region":{"eu":1}}}"#,
        ));
        assert_eq!(e.field, "engagement.client.attributes.region");
        let ok = parse_event(
            start(r#"{"id":"acme","name":"Acme","max_access_days":30,"attributes":{"nda_required":true}}"#)
                .as_bytes(),
        )
        .unwrap();
        match &ok.engagement.unwrap().client {
            ClientInput::Full(c) => assert_eq!(c.max_access_days, Some(30)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn person_attributes_are_checked_and_merged() {
        let e = err(r#"{"type":"transfer","person":{"id":"p","attributes":{"nda signed":true}}}"#);
        assert_eq!(e.field, "person.attributes");
        let e =
            err(r#"{"type":"transfer","person":{"id":"p","attributes":{"nda":{"signed":true}}}}"#);
        assert_eq!(e.field, "person.attributes.nda");
        let e = err(r#"{"type":"transfer","person":{"id":"p","attributes":{"level":1.5}}}"#);
        assert_eq!(e.field, "person.attributes.level");

        let today = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        let hire = parse_event(br#"{"type":"hire","person":{"id":"p","name":"P","email":"p@example.com","worker_type":"employee","attributes":{"nda_signed":true,"trainings":["gdpr"]}}}"#).unwrap();
        let p = apply_event(&hire, None, &[], today).unwrap().person;
        assert_eq!(p.attributes["trainings"], serde_json::json!(["gdpr"]));
        // A key given replaces, null removes, keys not given stay.
        let t = parse_event(br#"{"type":"transfer","person":{"id":"p","attributes":{"nda_signed":null,"level":3}}}"#).unwrap();
        let p = apply_event(&t, Some(&p), &[], today).unwrap().person;
        assert!(!p.attributes.contains_key("nda_signed"));
        assert_eq!(p.attributes["level"], 3);
        assert_eq!(p.attributes["trainings"], serde_json::json!(["gdpr"]));
    }

    #[test]
    fn a_valid_hire_parses() {
        let e = parse_event(
            br#"{"type":"hire","person":{"id":"e1","name":"Ada","email":"ada@example.com","worker_type":"employee","start_date":"2026-01-05"}}"#,
        )
        .unwrap();
        assert_eq!(e.kind, EventType::Hire);
        assert_eq!(e.person.start_date, NaiveDate::from_ymd_opt(2026, 1, 5));
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(err(r#"{"type":"hire","person":{"id":"e1","name":"Ada","email":"ada","worker_type":"employee"}}"#).field, "person.email");
        assert_eq!(
            err(r#"{"type":"hire","person":{"id":"e1","name":"Ada","email":"a@b.io"}}"#).field,
            "person.worker_type"
        );
        assert_eq!(err(r#"{"type":"hire","person":{"id":"e1","name":"Ada","email":"a@b.io","worker_type":"robot"}}"#).field, "person.worker_type");
        assert_eq!(err(r#"{"type":"fire","person":{"id":"e1"}}"#).field, "type");
        assert_eq!(
            err(r#"{"type":"leave","person":{"id":"e1","start_date":"2026-13-01"}}"#).field,
            "person.start_date"
        );
        assert_eq!(
            err(r#"{"type":"leave","person":{"id":"e1","nmae":"x"}}"#).field,
            "person.nmae"
        );
        assert_eq!(
            err(r#"{"type":"leave","person":{"id":""}}"#).field,
            "person.id"
        );
        assert_eq!(
            err(r#"{"type":"engagement_start","person":{"id":"e1"}}"#).field,
            "engagement"
        );
        assert_eq!(err(r#"{"type":"leave"}"#).field, "person");
        assert_eq!(err(r#"{"type":"leave","person":{}}"#).field, "person.id");
        assert_eq!(err(r#"{"type":"leave","#).field, "body");
        assert_eq!(err(r#"{"type":"leave","person":{"id":"#).field, "body");
        assert_eq!(err(r#"[]"#).field, "body");
        assert_eq!(err(r#"[null,"hire",{"id":"x"}]"#).field, "body");
        assert_eq!(err("").field, "body");
    }

    #[test]
    fn nul_characters_and_overlong_text_are_refused_in_every_field() {
        // Each text field of an event, with a NUL (`\u0000` in JSON) at its place.
        let nul = r"a\u0000b";
        let hire = |person_extra: &str, top_extra: &str| {
            format!(
                r#"{{"type":"hire","person":{{"id":"e1","name":"Ada","email":"ada@example.com","worker_type":"employee"{person_extra}}}{top_extra}}}"#
            )
        };
        let cases = [
            (hire("", &format!(r#","id":"{nul}""#)), "id"),
            (
                format!(r#"{{"type":"leave","person":{{"id":"{nul}"}}}}"#),
                "person.id",
            ),
            (
                format!(r#"{{"type":"transfer","person":{{"id":"e1","name":"{nul}"}}}}"#),
                "person.name",
            ),
            (
                format!(
                    r#"{{"type":"transfer","person":{{"id":"e1","email":"a{nul}@example.com"}}}}"#
                ),
                "person.email",
            ),
            (
                hire(&format!(r#","department":"{nul}""#), ""),
                "person.department",
            ),
            (hire(&format!(r#","title":"{nul}""#), ""), "person.title"),
            (
                hire(&format!(r#","location":"{nul}""#), ""),
                "person.location",
            ),
            (
                hire(&format!(r#","manager":"{nul}""#), ""),
                "person.manager",
            ),
            (hire("", &format!(r#","source":"{nul}""#)), "source"),
            (
                hire(&format!(r#","attributes":{{"team":"{nul}"}}"#), ""),
                "person.attributes.team",
            ),
            (
                hire(
                    &format!(r#","attributes":{{"trainings":["gdpr","{nul}"]}}"#),
                    "",
                ),
                "person.attributes.trainings[1]",
            ),
            (
                format!(
                    r#"{{"type":"engagement_start","person":{{"id":"e1"}},"engagement":{{"client":"acme","role":"{nul}"}}}}"#
                ),
                "engagement.role",
            ),
            (
                format!(
                    r#"{{"type":"engagement_start","person":{{"id":"e1"}},"engagement":{{"id":"{nul}","client":"acme","role":"r"}}}}"#
                ),
                "engagement.id",
            ),
            (
                format!(
                    r#"{{"type":"engagement_start","person":{{"id":"e1"}},"engagement":{{"client":"{nul}","role":"r"}}}}"#
                ),
                "engagement.client",
            ),
            (
                format!(
                    r#"{{"type":"engagement_start","person":{{"id":"e1"}},"engagement":{{"client":{{"id":"acme","name":"{nul}"}},"role":"r"}}}}"#
                ),
                "engagement.client.name",
            ),
            (
                format!(
                    r#"{{"type":"engagement_start","person":{{"id":"e1"}},"engagement":{{"client":{{"id":"acme","name":"Acme","attributes":{{"region":"{nul}"}}}},"role":"r"}}}}"#
                ),
                "engagement.client.attributes.region",
            ),
        ];
        for (body, field) in &cases {
            let e = err(body);
            assert_eq!(e.field, *field, "{body}: {e}");
            assert!(
                e.message.contains("NUL") || e.message.contains("control"),
                "{body}: {e}"
            );
        }

        // Lengths: each kind of field at its bound passes, one character more is refused.
        let long = |n: usize| "é".repeat(n);
        let title = |n: usize| hire(&format!(r#","title":"{}""#, long(n)), "");
        assert!(parse_event(title(text::MAX_NAME).as_bytes()).is_ok());
        let e = err(&title(text::MAX_NAME + 1));
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            ("person.title", "must be at most 256 characters")
        );
        let email = |n: usize| {
            format!(
                r#"{{"type":"transfer","person":{{"id":"e1","email":"{}@example.com"}}}}"#,
                "a".repeat(n - "@example.com".len())
            )
        };
        assert!(parse_event(email(text::MAX_EMAIL).as_bytes()).is_ok());
        assert_eq!(err(&email(text::MAX_EMAIL + 1)).field, "person.email");
        let attr = |n: usize| hire(&format!(r#","attributes":{{"bio":"{}"}}"#, long(n)), "");
        assert!(parse_event(attr(text::MAX_ATTRIBUTE).as_bytes()).is_ok());
        assert_eq!(
            err(&attr(text::MAX_ATTRIBUTE + 1)).field,
            "person.attributes.bio"
        );
        let list = |n: usize| {
            let items = vec!["\"x\""; n].join(",");
            hire(&format!(r#","attributes":{{"trainings":[{items}]}}"#), "")
        };
        assert!(parse_event(list(text::MAX_LIST).as_bytes()).is_ok());
        let e = err(&list(text::MAX_LIST + 1));
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            (
                "person.attributes.trainings",
                "must hold at most 100 strings"
            )
        );
    }

    fn hire(id: &str) -> EventInput {
        parse_event(
            format!(r#"{{"type":"hire","person":{{"id":"{id}","name":"Ada","email":"ada@example.com","worker_type":"employee","title":"Engineer"}}}}"#)
                .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn leave_terminates_and_ends_engagements() {
        let today = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        let p = apply_event(&hire("e1"), None, &[], today).unwrap().person;
        let en = Engagement {
            id: "g".into(),
            person_id: "e1".into(),
            client_id: "acme".into(),
            role: "consultant".into(),
            start_date: None,
            end_date: None,
            active: true,
        };
        let leave = parse_event(br#"{"type":"leave","person":{"id":"e1"}}"#).unwrap();
        let out = apply_event(&leave, Some(&p), &[en], today).unwrap();
        assert_eq!(out.person.status, PersonStatus::Terminated);
        assert_eq!(out.person.end_date, Some(today));
        assert!(!out.engagements[0].active);
    }

    #[test]
    fn transfer_of_unknown_person_is_refused() {
        let t =
            parse_event(br#"{"type":"transfer","person":{"id":"nobody","title":"CTO"}}"#).unwrap();
        let today = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        assert_eq!(
            apply_event(&t, None, &[], today),
            Err(ApplyError::UnknownPerson("nobody".into()))
        );
    }
}
