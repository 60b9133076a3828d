//! `tenure backup` and `tenure restore`: a consistent copy of the embedded SQLite database taken
//! while tenure runs, and putting one back while it does not. PostgreSQL has its own tools
//! (`pg_dump`, `pg_restore`), which these commands point to.

use crate::DbArgs;
use anyhow::{Context, Result, anyhow, bail};
use std::io::Read;
use std::path::{Path, PathBuf};

const PG_BACKUP: &str = "tenure backup copies the embedded SQLite database; for PostgreSQL use its own tools: `pg_dump --format=custom --file=tenure.dump postgres://...` (consistent while tenure runs), and `pg_restore` to put it back";

/// `tenure backup FILE [--keys KEYS]`.
pub async fn backup(file: PathBuf, keys: Option<PathBuf>, db: DbArgs) -> Result<()> {
    if db.database.is_some() {
        bail!(PG_BACKUP);
    }
    for f in std::iter::once(&file).chain(&keys) {
        if f.exists() {
            bail!("{} already exists: not overwriting it", f.display());
        }
    }
    let store = db.open_existing().await?;
    let copied = store
        .backup_sqlite(&file)
        .await
        .with_context(|| format!("writing the backup to {}", file.display()));
    // The keys are read after the copy: every person in it has theirs, unless forgotten
    // meanwhile, which is as it should be.
    let exported = match (&copied, &keys) {
        (Ok(()), Some(out)) => Some(export_keys(&store, out).await),
        _ => None,
    };
    store.close().await;
    copied?;
    let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    println!("backed up to {} ({size} bytes)", file.display());
    if let (Some(n), Some(out)) = (exported.transpose()?, &keys) {
        println!(
            "wrote {n} person key(s) to {} (readable by you only): keep it with the master key, not with the backup, and no longer than people must stay readable",
            out.display()
        );
    }
    Ok(())
}

/// Writes every person key, as JSON lines, to a new file readable by its owner only.
async fn export_keys(store: &tenure_store::Store, out: &Path) -> Result<usize> {
    let mut c = store.reader().await?;
    let keys = tenure_store::person_keys(&mut c).await?;
    drop(c);
    let mut text = String::new();
    for k in &keys {
        text.push_str(&serde_json::to_string(k)?);
        text.push('\n');
    }
    crate::files::write_new(out, &text, true)?;
    Ok(keys.len())
}

/// Reads a keys file `tenure backup --keys` wrote.
fn read_keys(file: &Path) -> Result<Vec<tenure_store::StoredKey>> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading the keys file {}", file.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| anyhow!("{}:{}: not a person key: {e}", file.display(), i + 1))
        })
        .collect()
}

/// `tenure restore FILE`.
pub async fn restore(file: PathBuf, keys: Option<PathBuf>, force: bool, db: DbArgs) -> Result<()> {
    if db.database.is_some() {
        bail!(PG_BACKUP);
    }
    let mut magic = [0u8; 16];
    std::fs::File::open(&file)
        .and_then(|mut f| f.read_exact(&mut magic))
        .map_err(|e| anyhow!("reading {}: {e}", file.display()))?;
    if &magic != b"SQLite format 3\0" {
        bail!(
            "{} is not a SQLite database (a tenure backup)",
            file.display()
        );
    }
    std::fs::create_dir_all(&db.data_dir)
        .with_context(|| format!("creating data directory {}", db.data_dir.display()))?;
    let target = db.data_dir.join("tenure.db");
    if target.exists() {
        if !force {
            bail!(
                "{} exists: restoring would replace it; stop tenure and give --force to replace it",
                target.display()
            );
        }
        if tenure_store::sqlite_in_use(&target)
            .await
            .with_context(|| format!("checking whether {} is in use", target.display()))?
        {
            bail!(
                "{} is in use (a tenure serve or another command has it open): stop it first",
                target.display()
            );
        }
    }
    // The copy holds no person keys: they come from the database being replaced and from
    // the keys file. Whom that database forgot is forgotten again in the copy, which may be
    // older than those forgets.
    let mut carried = match &keys {
        Some(k) => read_keys(k)?,
        None => Vec::new(),
    };
    let forgotten = if target.exists() {
        let store = db.open_existing().await?;
        let mut c = store.reader().await?;
        let read = async {
            let forgotten = tenure_store::forgotten_people(&mut c).await?;
            carried.extend(tenure_store::person_keys(&mut c).await?);
            Ok::<_, tenure_store::StoreError>(forgotten)
        }
        .await;
        drop(c);
        store.close().await;
        read.with_context(|| format!("reading the keys and forgets of {}", target.display()))?
    } else {
        Vec::new()
    };
    let partial = db.data_dir.join("tenure.db.restoring");
    let _ = std::fs::remove_file(&partial);
    copy_synced(&file, &partial)?;
    // A write-ahead log left beside the old database belongs to it, not to the copy.
    for side in ["tenure.db-wal", "tenure.db-shm"] {
        match std::fs::remove_file(db.data_dir.join(side)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(anyhow!("removing {side}: {e}")),
        }
    }
    std::fs::rename(&partial, &target)
        .with_context(|| format!("moving the copy to {}", target.display()))?;
    if let Ok(dir) = std::fs::File::open(&db.data_dir) {
        let _ = dir.sync_all();
    }
    let store = db.open_existing().await?;
    let settled = settle_restored(&store, &carried, &forgotten).await;
    store.close().await;
    let (reapplied, unreadable) = settled?;
    println!(
        "restored {} to {}; check it with `tenure audit verify`",
        file.display(),
        target.display()
    );
    if reapplied > 0 {
        println!(
            "forgot again {reapplied} person(s) the replaced database had forgotten since the backup"
        );
    }
    if unreadable > 0 {
        eprintln!(
            "warning: {unreadable} person(s) in the copy have no key, so their records cannot be read: restore over the database the backup came from, or give --keys the keys file `tenure backup --keys` wrote"
        );
    }
    Ok(())
}

/// Puts the carried keys into the restored copy, forgets again whom the replaced database
/// forgot, and counts the people left without a key.
async fn settle_restored(
    store: &tenure_store::Store,
    keys: &[tenure_store::StoredKey],
    forgotten: &[String],
) -> Result<(usize, i64)> {
    let mut tx = store.begin().await?;
    tenure_store::put_person_keys(tx.conn(), keys).await?;
    tx.commit().await?;
    let reapplied = crate::privacy::reapply_forgets(store, forgotten)
        .await
        .context("forgetting again, in the copy, the people the replaced database forgot")?;
    let mut c = store.reader().await?;
    let unreadable = tenure_store::people_without_keys(&mut c).await?;
    Ok((reapplied, unreadable))
}

fn copy_synced(from: &Path, to: &Path) -> Result<()> {
    let mut src =
        std::fs::File::open(from).with_context(|| format!("opening {}", from.display()))?;
    let mut dst = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(to)
        .with_context(|| format!("creating {}", to.display()))?;
    std::io::copy(&mut src, &mut dst).with_context(|| format!("copying to {}", to.display()))?;
    dst.sync_all()
        .with_context(|| format!("writing {}", to.display()))
}
