//! The Cedar schema, generated from tenure's model and the configured clients.
//!
//! People and entitlements have fixed attributes. A client's attributes are free-form in
//! `tenure.toml`, so their types are inferred from the values every client gives, and each is
//! declared optional: a client may leave any of them out (clients first seen in an engagement
//! event have none), so a policy must test `has` before it reads one. An attribute that cannot be
//! typed (floats, values whose type differs between clients, lists only ever empty) is left out
//! of the schema, and of the entities, with a warning.

use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use tenure_core::config::{AttrType, Config};

/// A client attribute's type, as far as the values seen tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ty {
    Bool,
    Long,
    String,
    /// A list; `None` while only empty lists were seen.
    Set(Option<Box<Ty>>),
    /// A table; every field optional.
    Record(BTreeMap<String, Ty>),
}

impl Ty {
    /// The type of one value, or why it has none.
    fn of(v: &Value) -> Result<Ty, String> {
        Ok(match v {
            Value::Bool(_) => Ty::Bool,
            Value::Number(n) if n.is_i64() => Ty::Long,
            Value::Number(_) => {
                return Err("numbers with a fraction are not supported by policy; use a string or an integer".into());
            }
            Value::String(_) => Ty::String,
            Value::Null => return Err("null values are not supported by policy".into()),
            Value::Array(items) => {
                let mut elem: Option<Ty> = None;
                for i in items {
                    let t = Ty::of(i)?;
                    elem = Some(match elem {
                        None => t,
                        Some(e) => e.merge(t).ok_or("a list mixes values of different types")?,
                    });
                }
                Ty::Set(elem.map(Box::new))
            }
            Value::Object(m) => {
                let mut fields = BTreeMap::new();
                for (k, v) in m {
                    fields.insert(k.clone(), Ty::of(v).map_err(|e| format!("`{k}`: {e}"))?);
                }
                Ty::Record(fields)
            }
        })
    }

    /// The type that covers both, if any.
    fn merge(self, other: Ty) -> Option<Ty> {
        match (self, other) {
            (Ty::Set(None), Ty::Set(b)) => Some(Ty::Set(b)),
            (Ty::Set(a), Ty::Set(None)) => Some(Ty::Set(a)),
            (Ty::Set(Some(a)), Ty::Set(Some(b))) => Some(Ty::Set(Some(Box::new(a.merge(*b)?)))),
            (Ty::Record(mut a), Ty::Record(b)) => {
                for (k, t) in b {
                    let merged = match a.remove(&k) {
                        Some(x) => x.merge(t)?,
                        None => t,
                    };
                    a.insert(k, merged);
                }
                Some(Ty::Record(a))
            }
            (a, b) if a == b => Some(a),
            _ => None,
        }
    }

    /// Whether every part of the type is known.
    fn is_complete(&self) -> bool {
        match self {
            Ty::Set(None) => false,
            Ty::Set(Some(t)) => t.is_complete(),
            Ty::Record(f) => f.values().all(Ty::is_complete),
            _ => true,
        }
    }

    fn write(&self, out: &mut String) {
        match self {
            Ty::Bool => out.push_str("Bool"),
            Ty::Long => out.push_str("Long"),
            Ty::String => out.push_str("String"),
            Ty::Set(t) => {
                out.push_str("Set<");
                t.as_ref().expect("complete type").write(out);
                out.push('>');
            }
            Ty::Record(fields) => {
                out.push_str("{ ");
                for (i, (k, t)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    let _ = write!(out, "{}?: ", quote(k));
                    t.write(out);
                }
                out.push_str(" }");
            }
        }
    }
}

/// A client attribute left out of the schema, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaWarning {
    /// The client whose value could not be typed (the first one, for a conflict).
    pub client: String,
    /// The attribute.
    pub attribute: String,
    /// Why it was left out.
    pub message: String,
}

/// The generated schema's text and the client attribute types behind it.
#[derive(Debug, Clone)]
pub(crate) struct Generated {
    pub text: String,
    pub client_attributes: BTreeMap<String, Ty>,
    pub person_attributes: BTreeMap<String, Ty>,
    pub warnings: Vec<SchemaWarning>,
}

/// Attribute names tenure sets on every client itself.
const CLIENT_BUILTIN: &[&str] = &["name"];

pub(crate) fn generate(config: &Config) -> Generated {
    let mut types: BTreeMap<String, (Ty, String)> = BTreeMap::new();
    let mut dropped: BTreeMap<String, SchemaWarning> = BTreeMap::new();
    for c in config.clients.values() {
        for (k, v) in &c.attributes {
            if dropped.contains_key(k) {
                continue;
            }
            let mut drop = |message: String| {
                dropped.insert(
                    k.clone(),
                    SchemaWarning {
                        client: c.id.clone(),
                        attribute: k.clone(),
                        message,
                    },
                );
            };
            if CLIENT_BUILTIN.contains(&k.as_str()) {
                drop(format!(
                    "`{k}` is set by tenure itself (the client's display name)"
                ));
                continue;
            }
            if k.chars().any(char::is_control) {
                drop("attribute names may not contain control characters".into());
                continue;
            }
            let t = match Ty::of(v) {
                Ok(t) => t,
                Err(e) => {
                    drop(e);
                    continue;
                }
            };
            match types.remove(k) {
                None => {
                    types.insert(k.clone(), (t, c.id.clone()));
                }
                Some((prev, first)) => match prev.clone().merge(t) {
                    Some(m) => {
                        types.insert(k.clone(), (m, first));
                    }
                    None => drop(format!(
                        "its values have different types on clients `{first}` ({}) and `{}`",
                        describe(&prev),
                        c.id
                    )),
                },
            }
        }
    }
    let mut client_attributes = BTreeMap::new();
    for (k, (t, first)) in types {
        if dropped.contains_key(&k) {
            continue;
        }
        if t.is_complete() {
            client_attributes.insert(k, t);
        } else {
            dropped.insert(
                k.clone(),
                SchemaWarning {
                    client: first,
                    attribute: k,
                    message: "only empty lists were given, so the element type is unknown".into(),
                },
            );
        }
    }
    let person_attributes: BTreeMap<String, Ty> = config
        .person_attributes
        .iter()
        .map(|(k, t)| {
            let ty = match t {
                AttrType::Bool => Ty::Bool,
                AttrType::String => Ty::String,
                AttrType::Long => Ty::Long,
                AttrType::StringSet => Ty::Set(Some(Box::new(Ty::String))),
            };
            (k.clone(), ty)
        })
        .collect();
    let mut person_fields = String::new();
    for (k, t) in &person_attributes {
        let _ = write!(person_fields, "  {}?: ", quote(k));
        t.write(&mut person_fields);
        person_fields.push_str(",\n");
    }
    let mut client_fields = String::new();
    for (k, t) in &client_attributes {
        let _ = write!(client_fields, "  {}?: ", quote(k));
        t.write(&mut client_fields);
        client_fields.push_str(",\n");
    }
    let text = format!(
        r#"// Generated by tenure from its model and the configured clients; not edited by hand.
// `tenure policy schema` prints it. Policies are validated against it in strict mode.

// A worker, as the HR system describes them.
entity Person = {{
  "worker_type": String, // employee | contractor | partner
  "status": String,      // pre_hire | active | leaving | terminated
  "department"?: String,
  "title"?: String,
  "location"?: String,
  // The identity provider's groups the person is in (SCIM displayNames); empty when none.
  "groups": Set<String>,
  // Declared in [person_attributes]; optional (test with `has` first).
{person_fields}}};

// A client. Attributes other than `name` come from [clients.attributes] in tenure.toml; all are
// optional (test with `has` first).
entity Client = {{
  "name": String,
{client_fields}}};

// Something a person can hold on a target system.
entity Entitlement = {{
  "system": String,
  "kind": String,        // group, role, license, ...
  "risk": String,        // low | medium | high | privileged
  "owner"?: String,
  "client"?: Client,     // set on client-scoped entitlements
}};

// Giving a person an entitlement. Asked for every grant a run would make.
action "grant" appliesTo {{
  principal: [Person],
  resource: [Entitlement],
  context: {{
    "source": String,     // birthright | engagement | request
    "source_ref": String, // the template, engagement or request id
  }},
}};
"#
    );
    Generated {
        text,
        client_attributes,
        person_attributes,
        warnings: dropped.into_values().collect(),
    }
}

fn describe(t: &Ty) -> String {
    let mut s = String::new();
    if t.is_complete() {
        t.write(&mut s);
    } else {
        s.push_str("a list");
    }
    s
}

/// A Cedar string literal.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
