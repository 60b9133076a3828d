//! Connector calls for claimed steps: each step's call, behind its system's breaker and
//! permits, its outcome sent to the completer.

use crate::context::Inner;
use crate::error::Result;
use crate::messages::{CallResult, Held, Outcome};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tenure_connectors::{ConnectorError, Op};
use tenure_core::Person;
use tenure_core::breaker::Transition;
use tenure_core::run::Priority;
use tenure_store::StepRow;
use tracing::Instrument;

/// Hands claimed steps to connector calls, each outcome to the completer's lane for its
/// priority.
pub(crate) async fn dispatch(inner: &Arc<Inner>, steps: Vec<StepRow>) {
    let n_urgent = steps.iter().filter(|s| s.priority.is_urgent()).count();
    inner.urgent_in_flight.fetch_add(n_urgent, Ordering::AcqRel);
    inner
        .in_flight
        .fetch_add(steps.len() - n_urgent, Ordering::AcqRel);
    {
        let mut held = inner.held.lock().expect("held lock");
        for s in &steps {
            if let Some(lease) = s.lease_until {
                held.insert(
                    s.id.clone(),
                    Held {
                        claimed: lease,
                        current: lease,
                        priority: s.priority,
                    },
                );
            }
        }
    }
    let people = match load_people(inner, &steps).await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "reading people for claimed steps failed");
            HashMap::new()
        }
    };
    let traces = if tenure_store::trace::enabled() {
        load_traces(inner, &steps).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "reading the runs' trace context failed; the steps start traces of their own");
            HashMap::new()
        })
    } else {
        HashMap::new()
    };
    let mut urgent = Vec::new();
    for step in steps {
        let inner = inner.clone();
        let person = people
            .get(&step.person_id)
            .cloned()
            .or_else(|| step.is_orphan().then(|| orphan_subject(&step.person_id)));
        let span = step_span(&step, traces.get(&step.run_id).map(String::as_str));
        let is_urgent = step.priority.is_urgent();
        let task = async move {
            let result = call(&inner, &step, person).instrument(span.clone()).await;
            // The completer lives as long as the engine; a closed channel means the process
            // is going down and the lease will hand the step back.
            let lane = &inner.lane(step.priority).outcomes;
            let _ = lane.send(Outcome { step, result, span }).await;
        };
        if is_urgent {
            urgent.push(task);
        } else {
            tokio::spawn(task);
        }
    }
    // A leaver's calls claimed together go out together: one task polls them all, so they
    // reach their systems at once, and the outcomes that come back at once reach the
    // completer at once, to be recorded in one transaction rather than one after another.
    // They run on the store's urgent thread when it has one.
    if !urgent.is_empty() {
        inner
            .store
            .spawn(Priority::Urgent, futures_util::future::join_all(urgent));
    }
}

/// Claims, inside `tx`, the ready steps of these leaver runs and dispatches them once `tx`
/// commits: a leave moves from phase to phase without waiting for the dispatcher.
pub(crate) async fn claim_urgent_now(
    inner: &Arc<Inner>,
    tx: &mut tenure_store::Tx,
    runs: &[String],
    now: i64,
) -> Result<()> {
    if runs.is_empty() || *inner.shutdown.borrow() {
        return Ok(());
    }
    let steps =
        tenure_store::claim_ready_steps_of_runs(tx.conn(), runs, now, now + inner.options.lease_ms)
            .await?;
    if !steps.is_empty() {
        let inner = inner.clone();
        tx.after_commit(move || {
            let store = inner.store.clone();
            store.spawn(
                Priority::Urgent,
                async move { dispatch(&inner, steps).await },
            );
        });
    }
    Ok(())
}

/// The span of a step's call, a child of its run's (`traceparent`): what the connector sends
/// on as the call's own `traceparent`.
fn step_span(step: &StepRow, traceparent: Option<&str>) -> tracing::Span {
    let span = tracing::info_span!(
        target: "tenure::step",
        "step",
        run_id = %step.run_id,
        step_id = %step.id,
        system = %step.system,
        action = step.action.as_str(),
        attempt = step.attempts + 1,
        trace_id = tracing::field::Empty,
    );
    tenure_store::trace::set_parent(&span, traceparent);
    tenure_store::trace::record_trace_id(&span);
    span
}

async fn load_traces(inner: &Inner, steps: &[StepRow]) -> Result<HashMap<String, String>> {
    let mut ids: Vec<&str> = steps.iter().map(|s| s.run_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut c = inner.store.reader().await?;
    Ok(tenure_store::run_traceparents(&mut c, &ids).await?)
}

pub(crate) async fn load_people(
    inner: &Inner,
    steps: &[StepRow],
) -> Result<HashMap<String, Person>> {
    let mut ids: Vec<String> = steps.iter().map(|s| s.person_id.clone()).collect();
    ids.sort();
    ids.dedup();
    let mut c = inner.store.reader().await?;
    Ok(tenure_store::people_by_ids(&mut c, &ids)
        .await?
        .into_iter()
        .map(|p| (p.id.clone(), p))
        .collect())
}

/// Who a call on an account no person holds (an orphan) is made for: the id the connector
/// reaches the account through, and nothing else known.
fn orphan_subject(id: &str) -> Person {
    Person {
        status: tenure_core::PersonStatus::Terminated,
        ..Person::new(id, id, "")
    }
}

pub(crate) async fn call(inner: &Inner, step: &StepRow, person: Option<Person>) -> CallResult {
    let Some(handle) = inner.systems.get(&step.system) else {
        return CallResult::Called(Err(ConnectorError::Permanent(format!(
            "system `{}` is no longer configured",
            step.system
        ))));
    };
    if let Err(until) = handle
        .breaker
        .lock()
        .expect("breaker lock")
        .try_acquire(inner.clock.now_ms())
    {
        return CallResult::Deferred(until);
    }
    // A leaver's step is handed the system's next free call before the hires waiting.
    let _permit = handle.permits.take(step.priority).await;
    let Some(person) = person else {
        // Either the person is gone or reading them failed; a retry reads again.
        return CallResult::Called(Err(ConnectorError::retryable(format!(
            "person `{}` could not be read",
            step.person_id
        ))));
    };
    let rules = inner.rules();
    let entitlement = match &step.entitlement {
        Some(id) => match rules.config.entitlements.get(id) {
            Some(e) => Some(e),
            None => {
                return CallResult::Called(Err(ConnectorError::Permanent(format!(
                    "entitlement `{id}` is no longer in the catalog"
                ))));
            }
        },
        None => None,
    };
    let op = Op {
        id: step.op_id.clone(),
        attempt: step.attempts as u32 + 1,
        priority: step.priority,
    };
    let started = Instant::now();
    let result = tenure_connectors::execute(
        handle.connector.as_ref(),
        &op,
        step.action,
        &person,
        entitlement,
    )
    .await;
    metrics::histogram!("tenure_connector_call_seconds", "system" => step.system.clone())
        .record(started.elapsed().as_secs_f64());
    let now = inner.clock.now_ms();
    let (circuit, transition) = {
        let mut breaker = handle.breaker.lock().expect("breaker lock");
        let transition = match &result {
            Err(e) if e.is_retryable() => breaker.on_failure(now),
            // Waiting: the system (or its task queue) answered.
            _ => breaker.on_success(), // the system answered, even if it said no
        };
        (breaker.state(), transition)
    };
    if let Some(t) = transition {
        match t {
            Transition::Opened => {
                tracing::warn!(system = %step.system, "circuit opened: the system failed call after call")
            }
            Transition::Closed => {
                tracing::info!(system = %step.system, "circuit closed: the system answers again");
                // What happened on the system while it could not be reached is looked at again.
                inner
                    .circuits_closed
                    .lock()
                    .expect("circuits lock")
                    .push(step.system.clone());
                inner.reconcile_wake.notify_one();
            }
        }
        metrics::counter!("tenure_circuit_transitions_total", "system" => step.system.clone(), "transition" => t.as_str())
            .increment(1);
    }
    // The error rate counts every failed call, permanent ones too: a system that refuses most
    // of what it is asked is not healthy, even if it answers.
    let failure = match &result {
        Err(ConnectorError::Waiting { .. }) | Ok(()) => None,
        Err(e) => Some(e.to_string()),
    };
    handle.health.lock().expect("health lock").on_call(
        now,
        failure.as_deref().map_or(Ok(()), Err),
        circuit,
    );
    CallResult::Called(result)
}
