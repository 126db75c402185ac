//! The resourceVersions this process has written over. A reconcile reads the watch cache, which
//! trails our own writes by a few milliseconds; a reconcile queued behind one of ours (another
//! trigger arrived while it ran, such as its Issuer becoming ready) starts at once and can see the
//! object as it was before that write. Acting on that view is refused (409) at its first write,
//! but only after work that cannot be taken back: an order created at the CA and then abandoned.
//! The versions we replaced are known exactly, so a view at one of them is stale for certain,
//! without comparing resourceVersions (which are opaque to clients). In memory only: after a
//! restart the cache is fresh from its first list.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kube::{Resource, ResourceExt};

/// The versions kept per object: a reconcile writes at most a few times (status, finalizer).
const KEPT_PER_OBJECT: usize = 8;

/// A replaced version older than this is no longer taken for a stale view: the watch delivers
/// within moments, and a watch that has not caught up by then is being re-established anyway.
pub const FORGET_AFTER: Duration = Duration::from_secs(30);

/// How long a reconcile handed a replaced version waits before looking again (the watch's update,
/// when it comes first, reconciles at once).
pub const WAIT: Duration = Duration::from_millis(300);

/// Replaced resourceVersions by object uid.
#[derive(Default)]
pub struct Superseded(Mutex<Written>);

#[derive(Default)]
struct Written {
    by_uid: HashMap<String, Replaced>,
    /// The size at which old entries are next swept out (amortised: the map doubles first).
    sweep_at: usize,
}

struct Replaced {
    versions: VecDeque<String>,
    at: Instant,
}

impl Superseded {
    fn lock(&self) -> MutexGuard<'_, Written> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A write of ours moved object `uid` from version `read` to a newer one.
    pub fn wrote(&self, uid: &str, read: &str) {
        self.wrote_at(uid, read, Instant::now());
    }

    fn wrote_at(&self, uid: &str, read: &str, now: Instant) {
        let mut written = self.lock();
        if written.by_uid.len() >= written.sweep_at {
            written
                .by_uid
                .retain(|_, r| now.saturating_duration_since(r.at) < FORGET_AFTER);
            written.sweep_at = (written.by_uid.len() * 2).max(1024);
        }
        let replaced = written
            .by_uid
            .entry(uid.to_string())
            .or_insert_with(|| Replaced {
                versions: VecDeque::new(),
                at: now,
            });
        if replaced.versions.len() == KEPT_PER_OBJECT {
            replaced.versions.pop_front();
        }
        replaced.versions.push_back(read.to_string());
        replaced.at = now;
    }

    /// Whether `obj`, as a reconcile was handed it, is a version our own writes have replaced
    /// (wait for the watch). A view at any other version is past them: the entry goes.
    pub fn is_stale<K: Resource>(&self, obj: &K) -> bool {
        match (obj.meta().uid.as_deref(), obj.resource_version()) {
            (Some(uid), Some(version)) => self.is_stale_at(uid, &version, Instant::now()),
            _ => false,
        }
    }

    fn is_stale_at(&self, uid: &str, version: &str, now: Instant) -> bool {
        let mut written = self.lock();
        let Some(replaced) = written.by_uid.get(uid) else {
            return false;
        };
        let stale = now.saturating_duration_since(replaced.at) < FORGET_AFTER
            && replaced.versions.iter().any(|v| v == version);
        if !stale {
            written.by_uid.remove(uid);
        }
        stale
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().by_uid.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_at_a_version_we_wrote_over_is_stale_until_the_watch_catches_up() {
        let s = Superseded::default();
        let t = Instant::now();
        assert!(!s.is_stale_at("u", "10", t), "nothing written: current");
        s.wrote_at("u", "10", t);
        s.wrote_at("u", "11", t);
        assert!(s.is_stale_at("u", "10", t), "the version we read");
        assert!(s.is_stale_at("u", "11", t), "the one between two writes");
        assert!(!s.is_stale_at("u", "12", t), "the version we wrote last");
        assert!(
            !s.is_stale_at("u", "10", t),
            "once the view was current, the entry is gone"
        );
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn objects_are_apart_and_old_entries_are_forgotten() {
        let s = Superseded::default();
        let t = Instant::now();
        s.wrote_at("a", "5", t);
        assert!(!s.is_stale_at("b", "5", t), "another object");
        assert!(s.is_stale_at("a", "5", t + FORGET_AFTER / 2));
        assert!(
            !s.is_stale_at("a", "5", t + FORGET_AFTER),
            "too old to trust"
        );
    }

    #[test]
    fn only_the_latest_versions_of_an_object_are_kept() {
        let s = Superseded::default();
        let t = Instant::now();
        for v in 0..(KEPT_PER_OBJECT + 2) {
            s.wrote_at("u", &v.to_string(), t);
        }
        assert!(s.is_stale_at("u", &(KEPT_PER_OBJECT + 1).to_string(), t));
        assert!(s.is_stale_at("u", "2", t));
        assert!(!s.is_stale_at("u", "0", t), "dropped");
    }

    #[test]
    fn entries_of_objects_never_looked_at_again_are_swept() {
        let s = Superseded::default();
        let t = Instant::now();
        for i in 0..2000 {
            s.wrote_at(&format!("old-{i}"), "1", t);
        }
        assert_eq!(s.len(), 2000);
        let later = t + FORGET_AFTER;
        for i in 0..2100 {
            s.wrote_at(&format!("new-{i}"), "1", later);
        }
        assert!(s.len() <= 2100, "the old ones went: {}", s.len());
        assert!(s.is_stale_at("new-5", "1", later));
    }
}
