//! The `kubernetes.io/tls` Secret a Certificate is kept in, and the Secret holding the private key
//! of an issuance in flight. Reading is tolerant (a missing or garbled field is a reason to
//! re-issue, not an error); writing always sets the labels that the Secret watch selects on.

pub mod outputs;

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::api::{Certificate, IssuerKind};
use crate::labels;
use crate::pki::{PkiError, PrivateKey};

pub const TLS_CRT: &str = "tls.crt";
pub const TLS_KEY: &str = "tls.key";
pub const CA_CRT: &str = "ca.crt";

/// The text of a data key, if present and UTF-8.
pub fn data_str<'a>(secret: &'a Secret, key: &str) -> Option<&'a str> {
    let bytes = secret.data.as_ref()?.get(key)?;
    std::str::from_utf8(&bytes.0).ok()
}

/// What goes into a TLS Secret.
pub struct TlsContents<'a> {
    pub chain_pem: &'a str,
    pub key_pem: &'a str,
    pub ca_pem: Option<&'a str>,
    pub issuer_name: &'a str,
    pub issuer_kind: IssuerKind,
    /// The renew request this issuance answered, if any.
    pub renew_handled: Option<&'a str>,
    /// `spec.additionalOutputFormats` and `spec.keystores` (data keys and the keystores'
    /// fingerprint annotation), written in the same apply as the certificate.
    pub outputs: Option<&'a outputs::Outputs>,
}

/// The TLS Secret for a Certificate, as a server-side apply body.
pub fn tls_secret(cert: &Certificate, contents: &TlsContents<'_>) -> Secret {
    let name = cert.metadata.name.clone().unwrap_or_default();
    let spec = &cert.spec;
    let mut labels = BTreeMap::from([
        (
            labels::CERTIFICATE_NAME.to_string(),
            labels::label_value(&name),
        ),
        (labels::SECRET_ROLE.to_string(), "tls".to_string()),
        (
            labels::MANAGED_BY.to_string(),
            labels::MANAGED_BY_VALUE.to_string(),
        ),
    ]);
    let mut annotations = BTreeMap::from([
        (labels::ANN_CERTIFICATE_NAME.to_string(), name),
        (
            labels::ANN_ISSUER_NAME.to_string(),
            contents.issuer_name.to_string(),
        ),
        (
            labels::ANN_ISSUER_KIND.to_string(),
            kind_str(contents.issuer_kind).to_string(),
        ),
        (labels::ANN_DNS_NAMES.to_string(), spec.dns_names.join(",")),
        (
            labels::ANN_IP_ADDRESSES.to_string(),
            spec.ip_addresses.join(","),
        ),
    ]);
    if let Some(cn) = &spec.common_name {
        annotations.insert(labels::ANN_COMMON_NAME.to_string(), cn.clone());
    }
    if let Some(id) = contents.renew_handled {
        annotations.insert(labels::ANN_RENEW_HANDLED.to_string(), id.to_string());
    }
    if let Some(extra) = contents.outputs {
        annotations.extend(extra.annotations.clone());
    }
    if let Some(template) = &spec.secret_template {
        // Our own keys win: the template cannot break the watch selector or the issuer record.
        for (k, v) in &template.labels {
            labels.entry(k.clone()).or_insert_with(|| v.clone());
        }
        for (k, v) in &template.annotations {
            annotations.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    let mut data = BTreeMap::from([
        (
            TLS_CRT.to_string(),
            ByteString(contents.chain_pem.as_bytes().to_vec()),
        ),
        (
            TLS_KEY.to_string(),
            ByteString(contents.key_pem.as_bytes().to_vec()),
        ),
    ]);
    if let Some(ca) = contents.ca_pem {
        data.insert(CA_CRT.to_string(), ByteString(ca.as_bytes().to_vec()));
    }
    if let Some(extra) = contents.outputs {
        data.extend(extra.data.clone());
    }
    Secret {
        metadata: ObjectMeta {
            name: Some(spec.secret_name.clone()),
            namespace: cert.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".to_string()),
        data: Some(data),
        ..Secret::default()
    }
}

/// The Secret holding the private key of the issuance in flight. Written before the order
/// exists, so a crash never loses the key the CSR will be made from.
pub fn next_key_secret(cert: &Certificate, secret_name: &str, key_pem: &str) -> Secret {
    let name = cert.metadata.name.clone().unwrap_or_default();
    Secret {
        metadata: ObjectMeta {
            name: Some(secret_name.to_string()),
            namespace: cert.metadata.namespace.clone(),
            labels: Some(BTreeMap::from([
                (
                    labels::CERTIFICATE_NAME.to_string(),
                    labels::label_value(&name),
                ),
                (labels::SECRET_ROLE.to_string(), "next-key".to_string()),
                (
                    labels::MANAGED_BY.to_string(),
                    labels::MANAGED_BY_VALUE.to_string(),
                ),
            ])),
            owner_references: crate::api::certificate::owner_reference(cert).map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_string()),
        data: Some(BTreeMap::from([(
            TLS_KEY.to_string(),
            ByteString(key_pem.as_bytes().to_vec()),
        )])),
        ..Secret::default()
    }
}

/// Whether `secret` is the next-key Secret of Certificate `cert_name` (its labels say so), which
/// a new next key may replace; any other Secret of that name is left alone. Pure.
pub fn is_next_key_of(secret: &Secret, cert_name: &str) -> bool {
    let labels = secret.metadata.labels.as_ref();
    let label = |key: &str| labels.and_then(|l| l.get(key)).map(String::as_str);
    label(labels::SECRET_ROLE) == Some("next-key")
        && label(labels::CERTIFICATE_NAME) == Some(labels::label_value(cert_name).as_str())
}

/// The name of a Certificate's next-key Secret: `<name>-next-key`, hashed when too long.
pub fn next_key_secret_name(cert_name: &str) -> String {
    let candidate = format!("{cert_name}-next-key");
    if candidate.len() <= 253 {
        candidate
    } else {
        format!("ferrocert-next-key-{}", labels::short_hash(cert_name))
    }
}

/// `tls.key` as PEM in the encoding the Certificate asks for.
pub fn encode_key(cert: &Certificate, key: &PrivateKey) -> Result<String, PkiError> {
    let encoding = cert
        .spec
        .private_key
        .as_ref()
        .and_then(|p| p.encoding)
        .unwrap_or_default();
    key.to_pem(encoding)
}

pub fn kind_str(kind: IssuerKind) -> &'static str {
    match kind {
        IssuerKind::Issuer => "Issuer",
        IssuerKind::ClusterIssuer => "ClusterIssuer",
    }
}

/// The annotation cert-manager puts on the Secrets it writes: a Secret that names the same
/// Certificate (one of the same name, in the same namespace) can be taken over, so that moving a
/// Certificate from cert-manager to ferrocert keeps its Secret.
pub const CERT_MANAGER_CERTIFICATE_NAME: &str = "cert-manager.io/certificate-name";

/// Whose the Secret a Certificate's `secretName` names is, and so whether the Certificate may
/// write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretClaim {
    /// No such Secret: the Certificate creates it.
    Free,
    /// Written for this Certificate (by ferrocert, or by cert-manager for a Certificate of the
    /// same name), or handed to it by annotating it with `ferrocert.dev/certificate-name`.
    Ours,
    /// Written for another Certificate of the namespace that still names it.
    OtherCertificate(String),
    /// Not of type `kubernetes.io/tls` (the type of a Secret cannot change).
    WrongType(String),
    /// A TLS Secret ferrocert did not write and nobody handed over.
    NotOurs,
}

/// Decides whose `secret` is, for the Certificate `cert_name`. `still_claims(other)` says
/// whether the Certificate `other` of the namespace exists and still names this Secret: a Secret
/// left behind by a deleted or renamed Certificate is free to take. Pure.
pub fn claim(
    secret: Option<&Secret>,
    cert_name: &str,
    still_claims: impl Fn(&str) -> bool,
) -> SecretClaim {
    let Some(secret) = secret else {
        return SecretClaim::Free;
    };
    let type_ = secret.type_.as_deref().unwrap_or("Opaque");
    if type_ != "kubernetes.io/tls" {
        return SecretClaim::WrongType(type_.to_string());
    }
    let annotations = secret.metadata.annotations.as_ref();
    let named = |key: &str| annotations.and_then(|a| a.get(key)).map(String::as_str);
    match named(labels::ANN_CERTIFICATE_NAME) {
        Some(name) if name == cert_name => SecretClaim::Ours,
        Some(other) if still_claims(other) => SecretClaim::OtherCertificate(other.to_string()),
        Some(_) => SecretClaim::Ours,
        None if named(CERT_MANAGER_CERTIFICATE_NAME) == Some(cert_name) => SecretClaim::Ours,
        None => SecretClaim::NotOurs,
    }
}

impl SecretClaim {
    /// Why the Certificate may not write the Secret `secret_name`, as a condition reason and a
    /// message that says what to do; `None` when it may.
    pub fn refusal(&self, secret_name: &str, cert_name: &str) -> Option<(&'static str, String)> {
        match self {
            SecretClaim::Free | SecretClaim::Ours => None,
            SecretClaim::OtherCertificate(other) => Some((
                "SecretInUse",
                format!(
                    "Secret {secret_name} holds the certificate of Certificate {other}, which \
                     also names it as secretName; give one of them another secretName"
                ),
            )),
            SecretClaim::WrongType(type_) => Some((
                "SecretNotTLS",
                format!(
                    "Secret {secret_name} exists with type {type_}, and a Secret's type cannot \
                     change; delete it or choose another secretName"
                ),
            )),
            SecretClaim::NotOurs => Some((
                "SecretNotOwned",
                format!(
                    "Secret {secret_name} exists and was not written by ferrocert for this \
                     Certificate, so it is left alone; to hand it over, annotate it with \
                     {}={cert_name}, or choose another secretName",
                    labels::ANN_CERTIFICATE_NAME
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_next_key_secret_labelled_for_the_certificate_may_be_replaced() {
        let cert: Certificate = serde_json::from_value(serde_json::json!({
            "apiVersion": "ferrocert.dev/v1alpha1", "kind": "Certificate",
            "metadata": {"name": "web", "namespace": "shop", "uid": "u1"},
            "spec": {"secretName": "web-tls", "dnsNames": ["a.test"]}
        }))
        .unwrap();
        let ours = next_key_secret(&cert, "web-next-key", "pem");
        assert!(is_next_key_of(&ours, "web"));
        assert!(!is_next_key_of(&ours, "other"));
        let mut someone_elses = ours.clone();
        someone_elses.metadata.labels = None;
        assert!(!is_next_key_of(&someone_elses, "web"));
    }
    use crate::api::{CertificateSpec, IssuerRef, SecretTemplate};

    fn cert() -> Certificate {
        let mut c = Certificate::new(
            "web",
            CertificateSpec {
                secret_name: "web-tls".into(),
                dns_names: vec!["a.test".into(), "b.test".into()],
                issuer_ref: Some(IssuerRef {
                    name: "le".into(),
                    ..Default::default()
                }),
                secret_template: Some(SecretTemplate {
                    labels: BTreeMap::from([
                        ("team".to_string(), "x".to_string()),
                        (labels::CERTIFICATE_NAME.to_string(), "evil".to_string()),
                    ]),
                    annotations: BTreeMap::new(),
                }),
                ..Default::default()
            },
        );
        c.metadata.namespace = Some("shop".into());
        c
    }

    #[test]
    fn tls_secret_layout_and_labels() {
        let s = tls_secret(
            &cert(),
            &TlsContents {
                chain_pem: "CHAIN",
                key_pem: "KEY",
                ca_pem: None,
                issuer_name: "le",
                issuer_kind: IssuerKind::Issuer,
                renew_handled: None,
                outputs: None,
            },
        );
        assert_eq!(s.type_.as_deref(), Some("kubernetes.io/tls"));
        assert_eq!(s.metadata.name.as_deref(), Some("web-tls"));
        assert_eq!(data_str(&s, TLS_CRT), Some("CHAIN"));
        assert_eq!(data_str(&s, TLS_KEY), Some("KEY"));
        assert!(data_str(&s, CA_CRT).is_none());
        let l = s.metadata.labels.unwrap();
        assert_eq!(
            l[labels::CERTIFICATE_NAME],
            "web",
            "template cannot override our label"
        );
        assert_eq!(l["team"], "x");
        let a = s.metadata.annotations.unwrap();
        assert_eq!(a[labels::ANN_DNS_NAMES], "a.test,b.test");
        assert_eq!(a[labels::ANN_ISSUER_KIND], "Issuer");
    }

    #[test]
    fn tls_secret_carries_the_outputs_and_our_annotations_win() {
        let mut c = cert();
        if let Some(t) = c.spec.secret_template.as_mut() {
            t.annotations
                .insert(outputs::ANN_KEYSTORES_FINGERPRINT.into(), "forged".into());
        }
        let extra = outputs::Outputs {
            data: BTreeMap::from([(outputs::KEY_DER.to_string(), ByteString(vec![0x30, 0x00]))]),
            annotations: BTreeMap::from([(
                outputs::ANN_KEYSTORES_FINGERPRINT.to_string(),
                "abc".to_string(),
            )]),
        };
        let s = tls_secret(
            &c,
            &TlsContents {
                chain_pem: "CHAIN",
                key_pem: "KEY",
                ca_pem: None,
                issuer_name: "le",
                issuer_kind: IssuerKind::Issuer,
                renew_handled: None,
                outputs: Some(&extra),
            },
        );
        let data = s.data.as_ref().unwrap();
        assert_eq!(data[outputs::KEY_DER].0, vec![0x30, 0x00]);
        assert_eq!(data_str(&s, TLS_CRT), Some("CHAIN"));
        let a = s.metadata.annotations.unwrap();
        assert_eq!(a[outputs::ANN_KEYSTORES_FINGERPRINT], "abc");
    }

    #[test]
    fn next_key_secret_names_fit() {
        assert_eq!(next_key_secret_name("web"), "web-next-key");
        assert!(next_key_secret_name(&"x".repeat(250)).len() <= 253);
    }

    fn secret_with(type_: &str, annotations: &[(&str, &str)]) -> Secret {
        Secret {
            type_: Some(type_.to_string()),
            metadata: ObjectMeta {
                annotations: Some(
                    annotations
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..ObjectMeta::default()
            },
            ..Secret::default()
        }
    }

    #[test]
    fn a_secret_is_written_only_by_the_certificate_it_belongs_to() {
        let tls = "kubernetes.io/tls";
        let none = |_: &str| false;
        let all = |_: &str| true;
        assert_eq!(claim(None, "web", none), SecretClaim::Free);
        let mine = secret_with(tls, &[(labels::ANN_CERTIFICATE_NAME, "web")]);
        assert_eq!(claim(Some(&mine), "web", all), SecretClaim::Ours);
        // Another Certificate's, while it still names the Secret; free once it does not.
        assert_eq!(
            claim(Some(&mine), "api", all),
            SecretClaim::OtherCertificate("web".into())
        );
        assert_eq!(claim(Some(&mine), "api", none), SecretClaim::Ours);
        // Someone else's TLS Secret is not taken; cert-manager's for the same name is.
        let foreign = secret_with(tls, &[]);
        assert_eq!(claim(Some(&foreign), "web", all), SecretClaim::NotOurs);
        let cm = secret_with(tls, &[(CERT_MANAGER_CERTIFICATE_NAME, "web")]);
        assert_eq!(claim(Some(&cm), "web", all), SecretClaim::Ours);
        assert_eq!(claim(Some(&cm), "api", all), SecretClaim::NotOurs);
        // A type that cannot become kubernetes.io/tls, whoever wrote it.
        let opaque = secret_with("Opaque", &[(labels::ANN_CERTIFICATE_NAME, "web")]);
        assert_eq!(
            claim(Some(&opaque), "web", all),
            SecretClaim::WrongType("Opaque".into())
        );
        let (reason, message) = SecretClaim::NotOurs.refusal("web-tls", "web").unwrap();
        assert_eq!(reason, "SecretNotOwned");
        assert!(
            message.contains("ferrocert.dev/certificate-name=web"),
            "{message}"
        );
        assert_eq!(SecretClaim::Ours.refusal("web-tls", "web"), None);
    }
}
