//! SCIM resources as JSON documents checked against the schema table: cleaning what clients
//! send (with the quirks real identity providers need), the value index filters run on,
//! filters resolved for SQL or evaluated in memory, attribute projection, and PATCH.

use crate::index::{Cond, IndexedValue, SortKey, compare_text};
use crate::schema::{self, Attr, Mutability, Schemas, Ty};
use crate::{
    AttrPath, CompValue, CompareOp, Filter, PatchOp, PatchPath, PatchRequest, ScimError, ScimType,
};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use tenure_core::text;

type Res<T> = Result<T, ScimError>;

fn syntax(msg: impl Into<String>) -> ScimError {
    ScimError::new(ScimType::InvalidSyntax, msg)
}

fn invalid(msg: impl Into<String>) -> ScimError {
    ScimError::new(ScimType::InvalidValue, msg)
}

fn bad_filter(msg: impl Into<String>) -> ScimError {
    ScimError::new(ScimType::InvalidFilter, msg)
}

fn is_extension(schemas: &Schemas, key: &str) -> Option<(&'static str, &'static [Attr])> {
    schemas[1..]
        .iter()
        .find(|(urn, _)| urn.eq_ignore_ascii_case(key))
        .copied()
}

/// Splits a flattened `urn:…:User:attr.sub` key (Entra ID writes extension attributes so in
/// PATCH) into the schema and the attribute path, when the prefix is a served schema.
fn split_urn_key<'a>(schemas: &Schemas, key: &'a str) -> Option<(&'static str, &'a str)> {
    schemas.iter().find_map(|(urn, _)| {
        let n = urn.len();
        (key.len() > n + 1
            && key.is_char_boundary(n)
            && key[..n].eq_ignore_ascii_case(urn)
            && key.as_bytes()[n] == b':')
            .then(|| (*urn, &key[n + 1..]))
    })
}

// ------------------------------------------------------------------ cleaning input

fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        // Entra ID sends booleans as the strings "True" and "False".
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// The longest `binary` value (base64, e.g. an X.509 certificate), in characters.
const MAX_BINARY: usize = 16_384;

/// A string the client sent: no NUL (PostgreSQL cannot store one, so neither database
/// does) and at most `max` characters.
fn check_text(at: &str, s: &str, max: usize) -> Res<()> {
    text::check(s, max).map_err(|e| invalid(format!("{at}: {e}")))
}

fn clean_scalar(def: &Attr, v: &Value, at: &str) -> Res<Option<Value>> {
    if v.is_null() {
        return Ok(None);
    }
    match def.ty {
        Ty::Boolean => as_bool(v)
            .map(|b| Some(Value::Bool(b)))
            .ok_or_else(|| invalid(format!("{at}: must be a boolean, not {v}"))),
        Ty::DateTime => {
            let s = v
                .as_str()
                .ok_or_else(|| invalid(format!("{at}: must be a dateTime string, not {v}")))?;
            DateTime::parse_from_rfc3339(s)
                .map_err(|e| invalid(format!("{at}: `{s}` is not an xsd:dateTime ({e})")))?;
            Ok(Some(v.clone()))
        }
        Ty::String | Ty::Reference | Ty::Binary => match v {
            Value::String(s) => {
                let max = if def.ty == Ty::Binary {
                    MAX_BINARY
                } else {
                    text::MAX_TEXT
                };
                check_text(at, s, max)?;
                Ok(Some(v.clone()))
            }
            _ => Err(invalid(format!("{at}: must be a string, not {v}"))),
        },
        Ty::Complex => {
            let obj = v
                .as_object()
                .ok_or_else(|| invalid(format!("{at}: must be an object, not {v}")))?;
            let mut out = Map::new();
            for (k, sv) in obj {
                let Some(sub) = schema::find(def.subs, k) else {
                    return Err(syntax(format!("{at}: unknown sub-attribute `{k}`")));
                };
                if sub.mutability == Mutability::ReadOnly {
                    continue;
                }
                if let Some(x) = clean_scalar(sub, sv, &format!("{at}.{}", sub.name))? {
                    out.insert(sub.name.to_string(), x);
                }
            }
            Ok((!out.is_empty()).then_some(Value::Object(out)))
        }
    }
}

/// Checks one attribute's value against its definition and returns it in canonical form
/// (canonical names, booleans as booleans, nulls and empty values dropped).
fn clean_value(def: &Attr, v: &Value, at: &str) -> Res<Option<Value>> {
    if !def.multi {
        if v.is_array() {
            return Err(invalid(format!("{at}: is single-valued, not an array")));
        }
        return clean_scalar(def, v, at);
    }
    let items: Vec<&Value> = match v {
        Value::Null => return Ok(None),
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    let mut out = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        if let Some(x) = clean_scalar(def, item, &format!("{at}[{i}]"))? {
            out.push(x);
        }
    }
    let primaries = out
        .iter()
        .filter(|x| x.get("primary") == Some(&Value::Bool(true)))
        .count();
    if primaries > 1 {
        return Err(invalid(format!(
            "{at}: `primary` may be true for one value only, not {primaries}"
        )));
    }
    Ok((!out.is_empty()).then_some(Value::Array(out)))
}

/// Cleans a resource body: known attributes only (case-insensitive names), values typed,
/// read-only attributes and `password` ignored. Returns the document as stored: core
/// attributes and `externalId` at the top, each extension under its URN.
pub fn clean(schemas: &Schemas, input: &Value) -> Res<Map<String, Value>> {
    let obj = input
        .as_object()
        .ok_or_else(|| syntax("the body must be a JSON object"))?;
    let mut out = Map::new();
    if let Some(s) = obj
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("schemas"))
        .map(|x| x.1)
    {
        let list = s
            .as_array()
            .filter(|a| a.iter().all(Value::is_string))
            .ok_or_else(|| syntax("`schemas` must be an array of URIs"))?;
        if let Some(unknown) = list
            .iter()
            .filter_map(Value::as_str)
            .find(|u| !schemas.iter().any(|(urn, _)| urn.eq_ignore_ascii_case(u)))
        {
            return Err(syntax(format!(
                "`schemas` names an unknown schema `{unknown}`"
            )));
        }
    }
    for (k, v) in obj {
        if ["schemas", "id", "meta", "password"]
            .iter()
            .any(|x| x.eq_ignore_ascii_case(k))
        {
            continue;
        }
        if k.eq_ignore_ascii_case("externalId") {
            match v {
                Value::Null => {}
                Value::String(s) => {
                    check_text("externalId", s, text::MAX_NAME)?;
                    out.insert("externalId".into(), v.clone());
                }
                _ => return Err(invalid("externalId: must be a string")),
            }
            continue;
        }
        if let Some((urn, attrs)) = is_extension(schemas, k) {
            if v.is_null() {
                continue;
            }
            let ext = v
                .as_object()
                .ok_or_else(|| syntax(format!("`{urn}` must be an object")))?;
            let mut cleaned = Map::new();
            for (ek, ev) in ext {
                // Some clients repeat `schemas` inside the extension object.
                if ek.eq_ignore_ascii_case("schemas") {
                    continue;
                }
                let def = schema::find(attrs, ek)
                    .ok_or_else(|| syntax(format!("unknown attribute `{urn}:{ek}`")))?;
                if def.mutability == Mutability::ReadOnly {
                    continue;
                }
                if let Some(x) = clean_value(def, ev, &format!("{urn}:{}", def.name))? {
                    cleaned.insert(def.name.to_string(), x);
                }
            }
            if !cleaned.is_empty() {
                out.insert(urn.to_string(), Value::Object(cleaned));
            }
            continue;
        }
        let def = schema::find(schemas[0].1, k)
            .ok_or_else(|| syntax(format!("unknown attribute `{k}`")))?;
        if def.mutability == Mutability::ReadOnly {
            continue;
        }
        if let Some(x) = clean_value(def, v, def.name)? {
            out.insert(def.name.to_string(), x);
        }
    }
    for def in schemas[0].1.iter().filter(|d| d.required) {
        let ok = match out.get(def.name) {
            Some(Value::String(s)) => {
                // A required string identifies the resource (`userName`): name-sized.
                check_text(def.name, s, text::MAX_NAME)?;
                !s.trim().is_empty()
            }
            Some(_) => true,
            None => false,
        };
        if !ok {
            return Err(invalid(format!("{} is required", def.name)));
        }
    }
    Ok(out)
}

// ------------------------------------------------------------------ normalized values

fn norm_time(s: &str) -> Option<String> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| {
        t.with_timezone(&Utc)
            .to_rfc3339_opts(SecondsFormat::Millis, true)
    })
}

/// The index form of a scalar value: lowercased unless case-exact, booleans `true`/`false`,
/// times as UTC with milliseconds.
fn norm(def: &Attr, v: &Value) -> Option<String> {
    match (def.ty, v) {
        (Ty::Boolean, v) => as_bool(v).map(|b| b.to_string()),
        (Ty::DateTime, Value::String(s)) => norm_time(s),
        (_, Value::String(s)) if def.case_exact => Some(s.clone()),
        (_, Value::String(s)) => Some(s.to_lowercase()),
        _ => None,
    }
}

const EXTERNAL_ID: Attr = Attr {
    name: "externalId",
    case_exact: true,
    required: false,
    unique_server: false,
    ..schema::USER_ATTRS[0]
};
const ID: Attr = Attr {
    name: "id",
    ..EXTERNAL_ID
};
const META_CREATED: Attr = Attr {
    name: "created",
    ty: Ty::DateTime,
    ..EXTERNAL_ID
};
const META_MODIFIED: Attr = Attr {
    name: "lastModified",
    ..META_CREATED
};
const META: Attr = Attr {
    name: "meta",
    ty: Ty::Complex,
    ..EXTERNAL_ID
};

/// The rows of the value index for a stored document.
pub fn index(
    schemas: &Schemas,
    id: &str,
    doc: &Map<String, Value>,
    created: &str,
    modified: &str,
) -> Vec<IndexedValue> {
    let mut out = Vec::new();
    let mut push = |attr: &str, idx: i64, sub: &str, val: Option<String>| {
        if let Some(val) = val {
            out.push(IndexedValue {
                attr: attr.to_string(),
                idx,
                sub: sub.to_string(),
                val,
            });
        }
    };
    push("id", 0, "", Some(id.to_string()));
    push("meta", 0, "created", norm_time(created));
    push("meta", 0, "lastmodified", norm_time(modified));
    if let Some(v) = doc.get("externalId") {
        push("externalid", 0, "", norm(&EXTERNAL_ID, v));
    }
    let mut walk = |prefix: &str, attrs: &[Attr], obj: &Map<String, Value>| {
        for def in attrs {
            let Some(v) = obj.get(def.name) else { continue };
            let key = format!("{prefix}{}", def.name.to_lowercase());
            let items: Vec<&Value> = match v {
                Value::Array(a) => a.iter().collect(),
                v => vec![v],
            };
            for (i, item) in items.into_iter().enumerate() {
                if def.ty == Ty::Complex {
                    for sub in def.subs {
                        if let Some(sv) = item.get(sub.name) {
                            push(&key, i as i64, &sub.name.to_lowercase(), norm(sub, sv));
                        }
                    }
                } else {
                    push(&key, i as i64, "", norm(def, item));
                }
            }
        }
    };
    walk("", schemas[0].1, doc);
    for (urn, attrs) in &schemas[1..] {
        if let Some(Value::Object(ext)) = doc.get(*urn) {
            walk(&format!("{}:", urn.to_lowercase()), attrs, ext);
        }
    }
    out
}

// ------------------------------------------------------------------ filters

/// An attribute path resolved against the schemas.
struct Resolved {
    /// Index key of the attribute.
    key: String,
    /// The attribute.
    def: &'static Attr,
    /// The sub-attribute, when the path names one (or implies `value`).
    sub: Option<&'static Attr>,
}

fn resolve(schemas: &Schemas, path: &AttrPath) -> Res<Resolved> {
    let (prefix, attrs) = match &path.schema {
        None => ("".to_string(), schemas[0].1),
        Some(urn) => match schema::schema_attrs(schemas, urn) {
            Some((u, attrs)) if u == schemas[0].0 => ("".to_string(), attrs),
            Some((u, attrs)) => (format!("{}:", u.to_lowercase()), attrs),
            None => return Err(bad_filter(format!("unknown schema `{urn}` in `{path}`"))),
        },
    };
    let common: Option<&'static Attr> = if prefix.is_empty() {
        if path.attr.eq_ignore_ascii_case("id") {
            Some(&ID)
        } else if path.attr.eq_ignore_ascii_case("externalId") {
            Some(&EXTERNAL_ID)
        } else if path.attr.eq_ignore_ascii_case("meta") {
            let sub = path.sub_attr.as_deref().unwrap_or("");
            for m in [&META_CREATED, &META_MODIFIED] {
                if sub.eq_ignore_ascii_case(m.name) {
                    return Ok(Resolved {
                        key: "meta".into(),
                        def: &META,
                        sub: Some(m),
                    });
                }
            }
            return Err(bad_filter(format!(
                "`{path}`: only meta.created and meta.lastModified can be filtered on"
            )));
        } else {
            None
        }
    } else {
        None
    };
    let def = match common {
        Some(d) => d,
        None => schema::find(attrs, &path.attr)
            .ok_or_else(|| bad_filter(format!("unknown attribute `{path}`")))?,
    };
    if def.mutability == Mutability::ReadOnly {
        return Err(bad_filter(format!(
            "`{path}` is computed by tenure and cannot be filtered on"
        )));
    }
    let key = format!("{prefix}{}", def.name.to_lowercase());
    let sub = match (&path.sub_attr, def.ty) {
        (Some(s), Ty::Complex) => Some(
            schema::find(def.subs, s)
                .ok_or_else(|| bad_filter(format!("unknown sub-attribute `{path}`")))?,
        ),
        (Some(_), _) => {
            return Err(bad_filter(format!("`{}` has no sub-attributes", def.name)));
        }
        (None, Ty::Complex) if def.multi => schema::find(def.subs, "value"),
        (None, Ty::Complex) => {
            return Err(bad_filter(format!(
                "`{path}` is complex: name one of its sub-attributes"
            )));
        }
        (None, _) => None,
    };
    Ok(Resolved { key, def, sub })
}

/// The normalized comparison value for `leaf`, or an `invalidFilter` error.
fn comp_value(leaf: &Attr, op: CompareOp, value: &CompValue, path: &AttrPath) -> Res<String> {
    let text = match (leaf.ty, value) {
        (Ty::Boolean, _) => {
            if !matches!(op, CompareOp::Eq | CompareOp::Ne) {
                return Err(bad_filter(format!(
                    "`{path}` is a boolean: only eq and ne compare booleans"
                )));
            }
            let b = match value {
                CompValue::Bool(b) => *b,
                // Entra ID: `active eq "True"`.
                CompValue::String(s) if s.eq_ignore_ascii_case("true") => true,
                CompValue::String(s) if s.eq_ignore_ascii_case("false") => false,
                other => {
                    return Err(bad_filter(format!("`{path}` is a boolean; {other} is not")));
                }
            };
            return Ok(b.to_string());
        }
        (Ty::DateTime, CompValue::String(s)) => {
            if matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew) {
                return Err(bad_filter(format!(
                    "`{path}` is a dateTime: co, sw and ew do not apply"
                )));
            }
            return norm_time(s)
                .ok_or_else(|| bad_filter(format!("`{s}` is not an xsd:dateTime for `{path}`")));
        }
        (_, CompValue::String(s)) => s.clone(),
        (_, other) => {
            return Err(bad_filter(format!(
                "`{path}` is a {}; compare it with a string, not {other}",
                leaf.ty_name()
            )));
        }
    };
    if leaf.ty == Ty::Binary && !matches!(op, CompareOp::Eq | CompareOp::Ne) {
        return Err(bad_filter(format!(
            "`{path}` is binary: only eq and ne apply"
        )));
    }
    Ok(if leaf.case_exact {
        text
    } else {
        text.to_lowercase()
    })
}

impl Attr {
    fn ty_name(&self) -> &'static str {
        match self.ty {
            Ty::String => "string",
            Ty::Boolean => "boolean",
            Ty::DateTime => "dateTime",
            Ty::Reference => "reference",
            Ty::Binary => "binary",
            Ty::Complex => "complex attribute",
        }
    }
}

/// Translates a parsed filter into a condition over the value index.
pub fn to_cond(schemas: &Schemas, f: &Filter) -> Res<Cond> {
    Ok(match f {
        Filter::Compare { path, op, value } => {
            let r = resolve(schemas, path)?;
            let leaf = r.sub.unwrap_or(r.def);
            let sub = r.sub.map(|s| s.name.to_lowercase()).unwrap_or_default();
            if *value == CompValue::Null {
                // `x eq null` is "x has no value"; `x ne null` is "x has one".
                let present = Cond::Present { attr: r.key, sub };
                return match op {
                    CompareOp::Eq => Ok(Cond::Not(Box::new(present))),
                    CompareOp::Ne => Ok(present),
                    _ => Err(bad_filter(format!(
                        "`{path}`: only eq and ne compare with null"
                    ))),
                };
            }
            Cond::Cmp {
                val: comp_value(leaf, *op, value, path)?,
                attr: r.key,
                sub,
                op: *op,
            }
        }
        Filter::Present(path) => {
            let r = resolve(schemas, path)?;
            Cond::Present {
                attr: r.key,
                sub: r.sub.map(|s| s.name.to_lowercase()).unwrap_or_default(),
            }
        }
        Filter::And(fs) => Cond::And(fs.iter().map(|f| to_cond(schemas, f)).collect::<Res<_>>()?),
        Filter::Or(fs) => Cond::Or(fs.iter().map(|f| to_cond(schemas, f)).collect::<Res<_>>()?),
        Filter::Not(f) => Cond::Not(Box::new(to_cond(schemas, f)?)),
        Filter::ValuePath { attr, filter } => {
            let r = resolve(schemas, attr)?;
            if !(r.def.multi && r.def.ty == Ty::Complex) {
                return Err(bad_filter(format!(
                    "`{attr}[...]`: value filters apply to multi-valued complex attributes"
                )));
            }
            Cond::Element {
                cond: Box::new(element_cond(r.def, filter, attr)?),
                attr: r.key,
            }
        }
    })
}

fn element_cond(def: &'static Attr, f: &Filter, parent: &AttrPath) -> Res<Cond> {
    let sub_of = |p: &AttrPath| -> Res<&'static Attr> {
        schema::find(def.subs, &p.attr)
            .ok_or_else(|| bad_filter(format!("`{parent}` has no sub-attribute `{}`", p.attr)))
    };
    Ok(match f {
        Filter::Compare { path, op, value } => {
            let sub = sub_of(path)?;
            if *value == CompValue::Null {
                let present = Cond::Present {
                    attr: String::new(),
                    sub: sub.name.to_lowercase(),
                };
                return match op {
                    CompareOp::Eq => Ok(Cond::Not(Box::new(present))),
                    CompareOp::Ne => Ok(present),
                    _ => Err(bad_filter("only eq and ne compare with null")),
                };
            }
            Cond::Cmp {
                attr: String::new(),
                sub: sub.name.to_lowercase(),
                op: *op,
                val: comp_value(sub, *op, value, path)?,
            }
        }
        Filter::Present(path) => Cond::Present {
            attr: String::new(),
            sub: sub_of(path)?.name.to_lowercase(),
        },
        Filter::And(fs) => Cond::And(
            fs.iter()
                .map(|f| element_cond(def, f, parent))
                .collect::<Res<_>>()?,
        ),
        Filter::Or(fs) => Cond::Or(
            fs.iter()
                .map(|f| element_cond(def, f, parent))
                .collect::<Res<_>>()?,
        ),
        Filter::Not(f) => Cond::Not(Box::new(element_cond(def, f, parent)?)),
        Filter::ValuePath { .. } => return Err(bad_filter("value filters do not nest")),
    })
}

/// The sort key for `sortBy`.
pub fn sort_key(schemas: &Schemas, by: &str, descending: bool) -> Res<SortKey> {
    let path = AttrPath::parse(by)
        .map_err(|e| bad_filter(format!("sortBy `{by}` is not an attribute path: {e}")))?;
    let r = resolve(schemas, &path)?;
    Ok(SortKey {
        attr: r.key,
        sub: r.sub.map(|s| s.name.to_lowercase()).unwrap_or_default(),
        descending,
    })
}

// ------------------------------------------------------------------ evaluation in memory

/// Whether one element (an object of sub-attributes) of a multi-valued attribute satisfies an
/// element condition.
fn element_matches(def: &Attr, elem: &Value, c: &Cond) -> bool {
    let value_of = |sub: &str| -> Option<String> {
        let sd = def.subs.iter().find(|s| s.name.eq_ignore_ascii_case(sub))?;
        norm(sd, elem.get(sd.name)?)
    };
    match c {
        Cond::Cmp { sub, op, val, .. } => match value_of(sub) {
            Some(have) if *op == CompareOp::Ne => have != *val,
            Some(have) => compare_text(*op, &have, val),
            None => *op == CompareOp::Ne,
        },
        Cond::Present { sub, .. } => value_of(sub).is_some(),
        Cond::And(cs) => cs.iter().all(|c| element_matches(def, elem, c)),
        Cond::Or(cs) => cs.iter().any(|c| element_matches(def, elem, c)),
        Cond::Not(c) => !element_matches(def, elem, c),
        Cond::Element { cond, .. } => element_matches(def, elem, cond),
    }
}

// ------------------------------------------------------------------ projection

/// Parses `attributes` / `excludedAttributes` (comma-separated attribute paths).
pub fn parse_attr_list(list: &str) -> Res<Vec<AttrPath>> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            AttrPath::parse(s).map_err(|e| invalid(format!("`{s}` is not an attribute path: {e}")))
        })
        .collect()
}

fn path_location(
    schemas: &Schemas,
    p: &AttrPath,
) -> (Option<&'static str>, String, Option<String>) {
    let ext = p
        .schema
        .as_deref()
        .and_then(|s| is_extension(schemas, s))
        .map(|(u, _)| u);
    (ext, p.attr.clone(), p.sub_attr.clone())
}

fn key_ci<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a String> {
    m.keys().find(|x| x.eq_ignore_ascii_case(k))
}

/// Applies `attributes` (keep only these, plus `id`, `schemas`, `meta`) or
/// `excludedAttributes` (drop these) to a rendered resource.
pub fn project(
    schemas: &Schemas,
    full: Value,
    include: &[AttrPath],
    exclude: &[AttrPath],
) -> Value {
    let Value::Object(mut full) = full else {
        return full;
    };
    if !include.is_empty() {
        let mut out = Map::new();
        for k in ["schemas", "id", "meta"] {
            if let Some(v) = full.get(k) {
                out.insert(k.into(), v.clone());
            }
        }
        for p in include {
            let (ext, attr, sub) = path_location(schemas, p);
            // A bare extension URN asks for the whole extension.
            if p.schema.is_none()
                && p.sub_attr.is_none()
                && let Some((u, _)) = is_extension(schemas, &p.attr)
            {
                if let Some(v) = full.get(u) {
                    out.insert(u.into(), v.clone());
                }
                continue;
            }
            let (src, dst) = match ext {
                Some(u) => {
                    let Some(Value::Object(src)) = full.get(u) else {
                        continue;
                    };
                    let dst = out
                        .entry(u.to_string())
                        .or_insert_with(|| Value::Object(Map::new()));
                    (src, dst)
                }
                None => (&full, &mut Value::Null),
            };
            let Some(k) = key_ci(src, &attr).cloned() else {
                continue;
            };
            let picked = match (&sub, &src[&k]) {
                (None, v) => v.clone(),
                (Some(s), Value::Object(o)) => match key_ci(o, s) {
                    Some(sk) => json!({ sk.clone(): o[sk].clone() }),
                    None => continue,
                },
                (Some(s), Value::Array(a)) => Value::Array(
                    a.iter()
                        .filter_map(|e| {
                            let o = e.as_object()?;
                            let sk = key_ci(o, s)?;
                            Some(json!({ sk.clone(): o[sk].clone() }))
                        })
                        .collect(),
                ),
                _ => continue,
            };
            let target = match ext {
                Some(u) => out[u].as_object_mut().expect("extension object"),
                None => {
                    let _ = dst;
                    &mut out
                }
            };
            merge_into(target, &k, picked);
        }
        return Value::Object(out);
    }
    for p in exclude {
        let (ext, attr, sub) = path_location(schemas, p);
        if p.schema.is_none()
            && p.sub_attr.is_none()
            && let Some((u, _)) = is_extension(schemas, &p.attr)
        {
            full.remove(u);
            continue;
        }
        if ext.is_none()
            && ["id", "schemas"]
                .iter()
                .any(|k| k.eq_ignore_ascii_case(&attr))
        {
            continue;
        }
        let target = match ext {
            Some(u) => match full.get_mut(u) {
                Some(Value::Object(o)) => o,
                _ => continue,
            },
            None => &mut full,
        };
        let Some(k) = key_ci(target, &attr).cloned() else {
            continue;
        };
        match sub {
            None => {
                target.remove(&k);
            }
            Some(s) => match target.get_mut(&k) {
                Some(Value::Object(o)) => {
                    if let Some(sk) = key_ci(o, &s).cloned() {
                        o.remove(&sk);
                    }
                }
                Some(Value::Array(a)) => {
                    for e in a.iter_mut() {
                        if let Some(o) = e.as_object_mut()
                            && let Some(sk) = key_ci(o, &s).cloned()
                        {
                            o.remove(&sk);
                        }
                    }
                }
                _ => {}
            },
        }
    }
    Value::Object(full)
}

fn merge_into(target: &mut Map<String, Value>, k: &str, v: Value) {
    match (target.get_mut(k), v) {
        (Some(Value::Object(a)), Value::Object(b)) => a.extend(b),
        (Some(Value::Array(a)), Value::Array(b)) if a.len() == b.len() => {
            for (x, y) in a.iter_mut().zip(b) {
                if let (Value::Object(x), Value::Object(y)) = (x, y) {
                    x.extend(y);
                }
            }
        }
        (_, v) => {
            target.insert(k.to_string(), v);
        }
    }
}

// ------------------------------------------------------------------ PATCH

/// Applies a PATCH request to a stored document and returns the new document, cleaned as a
/// PUT body would be. Nothing changes unless every operation applies.
pub fn apply_patch(
    schemas: &Schemas,
    doc: &Map<String, Value>,
    req: &PatchRequest,
) -> Res<Map<String, Value>> {
    let paths = req.validate()?;
    let mut work = doc.clone();
    for (i, (op, path)) in req.operations.iter().zip(paths).enumerate() {
        let at = format!("Operations[{i}]");
        match path {
            None => {
                // No path: the value is a partial resource (RFC 7644 §3.5.2.1/.3). Okta and
                // Entra ID send it for replace, Entra ID with flattened extension keys.
                let value = op
                    .value
                    .as_ref()
                    .and_then(Value::as_object)
                    .ok_or_else(|| {
                        invalid(format!("{at}: without a path, the value must be an object"))
                    })?;
                for (k, v) in value {
                    if ["schemas", "id", "meta"]
                        .iter()
                        .any(|x| x.eq_ignore_ascii_case(k))
                    {
                        continue;
                    }
                    if let Some((urn, _)) = is_extension(schemas, k) {
                        let ext = v
                            .as_object()
                            .ok_or_else(|| invalid(format!("{at}: `{urn}` must be an object")))?;
                        for (ek, ev) in ext {
                            if ek.eq_ignore_ascii_case("schemas") {
                                continue;
                            }
                            let p = AttrPath::new(ek.clone()).in_schema(urn);
                            apply_attr(schemas, &mut work, op.op, &p, Some(ev), &at)?;
                        }
                        continue;
                    }
                    let p = match split_urn_key(schemas, k) {
                        Some((urn, rest)) => {
                            let mut p = AttrPath::parse(rest).map_err(|e| {
                                ScimError::new(ScimType::InvalidPath, format!("{at}: `{k}`: {e}"))
                            })?;
                            p.schema = Some(urn.to_string());
                            p
                        }
                        None => AttrPath::parse(k).map_err(|e| {
                            ScimError::new(ScimType::InvalidPath, format!("{at}: `{k}`: {e}"))
                        })?,
                    };
                    apply_attr(schemas, &mut work, op.op, &p, Some(v), &at)?;
                }
            }
            Some(PatchPath::Attribute(p)) => {
                // A bare extension URN (`urn:…:enterprise:2.0:User`) parses as schema
                // `urn:…:2.0` and attribute `User`: it names the whole extension.
                let whole = p
                    .schema
                    .as_ref()
                    .filter(|_| p.sub_attr.is_none())
                    .and_then(|s| is_extension(schemas, &format!("{s}:{}", p.attr)));
                match whole {
                    Some((urn, _)) if op.op == PatchOp::Remove => {
                        work.remove(urn);
                    }
                    Some((urn, _)) => {
                        let ext =
                            op.value
                                .as_ref()
                                .and_then(Value::as_object)
                                .ok_or_else(|| {
                                    invalid(format!("{at}: the value of `{urn}` must be an object"))
                                })?;
                        if op.op == PatchOp::Replace {
                            work.remove(urn);
                        }
                        for (ek, ev) in ext {
                            if ek.eq_ignore_ascii_case("schemas") {
                                continue;
                            }
                            let p = AttrPath::new(ek.clone()).in_schema(urn);
                            apply_attr(schemas, &mut work, op.op, &p, Some(ev), &at)?;
                        }
                    }
                    None => apply_attr(schemas, &mut work, op.op, &p, op.value.as_ref(), &at)?,
                }
            }
            Some(PatchPath::ValuePath {
                attr,
                filter,
                sub_attr,
            }) => apply_value_path(
                schemas,
                &mut work,
                op.op,
                &attr,
                &filter,
                sub_attr.as_deref(),
                op.value.as_ref(),
                &at,
            )?,
        }
    }
    clean(schemas, &Value::Object(work))
}

/// Where an attribute lives in the document: the container object and its canonical key.
fn locate<'a>(
    schemas: &Schemas,
    doc: &'a mut Map<String, Value>,
    p: &AttrPath,
    at: &str,
) -> Res<(&'a mut Map<String, Value>, &'static Attr)> {
    let no_target = |m: String| ScimError::new(ScimType::NoTarget, format!("{at}: {m}"));
    let (container, attrs): (&mut Map<String, Value>, &'static [Attr]) = match &p.schema {
        Some(urn) if !urn.eq_ignore_ascii_case(schemas[0].0) => {
            let (u, attrs) = is_extension(schemas, urn)
                .ok_or_else(|| no_target(format!("unknown schema `{urn}`")))?;
            let ext = doc
                .entry(u.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !ext.is_object() {
                *ext = Value::Object(Map::new());
            }
            (ext.as_object_mut().expect("object"), attrs)
        }
        _ => (doc, schemas[0].1),
    };
    if p.schema.is_none()
        && ["id", "meta", "schemas"]
            .iter()
            .any(|k| k.eq_ignore_ascii_case(&p.attr))
    {
        return Err(ScimError::new(
            ScimType::Mutability,
            format!("{at}: `{}` is read-only", p.attr),
        ));
    }
    let def = if p.schema.is_none() && p.attr.eq_ignore_ascii_case("externalId") {
        &EXTERNAL_ID
    } else {
        schema::find(attrs, &p.attr).ok_or_else(|| no_target(format!("unknown attribute `{p}`")))?
    };
    if def.mutability == Mutability::ReadOnly {
        return Err(ScimError::new(
            ScimType::Mutability,
            format!("{at}: `{p}` is read-only"),
        ));
    }
    Ok((container, def))
}

fn is_primary(v: &Value) -> bool {
    v.get("primary").and_then(as_bool) == Some(true)
}

/// Keeps `primary` true only on the values at `keep` when one of them sets it.
fn settle_primary(arr: &mut [Value], keep: &[usize]) {
    if keep.iter().any(|&i| arr.get(i).is_some_and(is_primary)) {
        for (i, v) in arr.iter_mut().enumerate() {
            if !keep.contains(&i)
                && let Some(o) = v.as_object_mut()
                && o.contains_key("primary")
            {
                o.insert("primary".into(), Value::Bool(false));
            }
        }
    }
}

fn canonical_sub(def: &Attr, name: &str, at: &str) -> Res<&'static str> {
    schema::find(def.subs, name).map(|s| s.name).ok_or_else(|| {
        ScimError::new(
            ScimType::InvalidPath,
            format!("{at}: `{}` has no sub-attribute `{name}`", def.name),
        )
    })
}

fn apply_attr(
    schemas: &Schemas,
    doc: &mut Map<String, Value>,
    op: PatchOp,
    p: &AttrPath,
    value: Option<&Value>,
    at: &str,
) -> Res<()> {
    let (container, def) = locate(schemas, doc, p, at)?;
    let key = def.name;
    if let Some(sub) = &p.sub_attr {
        if def.ty != Ty::Complex {
            return Err(ScimError::new(
                ScimType::InvalidPath,
                format!("{at}: `{}` has no sub-attributes", def.name),
            ));
        }
        let sub = canonical_sub(def, sub, at)?;
        let set = |o: &mut Map<String, Value>| match op {
            PatchOp::Remove => {
                o.remove(sub);
            }
            _ => {
                o.insert(sub.to_string(), value.cloned().unwrap_or(Value::Null));
            }
        };
        match container.get_mut(key) {
            Some(Value::Array(a)) => a.iter_mut().filter_map(Value::as_object_mut).for_each(set),
            Some(Value::Object(o)) => set(o),
            _ if op == PatchOp::Remove => {}
            _ if def.multi => {
                return Err(ScimError::new(
                    ScimType::NoTarget,
                    format!("{at}: `{}` has no values to set `{sub}` on", def.name),
                ));
            }
            _ => {
                let mut o = Map::new();
                set(&mut o);
                container.insert(key.to_string(), Value::Object(o));
            }
        }
        return Ok(());
    }
    match op {
        PatchOp::Remove => {
            match (value, container.get_mut(key)) {
                // Entra ID removes members as `{"op":"remove","path":"members","value":[{"value":"id"}]}`.
                (Some(Value::Array(gone)), Some(Value::Array(have))) if def.multi => {
                    have.retain(|h| {
                        !gone.iter().any(|g| match (g.get("value"), h.get("value")) {
                            (Some(a), Some(b)) => a == b,
                            _ => g == h,
                        })
                    });
                }
                _ => {
                    container.remove(key);
                }
            }
        }
        PatchOp::Add | PatchOp::Replace => {
            let v = value.cloned().unwrap_or(Value::Null);
            if def.multi {
                let new: Vec<Value> = match v {
                    Value::Array(a) => a,
                    Value::Null => Vec::new(),
                    other => vec![other],
                };
                let arr = match (op, container.get_mut(key)) {
                    (PatchOp::Add, Some(Value::Array(have))) => have,
                    _ => {
                        container.insert(key.to_string(), Value::Array(Vec::new()));
                        container
                            .get_mut(key)
                            .and_then(Value::as_array_mut)
                            .expect("just inserted")
                    }
                };
                let mut keep = Vec::new();
                for item in new {
                    match arr.iter().position(|h| *h == item) {
                        Some(i) => keep.push(i),
                        None => {
                            arr.push(item);
                            keep.push(arr.len() - 1);
                        }
                    }
                }
                settle_primary(arr, &keep);
            } else if def.ty == Ty::Complex {
                match (container.get_mut(key), v) {
                    (Some(Value::Object(have)), Value::Object(new)) => {
                        for (k, x) in new {
                            let k = canonical_sub(def, &k, at)?;
                            have.insert(k.to_string(), x);
                        }
                    }
                    (_, v) => {
                        container.insert(key.to_string(), v);
                    }
                }
            } else {
                container.insert(key.to_string(), v);
            }
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn apply_value_path(
    schemas: &Schemas,
    doc: &mut Map<String, Value>,
    op: PatchOp,
    attr: &AttrPath,
    filter: &Filter,
    sub: Option<&str>,
    value: Option<&Value>,
    at: &str,
) -> Res<()> {
    let (container, def) = locate(schemas, doc, attr, at)?;
    if !(def.multi && def.ty == Ty::Complex) {
        return Err(ScimError::new(
            ScimType::InvalidPath,
            format!("{at}: value filters apply to multi-valued complex attributes, not `{attr}`"),
        ));
    }
    let cond = element_cond(def, filter, attr).map_err(|e| {
        ScimError::new(
            ScimType::InvalidPath,
            e.detail.unwrap_or_else(|| "invalid value filter".into()),
        )
    })?;
    let sub = sub.map(|s| canonical_sub(def, s, at)).transpose()?;
    let arr = match container.get_mut(def.name) {
        Some(Value::Array(a)) => a,
        _ => {
            container.insert(def.name.to_string(), Value::Array(Vec::new()));
            container
                .get_mut(def.name)
                .and_then(Value::as_array_mut)
                .expect("just inserted")
        }
    };
    let hits: Vec<usize> = arr
        .iter()
        .enumerate()
        .filter(|(_, e)| element_matches(def, e, &cond))
        .map(|(i, _)| i)
        .collect();
    match op {
        PatchOp::Remove => {
            match sub {
                Some(s) => {
                    for &i in &hits {
                        if let Some(o) = arr[i].as_object_mut() {
                            o.remove(s);
                        }
                    }
                }
                None => {
                    let mut i = 0;
                    arr.retain(|_| {
                        i += 1;
                        !hits.contains(&(i - 1))
                    });
                }
            }
            if arr.is_empty() {
                container.remove(def.name);
            }
        }
        PatchOp::Add | PatchOp::Replace => {
            let v = value.cloned().unwrap_or(Value::Null);
            if hits.is_empty() {
                // Entra ID sets `emails[type eq "work"].value` on a user with no work email
                // and expects the value created: build it from the filter's `eq` terms.
                let Some(mut fresh) = seed_from_filter(filter) else {
                    return Err(ScimError::new(
                        ScimType::NoTarget,
                        format!("{at}: no value of `{attr}` matches the filter"),
                    ));
                };
                match (sub, v) {
                    (Some(s), v) => {
                        fresh.insert(s.to_string(), v);
                    }
                    (None, Value::Object(o)) => fresh.extend(o),
                    (None, other) => {
                        return Err(invalid(format!(
                            "{at}: the value must be an object, not {other}"
                        )));
                    }
                }
                arr.push(Value::Object(fresh));
                let last = arr.len() - 1;
                settle_primary(arr, &[last]);
                return Ok(());
            }
            for &i in &hits {
                match (sub, &v) {
                    (Some(s), v) => {
                        if let Some(o) = arr[i].as_object_mut() {
                            o.insert(s.to_string(), v.clone());
                        }
                    }
                    (None, Value::Object(new)) => {
                        if op == PatchOp::Replace {
                            arr[i] = Value::Object(new.clone());
                        } else if let Some(o) = arr[i].as_object_mut() {
                            o.extend(new.clone());
                        }
                    }
                    (None, other) => {
                        return Err(invalid(format!(
                            "{at}: the value must be an object, not {other}"
                        )));
                    }
                }
            }
            settle_primary(arr, &hits);
        }
    }
    Ok(())
}

/// The sub-attribute values a filter made only of `eq` terms joined by `and` pins down.
fn seed_from_filter(f: &Filter) -> Option<Map<String, Value>> {
    let mut out = Map::new();
    let terms: Vec<&Filter> = match f {
        Filter::And(fs) => fs.iter().collect(),
        f => vec![f],
    };
    for t in terms {
        let Filter::Compare {
            path,
            op: CompareOp::Eq,
            value,
        } = t
        else {
            return None;
        };
        let v = match value {
            CompValue::String(s) => Value::String(s.clone()),
            CompValue::Bool(b) => Value::Bool(*b),
            CompValue::Number(n) => Value::Number(n.clone()),
            CompValue::Null => return None,
        };
        out.insert(path.attr.clone(), v);
    }
    Some(out)
}

#[cfg(test)]
mod tests;
