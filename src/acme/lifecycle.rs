//! The ACME calls about a certificate after it is issued: its renewal window (ARI, RFC 9773),
//! its revocation (RFC 8555 §7.6), and the profile names a CA offers for new orders.

use std::time::Duration;

use instant_acme::{Account, CertificateIdentifier, RevocationReason, RevocationRequest};
use jiff::Timestamp;
use rustls_pki_types::CertificateDer;

use super::AcmeError;
use crate::pki::renewal_info::{Window, whole_second};

/// The ARI identifier of a certificate (`base64url(AKI keyIdentifier).base64url(serial)`).
pub fn certificate_id(leaf_der: &[u8]) -> Result<String, String> {
    let der = CertificateDer::from(leaf_der);
    CertificateIdentifier::try_from(&der).map(|id| id.to_string())
}

/// What a CA said about a certificate's renewal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedWindow {
    pub window: Window,
    pub explanation_url: Option<String>,
    /// The CA's `Retry-After`: when to ask again.
    pub retry_after: Duration,
}

/// Why a window could not be had.
#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    /// The CA's directory has no `renewalInfo`: renewal uses the spec's time, nothing to show.
    #[error("the CA does not offer renewal information (ARI)")]
    Unsupported,
    #[error("restoring the issuer's ACME account: {0}")]
    Account(String),
    #[error("the certificate has no ARI identifier: {0}")]
    NoIdentifier(String),
    #[error("fetching the renewal window: {0}")]
    Fetch(AcmeError),
    #[error("the CA's renewal window is unusable: {0}")]
    Invalid(String),
}

/// Fetches the CA's suggested renewal window for a certificate (a plain GET, no nonce).
pub async fn fetch_window(
    account: &Account,
    leaf_der: &[u8],
) -> Result<FetchedWindow, WindowError> {
    let der = CertificateDer::from(leaf_der);
    let id = CertificateIdentifier::try_from(&der).map_err(WindowError::NoIdentifier)?;
    let (info, retry_after) = match account.renewal_info(&id).await {
        Ok(answer) => answer,
        Err(instant_acme::Error::Unsupported(_)) => return Err(WindowError::Unsupported),
        Err(e) => return Err(WindowError::Fetch(AcmeError::from(e))),
    };
    let to_ts = |nanos: i128| {
        Timestamp::from_nanosecond(nanos)
            .map_err(|e| WindowError::Invalid(format!("a time out of range: {e}")))
    };
    let start = to_ts(info.suggested_window.start.unix_timestamp_nanos())?;
    let end = to_ts(info.suggested_window.end.unix_timestamp_nanos())?;
    if end <= start {
        return Err(WindowError::Invalid(format!(
            "its end {end} is not after its start {start}"
        )));
    }
    // Whole seconds, as status keeps them (a window read back from status must equal a fetched
    // one), rounded inwards so that renewal never comes before the window opens.
    let start_up = whole_second(start);
    let start_up = if start_up < start {
        start_up + jiff::SignedDuration::from_secs(1)
    } else {
        start_up
    };
    let window = Window {
        start: start_up,
        end: whole_second(end).max(start_up),
    };
    Ok(FetchedWindow {
        window,
        explanation_url: info.explanation_url,
        retry_after,
    })
}

/// RFC 5280 revocation reasons a user may give (those Let's Encrypt accepts from subscribers).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[value(rename_all = "camelCase")]
pub enum RevokeReason {
    /// No reason given.
    #[default]
    Unspecified,
    /// The private key is (or may be) known to someone else: the next key is always new.
    KeyCompromise,
    /// The names or organisation in the certificate no longer apply.
    AffiliationChanged,
    /// Replaced by another certificate.
    Superseded,
    /// The certificate is no longer needed.
    CessationOfOperation,
}

impl RevokeReason {
    pub const ALL: [RevokeReason; 5] = [
        RevokeReason::Unspecified,
        RevokeReason::KeyCompromise,
        RevokeReason::AffiliationChanged,
        RevokeReason::Superseded,
        RevokeReason::CessationOfOperation,
    ];

    /// The camelCase name used in annotations, status and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            RevokeReason::Unspecified => "unspecified",
            RevokeReason::KeyCompromise => "keyCompromise",
            RevokeReason::AffiliationChanged => "affiliationChanged",
            RevokeReason::Superseded => "superseded",
            RevokeReason::CessationOfOperation => "cessationOfOperation",
        }
    }

    /// Parses the camelCase name (case-insensitively).
    pub fn parse(text: &str) -> Option<RevokeReason> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(text.trim()))
    }

    fn to_acme(self) -> RevocationReason {
        match self {
            RevokeReason::Unspecified => RevocationReason::Unspecified,
            RevokeReason::KeyCompromise => RevocationReason::KeyCompromise,
            RevokeReason::AffiliationChanged => RevocationReason::AffiliationChanged,
            RevokeReason::Superseded => RevocationReason::Superseded,
            RevokeReason::CessationOfOperation => RevocationReason::CessationOfOperation,
        }
    }
}

/// Revokes a certificate with the account that obtained it. A certificate the CA already has as
/// revoked counts as done: the goal is reached, and retrying could never succeed.
pub async fn revoke(
    account: &Account,
    leaf_der: &[u8],
    reason: RevokeReason,
) -> Result<(), AcmeError> {
    let der = CertificateDer::from(leaf_der);
    // RFC 8555 §7.6: "unspecified" is sent by leaving the reason out.
    let reason = (reason != RevokeReason::Unspecified).then(|| reason.to_acme());
    match account
        .revoke(&RevocationRequest {
            certificate: &der,
            reason,
        })
        .await
        .map_err(AcmeError::from)
    {
        Err(e) if e.problem_kind() == Some("alreadyRevoked") => Ok(()),
        other => other,
    }
}

/// Checks a wanted profile against those the CA's directory advertises; the error lists them.
pub fn check_profile<'a>(
    wanted: &str,
    advertised: impl IntoIterator<Item = &'a str>,
    server: &str,
) -> Result<(), String> {
    let mut names: Vec<&str> = advertised.into_iter().collect();
    if names.contains(&wanted) {
        return Ok(());
    }
    names.sort_unstable();
    if names.is_empty() {
        return Err(format!(
            "profile {wanted:?} was asked for, but the CA at {server} advertises no profiles; remove `profile`"
        ));
    }
    Err(format!(
        "profile {wanted:?} is not offered by the CA at {server}; valid profiles: {}",
        names.join(", ")
    ))
}

/// The profiles an account's CA advertises.
pub fn advertised_profiles(account: &Account) -> Vec<String> {
    account.profiles().map(|p| p.name.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_profile_passes() {
        assert!(check_profile("shortlived", ["default", "shortlived"], "https://ca").is_ok());
    }

    #[test]
    fn unknown_profile_lists_the_valid_ones_sorted() {
        let err = check_profile(
            "nope",
            ["tenminutes", "default", "shortlived"],
            "https://ca",
        )
        .unwrap_err();
        assert_eq!(
            err,
            "profile \"nope\" is not offered by the CA at https://ca; valid profiles: default, shortlived, tenminutes"
        );
    }

    #[test]
    fn profile_at_a_ca_without_profiles() {
        let err = check_profile("tlsserver", [], "https://ca").unwrap_err();
        assert!(err.contains("advertises no profiles"), "{err}");
    }

    #[test]
    fn revoke_reasons_round_trip() {
        for r in RevokeReason::ALL {
            assert_eq!(RevokeReason::parse(r.as_str()), Some(r));
        }
        assert_eq!(
            RevokeReason::parse("KEYCOMPROMISE"),
            Some(RevokeReason::KeyCompromise)
        );
        assert_eq!(RevokeReason::parse("caCompromise"), None);
        assert_eq!(RevokeReason::default().as_str(), "unspecified");
    }

    #[test]
    fn certificate_id_of_a_leaf_without_aki_is_an_error() {
        // rcgen's self-signed certificates carry no authority key identifier.
        let cert = rcgen::generate_simple_self_signed(vec!["a.test".into()]).unwrap();
        assert!(certificate_id(cert.cert.der()).is_err());
    }
}
