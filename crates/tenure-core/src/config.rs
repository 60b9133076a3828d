//! Configuration as code: `tenure.toml` (engine settings, systems, clients, entitlements) and a
//! folder of role templates. Parsed from text handed in by the caller, validated as a whole, and
//! every error points at a file, line and column.

use crate::model::{Client, Entitlement, Person, Retention, Risk, System, WorkerType};
use crate::roster::{ColumnMap, Field};
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
}

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
        any(&self.department, &p.department)
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
    engagement_role: Vec<String>,
}

/// Known connector kinds; a system naming another one is refused at load.
pub const CONNECTOR_KINDS: &[&str] = &["sandbox", "scim"];

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
        let client = Client {
            name: c.name.unwrap_or_else(|| id.clone()),
            id: id.clone(),
            attributes,
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
        });
    }
    templates.sort_by(|a, b| a.id.cmp(&b.id));

    let import = validate_import(main, &raw.import, &mut err);

    Config {
        engine: raw.engine,
        systems,
        clients,
        entitlements,
        templates,
        import,
    }
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
