//! Revocation: on demand (`ferrocert revoke`, through an annotation) followed by re-issuance, and
//! on deletion for Certificates with `revokeOnDelete: true` (a finalizer that always goes away:
//! after success, or after a bounded number of failed attempts with an Event saying so).

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;

use super::issuer_ref::{ResolvedIssuer, account_for, resolve_issuer_ref};
use super::{Ctx, apply_status, describe, set_finalizer};
use crate::acme::lifecycle::{self, RevokeReason};
use crate::acme::problem_text;
use crate::api::{Certificate, CertificateStatus, IssuerRef, RevocationStatus};
use crate::error::{Error, KubeContext};
use crate::labels;
use crate::pki;
use crate::secret::{self, TLS_CRT, TLS_KEY, data_str};

/// Held by Certificates with `revokeOnDelete: true`, so deletion revokes first.
pub const REVOKE_FINALIZER: &str = "ferrocert.dev/revoke-on-delete";

/// Attempts at revoking on deletion before the finalizer is dropped anyway: a CA that stays
/// unreachable must not keep a Certificate (and its namespace) from being deleted.
pub const MAX_DELETE_ATTEMPTS: i32 = 5;

/// Longest wait between two revocation attempts.
const RETRY_CAP: Duration = Duration::from_secs(300);

/// The certificate currently in the Secret, if it was obtained through `issuer` (only the account
/// that ordered it can revoke it by our means).
#[derive(Debug)]
pub struct Revocable {
    pub leaf_der: Vec<u8>,
    pub serial_hex: String,
}

/// Finds the revocable certificate in `secret`; `Err` says why there is none.
///
/// The Secret's annotations only say which issuer the certificate is meant to come from, and
/// anyone who can write a Secret in the namespace can set them: a tenant could copy another
/// tenant's public certificate into a Secret of its own, name a shared ClusterIssuer, and have
/// the controller (which holds that account's key) revoke it. So revocation needs proof: the
/// Secret's `tls.key` must be the private key of the certificate in `tls.crt`.
pub fn revocable(
    secret: Option<&Secret>,
    issuer_name: &str,
    issuer_kind: crate::api::IssuerKind,
) -> Result<Revocable, String> {
    let secret = secret.ok_or("the Secret does not exist")?;
    let pem = data_str(secret, TLS_CRT).ok_or("the Secret holds no tls.crt")?;
    let chain = pki::parse_chain(pem).map_err(|e| format!("tls.crt does not parse: {e}"))?;
    let annotations = secret.annotations();
    let same_issuer = annotations.get(labels::ANN_ISSUER_NAME).map(String::as_str)
        == Some(issuer_name)
        && annotations.get(labels::ANN_ISSUER_KIND).map(String::as_str)
            == Some(secret::kind_str(issuer_kind));
    if !same_issuer {
        return Err(format!(
            "the certificate in the Secret was not issued through {} {issuer_name}",
            secret::kind_str(issuer_kind)
        ));
    }
    let key_pem = data_str(secret, TLS_KEY).ok_or(
        "the Secret holds no tls.key, so nothing proves the certificate in it is this Certificate's",
    )?;
    let key = pki::parse_pem(key_pem).map_err(|e| format!("tls.key does not parse: {e}"))?;
    if !pki::key_matches_leaf(&key, &chain.leaf) {
        return Err(
            "tls.key is not the key of the certificate in tls.crt, so nothing proves \
                    the certificate is this Certificate's: it is not revoked"
                .into(),
        );
    }
    let leaf_der = chain
        .certs_der
        .into_iter()
        .next()
        .ok_or("tls.crt holds no certificate")?;
    Ok(Revocable {
        leaf_der,
        serial_hex: chain.leaf.serial_hex,
    })
}

/// Adds or removes [`REVOKE_FINALIZER`] to match `spec.revokeOnDelete`.
pub async fn sync_finalizer(
    ctx: &Ctx,
    api: &Api<Certificate>,
    cert: &Certificate,
) -> Result<Certificate, Error> {
    let wanted = cert.spec.revoke_on_delete == Some(true);
    set_finalizer(ctx, api, cert, REVOKE_FINALIZER, wanted).await
}

/// The revoke request on a Certificate not yet answered: (request id, reason).
pub fn pending_request(cert: &Certificate) -> Option<(String, RevokeReason)> {
    let id = cert.annotations().get(labels::ANN_REVOKE_REQUESTED)?;
    let handled = cert
        .status
        .as_ref()
        .and_then(|s| s.revocation.as_ref())
        .and_then(|r| r.request.as_ref());
    if handled == Some(id) {
        return None;
    }
    let reason = cert
        .annotations()
        .get(labels::ANN_REVOKE_REASON)
        .and_then(|r| RevokeReason::parse(r))
        .unwrap_or_default();
    Some((id.clone(), reason))
}

/// Whether status says the certificate with this serial has been revoked.
pub fn is_revoked(status: &CertificateStatus, serial_hex: &str) -> bool {
    status
        .revocation
        .as_ref()
        .is_some_and(|r| r.serial == serial_hex && r.revoked_at.is_some())
}

/// Whether the next key must be new whatever `rotationPolicy` says: the current one was revoked
/// as compromised.
pub fn key_compromised(status: &CertificateStatus) -> bool {
    status
        .revocation
        .as_ref()
        .is_some_and(|r| r.revoked_at.is_some() && r.reason == RevokeReason::KeyCompromise.as_str())
}

/// Answers a revoke request: revoke the current certificate, record it; the next reconcile sees
/// it revoked and issues a new one. A failure is retried with backoff; the request stays open.
pub async fn answer_request(
    ctx: &Ctx,
    api: &Api<Certificate>,
    cert: &Certificate,
    mut status: CertificateStatus,
    issuer: &ResolvedIssuer,
    secret: Option<&Secret>,
    (request, reason): (String, RevokeReason),
) -> Result<Action, Error> {
    let target = match revocable(secret, &issuer.ident.name, issuer.kind) {
        Ok(t) => t,
        Err(why) => {
            // Nothing of ours to revoke: answer the request so it is not retried forever. Status
            // first: a reconcile on a stale view fails there (409) instead of announcing twice.
            let message = format!("Revocation requested ({request}) but nothing to revoke: {why}");
            status.revocation = Some(RevocationStatus {
                serial: String::new(),
                reason: reason.as_str().into(),
                request: Some(request),
                error: Some(why),
                ..RevocationStatus::default()
            });
            apply_status(ctx, api, cert, &status).await?;
            ctx.event(cert, true, "RevocationSkipped", "Revoke", message)
                .await;
            return Ok(Action::requeue(Duration::from_secs(1)));
        }
    };
    if let Some(wait) = backoff_remaining(ctx, &status, &target.serial_hex, Timestamp::now()) {
        return Ok(Action::requeue(wait));
    }
    match try_revoke(ctx, issuer, &target, reason).await {
        Ok(()) => {
            status.revocation = Some(RevocationStatus {
                serial: target.serial_hex.clone(),
                reason: reason.as_str().into(),
                revoked_at: Some(Time(Timestamp::now())),
                request: Some(request.clone()),
                failed_attempts: None,
                last_failure_time: None,
                error: None,
            });
            ctx.event(
                cert,
                false,
                "Revoked",
                "Revoke",
                format!(
                    "Certificate serial {} revoked at the CA (reason {}, request {request}); issuing a new one",
                    target.serial_hex,
                    reason.as_str()
                ),
            )
            .await;
            apply_status(ctx, api, cert, &status).await?;
            Ok(Action::requeue(Duration::from_millis(200)))
        }
        Err(message) => {
            let attempts = super::next_count(Some(failed_attempts(&status, &target.serial_hex)));
            let attempt = Attempt {
                target: &target,
                reason,
                number: attempts,
                message: &message,
            };
            retry_later(ctx, api, cert, status, &attempt, "RevokeAttempt", None).await
        }
    }
}

/// The issuer of the Certificate's list that the Secret's annotations say issued its certificate.
fn issuer_of_secret<'a>(cert: &'a Certificate, secret: Option<&Secret>) -> Option<&'a IssuerRef> {
    let annotations = secret?.annotations();
    let name = annotations.get(labels::ANN_ISSUER_NAME)?;
    let kind = annotations.get(labels::ANN_ISSUER_KIND)?;
    cert.spec
        .issuer_list()
        .iter()
        .find(|r| &r.name == name && secret::kind_str(r.kind.unwrap_or_default()) == kind)
}

/// Deletion of a Certificate holding [`REVOKE_FINALIZER`]: revoke, then let it go. After
/// [`MAX_DELETE_ATTEMPTS`] failures the finalizer is removed anyway, with a Warning Event.
pub async fn on_delete(
    ctx: &Ctx,
    api: &Api<Certificate>,
    cert: &Certificate,
) -> Result<Action, Error> {
    let mut status = cert.status.clone().unwrap_or_default();
    let ns = cert.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let secret = secrets
        .get_opt(&cert.spec.secret_name)
        .await
        .context(|| format!("reading Secret {ns}/{}", cert.spec.secret_name))?;
    // The issuer of the list that issued the certificate in the Secret (with `issuerRefs`, the
    // one in use may be another), else the one in use.
    let Some(issuer_ref) = issuer_of_secret(cert, secret.as_ref()).or(cert.current_issuer_ref())
    else {
        return release(ctx, api, cert).await;
    };
    let kind = issuer_ref.kind.unwrap_or_default();
    let target = match revocable(secret.as_ref(), &issuer_ref.name, kind) {
        Ok(t) if !is_revoked(&status, &t.serial_hex) => t,
        Ok(_) => return release(ctx, api, cert).await,
        Err(why) => {
            ctx.event(
                cert,
                false,
                "RevocationSkipped",
                "RevokeOnDelete",
                format!("Nothing to revoke on deletion: {why}"),
            )
            .await;
            return release(ctx, api, cert).await;
        }
    };
    if let Some(wait) = backoff_remaining(ctx, &status, &target.serial_hex, Timestamp::now()) {
        return Ok(Action::requeue(wait));
    }
    let reason = RevokeReason::CessationOfOperation;
    let outcome = match resolve_issuer_ref(ctx, cert, issuer_ref).await? {
        Ok(issuer) => try_revoke(ctx, &issuer, &target, reason).await,
        Err(("IssuerNotACME", why)) => {
            // selfSigned and ca issuers keep no revocation list: nothing to wait for.
            ctx.event(
                cert,
                false,
                "RevocationSkipped",
                "RevokeOnDelete",
                format!("Nothing to revoke on deletion: {why}"),
            )
            .await;
            return release(ctx, api, cert).await;
        }
        Err((_, message)) => Err(message),
    };
    match outcome {
        Ok(()) => {
            status.revocation = Some(RevocationStatus {
                serial: target.serial_hex.clone(),
                reason: reason.as_str().into(),
                revoked_at: Some(Time(Timestamp::now())),
                ..RevocationStatus::default()
            });
            ctx.event(
                cert,
                false,
                "Revoked",
                "RevokeOnDelete",
                format!(
                    "Certificate serial {} revoked at the CA because the Certificate is being deleted (revokeOnDelete)",
                    target.serial_hex
                ),
            )
            .await;
            let updated = apply_status(ctx, api, cert, &status).await?;
            release(ctx, api, &updated).await
        }
        Err(message) => {
            let attempts = super::next_count(Some(failed_attempts(&status, &target.serial_hex)));
            if attempts >= MAX_DELETE_ATTEMPTS {
                ctx.event(
                    cert,
                    true,
                    "RevocationAbandoned",
                    "RevokeOnDelete",
                    format!(
                        "Gave up revoking serial {} after {attempts} attempts; the Certificate is deleted without revocation. Last error: {message}",
                        target.serial_hex
                    ),
                )
                .await;
                return release(ctx, api, cert).await;
            }
            let attempt = Attempt {
                target: &target,
                reason,
                number: attempts,
                message: &message,
            };
            retry_later(
                ctx,
                api,
                cert,
                status,
                &attempt,
                "RevokeOnDeleteAttempt",
                Some(MAX_DELETE_ATTEMPTS),
            )
            .await
        }
    }
}

/// A failed revocation attempt.
struct Attempt<'a> {
    target: &'a Revocable,
    reason: RevokeReason,
    number: i32,
    message: &'a str,
}

/// Records a failed attempt in status and an Event, and schedules the next one.
async fn retry_later(
    ctx: &Ctx,
    api: &Api<Certificate>,
    cert: &Certificate,
    mut status: CertificateStatus,
    attempt: &Attempt<'_>,
    action: &str,
    limit: Option<i32>,
) -> Result<Action, Error> {
    let Attempt {
        target,
        reason,
        number,
        message,
    } = attempt;
    status.revocation = Some(failed_attempt(
        &target.serial_hex,
        *reason,
        *number,
        message,
    ));
    let delay = retry_delay(ctx, &target.serial_hex, *number);
    let of_limit = limit.map(|l| format!(" of {l}")).unwrap_or_default();
    ctx.event(
        cert,
        true,
        "RevocationFailed",
        &format!("{action}{number}"),
        format!(
            "Revoking serial {} failed (attempt {number}{of_limit}, next in {}s): {message}",
            target.serial_hex,
            delay.as_secs()
        ),
    )
    .await;
    apply_status(ctx, api, cert, &status).await?;
    Ok(Action::requeue(delay))
}

async fn release(ctx: &Ctx, api: &Api<Certificate>, cert: &Certificate) -> Result<Action, Error> {
    set_finalizer(ctx, api, cert, REVOKE_FINALIZER, false).await?;
    tracing::info!(cert = %describe(cert), "revoke-on-delete finished");
    Ok(Action::await_change())
}

/// The status of a revocation whose `attempts`-th try just failed with `message`.
fn failed_attempt(
    serial_hex: &str,
    reason: RevokeReason,
    attempts: i32,
    message: &str,
) -> RevocationStatus {
    RevocationStatus {
        serial: serial_hex.to_string(),
        reason: reason.as_str().into(),
        failed_attempts: Some(attempts),
        last_failure_time: Some(Time(Timestamp::now())),
        error: Some(message.to_string()),
        ..RevocationStatus::default()
    }
}

fn failed_attempts(status: &CertificateStatus, serial_hex: &str) -> i32 {
    status
        .revocation
        .as_ref()
        .filter(|r| r.serial == serial_hex && r.revoked_at.is_none())
        .and_then(|r| r.failed_attempts)
        .unwrap_or(0)
}

/// The rest of the wait after the last failed attempt on this serial, if any. Status writes wake
/// the reconcile at once, so the wait is measured from the recorded failure time.
fn backoff_remaining(
    ctx: &Ctx,
    status: &CertificateStatus,
    serial_hex: &str,
    now: Timestamp,
) -> Option<Duration> {
    let attempts = failed_attempts(status, serial_hex);
    let last = status.revocation.as_ref()?.last_failure_time.as_ref()?.0;
    if attempts == 0 {
        return None;
    }
    let due = last
        .checked_add(retry_delay(ctx, serial_hex, attempts))
        .ok()?;
    (due > now).then(|| due.duration_since(now).unsigned_abs())
}

fn retry_delay(ctx: &Ctx, serial_hex: &str, attempts: i32) -> Duration {
    crate::retry::backoff_for(
        serial_hex,
        u32::try_from(attempts).unwrap_or(1),
        ctx.settings.backoff_base.min(RETRY_CAP),
        RETRY_CAP,
    )
}

/// One revocation request to the CA; the error is text for status and Events.
async fn try_revoke(
    ctx: &Ctx,
    issuer: &ResolvedIssuer,
    target: &Revocable,
    reason: RevokeReason,
) -> Result<(), String> {
    let account = account_for(ctx, issuer).await.map_err(|e| e.to_string())?;
    lifecycle::revoke(&account, &target.leaf_der, reason)
        .await
        .map_err(|e| {
            e.problem()
                .map(problem_text)
                .unwrap_or_else(|| e.to_string())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::IssuerKind;
    use crate::pki::test_support;
    use std::collections::BTreeMap;

    fn tls_secret(issuer: &str, kind: &str) -> Secret {
        let key = pki::generate(&pki::KeySpec::from_spec(None).unwrap()).unwrap();
        tls_secret_with_key(issuer, kind, &key, &key)
    }

    #[test]
    fn the_issuer_of_the_secret_is_found_in_issuer_refs() {
        let r = |name: &str, kind| IssuerRef {
            name: name.into(),
            kind: Some(kind),
            ..Default::default()
        };
        let cert = Certificate::new(
            "web",
            crate::api::CertificateSpec {
                issuer_refs: vec![
                    r("primary", IssuerKind::Issuer),
                    r("backup", IssuerKind::ClusterIssuer),
                ],
                ..Default::default()
            },
        );
        let s = tls_secret("backup", "ClusterIssuer");
        assert_eq!(
            issuer_of_secret(&cert, Some(&s)).map(|r| r.name.as_str()),
            Some("backup")
        );
        let other = tls_secret("backup", "Issuer");
        assert_eq!(issuer_of_secret(&cert, Some(&other)), None);
        assert_eq!(issuer_of_secret(&cert, None), None);
    }

    /// A TLS Secret whose certificate is for `cert_key` and whose tls.key is `stored_key`.
    fn tls_secret_with_key(
        issuer: &str,
        kind: &str,
        cert_key: &pki::PrivateKey,
        stored_key: &pki::PrivateKey,
    ) -> Secret {
        let ca = test_support::TestCa::root("Test Root");
        let chain_pem = ca.issue(cert_key, &test_support::LeafOptions::dns(&["a.test"]));
        let key_pem = stored_key
            .to_pem(crate::api::PrivateKeyEncoding::PKCS8)
            .unwrap();
        let mut s = Secret::default();
        s.metadata.annotations = Some(BTreeMap::from([
            (labels::ANN_ISSUER_NAME.to_string(), issuer.to_string()),
            (labels::ANN_ISSUER_KIND.to_string(), kind.to_string()),
        ]));
        s.data = Some(BTreeMap::from([
            (
                TLS_CRT.to_string(),
                k8s_openapi::ByteString(chain_pem.into_bytes()),
            ),
            (
                TLS_KEY.to_string(),
                k8s_openapi::ByteString(key_pem.into_bytes()),
            ),
        ]));
        s
    }

    #[test]
    fn a_certificate_without_its_key_is_never_revocable() {
        let theirs = pki::generate(&pki::KeySpec::from_spec(None).unwrap()).unwrap();
        let mine = pki::generate(&pki::KeySpec::from_spec(None).unwrap()).unwrap();
        // Another tenant's certificate copied next to a key of one's own.
        let copied = tls_secret_with_key("shared", "ClusterIssuer", &theirs, &mine);
        let why = revocable(Some(&copied), "shared", IssuerKind::ClusterIssuer).unwrap_err();
        assert!(why.contains("tls.key is not the key"), "{why}");
        // ... or with no key at all.
        let mut keyless = copied.clone();
        keyless.data.as_mut().unwrap().remove(TLS_KEY);
        let why = revocable(Some(&keyless), "shared", IssuerKind::ClusterIssuer).unwrap_err();
        assert!(why.contains("holds no tls.key"), "{why}");
        let owned = tls_secret_with_key("shared", "ClusterIssuer", &theirs, &theirs);
        assert!(revocable(Some(&owned), "shared", IssuerKind::ClusterIssuer).is_ok());
    }

    #[test]
    fn revocable_needs_a_certificate_from_the_same_issuer() {
        let s = tls_secret("le", "Issuer");
        let t = revocable(Some(&s), "le", IssuerKind::Issuer).unwrap();
        assert!(!t.serial_hex.is_empty());
        assert!(
            revocable(Some(&s), "other", IssuerKind::Issuer)
                .unwrap_err()
                .contains("not issued through Issuer other")
        );
        assert!(revocable(Some(&s), "le", IssuerKind::ClusterIssuer).is_err());
        assert_eq!(
            revocable(None, "le", IssuerKind::Issuer).unwrap_err(),
            "the Secret does not exist"
        );
    }

    #[test]
    fn revoked_and_compromised_are_read_from_status() {
        let mut status = CertificateStatus::default();
        assert!(!is_revoked(&status, "ab"));
        assert!(!key_compromised(&status));
        status.revocation = Some(RevocationStatus {
            serial: "ab".into(),
            reason: "keyCompromise".into(),
            revoked_at: None,
            failed_attempts: Some(2),
            ..RevocationStatus::default()
        });
        // Not yet accepted by the CA.
        assert!(!is_revoked(&status, "ab"));
        assert!(!key_compromised(&status));
        assert_eq!(failed_attempts(&status, "ab"), 2);
        assert_eq!(failed_attempts(&status, "cd"), 0);
        status.revocation.as_mut().unwrap().revoked_at = Some(Time(Timestamp::now()));
        assert!(is_revoked(&status, "ab"));
        assert!(!is_revoked(&status, "cd"));
        assert!(key_compromised(&status));
    }

    #[test]
    fn pending_request_is_answered_once() {
        let mut cert = Certificate::new("c", Default::default());
        assert!(pending_request(&cert).is_none());
        cert.metadata.annotations = Some(BTreeMap::from([
            (labels::ANN_REVOKE_REQUESTED.to_string(), "r1".to_string()),
            (
                labels::ANN_REVOKE_REASON.to_string(),
                "keyCompromise".to_string(),
            ),
        ]));
        assert_eq!(
            pending_request(&cert),
            Some(("r1".to_string(), RevokeReason::KeyCompromise))
        );
        cert.status = Some(CertificateStatus {
            revocation: Some(RevocationStatus {
                request: Some("r1".into()),
                ..RevocationStatus::default()
            }),
            ..CertificateStatus::default()
        });
        assert!(pending_request(&cert).is_none());
    }
}
