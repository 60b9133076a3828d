//! What the API answers with, as types: each handler returns one of these (or a type of the
//! engine or store), and the OpenAPI document's schemas are derived from the same types.

use serde::Serialize;
use tenure_core::{AccountState, Engagement, GrantSource, GrantState, Person};
use utoipa::ToSchema;

/// `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ServiceHealth {
    /// `ok`, or `unavailable` when the database does not answer.
    pub(crate) status: HealthState,
    /// `unreachable` when the database does not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub(crate) database: Option<DatabaseState>,
}

/// Whether the server can serve.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum HealthState {
    /// The database answers.
    Ok,
    /// The database does not answer.
    Unavailable,
}

/// What is wrong with the database.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum DatabaseState {
    /// It does not answer.
    Unreachable,
}

/// An event stored: its id and the run it started.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({ "event_id": "019ab4a6-5c1e-7d2b-9f3a-2c4d5e6f7a8b", "run_id": "019ab4a6-5c1e-7d2b-9f3a-3d4e5f6a7b8c" }))]
pub(crate) struct Accepted {
    /// tenure's id for the event.
    pub(crate) event_id: String,
    /// The run that carries it out.
    pub(crate) run_id: String,
}

/// A page of people in id order.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PeoplePage {
    /// The people.
    pub(crate) items: Vec<Person>,
    /// Pass as `after` for the next page; null on the last page.
    pub(crate) next_after: Option<String>,
}

/// A person with their accounts, grants and engagements.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PersonDetail {
    /// The person.
    #[serde(flatten)]
    pub(crate) person: Person,
    /// Their accounts, by system.
    pub(crate) accounts: Vec<AccountView>,
    /// What they hold or are meant to hold.
    pub(crate) grants: Vec<GrantView>,
    /// Their client engagements, ended ones too.
    pub(crate) engagements: Vec<Engagement>,
    /// When they were forgotten (RFC 3339): their personal data is gone, name and email are
    /// empty. Absent until then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) forgotten_at: Option<String>,
}

/// What forgetting a person erased.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ForgottenView {
    /// The person's HR id, all that is left of them.
    pub(crate) person: String,
    /// Whether the key their personal data was sealed with was deleted (false for a record
    /// stored in clear, which is overwritten instead).
    pub(crate) key_deleted: bool,
    /// How many of their events' payloads were dropped.
    pub(crate) event_payloads_dropped: u64,
}

/// A person's account on one system.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AccountView {
    /// The system.
    pub(crate) system: String,
    /// Where the account stands.
    pub(crate) state: AccountState,
}

/// A grant of an entitlement to a person.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct GrantView {
    /// The entitlement.
    pub(crate) entitlement: String,
    /// Its system.
    pub(crate) system: String,
    /// Why the person holds it.
    pub(crate) source: GrantSource,
    /// The template, engagement or request behind it.
    pub(crate) source_ref: String,
    /// Where it stands.
    pub(crate) state: GrantState,
    /// When it was granted (RFC 3339).
    pub(crate) granted_at: Option<String>,
    /// When it ends on its own (RFC 3339).
    pub(crate) expires_at: Option<String>,
}

/// A page of runs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RunPage {
    /// The runs.
    pub(crate) items: Vec<crate::views::Run>,
    /// Pass as `before` for the next page; null on the last page.
    pub(crate) next_before: Option<String>,
}

/// The entitlement catalog.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EntitlementList {
    /// Every entitlement, in id order.
    pub(crate) items: Vec<tenure_core::Entitlement>,
}

/// The target systems.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SystemList {
    /// Every configured system.
    pub(crate) items: Vec<crate::views::System>,
}

/// A page of the audit trail, oldest first (or newest first, as asked).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditPage {
    /// The entries.
    pub(crate) items: Vec<crate::views::AuditEntry>,
    /// Pass as `after` for the next page (in chain order); null on the last page.
    pub(crate) next_after: Option<i64>,
    /// Pass as `before` for the next page (newest first); null on the last page, and in
    /// chain order.
    pub(crate) next_before: Option<i64>,
}

/// How the server's check of the audit chain stands (`GET /api/v1/audit/verification`).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ChainVerification {
    /// `checking` (not yet through to the head: what was verified so far is intact), `intact`
    /// (verified through the head as last read) or `broken`.
    pub(crate) state: tenure_core::audit::ChainState,
    /// The last entry verified, following the chain's end (0 before the first).
    pub(crate) verified_through: i64,
    /// The chain's head (its last entry's sequence number) when last read.
    pub(crate) head: i64,
    /// When the server last checked; null before its first check.
    pub(crate) checked_at: Option<String>,
    /// What is broken, when broken.
    pub(crate) problem: Option<String>,
}

impl From<tenure_core::audit::ChainReport> for ChainVerification {
    fn from(r: tenure_core::audit::ChainReport) -> Self {
        ChainVerification {
            state: r.state,
            verified_through: r.verified_through,
            head: r.head,
            checked_at: r.checked_at_ms.map(crate::views::time),
            problem: r.problem,
        }
    }
}

/// The API tokens (their hashes are never shown).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TokenList {
    /// Every token, revoked ones too.
    pub(crate) items: Vec<crate::views::Token>,
}

/// A token just created, with its secret (shown this once).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CreatedToken {
    /// Token id.
    pub(crate) id: String,
    /// Who or what holds it.
    pub(crate) name: String,
    /// Its scopes, space-separated.
    pub(crate) scopes: String,
    /// The person it acts as.
    pub(crate) person_id: Option<String>,
    /// The secret to send as `Authorization: Bearer <token>`: `tnr_` and 64 hex digits.
    pub(crate) token: String,
}

/// A what-if's answer, and how long it took.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WhatIfAnswer {
    /// What would change.
    #[serde(flatten)]
    pub(crate) what_if: tenure_engine::WhatIf,
    /// How long the what-if took (ms).
    pub(crate) elapsed_ms: u64,
}

/// A group membership what-if's answer, and how long it took.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct GroupWhatIfAnswer {
    /// What the change would do.
    #[serde(flatten)]
    pub(crate) what_if: tenure_engine::GroupWhatIf,
    /// How long the what-if took (ms).
    pub(crate) elapsed_ms: u64,
}

/// A page of access requests, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RequestPage {
    /// The requests.
    pub(crate) items: Vec<crate::views::Request>,
    /// Pass as `before` for the next page; null on the last page.
    pub(crate) next_before: Option<String>,
}

/// A page of approvals, in id order.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ApprovalPage {
    /// The approvals.
    pub(crate) items: Vec<crate::views::Approval>,
    /// Pass as `after` for the next page; null on the last page.
    pub(crate) next_after: Option<String>,
}

/// A page of delegations, in id order.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DelegationPage {
    /// The delegations.
    pub(crate) items: Vec<crate::views::Delegation>,
    /// Pass as `after` for the next page; null on the last page.
    pub(crate) next_after: Option<String>,
}

/// Tasks, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TaskList {
    /// The tasks.
    pub(crate) tasks: Vec<crate::views::Task>,
}

/// What became of an HR system's change notice.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HrAccepted {
    /// The changes stored as events.
    pub(crate) events: Vec<HrEvent>,
    /// The changes the mapping skips, and why.
    pub(crate) skipped: Vec<HrSkipped>,
}

/// One change of a notice, stored as an event.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HrEvent {
    /// Its position in the notice (from 0).
    pub(crate) index: usize,
    /// tenure's id for the event.
    pub(crate) event_id: String,
    /// The run that carries it out.
    pub(crate) run_id: String,
    /// Whether the event was stored before (the same change sent again).
    pub(crate) replayed: bool,
}

/// One change of a notice the mapping skips.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HrSkipped {
    /// Its position in the notice (from 0).
    pub(crate) index: usize,
    /// Why it was skipped.
    pub(crate) reason: String,
}
