//! Groups an identity provider pushes, as plain data: what a `POST`/`PUT` body or a PATCH
//! request makes of a group, in every form Entra ID and Okta send. No I/O: the API's `/Groups`
//! handlers read, check members and write.

use crate::schema::{self, GROUP};
use crate::{CompValue, CompareOp, Filter, PatchOp, PatchPath, PatchRequest};
use crate::{ScimError, ScimType};
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use tenure_core::text;

type Res<T> = Result<T, ScimError>;

/// A group as the identity provider manages it: its name, its own id for it, its members
/// (user ids, which are person ids).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupDoc {
    /// displayName, unique (case-insensitively) among the pushed groups.
    pub display_name: String,
    /// The identity provider's id for the group.
    pub external_id: Option<String>,
    /// Member user ids.
    pub members: BTreeSet<String>,
}

impl GroupDoc {
    /// The document the value index and projection read (`members` as `{value}` objects).
    pub fn to_doc(&self) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert("displayName".into(), json!(self.display_name));
        if let Some(x) = &self.external_id {
            out.insert("externalId".into(), json!(x));
        }
        if !self.members.is_empty() {
            out.insert(
                "members".into(),
                self.members.iter().map(|m| json!({ "value": m })).collect(),
            );
        }
        out
    }
}

fn invalid(m: impl Into<String>) -> ScimError {
    ScimError::new(ScimType::InvalidValue, m)
}

fn syntax(m: impl Into<String>) -> ScimError {
    ScimError::new(ScimType::InvalidSyntax, m)
}

fn display_name(v: &Value, at: &str) -> Res<String> {
    let s = v
        .as_str()
        .ok_or_else(|| invalid(format!("{at}: displayName must be a string, not {v}")))?;
    text::check(s, text::MAX_NAME).map_err(|e| invalid(format!("{at}: displayName: {e}")))?;
    if s.trim().is_empty() {
        return Err(invalid(format!("{at}: displayName is required")));
    }
    Ok(s.to_string())
}

fn external_id(v: &Value, at: &str) -> Res<Option<String>> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => {
            text::check(s, text::MAX_NAME)
                .map_err(|e| invalid(format!("{at}: externalId: {e}")))?;
            Ok(Some(s.clone()))
        }
        other => Err(invalid(format!(
            "{at}: externalId must be a string, not {other}"
        ))),
    }
}

/// The user ids a `members` value names: an array of `{"value": id}` (or one such object).
/// `display`, `$ref` and `type: "User"` are accepted and not kept; a nested group is refused.
fn member_ids(v: &Value, at: &str) -> Res<Vec<String>> {
    let items: Vec<&Value> = match v {
        Value::Null => return Ok(Vec::new()),
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let obj = item.as_object().ok_or_else(|| {
            invalid(format!(
                "{at}.members[{i}]: a member is an object with a `value`, not {item}"
            ))
        })?;
        let mut value = None;
        for (k, x) in obj {
            if k.eq_ignore_ascii_case("value") {
                value = Some(x);
            } else if k.eq_ignore_ascii_case("type") {
                if !x.as_str().is_some_and(|t| t.eq_ignore_ascii_case("User")) {
                    return Err(invalid(format!(
                        "{at}.members[{i}].type: members are users; groups do not nest (got {x})"
                    )));
                }
            } else if !["display", "$ref"]
                .iter()
                .any(|d| d.eq_ignore_ascii_case(k))
            {
                return Err(syntax(format!(
                    "{at}.members[{i}]: unknown sub-attribute `{k}`"
                )));
            }
        }
        let id = value.and_then(Value::as_str).ok_or_else(|| {
            invalid(format!(
                "{at}.members[{i}].value: the member's user id is required, as a string"
            ))
        })?;
        text::check(id, text::MAX_NAME)
            .map_err(|e| invalid(format!("{at}.members[{i}].value: {e}")))?;
        out.push(id.to_string());
    }
    Ok(out)
}

/// Parses a `POST` or `PUT` body: `displayName` required, `externalId` and `members`
/// optional; `schemas`, `id` and `meta` are ignored, anything else refused.
pub fn parse_group(input: &Value) -> Res<GroupDoc> {
    let obj = input
        .as_object()
        .ok_or_else(|| syntax("the body must be a JSON object"))?;
    let mut doc = GroupDoc::default();
    let mut named = false;
    for (k, v) in obj {
        if k.eq_ignore_ascii_case("schemas") {
            let ok = v.as_array().is_some_and(|a| {
                a.iter()
                    .all(|u| u.as_str().is_some_and(|u| u.eq_ignore_ascii_case(GROUP)))
            });
            if !ok {
                return Err(syntax(format!("`schemas` of a group is [\"{GROUP}\"]")));
            }
        } else if ["id", "meta"].iter().any(|x| x.eq_ignore_ascii_case(k)) {
        } else if k.eq_ignore_ascii_case("displayName") {
            doc.display_name = display_name(v, "body")?;
            named = true;
        } else if k.eq_ignore_ascii_case("externalId") {
            doc.external_id = external_id(v, "body")?;
        } else if k.eq_ignore_ascii_case("members") {
            doc.members = member_ids(v, "body")?.into_iter().collect();
        } else {
            return Err(syntax(format!("unknown attribute `{k}` of a group")));
        }
    }
    if !named {
        return Err(invalid("displayName is required"));
    }
    Ok(doc)
}

/// How many member values a request names, to bound it before any work is done.
pub fn member_values(input: &Value) -> usize {
    fn count(v: &Value) -> usize {
        match v {
            Value::Array(a) => a.len(),
            Value::Null => 0,
            _ => 1,
        }
    }
    let members = |o: &Map<String, Value>| {
        o.iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("members"))
            .map(|(_, v)| count(v))
            .sum::<usize>()
    };
    let Some(obj) = input.as_object() else {
        return 0;
    };
    let ops = obj
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Operations"))
        .and_then(|(_, v)| v.as_array());
    match ops {
        None => members(obj),
        Some(ops) => ops
            .iter()
            .map(|op| match op.get("value") {
                Some(Value::Object(o)) => members(o),
                Some(v) => count(v),
                None => 0,
            })
            .sum(),
    }
}

/// The member ids a value filter on `members` selects: `value eq "id"`, alone or joined by
/// `or` (what Entra ID and Okta send to remove members).
fn filtered_members(f: &Filter, at: &str) -> Res<Vec<String>> {
    match f {
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value: CompValue::String(s),
        } if path.attr.eq_ignore_ascii_case("value") && path.sub_attr.is_none() => {
            Ok(vec![s.clone()])
        }
        Filter::Or(fs) => {
            let mut out = Vec::new();
            for f in fs {
                out.extend(filtered_members(f, at)?);
            }
            Ok(out)
        }
        _ => Err(ScimError::new(
            ScimType::InvalidFilter,
            format!(
                "{at}: a member filter compares `value` with `eq` (members[value eq \"id\"]), not `{f}`"
            ),
        )),
    }
}

fn is_members(attr: &str) -> bool {
    attr.eq_ignore_ascii_case("members")
}

/// Applies one attribute-level operation (`path` naming an attribute, or a key of a no-path
/// value object).
fn apply_attr(
    doc: &mut GroupDoc,
    op: PatchOp,
    attr: &str,
    value: Option<&Value>,
    at: &str,
) -> Res<()> {
    if attr.eq_ignore_ascii_case("displayName") {
        match (op, value) {
            (PatchOp::Remove, _) => Err(invalid(format!("{at}: displayName is required"))),
            (_, Some(v)) => {
                doc.display_name = display_name(v, at)?;
                Ok(())
            }
            (_, None) => Err(invalid(format!("{at}: a value is required"))),
        }
    } else if attr.eq_ignore_ascii_case("externalId") {
        doc.external_id = match (op, value) {
            (PatchOp::Remove, _) | (_, None) => None,
            (_, Some(v)) => external_id(v, at)?,
        };
        Ok(())
    } else if is_members(attr) {
        let ids = value.map(|v| member_ids(v, at)).transpose()?;
        match (op, ids) {
            (PatchOp::Add, Some(ids)) => doc.members.extend(ids),
            (PatchOp::Replace, ids) => doc.members = ids.unwrap_or_default().into_iter().collect(),
            // Entra ID removes members as `{"op":"remove","path":"members","value":[{"value":"id"}]}`.
            (PatchOp::Remove, Some(ids)) if !ids.is_empty() => {
                for id in ids {
                    doc.members.remove(&id);
                }
            }
            (PatchOp::Remove, _) => doc.members.clear(),
            (PatchOp::Add, None) => return Err(invalid(format!("{at}: a value is required"))),
        }
        Ok(())
    } else if ["id", "meta", "schemas"]
        .iter()
        .any(|x| x.eq_ignore_ascii_case(attr))
    {
        Err(ScimError::new(
            ScimType::Mutability,
            format!("{at}: `{attr}` is read-only"),
        ))
    } else {
        Err(ScimError::new(
            ScimType::NoTarget,
            format!("{at}: a group has no attribute `{attr}`"),
        ))
    }
}

/// Applies a PATCH request to a group: displayName and externalId set or replaced; members
/// added (many at once), replaced as a whole (Okta), removed by value filter in the path or by
/// value list (Entra ID), or all removed.
pub fn patch_group(before: &GroupDoc, req: &PatchRequest) -> Res<GroupDoc> {
    let paths = req.validate()?;
    let mut doc = before.clone();
    for (i, (op, path)) in req.operations.iter().zip(paths).enumerate() {
        let at = format!("Operations[{i}]");
        match path {
            None => {
                let obj = op
                    .value
                    .as_ref()
                    .and_then(Value::as_object)
                    .ok_or_else(|| invalid(format!("{at}: the value must be an object")))?;
                for (k, v) in obj {
                    // Okta repeats the group's id (and some clients `schemas`) in the value.
                    if ["id", "schemas", "meta"]
                        .iter()
                        .any(|x| x.eq_ignore_ascii_case(k))
                    {
                        continue;
                    }
                    apply_attr(&mut doc, op.op, k, Some(v), &at)?;
                }
            }
            Some(PatchPath::Attribute(p)) => {
                if let Some(s) = &p.schema
                    && !s.eq_ignore_ascii_case(GROUP)
                {
                    return Err(ScimError::new(
                        ScimType::NoTarget,
                        format!("{at}: a group has no schema `{s}`"),
                    ));
                }
                if let Some(sub) = &p.sub_attr {
                    return Err(ScimError::new(
                        ScimType::InvalidPath,
                        format!("{at}: `{}.{sub}` cannot be set on its own", p.attr),
                    ));
                }
                apply_attr(&mut doc, op.op, &p.attr, op.value.as_ref(), &at)?;
            }
            Some(PatchPath::ValuePath {
                attr,
                filter,
                sub_attr,
            }) => {
                if !is_members(&attr.attr) {
                    return Err(ScimError::new(
                        ScimType::InvalidPath,
                        format!(
                            "{at}: only `members` takes a value filter, not `{}`",
                            attr.attr
                        ),
                    ));
                }
                if op.op != PatchOp::Remove || sub_attr.is_some() {
                    return Err(ScimError::new(
                        ScimType::InvalidPath,
                        format!(
                            "{at}: a member is added with path `members` and a value; a filtered path only removes members"
                        ),
                    ));
                }
                for id in filtered_members(&filter, &at)? {
                    doc.members.remove(&id);
                }
            }
        }
    }
    if doc.members.len() > schema::MAX_GROUP_MEMBERS {
        return Err(invalid(format!(
            "a group holds at most {} members; this change leaves {}",
            schema::MAX_GROUP_MEMBERS,
            doc.members.len()
        )));
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(before: &GroupDoc, body: Value) -> Res<GroupDoc> {
        let req: PatchRequest = serde_json::from_value(body).unwrap();
        patch_group(before, &req)
    }

    fn group(members: &[&str]) -> GroupDoc {
        GroupDoc {
            display_name: "Sales EMEA".into(),
            external_id: None,
            members: members.iter().map(|m| m.to_string()).collect(),
        }
    }

    const OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

    #[test]
    fn entra_adds_several_members_and_removes_by_filter_and_by_value() {
        // Entra ID: "Add" capitalised, several values in one operation.
        let g = patch(
            &group(&["a"]),
            json!({"schemas":[OP],"Operations":[{"op":"Add","path":"members","value":[{"value":"b"},{"value":"c"}]}]}),
        )
        .unwrap();
        assert_eq!(g.members, group(&["a", "b", "c"]).members);
        let g = patch(
            &g,
            json!({"schemas":[OP],"Operations":[{"op":"Remove","path":"members[value eq \"b\"]"}]}),
        )
        .unwrap();
        assert_eq!(g.members, group(&["a", "c"]).members);
        let g = patch(
            &g,
            json!({"schemas":[OP],"Operations":[{"op":"Remove","path":"members","value":[{"value":"a"}]}]}),
        )
        .unwrap();
        assert_eq!(g.members, group(&["c"]).members);
    }

    #[test]
    fn okta_replaces_the_member_list_and_the_name() {
        let g = patch(
            &group(&["a", "b"]),
            json!({"schemas":[OP],"Operations":[
                {"op":"replace","path":"members","value":[{"value":"b","display":"b@example.com"},{"value":"c","display":"c@example.com"}]},
                {"op":"replace","value":{"id":"g1","displayName":"Sales DACH"}}
            ]}),
        )
        .unwrap();
        assert_eq!(g.members, group(&["b", "c"]).members);
        assert_eq!(g.display_name, "Sales DACH");
        let g = patch(
            &g,
            json!({"schemas":[OP],"Operations":[{"op":"replace","path":"displayName","value":"Sales"}]}),
        )
        .unwrap();
        assert_eq!(g.display_name, "Sales");
    }

    #[test]
    fn removing_every_member_and_refusals() {
        let g = patch(
            &group(&["a", "b"]),
            json!({"schemas":[OP],"Operations":[{"op":"remove","path":"members"}]}),
        )
        .unwrap();
        assert!(g.members.is_empty());
        let e = patch(
            &group(&[]),
            json!({"schemas":[OP],"Operations":[{"op":"remove","path":"displayName"}]}),
        )
        .unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
        let e = patch(
            &group(&[]),
            json!({"schemas":[OP],"Operations":[{"op":"add","path":"members","value":[{"value":"g2","type":"Group"}]}]}),
        )
        .unwrap_err();
        assert!(e.detail.unwrap().contains("groups do not nest"));
        let e = patch(
            &group(&["a"]),
            json!({"schemas":[OP],"Operations":[{"op":"remove","path":"members[display eq \"a\"]"}]}),
        )
        .unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidFilter));
        let e = patch(
            &group(&[]),
            json!({"schemas":[OP],"Operations":[{"op":"replace","path":"owner","value":"x"}]}),
        )
        .unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::NoTarget));
    }

    #[test]
    fn a_body_needs_a_name_and_knows_its_attributes() {
        let g = parse_group(&json!({
            "schemas": [GROUP], "displayName": "Sales EMEA", "externalId": "8c1",
            "members": [{"value": "a", "display": "A"}]
        }))
        .unwrap();
        assert_eq!(g.external_id.as_deref(), Some("8c1"));
        assert_eq!(g.members.len(), 1);
        assert!(parse_group(&json!({"members": []})).is_err());
        assert!(parse_group(&json!({"displayName": "x", "owner": "y"})).is_err());
        assert!(parse_group(&json!({"displayName": " "})).is_err());
    }

    #[test]
    fn member_values_are_counted_in_bodies_and_operations() {
        assert_eq!(
            member_values(&json!({"displayName":"x","members":[{"value":"a"},{"value":"b"}]})),
            2
        );
        assert_eq!(
            member_values(&json!({"Operations":[
                {"op":"add","path":"members","value":[{"value":"a"},{"value":"b"}]},
                {"op":"replace","value":{"members":[{"value":"c"}]}}
            ]})),
            3
        );
    }
}
