//! What the controller remembers in memory about orders in flight, between reconciles of the
//! same order: the ACME order handle (it carries the CA's last nonce, so the next step asks the CA
//! once instead of twice), the next private key (so finalizing needs no Secret read), the
//! challenges told to the CA (their state is not written to status: the CA reports it again).
//! A reconcile on a status older than our own last write is stopped before it reads any of these
//! (see [`super::superseded`]). After a restart, or when an entry was dropped, everything is
//! restored from status, the next-key Secret and the CA as before: these memos are an
//! optimisation only, never the record.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use instant_acme::Order;

use crate::pki::PrivateKey;

/// A handle not used for this long is dropped (an order still in flight is reconciled at least
/// every 30 s; a longer gap means the attempt ended or the controller lost the lease).
pub const IDLE_LIMIT: Duration = Duration::from_secs(600);

/// At most this many handles are kept (a handle is about 1 KiB); past it the oldest go first.
pub const MAX_HANDLES: usize = 20_000;

/// Order handles by order URL, and the URLs whose attempt ended while a reconcile held the handle.
#[derive(Default)]
pub struct OrderHandles(Mutex<Handles>);

#[derive(Default)]
struct Handles {
    kept: HashMap<String, (Order, Instant)>,
    /// Orders whose attempt ended here, so that a handle still held is not kept again.
    ended: HashMap<String, Instant>,
    /// The next private key of an order, by order URL.
    keys: HashMap<String, PrivateKey>,
    /// Challenge tokens the CA was told about, with when.
    told: HashMap<String, Instant>,
    /// Orders whose last round left a challenge for us to present or tell: their kept handle's
    /// authorizations (instant-acme serves them from memory) may be used without a refresh, since
    /// only we move those challenges on. Any other kept handle is refreshed first.
    authorizations_current: HashMap<String, Instant>,
    /// `namespace/name` -> what this process wrote when it last issued that Certificate.
    issued: HashMap<String, Issued>,
}

/// What an issuance wrote: the Certificate's and the Secret's resourceVersions after it, and when
/// to look again. A reconcile that sees exactly that Certificate (the echo of our own writes)
/// has nothing to read or decide.
struct Issued {
    certificate_rv: String,
    secret_rv: String,
    wake: jiff::Timestamp,
    at: Instant,
}

/// How long the echo of an issuance is recognised (the watch delivers it within moments).
pub const ECHO_LIMIT: Duration = Duration::from_secs(60);

impl OrderHandles {
    fn lock(&self) -> MutexGuard<'_, Handles> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The kept handle of the order at `url`, taken out (a reconcile owns it while it works).
    pub fn take(&self, url: &str) -> Option<Order> {
        self.lock().kept.remove(url).map(|(order, _)| order)
    }

    /// Records whether the round just done on the order at `url` left a challenge for us to
    /// present or tell (see `authorizations_current` above).
    pub fn set_authorizations_current(&self, url: &str, current: bool) {
        let mut handles = self.lock();
        if !current {
            handles.authorizations_current.remove(url);
            return;
        }
        let now = Instant::now();
        handles
            .authorizations_current
            .retain(|_, at| now.duration_since(*at) < IDLE_LIMIT);
        if handles.authorizations_current.len() < MAX_HANDLES {
            handles.authorizations_current.insert(url.to_string(), now);
        }
    }

    /// Whether the kept handle of the order at `url` may be used without a refresh; asking
    /// consumes the answer (the next round decides again).
    pub fn take_authorizations_current(&self, url: &str) -> bool {
        self.lock().authorizations_current.remove(url).is_some()
    }

    /// Keeps `order` for the next reconcile, unless its attempt ended meanwhile ([`Self::forget`]),
    /// and drops handles idle past [`IDLE_LIMIT`].
    pub fn keep(&self, order: Order) {
        let now = Instant::now();
        let mut guard = self.lock();
        let Handles {
            kept: handles,
            ended,
            ..
        } = &mut *guard;
        ended.retain(|_, at| now.duration_since(*at) < IDLE_LIMIT);
        if ended.contains_key(order.url()) {
            return;
        }
        handles.retain(|_, (_, used)| now.duration_since(*used) < IDLE_LIMIT);
        if handles.len() >= MAX_HANDLES
            && let Some(oldest) = handles
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(url, _)| url.clone())
        {
            handles.remove(&oldest);
        }
        handles.insert(order.url().to_string(), (order, now));
    }

    /// Drops the handle of an order whose attempt ended (completed, failed, gone at the CA), also
    /// when the reconcile that ended it still holds the handle, and what else was kept for it.
    pub fn forget(&self, url: &str) {
        let mut handles = self.lock();
        handles.kept.remove(url);
        handles.authorizations_current.remove(url);
        handles.keys.remove(url);
        if handles.ended.len() < MAX_HANDLES {
            handles.ended.insert(url.to_string(), Instant::now());
        }
    }

    /// Keeps the next private key of the order at `url`, recorded in status by this process.
    pub fn keep_key(&self, url: &str, key: PrivateKey) {
        let now = Instant::now();
        let mut guard = self.lock();
        let handles = &mut *guard;
        handles
            .told
            .retain(|_, at| now.duration_since(*at) < IDLE_LIMIT);
        if handles.keys.len() >= MAX_HANDLES {
            // Past the bound the memos are only lost savings: start again.
            handles.keys.clear();
        }
        handles.keys.insert(url.to_string(), key);
    }

    /// The next private key of the order at `url`, if kept.
    pub fn key(&self, url: &str) -> Option<PrivateKey> {
        self.lock().keys.get(url).cloned()
    }

    /// Remembers what an issuance of Certificate `key` (`namespace/name`) wrote.
    pub fn issued(&self, key: &str, certificate_rv: &str, secret_rv: &str, wake: jiff::Timestamp) {
        let now = Instant::now();
        let mut handles = self.lock();
        handles
            .issued
            .retain(|_, i| now.duration_since(i.at) < ECHO_LIMIT);
        if handles.issued.len() < MAX_HANDLES {
            handles.issued.insert(
                key.to_string(),
                Issued {
                    certificate_rv: certificate_rv.to_string(),
                    secret_rv: secret_rv.to_string(),
                    wake,
                    at: now,
                },
            );
        }
    }

    /// When to look again, if `certificate_rv` is the Certificate exactly as our issuance left it
    /// (and its Secret has not changed since) and that time is still ahead: the reconcile is only
    /// the echo of our own writes. Any other version, or the time come, ends the memo.
    pub fn echo_of_issuance(&self, key: &str, certificate_rv: &str) -> Option<jiff::Timestamp> {
        let mut handles = self.lock();
        let issued = handles.issued.get(key)?;
        if issued.certificate_rv == certificate_rv
            && issued.at.elapsed() < ECHO_LIMIT
            && jiff::Timestamp::now() < issued.wake
        {
            return Some(issued.wake);
        }
        handles.issued.remove(key);
        None
    }

    /// A TLS Secret of Certificate `key` was seen at `secret_rv`: `true` when that is our own
    /// write (nothing to reconcile); otherwise the memo ends, so the reconcile reads the Secret.
    pub fn secret_seen(&self, key: &str, secret_rv: &str) -> bool {
        let mut handles = self.lock();
        match handles.issued.get(key) {
            Some(i) if i.secret_rv == secret_rv => true,
            Some(_) => {
                handles.issued.remove(key);
                false
            }
            None => false,
        }
    }

    /// Remembers that the CA was told the challenge with `token` is ready.
    pub fn told(&self, token: &str) {
        let mut handles = self.lock();
        if handles.told.len() < MAX_HANDLES {
            handles.told.insert(token.to_string(), Instant::now());
        }
    }

    /// Whether the CA was told about the challenge with `token` in this process.
    pub fn was_told(&self, token: &str) -> bool {
        self.lock().told.contains_key(token)
    }

    /// Forgets a told challenge (its attempt ended).
    pub fn forget_told(&self, token: &str) {
        self.lock().told.remove(token);
    }

    /// How many handles are kept.
    pub fn len(&self) -> usize {
        self.lock().kept.len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether a handle is worth keeping after a step: only while the order can still move.
pub fn worth_keeping(state: instant_acme::OrderStatus) -> bool {
    !matches!(
        state,
        instant_acme::OrderStatus::Valid | instant_acme::OrderStatus::Invalid
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_orders_that_can_still_move_are_kept() {
        use instant_acme::OrderStatus::*;
        assert!(worth_keeping(Pending));
        assert!(worth_keeping(Ready));
        assert!(worth_keeping(Processing));
        assert!(!worth_keeping(Valid));
        assert!(!worth_keeping(Invalid));
    }

    #[test]
    fn an_orders_next_key_is_kept_until_its_attempt_ends() {
        let handles = OrderHandles::default();
        let key = crate::pki::generate(&crate::pki::KeySpec::default()).unwrap();
        let url = "https://ca.test/order/7";
        assert!(handles.key(url).is_none());
        handles.keep_key(url, key.clone());
        assert!(handles.key(url) == Some(key));
        assert!(handles.key("https://ca.test/order/8").is_none());
        handles.forget(url);
        assert!(handles.key(url).is_none(), "the key goes with the attempt");
    }

    #[test]
    fn the_echo_of_an_issuance_is_recognised_until_anything_else_changes() {
        let handles = OrderHandles::default();
        let wake = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3600);
        assert_eq!(handles.echo_of_issuance("ns/web", "10"), None);
        handles.issued("ns/web", "10", "7", wake);
        assert_eq!(handles.echo_of_issuance("ns/web", "10"), Some(wake));
        assert!(handles.secret_seen("ns/web", "7"), "our own Secret write");
        assert_eq!(
            handles.echo_of_issuance("ns/web", "10"),
            Some(wake),
            "still the echo"
        );
        assert!(
            !handles.secret_seen("ns/web", "8"),
            "someone changed the Secret"
        );
        assert_eq!(
            handles.echo_of_issuance("ns/web", "10"),
            None,
            "so the next reconcile reads it"
        );
        handles.issued("ns/web", "10", "7", wake);
        assert_eq!(
            handles.echo_of_issuance("ns/web", "11"),
            None,
            "spec edited"
        );
        assert_eq!(handles.echo_of_issuance("ns/web", "10"), None, "memo ended");
    }

    #[test]
    fn a_handle_is_reused_as_it_is_only_once_after_a_round_that_left_work_for_us() {
        let handles = OrderHandles::default();
        assert!(
            !handles.take_authorizations_current("u"),
            "by default: refresh"
        );
        handles.set_authorizations_current("u", true);
        assert!(handles.take_authorizations_current("u"));
        assert!(!handles.take_authorizations_current("u"), "asked once");
        handles.set_authorizations_current("u", true);
        handles.set_authorizations_current("u", false);
        assert!(!handles.take_authorizations_current("u"));
        handles.set_authorizations_current("u", true);
        handles.forget("u");
        assert!(
            !handles.take_authorizations_current("u"),
            "the attempt ended"
        );
    }

    #[test]
    fn told_challenges_are_remembered_by_token() {
        let handles = OrderHandles::default();
        assert!(!handles.was_told("tok"));
        handles.told("tok");
        assert!(handles.was_told("tok"));
        handles.forget_told("tok");
        assert!(!handles.was_told("tok"));
    }

    #[test]
    fn an_empty_store_has_nothing_to_take() {
        let handles = OrderHandles::default();
        assert!(handles.is_empty());
        assert!(handles.take("https://ca.test/order/1").is_none());
        handles.forget("https://ca.test/order/1");
        assert_eq!(handles.len(), 0);
    }
}
