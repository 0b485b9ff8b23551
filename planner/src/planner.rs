//! From cluster-wide verdicts to one node's plan.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use lvs_api::{ForwardingMethod, NodeInfo, Object, RealServerSpec, TunnelType, VirtualServiceSpec};

use crate::analyze::{Analysis, ServiceState, Verdict, analyze};
use crate::plan::{
    NodePlan, PlannedPersistence, PlannedService, PlannedTunnelEndpoint, PlannedVip, ServiceKey,
    Sysctl,
};

/// The plan of `node` for these objects.
pub fn plan(
    node: &str,
    vss: &[Object<VirtualServiceSpec>],
    rss: &[Object<RealServerSpec>],
    nodes: &[NodeInfo],
) -> NodePlan {
    let analysis = analyze(vss, rss, nodes);
    plan_from_analysis(node, &analysis, vss)
}

/// The fallback tunnel device that receives a type/family's packets.
fn tunnel_device(type_: TunnelType, ipv6: bool) -> &'static str {
    match (type_, ipv6) {
        // GUE is decapsulated by fou and handed to the ipip fallback device.
        (TunnelType::Ipip | TunnelType::Gue, false) => "tunl0",
        (TunnelType::Ipip | TunnelType::Gue, true) => "ip6tnl0",
        (TunnelType::Gre, false) => "gre0",
        (TunnelType::Gre, true) => "ip6gre0",
    }
}

/// The plan of `node`, from an analysis already made (the operator and the
/// agent's Kubernetes mode share one analysis across nodes).
///
/// Sysctl choices:
/// - directors: `net.ipv4.vs.expire_nodest_conn=1`, so connections to a
///   removed destination are dropped at once instead of stalling;
/// - NAT directors: `ip_forward` (IPv4) or `conf.all.forwarding` (IPv6), and
///   `net.ipv4.vs.conntrack=1` so netfilter (SNAT, firewall) sees IPVS
///   connections; `conn_reuse_mode` keeps the kernel default (1);
/// - persistence: `net.ipv4.vs.expire_quiescent_template=1`, so a weight-0
///   realserver stops receiving clients bound to it by persistence;
/// - DR realservers: `arp_ignore=1` and `arp_announce=2` on `all` (the kernel
///   takes the maximum of `all` and the interface), so only the director
///   answers ARP for the VIP;
/// - TUN realservers: `rp_filter=2` (loose) on `all` and on the tunnel
///   device, because the decapsulated packet's source (the client) is not
///   routed through the tunnel.
pub fn plan_from_analysis(
    node: &str,
    analysis: &Analysis,
    vss: &[Object<VirtualServiceSpec>],
) -> NodePlan {
    let mut services = Vec::new();
    let mut vips = BTreeSet::new();
    let mut loopback = BTreeSet::new();
    let mut tunnels: BTreeMap<(String, TunnelType, bool, u16), BTreeSet<IpAddr>> = BTreeMap::new();
    let mut sysctls = BTreeSet::new();
    let specs: HashMap<String, &VirtualServiceSpec> =
        vss.iter().map(|o| (o.meta.key(), &o.spec)).collect();

    for v in analysis
        .verdicts
        .iter()
        .filter(|v| v.state == ServiceState::Accepted)
    {
        let (Some(key), Some(spec)) = (v.key, specs.get(&v.name)) else {
            continue;
        };
        let director = v.directors.iter().any(|d| d == node);
        if director {
            services.push(director_service(v, key, spec));
            if let ServiceKey::Tuple { addr, .. } = key {
                vips.insert(PlannedVip {
                    addr,
                    interface: spec.directors.interface.clone(),
                });
            }
            sysctls.insert(Sysctl::new("net/ipv4/vs/expire_nodest_conn", 1));
            if v.destinations
                .iter()
                .any(|d| d.method == ForwardingMethod::Nat)
            {
                if key.is_ipv6() {
                    sysctls.insert(Sysctl::new("net/ipv6/conf/all/forwarding", 1));
                } else {
                    sysctls.insert(Sysctl::new("net/ipv4/ip_forward", 1));
                }
                sysctls.insert(Sysctl::new("net/ipv4/vs/conntrack", 1));
            }
            if spec.persistence.is_some() {
                sysctls.insert(Sysctl::new("net/ipv4/vs/expire_quiescent_template", 1));
            }
            continue;
        }
        let ServiceKey::Tuple { addr: vip, .. } = key else {
            continue;
        };
        for rs in v
            .real_servers
            .iter()
            .filter(|r| r.ready() && r.node.as_deref() == Some(node))
        {
            let Some(dest) = v.destinations.iter().find(|d| d.owner == rs.name) else {
                continue;
            };
            match dest.method {
                ForwardingMethod::Dr => {
                    loopback.insert(vip);
                    if vip.is_ipv4() {
                        sysctls.insert(Sysctl::new("net/ipv4/conf/all/arp_ignore", 1));
                        sysctls.insert(Sysctl::new("net/ipv4/conf/all/arp_announce", 2));
                    }
                }
                ForwardingMethod::Tun => {
                    let t = dest.tunnel.unwrap_or(crate::PlannedTunnel {
                        type_: TunnelType::Ipip,
                        port: 0,
                        checksum: false,
                        remote_checksum: false,
                    });
                    let device = tunnel_device(t.type_, vip.is_ipv6());
                    tunnels
                        .entry((device.to_string(), t.type_, vip.is_ipv6(), t.port))
                        .or_default()
                        .insert(vip);
                    if vip.is_ipv4() {
                        sysctls.insert(Sysctl::new("net/ipv4/conf/all/rp_filter", 2));
                        sysctls.insert(Sysctl::new(format!("net/ipv4/conf/{device}/rp_filter"), 2));
                    }
                }
                ForwardingMethod::Nat => {}
            }
        }
    }
    services.sort();
    NodePlan {
        node: node.to_string(),
        services,
        vips: vips.into_iter().collect(),
        loopback_vips: loopback.into_iter().collect(),
        tunnels: tunnels
            .into_iter()
            .map(
                |((device, type_, ipv6, port), vips)| PlannedTunnelEndpoint {
                    device,
                    type_,
                    ipv6,
                    port,
                    vips: vips.into_iter().collect(),
                },
            )
            .collect(),
        sysctls: sysctls.into_iter().collect(),
    }
}

fn director_service(v: &Verdict, key: ServiceKey, spec: &VirtualServiceSpec) -> PlannedService {
    let mut flags: Vec<_> = lvs_api::validate::flags_for(spec).collect();
    flags.sort();
    flags.dedup();
    PlannedService {
        key,
        scheduler: spec.scheduler,
        flags,
        persistence: spec.persistence.as_ref().map(|p| PlannedPersistence {
            timeout_seconds: u32::try_from(p.timeout_seconds).unwrap_or(u32::MAX),
            prefix_length: p
                .prefix_length
                .and_then(|l| u8::try_from(l).ok())
                .unwrap_or(if key.is_ipv6() { 128 } else { 32 }),
        }),
        destinations: v.destinations.clone(),
        owner: v.name.clone(),
        generation: v.generation,
    }
}
