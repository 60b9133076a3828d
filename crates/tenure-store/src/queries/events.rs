//! Events: what came in, keyed for idempotency.

use super::*;

/// A stored event.
#[derive(Debug, Clone)]
pub struct EventRow {
    /// tenure's id for the event.
    pub id: String,
    /// The idempotency key (header, the event's own id, or tenure's id).
    pub idem_key: String,
    /// The sender's own id for the event, if it gave one: a second idempotency key, so a
    /// retry with or without the header is recognised either way.
    pub source_id: Option<String>,
    /// SHA-256 of the canonical body, to tell a retry from a different event.
    pub body_hash: String,
    /// The event type.
    pub kind: String,
    /// The person concerned.
    pub person_id: String,
    /// The sending system.
    pub source: Option<String>,
    /// The event as received (JSON).
    pub body: String,
    /// When it takes effect (epoch ms).
    pub effective_at: i64,
    /// When it was received (epoch ms).
    pub received_at: i64,
    /// Who sent it (token name).
    pub actor: String,
    /// The run it started.
    pub run_id: String,
    /// When `[retention]` dropped its payload (`body` is then JSON `null`); `None` while kept.
    pub payload_dropped_at: Option<i64>,
}

const EVENT_INSERT_COLS: &str = "id, idem_key, body_hash, kind, person_id, source, body, effective_at, received_at, actor, run_id, source_id";
const EVENT_COLS: &str = "id, idem_key, body_hash, kind, person_id, source, body, effective_at, received_at, actor, run_id, source_id, payload_dropped_at, (SELECT wrapped FROM person_keys k WHERE k.person_id = events.person_id) AS person_key";

/// An event from a row of `EVENT_COLS`, its payload opened (JSON `null` once dropped, by
/// retention or when its person was forgotten).
fn event_row(c: &Conn, r: &Row) -> Result<EventRow> {
    let id: String = r.try_get("id")?;
    let person_id: String = r.try_get("person_id")?;
    let key = crate::privacy::unwrap_key(c, &person_id, r.try_get("person_key")?)?;
    let body = crate::vault::open(
        key.as_ref(),
        crate::privacy::EVENTS_BODY,
        &id,
        r.try_get("body")?,
    )?;
    Ok(EventRow {
        id,
        idem_key: r.try_get("idem_key")?,
        body_hash: r.try_get("body_hash")?,
        kind: r.try_get("kind")?,
        person_id,
        source: r.try_get("source")?,
        body,
        effective_at: r.try_get("effective_at")?,
        received_at: r.try_get("received_at")?,
        actor: r.try_get("actor")?,
        run_id: r.try_get("run_id")?,
        source_id: r.try_get("source_id")?,
        payload_dropped_at: r.try_get("payload_dropped_at")?,
    })
}

/// The event stored under an idempotency key, or carrying the sender's own event id.
pub async fn event_by_key(
    c: &mut Conn,
    key: &str,
    source_id: Option<&str>,
) -> Result<Option<EventRow>> {
    let sql = format!(
        "SELECT {EVENT_COLS} FROM events WHERE idem_key = $1 OR source_id = $2 ORDER BY received_at LIMIT 1"
    );
    let row = db::query(db::AssertSqlSafe(sql))
        .bind(key.to_string())
        .bind(source_id.map(str::to_string))
        .fetch_optional(&mut *c)
        .await?;
    row.map(|r| event_row(c, &r)).transpose()
}

/// The stored events any of `keys` or `source_ids` names (see [`event_by_key`]), in the
/// order they were received: one query for a whole batch of submissions.
pub async fn events_by_keys(
    c: &mut Conn,
    keys: &[&str],
    source_ids: &[&str],
) -> Result<Vec<EventRow>> {
    let sqlite = c.is_sqlite();
    let mut out = Vec::new();
    for (field, values) in [("idem_key", keys), ("source_id", source_ids)] {
        for chunk in values.chunks(500) {
            let mut sql = format!("SELECT {EVENT_COLS} FROM events WHERE {field} IN ");
            push_placeholders(&mut sql, 1, chunk.len(), sqlite);
            let mut q = db::query(db::AssertSqlSafe(sql));
            for v in chunk {
                q = q.bind(v.to_string());
            }
            for r in q.fetch_all(&mut *c).await? {
                out.push(event_row(c, &r)?);
            }
        }
    }
    out.sort_by(|a: &EventRow, b| (a.received_at, &a.id).cmp(&(b.received_at, &b.id)));
    out.dedup_by(|a, b| a.id == b.id);
    Ok(out)
}

/// Stores events, a few hundred per statement, each payload sealed under its person's key
/// (made now for people who have none).
pub async fn insert_events(c: &mut Conn, rows: &[EventRow]) -> Result<()> {
    let people: Vec<&str> = rows.iter().map(|e| e.person_id.as_str()).collect();
    let now = rows.iter().map(|e| e.received_at).max().unwrap_or_default();
    let keys = crate::privacy::keys_for(c, &people, now).await?;
    let prefix = format!("INSERT INTO events ({EVENT_INSERT_COLS}) VALUES ");
    bulk!(c, rows, 12, prefix.as_str(), "", |q, e| {
        let body = crate::vault::seal(
            keys.get(&e.person_id),
            crate::privacy::EVENTS_BODY,
            &e.id,
            &e.body,
        );
        q.bind(e.id.clone())
            .bind(e.idem_key.clone())
            .bind(e.body_hash.clone())
            .bind(e.kind.clone())
            .bind(e.person_id.clone())
            .bind(e.source.clone())
            .bind(body)
            .bind(e.effective_at)
            .bind(e.received_at)
            .bind(e.actor.clone())
            .bind(e.run_id.clone())
            .bind(e.source_id.clone())
    });
    Ok(())
}

/// The event with this id.
pub async fn get_event(c: &mut Conn, id: &str) -> Result<Option<EventRow>> {
    let sql = format!("SELECT {EVENT_COLS} FROM events WHERE id = $1");
    let row = db::query(db::AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_optional(&mut *c)
        .await?;
    row.map(|r| event_row(c, &r)).transpose()
}

/// Stores an event.
pub async fn insert_event(c: &mut Conn, e: &EventRow) -> Result<()> {
    insert_events(c, std::slice::from_ref(e)).await
}

/// The run states after which an event's payload is no longer read: planning reads it only
/// while its run is pending, and a retry re-drives stored steps.
pub(crate) const ENDED_RUN_STATES: &str =
    "'succeeded', 'failed', 'cancelled', 'compensated', 'denied'";

/// Drops the payloads of up to `limit` events received before `before` whose runs have
/// ended, oldest first: `body` becomes JSON `null` and `payload_dropped_at` is `now`. The rest
/// of each event stays (its body hash still tells a retry from a different event). Returns
/// the ids dropped.
pub async fn drop_event_payloads(
    c: &mut Conn,
    before: i64,
    now: i64,
    limit: i64,
) -> Result<Vec<String>> {
    let sql = format!(
        "UPDATE events SET body = 'null', payload_dropped_at = $1
         WHERE id IN (SELECT e.id FROM events e JOIN runs r ON r.id = e.run_id
                      WHERE e.payload_dropped_at IS NULL AND e.received_at < $2
                        AND r.state IN ({ENDED_RUN_STATES})
                      ORDER BY e.received_at, e.id LIMIT $3)
         RETURNING id"
    );
    let rows = db::query(db::AssertSqlSafe(sql))
        .bind(now)
        .bind(before)
        .bind(limit)
        .fetch_all(c)
        .await?;
    let mut ids = rows
        .iter()
        .map(|r| r.try_get::<String, _>(0))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    ids.sort();
    Ok(ids)
}

/// Migration 12's data step: on SQLite, adds `events.payload_dropped_at` where missing and
/// its index (PostgreSQL's migration does both in SQL).
pub(crate) fn add_event_payload_dropped(
    c: &mut Conn,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + '_>> {
    Box::pin(async move {
        if !c.is_sqlite() {
            return Ok(());
        }
        crate::migrate::sqlite_add_column(c, "events", "payload_dropped_at", "BIGINT").await?;
        c.execute(EVENT_PAYLOADS_KEPT_INDEX).await?;
        Ok(())
    })
}

/// Events whose payloads are still kept, oldest first: what the retention pass scans.
const EVENT_PAYLOADS_KEPT_INDEX: &str = "CREATE INDEX IF NOT EXISTS events_payload_kept ON events (received_at) WHERE payload_dropped_at IS NULL";
