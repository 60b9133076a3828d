//! The `scim` connector: provisions accounts and group memberships into any SCIM 2.0 service
//! provider (RFC 7644).
//!
//! - A person's account is a SCIM User whose `externalId` is the tenure person id; its other
//!   attributes come from the `attributes` mapping (SCIM path → tenure field).
//! - An entitlement of kind `account` stands for the account itself (grant and revoke do
//!   nothing more); any other entitlement is a SCIM Group whose id is the entitlement's `name`,
//!   and granting it adds the user to the group's `members`.
//! - The provider's `ServiceProviderConfig` is read once: with PATCH supported, changes are
//!   PATCHes; without, the user is read and PUT back.
//! - A create answered `409` links the existing account (found by `userName`, then given our
//!   `externalId`) instead of failing. `429` and `5xx` are retryable, with `Retry-After`
//!   honoured; other `4xx` are permanent, with the provider's SCIM `detail`.
//! - `inventory` pages through `/Users` by `startIndex`; an account's memberships are its
//!   `groups[].value`, the group ids that entitlement names are.
//! - Authentication: a bearer token, or OAuth 2.0 client credentials (token fetched, cached
//!   until shortly before it expires, dropped on a `401`). Secrets are read from the
//!   environment variables the settings name, never from the configuration file or logs.

use crate::{
    Connector, ConnectorError, Inventory, InventoryAccount, InventoryPages, Op, RemoteAccount,
    attribute,
};
use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tenure_core::{Entitlement, Person};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const PAGE: usize = 100;
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// What the inventory reads of each user.
const INVENTORY_ATTRIBUTES: &str = "userName,externalId,active,emails,groups,\
    urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber";

/// How the connector authenticates.
#[derive(Clone)]
pub enum Auth {
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// OAuth 2.0 client credentials (RFC 6749 §4.4).
    ClientCredentials {
        /// Token endpoint.
        token_url: String,
        /// Client id.
        client_id: String,
        /// Client secret.
        client_secret: String,
        /// Requested scope, if any.
        scope: Option<String>,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Bearer(_) => f.write_str("Bearer(***)"),
            Auth::ClientCredentials {
                token_url,
                client_id,
                ..
            } => write!(f, "ClientCredentials({token_url}, {client_id}, ***)"),
        }
    }
}

/// Settings of a `scim` system (`[systems.settings]` in tenure.toml).
#[derive(Debug, Clone)]
pub struct ScimSettings {
    /// SCIM root, e.g. `https://api.example.com/scim/v2`.
    pub base_url: String,
    /// Credentials.
    pub auth: Auth,
    /// SCIM attribute path → tenure person field (`id`, `name`, `email`, `worker_type`,
    /// `department`, `title`, `location`, `manager`, `start_date`, `end_date`, `given_name`,
    /// `family_name`).
    pub attributes: BTreeMap<String, String>,
    /// Per-request timeout.
    pub timeout: Duration,
}

const FIELDS: [&str; 12] = [
    "id",
    "name",
    "email",
    "worker_type",
    "department",
    "title",
    "location",
    "manager",
    "start_date",
    "end_date",
    "given_name",
    "family_name",
];

fn default_attributes() -> BTreeMap<String, String> {
    [
        ("userName", "email"),
        ("displayName", "name"),
        ("name.givenName", "given_name"),
        ("name.familyName", "family_name"),
        ("emails", "email"),
        ("title", "title"),
        (
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
            "department",
        ),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect()
}

/// The name of the environment variable `key` names.
fn env_var_name<'a>(settings: &'a Map<String, Value>, key: &str) -> Result<&'a str, String> {
    settings.get(key).and_then(Value::as_str).ok_or_else(|| {
        format!("`{key}` (the name of the environment variable holding the secret) is required")
    })
}

fn env_secret(settings: &Map<String, Value>, key: &str) -> Result<String, String> {
    let var = env_var_name(settings, key)?;
    std::env::var(var)
        .ok()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("environment variable `{var}` (from `{key}`) is not set"))
}

impl ScimSettings {
    /// Reads the settings table. Secrets come from environment variables named by
    /// `token_env` (bearer) or `client_secret_env` (OAuth client credentials).
    pub fn from_map(m: &Map<String, Value>) -> Result<Self, String> {
        Self::read(m, env_secret)
    }

    /// Checks the settings table as [`ScimSettings::from_map`] reads it, except that the
    /// variables naming secrets are not read (only required to be named).
    pub fn check(m: &Map<String, Value>) -> Result<(), String> {
        Self::read(m, |m, key| env_var_name(m, key).map(str::to_string)).map(drop)
    }

    fn read(
        m: &Map<String, Value>,
        secret: impl Fn(&Map<String, Value>, &str) -> Result<String, String>,
    ) -> Result<Self, String> {
        for k in m.keys() {
            if ![
                "base_url",
                "token_env",
                "token_url",
                "client_id",
                "client_secret_env",
                "scope",
                "attributes",
                "timeout_ms",
            ]
            .contains(&k.as_str())
            {
                return Err(format!("unknown setting `{k}`"));
            }
        }
        let base_url = m
            .get("base_url")
            .and_then(Value::as_str)
            .ok_or("`base_url` (the SCIM root URL) is required")?
            .trim_end_matches('/')
            .to_string();
        if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
            return Err(format!(
                "`base_url` must be an http(s) URL, not `{base_url}`"
            ));
        }
        let auth = match m.get("token_url").and_then(Value::as_str) {
            Some(token_url) => Auth::ClientCredentials {
                token_url: token_url.to_string(),
                client_id: m
                    .get("client_id")
                    .and_then(Value::as_str)
                    .ok_or("`client_id` is required with `token_url`")?
                    .to_string(),
                client_secret: secret(m, "client_secret_env")?,
                scope: m.get("scope").and_then(Value::as_str).map(str::to_string),
            },
            None => Auth::Bearer(secret(m, "token_env")?),
        };
        let attributes = match m.get("attributes") {
            None => default_attributes(),
            Some(Value::Object(o)) => {
                let mut out = BTreeMap::new();
                for (k, v) in o {
                    let field = v
                        .as_str()
                        .ok_or_else(|| format!("attributes.`{k}` must name a tenure field"))?;
                    if !FIELDS.contains(&field) {
                        return Err(format!(
                            "attributes.`{k}`: unknown tenure field `{field}`; fields are {}",
                            FIELDS.join(", ")
                        ));
                    }
                    out.insert(k.clone(), field.to_string());
                }
                if !out.keys().any(|k| k == "userName") {
                    return Err("attributes must map `userName`".into());
                }
                out
            }
            Some(_) => return Err("`attributes` must be a table".into()),
        };
        let timeout = Duration::from_millis(
            m.get("timeout_ms")
                .map(|v| v.as_u64().ok_or("`timeout_ms` must be a positive integer"))
                .transpose()?
                .unwrap_or(10_000),
        );
        Ok(ScimSettings {
            base_url,
            auth,
            attributes,
            timeout,
        })
    }
}

fn field(p: &Person, f: &str) -> Option<String> {
    let mut words = p.name.split_whitespace();
    match f {
        "id" => Some(p.id.clone()),
        "name" => Some(p.name.clone()),
        "email" => Some(p.email.clone()),
        "worker_type" => Some(p.worker_type.as_str().to_string()),
        "department" => p.department.clone(),
        "title" => p.title.clone(),
        "location" => p.location.clone(),
        "manager" => p.manager.clone(),
        "start_date" => p.start_date.map(|d| format!("{d}T00:00:00Z")),
        "end_date" => p.end_date.map(|d| format!("{d}T00:00:00Z")),
        "given_name" => words.next().map(str::to_string),
        "family_name" => {
            let rest: Vec<&str> = words.skip(1).collect();
            (!rest.is_empty()).then(|| rest.join(" "))
        }
        _ => None,
    }
}

/// Splits `urn:…:User:attr.sub` into (extension URN, `attr.sub`).
fn split_path(path: &str) -> (Option<&str>, &str) {
    if path.starts_with("urn:")
        && let Some(i) = path.rfind(':')
    {
        return (Some(&path[..i]), &path[i + 1..]);
    }
    (None, path)
}

/// The mapped attributes of a person as a partial SCIM User.
pub fn user_body(attributes: &BTreeMap<String, String>, p: &Person) -> Map<String, Value> {
    let mut out = Map::new();
    let mut schemas = vec![json!(USER)];
    out.insert("externalId".into(), json!(p.id));
    for (path, f) in attributes {
        let Some(v) = field(p, f) else { continue };
        let (ext, rest) = split_path(path);
        let target = match ext {
            Some(urn) => {
                if !schemas.contains(&json!(urn)) {
                    schemas.push(json!(urn));
                }
                out.entry(urn.to_string())
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                    .expect("extension object")
            }
            None => &mut out,
        };
        match rest.split_once('.') {
            Some((a, sub)) => {
                let o = target.entry(a.to_string()).or_insert_with(|| json!({}));
                o[sub] = json!(v);
            }
            None if rest == "emails" => {
                target.insert(
                    "emails".into(),
                    json!([{ "value": v, "type": "work", "primary": true }]),
                );
            }
            None => {
                target.insert(rest.to_string(), json!(v));
            }
        }
    }
    out.insert("schemas".into(), Value::Array(schemas));
    out
}

#[derive(Default)]
struct Cached {
    patch: Option<bool>,
    token: Option<(String, Instant)>,
    ids: BTreeMap<String, String>,
}

/// A SCIM 2.0 service provider as a target system.
pub struct ScimConnector {
    system: String,
    settings: ScimSettings,
    http: reqwest::Client,
    cache: Mutex<Cached>,
}

#[derive(Debug)]
struct Reply {
    status: StatusCode,
    body: Value,
}

fn retry_after_ms(h: &reqwest::header::HeaderMap) -> Option<u64> {
    let v = h.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(secs.saturating_mul(1000));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let ms = (when.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_milliseconds();
    Some(ms.max(0) as u64)
}

fn detail(body: &Value) -> String {
    match (
        body.get("detail").and_then(Value::as_str),
        body.get("scimType"),
    ) {
        (Some(d), Some(t)) => format!("{d} ({})", t.as_str().unwrap_or("")),
        (Some(d), None) => d.to_string(),
        _ if body.is_null() => "(no SCIM body)".into(),
        _ => body.to_string().chars().take(300).collect(),
    }
}

impl ScimConnector {
    /// A connector for system `system`.
    pub fn new(system: &str, settings: ScimSettings) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(ScimConnector {
            system: system.to_string(),
            settings,
            http,
            cache: Mutex::new(Cached::default()),
        })
    }

    async fn token(&self) -> Result<String, ConnectorError> {
        match &self.settings.auth {
            Auth::Bearer(t) => Ok(t.clone()),
            Auth::ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scope,
            } => {
                if let Some((t, until)) = &self.cache.lock().expect("cache").token
                    && Instant::now() < *until
                {
                    return Ok(t.clone());
                }
                let mut form = String::from("grant_type=client_credentials");
                if let Some(s) = scope {
                    form.push_str(&format!("&scope={}", url_encode(s)));
                }
                let res = self
                    .http
                    .post(token_url)
                    .basic_auth(client_id, Some(client_secret))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(form)
                    .send()
                    .await
                    .map_err(|e| {
                        ConnectorError::retryable(format!("{}: token endpoint: {e}", self.system))
                    })?;
                let status = res.status();
                let body: Value = res.json().await.unwrap_or(Value::Null);
                if !status.is_success() {
                    let m = format!(
                        "{}: token endpoint answered {status}: {}",
                        self.system,
                        body.get("error").and_then(Value::as_str).unwrap_or("")
                    );
                    return Err(if status.is_server_error() {
                        ConnectorError::retryable(m)
                    } else {
                        ConnectorError::Permanent(m)
                    });
                }
                let token = body["access_token"]
                    .as_str()
                    .ok_or_else(|| {
                        ConnectorError::Permanent(format!(
                            "{}: token response has no access_token",
                            self.system
                        ))
                    })?
                    .to_string();
                let ttl = body["expires_in"]
                    .as_u64()
                    .unwrap_or(300)
                    .saturating_sub(30)
                    .max(1);
                self.cache.lock().expect("cache").token =
                    Some((token.clone(), Instant::now() + Duration::from_secs(ttl)));
                Ok(token)
            }
        }
    }

    /// One request; classifies transport failures, 429 and 5xx as retryable, and a write sent
    /// but unanswered (timed out, or a 504 from a gateway) as of unknown outcome.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, ConnectorError> {
        let token = self.token().await?;
        let url = format!("{}{path}", self.settings.base_url);
        let mut req = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(token)
            .header("accept", "application/scim+json");
        req = crate::with_traceparent(req);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/scim+json")
                .body(b.to_string());
        }
        let writes = method != Method::GET;
        let res = req.send().await.map_err(|e| {
            let message = format!("{}: {method} {path}: {e}", self.system);
            ConnectorError::from_http(&e, writes, message)
        })?;
        let status = res.status();
        let retry_after = retry_after_ms(res.headers());
        let text = res.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        if writes && status == StatusCode::GATEWAY_TIMEOUT {
            return Err(ConnectorError::Unknown(format!(
                "{}: {method} {path}: {status}: {}",
                self.system,
                detail(&body)
            )));
        }
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Err(ConnectorError::Retryable {
                message: format!(
                    "{}: {method} {path}: {status}: {}",
                    self.system,
                    detail(&body)
                ),
                retry_after_ms: retry_after,
            });
        }
        if status == StatusCode::UNAUTHORIZED
            && matches!(self.settings.auth, Auth::ClientCredentials { .. })
        {
            // The token may have been revoked early: fetch a fresh one next time.
            self.cache.lock().expect("cache").token = None;
            return Err(ConnectorError::retryable(format!(
                "{}: {method} {path}: 401, token dropped",
                self.system
            )));
        }
        Ok(Reply { status, body })
    }

    fn permanent(&self, what: &str, r: &Reply) -> ConnectorError {
        ConnectorError::Permanent(format!(
            "{}: {what}: {}: {}",
            self.system,
            r.status,
            detail(&r.body)
        ))
    }

    async fn supports_patch(&self) -> Result<bool, ConnectorError> {
        if let Some(p) = self.cache.lock().expect("cache").patch {
            return Ok(p);
        }
        let r = self
            .send(Method::GET, "/ServiceProviderConfig", None)
            .await?;
        if !r.status.is_success() {
            return Err(self.permanent("reading ServiceProviderConfig", &r));
        }
        let p = r.body["patch"]["supported"].as_bool().unwrap_or(false);
        self.cache.lock().expect("cache").patch = Some(p);
        Ok(p)
    }

    async fn find(&self, filter: &str) -> Result<Option<Value>, ConnectorError> {
        let q = url_encode(filter);
        let r = self
            .send(Method::GET, &format!("/Users?filter={q}&count=2"), None)
            .await?;
        if !r.status.is_success() {
            return Err(self.permanent("searching users", &r));
        }
        Ok(r.body["Resources"]
            .as_array()
            .and_then(|a| a.first())
            .cloned())
    }

    /// The provider's id of the person's user, if it has one.
    async fn remote_id(&self, person_id: &str) -> Result<Option<String>, ConnectorError> {
        if let Some(id) = self.cache.lock().expect("cache").ids.get(person_id) {
            return Ok(Some(id.clone()));
        }
        let found = self
            .find(&format!("externalId eq {}", json!(person_id)))
            .await?
            .and_then(|u| u["id"].as_str().map(str::to_string));
        if let Some(id) = &found {
            self.cache
                .lock()
                .expect("cache")
                .ids
                .insert(person_id.to_string(), id.clone());
        }
        Ok(found)
    }

    fn remember(&self, person_id: &str, id: &str) {
        self.cache
            .lock()
            .expect("cache")
            .ids
            .insert(person_id.to_string(), id.to_string());
    }

    fn forget(&self, person_id: &str) {
        self.cache.lock().expect("cache").ids.remove(person_id);
    }

    /// Sets attributes of the user: a PATCH replace when supported, else read, merge, PUT.
    async fn set(&self, id: &str, changes: Map<String, Value>) -> Result<(), ConnectorError> {
        let path = format!("/Users/{id}");
        let r = if self.supports_patch().await? {
            let body = json!({ "schemas": [PATCH_OP], "Operations": [{ "op": "replace", "value": changes }] });
            self.send(Method::PATCH, &path, Some(&body)).await?
        } else {
            let cur = self.send(Method::GET, &path, None).await?;
            if !cur.status.is_success() {
                return Err(self.permanent("reading the user", &cur));
            }
            let mut user = cur.body;
            for (k, v) in changes {
                user[k] = v;
            }
            self.send(Method::PUT, &path, Some(&user)).await?
        };
        if r.status.is_success() {
            Ok(())
        } else {
            Err(self.permanent("updating the user", &r))
        }
    }

    async fn set_active(&self, person: &Person, active: bool) -> Result<(), ConnectorError> {
        match self.remote_id(&person.id).await? {
            // Disabling a missing account: nothing to do. Enabling one: it must exist.
            None if !active => Ok(()),
            None => Err(ConnectorError::Permanent(format!(
                "{}: no account for `{}` to enable",
                self.system, person.id
            ))),
            Some(id) => {
                let mut m = Map::new();
                m.insert("active".into(), Value::Bool(active));
                self.set(&id, m).await
            }
        }
    }

    async fn members(&self, group: &str, uid: &str, add: bool) -> Result<(), ConnectorError> {
        let path = format!("/Groups/{}", url_encode(group));
        let body = if add {
            json!({ "schemas": [PATCH_OP], "Operations": [{ "op": "add", "path": "members", "value": [{ "value": uid }] }] })
        } else {
            json!({ "schemas": [PATCH_OP], "Operations": [{ "op": "remove", "path": format!("members[value eq {}]", json!(uid)) }] })
        };
        if !self.supports_patch().await? {
            return Err(ConnectorError::Permanent(format!(
                "{}: group membership needs PATCH, which the provider does not support",
                self.system
            )));
        }
        let r = self.send(Method::PATCH, &path, Some(&body)).await?;
        if r.status.is_success() || (!add && r.status == StatusCode::NOT_FOUND) {
            Ok(())
        } else {
            Err(self.permanent(
                if add {
                    "adding a group member"
                } else {
                    "removing a group member"
                },
                &r,
            ))
        }
    }
}

/// A SCIM User as an inventory account: `id` is the key, `externalId` the person, `userName`,
/// the primary (else first) email and the enterprise `employeeNumber` the attributes, and the
/// `value`s (group ids) of `groups` the memberships, as `grant` names a group by its id.
fn inventory_account(u: &Value) -> Option<InventoryAccount> {
    let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
    let key = text(&u["id"])?;
    let mut attributes = BTreeMap::new();
    if let Some(name) = text(&u["userName"]) {
        attributes.insert(attribute::USERNAME.to_string(), name);
    }
    let emails = u["emails"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let email = emails
        .iter()
        .find(|e| e["primary"].as_bool() == Some(true))
        .or_else(|| emails.first())
        .and_then(|e| text(&e["value"]));
    if let Some(email) = email {
        attributes.insert(attribute::EMAIL.to_string(), email);
    }
    if let Some(n) = text(&u[ENTERPRISE]["employeeNumber"]) {
        attributes.insert(attribute::EMPLOYEE_ID.to_string(), n);
    }
    let mut memberships: Vec<String> = u["groups"]
        .as_array()
        .map(|a| a.iter().filter_map(|g| text(&g["value"])).collect())
        .unwrap_or_default();
    memberships.sort();
    memberships.dedup();
    Some(InventoryAccount {
        key,
        person_id: text(&u["externalId"]),
        enabled: u["active"].as_bool().unwrap_or(true),
        attributes,
        memberships,
    })
}

/// The provider's users by `startIndex` and `count`, in the provider's order; a provider that
/// answers with more than `count` has the rest handed out on the next calls.
struct ScimPages<'a> {
    connector: &'a ScimConnector,
    page_size: usize,
    /// The next `startIndex` (1-based).
    start: usize,
    ready: VecDeque<InventoryAccount>,
    done: bool,
}

#[async_trait]
impl InventoryPages for ScimPages<'_> {
    async fn next_page(&mut self) -> Result<Option<Vec<InventoryAccount>>, ConnectorError> {
        while self.ready.len() < self.page_size && !self.done {
            let c = self.connector;
            let r = c
                .send(
                    Method::GET,
                    &format!(
                        "/Users?startIndex={}&count={}&attributes={INVENTORY_ATTRIBUTES}",
                        self.start, self.page_size
                    ),
                    None,
                )
                .await?;
            if !r.status.is_success() {
                return Err(c.permanent("listing users", &r));
            }
            let users = r.body["Resources"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            for u in users {
                match inventory_account(u) {
                    Some(a) => self.ready.push_back(a),
                    None => {
                        tracing::warn!(system = %c.system, "a SCIM user without an id is left out of the inventory")
                    }
                }
            }
            self.start += users.len();
            self.done = users.is_empty()
                || match r.body["totalResults"].as_u64() {
                    Some(total) => self.start as u64 > total,
                    None => users.len() < self.page_size,
                };
        }
        let n = self.ready.len().min(self.page_size);
        Ok((n > 0).then(|| self.ready.drain(..n).collect()))
    }
}

fn url_encode(s: &str) -> String {
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

#[async_trait]
impl Connector for ScimConnector {
    async fn create_account(&self, _op: &Op, person: &Person) -> Result<(), ConnectorError> {
        if self.remote_id(&person.id).await?.is_some() {
            return Ok(());
        }
        let body = Value::Object(user_body(&self.settings.attributes, person));
        let r = self.send(Method::POST, "/Users", Some(&body)).await?;
        if r.status == StatusCode::CREATED || r.status == StatusCode::OK {
            if let Some(id) = r.body["id"].as_str() {
                self.remember(&person.id, id);
            }
            return Ok(());
        }
        if r.status == StatusCode::CONFLICT {
            // The account exists already (made by hand, or by a call whose answer was lost):
            // link it by userName and claim it with our externalId.
            let user_name = body["userName"].clone();
            let Some(existing) = self.find(&format!("userName eq {user_name}")).await? else {
                return Err(self.permanent(
                    "creating the user (409, but no user with that userName)",
                    &r,
                ));
            };
            let id = existing["id"].as_str().unwrap_or_default().to_string();
            let mut m = Map::new();
            m.insert("externalId".into(), json!(person.id));
            self.set(&id, m).await?;
            self.remember(&person.id, &id);
            tracing::info!(system = %self.system, person = %person.id, "linked an existing SCIM user");
            return Ok(());
        }
        Err(self.permanent("creating the user", &r))
    }

    async fn update_account(&self, _op: &Op, person: &Person) -> Result<(), ConnectorError> {
        let id = self.remote_id(&person.id).await?.ok_or_else(|| {
            ConnectorError::Permanent(format!(
                "{}: no account for `{}` to update",
                self.system, person.id
            ))
        })?;
        let mut body = user_body(&self.settings.attributes, person);
        body.remove("schemas");
        self.set(&id, body).await
    }

    async fn enable_account(&self, _op: &Op, person: &Person) -> Result<(), ConnectorError> {
        self.set_active(person, true).await
    }

    async fn disable_account(&self, _op: &Op, person: &Person) -> Result<(), ConnectorError> {
        self.set_active(person, false).await
    }

    async fn delete_account(&self, _op: &Op, person: &Person) -> Result<(), ConnectorError> {
        let Some(id) = self.remote_id(&person.id).await? else {
            return Ok(());
        };
        let r = self
            .send(Method::DELETE, &format!("/Users/{id}"), None)
            .await?;
        self.forget(&person.id);
        if r.status.is_success() || r.status == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(self.permanent("deleting the user", &r))
        }
    }

    async fn grant(
        &self,
        _op: &Op,
        person: &Person,
        e: &Entitlement,
    ) -> Result<(), ConnectorError> {
        if e.kind == "account" {
            return Ok(());
        }
        let uid = self.remote_id(&person.id).await?.ok_or_else(|| {
            ConnectorError::Permanent(format!(
                "{}: no account for `{}` to add to `{}`",
                self.system, person.id, e.name
            ))
        })?;
        self.members(&e.name, &uid, true).await
    }

    async fn revoke(
        &self,
        _op: &Op,
        person: &Person,
        e: &Entitlement,
    ) -> Result<(), ConnectorError> {
        if e.kind == "account" {
            return Ok(());
        }
        let Some(uid) = self.remote_id(&person.id).await? else {
            return Ok(());
        };
        self.members(&e.name, &uid, false).await
    }

    async fn list_accounts(&self) -> Result<Vec<RemoteAccount>, ConnectorError> {
        let mut out = Vec::new();
        let mut start = 1;
        loop {
            let r = self
                .send(
                    Method::GET,
                    &format!("/Users?startIndex={start}&count={PAGE}&attributes=externalId,active"),
                    None,
                )
                .await?;
            if !r.status.is_success() {
                return Err(self.permanent("listing users", &r));
            }
            let page = r.body["Resources"].as_array().cloned().unwrap_or_default();
            for u in &page {
                if let Some(pid) = u["externalId"].as_str() {
                    out.push(RemoteAccount {
                        person_id: pid.to_string(),
                        enabled: u["active"].as_bool().unwrap_or(true),
                    });
                }
            }
            let total = r.body["totalResults"].as_u64().unwrap_or(0) as usize;
            start += page.len();
            if page.is_empty() || start > total {
                return Ok(out);
            }
        }
    }

    async fn list_memberships(&self, person_id: &str) -> Result<Vec<String>, ConnectorError> {
        let Some(id) = self.remote_id(person_id).await? else {
            return Ok(Vec::new());
        };
        let r = self
            .send(Method::GET, &format!("/Users/{id}?attributes=groups"), None)
            .await?;
        if !r.status.is_success() {
            return Err(self.permanent("reading the user's groups", &r));
        }
        Ok(r.body["groups"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|g| g["value"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn inventory(&self, page_size: usize) -> Result<Inventory<'_>, ConnectorError> {
        Ok(Inventory::Pages(Box::new(ScimPages {
            connector: self,
            page_size: page_size.max(1),
            start: 1,
            ready: VecDeque::new(),
            done: false,
        })))
    }

    async fn health(&self) -> Result<(), ConnectorError> {
        let r = self
            .send(Method::GET, "/ServiceProviderConfig", None)
            .await?;
        if r.status.is_success() {
            Ok(())
        } else {
            Err(self.permanent("ServiceProviderConfig", &r))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_and_secrets_come_from_the_environment() {
        let m = |v: Value| v.as_object().unwrap().clone();
        assert!(
            ScimSettings::from_map(&m(json!({})))
                .unwrap_err()
                .contains("base_url")
        );
        assert!(
            ScimSettings::from_map(&m(json!({ "base_url": "ftp://x" })))
                .unwrap_err()
                .contains("http")
        );
        assert!(
            ScimSettings::from_map(&m(
                json!({ "base_url": "http://x", "token_env": "TENURE_SCIM_TEST_UNSET" })
            ))
            .unwrap_err()
            .contains("TENURE_SCIM_TEST_UNSET")
        );
        assert!(
            ScimSettings::from_map(&m(json!({ "base_url": "http://x", "tokn": "x" })))
                .unwrap_err()
                .contains("unknown setting `tokn`")
        );
        // SAFETY: only this test reads this variable.
        unsafe { std::env::set_var("TENURE_SCIM_TEST_TOKEN", "s3cret") };
        let s = ScimSettings::from_map(&m(json!({
            "base_url": "http://x/scim/v2/", "token_env": "TENURE_SCIM_TEST_TOKEN",
            "attributes": { "userName": "email", "title": "title" }
        })))
        .unwrap();
        assert_eq!(s.base_url, "http://x/scim/v2");
        assert_eq!(
            format!("{:?}", s.auth),
            "Bearer(***)",
            "secrets never print"
        );
        let bad = ScimSettings::from_map(&m(json!({
            "base_url": "http://x", "token_env": "TENURE_SCIM_TEST_TOKEN",
            "attributes": { "userName": "mail" }
        })));
        assert!(bad.unwrap_err().contains("unknown tenure field `mail`"));
    }

    #[test]
    fn persons_map_to_scim_users() {
        let p = Person {
            id: "p1".into(),
            name: "Ada King Lovelace".into(),
            email: "ada@example.com".into(),
            worker_type: tenure_core::WorkerType::Contractor,
            department: Some("Engineering".into()),
            title: None,
            location: None,
            manager: None,
            start_date: None,
            end_date: None,
            status: tenure_core::PersonStatus::Active,
            attributes: Default::default(),
        };
        let body = user_body(&default_attributes(), &p);
        assert_eq!(
            Value::Object(body),
            json!({
                "schemas": [USER, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
                "externalId": "p1",
                "userName": "ada@example.com",
                "displayName": "Ada King Lovelace",
                "name": { "givenName": "Ada", "familyName": "King Lovelace" },
                "emails": [{ "value": "ada@example.com", "type": "work", "primary": true }],
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": { "department": "Engineering" },
            })
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after_ms(&h), Some(3000));
        h.insert(
            reqwest::header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after_ms(&h), Some(0), "a date in the past: now");
        h.insert(reqwest::header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after_ms(&h), None);
    }

    /// A minimal HTTP/1.1 server on loopback answering each request by its head (request line
    /// and headers), so
    /// the connector's handling of what real providers send (throttling, SCIM errors, pages)
    /// is tested over a real socket.
    /// An answer: status, extra headers, body.
    type Answer = (u16, Vec<(&'static str, String)>, String);

    async fn fake(answer: fn(&str) -> Answer) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    loop {
                        let mut buf = Vec::new();
                        let mut byte = [0u8; 1];
                        while !buf.ends_with(b"\r\n\r\n") {
                            if sock.read(&mut byte).await.unwrap_or(0) == 0 {
                                return;
                            }
                            buf.push(byte[0]);
                        }
                        let head = String::from_utf8_lossy(&buf).to_string();
                        let len = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        let mut body = vec![0u8; len];
                        if len > 0 && sock.read_exact(&mut body).await.is_err() {
                            return;
                        }
                        let (status, headers, text) = answer(&head);
                        let mut out = format!(
                            "HTTP/1.1 {status} X\r\ncontent-length: {}\r\ncontent-type: application/scim+json\r\n",
                            text.len()
                        );
                        for (k, v) in headers {
                            out.push_str(&format!("{k}: {v}\r\n"));
                        }
                        out.push_str("\r\n");
                        out.push_str(&text);
                        if sock.write_all(out.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        format!("http://{addr}/scim/v2")
    }

    fn connector(base: String) -> ScimConnector {
        ScimConnector::new(
            "peer",
            ScimSettings {
                base_url: base,
                auth: Auth::Bearer("t".into()),
                attributes: default_attributes(),
                timeout: Duration::from_secs(5),
            },
        )
        .unwrap()
    }

    #[tokio::test]
    async fn throttling_is_retryable_with_its_delay_and_scim_errors_are_permanent() {
        let base = fake(|head| {
            let line = head.lines().next().unwrap_or("");
            if line.contains("ServiceProviderConfig") {
                (429, vec![("retry-after", "7".into())], String::new())
            } else if line.starts_with("DELETE") {
                (503, vec![], String::new())
            } else {
                (400, vec![], json!({ "status": "400", "scimType": "invalidValue", "detail": "bad userName" }).to_string())
            }
        })
        .await;
        let c = connector(base);
        assert_eq!(
            c.health().await,
            Err(ConnectorError::Retryable {
                message: "peer: GET /ServiceProviderConfig: 429 Too Many Requests: (no SCIM body)"
                    .into(),
                retry_after_ms: Some(7000),
            })
        );
        let e = c.list_accounts().await.unwrap_err();
        assert!(!e.is_retryable());
        assert!(e.to_string().contains("bad userName (invalidValue)"), "{e}");
        c.remember("p1", "u1");
        let p = Person::new("p1", "A", "a@example.com");
        let op = Op {
            id: "op".into(),
            attempt: 1,
            priority: tenure_core::run::Priority::Normal,
        };
        assert!(c.delete_account(&op, &p).await.unwrap_err().is_retryable());
    }

    #[tokio::test]
    async fn listing_pages_through_every_user() {
        let base = fake(|head| {
            let line = head.lines().next().unwrap_or("");
            // 5 users, served 2 per page whatever count is asked: the connector follows
            // startIndex and totalResults.
            let start: usize = line
                .split("startIndex=")
                .nth(1)
                .and_then(|r| r.split('&').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
            let users: Vec<Value> = (start..=5)
                .take(2)
                .map(|i| json!({ "id": format!("u{i}"), "externalId": format!("p{i}"), "active": i != 3 }))
                .collect();
            (200, vec![], json!({ "totalResults": 5, "startIndex": start, "itemsPerPage": users.len(), "Resources": users }).to_string())
        })
        .await;
        let got = connector(base).list_accounts().await.unwrap();
        let ids: Vec<(String, bool)> = got.into_iter().map(|a| (a.person_id, a.enabled)).collect();
        assert_eq!(
            ids,
            [
                ("p1", true),
                ("p2", true),
                ("p3", false),
                ("p4", true),
                ("p5", true)
            ]
            .map(|(p, e)| (p.to_string(), e))
        );
    }

    /// The inventory follows `startIndex` over pages the provider cuts at two users whatever
    /// `count` asks, asks for just the attributes it reads, and hands out at most `page_size`
    /// accounts a page.
    #[tokio::test]
    async fn inventory_pages_through_users_with_their_groups() {
        let base = fake(|head| {
            let line = head.lines().next().unwrap_or("");
            let param = |name: &str| {
                line.split(&format!("{name}="))
                    .nth(1)
                    .and_then(|r| r.split(['&', ' ']).next())
                    .unwrap_or("")
                    .to_string()
            };
            if !line.starts_with("GET /scim/v2/Users?")
                || param("attributes") != INVENTORY_ATTRIBUTES
            {
                return (400, vec![], json!({ "detail": line }).to_string());
            }
            let start: usize = param("startIndex").parse().unwrap_or(1);
            let count: usize = param("count").parse().unwrap_or(100);
            let user = |i: usize| match i {
                1 => json!({
                    "id": "u1", "externalId": "p1", "userName": "ada", "active": true,
                    "emails": [{ "value": "ada@home.example" }, { "value": "ada@example.com", "primary": true }],
                    "groups": [{ "value": "g-vpn", "display": "VPN" }, { "value": "g-dev", "display": "Developers" }],
                    ENTERPRISE: { "employeeNumber": "E1" },
                }),
                // Made by hand: no externalId, disabled, nothing else.
                2 => json!({ "id": "u2", "userName": "svc-backup", "active": false }),
                3 => json!({ "id": "u3", "externalId": "p3", "userName": "cy", "emails": [{ "value": "cy@example.com" }], "groups": [] }),
                i => json!({ "id": format!("u{i}"), "externalId": format!("p{i}"), "userName": format!("user{i}") }),
            };
            let users: Vec<Value> = (start..=5).take(count.min(2)).map(user).collect();
            (200, vec![], json!({ "totalResults": 5, "startIndex": start, "itemsPerPage": users.len(), "Resources": users }).to_string())
        })
        .await;
        let c = connector(base);
        let all = |page_size| {
            let c = &c;
            async move {
                let Inventory::Pages(mut pages) = c.inventory(page_size).await.unwrap() else {
                    panic!("SCIM lists its users");
                };
                let mut got = Vec::new();
                while let Some(page) = pages.next_page().await.unwrap() {
                    got.push(page);
                }
                assert_eq!(pages.next_page().await.unwrap(), None);
                got
            }
        };
        let got = all(2).await;
        assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
        let got: Vec<InventoryAccount> = got.into_iter().flatten().collect();
        let attrs = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        assert_eq!(
            got[0],
            InventoryAccount {
                key: "u1".into(),
                person_id: Some("p1".into()),
                enabled: true,
                attributes: attrs(&[
                    (attribute::USERNAME, "ada"),
                    (attribute::EMAIL, "ada@example.com"),
                    (attribute::EMPLOYEE_ID, "E1"),
                ]),
                memberships: vec!["g-dev".into(), "g-vpn".into()],
            }
        );
        assert_eq!(
            got[1],
            InventoryAccount {
                key: "u2".into(),
                person_id: None,
                enabled: false,
                attributes: attrs(&[(attribute::USERNAME, "svc-backup")]),
                memberships: vec![],
            }
        );
        assert_eq!(
            got[2].attributes,
            attrs(&[
                (attribute::USERNAME, "cy"),
                (attribute::EMAIL, "cy@example.com")
            ])
        );
        assert_eq!(
            got.iter().map(|a| a.key.as_str()).collect::<Vec<_>>(),
            ["u1", "u2", "u3", "u4", "u5"]
        );
        // Pages smaller than the provider's: the rest of its page waits for the next call.
        let one = all(1).await;
        assert_eq!(one.iter().map(Vec::len).collect::<Vec<_>>(), [1; 5]);
        assert_eq!(one.into_iter().flatten().collect::<Vec<_>>(), got);
    }

    #[tokio::test]
    async fn oauth_client_credentials_fetch_a_token_keep_it_and_drop_it_on_401() {
        let base = fake(|head| {
            let line = head.lines().next().unwrap_or("");
            let auth = head
                .lines()
                .find_map(|l| l.strip_prefix("authorization: "))
                .unwrap_or("");
            if line.starts_with("POST /scim/v2/token") {
                // Basic base64("tenure:s3cret")
                if auth == "Basic dGVudXJlOnMzY3JldA=="
                    && head.contains("application/x-www-form-urlencoded")
                {
                    (
                        200,
                        vec![],
                        json!({ "access_token": "tok-1", "expires_in": 3600 }).to_string(),
                    )
                } else {
                    (
                        401,
                        vec![],
                        json!({ "error": "invalid_client" }).to_string(),
                    )
                }
            } else if line.contains("/Users/gone") {
                (401, vec![], String::new())
            } else if auth == "Bearer tok-1" {
                (
                    200,
                    vec![],
                    json!({ "patch": { "supported": true } }).to_string(),
                )
            } else {
                (401, vec![], String::new())
            }
        })
        .await;
        let c = ScimConnector::new(
            "peer",
            ScimSettings {
                base_url: base.clone(),
                auth: Auth::ClientCredentials {
                    token_url: format!("{base}/token"),
                    client_id: "tenure".into(),
                    client_secret: "s3cret".into(),
                    scope: Some("scim".into()),
                },
                attributes: default_attributes(),
                timeout: Duration::from_secs(5),
            },
        )
        .unwrap();
        assert_eq!(c.health().await, Ok(()));
        assert!(c.cache.lock().unwrap().token.is_some(), "the token is kept");
        assert_eq!(c.health().await, Ok(()));
        // A 401 drops the token (retryable: the next call fetches a fresh one).
        let e = c.send(Method::GET, "/Users/gone", None).await.unwrap_err();
        assert!(e.is_retryable(), "{e}");
        assert!(c.cache.lock().unwrap().token.is_none());
        // Wrong credentials are permanent.
        let bad = ScimConnector::new(
            "peer",
            ScimSettings {
                base_url: base.clone(),
                auth: Auth::ClientCredentials {
                    token_url: format!("{base}/token"),
                    client_id: "tenure".into(),
                    client_secret: "wrong".into(),
                    scope: None,
                },
                attributes: default_attributes(),
                timeout: Duration::from_secs(5),
            },
        )
        .unwrap();
        let e = bad.health().await.unwrap_err();
        assert!(
            !e.is_retryable() && e.to_string().contains("invalid_client"),
            "{e}"
        );
    }
}
