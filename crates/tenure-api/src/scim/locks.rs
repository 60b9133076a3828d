//! Striped locks that serialize the changes to one SCIM resource: a fixed set of async
//! mutexes, each resource always mapped to the same one, so a busy server holds no lock per
//! resource and a user's changes still reach the engine in the order of its versions. They
//! belong to one [`crate::AppState`], so two servers in one process never share them.

use tokio::sync::{Mutex, MutexGuard};

/// The resource a change holds the lock of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockKey<'a> {
    /// A user, by id.
    User(&'a str),
    /// A pushed group, by id.
    Group(&'a str),
}

impl LockKey<'_> {
    /// FNV-1a over the key's bytes: a user's id, `group:` and a group's id.
    fn hash(self) -> u64 {
        let (prefix, id) = match self {
            LockKey::User(id) => ("", id),
            LockKey::Group(id) => ("group:", id),
        };
        prefix
            .bytes()
            .chain(id.bytes())
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            })
    }
}

/// A fixed number of locks; a key always maps to the same one.
pub(crate) struct StripedLocks {
    stripes: Box<[Mutex<()>]>,
}

impl StripedLocks {
    /// How many locks a server has: enough that unrelated resources seldom wait on each other.
    pub(crate) const STRIPES: usize = 256;

    /// `n` locks (at least one).
    pub(crate) fn new(n: usize) -> Self {
        StripedLocks {
            stripes: (0..n.max(1)).map(|_| Mutex::new(())).collect(),
        }
    }

    /// The index of the lock `key` maps to.
    fn stripe(&self, key: LockKey<'_>) -> usize {
        // The remainder is below the number of stripes, a `usize`.
        (key.hash() % self.stripes.len() as u64) as usize
    }

    /// Waits for the lock of `key` and holds it until the guard is dropped.
    pub(crate) async fn lock(&self, key: LockKey<'_>) -> MutexGuard<'_, ()> {
        self.stripes[self.stripe(key)].lock().await
    }
}

impl Default for StripedLocks {
    fn default() -> Self {
        StripedLocks::new(StripedLocks::STRIPES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_always_takes_the_same_lock_and_no_other() {
        let locks = StripedLocks::default();
        let held = locks.lock(LockKey::User("E001")).await;
        let same = locks.stripe(LockKey::User("E001"));
        assert!(
            locks.stripes[same].try_lock().is_err(),
            "the same user waits"
        );
        // A key on another stripe goes ahead while the first is held.
        let other = (0..100)
            .map(|i| format!("E{i:03}"))
            .find(|id| locks.stripe(LockKey::User(id)) != same)
            .expect("100 ids do not all share one of 256 stripes");
        let guard = locks.stripes[locks.stripe(LockKey::User(&other))].try_lock();
        assert!(guard.is_ok(), "another user goes ahead");
        drop(guard);
        drop(held);
        assert!(locks.stripes[same].try_lock().is_ok(), "released on drop");
    }

    #[test]
    fn users_and_groups_are_keyed_apart_as_before() {
        // A group is keyed `group:{id}`: the stripe of the user of that name.
        let locks = StripedLocks::default();
        assert_eq!(
            locks.stripe(LockKey::Group("g1")),
            locks.stripe(LockKey::User("group:g1"))
        );
        assert_ne!(LockKey::Group("g1").hash(), LockKey::User("g1").hash());
        assert_eq!(StripedLocks::new(0).stripes.len(), 1);
    }

    #[tokio::test]
    async fn two_sets_of_locks_share_nothing() {
        let (a, b) = (StripedLocks::default(), StripedLocks::default());
        let _held = a.lock(LockKey::User("E001")).await;
        let stripe = b.stripe(LockKey::User("E001"));
        assert!(b.stripes[stripe].try_lock().is_ok());
    }
}
