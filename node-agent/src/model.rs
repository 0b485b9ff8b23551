//! The kernel state the agent deals with, as plain values.
//!
//! These types are the vocabulary of the [`Dataplane`](crate::dataplane::Dataplane)
//! trait. They mirror what the kernel keys and reports, not the API: a
//! foreign service with any protocol number must be representable. Identity
//! (`*Key`) is kept apart from configuration (`*Config`) and from counters,
//! so diffs compare keys and configurations and never statistics.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Bound;

use serde::{Deserialize, Serialize};

pub const IPPROTO_TCP: u16 = 6;
pub const IPPROTO_UDP: u16 = 17;
pub const IPPROTO_SCTP: u16 = 132;

/// `IP_VS_SVC_F_PERSISTENT`.
pub const SVC_F_PERSISTENT: u32 = 0x0001;
/// `IP_VS_SVC_F_SCHED1`: sh-fallback / mh-fallback.
pub const SVC_F_SCHED1: u32 = 0x0008;
/// `IP_VS_SVC_F_SCHED2`: sh-port / mh-port.
pub const SVC_F_SCHED2: u32 = 0x0010;

/// `IP_VS_CONN_F_TUNNEL_TYPE_*`.
pub const TUN_TYPE_IPIP: u8 = 0;
pub const TUN_TYPE_GUE: u8 = 1;
pub const TUN_TYPE_GRE: u8 = 2;
/// `IP_VS_TUNNEL_ENCAP_FLAG_*`.
pub const TUN_FLAG_CSUM: u16 = 1;
pub const TUN_FLAG_REMCSUM: u16 = 2;

/// What identifies an IPVS virtual service in the kernel table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum SvcKey {
    Tuple {
        addr: IpAddr,
        /// IP protocol number (6 TCP, 17 UDP, 132 SCTP).
        protocol: u16,
        port: u16,
    },
    Fwmark {
        mark: u32,
        ipv6: bool,
    },
}

impl SvcKey {
    pub fn is_ipv6(&self) -> bool {
        match self {
            SvcKey::Tuple { addr, .. } => addr.is_ipv6(),
            SvcKey::Fwmark { ipv6, .. } => *ipv6,
        }
    }

    /// Metric label value: `TCP/10.0.0.1:80`, `FWM/1/IPv4`.
    pub fn label(&self) -> String {
        self.to_string()
    }
}

fn proto_name(p: u16) -> String {
    match p {
        IPPROTO_TCP => "TCP".into(),
        IPPROTO_UDP => "UDP".into(),
        IPPROTO_SCTP => "SCTP".into(),
        n => format!("proto{n}"),
    }
}

impl fmt::Display for SvcKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SvcKey::Tuple {
                addr,
                protocol,
                port,
            } => write!(
                f,
                "{}/{}",
                proto_name(*protocol),
                SocketAddr::new(*addr, *port)
            ),
            SvcKey::Fwmark { mark, ipv6 } => {
                write!(f, "FWM/{mark}/{}", if *ipv6 { "IPv6" } else { "IPv4" })
            }
        }
    }
}

/// What SET_SERVICE can change in place.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SvcConfig {
    /// Scheduler name without the `ip_vs_` prefix.
    pub scheduler: String,
    /// `IP_VS_SVC_F_*` without the kernel-internal HASHED bit.
    pub flags: u32,
    /// Persistence timeout in seconds; 0 without persistence.
    pub timeout: u32,
    /// Persistence granularity in host order: an IPv4 bit mask, an IPv6 prefix length.
    pub netmask: u32,
}

/// How packets reach a destination (`IP_VS_CONN_F_FWD_MASK`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Fwd {
    Masq,
    Local,
    Tunnel,
    Route,
    Bypass,
}

impl fmt::Display for Fwd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Fwd::Masq => "Masq",
            Fwd::Local => "Local",
            Fwd::Tunnel => "Tunnel",
            Fwd::Route => "Route",
            Fwd::Bypass => "Bypass",
        })
    }
}

/// What identifies a destination within its service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DestKey {
    pub addr: IpAddr,
    pub port: u16,
}

impl fmt::Display for DestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        SocketAddr::new(self.addr, self.port).fmt(f)
    }
}

/// What SET_DEST can change in place, the forwarding method included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DestConfig {
    pub fwd: Fwd,
    pub weight: u32,
    pub u_threshold: u32,
    pub l_threshold: u32,
    /// `IP_VS_CONN_F_TUNNEL_TYPE_*`; meaningful with `Fwd::Tunnel` only.
    pub tun_type: u8,
    /// GUE port; meaningful with `Fwd::Tunnel` only.
    pub tun_port: u16,
    /// `IP_VS_TUNNEL_ENCAP_FLAG_*`; meaningful with `Fwd::Tunnel` only.
    pub tun_flags: u16,
}

impl DestConfig {
    /// Whether two configurations program the same behaviour. The tunnel
    /// fields are ignored unless the method is Tunnel: kernels report them
    /// for every destination, with whatever was last set.
    pub fn same_as(&self, other: &DestConfig) -> bool {
        let base = self.fwd == other.fwd
            && self.weight == other.weight
            && self.u_threshold == other.u_threshold
            && self.l_threshold == other.l_threshold;
        base && (self.fwd != Fwd::Tunnel
            || (self.tun_type == other.tun_type
                && self.tun_port == other.tun_port
                && self.tun_flags == other.tun_flags))
    }
}

/// Traffic counters the kernel keeps per service and per destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Counters {
    pub conns: u64,
    pub in_pkts: u64,
    pub out_pkts: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
}

/// Connection gauges of one destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct DestGauges {
    pub active_conns: u32,
    pub inactive_conns: u32,
    pub persist_conns: u32,
}

/// One destination as read from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedDest {
    pub key: DestKey,
    pub config: DestConfig,
    pub counters: Counters,
    pub gauges: DestGauges,
}

/// One service as read from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedService {
    pub key: SvcKey,
    pub config: SvcConfig,
    pub counters: Counters,
    pub dests: Vec<ObservedDest>,
}

/// One write to the IPVS table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IpvsOp {
    AddService(SvcKey, SvcConfig),
    UpdateService(SvcKey, SvcConfig),
    DelService(SvcKey),
    AddDest(SvcKey, DestKey, DestConfig),
    UpdateDest(SvcKey, DestKey, DestConfig),
    DelDest(SvcKey, DestKey),
}

impl IpvsOp {
    pub fn service(&self) -> &SvcKey {
        match self {
            IpvsOp::AddService(k, _)
            | IpvsOp::UpdateService(k, _)
            | IpvsOp::DelService(k)
            | IpvsOp::AddDest(k, _, _)
            | IpvsOp::UpdateDest(k, _, _)
            | IpvsOp::DelDest(k, _) => k,
        }
    }

    /// Metric label of the op kind.
    pub fn kind(&self) -> &'static str {
        match self {
            IpvsOp::AddService(..) => "service_add",
            IpvsOp::UpdateService(..) => "service_update",
            IpvsOp::DelService(..) => "service_del",
            IpvsOp::AddDest(..) => "dest_add",
            IpvsOp::UpdateDest(..) => "dest_update",
            IpvsOp::DelDest(..) => "dest_del",
        }
    }
}

impl fmt::Display for IpvsOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpvsOp::AddService(k, c) => write!(f, "add service {k} (scheduler {})", c.scheduler),
            IpvsOp::UpdateService(k, c) => {
                write!(f, "update service {k} (scheduler {})", c.scheduler)
            }
            IpvsOp::DelService(k) => write!(f, "delete service {k}"),
            IpvsOp::AddDest(k, d, c) => write!(f, "add destination {k} -> {d} ({})", c.fwd),
            IpvsOp::UpdateDest(k, d, c) => {
                write!(f, "update destination {k} -> {d} ({})", c.fwd)
            }
            IpvsOp::DelDest(k, d) => write!(f, "delete destination {k} -> {d}"),
        }
    }
}

/// Address scope (`RT_SCOPE_*`), as far as the agent cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Scope {
    Global,
    Link,
    Host,
}

/// How a node holds one of its own IPs.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "camelCase")]
pub enum AddrKind {
    /// An address on the interface (`ip addr`).
    #[default]
    Interface,
    /// A `local` route in the `local` table through the interface, marked
    /// with [`RTPROT_LVS`] (`ip route show table local proto 76`). IPv4 only.
    /// The kernel accepts packets to it and answers ARP for it (while the
    /// interface's arp_ignore is 0), and adding one does not walk the
    /// interface's address list, so 20k of them cost little.
    LocalRoute,
}

impl AddrKind {
    fn is_interface(&self) -> bool {
        *self == AddrKind::Interface
    }
}

/// The `rtm_protocol` that marks the agent's local routes.
pub const RTPROT_LVS: u8 = 76;

/// How a director holds its IPv4 VIPs (IPv6 VIPs are always addresses:
/// neighbour discovery answers only for configured addresses).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum VipMode {
    #[default]
    Address,
    LocalRoute,
}

/// A local IP of the node: an address on an interface, or a local route.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    pub interface: String,
    pub addr: IpAddr,
    pub prefix_len: u8,
    /// IFA_LABEL (IPv4 only); `None` when it is the interface name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub scope: Scope,
    #[serde(default, skip_serializing_if = "AddrKind::is_interface")]
    pub kind: AddrKind,
}

impl Address {
    /// The identity the agent diffs by.
    pub fn key(&self) -> AddrKey {
        AddrKey {
            interface: self.interface.clone(),
            addr: self.addr,
            prefix_len: self.prefix_len,
        }
    }
}

/// (interface, address, prefix): how the kernel tells addresses apart.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddrKey {
    pub interface: String,
    pub addr: IpAddr,
    pub prefix_len: u8,
}

impl fmt::Display for AddrKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} on {}", self.addr, self.prefix_len, self.interface)
    }
}

/// The addresses one sync may change: all of them, or those at some VIPs
/// together with every address on some interfaces (lo, tunnel devices).
///
/// A scoped sync looks its addresses up by range, so its cost follows the
/// scope, not the number of VIPs the node owns.
#[derive(Debug, Clone, Copy)]
pub enum AddrScope<'a> {
    All,
    Part {
        vips: &'a BTreeSet<IpAddr>,
        interfaces: &'a BTreeSet<String>,
    },
}

impl AddrScope<'_> {
    pub fn covers(&self, a: &AddrKey) -> bool {
        match self {
            AddrScope::All => true,
            AddrScope::Part { vips, interfaces } => {
                vips.contains(&a.addr) || interfaces.contains(&a.interface)
            }
        }
    }

    /// The covered keys of a map.
    pub fn keys_of<'m, V>(&self, map: &'m BTreeMap<AddrKey, V>) -> Vec<&'m AddrKey> {
        self.select(|lo, hi| Box::new(map.range::<AddrKey, _>((lo, hi)).map(|(k, _)| k)))
    }

    /// The covered keys of a set.
    pub fn keys_in<'m>(&self, set: &'m BTreeSet<AddrKey>) -> Vec<&'m AddrKey> {
        self.select(|lo, hi| Box::new(set.range::<AddrKey, _>((lo, hi))))
    }

    /// Walks the interfaces present (one lookup each); on each, takes the
    /// whole interface or the range of each VIP.
    fn select<'m>(
        &self,
        range: impl Fn(Bound<&AddrKey>, Bound<&AddrKey>) -> Box<dyn Iterator<Item = &'m AddrKey> + 'm>,
    ) -> Vec<&'m AddrKey> {
        let (vips, interfaces) = match self {
            AddrScope::All => return range(Bound::Unbounded, Bound::Unbounded).collect(),
            AddrScope::Part { vips, interfaces } => (vips, interfaces),
        };
        let bound = |interface: &str, addr: IpAddr, prefix_len: u8| AddrKey {
            interface: interface.to_string(),
            addr,
            prefix_len,
        };
        let mut out = Vec::new();
        let mut after: Option<AddrKey> = None;
        loop {
            let lower = after.as_ref().map_or(Bound::Unbounded, Bound::Excluded);
            let Some(first) = range(lower, Bound::Unbounded).next() else {
                break;
            };
            let interface = first.interface.as_str();
            let last = bound(interface, IpAddr::V6(Ipv6Addr::from(u128::MAX)), u8::MAX);
            if interfaces.contains(interface) {
                let lo = bound(interface, IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
                out.extend(range(Bound::Included(&lo), Bound::Included(&last)));
            } else {
                for vip in vips.iter() {
                    let lo = bound(interface, *vip, 0);
                    let hi = bound(interface, *vip, u8::MAX);
                    out.extend(range(Bound::Included(&lo), Bound::Included(&hi)));
                }
            }
            after = Some(last);
        }
        out
    }
}

/// The label that marks an IPv4 address as the agent's: `<interface>:lvs`,
/// when that fits the kernel's 15-byte limit.
pub fn owned_label(interface: &str) -> Option<String> {
    let label = format!("{interface}:lvs");
    (label.len() <= 15).then_some(label)
}

/// A network interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    pub index: u32,
    /// IFLA_INFO_KIND (`ipip`, `gre`, ...), if any.
    pub kind: Option<String>,
    pub up: bool,
}

/// The kinds of tunnel device a TUN realserver receives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TunnelKind {
    /// `ipip`: fallback device `tunl0`.
    Ipip,
    /// `ip6tnl`: fallback device `ip6tnl0`.
    Ip6tnl,
    /// `gre`: fallback device `gre0`.
    Gre,
    /// `ip6gre`: fallback device `ip6gre0`.
    Ip6gre,
}

impl TunnelKind {
    /// IFLA_INFO_KIND; creating a link of this kind loads the module, which
    /// creates the fallback device in every network namespace.
    pub fn link_kind(self) -> &'static str {
        match self {
            TunnelKind::Ipip => "ipip",
            TunnelKind::Ip6tnl => "ip6tnl",
            TunnelKind::Gre => "gre",
            TunnelKind::Ip6gre => "ip6gre",
        }
    }
}

/// A tunnel device the agent must have up.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TunnelDevice {
    pub name: String,
    pub kind: TunnelKind,
}

/// A fou (GUE) receive port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FouPort {
    pub port: u16,
    pub ipv6: bool,
}

impl fmt::Display for FouPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gue port {} ({})",
            self.port,
            if self.ipv6 { "IPv6" } else { "IPv4" }
        )
    }
}

/// A service's destinations by key, as the reconciler keeps them.
pub type DestMap = BTreeMap<DestKey, DestConfig>;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(interface: &str, addr: IpAddr, prefix_len: u8) -> AddrKey {
        AddrKey {
            interface: interface.to_string(),
            addr,
            prefix_len,
        }
    }

    fn addr(i: u8, v6: bool) -> IpAddr {
        if v6 {
            IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(i)))
        } else {
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, i))
        }
    }

    proptest! {
        /// The range lookups find exactly the keys `covers` accepts.
        #[test]
        fn scope_lookup_finds_what_covers_accepts(
            keys in proptest::collection::vec((0usize..4, 0u8..12, any::<bool>(), prop_oneof![Just(8u8), Just(32), Just(128), Just(255)]), 0..60),
            vips in proptest::collection::btree_set((0u8..12, any::<bool>()), 0..5),
            whole in proptest::collection::btree_set(0usize..4, 0..3),
        ) {
            let names = ["eth0", "lo", "tunl0", "ip6tnl0"];
            let set: BTreeSet<AddrKey> = keys
                .iter()
                .map(|(i, a, v6, p)| key(names[*i], addr(*a, *v6), *p))
                .collect();
            let map: BTreeMap<AddrKey, ()> = set.iter().map(|k| (k.clone(), ())).collect();
            let vips: BTreeSet<IpAddr> = vips.iter().map(|(a, v6)| addr(*a, *v6)).collect();
            let interfaces: BTreeSet<String> = whole.iter().map(|i| names[*i].to_string()).collect();
            let scope = AddrScope::Part { vips: &vips, interfaces: &interfaces };
            let expected: Vec<&AddrKey> = set.iter().filter(|k| scope.covers(k)).collect();
            let mut found = scope.keys_in(&set);
            found.sort();
            prop_assert_eq!(&found, &expected);
            let mut found = scope.keys_of(&map);
            found.sort();
            prop_assert_eq!(&found, &expected);
            prop_assert_eq!(AddrScope::All.keys_in(&set).len(), set.len());
        }
    }
}
