//! The ferrocert custom resources (group `ferrocert.dev`, version `v1alpha1`).
//!
//! Types only, no I/O. Field names follow cert-manager's `cert-manager.io/v1` where the meaning is the
//! same, so a manifest ports by changing `apiVersion`. Validation that the API server can do at apply
//! time lives here as OpenAPI constraints and CEL rules (`x-kubernetes-validations`).

pub mod certificate;
pub mod conditions;
pub mod issuer;
pub mod policy;
pub mod validation;

pub use certificate::{
    AdditionalOutputFormat, AdoptedStatus, Certificate, CertificateKeystores, CertificateSpec,
    CertificateStatus, ChallengeKind, ChallengeState, IssuerKind, IssuerRef, JksKeystore, KeyUsage,
    KeystorePasswordSecretRef, OrderAuthorization, OrderState, OrderStatus, OutputFormatType,
    Pkcs12Keystore, Pkcs12Profile, PrivateKeyAlgorithm, PrivateKeyEncoding, PrivateKeySpec,
    RenewalInfoStatus, RevocationStatus, RotationPolicy, SecretTemplate, X509Subject,
};
pub use issuer::{
    AcmeIssuer, AcmeIssuerStatus, AcmeSolver, CaIssuer, CaIssuerStatus, ClusterIssuer,
    ExternalAccountBinding, Http01Solver, Issuer, IssuerSpec, IssuerStatus, IssuerType,
    SecretKeySelector, SelfSignedIssuer, SolverSelector,
};
pub use policy::{BudgetPolicy, CaPolicy, IssuerPolicy, NamespacePolicy, NamespaceSelector};

/// The API group of every ferrocert resource.
pub const GROUP: &str = "ferrocert.dev";
/// The served and stored version.
pub const VERSION: &str = "v1alpha1";
