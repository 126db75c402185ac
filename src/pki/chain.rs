//! Issued certificate chains: parsing what the CA returns (or what a Secret's `tls.crt` holds),
//! checking the key against the leaf, and picking among alternate chains (`preferredChain`).

use std::net::IpAddr;

use jiff::Timestamp;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Name;

use super::PkiError;
use super::csr::Identifier;
use super::key::{PrivateKey, encode_pem};

const PEM_CERTIFICATE: &str = "CERTIFICATE";

/// What the controller needs to know about a leaf certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedLeaf {
    pub not_before: Timestamp,
    pub not_after: Timestamp,
    /// Lowercase hex of the serial number's bytes, no separators, leading zero bytes dropped.
    pub serial_hex: String,
    /// DNS SANs, as written in the certificate.
    pub dns_names: Vec<String>,
    /// IP SANs.
    pub ip_addresses: Vec<IpAddr>,
    pub subject_cn: Option<String>,
    pub issuer_cn: Option<String>,
    /// DER `SubjectPublicKeyInfo`, to compare with [`PrivateKey::public_key_spki_der`].
    pub public_key_spki_der: Vec<u8>,
}

impl ParsedLeaf {
    /// Parses one DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, PkiError> {
        Self::parse(der, 0)
    }

    fn parse(der: &[u8], index: usize) -> Result<Self, PkiError> {
        let invalid = |reason: String| PkiError::InvalidCertificate { index, reason };
        let cert = parse_x509(der, index)?;
        let validity = cert.validity();
        let not_before = Timestamp::from_second(validity.not_before.timestamp())
            .map_err(|e| invalid(format!("notBefore out of range: {e}")))?;
        let not_after = Timestamp::from_second(validity.not_after.timestamp())
            .map_err(|e| invalid(format!("notAfter out of range: {e}")))?;

        let mut dns_names = Vec::new();
        let mut ip_addresses = Vec::new();
        let san = cert
            .subject_alternative_name()
            .map_err(|e| invalid(format!("subjectAltName: {e}")))?;
        for name in san.iter().flat_map(|ext| &ext.value.general_names) {
            match name {
                GeneralName::DNSName(dns) => dns_names.push(dns.to_string()),
                GeneralName::IPAddress(bytes) => ip_addresses.push(
                    ip_from_bytes(bytes)
                        .ok_or_else(|| invalid(format!("IP SAN of {} bytes", bytes.len())))?,
                ),
                // Email, URI and other names are never requested by ferrocert; ignored.
                _ => {}
            }
        }

        let serial = cert.raw_serial();
        let significant = serial
            .iter()
            .position(|b| *b != 0)
            .map_or(&serial[serial.len().saturating_sub(1)..], |i| &serial[i..]);
        Ok(ParsedLeaf {
            not_before,
            not_after,
            serial_hex: significant.iter().map(|b| format!("{b:02x}")).collect(),
            dns_names,
            ip_addresses,
            subject_cn: common_name(cert.subject()),
            issuer_cn: common_name(cert.issuer()),
            public_key_spki_der: cert.public_key().raw.to_vec(),
        })
    }

    /// The SANs as normalized, sorted, deduplicated identifiers, comparable with
    /// [`identifiers`](super::csr::identifiers) of the spec. The subject CN is deliberately not
    /// included: ACME CAs copy it into the SANs anyway, and some no longer set a CN at all.
    pub fn identifiers(&self) -> Vec<Identifier> {
        let mut ids: Vec<Identifier> = self
            .dns_names
            .iter()
            .map(|n| Identifier::dns(n))
            .chain(self.ip_addresses.iter().copied().map(Identifier::Ip))
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

/// A parsed chain, leaf first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedChain {
    pub leaf: ParsedLeaf,
    /// The whole chain re-encoded as PEM with LF line endings, one block per certificate in the
    /// CA's order: what goes into `tls.crt`.
    pub pem: String,
    /// Each certificate's DER, leaf first.
    pub certs_der: Vec<Vec<u8>>,
}

impl IssuedChain {
    /// The top certificate's PEM when it is a self-signed root (subject equals issuer), for
    /// `ca.crt`. ACME CAs usually stop below the root; then the root is not known from the chain
    /// and this is `None` (cert-manager also leaves `ca.crt` out for ACME in that case).
    pub fn root_pem(&self) -> Option<String> {
        let (top, rest) = self.certs_der.split_last()?;
        if rest.is_empty() {
            // A lone certificate is the leaf, not a CA, even if self-signed.
            return None;
        }
        let cert = parse_x509(top, rest.len()).ok()?;
        (cert.subject().as_raw() == cert.issuer().as_raw())
            .then(|| encode_pem(PEM_CERTIFICATE, top.clone()))
    }
}

/// Parses a PEM chain as an ACME CA returns it (leaf first, then intermediates). Every block must
/// be a `CERTIFICATE` that parses as X.509: anything else means the download went wrong, and
/// storing it would break TLS clients later.
pub fn parse_chain(pem_text: &str) -> Result<IssuedChain, PkiError> {
    let blocks = pem::parse_many(pem_text).map_err(|e| PkiError::InvalidChainPem(e.to_string()))?;
    if let Some(other) = blocks.iter().find(|b| b.tag() != PEM_CERTIFICATE) {
        return Err(PkiError::InvalidChainPem(format!(
            "unexpected {:?} block; a chain holds only CERTIFICATE blocks",
            other.tag()
        )));
    }
    let certs_der: Vec<Vec<u8>> = blocks.into_iter().map(pem::Pem::into_contents).collect();
    let leaf_der = certs_der.first().ok_or(PkiError::EmptyChain)?;
    let leaf = ParsedLeaf::parse(leaf_der, 0)?;
    for (index, der) in certs_der.iter().enumerate().skip(1) {
        parse_x509(der, index)?;
    }
    let pem = certs_der
        .iter()
        .map(|der| encode_pem(PEM_CERTIFICATE, der.clone()))
        .collect();
    Ok(IssuedChain {
        leaf,
        pem,
        certs_der,
    })
}

/// Whether `key` is the private half of the leaf's public key. Compares the DER
/// `SubjectPublicKeyInfo`: CAs copy it verbatim from the CSR, and both sides use the canonical
/// encodings (uncompressed EC points, NULL RSA parameters).
pub fn key_matches_leaf(key: &PrivateKey, leaf: &ParsedLeaf) -> bool {
    key.public_key_spki_der() == leaf.public_key_spki_der.as_slice()
}

/// Whether each certificate of the chain is signed by the next one (a lone leaf has nothing to
/// link). A certificate ferrocert did not fetch itself (one it adopts) must pass this: a chain
/// out of order or with a missing intermediate breaks clients. `Err` says which link fails.
pub fn chain_links(chain: &IssuedChain) -> Result<(), String> {
    for (index, pair) in chain.certs_der.windows(2).enumerate() {
        let cert = parse_x509(&pair[0], index).map_err(|e| e.to_string())?;
        let next = parse_x509(&pair[1], index + 1).map_err(|e| e.to_string())?;
        if cert.verify_signature(Some(next.public_key())).is_err() {
            return Err(format!(
                "certificate #{} of tls.crt is not signed by certificate #{}",
                index + 1,
                index + 2
            ));
        }
    }
    Ok(())
}

/// The issuer CN of the chain's last certificate: the name `preferredChain` is matched against.
pub fn top_issuer_cn(chain: &IssuedChain) -> Option<String> {
    let (top, rest) = chain.certs_der.split_last()?;
    common_name(parse_x509(top, rest.len()).ok()?.issuer())
}

/// Picks among the default chain (index 0) and the alternates the CA offers, as cert-manager
/// does: the first chain whose topmost certificate has `preferred` as its issuer CN or its
/// subject CN (the latter covers chains that include the root itself). Chains that do not parse
/// are skipped. No preference, or no match, means the CA's default: 0.
pub fn choose_preferred_chain(chains: &[String], preferred: Option<&str>) -> usize {
    let Some(preferred) = preferred.filter(|p| !p.is_empty()) else {
        return 0;
    };
    chains
        .iter()
        .position(|pem_text| {
            let Ok(chain) = parse_chain(pem_text) else {
                return false;
            };
            let Some((top, rest)) = chain.certs_der.split_last() else {
                return false;
            };
            let Ok(cert) = parse_x509(top, rest.len()) else {
                return false;
            };
            common_name(cert.issuer()).as_deref() == Some(preferred)
                || common_name(cert.subject()).as_deref() == Some(preferred)
        })
        .unwrap_or(0)
}

fn parse_x509(der: &[u8], index: usize) -> Result<X509Certificate<'_>, PkiError> {
    let (rest, cert) =
        X509Certificate::from_der(der).map_err(|e| PkiError::InvalidCertificate {
            index,
            reason: e.to_string(),
        })?;
    if !rest.is_empty() {
        return Err(PkiError::InvalidCertificate {
            index,
            reason: format!("{} trailing bytes after the certificate", rest.len()),
        });
    }
    Ok(cert)
}

fn common_name(name: &X509Name<'_>) -> Option<String> {
    name.iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string)
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::key::{KeySpec, generate};
    use crate::pki::test_support::{LeafOptions, TestCa, ts};

    fn leaf_key() -> PrivateKey {
        generate(&KeySpec::default()).unwrap()
    }

    #[test]
    fn parses_leaf_fields() {
        let root = TestCa::root("Test Root X1");
        let inter = root.intermediate("Test Intermediate R1");
        let key = leaf_key();
        let leaf = inter.issue(
            &key,
            &LeafOptions {
                dns: &["b.example.com", "a.example.com"],
                ips: &["192.0.2.1", "2001:db8::1"],
                cn: Some("a.example.com"),
                not_before: ts("2025-01-01T00:00:00Z"),
                not_after: ts("2025-04-01T00:00:00Z"),
                serial: Some(&[0x0a, 0xbc]),
            },
        );
        let chain = parse_chain(&format!("{leaf}{}", inter.pem)).unwrap();
        let l = &chain.leaf;
        assert_eq!(l.not_before, ts("2025-01-01T00:00:00Z"));
        assert_eq!(l.not_after, ts("2025-04-01T00:00:00Z"));
        assert_eq!(l.serial_hex, "0abc");
        assert_eq!(l.dns_names, vec!["b.example.com", "a.example.com"]);
        assert_eq!(
            l.ip_addresses,
            vec![
                "192.0.2.1".parse::<IpAddr>().unwrap(),
                "2001:db8::1".parse().unwrap()
            ]
        );
        assert_eq!(l.subject_cn.as_deref(), Some("a.example.com"));
        assert_eq!(l.issuer_cn.as_deref(), Some("Test Intermediate R1"));
        assert_eq!(l.public_key_spki_der, key.public_key_spki_der());
        assert_eq!(chain.certs_der.len(), 2);
        assert_eq!(
            l.identifiers(),
            vec![
                Identifier::Dns("a.example.com".into()),
                Identifier::Dns("b.example.com".into()),
                Identifier::Ip("192.0.2.1".parse().unwrap()),
                Identifier::Ip("2001:db8::1".parse().unwrap()),
            ]
        );
    }

    #[test]
    fn serial_hex_keeps_high_bit_serials_positive() {
        let root = TestCa::root("Root");
        let opts = LeafOptions {
            serial: Some(&[0x8a, 0xbc, 0x01]),
            ..LeafOptions::dns(&["a.example"])
        };
        let chain = parse_chain(&root.issue(&leaf_key(), &opts)).unwrap();
        assert_eq!(chain.leaf.serial_hex, "8abc01");
    }

    #[test]
    fn leaf_without_cn_or_ips() {
        let root = TestCa::root("Root");
        let leaf = root.issue(&leaf_key(), &LeafOptions::dns(&["x.example"]));
        let chain = parse_chain(&leaf).unwrap();
        assert_eq!(chain.leaf.subject_cn, None);
        assert!(chain.leaf.ip_addresses.is_empty());
        assert_eq!(chain.leaf.dns_names, vec!["x.example"]);
        assert_eq!(
            ParsedLeaf::from_der(&chain.certs_der[0]).unwrap(),
            chain.leaf
        );
    }

    #[test]
    fn identifiers_lowercase_and_dedup() {
        let leaf = ParsedLeaf {
            not_before: ts("2025-01-01T00:00:00Z"),
            not_after: ts("2025-02-01T00:00:00Z"),
            serial_hex: "01".into(),
            dns_names: vec!["B.example".into(), "b.example".into(), "a.example".into()],
            ip_addresses: vec!["::1".parse().unwrap(), "0::1".parse().unwrap()],
            subject_cn: None,
            issuer_cn: None,
            public_key_spki_der: vec![],
        };
        assert_eq!(
            leaf.identifiers(),
            vec![
                Identifier::Dns("a.example".into()),
                Identifier::Dns("b.example".into()),
                Identifier::Ip("::1".parse().unwrap()),
            ]
        );
    }

    #[test]
    fn pem_is_normalized_to_lf_and_keeps_order() {
        let root = TestCa::root("Root");
        let inter = root.intermediate("Inter");
        let leaf = inter.issue(&leaf_key(), &LeafOptions::dns(&["a.example"]));
        let input = format!("{leaf}\n\n{}", inter.pem).replace('\n', "\r\n");
        let chain = parse_chain(&input).unwrap();
        assert!(!chain.pem.contains('\r'));
        assert_eq!(
            chain.pem,
            format!("{leaf}{}", inter.pem).replace("\r\n", "\n")
        );
        let again = parse_chain(&chain.pem).unwrap();
        assert_eq!(again, chain);
    }

    #[test]
    fn rejects_empty_and_non_certificate_input() {
        assert_eq!(parse_chain("").unwrap_err(), PkiError::EmptyChain);
        assert_eq!(
            parse_chain("no pem here").unwrap_err(),
            PkiError::EmptyChain
        );
        let key_pem = leaf_key()
            .to_pem(crate::api::PrivateKeyEncoding::PKCS8)
            .unwrap();
        let root = TestCa::root("Root");
        let leaf = root.issue(&leaf_key(), &LeafOptions::dns(&["a.example"]));
        let err = parse_chain(&format!("{leaf}{key_pem}")).unwrap_err();
        assert!(matches!(err, PkiError::InvalidChainPem(_)), "{err}");
        assert!(err.to_string().contains("PRIVATE KEY"), "{err}");
    }

    #[test]
    fn rejects_garbage_certificate_with_its_index() {
        let root = TestCa::root("Root");
        let leaf = root.issue(&leaf_key(), &LeafOptions::dns(&["a.example"]));
        let bad = encode_pem(PEM_CERTIFICATE, vec![0x30, 0x03, 0x02, 0x01, 0x01]);
        let err = parse_chain(&format!("{leaf}{bad}")).unwrap_err();
        assert!(
            matches!(err, PkiError::InvalidCertificate { index: 1, .. }),
            "{err}"
        );
        let err = parse_chain(&bad).unwrap_err();
        assert!(
            matches!(err, PkiError::InvalidCertificate { index: 0, .. }),
            "{err}"
        );
        assert!(
            err.to_string().starts_with("certificate #0 of the chain"),
            "{err}"
        );
    }

    #[test]
    fn rejects_trailing_bytes() {
        let root = TestCa::root("Root");
        let leaf = root.issue(&leaf_key(), &LeafOptions::dns(&["a.example"]));
        let mut der = pem::parse(&leaf).unwrap().into_contents();
        der.extend_from_slice(&[0, 0]);
        let err = parse_chain(&encode_pem(PEM_CERTIFICATE, der)).unwrap_err();
        assert!(err.to_string().contains("trailing"), "{err}");
    }

    #[test]
    fn key_matching() {
        let root = TestCa::root("Root");
        let key = leaf_key();
        let other = leaf_key();
        let chain = parse_chain(&root.issue(&key, &LeafOptions::dns(&["a.example"]))).unwrap();
        assert!(key_matches_leaf(&key, &chain.leaf));
        assert!(!key_matches_leaf(&other, &chain.leaf));
        // A key re-read from any PEM encoding still matches.
        for enc in [
            crate::api::PrivateKeyEncoding::PKCS1,
            crate::api::PrivateKeyEncoding::PKCS8,
        ] {
            let back = crate::pki::key::parse_pem(&key.to_pem(enc).unwrap()).unwrap();
            assert!(key_matches_leaf(&back, &chain.leaf));
        }
    }

    #[test]
    fn key_matching_for_every_key_kind() {
        let root = TestCa::root("Root");
        for spec in [
            KeySpec::Ecdsa(crate::pki::key::EcCurve::P384),
            KeySpec::Ed25519,
            KeySpec::Rsa { bits: 2048 },
        ] {
            let key = generate(&spec).unwrap();
            let chain = parse_chain(&root.issue(&key, &LeafOptions::dns(&["a.example"]))).unwrap();
            assert!(key_matches_leaf(&key, &chain.leaf), "{spec}");
        }
    }

    #[test]
    fn csr_signed_by_ca_matches_key() {
        // The real path: CSR from our key, CA signs it, the returned chain matches the key.
        let root = TestCa::root("Root");
        let key = leaf_key();
        let csr = crate::pki::csr::build_csr(
            &key,
            &["a.example".to_string()],
            &["192.0.2.9".parse().unwrap()],
            Some("a.example"),
        )
        .unwrap();
        let chain = parse_chain(&root.sign_csr(&csr)).unwrap();
        assert!(key_matches_leaf(&key, &chain.leaf));
        assert_eq!(chain.leaf.dns_names, vec!["a.example"]);
        assert_eq!(
            chain.leaf.ip_addresses,
            vec!["192.0.2.9".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn top_issuer_is_that_of_the_last_certificate() {
        let root = TestCa::root("ISRG Root X1");
        let inter = root.intermediate("R11");
        let leaf = inter.issue(&leaf_key(), &LeafOptions::dns(&["a.example"]));
        let chain = parse_chain(&format!("{leaf}{}", inter.pem)).unwrap();
        assert_eq!(top_issuer_cn(&chain).as_deref(), Some("ISRG Root X1"));
        let alone = parse_chain(&leaf).unwrap();
        assert_eq!(top_issuer_cn(&alone).as_deref(), Some("R11"));
    }

    #[test]
    fn root_pem_only_for_self_signed_top() {
        let root = TestCa::root("Root");
        let inter = root.intermediate("Inter");
        let leaf = inter.issue(&leaf_key(), &LeafOptions::dns(&["a.example"]));
        let without_root = parse_chain(&format!("{leaf}{}", inter.pem)).unwrap();
        assert_eq!(without_root.root_pem(), None);
        let with_root = parse_chain(&format!("{leaf}{}{}", inter.pem, root.pem)).unwrap();
        assert_eq!(with_root.root_pem().as_deref(), Some(root.pem.as_str()));
        let lone_root = parse_chain(&root.pem).unwrap();
        assert_eq!(lone_root.root_pem(), None);
    }

    /// Two chains for the same leaf, as Let's Encrypt used to offer: the default one up to a
    /// cross-signed intermediate ("DST Root CA X3") and an alternate ending at "ISRG Root X1".
    fn two_chains() -> (Vec<String>, TestCa, TestCa) {
        let isrg = TestCa::root("ISRG Root X1");
        let dst = TestCa::root("DST Root CA X3");
        let inter = isrg.intermediate("R3");
        let key = leaf_key();
        let leaf = inter.issue(&key, &LeafOptions::dns(&["a.example"]));
        let cross = dst.cross_sign(&isrg);
        let default = format!("{leaf}{}{cross}", inter.pem);
        let alternate = format!("{leaf}{}", inter.pem);
        (vec![default, alternate], isrg, dst)
    }

    #[test]
    fn preferred_chain_by_top_issuer() {
        let (chains, _, _) = two_chains();
        assert_eq!(choose_preferred_chain(&chains, Some("DST Root CA X3")), 0);
        assert_eq!(choose_preferred_chain(&chains, Some("ISRG Root X1")), 0);
        // Reversed order: the first match wins.
        let reversed: Vec<String> = chains.iter().rev().cloned().collect();
        assert_eq!(choose_preferred_chain(&reversed, Some("ISRG Root X1")), 0);
        assert_eq!(choose_preferred_chain(&reversed, Some("DST Root CA X3")), 1);
    }

    #[test]
    fn preferred_chain_by_top_subject_when_root_included() {
        let (chains, isrg, _) = two_chains();
        // The alternate chain with the root itself appended: its top is "ISRG Root X1"
        // (self-signed), and the default chain's top is the cross-sign, issued by DST.
        let with_root = format!("{}{}", chains[1], isrg.pem);
        let all = vec![chains[1].clone(), with_root];
        assert_eq!(choose_preferred_chain(&all, Some("R3")), 0);
        let other = TestCa::root("Other Root");
        let other_inter = other.intermediate("O1");
        let leaf = other_inter.issue(&leaf_key(), &LeafOptions::dns(&["a.example"]));
        let all = vec![
            format!("{leaf}{}", other_inter.pem),
            format!("{}{}", chains[1], isrg.pem),
        ];
        assert_eq!(choose_preferred_chain(&all, Some("ISRG Root X1")), 1);
        assert_eq!(choose_preferred_chain(&all, Some("O1")), 0);
    }

    #[test]
    fn preferred_chain_defaults_to_zero() {
        let (chains, _, _) = two_chains();
        assert_eq!(choose_preferred_chain(&chains, None), 0);
        assert_eq!(choose_preferred_chain(&chains, Some("")), 0);
        assert_eq!(choose_preferred_chain(&chains, Some("No Such Root")), 0);
        assert_eq!(choose_preferred_chain(&[], Some("ISRG Root X1")), 0);
        // Matching is exact, like cert-manager.
        assert_eq!(choose_preferred_chain(&chains, Some("isrg root x1")), 0);
    }

    #[test]
    fn preferred_chain_skips_unparseable_chains() {
        let (chains, _, _) = two_chains();
        let all = vec!["garbage".to_string(), chains[1].clone()];
        // chains[1] ends at R3, issued by ISRG Root X1.
        assert_eq!(choose_preferred_chain(&all, Some("ISRG Root X1")), 1);
    }

    #[test]
    fn preferred_chain_picks_alternate() {
        let isrg = TestCa::root("ISRG Root X1");
        let other = TestCa::root("Other Root");
        let inter_a = isrg.intermediate("A");
        let inter_b = other.intermediate("B");
        let key = leaf_key();
        let leaf_a = inter_a.issue(&key, &LeafOptions::dns(&["a.example"]));
        let leaf_b = inter_b.issue(&key, &LeafOptions::dns(&["a.example"]));
        let chains = vec![
            format!("{leaf_a}{}", inter_a.pem),
            format!("{leaf_b}{}", inter_b.pem),
        ];
        assert_eq!(choose_preferred_chain(&chains, Some("Other Root")), 1);
        assert_eq!(choose_preferred_chain(&chains, Some("B")), 1);
        assert_eq!(choose_preferred_chain(&chains, Some("ISRG Root X1")), 0);
    }

    #[test]
    fn chains_link_only_in_order() {
        let root = TestCa::root("Links Root");
        let inter = root.intermediate("Links Intermediate");
        let leaf = inter.issue(&leaf_key(), &LeafOptions::dns(&["a.example"]));
        let good = parse_chain(&format!("{leaf}{}", inter.pem)).unwrap();
        assert_eq!(chain_links(&good), Ok(()));
        let alone = parse_chain(&leaf).unwrap();
        assert_eq!(chain_links(&alone), Ok(()));
        let wrong = parse_chain(&format!("{leaf}{}", root.pem)).unwrap();
        assert!(chain_links(&wrong).unwrap_err().contains("#1"));
    }
}
