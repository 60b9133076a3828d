//! A small template syntax for connector settings: `{{person.email}}` in a string is replaced
//! by the person's email. Templates are checked when the configuration loads (unknown names are
//! refused there), and rendering cannot fail.
//!
//! Names: `person.` + `id name email worker_type department title location manager
//! start_date end_date status`; `entitlement.` + `id name kind risk client owner` (grant and
//! revoke only); `op.id`, `op.attempt`, `action`, `system`.

use crate::Op;
use tenure_core::planner::Action;
use tenure_core::{Entitlement, Person};

const PERSON: &[&str] = &[
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
];
const ENTITLEMENT: &[&str] = &["id", "name", "kind", "risk", "client", "owner"];

/// What a template is rendered with.
pub struct Context<'a> {
    /// The system's id.
    pub system: &'a str,
    /// The step's action.
    pub action: Action,
    /// The call.
    pub op: &'a Op,
    /// Whose access.
    pub person: &'a Person,
    /// The entitlement (grant and revoke).
    pub entitlement: Option<&'a Entitlement>,
}

impl Context<'_> {
    /// The value of a name; `None` for an absent optional field.
    pub fn lookup(&self, name: &str) -> Option<String> {
        let p = self.person;
        let date = |d: &Option<chrono::NaiveDate>| d.map(|d| d.to_string());
        match name {
            "person.id" => Some(p.id.clone()),
            "person.name" => Some(p.name.clone()),
            "person.email" => Some(p.email.clone()),
            "person.worker_type" => Some(p.worker_type.to_string()),
            "person.department" => p.department.clone(),
            "person.title" => p.title.clone(),
            "person.location" => p.location.clone(),
            "person.manager" => p.manager.clone(),
            "person.start_date" => date(&p.start_date),
            "person.end_date" => date(&p.end_date),
            "person.status" => Some(p.status.to_string()),
            "op.id" => Some(self.op.id.clone()),
            "op.attempt" => Some(self.op.attempt.to_string()),
            "action" => Some(self.action.to_string()),
            "system" => Some(self.system.to_string()),
            _ => {
                let e = self.entitlement?;
                match name {
                    "entitlement.id" => Some(e.id.clone()),
                    "entitlement.name" => Some(e.name.clone()),
                    "entitlement.kind" => Some(e.kind.clone()),
                    "entitlement.risk" => Some(e.risk.to_string()),
                    "entitlement.client" => e.client.clone(),
                    "entitlement.owner" => e.owner.clone(),
                    _ => None,
                }
            }
        }
    }
}

/// The pieces of a template: literal text and names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Name(&'a str),
}

fn pieces(t: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = t;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            out.push(Piece::Text(&rest[..start]));
        }
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("`{{{{` without `}}}}` in `{t}`"))?;
        out.push(Piece::Name(after[..end].trim()));
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    Ok(out)
}

/// Checks a template: every name known, entitlement names only where `with_entitlement`.
pub fn check(t: &str, with_entitlement: bool) -> Result<(), String> {
    for p in pieces(t)? {
        if let Piece::Name(n) = p {
            let ok = match n.split_once('.') {
                Some(("person", f)) => PERSON.contains(&f),
                Some(("entitlement", f)) if ENTITLEMENT.contains(&f) => {
                    if !with_entitlement {
                        return Err(format!(
                            "`{{{{{n}}}}}` is only available for grant and revoke"
                        ));
                    }
                    true
                }
                Some(("op", "id" | "attempt")) => true,
                None => matches!(n, "action" | "system"),
                _ => false,
            };
            if !ok {
                return Err(format!("unknown template name `{{{{{n}}}}}`"));
            }
        }
    }
    Ok(())
}

/// Renders a checked template; `escape` is applied to every substituted value (not to the
/// literal text), e.g. percent-encoding for URLs. Absent optional fields render empty.
pub fn render(t: &str, ctx: &Context<'_>, escape: impl Fn(&str) -> String) -> String {
    let Ok(ps) = pieces(t) else {
        return t.to_string();
    };
    let mut out = String::with_capacity(t.len());
    for p in ps {
        match p {
            Piece::Text(s) => out.push_str(s),
            Piece::Name(n) => out.push_str(&escape(&ctx.lookup(n).unwrap_or_default())),
        }
    }
    out
}

/// Renders every string in a JSON value. A string that is exactly one name becomes that value,
/// or `null` when the field is absent.
pub fn render_json(v: &serde_json::Value, ctx: &Context<'_>) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(s) => match pieces(s).as_deref() {
            Ok([Piece::Name(n)]) => ctx.lookup(n).map_or(Value::Null, Value::String),
            _ => Value::String(render(s, ctx, str::to_string)),
        },
        Value::Array(a) => Value::Array(a.iter().map(|x| render_json(x, ctx)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), render_json(x, ctx)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Checks every string in a JSON value.
pub fn check_json(v: &serde_json::Value, with_entitlement: bool) -> Result<(), String> {
    use serde_json::Value;
    match v {
        Value::String(s) => check(s, with_entitlement),
        Value::Array(a) => a.iter().try_for_each(|x| check_json(x, with_entitlement)),
        Value::Object(o) => o.values().try_for_each(|x| check_json(x, with_entitlement)),
        _ => Ok(()),
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters, so a value can never add
/// a path segment, a query parameter or change the host.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tenure_core::{PersonStatus, Risk, WorkerType};

    fn person() -> Person {
        Person {
            id: "p/1?x=../".into(),
            name: "Ada \"L\"".into(),
            email: "ada@example.com".into(),
            worker_type: WorkerType::Employee,
            department: None,
            title: Some("Eng".into()),
            location: None,
            manager: None,
            start_date: None,
            end_date: None,
            status: PersonStatus::Active,
            attributes: Default::default(),
        }
    }

    #[test]
    fn checks_names() {
        assert!(check("{{ person.email }} {{op.id}}", false).is_ok());
        assert!(
            check("{{person.salary}}", false)
                .unwrap_err()
                .contains("unknown")
        );
        assert!(
            check("{{entitlement.name}}", false)
                .unwrap_err()
                .contains("grant")
        );
        assert!(check("{{entitlement.name}}", true).is_ok());
        assert!(check("{{person.id", false).is_err());
    }

    #[test]
    fn renders_values_and_escapes_only_values() {
        let p = person();
        let op = Op {
            id: "op_1".into(),
            attempt: 2,
            priority: tenure_core::run::Priority::Normal,
        };
        let e = Entitlement {
            id: "t:g".into(),
            system: "t".into(),
            kind: "group".into(),
            name: "admins".into(),
            risk: Risk::High,
            owner: None,
            client: None,
        };
        let ctx = Context {
            system: "t",
            action: Action::Grant,
            op: &op,
            person: &p,
            entitlement: Some(&e),
        };
        assert_eq!(
            render(
                "https://h/u/{{person.id}}/g?x={{entitlement.name}}",
                &ctx,
                percent_encode
            ),
            "https://h/u/p%2F1%3Fx%3D..%2F/g?x=admins"
        );
        let body = serde_json::json!({
            "who": "{{person.name}} <{{person.email}}>",
            "dept": "{{person.department}}",
            "n": [1, "{{op.attempt}}"],
        });
        assert_eq!(
            render_json(&body, &ctx),
            serde_json::json!({"who": "Ada \"L\" <ada@example.com>", "dept": null, "n": [1, "2"]})
        );
    }
}
