//! What a sync did: its errors, its op counts, and the state of each
//! VirtualService on this node. The Kubernetes mode publishes the per-service
//! part as status; the standalone mode logs it and serves it on `/status`.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

/// Kinds of failure, used as the `kind` label of the error metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// A desired IPVS service exists and was not created by the agent.
    ForeignService,
    /// A desired destination exists in an owned service and was not added by the agent.
    ForeignDestination,
    /// The kernel refused a write.
    Kernel,
    /// The director interface could not be determined.
    Interface,
    /// Reading kernel state failed.
    Read,
    /// The ledger could not be written.
    Ledger,
    /// IPVS is not available but services are wanted.
    IpvsUnavailable,
}

impl ErrorKind {
    pub fn metric_label(self) -> &'static str {
        match self {
            ErrorKind::ForeignService => "foreign_service",
            ErrorKind::ForeignDestination => "foreign_destination",
            ErrorKind::Kernel => "kernel",
            ErrorKind::Interface => "interface",
            ErrorKind::Read => "read",
            ErrorKind::Ledger => "ledger",
            ErrorKind::IpvsUnavailable => "ipvs_unavailable",
        }
    }
}

/// One problem of a sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncError {
    pub kind: ErrorKind,
    /// The VirtualService (namespace/name) it concerns, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    pub message: String,
}

impl SyncError {
    pub fn new(kind: ErrorKind, owner: Option<String>, message: impl Into<String>) -> Self {
        SyncError {
            kind,
            owner,
            message: message.into(),
        }
    }
}

impl fmt::Display for SyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.owner {
            Some(o) => write!(f, "{o}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// The programmed state of one VirtualService on this node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceReport {
    /// metadata.generation of the spec that was planned.
    pub generation: Option<i64>,
    /// Everything for the service is in the kernel as planned.
    pub programmed: bool,
    pub errors: Vec<String>,
}

/// The outcome of one sync.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncReport {
    /// Whether the kernel was read in full first.
    pub full: bool,
    /// Writes by kind (`service_add`, `addr_del`, ...).
    pub ops: BTreeMap<&'static str, u64>,
    /// Per VirtualService this node directs, by namespace/name.
    pub services: BTreeMap<String, ServiceReport>,
    pub errors: Vec<SyncError>,
}

impl SyncReport {
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn total_ops(&self) -> u64 {
        self.ops.values().sum()
    }

    pub(crate) fn count(&mut self, kind: &'static str) {
        *self.ops.entry(kind).or_default() += 1;
    }
}
