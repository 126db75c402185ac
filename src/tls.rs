//! The process-wide rustls crypto provider.
//!
//! kube defaults to `ring` and instant-acme to `aws-lc-rs`; with both compiled in rustls cannot pick
//! one and panics at the first client. The whole tree is built with aws-lc-rs only, and it is
//! installed as the process default before any client exists.

/// Installs aws-lc-rs as the default provider. Idempotent: a second call is a no-op.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is what we want.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
