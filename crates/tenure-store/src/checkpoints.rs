//! Signed checkpoints of the audit chain (`audit_checkpoints`), and the reads that check the
//! chain against them and export it.

use crate::Result;
use crate::db::{self, Conn};
use tenure_core::checkpoint::Checkpoint;

const COLS: &str = "seq, hash, at_ms, public_key, signature";

fn checkpoint_row(r: &db::Row) -> Result<Checkpoint> {
    Ok(Checkpoint {
        seq: r.try_get(0)?,
        hash: r.try_get(1)?,
        at_ms: r.try_get(2)?,
        key: r.try_get(3)?,
        signature: r.try_get(4)?,
    })
}

/// Stores a checkpoint, not yet sent to the sink; false when one at its sequence number is
/// already stored (another instance signed the same head), which is kept.
pub async fn insert_checkpoint(c: &mut Conn, cp: &Checkpoint) -> Result<bool> {
    let done = db::query(
        "INSERT INTO audit_checkpoints (seq, hash, at_ms, public_key, signature) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (seq) DO NOTHING",
    )
    .bind(cp.seq)
    .bind(cp.hash.clone())
    .bind(cp.at_ms)
    .bind(cp.key.clone())
    .bind(cp.signature.clone())
    .execute(c)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The checkpoint of the highest sequence number, if any.
pub async fn last_checkpoint(c: &mut Conn) -> Result<Option<Checkpoint>> {
    let sql = format!("SELECT {COLS} FROM audit_checkpoints ORDER BY seq DESC LIMIT 1");
    let row = db::query(db::AssertSqlSafe(sql)).fetch_optional(c).await?;
    row.as_ref().map(checkpoint_row).transpose()
}

/// Checkpoints after `after_seq` up to `to_seq` (inclusive), in sequence order, at most `limit`.
pub async fn checkpoints_between(
    c: &mut Conn,
    after_seq: i64,
    to_seq: i64,
    limit: i64,
) -> Result<Vec<Checkpoint>> {
    let sql = format!(
        "SELECT {COLS} FROM audit_checkpoints WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3"
    );
    let rows = db::query(db::AssertSqlSafe(sql))
        .bind(after_seq)
        .bind(to_seq)
        .bind(limit)
        .fetch_all(c)
        .await?;
    rows.iter().map(checkpoint_row).collect()
}

/// The first checkpoint at or after `seq`, if any.
pub async fn checkpoint_at_or_after(c: &mut Conn, seq: i64) -> Result<Option<Checkpoint>> {
    let sql = format!("SELECT {COLS} FROM audit_checkpoints WHERE seq >= $1 ORDER BY seq LIMIT 1");
    let row = db::query(db::AssertSqlSafe(sql))
        .bind(seq)
        .fetch_optional(c)
        .await?;
    row.as_ref().map(checkpoint_row).transpose()
}

/// Checkpoints not yet sent to the sink, oldest first, at most `limit`.
pub async fn unsent_checkpoints(c: &mut Conn, limit: i64) -> Result<Vec<Checkpoint>> {
    let sql = format!(
        "SELECT {COLS} FROM audit_checkpoints WHERE sink_sent_at IS NULL ORDER BY seq LIMIT $1"
    );
    let rows = db::query(db::AssertSqlSafe(sql))
        .bind(limit)
        .fetch_all(c)
        .await?;
    rows.iter().map(checkpoint_row).collect()
}

/// Records that the checkpoints `seqs` reached the sink at `at_ms`.
pub async fn mark_checkpoints_sent(c: &mut Conn, seqs: &[i64], at_ms: i64) -> Result<()> {
    for seq in seqs {
        db::query(
            "UPDATE audit_checkpoints SET sink_sent_at = $1 WHERE seq = $2 AND sink_sent_at IS NULL",
        )
        .bind(at_ms)
        .bind(*seq)
        .execute(&mut *c)
        .await?;
    }
    Ok(())
}

/// The sequence number of the first entry written at or after `at_ms`, if any.
pub async fn audit_seq_from_time(c: &mut Conn, at_ms: i64) -> Result<Option<i64>> {
    let r = db::query("SELECT MIN(seq) FROM audit_log WHERE at_ms >= $1")
        .bind(at_ms)
        .fetch_one(c)
        .await?;
    r.try_get(0)
}

/// The sequence number of the last entry written before `at_ms`, if any.
pub async fn audit_seq_before_time(c: &mut Conn, at_ms: i64) -> Result<Option<i64>> {
    let r = db::query("SELECT MAX(seq) FROM audit_log WHERE at_ms < $1")
        .bind(at_ms)
        .fetch_one(c)
        .await?;
    r.try_get(0)
}
