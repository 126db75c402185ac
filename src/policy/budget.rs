//! Per-namespace and per-Certificate budgets of a shared ClusterIssuer (`policy.budget`): at
//! most N issuances in any hour, counted in memory over a sliding window. A restart (or a new
//! leader) starts counting again; the CA's own limits still stand behind it.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The window every budget counts over.
pub const WINDOW: Duration = Duration::from_secs(3600);

/// How many keys may be held before empty windows are dropped.
const PRUNE_ABOVE: usize = 1024;

/// Sliding-window counters, by key (`<issuer>/<namespace>` or `<namespace>/<certificate>`).
#[derive(Default)]
pub struct Budgets {
    windows: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Budgets {
    /// Spends one of `limit` per hour for `key` at `now`; `Err(wait)` when the budget is spent,
    /// with how long until one is free again (nothing is spent then).
    pub fn take(&self, key: &str, limit: u32, now: Instant) -> Result<(), Duration> {
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if windows.len() > PRUNE_ABOVE {
            windows.retain(|_, w| {
                forget_old(w, now);
                !w.is_empty()
            });
        }
        let window = windows.entry(key.to_string()).or_default();
        take(window, limit, now)
    }
}

/// What [`Budgets::take`] spent, by key, to give back with [`Budgets::refund`].
#[derive(Debug, Default)]
pub struct Receipt {
    pub spent: Vec<(String, Instant)>,
}

impl Budgets {
    /// Gives back what `receipt` spent (the CA was not asked after all).
    pub fn refund(&self, receipt: Receipt) {
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (key, at) in receipt.spent {
            if let Some(window) = windows.get_mut(&key)
                && let Some(i) = window.iter().rposition(|t| *t == at)
            {
                window.remove(i);
            }
        }
    }
}

/// Drops the instants that have left the window.
fn forget_old(window: &mut VecDeque<Instant>, now: Instant) {
    while window
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW)
    {
        window.pop_front();
    }
}

/// The decision on one window. Pure.
fn take(window: &mut VecDeque<Instant>, limit: u32, now: Instant) -> Result<(), Duration> {
    forget_old(window, now);
    let limit = usize::try_from(limit.max(1)).unwrap_or(usize::MAX);
    if window.len() >= limit {
        let oldest = window.front().copied().unwrap_or(now);
        return Err(WINDOW.saturating_sub(now.saturating_duration_since(oldest)));
    }
    window.push_back(now);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_allows_its_limit_per_hour_then_says_when_it_refills() {
        let budgets = Budgets::default();
        let start = Instant::now();
        for i in 0..3 {
            let at = start + Duration::from_secs(i * 60);
            assert_eq!(budgets.take("ci/team-a", 3, at), Ok(()));
        }
        let at = start + Duration::from_secs(600);
        let wait = budgets.take("ci/team-a", 3, at).unwrap_err();
        assert_eq!(wait, Duration::from_secs(3000));
        // Another key has its own budget.
        assert_eq!(budgets.take("ci/team-b", 3, at), Ok(()));
        // Once the first leaves the window, one is free again (and only one).
        let later = start + WINDOW;
        assert_eq!(budgets.take("ci/team-a", 3, later), Ok(()));
        assert!(budgets.take("ci/team-a", 3, later).is_err());
    }

    #[test]
    fn a_refused_take_spends_nothing() {
        let mut window = VecDeque::new();
        let now = Instant::now();
        assert_eq!(take(&mut window, 1, now), Ok(()));
        for _ in 0..10 {
            assert!(take(&mut window, 1, now).is_err());
        }
        assert_eq!(window.len(), 1);
    }

    #[test]
    fn a_refund_gives_back_what_was_spent() {
        let budgets = Budgets::default();
        let now = Instant::now();
        budgets.take("k", 1, now).unwrap();
        assert!(budgets.take("k", 1, now).is_err());
        budgets.refund(Receipt {
            spent: vec![("k".into(), now)],
        });
        assert_eq!(budgets.take("k", 1, now), Ok(()));
    }

    #[test]
    fn empty_windows_are_dropped_when_many_keys_are_held() {
        let budgets = Budgets::default();
        let start = Instant::now();
        for i in 0..=PRUNE_ABOVE {
            budgets.take(&format!("k{i}"), 1, start).unwrap();
        }
        budgets.take("last", 1, start + WINDOW).unwrap();
        let held = budgets.windows.lock().unwrap().len();
        assert_eq!(held, 1, "only the key taken after the window is kept");
    }
}
