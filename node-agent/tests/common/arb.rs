//! Random node plans for property tests, and the check that a fake kernel
//! holds a plan exactly (plus the foreign rules the tests plant).

use std::collections::BTreeMap;

use super::*;
use lvs_api::{ForwardingMethod, Protocol, Scheduler, SchedulerFlag, TunnelType};
use lvs_ipvs::{DestConfig, DestKey, Family, FwdMethod, ServiceConfig};
use lvs_node_agent::dataplane::fake::{FakeDataplane, FakeService};
use lvs_node_agent::desired::desired;
use lvs_node_agent::kernel::{AddrKind, VipMode};
use lvs_planner::{
    NodePlan, PlannedDestination, PlannedPersistence, PlannedService, PlannedTunnel,
    PlannedTunnelEndpoint, PlannedVip, ServiceKey, Sysctl,
};
use proptest::prelude::*;

pub fn arb_dest() -> impl Strategy<Value = PlannedDestination> {
    (
        0u8..6,
        prop::sample::select(vec![80u16, 8080]),
        prop::sample::select(vec![
            ForwardingMethod::Nat,
            ForwardingMethod::Dr,
            ForwardingMethod::Tun,
        ]),
        0u32..5,
        0u32..3,
        any::<bool>(),
    )
        .prop_map(|(a, port, method, weight, thr, csum)| PlannedDestination {
            addr: ip(&format!("10.1.0.{}", a + 1)),
            port,
            method,
            weight,
            upper_threshold: thr * 10,
            lower_threshold: thr,
            tunnel: (method == ForwardingMethod::Tun).then_some(PlannedTunnel {
                type_: if csum {
                    TunnelType::Gue
                } else {
                    TunnelType::Ipip
                },
                port: if csum { 6080 } else { 0 },
                checksum: csum,
                remote_checksum: false,
            }),
            owner: format!("default/rs{a}").into(),
            node: None,
            state: lvs_api::RealServerState::Active,
        })
}

pub fn arb_key() -> impl Strategy<Value = ServiceKey> {
    prop_oneof![
        (
            0u8..4,
            prop::sample::select(vec![Protocol::Tcp, Protocol::Udp]),
            prop::sample::select(vec![80u16, 443])
        )
            .prop_map(|(a, protocol, port)| ServiceKey::Tuple {
                addr: ip(&format!("10.0.0.{}", a + 1)),
                protocol,
                port,
            }),
        (1u32..3, any::<bool>()).prop_map(|(mark, ipv6)| ServiceKey::Fwmark { mark, ipv6 }),
    ]
}

pub fn arb_service() -> impl Strategy<Value = PlannedService> {
    (
        arb_key(),
        prop::sample::select(vec![Scheduler::Rr, Scheduler::Wlc, Scheduler::Sh]),
        any::<bool>(),
        prop::option::of((1u32..1000, 16u8..33)),
        prop::collection::vec(arb_dest(), 0..5),
        0u8..3,
    )
        .prop_map(|(key, scheduler, flag, persistence, dests, owner)| {
            let mut destinations: BTreeMap<(std::net::IpAddr, u16), PlannedDestination> =
                BTreeMap::new();
            for d in dests {
                destinations.insert((d.addr, d.port), d);
            }
            PlannedService {
                key,
                scheduler,
                flags: match (flag, scheduler) {
                    (false, _) => vec![],
                    (true, Scheduler::Sh) => vec![SchedulerFlag::ShPort],
                    (true, _) => vec![SchedulerFlag::OnePacket],
                },
                persistence: persistence.map(|(timeout_seconds, prefix_length)| {
                    PlannedPersistence {
                        timeout_seconds,
                        prefix_length,
                    }
                }),
                destinations: destinations.into_values().collect(),
                owner: format!("default/vs{owner}"),
                generation: Some(1),
                health: None,
                sorry_server: None,
                quorum: 1,
                drain_timeout_seconds: 0,
            }
        })
}

pub fn arb_plan() -> impl Strategy<Value = NodePlan> {
    (
        prop::collection::vec(arb_service(), 0..6),
        any::<bool>(),
        prop::collection::btree_set(0u8..4, 0..3),
        prop::collection::btree_set(0u8..4, 0..3),
        prop::collection::btree_map(
            prop::sample::select(vec![
                "net/ipv4/ip_forward",
                "net/ipv4/vs/conntrack",
                "net/ipv4/conf/all/arp_ignore",
                "net/ipv4/conf/all/rp_filter",
            ]),
            0u8..3,
            0..4,
        ),
    )
        .prop_map(|(services, on_eth0, lo, tun, sysctls)| {
            let mut by_key: BTreeMap<ServiceKey, PlannedService> = BTreeMap::new();
            for s in services {
                by_key.insert(s.key, s);
            }
            let services: Vec<PlannedService> = by_key.into_values().collect();
            let mut vips: Vec<PlannedVip> = services
                .iter()
                .filter_map(|s| match s.key {
                    ServiceKey::Tuple { addr, .. } => Some(PlannedVip {
                        addr,
                        interface: on_eth0.then(|| "eth0".to_string()),
                        directors: Vec::new(),
                    }),
                    ServiceKey::Fwmark { .. } => None,
                })
                .collect();
            vips.sort();
            vips.dedup();
            let mut tunnels = if tun.is_empty() {
                vec![]
            } else {
                vec![PlannedTunnelEndpoint {
                    device: "tunl0".into(),
                    type_: TunnelType::Ipip,
                    ipv6: false,
                    port: 0,
                    local: None,
                    vips: tun.iter().map(|i| ip(&format!("10.0.2.{i}"))).collect(),
                }]
            };
            // With several tunnel VIPs, the first also arrives as GRE with a
            // checksum, on a device the agent creates and deletes.
            if tun.len() > 1 {
                let local = ip("10.0.3.1");
                tunnels.push(PlannedTunnelEndpoint {
                    device: lvs_planner::gre_checksum_device(local),
                    type_: TunnelType::Gre,
                    ipv6: false,
                    port: 0,
                    local: Some(local),
                    vips: tun
                        .iter()
                        .take(1)
                        .map(|i| ip(&format!("10.0.2.{i}")))
                        .collect(),
                });
            }
            // Every other service is source-NATed.
            let source_nat = services.iter().step_by(2).map(|s| s.key).collect();
            NodePlan {
                node: "n1".into(),
                source_nat,
                services,
                vips,
                loopback_vips: lo.iter().map(|i| ip(&format!("10.0.1.{i}"))).collect(),
                marks: vec![],
                tunnels,
                gre_checksum_conflicts: vec![],
                sysctls: sysctls
                    .into_iter()
                    .map(|(k, v)| Sysctl::new(k, v.to_string()))
                    .collect(),
            }
        })
}

pub fn foreign() -> (lvs_ipvs::ServiceKey, FakeService) {
    let mut dests = BTreeMap::new();
    dests.insert(
        DestKey {
            addr: ip("10.9.0.1"),
            port: 80,
        },
        DestConfig::new(FwdMethod::DirectRoute, 1),
    );
    (
        tcp("10.9.0.9", 80),
        FakeService {
            config: ServiceConfig::new(Family::V4, "rr"),
            dests,
        },
    )
}

/// The fake holds exactly the plan (plus the foreign service).
pub fn assert_matches(
    f: &FakeDataplane,
    plan: &NodePlan,
    mode: VipMode,
) -> Result<(), TestCaseError> {
    let want = desired(plan, &node_ips(), f.addresses.iter(), mode);
    let (fk, fs) = foreign();
    prop_assert_eq!(f.ipvs.get(&fk), Some(&fs));
    // The source NAT table holds exactly the plan's services, or is gone.
    let snat = f.nft_tables.get(&FakeDataplane::nft_table_name());
    if plan.source_nat.is_empty() {
        prop_assert_eq!(snat, None);
    } else {
        let mut want: Vec<String> = plan.source_nat.iter().map(|k| k.to_string()).collect();
        want.sort();
        prop_assert_eq!(snat, Some(&want));
    }
    let ours: BTreeMap<_, _> = f.ipvs.iter().filter(|(k, _)| **k != fk).collect();
    prop_assert_eq!(ours.len(), want.services.len());
    for (k, ds) in &want.services {
        let got = ours.get(k).expect("service programmed");
        prop_assert_eq!(&got.config, &ds.config);
        prop_assert_eq!(got.dests.len(), ds.dests.len());
        for (dk, dc) in &ds.dests {
            prop_assert!(got.dests[dk].same_as(dc), "{:?} vs {:?}", got.dests[dk], dc);
        }
    }
    for a in want.addresses.values() {
        prop_assert!(
            f.addresses
                .iter()
                .any(|x| x.key() == a.address.key() && x.kind == a.address.kind),
            "missing {} ({:?})",
            a.address.key(),
            a.address.kind
        );
    }
    // No address or local route of ours beyond the plan.
    for x in &f.addresses {
        if x.kind == AddrKind::LocalRoute || x.label.as_deref().is_some_and(|l| l.ends_with(":lvs"))
        {
            prop_assert!(want.addresses.contains_key(&x.key()), "extra {}", x.key());
        }
    }
    for (k, v) in &want.sysctls {
        // The fake reads unset keys as "0", like a fresh namespace.
        prop_assert_eq!(
            f.sysctls.get(k).map(String::as_str).unwrap_or("0"),
            v.as_str()
        );
    }
    for t in want.tunnels.keys() {
        prop_assert!(f.links[t].up);
    }
    Ok(())
}
