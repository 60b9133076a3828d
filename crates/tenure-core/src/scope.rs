//! What a token, or a person signed in to the console, may do.

use std::fmt;
use std::str::FromStr;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Send lifecycle events.
    EventsWrite,
    /// Read people, runs, systems, entitlements, audit, metrics.
    Read,
    /// Decide approvals (as the person the token acts as).
    Approve,
    /// Ask for access (for the token's person, or as their manager for a report).
    Request,
    /// Ask for emergency access that skips approval.
    BreakGlass,
    /// Complete or fail tasks (manual steps, webhook completion callbacks).
    TasksWrite,
    /// Everything, including tokens and cancelling or retrying runs.
    Admin,
    /// Provision users over SCIM 2.0 (`/scim/v2`), as an identity provider does.
    Scim,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 8] = [
        Scope::EventsWrite,
        Scope::Read,
        Scope::Approve,
        Scope::Request,
        Scope::BreakGlass,
        Scope::TasksWrite,
        Scope::Admin,
        Scope::Scim,
    ];

    /// The scope's name in tokens and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::EventsWrite => "events:write",
            Scope::Read => "read",
            Scope::Approve => "approve",
            Scope::Request => "request",
            Scope::BreakGlass => "break_glass",
            Scope::TasksWrite => "tasks:write",
            Scope::Admin => "admin",
            Scope::Scim => "scim",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown scope `{s}`; scopes are {}",
                    Scope::ALL.map(Scope::as_str).join(", ")
                )
            })
    }
}

impl utoipa::PartialSchema for Scope {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(Scope::ALL.map(Scope::as_str)))
            .description(Some("What a token may do; `admin` implies every scope."))
            .into()
    }
}

impl utoipa::ToSchema for Scope {}
