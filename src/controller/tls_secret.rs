//! What a Certificate reconcile does to its TLS Secret short of issuing, and how it says the
//! Secret is not usable: mark an adopted Secret as ours, re-encode its key, or set `Ready=False`
//! with a reason and an Event. Shared by the ACME and the local issuers' paths.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;

use super::issuer_ident::IssuerIdent;
use super::verdict::Adoption;
use super::{Ctx, apply_status, describe, now, set_ready};
use crate::api::conditions::{self, ISSUING};
use crate::api::{Certificate, CertificateStatus};
use crate::error::{Error, KubeContext};
use crate::labels;
use crate::pki;
use crate::secret::{self, TLS_KEY, data_str};

/// Marks an adopted Secret as this Certificate's and records the adoption in status and an Event.
pub(super) async fn record_adoption(
    ctx: &Ctx,
    cert: &Certificate,
    secret: &Secret,
    adoption: &Adoption,
    issuer: &IssuerIdent,
    status: &mut CertificateStatus,
    (not_after, renewal): (Timestamp, Timestamp),
) -> Result<(), Error> {
    adopt_secret(ctx, cert, secret, adoption).await?;
    status.adopted = Some(crate::api::AdoptedStatus {
        serial: adoption.serial_hex.clone(),
        issuer: adoption.issuer_cn.clone(),
        previous_issuer_ref: adoption.previous_issuer_ref.clone(),
        adopted_at: Some(now()),
    });
    ctx.event(
        cert,
        false,
        "Adopted",
        "Adopt",
        format!(
            "Adopted the certificate in Secret {} (serial {}, issued by {}{}), valid until \
             {not_after}; renewal at {renewal} with {} {}",
            cert.spec.secret_name,
            adoption.serial_hex,
            adoption.issuer_cn.as_deref().unwrap_or("an unnamed CA"),
            adoption
                .previous_issuer_ref
                .as_deref()
                .map(|p| format!(" for {p}"))
                .unwrap_or_default(),
            issuer.kind,
            issuer.name
        ),
    )
    .await;
    Ok(())
}

/// Marks an adopted Secret as this Certificate's: the label the Secret watch selects and the
/// annotations naming the Certificate and the adopted serial. Not the issuer annotations: the
/// certificate was not issued by this issuer (so, for one, it is never revoked through it). A
/// merge patch guarded by the resourceVersion read; cert-manager's own annotations stay.
async fn adopt_secret(
    ctx: &Ctx,
    cert: &Certificate,
    secret: &Secret,
    adoption: &Adoption,
) -> Result<(), Error> {
    let ns = cert.namespace().unwrap_or_default();
    let patch = serde_json::json!({
        "metadata": {
            "resourceVersion": secret.resource_version(),
            "labels": {
                labels::CERTIFICATE_NAME: labels::label_value(&cert.name_any()),
                labels::SECRET_ROLE: "tls",
            },
            "annotations": {
                labels::ANN_CERTIFICATE_NAME: cert.name_any(),
                labels::ANN_ADOPTED_SERIAL: adoption.serial_hex,
            },
        }
    });
    Api::<Secret>::namespaced(ctx.client.clone(), &ns)
        .patch(
            &cert.spec.secret_name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .context(|| format!("marking Secret {ns}/{} as adopted", cert.spec.secret_name))?;
    Ok(())
}

/// Rewrites `tls.key` in the encoding the spec asks for (same key, no new certificate).
pub(super) async fn reencode_key(
    ctx: &Ctx,
    cert: &Certificate,
    secret: &Secret,
) -> Result<(), Error> {
    let Some(key) = data_str(secret, TLS_KEY).and_then(|p| pki::parse_pem(p).ok()) else {
        return Ok(());
    };
    let pem = secret::encode_key(cert, &key).map_err(|source| Error::Pki {
        context: "re-encoding tls.key".into(),
        source,
    })?;
    let patch = serde_json::json!({"data": {TLS_KEY: base64::Engine::encode(&base64::engine::general_purpose::STANDARD, pem)}});
    let secrets: Api<Secret> =
        Api::namespaced(ctx.client.clone(), &cert.namespace().unwrap_or_default());
    secrets
        .patch(
            &cert.spec.secret_name,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .context(|| format!("re-encoding tls.key of Secret {}", cert.spec.secret_name))?;
    Ok(())
}

/// The Secret `secretName` names may not be written by this Certificate (see
/// [`secret::SecretClaim`]): `Ready=False` with the reason, an Event, no CA traffic. Looked at
/// again every 30 s or so (jittered), because fixing it may mean changing a Secret the controller
/// does not watch (only its own Secrets are watched, by label).
pub(super) async fn refuse_secret(
    ctx: &Ctx,
    api: &Api<Certificate>,
    cert: &Certificate,
    status: CertificateStatus,
    reason: &str,
    message: &str,
) -> Result<Action, Error> {
    not_ready_for(
        ctx,
        api,
        cert,
        status,
        reason,
        message,
        Duration::from_secs(30),
    )
    .await
}

/// `Ready=False` with the reason (no issuance in progress), a warning and an Event when that is
/// news, and a look again after about `recheck` (jittered).
pub(super) async fn not_ready_for(
    ctx: &Ctx,
    api: &Api<Certificate>,
    cert: &Certificate,
    mut status: CertificateStatus,
    reason: &str,
    message: &str,
    recheck: Duration,
) -> Result<Action, Error> {
    set_ready(&mut status, cert, false, reason, message);
    conditions::remove(&mut status.conditions, ISSUING);
    if Some(&status) != cert.status.as_ref() {
        tracing::warn!(cert = %describe(cert), reason, "{message}");
        // Status first: a reconcile on a stale view fails there (409) instead of announcing twice.
        apply_status(ctx, api, cert, &status).await?;
        ctx.event(cert, true, reason, "Issue", message.to_string())
            .await;
    }
    Ok(Action::requeue(crate::retry::jittered(recheck)))
}
