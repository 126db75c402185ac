//! Which issuer a reconcile is about (kind, name, the namespace of its Secrets), its ready gauge
//! and its ACME account configuration: shared by the ACME issuer reconcile (`issuer.rs`), the local
//! issuers (`local_issuer.rs`) and issuer resolution (`issuer_ref.rs`), so none of them imports
//! another for it.

use base64::Engine;
use kube::Resource;

use super::Ctx;
use crate::acme::AccountConfig;
use crate::api::issuer::AcmeIssuer;
use crate::secret::TLS_KEY;

/// The default key of the account key in its Secret (as in cert-manager).
pub const ACCOUNT_KEY: &str = TLS_KEY;

/// Which issuer, and where its Secrets are.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IssuerIdent {
    pub kind: &'static str,
    pub name: String,
    /// The namespace of the issuer's Secrets.
    pub secret_namespace: String,
}

impl IssuerIdent {
    /// The key of this issuer's account client in the shared cache.
    pub fn cache_key(&self) -> String {
        format!("{}/{}/{}", self.kind, self.secret_namespace, self.name)
    }
}

/// Sets the issuer's ready gauge.
pub fn record_ready<K: Resource>(ctx: &Ctx, obj: &K, ident: &IssuerIdent, ready: bool) {
    ctx.metrics
        .issuer_ready
        .get_or_create(&crate::metrics::IssuerLabels {
            kind: ident.kind.to_string(),
            namespace: obj.meta().namespace.clone().unwrap_or_default(),
            name: ident.name.clone(),
        })
        .set(i64::from(ready));
}

/// How to reach the issuer's ACME server.
pub fn account_config(acme: &AcmeIssuer) -> Result<AccountConfig, String> {
    let ca_bundle = match &acme.ca_bundle {
        None => None,
        Some(b64) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| format!("spec.acme.caBundle is not base64: {e}"))?,
        ),
    };
    Ok(AccountConfig {
        server: acme.server.clone(),
        ca_bundle,
        skip_tls_verify: acme.skip_tls_verify.unwrap_or(false),
    })
}
