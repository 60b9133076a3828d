//! The write transaction and the audit entries that ride along with it.

use crate::db::{self, Conn};
use crate::{Backend, Result};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tenure_core::audit::{AuditEntry, entry_hash};

/// An audit entry before it has a place in the chain.
#[derive(Debug, Clone, Default)]
pub struct NewAudit {
    /// When (epoch ms).
    pub at_ms: i64,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// The person concerned.
    pub person_id: Option<String>,
    /// The entitlement concerned.
    pub entitlement: Option<String>,
    /// The system concerned.
    pub system: Option<String>,
    /// The run concerned.
    pub run_id: Option<String>,
    /// Why.
    pub reason: String,
    /// Ties together what one event caused.
    pub correlation_id: Option<String>,
    /// Further facts.
    pub details: serde_json::Value,
}

/// A point inside a [`Tx`] to go back to (see [`Tx::savepoint`]).
#[derive(Debug)]
#[must_use = "release the savepoint or roll back to it"]
pub struct Savepoint {
    audit: usize,
    on_commit: usize,
}

/// A write transaction. Dropping it without [`Tx::commit`] rolls everything back.
pub struct Tx {
    tx: Conn,
    /// Entries to chain at commit, each with the trace it was written in.
    audit: Vec<(NewAudit, Option<String>)>,
    backend: Backend,
    committed: Arc<AtomicU64>,
    on_commit: Vec<Box<dyn FnOnce() + Send>>,
}

impl Tx {
    pub(crate) fn new(tx: Conn, backend: Backend, committed: Arc<AtomicU64>) -> Self {
        Tx {
            tx,
            audit: Vec::new(),
            backend,
            committed,
            on_commit: Vec::new(),
        }
    }

    /// The connection, for queries inside the transaction.
    pub fn conn(&mut self) -> &mut Conn {
        &mut self.tx
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Records an audit entry; it is chained and written at commit, with the change. It
    /// carries the current span's trace id, if any (see [`crate::trace`]).
    pub fn audit(&mut self, entry: NewAudit) {
        self.audit.push((entry, crate::trace::current_trace_id()));
    }

    /// Records an audit entry written for something whose trace is known (a run's, a step's)
    /// rather than the current span's; with `None`, the current span's as [`Tx::audit`] does.
    pub fn audit_traced(&mut self, entry: NewAudit, trace_id: Option<String>) {
        let trace = trace_id.or_else(crate::trace::current_trace_id);
        self.audit.push((entry, trace));
    }

    /// Runs `f` once the transaction is committed (never if it is not): for notices that
    /// must not announce a change before it is durable.
    pub fn after_commit(&mut self, f: impl FnOnce() + Send + 'static) {
        self.on_commit.push(Box::new(f));
    }

    /// Marks a point that [`Tx::rollback_to`] can go back to, so that one of several changes
    /// sharing this transaction can fail alone. Savepoints do not nest: release or roll back
    /// one before taking the next.
    pub async fn savepoint(&mut self) -> Result<Savepoint> {
        self.tx.execute("SAVEPOINT tenure_change").await?;
        Ok(Savepoint {
            audit: self.audit.len(),
            on_commit: self.on_commit.len(),
        })
    }

    /// Keeps what was done since `sp`.
    pub async fn release(&mut self, sp: Savepoint) -> Result<()> {
        let _ = sp;
        self.tx.execute("RELEASE SAVEPOINT tenure_change").await?;
        Ok(())
    }

    /// Undoes what was done since `sp`: its writes, audit entries and `after_commit` hooks.
    pub async fn rollback_to(&mut self, sp: Savepoint) -> Result<()> {
        self.tx
            .execute("ROLLBACK TO SAVEPOINT tenure_change")
            .await?;
        self.tx.execute("RELEASE SAVEPOINT tenure_change").await?;
        self.audit.truncate(sp.audit);
        self.on_commit.truncate(sp.on_commit);
        Ok(())
    }

    /// Undoes everything: writes, audit entries and `after_commit` hooks.
    pub async fn rollback(self) -> Result<()> {
        self.tx.rollback().await?;
        Ok(())
    }

    /// Appends the audit entries to the chain, commits, then runs the `after_commit` hooks.
    pub async fn commit(mut self) -> Result<()> {
        if !self.audit.is_empty() {
            let entries = std::mem::take(&mut self.audit);
            append_audit(&mut self.tx, entries).await?;
        }
        self.tx.commit().await?;
        self.committed.fetch_add(1, Ordering::Relaxed);
        for f in self.on_commit {
            f();
        }
        Ok(())
    }
}

async fn append_audit(conn: &mut Conn, entries: Vec<(NewAudit, Option<String>)>) -> Result<()> {
    // Touching the head row locks it (PostgreSQL), so concurrent writers chain in turn.
    let head = db::query("UPDATE audit_head SET seq = seq WHERE id = 1 RETURNING seq, hash")
        .fetch_one(&mut *conn)
        .await?;
    let (mut seq, mut prev): (i64, String) = (head.try_get(0)?, head.try_get(1)?);
    let mut chained = Vec::with_capacity(entries.len());
    for (n, trace_id) in entries {
        seq += 1;
        let mut e = AuditEntry {
            seq,
            at_ms: n.at_ms,
            actor: n.actor,
            action: n.action,
            person_id: n.person_id,
            entitlement: n.entitlement,
            system: n.system,
            run_id: n.run_id,
            reason: n.reason,
            correlation_id: n.correlation_id,
            details: n.details.to_string(),
            trace_id,
            prev_hash: prev.clone(),
            hash: String::new(),
        };
        e.hash = entry_hash(&e, &prev);
        prev = e.hash.clone();
        chained.push(e);
    }
    const COLS: usize = 14;
    for chunk in chained.chunks(400) {
        let mut sql = String::from(
            "INSERT INTO audit_log (seq, at_ms, actor, action, person_id, entitlement, system, run_id, reason, correlation_id, details, trace_id, prev_hash, hash) VALUES ",
        );
        crate::queries::push_placeholders(&mut sql, chunk.len(), COLS, conn.is_sqlite());
        let mut q = db::query(db::AssertSqlSafe(sql));
        for e in chunk {
            q = q
                .bind(e.seq)
                .bind(e.at_ms)
                .bind(e.actor.clone())
                .bind(e.action.clone())
                .bind(e.person_id.clone())
                .bind(e.entitlement.clone())
                .bind(e.system.clone())
                .bind(e.run_id.clone())
                .bind(e.reason.clone())
                .bind(e.correlation_id.clone())
                .bind(e.details.clone())
                .bind(e.trace_id.clone())
                .bind(e.prev_hash.clone())
                .bind(e.hash.clone());
        }
        q.execute(&mut *conn).await?;
    }
    db::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(seq)
        .bind(prev)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
