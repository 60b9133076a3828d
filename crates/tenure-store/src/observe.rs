//! What operators watch: the depth and age of the step queue, and the HTTP request behind each
//! event (its `X-Request-Id`), which ties the server's log lines to the event's run and audit
//! entries.

use crate::Result;
use crate::db::{self, Conn};
use crate::queries::push_placeholders;
use std::collections::HashMap;
use tenure_core::run::Priority;

/// The steps of one priority waiting for a worker: pending, their phase started, due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDepth {
    /// The priority.
    pub priority: Priority,
    /// How many steps wait.
    pub steps: i64,
    /// Since when the longest-waiting one has been due (epoch ms).
    pub oldest_due_at: i64,
}

/// The steps due at `now` that no worker has claimed yet, per priority (only priorities with
/// such steps are listed).
pub async fn queue_depth(c: &mut Conn, now: i64) -> Result<Vec<QueueDepth>> {
    let rows = db::query(
        "SELECT priority, COUNT(*), MIN(available_at) FROM steps
         WHERE state = 'pending' AND ready = 1 AND available_at <= $1
         GROUP BY priority ORDER BY priority",
    )
    .bind(now)
    .fetch_all(c)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(QueueDepth {
                priority: crate::queries::priority(r.try_get(0)?)?,
                steps: r.try_get(1)?,
                oldest_due_at: r.try_get(2)?,
            })
        })
        .collect()
}

/// Records the request id each event came with, as `(event id, request id)` pairs.
pub async fn insert_event_requests(c: &mut Conn, rows: &[(String, String)]) -> Result<()> {
    let sqlite = c.is_sqlite();
    for chunk in rows.chunks(500) {
        let mut sql = String::from("INSERT INTO event_requests (event_id, request_id) VALUES ");
        push_placeholders(&mut sql, chunk.len(), 2, sqlite);
        let mut q = db::query(db::AssertSqlSafe(sql));
        for (event, request) in chunk {
            q = q.bind(event.clone()).bind(request.clone());
        }
        q.execute(&mut *c).await?;
    }
    Ok(())
}

/// The request ids of those of `events` that came with one, by event id.
pub async fn request_ids_of_events(
    c: &mut Conn,
    events: &[&str],
) -> Result<HashMap<String, String>> {
    pairs_by_id(
        c,
        "SELECT event_id, request_id FROM event_requests WHERE event_id IN ",
        events,
    )
    .await
}

/// The stored `traceparent` of each of these runs that has one (see [`crate::trace`]).
pub async fn run_traceparents(c: &mut Conn, runs: &[&str]) -> Result<HashMap<String, String>> {
    pairs_by_id(
        c,
        "SELECT id, traceparent FROM runs WHERE traceparent IS NOT NULL AND id IN ",
        runs,
    )
    .await
}

/// Two text columns, key and value, of the rows whose key is one of `ids` (`head` ends in
/// `IN `), 500 ids a statement.
async fn pairs_by_id(
    c: &mut Conn,
    head: &'static str,
    ids: &[&str],
) -> Result<HashMap<String, String>> {
    let sqlite = c.is_sqlite();
    let mut out = HashMap::new();
    for chunk in ids.chunks(500) {
        let mut sql = String::from(head);
        push_placeholders(&mut sql, 1, chunk.len(), sqlite);
        let mut q = db::query(db::AssertSqlSafe(sql));
        for id in chunk {
            q = q.bind(id.to_string());
        }
        for r in q.fetch_all(&mut *c).await? {
            out.insert(r.try_get(0)?, r.try_get(1)?);
        }
    }
    Ok(out)
}

/// Refreshes the query planner's statistics (`ANALYZE`, on either backend): after a bulk load,
/// before autovacuum (PostgreSQL) has seen it, the planner would misjudge what an index saves.
pub async fn analyze(c: &mut Conn) -> Result<()> {
    db::query("ANALYZE").execute(&mut *c).await?;
    Ok(())
}

/// Single-row transactions per second `store` commits, each as durable as the engine's
/// (SQLite: `synchronous = FULL`, one fsync each) and through the same write path, over
/// `span` (at most 20,000 commits): what the disk under the database allows, which `tenure
/// bench` judges the engine against. The scratch table is dropped after.
pub async fn commit_rate(store: &crate::Store, span: std::time::Duration) -> Result<f64> {
    let mut tx = store.begin().await?;
    db::query("CREATE TABLE bench_commits (n BIGINT NOT NULL)")
        .execute(tx.conn())
        .await?;
    tx.commit().await?;
    let started = std::time::Instant::now();
    let mut n: i64 = 0;
    while n < 20_000 && started.elapsed() < span {
        let mut tx = store.begin().await?;
        db::query("INSERT INTO bench_commits (n) VALUES ($1)")
            .bind(n)
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
        n += 1;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    let mut tx = store.begin().await?;
    db::query("DROP TABLE bench_commits")
        .execute(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(rate)
}

/// The tables the engine adds rows to fastest, read by statements whose plan depends on how
/// many rows they hold (by run, by person, by phase).
const GROWING: &[&str] = &[
    "steps",
    "runs",
    "events",
    "grants",
    "accounts",
    "audit_log",
    "people",
    "people_search_pending",
];

/// On PostgreSQL, refreshes the planner's statistics (`ANALYZE`) of the engine's fast-growing
/// tables that changed by a fifth or more, and by 1,000 rows or more, since they were last
/// analyzed; returns which. Autovacuum does the same, but looks once a minute and waits for a
/// tenth of a table to change: on a database filling at thousands of rows a second (a first
/// import, `tenure bench`), the planner meanwhile thinks `steps` small and reads all of it for
/// each lookup by run (30-40 ms a statement at 100,000 steps, where the index takes under
/// one). Nothing to do on SQLite, whose plans here do not depend on statistics.
pub async fn refresh_planner_statistics(store: &crate::Store) -> Result<Vec<&'static str>> {
    if store.backend() != crate::Backend::Postgres {
        return Ok(Vec::new());
    }
    // Looked at with a reader: most looks find nothing to do, and need no write transaction.
    let mut c = store.reader().await?;
    let changed: Vec<String> = db::query(
        "SELECT relname::TEXT FROM pg_stat_user_tables
          WHERE schemaname = current_schema()
            AND n_mod_since_analyze >= 1000 AND n_mod_since_analyze * 5 >= n_live_tup",
    )
    .fetch_all(&mut c)
    .await?
    .iter()
    .map(|r| r.try_get::<String, _>(0))
    .collect::<std::result::Result<_, _>>()?;
    let stale: Vec<&'static str> = GROWING
        .iter()
        .copied()
        .filter(|t| changed.iter().any(|c| c == t))
        .collect();
    drop(c);
    if stale.is_empty() {
        return Ok(stale);
    }
    let mut tx = store.begin().await?;
    for table in &stale {
        // The name is one of `GROWING`'s, never input.
        db::query(db::AssertSqlSafe(format!("ANALYZE {table}")))
            .execute(tx.conn())
            .await?;
    }
    tx.commit().await?;
    Ok(stale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{StepRow, Store};
    use tenure_core::planner::Action;
    use tenure_core::run::StepState;

    /// A scratch store: PostgreSQL when `TENURE_TEST_DATABASE_URL` is set, else SQLite in a
    /// folder removed when the guard drops.
    async fn scratch() -> (Store, Scratch) {
        let name = format!("tenure_observe_{}", uuid::Uuid::new_v4().simple());
        match std::env::var("TENURE_TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => {
                let url = crate::create_scratch_database(&url, &name).await.unwrap();
                (Store::connect(&url).await.unwrap(), Scratch(None))
            }
            _ => {
                let dir = std::env::temp_dir().join(name);
                std::fs::create_dir_all(&dir).unwrap();
                let store = Store::open_sqlite(&dir.join("t.db")).await.unwrap();
                (store, Scratch(Some(dir)))
            }
        }
    }

    struct Scratch(Option<std::path::PathBuf>);

    impl Drop for Scratch {
        fn drop(&mut self) {
            if let Some(dir) = &self.0 {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }

    fn step(
        idx: i64,
        priority: Priority,
        ready: bool,
        state: StepState,
        available_at: i64,
    ) -> StepRow {
        StepRow {
            id: format!("s{idx}"),
            run_id: "r1".into(),
            idx,
            phase: 0,
            ready,
            state,
            priority,
            available_at,
            person_id: "p1".into(),
            system: "directory".into(),
            action: Action::CreateAccount,
            entitlement: None,
            source: None,
            source_ref: None,
            op_id: format!("op{idx}"),
            attempts: 0,
            last_error: None,
            compensation_of: None,
            lease_until: None,
            started_at: None,
            finished_at: None,
            maybe_applied: false,
        }
    }

    /// A table filled fast has its planner statistics refreshed once, not again until it
    /// changes as much again; SQLite has none to refresh.
    #[tokio::test]
    async fn a_table_filled_fast_has_its_planner_statistics_refreshed() {
        let (store, _dir) = scratch().await;
        if store.backend() != crate::Backend::Postgres {
            assert!(refresh_planner_statistics(&store).await.unwrap().is_empty());
            return;
        }
        let mut tx = store.begin().await.unwrap();
        db::query(
            "INSERT INTO people_search_pending (person_id, generation)
             SELECT 'p' || g, 1 FROM generate_series(1, 2000) g",
        )
        .execute(tx.conn())
        .await
        .unwrap();
        // The server counts the change once this session goes idle after the commit.
        db::query("SELECT pg_stat_force_next_flush()")
            .execute(tx.conn())
            .await
            .unwrap();
        tx.commit().await.unwrap();
        // The count reaches the statistics views a moment after the commit, on the server's
        // side: asked again until it has, for at most five seconds.
        let mut refreshed = Vec::new();
        for _ in 0..100 {
            refreshed = refresh_planner_statistics(&store).await.unwrap();
            if !refreshed.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(refreshed, ["people_search_pending"]);
        let mut c = store.reader().await.unwrap();
        let analyzed: bool = db::query(
            "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables
              WHERE schemaname = current_schema() AND relname = 'people_search_pending'",
        )
        .fetch_one(&mut c)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
        assert!(analyzed);
        assert!(
            refresh_planner_statistics(&store).await.unwrap().is_empty(),
            "nothing changed since"
        );
    }

    /// Only steps a worker could claim now count: pending, their phase started, due.
    #[tokio::test]
    async fn the_queue_counts_due_unclaimed_steps_per_priority_with_the_oldest() {
        let (store, _dir) = scratch().await;
        let mut tx = store.begin().await.unwrap();
        let steps = [
            step(0, Priority::Urgent, true, StepState::Pending, 400),
            step(1, Priority::Urgent, true, StepState::Pending, 100),
            step(2, Priority::Normal, true, StepState::Pending, 50),
            step(3, Priority::Normal, true, StepState::Pending, 10_000), // a retry, not yet due
            step(4, Priority::Normal, false, StepState::Pending, 10), // its phase has not started
            step(5, Priority::Urgent, true, StepState::Running, 10),  // claimed
            step(6, Priority::Normal, true, StepState::Succeeded, 10),
        ];
        crate::insert_steps(tx.conn(), &steps).await.unwrap();
        tx.commit().await.unwrap();
        let mut c = store.reader().await.unwrap();
        assert_eq!(
            queue_depth(&mut c, 1_000).await.unwrap(),
            vec![
                QueueDepth {
                    priority: Priority::Urgent,
                    steps: 2,
                    oldest_due_at: 100
                },
                QueueDepth {
                    priority: Priority::Normal,
                    steps: 1,
                    oldest_due_at: 50
                },
            ]
        );
        assert_eq!(queue_depth(&mut c, 20).await.unwrap(), vec![]);
    }

    #[tokio::test]
    async fn an_events_request_id_is_found_by_the_event() {
        let (store, _dir) = scratch().await;
        let mut tx = store.begin().await.unwrap();
        insert_event_requests(
            tx.conn(),
            &[("e1".into(), "req-1".into()), ("e2".into(), "req-2".into())],
        )
        .await
        .unwrap();
        insert_event_requests(tx.conn(), &[]).await.unwrap();
        tx.commit().await.unwrap();
        let mut c = store.reader().await.unwrap();
        let found = request_ids_of_events(&mut c, &["e2", "e3"]).await.unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found["e2"], "req-2");
    }

    /// The commit rate is measured and leaves nothing behind (it can run again).
    #[tokio::test]
    async fn the_commit_rate_is_measured_and_its_table_dropped() {
        let (store, _guard) = scratch().await;
        for _ in 0..2 {
            let rate = commit_rate(&store, std::time::Duration::from_millis(50))
                .await
                .unwrap();
            assert!(rate > 0.0, "{rate}");
        }
        store.close().await;
    }
}
