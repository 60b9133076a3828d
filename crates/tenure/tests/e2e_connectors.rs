//! End to end on the real binary: manual tasks (API, CLI, restart while waiting) and HR
//! webhook mappings with Workday- and BambooHR-shaped payloads.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Instant;

const MANUAL: &str = r#"
[[systems]]
id = "vpn"
name = "Client VPN"
connector = "manual"
[systems.settings]
team = "it-desk"
sla_minutes = 60
[systems.settings.titles]
grant = "Give {{person.name}} the {{entitlement.name}} VPN profile"

[[entitlements]]
id = "vpn:acme"
system = "vpn"
name = "acme-profile"
"#;

/// Waits until `n` open tasks are listed (polling the list with the run long-poll as pace).
async fn open_tasks(s: &Server, run_id: &str, n: usize) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let tasks = s.get("/api/v1/tasks?team=it-desk").await["tasks"]
            .as_array()
            .cloned()
            .unwrap();
        if tasks.len() >= n {
            return tasks;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "no task after {:?}: {}",
            start.elapsed(),
            s.log_text()
        );
        // Returns at once when the run ends, else after a short while.
        let run = s.get(&format!("/api/v1/runs/{run_id}?wait_ms=200")).await;
        assert!(
            !is_terminal(&run),
            "the run ended without waiting for its task: {run:#}"
        );
    }
}

fn cli(s: &Server, token: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(BIN)
        .args(args)
        .args(["--url", &s.base])
        .env("TENURE_TOKEN", token)
        .output()
        .expect("running tenure tasks")
}

#[tokio::test]
async fn manual_steps_wait_for_their_tasks_across_a_restart() {
    let env = TestEnv::new(MANUAL, &[("all", "entitlements = [\"vpn:acme\"]\n")]).await;
    let mut s = env.start().await;
    let run = s.accept(&hire("ada", "Engineering")).await;

    // Phase 0: the account is a task for the team; the run waits.
    let tasks = open_tasks(&s, &run, 1).await;
    assert_eq!(tasks.len(), 1);
    let t = &tasks[0];
    assert_eq!(t["action"], "create_account");
    assert_eq!(t["team"], "it-desk");
    assert_eq!(t["overdue"], false);
    assert!(
        t["title"].as_str().unwrap().contains("Client VPN")
            || t["title"].as_str().unwrap().contains("vpn"),
        "{t}"
    );

    // A restart while waiting loses nothing: the same task is still open, the run still waits.
    s.stop();
    let s = env.start().await;
    let again = open_tasks(&s, &run, 1).await;
    assert_eq!(again[0]["id"], t["id"]);

    // Completing needs tasks:write; a read token is refused.
    let read = String::from_utf8(
        env.cli(&["token", "create", "--name", "viewer", "--scope", "read"])
            .stdout,
    )
    .unwrap();
    let read = read
        .lines()
        .find(|l| l.starts_with("tnr_"))
        .expect("a token")
        .trim()
        .to_string();
    let a = s
        .request(
            reqwest::Method::POST,
            &format!("/api/v1/tasks/{}/complete", t["id"].as_str().unwrap()),
            Some(&read),
            &[],
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    let denied = cli(&s, &read, &["tasks", "complete", t["id"].as_str().unwrap()]);
    assert!(!denied.status.success());
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("tasks:write"),
        "{}",
        describe(&denied)
    );

    // Done through the CLI: the run moves on to the grant, which is a task of its own.
    let out = cli(
        &s,
        TOKEN,
        &[
            "tasks",
            "complete",
            t["id"].as_str().unwrap(),
            "--message",
            "account made",
        ],
    );
    assert!(out.status.success(), "{}", describe(&out));
    let tasks = open_tasks(&s, &run, 1).await;
    assert_eq!(tasks[0]["action"], "grant");
    assert_eq!(
        tasks[0]["title"],
        "Give Person ada the acme-profile VPN profile"
    );
    let listed = cli(&s, TOKEN, &["tasks", "list", "--team", "it-desk"]);
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("acme-profile"),
        "{}",
        describe(&listed)
    );
    // Completing twice is a conflict; an unknown task is not found.
    let first = &again[0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        s.post(&format!("/api/v1/tasks/{first}/complete"), &json!({}))
            .await
            .status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        s.post("/api/v1/tasks/op_nope/complete", &json!({}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // Failing needs a reason.
    let grant_id = tasks[0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        s.post(&format!("/api/v1/tasks/{grant_id}/fail"), &json!({}))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    let a = s
        .post(
            &format!("/api/v1/tasks/{grant_id}/complete"),
            &json!({"message": "profile issued"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["state"], "done");

    let done = s.wait_run(&run).await;
    assert_eq!(done["state"], "succeeded", "{done:#}");
    let ada = s.person("ada").await;
    assert_eq!(grants(&ada)["vpn:acme"], "granted");
    // The trail has who did what.
    let audit = s.items("/api/v1/audit?person=ada").await;
    let actions: Vec<&str> = audit.iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(
        actions.iter().filter(|a| **a == "task.opened").count(),
        2,
        "{actions:?}"
    );
    assert_eq!(
        actions.iter().filter(|a| **a == "task.completed").count(),
        2,
        "{actions:?}"
    );
    assert!(actions.contains(&"step.waiting"));
}

#[tokio::test]
async fn a_failed_task_fails_the_run_and_a_retry_reopens_it() {
    let env = TestEnv::new(MANUAL, &[("all", "entitlements = [\"vpn:acme\"]\n")]).await;
    let s = env.start().await;
    let run = s.accept(&hire("bob", "Sales")).await;
    let t = open_tasks(&s, &run, 1).await[0].clone();
    let id = t["id"].as_str().unwrap().to_string();
    let out = cli(
        &s,
        TOKEN,
        &["tasks", "fail", &id, "--reason", "no licence left"],
    );
    assert!(out.status.success(), "{}", describe(&out));
    let failed = s.wait_run(&run).await;
    assert_eq!(failed["state"], "failed", "{failed:#}");
    assert!(failed.to_string().contains("no licence left"), "{failed:#}");
    // The operator retries: the team gets the task back.
    let a = s
        .post(&format!("/api/v1/runs/{run}/retry"), &json!({}))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let reopened = open_tasks(&s, &run, 1).await;
    assert_eq!(reopened[0]["id"], id.as_str());
    assert_eq!(reopened[0]["state"], "open");
}

#[tokio::test]
async fn a_leave_withdraws_the_task_of_a_hire_still_waiting() {
    let env = TestEnv::new(MANUAL, &[("all", "entitlements = [\"vpn:acme\"]\n")]).await;
    let s = env.start().await;
    let hire_run = s.accept(&hire("cy", "Sales")).await;
    let t = open_tasks(&s, &hire_run, 1).await[0].clone();
    // She leaves before the desk got to it: the hire is superseded, the task withdrawn.
    let leave = s
        .apply(&json!({"type": "leave", "person": {"id": "cy"}}))
        .await;
    assert!(is_terminal(&leave), "{leave:#}");
    let hired = s.wait_run(&hire_run).await;
    assert_ne!(hired["state"], "succeeded", "{hired:#}");
    let all = s.get("/api/v1/tasks?state=all").await["tasks"]
        .as_array()
        .cloned()
        .unwrap();
    let first = all
        .iter()
        .find(|x| x["id"] == t["id"])
        .expect("the hire's task");
    assert_eq!(first["state"], "cancelled", "{all:#?}");
    assert!(
        s.get("/api/v1/tasks").await["tasks"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let a = s
        .post(
            &format!("/api/v1/tasks/{}/complete", t["id"].as_str().unwrap()),
            &json!({}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.body);
}

/// A manual system beside an automated one: each system advances on its own.
const MANUAL_AND_DIRECTORY: &str = r#"
[[systems]]
id = "vpn"
connector = "manual"
[systems.settings]
team = "it-desk"

[[systems]]
id = "directory"
connector = "sandbox"

[[entitlements]]
id = "vpn:acme"
system = "vpn"
[[entitlements]]
id = "directory:staff"
system = "directory"
[[entitlements]]
id = "directory:wiki"
system = "directory"
"#;

const BOTH: &[(&str, &str)] = &[(
    "all",
    "entitlements = [\"vpn:acme\", \"directory:staff\", \"directory:wiki\"]\n",
)];

/// The run's per-system summary as system -> state.
fn system_states(run: &Value) -> std::collections::BTreeMap<String, String> {
    run["systems"]
        .as_array()
        .expect("systems")
        .iter()
        .map(|x| {
            (
                x["system"].as_str().expect("system").to_string(),
                x["state"].as_str().expect("state").to_string(),
            )
        })
        .collect()
}

fn system<'a>(run: &'a Value, id: &str) -> &'a Value {
    run["systems"]
        .as_array()
        .expect("systems")
        .iter()
        .find(|x| x["system"] == id)
        .unwrap_or_else(|| panic!("no system `{id}` in {run:#}"))
}

/// Waits until the run reports `want` per system (pacing with the run's long-poll); returns it.
async fn until_systems(s: &Server, run_id: &str, want: &[(&str, &str)]) -> Value {
    let start = Instant::now();
    loop {
        let run = s.get(&format!("/api/v1/runs/{run_id}?wait_ms=200")).await;
        if system_states(&run) == map(want) {
            return run;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "systems still {:?} after {:?}: {run:#}",
            system_states(&run),
            start.elapsed()
        );
    }
}

/// How many calls the sandbox `directory` has had (the manual system keeps no such counters).
async fn directory_calls(s: &Server) -> i64 {
    let systems = s.get("/api/v1/systems").await;
    systems["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|x| x["id"] == "directory")
        .and_then(|x| x["stats"]["calls"].as_i64())
        .expect("the directory's call count")
}

/// Completes the run's open tasks one by one until the run ends; returns it.
async fn complete_tasks_until_done(s: &Server, run_id: &str) -> Value {
    let start = Instant::now();
    loop {
        let run = s.get(&format!("/api/v1/runs/{run_id}?wait_ms=200")).await;
        if is_terminal(&run) {
            return run;
        }
        let open = s.get("/api/v1/tasks?team=it-desk").await["tasks"]
            .as_array()
            .cloned()
            .unwrap();
        for t in open {
            let a = s
                .post(
                    &format!("/api/v1/tasks/{}/complete", t["id"].as_str().unwrap()),
                    &json!({}),
                )
                .await;
            assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        }
        assert!(
            start.elapsed() < PATIENCE,
            "run {run_id} still {} after {:?}: {run:#}",
            run["state"],
            start.elapsed()
        );
    }
}

#[tokio::test]
async fn an_open_task_holds_back_only_its_own_system_and_a_retry_finishes_it() {
    let env = TestEnv::new(MANUAL_AND_DIRECTORY, BOTH).await;
    let s = env.start().await;
    let run = s.accept(&hire("dee", "Sales")).await;
    // The desk has not made the VPN account yet; the directory's account and both its grants
    // are made meanwhile.
    let waiting = until_systems(&s, &run, &[("directory", "done"), ("vpn", "waiting")]).await;
    assert_eq!(waiting["state"], "running", "{waiting:#}");
    let vpn = system(&waiting, "vpn");
    assert_eq!(
        (&vpn["steps"], &vpn["done"], &vpn["waiting"], &vpn["held"]),
        (&json!(2), &json!(0), &json!(1), &json!(1)),
        "{vpn}"
    );
    assert_eq!(system(&waiting, "directory")["done"], 3);
    let dee = s.person("dee").await;
    assert_eq!(grants(&dee)["directory:staff"], "granted", "{dee:#}");
    assert_eq!(grants(&dee)["directory:wiki"], "granted", "{dee:#}");
    assert_eq!(grants(&dee)["vpn:acme"], "pending", "{dee:#}");
    assert_eq!(accounts(&dee)["directory"], "active");

    // The desk cannot make it: the VPN fails, the directory stays done.
    let t = open_tasks(&s, &run, 1).await[0].clone();
    assert_eq!(t["action"], "create_account");
    let a = s
        .post(
            &format!("/api/v1/tasks/{}/fail", t["id"].as_str().unwrap()),
            &json!({"message": "no licence left"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let failed = s.wait_run(&run).await;
    assert_eq!(failed["state"], "failed", "{failed:#}");
    assert_eq!(
        system_states(&failed),
        map(&[("directory", "done"), ("vpn", "failed")])
    );
    let vpn = system(&failed, "vpn");
    assert_eq!(
        (&vpn["failed"], &vpn["held"]),
        (&json!(1), &json!(1)),
        "{vpn}"
    );
    assert!(
        vpn["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("no licence left"),
        "{vpn}"
    );
    let directory_calls = directory_calls(&s).await;

    // A licence is found; the operator retries: only the VPN is driven again.
    let a = s
        .post(&format!("/api/v1/runs/{run}/retry"), &json!({}))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(system(&a.body, "directory")["state"], "done", "{}", a.body);
    let done = complete_tasks_until_done(&s, &run).await;
    assert_eq!(done["state"], "succeeded", "{done:#}");
    assert_eq!(
        system_states(&done),
        map(&[("directory", "done"), ("vpn", "done")])
    );
    assert_eq!(grants(&s.person("dee").await)["vpn:acme"], "granted");
    assert_eq!(
        self::directory_calls(&s).await,
        directory_calls,
        "the retry called the directory again"
    );
}

#[tokio::test]
async fn a_leave_disables_every_system_at_once_and_a_manual_one_holds_back_only_itself() {
    let env = TestEnv::new(MANUAL_AND_DIRECTORY, BOTH).await;
    let s = env.start().await;
    let hired = s.accept(&hire("eli", "Sales")).await;
    let hired = complete_tasks_until_done(&s, &hired).await;
    assert_eq!(hired["state"], "succeeded", "{hired:#}");

    let leave = s
        .accept(&json!({"type": "leave", "person": {"id": "eli"}}))
        .await;
    // The VPN's disable is a task for the desk; the directory's account is disabled and its
    // grants revoked without waiting for it.
    let waiting = until_systems(&s, &leave, &[("directory", "done"), ("vpn", "waiting")]).await;
    assert_eq!(waiting["state"], "running", "{waiting:#}");
    let tasks = open_tasks(&s, &leave, 1).await;
    assert_eq!(tasks.len(), 1, "{tasks:#?}");
    assert_eq!(tasks[0]["action"], "disable_account");
    let eli = s.person("eli").await;
    assert_ne!(accounts(&eli)["directory"], "active", "{eli:#}");
    assert_eq!(accounts(&eli)["vpn"], "active", "{eli:#}");
    assert_eq!(grants(&eli)["directory:staff"], "revoked", "{eli:#}");
    assert_eq!(grants(&eli)["vpn:acme"], "granted", "{eli:#}");
    // Both disables were released by the leave's first evaluation, together.
    let disables: Vec<&Value> = waiting["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|st| st["action"] == "disable_account")
        .collect();
    assert_eq!(disables.len(), 2, "{waiting:#}");
    assert!(
        disables
            .iter()
            .all(|st| st["phase"] == 0 && st["ready"] == true)
    );

    let done = complete_tasks_until_done(&s, &leave).await;
    assert_eq!(done["state"], "succeeded", "{done:#}");
    let eli = s.person("eli").await;
    assert_eq!(grants(&eli)["vpn:acme"], "revoked", "{eli:#}");
}

const HR: &str = r#"
[[systems]]
id = "directory"
connector = "sandbox"
[[entitlements]]
id = "directory:staff"
system = "directory"

# Workday-shaped: one change per notice.
[hr.workday]
[hr.workday.fields]
type = { pointer = "/businessProcess/type", map = { Hire = "hire", Termination = "leave", "Job Change" = "transfer" } }
id = "/businessProcess/id"
effective_at = "/businessProcess/effectiveDate"
"person.id" = "/worker/Employee_ID"
"person.name" = "/worker/Legal_Name/Formatted_Name"
"person.email" = "/worker/Email_Address"
"person.worker_type" = { pointer = "/worker/Worker_Type", map = { Regular = "employee", Contingent = "contractor" } }
"person.department" = "/worker/Position/Supervisory_Organization"
"person.title" = "/worker/Position/Business_Title"
"person.start_date" = "/worker/Hire_Date"

# BambooHR-shaped: a list of employees with changed fields.
[hr.bamboohr]
each = "/employees"
[hr.bamboohr.fields]
type = { pointer = "/action", map = { Created = "hire", Updated = "transfer", Terminated = "leave" } }
id = "/changeId"
"person.id" = "/id"
"person.name" = "/fields/displayName/value"
"person.email" = "/fields/workEmail/value"
"person.department" = "/fields/department/value"
"person.title" = "/fields/jobTitle/value"
"person.worker_type" = { pointer = "/fields/employmentStatus/value", map = { "Full-Time" = "employee", "Part-Time" = "employee", Contractor = "contractor" }, default = "employee" }
"person.start_date" = "/fields/hireDate/value"
"#;

#[tokio::test]
async fn hr_webhooks_map_workday_and_bamboohr_payloads() {
    let env = TestEnv::new(HR, &[("all", "entitlements = [\"directory:staff\"]\n")]).await;
    let s = env.start().await;

    let workday = json!({
        "businessProcess": { "type": "Hire", "id": "BP-1001", "effectiveDate": "2020-01-06" },
        "worker": {
            "Employee_ID": "W-21", "Worker_Type": "Regular", "Email_Address": "grace@example.com",
            "Legal_Name": { "Formatted_Name": "Grace Hopper" }, "Hire_Date": "2020-01-06",
            "Position": { "Business_Title": "Engineer", "Supervisory_Organization": "Engineering" }
        }
    });
    let a = s.post("/api/v1/hr/workday", &workday).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
    let run = a.body["events"][0]["run_id"].as_str().unwrap().to_string();
    assert_eq!(s.wait_run(&run).await["state"], "succeeded");
    let grace = s.person("W-21").await;
    assert_eq!(grace["name"], "Grace Hopper");
    assert_eq!(grace["department"], "Engineering");
    assert_eq!(grace["worker_type"], "employee");
    assert_eq!(grants(&grace)["directory:staff"], "granted");
    // The same notice again is a replay (its id is the idempotency key).
    let again = s.post("/api/v1/hr/workday", &workday).await;
    assert_eq!(again.body["events"][0]["replayed"], true, "{}", again.body);

    let bamboo = json!({ "employees": [
        { "id": "B-7", "action": "Created", "changeId": "c-1", "fields": {
            "displayName": { "value": "Alan Turing" }, "workEmail": { "value": "alan@example.com" },
            "department": { "value": "Research" }, "jobTitle": { "value": "Scientist" },
            "employmentStatus": { "value": "Contractor" }, "hireDate": { "value": "2020-02-01" } } },
        { "id": "W-21", "action": "Updated", "changeId": "c-2", "fields": {
            "department": { "value": "Management" }, "jobTitle": { "value": "Director" } } },
        { "id": "B-9", "action": "Photo Uploaded", "changeId": "c-3", "fields": {} }
    ]});
    let a = s.post("/api/v1/hr/bamboohr", &bamboo).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
    assert_eq!(a.body["events"].as_array().unwrap().len(), 2, "{}", a.body);
    assert_eq!(a.body["skipped"][0]["index"], 2);
    for e in a.body["events"].as_array().unwrap() {
        assert_eq!(
            s.wait_run(e["run_id"].as_str().unwrap()).await["state"],
            "succeeded"
        );
    }
    let alan = s.person("B-7").await;
    assert_eq!(alan["worker_type"], "contractor");
    assert_eq!(alan["title"], "Scientist");
    let grace = s.person("W-21").await;
    assert_eq!(grace["department"], "Management");
    assert_eq!(grace["title"], "Director");

    // Termination through Workday: access goes.
    let leave = json!({
        "businessProcess": { "type": "Termination", "id": "BP-1002", "effectiveDate": "2020-03-01" },
        "worker": { "Employee_ID": "W-21" }
    });
    let a = s.post("/api/v1/hr/workday", &leave).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
    s.wait_run(a.body["events"][0]["run_id"].as_str().unwrap())
        .await;
    assert_eq!(s.person("W-21").await["status"], "terminated");

    // A bad change refuses the whole payload, naming where; nothing of it is stored.
    let bad = json!({ "employees": [
        { "id": "B-10", "action": "Created", "changeId": "c-4", "fields": { "displayName": { "value": "Ok Person" }, "workEmail": { "value": "ok@example.com" } } },
        { "id": "B-11", "action": "Created", "changeId": "c-5", "fields": { "displayName": { "value": "No Mail" }, "workEmail": { "value": "not-an-email" } } }
    ]});
    let a = s.post("/api/v1/hr/bamboohr", &bad).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert!(
        a.body["error"]["field"]
            .as_str()
            .unwrap()
            .contains("/employees/1"),
        "{}",
        a.body
    );
    let missing = s
        .request(
            reqwest::Method::GET,
            "/api/v1/people/B-10",
            Some(TOKEN),
            &[],
            None,
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    // Unknown source, and a body that is not JSON.
    assert_eq!(
        s.post("/api/v1/hr/sap", &json!({})).await.status,
        StatusCode::NOT_FOUND
    );
    let a = s
        .request(
            reqwest::Method::POST,
            "/api/v1/hr/workday",
            Some(TOKEN),
            &[("content-type", "application/json")],
            Some("{oops".into()),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
}
