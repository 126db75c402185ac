//! Spreading retries in time.
//!
//! A fixed retry interval makes every object that failed together retry together: in a CA outage
//! every in-flight order polls in lockstep, and when the CA comes back it gets all of them in the
//! same second (and rate-limits them together again). Each retry delay is therefore moved by a
//! random part of itself ([`JITTER`], 20%), so that retries that start together drift apart
//! within a few rounds, while a single object still retries about when its schedule says.
//!
//! The arithmetic is pure ([`spread`], [`spread_after`]) so that it can be tested; [`jittered`]
//! and [`jittered_after`] draw the random part, [`backoff_for`] takes it from the object's name.

use std::time::Duration;

/// The largest part of a delay that jitter moves it by.
pub const JITTER: f64 = 0.2;

/// `delay` moved by up to ±20% at random: for retries whose interval is our own choice
/// (`Action::requeue` after a transient error).
pub fn jittered(delay: Duration) -> Duration {
    spread(delay, rand::random::<f64>())
}

/// `delay` lengthened by up to 20% at random, never shortened: for waits that are a minimum
/// someone else set (a CA's `Retry-After`, a rate limit's window).
pub fn jittered_after(delay: Duration) -> Duration {
    spread_after(delay, rand::random::<f64>())
}

/// Exponential backoff with jitter for one object: `base * 2^(attempts-1)` capped at `cap` (as
/// [`crate::pki::backoff`]), moved by up to ±20% by [`stable_unit`] of `key`. The due time of a
/// failed object's next try is recomputed from its status on every reconcile, so its jitter must
/// not change between reconciles; it differs between objects, which is what spreads them apart.
/// No failure means no wait.
pub fn backoff_for(key: &str, attempts: u32, base: Duration, cap: Duration) -> Duration {
    spread(
        crate::pki::backoff(attempts, base, cap),
        stable_unit(key, attempts),
    )
}

/// A number in `[0, 1)` fixed by `key` and `attempt` (within one build of the controller).
pub fn stable_unit(key: &str, attempt: u32) -> f64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    (key, attempt).hash(&mut hasher);
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// The pure part of [`jittered`]: `unit` in `[0, 1)` maps `delay` onto
/// `[delay * 0.8, delay * 1.2)`, linearly. Values outside `[0, 1]` are clamped.
pub fn spread(delay: Duration, unit: f64) -> Duration {
    delay.mul_f64(1.0 - JITTER + 2.0 * JITTER * clamp_unit(unit))
}

/// The pure part of [`jittered_after`]: `unit` in `[0, 1)` maps `delay` onto
/// `[delay, delay * 1.2)`.
pub fn spread_after(delay: Duration, unit: f64) -> Duration {
    delay.mul_f64(1.0 + JITTER * clamp_unit(unit))
}

fn clamp_unit(unit: f64) -> f64 {
    if unit.is_nan() {
        0.5
    } else {
        unit.clamp(0.0, 1.0)
    }
}

/// Consecutive transient failures per key (an order URL), for retries that must back off even
/// though they are not counted as failed issuances: a CA that is down or hangs is asked again after
/// 5 s, 10 s, 20 s... up to 5 min (jittered), not every few seconds for as long as it is down.
/// In memory only: after a restart the first retry simply comes early.
#[derive(Default, Debug)]
pub struct Backoffs(std::sync::Mutex<std::collections::HashMap<String, u32>>);

/// The first wait of [`Backoffs`].
pub const TRANSIENT_BASE: Duration = Duration::from_secs(5);
/// The longest wait of [`Backoffs`].
pub const TRANSIENT_CAP: Duration = Duration::from_secs(300);

impl Backoffs {
    /// Records one more failure for `key` and returns how long to wait before the next try.
    pub fn failed(&self, key: &str) -> Duration {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let attempts = map.entry(key.to_string()).or_insert(0);
        *attempts = attempts.saturating_add(1);
        jittered(crate::pki::backoff(
            *attempts,
            TRANSIENT_BASE,
            TRANSIENT_CAP,
        ))
    }

    /// Forgets `key`'s failures (it worked, or the thing it names is gone).
    pub fn succeeded(&self, key: &str) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S15: Duration = Duration::from_secs(15);

    #[test]
    fn spread_covers_twenty_percent_either_side() {
        assert_eq!(spread(S15, 0.0), Duration::from_secs(12));
        assert_eq!(spread(S15, 0.5), S15);
        assert_eq!(spread(S15, 1.0), Duration::from_secs(18));
        assert_eq!(spread(Duration::ZERO, 0.7), Duration::ZERO);
    }

    #[test]
    fn spread_after_never_shortens() {
        assert_eq!(spread_after(S15, 0.0), S15);
        assert_eq!(spread_after(S15, 1.0), Duration::from_secs(18));
        assert_eq!(spread_after(S15, -3.0), S15);
        assert_eq!(spread_after(S15, f64::NAN), Duration::from_secs(165) / 10);
    }

    #[test]
    fn jittered_delays_stay_in_bounds_and_differ() {
        let draws: Vec<Duration> = (0..200).map(|_| jittered(S15)).collect();
        assert!(
            draws
                .iter()
                .all(|d| *d >= Duration::from_secs(12) && *d <= Duration::from_secs(18)),
            "{draws:?}"
        );
        // 200 draws from a continuous range: lockstep would mean they are all equal.
        let distinct: std::collections::BTreeSet<_> = draws.iter().collect();
        assert!(distinct.len() > 100, "{}", distinct.len());
        assert!(
            (0..200)
                .map(|_| jittered_after(S15))
                .all(|d| d >= S15 && d <= Duration::from_secs(18))
        );
    }

    #[test]
    fn backoff_for_an_object_is_stable_and_differs_between_objects() {
        let base = Duration::from_secs(10);
        let cap = Duration::from_secs(60);
        assert_eq!(backoff_for("a", 0, base, cap), Duration::ZERO);
        for (attempts, nominal) in [(1, 10), (2, 20), (3, 40), (4, 60), (30, 60)] {
            let d = backoff_for("ns/web", attempts, base, cap);
            assert_eq!(d, backoff_for("ns/web", attempts, base, cap), "stable");
            let nominal = Duration::from_secs(nominal);
            assert!(
                d >= nominal.mul_f64(0.8) && d <= nominal.mul_f64(1.2),
                "attempt {attempts}: {d:?}"
            );
        }
        let spread: std::collections::BTreeSet<_> = (0..100)
            .map(|i| backoff_for(&format!("ns/cert-{i}"), 3, base, cap))
            .collect();
        assert!(
            spread.len() > 90,
            "100 objects, {} distinct delays",
            spread.len()
        );
    }

    #[test]
    fn transient_backoffs_grow_per_key_and_reset() {
        let b = Backoffs::default();
        let first = b.failed("o1");
        assert!(
            first >= Duration::from_secs(4) && first <= Duration::from_secs(6),
            "{first:?}"
        );
        let second = b.failed("o1");
        assert!(
            second >= Duration::from_secs(8) && second <= Duration::from_secs(12),
            "{second:?}"
        );
        // Another order starts at the beginning.
        assert!(b.failed("o2") <= Duration::from_secs(6));
        for _ in 0..20 {
            b.failed("o1");
        }
        assert!(b.failed("o1") <= TRANSIENT_CAP.mul_f64(1.2));
        b.succeeded("o1");
        assert!(b.failed("o1") <= Duration::from_secs(6));
    }
}
