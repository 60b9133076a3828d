//! Configuration as code: `tenure.toml` (engine settings, systems, clients, entitlements) and a
//! folder of role templates. Parsed from text handed in by the caller, validated as a whole, and
//! every error points at a file, line and column.

use crate::model::{Client, Entitlement, Person, Retention, Risk, System, WorkerType};
use crate::roster::{ColumnMap, Field};
use crate::sod::{self, SodEffect, SodRule};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use toml::Spanned;

/// One configuration file's name (for messages) and contents.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Path as shown in error messages.
    pub path: String,
    /// The file's text.
    pub text: String,
}

/// One problem in the configuration, located precisely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file at fault.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// Every problem found in a configuration (never empty).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Engine tuning: retries, backoff and circuit breaking.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSettings {
    /// Attempts per step before it fails the run.
    pub max_attempts: u32,
    /// First retry delay; doubles each attempt.
    pub backoff_base_ms: u64,
    /// Upper bound on one retry delay.
    pub backoff_max_ms: u64,
    /// Consecutive failures that open a system's circuit.
    pub breaker_failure_threshold: u32,
    /// How long an open circuit stays open before one trial call.
    pub breaker_open_ms: u64,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            backoff_base_ms: 250,
            backoff_max_ms: 60_000,
            breaker_failure_threshold: 8,
            breaker_open_ms: 15_000,
        }
    }
}

/// The validated configuration the engine runs on.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Engine tuning.
    pub engine: EngineSettings,
    /// Target systems by id.
    pub systems: BTreeMap<String, System>,
    /// Known clients by id.
    pub clients: BTreeMap<String, Client>,
    /// The entitlement catalog by id.
    pub entitlements: BTreeMap<String, Entitlement>,
    /// Role templates, in id order.
    pub templates: Vec<RoleTemplate>,
    /// How `tenure import` reads HR rosters (`[import]`, optional).
    pub import: ImportSettings,
    /// Separation-of-duties rules (`[[separation_of_duties]]`), `{client}` rules expanded per
    /// client.
    pub sod: Vec<SodRule>,
    /// Person attributes policy may read, with their types (`[person_attributes]`).
    pub person_attributes: BTreeMap<String, AttrType>,
    /// Access requests, approval chains and time-bound access (`[approvals]`, optional).
    pub approvals: ApprovalSettings,
    /// Where approvers and requesters are notified (`[notifications]`, optional).
    pub notifications: NotificationSettings,
    /// HR webhook mappings by source name (`[hr.<source>]`, optional).
    pub hr: BTreeMap<String, crate::hr::HrMapping>,
    /// The audit trail's signed checkpoints (`[audit.checkpoints]`, optional).
    pub audit: AuditSettings,
    /// Service-level targets for provisioning and revocation (`[sla]`, optional).
    pub sla: SlaSettings,
    /// How long data tenure no longer needs is kept (`[retention]`, optional).
    pub retention: RetentionSettings,
    /// How each system is reconciled (`[systems.reconcile]`), for every system (defaults
    /// where not configured).
    pub reconcile: BTreeMap<String, crate::drift::ReconcileSettings>,
    /// The web console (`[console]`, optional).
    pub console: ConsoleSettings,
    /// Access review campaigns (`[[reviews]]`), by name.
    pub reviews: BTreeMap<String, crate::review::CampaignDefinition>,
}

/// `[console]`: the web console served by `tenure serve`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConsoleSettings {
    /// Sign-in through the company's identity provider (`[console.oidc]`); without it, people
    /// sign in with an API token.
    pub oidc: Option<OidcSettings>,
}

/// `[console.oidc]`: sign-in with OpenID Connect (the authorization code flow with PKCE).
/// The person signing in is found by one claim of their ID token; what they may do is the
/// scopes every signed-in person gets, plus those their roles claim grants.
#[derive(Debug, Clone, PartialEq)]
pub struct OidcSettings {
    /// The provider's issuer URL; its discovery document is at
    /// `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    /// The client id tenure is registered with.
    pub client_id: String,
    /// The environment variable holding the client secret; none for a public client (PKCE
    /// alone).
    pub client_secret_env: Option<String>,
    /// The provider's name on the sign-in button ("Sign in with Okta").
    pub label: String,
    /// The claim that names the person (`email` by default).
    pub claim: String,
    /// What the claim's value is compared with.
    pub person_field: crate::drift::PersonField,
    /// Scopes every person signed in this way gets.
    pub scopes: Vec<crate::Scope>,
    /// The claim listing the person's groups or roles (`groups` by default).
    pub roles_claim: String,
    /// More scopes per value of the roles claim (`[console.oidc.roles]`).
    pub roles: BTreeMap<String, Vec<crate::Scope>>,
}

/// `[sla]`: how long access may take to arrive and to go, from the event taking effect to
/// the last step done; `[sla.systems.ID]` sets a system's own. Evidence and reports measure
/// against them; nothing is enforced by them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SlaSettings {
    /// A hire's access complete within this (ms).
    pub provision_ms: Option<i64>,
    /// A leaver's access gone within this (ms).
    pub revoke_ms: Option<i64>,
    /// Targets of one system, over the ones above.
    pub systems: BTreeMap<String, SystemSla>,
}

/// `[retention]`: how long tenure keeps what it no longer needs. Without it nothing is dropped.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RetentionSettings {
    /// An event's raw payload (the body as received, with names and emails) is dropped this
    /// long after it was received, once its run has ended (ms); the event's record (id, type,
    /// person, times, sender, body hash) stays.
    pub event_payloads_ms: Option<i64>,
    /// A person who left is forgotten (their personal data crypto-shredded, as by `tenure
    /// forget`) this long after their record last changed (their leave), once they hold
    /// nothing and no run on them is going (ms).
    pub forget_people_ms: Option<i64>,
}

/// The shortest and longest retention periods accepted (1 day, 10 years).
pub const RETENTION_RANGE_MS: std::ops::RangeInclusive<i64> = 86_400_000..=3_650 * 86_400_000;

/// `[sla.systems.ID]`: one system's targets (ms).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SystemSla {
    /// A hire's access on this system complete within this (ms).
    pub provision_ms: Option<i64>,
    /// A leaver's access on this system gone within this (ms).
    pub revoke_ms: Option<i64>,
}

impl SlaSettings {
    /// The revocation target of `system` (its own, else the global one).
    pub fn revoke_for(&self, system: &str) -> Option<i64> {
        self.systems
            .get(system)
            .and_then(|s| s.revoke_ms)
            .or(self.revoke_ms)
    }

    /// The provisioning target of `system` (its own, else the global one).
    pub fn provision_for(&self, system: &str) -> Option<i64> {
        self.systems
            .get(system)
            .and_then(|s| s.provision_ms)
            .or(self.provision_ms)
    }
}

/// `[audit]`: what is done for the audit trail beyond the hash chain.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditSettings {
    /// Signed checkpoints of the chain's head (`[audit.checkpoints]`); none when absent.
    pub checkpoints: Option<CheckpointSettings>,
}

/// `[audit.checkpoints]`: sign the chain's head with an Ed25519 key and keep the checkpoint
/// in the database and outside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointSettings {
    /// Where the private key is.
    pub key: KeySource,
    /// When a checkpoint is due.
    pub cadence: crate::checkpoint::Cadence,
    /// Where each checkpoint is sent, outside the database.
    pub sink: CheckpointSink,
}

/// Where the checkpoint signing key is read from (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A key file (`key_file`, relative to tenure.toml), as `tenure keys generate` writes it.
    File(String),
    /// An environment variable holding the key's text (`key_env`).
    Env(String),
}

/// Where checkpoints go outside the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointSink {
    /// `file:PATH`: JSON lines appended and synced to disk (relative to tenure.toml).
    File(String),
    /// `webhook:URL`: each checkpoint POSTed, signed as Standard Webhooks with the secret in the
    /// environment variable `secret_env` names.
    Webhook {
        /// The URL.
        url: String,
        /// The environment variable holding the signing secret.
        secret_env: String,
    },
}

/// `[approvals]`: how access requests are decided and how long granted access lasts.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalSettings {
    /// Stages every access request goes through, policy's `@approval` stages added to them.
    pub request_stages: Vec<crate::approval::StageKind>,
    /// Stages whose every approver must approve (the others need one).
    pub require_all: Vec<crate::approval::StageKind>,
    /// A stage not decided within this escalates to the approvers' managers (ms).
    pub stage_timeout_ms: i64,
    /// A request not decided within this is denied automatically (ms).
    pub deadline_ms: i64,
    /// The longest window of `high` and `privileged` access (ms); such grants always expire.
    pub max_window_ms: i64,
    /// The longest window of break-glass access (ms).
    pub break_glass_max_ms: i64,
    /// Separation-of-duties rules (ids as written, effect `deny`) that a break-glass request may
    /// override (`break_glass_may_override`): its grant goes ahead, flagged and audited as an
    /// override. Every other rule, and every Cedar `forbid`, stops break-glass like any grant.
    pub break_glass_may_override: BTreeSet<String>,
    /// Team names (as in an entitlement's `owner`) and their members.
    pub teams: BTreeMap<String, Vec<String>>,
}

impl Default for ApprovalSettings {
    fn default() -> Self {
        use crate::approval::StageKind;
        const MINUTE: i64 = 60_000;
        ApprovalSettings {
            request_stages: vec![StageKind::Manager],
            require_all: Vec::new(),
            stage_timeout_ms: 24 * 60 * MINUTE,
            deadline_ms: 72 * 60 * MINUTE,
            max_window_ms: 8 * 60 * MINUTE,
            break_glass_max_ms: 60 * MINUTE,
            break_glass_may_override: BTreeSet::new(),
            teams: BTreeMap::new(),
        }
    }
}

impl ApprovalSettings {
    /// The approvers an owner name stands for: a team's members, or the person it names.
    pub fn members(&self, owner: &str) -> Vec<String> {
        self.teams
            .get(owner)
            .cloned()
            .unwrap_or_else(|| vec![owner.to_string()])
    }
}

/// `[notifications]`: a signed webhook (Standard Webhooks) told of approvals to make and
/// decisions made.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NotificationSettings {
    /// Where to POST notifications; none sends nothing.
    pub webhook_url: Option<String>,
    /// The environment variable that holds the signing secret (never the secret itself).
    pub secret_env: Option<String>,
    /// Deliveries tried before one is given up (with backoff between them).
    pub max_attempts: u32,
}

/// The type of a declared person attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    /// `true` or `false`.
    Bool,
    /// Text.
    String,
    /// An integer.
    Long,
    /// A list of strings (a set in policy).
    StringSet,
}

impl AttrType {
    /// Every type, as written in `[person_attributes]`.
    pub const ALL: [(&'static str, AttrType); 4] = [
        ("bool", AttrType::Bool),
        ("string", AttrType::String),
        ("long", AttrType::Long),
        ("set", AttrType::StringSet),
    ];
}

/// Attribute names every person has already; declared attributes may not reuse them.
pub const PERSON_BUILTIN: &[&str] = &[
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
    "status",
    GROUPS_ATTRIBUTE,
];

/// The person attribute holding the displayNames of the groups an identity provider put the
/// person in (over SCIM): role templates match it (`[match] groups`) and policy reads it
/// (`principal.groups`), always as a set of strings.
pub const GROUPS_ATTRIBUTE: &str = "groups";

/// `[import]`: how `tenure import` reads an HR roster.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportSettings {
    /// The largest share of people (0 to 1) one import may terminate without `--confirm`.
    pub max_leave_share: f64,
    /// Which CSV header holds each field (`[import.columns]`, field = "Header").
    pub columns: ColumnMap,
}

impl Default for ImportSettings {
    fn default() -> Self {
        ImportSettings {
            max_leave_share: 0.05,
            columns: ColumnMap::default(),
        }
    }
}

/// Maps person attributes or an engagement role to entitlements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleTemplate {
    /// Stable id (defaults to the file name).
    pub id: String,
    /// What the template is for.
    pub description: String,
    /// Which people (or engagements) it applies to.
    pub rule: MatchRule,
    /// Entitlement ids; `{client}` is replaced by the engagement's client id.
    pub entitlements: Vec<String>,
    /// Who answers for it (a person id or team name): told when an access review revokes
    /// access the template gives back at once.
    pub owner: Option<String>,
}

/// Attribute conditions: every listed attribute must match one of its values (case-insensitive).
/// An empty rule matches everyone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchRule {
    /// Departments that match.
    pub department: Vec<String>,
    /// Titles that match.
    pub title: Vec<String>,
    /// Worker types that match.
    pub worker_type: Vec<WorkerType>,
    /// Locations that match.
    pub location: Vec<String>,
    /// Identity-provider groups (displayNames) of which the person must be in one.
    pub groups: Vec<String>,
    /// When set, the template applies per active engagement in one of these roles.
    pub engagement_role: Vec<String>,
}

impl MatchRule {
    /// Whether the template applies per engagement rather than per person.
    pub fn is_engagement_rule(&self) -> bool {
        !self.engagement_role.is_empty()
    }

    /// Whether the person's attributes satisfy the rule.
    pub fn matches_person(&self, p: &Person) -> bool {
        fn any(list: &[String], v: &Option<String>) -> bool {
            list.is_empty()
                || v.as_deref()
                    .is_some_and(|v| list.iter().any(|x| x.eq_ignore_ascii_case(v)))
        }
        let in_group = || {
            p.attributes
                .get(GROUPS_ATTRIBUTE)
                .and_then(serde_json::Value::as_array)
                .is_some_and(|have| {
                    have.iter()
                        .filter_map(serde_json::Value::as_str)
                        .any(|g| self.groups.iter().any(|x| x.eq_ignore_ascii_case(g)))
                })
        };
        any(&self.department, &p.department)
            && (self.groups.is_empty() || in_group())
            && any(&self.title, &p.title)
            && any(&self.location, &p.location)
            && (self.worker_type.is_empty() || self.worker_type.contains(&p.worker_type))
    }

    /// Whether an engagement role satisfies the rule.
    pub fn matches_role(&self, role: &str) -> bool {
        self.engagement_role
            .iter()
            .any(|r| r.eq_ignore_ascii_case(role))
    }
}

impl Config {
    /// Parses and validates `tenure.toml` and the template files, collecting every error.
    pub fn parse(main: &SourceFile, templates: &[SourceFile]) -> Result<Config, ConfigErrors> {
        let mut errors = Vec::new();
        let raw: Option<RawConfig> = parse_toml(main, &mut errors);
        let mut raw_templates = Vec::new();
        for file in templates {
            if let Some(t) = parse_toml::<RawTemplate>(file, &mut errors) {
                raw_templates.push((file, t));
            }
        }
        let Some(raw) = raw else {
            return Err(ConfigErrors(errors));
        };
        let config = validate(main, raw, raw_templates, &mut errors);
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// The system an entitlement lives on.
    pub fn system_of(&self, entitlement: &str) -> Option<&System> {
        self.entitlements
            .get(entitlement)
            .and_then(|e| self.systems.get(&e.system))
    }

    /// The longest an entitlement may be held in one go, whatever gives it: the approvals
    /// window for `high` and `privileged` risk, the client's `max_access_days` for a client's
    /// entitlement, the shorter of the two when both apply. `None`: standing access is allowed.
    /// An entitlement not in the catalog is treated as privileged. The client's terms are the
    /// configured ones; [`Config::time_bound_with`] also reads what events told of the client.
    pub fn time_bound(&self, entitlement: &str) -> Option<TimeBound> {
        self.time_bound_with(entitlement, &ClientFacts::default())
    }

    /// [`Config::time_bound`], with the client's terms as `clients` knows them.
    pub fn time_bound_with(&self, entitlement: &str, clients: &ClientFacts) -> Option<TimeBound> {
        let e = self.entitlements.get(entitlement);
        let risky = e.is_none_or(|e| matches!(e.risk, Risk::High | Risk::Privileged));
        let by_risk = risky.then(|| TimeBound {
            ms: self.approvals.max_window_ms,
            why: format!(
                "{}-risk access lasts at most {} minutes",
                e.map_or(Risk::Privileged, |e| e.risk),
                self.approvals.max_window_ms / 60_000
            ),
        });
        let by_client = e
            .and_then(|e| e.client.as_deref())
            .and_then(|c| clients.get(self, c))
            .and_then(|c| {
                c.max_access_days.map(|d| TimeBound {
                    ms: i64::from(d) * 86_400_000,
                    why: format!("client `{}` allows access for at most {d} days", c.id),
                })
            });
        match (by_risk, by_client) {
            (Some(a), Some(b)) => Some(if b.ms < a.ms { b } else { a }),
            (a, b) => a.or(b),
        }
    }

    /// The clients whose terms can bear on `person`'s access: those of their engagements, of
    /// the entitlements they hold or asked for (`entitlements`), and of the entitlements the
    /// person-matched templates give.
    pub fn clients_involved<'a>(
        &'a self,
        engagements: &'a [crate::model::Engagement],
        entitlements: impl IntoIterator<Item = &'a str>,
    ) -> BTreeSet<&'a str> {
        let of = |e: &str| self.entitlements.get(e).and_then(|e| e.client.as_deref());
        let by_templates = self
            .templates
            .iter()
            .filter(|t| !t.rule.is_engagement_rule())
            .flat_map(|t| t.entitlements.iter())
            .filter_map(|e| of(e));
        engagements
            .iter()
            .map(|g| g.client_id.as_str())
            .chain(entitlements.into_iter().filter_map(of))
            .chain(by_templates)
            .collect()
    }
}

/// What the engine knows of clients beyond `tenure.toml`: an engagement event may carry its
/// client in full (its attributes and contract terms, from the staffing system), and what it
/// says is stored and wins over the configured values, attribute by attribute. Policy, the
/// approvers and time bounds read clients through here.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientFacts {
    told: BTreeMap<String, Client>,
}

impl ClientFacts {
    /// The clients as stored from events, each merged over its configured self.
    pub fn new(config: &Config, told: impl IntoIterator<Item = Client>) -> ClientFacts {
        let mut facts = ClientFacts::default();
        for c in told {
            facts.tell(config, c);
        }
        facts
    }

    /// Adds what one more event told of a client (the latest word wins).
    pub fn tell(&mut self, config: &Config, told: Client) {
        let merged = merge_client(config.clients.get(&told.id), told);
        self.told.insert(merged.id.clone(), merged);
    }

    /// The client `id`: as told by events when they did, else as configured.
    pub fn get<'a>(&'a self, config: &'a Config, id: &str) -> Option<&'a Client> {
        self.told.get(id).or_else(|| config.clients.get(id))
    }
}

/// `told` over `configured`: its name, its attributes over the configured ones, its
/// `max_access_days` when it has one.
pub fn merge_client(configured: Option<&Client>, told: Client) -> Client {
    let Some(configured) = configured else {
        return told;
    };
    let mut attributes = configured.attributes.clone();
    attributes.extend(told.attributes);
    Client {
        id: told.id,
        name: told.name,
        attributes,
        max_access_days: told.max_access_days.or(configured.max_access_days),
    }
}

/// How long access may last, and the rule that says so (for the run note and the audit log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeBound {
    /// The window, from the moment the access is given (ms).
    pub ms: i64,
    /// The rule, in words.
    pub why: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    engine: EngineSettings,
    #[serde(default)]
    systems: Vec<RawSystem>,
    #[serde(default)]
    clients: Vec<RawClient>,
    #[serde(default)]
    entitlements: Vec<RawEntitlement>,
    /// Accepted for the loader's benefit (it reads the folder); relative to tenure.toml.
    #[serde(default)]
    #[allow(dead_code)]
    templates_dir: Option<String>,
    #[serde(default)]
    import: RawImport,
    #[serde(default)]
    hr: BTreeMap<String, Spanned<toml::Table>>,
    #[serde(default)]
    separation_of_duties: Vec<RawSod>,
    #[serde(default)]
    person_attributes: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    approvals: RawApprovals,
    #[serde(default)]
    notifications: RawNotifications,
    #[serde(default)]
    audit: RawAudit,
    #[serde(default)]
    sla: RawSla,
    #[serde(default)]
    retention: RawRetention,
    #[serde(default)]
    console: RawConsole,
    #[serde(default)]
    reviews: Vec<RawReview>,
}

/// `[[reviews]]`: an access review campaign's definition.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReview {
    name: Spanned<String>,
    #[serde(default)]
    scope: crate::review::ReviewScope,
    reviewer: Spanned<String>,
    team: Option<String>,
    fallback: Option<String>,
    duration_days: Option<u32>,
    #[serde(default)]
    reminder_days: Vec<u32>,
    recurrence: Option<Spanned<String>>,
    when_undecided: Option<Spanned<String>>,
    apply: Option<Spanned<String>>,
    auto_close: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConsole {
    oidc: Option<RawOidc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOidc {
    issuer: Spanned<String>,
    client_id: Spanned<String>,
    client_secret_env: Option<Spanned<String>>,
    label: Option<String>,
    claim: Option<Spanned<String>>,
    person_field: Option<Spanned<String>>,
    scopes: Option<Vec<Spanned<String>>>,
    roles_claim: Option<Spanned<String>>,
    #[serde(default)]
    roles: BTreeMap<String, Vec<Spanned<String>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    event_payloads: Option<Spanned<String>>,
    forget_people: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSla {
    provision: Option<Spanned<String>>,
    revoke: Option<Spanned<String>>,
    #[serde(default)]
    systems: BTreeMap<Spanned<String>, RawSystemSla>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSystemSla {
    provision: Option<Spanned<String>>,
    revoke: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    checkpoints: Option<Spanned<RawCheckpoints>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheckpoints {
    key_file: Option<Spanned<String>>,
    key_env: Option<Spanned<String>>,
    every_entries: Option<Spanned<i64>>,
    every: Option<Spanned<String>>,
    sink: Spanned<String>,
    secret_env: Option<Spanned<String>>,
}

/// `[[separation_of_duties]]`: a combination of entitlements nobody may hold together.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSod {
    id: Spanned<String>,
    #[serde(default)]
    description: String,
    entitlements: Spanned<Vec<Spanned<String>>>,
    /// For `{client}` rules: only these clients (default: every client).
    clients: Option<Vec<Spanned<String>>>,
    /// `deny` (default) or `approval`.
    effect: Option<Spanned<String>>,
    /// With `effect = "approval"`: `manager`, `owner` (default) or `client_owner`.
    approver: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawApprovals {
    request_stages: Option<Spanned<Vec<String>>>,
    require_all: Option<Spanned<Vec<String>>>,
    stage_timeout_minutes: Option<Spanned<i64>>,
    deadline_minutes: Option<Spanned<i64>>,
    max_window_minutes: Option<Spanned<i64>>,
    break_glass_max_minutes: Option<Spanned<i64>>,
    #[serde(default)]
    break_glass_may_override: Vec<Spanned<String>>,
    #[serde(default)]
    teams: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawNotifications {
    webhook_url: Option<Spanned<String>>,
    secret_env: Option<Spanned<String>>,
    max_attempts: Option<Spanned<u32>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawImport {
    max_leave_share: Option<Spanned<f64>>,
    #[serde(default)]
    columns: RawColumns,
}

/// `[import.columns]`: one optional header per roster field.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawColumns {
    id: Option<Spanned<String>>,
    name: Option<Spanned<String>>,
    email: Option<Spanned<String>>,
    worker_type: Option<Spanned<String>>,
    department: Option<Spanned<String>>,
    title: Option<Spanned<String>>,
    location: Option<Spanned<String>>,
    manager: Option<Spanned<String>>,
    start_date: Option<Spanned<String>>,
    end_date: Option<Spanned<String>>,
}

impl RawColumns {
    fn get(&self, field: Field) -> Option<&Spanned<String>> {
        match field {
            Field::Id => self.id.as_ref(),
            Field::Name => self.name.as_ref(),
            Field::Email => self.email.as_ref(),
            Field::WorkerType => self.worker_type.as_ref(),
            Field::Department => self.department.as_ref(),
            Field::Title => self.title.as_ref(),
            Field::Location => self.location.as_ref(),
            Field::Manager => self.manager.as_ref(),
            Field::StartDate => self.start_date.as_ref(),
            Field::EndDate => self.end_date.as_ref(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSystem {
    id: Spanned<String>,
    name: Option<String>,
    connector: Spanned<String>,
    #[serde(default = "default_retention")]
    retention: Retention,
    #[serde(default = "default_concurrency")]
    max_concurrency: Spanned<u32>,
    #[serde(default)]
    settings: toml::Table,
    reconcile: Option<RawReconcile>,
}

/// `[systems.reconcile]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReconcile {
    every: Option<Spanned<String>>,
    #[serde(default)]
    correlate: Vec<Spanned<RawRule>>,
    on_several: Option<Spanned<String>>,
    #[serde(default)]
    actions: BTreeMap<String, Spanned<String>>,
    max_disable_percent: Option<Spanned<f64>>,
    #[serde(default)]
    delete_discovered: bool,
    after_outage: Option<bool>,
}

/// One `[[systems.reconcile.correlate]]` rule.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    account: String,
    person: String,
    ignore_case: Option<bool>,
    account_pattern: Option<String>,
    person_pattern: Option<String>,
}

fn default_retention() -> Retention {
    Retention::Delete
}
fn default_concurrency() -> Spanned<u32> {
    Spanned::new(0..0, 16)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    id: Spanned<String>,
    name: Option<String>,
    max_access_days: Option<Spanned<i64>>,
    #[serde(default)]
    attributes: toml::Table,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntitlement {
    id: Spanned<String>,
    system: Spanned<String>,
    #[serde(default = "default_kind")]
    kind: String,
    name: Option<String>,
    #[serde(default = "default_risk")]
    risk: Risk,
    owner: Option<String>,
    client: Option<Spanned<String>>,
}

fn default_kind() -> String {
    "group".into()
}
fn default_risk() -> Risk {
    Risk::Low
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTemplate {
    id: Option<Spanned<String>>,
    #[serde(default)]
    description: String,
    #[serde(default, rename = "match")]
    rule: RawMatch,
    entitlements: Vec<Spanned<String>>,
    owner: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMatch {
    #[serde(default)]
    department: Vec<String>,
    #[serde(default)]
    title: Vec<String>,
    #[serde(default)]
    worker_type: Vec<WorkerType>,
    #[serde(default)]
    location: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    engagement_role: Vec<String>,
}

/// Known connector kinds; a system naming another one is refused at load.
pub const CONNECTOR_KINDS: &[&str] = &["sandbox", "postgres", "ldap", "webhook", "manual", "scim"];

fn parse_toml<T: serde::de::DeserializeOwned>(
    file: &SourceFile,
    errors: &mut Vec<ConfigError>,
) -> Option<T> {
    match toml::from_str::<T>(&file.text) {
        Ok(v) => Some(v),
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            errors.push(locate(file, span, e.message().to_string()));
            None
        }
    }
}

/// Turns a byte span of `file` into a located error.
fn locate(file: &SourceFile, span: Range<usize>, message: String) -> ConfigError {
    let offset = span.start.min(file.text.len());
    let before = &file.text[..file.text.floor_char_boundary(offset)];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    ConfigError {
        file: file.path.clone(),
        line,
        column,
        message,
    }
}

fn validate(
    main: &SourceFile,
    raw: RawConfig,
    raw_templates: Vec<(&SourceFile, RawTemplate)>,
    errors: &mut Vec<ConfigError>,
) -> Config {
    let mut err =
        |file: &SourceFile, span: Range<usize>, msg: String| errors.push(locate(file, span, msg));

    let mut systems = BTreeMap::new();
    let mut reconcile = BTreeMap::new();
    for s in raw.systems {
        let id = s.id.get_ref().clone();
        if !valid_id(&id) {
            err(
                main,
                s.id.span(),
                format!("system id `{id}` must be non-empty letters, digits, '-', '_', '.' or ':'"),
            );
        }
        if !CONNECTOR_KINDS.contains(&s.connector.get_ref().as_str()) {
            err(
                main,
                s.connector.span(),
                format!(
                    "unknown connector `{}`; known connectors: {}",
                    s.connector.get_ref(),
                    CONNECTOR_KINDS.join(", ")
                ),
            );
        }
        if *s.max_concurrency.get_ref() == 0 {
            err(
                main,
                s.max_concurrency.span(),
                "max_concurrency must be at least 1".into(),
            );
        }
        let settings = match serde_json::to_value(&s.settings) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        };
        let settings_reconcile = validate_reconcile(main, &id, s.reconcile, &mut err);
        reconcile.insert(id.clone(), settings_reconcile);
        let system = System {
            name: s.name.unwrap_or_else(|| id.clone()),
            id: id.clone(),
            connector: s.connector.into_inner(),
            retention: s.retention,
            max_concurrency: s.max_concurrency.into_inner(),
            settings,
        };
        if systems.insert(id.clone(), system).is_some() {
            err(
                main,
                s.id.span(),
                format!("system `{id}` is declared twice"),
            );
        }
    }

    let mut clients = BTreeMap::new();
    for c in raw.clients {
        let id = c.id.get_ref().clone();
        if !valid_id(&id) {
            err(
                main,
                c.id.span(),
                format!("client id `{id}` must be non-empty letters, digits, '-', '_', '.' or ':'"),
            );
        }
        let attributes = match serde_json::to_value(&c.attributes) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        };
        let max_access_days = match c.max_access_days {
            None => None,
            Some(d) if (1..=MAX_ACCESS_DAYS).contains(d.get_ref()) => Some(*d.get_ref() as u32),
            Some(d) => {
                err(
                    main,
                    d.span(),
                    format!(
                        "client `{id}`: max_access_days must be a whole number of days from 1 to {MAX_ACCESS_DAYS}"
                    ),
                );
                None
            }
        };
        let client = Client {
            name: c.name.unwrap_or_else(|| id.clone()),
            id: id.clone(),
            attributes,
            max_access_days,
        };
        if clients.insert(id.clone(), client).is_some() {
            err(
                main,
                c.id.span(),
                format!("client `{id}` is declared twice"),
            );
        }
    }

    let mut entitlements = BTreeMap::new();
    for e in raw.entitlements {
        let id = e.id.get_ref().clone();
        if !valid_id(&id) {
            err(
                main,
                e.id.span(),
                format!(
                    "entitlement id `{id}` must be non-empty letters, digits, '-', '_', '.' or ':'"
                ),
            );
        }
        if !systems.contains_key(e.system.get_ref()) {
            err(
                main,
                e.system.span(),
                format!(
                    "entitlement `{id}` names unknown system `{}`",
                    e.system.get_ref()
                ),
            );
        }
        if let Some(c) = &e.client
            && !clients.contains_key(c.get_ref())
        {
            err(
                main,
                c.span(),
                format!("entitlement `{id}` names unknown client `{}`", c.get_ref()),
            );
        }
        let ent = Entitlement {
            name: e.name.unwrap_or_else(|| id.clone()),
            id: id.clone(),
            system: e.system.into_inner(),
            kind: e.kind,
            risk: e.risk,
            owner: e.owner,
            client: e.client.map(Spanned::into_inner),
        };
        if entitlements.insert(id.clone(), ent).is_some() {
            err(
                main,
                e.id.span(),
                format!("entitlement `{id}` is declared twice"),
            );
        }
    }

    let mut templates = Vec::new();
    let mut seen = BTreeSet::new();
    for (file, t) in raw_templates {
        let stem = file
            .path
            .rsplit('/')
            .next()
            .unwrap_or(&file.path)
            .trim_end_matches(".toml")
            .to_string();
        let (id, id_span) = match &t.id {
            Some(s) => (s.get_ref().clone(), s.span()),
            None => (stem, 0..0),
        };
        if !seen.insert(id.clone()) {
            err(
                file,
                id_span.clone(),
                format!("template `{id}` is declared twice"),
            );
        }
        let rule = MatchRule {
            department: t.rule.department,
            title: t.rule.title,
            worker_type: t.rule.worker_type,
            location: t.rule.location,
            groups: t.rule.groups,
            engagement_role: t.rule.engagement_role,
        };
        for ent in &t.entitlements {
            let name = ent.get_ref();
            if name.contains("{client}") {
                if !rule.is_engagement_rule() {
                    err(
                        file,
                        ent.span(),
                        format!(
                            "`{name}` uses {{client}}, which only templates with match.engagement_role can fill"
                        ),
                    );
                }
            } else if !entitlements.contains_key(name) {
                err(
                    file,
                    ent.span(),
                    format!("template `{id}` names unknown entitlement `{name}`"),
                );
            }
        }
        templates.push(RoleTemplate {
            id,
            description: t.description,
            rule,
            entitlements: t
                .entitlements
                .into_iter()
                .map(Spanned::into_inner)
                .collect(),
            owner: t.owner.filter(|o| !o.trim().is_empty()),
        });
    }
    templates.sort_by(|a, b| a.id.cmp(&b.id));

    let import = validate_import(main, &raw.import, &mut err);
    let sod = validate_sod(
        main,
        raw.separation_of_duties,
        &entitlements,
        &clients,
        &mut err,
    );
    let mut person_attributes = BTreeMap::new();
    for (name, ty) in &raw.person_attributes {
        let n = name.get_ref();
        if !crate::model::is_attribute_name(n) {
            err(
                main,
                name.span(),
                format!(
                    "`{n}` is not an attribute name (letters, digits and `_`, not starting with a digit)"
                ),
            );
        } else if PERSON_BUILTIN.contains(&n.as_str()) {
            err(
                main,
                name.span(),
                format!("`{n}` is a built-in person attribute; choose another name"),
            );
        }
        match AttrType::ALL.iter().find(|(t, _)| t == ty.get_ref()) {
            Some((_, t)) => {
                person_attributes.insert(n.clone(), *t);
            }
            None => err(
                main,
                ty.span(),
                format!(
                    "unknown type `{}`; expected bool, string, long or set (a list of strings)",
                    ty.get_ref()
                ),
            ),
        }
    }
    let approvals = validate_approvals(main, raw.approvals, &sod, &mut err);
    let notifications = validate_notifications(main, raw.notifications, &mut err);
    let console = ConsoleSettings {
        oidc: raw.console.oidc.map(|o| validate_oidc(main, o, &mut err)),
    };
    let audit = AuditSettings {
        checkpoints: raw
            .audit
            .checkpoints
            .and_then(|c| validate_checkpoints(main, c, &mut err)),
    };

    let sla = validate_sla(main, raw.sla, &systems, &mut err);
    let mut period = |name: &str, d: Option<Spanned<String>>| {
        d.and_then(|d| match parse_duration_ms(d.get_ref()) {
            Some(ms) if RETENTION_RANGE_MS.contains(&ms) => Some(ms),
            _ => {
                err(
                    main,
                    d.span(),
                    format!(
                        "retention.{name} must be a duration from 1d to 3650d (ten years) such as \"180d\", not `{}`",
                        d.get_ref()
                    ),
                );
                None
            }
        })
    };
    let retention = RetentionSettings {
        event_payloads_ms: period("event_payloads", raw.retention.event_payloads),
        forget_people_ms: period("forget_people", raw.retention.forget_people),
    };

    let reviews = validate_reviews(
        main,
        raw.reviews,
        &approvals,
        &systems,
        &entitlements,
        &mut err,
    );

    let mut hr = BTreeMap::new();
    for (source, table) in &raw.hr {
        if !valid_id(source) {
            err(
                main,
                table.span(),
                format!("hr source `{source}` must be letters, digits, '-', '_', '.' or ':'"),
            );
        }
        match crate::hr::parse_mapping(source, table.get_ref()) {
            Ok(m) => {
                hr.insert(source.clone(), m);
            }
            Err(e) => err(main, table.span(), format!("hr.{source}: {e}")),
        }
    }

    Config {
        engine: raw.engine,
        systems,
        clients,
        entitlements,
        templates,
        import,
        sod,
        person_attributes,
        approvals,
        notifications,
        hr,
        audit,
        sla,
        retention,
        reconcile,
        console,
        reviews,
    }
}

/// Reads `[systems.reconcile]` of system `id`.
fn validate_reconcile(
    main: &SourceFile,
    id: &str,
    raw: Option<RawReconcile>,
    err: &mut impl FnMut(&SourceFile, Range<usize>, String),
) -> crate::drift::ReconcileSettings {
    use crate::drift::{
        AccountField, OnSeveral, Pattern, PersonField, ReconcileSettings, Remedy, Rule, Situation,
    };
    let mut out = ReconcileSettings::default();
    let Some(raw) = raw else { return out };
    out.delete_discovered = raw.delete_discovered;
    out.after_outage = raw.after_outage.unwrap_or(true);
    if let Some(every) = raw.every {
        match parse_duration_ms(every.get_ref()) {
            Some(ms) if (60_000..=7 * 24 * 3_600_000).contains(&ms) => out.every_ms = Some(ms),
            _ => err(
                main,
                every.span(),
                format!(
                    "systems `{id}`: reconcile.every must be a duration from 1m to 168h such as \"1h\", not `{}`",
                    every.get_ref()
                ),
            ),
        }
    }
    for rule in raw.correlate {
        let span = rule.span();
        let r = rule.into_inner();
        match (
            r.account.parse::<AccountField>(),
            r.person.parse::<PersonField>(),
        ) {
            (Ok(account), Ok(person)) => {
                // Emails compare without regard to case unless told otherwise; ids exactly.
                let ignore_case = match (person, r.ignore_case) {
                    (PersonField::Id, Some(true)) => {
                        err(
                            main,
                            span.clone(),
                            format!(
                                "systems `{id}`: reconcile.correlate: person ids compare exactly; drop ignore_case"
                            ),
                        );
                        false
                    }
                    (PersonField::Id, _) => false,
                    (PersonField::Email, given) => given.unwrap_or(true),
                };
                let mut pattern = |text: &Option<String>| match text.as_deref().map(Pattern::parse)
                {
                    None => Pattern::default(),
                    Some(Ok(p)) => p,
                    Some(Err(e)) => {
                        err(
                            main,
                            span.clone(),
                            format!("systems `{id}`: reconcile.correlate: {e}"),
                        );
                        Pattern::default()
                    }
                };
                let account_pattern = pattern(&r.account_pattern);
                let person_pattern = pattern(&r.person_pattern);
                out.correlate.push(Rule {
                    account,
                    person,
                    ignore_case,
                    account_pattern,
                    person_pattern,
                })
            }
            (a, p) => {
                for e in [a.err(), p.err()].into_iter().flatten() {
                    err(
                        main,
                        span.clone(),
                        format!("systems `{id}`: reconcile.correlate: {e}"),
                    );
                }
            }
        }
    }
    if let Some(on) = raw.on_several {
        match on.get_ref().parse::<OnSeveral>() {
            Ok(v) => out.on_several = v,
            Err(_) => err(
                main,
                on.span(),
                format!(
                    "systems `{id}`: reconcile.on_several must be \"report\" or \"next_rule\", not `{}`",
                    on.get_ref()
                ),
            ),
        }
    }
    for (situation, remedy) in raw.actions {
        let span = remedy.span();
        let s = match situation.parse::<Situation>() {
            Ok(s) => s,
            Err(e) => {
                err(
                    main,
                    span,
                    format!("systems `{id}`: reconcile.actions: {e}"),
                );
                continue;
            }
        };
        match remedy.get_ref().parse::<Remedy>() {
            Ok(r) if s.remedies().contains(&r) => {
                out.actions.insert(s, r);
            }
            _ => err(
                main,
                span,
                format!(
                    "systems `{id}`: reconcile.actions.{s} must be one of {}, not `{}`",
                    s.remedies()
                        .iter()
                        .map(|r| format!("\"{r}\""))
                        .collect::<Vec<_>>()
                        .join(", "),
                    remedy.get_ref()
                ),
            ),
        }
    }
    if let Some(p) = raw.max_disable_percent {
        let v = *p.get_ref();
        if (0.0..=100.0).contains(&v) {
            out.max_disable_share = v / 100.0;
        } else {
            err(
                main,
                p.span(),
                format!(
                    "systems `{id}`: reconcile.max_disable_percent must be from 0 to 100, not {v}"
                ),
            );
        }
    }
    out
}

/// The longest service-level target: 90 days.
const MAX_SLA_MS: i64 = 90 * 24 * 3_600_000;

fn validate_sla(
    main: &SourceFile,
    raw: RawSla,
    systems: &BTreeMap<String, System>,
    err: &mut impl FnMut(&SourceFile, Range<usize>, String),
) -> SlaSettings {
    let mut target = |what: String, d: Option<Spanned<String>>| -> Option<i64> {
        let d = d?;
        match parse_duration_ms(d.get_ref()) {
            Some(ms) if (1_000..=MAX_SLA_MS).contains(&ms) => Some(ms),
            _ => {
                err(
                    main,
                    d.span(),
                    format!(
                        "{what} must be a duration from 1s to 2160h (90 days) such as \"15m\" or \"4h\", not `{}`",
                        d.get_ref()
                    ),
                );
                None
            }
        }
    };
    let provision_ms = target("sla.provision".into(), raw.provision);
    let revoke_ms = target("sla.revoke".into(), raw.revoke);
    let mut out = BTreeMap::new();
    let mut unknown = Vec::new();
    for (id, s) in raw.systems {
        let span = id.span();
        let id = id.into_inner();
        let own = SystemSla {
            provision_ms: target(format!("sla.systems.{id}.provision"), s.provision),
            revoke_ms: target(format!("sla.systems.{id}.revoke"), s.revoke),
        };
        if systems.contains_key(&id) {
            out.insert(id, own);
        } else {
            unknown.push((span, id));
        }
    }
    for (span, id) in unknown {
        err(
            main,
            span,
            format!("sla.systems: no system `{id}` is configured"),
        );
    }
    SlaSettings {
        provision_ms,
        revoke_ms,
        systems: out,
    }
}

/// The longest `every` of `[audit.checkpoints]`: a day.
const MAX_CHECKPOINT_EVERY_MS: i64 = 24 * 3_600_000;

fn env_name_ok(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn validate_checkpoints(
    main: &SourceFile,
    raw: Spanned<RawCheckpoints>,
    err: &mut impl FnMut(&SourceFile, Range<usize>, String),
) -> Option<CheckpointSettings> {
    let span = raw.span();
    let raw = raw.into_inner();
    let mut failed = false;
    let mut bad = |span: Range<usize>, msg: String| {
        failed = true;
        err(main, span, format!("audit.checkpoints: {msg}"));
    };
    let key = match (&raw.key_file, &raw.key_env) {
        (Some(f), None) if !f.get_ref().trim().is_empty() => {
            Some(KeySource::File(f.get_ref().trim().to_string()))
        }
        (Some(f), None) => {
            bad(f.span(), "key_file must name a file".into());
            None
        }
        (None, Some(e)) if env_name_ok(e.get_ref()) => Some(KeySource::Env(e.get_ref().clone())),
        (None, Some(e)) => {
            bad(
                e.span(),
                format!(
                    "key_env must name an environment variable (letters, digits, '_'), not `{}`",
                    e.get_ref()
                ),
            );
            None
        }
        (Some(_), Some(e)) => {
            bad(e.span(), "give key_file or key_env, not both".into());
            None
        }
        (None, None) => {
            bad(
                span.clone(),
                "the signing key is missing: set key_file (a file `tenure keys generate` wrote) or key_env (an environment variable holding the key)".into(),
            );
            None
        }
    };
    let every_entries = match &raw.every_entries {
        Some(n) if (1..=1_000_000_000).contains(n.get_ref()) => Some(*n.get_ref()),
        Some(n) => {
            bad(
                n.span(),
                format!(
                    "every_entries must be from 1 to 1000000000, not {}",
                    n.get_ref()
                ),
            );
            None
        }
        None => None,
    };
    let every_ms = match &raw.every {
        Some(d) => match parse_duration_ms(d.get_ref()) {
            Some(ms) if (1_000..=MAX_CHECKPOINT_EVERY_MS).contains(&ms) => Some(ms),
            _ => {
                bad(
                    d.span(),
                    format!(
                        "every must be a duration from 1s to 24h such as \"30s\", \"5m\" or \"1h\", not `{}`",
                        d.get_ref()
                    ),
                );
                None
            }
        },
        None => None,
    };
    if raw.every_entries.is_none() && raw.every.is_none() {
        bad(
            span.clone(),
            "say when to sign: every_entries (a count of new entries), every (a duration such as \"5m\"), or both".into(),
        );
    }
    let sink_text = raw.sink.get_ref().trim();
    let sink = if let Some(path) = sink_text.strip_prefix("file:") {
        if path.is_empty() {
            bad(raw.sink.span(), "sink `file:` needs a path".into());
        }
        if let Some(s) = &raw.secret_env {
            bad(s.span(), "secret_env is for a webhook sink only".into());
        }
        Some(CheckpointSink::File(path.to_string()))
    } else if let Some(url) = sink_text.strip_prefix("webhook:") {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            bad(
                raw.sink.span(),
                format!("sink `webhook:` needs an http:// or https:// URL, not `{url}`"),
            );
        }
        match &raw.secret_env {
            Some(s) if env_name_ok(s.get_ref()) => Some(CheckpointSink::Webhook {
                url: url.to_string(),
                secret_env: s.get_ref().clone(),
            }),
            Some(s) => {
                bad(
                    s.span(),
                    format!(
                        "secret_env must name an environment variable (letters, digits, '_'), not `{}`",
                        s.get_ref()
                    ),
                );
                None
            }
            None => {
                bad(
                    raw.sink.span(),
                    "a webhook sink needs secret_env: the environment variable holding the signing secret".into(),
                );
                None
            }
        }
    } else {
        bad(
            raw.sink.span(),
            format!("sink must be `file:PATH` or `webhook:URL`, not `{sink_text}`"),
        );
        None
    };
    if failed {
        return None;
    }
    Some(CheckpointSettings {
        key: key?,
        cadence: crate::checkpoint::Cadence {
            every_entries,
            every_ms,
        },
        sink: sink?,
    })
}

/// A duration written as a whole number and a unit: `s`, `m`, `h` or `d` (`90s`, `5m`, `1h`,
/// `180d`), in ms.
pub fn parse_duration_ms(text: &str) -> Option<i64> {
    let t = text.trim();
    let unit = t.chars().last()?;
    let scale = match unit {
        's' => 1_000,
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => 86_400_000,
        _ => return None,
    };
    let digits = &t[..t.len() - 1];
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) || digits.len() > 9 {
        return None;
    }
    digits.parse::<i64>().ok().map(|n| n * scale)
}

/// The approvers an exception to a separation-of-duties rule may name.
pub const SOD_APPROVERS: &[&str] = &["manager", "owner", "client_owner"];

fn validate_sod(
    main: &SourceFile,
    raw: Vec<RawSod>,
    entitlements: &BTreeMap<String, Entitlement>,
    clients: &BTreeMap<String, Client>,
    err: &mut impl FnMut(&SourceFile, Range<usize>, String),
) -> Vec<SodRule> {
    let mut rules = Vec::new();
    let mut seen = BTreeSet::new();
    for r in raw {
        let id = r.id.get_ref().clone();
        if !valid_id(&id) {
            err(
                main,
                r.id.span(),
                format!("rule id `{id}` must be non-empty letters, digits, '-', '_', '.' or ':'"),
            );
            continue;
        }
        if !seen.insert(id.clone()) {
            err(
                main,
                r.id.span(),
                format!("separation-of-duties rule `{id}` is declared twice"),
            );
        }
        let effect = match r.effect.as_ref().map(|e| e.get_ref().as_str()) {
            None | Some("deny") => {
                if let Some(a) = &r.approver {
                    err(
                        main,
                        a.span(),
                        "`approver` only goes with effect = \"approval\"".into(),
                    );
                }
                SodEffect::Deny
            }
            Some("approval") => {
                let approver = r
                    .approver
                    .as_ref()
                    .map_or("owner", |a| a.get_ref().as_str());
                if !SOD_APPROVERS.contains(&approver) {
                    let span = r.approver.as_ref().map(|a| a.span()).unwrap_or(r.id.span());
                    err(
                        main,
                        span,
                        format!(
                            "unknown approver `{approver}`; expected one of: {}",
                            SOD_APPROVERS.join(", ")
                        ),
                    );
                }
                SodEffect::Approval {
                    approver: approver.to_string(),
                }
            }
            Some(other) => {
                let span = r.effect.as_ref().map(|e| e.span()).unwrap_or(r.id.span());
                err(
                    main,
                    span,
                    format!("unknown effect `{other}`; expected deny or approval"),
                );
                continue;
            }
        };
        let patterns: BTreeSet<String> = r
            .entitlements
            .get_ref()
            .iter()
            .map(|e| e.get_ref().clone())
            .collect();
        if patterns.len() < 2 {
            err(
                main,
                r.entitlements.span(),
                format!("rule `{id}` needs at least two different entitlements"),
            );
            continue;
        }
        let per_client = patterns.iter().any(|p| p.contains("{client}"));
        if !per_client {
            for e in r.entitlements.get_ref() {
                if !entitlements.contains_key(e.get_ref()) {
                    err(
                        main,
                        e.span(),
                        format!("rule `{id}` names unknown entitlement `{}`", e.get_ref()),
                    );
                }
            }
            if let Some(c) = r.clients.as_ref().and_then(|c| c.first()) {
                err(
                    main,
                    c.span(),
                    format!(
                        "rule `{id}` has no {{client}} entitlement, so `clients` has nothing to choose"
                    ),
                );
            }
            rules.push(SodRule {
                id,
                client: None,
                entitlements: patterns,
                effect,
                description: r.description,
            });
            continue;
        }
        let chosen: Vec<String> = match &r.clients {
            Some(list) => {
                let mut out = Vec::new();
                for c in list {
                    if clients.contains_key(c.get_ref()) {
                        out.push(c.get_ref().clone());
                    } else {
                        err(
                            main,
                            c.span(),
                            format!("rule `{id}` names unknown client `{}`", c.get_ref()),
                        );
                    }
                }
                out
            }
            None => clients.keys().cloned().collect(),
        };
        let before = rules.len();
        for client in chosen {
            let set: BTreeSet<String> = patterns.iter().map(|p| sod::expand(p, &client)).collect();
            // A client without one of the entitlements cannot complete the combination.
            if set.iter().all(|e| entitlements.contains_key(e)) {
                rules.push(SodRule {
                    id: id.clone(),
                    client: Some(client),
                    entitlements: set,
                    effect: effect.clone(),
                    description: r.description.clone(),
                });
            }
        }
        if rules.len() == before {
            err(
                main,
                r.entitlements.span(),
                format!("rule `{id}` matches no client: no client has all of its entitlements"),
            );
        }
    }
    rules
}

fn validate_approvals(
    main: &SourceFile,
    raw: RawApprovals,
    sod: &[SodRule],
    err: &mut impl FnMut(&SourceFile, Range<usize>, String),
) -> ApprovalSettings {
    use crate::approval::StageKind;
    let mut settings = ApprovalSettings::default();
    let mut stages = |list: &Spanned<Vec<String>>, what: &str| -> Vec<StageKind> {
        let mut out = Vec::new();
        for s in list.get_ref() {
            match s.parse::<StageKind>() {
                Ok(k) if !out.contains(&k) => out.push(k),
                Ok(_) => {}
                Err(e) => err(main, list.span(), format!("{what}: {e}")),
            }
        }
        out
    };
    if let Some(list) = &raw.request_stages {
        settings.request_stages = stages(list, "request_stages");
    }
    if let Some(list) = &raw.require_all {
        settings.require_all = stages(list, "require_all");
    }
    let mut minutes = |v: &Option<Spanned<i64>>, name: &str, target: &mut i64| {
        if let Some(v) = v {
            let m = *v.get_ref();
            if (1..=525_600).contains(&m) {
                *target = m * 60_000;
            } else {
                err(
                    main,
                    v.span(),
                    format!("{name} must be between 1 and 525600 minutes (a year), not {m}"),
                );
            }
        }
    };
    minutes(
        &raw.stage_timeout_minutes,
        "stage_timeout_minutes",
        &mut settings.stage_timeout_ms,
    );
    minutes(
        &raw.deadline_minutes,
        "deadline_minutes",
        &mut settings.deadline_ms,
    );
    minutes(
        &raw.max_window_minutes,
        "max_window_minutes",
        &mut settings.max_window_ms,
    );
    minutes(
        &raw.break_glass_max_minutes,
        "break_glass_max_minutes",
        &mut settings.break_glass_max_ms,
    );
    for id in &raw.break_glass_may_override {
        let rules: Vec<&SodRule> = sod.iter().filter(|r| r.id == *id.get_ref()).collect();
        if rules.is_empty() {
            err(
                main,
                id.span(),
                format!(
                    "break_glass_may_override names `{}`, which is no [[separation_of_duties]] rule",
                    id.get_ref()
                ),
            );
        } else if rules.iter().any(|r| r.effect != SodEffect::Deny) {
            err(
                main,
                id.span(),
                format!(
                    "rule `{}` asks for an exception approval, which break-glass skips already; only a `deny` rule can be overridden",
                    id.get_ref()
                ),
            );
        } else {
            settings
                .break_glass_may_override
                .insert(id.get_ref().clone());
        }
    }
    settings.teams = raw.teams;
    settings
}

/// The scopes a person signed in through OpenID Connect gets unless `scopes` says otherwise:
/// ask for access (which shows the catalog) and decide their own approvals. Reading everyone's
/// people, runs and audit (`read`) is given by `scopes` or a role, not by default.
pub const OIDC_DEFAULT_SCOPES: [crate::Scope; 2] = [crate::Scope::Request, crate::Scope::Approve];

fn validate_oidc(
    main: &SourceFile,
    raw: RawOidc,
    err: &mut impl FnMut(&SourceFile, Range<usize>, String),
) -> OidcSettings {
    let issuer = raw
        .issuer
        .get_ref()
        .trim()
        .trim_end_matches('/')
        .to_string();
    let local = ["http://localhost", "http://127.0.0.1", "http://[::1]"]
        .iter()
        .any(|p| {
            issuer
                .strip_prefix(p)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '/']))
        });
    if !(issuer.starts_with("https://") || local) {
        err(
            main,
            raw.issuer.span(),
            format!(
                "console.oidc.issuer must be an https:// URL (http:// only on localhost), not `{issuer}`"
            ),
        );
    }
    if raw.client_id.get_ref().trim().is_empty() {
        err(
            main,
            raw.client_id.span(),
            "console.oidc.client_id is empty".into(),
        );
    }
    if let Some(env) = &raw.client_secret_env {
        check_env_name(main, env, "console.oidc.client_secret_env", err);
    }
    let mut claim_name = |c: Option<Spanned<String>>, default: &str, key: &str| match c {
        None => default.to_string(),
        Some(c) if c.get_ref().trim().is_empty() => {
            err(main, c.span(), format!("console.oidc.{key} is empty"));
            default.to_string()
        }
        Some(c) => c.into_inner().trim().to_string(),
    };
    let claim = claim_name(raw.claim, "email", "claim");
    let roles_claim = claim_name(raw.roles_claim, "groups", "roles_claim");
    let person_field = match raw.person_field {
        None => crate::drift::PersonField::Email,
        Some(f) => f
            .get_ref()
            .parse()
            .unwrap_or_else(|e: crate::model::UnknownValue| {
                err(main, f.span(), format!("console.oidc.person_field: {e}"));
                crate::drift::PersonField::Email
            }),
    };
    let mut scopes = |list: Vec<Spanned<String>>, key: &str| -> Vec<crate::Scope> {
        list.into_iter()
            .filter_map(|s| match s.get_ref().parse() {
                Ok(scope) => Some(scope),
                Err(e) => {
                    err(main, s.span(), format!("console.oidc.{key}: {e}"));
                    None
                }
            })
            .collect()
    };
    let everyone = match raw.scopes {
        None => OIDC_DEFAULT_SCOPES.to_vec(),
        Some(list) => scopes(list, "scopes"),
    };
    let roles = raw
        .roles
        .into_iter()
        .map(|(role, list)| {
            let key = format!("roles.\"{role}\"");
            (role, scopes(list, &key))
        })
        .collect();
    OidcSettings {
        issuer,
        client_id: raw.client_id.into_inner().trim().to_string(),
        client_secret_env: raw.client_secret_env.map(Spanned::into_inner),
        label: raw
            .label
            .filter(|l| !l.trim().is_empty())
            .unwrap_or_else(|| "your identity provider".into()),
        claim,
        person_field,
        scopes: everyone,
        roles_claim,
        roles,
    }
}

/// The default length of a review campaign, in days.
pub const REVIEW_DEFAULT_DAYS: u32 = 14;

fn validate_reviews(
    main: &SourceFile,
    raw: Vec<RawReview>,
    approvals: &ApprovalSettings,
    systems: &BTreeMap<String, System>,
    entitlements: &BTreeMap<String, Entitlement>,
    err: &mut impl FnMut(&SourceFile, Range<usize>, String),
) -> BTreeMap<String, crate::review::CampaignDefinition> {
    use crate::review::{ApplyAt, CampaignDefinition, WhenUndecided};
    let mut out = BTreeMap::new();
    for r in raw {
        let name = r.name.get_ref().trim().to_string();
        let span = r.name.span();
        if !valid_id(&name) {
            err(
                main,
                span.clone(),
                format!("review name `{name}` must be letters, digits, '-', '_', '.' or ':'"),
            );
        }
        let reviewer = review_choice(main, &name, "reviewer", Some(r.reviewer), err)
            .unwrap_or(crate::review::ReviewerKind::Manager);
        let def = CampaignDefinition {
            scope: r.scope,
            reviewer,
            team: r.team,
            fallback: r.fallback,
            duration_days: r.duration_days.unwrap_or(REVIEW_DEFAULT_DAYS),
            reminder_days: r.reminder_days,
            recurrence: review_choice(main, &name, "recurrence", r.recurrence, err),
            when_undecided: review_choice(main, &name, "when_undecided", r.when_undecided, err)
                .unwrap_or(WhenUndecided::Keep),
            apply: review_choice(main, &name, "apply", r.apply, err).unwrap_or(ApplyAt::Close),
            auto_close: r.auto_close.unwrap_or(true),
        };
        let mut problems = def.problems(&approvals.teams);
        problems.extend(def.scope.unknown_names(systems, entitlements));
        for p in problems {
            err(main, span.clone(), format!("reviews `{name}`: {p}"));
        }
        if out.insert(name.clone(), def).is_some() {
            err(main, span, format!("review `{name}` is defined twice"));
        }
    }
    out
}

/// One of a closed set of words in `[[reviews]]`, its mistake located.
fn review_choice<T: std::str::FromStr<Err = crate::model::UnknownValue>>(
    main: &SourceFile,
    name: &str,
    key: &str,
    v: Option<Spanned<String>>,
    err: &mut impl FnMut(&SourceFile, Range<usize>, String),
) -> Option<T> {
    let v = v?;
    match v.get_ref().trim().parse() {
        Ok(x) => Some(x),
        Err(e) => {
            err(main, v.span(), format!("reviews `{name}`: {key}: {e}"));
            None
        }
    }
}

/// Refuses a `*_env` setting that cannot name an environment variable.
fn check_env_name(
    main: &SourceFile,
    env: &Spanned<String>,
    key: &str,
    err: &mut impl FnMut(&SourceFile, Range<usize>, String),
) {
    let e = env.get_ref();
    if e.is_empty() || !e.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        err(
            main,
            env.span(),
            format!("{key} must name an environment variable (letters, digits, '_'), not `{e}`"),
        );
    }
}

fn validate_notifications(
    main: &SourceFile,
    raw: RawNotifications,
    err: &mut impl FnMut(&SourceFile, Range<usize>, String),
) -> NotificationSettings {
    let mut settings = NotificationSettings {
        max_attempts: 8,
        ..Default::default()
    };
    if let Some(url) = &raw.webhook_url {
        let u = url.get_ref().trim();
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            err(
                main,
                url.span(),
                format!("webhook_url must be an http:// or https:// URL, not `{u}`"),
            );
        }
        settings.webhook_url = Some(u.to_string());
        if raw.secret_env.is_none() {
            err(
                main,
                url.span(),
                "a webhook_url needs secret_env: the environment variable holding the signing secret".into(),
            );
        }
    }
    if let Some(env) = &raw.secret_env {
        check_env_name(main, env, "secret_env", err);
        settings.secret_env = Some(env.get_ref().clone());
    }
    if let Some(n) = &raw.max_attempts {
        if *n.get_ref() == 0 {
            err(main, n.span(), "max_attempts must be at least 1".into());
        }
        settings.max_attempts = *n.get_ref();
    }
    settings
}

fn validate_import(
    main: &SourceFile,
    raw: &RawImport,
    err: &mut impl FnMut(&SourceFile, Range<usize>, String),
) -> ImportSettings {
    let mut settings = ImportSettings::default();
    if let Some(share) = &raw.max_leave_share {
        let v = *share.get_ref();
        if v.is_finite() && (0.0..=1.0).contains(&v) {
            settings.max_leave_share = v;
        } else {
            err(
                main,
                share.span(),
                format!("max_leave_share must be a share between 0 and 1 (0.05 is 5%), not {v}"),
            );
        }
    }
    let mut seen: BTreeMap<String, (Field, Option<Range<usize>>)> = BTreeMap::new();
    for field in Field::ALL {
        let (header, span) = match raw.columns.get(field) {
            Some(h) => (h.get_ref().trim().to_string(), Some(h.span())),
            None => (field.as_str().to_string(), None),
        };
        if let Some(span) = &span {
            if header.is_empty() {
                err(
                    main,
                    span.clone(),
                    format!("the column header for `{field}` must not be empty"),
                );
                continue;
            }
            settings.columns.set(field, header.clone());
        }
        if let Some((other, other_span)) = seen.insert(header.to_lowercase(), (field, span.clone()))
        {
            err(
                main,
                span.or(other_span).unwrap_or(0..0),
                format!("`{field}` and `{other}` both read column `{header}`"),
            );
        }
    }
    settings
}

/// The longest contract window a client may set (ten years).
pub const MAX_ACCESS_DAYS: i64 = 3650;

/// Ids are non-empty and made of letters, digits, `-`, `_`, `.` and `:`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 200
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, text: &str) -> SourceFile {
        SourceFile {
            path: path.into(),
            text: text.into(),
        }
    }

    #[test]
    fn review_definitions_are_read_with_defaults_and_their_mistakes_located() {
        use crate::review::{ApplyAt, Recurrence, ReviewerKind, WhenUndecided};
        let base = "[[systems]]\nid = \"crm\"\nconnector = \"sandbox\"\n\
                    [[entitlements]]\nid = \"crm:admin\"\nsystem = \"crm\"\nrisk = \"privileged\"\n\
                    [approvals.teams]\nsecurity = [\"ann\"]\n";
        let text = format!(
            "{base}[[reviews]]\nname = \"privileged\"\nreviewer = \"team\"\nteam = \"security\"\n\
             recurrence = \"quarterly\"\nwhen_undecided = \"recommendation\"\nreminder_days = [3]\n\
             [reviews.scope]\nrisks = [\"privileged\"]\n\
             [[reviews]]\nname = \"managers\"\nreviewer = \"manager\"\n"
        );
        let c = Config::parse(&file("tenure.toml", &text), &[]).unwrap();
        let p = &c.reviews["privileged"];
        assert_eq!(p.reviewer, ReviewerKind::Team);
        assert_eq!(p.recurrence, Some(Recurrence::Quarterly));
        assert_eq!(p.when_undecided, WhenUndecided::Recommendation);
        assert_eq!(p.scope.risks, [Risk::Privileged]);
        let m = &c.reviews["managers"];
        assert_eq!(
            (
                m.duration_days,
                m.apply,
                m.auto_close,
                m.when_undecided,
                m.recurrence
            ),
            (
                REVIEW_DEFAULT_DAYS,
                ApplyAt::Close,
                true,
                WhenUndecided::Keep,
                None
            )
        );
        for (review, says) in [
            (
                "reviewer = \"boss\"",
                "reviewer: unknown ReviewerKind `boss`",
            ),
            (
                "reviewer = \"team\"\nteam = \"ghosts\"",
                "team `ghosts` is not a team",
            ),
            (
                "reviewer = \"manager\"\nduration_days = 0",
                "duration_days must be 1 to 366",
            ),
            (
                "reviewer = \"manager\"\nreminder_days = [14]",
                "reminder_days must be 1 to 13",
            ),
            (
                "reviewer = \"manager\"\nrecurrence = \"weekly\"",
                "recurrence: unknown Recurrence",
            ),
            (
                "reviewer = \"manager\"\n[reviews.scope]\nsystems = [\"erp\"]",
                "unknown system `erp`",
            ),
            (
                "reviewer = \"manager\"\n[reviews.scope]\ncolour = [\"x\"]",
                "unknown field `colour`",
            ),
        ] {
            let text = format!("{base}[[reviews]]\nname = \"r\"\n{review}\n");
            let e = Config::parse(&file("tenure.toml", &text), &[])
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{review}: {e}");
            assert!(e.contains("tenure.toml:"), "located: {e}");
        }
        let twice = format!(
            "{base}[[reviews]]\nname = \"r\"\nreviewer = \"manager\"\n[[reviews]]\nname = \"r\"\nreviewer = \"owner\"\n"
        );
        let e = Config::parse(&file("tenure.toml", &twice), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("defined twice"), "{e}");
    }

    #[test]
    fn console_oidc_settings_are_read_with_defaults_and_their_mistakes_located() {
        use crate::Scope;
        let none = Config::parse(&file("tenure.toml", ""), &[]).unwrap();
        assert_eq!(none.console.oidc, None);
        let text =
            "[console.oidc]\nissuer = \"https://login.example.com/\"\nclient_id = \"tenure\"\n";
        let o = Config::parse(&file("tenure.toml", text), &[])
            .unwrap()
            .console
            .oidc
            .unwrap();
        assert_eq!(o.issuer, "https://login.example.com");
        assert_eq!(
            (o.claim.as_str(), o.roles_claim.as_str()),
            ("email", "groups")
        );
        assert_eq!(o.person_field, crate::drift::PersonField::Email);
        assert_eq!(o.scopes, OIDC_DEFAULT_SCOPES);
        assert_eq!(o.client_secret_env, None);
        let text = "[console.oidc]\nissuer = \"http://localhost:9000\"\nclient_id = \"t\"\n\
                    client_secret_env = \"OIDC_SECRET\"\nlabel = \"Okta\"\nclaim = \"employee_number\"\n\
                    person_field = \"id\"\nscopes = [\"request\"]\nroles_claim = \"roles\"\n\
                    [console.oidc.roles]\n\"it-admins\" = [\"admin\"]\n";
        let o = Config::parse(&file("tenure.toml", text), &[])
            .unwrap()
            .console
            .oidc
            .unwrap();
        assert_eq!(o.person_field, crate::drift::PersonField::Id);
        assert_eq!(o.scopes, [Scope::Request]);
        assert_eq!(o.roles["it-admins"], [Scope::Admin]);
        assert_eq!(
            (o.label.as_str(), o.claim.as_str()),
            ("Okta", "employee_number")
        );
        for (text, says) in [
            (
                "issuer = \"http://login.example.com\"\nclient_id = \"t\"",
                "must be an https:// URL",
            ),
            (
                "issuer = \"http://localhost.evil.com\"\nclient_id = \"t\"",
                "must be an https:// URL",
            ),
            (
                "issuer = \"https://i\"\nclient_id = \" \"",
                "client_id is empty",
            ),
            (
                "issuer = \"https://i\"\nclient_id = \"t\"\nclient_secret_env = \"A-B\"",
                "must name an environment variable",
            ),
            (
                "issuer = \"https://i\"\nclient_id = \"t\"\nperson_field = \"name\"",
                "person_field",
            ),
            (
                "issuer = \"https://i\"\nclient_id = \"t\"\nscopes = [\"root\"]",
                "unknown scope `root`",
            ),
            (
                "issuer = \"https://i\"\nclient_id = \"t\"\n[console.oidc.roles]\nops = [\"sudo\"]",
                "roles.\"ops\"",
            ),
            ("issuer = \"https://i\"", "client_id"),
        ] {
            let e = Config::parse(
                &file("tenure.toml", &format!("[console.oidc]\n{text}\n")),
                &[],
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn reconciliation_settings_are_read_and_their_mistakes_located() {
        use crate::drift::{AccountField, PersonField, Remedy, Rule, Situation};
        let system = "[[systems]]\nid = \"dir\"\nconnector = \"sandbox\"\n";
        let ok = format!(
            "{system}[systems.reconcile]\nevery = \"1h\"\nmax_disable_percent = 2.5\n\
             correlate = [{{ account = \"email\", person = \"email\" }}, {{ account = \"employee_id\", person = \"id\" }}, \
             {{ account = \"username\", person = \"id\", account_pattern = \"u-{{}}\" }}]\n\
             on_several = \"next_rule\"\n\
             actions = {{ stale = \"disable\", missing = \"report\" }}\n\
             [[systems]]\nid = \"crm\"\nconnector = \"sandbox\"\n"
        );
        let c = Config::parse(&file("tenure.toml", &ok), &[]).unwrap();
        let r = &c.reconcile["dir"];
        assert_eq!(r.every_ms, Some(3_600_000));
        assert_eq!(r.max_disable_share, 0.025);
        assert!(r.after_outage && !r.delete_discovered);
        assert_eq!(
            r.correlate,
            [
                Rule::plain(AccountField::Email, PersonField::Email, true),
                Rule::plain(AccountField::EmployeeId, PersonField::Id, false),
                Rule {
                    account_pattern: crate::drift::Pattern::parse("u-{}").unwrap(),
                    ..Rule::plain(AccountField::Username, PersonField::Id, false)
                },
            ]
        );
        assert_eq!(r.on_several, crate::drift::OnSeveral::NextRule);
        assert_eq!(r.remedy(Situation::Stale), Remedy::Disable);
        assert_eq!(r.remedy(Situation::Orphan), Remedy::Report);
        // A system without the table: reported on demand, never on its own.
        let crm = &c.reconcile["crm"];
        assert_eq!((crm.every_ms, crm.after_outage), (None, false));
        assert!(crm.actions.is_empty());
        for (text, says) in [
            (
                "every = \"30s\"",
                "reconcile.every must be a duration from 1m",
            ),
            (
                "actions = { ambiguous = \"disable\" }",
                "actions.ambiguous must be one of \"report\"",
            ),
            (
                "actions = { stale = \"delete\" }",
                "must be one of \"report\", \"disable\"",
            ),
            (
                "actions = { lost = \"report\" }",
                "unknown Situation `lost`",
            ),
            (
                "correlate = [{ account = \"phone\", person = \"id\" }]",
                "unknown AccountField `phone`",
            ),
            (
                "correlate = [{ account = \"username\", person = \"id\", ignore_case = true }]",
                "person ids compare exactly",
            ),
            (
                "correlate = [{ account = \"username\", person = \"email\", person_pattern = \"{}@x.com{}\" }]",
                "exactly one `{}`",
            ),
            (
                "on_several = \"first\"",
                "on_several must be \"report\" or \"next_rule\"",
            ),
            (
                "max_disable_percent = 150",
                "max_disable_percent must be from 0 to 100",
            ),
            ("delete_all = true", "unknown field `delete_all`"),
        ] {
            let text = format!("{system}[systems.reconcile]\n{text}\n");
            let e = Config::parse(&file("tenure.toml", &text), &[]).unwrap_err();
            assert_eq!(e.0[0].line, 5, "{text}: {e}");
            assert!(e.to_string().contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn audit_checkpoints_are_read_and_their_mistakes_located() {
        let ok = file(
            "tenure.toml",
            "[audit.checkpoints]\nkey_file = \"keys/checkpoint.key\"\nevery_entries = 1000\nevery = \"5m\"\nsink = \"file:/var/lib/tenure/checkpoints.jsonl\"\n",
        );
        let c = Config::parse(&ok, &[]).unwrap().audit.checkpoints.unwrap();
        assert_eq!(c.key, KeySource::File("keys/checkpoint.key".into()));
        assert_eq!(
            c.cadence,
            crate::checkpoint::Cadence {
                every_entries: Some(1000),
                every_ms: Some(300_000)
            }
        );
        assert_eq!(
            c.sink,
            CheckpointSink::File("/var/lib/tenure/checkpoints.jsonl".into())
        );
        let hook = file(
            "tenure.toml",
            "[audit.checkpoints]\nkey_env = \"TENURE_CHECKPOINT_KEY\"\nevery = \"30s\"\nsink = \"webhook:https://evidence.example.com/in\"\nsecret_env = \"EVIDENCE_SECRET\"\n",
        );
        let c = Config::parse(&hook, &[])
            .unwrap()
            .audit
            .checkpoints
            .unwrap();
        assert_eq!(c.key, KeySource::Env("TENURE_CHECKPOINT_KEY".into()));
        assert_eq!(
            c.sink,
            CheckpointSink::Webhook {
                url: "https://evidence.example.com/in".into(),
                secret_env: "EVIDENCE_SECRET".into()
            }
        );
        assert!(
            Config::parse(&file("tenure.toml", ""), &[])
                .unwrap()
                .audit
                .checkpoints
                .is_none()
        );
        for (text, line, says) in [
            (
                "[audit.checkpoints]\nevery = \"5m\"\nsink = \"file:x\"\n",
                1,
                "the signing key is missing",
            ),
            (
                "[audit.checkpoints]\nkey_file = \"k\"\nsink = \"file:x\"\n",
                1,
                "say when to sign",
            ),
            (
                "[audit.checkpoints]\nkey_file = \"k\"\nevery = \"5 minutes\"\nsink = \"file:x\"\n",
                3,
                "every must be a duration",
            ),
            (
                "[audit.checkpoints]\nkey_file = \"k\"\nevery_entries = 0\nsink = \"file:x\"\n",
                3,
                "every_entries must be from 1",
            ),
            (
                "[audit.checkpoints]\nkey_file = \"k\"\nevery = \"5m\"\nsink = \"s3:bucket\"\n",
                4,
                "sink must be `file:PATH` or `webhook:URL`",
            ),
            (
                "[audit.checkpoints]\nkey_file = \"k\"\nevery = \"5m\"\nsink = \"webhook:https://x\"\n",
                4,
                "needs secret_env",
            ),
            (
                "[audit.checkpoints]\nkey_file = \"k\"\nkey_env = \"K\"\nevery = \"5m\"\nsink = \"file:x\"\n",
                3,
                "not both",
            ),
            (
                "[audit.checkpoints]\nkey_file = \"k\"\nevery = \"5m\"\nsink = \"file:x\"\nkey = \"ed25519-private:00\"\n",
                5,
                "unknown field `key`",
            ),
        ] {
            let e = Config::parse(&file("tenure.toml", text), &[]).unwrap_err();
            assert_eq!(e.0[0].line, line, "{text}: {e}");
            assert!(e.to_string().contains(says), "{text}: {e}");
        }
        assert_eq!(parse_duration_ms("90s"), Some(90_000));
        assert_eq!(parse_duration_ms("1h"), Some(3_600_000));
        assert_eq!(parse_duration_ms("m"), None);
        assert_eq!(parse_duration_ms("-5m"), None);
    }

    #[test]
    fn retention_is_read_in_days_and_its_mistakes_located() {
        let ok = Config::parse(
            &file(
                "tenure.toml",
                "[retention]\nevent_payloads = \"180d\"\nforget_people = \"365d\"\n",
            ),
            &[],
        )
        .unwrap();
        assert_eq!(ok.retention.event_payloads_ms, Some(180 * 86_400_000));
        assert_eq!(ok.retention.forget_people_ms, Some(365 * 86_400_000));
        let none = Config::parse(&file("tenure.toml", ""), &[]).unwrap();
        assert_eq!(none.retention, RetentionSettings::default());
        for (text, says) in [
            (
                "[retention]\nevent_payloads = \"12h\"\n",
                "from 1d to 3650d",
            ),
            (
                "[retention]\nevent_payloads = \"3651d\"\n",
                "from 1d to 3650d",
            ),
            (
                "[retention]\nevent_payloads = \"half a year\"\n",
                "not `half a year`",
            ),
            ("[retention]\npeople = \"30d\"\n", "unknown field `people`"),
            (
                "[retention]\nforget_people = \"0d\"\n",
                "retention.forget_people must be a duration from 1d",
            ),
        ] {
            let e = Config::parse(&file("tenure.toml", text), &[]).unwrap_err();
            assert_eq!(e.0[0].line, 2, "{text}: {e}");
            assert!(e.to_string().contains(says), "{text}: {e}");
        }
        assert_eq!(parse_duration_ms("1d"), Some(86_400_000));
    }

    #[test]
    fn service_level_targets_are_read_per_system_and_their_mistakes_located() {
        let systems = "[[systems]]\nid = \"crm\"\nconnector = \"sandbox\"\n[[systems]]\nid = \"git\"\nconnector = \"sandbox\"\n";
        let ok = file(
            "tenure.toml",
            &format!(
                "{systems}[sla]\nprovision = \"4h\"\nrevoke = \"15m\"\n[sla.systems.git]\nrevoke = \"5m\"\n"
            ),
        );
        let sla = Config::parse(&ok, &[]).unwrap().sla;
        assert_eq!(sla.revoke_for("git"), Some(300_000));
        assert_eq!(sla.revoke_for("crm"), Some(900_000));
        assert_eq!(sla.provision_for("git"), Some(4 * 3_600_000));
        let none = Config::parse(&file("tenure.toml", systems), &[])
            .unwrap()
            .sla;
        assert_eq!(none, SlaSettings::default());
        assert_eq!(none.revoke_for("crm"), None);
        for (text, line, says) in [
            (
                "[sla]\nrevoke = \"15 minutes\"\n",
                8,
                "sla.revoke must be a duration",
            ),
            (
                "[sla]\nprovision = \"0s\"\n",
                8,
                "sla.provision must be a duration",
            ),
            ("[sla.systems.erp]\nrevoke = \"5m\"\n", 7, "no system `erp`"),
            (
                "[sla.systems.git]\nrevoke = \"2161h\"\n",
                8,
                "sla.systems.git.revoke must",
            ),
            (
                "[sla]\nrevoke_after = \"5m\"\n",
                8,
                "unknown field `revoke_after`",
            ),
        ] {
            let e =
                Config::parse(&file("tenure.toml", &format!("{systems}{text}")), &[]).unwrap_err();
            assert_eq!(e.0[0].line, line, "{text}: {e}");
            assert!(e.to_string().contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn a_template_matches_the_identity_provider_groups_of_a_person() {
        let main = file(
            "tenure.toml",
            "[[systems]]\nid = \"crm\"\nconnector = \"sandbox\"\n[[entitlements]]\nid = \"crm:sales\"\nsystem = \"crm\"\n",
        );
        let t = file(
            "templates/sales.toml",
            "entitlements = [\"crm:sales\"]\n[match]\ngroups = [\"Sales EMEA\", \"Sales DACH\"]\n",
        );
        let c = Config::parse(&main, &[t]).unwrap();
        let rule = &c.templates[0].rule;
        let mut p = Person::new("p", "P", "p@example.com");
        assert!(!rule.matches_person(&p), "in no group");
        p.attributes.insert(
            GROUPS_ATTRIBUTE.into(),
            serde_json::json!(["Finance", "sales emea"]),
        );
        assert!(rule.matches_person(&p), "one of them, case-insensitively");
        p.attributes
            .insert(GROUPS_ATTRIBUTE.into(), serde_json::json!(["Finance"]));
        assert!(!rule.matches_person(&p));
        let bad = file("tenure.toml", "[person_attributes]\ngroups = \"set\"\n");
        let e = Config::parse(&bad, &[]).unwrap_err();
        assert!(e.to_string().contains("built-in person attribute"), "{e}");
    }

    #[test]
    fn time_bounds_come_from_risk_and_the_clients_contract_the_shorter_winning() {
        let main = file(
            "tenure.toml",
            r#"
[[systems]]
id = "crm"
connector = "sandbox"
[[clients]]
id = "acme"
max_access_days = 30
[[clients]]
id = "brief"
max_access_days = 0
[approvals]
max_window_minutes = 120
[[entitlements]]
id = "crm:low"
system = "crm"
risk = "low"
[[entitlements]]
id = "crm:high"
system = "crm"
risk = "high"
[[entitlements]]
id = "crm:acme"
system = "crm"
client = "acme"
[[entitlements]]
id = "crm:acme-admin"
system = "crm"
risk = "privileged"
client = "acme"
"#,
        );
        let errors = Config::parse(&main, &[]).unwrap_err().to_string();
        assert!(
            errors.contains("tenure.toml:10:19:")
                && errors.contains(
                    "client `brief`: max_access_days must be a whole number of days from 1 to 3650"
                ),
            "{errors}"
        );
        let main = file(
            "tenure.toml",
            &main
                .text
                .replace("max_access_days = 0", "max_access_days = 1"),
        );
        let c = Config::parse(&main, &[]).unwrap();
        assert_eq!(c.time_bound("crm:low"), None);
        let high = c.time_bound("crm:high").unwrap();
        assert_eq!(
            (high.ms, high.why.as_str()),
            (2 * 3_600_000, "high-risk access lasts at most 120 minutes")
        );
        let acme = c.time_bound("crm:acme").unwrap();
        assert_eq!(
            (acme.ms, acme.why.as_str()),
            (
                30 * 86_400_000,
                "client `acme` allows access for at most 30 days"
            )
        );
        assert_eq!(c.time_bound("crm:acme-admin").unwrap().ms, 2 * 3_600_000);
        assert_eq!(c.time_bound("not:in-catalog").unwrap().ms, 2 * 3_600_000);
    }

    #[test]
    fn what_events_tell_of_a_client_wins_term_by_term() {
        let main = file(
            "tenure.toml",
            r#"
[[systems]]
id = "crm"
connector = "sandbox"
[[clients]]
id = "acme"
name = "Acme Corp"
max_access_days = 30
[clients.attributes]
data_region = "eu"
owner = "carl"
[[entitlements]]
id = "crm:acme"
system = "crm"
client = "acme"
"#,
        );
        let c = Config::parse(&main, &[]).unwrap();
        let told = |attrs: serde_json::Value, days: Option<u32>| Client {
            id: "acme".into(),
            name: "Acme".into(),
            attributes: attrs.as_object().cloned().unwrap_or_default(),
            max_access_days: days,
        };
        let facts = ClientFacts::new(&c, [told(serde_json::json!({ "data_region": "us" }), None)]);
        let acme = facts.get(&c, "acme").unwrap();
        assert_eq!(acme.name, "Acme");
        assert_eq!(
            serde_json::Value::Object(acme.attributes.clone()),
            serde_json::json!({ "data_region": "us", "owner": "carl" })
        );
        // No word on the contract's length: the configured one holds.
        assert_eq!(
            c.time_bound_with("crm:acme", &facts).unwrap().ms,
            30 * 86_400_000
        );
        let mut facts = facts;
        facts.tell(&c, told(serde_json::json!({}), Some(7)));
        assert_eq!(
            c.time_bound_with("crm:acme", &facts).unwrap().ms,
            7 * 86_400_000
        );
        assert_eq!(c.time_bound("crm:acme").unwrap().ms, 30 * 86_400_000);
        // A client the configuration does not know is taken as told.
        assert!(ClientFacts::default().get(&c, "globex").is_none());
        let mut globex = told(serde_json::json!({}), Some(5));
        globex.id = "globex".into();
        let facts = ClientFacts::new(&c, [globex]);
        assert_eq!(facts.get(&c, "globex").unwrap().max_access_days, Some(5));
    }

    const MAIN: &str = r#"
[[systems]]
id = "directory"
connector = "sandbox"

[[entitlements]]
id = "directory:staff"
system = "directory"
"#;

    #[test]
    fn a_small_config_loads() {
        let t = file(
            "templates/all.toml",
            "entitlements = [\"directory:staff\"]\n",
        );
        let c = Config::parse(&file("tenure.toml", MAIN), &[t]).unwrap();
        assert_eq!(c.templates[0].id, "all");
        assert_eq!(c.systems["directory"].max_concurrency, 16);
    }

    const SOD_MAIN: &str = r#"
[[systems]]
id = "erp"
connector = "sandbox"

[[clients]]
id = "acme"
[[clients]]
id = "globex"

[[entitlements]]
id = "erp:vendors"
system = "erp"
[[entitlements]]
id = "erp:payments"
system = "erp"
[[entitlements]]
id = "erp:acme:admin"
system = "erp"
client = "acme"
[[entitlements]]
id = "erp:acme:audit"
system = "erp"
client = "acme"
[[entitlements]]
id = "erp:globex:admin"
system = "erp"
client = "globex"
"#;

    #[test]
    fn separation_of_duties_rules_load_and_expand_per_client() {
        let text = format!(
            "{SOD_MAIN}\n[[separation_of_duties]]\nid = \"vendor-payments\"\nentitlements = [\"erp:vendors\", \"erp:payments\"]\n\n[[separation_of_duties]]\nid = \"admin-audit\"\nentitlements = [\"erp:{{client}}:admin\", \"erp:{{client}}:audit\"]\neffect = \"approval\"\napprover = \"client_owner\"\n"
        );
        let c = Config::parse(&file("tenure.toml", &text), &[]).unwrap();
        assert_eq!(c.sod.len(), 2, "{:?}", c.sod);
        assert_eq!(c.sod[0].reason_id(), "sod:vendor-payments");
        assert_eq!(c.sod[0].effect, SodEffect::Deny);
        // globex has no audit entitlement: only acme gets an instance of the client rule.
        assert_eq!(c.sod[1].reason_id(), "sod:admin-audit/acme");
        assert_eq!(
            c.sod[1].effect,
            SodEffect::Approval {
                approver: "client_owner".into()
            }
        );
    }

    #[test]
    fn break_glass_overrides_name_deny_rules_only() {
        let rules = format!(
            "{SOD_MAIN}\n[[separation_of_duties]]\nid = \"vendor-payments\"\nentitlements = [\"erp:vendors\", \"erp:payments\"]\n\n[[separation_of_duties]]\nid = \"admin-audit\"\nentitlements = [\"erp:{{client}}:admin\", \"erp:{{client}}:audit\"]\neffect = \"approval\"\n"
        );
        let ok =
            format!("{rules}\n[approvals]\nbreak_glass_may_override = [\"vendor-payments\"]\n");
        let c = Config::parse(&file("tenure.toml", &ok), &[]).unwrap();
        assert_eq!(
            c.approvals.break_glass_may_override,
            BTreeSet::from(["vendor-payments".to_string()])
        );
        // By default break-glass overrides nothing.
        let c = Config::parse(&file("tenure.toml", &rules), &[]).unwrap();
        assert!(c.approvals.break_glass_may_override.is_empty());

        let bad = format!(
            "{rules}\n[approvals]\nbreak_glass_may_override = [\"admin-audit\", \"nope\"]\n"
        );
        let errs = Config::parse(&file("tenure.toml", &bad), &[])
            .unwrap_err()
            .0;
        let msgs: Vec<_> = errs.iter().map(|e| (e.line, e.message.clone())).collect();
        assert_eq!(errs.len(), 2, "{msgs:?}");
        assert!(msgs.iter().all(|(l, _)| *l == 40), "{msgs:?}");
        assert!(msgs[0].1.contains("only a `deny` rule"), "{msgs:?}");
        assert!(msgs[1].1.contains("`nope`, which is no"), "{msgs:?}");
    }

    #[test]
    fn person_attributes_are_declared_with_types() {
        let ok =
            format!("{MAIN}\n[person_attributes]\nnda_signed = \"bool\"\ntrainings = \"set\"\n");
        let c = Config::parse(&file("tenure.toml", &ok), &[]).unwrap();
        assert_eq!(c.person_attributes["nda_signed"], AttrType::Bool);
        assert_eq!(c.person_attributes["trainings"], AttrType::StringSet);
        let bad = format!("{MAIN}\n[person_attributes]\ntitle = \"string\"\nlevel = \"float\"\n");
        let errs = Config::parse(&file("tenure.toml", &bad), &[])
            .unwrap_err()
            .0;
        let msgs: Vec<_> = errs.iter().map(|e| (e.line, e.message.clone())).collect();
        assert_eq!(errs.len(), 2, "{msgs:?}");
        assert!(
            msgs.iter()
                .any(|(l, m)| *l == 12 && m.contains("unknown type `float`")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter().any(|(l, m)| *l == 11 && m.contains("built-in")),
            "{msgs:?}"
        );
    }

    #[test]
    fn bad_separation_of_duties_rules_are_located() {
        let text = format!(
            "{SOD_MAIN}\n[[separation_of_duties]]\nid = \"one\"\nentitlements = [\"erp:vendors\"]\n\n[[separation_of_duties]]\nid = \"typo\"\nentitlements = [\"erp:vendors\", \"erp:paymnts\"]\neffect = \"block\"\n\n[[separation_of_duties]]\nid = \"who\"\nentitlements = [\"erp:vendors\", \"erp:payments\"]\neffect = \"approval\"\napprover = \"cfo\"\n"
        );
        let errs = Config::parse(&file("tenure.toml", &text), &[])
            .unwrap_err()
            .0;
        let msgs: Vec<_> = errs.iter().map(|e| (e.line, e.message.clone())).collect();
        assert_eq!(errs.len(), 3, "{msgs:?}");
        assert_eq!(errs[0].line, 32, "{msgs:?}");
        assert!(errs[0].message.contains("at least two"), "{msgs:?}");
        assert_eq!(errs[1].line, 37, "{msgs:?}");
        assert!(
            errs[1].message.contains("unknown effect `block`"),
            "{msgs:?}"
        );
        assert_eq!(errs[2].line, 43, "{msgs:?}");
        assert!(
            errs[2].message.contains("unknown approver `cfo`"),
            "{msgs:?}"
        );
    }

    #[test]
    fn errors_carry_file_line_and_column() {
        let bad = MAIN.replace("connector = \"sandbox\"", "connector = \"sandbx\"");
        let t = file(
            "templates/eng.toml",
            "entitlements = [\n  \"directory:nope\",\n]\n[match]\ndepartment = [\"Eng\"]\n",
        );
        let errs = Config::parse(&file("tenure.toml", &bad), &[t])
            .unwrap_err()
            .0;
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert_eq!(
            (errs[0].file.as_str(), errs[0].line, errs[0].column),
            ("tenure.toml", 4, 13)
        );
        assert!(errs[0].message.contains("unknown connector `sandbx`"));
        assert_eq!(
            (errs[1].file.as_str(), errs[1].line, errs[1].column),
            ("templates/eng.toml", 2, 3)
        );
    }

    #[test]
    fn the_import_section_is_optional_and_validated() {
        let c = Config::parse(&file("tenure.toml", MAIN), &[]).unwrap();
        assert_eq!(c.import, ImportSettings::default());
        assert_eq!(c.import.columns.header(Field::Id), "id");

        let text = format!(
            "{MAIN}\n[import]\nmax_leave_share = 0.1\n[import.columns]\nid = \"Employee ID\"\nemail = \" Work Email \"\n"
        );
        let c = Config::parse(&file("tenure.toml", &text), &[]).unwrap();
        assert_eq!(c.import.max_leave_share, 0.1);
        assert_eq!(c.import.columns.header(Field::Id), "Employee ID");
        assert_eq!(c.import.columns.header(Field::Email), "Work Email");
        assert_eq!(c.import.columns.header(Field::Name), "name");

        let bad = format!(
            "{MAIN}\n[import]\nmax_leave_share = 5\n[import.columns]\nid = \"name\"\ntitle = \"\"\n"
        );
        let errs = Config::parse(&file("tenure.toml", &bad), &[])
            .unwrap_err()
            .0;
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert_eq!((errs[0].line, errs[0].column), (11, 19));
        assert!(errs[0].message.contains("between 0 and 1"));
        assert_eq!(errs[1].line, 13);
        assert!(
            errs[1]
                .message
                .contains("`name` and `id` both read column `name`"),
            "{}",
            errs[1].message
        );
        assert_eq!(errs[2].line, 14);
        assert!(errs[2].message.contains("`title`"), "{}", errs[2].message);

        let typo = format!("{MAIN}\n[import.columns]\nemial = \"E-mail\"\n");
        let errs = Config::parse(&file("tenure.toml", &typo), &[])
            .unwrap_err()
            .0;
        assert_eq!(errs[0].line, 11, "{errs:?}");
        assert!(errs[0].message.contains("emial"), "{}", errs[0].message);
    }

    #[test]
    fn syntax_errors_are_located() {
        let errs = Config::parse(&file("tenure.toml", "[[systems]]\nid = \n"), &[])
            .unwrap_err()
            .0;
        assert_eq!(errs[0].line, 2, "{errs:?}");
        let errs = Config::parse(&file("tenure.toml", "[engine]\nmax_atempts = 3\n"), &[])
            .unwrap_err()
            .0;
        assert_eq!(errs[0].line, 2);
        assert!(
            errs[0].message.contains("max_atempts"),
            "{}",
            errs[0].message
        );
    }
}
