//! The master key that seals personal data, `tenure keys master`, and `tenure forget`.

use crate::DbArgs;
use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use std::path::{Path, PathBuf};
use tenure_store::{Store, Vault, vault};

/// The environment variable that may hold the master key itself (base64).
pub const MASTER_KEY_ENV: &str = "TENURE_MASTER_KEY";

/// The vault `db` names: the key in `TENURE_MASTER_KEY`, or in `--master-key-file`, or (on
/// SQLite) `master.key` in the data directory, made there with a fresh key the first time.
/// PostgreSQL, shared by several instances, needs the key given.
pub fn master_vault(db: &DbArgs) -> Result<Vault> {
    if let Some(key) = std::env::var(MASTER_KEY_ENV).ok().filter(|k| !k.is_empty()) {
        if db.master_key_file.is_some() {
            bail!("give the master key in {MASTER_KEY_ENV} or --master-key-file, not both");
        }
        return Vault::from_base64(&key).map_err(|e| anyhow!("{MASTER_KEY_ENV}: {e}"));
    }
    if let Some(file) = &db.master_key_file {
        return read_key(file);
    }
    if db.database.is_some() {
        bail!(
            "PostgreSQL: give the master key that seals personal data in {MASTER_KEY_ENV} or --master-key-file (TENURE_MASTER_KEY_FILE), the same for every instance; `tenure keys master --out FILE` makes one"
        );
    }
    let file = db.data_dir.join("master.key");
    if !file.exists() {
        match write_key(&file) {
            Ok(()) => eprintln!(
                "made a master key for personal data at {}: keep a copy apart from the database and its backups (without it no one's personal data can be read)",
                file.display()
            ),
            // Another process made it first: read theirs.
            Err(e) if file.exists() => tracing::debug!(error = %e, "master key made meanwhile"),
            Err(e) => return Err(e),
        }
    }
    read_key(&file)
}

/// Reads a key file: base64 of 32 bytes, readable by its owner only.
fn read_key(file: &Path) -> Result<Vault> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading the master key {}", file.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(file)?.permissions().mode();
        if mode & 0o077 != 0 {
            bail!(
                "the master key {} can be read by others than its owner: chmod 600 it",
                file.display()
            );
        }
    }
    Vault::from_base64(&text).map_err(|e| anyhow!("{}: {e}", file.display()))
}

/// Creates `file` (never overwriting it) with a fresh key, readable by its owner only.
fn write_key(file: &Path) -> Result<()> {
    let key = vault::generate_master_key();
    crate::files::write_new(file, &format!("{key}\n"), true)
}

/// `tenure keys master --out FILE`.
pub fn make_master_key(out: &Path) -> Result<()> {
    write_key(out)?;
    eprintln!(
        "wrote a master key to {} (readable by you only); give it to every instance with --master-key-file or TENURE_MASTER_KEY, and keep a copy apart from the database's backups",
        out.display()
    );
    Ok(())
}

/// `tenure forget PERSON`.
#[derive(Args)]
pub struct ForgetArgs {
    /// The person's HR id.
    person: String,
    /// Why (recorded in the audit trail).
    #[arg(long, default_value = "erasure requested")]
    reason: String,
    #[command(flatten)]
    db: DbArgs,
}

/// Forgets a person, as the API does, on the database directly.
pub async fn forget(args: ForgetArgs) -> Result<()> {
    let store = args.db.open_existing().await?;
    let erased = tenure_engine::forget_person(
        &store,
        || chrono::Utc::now().timestamp_millis(),
        &args.person,
        "cli",
        &args.reason,
    )
    .await;
    store.close().await;
    let erased = erased?;
    println!(
        "forgot {}: {}, {} event payload(s) dropped; their grants, runs and audit entries keep the id alone",
        args.person,
        if erased.key {
            "key deleted"
        } else {
            "no key (their record was stored in clear and is now erased)"
        },
        erased.event_payloads
    );
    Ok(())
}

/// Forgets again, in a restored copy, everyone the database it replaced had forgotten: a
/// backup made before a forget still holds that person's key. Returns how many.
pub async fn reapply_forgets(store: &Store, people: &[String]) -> Result<usize> {
    let mut done = 0;
    for person in people {
        let mut tx = store.begin().await?;
        let now = chrono::Utc::now().timestamp_millis();
        let facts = tenure_store::forget_facts(tx.conn(), person).await?;
        if facts.status.is_none() || facts.forgotten_at.is_some() {
            tx.rollback().await?;
            continue;
        }
        let erased = tenure_store::forget_person(tx.conn(), person, now).await?;
        tx.audit(tenure_store::NewAudit {
            at_ms: now,
            actor: "restore".into(),
            action: tenure_core::audit::AuditAction::PersonForgotten.into(),
            person_id: Some(person.clone()),
            reason: "forgotten in the database this restore replaced".into(),
            details: serde_json::json!({
                "key_deleted": erased.key,
                "event_payloads_dropped": erased.event_payloads,
                "reapplied": true,
            }),
            ..Default::default()
        });
        tx.commit().await?;
        done += 1;
    }
    Ok(done)
}

/// Seals (and indexes) what the database holds in clear, a batch per transaction: records
/// stored before a master key was given, or before this version.
pub async fn seal_existing(store: &Store) -> Result<u64> {
    let mut total = 0;
    loop {
        let mut tx = store.begin().await?;
        let n = tenure_store::seal_existing(tx.conn(), 500, chrono::Utc::now().timestamp_millis())
            .await?;
        tx.commit().await?;
        total += n;
        if n == 0 {
            return Ok(total);
        }
    }
}

/// Where `tenure keys master` writes.
#[derive(Args)]
pub struct MasterArgs {
    /// The key file to create (refused if it exists).
    #[arg(long)]
    pub out: PathBuf,
}
