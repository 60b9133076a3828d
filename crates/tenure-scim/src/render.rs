//! Resources as served (RFC 7643 §3.1, §4): a stored user or group document with `id`,
//! `schemas` and `meta` added, tenure's read-only view of the person, and the read-only groups
//! tenure's entitlements appear as. Versions are weak ETags (`W/"3"`), the same in `meta` and
//! in the `ETag` header.

use crate::schema::{ENTERPRISE, GROUP, TENURE, USER};
use chrono::{DateTime, SecondsFormat};
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use tenure_core::{Engagement, Person};

/// The ETag of a resource version.
pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// Whether an `If-Match` / `If-None-Match` header value names `version` (or is `*`).
pub fn etag_matches(header_value: &str, version: i64) -> bool {
    header_value.split(',').map(str::trim).any(|t| {
        t == "*" || t.strip_prefix("W/").unwrap_or(t).trim_matches('"') == version.to_string()
    })
}

/// Epoch milliseconds as RFC 3339 in UTC with milliseconds; empty when out of range.
pub fn rfc3339_ms(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// What the store knows of a stored resource: when it was created and last changed (epoch
/// milliseconds), and its version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// Created.
    pub created_ms: i64,
    /// Last modified.
    pub updated_ms: i64,
    /// The version, bumped on every change.
    pub version: i64,
}

impl Stored {
    fn meta(&self, resource_type: &str, location: String) -> Value {
        json!({
            "resourceType": resource_type,
            "created": rfc3339_ms(self.created_ms),
            "lastModified": rfc3339_ms(self.updated_ms),
            "version": etag(self.version),
            "location": location,
        })
    }
}

/// tenure's read-only view of a user's person: its status and client engagements.
#[derive(Debug, Clone, Copy)]
pub struct PersonView<'a> {
    /// The person.
    pub person: &'a Person,
    /// Its engagements.
    pub engagements: &'a [Engagement],
}

/// A user's `groups` (RFC 7643 §4.1.2, read-only), from (id, display name) pairs: the groups
/// the identity provider put it in, then the entitlements its person holds, each a direct
/// membership of the group at `{base}/Groups/{id}`.
pub fn user_group_refs<'a>(
    groups: impl IntoIterator<Item = (&'a str, &'a str)>,
    base: &str,
) -> Vec<Value> {
    groups
        .into_iter()
        .map(|(id, display)| {
            json!({
                "value": id,
                "$ref": format!("{base}/Groups/{id}"),
                "display": display,
                "type": "direct",
            })
        })
        .collect()
}

/// A user as served: the stored document `doc` under `id`, tenure's `view` of the person
/// when asked for, its `groups`, the schemas it uses, and `meta`.
pub fn user(
    base: &str,
    id: &str,
    doc: Map<String, Value>,
    groups: Vec<Value>,
    view: Option<PersonView<'_>>,
    stored: &Stored,
) -> Value {
    let mut out = Map::new();
    let mut schemas = vec![json!(USER)];
    out.insert("id".into(), json!(id));
    for (k, v) in doc {
        out.insert(k, v);
    }
    if let Some(PersonView {
        person: p,
        engagements,
    }) = view
    {
        let ext = out.entry(TENURE.to_string()).or_insert_with(|| json!({}));
        ext["status"] = json!(p.status);
        if !engagements.is_empty() {
            ext["engagements"] = json!(
                engagements
                    .iter()
                    .map(|e| {
                        let mut v = json!({ "value": e.id, "client": e.client_id, "role": e.role, "active": e.active });
                        if let Some(d) = e.start_date {
                            v["startDate"] = json!(d.to_string());
                        }
                        if let Some(d) = e.end_date {
                            v["endDate"] = json!(d.to_string());
                        }
                        v
                    })
                    .collect::<Vec<_>>()
            );
        }
    }
    if !groups.is_empty() {
        out.insert("groups".into(), Value::Array(groups));
    }
    for urn in [ENTERPRISE, TENURE] {
        if out.contains_key(urn) {
            schemas.push(json!(urn));
        }
    }
    out.insert("schemas".into(), Value::Array(schemas));
    out.insert(
        "meta".into(),
        stored.meta("User", format!("{base}/Users/{id}")),
    );
    Value::Object(out)
}

/// A group an identity provider pushed, as served. Members come back as they were sent
/// (`value` and `type`), so a client comparing what it wrote with what it reads sees no
/// difference.
pub fn pushed_group(
    base: &str,
    id: &str,
    display_name: &str,
    external_id: Option<&str>,
    members: &BTreeSet<String>,
    stored: &Stored,
) -> Value {
    let mut v = json!({
        "schemas": [GROUP],
        "id": id,
        "displayName": display_name,
        "meta": stored.meta("Group", format!("{base}/Groups/{id}")),
    });
    if let Some(x) = external_id {
        v["externalId"] = json!(x);
    }
    if !members.is_empty() {
        v["members"] = members
            .iter()
            .map(|m| json!({ "value": m, "type": "User" }))
            .collect();
    }
    v
}

/// One of tenure's entitlements as a read-only group: the people holding it are its members.
pub fn entitlement_group(base: &str, id: &str, name: &str, holders: &[String]) -> Value {
    let mut v = json!({
        "schemas": [GROUP],
        "id": id,
        "displayName": name,
        "meta": { "resourceType": "Group", "location": format!("{base}/Groups/{id}") },
    });
    if !holders.is_empty() {
        v["members"] = holders
            .iter()
            .map(|p| json!({ "value": p, "$ref": format!("{base}/Users/{p}"), "type": "User" }))
            .collect();
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const STORED: Stored = Stored {
        created_ms: 0,
        updated_ms: 1_500,
        version: 3,
    };

    #[test]
    fn etags_are_weak_and_matched_loosely() {
        assert_eq!(etag(3), "W/\"3\"");
        assert!(etag_matches("W/\"3\"", 3));
        assert!(etag_matches("\"2\", W/\"3\"", 3));
        assert!(etag_matches("*", 9));
        assert!(!etag_matches("W/\"4\"", 3));
        assert_eq!(rfc3339_ms(1_500), "1970-01-01T00:00:01.500Z");
    }

    #[test]
    fn a_user_is_served_with_its_schemas_groups_and_meta() {
        let doc: Map<String, Value> = serde_json::from_value(json!({
            "userName": "ada", ENTERPRISE: { "department": "Eng" },
        }))
        .unwrap();
        let groups = user_group_refs([("g1", "Admins")], "https://t/scim/v2");
        let u = user("https://t/scim/v2", "E1", doc, groups, None, &STORED);
        assert_eq!(
            u,
            json!({
                "id": "E1", "userName": "ada", ENTERPRISE: { "department": "Eng" },
                "schemas": [USER, ENTERPRISE],
                "groups": [{ "value": "g1", "$ref": "https://t/scim/v2/Groups/g1",
                             "display": "Admins", "type": "direct" }],
                "meta": { "resourceType": "User", "created": "1970-01-01T00:00:00.000Z",
                          "lastModified": "1970-01-01T00:00:01.500Z", "version": "W/\"3\"",
                          "location": "https://t/scim/v2/Users/E1" },
            })
        );
    }

    #[test]
    fn groups_of_both_kinds_list_their_members() {
        let members = BTreeSet::from(["E1".to_string()]);
        let g = pushed_group("b", "g1", "Admins", Some("x"), &members, &STORED);
        assert_eq!(g["members"], json!([{ "value": "E1", "type": "User" }]));
        assert_eq!(g["externalId"], "x");
        assert_eq!(g["meta"]["version"], "W/\"3\"");
        let e = entitlement_group("b", "chat:general", "General", &[]);
        assert!(e.get("members").is_none());
        assert_eq!(
            e["meta"],
            json!({ "resourceType": "Group", "location": "b/Groups/chat:general" })
        );
    }
}
