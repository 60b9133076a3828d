//! Queries for the `timers` table: durable timers (read into the core's typed `Timer`) and the
//! notification outbox's webhook deliveries, which share it. Like `queries`, every function
//! takes `&mut Conn`.

use crate::db::{self, Conn, Row};
use crate::queries::corrupt;
use crate::{Backend, Result};
use tenure_core::timer::{Timer, TimerError, TimerKind, TimerState};

/// The `kind` of webhook deliveries in the `timers` table: claimed with a lease and delivered
/// outside any transaction, unlike timers, which fire inside the transaction that claims them.
const WEBHOOK_KIND: &str = "webhook";

/// A durable timer as stored.
#[derive(Debug, Clone)]
pub struct TimerRow {
    /// Row id.
    pub id: String,
    /// What it is about (unique per kind).
    pub subject: String,
    /// When it is due (epoch ms).
    pub due_at: i64,
    /// The timer, or why its stored kind or payload cannot be read.
    pub timer: std::result::Result<Timer, TimerError>,
}

const TIMER_COLS: &str = "id, kind, subject, due_at, payload";

fn timer_row(r: &Row) -> Result<TimerRow> {
    let kind: String = r.try_get("kind")?;
    let subject: String = r.try_get("subject")?;
    let payload: String = r.try_get("payload")?;
    Ok(TimerRow {
        id: r.try_get("id")?,
        timer: Timer::from_stored(&kind, &subject, &payload),
        subject,
        due_at: r.try_get("due_at")?,
    })
}

/// Schedules `timer` at `due_at`, or moves the one of its kind and subject there.
pub async fn schedule_timer(c: &mut Conn, timer: &Timer, due_at: i64, now: i64) -> Result<()> {
    let payload = timer.payload();
    upsert_timer(
        c,
        timer.kind().as_str(),
        &timer.subject(),
        due_at,
        &payload,
        now,
    )
    .await
}

async fn upsert_timer(
    c: &mut Conn,
    kind: &str,
    subject: &str,
    due_at: i64,
    payload: &serde_json::Value,
    now: i64,
) -> Result<()> {
    db::query(
        "INSERT INTO timers (id, kind, subject, due_at, payload, state, attempts, created_at)
         VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6)
         ON CONFLICT (kind, subject) DO UPDATE SET due_at = excluded.due_at, payload = excluded.payload,
           state = 'pending', attempts = 0, lease_until = NULL, last_error = NULL, fired_at = NULL",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(kind.to_string())
    .bind(subject.to_string())
    .bind(due_at)
    .bind(payload.to_string())
    .bind(now)
    .execute(c)
    .await?;
    Ok(())
}

/// Cancels the pending timer of `kind` for `subject`, if any.
pub async fn cancel_timer(c: &mut Conn, kind: TimerKind, subject: &str) -> Result<()> {
    db::query(
        "UPDATE timers SET state = 'cancelled' WHERE kind = $1 AND subject = $2 AND state = 'pending'",
    )
    .bind(kind.as_str())
    .bind(subject.to_string())
    .execute(c)
    .await?;
    Ok(())
}

/// Claims up to `limit` due timers (webhook deliveries excepted) and marks them fired, inside
/// the caller's transaction: the handler's effects commit with the mark, so a timer fires once.
/// On PostgreSQL, `SKIP LOCKED` lets several instances fire side by side. A row that cannot be
/// read comes back with the reason; the caller keeps it with [`set_timer_unreadable`].
pub async fn claim_due_timers(
    c: &mut Conn,
    backend: Backend,
    now: i64,
    limit: i64,
) -> Result<Vec<TimerRow>> {
    let lock = if backend == Backend::Postgres {
        "FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    let sql = format!(
        "UPDATE timers SET state = 'fired', fired_at = $1
         WHERE id IN (SELECT id FROM timers WHERE state = 'pending' AND due_at <= $1 AND kind <> '{WEBHOOK_KIND}'
                      ORDER BY due_at LIMIT $2 {lock})
         RETURNING {TIMER_COLS}"
    );
    let rows = db::query(db::AssertSqlSafe(sql))
        .bind(now)
        .bind(limit)
        .fetch_all(c)
        .await?;
    let mut out: Vec<TimerRow> = rows.iter().map(timer_row).collect::<Result<_>>()?;
    out.sort_by_key(|t| t.due_at);
    Ok(out)
}

/// Keeps a claimed timer that cannot be read as `unreadable`, with the reason, instead of
/// fired: it is never fired, and stays for an operator to see.
pub async fn set_timer_unreadable(c: &mut Conn, id: &str, reason: &str) -> Result<()> {
    db::query("UPDATE timers SET state = $1, last_error = $2, fired_at = NULL WHERE id = $3")
        .bind(TimerState::Unreadable.as_str())
        .bind(reason.to_string())
        .bind(id.to_string())
        .execute(c)
        .await?;
    Ok(())
}

/// A webhook delivery of the notification outbox.
#[derive(Debug, Clone)]
pub struct DeliveryRow {
    /// Row id.
    pub id: String,
    /// The message id, sent as `webhook-id`: the same on every attempt.
    pub message_id: String,
    /// When it is due (epoch ms).
    pub due_at: i64,
    /// The body to send.
    pub body: serde_json::Value,
    /// Tries so far.
    pub attempts: i64,
}

const DELIVERY_COLS: &str = "id, subject, due_at, payload, attempts";

fn delivery_row(r: &Row) -> Result<DeliveryRow> {
    Ok(DeliveryRow {
        id: r.try_get("id")?,
        message_id: r.try_get("subject")?,
        due_at: r.try_get("due_at")?,
        body: serde_json::from_str(&r.try_get::<String, _>("payload")?).map_err(corrupt)?,
        attempts: r.try_get("attempts")?,
    })
}

/// Queues the webhook message `message_id` with `body`, due at `due_at`.
pub async fn queue_delivery(
    c: &mut Conn,
    message_id: &str,
    body: &serde_json::Value,
    due_at: i64,
    now: i64,
) -> Result<()> {
    upsert_timer(c, WEBHOOK_KIND, message_id, due_at, body, now).await
}

/// Claims due webhook deliveries (and those whose lease ran out: the process died mid-call),
/// leasing them until `lease_until` and counting the attempt.
pub async fn claim_deliveries(
    c: &mut Conn,
    backend: Backend,
    now: i64,
    lease_until: i64,
    limit: i64,
) -> Result<Vec<DeliveryRow>> {
    let lock = if backend == Backend::Postgres {
        "FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    let sql = format!(
        "UPDATE timers SET state = 'running', lease_until = $1, attempts = attempts + 1
         WHERE id IN (SELECT id FROM timers WHERE kind = '{WEBHOOK_KIND}'
                        AND ((state = 'pending' AND due_at <= $2) OR (state = 'running' AND lease_until < $2))
                      ORDER BY due_at LIMIT $3 {lock})
         RETURNING {DELIVERY_COLS}"
    );
    let rows = db::query(db::AssertSqlSafe(sql))
        .bind(lease_until)
        .bind(now)
        .bind(limit)
        .fetch_all(c)
        .await?;
    rows.iter().map(delivery_row).collect()
}

/// How a delivery attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryEnd {
    /// The receiver took it.
    Delivered,
    /// It failed; try again at this time (epoch ms).
    RetryAt(i64),
    /// It failed its last attempt.
    Dead,
}

/// Records a delivery attempt's end (the error, when it failed).
pub async fn finish_delivery(
    c: &mut Conn,
    id: &str,
    end: DeliveryEnd,
    error: Option<&str>,
    now: i64,
) -> Result<()> {
    let (state, retry_at) = match end {
        DeliveryEnd::Delivered => (TimerState::Fired, None),
        DeliveryEnd::RetryAt(at) => (TimerState::Pending, Some(at)),
        DeliveryEnd::Dead => (TimerState::Dead, None),
    };
    db::query(
        "UPDATE timers SET state = $1, due_at = COALESCE($2, due_at), last_error = $3, lease_until = NULL,
           fired_at = CASE WHEN $1 = 'fired' THEN $4 ELSE fired_at END
         WHERE id = $5",
    )
    .bind(state.as_str())
    .bind(retry_at)
    .bind(error.map(str::to_string))
    .bind(now)
    .bind(id.to_string())
    .execute(c)
    .await?;
    Ok(())
}

/// When the next pending timer is due.
pub async fn next_timer_due(c: &mut Conn) -> Result<Option<i64>> {
    let next: Option<i64> = db::query("SELECT MIN(due_at) FROM timers WHERE state = 'pending'")
        .fetch_one(&mut *c)
        .await?
        .try_get(0)?;
    let lease: Option<i64> =
        db::query("SELECT MIN(lease_until) FROM timers WHERE state = 'running'")
            .fetch_one(&mut *c)
            .await?
            .try_get(0)?;
    Ok(match (next, lease) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

/// When the next pending timer that fires in a transaction (not a webhook delivery) is due.
pub async fn next_firing_due(c: &mut Conn) -> Result<Option<i64>> {
    let sql = format!(
        "SELECT MIN(due_at) FROM timers WHERE state = 'pending' AND kind <> '{WEBHOOK_KIND}'"
    );
    db::query(db::AssertSqlSafe(sql))
        .fetch_one(c)
        .await?
        .try_get(0)
}

/// The timers of `kind` in `state`, oldest due first (for tests and inspection).
pub async fn timers_of_kind(
    c: &mut Conn,
    kind: TimerKind,
    state: TimerState,
) -> Result<Vec<TimerRow>> {
    let sql = format!(
        "SELECT {TIMER_COLS} FROM timers WHERE kind = $1 AND state = $2 ORDER BY due_at, id"
    );
    let rows = db::query(db::AssertSqlSafe(sql))
        .bind(kind.as_str())
        .bind(state.as_str())
        .fetch_all(c)
        .await?;
    rows.iter().map(timer_row).collect()
}

/// The webhook deliveries in `state`, oldest due first (for tests and inspection).
pub async fn deliveries_in(c: &mut Conn, state: TimerState) -> Result<Vec<DeliveryRow>> {
    let sql = format!(
        "SELECT {DELIVERY_COLS} FROM timers WHERE kind = '{WEBHOOK_KIND}' AND state = $1 ORDER BY due_at, id"
    );
    let rows = db::query(db::AssertSqlSafe(sql))
        .bind(state.as_str())
        .fetch_all(c)
        .await?;
    rows.iter().map(delivery_row).collect()
}
