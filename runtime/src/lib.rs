//! What the operator and the node agent run the same way.
//!
//! For now the HTTP server of `/metrics` and the health endpoints, with the
//! limits that keep it answering under abuse ([`http`]).
#![forbid(unsafe_code)]

pub mod http;
