//! Typed view of services and destinations.
//!
//! Identity (`*Key`) is kept apart from configuration (`*Config`) and from
//! what the kernel reports about traffic (`Stats`, `DestStats`), so callers
//! can diff desired against actual by key and compare only configuration.
//! Every type is `Ord` so sorted sets can be merged in one pass.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use netlink_packet_core::DecodeError;

use crate::codec::{DaemonAttr, DestAttr, Nested, Stats32Attr, Stats64Attr, SvcAttr, SvcFlags};
use crate::constants::*;

/// Address family of a service or destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(addr: &IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The `AF_*` number used on the wire.
    pub fn af(self) -> u16 {
        match self {
            Family::V4 => AF_INET,
            Family::V6 => AF_INET6,
        }
    }

    pub fn from_af(af: u16) -> Result<Self, DecodeError> {
        match af {
            AF_INET => Ok(Family::V4),
            AF_INET6 => Ok(Family::V6),
            other => Err(DecodeError::from(format!(
                "address family {other} is neither AF_INET ({AF_INET}) nor AF_INET6 ({AF_INET6})"
            ))),
        }
    }

    /// Longest persistence prefix, used as the "no grouping" netmask.
    pub fn max_prefix(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// IP protocol number of a service. A newtype rather than an enum so any
/// protocol the kernel reports can be represented without ambiguity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Protocol(pub u16);

impl Protocol {
    pub const TCP: Protocol = Protocol(IPPROTO_TCP);
    pub const UDP: Protocol = Protocol(IPPROTO_UDP);
    pub const SCTP: Protocol = Protocol(IPPROTO_SCTP);
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Protocol::TCP => f.write_str("TCP"),
            Protocol::UDP => f.write_str("UDP"),
            Protocol::SCTP => f.write_str("SCTP"),
            Protocol(n) => write!(f, "proto-{n}"),
        }
    }
}

/// What identifies a virtual service in the kernel table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceKey {
    Tuple {
        addr: IpAddr,
        protocol: Protocol,
        port: u16,
    },
    Fwmark {
        family: Family,
        mark: u32,
    },
}

impl ServiceKey {
    pub fn family(&self) -> Family {
        match self {
            ServiceKey::Tuple { addr, .. } => Family::of(addr),
            ServiceKey::Fwmark { family, .. } => *family,
        }
    }

    pub fn is_ipv6(&self) -> bool {
        self.family() == Family::V6
    }

    /// The attributes that select this service, in ipvsadm's order.
    pub fn to_attrs(&self) -> Vec<SvcAttr> {
        match *self {
            ServiceKey::Tuple {
                addr,
                protocol,
                port,
            } => vec![
                SvcAttr::Af(Family::of(&addr).af()),
                SvcAttr::Protocol(protocol.0),
                SvcAttr::Addr(addr_to_wire(&addr)),
                SvcAttr::Port(port),
            ],
            ServiceKey::Fwmark { family, mark } => {
                vec![SvcAttr::Af(family.af()), SvcAttr::Fwmark(mark)]
            }
        }
    }

    /// Decode the key part of a service nest; the other attributes are ignored.
    pub fn from_attrs(attrs: &[SvcAttr]) -> Result<Self, DecodeError> {
        let mut af = None;
        let (mut protocol, mut addr, mut port, mut fwmark) = (None, None, None, None);
        for attr in attrs {
            match attr {
                SvcAttr::Af(v) => af = Some(*v),
                SvcAttr::Protocol(v) => protocol = Some(*v),
                SvcAttr::Addr(v) => addr = Some(v.as_slice()),
                SvcAttr::Port(v) => port = Some(*v),
                SvcAttr::Fwmark(v) => fwmark = Some(*v),
                _ => {}
            }
        }
        let family = Family::from_af(af.ok_or("service has no IPVS_SVC_ATTR_AF")?)?;
        // The kernel reports a tuple service with no FWMARK attribute and a
        // fwmark service with no ADDR, so FWMARK present means fwmark.
        if let Some(mark) = fwmark.filter(|m| *m != 0) {
            return Ok(ServiceKey::Fwmark { family, mark });
        }
        let addr = addr_from_wire(family, addr.ok_or("service has neither FWMARK nor ADDR")?)?;
        Ok(ServiceKey::Tuple {
            addr,
            protocol: Protocol(protocol.ok_or("service has ADDR but no PROTOCOL")?),
            port: port.ok_or("service has ADDR but no PORT")?,
        })
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceKey::Tuple {
                addr,
                protocol,
                port,
            } => write!(f, "{protocol} {}", SocketAddr::new(*addr, *port)),
            ServiceKey::Fwmark { family, mark } => write!(f, "FWM {mark} {family}"),
        }
    }
}

/// Service flags as a user sets them (`IP_VS_SVC_F_*`), with the
/// kernel-internal HASHED bit always cleared so a dump compares equal to
/// the configuration that created it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ServiceFlags(u32);

impl ServiceFlags {
    pub const PERSISTENT: ServiceFlags = ServiceFlags(IP_VS_SVC_F_PERSISTENT);
    pub const ONE_PACKET: ServiceFlags = ServiceFlags(IP_VS_SVC_F_ONEPACKET);
    /// Scheduler-specific; for `sh` it means "fallback".
    pub const SCHED1: ServiceFlags = ServiceFlags(IP_VS_SVC_F_SCHED1);
    /// Scheduler-specific; for `sh` it means "hash the port too".
    pub const SCHED2: ServiceFlags = ServiceFlags(IP_VS_SVC_F_SCHED2);
    pub const SCHED3: ServiceFlags = ServiceFlags(IP_VS_SVC_F_SCHED3);

    pub const fn empty() -> Self {
        ServiceFlags(0)
    }

    pub const fn from_bits(bits: u32) -> Self {
        ServiceFlags(bits & !IP_VS_SVC_F_HASHED)
    }

    pub const fn bits(self) -> u32 {
        self.0
    }

    pub const fn contains(self, other: ServiceFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for ServiceFlags {
    type Output = ServiceFlags;
    fn bitor(self, rhs: Self) -> Self {
        ServiceFlags(self.0 | rhs.0)
    }
}

/// Everything about a service that can be changed in place with SET_SERVICE.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceConfig {
    /// Scheduler module name without the `ip_vs_` prefix: rr, wrr, lc, wlc, sh, mh, ...
    pub scheduler: String,
    pub flags: ServiceFlags,
    /// Persistence timeout in seconds (0 unless `flags` has PERSISTENT).
    pub timeout: u32,
    /// Persistence granularity in host order, as the kernel reports it: for
    /// IPv4 a bit mask (`0xffff_ffff` = /32, `0xffff_ff00` = /24), for IPv6 a
    /// prefix length (128). Build it with [`ServiceConfig::netmask_for_prefix`].
    pub netmask: u32,
    /// Persistence engine (only "sip" exists upstream).
    pub pe_name: Option<String>,
}

impl ServiceConfig {
    /// A non-persistent service with the given scheduler.
    pub fn new(family: Family, scheduler: impl Into<String>) -> Self {
        Self {
            scheduler: scheduler.into(),
            flags: ServiceFlags::empty(),
            timeout: 0,
            netmask: Self::netmask_for_prefix(family, family.max_prefix()),
            pe_name: None,
        }
    }

    /// The `netmask` value meaning "group clients by this prefix length".
    /// The prefix is clamped to the family's maximum.
    pub fn netmask_for_prefix(family: Family, prefix: u8) -> u32 {
        let prefix = prefix.min(family.max_prefix());
        match family {
            Family::V4 => u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0),
            Family::V6 => u32::from(prefix),
        }
    }

    /// The prefix length `netmask` stands for, if it is a contiguous mask.
    pub fn netmask_prefix(&self, family: Family) -> Option<u8> {
        match family {
            Family::V4 => {
                let ones = self.netmask.leading_ones();
                (self.netmask.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
            }
            Family::V6 => u8::try_from(self.netmask).ok().filter(|p| *p <= 128),
        }
    }
}

/// A virtual service: identity plus configuration.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Service {
    pub key: ServiceKey,
    pub config: ServiceConfig,
}

impl Service {
    /// Attributes for NEW_SERVICE/SET_SERVICE, in ipvsadm's order. The kernel
    /// requires SCHED_NAME, FLAGS, TIMEOUT and NETMASK on NEW_SERVICE.
    pub fn to_attrs(&self) -> Vec<SvcAttr> {
        let family = self.key.family();
        let mut attrs = self.key.to_attrs();
        attrs.push(SvcAttr::SchedName(self.config.scheduler.clone()));
        if let Some(pe) = &self.config.pe_name {
            attrs.push(SvcAttr::PeName(pe.clone()));
        }
        attrs.push(SvcAttr::Flags(SvcFlags {
            flags: self.config.flags.bits(),
            mask: u32::MAX,
        }));
        attrs.push(SvcAttr::Timeout(self.config.timeout));
        attrs.push(SvcAttr::Netmask(netmask_to_wire(
            family,
            self.config.netmask,
        )));
        attrs
    }

    /// Decode a service nest from a dump into the service and its counters.
    pub fn from_attrs(attrs: &[SvcAttr]) -> Result<(Service, Stats), DecodeError> {
        let key = ServiceKey::from_attrs(attrs)?;
        let family = key.family();
        let mut config = ServiceConfig::new(family, "");
        let mut sched = None;
        let (mut stats32, mut stats64) = (None, None);
        for attr in attrs {
            match attr {
                SvcAttr::SchedName(s) => sched = Some(s.clone()),
                SvcAttr::PeName(s) => config.pe_name = Some(s.clone()),
                SvcAttr::Flags(f) => config.flags = ServiceFlags::from_bits(f.flags & f.mask),
                SvcAttr::Timeout(t) => config.timeout = *t,
                SvcAttr::Netmask(m) => config.netmask = netmask_from_wire(family, *m),
                SvcAttr::Stats(n) => stats32 = Some(n),
                SvcAttr::Stats64(n) => stats64 = Some(n),
                _ => {}
            }
        }
        config.scheduler = sched.ok_or("service has no IPVS_SVC_ATTR_SCHED_NAME")?;
        Ok((Service { key, config }, Stats::from_nests(stats32, stats64)))
    }
}

/// How packets reach a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FwdMethod {
    /// NAT: the director rewrites the destination (port mapping allowed).
    Masq,
    /// The director itself serves the traffic.
    Local,
    /// IP-in-IP (or GUE/GRE) encapsulation to the real server.
    Tunnel,
    /// Direct routing: MAC rewrite on the same L2 segment.
    DirectRoute,
    /// Cache bypass; never set by ipvsadm, accepted so dumps don't fail.
    Bypass,
}

impl FwdMethod {
    pub fn to_wire(self) -> u32 {
        match self {
            FwdMethod::Masq => IP_VS_CONN_F_MASQ,
            FwdMethod::Local => IP_VS_CONN_F_LOCALNODE,
            FwdMethod::Tunnel => IP_VS_CONN_F_TUNNEL,
            FwdMethod::DirectRoute => IP_VS_CONN_F_DROUTE,
            FwdMethod::Bypass => IP_VS_CONN_F_BYPASS,
        }
    }

    pub fn from_wire(v: u32) -> Result<Self, DecodeError> {
        match v & IP_VS_CONN_F_FWD_MASK {
            IP_VS_CONN_F_MASQ => Ok(FwdMethod::Masq),
            IP_VS_CONN_F_LOCALNODE => Ok(FwdMethod::Local),
            IP_VS_CONN_F_TUNNEL => Ok(FwdMethod::Tunnel),
            IP_VS_CONN_F_DROUTE => Ok(FwdMethod::DirectRoute),
            IP_VS_CONN_F_BYPASS => Ok(FwdMethod::Bypass),
            other => Err(DecodeError::from(format!(
                "forwarding method {other} is not one of 0 (masq), 1 (local), 2 (tunnel), 3 (droute), 4 (bypass)"
            ))),
        }
    }
}

impl fmt::Display for FwdMethod {
    /// ipvsadm's names, so output can be compared with `ipvsadm -Ln`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FwdMethod::Masq => "Masq",
            FwdMethod::Local => "Local",
            FwdMethod::Tunnel => "Tunnel",
            FwdMethod::DirectRoute => "Route",
            FwdMethod::Bypass => "Bypass",
        })
    }
}

/// `IP_VS_CONN_F_TUNNEL_TYPE_*`; a newtype so newer kernel values survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TunnelType(pub u8);

impl TunnelType {
    pub const IPIP: TunnelType = TunnelType(IP_VS_CONN_F_TUNNEL_TYPE_IPIP);
    pub const GUE: TunnelType = TunnelType(IP_VS_CONN_F_TUNNEL_TYPE_GUE);
    pub const GRE: TunnelType = TunnelType(IP_VS_CONN_F_TUNNEL_TYPE_GRE);
}

/// `IP_VS_TUNNEL_ENCAP_FLAG_*` bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TunnelFlags(pub u16);

impl TunnelFlags {
    pub const NOCSUM: TunnelFlags = TunnelFlags(IP_VS_TUNNEL_ENCAP_FLAG_NOCSUM);
    pub const CSUM: TunnelFlags = TunnelFlags(IP_VS_TUNNEL_ENCAP_FLAG_CSUM);
    pub const REMCSUM: TunnelFlags = TunnelFlags(IP_VS_TUNNEL_ENCAP_FLAG_REMCSUM);
}

/// What identifies a destination within its service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DestKey {
    pub addr: IpAddr,
    pub port: u16,
}

impl fmt::Display for DestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        SocketAddr::new(self.addr, self.port).fmt(f)
    }
}

impl DestKey {
    /// The attributes that select this destination within its service.
    pub fn to_attrs(self) -> Vec<DestAttr> {
        vec![
            DestAttr::AddrFamily(Family::of(&self.addr).af()),
            DestAttr::Addr(addr_to_wire(&self.addr)),
            DestAttr::Port(self.port),
        ]
    }
}

/// Everything about a destination that SET_DEST can change in place.
/// Kernels before 5.3 report no tunnel attributes; they read as the defaults
/// (IPIP, port 0, no flags), which is also what such kernels use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DestConfig {
    pub fwd: FwdMethod,
    pub weight: u32,
    /// Upper connection threshold; 0 means none.
    pub u_threshold: u32,
    /// Lower connection threshold; 0 means none.
    pub l_threshold: u32,
    pub tun_type: TunnelType,
    /// GUE destination port (host order); 0 for other tunnel types.
    pub tun_port: u16,
    pub tun_flags: TunnelFlags,
}

impl DestConfig {
    pub fn new(fwd: FwdMethod, weight: u32) -> Self {
        Self {
            fwd,
            weight,
            u_threshold: 0,
            l_threshold: 0,
            tun_type: TunnelType::IPIP,
            tun_port: 0,
            tun_flags: TunnelFlags::NOCSUM,
        }
    }

    /// Whether two configurations program the same behaviour. The tunnel
    /// fields are ignored unless the method is Tunnel: kernels report them
    /// for every destination, with whatever was last set.
    pub fn same_as(&self, other: &DestConfig) -> bool {
        let base = self.fwd == other.fwd
            && self.weight == other.weight
            && self.u_threshold == other.u_threshold
            && self.l_threshold == other.l_threshold;
        base && (self.fwd != FwdMethod::Tunnel
            || (self.tun_type == other.tun_type
                && self.tun_port == other.tun_port
                && self.tun_flags == other.tun_flags))
    }
}

/// A real server: identity plus configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Destination {
    pub key: DestKey,
    pub config: DestConfig,
}

impl Destination {
    /// Attributes for NEW_DEST/SET_DEST, in ipvsadm's order. Like ipvsadm,
    /// the tunnel attributes are always sent (zero for other methods):
    /// kernels before 5.3 ignore them, later ones store them either way.
    pub fn to_attrs(&self) -> Vec<DestAttr> {
        let c = &self.config;
        let mut attrs = self.key.to_attrs();
        attrs.extend([
            DestAttr::FwdMethod(c.fwd.to_wire()),
            DestAttr::Weight(c.weight),
            DestAttr::TunType(c.tun_type.0),
            DestAttr::TunPort(c.tun_port),
            DestAttr::TunFlags(c.tun_flags.0),
            DestAttr::UThresh(c.u_threshold),
            DestAttr::LThresh(c.l_threshold),
        ]);
        attrs
    }

    /// Decode a destination nest from a dump. `service_family` is used when
    /// the kernel omits IPVS_DEST_ATTR_ADDR_FAMILY (kernels before 3.18).
    pub fn from_attrs(
        attrs: &[DestAttr],
        service_family: Family,
    ) -> Result<(Destination, DestStats), DecodeError> {
        let mut af = None;
        let (mut addr, mut port, mut fwd, mut weight) = (None, None, None, None);
        let mut config = DestConfig::new(FwdMethod::Masq, 0);
        let mut stats = DestStats::default();
        let (mut stats32, mut stats64) = (None, None);
        for attr in attrs {
            match attr {
                DestAttr::AddrFamily(v) => af = Some(*v),
                DestAttr::Addr(v) => addr = Some(v.as_slice()),
                DestAttr::Port(v) => port = Some(*v),
                DestAttr::FwdMethod(v) => fwd = Some(FwdMethod::from_wire(*v)?),
                DestAttr::Weight(v) => weight = Some(*v),
                DestAttr::UThresh(v) => config.u_threshold = *v,
                DestAttr::LThresh(v) => config.l_threshold = *v,
                DestAttr::TunType(v) => config.tun_type = TunnelType(*v),
                DestAttr::TunPort(v) => config.tun_port = *v,
                DestAttr::TunFlags(v) => config.tun_flags = TunnelFlags(*v),
                DestAttr::ActiveConns(v) => stats.active_conns = *v,
                DestAttr::InactConns(v) => stats.inactive_conns = *v,
                DestAttr::PersistConns(v) => stats.persist_conns = *v,
                DestAttr::Stats(n) => stats32 = Some(n),
                DestAttr::Stats64(n) => stats64 = Some(n),
                _ => {}
            }
        }
        let family = af
            .map(Family::from_af)
            .transpose()?
            .unwrap_or(service_family);
        let addr = addr_from_wire(
            family,
            addr.ok_or("destination has no IPVS_DEST_ATTR_ADDR")?,
        )?;
        let key = DestKey {
            addr,
            port: port.ok_or("destination has no IPVS_DEST_ATTR_PORT")?,
        };
        config.fwd = fwd.ok_or("destination has no IPVS_DEST_ATTR_FWD_METHOD")?;
        config.weight = weight.ok_or("destination has no IPVS_DEST_ATTR_WEIGHT")?;
        stats.traffic = Stats::from_nests(stats32, stats64);
        Ok((Destination { key, config }, stats))
    }
}

/// Traffic counters and estimated rates, as reported by the kernel. The
/// rates come from a ~2 s estimator, so they lag behind the traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Stats {
    pub conns: u64,
    pub in_pkts: u64,
    pub out_pkts: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
    pub cps: u64,
    pub in_pps: u64,
    pub out_pps: u64,
    pub in_bps: u64,
    pub out_bps: u64,
}

impl Stats {
    /// Prefer the 64-bit nest; fall back to the legacy one on old kernels.
    fn from_nests(
        legacy: Option<&Nested<Stats32Attr>>,
        wide: Option<&Nested<Stats64Attr>>,
    ) -> Stats {
        let mut s = Stats::default();
        if let Some(wide) = wide {
            for a in &wide.attrs {
                match *a {
                    Stats64Attr::Conns(v) => s.conns = v,
                    Stats64Attr::InPkts(v) => s.in_pkts = v,
                    Stats64Attr::OutPkts(v) => s.out_pkts = v,
                    Stats64Attr::InBytes(v) => s.in_bytes = v,
                    Stats64Attr::OutBytes(v) => s.out_bytes = v,
                    Stats64Attr::Cps(v) => s.cps = v,
                    Stats64Attr::InPps(v) => s.in_pps = v,
                    Stats64Attr::OutPps(v) => s.out_pps = v,
                    Stats64Attr::InBps(v) => s.in_bps = v,
                    Stats64Attr::OutBps(v) => s.out_bps = v,
                    _ => {}
                }
            }
        } else if let Some(legacy) = legacy {
            for a in &legacy.attrs {
                match *a {
                    Stats32Attr::Conns(v) => s.conns = v.into(),
                    Stats32Attr::InPkts(v) => s.in_pkts = v.into(),
                    Stats32Attr::OutPkts(v) => s.out_pkts = v.into(),
                    Stats32Attr::InBytes(v) => s.in_bytes = v,
                    Stats32Attr::OutBytes(v) => s.out_bytes = v,
                    Stats32Attr::Cps(v) => s.cps = v.into(),
                    Stats32Attr::InPps(v) => s.in_pps = v.into(),
                    Stats32Attr::OutPps(v) => s.out_pps = v.into(),
                    Stats32Attr::InBps(v) => s.in_bps = v.into(),
                    Stats32Attr::OutBps(v) => s.out_bps = v.into(),
                    _ => {}
                }
            }
        }
        s
    }
}

/// What the kernel reports about a destination besides its configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct DestStats {
    pub active_conns: u32,
    pub inactive_conns: u32,
    pub persist_conns: u32,
    pub traffic: Stats,
}

/// One destination as observed in a dump.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DestEntry {
    pub destination: Destination,
    pub stats: DestStats,
}

/// One service as observed in a dump, with its destinations sorted by key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceEntry {
    pub service: Service,
    pub stats: Stats,
    pub destinations: Vec<DestEntry>,
}

/// Global timeouts (GET_CONFIG / SET_CONFIG), in seconds. In a SET, 0 leaves
/// the current value unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Timeouts {
    pub tcp: u32,
    pub tcp_fin: u32,
    pub udp: u32,
}

/// GET_INFO reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpvsInfo {
    /// `IP_VS_VERSION_CODE`, e.g. 0x010201.
    pub version: u32,
    pub conn_tab_size: u32,
}

impl IpvsInfo {
    /// "1.2.1" for 0x010201, as `ipvsadm` prints it.
    pub fn version_string(&self) -> String {
        let v = self.version;
        format!("{}.{}.{}", (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff)
    }
}

/// Role of a connection-synchronisation daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DaemonState {
    Master,
    Backup,
}

impl DaemonState {
    pub fn to_wire(self) -> u32 {
        match self {
            DaemonState::Master => IP_VS_STATE_MASTER,
            DaemonState::Backup => IP_VS_STATE_BACKUP,
        }
    }

    pub fn from_wire(v: u32) -> Result<Self, DecodeError> {
        match v {
            IP_VS_STATE_MASTER => Ok(DaemonState::Master),
            IP_VS_STATE_BACKUP => Ok(DaemonState::Backup),
            other => Err(DecodeError::from(format!(
                "sync daemon state {other} is neither master ({IP_VS_STATE_MASTER}) nor backup ({IP_VS_STATE_BACKUP})"
            ))),
        }
    }
}

/// A connection-synchronisation daemon (NEW/DEL/GET_DAEMON). Optional
/// fields are left to kernel defaults when `None`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SyncDaemon {
    pub state: DaemonState,
    pub mcast_ifn: String,
    pub sync_id: u32,
    pub sync_maxlen: Option<u16>,
    pub mcast_group: Option<IpAddr>,
    pub mcast_port: Option<u16>,
    pub mcast_ttl: Option<u8>,
}

impl SyncDaemon {
    /// Attributes for NEW_DAEMON; the kernel requires STATE, MCAST_IFN and SYNC_ID.
    pub fn to_attrs(&self) -> Vec<DaemonAttr> {
        let mut attrs = vec![
            DaemonAttr::State(self.state.to_wire()),
            DaemonAttr::McastIfn(self.mcast_ifn.clone()),
            DaemonAttr::SyncId(self.sync_id),
        ];
        attrs.extend(self.sync_maxlen.map(DaemonAttr::SyncMaxLen));
        attrs.extend(self.mcast_group.map(|g| match g {
            IpAddr::V4(a) => DaemonAttr::McastGroup(a),
            IpAddr::V6(a) => DaemonAttr::McastGroup6(a),
        }));
        attrs.extend(self.mcast_port.map(DaemonAttr::McastPort));
        attrs.extend(self.mcast_ttl.map(DaemonAttr::McastTtl));
        attrs
    }

    pub fn from_attrs(attrs: &[DaemonAttr]) -> Result<Self, DecodeError> {
        let (mut state, mut ifn, mut sync_id) = (None, None, None);
        let mut d = SyncDaemon {
            state: DaemonState::Master,
            mcast_ifn: String::new(),
            sync_id: 0,
            sync_maxlen: None,
            mcast_group: None,
            mcast_port: None,
            mcast_ttl: None,
        };
        for attr in attrs {
            match attr {
                DaemonAttr::State(v) => state = Some(DaemonState::from_wire(*v)?),
                DaemonAttr::McastIfn(v) => ifn = Some(v.clone()),
                DaemonAttr::SyncId(v) => sync_id = Some(*v),
                DaemonAttr::SyncMaxLen(v) => d.sync_maxlen = Some(*v),
                DaemonAttr::McastGroup(a) => d.mcast_group = Some(IpAddr::V4(*a)),
                DaemonAttr::McastGroup6(a) => d.mcast_group = Some(IpAddr::V6(*a)),
                DaemonAttr::McastPort(v) => d.mcast_port = Some(*v),
                DaemonAttr::McastTtl(v) => d.mcast_ttl = Some(*v),
                _ => {}
            }
        }
        d.state = state.ok_or("sync daemon has no IPVS_DAEMON_ATTR_STATE")?;
        d.mcast_ifn = ifn.ok_or("sync daemon has no IPVS_DAEMON_ATTR_MCAST_IFN")?;
        d.sync_id = sync_id.ok_or("sync daemon has no IPVS_DAEMON_ATTR_SYNC_ID")?;
        Ok(d)
    }
}

/// Addresses are always sent as the 16-byte `union nf_inet_addr`, as ipvsadm
/// does: IPv4 in the first 4 bytes, zeros after.
pub(crate) fn addr_to_wire(addr: &IpAddr) -> Vec<u8> {
    let mut raw = vec![0u8; 16];
    match addr {
        IpAddr::V4(a) => raw[..4].copy_from_slice(&a.octets()),
        IpAddr::V6(a) => raw.copy_from_slice(&a.octets()),
    }
    raw
}

/// Dumps return 16 bytes even for IPv4: the family decides how many count.
pub(crate) fn addr_from_wire(family: Family, raw: &[u8]) -> Result<IpAddr, DecodeError> {
    match (family, raw.len()) {
        (Family::V4, 4 | 16) => Ok(IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))),
        (Family::V6, 16) => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(raw);
            Ok(IpAddr::V6(Ipv6Addr::from(octets)))
        }
        (family, n) => Err(DecodeError::from(format!(
            "{family} address is {n} bytes, expected {}",
            if family == Family::V4 {
                "4 or 16"
            } else {
                "16"
            }
        ))),
    }
}

/// The kernel keeps an IPv4 netmask as a network-order `__be32` and an IPv6
/// one as a plain prefix length; the codec reads both native-endian.
pub(crate) fn netmask_from_wire(family: Family, raw: u32) -> u32 {
    match family {
        Family::V4 => u32::from_be_bytes(raw.to_ne_bytes()),
        Family::V6 => raw,
    }
}

fn netmask_to_wire(family: Family, netmask: u32) -> u32 {
    match family {
        Family::V4 => u32::from_ne_bytes(netmask.to_be_bytes()),
        Family::V6 => netmask,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netmask_prefix_conversions() {
        assert_eq!(
            ServiceConfig::netmask_for_prefix(Family::V4, 24),
            0xffff_ff00
        );
        assert_eq!(ServiceConfig::netmask_for_prefix(Family::V4, 0), 0);
        assert_eq!(ServiceConfig::netmask_for_prefix(Family::V4, 40), u32::MAX);
        assert_eq!(ServiceConfig::netmask_for_prefix(Family::V6, 64), 64);
        assert_eq!(ServiceConfig::netmask_for_prefix(Family::V6, 200), 128);
        let mut c = ServiceConfig::new(Family::V4, "rr");
        for (mask, prefix) in [
            (u32::MAX, Some(32)),
            (0xffff_0000, Some(16)),
            (0, Some(0)),
            (0xff00_ff00, None),
        ] {
            c.netmask = mask;
            assert_eq!(c.netmask_prefix(Family::V4), prefix, "{mask:#x}");
        }
        // On the wire an IPv4 mask is network order; IPv6 a native prefix.
        assert_eq!(
            netmask_to_wire(Family::V4, 0xffff_ff00).to_ne_bytes(),
            [255, 255, 255, 0]
        );
        assert_eq!(
            netmask_from_wire(Family::V4, u32::from_ne_bytes([255, 255, 255, 0])),
            0xffff_ff00
        );
        assert_eq!(netmask_to_wire(Family::V6, 64), 64);
    }

    #[test]
    fn hashed_flag_never_survives() {
        let f = ServiceFlags::from_bits(IP_VS_SVC_F_HASHED | IP_VS_SVC_F_PERSISTENT);
        assert_eq!(f, ServiceFlags::PERSISTENT);
        assert_eq!(f.bits(), 1);
    }

    #[test]
    fn addresses_decode_by_family() {
        let mut raw = vec![10, 1, 2, 3];
        assert_eq!(
            addr_from_wire(Family::V4, &raw).unwrap(),
            "10.1.2.3".parse::<IpAddr>().unwrap()
        );
        raw.resize(16, 0);
        assert_eq!(
            addr_from_wire(Family::V4, &raw).unwrap(),
            "10.1.2.3".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            addr_from_wire(Family::V6, &raw).unwrap(),
            "a01:203::".parse::<IpAddr>().unwrap()
        );
        let err = addr_from_wire(Family::V6, &raw[..4])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("IPv6 address is 4 bytes, expected 16"),
            "{err}"
        );
        assert_eq!(addr_to_wire(&"10.1.2.3".parse().unwrap()), raw);
    }

    #[test]
    fn keys_sort_and_display_like_ipvsadm() {
        let mut keys = [
            ServiceKey::Fwmark {
                family: Family::V4,
                mark: 7,
            },
            ServiceKey::Tuple {
                addr: "10.0.0.2".parse().unwrap(),
                protocol: Protocol::TCP,
                port: 80,
            },
            ServiceKey::Tuple {
                addr: "10.0.0.1".parse().unwrap(),
                protocol: Protocol::UDP,
                port: 53,
            },
            ServiceKey::Tuple {
                addr: "2001:db8::1".parse().unwrap(),
                protocol: Protocol::TCP,
                port: 443,
            },
        ];
        keys.sort();
        let shown: Vec<String> = keys.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "UDP 10.0.0.1:53",
                "TCP 10.0.0.2:80",
                "TCP [2001:db8::1]:443",
                "FWM 7 IPv4"
            ]
        );
        assert_eq!(Protocol(47).to_string(), "proto-47");
    }

    #[test]
    fn client_types_are_send() {
        fn send<T: Send>() {}
        send::<crate::IpvsClient>();
        send::<crate::IpvsClient<crate::ScriptedTransport>>();
        send::<crate::Error>();
        send::<crate::OpError>();
    }
}
