//! Driving an ACME order one step per reconcile: present challenges, tell the CA, poll, finalize,
//! store the certificate, clean up. Everything the next step needs is in the Certificate's status.

use std::time::{Duration, Instant};

use instant_acme::{Account, AuthorizationStatus, ChallengeType};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use super::http01::{self, CheckStep, PresentError};
use super::issuer_ref::{ResolvedIssuer, account_for, account_key_der, issuer_account_config};
use super::{Ctx, apply_status, describe, dns01, now, owner_reference, set_ready};
use crate::acme::{AcmeError, problem_text};
use crate::api::conditions::{self, ISSUING};
use crate::api::{
    Certificate, CertificateStatus, ChallengeKind, ChallengeState, OrderAuthorization, OrderState,
    OrderStatus,
};
use crate::controller::backoff::requeue_at;
use crate::error::{Error, KubeContext, is_not_found};
use crate::labels;
use crate::pki::{self, Identifier};
use crate::secret::{self, TLS_KEY, TlsContents, data_str};
use crate::solver::dns01::txt_value as dns01_txt_value;
use crate::solver::http01::routing::Route;
use crate::solver::select::{Target, select};

mod authz_check;
mod cleanup;
mod failure;
mod finalize;
mod present;
mod record;
mod self_check;
mod tell;

pub use crate::controller::failover::FailureKind;
pub use cleanup::{cleanup_temporaries, cleanup_temporaries_of, may_have_http01_objects};
pub use failure::record_failure;
pub use finalize::echo_key;
use finalize::{complete, next_key};
pub use present::present_challenges;
use self_check::wait_for_self_checks;
pub use tell::poll_delay;
use tell::{TellFailure, tell_ca};

/// How soon to repeat a step the CA refused for a transient reason (a refused nonce).
pub const TRANSIENT_RETRY: Duration = Duration::from_secs(1);

/// An order just created and not yet in status: the first round over its challenges records it
/// (with the issuance's claim) before presenting anything, then says so in an Event.
pub struct NewOrder {
    /// The order's next private key (kept in memory for finalizing; it is in its Secret already).
    pub key: pki::PrivateKey,
    /// The `OrderCreated` Event's message.
    pub event: String,
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
    let mut request = instant_acme::NewOrder::new(&ids);
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
        state: Some(order_state(state.status)),
        authorizations: Vec::new(),
        error: None,
        profile: state.profile.clone(),
        replaces: state.replaces.as_ref().map(ToString::to_string),
    };
    Ok((recorded, order))
}

fn order_state(s: instant_acme::OrderStatus) -> OrderState {
    match s {
        instant_acme::OrderStatus::Pending => OrderState::Pending,
        instant_acme::OrderStatus::Ready => OrderState::Ready,
        instant_acme::OrderStatus::Processing => OrderState::Processing,
        instant_acme::OrderStatus::Valid => OrderState::Valid,
        instant_acme::OrderStatus::Invalid => OrderState::Invalid,
    }
}

fn authz_state(s: AuthorizationStatus) -> ChallengeState {
    match s {
        AuthorizationStatus::Pending => ChallengeState::Pending,
        AuthorizationStatus::Valid => ChallengeState::Valid,
        AuthorizationStatus::Invalid => ChallengeState::Invalid,
        AuthorizationStatus::Revoked => ChallengeState::Revoked,
        AuthorizationStatus::Expired => ChallengeState::Expired,
        AuthorizationStatus::Deactivated => ChallengeState::Deactivated,
    }
}

/// Our record of a challenge the CA reports in state `s` (`None`: pending, nothing to record).
fn challenge_state(s: instant_acme::ChallengeStatus) -> ChallengeState {
    match s {
        instant_acme::ChallengeStatus::Pending => ChallengeState::Pending,
        instant_acme::ChallengeStatus::Processing => ChallengeState::Processing,
        instant_acme::ChallengeStatus::Valid => ChallengeState::Valid,
        instant_acme::ChallengeStatus::Invalid => ChallengeState::Invalid,
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
        // The handle serves the authorizations its last round fetched from memory (instant-acme).
        // Used as it is only after a round that left a challenge for us to present or tell (only
        // we move those on); otherwise refreshed, or a step on stale states never sees the order
        // move on (a wildcard-and-apex order once stalled that way).
        Some(mut kept) => {
            let current = ctx.orders.take_authorizations_current(&recorded.url);
            if current && kept.state().status == instant_acme::OrderStatus::Pending {
                Ok(kept)
            } else {
                match kept.refresh().await {
                    Ok(_) => Ok(kept),
                    Err(e) => Err(AcmeError::from(e)),
                }
            }
        }
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
            cleanup_temporaries_of(ctx, cert, Some(&recorded), issuer).await?;
            dns01::cleanup(ctx, issuer, cert.labels(), &recorded).await;
            status.order = None;
            apply_status(ctx, api, cert, &status).await?;
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
    status: CertificateStatus,
    recorded: OrderStatus,
    issuer: &ResolvedIssuer,
    account: &Account,
    order: &mut instant_acme::Order,
) -> Result<Action, Error> {
    let state = order.state().status;
    let mut recorded = recorded;
    recorded.state = Some(order_state(state));
    match state {
        instant_acme::OrderStatus::Pending => {
            if record::only_the_ca_is_working(&recorded, |t| ctx.orders.was_told(t)) {
                // Every open challenge was told: the CA validates. Poll the order only.
                let since = ctx
                    .polling_lock()
                    .get(&recorded.url)
                    .copied()
                    .unwrap_or_else(Instant::now);
                return Ok(Action::requeue(poll_delay(since.elapsed())));
            }
            present_challenges(
                ctx, api, cert, status, recorded, issuer, account, order, None,
            )
            .await
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
                    FailureKind::of(&e),
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
            // Finalized, the CA still processing: no status write for this short phase (the kept
            // order handle carries it); look again shortly.
            Ok(Action::requeue(Duration::from_millis(500)))
        }
        instant_acme::OrderStatus::Processing => Ok(Action::requeue(Duration::from_millis(500))),
        instant_acme::OrderStatus::Valid => {
            let key = next_key(ctx, cert, &status).await?;
            complete(ctx, api, cert, status, order, issuer, key).await
        }
        instant_acme::OrderStatus::Invalid => {
            let mut errors = Vec::new();
            // The order's own error may be the CA's (`serverInternal`); a challenge's is not.
            let mut kind = FailureKind::NotTheCa;
            if let Some(p) = &order.state().error {
                errors.push(problem_text(p));
                kind = FailureKind::of_problem(p.r#type.as_deref(), p.status);
            }
            // The challenges' errors, fetching no more authorizations than names were asked.
            let asked = pki::identifiers(&cert.spec).map_or(0, |ids| ids.len());
            let bounded = order.state().authorizations.len() <= asked;
            let mut authzs = order.authorizations();
            while let Some(Ok(authz)) = authzs.next().await.filter(|_| bounded) {
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
                kind,
            )
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::cleanup::may_have_http01_objects;
    use super::present::written_ahead;
    use super::*;
    use crate::api::OrderAuthorization;

    fn order_with(types: &[Option<ChallengeKind>]) -> OrderStatus {
        OrderStatus {
            url: "https://ca.test/order/1".into(),
            authorizations: types
                .iter()
                .map(|t| OrderAuthorization {
                    challenge_type: *t,
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
            ChallengeKind::Dns01
        )]))));
        assert!(may_have_http01_objects(Some(&order_with(&[
            Some(ChallengeKind::Dns01),
            Some(ChallengeKind::Http01)
        ]))));
        assert!(
            may_have_http01_objects(Some(&order_with(&[Some(ChallengeKind::Dns01), None]))),
            "an authorization without a recorded type may have been presented"
        );
    }
}
