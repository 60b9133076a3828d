//! The SCIM 2.0 server end to end, against the real binary on SQLite (and PostgreSQL with
//! `TENURE_TEST_DATABASE_URL`): RFC 7643/7644 examples as test vectors, filters, paging,
//! projection, PATCH (with identity provider quirks), ETags, Bulk, errors, and the lifecycle
//! events the changes become.

mod common;

use common::scim_call as call;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const CONFIG: &str = r#"
[engine]
max_attempts = 3
backoff_base_ms = 10
backoff_max_ms = 50

[[systems]]
id = "directory"
connector = "sandbox"
retention = "delete"

[[entitlements]]
id = "directory:all-staff"
system = "directory"
[[entitlements]]
id = "directory:engineering"
system = "directory"
"#;

const TEMPLATES: &[(&str, &str)] = &[
    ("all-staff", "entitlements = [\"directory:all-staff\"]\n"),
    (
        "engineering",
        "entitlements = [\"directory:engineering\"]\n[match]\ndepartment = [\"Engineering\"]\n",
    ),
];

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const TENURE: &str = "urn:tenure:params:scim:schemas:extension:lifecycle:2.0:User";

/// The full enterprise user of RFC 7643 §8.3, trimmed of `password` (ignored) and `groups`
/// (read-only), with a department tenure's templates match on.
fn rfc_enterprise_user() -> Value {
    json!({
      "schemas": [USER, ENTERPRISE],
      "externalId": "701984",
      "userName": "bjensen@example.com",
      "name": {
        "formatted": "Ms. Barbara J Jensen, III",
        "familyName": "Jensen",
        "givenName": "Barbara",
        "middleName": "Jane",
        "honorificPrefix": "Ms.",
        "honorificSuffix": "III"
      },
      "displayName": "Babs Jensen",
      "nickName": "Babs",
      "profileUrl": "https://login.example.com/bjensen",
      "emails": [
        { "value": "bjensen@example.com", "type": "work", "primary": true },
        { "value": "babs@jensen.org", "type": "home" }
      ],
      "addresses": [
        {
          "streetAddress": "100 Universal City Plaza",
          "locality": "Hollywood",
          "region": "CA",
          "postalCode": "91608",
          "country": "USA",
          "formatted": "100 Universal City Plaza\nHollywood, CA 91608 USA",
          "type": "work",
          "primary": true
        }
      ],
      "phoneNumbers": [
        { "value": "555-555-5555", "type": "work" },
        { "value": "555-555-4444", "type": "mobile" }
      ],
      "ims": [ { "value": "someaimhandle", "type": "aim" } ],
      "photos": [
        { "value": "https://photos.example.com/profilephoto/72930000000Ccne/F", "type": "photo" }
      ],
      "userType": "Employee",
      "title": "Tour Guide",
      "preferredLanguage": "en-US",
      "locale": "en-US",
      "timezone": "America/Los_Angeles",
      "active": true,
      "password": "t1meMa$heen",
      "x509Certificates": [ { "value": "MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQAwTjELMAkGA1UEBhMCVVMx" } ],
      ENTERPRISE: {
        "employeeNumber": "701984",
        "costCenter": "4130",
        "organization": "Universal Studios",
        "division": "Theme Park",
        "department": "Engineering",
        "manager": { "value": "26118915-6090-4610-87e4-49d8ca9f808d", "$ref": "../Users/26118915-6090-4610-87e4-49d8ca9f808d", "displayName": "John Smith" }
      }
    })
}

/// Waits for every run of the person to end and returns the person.
async fn settled(s: &Server, id: &str) -> Value {
    for run in s.items(&format!("/api/v1/runs?person={id}")).await {
        let r = s.wait_run(run["id"].as_str().unwrap()).await;
        assert_eq!(r["state"], "succeeded", "run of {id}: {r}");
    }
    s.person(id).await
}

async fn run_kinds(s: &Server, id: &str) -> Vec<String> {
    let mut kinds: Vec<String> = s
        .items(&format!("/api/v1/runs?person={id}"))
        .await
        .iter()
        .map(|r| r["kind"].as_str().unwrap().to_string())
        .collect();
    kinds.reverse();
    kinds
}

async fn ids(s: &Server, token: &str, query: &str) -> Vec<String> {
    let a = call(s, token, Method::GET, &format!("/Users?{query}"), None, &[]).await;
    assert_eq!(a.status, StatusCode::OK, "{query}: {}", a.body);
    a.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["userName"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim_users_become_lifecycle_events() {
    let env = TestEnv::new(CONFIG, TEMPLATES).await;
    let s = env.start().await;
    let t = scim_token(&s).await;

    // Authentication and scope, with SCIM error bodies.
    let a = s
        .request(Method::GET, "/scim/v2/Users", None, &[], None)
        .await;
    assert_scim_error(&a, 401, None);
    let read = s
        .post(
            "/api/v1/tokens",
            &json!({ "name": "reader", "scopes": ["read"] }),
        )
        .await;
    let read = read.body["token"].as_str().unwrap().to_string();
    let a = call(&s, &read, Method::GET, "/Users", None, &[]).await;
    assert_scim_error(&a, 403, None);

    // RFC 7643 §8.3: the enterprise user; it is a hire.
    let a = call(
        &s,
        &t,
        Method::POST,
        "/Users",
        Some(rfc_enterprise_user()),
        &[],
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let id = a.body["id"].as_str().unwrap().to_string();
    assert_eq!(a.body["meta"]["version"], "W/\"1\"");
    assert_eq!(a.headers["etag"], "W/\"1\"");
    assert!(
        a.headers["location"]
            .to_str()
            .unwrap()
            .ends_with(&format!("/scim/v2/Users/{id}"))
    );
    assert!(a.body.get("password").is_none(), "passwords are never kept");
    assert_eq!(a.body["schemas"], json!([USER, ENTERPRISE]));
    assert_eq!(a.body[ENTERPRISE]["manager"].get("displayName"), None);
    let p = settled(&s, &id).await;
    assert_eq!(p["status"], "active");
    assert_eq!(p["name"], "Babs Jensen");
    assert_eq!(p["email"], "bjensen@example.com");
    assert_eq!(p["department"], "Engineering");
    assert_eq!(p["title"], "Tour Guide");
    assert_eq!(
        grants(&p),
        map(&[
            ("directory:all-staff", "granted"),
            ("directory:engineering", "granted")
        ])
    );
    // tenure's own view comes back read-only: status and the entitlements held, as groups.
    let got = call(&s, &t, Method::GET, &format!("/Users/{id}"), None, &[]).await;
    assert!(
        got.body.get(TENURE).is_none(),
        "status is returned on request only"
    );
    let status = call(
        &s,
        &t,
        Method::GET,
        &format!("/Users/{id}?attributes={TENURE}:status"),
        None,
        &[],
    )
    .await;
    assert_eq!(
        status.body[TENURE],
        json!({ "status": "active" }),
        "{}",
        status.body
    );
    let groups: Vec<&str> = got.body["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["value"].as_str().unwrap())
        .collect();
    assert_eq!(groups, ["directory:all-staff", "directory:engineering"]);
    // A list carries them too, whether the page is in id order (read with its grants in one
    // query) or sorted (its grants read after it).
    let name = got.body["userName"].as_str().unwrap();
    for order in ["", "&sortBy=userName&sortOrder=descending"] {
        let path = format!("/Users?filter=userName%20eq%20%22{name}%22{order}");
        let list = call(&s, &t, Method::GET, &path, None, &[]).await;
        assert_eq!(list.body["totalResults"], 1, "{}", list.body);
        assert_eq!(
            list.body["Resources"][0]["groups"], got.body["groups"],
            "{path}"
        );
    }

    // The same userName in another case is taken.
    let mut dup = rfc_enterprise_user();
    dup["userName"] = json!("BJensen@Example.com");
    let a = call(&s, &t, Method::POST, "/Users", Some(dup), &[]).await;
    assert_scim_error(&a, 409, Some("uniqueness"));

    // RFC 7644 §3.3's minimal user has no email: stored, not (yet) a person.
    let minimal = json!({
        "schemas": [USER], "userName": "bjensen-min", "externalId": "bjensen",
        "name": { "formatted": "Ms. Barbara J Jensen III", "familyName": "Jensen", "givenName": "Barbara" }
    });
    let a = call(&s, &t, Method::POST, "/Users", Some(minimal), &[]).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let min_id = a.body["id"].as_str().unwrap().to_string();
    assert!(a.body.get("groups").is_none(), "no person behind it yet");
    // Entra ID style: PATCH with capitalised op and a path that creates the work email.
    let patch = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": "Add", "path": "emails[type eq \"work\"].value", "value": "barbara@example.com" }]
    });
    let a = call(
        &s,
        &t,
        Method::PATCH,
        &format!("/Users/{min_id}"),
        Some(patch),
        &[],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(
        a.body["emails"],
        json!([{ "type": "work", "value": "barbara@example.com" }])
    );
    let p = settled(&s, &min_id).await;
    assert_eq!(p["email"], "barbara@example.com");
    assert_eq!(run_kinds(&s, &min_id).await, ["hire"]);

    // Filters, run in the database.
    for (filter, want) in [
        (
            "userName eq \"BJENSEN@example.com\"",
            vec!["bjensen@example.com"],
        ),
        (
            "name.familyName sw \"jen\" and not (userName eq \"bjensen-min\")",
            vec!["bjensen@example.com"],
        ),
        (
            "emails[type eq \"work\" and value co \"@example.com\"]",
            vec!["bjensen-min", "bjensen@example.com"],
        ),
        ("emails co \"jensen.org\"", vec!["bjensen@example.com"]),
        ("active eq \"True\"", vec!["bjensen@example.com"]),
        ("not (active pr)", vec!["bjensen-min"]),
        ("title pr", vec!["bjensen@example.com"]),
        (
            "externalId eq \"701984\" or externalId eq \"BJENSEN\"",
            vec!["bjensen@example.com"],
        ),
        (
            "meta.created gt \"2000-01-01T00:00:00Z\" and meta.created lt \"2999-01-01T00:00:00+02:00\"",
            vec!["bjensen-min", "bjensen@example.com"],
        ),
        (
            &format!("{ENTERPRISE}:department eq \"engineering\""),
            vec!["bjensen@example.com"],
        ),
        (
            &format!("{ENTERPRISE}:manager.value pr"),
            vec!["bjensen@example.com"],
        ),
        ("nickName ne \"Babs\"", vec!["bjensen-min"]),
        ("userName gt \"bjensen-min\"", vec!["bjensen@example.com"]),
        ("userName ew \"-MIN\"", vec!["bjensen-min"]),
    ] {
        let got = ids(
            &s,
            &t,
            &format!("filter={}&sortBy=userName", url_encode(filter)),
        )
        .await;
        assert_eq!(got, want, "filter {filter}");
    }
    for bad in [
        "userName eq",
        "nosuch eq \"x\"",
        "active gt true",
        "meta.created gt \"yesterday\"",
        "groups.value eq \"x\"",
        "title eq 12",
    ] {
        let a = call(
            &s,
            &t,
            Method::GET,
            &format!("/Users?filter={}", url_encode(bad)),
            None,
            &[],
        )
        .await;
        assert_scim_error(&a, 400, Some("invalidFilter"));
    }

    // Sorting, paging, projection, and the same search by POST /.search.
    assert_eq!(
        ids(&s, &t, "sortBy=userName&sortOrder=descending").await,
        ["bjensen@example.com", "bjensen-min"]
    );
    let a = call(
        &s,
        &t,
        Method::GET,
        "/Users?sortBy=userName&startIndex=2&count=1",
        None,
        &[],
    )
    .await;
    assert_eq!(a.body["totalResults"], 2);
    assert_eq!(a.body["startIndex"], 2);
    assert_eq!(a.body["itemsPerPage"], 1);
    assert_eq!(a.body["Resources"][0]["userName"], "bjensen@example.com");
    let a = call(&s, &t, Method::GET, "/Users?count=0", None, &[]).await;
    assert_eq!(
        (a.body["totalResults"].clone(), a.body["Resources"].clone()),
        (json!(2), json!([]))
    );
    let a = call(
        &s,
        &t,
        Method::POST,
        "/Users/.search",
        Some(json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            "attributes": ["userName", "name.givenName", format!("{ENTERPRISE}:department")],
            "filter": "userName eq \"bjensen@example.com\"",
            "startIndex": 1, "count": 10
        })),
        &[],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let r = &a.body["Resources"][0];
    let mut keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        ["id", "meta", "name", "schemas", ENTERPRISE, "userName"]
    );
    assert_eq!(r["name"], json!({ "givenName": "Barbara" }));
    assert_eq!(r[ENTERPRISE], json!({ "department": "Engineering" }));
    let a = call(
        &s,
        &t,
        Method::GET,
        &format!("/Users/{id}?excludedAttributes=emails,name.middleName"),
        None,
        &[],
    )
    .await;
    assert!(a.body.get("emails").is_none());
    assert!(a.body["name"].get("middleName").is_none());
    assert_eq!(a.body["name"]["givenName"], "Barbara");

    // ETags: a stale If-Match is refused, the current one applies; If-None-Match gives 304.
    let title = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": "replace", "value": { "title": "Chief Guide", "active": "True" } }]
    });
    let a = call(
        &s,
        &t,
        Method::PATCH,
        &format!("/Users/{id}"),
        Some(title.clone()),
        &[("if-match", "W/\"7\"")],
    )
    .await;
    assert_scim_error(&a, 412, None);
    let a = call(
        &s,
        &t,
        Method::PATCH,
        &format!("/Users/{id}"),
        Some(title),
        &[("if-match", "W/\"1\"")],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["meta"]["version"], "W/\"2\"");
    assert_eq!(a.body["active"], true, "\"True\" is stored as a boolean");
    let a = call(
        &s,
        &t,
        Method::GET,
        &format!("/Users/{id}"),
        None,
        &[("if-none-match", "W/\"2\"")],
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_MODIFIED);
    let p = settled(&s, &id).await;
    assert_eq!(p["title"], "Chief Guide");

    // PATCH with value filters: replace the home email, remove the mobile phone, a department
    // move through the flattened extension key Entra ID sends.
    let patch = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            { "op": "replace", "path": "emails[type eq \"home\"].value", "value": "babs@example.org" },
            { "op": "remove", "path": "phoneNumbers[type eq \"mobile\"]" },
            { "op": "Replace", "value": { format!("{ENTERPRISE}:department"): "Support" } },
            { "op": "add", "path": "emails", "value": [{ "value": "b2@example.com", "type": "other", "primary": true }] }
        ]
    });
    let a = call(
        &s,
        &t,
        Method::PATCH,
        &format!("/Users/{id}"),
        Some(patch),
        &[],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(
        a.body["phoneNumbers"],
        json!([{ "value": "555-555-5555", "type": "work" }])
    );
    let emails = a.body["emails"].as_array().unwrap();
    assert_eq!(emails[1]["value"], "babs@example.org");
    assert_eq!(
        emails[0]["primary"], false,
        "a new primary clears the old one"
    );
    assert_eq!(emails[2]["primary"], true);
    assert_eq!(a.body[ENTERPRISE]["department"], "Support");
    let p = settled(&s, &id).await;
    assert_eq!(p["department"], "Support");
    assert_eq!(p["email"], "b2@example.com");
    assert_eq!(grants(&p)["directory:engineering"], "revoked");
    for (bad, kind) in [
        (
            json!({ "Operations": [{ "op": "replace", "path": "title", "value": "x" }] }),
            "invalidSyntax",
        ),
        (
            json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{ "op": "remove" }] }),
            "noTarget",
        ),
        (
            json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{ "op": "replace", "path": "id", "value": "x" }] }),
            "mutability",
        ),
        (
            json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{ "op": "replace", "path": "emails[type eq \"fax\"]", "value": 1 }] }),
            "invalidValue",
        ),
        (
            json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{ "op": "replace", "path": "emails[type eq", "value": "x" }] }),
            "invalidPath",
        ),
        (
            json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{ "op": "replace", "path": "active", "value": "maybe" }] }),
            "invalidValue",
        ),
    ] {
        let a = call(
            &s,
            &t,
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(bad.clone()),
            &[],
        )
        .await;
        assert_scim_error(&a, 400, Some(kind));
    }
    let a = call(&s, &t, Method::GET, &format!("/Users/{id}"), None, &[]).await;
    assert_eq!(
        a.body["meta"]["version"], "W/\"3\"",
        "refused PATCHes change nothing"
    );

    // PUT with active "False" (Entra ID) is a leave; PUT active again is a rehire.
    let mut body = rfc_enterprise_user();
    body["active"] = json!("False");
    let a = call(
        &s,
        &t,
        Method::PUT,
        &format!("/Users/{id}"),
        Some(body.clone()),
        &[],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["active"], false);
    let p = settled(&s, &id).await;
    assert_eq!(p["status"], "terminated");
    // The same PUT again changes nothing: no new version, no event.
    let a = call(
        &s,
        &t,
        Method::PUT,
        &format!("/Users/{id}"),
        Some(body.clone()),
        &[],
    )
    .await;
    assert_eq!(a.body["meta"]["version"], "W/\"4\"");
    body["active"] = json!(true);
    let a = call(
        &s,
        &t,
        Method::PUT,
        &format!("/Users/{id}"),
        Some(body),
        &[],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let p = settled(&s, &id).await;
    assert_eq!(p["status"], "active");

    // DELETE is a leave; the user is gone, its userName free again.
    let a = call(&s, &t, Method::DELETE, &format!("/Users/{id}"), None, &[]).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    let a = call(&s, &t, Method::GET, &format!("/Users/{id}"), None, &[]).await;
    assert_scim_error(&a, 404, None);
    let a = call(&s, &t, Method::DELETE, &format!("/Users/{id}"), None, &[]).await;
    assert_scim_error(&a, 404, None);
    let p = settled(&s, &id).await;
    assert_eq!(p["status"], "terminated");
    assert_eq!(
        run_kinds(&s, &id).await,
        ["hire", "transfer", "transfer", "leave", "rehire", "leave"]
    );

    // Every change is audited with the SCIM token as actor.
    let audit = s.items(&format!("/api/v1/audit?person={id}")).await;
    let scim_entries = audit
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("scim.user."))
        .filter(|e| e["actor"] == "identity-provider")
        .count();
    assert_eq!(scim_entries, 6, "{audit:#?}");
    let v = env.cli(&["audit", "verify"]);
    assert!(v.status.success(), "{}", describe(&v));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim_discovery_groups_bulk_and_bad_input() {
    let env = TestEnv::new(CONFIG, TEMPLATES).await;
    let s = env.start().await;
    let t = scim_token(&s).await;

    let spc = call(&s, &t, Method::GET, "/ServiceProviderConfig", None, &[]).await;
    assert_eq!(spc.status, StatusCode::OK);
    for feature in ["patch", "bulk", "filter", "sort", "etag"] {
        assert_eq!(spc.body[feature]["supported"], true, "{feature}");
    }
    assert_eq!(spc.body["changePassword"]["supported"], false);
    let rts = call(&s, &t, Method::GET, "/ResourceTypes", None, &[]).await;
    assert_eq!(rts.body["totalResults"], 2);
    let user_rt = call(&s, &t, Method::GET, "/ResourceTypes/User", None, &[]).await;
    assert_eq!(user_rt.body["schemaExtensions"][1]["schema"], TENURE);
    let schemas = call(&s, &t, Method::GET, "/Schemas", None, &[]).await;
    assert_eq!(schemas.body["totalResults"], 4);
    let user = call(&s, &t, Method::GET, &format!("/Schemas/{USER}"), None, &[]).await;
    let attrs: Vec<&str> = user.body["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert!(attrs.contains(&"userName") && !attrs.contains(&"password"));
    let a = call(&s, &t, Method::GET, "/Schemas/urn:nope", None, &[]).await;
    assert_scim_error(&a, 404, None);
    let a = call(&s, &t, Method::GET, "/Nope", None, &[]).await;
    assert_scim_error(&a, 404, None);
    let a = call(&s, &t, Method::DELETE, "/Users", None, &[]).await;
    assert_scim_error(&a, 405, None);

    // Bulk (RFC 7644 §3.7.2 shaped): a create, a PATCH of it by bulkId, a failure, and
    // failOnErrors stopping the rest.
    let bulk = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "failOnErrors": 1,
        "Operations": [
            { "method": "POST", "path": "/Users", "bulkId": "qwerty",
              "data": { "schemas": [USER], "userName": "alice@example.com", "displayName": "Alice" } },
            { "method": "PATCH", "path": "/Users/bulkId:qwerty",
              "data": { "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": [{ "op": "replace", "path": "title", "value": "Engineer" }] } },
            { "method": "POST", "path": "/Users", "bulkId": "ytrewq",
              "data": { "schemas": [USER], "userName": "ALICE@example.com" } },
            { "method": "POST", "path": "/Users", "bulkId": "never",
              "data": { "schemas": [USER], "userName": "zed@example.com" } }
        ]
    });
    let a = call(&s, &t, Method::POST, "/Bulk", Some(bulk), &[]).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let ops = a.body["Operations"].as_array().unwrap();
    assert_eq!(
        ops.len(),
        3,
        "failOnErrors stops after the first error: {}",
        a.body
    );
    assert_eq!(ops[0]["status"], "201");
    assert_eq!(ops[1]["status"], "200");
    assert_eq!(ops[1]["version"], "W/\"2\"");
    assert_eq!(ops[2]["status"], "409");
    assert_eq!(ops[2]["response"]["scimType"], "uniqueness");
    let alice = ops[0]["location"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let p = settled(&s, &alice).await;
    assert_eq!(
        (p["name"].as_str(), p["title"].as_str()),
        (Some("Alice"), Some("Engineer"))
    );
    let none = call(
        &s,
        &t,
        Method::GET,
        &format!(
            "/Users?filter={}",
            url_encode("userName eq \"zed@example.com\"")
        ),
        None,
        &[],
    )
    .await;
    assert_eq!(none.body["totalResults"], 0);

    // Groups: the entitlements, members are the people holding them; read-only.
    let g = call(
        &s,
        &t,
        Method::GET,
        "/Groups/directory:all-staff",
        None,
        &[],
    )
    .await;
    assert_eq!(g.status, StatusCode::OK, "{}", g.body);
    assert_eq!(g.body["members"][0]["value"], alice.as_str());
    let gs = call(
        &s,
        &t,
        Method::GET,
        &format!(
            "/Groups?filter={}",
            url_encode("displayName sw \"DIRECTORY:ENG\"")
        ),
        None,
        &[],
    )
    .await;
    assert_eq!(gs.body["totalResults"], 1);
    assert_eq!(gs.body["Resources"][0]["id"], "directory:engineering");
    // Writing an entitlement is refused, precisely; it stays as it was.
    for (method, body) in [
        (Method::PUT, Some(json!({ "displayName": "x" }))),
        (
            Method::PATCH,
            Some(
                json!({ "schemas": [PATCH_OP], "Operations": [{ "op": "add", "path": "members", "value": [{ "value": alice }] }] }),
            ),
        ),
        (Method::DELETE, None),
    ] {
        let a = call(&s, &t, method, "/Groups/directory:all-staff", body, &[]).await;
        assert_scim_error(&a, 400, Some("mutability"));
        assert!(
            a.body["detail"]
                .as_str()
                .unwrap()
                .contains("entitlement managed by tenure"),
            "{}",
            a.body
        );
    }

    // Bad input: precise errors, nothing written.
    for (body, status, kind) in [
        (json!([1, 2]), 400, Some("invalidSyntax")),
        (json!({ "schemas": [USER] }), 400, Some("invalidValue")),
        (
            json!({ "userName": "x@example.com", "nosuch": 1 }),
            400,
            Some("invalidSyntax"),
        ),
        (
            json!({ "userName": "x@example.com", "emails": "x@example.com", "active": 3 }),
            400,
            Some("invalidValue"),
        ),
        (
            json!({ "userName": "x@example.com", "emails": [{ "value": "a@example.com", "primary": true }, { "value": "b@example.com", "primary": true }] }),
            400,
            Some("invalidValue"),
        ),
        (
            json!({ "userName": "x@example.com", TENURE: { "workerType": "intern" } }),
            400,
            Some("invalidValue"),
        ),
        (
            json!({ "userName": "x@example.com", TENURE: { "endDate": "2027-13-01" } }),
            400,
            Some("invalidValue"),
        ),
        (
            json!({ "schemas": ["urn:nope"], "userName": "x@example.com" }),
            400,
            Some("invalidSyntax"),
        ),
    ] {
        let a = call(&s, &t, Method::POST, "/Users", Some(body.clone()), &[]).await;
        assert_scim_error(&a, status, kind);
    }
    let a = s
        .request(
            Method::POST,
            "/scim/v2/Users",
            Some(&t),
            &[("content-type", SCIM)],
            Some("{not json".into()),
        )
        .await;
    assert_scim_error(&a, 400, Some("invalidSyntax"));
    let a = s
        .request(
            Method::POST,
            "/scim/v2/Users",
            Some(&t),
            &[("content-type", "text/plain")],
            Some("{}".into()),
        )
        .await;
    assert_scim_error(&a, 415, None);
    let a = call(&s, &t, Method::GET, "/Users?startIndex=abc", None, &[]).await;
    assert_scim_error(&a, 400, Some("invalidValue"));
    let all = call(&s, &t, Method::GET, "/Users", None, &[]).await;
    assert_eq!(
        all.body["totalResults"], 1,
        "only alice was written: {}",
        all.body
    );
}

/// A change stores its event in its own transaction, so nothing waits in the outbox; what an
/// earlier version left there (it handed events over after the commit) is sent at start, once:
/// an event the engine already stored is a replay, not a second run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim_events_left_in_the_outbox_are_sent_at_start_once() {
    let env = TestEnv::new(CONFIG, TEMPLATES).await;
    let mut s = env.start().await;
    let t = scim_token(&s).await;
    let a = call(
        &s,
        &t,
        Method::POST,
        "/Users",
        Some(rfc_enterprise_user()),
        &[],
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let id = a.body["id"].as_str().unwrap().to_string();
    settled(&s, &id).await;
    s.stop();
    let queued = tamper(&env.database_url(), "DELETE FROM scim_outbox", &[]).await;
    assert_eq!(queued, 0, "the change stored its event itself");

    // As an earlier version left things after a crash right after the engine stored the hire,
    // and before it handed over a transfer:
    let key = format!("scim:{id}:1");
    let store = env.open_store().await;
    let stored = tenure_store::event_by_key(&mut store.reader().await.unwrap(), &key, None)
        .await
        .unwrap()
        .expect("the hire was stored with its change");
    store.close().await;
    let hire = tamper(
        &env.database_url(),
        "INSERT INTO scim_outbox (key, resource_id, event, created_at) VALUES ($1, $2, $3, 0)",
        &[Bind::Text(&key), Bind::Text(&id), Bind::Text(&stored.body)],
    )
    .await;
    assert_eq!(hire, 1, "the hire was stored with its change");
    let transfer = json!({ "type": "transfer", "person": { "id": id, "title": "Night Guide" }, "source": "scim" });
    let n = tamper(
        &env.database_url(),
        "INSERT INTO scim_outbox (key, resource_id, event, created_at) VALUES ($1, $2, $3, $4)",
        &[
            Bind::Text(&format!("scim:{id}:2")),
            Bind::Text(&id),
            Bind::Text(&transfer.to_string()),
            Bind::Int(i64::MAX),
        ],
    )
    .await;
    assert_eq!(n, 1);
    let s = env.start().await;
    let p = settled(&s, &id).await;
    assert_eq!(p["title"], "Night Guide");
    assert_eq!(
        run_kinds(&s, &id).await,
        ["hire", "transfer"],
        "the hire was not run twice"
    );
    let left = tamper(&env.database_url(), "DELETE FROM scim_outbox", &[]).await;
    assert_eq!(left, 0, "the outbox was emptied");
}

/// Sends a create for each userName at once (so they queue beside each other for the SCIM
/// writer); returns each name with the answer's status and body.
async fn create_at_once(
    s: &Server,
    t: &str,
    names: Vec<String>,
) -> Vec<(String, StatusCode, Value)> {
    let mut tasks = tokio::task::JoinSet::new();
    for name in names {
        let (http, base, t) = (s.http.clone(), s.base.clone(), t.to_string());
        tasks.spawn(async move {
            let body = json!({ "schemas": [USER], "userName": name, "active": true, "name": { "givenName": "C", "familyName": "Rowd" } });
            let res = http
                .post(format!("{base}/scim/v2/Users"))
                .header("authorization", format!("Bearer {t}"))
                .header("content-type", SCIM)
                .body(body.to_string())
                .send()
                .await
                .expect("request");
            let status = res.status();
            let body: Value = res.json().await.expect("JSON body");
            (name, status, body)
        });
    }
    let mut answers = Vec::new();
    while let Some(done) = tasks.join_next().await {
        answers.push(done.expect("task"));
    }
    answers
}

/// Creates sent at once are written together (one transaction, a savepoint each): a userName
/// sent twice among them is taken by one and refused to the other with 409, and every other
/// create is stored, answered 201, audited once and becomes one hire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_are_stored_and_a_duplicate_among_them_is_refused_alone() {
    let env = TestEnv::new(CONFIG, &[]).await;
    let s = env.start().await;
    let t = scim_token(&s).await;
    let mut names: Vec<String> = (0..40).map(|i| format!("crowd{i}@example.com")).collect();
    names.push("twin@example.com".into());
    names.push("Twin@Example.com".into());
    let mut created = Vec::new();
    let mut refused = Vec::new();
    for (name, status, body) in create_at_once(&s, &t, names).await {
        match status {
            StatusCode::CREATED => created.push((name, body["id"].as_str().unwrap().to_string())),
            StatusCode::CONFLICT => {
                assert_eq!(body["scimType"], "uniqueness", "{body}");
                refused.push(name);
            }
            other => panic!("{name}: {other} {body}"),
        }
    }
    assert_eq!(created.len(), 41, "{created:?}");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].eq_ignore_ascii_case("twin@example.com"));
    let all = call(&s, &t, Method::GET, "/Users?count=0", None, &[]).await;
    assert_eq!(all.body["totalResults"], 41, "{}", all.body);
    for (name, id) in &created {
        let a = call(&s, &t, Method::GET, &format!("/Users/{id}"), None, &[]).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        assert_eq!(a.body["userName"], name.as_str());
        assert_eq!(run_kinds(&s, id).await, ["hire"], "{name}");
    }
    let audited = s
        .items("/api/v1/audit")
        .await
        .iter()
        .filter(|e| e["action"] == "scim.user.created")
        .count();
    assert_eq!(
        audited, 41,
        "one audit entry per stored create, none for the refused one"
    );
}

/// New users queued together are written together; when the database refuses that write (here
/// a trigger refuses one userName, as a failing disk or a constraint would), the batch is rolled
/// back and every change written alone: the refused create fails by itself with a SCIM error and
/// every other one is stored, answered 201 and becomes one hire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_the_database_refuses_fails_alone_among_those_written_with_it() {
    let env = TestEnv::new(CONFIG, &[]).await;
    let s = env.start().await;
    let t = scim_token(&s).await;
    let url = env.database_url();
    if url.starts_with("postgres") {
        tamper(
            &url,
            "CREATE FUNCTION refuse_boom() RETURNS trigger AS $$ BEGIN
               IF NEW.user_name_ci LIKE 'boom%' THEN RAISE EXCEPTION 'refused by the test'; END IF;
               RETURN NEW; END $$ LANGUAGE plpgsql",
            &[],
        )
        .await;
        tamper(
            &url,
            "CREATE TRIGGER refuse_boom BEFORE INSERT ON scim_users FOR EACH ROW EXECUTE FUNCTION refuse_boom()",
            &[],
        )
        .await;
    } else {
        tamper(
            &url,
            "CREATE TRIGGER refuse_boom BEFORE INSERT ON scim_users
             WHEN NEW.user_name_ci LIKE 'boom%' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
            &[],
        )
        .await;
    }
    // Requests sent at once are nearly always written in one batch; go again until one was,
    // as the server's log tells.
    let mut stored = 0;
    for round in 0..10 {
        let mut names: Vec<String> = (0..20)
            .map(|i| format!("r{round}n{i}@example.com"))
            .collect();
        names.insert(10, format!("boom{round}@example.com"));
        for (name, status, body) in create_at_once(&s, &t, names).await {
            if name.starts_with("boom") {
                assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{name}: {body}");
                assert_eq!(body["schemas"][0], ERROR, "{body}");
            } else {
                assert_eq!(status, StatusCode::CREATED, "{name}: {body}");
                let id = body["id"].as_str().unwrap();
                assert_eq!(run_kinds(&s, id).await, ["hire"], "{name}");
                stored += 1;
            }
        }
        if s.log_text()
            .contains("writing new SCIM users together failed")
        {
            break;
        }
        assert!(round < 9, "no batch of creates was ever written together");
    }
    let all = call(&s, &t, Method::GET, "/Users?count=0", None, &[]).await;
    assert_eq!(all.body["totalResults"], stored, "{}", all.body);
    let audited = s
        .items("/api/v1/audit")
        .await
        .iter()
        .filter(|e| e["action"] == "scim.user.created")
        .count();
    assert_eq!(audited, stored, "one audit entry per stored create");
}

/// Verified tokens are cached briefly: a revocation through the API ends the token's access at
/// once; one through the CLI (another process) within the cache's bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_tokens_stop_working_through_the_api_at_once_and_the_cli_soon() {
    let env = TestEnv::new(CONFIG, &[]).await;
    let s = env.start().await;
    let (id, t) = scim_token_and_id(&s).await;
    let ok = call(&s, &t, Method::GET, "/Users", None, &[]).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    let a = s.delete(&format!("/api/v1/tokens/{id}")).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    let gone = call(&s, &t, Method::GET, "/Users", None, &[]).await;
    assert_scim_error(&gone, 401, None);

    let (id, t) = scim_token_and_id(&s).await;
    let ok = call(&s, &t, Method::GET, "/Users", None, &[]).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    let out = env.cli(&["token", "revoke", &id]);
    assert!(out.status.success(), "{}", describe(&out));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let a = call(&s, &t, Method::GET, "/Users", None, &[]).await;
        if a.status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        assert!(
            std::time::Instant::now() < deadline,
            "a token revoked by the CLI still works after 10 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
