//! The RealServer kind: one backend of the VirtualServices that select it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::enums::{ForwardingMethod, RealServerState};
use crate::lvsnode::DestinationState;
use crate::rules;
use crate::status::Condition;
use crate::virtualservice::Tunnel;

/// A realserver: a backend address (or a node) that VirtualServices select by label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "kube", derive(kube::CustomResource))]
#[cfg_attr(
    feature = "kube",
    kube(
        group = "lvs.lvs-operator.io",
        version = "v1alpha1",
        kind = "RealServer",
        plural = "realservers",
        singular = "realserver",
        shortname = "lvsrs",
        category = "lvs",
        namespaced,
        status = "RealServerStatus",
        printcolumn = r#"{"name":"Address","type":"string","jsonPath":".status.address","description":"resolved address"}"#,
        printcolumn = r#"{"name":"Port","type":"integer","jsonPath":".spec.port"}"#,
        printcolumn = r#"{"name":"Weight","type":"integer","jsonPath":".spec.weight"}"#,
        printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
        printcolumn = r#"{"name":"Health","type":"string","jsonPath":".status.healthSummary","description":"Healthy, or the worst state a director reports (Failing, Unready, Draining, Inactive)"}"#,
        printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(transform = rules::rs_spec)]
pub struct RealServerSpec {
    /// The realserver's IP address. Set either address or nodeName.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), transform = rules::rs_address)]
    pub address: Option<String>,

    /// A node acting as realserver: its InternalIP is used, and the agent on
    /// that node sets up the DR (VIP on lo, ARP sysctls) or TUN (tunnel
    /// device) side. Set either address or nodeName. A node name is a
    /// DNS-1123 subdomain: lowercase letters, digits, '-' and '.'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = crate::NODE_NAME_PATTERN))]
    pub node_name: Option<String>,

    /// The port on the realserver (1-65535). Defaults to the service port; a
    /// different port (port mapping) is only possible with NAT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i64>,

    /// Scheduling weight, 0-65535 (default 1). 0 quiesces the realserver:
    /// no new connections, existing ones continue.
    #[serde(default = "default_weight")]
    #[schemars(range(min = 0, max = 65535))]
    pub weight: i64,

    /// Overrides the VirtualService's forwarding method for this realserver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarding: Option<ForwardingMethod>,

    /// Overrides the VirtualService's tunnel for this realserver, so one
    /// service can encapsulate differently per realserver (the kernel keeps
    /// the tunnel type per destination). Only when this realserver forwards
    /// with TUN (its forwarding, or the service's when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<Tunnel>,

    /// Active (default), Draining (weight 0 until its connections end or
    /// the VirtualService's drain deadline passes, then removed) or
    /// Inactive (kept at weight 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<RealServerState>,

    /// Stop sending new connections once the realserver has this many,
    /// active plus inactive as `ipvsadm -Ln` counts them, so TCP connections
    /// in TIME_WAIT and live UDP flows count too (0 or unset: no limit; at
    /// most 2147483647, the kernel refuses more).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 2147483647))]
    pub upper_threshold: Option<i64>,

    /// Resume below this many connections; must be less than upperThreshold,
    /// and 0 or unset without one (the kernel refuses a lower threshold
    /// above the upper one). Unset or 0 with an upperThreshold: resume below
    /// three quarters of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 2147483647))]
    pub lower_threshold: Option<i64>,
}

fn default_weight() -> i64 {
    1
}

/// Observed state, written by the operator.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RealServerStatus {
    /// The generation the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready and Invalid.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The address in use (spec.address, or the node's InternalIP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The VirtualServices (namespace/name) that select this realserver.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub selected_by: Vec<String>,
    /// "Healthy" while every director reporting on it takes it as healthy,
    /// else the worst state reported (Failing, Unready, Draining,
    /// Inactive). Unset until a director reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_summary: Option<String>,
    /// Per VirtualService whose directors do not take it as healthy: the
    /// state, where, since when and why. Empty while healthy everywhere.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health: Vec<RealServerHealth>,
}

/// How the directors of one VirtualService see this realserver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RealServerHealth {
    /// namespace/name of the VirtualService.
    pub virtual_service: String,
    /// The worst state its directors report.
    pub state: DestinationState,
    /// The directors reporting that state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub directors: Vec<String>,
    /// Since when (the earliest those directors report, RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// The last failed check or readiness problem.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Draining: the connections left (the most any director reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<u32>,
}
