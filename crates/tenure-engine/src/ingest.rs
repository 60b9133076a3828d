//! Storing events: many per transaction, each answered once its transaction is on disk.

use crate::context::Inner;
use crate::error::{EngineError, Result};
use crate::messages::{IngestOutcome, Job, Planning, Submission};
use crate::{dispatch, planning};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use tenure_core::PersonStatus;
use tenure_core::audit::AuditAction;
use tenure_core::config::Config;
use tenure_core::event::{EventError, EventInput, EventType};
use tenure_core::known;
use tenure_core::run::Priority;
use tenure_store::{EventRow, NewAudit, RunRow};
use tokio::sync::{mpsc, oneshot};

pub(crate) async fn submit(inner: &Inner, submission: Submission) -> Result<IngestOutcome> {
    let (reply, answer) = oneshot::channel();
    let received_at = inner.clock.now_ms();
    let ticket = inner.intake_queued.enter(
        &submission.event.person.id,
        submission.event.kind.is_urgent(),
    );
    let lane = match ticket.lane {
        Priority::Urgent => &inner.urgent_intake,
        Priority::Normal => &inner.normal_intake,
    };
    let job = Job {
        submission,
        received_at,
        reply,
    };
    // Dropped unsent (the engine stopping, or this future dropped while the intake is full),
    // the ticket takes the event's count back.
    lane.send(job)
        .await
        .map_err(|_| EngineError::ShuttingDown)?;
    ticket.handed_over();
    answer.await.map_err(|_| EngineError::ShuttingDown)?
}

/// One intake: stores the events sent to it, many per transaction. Leaves and engagement ends
/// have an intake of their own, so they never wait for a batch of hires being stored.
pub(crate) async fn run(inner: Arc<Inner>, mut rx: mpsc::Receiver<Job>) {
    let mut shutdown = inner.shutdown.subscribe();
    let mut jobs = Vec::with_capacity(256);
    loop {
        tokio::select! {
            n = rx.recv_many(&mut jobs, 128) => if n == 0 { return },
            // Submissions still queued get "shutting down" when their reply channel drops.
            // `wait_for` also sees a stop requested before this task first ran.
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        // Leaves and engagement ends are stored (and planned) in a transaction of their own,
        // ahead of the hires queued beside them, unless the same person has an event among
        // those: one person's events keep their order.
        let jobs_now = std::mem::take(&mut jobs);
        let others: std::collections::HashSet<String> = jobs_now
            .iter()
            .filter(|j| !j.submission.event.kind.is_urgent())
            .map(|j| j.submission.event.person.id.clone())
            .collect();
        let (urgent, normal): (Vec<Job>, Vec<Job>) = jobs_now.into_iter().partition(|j| {
            j.submission.event.kind.is_urgent() && !others.contains(&j.submission.event.person.id)
        });
        for (batch, priority) in [(urgent, Priority::Urgent), (normal, Priority::Normal)] {
            if !batch.is_empty() {
                store_and_reply(&inner, batch, priority).await;
            }
        }
    }
}

/// Hires and other normal events are stored this many at a time. Between two such parts the
/// transaction is committed when a leaver's transaction waits for SQLite's one writer, so a
/// leave waits for a few hires being planned, never for a whole batch of them.
const NORMAL_PART: usize = 4;

/// Stores a batch in as few transactions as leavers' work allows, answering each event once
/// its transaction is on disk.
async fn store_and_reply(inner: &Arc<Inner>, batch: Vec<Job>, priority: Priority) {
    let part = match priority {
        Priority::Urgent => batch.len(),
        Priority::Normal => NORMAL_PART,
    };
    let mut rest = batch.into_iter().peekable();
    while rest.peek().is_some() {
        let mut taken = Vec::new();
        let stored = store_parts(inner, &mut rest, &mut taken, part, priority).await;
        // Stored, or never to be: a person's next event may go to either intake again.
        for job in &taken {
            inner.intake_queued.done(&job.submission.event.person.id);
        }
        match stored {
            Ok(outcomes) => {
                for (job, outcome) in taken.into_iter().zip(outcomes) {
                    let _ = job.reply.send(Ok(outcome));
                }
                inner.wake.notify_one();
            }
            Err(e) => {
                tracing::error!(error = %e, events = taken.len(), "storing events failed; none of them was stored");
                let msg = e.to_string();
                for job in taken {
                    let _ = job.reply.send(Err(EngineError::Unavailable(msg.clone())));
                }
            }
        }
    }
}

/// Stores events from `rest`, `part` at a time, in one transaction that ends with the batch or
/// as soon as an urgent transaction waits for the writer; the events it took are moved to
/// `taken`, stored all or none.
async fn store_parts(
    inner: &Arc<Inner>,
    rest: &mut std::iter::Peekable<std::vec::IntoIter<Job>>,
    taken: &mut Vec<Job>,
    part: usize,
    priority: Priority,
) -> Result<Vec<IngestOutcome>> {
    let mut tx = inner.store.begin_with(priority).await?;
    let now = inner.clock.now_ms();
    let mut outcomes = Vec::new();
    loop {
        let from = taken.len();
        taken.extend(rest.by_ref().take(part));
        let subs: Vec<(&Submission, i64)> = taken[from..]
            .iter()
            .map(|j| (&j.submission, j.received_at))
            .collect();
        outcomes.extend(store_events(inner, &mut tx, &subs, now, Planning::InTransaction).await?);
        if rest.peek().is_none() || inner.store.urgent_waiting() {
            break;
        }
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// An event already stored, as a repeat of it must be recognised.
struct Known {
    id: String,
    run_id: String,
    body_hash: String,
    received_at: i64,
}

/// The events a batch must recognise repeats of: those stored under its keys, and its own as
/// they are added. The first received wins, as `ORDER BY received_at` would pick it.
#[derive(Default)]
struct Seen {
    by_key: HashMap<String, Arc<Known>>,
    by_source: HashMap<String, Arc<Known>>,
}

impl Seen {
    fn remember(&mut self, key: &str, source_id: Option<&str>, known: Known) {
        let known = Arc::new(known);
        if let Some(sid) = source_id {
            self.by_source
                .entry(sid.to_string())
                .or_insert_with(|| known.clone());
        }
        self.by_key.entry(key.to_string()).or_insert(known);
    }

    /// The earliest event stored under `key` or carrying the sender's own id `source_id`.
    fn prior(&self, key: &str, source_id: Option<&str>) -> Option<&Known> {
        let by_source = source_id.and_then(|sid| self.by_source.get(sid));
        [self.by_key.get(key), by_source]
            .into_iter()
            .flatten()
            .min_by_key(|k| k.received_at)
            .map(Arc::as_ref)
    }
}

/// Stores events and their runs inside `tx`, and plans those due now (the ingester's batch, or
/// an event the scheduler raises itself, such as a leave on a contract's end date).
///
/// The whole batch costs one lookup of its keys and one insert each for its events and runs;
/// a key repeated within the batch is recognised as well as one stored before.
pub(crate) async fn store_events(
    inner: &Arc<Inner>,
    tx: &mut tenure_store::Tx,
    subs: &[(&Submission, i64)],
    now: i64,
    planning: Planning,
) -> Result<Vec<IngestOutcome>> {
    let keys: Vec<&str> = subs
        .iter()
        .filter_map(|(s, _)| s.idempotency_key.as_deref().or(s.event.id.as_deref()))
        .collect();
    let source_ids: Vec<&str> = subs
        .iter()
        .filter_map(|(s, _)| s.event.id.as_deref())
        .collect();
    let mut seen = Seen::default();
    if !keys.is_empty() {
        for e in tenure_store::events_by_keys(tx.conn(), &keys, &source_ids).await? {
            let known = Known {
                id: e.id,
                run_id: e.run_id,
                body_hash: e.body_hash,
                received_at: e.received_at,
            };
            seen.remember(&e.idem_key, e.source_id.as_deref(), known);
        }
    }
    let batch: Vec<&EventInput> = subs.iter().map(|(s, _)| &s.event).collect();
    let verdicts = vet(
        tx.conn(),
        &inner.rules().config,
        &batch,
        known::Batch::Together,
    )
    .await?;
    let mut outcomes = Vec::with_capacity(subs.len());
    let (mut events, mut runs, mut due) = (Vec::new(), Vec::new(), Vec::new());
    let mut requests = Vec::new();
    for (&(sub, received_at), verdict) in subs.iter().zip(verdicts) {
        // The event's canonical JSON: stored as its body, and hashed to tell a retry (same
        // event, whatever its whitespace or key order on the wire) from a different event.
        let body = serde_json::to_string(&sub.event).expect("events serialize");
        let hash = hex::encode(Sha256::digest(body.as_bytes()));
        let event_id = uuid::Uuid::now_v7().to_string();
        let key = sub
            .idempotency_key
            .clone()
            .or_else(|| sub.event.id.clone())
            .unwrap_or_else(|| event_id.clone());
        if let Some(prior) = seen.prior(&key, sub.event.id.as_deref()) {
            outcomes.push(if prior.body_hash == hash {
                IngestOutcome::Accepted {
                    event_id: prior.id.clone(),
                    run_id: prior.run_id.clone(),
                    replay: true,
                }
            } else {
                IngestOutcome::KeyReused {
                    key,
                    event_id: prior.id.clone(),
                }
            });
            continue;
        }
        if let Err(EventError { field, message }) = verdict {
            outcomes.push(IngestOutcome::Refused { field, message });
            continue;
        }
        let run_id = uuid::Uuid::now_v7().to_string();
        let effective_at = sub
            .event
            .effective_at
            .map_or(received_at, |t| t.timestamp_millis());
        let person_id = sub.event.person.id.clone();
        let kind = sub.event.kind;
        let known = Known {
            id: event_id.clone(),
            run_id: run_id.clone(),
            body_hash: hash.clone(),
            received_at,
        };
        seen.remember(&key, sub.event.id.as_deref(), known);
        let event = EventRow {
            id: event_id.clone(),
            idem_key: key,
            source_id: sub.event.id.clone(),
            body_hash: hash,
            kind: kind.as_str().to_string(),
            person_id: person_id.clone(),
            source: sub.event.source.clone(),
            body,
            effective_at,
            received_at,
            actor: sub.actor.clone(),
            run_id: run_id.clone(),
            payload_dropped_at: None,
        };
        let run = RunRow {
            event_id: Some(event_id.clone()),
            created_at: received_at,
            ..RunRow::pending(
                run_id.clone(),
                person_id.clone(),
                kind.into(),
                Priority::of_event(kind),
                effective_at,
            )
        }
        .in_trace(sub.trace.as_deref());
        tx.audit_traced(
            NewAudit {
                at_ms: now,
                actor: sub.actor.clone(),
                action: AuditAction::EventReceived.into(),
                person_id: Some(person_id),
                run_id: Some(run_id.clone()),
                reason: format!(
                    "{kind} event from {}",
                    sub.event.source.as_deref().unwrap_or("api")
                ),
                correlation_id: Some(event_id.clone()),
                details: match &sub.request_id {
                    Some(r) => serde_json::json!({ "effective_at": effective_at, "request_id": r }),
                    None => serde_json::json!({ "effective_at": effective_at }),
                },
                ..Default::default()
            },
            run.trace_id(),
        );
        if let Some(r) = &sub.request_id {
            requests.push((event_id.clone(), r.clone()));
        }
        if effective_at <= now {
            // Left pending, a run due now is planned by the dispatcher once `tx` commits.
            if planning == Planning::InTransaction {
                due.push(runs.len());
            }
        } else if kind == EventType::Leave {
            // Announced but not yet effective: the person is leaving; access stays until then.
            if let Some(before) = tenure_store::get_person(tx.conn(), &run.person_id).await?
                && matches!(before.status, PersonStatus::Active | PersonStatus::PreHire)
            {
                let mut p = before.clone();
                p.status = PersonStatus::Leaving;
                if let Some(end) = sub.event.person.end_date {
                    p.end_date = Some(end);
                }
                tenure_store::upsert_person_after(tx.conn(), &p, Some(&before), now).await?;
            }
        }
        events.push(event);
        runs.push(run);
        outcomes.push(IngestOutcome::Accepted {
            event_id,
            run_id,
            replay: false,
        });
    }
    tenure_store::insert_events(tx.conn(), &events).await?;
    tenure_store::insert_event_requests(tx.conn(), &requests).await?;
    tenure_store::insert_runs(tx.conn(), &runs).await?;
    // Plan what is due now in the same transaction: its steps are claimable the moment the
    // event is acknowledged.
    let mut urgent = Vec::new();
    let mut pre =
        planning::prefetch(tx, &due.iter().map(|&i| &runs[i]).collect::<Vec<_>>()).await?;
    let mut batch = planning::Batch::default();
    for i in due {
        let (run, event) = (&runs[i], &events[i]);
        let pre = pre.remove(&run.person_id);
        let planned = planning::plan_new_run(inner, tx, run, event, pre, &mut batch, now).await?;
        if planned == planning::Planned::Yes && run.priority.is_urgent() {
            urgent.push(run.id.clone());
        }
    }
    batch.finish(inner, tx, now).await?;
    dispatch::claim_urgent_now(inner, tx, &urgent, now).await?;
    Ok(outcomes)
}

/// Each event's verdict on the people and clients it names: known to the batch itself, to the
/// configuration, or to the store (see [`tenure_core::known`]). Two lookups at most, and none
/// for a batch of hires and engagements with configured clients.
pub(crate) async fn vet(
    c: &mut tenure_store::Conn,
    config: &Config,
    events: &[&EventInput],
    batch: known::Batch,
) -> Result<Vec<Result<(), EventError>>> {
    let ask = known::unvouched(events);
    let people: Vec<&str> = ask.people.into_iter().collect();
    let clients: Vec<&str> = ask
        .clients
        .into_iter()
        .filter(|id| !config.clients.contains_key(*id))
        .collect();
    let known_people = if people.is_empty() {
        Default::default()
    } else {
        tenure_store::known_people(c, &people).await?
    };
    let known_clients = if clients.is_empty() {
        Default::default()
    } else {
        tenure_store::known_clients(c, &clients).await?
    };
    Ok(known::check(
        events,
        batch,
        |p| known_people.contains(p),
        |id| config.clients.contains_key(id) || known_clients.contains(id),
    ))
}
