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
