//! Certificate reconcile, the front half: find the issuer, decide whether the Secret still
//! satisfies the spec, and when it does not, persist the next key and create the order. The order
//! itself is driven in [`super::order`].

use std::sync::Arc;
use std::time::Duration;

use instant_acme::Account;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use super::backoff::{backoff_remaining, requeue_at};
use super::failover::{self, FailureKind};
use super::issuer_ref::{Resolved, ResolvedIssuer, resolve, resolve_issuer};
use super::order::{self, drive_order};
use super::tenancy::{self, HostCheck};
use super::tls_secret::{not_ready_for, record_adoption, reencode_key, refuse_secret};
use super::verdict::{IssueReason, Verdict, evaluate_acme};
use super::{
    Ctx, FIELD_MANAGER, apply_body, apply_status, describe, now, renewal_info, revocation,
    set_ready, still_claims,
};
use crate::acme::lifecycle;
use crate::acme::problem_text;
use crate::api::conditions::{self, ISSUING, READY};
use crate::api::{Certificate, CertificateStatus, RotationPolicy};
use crate::error::{Error, KubeContext};
use crate::pki::{self, KeySpec};
use crate::secret::{self, TLS_KEY, data_str};

pub async fn reconcile(cert: Arc<Certificate>, ctx: Ctx) -> Result<Action, Error> {
    let ns = cert.namespace().unwrap_or_default();
    let api: Api<Certificate> = Api::namespaced(ctx.client.clone(), &ns);
    // A view our own write replaced (this reconcile was queued behind that write): acting on it
    // could order again. The watch brings the newer one within moments, and reconciles it.
    if ctx.superseded.is_stale(cert.as_ref()) {
        tracing::debug!(cert = %describe(cert.as_ref()), "a version our last write replaced; waiting for the watch");
        return Ok(Action::requeue(super::superseded::WAIT));
    }
    if cert.meta().deletion_timestamp.is_some() {
        return clean_up_deleted(&ctx, &api, &cert).await;
    }
    // The echo of our own issuance writes: nothing changed since, nothing to read.
    if let Some(wake) = cert
        .resource_version()
        .and_then(|rv| ctx.orders.echo_of_issuance(&order::echo_key(&cert), &rv))
    {
        return Ok(requeue_at(wake, Timestamp::now()));
    }
    let cert = revocation::sync_finalizer(&ctx, &api, &cert).await?;
    let mut status = cert.status.clone().unwrap_or_default();

    let issuer = match resolve(&ctx, &cert).await? {
        Ok(Resolved::Acme(issuer)) => *issuer,
        Ok(Resolved::Local(local)) => {
            // selfSigned and ca: signed here, no account and no order.
            let gate = local.gate();
            let grant = match tenancy::check_policy(&ctx, &cert, gate).await? {
                Ok(grant) => grant,
                Err(denial) => return policy_denied(&ctx, &api, &cert, status, &denial).await,
            };
            return super::local_issuer::reconcile_certificate(
                &ctx, &api, &cert, status, &local, &grant,
            )
            .await;
        }
        Err((reason, message)) => {
            return issuer_not_usable(&ctx, &api, &cert, status, reason, &message).await;
        }
    };

    if let Some(order) = status.order.clone() {
        return drive_order(&ctx, &api, &cert, status, order, &issuer).await;
    }
    if let Err(denial) = tenancy::check_policy(&ctx, &cert, issuer.gate()).await? {
        return policy_denied(&ctx, &api, &cert, status, &denial).await;
    }

    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let secret = secrets
        .get_opt(&cert.spec.secret_name)
        .await
        .context(|| format!("reading Secret {ns}/{}", cert.spec.secret_name))?;
    let claim = secret::claim(secret.as_ref(), &cert.name_any(), |other| {
        still_claims(&ctx, &ns, other, &cert.spec.secret_name)
    });
    if let Some((reason, message)) = claim.refusal(&cert.spec.secret_name, &cert.name_any()) {
        return refuse_secret(&ctx, &api, &cert, status, reason, &message).await;
    }
    if let Some(request) = revocation::pending_request(&cert) {
        return revocation::answer_request(
            &ctx,
            &api,
            &cert,
            status,
            &issuer,
            secret.as_ref(),
            request,
        )
        .await;
    }
    let now_ts = Timestamp::now();
    match evaluate_acme(&cert, secret.as_ref(), now_ts) {
        Verdict::UpToDate {
            not_before,
            not_after,
            renewal: spec_renewal,
            key_encoding_only,
            leaf_der,
            adopt,
        } => {
            let current = renewal_info::Current {
                leaf_der: &leaf_der,
                not_before,
                not_after,
                spec_renewal,
                spec_is_explicit: cert.spec.renew_before.is_some()
                    || cert.spec.renew_before_percentage.is_some(),
                announce_window: true,
            };
            let schedule =
                renewal_info::schedule(&ctx, &cert, &issuer, &mut status, &current, now_ts).await;
            let renewal = schedule.renewal;
            if now_ts >= renewal {
                // Keep what was learnt about the window, then renew.
                let reason = renewal_reason(&status, renewal);
                return start_issuance(&ctx, &api, &cert, status, &issuer, secret, reason).await;
            }
            if let (Some(_), Some(secret)) = (key_encoding_only, secret.as_ref()) {
                reencode_key(&ctx, &cert, secret).await?;
            }
            if let (Some(adoption), Some(secret)) = (adopt, secret.as_ref()) {
                let times = (not_after, renewal);
                record_adoption(
                    &ctx,
                    &cert,
                    secret,
                    &adoption,
                    &issuer.ident,
                    &mut status,
                    times,
                )
                .await?;
            }
            if let Some(secret) = secret.as_ref()
                && let Some((reason, message)) = super::outputs::sync(&ctx, &cert, secret).await?
            {
                return refuse_secret(&ctx, &api, &cert, status, reason, &message).await;
            }
            mark_ready(&mut status, &cert, not_before, not_after, renewal);
            if Some(&status) != cert.status.as_ref() {
                apply_status(&ctx, &api, &cert, &status).await?;
            }
            let wake = schedule
                .next_check
                .map_or(renewal, |check| check.min(renewal));
            let recheck = ctx.settings.keystore_password_recheck;
            let wake = secret::outputs::recheck_by(&cert.spec, wake, now_ts, recheck);
            Ok(requeue_at(wake, now_ts))
        }
        Verdict::Issue(reason) => {
            start_issuance(&ctx, &api, &cert, status, &issuer, secret, reason).await
        }
    }
}

/// The issuer cannot be used (missing, not Ready, wrong kind): with `issuerRefs`, the next issuer
/// may take over at once; otherwise `Ready=False` with the reason (and an Event when that is
/// news), looked at again in a minute.
async fn issuer_not_usable(
    ctx: &Ctx,
    api: &Api<Certificate>,
    cert: &Certificate,
    mut status: CertificateStatus,
    reason: &str,
    message: &str,
) -> Result<Action, Error> {
    if let Some(action) = fail_over_unready(ctx, api, cert, &mut status, message).await? {
        return Ok(action);
    }
    set_ready(&mut status, cert, false, reason, message);
    if status != cert.status.clone().unwrap_or_default() {
        ctx.event(cert, true, reason, "Issue", message.to_string())
            .await;
        apply_status(ctx, api, cert, &status).await?;
    }
    Ok(Action::requeue(Duration::from_secs(60)))
}

/// A Certificate the issuer's policy refuses: `Ready=False` with reason `PolicyDenied`, the rule
/// and the identifier in the message, an Event when that is news; nothing is ordered or signed.
pub(super) async fn policy_denied(
    ctx: &Ctx,
    api: &Api<Certificate>,
    cert: &Certificate,
    status: CertificateStatus,
    denial: &crate::policy::Denial,
) -> Result<Action, Error> {
    let message = format!("Refused by policy ({}): {}", denial.rule, denial.message);
    not_ready_for(
        ctx,
        api,
        cert,
        status,
        crate::policy::POLICY_DENIED,
        &message,
        tenancy::DENIED_RECHECK,
    )
    .await
}

/// Why a due renewal happens: the CA's renewal window (ARI) when status learnt one, else the
/// spec's renewal time. Pure.
fn renewal_reason(status: &CertificateStatus, renewal: Timestamp) -> IssueReason {
    if status
        .renewal_info
        .as_ref()
        .is_some_and(|i| i.window_start.is_some())
    {
        IssueReason::RenewalWindow(renewal)
    } else {
        IssueReason::Renewal(renewal)
    }
}

/// With `issuerRefs`: the issuer in use is not Ready because its account registration failed at
/// the CA, and no order is in flight. Moves to the next issuer at once (`Some`: status written,
/// come back now); after the last, back to the first, and the caller reports the issuer not
/// ready as usual (`None`).
async fn fail_over_unready(
    ctx: &Ctx,
    api: &Api<Certificate>,
    cert: &Certificate,
    status: &mut CertificateStatus,
    message: &str,
) -> Result<Option<Action>, Error> {
    let refs = cert.spec.issuer_list();
    let current = failover::status_index(status, refs.len());
    let Some(current_ref) = refs.get(current) else {
        return Ok(None);
    };
    if refs.len() < 2
        || status.order.is_some()
        || !super::issuer_ref::registration_failed(ctx, cert, current_ref)
    {
        return Ok(None);
    }
    let (next, retry_now) = failover::next_issuer(refs.len(), current, FailureKind::CaUnavailable);
    failover::record_index(status, refs, next);
    let Some(next_ref) = refs.get(next).filter(|_| retry_now) else {
        return Ok(None);
    };
    let full = format!(
        "{} failed ({message}); trying {}",
        failover::describe_ref(&current_ref.name, current_ref.kind.unwrap_or_default()),
        failover::describe_ref(&next_ref.name, next_ref.kind.unwrap_or_default()),
    );
    conditions::set(
        &mut status.conditions,
        ISSUING,
        false,
        failover::ISSUER_FAILOVER,
        &full,
        cert.meta().generation,
        now(),
    );
    let action = super::attempt_action(status);
    ctx.event(cert, true, failover::ISSUER_FAILOVER, &action, full)
        .await;
    tracing::warn!(cert = %describe(cert), issuer = %next_ref.name, "failing over: {message}");
    apply_status(ctx, api, cert, status).await?;
    Ok(Some(Action::requeue(failover::RETRY_NOW)))
}

/// With `issuerRefs`, a new issuance (not the retry of a failed one, nor a failover) starts with
/// the first issuer: when another is in use, records the first and comes back at once (`Some`).
async fn restart_from_first(
    ctx: &Ctx,
    api: &Api<Certificate>,
    cert: &Certificate,
    status: &mut CertificateStatus,
) -> Result<Option<Action>, Error> {
    let refs = cert.spec.issuer_list();
    let current = failover::status_index(status, refs.len());
    let failing_over = conditions::find(&status.conditions, ISSUING)
        .is_some_and(|c| c.reason == failover::ISSUER_FAILOVER);
    if current == 0 || status.failed_issuance_attempts.unwrap_or(0) > 0 || failing_over {
        return Ok(None);
    }
    failover::record_index(status, refs, 0);
    if let Some(first) = refs.first() {
        ctx.event(
            cert,
            false,
            "IssuerReset",
            "Issue",
            format!(
                "A new issuance starts with the first of issuerRefs, {}",
                failover::describe_ref(&first.name, first.kind.unwrap_or_default())
            ),
        )
        .await;
    }
    apply_status(ctx, api, cert, status).await?;
    Ok(Some(Action::requeue(failover::RETRY_NOW)))
}

/// Status of a Certificate whose Secret satisfies it: its validity, renewal time, `Ready=True`,
/// no issuance in progress. Pure.
fn mark_ready(
    status: &mut CertificateStatus,
    cert: &Certificate,
    not_before: Timestamp,
    not_after: Timestamp,
    renewal: Timestamp,
) {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    status.not_before = Some(Time(not_before));
    status.not_after = Some(Time(not_after));
    status.renewal_time = Some(Time(renewal));
    set_ready(
        status,
        cert,
        true,
        "Ready",
        &format!("The certificate is valid until {not_after}"),
    );
    conditions::remove(&mut status.conditions, ISSUING);
}

/// A Certificate being deleted: remove the temporary objects and DNS records of an order in
/// flight, then revoke its certificate if `revokeOnDelete` asked for it; each step releases its
/// finalizer so the deletion can finish.
async fn clean_up_deleted(
    ctx: &Ctx,
    api: &Api<Certificate>,
    cert: &Certificate,
) -> Result<Action, Error> {
    let has = |c: &Certificate, f: &str| c.finalizers().iter().any(|x| x == f);
    let mut cert = cert.clone();
    if has(&cert, super::ORDER_FINALIZER) {
        order::cleanup_temporaries(ctx, &cert).await?;
        if let Some(order) = cert.status.as_ref().and_then(|s| s.order.as_ref()) {
            match resolve_issuer(ctx, &cert).await {
                Ok(Ok(issuer)) => {
                    let problems = super::dns01::cleanup(ctx, &issuer, cert.labels(), order).await;
                    if !problems.is_empty() {
                        tracing::warn!(cert = %describe(&cert), "DNS clean-up incomplete: {}", problems.join("; "));
                    }
                }
                _ => {
                    tracing::warn!(cert = %describe(&cert), "issuer gone: DNS records of the order cannot be removed")
                }
            }
        }
        cert = super::set_order_finalizer(ctx, api, &cert, false).await?;
        tracing::info!(cert = %describe(&cert), "cleaned up the order of a deleted Certificate");
    }
    if has(&cert, revocation::REVOKE_FINALIZER) {
        return revocation::on_delete(ctx, api, &cert).await;
    }
    Ok(Action::await_change())
}

/// Begins an issuance: respects the failure backoff, persists the next key, creates the order and
/// records it. Each write happens before the step that depends on it.
async fn start_issuance(
    ctx: &Ctx,
    api: &Api<Certificate>,
    cert: &Certificate,
    mut status: CertificateStatus,
    issuer: &ResolvedIssuer,
    current: Option<Secret>,
    reason: IssueReason,
) -> Result<Action, Error> {
    let now_ts = Timestamp::now();
    if let Some(action) = restart_from_first(ctx, api, cert, &mut status).await? {
        return Ok(action);
    }
    if let Some(wait) = backoff_remaining(ctx, cert, issuer, &status, now_ts) {
        tracing::debug!(cert = %describe(cert), ?wait, "issuance backing off");
        if Some(&status) != cert.status.as_ref() {
            // E.g. a renewal window fetched meanwhile: keep it, so it is not fetched again.
            apply_status(ctx, api, cert, &status).await?;
        }
        return Ok(Action::requeue(wait));
    }
    // The tenant boundary, before any key, order or solver object: HTTP-01 host ownership,
    // then the shared issuer's budgets.
    if let Ok(identifiers) = pki::identifiers(&cert.spec) {
        match tenancy::check_hosts(ctx, cert, issuer.gate(), &issuer.acme.solvers, &identifiers) {
            HostCheck::Allowed => {}
            HostCheck::NotYetKnown => return Ok(Action::requeue(Duration::from_secs(2))),
            HostCheck::Denied(denial) => {
                return policy_denied(ctx, api, cert, status, &denial).await;
            }
        }
    }
    let account = super::issuer_ref::account_for(ctx, issuer).await?;
    let inputs = match order_inputs(cert, issuer, &account) {
        Ok(inputs) => inputs,
        Err((reason, message)) => {
            return fail_permanently(ctx, api, cert, status, reason, &message).await;
        }
    };

    // 1. The next private key, in its own Secret, before any order exists.
    let ns = cert.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let next_name = secret::next_key_secret_name(&cert.name_any());
    let resuming = status.next_private_key_secret_name.as_deref() == Some(next_name.as_str());
    let may_reuse_key = !revocation::key_compromised(&status);
    let key = match ensure_next_key(
        &secrets,
        cert,
        &next_name,
        inputs.key_spec,
        current.as_ref().filter(|_| may_reuse_key),
        resuming,
    )
    .await?
    {
        Ok(key) => key,
        Err(message) => {
            return refuse_secret(ctx, api, cert, status, "SecretInUse", &message).await;
        }
    };

    // 2. The issuance is claimed in the same status write that records the order (below, before
    //    any challenge is presented). That write is guarded by the resourceVersion read, so a
    //    reconcile working from a stale view fails with 409 instead of recording a second order;
    //    the check of `ctx.superseded` at the top keeps this process from even creating one.
    mark_issuing(&mut status, cert, next_name, &reason);
    let needs_finalizer = crate::solver::select::needs_order_finalizer(
        &issuer.acme.solvers,
        &inputs.identifiers,
        cert.labels(),
        crate::shim::http01_edit_in_place(cert).is_some(),
    );
    let cert = &super::set_order_finalizer(ctx, api, cert, needs_finalizer).await?;

    // 3. The order, recorded (with the claim and the challenges' tokens) before any challenge is
    //    presented.
    //    A shared issuer's budget is spent here, right before the CA is asked, so that nothing
    //    but an order (or a refused nonce, refunded below) spends it.
    let manual = matches!(reason, IssueReason::RenewRequested(_));
    let receipt = match tenancy::take_budget(ctx, cert, issuer.gate(), manual) {
        Ok(receipt) => receipt,
        Err((message, wait)) => {
            let reason = tenancy::BUDGET_EXHAUSTED;
            return not_ready_for(ctx, api, cert, status, reason, &message, wait).await;
        }
    };
    let replaces = replaces_id(issuer, &status, current.as_ref());
    let created = new_order(ctx, cert, &account, &inputs, replaces.as_deref()).await;
    let (order_status, mut order) = match created {
        Ok(created) => created,
        Err(source) if source.is_bad_nonce() => {
            ctx.budgets.refund(receipt);
            // Not the order's failure: ask again in a moment (the claim in status stands).
            tracing::debug!(cert = %describe(cert), error = %source, "newOrder refused the nonce; retrying");
            return Ok(Action::requeue(crate::retry::jittered(
                order::TRANSIENT_RETRY,
            )));
        }
        Err(source) => {
            let text = match source.problem() {
                Some(problem) => format!("the CA refused the order: {}", problem_text(problem)),
                None => format!("creating the order failed: {source}"),
            };
            let kind = FailureKind::of(&source);
            return order::record_failure(ctx, api, issuer, cert, status, &text, kind).await;
        }
    };
    crate::crash::point(
        "order-created",
        &cert.namespace().unwrap_or_default(),
        &order_status.url,
    );
    tracing::info!(cert = %describe(cert), order = %order_status.url, "order created");
    // Present the challenges now, from the order just created: the round records the order with
    // the claim and the tokens in one status write before it applies any route or record.
    let new_order = order::NewOrder {
        key,
        event: format!("Created order {} ({})", order_status.url, reason.message()),
    };
    let result = order::present_challenges(
        ctx,
        api,
        cert,
        status,
        order_status,
        issuer,
        &account,
        &mut order,
        Some(new_order),
    )
    .await;
    if result.is_ok() {
        ctx.orders.keep(order);
    }
    result
}

/// Claims an issuance in status: the next key's Secret, `Issuing=True` with the reason, and, for a
/// Certificate that has never been Ready, `Ready=False` (reason `Issuing`) so that `kubectl get`
/// never shows an empty READY column.
fn mark_issuing(
    status: &mut CertificateStatus,
    cert: &Certificate,
    next_key_secret: String,
    reason: &IssueReason,
) {
    status.next_private_key_secret_name = Some(next_key_secret);
    let refs = cert.spec.issuer_list();
    let index = failover::status_index(status, refs.len());
    failover::record_index(status, refs, index);
    conditions::set(
        &mut status.conditions,
        ISSUING,
        true,
        reason.reason(),
        &format!("Issuing a certificate: {}", reason.message()),
        cert.meta().generation,
        now(),
    );
    if conditions::find(&status.conditions, READY).is_none() {
        set_ready(
            status,
            cert,
            false,
            "Issuing",
            &format!("No certificate yet: {}", reason.message()),
        );
    }
}

/// What an order asks the CA for, taken from the spec and checked before anything is written.
struct OrderInputs {
    profile: Option<String>,
    key_spec: KeySpec,
    identifiers: Vec<pki::Identifier>,
}

/// The order's inputs, or the reason and message of a spec that no order can satisfy.
fn order_inputs(
    cert: &Certificate,
    issuer: &ResolvedIssuer,
    account: &Account,
) -> Result<OrderInputs, (&'static str, String)> {
    let profile = cert
        .spec
        .profile
        .clone()
        .or_else(|| issuer.acme.profile.clone());
    if let Some(wanted) = profile.as_deref() {
        lifecycle::check_profile(
            wanted,
            account.profiles().map(|p| p.name),
            &issuer.acme.server,
        )
        .map_err(|message| ("UnknownProfile", message))?;
    }
    let key_spec = KeySpec::from_spec(cert.spec.private_key.as_ref())
        .map_err(|e| ("InvalidSpec", e.to_string()))?;
    let identifiers = pki::identifiers(&cert.spec).map_err(|e| ("InvalidSpec", e.to_string()))?;
    Ok(OrderInputs {
        profile,
        key_spec,
        identifiers,
    })
}

/// Creates the order, naming the replaced certificate where there is one; if the CA refuses the
/// order for that hint (e.g. `alreadyReplaced` after an earlier replacement order), orders again
/// without it: the renewal matters more than the hint.
async fn new_order(
    ctx: &Ctx,
    cert: &Certificate,
    account: &Account,
    inputs: &OrderInputs,
    replaces: Option<&str>,
) -> Result<(crate::api::OrderStatus, instant_acme::Order), crate::acme::AcmeError> {
    let profile = inputs.profile.as_deref();
    let created = order::create_order(ctx, account, &inputs.identifiers, profile, replaces).await;
    match created {
        Err(e)
            if replaces.is_some()
                && e.problem().is_some()
                && !e.is_rate_limited()
                && !e.is_bad_nonce() =>
        {
            tracing::info!(cert = %describe(cert), error = %e, "the CA refused the order naming the replaced certificate; ordering without `replaces`");
            order::create_order(ctx, account, &inputs.identifiers, profile, None).await
        }
        other => other,
    }
}

/// The ARI identifier to send as `replaces`: the current certificate's, when it came from this
/// issuer and the CA has answered ARI for it (so the CA knows ARI and the certificate).
fn replaces_id(
    issuer: &ResolvedIssuer,
    status: &CertificateStatus,
    current: Option<&Secret>,
) -> Option<String> {
    if !renewal_info::enabled(issuer) {
        return None;
    }
    let known = status
        .renewal_info
        .as_ref()
        .filter(|i| i.window_start.is_some())?;
    let leaf = revocation::revocable(current, &issuer.ident.name, issuer.kind).ok()?;
    let id = lifecycle::certificate_id(&leaf.leaf_der).ok()?;
    (id == known.certificate_id).then_some(id)
}

/// The next key: the one of an attempt this status still claims (a failed or interrupted order),
/// if it fits the spec; with `rotationPolicy: Never`, the current Secret's key; otherwise freshly
/// generated. A next-key Secret that status does not claim is a leftover of a finished issuance
/// (its key is the current certificate's) and is replaced, so `Always` really rotates; a Secret
/// of that name that is not this Certificate's next key is left alone (`Ok(Err(message))`), and
/// the replacement is guarded by the resourceVersion read, so the API server decides.
async fn ensure_next_key(
    secrets: &Api<Secret>,
    cert: &Certificate,
    name: &str,
    spec: KeySpec,
    current: Option<&Secret>,
    resuming: bool,
) -> Result<Result<pki::PrivateKey, String>, Error> {
    if resuming
        && let Some(existing) = secrets
            .get_opt(name)
            .await
            .context(|| format!("reading Secret {name}"))?
        && secret::is_next_key_of(&existing, &cert.name_any())
        && let Some(key) = data_str(&existing, TLS_KEY)
            .and_then(|p| pki::parse_pem(p).ok())
            .filter(|key| key.spec() == spec)
    {
        return Ok(Ok(key));
    }
    let policy = cert
        .spec
        .private_key
        .as_ref()
        .and_then(|p| p.rotation_policy)
        .unwrap_or_default();
    let reused = (policy == RotationPolicy::Never)
        .then(|| {
            current
                .and_then(|s| data_str(s, TLS_KEY))
                .and_then(|p| pki::parse_pem(p).ok())
        })
        .flatten()
        .filter(|k| k.spec() == spec);
    let key = match reused {
        Some(k) => k,
        None => pki::generate(&spec).map_err(|source| Error::Pki {
            context: format!("generating a {spec} key for Certificate {}", describe(cert)),
            source,
        })?,
    };
    let pem = key
        .to_pem(crate::api::PrivateKeyEncoding::PKCS8)
        .map_err(|source| Error::Pki {
            context: "encoding the next key".into(),
            source,
        })?;
    let mut body = secret::next_key_secret(cert, name, &pem);
    let taken = || {
        format!(
            "Secret {name} exists and is not this Certificate's next private key (it lacks the \
             labels {}=next-key and {}={}), so it is left alone; delete or rename it",
            crate::labels::SECRET_ROLE,
            crate::labels::CERTIFICATE_NAME,
            cert.name_any()
        )
    };
    match secrets.create(&PostParams::default(), &body).await {
        Ok(_) => return Ok(Ok(key)),
        Err(e) if matches!(&e, kube::Error::Api(s) if s.code == 409) => {}
        Err(e) => {
            return Err(e).context(|| format!("storing the next private key in Secret {name}"));
        }
    }
    // A stale next-key Secret (a finished issuance's, or the wrong key type after a spec
    // change): replaced, but only if it is this Certificate's, and only the version read.
    let Some(existing) = secrets
        .get_opt(name)
        .await
        .context(|| format!("reading Secret {name}"))?
    else {
        return Ok(Err(format!(
            "Secret {name} was deleted while its next private key was being stored; trying again"
        )));
    };
    if !secret::is_next_key_of(&existing, &cert.name_any()) {
        return Ok(Err(taken()));
    }
    body.metadata.resource_version = existing.resource_version();
    match secrets
        .patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&apply_body(&body)),
        )
        .await
    {
        Ok(_) => Ok(Ok(key)),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(Err(format!(
            "Secret {name} changed while the next private key was being stored; trying again"
        ))),
        Err(e) => Err(e).context(|| format!("replacing Secret {name}")),
    }
}

/// A spec problem no retry can fix: `Ready=False` with the reason, no CA traffic, wait for an edit.
async fn fail_permanently(
    ctx: &Ctx,
    api: &Api<Certificate>,
    cert: &Certificate,
    mut status: CertificateStatus,
    reason: &str,
    message: &str,
) -> Result<Action, Error> {
    set_ready(&mut status, cert, false, reason, message);
    ctx.event(cert, true, reason, "Issue", message.to_string())
        .await;
    apply_status(ctx, api, cert, &status).await?;
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::IssuerRef;
    use crate::controller::verdict::tests::certificate;

    #[test]
    fn a_due_renewal_names_the_cas_window_when_one_was_learnt() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
        let at: Timestamp = "2027-02-01T00:00:00Z".parse().unwrap();
        let mut status = CertificateStatus::default();
        assert_eq!(renewal_reason(&status, at), IssueReason::Renewal(at));
        status.renewal_info = Some(crate::api::RenewalInfoStatus {
            window_start: Some(Time::from(at)),
            ..Default::default()
        });
        assert_eq!(renewal_reason(&status, at), IssueReason::RenewalWindow(at));
    }

    #[test]
    fn an_issuance_records_the_issuer_in_use() {
        let mut cert = certificate();
        cert.spec.issuer_ref = None;
        cert.spec.issuer_refs = ["a", "b"]
            .iter()
            .map(|n| IssuerRef {
                name: (*n).into(),
                ..Default::default()
            })
            .collect();
        let reason = IssueReason::DoesNotExist("none".into());
        let mut status = CertificateStatus {
            issuer_index: Some(1),
            ..Default::default()
        };
        mark_issuing(&mut status, &cert, "web-next-key".into(), &reason);
        assert_eq!(status.issuer_index, Some(1));
        assert_eq!(status.issuer_ref.map(|r| r.name), Some("b".to_string()));
        // Out of range (the list shrank): the first.
        let mut status = CertificateStatus {
            issuer_index: Some(5),
            ..Default::default()
        };
        mark_issuing(&mut status, &cert, "web-next-key".into(), &reason);
        assert_eq!(status.issuer_index, Some(0));
        // With issuerRef: index 0, that issuer.
        let mut status = CertificateStatus::default();
        mark_issuing(&mut status, &certificate(), "web-next-key".into(), &reason);
        assert_eq!(status.issuer_index, Some(0));
        assert_eq!(
            status.issuer_ref.map(|r| r.name),
            Some("pebble".to_string())
        );
    }

    #[test]
    fn a_first_issuance_is_marked_issuing_and_not_ready() {
        let cert = certificate();
        let mut status = CertificateStatus::default();
        let reason = IssueReason::DoesNotExist("Secret shop/web-tls does not exist".into());
        mark_issuing(&mut status, &cert, "web-next-key".into(), &reason);
        assert_eq!(
            status.next_private_key_secret_name.as_deref(),
            Some("web-next-key")
        );
        let issuing = conditions::find(&status.conditions, ISSUING).expect("Issuing condition");
        assert_eq!(
            (issuing.status.as_str(), issuing.reason.as_str()),
            ("True", "DoesNotExist")
        );
        assert_eq!(issuing.observed_generation, Some(3));
        let ready = conditions::find(&status.conditions, READY).expect("Ready condition");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "Issuing")
        );
        assert!(
            ready.message.contains("does not exist"),
            "{}",
            ready.message
        );
    }

    #[test]
    fn a_renewal_leaves_ready_as_it_was() {
        let cert = certificate();
        let mut status = CertificateStatus::default();
        set_ready(&mut status, &cert, true, "Ready", "valid until then");
        let at = Timestamp::from_second(1_800_000_000).expect("a valid time");
        mark_issuing(
            &mut status,
            &cert,
            "web-next-key".into(),
            &IssueReason::Renewal(at),
        );
        let ready = conditions::find(&status.conditions, READY).expect("Ready condition");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", "Ready")
        );
        let issuing = conditions::find(&status.conditions, ISSUING).expect("Issuing condition");
        assert_eq!(issuing.reason, "Renewing");
    }
}
