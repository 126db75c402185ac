//! When to come back: after a failed attempt (exponential backoff, jittered per Certificate, rate
//! limits and `Retry-After` honoured), and at a given instant.

use std::time::Duration;

use jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use super::Ctx;
use super::issuer_ref::ResolvedIssuer;
use crate::api::conditions::{self, ISSUING};
use crate::api::{Certificate, CertificateStatus};
use crate::pki;

/// Requeue exactly when something is due (at least one second from now).
pub fn requeue_at(at: Timestamp, now: Timestamp) -> Action {
    let wait = at.duration_since(now).unsigned_abs();
    Action::requeue(wait.max(Duration::from_secs(1)))
}

/// How long to wait before the next attempt after failures, or `None` to go now. A spec change
/// since the last failure (new generation) retries at once.
pub fn backoff_remaining(
    ctx: &Ctx,
    cert: &Certificate,
    issuer: &ResolvedIssuer,
    status: &CertificateStatus,
    now: Timestamp,
) -> Option<Duration> {
    let attempts = status.failed_issuance_attempts.unwrap_or(0);
    if attempts <= 0 {
        return None;
    }
    let failed_generation =
        conditions::find(&status.conditions, ISSUING).and_then(|c| c.observed_generation);
    if failed_generation.is_some() && failed_generation != cert.meta().generation {
        return None;
    }
    // The last attempt failed over to another issuer: that one goes at once.
    if conditions::find(&status.conditions, ISSUING)
        .is_some_and(|c| c.reason == super::failover::ISSUER_FAILOVER)
    {
        return None;
    }
    let last = status.last_failure_time.as_ref()?.0;
    let rate_limited =
        conditions::find(&status.conditions, ISSUING).is_some_and(|c| c.reason == RATE_LIMITED);
    let wait = failure_delay(ctx, cert, issuer, status, attempts, rate_limited, last);
    let due = last
        .checked_add(jiff::SignedDuration::try_from(wait).ok()?)
        .ok()?;
    (due > now).then(|| due.duration_since(now).unsigned_abs())
}

/// The delay after `attempts` failures, the last at `since`: the exponential backoff, jittered
/// per Certificate (so that orders that failed together, in a CA outage, do not retry together)
/// and capped so a retry comes before the current certificate expires; at least the CA's
/// `Retry-After` for the issuer's account, and after a rate limit at least 5 min (jittered) even
/// when the CA asked for less: a retry that hits the limit again costs more than it gains.
/// Recomputed from status on every reconcile, so it depends on nothing random.
pub fn failure_delay(
    ctx: &Ctx,
    cert: &Certificate,
    issuer: &ResolvedIssuer,
    status: &CertificateStatus,
    attempts: i64,
    rate_limited: bool,
    since: Timestamp,
) -> Duration {
    let attempts = attempts.clamp(0, i64::from(u32::MAX)) as u32;
    let key = format!(
        "{}/{}",
        cert.namespace().unwrap_or_default(),
        cert.name_any()
    );
    let raw = crate::retry::backoff_for(
        &key,
        attempts,
        ctx.settings.backoff_base,
        ctx.settings.backoff_cap,
    );
    let mut delay =
        pki::cap_backoff_below_expiry(raw, since, status.not_after.as_ref().map(|t| t.0));
    if rate_limited {
        let floor =
            crate::retry::spread_after(RATE_LIMIT_WAIT, crate::retry::stable_unit(&key, attempts));
        delay = delay.max(floor);
    }
    if let Some(wait) =
        ctx.accounts
            .retry_after
            .remaining(&issuer.ident.cache_key(), &issuer.acme.server, since)
    {
        delay = delay.max(wait);
    }
    delay
}

/// The least wait after a rate limit the CA gave no `Retry-After` for.
pub const RATE_LIMIT_WAIT: Duration = Duration::from_secs(300);

/// The reason of the conditions of a failure that was a rate limit (also how the backoff knows it
/// was one).
pub const RATE_LIMITED: &str = "RateLimited";
