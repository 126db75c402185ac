//! Rounds that only wait for HTTP-01 self-checks, without asking the CA.

// The order module's imports and shared items (states, helpers).
use super::*;

/// While every challenge still to do is an HTTP-01 route waiting for its self-check, nothing at the
/// CA can change: probe the routes that are due and wait, without fetching the order and its
/// authorizations from the CA (about four ACME requests per round saved). `None` when the full
/// step must run: some challenge is in another state, a route works (tell the CA), or a
/// self-check gave up.
pub(super) async fn wait_for_self_checks(
    ctx: &Ctx,
    api: &Api<Certificate>,
    cert: &Certificate,
    status: &mut CertificateStatus,
    recorded: &OrderStatus,
    issuer: &ResolvedIssuer,
) -> Result<Option<Action>, Error> {
    let waiting: Vec<&OrderAuthorization> = recorded
        .authorizations
        .iter()
        .filter(|a| a.state != Some(ChallengeState::Valid))
        .collect();
    let only_self_checks = recorded.state == Some(OrderState::Pending)
        && !waiting.is_empty()
        && waiting.iter().all(|a| {
            a.challenge_type == Some(ChallengeKind::Http01)
                && a.state == Some(ChallengeState::Presented)
                && a.key_authorization.is_some()
                // Applied by this process and not yet told: else the full step applies or polls.
                && a.token.as_deref().is_some_and(|t| {
                    ctx.http01_clocks.age(t).is_some() && !ctx.orders.was_told(t)
                })
        });
    if !only_self_checks {
        return Ok(None);
    }
    let Some(owner) = owner_reference(cert) else {
        return Ok(None);
    };
    let (cert_ns, cert_name) = (cert.namespace().unwrap_or_default(), cert.name_any());
    let mut messages = Vec::new();
    let mut wake = Duration::from_secs(5);
    for a in &waiting {
        let bare = a.identifier.trim_start_matches("*.");
        let target = Target {
            name: bare,
            wildcard: a.wildcard.unwrap_or(false),
            is_ip: bare.parse::<std::net::IpAddr>().is_ok(),
        };
        let Some(http01) =
            select(&issuer.acme.solvers, target, cert.labels()).and_then(|s| s.http01.as_ref())
        else {
            return Ok(None);
        };
        let (token, key_authorization) = (
            a.token.as_deref().unwrap_or_default(),
            a.key_authorization.as_deref().unwrap_or_default(),
        );
        let route = Route {
            namespace: &cert_ns,
            certificate: &cert_name,
            owner: owner.clone(),
            host: bare,
            token,
        };
        match http01::check_without_telling(
            ctx,
            &route,
            http01,
            key_authorization,
            a.error.as_deref(),
        )
        .await
        {
            CheckStep::Wait { message, retry_in } => {
                wake = wake.min(retry_in);
                if http01::wait_worth_reporting(ctx, token) {
                    messages.push((a.url.clone(), message));
                }
            }
            CheckStep::Tell | CheckStep::GiveUp(_) => return Ok(None),
        }
    }
    let mut updated = recorded.clone();
    for (url, message) in messages {
        if let Some(a) = updated.authorizations.iter_mut().find(|a| a.url == url) {
            a.error = Some(message);
        }
    }
    if record::worth_recording(status.order.as_ref(), &updated) {
        status.order = Some(updated);
        apply_status(ctx, api, cert, status).await?;
    }
    Ok(Some(Action::requeue(wake.clamp(
        Duration::from_millis(100),
        Duration::from_secs(5),
    ))))
}
