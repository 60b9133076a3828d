//! `tenure backup` and `tenure restore`: a consistent copy of the embedded SQLite database taken
//! while tenure runs, and putting one back while it does not. PostgreSQL has its own tools
//! (`pg_dump`, `pg_restore`), which these commands point to.

use crate::DbArgs;
use anyhow::{Context, Result, anyhow, bail};
use std::io::Read;
use std::path::{Path, PathBuf};

const PG_BACKUP: &str = "tenure backup copies the embedded SQLite database; for PostgreSQL use its own tools: `pg_dump --format=custom --file=tenure.dump postgres://...` (consistent while tenure runs), and `pg_restore` to put it back";

/// `tenure backup FILE`.
pub async fn backup(file: PathBuf, db: DbArgs) -> Result<()> {
    if db.database.is_some() {
        bail!(PG_BACKUP);
    }
    if file.exists() {
        bail!("{} already exists: not overwriting it", file.display());
    }
    let store = db.open_existing().await?;
    store
        .backup_sqlite(&file)
        .await
        .with_context(|| format!("writing the backup to {}", file.display()))?;
    store.close().await;
    let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    println!("backed up to {} ({size} bytes)", file.display());
    Ok(())
}

/// `tenure restore FILE`.
pub async fn restore(file: PathBuf, force: bool, db: DbArgs) -> Result<()> {
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
    // Whom the database being replaced forgot: the copy may be older than those forgets.
    let forgotten = if target.exists() {
        let store = db.open_existing().await?;
        let mut c = store.reader().await?;
        let people = tenure_store::forgotten_people(&mut c).await;
        drop(c);
        store.close().await;
        people.with_context(|| format!("reading whom {} forgot", target.display()))?
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
    let reapplied = if forgotten.is_empty() {
        0
    } else {
        let store = db.open_existing().await?;
        let n = crate::privacy::reapply_forgets(&store, &forgotten).await;
        store.close().await;
        n.context("forgetting again, in the copy, the people the replaced database forgot")?
    };
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
    Ok(())
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
