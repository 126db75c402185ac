//! ACME Renewal Information (ARI, RFC 9773) arithmetic: where inside the CA's suggested window to
//! renew, when to ask the CA again, and when a certificate is close enough to expiry to warn.
//!
//! Everything is a pure function of the window, the certificate's validity, the clock and a seed.
//! The seed is derived from the certificate (its ARI identifier and the Certificate's name), so the
//! instant picked inside a window is random across certificates (many certificates issued in the
//! same minute are spread over the window instead of renewing in one burst) but stable for one
//! certificate: a restart or a re-check that sees the same window picks the same instant, and
//! status does not churn.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

/// The part of a certificate's lifetime kept free for retries: ARI instants are never later than
/// this fraction before `notAfter` (and the "expiring" warning starts there).
pub const LAST_FRACTION_DENOMINATOR: i128 = 10;

/// The CA's suggested renewal window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub start: Timestamp,
    pub end: Timestamp,
}

/// A stable 64-bit seed from the given parts (SHA-256, first eight bytes).
pub fn seed(parts: &[&str]) -> u64 {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for part in parts {
        ctx.update(part.as_bytes());
        ctx.update(&[0]);
    }
    let digest = ctx.finish();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    u64::from_be_bytes(first)
}

/// The instant `fraction` (in 1/2^64 units of `seed`) of the way from `from` to `to`.
fn point_between(from: Timestamp, to: Timestamp, seed: u64) -> Timestamp {
    let span_ms = to.duration_since(from).as_millis();
    if span_ms <= 0 {
        return from;
    }
    let offset_ms = (i128::from(seed) * span_ms) >> 64;
    let offset = SignedDuration::from_millis(i64::try_from(offset_ms).unwrap_or(i64::MAX));
    whole_second(from.checked_add(offset).unwrap_or(to))
}

/// `t` without its fraction of a second. Status times (`metav1.Time`) keep whole seconds, so an
/// instant must be whole to compare equal after a round trip through status (else every reconcile
/// would see a "changed" status and write it again).
pub fn whole_second(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

/// The latest instant an ARI-chosen renewal may have: the start of the certificate's last tenth.
pub fn latest_renewal(not_before: Timestamp, not_after: Timestamp) -> Timestamp {
    let lifetime = not_after.duration_since(not_before);
    let reserve = SignedDuration::from_nanos_i128(lifetime.as_nanos() / LAST_FRACTION_DENOMINATOR);
    not_after.checked_sub(reserve).unwrap_or(not_before)
}

/// When to renew given the CA's window (RFC 9773 §4.2): a seeded uniform instant inside it.
///
/// The window may be in the past (the CA wants the certificate replaced now, e.g. after an
/// incident or a revocation): the instant is then in the past too and the caller renews at once.
/// The window's end is clamped to the start of the certificate's last tenth so retries have room;
/// a window that opens only after that point (or after expiry) is not followed, and `fallback`
/// (the spec's own renewal time) is used, because waiting for it would let the certificate expire.
pub fn choose_renewal_time(
    window: Window,
    not_before: Timestamp,
    not_after: Timestamp,
    fallback: Timestamp,
    seed: u64,
) -> Timestamp {
    if window.end < window.start {
        return fallback;
    }
    let latest = latest_renewal(not_before, not_after);
    if window.start >= latest {
        return fallback.min(latest);
    }
    point_between(window.start, window.end.min(latest), seed)
}

/// Bounds on how often the CA is asked again about a certificate's window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecheckBounds {
    pub min: Duration,
    pub max: Duration,
}

impl Default for RecheckBounds {
    /// One hour to one day, as RFC 9773 §4.3 suggests for clients that check periodically.
    fn default() -> Self {
        RecheckBounds {
            min: Duration::from_secs(3600),
            max: Duration::from_secs(24 * 3600),
        }
    }
}

/// When to fetch the window again: the CA's `Retry-After` (or the minimum when it gave none, e.g.
/// on an error) clamped to the bounds, minus up to 10% jitter so that certificates checked
/// together drift apart.
pub fn next_check(
    now: Timestamp,
    retry_after: Option<Duration>,
    bounds: RecheckBounds,
    seed: u64,
) -> Timestamp {
    let max = bounds.max.max(bounds.min);
    let wait = retry_after.unwrap_or(bounds.min).clamp(bounds.min, max);
    let jitter_ms = (u128::from(seed) * (wait.as_millis() / 10)) >> 64;
    let wait = wait.saturating_sub(Duration::from_millis(
        u64::try_from(jitter_ms).unwrap_or(u64::MAX),
    ));
    let wait = SignedDuration::try_from(wait).unwrap_or(SignedDuration::MAX);
    whole_second(now.checked_add(wait).unwrap_or(now))
}

/// Whether `now` is inside the certificate's last tenth of lifetime (or past it).
pub fn in_last_tenth(not_before: Timestamp, not_after: Timestamp, now: Timestamp) -> bool {
    now >= latest_renewal(not_before, not_after)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    const DAY: i64 = 86_400;

    #[test]
    fn seed_is_stable_and_depends_on_every_part() {
        assert_eq!(seed(&["a", "b"]), seed(&["a", "b"]));
        assert_ne!(seed(&["a", "b"]), seed(&["a", "c"]));
        // Parts are delimited: moving a character between parts changes the seed.
        assert_ne!(seed(&["ab", ""]), seed(&["a", "b"]));
    }

    #[test]
    fn renewal_time_is_inside_the_window() {
        let window = Window {
            start: t(59 * DAY),
            end: t(61 * DAY),
        };
        for s in [0, 1, u64::MAX / 3, u64::MAX / 2, u64::MAX] {
            let at = choose_renewal_time(window, t(0), t(90 * DAY), t(60 * DAY), s);
            assert!(at >= window.start && at <= window.end, "{at} for seed {s}");
        }
        assert_eq!(
            choose_renewal_time(window, t(0), t(90 * DAY), t(0), 0),
            window.start
        );
    }

    #[test]
    fn instants_are_whole_seconds_to_survive_status() {
        let window = Window {
            start: t(59 * DAY) + SignedDuration::from_millis(250),
            end: t(61 * DAY) + SignedDuration::from_millis(750),
        };
        for s in [1, u64::MAX / 3, u64::MAX] {
            let at = choose_renewal_time(window, t(0), t(90 * DAY), t(60 * DAY), s);
            assert_eq!(at.subsec_nanosecond(), 0, "{at}");
            let check = next_check(
                t(0) + SignedDuration::from_millis(123),
                Some(Duration::from_secs(6 * 3600)),
                RecheckBounds::default(),
                s,
            );
            assert_eq!(check.subsec_nanosecond(), 0, "{check}");
        }
    }

    #[test]
    fn window_in_the_past_means_renew_now() {
        let window = Window {
            start: t(-3600),
            end: t(-3599),
        };
        let now = t(10 * DAY);
        let at = choose_renewal_time(window, t(0), t(90 * DAY), t(60 * DAY), 12345);
        assert!(at < now);
    }

    #[test]
    fn window_end_is_clamped_before_the_last_tenth() {
        // Pebble's window for a short certificate spans the whole lifetime.
        let window = Window {
            start: t(0),
            end: t(600),
        };
        for s in [0, u64::MAX / 2, u64::MAX] {
            let at = choose_renewal_time(window, t(0), t(600), t(400), s);
            assert!(
                at <= t(540),
                "{at} leaves less than a tenth of the lifetime"
            );
        }
    }

    #[test]
    fn window_opening_too_late_falls_back_to_the_spec_time() {
        let window = Window {
            start: t(89 * DAY),
            end: t(95 * DAY),
        };
        let fallback = t(60 * DAY);
        assert_eq!(
            choose_renewal_time(window, t(0), t(90 * DAY), fallback, 7),
            fallback
        );
        // An inverted window is invalid (RFC 9773 §4.2): ignored. (A window of one instant, as
        // rounding to whole seconds can make, is kept.)
        let inverted = Window {
            start: t(61 * DAY),
            end: t(59 * DAY),
        };
        assert_eq!(
            choose_renewal_time(inverted, t(0), t(90 * DAY), fallback, 7),
            fallback
        );
    }

    #[test]
    fn many_certificates_in_one_window_are_spread() {
        // 1,000 certificates issued in the same second get the same two-day window; the renewal
        // instants must cover it rather than fall in one burst.
        let window = Window {
            start: t(59 * DAY),
            end: t(61 * DAY),
        };
        let mut per_hour = [0u32; 48];
        for i in 0..1000 {
            let s = seed(&["ns", &format!("cert-{i}"), "serial"]);
            let at = choose_renewal_time(window, t(0), t(90 * DAY), t(60 * DAY), s);
            let hour = at.duration_since(window.start).as_secs() / 3600;
            per_hour[usize::try_from(hour).unwrap()] += 1;
        }
        // Uniform would be ~21 per hour; no hour holds more than 3x that, none is empty.
        assert!(per_hour.iter().all(|&n| n > 0), "{per_hour:?}");
        assert!(per_hour.iter().all(|&n| n < 63), "{per_hour:?}");
    }

    #[test]
    fn next_check_follows_retry_after_within_bounds() {
        let bounds = RecheckBounds::default();
        let now = t(0);
        // Pebble's 6 h is kept (minus at most 10% jitter).
        let at = next_check(now, Some(Duration::from_secs(6 * 3600)), bounds, u64::MAX);
        assert!(at <= t(6 * 3600) && at >= t(6 * 3600 - 2160), "{at}");
        assert_eq!(
            next_check(now, Some(Duration::from_secs(6 * 3600)), bounds, 0),
            t(6 * 3600)
        );
        // Too eager a CA is slowed to the minimum, too lax one sped up to the maximum.
        assert_eq!(
            next_check(now, Some(Duration::from_secs(5)), bounds, 0),
            t(3600)
        );
        assert_eq!(
            next_check(now, Some(Duration::from_secs(7 * DAY as u64)), bounds, 0),
            t(DAY)
        );
        // No Retry-After (an error): the minimum.
        assert_eq!(next_check(now, None, bounds, 0), t(3600));
    }

    #[test]
    fn next_check_jitter_spreads_certificates() {
        let bounds = RecheckBounds::default();
        let checks: std::collections::BTreeSet<Timestamp> = (0..100)
            .map(|i| {
                next_check(
                    t(0),
                    Some(Duration::from_secs(6 * 3600)),
                    bounds,
                    seed(&[&i.to_string()]),
                )
            })
            .collect();
        assert!(checks.len() > 90);
    }

    #[test]
    fn last_tenth_of_lifetime() {
        assert!(!in_last_tenth(t(0), t(600), t(539)));
        assert!(in_last_tenth(t(0), t(600), t(540)));
        assert!(in_last_tenth(t(0), t(600), t(700)));
        // Six-day certificates: the last 14.4 hours.
        assert!(!in_last_tenth(t(0), t(6 * DAY), t(6 * DAY - 15 * 3600)));
        assert!(in_last_tenth(t(0), t(6 * DAY), t(6 * DAY - 14 * 3600)));
    }
}
