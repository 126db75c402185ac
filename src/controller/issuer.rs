//! Issuer and ClusterIssuer reconcile: make sure the ACME account exists (generating its key into
//! `privateKeySecretRef` when absent), keep its contact current, and report `Ready`. The
//! `selfSigned` and `ca` issuers are reconciled in [`super::local_issuer`].

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use super::{Ctx, apply_status, describe, now};
use crate::acme::{Eab, problem_text};
use crate::api::conditions::{self, READY};
use crate::api::issuer::{AcmeIssuer, AcmeIssuerStatus, IssuerSpec, IssuerStatus, IssuerType};
use crate::api::{ClusterIssuer, Issuer};
use crate::error::{Error, is_not_found};
use crate::labels;
use crate::secret::data_str;

/// The default key of the EAB HMAC in its Secret.
pub const EAB_KEY: &str = "secret";

pub use super::issuer_ident::{ACCOUNT_KEY, IssuerIdent, account_config, record_ready};

/// A reason that stops registration, shown as `Ready=False`.
struct NotReady {
    reason: &'static str,
    message: String,
}

pub async fn reconcile_issuer(issuer: Arc<Issuer>, ctx: Ctx) -> Result<Action, Error> {
    let ns = issuer.namespace().unwrap_or_default();
    let ident = IssuerIdent {
        kind: "Issuer",
        name: issuer.name_any(),
        secret_namespace: ns.clone(),
    };
    let api: Api<Issuer> = Api::namespaced(ctx.client.clone(), &ns);
    reconcile_any(
        &ctx,
        &api,
        issuer.as_ref(),
        &ident,
        &issuer.spec,
        issuer.status.clone(),
    )
    .await
}

pub async fn reconcile_cluster_issuer(
    issuer: Arc<ClusterIssuer>,
    ctx: Ctx,
) -> Result<Action, Error> {
    let ident = IssuerIdent {
        kind: "ClusterIssuer",
        name: issuer.name_any(),
        secret_namespace: ctx.settings.cluster_resource_namespace.clone(),
    };
    let api: Api<ClusterIssuer> = Api::all(ctx.client.clone());
    let spec = issuer.spec.as_issuer_spec();
    reconcile_any(
        &ctx,
        &api,
        issuer.as_ref(),
        &ident,
        &spec,
        issuer.status.clone(),
    )
    .await
}

/// Dispatches on the issuer's type: ACME registers an account; `selfSigned` and `ca` are
/// checked in [`super::local_issuer`].
async fn reconcile_any<K>(
    ctx: &Ctx,
    api: &Api<K>,
    obj: &K,
    ident: &IssuerIdent,
    spec: &IssuerSpec,
    status: Option<IssuerStatus>,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    // A version our own status write replaced (a reconcile queued behind that write): acting on
    // it would ask the CA again and be refused at its write.
    if ctx.superseded.is_stale(obj) {
        tracing::debug!(issuer = %super::describe(obj), "a version our last write replaced; waiting for the watch");
        return Ok(Action::requeue(super::superseded::WAIT));
    }
    match spec.issuer_type() {
        Some(IssuerType::Acme(acme)) => reconcile_acme(ctx, api, obj, ident, acme, status).await,
        Some(IssuerType::SelfSigned) => {
            super::local_issuer::reconcile_issuer(ctx, api, obj, ident, None, status).await
        }
        Some(IssuerType::Ca(ca)) => {
            super::local_issuer::reconcile_issuer(
                ctx,
                api,
                obj,
                ident,
                Some(&ca.secret_name),
                status,
            )
            .await
        }
        // The CRD refuses such a spec; nothing to do until it changes.
        None => Ok(Action::await_change()),
    }
}

async fn reconcile_acme<K>(
    ctx: &Ctx,
    api: &Api<K>,
    obj: &K,
    ident: &IssuerIdent,
    acme: &AcmeIssuer,
    status: Option<IssuerStatus>,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut status = status.unwrap_or_default();
    let generation = obj.meta().generation;
    let email = acme.email.clone();
    let registered_uri = status.acme.as_ref().and_then(|a| a.uri.clone());
    let up_to_date = conditions::find(&status.conditions, READY)
        .is_some_and(|c| c.status == "True" && c.observed_generation == generation)
        && registered_uri.is_some();
    if up_to_date {
        // Steady state: no CA traffic. A changed spec bumps the generation and lands below.
        record_ready(ctx, obj, ident, true);
        return Ok(Action::await_change());
    }

    let outcome = register(ctx, ident, acme, &status).await;
    let (ready, reason, message, retry) = match outcome {
        Ok(uri) => {
            let email_changed = status
                .acme
                .as_ref()
                .and_then(|a| a.last_registered_email.as_ref())
                != email.as_ref();
            status.acme = Some(AcmeIssuerStatus {
                uri: Some(uri.clone()),
                last_registered_email: email.clone(),
            });
            if registered_uri.as_deref() != Some(uri.as_str()) || email_changed {
                ctx.event(
                    obj,
                    false,
                    "AccountRegistered",
                    "Register",
                    format!("ACME account {uri}"),
                )
                .await;
            }
            (
                true,
                "ACMEAccountRegistered",
                format!("The ACME account is registered: {uri}"),
                None,
            )
        }
        Err(not_ready) => {
            ctx.event(
                obj,
                true,
                not_ready.reason,
                "Register",
                not_ready.message.clone(),
            )
            .await;
            let retry = ctx
                .settings
                .backoff_base
                .clamp(Duration::from_secs(10), Duration::from_secs(300));
            (false, not_ready.reason, not_ready.message, Some(retry))
        }
    };
    conditions::set(
        &mut status.conditions,
        READY,
        ready,
        reason,
        &message,
        generation,
        now(),
    );
    record_ready(ctx, obj, ident, ready);
    apply_status(ctx, api, obj, &status).await?;
    tracing::info!(issuer = %describe(obj), ready, reason, "issuer reconciled");
    Ok(retry.map_or_else(Action::await_change, Action::requeue))
}

/// Finds or registers the account; returns its URL.
async fn register(
    ctx: &Ctx,
    ident: &IssuerIdent,
    acme: &AcmeIssuer,
    status: &IssuerStatus,
) -> Result<String, NotReady> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ident.secret_namespace);
    let key_ref = &acme.private_key_secret_ref;
    let data_key = key_ref.key.as_deref().unwrap_or(ACCOUNT_KEY);
    let existing = get_secret(&secrets, &key_ref.name).await?;
    let key_der = match &existing {
        None => None,
        Some(secret) => {
            let pem = data_str(secret, data_key).ok_or_else(|| NotReady {
                reason: "InvalidAccountKey",
                message: format!(
                    "Secret {}/{} has no key {data_key:?} holding a PEM account key",
                    ident.secret_namespace, key_ref.name
                ),
            })?;
            let key = crate::pki::parse_pem(pem).map_err(|e| NotReady {
                reason: "InvalidAccountKey",
                message: format!(
                    "Secret {}/{} key {data_key:?}: {e}",
                    ident.secret_namespace, key_ref.name
                ),
            })?;
            Some(key.pkcs8_der().to_vec())
        }
    };
    let config = account_config(acme).map_err(|message| NotReady {
        reason: "InvalidCABundle",
        message,
    })?;
    let eab = match &acme.external_account_binding {
        None => None,
        Some(binding) => Some(load_eab(&secrets, ident, binding).await?),
    };
    // Write-ahead: a new key is stored before the CA hears of it, so a crash (or a lost answer)
    // after the account is created never orphans it; the next try registers the same key, and the
    // CA returns the same account. With external account binding instant-acme must generate the
    // key itself (it sends the binding only when it does), so there the key is stored right after
    // registration: a crash in between costs the binding (see docs/security.md).
    let key_der = match (key_der, &eab) {
        (None, None) => {
            let key = crate::acme::account::new_account_key().map_err(|e| NotReady {
                reason: "ErrRegisterACMEAccount",
                message: e.to_string(),
            })?;
            store_account_key(&secrets, ident, &key_ref.name, data_key, &key).await?;
            Some(key)
        }
        (key, _) => key,
    };
    let email_changed = status
        .acme
        .as_ref()
        .and_then(|a| a.last_registered_email.as_deref())
        != acme.email.as_deref();
    let registered = ctx
        .accounts
        .register(
            &ident.cache_key(),
            &config,
            key_der.as_deref(),
            acme.email.as_deref(),
            email_changed,
            eab.as_ref(),
        )
        .await
        .map_err(|e| NotReady {
            reason: "ErrRegisterACMEAccount",
            message: format!(
                "registering the ACME account at {} failed: {}",
                acme.server,
                e.problem()
                    .map(problem_text)
                    .unwrap_or_else(|| e.to_string())
            ),
        })?;
    crate::crash::point(
        "account-registered",
        &ident.secret_namespace,
        &registered.uri,
    );
    if registered.key_generated {
        store_account_key(
            &secrets,
            ident,
            &key_ref.name,
            data_key,
            &registered.key_pkcs8,
        )
        .await?;
    }
    // After the key is stored: a bad profile must not cost the account.
    if let Some(wanted) = acme.profile.as_deref() {
        crate::acme::lifecycle::check_profile(
            wanted,
            registered.account.profiles().map(|p| p.name),
            &acme.server,
        )
        .map_err(|message| NotReady {
            reason: "UnknownProfile",
            message,
        })?;
    }
    Ok(registered.uri)
}

async fn get_secret(secrets: &Api<Secret>, name: &str) -> Result<Option<Secret>, NotReady> {
    match secrets.get(name).await {
        Ok(s) => Ok(Some(s)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(NotReady {
            reason: "SecretUnreadable",
            message: format!("reading Secret {name}: {e}"),
        }),
    }
}

async fn load_eab(
    secrets: &Api<Secret>,
    ident: &IssuerIdent,
    binding: &crate::api::ExternalAccountBinding,
) -> Result<Eab, NotReady> {
    let sref = &binding.key_secret_ref;
    let data_key = sref.key.as_deref().unwrap_or(EAB_KEY);
    let missing = || NotReady {
        reason: "EABSecretMissing",
        message: format!(
            "External Account Binding needs Secret {}/{} with key {data_key:?} holding the HMAC key",
            ident.secret_namespace, sref.name
        ),
    };
    let secret = get_secret(secrets, &sref.name).await?.ok_or_else(missing)?;
    let encoded = data_str(&secret, data_key).ok_or_else(missing)?;
    // CAs hand out the HMAC key base64url-encoded; accept padding and standard base64 as well.
    let cleaned = encoded.trim().trim_end_matches('=');
    let hmac_key = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cleaned)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(cleaned))
        .map_err(|e| NotReady {
            reason: "EABSecretInvalid",
            message: format!(
                "Secret {}/{} key {data_key:?} is not a base64url HMAC key: {e}",
                ident.secret_namespace, sref.name
            ),
        })?;
    Ok(Eab {
        key_id: binding.key_id.clone(),
        hmac_key,
    })
}

async fn store_account_key(
    secrets: &Api<Secret>,
    ident: &IssuerIdent,
    name: &str,
    data_key: &str,
    pkcs8: &[u8],
) -> Result<(), NotReady> {
    let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8.to_vec()));
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(ident.secret_namespace.clone()),
            labels: Some(
                [
                    (labels::SECRET_ROLE.to_string(), "account-key".to_string()),
                    (
                        labels::MANAGED_BY.to_string(),
                        labels::MANAGED_BY_VALUE.to_string(),
                    ),
                ]
                .into(),
            ),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(
            [(
                data_key.to_string(),
                k8s_openapi::ByteString(pem.into_bytes()),
            )]
            .into(),
        ),
        ..Default::default()
    };
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .map(|_| ())
        .map_err(|e| NotReady {
            reason: "SecretWriteFailed",
            message: format!(
                "the new ACME account key could not be stored in Secret {}/{name}: {e}",
                ident.secret_namespace
            ),
        })
}
