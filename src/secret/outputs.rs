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
/// How often a Certificate with keystores is looked at again when nothing else is due: the
/// password Secrets are not watched (the Secret watch selects ferrocert's own Secrets only), so
/// a changed password is found by this re-check.
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
    let has_ca = ca_pem.is_some();
    let mut keys = Vec::new();
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

/// When to look at a Certificate again: `wake`, or sooner when it has keystores, whose
/// passwords may change unseen ([`PASSWORD_RECHECK`], jittered).
pub fn recheck_by(
    spec: &CertificateSpec,
    wake: jiff::Timestamp,
    now: jiff::Timestamp,
) -> jiff::Timestamp {
    if !keystores_wanted(spec) {
        return wake;
    }
    let soon = jiff::SignedDuration::try_from(crate::retry::jittered(PASSWORD_RECHECK))
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
