//! The names a Certificate asks for, and the CSR that carries them to the CA.
//!
//! ACME CAs put only the order's identifiers in a certificate, and Let's Encrypt requires the
//! CSR's common name (if any) to be one of the SANs. So the common name is folded into the SANs
//! here, once, and the same normalized [`Identifier`] list is used for the order, for the CSR and
//! for checking an issued certificate: three places that must never disagree.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use rcgen::{CertificateParams, DistinguishedName, DnType, SanType};

use super::PkiError;
use super::key::PrivateKey;
use crate::api::CertificateSpec;

/// One subject alternative name, normalized: DNS names in ASCII lowercase (DNS is
/// case-insensitive and CAs lowercase what they issue), IPs parsed (so `::1` and `0::1` are the
/// same). Ordering puts DNS names first, then IPs, each sorted.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Identifier {
    Dns(String),
    Ip(IpAddr),
}

impl Identifier {
    /// A DNS identifier, lowercased.
    pub fn dns(name: &str) -> Self {
        Identifier::Dns(name.to_ascii_lowercase())
    }

    /// An IP identifier when `value` parses as an IP address, else a DNS one. Used for the common
    /// name, which may be either.
    pub fn parse(value: &str) -> Self {
        match value.parse::<IpAddr>() {
            Ok(ip) => Identifier::Ip(ip),
            Err(_) => Identifier::dns(value),
        }
    }

    /// `DNS name x` / `IP address y`, for messages.
    pub fn describe(&self) -> String {
        match self {
            Identifier::Dns(name) => format!("DNS name {name}"),
            Identifier::Ip(ip) => format!("IP address {ip}"),
        }
    }
}

impl fmt::Display for Identifier {
    /// The bare value, as an ACME identifier's `value` field spells it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identifier::Dns(name) => f.write_str(name),
            Identifier::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// The identifiers of a Certificate: `dnsNames`, `ipAddresses` and `commonName`, normalized,
/// sorted and deduplicated. Fails on an `ipAddresses` entry that is not an IP rather than
/// silently dropping it (the CRD rejects those, but a certificate without a wanted name must
/// never look satisfied).
pub fn identifiers(spec: &CertificateSpec) -> Result<Vec<Identifier>, PkiError> {
    let mut set: BTreeSet<Identifier> = spec.dns_names.iter().map(|n| Identifier::dns(n)).collect();
    for ip in &spec.ip_addresses {
        let parsed = ip
            .trim()
            .parse::<IpAddr>()
            .map_err(|_| PkiError::InvalidIpAddress(ip.clone()))?;
        set.insert(Identifier::Ip(parsed));
    }
    if let Some(cn) = spec.common_name.as_deref().filter(|cn| !cn.is_empty()) {
        set.insert(Identifier::parse(cn));
    }
    Ok(set.into_iter().collect())
}

/// Builds a DER PKCS#10 CSR signed by `key`, for the given names. The common name, when set, is
/// also added to the SANs (as a DNS name, or an IP if it parses as one), and all names are
/// normalized and deduplicated like [`identifiers`], so the CSR matches the order exactly.
pub fn build_csr(
    key: &PrivateKey,
    dns_names: &[String],
    ip_addresses: &[IpAddr],
    common_name: Option<&str>,
) -> Result<Vec<u8>, PkiError> {
    let mut set: BTreeSet<Identifier> = dns_names.iter().map(|n| Identifier::dns(n)).collect();
    set.extend(ip_addresses.iter().copied().map(Identifier::Ip));
    let common_name = common_name
        .filter(|cn| !cn.is_empty())
        .map(Identifier::parse);
    set.extend(common_name.clone());
    if set.is_empty() {
        return Err(PkiError::Csr(
            "no DNS names or IP addresses to request".into(),
        ));
    }

    let mut params = CertificateParams::default();
    // Default params carry a placeholder CN ("rcgen self signed cert"); start from nothing.
    params.distinguished_name = DistinguishedName::new();
    if let Some(cn) = &common_name {
        params
            .distinguished_name
            .push(DnType::CommonName, cn.to_string());
    }
    params.subject_alt_names = set
        .iter()
        .map(|id| match id {
            Identifier::Dns(name) => name
                .clone()
                .try_into()
                .map(SanType::DnsName)
                .map_err(|e| PkiError::Csr(format!("DNS name {name:?}: {e}"))),
            Identifier::Ip(ip) => Ok(SanType::IpAddress(*ip)),
        })
        .collect::<Result<_, _>>()?;

    let key_pair = key.to_rcgen_key_pair()?;
    let csr = params
        .serialize_request(&key_pair)
        .map_err(|e| PkiError::Csr(e.to_string()))?;
    Ok(csr.der().to_vec())
}

/// [`build_csr`] for a Certificate's spec.
pub fn csr_for_spec(key: &PrivateKey, spec: &CertificateSpec) -> Result<Vec<u8>, PkiError> {
    let ids = identifiers(spec)?;
    let dns: Vec<String> = ids
        .iter()
        .filter_map(|id| match id {
            Identifier::Dns(name) => Some(name.clone()),
            Identifier::Ip(_) => None,
        })
        .collect();
    let ips: Vec<IpAddr> = ids
        .iter()
        .filter_map(|id| match id {
            Identifier::Ip(ip) => Some(*ip),
            Identifier::Dns(_) => None,
        })
        .collect();
    build_csr(key, &dns, &ips, spec.common_name.as_deref())
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use x509_parser::certification_request::X509CertificationRequest;
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    use x509_parser::prelude::FromDer;

    use super::*;
    use crate::pki::key::{EcCurve, KeySpec, generate};

    fn spec(dns: &[&str], ips: &[&str], cn: Option<&str>) -> CertificateSpec {
        CertificateSpec {
            dns_names: dns.iter().map(|s| s.to_string()).collect(),
            ip_addresses: ips.iter().map(|s| s.to_string()).collect(),
            common_name: cn.map(str::to_string),
            ..Default::default()
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// What a CA would see: (subject CN, DNS SANs, IP SANs), after checking the signature.
    fn read_csr(der: &[u8], key: &PrivateKey) -> (Option<String>, Vec<String>, Vec<IpAddr>) {
        let (rest, csr) = X509CertificationRequest::from_der(der).unwrap();
        assert!(rest.is_empty());
        csr.verify_signature().unwrap();
        assert_eq!(
            csr.certification_request_info.subject_pki.raw,
            key.public_key_spki_der()
        );
        let cn = csr
            .certification_request_info
            .subject
            .iter_common_name()
            .next()
            .map(|a| a.as_str().unwrap().to_string());
        let mut dns = Vec::new();
        let mut ips = Vec::new();
        for ext in csr.requested_extensions().into_iter().flatten() {
            if let ParsedExtension::SubjectAlternativeName(san) = ext {
                for name in &san.general_names {
                    match name {
                        GeneralName::DNSName(d) => dns.push(d.to_string()),
                        GeneralName::IPAddress(b) => ips.push(match b.len() {
                            4 => IpAddr::from(<[u8; 4]>::try_from(*b).unwrap()),
                            _ => IpAddr::from(<[u8; 16]>::try_from(*b).unwrap()),
                        }),
                        other => panic!("unexpected SAN {other:?}"),
                    }
                }
            }
        }
        (cn, dns, ips)
    }

    #[test]
    fn identifiers_are_sorted_deduplicated_with_cn() {
        let s = spec(
            &["b.example.com", "a.example.com", "b.example.com"],
            &["10.0.0.2", "10.0.0.1", "10.0.0.1"],
            Some("a.example.com"),
        );
        assert_eq!(
            identifiers(&s).unwrap(),
            vec![
                Identifier::Dns("a.example.com".into()),
                Identifier::Dns("b.example.com".into()),
                Identifier::Ip(ip("10.0.0.1")),
                Identifier::Ip(ip("10.0.0.2")),
            ]
        );
    }

    #[test]
    fn identifiers_add_cn_not_in_dns_names() {
        let s = spec(&["a.example.com"], &[], Some("cn.example.com"));
        assert_eq!(
            identifiers(&s).unwrap(),
            vec![
                Identifier::Dns("a.example.com".into()),
                Identifier::Dns("cn.example.com".into())
            ]
        );
    }

    #[test]
    fn identifiers_treat_ip_cn_as_ip() {
        let s = spec(&[], &["192.0.2.1"], Some("192.0.2.1"));
        assert_eq!(
            identifiers(&s).unwrap(),
            vec![Identifier::Ip(ip("192.0.2.1"))]
        );
        let s = spec(&["a.example"], &[], Some("2001:db8::1"));
        assert_eq!(
            identifiers(&s).unwrap(),
            vec![
                Identifier::Dns("a.example".into()),
                Identifier::Ip(ip("2001:db8::1"))
            ]
        );
    }

    #[test]
    fn identifiers_normalize_case_and_ip_spelling() {
        let s = spec(
            &["WWW.Example.COM"],
            &["2001:DB8:0:0::1", "2001:db8::1"],
            Some("www.example.com"),
        );
        assert_eq!(
            identifiers(&s).unwrap(),
            vec![
                Identifier::Dns("www.example.com".into()),
                Identifier::Ip(ip("2001:db8::1"))
            ]
        );
    }

    #[test]
    fn identifiers_ignore_empty_cn_and_keep_wildcards() {
        let s = spec(&["*.example.com", "example.com"], &[], Some(""));
        assert_eq!(
            identifiers(&s).unwrap(),
            vec![
                Identifier::Dns("*.example.com".into()),
                Identifier::Dns("example.com".into())
            ]
        );
    }

    #[test]
    fn identifiers_empty_spec_is_empty() {
        assert!(identifiers(&spec(&[], &[], None)).unwrap().is_empty());
    }

    #[test]
    fn identifiers_reject_bad_ip() {
        let err = identifiers(&spec(&[], &["10.0.0.300"], None)).unwrap_err();
        assert_eq!(err, PkiError::InvalidIpAddress("10.0.0.300".into()));
        assert!(err.to_string().contains("10.0.0.300"));
    }

    #[test]
    fn identifier_display_and_describe() {
        let d = Identifier::dns("A.Example");
        assert_eq!(d.to_string(), "a.example");
        assert_eq!(d.describe(), "DNS name a.example");
        let i = Identifier::parse("::1");
        assert_eq!(i, Identifier::Ip(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        assert_eq!(i.to_string(), "::1");
        assert_eq!(i.describe(), "IP address ::1");
        assert!(Identifier::dns("z.example") < Identifier::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    }

    #[test]
    fn csr_carries_exactly_the_sans() {
        let key = generate(&KeySpec::default()).unwrap();
        let der = build_csr(
            &key,
            &strings(&["b.example.com", "a.example.com"]),
            &[ip("192.0.2.1"), ip("2001:db8::1")],
            None,
        )
        .unwrap();
        let (cn, dns, ips) = read_csr(&der, &key);
        assert_eq!(cn, None);
        assert_eq!(dns, strings(&["a.example.com", "b.example.com"]));
        assert_eq!(ips, vec![ip("192.0.2.1"), ip("2001:db8::1")]);
    }

    #[test]
    fn csr_adds_dns_cn_to_sans_without_duplicates() {
        let key = generate(&KeySpec::default()).unwrap();
        let der = build_csr(
            &key,
            &strings(&["a.example.com"]),
            &[],
            Some("cn.example.com"),
        )
        .unwrap();
        let (cn, dns, ips) = read_csr(&der, &key);
        assert_eq!(cn.as_deref(), Some("cn.example.com"));
        assert_eq!(dns, strings(&["a.example.com", "cn.example.com"]));
        assert!(ips.is_empty());

        let der = build_csr(
            &key,
            &strings(&["a.example.com", "A.example.com"]),
            &[],
            Some("a.example.com"),
        )
        .unwrap();
        let (cn, dns, _) = read_csr(&der, &key);
        assert_eq!(cn.as_deref(), Some("a.example.com"));
        assert_eq!(dns, strings(&["a.example.com"]));
    }

    #[test]
    fn csr_adds_ip_cn_as_ip_san() {
        let key = generate(&KeySpec::default()).unwrap();
        let der = build_csr(&key, &[], &[ip("192.0.2.1")], Some("192.0.2.7")).unwrap();
        let (cn, dns, ips) = read_csr(&der, &key);
        assert_eq!(cn.as_deref(), Some("192.0.2.7"));
        assert!(dns.is_empty());
        assert_eq!(ips, vec![ip("192.0.2.1"), ip("192.0.2.7")]);

        let der = build_csr(&key, &[], &[ip("192.0.2.1")], Some("192.0.2.1")).unwrap();
        let (_, _, ips) = read_csr(&der, &key);
        assert_eq!(ips, vec![ip("192.0.2.1")]);
    }

    #[test]
    fn csr_only_common_name() {
        let key = generate(&KeySpec::Ed25519).unwrap();
        let der = build_csr(&key, &[], &[], Some("only.example")).unwrap();
        let (cn, dns, ips) = read_csr(&der, &key);
        assert_eq!(cn.as_deref(), Some("only.example"));
        assert_eq!(dns, strings(&["only.example"]));
        assert!(ips.is_empty());
    }

    #[test]
    fn csr_with_wildcard() {
        let key = generate(&KeySpec::Ecdsa(EcCurve::P384)).unwrap();
        let der = build_csr(&key, &strings(&["*.example.com", "example.com"]), &[], None).unwrap();
        let (_, dns, _) = read_csr(&der, &key);
        assert_eq!(dns, strings(&["*.example.com", "example.com"]));
    }

    #[test]
    fn csr_needs_a_name() {
        let key = generate(&KeySpec::default()).unwrap();
        let err = build_csr(&key, &[], &[], None).unwrap_err();
        assert!(matches!(err, PkiError::Csr(_)), "{err}");
        let err = build_csr(&key, &[], &[], Some("")).unwrap_err();
        assert!(err.to_string().contains("no DNS names"), "{err}");
    }

    #[test]
    fn csr_rejects_non_ascii_dns_name() {
        let key = generate(&KeySpec::default()).unwrap();
        let err = build_csr(&key, &strings(&["bücher.example"]), &[], None).unwrap_err();
        assert!(err.to_string().contains("bücher.example"), "{err}");
    }

    #[test]
    fn csr_for_spec_matches_identifiers() {
        let key = generate(&KeySpec::default()).unwrap();
        let s = spec(
            &["b.example", "a.example"],
            &["10.0.0.1"],
            Some("c.example"),
        );
        let (cn, dns, ips) = read_csr(&csr_for_spec(&key, &s).unwrap(), &key);
        assert_eq!(cn.as_deref(), Some("c.example"));
        assert_eq!(dns, strings(&["a.example", "b.example", "c.example"]));
        assert_eq!(ips, vec![ip("10.0.0.1")]);
        let ids = identifiers(&s).unwrap();
        assert_eq!(ids.len(), dns.len() + ips.len());
    }

    #[test]
    fn csr_for_spec_reports_bad_ip() {
        let key = generate(&KeySpec::default()).unwrap();
        let err = csr_for_spec(&key, &spec(&["a.example"], &["nope"], None)).unwrap_err();
        assert_eq!(err, PkiError::InvalidIpAddress("nope".into()));
    }
}
