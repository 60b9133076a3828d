//! Tasks: work a step waits on outside tenure (a manual task for a team, or a webhook
//! receiver's asynchronous completion), keyed by the step's operation id.

use crate::db::{self, Conn, Row};
use crate::{Result, StoreError};
use serde::Serialize;

/// What a task is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// A person of a team does it by hand.
    Manual,
    /// A webhook receiver reports it done.
    Callback,
}

impl TaskKind {
    fn as_str(self) -> &'static str {
        match self {
            TaskKind::Manual => "manual",
            TaskKind::Callback => "callback",
        }
    }
}

/// Where a task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Waiting.
    Open,
    /// Done: the step succeeds.
    Done,
    /// Could not be done: the step fails.
    Failed,
    /// Withdrawn: the step waiting on it was cancelled (its run was cancelled or superseded).
    Cancelled,
}

impl TaskState {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Open => "open",
            TaskState::Done => "done",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> Result<TaskState> {
        match s {
            "open" => Ok(TaskState::Open),
            "done" => Ok(TaskState::Done),
            "failed" => Ok(TaskState::Failed),
            "cancelled" => Ok(TaskState::Cancelled),
            other => Err(StoreError::Corrupt(format!("task state `{other}`"))),
        }
    }
}

/// A task as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRow {
    /// The step's operation id.
    pub id: String,
    /// Manual or callback.
    pub kind: TaskKind,
    /// The system the step is for.
    pub system: String,
    /// The team that does it (manual tasks).
    pub team: Option<String>,
    /// Whose access.
    pub person_id: String,
    /// The step's action.
    pub action: String,
    /// The entitlement (grant and revoke).
    pub entitlement: Option<String>,
    /// What to do, in words.
    pub title: String,
    /// Open, done or failed.
    pub state: TaskState,
    /// Why it failed, or a note on completion.
    pub message: Option<String>,
    /// When it was opened (epoch ms).
    pub created_at: i64,
    /// When it should be done by (epoch ms), if it has an SLA.
    pub due_at: Option<i64>,
    /// When it was completed or failed.
    pub finished_at: Option<i64>,
    /// Who completed or failed it.
    pub finished_by: Option<String>,
}

impl TaskRow {
    /// Whether it is still open after its due time.
    pub fn is_overdue(&self, now_ms: i64) -> bool {
        self.state == TaskState::Open && self.due_at.is_some_and(|d| d < now_ms)
    }
}

/// A task to open.
#[derive(Debug, Clone)]
pub struct NewTask {
    /// The step's operation id.
    pub id: String,
    /// Manual or callback.
    pub kind: TaskKind,
    /// The system.
    pub system: String,
    /// The team (manual tasks).
    pub team: Option<String>,
    /// Whose access.
    pub person_id: String,
    /// The step's action.
    pub action: String,
    /// The entitlement.
    pub entitlement: Option<String>,
    /// What to do.
    pub title: String,
    /// Now (epoch ms).
    pub created_at: i64,
    /// Due time (epoch ms).
    pub due_at: Option<i64>,
}

const COLUMNS: &str = "id, kind, system, team, person_id, action, entitlement, title, state, \
                       message, created_at, due_at, finished_at, finished_by";

fn row(r: &Row) -> Result<TaskRow> {
    let kind: String = r.try_get("kind")?;
    Ok(TaskRow {
        id: r.try_get("id")?,
        kind: match kind.as_str() {
            "manual" => TaskKind::Manual,
            "callback" => TaskKind::Callback,
            other => return Err(StoreError::Corrupt(format!("task kind `{other}`"))),
        },
        system: r.try_get("system")?,
        team: r.try_get("team")?,
        person_id: r.try_get("person_id")?,
        action: r.try_get("action")?,
        entitlement: r.try_get("entitlement")?,
        title: r.try_get("title")?,
        state: TaskState::parse(&r.try_get::<String, _>("state")?)?,
        message: r.try_get("message")?,
        created_at: r.try_get("created_at")?,
        due_at: r.try_get("due_at")?,
        finished_at: r.try_get("finished_at")?,
        finished_by: r.try_get("finished_by")?,
    })
}

/// Opens the task unless one with its id exists; returns the stored task and whether it was
/// opened now.
pub async fn open_task(c: &mut Conn, t: &NewTask) -> Result<(TaskRow, bool)> {
    let inserted = db::query(
        "INSERT INTO tasks (id, kind, system, team, person_id, action, entitlement, title, state,
                            created_at, due_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'open', $9, $10)
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(t.id.clone())
    .bind(t.kind.as_str())
    .bind(t.system.clone())
    .bind(t.team.clone())
    .bind(t.person_id.clone())
    .bind(t.action.clone())
    .bind(t.entitlement.clone())
    .bind(t.title.clone())
    .bind(t.created_at)
    .bind(t.due_at)
    .execute(&mut *c)
    .await?
    .rows_affected()
        == 1;
    let task = get_task(c, &t.id)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("task {} vanished", t.id)))?;
    Ok((task, inserted))
}

/// The task with this id.
pub async fn get_task(c: &mut Conn, id: &str) -> Result<Option<TaskRow>> {
    let sql = format!("SELECT {COLUMNS} FROM tasks WHERE id = $1");
    db::query(db::AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_optional(&mut *c)
        .await?
        .map(|r| row(&r))
        .transpose()
}

/// Tasks in a state (all states when `None`), optionally of one team, oldest first.
pub async fn list_tasks(
    c: &mut Conn,
    state: Option<TaskState>,
    team: Option<&str>,
    limit: i64,
) -> Result<Vec<TaskRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM tasks
          WHERE ($1 = '' OR state = $1) AND ($2 = '' OR team = $2)
          ORDER BY created_at, id LIMIT $3"
    );
    db::query(db::AssertSqlSafe(sql))
        .bind(state.map_or("", TaskState::as_str))
        .bind(team.unwrap_or("").to_string())
        .bind(limit)
        .fetch_all(&mut *c)
        .await?
        .iter()
        .map(row)
        .collect()
}

/// Finishes an open task as done or failed and makes its waiting step due now. Returns the
/// task as it was before (so the caller can tell "no such task" from "already finished"),
/// and whether this call finished it.
pub async fn finish_task(
    c: &mut Conn,
    id: &str,
    state: TaskState,
    message: Option<&str>,
    actor: &str,
    now: i64,
) -> Result<Option<(TaskRow, bool)>> {
    let Some(before) = get_task(c, id).await? else {
        return Ok(None);
    };
    let changed = db::query(
        "UPDATE tasks SET state = $1, message = $2, finished_at = $3, finished_by = $4
          WHERE id = $5 AND state = 'open'",
    )
    .bind(state.as_str())
    .bind(message.map(str::to_string))
    .bind(now)
    .bind(actor.to_string())
    .bind(id.to_string())
    .execute(&mut *c)
    .await?
    .rows_affected()
        == 1;
    if changed {
        db::query("UPDATE steps SET available_at = $1 WHERE op_id = $2 AND state = 'pending'")
            .bind(now)
            .bind(id.to_string())
            .execute(&mut *c)
            .await?;
    }
    Ok(Some((before, changed)))
}

/// Opens again the failed tasks of a run's failed steps (an operator retries the run: the
/// team gets the task back); with `compensation_only`, of its failed compensation steps only.
/// Call before the steps are reset.
pub async fn reopen_failed_tasks_of_run(
    c: &mut Conn,
    run_id: &str,
    compensation_only: bool,
) -> Result<u64> {
    Ok(db::query(
        "UPDATE tasks SET state = 'open', message = NULL, finished_at = NULL, finished_by = NULL
          WHERE state = 'failed'
            AND id IN (SELECT op_id FROM steps WHERE run_id = $1 AND state = 'failed'
                          AND (compensation_of IS NOT NULL OR $2 = 0))",
    )
    .bind(run_id.to_string())
    .bind(compensation_only as i64)
    .execute(&mut *c)
    .await?
    .rows_affected())
}

/// The ids of a run's open tasks (a task's id is its step's operation id).
pub async fn open_task_ids_of_run(
    c: &mut Conn,
    run_id: &str,
) -> Result<std::collections::HashSet<String>> {
    let rows = db::query(
        "SELECT id FROM tasks WHERE state = 'open' AND id IN (SELECT op_id FROM steps WHERE run_id = $1)",
    )
    .bind(run_id.to_string())
    .fetch_all(&mut *c)
    .await?;
    rows.iter().map(|r| r.try_get::<String, _>(0)).collect()
}

/// Withdraws the open tasks of steps just cancelled (tasks are keyed by the step's operation
/// id), so nobody works on them; a step called again (it will not be) would find them
/// cancelled.
pub async fn cancel_open_tasks(c: &mut Conn, op_ids: &[String], now: i64) -> Result<u64> {
    let sqlite = c.is_sqlite();
    let mut cancelled = 0;
    for chunk in op_ids.chunks(500) {
        let mut sql = String::from(
            "UPDATE tasks SET state = 'cancelled', message = 'the step was cancelled',
                    finished_at = $1, finished_by = 'engine'
              WHERE state = 'open' AND id IN ",
        );
        crate::queries::in_list(&mut sql, chunk.len(), sqlite, 2);
        let mut q = db::query(db::AssertSqlSafe(sql)).bind(now);
        for id in chunk {
            q = q.bind(id.clone());
        }
        cancelled += q.execute(&mut *c).await?.rows_affected();
    }
    Ok(cancelled)
}
