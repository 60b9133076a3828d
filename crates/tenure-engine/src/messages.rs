//! What the engine's loops hand each other: events to store (ingester), call outcomes to
//! record and leases to renew (completer), runs that finished (subscribers). Plain types: the
//! loops that send and receive them live above this module.

use crate::error::Result;
use tenure_connectors::ConnectorError;
use tenure_core::event::EventInput;
use tenure_core::run::Priority;
use tenure_store::StepRow;
use tokio::sync::oneshot;

/// A run reached a terminal state.
#[derive(Debug, Clone)]
pub struct RunFinished {
    /// The run.
    pub run_id: String,
    /// What caused it.
    pub kind: tenure_core::run::RunKind,
    /// Its final state.
    pub state: tenure_core::run::RunState,
    /// From the event's receipt (or effective time, if later) to the last step done.
    pub latency_ms: i64,
}

/// When the runs of events stored in a caller's transaction ([`crate::Engine::submit_in`])
/// are planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Planning {
    /// In that transaction: the steps of a run due now can be claimed the moment it commits.
    InTransaction,
    /// By the engine's dispatcher once it commits, in transactions of its own, a few hundred
    /// runs at a time: a change that re-plans thousands of people is stored without waiting
    /// for their plans. Runs are stored pending, so a crash before they are planned loses
    /// nothing: they are planned on restart.
    AfterCommit,
}

/// An event to store, with who sent it and how to recognise a retry of it.
#[derive(Debug, Clone)]
pub struct Submission {
    /// The validated event.
    pub event: EventInput,
    /// The `Idempotency-Key` header, if any; else the event's own `id` is the key.
    pub idempotency_key: Option<String>,
    /// The token name (or component) that sent it.
    pub actor: String,
    /// The `X-Request-Id` of the HTTP request it came with, stored with the event and in its
    /// `event.received` audit entry, so a request's log lines lead to its run.
    pub request_id: Option<String>,
    /// The W3C `traceparent` of the span it was sent in (the HTTP request's, which continues a
    /// client's own), so its run and steps join that trace; `None` while traces are off.
    pub trace: Option<String>,
}

/// What became of a submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    /// Stored (or stored before, when `replay`).
    Accepted {
        /// tenure's event id.
        event_id: String,
        /// The run it started.
        run_id: String,
        /// True when this is a repeat of an event already stored under the same key.
        replay: bool,
    },
    /// The key was used before for a different event.
    KeyReused {
        /// The key.
        key: String,
        /// The event stored under it.
        event_id: String,
    },
    /// Not stored: the event names a person or a client tenure does not know (see
    /// [`tenure_core::known`]).
    Refused {
        /// The field naming the stranger: `person.id` or `engagement.client`.
        field: String,
        /// Why, for people.
        message: String,
    },
}

pub(crate) struct Job {
    pub(crate) submission: Submission,
    /// When the engine was handed the event: latencies count from here.
    pub(crate) received_at: i64,
    pub(crate) reply: oneshot::Sender<Result<IngestOutcome>>,
}

/// A request to renew due leases now, answered with how many were renewed.
pub(crate) type RenewRequest = tokio::sync::oneshot::Sender<Result<usize>>;

/// A step this process claimed and has not yet recorded.
pub(crate) struct Held {
    /// The lease its claim took: which claim this is (a step taken back and claimed again by
    /// this same process is a new claim).
    pub(crate) claimed: i64,
    /// The lease it holds now, renewed while its call lasts.
    pub(crate) current: i64,
    /// Its priority: the completer of that priority renews the lease and records the outcome.
    pub(crate) priority: Priority,
}

/// What came of one claimed step.
pub(crate) struct Outcome {
    pub(crate) step: StepRow,
    pub(crate) result: CallResult,
    /// The step's span, in its run's trace: open until the outcome is recorded.
    pub(crate) span: tracing::Span,
}

pub(crate) enum CallResult {
    /// The system's circuit is open: put the step back until then, no attempt spent.
    Deferred(i64),
    /// The connector was called.
    Called(Result<(), ConnectorError>),
}
