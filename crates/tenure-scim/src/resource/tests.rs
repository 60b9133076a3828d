use super::*;
use crate::schema::USER_SCHEMAS;

#[test]
fn cleaning_applies_the_schema_and_the_quirks() {
    let doc = clean(
        &USER_SCHEMAS,
        &json!({ "UserName": "a@example.com", "ACTIVE": "False", "password": "secret",
                 "id": "ignored", "meta": {}, "groups": [{"value": "g"}],
                 "emails": [{ "Value": "a@example.com", "Primary": "True" }] }),
    )
    .unwrap();
    assert_eq!(
        Value::Object(doc),
        json!({ "userName": "a@example.com", "active": false,
                "emails": [{ "value": "a@example.com", "primary": true }] })
    );
    let e = clean(&USER_SCHEMAS, &json!({ "userName": "  " })).unwrap_err();
    assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
}

#[test]
fn cleaning_refuses_nul_characters_and_overlong_strings_everywhere() {
    let refused = |body: Value, want: &str| {
        let e = clean(&USER_SCHEMAS, &body).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidValue), "{body}");
        assert_eq!(e.detail.as_deref(), Some(want), "{body}");
    };
    let nul = "must not contain a NUL character";
    refused(
        json!({ "userName": "a\u{0}b" }),
        &format!("userName: {nul}"),
    );
    refused(
        json!({ "userName": "a", "externalId": "\u{0}" }),
        &format!("externalId: {nul}"),
    );
    refused(
        json!({ "userName": "a", "nickName": "x\u{0}" }),
        &format!("nickName: {nul}"),
    );
    refused(
        json!({ "userName": "a", "name": { "givenName": "\u{0}" } }),
        &format!("name.givenName: {nul}"),
    );
    refused(
        json!({ "userName": "a", "emails": [{ "value": "a@example.com" }, { "value": "b\u{0}@example.com" }] }),
        &format!("emails[1].value: {nul}"),
    );
    refused(
        json!({ "userName": "a", schema::ENTERPRISE: { "department": "\u{0}" } }),
        &format!("{}:department: {nul}", schema::ENTERPRISE),
    );
    // Lengths: userName is a name, other strings are text.
    let at_most = |n: usize| format!("must be at most {n} characters");
    assert!(clean(&USER_SCHEMAS, &json!({ "userName": "é".repeat(256) })).is_ok());
    refused(
        json!({ "userName": "é".repeat(257) }),
        &format!("userName: {}", at_most(256)),
    );
    refused(
        json!({ "userName": "a", "title": "t".repeat(2_001) }),
        &format!("title: {}", at_most(2_000)),
    );
    assert!(
        clean(
            &USER_SCHEMAS,
            &json!({ "userName": "a", "title": "t".repeat(2_000) })
        )
        .is_ok()
    );
}

fn patch(ops: Value) -> PatchRequest {
    serde_json::from_value(json!({ "schemas": [crate::PATCH_OP_SCHEMA], "Operations": ops }))
        .unwrap()
}

#[test]
fn patch_follows_rfc_7644_examples() {
    let doc = clean(
        &USER_SCHEMAS,
        &json!({ "userName": "a@example.com",
                 "emails": [{ "value": "a@example.com", "type": "work", "primary": true },
                            { "value": "a@home.org", "type": "home" }],
                 "name": { "givenName": "Ann", "familyName": "Lee" } }),
    )
    .unwrap();
    // §3.5.2.1 add of a multi-valued attribute appends; a primary value clears the old primary.
    let d = apply_patch(&USER_SCHEMAS, &doc, &patch(json!([
        { "op": "add", "path": "emails", "value": [{ "value": "n@example.com", "type": "other", "primary": true }] }
    ]))).unwrap();
    assert_eq!(d["emails"][0]["primary"], false);
    assert_eq!(d["emails"][2]["primary"], true);
    // §3.5.2.2 remove with a value filter.
    let d = apply_patch(
        &USER_SCHEMAS,
        &doc,
        &patch(json!([
            { "op": "remove", "path": "emails[type eq \"home\"]" }
        ])),
    )
    .unwrap();
    assert_eq!(d["emails"].as_array().unwrap().len(), 1);
    // §3.5.2.3 replace a sub-attribute of the matched values; a complex value merges.
    let d = apply_patch(
        &USER_SCHEMAS,
        &doc,
        &patch(json!([
            { "op": "replace", "path": "emails[type eq \"work\"].value", "value": "b@example.com" },
            { "op": "replace", "path": "name", "value": { "givenName": "Bea" } },
            { "op": "remove", "path": "name.familyName" }
        ])),
    )
    .unwrap();
    assert_eq!(d["emails"][0]["value"], "b@example.com");
    assert_eq!(d["name"], json!({ "givenName": "Bea" }));
    // remove of an absent value is no error; replace of an unmatched one with a non-eq filter is.
    assert!(
        apply_patch(
            &USER_SCHEMAS,
            &doc,
            &patch(json!([{ "op": "remove", "path": "title" }]))
        )
        .is_ok()
    );
    let e = apply_patch(
        &USER_SCHEMAS,
        &doc,
        &patch(json!([
            { "op": "replace", "path": "emails[value co \"zzz\"].type", "value": "work" }
        ])),
    )
    .unwrap_err();
    assert_eq!(e.scim_type, Some(ScimType::NoTarget));
    // Read-only attributes are refused.
    let e = apply_patch(
        &USER_SCHEMAS,
        &doc,
        &patch(json!([
            { "op": "add", "path": "groups", "value": [{ "value": "g" }] }
        ])),
    )
    .unwrap_err();
    assert_eq!(e.scim_type, Some(ScimType::Mutability));
}

#[test]
fn projection_keeps_or_drops_what_is_asked() {
    let full = json!({ "schemas": [schema::USER], "id": "1", "meta": {}, "userName": "a",
                       "name": { "givenName": "A", "familyName": "B" },
                       "emails": [{ "value": "x", "type": "work" }] });
    let inc = parse_attr_list("name.familyName, emails.value").unwrap();
    assert_eq!(
        project(&USER_SCHEMAS, full.clone(), &inc, &[]),
        json!({ "schemas": [schema::USER], "id": "1", "meta": {}, "name": { "familyName": "B" }, "emails": [{ "value": "x" }] })
    );
    let exc = parse_attr_list("name,id").unwrap();
    let out = project(&USER_SCHEMAS, full, &[], &exc);
    assert!(out.get("name").is_none() && out["id"] == "1");
}
