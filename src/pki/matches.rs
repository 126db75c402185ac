//! Does the certificate and key in a Secret still satisfy the Certificate's spec?
//!
//! This is the steady-state question of every reconcile: answering "yes" means no CA request.
//! The answer "no" comes with the reason, worded for a human, because it becomes the message of
//! the `Issuing` condition and of an Event.
//!
//! Deliberately not compared:
//! - the issuer (the controller compares the Secret's issuer annotations itself);
//! - the subject common name: ACME CAs may drop the CN or pick another SAN for it, and
//!   `commonName` is already part of the SANs checked here, so comparing it would re-issue
//!   forever;
//! - `duration`: CAs are free to ignore the requested lifetime.

use std::fmt;

use jiff::Timestamp;

use super::chain::{ParsedLeaf, key_matches_leaf};
use super::csr::{Identifier, identifiers};
use super::key::{KeySpec, PrivateKey};
use crate::api::{CertificateSpec, PrivateKeyEncoding};

/// Why a Secret does not satisfy its Certificate. Variants are checked in this order, the first
/// found is reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// The spec itself cannot be satisfied (bad key spec, bad IP); nothing to compare against.
    InvalidSpec(String),
    /// `tls.key` is not the key of `tls.crt`.
    KeyNotForCertificate,
    /// The certificate is past its `notAfter`.
    Expired { not_after: Timestamp },
    /// The certificate's SANs differ from the spec's names (both lists sorted).
    Names {
        missing: Vec<Identifier>,
        extra: Vec<Identifier>,
    },
    /// The key is of another algorithm or size than `privateKey` asks for.
    KeyType { wanted: KeySpec, found: KeySpec },
    /// Only the PEM encoding of `tls.key` differs; rewriting the Secret fixes it.
    KeyEncoding {
        wanted: PrivateKeyEncoding,
        found: PrivateKeyEncoding,
    },
}

impl Mismatch {
    /// A condition `reason` (CamelCase), following cert-manager's names where one exists.
    pub fn reason(&self) -> &'static str {
        match self {
            Mismatch::InvalidSpec(_) => "InvalidSpec",
            Mismatch::KeyNotForCertificate => "InvalidKeyPair",
            Mismatch::Expired { .. } => "Expired",
            Mismatch::Names { .. } | Mismatch::KeyType { .. } | Mismatch::KeyEncoding { .. } => {
                "SecretMismatch"
            }
        }
    }

    /// Whether a new certificate is needed. `false` for [`Mismatch::KeyEncoding`] (re-encode
    /// `tls.key` in place) and [`Mismatch::InvalidSpec`] (no issuance can succeed until the spec
    /// is fixed).
    pub fn requires_reissue(&self) -> bool {
        !matches!(
            self,
            Mismatch::KeyEncoding { .. } | Mismatch::InvalidSpec(_)
        )
    }
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::InvalidSpec(reason) => write!(f, "the Certificate spec is invalid: {reason}"),
            Mismatch::KeyNotForCertificate => f.write_str(
                "the private key in the Secret does not match the certificate's public key",
            ),
            Mismatch::Expired { not_after } => {
                write!(f, "the certificate expired at {not_after}")
            }
            Mismatch::Names { missing, extra } => {
                f.write_str("the certificate's names differ from the spec:")?;
                if !missing.is_empty() {
                    write!(f, " missing {}", describe(missing))?;
                }
                if !missing.is_empty() && !extra.is_empty() {
                    f.write_str(";")?;
                }
                if !extra.is_empty() {
                    write!(f, " not requested {}", describe(extra))?;
                }
                Ok(())
            }
            Mismatch::KeyType { wanted, found } => {
                write!(
                    f,
                    "the private key is {found} but the spec asks for {wanted}"
                )
            }
            Mismatch::KeyEncoding { wanted, found } => write!(
                f,
                "the private key is stored as {found:?} but the spec asks for {wanted:?}"
            ),
        }
    }
}

/// `DNS names a, b and IP address c`.
fn describe(ids: &[Identifier]) -> String {
    let group = |singular: &str, plural: &str, values: Vec<String>| match values.len() {
        0 => None,
        1 => Some(format!("{singular} {}", values[0])),
        _ => Some(format!("{plural} {}", values.join(", "))),
    };
    let dns = ids
        .iter()
        .filter(|id| matches!(id, Identifier::Dns(_)))
        .map(Identifier::to_string)
        .collect();
    let ips = ids
        .iter()
        .filter(|id| matches!(id, Identifier::Ip(_)))
        .map(Identifier::to_string)
        .collect();
    [
        group("DNS name", "DNS names", dns),
        group("IP address", "IP addresses", ips),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" and ")
}

/// Checks the Secret's certificate (`leaf`) and key against the spec at time `now`. `Ok(())`
/// means nothing needs doing apart from the renewal schedule (and the issuer check, which the
/// controller does). Check order: spec validity, key/certificate pair, expiry, names, key type,
/// key encoding; the first difference is returned.
pub fn secret_satisfies(
    spec: &CertificateSpec,
    leaf: &ParsedLeaf,
    key: &PrivateKey,
    now: Timestamp,
) -> Result<(), Mismatch> {
    let wanted_key = KeySpec::from_spec(spec.private_key.as_ref())
        .map_err(|e| Mismatch::InvalidSpec(e.to_string()))?;
    let wanted_names = identifiers(spec).map_err(|e| Mismatch::InvalidSpec(e.to_string()))?;

    if !key_matches_leaf(key, leaf) {
        return Err(Mismatch::KeyNotForCertificate);
    }
    if now >= leaf.not_after {
        return Err(Mismatch::Expired {
            not_after: leaf.not_after,
        });
    }

    let have_names = leaf.identifiers();
    let missing: Vec<Identifier> = wanted_names
        .iter()
        .filter(|id| have_names.binary_search(id).is_err())
        .cloned()
        .collect();
    let extra: Vec<Identifier> = have_names
        .iter()
        .filter(|id| wanted_names.binary_search(id).is_err())
        .cloned()
        .collect();
    if !missing.is_empty() || !extra.is_empty() {
        return Err(Mismatch::Names { missing, extra });
    }

    if key.spec() != wanted_key {
        return Err(Mismatch::KeyType {
            wanted: wanted_key,
            found: key.spec(),
        });
    }

    let requested = spec
        .private_key
        .as_ref()
        .and_then(|pk| pk.encoding)
        .unwrap_or_default();
    let wanted = key.effective_encoding(requested);
    if let Some(found) = key.parsed_encoding().filter(|found| *found != wanted) {
        return Err(Mismatch::KeyEncoding { wanted, found });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{PrivateKeyAlgorithm, PrivateKeySpec};
    use crate::pki::chain::parse_chain;
    use crate::pki::key::{EcCurve, generate, parse_pem};
    use crate::pki::test_support::{LeafOptions, TestCa, ts};

    const NOW: &str = "2025-02-01T00:00:00Z";

    fn spec(dns: &[&str], ips: &[&str], cn: Option<&str>) -> CertificateSpec {
        CertificateSpec {
            secret_name: "tls".into(),
            dns_names: dns.iter().map(|s| s.to_string()).collect(),
            ip_addresses: ips.iter().map(|s| s.to_string()).collect(),
            common_name: cn.map(str::to_string),
            ..Default::default()
        }
    }

    fn with_key(mut s: CertificateSpec, pk: PrivateKeySpec) -> CertificateSpec {
        s.private_key = Some(pk);
        s
    }

    /// A leaf for `key` with the given names, from a fresh CA, valid Jan 1 - Apr 1 2025.
    fn leaf(key: &PrivateKey, dns: &[&str], ips: &[&str], cn: Option<&str>) -> ParsedLeaf {
        let ca = TestCa::root("Root");
        let opts = LeafOptions {
            dns,
            ips,
            cn,
            ..LeafOptions::dns(&[])
        };
        parse_chain(&ca.issue(key, &opts)).unwrap().leaf
    }

    /// The key as read back from a Secret written with the default (PKCS1) encoding.
    fn stored(key: &PrivateKey, encoding: PrivateKeyEncoding) -> PrivateKey {
        parse_pem(&key.to_pem(encoding).unwrap()).unwrap()
    }

    #[test]
    fn satisfied_when_everything_matches() {
        let key = generate(&KeySpec::default()).unwrap();
        let l = leaf(&key, &["a.example", "b.example"], &["192.0.2.1"], None);
        let s = spec(
            &["b.example", "a.example"],
            &["192.0.2.1"],
            Some("a.example"),
        );
        assert_eq!(secret_satisfies(&s, &l, &key, ts(NOW)), Ok(()));
        let read_back = stored(&key, PrivateKeyEncoding::PKCS1);
        assert_eq!(secret_satisfies(&s, &l, &read_back, ts(NOW)), Ok(()));
    }

    #[test]
    fn cn_only_needs_to_be_a_san() {
        let key = generate(&KeySpec::default()).unwrap();
        // The CA set no CN at all (as Let's Encrypt's short-lived profile does).
        let l = leaf(&key, &["a.example"], &[], None);
        assert_eq!(
            secret_satisfies(&spec(&[], &[], Some("a.example")), &l, &key, ts(NOW)),
            Ok(())
        );
        // A CN that is not a SAN of the certificate is missing.
        let err = secret_satisfies(
            &spec(&["a.example"], &[], Some("c.example")),
            &l,
            &key,
            ts(NOW),
        )
        .unwrap_err();
        assert_eq!(
            err,
            Mismatch::Names {
                missing: vec![Identifier::Dns("c.example".into())],
                extra: vec![]
            }
        );
    }

    #[test]
    fn names_compare_case_insensitively() {
        let key = generate(&KeySpec::default()).unwrap();
        let l = leaf(&key, &["a.example"], &[], None);
        assert_eq!(
            secret_satisfies(&spec(&[], &[], Some("A.Example")), &l, &key, ts(NOW)),
            Ok(())
        );
    }

    #[test]
    fn reports_missing_and_extra_names() {
        let key = generate(&KeySpec::default()).unwrap();
        let l = leaf(&key, &["a.example", "old.example"], &["10.0.0.1"], None);
        let s = spec(
            &["a.example", "new.example"],
            &["10.0.0.2", "2001:db8::1"],
            None,
        );
        let err = secret_satisfies(&s, &l, &key, ts(NOW)).unwrap_err();
        assert_eq!(
            err,
            Mismatch::Names {
                missing: vec![
                    Identifier::Dns("new.example".into()),
                    Identifier::Ip("10.0.0.2".parse().unwrap()),
                    Identifier::Ip("2001:db8::1".parse().unwrap()),
                ],
                extra: vec![
                    Identifier::Dns("old.example".into()),
                    Identifier::Ip("10.0.0.1".parse().unwrap()),
                ],
            }
        );
        assert_eq!(
            err.to_string(),
            "the certificate's names differ from the spec: missing DNS name new.example and \
             IP addresses 10.0.0.2, 2001:db8::1; not requested DNS name old.example and IP \
             address 10.0.0.1"
        );
        assert_eq!(err.reason(), "SecretMismatch");
        assert!(err.requires_reissue());
    }

    #[test]
    fn reports_only_missing_or_only_extra() {
        let key = generate(&KeySpec::default()).unwrap();
        let l = leaf(&key, &["a.example"], &[], None);
        let err = secret_satisfies(
            &spec(&["a.example", "b.example", "c.example"], &[], None),
            &l,
            &key,
            ts(NOW),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the certificate's names differ from the spec: missing DNS names b.example, c.example"
        );
        let l = leaf(&key, &["a.example", "b.example"], &[], None);
        let err =
            secret_satisfies(&spec(&["a.example"], &[], None), &l, &key, ts(NOW)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the certificate's names differ from the spec: not requested DNS name b.example"
        );
    }

    #[test]
    fn wildcard_is_its_own_name() {
        let key = generate(&KeySpec::default()).unwrap();
        let l = leaf(&key, &["*.example.com"], &[], None);
        let err = secret_satisfies(
            &spec(&["*.example.com", "example.com"], &[], None),
            &l,
            &key,
            ts(NOW),
        )
        .unwrap_err();
        assert!(matches!(err, Mismatch::Names { .. }), "{err}");
    }

    #[test]
    fn reports_foreign_key() {
        let key = generate(&KeySpec::default()).unwrap();
        let other = generate(&KeySpec::default()).unwrap();
        let l = leaf(&key, &["a.example"], &[], None);
        let err =
            secret_satisfies(&spec(&["a.example"], &[], None), &l, &other, ts(NOW)).unwrap_err();
        assert_eq!(err, Mismatch::KeyNotForCertificate);
        assert_eq!(
            err.to_string(),
            "the private key in the Secret does not match the certificate's public key"
        );
        assert_eq!(err.reason(), "InvalidKeyPair");
    }

    #[test]
    fn foreign_key_is_reported_before_names() {
        let key = generate(&KeySpec::default()).unwrap();
        let other = generate(&KeySpec::default()).unwrap();
        let l = leaf(&key, &["a.example"], &[], None);
        let err =
            secret_satisfies(&spec(&["b.example"], &[], None), &l, &other, ts(NOW)).unwrap_err();
        assert_eq!(err, Mismatch::KeyNotForCertificate);
    }

    #[test]
    fn reports_expiry_at_not_after() {
        let key = generate(&KeySpec::default()).unwrap();
        let l = leaf(&key, &["a.example"], &[], None);
        let s = spec(&["a.example"], &[], None);
        assert_eq!(
            secret_satisfies(&s, &l, &key, ts("2025-03-31T23:59:59Z")),
            Ok(())
        );
        let err = secret_satisfies(&s, &l, &key, ts("2025-04-01T00:00:00Z")).unwrap_err();
        assert_eq!(
            err,
            Mismatch::Expired {
                not_after: ts("2025-04-01T00:00:00Z")
            }
        );
        assert_eq!(
            err.to_string(),
            "the certificate expired at 2025-04-01T00:00:00Z"
        );
        assert_eq!(err.reason(), "Expired");
    }

    #[test]
    fn reports_key_type_and_size() {
        let p256 = generate(&KeySpec::Ecdsa(EcCurve::P256)).unwrap();
        let l = leaf(&p256, &["a.example"], &[], None);
        let base = spec(&["a.example"], &[], None);
        let cases = [
            (
                PrivateKeySpec {
                    size: Some(384),
                    ..Default::default()
                },
                KeySpec::Ecdsa(EcCurve::P384),
                "the private key is ECDSA P-256 but the spec asks for ECDSA P-384",
            ),
            (
                PrivateKeySpec {
                    algorithm: Some(PrivateKeyAlgorithm::RSA),
                    ..Default::default()
                },
                KeySpec::Rsa { bits: 2048 },
                "the private key is ECDSA P-256 but the spec asks for RSA 2048",
            ),
            (
                PrivateKeySpec {
                    algorithm: Some(PrivateKeyAlgorithm::Ed25519),
                    ..Default::default()
                },
                KeySpec::Ed25519,
                "the private key is ECDSA P-256 but the spec asks for Ed25519",
            ),
        ];
        for (pk, wanted, msg) in cases {
            let err =
                secret_satisfies(&with_key(base.clone(), pk), &l, &p256, ts(NOW)).unwrap_err();
            assert_eq!(
                err,
                Mismatch::KeyType {
                    wanted,
                    found: KeySpec::Ecdsa(EcCurve::P256)
                }
            );
            assert_eq!(err.to_string(), msg);
            assert!(err.requires_reissue());
        }
    }

    #[test]
    fn rsa_size_mismatch() {
        let rsa = generate(&KeySpec::Rsa { bits: 2048 }).unwrap();
        let l = leaf(&rsa, &["a.example"], &[], None);
        let s = with_key(
            spec(&["a.example"], &[], None),
            PrivateKeySpec {
                algorithm: Some(PrivateKeyAlgorithm::RSA),
                size: Some(4096),
                ..Default::default()
            },
        );
        let err = secret_satisfies(&s, &l, &rsa, ts(NOW)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the private key is RSA 2048 but the spec asks for RSA 4096"
        );
        let s = with_key(
            spec(&["a.example"], &[], None),
            PrivateKeySpec {
                algorithm: Some(PrivateKeyAlgorithm::RSA),
                ..Default::default()
            },
        );
        assert_eq!(secret_satisfies(&s, &l, &rsa, ts(NOW)), Ok(()));
    }

    #[test]
    fn reports_encoding_only_as_last_and_without_reissue() {
        let key = generate(&KeySpec::default()).unwrap();
        let l = leaf(&key, &["a.example"], &[], None);
        let pkcs8 = with_key(
            spec(&["a.example"], &[], None),
            PrivateKeySpec {
                encoding: Some(PrivateKeyEncoding::PKCS8),
                ..Default::default()
            },
        );
        let as_sec1 = stored(&key, PrivateKeyEncoding::PKCS1);
        let err = secret_satisfies(&pkcs8, &l, &as_sec1, ts(NOW)).unwrap_err();
        assert_eq!(
            err,
            Mismatch::KeyEncoding {
                wanted: PrivateKeyEncoding::PKCS8,
                found: PrivateKeyEncoding::PKCS1
            }
        );
        assert_eq!(
            err.to_string(),
            "the private key is stored as PKCS1 but the spec asks for PKCS8"
        );
        assert!(!err.requires_reissue());
        // The default encoding is PKCS1.
        let as_pkcs8 = stored(&key, PrivateKeyEncoding::PKCS8);
        let err =
            secret_satisfies(&spec(&["a.example"], &[], None), &l, &as_pkcs8, ts(NOW)).unwrap_err();
        assert!(matches!(err, Mismatch::KeyEncoding { .. }), "{err}");
        // A generated key has no stored encoding to compare.
        assert_eq!(secret_satisfies(&pkcs8, &l, &key, ts(NOW)), Ok(()));
    }

    #[test]
    fn ed25519_pkcs8_satisfies_default_encoding() {
        let key = generate(&KeySpec::Ed25519).unwrap();
        let l = leaf(&key, &["a.example"], &[], None);
        let s = with_key(
            spec(&["a.example"], &[], None),
            PrivateKeySpec {
                algorithm: Some(PrivateKeyAlgorithm::Ed25519),
                ..Default::default()
            },
        );
        let read_back = stored(&key, PrivateKeyEncoding::PKCS1);
        assert_eq!(read_back.parsed_encoding(), Some(PrivateKeyEncoding::PKCS8));
        assert_eq!(secret_satisfies(&s, &l, &read_back, ts(NOW)), Ok(()));
    }

    #[test]
    fn invalid_spec_is_reported_first() {
        let key = generate(&KeySpec::default()).unwrap();
        let l = leaf(&key, &["a.example"], &[], None);
        let bad_ip = spec(&["a.example"], &["not-an-ip"], None);
        let err = secret_satisfies(&bad_ip, &l, &key, ts(NOW)).unwrap_err();
        assert!(matches!(err, Mismatch::InvalidSpec(_)), "{err}");
        assert!(err.to_string().contains("not-an-ip"), "{err}");
        assert!(!err.requires_reissue());
        let bad_key = with_key(
            spec(&["a.example"], &[], None),
            PrivateKeySpec {
                size: Some(521),
                ..Default::default()
            },
        );
        let err = secret_satisfies(&bad_key, &l, &key, ts(NOW)).unwrap_err();
        assert_eq!(err.reason(), "InvalidSpec");
        assert!(err.to_string().contains("521"), "{err}");
    }
}
