//! Writes the changes to people's recorded access that step outcomes and cancels decide
//! (`tenure_core::outcome::{decide, cancelled}`): the one place such decisions reach the
//! store. Gathered per batch, written in a few statements inside the caller's transaction.

use crate::error::Result;
use tenure_core::outcome::{self, AccessChange};
use tenure_core::{AccountState, GrantState};
use tenure_store::{Conn, StepRow};

/// Access changes gathered from a batch of steps.
#[derive(Debug, Default)]
pub(crate) struct AccessChanges {
    accounts: Vec<(String, String, AccountState)>,
    grants: Vec<(String, String, GrantState)>,
    /// Planned accounts never made: (person, system).
    forgotten_accounts: Vec<(String, String)>,
    /// Planned grants never made: (person, entitlement).
    forgotten_grants: Vec<(String, String)>,
}

impl AccessChanges {
    /// Adds what `step`'s outcome or cancel changes, if anything.
    pub(crate) fn push(&mut self, step: &StepRow, change: Option<AccessChange>) {
        if step.is_orphan() {
            // No person's access: the system alone holds the account's state.
            return;
        }
        let person = step.person_id.clone();
        let entitlement = || step.entitlement.clone().unwrap_or_default();
        match change {
            Some(AccessChange::Account(state)) => {
                self.accounts.push((person, step.system.clone(), state))
            }
            Some(AccessChange::Grant(state)) => self.grants.push((person, entitlement(), state)),
            Some(AccessChange::ForgetPendingAccount) => {
                self.forgotten_accounts.push((person, step.system.clone()))
            }
            Some(AccessChange::ForgetPendingGrant) => {
                self.forgotten_grants.push((person, entitlement()))
            }
            None => {}
        }
    }

    /// What steps cancelled before they ended leave of people's access
    /// (`tenure_core::outcome::cancelled`).
    pub(crate) fn of_cancelled(steps: &[StepRow]) -> AccessChanges {
        let mut changes = AccessChanges::default();
        for s in steps {
            let step = outcome::CancelledStep {
                action: s.action,
                claimed: s.started_at.is_some(),
                attempts: s.attempts,
                last_error: s.last_error.as_deref(),
            };
            changes.push(s, outcome::cancelled(step));
        }
        changes
    }

    /// Writes them: what is forgotten first, then the new states (later ones win for the same
    /// account or grant). The store keeps `uncertain` access so until a call settles it.
    pub(crate) async fn write(self, c: &mut Conn, now: i64) -> Result<()> {
        for (person, system) in &self.forgotten_accounts {
            tenure_store::forget_pending_account(&mut *c, person, system).await?;
        }
        for (person, entitlement) in &self.forgotten_grants {
            tenure_store::forget_pending_grant(&mut *c, person, entitlement).await?;
        }
        tenure_store::upsert_accounts(&mut *c, &self.accounts, now).await?;
        tenure_store::set_grant_states(&mut *c, &self.grants, now).await?;
        Ok(())
    }
}
