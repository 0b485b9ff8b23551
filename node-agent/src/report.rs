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
    /// A director VIP is not held because none of its services is in the
    /// kernel.
    VipWithheld,
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
            ErrorKind::VipWithheld => "vip_withheld",
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

    /// The same problem once for each owner (a VIP shared by several
    /// VirtualServices), or once without an owner when there is none.
    pub fn for_owners(
        kind: ErrorKind,
        owners: impl IntoIterator<Item = String>,
        message: impl Into<String>,
    ) -> Vec<Self> {
        let message = message.into();
        let mut out: Vec<Self> = owners
            .into_iter()
            .map(|o| SyncError::new(kind, Some(o), message.clone()))
            .collect();
        if out.is_empty() {
            out.push(SyncError::new(kind, None, message));
        }
        out
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

/// The roles a node can play for a VirtualService, as the LvsNode report
/// names them.
pub mod roles {
    pub const DIRECTOR: &str = "director";
    pub const DR_REALSERVER: &str = "dr-realserver";
    pub const TUN_REALSERVER: &str = "tun-realserver";
}

/// What this node must do for one VirtualService, according to the planner.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NodeRole {
    /// metadata.generation of the VirtualService that was planned.
    pub generation: Option<i64>,
    /// Sorted, unique; empty for a DR/TUN realserver node of a fwmark
    /// service (it is involved, but has nothing to set up).
    pub roles: Vec<&'static str>,
}

/// The VirtualServices `node` has a role in, by namespace/name: exactly the
/// accepted services whose [`Verdict::involved_nodes`] name it, which is the
/// set the operator waits for. A director that is also a realserver of the
/// same service is planned (and reported) as a director only.
///
/// [`Verdict::involved_nodes`]: lvs_planner::Verdict::involved_nodes
pub fn node_roles(node: &str, analysis: &lvs_planner::Analysis) -> BTreeMap<String, NodeRole> {
    analysis
        .verdicts
        .iter()
        .filter_map(|v| node_role(node, v).map(|r| (v.name.clone(), r)))
        .collect()
}

/// The role of `node` in one VirtualService, if it has one (see
/// [`node_roles`]).
pub fn node_role(node: &str, v: &lvs_planner::Verdict) -> Option<NodeRole> {
    use lvs_api::ForwardingMethod;
    if !v.involved_nodes().iter().any(|n| n == node) {
        return None;
    }
    let mut r: Vec<&'static str> = if v.directors.iter().any(|d| d == node) {
        vec![roles::DIRECTOR]
    } else {
        v.real_servers
            .iter()
            .filter(|rs| rs.ready() && rs.node.as_deref() == Some(node))
            .filter_map(|rs| v.destinations.iter().find(|d| d.owner == rs.name))
            .filter_map(|d| match d.method {
                ForwardingMethod::Dr => Some(roles::DR_REALSERVER),
                ForwardingMethod::Tun => Some(roles::TUN_REALSERVER),
                ForwardingMethod::Nat => None,
            })
            .collect()
    };
    r.sort_unstable();
    r.dedup();
    Some(NodeRole {
        generation: v.generation,
        roles: r,
    })
}

/// Longest error text per VirtualService in an LvsNode report; longer text
/// is cut (the agent's log and `/status` keep all of it).
pub const MAX_REPORT_ERROR: usize = 1024;

/// The LvsNode view of a sync: one entry per VirtualService the node has a
/// role in, sorted by name, with the generation that was planned and the
/// problems of that sync. An error that names a VirtualService goes to that
/// one; an error the agent cannot tie to one service (a sysctl, a tunnel
/// device, reading the kernel, the ledger) goes to every entry, since any of
/// them may depend on it.
pub fn lvsnode_services(
    roles: &BTreeMap<String, NodeRole>,
    report: &SyncReport,
) -> Vec<lvs_api::ServiceReport> {
    let node_errors: Vec<&str> = report
        .errors
        .iter()
        .filter(|e| e.owner.is_none())
        .map(|e| e.message.as_str())
        .collect();
    let mut by_owner: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for e in &report.errors {
        if let Some(owner) = e.owner.as_deref() {
            by_owner.entry(owner).or_default().push(e.message.as_str());
        }
    }
    roles
        .iter()
        .map(|(name, role)| {
            let mut errors = by_owner.remove(name.as_str()).unwrap_or_default();
            errors.extend(node_errors.iter().copied());
            errors.dedup();
            lvs_api::ServiceReport {
                name: name.clone(),
                generation: role.generation,
                roles: role.roles.iter().map(|r| r.to_string()).collect(),
                error: truncate(&errors.join("; "), MAX_REPORT_ERROR),
            }
        })
        .collect()
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub(3);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvs_api::manifest::parse;

    const OBJECTS: &str = r#"
apiVersion: v1
kind: Node
metadata: {name: d1, labels: {lvs: director}}
status: {addresses: [{type: InternalIP, address: 10.0.0.1}]}
---
apiVersion: v1
kind: Node
metadata: {name: rs1}
status: {addresses: [{type: InternalIP, address: 10.0.0.11}]}
---
apiVersion: v1
kind: Node
metadata: {name: rs2}
status: {addresses: [{type: InternalIP, address: 10.0.0.12}]}
---
apiVersion: v1
kind: Node
metadata: {name: idle}
status: {addresses: [{type: InternalIP, address: 10.0.0.99}]}
---
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: VirtualService
metadata: {name: dr, namespace: default, generation: 4}
spec:
  address: 192.0.2.20
  port: 80
  forwarding: DR
  directors: {nodeSelector: {matchLabels: {lvs: director}}}
  realServerSelector: {matchLabels: {app: dr}}
---
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: VirtualService
metadata: {name: tun, namespace: default, generation: 7}
spec:
  address: 192.0.2.30
  port: 80
  forwarding: TUN
  directors: {nodeSelector: {matchLabels: {lvs: director}}}
  realServerSelector: {matchLabels: {app: tun}}
---
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: VirtualService
metadata: {name: nat, namespace: default, generation: 2}
spec:
  address: 192.0.2.10
  port: 8080
  forwarding: NAT
  directors: {nodeSelector: {matchLabels: {lvs: director}}}
  realServerSelector: {matchLabels: {app: nat}}
---
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: VirtualService
metadata: {name: dr-dup, namespace: default, generation: 1}
spec:
  address: 192.0.2.20
  port: 80
  forwarding: DR
  directors: {nodeSelector: {matchLabels: {lvs: director}}}
  realServerSelector: {matchLabels: {app: dr}}
---
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: RealServer
metadata: {name: dr-1, namespace: default, labels: {app: dr}}
spec: {nodeName: rs1}
---
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: RealServer
metadata: {name: tun-1, namespace: default, labels: {app: tun}}
spec: {nodeName: rs1}
---
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: RealServer
metadata: {name: tun-2, namespace: default, labels: {app: tun}}
spec: {nodeName: rs2}
---
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: RealServer
metadata: {name: nat-1, namespace: default, labels: {app: nat}}
spec: {nodeName: rs2, port: 80}
"#;

    fn analysis() -> lvs_planner::Analysis {
        let mut m = lvs_api::manifest::ManifestSet::default();
        m.extend(parse(OBJECTS).unwrap());
        lvs_planner::analyze(&m.virtual_services, &m.real_servers, &m.nodes)
    }

    fn role(generation: i64, roles: &[&'static str]) -> NodeRole {
        NodeRole {
            generation: Some(generation),
            roles: roles.to_vec(),
        }
    }

    #[test]
    fn roles_follow_the_verdicts_and_match_the_involved_nodes() {
        let a = analysis();
        let d1 = node_roles("d1", &a);
        assert_eq!(
            d1,
            [
                ("default/dr".to_string(), role(4, &[roles::DIRECTOR])),
                ("default/nat".to_string(), role(2, &[roles::DIRECTOR])),
                ("default/tun".to_string(), role(7, &[roles::DIRECTOR])),
            ]
            .into_iter()
            .collect()
        );
        let rs1 = node_roles("rs1", &a);
        assert_eq!(
            rs1,
            [
                ("default/dr".to_string(), role(4, &[roles::DR_REALSERVER])),
                ("default/tun".to_string(), role(7, &[roles::TUN_REALSERVER])),
            ]
            .into_iter()
            .collect()
        );
        // A NAT realserver's node has nothing to do: not involved.
        let rs2 = node_roles("rs2", &a);
        assert_eq!(rs2.keys().collect::<Vec<_>>(), ["default/tun"]);
        assert!(node_roles("idle", &a).is_empty());
        // Exactly the nodes the operator waits for.
        for v in a.accepted() {
            for n in ["d1", "rs1", "rs2", "idle"] {
                assert_eq!(
                    v.involved_nodes().iter().any(|x| x == n),
                    node_roles(n, &a).contains_key(&v.name),
                    "{} on {n}",
                    v.name
                );
            }
        }
        assert!(
            !d1.contains_key("default/dr-dup"),
            "a service in conflict is not programmed anywhere"
        );
    }

    #[test]
    fn errors_go_to_their_service_and_node_errors_to_all() {
        let a = analysis();
        let roles = node_roles("d1", &a);
        let clean = lvsnode_services(&roles, &SyncReport::default());
        assert_eq!(clean.len(), 3);
        assert!(clean.iter().all(|s| s.error.is_empty()), "{clean:?}");
        assert_eq!(clean[0].name, "default/dr");
        assert_eq!(clean[0].generation, Some(4));
        assert_eq!(clean[0].roles, ["director"]);

        let mut report = SyncReport::default();
        report.errors.push(SyncError::new(
            ErrorKind::ForeignService,
            Some("default/nat".into()),
            "TCP 192.0.2.10:8080 exists and was not created by the agent",
        ));
        let s = lvsnode_services(&roles, &report);
        let by: BTreeMap<_, _> = s.iter().map(|s| (s.name.as_str(), s)).collect();
        assert!(by["default/nat"].error.contains("not created by the agent"));
        assert!(by["default/dr"].error.is_empty());
        assert!(by["default/tun"].error.is_empty());

        report.errors.push(SyncError::new(
            ErrorKind::Kernel,
            None,
            "sysctl net/ipv4/ip_forward: permission denied",
        ));
        let s = lvsnode_services(&roles, &report);
        assert!(s.iter().all(|s| s.error.contains("ip_forward")), "{s:?}");
        let nat = s.iter().find(|s| s.name == "default/nat").unwrap();
        assert!(
            nat.error.contains("not created by the agent") && nat.error.contains("; "),
            "{}",
            nat.error
        );
    }

    #[test]
    fn long_errors_are_cut_on_a_char_boundary() {
        let roles: BTreeMap<String, NodeRole> =
            [("a/b".to_string(), role(1, &[roles::DIRECTOR]))].into();
        let mut report = SyncReport::default();
        report
            .errors
            .push(SyncError::new(ErrorKind::Kernel, None, "é".repeat(2000)));
        let s = lvsnode_services(&roles, &report);
        assert!(s[0].error.len() <= MAX_REPORT_ERROR, "{}", s[0].error.len());
        assert!(s[0].error.ends_with("..."));
    }
}
