//! Challenge solvers: HTTP-01 (a server of our own plus temporary routing objects).

pub mod dns01;
pub mod http01;
pub mod select;
