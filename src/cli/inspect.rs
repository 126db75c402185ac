//! `ferrocert inspect secret NAME`: decodes a `kubernetes.io/tls` Secret.
//!
//! Each certificate of `tls.crt` (subject, issuer, SANs, serial, validity, public key and whether
//! its signature verifies against the next certificate), `tls.key` (algorithm, size, encoding and
//! whether it belongs to the leaf), `ca.crt`, and ferrocert's annotations. Key material is never
//! printed. [`SecretReport`] is shared with `ferrocert status`.
//!
//! Certificate fields come from [`crate::pki`] ([`parse_chain`], [`ParsedLeaf`], [`parse_pem`]);
//! x509-parser is used here only for what the controller never needs: full distinguished names,
//! the public key of CA certificates, and signature verification between chain members.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::Api;
use serde::Serialize;
use x509_parser::certificate::X509Certificate;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_NIST_EC_P521,
    OID_PKCS1_RSAENCRYPTION, OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use super::{
    CliError, KubeArgs, OutputFormat, connect, list_or_none, or_none, print, push_fields, to_json,
    when,
};
use crate::api::PrivateKeyEncoding;
use crate::pki::{ParsedLeaf, key_matches_leaf, parse_chain, parse_pem};
use crate::secret::{CA_CRT, TLS_CRT, TLS_KEY, data_str};

#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    #[command(subcommand)]
    pub target: InspectTarget,
}

#[derive(clap::Subcommand, Debug)]
pub enum InspectTarget {
    /// Decode a kubernetes.io/tls Secret: its certificates, key type and ferrocert annotations.
    Secret {
        /// Name of the Secret.
        name: String,
        #[command(flatten)]
        kube: KubeArgs,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t)]
        output: OutputFormat,
    },
}

pub async fn run(args: InspectArgs) -> Result<(), CliError> {
    match args.target {
        InspectTarget::Secret { name, kube, output } => {
            let (client, namespace) = connect(&kube).await?;
            let secret = Api::<Secret>::namespaced(client, &namespace)
                .get(&name)
                .await
                .map_err(|e| CliError::from_kube("Secret", &namespace, &name, e))?;
            let report = SecretReport::from_secret(&namespace, &name, Some(&secret));
            let text = match output {
                OutputFormat::Text => format_secret(&report, Timestamp::now()),
                OutputFormat::Json => to_json(&report)?,
            };
            print(&text)
        }
    }
}

/// What a Secret holds, decoded. Built from the object alone (no I/O); missing or garbled parts
/// are reported in the `*_error` fields, not as failures, because showing them is the point.
#[derive(Serialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SecretReport {
    pub namespace: String,
    pub name: String,
    pub exists: bool,
    /// Why the Secret could not be read (other than not existing), e.g. missing RBAC rights.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// `tls.crt`, leaf first.
    pub certificates: Vec<CertificateReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificates_error: Option<String>,
    /// Whether every certificate of `tls.crt` is signed by the next one (and the top one by
    /// `ca.crt` or itself, when those are present).
    pub chain_links: bool,
    /// `tls.key`, without its material.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key: Option<KeyReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key_error: Option<String>,
    /// `ca.crt`, if present.
    pub ca: Vec<CertificateReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_error: Option<String>,
    /// The additional outputs the Secret carries (`tls-combined.pem`, `key.der`, keystores and
    /// truststores), with their sizes; never their content.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<OutputReport>,
    /// ferrocert's annotations (`ferrocert.dev/*`) and labels on the Secret.
    pub annotations: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

/// One additional output in the Secret: its data key and size.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct OutputReport {
    pub key: String,
    pub bytes: usize,
}

/// `name (N bytes), ...`, or `<none>`.
pub(crate) fn outputs_line(outputs: &[OutputReport]) -> String {
    if outputs.is_empty() {
        return "<none>".to_string();
    }
    outputs
        .iter()
        .map(|o| format!("{} ({} bytes)", o.key, o.bytes))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One certificate, decoded.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CertificateReport {
    /// The full subject distinguished name (RFC 4514 style).
    pub subject: String,
    pub issuer: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_cn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer_cn: Option<String>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<String>,
    /// Lowercase hex.
    pub serial: String,
    pub not_before: Time,
    pub not_after: Time,
    /// `ECDSA P-256`, `RSA 2048`, `Ed25519`.
    pub public_key: String,
    pub signature: SignatureCheck,
}

/// Whether a certificate's signature verifies, and against what.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
#[serde(tag = "result", rename_all = "camelCase")]
pub enum SignatureCheck {
    /// Verified with the public key of the next certificate in the same PEM.
    SignedByNext,
    /// The next certificate's key does not verify it: the chain is broken or out of order.
    NotSignedByNext { error: String },
    /// Self-signed (a root), and its signature verifies.
    SelfSigned,
    /// Verified with a certificate of `ca.crt`.
    SignedByCa { ca_subject: String },
    /// Its issuer is in neither this PEM nor `ca.crt` (normal for an ACME chain, which stops
    /// below the root).
    IssuerNotIncluded,
}

impl SignatureCheck {
    fn links(&self) -> bool {
        !matches!(self, SignatureCheck::NotSignedByNext { .. })
    }

    fn describe(&self, index: usize) -> String {
        match self {
            SignatureCheck::SignedByNext => {
                format!("signed by certificate #{} (verified)", index + 1)
            }
            SignatureCheck::NotSignedByNext { error } => {
                format!("NOT signed by certificate #{}: {error}", index + 1)
            }
            SignatureCheck::SelfSigned => "self-signed (verified)".into(),
            SignatureCheck::SignedByCa { ca_subject } => {
                format!("signed by ca.crt {ca_subject} (verified)")
            }
            SignatureCheck::IssuerNotIncluded => "issuer not included (usually the root)".into(),
        }
    }
}

/// `tls.key`, described without its material.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct KeyReport {
    /// `ECDSA P-256`, `RSA 2048`, `Ed25519`.
    pub algorithm: String,
    /// `PKCS1` (PKCS#1 or SEC1) or `PKCS8`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// Whether this key is the private half of the leaf's public key (`None`: no leaf to compare).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matches_certificate: Option<bool>,
}

impl SecretReport {
    /// A report for a Secret that could not be read (absent, or `error` says why).
    pub fn missing(namespace: &str, name: &str, error: Option<String>) -> Self {
        SecretReport {
            namespace: namespace.to_string(),
            name: name.to_string(),
            error,
            ..Default::default()
        }
    }

    /// Decodes a Secret. `None` means it does not exist.
    pub fn from_secret(namespace: &str, name: &str, secret: Option<&Secret>) -> Self {
        let Some(secret) = secret else {
            return Self::missing(namespace, name, None);
        };
        let mut report = SecretReport {
            namespace: namespace.to_string(),
            name: name.to_string(),
            exists: true,
            type_: secret.type_.clone(),
            annotations: ferrocert_entries(secret.metadata.annotations.as_ref()),
            labels: ferrocert_entries(secret.metadata.labels.as_ref()),
            ..Default::default()
        };
        if let Some(data) = secret.data.as_ref() {
            report.outputs = crate::secret::outputs::present(data)
                .into_iter()
                .map(|key| OutputReport {
                    key: key.to_string(),
                    bytes: data.get(key).map_or(0, |v| v.0.len()),
                })
                .collect();
        }

        let mut ca_ders = Vec::new();
        match pem_field(secret, CA_CRT) {
            Ok(None) => {}
            Ok(Some(text)) => match parse_chain(text) {
                Ok(ca) => ca_ders = ca.certs_der,
                Err(e) => report.ca_error = Some(format!("{CA_CRT}: {e}")),
            },
            Err(e) => report.ca_error = Some(e),
        }
        let mut leaf = None;
        match pem_field(secret, TLS_CRT) {
            Ok(None) => report.certificates_error = Some(format!("{TLS_CRT} is missing")),
            Ok(Some(text)) => match parse_chain(text) {
                Ok(chain) => {
                    match describe_chain(&chain.certs_der, &ca_ders) {
                        Ok(certs) => report.certificates = certs,
                        Err(e) => report.certificates_error = Some(format!("{TLS_CRT}: {e}")),
                    }
                    leaf = Some(chain.leaf);
                }
                Err(e) => report.certificates_error = Some(format!("{TLS_CRT}: {e}")),
            },
            Err(e) => report.certificates_error = Some(e),
        }
        report.chain_links = !report.certificates.is_empty()
            && report.certificates.iter().all(|c| c.signature.links());
        if !ca_ders.is_empty() {
            match describe_chain(&ca_ders, &[]) {
                Ok(ca) => report.ca = ca,
                Err(e) => report.ca_error = Some(format!("{CA_CRT}: {e}")),
            }
        }
        match pem_field(secret, TLS_KEY) {
            Ok(None) => report.private_key_error = Some(format!("{TLS_KEY} is missing")),
            Ok(Some(text)) => match parse_pem(text) {
                Ok(key) => {
                    report.private_key = Some(KeyReport {
                        algorithm: key.spec().to_string(),
                        encoding: key.parsed_encoding().map(|e| {
                            match e {
                                PrivateKeyEncoding::PKCS1 => "PKCS1",
                                PrivateKeyEncoding::PKCS8 => "PKCS8",
                            }
                            .to_string()
                        }),
                        matches_certificate: leaf.as_ref().map(|l| key_matches_leaf(&key, l)),
                    })
                }
                // The error text of parse_pem describes the structure, never the key bytes.
                Err(e) => report.private_key_error = Some(format!("{TLS_KEY}: {e}")),
            },
            Err(e) => report.private_key_error = Some(e),
        }
        report
    }

    /// The leaf certificate, if `tls.crt` parsed.
    pub fn leaf(&self) -> Option<&CertificateReport> {
        self.certificates.first()
    }
}

/// A data field as text: `Ok(None)` when absent or empty, `Err` when not UTF-8.
fn pem_field<'a>(secret: &'a Secret, key: &str) -> Result<Option<&'a str>, String> {
    let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(key)) else {
        return Ok(None);
    };
    if bytes.0.is_empty() {
        return Ok(None);
    }
    data_str(secret, key)
        .map(Some)
        .ok_or_else(|| format!("{key} is not text (PEM expected)"))
}

fn ferrocert_entries(map: Option<&BTreeMap<String, String>>) -> BTreeMap<String, String> {
    map.into_iter()
        .flatten()
        .filter(|(k, _)| k.starts_with("ferrocert.dev/") || k.starts_with("app.kubernetes.io/"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Describes each certificate and checks that each is signed by the next; the top one is
/// checked against itself (a root) or against `ca_ders`.
fn describe_chain(ders: &[Vec<u8>], ca_ders: &[Vec<u8>]) -> Result<Vec<CertificateReport>, String> {
    let parsed: Vec<X509Certificate<'_>> = ders
        .iter()
        .enumerate()
        .map(|(i, der)| x509(der).map_err(|e| format!("certificate #{i}: {e}")))
        .collect::<Result<_, _>>()?;
    let cas: Vec<X509Certificate<'_>> = ca_ders.iter().filter_map(|d| x509(d).ok()).collect();
    ders.iter()
        .zip(&parsed)
        .enumerate()
        .map(|(i, (der, cert))| {
            let fields = ParsedLeaf::from_der(der).map_err(|e| format!("certificate #{i}: {e}"))?;
            let signature = match parsed.get(i + 1) {
                Some(next) => match cert.verify_signature(Some(next.public_key())) {
                    Ok(()) => SignatureCheck::SignedByNext,
                    Err(e) => SignatureCheck::NotSignedByNext {
                        error: e.to_string(),
                    },
                },
                None => top_signature(cert, &cas),
            };
            Ok(CertificateReport {
                subject: cert.subject().to_string(),
                issuer: cert.issuer().to_string(),
                subject_cn: fields.subject_cn,
                issuer_cn: fields.issuer_cn,
                dns_names: fields.dns_names,
                ip_addresses: fields
                    .ip_addresses
                    .iter()
                    .map(|ip| ip.to_string())
                    .collect(),
                serial: fields.serial_hex,
                not_before: Time(fields.not_before),
                not_after: Time(fields.not_after),
                public_key: describe_public_key(cert.public_key()),
                signature,
            })
        })
        .collect()
}

fn top_signature(cert: &X509Certificate<'_>, cas: &[X509Certificate<'_>]) -> SignatureCheck {
    if cert.subject().as_raw() == cert.issuer().as_raw() && cert.verify_signature(None).is_ok() {
        return SignatureCheck::SelfSigned;
    }
    cas.iter()
        .find(|ca| cert.verify_signature(Some(ca.public_key())).is_ok())
        .map_or(SignatureCheck::IssuerNotIncluded, |ca| {
            SignatureCheck::SignedByCa {
                ca_subject: ca.subject().to_string(),
            }
        })
}

fn x509(der: &[u8]) -> Result<X509Certificate<'_>, String> {
    X509Certificate::from_der(der)
        .map(|(_, cert)| cert)
        .map_err(|e| e.to_string())
}

/// `RSA 2048`, `ECDSA P-256`, `Ed25519`, as [`crate::pki::KeySpec`] prints private keys.
fn describe_public_key(spki: &SubjectPublicKeyInfo<'_>) -> String {
    let oid = &spki.algorithm.algorithm;
    if *oid == OID_PKCS1_RSAENCRYPTION {
        match spki.parsed() {
            Ok(key) => format!("RSA {}", key.key_size()),
            Err(_) => "RSA".into(),
        }
    } else if *oid == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        match curve {
            Some(c) if c == OID_EC_P256 => "ECDSA P-256".into(),
            Some(c) if c == OID_NIST_EC_P384 => "ECDSA P-384".into(),
            Some(c) if c == OID_NIST_EC_P521 => "ECDSA P-521".into(),
            Some(c) => format!("ECDSA (curve {c})"),
            None => "ECDSA".into(),
        }
    } else if *oid == OID_SIG_ED25519 {
        "Ed25519".into()
    } else {
        format!("algorithm {oid}")
    }
}

/// The whole report as text, for `inspect secret`.
pub fn format_secret(report: &SecretReport, now: Timestamp) -> String {
    let mut out = String::new();
    push_fields(
        &mut out,
        0,
        &[
            ("Secret", format!("{}/{}", report.namespace, report.name)),
            ("Type", or_none(report.type_.as_deref())),
        ],
    );
    if let Some(error) = &report.error {
        push_fields(&mut out, 0, &[("Error", error.clone())]);
    }
    if !report.exists {
        out.push_str("The Secret does not exist.\n");
        return out;
    }
    if report.type_.as_deref() != Some("kubernetes.io/tls") {
        out.push_str(
            "Note: not a kubernetes.io/tls Secret; decoding tls.crt and tls.key anyway.\n",
        );
    }

    out.push_str(&format!("\nCertificates ({TLS_CRT}):\n"));
    if let Some(error) = &report.certificates_error {
        push_fields(&mut out, 2, &[("Error", error.clone())]);
    }
    for (i, cert) in report.certificates.iter().enumerate() {
        let title = if i == 0 {
            "#0 (leaf)".to_string()
        } else {
            format!("#{i}")
        };
        out.push_str(&format!("  {title}:\n"));
        push_certificate(&mut out, 4, cert, now, Some(i));
    }
    if !report.certificates.is_empty() {
        let chain = if report.chain_links {
            match report.certificates.len() {
                1 => "1 certificate".to_string(),
                n => format!("{n} certificates, each signed by the next"),
            }
        } else {
            format!(
                "BROKEN: {} certificates, not each signed by the next",
                report.certificates.len()
            )
        };
        push_fields(&mut out, 2, &[("Chain", chain)]);
    }

    out.push_str(&format!("\nPrivate Key ({TLS_KEY}):\n"));
    push_fields(&mut out, 2, &key_rows(report));

    out.push_str(&format!("\nCA ({CA_CRT}):"));
    if report.ca.is_empty() && report.ca_error.is_none() {
        out.push_str(" <none>\n");
    } else {
        out.push('\n');
    }
    if let Some(error) = &report.ca_error {
        push_fields(&mut out, 2, &[("Error", error.clone())]);
    }
    for (i, cert) in report.ca.iter().enumerate() {
        out.push_str(&format!("  #{i}:\n"));
        push_certificate(&mut out, 4, cert, now, None);
    }

    out.push('\n');
    push_fields(
        &mut out,
        0,
        &[("Additional Outputs", outputs_line(&report.outputs))],
    );

    out.push_str("\nAnnotations:");
    push_map(&mut out, &report.annotations);
    out.push_str("Labels:");
    push_map(&mut out, &report.labels);
    out
}

fn push_map(out: &mut String, map: &BTreeMap<String, String>) {
    if map.is_empty() {
        out.push_str(" <none>\n");
        return;
    }
    out.push('\n');
    let rows: Vec<(&str, String)> = map.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    push_fields(out, 2, &rows);
}

/// The `tls.key` rows: algorithm, encoding and whether it matches the leaf.
pub(crate) fn key_rows(report: &SecretReport) -> Vec<(&'static str, String)> {
    if let Some(error) = &report.private_key_error {
        return vec![("Error", error.clone())];
    }
    let Some(key) = &report.private_key else {
        return vec![("Key", "<none>".into())];
    };
    let mut rows = vec![("Algorithm", key.algorithm.clone())];
    if let Some(encoding) = &key.encoding {
        rows.push(("Encoding", encoding.clone()));
    }
    rows.push((
        "Matches Leaf",
        match key.matches_certificate {
            Some(true) => "yes: tls.key matches the certificate".into(),
            Some(false) => "NO: tls.key does not match the certificate's public key".into(),
            None => "unknown (no certificate to compare)".into(),
        },
    ));
    rows
}

/// The rows of one certificate. `index` is its position in `tls.crt`, for the signature line.
pub(crate) fn push_certificate(
    out: &mut String,
    indent: usize,
    cert: &CertificateReport,
    now: Timestamp,
    index: Option<usize>,
) {
    let mut rows = vec![
        ("Subject", or_empty_dn(&cert.subject)),
        ("Issuer", or_empty_dn(&cert.issuer)),
    ];
    if !cert.dns_names.is_empty() {
        rows.push(("DNS Names", list_or_none(&cert.dns_names)));
    }
    if !cert.ip_addresses.is_empty() {
        rows.push(("IP Addresses", list_or_none(&cert.ip_addresses)));
    }
    rows.extend([
        ("Serial", cert.serial.clone()),
        ("Not Before", validity_line(cert.not_before.0, now, false)),
        ("Not After", validity_line(cert.not_after.0, now, true)),
        ("Public Key", cert.public_key.clone()),
        ("Signature", cert.signature.describe(index.unwrap_or(0))),
    ]);
    push_fields(out, indent, &rows);
}

fn or_empty_dn(dn: &str) -> String {
    if dn.is_empty() {
        "<empty>".into()
    } else {
        dn.to_string()
    }
}

/// A validity bound with its distance from now, flagging an expired or not-yet-valid certificate.
pub(crate) fn validity_line(at: Timestamp, now: Timestamp, is_end: bool) -> String {
    let base = when(at, now);
    match (is_end, at <= now) {
        (true, true) => format!("{base}, EXPIRED"),
        (false, false) => format!("{base}, NOT YET VALID"),
        _ => base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::test_support::ts;
    use crate::labels;
    use crate::pki::test_support::{LeafOptions, TestCa};
    use crate::pki::{EcCurve, KeySpec, generate};
    use k8s_openapi::ByteString;

    fn tls_secret(data: &[(&str, &str)]) -> Secret {
        let mut s = Secret {
            type_: Some("kubernetes.io/tls".into()),
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Default::default()
        };
        s.metadata.annotations = Some(BTreeMap::from([
            (labels::ANN_ISSUER_NAME.to_string(), "pebble".to_string()),
            ("unrelated.example/x".to_string(), "y".to_string()),
        ]));
        s
    }

    struct Fixture {
        root: TestCa,
        inter: TestCa,
        key: crate::pki::PrivateKey,
        leaf_pem: String,
    }

    fn fixture() -> Fixture {
        let root = TestCa::root("Test Root X1");
        let inter = root.intermediate("Test Intermediate R1");
        let key = generate(&KeySpec::Ecdsa(EcCurve::P384)).unwrap();
        let leaf_pem = inter.issue(
            &key,
            &LeafOptions {
                cn: Some("a.example"),
                ips: &["192.0.2.1"],
                serial: Some(&[0x0a, 0xbc]),
                ..LeafOptions::dns(&["a.example", "b.example"])
            },
        );
        Fixture {
            root,
            inter,
            key,
            leaf_pem,
        }
    }

    #[test]
    fn decodes_chain_key_ca_and_annotations() {
        let f = fixture();
        let chain = format!("{}{}", f.leaf_pem, f.inter.pem);
        let key_pem = f.key.to_pem(PrivateKeyEncoding::PKCS1).unwrap();
        let secret = tls_secret(&[
            (TLS_CRT, &chain),
            (TLS_KEY, &key_pem),
            (CA_CRT, &f.root.pem),
        ]);
        let r = SecretReport::from_secret("shop", "web-tls", Some(&secret));
        assert!(r.exists);
        assert_eq!(r.certificates.len(), 2);
        let leaf = r.leaf().unwrap();
        assert_eq!(leaf.subject, "CN=a.example");
        assert_eq!(leaf.issuer_cn.as_deref(), Some("Test Intermediate R1"));
        assert_eq!(leaf.dns_names, vec!["a.example", "b.example"]);
        assert_eq!(leaf.ip_addresses, vec!["192.0.2.1"]);
        assert_eq!(leaf.serial, "0abc");
        assert_eq!(leaf.public_key, "ECDSA P-384");
        assert_eq!(leaf.signature, SignatureCheck::SignedByNext);
        assert_eq!(
            r.certificates[1].signature,
            SignatureCheck::SignedByCa {
                ca_subject: "CN=Test Root X1".into()
            }
        );
        assert!(r.chain_links);
        assert_eq!(r.ca.len(), 1);
        assert_eq!(r.ca[0].signature, SignatureCheck::SelfSigned);
        assert_eq!(
            r.private_key,
            Some(KeyReport {
                algorithm: "ECDSA P-384".into(),
                encoding: Some("PKCS1".into()),
                matches_certificate: Some(true),
            })
        );
        assert_eq!(
            r.annotations.keys().collect::<Vec<_>>(),
            vec![labels::ANN_ISSUER_NAME]
        );

        let text = format_secret(&r, ts("2025-02-01T00:00:00Z"));
        for expected in [
            "Secret:  shop/web-tls\n",
            "Type:    kubernetes.io/tls\n",
            "  #0 (leaf):\n    Subject:       CN=a.example\n",
            "    Issuer:        CN=Test Intermediate R1\n",
            "    DNS Names:     a.example, b.example\n",
            "    IP Addresses:  192.0.2.1\n",
            "    Serial:        0abc\n",
            "    Not Before:    2025-01-01T00:00:00Z (31d ago)\n",
            "    Not After:     2025-04-01T00:00:00Z (in 59d)\n",
            "    Public Key:    ECDSA P-384\n",
            "    Signature:     signed by certificate #1 (verified)\n",
            "    Signature:   signed by ca.crt CN=Test Root X1 (verified)\n",
            "  Chain:  2 certificates, each signed by the next\n",
            "  Algorithm:     ECDSA P-384\n  Encoding:      PKCS1\n  Matches Leaf:  yes: tls.key matches the certificate\n",
            "CA (ca.crt):\n  #0:\n    Subject:     CN=Test Root X1\n",
            "    Signature:   self-signed (verified)\n",
            "Annotations:\n  ferrocert.dev/issuer-name:  pebble\n",
            "Labels: <none>\n",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
        assert!(!text.contains("PRIVATE KEY"), "{text}");
        assert!(!text.contains("unrelated"), "{text}");
    }

    #[test]
    fn lists_the_additional_outputs_by_name_and_size_only() {
        let f = fixture();
        let key_pem = f.key.to_pem(PrivateKeyEncoding::PKCS1).unwrap();
        let mut secret = tls_secret(&[(TLS_CRT, &f.leaf_pem), (TLS_KEY, &key_pem)]);
        let data = secret.data.as_mut().unwrap();
        data.insert("keystore.p12".into(), ByteString(vec![0x30; 100]));
        data.insert("tls-combined.pem".into(), ByteString(vec![b'x'; 7]));
        let r = SecretReport::from_secret("shop", "web-tls", Some(&secret));
        assert_eq!(
            r.outputs,
            vec![
                OutputReport {
                    key: "tls-combined.pem".into(),
                    bytes: 7
                },
                OutputReport {
                    key: "keystore.p12".into(),
                    bytes: 100
                },
            ]
        );
        let text = format_secret(&r, ts("2025-02-01T00:00:00Z"));
        assert!(
            text.contains(
                "Additional Outputs:  tls-combined.pem (7 bytes), keystore.p12 (100 bytes)\n"
            ),
            "{text}"
        );
        let json = serde_json::to_string(&r).unwrap();
        assert!(
            json.contains(r#""outputs":[{"key":"tls-combined.pem","bytes":7}"#),
            "{json}"
        );
        assert!(!json.contains("xxxxxxx"), "{json}");
        // None: said so, and nothing in the JSON.
        let bare = tls_secret(&[(TLS_CRT, &f.leaf_pem), (TLS_KEY, &key_pem)]);
        let r = SecretReport::from_secret("shop", "web-tls", Some(&bare));
        assert!(
            format_secret(&r, ts("2025-02-01T00:00:00Z")).contains("Additional Outputs:  <none>\n")
        );
        assert!(!serde_json::to_string(&r).unwrap().contains("outputs"));
    }

    #[test]
    fn never_prints_key_material_in_json() {
        let f = fixture();
        let key_pem = f.key.to_pem(PrivateKeyEncoding::PKCS8).unwrap();
        let secret = tls_secret(&[(TLS_CRT, &f.leaf_pem), (TLS_KEY, &key_pem)]);
        let r = SecretReport::from_secret("shop", "web-tls", Some(&secret));
        let json = to_json(&r).unwrap();
        let body: String = key_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        assert!(!json.contains(&body[..40]), "{json}");
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["privateKey"]["encoding"], "PKCS8");
        assert_eq!(v["privateKey"]["matchesCertificate"], true);
        assert_eq!(
            v["certificates"][0]["signature"]["result"],
            "issuerNotIncluded"
        );
        assert_eq!(v["certificates"][0]["notAfter"], "2025-04-01T00:00:00Z");
        assert_eq!(v["chainLinks"], true);
    }

    #[test]
    fn reports_foreign_key_broken_chain_and_expiry() {
        let f = fixture();
        let other = generate(&KeySpec::default()).unwrap();
        // The intermediate is followed by an unrelated root: it is not signed by it.
        let stranger = TestCa::root("Stranger");
        let chain = format!("{}{}{}", f.leaf_pem, f.inter.pem, stranger.pem);
        let key_pem = other.to_pem(PrivateKeyEncoding::PKCS1).unwrap();
        let secret = tls_secret(&[(TLS_CRT, &chain), (TLS_KEY, &key_pem)]);
        let r = SecretReport::from_secret("shop", "web-tls", Some(&secret));
        assert!(!r.chain_links);
        assert!(matches!(
            r.certificates[1].signature,
            SignatureCheck::NotSignedByNext { .. }
        ));
        assert_eq!(r.certificates[2].signature, SignatureCheck::SelfSigned);
        assert_eq!(
            r.private_key.as_ref().unwrap().matches_certificate,
            Some(false)
        );
        let text = format_secret(&r, ts("2025-05-01T00:00:00Z"));
        assert!(text.contains("NOT signed by certificate #2"), "{text}");
        assert!(text.contains("BROKEN: 3 certificates"), "{text}");
        assert!(
            text.contains("NO: tls.key does not match the certificate's public key"),
            "{text}"
        );
        assert!(text.contains("(30d ago), EXPIRED"), "{text}");
    }

    #[test]
    fn reports_missing_and_garbled_fields() {
        let secret = tls_secret(&[(TLS_CRT, "not pem"), (TLS_KEY, "")]);
        let r = SecretReport::from_secret("shop", "web-tls", Some(&secret));
        assert!(r.certificates.is_empty());
        assert!(!r.chain_links);
        assert!(
            r.certificates_error
                .as_deref()
                .unwrap()
                .starts_with("tls.crt: ")
        );
        assert_eq!(r.private_key_error.as_deref(), Some("tls.key is missing"));
        let text = format_secret(&r, ts("2025-02-01T00:00:00Z"));
        assert!(text.contains("  Error:  tls.key is missing\n"), "{text}");
        assert!(text.contains("CA (ca.crt): <none>\n"), "{text}");

        let mut opaque = tls_secret(&[]);
        opaque.type_ = Some("Opaque".into());
        let text = format_secret(
            &SecretReport::from_secret("shop", "x", Some(&opaque)),
            ts("2025-02-01T00:00:00Z"),
        );
        assert!(text.contains("not a kubernetes.io/tls Secret"), "{text}");
        assert!(text.contains("tls.crt is missing"), "{text}");
    }

    #[test]
    fn absent_secret() {
        let r = SecretReport::from_secret("shop", "web-tls", None);
        assert!(!r.exists);
        let text = format_secret(&r, ts("2025-02-01T00:00:00Z"));
        assert_eq!(
            text,
            "Secret:  shop/web-tls\nType:    <none>\nThe Secret does not exist.\n"
        );
    }

    #[test]
    fn public_keys_are_named_like_key_specs() {
        let ca = TestCa::root("Root");
        for spec in [
            KeySpec::Ecdsa(EcCurve::P256),
            KeySpec::Rsa { bits: 2048 },
            KeySpec::Ed25519,
        ] {
            let key = generate(&spec).unwrap();
            let pem = ca.issue(&key, &LeafOptions::dns(&["a.example"]));
            let chain = parse_chain(&pem).unwrap();
            let report = describe_chain(&chain.certs_der, &[]).unwrap();
            assert_eq!(report[0].public_key, spec.to_string());
        }
    }
}
