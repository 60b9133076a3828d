//! Groups an identity provider pushes over SCIM, end to end against the real binary on SQLite
//! (and PostgreSQL with `TENURE_TEST_DATABASE_URL`): requests shaped like Entra ID's and Okta's
//! documented ones, ETags, uniqueness, unknown members, Bulk with bulkId references, lists, a
//! PATCH adding thousands of members, and groups driving access through role templates and
//! policy.

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
id = "crm"
connector = "sandbox"
retention = "delete"

[[entitlements]]
id = "crm:user"
system = "crm"
[[entitlements]]
id = "crm:sales"
system = "crm"
[[entitlements]]
id = "crm:payments"
system = "crm"
[[entitlements]]
id = "crm:admin"
system = "crm"

[[separation_of_duties]]
id = "sales-do-not-pay"
entitlements = ["crm:sales", "crm:payments"]
"#;

const TEMPLATES: &[(&str, &str)] = &[
    ("all", "entitlements = [\"crm:user\"]\n"),
    (
        "sales",
        "entitlements = [\"crm:sales\"]\n[match]\ngroups = [\"Sales EMEA\"]\n",
    ),
    (
        "payments",
        "entitlements = [\"crm:payments\"]\n[match]\ngroups = [\"Accounts Payable\"]\n",
    ),
    (
        "admins",
        "entitlements = [\"crm:admin\"]\n[match]\ngroups = [\"CRM Admins\"]\n",
    ),
];

/// Policy: everything is allowed, except crm:admin for members of the IdP's `Contractors`.
const POLICY: &str = r#"@id("base") permit (principal is Person, action == Action::"grant", resource is Entitlement);
@id("no-contractor-admins") forbid (principal is Person, action == Action::"grant", resource == Entitlement::"crm:admin")
when { principal.groups.contains("Contractors") };
"#;

async fn new_user(s: &Server, t: &str, name: &str, active: bool) -> String {
    let a = call(
        s,
        t,
        Method::POST,
        "/Users",
        Some(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": format!("{name}@example.com"),
            "displayName": name,
            "active": active,
        })),
        &[],
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    a.body["id"].as_str().unwrap().to_string()
}

/// Creates a group with these members; returns its path (`/Groups/{id}`).
async fn new_group(s: &Server, t: &str, name: &str, members: &[&String]) -> String {
    let members: Vec<Value> = members.iter().map(|m| json!({ "value": m })).collect();
    let a = call(
        s,
        t,
        Method::POST,
        "/Groups",
        Some(json!({ "schemas": [GROUP], "displayName": name, "members": members })),
        &[],
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    format!("/Groups/{}", a.body["id"].as_str().unwrap())
}

fn members(g: &Value) -> Vec<String> {
    let mut m: Vec<String> = g["members"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| m["value"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default();
    m.sort();
    m
}

fn sorted(ids: &[&String]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

fn patch(ops: Value) -> Option<Value> {
    Some(json!({ "schemas": [PATCH_OP], "Operations": ops }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_pushed_by_entra_and_okta_are_stored_with_their_members() {
    let env = TestEnv::new(CONFIG, TEMPLATES).await;
    let s = env.start().await;
    let t = scim_token(&s).await;
    // Inactive users: stored, never hired, so these group changes plan nothing.
    let alice = new_user(&s, &t, "alice", false).await;
    let bob = new_user(&s, &t, "bob", false).await;
    let carol = new_user(&s, &t, "carol", false).await;

    // Entra ID creates the group with no members, then adds them by PATCH.
    let a = call(
        &s,
        &t,
        Method::POST,
        "/Groups",
        Some(json!({
            "schemas": [GROUP],
            "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
            "displayName": "Sales EMEA",
            "members": []
        })),
        &[],
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let gid = a.body["id"].as_str().unwrap().to_string();
    assert_eq!(a.headers["etag"], "W/\"1\"");
    assert!(
        a.headers["location"]
            .to_str()
            .unwrap()
            .ends_with(&format!("/scim/v2/Groups/{gid}"))
    );
    assert_eq!(a.body["meta"]["resourceType"], "Group");
    let path = format!("/Groups/{gid}");

    // The same name in another case: 409 uniqueness.
    let a = call(
        &s,
        &t,
        Method::POST,
        "/Groups",
        Some(json!({ "schemas": [GROUP], "displayName": "sales emea" })),
        &[],
    )
    .await;
    assert_scim_error(&a, 409, Some("uniqueness"));

    // Entra ID: "Add" of several members in one operation.
    let a = call(
        &s,
        &t,
        Method::PATCH,
        &path,
        patch(json!([{ "op": "Add", "path": "members", "value": [{ "value": alice }, { "value": bob }] }])),
        &[],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(members(&a.body), sorted(&[&alice, &bob]));
    assert_eq!(a.headers["etag"], "W/\"2\"");

    // A member that names no known user: 400 with the value, nothing written.
    let a = call(
        &s,
        &t,
        Method::PATCH,
        &path,
        patch(json!([{ "op": "Add", "path": "members", "value": [{ "value": carol }, { "value": "no-such-user" }] }])),
        &[],
    )
    .await;
    assert_scim_error(&a, 400, Some("invalidValue"));
    assert!(
        a.body["detail"].as_str().unwrap().contains("no-such-user"),
        "{}",
        a.body
    );
    let g = call(&s, &t, Method::GET, &path, None, &[]).await;
    assert_eq!(members(&g.body), sorted(&[&alice, &bob]));
    assert_eq!(g.headers["etag"], "W/\"2\"");

    // Entra ID removes a member with a value filter in the path.
    let a = call(
        &s,
        &t,
        Method::PATCH,
        &path,
        patch(json!([{ "op": "Remove", "path": format!("members[value eq \"{bob}\"]") }])),
        &[],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(members(&a.body), vec![alice.clone()]);

    // Entra ID renames with a path; a stale If-Match is refused with 412.
    let a = call(
        &s,
        &t,
        Method::PATCH,
        &path,
        patch(json!([{ "op": "Replace", "path": "displayName", "value": "Sales DACH" }])),
        &[("if-match", "W/\"1\"")],
    )
    .await;
    assert_scim_error(&a, 412, None);
    let a = call(
        &s,
        &t,
        Method::PATCH,
        &path,
        patch(json!([{ "op": "Replace", "path": "displayName", "value": "Sales DACH" }])),
        &[("if-match", "W/\"3\"")],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["displayName"], "Sales DACH");

    // Okta replaces the whole member list, and the name with a value object naming the id.
    let a = call(
        &s,
        &t,
        Method::PATCH,
        &path,
        patch(json!([
            { "op": "replace", "path": "members", "value": [
                { "value": bob, "display": "bob@example.com" },
                { "value": carol, "display": "carol@example.com" }
            ] },
            { "op": "replace", "value": { "id": gid, "displayName": "Sales EMEA" } }
        ])),
        &[],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(members(&a.body), sorted(&[&bob, &carol]));
    assert_eq!(a.body["displayName"], "Sales EMEA");
    // Okta removes with the value filter too; Entra ID also with a value list.
    let a = call(
        &s,
        &t,
        Method::PATCH,
        &path,
        patch(json!([
            { "op": "remove", "path": format!("members[value eq \"{carol}\"]") },
            { "op": "remove", "path": "members", "value": [{ "value": bob }] }
        ])),
        &[],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.body.get("members").is_none(), "{}", a.body);

    // PUT replaces the group; the same PUT again is no new version.
    let put = json!({ "schemas": [GROUP], "displayName": "Sales EMEA", "externalId": "x1", "members": [{ "value": alice }] });
    let a = call(&s, &t, Method::PUT, &path, Some(put.clone()), &[]).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let version = a.headers["etag"].clone();
    let a = call(&s, &t, Method::PUT, &path, Some(put), &[]).await;
    assert_eq!(a.headers["etag"], version);
    let a = call(
        &s,
        &t,
        Method::GET,
        &path,
        None,
        &[("if-none-match", version.to_str().unwrap())],
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_MODIFIED);

    // Lists: the pushed group beside the entitlements; filters, sort, paging, projection.
    let list = |q: String| {
        let s = &s;
        let t = &t;
        async move {
            let a = call(s, t, Method::GET, &format!("/Groups?{q}"), None, &[]).await;
            assert_eq!(a.status, StatusCode::OK, "{q}: {}", a.body);
            a.body
        }
    };
    let all = list(String::new()).await;
    assert_eq!(all["totalResults"], 5, "{all}");
    let by_name = list(format!(
        "filter={}&excludedAttributes=members",
        url_encode("displayName eq \"sales emea\"")
    ))
    .await;
    assert_eq!(by_name["totalResults"], 1);
    assert_eq!(by_name["Resources"][0]["id"], gid.as_str());
    for (filter, want) in [
        ("displayName co \"LES em\"", 1),
        ("displayName sw \"sales\"", 1),
        ("displayName ew \"EMEA\"", 1),
        ("displayName ew \"emeax\"", 0),
        ("displayName co \"es e\" and externalId eq \"x1\"", 1),
        ("displayName co \"es e\" and externalId eq \"x2\"", 0),
    ] {
        let got = list(format!("filter={}", url_encode(filter))).await;
        assert_eq!(got["totalResults"], want, "{filter}: {got}");
    }
    assert!(by_name["Resources"][0].get("members").is_none());
    let by_member = list(format!(
        "filter={}",
        url_encode(&format!("members[value eq \"{alice}\"]"))
    ))
    .await;
    assert_eq!(by_member["totalResults"], 1, "{by_member}");
    let by_external = list(format!("filter={}", url_encode("externalId eq \"x1\""))).await;
    assert_eq!(by_external["totalResults"], 1);
    // Times are read only when a filter names them: the pushed groups have them.
    let dated = all["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["meta"]["lastModified"].is_string())
        .count();
    assert!(dated > 0, "{all}");
    let by_time = list(format!(
        "filter={}",
        url_encode("meta.lastModified gt \"2000-01-01T00:00:00Z\"")
    ))
    .await;
    assert_eq!(by_time["totalResults"], dated, "{by_time}");
    let page = list(
        "sortBy=displayName&sortOrder=descending&startIndex=1&count=2&attributes=displayName"
            .into(),
    )
    .await;
    assert_eq!(page["totalResults"], 5);
    assert_eq!(page["itemsPerPage"], 2);
    assert_eq!(page["Resources"][0]["displayName"], "Sales EMEA");
    assert!(page["Resources"][0].get("members").is_none());

    // Bulk: a user, a group naming it by bulkId, a PATCH of that group by bulkId.
    let bulk = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            { "method": "POST", "path": "/Users", "bulkId": "u1",
              "data": { "userName": "dave@example.com", "active": false } },
            { "method": "POST", "path": "/Groups", "bulkId": "g1",
              "data": { "schemas": [GROUP], "displayName": "Tour Guides", "members": [{ "type": "User", "value": "bulkId:u1" }] } },
            { "method": "PATCH", "path": "/Groups/bulkId:g1",
              "data": { "schemas": [PATCH_OP], "Operations": [{ "op": "add", "path": "members", "value": [{ "value": alice }] }] } },
            { "method": "POST", "path": "/Groups", "bulkId": "g2",
              "data": { "schemas": [GROUP], "displayName": "tour guides" } },
            { "method": "DELETE", "path": "/Groups/crm:user" }
        ]
    });
    let a = call(&s, &t, Method::POST, "/Bulk", Some(bulk), &[]).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let ops = a.body["Operations"].as_array().unwrap();
    let statuses: Vec<&str> = ops.iter().map(|o| o["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["201", "201", "200", "409", "400"], "{}", a.body);
    assert_eq!(ops[3]["response"]["scimType"], "uniqueness");
    assert_eq!(ops[4]["response"]["scimType"], "mutability");
    let guides = call(
        &s,
        &t,
        Method::GET,
        ops[1]["location"]
            .as_str()
            .unwrap()
            .split("/scim/v2")
            .nth(1)
            .unwrap(),
        None,
        &[],
    )
    .await;
    assert_eq!(guides.body["displayName"], "Tour Guides");
    assert_eq!(members(&guides.body).len(), 2, "{}", guides.body);
    assert_eq!(ops[2]["version"], "W/\"2\"");

    // Bad input: precise errors.
    let a = call(
        &s,
        &t,
        Method::POST,
        "/Groups",
        Some(json!({ "schemas": [GROUP], "displayName": "Nested", "members": [{ "value": gid, "type": "Group" }] })),
        &[],
    )
    .await;
    assert_scim_error(&a, 400, Some("invalidValue"));
    let a = call(
        &s,
        &t,
        Method::POST,
        "/Groups",
        Some(json!({ "schemas": [GROUP] })),
        &[],
    )
    .await;
    assert_scim_error(&a, 400, Some("invalidValue"));

    // Search at the root: users, then groups, in one list; a filter applies where it can.
    let search = |body: Value| {
        let s = &s;
        let t = &t;
        async move { call(s, t, Method::POST, "/.search", Some(body), &[]).await }
    };
    let req = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
    let a = search(json!({ "schemas": [req], "filter": "displayName eq \"Sales EMEA\"" })).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["totalResults"], 1, "{}", a.body);
    assert_eq!(a.body["Resources"][0]["id"], gid.as_str());
    let a = search(json!({ "schemas": [req], "filter": "userName sw \"alice\"" })).await;
    assert_eq!(a.body["totalResults"], 1, "{}", a.body);
    assert_eq!(a.body["Resources"][0]["id"], alice.as_str());
    // Everything: 4 users and 6 groups (4 entitlements, 2 pushed); the second page of 8 holds
    // the last two groups.
    let a = search(json!({ "schemas": [req], "startIndex": 9, "count": 8 })).await;
    assert_eq!(a.body["totalResults"], 10, "{}", a.body);
    assert_eq!(a.body["itemsPerPage"], 2, "{}", a.body);
    assert_eq!(a.body["Resources"][0]["meta"]["resourceType"], "Group");
    let a = search(json!({ "schemas": [req], "filter": "nosuch eq 1" })).await;
    assert_scim_error(&a, 400, Some("invalidFilter"));
    let a = search(json!({ "schemas": [req], "sortBy": "displayName" })).await;
    assert_scim_error(&a, 400, Some("invalidValue"));

    // DELETE: gone, and its name is free again.
    let a = call(&s, &t, Method::DELETE, &path, None, &[]).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    let a = call(&s, &t, Method::GET, &path, None, &[]).await;
    assert_scim_error(&a, 404, None);
    let a = call(
        &s,
        &t,
        Method::POST,
        "/Groups",
        Some(json!({ "schemas": [GROUP], "displayName": "Sales EMEA" })),
        &[],
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
}

/// One PATCH adds 5,000 members (Entra ID sends members in batches; a full sync can be this
/// large), another removes them all; above the bound a request is refused before any work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_adds_thousands_of_members_at_once() {
    let env = TestEnv::new(CONFIG, TEMPLATES).await;
    let s = env.start().await;
    let t = scim_token(&s).await;
    let mut users = Vec::new();
    for batch in 0..5 {
        let ops: Vec<Value> = (0..1000)
            .map(|i| {
                json!({ "method": "POST", "path": "/Users", "bulkId": format!("u{i}"),
                        "data": { "userName": format!("u{batch}-{i}@example.com"), "active": false } })
            })
            .collect();
        let a = call(
            &s,
            &t,
            Method::POST,
            "/Bulk",
            Some(json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": ops })),
            &[],
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        for op in a.body["Operations"].as_array().unwrap() {
            assert_eq!(op["status"], "201", "{op}");
            users.push(
                op["location"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_string(),
            );
        }
    }
    let a = call(
        &s,
        &t,
        Method::POST,
        "/Groups",
        Some(json!({ "schemas": [GROUP], "displayName": "Everyone" })),
        &[],
    )
    .await;
    let path = format!("/Groups/{}", a.body["id"].as_str().unwrap());
    let values: Vec<Value> = users.iter().map(|u| json!({ "value": u })).collect();
    let started = std::time::Instant::now();
    let a = call(
        &s,
        &t,
        Method::PATCH,
        &path,
        patch(json!([{ "op": "add", "path": "members", "value": values }])),
        &[],
    )
    .await;
    eprintln!("PATCH adding 5,000 members: {:?}", started.elapsed());
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["members"].as_array().unwrap().len(), 5000);
    let a = call(
        &s,
        &t,
        Method::GET,
        &format!("{path}?excludedAttributes=members"),
        None,
        &[],
    )
    .await;
    assert!(a.body.get("members").is_none());
    let a = call(
        &s,
        &t,
        Method::PATCH,
        &path,
        patch(json!([{ "op": "remove", "path": "members" }])),
        &[],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.body.get("members").is_none());

    // Above the bound of 20,000 member values per request: 413, nothing read or written.
    let values: Vec<Value> = (0..20_001)
        .map(|i| json!({ "value": format!("u{i}") }))
        .collect();
    let a = call(
        &s,
        &t,
        Method::PATCH,
        &path,
        patch(json!([{ "op": "add", "path": "members", "value": values }])),
        &[],
    )
    .await;
    assert_scim_error(&a, 413, None);
}

async fn grants_of(s: &Server, id: &str) -> Vec<String> {
    for run in s.items(&format!("/api/v1/runs?person={id}")).await {
        s.wait_run(run["id"].as_str().unwrap()).await;
    }
    let p = s.person(id).await;
    let mut g: Vec<String> = grants(&p)
        .into_iter()
        .filter(|(_, state)| state == "granted")
        .map(|(e, _)| e)
        .collect();
    g.sort();
    g
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_matching_a_group_grants_on_membership_and_revokes_on_removal() {
    let env = TestEnv::new(CONFIG, TEMPLATES).await;
    let dir = env.dir.path().join("policies");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("base.cedar"), POLICY).unwrap();
    let s = env.start().await;
    let t = scim_token(&s).await;
    let alice = new_user(&s, &t, "alice", true).await;
    assert_eq!(grants_of(&s, &alice).await, ["crm:user"]);

    let sales = new_group(&s, &t, "Sales EMEA", &[&alice]).await;
    assert_eq!(grants_of(&s, &alice).await, ["crm:sales", "crm:user"]);
    let p = s.person(&alice).await;
    assert_eq!(p["attributes"]["groups"], json!(["Sales EMEA"]), "{p}");

    // The audit trail names the group as the reason.
    let audit = s
        .items(&format!(
            "/api/v1/audit?person={alice}&action=scim.group.membership"
        ))
        .await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0]["reason"], "added to group `Sales EMEA`");

    // Separation of duties holds on this path: Accounts Payable would complete a forbidden
    // pair, so crm:payments is not granted while crm:sales is held.
    let payable = new_group(&s, &t, "Accounts Payable", &[&alice]).await;
    assert_eq!(grants_of(&s, &alice).await, ["crm:sales", "crm:user"]);

    // Cedar reads principal.groups: in Contractors, crm:admin is forbidden though templated.
    let contractors = new_group(&s, &t, "Contractors", &[&alice]).await;
    new_group(&s, &t, "CRM Admins", &[&alice]).await;
    assert_eq!(grants_of(&s, &alice).await, ["crm:sales", "crm:user"]);
    // Out of Contractors (Okta's full replace of members, with none left), crm:admin follows.
    let a = call(
        &s,
        &t,
        Method::PATCH,
        &contractors,
        patch(json!([{ "op": "replace", "path": "members", "value": [] }])),
        &[],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(
        grants_of(&s, &alice).await,
        ["crm:admin", "crm:sales", "crm:user"]
    );

    // Removed from Sales EMEA (Entra ID's filtered remove): crm:sales is revoked, and with it
    // gone Accounts Payable's crm:payments no longer completes the forbidden pair.
    let a = call(
        &s,
        &t,
        Method::PATCH,
        &sales,
        patch(json!([{ "op": "Remove", "path": format!("members[value eq \"{alice}\"]") }])),
        &[],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(
        grants_of(&s, &alice).await,
        ["crm:admin", "crm:payments", "crm:user"]
    );

    // A group the identity provider deletes takes away what it gave.
    let a = call(&s, &t, Method::DELETE, &payable, None, &[]).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    assert_eq!(grants_of(&s, &alice).await, ["crm:admin", "crm:user"]);
    let audit = s
        .items(&format!(
            "/api/v1/audit?person={alice}&action=scim.group.membership"
        ))
        .await;
    assert!(
        audit
            .iter()
            .any(|e| e["reason"] == "group `Accounts Payable` deleted"),
        "{audit:?}"
    );
}

/// The `groups` a user lists, as (value, display) pairs in order.
fn user_groups(u: &Value) -> Vec<(String, String)> {
    u["groups"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|g| {
                    assert_eq!(g["type"], "direct", "{g}");
                    let v = g["value"].as_str().unwrap().to_string();
                    assert!(
                        g["$ref"]
                            .as_str()
                            .is_some_and(|r| r.ends_with(&format!("/scim/v2/Groups/{v}"))),
                        "{g}"
                    );
                    (v, g["display"].as_str().unwrap().to_string())
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_lists_its_groups_and_leaves_them_when_deleted() {
    let env = TestEnv::new(CONFIG, TEMPLATES).await;
    let s = env.start().await;
    let t = scim_token(&s).await;
    let alice = new_user(&s, &t, "alice", true).await;
    let bob = new_user(&s, &t, "bob", false).await;
    let sales = new_group(&s, &t, "Sales EMEA", &[&alice, &bob]).await;
    let contractors = new_group(&s, &t, "Contractors", &[&alice]).await;
    let id = |path: &str| path.trim_start_matches("/Groups/").to_string();
    assert_eq!(grants_of(&s, &alice).await, ["crm:sales", "crm:user"]);

    // A user's groups: the identity provider's (by displayName), then the entitlements held,
    // each displayed by the name its group is served with.
    let expected = vec![
        (id(&contractors), "Contractors".to_string()),
        (id(&sales), "Sales EMEA".to_string()),
        ("crm:sales".to_string(), "crm:sales".to_string()),
        ("crm:user".to_string(), "crm:user".to_string()),
    ];
    let a = call(&s, &t, Method::GET, &format!("/Users/{alice}"), None, &[]).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(user_groups(&a.body), expected, "{}", a.body);
    let filter = url_encode("userName eq \"alice@example.com\"");
    let a = call(
        &s,
        &t,
        Method::GET,
        &format!("/Users?filter={filter}"),
        None,
        &[],
    )
    .await;
    assert_eq!(user_groups(&a.body["Resources"][0]), expected, "{}", a.body);
    let a = call(&s, &t, Method::GET, "/Users?sortBy=userName", None, &[]).await;
    assert_eq!(user_groups(&a.body["Resources"][0]), expected, "{}", a.body);
    // bob was never hired: his groups, no entitlements.
    let a = call(&s, &t, Method::GET, &format!("/Users/{bob}"), None, &[]).await;
    assert_eq!(
        user_groups(&a.body),
        [(id(&sales), "Sales EMEA".to_string())],
        "{}",
        a.body
    );
    // The entitlement's group shows the display name the user listed.
    let a = call(&s, &t, Method::GET, "/Groups/crm:user", None, &[]).await;
    assert_eq!(a.body["displayName"], "crm:user", "{}", a.body);

    // Deleting alice takes her out of both groups in the same transaction: new versions, and
    // no read lists her any more.
    let before = call(&s, &t, Method::GET, &sales, None, &[]).await;
    let a = call(
        &s,
        &t,
        Method::DELETE,
        &format!("/Users/{alice}"),
        None,
        &[],
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    let a = call(&s, &t, Method::GET, &sales, None, &[]).await;
    assert_eq!(members(&a.body), std::slice::from_ref(&bob), "{}", a.body);
    assert_ne!(a.body["meta"]["version"], before.body["meta"]["version"]);
    assert_ne!(a.headers["etag"], before.headers["etag"]);
    let a = call(&s, &t, Method::GET, &contractors, None, &[]).await;
    assert_eq!(members(&a.body), Vec::<String>::new(), "{}", a.body);
    let filter = url_encode(&format!("members.value eq \"{alice}\""));
    let a = call(
        &s,
        &t,
        Method::GET,
        &format!("/Groups?filter={filter}"),
        None,
        &[],
    )
    .await;
    // (Entitlements she still holds list her until her leave revokes them.)
    let found: Vec<&str> = a.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["id"].as_str())
        .collect();
    assert!(
        !found.contains(&id(&sales).as_str()) && !found.contains(&id(&contractors).as_str()),
        "{}",
        a.body
    );
    let audit = s
        .items(&format!(
            "/api/v1/audit?person={alice}&action=scim.group.membership"
        ))
        .await;
    let reasons: Vec<&str> = audit.iter().filter_map(|e| e["reason"].as_str()).collect();
    assert!(
        reasons.contains(&"removed from group `Sales EMEA`: user deleted")
            && reasons.contains(&"removed from group `Contractors`: user deleted"),
        "{audit:?}"
    );
    let updated = s.items("/api/v1/audit?action=scim.group.updated").await;
    assert!(
        updated
            .iter()
            .any(|e| e["reason"] == "SCIM group `Sales EMEA`: member user deleted"),
        "{updated:?}"
    );
    // Her leave revokes what she held.
    assert_eq!(grants_of(&s, &alice).await, Vec::<String>::new());

    // A Bulk delete does the same.
    let bulk = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [{ "method": "DELETE", "path": format!("/Users/{bob}") }],
    });
    let a = call(&s, &t, Method::POST, "/Bulk", Some(bulk), &[]).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["Operations"][0]["status"], "204", "{}", a.body);
    let a = call(&s, &t, Method::GET, &sales, None, &[]).await;
    assert_eq!(members(&a.body), Vec::<String>::new(), "{}", a.body);
}

/// The (action, entitlement) steps a what-if lists for `person`.
fn planned(w: &Value, person: &str) -> Vec<(String, String)> {
    w["plans"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["person_id"] == person)
        .flat_map(|p| p["steps"].as_array().unwrap().iter())
        .map(|s| {
            (
                s["action"].as_str().unwrap().to_string(),
                s["entitlement"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_what_if_shows_what_a_group_change_would_do_and_stores_nothing() {
    let env = TestEnv::new(CONFIG, TEMPLATES).await;
    let s = env.start().await;
    let t = scim_token(&s).await;
    let alice = new_user(&s, &t, "alice", true).await;
    let bob = new_user(&s, &t, "bob", false).await;
    assert_eq!(grants_of(&s, &alice).await, ["crm:user"]);
    let runs = s.items("/api/v1/runs").await.len();
    let ask = |body: Value| {
        let s = &s;
        async move { s.post("/api/v1/simulate/group", &body).await }
    };

    // Adding alice to a group the identity provider has not pushed yet: the template matching
    // it grants crm:sales. bob, never hired, has no access to re-plan.
    let a = ask(json!({ "group": "Sales EMEA", "add": [alice, bob] })).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["group_id"], Value::Null, "{}", a.body);
    assert_eq!(a.body["members_added"], json!(sorted(&[&alice, &bob])));
    assert_eq!(
        planned(&a.body, &alice),
        [("grant".to_string(), "crm:sales".to_string())],
        "{}",
        a.body
    );
    assert_eq!(
        a.body["not_planned"][0]["person_id"],
        bob.as_str(),
        "{}",
        a.body
    );
    assert_eq!(
        (&a.body["people_changed"], &a.body["grants"]),
        (&json!(1), &json!(1))
    );
    // Nothing was stored.
    let filter = url_encode("displayName eq \"Sales EMEA\"");
    let a = call(
        &s,
        &t,
        Method::GET,
        &format!("/Groups?filter={filter}"),
        None,
        &[],
    )
    .await;
    assert_eq!(a.body["totalResults"], 0, "{}", a.body);
    assert_eq!(s.items("/api/v1/runs").await.len(), runs);
    assert_eq!(grants_of(&s, &alice).await, ["crm:user"]);

    // Once alice is in the group, removing her (by displayName, any case), or replacing the
    // members by none, shows the revoke; nothing changes.
    let sales = new_group(&s, &t, "Sales EMEA", &[&alice]).await;
    assert_eq!(grants_of(&s, &alice).await, ["crm:sales", "crm:user"]);
    let runs = s.items("/api/v1/runs").await.len();
    let gid = sales.trim_start_matches("/Groups/");
    for body in [
        json!({ "group": "sales emea", "remove": [alice] }),
        json!({ "group": gid, "replace": [] }),
    ] {
        let a = ask(body).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        assert_eq!(a.body["group_id"], gid, "{}", a.body);
        assert_eq!(a.body["members_removed"], json!([alice]), "{}", a.body);
        assert_eq!(
            planned(&a.body, &alice),
            [("revoke".to_string(), "crm:sales".to_string())],
            "{}",
            a.body
        );
    }
    // Adding a member already in it changes nothing.
    let a = ask(json!({ "group": gid, "add": [alice] })).await;
    assert_eq!(a.body["members_added"], json!([]), "{}", a.body);
    assert_eq!(a.body["people_changed"], 0, "{}", a.body);
    let g = call(&s, &t, Method::GET, &sales, None, &[]).await;
    assert_eq!(members(&g.body), std::slice::from_ref(&alice));
    assert_eq!(s.items("/api/v1/runs").await.len(), runs);
    assert_eq!(grants_of(&s, &alice).await, ["crm:sales", "crm:user"]);

    // The CLI asks the same of a running tenure.
    let out = env
        .command()
        .env("TENURE_TOKEN", TOKEN)
        .args(["plan", "--url", &s.base, "--group", "Sales EMEA"])
        .args(["--remove-member", &alice])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        planned(&plan, &alice),
        [("revoke".to_string(), "crm:sales".to_string())],
        "{plan}"
    );

    // Refused: a member who is no user, add with replace, no change, a person both added
    // and removed.
    for (body, field) in [
        (json!({ "group": gid, "add": ["nobody"] }), "add"),
        (
            json!({ "group": gid, "add": [alice], "replace": [] }),
            "replace",
        ),
        (json!({ "group": gid }), "body"),
        (
            json!({ "group": gid, "add": [bob], "remove": [bob] }),
            "remove",
        ),
        (json!({ "group": " ", "add": [bob] }), "group"),
    ] {
        let a = ask(body).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
        assert_eq!(a.body["error"]["field"], field, "{}", a.body);
    }
}
