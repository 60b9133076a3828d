//! The rules of the wire format that a type alone does not say: what an id, an email address,
//! a name and an attribute may be, and which fields each event type needs. The checks in
//! [`event`](crate::event) enforce them with the constants here; the schemas here state them
//! for the API's OpenAPI document, so the document says what the server accepts.
//!
//! Patterns are written in the common subset of ECMA-262 (JSON Schema), Python and Rust regex
//! syntax, and are tested against the checks they describe.

use crate::event::{ClientInput, EngagementInput, EventInput, EventType, PersonInput};
use crate::model::{Client, WorkerType};
use utoipa::openapi::schema::{
    AllOfBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::{RefOr, schema::AdditionalProperties};
use utoipa::{PartialSchema, ToSchema};

/// The longest id (of a person, an event, a client), in characters.
pub const MAX_ID_CHARS: usize = 200;

/// Characters Rust counts as whitespace (`char::is_whitespace`), as a regex class body.
macro_rules! whitespace_class {
    () => {
        r"\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
    };
}

/// Whitespace and control characters (`char::is_control`), as a regex class body.
macro_rules! space_or_control_class {
    () => {
        r"\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
    };
}

/// An id: no whitespace, no control characters (and 1 to [`MAX_ID_CHARS`] of the others).
pub const ID_PATTERN: &str = concat!("^[^", space_or_control_class!(), "]+$");

/// An email address as tenure checks one: something, `@`, a domain with a dot that neither
/// starts nor ends it; no second `@`, no whitespace or control characters.
pub const EMAIL_PATTERN: &str = concat!(
    "^[^@",
    space_or_control_class!(),
    "]+@[^@.",
    space_or_control_class!(),
    "][^@",
    space_or_control_class!(),
    r"]*\.[^@",
    space_or_control_class!(),
    "]*[^@.",
    space_or_control_class!(),
    "]$"
);

/// Text that is not blank: it holds something besides whitespace.
pub const NON_BLANK_PATTERN: &str = concat!("[^", whitespace_class!(), "]");

/// An attribute name policy can read (a Cedar identifier of at most 64 characters).
pub const ATTRIBUTE_NAME_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_]{0,63}$";

fn string_type(nullable: bool) -> SchemaType {
    if nullable {
        SchemaType::from_iter([Type::String, Type::Null])
    } else {
        SchemaType::new(Type::String)
    }
}

fn id_schema(nullable: bool, description: &str) -> Schema {
    ObjectBuilder::new()
        .schema_type(string_type(nullable))
        .min_length(Some(1))
        .max_length(Some(MAX_ID_CHARS))
        .pattern(Some(ID_PATTERN))
        .description(Some(format!(
            "{description} 1 to {MAX_ID_CHARS} characters, no whitespace or control characters."
        )))
        .build()
        .into()
}

/// An id (a person's, a client's).
pub fn id() -> Schema {
    id_schema(false, "An id:")
}

/// An id that may be left out or null.
pub fn optional_id() -> Schema {
    id_schema(true, "An id:")
}

/// An email address that may be left out or null.
pub fn optional_email() -> Schema {
    ObjectBuilder::new()
        .schema_type(string_type(true))
        .pattern(Some(EMAIL_PATTERN))
        .description(Some(
            "Work email address: `local@domain` with a dot inside the domain, no whitespace or control characters.",
        ))
        .build()
        .into()
}

/// Text that must not be blank.
pub fn non_blank() -> Schema {
    ObjectBuilder::new()
        .schema_type(string_type(false))
        .pattern(Some(NON_BLANK_PATTERN))
        .description(Some("Must not be blank."))
        .build()
        .into()
}

/// Text that may be left out or null, but not blank.
pub fn optional_non_blank() -> Schema {
    ObjectBuilder::new()
        .schema_type(string_type(true))
        .pattern(Some(NON_BLANK_PATTERN))
        .description(Some("Must not be blank when given."))
        .build()
        .into()
}

fn attributes_schema(nullable: bool) -> Schema {
    let value = ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([
            Type::Boolean,
            Type::String,
            Type::Integer,
            Type::Array,
            Type::Null,
        ]))
        .minimum(Some(i64::MIN))
        .maximum(Some(i64::MAX))
        .build();
    // `items` belongs to the array case of the value; an object schema has no field for it.
    let mut value = Schema::Object(value);
    if let Schema::Object(o) = &mut value {
        o.extensions
            .get_or_insert_with(Default::default)
            .insert("items".into(), serde_json::json!({ "type": "string" }));
    }
    ObjectBuilder::new()
        .schema_type(if nullable {
            SchemaType::from_iter([Type::Object, Type::Null])
        } else {
            SchemaType::new(Type::Object)
        })
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(ATTRIBUTE_NAME_PATTERN)),
        ))
        .additional_properties(Some(AdditionalProperties::RefOr(RefOr::T(value))))
        .description(Some(
            "Facts policy reads, by name (letters, digits and `_`, at most 64, not starting with a digit): booleans, strings, integers or lists of strings; in an event, `null` removes one.",
        ))
        .build()
        .into()
}

/// Attributes carried in by an event or a client.
pub fn attributes() -> Schema {
    attributes_schema(false)
}

/// Attributes that may be left out or null.
pub fn optional_attributes() -> Schema {
    attributes_schema(true)
}

/// A client's maximum access duration in days, when given.
pub fn optional_access_days() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
        .minimum(Some(1))
        .maximum(Some(crate::config::MAX_ACCESS_DAYS as f64))
        .description(Some(
            "The contract's maximum access duration: every grant of this client's entitlements ends this many days after it was given.",
        ))
        .build()
        .into()
}

fn reference<T: ToSchema>() -> RefOr<Schema> {
    RefOr::Ref(utoipa::openapi::Ref::from_schema_name(T::name()))
}

/// The event types of one shape, with what that shape requires of the person and engagement.
fn event_shape(kinds: &[EventType], person: RefOr<Schema>, engagement: RefOr<Schema>) -> Schema {
    let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
    ObjectBuilder::new()
        .title(Some(kinds.join(" or ")))
        .schema_type(Type::Object)
        .property(
            "id",
            id_schema(
                true,
                "The sender's own id for the event; also an idempotency key (see the `Idempotency-Key` header).",
            ),
        )
        .property(
            "type",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(kinds.clone())),
        )
        .required("type")
        .property("person", person)
        .required("person")
        .property("engagement", engagement)
        .property(
            "effective_at",
            ObjectBuilder::new()
                .schema_type(string_type(true))
                .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::DateTime,
                )))
                .description(Some(
                    "When the event takes effect (RFC 3339); now when absent. A future event waits until then; a future `leave` marks the person `leaving` at once.",
                )),
        )
        .property(
            "source",
            ObjectBuilder::new()
                .schema_type(string_type(true))
                .description(Some(
                    "Which system sent it (`workday`, `csv`, ...); shown in the audit trail.",
                )),
        )
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .build()
        .into()
}

impl PartialSchema for EventInput {
    /// One shape per group of event types: a hire or rehire names the person in full; an
    /// engagement event carries its engagement; the others carry none.
    fn schema() -> RefOr<Schema> {
        let joiner_person = AllOfBuilder::new()
            .item(reference::<PersonInput>())
            .item(
                ObjectBuilder::new()
                    .required("name")
                    .required("email")
                    .required("worker_type")
                    .property("name", ObjectBuilder::new().schema_type(Type::String))
                    .property("email", ObjectBuilder::new().schema_type(Type::String))
                    .property("worker_type", reference::<WorkerType>()),
            )
            .description(Some(
                "The person in full: `name`, `email` and `worker_type` are required for a hire or rehire.",
            ))
            .build();
        let no_engagement = ObjectBuilder::new()
            .schema_type(Type::Null)
            .description(Some("Only engagement events carry an engagement."))
            .build();
        // Required, and not null.
        let mut engagement_shape = event_shape(
            &[EventType::EngagementStart, EventType::EngagementEnd],
            reference::<PersonInput>(),
            reference::<EngagementInput>(),
        );
        if let Schema::Object(o) = &mut engagement_shape {
            o.required.push("engagement".into());
        }
        let shapes = OneOfBuilder::new()
            .item(event_shape(
                &[EventType::Hire, EventType::Rehire],
                RefOr::T(Schema::AllOf(joiner_person)),
                RefOr::T(no_engagement.clone().into()),
            ))
            .item(engagement_shape)
            .item(event_shape(
                &[
                    EventType::Transfer,
                    EventType::Leave,
                    EventType::ContractChange,
                ],
                reference::<PersonInput>(),
                RefOr::T(no_engagement.into()),
            ))
            .description(Some(
                "A lifecycle event. Unknown fields are refused. A `hire` or `rehire` names the person in full; only `engagement_start` and `engagement_end` carry an `engagement`, and they must.",
            ))
            .examples([
                serde_json::json!({
                    "type": "hire", "source": "workday",
                    "person": { "id": "E900", "name": "Ada Lovelace", "email": "ada@example.com",
                                "worker_type": "employee", "department": "Engineering",
                                "title": "Software Engineer", "location": "London" }
                }),
                serde_json::json!({
                    "type": "engagement_start", "person": { "id": "E900" },
                    "engagement": { "client": "acme", "role": "consultant" }
                }),
                serde_json::json!({ "type": "leave", "person": { "id": "E900" } }),
            ])
            .build();
        RefOr::T(Schema::OneOf(shapes))
    }
}

impl ToSchema for EventInput {
    fn name() -> std::borrow::Cow<'static, str> {
        "EventInput".into()
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((PersonInput::name().into(), PersonInput::schema()));
        PersonInput::schemas(schemas);
        schemas.push((EngagementInput::name().into(), EngagementInput::schema()));
        EngagementInput::schemas(schemas);
        schemas.push((WorkerType::name().into(), WorkerType::schema()));
    }
}

impl PartialSchema for ClientInput {
    /// The id of a known client, or the client in full.
    fn schema() -> RefOr<Schema> {
        let one_of = OneOfBuilder::new()
            .item(id_schema(false, "The id of a known client:"))
            .item(reference::<Client>())
            .description(Some(
                "The client: its id, or the client in full (stored, and its terms win over tenure.toml's attribute by attribute).",
            ))
            .build();
        RefOr::T(Schema::OneOf(one_of))
    }
}

impl ToSchema for ClientInput {
    fn name() -> std::borrow::Cow<'static, str> {
        "ClientInput".into()
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((Client::name().into(), Client::schema()));
        Client::schemas(schemas);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use regex::Regex;

    fn matches(pattern: &str, s: &str) -> bool {
        Regex::new(pattern).expect("pattern compiles").is_match(s)
    }

    /// Strings drawn from the characters the rules are about.
    fn text() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just('a'),
                Just('Z'),
                Just('7'),
                Just('_'),
                Just('.'),
                Just('@'),
                Just(' '),
                Just('\t'),
                Just('\u{0}'),
                Just('\u{7f}'),
                Just('\u{85}'),
                Just('\u{a0}'),
                Just('\u{2003}'),
                Just('\u{3000}'),
                Just('\u{feff}'),
                Just('é'),
                Just('😀'),
                any::<char>(),
            ],
            0..12,
        )
        .prop_map(|cs| cs.into_iter().collect())
    }

    proptest! {
        #[test]
        fn the_id_pattern_is_the_id_check(s in text()) {
            let checked = crate::event::check_id("id", &s).is_ok();
            let stated = matches(ID_PATTERN, &s) && s.chars().count() <= MAX_ID_CHARS;
            prop_assert_eq!(checked, stated, "{:?}", s);
        }

        #[test]
        fn the_email_pattern_is_the_email_check(s in text()) {
            prop_assert_eq!(crate::event::is_email(&s), matches(EMAIL_PATTERN, &s), "{:?}", s);
        }

        #[test]
        fn the_non_blank_pattern_is_the_blank_check(s in text()) {
            prop_assert_eq!(!s.trim().is_empty(), matches(NON_BLANK_PATTERN, &s), "{:?}", s);
        }

        #[test]
        fn the_attribute_name_pattern_is_the_name_check(s in text()) {
            prop_assert_eq!(
                crate::model::is_attribute_name(&s),
                matches(ATTRIBUTE_NAME_PATTERN, &s),
                "{:?}", s
            );
        }
    }

    #[test]
    fn ids_are_counted_in_characters() {
        let long = "é".repeat(MAX_ID_CHARS);
        assert!(crate::event::check_id("id", &long).is_ok());
        assert!(crate::event::check_id("id", &format!("{long}é")).is_err());
    }

    /// Every field of the event's wire form is in every shape of its schema.
    #[test]
    fn every_event_field_is_described() {
        let event = EventInput {
            id: Some("e1".into()),
            kind: EventType::Hire,
            person: PersonInput {
                id: "E1".into(),
                ..Default::default()
            },
            engagement: Some(EngagementInput {
                id: None,
                client: crate::event::ClientInput::Id("acme".into()),
                role: "consultant".into(),
                start_date: None,
                end_date: None,
            }),
            effective_at: Some(chrono::DateTime::UNIX_EPOCH),
            source: Some("workday".into()),
        };
        let fields: Vec<String> = serde_json::to_value(&event)
            .expect("an event serializes")
            .as_object()
            .expect("an object")
            .keys()
            .cloned()
            .collect();
        let RefOr::T(Schema::OneOf(one_of)) = EventInput::schema() else {
            panic!("the event schema is a oneOf");
        };
        let mut kinds = Vec::new();
        for shape in &one_of.items {
            let RefOr::T(Schema::Object(o)) = shape else {
                panic!("each shape is an object");
            };
            let described: Vec<&String> = o.properties.keys().collect();
            assert_eq!(described.len(), fields.len(), "{described:?} vs {fields:?}");
            for f in &fields {
                assert!(o.properties.contains_key(f), "`{f}` is not described");
            }
            let RefOr::T(Schema::Object(t)) = &o.properties["type"] else {
                panic!("type is inline");
            };
            kinds.extend(t.enum_values.clone().unwrap_or_default());
        }
        // Each event type belongs to exactly one shape.
        let mut all: Vec<serde_json::Value> = EventType::ALL
            .iter()
            .map(|k| serde_json::json!(k.as_str()))
            .collect();
        all.sort_by_key(|v| v.to_string());
        kinds.sort_by_key(|v| v.to_string());
        assert_eq!(kinds, all);
    }
}
