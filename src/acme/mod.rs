//! Talking to ACME servers: the HTTP client with custom roots and metrics, accounts, errors.

pub mod account;
pub mod alternates;
pub mod error;
pub mod http;
pub mod lifecycle;

pub use account::{AccountConfig, Accounts, Eab, Registered, key_fingerprint};
pub use error::{AcmeError, problem_text, short_problem_type};
