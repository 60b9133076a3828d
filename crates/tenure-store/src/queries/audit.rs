//! The audit trail's entries and its chain head.

use super::*;

/// Audit entries after `after_seq`, in chain order, at most `limit`; optionally one person's
/// (see [`crate::audit_matching`]).
pub async fn audit_page(
    c: &mut Conn,
    after_seq: i64,
    person: Option<&str>,
    limit: i64,
) -> Result<Vec<AuditEntry>> {
    let filter = crate::AuditFilter {
        after: after_seq,
        person,
        limit,
        ..Default::default()
    };
    crate::audit_matching(c, &filter).await
}

/// An audit entry from `SELECT seq, at_ms, actor, action, person_id, entitlement, system,
/// run_id, reason, correlation_id, details, trace_id, prev_hash, hash`.
pub(crate) fn audit_row(r: &Row) -> Result<AuditEntry> {
    Ok(AuditEntry {
        seq: r.try_get("seq")?,
        at_ms: r.try_get("at_ms")?,
        actor: r.try_get("actor")?,
        action: r.try_get("action")?,
        person_id: r.try_get("person_id")?,
        entitlement: r.try_get("entitlement")?,
        system: r.try_get("system")?,
        run_id: r.try_get("run_id")?,
        reason: r.try_get("reason")?,
        correlation_id: r.try_get("correlation_id")?,
        details: r.try_get("details")?,
        trace_id: r.try_get("trace_id")?,
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
    })
}

/// The chain head: the last entry's seq and hash.
pub async fn audit_head(c: &mut Conn) -> Result<(i64, String)> {
    let r = db::query("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_one(c)
        .await?;
    Ok((r.try_get(0)?, r.try_get(1)?))
}
