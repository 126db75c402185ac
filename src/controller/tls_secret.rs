//! What a Certificate reconcile does to its TLS Secret short of issuing, and how it says the
//! Secret is not usable: mark an adopted Secret as ours, re-encode its key, or set `Ready=False`
//! with a reason and an Event. Shared by the ACME and the local issuers' paths.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;

use super::issuer_ident::IssuerIdent;
use super::verdict::Adoption;
use super::{Ctx, FIELD_MANAGER, apply_body, apply_status, describe, now, set_ready};
use crate::api::conditions::{self, ISSUING};
use crate::api::{Certificate, CertificateStatus};
use crate::error::{Error, KubeContext};
use crate::labels;
use crate::pki;
use crate::secret::{self, TLS_KEY, data_str};

/// Writes a Certificate's TLS Secret `body` so that the API server, not a read made earlier,
/// decides the claim: when the Secret did not exist at `read`, it is created (a second creator
/// gets 409 AlreadyExists) with the fields every later write repeats (type, `tls.crt`,
/// `tls.key`, the ownership label and annotation), then completed; when it existed, the apply
/// carries the resourceVersion read as a precondition (a write in between gets 409). Two
/// Certificates naming one Secret can therefore never both write it: `Ok(Err(message))` for the
/// one that lost, nothing written. The completing apply is ours alone (a POST's fields belong to
/// an "Update" entry, which an apply cannot later drop), so outputs and template labels removed
/// from the spec still leave the Secret.
pub(super) async fn write_tls_secret(
    secrets: &Api<Secret>,
    body: &Secret,
    read: Option<&Secret>,
) -> Result<Result<Secret, String>, Error> {
    let name = body.name_any();
    let ns = secrets_namespace(body);
    let lost = || {
        format!(
            "Secret {name} was created or changed by another writer while this certificate was              being issued (another Certificate naming the same secretName?); nothing was written"
        )
    };
    let version = match read {
        Some(existing) => existing.resource_version(),
        None => {
            let params = PostParams {
                field_manager: Some(FIELD_MANAGER.to_string()),
                ..PostParams::default()
            };
            match secrets.create(&params, &claim_only(body)).await {
                Ok(created) => created.resource_version(),
                Err(kube::Error::Api(s)) if s.code == 409 => return Ok(Err(lost())),
                Err(e) => return Err(e).context(|| format!("creating Secret {ns}/{name}")),
            }
        }
    };
    let mut guarded = body.clone();
    guarded.metadata.resource_version = version;
    match secrets
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&apply_body(&guarded)),
        )
        .await
    {
        Ok(written) => Ok(Ok(written)),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(Err(lost())),
        Err(e) => Err(e).context(|| format!("writing Secret {ns}/{name}")),
    }
}

fn secrets_namespace(body: &Secret) -> String {
    body.metadata.namespace.clone().unwrap_or_default()
}

/// The part of a TLS Secret that every write of it repeats: what a create-only claim writes.
/// Pure.
fn claim_only(body: &Secret) -> Secret {
    let keep = |map: &Option<std::collections::BTreeMap<String, String>>, key: &str| {
        map.as_ref()
            .and_then(|m| m.get(key))
            .map(|v| [(key.to_string(), v.clone())].into_iter().collect())
    };
    let mut claim = Secret {
        type_: body.type_.clone(),
        ..Secret::default()
    };
    claim.metadata.name = body.metadata.name.clone();
    claim.metadata.namespace = body.metadata.namespace.clone();
    claim.metadata.labels = keep(&body.metadata.labels, labels::CERTIFICATE_NAME);
    claim.metadata.annotations = keep(&body.metadata.annotations, labels::ANN_CERTIFICATE_NAME);
    claim.data = body.data.as_ref().map(|data| {
        data.iter()
            .filter(|(k, _)| *k == secret::TLS_CRT || *k == TLS_KEY)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    });
    claim
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    #[test]
    fn a_create_only_claim_holds_only_what_every_later_write_repeats() {
        let body: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-tls", "namespace": "shop",
                "labels": {"ferrocert.dev/certificate-name": "web", "team": "a"},
                "annotations": {"ferrocert.dev/certificate-name": "web",
                                "ferrocert.dev/renew-handled": "r1"}},
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": "Y3J0", "tls.key": "a2V5", "ca.crt": "Y2E=", "keystore.p12": "cA=="}
        }))
        .unwrap();
        let claim = claim_only(&body);
        assert_eq!(claim.type_.as_deref(), Some("kubernetes.io/tls"));
        let data = claim.data.unwrap();
        assert_eq!(data.keys().collect::<Vec<_>>(), vec!["tls.crt", "tls.key"]);
        assert_eq!(data["tls.key"], ByteString(b"key".to_vec()));
        assert_eq!(claim.metadata.labels.unwrap().len(), 1);
        assert_eq!(
            claim
                .metadata
                .annotations
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            vec!["ferrocert.dev/certificate-name"]
        );
        assert_eq!(claim.metadata.namespace.as_deref(), Some("shop"));
    }
}
