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

/// How long each of the agent's watch requests lasts before it is renewed
/// (the API server ends it then), in seconds: the API server's own default
/// for watches that name none (`--min-request-timeout`). A fleet of agents
/// at rest costs the API server these renewals and the report refresh; with
/// kube's default (290 s) the renewals were most of it. A watch the API
/// server closes (a restart, a dropped connection) is renewed at once
/// either way, and one whose connection dies without a word falls silent:
/// the API server's bookmarks come about once a minute, so the client
/// gives up on it after `lvs_runtime::kube::READ_TIMEOUT` (5 minutes).
pub const WATCH_TIMEOUT_S: u32 = 1800;

/// The configuration of every watch of the agent (see [`WATCH_TIMEOUT_S`]).
pub fn watch_config() -> kube::runtime::watcher::Config {
    kube::runtime::watcher::Config::default().timeout(WATCH_TIMEOUT_S)
}

/// A short description of a client error: the API server's message and code
/// for an API error, the error text otherwise.
pub fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({} {})", s.message, s.code, s.reason),
        other => other.to_string(),
    }
}
