//! The pure decisions of the local issuers: what the current Secret means.

use super::*;
use crate::api::{CertificateSpec, IssuerKind, IssuerRef, PrivateKeyEncoding};
use crate::pki::test_support::ts;

const NOW: &str = "2025-01-01T00:00:00Z";
const LATER: &str = "2025-01-15T00:00:00Z";

fn certificate(issuer: &str, dns: &[&str]) -> Certificate {
    let mut c = Certificate::new(
        "web",
        CertificateSpec {
            secret_name: "web-tls".into(),
            dns_names: dns.iter().map(|s| s.to_string()).collect(),
            issuer_ref: Some(IssuerRef {
                name: issuer.into(),
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    c.metadata.namespace = Some("shop".into());
    c
}

fn ca_certificate() -> Certificate {
    let mut c = certificate("selfsigned", &[]);
    c.spec.common_name = Some("Shop Root CA".into());
    c.spec.is_ca = Some(true);
    c
}

/// The TLS Secret as `issue` writes it.
fn written(
    cert: &Certificate,
    signed: &sign::Signed,
    key: &PrivateKey,
    ca: Option<&SigningCa>,
) -> Secret {
    let key_pem = secret::encode_key(cert, key).unwrap();
    let mut s = secret::tls_secret(
        cert,
        &TlsContents {
            chain_pem: &signed.chain_pem,
            key_pem: &key_pem,
            ca_pem: Some(&signed.ca_pem),
            issuer_name: cert
                .spec
                .issuer_list()
                .first()
                .map_or("", |r| r.name.as_str()),
            issuer_kind: IssuerKind::Issuer,
            renew_handled: None,
            outputs: None,
        },
    );
    if let Some(ca) = ca {
        s.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(ANN_CA_FINGERPRINT.into(), ca.fingerprint.clone());
    }
    s
}

/// A root CA signed through a selfSigned issuer, loaded as a `ca` issuer would load its Secret.
fn root_ca() -> SigningCa {
    let cert = ca_certificate();
    let key = pki::generate(&KeySpec::default()).unwrap();
    let signed = sign::sign(&cert.spec, &key, Signer::SelfSigned, ts(NOW)).unwrap();
    let key_pem = key.to_pem(PrivateKeyEncoding::PKCS8).unwrap();
    sign::load_ca(Some(&signed.chain_pem), Some(&key_pem), ts(NOW)).unwrap()
}

fn leaf_secret(cert: &Certificate, ca: &SigningCa, annotate: bool) -> Secret {
    let key = pki::generate(&KeySpec::default()).unwrap();
    let signed = sign::sign(&cert.spec, &key, Signer::Ca(ca), ts(NOW)).unwrap();
    written(cert, &signed, &key, annotate.then_some(ca))
}

fn verdict(cert: &Certificate, ca: Option<&SigningCa>, secret: &Secret) -> Verdict {
    evaluate_local(cert, ca, Some(secret), ts(LATER))
}

#[test]
fn a_self_signed_ca_certificate_is_up_to_date_although_its_cn_is_no_host_name() {
    let cert = ca_certificate();
    let key = pki::generate(&KeySpec::default()).unwrap();
    let signed = sign::sign(&cert.spec, &key, Signer::SelfSigned, ts(NOW)).unwrap();
    let s = written(&cert, &signed, &key, None);
    assert!(matches!(
        verdict(&cert, None, &s),
        Verdict::UpToDate { adopt: None, .. }
    ));
}

#[test]
fn a_certificate_from_the_current_ca_is_up_to_date() {
    let ca = root_ca();
    let cert = certificate("shop-ca", &["a.example"]);
    let s = leaf_secret(&cert, &ca, true);
    assert!(matches!(
        verdict(&cert, Some(&ca), &s),
        Verdict::UpToDate { adopt: None, .. }
    ));
}

#[test]
fn a_rotated_ca_reissues() {
    let old = root_ca();
    let new = root_ca();
    let cert = certificate("shop-ca", &["a.example"]);
    let s = leaf_secret(&cert, &old, true);
    match verdict(&cert, Some(&new), &s) {
        Verdict::Issue(IssueReason::IssuerChanged(m)) => {
            assert!(
                m.contains(&old.fingerprint) && m.contains(&new.fingerprint),
                "{m}"
            )
        }
        other => panic!("expected re-issue, got {other:?}"),
    }
}

#[test]
fn without_a_recorded_fingerprint_the_signature_decides() {
    let ca = root_ca();
    let other = root_ca();
    let cert = certificate("shop-ca", &["a.example"]);
    let s = leaf_secret(&cert, &ca, false);
    assert!(matches!(
        verdict(&cert, Some(&ca), &s),
        Verdict::UpToDate { .. }
    ));
    assert!(matches!(
        verdict(&cert, Some(&other), &s),
        Verdict::Issue(IssueReason::IssuerChanged(m)) if m.contains("not signed by")
    ));
}

#[test]
fn a_spec_asking_for_a_ca_reissues_a_leaf() {
    let ca = root_ca();
    let mut cert = certificate("shop-ca", &["a.example"]);
    let s = leaf_secret(&cert, &ca, true);
    cert.spec.is_ca = Some(true);
    assert!(matches!(
        verdict(&cert, Some(&ca), &s),
        Verdict::Issue(IssueReason::SpecChanged(m)) if m.contains("isCA")
    ));
}

#[test]
fn a_selfsigned_issuer_reissues_a_ca_signed_certificate() {
    let ca = root_ca();
    let cert = certificate("shop-ca", &["a.example"]);
    let s = leaf_secret(&cert, &ca, true);
    assert!(matches!(
        verdict(&cert, None, &s),
        Verdict::Issue(IssueReason::IssuerChanged(m)) if m.contains("not self-signed")
    ));
}

#[test]
fn a_missing_secret_and_changed_names_issue() {
    let ca = root_ca();
    let mut cert = certificate("shop-ca", &["a.example"]);
    assert!(matches!(
        evaluate_local(&cert, Some(&ca), None, ts(LATER)),
        Verdict::Issue(IssueReason::DoesNotExist(_))
    ));
    let s = leaf_secret(&cert, &ca, true);
    cert.spec.dns_names.push("b.example".into());
    assert!(matches!(
        verdict(&cert, Some(&ca), &s),
        Verdict::Issue(IssueReason::Mismatch(_))
    ));
}

#[test]
fn the_renewal_time_follows_the_spec() {
    let ca = root_ca();
    let mut cert = certificate("shop-ca", &["a.example"]);
    cert.spec.duration = Some("720h".into());
    cert.spec.renew_before = Some("240h".into());
    let s = leaf_secret(&cert, &ca, true);
    match verdict(&cert, Some(&ca), &s) {
        Verdict::UpToDate {
            renewal, not_after, ..
        } => {
            assert_eq!(not_after, ts("2025-01-31T00:00:00Z"));
            assert_eq!(renewal, ts("2025-01-21T00:00:00Z"));
        }
        other => panic!("expected up to date, got {other:?}"),
    }
}

#[test]
fn rotation_policy_never_keeps_the_key() {
    let ca = root_ca();
    let mut cert = certificate("shop-ca", &["a.example"]);
    cert.spec.private_key = Some(crate::api::PrivateKeySpec {
        rotation_policy: Some(RotationPolicy::Never),
        ..Default::default()
    });
    let s = leaf_secret(&cert, &ca, true);
    let current = pki::parse_pem(data_str(&s, TLS_KEY).unwrap()).unwrap();
    let next = next_key(&cert, KeySpec::default(), Some(&s)).unwrap();
    assert_eq!(next, current);
    cert.spec.private_key = None;
    assert_ne!(
        next_key(&cert, KeySpec::default(), Some(&s)).unwrap(),
        current
    );
}

#[test]
fn a_signed_certificate_leaves_no_order_failure_or_adoption_in_status() {
    let cert = certificate("ca", &["a.example"]);
    let mut status = CertificateStatus {
        order: Some(crate::api::OrderStatus::default()),
        failed_issuance_attempts: Some(2),
        revision: Some(4),
        ..CertificateStatus::default()
    };
    let (nb, na, renew) = (
        ts("2026-01-01T00:00:00Z"),
        ts("2026-04-01T00:00:00Z"),
        ts("2026-03-01T00:00:00Z"),
    );
    mark_signed(&mut status, &cert, nb, na, renew);
    assert!(status.order.is_none() && status.failed_issuance_attempts.is_none());
    assert_eq!(status.revision, Some(5));
    assert_eq!(status.renewal_time, Some(Time(renew)));
    let ready = conditions::find(&status.conditions, READY).expect("Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "Ready")
    );
    assert!(conditions::find(&status.conditions, ISSUING).is_none());
}
