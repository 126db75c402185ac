//! The I/O of the additional outputs (`spec.additionalOutputFormats`, `spec.keystores`; the pure
//! part is [`crate::secret::outputs`]): reading keystore passwords, and rewriting a Secret whose
//! outputs are missing or stale without a new order.
//!
//! Passwords are read from Secrets in the Certificate's own namespace only (the spec has no
//! namespace field), with a GET at each use: the controller's Secret watch sees only its own
//! Secrets, so a changed password is found by the periodic re-check of Certificates with
//! keystores (`outputs::recheck_by`) comparing the keystores' fingerprint annotation. Neither
//! passwords nor key material are ever logged or put in Events or conditions.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};

use super::{Ctx, describe};
use crate::api::{Certificate, KeystorePasswordSecretRef};
use crate::error::{Error, KubeContext};
use crate::secret::outputs::{self, KeystorePasswords, Outputs};
use crate::secret::{CA_CRT, TLS_CRT, TLS_KEY, data_str};

/// The condition reason when a keystore password cannot be read.
pub const PASSWORD_MISSING: &str = "KeystorePasswordMissing";
/// The condition reason when the outputs cannot be made from what was read.
pub const OUTPUTS_FAILED: &str = "OutputsFailed";

/// Why the outputs cannot be written: a condition reason and a message a person can act on.
pub type Refusal = (&'static str, String);

/// Reads the passwords the spec's keystores name. `Ok(Ok(None))`: no keystore is asked for.
pub async fn read_passwords(
    ctx: &Ctx,
    cert: &Certificate,
) -> Result<Result<Option<KeystorePasswords>, Refusal>, Error> {
    let spec = &cert.spec;
    if !outputs::keystores_wanted(spec) {
        return Ok(Ok(None));
    }
    let ns = cert.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let mut read: BTreeMap<String, Option<Secret>> = BTreeMap::new();
    let mut passwords = KeystorePasswords::default();
    let wanted = [
        outputs::pkcs12_wanted(spec).map(|k| ("pkcs12", k.password_secret_ref.as_ref())),
        outputs::jks_wanted(spec).map(|k| ("jks", k.password_secret_ref.as_ref())),
    ];
    for (store, reference) in wanted.into_iter().flatten() {
        let Some(reference) = reference else {
            return Ok(Err((
                PASSWORD_MISSING,
                format!("keystores.{store}.create is true but no passwordSecretRef is set"),
            )));
        };
        if !read.contains_key(&reference.name) {
            let secret = secrets.get_opt(&reference.name).await.context(|| {
                format!(
                    "reading the keystore password Secret {ns}/{}",
                    reference.name
                )
            })?;
            read.insert(reference.name.clone(), secret);
        }
        let secret = read.get(&reference.name).and_then(Option::as_ref);
        match password_in(secret, reference) {
            Ok(pw) => match store {
                "pkcs12" => passwords.pkcs12 = Some(pw),
                _ => passwords.jks = Some(pw),
            },
            Err(why) => {
                return Ok(Err((
                    PASSWORD_MISSING,
                    format!(
                        "the {store} keystore password cannot be read: {why} (keystores.{store}.\
                         passwordSecretRef); the certificate itself is valid"
                    ),
                )));
            }
        }
    }
    Ok(Ok(Some(passwords)))
}

/// The password under `reference.key`, or what is wrong, worded for a person (no secret value).
fn password_in(
    secret: Option<&Secret>,
    reference: &KeystorePasswordSecretRef,
) -> Result<Vec<u8>, String> {
    let Some(secret) = secret else {
        return Err(format!(
            "Secret {} does not exist in this namespace; create it with the password under key {}",
            reference.name, reference.key
        ));
    };
    match secret.data.as_ref().and_then(|d| d.get(&reference.key)) {
        None => Err(format!(
            "Secret {} has no key {}",
            reference.name, reference.key
        )),
        Some(v) if v.0.is_empty() => Err(format!(
            "key {} of Secret {} is empty",
            reference.key, reference.name
        )),
        Some(v) => Ok(v.0.clone()),
    }
}

/// The outputs to write with a new certificate. Never fails the issuance for them: a password
/// that cannot be read or a keystore that cannot be made leaves the keystores out (logged without
/// secrets), and the steady-state check ([`sync`]) then reports it and writes them once it can.
pub async fn for_issuance(
    ctx: &Ctx,
    cert: &Certificate,
    chain_pem: &str,
    key_pem: &str,
    ca_pem: Option<&str>,
) -> Result<Option<Outputs>, Error> {
    let spec = &cert.spec;
    if !outputs::any_wanted(spec) {
        return Ok(None);
    }
    let passwords = match read_passwords(ctx, cert).await? {
        Ok(p) => p,
        Err((_, message)) => {
            tracing::warn!(cert = %describe(cert), "writing the certificate without keystores: {message}");
            None
        }
    };
    match outputs::additional_outputs(spec, chain_pem, key_pem, ca_pem, passwords.as_ref()) {
        Ok(out) => Ok(Some(out)),
        Err(e) => {
            tracing::warn!(cert = %describe(cert), error = %e, "writing the certificate without keystores");
            Ok(outputs::additional_outputs(spec, chain_pem, key_pem, ca_pem, None).ok())
        }
    }
}

/// Steady state: when the Secret's outputs are missing or stale (the spec asked for them after
/// the certificate was issued, a password changed, `tls.key` was re-encoded), writes them into
/// the Secret, keeping its certificate: a merge patch of those data keys and the fingerprint,
/// guarded by the resourceVersion read. `Some(refusal)` when they cannot be written (a password
/// Secret is missing, a password is unusable): the caller sets `Ready=False` with it.
pub async fn sync(
    ctx: &Ctx,
    cert: &Certificate,
    secret: &Secret,
) -> Result<Option<Refusal>, Error> {
    let spec = &cert.spec;
    if !outputs::any_wanted(spec) {
        return Ok(None);
    }
    let passwords = match read_passwords(ctx, cert).await? {
        Ok(p) => p,
        Err(refusal) => return Ok(Some(refusal)),
    };
    let empty = BTreeMap::new();
    let data = secret.data.as_ref().unwrap_or(&empty);
    let stale = match outputs::check(spec, data, secret.annotations(), passwords.as_ref()) {
        Ok(()) => return Ok(None),
        Err(stale) => stale,
    };
    let (Some(chain), Some(key)) = (data_str(secret, TLS_CRT), data_str(secret, TLS_KEY)) else {
        return Ok(None);
    };
    let made = outputs::additional_outputs(
        spec,
        chain,
        key,
        data_str(secret, CA_CRT),
        passwords.as_ref(),
    );
    let out = match made {
        Ok(out) => out,
        Err(e) => {
            return Ok(Some((
                OUTPUTS_FAILED,
                format!(
                    "the additional outputs of Secret {} cannot be made: {e}; the certificate \
                     itself is valid",
                    spec.secret_name
                ),
            )));
        }
    };
    let encoded: BTreeMap<&String, String> = out
        .data
        .iter()
        .map(|(k, v)| {
            (
                k,
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &v.0),
            )
        })
        .collect();
    let patch = serde_json::json!({
        "metadata": {
            "resourceVersion": secret.resource_version(),
            "annotations": out.annotations,
        },
        "data": encoded,
    });
    let ns = cert.namespace().unwrap_or_default();
    let written = Api::<Secret>::namespaced(ctx.client.clone(), &ns)
        .patch(
            &spec.secret_name,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await;
    match written {
        Ok(_) => {}
        // Changed since it was read (re-encoded, adopted, a new certificate): that change wakes
        // the reconcile again through the Secret watch, which then looks afresh.
        Err(kube::Error::Api(s)) if s.code == 409 => return Ok(None),
        Err(e) => {
            return Err(e).context(|| {
                format!(
                    "writing the additional outputs of Secret {ns}/{}",
                    spec.secret_name
                )
            });
        }
    }
    let keys: Vec<&str> = out.data.keys().map(String::as_str).collect();
    tracing::info!(cert = %describe(cert), keys = ?keys, %stale, "additional outputs rewritten");
    ctx.event(
        cert,
        false,
        "OutputsWritten",
        "WriteOutputs",
        format!(
            "Wrote {} to Secret {} ({stale})",
            keys.join(", "),
            spec.secret_name
        ),
    )
    .await;
    Ok(None)
}
