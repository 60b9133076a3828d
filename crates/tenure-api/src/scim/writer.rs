//! Group commit for SCIM writes: one task writes the changes of many requests in one
//! transaction, each inside a savepoint of its own, and answers each request once that
//! transaction is committed.
//!
//! A change that fails (a `userName` taken, by a stored user or by an earlier change of the
//! same batch; a version that moved on; any database error) is rolled back to its savepoint
//! alone, and its request gets that answer; the others commit. Nothing is acknowledged before
//! the commit: if the commit fails, every request of the batch gets the error and nothing of it
//! is stored. Each change stores its lifecycle event (and plans its run) in the same
//! transaction, through [`Engine::submit_in`]: a change is never on disk without its event.

use super::{Applied, Prepared, R, Scim, apply, apply_creates};
use crate::ApiError;
use std::sync::OnceLock;
use tenure_engine::Engine;
use tokio::sync::{mpsc, oneshot};

/// Most changes in one transaction.
const BATCH: usize = 128;

struct Job {
    change: Prepared,
    reply: oneshot::Sender<R<Applied>>,
}

/// The handle requests write through; the task starts with the first write.
#[derive(Default)]
pub(crate) struct Writer {
    queue: OnceLock<mpsc::Sender<Job>>,
}

impl Writer {
    /// Writes `change` with whatever other changes are queued beside it; answers once the
    /// transaction holding it is committed (or with why it was not written).
    pub(crate) async fn write(&self, engine: &Engine, change: Prepared) -> R<Applied> {
        let queue = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::channel(4 * BATCH);
            tokio::spawn(run(engine.clone(), rx));
            tx
        });
        let gone = || Scim::from(ApiError::internal("the SCIM writer stopped"));
        let (reply, answer) = oneshot::channel();
        queue
            .send(Job { change, reply })
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// Takes what is queued (up to [`BATCH`]) and writes it in one transaction, until every
/// handle is dropped.
async fn run(engine: Engine, mut rx: mpsc::Receiver<Job>) {
    let mut jobs = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut jobs, BATCH).await > 0 {
        let batch = std::mem::take(&mut jobs);
        match write_batch(&engine, &batch).await {
            Ok(answers) => {
                for (job, answer) in batch.into_iter().zip(answers) {
                    let _ = job.reply.send(answer);
                }
            }
            Err(e) => {
                tracing::error!(error = ?e.0, changes = batch.len(), "SCIM write batch failed; none of it was stored");
                for job in batch {
                    let _ = job.reply.send(Err(Scim(e.0.clone())));
                }
            }
        }
    }
}

/// One answer per job, in order, once committed; an error when nothing was committed.
///
/// New users are written together first ([`apply_creates`]: a few statements for the whole
/// group, since each statement is a round trip to the database); should that fail, the
/// transaction is rolled back and the creates join the other changes, each written inside a
/// savepoint of its own so that one failing change fails alone.
async fn write_batch(engine: &Engine, batch: &[Job]) -> R<Vec<R<Applied>>> {
    let mut tx = engine.store().begin().await?;
    let mut answers: Vec<Option<R<Applied>>> = batch.iter().map(|_| None).collect();
    let creates: Vec<usize> = (0..batch.len())
        .filter(|&i| batch[i].change.is_create())
        .collect();
    if creates.len() > 1 {
        // The group goes first in the transaction: if it fails, rolling back the whole
        // transaction undoes it alone, with no savepoint (and its journal) to pay for.
        let group: Vec<&Prepared> = creates.iter().map(|&i| &batch[i].change).collect();
        match apply_creates(engine, &mut tx, &group).await {
            Ok(done) => {
                for (i, answer) in creates.into_iter().zip(done) {
                    answers[i] = Some(answer);
                }
            }
            Err(e) => {
                tracing::warn!(error = ?e.0, creates = group.len(), "writing new SCIM users together failed; writing them one at a time");
                tx.rollback().await?;
                tx = engine.store().begin().await?;
            }
        }
    }
    for (job, answer) in batch.iter().zip(answers.iter_mut()) {
        if answer.is_some() {
            continue;
        }
        let sp = tx.savepoint().await?;
        let applied = apply(engine, &mut tx, &job.change).await;
        if matches!(applied, Ok(Some(_))) {
            tx.release(sp).await?;
        } else {
            tx.rollback_to(sp).await?;
        }
        *answer = Some(applied);
    }
    tx.commit().await?;
    Ok(answers
        .into_iter()
        .map(|a| a.expect("every change was written or refused"))
        .collect())
}
