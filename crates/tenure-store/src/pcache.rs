//! SQLite's own page cache, with one wasted scan taken out of every commit.
//!
//! When a B-tree page splits, SQLite (`balance_nonroot`, 3.51 as bundled) puts the new pages in
//! ascending order by swapping their numbers, and parks one of them for a moment under the
//! number of the lock page (the page at 1 GiB, which never holds data: 262,145 with 4 KiB
//! pages). The page cache remembers the largest page number it has seen, and at the end of
//! every write transaction SQLite asks it to drop any page past the end of the database. With
//! that largest number far past the end (a database under 1 GiB) the cache cannot tell which
//! slots to look in and scans every one: for the writer's 64 MiB cache, 16,384 slots and some
//! 16,000 pages, on every commit that split a page, which under the engine's load is nearly
//! every commit. Profiles put 5-6 % of all of tenure's CPU there, in the writer's commits.
//!
//! This wrapper passes every call to SQLite's default cache and keeps, for each cache, the
//! largest page number that can be in it, not counting the parked page while it is parked.
//! When asked to drop pages at or past a number no page can have, it has nothing to do and
//! does not call the default cache; otherwise it does, exactly as before. SQLite takes a page
//! cache only before it starts: [`wrap`] is called from the store's SQLite setup
//! (`sqlite_setup.rs`), which also holds its test.

use rusqlite::ffi;
use std::ffi::{c_int, c_uint};
use std::sync::OnceLock;

/// SQLite's default page cache methods, which every call is passed to.
struct Inner(ffi::sqlite3_pcache_methods2);

// SAFETY: the methods are plain function pointers and SQLite's own argument pointer, which
// SQLite itself hands to any thread; they are written once, before any cache exists.
unsafe impl Send for Inner {}
unsafe impl Sync for Inner {}

static DEFAULT: OnceLock<Inner> = OnceLock::new();

fn default() -> &'static ffi::sqlite3_pcache_methods2 {
    &DEFAULT
        .get()
        .expect("the wrapper is only installed once the default is kept")
        .0
}

/// SQLite's `PENDING_BYTE`: the lock page is the page holding this offset.
const PENDING_BYTE: c_uint = 0x4000_0000;

/// One page cache (one per database of each connection).
struct Cache {
    inner: *mut ffi::sqlite3_pcache,
    /// The lock page's number for this cache's page size.
    lock_page: c_uint,
    /// No page in the cache has a larger number, other than a page parked at `lock_page`.
    max_key: c_uint,
    /// Whether a page is parked at `lock_page` now.
    parked: bool,
}

/// Wraps SQLite's page cache; returns SQLite's answer (`SQLITE_MISUSE` once SQLite has started).
///
/// # Safety
/// Called at most once, before SQLite starts (SQLite refuses otherwise and nothing changes).
pub(crate) unsafe fn wrap() -> c_int {
    // SAFETY: the methods struct is copied by SQLite, before any cache exists.
    unsafe {
        let mut methods: ffi::sqlite3_pcache_methods2 = std::mem::zeroed();
        let got = ffi::sqlite3_config(
            ffi::SQLITE_CONFIG_GETPCACHE2,
            &mut methods as *mut ffi::sqlite3_pcache_methods2,
        );
        if got != ffi::SQLITE_OK {
            return got;
        }
        if methods.xCreate.is_none() || DEFAULT.set(Inner(methods)).is_err() {
            return ffi::SQLITE_MISUSE;
        }
        let wrapped = ffi::sqlite3_pcache_methods2 {
            iVersion: methods.iVersion,
            pArg: methods.pArg,
            xInit: methods.xInit,
            xShutdown: methods.xShutdown,
            xCreate: Some(create),
            xCachesize: Some(cachesize),
            xPagecount: Some(pagecount),
            xFetch: Some(fetch),
            xUnpin: Some(unpin),
            xRekey: Some(rekey),
            xTruncate: Some(truncate),
            xDestroy: Some(destroy),
            xShrink: Some(shrink),
        };
        ffi::sqlite3_config(
            ffi::SQLITE_CONFIG_PCACHE2,
            &wrapped as *const ffi::sqlite3_pcache_methods2,
        )
    }
}

/// The wrapper behind a cache pointer SQLite holds.
///
/// # Safety
/// `p` must come from [`create`] and not be destroyed; SQLite uses a cache from one thread at a
/// time (its connection's).
unsafe fn cache<'a>(p: *mut ffi::sqlite3_pcache) -> &'a mut Cache {
    unsafe { &mut *(p as *mut Cache) }
}

unsafe extern "C" fn create(
    sz_page: c_int,
    sz_extra: c_int,
    purgeable: c_int,
) -> *mut ffi::sqlite3_pcache {
    let xcreate = default().xCreate.expect("checked in install");
    let inner = unsafe { xcreate(sz_page, sz_extra, purgeable) };
    if inner.is_null() {
        return inner;
    }
    let lock_page = PENDING_BYTE / c_uint::try_from(sz_page.max(1)).unwrap_or(1) + 1;
    Box::into_raw(Box::new(Cache {
        inner,
        lock_page,
        max_key: 0,
        parked: false,
    })) as *mut ffi::sqlite3_pcache
}

unsafe extern "C" fn cachesize(p: *mut ffi::sqlite3_pcache, n: c_int) {
    let c = unsafe { cache(p) };
    if let Some(f) = default().xCachesize {
        unsafe { f(c.inner, n) }
    }
}

unsafe extern "C" fn pagecount(p: *mut ffi::sqlite3_pcache) -> c_int {
    let c = unsafe { cache(p) };
    default().xPagecount.map_or(0, |f| unsafe { f(c.inner) })
}

unsafe extern "C" fn fetch(
    p: *mut ffi::sqlite3_pcache,
    key: c_uint,
    create_flag: c_int,
) -> *mut ffi::sqlite3_pcache_page {
    let c = unsafe { cache(p) };
    let f = default().xFetch.expect("SQLite's cache fetches");
    let page = unsafe { f(c.inner, key, create_flag) };
    if !page.is_null() {
        c.max_key = c.max_key.max(key);
    }
    page
}

unsafe extern "C" fn unpin(
    p: *mut ffi::sqlite3_pcache,
    page: *mut ffi::sqlite3_pcache_page,
    discard: c_int,
) {
    let c = unsafe { cache(p) };
    if let Some(f) = default().xUnpin {
        unsafe { f(c.inner, page, discard) }
    }
}

unsafe extern "C" fn rekey(
    p: *mut ffi::sqlite3_pcache,
    page: *mut ffi::sqlite3_pcache_page,
    old: c_uint,
    new: c_uint,
) {
    let c = unsafe { cache(p) };
    if let Some(f) = default().xRekey {
        unsafe { f(c.inner, page, old, new) }
    }
    if new == c.lock_page {
        c.parked = true;
    } else {
        if old == c.lock_page {
            c.parked = false;
        }
        c.max_key = c.max_key.max(new);
    }
}

unsafe extern "C" fn truncate(p: *mut ffi::sqlite3_pcache, limit: c_uint) {
    let c = unsafe { cache(p) };
    if limit > c.max_key && !c.parked {
        // No page is numbered `limit` or more: nothing to drop.
        #[cfg(test)]
        counters::SKIPPED.with(|n| n.set(n.get() + 1));
        return;
    }
    #[cfg(test)]
    counters::FORWARDED.with(|n| n.set(n.get() + 1));
    if let Some(f) = default().xTruncate {
        unsafe { f(c.inner, limit) }
    }
    c.max_key = c.max_key.min(limit.saturating_sub(1));
    if limit <= c.lock_page {
        c.parked = false;
    }
}

unsafe extern "C" fn destroy(p: *mut ffi::sqlite3_pcache) {
    // SAFETY: `p` came from `create` (`Box::into_raw`), and SQLite destroys a cache once.
    let c = unsafe { Box::from_raw(p as *mut Cache) };
    if let Some(f) = default().xDestroy {
        unsafe { f(c.inner) }
    }
}

unsafe extern "C" fn shrink(p: *mut ffi::sqlite3_pcache) {
    let c = unsafe { cache(p) };
    if let Some(f) = default().xShrink {
        unsafe { f(c.inner) }
    }
}

#[cfg(test)]
pub(crate) mod counters {
    use std::cell::Cell;

    thread_local! {
        /// Truncations the wrapper found nothing to do for, on this thread (SQLite runs a
        /// connection's calls on the thread that called it).
        pub(crate) static SKIPPED: Cell<u64> = const { Cell::new(0) };
        /// Truncations passed on to SQLite's cache, on this thread.
        pub(crate) static FORWARDED: Cell<u64> = const { Cell::new(0) };
    }
}
