//! `ferrocert renew CERT`: asks the controller to re-issue a Certificate now.
//!
//! It sets the annotation `ferrocert.dev/renew-requested` to a new unique value (an RFC 3339
//! timestamp with nanoseconds) with a merge patch. The controller re-issues once per value and
//! records the value it handled on the Secret (`ferrocert.dev/renew-handled`), so running the
//! command twice asks for two renewals, and a request survives controller restarts.
//! `--wait` then follows the Certificate until `status.revision` has grown and `Ready` is `True`.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::{CliError, KubeArgs, connect, print, rfc3339_seconds};
use crate::api::conditions::{ISSUING, READY, find, is_true};
use crate::api::{Certificate, ChallengeKind, ChallengeState, OrderState};
use crate::labels::ANN_RENEW_REQUESTED;
use crate::pki::{parse_chain, parse_go_duration};
use crate::secret::{TLS_CRT, data_str};

/// How often `--wait` polls the Certificate.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

#[derive(clap::Args, Debug)]
pub struct RenewArgs {
    /// Name of the Certificate.
    pub certificate: String,
    #[command(flatten)]
    pub kube: KubeArgs,
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// `--wait` and `--timeout`, for the commands that ask for a new certificate.
#[derive(clap::Args, Debug)]
pub struct WaitArgs {
    /// Wait until the Certificate is re-issued (its revision grew) and Ready.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits, as a Go duration (`90s`, `5m`).
    #[arg(long, default_value = "2m")]
    pub timeout: String,
}

pub async fn run(args: RenewArgs) -> Result<(), CliError> {
    // Refuse a bad --timeout before changing anything.
    parse_timeout(&args.wait.timeout)?;
    let (client, namespace) = connect(&args.kube).await?;
    let name = &args.certificate;
    let api = Api::<Certificate>::namespaced(client.clone(), &namespace);
    let cert = api
        .get(name)
        .await
        .map_err(|e| CliError::from_kube("Certificate", &namespace, name, e))?;
    let revision_before = revision(&cert);
    let previous = cert.annotations().get(ANN_RENEW_REQUESTED).cloned();

    let request = request_id(Timestamp::now());
    annotate(
        &api,
        &namespace,
        name,
        json!({ANN_RENEW_REQUESTED: request}),
    )
    .await?;
    print(&requested_message(
        &namespace,
        name,
        &request,
        previous.as_deref(),
        revision_before,
    ))?;
    if !args.wait.wait {
        return Ok(());
    }
    wait_reissued(
        client,
        &namespace,
        name,
        revision_before,
        &args.wait.timeout,
    )
    .await
}

/// Follows a Certificate until its revision has grown past `revision_before` and it is Ready,
/// printing progress lines; an error after `timeout_text`.
pub async fn wait_reissued(
    client: kube::Client,
    namespace: &str,
    name: &str,
    revision_before: i64,
    timeout_text: &str,
) -> Result<(), CliError> {
    let timeout = parse_timeout(timeout_text)?;
    let api = Api::<Certificate>::namespaced(client.clone(), namespace);
    let namespace = namespace.to_string();
    let started = tokio::time::Instant::now();
    let mut last_line = String::new();
    loop {
        let elapsed = started.elapsed();
        match api.get(name).await {
            Ok(cert) => {
                if reissued(&cert, revision_before) {
                    let secret = Api::<Secret>::namespaced(client, &namespace)
                        .get_opt(&cert.spec.secret_name)
                        .await
                        .ok()
                        .flatten();
                    return print(&done_message(&cert, secret.as_ref()));
                }
                let line = progress(&cert);
                if line != last_line {
                    print(&format!("[{:>3}s] {line}\n", elapsed.as_secs()))?;
                    last_line = line;
                }
            }
            Err(e) => {
                let err = CliError::from_kube("Certificate", &namespace, name, e);
                if matches!(err, CliError::NotFound { .. }) {
                    return Err(err);
                }
                // A blip of the API server is not the end of the wait.
                let line = format!("(retrying) {err}");
                if line != last_line {
                    print(&format!("[{:>3}s] {line}\n", elapsed.as_secs()))?;
                    last_line = line;
                }
            }
        }
        if elapsed >= timeout {
            return Err(CliError::Timeout {
                namespace,
                name: name.to_string(),
                timeout: timeout_text.to_string(),
                last: last_line,
            });
        }
        tokio::time::sleep(POLL_INTERVAL.min(timeout.saturating_sub(elapsed))).await;
    }
}

/// Merges `annotations` into a Certificate's annotations (how the CLI asks the controller for
/// something: the controller holds the keys and answers each request once).
pub async fn annotate(
    api: &Api<Certificate>,
    namespace: &str,
    name: &str,
    annotations: serde_json::Value,
) -> Result<(), CliError> {
    let patch = json!({"metadata": {"annotations": annotations}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(
            |e| match CliError::from_kube("Certificate", namespace, name, e) {
                CliError::Kube { source, .. } => CliError::Kube {
                    action: format!("annotating Certificate {namespace}/{name}"),
                    source,
                },
                other => other,
            },
        )?;
    Ok(())
}

/// `--timeout` as a positive duration.
pub fn parse_timeout(text: &str) -> Result<Duration, CliError> {
    let d = parse_go_duration(text).map_err(|e| CliError::InvalidTimeout(e.to_string()))?;
    if d.is_negative() || d.is_zero() {
        return Err(CliError::InvalidTimeout(format!(
            "{text:?} is not a positive duration"
        )));
    }
    Ok(d.unsigned_abs())
}

/// A new, unique request id: the time with nanoseconds, RFC 3339 in UTC.
pub fn request_id(now: Timestamp) -> String {
    format!(
        "{}.{:09}Z",
        now.strftime("%Y-%m-%dT%H:%M:%S"),
        now.subsec_nanosecond()
    )
}

pub fn revision(cert: &Certificate) -> i64 {
    cert.status.as_ref().and_then(|s| s.revision).unwrap_or(0)
}

/// Whether the Certificate was re-issued since `revision_before` and is Ready.
pub fn reissued(cert: &Certificate, revision_before: i64) -> bool {
    let Some(status) = &cert.status else {
        return false;
    };
    status.revision.unwrap_or(0) > revision_before && is_true(&status.conditions, READY)
}

/// What `renew` did, for the user.
pub fn requested_message(
    namespace: &str,
    name: &str,
    request: &str,
    previous: Option<&str>,
    revision_before: i64,
) -> String {
    let mut out = format!(
        "Certificate {namespace}/{name}: renewal requested ({ANN_RENEW_REQUESTED}={request}).\n"
    );
    if let Some(previous) = previous {
        out.push_str(&format!("Replaced the previous request {previous}.\n"));
    }
    out.push_str(&format!(
        "The controller re-issues it once; the current revision is {revision_before}.\n"
    ));
    out
}

/// One line on where the issuance is: revision, conditions, order and challenge states, and the
/// last failure. Printed by `--wait` whenever it changes.
pub fn progress(cert: &Certificate) -> String {
    let Some(status) = &cert.status else {
        return "waiting for the controller (no status yet)".into();
    };
    let mut parts = vec![format!("revision {}", status.revision.unwrap_or(0))];
    for type_ in [READY, ISSUING] {
        if let Some(c) = find(&status.conditions, type_) {
            let mut part = format!("{type_}={}", c.status);
            if !c.reason.is_empty() {
                part.push_str(&format!(" ({})", c.reason));
            }
            if type_ == ISSUING && !c.message.is_empty() {
                part.push_str(&format!(": {}", c.message));
            }
            parts.push(part);
        }
    }
    if let Some(order) = &status.order {
        let mut part = format!(
            "order {}",
            order.state.map_or("created", OrderState::as_str)
        );
        let challenges: Vec<String> = order
            .authorizations
            .iter()
            .map(|a| {
                let mut s = format!(
                    "{} {} {}",
                    a.identifier,
                    a.challenge_type.map_or("challenge", ChallengeKind::as_str),
                    a.state.map_or("pending", ChallengeState::as_str)
                );
                if let Some(e) = &a.error {
                    s.push_str(&format!(" ({e})"));
                }
                s
            })
            .collect();
        if !challenges.is_empty() {
            part.push_str(&format!(" [{}]", challenges.join(", ")));
        }
        if let Some(e) = &order.error {
            part.push_str(&format!(": {e}"));
        }
        parts.push(part);
    }
    if let Some(n) = status.failed_issuance_attempts.filter(|n| *n > 0) {
        parts.push(format!("failed attempts {n}"));
    }
    parts.join("; ")
}

/// The final line of `--wait`: the new revision, serial and validity.
pub fn done_message(cert: &Certificate, secret: Option<&Secret>) -> String {
    let namespace = cert.namespace().unwrap_or_default();
    let status = cert.status.clone().unwrap_or_default();
    let mut out = format!(
        "Certificate {namespace}/{} re-issued: revision {}",
        cert.name_any(),
        status.revision.unwrap_or(0)
    );
    let serial = secret
        .and_then(|s| data_str(s, TLS_CRT))
        .and_then(|pem| parse_chain(pem).ok())
        .map(|chain| chain.leaf.serial_hex);
    if let Some(serial) = serial {
        out.push_str(&format!(", serial {serial}"));
    }
    if let Some(not_after) = &status.not_after {
        out.push_str(&format!(", valid until {}", rfc3339_seconds(not_after.0)));
    }
    out.push_str(", Ready.\n");
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

    use super::*;
    use crate::api::{
        CertificateSpec, CertificateStatus, IssuerRef, OrderAuthorization, OrderStatus,
    };
    use crate::cli::test_support::{time, ts};
    use crate::pki::test_support::{LeafOptions, TestCa};
    use crate::pki::{KeySpec, generate};

    fn cond(type_: &str, status: &str, reason: &str, message: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            last_transition_time: time("2025-01-01T00:00:00Z"),
            observed_generation: None,
        }
    }

    fn cert(status: Option<CertificateStatus>) -> Certificate {
        let mut c = Certificate::new(
            "web",
            CertificateSpec {
                secret_name: "web-tls".into(),
                issuer_ref: Some(IssuerRef {
                    name: "pebble".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        );
        c.metadata.namespace = Some("shop".into());
        c.status = status;
        c
    }

    #[test]
    fn request_ids_are_rfc3339_with_nanoseconds() {
        assert_eq!(
            request_id(ts("2025-01-02T03:04:05.000000007Z")),
            "2025-01-02T03:04:05.000000007Z"
        );
        assert_eq!(
            request_id(ts("2025-01-02T03:04:05Z")),
            "2025-01-02T03:04:05.000000000Z"
        );
        let id = request_id(ts("2025-01-02T03:04:05.123456789Z"));
        assert_eq!(
            id.parse::<Timestamp>().unwrap(),
            ts("2025-01-02T03:04:05.123456789Z")
        );
    }

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_timeout("1m30s").unwrap(), Duration::from_secs(90));
        assert!(matches!(
            parse_timeout("0s"),
            Err(CliError::InvalidTimeout(_))
        ));
        assert!(matches!(
            parse_timeout("-5s"),
            Err(CliError::InvalidTimeout(_))
        ));
        let err = parse_timeout("soon").unwrap_err();
        assert!(err.to_string().starts_with("invalid --timeout: "), "{err}");
    }

    #[test]
    fn reissued_needs_a_higher_revision_and_ready() {
        let ready = |rev, status| {
            cert(Some(CertificateStatus {
                revision: Some(rev),
                conditions: vec![cond("Ready", status, "Ready", "")],
                ..Default::default()
            }))
        };
        assert!(!reissued(&cert(None), 0));
        assert!(!reissued(&ready(1, "True"), 1));
        assert!(!reissued(&ready(2, "False"), 1));
        assert!(reissued(&ready(2, "True"), 1));
        assert!(reissued(&ready(1, "True"), 0));
    }

    #[test]
    fn progress_lines() {
        assert_eq!(
            progress(&cert(None)),
            "waiting for the controller (no status yet)"
        );
        let c = cert(Some(CertificateStatus {
            revision: Some(1),
            conditions: vec![
                cond("Ready", "True", "Ready", "valid until ..."),
                cond(
                    "Issuing",
                    "True",
                    "RenewRequested",
                    "Renewal requested (r1)",
                ),
            ],
            failed_issuance_attempts: Some(1),
            order: Some(OrderStatus {
                url: "https://ca/order/1".into(),
                profile: None,
                replaces: None,
                state: Some(OrderState::Pending),
                authorizations: vec![
                    OrderAuthorization {
                        identifier: "a.example".into(),
                        challenge_type: Some(ChallengeKind::Http01),
                        state: Some(ChallengeState::Presented),
                        ..Default::default()
                    },
                    OrderAuthorization {
                        identifier: "b.example".into(),
                        challenge_type: Some(ChallengeKind::Http01),
                        state: Some(ChallengeState::Invalid),
                        error: Some("connection refused".into()),
                        ..Default::default()
                    },
                ],
                error: None,
            }),
            ..Default::default()
        }));
        assert_eq!(
            progress(&c),
            "revision 1; Ready=True (Ready); Issuing=True (RenewRequested): Renewal requested (r1); \
             order pending [a.example http-01 presented, b.example http-01 invalid (connection refused)]; \
             failed attempts 1"
        );
    }

    #[test]
    fn messages() {
        assert_eq!(
            requested_message("shop", "web", "r2", Some("r1"), 3),
            "Certificate shop/web: renewal requested (ferrocert.dev/renew-requested=r2).\n\
             Replaced the previous request r1.\n\
             The controller re-issues it once; the current revision is 3.\n"
        );
        let key = generate(&KeySpec::default()).unwrap();
        let leaf = TestCa::root("CA").issue(
            &key,
            &LeafOptions {
                serial: Some(&[0xbe, 0xef]),
                ..LeafOptions::dns(&["a.example"])
            },
        );
        let secret = Secret {
            data: Some(BTreeMap::from([(
                TLS_CRT.to_string(),
                ByteString(leaf.into_bytes()),
            )])),
            ..Default::default()
        };
        let c = cert(Some(CertificateStatus {
            revision: Some(4),
            not_after: Some(time("2025-04-01T00:00:00Z")),
            ..Default::default()
        }));
        assert_eq!(
            done_message(&c, Some(&secret)),
            "Certificate shop/web re-issued: revision 4, serial beef, valid until 2025-04-01T00:00:00Z, Ready.\n"
        );
        assert_eq!(
            done_message(&c, None),
            "Certificate shop/web re-issued: revision 4, valid until 2025-04-01T00:00:00Z, Ready.\n"
        );
    }
}
