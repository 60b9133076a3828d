use super::*;
use crate::filter::tests::{arb_attr_path, arb_name, arb_value_filter};
use crate::filter::{CompValue, CompareOp};
use proptest::prelude::*;
use serde_json::json;

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const MEMBER_ID: &str = "2819c223-7f76-453a-919d-413861904646";

fn eq(attr: &str, value: &str) -> Filter {
    Filter::Compare {
        path: AttrPath::new(attr),
        op: CompareOp::Eq,
        value: CompValue::String(value.to_owned()),
    }
}

fn vp(attr: &str, filter: Filter, sub_attr: Option<&str>) -> PatchPath {
    PatchPath::ValuePath {
        attr: AttrPath::new(attr),
        filter,
        sub_attr: sub_attr.map(str::to_owned),
    }
}

fn check(input: &str, expected: PatchPath) {
    let parsed = PatchPath::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
    assert_eq!(parsed, expected, "{input:?}");
    let printed = parsed.to_string();
    assert_eq!(
        PatchPath::parse(&printed).as_ref(),
        Ok(&expected),
        "{printed:?}"
    );
}

fn check_err(input: &str, offset: usize, message: &str) {
    let e = PatchPath::parse(input).expect_err(input);
    assert_eq!((e.offset(), e.message()), (offset, message), "{input:?}");
}

// ---- RFC 7644 §3.5.2 path examples --------------------------------------------------------

#[test]
fn rfc_simple_paths() {
    check("members", PatchPath::Attribute(AttrPath::new("members")));
    check(
        "name.familyName",
        PatchPath::Attribute(AttrPath::with_sub("name", "familyName")),
    );
    check(
        &format!("{ENTERPRISE}:employeeNumber"),
        PatchPath::Attribute(AttrPath::new("employeeNumber").in_schema(ENTERPRISE)),
    );
    check(
        &format!("{ENTERPRISE}:manager.value"),
        PatchPath::Attribute(AttrPath::with_sub("manager", "value").in_schema(ENTERPRISE)),
    );
}

#[test]
fn rfc_value_paths() {
    check(
        r#"addresses[type eq "work"]"#,
        vp("addresses", eq("type", "work"), None),
    );
    check(
        &format!(r#"members[value eq "{MEMBER_ID}"]"#),
        vp("members", eq("value", MEMBER_ID), None),
    );
    check(
        &format!(r#"members[value eq "{MEMBER_ID}"].displayName"#),
        vp("members", eq("value", MEMBER_ID), Some("displayName")),
    );
    check(
        r#"emails[type eq "work" and value ew "example.com"]"#,
        vp(
            "emails",
            Filter::And(vec![
                eq("type", "work"),
                Filter::Compare {
                    path: AttrPath::new("value"),
                    op: CompareOp::Ew,
                    value: CompValue::String("example.com".into()),
                },
            ]),
            None,
        ),
    );
    check(
        r#"addresses[type eq "work"].streetAddress"#,
        vp("addresses", eq("type", "work"), Some("streetAddress")),
    );
    check(
        r#"emails[type eq "work"].value"#,
        vp("emails", eq("type", "work"), Some("value")),
    );
}

#[test]
fn client_spellings() {
    // No space before the value (seen from Airtable-style clients) and uppercase operators.
    check(
        r#"members[value EQ"abc"]"#,
        vp("members", eq("value", "abc"), None),
    );
    check(
        r#"members[value eq "abc"].$ref"#,
        vp("members", eq("value", "abc"), Some("$ref")),
    );
}

#[test]
fn accessors() {
    let p = PatchPath::parse(r#"emails[type eq "work" or primary pr].value"#).unwrap();
    assert_eq!(p.attr(), &AttrPath::new("emails"));
    assert_eq!(
        p.attribute_paths(),
        vec![
            AttrPath::new("emails"),
            AttrPath::with_sub("emails", "type"),
            AttrPath::with_sub("emails", "primary"),
            AttrPath::with_sub("emails", "value"),
        ]
    );
    let q: PatchPath = "name.givenName".parse().unwrap();
    assert_eq!(
        q.attribute_paths(),
        vec![AttrPath::with_sub("name", "givenName")]
    );
}

#[test]
fn value_filters_in_paths_are_bounded_like_filters() {
    let terms = |n: usize| vec![r#"value eq "x""#; n].join(" or ");
    let at_bound = format!("members[{}].display", terms(crate::MAX_TERMS));
    assert!(PatchPath::parse(&at_bound).is_ok());
    let beyond = format!("members[{}].display", terms(crate::MAX_TERMS + 1));
    let e = PatchPath::parse(&beyond).unwrap_err();
    assert_eq!(
        e.message(),
        "filter has more than the maximum of 100 attribute expressions"
    );
    let nul = PatchPath::parse(r#"emails[value eq "a\u0000"]"#).unwrap_err();
    assert_eq!(
        nul.message(),
        "a NUL character cannot appear in a filter string"
    );
}

#[test]
fn path_errors() {
    let cases: &[(&str, usize, &str)] = &[
        ("", 0, "expected attribute path"),
        (" members", 0, "expected attribute path"),
        ("members ", 7, "expected '[' or end of path"),
        ("members[", 8, "expected attribute path"),
        ("members[value eq \"x\"", 20, "expected 'and', 'or' or ']'"),
        (
            "members[value eq \"x\"].",
            22,
            "expected sub-attribute name after '.'",
        ),
        (
            "members[value eq \"x\"]x",
            21,
            "expected '.' or end of path after ']'",
        ),
        (
            "members[value eq \"x\"] ",
            21,
            "expected '.' or end of path after ']'",
        ),
        (
            "members[value eq \"x\"].a.b",
            23,
            "attribute path has more than one sub-attribute level",
        ),
        (
            "members[value eq \"x\"].a:b",
            23,
            "unexpected ':' in sub-attribute name",
        ),
        (
            "members[value eq \"x\"].1a",
            22,
            "sub-attribute name must start with a letter",
        ),
        ("members[value eq \"x\"].a b", 23, "expected end of path"),
        (
            "name.familyName[value pr]",
            15,
            "a value filter must follow a top-level attribute, not a sub-attribute",
        ),
        ("members[x[y pr]]", 9, "value filters cannot be nested"),
        (
            "name.familyName.x",
            15,
            "attribute path has more than one sub-attribute level",
        ),
        ("emails(type pr)", 6, "expected '[' or end of path"),
        ("urn:x:", 6, "expected attribute name after schema URN"),
        (
            "members[value eq \"x\"]]",
            21,
            "expected '.' or end of path after ']'",
        ),
    ];
    for &(input, offset, message) in cases {
        check_err(input, offset, message);
    }
}

// ---- request model ------------------------------------------------------------------------

#[test]
fn entra_request_with_capitalized_ops_and_string_booleans() {
    let body = json!({
        "schemas": [PATCH_OP_SCHEMA],
        "Operations": [
            {"op": "Replace", "path": "active", "value": "False"},
            {"op": "Add", "path": "members", "value": [{"value": MEMBER_ID}]},
            {"op": "Remove", "path": "members", "value": [{"value": MEMBER_ID}]},
            {"op": "REPLACE", "value": {"name.givenName": "Barbara", "active": "True"}}
        ]
    });
    let req: PatchRequest = serde_json::from_value(body).unwrap();
    let ops: Vec<_> = req.operations.iter().map(|o| o.op).collect();
    assert_eq!(
        ops,
        [
            PatchOp::Replace,
            PatchOp::Add,
            PatchOp::Remove,
            PatchOp::Replace
        ]
    );
    assert_eq!(req.operations[0].value, Some(json!("False")));
    assert_eq!(
        req.operations[3].value,
        Some(json!({"name.givenName": "Barbara", "active": "True"}))
    );
    let paths = req.validate().unwrap();
    assert_eq!(
        paths,
        vec![
            Some(PatchPath::Attribute(AttrPath::new("active"))),
            Some(PatchPath::Attribute(AttrPath::new("members"))),
            Some(PatchPath::Attribute(AttrPath::new("members"))),
            None,
        ]
    );
}

#[test]
fn lowercase_operations_key_and_unknown_members() {
    let req: PatchRequest = serde_json::from_str(
        r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "operations":[{"op":"remove","path":"members[value eq \"abc\"]","id":"x"}],
            "extra":1}"#,
    )
    .unwrap();
    assert_eq!(req.operations.len(), 1);
    assert_eq!(req.operations[0].op, PatchOp::Remove);
    assert_eq!(req.operations[0].value, None);
    assert_eq!(
        req.operations[0].parsed_path(),
        Ok(Some(vp("members", eq("value", "abc"), None)))
    );
}

#[test]
fn serializes_rfc_spelling() {
    let req = PatchRequest::new(vec![
        PatchOperation {
            op: PatchOp::Replace,
            path: Some("displayName".into()),
            value: Some(json!("Eng")),
        },
        PatchOperation {
            op: PatchOp::Remove,
            path: Some(r#"members[value eq "1"]"#.into()),
            value: None,
        },
    ]);
    let v = serde_json::to_value(&req).unwrap();
    assert_eq!(
        v,
        json!({
            "schemas": [PATCH_OP_SCHEMA],
            "Operations": [
                {"op": "replace", "path": "displayName", "value": "Eng"},
                {"op": "remove", "path": "members[value eq \"1\"]"}
            ]
        })
    );
    assert_eq!(serde_json::from_value::<PatchRequest>(v).unwrap(), req);
}

#[test]
fn malformed_bodies_are_rejected_by_serde() {
    for body in [
        json!({"schemas": [PATCH_OP_SCHEMA], "Operations": [{"op": "move", "path": "a"}]}),
        json!({"schemas": [PATCH_OP_SCHEMA], "Operations": [{"path": "a"}]}),
        json!({"schemas": [PATCH_OP_SCHEMA]}),
        json!({"schemas": [PATCH_OP_SCHEMA], "Operations": [{"op": 1}]}),
    ] {
        assert!(
            serde_json::from_value::<PatchRequest>(body.clone()).is_err(),
            "{body}"
        );
    }
    let err = serde_json::from_value::<PatchRequest>(
        json!({"Operations": [{"op": "Move", "path": "a"}]}),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("unknown PATCH op 'Move', expected add, remove or replace"),
        "{err}"
    );
    assert_eq!(PatchOp::from_keyword("aDd"), Some(PatchOp::Add));
    assert_eq!(PatchOp::from_keyword("added"), None);
}

#[test]
fn validation_errors() {
    let req = |schemas: Vec<&str>, ops: serde_json::Value| -> PatchRequest {
        serde_json::from_value(json!({"schemas": schemas, "Operations": ops})).unwrap()
    };
    let cases = [
        (
            req(vec![], json!([{"op": "add", "path": "a", "value": 1}])),
            ScimType::InvalidSyntax,
        ),
        (
            req(vec![PATCH_OP_SCHEMA], json!([])),
            ScimType::InvalidSyntax,
        ),
        (
            req(
                vec![PATCH_OP_SCHEMA],
                json!([{"op": "add", "path": "a[", "value": 1}]),
            ),
            ScimType::InvalidPath,
        ),
        (
            req(vec![PATCH_OP_SCHEMA], json!([{"op": "remove"}])),
            ScimType::NoTarget,
        ),
        (
            req(
                vec![PATCH_OP_SCHEMA],
                json!([{"op": "replace", "path": "a"}]),
            ),
            ScimType::InvalidValue,
        ),
        (
            req(
                vec![PATCH_OP_SCHEMA],
                json!([{"op": "add", "path": "a", "value": null}]),
            ),
            ScimType::InvalidValue,
        ),
        (
            req(vec![PATCH_OP_SCHEMA], json!([{"op": "add", "value": "x"}])),
            ScimType::InvalidValue,
        ),
    ];
    for (request, expected) in cases {
        let err = request.validate().expect_err("should be invalid");
        assert_eq!(err.scim_type, Some(expected), "{err}");
        assert_eq!(err.status, 400);
    }
    let err = req(
        vec![PATCH_OP_SCHEMA],
        json!([{"op": "remove", "path": "members"}, {"op": "remove", "path": "x y"}]),
    )
    .validate()
    .unwrap_err();
    assert_eq!(
        err.detail.as_deref(),
        Some("Operations[1]: invalid path: expected '[' or end of path at offset 1")
    );
    // The schema URN is compared case-insensitively.
    assert!(
        req(
            vec!["URN:IETF:PARAMS:SCIM:API:MESSAGES:2.0:PATCHOP"],
            json!([{"op": "remove", "path": "a"}])
        )
        .validate()
        .is_ok()
    );
}

// ---- properties ---------------------------------------------------------------------------

fn patch_path() -> impl Strategy<Value = PatchPath> {
    let top = (
        prop::option::weighted(0.2, Just(ENTERPRISE.to_owned())),
        arb_name(),
    )
        .prop_map(|(schema, attr)| AttrPath {
            schema,
            attr,
            sub_attr: None,
        });
    prop_oneof![
        arb_attr_path().prop_map(PatchPath::Attribute),
        (top, arb_value_filter(), prop::option::of(arb_name())).prop_map(
            |(attr, filter, sub_attr)| PatchPath::ValuePath {
                attr,
                filter,
                sub_attr,
            }
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn printed_path_reparses_to_itself(p in patch_path()) {
        let printed = p.to_string();
        prop_assert_eq!(PatchPath::parse(&printed), Ok(p), "printed: {}", printed);
    }

    #[test]
    fn arbitrary_paths_never_panic(input in any::<String>()) {
        if let Err(e) = PatchPath::parse(&input) {
            prop_assert!(input.is_char_boundary(e.offset()));
        }
    }

    #[test]
    fn path_like_strings_never_panic(input in r#"[a-z.:$\[\]" =()é]{0,40}"#) {
        if let Ok(p) = PatchPath::parse(&input) {
            prop_assert_eq!(PatchPath::parse(&p.to_string()), Ok(p));
        }
    }

    #[test]
    fn arbitrary_json_bodies_never_panic(input in any::<String>()) {
        if let Ok(req) = serde_json::from_str::<PatchRequest>(&input) {
            let _ = req.validate();
        }
    }
}
