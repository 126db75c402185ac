//! When to renew, and how long to wait before retrying a failed issuance.

use std::time::Duration;

use jiff::{RoundMode, SignedDuration, Timestamp, TimestampRound, Unit};

use super::PkiError;
use crate::api::CertificateSpec;

/// The shortest retry delay [`cap_backoff_below_expiry`] will shorten a backoff to: below this
/// the controller would hammer the CA while the certificate is about to expire anyway.
pub const MIN_RETRY: Duration = Duration::from_secs(30);

/// Parses a Go `time.ParseDuration` string (`2160h`, `1h30m`, `1.5h`, `90s`, `-5m`, `0`).
///
/// Written here instead of wrapping `kube::core::Duration` because that parser accepts `""`
/// (Go rejects it) and goes through `f64`, which loses precision and panics on overflowing or
/// negative components such as `1h-5m`; a controller must not panic on a user's string. The
/// range is Go's: at most about 2562047 hours either way.
pub fn parse_go_duration(input: &str) -> Result<SignedDuration, PkiError> {
    let fail = |reason: &str| PkiError::InvalidDuration {
        input: input.to_string(),
        reason: reason.to_string(),
    };
    let (negative, mut s) = match input.as_bytes().first() {
        Some(b'-') => (true, &input[1..]),
        Some(b'+') => (false, &input[1..]),
        _ => (false, input),
    };
    if s == "0" {
        return Ok(SignedDuration::ZERO);
    }
    if s.is_empty() {
        return Err(fail("empty"));
    }
    // Go's limit: |d| <= 2^63-1 ns (and 2^63 ns when negative).
    let limit: u128 = if negative {
        i64::MAX as u128 + 1
    } else {
        i64::MAX as u128
    };
    let too_large = || fail("out of range (at most 2562047h)");
    let mut total: u128 = 0;
    while !s.is_empty() {
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, rest) = s.split_at(int_len);
        let (frac_part, rest) = match rest.strip_prefix('.') {
            Some(after) => after.split_at(after.bytes().take_while(u8::is_ascii_digit).count()),
            None => ("", rest),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(fail("expected a number"));
        }
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let (unit, rest) = rest.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            "" => return Err(fail("missing unit (use h, m, s, ms, us or ns)")),
            _ => return Err(fail("unknown unit (use h, m, s, ms, us or ns)")),
        };
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| too_large())?
        };
        let mut value = int.checked_mul(unit_nanos).ok_or_else(too_large)?;
        if !frac_part.is_empty() {
            // Digits beyond 18 cannot matter once scaled to nanoseconds of an hour.
            let digits = &frac_part[..frac_part.len().min(18)];
            let frac: u128 = digits.parse().map_err(|_| fail("bad fraction"))?;
            // At most 10^18 * 3.6 * 10^12: the product fits; the sum may not (an integer part
            // near u128::MAX), hence checked.
            value = value
                .checked_add(frac * unit_nanos / 10u128.pow(digits.len() as u32))
                .ok_or_else(too_large)?;
        }
        total = total.checked_add(value).ok_or_else(too_large)?;
        if total > limit {
            return Err(too_large());
        }
        s = rest;
    }
    let nanos = total as i128;
    Ok(SignedDuration::from_nanos_i128(if negative {
        -nanos
    } else {
        nanos
    }))
}

/// When a certificate valid from `not_before` to `not_after` should be renewed, with
/// cert-manager's rules:
///
/// 1. `renewBefore`, if set, positive and shorter than the lifetime: `notAfter - renewBefore`
///    (a too-long value must not cause endless re-issuance, so it is ignored);
/// 2. else `renewBeforePercentage` (1-99): `notAfter - lifetime * pct / 100`;
/// 3. else a third of the lifetime before `notAfter`.
///
/// The result is truncated to the second because that is all `status.renewalTime` keeps: a
/// sub-second remainder would make the requeue at the stored time fire just before the
/// computed one and find nothing due. A certificate whose `notAfter` is not after `notBefore`
/// is due at once (its `notAfter`, or `notBefore` if earlier).
pub fn renewal_time(
    not_before: Timestamp,
    not_after: Timestamp,
    renew_before: Option<SignedDuration>,
    renew_before_percentage: Option<i32>,
) -> Timestamp {
    let lifetime = not_after.duration_since(not_before);
    if !lifetime.is_positive() {
        return truncate_to_second(not_after.min(not_before));
    }
    let before = match (renew_before, renew_before_percentage) {
        (Some(rb), _) if rb.is_positive() && rb < lifetime => rb,
        (_, Some(pct)) if (1..=99).contains(&pct) => scale(lifetime, pct.into(), 100),
        _ => scale(lifetime, 1, 3),
    };
    truncate_to_second(not_after.saturating_sub(before).unwrap_or(not_before))
}

/// [`renewal_time`] with `renewBefore` and `renewBeforePercentage` taken from the spec.
pub fn renewal_time_for_spec(
    spec: &CertificateSpec,
    not_before: Timestamp,
    not_after: Timestamp,
) -> Result<Timestamp, PkiError> {
    let renew_before = spec
        .renew_before
        .as_deref()
        .map(parse_go_duration)
        .transpose()?;
    Ok(renewal_time(
        not_before,
        not_after,
        renew_before,
        spec.renew_before_percentage,
    ))
}

/// Exponential backoff after `attempts` consecutive failures: `base * 2^(attempts-1)`, at most
/// `cap`. No failure means no wait. Saturates instead of overflowing for large counts (the count
/// lives in status and grows for as long as a CA keeps refusing).
pub fn backoff(attempts: u32, base: Duration, cap: Duration) -> Duration {
    if attempts == 0 {
        return Duration::ZERO;
    }
    2u32.checked_pow(attempts - 1)
        .and_then(|factor| base.checked_mul(factor))
        .map_or(cap, |d| d.min(cap))
}

/// Shortens a retry delay so the retry happens while the current certificate is still valid:
/// never more than half the remaining lifetime, so even a second failure leaves time for a third
/// try. The limit never goes below [`MIN_RETRY`] (a backoff that is already shorter stays as
/// it is), and with no current certificate (`not_after` is `None`) the backoff is unchanged.
pub fn cap_backoff_below_expiry(
    backoff: Duration,
    now: Timestamp,
    not_after: Option<Timestamp>,
) -> Duration {
    let Some(not_after) = not_after else {
        return backoff;
    };
    let half_remaining = Duration::try_from(not_after.duration_since(now) / 2).unwrap_or_default();
    backoff.min(half_remaining.max(MIN_RETRY))
}

/// `d * num / den` in i128 nanoseconds: a multi-year lifetime times 99 overflows i64.
fn scale(d: SignedDuration, num: i128, den: i128) -> SignedDuration {
    SignedDuration::from_nanos_i128(d.as_nanos() * num / den)
}

fn truncate_to_second(t: Timestamp) -> Timestamp {
    t.round(
        TimestampRound::new()
            .smallest(Unit::Second)
            .mode(RoundMode::Floor),
    )
    .unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::test_support::ts;

    fn h(hours: i64) -> SignedDuration {
        SignedDuration::from_hours(hours)
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn parses_go_durations() {
        let cases: &[(&str, SignedDuration)] = &[
            ("0", SignedDuration::ZERO),
            ("+0", SignedDuration::ZERO),
            ("-0", SignedDuration::ZERO),
            ("0s", SignedDuration::ZERO),
            ("2160h", h(2160)),
            ("1h30m", SignedDuration::from_mins(90)),
            ("90m", SignedDuration::from_mins(90)),
            ("1.5h", SignedDuration::from_mins(90)),
            (".5h", SignedDuration::from_mins(30)),
            ("1.h", h(1)),
            ("45s", SignedDuration::from_secs(45)),
            ("1h2m3s4ms5us6ns", SignedDuration::new(3723, 4_005_006)),
            ("1\u{b5}s", SignedDuration::from_micros(1)),
            ("1\u{3bc}s", SignedDuration::from_micros(1)),
            ("-5m", SignedDuration::from_mins(-5)),
            ("+5m", SignedDuration::from_mins(5)),
            ("1.000000001s", SignedDuration::new(1, 1)),
            (
                "0.1234567891234567891234s",
                SignedDuration::new(0, 123_456_789),
            ),
            ("2562047h", h(2_562_047)),
            (
                "9223372036854775807ns",
                SignedDuration::from_nanos(i64::MAX),
            ),
            (
                "-9223372036854775808ns",
                SignedDuration::from_nanos(i64::MIN),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse_go_duration(input).unwrap(), *want, "{input}");
        }
    }

    #[test]
    fn rejects_bad_go_durations() {
        for input in [
            "",
            "-",
            "+",
            "h",
            "1",
            "10",
            "1d",
            "1 h",
            "1h 30m",
            "1h-5m",
            ".h",
            "1.5.3h",
            "3w",
            "abc",
            "1hh",
            "2562048h",
            "9223372036854775808ns",
            "99999999999999999999999999999999999999999h",
        ] {
            let err = parse_go_duration(input).unwrap_err();
            assert!(
                matches!(&err, PkiError::InvalidDuration { input: i, .. } if i == input),
                "{input}: {err}"
            );
        }
    }

    /// Found by the `durations` fuzz target once built with overflow checks: an integer part
    /// whose nanoseconds fit u128 with less room than the fraction adds overflowed the sum
    /// (a panic with overflow checks, a wrapped and accepted small value without).
    #[test]
    fn huge_components_with_fractions_are_out_of_range_not_overflow() {
        for input in [
            "340282366920938463463374607431768211.999us",
            "340282366920938463463374607431768211455.9ns",
            "340282366920938463463374607431768.9999ms",
            "94522879700260684295381.9999999h",
            "-340282366920938463463374607431768211.999us",
        ] {
            let err = parse_go_duration(input).unwrap_err();
            assert!(err.to_string().contains("out of range"), "{input}: {err}");
        }
    }

    /// Long and extreme inputs of every shape: never a panic, and anything accepted is within
    /// Go's range and agrees in sign.
    #[test]
    fn long_and_extreme_durations_never_panic() {
        let units = ["ns", "us", "\u{b5}s", "ms", "s", "m", "h"];
        let mut accepted = 0;
        for int_len in [0, 1, 9, 18, 19, 20, 35, 36, 38, 39, 40, 60, 4096] {
            for frac_len in [0, 1, 18, 19, 40, 4096] {
                for unit in units {
                    for sign in ["", "-", "+"] {
                        for digit in ['0', '1', '9'] {
                            let int: String = std::iter::repeat_n(digit, int_len).collect();
                            let frac: String = std::iter::repeat_n('9', frac_len).collect();
                            let dot = if frac_len > 0 { "." } else { "" };
                            let input = format!("{sign}{int}{dot}{frac}{unit}");
                            let twice =
                                format!("{sign}{int}{dot}{frac}{unit}{int}{dot}{frac}{unit}");
                            for text in [input, twice] {
                                if let Ok(d) = parse_go_duration(&text) {
                                    accepted += 1;
                                    assert!(
                                        d.as_nanos().unsigned_abs() <= 1 << 63,
                                        "{text}: {d:?}"
                                    );
                                    assert!(!(sign == "-" && d.is_positive()), "{text}");
                                }
                            }
                        }
                    }
                }
            }
        }
        assert!(accepted > 0);
    }

    #[test]
    fn duration_error_message_is_helpful() {
        let msg = parse_go_duration("30d").unwrap_err().to_string();
        assert!(msg.contains("\"30d\""), "{msg}");
        assert!(msg.contains("unknown unit"), "{msg}");
        assert!(msg.contains("2160h"), "{msg}");
    }

    #[test]
    fn agrees_with_kube_duration_on_common_inputs() {
        for input in [
            "2160h", "1h30m", "720h", "5m", "1.5h", "90s", "-5m", "100ms",
        ] {
            let ours = parse_go_duration(input).unwrap();
            let kube: kube::core::Duration = input.parse().unwrap();
            let abs = Duration::from(kube);
            let theirs = SignedDuration::try_from(abs).unwrap();
            let theirs = if kube.is_negative() { -theirs } else { theirs };
            assert_eq!(ours, theirs, "{input}");
        }
    }

    #[test]
    fn default_is_one_third_before_expiry() {
        let nb = ts("2025-01-01T00:00:00Z");
        let na = ts("2025-04-01T00:00:00Z"); // 90 days
        assert_eq!(renewal_time(nb, na, None, None), ts("2025-03-02T00:00:00Z"));
    }

    #[test]
    fn renew_before_wins_when_shorter_than_lifetime() {
        let nb = ts("2025-01-01T00:00:00Z");
        let na = ts("2025-04-01T00:00:00Z");
        assert_eq!(
            renewal_time(nb, na, Some(h(24 * 10)), None),
            ts("2025-03-22T00:00:00Z")
        );
        // Also over a set percentage (the CRD forbids both, but the order is defined).
        assert_eq!(
            renewal_time(nb, na, Some(h(24 * 10)), Some(50)),
            ts("2025-03-22T00:00:00Z")
        );
    }

    #[test]
    fn renew_before_not_shorter_than_lifetime_is_ignored() {
        let nb = ts("2025-01-01T00:00:00Z");
        let na = ts("2025-01-31T00:00:00Z"); // 30 days
        let third = ts("2025-01-21T00:00:00Z");
        assert_eq!(renewal_time(nb, na, Some(h(24 * 30)), None), third);
        assert_eq!(renewal_time(nb, na, Some(h(24 * 60)), None), third);
        // ...falling back to the percentage when there is one.
        assert_eq!(
            renewal_time(nb, na, Some(h(24 * 60)), Some(50)),
            ts("2025-01-16T00:00:00Z")
        );
        // Zero or negative renewBefore is treated as unset.
        assert_eq!(
            renewal_time(nb, na, Some(SignedDuration::ZERO), None),
            third
        );
        assert_eq!(renewal_time(nb, na, Some(h(-1)), None), third);
    }

    #[test]
    fn percentage_of_lifetime() {
        let nb = ts("2025-01-01T00:00:00Z");
        let na = ts("2025-04-11T00:00:00Z"); // 100 days
        assert_eq!(
            renewal_time(nb, na, None, Some(10)),
            ts("2025-04-01T00:00:00Z")
        );
        assert_eq!(
            renewal_time(nb, na, None, Some(99)),
            ts("2025-01-02T00:00:00Z")
        );
        assert_eq!(
            renewal_time(nb, na, None, Some(1)),
            ts("2025-04-10T00:00:00Z")
        );
        // Out-of-range percentages are ignored.
        let third = renewal_time(nb, na, None, None);
        for pct in [0, 100, -5, 250] {
            assert_eq!(renewal_time(nb, na, None, Some(pct)), third, "{pct}");
        }
    }

    #[test]
    fn truncates_to_whole_seconds() {
        let nb = ts("2025-01-01T00:00:00Z");
        let na = ts("2025-01-01T00:00:10Z"); // 10s: a third is 3.333s
        assert_eq!(renewal_time(nb, na, None, None), ts("2025-01-01T00:00:06Z"));
        let na = ts("2025-01-01T00:00:00.5Z");
        let got = renewal_time(ts("2024-12-31T23:59:59Z"), na, None, None);
        assert_eq!(got.subsec_nanosecond(), 0);
    }

    #[test]
    fn long_lifetimes_do_not_overflow() {
        let nb = ts("2000-01-01T00:00:00Z");
        let na = ts("2290-01-01T00:00:00Z");
        let got = renewal_time(nb, na, None, Some(99));
        assert!(got > nb && got < na, "{got}");
        let got = renewal_time(nb, na, None, None);
        assert!(got > nb && got < na, "{got}");
    }

    #[test]
    fn degenerate_validity_is_due_immediately() {
        let t = ts("2025-01-01T00:00:00Z");
        assert_eq!(renewal_time(t, t, None, None), t);
        let earlier = ts("2024-12-01T00:00:00Z");
        assert_eq!(renewal_time(t, earlier, None, None), earlier);
    }

    #[test]
    fn renewal_time_for_spec_parses_renew_before() {
        let nb = ts("2025-01-01T00:00:00Z");
        let na = ts("2025-04-01T00:00:00Z");
        let mut spec = CertificateSpec {
            renew_before: Some("240h".into()),
            ..Default::default()
        };
        assert_eq!(
            renewal_time_for_spec(&spec, nb, na).unwrap(),
            ts("2025-03-22T00:00:00Z")
        );
        spec.renew_before = None;
        spec.renew_before_percentage = Some(50);
        assert_eq!(
            renewal_time_for_spec(&spec, nb, na).unwrap(),
            ts("2025-02-15T00:00:00Z")
        );
        spec.renew_before = Some("ten days".into());
        assert!(matches!(
            renewal_time_for_spec(&spec, nb, na).unwrap_err(),
            PkiError::InvalidDuration { .. }
        ));
    }

    #[test]
    fn backoff_doubles_from_base_up_to_cap() {
        let base = secs(5);
        let cap = secs(3600);
        assert_eq!(backoff(0, base, cap), Duration::ZERO);
        assert_eq!(backoff(1, base, cap), secs(5));
        assert_eq!(backoff(2, base, cap), secs(10));
        assert_eq!(backoff(3, base, cap), secs(20));
        assert_eq!(backoff(10, base, cap), secs(2560));
        assert_eq!(backoff(11, base, cap), cap);
        assert_eq!(backoff(33, base, cap), cap);
        assert_eq!(backoff(u32::MAX, base, cap), cap);
        assert_eq!(backoff(3, Duration::MAX, cap), cap);
    }

    #[test]
    fn backoff_is_unchanged_without_a_certificate() {
        let now = ts("2025-01-01T00:00:00Z");
        assert_eq!(cap_backoff_below_expiry(secs(7200), now, None), secs(7200));
    }

    #[test]
    fn backoff_is_capped_at_half_the_remaining_lifetime() {
        let now = ts("2025-01-01T00:00:00Z");
        let na = ts("2025-01-01T02:00:00Z");
        assert_eq!(
            cap_backoff_below_expiry(secs(7200), now, Some(na)),
            secs(3600)
        );
        assert_eq!(
            cap_backoff_below_expiry(secs(600), now, Some(na)),
            secs(600)
        );
    }

    #[test]
    fn backoff_cap_never_below_minimum() {
        let now = ts("2025-01-01T00:00:00Z");
        // 20s left: half is 10s, raised to the 30s minimum.
        let soon = ts("2025-01-01T00:00:20Z");
        assert_eq!(
            cap_backoff_below_expiry(secs(3600), now, Some(soon)),
            MIN_RETRY
        );
        // Already expired.
        let past = ts("2024-12-31T00:00:00Z");
        assert_eq!(
            cap_backoff_below_expiry(secs(3600), now, Some(past)),
            MIN_RETRY
        );
        // A backoff already below the minimum is kept.
        assert_eq!(cap_backoff_below_expiry(secs(5), now, Some(past)), secs(5));
    }
}
