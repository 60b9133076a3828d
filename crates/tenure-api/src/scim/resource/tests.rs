use super::*;
use crate::scim::USER_SCHEMAS;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tenure_store::{ScimUserRow, Store};

/// A user with attributes drawn from small pools, so filters hit and miss.
fn random_user(rng: &mut StdRng, i: usize) -> Value {
    let pick = |rng: &mut StdRng, xs: &[&str]| xs[rng.random_range(0..xs.len())].to_string();
    let mut u = json!({ "userName": format!("{}{i}@Example.com", pick(rng, &["ada", "Bob", "cy", "dana"])) });
    if rng.random_bool(0.7) {
        u["name"] = json!({ "familyName": pick(rng, &["Lovelace", "lovelace", "Hopper", "Ng"]) });
    }
    if rng.random_bool(0.6) {
        u["title"] = json!(pick(rng, &["Engineer", "Sales", "engineer lead"]));
    }
    if rng.random_bool(0.5) {
        u["active"] = json!(rng.random_bool(0.5));
    }
    let n = rng.random_range(0..3);
    let emails: Vec<Value> = (0..n)
        .map(|k| {
            json!({ "value": format!("{}{k}@{}", pick(rng, &["x", "y"]), pick(rng, &["example.com", "Example.org"])),
                    "type": pick(rng, &["work", "home"]) })
        })
        .collect();
    if !emails.is_empty() {
        u["emails"] = json!(emails);
    }
    if rng.random_bool(0.5) {
        u[schema::ENTERPRISE] = json!({ "department": pick(rng, &["Eng", "Sales"]) });
    }
    u
}

const FILTERS: &[&str] = &[
    "userName sw \"b\"",
    "userName co \"3@EX\"",
    "userName ew \".COM\"",
    "userName gt \"c\"",
    "userName le \"bob5@example.com\"",
    "name.familyName eq \"LOVELACE\"",
    "name.familyName ne \"Hopper\"",
    "title pr",
    "not (title pr)",
    "title co \"engineer\" and active eq true",
    "active eq \"False\" or title sw \"sal\"",
    "active ne true",
    "emails[type eq \"work\" and value ew \"example.com\"]",
    "emails[not (type eq \"work\")]",
    "emails[type eq \"home\"] and not (emails[type eq \"work\"])",
    "emails co \"@example.org\"",
    "emails.type eq \"work\"",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq \"eng\"",
    "name.familyName eq null",
    "title ne null and (userName sw \"a\" or userName sw \"d\")",
    "meta.created ge \"2020-01-01T00:00:00Z\"",
    "id pr",
];

/// The SQL translation of every filter selects exactly the users the in-memory evaluator
/// (the reference semantics) accepts, on SQLite and, with TENURE_TEST_DATABASE_URL, PostgreSQL.
#[tokio::test]
async fn sql_filters_agree_with_the_reference_evaluator() {
    let dir = tempfile::tempdir().unwrap();
    let store = match std::env::var("TENURE_TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.is_empty())
    {
        Some(url) => {
            let name = format!("tenure_scimf_{}", uuid::Uuid::new_v4().simple());
            let db = tenure_store::create_scratch_database(&url, &name)
                .await
                .unwrap();
            Store::connect(&db).await.unwrap()
        }
        None => Store::open_sqlite(&dir.path().join("t.db")).await.unwrap(),
    };
    let mut rng = StdRng::seed_from_u64(7);
    let mut all = Vec::new();
    let mut tx = store.begin().await.unwrap();
    for i in 0..120 {
        let doc = clean(&USER_SCHEMAS, &random_user(&mut rng, i)).unwrap();
        let id = format!("u{i:03}");
        let rows = index(
            &USER_SCHEMAS,
            &id,
            &doc,
            "2024-01-01T00:00:00Z",
            "2024-01-01T00:00:00Z",
        );
        let row = ScimUserRow {
            id: id.clone(),
            user_name_ci: doc["userName"].as_str().unwrap().to_lowercase(),
            lifecycle: "none".into(),
            version: 1,
            created_at: 0,
            updated_at: 0,
            doc: Value::Object(doc).to_string(),
        };
        assert!(
            tenure_store::put_scim_user(tx.conn(), &row, None, &rows)
                .await
                .unwrap()
        );
        all.push((id, rows));
    }
    tx.commit().await.unwrap();
    let mut c = store.reader().await.unwrap();
    let mut c5 = store.reader().await.unwrap();
    let fifth = tenure_store::scim_user(&mut c5, "u005")
        .await
        .unwrap()
        .unwrap();
    drop(c5);
    let by_name = format!("userName eq \"{}\"", fifth.user_name_ci.to_uppercase());
    let filters: Vec<&str> = std::iter::once(by_name.as_str())
        .chain(FILTERS.iter().copied())
        .collect();
    for f in filters {
        let cond = to_cond(&USER_SCHEMAS, &Filter::parse(f).unwrap()).unwrap();
        let (total, got) = tenure_store::search_scim_users(&mut c, Some(&cond), None, 0, 1000)
            .await
            .unwrap();
        let got: Vec<String> = got.into_iter().map(|(r, _)| r.id).collect();
        let want: Vec<String> = all
            .iter()
            .filter(|(_, rows)| eval(rows, &cond))
            .map(|(id, _)| id.clone())
            .collect();
        assert_eq!(got, want, "filter {f}");
        assert_eq!(total as usize, want.len(), "count of {f}");
        assert!(
            !want.is_empty() || f.contains("null"),
            "filter {f} matches nothing: a weak test"
        );
    }
    // Sorting: by userName ascending puts users in code point order of the lowercased name.
    let key = sort_key(&USER_SCHEMAS, "userName", false).unwrap();
    let (_, sorted) = tenure_store::search_scim_users(&mut c, None, Some(&key), 0, 1000)
        .await
        .unwrap();
    let names: Vec<String> = sorted.iter().map(|(r, _)| r.user_name_ci.clone()).collect();
    let mut expect = names.clone();
    expect.sort();
    assert_eq!(names, expect);
    // Missing values sort last ascending.
    let key = sort_key(&USER_SCHEMAS, "title", false).unwrap();
    let (_, sorted) = tenure_store::search_scim_users(&mut c, None, Some(&key), 0, 1000)
        .await
        .unwrap();
    let has_title: Vec<bool> = sorted
        .iter()
        .map(|(r, _)| r.doc.contains("\"title\""))
        .collect();
    let first_missing = has_title.iter().position(|h| !h).unwrap();
    assert!(has_title[first_missing..].iter().all(|h| !h));
    drop(c);
    store.close().await;
}

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
    serde_json::from_value(json!({ "schemas": [tenure_scim::PATCH_OP_SCHEMA], "Operations": ops }))
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
