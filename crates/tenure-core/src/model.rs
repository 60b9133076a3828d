//! The canonical model: people, clients, engagements, systems, entitlements, accounts, grants.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// Declares a closed, snake_case string enum with `as_str`, `FromStr` and `Display`.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ::serde::Serialize, ::serde::Deserialize, ::utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stable text form stored in the database and used in JSON.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::model::UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::model::UnknownValue {
                        kind: stringify!($name),
                        value: s.to_string(),
                        expected: &[$($text),+],
                    }),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use string_enum;

/// A text value that names no variant of a closed enum.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{value}`, expected one of: {}", expected.join(", "))]
pub struct UnknownValue {
    /// The enum's name.
    pub kind: &'static str,
    /// The text that was given.
    pub value: String,
    /// The accepted texts.
    pub expected: &'static [&'static str],
}

string_enum!(
    /// What kind of worker a person is.
    WorkerType { Employee => "employee", Contractor => "contractor", Partner => "partner" }
);

string_enum!(
    /// Where a person stands in their lifecycle.
    PersonStatus {
        /// Hired, start date still ahead.
        PreHire => "pre_hire",
        /// Working.
        Active => "active",
        /// Leave announced, end date ahead.
        Leaving => "leaving",
        /// Gone: holds no access.
        Terminated => "terminated",
    }
);

impl PersonStatus {
    /// Whether someone in this status acts in tenure (asks for access, decides approvals,
    /// uses a token that acts as them): working now, a leave announced included. Not before
    /// the start date, nor after leaving.
    pub fn is_working(self) -> bool {
        matches!(self, PersonStatus::Active | PersonStatus::Leaving)
    }
}

string_enum!(
    /// How risky an entitlement is to hold.
    Risk { Low => "low", Medium => "medium", High => "high", Privileged => "privileged" }
);

string_enum!(
    /// Why a person holds a grant.
    GrantSource {
        /// From a role template matching the person's attributes.
        Birthright => "birthright",
        /// From a role template matching an active client engagement.
        Engagement => "engagement",
        /// From an access request.
        Request => "request",
        /// Found on the system by reconciliation, not given by tenure: held until a run
        /// judges it (revoked unless something else wants it).
        Discovered => "discovered",
    }
);

string_enum!(
    /// The state of a grant (person x entitlement).
    GrantState {
        Pending => "pending",
        AwaitingApproval => "awaiting_approval",
        Granted => "granted",
        Revoked => "revoked",
        Denied => "denied",
        Failed => "failed",
        /// Its grant or revoke failed for good after a call that went unanswered: the system
        /// may or may not hold it. Granted again if still wanted, revoked when not (both are
        /// answered "already so" where there is nothing to do).
        Uncertain => "uncertain",
    }
);

string_enum!(
    /// The state of an account (person x system).
    AccountState {
        Pending => "pending",
        Active => "active",
        Disabled => "disabled",
        Deleted => "deleted",
        /// A step on it (create, enable, disable, delete) failed for good after a call that
        /// went unanswered, or a leave took back such a step mid-call: it may or may not exist
        /// and sign in. Created then enabled if still wanted, disabled (and deleted) when not.
        Uncertain => "uncertain",
    }
);

string_enum!(
    /// What happens to an account on a target system once its owner no longer needs it.
    Retention {
        /// Disable, revoke, then delete the account.
        Delete => "delete",
        /// Disable and revoke, but keep the disabled account (for legal hold or audit).
        Keep => "keep",
    }
);

/// A person, keyed by the id their HR system gives them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Person {
    /// The HR system's id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Work email address.
    pub email: String,
    /// Employee, contractor or partner.
    pub worker_type: WorkerType,
    /// Department, matched by role templates.
    pub department: Option<String>,
    /// Job title, matched by role templates.
    pub title: Option<String>,
    /// Location (office or country), matched by role templates.
    pub location: Option<String>,
    /// The HR id of the person's manager.
    pub manager: Option<String>,
    /// First working day.
    pub start_date: Option<NaiveDate>,
    /// Last working day (contract end for contractors).
    pub end_date: Option<NaiveDate>,
    /// Lifecycle status.
    pub status: PersonStatus,
    /// Facts policy reads, as the HR system sends them (`nda_signed`, `trainings`, ...);
    /// declared with their types in `[person_attributes]`.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

impl Person {
    /// An active employee known by id, name and email alone; set the rest as needed.
    pub fn new(id: impl Into<String>, name: impl Into<String>, email: impl Into<String>) -> Person {
        Person {
            id: id.into(),
            name: name.into(),
            email: email.into(),
            worker_type: WorkerType::Employee,
            department: None,
            title: None,
            location: None,
            manager: None,
            start_date: None,
            end_date: None,
            status: PersonStatus::Active,
            attributes: Default::default(),
        }
    }
}

impl Person {
    /// What is left of a forgotten person: the id, and that they left. Name and email are
    /// empty, every other attribute unknown.
    pub fn forgotten(id: impl Into<String>) -> Person {
        Person {
            status: PersonStatus::Terminated,
            ..Person::new(id, "", "")
        }
    }
}

/// Whether `name` can name a person attribute policy reads: letters, digits and `_`, at most
/// 64, not starting with a digit (a Cedar identifier).
pub fn is_attribute_name(name: &str) -> bool {
    name.len() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A client the company works for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Client {
    /// Stable id, used in client-scoped entitlement ids.
    #[schema(schema_with = crate::wire::id)]
    pub id: String,
    /// Display name.
    #[schema(schema_with = crate::wire::non_blank)]
    pub name: String,
    /// Free-form attributes (NDA required, data region, ...), used by policy.
    #[serde(default)]
    #[schema(schema_with = crate::wire::attributes)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// The contract's maximum access duration: every grant of this client's entitlements ends
    /// this many days after it was given, whatever gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::wire::optional_access_days)]
    pub max_access_days: Option<u32>,
}

/// A person working on a client account in a given role for a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Engagement {
    /// Stable id (given by the staffing system, or derived from person, client and role).
    pub id: String,
    /// Who works on the engagement.
    pub person_id: String,
    /// For which client.
    pub client_id: String,
    /// The engagement role, matched by role templates (e.g. `consultant`, `account-lead`).
    pub role: String,
    /// First day on the engagement.
    pub start_date: Option<NaiveDate>,
    /// Last day on the engagement.
    pub end_date: Option<NaiveDate>,
    /// False once the engagement has ended (by event or end date).
    pub active: bool,
}

impl Engagement {
    /// Whether the engagement gives access on `today`.
    pub fn is_current(&self, today: NaiveDate) -> bool {
        self.active
            && self.start_date.is_none_or(|d| d <= today)
            && self.end_date.is_none_or(|d| d >= today)
    }
}

/// A target system: one configured connector instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct System {
    /// Stable id, e.g. `directory`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Which connector drives it, e.g. `sandbox`.
    pub connector: String,
    /// Delete or keep accounts that are no longer needed.
    pub retention: Retention,
    /// At most this many calls in flight to the system at once.
    pub max_concurrency: u32,
    /// Connector-specific settings.
    #[serde(default)]
    pub settings: serde_json::Map<String, serde_json::Value>,
}

/// Something a person can hold on a system: a group, role, license, ...
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Entitlement {
    /// Stable id, unique across systems, e.g. `crm:acme-read`.
    pub id: String,
    /// The system it lives on.
    pub system: String,
    /// Kind: group, role, license, ...
    pub kind: String,
    /// The name the target system knows it by (defaults to the id).
    pub name: String,
    /// How risky it is to hold.
    pub risk: Risk,
    /// Who answers for it (a person id or team name).
    pub owner: Option<String>,
    /// The client it belongs to, for client-scoped access.
    pub client: Option<String>,
}

/// An account of a person on a system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Account {
    /// Whose account.
    pub person_id: String,
    /// On which system.
    pub system: String,
    /// Pending, active, disabled or deleted.
    pub state: AccountState,
    /// Found on the system by reconciliation and linked, not made by tenure: disabled when no
    /// longer needed, but never deleted unless the system's `reconcile.delete_discovered`
    /// says so.
    #[serde(default)]
    pub discovered: bool,
}

/// A person holding (or meant to hold) an entitlement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Grant {
    /// Who holds it.
    pub person_id: String,
    /// What is held.
    pub entitlement: String,
    /// Why: birthright, engagement or request.
    pub source: GrantSource,
    /// The template, engagement or request id that caused it.
    pub source_ref: String,
    /// Where the grant stands.
    pub state: GrantState,
    /// When it was granted (epoch ms).
    pub granted_at: Option<i64>,
    /// When it expires by itself (epoch ms).
    pub expires_at: Option<i64>,
}

impl Grant {
    /// Whether the grant counts as held when diffing. A `pending` grant is one whose step has
    /// not run: runs of one person go one at a time, so when the next is planned, such a grant
    /// belongs to a run that failed or was cancelled and is planned again.
    pub fn is_held(&self) -> bool {
        matches!(self.state, GrantState::Granted)
    }

    /// Whether the system may hold it: held, or [`GrantState::Uncertain`]. What is taken
    /// away is decided on this, so a grant whose outcome was never heard is revoked too.
    pub fn may_be_held(&self) -> bool {
        matches!(self.state, GrantState::Granted | GrantState::Uncertain)
    }
}

impl Account {
    /// Whether the account exists on the system and can sign in. A `pending` account's create
    /// step has not run (see [`Grant::is_held`]), so it is created again if still needed.
    pub fn is_enabled(&self) -> bool {
        matches!(self.state, AccountState::Active)
    }

    /// Whether the account may exist and sign in: enabled, or [`AccountState::Uncertain`].
    /// A leave disables every such account.
    pub fn may_be_enabled(&self) -> bool {
        matches!(self.state, AccountState::Active | AccountState::Uncertain)
    }
}
