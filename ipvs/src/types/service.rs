//! Virtual services: identity (family, protocol, address, port or fwmark)
//! and what SET_SERVICE can change.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use netlink_packet_core::DecodeError;

use super::*;
use crate::codec::{SvcAttr, SvcFlags};
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
