//! The checkpoint writer: signs the audit chain's head when a checkpoint is due, stores the
//! checkpoint, and sends it outside the database (a file synced to disk, or a signed webhook).
//!
//! Signing reads the head with a reader and signs outside any transaction, so it never holds
//! the audit writer; storing the checkpoint is one short insert. What to sign and when is
//! decided in `tenure_core::checkpoint`.

use crate::clock::Clock;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tenure_core::checkpoint::{Cadence, Checkpoint, Due, PrivateKey, sign};
use tenure_store::Store;
use tokio::sync::watch;

/// Checkpoints sent to the sink per round.
const SEND_BATCH: i64 = 100;
/// How often the writer looks at the head (a one-row read).
const POLL: Duration = Duration::from_secs(1);

/// Errors of the checkpoint writer.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] tenure_store::StoreError),
    /// The sink refused or could not be reached; the checkpoints stay queued.
    #[error("checkpoint sink: {0}")]
    Sink(String),
    /// The settings cannot be used.
    #[error("audit.checkpoints: {0}")]
    Config(String),
}

/// Where checkpoints go outside the database, ready to use.
#[derive(Clone)]
pub enum Sink {
    /// Appended as JSON lines, then synced to disk.
    File(PathBuf),
    /// POSTed one by one, signed as Standard Webhooks.
    Webhook {
        /// The URL.
        url: String,
        /// The HMAC key (from the secret).
        key: Vec<u8>,
        /// The HTTP client.
        http: reqwest::Client,
    },
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sink::File(p) => write!(f, "file:{}", p.display()),
            Sink::Webhook { url, .. } => write!(f, "webhook:{url}"),
        }
    }
}

impl Sink {
    /// A webhook sink signing with `secret` (`whsec_<base64>` or raw, at least 16 bytes).
    pub fn webhook(url: &str, secret: &str) -> Result<Sink, CheckpointError> {
        let key = tenure_core::webhook::secret_key(secret)
            .map_err(|e| CheckpointError::Config(e.to_string()))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| CheckpointError::Config(format!("HTTP client: {e}")))?;
        Ok(Sink::Webhook {
            url: url.to_string(),
            key,
            http,
        })
    }

    async fn send(&self, batch: &[Checkpoint], now_ms: i64) -> Result<(), CheckpointError> {
        match self {
            Sink::File(path) => {
                let mut text = String::new();
                for cp in batch {
                    text.push_str(&serde_json::to_string(cp).expect("a checkpoint serializes"));
                    text.push('\n');
                }
                let path = path.clone();
                tokio::task::spawn_blocking(move || append_synced(&path, text.as_bytes()))
                    .await
                    .map_err(|e| CheckpointError::Sink(format!("file writer: {e}")))?
            }
            Sink::Webhook { url, key, http } => {
                for cp in batch {
                    let body = serde_json::to_string(cp).expect("a checkpoint serializes");
                    let id = format!("ckpt_{}", cp.seq);
                    let ts = now_ms / 1000;
                    let signature = tenure_core::webhook::sign(key, &id, ts, body.as_bytes());
                    let answer = http
                        .post(url)
                        .header("content-type", "application/json")
                        .header("webhook-id", &id)
                        .header("webhook-timestamp", ts.to_string())
                        .header("webhook-signature", signature)
                        .body(body)
                        .send()
                        .await
                        .map_err(|e| CheckpointError::Sink(format!("{url}: {e}")))?;
                    if !answer.status().is_success() {
                        return Err(CheckpointError::Sink(format!(
                            "{url} answered {}",
                            answer.status()
                        )));
                    }
                }
                Ok(())
            }
        }
    }
}

/// Appends `bytes` to the file at `path` (created if missing, 0600 on Unix) and syncs it.
fn append_synced(path: &std::path::Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    use std::io::Write;
    let mut open = std::fs::OpenOptions::new();
    open.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
    let fail = |e: std::io::Error| CheckpointError::Sink(format!("{}: {e}", path.display()));
    let mut f = open.open(path).map_err(fail)?;
    f.write_all(bytes).map_err(fail)?;
    f.sync_all().map_err(fail)
}

/// What one round of the writer did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Round {
    /// The checkpoint signed, if one was due.
    pub signed: Option<Checkpoint>,
    /// Checkpoints that reached the sink.
    pub sent: usize,
}

/// Signs checkpoints of the audit chain's head and sends them to the sink.
pub struct CheckpointWriter {
    store: Store,
    clock: Arc<dyn Clock>,
    key: PrivateKey,
    cadence: Cadence,
    sink: Sink,
}

impl std::fmt::Debug for CheckpointWriter {
    /// Never shows the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointWriter")
            .field("cadence", &self.cadence)
            .field("sink", &self.sink)
            .finish_non_exhaustive()
    }
}

impl CheckpointWriter {
    /// A writer signing with `key` on `cadence`, sending to `sink`.
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        key: PrivateKey,
        cadence: Cadence,
        sink: Sink,
    ) -> Self {
        Self {
            store,
            clock,
            key,
            cadence,
            sink,
        }
    }

    /// Signs the head if a checkpoint is due (or, with `force`, whenever the head moved since
    /// the last one), then sends what the sink has not received. A failed send leaves the
    /// checkpoints queued for the next round.
    pub async fn round(&self, force: bool) -> Result<Round, CheckpointError> {
        let signed = self.sign_if_due(force).await?;
        let sent = self.send_unsent().await?;
        Ok(Round { signed, sent })
    }

    async fn sign_if_due(&self, force: bool) -> Result<Option<Checkpoint>, CheckpointError> {
        let (head_seq, head_hash, last) = {
            let mut c = self.store.reader().await?;
            let (seq, hash) = tenure_store::audit_head(&mut c).await?;
            let last = tenure_store::last_checkpoint(&mut c).await?;
            (seq, hash, last)
        };
        let now = self.clock.now_ms();
        let cadence = if force {
            Cadence {
                every_entries: Some(1),
                every_ms: None,
            }
        } else {
            self.cadence
        };
        match cadence.due(last.as_ref().map(|c| (c.seq, c.at_ms)), head_seq, now) {
            Due::NotYet => Ok(None),
            Due::Behind { head, last } => {
                metrics::counter!("tenure_audit_checkpoints_total", "outcome" => "head_behind")
                    .increment(1);
                tracing::error!(
                    head,
                    last_checkpoint = last,
                    "the audit chain's head is behind its last checkpoint: entries were removed; not signing over it (run `tenure audit verify`)"
                );
                Ok(None)
            }
            Due::Now => {
                let cp = sign(&self.key, head_seq, &head_hash, now);
                let mut tx = self.store.begin().await?;
                let stored = tenure_store::insert_checkpoint(tx.conn(), &cp).await?;
                tx.commit().await?;
                if stored {
                    metrics::counter!("tenure_audit_checkpoints_total", "outcome" => "signed")
                        .increment(1);
                    tracing::info!(seq = cp.seq, hash = %cp.hash, "audit checkpoint signed");
                    Ok(Some(cp))
                } else {
                    Ok(None)
                }
            }
        }
    }

    async fn send_unsent(&self) -> Result<usize, CheckpointError> {
        let mut sent = 0;
        loop {
            let batch = {
                let mut c = self.store.reader().await?;
                tenure_store::unsent_checkpoints(&mut c, SEND_BATCH).await?
            };
            if batch.is_empty() {
                return Ok(sent);
            }
            if let Err(e) = self.sink.send(&batch, self.clock.now_ms()).await {
                metrics::counter!("tenure_audit_checkpoints_total", "outcome" => "sink_failed")
                    .increment(1);
                return Err(e);
            }
            metrics::counter!("tenure_audit_checkpoints_total", "outcome" => "sent")
                .increment(batch.len() as u64);
            let seqs: Vec<i64> = batch.iter().map(|c| c.seq).collect();
            let mut tx = self.store.begin().await?;
            tenure_store::mark_checkpoints_sent(tx.conn(), &seqs, self.clock.now_ms()).await?;
            tx.commit().await?;
            sent += batch.len();
            if (batch.len() as i64) < SEND_BATCH {
                return Ok(sent);
            }
        }
    }

    /// Runs rounds until `stop` turns true, then signs the head one last time (so a clean
    /// shutdown leaves the whole chain checkpointed) and sends what is queued.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                break;
            }
            if let Err(e) = self.round(false).await {
                tracing::error!(error = %e, "audit checkpoint round failed; will try again");
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                changed = stop.changed() => {
                    if changed.is_err() {
                        break; // the sender is gone: nobody can stop us later
                    }
                }
            }
        }
        if let Err(e) = self.round(true).await {
            tracing::error!(error = %e, "the last audit checkpoint before stopping failed");
        }
    }
}
