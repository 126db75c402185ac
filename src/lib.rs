//! ferrocert: a Kubernetes operator that obtains TLS certificates from ACME certificate
//! authorities and keeps them, renewed, in Secrets. See `DESIGN.md` in the shared notes and the
//! README for the architecture.

pub mod api;
pub mod crds;
pub mod pki;
pub mod tls;
