//! Plans built by hand, and a reconciler over the fake kernel.
#![allow(dead_code)]

pub mod arb;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use lvs_api::{ForwardingMethod, Protocol, Scheduler, TunnelType};
use lvs_node_agent::dataplane::fake::FakeDataplane;
use lvs_node_agent::ledger::LedgerStore;
use lvs_node_agent::reconcile::{Reconciler, SyncInput};
use lvs_node_agent::report::SyncReport;
use lvs_planner::{
    NodePlan, PlannedDestination, PlannedService, PlannedTunnel, PlannedTunnelEndpoint, PlannedVip,
    ServiceKey, Sysctl,
};

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The fake node's InternalIP (on eth0).
pub fn node_ips() -> Vec<IpAddr> {
    vec![ip("192.0.2.10")]
}

pub fn dest(addr: &str, port: u16, weight: u32, method: ForwardingMethod) -> PlannedDestination {
    PlannedDestination {
        addr: ip(addr),
        port,
        method,
        weight,
        upper_threshold: 0,
        lower_threshold: 0,
        tunnel: (method == ForwardingMethod::Tun).then_some(PlannedTunnel {
            type_: TunnelType::Ipip,
            port: 0,
            checksum: false,
            remote_checksum: false,
        }),
        owner: format!("default/rs-{addr}").into(),
        node: None,
        state: lvs_api::RealServerState::Active,
    }
}

pub fn service(
    owner: &str,
    vip: &str,
    port: u16,
    dests: Vec<PlannedDestination>,
) -> PlannedService {
    PlannedService {
        key: ServiceKey::Tuple {
            addr: ip(vip),
            protocol: Protocol::Tcp,
            port,
        },
        scheduler: Scheduler::Wlc,
        flags: vec![],
        persistence: None,
        destinations: dests,
        owner: format!("default/{owner}"),
        generation: Some(1),
        health: None,
        sorry_server: None,
        quorum: 1,
        drain_timeout_seconds: 0,
    }
}

pub fn tcp(vip: &str, port: u16) -> lvs_ipvs::ServiceKey {
    lvs_ipvs::ServiceKey::Tuple {
        addr: ip(vip),
        protocol: lvs_ipvs::Protocol::TCP,
        port,
    }
}

/// A director plan: the services, their VIPs on the default interface, and
/// the NAT director sysctls.
pub fn director(services: Vec<PlannedService>) -> NodePlan {
    let mut vips: Vec<PlannedVip> = services
        .iter()
        .filter_map(|s| match s.key {
            ServiceKey::Tuple { addr, .. } => Some(PlannedVip {
                addr,
                interface: None,
                directors: Vec::new(),
            }),
            ServiceKey::Fwmark { .. } => None,
        })
        .collect();
    vips.sort();
    vips.dedup();
    let sysctls = if services.is_empty() {
        vec![]
    } else {
        vec![
            Sysctl::new("net/ipv4/ip_forward", "1"),
            Sysctl::new("net/ipv4/vs/conntrack", "1"),
        ]
    };
    let mut services = services;
    services.sort();
    NodePlan {
        node: "n1".into(),
        services,
        vips,
        sysctls,
        ..Default::default()
    }
}

/// A TUN realserver plan for one VIP on tunl0.
pub fn tun_realserver(vip: &str) -> NodePlan {
    NodePlan {
        node: "n1".into(),
        tunnels: vec![PlannedTunnelEndpoint {
            device: "tunl0".into(),
            type_: TunnelType::Ipip,
            ipv6: false,
            port: 0,
            local: None,
            vips: vec![ip(vip)],
        }],
        sysctls: vec![
            Sysctl::new("net/ipv4/conf/all/rp_filter", "2"),
            Sysctl::new("net/ipv4/conf/tunl0/rp_filter", "2"),
        ],
        ..Default::default()
    }
}

/// A scratch directory for one test, removed when it goes out of scope
/// (also when the test panics).
pub struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh, empty scratch directory named after the test's tag, process and
/// thread.
pub fn temp_dir(tag: &str) -> TempDir {
    let d = std::env::temp_dir().join(format!(
        "lvs-agent-it-{tag}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    TempDir(d)
}

pub fn reconciler(fake: FakeDataplane, state: &Path) -> Reconciler<FakeDataplane> {
    Reconciler::new(fake, LedgerStore::in_dir(state).unwrap()).unwrap()
}

pub fn sync(r: &mut Reconciler<FakeDataplane>, plan: &NodePlan, full: bool) -> SyncReport {
    let ips = node_ips();
    r.dataplane_mut().take_calls();
    r.sync(
        SyncInput {
            plan,
            node_ips: &ips,
            directs: !plan.services.is_empty(),
        },
        full,
    )
}
