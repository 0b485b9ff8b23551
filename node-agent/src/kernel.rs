//! The kernel objects the agent deals with besides IPVS, as plain values:
//! addresses and local routes, links, tunnel devices, fou ports, sync
//! daemons.
//!
//! IPVS services and destinations use `lvs-ipvs`'s types (`ServiceKey`,
//! `ServiceConfig`, `DestKey`, `DestConfig`, `Op`) directly; this module only
//! adds how the agent names them in metric labels and messages. Together
//! they are the vocabulary of the [`Dataplane`](crate::dataplane::Dataplane)
//! trait. Identity (`*Key`) is kept apart from configuration, so diffs
//! compare keys and configurations and never statistics.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Bound;

use lvs_ipvs::{DaemonState, DestConfig, DestKey, Op, Protocol, ServiceKey, SyncDaemon};
use serde::{Deserialize, Serialize};

/// A service's destinations by key, as the reconciler keeps them.
pub type DestMap = BTreeMap<DestKey, DestConfig>;

/// How the agent names an IPVS service in metric labels and messages:
/// `TCP/10.0.0.1:80`, `UDP/[fd00::1]:53`, `FWM/1/IPv4`.
/// The metric label values are part of the agent's interface, so this
/// spelling stays fixed whatever `ServiceKey`'s own `Display` says.
#[derive(Debug, Clone, Copy)]
pub struct ServiceLabel<'a>(pub &'a ServiceKey);

impl fmt::Display for ServiceLabel<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self.0 {
            ServiceKey::Tuple {
                addr,
                protocol,
                port,
            } => {
                match protocol {
                    Protocol::TCP => f.write_str("TCP")?,
                    Protocol::UDP => f.write_str("UDP")?,
                    Protocol::SCTP => f.write_str("SCTP")?,
                    Protocol(n) => write!(f, "proto{n}")?,
                }
                write!(f, "/{}", SocketAddr::new(addr, port))
            }
            ServiceKey::Fwmark { family, mark } => write!(f, "FWM/{mark}/{family}"),
        }
    }
}

/// The metric label value of a service (see [`ServiceLabel`]).
pub fn service_label(key: &ServiceKey) -> String {
    ServiceLabel(key).to_string()
}

/// How the agent describes an IPVS write in messages.
#[derive(Debug, Clone, Copy)]
pub struct OpText<'a>(pub &'a Op);

impl fmt::Display for OpText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Op::AddService(s) => write!(
                f,
                "add service {} (scheduler {})",
                ServiceLabel(&s.key),
                s.config.scheduler
            ),
            Op::UpdateService(s) => write!(
                f,
                "update service {} (scheduler {})",
                ServiceLabel(&s.key),
                s.config.scheduler
            ),
            Op::DelService(k) => write!(f, "delete service {}", ServiceLabel(k)),
            Op::AddDest { service, dest } => write!(
                f,
                "add destination {} -> {} ({})",
                ServiceLabel(service),
                dest.key,
                dest.config.fwd
            ),
            Op::UpdateDest { service, dest } => write!(
                f,
                "update destination {} -> {} ({})",
                ServiceLabel(service),
                dest.key,
                dest.config.fwd
            ),
            Op::DelDest { service, dest } => {
                write!(f, "delete destination {} -> {dest}", ServiceLabel(service))
            }
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
    /// A GRE device of the agent's that receives GRE with a checksum sent to
    /// this address (`local`, any remote, input checksum flag): created when
    /// missing and deleted on release. `None`: a fallback device, only set up
    /// and down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<IpAddr>,
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

/// An IPVS connection sync daemon by what identifies it here: the kernel
/// runs at most one per role (master, backup) in a network namespace, on
/// one multicast interface with one sync id. Optional kernel settings
/// (group, port, TTL, message size) are left at the kernel's defaults and
/// are not compared.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DaemonSpec {
    pub state: DaemonState,
    pub interface: String,
    pub sync_id: u32,
}

impl DaemonSpec {
    pub fn of(d: &SyncDaemon) -> Self {
        DaemonSpec {
            state: d.state,
            interface: d.mcast_ifn.clone(),
            sync_id: d.sync_id,
        }
    }

    /// The NEW_DAEMON request: kernel defaults for everything optional.
    pub fn to_daemon(&self) -> SyncDaemon {
        SyncDaemon {
            state: self.state,
            mcast_ifn: self.interface.clone(),
            sync_id: self.sync_id,
            sync_maxlen: None,
            mcast_group: None,
            mcast_port: None,
            mcast_ttl: None,
        }
    }
}

/// The role's name as `ipvsadm` spells it.
pub fn daemon_role(state: DaemonState) -> &'static str {
    match state {
        DaemonState::Master => "master",
        DaemonState::Backup => "backup",
    }
}

impl fmt::Display for DaemonSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "IPVS sync daemon {} on {} (sync id {})",
            daemon_role(self.state),
            self.interface,
            self.sync_id
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn service_labels_keep_the_metric_spelling() {
        let tuple = |addr: &str, protocol, port| ServiceKey::Tuple {
            addr: addr.parse().unwrap(),
            protocol,
            port,
        };
        assert_eq!(
            service_label(&tuple("10.0.0.1", Protocol::TCP, 80)),
            "TCP/10.0.0.1:80"
        );
        assert_eq!(
            service_label(&tuple("fd00::1", Protocol::UDP, 53)),
            "UDP/[fd00::1]:53"
        );
        assert_eq!(
            service_label(&tuple("10.0.0.1", Protocol(99), 1)),
            "proto99/10.0.0.1:1"
        );
        let fwm = ServiceKey::Fwmark {
            family: lvs_ipvs::Family::V6,
            mark: 3,
        };
        assert_eq!(service_label(&fwm), "FWM/3/IPv6");
    }

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
