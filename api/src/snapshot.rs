//! The LvsSnapshot kind: a request for one node's live IPVS table (and,
//! optionally, what its agent would change), answered once by that node's
//! agent in the status.
//!
//! `kubectl lvs table|diff|get|top` read the kernel through these objects,
//! so the plugin needs neither ssh nor a route to the agents, and the only
//! writes to etcd are the ones a user asks for: one object per node (named
//! after it), its spec rewritten by the plugin with a new `request` token,
//! its status written by the agent once per token, capped in size.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::lvsnode::TrafficCounters;

/// At most this many entries, services and destinations together, are
/// listed in a snapshot's status (the destinations left out, those of
/// services left out whole included, are counted in `omittedDestinations`).
pub const MAX_SNAPSHOT_DESTINATIONS: usize = 2000;
/// At most this many changes are listed in a snapshot's status.
pub const MAX_SNAPSHOT_CHANGES: usize = 500;

/// A request for the live IPVS table of one node. Cluster-scoped and named
/// after the node; the node's agent answers each new `request` once.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "kube", derive(kube::CustomResource))]
#[cfg_attr(
    feature = "kube",
    kube(
        group = "lvs.lvs-operator.io",
        version = "v1alpha1",
        kind = "LvsSnapshot",
        plural = "lvssnapshots",
        singular = "lvssnapshot",
        shortname = "lvssnap",
        category = "lvs",
        status = "LvsSnapshotStatus",
        printcolumn = r#"{"name":"Node","type":"string","jsonPath":".spec.nodeName"}"#,
        printcolumn = r#"{"name":"Answered","type":"date","jsonPath":".status.time"}"#,
        printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
    )
)]
#[serde(rename_all = "camelCase")]
pub struct LvsSnapshotSpec {
    /// The node whose agent answers (equal to metadata.name).
    #[schemars(regex(pattern = crate::NODE_NAME_PATTERN))]
    pub node_name: String,
    /// A token chosen by the requester; the agent answers when it differs
    /// from `status.request`. Write a new one to ask again.
    #[schemars(length(min = 1, max = 64))]
    pub request: String,
    /// Only the IPVS services of these VirtualServices (namespace/name);
    /// empty: the whole table, services the agent does not own included.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub virtual_services: Vec<String>,
    /// Also list what the agent would change to make the kernel match what
    /// it wants (desired against a fresh read of the kernel), without
    /// changing anything.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub diff: bool,
}

/// The agent's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LvsSnapshotStatus {
    /// The `spec.request` this answers.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub request: String,
    /// When the kernel was read (RFC 3339, with sub-second precision).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub time: String,
    /// Empty on success; otherwise why the agent could not answer (for
    /// instance reading the kernel failed).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
    /// The IPVS services, sorted as `ipvsadm -Ln` sorts them (by family,
    /// protocol, address, port; firewall marks last).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<LiveService>,
    /// Destinations left out beyond the size cap (2000 services and
    /// destinations together), those of services left out whole included.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub omitted_destinations: u32,
    /// With `spec.diff`: the writes the agent would make, in the order it
    /// would make them, e.g. "edit destination 10.0.0.2:80 of TCP
    /// 192.0.2.10:80: weight 0 -> 1". Empty: the kernel is as wanted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
    /// Changes left out beyond the size cap (500).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub omitted_changes: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One IPVS service as the kernel holds it.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct LiveService {
    /// The service as `ipvsadm -Ln` names it: "TCP 192.0.2.10:80",
    /// "UDP [2001:db8::10]:53", "SCTP …", or "FWM 7" (with " IPv6" for an
    /// IPv6 firewall-mark service).
    pub service: String,
    /// namespace/name of the VirtualService the agent programmed it for;
    /// empty for a service the agent does not own (made by someone else).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub owner: String,
    /// The scheduler (rr, wrr, lc, …).
    pub scheduler: String,
    /// Scheduler and service flags as ipvsadm names them (sh-fallback,
    /// sh-port, ops, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    /// Persistence timeout in seconds; absent when not persistent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<u32>,
    /// Persistence netmask (IPv4 dotted or IPv6 prefix length) when
    /// persistent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netmask: Option<String>,
    /// The service's counters (the kernel's own, not a sum).
    pub counters: TrafficCounters,
    /// The destinations, sorted by address and port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destinations: Vec<LiveDestination>,
}

/// One destination of a live IPVS service.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct LiveDestination {
    /// address:port ("[addr]:port" for IPv6).
    pub destination: String,
    /// Masq, Route, Tunnel or Local, as ipvsadm -Ln shows it.
    pub method: String,
    pub weight: i32,
    /// Connection thresholds (0: none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub upper_threshold: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lower_threshold: u32,
    /// Tunnel: ipip, gue or gre, with its options (e.g. "gre csum").
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tunnel: String,
    pub counters: TrafficCounters,
}
