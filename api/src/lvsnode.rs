//! The LvsNode kind: what the agent on one node has programmed.
//!
//! Each agent writes only the object named after its node, so agents never
//! race on a VirtualService's status; the operator aggregates these reports
//! into each VirtualService's Programmed condition.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The report of the agent on one node. Cluster-scoped, named after the node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "kube", derive(kube::CustomResource))]
#[cfg_attr(
    feature = "kube",
    kube(
        group = "lvs.lvs-operator.io",
        version = "v1alpha1",
        kind = "LvsNode",
        plural = "lvsnodes",
        singular = "lvsnode",
        shortname = "lvsnode",
        category = "lvs",
        status = "LvsNodeStatus",
        printcolumn = r#"{"name":"Services","type":"integer","jsonPath":".status.programmedCount"}"#,
        printcolumn = r#"{"name":"Errors","type":"integer","jsonPath":".status.errorCount"}"#,
        printcolumn = r#"{"name":"LastSync","type":"date","jsonPath":".status.lastSyncTime"}"#,
        printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
    )
)]
#[serde(rename_all = "camelCase")]
pub struct LvsNodeSpec {
    /// The node this report is about (equal to metadata.name).
    pub node_name: String,
}

/// What the agent has programmed, as of its last sync.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LvsNodeStatus {
    /// When the agent last finished a sync (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<String>,
    /// Number of VirtualServices programmed without error.
    #[serde(default)]
    pub programmed_count: u32,
    /// Number of VirtualServices with an error on this node.
    #[serde(default)]
    pub error_count: u32,
    /// Problems of this node not tied to one VirtualService (IPVS missing,
    /// reading the kernel, a sysctl, the ledger), each listed once. While
    /// any is listed, every VirtualService this node has a role in counts as
    /// failed here, and `services` lists only those with errors of their
    /// own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_errors: Vec<String>,
    /// VirtualServices and RealServers the agent could not read (for
    /// instance a field this agent version does not know), by kind and
    /// namespace/name, with the reason. The agent acts as if they did not
    /// exist; the others are unaffected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<String>,
    /// VirtualServices this node would direct that the address pools
    /// refuse (VIP outside the pools that admit the namespace, held by
    /// another namespace, denied, or an empty director selector not
    /// allowed), as `namespace/name: why`, sorted; at most 50. The agent
    /// programs none of them, whatever admission let through.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<String>,
    /// Error texts left out or shortened to keep this object small (node
    /// errors and unreadable objects beyond their caps, per-service errors
    /// beyond the size budget). The agent's log and `/status` have them all.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub omitted_errors: u32,
    /// Destination entries left out of `services[].destinations` to keep
    /// this object small (the counts `healthy`/`total` still include them).
    /// The agent's `/status` lists them all.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub omitted_destinations: u32,
    /// One entry per VirtualService this node has a role in, sorted by name
    /// (while `nodeErrors` is non-empty, only those with errors of their
    /// own).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceReport>,
    /// Director high availability: this node's role for each VIP it is a
    /// director of, sorted by address. Empty when HA is off.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vips: Vec<VipRole>,
}

/// Whether a director holds and announces a VIP (Active) or only keeps its
/// IPVS services ready to take over (Standby).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum DirectorRole {
    Active,
    Standby,
}

impl DirectorRole {
    pub fn as_str(self) -> &'static str {
        match self {
            DirectorRole::Active => "Active",
            DirectorRole::Standby => "Standby",
        }
    }
}

impl std::fmt::Display for DirectorRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The role of this node for one VIP.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VipRole {
    /// The VIP (an IPv4 or IPv6 address).
    pub address: String,
    /// Active: this node holds and announces the VIP. Standby: it has the
    /// IPVS services ready but does not hold the VIP.
    pub role: DirectorRole,
    /// When this node took this role (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The state of one VirtualService on one node.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct ServiceReport {
    /// namespace/name of the VirtualService.
    pub name: String,
    /// The generation the node has programmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// director, dr-realserver or tun-realserver.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Empty when programmed; otherwise what failed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
    /// Director: destinations counted healthy (state Healthy), of `total`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<u32>,
    /// Director: the destinations the VirtualService selects (sorry server
    /// and draining ones not counted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u32>,
    /// Director: each destination whose state is not Healthy, sorted by
    /// destination (left out beyond the size budget; `healthy`/`total`
    /// still count them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destinations: Vec<DestinationReport>,
}

/// Why a destination is or is not taking new connections on a director.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
)]
pub enum DestinationState {
    /// Passing its health check (or none configured): its own weight.
    #[default]
    Healthy,
    /// Failed `fall` checks in a row: weight 0 (Inhibit) or removed (Remove)
    /// until `rise` checks pass.
    Failing,
    /// A DR/TUN realserver node whose agent has not reported the VIP set up
    /// for the current generation (or reported a problem): weight 0.
    Unready,
    /// Leaving (RealServer deleted, deselected, or state Draining): weight 0
    /// until its connections end or the drain deadline passes.
    Draining,
    /// RealServer state Inactive: weight 0.
    Inactive,
    /// The sorry server, programmed while too few realservers are healthy.
    Sorry,
}

impl DestinationState {
    pub fn as_str(self) -> &'static str {
        match self {
            DestinationState::Healthy => "Healthy",
            DestinationState::Failing => "Failing",
            DestinationState::Unready => "Unready",
            DestinationState::Draining => "Draining",
            DestinationState::Inactive => "Inactive",
            DestinationState::Sorry => "Sorry",
        }
    }
}

/// One destination of a VirtualService on one director.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct DestinationReport {
    /// address:port as IPVS shows it ("[addr]:port" for IPv6).
    pub destination: String,
    /// namespace/name of the RealServer ("" for the sorry server).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub real_server: String,
    pub state: DestinationState,
    /// Since when (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// The last failed check or readiness problem.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_error: String,
    /// Draining: the connections the drain still waits for (TCP and SCTP:
    /// active ones, as closed ones linger inactive for minutes; UDP and
    /// fwmark services: every entry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<u32>,
}
