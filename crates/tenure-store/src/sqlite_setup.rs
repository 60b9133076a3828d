//! Process-wide SQLite settings, made once, before the store opens its first SQLite connection:
//! SQLite takes them only before it starts, and refuses them afterwards (then it runs with its
//! defaults, which are correct, only slower).

use rusqlite::ffi;
use std::ffi::c_int;
use std::sync::Once;

/// Makes the settings, the first time it is called in the process.
pub(crate) fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: `sqlite3_config` before SQLite starts, each option once (the `Once`).
        // No memory statistics: with them every allocation SQLite makes takes a process-wide
        // lock to count itself, and nothing here reads them.
        let stats = unsafe { ffi::sqlite3_config(ffi::SQLITE_CONFIG_MEMSTATUS, 0 as c_int) };
        if stats != ffi::SQLITE_OK {
            tracing::debug!(
                code = stats,
                "SQLite started before the store set it up; its defaults stay"
            );
            return;
        }
        let cache = unsafe { crate::pcache::wrap() };
        if cache != ffi::SQLITE_OK {
            tracing::warn!(
                code = cache,
                "SQLite's page cache could not be wrapped; commits scan it as before"
            );
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcache::counters::{FORWARDED, SKIPPED};
    use std::cell::Cell;
    use std::collections::BTreeMap;

    /// Page splits (which park pages at the lock page), savepoints rolled back after the file
    /// grew (which leave pages past its end in the cache, to be dropped), deletes, all in a
    /// large cache: the database stays whole and holds what a model says, and commits that had
    /// nothing to drop skipped the scan.
    #[test]
    fn splits_rollbacks_and_deletes_leave_the_database_whole() {
        // Every test of this crate that opens SQLite goes through the store, which installs
        // the wrapper before SQLite starts; this one may be the first.
        install();
        let dir = std::env::temp_dir().join(format!("tenure-pcache-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let c = rusqlite::Connection::open(dir.join("db.sqlite")).unwrap();
        c.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA cache_size = -65536;
             CREATE TABLE t (k TEXT PRIMARY KEY, v BLOB NOT NULL);
             CREATE INDEX t_v ON t (v);",
        )
        .unwrap();
        let mut model = BTreeMap::new();
        let mut seed: u64 = 20_261_207;
        let mut next = || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 33) as i64
        };
        for round in 0..150 {
            c.execute_batch("BEGIN").unwrap();
            for _ in 0..40 {
                let (k, n) = (format!("{:010}", next()), 50 + next() % 400);
                c.execute(
                    "INSERT OR REPLACE INTO t (k, v) VALUES (?1, randomblob(?2))",
                    rusqlite::params![k, n],
                )
                .unwrap();
                model.insert(k, n);
            }
            if round % 2 == 1 {
                c.execute_batch("SAVEPOINT s").unwrap();
                for _ in 0..40 {
                    c.execute(
                        "INSERT INTO t (k, v) VALUES (?1, randomblob(3000))",
                        [format!("x{:010}", next())],
                    )
                    .unwrap();
                }
                c.execute_batch("ROLLBACK TO s; RELEASE s").unwrap();
            }
            if round % 10 == 9 {
                let gone: Vec<String> = model.keys().step_by(5).cloned().collect();
                for k in gone {
                    c.execute("DELETE FROM t WHERE k = ?1", [&k]).unwrap();
                    model.remove(&k);
                }
            }
            c.execute_batch("COMMIT").unwrap();
        }
        let check: String = c
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        let mut stmt = c.prepare("SELECT k, length(v) FROM t ORDER BY k").unwrap();
        let stored: BTreeMap<String, i64> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(stored, model);
        let (skipped, forwarded) = (SKIPPED.with(Cell::get), FORWARDED.with(Cell::get));
        assert!(
            skipped >= 50,
            "commits with nothing past the end skip the scan ({skipped} of 150 did)"
        );
        assert!(
            forwarded >= 50,
            "pages rolled back past the end are dropped ({forwarded} of 150 commits did)"
        );
        drop(stmt);
        drop(c);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
