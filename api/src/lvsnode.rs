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
    /// Services whose live state (`counters`, `countersTime`, `tableHash`)
    /// was left out to keep this object under its size limit, the last
    /// ones by name. Their VirtualServices show no traffic from this node;
    /// the agent's `/status` has them all.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub omitted_live: u32,
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
    /// Director: the kernel's counters of this VirtualService's IPVS
    /// services, summed (refreshed at most once per
    /// `--status-counters-interval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counters: Option<TrafficCounters>,
    /// Director: when `counters` were read from the kernel (RFC 3339). An
    /// unchanged sample is not written again, so at rest this can be older
    /// than the refresh interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counters_time: Option<String>,
    /// Director: a hash of this VirtualService's programmed IPVS table as
    /// the kernel holds it (services with scheduler, flags, persistence and
    /// netmask; destinations with method, weight, thresholds and tunnel
    /// settings; sorted). Equal on two directors means the same table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_hash: Option<String>,
    /// Director: the last time a resync found a change made to this
    /// VirtualService's kernel objects by someone else, and what it
    /// repaired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftReport>,
}

/// The kernel's connection and traffic counters of one or more IPVS
/// services, as `ipvsadm -Ln --stats --rate` shows them. Rates come from the
/// kernel's estimator (a 2 s average) and lag behind the traffic.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct TrafficCounters {
    /// Connections in an active state (ActiveConn, summed over destinations).
    pub active_connections: u64,
    /// Connections in another state (InActConn).
    pub inactive_connections: u64,
    /// Connections since the service was created.
    pub connections: u64,
    pub in_packets: u64,
    pub out_packets: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
    /// Connections per second.
    pub cps: u64,
    /// Packets per second, in.
    pub in_pps: u64,
    /// Packets per second, out.
    pub out_pps: u64,
    /// Bytes per second, in.
    pub in_bps: u64,
    /// Bytes per second, out.
    pub out_bps: u64,
}

impl TrafficCounters {
    /// Adds `other` to these counters (saturating).
    pub fn add(&mut self, other: &TrafficCounters) {
        let pairs = [
            (&mut self.active_connections, other.active_connections),
            (&mut self.inactive_connections, other.inactive_connections),
            (&mut self.connections, other.connections),
            (&mut self.in_packets, other.in_packets),
            (&mut self.out_packets, other.out_packets),
            (&mut self.in_bytes, other.in_bytes),
            (&mut self.out_bytes, other.out_bytes),
            (&mut self.cps, other.cps),
            (&mut self.in_pps, other.in_pps),
            (&mut self.out_pps, other.out_pps),
            (&mut self.in_bps, other.in_bps),
            (&mut self.out_bps, other.out_bps),
        ];
        for (a, b) in pairs {
            *a = a.saturating_add(b);
        }
    }
}

/// What a resync repaired on one director: changes to the agent's own
/// kernel objects that the agent did not make.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct DriftReport {
    /// When the resync found it (RFC 3339).
    pub time: String,
    /// How many objects were repaired.
    pub count: u32,
    /// What was repaired, e.g. "destination 10.0.0.2:80 of TCP/
    /// 192.0.2.10:80: weight 0 -> 1 restored" (the first few of `count`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repaired: Vec<String>,
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
