//! Driving an ACME order one step per reconcile: present challenges, tell the CA, poll, finalize,
//! store the certificate, clean up. Everything the next step needs is in the Certificate's status.

use std::time::{Duration, Instant};

use instant_acme::{Account, AuthorizationStatus, ChallengeType, NewOrder};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use super::backoff::requeue_at;
use super::http01::{self, CheckStep, PresentError};
use super::issuer_ref::{ResolvedIssuer, account_for, account_key_der, issuer_account_config};
use super::{
    Ctx, FIELD_MANAGER, apply_body, apply_status, describe, dns01, now, owner_reference, set_ready,
};
use crate::acme::{AcmeError, problem_text};
use crate::api::conditions::{self, ISSUING};
use crate::api::{Certificate, CertificateStatus, OrderAuthorization, OrderStatus};
use crate::error::{Error, KubeContext, is_not_found};
use crate::labels;
use crate::pki::{self, Identifier};
use crate::secret::{self, TLS_KEY, TlsContents, data_str};
use crate::solver::dns01::txt_value as dns01_txt_value;
use crate::solver::http01::routing::Route;
use crate::solver::select::{Target, select};

/// Challenge states we record (the CA's own plus `presented`: our side is ready, the CA not yet told).
const PRESENTED: &str = "presented";
const PROCESSING: &str = "processing";

/// How soon to repeat a step the CA refused for a transient reason (a refused nonce).
pub const TRANSIENT_RETRY: Duration = Duration::from_secs(1);

/// Why the CA was not told a challenge is ready.
enum TellFailure {
    /// Worth repeating at once (see [`AcmeError::is_bad_nonce`]).
    Transient(String),
    /// The attempt failed; the message to record.
    Failed(String),
}

/// Creates the order; `replaces` is the ARI identifier of the certificate it renews.
pub async fn create_order(
    ctx: &Ctx,
    account: &Account,
    identifiers: &[Identifier],
    profile: Option<&str>,
    replaces: Option<&str>,
) -> Result<(OrderStatus, instant_acme::Order), AcmeError> {
    let ids: Vec<instant_acme::Identifier> = identifiers
        .iter()
        .map(|i| match i {
            Identifier::Dns(name) => instant_acme::Identifier::Dns(name.clone()),
            Identifier::Ip(ip) => instant_acme::Identifier::Ip(*ip),
        })
        .collect();
    let mut request = NewOrder::new(&ids);
    if let Some(p) = profile {
        request = request.profile(p);
    }
    if let Some((aki, serial)) = replaces.and_then(|r| r.split_once('.')) {
        request = request.replaces(instant_acme::CertificateIdentifier {
            authority_key_identifier: aki.into(),
            serial: serial.into(),
        });
    }
    let mut order = account.new_order(&request).await?;
    ctx.metrics.acme_orders_created.inc();
    let url = order.url().to_string();
    let state = order.state();
    let recorded = OrderStatus {
        url,
        state: Some(order_state_str(state.status).to_string()),
        authorizations: Vec::new(),
        error: None,
        profile: state.profile.clone(),
        replaces: state.replaces.as_ref().map(ToString::to_string),
    };
    Ok((recorded, order))
}

fn order_state_str(s: instant_acme::OrderStatus) -> &'static str {
    match s {
        instant_acme::OrderStatus::Pending => "pending",
        instant_acme::OrderStatus::Ready => "ready",
        instant_acme::OrderStatus::Processing => "processing",
        instant_acme::OrderStatus::Valid => "valid",
        instant_acme::OrderStatus::Invalid => "invalid",
    }
}

fn authz_state_str(s: AuthorizationStatus) -> &'static str {
    match s {
        AuthorizationStatus::Pending => "pending",
        AuthorizationStatus::Valid => "valid",
        AuthorizationStatus::Invalid => "invalid",
        AuthorizationStatus::Revoked => "revoked",
        AuthorizationStatus::Expired => "expired",
        AuthorizationStatus::Deactivated => "deactivated",
    }
}

/// One step of the order in flight.
pub async fn drive_order(
    ctx: &Ctx,
    api: &Api<Certificate>,
    cert: &Certificate,
    mut status: CertificateStatus,
    recorded: OrderStatus,
    issuer: &ResolvedIssuer,
) -> Result<Action, Error> {
    if let Some(action) =
        wait_for_self_checks(ctx, api, cert, &mut status, &recorded, issuer).await?
    {
        return Ok(action);
    }
    let account = account_for(ctx, issuer).await?;
    // The handle kept from the last step (its nonce saves asking the CA for one), refreshed; or,
    // after a restart, the order restored from its URL.
    let fetched = match ctx.orders.take(&recorded.url) {
        Some(mut kept) => match kept.refresh().await {
            Ok(_) => Ok(kept),
            Err(e) => Err(AcmeError::from(e)),
        },
        None => account
            .order(recorded.url.clone())
            .await
            .map_err(AcmeError::from),
    };
    let mut order = match fetched {
        Ok(order) => {
            ctx.ca_trouble.succeeded(&recorded.url);
            order
        }
        Err(e) if e.is_not_found() => {
            ctx.ca_trouble.succeeded(&recorded.url);
            // The CA no longer has it (expired, or another CA now): start over.
            tracing::info!(cert = %describe(cert), order = %recorded.url, "order gone at the CA; starting a new one");
            ctx.orders.forget(&recorded.url);
            cleanup_temporaries_of(ctx, cert, Some(&recorded)).await?;
            dns01::cleanup(ctx, issuer, cert.labels(), &recorded).await;
            status.order = None;
            apply_status(api, cert, &status).await?;
            return Ok(Action::requeue(Duration::from_secs(1)));
        }
        Err(e) if e.is_bad_nonce() => {
            tracing::debug!(cert = %describe(cert), error = %e, "fetching the order: nonce refused; retrying");
            return Ok(Action::requeue(crate::retry::jittered(TRANSIENT_RETRY)));
        }
        Err(e) => {
            // Network trouble or a CA hiccup: try again later without counting a failure.
            let wait = ctx.ca_trouble.failed(&recorded.url);
            tracing::warn!(cert = %describe(cert), error = %e, ?wait, "fetching the order failed");
            return Ok(Action::requeue(wait));
        }
    };
    let result = step_order(
        ctx, api, cert, status, recorded, issuer, &account, &mut order,
    )
    .await;
    if result.is_ok() && super::order_handles::worth_keeping(order.state().status) {
        ctx.orders.keep(order);
    }
    result
}

/// The step for the order's state at the CA: present and tell, finalize, or complete.
#[allow(clippy::too_many_arguments)]
async fn step_order(
    ctx: &Ctx,
    api: &Api<Certificate>,
    cert: &Certificate,
    mut status: CertificateStatus,
    recorded: OrderStatus,
    issuer: &ResolvedIssuer,
    account: &Account,
    order: &mut instant_acme::Order,
) -> Result<Action, Error> {
    let state = order.state().status;
    let mut recorded = recorded;
    recorded.state = Some(order_state_str(state).to_string());
    match state {
        instant_acme::OrderStatus::Pending => {
            present_challenges(ctx, api, cert, status, recorded, issuer, account, order).await
        }
        instant_acme::OrderStatus::Ready => {
            let key = next_key(ctx, cert, &status).await?;
            let csr = pki::csr_for_spec(&key, &cert.spec).map_err(|source| Error::Pki {
                context: format!("building the CSR of Certificate {}", describe(cert)),
                source,
            })?;
            if let Err(e) = order.finalize_csr(&csr).await.map_err(AcmeError::from) {
                if e.is_bad_nonce() {
                    tracing::debug!(cert = %describe(cert), error = %e, "finalize refused the nonce; retrying");
                    return Ok(Action::requeue(crate::retry::jittered(TRANSIENT_RETRY)));
                }
                let text = e
                    .problem()
                    .map(problem_text)
                    .unwrap_or_else(|| e.to_string());
                return record_failure(
                    ctx,
                    api,
                    issuer,
                    cert,
                    status,
                    &format!("finalizing the order failed: {text}"),
                    e.is_rate_limited(),
                )
                .await;
            }
            crate::crash::point(
                "order-finalized",
                &cert.namespace().unwrap_or_default(),
                &order.url(),
            );
            if order.state().status == instant_acme::OrderStatus::Valid {
                return complete(ctx, api, cert, status, order, issuer, key).await;
            }
            recorded.state = Some(order_state_str(order.state().status).to_string());
            if status.order.as_ref() != Some(&recorded) {
                status.order = Some(recorded);
                apply_status(api, cert, &status).await?;
            }
            Ok(Action::requeue(Duration::from_millis(500)))
        }
        instant_acme::OrderStatus::Processing => Ok(Action::requeue(Duration::from_millis(500))),
        instant_acme::OrderStatus::Valid => {
            let key = next_key(ctx, cert, &status).await?;
            complete(ctx, api, cert, status, order, issuer, key).await
        }
        instant_acme::OrderStatus::Invalid => {
            let mut errors = Vec::new();
            if let Some(p) = &order.state().error {
                errors.push(problem_text(p));
            }
            let mut authzs = order.authorizations();
            while let Some(Ok(authz)) = authzs.next().await {
                for ch in &authz.challenges {
                    if let Some(p) = &ch.error {
                        errors.push(format!("{}: {}", authz.identifier(), problem_text(p)));
                    }
                }
            }
            if errors.is_empty() {
                errors.push("the CA marked the order invalid without saying why".into());
            }
            record_failure(
                ctx,
                api,
                issuer,
                cert,
                status,
                &format!("the order failed: {}", errors.join("; ")),
                false,
            )
            .await
        }
    }
}

/// Pending order: make each pending challenge answerable, then (next reconcile, once the status
/// that the challenge servers read carries the token) tell the CA.
#[allow(clippy::too_many_arguments)]
pub async fn present_challenges(
    ctx: &Ctx,
    api: &Api<Certificate>,
    cert: &Certificate,
    mut status: CertificateStatus,
    mut recorded: OrderStatus,
    issuer: &ResolvedIssuer,
    account: &Account,
    order: &mut instant_acme::Order,
) -> Result<Action, Error> {
    let previous = recorded.authorizations.clone();
    // The Certificate as last written here: a write-ahead status write moves its resourceVersion.
    let mut latest = std::borrow::Cow::Borrowed(cert);
    let cert_ns = cert.namespace().unwrap_or_default();
    let cert_name = cert.name_any();
    let thumbprint = account.key_thumbprint().to_string();
    let mut current = Vec::new();
    let mut told_ca = false;
    // Sooner than the usual 2 s fallback, when a wait ends before that.
    let mut wake_in: Option<Duration> = None;
    let mut failure: Option<String> = None;
    let mut transient: Option<String> = None;
    let mut authzs = order.authorizations();
    while let Some(next) = authzs.next().await {
        let mut authz = match next {
            Ok(a) => a,
            Err(e) => {
                let e = AcmeError::from(e);
                if e.is_bad_nonce() {
                    tracing::debug!(cert = %describe(cert), error = %e, "fetching an authorization: nonce refused; retrying");
                    return Ok(Action::requeue(crate::retry::jittered(TRANSIENT_RETRY)));
                }
                let wait = ctx.ca_trouble.failed(&recorded.url);
                tracing::warn!(cert = %describe(cert), error = %e, ?wait, "fetching an authorization failed");
                return Ok(Action::requeue(wait));
            }
        };
        let url = authz.url().to_string();
        let identifier = authz.identifier().to_string();
        let bare = identifier.trim_start_matches("*.").to_string();
        let was = previous
            .iter()
            .find(|a| a.url.as_deref() == Some(url.as_str()))
            .cloned();
        let mut entry = was.clone().unwrap_or(OrderAuthorization {
            identifier: identifier.clone(),
            wildcard: authz.wildcard.then_some(true),
            url: Some(url.clone()),
            ..OrderAuthorization::default()
        });
        match authz.status {
            AuthorizationStatus::Valid => {
                entry.state = Some("valid".into());
            }
            AuthorizationStatus::Pending => {
                let target = Target {
                    name: &bare,
                    wildcard: authz.wildcard,
                    is_ip: matches!(
                        authz.identifier().identifier,
                        instant_acme::Identifier::Ip(_)
                    ),
                };
                let Some(solver) = select(&issuer.acme.solvers, target, cert.labels()) else {
                    failure = Some(format!(
                        "no solver of {} {} can take {identifier}",
                        issuer.ident.kind, issuer.ident.name
                    ));
                    break;
                };
                if let Some(dns01) = &solver.dns01 {
                    let challenge = match offered(&authz.challenges, &ChallengeType::Dns01) {
                        Ok(c) => c,
                        Err(kind) => {
                            failure = Some(format!(
                                "the CA offered no {kind} challenge for {identifier}"
                            ));
                            break;
                        }
                    };
                    let token = challenge.token.clone();
                    let challenge_state = challenge.status;
                    let value = dns01_txt_value(&format!("{token}.{thumbprint}"));
                    entry.challenge_type = Some("dns-01".into());
                    entry.challenge_url = Some(challenge.url.clone());
                    let same_token =
                        was.as_ref().and_then(|w| w.token.as_deref()) == Some(token.as_str());
                    entry.token = Some(token);
                    let recorded_state = was.as_ref().and_then(|w| w.state.clone());
                    match (challenge_state, recorded_state.as_deref()) {
                        (instant_acme::ChallengeStatus::Pending, Some(PRESENTED)) if same_token => {
                            let name = entry.record_name.clone().unwrap_or_default();
                            // Every status write wakes us at once: pace the checks of a record.
                            let key = dns01::change_key(&name, &value);
                            let since = ctx.dns01_checked_lock().get(&key).map(|t| t.elapsed());
                            if let Some(since) = since
                                && since < dns01::CHECK_INTERVAL
                            {
                                let left = dns01::CHECK_INTERVAL - since;
                                wake_in = Some(wake_in.map_or(left, |w: Duration| w.min(left)));
                                current.push(entry);
                                continue;
                            }
                            ctx.dns01_checked_lock().insert(key.clone(), Instant::now());
                            let report =
                                match provider_change_pending(ctx, issuer, dns01, &name, &value)
                                    .await
                                {
                                    Some(waiting) => Err(waiting),
                                    None => match dns01::checker(ctx, dns01) {
                                        Ok(checker) => checker
                                            .check(&name, &value)
                                            .await
                                            .map_err(|e| e.to_string()),
                                        Err(e) => Err(e),
                                    },
                                };
                            let negative_cache = report.as_ref().ok().and_then(|r| {
                                let deadline = dns01::negative_cache_deadline(
                                    status.last_failure_time.as_ref().map(|t| t.0),
                                    status.failed_issuance_attempts.unwrap_or(0),
                                    r.zone.negative_ttl,
                                    Timestamp::now(),
                                )?;
                                Some((deadline, r.zone.zone.clone(), r.zone.negative_ttl))
                            });
                            match (report, negative_cache) {
                                (Ok(r), Some((deadline, zone, ttl))) if r.all_visible() => {
                                    // A stable message (no countdown), so waiting writes no status.
                                    entry.error = Some(format!(
                                        "the TXT record is visible at every nameserver; telling \
                                         the CA at {deadline}: the previous attempt failed, and \
                                         a resolver may still cache its \"no such record\" \
                                         answer for zone {zone}'s negative-caching TTL ({ttl}s)"
                                    ));
                                    // Visible already: check again right at the deadline.
                                    ctx.dns01_checked_lock().remove(&key);
                                    let left = Timestamp::now().duration_until(deadline);
                                    let left = Duration::try_from(left).unwrap_or_default();
                                    wake_in = Some(wake_in.map_or(left, |w: Duration| w.min(left)));
                                }
                                (Ok(r), _) if r.all_visible() => {
                                    match tell_ca(
                                        &mut authz,
                                        ChallengeType::Dns01,
                                        &identifier,
                                        &cert.namespace().unwrap_or_default(),
                                    )
                                    .await
                                    {
                                        Ok(()) => {}
                                        Err(TellFailure::Transient(why)) => {
                                            transient = Some(why);
                                            break;
                                        }
                                        Err(TellFailure::Failed(e)) => {
                                            failure = Some(e);
                                            break;
                                        }
                                    }
                                    told_ca = true;
                                    entry.error = None;
                                    entry.state = Some(PROCESSING.into());
                                }
                                (other, _) => {
                                    let checks = entry.propagation_checks.unwrap_or(0) + 1;
                                    entry.propagation_checks = Some(checks);
                                    let why = match other {
                                        Ok(r) => r.summary(),
                                        Err(e) => e,
                                    };
                                    if checks >= dns01::MAX_PROPAGATION_CHECKS {
                                        failure = Some(format!(
                                            "the TXT record for {identifier} at {name} did not become visible after {checks} checks: {why}"
                                        ));
                                        break;
                                    }
                                    entry.error = Some(format!(
                                        "waiting for DNS propagation (check {checks}): {why}"
                                    ));
                                }
                            }
                        }
                        (instant_acme::ChallengeStatus::Pending, _) => {
                            // After a transient failure to write, try again no sooner than this.
                            let present_key =
                                format!("present {}", entry.token.as_deref().unwrap_or_default());
                            let since = ctx
                                .dns01_checked_lock()
                                .get(&present_key)
                                .map(|t| t.elapsed());
                            if let Some(since) = since
                                && since < dns01::CHECK_INTERVAL
                            {
                                let left = dns01::CHECK_INTERVAL - since;
                                wake_in = Some(wake_in.map_or(left, |w: Duration| w.min(left)));
                                current.push(entry);
                                continue;
                            }
                            let provider = match dns01::provider(ctx, issuer, dns01).await {
                                Ok(p) => p,
                                Err(e) => {
                                    failure =
                                        Some(format!("the DNS-01 solver for {identifier}: {e}"));
                                    break;
                                }
                            };
                            let mut name = crate::solver::dns01::challenge_name(&bare);
                            if dns01.cname_strategy
                                == Some(crate::api::issuer::CnameStrategy::Follow)
                            {
                                match dns01::checker(ctx, dns01) {
                                    Ok(checker) => {
                                        match checker.resolve_challenge_name(&name).await {
                                            Ok(target) => name = target,
                                            Err(e) => {
                                                failure = Some(format!(
                                                    "following the CNAME at {name}: {e}"
                                                ));
                                                break;
                                            }
                                        }
                                    }
                                    Err(e) => {
                                        failure = Some(e);
                                        break;
                                    }
                                }
                            }
                            // Write-ahead: the record is in status before the provider is
                            // called, so clean-up (which reads status only) finds it even if the
                            // controller dies right after writing it.
                            entry.record_name = Some(name.clone());
                            entry.record_value = Some(value.clone());
                            let named = |a: &OrderAuthorization| {
                                a.record_name.as_deref() == Some(name.as_str())
                                    && a.record_value.as_deref() == Some(value.as_str())
                            };
                            if !was.as_ref().is_some_and(named) {
                                let mut ahead = recorded.clone();
                                ahead.authorizations = written_ahead(&current, &entry, &previous);
                                status.order = Some(ahead);
                                latest = std::borrow::Cow::Owned(
                                    apply_status(api, &latest, &status).await?,
                                );
                            }
                            match provider.present_change(&name, &value).await {
                                Ok(Some(change)) => {
                                    ctx.dns01_changes_lock()
                                        .insert(dns01::change_key(&name, &value), change);
                                }
                                Ok(None) => {}
                                // Throttling, a 5xx, the network: try again within the attempt.
                                Err(e)
                                    if e.is_transient()
                                        && entry.propagation_checks.unwrap_or(0) + 1
                                            < dns01::MAX_PROPAGATION_CHECKS =>
                                {
                                    let tries = entry.propagation_checks.unwrap_or(0) + 1;
                                    entry.propagation_checks = Some(tries);
                                    entry.error = Some(format!(
                                        "writing the TXT record at {name} failed, trying again \
                                         (try {tries}): {e}"
                                    ));
                                    ctx.dns01_checked_lock().insert(present_key, Instant::now());
                                    let left = dns01::CHECK_INTERVAL;
                                    wake_in = Some(wake_in.map_or(left, |w: Duration| w.min(left)));
                                    current.push(entry);
                                    continue;
                                }
                                Err(e) => {
                                    current.push(entry);
                                    failure = Some(format!(
                                        "writing the TXT record for {identifier} at {name}: {e}"
                                    ));
                                    break;
                                }
                            }
                            crate::crash::point(
                                "record-presented",
                                &cert.namespace().unwrap_or_default(),
                                &name,
                            );
                            ctx.dns01_checked_lock().remove(&present_key);
                            entry.error = None;
                            entry.propagation_checks = Some(0);
                            entry.state = Some(PRESENTED.into());
                        }
                        (instant_acme::ChallengeStatus::Invalid, _) => {
                            let why = challenge_error(&authz.challenges);
                            entry.state = Some("invalid".into());
                            entry.error = Some(why);
                        }
                        (other, _) => entry.state = Some(format!("{other:?}").to_lowercase()),
                    }
                    current.push(entry);
                    continue;
                }
                let Some(http01) = solver.http01.as_ref() else {
                    failure = Some(format!(
                        "the solver chosen for {identifier} has neither http01 nor dns01"
                    ));
                    break;
                };
                let challenge = match offered(&authz.challenges, &ChallengeType::Http01) {
                    Ok(c) => c,
                    Err(kind) => {
                        failure = Some(format!(
                            "the CA offered no {kind} challenge for {identifier}"
                        ));
                        break;
                    }
                };
                let token = challenge.token.clone();
                let challenge_state = challenge.status;
                let key_authorization = format!("{token}.{thumbprint}");
                entry.challenge_type = Some("http-01".into());
                entry.challenge_url = Some(challenge.url.clone());
                entry.key_authorization = Some(key_authorization.clone());
                let route = Route {
                    namespace: &cert_ns,
                    certificate: &cert_name,
                    owner: owner_reference(cert)
                        .ok_or_else(|| Error::Invalid("Certificate has no uid".into()))?,
                    host: &bare,
                    token: &token,
                };
                entry.token = Some(token.clone());
                let recorded_state = was.as_ref().and_then(|w| w.state.clone());
                match (challenge_state, recorded_state.as_deref()) {
                    (instant_acme::ChallengeStatus::Pending, Some(PRESENTED))
                        if was.as_ref().and_then(|w| w.token.as_deref())
                            == Some(token.as_str()) =>
                    {
                        // The route was applied before `presented` was recorded (and is removed
                        // only when the attempt ends): check it works, then tell the CA.
                        let previous_message = was.as_ref().and_then(|w| w.error.as_deref());
                        match http01::check(
                            ctx,
                            &route,
                            http01,
                            &key_authorization,
                            previous_message,
                        )
                        .await
                        {
                            CheckStep::Tell => {}
                            CheckStep::Wait { message, retry_in } => {
                                entry.error = Some(message);
                                wake_in = Some(wake_in.map_or(retry_in, |w| w.min(retry_in)));
                                current.push(entry);
                                continue;
                            }
                            CheckStep::GiveUp(message) => {
                                entry.error = Some(message.clone());
                                current.push(entry);
                                failure = Some(message);
                                break;
                            }
                        }
                        match tell_ca(
                            &mut authz,
                            ChallengeType::Http01,
                            &identifier,
                            &cert.namespace().unwrap_or_default(),
                        )
                        .await
                        {
                            Ok(()) => {}
                            Err(TellFailure::Transient(why)) => {
                                transient = Some(why);
                                break;
                            }
                            Err(TellFailure::Failed(e)) => {
                                failure = Some(e);
                                break;
                            }
                        }
                        told_ca = true;
                        entry.error = None;
                        entry.state = Some(PROCESSING.into());
                    }
                    (instant_acme::ChallengeStatus::Pending, _) => {
                        match http01::present(ctx, &route, http01).await {
                            Ok(()) => {
                                crate::crash::point(
                                    "challenge-presented",
                                    &cert.namespace().unwrap_or_default(),
                                    &identifier,
                                );
                                entry.error = None;
                                entry.state = Some(PRESENTED.into());
                            }
                            Err(PresentError::NoBackends(why)) => {
                                entry.error = Some(PresentError::NoBackends(why).to_string());
                                let left = Duration::from_secs(2);
                                wake_in = Some(wake_in.map_or(left, |w| w.min(left)));
                            }
                            Err(e @ PresentError::GatewayApiMissing { .. }) => {
                                failure = Some(e.to_string());
                                break;
                            }
                            Err(PresentError::Kube(e)) => return Err(e),
                        }
                    }
                    (instant_acme::ChallengeStatus::Invalid, _) => {
                        let why = challenge_error(&authz.challenges);
                        entry.state = Some("invalid".into());
                        entry.error = Some(why);
                    }
                    (other, _) => entry.state = Some(format!("{other:?}").to_lowercase()),
                }
            }
            other => {
                entry.state = Some(authz_state_str(other).into());
                let why = authz
                    .challenges
                    .iter()
                    .find_map(|c| c.error.as_ref().map(problem_text));
                failure = Some(format!(
                    "the authorization for {identifier} is {}{}",
                    authz_state_str(other),
                    why.map(|w| format!(": {w}")).unwrap_or_default()
                ));
            }
        }
        current.push(entry);
    }
    if failure.is_some() || transient.is_some() {
        // Keep what this round wrote (DNS records) so the failure path removes it too.
        for p in &previous {
            if !current.iter().any(|a| a.url == p.url) {
                current.push(p.clone());
            }
        }
    }
    if let Some(why) = transient {
        // Record what this round did (presented records included), then repeat the step.
        tracing::debug!(cert = %describe(cert), "telling the CA failed transiently ({why}); retrying");
        recorded.authorizations = current;
        if status.order.as_ref() != Some(&recorded) {
            status.order = Some(recorded);
            apply_status(api, &latest, &status).await?;
        }
        return Ok(Action::requeue(crate::retry::jittered(TRANSIENT_RETRY)));
    }
    if let Some(message) = failure {
        recorded.authorizations = current;
        status.order = Some(recorded);
        return record_failure(ctx, api, issuer, &latest, status, &message, false).await;
    }
    if told_ca {
        ctx.polling_lock()
            .insert(recorded.url.clone(), Instant::now());
    }
    recorded.authorizations = current;
    let all_processing = recorded
        .authorizations
        .iter()
        .all(|a| matches!(a.state.as_deref(), Some(PROCESSING) | Some("valid")));
    if status.order.as_ref() != Some(&recorded) {
        status.order = Some(recorded.clone());
        apply_status(api, &latest, &status).await?;
    }
    if all_processing {
        // Waiting for the CA's validation: poll soon after telling it, then less often.
        let since = ctx
            .polling_lock()
            .get(&recorded.url)
            .copied()
            .unwrap_or_else(Instant::now);
        Ok(Action::requeue(poll_delay(since.elapsed())))
    } else {
        // The status write just made wakes us up; this is only a fallback.
        let fallback = Duration::from_secs(2);
        Ok(Action::requeue(wake_in.map_or(fallback, |w| {
            w.clamp(Duration::from_millis(100), fallback)
        })))
    }
}

/// While every challenge still to do is an HTTP-01 route waiting for its self-check, nothing at the
/// CA can change: probe the routes that are due and wait, without fetching the order and its
/// authorizations from the CA (about four ACME requests per round saved). `None` when the full
/// step must run: some challenge is in another state, a route works (tell the CA), or a
/// self-check gave up.
async fn wait_for_self_checks(
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
        .filter(|a| a.state.as_deref() != Some("valid"))
        .collect();
    let only_self_checks = recorded.state.as_deref() == Some("pending")
        && !waiting.is_empty()
        && waiting.iter().all(|a| {
            a.challenge_type.as_deref() == Some("http-01")
                && a.state.as_deref() == Some(PRESENTED)
                && a.token.is_some()
                && a.key_authorization.is_some()
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
                messages.push((a.url.clone(), message));
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
    if status.order.as_ref() != Some(&updated) {
        status.order = Some(updated);
        apply_status(api, cert, status).await?;
    }
    Ok(Some(Action::requeue(wake.clamp(
        Duration::from_millis(100),
        Duration::from_secs(5),
    ))))
}

/// The authorizations to record ahead of writing `entry`'s DNS record: those processed this round,
/// `entry`, and the rest as recorded before. Pure.
fn written_ahead(
    current: &[OrderAuthorization],
    entry: &OrderAuthorization,
    previous: &[OrderAuthorization],
) -> Vec<OrderAuthorization> {
    let mut all = current.to_vec();
    all.push(entry.clone());
    for p in previous {
        if !all.iter().any(|a| a.url == p.url) {
            all.push(p.clone());
        }
    }
    all
}

/// `Some(why)` while the provider still applies the change that wrote `name` = `value`
/// (Route53: not yet `INSYNC`); `None` when there is none to wait for (any more). Asks once.
async fn provider_change_pending(
    ctx: &Ctx,
    issuer: &ResolvedIssuer,
    solver: &crate::api::issuer::Dns01Solver,
    name: &str,
    value: &str,
) -> Option<String> {
    let key = dns01::change_key(name, value);
    let change = ctx.dns01_changes_lock().get(&key).cloned()?;
    let applied = match dns01::provider(ctx, issuer, solver).await {
        Ok(p) => p.change_applied(&change).await.map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    match applied {
        Ok(true) => {
            ctx.dns01_changes_lock().remove(&key);
            None
        }
        Ok(false) => Some(format!(
            "the DNS provider is still applying change {change} (not yet INSYNC)"
        )),
        Err(e) => Some(format!(
            "asking the DNS provider about change {change}: {e}"
        )),
    }
}

/// The challenge of `kind` the CA offered in an authorization; `Err` names the missing type.
fn offered<'a>(
    challenges: &'a [instant_acme::Challenge],
    kind: &ChallengeType,
) -> Result<&'a instant_acme::Challenge, &'static str> {
    challenges
        .iter()
        .find(|c| c.r#type == *kind)
        .ok_or(match kind {
            ChallengeType::Dns01 => "dns-01",
            ChallengeType::Http01 => "http-01",
            _ => "such a",
        })
}

/// The CA's error text of an invalid challenge.
fn challenge_error(challenges: &[instant_acme::Challenge]) -> String {
    challenges
        .iter()
        .find_map(|c| c.error.as_ref().map(problem_text))
        .unwrap_or_else(|| "the challenge is invalid".into())
}

/// Tells the CA a challenge is ready to be validated.
async fn tell_ca<'a>(
    authz: &'a mut instant_acme::AuthorizationHandle<'a>,
    kind: ChallengeType,
    identifier: &str,
    namespace: &str,
) -> Result<(), TellFailure> {
    let Some(mut handle) = authz.challenge(kind) else {
        return Err(TellFailure::Failed(format!(
            "the CA's authorization for {identifier} lost its challenge"
        )));
    };
    let told = handle.set_ready().await;
    if told.is_ok() {
        crate::crash::point("challenge-told", namespace, &identifier);
    }
    told.map_err(AcmeError::from).map_err(|e| {
        let text = format!(
            "telling the CA the challenge for {identifier} is ready failed: {}",
            e.problem()
                .map(problem_text)
                .unwrap_or_else(|| e.to_string())
        );
        if e.is_bad_nonce() {
            TellFailure::Transient(text)
        } else {
            TellFailure::Failed(text)
        }
    })
}

/// How long to wait before polling an order whose challenges the CA is validating.
pub fn poll_delay(elapsed: Duration) -> Duration {
    match elapsed.as_secs() {
        0..=1 => Duration::from_millis(200),
        2..=29 => Duration::from_secs(1),
        30..=299 => Duration::from_secs(5),
        _ => Duration::from_secs(30),
    }
}

/// The key the CSR is made from.
async fn next_key(
    ctx: &Ctx,
    cert: &Certificate,
    status: &CertificateStatus,
) -> Result<pki::PrivateKey, Error> {
    let name = status
        .next_private_key_secret_name
        .clone()
        .unwrap_or_else(|| secret::next_key_secret_name(&cert.name_any()));
    let secrets: Api<Secret> =
        Api::namespaced(ctx.client.clone(), &cert.namespace().unwrap_or_default());
    let secret = secrets
        .get(&name)
        .await
        .context(|| format!("reading the next private key Secret {name}"))?;
    let pem = data_str(&secret, TLS_KEY)
        .ok_or_else(|| Error::Invalid(format!("Secret {name} lacks {TLS_KEY}")))?;
    pki::parse_pem(pem).map_err(|source| Error::Pki {
        context: format!("Secret {name}"),
        source,
    })
}

/// Valid order: store the certificate, clean up, record success.
async fn complete(
    ctx: &Ctx,
    api: &Api<Certificate>,
    cert: &Certificate,
    mut status: CertificateStatus,
    order: &mut instant_acme::Order,
    issuer: &ResolvedIssuer,
    key: pki::PrivateKey,
) -> Result<Action, Error> {
    let chain_pem = match order.certificate().await.map_err(AcmeError::from) {
        Ok(Some(pem)) => pem,
        Ok(None) => return Ok(Action::requeue(Duration::from_millis(500))),
        Err(e) => {
            let wait = ctx.ca_trouble.failed(order.url());
            tracing::warn!(cert = %describe(cert), error = %e, ?wait, "downloading the certificate failed");
            return Ok(Action::requeue(wait));
        }
    };
    let chain_pem = match issuer.acme.preferred_chain.as_deref() {
        None => chain_pem,
        Some(preferred) => match preferred_chain(ctx, order, issuer, preferred).await {
            Ok(Some(pem)) => pem,
            Ok(None) => chain_pem,
            Err(e) => {
                // The default chain is still a valid certificate: keep it, say why.
                tracing::warn!(cert = %describe(cert), error = %e, "fetching alternate chains failed; using the default chain");
                chain_pem
            }
        },
    };
    let chain = match pki::parse_chain(&chain_pem) {
        Ok(c) => c,
        Err(e) => {
            return record_failure(
                ctx,
                api,
                issuer,
                cert,
                status,
                &format!("the CA returned an unusable certificate chain: {e}"),
                false,
            )
            .await;
        }
    };
    if !pki::key_matches_leaf(&key, &chain.leaf) {
        return record_failure(
            ctx,
            api,
            issuer,
            cert,
            status,
            "the CA's certificate is not for the key we sent",
            false,
        )
        .await;
    }
    let key_pem = secret::encode_key(cert, &key).map_err(|source| Error::Pki {
        context: "encoding tls.key".into(),
        source,
    })?;
    let ca_pem = chain.root_pem();
    let renew_request = cert.annotations().get(labels::ANN_RENEW_REQUESTED).cloned();
    let tls = secret::tls_secret(
        cert,
        &TlsContents {
            chain_pem: &chain.pem,
            key_pem: &key_pem,
            ca_pem: ca_pem.as_deref(),
            issuer_name: &issuer.ident.name,
            issuer_kind: issuer.kind,
            renew_handled: renew_request.as_deref(),
        },
    );
    let ns = cert.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    // The Secret may have changed hands while the order ran (another Certificate wrote it first,
    // or someone created one): never overwrite what is not ours. The key stays in its Secret for
    // the next attempt.
    let existing = secrets
        .get_opt(&cert.spec.secret_name)
        .await
        .context(|| format!("reading Secret {ns}/{}", cert.spec.secret_name))?;
    let claim = secret::claim(existing.as_ref(), &cert.name_any(), |other| {
        super::still_claims(ctx, &ns, other, &cert.spec.secret_name)
    });
    if let Some((_, message)) = claim.refusal(&cert.spec.secret_name, &cert.name_any()) {
        return record_failure(ctx, api, issuer, cert, status, &message, false).await;
    }
    secrets
        .patch(
            &cert.spec.secret_name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&apply_body(&tls)),
        )
        .await
        .context(|| format!("writing Secret {ns}/{}", cert.spec.secret_name))?;
    crate::crash::point("secret-written", &ns, &cert.spec.secret_name);
    cleanup_temporaries_of(ctx, cert, status.order.as_ref()).await?;
    if let Some(order) = status.order.as_ref() {
        let problems = dns01::cleanup(ctx, issuer, cert.labels(), order).await;
        if !problems.is_empty() {
            ctx.event(cert, true, "CleanupFailed", "Cleanup", problems.join("; "))
                .await;
        }
    }

    let renewal =
        pki::renewal_time_for_spec(&cert.spec, chain.leaf.not_before, chain.leaf.not_after)
            .unwrap_or(chain.leaf.not_after);
    let next_key_name = status.next_private_key_secret_name.take();
    let order_url = status
        .order
        .as_ref()
        .map(|o| o.url.clone())
        .unwrap_or_default();
    let mut about = String::new();
    if let Some(order) = status.order.as_ref() {
        if let Some(p) = order.profile.as_deref() {
            about.push_str(&format!(", profile {p}"));
        }
        if let Some(r) = order.replaces.as_deref() {
            about.push_str(&format!(", replacing {r}"));
        }
    }
    status.profile = status.order.as_ref().and_then(|o| o.profile.clone());
    // A new certificate: its ARI window is fetched in the next reconcile.
    status.renewal_info = None;
    if let Some(url) = status.order.as_ref().map(|o| o.url.clone()) {
        ctx.polling_lock().remove(&url);
        ctx.ca_trouble.succeeded(&url);
        ctx.orders.forget(&url);
    }
    status.order = None;
    status.not_before = Some(Time(chain.leaf.not_before));
    status.not_after = Some(Time(chain.leaf.not_after));
    status.renewal_time = Some(Time(renewal));
    status.revision = Some(status.revision.unwrap_or(0) + 1);
    status.failed_issuance_attempts = None;
    status.last_failure_time = None;
    conditions::remove(&mut status.conditions, ISSUING);
    set_ready(
        &mut status,
        cert,
        true,
        "Ready",
        &format!("The certificate is valid until {}", chain.leaf.not_after),
    );
    let updated = apply_status(api, cert, &status).await?;
    super::set_order_finalizer(api, &updated, false).await?;
    if let Some(name) = next_key_name {
        match secrets.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e).context(|| format!("deleting Secret {name}")),
        }
    }
    tracing::info!(cert = %describe(cert), serial = %chain.leaf.serial_hex, not_after = %chain.leaf.not_after, "certificate issued");
    ctx.event(
        cert,
        false,
        "Issued",
        &format!("IssueRevision{}", status.revision.unwrap_or(0)),
        format!(
            "Certificate issued from order {order_url} (serial {}, valid until {}{about}), stored in Secret {}; renewal at {renewal}",
            chain.leaf.serial_hex, chain.leaf.not_after, cert.spec.secret_name
        ),
    )
    .await;
    Ok(requeue_at(renewal, Timestamp::now()))
}

/// The chain matching `preferredChain` among the default and alternate chains, if any matches.
async fn preferred_chain(
    ctx: &Ctx,
    order: &mut instant_acme::Order,
    issuer: &ResolvedIssuer,
    preferred: &str,
) -> Result<Option<String>, Error> {
    let Some(cert_url) = order.state().certificate.clone() else {
        return Ok(None);
    };
    let config = issuer_account_config(issuer)?;
    let key = account_key_der(ctx, issuer).await?;
    let chains = crate::acme::alternates::fetch_chains(
        config.trust(),
        &config.server,
        &issuer.account_uri,
        &key,
        &cert_url,
    )
    .await
    .map_err(|e| Error::Invalid(format!("fetching alternate chains: {e}")))?;
    let index = pki::choose_preferred_chain(&chains, Some(preferred));
    Ok(chains.into_iter().nth(index))
}

/// A failed attempt: keep the CA's words in status and an Event, clean up, back off.
pub async fn record_failure(
    ctx: &Ctx,
    api: &Api<Certificate>,
    issuer: &ResolvedIssuer,
    cert: &Certificate,
    mut status: CertificateStatus,
    message: &str,
    rate_limited: bool,
) -> Result<Action, Error> {
    cleanup_temporaries_of(ctx, cert, status.order.as_ref()).await?;
    if let Some(order) = status.order.as_ref() {
        dns01::cleanup(ctx, issuer, cert.labels(), order).await;
    }
    let action = super::attempt_action(&status);
    let attempts = status.failed_issuance_attempts.unwrap_or(0) + 1;
    let now_ts = Timestamp::now();
    let delay =
        super::backoff::failure_delay(ctx, cert, issuer, &status, attempts, rate_limited, now_ts);
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
    let retry_at = now_ts
        .checked_add(jiff::SignedDuration::try_from(delay).unwrap_or_default())
        .unwrap_or(now_ts);
    let reason = if rate_limited {
        super::backoff::RATE_LIMITED
    } else {
        "Failed"
    };
    let full = format!("{message} (attempt {attempts}; next try at {retry_at})");
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
    let updated = apply_status(api, cert, &status).await?;
    super::set_order_finalizer(api, &updated, false).await?;
    Ok(Action::requeue(delay))
}

/// Removes every temporary solver object of a Certificate.
pub async fn cleanup_temporaries(ctx: &Ctx, cert: &Certificate) -> Result<(), Error> {
    http01::cleanup(ctx, cert).await
}

/// Removes the temporary solver objects an order may have made: none (and no LIST requests) when
/// it has no HTTP-01 challenge.
pub async fn cleanup_temporaries_of(
    ctx: &Ctx,
    cert: &Certificate,
    order: Option<&OrderStatus>,
) -> Result<(), Error> {
    if may_have_http01_objects(order) {
        http01::cleanup(ctx, cert).await?;
    }
    Ok(())
}

/// Whether an order (as recorded in status) may have HTTP-01 objects: not when there is no order,
/// nor when every authorization is recorded with another challenge type. Pure.
pub fn may_have_http01_objects(order: Option<&OrderStatus>) -> bool {
    let Some(order) = order else {
        return false;
    };
    order.authorizations.is_empty()
        || order
            .authorizations
            .iter()
            .any(|a| a.challenge_type.as_deref().is_none_or(|t| t == "http-01"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::OrderAuthorization;

    fn order_with(types: &[Option<&str>]) -> OrderStatus {
        OrderStatus {
            url: "https://ca.test/order/1".into(),
            authorizations: types
                .iter()
                .map(|t| OrderAuthorization {
                    challenge_type: t.map(str::to_string),
                    ..OrderAuthorization::default()
                })
                .collect(),
            ..OrderStatus::default()
        }
    }

    #[test]
    fn the_record_written_ahead_keeps_every_other_authorization() {
        let auth = |url: &str, name: Option<&str>| OrderAuthorization {
            url: Some(url.into()),
            record_name: name.map(str::to_string),
            ..OrderAuthorization::default()
        };
        let previous = [auth("a", None), auth("b", Some("old")), auth("c", None)];
        let current = [auth("a", None)];
        let entry = auth("b", Some("_acme-challenge.b"));
        let all = written_ahead(&current, &entry, &previous);
        let urls: Vec<_> = all.iter().map(|a| a.url.clone().unwrap()).collect();
        assert_eq!(urls, ["a", "b", "c"]);
        assert_eq!(all[1].record_name.as_deref(), Some("_acme-challenge.b"));
    }

    #[test]
    fn only_orders_that_may_have_http01_objects_are_cleaned_up_with_lists() {
        assert!(
            !may_have_http01_objects(None),
            "no order, nothing presented"
        );
        assert!(
            may_have_http01_objects(Some(&order_with(&[]))),
            "nothing recorded yet: cannot tell"
        );
        assert!(!may_have_http01_objects(Some(&order_with(&[Some(
            "dns-01"
        )]))));
        assert!(may_have_http01_objects(Some(&order_with(&[
            Some("dns-01"),
            Some("http-01")
        ]))));
        assert!(
            may_have_http01_objects(Some(&order_with(&[Some("dns-01"), None]))),
            "an authorization without a recorded type may have been presented"
        );
    }
}
