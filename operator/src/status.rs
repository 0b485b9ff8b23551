//! Status computation: pure functions from the planner's verdicts and the
//! agents' LvsNode reports to the VirtualService and RealServer status, and
//! the Events that a change of status deserves.
//!
//! Nothing here does I/O; the reconcilers feed it store contents and write
//! the result only when it differs from what the object already has.
//!
//! Slightly over the usual length: the conditions of both kinds share their
//! helpers, and splitting them would scatter one table of reasons.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use lvs_api::status::types;
use lvs_api::{
    Condition, ConditionUpdate, DirectorDrift, DirectorTraffic, RealServerCounts, RealServerSpec,
    RealServerStatus, ServiceReport, TrafficStatus, VipRole, VirtualServiceSpec,
    VirtualServiceStatus, compute_conditions,
};
use lvs_planner::{Analysis, RealServerVerdict, ServiceState, Verdict};

mod events;
pub use events::*;
mod health;
pub use health::*;

/// Condition reasons, CamelCase as Kubernetes expects.
pub mod reasons {
    pub const READY: &str = "Ready";
    pub const NO_REAL_SERVERS: &str = "NoRealServers";
    pub const NO_READY_REAL_SERVERS: &str = "NoReadyRealServers";
    pub const INVALID: &str = "Invalid";
    pub const VALID: &str = "Valid";
    pub const CONFLICT: &str = "Conflict";
    pub const NO_CONFLICT: &str = "NoConflict";
    pub const PROGRAMMED: &str = "Programmed";
    pub const PENDING: &str = "Pending";
    pub const FAILED: &str = "Failed";
    pub const NOT_ACCEPTED: &str = "NotAccepted";
    pub const NO_DIRECTORS: &str = "NoDirectors";
    pub const ADDRESS_ALLOWED: &str = "AddressAllowed";
    pub const NOT_SELECTED: &str = "NotSelected";
    pub const UNUSABLE: &str = "Unusable";
    /// Event: a director became the active one for a VIP.
    pub const DIRECTOR_TAKEOVER: &str = "DirectorTakeover";
    /// Event: a director stopped being the active one for a VIP.
    pub const DIRECTOR_RELEASED: &str = "DirectorReleased";
    /// Event: a director's resync repaired kernel objects of the service
    /// that someone else had changed.
    pub const DRIFT_REPAIRED: &str = "DriftRepaired";
}

/// The role an agent reports for a VIP it holds and announces.
pub const ROLE_ACTIVE: &str = "Active";

/// The LvsNode reports, by node name: what each agent says it programmed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeReports(BTreeMap<String, NodeReport>);

/// One node's LvsNode report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct NodeReport {
    services: HashMap<String, ServiceReport>,
    /// `status.nodeErrors`, joined: while not empty, every VirtualService
    /// the node has a role in has failed there.
    node_errors: String,
    /// `status.vips`: the node's director HA role by VIP (the address in
    /// its canonical text form, see [`canonical_address`]).
    vips: HashMap<String, String>,
}

/// An address in one text form (`2001:db8::1`, never `2001:DB8:0::1`), so
/// that the spec's spelling and the agent's report compare equal; text that
/// is no address stays as it is.
fn canonical_address(a: &str) -> String {
    a.parse::<IpAddr>()
        .map_or_else(|_| a.to_string(), |ip| ip.to_string())
}

impl NodeReports {
    /// Collects `(node, services)` pairs; a later duplicate node replaces an
    /// earlier one. Each node's reports are indexed by service name (a
    /// director reports every service it programs, and each VirtualService
    /// looks up its own); the first report of a name counts.
    pub fn new(reports: impl IntoIterator<Item = (String, Vec<ServiceReport>)>) -> Self {
        Self::with_node_errors(reports.into_iter().map(|(n, s)| (n, s, Vec::new())))
    }

    /// As [`new`](Self::new), with each node's `status.nodeErrors`.
    pub fn with_node_errors(
        reports: impl IntoIterator<Item = (String, Vec<ServiceReport>, Vec<String>)>,
    ) -> Self {
        NodeReports(
            reports
                .into_iter()
                .map(|(node, services, node_errors)| {
                    let mut by_name = HashMap::with_capacity(services.len());
                    for r in services {
                        by_name.entry(r.name.clone()).or_insert(r);
                    }
                    (
                        node,
                        NodeReport {
                            services: by_name,
                            node_errors: node_errors.join("; "),
                            vips: HashMap::new(),
                        },
                    )
                })
                .collect(),
        )
    }

    /// Adds each node's `status.vips` (its director HA role per VIP); a node
    /// not collected before is added with no services. The first entry of an
    /// address counts.
    pub fn with_vip_roles(
        mut self,
        roles: impl IntoIterator<Item = (String, Vec<VipRole>)>,
    ) -> Self {
        for (node, vips) in roles {
            if vips.is_empty() {
                continue;
            }
            let report = self.0.entry(node).or_default();
            for v in vips {
                report
                    .vips
                    .entry(canonical_address(&v.address))
                    .or_insert_with(|| v.role.to_string());
            }
        }
        self
    }

    /// The node's director HA role for the VIP `address`, as it reports it.
    pub fn vip_role(&self, node: &str, address: &str) -> Option<&str> {
        self.0
            .get(node)?
            .vips
            .get(&canonical_address(address))
            .map(String::as_str)
    }

    /// Whether the node has an LvsNode at all.
    pub fn has_node(&self, node: &str) -> bool {
        self.0.contains_key(node)
    }

    /// The node's report about one VirtualService (`namespace/name`).
    pub fn get(&self, node: &str, service: &str) -> Option<&ServiceReport> {
        self.0.get(node)?.services.get(service)
    }

    /// The node's errors that fail every VirtualService there, joined; `None`
    /// when it reports none.
    pub fn node_errors(&self, node: &str) -> Option<&str> {
        self.0
            .get(node)
            .map(|r| r.node_errors.as_str())
            .filter(|e| !e.is_empty())
    }
}

/// Where one involved node stands with one VirtualService.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeState {
    /// The node reports the current generation, without error.
    Programmed,
    /// The node has not (yet) reported the current generation.
    Pending(PendingWhy),
    /// The node reports an error for the current generation.
    Failed(String),
}

/// Why a node is still pending, for the condition message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PendingWhy {
    /// The node has no LvsNode object: its agent is not running or not yet up.
    NoAgent,
    /// The LvsNode does not list the VirtualService.
    NotReported,
    /// The LvsNode lists an older (or no) generation.
    Generation(Option<i64>),
}

impl NodeState {
    /// The short word shown in `status.nodes`.
    pub fn short(&self) -> &'static str {
        match self {
            NodeState::Programmed => "Programmed",
            NodeState::Pending(_) => "Pending",
            NodeState::Failed(_) => "Failed",
        }
    }
}

/// The state of every node involved in the verdict (directors and DR/TUN
/// realserver nodes), judged against `generation`.
pub fn node_states(
    verdict: &Verdict,
    generation: Option<i64>,
    reports: &NodeReports,
) -> BTreeMap<String, NodeState> {
    verdict
        .involved_nodes()
        .into_iter()
        .map(|node| {
            let report = reports.get(&node, &verdict.name);
            let state = match (report, reports.node_errors(&node)) {
                (None, _) if !reports.has_node(&node) => NodeState::Pending(PendingWhy::NoAgent),
                // A node-level error fails every service on the node, at
                // whatever generation (the agent lists only the services
                // with errors of their own then).
                (Some(r), Some(ne)) if !r.error.is_empty() => {
                    NodeState::Failed(format!("{}; {ne}", r.error))
                }
                (_, Some(ne)) => NodeState::Failed(ne.to_string()),
                (report, None) => match report {
                    None => NodeState::Pending(PendingWhy::NotReported),
                    Some(r) if r.generation != generation => {
                        NodeState::Pending(PendingWhy::Generation(r.generation))
                    }
                    Some(r) if !r.error.is_empty() => NodeState::Failed(r.error.clone()),
                    Some(_) => NodeState::Programmed,
                },
            };
            (node, state)
        })
        .collect()
}

fn generation_text(g: Option<i64>) -> String {
    g.map_or_else(|| "unknown".to_string(), |g| g.to_string())
}

fn update(type_: &'static str, status: bool, reason: &str, message: String) -> ConditionUpdate {
    ConditionUpdate {
        type_,
        status,
        reason: reason.to_string(),
        message,
    }
}

fn programmed_update(
    verdict: &Verdict,
    generation: Option<i64>,
    nodes: &BTreeMap<String, NodeState>,
) -> ConditionUpdate {
    let t = types::PROGRAMMED;
    if verdict.state != ServiceState::Accepted {
        return update(
            t,
            false,
            reasons::NOT_ACCEPTED,
            "nothing is programmed while the service is invalid, refused by the address pools or in conflict".into(),
        );
    }
    if verdict.directors.is_empty() {
        return update(
            t,
            false,
            reasons::NO_DIRECTORS,
            "spec.directors.nodeSelector matches no node".into(),
        );
    }
    let failed: Vec<String> = nodes
        .iter()
        .filter_map(|(n, s)| match s {
            NodeState::Failed(e) => Some(format!("{n}: {e}")),
            _ => None,
        })
        .collect();
    let pending: Vec<String> = nodes
        .iter()
        .filter_map(|(n, s)| match s {
            NodeState::Pending(PendingWhy::NoAgent) => Some(format!("{n} (no LvsNode)")),
            NodeState::Pending(PendingWhy::NotReported) => Some(format!("{n} (not reported)")),
            NodeState::Pending(PendingWhy::Generation(g)) => {
                Some(format!("{n} (at generation {})", generation_text(*g)))
            }
            _ => None,
        })
        .collect();
    let gen_text = generation_text(generation);
    if !failed.is_empty() {
        let mut msg = format!("generation {gen_text} failed on {}", failed.join("; "));
        if !pending.is_empty() {
            msg.push_str(&format!("; still pending: {}", pending.join(", ")));
        }
        return update(t, false, reasons::FAILED, msg);
    }
    if !pending.is_empty() {
        return update(
            t,
            false,
            reasons::PENDING,
            format!(
                "waiting for {} to program generation {gen_text}",
                pending.join(", ")
            ),
        );
    }
    update(
        t,
        true,
        reasons::PROGRAMMED,
        format!(
            "generation {gen_text} programmed on {}",
            nodes.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
    )
}

fn problems(verdict: &Verdict) -> Vec<String> {
    verdict
        .real_servers
        .iter()
        .filter_map(|r| r.problem.as_ref().map(|p| format!("{}: {p}", r.name)))
        .collect()
}

fn ready_update(spec: &VirtualServiceSpec, verdict: &Verdict, namespace: &str) -> ConditionUpdate {
    let t = types::READY;
    match &verdict.state {
        ServiceState::Invalid(msg) => update(t, false, reasons::INVALID, msg.clone()),
        ServiceState::NotAllowed { reason, message } => update(t, false, reason, message.clone()),
        ServiceState::Conflict { winner } => update(
            t,
            false,
            reasons::CONFLICT,
            format!("the address is held by {winner}"),
        ),
        ServiceState::Accepted => {
            let (selected, ready) = (verdict.selected(), verdict.ready());
            let problems = problems(verdict);
            if selected == 0 {
                let msg = match &spec.backends {
                    Some(b) => format!(
                        "spec.backends: Service {namespace}/{} has no ready or terminating endpoints on port {} (see status.backends)",
                        b.service.name,
                        match b.service.port_label() {
                            p if p.is_empty() => "(its only port)".to_string(),
                            p => p,
                        }
                    ),
                    None => format!(
                        "spec.realServerSelector selects no RealServer in namespace {namespace}"
                    ),
                };
                update(t, false, reasons::NO_REAL_SERVERS, msg)
            } else if ready == 0 {
                update(
                    t,
                    false,
                    reasons::NO_READY_REAL_SERVERS,
                    format!("0/{selected} realservers ready: {}", problems.join("; ")),
                )
            } else {
                let mut msg = format!("{ready}/{selected} realservers ready");
                if !problems.is_empty() {
                    msg.push_str(&format!("; not ready: {}", problems.join("; ")));
                }
                update(t, true, reasons::READY, msg)
            }
        }
    }
}

/// The conditions of a VirtualService, in a fixed order: Ready, Programmed,
/// Conflict, Invalid, AddressNotAllowed ([`vs_status`] adds Degraded after
/// Programmed).
pub fn vs_condition_updates(
    spec: &VirtualServiceSpec,
    namespace: &str,
    verdict: &Verdict,
    generation: Option<i64>,
    nodes: &BTreeMap<String, NodeState>,
) -> Vec<ConditionUpdate> {
    let conflict = match &verdict.state {
        ServiceState::Conflict { winner } => update(
            types::CONFLICT,
            true,
            reasons::CONFLICT,
            format!(
                "{} is already served by {winner}, which is older; this VirtualService is not programmed until that one is deleted or changed",
                spec.endpoint()
            ),
        ),
        _ => update(types::CONFLICT, false, reasons::NO_CONFLICT, String::new()),
    };
    let invalid = match &verdict.state {
        ServiceState::Invalid(msg) => update(types::INVALID, true, reasons::INVALID, msg.clone()),
        _ => update(types::INVALID, false, reasons::VALID, String::new()),
    };
    let not_allowed = match &verdict.state {
        ServiceState::NotAllowed { reason, message } => {
            update(types::ADDRESS_NOT_ALLOWED, true, reason, message.clone())
        }
        _ => update(
            types::ADDRESS_NOT_ALLOWED,
            false,
            reasons::ADDRESS_ALLOWED,
            String::new(),
        ),
    };
    vec![
        ready_update(spec, verdict, namespace),
        programmed_update(verdict, generation, nodes),
        conflict,
        invalid,
        not_allowed,
    ]
}

/// Each director's reported HA role for the service's VIP (node -> "Active"
/// or "Standby"); directors that report none are left out, and so is every
/// director of a service without an address (fwmark services have no VIP).
pub fn director_roles(
    verdict: &Verdict,
    spec: &VirtualServiceSpec,
    reports: &NodeReports,
) -> BTreeMap<String, String> {
    let Some(vip) = spec.address.as_deref() else {
        return BTreeMap::new();
    };
    verdict
        .directors
        .iter()
        .filter_map(|d| Some((d.clone(), reports.vip_role(d, vip)?.to_string())))
        .collect()
}

/// The director reported active for the VIP. Two can report it at once only
/// for the moment of a handover; the first by name is shown then, and
/// `directorRoles` lists both.
pub fn active_director(roles: &BTreeMap<String, String>) -> Option<String> {
    roles
        .iter()
        .find(|(_, r)| r.as_str() == ROLE_ACTIVE)
        .map(|(n, _)| n.clone())
}

/// The whole status of a VirtualService. Transition times are kept from
/// `old` unless a condition flips, so an unchanged world yields a status
/// equal to `old` and no write.
pub fn vs_status(
    old: Option<&VirtualServiceStatus>,
    spec: &VirtualServiceSpec,
    namespace: &str,
    verdict: &Verdict,
    reports: &NodeReports,
    now: &str,
) -> VirtualServiceStatus {
    let generation = verdict.generation;
    let nodes = node_states(verdict, generation, reports);
    let mut updates = vs_condition_updates(spec, namespace, verdict, generation, &nodes);
    let health = service_health(verdict, reports);
    updates.insert(2, degraded_update(verdict, &health));
    let old_conditions = old.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let (selected, ready) = (verdict.selected(), verdict.ready());
    let endpoint = spec.endpoint();
    let roles = director_roles(verdict, spec, reports);
    VirtualServiceStatus {
        observed_generation: generation,
        conditions: compute_conditions(old_conditions, &updates, now, generation),
        endpoint: (!endpoint.is_empty()).then_some(endpoint),
        directors: verdict.directors.clone(),
        real_servers: Some(RealServerCounts {
            selected,
            ready,
            summary: format!("{ready}/{selected}"),
            healthy: health.worst().map(|(h, _)| h),
            health_summary: health.worst().map(|(h, t)| format!("{h}/{t}")),
            draining: (health.draining > 0).then_some(health.draining),
            draining_connections: (health.draining > 0).then_some(health.draining_connections),
        }),
        nodes: nodes
            .iter()
            .map(|(n, s)| (n.clone(), s.short().to_string()))
            .collect(),
        active_director: active_director(&roles),
        director_roles: roles,
        sorry_server_active: health.sorry_active,
        // Written by the Service controller (its own field manager).
        backends: old.and_then(|s| s.backends.clone()),
        traffic: vs_traffic(verdict, reports),
        drift: vs_drift(verdict, reports),
    }
}

/// The kernel's counters of the VirtualService summed over its directors
/// that report them; `None` while none does.
pub fn vs_traffic(verdict: &Verdict, reports: &NodeReports) -> Option<TrafficStatus> {
    let mut out = TrafficStatus::default();
    for node in &verdict.directors {
        let Some(r) = reports.get(node, &verdict.name) else {
            continue;
        };
        let Some(c) = &r.counters else {
            continue;
        };
        out.total.add(c);
        out.directors.push(DirectorTraffic {
            node: node.clone(),
            time: r.counters_time.clone(),
            table_hash: r.table_hash.clone(),
            active_connections: c.active_connections,
            connections: c.connections,
        });
    }
    out.directors.sort_by(|a, b| a.node.cmp(&b.node));
    (!out.directors.is_empty()).then_some(out)
}

/// The last drift each director of the VirtualService repaired, sorted by
/// node.
pub fn vs_drift(verdict: &Verdict, reports: &NodeReports) -> Vec<DirectorDrift> {
    let mut out: Vec<DirectorDrift> = verdict
        .directors
        .iter()
        .filter_map(|node| {
            let d = reports.get(node, &verdict.name)?.drift.as_ref()?;
            Some(DirectorDrift {
                node: node.clone(),
                time: d.time.clone(),
                count: d.count,
                repaired: d.repaired.clone(),
            })
        })
        .collect();
    out.sort_by(|a, b| a.node.cmp(&b.node));
    out
}

/// The status of one RealServer (`key` = namespace/name), from every verdict
/// that selects it. Ready means it is a usable destination of every
/// VirtualService that selects it.
pub fn rs_status(
    old: Option<&RealServerStatus>,
    key: &str,
    spec: &RealServerSpec,
    generation: Option<i64>,
    analysis: &Analysis,
    now: &str,
) -> RealServerStatus {
    let selecting = analysis.verdicts.iter().flat_map(|v| {
        v.real_servers
            .iter()
            .filter(|r| *r.name == *key)
            .map(move |r| (v, r))
    });
    rs_status_of(old, spec, generation, selecting, now)
}

/// [`rs_status`] from the verdicts that select the RealServer, each with
/// its verdict for it, in verdict order (see [`SelectionIndex`]).
pub fn rs_status_of<'a>(
    old: Option<&RealServerStatus>,
    spec: &RealServerSpec,
    generation: Option<i64>,
    selecting: impl IntoIterator<Item = (&'a Verdict, &'a RealServerVerdict)>,
    now: &str,
) -> RealServerStatus {
    let mut selected_by = Vec::new();
    let mut problems = Vec::new();
    let mut address: Option<IpAddr> = None;
    for (v, r) in selecting {
        selected_by.push(v.name.clone());
        if let Some(p) = &r.problem {
            problems.push(format!("{}: {p}", v.name));
        }
        address = address.or(r.address);
    }
    selected_by.sort();
    selected_by.dedup();
    let address = address.or_else(|| spec.address.as_deref().and_then(|a| a.parse().ok()));

    let invalid = spec.validate().err();
    let invalid_update = match &invalid {
        Some(e) => update(types::INVALID, true, reasons::INVALID, e.to_string()),
        None => update(types::INVALID, false, reasons::VALID, String::new()),
    };
    let ready_update = if let Some(e) = &invalid {
        update(types::READY, false, reasons::INVALID, e.to_string())
    } else if selected_by.is_empty() {
        update(
            types::READY,
            false,
            reasons::NOT_SELECTED,
            "no VirtualService selects this RealServer".into(),
        )
    } else if !problems.is_empty() {
        update(types::READY, false, reasons::UNUSABLE, problems.join("; "))
    } else {
        update(
            types::READY,
            true,
            reasons::READY,
            format!("usable by {}", selected_by.join(", ")),
        )
    };
    let old_conditions = old.map(|s| s.conditions.as_slice()).unwrap_or_default();
    RealServerStatus {
        observed_generation: generation,
        conditions: compute_conditions(
            old_conditions,
            &[ready_update, invalid_update],
            now,
            generation,
        ),
        address: address.map(|a| a.to_string()),
        selected_by,
        health_summary: None,
        health: Vec::new(),
    }
}

/// Which verdicts select each RealServer: the inverse of the analysis's
/// selections, so that a RealServer's status costs its own selections, not
/// a walk over every VirtualService's.
#[derive(Debug, Default)]
pub struct SelectionIndex(HashMap<String, Vec<(usize, usize)>>);

impl SelectionIndex {
    pub fn new(analysis: &Analysis) -> Self {
        let mut by_rs: HashMap<String, Vec<(usize, usize)>> = HashMap::new();
        for (vi, v) in analysis.verdicts.iter().enumerate() {
            for (ri, r) in v.real_servers.iter().enumerate() {
                by_rs.entry(r.name.to_string()).or_default().push((vi, ri));
            }
        }
        SelectionIndex(by_rs)
    }

    /// The verdicts selecting the RealServer `key` (namespace/name) in
    /// `analysis` (the one the index was built from), in verdict order.
    pub fn selecting<'a>(
        &'a self,
        analysis: &'a Analysis,
        key: &str,
    ) -> impl Iterator<Item = (&'a Verdict, &'a RealServerVerdict)> + 'a {
        self.0
            .get(key)
            .into_iter()
            .flatten()
            .filter_map(|&(vi, ri)| {
                let v = analysis.verdicts.get(vi)?;
                Some((v, v.real_servers.get(ri)?))
            })
    }
}

/// Whether a write is needed: the object has no status or a different one.
pub fn needs_write<S: PartialEq>(old: Option<&S>, new: &S) -> bool {
    old != Some(new)
}
