//! Realserver readiness gating: a director gives a DR or TUN realserver
//! that is a node (RealServer `nodeName`) weight only once that node's own
//! agent reports the VirtualService set up (VIP on `lo` or on the tunnel
//! device, ARP and rp_filter sysctls in force) for the current generation.
//! Before that, packets sent to it would be dropped or answered from the
//! wrong place. A realserver whose agent reports a problem is taken out the
//! same way (weight 0, state Unready).
//!
//! Only the Kubernetes mode gates: the directors learn the other nodes'
//! reports from their LvsNodes. A standalone agent sees no other node's
//! report and gates nothing.
//!
//! Everything here is pure: the Kubernetes side turns LvsNodes into
//! [`Readiness`], and [`Gate::apply`] changes a plan.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use lvs_api::{DestinationState, ForwardingMethod, RealServerState};
use lvs_planner::{NodePlan, PlannedDestination, ServiceKey};

use crate::report::{DestinationStates, roles};

/// What one node's agent reports about one VirtualService.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceReadiness {
    pub generation: Option<i64>,
    pub roles: Vec<String>,
    pub error: String,
}

/// The part of one node's LvsNode that gating reads. Equal for two reports
/// that differ only in what gating ignores (sync time, counts, destination
/// states), so those updates cause no sync.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(from = "wire::Status")]
pub struct NodeReadiness {
    /// `status.nodeErrors`, joined; empty when there are none.
    pub node_errors: String,
    /// By VirtualService namespace/name.
    pub services: BTreeMap<String, ServiceReadiness>,
}

/// `status` of an LvsNode as the API server sends it, reduced to what
/// gating reads: everything else a report holds (a director's counters,
/// destination states, table hashes for thousands of services) is skipped
/// while parsing, never allocated.
mod wire {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Status {
        #[serde(default)]
        pub node_errors: Vec<String>,
        #[serde(default)]
        pub services: Vec<Service>,
    }

    #[derive(Debug, Deserialize)]
    pub struct Service {
        pub name: String,
        #[serde(default)]
        pub generation: Option<i64>,
        #[serde(default)]
        pub roles: Vec<String>,
        #[serde(default)]
        pub error: String,
    }
}

impl From<wire::Status> for NodeReadiness {
    fn from(s: wire::Status) -> Self {
        NodeReadiness {
            node_errors: s.node_errors.join("; "),
            services: s
                .services
                .into_iter()
                .map(|r| {
                    (
                        r.name,
                        ServiceReadiness {
                            generation: r.generation,
                            roles: r.roles,
                            error: r.error,
                        },
                    )
                })
                .collect(),
        }
    }
}

/// Every node's report, by node name (a node without an LvsNode is absent).
pub type Readiness = BTreeMap<String, NodeReadiness>;

/// The nodes whose reports differ between `old` and `new`.
pub fn changed_nodes(old: &Readiness, new: &Readiness) -> BTreeSet<String> {
    old.keys()
        .chain(new.keys())
        .filter(|n| old.get(*n) != new.get(*n))
        .cloned()
        .collect()
}

/// Why a realserver node is not ready for a service, or `None` when it is.
///
/// Ready: its LvsNode lists the VirtualService at `generation` with the
/// role the forwarding method needs (a fwmark service needs none: the
/// realserver has nothing to set up; a node that directs the service
/// reports the director role), no error, and the node reports no node
/// errors. `confirmed`: the node was ready for this very service key
/// before, so a report still at an older generation (the realserver's agent
/// has not caught up with an edit that kept the address) keeps it in.
pub fn not_ready(
    node: &str,
    report: Option<&NodeReadiness>,
    owner: &str,
    key: &ServiceKey,
    method: ForwardingMethod,
    generation: Option<i64>,
    confirmed: bool,
) -> Option<String> {
    let Some(report) = report else {
        return Some(format!(
            "node {node} has no LvsNode: its agent is not running (or not yet up)"
        ));
    };
    if !report.node_errors.is_empty() {
        return Some(format!("node {node} reports: {}", report.node_errors));
    }
    let Some(s) = report.services.get(owner) else {
        return Some(format!("node {node}'s agent has not set up {owner} yet"));
    };
    if !s.error.is_empty() {
        return Some(format!("node {node} reports for {owner}: {}", s.error));
    }
    if s.generation != generation && !confirmed {
        let text = |g: Option<i64>| g.map_or_else(|| "none".to_string(), |g| g.to_string());
        return Some(format!(
            "node {node} has set up generation {} of {owner}, waiting for {}",
            text(s.generation),
            text(generation)
        ));
    }
    let wanted = match method {
        ForwardingMethod::Dr => roles::DR_REALSERVER,
        ForwardingMethod::Tun => roles::TUN_REALSERVER,
        ForwardingMethod::Nat => return None,
    };
    let fwmark = matches!(key, ServiceKey::Fwmark { .. });
    let has_role = s.roles.iter().any(|r| r == wanted || r == roles::DIRECTOR);
    let nothing_to_set_up = fwmark && s.roles.is_empty();
    if !(has_role || nothing_to_set_up) {
        return Some(format!(
            "node {node} reports {owner} without the {wanted} role (roles: {})",
            if s.roles.is_empty() {
                "none".to_string()
            } else {
                s.roles.join(", ")
            }
        ));
    }
    None
}

/// Whether a destination is gated: a DR or TUN realserver that is another
/// node.
fn gated(d: &PlannedDestination, this_node: &str) -> Option<String> {
    match (&d.node, d.method) {
        (Some(n), ForwardingMethod::Dr | ForwardingMethod::Tun) if n != this_node => {
            Some(n.clone())
        }
        _ => None,
    }
}

/// A destination once found ready: (VirtualService, service key, node).
type Confirmed = (String, ServiceKey, String);

/// The gating step's state: the latest reports, the destinations found
/// ready, and which services have gated destinations on which node (so a
/// changed report re-syncs only those).
#[derive(Debug, Clone, Default)]
pub struct Gate {
    reports: Readiness,
    confirmed: HashSet<Confirmed>,
    by_node: BTreeMap<String, BTreeSet<String>>,
}

impl Gate {
    /// Takes new reports; returns the VirtualServices whose gated
    /// destinations are on a node whose report changed.
    pub fn set_reports(&mut self, new: Readiness) -> BTreeSet<String> {
        let changed = changed_nodes(&self.reports, &new);
        self.reports = new;
        changed
            .iter()
            .filter_map(|n| self.by_node.get(n))
            .flatten()
            .cloned()
            .collect()
    }

    /// Gives weight 0 to each gated destination of `plan` whose node is
    /// not ready, and notes it Unready in `states`. `names`: the
    /// VirtualServices `plan` covers (`None`: all).
    pub fn apply(
        &mut self,
        this_node: &str,
        plan: &mut NodePlan,
        names: Option<&BTreeSet<String>>,
        states: &mut BTreeMap<String, DestinationStates>,
    ) {
        match names {
            None => self.by_node.clear(),
            Some(n) => {
                for set in self.by_node.values_mut() {
                    set.retain(|s| !n.contains(s));
                }
                self.by_node.retain(|_, s| !s.is_empty());
            }
        }
        let mut confirmed_now = HashSet::new();
        for s in &mut plan.services {
            for d in &mut s.destinations {
                let Some(node) = gated(d, this_node) else {
                    continue;
                };
                // Inactive ones have weight 0 already; draining ones keep
                // their state (the drain step put them back at weight 0).
                if d.state != RealServerState::Active {
                    continue;
                }
                self.by_node
                    .entry(node.clone())
                    .or_default()
                    .insert(s.owner.clone());
                let id = (s.owner.clone(), s.key, node.clone());
                let why = not_ready(
                    &node,
                    self.reports.get(&node),
                    &s.owner,
                    &s.key,
                    d.method,
                    s.generation,
                    self.confirmed.contains(&id) || confirmed_now.contains(&id),
                );
                match why {
                    None => {
                        confirmed_now.insert(id);
                    }
                    Some(why) => {
                        d.weight = 0;
                        states.entry(s.owner.clone()).or_default().note(
                            d,
                            DestinationState::Unready,
                            why,
                        );
                    }
                }
            }
        }
        // Kept: confirmations of services this plan does not cover, and
        // those found ready now.
        match names {
            None => self.confirmed = confirmed_now,
            Some(n) => {
                self.confirmed.retain(|(o, _, _)| !n.contains(o));
                self.confirmed.extend(confirmed_now);
            }
        }
    }
}

#[cfg(test)]
mod tests;
