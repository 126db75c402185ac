//! Private keys: what the spec asks for, generation, and the PEM forms a Secret may hold.
//!
//! A [`PrivateKey`] always holds PKCS#8 DER internally, whatever PEM it was read from, so there is
//! one canonical form to sign with and compare. The PEM written to `tls.key` follows
//! `privateKey.encoding` like cert-manager: `PKCS1` means `RSA PRIVATE KEY` for RSA and SEC1
//! `EC PRIVATE KEY` for ECDSA (Ed25519 has no such form and stays PKCS#8), `PKCS8` means
//! `PRIVATE KEY`.

use std::fmt;

use pkcs8::der::asn1::AnyRef;
use pkcs8::der::{Decode, Encode};
use pkcs8::spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};
use pkcs8::{ObjectIdentifier, PrivateKeyInfo};
use rcgen::{PublicKeyData, SignatureAlgorithm};
use rustls::pki_types::PrivatePkcs8KeyDer;
use sec1::{EcParameters, EcPrivateKey};

use super::PkiError;
use crate::api::{PrivateKeyAlgorithm, PrivateKeyEncoding, PrivateKeySpec};

const OID_RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_SECP521R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");

const PEM_PKCS8: &str = "PRIVATE KEY";
const PEM_RSA: &str = "RSA PRIVATE KEY";
const PEM_EC: &str = "EC PRIVATE KEY";
/// `openssl ecparam -genkey` writes this block before the key; it is redundant and skipped.
const PEM_EC_PARAMETERS: &str = "EC PARAMETERS";

/// A supported ECDSA curve.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EcCurve {
    P256,
    P384,
}

impl EcCurve {
    /// The size in bits, as written in `privateKey.size`.
    pub fn bits(self) -> u32 {
        match self {
            EcCurve::P256 => 256,
            EcCurve::P384 => 384,
        }
    }

    fn from_bits(bits: u32) -> Option<Self> {
        match bits {
            256 => Some(EcCurve::P256),
            384 => Some(EcCurve::P384),
            _ => None,
        }
    }

    fn oid(self) -> ObjectIdentifier {
        match self {
            EcCurve::P256 => OID_SECP256R1,
            EcCurve::P384 => OID_SECP384R1,
        }
    }

    fn from_oid(oid: ObjectIdentifier) -> Result<Self, PkiError> {
        match oid {
            OID_SECP256R1 => Ok(EcCurve::P256),
            OID_SECP384R1 => Ok(EcCurve::P384),
            OID_SECP521R1 => Err(PkiError::UnsupportedKey(
                "ECDSA P-521 keys are not supported (use P-256 or P-384)".into(),
            )),
            other => Err(PkiError::UnsupportedKey(format!(
                "ECDSA key on unknown curve {other}"
            ))),
        }
    }
}

impl fmt::Display for EcCurve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "P-{}", self.bits())
    }
}

/// The kind of key a Certificate wants (or a parsed key is): algorithm plus size.
///
/// An enum rather than `(algorithm, size)` so that "ECDSA 2048" cannot exist. `Rsa::bits` holds any
/// modulus size because a key read from a Secret may have one the spec would not generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeySpec {
    Rsa { bits: u32 },
    Ecdsa(EcCurve),
    Ed25519,
}

impl Default for KeySpec {
    /// ECDSA P-256, the default of `privateKey` (as in cert-manager).
    fn default() -> Self {
        KeySpec::Ecdsa(EcCurve::P256)
    }
}

impl KeySpec {
    /// Resolves `privateKey.{algorithm,size}` with the documented defaults (ECDSA; RSA 2048,
    /// ECDSA 256). The CRD schema already rejects bad combinations; this repeats the check so an
    /// object that slipped past (an older CRD, a direct etcd write) fails clearly instead of
    /// producing a surprising key.
    pub fn from_spec(spec: Option<&PrivateKeySpec>) -> Result<Self, PkiError> {
        let algorithm = spec.and_then(|s| s.algorithm).unwrap_or_default();
        let size = spec.and_then(|s| s.size);
        match (algorithm, size) {
            (PrivateKeyAlgorithm::RSA, None) => Ok(KeySpec::Rsa { bits: 2048 }),
            (PrivateKeyAlgorithm::RSA, Some(bits @ (2048 | 3072 | 4096))) => {
                Ok(KeySpec::Rsa { bits: bits as u32 })
            }
            (PrivateKeyAlgorithm::RSA, Some(other)) => Err(PkiError::InvalidKeySpec(format!(
                "RSA key size {other} is not supported (use 2048, 3072 or 4096)"
            ))),
            (PrivateKeyAlgorithm::ECDSA, None) => Ok(KeySpec::Ecdsa(EcCurve::P256)),
            (PrivateKeyAlgorithm::ECDSA, Some(bits)) => u32::try_from(bits)
                .ok()
                .and_then(EcCurve::from_bits)
                .map(KeySpec::Ecdsa)
                .ok_or_else(|| {
                    PkiError::InvalidKeySpec(format!(
                        "ECDSA key size {bits} is not supported (use 256 or 384)"
                    ))
                }),
            (PrivateKeyAlgorithm::Ed25519, None) => Ok(KeySpec::Ed25519),
            (PrivateKeyAlgorithm::Ed25519, Some(bits)) => Err(PkiError::InvalidKeySpec(format!(
                "Ed25519 keys take no size, got {bits}"
            ))),
        }
    }

    /// The algorithm, as named in the API.
    pub fn algorithm(self) -> PrivateKeyAlgorithm {
        match self {
            KeySpec::Rsa { .. } => PrivateKeyAlgorithm::RSA,
            KeySpec::Ecdsa(_) => PrivateKeyAlgorithm::ECDSA,
            KeySpec::Ed25519 => PrivateKeyAlgorithm::Ed25519,
        }
    }

    /// The size in bits as `privateKey.size` spells it; `None` for Ed25519, which has no size.
    pub fn size(self) -> Option<u32> {
        match self {
            KeySpec::Rsa { bits } => Some(bits),
            KeySpec::Ecdsa(curve) => Some(curve.bits()),
            KeySpec::Ed25519 => None,
        }
    }

    /// The signature algorithm used for CSRs made with this key. SHA-256 for RSA: every ACME CA
    /// accepts it; P-384 pairs with SHA-384 as is conventional.
    fn signature_algorithm(self) -> &'static SignatureAlgorithm {
        match self {
            KeySpec::Rsa { .. } => &rcgen::PKCS_RSA_SHA256,
            KeySpec::Ecdsa(EcCurve::P256) => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeySpec::Ecdsa(EcCurve::P384) => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeySpec::Ed25519 => &rcgen::PKCS_ED25519,
        }
    }
}

impl fmt::Display for KeySpec {
    /// `RSA 2048`, `ECDSA P-256`, `Ed25519`: the form used in conditions and events.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySpec::Rsa { bits } => write!(f, "RSA {bits}"),
            KeySpec::Ecdsa(curve) => write!(f, "ECDSA {curve}"),
            KeySpec::Ed25519 => f.write_str("Ed25519"),
        }
    }
}

/// Generates a new private key of the given kind (aws-lc-rs through rcgen).
///
/// RSA 4096 takes a noticeable fraction of a second; callers run it once per issuance.
pub fn generate(spec: &KeySpec) -> Result<PrivateKey, PkiError> {
    let failed = |e: rcgen::Error| PkiError::KeyGeneration {
        spec: *spec,
        reason: e.to_string(),
    };
    let key_pair = match *spec {
        KeySpec::Rsa { bits } => {
            let size = match bits {
                2048 => rcgen::RsaKeySize::_2048,
                3072 => rcgen::RsaKeySize::_3072,
                4096 => rcgen::RsaKeySize::_4096,
                other => {
                    return Err(PkiError::InvalidKeySpec(format!(
                        "RSA key size {other} is not supported (use 2048, 3072 or 4096)"
                    )));
                }
            };
            rcgen::KeyPair::generate_rsa_for(spec.signature_algorithm(), size).map_err(failed)?
        }
        KeySpec::Ecdsa(_) | KeySpec::Ed25519 => {
            rcgen::KeyPair::generate_for(spec.signature_algorithm()).map_err(failed)?
        }
    };
    PrivateKey::from_pkcs8_der(key_pair.serialized_der())
}

/// Parses a private key PEM as found in a Secret's `tls.key`: `PRIVATE KEY` (PKCS#8),
/// `RSA PRIVATE KEY` (PKCS#1) or `EC PRIVATE KEY` (SEC1), optionally preceded by an
/// `EC PARAMETERS` block. Exactly one key block is accepted: two keys in one Secret is ambiguous.
pub fn parse_pem(pem_text: &str) -> Result<PrivateKey, PkiError> {
    let blocks = pem::parse_many(pem_text).map_err(|e| PkiError::InvalidPem(e.to_string()))?;
    let mut keys = blocks.iter().filter(|b| b.tag() != PEM_EC_PARAMETERS);
    let block = keys
        .next()
        .ok_or_else(|| PkiError::InvalidPem("no PEM block found".into()))?;
    if keys.next().is_some() {
        return Err(PkiError::InvalidPem(
            "more than one PEM block; expected exactly one private key".into(),
        ));
    }
    let der = block.contents();
    let (mut key, encoding) = match block.tag() {
        PEM_PKCS8 => (PrivateKey::from_pkcs8_der(der)?, PrivateKeyEncoding::PKCS8),
        PEM_RSA => (
            PrivateKey::from_pkcs8_der(&pkcs1_to_pkcs8(der)?)?,
            PrivateKeyEncoding::PKCS1,
        ),
        PEM_EC => (
            PrivateKey::from_pkcs8_der(&sec1_to_pkcs8(der)?)?,
            PrivateKeyEncoding::PKCS1,
        ),
        other => {
            return Err(PkiError::InvalidPem(format!(
                "unsupported PEM block {other:?}; expected PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY"
            )));
        }
    };
    key.parsed_encoding = Some(encoding);
    Ok(key)
}

/// A private key, held as PKCS#8 DER, with its kind and public key worked out once.
/// Two `PrivateKey`s are equal when their key material is, whatever PEM they came from.
#[derive(Clone)]
pub struct PrivateKey {
    pkcs8_der: Vec<u8>,
    spec: KeySpec,
    spki_der: Vec<u8>,
    parsed_encoding: Option<PrivateKeyEncoding>,
}

impl PartialEq for PrivateKey {
    fn eq(&self, other: &Self) -> bool {
        self.pkcs8_der == other.pkcs8_der
    }
}

impl Eq for PrivateKey {}

impl fmt::Debug for PrivateKey {
    /// Never prints key material, so a stray `{:?}` in a log line cannot leak it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("spec", &self.spec)
            .field("parsed_encoding", &self.parsed_encoding)
            .finish_non_exhaustive()
    }
}

impl PrivateKey {
    /// Reads a PKCS#8 `PrivateKeyInfo`, works out its kind and validates it with aws-lc-rs (so a
    /// corrupted or inconsistent key is rejected here, not at signing time).
    ///
    /// A PKCS#8 v2 key (RFC 5958 `OneAsymmetricKey` with the public key attached, which is what
    /// aws-lc-rs generates for Ed25519) is stored as v1 without it: OpenSSL 3.0 and other TLS
    /// servers reading `tls.key` reject v2, and the public key is derivable anyway.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, PkiError> {
        let info = PrivateKeyInfo::from_der(der)
            .map_err(|e| PkiError::InvalidKey(format!("not a PKCS#8 PrivateKeyInfo: {e}")))?;
        let v1;
        let der = if info.public_key.is_some() {
            v1 = PrivateKeyInfo {
                public_key: None,
                ..info.clone()
            }
            .to_der()
            .map_err(|e| PkiError::InvalidKey(format!("PKCS#8 v2 to v1: {e}")))?;
            v1.as_slice()
        } else {
            der
        };
        let spec = match info.algorithm.oid {
            OID_RSA_ENCRYPTION => {
                let rsa = aws_lc_rs::rsa::KeyPair::from_pkcs8(der)
                    .map_err(|e| PkiError::InvalidKey(format!("RSA key rejected: {e}")))?;
                KeySpec::Rsa {
                    bits: u32::try_from(rsa.public_modulus_len() * 8).unwrap_or(u32::MAX),
                }
            }
            OID_EC_PUBLIC_KEY => {
                let curve = info.algorithm.parameters_oid().map_err(|_| {
                    PkiError::UnsupportedKey(
                        "ECDSA key without a named curve (explicit curve parameters are not \
                         supported; use P-256 or P-384)"
                            .into(),
                    )
                })?;
                KeySpec::Ecdsa(EcCurve::from_oid(curve)?)
            }
            OID_ED25519 => KeySpec::Ed25519,
            other => {
                return Err(PkiError::UnsupportedKey(format!(
                    "key algorithm {other} (supported: RSA, ECDSA, Ed25519)"
                )));
            }
        };
        let key_pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
            &PrivatePkcs8KeyDer::from(der),
            spec.signature_algorithm(),
        )
        .map_err(|e| PkiError::InvalidKey(format!("{spec} key rejected: {e}")))?;
        Ok(PrivateKey {
            pkcs8_der: der.to_vec(),
            spec,
            spki_der: key_pair.subject_public_key_info(),
            parsed_encoding: None,
        })
    }

    /// The algorithm and size of this key, to compare with what the spec wants.
    pub fn spec(&self) -> KeySpec {
        self.spec
    }

    /// The canonical PKCS#8 DER.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8_der
    }

    /// The DER `SubjectPublicKeyInfo` of the public half, as it appears in certificates and CSRs.
    pub fn public_key_spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The encoding of the PEM this key was parsed from (`None` for a generated key). Lets the
    /// controller notice that only `tls.key`'s encoding changed, which needs a rewrite, not a new
    /// certificate.
    pub fn parsed_encoding(&self) -> Option<PrivateKeyEncoding> {
        self.parsed_encoding
    }

    /// The encoding [`to_pem`](Self::to_pem) actually produces for a requested one: Ed25519 has
    /// no PKCS#1 form and falls back to PKCS#8.
    pub fn effective_encoding(&self, requested: PrivateKeyEncoding) -> PrivateKeyEncoding {
        match (self.spec, requested) {
            (KeySpec::Ed25519, _) => PrivateKeyEncoding::PKCS8,
            (_, requested) => requested,
        }
    }

    /// PEM for `tls.key` (LF line endings, trailing newline) in the requested encoding; see the
    /// module docs for the mapping.
    pub fn to_pem(&self, encoding: PrivateKeyEncoding) -> Result<String, PkiError> {
        let (tag, der) = match (self.effective_encoding(encoding), self.spec) {
            (PrivateKeyEncoding::PKCS8, _) | (_, KeySpec::Ed25519) => {
                (PEM_PKCS8, self.pkcs8_der.clone())
            }
            (PrivateKeyEncoding::PKCS1, KeySpec::Rsa { .. }) => (PEM_RSA, self.pkcs1_der()?),
            (PrivateKeyEncoding::PKCS1, KeySpec::Ecdsa(curve)) => (PEM_EC, self.sec1_der(curve)?),
        };
        Ok(encode_pem(tag, der))
    }

    /// An rcgen key pair, to sign CSRs (and, in tests, certificates).
    pub fn to_rcgen_key_pair(&self) -> Result<rcgen::KeyPair, PkiError> {
        rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
            &PrivatePkcs8KeyDer::from(self.pkcs8_der.as_slice()),
            self.spec.signature_algorithm(),
        )
        .map_err(|e| PkiError::InvalidKey(format!("{} key rejected: {e}", self.spec)))
    }

    fn info(&self) -> Result<PrivateKeyInfo<'_>, PkiError> {
        // Cannot fail: the same bytes were decoded in from_pkcs8_der.
        PrivateKeyInfo::from_der(&self.pkcs8_der)
            .map_err(|e| PkiError::InvalidKey(format!("not a PKCS#8 PrivateKeyInfo: {e}")))
    }

    /// PKCS#1 `RSAPrivateKey` is exactly the `privateKey` OCTET STRING of the PKCS#8 wrapper.
    fn pkcs1_der(&self) -> Result<Vec<u8>, PkiError> {
        Ok(self.info()?.private_key.to_vec())
    }

    /// SEC1 `ECPrivateKey` with the curve OID and public key filled in. Inside PKCS#8 both are
    /// often omitted (the curve sits in the outer AlgorithmIdentifier), but a standalone
    /// `EC PRIVATE KEY` needs the curve for OpenSSL, Go and nginx to load it.
    fn sec1_der(&self, curve: EcCurve) -> Result<Vec<u8>, PkiError> {
        let failed = |reason: String| PkiError::KeyEncoding {
            encoding: "SEC1",
            reason,
        };
        let info = self.info()?;
        let inner = EcPrivateKey::from_der(info.private_key)
            .map_err(|e| failed(format!("inner ECPrivateKey: {e}")))?;
        let spki = SubjectPublicKeyInfoRef::from_der(&self.spki_der)
            .map_err(|e| failed(format!("public key: {e}")))?;
        let sec1 = EcPrivateKey {
            private_key: inner.private_key,
            parameters: Some(EcParameters::NamedCurve(curve.oid())),
            public_key: inner
                .public_key
                .or(Some(spki.subject_public_key.raw_bytes())),
        };
        sec1.to_der().map_err(|e| failed(e.to_string()))
    }
}

/// Wraps a PKCS#1 `RSAPrivateKey` into PKCS#8 (`rsaEncryption` with NULL parameters).
fn pkcs1_to_pkcs8(pkcs1: &[u8]) -> Result<Vec<u8>, PkiError> {
    let info = PrivateKeyInfo {
        algorithm: AlgorithmIdentifierRef {
            oid: OID_RSA_ENCRYPTION,
            parameters: Some(AnyRef::NULL),
        },
        private_key: pkcs1,
        public_key: None,
    };
    info.to_der()
        .map_err(|e| PkiError::InvalidKey(format!("RSA PRIVATE KEY: {e}")))
}

/// Wraps a SEC1 `ECPrivateKey` into PKCS#8, moving the curve to the AlgorithmIdentifier as
/// RFC 5915 section 3 / OpenSSL do. A SEC1 key without curve parameters cannot be placed on a
/// curve and is rejected.
fn sec1_to_pkcs8(sec1: &[u8]) -> Result<Vec<u8>, PkiError> {
    let key = EcPrivateKey::from_der(sec1)
        .map_err(|e| PkiError::InvalidKey(format!("EC PRIVATE KEY: {e}")))?;
    let curve_oid = key
        .parameters
        .and_then(|p| p.named_curve())
        .ok_or_else(|| {
            PkiError::InvalidKey("EC PRIVATE KEY without named curve parameters".into())
        })?;
    EcCurve::from_oid(curve_oid)?;
    let inner = EcPrivateKey {
        parameters: None,
        ..key
    }
    .to_der()
    .map_err(|e| PkiError::InvalidKey(format!("EC PRIVATE KEY: {e}")))?;
    let info = PrivateKeyInfo {
        algorithm: AlgorithmIdentifierRef {
            oid: OID_EC_PUBLIC_KEY,
            parameters: Some(AnyRef::from(&curve_oid)),
        },
        private_key: &inner,
        public_key: None,
    };
    info.to_der()
        .map_err(|e| PkiError::InvalidKey(format!("EC PRIVATE KEY: {e}")))
}

/// PEM with LF line endings: the `pem` crate defaults to CRLF, which looks odd in Secrets and
/// breaks naive byte comparisons with what other tools write.
pub(crate) fn encode_pem(tag: &str, der: Vec<u8>) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new(tag, der), config)
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use x509_parser::prelude::FromDer;

    use super::*;

    /// RSA generation is slow in debug builds; share one 2048-bit key among tests.
    fn rsa2048() -> &'static PrivateKey {
        static KEY: OnceLock<PrivateKey> = OnceLock::new();
        KEY.get_or_init(|| generate(&KeySpec::Rsa { bits: 2048 }).unwrap())
    }

    fn pks(
        algorithm: Option<PrivateKeyAlgorithm>,
        size: Option<i32>,
        encoding: Option<PrivateKeyEncoding>,
    ) -> PrivateKeySpec {
        PrivateKeySpec {
            algorithm,
            size,
            encoding,
            rotation_policy: None,
        }
    }

    fn pem_tag(pem_text: &str) -> String {
        pem::parse(pem_text).unwrap().tag().to_string()
    }

    #[test]
    fn spec_defaults_to_ecdsa_p256() {
        assert_eq!(
            KeySpec::from_spec(None).unwrap(),
            KeySpec::Ecdsa(EcCurve::P256)
        );
        assert_eq!(
            KeySpec::from_spec(Some(&PrivateKeySpec::default())).unwrap(),
            KeySpec::Ecdsa(EcCurve::P256)
        );
        assert_eq!(KeySpec::default(), KeySpec::Ecdsa(EcCurve::P256));
    }

    #[test]
    fn spec_resolves_sizes() {
        use PrivateKeyAlgorithm::*;
        let cases = [
            (Some(RSA), None, KeySpec::Rsa { bits: 2048 }),
            (Some(RSA), Some(2048), KeySpec::Rsa { bits: 2048 }),
            (Some(RSA), Some(3072), KeySpec::Rsa { bits: 3072 }),
            (Some(RSA), Some(4096), KeySpec::Rsa { bits: 4096 }),
            (Some(ECDSA), None, KeySpec::Ecdsa(EcCurve::P256)),
            (Some(ECDSA), Some(256), KeySpec::Ecdsa(EcCurve::P256)),
            (Some(ECDSA), Some(384), KeySpec::Ecdsa(EcCurve::P384)),
            (None, Some(384), KeySpec::Ecdsa(EcCurve::P384)),
            (Some(Ed25519), None, KeySpec::Ed25519),
        ];
        for (alg, size, want) in cases {
            assert_eq!(
                KeySpec::from_spec(Some(&pks(alg, size, None))).unwrap(),
                want,
                "{alg:?} {size:?}"
            );
        }
    }

    #[test]
    fn spec_rejects_bad_combinations() {
        use PrivateKeyAlgorithm::*;
        for (alg, size) in [
            (Some(RSA), Some(1024)),
            (Some(RSA), Some(256)),
            (Some(ECDSA), Some(521)),
            (Some(ECDSA), Some(2048)),
            (None, Some(-256)),
            (Some(Ed25519), Some(256)),
        ] {
            let err = KeySpec::from_spec(Some(&pks(alg, size, None))).unwrap_err();
            assert!(
                matches!(err, PkiError::InvalidKeySpec(_)),
                "{alg:?} {size:?}: {err}"
            );
        }
        let msg = KeySpec::from_spec(Some(&pks(Some(RSA), Some(1024), None)))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("1024") && msg.contains("2048"), "{msg}");
    }

    #[test]
    fn spec_algorithm_size_and_display() {
        let rsa = KeySpec::Rsa { bits: 3072 };
        assert_eq!(rsa.algorithm(), PrivateKeyAlgorithm::RSA);
        assert_eq!(rsa.size(), Some(3072));
        assert_eq!(rsa.to_string(), "RSA 3072");
        let ec = KeySpec::Ecdsa(EcCurve::P384);
        assert_eq!(ec.algorithm(), PrivateKeyAlgorithm::ECDSA);
        assert_eq!(ec.size(), Some(384));
        assert_eq!(ec.to_string(), "ECDSA P-384");
        assert_eq!(KeySpec::Ed25519.algorithm(), PrivateKeyAlgorithm::Ed25519);
        assert_eq!(KeySpec::Ed25519.size(), None);
        assert_eq!(KeySpec::Ed25519.to_string(), "Ed25519");
    }

    #[test]
    fn generate_rejects_unsupported_rsa_size() {
        let err = generate(&KeySpec::Rsa { bits: 1024 }).unwrap_err();
        assert!(matches!(err, PkiError::InvalidKeySpec(_)), "{err}");
    }

    #[test]
    fn generates_each_kind_with_the_right_spec() {
        for spec in [
            KeySpec::Ecdsa(EcCurve::P256),
            KeySpec::Ecdsa(EcCurve::P384),
            KeySpec::Ed25519,
        ] {
            let key = generate(&spec).unwrap();
            assert_eq!(key.spec(), spec);
            assert_eq!(key.parsed_encoding(), None);
        }
        assert_eq!(rsa2048().spec(), KeySpec::Rsa { bits: 2048 });
    }

    #[test]
    fn generates_rsa_3072() {
        let key = generate(&KeySpec::Rsa { bits: 3072 }).unwrap();
        assert_eq!(key.spec(), KeySpec::Rsa { bits: 3072 });
        let back = parse_pem(&key.to_pem(PrivateKeyEncoding::PKCS1).unwrap()).unwrap();
        assert_eq!(back.spec(), KeySpec::Rsa { bits: 3072 });
    }

    #[test]
    fn generated_keys_differ() {
        let a = generate(&KeySpec::default()).unwrap();
        let b = generate(&KeySpec::default()).unwrap();
        assert_ne!(a.pkcs8_der(), b.pkcs8_der());
        assert_ne!(a.public_key_spki_der(), b.public_key_spki_der());
    }

    #[test]
    fn pem_labels_follow_encoding() {
        let ec = generate(&KeySpec::Ecdsa(EcCurve::P256)).unwrap();
        let ed = generate(&KeySpec::Ed25519).unwrap();
        let rsa = rsa2048();
        use PrivateKeyEncoding::*;
        assert_eq!(pem_tag(&rsa.to_pem(PKCS1).unwrap()), "RSA PRIVATE KEY");
        assert_eq!(pem_tag(&rsa.to_pem(PKCS8).unwrap()), "PRIVATE KEY");
        assert_eq!(pem_tag(&ec.to_pem(PKCS1).unwrap()), "EC PRIVATE KEY");
        assert_eq!(pem_tag(&ec.to_pem(PKCS8).unwrap()), "PRIVATE KEY");
        assert_eq!(pem_tag(&ed.to_pem(PKCS1).unwrap()), "PRIVATE KEY");
        assert_eq!(pem_tag(&ed.to_pem(PKCS8).unwrap()), "PRIVATE KEY");
        assert_eq!(ed.effective_encoding(PKCS1), PKCS8);
        assert_eq!(ec.effective_encoding(PKCS1), PKCS1);
        assert_eq!(rsa.effective_encoding(PKCS8), PKCS8);
    }

    #[test]
    fn pem_uses_lf_and_ends_with_newline() {
        let ec = generate(&KeySpec::default()).unwrap();
        for enc in [PrivateKeyEncoding::PKCS1, PrivateKeyEncoding::PKCS8] {
            let text = ec.to_pem(enc).unwrap();
            assert!(!text.contains('\r'));
            assert!(text.ends_with("-----\n"), "{text}");
        }
    }

    #[test]
    fn sec1_pem_carries_curve_and_public_key() {
        for curve in [EcCurve::P256, EcCurve::P384] {
            let key = generate(&KeySpec::Ecdsa(curve)).unwrap();
            let block = pem::parse(key.to_pem(PrivateKeyEncoding::PKCS1).unwrap()).unwrap();
            let sec1 = EcPrivateKey::from_der(block.contents()).unwrap();
            assert_eq!(
                sec1.parameters.and_then(|p| p.named_curve()),
                Some(curve.oid())
            );
            let spki = SubjectPublicKeyInfoRef::from_der(key.public_key_spki_der()).unwrap();
            assert_eq!(sec1.public_key, Some(spki.subject_public_key.raw_bytes()));
        }
    }

    #[test]
    fn rsa_pkcs1_is_the_inner_rsa_private_key() {
        let rsa = rsa2048();
        let block = pem::parse(rsa.to_pem(PrivateKeyEncoding::PKCS1).unwrap()).unwrap();
        let info = PrivateKeyInfo::from_der(rsa.pkcs8_der()).unwrap();
        assert_eq!(block.contents(), info.private_key);
        // And aws-lc-rs reads it as a PKCS#1 key of the same size.
        let kp = aws_lc_rs::rsa::KeyPair::from_der(block.contents()).unwrap();
        assert_eq!(kp.public_modulus_len(), 256);
    }

    #[test]
    fn round_trips_every_kind_and_encoding() {
        let keys = [
            generate(&KeySpec::Ecdsa(EcCurve::P256)).unwrap(),
            generate(&KeySpec::Ecdsa(EcCurve::P384)).unwrap(),
            generate(&KeySpec::Ed25519).unwrap(),
            rsa2048().clone(),
        ];
        for key in &keys {
            for enc in [PrivateKeyEncoding::PKCS1, PrivateKeyEncoding::PKCS8] {
                let back = parse_pem(&key.to_pem(enc).unwrap()).unwrap();
                assert_eq!(back.spec(), key.spec());
                assert_eq!(back.public_key_spki_der(), key.public_key_spki_der());
                assert_eq!(back.parsed_encoding(), Some(key.effective_encoding(enc)));
                assert_eq!(&back, key);
                // Converting back to the same encoding gives the same PEM.
                assert_eq!(back.to_pem(enc).unwrap(), key.to_pem(enc).unwrap());
            }
        }
    }

    #[test]
    fn pkcs8_is_always_v1() {
        // aws-lc-rs generates Ed25519 as PKCS#8 v2 (public key attached); OpenSSL 3.0 cannot
        // read that, so it must be written as v1.
        for spec in [KeySpec::Ed25519, KeySpec::Ecdsa(EcCurve::P256)] {
            let key = generate(&spec).unwrap();
            let info = PrivateKeyInfo::from_der(key.pkcs8_der()).unwrap();
            assert_eq!(info.version(), pkcs8::Version::V1, "{spec}");
            assert!(info.public_key.is_none());
        }
    }

    #[test]
    fn accepts_pkcs8_v2_input() {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let v2 = PrivateKeyInfo::from_der(kp.serialized_der()).unwrap();
        assert_eq!(v2.version(), pkcs8::Version::V2);
        let key = parse_pem(&kp.serialize_pem()).unwrap();
        assert_eq!(key.spec(), KeySpec::Ed25519);
        assert_eq!(key.public_key_spki_der(), kp.subject_public_key_info());
        let v1 = PrivateKeyInfo::from_der(key.pkcs8_der()).unwrap();
        assert_eq!(v1.version(), pkcs8::Version::V1);
        assert_eq!(v1.private_key, v2.private_key);
    }

    #[test]
    fn parses_rcgen_pkcs8_pem() {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let key = parse_pem(&kp.serialize_pem()).unwrap();
        assert_eq!(key.spec(), KeySpec::Ecdsa(EcCurve::P384));
        assert_eq!(key.public_key_spki_der(), kp.subject_public_key_info());
        assert_eq!(key.parsed_encoding(), Some(PrivateKeyEncoding::PKCS8));
    }

    #[test]
    fn parses_sec1_after_ec_parameters_block_and_with_crlf() {
        let key = generate(&KeySpec::default()).unwrap();
        let params = encode_pem(PEM_EC_PARAMETERS, OID_SECP256R1.to_der().unwrap());
        let text = format!("{params}{}", key.to_pem(PrivateKeyEncoding::PKCS1).unwrap());
        let back = parse_pem(&text).unwrap();
        assert_eq!(back.public_key_spki_der(), key.public_key_spki_der());
        let crlf = text.replace('\n', "\r\n");
        assert_eq!(
            parse_pem(&crlf).unwrap().public_key_spki_der(),
            key.public_key_spki_der()
        );
    }

    #[test]
    fn parses_sec1_without_public_key() {
        let key = generate(&KeySpec::Ecdsa(EcCurve::P384)).unwrap();
        let block = pem::parse(key.to_pem(PrivateKeyEncoding::PKCS1).unwrap()).unwrap();
        let full = EcPrivateKey::from_der(block.contents()).unwrap();
        let bare = EcPrivateKey {
            public_key: None,
            ..full
        }
        .to_der()
        .unwrap();
        let back = parse_pem(&encode_pem(PEM_EC, bare)).unwrap();
        assert_eq!(back.public_key_spki_der(), key.public_key_spki_der());
    }

    #[test]
    fn rejects_sec1_without_curve() {
        let key = generate(&KeySpec::default()).unwrap();
        let block = pem::parse(key.to_pem(PrivateKeyEncoding::PKCS1).unwrap()).unwrap();
        let full = EcPrivateKey::from_der(block.contents()).unwrap();
        let bare = EcPrivateKey {
            parameters: None,
            ..full
        }
        .to_der()
        .unwrap();
        let err = parse_pem(&encode_pem(PEM_EC, bare)).unwrap_err();
        assert!(err.to_string().contains("named curve"), "{err}");
    }

    #[test]
    fn rejects_non_pem_and_empty_input() {
        assert!(matches!(
            parse_pem("hello").unwrap_err(),
            PkiError::InvalidPem(_)
        ));
        assert!(matches!(
            parse_pem("").unwrap_err(),
            PkiError::InvalidPem(_)
        ));
    }

    #[test]
    fn rejects_two_keys() {
        let a = generate(&KeySpec::default()).unwrap();
        let text = format!(
            "{}{}",
            a.to_pem(PrivateKeyEncoding::PKCS8).unwrap(),
            a.to_pem(PrivateKeyEncoding::PKCS1).unwrap()
        );
        let err = parse_pem(&text).unwrap_err();
        assert!(err.to_string().contains("more than one"), "{err}");
    }

    #[test]
    fn rejects_other_pem_labels() {
        let cert = rcgen::generate_simple_self_signed(vec!["a.example".into()]).unwrap();
        let err = parse_pem(&cert.cert.pem()).unwrap_err();
        assert!(err.to_string().contains("\"CERTIFICATE\""), "{err}");
    }

    #[test]
    fn rejects_garbage_inside_valid_labels() {
        for tag in [PEM_PKCS8, PEM_RSA, PEM_EC] {
            let err = parse_pem(&encode_pem(tag, vec![0x30, 0x03, 0x02, 0x01, 0x00])).unwrap_err();
            assert!(matches!(err, PkiError::InvalidKey(_)), "{tag}: {err}");
        }
    }

    #[test]
    fn rejects_p521() {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512).unwrap();
        let err = parse_pem(&kp.serialize_pem()).unwrap_err();
        assert!(matches!(err, PkiError::UnsupportedKey(_)), "{err}");
        assert!(err.to_string().contains("P-521"), "{err}");
    }

    #[test]
    fn rejects_unknown_algorithm() {
        // An X25519 key (OID 1.3.101.110): valid PKCS#8, but not a signing key we support.
        let info = PrivateKeyInfo {
            algorithm: AlgorithmIdentifierRef {
                oid: ObjectIdentifier::new_unwrap("1.3.101.110"),
                parameters: None,
            },
            private_key: &[
                0x04, 0x20, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
                7, 7, 7, 7, 7, 7, 7, 7,
            ],
            public_key: None,
        };
        let err = PrivateKey::from_pkcs8_der(&info.to_der().unwrap()).unwrap_err();
        assert!(matches!(err, PkiError::UnsupportedKey(_)), "{err}");
    }

    #[test]
    fn rejects_ec_key_without_named_curve() {
        // Explicit curve parameters (a SEQUENCE instead of an OID); here simply NULL.
        let ec = generate(&KeySpec::default()).unwrap();
        let real = PrivateKeyInfo::from_der(ec.pkcs8_der()).unwrap();
        let info = PrivateKeyInfo {
            algorithm: AlgorithmIdentifierRef {
                oid: OID_EC_PUBLIC_KEY,
                parameters: Some(AnyRef::NULL),
            },
            ..real
        };
        let err = PrivateKey::from_pkcs8_der(&info.to_der().unwrap()).unwrap_err();
        assert!(matches!(err, PkiError::UnsupportedKey(_)), "{err}");
        assert!(err.to_string().contains("named curve"), "{err}");
    }

    #[test]
    fn rejects_mislabelled_key() {
        // An EC key's PKCS#8 bytes under an RSA label.
        let ec = generate(&KeySpec::default()).unwrap();
        let err = parse_pem(&encode_pem(PEM_RSA, ec.pkcs8_der().to_vec())).unwrap_err();
        assert!(matches!(err, PkiError::InvalidKey(_)), "{err}");
    }

    #[test]
    fn rcgen_key_pair_signs_verifiable_csr() {
        let keys = [
            generate(&KeySpec::Ecdsa(EcCurve::P256)).unwrap(),
            generate(&KeySpec::Ecdsa(EcCurve::P384)).unwrap(),
            generate(&KeySpec::Ed25519).unwrap(),
            rsa2048().clone(),
        ];
        for key in &keys {
            let kp = key.to_rcgen_key_pair().unwrap();
            assert_eq!(kp.subject_public_key_info(), key.public_key_spki_der());
            let params = rcgen::CertificateParams::new(vec!["a.example".to_string()]).unwrap();
            let csr = params.serialize_request(&kp).unwrap();
            let (_, parsed) =
                x509_parser::certification_request::X509CertificationRequest::from_der(csr.der())
                    .unwrap();
            parsed.verify_signature().unwrap();
            assert_eq!(
                parsed.certification_request_info.subject_pki.raw,
                key.public_key_spki_der()
            );
        }
    }

    #[test]
    fn debug_does_not_leak_key_material() {
        let key = generate(&KeySpec::default()).unwrap();
        let dbg = format!("{key:?}");
        assert!(dbg.contains("Ecdsa"), "{dbg}");
        assert!(!dbg.contains("pkcs8"), "{dbg}");
        assert!(dbg.len() < 120, "{dbg}");
    }

    #[test]
    fn error_messages_say_what_failed() {
        let err = generate(&KeySpec::Rsa { bits: 1000 }).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid privateKey: RSA key size 1000 is not supported (use 2048, 3072 or 4096)"
        );
    }
}
