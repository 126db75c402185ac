//! Test helpers: a tiny CA built with rcgen, so chain and matching tests use real certificates.

use jiff::Timestamp;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::pki_types::CertificateSigningRequestDer;

use super::key::PrivateKey;

/// Parses an RFC 3339 timestamp.
pub(crate) fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// Sets rcgen validity from jiff timestamps without naming `time` types (not a dependency).
fn set_validity(params: &mut CertificateParams, not_before: Timestamp, not_after: Timestamp) {
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + std::time::Duration::from_secs(not_before.as_second() as u64);
    params.not_after = epoch + std::time::Duration::from_secs(not_after.as_second() as u64);
}

/// What a test leaf certificate holds.
pub(crate) struct LeafOptions<'a> {
    pub dns: &'a [&'a str],
    pub ips: &'a [&'a str],
    pub cn: Option<&'a str>,
    pub not_before: Timestamp,
    pub not_after: Timestamp,
    pub serial: Option<&'a [u8]>,
}

impl<'a> LeafOptions<'a> {
    /// DNS names only, valid 2025-01-01 to 2025-04-01 (90 days).
    pub fn dns(dns: &'a [&'a str]) -> Self {
        LeafOptions {
            dns,
            ips: &[],
            cn: None,
            not_before: ts("2025-01-01T00:00:00Z"),
            not_after: ts("2025-04-01T00:00:00Z"),
            serial: None,
        }
    }
}

/// A CA (root or intermediate) that can issue leaves and sign other CAs.
pub(crate) struct TestCa {
    params: CertificateParams,
    issuer: Issuer<'static, KeyPair>,
    /// This CA's own certificate.
    pub pem: String,
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

impl TestCa {
    /// A self-signed root with the given CN.
    pub fn root(cn: &str) -> Self {
        let params = ca_params(cn);
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        TestCa {
            issuer: Issuer::new(params.clone(), key),
            params,
            pem,
        }
    }

    /// An intermediate with the given CN, signed by this CA.
    pub fn intermediate(&self, cn: &str) -> Self {
        let params = ca_params(cn);
        let key = KeyPair::generate().unwrap();
        let pem = params.signed_by(&key, &self.issuer).unwrap().pem();
        TestCa {
            issuer: Issuer::new(params.clone(), key),
            params,
            pem,
        }
    }

    /// A certificate for `other`'s name and key, signed by this CA (a cross-sign).
    pub fn cross_sign(&self, other: &TestCa) -> String {
        other
            .params
            .signed_by(other.issuer.key(), &self.issuer)
            .unwrap()
            .pem()
    }

    /// A leaf for `key`, returned as PEM.
    pub fn issue(&self, key: &PrivateKey, opts: &LeafOptions<'_>) -> String {
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = opts.cn {
            params.distinguished_name.push(DnType::CommonName, cn);
        }
        params.subject_alt_names = opts
            .dns
            .iter()
            .map(|d| SanType::DnsName(d.to_string().try_into().unwrap()))
            .chain(
                opts.ips
                    .iter()
                    .map(|i| SanType::IpAddress(i.parse().unwrap())),
            )
            .collect();
        set_validity(&mut params, opts.not_before, opts.not_after);
        params.serial_number = opts.serial.map(SerialNumber::from_slice);
        let key_pair = key.to_rcgen_key_pair().unwrap();
        params.signed_by(&key_pair, &self.issuer).unwrap().pem()
    }

    /// Signs a DER CSR as a CA would, returning the leaf PEM.
    pub fn sign_csr(&self, csr_der: &[u8]) -> String {
        let csr = CertificateSigningRequestParams::from_der(&CertificateSigningRequestDer::from(
            csr_der.to_vec(),
        ))
        .unwrap();
        csr.signed_by(&self.issuer).unwrap().pem()
    }
}
