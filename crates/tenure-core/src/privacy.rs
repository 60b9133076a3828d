//! Whether a person may be forgotten: their personal data crypto-shredded (see the store's
//! `vault`). Only someone who has left, holds nothing any more, and has no run still working
//! on them: forgetting erases the name and email a later revoke, a reconciliation match or the
//! evidence of what is still held would need.

use crate::model::PersonStatus;

/// What the store knows of a person when asked to forget them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForgetFacts {
    /// Their status, `None` when tenure has no such person.
    pub status: Option<PersonStatus>,
    /// When they were forgotten already.
    pub forgotten_at: Option<i64>,
    /// Runs on them not yet ended (pending, planned, running, waiting).
    pub open_runs: i64,
    /// Grants not yet revoked, denied or failed, and accounts neither disabled nor deleted.
    pub held: i64,
}

/// Why a person may not be forgotten.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForgetRefused {
    /// No such person.
    #[error("no person {0}")]
    Unknown(String),
    /// Forgotten before.
    #[error("person {0} was forgotten already")]
    AlreadyForgotten(String),
    /// Still working, or not yet left.
    #[error("person {0} is {1}: only a person who has left (terminated) can be forgotten")]
    NotLeft(String, PersonStatus),
    /// A run on them is still going.
    #[error("person {0} has {1} run(s) not yet ended: forget them once those end")]
    RunsOpen(String, i64),
    /// Something is still held.
    #[error(
        "person {0} still holds {1} grant(s) or account(s): revoke them first (the leave's evidence needs the person)"
    )]
    StillHolds(String, i64),
}

/// Whether `person` may be forgotten, given what the store knows.
pub fn may_forget(person: &str, f: ForgetFacts) -> Result<(), ForgetRefused> {
    let id = || person.to_string();
    let Some(status) = f.status else {
        return Err(ForgetRefused::Unknown(id()));
    };
    if f.forgotten_at.is_some() {
        return Err(ForgetRefused::AlreadyForgotten(id()));
    }
    if status != PersonStatus::Terminated {
        return Err(ForgetRefused::NotLeft(id(), status));
    }
    if f.open_runs > 0 {
        return Err(ForgetRefused::RunsOpen(id(), f.open_runs));
    }
    if f.held > 0 {
        return Err(ForgetRefused::StillHolds(id(), f.held));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gone() -> ForgetFacts {
        ForgetFacts {
            status: Some(PersonStatus::Terminated),
            forgotten_at: None,
            open_runs: 0,
            held: 0,
        }
    }

    #[test]
    fn only_a_leaver_who_holds_nothing_and_has_no_run_going_is_forgotten() {
        assert_eq!(may_forget("p", gone()), Ok(()));
        let cases = [
            (
                ForgetFacts {
                    status: None,
                    ..gone()
                },
                "no person p",
            ),
            (
                ForgetFacts {
                    forgotten_at: Some(1),
                    ..gone()
                },
                "was forgotten already",
            ),
            (
                ForgetFacts {
                    status: Some(PersonStatus::Leaving),
                    ..gone()
                },
                "is leaving",
            ),
            (
                ForgetFacts {
                    status: Some(PersonStatus::Active),
                    ..gone()
                },
                "is active",
            ),
            (
                ForgetFacts {
                    open_runs: 2,
                    ..gone()
                },
                "2 run(s)",
            ),
            (ForgetFacts { held: 1, ..gone() }, "still holds 1"),
        ];
        for (facts, says) in cases {
            let err = may_forget("p", facts).unwrap_err().to_string();
            assert!(err.contains(says), "{err}");
        }
    }
}
