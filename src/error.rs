//! The controller's error type: each variant says what failed and on which object.

use crate::acme::AcmeError;
use crate::pki::PkiError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("{action}: {source}")]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },
    #[error("{context}: {source}")]
    Acme {
        context: String,
        #[source]
        source: AcmeError,
    },
    #[error("{context}: {source}")]
    Pki {
        context: String,
        #[source]
        source: PkiError,
    },
    /// The object is missing something we need and it cannot be fixed by retrying soon.
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// A short label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "kube",
            Error::Acme { .. } => "acme",
            Error::Pki { .. } => "pki",
            Error::Invalid(_) => "invalid",
        }
    }

    /// The API server refused a write because our view was stale (resourceVersion precondition).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Kube { source: kube::Error::Api(s), .. } if s.code == 409)
    }
}

/// Attaches an action description to a kube error.
pub trait KubeContext<T> {
    fn context(self, action: impl FnOnce() -> String) -> Result<T, Error>;
}

impl<T> KubeContext<T> for Result<T, kube::Error> {
    fn context(self, action: impl FnOnce() -> String) -> Result<T, Error> {
        self.map_err(|source| Error::Kube {
            action: action(),
            source,
        })
    }
}

/// Whether a kube error is a 404.
pub fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 404)
}
