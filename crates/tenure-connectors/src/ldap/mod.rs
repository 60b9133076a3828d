//! `ldap`: accounts and group memberships in an LDAP directory.
//!
//! Two conventions, chosen by `flavor`:
//! - `openldap`: people are `inetOrgPerson` entries named `uid=<id>` under `users_dn`, groups
//!   are `groupOfNames` with `member` DNs. Disabling moves the entry to `disabled_users_dn` and
//!   removes its `userPassword` (so a simple bind fails); enabling moves it back.
//! - `ad` (Active Directory's attributes): `user` entries named `cn=<id>` with `sAMAccountName`,
//!   groups `group` with `member`; disabling sets the `ACCOUNTDISABLE` bit (2) of
//!   `userAccountControl`, enabling clears it.
//!
//! An entitlement's `name` is the group's `cn` under `groups_dn`, or a full DN when it holds
//! `=`. `list_accounts` pages through the directory (RFC 2696 paged results), and so does
//! `inventory`, one search per base streamed across its pages; it reads the groups under
//! `groups_dn` once (`openldap`) or each account's `memberOf` (`ad`) for the memberships.
//! "Already exists", "already a member", "no such entry" and "not a member" count as done
//! where the trait says so; everything else is classified by LDAP result code ([`classify`]).

use crate::settings::{self, Secret};
use crate::{
    Connector, ConnectorError, Inventory, InventoryAccount, InventoryPages, Op, RemoteAccount,
    attribute,
};
use async_trait::async_trait;
use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::{
    Ldap, LdapConnAsync, LdapConnSettings, LdapError, Mod, Scope, SearchEntry, SearchStream,
};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::time::Duration;
use tenure_core::{Entitlement, Person};
use tokio::sync::Mutex;

/// Which directory conventions to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    /// `inetOrgPerson` / `groupOfNames` (OpenLDAP, 389-ds, ...).
    Openldap,
    /// Active Directory: `user` / `group`, `sAMAccountName`, `userAccountControl`.
    Ad,
}

/// An `ldap` system's settings (the `[systems.settings]` table).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapSettings {
    /// `ldap://host:389` or `ldaps://host:636`.
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS before binding.
    #[serde(default)]
    pub starttls: bool,
    /// Skip certificate verification (only for test directories with self-signed certificates).
    #[serde(default)]
    pub tls_insecure_skip_verify: bool,
    /// The DN tenure binds as.
    pub bind_dn: String,
    /// Environment variable holding the bind password.
    pub bind_password_env: String,
    /// `openldap` (default) or `ad`.
    #[serde(default = "default_flavor")]
    pub flavor: Flavor,
    /// Where accounts are created.
    pub users_dn: String,
    /// Where disabled accounts are moved (`openldap` flavor; required there).
    pub disabled_users_dn: Option<String>,
    /// Where groups named by a bare `cn` live.
    pub groups_dn: String,
    /// A DN put in a `groupOfNames` when its last real member leaves (the schema requires one
    /// member); without it, removing the last member fails as a schema violation.
    pub empty_group_member: Option<String>,
    /// `userAccountControl` for new AD accounts (default 512, a normal enabled account; use
    /// 514 if the domain requires a password before enabling).
    #[serde(default = "default_uac")]
    pub ad_create_uac: u32,
    /// Page size for `list_accounts`.
    #[serde(default = "default_page")]
    pub page_size: i32,
    /// Timeout for connecting and for each operation.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_flavor() -> Flavor {
    Flavor::Openldap
}
fn default_uac() -> u32 {
    512
}
fn default_page() -> i32 {
    500
}
fn default_timeout_ms() -> u64 {
    10_000
}

impl LdapSettings {
    /// Reads and checks settings from a system's settings map.
    pub fn from_map(map: &serde_json::Map<String, serde_json::Value>) -> Result<Self, String> {
        settings::refuse_inline_secrets(map, &["bind_password", "password"])?;
        let s: LdapSettings = settings::parse(map)?;
        let url = url::Url::parse(&s.url).map_err(|e| format!("url: {e}"))?;
        match url.scheme() {
            "ldap" => {}
            "ldaps" if !s.starttls => {}
            "ldaps" => return Err("starttls applies to ldap:// URLs, not ldaps://".into()),
            other => return Err(format!("url: scheme must be ldap or ldaps, not `{other}`")),
        }
        if s.flavor == Flavor::Openldap && s.disabled_users_dn.is_none() {
            return Err("disabled_users_dn is required with flavor = \"openldap\"".into());
        }
        if s.page_size < 1 {
            return Err("page_size must be at least 1".into());
        }
        Ok(s)
    }
}

/// Result codes (RFC 4511 appendix A).
mod rc {
    pub const NO_SUCH_ATTRIBUTE: u32 = 16;
    pub const ATTRIBUTE_OR_VALUE_EXISTS: u32 = 20;
    pub const NO_SUCH_OBJECT: u32 = 32;
    pub const BUSY: u32 = 51;
    pub const UNAVAILABLE: u32 = 52;
    pub const UNWILLING_TO_PERFORM: u32 = 53;
    pub const OBJECT_CLASS_VIOLATION: u32 = 65;
    pub const ENTRY_ALREADY_EXISTS: u32 = 68;
    pub const TIME_LIMIT_EXCEEDED: u32 = 3;
    pub const ADMIN_LIMIT_EXCEEDED: u32 = 11;
    pub const OTHER: u32 = 80;
}

/// Sorts an LDAP failure into retryable or permanent. Transport failures, `busy`,
/// `unavailable`, limits and `other` are retryable; an operation timed out or cut off while
/// awaiting its result has an unknown outcome (retried too); every other result code (schema and
/// syntax violations, access refused, bad credentials, no such object where one must exist)
/// is permanent. The bind password never appears in these messages.
pub fn classify(e: &LdapError) -> ConnectorError {
    match e {
        LdapError::LdapResult { result } => {
            let msg = format!("ldap result {}: {}", result.rc, result.text);
            match result.rc {
                rc::BUSY
                | rc::UNAVAILABLE
                | rc::TIME_LIMIT_EXCEEDED
                | rc::ADMIN_LIMIT_EXCEEDED
                | rc::OTHER => ConnectorError::retryable(msg),
                _ => ConnectorError::Permanent(msg),
            }
        }
        LdapError::UrlParsing { .. }
        | LdapError::UnknownScheme(_)
        | LdapError::FilterParsing
        | LdapError::AddNoValues => ConnectorError::Permanent(format!("ldap: {e}")),
        // Sent, then no answer: the server may have applied it.
        LdapError::Timeout { .. } | LdapError::ResultRecv { .. } | LdapError::EndOfStream => {
            ConnectorError::Unknown(format!("ldap: {e}"))
        }
        _ => ConnectorError::retryable(format!("ldap: {e}")),
    }
}

fn result_code(r: &Result<ldap3::LdapResult, LdapError>) -> Option<u32> {
    match r {
        Ok(res) => Some(res.rc),
        Err(LdapError::LdapResult { result }) => Some(result.rc),
        Err(_) => None,
    }
}

/// Turns an operation's outcome into success, or a classified error; `done` lists result
/// codes that mean "already so".
fn outcome(r: Result<ldap3::LdapResult, LdapError>, done: &[u32]) -> Result<(), ConnectorError> {
    match result_code(&r) {
        Some(0) => Ok(()),
        Some(c) if done.contains(&c) => Ok(()),
        _ => match r {
            Ok(res) => Err(classify(&LdapError::LdapResult { result: res })),
            Err(e) => Err(classify(&e)),
        },
    }
}

/// Drives accounts and groups in one directory, over one multiplexed connection that is
/// opened (and bound) on first use and again after it breaks.
pub struct LdapConnector {
    settings: LdapSettings,
    password: Secret,
    conn: Mutex<Option<Ldap>>,
}

impl LdapConnector {
    /// A connector; nothing is contacted until the first call.
    pub fn new(settings: LdapSettings, password: Secret) -> LdapConnector {
        LdapConnector {
            settings,
            password,
            conn: Mutex::new(None),
        }
    }

    /// Builds the connector from a system's settings map, reading the bind password from the
    /// environment.
    pub fn from_map(map: &serde_json::Map<String, serde_json::Value>) -> Result<Self, String> {
        let s = LdapSettings::from_map(map)?;
        let password = Secret::from_env("bind_password_env", &s.bind_password_env)?;
        Ok(LdapConnector::new(s, password))
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.settings.timeout_ms)
    }

    /// A bound handle, connecting first if there is none or the last one broke.
    async fn ldap(&self) -> Result<Ldap, ConnectorError> {
        let mut slot = self.conn.lock().await;
        if let Some(l) = slot.as_mut()
            && !l.is_closed()
        {
            return Ok(l.clone());
        }
        *slot = None;
        let conn_settings = LdapConnSettings::new()
            .set_conn_timeout(self.timeout())
            .set_starttls(self.settings.starttls)
            .set_no_tls_verify(self.settings.tls_insecure_skip_verify);
        let (conn, mut ldap) = LdapConnAsync::with_settings(conn_settings, &self.settings.url)
            .await
            .map_err(|e| classify(&e).before_sending())?;
        tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::warn!(error = %e, "ldap connection ended");
            }
        });
        let bind = ldap
            .with_timeout(self.timeout())
            .simple_bind(&self.settings.bind_dn, self.password.expose())
            .await;
        outcome(bind, &[]).map_err(ConnectorError::before_sending)?;
        *slot = Some(ldap.clone());
        Ok(ldap)
    }

    /// Runs one operation with the timeout; a transport failure drops the connection so the
    /// next call reconnects.
    async fn run<F, Fut>(
        &self,
        f: F,
    ) -> Result<Result<ldap3::LdapResult, LdapError>, ConnectorError>
    where
        F: FnOnce(Ldap) -> Fut,
        Fut: std::future::Future<Output = Result<ldap3::LdapResult, LdapError>>,
    {
        let ldap = self.ldap().await?;
        let r = f(ldap).await;
        if let Err(e) = &r
            && !matches!(e, LdapError::LdapResult { .. })
        {
            *self.conn.lock().await = None;
        }
        Ok(r)
    }

    fn id_attribute(&self) -> &'static str {
        match self.settings.flavor {
            Flavor::Openldap => "uid",
            Flavor::Ad => "sAMAccountName",
        }
    }

    fn rdn_attribute(&self) -> &'static str {
        match self.settings.flavor {
            Flavor::Openldap => "uid",
            Flavor::Ad => "cn",
        }
    }

    /// The DN a person's account gets when created (and has while enabled, on OpenLDAP).
    pub fn user_dn(&self, person_id: &str) -> String {
        format!(
            "{}={},{}",
            self.rdn_attribute(),
            ldap3::dn_escape(person_id),
            self.settings.users_dn
        )
    }

    fn disabled_dn(&self, person_id: &str) -> Option<String> {
        self.settings.disabled_users_dn.as_ref().map(|base| {
            format!(
                "{}={},{base}",
                self.rdn_attribute(),
                ldap3::dn_escape(person_id)
            )
        })
    }

    /// A group's DN from an entitlement name.
    pub fn group_dn(&self, name: &str) -> String {
        if name.contains('=') {
            name.to_string()
        } else {
            format!("cn={},{}", ldap3::dn_escape(name), self.settings.groups_dn)
        }
    }

    /// Where the person's account is now, with its entry, if anywhere.
    async fn locate(&self, person_id: &str) -> Result<Option<SearchEntry>, ConnectorError> {
        let filter = format!(
            "({}={})",
            self.id_attribute(),
            ldap3::ldap_escape(person_id)
        );
        let mut bases = vec![self.settings.users_dn.clone()];
        bases.extend(self.settings.disabled_users_dn.clone());
        for base in bases {
            let mut ldap = self.ldap().await?;
            let r = ldap
                .with_timeout(self.timeout())
                .search(
                    &base,
                    Scope::OneLevel,
                    &filter,
                    vec![self.id_attribute(), "userAccountControl"],
                )
                .await;
            let r = match r {
                Ok(r) => r,
                Err(e) => {
                    *self.conn.lock().await = None;
                    return Err(classify(&e));
                }
            };
            match r.success() {
                Ok((entries, _)) => {
                    if let Some(e) = entries.into_iter().next() {
                        return Ok(Some(SearchEntry::construct(e)));
                    }
                }
                Err(LdapError::LdapResult { result }) if result.rc == rc::NO_SUCH_OBJECT => {}
                Err(e) => return Err(classify(&e)),
            }
        }
        Ok(None)
    }

    fn person_attributes(&self, person: &Person) -> Vec<(String, HashSet<String>)> {
        let one = |v: &str| HashSet::from([v.to_string()]);
        let sn = person
            .name
            .split_whitespace()
            .last()
            .unwrap_or(&person.id)
            .to_string();
        let mut attrs = vec![
            ("displayName".to_string(), one(&person.name)),
            ("sn".to_string(), one(&sn)),
            ("mail".to_string(), one(&person.email)),
        ];
        let mut opt = |k: &str, v: &Option<String>| {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                attrs.push((k.to_string(), one(v)));
            }
        };
        match self.settings.flavor {
            Flavor::Openldap => {
                opt("departmentNumber", &person.department);
                opt("title", &person.title);
                opt("l", &person.location);
            }
            Flavor::Ad => {
                opt("department", &person.department);
                opt("title", &person.title);
                opt("l", &person.location);
            }
        }
        attrs
    }

    async fn set_uac_bit(
        &self,
        dn: &str,
        current: u32,
        disabled: bool,
    ) -> Result<(), ConnectorError> {
        let uac = if disabled { current | 2 } else { current & !2 };
        if uac == current {
            return Ok(());
        }
        let r = self
            .run(|mut l| {
                let dn = dn.to_string();
                let timeout = self.timeout();
                async move {
                    l.with_timeout(timeout)
                        .modify(
                            &dn,
                            vec![Mod::Replace(
                                "userAccountControl".to_string(),
                                HashSet::from([uac.to_string()]),
                            )],
                        )
                        .await
                }
            })
            .await?;
        outcome(r, &[])
    }

    async fn modify(
        &self,
        dn: &str,
        mods: Vec<Mod<String>>,
    ) -> Result<Result<ldap3::LdapResult, LdapError>, ConnectorError> {
        let timeout = self.timeout();
        let dn = dn.to_string();
        self.run(|mut l| async move { l.with_timeout(timeout).modify(&dn, mods).await })
            .await
    }

    async fn move_entry(
        &self,
        dn: &str,
        person_id: &str,
        new_sup: &str,
    ) -> Result<(), ConnectorError> {
        let rdn = format!("{}={}", self.rdn_attribute(), ldap3::dn_escape(person_id));
        let timeout = self.timeout();
        let (dn, new_sup) = (dn.to_string(), new_sup.to_string());
        let r = self
            .run(|mut l| async move {
                l.with_timeout(timeout)
                    .modifydn(&dn, &rdn, true, Some(&new_sup))
                    .await
            })
            .await?;
        outcome(r, &[])
    }

    fn is_disabled(&self, entry: &SearchEntry) -> bool {
        match self.settings.flavor {
            Flavor::Openldap => self
                .settings
                .disabled_users_dn
                .as_ref()
                .is_some_and(|d| entry.dn.to_lowercase().ends_with(&d.to_lowercase())),
            Flavor::Ad => uac_of(entry) & 2 != 0,
        }
    }
}

fn uac_of(entry: &SearchEntry) -> u32 {
    entry
        .attrs
        .get("userAccountControl")
        .and_then(|v| v.first())
        .and_then(|v| v.parse().ok())
        .unwrap_or(512)
}

/// Splits `s` at each `sep` not escaped by a backslash.
fn split_unescaped(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut escaped) = (0, false);
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&s[start..]);
    parts
}

/// An attribute value of a DN as it reads: `\XX` hex pairs and `\c` escapes undone, spaces
/// around it that are not escaped dropped.
fn dn_unescape(v: &str) -> String {
    let v = v.trim_start();
    let mut bytes = Vec::with_capacity(v.len());
    // Length of the value up to its last escaped byte: trailing spaces after it are padding.
    let mut kept = 0;
    let mut it = v.bytes().peekable();
    while let Some(b) = it.next() {
        if b != b'\\' {
            bytes.push(b);
            if b != b' ' {
                kept = bytes.len();
            }
            continue;
        }
        let Some(first) = it.next() else { break };
        let hex = |c: u8| (c as char).to_digit(16);
        match (hex(first), it.peek().copied().and_then(hex)) {
            (Some(hi), Some(lo)) => {
                it.next();
                bytes.push((hi * 16 + lo) as u8);
            }
            _ => bytes.push(first),
        }
        kept = bytes.len();
    }
    bytes.truncate(kept);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// One spelling of a DN for comparing DNs: attribute types and values lowercased (as
/// `is_disabled` compares), spaces around separators dropped, every value unescaped and
/// escaped again one way, so `uid=A\2Cb, ou=People` and `uid=a\,b,ou=people` are the same.
fn normalize_dn(dn: &str) -> String {
    split_unescaped(dn.trim(), ',')
        .into_iter()
        .map(|rdn| {
            split_unescaped(rdn, '+')
                .into_iter()
                .map(|ava| match ava.split_once('=') {
                    Some((t, v)) => format!(
                        "{}={}",
                        t.trim().to_lowercase(),
                        ldap3::dn_escape(dn_unescape(v).to_lowercase())
                    ),
                    None => ava.trim().to_lowercase(),
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The first RDN of `dn` (as written) and the value of its first attribute (unescaped).
fn first_rdn(dn: &str) -> (&str, Option<(&str, String)>) {
    let rdn = split_unescaped(dn, ',')[0];
    let ava = split_unescaped(rdn, '+')[0];
    (
        rdn.trim(),
        ava.split_once('=').map(|(t, v)| (t.trim(), dn_unescape(v))),
    )
}

/// An attribute of the entry, its name matched without regard to case.
fn attr<'e>(entry: &'e SearchEntry, name: &str) -> Option<&'e str> {
    entry
        .attrs
        .get(name)
        .or_else(|| {
            entry
                .attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        })?
        .first()
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

fn attr_values<'e>(entry: &'e SearchEntry, name: &str) -> &'e [String] {
    entry
        .attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
        .unwrap_or_default()
}

type Stream = SearchStream<'static, &'static str, Vec<&'static str>>;

/// The accounts under `users_dn` and then `disabled_users_dn`, streamed with the paged-results
/// control (`page_size` of the settings per request) and handed out `page_size` at a time.
struct LdapPages<'a> {
    connector: &'a LdapConnector,
    page_size: usize,
    /// Bases still to list.
    bases: VecDeque<String>,
    /// The search in progress, with its base.
    stream: Option<(String, Stream)>,
    /// `openldap`: the normalized DN of each `member` value of the groups under `groups_dn`,
    /// with the `cn`s of the groups that hold it. Read once; as large as the memberships.
    groups: HashMap<String, Vec<String>>,
}

impl LdapConnector {
    /// An account of the inventory from its entry, found under `base`.
    fn inventory_account(
        &self,
        groups: &HashMap<String, Vec<String>>,
        base: &str,
        entry: &SearchEntry,
    ) -> InventoryAccount {
        let id = attr(entry, self.id_attribute()).map(str::to_string);
        let (rdn, rdn_value) = first_rdn(&entry.dn);
        let key = id
            .clone()
            .or_else(|| rdn_value.map(|(_, v)| v))
            .unwrap_or_else(|| entry.dn.clone());
        let mut attributes = BTreeMap::new();
        if let Some(id) = &id {
            attributes.insert(attribute::USERNAME.to_string(), id.clone());
        }
        if let Some(mail) = attr(entry, "mail") {
            attributes.insert(attribute::EMAIL.to_string(), mail.to_string());
        }
        let employee = match self.settings.flavor {
            Flavor::Openldap => attr(entry, "employeeNumber"),
            Flavor::Ad => attr(entry, "employeeID").or_else(|| attr(entry, "employeeNumber")),
        };
        if let Some(e) = employee {
            attributes.insert(attribute::EMPLOYEE_ID.to_string(), e.to_string());
        }
        let mut memberships = BTreeSet::new();
        match self.settings.flavor {
            Flavor::Openldap => {
                // A member value names the account where it was when granted: here, or (moved
                // by disable or enable since) under the other base, as `revoke` knows.
                let other = if base == self.settings.users_dn {
                    self.settings.disabled_users_dn.as_deref()
                } else {
                    Some(self.settings.users_dn.as_str())
                };
                let mut dns = vec![normalize_dn(&entry.dn)];
                dns.extend(other.map(|o| normalize_dn(&format!("{rdn},{o}"))));
                for dn in dns {
                    memberships.extend(groups.get(&dn).into_iter().flatten().cloned());
                }
            }
            Flavor::Ad => {
                let under = format!(",{}", normalize_dn(&self.settings.groups_dn));
                for group in attr_values(entry, "memberOf") {
                    if normalize_dn(group).ends_with(&under)
                        && let (_, Some((t, cn))) = first_rdn(group)
                        && t.eq_ignore_ascii_case("cn")
                    {
                        memberships.insert(cn);
                    }
                }
            }
        }
        InventoryAccount {
            key,
            person_id: id,
            enabled: !self.is_disabled(entry),
            attributes,
            memberships: memberships.into_iter().collect(),
        }
    }
}

#[async_trait]
impl InventoryPages for LdapPages<'_> {
    async fn next_page(&mut self) -> Result<Option<Vec<InventoryAccount>>, ConnectorError> {
        let mut page = Vec::new();
        while page.len() < self.page_size {
            let Some((base, stream)) = &mut self.stream else {
                let Some(base) = self.bases.pop_front() else {
                    break;
                };
                let stream = self.connector.search_users(&base).await?;
                self.stream = Some((base, stream));
                continue;
            };
            match stream.next().await.map_err(|e| classify(&e))? {
                Some(entry) => {
                    let entry = SearchEntry::construct(entry);
                    page.push(self.connector.inventory_account(&self.groups, base, &entry));
                }
                None => {
                    let result = stream.finish().await.success();
                    self.stream = None;
                    match result {
                        Ok(_) => {}
                        Err(LdapError::LdapResult { result })
                            if result.rc == rc::NO_SUCH_OBJECT => {}
                        Err(e) => return Err(classify(&e)),
                    }
                }
            }
        }
        Ok((!page.is_empty()).then_some(page))
    }
}

impl LdapConnector {
    /// The paged search of the accounts directly under `base`.
    async fn search_users(&self, base: &str) -> Result<Stream, ConnectorError> {
        let class = match self.settings.flavor {
            Flavor::Openldap => "(objectClass=inetOrgPerson)",
            Flavor::Ad => "(&(objectClass=user)(!(objectClass=computer)))",
        };
        let attrs = match self.settings.flavor {
            Flavor::Openldap => vec!["uid", "mail", "employeeNumber"],
            Flavor::Ad => vec![
                "sAMAccountName",
                "mail",
                "employeeID",
                "employeeNumber",
                "userAccountControl",
                "memberOf",
            ],
        };
        let adapters: Vec<Box<dyn Adapter<_, _>>> = vec![
            Box::new(EntriesOnly::new()),
            Box::new(PagedResults::new(self.settings.page_size)),
        ];
        let mut ldap = self.ldap().await?;
        ldap.with_timeout(self.timeout())
            .streaming_search_with(adapters, base, Scope::OneLevel, class, attrs)
            .await
            .map_err(|e| classify(&e))
    }

    /// `openldap`: who is a member of which group under `groups_dn`, by normalized member DN,
    /// read with paged searches.
    async fn group_members(&self) -> Result<HashMap<String, Vec<String>>, ConnectorError> {
        let adapters: Vec<Box<dyn Adapter<_, _>>> = vec![
            Box::new(EntriesOnly::new()),
            Box::new(PagedResults::new(self.settings.page_size)),
        ];
        let mut ldap = self.ldap().await?;
        let mut stream = ldap
            .with_timeout(self.timeout())
            .streaming_search_with(
                adapters,
                &self.settings.groups_dn,
                Scope::Subtree,
                "(objectClass=groupOfNames)",
                vec!["cn", "member"],
            )
            .await
            .map_err(|e| classify(&e))?;
        let mut members: HashMap<String, Vec<String>> = HashMap::new();
        while let Some(entry) = stream.next().await.map_err(|e| classify(&e))? {
            let entry = SearchEntry::construct(entry);
            let Some(cn) = attr(&entry, "cn") else {
                continue;
            };
            for m in attr_values(&entry, "member") {
                members
                    .entry(normalize_dn(m))
                    .or_default()
                    .push(cn.to_string());
            }
        }
        match stream.finish().await.success() {
            Ok(_) => Ok(members),
            Err(LdapError::LdapResult { result }) if result.rc == rc::NO_SUCH_OBJECT => {
                Ok(HashMap::new())
            }
            Err(e) => Err(classify(&e)),
        }
    }
}

#[async_trait]
impl Connector for LdapConnector {
    async fn create_account(&self, _op: &Op, person: &Person) -> Result<(), ConnectorError> {
        let dn = self.user_dn(&person.id);
        let one = |v: &str| HashSet::from([v.to_string()]);
        let mut attrs = self.person_attributes(person);
        match self.settings.flavor {
            Flavor::Openldap => {
                attrs.push((
                    "objectClass".into(),
                    ["top", "person", "organizationalPerson", "inetOrgPerson"]
                        .map(String::from)
                        .into(),
                ));
                attrs.push(("uid".into(), one(&person.id)));
                attrs.push(("cn".into(), one(&person.name)));
                attrs.push(("employeeNumber".into(), one(&person.id)));
            }
            Flavor::Ad => {
                attrs.push((
                    "objectClass".into(),
                    ["top", "person", "organizationalPerson", "user"]
                        .map(String::from)
                        .into(),
                ));
                attrs.push(("cn".into(), one(&person.id)));
                attrs.push(("sAMAccountName".into(), one(&person.id)));
                attrs.push(("userPrincipalName".into(), one(&person.email)));
                attrs.push(("employeeID".into(), one(&person.id)));
                attrs.push((
                    "userAccountControl".into(),
                    one(&self.settings.ad_create_uac.to_string()),
                ));
            }
        }
        let timeout = self.timeout();
        let r = self
            .run(|mut l| async move { l.with_timeout(timeout).add(&dn, attrs).await })
            .await?;
        outcome(r, &[rc::ENTRY_ALREADY_EXISTS])
    }

    async fn update_account(&self, _op: &Op, person: &Person) -> Result<(), ConnectorError> {
        let Some(entry) = self.locate(&person.id).await? else {
            return Err(ConnectorError::Permanent(format!(
                "no account for `{}` to update",
                person.id
            )));
        };
        let mut mods: Vec<Mod<String>> = self
            .person_attributes(person)
            .into_iter()
            .map(|(k, v)| Mod::Replace(k, v))
            .collect();
        if self.settings.flavor == Flavor::Openldap {
            mods.push(Mod::Replace(
                "cn".into(),
                HashSet::from([person.name.clone()]),
            ));
        }
        outcome(self.modify(&entry.dn, mods).await?, &[])
    }

    async fn enable_account(&self, _op: &Op, person: &Person) -> Result<(), ConnectorError> {
        let Some(entry) = self.locate(&person.id).await? else {
            return Err(ConnectorError::Permanent(format!(
                "no account for `{}` to enable",
                person.id
            )));
        };
        match self.settings.flavor {
            Flavor::Ad => self.set_uac_bit(&entry.dn, uac_of(&entry), false).await,
            Flavor::Openldap if self.is_disabled(&entry) => {
                self.move_entry(&entry.dn, &person.id, &self.settings.users_dn)
                    .await
            }
            Flavor::Openldap => Ok(()),
        }
    }

    async fn disable_account(&self, _op: &Op, person: &Person) -> Result<(), ConnectorError> {
        let Some(entry) = self.locate(&person.id).await? else {
            return Ok(());
        };
        match self.settings.flavor {
            Flavor::Ad => self.set_uac_bit(&entry.dn, uac_of(&entry), true).await,
            Flavor::Openldap => {
                // Lock first (no password, no simple bind), then move: a crash in between
                // leaves a locked account that the retry moves.
                let lock = self
                    .modify(
                        &entry.dn,
                        vec![Mod::Replace("userPassword".into(), HashSet::new())],
                    )
                    .await?;
                outcome(lock, &[rc::NO_SUCH_ATTRIBUTE])?;
                if self.is_disabled(&entry) {
                    return Ok(());
                }
                let target = self.disabled_dn(&person.id).expect("checked at load");
                let base = target.split_once(',').map(|x| x.1).unwrap_or_default();
                match self.move_entry(&entry.dn, &person.id, base).await {
                    Err(ConnectorError::Permanent(m))
                        if m.starts_with(&format!("ldap result {}:", rc::ENTRY_ALREADY_EXISTS)) =>
                    {
                        Err(ConnectorError::Permanent(format!(
                            "`{target}` already exists while `{}` is enabled: {m}",
                            entry.dn
                        )))
                    }
                    other => other,
                }
            }
        }
    }

    async fn delete_account(&self, _op: &Op, person: &Person) -> Result<(), ConnectorError> {
        let Some(entry) = self.locate(&person.id).await? else {
            return Ok(());
        };
        let timeout = self.timeout();
        let dn = entry.dn.clone();
        let r = self
            .run(|mut l| async move { l.with_timeout(timeout).delete(&dn).await })
            .await?;
        outcome(r, &[rc::NO_SUCH_OBJECT])
    }

    async fn grant(
        &self,
        _op: &Op,
        person: &Person,
        entitlement: &Entitlement,
    ) -> Result<(), ConnectorError> {
        let Some(entry) = self.locate(&person.id).await? else {
            return Err(ConnectorError::Permanent(format!(
                "no account for `{}` to add to `{}`",
                person.id, entitlement.name
            )));
        };
        let group = self.group_dn(&entitlement.name);
        let mut mods = vec![Mod::Add(
            "member".to_string(),
            HashSet::from([entry.dn.clone()]),
        )];
        if let Some(placeholder) = &self.settings.empty_group_member {
            let r = self
                .modify(
                    &group,
                    vec![
                        Mod::Delete("member".to_string(), HashSet::from([placeholder.clone()])),
                        Mod::Add("member".to_string(), HashSet::from([entry.dn.clone()])),
                    ],
                )
                .await?;
            match result_code(&r) {
                Some(0) => return Ok(()),
                // The placeholder was not there: add the member alone below.
                Some(rc::NO_SUCH_ATTRIBUTE) => {}
                _ => {
                    return outcome(
                        r,
                        &[rc::ATTRIBUTE_OR_VALUE_EXISTS, rc::ENTRY_ALREADY_EXISTS],
                    );
                }
            }
            mods = vec![Mod::Add("member".to_string(), HashSet::from([entry.dn]))];
        }
        // AD answers an existing member with entryAlreadyExists, OpenLDAP with
        // attributeOrValueExists.
        outcome(
            self.modify(&group, mods).await?,
            &[rc::ATTRIBUTE_OR_VALUE_EXISTS, rc::ENTRY_ALREADY_EXISTS],
        )
    }

    async fn revoke(
        &self,
        _op: &Op,
        person: &Person,
        entitlement: &Entitlement,
    ) -> Result<(), ConnectorError> {
        let group = self.group_dn(&entitlement.name);
        // The member value may name the account where it was when granted, or where it is now.
        let mut dns = vec![self.user_dn(&person.id)];
        dns.extend(self.disabled_dn(&person.id));
        for dn in dns {
            let del = vec![Mod::Delete(
                "member".to_string(),
                HashSet::from([dn.clone()]),
            )];
            let r = self.modify(&group, del).await?;
            if result_code(&r) == Some(rc::OBJECT_CLASS_VIOLATION)
                && let Some(placeholder) = &self.settings.empty_group_member
            {
                // The last member of a groupOfNames: swap in the placeholder.
                let swap = vec![Mod::Replace(
                    "member".to_string(),
                    HashSet::from([placeholder.clone()]),
                )];
                outcome(self.modify(&group, swap).await?, &[])?;
                continue;
            }
            // Not a member (AD: unwillingToPerform), or no such group: not held.
            outcome(
                r,
                &[
                    rc::NO_SUCH_ATTRIBUTE,
                    rc::NO_SUCH_OBJECT,
                    rc::UNWILLING_TO_PERFORM,
                ],
            )?;
        }
        Ok(())
    }

    async fn list_accounts(&self) -> Result<Vec<RemoteAccount>, ConnectorError> {
        let class = match self.settings.flavor {
            Flavor::Openldap => "(objectClass=inetOrgPerson)",
            Flavor::Ad => "(&(objectClass=user)(!(objectClass=computer)))",
        };
        let mut bases = vec![self.settings.users_dn.clone()];
        bases.extend(self.settings.disabled_users_dn.clone());
        let mut out = Vec::new();
        for base in bases {
            let mut ldap = self.ldap().await?;
            let adapters: Vec<Box<dyn Adapter<_, _>>> = vec![
                Box::new(EntriesOnly::new()),
                Box::new(PagedResults::new(self.settings.page_size)),
            ];
            let attrs = vec![self.id_attribute(), "userAccountControl"];
            let mut stream = ldap
                .with_timeout(self.timeout())
                .streaming_search_with(adapters, &base, Scope::OneLevel, class, attrs)
                .await
                .map_err(|e| classify(&e))?;
            while let Some(entry) = stream.next().await.map_err(|e| classify(&e))? {
                let entry = SearchEntry::construct(entry);
                let Some(id) = entry
                    .attrs
                    .get(self.id_attribute())
                    .and_then(|v| v.first())
                    .cloned()
                else {
                    continue;
                };
                out.push(RemoteAccount {
                    person_id: id,
                    enabled: !self.is_disabled(&entry),
                });
            }
            match stream.finish().await.success() {
                Ok(_) => {}
                Err(LdapError::LdapResult { result }) if result.rc == rc::NO_SUCH_OBJECT => {}
                Err(e) => return Err(classify(&e)),
            }
        }
        out.sort_by(|a, b| a.person_id.cmp(&b.person_id));
        Ok(out)
    }

    async fn list_memberships(&self, person_id: &str) -> Result<Vec<String>, ConnectorError> {
        let Some(entry) = self.locate(person_id).await? else {
            return Ok(Vec::new());
        };
        let class = match self.settings.flavor {
            Flavor::Openldap => "groupOfNames",
            Flavor::Ad => "group",
        };
        let filter = format!(
            "(&(objectClass={class})(member={}))",
            ldap3::ldap_escape(&entry.dn)
        );
        let mut ldap = self.ldap().await?;
        let r = ldap
            .with_timeout(self.timeout())
            .search(
                &self.settings.groups_dn,
                Scope::Subtree,
                &filter,
                vec!["cn"],
            )
            .await
            .map_err(|e| classify(&e))?;
        let (entries, _) = r.success().map_err(|e| classify(&e))?;
        let mut names: Vec<String> = entries
            .into_iter()
            .filter_map(|e| SearchEntry::construct(e).attrs.get("cn")?.first().cloned())
            .collect();
        names.sort();
        Ok(names)
    }

    /// The entry whose id attribute is the person's id, which `inventory` keys accounts by.
    fn account_key(&self, person_id: &str) -> Option<String> {
        Some(person_id.to_string())
    }

    fn subject_of<'k>(&self, key: &'k str) -> Option<&'k str> {
        Some(key)
    }

    async fn inventory(&self, page_size: usize) -> Result<Inventory<'_>, ConnectorError> {
        let groups = match self.settings.flavor {
            Flavor::Openldap => self.group_members().await?,
            // Active Directory keeps each account's groups on the account (`memberOf`), and
            // hands out a large group's `member` only in ranges.
            Flavor::Ad => HashMap::new(),
        };
        let mut bases = VecDeque::from([self.settings.users_dn.clone()]);
        bases.extend(self.settings.disabled_users_dn.clone());
        Ok(Inventory::Pages(Box::new(LdapPages {
            connector: self,
            page_size: page_size.max(1),
            bases,
            stream: None,
            groups,
        })))
    }

    async fn health(&self) -> Result<(), ConnectorError> {
        let mut ldap = self.ldap().await?;
        let r = ldap
            .with_timeout(self.timeout())
            .search(
                &self.settings.users_dn,
                Scope::Base,
                "(objectClass=*)",
                vec!["1.1"],
            )
            .await
            .map_err(|e| classify(&e))?;
        r.success().map(|_| ()).map_err(|e| classify(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        v.as_object().unwrap().clone()
    }

    fn base() -> serde_json::Value {
        serde_json::json!({
            "url": "ldap://127.0.0.1:389",
            "bind_dn": "cn=admin,dc=example,dc=com",
            "bind_password_env": "LDAP_PASSWORD",
            "users_dn": "ou=people,dc=example,dc=com",
            "disabled_users_dn": "ou=disabled,dc=example,dc=com",
            "groups_dn": "ou=groups,dc=example,dc=com",
        })
    }

    #[test]
    fn settings_are_checked() {
        assert!(LdapSettings::from_map(&map(base())).is_ok());
        let mut v = base();
        v["bind_password"] = "secret".into();
        let e = LdapSettings::from_map(&map(v)).unwrap_err();
        assert!(
            e.contains("bind_password_env") && !e.contains("secret\""),
            "{e}"
        );
        let mut v = base();
        v.as_object_mut().unwrap().remove("disabled_users_dn");
        assert!(
            LdapSettings::from_map(&map(v.clone()))
                .unwrap_err()
                .contains("disabled_users_dn")
        );
        v["flavor"] = "ad".into();
        assert_eq!(LdapSettings::from_map(&map(v)).unwrap().flavor, Flavor::Ad);
        let mut v = base();
        v["url"] = "http://x".into();
        assert!(
            LdapSettings::from_map(&map(v))
                .unwrap_err()
                .contains("scheme")
        );
    }

    #[test]
    fn dns_escape_hostile_ids() {
        let c = LdapConnector::new(
            LdapSettings::from_map(&map(base())).unwrap(),
            Secret::new("x"),
        );
        assert_eq!(
            c.user_dn("a,ou=admins+cn=x"),
            "uid=a\\2cou\\3dadmins\\2bcn\\3dx,ou=people,dc=example,dc=com"
        );
        assert_eq!(c.group_dn("devs"), "cn=devs,ou=groups,dc=example,dc=com");
        assert_eq!(c.group_dn("cn=x,dc=y"), "cn=x,dc=y");
    }

    #[test]
    fn dns_compare_however_they_are_spelled() {
        let same = [
            "uid=a\\2Cb,ou=people,dc=example,dc=com",
            "UID=A\\,B, OU=People , dc=Example,dc=COM",
            "uid = a\\2cb,ou=people,dc=example,dc=com",
        ];
        for dn in same {
            assert_eq!(normalize_dn(dn), normalize_dn(same[0]), "{dn}");
        }
        assert_ne!(
            normalize_dn("uid=a\\2cb,ou=people"),
            normalize_dn("uid=a,b,ou=people")
        );
        // An escaped trailing space is part of the value; padding is not.
        assert_eq!(
            first_rdn("cn=x\\20 ,dc=y").1,
            Some(("cn", "x ".to_string()))
        );
        assert_eq!(
            first_rdn(" cn = Printer Admin ,dc=y").1,
            Some(("cn", "Printer Admin".to_string()))
        );
        assert_eq!(
            first_rdn("cn=caf\\c3\\a9+sn=x,dc=y").1,
            Some(("cn", "café".to_string()))
        );
    }

    /// Active Directory: the groups come from the account's `memberOf`, only those under
    /// `groups_dn`, by `cn`; the account is disabled by its `userAccountControl`.
    #[test]
    fn ad_accounts_take_their_groups_from_member_of() {
        let mut v = base();
        v["flavor"] = "ad".into();
        let c = LdapConnector::new(LdapSettings::from_map(&map(v)).unwrap(), Secret::new("x"));
        let values = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let entry = SearchEntry {
            dn: "CN=Ada Lovelace,OU=People,DC=example,DC=com".into(),
            attrs: [
                ("sAMAccountName", values(&["ada"])),
                ("mail", values(&["ada@example.com"])),
                ("employeeID", values(&["E1"])),
                ("userAccountControl", values(&["514"])),
                (
                    "memberOf",
                    values(&[
                        "CN=VPN Users,OU=Groups,DC=example,DC=com",
                        "CN=Sales\\, EMEA,OU=Regional,OU=Groups,DC=example,DC=com",
                        "CN=Domain Admins,CN=Users,DC=example,DC=com",
                    ]),
                ),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            bin_attrs: Default::default(),
        };
        let a = c.inventory_account(&HashMap::new(), &c.settings.users_dn, &entry);
        assert_eq!(
            a,
            InventoryAccount {
                key: "ada".into(),
                person_id: Some("ada".into()),
                enabled: false,
                attributes: [
                    (attribute::USERNAME, "ada"),
                    (attribute::EMAIL, "ada@example.com"),
                    (attribute::EMPLOYEE_ID, "E1"),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
                memberships: values(&["Sales, EMEA", "VPN Users"]),
            }
        );
    }

    #[tokio::test]
    async fn result_codes_are_classified() {
        let res = |rc| LdapError::LdapResult {
            result: ldap3::LdapResult {
                rc,
                matched: String::new(),
                text: "t".into(),
                refs: vec![],
                ctrls: vec![],
            },
        };
        assert!(classify(&res(52)).is_retryable());
        assert!(classify(&res(51)).is_retryable());
        assert!(!classify(&res(65)).is_retryable()); // objectClassViolation
        assert!(!classify(&res(49)).is_retryable()); // invalidCredentials
        assert!(!classify(&res(50)).is_retryable()); // insufficientAccessRights
        let io = LdapError::Io {
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        };
        assert!(classify(&io).is_retryable());
        assert!(!classify(&io).may_have_acted());
        // Sent and unanswered: retried, but perhaps applied.
        let elapsed = tokio::time::timeout(Duration::ZERO, std::future::pending::<()>())
            .await
            .unwrap_err();
        let late = LdapError::Timeout { elapsed };
        assert!(classify(&late).is_retryable());
        assert!(classify(&late).may_have_acted());
        assert!(classify(&LdapError::EndOfStream).may_have_acted());
        // Connecting or signing in sends no operation.
        assert!(!classify(&late).before_sending().may_have_acted());
    }
}
