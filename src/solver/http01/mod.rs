//! HTTP-01: the controller answers `/.well-known/acme-challenge/<token>` itself, from the
//! Certificates' status (so every replica can answer), and routes the CA's request to its pods
//! with a temporary Service, EndpointSlice and Ingress or HTTPRoute per challenge; before telling
//! the CA it checks the route itself.

pub mod backends;
pub mod routing;
pub mod self_check;
pub mod server;
