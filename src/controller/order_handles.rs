//! The ACME order handles of orders in flight, kept in memory between reconciles of the same
//! order. A handle carries the CA's last nonce, so the next step asks the CA once (the order)
//! instead of twice (a new nonce, then the order). After a restart, or when a handle was dropped,
//! the order is restored from the URL in status as before: the handles are an optimisation only,
//! never the record.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use instant_acme::Order;

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
    ended: HashMap<String, Instant>,
}

impl OrderHandles {
    fn lock(&self) -> MutexGuard<'_, Handles> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The kept handle of the order at `url`, taken out (a reconcile owns it while it works).
    pub fn take(&self, url: &str) -> Option<Order> {
        self.lock().kept.remove(url).map(|(order, _)| order)
    }

    /// Keeps `order` for the next reconcile, unless its attempt ended meanwhile ([`Self::forget`]),
    /// and drops handles idle past [`IDLE_LIMIT`].
    pub fn keep(&self, order: Order) {
        let now = Instant::now();
        let mut guard = self.lock();
        let Handles {
            kept: handles,
            ended,
        } = &mut *guard;
        ended.retain(|_, at| now.duration_since(*at) < IDLE_LIMIT);
        if ended.remove(order.url()).is_some() {
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
    /// when the reconcile that ended it still holds the handle.
    pub fn forget(&self, url: &str) {
        let mut handles = self.lock();
        handles.kept.remove(url);
        if handles.ended.len() < MAX_HANDLES {
            handles.ended.insert(url.to_string(), Instant::now());
        }
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
    fn an_empty_store_has_nothing_to_take() {
        let handles = OrderHandles::default();
        assert!(handles.is_empty());
        assert!(handles.take("https://ca.test/order/1").is_none());
        handles.forget("https://ca.test/order/1");
        assert_eq!(handles.len(), 0);
    }
}
