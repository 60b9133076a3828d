//! HR webhook mappings: how an HR system's JSON payload (a Workday- or BambooHR-shaped change
//! notice) becomes tenure events, configured in `tenure.toml` rather than coded.
//!
//! ```toml
//! [hr.bamboohr]
//! each = "/employees"                 # optional: the payload carries a list of changes
//! [hr.bamboohr.fields]
//! type = { pointer = "/action", map = { Created = "hire", Updated = "transfer", Deleted = "leave" } }
//! id = "/changeId"
//! "person.id" = "/id"
//! "person.worker_type" = { pointer = "/fields/employmentStatus", map = { "Full-Time" = "employee", Contractor = "contractor" }, default = "employee" }
//! source_value = { value = "bamboohr" }
//! ```
//!
//! A field is a JSON pointer (RFC 6901) into the payload (or into each list item), or a table
//! with `pointer` or a constant `value`, an optional `map` from HR values to tenure values and
//! a `default` for absent values. A change whose `type` has no mapping is skipped (HR systems
//! announce many changes tenure has no use for); any other unmapped value is an error. The
//! result goes through [`crate::event::parse_event`], so an event built from a payload is
//! checked exactly like one sent directly.

use crate::event::{EventError, EventInput, parse_event};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The event fields a mapping may set.
pub const TARGETS: &[&str] = &[
    "type",
    "id",
    "effective_at",
    "person.id",
    "person.name",
    "person.email",
    "person.worker_type",
    "person.department",
    "person.title",
    "person.location",
    "person.manager",
    "person.start_date",
    "person.end_date",
    "engagement.id",
    "engagement.client",
    "engagement.role",
    "engagement.start_date",
    "engagement.end_date",
];

/// Where one event field's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRule {
    /// A JSON pointer into the payload item; `None` with a constant `value`.
    pub pointer: Option<String>,
    /// A constant.
    pub value: Option<String>,
    /// HR value to tenure value.
    pub map: Option<BTreeMap<String, String>>,
    /// Used when the payload has no value (or `null`).
    pub default: Option<String>,
}

/// One HR source's mapping (`[hr.<source>]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HrMapping {
    /// The source's name (the `{source}` of `POST /api/v1/hr/{source}`), recorded on events.
    pub source: String,
    /// A pointer to an array of changes; the whole payload is one change when absent.
    pub each: Option<String>,
    /// Event field (dotted, from [`TARGETS`]) to rule.
    pub fields: BTreeMap<String, FieldRule>,
}

/// What became of one change in a payload.
#[derive(Debug, Clone, PartialEq)]
pub enum Mapped {
    /// An event, checked like any other.
    Event(Box<EventInput>),
    /// A change tenure has no event for.
    Skipped {
        /// Why.
        reason: String,
    },
}

/// Checks a mapping's shape from its TOML table; errors name the key.
pub fn parse_mapping(source: &str, table: &toml::Table) -> Result<HrMapping, String> {
    let mut each = None;
    let mut fields = BTreeMap::new();
    for (k, v) in table {
        match (k.as_str(), v) {
            ("each", toml::Value::String(p)) => {
                check_pointer(p).map_err(|e| format!("each: {e}"))?;
                each = Some(p.clone());
            }
            ("each", _) => return Err("each: must be a JSON pointer string".into()),
            ("fields", toml::Value::Table(t)) => {
                for (target, rule) in t {
                    if !TARGETS.contains(&target.as_str()) {
                        return Err(format!(
                            "fields.\"{target}\": not an event field; fields are {}",
                            TARGETS.join(", ")
                        ));
                    }
                    let r = parse_rule(rule).map_err(|e| format!("fields.\"{target}\": {e}"))?;
                    fields.insert(target.clone(), r);
                }
            }
            ("fields", _) => return Err("fields: must be a table".into()),
            (other, _) => return Err(format!("unknown key `{other}`; keys are each, fields")),
        }
    }
    for required in ["type", "person.id"] {
        if !fields.contains_key(required) {
            return Err(format!("fields.\"{required}\" is required"));
        }
    }
    Ok(HrMapping {
        source: source.to_string(),
        each,
        fields,
    })
}

fn check_pointer(p: &str) -> Result<(), String> {
    if p.is_empty() || p.starts_with('/') {
        Ok(())
    } else {
        Err(format!(
            "`{p}` is not a JSON pointer (it must start with `/`)"
        ))
    }
}

fn parse_rule(v: &toml::Value) -> Result<FieldRule, String> {
    match v {
        toml::Value::String(p) => {
            check_pointer(p)?;
            Ok(FieldRule {
                pointer: Some(p.clone()),
                value: None,
                map: None,
                default: None,
            })
        }
        toml::Value::Table(t) => {
            let mut rule = FieldRule {
                pointer: None,
                value: None,
                map: None,
                default: None,
            };
            for (k, v) in t {
                let s = || {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| format!("`{k}` must be a string"))
                };
                match k.as_str() {
                    "pointer" => {
                        let p = s()?;
                        check_pointer(&p)?;
                        rule.pointer = Some(p);
                    }
                    "value" => rule.value = Some(s()?),
                    "default" => rule.default = Some(s()?),
                    "map" => {
                        let t = v.as_table().ok_or("`map` must be a table")?;
                        let mut m = BTreeMap::new();
                        for (from, to) in t {
                            let to = to
                                .as_str()
                                .ok_or_else(|| format!("map.\"{from}\" must be a string"))?;
                            m.insert(from.clone(), to.to_string());
                        }
                        rule.map = Some(m);
                    }
                    other => {
                        return Err(format!(
                            "unknown key `{other}`; keys are pointer, value, map, default"
                        ));
                    }
                }
            }
            if rule.pointer.is_some() == rule.value.is_some() {
                return Err("give exactly one of `pointer` and `value`".into());
            }
            Ok(rule)
        }
        _ => Err("must be a JSON pointer string or a table".into()),
    }
}

fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        other => Some(other.to_string()),
    }
}

impl HrMapping {
    /// Maps a payload into events (or skipped changes), in payload order. An error names the
    /// item and field at fault; nothing is returned in part.
    pub fn map(&self, payload: &Value) -> Result<Vec<Mapped>, EventError> {
        let items: Vec<(String, &Value)> = match &self.each {
            None => vec![(String::new(), payload)],
            Some(p) => match payload.pointer(p) {
                Some(Value::Array(a)) => a
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (format!("{p}/{i}"), v))
                    .collect(),
                _ => {
                    return Err(EventError {
                        field: p.clone(),
                        message: "must be an array of changes".into(),
                    });
                }
            },
        };
        items
            .into_iter()
            .map(|(at, item)| self.map_one(&at, item))
            .collect()
    }

    fn map_one(&self, at: &str, item: &Value) -> Result<Mapped, EventError> {
        let err = |field: String, message: String| EventError { field, message };
        let mut event = Map::new();
        event.insert("source".into(), Value::String(self.source.clone()));
        for (target, rule) in &self.fields {
            let where_ = match &rule.pointer {
                Some(p) => format!("{at}{p}"),
                None => format!("fields.{target}"),
            };
            let raw = match (&rule.pointer, &rule.value) {
                (Some(p), _) => item.pointer(p).and_then(as_text),
                (None, Some(v)) => Some(v.clone()),
                (None, None) => None,
            };
            let value = match (raw, &rule.map) {
                (Some(v), Some(map)) => match map.get(&v) {
                    Some(m) => Some(m.clone()),
                    None if target == "type" => {
                        return Ok(Mapped::Skipped {
                            reason: format!("{where_}: `{v}` is not a change tenure acts on"),
                        });
                    }
                    None => match &rule.default {
                        Some(d) => Some(d.clone()),
                        None => {
                            return Err(err(
                                where_,
                                format!("`{v}` has no mapping for {target} and no default"),
                            ));
                        }
                    },
                },
                (Some(v), None) => Some(v),
                (None, _) => rule.default.clone(),
            };
            let Some(mut value) = value.filter(|v| !v.is_empty()) else {
                continue;
            };
            if target == "effective_at" && value.len() == 10 {
                value.push_str("T00:00:00Z"); // a date: the start of that day, UTC
            } else if target.ends_with("_date") && value.len() > 10 && value.as_bytes()[10] == b'T'
            {
                value.truncate(10); // a timestamp where a date is wanted
            }
            set(&mut event, target, Value::String(value));
        }
        let body = serde_json::to_vec(&Value::Object(event)).expect("JSON values serialize");
        parse_event(&body)
            .map(|e| Mapped::Event(Box::new(e)))
            .map_err(|e| {
                let field = if at.is_empty() {
                    e.field
                } else {
                    format!("{at}: {}", e.field)
                };
                err(field, format!("{} (after mapping)", e.message))
            })
    }
}

fn set(obj: &mut Map<String, Value>, dotted: &str, v: Value) {
    match dotted.split_once('.') {
        None => {
            obj.insert(dotted.to_string(), v);
        }
        Some((head, rest)) => {
            let child = obj
                .entry(head.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(m) = child {
                set(m, rest, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventType;

    fn mapping(src: &str, toml_text: &str) -> HrMapping {
        parse_mapping(src, &toml_text.parse::<toml::Table>().unwrap()).unwrap()
    }

    #[test]
    fn refuses_bad_mappings_with_the_key() {
        let t = |s: &str| parse_mapping("x", &s.parse::<toml::Table>().unwrap()).unwrap_err();
        assert!(t("[fields]\n\"person.id\" = \"/id\"\n").contains("\"type\" is required"));
        assert!(
            t("[fields]\ntype = \"/t\"\n\"person.id\" = \"/id\"\n\"person.salary\" = \"/s\"\n")
                .contains("person.salary")
        );
        assert!(t("[fields]\ntype = \"t\"\n\"person.id\" = \"/id\"\n").contains("JSON pointer"));
        assert!(
            t("[fields]\ntype = { pointer = \"/t\", value = \"hire\" }\n\"person.id\" = \"/id\"\n")
                .contains("exactly one")
        );
        assert!(t("colour = 1\n").contains("colour"));
    }

    #[test]
    fn maps_values_dates_and_skips_unknown_changes() {
        let m = mapping(
            "hr",
            r#"
[fields]
type = { pointer = "/kind", map = { Hired = "hire", Fired = "leave" } }
"person.id" = "/who/id"
"person.name" = "/who/name"
"person.email" = { pointer = "/who/mail", default = "unknown@example.com" }
"person.worker_type" = { pointer = "/who/kind", map = { FT = "employee" }, default = "contractor" }
"person.start_date" = "/when"
effective_at = "/when"
"#,
        );
        let p = serde_json::json!({"kind": "Hired", "who": {"id": 42, "name": "Ada", "kind": "PT"}, "when": "2026-12-01T09:00:00Z"});
        let out = m.map(&p).unwrap();
        let Mapped::Event(e) = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(e.kind, EventType::Hire);
        assert_eq!(e.person.id, "42");
        assert_eq!(e.person.worker_type, Some(crate::WorkerType::Contractor));
        assert_eq!(e.person.start_date.unwrap().to_string(), "2026-12-01");
        assert_eq!(e.source.as_deref(), Some("hr"));
        let skipped = m
            .map(&serde_json::json!({"kind": "Promoted", "who": {"id": 1}}))
            .unwrap();
        assert!(matches!(&skipped[0], Mapped::Skipped { reason } if reason.contains("Promoted")));
        let bad = m
            .map(&serde_json::json!({"kind": "Hired", "who": {"id": 1}}))
            .unwrap_err();
        assert_eq!(bad.field, "person.name", "{bad:?}");
        // A NUL in a payload's value refuses the change like any event's.
        let nul = m
            .map(&serde_json::json!({"kind": "Hired", "who": {"id": 1, "name": "A\u{0}da"}}))
            .unwrap_err();
        assert_eq!(
            (nul.field.as_str(), nul.message.as_str()),
            (
                "person.name",
                "must not contain a NUL character (after mapping)"
            )
        );
    }
}
