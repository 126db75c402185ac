//! ferrocert: a Kubernetes operator that obtains TLS certificates from ACME certificate
//! authorities and keeps them, renewed, in Secrets. The architecture is in `docs/design.md`, the
//! threat model in `docs/security.md`.

pub mod acme;
pub mod api;
pub mod cli;
pub mod controller;
pub mod crash;
pub mod crds;
pub mod error;
pub mod http_server;
pub mod labels;
pub mod metrics;
pub mod outbound;
pub mod pki;
pub mod policy;
pub mod retry;
pub mod secret;
pub mod shim;
pub mod solver;
pub mod tls;
