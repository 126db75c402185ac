//! Does a Certificate's Secret still satisfy its spec? The pure decision every Certificate
//! reconcile starts from, ACME or local issuer alike: up to date (and when to renew), to be
//! adopted (a valid certificate another issuer left, such as cert-manager's), or to be issued
//! again, and why.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;

use super::revocation;
use crate::api::Certificate;
use crate::labels;
use crate::pki::{self, Mismatch};
use crate::secret::{self, TLS_CRT, TLS_KEY, data_str};

/// Why a Certificate needs a new certificate now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IssueReason {
    DoesNotExist(String),
    Mismatch(Mismatch),
    IssuerChanged(String),
    Renewal(Timestamp),
    /// The instant picked inside the CA's ARI window has come (or the window is in the past).
    RenewalWindow(Timestamp),
    RenewRequested(String),
    /// The current certificate was revoked (serial).
    Revoked(String),
    /// The certificate no longer says what the spec asks of a local issuer (isCA, subject,
    /// usages).
    SpecChanged(String),
}

impl IssueReason {
    pub fn reason(&self) -> &'static str {
        match self {
            IssueReason::DoesNotExist(_) => "DoesNotExist",
            IssueReason::Mismatch(m) => m.reason(),
            IssueReason::IssuerChanged(_) => "IncorrectIssuer",
            IssueReason::Renewal(_) => "Renewing",
            IssueReason::RenewRequested(_) => "ManuallyTriggered",
            IssueReason::RenewalWindow(_) => "RenewalWindow",
            IssueReason::Revoked(_) => "Revoked",
            IssueReason::SpecChanged(_) => "SecretMismatch",
        }
    }

    pub fn message(&self) -> String {
        match self {
            IssueReason::DoesNotExist(m) => m.clone(),
            IssueReason::Mismatch(m) => m.to_string(),
            IssueReason::IssuerChanged(m) => m.clone(),
            IssueReason::Renewal(at) => format!("renewal time {at} has passed"),
            IssueReason::RenewRequested(id) => format!("re-issuance requested ({id})"),
            IssueReason::RenewalWindow(at) => {
                format!("the renewal time {at} picked in the CA's renewal window (ARI) has come")
            }
            IssueReason::Revoked(serial) => {
                format!("the certificate (serial {serial}) was revoked")
            }
            IssueReason::SpecChanged(m) => m.clone(),
        }
    }
}

/// What the current Secret means for the Certificate.
#[derive(Debug)]
pub enum Verdict {
    /// The Secret satisfies the spec; its renewal time (from the spec alone) may have passed.
    UpToDate {
        not_before: Timestamp,
        not_after: Timestamp,
        /// The renewal time from the spec alone (ARI may move it).
        renewal: Timestamp,
        key_encoding_only: Option<Mismatch>,
        /// The leaf's DER, for ARI.
        leaf_der: Vec<u8>,
        /// Set when the certificate is not ferrocert's and is to be adopted now.
        adopt: Option<Adoption>,
    },
    Issue(IssueReason),
}

/// A certificate ferrocert did not issue, found valid for the spec: kept and renewed on schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Adoption {
    pub serial_hex: String,
    pub issuer_cn: Option<String>,
    /// The issuer the Secret's own annotations name (cert-manager's), as `Kind name`.
    pub previous_issuer_ref: Option<String>,
}

/// The issuer cert-manager's annotations on a Secret name, as `Kind name`.
fn cert_manager_issuer(annotations: &std::collections::BTreeMap<String, String>) -> Option<String> {
    let name = annotations.get("cert-manager.io/issuer-name")?;
    let kind = annotations
        .get("cert-manager.io/issuer-kind")
        .map_or("Issuer", String::as_str);
    Some(format!("{kind} {name} (cert-manager)"))
}

/// [`evaluate`] for a Certificate of an ACME issuer: a certificate ferrocert did not issue is
/// adopted only if that issuer could have issued it. A self-signed one (a chart's placeholder,
/// Helm's `genSelfSignedCert`, a `kubectl create secret tls` of a test certificate) never came
/// from an ACME CA: it is replaced, saying why, instead of being served until it expires. Pure.
pub fn evaluate_acme(cert: &Certificate, secret: Option<&Secret>, now: Timestamp) -> Verdict {
    let verdict = evaluate(cert, secret, now);
    match &verdict {
        Verdict::UpToDate {
            adopt: Some(_),
            leaf_der,
            ..
        } if crate::pki::sign::is_self_issued(leaf_der) => {
            Verdict::Issue(IssueReason::IssuerChanged(format!(
                "the certificate in Secret {} is self-signed, which an ACME CA never issues \
                 (a placeholder?): it is replaced, not adopted",
                cert.spec.secret_name
            )))
        }
        _ => verdict,
    }
}

/// Decides, from the Secret alone, whether to issue. Pure.
pub fn evaluate(cert: &Certificate, secret: Option<&Secret>, now: Timestamp) -> Verdict {
    let spec = &cert.spec;
    let Some(secret) = secret else {
        return Verdict::Issue(IssueReason::DoesNotExist(format!(
            "Secret {} does not exist",
            spec.secret_name
        )));
    };
    let (Some(crt), Some(key)) = (data_str(secret, TLS_CRT), data_str(secret, TLS_KEY)) else {
        return Verdict::Issue(IssueReason::DoesNotExist(format!(
            "Secret {} lacks {TLS_CRT} or {TLS_KEY}",
            spec.secret_name
        )));
    };
    let chain = match pki::parse_chain(crt) {
        Ok(c) => c,
        Err(e) => {
            return Verdict::Issue(IssueReason::DoesNotExist(format!(
                "{TLS_CRT} in Secret {} is not a certificate: {e}",
                spec.secret_name
            )));
        }
    };
    let key = match pki::parse_pem(key) {
        Ok(k) => k,
        Err(e) => {
            return Verdict::Issue(IssueReason::DoesNotExist(format!(
                "{TLS_KEY} in Secret {} is not a private key: {e}",
                spec.secret_name
            )));
        }
    };
    let mut key_encoding_only = None;
    if let Err(mismatch) = pki::secret_satisfies(spec, &chain.leaf, &key, now) {
        if mismatch.requires_reissue() {
            return Verdict::Issue(IssueReason::Mismatch(mismatch));
        }
        key_encoding_only = Some(mismatch);
    }
    let annotations = secret.annotations();
    let issuer_name = annotations.get(labels::ANN_ISSUER_NAME).map(String::as_str);
    let issuer_kind_ann = annotations.get(labels::ANN_ISSUER_KIND).map(String::as_str);
    // Issued by any issuer of the list: failing over to the second one is no reason to re-issue.
    let issued_here = spec.issuer_list().iter().any(|r| {
        issuer_name == Some(r.name.as_str())
            && issuer_kind_ann == Some(secret::kind_str(r.kind.unwrap_or_default()))
    });
    let adopted_already =
        annotations.get(labels::ANN_ADOPTED_SERIAL) == Some(&chain.leaf.serial_hex);
    let mut adopt = None;
    if !issued_here && !adopted_already {
        if issuer_name.is_some() || issuer_kind_ann.is_some() {
            // ferrocert issued it through another of its issuers: the spec was changed to switch.
            let named = spec
                .issuer_list()
                .iter()
                .map(|r| {
                    format!(
                        "{} {}",
                        secret::kind_str(r.kind.unwrap_or_default()),
                        r.name
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            return Verdict::Issue(IssueReason::IssuerChanged(format!(
                "the certificate was issued by {} {}, the spec names {named}",
                issuer_kind_ann.unwrap_or("an unknown issuer"),
                issuer_name.unwrap_or(""),
            )));
        }
        if spec.reissue_on_issuer_change == Some(true) {
            return Verdict::Issue(IssueReason::IssuerChanged(format!(
                "the certificate in Secret {} was not issued by ferrocert and \
                 reissueOnIssuerChange is set",
                spec.secret_name
            )));
        }
        if let Err(why) = pki::chain_links(&chain) {
            return Verdict::Issue(IssueReason::IssuerChanged(format!(
                "the certificate in Secret {} was not issued by ferrocert and cannot be adopted: \
                 {why}",
                spec.secret_name
            )));
        }
        adopt = Some(Adoption {
            serial_hex: chain.leaf.serial_hex.clone(),
            issuer_cn: chain.leaf.issuer_cn.clone(),
            previous_issuer_ref: cert_manager_issuer(annotations),
        });
    }
    if let Some(id) = cert.annotations().get(labels::ANN_RENEW_REQUESTED)
        && annotations.get(labels::ANN_RENEW_HANDLED) != Some(id)
    {
        return Verdict::Issue(IssueReason::RenewRequested(id.clone()));
    }
    if let Some(status) = cert.status.as_ref()
        && revocation::is_revoked(status, &chain.leaf.serial_hex)
    {
        return Verdict::Issue(IssueReason::Revoked(chain.leaf.serial_hex));
    }
    // Whether the renewal time has come is decided by the caller: the CA's ARI window may move it.
    let renewal = pki::renewal_time_for_spec(spec, chain.leaf.not_before, chain.leaf.not_after)
        .unwrap_or(chain.leaf.not_after);
    Verdict::UpToDate {
        not_before: chain.leaf.not_before,
        not_after: chain.leaf.not_after,
        renewal,
        key_encoding_only,
        leaf_der: chain.certs_der.into_iter().next().unwrap_or_default(),
        adopt,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::api::{CertificateSpec, IssuerRef};
    use crate::pki::KeySpec;
    use crate::pki::test_support::{LeafOptions, TestCa, ts};
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    /// A Certificate `shop/web` for `a.example` from the Issuer `pebble` (generation 3).
    pub(in crate::controller) fn certificate() -> Certificate {
        let mut c = Certificate::new(
            "web",
            CertificateSpec {
                secret_name: "web-tls".into(),
                dns_names: vec!["a.example".into()],
                issuer_ref: Some(IssuerRef {
                    name: "pebble".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        );
        c.metadata.namespace = Some("shop".into());
        c.metadata.generation = Some(3);
        c
    }
    /// A TLS Secret holding a certificate for `a.example` from a test CA (chain `chain`:
    /// "ok" leaf + intermediate, "broken" leaf + an unrelated CA), with `annotations`.
    fn secret(chain: &str, annotations: &[(&str, &str)]) -> Secret {
        let root = TestCa::root("Other Root");
        let inter = root.intermediate("Other Intermediate");
        let key = crate::pki::generate(&KeySpec::default()).unwrap();
        let leaf = inter.issue(&key, &LeafOptions::dns(&["a.example"]));
        let crt = match chain {
            "ok" => format!("{leaf}{}", inter.pem),
            _ => format!("{leaf}{}", TestCa::root("Unrelated").pem),
        };
        let key_pem = key.to_pem(crate::api::PrivateKeyEncoding::PKCS1).unwrap();
        Secret {
            metadata: kube::api::ObjectMeta {
                name: Some("web-tls".into()),
                annotations: Some(
                    annotations
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect::<BTreeMap<_, _>>(),
                ),
                ..Default::default()
            },
            type_: Some("kubernetes.io/tls".into()),
            data: Some(BTreeMap::from([
                (TLS_CRT.to_string(), ByteString(crt.into_bytes())),
                (TLS_KEY.to_string(), ByteString(key_pem.into_bytes())),
            ])),
            ..Default::default()
        }
    }

    const CM: &[(&str, &str)] = &[
        ("cert-manager.io/certificate-name", "web"),
        ("cert-manager.io/issuer-name", "letsencrypt"),
        ("cert-manager.io/issuer-kind", "ClusterIssuer"),
    ];

    fn verdict(cert: &Certificate, secret: &Secret) -> Verdict {
        evaluate(cert, Some(secret), ts("2025-02-01T00:00:00Z"))
    }

    #[test]
    fn a_self_signed_placeholder_is_replaced_not_adopted_through_an_acme_issuer() {
        use crate::pki::sign::{Signer, sign};
        let key = crate::pki::generate(&KeySpec::default()).unwrap();
        let placeholder_spec = crate::api::CertificateSpec {
            secret_name: "web-tls".into(),
            dns_names: vec!["a.example".into()],
            ..Default::default()
        };
        let signed = sign(
            &placeholder_spec,
            &key,
            Signer::SelfSigned,
            ts("2025-01-15T00:00:00Z"),
        )
        .unwrap();
        let mut s = secret("ok", &[]);
        let key_pem = key.to_pem(crate::api::PrivateKeyEncoding::PKCS1).unwrap();
        s.data = Some(BTreeMap::from([
            (
                TLS_CRT.to_string(),
                ByteString(signed.chain_pem.into_bytes()),
            ),
            (TLS_KEY.to_string(), ByteString(key_pem.into_bytes())),
        ]));
        let now = ts("2025-02-01T00:00:00Z");
        // The plain verdict would adopt it (its key matches, its names are right).
        assert!(matches!(
            evaluate(&certificate(), Some(&s), now),
            Verdict::UpToDate { adopt: Some(_), .. }
        ));
        match evaluate_acme(&certificate(), Some(&s), now) {
            Verdict::Issue(IssueReason::IssuerChanged(m)) => {
                assert!(m.contains("self-signed"), "{m}")
            }
            other => panic!("expected re-issuance, got {other:?}"),
        }
        // A CA-signed certificate from elsewhere is still adopted.
        assert!(matches!(
            evaluate_acme(&certificate(), Some(&secret("ok", CM)), now),
            Verdict::UpToDate { adopt: Some(_), .. }
        ));
    }

    #[test]
    fn a_valid_certificate_from_cert_manager_is_adopted() {
        let s = secret("ok", CM);
        match verdict(&certificate(), &s) {
            Verdict::UpToDate { adopt: Some(a), .. } => {
                assert_eq!(a.issuer_cn.as_deref(), Some("Other Intermediate"));
                assert_eq!(
                    a.previous_issuer_ref.as_deref(),
                    Some("ClusterIssuer letsencrypt (cert-manager)")
                );
            }
            other => panic!("expected adoption, got {other:?}"),
        }
    }

    #[test]
    fn an_adopted_certificate_is_not_adopted_again() {
        let first = secret("ok", CM);
        let Verdict::UpToDate { adopt: Some(a), .. } = verdict(&certificate(), &first) else {
            panic!("adopted first");
        };
        let mut marked = first.clone();
        marked
            .metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(labels::ANN_ADOPTED_SERIAL.into(), a.serial_hex);
        assert!(matches!(
            verdict(&certificate(), &marked),
            Verdict::UpToDate { adopt: None, .. }
        ));
    }

    #[test]
    fn reissue_on_issuer_change_issues_instead() {
        let mut cert = certificate();
        cert.spec.reissue_on_issuer_change = Some(true);
        assert!(matches!(
            verdict(&cert, &secret("ok", CM)),
            Verdict::Issue(IssueReason::IssuerChanged(m)) if m.contains("reissueOnIssuerChange")
        ));
    }

    #[test]
    fn a_broken_chain_is_not_adopted() {
        assert!(matches!(
            verdict(&certificate(), &secret("broken", CM)),
            Verdict::Issue(IssueReason::IssuerChanged(m)) if m.contains("cannot be adopted")
        ));
    }

    #[test]
    fn a_certificate_from_another_ferrocert_issuer_is_reissued() {
        let s = secret(
            "ok",
            &[
                (labels::ANN_ISSUER_NAME, "staging"),
                (labels::ANN_ISSUER_KIND, "Issuer"),
            ],
        );
        assert!(matches!(
            verdict(&certificate(), &s),
            Verdict::Issue(IssueReason::IssuerChanged(m)) if m.contains("staging")
        ));
    }

    fn with_issuer_refs(names: &[&str]) -> Certificate {
        let mut cert = certificate();
        cert.spec.issuer_ref = None;
        cert.spec.issuer_refs = names
            .iter()
            .map(|n| IssuerRef {
                name: (*n).into(),
                ..Default::default()
            })
            .collect();
        cert
    }

    #[test]
    fn a_certificate_from_any_issuer_of_issuer_refs_satisfies_the_spec() {
        let cert = with_issuer_refs(&["primary", "staging"]);
        let s = secret(
            "ok",
            &[
                (labels::ANN_ISSUER_NAME, "staging"),
                (labels::ANN_ISSUER_KIND, "Issuer"),
            ],
        );
        assert!(matches!(
            verdict(&cert, &s),
            Verdict::UpToDate { adopt: None, .. }
        ));
    }

    #[test]
    fn a_certificate_from_an_issuer_not_in_issuer_refs_is_reissued() {
        let cert = with_issuer_refs(&["primary", "backup"]);
        let s = secret(
            "ok",
            &[
                (labels::ANN_ISSUER_NAME, "staging"),
                (labels::ANN_ISSUER_KIND, "Issuer"),
            ],
        );
        assert!(matches!(
            verdict(&cert, &s),
            Verdict::Issue(IssueReason::IssuerChanged(m))
                if m.contains("staging") && m.contains("Issuer primary, Issuer backup")
        ));
        // The same name as a ClusterIssuer is another issuer.
        let s = secret(
            "ok",
            &[
                (labels::ANN_ISSUER_NAME, "backup"),
                (labels::ANN_ISSUER_KIND, "ClusterIssuer"),
            ],
        );
        assert!(matches!(
            verdict(&cert, &s),
            Verdict::Issue(IssueReason::IssuerChanged(_))
        ));
    }

    #[test]
    fn a_certificate_that_does_not_satisfy_the_spec_is_reissued_not_adopted() {
        let mut cert = certificate();
        cert.spec.dns_names.push("b.example".into());
        assert!(matches!(
            verdict(&cert, &secret("ok", CM)),
            Verdict::Issue(IssueReason::Mismatch(_))
        ));
    }
}
