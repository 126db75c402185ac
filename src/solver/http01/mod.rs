//! HTTP-01: the controller answers `/.well-known/acme-challenge/<token>` itself, from the
//! Certificates' status (so every replica can answer), and routes the CA's request to its pods
//! with a temporary Ingress and Service per challenge.

pub mod routing;
pub mod server;
