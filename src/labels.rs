//! Labels and annotations ferrocert puts on the objects it writes. The Secret watch selects on
//! [`CERTIFICATE_NAME`], so memory does not grow with unrelated Secrets.

/// Name of the Certificate an object belongs to (Secrets, temporary solver objects).
pub const CERTIFICATE_NAME: &str = "ferrocert.dev/certificate-name";
/// What a Secret holds: `tls` (the issued certificate), `next-key`, `account-key`.
pub const SECRET_ROLE: &str = "ferrocert.dev/secret-role";
/// Marks temporary solver objects: `http01`.
pub const SOLVER: &str = "ferrocert.dev/solver";
/// Standard marker of the managing tool.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "ferrocert";

/// Annotations on the TLS Secret that tie it to its Certificate and issuer.
pub const ANN_CERTIFICATE_NAME: &str = "ferrocert.dev/certificate-name";
pub const ANN_ISSUER_NAME: &str = "ferrocert.dev/issuer-name";
pub const ANN_ISSUER_KIND: &str = "ferrocert.dev/issuer-kind";
pub const ANN_DNS_NAMES: &str = "ferrocert.dev/dns-names";
pub const ANN_IP_ADDRESSES: &str = "ferrocert.dev/ip-addresses";
pub const ANN_COMMON_NAME: &str = "ferrocert.dev/common-name";
/// Set on a Certificate (by `ferrocert renew` or by hand) to ask for re-issuance now; the value is
/// an opaque request id, handled once.
pub const ANN_RENEW_REQUESTED: &str = "ferrocert.dev/renew-requested";
/// Set on a Certificate (by `ferrocert revoke` or by hand) to revoke its current certificate and
/// issue a new one; the value is an opaque request id, answered once (see status.revocation).
pub const ANN_REVOKE_REQUESTED: &str = "ferrocert.dev/revoke-requested";
/// The RFC 5280 reason for [`ANN_REVOKE_REQUESTED`] (`keyCompromise`, `superseded`, ...).
pub const ANN_REVOKE_REASON: &str = "ferrocert.dev/revoke-reason";
/// On the TLS Secret: the serial (hex) of a certificate ferrocert adopted rather than issued
/// (it keeps the issuer annotations off, so nothing reads it as this issuer's: no revocation).
pub const ANN_ADOPTED_SERIAL: &str = "ferrocert.dev/adopted-serial";
/// On the TLS Secret: the renew request id that issuance satisfied.
pub const ANN_RENEW_HANDLED: &str = "ferrocert.dev/renew-handled";

/// A label value for an object name: the name itself when it fits (63 characters), otherwise a
/// stable hash of it.
pub fn label_value(name: &str) -> String {
    if name.len() <= 63 {
        name.to_string()
    } else {
        format!("h-{}", short_hash(name))
    }
}

/// A 16-hex-digit SHA-256 prefix, for object names derived from longer inputs.
pub fn short_hash(input: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, input.as_bytes());
    digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_become_stable_hashes() {
        let long = "a".repeat(100);
        let v = label_value(&long);
        assert!(v.len() <= 63 && v.starts_with("h-"));
        assert_eq!(v, label_value(&long));
        assert_eq!(label_value("web"), "web");
    }
}
