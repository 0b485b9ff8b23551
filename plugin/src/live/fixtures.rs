//! Test data for the views: three VirtualServices (IPv4 NAT, IPv6 UDP DR,
//! a firewall mark), two directors (dir1 with HA roles answering, dir2
//! behind and without an answer) and a realserver node.

use std::collections::BTreeMap;
use std::time::Duration;

use lvs_api::{
    DestinationReport, DestinationState, DirectorRole, Family, ForwardingMethod, FwmarkMatch,
    LiveDestination, LiveService, LvsNode, LvsNodeSpec, LvsNodeStatus, LvsSnapshotStatus, Protocol,
    Scheduler, ServiceReport, TrafficCounters, VipRole, VirtualService, VirtualServiceSpec,
};

use super::Answer;

/// Counters whose fields differ, from `n`.
pub fn counters(n: u64) -> TrafficCounters {
    TrafficCounters {
        active_connections: n,
        inactive_connections: n + 1,
        connections: n * 10,
        in_packets: n * 100,
        out_packets: n * 90,
        in_bytes: n * 10_000,
        out_bytes: n * 90_000,
        cps: n / 2,
        in_pps: n * 3,
        out_pps: n * 2,
        in_bps: n * 300,
        out_bps: n * 2_000,
    }
}

fn vs(ns: &str, name: &str, generation: i64, spec: VirtualServiceSpec) -> VirtualService {
    let mut v = VirtualService::new(name, spec);
    v.metadata.namespace = Some(ns.to_string());
    v.metadata.generation = Some(generation);
    v
}

pub fn services() -> Vec<VirtualService> {
    vec![
        vs(
            "default",
            "web",
            3,
            VirtualServiceSpec {
                address: Some("192.0.2.10".into()),
                port: Some(80),
                protocol: Some(Protocol::Tcp),
                scheduler: Scheduler::Rr,
                forwarding: ForwardingMethod::Nat,
                ..VirtualServiceSpec::default()
            },
        ),
        vs(
            "prod",
            "mark",
            1,
            VirtualServiceSpec {
                fwmark: Some(7),
                family: Some(Family::IPv6),
                fwmark_match: Some(Box::new(FwmarkMatch {
                    addresses: vec!["2001:db8::7".into()],
                    protocol: Protocol::Tcp,
                    ports: Vec::new(),
                })),
                scheduler: Scheduler::Sh,
                forwarding: ForwardingMethod::Tun,
                ..VirtualServiceSpec::default()
            },
        ),
        vs(
            "default",
            "dns6",
            1,
            VirtualServiceSpec {
                // Not in canonical form: the role is found all the same.
                address: Some("2001:db8:0::53".into()),
                port: Some(53),
                protocol: Some(Protocol::Udp),
                scheduler: Scheduler::Wlc,
                forwarding: ForwardingMethod::Dr,
                ..VirtualServiceSpec::default()
            },
        ),
    ]
}

fn report(name: &str, generation: i64, role: &str) -> ServiceReport {
    ServiceReport {
        name: name.into(),
        generation: Some(generation),
        roles: vec![role.into()],
        table_hash: (role == "director").then(|| format!("{:016x}", generation * 0x1111)),
        ..ServiceReport::default()
    }
}

fn node(name: &str, status: LvsNodeStatus) -> LvsNode {
    let mut n = LvsNode::new(
        name,
        LvsNodeSpec {
            node_name: name.into(),
        },
    );
    n.status = Some(status);
    n
}

pub fn nodes() -> Vec<LvsNode> {
    let mut web = report("default/web", 3, "director");
    web.destinations = vec![
        DestinationReport {
            destination: "10.0.0.3:80".into(),
            state: DestinationState::Failing,
            ..DestinationReport::default()
        },
        // Removed from the kernel by its health check.
        DestinationReport {
            destination: "10.0.0.4:80".into(),
            state: DestinationState::Failing,
            ..DestinationReport::default()
        },
    ];
    vec![
        node(
            "dir1",
            LvsNodeStatus {
                services: vec![
                    report("default/dns6", 1, "director"),
                    web,
                    report("prod/mark", 1, "director"),
                ],
                vips: vec![
                    VipRole {
                        address: "192.0.2.10".into(),
                        role: DirectorRole::Active,
                        since: None,
                    },
                    VipRole {
                        address: "2001:db8::53".into(),
                        role: DirectorRole::Standby,
                        since: None,
                    },
                ],
                ..LvsNodeStatus::default()
            },
        ),
        node(
            "dir2",
            LvsNodeStatus {
                services: vec![report("default/web", 2, "director")],
                ..LvsNodeStatus::default()
            },
        ),
        node(
            "rs1",
            LvsNodeStatus {
                services: vec![report("default/dns6", 1, "dr-realserver")],
                ..LvsNodeStatus::default()
            },
        ),
    ]
}

fn dest(d: &str, method: &str, weight: i32, n: u64) -> LiveDestination {
    LiveDestination {
        destination: d.into(),
        method: method.into(),
        weight,
        counters: counters(n),
        ..LiveDestination::default()
    }
}

/// dir1's answer: its three services and a foreign one.
pub fn dir1_answer() -> LvsSnapshotStatus {
    let mut tun = dest("[2001:db8:1::9]:0", "Tunnel", 1, 4);
    tun.tunnel = "gre csum".into();
    LvsSnapshotStatus {
        request: "t1".into(),
        time: "2026-12-06T17:00:00.123Z".into(),
        services: vec![
            LiveService {
                service: "TCP 192.0.2.10:80".into(),
                owner: "default/web".into(),
                scheduler: "rr".into(),
                counters: counters(3),
                destinations: vec![
                    dest("10.0.0.2:80", "Masq", 1, 2),
                    dest("10.0.0.3:80", "Masq", 0, 1),
                ],
                ..LiveService::default()
            },
            LiveService {
                service: "TCP 192.0.2.99:80".into(),
                scheduler: "wlc".into(),
                counters: counters(0),
                ..LiveService::default()
            },
            LiveService {
                service: "UDP [2001:db8::53]:53".into(),
                owner: "default/dns6".into(),
                scheduler: "wlc".into(),
                counters: counters(20),
                destinations: vec![dest("[2001:db8::1]:53", "Route", 5, 20)],
                ..LiveService::default()
            },
            LiveService {
                service: "FWM 7 IPv6".into(),
                owner: "prod/mark".into(),
                scheduler: "sh".into(),
                flags: vec!["sh-fallback".into(), "sh-port".into()],
                persistence: Some(300),
                netmask: Some("128".into()),
                counters: counters(4),
                destinations: vec![tun],
            },
        ],
        ..LvsSnapshotStatus::default()
    }
}

/// The error of a node that did not answer in time.
pub fn no_answer_from(node: &str) -> String {
    crate::cluster::no_answer(node, Duration::from_secs(10), "old", None)
}

pub fn answers() -> BTreeMap<String, Answer> {
    BTreeMap::from([
        ("dir1".to_string(), Ok(dir1_answer())),
        ("dir2".to_string(), Err(no_answer_from("dir2"))),
    ])
}
