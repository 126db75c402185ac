//! Failover between the issuers of `spec.issuerRefs`: which issuer the next attempt uses after a
//! failure, and whether it may go at once. Pure: the reconcile records the answer in status.

use std::time::Duration;

use crate::acme::AcmeError;
use crate::api::{CertificateStatus, IssuerKind, IssuerRef};

/// Whose fault a failed attempt was, as far as choosing the next issuer goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// Not the CA's: an invalid spec, a challenge the CA found invalid, the self-check failing,
    /// a refused Secret. The next attempt backs off and uses the same issuer.
    NotTheCa,
    /// The CA's: unreachable, a 5xx, `serverInternal`, or an issuer whose account registration
    /// failed.
    CaUnavailable,
    /// The CA's rate limit (also the CA's, and backed off longer when no issuer is left).
    RateLimited,
    /// The CA answered, but not what was asked: an order with authorizations for other names, a
    /// certificate for other names or another key, or one not valid now. Also the CA's fault;
    /// the conditions say [`CA_MISBEHAVED`].
    CaMisbehaved,
}

impl FailureKind {
    /// Classifies an error from talking to the CA.
    pub fn of(err: &AcmeError) -> Self {
        if err.is_rate_limited() {
            return FailureKind::RateLimited;
        }
        match err {
            AcmeError::Protocol(instant_acme::Error::Api(problem)) => {
                Self::of_problem(problem.r#type.as_deref(), problem.status)
            }
            AcmeError::Protocol(
                instant_acme::Error::Http(_)
                | instant_acme::Error::Hyper(_)
                | instant_acme::Error::Timeout(_),
            ) => FailureKind::CaUnavailable,
            _ => FailureKind::NotTheCa,
        }
    }

    /// Classifies a problem document by its type and HTTP status.
    pub fn of_problem(problem_type: Option<&str>, status: Option<u16>) -> Self {
        match problem_type.map(crate::acme::short_problem_type) {
            Some("rateLimited") => FailureKind::RateLimited,
            Some("serverInternal") => FailureKind::CaUnavailable,
            _ if status.is_some_and(|s| s >= 500) => FailureKind::CaUnavailable,
            _ => FailureKind::NotTheCa,
        }
    }

    /// Whether the failure was the CA's, so another issuer may do better.
    pub fn is_the_cas(self) -> bool {
        !matches!(self, FailureKind::NotTheCa)
    }

    pub fn is_rate_limited(self) -> bool {
        self == FailureKind::RateLimited
    }
}

/// The reason of the conditions (and of the Event) of a failure that was the CA answering
/// something else than what was asked ([`FailureKind::CaMisbehaved`]).
pub const CA_MISBEHAVED: &str = "CAMisbehaved";

/// After a failure of the issuer at `current` (of `refs_len`): the index of the issuer for the
/// next attempt, and whether that attempt may go at once (`true`) or waits out the failure
/// backoff. A failure that is the CA's moves to the next issuer at once; after the last issuer
/// it wraps around to the first, with the backoff. Any other failure keeps the issuer and backs
/// off. With one issuer this is today's behaviour: the same issuer, after the backoff.
pub fn next_issuer(refs_len: usize, current: usize, kind: FailureKind) -> (usize, bool) {
    let current = current.min(refs_len.saturating_sub(1));
    if !kind.is_the_cas() || refs_len <= 1 {
        return (current, false);
    }
    if current + 1 < refs_len {
        (current + 1, true)
    } else {
        (0, false)
    }
}

/// The index of the issuer in use recorded in `status`, 0 when unset or out of range.
pub fn status_index(status: &CertificateStatus, refs_len: usize) -> usize {
    status
        .issuer_index
        .and_then(|i| usize::try_from(i).ok())
        .filter(|i| *i < refs_len)
        .unwrap_or(0)
}

/// Records in `status` that the issuer at `index` of `refs` is the one in use.
pub fn record_index(status: &mut CertificateStatus, refs: &[IssuerRef], index: usize) {
    status.issuer_ref = refs.get(index).cloned();
    status.issuer_index = refs.get(index).and_then(|_| i32::try_from(index).ok());
}

/// `Issuer a` or `ClusterIssuer b`, for messages.
pub fn describe_ref(name: &str, kind: IssuerKind) -> String {
    format!("{} {name}", crate::secret::kind_str(kind))
}

/// How soon an attempt that fails over to the next issuer goes.
pub const RETRY_NOW: Duration = Duration::from_secs(1);

/// The reason of the `Issuing` condition (and of the Event) when the next attempt moves to
/// another issuer at once; the backoff reads it as "go now".
pub const ISSUER_FAILOVER: &str = "IssuerFailover";

/// The Issuer `Ready` reason for an account registration that failed at the CA.
pub const REGISTRATION_FAILED: &str = "ErrRegisterACMEAccount";

#[cfg(test)]
mod tests {
    use super::*;

    const CA: FailureKind = FailureKind::CaUnavailable;
    const NOT: FailureKind = FailureKind::NotTheCa;

    #[test]
    fn a_failure_of_the_ca_moves_to_the_next_issuer_at_once() {
        assert_eq!(next_issuer(3, 0, CA), (1, true));
        assert_eq!(next_issuer(3, 1, FailureKind::RateLimited), (2, true));
        assert_eq!(
            next_issuer(3, 0, FailureKind::CaMisbehaved),
            (1, true),
            "a CA answering other names than asked may be done better by the next"
        );
        assert_eq!(next_issuer(1, 0, FailureKind::CaMisbehaved), (0, false));
    }

    #[test]
    fn after_the_last_issuer_it_wraps_around_with_the_backoff() {
        assert_eq!(next_issuer(3, 2, CA), (0, false));
        assert_eq!(next_issuer(2, 1, FailureKind::RateLimited), (0, false));
    }

    #[test]
    fn a_failure_that_is_not_the_cas_keeps_the_issuer_and_backs_off() {
        assert_eq!(next_issuer(3, 0, NOT), (0, false));
        assert_eq!(next_issuer(3, 2, NOT), (2, false));
    }

    #[test]
    fn one_issuer_behaves_as_before() {
        assert_eq!(next_issuer(1, 0, CA), (0, false));
        assert_eq!(next_issuer(1, 0, NOT), (0, false));
    }

    #[test]
    fn an_index_out_of_range_is_clamped() {
        assert_eq!(next_issuer(2, 7, NOT), (1, false));
        assert_eq!(next_issuer(2, 7, CA), (0, false));
        assert_eq!(next_issuer(0, 0, CA), (0, false));
    }

    #[test]
    fn problems_are_classified_by_type_and_status() {
        let full = |t: &str| format!("urn:ietf:params:acme:error:{t}");
        assert_eq!(
            FailureKind::of_problem(Some(&full("rateLimited")), Some(429)),
            FailureKind::RateLimited
        );
        assert_eq!(
            FailureKind::of_problem(Some(&full("serverInternal")), Some(500)),
            CA
        );
        assert_eq!(FailureKind::of_problem(None, Some(503)), CA);
        assert_eq!(
            FailureKind::of_problem(Some(&full("malformed")), Some(400)),
            NOT
        );
        assert_eq!(
            FailureKind::of_problem(Some(&full("unauthorized")), Some(403)),
            NOT
        );
        assert_eq!(FailureKind::of_problem(None, None), NOT);
    }

    #[test]
    fn errors_without_a_problem_are_classified_by_what_failed() {
        let timeout = AcmeError::Protocol(instant_acme::Error::Timeout(None));
        assert_eq!(FailureKind::of(&timeout), CA);
        let key = AcmeError::AccountKey("bad".into());
        assert_eq!(FailureKind::of(&key), NOT);
    }
}
