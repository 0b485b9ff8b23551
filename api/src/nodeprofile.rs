//! The LvsNodeProfile kind: kernel settings of a group of nodes.
//!
//! A profile selects nodes by label and sets, on each, the global IPVS
//! timeouts (what `ipvsadm --set` sets) and the director sysctls under
//! `net.ipv4.vs`. Every field is optional: an unset field leaves the value
//! the agent would otherwise use (its own default or the kernel's). The
//! agent remembers the value it found before its first write and puts it
//! back once no profile asks for the setting any more.
//!
//! When several profiles select one node, none of them applies there: the
//! agent reports the conflict (in `/status` and its log) and keeps its
//! defaults until the selectors no longer overlap. A profile thus never
//! merges silently with another.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::rules;
use crate::selector::LabelSelector;

/// The kernel's largest IPVS timeout in seconds for any HZ up to 1000
/// (`INT_MAX / HZ`: larger values are refused with EINVAL).
pub const MAX_TIMEOUT_SECONDS: i64 = 2_147_483;

/// Kernel settings for the nodes a selector picks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "kube", derive(kube::CustomResource))]
#[cfg_attr(
    feature = "kube",
    kube(
        group = "lvs.lvs-operator.io",
        version = "v1alpha1",
        kind = "LvsNodeProfile",
        plural = "lvsnodeprofiles",
        singular = "lvsnodeprofile",
        shortname = "lvsprofile",
        category = "lvs",
        printcolumn = r#"{"name":"TCP","type":"integer","jsonPath":".spec.ipvsTimeouts.tcpSeconds"}"#,
        printcolumn = r#"{"name":"TCPFin","type":"integer","jsonPath":".spec.ipvsTimeouts.tcpFinSeconds"}"#,
        printcolumn = r#"{"name":"UDP","type":"integer","jsonPath":".spec.ipvsTimeouts.udpSeconds"}"#,
        printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(transform = rules::np_spec)]
pub struct LvsNodeProfileSpec {
    /// The nodes this profile applies to (by their labels). Unset or empty:
    /// every node. A node selected by two profiles gets neither (the agent
    /// reports the conflict).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<LabelSelector>,

    /// The global IPVS connection timeouts (`ipvsadm --set`). A connection
    /// already open takes the new value at its next packet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipvs_timeouts: Option<IpvsTimeouts>,

    /// The `net.ipv4.vs` sysctls (they hold for IPv4 and IPv6 services).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub director_sysctls: Option<DirectorSysctls>,
}

/// IPVS connection timeouts in seconds. Unset: the value found on the node
/// is left (kernel defaults: TCP 900, TCP FIN 120, UDP 300).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(transform = rules::np_timeouts)]
pub struct IpvsTimeouts {
    /// Idle timeout of an established TCP connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 2147483))]
    pub tcp_seconds: Option<i64>,
    /// Timeout of a TCP connection after the client's FIN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 2147483))]
    pub tcp_fin_seconds: Option<i64>,
    /// Idle timeout of a UDP flow (a client address and port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 2147483))]
    pub udp_seconds: Option<i64>,
}

/// The director sysctls under `net.ipv4.vs`. Unset: the agent's default
/// (see the README's "Node profiles" table).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DirectorSysctls {
    /// `conn_reuse_mode`: 0 reuses the connection entry of a finished TCP
    /// connection whose source port a new one reuses; 1 (kernel default)
    /// schedules such a connection afresh; 2 does so only for
    /// connections of which the director keeps no conntrack entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 2))]
    pub conn_reuse_mode: Option<i64>,
    /// `expire_nodest_conn`: expire a connection whose destination was
    /// deleted on its next packet. The agent sets true on directors: a
    /// destination is deleted only once its drain ended or a health check
    /// removed it, and its clients must then move. False leaves their
    /// packets dropped until the connection times out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_nodest_conn: Option<bool>,
    /// `expire_quiescent_template`: expire a persistence template to a
    /// weight-0 destination, so the client's next connection goes to a
    /// destination with weight. The agent sets true on directors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_quiescent_template: Option<bool>,
    /// `sloppy_tcp`: create a connection entry for any TCP packet, not
    /// only a SYN (a director taking over flows from another without the
    /// connection sync daemon).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sloppy_tcp: Option<bool>,
    /// `schedule_icmp`: schedule ICMP packets (ping to a VIP of a
    /// fwmark service) instead of dropping them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_icmp: Option<bool>,
    /// `conntrack`: keep netfilter conntrack entries for IPVS connections.
    /// The agent sets true on NAT directors (source NAT and firewalls on
    /// the director need it); false there breaks `sourceNat`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conntrack: Option<bool>,
}

/// A setting's place in the kernel: a key under `/proc/sys`, or one of the
/// IPVS global timeouts (`ipvs/timeout/...`, set through netlink).
pub const TIMEOUT_TCP_KEY: &str = "ipvs/timeout/tcp";
pub const TIMEOUT_TCP_FIN_KEY: &str = "ipvs/timeout/tcp_fin";
pub const TIMEOUT_UDP_KEY: &str = "ipvs/timeout/udp";

impl LvsNodeProfileSpec {
    /// The settings this profile asks for, as (key, value): sysctl keys
    /// under `/proc/sys` and the IPVS timeout keys above, in a fixed order.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(t) = &self.ipvs_timeouts {
            for (k, v) in [
                (TIMEOUT_TCP_KEY, t.tcp_seconds),
                (TIMEOUT_TCP_FIN_KEY, t.tcp_fin_seconds),
                (TIMEOUT_UDP_KEY, t.udp_seconds),
            ] {
                if let Some(v) = v {
                    out.push((k, v.to_string()));
                }
            }
        }
        if let Some(s) = &self.director_sysctls {
            let b = |v: bool| u8::from(v).to_string();
            let sysctls = [
                (
                    "net/ipv4/vs/conn_reuse_mode",
                    s.conn_reuse_mode.map(|v| v.to_string()),
                ),
                (
                    "net/ipv4/vs/expire_nodest_conn",
                    s.expire_nodest_conn.map(b),
                ),
                (
                    "net/ipv4/vs/expire_quiescent_template",
                    s.expire_quiescent_template.map(b),
                ),
                ("net/ipv4/vs/sloppy_tcp", s.sloppy_tcp.map(b)),
                ("net/ipv4/vs/schedule_icmp", s.schedule_icmp.map(b)),
                ("net/ipv4/vs/conntrack", s.conntrack.map(b)),
            ];
            out.extend(sysctls.into_iter().filter_map(|(k, v)| Some((k, v?))));
        }
        out
    }

    /// Whether the profile applies to a node with these labels.
    pub fn selects(&self, labels: &std::collections::BTreeMap<String, String>) -> bool {
        self.node_selector
            .as_ref()
            .is_none_or(|s| s.matches(labels))
    }
}
