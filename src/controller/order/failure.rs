//! A failed attempt: the CA's words in status and an Event, clean-up, backoff.

// The order module's imports and shared items (states, helpers).
use super::*;
use crate::controller::failover::{self, FailureKind};

/// A failed attempt: keep the CA's words in status and an Event, clean up, back off. A failure
/// that is the CA's (`kind`) moves a Certificate with `issuerRefs` to the next issuer, at once
/// (see [`failover::next_issuer`]).
pub async fn record_failure(
    ctx: &Ctx,
    api: &Api<Certificate>,
    issuer: &ResolvedIssuer,
    cert: &Certificate,
    mut status: CertificateStatus,
    message: &str,
    kind: FailureKind,
) -> Result<Action, Error> {
    let rate_limited = kind.is_rate_limited();
    cleanup_temporaries_of(ctx, cert, status.order.as_ref(), issuer).await?;
    if let Some(order) = status.order.as_ref() {
        dns01::cleanup(ctx, issuer, cert.labels(), order).await;
    }
    let action = crate::controller::attempt_action(&status);
    let attempts = status.failed_issuance_attempts.unwrap_or(0) + 1;
    let now_ts = Timestamp::now();
    let refs = cert.spec.issuer_list();
    let current = failover::status_index(&status, refs.len());
    let (next, retry_now) = failover::next_issuer(refs.len(), current, kind);
    if next != current {
        failover::record_index(&mut status, refs, next);
    }
    let delay = crate::controller::backoff::failure_delay(
        ctx,
        cert,
        issuer,
        &status,
        attempts,
        rate_limited,
        now_ts,
    );
    if let Some(order) = status.order.as_mut() {
        order.error = Some(message.to_string());
        ctx.polling_lock().remove(&order.url);
        ctx.ca_trouble.succeeded(&order.url);
        ctx.orders.forget(&order.url);
    }
    // Keep the failed order's details visible until the next attempt replaces them: clear only the
    // URL's effect by marking it done; the next issuance overwrites `order`.
    status.order = None;
    status.failed_issuance_attempts = Some(attempts);
    status.last_failure_time = Some(now());
    let delay = if retry_now {
        failover::RETRY_NOW
    } else {
        delay
    };
    let retry_at = now_ts
        .checked_add(jiff::SignedDuration::try_from(delay).unwrap_or_default())
        .unwrap_or(now_ts);
    let reason = if retry_now {
        failover::ISSUER_FAILOVER
    } else if rate_limited {
        crate::controller::backoff::RATE_LIMITED
    } else if kind == FailureKind::CaMisbehaved {
        failover::CA_MISBEHAVED
    } else {
        "Failed"
    };
    let full = match refs.get(next).filter(|_| retry_now) {
        Some(next_ref) => format!(
            "{} failed ({message}); trying {} (attempt {attempts})",
            failover::describe_ref(&issuer.ident.name, issuer.kind),
            failover::describe_ref(&next_ref.name, next_ref.kind.unwrap_or_default()),
        ),
        None => format!("{message} (attempt {attempts}; next try at {retry_at})"),
    };
    conditions::set(
        &mut status.conditions,
        ISSUING,
        false,
        reason,
        &full,
        cert.meta().generation,
        now(),
    );
    let still_valid = status.not_after.as_ref().is_some_and(|t| t.0 > now_ts);
    if !still_valid {
        set_ready(&mut status, cert, false, reason, &full);
    }
    ctx.event(cert, true, reason, &action, full.clone()).await;
    if let (Some(nb), Some(na)) = (status.not_before.as_ref(), status.not_after.as_ref())
        && na.0 > now_ts
        && pki::renewal_info::in_last_tenth(nb.0, na.0, now_ts)
    {
        ctx.event(
            cert,
            true,
            "ExpiringSoon",
            &action,
            format!(
                "The certificate in Secret {} expires at {} (last tenth of its lifetime) and renewing it has failed {attempts} time(s); next try at {retry_at}",
                cert.spec.secret_name, na.0
            ),
        )
        .await;
    }
    tracing::warn!(cert = %describe(cert), attempts, ?delay, "issuance failed: {message}");
    let updated = apply_status(ctx, api, cert, &status).await?;
    crate::controller::set_order_finalizer(ctx, api, &updated, false).await?;
    Ok(Action::requeue(delay))
}
