//! Policy as code for tenure, in [Cedar](https://www.cedarpolicy.com/).
//!
//! Pure: the caller reads the files; this crate parses, validates and decides.
//!
//! - **Schema.** Generated from tenure's model and the configuration (see [`schema_text`]):
//!   entity types `Person` (worker_type, department, title, location, status), `Client` (name,
//!   plus the attributes given in `[clients.attributes]`, typed from their values and all
//!   optional) and `Entitlement` (system, kind, risk, owner, client), and one action,
//!   `Action::"grant"`, with context `{ source, source_ref }`.
//! - **Policies.** Every `policies/*.cedar` file beside `tenure.toml`, together one policy set.
//!   A policy's id is its `@id("...")` annotation, else `<file stem>#<index in the file>`
//!   (from 0). Every problem (syntax, unknown attribute, type error, bad annotation, duplicate
//!   id) is reported with file, line and column.
//! - **Decisions.** [`PolicyEngine::authorize`] asks whether a person may be granted an
//!   entitlement. With no policy files at all, everything is allowed (tenure's behaviour
//!   without policy). Once there is a policy file, Cedar's rules apply: a grant is allowed only
//!   if some `permit` matches and no `forbid` does (default deny), so a policy folder starts
//!   with a base `permit`. A policy that fails while evaluating denies the grant (fail closed:
//!   Cedar itself would skip it, which could let a failing `forbid` through).
//! - **Approval.** A `permit` policy annotated `@approval("manager")`, `@approval("owner")` or
//!   `@approval("client_owner")` lets the grant through only once that person approves: when
//!   such a permit is among the policies that allowed the grant (Cedar's
//!   `Response::diagnostics().reason()`), the [`Decision`] lists the [`Approval`] it needs.
//!   `owner` is the entitlement's owner, `manager` the person's manager, `client_owner` the
//!   owner of the entitlement's client (its `owner` attribute). `@approval` on a `forbid` is an
//!   error.

pub mod authorize;
mod locate;
mod schema;

use cedar_policy::{
    Authorizer, Context, Effect, Entities, Entity, EntityId, EntityTypeName, EntityUid, Policy,
    PolicyId, PolicySet, Request, RestrictedExpression, Schema, ValidationMode, Validator,
};
use miette::Diagnostic;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::str::FromStr;
use tenure_core::config::{Config, ConfigError, ConfigErrors, GROUPS_ATTRIBUTE, SourceFile};
use tenure_core::model::{Client, Entitlement, GrantSource, Person};

pub use schema::SchemaWarning;
use schema::Ty;

/// Who must approve a grant that a policy lets through on approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Approver {
    /// The person's manager.
    Manager,
    /// The entitlement's owner.
    Owner,
    /// The owner of the entitlement's client.
    ClientOwner,
}

impl Approver {
    /// Every approver, as written in `@approval("...")`.
    pub const ALL: [Approver; 3] = [Approver::Manager, Approver::Owner, Approver::ClientOwner];

    /// The text used in `@approval("...")`.
    pub fn as_str(self) -> &'static str {
        match self {
            Approver::Manager => "manager",
            Approver::Owner => "owner",
            Approver::ClientOwner => "client_owner",
        }
    }
}

impl FromStr for Approver {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Approver::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown approver `{s}` in @approval; expected manager, owner or client_owner"
                )
            })
    }
}

impl std::fmt::Display for Approver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An approval a grant needs before it is carried out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approval {
    /// Who must approve.
    pub approver: Approver,
    /// The `permit` policy that asks for it.
    pub policy: String,
}

/// The answer to "may this person be granted this entitlement?".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Whether the grant may go ahead (possibly after approval, see `approvals`).
    pub allowed: bool,
    /// The ids of the policies that decided: the permits that matched when allowed, the
    /// forbids that matched when denied (empty when denied because no permit matched).
    pub reasons: Vec<String>,
    /// Evaluation errors; any error denies the grant.
    pub errors: Vec<String>,
    /// Approvals required before the grant is carried out (only when allowed).
    pub approvals: Vec<Approval>,
}

impl Decision {
    /// Whether the grant must wait for an approval.
    pub fn needs_approval(&self) -> bool {
        self.allowed && !self.approvals.is_empty()
    }

    /// One line for people: why the grant was denied or what it waits for.
    pub fn explain(&self) -> String {
        if !self.errors.is_empty() {
            format!("policy evaluation failed: {}", self.errors.join("; "))
        } else if !self.allowed && self.reasons.is_empty() {
            "no permit policy applies".into()
        } else if !self.allowed {
            format!("forbidden by {}", self.reasons.join(", "))
        } else if self.approvals.is_empty() {
            format!("permitted by {}", self.reasons.join(", "))
        } else {
            let who: Vec<_> = self
                .approvals
                .iter()
                .map(|a| format!("{} (policy {})", a.approver, a.policy))
                .collect();
            format!("needs approval by {}", who.join(", "))
        }
    }
}

/// What a grant is asked for: where the want comes from.
#[derive(Debug, Clone, Copy)]
pub struct GrantContext<'a> {
    /// Birthright, engagement or request.
    pub source: GrantSource,
    /// The template, engagement or request id.
    pub source_ref: &'a str,
}

/// A validated policy set with its schema, ready to decide.
pub struct PolicyEngine {
    enforcing: bool,
    schema: Option<Schema>,
    schema_text: String,
    policies: PolicySet,
    ids: Vec<String>,
    client_attributes: BTreeMap<String, Ty>,
    person_attributes: BTreeMap<String, Ty>,
    authorizer: Authorizer,
    action: EntityUid,
    person_type: EntityTypeName,
    client_type: EntityTypeName,
    entitlement_type: EntityTypeName,
    /// The policy files' paths and texts, and the schema: equal sources, equal decisions.
    sources: String,
    /// Decisions already made, by what they depend on, when no policy can tell two people
    /// with the same facts apart (see [`memo_safe`]); `None` otherwise.
    memo: Option<std::sync::Mutex<HashMap<String, Decision>>>,
}

/// Decisions remembered at most (a what-if over everyone asks the same questions many times;
/// a long-running server should not grow without bound).
const MEMO_CAP: usize = 100_000;

/// Whether a decision depends on a person only through their facts: no policy names a person
/// (`principal == Person::"..."`, `principal in ...`, a `Person::` literal) or reads the grant's
/// `source_ref` (an engagement or request id, different for everyone).
fn memo_safe(policies: &PolicySet) -> bool {
    use cedar_policy::PrincipalConstraint;
    policies.policies().all(|p| {
        let text = p.to_string();
        matches!(
            p.principal_constraint(),
            PrincipalConstraint::Any | PrincipalConstraint::Is(_)
        ) && !text.contains("Person::")
            && !text.contains("source_ref")
    })
}

impl std::fmt::Debug for PolicyEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyEngine")
            .field("enforcing", &self.enforcing)
            .field("policies", &self.ids)
            .finish_non_exhaustive()
    }
}

/// A loaded policy engine and what is worth a look but does not stop it.
#[derive(Debug)]
pub struct Loaded {
    /// The engine.
    pub engine: PolicyEngine,
    /// Located warnings: client attributes policy cannot see, policies that never apply, ...
    pub warnings: Vec<ConfigError>,
}

/// The Cedar schema generated for `config`, as text.
pub fn schema_text(config: &Config) -> String {
    schema::generate(config).text
}

fn type_name(name: &str) -> EntityTypeName {
    EntityTypeName::from_str(name).expect("a valid entity type name")
}

impl PolicyEngine {
    /// The engine used when there are no policy files: allows every grant.
    pub fn allow_all() -> PolicyEngine {
        PolicyEngine {
            enforcing: false,
            schema: None,
            schema_text: String::new(),
            policies: PolicySet::new(),
            ids: Vec::new(),
            client_attributes: BTreeMap::new(),
            person_attributes: BTreeMap::new(),
            authorizer: Authorizer::new(),
            action: EntityUid::from_type_name_and_id(type_name("Action"), EntityId::new("grant")),
            person_type: type_name("Person"),
            client_type: type_name("Client"),
            entitlement_type: type_name("Entitlement"),
            sources: String::new(),
            memo: None,
        }
    }

    /// Builds the schema from `config`, parses every policy file and validates the whole.
    /// `main` (the `tenure.toml` text) only serves to locate warnings about client attributes
    /// that policy cannot see (reported only when there are policy files). With no files at all,
    /// the result allows everything.
    pub fn load(
        config: &Config,
        main: Option<&SourceFile>,
        files: &[SourceFile],
    ) -> Result<Loaded, ConfigErrors> {
        let generated = schema::generate(config);
        // Attributes policy cannot see only matter once there is policy.
        let mut warnings: Vec<ConfigError> = generated
            .warnings
            .iter()
            .filter(|_| !files.is_empty())
            .map(|w| {
                let (file, line, column) = match main {
                    Some(m) => {
                        let (l, c) = locate::client_attribute(&m.text, &w.client, &w.attribute);
                        (m.path.clone(), l, c)
                    }
                    None => ("tenure.toml".to_string(), 1, 1),
                };
                ConfigError {
                    file,
                    line,
                    column,
                    message: format!(
                        "client attribute `{}` is not visible to policy: {}",
                        w.attribute, w.message
                    ),
                }
            })
            .collect();
        let (schema, _) = Schema::from_cedarschema_str(&generated.text).map_err(|e| {
            // The schema is generated: a failure here is a bug in tenure, not in the config.
            ConfigErrors(vec![ConfigError {
                file: "<generated schema>".into(),
                line: 1,
                column: 1,
                message: format!("internal error: the generated schema is invalid: {e}"),
            }])
        })?;

        let mut errors = Vec::new();
        let mut combined = PolicySet::new();
        let mut ids = Vec::new();
        // Policy id -> index of its file, to locate validation errors.
        let mut origin: HashMap<String, usize> = HashMap::new();
        for (fi, file) in files.iter().enumerate() {
            let err = |offset: usize, message: String| locate::error(file, offset, message);
            let set = match PolicySet::from_str(&file.text) {
                Ok(s) => s,
                Err(parse) => {
                    for e in parse.iter() {
                        errors.push(err(first_offset(e), e.to_string()));
                    }
                    continue;
                }
            };
            let annotations = locate::annotations(&file.text);
            let at = |key: &str, value: &str| {
                annotations
                    .iter()
                    .find(|a| a.key == key && a.value == value)
                    .map_or(0, |a| a.offset)
            };
            if set.templates().next().is_some() {
                let offset = file
                    .text
                    .find("?principal")
                    .or_else(|| file.text.find("?resource"));
                errors.push(err(
                    offset.unwrap_or(0),
                    "policy templates (with ?principal or ?resource) are not supported; write static policies".into(),
                ));
            }
            let stem = file_stem(&file.path);
            let mut policies: Vec<&Policy> = set.policies().collect();
            // `PolicySet::from_str` names them policy0, policy1, ... in file order.
            policies.sort_by_key(|p| {
                p.id()
                    .to_string()
                    .trim_start_matches("policy")
                    .parse::<usize>()
                    .unwrap_or(usize::MAX)
            });
            for (i, p) in policies.into_iter().enumerate() {
                let (id, offset) = match p.annotation("id") {
                    Some(id) => (id.to_string(), at("id", id)),
                    None => (format!("{stem}#{i}"), 0),
                };
                if id.trim().is_empty() {
                    errors.push(err(offset, "@id(\"\") must name the policy".into()));
                    continue;
                }
                if let Some(&other) = origin.get(&id) {
                    errors.push(err(
                        offset,
                        format!(
                            "policy id `{id}` is used twice (also in {})",
                            files[other].path
                        ),
                    ));
                    continue;
                }
                if let Some(a) = p.annotation("approval") {
                    let offset = at("approval", a);
                    if let Err(e) = Approver::from_str(a) {
                        errors.push(err(offset, e));
                    } else if p.effect() == Effect::Forbid {
                        errors.push(err(
                            offset,
                            format!("policy `{id}`: @approval only applies to permit policies"),
                        ));
                    }
                }
                origin.insert(id.clone(), fi);
                if let Err(e) = combined.add(p.new_id(PolicyId::new(&id))) {
                    errors.push(err(offset, e.to_string()));
                }
                ids.push(id);
            }
        }

        let validation = Validator::new(schema.clone()).validate(&combined, ValidationMode::Strict);
        let place =
            |id: &PolicyId, d: &dyn Diagnostic, message: String| match origin
                .get(AsRef::<str>::as_ref(id))
            {
                Some(&fi) => locate::error(&files[fi], first_offset(d), message),
                None => ConfigError {
                    file: "<policies>".into(),
                    line: 1,
                    column: 1,
                    message,
                },
            };
        for e in validation.validation_errors() {
            errors.push(place(e.policy_id(), e, with_help(e)));
        }
        for w in validation.validation_warnings() {
            warnings.push(place(w.policy_id(), w, with_help(w)));
        }
        if !files.is_empty() && !combined.policies().any(|p| p.effect() == Effect::Permit) {
            warnings.push(ConfigError {
                file: files[0].path.clone(),
                line: 1,
                column: 1,
                message: "no permit policy: every grant is denied (policy files turn on Cedar's default deny; add a base permit)".into(),
            });
        }
        if !errors.is_empty() {
            errors.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
            return Err(ConfigErrors(errors));
        }
        let memo = memo_safe(&combined);
        let sources: String = files
            .iter()
            .flat_map(|f| [f.path.as_str(), "\0", f.text.as_str(), "\0"])
            .chain([generated.text.as_str()])
            .collect();
        Ok(Loaded {
            engine: PolicyEngine {
                enforcing: !files.is_empty(),
                schema: Some(schema),
                schema_text: generated.text,
                policies: combined,
                ids,
                client_attributes: generated.client_attributes,
                person_attributes: generated.person_attributes,
                sources,
                memo: memo.then(|| std::sync::Mutex::new(HashMap::new())),
                ..PolicyEngine::allow_all()
            },
            warnings,
        })
    }

    /// Whether `other` decides every question as this engine does: the same policy files and
    /// the same schema. A change of policy makes access already held worth judging again.
    pub fn decides_as(&self, other: &PolicyEngine) -> bool {
        self.enforcing == other.enforcing && self.sources == other.sources
    }

    /// Whether policies decide (false: no policy files, everything is allowed).
    pub fn is_enforcing(&self) -> bool {
        self.enforcing
    }

    /// The policy ids, in file order.
    pub fn policy_ids(&self) -> &[String] {
        &self.ids
    }

    /// The schema the policies were validated against (empty for [`PolicyEngine::allow_all`]).
    pub fn schema_text(&self) -> &str {
        &self.schema_text
    }

    /// Decides whether `person` may be granted `entitlement`. `client` is the entitlement's
    /// client, when it is client-scoped and known (an unknown one is seen without attributes).
    pub fn authorize(
        &self,
        person: &Person,
        entitlement: &Entitlement,
        client: Option<&Client>,
        context: GrantContext<'_>,
    ) -> Decision {
        if !self.enforcing {
            return Decision {
                allowed: true,
                ..Decision::default()
            };
        }
        let Some(memo) = &self.memo else {
            return self.decide_or_deny(person, entitlement, client, context);
        };
        let key = self.memo_key(person, entitlement, client, context);
        if let Some(d) = memo.lock().expect("memo lock").get(&key) {
            return d.clone();
        }
        let d = self.decide_or_deny(person, entitlement, client, context);
        // An error may name the person: only clean decisions are shared.
        if d.errors.is_empty() {
            let mut memo = memo.lock().expect("memo lock");
            if memo.len() >= MEMO_CAP {
                memo.clear();
            }
            memo.insert(key, d.clone());
        }
        d
    }

    /// [`PolicyEngine::authorize`] without the memo: Cedar evaluates every time (what one
    /// decision costs, for benchmarks).
    pub fn authorize_fresh(
        &self,
        person: &Person,
        entitlement: &Entitlement,
        client: Option<&Client>,
        context: GrantContext<'_>,
    ) -> Decision {
        if !self.enforcing {
            return self.authorize(person, entitlement, client, context);
        }
        self.decide_or_deny(person, entitlement, client, context)
    }

    fn decide_or_deny(
        &self,
        person: &Person,
        entitlement: &Entitlement,
        client: Option<&Client>,
        context: GrantContext<'_>,
    ) -> Decision {
        match self.decide(person, entitlement, client, context) {
            Ok(d) => d,
            Err(e) => Decision {
                allowed: false,
                errors: vec![e],
                ..Decision::default()
            },
        }
    }

    /// Everything a memo-safe decision reads, as text: the person's facts (not their id), the
    /// entitlement, its client as known, and the grant's source.
    fn memo_key(
        &self,
        person: &Person,
        entitlement: &Entitlement,
        client: Option<&Client>,
        context: GrantContext<'_>,
    ) -> String {
        let typed = |attrs: &serde_json::Map<String, Value>, types: &BTreeMap<String, Ty>| {
            types
                .keys()
                .map(|k| attrs.get(k).cloned().unwrap_or(Value::Null))
                .collect::<Vec<_>>()
        };
        serde_json::json!([
            person.worker_type.as_str(),
            person.status.as_str(),
            person.department,
            person.title,
            person.location,
            person.attributes.get(GROUPS_ATTRIBUTE),
            typed(&person.attributes, &self.person_attributes),
            entitlement,
            client.map(|c| (
                &c.id,
                &c.name,
                typed(&c.attributes, &self.client_attributes)
            )),
            context.source.as_str(),
        ])
        .to_string()
    }

    fn uid(&self, ty: &EntityTypeName, id: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id))
    }

    fn decide(
        &self,
        person: &Person,
        entitlement: &Entitlement,
        client: Option<&Client>,
        context: GrantContext<'_>,
    ) -> Result<Decision, String> {
        let s = |v: &str| RestrictedExpression::new_string(v.to_string());
        let mut entities = Vec::with_capacity(3);

        let person_uid = self.uid(&self.person_type, &person.id);
        let mut attrs = HashMap::from([
            ("worker_type".to_string(), s(person.worker_type.as_str())),
            ("status".to_string(), s(person.status.as_str())),
        ]);
        for (k, v) in [
            ("department", &person.department),
            ("title", &person.title),
            ("location", &person.location),
        ] {
            if let Some(v) = v {
                attrs.insert(k.to_string(), s(v));
            }
        }
        let groups = person
            .attributes
            .get(GROUPS_ATTRIBUTE)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(s)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        attrs.insert(
            GROUPS_ATTRIBUTE.to_string(),
            RestrictedExpression::new_set(groups),
        );
        // A value of another type than declared is left out: to policy it is absent, so a rule
        // that needs it (`principal has nda_signed && ...`) does not pass on a malformed fact.
        for (k, t) in &self.person_attributes {
            if let Some(e) = person.attributes.get(k).and_then(|v| value_expr(v, t)) {
                attrs.insert(k.clone(), e);
            }
        }
        entities.push(
            Entity::new(person_uid.clone(), attrs, HashSet::new())
                .map_err(|e| format!("person `{}`: {e}", person.id))?,
        );

        let ent_uid = self.uid(&self.entitlement_type, &entitlement.id);
        let mut attrs = HashMap::from([
            ("system".to_string(), s(&entitlement.system)),
            ("kind".to_string(), s(&entitlement.kind)),
            ("risk".to_string(), s(entitlement.risk.as_str())),
        ]);
        if let Some(o) = &entitlement.owner {
            attrs.insert("owner".into(), s(o));
        }
        if let Some(cid) = &entitlement.client {
            let client_uid = self.uid(&self.client_type, cid);
            attrs.insert(
                "client".into(),
                RestrictedExpression::new_entity_uid(client_uid.clone()),
            );
            // Always present, so that a policy reading the client never fails (and is skipped).
            let mut cattrs = HashMap::new();
            let name = client
                .filter(|c| &c.id == cid)
                .map_or(cid.as_str(), |c| &c.name);
            cattrs.insert("name".to_string(), s(name));
            if let Some(c) = client.filter(|c| &c.id == cid) {
                for (k, t) in &self.client_attributes {
                    if let Some(e) = c.attributes.get(k).and_then(|v| value_expr(v, t)) {
                        cattrs.insert(k.clone(), e);
                    }
                }
            }
            entities.push(
                Entity::new(client_uid, cattrs, HashSet::new())
                    .map_err(|e| format!("client `{cid}`: {e}"))?,
            );
        }
        entities.push(
            Entity::new(ent_uid.clone(), attrs, HashSet::new())
                .map_err(|e| format!("entitlement `{}`: {e}", entitlement.id))?,
        );

        let schema = self.schema.as_ref();
        let entities = Entities::from_entities(entities, schema).map_err(|e| e.to_string())?;
        let context = Context::from_pairs([
            ("source".to_string(), s(context.source.as_str())),
            ("source_ref".to_string(), s(context.source_ref)),
        ])
        .map_err(|e| e.to_string())?;
        let request = Request::new(person_uid, self.action.clone(), ent_uid, context, schema)
            .map_err(|e| e.to_string())?;
        let response = self
            .authorizer
            .is_authorized(&request, &self.policies, &entities);
        let mut reasons: Vec<String> = response
            .diagnostics()
            .reason()
            .map(ToString::to_string)
            .collect();
        reasons.sort();
        let errors: Vec<String> = response
            .diagnostics()
            .errors()
            .map(ToString::to_string)
            .collect();
        let allowed = response.decision() == cedar_policy::Decision::Allow && errors.is_empty();
        let mut approvals = Vec::new();
        if allowed {
            let mut seen = BTreeSet::new();
            for id in response.diagnostics().reason() {
                if let Some(a) = self
                    .policies
                    .annotation(id, "approval")
                    .and_then(|a| Approver::from_str(a).ok())
                    && seen.insert(a)
                {
                    approvals.push(Approval {
                        approver: a,
                        policy: id.to_string(),
                    });
                }
            }
            approvals.sort_by_key(|a| a.approver);
        }
        Ok(Decision {
            allowed,
            reasons,
            errors,
            approvals,
        })
    }
}

/// A client attribute's value as Cedar sees it, when it fits the schema's type.
fn value_expr(v: &Value, t: &Ty) -> Option<RestrictedExpression> {
    Some(match (t, v) {
        (Ty::Bool, Value::Bool(b)) => RestrictedExpression::new_bool(*b),
        (Ty::Long, Value::Number(n)) => RestrictedExpression::new_long(n.as_i64()?),
        (Ty::String, Value::String(s)) => RestrictedExpression::new_string(s.clone()),
        (Ty::Set(Some(et)), Value::Array(items)) => RestrictedExpression::new_set(
            items
                .iter()
                .map(|i| value_expr(i, et))
                .collect::<Option<Vec<_>>>()?,
        ),
        (Ty::Record(fields), Value::Object(m)) => {
            let mut out = Vec::new();
            for (k, v) in m {
                // A field the schema does not know would make the entity invalid: leave it out.
                if let Some(ft) = fields.get(k) {
                    out.push((k.clone(), value_expr(v, ft)?));
                }
            }
            RestrictedExpression::new_record(out).ok()?
        }
        _ => return None,
    })
}

fn first_offset(d: &dyn Diagnostic) -> usize {
    d.labels()
        .and_then(|mut l| l.next())
        .map_or(0, |l| l.offset())
}

fn with_help(d: &(impl Diagnostic + std::fmt::Display)) -> String {
    match d.help() {
        Some(h) => format!("{d} ({h})"),
        None => d.to_string(),
    }
}

fn file_stem(path: &str) -> String {
    let name = path.rsplit(['/', '\\']).next().unwrap_or(path);
    name.strip_suffix(".cedar").unwrap_or(name).to_string()
}

#[cfg(test)]
mod tests;
