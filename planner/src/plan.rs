//! The plan of one node: what the agent on that node must make true.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use lvs_api::{
    DnsRcode, ForwardingMethod, HealthAction, HealthCheckType, Protocol, RealServerState,
    Scheduler, SchedulerFlag, TunnelType,
};
use serde::Serialize;

/// Identity of an IPVS service: the kernel's lookup key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum ServiceKey {
    /// address:port/protocol.
    Tuple {
        addr: IpAddr,
        protocol: Protocol,
        port: u16,
    },
    /// A firewall mark, per address family.
    Fwmark { mark: u32, ipv6: bool },
}

impl ServiceKey {
    pub fn is_ipv6(&self) -> bool {
        match self {
            ServiceKey::Tuple { addr, .. } => addr.is_ipv6(),
            ServiceKey::Fwmark { ipv6, .. } => *ipv6,
        }
    }
}

impl std::fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServiceKey::Tuple {
                addr: IpAddr::V6(a),
                protocol,
                port,
            } => write!(f, "[{a}]:{port}/{protocol}"),
            ServiceKey::Tuple {
                addr,
                protocol,
                port,
            } => write!(f, "{addr}:{port}/{protocol}"),
            ServiceKey::Fwmark { mark, ipv6 } => {
                write!(f, "fwmark:{mark}/{}", if *ipv6 { "IPv6" } else { "IPv4" })
            }
        }
    }
}

/// Client affinity, as IPVS takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PlannedPersistence {
    pub timeout_seconds: u32,
    /// Prefix length of the client grouping: 32/128 when the spec left it unset.
    pub prefix_length: u8,
}

/// A firewall-mark service's marking rule on the directors
/// (`spec.fwmarkMatch`): packets to one of `addresses` of `protocol` to a
/// port in one of `ports` (every port when empty) get `mark`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PlannedMark {
    pub mark: u32,
    pub ipv6: bool,
    /// Sorted, unique.
    pub addresses: Vec<IpAddr>,
    pub protocol: Protocol,
    /// Inclusive ranges, sorted, unique.
    pub ports: Vec<(u16, u16)>,
}

/// Tunnel encapsulation of a TUN destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PlannedTunnel {
    pub type_: TunnelType,
    /// GUE destination port; 0 for ipip and gre.
    pub port: u16,
    pub checksum: bool,
    pub remote_checksum: bool,
}

/// One IPVS destination (realserver) of a service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PlannedDestination {
    pub addr: IpAddr,
    /// 0 keeps the packet's port (fwmark services without port mapping).
    pub port: u16,
    pub method: ForwardingMethod,
    pub weight: u32,
    pub upper_threshold: u32,
    pub lower_threshold: u32,
    /// Only with method TUN.
    pub tunnel: Option<PlannedTunnel>,
    /// The RealServer this destination comes from (namespace/name), shared
    /// by every destination planned from it and every copy of the plan.
    pub owner: Arc<str>,
    /// The node acting as this DR/TUN realserver (RealServer `nodeName`):
    /// its agent's report gates the weight (readiness gating).
    pub node: Option<String>,
    /// The RealServer's state. Inactive ones have weight 0; Draining ones
    /// are left out of the directors' services, which drain them.
    pub state: RealServerState,
}

/// An active health check with every default filled in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PlannedHealthCheck {
    /// Tcp, Http, Https or Dns (a check of type None is no check).
    pub type_: HealthCheckType,
    /// The port probed; `None`: the destination's port.
    pub port: Option<u16>,
    pub interval_seconds: u32,
    pub timeout_seconds: u32,
    pub rise: u32,
    pub fall: u32,
    pub on_failure: HealthAction,
    /// HTTP(S) GET path.
    pub path: String,
    /// HTTP(S) Host header; `None`: the destination's address.
    pub host: Option<String>,
    /// HTTP(S) status codes counted healthy, as inclusive ranges.
    pub expected_status: Vec<(u16, u16)>,
    pub body_contains: Option<String>,
    pub verify_certificate: bool,
    /// DNS: the name queried (type SOA).
    pub dns_name: String,
    pub expected_rcode: DnsRcode,
}

impl PlannedHealthCheck {
    /// A check of this type and failure action with the API's defaults:
    /// every 5 s, 2 s timeout, rise 2, fall 3, the destination's port; HTTP
    /// `GET /` with the destination's address as Host, 200-399 healthy,
    /// certificates not verified; DNS: SOA of `.`, NOERROR.
    pub fn with_defaults(type_: HealthCheckType, on_failure: HealthAction) -> Self {
        PlannedHealthCheck {
            type_,
            port: None,
            interval_seconds: 5,
            timeout_seconds: 2,
            rise: 2,
            fall: 3,
            on_failure,
            path: "/".into(),
            host: None,
            expected_status: vec![(200, 399)],
            body_contains: None,
            verify_certificate: false,
            dns_name: ".".into(),
            expected_rcode: DnsRcode::NoError,
        }
    }
}

/// One IPVS service on a director.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PlannedService {
    pub key: ServiceKey,
    pub scheduler: Scheduler,
    pub flags: Vec<SchedulerFlag>,
    pub persistence: Option<PlannedPersistence>,
    /// Sorted by (addr, port), unique.
    pub destinations: Vec<PlannedDestination>,
    /// The VirtualService (namespace/name).
    pub owner: String,
    pub generation: Option<i64>,
    /// Health checking of the destinations by the directors. Boxed, as is
    /// the sorry server: most services have neither, and the plan holds one
    /// of these per VirtualService.
    pub health: Option<Box<PlannedHealthCheck>>,
    /// Programmed as the only destination while the healthy weight is
    /// below `quorum`.
    pub sorry_server: Option<Box<PlannedDestination>>,
    /// The minimum healthy weight (default 1).
    pub quorum: u32,
    /// How long a leaving destination may drain (weight 0) before it is
    /// removed with connections left; 0: removed at once.
    pub drain_timeout_seconds: u32,
}

/// A VIP a director must hold so IPVS sees the traffic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PlannedVip {
    pub addr: IpAddr,
    /// The interface to hold it on; `None`: the interface holding the node's InternalIP.
    pub interface: Option<String>,
    /// The nodes selected as directors of every VirtualService at this
    /// address that this node directs, this node included: the candidates
    /// for holding the VIP when directors run highly available, so that the
    /// holder serves all of them. Equal on all candidates when the services
    /// at one address select the same directors (the usual setup). Sorted,
    /// unique.
    pub directors: Vec<String>,
}

/// The tunnel endpoint of a TUN realserver: one device per tunnel type and
/// family (and for GRE with a checksum, per realserver address), holding
/// every VIP it receives traffic for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PlannedTunnelEndpoint {
    /// The device that receives the decapsulated packets: the fallback device
    /// the kernel creates with the tunnel module (`tunl0`, `ip6tnl0`, `gre0`,
    /// `ip6gre0`), which accepts packets from any director; for GRE with a
    /// checksum a device of the agent's (see `local`).
    pub device: String,
    pub type_: TunnelType,
    pub ipv6: bool,
    /// The GUE port to listen on (fou); 0 for ipip and gre.
    pub port: u16,
    /// GRE with a checksum: the realserver address the device receives at
    /// (`local`, any remote, input checksum flag); the agent creates the
    /// device and deletes it on release. `None` for the fallback devices.
    pub local: Option<IpAddr>,
    /// Sorted, unique.
    pub vips: Vec<IpAddr>,
}

/// A sysctl under /proc/sys, per network namespace: `net/ipv4/ip_forward`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Sysctl {
    /// Borrowed when known at compile time: every director's fragment of
    /// the plan holds the same few.
    pub key: Cow<'static, str>,
    pub value: Cow<'static, str>,
}

impl Sysctl {
    pub fn new(key: impl Into<Cow<'static, str>>, value: impl Into<Cow<'static, str>>) -> Self {
        Sysctl {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// Everything one node must have. Every list is sorted and free of duplicates,
/// so equal inputs give equal plans whatever their order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NodePlan {
    pub node: String,
    /// Director role: IPVS services with their destinations.
    pub services: Vec<PlannedService>,
    /// Director role: VIPs held on an interface.
    pub vips: Vec<PlannedVip>,
    /// DR realserver role: VIPs on `lo` (host scope, /32 or /128).
    pub loopback_vips: Vec<IpAddr>,
    /// TUN realserver role: tunnel devices with their VIPs.
    pub tunnels: Vec<PlannedTunnelEndpoint>,
    /// TUN realserver role: addresses of this node that VirtualServices
    /// tunnel GRE to both with and without a checksum. The kernel hands
    /// every GRE packet to such an address to its checksum device, which
    /// drops those without a checksum. Sorted, unique.
    pub gre_checksum_conflicts: Vec<IpAddr>,
    /// Sysctls for every role on this node.
    pub sysctls: Vec<Sysctl>,
    /// Director role: the NAT services whose forwarded connections are
    /// source-NATed (masqueraded) to the director's own address, so that
    /// backends whose default route is not the director (pods) reply
    /// through it (`spec.sourceNat`).
    pub source_nat: Vec<ServiceKey>,
    /// Director role: the marking rules of fwmark services with
    /// `spec.fwmarkMatch`.
    pub marks: Vec<PlannedMark>,
}

impl NodePlan {
    /// Whether the node has nothing to do.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
            && self.vips.is_empty()
            && self.loopback_vips.is_empty()
            && self.tunnels.is_empty()
            && self.gre_checksum_conflicts.is_empty()
            && self.sysctls.is_empty()
            && self.source_nat.is_empty()
            && self.marks.is_empty()
    }
}
