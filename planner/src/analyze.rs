//! Cluster-wide decisions: validity, conflicts, directors, realservers.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use lvs_api::{
    ForwardingMethod, NodeInfo, Object, RealServerSpec, RealServerState, Tunnel, TunnelType,
    VirtualServiceSpec, validate_pair,
};

use crate::plan::{PlannedDestination, PlannedTunnel, ServiceKey};
use crate::pools::{AddressPolicy, Pool};

/// What happens to a VirtualService.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceState {
    /// Valid and the owner of its key: it is programmed.
    Accepted,
    /// The spec breaks a rule; nothing is programmed.
    Invalid(String),
    /// An older VirtualService has the same key; nothing is programmed.
    Conflict { winner: String },
    /// The address pools refuse its VIP or its directors (see
    /// [`crate::pools`]); nothing is programmed. `reason` is CamelCase.
    NotAllowed { reason: String, message: String },
}

/// What happens to one selected RealServer of a VirtualService.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealServerVerdict {
    /// namespace/name (shared with the destination planned from it).
    pub name: Arc<str>,
    /// The resolved address, if any.
    pub address: Option<IpAddr>,
    /// The node doing the realserver-side setup (DR/TUN with nodeName).
    pub node: Option<String>,
    /// `None` when the realserver becomes a destination; otherwise why not.
    pub problem: Option<String>,
}

impl RealServerVerdict {
    pub fn ready(&self) -> bool {
        self.problem.is_none()
    }
}

/// The decision for one VirtualService.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// namespace/name.
    pub name: String,
    pub generation: Option<i64>,
    pub state: ServiceState,
    /// The kernel key, when the spec is valid.
    pub key: Option<ServiceKey>,
    /// Director nodes, sorted.
    pub directors: Vec<String>,
    /// Every RealServer the selector picks, sorted by name.
    pub real_servers: Vec<RealServerVerdict>,
    /// The destinations, sorted by (addr, port); empty unless accepted.
    pub destinations: Vec<PlannedDestination>,
}

impl Verdict {
    pub fn selected(&self) -> u32 {
        self.real_servers.len() as u32
    }
    pub fn ready(&self) -> u32 {
        self.real_servers.iter().filter(|r| r.ready()).count() as u32
    }
    /// Nodes that must program something for this service: directors and
    /// the realserver nodes of DR/TUN destinations. Sorted, unique.
    pub fn involved_nodes(&self) -> Vec<String> {
        if self.state != ServiceState::Accepted {
            return Vec::new();
        }
        let mut nodes = self.directors.clone();
        nodes.extend(
            self.real_servers
                .iter()
                .filter(|r| r.ready())
                .filter_map(|r| r.node.clone()),
        );
        nodes.sort();
        nodes.dedup();
        nodes
    }
}

/// Every VirtualService's verdict, sorted by namespace/name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Analysis {
    pub verdicts: Vec<Verdict>,
}

impl Analysis {
    pub fn get(&self, name: &str) -> Option<&Verdict> {
        // Sorted by name, each name once (see `analyze`).
        self.verdicts
            .binary_search_by(|v| v.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.verdicts[i])
    }
    pub fn accepted(&self) -> impl Iterator<Item = &Verdict> {
        self.verdicts
            .iter()
            .filter(|v| v.state == ServiceState::Accepted)
    }
}

/// The kernel key of a spec: its address (normalised, so two spellings of
/// one IPv6 address give one key), port and protocol (TCP when unset), or
/// its fwmark and family. `None` when the spec has no usable key.
pub fn service_key(spec: &VirtualServiceSpec) -> Option<ServiceKey> {
    match (&spec.address, spec.fwmark) {
        (Some(a), None) => Some(ServiceKey::Tuple {
            addr: a.parse().ok()?,
            protocol: spec.protocol_or_default(),
            port: spec.port_u16()?,
        }),
        (None, Some(m)) => Some(ServiceKey::Fwmark {
            mark: u32::try_from(m).ok()?,
            ipv6: spec.is_ipv6(),
        }),
        _ => None,
    }
}

/// Older first: creationTimestamp (absent sorts last), then namespace/name.
pub(crate) fn age_order(
    a: &Object<VirtualServiceSpec>,
    b: &Object<VirtualServiceSpec>,
) -> Ordering {
    let ts = |o: &Object<VirtualServiceSpec>| {
        (
            o.meta.creation_timestamp.is_none(),
            o.meta.creation_timestamp.clone(),
        )
    };
    ts(a)
        .cmp(&ts(b))
        .then_with(|| a.meta.key().cmp(&b.meta.key()))
}

/// The encapsulation of a TUN destination: its RealServer's tunnel, else the
/// service's, else ipip.
pub(crate) fn tunnel_of(tunnel: Option<&Tunnel>) -> PlannedTunnel {
    let t = tunnel.cloned().unwrap_or_default();
    let port = if t.type_ == TunnelType::Gue {
        t.port.and_then(|p| u16::try_from(p).ok()).unwrap_or(0)
    } else {
        0
    };
    let csum = t.checksum.unwrap_or_default();
    PlannedTunnel {
        type_: t.type_,
        port,
        checksum: csum.enabled,
        remote_checksum: csum.remote,
    }
}

/// What a RealServer's checks of its own give, the same for every
/// VirtualService that selects it: done once per RealServer, not once per
/// selecting service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RsChecks {
    /// Why the spec is invalid (its validation's message).
    problem: Option<String>,
    /// `spec.address`, parsed.
    address: Option<IpAddr>,
}

impl RsChecks {
    pub(crate) fn of(rs: &RealServerSpec) -> Self {
        RsChecks {
            problem: rs.validate().err().map(|e| e.to_string()),
            address: rs.address.as_deref().and_then(|a| a.parse().ok()),
        }
    }
}

/// A RealServer a selector picked: its namespace/name (shared by what is
/// planned from it), the object, and its checks.
pub(crate) type Selected<'r> = (Arc<str>, &'r Object<RealServerSpec>, &'r RsChecks);

/// `rs` with its namespace/name.
fn resolve(
    vs: &Object<VirtualServiceSpec>,
    (name, rs, checks): Selected<'_>,
    nodes: &impl Nodes,
    pool: Option<&Pool>,
) -> (RealServerVerdict, Option<PlannedDestination>) {
    let mut verdict = RealServerVerdict {
        name: name.clone(),
        address: None,
        node: None,
        problem: None,
    };
    if let Some(p) = &checks.problem {
        verdict.problem = Some(p.clone());
        return (verdict, None);
    }
    let method = rs.spec.forwarding.unwrap_or(vs.spec.forwarding);
    let ipv6 = vs.spec.is_ipv6();
    let address = match (&rs.spec.address, &rs.spec.node_name) {
        (Some(_), _) => checks.address,
        (None, Some(n)) => match nodes.node(n.as_str()) {
            None => {
                verdict.problem = Some(format!("spec.nodeName: node {n:?} not found"));
                return (verdict, None);
            }
            Some(node) => match node.internal_ip(ipv6) {
                Some(ip) => {
                    if method != ForwardingMethod::Nat {
                        if let Some(p) = pool.filter(|p| !p.real_server_node_allowed(&node.labels))
                        {
                            verdict.problem = Some(format!(
                                "spec.nodeName: node {n:?} is not a realserver node of LvsAddressPool {} (its realServerNodeSelector), so it may not be a {method:?} realserver of this VIP",
                                p.name
                            ));
                            return (verdict, None);
                        }
                        verdict.node = Some(n.clone());
                    }
                    Some(ip)
                }
                None => {
                    let fam = if ipv6 { "IPv6" } else { "IPv4" };
                    verdict.problem =
                        Some(format!("spec.nodeName: node {n:?} has no {fam} InternalIP"));
                    return (verdict, None);
                }
            },
        },
        (None, None) => None,
    };
    verdict.address = address;
    if let Err(e) = validate_pair(&vs.spec, &rs.spec, address) {
        verdict.problem = Some(e.to_string());
        verdict.node = None;
        return (verdict, None);
    }
    let Some(addr) = address else {
        verdict.problem = Some("spec: no address".into());
        return (verdict, None);
    };
    let port = match (rs.spec.port, vs.spec.port) {
        (Some(p), _) | (None, Some(p)) => u16::try_from(p).unwrap_or(0),
        (None, None) => 0,
    };
    let state = rs.spec.state.unwrap_or_default();
    let dest = PlannedDestination {
        addr,
        port,
        method,
        weight: if state == RealServerState::Inactive {
            0
        } else {
            u32::try_from(rs.spec.weight).unwrap_or(0)
        },
        upper_threshold: rs
            .spec
            .upper_threshold
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(0),
        lower_threshold: rs
            .spec
            .lower_threshold
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(0),
        tunnel: (method == ForwardingMethod::Tun)
            .then(|| tunnel_of(rs.spec.tunnel.as_ref().or(vs.spec.tunnel.as_ref()))),
        owner: name,
        node: verdict.node.clone(),
        state,
    };
    (verdict, Some(dest))
}

/// Node lookups the verdicts need: by name (nodeName realservers) and all
/// of them in name order (director selection).
pub(crate) trait Nodes {
    fn node(&self, name: &str) -> Option<&NodeInfo>;
    fn sorted(&self) -> impl Iterator<Item = &NodeInfo>;
}

impl Nodes for BTreeMap<&str, &NodeInfo> {
    fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.get(name).copied()
    }
    fn sorted(&self) -> impl Iterator<Item = &NodeInfo> {
        self.values().copied()
    }
}

impl Nodes for BTreeMap<String, NodeInfo> {
    fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.get(name)
    }
    fn sorted(&self) -> impl Iterator<Item = &NodeInfo> {
        self.values()
    }
}

/// The state of a VirtualService before realservers are looked at:
/// validity, what the address pools say, its key, and whether it owns that
/// key. `winner` answers "who owns this key", given that the spec is valid
/// and allowed. Also the pool its VIP lies in (none without a policy or
/// for fwmark services).
pub(crate) fn service_state<'p>(
    vs: &Object<VirtualServiceSpec>,
    name: &str,
    policy: Option<&'p AddressPolicy>,
    winner: impl FnOnce(ServiceKey) -> Option<String>,
) -> (ServiceState, Option<ServiceKey>, Option<&'p Pool>) {
    let key = service_key(&vs.spec);
    let mut pool = None;
    let state = match (vs.spec.validate(), key) {
        (Err(e), _) => ServiceState::Invalid(e.to_string()),
        (Ok(()), None) => ServiceState::Invalid("spec: no usable address/port or fwmark".into()),
        (Ok(()), Some(k)) => match policy.map(|p| p.check(vs)) {
            Some(Err(e)) => ServiceState::NotAllowed {
                reason: e.reason().to_string(),
                message: e.message(if vs.spec.address.is_some() {
                    "spec.address"
                } else {
                    "spec.fwmarkMatch.addresses"
                }),
            },
            checked => {
                pool = checked.and_then(Result::ok).flatten();
                match winner(k) {
                    Some(w) if w != name => ServiceState::Conflict { winner: w },
                    _ => ServiceState::Accepted,
                }
            }
        },
    };
    (state, key, pool)
}

/// Whether the spec is valid, has a kernel key and is allowed by the
/// pools: the services that take part in conflict resolution.
pub(crate) fn contending_key(
    vs: &Object<VirtualServiceSpec>,
    policy: Option<&AddressPolicy>,
) -> Option<ServiceKey> {
    service_key(&vs.spec)
        .filter(|_| vs.spec.validate().is_ok())
        .filter(|_| policy.is_none_or(|p| p.check(vs).is_ok()))
}

/// The verdict of one VirtualService, given its state and the RealServers
/// its selector picks (same namespace, matching, sorted by namespace/name).
pub(crate) fn verdict_for<'r>(
    vs: &Object<VirtualServiceSpec>,
    name: String,
    (state, key, pool): (ServiceState, Option<ServiceKey>, Option<&Pool>),
    selected: impl IntoIterator<Item = Selected<'r>>,
    nodes: &impl Nodes,
) -> Verdict {
    let mut real_servers = Vec::new();
    let mut destinations: Vec<PlannedDestination> = Vec::new();
    let mut seen: BTreeMap<(IpAddr, u16), usize> = BTreeMap::new();
    for picked in selected {
        let (mut verdict, dest) = resolve(vs, picked, nodes, pool);
        if let Some(d) = dest {
            if let Some(&first) = seen.get(&(d.addr, d.port)) {
                verdict.problem = Some(format!(
                    "spec: {}:{} is already a destination of this service through RealServer {}",
                    d.addr, d.port, destinations[first].owner
                ));
                verdict.node = None;
            } else {
                seen.insert((d.addr, d.port), destinations.len());
                destinations.push(d);
            }
        }
        real_servers.push(verdict);
    }
    let directors: Vec<String> = nodes
        .sorted()
        .filter(|n| vs.spec.directors.node_selector.matches(&n.labels))
        .filter(|n| pool.is_none_or(|p| p.director_allowed(&n.labels)))
        .map(|n| n.name.clone())
        .collect();
    if state == ServiceState::Accepted {
        destinations.sort_by_key(|a| (a.addr, a.port));
    } else {
        destinations.clear();
        for r in &mut real_servers {
            r.node = None;
        }
    }
    Verdict {
        name,
        generation: vs.meta.generation,
        key: if matches!(
            state,
            ServiceState::Invalid(_) | ServiceState::NotAllowed { .. }
        ) {
            None
        } else {
            key
        },
        state,
        directors,
        real_servers,
        destinations,
    }
}

/// The label pair of a selector with the fewest candidates, for index
/// lookups: every object the selector matches carries all of its
/// `matchLabels`, so any one of them narrows the search.
pub(crate) fn narrowest_label(
    selector: &lvs_api::LabelSelector,
    count: impl Fn(&str, &str) -> usize,
) -> Option<(&str, &str)> {
    selector
        .match_labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .min_by_key(|(k, v)| count(k, v))
}

/// RealServers by namespace and by label, so a selector looks at its
/// candidates instead of every RealServer.
struct RsIndex<'a> {
    /// Sorted by namespace/name, duplicates removed (the first one stays);
    /// each with its name and checks.
    sorted: Vec<(Arc<str>, &'a Object<RealServerSpec>, RsChecks)>,
    /// Namespace -> positions in `sorted` (ascending).
    by_ns: BTreeMap<&'a str, Vec<usize>>,
    /// (namespace, key, value) -> positions in `sorted` (ascending).
    by_label: std::collections::HashMap<(&'a str, &'a str, &'a str), Vec<usize>>,
}

impl<'a> RsIndex<'a> {
    fn new(rss: &'a [Object<RealServerSpec>]) -> Self {
        let mut sorted: Vec<(String, &Object<RealServerSpec>)> =
            rss.iter().map(|r| (r.meta.key(), r)).collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        sorted.dedup_by(|b, a| a.0 == b.0);
        let sorted: Vec<(Arc<str>, &Object<RealServerSpec>, RsChecks)> = sorted
            .into_iter()
            .map(|(k, r)| (Arc::from(k), r, RsChecks::of(&r.spec)))
            .collect();
        let mut by_ns: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        let mut by_label: std::collections::HashMap<(&str, &str, &str), Vec<usize>> =
            std::collections::HashMap::new();
        for (i, (_, r, _)) in sorted.iter().enumerate() {
            let ns = r.meta.namespace.as_str();
            by_ns.entry(ns).or_default().push(i);
            for (k, v) in &r.meta.labels {
                by_label
                    .entry((ns, k.as_str(), v.as_str()))
                    .or_default()
                    .push(i);
            }
        }
        RsIndex {
            sorted,
            by_ns,
            by_label,
        }
    }

    /// The RealServers `vs` selects, sorted by namespace/name.
    fn select(&self, vs: &Object<VirtualServiceSpec>) -> Vec<Selected<'_>> {
        let ns = vs.meta.namespace.as_str();
        let sel = vs.spec.selector();
        let sel = sel.as_ref();
        let positions: &[usize] = match narrowest_label(sel, |k, v| {
            self.by_label.get(&(ns, k, v)).map_or(0, Vec::len)
        }) {
            Some((k, v)) => self.by_label.get(&(ns, k, v)).map_or(&[], Vec::as_slice),
            None => self.by_ns.get(ns).map_or(&[], Vec::as_slice),
        };
        positions
            .iter()
            .map(|&i| &self.sorted[i])
            .filter(|(_, r, _)| sel.matches(&r.meta.labels))
            .map(|(name, r, checks)| (name.clone(), *r, checks))
            .collect()
    }
}

/// Decides every VirtualService's fate, without address pools (standalone
/// mode without pool manifests). Conflicts: among valid services with the
/// same key the oldest wins (creationTimestamp, then namespace/name).
pub fn analyze(
    vss: &[Object<VirtualServiceSpec>],
    rss: &[Object<RealServerSpec>],
    nodes: &[NodeInfo],
) -> Analysis {
    analyze_with(vss, rss, nodes, None)
}

/// [`analyze`] under an address policy (`Some`: pools are enforced, and no
/// pool means no VIP). Services the pools refuse take no part in conflicts.
pub fn analyze_with(
    vss: &[Object<VirtualServiceSpec>],
    rss: &[Object<RealServerSpec>],
    nodes: &[NodeInfo],
    policy: Option<&AddressPolicy>,
) -> Analysis {
    let mut by_age: Vec<&Object<VirtualServiceSpec>> = vss.iter().collect();
    by_age.sort_by(|a, b| age_order(a, b));
    let node_map: BTreeMap<&str, &NodeInfo> = nodes.iter().map(|n| (n.name.as_str(), n)).collect();
    let index = RsIndex::new(rss);

    let mut owners: std::collections::HashMap<ServiceKey, String> =
        std::collections::HashMap::new();
    let mut verdicts = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for vs in by_age {
        let name = vs.meta.key();
        if !seen.insert(name.clone()) {
            continue;
        }
        let state = service_state(vs, &name, policy, |k| {
            Some(owners.entry(k).or_insert_with(|| name.clone()).clone())
        });
        verdicts.push(verdict_for(vs, name, state, index.select(vs), &node_map));
    }
    verdicts.sort_by(|a, b| a.name.cmp(&b.name));
    Analysis { verdicts }
}
