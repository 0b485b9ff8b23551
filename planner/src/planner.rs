//! From cluster-wide verdicts to one node's plan.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use lvs_api::{
    ForwardingMethod, NodeInfo, Object, RealServerSpec, RealServerState, TunnelType,
    VirtualServiceSpec,
};

use crate::analyze::{Analysis, ServiceState, Verdict, analyze};
use crate::plan::{
    NodePlan, PlannedDestination, PlannedHealthCheck, PlannedMark, PlannedPersistence,
    PlannedService, PlannedTunnelEndpoint, PlannedVip, ServiceKey, Sysctl,
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

/// The device that receives a TUN destination's packets at `addr`: the
/// fallback device of the type and family, which accepts packets from any
/// director, or for GRE with a checksum [`gre_checksum_device`].
fn tunnel_device(t: &crate::PlannedTunnel, addr: IpAddr, ipv6: bool) -> String {
    if t.type_ == TunnelType::Gre && t.checksum {
        return gre_checksum_device(addr);
    }
    fallback_tunnel_device(t.type_, ipv6).to_string()
}

/// The GRE device that receives GRE with a checksum sent to `addr` (a
/// realserver address on this node): `lvsg` and 8 hex digits of a hash of
/// the address. The kernel's fallback devices `gre0`/`ip6gre0` have no
/// checksum flag and drop such packets as CRC errors, and the kernel cannot
/// change them; a device with `local addr` and the input checksum flag is
/// chosen before the fallback device for every GRE packet to `addr`.
pub fn gre_checksum_device(addr: IpAddr) -> String {
    // FNV-1a: stable across releases and platforms, so a restarted agent
    // finds the device it made.
    let octets: Vec<u8> = match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    let mut h: u32 = 0x811c_9dc5;
    for b in octets {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("lvsg{h:08x}")
}

/// The fallback tunnel device that receives a type/family's packets.
fn fallback_tunnel_device(type_: TunnelType, ipv6: bool) -> &'static str {
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
/// - directors: `net.ipv4.vs.expire_nodest_conn=1`. A destination leaves the
///   kernel only once it is done with: its drain ended (no active
///   connection; for UDP no entry), its drain deadline passed, the drain
///   timeout is 0, or a health check removes it (`onFailure: Remove`). The
///   connections still on it must then move at once, not stall: with the
///   kernel default 0 their packets are dropped until the entry times out
///   (TCP established: 15 min; UDP: 5 min), while with 1 the entry is
///   expired on its next packet (and, from Linux 5.9, in the background),
///   so a TCP client gets a reset and reconnects, and a UDP client's next
///   datagram is scheduled afresh to a live destination. Draining
///   destinations are not deleted (weight 0), so this never cuts a drain.
/// - directors: `net.ipv4.vs.expire_quiescent_template=1`. A persistence
///   template to a weight-0 destination (draining, inactive, inhibited by a
///   health check) is expired when the client opens its next connection,
///   which then goes to a destination with weight; existing connections are
///   not templates and continue. Set on every director: the sysctl is per
///   network namespace, and without persistence there is no template.
/// - `conn_reuse_mode` keeps the kernel default (1): a new TCP connection
///   reusing the source port of a finished one is scheduled afresh (never
///   to a draining destination); 0 was a workaround for the first-SYN drop
///   with conntrack on kernels before 5.9.
/// - UDP trade-off: IPVS keeps a UDP "connection" per client address and
///   port for the UDP timeout, refreshed by each datagram, and weight 0 does
///   not move it. A resolver reusing its source port would keep sending to a
///   failed DNS server (kube-proxy's stale UDP entries that black-hole DNS).
///   So a failed UDP destination is removed (the health check default for
///   UDP, `Remove`), which with `expire_nodest_conn=1` moves the client's
///   next datagram within the check bound (fall x interval). A draining UDP
///   destination is still alive: it keeps its flows until they go idle or
///   the drain deadline, which bounds how long a client stays on it.
/// - NAT directors: `ip_forward` (IPv4) or `conf.all.forwarding` (IPv6), and
///   `net.ipv4.vs.conntrack=1` so netfilter (SNAT, firewall) sees IPVS
///   connections;
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
    let specs: HashMap<String, &VirtualServiceSpec> =
        vss.iter().map(|o| (o.meta.key(), &o.spec)).collect();
    let mut agg = Aggregate::default();
    let mut services = Vec::new();
    for v in analysis.accepted() {
        let Some(spec) = specs.get(&v.name) else {
            continue;
        };
        let f = fragment(node, v, spec);
        agg.add(&f);
        services.extend(f.service);
    }
    agg.plan(node, services)
}

/// What one VirtualService asks of one node. A node's plan is the union of
/// its fragments; the agent keeps them per VirtualService so that a change
/// re-plans only what it touches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fragment {
    /// Director role: the IPVS service.
    pub service: Option<PlannedService>,
    /// Director role: the VIPs (the address of a tuple service, the
    /// match addresses of a fwmark service).
    pub vips: Vec<PlannedVip>,
    /// DR realserver role: the VIPs on `lo`.
    pub loopback: Vec<IpAddr>,
    /// TUN realserver role: (device, type, IPv6, GUE port, local) and the VIP.
    pub tunnels: Vec<(TunnelSlot, IpAddr)>,
    /// TUN realserver role: the addresses GRE is sent to on this node, with
    /// whether it carries a checksum.
    pub gre_locals: Vec<(IpAddr, bool)>,
    pub sysctls: Vec<Sysctl>,
    /// Director role: the service is source-NATed (`spec.sourceNat`).
    pub source_nat: Option<ServiceKey>,
    /// Director role: the marking rule of a fwmark service.
    pub mark: Option<PlannedMark>,
}

/// A tunnel endpoint's identity: device, type, IPv6, GUE port, and the
/// local address of a device the agent creates (GRE with a checksum).
pub type TunnelSlot = (String, TunnelType, bool, u16, Option<IpAddr>);

impl Fragment {
    pub fn is_empty(&self) -> bool {
        self.service.is_none()
            && self.vips.is_empty()
            && self.loopback.is_empty()
            && self.tunnels.is_empty()
            && self.gre_locals.is_empty()
            && self.sysctls.is_empty()
            && self.source_nat.is_none()
            && self.mark.is_none()
    }
}

/// The fragment of `node` for one accepted VirtualService.
pub fn fragment(node: &str, v: &Verdict, spec: &VirtualServiceSpec) -> Fragment {
    let mut f = Fragment::default();
    if v.state != ServiceState::Accepted {
        return f;
    }
    let Some(key) = v.key else {
        return f;
    };
    let mut sysctls = BTreeSet::new();
    if v.directors.iter().any(|d| d == node) {
        f.service = Some(director_service(v, key, spec));
        let mut directors = v.directors.clone();
        directors.sort();
        directors.dedup();
        f.vips = vips_of(key, spec)
            .into_iter()
            .map(|addr| PlannedVip {
                addr,
                interface: spec.directors.interface.clone(),
                directors: directors.clone(),
            })
            .collect();
        f.mark = mark_of(key, spec);
        sysctls.insert(Sysctl::new("net/ipv4/vs/expire_nodest_conn", "1"));
        sysctls.insert(Sysctl::new("net/ipv4/vs/expire_quiescent_template", "1"));
        if v.destinations
            .iter()
            .any(|d| d.method == ForwardingMethod::Nat)
        {
            if key.is_ipv6() {
                sysctls.insert(Sysctl::new("net/ipv6/conf/all/forwarding", "1"));
            } else {
                sysctls.insert(Sysctl::new("net/ipv4/ip_forward", "1"));
            }
            sysctls.insert(Sysctl::new("net/ipv4/vs/conntrack", "1"));
        }
        // Source NAT rides on conntrack, which NAT directors turn on above;
        // admission allows it with forwarding NAT only.
        if spec.source_nat && spec.forwarding == ForwardingMethod::Nat {
            f.source_nat = Some(key);
            sysctls.insert(Sysctl::new("net/ipv4/vs/conntrack", "1"));
        }
        f.sysctls = sysctls.into_iter().collect();
        return f;
    }
    let vips = vips_of(key, spec);
    if vips.is_empty() {
        return f;
    }
    let ipv6 = key.is_ipv6();
    let mut tunnels = BTreeSet::new();
    let mut gre_locals = BTreeSet::new();
    for rs in v
        .real_servers
        .iter()
        .filter(|r| r.ready() && r.node.as_deref() == Some(node))
    {
        let Some(dest) = v.destinations.iter().find(|d| *d.owner == *rs.name) else {
            continue;
        };
        match dest.method {
            ForwardingMethod::Dr => {
                f.loopback.clone_from(&vips);
                if !ipv6 {
                    sysctls.insert(Sysctl::new("net/ipv4/conf/all/arp_ignore", "1"));
                    sysctls.insert(Sysctl::new("net/ipv4/conf/all/arp_announce", "2"));
                }
            }
            ForwardingMethod::Tun => {
                let t = dest.tunnel.unwrap_or(crate::PlannedTunnel {
                    type_: TunnelType::Ipip,
                    port: 0,
                    checksum: false,
                    remote_checksum: false,
                });
                let device = tunnel_device(&t, dest.addr, ipv6);
                let local = (t.type_ == TunnelType::Gre && t.checksum).then_some(dest.addr);
                if t.type_ == TunnelType::Gre {
                    gre_locals.insert((dest.addr, t.checksum));
                }
                for vip in &vips {
                    tunnels.insert(((device.clone(), t.type_, ipv6, t.port, local), *vip));
                }
                if !ipv6 {
                    sysctls.insert(Sysctl::new("net/ipv4/conf/all/rp_filter", "2"));
                    sysctls.insert(Sysctl::new(
                        format!("net/ipv4/conf/{device}/rp_filter"),
                        "2",
                    ));
                }
            }
            ForwardingMethod::Nat => {}
        }
    }
    f.tunnels = tunnels.into_iter().collect();
    f.gre_locals = gre_locals.into_iter().collect();
    f.sysctls = sysctls.into_iter().collect();
    f
}

/// The VIPs of a service: its address, or the addresses a fwmark service
/// marks (`spec.fwmarkMatch`). Sorted, unique.
fn vips_of(key: ServiceKey, spec: &VirtualServiceSpec) -> Vec<IpAddr> {
    match key {
        ServiceKey::Tuple { addr, .. } => vec![addr],
        ServiceKey::Fwmark { .. } => spec.vips(),
    }
}

/// The marking rule of a fwmark service with `spec.fwmarkMatch`.
fn mark_of(key: ServiceKey, spec: &VirtualServiceSpec) -> Option<PlannedMark> {
    let ServiceKey::Fwmark { mark, ipv6 } = key else {
        return None;
    };
    let m = spec.fwmark_match.as_ref()?;
    let addresses = vips_of(key, spec);
    if addresses.is_empty() {
        return None;
    }
    let mut ports: Vec<(u16, u16)> = m
        .ports
        .iter()
        .filter_map(|p| {
            let first = u16::try_from(p.port).ok()?;
            let last = u16::try_from(p.end_port.unwrap_or(p.port)).ok()?;
            (first >= 1 && last >= first).then_some((first, last))
        })
        .collect();
    ports.sort();
    ports.dedup();
    Some(PlannedMark {
        mark,
        ipv6,
        addresses,
        protocol: m.protocol,
        ports,
    })
}

/// The union of fragments, with a count per item so that fragments can be
/// removed again: a VIP, sysctl or tunnel VIP stays while any fragment
/// still asks for it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Aggregate {
    /// VIP address -> its interface choices and directors, with counts.
    pub vips: BTreeMap<IpAddr, VipCounts>,
    pub loopback: BTreeMap<IpAddr, usize>,
    pub tunnels: BTreeMap<TunnelSlot, BTreeMap<IpAddr, usize>>,
    pub gre_locals: BTreeMap<(IpAddr, bool), usize>,
    pub sysctls: BTreeMap<Sysctl, usize>,
    pub source_nat: BTreeMap<ServiceKey, usize>,
    pub marks: BTreeMap<PlannedMark, usize>,
}

/// The fragments' asks for one VIP address: interface choices and director
/// nodes, each with the number of fragments naming it, sorted (one interface
/// but for a conflict, a few directors: a map each would cost a B-tree node).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VipCounts {
    pub interfaces: Vec<(Option<String>, usize)>,
    pub directors: Vec<(String, usize)>,
}

/// [`bump`] on a sorted vector of (key, count).
fn bump_small<K: Ord + Clone>(m: &mut Vec<(K, usize)>, k: &K, add: bool) {
    match m.binary_search_by(|(x, _)| x.cmp(k)) {
        Ok(i) if add => m[i].1 += 1,
        Ok(i) => {
            m[i].1 -= 1;
            if m[i].1 == 0 {
                m.remove(i);
            }
        }
        Err(i) if add => m.insert(i, (k.clone(), 1)),
        Err(_) => {}
    }
}

fn bump<K: Ord + Clone>(m: &mut BTreeMap<K, usize>, k: &K, add: bool) {
    if add {
        *m.entry(k.clone()).or_default() += 1;
    } else if let Some(c) = m.get_mut(k) {
        *c -= 1;
        if *c == 0 {
            m.remove(k);
        }
    }
}

impl Aggregate {
    pub fn add(&mut self, f: &Fragment) {
        self.change(f, true);
    }

    pub fn remove(&mut self, f: &Fragment) {
        self.change(f, false);
    }

    fn change(&mut self, f: &Fragment, add: bool) {
        for v in &f.vips {
            let m = self.vips.entry(v.addr).or_default();
            bump_small(&mut m.interfaces, &v.interface, add);
            for d in &v.directors {
                bump_small(&mut m.directors, d, add);
            }
            if m.interfaces.is_empty() {
                self.vips.remove(&v.addr);
            }
        }
        for a in &f.loopback {
            bump(&mut self.loopback, a, add);
        }
        for (slot, vip) in &f.tunnels {
            let m = self.tunnels.entry(slot.clone()).or_default();
            bump(m, vip, add);
            if m.is_empty() {
                self.tunnels.remove(slot);
            }
        }
        for l in &f.gre_locals {
            bump(&mut self.gre_locals, l, add);
        }
        for s in &f.sysctls {
            bump(&mut self.sysctls, s, add);
        }
        if let Some(k) = &f.source_nat {
            bump(&mut self.source_nat, k, add);
        }
        if let Some(m) = &f.mark {
            bump(&mut self.marks, m, add);
        }
    }

    /// The VIPs held for these addresses.
    pub fn vips_at<'a>(
        &'a self,
        addrs: impl IntoIterator<Item = &'a IpAddr> + 'a,
    ) -> impl Iterator<Item = PlannedVip> + 'a {
        addrs.into_iter().flat_map(move |a| {
            self.vips.get(a).into_iter().flat_map(move |m| {
                // Each fragment at the address names one interface choice:
                // a director named by all of them directs every service here.
                let fragments: usize = m.interfaces.iter().map(|(_, c)| c).sum();
                let directors: Vec<String> = m
                    .directors
                    .iter()
                    .filter(|(_, c)| *c == fragments)
                    .map(|(d, _)| d.clone())
                    .collect();
                m.interfaces.iter().map(move |(i, _)| PlannedVip {
                    addr: *a,
                    interface: i.clone(),
                    directors: directors.clone(),
                })
            })
        })
    }

    /// A plan with these services and every VIP, tunnel and sysctl.
    pub fn plan(&self, node: &str, services: Vec<PlannedService>) -> NodePlan {
        self.plan_with_vips(node, services, self.vips_at(self.vips.keys()).collect())
    }

    /// A plan with these services and VIPs, and every tunnel and sysctl.
    pub fn plan_with_vips(
        &self,
        node: &str,
        mut services: Vec<PlannedService>,
        mut vips: Vec<PlannedVip>,
    ) -> NodePlan {
        services.sort();
        vips.sort();
        vips.dedup();
        NodePlan {
            node: node.to_string(),
            services,
            vips,
            loopback_vips: self.loopback.keys().copied().collect(),
            tunnels: self
                .tunnels
                .iter()
                .map(
                    |((device, type_, ipv6, port, local), vips)| PlannedTunnelEndpoint {
                        device: device.clone(),
                        type_: *type_,
                        ipv6: *ipv6,
                        port: *port,
                        local: *local,
                        vips: vips.keys().copied().collect(),
                    },
                )
                .collect(),
            gre_checksum_conflicts: self
                .gre_locals
                .keys()
                .filter(|(a, csum)| *csum && self.gre_locals.contains_key(&(*a, false)))
                .map(|(a, _)| *a)
                .collect(),
            sysctls: self.sysctls.keys().cloned().collect(),
            source_nat: self.source_nat.keys().copied().collect(),
            marks: self.marks.keys().cloned().collect(),
        }
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
        destinations: serving(&v.destinations),
        owner: v.name.clone(),
        generation: v.generation,
        health: health_check(spec).map(Box::new),
        sorry_server: sorry_server(key, spec).map(Box::new),
        quorum: spec.quorum.and_then(|q| u32::try_from(q).ok()).unwrap_or(1),
        drain_timeout_seconds: spec
            .drain
            .as_ref()
            .and_then(|d| d.timeout_seconds)
            .and_then(|t| u32::try_from(t).ok())
            .unwrap_or(DEFAULT_DRAIN_TIMEOUT_SECONDS),
    }
}

/// The destinations a director serves (the Draining ones left out), in a
/// vector of exactly their number: a fragment keeps it as long as the
/// VirtualService is planned, and a collected filter would leave it up to
/// 60% larger (10 destinations in room for 16).
fn serving(all: &[PlannedDestination]) -> Vec<PlannedDestination> {
    let keep = |d: &&PlannedDestination| d.state != RealServerState::Draining;
    let mut out = Vec::with_capacity(all.iter().filter(keep).count());
    out.extend(all.iter().filter(keep).cloned());
    out
}

/// How long a leaving destination drains when `drain.timeoutSeconds` is unset.
pub const DEFAULT_DRAIN_TIMEOUT_SECONDS: u32 = 300;

/// The service's health check with its defaults: TCP for a TCP service and
/// no check otherwise when the type is unset; Remove on failure for UDP,
/// Inhibit otherwise.
fn health_check(spec: &VirtualServiceSpec) -> Option<PlannedHealthCheck> {
    let h = spec.health_check.as_ref()?;
    let (type_, on_failure) = spec.effective_health_check()?;
    let d = PlannedHealthCheck::with_defaults(type_, on_failure);
    let num =
        |v: Option<i64>, default: u32| v.and_then(|v| u32::try_from(v).ok()).unwrap_or(default);
    let expected_status: Vec<(u16, u16)> = h
        .expected_status
        .iter()
        .filter_map(|s| lvs_api::validate::status_range(s))
        .collect();
    Some(PlannedHealthCheck {
        port: h.port.and_then(|p| u16::try_from(p).ok()),
        interval_seconds: num(h.interval_seconds, d.interval_seconds),
        timeout_seconds: num(h.timeout_seconds, d.timeout_seconds),
        rise: num(h.rise, d.rise),
        fall: num(h.fall, d.fall),
        path: h.path.clone().unwrap_or(d.path),
        host: h.host.clone(),
        expected_status: if expected_status.is_empty() {
            d.expected_status
        } else {
            expected_status
        },
        body_contains: h.body_contains.clone(),
        verify_certificate: h.verify_certificate.unwrap_or(d.verify_certificate),
        dns_name: h.dns_name.clone().unwrap_or(d.dns_name),
        expected_rcode: h.expected_rcode.unwrap_or(d.expected_rcode),
        ..d
    })
}

/// The sorry server as a destination: the service's forwarding method, its
/// port or the service's, weight 1.
fn sorry_server(key: ServiceKey, spec: &VirtualServiceSpec) -> Option<PlannedDestination> {
    let s = spec.sorry_server.as_ref()?;
    let addr = lvs_api::validate::parse_ip(&s.address)?;
    let port = match (s.port, key) {
        (Some(p), _) => u16::try_from(p).ok()?,
        (None, ServiceKey::Tuple { port, .. }) => port,
        (None, ServiceKey::Fwmark { .. }) => 0,
    };
    let method = spec.forwarding;
    Some(PlannedDestination {
        addr,
        port,
        method,
        weight: 1,
        upper_threshold: 0,
        lower_threshold: 0,
        tunnel: (method == ForwardingMethod::Tun)
            .then(|| crate::analyze::tunnel_of(spec.tunnel.as_ref())),
        owner: Arc::from(""),
        node: None,
        state: RealServerState::Active,
    })
}
