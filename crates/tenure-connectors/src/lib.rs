//! The connector trait tenure drives target systems through, and the built-in connectors.
//!
//! A connector only translates: it turns one step into calls on its system and classifies
//! failures as retryable or permanent. Retries, backoff, circuit breaking, concurrency limits
//! and metrics live once in the engine, around the trait, never inside a connector.
//!
//! Every call carries the step's deterministic operation id, and every connector treats
//! "already done" (the account exists, the member is already in the group, the account is
//! already gone) as success, so a retry after a crash never doubles an effect.

/// Implements [`Connector`] for a connector whose every action goes through one method
/// `$call(&self, op, action, person, entitlement)`, and that cannot list what the system holds
/// (`$kind` names it in the error). Further trait methods (`health`, `stats`) follow in braces.
macro_rules! connector_by_action {
    ($ty:ty, $call:ident, $kind:literal, { $($rest:item)* }) => {
        #[async_trait::async_trait]
        impl $crate::Connector for $ty {
            async fn create_account(&self, op: &$crate::Op, person: &tenure_core::Person) -> Result<(), $crate::ConnectorError> {
                self.$call(op, tenure_core::planner::Action::CreateAccount, person, None).await
            }
            async fn update_account(&self, op: &$crate::Op, person: &tenure_core::Person) -> Result<(), $crate::ConnectorError> {
                self.$call(op, tenure_core::planner::Action::UpdateAccount, person, None).await
            }
            async fn enable_account(&self, op: &$crate::Op, person: &tenure_core::Person) -> Result<(), $crate::ConnectorError> {
                self.$call(op, tenure_core::planner::Action::EnableAccount, person, None).await
            }
            async fn disable_account(&self, op: &$crate::Op, person: &tenure_core::Person) -> Result<(), $crate::ConnectorError> {
                self.$call(op, tenure_core::planner::Action::DisableAccount, person, None).await
            }
            async fn delete_account(&self, op: &$crate::Op, person: &tenure_core::Person) -> Result<(), $crate::ConnectorError> {
                self.$call(op, tenure_core::planner::Action::DeleteAccount, person, None).await
            }
            async fn grant(&self, op: &$crate::Op, person: &tenure_core::Person, entitlement: &tenure_core::Entitlement) -> Result<(), $crate::ConnectorError> {
                self.$call(op, tenure_core::planner::Action::Grant, person, Some(entitlement)).await
            }
            async fn revoke(&self, op: &$crate::Op, person: &tenure_core::Person, entitlement: &tenure_core::Entitlement) -> Result<(), $crate::ConnectorError> {
                self.$call(op, tenure_core::planner::Action::Revoke, person, Some(entitlement)).await
            }
            async fn list_accounts(&self) -> Result<Vec<$crate::RemoteAccount>, $crate::ConnectorError> {
                Err($crate::ConnectorError::Permanent(concat!("a ", $kind, " system cannot list its accounts").into()))
            }
            async fn list_memberships(&self, _person_id: &str) -> Result<Vec<String>, $crate::ConnectorError> {
                Err($crate::ConnectorError::Permanent(concat!("a ", $kind, " system cannot list memberships").into()))
            }
            $($rest)*
        }
    };
}
pub(crate) use connector_by_action;

/// Adds the current span's W3C `traceparent` (the step's, when traces are exported) to an
/// outgoing HTTP call, so the target system's own trace continues tenure's.
pub(crate) fn with_traceparent(req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    match tenure_store::trace::current() {
        Some(tp) => req.header("traceparent", tp),
        None => req,
    }
}

pub mod ldap;
pub mod manual;
pub mod postgres;
pub mod sandbox;
pub mod scim;
pub mod settings;
pub mod template;
pub mod webhook;

use async_trait::async_trait;
use serde::Serialize;
use std::collections::BTreeMap;

/// Checks a system's settings with the function its connector reads them with when `serve`
/// builds it, without reading secrets from the environment or connecting anywhere, so
/// `tenure check` and every configuration load refuse what `serve` would.
pub fn check_settings(
    connector: &str,
    settings: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), String> {
    match connector {
        "sandbox" => sandbox::SandboxSettings::from_map(settings).map(drop),
        "postgres" => postgres::PostgresSettings::from_map(settings).map(drop),
        "ldap" => ldap::LdapSettings::from_map(settings).map(drop),
        "webhook" => webhook::WebhookSettings::from_map(settings).map(drop),
        "manual" => manual::ManualSettings::from_map(settings).map(drop),
        "scim" => scim::ScimSettings::check(settings),
        other => Err(format!("unknown connector `{other}`")),
    }
}
use tenure_core::planner::Action;
use tenure_core::{Entitlement, Person};

/// A failure classified for the engine's retry policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectorError {
    /// Worth trying again later: unreachable, timed out, throttled, 5xx.
    #[error("retryable: {message}")]
    Retryable {
        /// What happened.
        message: String,
        /// How long the system asked us to wait, if it said.
        retry_after_ms: Option<u64>,
    },
    /// Sent, but no answer came back (a timeout, a connection lost while waiting): the system
    /// may have done it. Tried again with the same operation id, like a retryable failure; a
    /// step that runs out of attempts after such a call counts what it asked for as perhaps
    /// made, so a leave still takes it away.
    #[error("outcome unknown: {0}")]
    Unknown(String),
    /// Will fail the same way every time: refused, invalid, not found where it must exist.
    #[error("permanent: {0}")]
    Permanent(String),
    /// Accepted but not finished: a person or a remote system completes it later (a manual
    /// task, a webhook's asynchronous callback). The step waits without spending an attempt
    /// and is called again when its task is finished, or at the latest after
    /// `recheck_after_ms`; the connector then answers from the task's state.
    #[error("waiting: {message}")]
    Waiting {
        /// What it waits for.
        message: String,
        /// Call again after this long even if nothing announced the end.
        recheck_after_ms: u64,
    },
}

impl ConnectorError {
    /// A retryable failure with no hint of when to retry.
    pub fn retryable(message: impl Into<String>) -> Self {
        ConnectorError::Retryable {
            message: message.into(),
            retry_after_ms: None,
        }
    }

    /// Whether the engine should retry.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ConnectorError::Retryable { .. } | ConnectorError::Unknown(_)
        )
    }

    /// Whether the system may have acted on the call although it failed.
    pub fn may_have_acted(&self) -> bool {
        matches!(self, ConnectorError::Unknown(_))
    }

    /// The same failure of a call known not to have reached the system (connecting, signing
    /// in): an unanswered one is then plainly retryable.
    pub fn before_sending(self) -> Self {
        match self {
            ConnectorError::Unknown(message) => ConnectorError::retryable(message),
            other => other,
        }
    }

    /// Sorts a failed HTTP request: one that never reached the server (refused connection,
    /// DNS, TLS, connect timeout) or a read that cannot act is retryable; a write that went out
    /// and got no answer (timed out, connection dropped mid-response) has an unknown outcome.
    pub fn from_http(e: &reqwest::Error, writes: bool, message: String) -> Self {
        if writes
            && !e.is_connect()
            && !e.is_builder()
            && (e.is_timeout() || e.is_request() || e.is_body())
        {
            ConnectorError::Unknown(message)
        } else {
            ConnectorError::retryable(message)
        }
    }
}

/// What identifies one call: the step's operation id and the attempt number, and how urgent
/// it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// Deterministic per step; the same on every retry.
    pub id: String,
    /// 1 for the first call.
    pub attempt: u32,
    /// The step's priority: `Urgent` for a leaver's. A connector that queues its calls lets
    /// urgent ones go first.
    pub priority: tenure_core::run::Priority,
}

/// An account as a target system reports it, for reconciliation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemoteAccount {
    /// The person's id as the system knows it.
    pub person_id: String,
    /// Whether the account can sign in.
    pub enabled: bool,
}

/// One account in a system's inventory: what identifies it, what correlates it with a person,
/// and what it holds. Reconciliation compares these with what tenure believes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InventoryAccount {
    /// The system's own key for the account (LDAP entry's id attribute or RDN, PostgreSQL role
    /// name, SCIM resource id, the sandbox's person id): unique on the system, and the order in
    /// which pages come where the system sorts (the sandbox, PostgreSQL); LDAP and SCIM hand
    /// them out in the directory's or the provider's own order.
    pub key: String,
    /// The tenure person id the account carries when tenure made it (LDAP's id attribute, the
    /// PostgreSQL role's comment mark, SCIM `externalId`); `None` for an account made by other
    /// hands that carries none.
    pub person_id: Option<String>,
    /// Whether the account can sign in.
    pub enabled: bool,
    /// Values correlation may match on, by the names in [`attribute`]: `username`, `email`,
    /// `employee_id`, whichever the system has.
    pub attributes: BTreeMap<String, String>,
    /// The groups or roles the account holds, by the name the system knows them by
    /// ([`Entitlement::name`]).
    pub memberships: Vec<String>,
}

/// The names [`InventoryAccount::attributes`] uses.
pub mod attribute {
    /// The sign-in name (LDAP `uid`/`sAMAccountName`, SCIM `userName`, the role name).
    pub const USERNAME: &str = "username";
    /// The work email address.
    pub const EMAIL: &str = "email";
    /// The HR id recorded on the account (SCIM enterprise `employeeNumber`, LDAP
    /// `employeeNumber`).
    pub const EMPLOYEE_ID: &str = "employee_id";
}

/// Pages of a system's accounts, pulled one at a time so that a system of a million accounts
/// never sits whole in memory.
#[async_trait]
pub trait InventoryPages: Send {
    /// The next page, or `None` once every account has been listed.
    async fn next_page(&mut self) -> Result<Option<Vec<InventoryAccount>>, ConnectorError>;
}

/// Whether a system can list what it holds.
pub enum Inventory<'a> {
    /// It cannot (a webhook, a manual task): reconciliation reports it as not covered.
    NotCovered(&'static str),
    /// Its accounts, page by page.
    Pages(Box<dyn InventoryPages + 'a>),
}

/// A target system tenure provisions into.
#[async_trait]
pub trait Connector: Send + Sync {
    /// Creates the person's account; an existing account counts as success.
    async fn create_account(&self, op: &Op, person: &Person) -> Result<(), ConnectorError>;
    /// Pushes changed attributes to the account.
    async fn update_account(&self, op: &Op, person: &Person) -> Result<(), ConnectorError>;
    /// Lets the account sign in again.
    async fn enable_account(&self, op: &Op, person: &Person) -> Result<(), ConnectorError>;
    /// Stops the account signing in; a missing account counts as success.
    async fn disable_account(&self, op: &Op, person: &Person) -> Result<(), ConnectorError>;
    /// Deletes the account; a missing account counts as success.
    async fn delete_account(&self, op: &Op, person: &Person) -> Result<(), ConnectorError>;
    /// Adds the entitlement; already held counts as success.
    async fn grant(
        &self,
        op: &Op,
        person: &Person,
        entitlement: &Entitlement,
    ) -> Result<(), ConnectorError>;
    /// Removes the entitlement; not held counts as success.
    async fn revoke(
        &self,
        op: &Op,
        person: &Person,
        entitlement: &Entitlement,
    ) -> Result<(), ConnectorError>;
    /// Every account on the system.
    async fn list_accounts(&self) -> Result<Vec<RemoteAccount>, ConnectorError>;
    /// The entitlements (by tenure id or system name) the person holds on the system.
    async fn list_memberships(&self, person_id: &str) -> Result<Vec<String>, ConnectorError>;
    /// Every account on the system with its memberships, `page_size` accounts per page at
    /// most, for reconciliation. The default says the system cannot list.
    async fn inventory(&self, page_size: usize) -> Result<Inventory<'_>, ConnectorError> {
        let _ = page_size;
        Ok(Inventory::NotCovered(
            "this connector cannot list the accounts it holds",
        ))
    }
    /// The [`InventoryAccount::key`] of the account this connector acts on for `person_id`,
    /// when it is derived from the id (the sandbox's id, a role prefix and the id, the LDAP id
    /// attribute). `None` when the system assigns it (SCIM), so only the person id written on
    /// the account ties them. Reconciliation corrects only what the connector would reach.
    fn account_key(&self, person_id: &str) -> Option<String> {
        let _ = person_id;
        None
    }
    /// The reverse of [`Connector::account_key`]: the id whose account `key` is, which a call
    /// for a person of that id would reach. Reconciliation disables an account no person holds
    /// (an orphan) through it. `None` where accounts are not derived from ids. A part of the
    /// key: it is asked for every account a reconciliation lists.
    fn subject_of<'k>(&self, key: &'k str) -> Option<&'k str> {
        let _ = key;
        None
    }
    /// Whether the system answers.
    async fn health(&self) -> Result<(), ConnectorError>;
    /// Connector-specific figures for `GET /api/v1/systems` (the sandbox's counters).
    async fn stats(&self) -> Option<serde_json::Value> {
        None
    }
}

/// Performs one step's action through a connector.
pub async fn execute(
    connector: &dyn Connector,
    op: &Op,
    action: Action,
    person: &Person,
    entitlement: Option<&Entitlement>,
) -> Result<(), ConnectorError> {
    let need = || {
        entitlement
            .ok_or_else(|| ConnectorError::Permanent(format!("{action} needs an entitlement")))
    };
    match action {
        Action::CreateAccount => connector.create_account(op, person).await,
        Action::UpdateAccount => connector.update_account(op, person).await,
        Action::EnableAccount => connector.enable_account(op, person).await,
        Action::DisableAccount => connector.disable_account(op, person).await,
        Action::DeleteAccount => connector.delete_account(op, person).await,
        Action::Grant => connector.grant(op, person, need()?).await,
        Action::Revoke => connector.revoke(op, person, need()?).await,
    }
}
