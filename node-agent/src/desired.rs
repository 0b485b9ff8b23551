//! From a [`NodePlan`] to the kernel objects that implement it.
//!
//! Pure, except that a director VIP without an interface goes on the
//! interface holding the node's InternalIP, which is looked up among the
//! addresses the caller read from the kernel.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use lvs_api::{ForwardingMethod, Protocol as ApiProtocol, SchedulerFlag, TunnelType};
use lvs_ipvs::{
    DestConfig, DestKey, Family, FwdMethod, Protocol, ServiceConfig, ServiceFlags, ServiceKey,
    TunnelFlags, TunnelType as IpvsTunnelType,
};
use lvs_planner::{NodePlan, PlannedDestination, PlannedService, ServiceKey as PlannedKey};

use crate::kernel::{
    AddrKey, AddrKind, Address, DestMap, FouPort, Scope, TunnelDevice, TunnelKind, VipMode,
    owned_label,
};
use crate::report::{ErrorKind, SyncError};

/// The interface that holds DR realservers' VIPs.
pub const LOOPBACK: &str = "lo";

/// One IPVS service as it must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredService {
    pub config: ServiceConfig,
    pub dests: DestMap,
    /// The VirtualService (namespace/name).
    pub owner: String,
    pub generation: Option<i64>,
}

/// One address as it must be, with the VirtualServices that need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredAddress {
    pub address: Address,
    pub owners: BTreeSet<String>,
    /// A director VIP of IPVS services at this address: held only while
    /// one of them is in the kernel, so the node never answers for a VIP
    /// that it cannot balance.
    pub needs_service: bool,
    /// The firewall-mark services that mark traffic to this VIP
    /// (`fwmarkMatch`): the VIP is served while one of them, or a service
    /// at its address, is in the kernel.
    pub fwmarks: BTreeSet<ServiceKey>,
}

/// Everything the node must have, in kernel terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    pub services: BTreeMap<ServiceKey, DesiredService>,
    pub addresses: BTreeMap<AddrKey, DesiredAddress>,
    pub tunnels: BTreeMap<String, TunnelDevice>,
    pub fou_ports: BTreeSet<FouPort>,
    pub sysctls: BTreeMap<String, String>,
    /// Parts of the plan that cannot be turned into kernel objects.
    pub errors: Vec<SyncError>,
}

impl Desired {
    /// Frees what only deciding the writes reads (the destinations and the
    /// addresses), keeping each service's owner and generation for the
    /// sync's report: the writes that follow are a first sync's peak.
    pub fn keep_owners_only(&mut self) {
        for s in self.services.values_mut() {
            s.dests = DestMap::new();
        }
        self.addresses = BTreeMap::new();
    }
}

/// The kernel key of a planned service.
pub fn service_key(key: &PlannedKey) -> ServiceKey {
    match *key {
        PlannedKey::Tuple {
            addr,
            protocol,
            port,
        } => ServiceKey::Tuple {
            addr,
            protocol: match protocol {
                ApiProtocol::Tcp => Protocol::TCP,
                ApiProtocol::Udp => Protocol::UDP,
                ApiProtocol::Sctp => Protocol::SCTP,
            },
            port,
        },
        PlannedKey::Fwmark { mark, ipv6 } => ServiceKey::Fwmark {
            family: if ipv6 { Family::V6 } else { Family::V4 },
            mark,
        },
    }
}

pub fn service_config(s: &PlannedService) -> ServiceConfig {
    let family = if s.key.is_ipv6() {
        Family::V6
    } else {
        Family::V4
    };
    let mut c = ServiceConfig::new(family, s.scheduler.as_str());
    for f in &s.flags {
        c.flags = c.flags
            | match f {
                SchedulerFlag::ShFallback | SchedulerFlag::MhFallback => ServiceFlags::SCHED1,
                SchedulerFlag::ShPort | SchedulerFlag::MhPort => ServiceFlags::SCHED2,
                SchedulerFlag::OnePacket => ServiceFlags::ONE_PACKET,
            };
    }
    if let Some(p) = &s.persistence {
        c.flags = c.flags | ServiceFlags::PERSISTENT;
        c.timeout = p.timeout_seconds;
        c.netmask = ServiceConfig::netmask_for_prefix(family, p.prefix_length);
    }
    c
}

pub fn dest_config(d: &PlannedDestination) -> DestConfig {
    let fwd = match d.method {
        ForwardingMethod::Nat => FwdMethod::Masq,
        ForwardingMethod::Dr => FwdMethod::DirectRoute,
        ForwardingMethod::Tun => FwdMethod::Tunnel,
    };
    let mut c = DestConfig::new(fwd, d.weight);
    c.u_threshold = d.upper_threshold;
    c.l_threshold = d.lower_threshold;
    if let (ForwardingMethod::Tun, Some(t)) = (d.method, &d.tunnel) {
        c.tun_type = match t.type_ {
            TunnelType::Ipip => IpvsTunnelType::IPIP,
            TunnelType::Gue => IpvsTunnelType::GUE,
            TunnelType::Gre => IpvsTunnelType::GRE,
        };
        c.tun_port = t.port;
        let mut flags = TunnelFlags::NOCSUM.0;
        if t.checksum {
            flags |= TunnelFlags::CSUM.0;
        }
        if t.remote_checksum {
            flags |= TunnelFlags::REMCSUM.0;
        }
        c.tun_flags = TunnelFlags(flags);
    }
    c
}

/// A destination found in the kernel, as a plan would hold it (weight
/// included), so that one the plan no longer has can be put back in it
/// while it drains. `None` for forwarding methods the agent never sets.
/// `dest_config` of the result programs the same as `c` (see
/// [`DestConfig::same_as`]).
pub fn planned_destination(key: DestKey, c: &DestConfig) -> Option<PlannedDestination> {
    let method = match c.fwd {
        FwdMethod::Masq => ForwardingMethod::Nat,
        FwdMethod::DirectRoute => ForwardingMethod::Dr,
        FwdMethod::Tunnel => ForwardingMethod::Tun,
        FwdMethod::Local | FwdMethod::Bypass => return None,
    };
    let tunnel = (method == ForwardingMethod::Tun).then_some(lvs_planner::PlannedTunnel {
        type_: match c.tun_type {
            IpvsTunnelType::GUE => TunnelType::Gue,
            IpvsTunnelType::GRE => TunnelType::Gre,
            _ => TunnelType::Ipip,
        },
        port: c.tun_port,
        checksum: c.tun_flags.0 & TunnelFlags::CSUM.0 != 0,
        remote_checksum: c.tun_flags.0 & TunnelFlags::REMCSUM.0 != 0,
    });
    Some(PlannedDestination {
        addr: key.addr,
        port: key.port,
        method,
        weight: c.weight,
        upper_threshold: c.u_threshold,
        lower_threshold: c.l_threshold,
        tunnel,
        owner: std::sync::Arc::from(""),
        node: None,
        state: lvs_api::RealServerState::Active,
    })
}

/// The device kind behind a planned tunnel endpoint. GUE packets are
/// decapsulated by fou and then handled by the ipip (or ip6tnl) device.
pub fn tunnel_kind(type_: TunnelType, ipv6: bool) -> TunnelKind {
    match (type_, ipv6) {
        (TunnelType::Ipip | TunnelType::Gue, false) => TunnelKind::Ipip,
        (TunnelType::Ipip | TunnelType::Gue, true) => TunnelKind::Ip6tnl,
        (TunnelType::Gre, false) => TunnelKind::Gre,
        (TunnelType::Gre, true) => TunnelKind::Ip6gre,
    }
}

fn host_prefix(addr: &IpAddr) -> u8 {
    if addr.is_ipv6() { 128 } else { 32 }
}

fn vip_address(interface: &str, addr: IpAddr, scope: Scope) -> Address {
    Address {
        interface: interface.to_string(),
        addr,
        prefix_len: host_prefix(&addr),
        label: if addr.is_ipv4() {
            owned_label(interface)
        } else {
            None
        },
        scope,
        kind: AddrKind::Interface,
    }
}

/// A director's VIP: an address, or in [`VipMode::LocalRoute`] (IPv4) a
/// local route through the interface.
fn director_vip(interface: &str, addr: IpAddr, mode: VipMode) -> Address {
    match (mode, addr) {
        (VipMode::LocalRoute, IpAddr::V4(_)) => Address {
            interface: interface.to_string(),
            addr,
            prefix_len: 32,
            label: None,
            scope: Scope::Host,
            kind: AddrKind::LocalRoute,
        },
        _ => vip_address(interface, addr, Scope::Global),
    }
}

/// The interface that holds one of `node_ips` (the family of `vip` first).
pub fn director_interface<'a>(
    vip: &IpAddr,
    node_ips: &[IpAddr],
    addresses: impl Iterator<Item = &'a Address> + Clone,
) -> Option<String> {
    let mut ips: Vec<&IpAddr> = node_ips
        .iter()
        .filter(|ip| ip.is_ipv6() == vip.is_ipv6())
        .collect();
    ips.extend(node_ips.iter().filter(|ip| ip.is_ipv6() != vip.is_ipv6()));
    ips.into_iter().find_map(|ip| {
        addresses
            .clone()
            .find(|a| a.addr == *ip)
            .map(|a| a.interface.clone())
    })
}

/// Why no interface was found for the node: `unknown` without node IPs,
/// else the IPs that no interface holds.
pub fn no_node_interface(node_ips: &[IpAddr], unknown: &str) -> String {
    if node_ips.is_empty() {
        return unknown.to_string();
    }
    let ips: Vec<String> = node_ips.iter().map(ToString::to_string).collect();
    format!(
        "no interface holds the node's InternalIP ({})",
        ips.join(", ")
    )
}

/// Turns the plan into kernel objects.
pub fn desired<'a>(
    plan: &NodePlan,
    node_ips: &[IpAddr],
    addresses: impl Iterator<Item = &'a Address> + Clone,
    vip_mode: VipMode,
) -> Desired {
    let mut d = Desired::default();
    for s in &plan.services {
        let dests = s
            .destinations
            .iter()
            .map(|pd| {
                (
                    DestKey {
                        addr: pd.addr,
                        port: pd.port,
                    },
                    dest_config(pd),
                )
            })
            .collect();
        d.services.insert(
            service_key(&s.key),
            DesiredService {
                config: service_config(s),
                dests,
                owner: s.owner.clone(),
                generation: s.generation,
            },
        );
    }

    let add = |d: &mut Desired, a: Address, owners: BTreeSet<String>| {
        let e = d
            .addresses
            .entry(a.key())
            .or_insert_with(|| DesiredAddress {
                address: a,
                owners: BTreeSet::new(),
                needs_service: false,
                fwmarks: BTreeSet::new(),
            });
        e.needs_service |= !owners.is_empty() && e.address.interface != LOOPBACK;
        e.owners.extend(owners);
    };

    // Owners per VIP address, and the director interface per family: each
    // looked up once, not once per VIP.
    let mut vip_owners: HashMap<IpAddr, BTreeSet<String>> = HashMap::new();
    let mut vip_fwmarks: HashMap<IpAddr, BTreeSet<ServiceKey>> = HashMap::new();
    for s in &plan.services {
        if let PlannedKey::Tuple { addr, .. } = s.key {
            vip_owners.entry(addr).or_default().insert(s.owner.clone());
        }
    }
    for m in &plan.marks {
        let key = PlannedKey::Fwmark {
            mark: m.mark,
            ipv6: m.ipv6,
        };
        let owner = plan
            .services
            .binary_search_by(|s| s.key.cmp(&key))
            .ok()
            .map(|i| plan.services[i].owner.clone());
        for a in &m.addresses {
            vip_owners.entry(*a).or_default().extend(owner.clone());
            vip_fwmarks.entry(*a).or_default().insert(service_key(&key));
        }
    }
    let mut by_family: [Option<Option<String>>; 2] = [None, None];
    for vip in &plan.vips {
        let owners = vip_owners.get(&vip.addr).cloned().unwrap_or_default();
        let interface = match &vip.interface {
            Some(i) => Some(i.clone()),
            None => by_family[usize::from(vip.addr.is_ipv6())]
                .get_or_insert_with(|| director_interface(&vip.addr, node_ips, addresses.clone()))
                .clone(),
        };
        match interface {
            Some(i) => {
                let a = director_vip(&i, vip.addr, vip_mode);
                let key = a.key();
                add(&mut d, a, owners);
                if let (Some(e), Some(f)) = (d.addresses.get_mut(&key), vip_fwmarks.get(&vip.addr))
                {
                    e.fwmarks.extend(f.iter().copied());
                }
            }
            None => {
                let why = no_node_interface(
                    node_ips,
                    "the node's InternalIP is unknown (no Node manifest with status.addresses for this node, and no --node-ip)",
                );
                d.errors.extend(SyncError::for_owners(
                    ErrorKind::Interface,
                    owners,
                    format!("VIP {}: directors.interface is unset and {why}", vip.addr),
                ));
            }
        }
    }

    for vip in &plan.loopback_vips {
        let scope = if vip.is_ipv4() {
            Scope::Host
        } else {
            Scope::Global
        };
        add(&mut d, vip_address(LOOPBACK, *vip, scope), BTreeSet::new());
    }

    for t in &plan.tunnels {
        let kind = tunnel_kind(t.type_, t.ipv6);
        d.tunnels.insert(
            t.device.clone(),
            TunnelDevice {
                name: t.device.clone(),
                kind,
                local: t.local,
            },
        );
        if t.type_ == TunnelType::Gue && t.port != 0 {
            d.fou_ports.insert(FouPort {
                port: t.port,
                ipv6: t.ipv6,
            });
        }
        for vip in &t.vips {
            add(
                &mut d,
                vip_address(&t.device, *vip, Scope::Global),
                BTreeSet::new(),
            );
        }
    }

    for addr in &plan.gre_checksum_conflicts {
        d.errors.push(SyncError::new(
            ErrorKind::TunnelConflict,
            None,
            format!(
                "realserver address {addr} receives GRE both with and without a checksum \
                 (tunnel.checksum.enabled differs between the VirtualServices that tunnel GRE \
                 to it): the kernel hands all GRE to {addr} to device {}, which drops packets \
                 without a checksum; expected one checksum setting per realserver address",
                lvs_planner::gre_checksum_device(*addr)
            ),
        ));
    }

    for s in &plan.sysctls {
        d.sysctls.insert(s.key.to_string(), s.value.to_string());
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvs_api::Scheduler;
    use lvs_planner::{PlannedPersistence, PlannedTunnel, PlannedVip};

    fn svc(addr: &str, persistence: Option<u8>) -> PlannedService {
        PlannedService {
            key: PlannedKey::Tuple {
                addr: addr.parse().unwrap(),
                protocol: ApiProtocol::Udp,
                port: 53,
            },
            scheduler: Scheduler::Sh,
            flags: vec![SchedulerFlag::ShFallback, SchedulerFlag::ShPort],
            persistence: persistence.map(|p| PlannedPersistence {
                timeout_seconds: 300,
                prefix_length: p,
            }),
            destinations: vec![PlannedDestination {
                addr: "10.1.0.1".parse().unwrap(),
                port: 0,
                method: ForwardingMethod::Tun,
                weight: 3,
                upper_threshold: 10,
                lower_threshold: 2,
                tunnel: Some(PlannedTunnel {
                    type_: TunnelType::Gue,
                    port: 6080,
                    checksum: true,
                    remote_checksum: true,
                }),
                owner: "ns/rs".into(),
                node: None,
                state: lvs_api::RealServerState::Active,
            }],
            owner: "ns/dns".into(),
            generation: Some(4),
            health: None,
            sorry_server: None,
            quorum: 1,
            drain_timeout_seconds: 0,
        }
    }

    #[test]
    fn service_fields_map_to_ipvs_values() {
        let s = svc("10.0.0.1", Some(24));
        let c = service_config(&s);
        assert_eq!(c.scheduler, "sh");
        assert_eq!(c.flags.bits(), 0x0001 | 0x0008 | 0x0010);
        assert_eq!(c.timeout, 300);
        assert_eq!(c.netmask, 0xffff_ff00);
        assert_eq!(c.pe_name, None);
        let c = service_config(&svc("fd00::1", None));
        assert_eq!(
            (c.flags.bits(), c.timeout, c.netmask),
            (0x0008 | 0x0010, 0, 128)
        );
        assert_eq!(service_config(&svc("10.0.0.1", None)).netmask, u32::MAX);
        assert_eq!(service_config(&svc("10.0.0.1", Some(0))).netmask, 0);
        let mut ops = svc("10.0.0.1", None);
        ops.flags = vec![SchedulerFlag::OnePacket];
        // IP_VS_SVC_F_ONEPACKET (ipvsadm -o).
        assert_eq!(service_config(&ops).flags.bits(), 0x0004);

        let d = dest_config(&s.destinations[0]);
        assert_eq!(d.fwd, FwdMethod::Tunnel);
        assert_eq!((d.weight, d.u_threshold, d.l_threshold), (3, 10, 2));
        assert_eq!(
            (d.tun_type, d.tun_port, d.tun_flags),
            (IpvsTunnelType::GUE, 6080, TunnelFlags(3))
        );
        assert_eq!(
            service_key(&s.key),
            ServiceKey::Tuple {
                addr: "10.0.0.1".parse().unwrap(),
                protocol: Protocol::UDP,
                port: 53
            }
        );
    }

    #[test]
    fn director_vip_goes_on_the_interface_holding_the_internal_ip() {
        let plan = NodePlan {
            node: "n1".into(),
            services: vec![svc("10.0.0.1", None)],
            vips: vec![
                PlannedVip {
                    addr: "10.0.0.1".parse().unwrap(),
                    interface: None,
                    directors: Vec::new(),
                },
                PlannedVip {
                    addr: "10.0.0.2".parse().unwrap(),
                    interface: Some("bond0".into()),
                    directors: Vec::new(),
                },
            ],
            ..Default::default()
        };
        let addrs = [Address {
            interface: "ens3".into(),
            addr: "192.0.2.7".parse().unwrap(),
            prefix_len: 24,
            label: None,
            scope: Scope::Global,
            kind: AddrKind::Interface,
        }];
        let node_ips: Vec<IpAddr> = vec!["fd00::7".parse().unwrap(), "192.0.2.7".parse().unwrap()];
        let d = desired(&plan, &node_ips, addrs.iter(), VipMode::Address);
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        let by_addr = |a: &str| {
            d.addresses
                .values()
                .find(|x| x.address.addr == a.parse::<IpAddr>().unwrap())
                .unwrap()
        };
        let first = by_addr("10.0.0.1");
        assert_eq!(first.address.interface, "ens3");
        assert_eq!(first.address.label.as_deref(), Some("ens3:lvs"));
        assert_eq!(first.address.prefix_len, 32);
        assert_eq!(first.owners, BTreeSet::from(["ns/dns".to_string()]));
        assert_eq!(by_addr("10.0.0.2").address.interface, "bond0");
        assert_eq!(first.address.kind, AddrKind::Interface);

        // Route mode: IPv4 director VIPs become local routes, IPv6 ones and
        // loopback VIPs stay addresses.
        let mut plan6 = plan.clone();
        plan6.vips.push(PlannedVip {
            addr: "fd00::10".parse().unwrap(),
            interface: Some("ens3".into()),
            directors: Vec::new(),
        });
        plan6.loopback_vips.push("10.0.0.9".parse().unwrap());
        let d = desired(&plan6, &node_ips, addrs.iter(), VipMode::LocalRoute);
        let kind = |a: &str| {
            let x = d
                .addresses
                .values()
                .find(|x| x.address.addr == a.parse::<IpAddr>().unwrap())
                .unwrap();
            (
                x.address.kind,
                x.address.interface.clone(),
                x.address.label.clone(),
            )
        };
        assert_eq!(
            kind("10.0.0.1"),
            (AddrKind::LocalRoute, "ens3".into(), None)
        );
        assert_eq!(
            kind("10.0.0.2"),
            (AddrKind::LocalRoute, "bond0".into(), None)
        );
        assert_eq!(kind("fd00::10").0, AddrKind::Interface);
        assert_eq!(
            kind("10.0.0.9"),
            (AddrKind::Interface, "lo".into(), Some("lo:lvs".into()))
        );

        // Unknown InternalIP: an interface error naming the service, no address.
        let d = desired(&plan, &[], addrs.iter(), VipMode::Address);
        assert_eq!(d.addresses.len(), 1);
        assert_eq!(d.errors.len(), 1);
        assert_eq!(d.errors[0].kind, ErrorKind::Interface);
        assert_eq!(d.errors[0].owner.as_deref(), Some("ns/dns"));
        assert!(
            d.errors[0].message.contains("InternalIP is unknown"),
            "{}",
            d.errors[0]
        );
    }

    #[test]
    fn long_interface_names_get_no_label() {
        assert_eq!(owned_label("lo").as_deref(), Some("lo:lvs"));
        assert_eq!(owned_label("enp0s31f6x").as_deref(), Some("enp0s31f6x:lvs"));
        assert_eq!(owned_label("enp0s31f6xyz"), None);
    }

    #[test]
    fn a_kernel_destination_reads_back_as_the_planned_one() {
        let tun = svc("10.0.0.1", None).destinations[0].clone();
        let mut plain = tun.clone();
        plain.tunnel = None;
        let mut cases = vec![tun];
        for (method, tunnel) in [
            (ForwardingMethod::Nat, None),
            (ForwardingMethod::Dr, None),
            (ForwardingMethod::Tun, None),
            (
                ForwardingMethod::Tun,
                Some(PlannedTunnel {
                    type_: TunnelType::Gre,
                    port: 0,
                    checksum: false,
                    remote_checksum: false,
                }),
            ),
        ] {
            cases.push(PlannedDestination {
                method,
                tunnel,
                ..plain.clone()
            });
        }
        for d in cases {
            let c = dest_config(&d);
            let key = DestKey {
                addr: d.addr,
                port: d.port,
            };
            let back = planned_destination(key, &c).expect("a method the agent sets");
            assert!(
                dest_config(&back).same_as(&c),
                "{d:?} came back as {back:?}"
            );
            assert_eq!(
                (back.addr, back.port, back.weight),
                (d.addr, d.port, d.weight)
            );
        }
        let local = DestConfig::new(FwdMethod::Local, 1);
        let key = DestKey {
            addr: "10.1.0.1".parse().unwrap(),
            port: 80,
        };
        assert_eq!(planned_destination(key, &local), None);
    }

    #[test]
    fn a_checksum_gre_endpoint_becomes_a_device_of_the_agent_and_a_conflict_an_error() {
        let local: IpAddr = "10.0.2.15".parse().unwrap();
        let dev = lvs_planner::gre_checksum_device(local);
        let plan = NodePlan {
            node: "rs5".into(),
            tunnels: vec![lvs_planner::PlannedTunnelEndpoint {
                device: dev.clone(),
                type_: TunnelType::Gre,
                ipv6: false,
                port: 0,
                local: Some(local),
                vips: vec!["203.0.113.34".parse().unwrap()],
            }],
            ..NodePlan::default()
        };
        let d = desired(&plan, &[], std::iter::empty(), VipMode::Address);
        assert_eq!(
            d.tunnels.get(&dev),
            Some(&TunnelDevice {
                name: dev.clone(),
                kind: TunnelKind::Gre,
                local: Some(local),
            })
        );
        assert!(d.addresses.values().any(|a| a.address.interface == dev));
        assert!(d.errors.is_empty(), "{:?}", d.errors);

        let conflicting = NodePlan {
            gre_checksum_conflicts: vec![local],
            ..plan
        };
        let d = desired(&conflicting, &[], std::iter::empty(), VipMode::Address);
        assert_eq!(d.errors.len(), 1);
        assert_eq!(d.errors[0].kind, ErrorKind::TunnelConflict);
        assert_eq!(d.errors[0].owner, None);
        let msg = &d.errors[0].message;
        assert!(
            msg.contains("10.0.2.15") && msg.contains(&dev) && msg.contains("expected"),
            "{msg}"
        );
    }
}
