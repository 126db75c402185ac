//! PKCS#12 and Java KeyStore (JKS) files for `spec.keystores`, as cert-manager writes them. Pure:
//! bytes in, bytes out (the only outside input is the system RNG for salts).
//!
//! The encodings come from crates, not from our own ASN.1:
//! - PKCS#12: [`p12_keystore`] (pure Rust on RustCrypto, MIT/Apache-2.0, maintained, modelled on
//!   Java's KeyStore API). It reads and writes PBES2/AES-256 and the legacy PKCS#12 PBE schemes,
//!   and marks truststore entries with Oracle's trusted-key-usage attribute, so `keytool` lists
//!   them as `trustedCertEntry`. Version 0.2 shares the tree's RustCrypto line.
//! - JKS: [`jks`] (pure Rust, MIT), a port of keystore-go, the library cert-manager itself
//!   uses: the same `0xFEEDFEED` v2 layout, Sun's key protector and the "Mighty Aphrodite"
//!   keyed SHA-1 integrity digest. Its salts come from aws-lc-rs here (its own `rand` feature
//!   is off).
//!
//! cert-manager's profiles (go-pkcs12's `LegacyRC2`, `LegacyDES`, `Modern2023`) map onto what
//! p12-keystore offers, which uses one algorithm for both the certificates and the key:
//!
//! | profile | certificates and key | MAC | iterations |
//! |---|---|---|---|
//! | `LegacyRC2` | pbeWithSHAAnd40BitRC2-CBC | HMAC-SHA-1 | 2048 |
//! | `LegacyDES` | pbeWithSHAAnd3-KeyTripleDES-CBC | HMAC-SHA-1 | 2048 |
//! | `Modern2023` | PBES2, PBKDF2-HMAC-SHA-256, AES-256-CBC | HMAC-SHA-256 | 2048 |
//!
//! One difference from go-pkcs12: its `LegacyRC2` encrypts the key with 3DES and only the
//! certificates with RC2; here both use RC2-40. Readers are the same (a reader with RC2 has
//! 3DES): OpenSSL 3 needs `-legacy` for either, Java until 20 reads both. The key is in the same
//! Secret in clear (`tls.key`), so the keystore's cipher protects nothing the Secret does not.
//!
//! Contents, as cert-manager: the keystore holds the key with the chain of `tls.crt` (leaf
//! first) followed by `ca.crt` when there is one; the truststore holds `ca.crt` alone (as the
//! trusted entry `ca`). JKS passwords must be ASCII and at least 6 characters: JKS turns each
//! byte into one Java `char` (as keystore-go does), which matches what `keytool` does only for
//! ASCII, and `keytool` refuses shorter store passwords.

use std::time::SystemTime;

use p12_keystore::{
    Certificate as P12Certificate, EncryptionAlgorithm, KeyStore as P12KeyStore, KeyStoreEntry,
    MacAlgorithm, PrivateKeyChain,
};

use crate::api::Pkcs12Profile;

/// The alias of the key entry when the spec names none (cert-manager's).
pub const DEFAULT_ALIAS: &str = "certificate";
/// The alias of the CA's trusted entry (cert-manager's).
pub const CA_ALIAS: &str = "ca";
/// Key derivation and MAC iterations: go-pkcs12's (cert-manager's) for every profile.
const ITERATIONS: u64 = 2048;
/// The shortest store password `keytool` accepts.
pub const JKS_MIN_PASSWORD: usize = 6;

/// What went wrong building a keystore; the text ends up in a condition, never with the password.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum KeystoreError {
    #[error("the {store} password is empty")]
    EmptyPassword { store: &'static str },
    #[error("the PKCS#12 password is not UTF-8 text")]
    Pkcs12PasswordNotUtf8,
    #[error(
        "the JKS password must be ASCII (Java could not open the keystore otherwise) and at \
         least {JKS_MIN_PASSWORD} characters long (keytool's minimum)"
    )]
    JksPassword,
    #[error("certificate #{index} of the chain is not usable in a PKCS#12 file: {reason}")]
    Certificate { index: usize, reason: String },
    #[error("the chain holds no certificate")]
    EmptyChain,
    #[error("encoding the PKCS#12 {what} failed: {reason}")]
    Pkcs12 { what: &'static str, reason: String },
    #[error("encoding the JKS {what} failed: {reason}")]
    Jks { what: &'static str, reason: String },
}

/// The key and certificates a keystore is made of, all DER.
pub struct KeyMaterial<'a> {
    /// The private key as PKCS#8 `PrivateKeyInfo`.
    pub key_pkcs8: &'a [u8],
    /// `tls.crt`, leaf first.
    pub chain: &'a [Vec<u8>],
    /// `ca.crt`, when the Secret has one.
    pub ca: Option<&'a [u8]>,
}

impl KeyMaterial<'_> {
    /// The chain, then `ca.crt` unless the chain already ends with it (`ca.crt` is the chain's
    /// own root when the CA sent one).
    fn full_chain(&self) -> Vec<&[u8]> {
        let mut certs: Vec<&[u8]> = self.chain.iter().map(Vec::as_slice).collect();
        if let Some(ca) = self.ca
            && certs.last() != Some(&ca)
        {
            certs.push(ca);
        }
        certs
    }
}

fn profile_params(profile: Pkcs12Profile) -> (EncryptionAlgorithm, MacAlgorithm) {
    match profile {
        Pkcs12Profile::LegacyRC2 => (
            EncryptionAlgorithm::PbeWithShaAnd40BitRc4Cbc,
            MacAlgorithm::HmacSha1,
        ),
        Pkcs12Profile::LegacyDES => (
            EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc,
            MacAlgorithm::HmacSha1,
        ),
        Pkcs12Profile::Modern2023 => (
            EncryptionAlgorithm::PbeWithHmacSha256AndAes256,
            MacAlgorithm::HmacSha256,
        ),
    }
}

fn pkcs12_password(password: &[u8]) -> Result<&str, KeystoreError> {
    if password.is_empty() {
        return Err(KeystoreError::EmptyPassword { store: "PKCS#12" });
    }
    std::str::from_utf8(password).map_err(|_| KeystoreError::Pkcs12PasswordNotUtf8)
}

fn p12_cert(index: usize, der: &[u8]) -> Result<P12Certificate, KeystoreError> {
    P12Certificate::from_der(der).map_err(|e| KeystoreError::Certificate {
        index,
        reason: e.to_string(),
    })
}

fn write_p12(
    store: &P12KeyStore,
    password: &str,
    profile: Pkcs12Profile,
    what: &'static str,
) -> Result<Vec<u8>, KeystoreError> {
    let (encryption, mac) = profile_params(profile);
    store
        .writer(password)
        .encryption_algorithm(encryption)
        .encryption_iterations(ITERATIONS)
        .mac_algorithm(mac)
        .mac_iterations(ITERATIONS)
        .write()
        .map_err(|e| KeystoreError::Pkcs12 {
            what,
            reason: e.to_string(),
        })
}

/// `keystore.p12`: the key under [`DEFAULT_ALIAS`] with the chain and `ca.crt`.
pub fn pkcs12_keystore(
    material: &KeyMaterial<'_>,
    password: &[u8],
    profile: Pkcs12Profile,
) -> Result<Vec<u8>, KeystoreError> {
    let password = pkcs12_password(password)?;
    let leaf = material.chain.first().ok_or(KeystoreError::EmptyChain)?;
    let certs = material
        .full_chain()
        .into_iter()
        .enumerate()
        .map(|(index, der)| p12_cert(index, der))
        .collect::<Result<Vec<_>, _>>()?;
    // The local key id ties the key bag to the leaf's bag: the leaf's SHA-1, as go-pkcs12 does.
    let key_id = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, leaf);
    let chain = PrivateKeyChain::new(material.key_pkcs8, key_id.as_ref(), certs);
    let mut store = P12KeyStore::new();
    store.add_entry(DEFAULT_ALIAS, KeyStoreEntry::PrivateKeyChain(chain));
    write_p12(&store, password, profile, "keystore")
}

/// `truststore.p12`: `ca.crt` as a trusted certificate.
pub fn pkcs12_truststore(
    ca: &[u8],
    password: &[u8],
    profile: Pkcs12Profile,
) -> Result<Vec<u8>, KeystoreError> {
    let password = pkcs12_password(password)?;
    let mut store = P12KeyStore::new();
    store.add_entry(CA_ALIAS, KeyStoreEntry::Certificate(p12_cert(0, ca)?));
    write_p12(&store, password, profile, "truststore")
}

/// Salts for JKS's key protector, from aws-lc-rs.
struct SystemRng;

impl jks::common::RandomReader for SystemRng {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        aws_lc_rs::rand::fill(buf).map_err(|_| std::io::Error::other("the system RNG failed"))
    }
}

fn jks_store() -> jks::KeyStore {
    jks::KeyStore::with_options(jks::KeyStoreOptions {
        case_exact_aliases: false,
        ordered_aliases: true,
        min_password_len: JKS_MIN_PASSWORD,
        rng: Box::new(SystemRng),
        ..jks::KeyStoreOptions::default()
    })
}

fn jks_password(password: &[u8]) -> Result<&[u8], KeystoreError> {
    if password.is_empty() {
        return Err(KeystoreError::EmptyPassword { store: "JKS" });
    }
    if password.len() < JKS_MIN_PASSWORD || !password.is_ascii() {
        return Err(KeystoreError::JksPassword);
    }
    Ok(password)
}

fn jks_cert(der: &[u8]) -> jks::Certificate {
    jks::Certificate {
        cert_type: "X509".to_string(),
        content: der.to_vec(),
    }
}

fn jks_trusted(
    store: &mut jks::KeyStore,
    ca: &[u8],
    what: &'static str,
) -> Result<(), KeystoreError> {
    store
        .set_trusted_certificate_entry(
            CA_ALIAS,
            jks::TrustedCertificateEntry {
                creation_time: SystemTime::now(),
                certificate: jks_cert(ca),
            },
        )
        .map_err(|e| KeystoreError::Jks {
            what,
            reason: e.to_string(),
        })
}

fn store_jks(
    store: &jks::KeyStore,
    password: &[u8],
    what: &'static str,
) -> Result<Vec<u8>, KeystoreError> {
    let mut out = Vec::new();
    store
        .store(&mut out, password)
        .map_err(|e| KeystoreError::Jks {
            what,
            reason: e.to_string(),
        })?;
    Ok(out)
}

/// `keystore.jks`: the key under `alias` with the chain (and `ca.crt` in the chain), and `ca.crt`
/// as the trusted entry [`CA_ALIAS`], when there is one.
pub fn jks_keystore(
    material: &KeyMaterial<'_>,
    alias: &str,
    password: &[u8],
) -> Result<Vec<u8>, KeystoreError> {
    let password = jks_password(password)?;
    if material.chain.is_empty() {
        return Err(KeystoreError::EmptyChain);
    }
    let chain = material.full_chain().into_iter().map(jks_cert).collect();
    let mut store = jks_store();
    store
        .set_private_key_entry(
            alias,
            jks::PrivateKeyEntry {
                creation_time: SystemTime::now(),
                private_key: material.key_pkcs8.to_vec(),
                certificate_chain: chain,
            },
            password,
        )
        .map_err(|e| KeystoreError::Jks {
            what: "keystore",
            reason: e.to_string(),
        })?;
    if let Some(ca) = material.ca {
        jks_trusted(&mut store, ca, "keystore")?;
    }
    store_jks(&store, password, "keystore")
}

/// `truststore.jks`: `ca.crt` as the trusted entry [`CA_ALIAS`].
pub fn jks_truststore(ca: &[u8], password: &[u8]) -> Result<Vec<u8>, KeystoreError> {
    let password = jks_password(password)?;
    let mut store = jks_store();
    jks_trusted(&mut store, ca, "truststore")?;
    store_jks(&store, password, "truststore")
}

/// Tests that open what we write with the real tools: OpenSSL 3 (`openssl pkcs12`) and Java's
/// `keytool` (installed by `tests/env/install-deps.sh`; these tests fail, not skip, without them).
#[cfg(test)]
pub(crate) mod tests {
    use std::path::Path;
    use std::process::Command;

    use super::*;
    use crate::api::PrivateKeyAlgorithm;
    use crate::pki::test_support::{LeafOptions, TestCa};
    use crate::pki::{KeySpec, PrivateKey, generate, parse_chain};

    pub(crate) const PASSWORD: &[u8] = b"s3cret-pass";

    /// A key, its chain (leaf, intermediate) and the root as `ca.crt`, all DER, plus the PEMs.
    pub(crate) struct Fixture {
        pub key: PrivateKey,
        pub chain: Vec<Vec<u8>>,
        pub chain_pem: String,
        pub ca: Vec<u8>,
        pub ca_pem: String,
    }

    pub(crate) fn fixture(algorithm: PrivateKeyAlgorithm) -> Fixture {
        let root = TestCa::root("Outputs Test Root");
        let inter = root.intermediate("Outputs Test Intermediate");
        let spec = match algorithm {
            PrivateKeyAlgorithm::RSA => KeySpec::from_spec(Some(&crate::api::PrivateKeySpec {
                algorithm: Some(PrivateKeyAlgorithm::RSA),
                ..Default::default()
            }))
            .unwrap(),
            _ => KeySpec::default(),
        };
        let key = generate(&spec).unwrap();
        let leaf = inter.issue(
            &key,
            &LeafOptions {
                cn: Some("app.example.test"),
                ..LeafOptions::dns(&["app.example.test"])
            },
        );
        let chain_pem = format!("{leaf}{}", inter.pem);
        let chain = parse_chain(&chain_pem).unwrap().certs_der;
        let ca = pem::parse(&root.pem).unwrap().into_contents();
        Fixture {
            key,
            chain,
            chain_pem,
            ca,
            ca_pem: root.pem.clone(),
        }
    }

    impl Fixture {
        pub(crate) fn material(&self) -> KeyMaterial<'_> {
            KeyMaterial {
                key_pkcs8: self.key.pkcs8_der(),
                chain: &self.chain,
                ca: Some(&self.ca),
            }
        }
    }

    /// Runs a tool; (success, stdout + stderr).
    pub(crate) fn run(program: &str, args: &[&str]) -> (bool, String) {
        let out = Command::new(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| {
                panic!("{program} cannot run ({e}); tests/env/install-deps.sh installs it")
            });
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    pub(crate) fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_string()
    }

    /// `openssl pkcs12 -info` with the password, optionally `-legacy`; prints keys unencrypted.
    pub(crate) fn openssl_pkcs12(file: &str, password: &str, legacy: bool) -> (bool, String) {
        let pass = format!("pass:{password}");
        let mut args = vec!["pkcs12", "-info", "-in", file, "-passin", &pass, "-noenc"];
        if legacy {
            args.push("-legacy");
        }
        run("openssl", &args)
    }

    /// `keytool -list -v` of a store of the given type.
    pub(crate) fn keytool_list(file: &str, store_type: &str, password: &str) -> (bool, String) {
        run(
            "keytool",
            &[
                "-list",
                "-v",
                "-keystore",
                file,
                "-storetype",
                store_type,
                "-storepass",
                password,
            ],
        )
    }

    /// The public key (PEM) of the private key in `text` (the first PRIVATE KEY block), and of the
    /// leaf certificate, by `openssl pkey`/`openssl x509`.
    pub(crate) fn public_keys_match(dir: &Path, key_pem: &str, leaf_pem: &str) -> bool {
        let key = write(dir, "extracted-key.pem", key_pem.as_bytes());
        let leaf = write(dir, "leaf.pem", leaf_pem.as_bytes());
        let (ok1, from_key) = run("openssl", &["pkey", "-in", &key, "-pubout"]);
        let (ok2, from_leaf) = run("openssl", &["x509", "-in", &leaf, "-pubkey", "-noout"]);
        ok1 && ok2 && from_key == from_leaf
    }

    /// The first `-----BEGIN PRIVATE KEY-----` block of OpenSSL's output.
    pub(crate) fn first_private_key(text: &str) -> String {
        let start = text
            .find("-----BEGIN PRIVATE KEY-----")
            .expect("a private key");
        let end_marker = "-----END PRIVATE KEY-----";
        let end = text[start..].find(end_marker).expect("its end") + start + end_marker.len();
        format!("{}\n", &text[start..end])
    }

    fn leaf_pem(f: &Fixture) -> String {
        pem::encode(&pem::Pem::new("CERTIFICATE", f.chain[0].clone()))
    }

    #[test]
    fn every_pkcs12_profile_opens_in_openssl_3_with_the_key_and_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        for algorithm in [PrivateKeyAlgorithm::ECDSA, PrivateKeyAlgorithm::RSA] {
            let f = fixture(algorithm);
            for profile in [
                Pkcs12Profile::LegacyRC2,
                Pkcs12Profile::LegacyDES,
                Pkcs12Profile::Modern2023,
            ] {
                let bytes = pkcs12_keystore(&f.material(), PASSWORD, profile).unwrap();
                let file = write(dir.path(), "keystore.p12", &bytes);
                let legacy = profile == Pkcs12Profile::LegacyRC2;
                let (ok, text) = openssl_pkcs12(&file, "s3cret-pass", legacy);
                assert!(ok, "{profile:?} {algorithm:?}: {text}");
                // Leaf, intermediate and root, each once; the key.
                assert_eq!(
                    text.matches("-----BEGIN CERTIFICATE-----").count(),
                    3,
                    "{text}"
                );
                assert!(text.contains("app.example.test"), "{text}");
                assert!(
                    public_keys_match(dir.path(), &first_private_key(&text), &leaf_pem(&f)),
                    "{profile:?} {algorithm:?}: the key does not match the leaf"
                );
                let (wrong, text) = openssl_pkcs12(&file, "not-the-password", legacy);
                assert!(!wrong, "{profile:?} opened with a wrong password: {text}");
            }
        }
    }

    #[test]
    fn openssl_3_refuses_legacy_rc2_without_legacy_and_opens_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let f = fixture(PrivateKeyAlgorithm::ECDSA);
        for (profile, opens) in [
            (Pkcs12Profile::LegacyRC2, false),
            (Pkcs12Profile::LegacyDES, true),
            (Pkcs12Profile::Modern2023, true),
        ] {
            let bytes = pkcs12_keystore(&f.material(), PASSWORD, profile).unwrap();
            let file = write(dir.path(), "keystore.p12", &bytes);
            let (ok, text) = openssl_pkcs12(&file, "s3cret-pass", false);
            assert_eq!(ok, opens, "{profile:?} without -legacy: {text}");
        }
        let modern = pkcs12_keystore(&f.material(), PASSWORD, Pkcs12Profile::Modern2023).unwrap();
        let file = write(dir.path(), "modern.p12", &modern);
        let (_, text) = openssl_pkcs12(&file, "s3cret-pass", false);
        assert!(text.contains("AES-256-CBC"), "{text}");
        assert!(text.contains("MAC: sha256"), "{text}");
    }

    #[test]
    fn pkcs12_keystores_and_truststores_open_in_keytool() {
        let dir = tempfile::tempdir().unwrap();
        let f = fixture(PrivateKeyAlgorithm::ECDSA);
        for profile in [
            Pkcs12Profile::LegacyRC2,
            Pkcs12Profile::LegacyDES,
            Pkcs12Profile::Modern2023,
        ] {
            let ks = pkcs12_keystore(&f.material(), PASSWORD, profile).unwrap();
            let file = write(dir.path(), "keystore.p12", &ks);
            let (ok, text) = keytool_list(&file, "PKCS12", "s3cret-pass");
            assert!(ok, "{profile:?}: {text}");
            assert!(text.contains("Alias name: certificate"), "{text}");
            assert!(text.contains("Entry type: PrivateKeyEntry"), "{text}");
            assert!(text.contains("Certificate chain length: 3"), "{text}");
            assert!(text.contains("CN=app.example.test"), "{text}");
            let (wrong, _) = keytool_list(&file, "PKCS12", "wrong-password");
            assert!(!wrong, "{profile:?} opened with a wrong password");

            let ts = pkcs12_truststore(&f.ca, PASSWORD, profile).unwrap();
            let file = write(dir.path(), "truststore.p12", &ts);
            let (ok, text) = keytool_list(&file, "PKCS12", "s3cret-pass");
            assert!(ok, "{profile:?}: {text}");
            assert!(text.contains("Entry type: trustedCertEntry"), "{text}");
            assert!(text.contains("CN=Outputs Test Root"), "{text}");
            assert!(text.contains("Your keystore contains 1 entry"), "{text}");
        }
    }

    #[test]
    fn jks_keystores_open_in_keytool_and_hold_the_key_of_the_leaf() {
        let dir = tempfile::tempdir().unwrap();
        for algorithm in [PrivateKeyAlgorithm::ECDSA, PrivateKeyAlgorithm::RSA] {
            let f = fixture(algorithm);
            let ks = jks_keystore(&f.material(), "web", PASSWORD).unwrap();
            let file = write(dir.path(), "keystore.jks", &ks);
            let (ok, text) = keytool_list(&file, "JKS", "s3cret-pass");
            assert!(ok, "{algorithm:?}: {text}");
            assert!(text.contains("Keystore type: JKS"), "{text}");
            assert!(text.contains("Alias name: web"), "{text}");
            assert!(text.contains("Entry type: PrivateKeyEntry"), "{text}");
            assert!(text.contains("Certificate chain length: 3"), "{text}");
            assert!(text.contains("Alias name: ca"), "{text}");
            assert!(text.contains("Entry type: trustedCertEntry"), "{text}");
            let (wrong, _) = keytool_list(&file, "JKS", "wrong-password");
            assert!(!wrong, "opened with a wrong password");
            // Java decrypts the key: copy the store to PKCS#12 with keytool, read the key back.
            let out = dir.path().join("converted.p12");
            let out = out.to_str().unwrap();
            let _ = std::fs::remove_file(out);
            let (ok, text) = run(
                "keytool",
                &[
                    "-importkeystore",
                    "-srckeystore",
                    &file,
                    "-srcstoretype",
                    "JKS",
                    "-srcstorepass",
                    "s3cret-pass",
                    "-destkeystore",
                    out,
                    "-deststoretype",
                    "PKCS12",
                    "-deststorepass",
                    "s3cret-pass",
                    "-srcalias",
                    "web",
                ],
            );
            assert!(ok, "{text}");
            let (ok, text) = openssl_pkcs12(out, "s3cret-pass", false);
            assert!(ok, "{text}");
            assert!(
                public_keys_match(dir.path(), &first_private_key(&text), &leaf_pem(&f)),
                "{algorithm:?}: the key Java decrypted does not match the leaf"
            );
        }
        let f = fixture(PrivateKeyAlgorithm::ECDSA);
        let ts = jks_truststore(&f.ca, PASSWORD).unwrap();
        let file = write(dir.path(), "truststore.jks", &ts);
        let (ok, text) = keytool_list(&file, "JKS", "s3cret-pass");
        assert!(ok, "{text}");
        assert!(text.contains("Your keystore contains 1 entry"), "{text}");
        assert!(text.contains("Entry type: trustedCertEntry"), "{text}");
    }

    #[test]
    fn a_root_already_at_the_end_of_the_chain_is_not_added_twice() {
        let f = fixture(PrivateKeyAlgorithm::ECDSA);
        let mut chain = f.chain.clone();
        chain.push(f.ca.clone());
        let material = KeyMaterial {
            key_pkcs8: f.key.pkcs8_der(),
            chain: &chain,
            ca: Some(&f.ca),
        };
        assert_eq!(material.full_chain().len(), 3);
        assert_eq!(f.material().full_chain().len(), 3);
        let no_ca = KeyMaterial {
            ca: None,
            ..f.material()
        };
        assert_eq!(no_ca.full_chain().len(), 2);
    }

    #[test]
    fn unusable_passwords_are_refused_with_what_to_change() {
        let f = fixture(PrivateKeyAlgorithm::ECDSA);
        assert_eq!(
            pkcs12_keystore(&f.material(), b"", Pkcs12Profile::Modern2023),
            Err(KeystoreError::EmptyPassword { store: "PKCS#12" })
        );
        assert_eq!(
            pkcs12_keystore(&f.material(), &[0xff, 0xfe], Pkcs12Profile::Modern2023),
            Err(KeystoreError::Pkcs12PasswordNotUtf8)
        );
        assert_eq!(
            jks_keystore(&f.material(), DEFAULT_ALIAS, b"short"),
            Err(KeystoreError::JksPassword)
        );
        assert_eq!(
            jks_truststore(&f.ca, "pässwörd-long".as_bytes()),
            Err(KeystoreError::JksPassword)
        );
        let message = KeystoreError::JksPassword.to_string();
        assert!(
            message.contains("ASCII") && message.contains("6"),
            "{message}"
        );
        let empty = KeyMaterial {
            chain: &[],
            ..f.material()
        };
        assert_eq!(
            pkcs12_keystore(&empty, PASSWORD, Pkcs12Profile::LegacyDES),
            Err(KeystoreError::EmptyChain)
        );
    }
}
