//! The Kubernetes mode: VirtualServices, RealServers and Nodes come from
//! API server watches ([`KubeSource`]), and what the node programmed goes
//! back as the status of its own LvsNode ([`Reporter`]). Requests for the
//! node's live IPVS table come as its LvsSnapshot
//! ([`lvssnapshot::Answerer`]).
//!
//! The agent never writes VirtualService or RealServer objects; the operator
//! turns the LvsNode reports into each VirtualService's Programmed
//! condition.

pub mod cache;
pub mod lvsnode;
pub mod lvssnapshot;
pub mod readiness;
pub mod source;

pub use lvsnode::Reporter;
pub use source::KubeSource;

/// A short description of a client error: the API server's message and code
/// for an API error, the error text otherwise.
pub fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({} {})", s.message, s.code, s.reason),
        other => other.to_string(),
    }
}
