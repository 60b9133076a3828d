//! Files tenure writes for people to keep: keys, exports, backups of keys.

use anyhow::{Context, Result, anyhow};
use std::io::Write;
use std::path::Path;

/// Creates `path` (never overwriting), owner-only when `private`.
pub(crate) fn write_new(path: &Path, text: &str, private: bool) -> Result<()> {
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, if private { 0o600 } else { 0o644 });
    let mut f = open.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow!("{} already exists: not overwriting it", path.display())
        } else {
            anyhow!("creating {}: {e}", path.display())
        }
    })?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}
