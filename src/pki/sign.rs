//! Signing certificates here instead of at an ACME CA: the `selfSigned` issuer (each certificate
//! signed by its own key) and the `ca` issuer (signed with a CA key pair read from a Secret).
//!
//! Pure, like the rest of [`crate::pki`]: [`load_ca`] decides whether a Secret's `tls.crt` and
//! `tls.key` are a usable CA, [`sign`] builds and signs a certificate from a Certificate's spec,
//! and [`issued_matches_spec`] tells whether a certificate signed earlier still says what the spec
//! asks (isCA, subject, usages). Messages never carry key material.

use std::net::IpAddr;

use jiff::{SignedDuration, Timestamp};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose, SanType, SerialNumber,
};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use super::PkiError;
use super::chain::{ParsedLeaf, parse_chain};
use super::csr::{Identifier, identifiers};
use super::key::{PrivateKey, encode_pem, parse_pem};
use super::renewal::parse_go_duration;
use crate::api::validation::DEFAULT_DURATION;
use crate::api::{CertificateSpec, KeyUsage};

const OID_STREET_ADDRESS: &[u64] = &[2, 5, 4, 9];
const OID_POSTAL_CODE: &[u64] = &[2, 5, 4, 17];
const OID_SERIAL_NUMBER: &[u64] = &[2, 5, 4, 5];

/// A CA key pair that passed [`load_ca`]: its certificate is a CA allowed to sign certificates,
/// still valid, and the key is its key.
#[derive(Clone)]
pub struct SigningCa {
    /// The CA certificate (the first of `tls.crt`), DER.
    pub cert_der: Vec<u8>,
    /// The whole of `tls.crt` re-encoded (the CA, then its own chain if it is an intermediate):
    /// appended to each signed leaf.
    pub chain_pem: String,
    /// The top of that chain: what goes into the signed Secrets' `ca.crt`.
    pub top_pem: String,
    key: PrivateKey,
    /// SHA-256 of [`Self::cert_der`], lowercase hex: recorded on each Secret it signs, so a
    /// rotated CA is noticed.
    pub fingerprint: String,
    /// The CA's subject, RFC 4514 style.
    pub subject: String,
    pub not_after: Timestamp,
}

impl std::fmt::Debug for SigningCa {
    /// Without the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningCa")
            .field("subject", &self.subject)
            .field("fingerprint", &self.fingerprint)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// Why a Secret cannot be used as a CA. The texts name the certificate by its subject, never the
/// key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CaProblem {
    #[error("tls.crt holds no usable certificate: {0}")]
    NoCertificate(String),
    #[error("tls.key holds no usable private key: {0}")]
    NoKey(String),
    #[error("the certificate {subject} is not a CA: it lacks basicConstraints CA:TRUE")]
    NotCa { subject: String },
    #[error(
        "the certificate {subject} may not sign certificates: its keyUsage lacks keyCertSign \
         (openssl: -addext keyUsage=critical,keyCertSign,cRLSign)"
    )]
    NoCertSign { subject: String },
    #[error("tls.key is not the private key of the certificate {subject}")]
    KeyMismatch { subject: String },
    #[error("the CA certificate {subject} expired at {not_after}")]
    Expired {
        subject: String,
        not_after: Timestamp,
    },
}

impl CaProblem {
    /// A condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            CaProblem::NoCertificate(_) | CaProblem::NoKey(_) => "InvalidCASecret",
            CaProblem::NotCa { .. } | CaProblem::NoCertSign { .. } => "NotACA",
            CaProblem::KeyMismatch { .. } => "CAKeyMismatch",
            CaProblem::Expired { .. } => "CAExpired",
        }
    }
}

/// Checks a CA Secret's `tls.crt` and `tls.key` at `now`: the first certificate must be a CA
/// (basicConstraints CA:TRUE) whose keyUsage includes keyCertSign (RFC 5280 4.2.1.3: CAs must
/// carry it), not expired, and `tls.key` its key.
pub fn load_ca(
    crt_pem: Option<&str>,
    key_pem: Option<&str>,
    now: Timestamp,
) -> Result<SigningCa, CaProblem> {
    let crt_pem = crt_pem.ok_or_else(|| CaProblem::NoCertificate("missing".into()))?;
    let chain = parse_chain(crt_pem).map_err(|e| CaProblem::NoCertificate(e.to_string()))?;
    let cert_der = chain.certs_der.first().cloned().unwrap_or_default();
    let (_, x509) = X509Certificate::from_der(&cert_der)
        .map_err(|e| CaProblem::NoCertificate(e.to_string()))?;
    let subject = x509.subject().to_string();
    let is_ca = x509
        .basic_constraints()
        .ok()
        .flatten()
        .is_some_and(|bc| bc.value.ca);
    if !is_ca {
        return Err(CaProblem::NotCa { subject });
    }
    let cert_sign = x509
        .key_usage()
        .ok()
        .flatten()
        .is_some_and(|ku| ku.value.key_cert_sign());
    if !cert_sign {
        return Err(CaProblem::NoCertSign { subject });
    }
    let key_pem = key_pem.ok_or_else(|| CaProblem::NoKey("missing".into()))?;
    let key = parse_pem(key_pem).map_err(|e| CaProblem::NoKey(e.to_string()))?;
    if !super::key_matches_leaf(&key, &chain.leaf) {
        return Err(CaProblem::KeyMismatch { subject });
    }
    if now >= chain.leaf.not_after {
        return Err(CaProblem::Expired {
            subject,
            not_after: chain.leaf.not_after,
        });
    }
    let top_der = chain.certs_der.last().cloned().unwrap_or_default();
    Ok(SigningCa {
        fingerprint: sha256_hex(&cert_der),
        chain_pem: chain.pem,
        top_pem: encode_pem("CERTIFICATE", top_der),
        cert_der,
        key,
        subject,
        not_after: chain.leaf.not_after,
    })
}

/// SHA-256 of `der`, lowercase hex.
pub fn sha256_hex(der: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Who signs.
#[derive(Clone, Copy, Debug)]
pub enum Signer<'a> {
    /// The certificate's own key (issuer = subject).
    SelfSigned,
    Ca(&'a SigningCa),
}

/// A signed certificate, ready for the TLS Secret.
#[derive(Clone, Debug)]
pub struct Signed {
    /// `tls.crt`: the leaf, then the CA's chain (nothing more when self-signed).
    pub chain_pem: String,
    /// `ca.crt`: the CA chain's top certificate, or the certificate itself when self-signed.
    pub ca_pem: String,
    pub leaf: ParsedLeaf,
}

/// The spec as the local issuers read it: the common name is a subject attribute, and it is
/// also a SAN only when it is a host name or an IP (so a CA's `commonName: Example Root CA` is
/// not written, or later expected, as a DNS name).
pub fn local_view(spec: &CertificateSpec) -> CertificateSpec {
    let mut view = spec.clone();
    if view
        .common_name
        .as_deref()
        .is_some_and(|cn| !is_host_or_ip(cn))
    {
        view.common_name = None;
    }
    view
}

fn is_host_or_ip(value: &str) -> bool {
    if value.parse::<IpAddr>().is_ok() {
        return true;
    }
    let name = value.strip_prefix("*.").unwrap_or(value);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// The subject attributes the spec asks for, in order: (OID, value).
fn wanted_subject(spec: &CertificateSpec) -> Vec<(Vec<u64>, String)> {
    let mut out = Vec::new();
    let mut add = |oid: &[u64], values: &[String]| {
        for v in values.iter().take(1) {
            out.push((oid.to_vec(), v.clone()));
        }
    };
    if let Some(s) = &spec.subject {
        add(&[2, 5, 4, 6], &s.countries);
        add(&[2, 5, 4, 8], &s.provinces);
        add(&[2, 5, 4, 7], &s.localities);
        add(OID_STREET_ADDRESS, &s.street_addresses);
        add(OID_POSTAL_CODE, &s.postal_codes);
        add(&[2, 5, 4, 10], &s.organizations);
        add(&[2, 5, 4, 11], &s.organizational_units);
        add(OID_SERIAL_NUMBER, s.serial_number.as_slice());
    }
    if let Some(cn) = spec.common_name.as_deref().filter(|cn| !cn.is_empty()) {
        out.push((vec![2, 5, 4, 3], cn.to_string()));
    }
    out
}

fn distinguished_name(spec: &CertificateSpec) -> Result<DistinguishedName, PkiError> {
    let mut dn = DistinguishedName::new();
    for (oid, value) in wanted_subject(spec) {
        let printable = |v: &str| {
            rcgen::string::PrintableString::try_from(v)
                .map(DnValue::PrintableString)
                .map_err(|e| PkiError::Signing(format!("subject value {v:?}: {e}")))
        };
        match oid.as_slice() {
            [2, 5, 4, 6] => dn.push(DnType::CountryName, printable(&value)?),
            [2, 5, 4, 5] => dn.push(DnType::CustomDnType(oid), printable(&value)?),
            _ => dn.push(DnType::from_oid(&oid), value),
        }
    }
    Ok(dn)
}

/// Key usages (KU) and extended key usages (EKU) of the spec, cert-manager's defaults
/// (`digital signature`, `key encipherment`) when none is given, `cert sign` added for a CA.
fn wanted_usages(spec: &CertificateSpec) -> (Vec<KeyUsagePurpose>, Vec<ExtendedKeyUsagePurpose>) {
    let mut usages = if spec.usages.is_empty() {
        vec![KeyUsage::DigitalSignature, KeyUsage::KeyEncipherment]
    } else {
        spec.usages.clone()
    };
    if spec.is_ca == Some(true) {
        usages.push(KeyUsage::CertSign);
    }
    let mut ku = Vec::new();
    let mut eku = Vec::new();
    for usage in usages {
        use ExtendedKeyUsagePurpose as E;
        use KeyUsagePurpose as K;
        match usage {
            KeyUsage::Signing | KeyUsage::DigitalSignature => ku.push(K::DigitalSignature),
            KeyUsage::ContentCommitment => ku.push(K::ContentCommitment),
            KeyUsage::KeyEncipherment => ku.push(K::KeyEncipherment),
            KeyUsage::KeyAgreement => ku.push(K::KeyAgreement),
            KeyUsage::DataEncipherment => ku.push(K::DataEncipherment),
            KeyUsage::CertSign => ku.push(K::KeyCertSign),
            KeyUsage::CrlSign => ku.push(K::CrlSign),
            KeyUsage::EncipherOnly => ku.push(K::EncipherOnly),
            KeyUsage::DecipherOnly => ku.push(K::DecipherOnly),
            KeyUsage::Any => eku.push(E::Any),
            KeyUsage::ServerAuth => eku.push(E::ServerAuth),
            KeyUsage::ClientAuth => eku.push(E::ClientAuth),
            KeyUsage::CodeSigning => eku.push(E::CodeSigning),
            KeyUsage::EmailProtection | KeyUsage::Smime => eku.push(E::EmailProtection),
            KeyUsage::IpsecEndSystem => eku.push(E::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 5])),
            KeyUsage::IpsecTunnel => eku.push(E::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 6])),
            KeyUsage::IpsecUser => eku.push(E::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 7])),
            KeyUsage::Timestamping => eku.push(E::TimeStamping),
            KeyUsage::OcspSigning => eku.push(E::OcspSigning),
            KeyUsage::MicrosoftSgc => eku.push(E::Other(vec![1, 3, 6, 1, 4, 1, 311, 10, 3, 3])),
            KeyUsage::NetscapeSgc => eku.push(E::Other(vec![2, 16, 840, 1, 113730, 4, 1])),
        }
    }
    ku.sort_by_key(|k| format!("{k:?}"));
    ku.dedup();
    eku.dedup();
    (ku, eku)
}

/// The wanted lifetime: `duration`, else 90 days.
pub fn wanted_duration(spec: &CertificateSpec) -> Result<SignedDuration, PkiError> {
    parse_go_duration(spec.duration.as_deref().unwrap_or(DEFAULT_DURATION))
}

/// What an issuer's policy adds to a signature: the longest lifetime (caps the default
/// `duration`), and for a CA the path length and name constraints written into it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SigningLimits {
    pub max_duration: Option<SignedDuration>,
    pub ca: Option<CaConstraints>,
}

/// basicConstraints path length and RFC 5280 name constraints for a CA certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CaConstraints {
    pub path_length: u8,
    pub permitted_dns_domains: Vec<String>,
    pub excluded_dns_domains: Vec<String>,
    pub permitted_ip_ranges: Vec<ipnet::IpNet>,
}

/// Builds the certificate the spec asks for, for `key`, and signs it: valid from `now` for
/// `duration` (never past the signing CA's own `notAfter`), with a random 128-bit serial.
pub fn sign(
    spec: &CertificateSpec,
    key: &PrivateKey,
    signer: Signer<'_>,
    now: Timestamp,
) -> Result<Signed, PkiError> {
    sign_within(spec, key, signer, now, &SigningLimits::default())
}

/// [`sign`] within an issuer policy's limits.
pub fn sign_within(
    spec: &CertificateSpec,
    key: &PrivateKey,
    signer: Signer<'_>,
    now: Timestamp,
    limits: &SigningLimits,
) -> Result<Signed, PkiError> {
    let view = local_view(spec);
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(spec)?;
    params.subject_alt_names = identifiers(&view)?
        .into_iter()
        .map(|id| match id {
            Identifier::Dns(name) => name
                .clone()
                .try_into()
                .map(SanType::DnsName)
                .map_err(|e| PkiError::Signing(format!("DNS name {name:?}: {e}"))),
            Identifier::Ip(ip) => Ok(SanType::IpAddress(ip)),
        })
        .collect::<Result<_, _>>()?;
    params.is_ca = match (spec.is_ca == Some(true), limits.ca.as_ref()) {
        (true, None) => IsCa::Ca(BasicConstraints::Unconstrained),
        (true, Some(ca)) => {
            params.name_constraints = name_constraints(ca);
            IsCa::Ca(BasicConstraints::Constrained(ca.path_length))
        }
        (false, _) => IsCa::ExplicitNoCa,
    };
    (params.key_usages, params.extended_key_usages) = wanted_usages(spec);
    let now = Timestamp::from_second(now.as_second())
        .map_err(|e| PkiError::Signing(format!("the current time: {e}")))?;
    let mut lifetime = wanted_duration(spec)?;
    if let Some(max) = limits.max_duration {
        lifetime = lifetime.min(max);
    }
    let mut not_after = now
        .checked_add(lifetime)
        .map_err(|e| PkiError::Signing(format!("notAfter out of range: {e}")))?;
    if let Signer::Ca(ca) = signer {
        not_after = not_after.min(ca.not_after);
    }
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + since_epoch(now)?;
    params.not_after = epoch + since_epoch(not_after)?;
    let mut serial: [u8; 16] = rand::random();
    serial[0] &= 0x7f;
    serial[0] |= 0x01;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    let key_pair = key.to_rcgen_key_pair()?;
    let failed = |e: rcgen::Error| PkiError::Signing(e.to_string());
    let (cert, chain_pem, ca_pem) = match signer {
        Signer::SelfSigned => {
            let cert = params.self_signed(&key_pair).map_err(failed)?;
            let pem = encode_pem("CERTIFICATE", cert.der().to_vec());
            (cert, pem.clone(), pem)
        }
        Signer::Ca(ca) => {
            let ca_key = ca.key.to_rcgen_key_pair()?;
            let issuer = rcgen::Issuer::from_ca_cert_der(
                &rustls_pki_types::CertificateDer::from(ca.cert_der.as_slice()),
                ca_key,
            )
            .map_err(failed)?;
            params.use_authority_key_identifier_extension = true;
            let cert = params.signed_by(&key_pair, &issuer).map_err(failed)?;
            let pem = encode_pem("CERTIFICATE", cert.der().to_vec());
            (cert, format!("{pem}{}", ca.chain_pem), ca.top_pem.clone())
        }
    };
    Ok(Signed {
        leaf: ParsedLeaf::from_der(cert.der())?,
        chain_pem,
        ca_pem,
    })
}

/// The name constraints extension of a constrained CA, `None` when it constrains no names.
fn name_constraints(ca: &CaConstraints) -> Option<rcgen::NameConstraints> {
    use rcgen::{CidrSubnet, GeneralSubtree};
    let permitted: Vec<GeneralSubtree> = ca
        .permitted_dns_domains
        .iter()
        .map(|d| GeneralSubtree::DnsName(d.clone()))
        .chain(ca.permitted_ip_ranges.iter().map(|net| {
            GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(net.addr(), net.prefix_len()))
        }))
        .collect();
    let excluded: Vec<GeneralSubtree> = ca
        .excluded_dns_domains
        .iter()
        .map(|d| GeneralSubtree::DnsName(d.clone()))
        .collect();
    (!permitted.is_empty() || !excluded.is_empty()).then_some(rcgen::NameConstraints {
        permitted_subtrees: permitted,
        excluded_subtrees: excluded,
    })
}

/// rcgen takes `time` types, which ferrocert does not name: offsets from the epoch instead.
fn since_epoch(ts: Timestamp) -> Result<std::time::Duration, PkiError> {
    let secs = u64::try_from(ts.as_second())
        .map_err(|_| PkiError::Signing(format!("{ts} is before 1970")))?;
    Ok(std::time::Duration::from_secs(secs))
}

/// Whether a certificate signed earlier (`leaf_der`) still says what the spec asks of a local
/// issuer: CA or not, the subject, the key usages and extended key usages. `Err` says what
/// differs. Names, key and validity are checked by [`super::secret_satisfies`].
pub fn issued_matches_spec(spec: &CertificateSpec, leaf_der: &[u8]) -> Result<(), String> {
    let (_, x509) =
        X509Certificate::from_der(leaf_der).map_err(|e| format!("tls.crt does not parse: {e}"))?;
    let is_ca = x509
        .basic_constraints()
        .ok()
        .flatten()
        .is_some_and(|bc| bc.value.ca);
    if is_ca != (spec.is_ca == Some(true)) {
        return Err(if is_ca {
            "the certificate is a CA but the spec does not set isCA".into()
        } else {
            "the spec sets isCA but the certificate is not a CA".into()
        });
    }
    let mut have: Vec<(Vec<u64>, String)> = x509
        .subject()
        .iter_attributes()
        .filter_map(|a| {
            let oid = a.attr_type().iter()?.collect::<Vec<u64>>();
            Some((oid, a.as_str().ok()?.to_string()))
        })
        .collect();
    let mut want = wanted_subject(spec);
    have.sort();
    want.sort();
    if have != want {
        return Err(format!(
            "the certificate's subject {} differs from the spec's",
            x509.subject()
        ));
    }
    let (want_ku, want_eku) = wanted_usages(spec);
    let ku_bits = x509
        .key_usage()
        .ok()
        .flatten()
        .map_or(0, |ku| ku.value.flags);
    if ku_bits != ku_flags(&want_ku) {
        return Err("the certificate's key usages differ from the spec's usages".into());
    }
    let eku = x509.extended_key_usage().ok().flatten().map(|e| e.value);
    let have_eku = |p: &ExtendedKeyUsagePurpose| {
        eku.as_ref().is_some_and(|e| match p {
            ExtendedKeyUsagePurpose::Any => e.any,
            ExtendedKeyUsagePurpose::ServerAuth => e.server_auth,
            ExtendedKeyUsagePurpose::ClientAuth => e.client_auth,
            ExtendedKeyUsagePurpose::CodeSigning => e.code_signing,
            ExtendedKeyUsagePurpose::EmailProtection => e.email_protection,
            ExtendedKeyUsagePurpose::TimeStamping => e.time_stamping,
            ExtendedKeyUsagePurpose::OcspSigning => e.ocsp_signing,
            ExtendedKeyUsagePurpose::Other(oid) => e
                .other
                .iter()
                .any(|o| o.iter().is_some_and(|i| i.eq(oid.iter().copied()))),
        })
    };
    let eku_count = eku.as_ref().map_or(0, |e| {
        [
            e.any,
            e.server_auth,
            e.client_auth,
            e.code_signing,
            e.email_protection,
            e.time_stamping,
            e.ocsp_signing,
        ]
        .iter()
        .filter(|b| **b)
        .count()
            + e.other.len()
    });
    if !want_eku.iter().all(have_eku) || eku_count != want_eku.len() {
        return Err("the certificate's extended key usages differ from the spec's usages".into());
    }
    Ok(())
}

/// The KeyUsage bit string as x509-parser reads it (bit 0 = digitalSignature, LSB first).
fn ku_flags(usages: &[KeyUsagePurpose]) -> u16 {
    usages.iter().fold(0, |acc, u| {
        acc | match u {
            KeyUsagePurpose::DigitalSignature => 1 << 0,
            KeyUsagePurpose::ContentCommitment => 1 << 1,
            KeyUsagePurpose::KeyEncipherment => 1 << 2,
            KeyUsagePurpose::DataEncipherment => 1 << 3,
            KeyUsagePurpose::KeyAgreement => 1 << 4,
            KeyUsagePurpose::KeyCertSign => 1 << 5,
            KeyUsagePurpose::CrlSign => 1 << 6,
            KeyUsagePurpose::EncipherOnly => 1 << 7,
            KeyUsagePurpose::DecipherOnly => 1 << 8,
        }
    })
}

/// Whether `leaf_der` is signed by the CA's key (for a certificate that carries no record of its
/// CA, e.g. one adopted from cert-manager).
pub fn signed_by_ca(leaf_der: &[u8], ca: &SigningCa) -> bool {
    let (Ok((_, leaf)), Ok((_, ca_cert))) = (
        X509Certificate::from_der(leaf_der),
        X509Certificate::from_der(&ca.cert_der),
    ) else {
        return false;
    };
    leaf.issuer().as_raw() == ca_cert.subject().as_raw()
        && leaf.verify_signature(Some(ca_cert.public_key())).is_ok()
}

/// Whether the certificate names itself as its issuer and its own key verifies its signature.
pub fn is_self_issued(leaf_der: &[u8]) -> bool {
    X509Certificate::from_der(leaf_der).is_ok_and(|(_, c)| {
        c.issuer().as_raw() == c.subject().as_raw()
            && c.verify_signature(Some(c.public_key())).is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{PrivateKeyEncoding, X509Subject};
    use crate::pki::test_support::ts;
    use crate::pki::{KeySpec, chain_links, generate};

    const NOW: &str = "2025-01-01T00:00:00Z";

    fn spec(dns: &[&str], cn: Option<&str>) -> CertificateSpec {
        CertificateSpec {
            secret_name: "tls".into(),
            dns_names: dns.iter().map(|s| s.to_string()).collect(),
            common_name: cn.map(str::to_string),
            ..Default::default()
        }
    }

    fn root_spec() -> CertificateSpec {
        let mut s = spec(&[], Some("Example Root CA"));
        s.is_ca = Some(true);
        s.subject = Some(X509Subject {
            organizations: vec!["Example".into()],
            countries: vec!["DE".into()],
            ..Default::default()
        });
        s
    }

    /// A self-signed root CA and its key, as a CA Secret would hold them.
    fn root() -> (Signed, PrivateKey) {
        let key = generate(&KeySpec::default()).unwrap();
        let signed = sign(&root_spec(), &key, Signer::SelfSigned, ts(NOW)).unwrap();
        (signed, key)
    }

    fn key_pem(key: &PrivateKey) -> String {
        key.to_pem(PrivateKeyEncoding::PKCS8).unwrap()
    }

    fn ca() -> SigningCa {
        let (signed, key) = root();
        load_ca(Some(&signed.chain_pem), Some(&key_pem(&key)), ts(NOW)).unwrap()
    }

    fn der(pem_text: &str) -> Vec<u8> {
        parse_chain(pem_text).unwrap().certs_der[0].clone()
    }

    #[test]
    fn a_policy_limited_ca_gets_its_path_length_name_constraints_and_lifetime_cap() {
        let mut sub = spec(&[], Some("Tenant CA"));
        sub.is_ca = Some(true);
        let limits = SigningLimits {
            max_duration: Some(SignedDuration::from_hours(24)),
            ca: Some(CaConstraints {
                path_length: 0,
                permitted_dns_domains: vec!["team-a.svc".into()],
                excluded_dns_domains: vec!["secret.team-a.svc".into()],
                permitted_ip_ranges: vec!["10.1.0.0/16".parse().unwrap()],
            }),
        };
        let key = generate(&KeySpec::default()).unwrap();
        let ca = ca();
        let signed = sign_within(&sub, &key, Signer::Ca(&ca), ts(NOW), &limits).unwrap();
        assert_eq!(
            signed.leaf.not_after.duration_since(signed.leaf.not_before),
            SignedDuration::from_hours(24)
        );
        let sub_der = der(&signed.chain_pem);
        let (_, x509) = X509Certificate::from_der(&sub_der).unwrap();
        let bc = x509.basic_constraints().unwrap().unwrap().value;
        assert!(bc.ca);
        assert_eq!(bc.path_len_constraint, Some(0));
        let nc = x509
            .name_constraints()
            .unwrap()
            .expect("name constraints")
            .value;
        let permitted = format!("{:?}", nc.permitted_subtrees);
        assert!(permitted.contains("team-a.svc"), "{permitted}");
        let excluded = format!("{:?}", nc.excluded_subtrees);
        assert!(excluded.contains("secret.team-a.svc"), "{excluded}");
        // Without limits, as before: unconstrained.
        let plain = sign(&sub, &key, Signer::Ca(&ca), ts(NOW)).unwrap();
        let plain_der = der(&plain.chain_pem);
        let (_, x509) = X509Certificate::from_der(&plain_der).unwrap();
        assert_eq!(
            x509.basic_constraints()
                .unwrap()
                .unwrap()
                .value
                .path_len_constraint,
            None
        );
        assert!(x509.name_constraints().unwrap().is_none());
    }

    #[test]
    fn a_self_signed_ca_is_its_own_issuer_and_its_own_ca_crt() {
        let (signed, key) = root();
        let leaf_der = der(&signed.chain_pem);
        assert_eq!(signed.ca_pem, signed.chain_pem);
        assert!(is_self_issued(&leaf_der));
        assert_eq!(signed.leaf.subject_cn.as_deref(), Some("Example Root CA"));
        assert_eq!(signed.leaf.issuer_cn.as_deref(), Some("Example Root CA"));
        // "Example Root CA" is not a host name: not a SAN.
        assert!(signed.leaf.identifiers().is_empty());
        assert_eq!(issued_matches_spec(&root_spec(), &leaf_der), Ok(()));
        let ca = load_ca(Some(&signed.chain_pem), Some(&key_pem(&key)), ts(NOW)).unwrap();
        assert_eq!(ca.fingerprint, sha256_hex(&leaf_der));
        assert_eq!(ca.fingerprint.len(), 64);
        assert!(ca.subject.contains("CN=Example Root CA"), "{}", ca.subject);
        // 90 days by default.
        assert_eq!(
            signed.leaf.not_after,
            ts("2025-04-01T00:00:00Z"),
            "2160h after {NOW}"
        );
    }

    #[test]
    fn a_ca_signed_leaf_links_to_the_ca_and_carries_its_chain() {
        let ca = ca();
        let key = generate(&KeySpec::default()).unwrap();
        let mut s = spec(&["a.example", "b.example"], Some("a.example"));
        s.duration = Some("100000h".into());
        let signed = sign(&s, &key, Signer::Ca(&ca), ts(NOW)).unwrap();
        let chain = parse_chain(&signed.chain_pem).unwrap();
        assert_eq!(chain.certs_der.len(), 2);
        assert_eq!(chain.certs_der[1], ca.cert_der);
        assert_eq!(chain_links(&chain), Ok(()));
        assert!(signed_by_ca(&chain.certs_der[0], &ca));
        assert!(!is_self_issued(&chain.certs_der[0]));
        assert_eq!(signed.ca_pem, ca.top_pem);
        assert_eq!(signed.leaf.issuer_cn.as_deref(), Some("Example Root CA"));
        // Never past the CA's own end.
        assert_eq!(signed.leaf.not_after, ca.not_after);
        assert!(crate::pki::key_matches_leaf(&key, &chain.leaf));
        assert_eq!(issued_matches_spec(&s, &chain.certs_der[0]), Ok(()));
        // Not a CA: basicConstraints CA:FALSE, so it cannot be used as one.
        let refused = load_ca(Some(&signed.chain_pem), Some(&key_pem(&key)), ts(NOW));
        assert!(
            matches!(refused, Err(CaProblem::NotCa { .. })),
            "{refused:?}"
        );
    }

    #[test]
    fn another_ca_does_not_verify() {
        let ca = ca();
        let other = self::ca();
        let key = generate(&KeySpec::default()).unwrap();
        let signed = sign(&spec(&["a.example"], None), &key, Signer::Ca(&ca), ts(NOW)).unwrap();
        assert!(!signed_by_ca(&der(&signed.chain_pem), &other));
        assert_ne!(ca.fingerprint, other.fingerprint);
    }

    #[test]
    fn a_key_that_is_not_the_cas_is_refused_without_showing_it() {
        let (signed, _) = root();
        let other = generate(&KeySpec::default()).unwrap();
        let err = load_ca(Some(&signed.chain_pem), Some(&key_pem(&other)), ts(NOW)).unwrap_err();
        assert!(matches!(err, CaProblem::KeyMismatch { .. }), "{err:?}");
        assert_eq!(err.reason(), "CAKeyMismatch");
        let text = err.to_string();
        assert!(text.contains("Example Root CA"), "{text}");
        assert!(!text.contains("PRIVATE KEY"), "{text}");
    }

    #[test]
    fn a_ca_without_key_cert_sign_is_refused() {
        let key = generate(&KeySpec::default()).unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "No Sign CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let pem_text = params
            .self_signed(&key.to_rcgen_key_pair().unwrap())
            .unwrap()
            .pem();
        let err = load_ca(Some(&pem_text), Some(&key_pem(&key)), ts(NOW)).unwrap_err();
        assert!(matches!(err, CaProblem::NoCertSign { .. }), "{err:?}");
        assert_eq!(err.reason(), "NotACA");
    }

    #[test]
    fn an_expired_ca_and_garbage_are_refused() {
        let (signed, key) = root();
        let late = ts("2026-01-01T00:00:00Z");
        let err = load_ca(Some(&signed.chain_pem), Some(&key_pem(&key)), late).unwrap_err();
        assert!(matches!(err, CaProblem::Expired { .. }), "{err:?}");
        let err = load_ca(Some("not pem"), Some(&key_pem(&key)), ts(NOW)).unwrap_err();
        assert_eq!(err.reason(), "InvalidCASecret");
        let err = load_ca(None, None, ts(NOW)).unwrap_err();
        assert!(matches!(err, CaProblem::NoCertificate(_)));
        let err = load_ca(Some(&signed.chain_pem), Some("garbage"), ts(NOW)).unwrap_err();
        assert!(matches!(err, CaProblem::NoKey(_)));
    }

    #[test]
    fn the_common_name_is_a_san_only_when_it_is_a_host_or_ip() {
        assert_eq!(local_view(&spec(&[], Some("Example CA"))).common_name, None);
        for cn in ["a.example", "10.0.0.1", "*.a.example", "::1"] {
            assert_eq!(
                local_view(&spec(&[], Some(cn))).common_name.as_deref(),
                Some(cn)
            );
        }
    }

    #[test]
    fn subject_and_usages_are_written_and_compared() {
        let ca = ca();
        let key = generate(&KeySpec::default()).unwrap();
        let mut s = spec(&["a.example"], None);
        s.subject = Some(X509Subject {
            organizations: vec!["Shop".into()],
            organizational_units: vec!["Web".into()],
            localities: vec!["Berlin".into()],
            provinces: vec!["Berlin".into()],
            street_addresses: vec!["Street 1".into()],
            postal_codes: vec!["10115".into()],
            countries: vec!["DE".into()],
            serial_number: Some("1234".into()),
        });
        s.usages = vec![
            KeyUsage::DigitalSignature,
            KeyUsage::ServerAuth,
            KeyUsage::IpsecUser,
        ];
        let signed = sign(&s, &key, Signer::Ca(&ca), ts(NOW)).unwrap();
        let leaf = der(&signed.chain_pem);
        assert_eq!(issued_matches_spec(&s, &leaf), Ok(()));
        let (_, x509) = X509Certificate::from_der(&leaf).unwrap();
        let subject = x509.subject().to_string();
        for part in ["O=Shop", "OU=Web", "L=Berlin", "C=DE"] {
            assert!(subject.contains(part), "{subject}");
        }
        let eku = x509.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && !eku.client_auth && eku.other.len() == 1);

        let mut changed = s.clone();
        changed.usages.push(KeyUsage::ClientAuth);
        assert!(
            issued_matches_spec(&changed, &leaf)
                .unwrap_err()
                .contains("extended key usages")
        );
        let mut changed = s.clone();
        changed.usages = vec![
            KeyUsage::KeyEncipherment,
            KeyUsage::ServerAuth,
            KeyUsage::IpsecUser,
        ];
        assert!(
            issued_matches_spec(&changed, &leaf)
                .unwrap_err()
                .contains("key usages")
        );
        let mut changed = s.clone();
        if let Some(subject) = changed.subject.as_mut() {
            subject.organizations = vec!["Other".into()];
        }
        assert!(
            issued_matches_spec(&changed, &leaf)
                .unwrap_err()
                .contains("subject")
        );
        let mut changed = s;
        changed.is_ca = Some(true);
        assert!(
            issued_matches_spec(&changed, &leaf)
                .unwrap_err()
                .contains("isCA")
        );
    }

    #[test]
    fn default_usages_are_cert_managers_and_a_ca_adds_cert_sign() {
        let (ku, eku) = wanted_usages(&spec(&["a.example"], None));
        assert_eq!(ku_flags(&ku), 0b101);
        assert!(eku.is_empty());
        let (ku, _) = wanted_usages(&root_spec());
        assert_eq!(ku_flags(&ku), 0b10_0101);
    }

    #[test]
    fn every_key_type_signs_and_is_signed() {
        for key_spec in [
            KeySpec::default(),
            KeySpec::Ecdsa(crate::pki::EcCurve::P384),
            KeySpec::Ed25519,
            KeySpec::Rsa { bits: 2048 },
        ] {
            let ca_key = generate(&key_spec).unwrap();
            let root = sign(&root_spec(), &ca_key, Signer::SelfSigned, ts(NOW)).unwrap();
            let ca = load_ca(Some(&root.chain_pem), Some(&key_pem(&ca_key)), ts(NOW)).unwrap();
            let key = generate(&KeySpec::default()).unwrap();
            let leaf = sign(&spec(&["a.example"], None), &key, Signer::Ca(&ca), ts(NOW)).unwrap();
            assert!(signed_by_ca(&der(&leaf.chain_pem), &ca), "{key_spec}");
        }
    }
}
