//! Shared harness for the end-to-end tests: runs the real `tenure` binary on a fresh database
//! (a SQLite file in a temporary folder, or a fresh PostgreSQL database when
//! `TENURE_TEST_DATABASE_URL` is set) and talks to it over HTTP.
//!
//! Nothing here sleeps to wait: the server's address is read from its standard output, runs are
//! awaited with the long-poll `GET /api/v1/runs/{id}?wait_ms=...`, and every child process is
//! killed when its guard is dropped.

#![allow(dead_code)]

use reqwest::header::HeaderMap;
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// The admin token every test server is bootstrapped with.
pub const TOKEN: &str = "tnr_e2e_0123456789abcdef0123456789abcdef";
/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_tenure");
/// How long any one wait may take before the test fails (not a sleep: an upper bound).
pub const PATIENCE: Duration = Duration::from_secs(150);

/// The PostgreSQL server to test against, if any.
pub fn postgres_url() -> Option<String> {
    std::env::var("TENURE_TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.trim().is_empty())
}

/// The master key test servers on PostgreSQL seal personal data with.
pub const TEST_MASTER_KEY: &str = "dGVzdCBtYXN0ZXIga2V5IC0gMzIgYnl0ZXMgbG9uZyE";

/// A fresh PostgreSQL database, dropped when the guard is.
pub struct PgDatabase {
    /// URL of the fresh database.
    pub url: String,
    admin_url: String,
    name: String,
}

impl PgDatabase {
    async fn create(admin_url: &str) -> PgDatabase {
        let name = format!("tenure_t_{}", uuid::Uuid::new_v4().simple());
        let (base, query) = match admin_url.split_once('?') {
            Some((b, q)) => (b, format!("?{q}")),
            None => (admin_url, String::new()),
        };
        let scheme_end = base.find("://").map_or(0, |i| i + 3);
        let prefix = match base[scheme_end..].find('/') {
            Some(i) => &base[..scheme_end + i],
            None => base,
        };
        let url = format!("{prefix}/{name}{query}");
        execute_admin(admin_url, &format!("CREATE DATABASE {name}")).await;
        PgDatabase {
            url,
            admin_url: admin_url.to_string(),
            name,
        }
    }
}

async fn execute_admin(url: &str, sql: &str) {
    use sqlx::{Connection, Executor};
    sqlx::any::install_default_drivers();
    let mut c = sqlx::AnyConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    c.execute(sqlx::AssertSqlSafe(sql.to_string()))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let _ = c.close().await;
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs inside the test's runtime: use a runtime of our own on another thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(execute_admin(
                &url,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            ));
        })
        .join();
    }
}

/// One test's world: a temporary folder holding `tenure.toml`, its templates and (on SQLite)
/// the database; or a fresh PostgreSQL database.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub pg: Option<PgDatabase>,
}

impl TestEnv {
    /// Writes the configuration; uses PostgreSQL when `TENURE_TEST_DATABASE_URL` is set.
    pub async fn new(tenure_toml: &str, templates: &[(&str, &str)]) -> TestEnv {
        let dir = tempfile::tempdir().expect("temporary folder");
        let config = dir.path().join("tenure.toml");
        std::fs::write(&config, tenure_toml).expect("writing tenure.toml");
        let tdir = dir.path().join("templates");
        std::fs::create_dir_all(&tdir).expect("templates folder");
        for (name, text) in templates {
            std::fs::write(tdir.join(format!("{name}.toml")), text).expect("writing a template");
        }
        let pg = match postgres_url() {
            Some(admin) => Some(PgDatabase::create(&admin).await),
            None => None,
        };
        TestEnv { dir, config, pg }
    }

    /// Replaces `tenure.toml` (takes effect at the next start).
    pub fn write_config(&self, tenure_toml: &str) {
        std::fs::write(&self.config, tenure_toml).expect("writing tenure.toml");
    }

    /// The data directory (SQLite file lives here).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The SQLite file.
    pub fn sqlite_file(&self) -> PathBuf {
        self.data_dir().join("tenure.db")
    }

    /// A URL to open the test database directly (for tampering).
    pub fn database_url(&self) -> String {
        match &self.pg {
            Some(pg) => pg.url.clone(),
            None => format!("sqlite://{}", self.sqlite_file().display()),
        }
    }

    /// The test database opened directly, with the master key the server seals personal data
    /// with (for reading what the server stored).
    pub async fn open_store(&self) -> tenure_store::Store {
        let key = match &self.pg {
            Some(_) => TEST_MASTER_KEY.to_string(),
            None => std::fs::read_to_string(self.data_dir().join("master.key"))
                .expect("the server made its master key"),
        };
        tenure_store::Store::connect(&self.database_url())
            .await
            .unwrap()
            .with_vault(tenure_store::Vault::from_base64(&key).unwrap())
    }

    /// Which backend, for messages.
    pub fn backend(&self) -> &'static str {
        if self.pg.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
    }

    /// `--data-dir D` or `--database URL`.
    pub fn db_args(&self) -> Vec<String> {
        match &self.pg {
            Some(pg) => vec!["--database".into(), pg.url.clone()],
            None => vec!["--data-dir".into(), self.data_dir().display().to_string()],
        }
    }

    /// The binary, with the environment every test server and CLI run starts from: none of
    /// the caller's `TENURE_*` settings, the test admin token as `TENURE_BOOTSTRAP_TOKEN`.
    pub fn command(&self) -> Command {
        self.command_of(Command::new(BIN))
    }

    fn command_of(&self, mut cmd: Command) -> Command {
        for var in [
            "TENURE_DATA_DIR",
            "TENURE_DATABASE_URL",
            "TENURE_CONFIG",
            "TENURE_LISTEN",
            "TENURE_PUBLIC_URL",
            "TENURE_MAX_CONNECTIONS",
            "TENURE_IDLE_TIMEOUT_SECS",
            "TENURE_MAX_IN_FLIGHT",
            "TENURE_MAX_URGENT_IN_FLIGHT",
            "TENURE_CLAIM_BATCH",
            "TENURE_MASTER_KEY",
            "TENURE_MASTER_KEY_FILE",
        ] {
            cmd.env_remove(var);
        }
        // SQLite makes its master key in the data directory; PostgreSQL must be given one.
        if self.pg.is_some() {
            cmd.env("TENURE_MASTER_KEY", TEST_MASTER_KEY);
        }
        cmd.env("TENURE_BOOTSTRAP_TOKEN", TOKEN)
            .env("RUST_LOG", "warn,sqlx=error");
        cmd
    }

    /// Runs a CLI subcommand (`token create ...`, `audit verify`) on this test's database.
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut cmd = self.command();
        cmd.args(args).args(self.db_args());
        cmd.output().expect("running the tenure CLI")
    }

    /// Starts `tenure serve` and waits for its "listening" line.
    pub async fn start(&self) -> Server {
        self.start_full(&[], None, &[]).await
    }

    /// Starts `tenure serve` with more arguments and, when given, a soft limit on open files
    /// (as a service manager's default of 1,024 would set it); waits for its "listening" line.
    pub async fn start_with(&self, extra: &[&str], soft_open_files: Option<u64>) -> Server {
        self.start_full(extra, soft_open_files, &[]).await
    }

    /// Starts `tenure serve` like [`TestEnv::start`], with more environment variables (a log
    /// filter other than warnings only, a secret a connector reads).
    pub async fn start_with_env(&self, vars: &[(&str, &str)]) -> Server {
        self.start_full(&[], None, vars).await
    }

    /// Starts `tenure serve` with more arguments and more environment variables.
    pub async fn start_with_args_env(&self, extra: &[&str], vars: &[(&str, &str)]) -> Server {
        self.start_full(extra, None, vars).await
    }

    async fn start_full(
        &self,
        extra: &[&str],
        soft_open_files: Option<u64>,
        vars: &[(&str, &str)],
    ) -> Server {
        let mut cmd = match soft_open_files {
            None => self.command(),
            Some(n) => {
                let mut sh = Command::new("sh");
                sh.arg("-c")
                    .arg(format!("ulimit -Sn {n} && exec \"$0\" \"$@\""))
                    .arg(BIN);
                self.command_of(sh)
            }
        };
        cmd.envs(vars.iter().copied());
        // A short lease: on PostgreSQL, steps a killed server left running come back this soon.
        cmd.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--step-lease-secs",
            "2",
            "--config",
        ])
        .arg(&self.config)
        .args(self.db_args())
        .args(extra);
        spawn(cmd).await
    }
}

/// Starts a `tenure serve` command (arguments and environment as the caller set them) and
/// waits for its "listening" line.
pub async fn spawn(mut cmd: Command) -> Server {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("starting tenure serve");
    let logs = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = child.stdout.take().expect("stdout is piped");
    let out_logs = logs.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(addr) = line.strip_prefix("tenure listening on ") {
                let _ = tx.send(addr.trim().to_string());
            }
            push_log(&out_logs, line);
        }
    });
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let err_logs = logs.clone();
    std::thread::spawn(move || {
        let mut buf = String::new();
        let _ = stderr.read_to_string(&mut buf);
        for line in buf.lines() {
            push_log(&err_logs, format!("stderr: {line}"));
        }
    });
    let mut server = Server {
        child: Some(child),
        base: String::new(),
        http: Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("http client"),
        logs,
    };
    // The reader thread sends the address, or hangs up when the process exits.
    let addr = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(60)))
        .await
        .expect("waiting for the address");
    match addr {
        Ok(a) => server.base = a,
        Err(_) => {
            let status = server.child.as_mut().and_then(|c| c.try_wait().ok());
            panic!(
                "tenure serve did not print its address (exit: {status:?}); output:\n{}",
                server.log_text()
            );
        }
    }
    server
}

fn push_log(logs: &Mutex<Vec<String>>, line: String) {
    let mut l = logs.lock().unwrap_or_else(|e| e.into_inner());
    l.push(line);
    if l.len() > 5_000 {
        l.drain(..1_000);
    }
}

/// A running `tenure serve`; killed when dropped.
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    pub http: Client,
    logs: Arc<Mutex<Vec<String>>>,
}

/// An HTTP answer: status, headers and the body as JSON (`Value::String` when not JSON).
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

/// A sandbox system's durable counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub calls: i64,
    pub changes: i64,
    pub failures: i64,
}

impl Server {
    /// What the server printed so far.
    pub fn log_text(&self) -> String {
        self.logs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n")
    }

    /// The process id (for signals).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is running").id()
    }

    /// SIGKILL: no shutdown, nothing drained.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("kill -9");
            c.wait().expect("reaping the server");
        }
    }

    /// SIGTERM and wait for a clean exit (graceful shutdown).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let ok = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status()
                .expect("running kill")
                .success();
            assert!(ok, "kill -TERM failed");
            let status = c.wait().expect("reaping the server");
            assert!(
                status.success(),
                "tenure serve exited with {status} after SIGTERM:\n{}",
                self.log_text()
            );
        }
    }

    /// Any request. `token` None sends no Authorization header.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Answer {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let res = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}\nserver output:\n{}", self.log_text()));
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.expect("reading the body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    /// DELETE with the admin token.
    pub async fn delete(&self, path: &str) -> Answer {
        self.request(Method::DELETE, path, Some(TOKEN), &[], None)
            .await
    }

    /// GET with the admin token; panics unless 200.
    pub async fn get(&self, path: &str) -> Value {
        let a = self
            .request(Method::GET, path, Some(TOKEN), &[], None)
            .await;
        assert_eq!(a.status, StatusCode::OK, "GET {path}: {}", a.body);
        a.body
    }

    /// POST JSON with the admin token.
    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        self.request(
            Method::POST,
            path,
            Some(TOKEN),
            &[("content-type", "application/json")],
            Some(body.to_string()),
        )
        .await
    }

    /// POST /api/v1/events with the admin token and optional Idempotency-Key.
    pub async fn send_event(&self, event: &Value, key: Option<&str>) -> Answer {
        self.send_raw_event(&event.to_string(), key).await
    }

    /// POST /api/v1/events with a raw body.
    pub async fn send_raw_event(&self, body: &str, key: Option<&str>) -> Answer {
        let mut headers = vec![("content-type", "application/json")];
        if let Some(k) = key {
            headers.push(("idempotency-key", k));
        }
        self.request(
            Method::POST,
            "/api/v1/events",
            Some(TOKEN),
            &headers,
            Some(body.to_string()),
        )
        .await
    }

    /// Sends an event that must be accepted; returns its run id.
    pub async fn accept(&self, event: &Value) -> String {
        let a = self.send_event(event, None).await;
        assert_eq!(a.status, StatusCode::ACCEPTED, "event {event}: {}", a.body);
        a.body["run_id"].as_str().expect("run_id").to_string()
    }

    /// Long-polls a run until it is terminal; returns the run with its steps.
    pub async fn wait_run(&self, run_id: &str) -> Value {
        let start = Instant::now();
        loop {
            let run = self
                .get(&format!("/api/v1/runs/{run_id}?wait_ms=10000"))
                .await;
            if is_terminal(&run) {
                return run;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "run {run_id} still {} after {:?}: {run:#}\nserver output:\n{}",
                run["state"],
                start.elapsed(),
                self.log_text()
            );
        }
    }

    /// Polls a run (a few ms apart) until its grant waits for approval: its accounts come
    /// first.
    pub async fn awaiting_approval(&self, run_id: &str) {
        let start = Instant::now();
        loop {
            let run = self.get(&format!("/api/v1/runs/{run_id}")).await;
            if run["state"] == "awaiting_approval" {
                return;
            }
            assert!(!is_terminal(&run) && start.elapsed() < PATIENCE, "{run:#}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Sends an event and waits for its run; returns the finished run.
    pub async fn apply(&self, event: &Value) -> Value {
        let id = self.accept(event).await;
        self.wait_run(&id).await
    }

    /// Sends an event, waits, and insists the run succeeded.
    pub async fn apply_ok(&self, event: &Value) -> Value {
        let run = self.apply(event).await;
        assert_eq!(
            run["state"], "succeeded",
            "{} run did not succeed: {run:#}",
            event["type"]
        );
        run
    }

    /// GET /api/v1/people/{id}.
    pub async fn person(&self, id: &str) -> Value {
        self.get(&format!("/api/v1/people/{id}")).await
    }

    /// Every sandbox system's counters.
    pub async fn stats(&self) -> BTreeMap<String, Stats> {
        let systems = self.get("/api/v1/systems").await;
        systems["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|s| {
                let st = &s["stats"];
                let n = |k: &str| {
                    st[k]
                        .as_i64()
                        .unwrap_or_else(|| panic!("stats.{k} missing: {s}"))
                };
                (
                    s["id"].as_str().expect("id").to_string(),
                    Stats {
                        calls: n("calls"),
                        changes: n("changes"),
                        failures: n("failures"),
                    },
                )
            })
            .collect()
    }

    /// All items of a paged list (`people`, `audit`, `runs`), up to 1000.
    pub async fn items(&self, path: &str) -> Vec<Value> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let v = self.get(&format!("{path}{sep}limit=1000")).await;
        v["items"].as_array().expect("items").clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            let text = self.log_text();
            let tail: Vec<&str> = text.lines().rev().take(80).collect();
            eprintln!("---- tenure serve output (last {} lines) ----", tail.len());
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

/// Starts a reconciliation of `system` over the API (as the admin; `dry_run` to correct
/// nothing) and waits for its end; returns the reconciliation.
pub async fn reconciled(s: &Server, system: &str, dry_run: bool) -> Value {
    let a = s
        .post(
            "/api/v1/reconciliations",
            &json!({ "system": system, "dry_run": dry_run }),
        )
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
    assert_eq!(a.body["state"], "running");
    let location = a.headers["location"].to_str().unwrap().to_string();
    let start = Instant::now();
    loop {
        let r = s.get(&location).await;
        if r["state"] != "running" {
            return r;
        }
        assert!(start.elapsed() < PATIENCE, "{r:#}\n{}", s.log_text());
        tokio::task::yield_now().await;
    }
}

/// An account on the sandbox system `system` that nobody holds, made behind tenure's back
/// (straight in the database): an orphan for the next reconciliation to find.
pub async fn orphan_account(env: &TestEnv, system: &str, key: &str) {
    tamper(
        &env.database_url(),
        "INSERT INTO sandbox_accounts (system, person_id, enabled, attrs) VALUES ($1, $2, 1, '{}')",
        &[Bind::Text(system), Bind::Text(key)],
    )
    .await;
}

/// Whether a run (JSON) has ended.
pub fn is_terminal(run: &Value) -> bool {
    matches!(
        run["state"].as_str(),
        Some("succeeded" | "failed" | "cancelled" | "compensated" | "denied")
    )
}

/// The person's accounts as system -> state.
pub fn accounts(person: &Value) -> BTreeMap<String, String> {
    person["accounts"]
        .as_array()
        .expect("accounts")
        .iter()
        .map(|a| {
            (
                a["system"].as_str().expect("system").to_string(),
                a["state"].as_str().expect("state").to_string(),
            )
        })
        .collect()
}

/// The person's grants as entitlement -> state.
pub fn grants(person: &Value) -> BTreeMap<String, String> {
    person["grants"]
        .as_array()
        .expect("grants")
        .iter()
        .map(|g| {
            (
                g["entitlement"].as_str().expect("entitlement").to_string(),
                g["state"].as_str().expect("state").to_string(),
            )
        })
        .collect()
}

/// Builds a map from pairs, for compact expectations.
pub fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Two sandbox systems, `directory` and `down` (failing `failure_rate` of its calls, drawn
/// from `seed`), with fast retries and a breaker: the system a test makes fail.
pub fn down_config(seed: u64, failure_rate: f64) -> String {
    format!(
        r#"
[engine]
max_attempts = 3
backoff_base_ms = 10
backoff_max_ms = 20
breaker_failure_threshold = 3
breaker_open_ms = 1500

[[systems]]
id = "directory"
connector = "sandbox"
[[systems]]
id = "down"
connector = "sandbox"
[systems.settings]
failure_rate = {failure_rate:.1}
seed = {seed}

[[entitlements]]
id = "directory:staff"
system = "directory"
[[entitlements]]
id = "down:app"
system = "down"
"#
    )
}

/// Two systems, an entitlement owned by `olga` and a privileged one, and requests approved by
/// the manager and then the owner: the access-request tests' configuration.
pub const APPROVALS_CONFIG: &str = r#"
[[systems]]
id = "directory"
connector = "sandbox"
[[systems]]
id = "db"
connector = "sandbox"

[[entitlements]]
id = "directory:staff"
system = "directory"
[[entitlements]]
id = "directory:reports"
system = "directory"
owner = "olga"
[[entitlements]]
id = "db:prod-admin"
system = "db"
risk = "privileged"
owner = "olga"

[approvals]
request_stages = ["manager", "owner"]
"#;

/// Everyone holds `directory:staff` (with [`APPROVALS_CONFIG`]).
pub const APPROVALS_TEMPLATES: &[(&str, &str)] =
    &[("all", "entitlements = [\"directory:staff\"]\n")];

/// A template giving everyone an entitlement on each of [`down_config`]'s systems.
pub const DOWN_TEMPLATES: &[(&str, &str)] = &[(
    "all",
    "entitlements = [\"directory:staff\", \"down:app\"]\n",
)];

/// Creates a token with the CLI (`scopes`, acting as `person` when given); returns its secret.
pub fn token(env: &TestEnv, name: &str, scopes: &[&str], person: Option<&str>) -> String {
    let mut args = vec!["token", "create", "--name", name];
    for s in scopes {
        args.extend(["--scope", s]);
    }
    if let Some(p) = person {
        args.extend(["--as", p]);
    }
    let out = env.cli(&args);
    assert!(out.status.success(), "{}", describe(&out));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A hire of an employee reporting to `manager` (name and email made from the id).
pub fn hire_under(id: &str, manager: Option<&str>) -> Value {
    let mut p = json!({
        "id": id, "name": format!("N {id}"), "email": format!("{id}@example.com"),
        "worker_type": "employee",
    });
    if let Some(m) = manager {
        p["manager"] = m.into();
    }
    json!({ "type": "hire", "person": p })
}

/// `method path` with `token` and a JSON `body`.
pub async fn call(
    s: &Server,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Answer {
    s.request(
        method,
        path,
        Some(token),
        &[("content-type", "application/json")],
        body.map(|b| b.to_string()),
    )
    .await
}

/// Runs `tenure ARGS` against the server with `token` in TENURE_TOKEN.
pub fn api_cli(env: &TestEnv, s: &Server, token: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("TENURE_URL", &s.base)
        .env("TENURE_TOKEN", token)
        .current_dir(env.dir.path())
        .output()
        .expect("running tenure")
}

/// A hire event.
pub fn hire(id: &str, department: &str) -> Value {
    json!({
        "type": "hire",
        "person": {
            "id": id,
            "name": format!("Person {id}"),
            "email": format!("{id}@example.com"),
            "worker_type": "employee",
            "department": department,
        },
        "source": "e2e",
    })
}

/// Sum of the `changes` counters.
pub fn total_changes(stats: &BTreeMap<String, Stats>) -> i64 {
    stats.values().map(|s| s.changes).sum()
}

/// Runs a SQL statement directly on the test database (the server must be stopped).
pub async fn tamper(url: &str, sql: &str, binds: &[Bind<'_>]) -> u64 {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut c = sqlx::AnyConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("opening {url}: {e}"));
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()));
    for b in binds {
        q = match b {
            Bind::Int(i) => q.bind(*i),
            Bind::Text(s) => q.bind(s.to_string()),
        };
    }
    let n = q
        .execute(&mut c)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .rows_affected();
    let _ = c.close().await;
    n
}

/// A parameter for [`tamper`].
pub enum Bind<'a> {
    Int(i64),
    Text(&'a str),
}

/// Reads one text column of one row (for tampering tests).
pub async fn query_text(url: &str, sql: &str, seq: i64) -> String {
    use sqlx::{Connection, Row};
    sqlx::any::install_default_drivers();
    let mut c = sqlx::AnyConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("opening {url}: {e}"));
    let row = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .bind(seq)
        .fetch_one(&mut c)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let v: String = row.try_get(0).expect("a text column");
    let _ = c.close().await;
    v
}

/// The output of a CLI run, for messages.
pub fn describe(o: &Output) -> String {
    format!(
        "exit {}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A time the API gave, in epoch milliseconds; panics unless it is RFC 3339 in UTC with
/// milliseconds (`2026-03-01T09:30:00.000Z`), the one form the API writes times in.
pub fn time_ms(v: &Value) -> i64 {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("a time is a string, not {v}"));
    let t = chrono::DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("`{s}` is not RFC 3339: {e}"));
    assert!(
        s.len() == 24 && s.ends_with('Z') && s.as_bytes()[19] == b'.',
        "`{s}` is not UTC with milliseconds"
    );
    t.timestamp_millis()
}

/// Path helper for messages.
pub fn show(p: &Path) -> String {
    p.display().to_string()
}

/// Percent-encodes everything but RFC 3986's unreserved characters, for a query string value.
pub fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ------------------------------------------------------------------ SCIM

/// The SCIM media type.
pub const SCIM: &str = "application/scim+json";
/// The SCIM error schema.
pub const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
/// The SCIM core Group schema.
pub const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// The SCIM PATCH request schema.
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// A new `scim` token's secret.
pub async fn scim_token(s: &Server) -> String {
    scim_token_and_id(s).await.1
}

/// A new `scim` token: (id, secret).
pub async fn scim_token_and_id(s: &Server) -> (String, String) {
    let a = s
        .post(
            "/api/v1/tokens",
            &json!({ "name": "identity-provider", "scopes": ["scim"] }),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let field = |k: &str| a.body[k].as_str().expect(k).to_string();
    (field("id"), field("token"))
}

pub async fn scim_call(
    s: &Server,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> Answer {
    let mut h = vec![("content-type", SCIM)];
    h.extend_from_slice(headers);
    s.request(
        method,
        &format!("/scim/v2{path}"),
        Some(token),
        &h,
        body.map(|b| b.to_string()),
    )
    .await
}

pub fn assert_scim_error(a: &Answer, status: u16, scim_type: Option<&str>) {
    assert_eq!(a.status.as_u16(), status, "{}", a.body);
    assert_eq!(a.body["schemas"], json!([ERROR]), "{}", a.body);
    assert_eq!(a.body["status"], json!(status.to_string()), "{}", a.body);
    assert_eq!(
        a.body.get("scimType").and_then(Value::as_str),
        scim_type,
        "{}",
        a.body
    );
    assert!(
        a.headers
            .get("content-type")
            .is_some_and(|v| v.to_str().unwrap().starts_with(SCIM)),
        "SCIM errors are application/scim+json"
    );
}
