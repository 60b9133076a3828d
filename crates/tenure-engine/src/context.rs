//! What every part of the engine works with: the store, the rules in force, the systems
//! with their breakers, the clock, the channels between the loops, and the engine's options.

use crate::clock::Clock;
use crate::error::EngineError;
use crate::messages::{Held, Job, Outcome, RenewRequest, RunFinished};
use rand::rngs::StdRng;
use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, RwLock};
use tenure_connectors::Connector;
use tenure_core::breaker::Breaker;
use tenure_core::config::Config;
use tenure_core::health::SystemHealth;
use tenure_core::run::Priority;
use tenure_policy::PolicyEngine;
use tenure_store::Store;
use tokio::sync::{Notify, broadcast, mpsc, watch};

/// Tuning that is not part of the policy configuration.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Steps in flight at once, over all systems.
    pub max_in_flight: usize,
    /// Leaver steps in flight at once, on top of `max_in_flight`.
    pub max_urgent_in_flight: usize,
    /// Steps claimed per transaction.
    pub claim_batch: usize,
    /// How long a claimed step is held before another instance may take it over.
    pub lease_ms: i64,
    /// Seed for retry jitter (random when absent).
    pub seed: Option<u64>,
    /// Whether this instance is the only one on its database (SQLite): on start it may take
    /// back every running step at once instead of waiting for leases to run out.
    pub sole_instance: bool,
    /// The secret notifications are signed with (read from the environment variable the
    /// configuration's `[notifications] secret_env` names); required when a webhook is set.
    pub webhook_secret: Option<String>,
}

/// The most steps one instance holds in flight at once, in either lane: beyond it, memory and
/// a system's queue grow with nothing gained.
pub(crate) const MAX_IN_FLIGHT_LIMIT: usize = 65_536;

impl EngineOptions {
    /// Checks the limits: each at least 1, at most `MAX_IN_FLIGHT_LIMIT` (65,536), and a claim no
    /// larger than what may be in flight.
    pub fn validate(&self) -> Result<(), EngineError> {
        let check = |field: &str, n: usize| {
            if (1..=MAX_IN_FLIGHT_LIMIT).contains(&n) {
                Ok(())
            } else {
                Err(EngineError::Invalid {
                    field: field.into(),
                    message: format!("{n} is outside 1 to {MAX_IN_FLIGHT_LIMIT}"),
                })
            }
        };
        check("max_in_flight", self.max_in_flight)?;
        check("max_urgent_in_flight", self.max_urgent_in_flight)?;
        check("claim_batch", self.claim_batch)?;
        if self.claim_batch > self.max_in_flight {
            return Err(EngineError::Invalid {
                field: "claim_batch".into(),
                message: format!(
                    "{} is more than max_in_flight ({}): a claim takes at most what may be in flight",
                    self.claim_batch, self.max_in_flight
                ),
            });
        }
        if self.lease_ms < 1_000 {
            return Err(EngineError::Invalid {
                field: "lease_ms".into(),
                message: format!("{} ms is under a second", self.lease_ms),
            });
        }
        Ok(())
    }
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            max_in_flight: 512,
            max_urgent_in_flight: 256,
            claim_batch: 256,
            lease_ms: 60_000,
            seed: None,
            sole_instance: true,
            webhook_secret: None,
        }
    }
}

pub(crate) struct SystemHandle {
    pub(crate) connector: Arc<dyn Connector>,
    /// The system's `max_concurrency` calls at once, handed to leavers' steps first.
    pub(crate) permits: Arc<tenure_store::turns::Turns>,
    pub(crate) breaker: Mutex<Breaker>,
    /// Recent calls and the health they add up to; told of each call after the breaker.
    pub(crate) health: Mutex<SystemHealth>,
}

/// The rules runs are planned with: the configuration and the policy set, swapped together
/// when they are reloaded, so a plan never sees the templates of one and the policy of another.
#[derive(Debug)]
pub struct Rules {
    /// Systems, entitlements, templates, separation of duties, engine settings.
    pub config: Arc<Config>,
    /// Decides every grant a plan would make (allows all when there are no policy files).
    pub policy: Arc<PolicyEngine>,
    /// Which rules these are, for run reasons and audit entries ("as started", "reload 2").
    pub label: String,
}

pub(crate) struct Inner {
    pub(crate) store: Store,
    /// Read with [`Inner::rules`]; replaced whole by [`Engine::reload`].
    pub(crate) rules: RwLock<Arc<Rules>>,
    /// Serializes reloads (each one swaps, audits and schedules re-plans).
    pub(crate) reloading: tokio::sync::Mutex<u64>,
    pub(crate) systems: HashMap<String, SystemHandle>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) rng: Mutex<StdRng>,
    pub(crate) options: EngineOptions,
    pub(crate) wake: Arc<Notify>,
    /// Wakes the scheduler (timers and notifications).
    pub(crate) timer_wake: Arc<Notify>,
    /// Held while a batch of timers fires, so `Engine::fire_due_timers` returns only once what
    /// was due has fired, whoever fired it.
    pub(crate) firing: tokio::sync::Mutex<()>,
    /// Sends notifications.
    pub(crate) http: reqwest::Client,
    /// The notification signing key, when a webhook is configured.
    pub(crate) webhook_key: Option<Vec<u8>>,
    pub(crate) in_flight: AtomicUsize,
    pub(crate) urgent_in_flight: AtomicUsize,
    pub(crate) finished: broadcast::Sender<RunFinished>,
    /// The intake of leaves and engagement ends (see [`IntakeQueue`]).
    pub(crate) urgent_intake: mpsc::Sender<Job>,
    /// The intake of every other event.
    pub(crate) normal_intake: mpsc::Sender<Job>,
    /// Which intake each person's queued events are in (see [`IntakeQueue`]).
    pub(crate) intake_queued: IntakeQueue,
    /// The completer of leavers' steps (priority 0).
    pub(crate) urgent_lane: Lane,
    /// The completer of every other step.
    pub(crate) normal_lane: Lane,
    /// Steps whose connector call is in flight or whose outcome is not yet recorded, with the
    /// lease this process holds on each; their lane's completer renews them and fences their
    /// outcomes by them.
    pub(crate) held: Mutex<HashMap<String, Held>>,
    pub(crate) shutdown: watch::Sender<bool>,
    /// Systems whose circuit closed again since the reconciler last looked; it wakes on
    /// `reconcile_wake`.
    pub(crate) circuits_closed: Mutex<Vec<String>>,
    /// Wakes the reconciler.
    pub(crate) reconcile_wake: Notify,
}

/// What reaches one of the two completers: the outcomes of its priority's steps, and requests
/// to renew their leases now (see [`Engine::renew_leases`]).
pub(crate) struct Lane {
    pub(crate) outcomes: mpsc::Sender<Outcome>,
    pub(crate) renew: mpsc::Sender<RenewRequest>,
}

/// People with events queued in an intake and not yet stored: how many, and in which intake.
/// A person's next event joins them there, whatever its kind, so that one person's events are
/// stored in the order they came.
#[derive(Default)]
pub(crate) struct IntakeQueue(Mutex<HashMap<String, (Priority, usize)>>);

/// An event counted in an [`IntakeQueue`] that has not reached its intake yet: dropped before
/// [`IntakeTicket::handed_over`] (its submitter gone while the intake was full, or the engine
/// stopping), it takes its count back.
pub(crate) struct IntakeTicket<'q> {
    queue: &'q IntakeQueue,
    person: Option<String>,
    pub(crate) lane: Priority,
}

impl IntakeTicket<'_> {
    /// The event is in its intake, which will call [`IntakeQueue::done`] once it is stored.
    pub(crate) fn handed_over(mut self) {
        self.person = None;
    }
}

impl Drop for IntakeTicket<'_> {
    fn drop(&mut self) {
        if let Some(person) = self.person.take() {
            self.queue.done(&person);
        }
    }
}

impl IntakeQueue {
    /// Counts an event of `person`, and says which intake it goes to: the urgent one for a
    /// leave or an engagement end (`urgent`), the other for the rest, unless `person` has
    /// events queued in one already.
    pub(crate) fn enter(&self, person: &str, urgent: bool) -> IntakeTicket<'_> {
        let wanted = if urgent {
            Priority::Urgent
        } else {
            Priority::Normal
        };
        let mut queued = self.0.lock().expect("intake lock");
        let entry = queued.entry(person.to_string()).or_insert((wanted, 0));
        entry.1 += 1;
        IntakeTicket {
            queue: self,
            person: Some(person.to_string()),
            lane: entry.0,
        }
    }

    /// An event of `person` counted by [`IntakeQueue::enter`] is stored, or will never be.
    pub(crate) fn done(&self, person: &str) {
        let mut queued = self.0.lock().expect("intake lock");
        if let Some(entry) = queued.get_mut(person) {
            entry.1 -= 1;
            if entry.1 == 0 {
                queued.remove(person);
            }
        }
    }

    /// How many people have events queued.
    #[cfg(test)]
    fn people(&self) -> usize {
        self.0.lock().expect("intake lock").len()
    }
}

impl Inner {
    /// The completer that records outcomes of this priority.
    pub(crate) fn lane(&self, priority: Priority) -> &Lane {
        match priority {
            Priority::Urgent => &self.urgent_lane,
            Priority::Normal => &self.normal_lane,
        }
    }

    pub(crate) fn wake_handle(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// The rules in force now (a cheap clone of a shared snapshot).
    pub(crate) fn rules(&self) -> Arc<Rules> {
        self.rules.read().expect("rules lock").clone()
    }

    /// Wakes the dispatcher and the scheduler.
    pub(crate) fn wake_all(&self) {
        self.wake.notify_one();
        self.timer_wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_persons_events_follow_the_first_into_its_intake_until_all_are_stored() {
        let q = IntakeQueue::default();
        let hire = q.enter("a", false);
        assert_eq!(hire.lane, Priority::Normal);
        hire.handed_over();
        // A leave behind a queued hire goes where the hire is.
        let leave = q.enter("a", true);
        assert_eq!(leave.lane, Priority::Normal);
        leave.handed_over();
        // Someone else's leave goes to the leavers' intake.
        let other = q.enter("b", true);
        assert_eq!(other.lane, Priority::Urgent);
        other.handed_over();
        q.done("a");
        assert_eq!(
            q.enter("a", true).lane,
            Priority::Normal,
            "one still queued"
        );
        q.done("a");
        q.done("b");
        assert_eq!(q.people(), 0);
        // Both stored: the next leave goes to the leavers' intake again.
        let leave = q.enter("a", true);
        assert_eq!(leave.lane, Priority::Urgent);
        leave.handed_over();
        q.done("a");
        assert_eq!(q.people(), 0);
    }

    #[test]
    fn an_event_that_never_reached_its_intake_takes_its_count_back() {
        let q = IntakeQueue::default();
        let hire = q.enter("a", false);
        hire.handed_over();
        // Its submitter gave up while the intake was full.
        drop(q.enter("a", true));
        q.done("a");
        assert_eq!(q.people(), 0, "nothing left counted");
        assert_eq!(q.enter("a", true).lane, Priority::Urgent);
    }

    #[test]
    fn limits_are_checked() {
        assert!(EngineOptions::default().validate().is_ok());
        let bad = |o: EngineOptions| o.validate().unwrap_err().to_string();
        assert_eq!(
            bad(EngineOptions {
                max_in_flight: 0,
                ..Default::default()
            }),
            "max_in_flight: 0 is outside 1 to 65536"
        );
        assert_eq!(
            bad(EngineOptions {
                max_urgent_in_flight: MAX_IN_FLIGHT_LIMIT + 1,
                ..Default::default()
            }),
            "max_urgent_in_flight: 65537 is outside 1 to 65536"
        );
        assert_eq!(
            bad(EngineOptions {
                claim_batch: 600,
                ..Default::default()
            }),
            "claim_batch: 600 is more than max_in_flight (512): a claim takes at most what may be in flight"
        );
        assert_eq!(
            bad(EngineOptions {
                lease_ms: 999,
                ..Default::default()
            }),
            "lease_ms: 999 ms is under a second"
        );
        let big = EngineOptions {
            max_in_flight: 1024,
            claim_batch: 512,
            ..Default::default()
        };
        assert!(big.validate().is_ok());
    }
}
