//! The `selfSigned` and `ca` issuers: certificates signed here, with no account and no order.
//!
//! The I/O edges only: read the CA Secret, write the TLS Secret (one write holding the new key,
//! so no next-key Secret), record status and Events. The decisions are pure: whether a Secret is
//! a usable CA ([`pki::sign::load_ca`]), whether the current Secret still satisfies the spec for
//! this issuer ([`evaluate_local`]), and the signing itself ([`pki::sign::sign`]).
//!
//! Noticing a changed CA: the Secret watch is label-selected and metadata-only, so a CA Secret
//! written by hand is not seen by it. Each `ca` Issuer is therefore reconciled again every five
//! minutes (jittered), and at once when a Secret ferrocert writes (a CA Certificate's) changes
//! (see `run.rs`). The issuer records the CA's fingerprint in `status.ca`; a new fingerprint
//! changes the Issuer, which wakes its Certificates; each compares the fingerprint annotation on
//! its Secret with the CA it reads, and re-issues on a mismatch.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use super::backoff::requeue_at;
use super::issuer_ident::{IssuerIdent, record_ready};
use super::issuer_ref::LocalIssuer;
use super::tls_secret::{
    not_ready_for, record_adoption, reencode_key, refuse_secret, write_tls_secret,
};
use super::verdict::{IssueReason, Verdict, evaluate};
use super::{Ctx, apply_status, describe, now, set_ready, still_claims};
use crate::api::conditions::{self, ISSUING, READY};
use crate::api::issuer::{CaIssuerStatus, IssuerStatus};
use crate::api::{Certificate, CertificateStatus, RotationPolicy};
use crate::error::{Error, KubeContext};
use crate::labels;
use crate::pki::sign::{self, Signer, SigningCa};
use crate::pki::{self, KeySpec, PrivateKey};
use crate::secret::{self, TLS_CRT, TLS_KEY, TlsContents, data_str};

/// On the TLS Secret of a Certificate a `ca` issuer signed: the SHA-256 fingerprint of the CA
/// certificate that signed it. A different fingerprint from the issuer's current CA means the
/// CA was rotated: re-issue.
pub const ANN_CA_FINGERPRINT: &str = "ferrocert.dev/ca-fingerprint-sha256";

/// How often a `ca` issuer looks at its Secret again (jittered), for CA Secrets the Secret watch
/// does not see (not written by ferrocert).
pub const CA_RECHECK: Duration = Duration::from_secs(300);

/// A condition to show instead of signing: reason and message.
pub type NotUsable = (&'static str, String);

/// Reads and checks the CA Secret `namespace/name`. `Ok(Err(..))`: it is missing or no usable CA.
pub async fn load_ca(
    ctx: &Ctx,
    namespace: &str,
    name: &str,
    now: Timestamp,
) -> Result<Result<SigningCa, NotUsable>, Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let Some(secret) = secrets
        .get_opt(name)
        .await
        .context(|| format!("reading the CA Secret {namespace}/{name}"))?
    else {
        return Ok(Err((
            "CASecretNotFound",
            format!("the CA Secret {namespace}/{name} does not exist"),
        )));
    };
    Ok(
        sign::load_ca(data_str(&secret, TLS_CRT), data_str(&secret, TLS_KEY), now)
            .map_err(|p| (p.reason(), format!("the CA Secret {namespace}/{name}: {p}"))),
    )
}

/// Issuer / ClusterIssuer reconcile for `selfSigned` (`ca_secret` `None`: Ready at once) and `ca`
/// (Ready only while the Secret holds a valid CA whose key matches; looked at again every
/// [`CA_RECHECK`]).
pub(super) async fn reconcile_issuer<K>(
    ctx: &Ctx,
    api: &Api<K>,
    obj: &K,
    ident: &IssuerIdent,
    ca_secret: Option<&str>,
    status: Option<IssuerStatus>,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let before = status.clone().unwrap_or_default();
    let mut status = before.clone();
    status.acme = None;
    let (ready, reason, message) = match ca_secret {
        None => {
            status.ca = None;
            (
                true,
                "IsReady",
                "Signs each certificate with its own private key (self-signed)".to_string(),
            )
        }
        Some(name) => match load_ca(ctx, &ident.secret_namespace, name, Timestamp::now()).await? {
            Ok(ca) => {
                let message = format!(
                    "Signing CA verified: {} (Secret {}/{name}, SHA-256 {}), valid until {}",
                    ca.subject, ident.secret_namespace, ca.fingerprint, ca.not_after
                );
                status.ca = Some(CaIssuerStatus {
                    fingerprint_sha256: ca.fingerprint,
                    subject: Some(ca.subject),
                    not_after: Some(Time(ca.not_after)),
                });
                (true, "KeyPairVerified", message)
            }
            Err((reason, message)) => {
                status.ca = None;
                (false, reason, message)
            }
        },
    };
    conditions::set(
        &mut status.conditions,
        READY,
        ready,
        reason,
        &message,
        obj.meta().generation,
        now(),
    );
    record_ready(ctx, obj, ident, ready);
    if status != before {
        apply_status(ctx, api, obj, &status).await?;
        ctx.event(obj, !ready, reason, "Verify", message).await;
        tracing::info!(issuer = %describe(obj), ready, reason, "issuer reconciled");
    }
    Ok(match ca_secret {
        None => Action::await_change(),
        Some(_) => Action::requeue(crate::retry::jittered(CA_RECHECK)),
    })
}

/// Whether the current Secret satisfies the spec for a local issuer. Pure. On top of
/// [`evaluate`] (names, key, expiry, issuer annotations, renew requests; the common name counted
/// as a name only when it is a host name or IP, see [`sign::local_view`]): the certificate must
/// say what the spec asks (isCA, subject, usages), and for a `ca` issuer it must come from the
/// current CA (the fingerprint recorded on the Secret, or, on a Secret without one, the
/// signature).
pub fn evaluate_local(
    cert: &Certificate,
    ca: Option<&SigningCa>,
    secret: Option<&Secret>,
    now: Timestamp,
) -> Verdict {
    let mut view = cert.clone();
    view.spec = sign::local_view(&cert.spec);
    let verdict = evaluate(&view, secret, now);
    let Verdict::UpToDate { leaf_der, .. } = &verdict else {
        return verdict;
    };
    if let Err(why) = sign::issued_matches_spec(&cert.spec, leaf_der) {
        return Verdict::Issue(IssueReason::SpecChanged(why));
    }
    let recorded = secret.and_then(|s| s.annotations().get(ANN_CA_FINGERPRINT));
    match ca {
        Some(ca) => match recorded {
            Some(fp) if *fp != ca.fingerprint => {
                return Verdict::Issue(IssueReason::IssuerChanged(format!(
                    "the certificate was signed by the CA with SHA-256 fingerprint {fp}; the \
                     issuer's CA is now {} ({})",
                    ca.subject, ca.fingerprint
                )));
            }
            Some(_) => {}
            None if !sign::signed_by_ca(leaf_der, ca) => {
                return Verdict::Issue(IssueReason::IssuerChanged(format!(
                    "the certificate is not signed by the issuer's CA {}",
                    ca.subject
                )));
            }
            None => {}
        },
        None if recorded.is_some() || !sign::is_self_issued(leaf_der) => {
            return Verdict::Issue(IssueReason::IssuerChanged(
                "the certificate is not self-signed".into(),
            ));
        }
        None => {}
    }
    verdict
}

/// Certificate reconcile for a local issuer, called where an ACME issuance would start: check the
/// Secret, then either record that it is up to date or sign a new certificate and write it.
pub(super) async fn reconcile_certificate(
    ctx: &Ctx,
    api: &Api<Certificate>,
    cert: &Certificate,
    mut status: CertificateStatus,
    issuer: &LocalIssuer,
    grant: &crate::policy::Grant,
) -> Result<Action, Error> {
    let ns = cert.namespace().unwrap_or_default();
    let now_ts = Timestamp::now();
    let ca = match &issuer.ca_secret {
        None => None,
        Some(name) => match load_ca(ctx, &issuer.ident.secret_namespace, name, now_ts).await? {
            Ok(ca) => Some(ca),
            Err((reason, message)) => {
                let message = format!(
                    "{} {} cannot sign: {message}",
                    issuer.ident.kind, issuer.ident.name
                );
                return not_ready(ctx, api, cert, status, reason, &message).await;
            }
        },
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let current = secrets
        .get_opt(&cert.spec.secret_name)
        .await
        .context(|| format!("reading Secret {ns}/{}", cert.spec.secret_name))?;
    let claim = secret::claim(current.as_ref(), &cert.name_any(), |other| {
        still_claims(ctx, &ns, other, &cert.spec.secret_name)
    });
    if let Some((reason, message)) = claim.refusal(&cert.spec.secret_name, &cert.name_any()) {
        return refuse_secret(ctx, api, cert, status, reason, &message).await;
    }
    let reason = match evaluate_local(cert, ca.as_ref(), current.as_ref(), now_ts) {
        Verdict::Issue(reason) => reason,
        Verdict::UpToDate { renewal, .. } if now_ts >= renewal => IssueReason::Renewal(renewal),
        Verdict::UpToDate {
            not_before,
            not_after,
            renewal,
            key_encoding_only,
            adopt,
            ..
        } => {
            if let (Some(_), Some(s)) = (key_encoding_only, current.as_ref()) {
                reencode_key(ctx, cert, s).await?;
            }
            if let (Some(adoption), Some(s)) = (adopt, current.as_ref()) {
                let times = (not_after, renewal);
                record_adoption(ctx, cert, s, &adoption, &issuer.ident, &mut status, times).await?;
            }
            status.not_before = Some(Time(not_before));
            status.not_after = Some(Time(not_after));
            status.renewal_time = Some(Time(renewal));
            set_ready(
                &mut status,
                cert,
                true,
                "Ready",
                &format!("The certificate is valid until {not_after}"),
            );
            conditions::remove(&mut status.conditions, ISSUING);
            if Some(&status) != cert.status.as_ref() {
                apply_status(ctx, api, cert, &status).await?;
            }
            return Ok(requeue_at(renewal, now_ts));
        }
    };
    let manual = matches!(reason, IssueReason::RenewRequested(_));
    if let Err((message, wait)) = super::tenancy::take_budget(ctx, cert, issuer.gate(), manual) {
        return not_ready_for(
            ctx,
            api,
            cert,
            status,
            super::tenancy::BUDGET_EXHAUSTED,
            &message,
            wait,
        )
        .await;
    }
    let signing = Signing {
        ca: ca.as_ref(),
        limits: grant.signing_limits(),
    };
    issue(
        ctx,
        api,
        cert,
        status,
        issuer,
        &signing,
        current.as_ref(),
        reason,
    )
    .await
}

/// What signs, and within which limits of the issuer's policy.
struct Signing<'a> {
    ca: Option<&'a SigningCa>,
    limits: sign::SigningLimits,
}

/// Signs a new certificate and writes it with its key in one Secret write, then records it.
#[allow(clippy::too_many_arguments)]
async fn issue(
    ctx: &Ctx,
    api: &Api<Certificate>,
    cert: &Certificate,
    mut status: CertificateStatus,
    issuer: &LocalIssuer,
    signing: &Signing<'_>,
    current: Option<&Secret>,
    reason: IssueReason,
) -> Result<Action, Error> {
    let ca = signing.ca;
    let ns = cert.namespace().unwrap_or_default();
    let key_spec = match KeySpec::from_spec(cert.spec.private_key.as_ref()) {
        Ok(spec) => spec,
        Err(e) => {
            return not_ready(ctx, api, cert, status, "InvalidSpec", &e.to_string()).await;
        }
    };
    let key = next_key(cert, key_spec, current).map_err(|source| Error::Pki {
        context: format!(
            "generating a {key_spec} key for Certificate {}",
            describe(cert)
        ),
        source,
    })?;
    let signer = ca.map_or(Signer::SelfSigned, Signer::Ca);
    let signed =
        match sign::sign_within(&cert.spec, &key, signer, Timestamp::now(), &signing.limits) {
            Ok(signed) => signed,
            Err(e) => {
                let message = format!(
                    "{} {} could not sign the certificate: {e}",
                    issuer.ident.kind, issuer.ident.name
                );
                return not_ready(ctx, api, cert, status, "Failed", &message).await;
            }
        };
    let key_pem = secret::encode_key(cert, &key).map_err(|source| Error::Pki {
        context: format!("encoding tls.key for Certificate {}", describe(cert)),
        source,
    })?;
    let renew_request = cert.annotations().get(labels::ANN_RENEW_REQUESTED).cloned();
    let outputs = crate::controller::outputs::for_issuance(
        ctx,
        cert,
        &signed.chain_pem,
        &key_pem,
        Some(&signed.ca_pem),
    )
    .await?;
    let mut tls = secret::tls_secret(
        cert,
        &TlsContents {
            chain_pem: &signed.chain_pem,
            key_pem: &key_pem,
            ca_pem: Some(&signed.ca_pem),
            issuer_name: &issuer.ident.name,
            issuer_kind: issuer.kind,
            renew_handled: renew_request.as_deref(),
            outputs: outputs.as_ref(),
        },
    );
    if let Some(ca) = ca {
        tls.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(ANN_CA_FINGERPRINT.to_string(), ca.fingerprint.clone());
    }
    let secrets = Api::<Secret>::namespaced(ctx.client.clone(), &ns);
    if let Err(lost) = write_tls_secret(&secrets, &tls, current).await? {
        return refuse_secret(ctx, api, cert, status, "SecretInUse", &lost).await;
    }

    let leaf = &signed.leaf;
    let renewal = pki::renewal_time_for_spec(&cert.spec, leaf.not_before, leaf.not_after)
        .unwrap_or(leaf.not_after);
    mark_signed(&mut status, cert, leaf.not_before, leaf.not_after, renewal);
    // As for ACME issuance, the Event precedes the write that makes the Certificate Ready.
    let by = match ca {
        Some(ca) => format!("signed by the CA {} of", ca.subject),
        None => "self-signed by".to_string(),
    };
    tracing::info!(cert = %describe(cert), serial = %leaf.serial_hex, not_after = %leaf.not_after, "certificate signed locally");
    ctx.event(
        cert,
        false,
        "Issued",
        &format!("IssueRevision{}", status.revision.unwrap_or(0)),
        format!(
            "Certificate {by} {} {} (serial {}, valid until {}), stored in Secret {}; renewal \
             at {renewal} ({})",
            issuer.ident.kind,
            issuer.ident.name,
            leaf.serial_hex,
            leaf.not_after,
            cert.spec.secret_name,
            reason.message()
        ),
    )
    .await;
    apply_status(ctx, api, cert, &status).await?;
    Ok(requeue_at(renewal, Timestamp::now()))
}

/// Status after a certificate was signed and stored: the new validity and renewal time, the
/// next revision, `Ready=True`, and nothing left of an ACME order, adoption or failure. Pure.
fn mark_signed(
    status: &mut CertificateStatus,
    cert: &Certificate,
    not_before: Timestamp,
    not_after: Timestamp,
    renewal: Timestamp,
) {
    status.order = None;
    status.renewal_info = None;
    status.next_private_key_secret_name = None;
    status.adopted = None;
    status.failed_issuance_attempts = None;
    status.last_failure_time = None;
    status.not_before = Some(Time(not_before));
    status.not_after = Some(Time(not_after));
    status.renewal_time = Some(Time(renewal));
    status.revision = Some(super::next_count(status.revision));
    conditions::remove(&mut status.conditions, ISSUING);
    set_ready(
        status,
        cert,
        true,
        "Ready",
        &format!("The certificate is valid until {not_after}"),
    );
}

/// The key for the new certificate: with `rotationPolicy: Never` the current Secret's key when
/// it fits the spec, else a new one. No next-key Secret: the key is written with the certificate
/// in the same Secret write, so there is nothing to lose in between.
fn next_key(
    cert: &Certificate,
    spec: KeySpec,
    current: Option<&Secret>,
) -> Result<PrivateKey, pki::PkiError> {
    let policy = cert
        .spec
        .private_key
        .as_ref()
        .and_then(|p| p.rotation_policy)
        .unwrap_or_default();
    let reused = (policy == RotationPolicy::Never)
        .then(|| current.and_then(|s| data_str(s, TLS_KEY)))
        .flatten()
        .and_then(|pem| pki::parse_pem(pem).ok())
        .filter(|k| k.spec() == spec);
    match reused {
        Some(key) => Ok(key),
        None => pki::generate(&spec),
    }
}

/// `Ready=False` with the reason, an Event when that is news, and a look again after
/// [`CA_RECHECK`] (the issuer's status changing, when its CA is fixed, wakes it sooner).
async fn not_ready(
    ctx: &Ctx,
    api: &Api<Certificate>,
    cert: &Certificate,
    status: CertificateStatus,
    reason: &str,
    message: &str,
) -> Result<Action, Error> {
    not_ready_for(ctx, api, cert, status, reason, message, CA_RECHECK).await
}

#[cfg(test)]
mod tests;
