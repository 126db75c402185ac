//! The additional outputs of a TLS Secret (`spec.additionalOutputFormats`, `spec.keystores`), with
//! cert-manager's data keys and meaning, and whether a Secret's outputs are current. Pure: the
//! controller reads the keystore passwords (`controller::outputs`) and hands them in.
//!
//! | spec | data keys |
//! |---|---|
//! | `additionalOutputFormats: [{type: CombinedPEM}]` | `tls-combined.pem`: `tls.key`, `\n`, `tls.crt` |
//! | `additionalOutputFormats: [{type: DER}]` | `key.der`: the DER body of `tls.key` (PKCS#1/SEC1 or PKCS#8, as `tls.key` is) |
//! | `keystores.pkcs12.create: true` | `keystore.p12`, and `truststore.p12` when there is a `ca.crt` |
//! | `keystores.jks.create: true` | `keystore.jks`, and `truststore.jks` when there is a `ca.crt` |
//!
//! The outputs are written in the same apply as `tls.crt` (so a new certificate always comes with
//! new outputs) and checked on every reconcile: a missing or different `tls-combined.pem` or
//! `key.der` is recomputed from `tls.key` and `tls.crt` and compared byte for byte. Keystores are
//! salted (never the same bytes twice), so instead the Secret carries the annotation
//! [`ANN_KEYSTORES_FINGERPRINT`]: an HMAC-SHA-256, keyed with `tls.key`, of everything a keystore
//! is made of (the passwords, the PKCS#12 profile, the JKS alias, `tls.crt`, `ca.crt`). A
//! changed password, profile or alias gives another fingerprint and the keystores are rewritten,
//! without a new certificate. The annotation never holds a password, and guessing one from it
//! needs `tls.key`, which a reader of the annotation can read anyway (as it can the keystores
//! themselves, whose password a reader can attack offline just as well).

use std::collections::BTreeMap;

use k8s_openapi::ByteString;

use crate::api::{CertificateSpec, JksKeystore, OutputFormatType, Pkcs12Keystore};
use crate::pki::keystore::{self, KeyMaterial, KeystoreError};
use crate::pki::{self, PkiError};

pub const COMBINED_PEM: &str = "tls-combined.pem";
pub const KEY_DER: &str = "key.der";
pub const PKCS12_KEYSTORE: &str = "keystore.p12";
pub const PKCS12_TRUSTSTORE: &str = "truststore.p12";
pub const JKS_KEYSTORE: &str = "keystore.jks";
pub const JKS_TRUSTSTORE: &str = "truststore.jks";
/// Every data key this module writes, in the order `status` and `inspect` list them.
pub const ALL_KEYS: [&str; 6] = [
    COMBINED_PEM,
    KEY_DER,
    PKCS12_KEYSTORE,
    PKCS12_TRUSTSTORE,
    JKS_KEYSTORE,
    JKS_TRUSTSTORE,
];
/// On the TLS Secret: the fingerprint of the keystores' inputs (see the module docs).
pub const ANN_KEYSTORES_FINGERPRINT: &str = "ferrocert.dev/keystores-fingerprint";
/// The default of `--keystore-password-recheck`: how often a Certificate with keystores is
/// looked at again when nothing else is due. The password Secrets are not watched (the Secret
/// watch selects ferrocert's own Secrets only), so a changed password is found by this re-check.
pub const PASSWORD_RECHECK: std::time::Duration = std::time::Duration::from_secs(600);

/// The keystore passwords read from the Secrets the spec names. `Debug` never shows them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KeystorePasswords {
    pub pkcs12: Option<Vec<u8>>,
    pub jks: Option<Vec<u8>>,
}

impl std::fmt::Debug for KeystorePasswords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeystorePasswords")
            .field("pkcs12", &self.pkcs12.as_ref().map(|_| "<redacted>"))
            .field("jks", &self.jks.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// What goes into the Secret besides `tls.crt`, `tls.key` and `ca.crt`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outputs {
    pub data: BTreeMap<String, ByteString>,
    pub annotations: BTreeMap<String, String>,
}

/// Why the outputs could not be made. Never carries a password or key material.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum OutputError {
    #[error("tls.key cannot be read: {0}")]
    Key(PkiError),
    #[error("tls.crt cannot be read: {0}")]
    Chain(PkiError),
    #[error("ca.crt is not a PEM certificate")]
    Ca,
    #[error("no password for the {0} keystore was read")]
    MissingPassword(&'static str),
    #[error("{0}")]
    Keystore(#[from] KeystoreError),
}

/// The PKCS#12 keystore the spec asks for (`create: true`).
pub fn pkcs12_wanted(spec: &CertificateSpec) -> Option<&Pkcs12Keystore> {
    spec.keystores
        .as_ref()?
        .pkcs12
        .as_ref()
        .filter(|k| k.create)
}

/// The JKS keystore the spec asks for (`create: true`).
pub fn jks_wanted(spec: &CertificateSpec) -> Option<&JksKeystore> {
    spec.keystores.as_ref()?.jks.as_ref().filter(|k| k.create)
}

fn format_wanted(spec: &CertificateSpec, format: OutputFormatType) -> bool {
    spec.additional_output_formats
        .iter()
        .any(|f| f.type_ == format)
}

/// Whether the spec asks for any keystore (and so for passwords).
pub fn keystores_wanted(spec: &CertificateSpec) -> bool {
    pkcs12_wanted(spec).is_some() || jks_wanted(spec).is_some()
}

/// Whether the spec asks for any additional output.
pub fn any_wanted(spec: &CertificateSpec) -> bool {
    keystores_wanted(spec) || !spec.additional_output_formats.is_empty()
}

/// `key.der`: the DER body of the `tls.key` PEM, as cert-manager writes it.
fn key_der(key_pem: &str) -> Result<Vec<u8>, OutputError> {
    pem::parse(key_pem)
        .map(pem::Pem::into_contents)
        .map_err(|e| OutputError::Key(PkiError::InvalidPem(e.to_string())))
}

/// `tls-combined.pem`: `tls.key`, a newline, `tls.crt` (cert-manager's `bytes.Join(.., "\n")`).
fn combined_pem(key_pem: &str, chain_pem: &str) -> Vec<u8> {
    format!("{key_pem}\n{chain_pem}").into_bytes()
}

/// The additional outputs for this key and chain. With `passwords` `None`, no keystores (the
/// passwords could not be read; the steady-state check reports that and writes them later).
pub fn additional_outputs(
    spec: &CertificateSpec,
    chain_pem: &str,
    key_pem: &str,
    ca_pem: Option<&str>,
    passwords: Option<&KeystorePasswords>,
) -> Result<Outputs, OutputError> {
    let mut out = Outputs::default();
    if format_wanted(spec, OutputFormatType::CombinedPEM) {
        out.data.insert(
            COMBINED_PEM.to_string(),
            ByteString(combined_pem(key_pem, chain_pem)),
        );
    }
    if format_wanted(spec, OutputFormatType::DER) {
        out.data
            .insert(KEY_DER.to_string(), ByteString(key_der(key_pem)?));
    }
    let (pkcs12, jks) = (pkcs12_wanted(spec), jks_wanted(spec));
    let Some(passwords) = passwords.filter(|_| pkcs12.is_some() || jks.is_some()) else {
        return Ok(out);
    };
    let key = pki::parse_pem(key_pem).map_err(OutputError::Key)?;
    let chain = pki::parse_chain(chain_pem).map_err(OutputError::Chain)?;
    let ca = ca_pem
        .map(|p| {
            pem::parse(p)
                .ok()
                .filter(|b| b.tag() == "CERTIFICATE")
                .map(pem::Pem::into_contents)
                .ok_or(OutputError::Ca)
        })
        .transpose()?;
    let material = KeyMaterial {
        key_pkcs8: key.pkcs8_der(),
        chain: &chain.certs_der,
        ca: ca.as_deref(),
    };
    if let Some(p12) = pkcs12 {
        let password = passwords
            .pkcs12
            .as_deref()
            .ok_or(OutputError::MissingPassword("PKCS#12"))?;
        let profile = p12.profile.unwrap_or_default();
        out.data.insert(
            PKCS12_KEYSTORE.to_string(),
            ByteString(keystore::pkcs12_keystore(&material, password, profile)?),
        );
        if let Some(ca) = material.ca {
            out.data.insert(
                PKCS12_TRUSTSTORE.to_string(),
                ByteString(keystore::pkcs12_truststore(ca, password, profile)?),
            );
        }
    }
    if let Some(j) = jks {
        let password = passwords
            .jks
            .as_deref()
            .ok_or(OutputError::MissingPassword("JKS"))?;
        let alias = j.alias.as_deref().unwrap_or(keystore::DEFAULT_ALIAS);
        out.data.insert(
            JKS_KEYSTORE.to_string(),
            ByteString(keystore::jks_keystore(&material, alias, password)?),
        );
        if let Some(ca) = material.ca {
            out.data.insert(
                JKS_TRUSTSTORE.to_string(),
                ByteString(keystore::jks_truststore(ca, password)?),
            );
        }
    }
    out.annotations.insert(
        ANN_KEYSTORES_FINGERPRINT.to_string(),
        fingerprint(spec, chain_pem, key_pem, ca_pem, passwords),
    );
    Ok(out)
}

/// The fingerprint of the keystores' inputs: HMAC-SHA-256 keyed with `tls.key`, over
/// length-prefixed fields (so no two inputs share an encoding), hex.
pub fn fingerprint(
    spec: &CertificateSpec,
    chain_pem: &str,
    key_pem: &str,
    ca_pem: Option<&str>,
    passwords: &KeystorePasswords,
) -> String {
    let mut message = Vec::new();
    let mut field = |bytes: &[u8]| {
        message.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        message.extend_from_slice(bytes);
    };
    field(b"ferrocert keystores v1");
    if let Some(p12) = pkcs12_wanted(spec) {
        field(b"pkcs12");
        field(format!("{:?}", p12.profile.unwrap_or_default()).as_bytes());
        field(passwords.pkcs12.as_deref().unwrap_or_default());
    }
    if let Some(j) = jks_wanted(spec) {
        field(b"jks");
        field(
            j.alias
                .as_deref()
                .unwrap_or(keystore::DEFAULT_ALIAS)
                .as_bytes(),
        );
        field(passwords.jks.as_deref().unwrap_or_default());
    }
    field(chain_pem.as_bytes());
    field(ca_pem.unwrap_or_default().as_bytes());
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key_pem.as_bytes());
    aws_lc_rs::hmac::sign(&key, &message)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Why a Secret's outputs are not what the spec asks for; worded for an Event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stale {
    /// An asked-for data key is absent.
    Missing(&'static str),
    /// `tls-combined.pem` or `key.der` differs from `tls.key`/`tls.crt`.
    Outdated(&'static str),
    /// The keystores were made from other inputs (password, profile, alias or certificate).
    Keystores,
}

impl std::fmt::Display for Stale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stale::Missing(key) => write!(f, "{key} is missing"),
            Stale::Outdated(key) => write!(f, "{key} does not match tls.key and tls.crt"),
            Stale::Keystores => f.write_str(
                "the keystores were made with another password, profile, alias or certificate",
            ),
        }
    }
}

fn data<'a>(secret_data: &'a BTreeMap<String, ByteString>, key: &str) -> Option<&'a [u8]> {
    secret_data.get(key).map(|b| b.0.as_slice())
}

/// Whether the Secret's outputs are present and current for the spec. `passwords` is what the
/// controller read (needed only when keystores are asked for: without them the keystores are
/// checked for presence only). Outputs no longer asked for are not looked at. Pure.
pub fn check(
    spec: &CertificateSpec,
    secret_data: &BTreeMap<String, ByteString>,
    annotations: &BTreeMap<String, String>,
    passwords: Option<&KeystorePasswords>,
) -> Result<(), Stale> {
    let text = |key| data(secret_data, key).and_then(|b| std::str::from_utf8(b).ok());
    let (chain_pem, key_pem) = (
        text(super::TLS_CRT).unwrap_or_default(),
        text(super::TLS_KEY).unwrap_or_default(),
    );
    let ca_pem = text(super::CA_CRT);
    if format_wanted(spec, OutputFormatType::CombinedPEM) {
        match data(secret_data, COMBINED_PEM) {
            None => return Err(Stale::Missing(COMBINED_PEM)),
            Some(have) if have != combined_pem(key_pem, chain_pem).as_slice() => {
                return Err(Stale::Outdated(COMBINED_PEM));
            }
            Some(_) => {}
        }
    }
    if format_wanted(spec, OutputFormatType::DER) {
        match data(secret_data, KEY_DER) {
            None => return Err(Stale::Missing(KEY_DER)),
            Some(have) if key_der(key_pem).ok().as_deref() != Some(have) => {
                return Err(Stale::Outdated(KEY_DER));
            }
            Some(_) => {}
        }
    }
    let keys: Vec<&str> = wanted_keys(spec, ca_pem.is_some())
        .into_iter()
        .filter(|k| !matches!(*k, COMBINED_PEM | KEY_DER))
        .collect();
    if let Some(missing) = keys.iter().find(|k| data(secret_data, k).is_none()) {
        return Err(Stale::Missing(missing));
    }
    if let Some(passwords) = passwords.filter(|_| !keys.is_empty()) {
        let wanted = fingerprint(spec, chain_pem, key_pem, ca_pem, passwords);
        if annotations.get(ANN_KEYSTORES_FINGERPRINT) != Some(&wanted) {
            return Err(Stale::Keystores);
        }
    }
    Ok(())
}

/// The data keys the spec asks for, in [`ALL_KEYS`] order; truststores only when the Secret has
/// a `ca.crt` (`has_ca`).
pub fn wanted_keys(spec: &CertificateSpec, has_ca: bool) -> Vec<&'static str> {
    let mut keys = Vec::new();
    if format_wanted(spec, OutputFormatType::CombinedPEM) {
        keys.push(COMBINED_PEM);
    }
    if format_wanted(spec, OutputFormatType::DER) {
        keys.push(KEY_DER);
    }
    if pkcs12_wanted(spec).is_some() {
        keys.push(PKCS12_KEYSTORE);
        if has_ca {
            keys.push(PKCS12_TRUSTSTORE);
        }
    }
    if jks_wanted(spec).is_some() {
        keys.push(JKS_KEYSTORE);
        if has_ca {
            keys.push(JKS_TRUSTSTORE);
        }
    }
    keys
}

/// When to look at a Certificate again: `wake`, or sooner when it has keystores, whose
/// passwords may change unseen (`recheck` from now, jittered).
pub fn recheck_by(
    spec: &CertificateSpec,
    wake: jiff::Timestamp,
    now: jiff::Timestamp,
    recheck: std::time::Duration,
) -> jiff::Timestamp {
    if !keystores_wanted(spec) {
        return wake;
    }
    let soon = jiff::SignedDuration::try_from(crate::retry::jittered(recheck))
        .ok()
        .and_then(|d| now.checked_add(d).ok())
        .unwrap_or(wake);
    wake.min(soon)
}

/// Which of the additional output keys a Secret holds, in [`ALL_KEYS`] order (for the CLI).
pub fn present(secret_data: &BTreeMap<String, ByteString>) -> Vec<&'static str> {
    ALL_KEYS
        .into_iter()
        .filter(|k| secret_data.contains_key(*k))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{
        AdditionalOutputFormat, CertificateKeystores, KeystorePasswordSecretRef, Pkcs12Profile,
        PrivateKeyAlgorithm, PrivateKeyEncoding,
    };
    use crate::pki::keystore::tests::{
        Fixture, first_private_key, fixture, keytool_list, openssl_pkcs12, public_keys_match, run,
        write,
    };

    fn password_ref() -> Option<KeystorePasswordSecretRef> {
        Some(KeystorePasswordSecretRef {
            name: "keystore-password".into(),
            key: "password".into(),
        })
    }

    fn spec(formats: &[OutputFormatType], pkcs12: bool, jks: bool) -> CertificateSpec {
        CertificateSpec {
            secret_name: "web-tls".into(),
            dns_names: vec!["app.example.test".into()],
            additional_output_formats: formats
                .iter()
                .map(|t| AdditionalOutputFormat { type_: *t })
                .collect(),
            keystores: Some(CertificateKeystores {
                pkcs12: pkcs12.then(|| Pkcs12Keystore {
                    create: true,
                    password_secret_ref: password_ref(),
                    profile: Some(Pkcs12Profile::Modern2023),
                }),
                jks: jks.then(|| JksKeystore {
                    create: true,
                    password_secret_ref: password_ref(),
                    alias: None,
                }),
            }),
            ..Default::default()
        }
    }

    fn all() -> CertificateSpec {
        spec(
            &[OutputFormatType::CombinedPEM, OutputFormatType::DER],
            true,
            true,
        )
    }

    fn passwords(pw: &str) -> KeystorePasswords {
        KeystorePasswords {
            pkcs12: Some(pw.as_bytes().to_vec()),
            jks: Some(pw.as_bytes().to_vec()),
        }
    }

    fn key_pem(f: &Fixture, encoding: PrivateKeyEncoding) -> String {
        f.key.to_pem(encoding).unwrap()
    }

    /// The Secret data the controller would write: tls.crt, tls.key, ca.crt and the outputs.
    fn secret_data(
        f: &Fixture,
        key: &str,
        ca: bool,
        out: &Outputs,
    ) -> BTreeMap<String, ByteString> {
        let mut data = out.data.clone();
        data.insert(
            crate::secret::TLS_CRT.into(),
            ByteString(f.chain_pem.clone().into_bytes()),
        );
        data.insert(
            crate::secret::TLS_KEY.into(),
            ByteString(key.as_bytes().to_vec()),
        );
        if ca {
            data.insert(
                crate::secret::CA_CRT.into(),
                ByteString(f.ca_pem.clone().into_bytes()),
            );
        }
        data
    }

    #[test]
    fn combined_pem_is_the_key_a_newline_then_the_chain_and_decodes_in_openssl() {
        let f = fixture(PrivateKeyAlgorithm::ECDSA);
        let key = key_pem(&f, PrivateKeyEncoding::PKCS1);
        let out = additional_outputs(
            &spec(&[OutputFormatType::CombinedPEM], false, false),
            &f.chain_pem,
            &key,
            None,
            None,
        )
        .unwrap();
        let combined = String::from_utf8(out.data[COMBINED_PEM].0.clone()).unwrap();
        assert_eq!(combined, format!("{key}\n{}", f.chain_pem));
        assert!(out.annotations.is_empty(), "no keystores, no fingerprint");
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "tls-combined.pem", combined.as_bytes());
        let (ok, text) = run("openssl", &["pkey", "-in", &file, "-noout"]);
        assert!(ok, "{text}");
        let (ok, subject) = run("openssl", &["x509", "-in", &file, "-noout", "-subject"]);
        assert!(ok && subject.contains("app.example.test"), "{subject}");
    }

    #[test]
    fn key_der_is_the_der_of_tls_key_in_its_encoding_and_matches_the_leaf() {
        let dir = tempfile::tempdir().unwrap();
        let f = fixture(PrivateKeyAlgorithm::RSA);
        let leaf = pem::encode(&pem::Pem::new("CERTIFICATE", f.chain[0].clone()));
        for encoding in [PrivateKeyEncoding::PKCS1, PrivateKeyEncoding::PKCS8] {
            let key = key_pem(&f, encoding);
            let out = additional_outputs(
                &spec(&[OutputFormatType::DER], false, false),
                &f.chain_pem,
                &key,
                None,
                None,
            )
            .unwrap();
            let der = &out.data[KEY_DER].0;
            assert_eq!(der, &pem::parse(&key).unwrap().into_contents());
            let file = write(dir.path(), "key.der", der);
            let (ok, text) = run("openssl", &["pkey", "-inform", "DER", "-in", &file]);
            assert!(ok, "{encoding:?}: {text}");
            assert!(
                public_keys_match(dir.path(), &first_private_key(&text), &leaf),
                "{encoding:?}: key.der is not the leaf's key"
            );
        }
    }

    #[test]
    fn keystores_and_truststores_are_written_with_the_ca_only() {
        let f = fixture(PrivateKeyAlgorithm::ECDSA);
        let key = key_pem(&f, PrivateKeyEncoding::PKCS1);
        let pw = passwords("s3cret-pass");
        let with_ca =
            additional_outputs(&all(), &f.chain_pem, &key, Some(&f.ca_pem), Some(&pw)).unwrap();
        let keys: Vec<&str> = with_ca.data.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "key.der",
                "keystore.jks",
                "keystore.p12",
                "tls-combined.pem",
                "truststore.jks",
                "truststore.p12"
            ]
        );
        assert!(with_ca.annotations.contains_key(ANN_KEYSTORES_FINGERPRINT));
        let without = additional_outputs(&all(), &f.chain_pem, &key, None, Some(&pw)).unwrap();
        assert!(!without.data.contains_key(PKCS12_TRUSTSTORE));
        assert!(!without.data.contains_key(JKS_TRUSTSTORE));
        // Without passwords: the formats that need none, no keystores, no fingerprint.
        let no_pw = additional_outputs(&all(), &f.chain_pem, &key, Some(&f.ca_pem), None).unwrap();
        assert_eq!(
            no_pw.data.keys().map(String::as_str).collect::<Vec<_>>(),
            ["key.der", "tls-combined.pem"]
        );
        assert!(no_pw.annotations.is_empty());
        // What was written opens with the password.
        let dir = tempfile::tempdir().unwrap();
        let p12 = write(dir.path(), "keystore.p12", &with_ca.data[PKCS12_KEYSTORE].0);
        assert!(openssl_pkcs12(&p12, "s3cret-pass", false).0);
        let jks = write(dir.path(), "keystore.jks", &with_ca.data[JKS_KEYSTORE].0);
        let (ok, text) = keytool_list(&jks, "JKS", "s3cret-pass");
        assert!(ok && text.contains("Alias name: certificate"), "{text}");
    }

    #[test]
    fn a_missing_password_is_an_error_that_names_the_store_not_the_password() {
        let f = fixture(PrivateKeyAlgorithm::ECDSA);
        let key = key_pem(&f, PrivateKeyEncoding::PKCS1);
        let only_p12 = KeystorePasswords {
            pkcs12: Some(b"s3cret-pass".to_vec()),
            jks: None,
        };
        let err =
            additional_outputs(&all(), &f.chain_pem, &key, None, Some(&only_p12)).unwrap_err();
        assert_eq!(err, OutputError::MissingPassword("JKS"));
        let short = passwords("short");
        let err = additional_outputs(&all(), &f.chain_pem, &key, None, Some(&short)).unwrap_err();
        assert!(!err.to_string().contains("short"), "{err}");
        assert!(
            !format!("{short:?}").contains("short"),
            "Debug shows a password"
        );
    }

    #[test]
    fn check_finds_missing_outdated_and_repassworded_outputs() {
        let f = fixture(PrivateKeyAlgorithm::ECDSA);
        let key = key_pem(&f, PrivateKeyEncoding::PKCS1);
        let pw = passwords("s3cret-pass");
        let spec = all();
        let out =
            additional_outputs(&spec, &f.chain_pem, &key, Some(&f.ca_pem), Some(&pw)).unwrap();
        let data = secret_data(&f, &key, true, &out);
        assert_eq!(check(&spec, &data, &out.annotations, Some(&pw)), Ok(()));
        // Asked for later: a Secret from before the field was set.
        let bare = secret_data(&f, &key, true, &Outputs::default());
        assert_eq!(
            check(&spec, &bare, &BTreeMap::new(), Some(&pw)),
            Err(Stale::Missing(COMBINED_PEM))
        );
        // tls.key re-encoded: the combined PEM and key.der no longer match it.
        let pkcs8 = key_pem(&f, PrivateKeyEncoding::PKCS8);
        let reencoded = secret_data(&f, &pkcs8, true, &out);
        assert_eq!(
            check(&spec, &reencoded, &out.annotations, Some(&pw)),
            Err(Stale::Outdated(COMBINED_PEM))
        );
        // The password changed: the fingerprint differs.
        assert_eq!(
            check(
                &spec,
                &data,
                &out.annotations,
                Some(&passwords("another-pass"))
            ),
            Err(Stale::Keystores)
        );
        // A ca.crt appeared: its truststores are missing.
        let no_ca = additional_outputs(&spec, &f.chain_pem, &key, None, Some(&pw)).unwrap();
        let mut data = secret_data(&f, &key, false, &no_ca);
        assert_eq!(check(&spec, &data, &no_ca.annotations, Some(&pw)), Ok(()));
        data.insert(
            crate::secret::CA_CRT.into(),
            ByteString(f.ca_pem.clone().into_bytes()),
        );
        assert_eq!(
            check(&spec, &data, &no_ca.annotations, Some(&pw)),
            Err(Stale::Missing(PKCS12_TRUSTSTORE))
        );
        // Without passwords at hand, presence is all that is checked.
        assert_eq!(
            check(
                &spec,
                &secret_data(&f, &key, false, &no_ca),
                &BTreeMap::new(),
                None
            ),
            Ok(())
        );
        // Nothing asked: nothing to check, whatever the Secret holds.
        assert_eq!(
            check(&CertificateSpec::default(), &bare, &BTreeMap::new(), None),
            Ok(())
        );
        assert!(Stale::Keystores.to_string().contains("password"));
    }

    #[test]
    fn the_fingerprint_follows_every_input_and_hides_the_password() {
        let f = fixture(PrivateKeyAlgorithm::ECDSA);
        let key = key_pem(&f, PrivateKeyEncoding::PKCS1);
        let pw = passwords("s3cret-pass");
        let base = fingerprint(&all(), &f.chain_pem, &key, None, &pw);
        assert_eq!(base, fingerprint(&all(), &f.chain_pem, &key, None, &pw));
        assert_eq!(base.len(), 64);
        assert!(!base.contains("s3cret"));
        let mut other_profile = all();
        if let Some(p) = other_profile
            .keystores
            .as_mut()
            .and_then(|k| k.pkcs12.as_mut())
        {
            p.profile = Some(Pkcs12Profile::LegacyDES);
        }
        let mut other_alias = all();
        if let Some(j) = other_alias.keystores.as_mut().and_then(|k| k.jks.as_mut()) {
            j.alias = Some("web".into());
        }
        let other_key = key_pem(&f, PrivateKeyEncoding::PKCS8);
        for (what, other) in [
            (
                "password",
                fingerprint(&all(), &f.chain_pem, &key, None, &passwords("other-pass")),
            ),
            (
                "profile",
                fingerprint(&other_profile, &f.chain_pem, &key, None, &pw),
            ),
            (
                "alias",
                fingerprint(&other_alias, &f.chain_pem, &key, None, &pw),
            ),
            (
                "ca.crt",
                fingerprint(&all(), &f.chain_pem, &key, Some(&f.ca_pem), &pw),
            ),
            (
                "tls.key",
                fingerprint(&all(), &f.chain_pem, &other_key, None, &pw),
            ),
        ] {
            assert_ne!(base, other, "{what} does not change the fingerprint");
        }
    }

    #[test]
    fn certificates_with_keystores_are_looked_at_again_within_the_recheck() {
        let now = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        let far = now
            .checked_add(jiff::SignedDuration::from_hours(24 * 30))
            .unwrap();
        assert_eq!(
            recheck_by(
                &spec(&[OutputFormatType::DER], false, false),
                far,
                now,
                PASSWORD_RECHECK
            ),
            far
        );
        let soon = recheck_by(&all(), far, now, PASSWORD_RECHECK);
        let max = PASSWORD_RECHECK.as_secs_f64() * 1.21;
        assert!(
            soon > now && soon.duration_since(now).as_secs_f64() <= max,
            "{soon}"
        );
        let sooner = now.checked_add(jiff::SignedDuration::from_secs(5)).unwrap();
        assert_eq!(recheck_by(&all(), sooner, now, PASSWORD_RECHECK), sooner);
    }

    #[test]
    fn create_false_asks_for_nothing() {
        let mut s = all();
        if let Some(k) = s.keystores.as_mut() {
            k.pkcs12.as_mut().unwrap().create = false;
            k.jks.as_mut().unwrap().create = false;
        }
        assert!(!keystores_wanted(&s));
        assert!(any_wanted(&s));
        s.additional_output_formats.clear();
        assert!(!any_wanted(&s));
    }

    #[test]
    fn wanted_keys_follow_the_spec_and_the_ca() {
        assert_eq!(
            wanted_keys(&all(), true),
            [
                COMBINED_PEM,
                KEY_DER,
                PKCS12_KEYSTORE,
                PKCS12_TRUSTSTORE,
                JKS_KEYSTORE,
                JKS_TRUSTSTORE
            ]
        );
        assert_eq!(
            wanted_keys(&spec(&[OutputFormatType::DER], true, false), false),
            [KEY_DER, PKCS12_KEYSTORE]
        );
        assert!(wanted_keys(&CertificateSpec::default(), true).is_empty());
    }

    #[test]
    fn present_lists_the_output_keys_in_order() {
        let data = BTreeMap::from([
            (JKS_KEYSTORE.to_string(), ByteString(vec![1])),
            (COMBINED_PEM.to_string(), ByteString(vec![1])),
            ("tls.crt".to_string(), ByteString(vec![1])),
        ]);
        assert_eq!(present(&data), [COMBINED_PEM, JKS_KEYSTORE]);
    }
}
