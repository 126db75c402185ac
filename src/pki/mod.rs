//! Keys, CSRs, issued chains and renewal arithmetic: the pure PKI logic of ferrocert.
//!
//! Nothing in here does I/O. The controller feeds in what it read (a Secret's `tls.key` and
//! `tls.crt`, the spec, the clock) and gets back decisions and bytes to write, so every rule
//! (when to renew, whether a Secret still matches its Certificate, which chain to keep) is a plain
//! function with unit tests next to it.
//!
//! - [`key`]: private key specs, generation, PEM parsing and encoding (PKCS#1/SEC1/PKCS#8).
//! - [`csr`]: the identifiers of a Certificate and the CSR that asks for them.
//! - [`chain`]: parsing the PEM chain a CA returns and choosing among alternate chains.
//! - [`renewal`]: Go durations, the renewal instant, retry backoff.
//! - [`renewal_info`]: ARI windows (RFC 9773): the instant inside a window, when to re-check.
//! - [`keystore`]: PKCS#12 and JKS keystores and truststores for `spec.keystores`.
//! - [`matches`](mod@matches): does a Secret's certificate and key still satisfy the spec, and if not, why.
//! - [`sign`]: signing locally for the `selfSigned` and `ca` issuers, and whether a Secret is a
//!   usable CA.

pub mod chain;
pub mod csr;
pub mod issued;
pub mod key;
pub mod keystore;
pub mod matches;
pub mod renewal;
pub mod renewal_info;
pub mod sign;

#[cfg(test)]
#[cfg(test)]
pub(crate) mod test_support;

pub use chain::{
    IssuedChain, ParsedLeaf, chain_links, choose_preferred_chain, key_matches_leaf, parse_chain,
    top_issuer_cn,
};
pub use csr::{Identifier, build_csr, csr_for_spec, identifiers};
pub use key::{EcCurve, KeySpec, PrivateKey, generate, parse_pem};
pub use matches::{Mismatch, secret_satisfies};
pub use renewal::{
    MIN_RETRY, backoff, cap_backoff_below_expiry, parse_go_duration, renewal_time,
    renewal_time_for_spec,
};

/// Everything that can go wrong in the PKI helpers. Each message says what was being done and
/// why it failed, because these texts end up verbatim in Certificate conditions and Events.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum PkiError {
    /// The `privateKey` block asks for something that cannot be generated.
    #[error("invalid privateKey: {0}")]
    InvalidKeySpec(String),

    /// The crypto backend failed to generate a key.
    #[error("generating a {spec} private key failed: {reason}")]
    KeyGeneration { spec: KeySpec, reason: String },

    /// The input is not PEM, or holds no (or more than one) private key block.
    #[error("the private key PEM could not be read: {0}")]
    InvalidPem(String),

    /// The PEM block is well-formed but its content is not a usable private key.
    #[error("the private key could not be parsed: {0}")]
    InvalidKey(String),

    /// The key parses but is of a kind ferrocert does not issue for (e.g. P-521, DSA).
    #[error("unsupported private key: {0}")]
    UnsupportedKey(String),

    /// Re-encoding a key (PKCS#8 to PKCS#1/SEC1) failed.
    #[error("encoding the private key as {encoding} failed: {reason}")]
    KeyEncoding {
        encoding: &'static str,
        reason: String,
    },

    /// An `ipAddresses` entry is not an IP address.
    #[error("invalid IP address {0:?} in ipAddresses")]
    InvalidIpAddress(String),

    /// The CSR could not be built (no identifiers, a name rcgen rejects, signing failed).
    #[error("building the certificate signing request failed: {0}")]
    Csr(String),

    /// The CA's answer holds no certificate.
    #[error("the certificate chain contains no CERTIFICATE PEM block")]
    EmptyChain,

    /// The chain is not valid PEM or holds something other than certificates.
    #[error("the certificate chain is not valid PEM: {0}")]
    InvalidChainPem(String),

    /// One certificate of the chain is not valid X.509. `index` 0 is the leaf.
    #[error("certificate #{index} of the chain could not be parsed: {reason}")]
    InvalidCertificate { index: usize, reason: String },

    /// Building or signing a certificate locally (`selfSigned` and `ca` issuers) failed.
    #[error("signing the certificate failed: {0}")]
    Signing(String),

    /// A `duration`/`renewBefore` value is not a Go duration.
    #[error(
        "invalid duration {input:?}: {reason} (expected a Go duration such as 2160h, 90m or 1h30m)"
    )]
    InvalidDuration { input: String, reason: String },
}
