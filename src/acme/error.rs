//! Errors from talking to an ACME server, with the CA's own problem text kept intact.

use instant_acme::Problem;

use super::http::HttpClientError;

#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    #[error("building the ACME HTTP client: {0}")]
    Client(#[from] HttpClientError),
    #[error("{}", describe(.0))]
    Protocol(#[from] instant_acme::Error),
    #[error("account key: {0}")]
    AccountKey(String),
}

impl AcmeError {
    /// The CA's problem document, when the CA answered with one.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            AcmeError::Protocol(instant_acme::Error::Api(problem)) => Some(problem),
            _ => None,
        }
    }

    /// The problem type without the `urn:ietf:params:acme:error:` prefix (`rateLimited`, ...).
    pub fn problem_kind(&self) -> Option<&str> {
        self.problem()?.r#type.as_deref().map(short_problem_type)
    }

    pub fn is_rate_limited(&self) -> bool {
        self.problem_kind() == Some("rateLimited")
    }

    /// The CA refused the request's nonce, even after instant-acme's own retries with fresh
    /// ones. Nothing is wrong with the order: the step is worth repeating at once, and it must
    /// not count as a failed issuance (which backs off for an hour). Pebble rejects 5% of good
    /// nonces on purpose; at 5,000 Certificates three refusals in a row happened twice.
    pub fn is_bad_nonce(&self) -> bool {
        self.problem_kind() == Some("badNonce")
    }

    /// The CA said this resource (order, account) does not exist (any more).
    pub fn is_not_found(&self) -> bool {
        self.problem().is_some_and(|p| p.status == Some(404))
            || self.problem_kind() == Some("accountDoesNotExist")
    }
}

pub fn short_problem_type(t: &str) -> &str {
    t.strip_prefix("urn:ietf:params:acme:error:").unwrap_or(t)
}

/// "type: detail" for a problem, the CA's words first; other errors as they are.
fn describe(err: &instant_acme::Error) -> String {
    match err {
        instant_acme::Error::Api(problem) => problem_text(problem),
        other => other.to_string(),
    }
}

/// A problem document as one line: `urn:...:type: detail` plus subproblems.
pub fn problem_text(problem: &Problem) -> String {
    let mut text = match (&problem.r#type, &problem.detail) {
        (Some(t), Some(d)) => format!("{t}: {d}"),
        (Some(t), None) => t.clone(),
        (None, Some(d)) => d.clone(),
        (None, None) => "the CA returned an error without details".to_string(),
    };
    for sub in &problem.subproblems {
        text.push_str("; ");
        text.push_str(&sub.to_string());
    }
    text
}
