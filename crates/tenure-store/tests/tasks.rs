//! Tasks follow their steps: cancelling a run's waiting steps withdraws exactly their open
//! tasks, never those of a step whose call is in flight. On SQLite, and on PostgreSQL with
//! `TENURE_TEST_DATABASE_URL`.

mod support;

use tenure_core::planner::Action;
use tenure_core::run::{Priority, StepState};
use tenure_store::{NewTask, StepRow, Store, TaskKind, TaskState};

fn step(run: &str, idx: i64, state: StepState) -> StepRow {
    StepRow {
        id: format!("{run}-s{idx}"),
        run_id: run.into(),
        idx,
        phase: 0,
        ready: true,
        state,
        priority: Priority::Normal,
        available_at: 0,
        person_id: "p".into(),
        system: "desk".into(),
        action: Action::CreateAccount,
        entitlement: None,
        source: None,
        source_ref: None,
        op_id: format!("{run}-op{idx}"),
        attempts: 0,
        last_error: None,
        compensation_of: None,
        lease_until: None,
        started_at: None,
        finished_at: None,
        maybe_applied: false,
    }
}

async fn check(store: Store) {
    let run = format!("r{}", uuid::Uuid::new_v4().simple());
    let steps = [
        step(&run, 0, StepState::Pending),
        step(&run, 1, StepState::Running),
    ];
    let mut tx = store.begin().await.unwrap();
    tenure_store::insert_steps(tx.conn(), &steps).await.unwrap();
    for s in &steps {
        tenure_store::open_task(
            tx.conn(),
            &NewTask {
                id: s.op_id.clone(),
                kind: TaskKind::Manual,
                system: s.system.clone(),
                team: Some("it".into()),
                person_id: s.person_id.clone(),
                action: s.action.to_string(),
                entitlement: None,
                title: "make the account".into(),
                created_at: 1,
                due_at: None,
            },
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();

    let mut tx = store.begin().await.unwrap();
    let cancelled = tenure_store::cancel_pending_steps(tx.conn(), &run, 2)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        cancelled.iter().map(|s| s.idx).collect::<Vec<_>>(),
        [0],
        "only the step waiting"
    );
    let mut c = store.reader().await.unwrap();
    let state = |t: Option<tenure_store::TaskRow>| t.unwrap().state;
    let waiting = tenure_store::get_task(&mut c, &steps[0].op_id)
        .await
        .unwrap();
    let in_flight = tenure_store::get_task(&mut c, &steps[1].op_id)
        .await
        .unwrap();
    assert_eq!(state(waiting), TaskState::Cancelled);
    assert_eq!(state(in_flight), TaskState::Open, "its call decides");
}

#[tokio::test]
async fn cancelling_waiting_steps_withdraws_exactly_their_tasks() {
    support::on_each_database("tasks", check).await;
}
