//! ferrocert: a Kubernetes operator that obtains TLS certificates from ACME certificate
//! authorities and keeps them, renewed, in Secrets. See `DESIGN.md` in the shared notes and the
//! README for the architecture.

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
pub mod retry;
pub mod secret;
pub mod solver;
pub mod tls;
