//! `Certificate`: a wanted certificate (names, key, lifetime) and the Secret it is kept in.

// Several `printcolumn(...)` entries repeat `type_ = ...`; clippy reads them as duplicates.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::validation as v;

/// A certificate to obtain from an Issuer and keep, renewed, in a `kubernetes.io/tls` Secret.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "ferrocert.dev",
    version = "v1alpha1",
    kind = "Certificate",
    namespaced,
    status = "CertificateStatus",
    shortname = "fcert",
    shortname = "fcerts",
    category = "ferrocert",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(name = "Secret", type_ = "string", json_path = ".spec.secretName"),
    printcolumn(name = "Issuer", type_ = "string", json_path = ".spec.issuerRef.name"),
    printcolumn(
        name = "Used Issuer",
        type_ = "string",
        json_path = ".status.issuerRef.name",
        priority = "1"
    ),
    printcolumn(name = "Expires", type_ = "string", json_path = ".status.notAfter"),
    printcolumn(
        name = "Renewal",
        type_ = "date",
        json_path = ".status.renewalTime",
        priority = "1"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].reason"#,
        priority = "1"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = v::has_identifier_rule(),
    validation = v::renew_before_exclusive_rule(),
    validation = v::renew_before_shorter_than_duration_rule(),
    validation = v::ca_needs_subject_rule(),
    validation = v::one_issuer_field_rule()
)]
pub struct CertificateSpec {
    /// The Secret (in this namespace) that receives `tls.crt`, `tls.key` and `ca.crt`.
    #[x_kube(validation = v::object_name_rule("secretName"))]
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,

    /// DNS subject alternative names. `*.example.com` asks for a wildcard (DNS-01 only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(length(max = 253)))]
    #[x_kube(validation = v::dns_names_rule())]
    pub dns_names: Vec<String>,

    /// IP address subject alternative names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(length(max = 45)))]
    #[x_kube(validation = v::ip_addresses_rule())]
    pub ip_addresses: Vec<String>,

    /// The subject Common Name; it is added to the SANs too, as ACME CAs require.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub common_name: Option<String>,

    /// Make the certificate a CA (basicConstraints CA:TRUE, keyUsage `cert sign` added). Only
    /// the `selfSigned` and `ca` issuers honour it; ACME CAs never issue CA certificates.
    #[serde(default, rename = "isCA", skip_serializing_if = "Option::is_none")]
    pub is_ca: Option<bool>,

    /// Key usages and extended key usages, with cert-manager's names (default `digital
    /// signature`, `key encipherment`). Honoured by the `selfSigned` and `ca` issuers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 23))]
    #[x_kube(validation = v::unique_items_rule("usages"))]
    pub usages: Vec<KeyUsage>,

    /// Subject fields besides the common name. Honoured by the `selfSigned` and `ca` issuers
    /// (ACME CAs put only names they validated into a certificate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<X509Subject>,

    /// Requested lifetime (Go duration, e.g. `2160h`); CAs may ignore it. At least 1h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(
        validation = v::go_duration_rule("duration"),
        validation = v::min_duration_rule("duration", "1h")
    )]
    pub duration: Option<String>,

    /// Renew this long before expiry (Go duration). Must be shorter than `duration`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(
        validation = v::go_duration_rule("renewBefore"),
        validation = v::min_duration_rule("renewBefore", "5m")
    )]
    pub renew_before: Option<String>,

    /// Renew when this percentage of the lifetime remains (1–99).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 99))]
    pub renew_before_percentage: Option<i32>,

    /// The private key to generate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<PrivateKeySpec>,

    /// The Issuer or ClusterIssuer that obtains the certificate. Set this or `issuerRefs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_ref: Option<IssuerRef>,

    /// Issuers to try in order (ferrocert's own field; cert-manager has none). An attempt that
    /// fails for a reason that is the CA's (unreachable, 5xx, rate limited, `serverInternal`, or
    /// the issuer not Ready because its account registration failed) moves to the next issuer at
    /// once; after the last, back to the first with the usual backoff. Every renewal starts
    /// with the first. Set this or `issuerRef`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(min = 1, max = 5))]
    #[x_kube(validation = v::unique_issuer_refs_rule())]
    pub issuer_refs: Vec<IssuerRef>,

    /// Labels and annotations copied onto the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_template: Option<SecretTemplate>,

    /// Revoke the current certificate at the CA when this Certificate is deleted (with reason
    /// `cessationOfOperation`). Off by default: the Secret outlives the Certificate and may
    /// still be serving traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_on_delete: Option<bool>,

    /// The ACME profile to ask for (e.g. `tlsserver`, `shortlived`); overrides the issuer's
    /// `acme.profile`. Must be one the CA's directory advertises.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub profile: Option<String>,

    /// What to do with a valid certificate in the Secret that ferrocert did not issue (from
    /// cert-manager, or handed over with the `ferrocert.dev/certificate-name` annotation).
    /// `false` (default): adopt it while it satisfies the spec, and renew it on schedule with
    /// this issuer. `true`: issue a new one now. A certificate ferrocert issued through another of
    /// its issuers (`issuerRef` changed) is re-issued either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reissue_on_issuer_change: Option<bool>,

    /// More encodings of the key and chain in the Secret (cert-manager's names): `CombinedPEM`
    /// writes `tls-combined.pem` (the `tls.key` PEM, a newline, then the `tls.crt` chain), `DER`
    /// writes `key.der` (the DER body of `tls.key`, so in the encoding `privateKey.encoding` asks
    /// for). Each type at most once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 2))]
    #[x_kube(validation = v::unique_output_formats_rule())]
    pub additional_output_formats: Vec<AdditionalOutputFormat>,

    /// Java and PKCS#12 keystores in the Secret, encrypted with a password from a Secret of this
    /// namespace (cert-manager's `keystores`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keystores: Option<CertificateKeystores>,
}

/// One additional output format (cert-manager's `CertificateAdditionalOutputFormat`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AdditionalOutputFormat {
    /// `CombinedPEM` (`tls-combined.pem`) or `DER` (`key.der`).
    #[serde(rename = "type")]
    pub type_: OutputFormatType,
}

/// The additional output formats cert-manager defines.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(clippy::upper_case_acronyms)]
pub enum OutputFormatType {
    /// `key.der`: the private key in DER, in the encoding of `tls.key`.
    DER,
    /// `tls-combined.pem`: `tls.key`, a newline, then `tls.crt`.
    CombinedPEM,
}

/// The keystores written into the Secret besides `tls.crt` and `tls.key`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CertificateKeystores {
    /// A Java KeyStore: `keystore.jks` (the key and chain under `alias`, and `ca.crt` as the
    /// trusted entry `ca` when there is one) and `truststore.jks` (`ca.crt`, when there is one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jks: Option<JksKeystore>,
    /// A PKCS#12 file: `keystore.p12` (the key and chain, plus `ca.crt` when there is one) and
    /// `truststore.p12` (`ca.crt`, when there is one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkcs12: Option<Pkcs12Keystore>,
}

/// `keystore.jks` and `truststore.jks`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = v::keystore_password_required_rule("jks"))]
pub struct JksKeystore {
    /// Write the keystore. `false` keeps the block without effect.
    pub create: bool,
    /// The key of a Secret in this namespace holding the keystore password (ASCII, at least 6
    /// characters, as Java's `keytool` requires). Required when `create` is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<KeystorePasswordSecretRef>,
    /// The alias of the key entry (default `certificate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub alias: Option<String>,
}

/// `keystore.p12` and `truststore.p12`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = v::keystore_password_required_rule("pkcs12"))]
pub struct Pkcs12Keystore {
    /// Write the keystore. `false` keeps the block without effect.
    pub create: bool,
    /// The key of a Secret in this namespace holding the keystore password (UTF-8). Required
    /// when `create` is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<KeystorePasswordSecretRef>,
    /// The encryption and MAC algorithms: `LegacyRC2` (default, as in cert-manager; OpenSSL 3
    /// opens it only with `-legacy`), `LegacyDES` (3DES, SHA-1 MAC: opened by nearly everything)
    /// or `Modern2023` (PBES2 with AES-256-CBC and PBKDF2-HMAC-SHA-256, SHA-256 MAC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Pkcs12Profile>,
}

/// cert-manager's PKCS#12 profiles.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default,
)]
pub enum Pkcs12Profile {
    #[default]
    LegacyRC2,
    LegacyDES,
    Modern2023,
}

/// The Secret key holding a keystore password. The Secret is always in the Certificate's own
/// namespace (there is no namespace field): a Certificate can only use passwords its author
/// can already put there.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct KeystorePasswordSecretRef {
    /// Name of the Secret.
    #[x_kube(validation = v::object_name_rule("passwordSecretRef.name"))]
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret's data.
    #[x_kube(validation = v::secret_data_key_rule("passwordSecretRef.key"))]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// The private key to generate for the certificate.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = v::key_size_rule(), validation = v::ed25519_encoding_rule())]
pub struct PrivateKeySpec {
    /// `ECDSA` (default), `RSA` or `Ed25519`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<PrivateKeyAlgorithm>,
    /// Key size: RSA 2048 (default), 3072 or 4096; ECDSA 256 (default) or 384. Ed25519 takes none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i32>,
    /// `PKCS1` (default; SEC1 for ECDSA) or `PKCS8`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<PrivateKeyEncoding>,
    /// `Always` (default): a new key for every issuance. `Never`: keep the Secret's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_policy: Option<RotationPolicy>,
}

#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default,
)]
#[allow(clippy::upper_case_acronyms)]
pub enum PrivateKeyAlgorithm {
    #[default]
    ECDSA,
    RSA,
    Ed25519,
}

#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default,
)]
pub enum PrivateKeyEncoding {
    #[default]
    PKCS1,
    PKCS8,
}

#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default,
)]
pub enum RotationPolicy {
    #[default]
    Always,
    Never,
}

/// The subject's distinguished name, besides `commonName` (cert-manager's `X509Subject`). One
/// value per attribute: the signer (rcgen) keeps one value per attribute type.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct X509Subject {
    /// Organization (O).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1), inner(length(min = 1, max = 64)))]
    pub organizations: Vec<String>,
    /// Country (C): an ISO 3166 two-letter code such as `DE`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1))]
    #[x_kube(validation = v::countries_rule())]
    pub countries: Vec<String>,
    /// Organizational unit (OU).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1), inner(length(min = 1, max = 64)))]
    pub organizational_units: Vec<String>,
    /// Locality (L).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1), inner(length(min = 1, max = 128)))]
    pub localities: Vec<String>,
    /// State or province (ST).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1), inner(length(min = 1, max = 128)))]
    pub provinces: Vec<String>,
    /// Street address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1), inner(length(min = 1, max = 128)))]
    pub street_addresses: Vec<String>,
    /// Postal code.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1), inner(length(min = 1, max = 40)))]
    pub postal_codes: Vec<String>,
    /// The subject's serialNumber attribute (not the certificate's serial).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub serial_number: Option<String>,
}

/// A key usage or extended key usage, spelled as cert-manager spells it.
#[derive(
    schemars::JsonSchema,
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
)]
pub enum KeyUsage {
    #[serde(rename = "signing")]
    Signing,
    #[serde(rename = "digital signature")]
    DigitalSignature,
    #[serde(rename = "content commitment")]
    ContentCommitment,
    #[serde(rename = "key encipherment")]
    KeyEncipherment,
    #[serde(rename = "key agreement")]
    KeyAgreement,
    #[serde(rename = "data encipherment")]
    DataEncipherment,
    #[serde(rename = "cert sign")]
    CertSign,
    #[serde(rename = "crl sign")]
    CrlSign,
    #[serde(rename = "encipher only")]
    EncipherOnly,
    #[serde(rename = "decipher only")]
    DecipherOnly,
    #[serde(rename = "any")]
    Any,
    #[serde(rename = "server auth")]
    ServerAuth,
    #[serde(rename = "client auth")]
    ClientAuth,
    #[serde(rename = "code signing")]
    CodeSigning,
    #[serde(rename = "email protection")]
    EmailProtection,
    #[serde(rename = "s/mime")]
    Smime,
    #[serde(rename = "ipsec end system")]
    IpsecEndSystem,
    #[serde(rename = "ipsec tunnel")]
    IpsecTunnel,
    #[serde(rename = "ipsec user")]
    IpsecUser,
    #[serde(rename = "timestamping")]
    Timestamping,
    #[serde(rename = "ocsp signing")]
    OcspSigning,
    #[serde(rename = "microsoft sgc")]
    MicrosoftSgc,
    #[serde(rename = "netscape sgc")]
    NetscapeSgc,
}

impl CertificateSpec {
    /// The issuers to use, in order: `issuerRefs`, or `issuerRef` alone.
    pub fn issuer_list(&self) -> &[IssuerRef] {
        match &self.issuer_ref {
            Some(r) if self.issuer_refs.is_empty() => std::slice::from_ref(r),
            _ => &self.issuer_refs,
        }
    }
}

impl Certificate {
    /// The index (in [`CertificateSpec::issuer_list`]) of the issuer of the attempt in flight,
    /// or else of the current certificate: `status.issuerIndex`, 0 when unset or out of range.
    pub fn issuer_index(&self) -> usize {
        let len = self.spec.issuer_list().len();
        self.status
            .as_ref()
            .and_then(|s| s.issuer_index)
            .and_then(|i| usize::try_from(i).ok())
            .filter(|i| *i < len)
            .unwrap_or(0)
    }

    /// The issuer reference in use (see [`Certificate::issuer_index`]), if the spec names any.
    pub fn current_issuer_ref(&self) -> Option<&IssuerRef> {
        self.spec.issuer_list().get(self.issuer_index())
    }
}

impl IssuerRef {
    /// Whether this reference names the issuer of `kind` called `name`.
    pub fn names(&self, kind: IssuerKind, name: &str) -> bool {
        self.kind.unwrap_or_default() == kind && self.name == name
    }
}

/// A reference to an Issuer in the Certificate's namespace, or to a ClusterIssuer.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct IssuerRef {
    /// Name of the Issuer or ClusterIssuer.
    #[x_kube(validation = v::object_name_rule("issuerRef.name"))]
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// `Issuer` (default) or `ClusterIssuer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<IssuerKind>,
    /// API group; only `ferrocert.dev`. Accepted so ported manifests keep their shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    #[x_kube(validation = v::issuer_group_rule())]
    pub group: Option<String>,
}

#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default,
)]
pub enum IssuerKind {
    #[default]
    Issuer,
    ClusterIssuer,
}

/// Labels and annotations for the Secret.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SecretTemplate {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Observed state of a Certificate, including the ACME order in flight, so that
/// `kubectl describe fcert` tells the whole story of an issuance.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CertificateStatus {
    /// `Ready` (the Secret holds a valid certificate for the spec) and `Issuing`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Start of the current certificate's validity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<Time>,
    /// End of the current certificate's validity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<Time>,
    /// When the controller will renew.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewal_time: Option<Time>,
    /// Incremented at every successful issuance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    /// When the last issuance attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_time: Option<Time>,
    /// Consecutive failed issuance attempts; drives the backoff and survives restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_issuance_attempts: Option<i64>,
    /// The Secret holding the private key of the issuance in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_private_key_secret_name: Option<String>,
    /// The ACME order in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<OrderStatus>,
    /// The ACME profile the current certificate was issued under, as the CA's order said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The CA's renewal window for the current certificate (ACME Renewal Information).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewal_info: Option<RenewalInfoStatus>,
    /// The certificate in the Secret when ferrocert adopted it instead of issuing one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopted: Option<AdoptedStatus>,
    /// The last revocation of a certificate of this Certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation: Option<RevocationStatus>,
    /// The issuer of the attempt in flight or, when none is, of the current certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_ref: Option<IssuerRef>,
    /// The 0-based index of `issuerRef` in the spec's `issuerRefs` (0 with `spec.issuerRef`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_index: Option<i32>,
}

/// ACME Renewal Information (RFC 9773) for the current certificate.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RenewalInfoStatus {
    /// The ARI identifier (`base64url(AKI).base64url(serial)`) of the certificate the window is for.
    pub certificate_id: String,
    /// Start of the CA's suggested renewal window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_start: Option<Time>,
    /// End of the CA's suggested renewal window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_end: Option<Time>,
    /// The CA's explanation of the window, if it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(rename = "explanationURL")]
    pub explanation_url: Option<String>,
    /// When the window was last fetched (or the fetch failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_checked: Option<Time>,
    /// When the window will be fetched again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_check: Option<Time>,
    /// Why the last fetch failed; renewal then uses the spec's time (`renewBefore` etc.).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A certificate ferrocert found in the Secret and kept (see `reissueOnIssuerChange`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AdoptedStatus {
    /// Serial number (hex) of the adopted certificate.
    pub serial: String,
    /// Its issuer's Common Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The issuer named by the Secret's own annotations (e.g. cert-manager's
    /// `cert-manager.io/issuer-name`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_issuer_ref: Option<String>,
    /// When it was adopted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopted_at: Option<Time>,
}

/// A revocation: requested with `ferrocert revoke`, or on deletion with `revokeOnDelete`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RevocationStatus {
    /// Serial number (hex) of the certificate revoked (or being revoked).
    pub serial: String,
    /// RFC 5280 reason, e.g. `keyCompromise`.
    pub reason: String,
    /// When the CA accepted the revocation; absent while it has not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Time>,
    /// The `ferrocert.dev/revoke-requested` annotation value this revocation answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    /// Failed attempts so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_attempts: Option<i32>,
    /// When the last attempt failed; the next waits out a backoff from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_time: Option<Time>,
    /// The CA's (or the network's) error of the last failed attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An ACME order, as last seen.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct OrderStatus {
    /// The order URL at the CA; a restart resumes this order.
    pub url: String,
    /// The order's state at the CA, as last seen.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "unknown_as_none"
    )]
    pub state: Option<OrderState>,
    /// One entry per identifier.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorizations: Vec<OrderAuthorization>,
    /// The CA's error for the order, if any (problem type and detail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The profile of the order, as the CA reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The ARI identifier of the certificate this order replaces, as the CA reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
}

/// One authorization of an order and the challenge chosen for it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct OrderAuthorization {
    /// The DNS name or IP address.
    pub identifier: String,
    /// Whether the identifier is a wildcard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wildcard: Option<bool>,
    /// The authorization URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The challenge chosen.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "unknown_as_none"
    )]
    pub challenge_type: Option<ChallengeKind>,
    /// The challenge URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge_url: Option<String>,
    /// The challenge token (public; it is served over plain HTTP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The key authorization served for HTTP-01 (token and account key thumbprint; public).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_authorization: Option<String>,
    /// The challenge's state: the CA's, or `presented` (our side is ready, the CA not yet told).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "unknown_as_none"
    )]
    pub state: Option<ChallengeState>,
    /// DNS-01: the name the TXT record was written at (after following CNAMEs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_name: Option<String>,
    /// DNS-01: the TXT value written (public: it is published in DNS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_value: Option<String>,
    /// DNS-01: propagation checks made so far without the record being visible everywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagation_checks: Option<i32>,
    /// The CA's error for this challenge (problem type and detail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A recorded state that this version does not know (a value stored before the schema listed the
/// values, or by a newer version) reads as `None`, as if not recorded, instead of failing to
/// deserialize: one such Certificate would otherwise break the watch of every Certificate.
fn unknown_as_none<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = Option::<serde_json::Value>::deserialize(deserializer)?;
    Ok(value.and_then(|v| serde_json::from_value(v).ok()))
}

/// An ACME order's state (RFC 8555, section 7.1.6).
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OrderState {
    Pending,
    Ready,
    Processing,
    Valid,
    Invalid,
}

impl OrderState {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::Pending => "pending",
            OrderState::Ready => "ready",
            OrderState::Processing => "processing",
            OrderState::Valid => "valid",
            OrderState::Invalid => "invalid",
        }
    }
}

/// A challenge's state as recorded: the CA's challenge or authorization state, plus `presented`
/// (our side answers, the CA not yet told).
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ChallengeState {
    Pending,
    Presented,
    Processing,
    Valid,
    Invalid,
    Revoked,
    Expired,
    Deactivated,
}

impl ChallengeState {
    pub fn as_str(self) -> &'static str {
        match self {
            ChallengeState::Pending => "pending",
            ChallengeState::Presented => "presented",
            ChallengeState::Processing => "processing",
            ChallengeState::Valid => "valid",
            ChallengeState::Invalid => "invalid",
            ChallengeState::Revoked => "revoked",
            ChallengeState::Expired => "expired",
            ChallengeState::Deactivated => "deactivated",
        }
    }
}

/// The ACME challenge type chosen for an authorization.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChallengeKind {
    #[serde(rename = "http-01")]
    Http01,
    #[serde(rename = "dns-01")]
    Dns01,
}

impl ChallengeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChallengeKind::Http01 => "http-01",
            ChallengeKind::Dns01 => "dns-01",
        }
    }
}

impl std::fmt::Display for ChallengeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An owner reference to a Certificate, for the objects made on its behalf.
pub fn owner_reference(
    cert: &Certificate,
) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference> {
    kube::Resource::controller_owner_ref(cert, &()).map(|o| {
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            block_owner_deletion: Some(false),
            ..o
        }
    })
}

#[cfg(test)]
mod state_tests {
    use super::*;

    #[test]
    fn an_unknown_recorded_state_reads_as_not_recorded_and_keeps_the_rest() {
        let authz: OrderAuthorization = serde_json::from_value(serde_json::json!({
            "identifier": "a.example",
            "state": "halfway",
            "challengeType": "tls-alpn-01",
            "token": "t1"
        }))
        .expect("deserializes");
        assert_eq!(authz.state, None);
        assert_eq!(authz.challenge_type, None);
        assert_eq!(authz.token.as_deref(), Some("t1"));
        let order: OrderStatus = serde_json::from_value(serde_json::json!({
            "url": "https://ca.test/order/1",
            "state": 7
        }))
        .expect("deserializes");
        assert_eq!(order.state, None);
    }

    #[test]
    fn known_states_round_trip_as_their_acme_names() {
        let authz = OrderAuthorization {
            identifier: "a.example".into(),
            state: Some(ChallengeState::Presented),
            challenge_type: Some(ChallengeKind::Dns01),
            ..OrderAuthorization::default()
        };
        let json = serde_json::to_value(&authz).expect("serializes");
        assert_eq!(json["state"], "presented");
        assert_eq!(json["challengeType"], "dns-01");
        let back: OrderAuthorization = serde_json::from_value(json).expect("deserializes");
        assert_eq!(back, authz);
        let order: OrderStatus = serde_json::from_value(serde_json::json!({
            "url": "u", "state": "processing"
        }))
        .expect("deserializes");
        assert_eq!(order.state, Some(OrderState::Processing));
    }
}
